/* Channel-slice views in channels-last: Concat inputs written in place and Split outputs read
 * in place by the own convolution, which takes a pixel stride for its input, output and
 * residual (igemm.cuh: x_ld, y_ld, r_ld).
 *
 * In NHWC a channel slice [c0, c0 + C) of a tensor with Ct channels is not a byte range but
 * C halves every Ct halves, so build_node's contiguous views (alias_of/alias_offset) cannot
 * express it and YOLO's C2f blocks, SPPF and the neck's concats run as copies. This pass runs
 * once every node is built, so it sees what each reader really became (own conv, fused Add,
 * copy) instead of predicting it, and turns a slice into a view only where every reader of
 * its bytes can take the stride:
 *   - the own conv reading it as its input x (x_ld) or, through a fused Add, as its residual
 *     (r_ld); a fused Add's output is a view of the conv's output and is followed;
 *   - a Split whose outputs all become views with it, followed into each output;
 *   - the Concat taking it in place.
 * Anything else (a copy, an element-wise kernel, cuDNN, a graph output, fp32, NCHW) keeps
 * today's copy. A view is still recorded as alias_of/alias_offset (offset = c0 * 2 bytes); its
 * pixel stride is its root's channel count, which sh_cuda_view_strides writes into every own
 * conv once the alias chains are flattened.
 *
 * Concat: an input chain (fused Adds, channel Splits) ends at the own conv R that produced
 * its bytes; R is placed inside the concat's output at channel c0 - (the input's channel
 * offset inside R), and R's whole channel range must be exactly the concat inputs that come
 * from R (C2f: cv1's output holds both Split halves, which the concat takes side by side).
 * Split: an output whose readers are all own convs becomes a view of the split's input.
 * Offsets and strides stay multiples of 8 halves: the kernel's cp.async path moves 16 bytes
 * (it falls back to element loads otherwise, correct but slower, so such slices keep the copy). */
#include "backends/cuda/cuda_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIEW_ALIGN 8     /* halves per 16-byte cp.async vector */
#define VIEW_MAX 64      /* inputs of a concat, outputs of a split, splits in one decision */
#define VIEW_DEPTH 16    /* view chains followed (fused Adds, nested splits) */

typedef struct view_scope {
    const sh_graph *g;
    const sh_program *p;
    const sh_cuda_prog *cp;
    int concat;                 /* node taking some tensors in place, -1 */
    const int *members;         /* tensors that concat takes in place */
    int n_members;
    const int *splits;          /* split nodes that become views in the same decision */
    int n_splits;
} view_scope;

static bool in_list(const int *v, int n, int x)
{
    for (int i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

static int64_t chans(const sh_graph *g, int t) { return g->tensors[t].shape.d[1]; }

/* A 4-D fp16 channels-last activation inside the arena (no fp32 staging, not a graph edge). */
static bool cl_tensor(const view_scope *v, int t)
{
    const sh_tensor *ts = &v->g->tensors[t];
    return t >= 0 && !ts->is_const && !ts->is_input && !ts->is_output && ts->shape.ndim == 4 &&
           !v->cp->f32[t] && v->cp->nhwc[t] && v->p->tensor_bytes[t] > 0;
}

static bool same_pixels(const sh_graph *g, int a, int b)
{
    const sh_shape *x = &g->tensors[a].shape, *y = &g->tensors[b].shape;
    return x->ndim == 4 && y->ndim == 4 && x->d[0] == y->d[0] && x->d[2] == y->d[2] && x->d[3] == y->d[3];
}

/* A Concat / Split along the channels of 4-D channels-last tensors. */
static bool channel_op(const view_scope *v, const sh_node *n, sh_op op)
{
    if (n->op != op || n->dead || n->n_inputs < 1 || n->n_outputs < 1)
        return false;
    int t = op == SH_OP_CONCAT ? n->outputs[0] : n->inputs[0];
    if (t < 0 || v->g->tensors[t].shape.ndim != 4 || !v->cp->nhwc[t])
        return false;
    int64_t axis = sh_node_int(n, "axis", 0);
    return axis == 1 || axis == -3;
}

/* Channel offset of output j of a split inside its input. */
static int64_t split_offset(const sh_graph *g, const sh_node *n, int j)
{
    int64_t off = 0;
    for (int i = 0; i < j; i++)
        if (n->outputs[i] >= 0)
            off += chans(g, n->outputs[i]);
    return off;
}

static int output_slot(const sh_node *n, int t)
{
    for (int j = 0; j < n->n_outputs; j++)
        if (n->outputs[j] == t)
            return j;
    return -1;
}

static bool readers_ok(const view_scope *v, int t, int depth);

/* Node k reads tensor t (a channel slice) at input slot `slot`: can it take the stride? */
static bool reader_ok(const view_scope *v, int k, int slot, int t, int depth)
{
    const sh_node *n = &v->g->nodes[k];
    const sh_cuda_node *cn = &v->cp->nodes[k];
    if (cn->kind == NK_IGEMM)
        return slot == 0 && !cn->x_cvt;
    if (v->cp->fused_add[k]) {
        /* the other operand is the residual of the own conv before it (r_ld); the conv's
         * operand is viewed by the Add's output, whose readers count as t's */
        if (slot != v->cp->fused_add[k] - 1)
            return true;
        return readers_ok(v, n->outputs[0], depth + 1);
    }
    if (k == v->concat)
        return in_list(v->members, v->n_members, t);
    if (in_list(v->splits, v->n_splits, k)) {
        for (int j = 0; j < n->n_outputs; j++)
            if (n->outputs[j] >= 0 && !readers_ok(v, n->outputs[j], depth + 1))
                return false;
        return true;
    }
    return false;
}

/* A view of t that readers_ok follows (a fused Add's output, a split in scope): any other
 * view would read t's bytes as if they were dense. */
static bool view_followed(const view_scope *v, int u, int t)
{
    int k = v->g->tensors[u].producer;
    if (k < 0)
        return false;
    const sh_node *n = &v->g->nodes[k];
    if (v->cp->fused_add[k])
        return n->inputs[v->cp->fused_add[k] - 1] == t;
    return in_list(v->splits, v->n_splits, k) && n->inputs[0] == t;
}

/* Every reader of t's bytes (through the views followed) takes a pixel stride. */
static bool readers_ok(const view_scope *v, int t, int depth)
{
    const sh_graph *g = v->g;
    if (depth > VIEW_DEPTH || g->tensors[t].is_output)
        return false;
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == t && !reader_ok(v, k, i, t, depth))
                return false;
    }
    for (int u = 0; u < g->n_tensors; u++)
        if (v->p->alias_of[u] == t && !view_followed(v, u, t))
            return false;
    return true;
}

/* Where concat input t's bytes come from: through fused Adds and not-yet-viewed channel
 * splits up to the own conv that writes them (*root), at channel *chan of it; the splits
 * passed are appended to splits[] (deduplicated). False when the chain ends elsewhere. */
static bool view_source(const view_scope *v, int t, int *root, int64_t *chan, int *splits, int *n_splits)
{
    const sh_graph *g = v->g;
    int64_t c = 0;
    for (int hops = 0; hops < VIEW_DEPTH; hops++) {
        int k = g->tensors[t].producer;
        if (k < 0 || g->nodes[k].dead || !cl_tensor(v, t))
            return false;
        const sh_node *n = &g->nodes[k];
        const sh_cuda_node *cn = &v->cp->nodes[k];
        if (v->cp->fused_add[k]) {
            t = n->inputs[v->cp->fused_add[k] - 1];
            continue;
        }
        if (cn->kind == NK_COPY && channel_op(v, n, SH_OP_SPLIT) && n->n_outputs <= VIEW_MAX) {
            for (int j = 0; j < n->n_outputs; j++)
                if (n->outputs[j] >= 0 && v->p->alias_of[n->outputs[j]] >= 0)
                    return false;   /* partly viewed already (a one-pixel split) */
            c += split_offset(g, n, output_slot(n, t));
            if (!in_list(splits, *n_splits, k)) {
                if (*n_splits >= VIEW_MAX)
                    return false;
                splits[(*n_splits)++] = k;
            }
            t = n->inputs[0];
            continue;
        }
        if (cn->kind != NK_IGEMM || cn->y_cvt || n->outputs[0] != t || v->p->alias_of[t] >= 0)
            return false;
        *root = t;
        *chan = c;
        return true;
    }
    return false;
}

typedef struct view_stats {
    int inputs_in_place, outputs_viewed, steps_before, steps_after, copies_before, copies_after;
} view_stats;

static void drop_copies(sh_cuda_ctx *c, sh_cuda_node *cn)
{
    sh_free(c->alloc, cn->copies);
    cn->copies = NULL;
    cn->n_copies = 0;
}

/* Concat inputs i whose root (see view_source) is R: placed at channel `place` of the output,
 * taking R's whole channel range exactly, and every reader of R's bytes taking a stride. */
static bool group_fits(const view_scope *base, int yi, int R, int64_t place, const int *members, int nm,
                       const int64_t *c0, const int64_t *chan, int *splits, int *ns)
{
    const sh_graph *g = base->g;
    if (!cl_tensor(base, R) || !same_pixels(g, R, yi) || place < 0 || place % VIEW_ALIGN ||
        place + chans(g, R) > chans(g, yi))
        return false;
    int64_t covered = 0;
    for (int m = 0; m < nm; m++) {
        if (c0[m] - chan[m] != place || c0[m] % VIEW_ALIGN)
            return false;
        covered += chans(g, members[m]);
    }
    if (covered != chans(g, R))
        return false;
    /* a split in the chain becomes a view as a whole: each of its outputs is a member */
    for (int s = 0; s < *ns; s++) {
        const sh_node *n = &g->nodes[splits[s]];
        for (int j = 0; j < n->n_outputs; j++)
            if (n->outputs[j] >= 0 && !in_list(members, nm, n->outputs[j]))
                return false;
    }
    view_scope v = *base;
    v.members = members;
    v.n_members = nm;
    v.splits = splits;
    v.n_splits = *ns;
    return readers_ok(&v, R, 0);
}

static void apply_group(const sh_graph *g, sh_program *p, sh_cuda_ctx *c, sh_cuda_prog *cp, int yi, int R,
                        int64_t place, const int *splits, int ns)
{
    p->alias_of[R] = yi;
    p->alias_offset[R] = (size_t)place * 2;
    for (int s = 0; s < ns; s++) {
        const sh_node *n = &g->nodes[splits[s]];
        for (int j = 0; j < n->n_outputs; j++) {
            if (n->outputs[j] < 0)
                continue;
            p->alias_of[n->outputs[j]] = n->inputs[0];
            p->alias_offset[n->outputs[j]] = (size_t)split_offset(g, n, j) * 2;
        }
        drop_copies(c, &cp->nodes[splits[s]]);
        cp->nodes[splits[s]].kind = NK_SKIP;
    }
}

static int view_concat(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int k,
                       view_stats *st, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_cuda_node *cn = &cp->nodes[k];
    view_scope v = {.g = g, .p = p, .cp = cp, .concat = k};
    int yi = n->outputs[0];
    if (cn->kind != NK_COPY || !channel_op(&v, n, SH_OP_CONCAT) || n->n_inputs > VIEW_MAX ||
        !cl_tensor(&v, yi) || p->alias_of[yi] >= 0 || chans(g, yi) % VIEW_ALIGN)
        return 0;
    int root[VIEW_MAX];
    int64_t c0[VIEW_MAX], chan[VIEW_MAX];
    bool aliased[VIEW_MAX] = {false}, changed = false;
    int64_t off = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        int t = n->inputs[i], scratch[VIEW_MAX], nsc = 0;
        c0[i] = off;
        off += t >= 0 ? chans(g, t) : 0;
        root[i] = -1;
        if (t < 0)
            continue;
        aliased[i] = p->alias_of[t] == yi;
        bool dup = false;
        for (int j = 0; j < n->n_inputs; j++)
            dup |= j != i && n->inputs[j] == t;
        if (!aliased[i] && !dup && !view_source(&v, t, &root[i], &chan[i], scratch, &nsc))
            root[i] = -1;
        if (aliased[i] || dup)
            root[i] = -1;
    }
    for (int i = 0; i < n->n_inputs; i++) {
        int R = root[i];
        bool first = R >= 0;
        for (int j = 0; j < i && first; j++)
            first = root[j] != R;
        if (!first)
            continue;
        int members[VIEW_MAX], splits[VIEW_MAX], nm = 0, ns = 0;
        int64_t mc0[VIEW_MAX], mchan[VIEW_MAX];
        bool ok = true;
        for (int j = i; j < n->n_inputs && ok; j++) {
            if (root[j] != R)
                continue;
            int r2;
            int64_t ch2;
            ok = view_source(&v, n->inputs[j], &r2, &ch2, splits, &ns);
            members[nm] = n->inputs[j];
            mc0[nm] = c0[j];
            mchan[nm++] = chan[j];
        }
        if (!ok || !group_fits(&v, yi, R, c0[i] - chan[i], members, nm, mc0, mchan, splits, &ns))
            continue;
        apply_group(g, p, c, cp, yi, R, c0[i] - chan[i], splits, ns);
        for (int j = i; j < n->n_inputs; j++)
            if (root[j] == R) {
                aliased[j] = true;
                st->inputs_in_place++;
            }
        changed = true;
    }
    if (!changed)
        return 0;
    drop_copies(c, cn);
    return sh_cuda_build_concat(c, g, n, cn, aliased, true, err);
}

/* Split outputs read only by own convs (directly or as a fused residual) become views. */
static int view_split(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int k,
                      view_stats *st, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_cuda_node *cn = &cp->nodes[k];
    view_scope v = {.g = g, .p = p, .cp = cp, .concat = -1};
    int xi = n->inputs[0];
    if (cn->kind != NK_COPY || !channel_op(&v, n, SH_OP_SPLIT) || n->n_outputs > VIEW_MAX ||
        !cl_tensor(&v, xi) || chans(g, xi) % VIEW_ALIGN)
        return 0;
    bool aliased[VIEW_MAX] = {false}, changed = false;
    for (int j = 0; j < n->n_outputs; j++) {
        int t = n->outputs[j];
        if (t < 0)
            continue;
        aliased[j] = p->alias_of[t] >= 0;
        int64_t off = split_offset(g, n, j);
        if (aliased[j] || !cl_tensor(&v, t) || off % VIEW_ALIGN || !readers_ok(&v, t, 0))
            continue;
        p->alias_of[t] = xi;
        p->alias_offset[t] = (size_t)off * 2;
        aliased[j] = true;
        changed = true;
        st->outputs_viewed++;
    }
    if (!changed)
        return 0;
    drop_copies(c, cn);
    return sh_cuda_build_split(c, g, n, cn, aliased, true, err);
}

static void count_copy_steps(const sh_graph *g, const sh_cuda_prog *cp, int *steps, int *copies)
{
    *steps = *copies = 0;
    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && cp->nodes[k].kind == NK_COPY &&
            (g->nodes[k].op == SH_OP_CONCAT || g->nodes[k].op == SH_OP_SPLIT)) {
            (*steps)++;
            *copies += cp->nodes[k].n_copies;
        }
}

int sh_cuda_slice_views(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, sh_err *err)
{
    /* tuning.cuda_no_slice_views: every channel slice copied (A/B runs) */
    if (c->tune.cuda_no_slice_views)
        return 0;
    view_stats st = {0};
    count_copy_steps(g, cp, &st.steps_before, &st.copies_before);
    /* concats first: they turn the splits feeding them into views as a whole; the splits
     * left over then view what they can on their own */
    for (int k = 0; k < g->n_nodes; k++) {
        int rc = view_concat(c, g, p, cp, k, &st, err);
        if (rc)
            return rc;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        int rc = view_split(c, g, p, cp, k, &st, err);
        if (rc)
            return rc;
    }
    count_copy_steps(g, cp, &st.steps_after, &st.copies_after);
    /* tuning.cuda_log_views: one line per compiled graph, for counting what became a view */
    if (c->tune.cuda_log_views)
        sh_cuda_logf(c, "slice views %s: %d concat inputs in place, %d split outputs viewed alone; "
                        "concat/split copy steps %d -> %d, copies %d -> %d",
                g->name ? g->name : "-", st.inputs_in_place, st.outputs_viewed, st.steps_before,
                st.steps_after, st.copies_before, st.copies_after);
    return 0;
}

/* Pixel stride of tensor t once alias chains end at their roots: a channels-last view with
 * the root's pixels is a channel slice of it, so it steps by the root's channel count. */
static int pixel_stride(const sh_graph *g, const sh_program *p, const sh_cuda_prog *cp, int t)
{
    int r = p->alias_of[t];
    if (r >= 0 && cp->nhwc[r] && cp->nhwc[t] && same_pixels(g, r, t))
        return (int)chans(g, r);
    return (int)chans(g, t);
}

void sh_cuda_view_strides(const sh_graph *g, const sh_program *p, sh_cuda_prog *cp)
{
    for (int t = 0; t < g->n_tensors; t++) {
        cp->ld[t] = 0;
        if (g->tensors[t].shape.ndim == 4 && cp->nhwc[t] && pixel_stride(g, p, cp, t) != chans(g, t))
            cp->ld[t] = pixel_stride(g, p, cp, t);
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        sh_cuda_node *cn = &cp->nodes[k];
        if (n->dead || cn->kind != NK_IGEMM)
            continue;
        /* a converted input or output lives densely in the op's scratch */
        if (!cn->x_cvt)
            cn->ig.x_ld = pixel_stride(g, p, cp, n->inputs[0]);
        if (!cn->y_cvt)
            cn->ig.y_ld = pixel_stride(g, p, cp, n->outputs[0]);
        if (cn->has_res)
            cn->ig.r_ld = pixel_stride(g, p, cp, cn->res_t);
    }
}
