/* The own conv on Hopper (sm_90a): the same implicit GEMM, tiles and fused epilogue as the
 * mma.sync kernel (igemm.cu), but the tensor-core work is one warpgroup-wide wgmma per 16-wide
 * K slice, reading both tiles straight from shared memory. At batch 1 a conv has too few CTAs
 * to hide latency, and the mma.sync loop spent most of its instructions and its serial chain
 * on ldmatrix and fragment shuffles (docs/cuda-notes.md v4); wgmma takes those off the SM.
 * Tiles are stored with the hardware's 128-byte swizzle (ig_chunk_at<true>) so the shared
 * memory descriptors can name them; each warpgroup owns 64 rows of the tile. */
#include "backends/cuda/igemm_common.cuh"

#include <stdint.h>

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define IG_WG_BUILT 1
#else
#define IG_WG_BUILT 0
#endif

/* Read by the host (sh_k_igemm_init): 1 in the sm_90a image, 0 in the others, so a build
 * without sm_90a machine code never launches the empty kernel below. */
__device__ int ig_wg_built = IG_WG_BUILT;

#if IG_WG_BUILT
/* A K-major tile of 128-byte rows in 1024-byte swizzle atoms (8 rows): start address,
 * the (unused) leading offset, 1024 bytes between 8-row groups, 128-byte swizzle. */
__device__ __forceinline__ uint64_t wg_desc(unsigned saddr)
{
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | (uint64_t)1 << 16 | (uint64_t)(1024 >> 4) << 32 | (uint64_t)1 << 62;
}

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wg_wait() { asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory"); }

/* cp.async wrote the tiles through the generic proxy; wgmma reads them through the async one */
__device__ __forceinline__ void wg_fence_smem() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

/* The accumulators are the wgmma's until wgmma.wait_group: keep the compiler from moving
 * any read of them above it. */
template <int NJ> __device__ __forceinline__ void wg_fence_acc(float (&d)[NJ][4])
{
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            asm volatile("" : "+f"(d[j][e])::"memory");
}

/* D[64 x N] += A[64 x 16] * B[16 x N], both operands K-major in shared memory; accumulator
 * j*4+e of a thread is row 16*warp + lane/4 (+8 for e >= 2), column 8j + 2*(lane%4) + e%2:
 * the mma.sync fragment layout, so the epilogue is shared. */
__device__ __forceinline__ void wg_mma(float (&d)[2][4], uint64_t da, uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %10, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7"
                 "}, %8, %9, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3])
                 : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wg_mma(float (&d)[4][4], uint64_t da, uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15"
                 "}, %16, %17, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                   "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3])
                 : "l"(da), "l"(db), "r"(1));
}

__device__ __forceinline__ void wg_mma(float (&d)[8][4], uint64_t da, uint64_t db)
{
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
                 "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
                 "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
                 "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
                 : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]), "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),
                   "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]), "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),
                   "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]), "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),
                   "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]), "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])
                 : "l"(da), "l"(db), "r"(1));
}
#endif

/* Each step waits for its own wgmma: letting it run into the next step (one more stage, the
 * buffer two steps back refilled) measured slower (sweep 2029 -> 2078 us, navigation +0.1 ms). */
template <int BM, int BN>
__global__ void __launch_bounds__(BM * 2) k_igemm_wg(ig_args a)
{
#if IG_WG_BUILT
    constexpr int NT = BM * 2, NJ = BN / 8;   /* BM / 64 warpgroups of 128 threads */
    constexpr int S = IG_STAGES, PRE = IG_STAGES - 1;   /* stages, loaded ahead */
    constexpr unsigned A_STAGE = BM * 128, B_STAGE = BN * 128;
    static_assert(IG_BK == 64, "a tile row is one 128-byte swizzle row");
    static_assert(BM * IG_CPR % NT == 0 && BN * IG_CPR % NT == 0, "every thread loads whole chunks");
    extern __shared__ __align__(16) unsigned char wg_tiles[];
    const unsigned sA = (ig_smem(wg_tiles) + 1023) & ~1023u, sB = sA + S * A_STAGE;
    int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    int m0 = blockIdx.x * BM, n0 = blockIdx.y * BN;
    int kt0 = blockIdx.z * a.kper;
    int nk = min(a.kiters, kt0 + a.kper) - kt0;

    ig_row rows[BM * IG_CPR / NT];
#pragma unroll
    for (int i = 0; i < BM * IG_CPR / NT; i++)
        rows[i] = ig_row_of(a, m0 + tid / IG_CPR + i * (NT / IG_CPR));
    float acc[1][NJ][4];
#pragma unroll
    for (int j = 0; j < NJ; j++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            acc[0][j][e] = 0.f;

    ig_kpos q = ig_kpos_at(a.p, kt0 * IG_BK + (tid % IG_CPR) * 8);
#pragma unroll
    for (int st = 0; st < PRE; st++)
        if (st < nk)
            ig_load_b<BN, NT, true>(a, sB + st * B_STAGE, kt0 + st, n0);
    ig_wait_inputs();
#pragma unroll
    for (int st = 0; st < PRE; st++) {
        if (st < nk) {
            ig_load_a<BM, NT, true>(a, sA + st * A_STAGE, rows, q);
            ig_kpos_next(a.p, q);
        }
        ig_commit();
    }
    const unsigned a_rows = (unsigned)(warp >> 2) * 64 * 128;   /* this warpgroup's 64 rows */
    int rd = 0, wr = PRE;
    for (int it = 0; it < nk; it++) {
        ig_wait<PRE - 1>();
        wg_fence_smem();
        /* stage `it` landed for all; every warpgroup is done with the stage loaded next */
        __syncthreads();
        if (it + PRE < nk) {
            ig_load_a<BM, NT, true>(a, sA + wr * A_STAGE, rows, q);
            ig_load_b<BN, NT, true>(a, sB + wr * B_STAGE, kt0 + it + PRE, n0);
            ig_kpos_next(a.p, q);
        }
        ig_commit();
        wr = wr == S - 1 ? 0 : wr + 1;
        const unsigned at = sA + rd * A_STAGE + a_rows, bt = sB + rd * B_STAGE;
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < IG_BK / 16; kk++)
            wg_mma(acc[0], wg_desc(at + kk * 32), wg_desc(bt + kk * 32));
        wg_commit();
        wg_wait<0>();
        wg_fence_acc(acc[0]);
        rd = rd == S - 1 ? 0 : rd + 1;
    }
    ig_wait<0>();
    ig_release_dependents();
    const int row0 = m0 + (warp >> 2) * 64 + (warp & 3) * 16 + (lane >> 2), col0 = n0 + (lane & 3) * 2;
    ig_finish<1, NJ>(a, acc, row0, col0);
#endif
}

template <int BM, int BN> constexpr int wg_smem_bytes() { return IG_STAGES * (BM + BN) * 128 + 1024; }

template <int BM, int BN>
static cudaError_t wg_go(const ig_args &a, cudaStream_t s)
{
    return ig_launch(k_igemm_wg<BM, BN>, a, BM, BN, BM * 2, wg_smem_bytes<BM, BN>(), s);
}

template <int BM, int BN> static cudaError_t wg_allow()
{
    return cudaFuncSetAttribute(k_igemm_wg<BM, BN>, cudaFuncAttributeMaxDynamicSharedMemorySize, wg_smem_bytes<BM, BN>());
}

cudaError_t ig_wg_init(int max_smem, int *available)
{
    *available = 0;
    int built = 0;
    cudaError_t e = cudaMemcpyFromSymbol(&built, ig_wg_built, sizeof built);
    if (e != cudaSuccess || !built || max_smem < wg_smem_bytes<128, 64>())
        return e;
    if ((e = wg_allow<128, 64>()) == cudaSuccess && (e = wg_allow<64, 64>()) == cudaSuccess &&
        (e = wg_allow<64, 32>()) == cudaSuccess && (e = wg_allow<64, 16>()) == cudaSuccess)
        *available = 1;
    return e;
}

cudaError_t ig_wg_launch(const ig_args &a, cudaStream_t s)
{
    if (a.p.bm == 128)
        return wg_go<128, 64>(a, s);
    if (a.p.bn == 64)
        return wg_go<64, 64>(a, s);
    return a.p.bn == 32 ? wg_go<64, 32>(a, s) : wg_go<64, 16>(a, s);
}
