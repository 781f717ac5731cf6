/* Device pieces shared by the own conv's two kernels: the mma.sync one (igemm.cu, sm_80+)
 * and the wgmma one (igemm_wg.cu, sm_90a): arguments, the im2col tile loads, PDL, and the
 * fused epilogue. Included only by those two files. */
#ifndef SHOAL_CUDA_IGEMM_COMMON_CUH
#define SHOAL_CUDA_IGEMM_COMMON_CUH

#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/igemm.cuh"

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

/* Byte offset of a tile's 16-byte chunk (row, kc = its first K index) inside a stage. The
 * mma.sync kernel pads rows to IG_LDS (conflict-free ldmatrix); the wgmma kernel stores
 * 128-byte rows with the 16-byte chunks of row r permuted by XOR (r mod 8) - the hardware's
 * 128-byte swizzle, which its shared-memory descriptors name. */
template <bool SWIZZLE> __device__ __forceinline__ unsigned ig_chunk_at(int row, int kc)
{
    if constexpr (SWIZZLE)
        return (unsigned)(row * 128 + (((kc >> 3) ^ (row & 7)) << 4));
    else
        return (unsigned)((row * IG_LDS + kc) * 2);
}

/* The weight (B) tile of K step kt, vector path: a plain 2-D tile of the KRSC weights. */
template <int BN, int NT, bool SWIZZLE = false>
__device__ __forceinline__ void ig_load_b(const ig_args &a, unsigned sB, int kt, int n0)
{
    int tid = threadIdx.x, kc = (tid % IG_CPR) * 8, kidx = kt * IG_BK + kc;
    bool kin = kidx < a.K;
#pragma unroll
    for (int i = 0; i < BN * IG_CPR / NT; i++) {
        int row = tid / IG_CPR + i * (NT / IG_CPR);
        bool ok = n0 + row < a.p.k && kin;
        /* select the offset, not the pointer: a pointer select compiles to a branch per chunk */
        ig_cp16(sB + ig_chunk_at<SWIZZLE>(row, kc), a.w + (ok ? (n0 + row) * a.K + kidx : 0), ok);
    }
}

/* The input (A) tile of the K step at this thread's chunk position q, vector path. */
template <int BM, int NT, bool SWIZZLE = false>
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
        ig_cp16(sA + ig_chunk_at<SWIZZLE>(row, kc), a.x + (ok ? rows[i].off + tap : 0), ok);
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

/* f(value, index in a [M][N] plane) for every accumulator of this thread inside the output
 * (fragment rows row0 + 16i (+8), channels col0 + 8j (+1)). */
template <int MI, int NI, class F>
__device__ __forceinline__ void ig_each(const ig_args &a, float (&acc)[MI][NI][4], int row0, int col0, F f)
{
    ig_each_pair<MI, NI>(a, row0, col0, [&](int i, int j, int hh, int m, int c) {
        f(acc[i][j][hh * 2], (size_t)m * a.p.k + c);
        if (c + 1 < a.p.k)
            f(acc[i][j][hh * 2 + 1], (size_t)m * a.p.k + c + 1);
    });
}

/* Where the epilogue puts GEMM element (m, c): y + ig_row_off(m) + ig_col_off(c). Plainly
 * pixel m's row of y; with p.up_h (a transposed conv as a GEMM, igemm.cuh) the pixel of the
 * upsampled output that column c lands on. Split in a row and a column part so the divisions
 * are paid once per fragment row and column, not per stored pair. */
__device__ __forceinline__ size_t ig_row_off(const sh_k_igemm_p &p, int m)
{
    if (!p.up_h)
        return (size_t)m * p.y_ld;
    int w = m % p.ow, t = m / p.ow, h = t % p.oh, img = t / p.oh;
    return ((((size_t)img * p.oh + h) * p.up_h) * ((size_t)p.ow * p.up_w) + (size_t)w * p.up_w) * p.y_ld;
}

__device__ __forceinline__ size_t ig_col_off(const sh_k_igemm_p &p, int c)
{
    if (!p.up_h)
        return (size_t)c;
    int cout = p.k / (p.up_h * p.up_w), ij = c / cout, co = c - ij * cout;
    int i = ij / p.up_w, j = ij - i * p.up_w;
    return ((size_t)i * p.ow * p.up_w + j) * p.y_ld + co;
}

__device__ __forceinline__ int ig_bias_at(const sh_k_igemm_p &p, int c)
{
    return p.up_h ? c % (p.k / (p.up_h * p.up_w)) : c;
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
        /* c is even and an upsampling GEMM's channel count too: c + 1 is in the same pixel */
        int bc = ig_bias_at(p, c);
        b0[j] = a.bias && c < N ? __half2float(__ldg(a.bias + bc)) : 0.f;
        b1[j] = a.bias && c + 1 < N ? __half2float(__ldg(a.bias + bc + 1)) : 0.f;
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
    size_t roff[MI][2], coff[NI];
#pragma unroll
    for (int i = 0; i < MI; i++)
#pragma unroll
        for (int hh = 0; hh < 2; hh++)
            roff[i][hh] = ig_row_off(p, row0 + i * 16 + hh * 8);
#pragma unroll
    for (int j = 0; j < NI; j++)
        coff[j] = ig_col_off(p, col0 + j * 8);
    ig_each_pair<MI, NI>(a, row0, col0, [&](int i, int j, int hh, int m, int c) {
        __half *q = a.y + roff[i][hh] + coff[j];
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

/* Launches a conv kernel over a's grid of bm x bn tiles (K split over gridDim.z), as a
 * programmatic dependent of the previous step when a.p.pdl. */
static inline cudaError_t ig_launch(void (*kernel)(ig_args), const ig_args &a, int bm, int bn, int threads,
                                    int smem, cudaStream_t s)
{
    dim3 grid((a.M + bm - 1) / bm, (a.p.k + bn - 1) / bn, a.p.splits > 1 ? a.p.splits : 1);
    return k_launch_ex(kernel, grid, dim3(threads), (size_t)smem, s, a.p.pdl != 0, a);
}

/* The wgmma kernel (igemm_wg.cu): whether this build and device have it (allowing its large
 * tiles' shared memory), and its launch for a vector-path conv planned with p.wg. */
cudaError_t ig_wg_init(int max_smem, int *available);
cudaError_t ig_wg_launch(const ig_args &a, cudaStream_t s);

/* The tile's end: with K split across CTAs (gridDim.z > 1) each publishes its partial sums and
 * the tile's last CTA adds them up; then the fused epilogue writes the tile. */
template <int MI, int NI>
__device__ __forceinline__ void ig_finish(const ig_args &a, float (&acc)[MI][NI][4], int row0, int col0)
{
    if (gridDim.z > 1) {
        /* split K: publish this slice's partial sums; the tile's last CTA adds them up */
        const size_t plane = (size_t)a.M * a.p.k;
        float *mine = a.part + blockIdx.z * plane;
        ig_each<MI, NI>(a, acc, row0, col0, [&](float &v, size_t at) { mine[at] = v; });
        __threadfence();
        __syncthreads();
        __shared__ int last;
        int tile = blockIdx.y * gridDim.x + blockIdx.x;
        if (threadIdx.x == 0) {
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
}

#endif
