#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/copy.cuh"

/* One kernel serves slice, split, concat, transpose, expand, gather and pad: every one is a
 * copy between two strided views. */
__global__ void k_copy_strided(__half *dst, const __half *src, int n, sh_k_copy p)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
        int r = i, od = p.dst_off, os = p.src_off;
#pragma unroll
        for (int d = SH_K_MAX_DIMS - 1; d >= 0; d--) {
            if (d >= p.ndim)
                continue;
            int q = r % p.shape[d];
            r /= p.shape[d];
            od += q * p.dst_stride[d];
            os += q * p.src_stride[d];
        }
        dst[od] = src[os];
    }
}

extern "C" cudaError_t sh_k_copy_strided(void *dst, const void *src, const sh_k_copy *p,
                                         cudaStream_t s)
{
    int n = 1;
    for (int d = 0; d < p->ndim; d++)
        n *= p->shape[d];
    if (n <= 0)
        return cudaSuccess;
    k_copy_strided<<<k_blocks(n, 256), 256, 0, s>>>((__half *)dst, (const __half *)src, n, *p);
    return cudaGetLastError();
}

__global__ void k_fill(__half *d, __half v, int n)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        d[i] = v;
}

extern "C" cudaError_t sh_k_fill(void *dst, float value, int n, cudaStream_t s)
{
    if (n <= 0)
        return cudaSuccess;
    k_fill<<<k_blocks(n, 256), 256, 0, s>>>((__half *)dst, __float2half_rn(value), n);
    return cudaGetLastError();
}
