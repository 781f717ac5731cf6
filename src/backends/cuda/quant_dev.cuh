/* Device helpers shared by the quantized kernels (quant.cu, qgemm.cu); not included from C. */
#ifndef SHOAL_CUDA_QUANT_DEV_CUH
#define SHOAL_CUDA_QUANT_DEV_CUH

#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/quant.cuh"

/* The build compiles with --use_fast_math (approximate division, FMA contraction): every float
 * operation that decides an integer here is an explicitly rounded intrinsic instead, so it is
 * the single IEEE operation the CPU backend's C performs (C11, no contraction). */

__device__ __forceinline__ int kq_get(const void *p, int dt, long i)
{
    switch (dt) {
    case SH_KQ_I8: return ((const signed char *)p)[i];
    case SH_KQ_U8: return ((const unsigned char *)p)[i];
    default: return ((const int *)p)[i];
    }
}

__device__ __forceinline__ int kq_zp(const void *zp, int dt, long i) { return zp ? kq_get(zp, dt, i) : 0; }

__device__ __forceinline__ float kq_lo(int dt) { return dt == SH_KQ_I8 ? -128.f : 0.f; }
__device__ __forceinline__ float kq_hi(int dt) { return dt == SH_KQ_I8 ? 127.f : 255.f; }

/* The saturated code of v (rounded, zero point added), NaN -> 0 (quant_impl.h q_put). */
__device__ __forceinline__ int kq_code(int dt, float v)
{
    v = v < kq_lo(dt) ? kq_lo(dt) : v > kq_hi(dt) ? kq_hi(dt) : v;
    return v != v ? 0 : (int)v;
}

__device__ __forceinline__ void kq_put(void *p, int dt, long i, float v)
{
    int c = kq_code(dt, v);
    if (dt == SH_KQ_I8)
        ((signed char *)p)[i] = (signed char)c;
    else
        ((unsigned char *)p)[i] = (unsigned char)c;
}

/* Output element i (channel m) of a ConvInteger / QLinearConv from its exact accumulator:
 * qconv.c's requantization, scale = xs * ws[m] / ys, then rint((acc + bias) * scale) + yz, and
 * the code, or the table entry of the folded forms. */
__device__ __forceinline__ void kq_conv_store(const sh_kq_conv_io &io, const sh_kq_conv_p &p,
                                              const sh_kq_qconv_tab &tab, long i, int m, int acc)
{
    if (p.out == SH_KQ_OUT_I32) {
        ((int *)io.y)[i] = acc;
        return;
    }
    float sc = __fdiv_rn(__fmul_rn(io.xs[0], io.ws[p.n_ws > 1 ? m : 0]), io.ys[0]);
    int bias = io.bias ? io.bias[m] : 0;
    float v = __fadd_rn(rintf(__fmul_rn((float)(acc + bias), sc)), (float)kq_zp(io.yz, p.ydt, 0));
    if (p.out == SH_KQ_OUT_CODE) {
        kq_put(io.y, p.ydt, i, v);
    } else {
        int idx = kq_code(p.ydt, v) - (int)kq_lo(p.ydt);
        if (p.out == SH_KQ_OUT_FLOAT)
            ((float *)io.y)[i] = tab.f[idx];
        else
            ((unsigned char *)io.y)[i] = tab.b[idx];
    }
}

#endif
