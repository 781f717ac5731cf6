#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/matmul.cuh"

/* A plain shared-memory tiled GEMM (64x64 or 32x32 tiles), fp16 in, fp32 accumulate, any strides (so
 * transposes and broadcast batches cost nothing), bias + activation in the epilogue.
 * MatMul/Gemm are a few small heads in the vision models we host; a cuBLAS handle costs
 * ~66 MiB of device memory per process, far more than these layers could ever save. */
/* K step per tile: a thread stages TK * T / threads elements of each operand. 64 for the
 * 32x32 tiles: the small GEMMs they serve are bound by one K step's load latency, so fewer,
 * deeper steps (and more loads in flight per thread) pay. */
template <int T> __host__ __device__ constexpr int k_gemm_tk() { return T == 64 ? 32 : 64; }

/* Which tile element (k row kk, m/n column ii) staging slot e holds. Neighbouring threads
 * take neighbouring addresses: along m/n when that is the operand's contiguous axis, along K
 * when K is (A row-major, or B transposed: the attention GEMMs of YOLO11's C2PSA, whose loads
 * were otherwise 400 elements apart). */
template <int T, int TK>
__device__ __forceinline__ void k_gemm_slot(int e, bool k_fast, int &kk, int &ii)
{
    if (k_fast) {
        kk = e % TK;
        ii = e / TK;
    } else {
        kk = e / T;
        ii = e % T;
    }
}

/* This thread's share of the A and B tiles at K offset k0, into registers: the next tile's
 * loads are in flight while the current one is multiplied (at batch 1 these GEMMs are a few
 * CTAs deep in K, so each K step's load latency would otherwise be paid in full). */
template <int T, int NT, int PER>
__device__ __forceinline__ void k_gemm_fetch(float (&ra)[PER], float (&rb)[PER], const __half *A, const __half *B,
                                             const sh_k_gemm_p &p, int row0, int col0, int k0, bool a_kf, bool b_kf)
{
    constexpr int TK = k_gemm_tk<T>();
#pragma unroll
    for (int u = 0; u < PER; u++) {
        int e = threadIdx.x + u * NT, kk, ii;
        k_gemm_slot<T, TK>(e, a_kf, kk, ii);
        int gi = row0 + ii, gk = k0 + kk;
        ra[u] = (gi < p.m && gk < p.k) ? __half2float(A[(long)gi * p.a_rs + (long)gk * p.a_cs]) : 0.f;
        k_gemm_slot<T, TK>(e, b_kf, kk, ii);
        int gj = col0 + ii;
        gk = k0 + kk;
        rb[u] = (gj < p.n && gk < p.k) ? __half2float(B[(long)gk * p.b_rs + (long)gj * p.b_cs]) : 0.f;
    }
}

/* A T x T output tile per CTA of (T/R)^2 threads, R x R outputs each. */
template <int T, int R>
__global__ void __launch_bounds__((T / R) * (T / R)) k_gemm(__half *y, const __half *a, const __half *b,
                                                            const __half *c, sh_k_gemm_p p)
{
    k_pdl_begin();
    constexpr int NT = (T / R) * (T / R), TK = k_gemm_tk<T>(), PER = TK * T / NT;
    static_assert(TK * T % NT == 0, "tile staging");
    __shared__ float as[TK][T + 1];
    __shared__ float bs[TK][T + 1];
    int z = blockIdx.z;
    long ao = 0, bo = 0;
    int r = z;
#pragma unroll
    for (int d = 3; d >= 0; d--) {
        if (d >= p.nbd)
            continue;
        int q = r % p.bdim[d];
        r /= p.bdim[d];
        ao += (long)q * p.a_bs[d];
        bo += (long)q * p.b_bs[d];
    }
    const __half *A = a + ao, *B = b + bo;
    __half *Y = y + (long)z * p.m * p.n;
    int tx = threadIdx.x % (T / R), ty = threadIdx.x / (T / R);
    int row0 = blockIdx.y * T, col0 = blockIdx.x * T;
    float acc[R][R] = {};
    float ra[PER], rb[PER];
    const bool a_kf = p.a_cs == 1 && p.a_rs != 1, b_kf = p.b_rs == 1 && p.b_cs != 1;
    k_gemm_fetch<T, NT, PER>(ra, rb, A, B, p, row0, col0, 0, a_kf, b_kf);
    for (int k0 = 0; k0 < p.k; k0 += TK) {
#pragma unroll
        for (int u = 0; u < PER; u++) {
            int e = threadIdx.x + u * NT, kk, ii;
            k_gemm_slot<T, TK>(e, a_kf, kk, ii);
            as[kk][ii] = ra[u];
            k_gemm_slot<T, TK>(e, b_kf, kk, ii);
            bs[kk][ii] = rb[u];
        }
        __syncthreads();
        if (k0 + TK < p.k)
            k_gemm_fetch<T, NT, PER>(ra, rb, A, B, p, row0, col0, k0 + TK, a_kf, b_kf);
#pragma unroll
        for (int kk = 0; kk < TK; kk++) {
            float av[R], bv[R];
#pragma unroll
            for (int u = 0; u < R; u++) {
                av[u] = as[kk][ty * R + u];
                bv[u] = bs[kk][tx * R + u];
            }
#pragma unroll
            for (int u = 0; u < R; u++)
#pragma unroll
                for (int v = 0; v < R; v++)
                    acc[u][v] += av[u] * bv[v];
        }
        __syncthreads();
    }
#pragma unroll
    for (int u = 0; u < R; u++) {
        int gi = row0 + ty * R + u;
        if (gi >= p.m)
            continue;
#pragma unroll
        for (int v = 0; v < R; v++) {
            int gj = col0 + tx * R + v;
            if (gj >= p.n)
                continue;
            float r = p.alpha * acc[u][v];
            if (c)
                r += p.beta * __half2float(c[(long)gi * p.c_rs + (long)gj * p.c_cs]);
            Y[(long)gi * p.n + gj] = k_h(k_act(r, p.act));
        }
    }
}

extern "C" cudaError_t sh_k_gemm(void *y, const void *a, const void *b, const void *c,
                                 const sh_k_gemm_p *p, sh_k_stream s)
{
    /* 64x64 tiles, or 32x32 where 64x64 would leave most of the device idle (the attention
     * GEMMs of a YOLO11 C2PSA block: 14 CTAs at 64x64, each 13 K steps deep), those with 2x2
     * outputs a thread: 8 warps a CTA hide the K loop's load latency, which 2 warps did not */
    long big = (long)((p->n + 63) / 64) * ((p->m + 63) / 64) * p->batch;
    if (big >= 64) {
        dim3 grid((unsigned)((p->n + 63) / 64), (unsigned)((p->m + 63) / 64), (unsigned)p->batch);
        return k_launch(k_gemm<64, 4>, grid, 256, s, (__half *)y, (const __half *)a, (const __half *)b,
                        (const __half *)c, *p);
    }
    dim3 grid((unsigned)((p->n + 31) / 32), (unsigned)((p->m + 31) / 32), (unsigned)p->batch);
    return k_launch(k_gemm<32, 2>, grid, 256, s, (__half *)y, (const __half *)a, (const __half *)b, (const __half *)c,
                    *p);
}
