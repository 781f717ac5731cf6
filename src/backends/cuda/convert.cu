#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/convert.cuh"

/* Graph inputs and outputs are fp32 on the device (the runtime's contract); everything in
 * between is fp16. These two kernels are the boundary. */
__global__ void k_f32_to_f16(__half *d, const float *s, int n)
{
    k_pdl_begin();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        d[i] = k_h(s[i]);
}

__global__ void k_f16_to_f32(float *d, const __half *s, int n)
{
    k_pdl_begin();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
        d[i] = __half2float(s[i]);
}

extern "C" cudaError_t sh_k_f32_to_f16(void *dst, const float *src, int n, sh_k_stream s)
{
    return k_launch(k_f32_to_f16, k_blocks(n, 256), 256, s, (__half *)dst, src, n);
}

extern "C" cudaError_t sh_k_f16_to_f32(float *dst, const void *src, int n, sh_k_stream s)
{
    return k_launch(k_f16_to_f32, k_blocks(n, 256), 256, s, dst, (const __half *)src, n);
}
