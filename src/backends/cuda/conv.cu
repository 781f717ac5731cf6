#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/conv.cuh"

/* cuDNN's fused bias+activation covers only ReLU/identity; this epilogue gives every conv
 * its bias and any fused activation in one pass, in place. */
__global__ void k_bias_act(__half *y, const __half *bias, int c, int inner, long total, sh_k_act act)
{
    k_pdl_begin();
    /* 32-bit unsigned index arithmetic: tensors stay under 2^31 elements (ktypes.h) */
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)total; i += gridDim.x * blockDim.x) {
        float v = __half2float(y[i]);
        if (bias)
            v += __half2float(bias[(i / (unsigned)inner) % (unsigned)c]);
        y[i] = k_h(k_act(v, act));
    }
}

/* Channels-last (inner == 1, c even): two channels per thread, 4-byte loads and stores. */
__global__ void k_bias_act_c2(__half2 *y, const __half2 *bias, int c2, long total2, sh_k_act act)
{
    k_pdl_begin();
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)total2; i += gridDim.x * blockDim.x) {
        float2 v = __half22float2(y[i]);
        if (bias) {
            float2 b = __half22float2(bias[i % (unsigned)c2]);
            v.x += b.x;
            v.y += b.y;
        }
        y[i] = __halves2half2(k_h(k_act(v.x, act)), k_h(k_act(v.y, act)));
    }
}

extern "C" cudaError_t sh_k_bias_act(void *y, const void *bias, int outer, int c, int inner,
                                     sh_k_act act, sh_k_stream s)
{
    long total = (long)outer * c * inner;
    if (inner == 1 && c % 2 == 0 && ((uintptr_t)y & 3) == 0 && ((uintptr_t)bias & 3) == 0) {
        return k_launch(k_bias_act_c2, k_blocks(total / 2, 256), 256, s, (__half2 *)y, (const __half2 *)bias, c / 2,
                        total / 2, act);
    }
    return k_launch(k_bias_act, k_blocks(total, 256), 256, s, (__half *)y, (const __half *)bias, c, inner, total,
                    act);
}

__global__ void k_batchnorm(__half *y, const __half *x, const __half *g, const __half *b,
                            const __half *m, const __half *v, float eps, int c, int inner,
                            long total)
{
    for (long i = blockIdx.x * (long)blockDim.x + threadIdx.x; i < total;
         i += (long)gridDim.x * blockDim.x) {
        int ch = (int)((i / inner) % c);
        float sc = __half2float(g[ch]) * rsqrtf(__half2float(v[ch]) + eps);
        y[i] = k_h((__half2float(x[i]) - __half2float(m[ch])) * sc + __half2float(b[ch]));
    }
}

extern "C" cudaError_t sh_k_batchnorm(void *y, const void *x, const void *gamma, const void *beta,
                                      const void *mean, const void *var, float eps, int outer,
                                      int c, int inner, cudaStream_t s)
{
    long total = (long)outer * c * inner;
    k_batchnorm<<<k_blocks(total, 256), 256, 0, s>>>(
        (__half *)y, (const __half *)x, (const __half *)gamma, (const __half *)beta,
        (const __half *)mean, (const __half *)var, eps, c, inner, total);
    return cudaGetLastError();
}

/* Depthwise conv: one thread per output element. cuDNN's grouped NCHW fp16 path is slow
 * for group == C, and this is memory-bound anyway (k*k reads per output, mostly cached). */
__global__ void k_depthwise(__half *y, const __half *x, const __half *w, const __half *bias,
                            int c, int h, int wd, int oh, int ow, int kh, int kw, int sh, int sw,
                            int ph, int pw, int dh, int dw, long total, sh_k_act act)
{
    k_pdl_begin();
    /* 32-bit unsigned index arithmetic (ktypes.h: tensors stay under 2^31 elements): a 64-bit
     * division costs several times a 32-bit one, and these kernels do three per element */
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)total; i += gridDim.x * blockDim.x) {
        unsigned row = i / (unsigned)ow, ox = i - row * (unsigned)ow;
        unsigned nc = row / (unsigned)oh, oy = row - nc * (unsigned)oh;
        int ch = (int)(nc % (unsigned)c);
        const __half *xp = x + (size_t)nc * h * wd;
        const __half *wp = w + ch * kh * kw;
        float acc = bias ? __half2float(bias[ch]) : 0.f;
        for (int ky = 0; ky < kh; ky++) {
            int iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= h)
                continue;
            for (int kx = 0; kx < kw; kx++) {
                int ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= wd)
                    continue;
                acc += __half2float(xp[iy * wd + ix]) * __half2float(wp[ky * kw + kx]);
            }
        }
        y[i] = k_h(k_act(acc, act));
    }
}

/* Channels-last: neighbouring threads take neighbouring channels, so every read of x and
 * write of y is coalesced; the weights come from L1, [c, kh, kw] or taps first ([kh, kw, c]). */
__global__ void k_depthwise_nhwc(__half *y, const __half *x, const __half *w, const __half *bias,
                                 int c, int h, int wd, int oh, int ow, int kh, int kw, int sh,
                                 int sw, int ph, int pw, int dh, int dw, long total, sh_k_act act, int w_taps)
{
    k_pdl_begin();
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (unsigned)total; i += gridDim.x * blockDim.x) {
        unsigned pix = i / (unsigned)c, ch = i - pix * (unsigned)c;
        unsigned row = pix / (unsigned)ow, ox = pix - row * (unsigned)ow;
        unsigned nn = row / (unsigned)oh, oy = row - nn * (unsigned)oh;
        const __half *xp = x + (size_t)nn * h * wd * c + ch;
        const __half *wp = w_taps ? w + ch : w + ch * kh * kw;
        int wstep = w_taps ? c : 1;
        float acc = bias ? __half2float(bias[ch]) : 0.f;
        for (int ky = 0; ky < kh; ky++) {
            int iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= h)
                continue;
            for (int kx = 0; kx < kw; kx++) {
                int ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= wd)
                    continue;
                acc += __half2float(xp[(iy * wd + ix) * c]) * __half2float(wp[(ky * kw + kx) * wstep]);
            }
        }
        y[i] = k_h(k_act(acc, act));
    }
}

/* Channels-last with 8 channels a thread (c % 8 == 0, 16-byte aligned, weights taps first):
 * each tap is one 16-byte load of x and one of w, where a thread per channel issued 8 of each
 * (the YOLO11 class head's 256-channel 80x80 depthwise convs: a quarter of the time). */
__global__ void k_depthwise_nhwc8(uint4 *y, const uint4 *x, const uint4 *w, const __half *bias, int c8, int h,
                                  int wd, int oh, int ow, int kh, int kw, int sh, int sw, int ph, int pw, int dh,
                                  int dw, unsigned total, sh_k_act act)
{
    k_pdl_begin();
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < total; i += gridDim.x * blockDim.x) {
        unsigned pix = i / (unsigned)c8, cg = i - pix * (unsigned)c8;
        unsigned row = pix / (unsigned)ow, ox = pix - row * (unsigned)ow;
        unsigned nn = row / (unsigned)oh, oy = row - nn * (unsigned)oh;
        const uint4 *xp = x + (size_t)nn * h * wd * c8 + cg;
        float acc[8];
#pragma unroll
        for (int u = 0; u < 8; u++)
            acc[u] = bias ? __half2float(bias[cg * 8 + u]) : 0.f;
        for (int ky = 0; ky < kh; ky++) {
            int iy = (int)oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= h)
                continue;
            for (int kx = 0; kx < kw; kx++) {
                int ix = (int)ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= wd)
                    continue;
                uint4 xv = __ldg(xp + (size_t)(iy * wd + ix) * c8), wv = __ldg(w + (ky * kw + kx) * c8 + cg);
                const __half2 *xh = (const __half2 *)&xv, *wh = (const __half2 *)&wv;
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    float2 a = __half22float2(xh[u]), b = __half22float2(wh[u]);
                    acc[2 * u] += a.x * b.x;
                    acc[2 * u + 1] += a.y * b.y;
                }
            }
        }
        uint4 out;
        __half2 *oh2 = (__half2 *)&out;
#pragma unroll
        for (int u = 0; u < 4; u++)
            oh2[u] = __halves2half2(k_h(k_act(acc[2 * u], act)), k_h(k_act(acc[2 * u + 1], act)));
        y[i] = out;
    }
}

extern "C" cudaError_t sh_k_depthwise(void *y, const void *x, const void *w, const void *bias,
                                      int n, int c, int h, int wd, int oh, int ow, int kh, int kw,
                                      int sh, int sw, int ph, int pw, int dh, int dw, sh_k_act act,
                                      int nhwc, int w_taps, sh_k_stream s)
{
    long total = (long)n * c * oh * ow;
    if (nhwc && w_taps && c % 8 == 0 && (((uintptr_t)x | (uintptr_t)y | (uintptr_t)w) & 15) == 0) {
        long t8 = total / 8;
        return k_launch(k_depthwise_nhwc8, k_blocks(t8, 256), 256, s, (uint4 *)y, (const uint4 *)x, (const uint4 *)w,
                        (const __half *)bias, c / 8, h, wd, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, (unsigned)t8, act);
    }
    if (nhwc) {
        return k_launch(k_depthwise_nhwc, k_blocks(total, 256), 256, s, (__half *)y, (const __half *)x,
                        (const __half *)w, (const __half *)bias, c, h, wd, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw,
                        total, act, w_taps);
    }
    return k_launch(k_depthwise, k_blocks(total, 256), 256, s, (__half *)y, (const __half *)x, (const __half *)w,
                    (const __half *)bias, c, h, wd, oh, ow, kh, kw, sh, sw, ph, pw, dh, dw, total, act);
}
