/* Quantized kernels (int8 / uint8 codes, int32 accumulators): launchers callable from C
 * (conventions in ktypes.h). Their float arithmetic is the CPU backend's expression by
 * expression (backends/cpu/quant.c, qconv.c), each operation rounded on its own (no FMA
 * contraction, IEEE division), so the integers are the CPU's bit for bit. Scales and zero
 * points are read on the device (DynamicQuantizeLinear makes them at run time); lookup tables
 * of 256 entries are built on the host at compile time and passed by value. */
#ifndef SHOAL_CUDA_QUANT_CUH
#define SHOAL_CUDA_QUANT_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Element types the quantized kernels read and write. */
enum { SH_KQ_I8 = 0, SH_KQ_U8, SH_KQ_I32, SH_KQ_F32 };

/* Per-axis layout of a Q/DQ: element i uses scale[(i / inner) % ns]. */
typedef struct sh_kq_axis {
    int n, inner, ns;
} sh_kq_axis;

/* A 256-entry table indexed by a code's raw byte (int8 codes as their two's complement). */
typedef struct sh_kq_lut {
    unsigned char b[256];
} sh_kq_lut;

/* QLinearConv's output tables, indexed by (code - the code dtype's lowest value): the float the
 * dequantizing form writes, and the byte the requantizing form writes. */
typedef struct sh_kq_qconv_tab {
    float f[256];
    unsigned char b[256];
} sh_kq_qconv_tab;

enum { SH_KQ_OUT_I32 = 0,  /* ConvInteger: the accumulator */
       SH_KQ_OUT_CODE,     /* QLinearConv: the saturated code */
       SH_KQ_OUT_FLOAT,    /* ... through the float table (SH_QCONV_DEQUANTIZE) */
       SH_KQ_OUT_BYTE };   /* ... through the byte table (SH_QCONV_REQUANTIZE) */

/* ConvInteger / QLinearConv geometry (NCHW, 1-D as h = kh = 1). */
typedef struct sh_kq_conv_p {
    int n, c, h, w, m, oh, ow, g, cg, mg, kh, kw, sh, sw, dh, dw, pt, pl;
    int xdt, wdt, ydt;       /* ydt: the code dtype (QLinearConv) */
    int n_wz, n_ws;          /* 1, or m (per output channel) */
    int out;                 /* SH_KQ_OUT_* */
} sh_kq_conv_p;

/* Device pointers of a conv's operands; zero points / bias may be NULL (0). */
typedef struct sh_kq_conv_io {
    void *y;
    const void *x, *w, *xz, *wz, *yz;
    const float *xs, *ws, *ys;
    const int *bias;
} sh_kq_conv_io;

/* MatMulInteger / QLinearMatMul: y[batch][m][n]; batch offsets (in matrices) from bdims/sa/sb. */
typedef struct sh_kq_mm_p {
    int qlinear, adt, bdt, ydt;
    int m, k, n, nb, batches;
    int bdims[SH_K_MAX_DIMS], sa[SH_K_MAX_DIMS], sb[SH_K_MAX_DIMS];
    int n_az, n_bz, n_bs;    /* 1, or m (a per row) / n (b per column) */
} sh_kq_mm_p;

typedef struct sh_kq_mm_io {
    void *y;
    const void *a, *b, *az, *bz, *yz;
    const float *as, *bs, *ys;
} sh_kq_mm_io;

/* QLinearAdd / QLinearMul with broadcasting (strides in elements, 0 on broadcast dims) and the
 * host-computed factors: add a*ra + b*rb + fixed; mul (a-za)*(b-zb)*ra, then + fixed. The
 * integer Add/Sub/Mul/Div of int8 data use dims/strides/dt, with the SH_K_ADD.. op in mul. */
typedef struct sh_kq_bin_p {
    int mul, dt, nd;
    int dims[SH_K_MAX_DIMS], sa[SH_K_MAX_DIMS], sb[SH_K_MAX_DIMS];
    float ra, rb, fixed;
    int za, zb;
} sh_kq_bin_p;

/* y = saturate(rint(x / scale) + zp), NaN -> 0. */
cudaError_t sh_kq_quantize(void *y, int ydt, const float *x, sh_kq_axis ax, const float *scale, const void *zp,
                           int zdt, cudaStream_t s);
/* y = (x - zp) * scale; x int8 / uint8 / int32. */
cudaError_t sh_kq_dequantize(float *y, const void *x, int xdt, sh_kq_axis ax, const float *scale, const void *zp,
                             cudaStream_t s);
/* DynamicQuantizeLinear: partial min/max into ws (SH_KQ_DYN_BLOCKS * 2 floats), then the scale,
 * zero point and uint8 codes; ys / yz may be NULL. */
#define SH_KQ_DYN_BLOCKS 128
cudaError_t sh_kq_dynamic_quantize(unsigned char *y, float *ys, unsigned char *yz, const float *x, int n, float *ws,
                                   cudaStream_t s);
cudaError_t sh_kq_conv(const sh_kq_conv_io *io, const sh_kq_conv_p *p, const sh_kq_qconv_tab *tab, cudaStream_t s);
cudaError_t sh_kq_matmul(const sh_kq_mm_io *io, const sh_kq_mm_p *p, cudaStream_t s);
cudaError_t sh_kq_binary(void *y, const void *a, const void *b, int n, const sh_kq_bin_p *p, cudaStream_t s);
/* Add/Sub/Mul/Div (p->mul: SH_K_ADD..) of int8 / uint8 data, wrapping modulo 256 as
 * onnxruntime's do; division by zero gives 0 (backends/cpu/elementwise.c). */
cudaError_t sh_kq_int_binary(void *y, const void *a, const void *b, int n, const sh_kq_bin_p *p, cudaStream_t s);
/* y[i] = lut[x[i]] over n bytes. */
cudaError_t sh_kq_lookup(void *y, const void *x, int n, const sh_kq_lut *lut, cudaStream_t s);
/* One input of QLinearConcat: outer rows of len bytes into rows of out_len at column off,
 * through lut unless copy. */
cudaError_t sh_kq_concat_part(void *y, const void *x, int outer, int len, int out_len, int off, int copy,
                              const sh_kq_lut *lut, cudaStream_t s);
/* QLinearGlobalAveragePool: one code per (image, channel); sum less zx * hw, times scale. */
cudaError_t sh_kq_gap(void *y, const void *x, int dt, int n, int c, int hw, int channels_last, int zx, int zy,
                      float scale, cudaStream_t s);
/* Cast of integer codes / accumulators to float32. */
cudaError_t sh_kq_to_float(float *y, const void *x, int xdt, int n, cudaStream_t s);
/* MaxPool on int8 / uint8 codes (NCHW, p.nhwc = 0). */
cudaError_t sh_kq_max_pool(void *y, const void *x, int dt, const sh_k_pool *p, cudaStream_t s);
/* The strided copy of copy.cuh over 1-byte elements (int8 data movement). */
cudaError_t sh_kq_copy_bytes(void *dst, const void *src, const sh_k_copy *p, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
