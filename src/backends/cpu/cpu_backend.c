/* The CPU backend: fp32 kernels (int32/int64 for shape arithmetic), a thread pool per
 * context, OpenBLAS for the GEMMs of Conv, ConvTranspose, MatMul and Gemm.
 *
 * compile() gives each node a kernel and a params block computed from the static shapes;
 * run() calls the kernels in graph order with the pointers of the binding. Constants are
 * used as they are (pack_weight copies), activations take dtype-size * numel bytes. */
#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/cpu_report.h"
#include "backends/cpu/quant_impl.h"

#include <assert.h>
#include <cblas.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct cpu_node {
    cpu_kernel_fn fn;
    void *params;
    void (*free_params)(cpu_ctx *ctx, void *params);
    int (*pack)(cpu_ctx *ctx, const void *params, const void *src, void *dst, sh_err *err);
} cpu_node;

typedef struct cpu_program {
    cpu_node *nodes;
    cpu_layout_node *layout;   /* [n_nodes] what each kernel can run in, and the pass's choice */
    sh_cpu_layout_stats layout_stats;
    int n_nodes;
    int *pack_node;        /* [n_tensors] node whose pack() lays out this constant, or -1 */
} cpu_program;

/* ---- helpers --------------------------------------------------------------------------- */

void *cpu_params(cpu_prep *pp, size_t size, sh_err *err)
{
    assert(!pp->params);
    pp->params = sh_calloc(pp->ctx->alloc, 1, size ? size : 1);
    if (!pp->params)
        sh_errf(err, SHOAL_ERR_NO_MEMORY, "node %s (%s): out of memory for kernel params",
                pp->n->name, sh_op_name(pp->n->op));
    return pp->params;
}

const sh_tensor *cpu_in(const cpu_prep *pp, int i)
{
    return sh_node_input(pp->g, pp->n, i);
}

const sh_tensor *cpu_out(const cpu_prep *pp, int i)
{
    return sh_node_output(pp->g, pp->n, i);
}

int64_t cpu_numel(const sh_tensor *t)
{
    return sh_shape_numel(&t->shape);
}

int cpu_axis(int64_t axis, int rank)
{
    if (axis < 0)
        axis += rank;
    return axis >= 0 && axis < rank ? (int)axis : -1;
}

void cpu_strides(const sh_shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->d[i];
    }
}

/* Broadcast strides of `in` against the output shape; legacy (opset < 7) `axis` aligns the
 * operand's dims starting at that output axis instead of at the right. */
static int bcast_strides(const sh_shape *in, const sh_shape *out, int align_at, int64_t *st)
{
    int64_t ist[SH_MAX_DIMS];
    cpu_strides(in, ist);
    int start = align_at >= 0 ? align_at : out->ndim - in->ndim;
    if (start < 0 || start + in->ndim > out->ndim)
        return -1;
    for (int d = 0; d < out->ndim; d++) {
        int id = d - start;
        if (id < 0 || id >= in->ndim) {
            st[d] = 0;
            continue;
        }
        if (in->d[id] == out->d[d])
            st[d] = in->d[id] == 1 ? 0 : ist[id];
        else if (in->d[id] == 1)
            st[d] = 0;
        else
            return -1;
    }
    return 0;
}

int cpu_bcast_pair(const cpu_prep *pp, const sh_tensor *A, const sh_tensor *B, int align_b, int64_t *sa,
                   int64_t *sb, sh_err *err)
{
    const sh_tensor *Y = cpu_out(pp, 0);
    if (bcast_strides(&A->shape, &Y->shape, -1, sa) < 0 || bcast_strides(&B->shape, &Y->shape, align_b, sb) < 0) {
        char s1[96], s2[96], s3[96];
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "cannot broadcast %s and %s to %s",
                       sh_shape_str(&A->shape, s1, sizeof s1), sh_shape_str(&B->shape, s2, sizeof s2),
                       sh_shape_str(&Y->shape, s3, sizeof s3));
    }
    return 0;
}

/* The constant behind `input`, checked to hold at most `cap` values: its value count (0 when
 * the input is omitted), or a negative status naming the node. */
static int64_t const_input(const cpu_prep *pp, int input, int cap, const sh_tensor **out, sh_err *err)
{
    const sh_tensor *t = cpu_in(pp, input);
    *out = t;
    if (!t)
        return 0;
    if (!t->is_const)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): input %d '%s' must be a constant "
                       "(static shapes)", pp->n->name, sh_op_name(pp->n->op), input, t->name);
    int64_t n = cpu_numel(t);
    if (n < 0 || n > cap)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): input '%s' has %lld values (max %d)",
                       pp->n->name, sh_op_name(pp->n->op), t->name, (long long)n, cap);
    return n;
}

int cpu_const_ints(const cpu_prep *pp, int input, int64_t *vals, int cap, sh_err *err)
{
    const sh_tensor *t;
    int64_t n = const_input(pp, input, cap, &t, err);
    if (n <= 0)
        return (int)n;
    if (t->dtype != SH_DT_INT64 && t->dtype != SH_DT_INT32)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): input '%s' must be int32/int64, not %s",
                       pp->n->name, sh_op_name(pp->n->op), t->name, sh_dtype_name(t->dtype));
    for (int64_t i = 0; i < n; i++)
        vals[i] = t->dtype == SH_DT_INT64 ? ((const int64_t *)t->data)[i] : ((const int32_t *)t->data)[i];
    return (int)n;
}

int cpu_const_floats(const cpu_prep *pp, int input, double *vals, int cap, sh_err *err)
{
    const sh_tensor *t;
    int64_t n = const_input(pp, input, cap, &t, err);
    if (n <= 0)
        return (int)n;
    if (t->dtype != SH_DT_FLOAT32 && t->dtype != SH_DT_FLOAT64)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): input '%s' must be float, not %s",
                       pp->n->name, sh_op_name(pp->n->op), t->name, sh_dtype_name(t->dtype));
    for (int64_t i = 0; i < n; i++)
        vals[i] = t->dtype == SH_DT_FLOAT32 ? ((const float *)t->data)[i] : ((const double *)t->data)[i];
    return (int)n;
}

/* ---- op table ---------------------------------------------------------------------------- */

typedef enum dt_class {
    DTC_FLOAT,      /* data input 0 / output 0 float32; other slots float32 or int params */
    DTC_MOVE,       /* data movement: float32, int32 or int64 */
    DTC_ARITH,      /* all operands one of float32, int32, int64 (int8/uint8 too: quantized data) */
    DTC_WIDE,       /* Mod, Range: all operands one of float32, int32, int64, never 8-bit */
    DTC_ANY_IN,     /* Shape: input dtype irrelevant */
    DTC_CAST,
    DTC_CONST,      /* Constant, ConstantOfShape: any fixed-size dtype */
    DTC_FRAME,      /* frame ops: each slot's dtype is fixed by the op, checked by its prepare */
    DTC_QUANT       /* quantized ops: int8/uint8/int32/float32, checked by quant.c's prepare */
} dt_class;

static const struct {
    cpu_prepare_fn prep;
    dt_class dtc;
} OPS[] = {
    [SH_OP_CONV] = {cpu_prep_conv, DTC_FLOAT},
    [SH_OP_CONV_TRANSPOSE] = {cpu_prep_conv_transpose, DTC_FLOAT},
    [SH_OP_BATCH_NORM] = {cpu_prep_batch_norm, DTC_FLOAT},
    [SH_OP_RELU] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_SIGMOID] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_HARD_SIGMOID] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_HARD_SWISH] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_CLIP] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_EXP] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_SILU] = {cpu_prep_unary, DTC_FLOAT},
    [SH_OP_ADD] = {cpu_prep_binary, DTC_ARITH},
    [SH_OP_SUB] = {cpu_prep_binary, DTC_ARITH},
    [SH_OP_MUL] = {cpu_prep_binary, DTC_ARITH},
    [SH_OP_DIV] = {cpu_prep_binary, DTC_ARITH},
    [SH_OP_CONCAT] = {cpu_prep_concat, DTC_MOVE},
    [SH_OP_SPLIT] = {cpu_prep_split, DTC_MOVE},
    [SH_OP_SLICE] = {cpu_prep_slice, DTC_MOVE},
    [SH_OP_MAX_POOL] = {cpu_prep_pool, DTC_FLOAT},
    [SH_OP_AVERAGE_POOL] = {cpu_prep_pool, DTC_FLOAT},
    [SH_OP_GLOBAL_AVERAGE_POOL] = {cpu_prep_global_avg_pool, DTC_FLOAT},
    [SH_OP_RESIZE] = {cpu_prep_resize, DTC_FLOAT},
    [SH_OP_UPSAMPLE] = {cpu_prep_resize, DTC_FLOAT},
    [SH_OP_RESHAPE] = {cpu_prep_view, DTC_MOVE},
    [SH_OP_TRANSPOSE] = {cpu_prep_transpose, DTC_MOVE},
    [SH_OP_SOFTMAX] = {cpu_prep_softmax, DTC_FLOAT},
    [SH_OP_MATMUL] = {cpu_prep_matmul, DTC_FLOAT},
    [SH_OP_GEMM] = {cpu_prep_gemm, DTC_FLOAT},
    [SH_OP_FLATTEN] = {cpu_prep_view, DTC_MOVE},
    [SH_OP_CONSTANT] = {cpu_prep_constant, DTC_CONST},
    [SH_OP_CONSTANT_OF_SHAPE] = {cpu_prep_constant_of_shape, DTC_CONST},
    [SH_OP_SHAPE] = {cpu_prep_shape, DTC_ANY_IN},
    [SH_OP_GATHER] = {cpu_prep_gather, DTC_MOVE},
    [SH_OP_UNSQUEEZE] = {cpu_prep_view, DTC_MOVE},
    [SH_OP_SQUEEZE] = {cpu_prep_view, DTC_MOVE},
    [SH_OP_IDENTITY] = {cpu_prep_view, DTC_MOVE},
    [SH_OP_EXPAND] = {cpu_prep_expand, DTC_MOVE},
    [SH_OP_CAST] = {cpu_prep_cast, DTC_CAST},
    [SH_OP_PAD] = {cpu_prep_pad, DTC_MOVE},
    [SH_OP_REDUCE_MEAN] = {cpu_prep_reduce_mean, DTC_FLOAT},
    [SH_OP_TOPK] = {cpu_prep_topk, DTC_MOVE},
    [SH_OP_GATHER_ELEMENTS] = {cpu_prep_gather_elements, DTC_MOVE},
    [SH_OP_GATHER_ND] = {cpu_prep_gather_nd, DTC_MOVE},
    [SH_OP_REDUCE_MAX] = {cpu_prep_reduce_max, DTC_MOVE},
    [SH_OP_ARGMAX] = {cpu_prep_argmax, DTC_MOVE},
    [SH_OP_TILE] = {cpu_prep_tile, DTC_MOVE},
    [SH_OP_MOD] = {cpu_prep_mod, DTC_WIDE},
    [SH_OP_RANGE] = {cpu_prep_range, DTC_WIDE},
    [SH_OP_FRAME_TO_TENSOR] = {cpu_prep_frame_to_tensor, DTC_FRAME},
    [SH_OP_FRAME_DECODE] = {cpu_prep_frame_decode, DTC_FRAME},
    [SH_OP_FRAME_NMS] = {cpu_prep_frame_nms, DTC_FRAME},
    [SH_OP_FRAME_MASKS] = {cpu_prep_frame_masks, DTC_FRAME},
    [SH_OP_FRAME_LANDMARKS] = {cpu_prep_frame_landmarks, DTC_FRAME},
    [SH_OP_FRAME_CROP] = {cpu_prep_frame_crop, DTC_FRAME},
    [SH_OP_QUANTIZE_LINEAR] = {cpu_prep_quantize_linear, DTC_QUANT},
    [SH_OP_DEQUANTIZE_LINEAR] = {cpu_prep_dequantize_linear, DTC_QUANT},
    [SH_OP_DYNAMIC_QUANTIZE_LINEAR] = {cpu_prep_dynamic_quantize_linear, DTC_QUANT},
    [SH_OP_CONV_INTEGER] = {cpu_prep_qconv, DTC_QUANT},
    [SH_OP_MATMUL_INTEGER] = {cpu_prep_qmatmul, DTC_QUANT},
    [SH_OP_QLINEAR_CONV] = {cpu_prep_qconv, DTC_QUANT},
    [SH_OP_QLINEAR_MATMUL] = {cpu_prep_qmatmul, DTC_QUANT},
    [SH_OP_QLINEAR_ADD] = {cpu_prep_qlinear_binary, DTC_QUANT},
    [SH_OP_QLINEAR_MUL] = {cpu_prep_qlinear_binary, DTC_QUANT},
    [SH_OP_QLINEAR_CONCAT] = {cpu_prep_qlinear_concat, DTC_QUANT},
    [SH_OP_QLINEAR_SIGMOID] = {cpu_prep_qlinear_lut, DTC_QUANT},
    [SH_OP_QLINEAR_LEAKY_RELU] = {cpu_prep_qlinear_lut, DTC_QUANT},
    [SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL] = {cpu_prep_qlinear_global_avg_pool, DTC_QUANT},
};
static_assert(sizeof OPS / sizeof OPS[0] == SH_OP_COUNT, "update the op tables");
static_assert(SH_OP_COUNT == 66, "update the op tables");

static bool is_q8_dt(sh_dtype d)
{
    return d == SH_DT_INT8 || d == SH_DT_UINT8;
}

static bool is_move_dt(sh_dtype d)
{
    return d == SH_DT_FLOAT32 || d == SH_DT_INT32 || d == SH_DT_INT64 || is_q8_dt(d);
}

static bool is_cast_dt(sh_dtype d)
{
    return d != SH_DT_UNDEFINED && d < SH_DT_COUNT;
}

/* Why node k cannot run here, or NULL when it can. */
static const char *unsupported_reason(const sh_graph *g, int k, char *buf, size_t cap)
{
    const sh_node *n = &g->nodes[k];
    if ((unsigned)n->op >= SH_OP_COUNT) {
        snprintf(buf, cap, "unknown op");
        return buf;
    }
    dt_class c = OPS[n->op].dtc;
    for (int side = 0; side < 2; side++) {
        int cnt = side ? n->n_outputs : n->n_inputs;
        for (int i = 0; i < cnt; i++) {
            const sh_tensor *t = side ? sh_node_output(g, n, i) : sh_node_input(g, n, i);
            if (!t)
                continue;
            sh_dtype d = t->dtype;
            bool ok;
            switch (c) {
            case DTC_FLOAT:
                ok = i == 0 ? d == SH_DT_FLOAT32 : is_move_dt(d);
                if (n->op == SH_OP_RESIZE || n->op == SH_OP_UPSAMPLE)
                    ok = ok || (i > 0 && d == SH_DT_FLOAT64 && !side);
                /* quantized activations pass through max pooling and nearest resizing as they are */
                if ((n->op == SH_OP_MAX_POOL || n->op == SH_OP_RESIZE) && i == 0 && is_q8_dt(d))
                    ok = d == sh_node_input(g, n, 0)->dtype;
                break;
            case DTC_MOVE: ok = is_move_dt(d); break;
            case DTC_ARITH: ok = is_move_dt(d) && d == sh_node_input(g, n, 0)->dtype; break;
            case DTC_WIDE: ok = is_move_dt(d) && !is_q8_dt(d) && d == sh_node_input(g, n, 0)->dtype; break;
            case DTC_ANY_IN: ok = side ? d == SH_DT_INT64 : true; break;
            case DTC_CAST: ok = is_cast_dt(d); break;
            case DTC_CONST: ok = sh_dtype_size(d) > 0 && d != SH_DT_FLOAT16; break;
            case DTC_FRAME: ok = true; break;
            case DTC_QUANT: ok = is_q8_dt(d) || d == SH_DT_INT32 || d == SH_DT_FLOAT32; break;
            default: ok = false; break;
            }
            if (!ok) {
                snprintf(buf, cap, "%s %d '%s' of dtype %s", side ? "output" : "input", i, t->name,
                         sh_dtype_name(d));
                return buf;
            }
        }
    }
    return NULL;
}

static bool cpu_supports_node(void *vctx, const sh_graph *g, int k)
{
    char buf[128];
    return unsupported_reason(g, k, buf, sizeof buf) == NULL;
}

/* ---- compile ----------------------------------------------------------------------------- */

static void free_impl(cpu_ctx *ctx, cpu_program *impl)
{
    if (!impl)
        return;
    for (int i = 0; i < impl->n_nodes; i++) {
        if (impl->nodes[i].free_params && impl->nodes[i].params)
            impl->nodes[i].free_params(ctx, impl->nodes[i].params);
        sh_free(ctx->alloc, impl->nodes[i].params);
    }
    sh_free(ctx->alloc, impl->nodes);
    sh_free(ctx->alloc, impl->layout);
    sh_free(ctx->alloc, impl->pack_node);
    sh_free(ctx->alloc, impl);
}

static void cpu_program_free(void *vctx, sh_program *p)
{
    cpu_ctx *ctx = vctx;
    if (!p)
        return;
    free_impl(ctx, p->impl);
    sh_program_release(ctx->alloc, p);
}

static int cpu_compile(void *vctx, const sh_graph *g, sh_program **out, sh_err *err)
{
    cpu_ctx *ctx = vctx;
    *out = NULL;
    sh_program *p = sh_program_alloc(ctx->alloc, g);
    if (!p)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu compile: out of memory");
    cpu_program *impl = sh_calloc(ctx->alloc, 1, sizeof *impl);
    if (impl) {
        impl->nodes = sh_calloc(ctx->alloc, (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof(cpu_node));
        impl->layout = sh_calloc(ctx->alloc, (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof(cpu_layout_node));
        impl->pack_node = sh_calloc(ctx->alloc, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof(int));
    }
    p->impl = impl;
    p->weight_dtype = SH_DT_FLOAT32;
    if (!impl || !impl->nodes || !impl->layout || !impl->pack_node) {
        cpu_program_free(ctx, p);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu compile: out of memory");
    }
    impl->n_nodes = g->n_nodes;
    for (int t = 0; t < g->n_tensors; t++)
        impl->pack_node[t] = -1;

    for (int t = 0; t < g->n_tensors; t++) {
        const sh_tensor *x = &g->tensors[t];
        if (x->is_const) {
            if (x->n_consumers > 0)
                p->weight_bytes[t] = x->nbytes;
            continue;
        }
        if (x->producer < 0 && !x->is_input)
            continue;
        int64_t ne = cpu_numel(x);
        size_t es = sh_dtype_size(x->dtype);
        if (x->shape.ndim < 0 || ne < 0 || es == 0) {
            cpu_program_free(ctx, p);
            return sh_errf(err, SHOAL_ERR_SHAPE, "cpu compile: tensor '%s' has no static shape/dtype",
                           x->name);
        }
        if (!sh_mul_size((size_t)ne, es, &p->tensor_bytes[t])) {
            cpu_program_free(ctx, p);
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu compile: tensor '%s' too large", x->name);
        }
    }

    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        char why[160];
        if (unsupported_reason(g, k, why, sizeof why)) {
            cpu_program_free(ctx, p);
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): cpu backend does not support %s",
                           n->name, sh_op_name(n->op), why);
        }
        cpu_prep pp = {.ctx = ctx, .g = g, .p = p, .k = k, .n = n, .pack_tensor = -1};
        int rc = OPS[n->op].prep(&pp, err);
        impl->nodes[k].fn = pp.fn;
        impl->nodes[k].params = pp.params;
        impl->nodes[k].free_params = pp.free_params;
        impl->nodes[k].pack = pp.pack;
        impl->layout[k] = (cpu_layout_node){.role = pp.layout, .to_nhwc = pp.to_nhwc, .params = pp.params};
        if (rc == 0 && pp.pack && pp.pack_tensor >= 0)
            impl->pack_node[pp.pack_tensor] = k;
        if (rc < 0) {
            cpu_program_free(ctx, p);
            return rc;
        }
    }

    int rc = cpu_layout_flow(ctx, p, g, impl->layout, &impl->layout_stats, err);
    if (rc < 0) {
        cpu_program_free(ctx, p);
        return rc;
    }
    /* integer convs pass uint8 codes NHWC among themselves (their own link, after the float flow) */
    {
        cpu_kernel_fn *fns = sh_calloc(ctx->alloc, (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *fns);
        void **prm = sh_calloc(ctx->alloc, (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *prm);
        if (!fns || !prm) {
            sh_free(ctx->alloc, fns);
            sh_free(ctx->alloc, prm);
            cpu_program_free(ctx, p);
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu compile: out of memory");
        }
        for (int k = 0; k < g->n_nodes; k++) {
            fns[k] = impl->nodes[k].fn;
            prm[k] = impl->nodes[k].params;
        }
        cpu_qconv_link_nhwc(g, fns, prm);
        sh_free(ctx->alloc, fns);
        sh_free(ctx->alloc, prm);
    }

    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && impl->nodes[k].fn)
            cpu_cat_views(g, p, impl->nodes[k].fn, impl->nodes[k].params);

    /* Views of views point at the root, so the planner sees one level only. */
    for (int t = 0; t < g->n_tensors; t++) {
        int r = p->alias_of[t];
        size_t off = p->alias_offset[t];
        int guard = 0;
        while (r >= 0 && p->alias_of[r] >= 0 && guard++ < g->n_tensors) {
            off += p->alias_offset[r];
            r = p->alias_of[r];
        }
        p->alias_of[t] = r;
        p->alias_offset[t] = off;
        if (r >= 0)
            p->tensor_bytes[t] = 0;
    }
    *out = p;
    return 0;
}

static int cpu_pack_weight(void *vctx, const sh_program *p, int t, void *dst, sh_err *err)
{
    const sh_tensor *x = &p->graph->tensors[t];
    const cpu_program *impl = p->impl;
    if (x->is_const && x->data && impl->pack_node[t] >= 0) {
        const cpu_node *cn = &impl->nodes[impl->pack_node[t]];
        return cn->pack(vctx, cn->params, x->data, dst, err);
    }
    if (!x->is_const || p->weight_bytes[t] != x->nbytes)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "cpu pack_weight: tensor '%s' is not a packed constant", x->name);
    if (x->nbytes)
        memcpy(dst, x->data, x->nbytes);
    return 0;
}

static int cpu_run(void *vctx, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                   unsigned long binding_id, sh_err *err)
{
    cpu_ctx *ctx = vctx;
    cpu_program *impl = p->impl;
    const sh_graph *g = p->graph;
    for (int k = 0; k < impl->n_nodes; k++) {
        const cpu_node *cn = &impl->nodes[k];
        if (!cn->fn)
            continue;
        cpu_exec ex = {.ctx = ctx, .g = g, .t = tensor_ptrs, .ws = workspace_ptrs ? workspace_ptrs[k] : NULL};
        struct timespec t0, t1;
        if (ctx->prof_ms)
            clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = cn->fn(&ex, &g->nodes[k], cn->params, err);
        if (ctx->prof_ms) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
            ctx->prof_ms[g->nodes[k].op] += ms;
            if (ctx->prof_node_ms && k < ctx->prof_node_cap)
                ctx->prof_node_ms[k] += ms;
        }
        if (rc < 0)
            return sh_err_prefix(err, rc, "node %s (%s): ", g->nodes[k].name, sh_op_name(g->nodes[k].op));
    }
    return 0;
}

/* ---- memory ------------------------------------------------------------------------------ */

static int cpu_buffer_alloc(void *vctx, size_t size, void **out, sh_err *err)
{
    cpu_ctx *ctx = vctx;
    *out = sh_alloc(ctx->alloc, size ? size : 1);
    if (!*out)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu: cannot allocate %zu bytes", size);
    return 0;
}

static void cpu_buffer_free(void *vctx, void *ptr)
{
    cpu_ctx *ctx = vctx;
    sh_free(ctx->alloc, ptr);
}

static int cpu_copy(void *vctx, void *dst, const void *src, size_t n, sh_err *err)
{
    if (n)
        memcpy(dst, src, n);
    return 0;
}

static void cpu_destroy(void *vctx)
{
    cpu_ctx *ctx = vctx;
    if (!ctx)
        return;
    cpu_dnnl_fini(ctx);
    cpu_pool_destroy(ctx->pool);
    sh_free(ctx->alloc, ctx->prof_ms);
    sh_free(ctx->alloc, ctx->prof_node_ms);
    sh_free(ctx->alloc, ctx);
}

static const sh_device_i CPU_BACKEND = {
    .name = "cpu",
    .alignment = 64,
    .host_memory = true,
    .buffer_alloc = cpu_buffer_alloc,
    .buffer_free = cpu_buffer_free,
    .host_alloc = NULL,
    .host_free = NULL,
    .upload = cpu_copy,
    .download = cpu_copy,
    .supports_node = cpu_supports_node,
    .compile = cpu_compile,
    .program_free = cpu_program_free,
    .pack_weight = cpu_pack_weight,
    .run = cpu_run,
    .memory_info = NULL,
    .destroy = cpu_destroy,
};

/* The CPU switches of shoal_tuning take only the values shoal.h lists: anything else is an
 * error naming the field, not a silent "on". */
static int check_tuning(const shoal_tuning *t, sh_err *err)
{
    const struct {
        const char *name;
        int v, lo, hi;
    } f[] = {{"cpu_winograd", t->cpu_winograd, -1, 1},
             {"cpu_igemm", t->cpu_igemm, -1, 1},
             {"cpu_pool_spin_us", t->cpu_pool_spin_us, -1, 1000000}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "cpu backend: tuning.%s %d: expected %d..%d", f[i].name,
                           f[i].v, f[i].lo, f[i].hi);
    return 0;
}

int sh_backend_cpu_create(const sh_backend_params *p, sh_backend *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    if (p && check_tuning(&p->tuning, err) < 0)
        return SHOAL_ERR_INVALID_ARG;
    sh_allocator *a = p ? p->alloc : NULL;
    cpu_ctx *ctx = sh_calloc(a, 1, sizeof *ctx);
    if (!ctx)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu backend: out of memory");
    ctx->alloc = a;
    ctx->pool_spin_us = p ? p->tuning.cpu_pool_spin_us : 0;
    ctx->winograd = p ? p->tuning.cpu_winograd : 0;
    ctx->igemm = p ? p->tuning.cpu_igemm : 0;
    int rc = cpu_pool_create(a, p ? p->n_threads : 0, ctx->pool_spin_us, &ctx->pool);
    if (rc < 0) {
        sh_free(a, ctx);
        return sh_errf(err, rc, "cpu backend: cannot start the thread pool");
    }
    ctx->n_threads = cpu_pool_threads(ctx->pool);
    ctx->blas_mode = CPU_BLAS_SPLIT;
    ctx->no_layout_flow = p && p->tuning.cpu_no_layout_flow;
    /* OpenBLAS's thread count is process-wide, the one such knob we touch: in SPLIT mode every
     * sgemm call must stay single-threaded (see matmul.c for the measurement behind it).
     * Setting 1 is idempotent across backends, so several contexts never disagree. */
    openblas_set_num_threads(1);
    cpu_dnnl_init(ctx);
    out->iface = &CPU_BACKEND;
    out->lanes = NULL;   /* one run at a time on the thread pool: the synchronous calls */
    out->ctx = ctx;
    return 0;
}

/* Test/bench hook: switch how GEMMs are threaded (not part of backend.h). */
void sh_backend_cpu_set_blas_threads(sh_backend *b, bool openblas_threads);
void sh_backend_cpu_set_blas_threads(sh_backend *b, bool openblas_threads)
{
    cpu_ctx *ctx = b->ctx;
    ctx->blas_mode = openblas_threads ? CPU_BLAS_OWN_THREADS : CPU_BLAS_SPLIT;
    openblas_set_num_threads(openblas_threads ? ctx->n_threads : 1);
}

/* Bench hook: per-op time accumulation (returns the [SH_OP_COUNT] array, zeroed), or off;
 * NULL for a backend other than the CPU. */
double *sh_backend_cpu_profile(sh_backend *b, bool on);
double *sh_backend_cpu_profile(sh_backend *b, bool on)
{
    if (b->iface != &CPU_BACKEND)
        return NULL;
    cpu_ctx *ctx = b->ctx;
    if (!on) {
        sh_free(ctx->alloc, ctx->prof_ms);
        ctx->prof_ms = NULL;
        return NULL;
    }
    if (!ctx->prof_ms)
        ctx->prof_ms = sh_calloc(ctx->alloc, SH_OP_COUNT, sizeof(double));
    else
        memset(ctx->prof_ms, 0, SH_OP_COUNT * sizeof(double));
    return ctx->prof_ms;
}

/* Bench-tool hook: with op profiling on, also accumulate time per node index (one program per
 * backend at a time makes the index unambiguous). Returns the zeroed [n_nodes] array. */
double *sh_backend_cpu_profile_nodes(sh_backend *b, int n_nodes);
double *sh_backend_cpu_profile_nodes(sh_backend *b, int n_nodes)
{
    cpu_ctx *ctx = b->ctx;
    sh_free(ctx->alloc, ctx->prof_node_ms);
    ctx->prof_node_ms = n_nodes > 0 ? sh_calloc(ctx->alloc, (size_t)n_nodes, sizeof(double)) : NULL;
    ctx->prof_node_cap = ctx->prof_node_ms ? n_nodes : 0;
    return ctx->prof_node_ms;
}

/* Bench hook: how Conv nodes compiled from now on run (a cpu_conv_impl value). */
void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl);
void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl)
{
    cpu_ctx *ctx = b->ctx;
    ctx->conv_impl = (cpu_conv_impl)impl;
}

const char *sh_backend_cpu_isa(void)
{
    return cpu_dnnl_isa_name();
}

int sh_backend_cpu_describe_node(const sh_program *p, int node, char *buf, size_t cap)
{
    const cpu_program *impl = p ? p->impl : NULL;
    if (!impl || !buf || !cap || node < 0 || node >= impl->n_nodes || !impl->nodes[node].fn)
        return -1;
    if (cpu_conv_describe(impl->nodes[node].fn, impl->nodes[node].params, buf, cap) == 0)
        return 0;
    if (!impl->layout[node].nhwc)
        return -1;
    snprintf(buf, cap, "NHWC");
    return 0;
}

int sh_backend_cpu_layout_stats(const sh_program *p, sh_cpu_layout_stats *out)
{
    const cpu_program *impl = p ? p->impl : NULL;
    if (!impl || !out || !impl->layout)
        return -1;
    *out = impl->layout_stats;
    return 0;
}

/* Test/bench hook: how node `node` of program p runs where the backend chose between kernels
 * (ConvInteger / QLinearConv: "int8 oneDNN", or the im2col path and why), else NULL. */
const char *sh_backend_cpu_node_path(const sh_program *p, int node);
const char *sh_backend_cpu_node_path(const sh_program *p, int node)
{
    const cpu_program *impl = p ? p->impl : NULL;
    if (!impl || node < 0 || node >= impl->n_nodes || !impl->nodes[node].params)
        return NULL;
    sh_op op = p->graph->nodes[node].op;
    if (op != SH_OP_CONV_INTEGER && op != SH_OP_QLINEAR_CONV)
        return NULL;
    return ((const qconv_params *)impl->nodes[node].params)->path;
}
