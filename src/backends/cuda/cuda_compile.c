/* Compiling a graph for the CUDA backend: a kernel and its parameters per node, the storage
 * of every tensor, views, in-place reuse, workspaces (cuDNN's, and fp16 staging at the fp32
 * graph boundary), and how each weight is to be packed (cuda_pack.c packs it).
 *
 * Storage contract (backend.h): graph inputs and outputs are fp32 NCHW on the device, as the
 * runtime hands them over; every other activation is fp16, 4-D ones channels-last (NHWC)
 * wherever every producer and consumer can take it (choose_layouts), the rest NCHW. A node that reads an fp32
 * tensor first converts it into an fp16 copy in its own workspace; a node that writes one
 * writes fp16 into its workspace and converts on the way out. So every kernel sees fp16 only,
 * and the conversions cost one pass over the (small) input image and outputs.
 *
 * Weights: every constant a kernel reads is packed as fp16 in its ONNX row-major layout,
 * except the weights of channels-last convs, packed KRSC as cuDNN and the own conv want for
 * NHWC, and those of transposed convs run as a GEMM and channels-last depthwise convs, packed
 * taps first; values beyond fp16's range saturate.
 * Constants read only at compile time (shapes, pads, scales, indices) are not uploaded. */
#include "backends/cuda/cuda_quant.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(SH_OP_COUNT == 66, "update the CUDA backend's op switch");
_Static_assert(SH_ACT_CLIP == 6, "kcommon.cuh mirrors sh_act");

/* --- small helpers ------------------------------------------------------------------- */
static bool is_float(sh_dtype dt) { return dt == SH_DT_FLOAT32 || dt == SH_DT_FLOAT16; }

static const sh_tensor *tin(const sh_graph *g, const sh_node *n, int i) { return sh_node_input(g, n, i); }

static int64_t numel(const sh_tensor *t) { return sh_shape_numel(&t->shape); }

/* Reads a constant integer tensor (int64/int32) into v; returns count or -1. */
int sh_cuda_const_ints(const sh_tensor *t, int64_t *v, int cap)
{
    if (!t || !t->is_const || !t->data)
        return -1;
    int64_t n = numel(t);
    if (n < 0 || n > cap)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SH_DT_INT64)
            v[i] = ((const int64_t *)t->data)[i];
        else if (t->dtype == SH_DT_INT32)
            v[i] = ((const int32_t *)t->data)[i];
        else
            return -1;
    }
    return (int)n;
}

int sh_cuda_const_floats(const sh_tensor *t, float *v, int cap)
{
    if (!t || !t->is_const || !t->data)
        return -1;
    int64_t n = numel(t);
    if (n < 0 || n > cap)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == SH_DT_FLOAT32)
            v[i] = ((const float *)t->data)[i];
        else if (t->dtype == SH_DT_FLOAT64)
            v[i] = (float)((const double *)t->data)[i];
        else
            return -1;
    }
    return (int)n;
}

float sh_cuda_const_scalar(const sh_tensor *t, float dflt)
{
    float v;
    if (sh_cuda_const_floats(t, &v, 1) == 1)
        return v;
    if (t && t->is_const && t->data && t->dtype == SH_DT_FLOAT16 && numel(t) == 1) {
        /* fp16 scalar (rare): decode by hand */
        uint16_t h = *(const uint16_t *)t->data;
        int e = (h >> 10) & 31, m = h & 1023;
        float f = e == 0 ? ldexpf((float)m, -24) : e == 31 ? INFINITY : ldexpf((float)(m | 1024), e - 25);
        return (h & 0x8000) ? -f : f;
    }
    return dflt;
}

/* Input slots that hold parameters read at compile time (never uploaded). */
bool sh_cuda_is_param_slot(const sh_node *n, int slot)
{
    switch (n->op) {
    case SH_OP_RESHAPE: case SH_OP_EXPAND: case SH_OP_GATHER: case SH_OP_SQUEEZE:
    case SH_OP_UNSQUEEZE: case SH_OP_SPLIT: case SH_OP_UPSAMPLE: case SH_OP_REDUCE_MEAN:
        return slot >= 1;
    case SH_OP_SLICE: case SH_OP_RESIZE: case SH_OP_CLIP: case SH_OP_PAD:
        return slot >= 1;
    case SH_OP_CONSTANT_OF_SHAPE: case SH_OP_SHAPE:
        return true;
    default:
        return false;
    }
}

/* Pads [begin..., end...] for the spatial dims, from pads / auto_pad. Returns false when a
 * begin/end pair differs and `need_sym` (cuDNN takes symmetric pads only). */
bool sh_cuda_spatial_pads(const sh_node *n, const sh_shape *in, const sh_shape *out, const int64_t *k,
                         const int64_t *s, const int64_t *dil, int64_t *pb, int64_t *pe, bool need_sym)
{
    int ns = in->ndim - 2, cnt = 0;
    const int64_t *pads = sh_node_ints(n, "pads", &cnt);
    const char *ap = sh_node_string(n, "auto_pad", "NOTSET");
    for (int i = 0; i < ns; i++) {
        pb[i] = pe[i] = 0;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t total = (out->d[2 + i] - 1) * s[i] + (k[i] - 1) * dil[i] + 1 - in->d[2 + i];
            if (total < 0)
                total = 0;
            pb[i] = !strcmp(ap, "SAME_UPPER") ? total / 2 : (total + 1) / 2;
            pe[i] = total - pb[i];
        } else if (pads && cnt == 2 * ns) {
            pb[i] = pads[i];
            pe[i] = pads[ns + i];
        }
        if (need_sym && pb[i] != pe[i])
            return false;
    }
    return true;
}

void sh_cuda_kernel_geom(const sh_node *n, const sh_tensor *w, int ns, int64_t *k, int64_t *s, int64_t *dil)
{
    int cnt = 0;
    const int64_t *ks = sh_node_ints(n, "kernel_shape", &cnt);
    for (int i = 0; i < ns; i++)
        k[i] = (ks && cnt == ns) ? ks[i] : (w ? w->shape.d[2 + i] : 1);
    const int64_t *st = sh_node_ints(n, "strides", &cnt);
    for (int i = 0; i < ns; i++)
        s[i] = (st && cnt == ns) ? st[i] : 1;
    const int64_t *dl = sh_node_ints(n, "dilations", &cnt);
    for (int i = 0; i < ns; i++)
        dil[i] = (dl && cnt == ns) ? dl[i] : 1;
}

sh_k_act sh_cuda_node_act(const sh_node *n)
{
    sh_k_act a = {(int)n->act, n->act_a, n->act_b};
    return a;
}

/* --- supports_node ------------------------------------------------------------------- */
static bool tensors_ok(const sh_graph *g, const sh_node *n)
{
    for (int i = 0; i < n->n_inputs; i++) {
        const sh_tensor *t = tin(g, n, i);
        if (!t || sh_cuda_is_param_slot(n, i))
            continue;
        if (t->shape.ndim < 0 || numel(t) < 0 || numel(t) >= INT32_MAX)
            return false;
        if (!t->is_const && !is_float(t->dtype))
            return false;
    }
    for (int i = 0; i < n->n_outputs; i++) {
        const sh_tensor *t = sh_node_output(g, n, i);
        if (!t)
            continue;
        if (t->is_const)
            continue;
        if (t->shape.ndim < 0 || numel(t) < 0 || numel(t) >= INT32_MAX || !is_float(t->dtype))
            return false;
        if (t->shape.ndim > SH_K_MAX_DIMS)
            return false;
    }
    return true;
}

bool sh_cuda_supports_node(void *vctx, const sh_graph *g, int k)
{
    (void)vctx;
    const sh_node *n = &g->nodes[k];
    bool all_const = n->n_outputs > 0;
    for (int i = 0; i < n->n_outputs; i++) {
        const sh_tensor *t = sh_node_output(g, n, i);
        if (t && !t->is_const)
            all_const = false;
    }
    if (all_const)
        return true;    /* folded: nothing to run */
    if (sh_cuda_is_frame_op(n->op))
        return sh_cuda_frame_supports(g, n);
    if (sh_cuda_quant_handles(g, n))
        return sh_cuda_quant_supports(g, k);
    if (!tensors_ok(g, n))
        return false;
    const sh_tensor *x = tin(g, n, 0), *y = sh_node_output(g, n, 0);
    switch (n->op) {
    case SH_OP_CONV:
    case SH_OP_CONV_TRANSPOSE: {
        const sh_tensor *w = tin(g, n, 1);
        if (!x || !w || !w->is_const || x->shape.ndim != 4 || x->is_const)
            return false;
        if (n->n_inputs > 2 && tin(g, n, 2) && !tin(g, n, 2)->is_const)
            return false;
        int64_t kk[2], s[2], dil[2], pb[2], pe[2];
        sh_cuda_kernel_geom(n, w, 2, kk, s, dil);
        if (n->op == SH_OP_CONV_TRANSPOSE) {
            int cnt = 0;
            const char *ap = sh_node_string(n, "auto_pad", "NOTSET");
            const int64_t *pads = sh_node_ints(n, "pads", &cnt);
            if (strcmp(ap, "NOTSET") || sh_node_attr(n, "output_shape"))
                return false;
            return !pads || (cnt == 4 && pads[0] == pads[2] && pads[1] == pads[3]);
        }
        return sh_cuda_spatial_pads(n, &x->shape, &y->shape, kk, s, dil, pb, pe, false) &&
               pb[0] >= 0 && pb[1] >= 0 && pe[0] >= 0 && pe[1] >= 0;
    }
    case SH_OP_BATCH_NORM:
        for (int i = 1; i < 5; i++)
            if (!tin(g, n, i) || !tin(g, n, i)->is_const)
                return false;
        return x && x->shape.ndim >= 2 && n->n_outputs == 1;
    case SH_OP_RELU: case SH_OP_SIGMOID: case SH_OP_HARD_SIGMOID: case SH_OP_HARD_SWISH:
    case SH_OP_EXP: case SH_OP_SILU:
        return x != NULL;
    case SH_OP_CLIP:
        for (int i = 1; i < n->n_inputs && i < 3; i++)
            if (tin(g, n, i) && !tin(g, n, i)->is_const)
                return false;
        return x != NULL;
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
        return x && tin(g, n, 1) && y->shape.ndim <= SH_K_MAX_DIMS;
    case SH_OP_CONCAT: case SH_OP_TRANSPOSE: case SH_OP_EXPAND: case SH_OP_SPLIT:
    case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE:
    case SH_OP_IDENTITY:
        return x != NULL && x->shape.ndim <= SH_K_MAX_DIMS;
    case SH_OP_CAST:
        return x && (x->is_const || is_float(x->dtype)) && is_float(y->dtype);
    case SH_OP_SLICE:
        return x && x->shape.ndim <= SH_K_MAX_DIMS &&
               (n->n_inputs <= 1 || (tin(g, n, 1) && tin(g, n, 1)->is_const && tin(g, n, 2) && tin(g, n, 2)->is_const));
    case SH_OP_GATHER: {
        const sh_tensor *ix = tin(g, n, 1);
        int64_t tmp[64];
        return x && ix && sh_cuda_const_ints(ix, tmp, 64) >= 0;
    }
    case SH_OP_PAD: {
        const char *mode = sh_node_string(n, "mode", "constant");
        return x && !strcmp(mode, "constant") && (n->n_inputs < 2 || (tin(g, n, 1) && tin(g, n, 1)->is_const));
    }
    case SH_OP_MAX_POOL: case SH_OP_AVERAGE_POOL:
        return x && x->shape.ndim == 4 && n->n_outputs == 1;
    case SH_OP_GLOBAL_AVERAGE_POOL:
        return x && x->shape.ndim >= 3;
    case SH_OP_REDUCE_MEAN:
        return x != NULL;   /* axes checked at compile (contiguous block) */
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE: {
        const char *mode = sh_node_string(n, "mode", "nearest");
        if (!x || x->shape.ndim != 4 || !strcmp(mode, "cubic"))
            return false;
        return x->shape.d[0] == y->shape.d[0] && x->shape.d[1] == y->shape.d[1];
    }
    case SH_OP_SOFTMAX:
        return x != NULL;
    case SH_OP_MATMUL:
        return x && tin(g, n, 1) && x->shape.ndim >= 1 && tin(g, n, 1)->shape.ndim >= 1 &&
               y->shape.ndim <= 6;
    case SH_OP_GEMM:
        return x && tin(g, n, 1) && x->shape.ndim == 2 && tin(g, n, 1)->shape.ndim == 2;
    default:
        return false;
    }
}

/* --- compile ------------------------------------------------------------------------- */
static int unary_setup(const sh_graph *g, const sh_node *n, sh_cuda_node *cn)
{
    cn->kind = NK_UNARY;
    sh_k_act a = {SH_ACT_NONE, 0.f, 0.f};
    switch (n->op) {
    case SH_OP_RELU: a.act = SH_ACT_RELU; break;
    case SH_OP_SIGMOID: a.act = SH_ACT_SIGMOID; break;
    case SH_OP_SILU: a.act = SH_ACT_SILU; break;
    case SH_OP_HARD_SWISH: a.act = SH_ACT_HARD_SWISH; break;
    case SH_OP_EXP: a.act = SH_ACT_COUNT; break;     /* K_ACT_EXP in kcommon.cuh */
    case SH_OP_HARD_SIGMOID:
        a.act = SH_ACT_HARD_SIGMOID;
        a.a = sh_node_float(n, "alpha", 0.2f);
        a.b = sh_node_float(n, "beta", 0.5f);
        break;
    case SH_OP_CLIP:
        a.act = SH_ACT_CLIP;
        if (n->opset < 11) {
            a.a = sh_node_float(n, "min", -FLT_MAX);
            a.b = sh_node_float(n, "max", FLT_MAX);
        } else {
            a.a = n->n_inputs > 1 ? sh_cuda_const_scalar(tin(g, n, 1), -FLT_MAX) : -FLT_MAX;
            a.b = n->n_inputs > 2 ? sh_cuda_const_scalar(tin(g, n, 2), FLT_MAX) : FLT_MAX;
        }
        break;
    default: break;
    }
    cn->act = a;
    return 0;
}

/* A non-const fp16 activation that is neither a graph input nor output. */
static bool plain_act(const sh_program *p, const sh_cuda_prog *cp, const sh_tensor *t, int ti)
{
    return t && !t->is_const && !cp->f32[ti] && p->tensor_bytes[ti] > 0;
}

/* A Transpose of the last two axes read only by MatMuls: no copy, the MatMuls read its input
 * with the two strides swapped (YOLO11's C2PSA attention: q^T k and v attn^T). */
static bool transpose_folds(const sh_cuda_ctx *c, const sh_graph *g, const sh_program *p, const sh_cuda_prog *cp,
                            const sh_node *n)
{
    int xi = n->inputs[0], yi = n->outputs[0], cnt = 0;
    const sh_tensor *x = tin(g, n, 0), *y = sh_node_output(g, n, 0);
    if (c->tune.cuda_no_transpose_fold || !plain_act(p, cp, x, xi) || !plain_act(p, cp, y, yi) ||
        cp->nhwc[xi] || cp->nhwc[yi] || cp->tview[xi] || y->is_output || x->shape.ndim < 2 ||
        p->alias_of[xi] >= 0)
        return false;
    int nd = x->shape.ndim;
    const int64_t *perm = sh_node_ints(n, "perm", &cnt);
    for (int d = 0; d < nd; d++) {
        int want = d < nd - 2 ? d : (d == nd - 2 ? nd - 1 : nd - 2);
        int pd = perm && cnt == nd ? (int)perm[d] : nd - 1 - d;
        if (pd != want)
            return false;
    }
    int readers = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *m = &g->nodes[k];
        if (m->dead)
            continue;
        for (int i = 0; i < m->n_inputs; i++) {
            if (m->inputs[i] != yi)
                continue;
            if (m->op != SH_OP_MATMUL || i > 1 || m->inputs[1 - i] == yi)
                return false;
            readers++;
        }
    }
    return readers > 0;
}

static int tindex(const sh_node *n, int slot, bool out)
{
    return out ? n->outputs[slot] : n->inputs[slot];
}

/* Views into the outermost non-1 axis are contiguous byte ranges: Split and Slice outputs
 * can live inside their input, Concat inputs inside their output. */
static bool outer_axis_contiguous(const sh_shape *s, int axis)
{
    for (int d = 0; d < axis; d++)
        if (s->d[d] != 1)
            return false;
    return true;
}

static int build_node(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_cuda_node *cn = &cp->nodes[k];
    cn->stage_in = sh_alloc(c->alloc, (size_t)(n->n_inputs ? n->n_inputs : 1) * sizeof(size_t));
    cn->stage_out = sh_alloc(c->alloc, (size_t)(n->n_outputs ? n->n_outputs : 1) * sizeof(size_t));
    if (!cn->stage_in || !cn->stage_out)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda compile: node %s", n->name);
    for (int i = 0; i < n->n_inputs; i++)
        cn->stage_in[i] = SIZE_MAX;
    for (int i = 0; i < n->n_outputs; i++)
        cn->stage_out[i] = SIZE_MAX;
    bool all_const = n->n_outputs > 0;
    for (int i = 0; i < n->n_outputs; i++)
        if (sh_node_output(g, n, i) && !sh_node_output(g, n, i)->is_const)
            all_const = false;
    if (all_const) {
        cn->kind = NK_SKIP;
        return 0;
    }
    if (!sh_cuda_supports_node(c, g, k))
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): not supported by the CUDA backend",
                       n->name, sh_op_name(n->op));
    if (sh_cuda_quant_handles(g, n)) {
        int rq = sh_cuda_build_quant(c, g, p, cp, k, err);
        return rq ? sh_err_prefix(err, rq, "node %s (%s): ", n->name, sh_op_name(n->op)) : 0;
    }
    const sh_tensor *x = tin(g, n, 0), *y = sh_node_output(g, n, 0);
    int xi = n->n_inputs > 0 ? n->inputs[0] : -1, yi = n->outputs[0];
    cn->n = (int)numel(y);
    bool aliased[64] = {false};
    int rc = 0;
    switch (n->op) {
    case SH_OP_CONV: case SH_OP_CONV_TRANSPOSE:
        rc = sh_cuda_build_conv(c, g, n, cn, cp, err);
        if (!rc)
            sh_cuda_fuse_residual(c, g, p, cp, k);
        break;
    case SH_OP_BATCH_NORM:
        cn->kind = NK_BN;
        cn->eps = sh_node_float(n, "epsilon", 1e-5f);
        cn->conv_outer = (int)x->shape.d[0];
        cn->conv_c = (int)x->shape.d[1];
        cn->conv_inner = (int)(numel(x) / (x->shape.d[0] * x->shape.d[1]));
        break;
    case SH_OP_RELU: case SH_OP_SIGMOID: case SH_OP_HARD_SIGMOID: case SH_OP_HARD_SWISH:
    case SH_OP_CLIP: case SH_OP_EXP: case SH_OP_SILU:
        rc = unary_setup(g, n, cn);
        break;
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
        if (cp->fused_add[k]) {   /* the conv before it already added */
            p->alias_of[yi] = n->inputs[cp->fused_add[k] - 1];
            p->alias_offset[yi] = 0;
            cn->kind = NK_SKIP;
            break;
        }
        cn->kind = NK_BINARY;
        cn->bin_op = n->op == SH_OP_ADD ? SH_K_ADD : n->op == SH_OP_SUB ? SH_K_SUB
                   : n->op == SH_OP_MUL ? SH_K_MUL : SH_K_DIV;
        cn->act = sh_cuda_node_act(n);
        sh_cuda_build_bcast(&x->shape, &tin(g, n, 1)->shape, &y->shape, cp->nhwc[xi], cp->nhwc[n->inputs[1]],
                            cp->nhwc[yi], &cn->bc, &cn->bin_flat);
        break;
    case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE:
    case SH_OP_IDENTITY: case SH_OP_CAST:
        if (plain_act(p, cp, x, xi) && plain_act(p, cp, y, yi)) {
            p->alias_of[yi] = xi;
            p->alias_offset[yi] = 0;
            cn->kind = NK_SKIP;
        } else {
            cn->kind = NK_MEMCPY;
        }
        break;
    case SH_OP_CONCAT: {
        int axis = (int)sh_node_int(n, "axis", 0);
        if (axis < 0)
            axis += y->shape.ndim;
        size_t off = 0;
        sh_shape ys;
        sh_cuda_storage_shape(&y->shape, cp->nhwc[yi], &ys);
        bool can = plain_act(p, cp, y, yi) && n->n_inputs <= 64 &&
                   outer_axis_contiguous(&ys, sh_cuda_storage_axis(axis, y->shape.ndim, cp->nhwc[yi]));
        for (int i = 0; i < n->n_inputs && i < 64; i++) {
            const sh_tensor *t = tin(g, n, i);
            if (!t)
                continue;
            int ti = n->inputs[i];
            bool dup = false;
            for (int j = 0; j < i; j++)
                dup |= n->inputs[j] == ti;
            if (can && !dup && plain_act(p, cp, t, ti) && t->producer >= 0 && t->n_consumers == 1 &&
                p->alias_of[ti] < 0 && !g->nodes[t->producer].dead) {
                p->alias_of[ti] = yi;
                p->alias_offset[ti] = off;
                aliased[i] = true;
            }
            off += (size_t)numel(t) * 2;
        }
        rc = sh_cuda_build_concat(c, g, n, cn, aliased, cp->nhwc[yi], err);
        break;
    }
    case SH_OP_SPLIT: {
        int axis = (int)sh_node_int(n, "axis", 0);
        if (axis < 0)
            axis += x->shape.ndim;
        size_t off = 0;
        sh_shape xs;
        sh_cuda_storage_shape(&x->shape, cp->nhwc[xi], &xs);
        bool can = plain_act(p, cp, x, xi) && n->n_outputs <= 64 &&
                   outer_axis_contiguous(&xs, sh_cuda_storage_axis(axis, x->shape.ndim, cp->nhwc[xi]));
        for (int j = 0; j < n->n_outputs && j < 64; j++) {
            const sh_tensor *t = sh_node_output(g, n, j);
            if (!t)
                continue;
            if (can && plain_act(p, cp, t, n->outputs[j])) {
                p->alias_of[n->outputs[j]] = xi;
                p->alias_offset[n->outputs[j]] = off;
                aliased[j] = true;
            }
            off += (size_t)numel(t) * 2;
        }
        rc = sh_cuda_build_split(c, g, n, cn, aliased, cp->nhwc[xi], err);
        break;
    }
    case SH_OP_SLICE: {
        int64_t start[SH_MAX_DIMS], step[SH_MAX_DIMS];
        int nd = x->shape.ndim, first = -1;
        bool view = plain_act(p, cp, x, xi) && plain_act(p, cp, y, yi) &&
                    sh_cuda_slice_params(g, n, start, step) == 0;
        for (int d = 0; view && d < nd; d++) {
            if (step[d] != 1 && y->shape.d[d] > 1)
                view = false;
            if (y->shape.d[d] != x->shape.d[d] && first < 0)
                first = d;
        }
        /* a view when only one axis is cut and every axis before it has extent 1 */
        for (int d = 0; view && d < nd; d++) {
            if (first >= 0 && d > first && y->shape.d[d] != x->shape.d[d])
                view = false;
            if (first >= 0 && d < first && x->shape.d[d] != 1)
                view = false;
        }
        if (view && first >= 0) {
            int64_t inner = 1;
            for (int d = first + 1; d < nd; d++)
                inner *= x->shape.d[d];
            p->alias_of[yi] = xi;
            p->alias_offset[yi] = (size_t)(start[first] * inner * 2);
            cn->kind = NK_SKIP;
        } else {
            rc = sh_cuda_build_slice(c, g, n, cn, err);
        }
        break;
    }
    case SH_OP_TRANSPOSE:
        if (transpose_folds(c, g, p, cp, n)) {
            p->alias_of[yi] = xi;
            p->alias_offset[yi] = 0;
            cp->tview[yi] = 1;
            cn->kind = NK_SKIP;
        } else {
            rc = sh_cuda_build_transpose(c, g, n, cn, err);
        }
        break;
    case SH_OP_EXPAND: rc = sh_cuda_build_expand(c, g, n, cn, err); break;
    case SH_OP_GATHER: rc = sh_cuda_build_gather(c, g, n, cn, err); break;
    case SH_OP_PAD: rc = sh_cuda_build_pad(c, g, n, cn, err); break;
    case SH_OP_MAX_POOL: case SH_OP_AVERAGE_POOL: rc = sh_cuda_build_pool(g, n, cn, cp->nhwc[yi], err); break;
    case SH_OP_GLOBAL_AVERAGE_POOL: case SH_OP_REDUCE_MEAN: rc = sh_cuda_build_reduce(g, n, cn, err); break;
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE: rc = sh_cuda_build_resize(g, n, cn, cp->nhwc[yi], err); break;
    case SH_OP_SOFTMAX: rc = sh_cuda_build_softmax(g, n, cn, err); break;
    case SH_OP_MATMUL: case SH_OP_GEMM: rc = sh_cuda_build_gemm(g, n, cn, cp->tview, err); break;
    case SH_OP_FRAME_TO_TENSOR: case SH_OP_FRAME_DECODE: case SH_OP_FRAME_NMS: case SH_OP_FRAME_MASKS:
    case SH_OP_FRAME_LANDMARKS: case SH_OP_FRAME_CROP:
        rc = sh_cuda_build_frame(c, g, n, cp, cn, err);
        break;
    default:
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): not supported by the CUDA backend",
                       n->name, sh_op_name(n->op));
    }
    if (rc)
        return sh_err_prefix(err, rc, "node %s (%s): ", n->name, sh_op_name(n->op));

    /* in place: pure element-wise kernels whose input has the output's shape and dies here */
    if ((cn->kind == NK_UNARY || cn->kind == NK_BINARY || cn->kind == NK_BN) && plain_act(p, cp, y, yi)) {
        int nslots = cn->kind == NK_BINARY ? 2 : 1;
        for (int i = 0; i < nslots; i++) {
            const sh_tensor *t = tin(g, n, i);
            if (plain_act(p, cp, t, n->inputs[i]) && sh_shape_equal(&t->shape, &y->shape) &&
                t->n_consumers == 1) {
                p->inplace_input[k] = i;
                break;
            }
        }
    }

    /* workspace: fp16 staging at the fp32 boundary, then the op's own scratch (the frame ops
     * read and write their tensors in the storage they have: no staging) */
    size_t ws = 0;
    if (cn->kind != NK_SKIP && cn->kind != NK_FRAME) {
        for (int i = 0; i < n->n_inputs; i++) {
            const sh_tensor *t = tin(g, n, i);
            if (!t || sh_cuda_is_param_slot(n, i))
                continue;
            int ti = tindex(n, i, false);
            if (t->is_const) {
                if (cp->wpack[ti] >= SH_WPACK_RAW)
                    return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): constant %s is also read by a "
                                   "quantized op (raw bytes), not as fp16", n->name, sh_op_name(n->op), t->name);
                p->weight_bytes[ti] = (size_t)numel(t) * 2;
            } else if (cp->f32[ti] && !(cn->kind == NK_PLANAR && i == 0)) {   /* planar reads fp32 */
                cn->stage_in[i] = ws;
                ws += sh_align_up((size_t)numel(t) * 2, SH_CUDA_ALIGN);
            }
        }
        for (int j = 0; j < n->n_outputs; j++) {
            const sh_tensor *t = sh_node_output(g, n, j);
            if (t && !t->is_const && cp->f32[n->outputs[j]]) {
                cn->stage_out[j] = ws;
                ws += sh_align_up((size_t)numel(t) * 2, SH_CUDA_ALIGN);
            }
        }
        cn->op_ws_off = ws;
        ws += sh_align_up(cn->op_ws_bytes, SH_CUDA_ALIGN);
    } else if (cn->kind == NK_FRAME) {
        cn->op_ws_off = 0;
        ws = sh_align_up(cn->op_ws_bytes, SH_CUDA_ALIGN);
    }
    p->workspace_bytes[k] = ws;
    if (cn->kind == NK_MEMCPY)
        cn->memcpy_bytes = (size_t)numel(y) * 2;
    return 0;
}

void sh_cuda_program_free(void *vctx, sh_program *p)
{
    sh_cuda_ctx *c = vctx;
    if (!p)
        return;
    sh_cuda_prog *cp = p->impl;
    if (cp) {
        for (int i = 0; i < SH_CUDA_GRAPH_CACHE; i++)
            if (cp->graphs[i].exec)
                cudaGraphExecDestroy(cp->graphs[i].exec);
        if (cp->nodes) {
            for (int k = 0; k < p->graph->n_nodes; k++) {
                sh_cuda_node *cn = &cp->nodes[k];
                if (cn->xd) cudnnDestroyTensorDescriptor(cn->xd);
                if (cn->yd) cudnnDestroyTensorDescriptor(cn->yd);
                if (cn->wd) cudnnDestroyFilterDescriptor(cn->wd);
                if (cn->cd) cudnnDestroyConvolutionDescriptor(cn->cd);
                sh_free(c->alloc, cn->stage_in);
                sh_free(c->alloc, cn->stage_out);
                sh_free(c->alloc, cn->copies);
                sh_free(c->alloc, cn->frame);
                sh_free(c->alloc, cn->quant);
            }
        }
        sh_free(c->alloc, cp->nodes);
        sh_free(c->alloc, cp->f32);
        sh_free(c->alloc, cp->nhwc);
        sh_free(c->alloc, cp->wpack);
        sh_free(c->alloc, cp->fused_add);
        sh_free(c->alloc, cp->ld);
        sh_free(c->alloc, cp->tview);
        if (cp->events)
            for (int k = 0; k < p->graph->n_nodes; k++)
                if (cp->events[k])
                    cudaEventDestroy(cp->events[k]);
        sh_cuda_early_free(cp);
        if (cp->fork_ev)
            cudaEventDestroy(cp->fork_ev);
        for (int i = 0; i < SH_CUDA_STREAMS; i++)
            if (cp->join_ev[i])
                cudaEventDestroy(cp->join_ev[i]);
        sh_free(c->alloc, cp->events);
        sh_free(c->alloc, cp->stream_of);
        sh_free(c->alloc, cp->wait_first);
        sh_free(c->alloc, cp->waits);
        sh_free(c->alloc, cp);
    }
    sh_program_release(c->alloc, p);
}

/* Layout of every 4-D fp16 activation. Convolutions take either layout (converting through
 * their scratch); element-wise ops, concat/split, pooling, resize and depthwise run in the
 * layout of their tensors, all of which must agree; every other consumer or producer
 * (reshape, transpose, matmul, softmax, slice, graph inputs/outputs, ...) needs NCHW
 * semantics. Start from channels-last everywhere and push NCHW through the agreeing groups
 * until nothing changes; each pass only turns flags off, so it ends. */
typedef enum { LC_FORCE, LC_GROUP, LC_CONV } layout_class;

static layout_class node_layout_class(const sh_graph *g, const sh_node *n)
{
    switch (n->op) {
    case SH_OP_CONV: {
        const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
        if (!x || !w || !y || x->shape.ndim != 4 || w->shape.ndim != 4)
            return LC_FORCE;
        int64_t C = x->shape.d[1], group = sh_node_int(n, "group", 1);
        bool dw = group == C && y->shape.d[1] == C && C > 1 && w->shape.d[1] == 1;
        return dw ? LC_GROUP : LC_CONV;
    }
    case SH_OP_CONV_TRANSPOSE:   /* both of its paths convert what is not in their layout */
        return LC_CONV;
    case SH_OP_RELU: case SH_OP_SIGMOID: case SH_OP_HARD_SIGMOID: case SH_OP_HARD_SWISH:
    case SH_OP_EXP: case SH_OP_SILU: case SH_OP_CLIP:
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
    case SH_OP_CONCAT: case SH_OP_SPLIT:
    case SH_OP_MAX_POOL: case SH_OP_AVERAGE_POOL:
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE:
        return LC_GROUP;
    default:
        return LC_FORCE;
    }
}

static void choose_layouts(const sh_graph *g, const sh_program *p, sh_cuda_prog *cp)
{
    for (int t = 0; t < g->n_tensors; t++) {
        const sh_tensor *ts = &g->tensors[t];
        cp->nhwc[t] = !ts->is_const && is_float(ts->dtype) && ts->shape.ndim == 4 && !cp->f32[t] && p->tensor_bytes[t] > 0 &&
                      ts->shape.d[1] > 1;
    }
    bool changed = true;
    while (changed) {
        changed = false;
        for (int k = 0; k < g->n_nodes; k++) {
            const sh_node *n = &g->nodes[k];
            layout_class lc = node_layout_class(g, n);
            if (lc == LC_CONV)
                continue;
            bool off = lc == LC_FORCE;
            for (int pass = 0; pass < 2; pass++) {
                for (int i = 0; i < n->n_inputs + n->n_outputs; i++) {
                    int ti = i < n->n_inputs ? n->inputs[i] : n->outputs[i - n->n_inputs];
                    if (ti < 0 || g->tensors[ti].is_const)
                        continue;
                    if (i < n->n_inputs && sh_cuda_is_param_slot(n, i))
                        continue;
                    if (pass == 0) {
                        /* a 4-D member already NCHW pulls the whole group with it */
                        if (g->tensors[ti].shape.ndim == 4 && !cp->nhwc[ti])
                            off = true;
                    } else if (off && cp->nhwc[ti]) {
                        cp->nhwc[ti] = false;
                        changed = true;
                    }
                }
                if (!off)
                    break;
            }
        }
    }
}

int sh_cuda_compile(void *vctx, const sh_graph *g, sh_program **out, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    *out = NULL;
    sh_program *p = sh_program_alloc(c->alloc, g);
    sh_cuda_prog *cp = p ? sh_calloc(c->alloc, 1, sizeof *cp) : NULL;
    if (!cp) {
        sh_program_release(c->alloc, p);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda compile: program for %s", g->name ? g->name : "graph");
    }
    p->impl = cp;
    p->weight_dtype = SH_DT_FLOAT16;
    cp->nodes = sh_calloc(c->alloc, (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *cp->nodes);
    cp->f32 = sh_calloc(c->alloc, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *cp->f32);
    cp->nhwc = sh_calloc(c->alloc, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *cp->nhwc);
    cp->wpack = sh_calloc(c->alloc, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *cp->wpack);
    cp->fused_add = sh_calloc(c->alloc, (size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *cp->fused_add);
    cp->ld = sh_calloc(c->alloc, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *cp->ld);
    cp->tview = sh_calloc(c->alloc, (size_t)(g->n_tensors ? g->n_tensors : 1), sizeof *cp->tview);
    if (!cp->nodes || !cp->f32 || !cp->nhwc || !cp->wpack || !cp->fused_add || !cp->ld || !cp->tview) {
        sh_cuda_program_free(c, p);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda compile: program arrays");
    }
    for (int t = 0; t < g->n_tensors; t++) {
        const sh_tensor *ts = &g->tensors[t];
        if (ts->is_const || ts->shape.ndim < 0 || !is_float(ts->dtype))
            continue;
        cp->f32[t] = ts->is_input || ts->is_output;
        int64_t ne = numel(ts);
        if (ne > 0)
            p->tensor_bytes[t] = (size_t)ne * (cp->f32[t] ? 4 : 2);
    }
    sh_cuda_frame_storage(g, p, cp);
    sh_cuda_quant_storage(g, p, cp);
    for (int t = 0; t < g->n_tensors; t++) {
        const sh_tensor *ts = &g->tensors[t];
        if (ts->is_input && !ts->is_const && ts->dtype != SH_DT_FLOAT32 && !sh_cuda_frame_input_ok(g, t)) {
            sh_cuda_program_free(c, p);
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "graph input %s: the CUDA backend takes fp32 inputs",
                           ts->name);
        }
    }
    choose_layouts(g, p, cp);
    for (int k = 0; k < g->n_nodes; k++) {
        int rc = build_node(c, g, p, cp, k, err);
        if (rc) {
            sh_cuda_program_free(c, p);
            return rc;
        }
    }
    int vrc = sh_cuda_slice_views(c, g, p, cp, err);
    if (vrc) {
        sh_cuda_program_free(c, p);
        return vrc;
    }
    /* views end at their root; an in-place reuse cannot coexist with a view on either side */
    for (int t = 0; t < g->n_tensors; t++) {
        int r = p->alias_of[t];
        size_t off = p->alias_offset[t];
        int guard = 0;
        while (r >= 0 && p->alias_of[r] >= 0 && guard++ < g->n_tensors) {
            off += p->alias_offset[r];
            r = p->alias_of[r];
        }
        p->alias_of[t] = r;
        p->alias_offset[t] = r >= 0 ? off : 0;
    }
    sh_cuda_view_strides(g, p, cp);
    for (int k = 0; k < g->n_nodes; k++) {
        int s = p->inplace_input[k];
        if (s < 0)
            continue;
        const sh_node *n = &g->nodes[k];
        int ti = n->inputs[s], to = n->outputs[0];
        bool based = false;
        for (int t = 0; t < g->n_tensors && !based; t++)
            based = p->alias_of[t] == ti || p->alias_of[t] == to;
        if (p->alias_of[ti] >= 0 || p->alias_of[to] >= 0 || based)
            p->inplace_input[k] = -1;
    }
    int rc = sh_cuda_schedule(c, g, p, cp, err);
    if (!rc)
        sh_cuda_early_plan(c, g, cp);
    if (!rc && cp->n_streams > 1) {
        cudaError_t e = cudaEventCreateWithFlags(&cp->fork_ev, cudaEventDisableTiming);
        for (int i = 1; i < cp->n_streams && e == cudaSuccess; i++)
            e = cudaEventCreateWithFlags(&cp->join_ev[i], cudaEventDisableTiming);
        if (e != cudaSuccess)
            rc = sh_cuda_rt_fail(err, e, "cudaEventCreate (stream fork/join)", __FILE__, __LINE__, c->device);
    }
    if (rc) {
        sh_cuda_program_free(c, p);
        return rc;
    }
    *out = p;
    return 0;
}
