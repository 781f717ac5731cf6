/* Implicit GEMM: output pixels are the M rows, output channels the N columns, and
 * (kernel row, kernel column, input channel) the K axis, which is exactly the KRSC weight
 * layout, so a weight tile is a plain 2-D tile and an input tile is gathered on the fly.
 * Each warp owns a block of m16n8k16 MMAs; tiles are staged through shared memory by
 * cp.async in a three-deep pipeline. Small grids split K across CTAs; the last CTA of a
 * tile (a counter per tile) sums the partials. The tile shape is chosen per conv at compile
 * time by a cost model (sh_k_igemm_plan). On sm_90a the vector path runs the wgmma kernel
 * of igemm_wg.cu instead. */
#include "backends/cuda/igemm_common.cuh"

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
    ig_finish<MI, NI>(a, acc, row0, col0);
#endif
}

static int ig_ceil(int a, int b) { return (a + b - 1) / b; }

/* Tile shapes (rows x channels, warps along each), largest first: 128-row tiles for large
 * images, down to 32 x 32 for the tiny late layers, where the time is one CTA's latency. */
struct ig_cfg {
    int bm, bn;
};
static const ig_cfg IG_CFGS[] = {{128, 64}, {64, 64}, {64, 32}, {32, 32}};   /* warps: sh_k_igemm */
static const ig_cfg IG_WG_CFGS[] = {{128, 64}, {64, 64}, {64, 32}, {64, 16}};   /* 64 rows a warpgroup */

extern "C" int sh_k_igemm_smem(int bm, int bn) { return IG_STAGES * (bm + bn) * IG_LDS * 2; }

/* Batch-1 convs are latency-bound: the best tile (H100 sweep over the reference models'
 * conv shapes, docs/cuda-notes.md) is the largest one that still gives about 1.5 waves of
 * CTAs, else the smallest; 64-channel tiles only when there are more than 32 channels. With
 * one or two K steps a CTA is mostly its loads' latency: there, twice the CTAs pay. */
static ig_cfg ig_pick(const ig_cfg *cfgs, int n_cfgs, bool wg, int M, int N, int kiters, int sms, int max_smem)
{
    long want = (3L * sms + 1) / 2 * (kiters <= 2 && wg ? 2 : 1);
    for (int i = 0; i < n_cfgs; i++) {
        const ig_cfg &c = cfgs[i];
        /* 128x64 needs 108 KiB: not on sm_86/sm_89 (99 KiB per block); the wgmma tiles all
         * fit an sm_90 (ig_wg_init) */
        if ((c.bn >= 64 && N <= c.bn / 2) || (!wg && sh_k_igemm_smem(c.bm, c.bn) > max_smem))
            continue;
        if ((long)ig_ceil(M, c.bm) * ig_ceil(N, c.bn) >= want)
            return c;
    }
    return cfgs[n_cfgs - 1];
}

/* The wgmma kernel, where there is one, takes every vector-path conv: 1.1-1.5x faster than
 * the mma.sync kernel from the 20x20 to the 320x320 layers, its 64x16 tiles giving the small
 * late layers the CTAs that 32x32 tiles gave before (sweep: docs/cuda-notes.md v5). K is
 * split only for deep layers (K >= 768) with under 100 CTAs. */
extern "C" size_t sh_k_igemm_plan(sh_k_igemm_p *p, int sms, int max_smem)
{
    int M = p->n * p->oh * p->ow, N = p->k, K = p->kh * p->kw * p->c;
    if (sms < 1)
        sms = 1;
    int kiters = ig_ceil(K, IG_BK);
    ig_cfg pick = p->wg ? ig_pick(IG_WG_CFGS, 4, true, M, N, kiters, sms, max_smem)
                        : ig_pick(IG_CFGS, 4, false, M, N, kiters, sms, max_smem);
    p->bm = pick.bm;
    p->bn = pick.bn;
    p->splits = 1;
    long ctas = (long)ig_ceil(M, p->bm) * ig_ceil(N, p->bn);
    if (ctas < 100 && kiters >= 12) {
        long sp = 2L * sms / ctas;
        if (sp > kiters / 4)
            sp = kiters / 4;
        /* the wgmma K loop is quick enough that more than two slices' partial sums cost more
         * than they save (sweep: 128 channels at 20x20, 3x3: split 4 8.4 us, 2 7.8) */
        int most = p->wg ? 2 : 4;
        p->splits = (int)(sp > most ? most : sp < 1 ? 1 : sp);
        p->splits = ig_ceil(kiters, ig_ceil(kiters, p->splits));   /* no empty slices */
    }
    return p->splits > 1 ? (size_t)p->splits * M * N * sizeof(float) : 0;
}

/* The tile a launch uses: the plan's, except on the plain-load path (channel counts off a
 * multiple of 8, or unaligned pointers seen at launch), which runs the mma.sync kernel with at
 * most 64 x 64 tiles: at 128 rows it would spill to the stack, and shoal's kernels run with a
 * 0-byte device stack (cuda_impl.h). */
static void ig_launch_tile(const sh_k_igemm_p *p, bool vec, int *bm, int *bn)
{
    *bm = vec || p->bm < 64 ? p->bm : 64;
    *bn = vec || p->bn < 64 ? p->bn : 64;
}

/* Either path may run (vec is known at launch only): as many counters as the larger grid. */
extern "C" int sh_k_igemm_counters(const sh_k_igemm_p *p)
{
    if (p->splits <= 1)
        return 0;
    int most = 0;
    for (int vec = 0; vec < 2; vec++) {
        int bm, bn;
        ig_launch_tile(p, vec, &bm, &bn);
        int tiles = ig_ceil(p->n * p->oh * p->ow, bm) * ig_ceil(p->k, bn);
        most = tiles > most ? tiles : most;
    }
    return most;
}

template <int BM, int BN> constexpr int ig_smem_bytes() { return IG_STAGES * (BM + BN) * IG_LDS * 2; }
static_assert(ig_smem_bytes<32, 32>() <= 99 * 1024, "the smallest tile must fit every sm_80+ card");

template <int BM, int BN, int WM, int WN, bool VEC>
static cudaError_t ig_go(const ig_args &a, cudaStream_t s)
{
    return ig_launch(k_igemm<BM, BN, WM, WN, VEC>, a, BM, BN, WM * WN * 32, ig_smem_bytes<BM, BN>(), s);
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
extern "C" cudaError_t sh_k_igemm_init(int max_smem, int *wgmma)
{
    cudaError_t e = ig_wg_init(max_smem, wgmma);
    if (e == cudaSuccess) e = ig_allow<128, 64, 4, 2, true>(max_smem);
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
    if (vec && p->wg)
        return ig_wg_launch(a, s);
    int bm, bn;
    ig_launch_tile(p, vec, &bm, &bn);
    if (vec) {
        if (bm == 128)
            return ig_go<128, 64, 4, 2, true>(a, s);
        if (bm == 64)
            return bn == 64 ? ig_go<64, 64, 2, 2, true>(a, s) : ig_go<64, 32, 2, 2, true>(a, s);
        return ig_go<32, 32, 2, 2, true>(a, s);
    }
    if (bm == 64)
        return bn == 64 ? ig_go<64, 64, 2, 2, false>(a, s) : ig_go<64, 32, 2, 2, false>(a, s);
    return ig_go<32, 32, 2, 2, false>(a, s);
}
