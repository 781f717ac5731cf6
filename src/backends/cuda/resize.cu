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

/* The bilinear taps of source coordinate (cy, cx): rows y0/y1, columns x0/x1, weights ly/lx. */
struct k_taps {
    int y0, x0, y1, x1;
    float ly, lx;
};

__device__ __forceinline__ k_taps k_bilinear(float cy, float cx, const sh_k_resize_p &p)
{
    cy = fminf(fmaxf(cy, 0.f), (float)(p.h - 1));
    cx = fminf(fmaxf(cx, 0.f), (float)(p.w - 1));
    k_taps t;
    t.y0 = (int)floorf(cy);
    t.x0 = (int)floorf(cx);
    t.y1 = min(t.y0 + 1, p.h - 1);
    t.x1 = min(t.x0 + 1, p.w - 1);
    t.ly = cy - (float)t.y0;
    t.lx = cx - (float)t.x0;
    return t;
}

__global__ void k_resize(__half *y, const __half *x, sh_k_resize_p p, long total)
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
        float cy = k_src_coord(oy, p.scale_h, p.h, p.oh, p.coord);
        float cx = k_src_coord(ox, p.scale_w, p.w, p.ow, p.coord);
        if (!p.linear) {
            y[i] = xp[(k_nearest(cy, p.nearest_mode, p.h) * p.w + k_nearest(cx, p.nearest_mode, p.w)) * xs];
            continue;
        }
        k_taps t = k_bilinear(cy, cx, p);
        int y0 = t.y0, x0 = t.x0, y1 = t.y1, x1 = t.x1;
        float ly = t.ly, lx = t.lx;
        float v00 = __half2float(xp[(y0 * p.w + x0) * xs]), v01 = __half2float(xp[(y0 * p.w + x1) * xs]);
        float v10 = __half2float(xp[(y1 * p.w + x0) * xs]), v11 = __half2float(xp[(y1 * p.w + x1) * xs]);
        float top = v00 + (v01 - v00) * lx, bot = v10 + (v11 - v10) * lx;
        y[i] = k_h(top + (bot - top) * ly);
    }
}

/* Channels-last with 8 channels a thread (c % 8 == 0, 16-byte aligned): the source pixels'
 * coordinates are worked out once per 8 channels and moved as 16-byte vectors (the YOLO neck's
 * 2x nearest upsampling of 256-512 channels). */
__global__ void k_resize_nhwc8(uint4 *y, const uint4 *x, sh_k_resize_p p, unsigned total)
{
    k_pdl_begin();
    const unsigned c8 = (unsigned)p.c / 8;
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        unsigned pix = i / c8, cg = i - pix * c8;
        unsigned row = pix / (unsigned)p.ow, nn = row / (unsigned)p.oh;
        int ox = (int)(pix - row * (unsigned)p.ow), oy = (int)(row - nn * (unsigned)p.oh);
        const uint4 *xp = x + (size_t)nn * p.h * p.w * c8 + cg;
        float cy = k_src_coord(oy, p.scale_h, p.h, p.oh, p.coord);
        float cx = k_src_coord(ox, p.scale_w, p.w, p.ow, p.coord);
        if (!p.linear) {
            y[i] = __ldg(xp + (size_t)(k_nearest(cy, p.nearest_mode, p.h) * p.w + k_nearest(cx, p.nearest_mode, p.w)) * c8);
            continue;
        }
        k_taps t = k_bilinear(cy, cx, p);
        float ly = t.ly, lx = t.lx;
        uint4 q[4] = {__ldg(xp + (size_t)(t.y0 * p.w + t.x0) * c8), __ldg(xp + (size_t)(t.y0 * p.w + t.x1) * c8),
                      __ldg(xp + (size_t)(t.y1 * p.w + t.x0) * c8), __ldg(xp + (size_t)(t.y1 * p.w + t.x1) * c8)};
        const __half2 *h00 = (const __half2 *)&q[0], *h01 = (const __half2 *)&q[1];
        const __half2 *h10 = (const __half2 *)&q[2], *h11 = (const __half2 *)&q[3];
        uint4 out;
        __half2 *o = (__half2 *)&out;
#pragma unroll
        for (int u = 0; u < 4; u++) {
            float2 v00 = __half22float2(h00[u]), v01 = __half22float2(h01[u]);
            float2 v10 = __half22float2(h10[u]), v11 = __half22float2(h11[u]);
            float t0 = v00.x + (v01.x - v00.x) * lx, b0 = v10.x + (v11.x - v10.x) * lx;
            float t1 = v00.y + (v01.y - v00.y) * lx, b1 = v10.y + (v11.y - v10.y) * lx;
            o[u] = __halves2half2(k_h(t0 + (b0 - t0) * ly), k_h(t1 + (b1 - t1) * ly));
        }
        y[i] = out;
    }
}

extern "C" cudaError_t sh_k_resize(void *y, const void *x, const sh_k_resize_p *p, sh_k_stream s)
{
    long total = (long)p->nc * p->oh * p->ow;
    if (p->nhwc && p->c % 8 == 0 && (((uintptr_t)x | (uintptr_t)y) & 15) == 0) {
        return k_launch(k_resize_nhwc8, k_blocks(total / 8, 256), 256, s, (uint4 *)y, (const uint4 *)x, *p,
                        (unsigned)(total / 8));
    }
    return k_launch(k_resize, k_blocks(total, 256), 256, s, (__half *)y, (const __half *)x, *p, total);
}

/* Nearest over bytes, NCHW: the int8 / uint8 codes of QOperator graphs, with the coordinates
 * the fp16 kernel takes. */
__global__ void k_resize_bytes(unsigned char *y, const unsigned char *x, sh_k_resize_p p, long total)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total; i += (long)gridDim.x * blockDim.x) {
        long row = i / p.ow, nc = row / p.oh;
        int ox = (int)(i - row * p.ow), oy = (int)(row - nc * p.oh);
        float cy = k_src_coord(oy, p.scale_h, p.h, p.oh, p.coord);
        float cx = k_src_coord(ox, p.scale_w, p.w, p.ow, p.coord);
        y[i] = x[(size_t)nc * p.h * p.w + (size_t)k_nearest(cy, p.nearest_mode, p.h) * p.w +
                 k_nearest(cx, p.nearest_mode, p.w)];
    }
}

extern "C" cudaError_t sh_k_resize_bytes(void *y, const void *x, const sh_k_resize_p *p, cudaStream_t s)
{
    long total = (long)p->nc * p->oh * p->ow;
    if (total <= 0)
        return cudaSuccess;
    k_resize_bytes<<<k_blocks(total, 256), 256, 0, s>>>((unsigned char *)y, (const unsigned char *)x, *p, total);
    return cudaGetLastError();
}
