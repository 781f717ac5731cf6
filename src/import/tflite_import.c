/* TFLite flatbuffer -> sh_graph (see tflite_import.h for the layout rules).
 *
 * The schema is read by hand (tensorflow/lite/schema/schema.fbs, version 3) through the
 * bounds-checked reader in flatbuf.c; the field numbers below are the schema's field order
 * (a union takes two: its type, then its value).
 *
 * Each TFLite tensor may end up as two shoal tensors: `plain` in the file's layout and `nchw`
 * for 4-D activations that spatial ops use channels-first. Whichever one a producer writes,
 * the other is made on demand by a Transpose (activations) or by permuting the data
 * (constants), so a chain of convolutions never leaves NCHW. */
#include "import/tflite_import.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "import/flatbuf.h"

/* schema.fbs field numbers */
enum { MODEL_VERSION = 0, MODEL_OPCODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { OPCODE_DEPRECATED = 0, OPCODE_CUSTOM = 1, OPCODE_BUILTIN = 3 };
enum { SG_TENSORS = 0, SG_INPUTS = 1, SG_OUTPUTS = 2, SG_OPERATORS = 3 };
enum { TENSOR_SHAPE = 0, TENSOR_TYPE = 1, TENSOR_BUFFER = 2, TENSOR_NAME = 3, TENSOR_QUANT = 4 };
enum { BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2 };
enum { OP_OPCODE = 0, OP_INPUTS = 1, OP_OUTPUTS = 2, OP_OPTIONS_TYPE = 3, OP_OPTIONS = 4 };

enum { TFL_FLOAT32 = 0, TFL_FLOAT16 = 1, TFL_INT32 = 2, TFL_UINT8 = 3, TFL_INT64 = 4, TFL_BOOL = 6,
       TFL_INT16 = 7, TFL_INT8 = 9, TFL_FLOAT64 = 10 };

enum { ACT_NONE = 0, ACT_RELU = 1, ACT_RELU_N1_TO_1 = 2, ACT_RELU6 = 3 };
enum { PAD_SAME = 0, PAD_VALID = 1 };

/* BuiltinOperator codes shoal maps, plus names for the messages about the others. */
enum {
    B_ADD = 0, B_AVERAGE_POOL_2D = 1, B_CONCATENATION = 2, B_CONV_2D = 3, B_DEPTHWISE_CONV_2D = 4,
    B_DEQUANTIZE = 6, B_FULLY_CONNECTED = 9, B_LOGISTIC = 14, B_MAX_POOL_2D = 17, B_MUL = 18, B_RELU = 19,
    B_RELU_N1_TO_1 = 20, B_RELU6 = 21, B_RESHAPE = 22, B_RESIZE_BILINEAR = 23, B_SOFTMAX = 25, B_PAD = 34,
    B_MEAN = 40, B_SUB = 41, B_PRELU = 54, B_HARD_SWISH = 117
};

static const char *const BUILTIN_NAMES[] = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN",
    "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU"};

static const char *builtin_name(int code, char *buf, size_t cap)
{
    if (code >= 0 && code < (int)(sizeof BUILTIN_NAMES / sizeof *BUILTIN_NAMES))
        return BUILTIN_NAMES[code];
    if (code == B_HARD_SWISH)
        return "HARD_SWISH";
    snprintf(buf, cap, "builtin op %d", code);
    return buf;
}

typedef struct tfl_tensor {
    char *name;
    int type;
    sh_shape shape;         /* declared; ndim -1 when the file gives none */
    const uint8_t *data;    /* constant bytes inside the file buffer, NULL for activations */
    size_t nbytes;
    int deq_of;             /* DEQUANTIZE output: the constant it widens, else -1 */
    bool produced;          /* written by an operator or fed as a graph input */
    int plain, nchw;        /* shoal tensors (-1 until made) */
} tfl_tensor;

typedef struct tfl_ctx {
    sh_allocator *a;
    sh_graph *g;
    sh_err *err;
    const char *model;      /* label for messages */
    tfl_tensor *t;
    int nt;
    int op;                 /* operator being imported, for messages; -1 outside */
    const char *op_name;
} tfl_ctx;

/* --- messages -------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static int fail(tfl_ctx *c, int status, const char *fmt, ...)
{
    char msg[SH_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->op >= 0)
        return sh_errf(c->err, status, "%s: operator %d (%s): %s", c->model, c->op, c->op_name, msg);
    return sh_errf(c->err, status, "%s: %s", c->model, msg);
}

static int nomem(tfl_ctx *c)
{
    return fail(c, SHOAL_ERR_NO_MEMORY, "out of memory");
}

/* A flatbuffer error already in c->err: prefix the model and object. */
static int fb_fail(tfl_ctx *c, int rc, const char *what, int index)
{
    char ctx[96];
    snprintf(ctx, sizeof ctx, "%s %d", what, index);
    if (c->op >= 0)
        return sh_err_prefix(c->err, rc, "%s: operator %d (%s): %s: ", c->model, c->op, c->op_name, ctx);
    return sh_err_prefix(c->err, rc, "%s: %s: ", c->model, ctx);
}

/* --- small helpers --------------------------------------------------------------------- */

static size_t tfl_type_size(int type)
{
    switch (type) {
    case TFL_FLOAT32: case TFL_INT32: return 4;
    case TFL_FLOAT16: case TFL_INT16: return 2;
    case TFL_UINT8: case TFL_INT8: case TFL_BOOL: return 1;
    case TFL_INT64: case TFL_FLOAT64: return 8;
    default: return 0;
    }
}

static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else {   /* subnormal: renormalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static bool is_const(const tfl_ctx *c, int ti)
{
    return c->t[ti].data != NULL || c->t[ti].deq_of >= 0;
}

/* Tensor index `v` read from an operator: in range, or -1 when `optional`. */
static int check_index(tfl_ctx *c, int32_t v, bool optional, const char *role)
{
    if (v == -1 && optional)
        return 0;
    if (v < 0 || v >= c->nt)
        return fail(c, SHOAL_ERR_PARSE, "%s tensor index %d is outside the %d tensors", role, (int)v, c->nt);
    return 0;
}

/* A new shoal tensor named base+suffix, made unique with "#k" when taken. */
static int new_tensor(tfl_ctx *c, const char *base, const char *suffix, sh_dtype dt, const sh_shape *shape,
                      int *out)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    for (int k = 1; sh_graph_find_tensor(c->g, name) >= 0; k++)
        snprintf(name, sizeof name, "%s%s#%d", base, suffix, k);
    sh_shape unknown = {-1, {0}};
    int t = sh_graph_add_tensor(c->g, name, dt, shape ? shape : &unknown);
    if (t < 0)
        return nomem(c);
    *out = t;
    return 0;
}

static int add_node(tfl_ctx *c, sh_op op, const int *in, int nin, const int *out, int nout, int *node)
{
    char name[96];
    if (node)
        *node = -1;
    snprintf(name, sizeof name, "%s_%d_%s", c->op_name ? c->op_name : "io", c->op, sh_op_name(op));
    int n = sh_graph_add_node(c->g, name, op, in, nin, out, nout);
    if (n < 0)
        return nomem(c);
    if (node)
        *node = n;
    return 0;
}

static int const_tensor(tfl_ctx *c, const char *base, const char *suffix, sh_dtype dt, const sh_shape *shape,
                        void *data, size_t nbytes, int *out)
{
    int rc = new_tensor(c, base, suffix, dt, shape, out);
    if (rc) {
        sh_free(c->a, data);
        return rc;
    }
    if ((rc = sh_graph_adopt_const(c->g, *out, data, nbytes, c->err)))
        return sh_err_prefix(c->err, rc, "%s: ", c->model);
    return 0;
}

static int const_i64(tfl_ctx *c, const char *base, const char *suffix, const int64_t *v, int n, int *out)
{
    size_t nb = (size_t)n * sizeof(int64_t);
    int64_t *d = sh_alloc(c->a, nb ? nb : 1);
    if (!d)
        return nomem(c);
    memcpy(d, v, nb);
    sh_shape s = {1, {n}};
    return const_tensor(c, base, suffix, SH_DT_INT64, &s, d, nb, out);
}

static int const_f32_scalar(tfl_ctx *c, const char *base, const char *suffix, float v, int *out)
{
    float *d = sh_alloc(c->a, sizeof(float));
    if (!d)
        return nomem(c);
    *d = v;
    sh_shape s = {0, {0}};
    return const_tensor(c, base, suffix, SH_DT_FLOAT32, &s, d, sizeof(float), out);
}

/* --- constants --------------------------------------------------------------------------- */

/* The constant's values widened to float32 (float16 behind DEQUANTIZE included). The
 * caller owns *out. */
static int const_floats(tfl_ctx *c, int ti, float **out, size_t *n)
{
    const tfl_tensor *t = &c->t[ti];
    const tfl_tensor *src = t->deq_of >= 0 ? &c->t[t->deq_of] : t;
    if (!src->data)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "tensor '%s' must be a constant here", t->name);
    size_t es = tfl_type_size(src->type);
    if (src->type != TFL_FLOAT32 && src->type != TFL_FLOAT16)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "constant '%s' has type %d; only float32 and float16 weights are "
                    "supported", src->name, src->type);
    size_t cnt = src->nbytes / es;
    float *d = sh_calloc(c->a, cnt ? cnt : 1, sizeof(float));
    if (!d)
        return nomem(c);
    for (size_t i = 0; i < cnt; i++) {
        if (src->type == TFL_FLOAT32) {
            memcpy(&d[i], src->data + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, src->data + 2 * i, 2);
            d[i] = half_to_float(h);
        }
    }
    *out = d;
    *n = cnt;
    return 0;
}

/* An integer constant (int32 or int64) as int64 values, at most `cap`. */
static int const_ints(tfl_ctx *c, int ti, int64_t *v, int cap, int *n)
{
    const tfl_tensor *t = &c->t[ti];
    if (!t->data || (t->type != TFL_INT32 && t->type != TFL_INT64))
        return fail(c, SHOAL_ERR_UNSUPPORTED, "tensor '%s' must be an int32/int64 constant", t->name);
    size_t es = tfl_type_size(t->type), cnt = t->nbytes / es;
    if (cnt > (size_t)cap)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "constant '%s' holds %zu values, at most %d are expected", t->name, cnt,
                    cap);
    for (size_t i = 0; i < cnt; i++) {
        if (es == 4) {
            int32_t x;
            memcpy(&x, t->data + 4 * i, 4);
            v[i] = x;
        } else {
            memcpy(&v[i], t->data + 8 * i, 8);
        }
    }
    *n = (int)cnt;
    return 0;
}

static int make_const_plain(tfl_ctx *c, int ti)
{
    tfl_tensor *t = &c->t[ti];
    const tfl_tensor *src = t->deq_of >= 0 ? &c->t[t->deq_of] : t;
    int rc;
    if (src->type == TFL_INT32 || src->type == TFL_INT64) {
        void *d = sh_alloc(c->a, src->nbytes ? src->nbytes : 1);
        if (!d)
            return nomem(c);
        memcpy(d, src->data, src->nbytes);
        return const_tensor(c, t->name, "", src->type == TFL_INT32 ? SH_DT_INT32 : SH_DT_INT64, &src->shape, d,
                            src->nbytes, &t->plain);
    }
    float *d;
    size_t n;
    if ((rc = const_floats(c, ti, &d, &n)))
        return rc;
    return const_tensor(c, t->name, "", SH_DT_FLOAT32, &src->shape, d, n * sizeof(float), &t->plain);
}

/* A float constant of rank <= 4 as NCHW: right-aligned to NHWC first (so [C] and [1,1,C]
 * broadcast over channels as in TFLite), then permuted. */
static int make_const_nchw(tfl_ctx *c, int ti)
{
    tfl_tensor *t = &c->t[ti];
    const sh_shape *s = &c->t[t->deq_of >= 0 ? t->deq_of : ti].shape;
    if (s->ndim > 4)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "constant '%s' of rank %d meets a 4-D activation", t->name, s->ndim);
    int64_t nhwc[4] = {1, 1, 1, 1};
    for (int i = 0; i < s->ndim; i++)
        nhwc[4 - s->ndim + i] = s->d[i];
    float *d, *p;
    size_t n;
    int rc = const_floats(c, ti, &d, &n);
    if (rc)
        return rc;
    p = sh_calloc(c->a, n ? n : 1, sizeof(float));
    if (!p) {
        sh_free(c->a, d);
        return nomem(c);
    }
    int64_t N = nhwc[0], H = nhwc[1], W = nhwc[2], C = nhwc[3];
    for (int64_t b = 0; b < N; b++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++)
                for (int64_t ch = 0; ch < C; ch++)
                    p[((b * C + ch) * H + y) * W + x] = d[((b * H + y) * W + x) * C + ch];
    sh_free(c->a, d);
    sh_shape o = {4, {N, C, H, W}};
    return const_tensor(c, t->name, "/nchw", SH_DT_FLOAT32, &o, p, n * sizeof(float), &t->nchw);
}

/* --- operands in either layout ------------------------------------------------------------- */

static int transpose(tfl_ctx *c, int from, const int64_t perm[4], const char *base, const char *suffix, int *out)
{
    int rc = new_tensor(c, base, suffix, SH_DT_UNDEFINED, NULL, out), node;
    if (rc || (rc = add_node(c, SH_OP_TRANSPOSE, &from, 1, out, 1, &node)))
        return rc;
    return sh_node_set_ints(c->g, node, "perm", perm, 4) ? nomem(c) : 0;
}

static const int64_t TO_NHWC[4] = {0, 2, 3, 1}, TO_NCHW[4] = {0, 3, 1, 2};

static int plain_of(tfl_ctx *c, int ti, int *out)
{
    tfl_tensor *t = &c->t[ti];
    int rc = 0;
    if (t->plain < 0) {
        if (is_const(c, ti))
            rc = make_const_plain(c, ti);
        else if (t->nchw >= 0)
            rc = transpose(c, t->nchw, TO_NHWC, t->name, "", &t->plain);
        else
            return fail(c, SHOAL_ERR_PARSE, "tensor '%s' is read before any operator writes it", t->name);
    }
    *out = t->plain;
    return rc;
}

static int nchw_of(tfl_ctx *c, int ti, int *out)
{
    tfl_tensor *t = &c->t[ti];
    int rc = 0;
    if (t->nchw < 0) {
        if (is_const(c, ti)) {
            rc = make_const_nchw(c, ti);
        } else if (t->plain >= 0) {
            if (t->shape.ndim != 4)
                return fail(c, SHOAL_ERR_UNSUPPORTED, "tensor '%s' must be 4-D NHWC here (declared rank %d)", t->name,
                            t->shape.ndim);
            rc = transpose(c, t->plain, TO_NCHW, t->name, "/nchw", &t->nchw);
        } else {
            return fail(c, SHOAL_ERR_PARSE, "tensor '%s' is read before any operator writes it", t->name);
        }
    }
    *out = t->nchw;
    return rc;
}

/* The shoal tensor an operator writes for TFLite tensor ti (in NCHW or the file's layout).
 * With a fused activation the operator writes a temporary and an activation node writes the
 * tensor itself; *dst is what the operator node must write. */
static int output_of(tfl_ctx *c, int ti, bool nchw, int act, int *dst)
{
    tfl_tensor *t = &c->t[ti];
    if (t->produced || is_const(c, ti))
        return fail(c, SHOAL_ERR_PARSE, "tensor '%s' is written twice (or is a constant)", t->name);
    if (nchw && t->shape.ndim != 4)
        return fail(c, SHOAL_ERR_PARSE, "output '%s' must be declared 4-D (rank %d)", t->name, t->shape.ndim);
    t->produced = true;
    int *slot = nchw ? &t->nchw : &t->plain;
    int rc = new_tensor(c, t->name, nchw ? "/nchw" : "", SH_DT_UNDEFINED, NULL, slot);
    if (rc || act == ACT_NONE) {
        *dst = *slot;
        return rc;
    }
    int pre;
    if ((rc = new_tensor(c, t->name, "/pre_act", SH_DT_UNDEFINED, NULL, &pre)))
        return rc;
    *dst = pre;
    if (act == ACT_RELU)
        return add_node(c, SH_OP_RELU, &pre, 1, slot, 1, NULL);
    if (act != ACT_RELU6 && act != ACT_RELU_N1_TO_1)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "fused activation %d", act);
    int in[3] = {pre, -1, -1};
    if ((rc = const_f32_scalar(c, t->name, "/clip_min", act == ACT_RELU6 ? 0.0f : -1.0f, &in[1])) ||
        (rc = const_f32_scalar(c, t->name, "/clip_max", act == ACT_RELU6 ? 6.0f : 1.0f, &in[2])))
        return rc;
    return add_node(c, SH_OP_CLIP, in, 3, slot, 1, NULL);
}

/* --- operator import ----------------------------------------------------------------------- */

typedef struct tfl_op {
    int code;
    sh_fb_vec in, out;
    sh_fb_table opt;       /* builtin options (zeroed when absent: every field reads its default) */
} tfl_op;

static int in_at(const tfl_op *o, uint32_t i) { return i < o->in.n ? sh_fb_vec_i32(&o->in, i) : -1; }

/* Reads an option field; on malformed input records the error. */
#define OPT(getter, id, dflt, var)                                          \
    do {                                                                    \
        if ((rc = getter(&o->opt, id, dflt, &var, c->err)))                  \
            return fb_fail(c, rc, "options of operator", c->op);             \
    } while (0)

static bool geometry_ok(int64_t v) { return v >= 1 && v <= 65536; }

/* Explicit pads of one spatial dim for TFLite's SAME/VALID (SAME: the extra pixel goes at the
 * end, as TensorFlow does). */
static int pads_for(tfl_ctx *c, int padding, int64_t in, int64_t k, int64_t stride, int64_t dil, int64_t *begin,
                    int64_t *end)
{
    if (!geometry_ok(k) || !geometry_ok(stride) || !geometry_ok(dil) || in < 1 || in > ((int64_t)1 << 24))
        return fail(c, SHOAL_ERR_PARSE, "kernel %" PRId64 ", stride %" PRId64 ", dilation %" PRId64 " on %" PRId64
                    " pixels", k, stride, dil, in);
    *begin = *end = 0;
    if (padding == PAD_VALID)
        return 0;
    if (padding != PAD_SAME)
        return fail(c, SHOAL_ERR_PARSE, "padding %d is neither SAME nor VALID", padding);
    int64_t out = (in + stride - 1) / stride, eff = (k - 1) * dil + 1;
    int64_t total = (out - 1) * stride + eff - in;
    if (total < 0)
        total = 0;
    *begin = total / 2;
    *end = total - *begin;
    return 0;
}

static int need_nhwc(tfl_ctx *c, int ti, const char *role)
{
    const sh_shape *s = &c->t[ti].shape;
    if (s->ndim != 4)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "%s '%s' must be 4-D NHWC (declared rank %d)", role, c->t[ti].name,
                    s->ndim);
    for (int i = 0; i < 4; i++)
        if (s->d[i] < 1)
            return fail(c, SHOAL_ERR_PARSE, "%s '%s' declares dim %d = %" PRId64, role, c->t[ti].name, i, s->d[i]);
    return 0;
}

static int spatial_attrs(tfl_ctx *c, int node, int64_t kh, int64_t kw, int64_t sh, int64_t sw, int64_t dh,
                         int64_t dw, const int64_t pads[4], bool conv)
{
    const int64_t ks[2] = {kh, kw}, st[2] = {sh, sw}, dl[2] = {dh, dw};
    if (sh_node_set_ints(c->g, node, "kernel_shape", ks, 2) || sh_node_set_ints(c->g, node, "strides", st, 2) ||
        sh_node_set_ints(c->g, node, "pads", pads, 4) ||
        (conv && sh_node_set_ints(c->g, node, "dilations", dl, 2)))
        return nomem(c);
    return 0;
}

static int import_conv(tfl_ctx *c, const tfl_op *o, bool depthwise)
{
    int rc, xi = in_at(o, 0), wi = in_at(o, 1), bi = in_at(o, 2), yi = sh_fb_vec_i32(&o->out, 0);
    uint8_t padding;
    int8_t act;
    int32_t sw, sh, dw, dh, mult = 1;
    OPT(sh_fb_u8, 0, PAD_SAME, padding);
    OPT(sh_fb_i32, 1, 1, sw);
    OPT(sh_fb_i32, 2, 1, sh);
    if (depthwise) {
        OPT(sh_fb_i32, 3, 1, mult);
        OPT(sh_fb_i8, 4, ACT_NONE, act);
        OPT(sh_fb_i32, 5, 1, dw);
        OPT(sh_fb_i32, 6, 1, dh);
    } else {
        OPT(sh_fb_i8, 3, ACT_NONE, act);
        OPT(sh_fb_i32, 4, 1, dw);
        OPT(sh_fb_i32, 5, 1, dh);
    }
    if (xi < 0 || wi < 0 || !is_const(c, wi))
        return fail(c, SHOAL_ERR_UNSUPPORTED, "needs an input and constant weights");
    if ((rc = need_nhwc(c, xi, "input")))
        return rc;
    const sh_shape *ws = &c->t[c->t[wi].deq_of >= 0 ? c->t[wi].deq_of : wi].shape;
    if (ws->ndim != 4 || ws->d[0] < 1 || ws->d[1] < 1 || ws->d[2] < 1 || ws->d[3] < 1)
        return fail(c, SHOAL_ERR_PARSE, "weights '%s' must be 4-D", c->t[wi].name);
    int64_t C = c->t[xi].shape.d[3], H = c->t[xi].shape.d[1], W = c->t[xi].shape.d[2];
    int64_t O, KH = ws->d[1], KW = ws->d[2], group;
    if (depthwise) {
        O = ws->d[3];
        if (ws->d[0] != 1 || O % C != 0)
            return fail(c, SHOAL_ERR_PARSE, "depthwise weights %" PRId64 "x%" PRId64 " do not fit %" PRId64 " channels",
                        ws->d[0], O, C);
        group = C;
    } else {
        O = ws->d[0];
        if (C % ws->d[3] != 0)
            return fail(c, SHOAL_ERR_PARSE, "weights take %" PRId64 " channels, input has %" PRId64, ws->d[3], C);
        group = C / ws->d[3];
    }
    int64_t pads[4];
    if ((rc = pads_for(c, padding, H, KH, sh, dh, &pads[0], &pads[2])) ||
        (rc = pads_for(c, padding, W, KW, sw, dw, &pads[1], &pads[3])))
        return rc;
    float *w, *p;
    size_t n;
    if ((rc = const_floats(c, wi, &w, &n)))
        return rc;
    if (!(p = sh_calloc(c->a, n, sizeof(float)))) {
        sh_free(c->a, w);
        return nomem(c);
    }
    int64_t I = ws->d[3];
    if (depthwise)   /* [1,KH,KW,O] -> [O,1,KH,KW] */
        for (int64_t k = 0; k < KH * KW; k++)
            for (int64_t oc = 0; oc < O; oc++)
                p[oc * KH * KW + k] = w[k * O + oc];
    else             /* [O,KH,KW,I] -> [O,I,KH,KW] */
        for (int64_t oc = 0; oc < O; oc++)
            for (int64_t k = 0; k < KH * KW; k++)
                for (int64_t ic = 0; ic < I; ic++)
                    p[(oc * I + ic) * KH * KW + k] = w[(oc * KH * KW + k) * I + ic];
    sh_free(c->a, w);
    int in[3] = {-1, -1, -1}, y, node;
    sh_shape s = {4, {O, depthwise ? 1 : I, KH, KW}};
    if ((rc = const_tensor(c, c->t[wi].name, "/oihw", SH_DT_FLOAT32, &s, p, n * sizeof(float), &in[1])))
        return rc;
    if (bi >= 0) {
        if (!is_const(c, bi))
            return fail(c, SHOAL_ERR_UNSUPPORTED, "bias '%s' must be a constant", c->t[bi].name);
        if ((rc = plain_of(c, bi, &in[2])))
            return rc;
    }
    if ((rc = nchw_of(c, xi, &in[0])) || (rc = output_of(c, yi, true, act, &y)) ||
        (rc = add_node(c, SH_OP_CONV, in, bi >= 0 ? 3 : 2, &y, 1, &node)) ||
        (rc = spatial_attrs(c, node, KH, KW, sh, sw, dh, dw, pads, true)))
        return rc;
    return sh_node_set_int(c->g, node, "group", group) ? nomem(c) : 0;
}

static int import_pool(tfl_ctx *c, const tfl_op *o, sh_op op)
{
    int rc, xi = in_at(o, 0), yi = sh_fb_vec_i32(&o->out, 0), in, y, node;
    uint8_t padding;
    int32_t sw, sh, fw, fh;
    int8_t act;
    OPT(sh_fb_u8, 0, PAD_SAME, padding);
    OPT(sh_fb_i32, 1, 1, sw);
    OPT(sh_fb_i32, 2, 1, sh);
    OPT(sh_fb_i32, 3, 1, fw);
    OPT(sh_fb_i32, 4, 1, fh);
    OPT(sh_fb_i8, 5, ACT_NONE, act);
    if (xi < 0)
        return fail(c, SHOAL_ERR_PARSE, "has no input");
    if ((rc = need_nhwc(c, xi, "input")))
        return rc;
    int64_t pads[4];
    if ((rc = pads_for(c, padding, c->t[xi].shape.d[1], fh, sh, 1, &pads[0], &pads[2])) ||
        (rc = pads_for(c, padding, c->t[xi].shape.d[2], fw, sw, 1, &pads[1], &pads[3])))
        return rc;
    if ((rc = nchw_of(c, xi, &in)) || (rc = output_of(c, yi, true, act, &y)) ||
        (rc = add_node(c, op, &in, 1, &y, 1, &node)))
        return rc;
    /* TFLite's SAME average pool divides by the pixels inside the image: ONNX's default */
    return spatial_attrs(c, node, fh, fw, sh, sw, 1, 1, pads, false);
}

/* Element-wise ops run NCHW when every activation operand is 4-D and one of them already is. */
static bool pick_nchw(tfl_ctx *c, const int *ti, int n)
{
    bool any = false;
    for (int i = 0; i < n; i++) {
        if (ti[i] < 0 || is_const(c, ti[i]))
            continue;
        if (c->t[ti[i]].shape.ndim != 4)
            return false;
        any = any || c->t[ti[i]].nchw >= 0;
    }
    return any;
}

static int operand(tfl_ctx *c, int ti, bool nchw, int *out)
{
    return nchw ? nchw_of(c, ti, out) : plain_of(c, ti, out);
}

static int import_binary(tfl_ctx *c, const tfl_op *o, sh_op op)
{
    int rc, ti[2] = {in_at(o, 0), in_at(o, 1)}, yi = sh_fb_vec_i32(&o->out, 0), in[2], y;
    int8_t act;
    OPT(sh_fb_i8, 0, ACT_NONE, act);
    if (ti[0] < 0 || ti[1] < 0)
        return fail(c, SHOAL_ERR_PARSE, "needs two inputs");
    bool nchw = pick_nchw(c, ti, 2);
    if ((rc = operand(c, ti[0], nchw, &in[0])) || (rc = operand(c, ti[1], nchw, &in[1])) ||
        (rc = output_of(c, yi, nchw, act, &y)))
        return rc;
    return add_node(c, op, in, 2, &y, 1, NULL);
}

static int import_unary(tfl_ctx *c, const tfl_op *o, sh_op op, int act)
{
    int rc, xi = in_at(o, 0), yi = sh_fb_vec_i32(&o->out, 0), in, y;
    if (xi < 0)
        return fail(c, SHOAL_ERR_PARSE, "has no input");
    bool nchw = pick_nchw(c, &xi, 1);
    if ((rc = operand(c, xi, nchw, &in)) || (rc = output_of(c, yi, nchw, act, &y)))
        return rc;
    /* RELU6 / RELU_N1_TO_1 arrive as Identity + the Clip that output_of adds */
    return add_node(c, op, &in, 1, &y, 1, NULL);
}

static int import_prelu(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), ai = in_at(o, 1), yi = sh_fb_vec_i32(&o->out, 0);
    if (xi < 0 || ai < 0 || !is_const(c, ai))
        return fail(c, SHOAL_ERR_UNSUPPORTED, "needs an input and a constant slope");
    bool nchw = pick_nchw(c, &xi, 1);
    /* prelu(x) = relu(x) + alpha * (x - relu(x)): shoal's existing element-wise ops */
    int x, alpha, pos, neg, scaled, y;
    const char *nm = c->t[yi < 0 || yi >= c->nt ? xi : yi].name;
    if ((rc = operand(c, xi, nchw, &x)) || (rc = operand(c, ai, nchw, &alpha)) ||
        (rc = new_tensor(c, nm, "/prelu_pos", SH_DT_UNDEFINED, NULL, &pos)) ||
        (rc = new_tensor(c, nm, "/prelu_neg", SH_DT_UNDEFINED, NULL, &neg)) ||
        (rc = new_tensor(c, nm, "/prelu_scaled", SH_DT_UNDEFINED, NULL, &scaled)) ||
        (rc = output_of(c, yi, nchw, ACT_NONE, &y)))
        return rc;
    int sub_in[2] = {x, pos}, mul_in[2] = {neg, alpha}, add_in[2] = {pos, scaled};
    if ((rc = add_node(c, SH_OP_RELU, &x, 1, &pos, 1, NULL)) || (rc = add_node(c, SH_OP_SUB, sub_in, 2, &neg, 1, NULL)) ||
        (rc = add_node(c, SH_OP_MUL, mul_in, 2, &scaled, 1, NULL)))
        return rc;
    return add_node(c, SH_OP_ADD, add_in, 2, &y, 1, NULL);
}

static int import_concat(tfl_ctx *c, const tfl_op *o)
{
    int rc, yi = sh_fb_vec_i32(&o->out, 0), y, node;
    int32_t axis;
    int8_t act;
    OPT(sh_fb_i32, 0, 0, axis);
    OPT(sh_fb_i8, 1, ACT_NONE, act);
    int n = (int)o->in.n;
    if (n < 1 || n > 4096)
        return fail(c, SHOAL_ERR_PARSE, "%d inputs", n);
    int *ti = sh_calloc(c->a, (size_t)n, sizeof(int)), *in = sh_calloc(c->a, (size_t)n, sizeof(int));
    if (!ti || !in) {
        sh_free(c->a, ti);
        sh_free(c->a, in);
        return nomem(c);
    }
    rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if ((ti[i] = in_at(o, (uint32_t)i)) < 0)
            rc = fail(c, SHOAL_ERR_PARSE, "input %d is missing", i);
    int rank = c->t[yi].shape.ndim;
    if (!rc && (rank < 1 || axis < -rank || axis >= rank))
        rc = fail(c, SHOAL_ERR_PARSE, "axis %d for rank %d", (int)axis, rank);
    bool nchw = !rc && pick_nchw(c, ti, n);
    for (int i = 0; i < n && !rc; i++)
        rc = operand(c, ti[i], nchw, &in[i]);
    if (!rc)
        rc = output_of(c, yi, nchw, act, &y);
    if (!rc)
        rc = add_node(c, SH_OP_CONCAT, in, n, &y, 1, &node);
    sh_free(c->a, ti);
    sh_free(c->a, in);
    if (rc)
        return rc;
    if (axis < 0)
        axis += rank;
    static const int NHWC_TO_NCHW_AXIS[4] = {0, 2, 3, 1};
    return sh_node_set_int(c->g, node, "axis", nchw ? NHWC_TO_NCHW_AXIS[axis] : axis) ? nomem(c) : 0;
}

static int reshape_to(tfl_ctx *c, int from, const sh_shape *s, const char *base, const char *suffix, int to)
{
    int sh_t, rc;
    if ((rc = const_i64(c, base, suffix, s->d, s->ndim, &sh_t)))
        return rc;
    int in[2] = {from, sh_t};
    return add_node(c, SH_OP_RESHAPE, in, 2, &to, 1, NULL);
}

static bool declared(const sh_shape *s)
{
    if (s->ndim < 0)
        return false;
    for (int i = 0; i < s->ndim; i++)
        if (s->d[i] < 0)
            return false;
    return true;
}

static int import_reshape(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), yi = sh_fb_vec_i32(&o->out, 0), in, y;
    if (xi < 0)
        return fail(c, SHOAL_ERR_PARSE, "has no input");
    const sh_shape *s = &c->t[yi].shape;
    if (!declared(s))
        return fail(c, SHOAL_ERR_UNSUPPORTED, "output '%s' has no static shape", c->t[yi].name);
    if ((rc = plain_of(c, xi, &in)) || (rc = output_of(c, yi, false, ACT_NONE, &y)))
        return rc;
    return reshape_to(c, in, s, c->t[yi].name, "/shape", y);
}

static int import_fully_connected(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), wi = in_at(o, 1), bi = in_at(o, 2), yi = sh_fb_vec_i32(&o->out, 0);
    int8_t act;
    uint8_t fmt;
    OPT(sh_fb_i8, 0, ACT_NONE, act);
    OPT(sh_fb_u8, 1, 0, fmt);
    if (fmt != 0)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "weights_format %d (only DEFAULT)", fmt);
    if (xi < 0 || wi < 0 || !is_const(c, wi) || (bi >= 0 && !is_const(c, bi)))
        return fail(c, SHOAL_ERR_UNSUPPORTED, "needs an input and constant weights and bias");
    const sh_shape *ws = &c->t[c->t[wi].deq_of >= 0 ? c->t[wi].deq_of : wi].shape;
    const sh_shape *xs = &c->t[xi].shape, *ys = &c->t[yi].shape;
    int64_t nx = sh_shape_numel(xs);
    if (ws->ndim != 2 || ws->d[1] < 1 || nx < 0 || !declared(ys) || nx % ws->d[1] != 0)
        return fail(c, SHOAL_ERR_PARSE, "weights '%s' (rank %d) do not fit input '%s'", c->t[wi].name, ws->ndim,
                    c->t[xi].name);
    int64_t M = nx / ws->d[1], O = ws->d[0];
    if (O < 1 || M > INT64_MAX / O)
        return fail(c, SHOAL_ERR_PARSE, "%" PRId64 " rows of %" PRId64 " outputs overflow", M, O);
    int x, flat, w, b = -1, y, gemm_out, node;
    sh_shape fs = {2, {M, ws->d[1]}}, gs = {2, {M, O}};
    bool reshape_out = !sh_shape_equal(ys, &gs);
    if (reshape_out && sh_shape_numel(ys) != M * O)
        return fail(c, SHOAL_ERR_PARSE, "output '%s' does not hold %" PRId64 "x%" PRId64 " values", c->t[yi].name, M, O);
    if ((rc = plain_of(c, xi, &x)) || (rc = plain_of(c, wi, &w)) || (bi >= 0 && (rc = plain_of(c, bi, &b))))
        return rc;
    if (sh_shape_equal(xs, &fs)) {
        flat = x;
    } else if ((rc = new_tensor(c, c->t[xi].name, "/flat", SH_DT_UNDEFINED, NULL, &flat)) ||
               (rc = reshape_to(c, x, &fs, c->t[xi].name, "/flat_shape", flat))) {
        return rc;
    }
    if ((rc = output_of(c, yi, false, act, &y)))
        return rc;
    gemm_out = y;
    if (reshape_out && (rc = new_tensor(c, c->t[yi].name, "/gemm", SH_DT_UNDEFINED, NULL, &gemm_out)))
        return rc;
    int in[3] = {flat, w, b};
    if ((rc = add_node(c, SH_OP_GEMM, in, b >= 0 ? 3 : 2, &gemm_out, 1, &node)))
        return rc;
    if (sh_node_set_int(c->g, node, "transB", 1))
        return nomem(c);
    return reshape_out ? reshape_to(c, gemm_out, ys, c->t[yi].name, "/out_shape", y) : 0;
}

static int import_resize(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), si = in_at(o, 1), yi = sh_fb_vec_i32(&o->out, 0), node;
    uint8_t align, half;
    OPT(sh_fb_u8, 2, 0, align);
    OPT(sh_fb_u8, 3, 0, half);
    if (xi < 0 || si < 0)
        return fail(c, SHOAL_ERR_PARSE, "needs an input and a size");
    int64_t hw[2];
    int n;
    if ((rc = need_nhwc(c, xi, "input")) || (rc = const_ints(c, si, hw, 2, &n)))
        return rc;
    if (n != 2 || hw[0] < 1 || hw[1] < 1 || hw[0] > 65536 || hw[1] > 65536)
        return fail(c, SHOAL_ERR_PARSE, "size must be two positive values");
    const sh_shape *xs = &c->t[xi].shape;
    int64_t sizes[4] = {xs->d[0], xs->d[3], hw[0], hw[1]};
    int in[4] = {-1, -1, -1, -1}, y;
    if ((rc = nchw_of(c, xi, &in[0])) || (rc = const_i64(c, c->t[yi].name, "/sizes", sizes, 4, &in[3])) ||
        (rc = output_of(c, yi, true, ACT_NONE, &y)) || (rc = add_node(c, SH_OP_RESIZE, in, 4, &y, 1, &node)))
        return rc;
    /* TFLite: align_corners, else half_pixel_centers, else the legacy asymmetric mapping */
    const char *ct = align ? "align_corners" : half ? "half_pixel" : "asymmetric";
    if (sh_node_set_string(c->g, node, "mode", "linear") ||
        sh_node_set_string(c->g, node, "coordinate_transformation_mode", ct))
        return nomem(c);
    return 0;
}

static int import_pad(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), pi = in_at(o, 1), yi = sh_fb_vec_i32(&o->out, 0);
    if (xi < 0 || pi < 0)
        return fail(c, SHOAL_ERR_PARSE, "needs an input and paddings");
    int64_t p[2 * SH_MAX_DIMS], pads[2 * SH_MAX_DIMS];
    int n, r = c->t[xi].shape.ndim;
    if ((rc = const_ints(c, pi, p, 2 * SH_MAX_DIMS, &n)))
        return rc;
    if (r < 1 || n != 2 * r)
        return fail(c, SHOAL_ERR_PARSE, "%d paddings for rank %d", n, r);
    bool nchw = pick_nchw(c, &xi, 1);
    static const int NCHW_FROM_NHWC[4] = {0, 3, 1, 2};   /* NCHW dim i is NHWC dim [i] */
    for (int i = 0; i < r; i++) {
        int src = nchw ? NCHW_FROM_NHWC[i] : i;
        pads[i] = p[2 * src];
        pads[r + i] = p[2 * src + 1];
        if (pads[i] < 0 || pads[r + i] < 0 || pads[i] > 65536 || pads[r + i] > 65536)
            return fail(c, SHOAL_ERR_UNSUPPORTED, "padding %" PRId64 "/%" PRId64 " (only 0..65536)", pads[i],
                        pads[r + i]);
    }
    int in[2], y;
    if ((rc = operand(c, xi, nchw, &in[0])) || (rc = const_i64(c, c->t[yi].name, "/pads", pads, 2 * r, &in[1])) ||
        (rc = output_of(c, yi, nchw, ACT_NONE, &y)))
        return rc;
    return add_node(c, SH_OP_PAD, in, 2, &y, 1, NULL);
}

static int import_mean(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), ai = in_at(o, 1), yi = sh_fb_vec_i32(&o->out, 0), node;
    uint8_t keep;
    OPT(sh_fb_u8, 0, 0, keep);
    if (xi < 0 || ai < 0)
        return fail(c, SHOAL_ERR_PARSE, "needs an input and axes");
    int64_t axes[SH_MAX_DIMS];
    int n, r = c->t[xi].shape.ndim;
    if ((rc = const_ints(c, ai, axes, SH_MAX_DIMS, &n)))
        return rc;
    bool red[SH_MAX_DIMS] = {false};
    for (int i = 0; i < n; i++) {
        if (r < 1 || axes[i] < -r || axes[i] >= r)
            return fail(c, SHOAL_ERR_PARSE, "axis %" PRId64 " for rank %d", axes[i], r);
        if (axes[i] < 0)
            axes[i] += r;
        red[axes[i]] = true;
    }
    /* NCHW keeps the result's element order when dims are kept, or when H and W both go and C
     * stays (N,C either way) */
    bool nchw = pick_nchw(c, &xi, 1) && (keep || (red[1] && red[2] && !red[3]));
    static const int64_t NHWC_TO_NCHW_AXIS[4] = {0, 2, 3, 1};
    for (int i = 0; nchw && i < n; i++)
        axes[i] = NHWC_TO_NCHW_AXIS[axes[i]];
    int in, y;
    if ((rc = operand(c, xi, nchw, &in)) || (rc = output_of(c, yi, nchw && keep, ACT_NONE, &y)) ||
        (rc = add_node(c, SH_OP_REDUCE_MEAN, &in, 1, &y, 1, &node)))
        return rc;
    if (sh_node_set_ints(c->g, node, "axes", axes, n) || sh_node_set_int(c->g, node, "keepdims", keep ? 1 : 0))
        return nomem(c);
    return 0;
}

static int import_softmax(tfl_ctx *c, const tfl_op *o)
{
    int rc, xi = in_at(o, 0), yi = sh_fb_vec_i32(&o->out, 0), in, y, node;
    float beta;
    OPT(sh_fb_f32, 0, 1.0f, beta);
    if (beta != 1.0f)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "beta %g (only 1)", (double)beta);
    if (xi < 0)
        return fail(c, SHOAL_ERR_PARSE, "has no input");
    if ((rc = plain_of(c, xi, &in)) || (rc = output_of(c, yi, false, ACT_NONE, &y)) ||
        (rc = add_node(c, SH_OP_SOFTMAX, &in, 1, &y, 1, &node)))
        return rc;
    return sh_node_set_int(c->g, node, "axis", -1) ? nomem(c) : 0;
}

static int import_dequantize(tfl_ctx *c, const tfl_op *o)
{
    int xi = in_at(o, 0), yi = sh_fb_vec_i32(&o->out, 0);
    if (xi < 0 || !c->t[xi].data || c->t[xi].type != TFL_FLOAT16)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "only float16 constants are dequantized (input '%s')",
                    xi < 0 ? "none" : c->t[xi].name);
    if (c->t[yi].type != TFL_FLOAT32 || c->t[yi].produced || is_const(c, yi))
        return fail(c, SHOAL_ERR_PARSE, "output '%s' must be a float32 tensor written once", c->t[yi].name);
    c->t[yi].deq_of = xi;
    c->t[yi].produced = true;
    return 0;
}

static int import_op(tfl_ctx *c, const tfl_op *o)
{
    int rc;
    if (o->out.n != 1)   /* every operator shoal maps has exactly one output */
        return fail(c, SHOAL_ERR_UNSUPPORTED, "%u outputs (expected 1)", (unsigned)o->out.n);
    if ((rc = check_index(c, sh_fb_vec_i32(&o->out, 0), false, "output")))
        return rc;
    for (uint32_t i = 0; i < o->in.n; i++)
        if ((rc = check_index(c, sh_fb_vec_i32(&o->in, i), true, "input")))
            return rc;
    switch (o->code) {
    case B_CONV_2D: return import_conv(c, o, false);
    case B_DEPTHWISE_CONV_2D: return import_conv(c, o, true);
    case B_MAX_POOL_2D: return import_pool(c, o, SH_OP_MAX_POOL);
    case B_AVERAGE_POOL_2D: return import_pool(c, o, SH_OP_AVERAGE_POOL);
    case B_ADD: return import_binary(c, o, SH_OP_ADD);
    case B_SUB: return import_binary(c, o, SH_OP_SUB);
    case B_MUL: return import_binary(c, o, SH_OP_MUL);
    case B_CONCATENATION: return import_concat(c, o);
    case B_RESHAPE: return import_reshape(c, o);
    case B_FULLY_CONNECTED: return import_fully_connected(c, o);
    case B_RESIZE_BILINEAR: return import_resize(c, o);
    case B_PAD: return import_pad(c, o);
    case B_MEAN: return import_mean(c, o);
    case B_SOFTMAX: return import_softmax(c, o);
    case B_DEQUANTIZE: return import_dequantize(c, o);
    case B_PRELU: return import_prelu(c, o);
    case B_LOGISTIC: return import_unary(c, o, SH_OP_SIGMOID, ACT_NONE);
    case B_RELU: return import_unary(c, o, SH_OP_RELU, ACT_NONE);
    case B_HARD_SWISH: return import_unary(c, o, SH_OP_HARD_SWISH, ACT_NONE);
    case B_RELU6: return import_unary(c, o, SH_OP_IDENTITY, ACT_RELU6);
    case B_RELU_N1_TO_1: return import_unary(c, o, SH_OP_IDENTITY, ACT_RELU_N1_TO_1);
    default: return fail(c, SHOAL_ERR_UNSUPPORTED, "shoal has no mapping for this operator");
    }
}
#undef OPT

/* --- model structure ----------------------------------------------------------------------- */

/* Declared shape, type and constant bytes of tensor i. */
static int read_tensor(tfl_ctx *c, const sh_fb_table *tt, int i, const sh_fb_vec *buffers)
{
    tfl_tensor *t = &c->t[i];
    sh_fb_vec shape;
    const char *name;
    size_t name_len;
    int8_t type;
    uint32_t buf;
    int rc;
    if ((rc = sh_fb_vector(tt, TENSOR_SHAPE, 4, &shape, c->err)) || (rc = sh_fb_i8(tt, TENSOR_TYPE, 0, &type, c->err)) ||
        (rc = sh_fb_u32(tt, TENSOR_BUFFER, 0, &buf, c->err)) ||
        (rc = sh_fb_string(tt, TENSOR_NAME, &name, &name_len, c->err)))
        return fb_fail(c, rc, "tensor", i);
    char gen[32];
    if (!name || name_len == 0) {
        snprintf(gen, sizeof gen, "tensor_%d", i);
        name = gen;
        name_len = strlen(gen);
    }
    if (name_len > 200)   /* shoal names get suffixes; no real model needs more */
        name_len = 200;
    if (!(t->name = sh_strndup(c->a, name, name_len)))
        return nomem(c);
    t->type = type;
    if (shape.pos == 0 && !sh_fb_has(tt, TENSOR_SHAPE)) {
        t->shape.ndim = -1;
    } else {
        if (shape.n > SH_MAX_DIMS)
            return fail(c, SHOAL_ERR_UNSUPPORTED, "tensor '%s' has rank %u (at most %d)", t->name, (unsigned)shape.n,
                        SH_MAX_DIMS);
        t->shape.ndim = (int)shape.n;
        for (uint32_t d = 0; d < shape.n; d++)
            t->shape.d[d] = sh_fb_vec_i32(&shape, d);
    }
    if (buf == 0)   /* buffer 0 is the schema's empty sentinel */
        return 0;
    if (buf >= buffers->n)
        return fail(c, SHOAL_ERR_PARSE, "tensor '%s' names buffer %u of %u", t->name, (unsigned)buf,
                    (unsigned)buffers->n);
    sh_fb_table bt;
    sh_fb_vec data;
    uint64_t off, size;
    if ((rc = sh_fb_vector_table(buffers, buf, &bt, c->err)) || (rc = sh_fb_vector(&bt, BUFFER_DATA, 1, &data, c->err)) ||
        (rc = sh_fb_u64(&bt, BUFFER_OFFSET, 0, &off, c->err)) || (rc = sh_fb_u64(&bt, BUFFER_SIZE, 0, &size, c->err)))
        return fb_fail(c, rc, "buffer", (int)buf);
    const sh_fb *fb = bt.fb;
    if (data.n > 0) {
        t->data = fb->buf + data.pos;
        t->nbytes = data.n;
    } else if (off > 1 && size > 0) {   /* large models keep data past the flatbuffer; offset 1 means "none" */
        if (off > fb->len || size > fb->len - off)
            return fail(c, SHOAL_ERR_PARSE, "buffer %u of tensor '%s' ([%" PRIu64 ", +%" PRIu64 ")) lies outside the "
                        "%zu-byte file", (unsigned)buf, t->name, off, size, fb->len);
        t->data = fb->buf + off;
        t->nbytes = (size_t)size;
    } else {
        return 0;
    }
    size_t es = tfl_type_size(t->type), want;
    int64_t numel = sh_shape_numel(&t->shape);
    if (es == 0)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "constant '%s' has tensor type %d", t->name, t->type);
    if (numel < 0 || !sh_mul_size((size_t)numel, es, &want) || want != t->nbytes)
        return fail(c, SHOAL_ERR_PARSE, "constant '%s' holds %zu bytes, its shape and type need %" PRId64 " x %zu",
                    t->name, t->nbytes, numel, es);
    return 0;
}

static int read_op(tfl_ctx *c, const sh_fb_vec *ops, const sh_fb_vec *codes, int i, tfl_op *o)
{
    sh_fb_table ot, ct;
    uint32_t opcode;
    uint8_t opt_type;
    bool present;
    int rc;
    memset(o, 0, sizeof(*o));
    if ((rc = sh_fb_vector_table(ops, (uint32_t)i, &ot, c->err)) || (rc = sh_fb_u32(&ot, OP_OPCODE, 0, &opcode, c->err)) ||
        (rc = sh_fb_vector(&ot, OP_INPUTS, 4, &o->in, c->err)) || (rc = sh_fb_vector(&ot, OP_OUTPUTS, 4, &o->out, c->err)) ||
        (rc = sh_fb_u8(&ot, OP_OPTIONS_TYPE, 0, &opt_type, c->err)) ||
        (rc = sh_fb_subtable(&ot, OP_OPTIONS, &o->opt, &present, c->err)))
        return fb_fail(c, rc, "operator", i);
    if (opcode >= codes->n)
        return fail(c, SHOAL_ERR_PARSE, "operator %d uses opcode %u of %u", i, (unsigned)opcode, (unsigned)codes->n);
    int8_t dep;
    int32_t builtin;
    if ((rc = sh_fb_vector_table(codes, opcode, &ct, c->err)) || (rc = sh_fb_i8(&ct, OPCODE_DEPRECATED, 0, &dep, c->err)) ||
        (rc = sh_fb_i32(&ct, OPCODE_BUILTIN, 0, &builtin, c->err)))
        return fb_fail(c, rc, "operator code", (int)opcode);
    /* schema 3a: the real code is the larger of the deprecated byte and the int field */
    o->code = builtin > dep ? builtin : dep;
    return 0;
}

static int import_model(tfl_ctx *c, const sh_fb *fb)
{
    sh_fb_table model, sg;
    sh_fb_vec codes, subgraphs, buffers, tensors, inputs, outputs, ops;
    uint32_t version;
    int rc;
    if ((rc = sh_fb_root(fb, &model, c->err)))
        return sh_err_prefix(c->err, rc, "%s: not a TFLite model: ", c->model);
    if (fb->len >= 8 && memcmp(fb->buf + 4, "TFL3", 4) != 0)
        return fail(c, SHOAL_ERR_PARSE, "file identifier is not TFL3");
    if ((rc = sh_fb_u32(&model, MODEL_VERSION, 0, &version, c->err)) ||
        (rc = sh_fb_vector(&model, MODEL_OPCODES, 4, &codes, c->err)) ||
        (rc = sh_fb_vector(&model, MODEL_SUBGRAPHS, 4, &subgraphs, c->err)) ||
        (rc = sh_fb_vector(&model, MODEL_BUFFERS, 4, &buffers, c->err)))
        return fb_fail(c, rc, "model table", 0);
    if (version != 3)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "schema version %u (shoal reads version 3)", (unsigned)version);
    if (subgraphs.n < 1)
        return fail(c, SHOAL_ERR_PARSE, "the model has no subgraph");
    if ((rc = sh_fb_vector_table(&subgraphs, 0, &sg, c->err)) ||
        (rc = sh_fb_vector(&sg, SG_TENSORS, 4, &tensors, c->err)) ||
        (rc = sh_fb_vector(&sg, SG_INPUTS, 4, &inputs, c->err)) ||
        (rc = sh_fb_vector(&sg, SG_OUTPUTS, 4, &outputs, c->err)) ||
        (rc = sh_fb_vector(&sg, SG_OPERATORS, 4, &ops, c->err)))
        return fb_fail(c, rc, "subgraph", 0);
    if (tensors.n > 1000000 || ops.n > 1000000)
        return fail(c, SHOAL_ERR_UNSUPPORTED, "%u tensors and %u operators are more than shoal takes",
                    (unsigned)tensors.n, (unsigned)ops.n);
    c->nt = (int)tensors.n;
    if (!(c->t = sh_calloc(c->a, tensors.n ? tensors.n : 1, sizeof(tfl_tensor))))
        return nomem(c);
    for (int i = 0; i < c->nt; i++) {
        c->t[i].deq_of = c->t[i].plain = c->t[i].nchw = -1;
        sh_fb_table tt;
        if ((rc = sh_fb_vector_table(&tensors, (uint32_t)i, &tt, c->err)))
            return fb_fail(c, rc, "tensor", i);
        if ((rc = read_tensor(c, &tt, i, &buffers)))
            return rc;
    }
    if (inputs.n < 1 || outputs.n < 1)
        return fail(c, SHOAL_ERR_PARSE, "subgraph 0 has %u inputs and %u outputs", (unsigned)inputs.n,
                    (unsigned)outputs.n);
    int *io = sh_calloc(c->a, (size_t)inputs.n + outputs.n, sizeof(int));
    if (!io)
        return nomem(c);
    for (uint32_t i = 0; i < inputs.n && !rc; i++) {
        int ti = sh_fb_vec_i32(&inputs, i);
        if ((rc = check_index(c, ti, false, "graph input")))
            break;
        tfl_tensor *t = &c->t[ti];
        if (is_const(c, ti) || t->produced || !declared(&t->shape) || t->type != TFL_FLOAT32) {
            rc = fail(c, SHOAL_ERR_UNSUPPORTED, "graph input '%s' must be a float32 tensor of static shape", t->name);
            break;
        }
        t->produced = true;
        if ((rc = new_tensor(c, t->name, "", SH_DT_FLOAT32, &t->shape, &t->plain)))
            break;
        c->g->tensors[t->plain].is_input = true;
        io[i] = t->plain;
    }
    if (!rc && sh_graph_set_inputs(c->g, io, (int)inputs.n))
        rc = nomem(c);
    char nb[32];
    for (uint32_t i = 0; i < ops.n && !rc; i++) {
        tfl_op o;
        c->op = -1;
        if ((rc = read_op(c, &ops, &codes, (int)i, &o)))
            break;
        c->op = (int)i;
        c->op_name = builtin_name(o.code, nb, sizeof nb);
        rc = import_op(c, &o);
    }
    c->op = -1;
    for (uint32_t i = 0; i < outputs.n && !rc; i++) {
        int ti = sh_fb_vec_i32(&outputs, i);
        if ((rc = check_index(c, ti, false, "graph output")))
            break;
        if (is_const(c, ti) || c->t[ti].plain == c->t[ti].nchw) {   /* both -1: nothing writes it */
            rc = fail(c, SHOAL_ERR_UNSUPPORTED, "graph output '%s' is not computed by any operator", c->t[ti].name);
            break;
        }
        if ((rc = plain_of(c, ti, &io[inputs.n + i])))
            break;
        sh_tensor *gt = &c->g->tensors[io[inputs.n + i]];
        if (gt->is_input) {
            rc = fail(c, SHOAL_ERR_UNSUPPORTED, "graph output '%s' is a graph input", c->t[ti].name);
            break;
        }
        gt->is_output = true;
    }
    if (!rc && sh_graph_set_outputs(c->g, io + inputs.n, (int)outputs.n))
        rc = nomem(c);
    sh_free(c->a, io);
    return rc;
}

int sh_tflite_load_buffer(sh_allocator *a, const void *buf, size_t len, const char *name, sh_graph **out, sh_err *err)
{
    *out = NULL;
    tfl_ctx c = {.a = a, .err = err, .model = name ? name : "tflite model", .op = -1};
    sh_fb fb = {buf, len};
    if (!buf || len < 8)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: %zu bytes are not a TFLite model", c.model, len);
    if (!(c.g = sh_graph_create(a, name ? name : "tflite")))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory", c.model);
    c.g->opset = 13;   /* the ONNX op definitions the mapped nodes follow */
    int rc = import_model(&c, &fb);
    if (!rc && (rc = sh_graph_finalize(c.g, err)))
        sh_err_prefix(err, rc, "%s: ", c.model);
    for (int i = 0; c.t && i < c.nt; i++)
        sh_free(a, c.t[i].name);
    sh_free(a, c.t);
    if (rc) {
        sh_graph_destroy(c.g);
        return rc;
    }
    *out = c.g;
    return 0;
}
