#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/elementwise.cuh"

__global__ void k_unary(__half *y, const __half *x, int n, sh_k_act act)
{
    k_pdl_begin();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        y[i] = k_h(k_act(__half2float(x[i]), act));
}

extern "C" cudaError_t sh_k_unary(void *y, const void *x, int n, sh_k_act act, sh_k_stream s)
{
    return k_launch(k_unary, k_blocks(n, 256), 256, s, (__half *)y, (const __half *)x, n, act);
}

__device__ __forceinline__ float k_binop(float a, float b, int op)
{
    switch (op) {
    case SH_K_ADD: return a + b;
    case SH_K_SUB: return a - b;
    case SH_K_MUL: return a * b;
    default: return a / b;
    }
}

/* Same-shape operands: no index arithmetic at all. */
__global__ void k_binary_flat(__half *y, const __half *a, const __half *b, int n, int op,
                              sh_k_act act)
{
    k_pdl_begin();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        y[i] = k_h(k_act(k_binop(__half2float(a[i]), __half2float(b[i]), op), act));
}

/* General broadcasting; the host has merged adjacent dims so ndim is as small as it gets. */
__global__ void k_binary_bcast(__half *y, const __half *a, const __half *b, int n, int op,
                               sh_k_bcast bc, sh_k_act act)
{
    k_pdl_begin();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        unsigned r = (unsigned)i;   /* unsigned: a cheaper division than the signed one */
        int oa = 0, ob = 0;
        /* unrolled with constant indices so the parameter arrays stay out of local memory */
#pragma unroll
        for (int d = SH_K_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= bc.ndim)
                continue;
            unsigned next = r / (unsigned)bc.shape[d];
            int q = (int)(r - next * (unsigned)bc.shape[d]);
            r = next;
            oa += q * bc.sa[d];
            ob += q * bc.sb[d];
        }
        y[i] = k_h(k_act(k_binop(__half2float(a[oa]), __half2float(b[ob]), op), act));
    }
}

extern "C" cudaError_t sh_k_binary(void *out, const void *a, const void *b, int n, int op,
                                   const sh_k_bcast *bc, sh_k_act act, sh_k_stream s)
{
    if (!bc)
        return k_launch(k_binary_flat, k_blocks(n, 256), 256, s, (__half *)out, (const __half *)a, (const __half *)b,
                        n, op, act);
    return k_launch(k_binary_bcast, k_blocks(n, 256), 256, s, (__half *)out, (const __half *)a, (const __half *)b, n,
                    op, *bc, act);
}
