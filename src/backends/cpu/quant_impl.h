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

/* q_quantize over a run of n elements sharing one scale and zero point, in a loop shape the
 * compiler vectorises (the same division, rounding, saturation and NaN -> 0 as q_put). */
static inline void q_quantize_run(const float *restrict x, void *restrict y, sh_dtype dt, int64_t n, float scale,
                                  int32_t zp)
{
    float z = (float)zp, lo = q_lo(dt), hi = q_hi(dt);
    if (dt == SH_DT_UINT8) {
        uint8_t *restrict u = y;
        for (int64_t i = 0; i < n; i++) {
            float v = rintf(x[i] / scale) + z;
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            v = v == v ? v : 0.0f;
            u[i] = (uint8_t)(int32_t)v;
        }
    } else {
        int8_t *restrict s = y;
        for (int64_t i = 0; i < n; i++) {
            float v = rintf(x[i] / scale) + z;
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            v = v == v ? v : 0.0f;
            s[i] = (int8_t)(int32_t)v;
        }
    }
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
    char path_buf[112];       /* where path is composed (qconv_dnnl.c) */
    bool dequant;             /* QLinearConv with SH_QCONV_DEQUANTIZE: float output through a table
                                 of the dequantized codes with the node's activation applied;
                                 ydt is then the code's dtype */
    bool requant;             /* also SH_QCONV_REQUANTIZE: that float quantized again with the
                                 scale / zero point of inputs qs, qz into codes of qdt, through a
                                 byte table */
    int qs, qz;
    sh_dtype qdt;
    bool in_nhwc, out_nhwc;   /* oneDNN path: int8 x / y kept NHWC (cpu_qconv_link_nhwc) */
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
static inline void qconv_put(const qconv_params *p, void *y, int64_t i, float v, const float *table,
                             const uint8_t *qtable)
{
    if (!p->dequant) {
        q_put(y, p->ydt, i, v);
        return;
    }
    int32_t c = q_code(p->ydt, v) - (int32_t)q_lo(p->ydt);
    if (p->requant)
        ((uint8_t *)y)[i] = qtable[c];
    else
        ((float *)y)[i] = table[c];
}

/* Fills table[256] for a dequantizing QLinearConv: each code's (code - yz) * ys, as
 * DequantizeLinear computes it, then the node's activation, as the activation op computes it;
 * with p->requant also qtable[256], those values quantized as QuantizeLinear does (the bytes of
 * qdt's codes). */
void qconv_dequant_table(const cpu_exec *ex, const qconv_params *p, float *table, uint8_t *qtable);
/* Bytes after the [M] requantization scales that the tables need (float[256] + byte[256]). */
#define QCONV_TABLE_BYTES (256 * sizeof(float) + 256)

/* Keeps the int8 tensors between oneDNN QLinearConvs (and from a per-tensor QuantizeLinear
 * into them) NHWC, so that no one transposes them (qconv_dnnl.c); fns/params are the nodes'. */
void cpu_qconv_link_nhwc(const sh_graph *g, cpu_kernel_fn const *fns, void *const *params);
/* Whether fn/params is a QuantizeLinear that can write its output NHWC (quant.c), and then
 * sets it to (out) or leaves it. */
bool cpu_quantize_nhwc_capable(cpu_kernel_fn fn, const void *params);
void cpu_quantize_set_nhwc(void *params);

/* Puts the node on a oneDNN int8 convolution when its integers come out exactly as the ONNX
 * reference's; 0 when it does (p->dnn, workspace, weight packing set), negative to keep the
 * im2col path, with p->path saying why. Never an error: the im2col path serves every node. */
int qconv_dnnl_prepare(cpu_prep *pp, qconv_params *p);
int qconv_dnnl_run(const cpu_exec *ex, const sh_node *n, const qconv_params *p, sh_err *err);

/* Fills a 256-entry table mapping each raw byte of dt to out = f(dequantized in), as the
 * CPU backend's kernels and the CUDA backend's tables (cuda_quant.c) both map them. */
static inline void q_build_lut(uint8_t *lut, sh_dtype dt, float sx, int32_t zx, float sy, int32_t zy,
                               float (*f)(float, float), float fa)
{
    for (int b = 0; b < 256; b++) {
        int32_t q = dt == SH_DT_INT8 ? (int32_t)(int8_t)(uint8_t)b : b;
        float x = (float)(q - zx) * sx;
        uint8_t out[1];
        q_quantize(out, dt, 0, f ? f(x, fa) : x, sy, zy);
        lut[b] = out[0];
    }
}

#endif
