#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/pool.cuh"

/* One thread per output; windows are small (2x2..13x13 in the models we host). Average pool
 * follows ONNX/PyTorch: with count_include_pad the divisor counts padding but not the part of
 * a ceil_mode window beyond it. */
__global__ void k_pool2d(__half *y, const __half *x, sh_k_pool p, long total)
{
    k_pdl_begin();
    /* 32-bit unsigned index arithmetic: tensors stay under 2^31 elements (ktypes.h) */
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)total; i += gridDim.x * blockDim.x) {
        int ox, oy, xs = 1;   /* xs: element stride between neighbouring pixels */
        const __half *xp;
        if (p.nhwc) {
            unsigned pix = i / (unsigned)p.c, ch = i - pix * (unsigned)p.c;
            unsigned row = pix / (unsigned)p.ow, nn = row / (unsigned)p.oh;
            ox = (int)(pix - row * (unsigned)p.ow);
            oy = (int)(row - nn * (unsigned)p.oh);
            xp = x + (size_t)nn * p.h * p.w * p.c + ch;
            xs = p.c;
        } else {
            unsigned row = i / (unsigned)p.ow, nc = row / (unsigned)p.oh;
            ox = (int)(i - row * (unsigned)p.ow);
            oy = (int)(row - nc * (unsigned)p.oh);
            xp = x + (size_t)nc * p.h * p.w;
        }
        int y0 = oy * p.sh - p.ph, x0 = ox * p.sw - p.pw;
        float acc = p.is_max ? -INFINITY : 0.f;
        int cnt = 0;
        for (int ky = 0; ky < p.kh; ky++) {
            int iy = y0 + ky * p.dh;
            if (iy < 0 || iy >= p.h)
                continue;
            for (int kx = 0; kx < p.kw; kx++) {
                int ix = x0 + kx * p.dw;
                if (ix < 0 || ix >= p.w)
                    continue;
                float v = __half2float(xp[(iy * p.w + ix) * xs]);
                acc = p.is_max ? fmaxf(acc, v) : acc + v;
                cnt++;
            }
        }
        if (!p.is_max) {
            if (p.count_include_pad) {
                int ye = min(y0 + (p.kh - 1) * p.dh + 1, p.h + p.ph);
                int xe = min(x0 + (p.kw - 1) * p.dw + 1, p.w + p.pw);
                cnt = (ye - y0) * (xe - x0);
            }
            acc = cnt > 0 ? acc / (float)cnt : 0.f;
        }
        y[i] = k_h(acc);
    }
}

extern "C" cudaError_t sh_k_pool2d(void *y, const void *x, const sh_k_pool *p, sh_k_stream s)
{
    long total = (long)p->n * p->c * p->oh * p->ow;
    return k_launch(k_pool2d, k_blocks(total, 256), 256, s, (__half *)y, (const __half *)x, *p, total);
}

/* inner == 1 (global pooling, mean over the last axes): a block per output reduces a
 * contiguous run. Otherwise a thread per output walks the strided axis, coalesced across
 * neighbouring threads. */
__global__ void k_mean_rows(__half *y, const __half *x, int r)
{
    __shared__ float part[32];
    const __half *xp = x + (long)blockIdx.x * r;
    float acc = 0.f;
    for (int i = threadIdx.x; i < r; i += blockDim.x)
        acc += __half2float(xp[i]);
    for (int o = 16; o > 0; o >>= 1)
        acc += __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0)
        part[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x < 32) {
        acc = threadIdx.x < (blockDim.x >> 5) ? part[threadIdx.x] : 0.f;
        for (int o = 16; o > 0; o >>= 1)
            acc += __shfl_xor_sync(0xffffffffu, acc, o);
        if (threadIdx.x == 0)
            y[blockIdx.x] = k_h(acc / (float)r);
    }
}

__global__ void k_mean_strided(__half *y, const __half *x, int outer, int r, int inner)
{
    long total = (long)outer * inner;
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        long o = i / inner, in = i % inner;
        const __half *xp = x + o * r * inner + in;
        float acc = 0.f;
        for (int k = 0; k < r; k++)
            acc += __half2float(xp[(long)k * inner]);
        y[i] = k_h(acc / (float)r);
    }
}

extern "C" cudaError_t sh_k_reduce_mean(void *y, const void *x, int outer, int r, int inner,
                                        cudaStream_t s)
{
    if (inner == 1)
        k_mean_rows<<<outer, 256, 0, s>>>((__half *)y, (const __half *)x, r);
    else
        k_mean_strided<<<k_blocks((long)outer * inner, 256), 256, 0, s>>>(
            (__half *)y, (const __half *)x, outer, r, inner);
    return cudaGetLastError();
}
