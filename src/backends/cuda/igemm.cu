#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/igemm.cuh"

/* Implicit GEMM: output pixels are the M rows, output channels the N columns, and
 * (kernel row, kernel column, input channel) the K axis, which is exactly the KRSC weight
 * layout, so a weight tile is a plain 2-D tile and an input tile is gathered on the fly.
 * Each warp owns a block of m16n8k16 MMAs; tiles are staged through shared memory by
 * cp.async in a three-deep pipeline. Small grids split K across CTAs; the last CTA of a
 * tile (a counter per tile) sums the partials. The tile shape is chosen per conv at compile
 * time by a cost model (sh_k_igemm_plan). */

/* K step and pipeline depth: at batch 1 the K loop is bound by the latency of its loads
 * (weights come from DRAM), so each step moves 64 K values and four are in flight. */
#ifndef IG_BK                 /* overridable for bench/cuda/igemm_sweep experiments */
#define IG_BK 64
#endif
#define IG_CPR (IG_BK / 8)    /* 16-byte chunks per tile row */
#define IG_LDS (IG_BK + 8)    /* row pitch in halves: 144 bytes puts 8 ldmatrix rows on 8 bank groups */
#ifndef IG_STAGES
#define IG_STAGES 4
#endif

struct ig_args {
    const __half *x, *w, *bias, *res;
    __half *y;
    float *part;
    int *counters;
    sh_k_igemm_p p;
    int M, K, kiters, kper;
    bool pairs;   /* y and res take half2 stores/loads */
};

__device__ __forceinline__ unsigned ig_smem(const void *p) { return (unsigned)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void ig_cp16(unsigned dst, const void *g, bool pred)
{
    int n = pred ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(g), "r"(n));
}

__device__ __forceinline__ void ig_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N> __device__ __forceinline__ void ig_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ig_ldm4(unsigned r[4], unsigned addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

__device__ __forceinline__ void ig_mma(float d[4], const unsigned a[4], const unsigned b[2])
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
                 "{%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Input pixel geometry of one output row: leading corner of its receptive field, and the
 * element offset of that corner (may point before the image: only taps inside are read). */
struct ig_row {
    int iy0, ix0, off;
};

__device__ __forceinline__ ig_row ig_row_of(const ig_args &a, int m)
{
    const sh_k_igemm_p &p = a.p;
    ig_row r;
    if (m >= a.M) {
        r.iy0 = r.ix0 = -(1 << 28);   /* every tap out of bounds: zero rows */
        r.off = 0;
        return r;
    }
    int hw = p.oh * p.ow;
    int nb = m / hw, rem = m - nb * hw;
    int oy = rem / p.ow, ox = rem - oy * p.ow;
    r.iy0 = oy * p.sh - p.ph;
    r.ix0 = ox * p.sw - p.pw;
    r.off = ((nb * p.h + r.iy0) * p.w + r.ix0) * p.x_ld;
    return r;
}

/* Where a thread's 8-wide K chunk is: kernel tap (ky, kx) and input channel ci. The chunk
 * advances by IG_BK per step, so this is carried along instead of divided out every step
 * (the divisions made the loads, not the MMAs, the bottleneck). */
struct ig_kpos {
    int kidx, ky, kx, ci;
};

__device__ __forceinline__ ig_kpos ig_kpos_at(const sh_k_igemm_p &p, int kidx)
{
    ig_kpos q;
    int rs = kidx / p.c;
    q.kidx = kidx;
    q.ci = kidx - rs * p.c;
    q.ky = rs / p.kw;
    q.kx = rs - q.ky * p.kw;
    return q;
}

__device__ __forceinline__ void ig_kpos_next(const sh_k_igemm_p &p, ig_kpos &q)
{
    q.kidx += IG_BK;
    q.ci += IG_BK;
    while (q.ci >= p.c) {
        q.ci -= p.c;
        if (++q.kx == p.kw) {
            q.kx = 0;
            q.ky++;
        }
    }
}

/* Address of input element (row, kidx), or NULL where the tap falls into the padding. */
__device__ __forceinline__ const __half *ig_tap(const ig_args &a, const ig_row &r, int kidx)
{
    const sh_k_igemm_p &p = a.p;
    if (kidx >= a.K)
        return nullptr;
    int rs = kidx / p.c, ci = kidx - rs * p.c;
    int ky = rs / p.kw, kx = rs - ky * p.kw;
    int iy = r.iy0 + ky * p.dh, ix = r.ix0 + kx * p.dw;
    if ((unsigned)iy >= (unsigned)p.h || (unsigned)ix >= (unsigned)p.w)
        return nullptr;
    return a.x + r.off + (ky * p.dh * p.w + kx * p.dw) * p.x_ld + ci;
}

/* The weight (B) tile of K step kt, vector path: a plain 2-D tile of the KRSC weights. */
template <int BN, int NT>
__device__ __forceinline__ void ig_load_b(const ig_args &a, unsigned sB, int kt, int n0)
{
    int tid = threadIdx.x, kc = (tid % IG_CPR) * 8, kidx = kt * IG_BK + kc;
    bool kin = kidx < a.K;
#pragma unroll
    for (int i = 0; i < BN * IG_CPR / NT; i++) {
        int row = tid / IG_CPR + i * (NT / IG_CPR);
        bool ok = n0 + row < a.p.k && kin;
        /* select the offset, not the pointer: a pointer select compiles to a branch per chunk */
        ig_cp16(sB + (row * IG_LDS + kc) * 2, a.w + (ok ? (n0 + row) * a.K + kidx : 0), ok);
    }
}

/* The input (A) tile of the K step at this thread's chunk position q, vector path. */
template <int BM, int NT>
__device__ __forceinline__ void ig_load_a(const ig_args &a, unsigned sA, const ig_row *rows, const ig_kpos &q)
{
    const sh_k_igemm_p &p = a.p;
    int tid = threadIdx.x, kc = (tid % IG_CPR) * 8;
    bool kin = q.kidx < a.K;
    int dy = q.ky * p.dh, dx = q.kx * p.dw;
    int tap = (dy * p.w + dx) * p.x_ld + q.ci;
#pragma unroll
    for (int i = 0; i < BM * IG_CPR / NT; i++) {
        int row = tid / IG_CPR + i * (NT / IG_CPR);
        int iy = rows[i].iy0 + dy, ix = rows[i].ix0 + dx;
        bool ok = kin && (unsigned)iy < (unsigned)p.h && (unsigned)ix < (unsigned)p.w;
        ig_cp16(sA + (row * IG_LDS + kc) * 2, a.x + (ok ? rows[i].off + tap : 0), ok);
    }
}

/* One pipeline stage: the A (input) and B (weight) tiles of K step kt into the stage whose
 * shared addresses are sA/sB. q is this thread's chunk position at kt (vector path). */
template <int BM, int BN, int NT, bool VEC>
__device__ __forceinline__ void ig_load(const ig_args &a, unsigned sA, unsigned sB, const ig_row *rows,
                                        const ig_kpos &q, int kt, int m0, int n0)
{
    int tid = threadIdx.x;
    const sh_k_igemm_p &p = a.p;
    if constexpr (VEC) {
        ig_load_a<BM, NT>(a, sA, rows, q);
        ig_load_b<BN, NT>(a, sB, kt, n0);
    } else {
        /* any channel count (the first conv's RGB input): plain loads, element by element */
        int k0 = kt * IG_BK;
        __half *As = (__half *)__cvta_shared_to_generic(sA), *Bs = (__half *)__cvta_shared_to_generic(sB);
        for (int e = tid; e < BM * IG_BK; e += NT) {
            int row = e / IG_BK, kk = e % IG_BK;
            ig_row r = ig_row_of(a, m0 + row);
            const __half *src = ig_tap(a, r, k0 + kk);
            As[row * IG_LDS + kk] = src ? *src : __float2half(0.f);
        }
        for (int e = tid; e < BN * IG_BK; e += NT) {
            int row = e / IG_BK, kk = e % IG_BK;
            bool ok = n0 + row < p.k && k0 + kk < a.K;
            Bs[row * IG_LDS + kk] = ok ? a.w[(size_t)(n0 + row) * a.K + k0 + kk] : __float2half(0.f);
        }
    }
}

/* Programmatic dependent launch (sm_90): the conv is launched while the step before it is
 * still finishing; it fetches its first weight tiles (constants), then waits here until that
 * step's results are visible, before it reads any activation or writes anything. */
__device__ __forceinline__ void ig_wait_inputs()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

__device__ __forceinline__ void ig_release_dependents()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* f(value, index in a [M][N] plane) for every accumulator of this thread inside the output
 * (fragment rows row0 + 16i (+8), channels col0 + 8j (+1)). */
template <int MI, int NI, class F>
__device__ __forceinline__ void ig_each(const ig_args &a, float (&acc)[MI][NI][4], int row0, int col0, F f)
{
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                int m = row0 + i * 16 + (e >> 1) * 8, c = col0 + j * 8 + (e & 1);
                if (m < a.M && c < a.p.k)
                    f(acc[i][j][e], (size_t)m * a.p.k + c);
            }
}

/* f(i, j, hh, m, c) for every in-bounds pair of accumulators acc[i][j][2hh], [2hh+1]: output
 * pixel m = row0 + 16i + 8hh, channels c and c + 1 (c + 1 may lie past the last channel). */
template <int MI, int NI, class F>
__device__ __forceinline__ void ig_each_pair(const ig_args &a, int row0, int col0, F f)
{
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int hh = 0; hh < 2; hh++) {
                int m = row0 + i * 16 + hh * 8, c = col0 + j * 8;
                if (m < a.M && c < a.p.k)
                    f(i, j, hh, m, c);
            }
}

/* bias, activation, residual and the fp16 stores of a warp's fragments; row0/col0 are this
 * thread's first pixel and channel. Every load (bias, residual) is issued before the first
 * store: y may alias them as far as the compiler knows, and a load after a store would wait
 * out a full memory round trip per fragment. */
template <int MI, int NI>
__device__ __forceinline__ void ig_epilogue(const ig_args &a, float (&acc)[MI][NI][4], int row0, int col0)
{
    const sh_k_igemm_p &p = a.p;
    const int N = p.k;
    float b0[NI], b1[NI];
#pragma unroll
    for (int j = 0; j < NI; j++) {
        int c = col0 + j * 8;
        b0[j] = a.bias && c < N ? __half2float(__ldg(a.bias + c)) : 0.f;
        b1[j] = a.bias && c + 1 < N ? __half2float(__ldg(a.bias + c + 1)) : 0.f;
    }
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = k_act(acc[i][j][e] + (e & 1 ? b1[j] : b0[j]), p.act);
    if (a.res) {
        __half2 r[MI][NI][2];   /* packed: keeps the 128-row tiles within registers */
#pragma unroll
        for (int i = 0; i < MI; i++)
#pragma unroll
            for (int j = 0; j < NI; j++)
                r[i][j][0] = r[i][j][1] = __float2half2_rn(0.f);
        ig_each_pair<MI, NI>(a, row0, col0, [&](int i, int j, int hh, int m, int c) {
            const __half *q = a.res + (size_t)m * p.r_ld + c;
            if (a.pairs && c + 1 < N)
                r[i][j][hh] = __ldg((const __half2 *)q);
            else
                r[i][j][hh] = __halves2half2(__ldg(q), c + 1 < N ? __ldg(q + 1) : __float2half(0.f));
        });
#pragma unroll
        for (int i = 0; i < MI; i++)
#pragma unroll
            for (int j = 0; j < NI; j++)
#pragma unroll
                for (int hh = 0; hh < 2; hh++) {
                    float2 f = __half22float2(r[i][j][hh]);
                    acc[i][j][hh * 2] += f.x;
                    acc[i][j][hh * 2 + 1] += f.y;
                }
    }
    ig_each_pair<MI, NI>(a, row0, col0, [&](int i, int j, int hh, int m, int c) {
        __half *q = a.y + (size_t)m * p.y_ld + c;
        float v0 = acc[i][j][hh * 2], v1 = acc[i][j][hh * 2 + 1];
        if (a.pairs && c + 1 < N) {
            *(__half2 *)q = __halves2half2(k_h(v0), k_h(v1));
        } else {
            q[0] = k_h(v0);
            if (c + 1 < N)
                q[1] = k_h(v1);
        }
    });
}

template <int BM, int BN, int WARPS_M, int WARPS_N, bool VEC>
__global__ void __launch_bounds__(WARPS_M *WARPS_N * 32) k_igemm(ig_args a)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    constexpr int NT = WARPS_M * WARPS_N * 32;
    constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N, MI = WM / 16, NI = WN / 8;
    constexpr unsigned A_STAGE = BM * IG_LDS * 2, B_STAGE = BN * IG_LDS * 2;
    static_assert(MI >= 1 && NI >= 2 && NI % 2 == 0, "warp tile");
    static_assert(BM * IG_CPR % NT == 0 && BN * IG_CPR % NT == 0, "every thread loads whole chunks");
    extern __shared__ __align__(16) unsigned char ig_tiles[];   /* [stages][BM][LDS] A, then B */
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    int wm = warp / WARPS_N, wn = warp % WARPS_N;
    int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    int kt0 = blockIdx.z * a.kper;
    int nk = min(a.kiters, kt0 + a.kper) - kt0;
    const unsigned sA = ig_smem(ig_tiles), sB = sA + IG_STAGES * A_STAGE;
    /* this lane's ldmatrix rows: A rows of its m16 tiles, B rows (output channels) of its n8 pairs */
    const unsigned a_frag = sA + ((wm * WM + (lane & 15)) * IG_LDS + (lane >> 4) * 8) * 2;
    const unsigned b_frag = sB + ((wn * WN + (lane & 7) + ((lane >> 4) << 3)) * IG_LDS + ((lane >> 3) & 1) * 8) * 2;

    ig_row rows[BM * IG_CPR / NT];
#pragma unroll
    for (int i = 0; i < BM * IG_CPR / NT; i++)
        rows[i] = ig_row_of(a, m0 + tid / IG_CPR + i * (NT / IG_CPR));

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int j = 0; j < NI; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[i][j][e] = 0.f;

    ig_kpos q = {};
    if constexpr (VEC) {
        q = ig_kpos_at(a.p, kt0 * IG_BK + (tid % IG_CPR) * 8);
#pragma unroll
        for (int st = 0; st < IG_STAGES - 1; st++)
            if (st < nk)
                ig_load_b<BN, NT>(a, sB + st * B_STAGE, kt0 + st, n0);
        ig_wait_inputs();
        /* the first commit group holds every prefetched weight tile and the first input tile */
#pragma unroll
        for (int st = 0; st < IG_STAGES - 1; st++) {
            if (st < nk) {
                ig_load_a<BM, NT>(a, sA + st * A_STAGE, rows, q);
                ig_kpos_next(a.p, q);
            }
            ig_commit();
        }
    } else {
        ig_wait_inputs();
#pragma unroll
        for (int st = 0; st < IG_STAGES - 1; st++) {
            if (st < nk)
                ig_load<BM, BN, NT, VEC>(a, sA + st * A_STAGE, sB + st * B_STAGE, rows, q, kt0 + st, m0, n0);
            ig_commit();
        }
    }
    int rd = 0, wr = IG_STAGES - 1;
    for (int it = 0; it < nk; it++) {
        ig_wait<IG_STAGES - 2>();
        __syncthreads();
        if (it + IG_STAGES - 1 < nk) {
            ig_load<BM, BN, NT, VEC>(a, sA + wr * A_STAGE, sB + wr * B_STAGE, rows, q, kt0 + it + IG_STAGES - 1, m0, n0);
            if (VEC)
                ig_kpos_next(a.p, q);
        }
        ig_commit();
        wr = wr == IG_STAGES - 1 ? 0 : wr + 1;
        const unsigned ao = a_frag + rd * A_STAGE, bo = b_frag + rd * B_STAGE;
#pragma unroll
        for (int kk = 0; kk < IG_BK; kk += 16) {
            unsigned af[MI][4], bf[NI][2];
#pragma unroll
            for (int i = 0; i < MI; i++)
                ig_ldm4(af[i], ao + (i * 16 * IG_LDS + kk) * 2);
#pragma unroll
            for (int j = 0; j < NI / 2; j++) {
                unsigned r[4];
                ig_ldm4(r, bo + (j * 16 * IG_LDS + kk) * 2);
                bf[2 * j][0] = r[0];
                bf[2 * j][1] = r[1];
                bf[2 * j + 1][0] = r[2];
                bf[2 * j + 1][1] = r[3];
            }
#pragma unroll
            for (int i = 0; i < MI; i++)
#pragma unroll
                for (int j = 0; j < NI; j++)
                    ig_mma(acc[i][j], af[i], bf[j]);
        }
        rd = rd == IG_STAGES - 1 ? 0 : rd + 1;
    }
    ig_wait<0>();
    ig_release_dependents();   /* the next step may start launching; it waits for our stores */

    int g = lane >> 2, t4 = lane & 3;
    const int row0 = m0 + wm * WM + g, col0 = n0 + wn * WN + t4 * 2;
    if (gridDim.z > 1) {
        /* split K: publish this slice's partial sums; the tile's last CTA adds them up */
        const size_t plane = (size_t)a.M * a.p.k;
        float *mine = a.part + blockIdx.z * plane;
        ig_each<MI, NI>(a, acc, row0, col0, [&](float &v, size_t at) { mine[at] = v; });
        __threadfence();
        __syncthreads();
        __shared__ int last;
        int tile = blockIdx.y * gridDim.x + blockIdx.x;
        if (tid == 0) {
            int prev = atomicAdd(&a.counters[tile], 1);
            last = prev == (int)gridDim.z - 1;
            if (last)
                a.counters[tile] = 0;   /* ready for the next launch */
        }
        __syncthreads();
        if (!last)
            return;
        __threadfence();
        /* every slice summed in slice order, this CTA's own from memory too: the result does
         * not depend on which CTA finished last (graph replays are bit-identical) */
        ig_each<MI, NI>(a, acc, row0, col0, [&](float &v, size_t) { v = 0.f; });
        for (int z = 0; z < (int)gridDim.z; z++) {
            const float *slice = a.part + z * plane;
            ig_each<MI, NI>(a, acc, row0, col0, [&](float &v, size_t at) { v += __ldcg(slice + at); });
        }
    }
    ig_epilogue<MI, NI>(a, acc, row0, col0);
#endif
}

static int ig_ceil(int a, int b) { return (a + b - 1) / b; }

/* Tile shapes (rows x channels, warps along each), largest first: 128-row tiles for large
 * images, down to 32 x 32 for the tiny late layers, where the time is one CTA's latency. */
struct ig_cfg {
    int bm, bn;
};
static const ig_cfg IG_CFGS[] = {{128, 64}, {64, 64}, {64, 32}, {32, 32}};   /* warps: sh_k_igemm */

/* Batch-1 convs are latency-bound: the best tile (H100 sweep over the reference models'
 * conv shapes, docs/cuda-notes.md) is the largest one that still gives about 1.5 waves of
 * CTAs, else the smallest; 64-channel tiles only when there are more than 32 channels. K
 * is split only for deep layers (K >= 768) with under 100 CTAs. */
extern "C" int sh_k_igemm_smem(int bm, int bn) { return IG_STAGES * (bm + bn) * IG_LDS * 2; }

extern "C" size_t sh_k_igemm_plan(sh_k_igemm_p *p, int sms, int max_smem)
{
    int M = p->n * p->oh * p->ow, N = p->k, K = p->kh * p->kw * p->c;
    if (sms < 1)
        sms = 1;
    int kiters = ig_ceil(K, IG_BK);
    const ig_cfg *pick = &IG_CFGS[3];
    for (const ig_cfg &c : IG_CFGS) {
        /* 128x64 needs 108 KiB: not on sm_86/sm_89 (99 KiB per block) */
        if ((c.bn == 64 && N <= 32) || sh_k_igemm_smem(c.bm, c.bn) > max_smem)
            continue;
        if ((long)ig_ceil(M, c.bm) * ig_ceil(N, c.bn) * 2 >= 3L * sms) {
            pick = &c;
            break;
        }
    }
    p->bm = pick->bm;
    p->bn = pick->bn;
    p->splits = 1;
    long ctas = (long)ig_ceil(M, p->bm) * ig_ceil(N, p->bn);
    if (ctas < 100 && kiters >= 12) {
        long sp = 2L * sms / ctas;
        if (sp > kiters / 4)
            sp = kiters / 4;
        p->splits = (int)(sp > 4 ? 4 : sp < 1 ? 1 : sp);
        p->splits = ig_ceil(kiters, ig_ceil(kiters, p->splits));   /* no empty slices */
    }
    return p->splits > 1 ? (size_t)p->splits * M * N * sizeof(float) : 0;
}

/* The plain-load path takes at most 64-row tiles: at 128 rows it would spill to the stack,
 * and shoal's kernels run with a 0-byte device stack (cuda_impl.h). */
static int ig_rows(const sh_k_igemm_p *p, bool vec) { return vec || p->bm < 64 ? p->bm : 64; }

extern "C" int sh_k_igemm_counters(const sh_k_igemm_p *p)
{
    if (p->splits <= 1)
        return 0;
    return ig_ceil(p->n * p->oh * p->ow, ig_rows(p, false)) * ig_ceil(p->k, p->bn);
}

template <int BM, int BN> constexpr int ig_smem_bytes() { return IG_STAGES * (BM + BN) * IG_LDS * 2; }
static_assert(ig_smem_bytes<32, 32>() <= 99 * 1024, "the smallest tile must fit every sm_80+ card");

template <int BM, int BN, int WM, int WN, bool VEC>
static cudaError_t ig_go(const ig_args &a, cudaStream_t s)
{
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(ig_ceil(a.M, BM), ig_ceil(a.p.k, BN), a.p.splits > 1 ? a.p.splits : 1);
    cfg.blockDim = dim3(WM * WN * 32);
    cfg.dynamicSmemBytes = ig_smem_bytes<BM, BN>();
    cfg.stream = s;
    cudaLaunchAttribute pdl[1];
    pdl[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    pdl[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = pdl;
    cfg.numAttrs = a.p.pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, k_igemm<BM, BN, WM, WN, VEC>, a);
}

template <int BM, int BN, int WM, int WN, bool VEC>
static cudaError_t ig_allow(int max_smem)
{
    if (ig_smem_bytes<BM, BN>() > max_smem)
        return cudaSuccess;   /* sh_k_igemm_plan never picks it on this card */
    return cudaFuncSetAttribute(k_igemm<BM, BN, WM, WN, VEC>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                ig_smem_bytes<BM, BN>());
}

/* Tiles above 48 KiB of shared memory must be allowed per kernel, once, before any launch
 * (and so before any graph capture); those above the card's opt-in limit are left out. */
extern "C" cudaError_t sh_k_igemm_init(int max_smem)
{
    cudaError_t e = ig_allow<128, 64, 4, 2, true>(max_smem);
    if (e == cudaSuccess) e = ig_allow<64, 64, 2, 2, true>(max_smem);
    if (e == cudaSuccess) e = ig_allow<64, 32, 2, 2, true>(max_smem);
    if (e == cudaSuccess) e = ig_allow<32, 32, 2, 2, true>(max_smem);
    if (e == cudaSuccess) e = ig_allow<64, 64, 2, 2, false>(max_smem);
    if (e == cudaSuccess) e = ig_allow<64, 32, 2, 2, false>(max_smem);
    if (e == cudaSuccess) e = ig_allow<32, 32, 2, 2, false>(max_smem);
    return e;
}

extern "C" cudaError_t sh_k_igemm(void *y, const void *x, const void *w, const void *bias, const void *res,
                                  const sh_k_igemm_p *p, void *scratch, int *counters, cudaStream_t s)
{
    ig_args a;
    a.x = (const __half *)x;
    a.w = (const __half *)w;
    a.bias = (const __half *)bias;
    a.res = (const __half *)res;
    a.y = (__half *)y;
    a.part = (float *)scratch;
    a.counters = counters;
    a.p = *p;
    a.M = p->n * p->oh * p->ow;
    a.K = p->kh * p->kw * p->c;
    a.kiters = ig_ceil(a.K, IG_BK);
    a.kper = p->splits > 1 ? ig_ceil(a.kiters, p->splits) : a.kiters;
    if (p->splits > 1 && (!scratch || !counters))
        return cudaErrorInvalidValue;
    a.pairs = p->y_ld % 2 == 0 && ((uintptr_t)y & 3) == 0 &&
              (!res || (p->r_ld % 2 == 0 && ((uintptr_t)res & 3) == 0));
    bool vec = p->c % 8 == 0 && p->x_ld % 8 == 0 && ((uintptr_t)x & 15) == 0 && ((uintptr_t)w & 15) == 0;
    int bm = ig_rows(p, vec);
    if (vec) {
        if (bm == 128)
            return ig_go<128, 64, 4, 2, true>(a, s);
        if (bm == 64)
            return p->bn == 64 ? ig_go<64, 64, 2, 2, true>(a, s) : ig_go<64, 32, 2, 2, true>(a, s);
        return ig_go<32, 32, 2, 2, true>(a, s);
    }
    if (bm == 64)
        return p->bn == 64 ? ig_go<64, 64, 2, 2, false>(a, s) : ig_go<64, 32, 2, 2, false>(a, s);
    return ig_go<32, 32, 2, 2, false>(a, s);
}
