#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/resize.cuh"

/* ONNX Resize coordinate transformation: output coordinate -> input coordinate. */
__device__ __forceinline__ float k_src_coord(int o, float scale, int in_len, int out_len, int mode)
{
    switch (mode) {
    case 0: return ((float)o + 0.5f) / scale - 0.5f;
    case 1: return (float)o / scale;
    case 2: return out_len > 1 ? (float)o * (float)(in_len - 1) / (float)(out_len - 1) : 0.f;
    case 3: return out_len > 1 ? ((float)o + 0.5f) / scale - 0.5f : 0.f;
    default: return ((float)o + 0.5f) / scale;
    }
}

__device__ __forceinline__ int k_nearest(float c, int mode, int len)
{
    int i;
    switch (mode) {
    case 0: i = (c == floorf(c) + 0.5f) ? (int)floorf(c) : (int)roundf(c); break;
    case 1: i = (int)floorf(c + 0.5f); break;
    case 2: i = (int)floorf(c); break;
    default: i = (int)ceilf(c); break;
    }
    return min(max(i, 0), len - 1);
}

__global__ void k_resize(__half *y, const __half *x, sh_k_resize_p p, long total)
{
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
        float cy = k_src_coord(oy, p.scale_h, p.h, p.oh, p.coord);
        float cx = k_src_coord(ox, p.scale_w, p.w, p.ow, p.coord);
        if (!p.linear) {
            y[i] = xp[(k_nearest(cy, p.nearest_mode, p.h) * p.w + k_nearest(cx, p.nearest_mode, p.w)) * xs];
            continue;
        }
        cy = fminf(fmaxf(cy, 0.f), (float)(p.h - 1));
        cx = fminf(fmaxf(cx, 0.f), (float)(p.w - 1));
        int y0 = (int)floorf(cy), x0 = (int)floorf(cx);
        int y1 = min(y0 + 1, p.h - 1), x1 = min(x0 + 1, p.w - 1);
        float ly = cy - (float)y0, lx = cx - (float)x0;
        float v00 = __half2float(xp[(y0 * p.w + x0) * xs]), v01 = __half2float(xp[(y0 * p.w + x1) * xs]);
        float v10 = __half2float(xp[(y1 * p.w + x0) * xs]), v11 = __half2float(xp[(y1 * p.w + x1) * xs]);
        float top = v00 + (v01 - v00) * lx, bot = v10 + (v11 - v10) * lx;
        y[i] = k_h(top + (bot - top) * ly);
    }
}

extern "C" cudaError_t sh_k_resize(void *y, const void *x, const sh_k_resize_p *p, cudaStream_t s)
{
    long total = (long)p->nc * p->oh * p->ow;
    k_resize<<<k_blocks(total, 256), 256, 0, s>>>((__half *)y, (const __half *)x, *p, total);
    return cudaGetLastError();
}
