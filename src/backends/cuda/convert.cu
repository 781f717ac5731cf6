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

/* A preprocessed 8-bit picture (HWC, in pinned host memory the kernel reads across the bus)
 * into the model's fp32 NCHW input through the host's own table, so the values are the
 * host conversion's bit for bit. One thread per pixel: a warp reads 96 contiguous bytes. */
__global__ void k_image_to_nchw(float *d, const uint8_t *hwc, int plane, sh_k_image_lut lut)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < plane; i += gridDim.x * blockDim.x) {
        const uint8_t *px = hwc + 3 * (size_t)i;
        uint8_t r = px[0], g = px[1], b = px[2];
        d[i] = lut.v[0][r];
        d[plane + i] = lut.v[1][g];
        d[2 * (size_t)plane + i] = lut.v[2][b];
    }
}

extern "C" cudaError_t sh_k_image_to_nchw(float *dst, const uint8_t *hwc, int width, int height,
                                          const sh_k_image_lut *lut, cudaStream_t s)
{
    int plane = width * height;
    k_image_to_nchw<<<k_blocks(plane, 256), 256, 0, s>>>(dst, hwc, plane, *lut);
    return cudaGetLastError();
}
