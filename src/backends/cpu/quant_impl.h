/* Helpers shared by the quantized kernels (quant.c, qconv.c): element access for the int8,
 * uint8 and int32 tensors they read, saturation, and scales / zero points read at run time
 * (DynamicQuantizeLinear produces them, so they are not always constants). */
#ifndef SHOAL_CPU_QUANT_IMPL_H
#define SHOAL_CPU_QUANT_IMPL_H

#include <math.h>

#include "backends/cpu/cpu_impl.h"

static inline bool q8_dt(sh_dtype d)
{
    return d == SH_DT_INT8 || d == SH_DT_UINT8;
}

static inline int32_t q_get(const void *p, sh_dtype dt, int64_t i)
{
    switch (dt) {
    case SH_DT_INT8: return ((const int8_t *)p)[i];
    case SH_DT_UINT8: return ((const uint8_t *)p)[i];
    default: return ((const int32_t *)p)[i];
    }
}

static inline float q_lo(sh_dtype dt)
{
    return dt == SH_DT_INT8 ? -128.0f : 0.0f;
}

static inline float q_hi(sh_dtype dt)
{
    return dt == SH_DT_INT8 ? 127.0f : 255.0f;
}

/* Stores v (already rounded, zero point added) saturated to dt's range. */
static inline void q_put(void *p, sh_dtype dt, int64_t i, float v)
{
    v = v < q_lo(dt) ? q_lo(dt) : v > q_hi(dt) ? q_hi(dt) : v;
    if (v != v)
        v = 0.0f;
    if (dt == SH_DT_INT8)
        ((int8_t *)p)[i] = (int8_t)v;
    else
        ((uint8_t *)p)[i] = (uint8_t)v;
}

/* ONNX's quantization: saturate(round_half_even(x / scale) + zero_point). The division (not
 * a multiplication by 1/scale) and the float32 rounding are what the ONNX reference and
 * onnxruntime's MLAS compute. */
static inline void q_quantize(void *p, sh_dtype dt, int64_t i, float x, float scale, int32_t zp)
{
    q_put(p, dt, i, rintf(x / scale) + (float)zp);
}

/* Zero point tensor `t` (index, -1 = omitted) element i at run time. */
static inline int32_t q_zp(const cpu_exec *ex, int t, sh_dtype dt, int64_t i)
{
    return t < 0 ? 0 : q_get(ex->t[t], dt, i);
}

static inline float q_scale(const cpu_exec *ex, int t, int64_t i)
{
    return ((const float *)ex->t[t])[i];
}

/* ---- ConvInteger / QLinearConv (qconv.c, qconv_dnnl.c) ---------------------------------------- */
typedef struct qconv_dnnl qconv_dnnl;

typedef struct qconv_params {
    bool qlinear;
    int x, xs, xz, w, ws, wz, ys, yz, b, y;
    sh_dtype xdt, wdt, ydt;
    int64_t N, C, H, W, M, OH, OW, G, Cg, Mg, K;
    int64_t kh, kw, sh, sw, dh, dw, pt, pl;
    int64_t n_wz, n_ws;       /* 1 (per tensor) or M (per output channel) */
    int64_t chunk;            /* output pixels per task */
    size_t ws_wd, ws_thread;  /* workspace: [M x K] weights, then per thread col, step, acc (bytes) */
    int64_t pb, pr;           /* bottom / right padding (the oneDNN path) */
    qconv_dnnl *dnn;          /* oneDNN int8 path (qconv_dnnl.c), or NULL for im2col + sgemm */
    const char *path;         /* which path runs and, on im2col, why (for inspect / bench) */
    bool dequant;             /* QLinearConv with SH_QCONV_DEQUANTIZE: float output through a table
                                 of the dequantized codes with the node's activation applied;
                                 ydt is then the code's dtype */
    sh_act act;
    float act_a, act_b;
} qconv_params;

/* Saturated code of v (already rounded, zero point added) in dt's range. */
static inline int32_t q_code(sh_dtype dt, float v)
{
    v = v < q_lo(dt) ? q_lo(dt) : v > q_hi(dt) ? q_hi(dt) : v;
    return v != v ? 0 : (int32_t)v;
}

/* QLinearConv output element i from its requantized value v: the int8/uint8 code, or with
 * p->dequant the float the table gives for that code. */
static inline void qconv_put(const qconv_params *p, void *y, int64_t i, float v, const float *table)
{
    if (!p->dequant) {
        q_put(y, p->ydt, i, v);
        return;
    }
    ((float *)y)[i] = table[q_code(p->ydt, v) - (int32_t)q_lo(p->ydt)];
}

/* Fills table[256] for a dequantizing QLinearConv: each code's (code - yz) * ys, as
 * DequantizeLinear computes it, then the node's activation, as the activation op computes it. */
void qconv_dequant_table(const cpu_exec *ex, const qconv_params *p, float *table);

/* Puts the node on a oneDNN int8 convolution when its integers come out exactly as the ONNX
 * reference's; 0 when it does (p->dnn, workspace, weight packing set), negative to keep the
 * im2col path, with p->path saying why. Never an error: the im2col path serves every node. */
int qconv_dnnl_prepare(cpu_prep *pp, qconv_params *p);
int qconv_dnnl_run(const cpu_exec *ex, const sh_node *n, const qconv_params *p, sh_err *err);

#endif
