#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/softmax.cuh"

/* Contiguous rows (inner == 1): a warp per row, three passes over the row (max, sum, write);
 * rows are short in detection heads, so the re-reads stay in L1. */
__global__ void k_softmax_rows(__half *y, const __half *x, int rows, int l)
{
    k_pdl_begin();
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    const __half *xp = x + (long)row * l;
    __half *yp = y + (long)row * l;
    float m = -INFINITY;
    for (int i = lane; i < l; i += 32)
        m = fmaxf(m, __half2float(xp[i]));
    for (int o = 16; o > 0; o >>= 1)
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    float sum = 0.f;
    for (int i = lane; i < l; i += 32)
        sum += __expf(__half2float(xp[i]) - m);
    for (int o = 16; o > 0; o >>= 1)
        sum += __shfl_xor_sync(0xffffffffu, sum, o);
    float inv = 1.f / sum;
    for (int i = lane; i < l; i += 32)
        yp[i] = k_h(__expf(__half2float(xp[i]) - m) * inv);
}

/* Softmax along a strided axis: a thread per (outer, inner), neighbours coalesced. */
__global__ void k_softmax_strided(__half *y, const __half *x, int outer, int l, int inner)
{
    k_pdl_begin();
    long total = (long)outer * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        long base = (i / inner) * (long)l * inner + i % inner;
        float m = -INFINITY;
        for (int k = 0; k < l; k++)
            m = fmaxf(m, __half2float(x[base + (long)k * inner]));
        float sum = 0.f;
        for (int k = 0; k < l; k++)
            sum += __expf(__half2float(x[base + (long)k * inner]) - m);
        float inv = 1.f / sum;
        for (int k = 0; k < l; k++)
            y[base + (long)k * inner] = k_h(__expf(__half2float(x[base + (long)k * inner]) - m) * inv);
    }
}

extern "C" cudaError_t sh_k_softmax(void *y, const void *x, int outer, int l, int inner,
                                    sh_k_stream s)
{
    if (inner == 1)
        return k_launch(k_softmax_rows, k_blocks(outer, 8), 256, s, (__half *)y, (const __half *)x, outer, l);
    return k_launch(k_softmax_strided, k_blocks((long)outer * inner, 256), 256, s, (__half *)y, (const __half *)x,
                    outer, l, inner);
}
