/* Quantized graphs on the CUDA backend: the ONNX quantized ops and onnxruntime's com.microsoft
 * QLinear* ops (quant.cu), Cast of integers to float, and what QOperator graphs do to int8
 * tensors between them: reshape, split, concat, slice, transpose, max pooling, nearest resize,
 * and element-wise arithmetic that wraps modulo 256.
 *
 * Storage: integer tensors these nodes read or write are kept in their own dtype (one byte a
 * code, four an int32), NCHW; a float tensor they read or write is kept fp32 (cp->f32), so
 * that the quantization sees the same float32 values the CPU backend does, and the fp16
 * kernels beside them go through the fp32 staging every fp32 tensor has. Constants these nodes
 * read (int8 weights, int32 biases, float scales, zero points) are packed as their raw bytes
 * (SH_WPACK_RAW): the weight store charges an int8 weight one byte and its scales four.
 *
 * Semantics are the CPU backend's (backends/cpu/quant.c, qconv.c), including the float
 * expression of every rescaling; the 256-entry tables are computed here with the CPU
 * backend's own functions (quant_impl.h), so every integer agrees with it bit for bit. */
#include "backends/cuda/cuda_quant.h"
#include "backends/cuda/copy.cuh"
#include "backends/cuda/qgemm.cuh"
#include "backends/cuda/resize.cuh"
#include "backends/cpu/quant_impl.h"
#include "graph/passes.h"

#include <stdio.h>
#include <string.h>

#define QCAT_MAX 16

typedef enum qkind {
    QK_QUANTIZE = 0, QK_DEQUANTIZE, QK_DYNAMIC, QK_CONV, QK_MATMUL, QK_BINARY, QK_LUT, QK_CONCAT, QK_GAP,
    QK_TO_FLOAT, QK_MAX_POOL, QK_MEMCPY, QK_COPY, QK_RESIZE, QK_INT_BINARY
} qkind;

struct sh_cuda_quant {
    qkind kind;
    int xdt, ydt, zdt;
    sh_kq_axis ax;
    size_t bytes;                   /* QK_MEMCPY */
    sh_kq_conv_p conv;
    sh_kq_qconv_tab tab;
    sh_kq_mm_p mm;
    sh_kq_bin_p bin;
    sh_kq_lut lut[QCAT_MAX];        /* QK_LUT: [0]; QK_CONCAT: one per input */
    int n_parts, outer, out_len, part_len[QCAT_MAX], part_off[QCAT_MAX], part_copy[QCAT_MAX];
    int gap_n, gap_c, gap_hw, gap_cl, gap_zx, gap_zy;
    float gap_scale;
    bool tc;                        /* QK_CONV on the int8 tensor cores (qgemm.cu) */
    bool wz_zero;                   /* ... whose weight zero points are all 0 (or omitted) */
    sh_kqg_geom gm;
    char path[96];                  /* which conv kernel, and why (inspect) */
};

static int64_t numel(const sh_tensor *t) { return sh_shape_numel(&t->shape); }

static const sh_tensor *tin(const sh_graph *g, const sh_node *n, int i) { return sh_node_input(g, n, i); }

static int kq_dt(sh_dtype d)
{
    switch (d) {
    case SH_DT_INT8: return SH_KQ_I8;
    case SH_DT_UINT8: return SH_KQ_U8;
    case SH_DT_INT32: return SH_KQ_I32;
    case SH_DT_FLOAT32: return SH_KQ_F32;
    default: return -1;
    }
}

static bool is_q8(sh_dtype d) { return d == SH_DT_INT8 || d == SH_DT_UINT8; }

/* int8 / uint8 data read by an op that moves it (or, for the element-wise arithmetic of
 * QOperator graphs, wraps it modulo 256 as onnxruntime does). */
static bool int8_data_op(const sh_graph *g, const sh_node *n)
{
    switch (n->op) {
    case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE: case SH_OP_IDENTITY:
    case SH_OP_SPLIT: case SH_OP_SLICE: case SH_OP_TRANSPOSE: case SH_OP_MAX_POOL: case SH_OP_CONCAT:
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE: case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV: {
        const sh_tensor *x = tin(g, n, 0);
        return x && !x->is_const && is_q8(x->dtype);
    }
    default:
        return false;
    }
}

bool sh_cuda_quant_handles(const sh_graph *g, const sh_node *n)
{
    if (n->op >= SH_OP_QUANTIZE_LINEAR && n->op < SH_OP_COUNT)
        return true;
    if (n->op == SH_OP_CAST) {
        const sh_tensor *x = tin(g, n, 0);
        return x && !x->is_const && kq_dt(x->dtype) >= 0 && x->dtype != SH_DT_FLOAT32;
    }
    return int8_data_op(g, n);
}

void sh_cuda_quant_storage(const sh_graph *g, sh_program *p, sh_cuda_prog *cp)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || !sh_cuda_quant_handles(g, n))
            continue;
        for (int s = 0; s < n->n_inputs + n->n_outputs; s++) {
            bool out = s >= n->n_inputs;
            int t = out ? n->outputs[s - n->n_inputs] : n->inputs[s];
            if (t < 0 || (!out && sh_cuda_is_param_slot(n, s)))
                continue;
            const sh_tensor *ts = &g->tensors[t];
            int64_t ne = numel(ts);
            int dt = kq_dt(ts->dtype);
            if (ts->is_const || ts->shape.ndim < 0 || ne < 1 || dt < 0)
                continue;   /* supports_node refuses the node */
            cp->f32[t] = dt == SH_KQ_F32;
            p->tensor_bytes[t] = (size_t)ne * sh_dtype_size(ts->dtype);
        }
    }
}

/* --- supports ----------------------------------------------------------------------------- */
static bool const_scalar_f32(const sh_tensor *t, float *v)
{
    return t && t->is_const && t->data && t->dtype == SH_DT_FLOAT32 && numel(t) == 1 &&
           (*v = *(const float *)t->data, true);
}

/* A constant zero point (omitted = 0) of dtype dt, one value. */
static bool const_zp(const sh_tensor *t, sh_dtype dt, int32_t *v)
{
    *v = 0;
    if (!t)
        return true;
    if (!t->is_const || !t->data || t->dtype != dt || numel(t) != 1)
        return false;
    *v = dt == SH_DT_INT8 ? ((const int8_t *)t->data)[0] : ((const uint8_t *)t->data)[0];
    return true;
}

/* Scale of n values (1 or count) in float32, zero point of the same count in dtype zdt. */
static bool scale_zp_ok(const sh_tensor *s, const sh_tensor *z, sh_dtype zdt, int64_t count)
{
    if (!s || s->dtype != SH_DT_FLOAT32 || (numel(s) != 1 && numel(s) != count))
        return false;
    return !z || (z->dtype == zdt && numel(z) == numel(s));
}

static bool io_ok(const sh_graph *g, const sh_node *n)
{
    for (int s = 0; s < n->n_inputs + n->n_outputs; s++) {
        bool out = s >= n->n_inputs;
        int t = out ? n->outputs[s - n->n_inputs] : n->inputs[s];
        if (t < 0 || (!out && sh_cuda_is_param_slot(n, s)))
            continue;
        const sh_tensor *ts = &g->tensors[t];
        if (ts->shape.ndim < 0 || ts->shape.ndim > SH_K_MAX_DIMS || numel(ts) < 0 || numel(ts) >= INT32_MAX ||
            kq_dt(ts->dtype) < 0)
            return false;
        if (ts->is_const && !ts->data)
            return false;
    }
    return true;
}

static bool qconv_supported(const sh_graph *g, int k)
{
    const sh_node *n = &g->nodes[k];
    bool ql = n->op == SH_OP_QLINEAR_CONV;
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, ql ? 3 : 1), *y = sh_node_output(g, n, 0);
    bool deq = ql && sh_node_int(n, SH_QCONV_DEQUANTIZE, 0), req = deq && sh_node_int(n, SH_QCONV_REQUANTIZE, 0);
    if (!x || !w || !y || !is_q8(x->dtype) || !is_q8(w->dtype) || (x->shape.ndim != 3 && x->shape.ndim != 4))
        return false;
    sh_window_geom geo;
    sh_err e = {0};
    if (sh_node_window_geom(g, k, &geo, &e) || geo.n < 1 || geo.n > 2 || geo.group < 1)
        return false;
    int64_t M = y->shape.d[1];
    if (!ql) {
        const sh_tensor *xz = tin(g, n, 2), *wz = tin(g, n, 3);
        return y->dtype == SH_DT_INT32 && n->act == SH_ACT_NONE &&
               (!xz || (xz->dtype == x->dtype && numel(xz) == 1)) &&
               (!wz || (wz->dtype == w->dtype && (numel(wz) == 1 || numel(wz) == M)));
    }
    sh_dtype code = !deq ? y->dtype : tin(g, n, 7) ? tin(g, n, 7)->dtype : SH_DT_UINT8;
    if (!is_q8(code) || (deq && !req && y->dtype != SH_DT_FLOAT32) || (req && !is_q8(y->dtype)) ||
        (!deq && n->act != SH_ACT_NONE))
        return false;
    if (!scale_zp_ok(tin(g, n, 1), tin(g, n, 2), x->dtype, 1) || !scale_zp_ok(tin(g, n, 4), NULL, w->dtype, M) ||
        (tin(g, n, 5) && (tin(g, n, 5)->dtype != w->dtype || (numel(tin(g, n, 5)) != 1 && numel(tin(g, n, 5)) != M))) ||
        !scale_zp_ok(tin(g, n, 6), tin(g, n, 7), code, 1))
        return false;
    const sh_tensor *b = tin(g, n, 8);
    if (b && (b->dtype != SH_DT_INT32 || numel(b) != M))
        return false;
    float f;
    int32_t z;
    /* the output tables are built at compile time */
    if (deq && (!const_scalar_f32(tin(g, n, 6), &f) || !const_zp(tin(g, n, 7), code, &z)))
        return false;
    if (req && (!const_scalar_f32(tin(g, n, 9), &f) || !const_zp(n->n_inputs > 10 ? tin(g, n, 10) : NULL, y->dtype, &z)))
        return false;
    return true;
}

static bool qmatmul_supported(const sh_graph *g, const sh_node *n)
{
    bool ql = n->op == SH_OP_QLINEAR_MATMUL;
    const sh_tensor *a = tin(g, n, 0), *b = tin(g, n, ql ? 3 : 1), *y = sh_node_output(g, n, 0);
    if (!a || !b || !is_q8(a->dtype) || !is_q8(b->dtype) || (ql ? !is_q8(y->dtype) : y->dtype != SH_DT_INT32))
        return false;
    sh_shape sa = a->shape, sb = b->shape;
    sh_shape_matmul_promote(&sa, &sb);
    if (sa.ndim < 2 || sb.ndim < 2 || sa.ndim - 2 > SH_K_MAX_DIMS || sb.ndim - 2 > SH_K_MAX_DIMS)
        return false;
    int64_t M = sa.d[sa.ndim - 2], N = sb.d[sb.ndim - 1];
    const sh_tensor *az = tin(g, n, 2), *bz = tin(g, n, ql ? 5 : 3);
    if ((az && (az->dtype != a->dtype || (numel(az) != 1 && (ql || numel(az) != M)))) ||
        (bz && (bz->dtype != b->dtype || (numel(bz) != 1 && numel(bz) != N))))
        return false;
    if (ql && (!scale_zp_ok(tin(g, n, 1), NULL, a->dtype, 1) || !scale_zp_ok(tin(g, n, 4), NULL, b->dtype, N) ||
               !scale_zp_ok(tin(g, n, 6), tin(g, n, 7), y->dtype, 1)))
        return false;
    return true;
}

/* Constant per-tensor (scale, zero point) pairs at the given slots, zero points of dtype dt. */
static bool const_pairs(const sh_graph *g, const sh_node *n, const int *slots, int n_pairs, sh_dtype dt)
{
    for (int i = 0; i < n_pairs; i++) {
        float f;
        int32_t z;
        if (!const_scalar_f32(tin(g, n, slots[2 * i]), &f) ||
            !const_zp(slots[2 * i + 1] < n->n_inputs ? tin(g, n, slots[2 * i + 1]) : NULL, dt, &z))
            return false;
    }
    return true;
}

bool sh_cuda_quant_supports(const sh_graph *g, int k)
{
    const sh_node *n = &g->nodes[k];
    if (!io_ok(g, n))
        return false;
    const sh_tensor *x = tin(g, n, 0), *y = sh_node_output(g, n, 0);
    if (!x || !y || y->is_const)
        return false;
    switch (n->op) {
    case SH_OP_QUANTIZE_LINEAR:
    case SH_OP_DEQUANTIZE_LINEAR: {
        bool q = n->op == SH_OP_QUANTIZE_LINEAR;
        sh_dtype qdt = q ? y->dtype : x->dtype;
        if (sh_node_int(n, "block_size", 0) != 0 || (q ? x->dtype != SH_DT_FLOAT32 || !is_q8(qdt)
                                                       : !(is_q8(qdt) || qdt == SH_DT_INT32) ||
                                                             y->dtype != SH_DT_FLOAT32))
            return false;
        const sh_tensor *s = tin(g, n, 1), *z = tin(g, n, 2);
        if (!s || s->dtype != SH_DT_FLOAT32 || (z && (z->dtype != qdt || numel(z) != numel(s))))
            return false;
        if (numel(s) == 1 && s->shape.ndim <= 1)
            return true;
        int64_t axis = sh_node_int(n, "axis", 1);
        if (axis < 0)
            axis += x->shape.ndim;
        return s->shape.ndim == 1 && axis >= 0 && axis < x->shape.ndim && x->shape.d[axis] == numel(s);
    }
    case SH_OP_DYNAMIC_QUANTIZE_LINEAR:
        return x->dtype == SH_DT_FLOAT32 && y->dtype == SH_DT_UINT8 && numel(x) > 0;
    case SH_OP_CONV_INTEGER:
    case SH_OP_QLINEAR_CONV:
        return qconv_supported(g, k);
    case SH_OP_MATMUL_INTEGER:
    case SH_OP_QLINEAR_MATMUL:
        return qmatmul_supported(g, n);
    case SH_OP_QLINEAR_ADD:
    case SH_OP_QLINEAR_MUL: {
        static const int slots[] = {1, 2, 4, 5, 6, 7};
        const sh_tensor *b = tin(g, n, 3);
        return is_q8(x->dtype) && b && b->dtype == x->dtype && y->dtype == x->dtype && const_pairs(g, n, slots, 3, x->dtype);
    }
    case SH_OP_QLINEAR_SIGMOID:
    case SH_OP_QLINEAR_LEAKY_RELU:
    case SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL: {
        static const int slots[] = {1, 2, 3, 4};
        if (!is_q8(x->dtype) || y->dtype != x->dtype || !const_pairs(g, n, slots, 2, x->dtype))
            return false;
        return n->op != SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL || x->shape.ndim >= 3;
    }
    case SH_OP_QLINEAR_CONCAT: {
        int cnt = (n->n_inputs - 2) / 3;
        if (cnt < 1 || cnt > QCAT_MAX || !is_q8(y->dtype) || n->n_inputs != 2 + 3 * cnt)
            return false;
        int slots[2] = {0, 1};
        if (!const_pairs(g, n, slots, 1, y->dtype))
            return false;
        for (int i = 0; i < cnt; i++) {
            const sh_tensor *xi = tin(g, n, 2 + 3 * i);
            slots[0] = 3 + 3 * i;
            slots[1] = 4 + 3 * i;
            if (!xi || xi->dtype != y->dtype || !const_pairs(g, n, slots, 1, y->dtype))
                return false;
        }
        return true;
    }
    case SH_OP_CAST:
        return y->dtype == SH_DT_FLOAT32;
    case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE: case SH_OP_IDENTITY:
    case SH_OP_TRANSPOSE:
        return y->dtype == x->dtype;
    case SH_OP_SPLIT:
        for (int j = 0; j < n->n_outputs; j++)
            if (sh_node_output(g, n, j) && sh_node_output(g, n, j)->dtype != x->dtype)
                return false;
        return n->n_outputs <= 64;
    case SH_OP_CONCAT:
        for (int i = 0; i < n->n_inputs; i++)
            if (!tin(g, n, i) || tin(g, n, i)->dtype != y->dtype || tin(g, n, i)->is_const)
                return false;
        return n->n_inputs <= 64;
    case SH_OP_SLICE:
        return y->dtype == x->dtype &&
               (n->n_inputs <= 1 || (tin(g, n, 1) && tin(g, n, 1)->is_const && tin(g, n, 2) && tin(g, n, 2)->is_const));
    case SH_OP_MAX_POOL:
        return x->shape.ndim == 4 && n->n_outputs == 1;
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE:
        /* the fp16 kernel's nearest coordinates (resize.cu), over bytes */
        return !strcmp(sh_node_string(n, "mode", "nearest"), "nearest") && x->shape.ndim == 4 &&
               y->dtype == x->dtype && x->shape.d[0] == y->shape.d[0] && x->shape.d[1] == y->shape.d[1];
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
        return tin(g, n, 1) && tin(g, n, 1)->dtype == x->dtype && y->dtype == x->dtype;
    default:
        return false;
    }
}

/* --- compile ------------------------------------------------------------------------------ */

/* Every constant the node reads goes up as its raw bytes (but `packed`, the weights of a
 * tensor-core conv); a constant that another node reads as fp16 cannot be both. */
static int raw_weights(const sh_graph *g, sh_program *p, sh_cuda_prog *cp, const sh_node *n, int packed, sh_err *err)
{
    for (int i = 0; i < n->n_inputs; i++) {
        const sh_tensor *t = tin(g, n, i);
        if (!t || !t->is_const || sh_cuda_is_param_slot(n, i) || n->inputs[i] == packed)
            continue;
        int ti = n->inputs[i];
        size_t bytes;
        if (!sh_mul_size((size_t)numel(t), sh_dtype_size(t->dtype), &bytes))
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "constant %s: size overflows", t->name);
        if (p->weight_bytes[ti] && cp->wpack[ti] != SH_WPACK_RAW)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "constant %s is read as fp16 and by a quantized op", t->name);
        p->weight_bytes[ti] = bytes;
        cp->wpack[ti] = SH_WPACK_RAW;
    }
    return 0;
}

static int build_qdq(const sh_graph *g, const sh_node *n, struct sh_cuda_quant *q)
{
    const sh_tensor *x = tin(g, n, 0), *s = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    q->kind = n->op == SH_OP_QUANTIZE_LINEAR ? QK_QUANTIZE : QK_DEQUANTIZE;
    q->xdt = kq_dt(x->dtype);
    q->ydt = kq_dt(y->dtype);
    q->zdt = q->kind == QK_QUANTIZE ? q->ydt : q->xdt;
    q->ax.n = (int)numel(x);
    q->ax.ns = 1;
    q->ax.inner = q->ax.n > 0 ? q->ax.n : 1;
    if (numel(s) != 1 || s->shape.ndim > 1) {
        int64_t axis = sh_node_int(n, "axis", 1), inner = 1;
        if (axis < 0)
            axis += x->shape.ndim;
        for (int d = (int)axis + 1; d < x->shape.ndim; d++)
            inner *= x->shape.d[d];
        q->ax.ns = (int)numel(s);
        q->ax.inner = (int)(inner > 0 ? inner : 1);
    }
    return 0;
}

/* QLinearConv's tables, with the CPU backend's own expressions (qconv.c qconv_dequant_table). */
static void qconv_tables(const sh_graph *g, const sh_node *n, sh_dtype code, struct sh_cuda_quant *q)
{
    float ys = 0.f;
    int32_t yz = 0;
    const_scalar_f32(tin(g, n, 6), &ys);
    const_zp(tin(g, n, 7), code, &yz);
    int32_t lo = (int32_t)q_lo(code);
    for (int32_t c = 0; c < 256; c++)
        q->tab.f[c] = ((float)(c + lo) - (float)yz) * ys;
    cpu_apply_act(q->tab.f, 256, n->act, n->act_a, n->act_b);
    if (q->conv.out == SH_KQ_OUT_BYTE) {
        const sh_tensor *y = sh_node_output(g, n, 0);
        float qs = 0.f;
        int32_t qz = 0;
        const_scalar_f32(tin(g, n, 9), &qs);
        const_zp(n->n_inputs > 10 ? tin(g, n, 10) : NULL, y->dtype, &qz);
        q_quantize_run(q->tab.f, q->tab.b, y->dtype, 256, qs, qz);
    }
}

/* Whether the conv runs on the int8 tensor cores (qgemm.cu); else q->path says why not. */
static bool qconv_tc(const sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, const sh_cuda_prog *cp, int wi,
                     struct sh_cuda_quant *q)
{
    const sh_tensor *w = &g->tensors[wi];
    const char *why = NULL;
    if (c->cc_major < 8)
        why = "compute capability below 8.0";
    else if (q->conv.g != 1)
        why = "grouped";
    if (!why && (tin(g, n, 0)->shape.ndim != 4))
        why = "1-D";
    if (!why && (!is_q8(w->dtype) || !w->is_const || !w->data))
        why = "weights not a constant";
    /* zero points all 0 spare the kernel the per-pixel input sums */
    const sh_tensor *wz = tin(g, n, n->op == SH_OP_QLINEAR_CONV ? 5 : 3);
    q->wz_zero = !wz;
    if (wz && wz->is_const && wz->data) {
        q->wz_zero = true;
        for (int64_t i = 0; i < numel(wz); i++)
            q->wz_zero &= ((const uint8_t *)wz->data)[i] == 0;
    }
    if (!why && (w->n_consumers != 1 || cp->wpack[wi] != SH_WPACK_PLAIN))
        why = "weights shared with another node";
    if (why) {
        snprintf(q->path, sizeof q->path, "direct kernel: %s", why);
        return false;
    }
    snprintf(q->path, sizeof q->path, "int8 tensor cores (mma.sync m16n8k32)");
    return true;
}

static int build_qconv(const sh_cuda_ctx *c, const sh_graph *g, sh_program *pr, sh_cuda_prog *cp, int k,
                       struct sh_cuda_quant *q, size_t *ws_bytes, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    bool ql = n->op == SH_OP_QLINEAR_CONV;
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, ql ? 3 : 1), *y = sh_node_output(g, n, 0);
    bool deq = ql && sh_node_int(n, SH_QCONV_DEQUANTIZE, 0), req = deq && sh_node_int(n, SH_QCONV_REQUANTIZE, 0);
    sh_dtype code = !deq ? y->dtype : tin(g, n, 7) ? tin(g, n, 7)->dtype : SH_DT_UINT8;
    sh_window_geom geo;
    int rc = sh_node_window_geom(g, k, &geo, err);
    if (rc)
        return rc;
    bool two = geo.n == 2;
    sh_kq_conv_p *p = &q->conv;
    q->kind = QK_CONV;
    p->n = (int)x->shape.d[0];
    p->c = (int)x->shape.d[1];
    p->h = two ? (int)x->shape.d[2] : 1;
    p->w = (int)x->shape.d[x->shape.ndim - 1];
    p->m = (int)y->shape.d[1];
    p->oh = two ? (int)y->shape.d[2] : 1;
    p->ow = (int)y->shape.d[y->shape.ndim - 1];
    p->g = (int)geo.group;
    p->cg = p->c / p->g;
    p->mg = p->m / p->g;
    p->kh = two ? (int)geo.kernel[0] : 1;
    p->kw = (int)geo.kernel[geo.n - 1];
    p->sh = two ? (int)geo.stride[0] : 1;
    p->sw = (int)geo.stride[geo.n - 1];
    p->dh = two ? (int)geo.dilation[0] : 1;
    p->dw = (int)geo.dilation[geo.n - 1];
    p->pt = two ? (int)geo.pad_begin[0] : 0;
    p->pl = (int)geo.pad_begin[geo.n - 1];
    p->xdt = kq_dt(x->dtype);
    p->wdt = kq_dt(w->dtype);
    p->ydt = kq_dt(code);
    const sh_tensor *wz = tin(g, n, ql ? 5 : 3), *ws = ql ? tin(g, n, 4) : NULL;
    p->n_wz = wz ? (int)numel(wz) : 1;
    p->n_ws = ws ? (int)numel(ws) : 1;
    p->out = !ql ? SH_KQ_OUT_I32 : req ? SH_KQ_OUT_BYTE : deq ? SH_KQ_OUT_FLOAT : SH_KQ_OUT_CODE;
    if (p->g < 1 || p->c % p->g || p->m % p->g || w->shape.d[1] != p->cg)
        return sh_errf(err, SHOAL_ERR_SHAPE, "group %d does not divide channels %d -> %d", p->g, p->c, p->m);
    if (deq)
        qconv_tables(g, n, code, q);
    int wi = n->inputs[ql ? 3 : 1];
    q->tc = qconv_tc(c, g, n, cp, wi, q);
    if (!q->tc)
        return 0;
    /* the padded NHWC input (qgemm.cuh) in the workspace; packed weights charged as int8 plus
     * one int32 sum per filter */
    sh_kqg_geom *gm = &q->gm;
    gm->cp = sh_kqg_cpad(p->c);
    gm->hp = (p->oh - 1) * p->sh + (p->kh - 1) * p->dh + 1;
    gm->wp = (p->ow - 1) * p->sw + (p->kw - 1) * p->dw + 1;
    gm->kp = sh_kqg_kpad(p->kh, p->kw, p->c);
    size_t xb, wb;
    if (!sh_mul_size((size_t)p->n * (size_t)gm->hp, (size_t)gm->wp, &xb) || !sh_mul_size(xb, (size_t)gm->cp, &xb) ||
        !sh_mul_size((size_t)p->m, (size_t)gm->kp + sizeof(int32_t), &wb) || xb >= INT32_MAX)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "int8 conv workspace overflows");
    *ws_bytes = xb;
    pr->weight_bytes[wi] = wb;
    cp->wpack[wi] = SH_WPACK_Q8;
    return 0;
}

int sh_cuda_pack_q8_weight(const sh_tensor *w, void *dst, sh_err *err)
{
    if (!is_q8(w->dtype) || w->shape.ndim != 4 || !w->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "pack_weight: %s is not a 4-D int8 / uint8 constant", w->name);
    bool u8 = w->dtype == SH_DT_UINT8;
    int M = (int)w->shape.d[0], C = (int)w->shape.d[1], KH = (int)w->shape.d[2], KW = (int)w->shape.d[3];
    int cpad = sh_kqg_cpad(C), kp = sh_kqg_kpad(KH, KW, C);
    const uint8_t *src = w->data;
    uint8_t *d = dst;
    int32_t *sums = (int32_t *)(d + (size_t)M * kp);
    memset(d, 0, (size_t)M * kp);
    for (int m = 0; m < M; m++) {
        int32_t sum = 0;
        for (int ci = 0; ci < C; ci++)
            for (int t = 0; t < KH * KW; t++) {
                uint8_t v = src[((size_t)m * C + ci) * KH * KW + t];
                d[(size_t)m * kp + (size_t)t * cpad + ci] = v;
                sum += u8 ? (int32_t)v : (int32_t)(int8_t)v;
            }
        memcpy(sums + m, &sum, sizeof sum);
    }
    return 0;
}

static void build_qmatmul(const sh_graph *g, const sh_node *n, struct sh_cuda_quant *q)
{
    bool ql = n->op == SH_OP_QLINEAR_MATMUL;
    const sh_tensor *a = tin(g, n, 0), *b = tin(g, n, ql ? 3 : 1), *y = sh_node_output(g, n, 0);
    sh_kq_mm_p *p = &q->mm;
    q->kind = QK_MATMUL;
    sh_shape sa = a->shape, sb = b->shape;
    sh_shape_matmul_promote(&sa, &sb);
    p->qlinear = ql;
    p->adt = kq_dt(a->dtype);
    p->bdt = kq_dt(b->dtype);
    p->ydt = kq_dt(y->dtype);
    p->m = (int)sa.d[sa.ndim - 2];
    p->k = (int)sa.d[sa.ndim - 1];
    p->n = (int)sb.d[sb.ndim - 1];
    int nba = sa.ndim - 2, nbb = sb.ndim - 2;
    p->nb = nba > nbb ? nba : nbb;
    p->batches = 1;
    int64_t acc_a = 1, acc_b = 1;
    for (int d = p->nb - 1; d >= 0; d--) {
        int da = d - (p->nb - nba), db = d - (p->nb - nbb);
        int64_t ea = da >= 0 ? sa.d[da] : 1, eb = db >= 0 ? sb.d[db] : 1;
        p->bdims[d] = (int)(ea > eb ? ea : eb);
        p->sa[d] = ea == 1 ? 0 : (int)acc_a;
        p->sb[d] = eb == 1 ? 0 : (int)acc_b;
        acc_a *= ea;
        acc_b *= eb;
        p->batches *= p->bdims[d];
    }
    const sh_tensor *az = tin(g, n, 2), *bz = tin(g, n, ql ? 5 : 3), *bs = ql ? tin(g, n, 4) : NULL;
    p->n_az = az ? (int)numel(az) : 1;
    p->n_bz = bz ? (int)numel(bz) : 1;
    p->n_bs = bs ? (int)numel(bs) : 1;
}

static float cscale(const sh_graph *g, const sh_node *n, int slot)
{
    float v = 0.f;
    const_scalar_f32(tin(g, n, slot), &v);
    return v;
}

static int32_t czp(const sh_graph *g, const sh_node *n, int slot, sh_dtype dt)
{
    int32_t v = 0;
    const_zp(slot < n->n_inputs ? tin(g, n, slot) : NULL, dt, &v);
    return v;
}

/* Right-aligned broadcasting of a and b to y, strides in elements (0 on a broadcast dim). */
static void bcast(const sh_tensor *a, const sh_tensor *b, const sh_tensor *y, sh_kq_bin_p *p)
{
    p->nd = y->shape.ndim > 0 ? y->shape.ndim : 1;
    p->dims[0] = 1;
    p->sa[0] = p->sb[0] = 0;
    int64_t st_a = 1, st_b = 1;
    for (int d = y->shape.ndim - 1; d >= 0; d--) {
        int da = d - (y->shape.ndim - a->shape.ndim), db = d - (y->shape.ndim - b->shape.ndim);
        int64_t ea = da >= 0 ? a->shape.d[da] : 1, eb = db >= 0 ? b->shape.d[db] : 1;
        p->dims[d] = (int)y->shape.d[d];
        p->sa[d] = ea == 1 ? 0 : (int)st_a;
        p->sb[d] = eb == 1 ? 0 : (int)st_b;
        st_a *= ea;
        st_b *= eb;
    }
}

static void build_qbinary(const sh_graph *g, const sh_node *n, struct sh_cuda_quant *q)
{
    const sh_tensor *a = tin(g, n, 0), *b = tin(g, n, 3), *y = sh_node_output(g, n, 0);
    sh_kq_bin_p *p = &q->bin;
    q->kind = QK_BINARY;
    p->mul = n->op == SH_OP_QLINEAR_MUL;
    p->dt = kq_dt(a->dtype);
    bcast(a, b, y, p);
    /* quant.c qbin_run's factors, in its expression order */
    float sa = cscale(g, n, 1), sb = cscale(g, n, 4), sc = cscale(g, n, 6);
    p->za = czp(g, n, 2, a->dtype);
    p->zb = czp(g, n, 5, a->dtype);
    int32_t zc = czp(g, n, 7, a->dtype);
    if (p->mul) {
        p->ra = sa * sb / sc;
        p->fixed = (float)zc;
    } else {
        p->ra = sa / sc;
        p->rb = sb / sc;
        p->fixed = (float)zc - (p->ra * (float)p->za + p->rb * (float)p->zb);
    }
}

static float f_sigmoid(float x, float unused)
{
    (void)unused;
    return cpu_logistic(x);
}

static float f_leaky_relu(float x, float alpha)
{
    return x >= 0.0f ? x : x * alpha;
}

static int build_qconcat(const sh_graph *g, const sh_node *n, struct sh_cuda_quant *q, sh_err *err)
{
    const sh_tensor *y = sh_node_output(g, n, 0);
    int cnt = (n->n_inputs - 2) / 3;
    int64_t axis = sh_node_int(n, "axis", 0);
    if (axis < 0)
        axis += y->shape.ndim;
    if (axis < 0 || axis >= y->shape.ndim)
        return sh_errf(err, SHOAL_ERR_SHAPE, "axis %lld", (long long)sh_node_int(n, "axis", 0));
    int64_t inner = 1, outer = 1;
    for (int d = 0; d < axis; d++)
        outer *= y->shape.d[d];
    for (int d = (int)axis + 1; d < y->shape.ndim; d++)
        inner *= y->shape.d[d];
    q->kind = QK_CONCAT;
    q->n_parts = cnt;
    q->outer = (int)outer;
    q->out_len = (int)(y->shape.d[axis] * inner);
    float sy = cscale(g, n, 0);
    int32_t zy = czp(g, n, 1, y->dtype);
    int off = 0;
    for (int i = 0; i < cnt; i++) {
        const sh_tensor *x = tin(g, n, 2 + 3 * i);
        float sx = cscale(g, n, 3 + 3 * i);
        int32_t zx = czp(g, n, 4 + 3 * i, y->dtype);
        q->part_len[i] = (int)(x->shape.d[axis] * inner);
        q->part_off[i] = off;
        q->part_copy[i] = sx == sy && zx == zy;
        if (!q->part_copy[i])
            q_build_lut(q->lut[i].b, y->dtype, sx, zx, sy, zy, NULL, 0.0f);
        off += q->part_len[i];
    }
    return 0;
}

int sh_cuda_build_quant(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_cuda_node *cn = &cp->nodes[k];
    struct sh_cuda_quant *q = sh_calloc(c->alloc, 1, sizeof *q);
    if (!q)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda compile: node %s", n->name);
    cn->quant = q;
    cn->kind = NK_QUANT;
    const sh_tensor *x = tin(g, n, 0), *y = sh_node_output(g, n, 0);
    cn->n = (int)numel(y);
    int rc = 0, packed = -1;
    size_t ws = 0;
    switch (n->op) {
    case SH_OP_QUANTIZE_LINEAR: case SH_OP_DEQUANTIZE_LINEAR:
        rc = build_qdq(g, n, q);
        break;
    case SH_OP_DYNAMIC_QUANTIZE_LINEAR:
        q->kind = QK_DYNAMIC;
        ws = 2 * SH_KQ_DYN_BLOCKS * sizeof(float);
        break;
    case SH_OP_CONV_INTEGER: case SH_OP_QLINEAR_CONV:
        rc = build_qconv(c, g, p, cp, k, q, &ws, err);
        packed = q->tc ? n->inputs[n->op == SH_OP_QLINEAR_CONV ? 3 : 1] : -1;
        break;
    case SH_OP_MATMUL_INTEGER: case SH_OP_QLINEAR_MATMUL:
        build_qmatmul(g, n, q);
        break;
    case SH_OP_QLINEAR_ADD: case SH_OP_QLINEAR_MUL:
        build_qbinary(g, n, q);
        break;
    case SH_OP_QLINEAR_SIGMOID: case SH_OP_QLINEAR_LEAKY_RELU:
        q->kind = QK_LUT;
        q_build_lut(q->lut[0].b, x->dtype, cscale(g, n, 1), czp(g, n, 2, x->dtype), cscale(g, n, 3),
                  czp(g, n, 4, x->dtype), n->op == SH_OP_QLINEAR_SIGMOID ? f_sigmoid : f_leaky_relu,
                  sh_node_float(n, "alpha", 0.01f));
        break;
    case SH_OP_QLINEAR_CONCAT:
        rc = build_qconcat(g, n, q, err);
        break;
    case SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL: {
        q->kind = QK_GAP;
        q->gap_cl = sh_node_int(n, "channels_last", 0) != 0;
        int r = x->shape.ndim;
        q->gap_n = (int)x->shape.d[0];
        q->gap_c = (int)x->shape.d[q->gap_cl ? r - 1 : 1];
        q->gap_hw = q->gap_n > 0 && q->gap_c > 0 ? (int)(numel(x) / ((int64_t)q->gap_n * q->gap_c)) : 0;
        q->gap_zx = czp(g, n, 2, x->dtype);
        q->gap_zy = czp(g, n, 4, x->dtype);
        /* quant.c qgap_run: xs / (ys * hw) */
        q->gap_scale = cscale(g, n, 1) / (cscale(g, n, 3) * (float)q->gap_hw);
        break;
    }
    case SH_OP_CAST:
        q->kind = QK_TO_FLOAT;
        break;
    case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE: case SH_OP_IDENTITY:
        q->kind = QK_MEMCPY;
        q->bytes = (size_t)numel(y) * sh_dtype_size(y->dtype);
        break;
    case SH_OP_MAX_POOL:
        rc = sh_cuda_build_pool(g, n, cn, false, err);
        q->kind = QK_MAX_POOL;
        break;
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE:
        rc = sh_cuda_build_resize(g, n, cn, false, err);
        q->kind = QK_RESIZE;
        break;
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
        q->kind = QK_INT_BINARY;
        q->bin.dt = kq_dt(x->dtype);
        q->bin.mul = n->op == SH_OP_ADD ? SH_K_ADD : n->op == SH_OP_SUB ? SH_K_SUB : n->op == SH_OP_MUL ? SH_K_MUL : SH_K_DIV;
        bcast(x, tin(g, n, 1), y, &q->bin);
        break;
    case SH_OP_SPLIT: case SH_OP_CONCAT: case SH_OP_SLICE: case SH_OP_TRANSPOSE: {
        bool aliased[64] = {false};
        rc = n->op == SH_OP_SPLIT ? sh_cuda_build_split(c, g, n, cn, aliased, false, err)
           : n->op == SH_OP_CONCAT ? sh_cuda_build_concat(c, g, n, cn, aliased, false, err)
           : n->op == SH_OP_SLICE ? sh_cuda_build_slice(c, g, n, cn, err)
                                  : sh_cuda_build_transpose(c, g, n, cn, err);
        if (!rc && (cn->kind != NK_COPY || cn->fill))
            rc = sh_errf(err, SHOAL_ERR_INTERNAL, "int8 %s is not a plain copy", sh_op_name(n->op));
        q->kind = QK_COPY;
        break;
    }
    default:
        rc = sh_errf(err, SHOAL_ERR_UNSUPPORTED, "no CUDA quantized kernel");
        break;
    }
    cn->kind = NK_QUANT;
    if (!rc)
        rc = raw_weights(g, p, cp, n, packed, err);
    if (rc)
        return rc;
    cn->op_ws_off = 0;
    cn->op_ws_bytes = ws;
    p->workspace_bytes[k] = sh_align_up(ws, SH_CUDA_ALIGN);
    return 0;
}

/* --- run ---------------------------------------------------------------------------------- */
static const void *in_at(const sh_node *n, void *const *tp, int i)
{
    return i < n->n_inputs && n->inputs[i] >= 0 ? tp[n->inputs[i]] : NULL;
}

static void *out_at(const sh_node *n, void *const *tp, int j)
{
    return j < n->n_outputs && n->outputs[j] >= 0 ? tp[n->outputs[j]] : NULL;
}

int sh_cuda_run_quant(sh_cuda_ctx *c, cudaStream_t s, const sh_graph *g, const sh_node *n, const sh_cuda_node *cn,
                      void *const *tp, char *ws, sh_err *err)
{
    const struct sh_cuda_quant *q = cn->quant;
    void *y = out_at(n, tp, 0);
    const void *x = in_at(n, tp, 0);
    switch (q->kind) {
    case QK_QUANTIZE:
        SH_CU(c, err, sh_kq_quantize(y, q->ydt, x, q->ax, in_at(n, tp, 1), in_at(n, tp, 2), q->zdt, s));
        break;
    case QK_DEQUANTIZE:
        SH_CU(c, err, sh_kq_dequantize(y, x, q->xdt, q->ax, in_at(n, tp, 1), in_at(n, tp, 2), s));
        break;
    case QK_DYNAMIC:
        SH_CU(c, err, sh_kq_dynamic_quantize(y, out_at(n, tp, 1), out_at(n, tp, 2), x,
                                             (int)numel(&g->tensors[n->inputs[0]]), (float *)(ws + cn->op_ws_off),
                                             s));
        break;
    case QK_CONV: {
        bool ql = n->op == SH_OP_QLINEAR_CONV;
        sh_kq_conv_io io = {.y = y, .x = x, .w = in_at(n, tp, ql ? 3 : 1), .xz = in_at(n, tp, 2),
                            .wz = in_at(n, tp, ql ? 5 : 3)};
        if (ql) {
            io.xs = in_at(n, tp, 1);
            io.ws = in_at(n, tp, 4);
            io.ys = in_at(n, tp, 6);
            io.yz = in_at(n, tp, 7);
            io.bias = in_at(n, tp, 8);
        }
        if (q->tc) {
            if (q->wz_zero)
                io.wz = NULL;
            SH_CU(c, err, sh_kq_conv_tc(&io, &q->conv, &q->gm, &q->tab, ws + cn->op_ws_off, s));
        }
        else
            SH_CU(c, err, sh_kq_conv(&io, &q->conv, &q->tab, s));
        break;
    }
    case QK_MATMUL: {
        bool ql = n->op == SH_OP_QLINEAR_MATMUL;
        sh_kq_mm_io io = {.y = y, .a = x, .b = in_at(n, tp, ql ? 3 : 1), .az = in_at(n, tp, 2),
                          .bz = in_at(n, tp, ql ? 5 : 3)};
        if (ql) {
            io.as = in_at(n, tp, 1);
            io.bs = in_at(n, tp, 4);
            io.ys = in_at(n, tp, 6);
            io.yz = in_at(n, tp, 7);
        }
        SH_CU(c, err, sh_kq_matmul(&io, &q->mm, s));
        break;
    }
    case QK_BINARY:
        SH_CU(c, err, sh_kq_binary(y, x, in_at(n, tp, 3), cn->n, &q->bin, s));
        break;
    case QK_LUT:
        SH_CU(c, err, sh_kq_lookup(y, x, cn->n, &q->lut[0], s));
        break;
    case QK_CONCAT:
        for (int i = 0; i < q->n_parts; i++)
            SH_CU(c, err, sh_kq_concat_part(y, in_at(n, tp, 2 + 3 * i), q->outer, q->part_len[i], q->out_len,
                                            q->part_off[i], q->part_copy[i], &q->lut[i], s));
        break;
    case QK_GAP:
        SH_CU(c, err, sh_kq_gap(y, x, kq_dt(g->tensors[n->inputs[0]].dtype), q->gap_n, q->gap_c, q->gap_hw,
                                q->gap_cl, q->gap_zx, q->gap_zy, q->gap_scale, s));
        break;
    case QK_TO_FLOAT:
        SH_CU(c, err, sh_kq_to_float(y, x, kq_dt(g->tensors[n->inputs[0]].dtype), cn->n, s));
        break;
    case QK_MAX_POOL:
        SH_CU(c, err, sh_kq_max_pool(y, x, kq_dt(g->tensors[n->inputs[0]].dtype), &cn->pool, s));
        break;
    case QK_MEMCPY:
        SH_CU(c, err, cudaMemcpyAsync(y, x, q->bytes, cudaMemcpyDeviceToDevice, s));
        break;
    case QK_RESIZE:
        SH_CU(c, err, sh_k_resize_bytes(y, x, &cn->rs, s));
        break;
    case QK_INT_BINARY:
        SH_CU(c, err, sh_kq_int_binary(y, x, in_at(n, tp, 1), cn->n, &q->bin, s));
        break;
    case QK_COPY:
        for (int i = 0; i < cn->n_copies; i++) {
            const sh_cuda_copy *cc = &cn->copies[i];
            SH_CU(c, err, sh_kq_copy_bytes(out_at(n, tp, cc->out_slot), in_at(n, tp, cc->in_slot), &cc->p, s));
        }
        break;
    }
    return 0;
}

const char *sh_backend_cuda_node_path(const sh_program *p, int node)
{
    const sh_cuda_prog *cp = p ? p->impl : NULL;
    if (!cp || node < 0 || node >= p->graph->n_nodes)
        return NULL;
    const sh_cuda_node *cn = &cp->nodes[node];
    return cn->kind == NK_QUANT && cn->quant->kind == QK_CONV ? cn->quant->path : NULL;
}
