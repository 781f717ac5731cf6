#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/conv_planar.cuh"

/* A thread per two output pixels and a group of KT output channels: the KT weights of a tap
 * come from shared memory as float4 broadcasts and serve both pixels, every tap of the few
 * input planes is read once per pixel (neighbours share them through L1), and the results
 * leave as 16-byte stores. cuDNN took four launches and 30-50 us for this layer at 640x640
 * (fp32 -> fp16, NCHW -> NHWC, the conv, then bias and activation); it is a few us of
 * memory traffic and FMAs. */
#define PL_THREADS 128
#define PL_PIX 2
#define PL_SMEM_FLOATS (12 * 1024)   /* 48 KiB: the weights of one block's KT channels */

template <int KT>
__device__ __forceinline__ void pl_store(__half *y, const sh_k_planar_p &p, unsigned pix, int k0, const float *acc)
{
    __half *dst = y + (size_t)pix * p.y_ld + k0;
    __align__(16) __half out[KT];
#pragma unroll
    for (int j = 0; j < KT; j++)
        out[j] = k_h(k_act(acc[j], p.act));
    if (p.y_ld % 8 == 0 && ((uintptr_t)y & 15) == 0) {
#pragma unroll
        for (int j = 0; j < KT; j += 8)
            *(uint4 *)(dst + j) = *(const uint4 *)(out + j);
    } else {
#pragma unroll
        for (int j = 0; j < KT; j++)
            dst[j] = out[j];
    }
}

template <int KT>
__global__ void __launch_bounds__(PL_THREADS) k_conv_planar(__half *y, const float *x, const __half *w,
                                                            const __half *bias, sh_k_planar_p p)
{
    extern __shared__ float4 pl_w4[];   /* [kh*kw*c][KT] */
    float *pl_w = (float *)pl_w4;
    const int taps = p.kh * p.kw * p.c, k0 = blockIdx.y * KT;
    for (int i = threadIdx.x; i < KT * taps; i += PL_THREADS) {
        int j = i / taps, t = i - j * taps;   /* w is [k][tap] */
        pl_w[t * KT + j] = __half2float(w[(size_t)(k0 + j) * taps + t]);
    }
    __syncthreads();
    const unsigned hw = (unsigned)(p.oh * p.ow), total = (unsigned)p.n * hw,
                   pix0 = (blockIdx.x * PL_THREADS + threadIdx.x) * PL_PIX;
    if (pix0 >= total)
        return;
    const unsigned plane = (unsigned)(p.h * p.w);
    int iy0[PL_PIX], ix0[PL_PIX];
    const float *img[PL_PIX];
    float acc[PL_PIX][KT];
#pragma unroll
    for (int q = 0; q < PL_PIX; q++) {
        unsigned pix = min(pix0 + q, total - 1);   /* a lone last pixel computes twice, stores once */
        int nb = (int)(pix / hw), rem = (int)(pix - nb * hw), oy = rem / p.ow, ox = rem - oy * p.ow;
        iy0[q] = oy * p.sh - p.ph;
        ix0[q] = ox * p.sw - p.pw;
        img[q] = x + (unsigned)nb * p.c * plane;
#pragma unroll
        for (int j = 0; j < KT; j++)
            acc[q][j] = bias ? __half2float(bias[k0 + j]) : 0.f;
    }
    for (int ky = 0; ky < p.kh; ky++)
        for (int kx = 0; kx < p.kw; kx++) {
            float v[PL_PIX][SH_K_PLANAR_MAX_C];
#pragma unroll
            for (int q = 0; q < PL_PIX; q++) {
                int iy = iy0[q] + ky * p.dh, ix = ix0[q] + kx * p.dw;
                bool in = (unsigned)iy < (unsigned)p.h && (unsigned)ix < (unsigned)p.w;
                const float *src = img[q] + (in ? iy * p.w + ix : 0);
#pragma unroll
                for (int ci = 0; ci < SH_K_PLANAR_MAX_C; ci++)
                    v[q][ci] = in && ci < p.c ? __ldg(src + ci * plane) : 0.f;
            }
#pragma unroll
            for (int ci = 0; ci < SH_K_PLANAR_MAX_C; ci++) {
                if (ci >= p.c)
                    break;
                const float4 *wt = pl_w4 + ((ky * p.kw + kx) * p.c + ci) * (KT / 4);
#pragma unroll
                for (int j4 = 0; j4 < KT / 4; j4++) {
                    float4 wv = wt[j4];
#pragma unroll
                    for (int q = 0; q < PL_PIX; q++) {
                        float xv = v[q][ci];
                        acc[q][4 * j4] = fmaf(xv, wv.x, acc[q][4 * j4]);
                        acc[q][4 * j4 + 1] = fmaf(xv, wv.y, acc[q][4 * j4 + 1]);
                        acc[q][4 * j4 + 2] = fmaf(xv, wv.z, acc[q][4 * j4 + 2]);
                        acc[q][4 * j4 + 3] = fmaf(xv, wv.w, acc[q][4 * j4 + 3]);
                    }
                }
            }
        }
#pragma unroll
    for (int q = 0; q < PL_PIX; q++)
        if (pix0 + q < total)
            pl_store<KT>(y, p, pix0 + q, k0, acc[q]);
}

static int pl_group(const sh_k_planar_p *p) { return p->k % 16 == 0 ? 16 : 8; }

extern "C" int sh_k_planar_fits(const sh_k_planar_p *p)
{
    return p->c >= 1 && p->c <= SH_K_PLANAR_MAX_C && p->k % 8 == 0 &&
           pl_group(p) * p->kh * p->kw * p->c <= PL_SMEM_FLOATS;
}

extern "C" cudaError_t sh_k_conv_planar(void *y, const float *x, const void *w, const void *bias,
                                        const sh_k_planar_p *p, cudaStream_t s)
{
    if (!sh_k_planar_fits(p))
        return cudaErrorInvalidValue;
    int kt = pl_group(p);
    dim3 grid(k_blocks(((long)p->n * p->oh * p->ow + PL_PIX - 1) / PL_PIX, PL_THREADS), p->k / kt);
    size_t smem = (size_t)kt * p->kh * p->kw * p->c * sizeof(float);
    if (kt == 16)
        k_conv_planar<16><<<grid, PL_THREADS, smem, s>>>((__half *)y, x, (const __half *)w, (const __half *)bias, *p);
    else
        k_conv_planar<8><<<grid, PL_THREADS, smem, s>>>((__half *)y, x, (const __half *)w, (const __half *)bias, *p);
    return cudaGetLastError();
}
