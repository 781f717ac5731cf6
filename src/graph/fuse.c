/* Fusions on an inferred graph: no-op removal, BatchNormalization into the preceding Conv,
 * SiLU, and Conv/ConvTranspose/Gemm + output activation.
 *
 * Every rewrite keeps the names of graph outputs: a removed node's output that is a graph
 * output is taken over by the producer of its input (the producer writes the output tensor
 * directly). Consumer counts are recomputed after each rewrite, which is quadratic only in
 * the number of rewrites and keeps each rule's preconditions simple to read. */
#include "graph/passes-impl.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void sh_graph_refresh_uses(sh_graph *g)
{
    for (int t = 0; t < g->n_tensors; t++) {
        g->tensors[t].producer = -1;
        g->tensors[t].n_consumers = g->tensors[t].is_output ? 1 : 0;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0)
                g->tensors[n->outputs[i]].producer = k;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0)
                g->tensors[n->inputs[i]].n_consumers++;
    }
}

static void replace_uses(sh_graph *g, int from, int to)
{
    for (int k = 0; k < g->n_nodes; k++) {
        sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] == from)
                n->inputs[i] = to;
    }
}

/* Node producing tensor t if it is a live node of one of the given kinds with no fused act
 * yet, and t is read by exactly `uses` node inputs and is not a graph output. */
static sh_node *fusable_producer(sh_graph *g, int t, int uses)
{
    const sh_tensor *x = &g->tensors[t];
    if (x->producer < 0 || x->is_output || x->n_consumers != uses)
        return NULL;
    sh_node *p = &g->nodes[x->producer];
    if (p->dead || p->act != SH_ACT_NONE || p->outputs[0] != t || x->dtype != SH_DT_FLOAT32)
        return NULL;
    /* a QLinearConv that dequantizes its own output (graph/qdq.c) applies activations too */
    bool qconv_float = p->op == SH_OP_QLINEAR_CONV && sh_node_int(p, SH_QCONV_DEQUANTIZE, 0);
    if (p->op != SH_OP_CONV && p->op != SH_OP_CONV_TRANSPOSE && p->op != SH_OP_GEMM && !qconv_float)
        return NULL;
    return p;
}

/* --- no-ops ------------------------------------------------------------------------------ */

static bool all_zero_pads(const sh_graph *g, const sh_node *n)
{
    int64_t v[2 * SH_MAX_DIMS];
    int c;
    if (n->opset < 11) {
        const int64_t *p = sh_node_ints(n, "pads", &c);
        if (!p)
            return false;
        memcpy(v, p, (size_t)c * 8);
    } else if ((c = sh_const_ints(g, n->n_inputs > 1 ? n->inputs[1] : -1, v, 2 * SH_MAX_DIMS)) < 0) {
        return false;
    }
    for (int i = 0; i < c; i++)
        if (v[i])
            return false;
    return true;
}

static bool is_noop(const sh_graph *g, int k)
{
    const sh_node *n = &g->nodes[k];
    if (n->n_outputs != 1 || n->outputs[0] < 0 || n->n_inputs < 1 || n->inputs[0] < 0)
        return false;
    const sh_tensor *x = &g->tensors[n->inputs[0]], *y = &g->tensors[n->outputs[0]];
    if (x->dtype != y->dtype || !sh_shape_equal(&x->shape, &y->shape))
        return false;
    switch (n->op) {
    case SH_OP_IDENTITY: case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE:
    case SH_OP_EXPAND: case SH_OP_CAST:
        return true;
    case SH_OP_PAD:
        return all_zero_pads(g, n);
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE:
        /* every coordinate mode but tf_crop_and_resize maps output x to input x at scale 1, and
         * every interpolation kernel then weighs that one sample by exactly 1 */
        return strcmp(sh_node_string(n, "coordinate_transformation_mode", ""), "tf_crop_and_resize") != 0;
    case SH_OP_SLICE: {
        sh_slice_geom sg;
        if (sh_node_slice_geom(g, k, &sg, NULL))
            return false;
        for (int i = 0; i < sg.ndim; i++)
            if (sg.step[i] != 1 || sg.start[i] != 0)
                return false;
        return true;
    }
    default:
        return false;
    }
}

static bool remove_noop(sh_graph *g, int k)
{
    sh_node *n = &g->nodes[k];
    int in = n->inputs[0], out = n->outputs[0];
    sh_tensor *x = &g->tensors[in], *y = &g->tensors[out];
    if (!y->is_output) {
        replace_uses(g, out, in);
        n->dead = true;
        return true;
    }
    /* out is a graph output: let in's producer write it, unless in must keep its own name */
    if (x->is_output || x->is_input || x->is_const || x->producer < 0)
        return false;
    sh_node *p = &g->nodes[x->producer];
    n->dead = true;
    for (int i = 0; i < p->n_outputs; i++)
        if (p->outputs[i] == in)
            p->outputs[i] = out;
    replace_uses(g, in, out);
    return true;
}

/* --- Pad into Conv ------------------------------------------------------------------------ */

/* A zero constant Pad of the spatial dims in front of a Conv (how TF-style SAME padding is
 * exported) becomes the Conv's own pads. Returns 1 when fused, < 0 on error. */
static int fuse_pad_conv(sh_graph *g, int k, sh_err *err)
{
    sh_node *pd = &g->nodes[k];
    if (pd->n_outputs != 1 || pd->inputs[0] < 0 || strcmp(sh_node_string(pd, "mode", "constant"), "constant"))
        return 0;
    int yt = pd->outputs[0];
    const sh_tensor *y = &g->tensors[yt];
    if (y->is_output || y->n_consumers != 1 || y->producer != k)
        return 0;
    int ck = -1;
    for (int c = 0; c < g->n_nodes && ck < 0; c++)
        if (!g->nodes[c].dead && g->nodes[c].op == SH_OP_CONV && g->nodes[c].inputs[0] == yt)
            ck = c;
    if (ck < 0 || strcmp(sh_node_string(&g->nodes[ck], "auto_pad", "NOTSET"), "NOTSET"))
        return 0;
    int r = y->shape.ndim, c;
    int64_t pads[2 * SH_MAX_DIMS];
    if (pd->opset < 11) {
        const int64_t *p = sh_node_ints(pd, "pads", &c);
        if (!p || sh_node_float(pd, "value", 0.0f) != 0.0f)
            return 0;
        memcpy(pads, p, (size_t)c * 8);
    } else {
        if (pd->n_inputs > 3 && pd->inputs[3] >= 0)
            return 0;   /* axes (opset 18) */
        c = sh_const_ints(g, pd->n_inputs > 1 ? pd->inputs[1] : -1, pads, 2 * SH_MAX_DIMS);
        float v = 0.0f;
        if (pd->n_inputs > 2 && pd->inputs[2] >= 0 &&
            (sh_const_floats(g, pd->inputs[2], &v, 1) != 1 || v != 0.0f))
            return 0;
    }
    if (c != 2 * r || r < 3 || pads[0] || pads[1] || pads[r] || pads[r + 1])
        return 0;
    for (int i = 0; i < 2 * r; i++)
        if (pads[i] < 0)
            return 0;
    int n;
    const int64_t *cp = sh_node_ints(&g->nodes[ck], "pads", &n);
    int ns = r - 2;
    int64_t np[2 * SH_MAX_DIMS] = {0};
    if (cp && n == 2 * ns)
        memcpy(np, cp, (size_t)n * 8);
    for (int i = 0; i < ns; i++) {
        np[i] += pads[2 + i];
        np[ns + i] += pads[r + 2 + i];
    }
    if (sh_node_set_ints(g, ck, "pads", np, 2 * ns))
        return sh_node_errf(err, SHOAL_ERR_NO_MEMORY, g, &g->nodes[ck], "out of memory");
    g->nodes[ck].inputs[0] = g->nodes[k].inputs[0];
    g->nodes[k].dead = true;
    return 1;
}

/* --- BatchNormalization into Conv --------------------------------------------------------- */

static int new_const(sh_graph *g, const char *base, const char *suffix, const sh_shape *s, float *data, size_t nbytes,
                     sh_err *err)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", base, suffix);
    for (int i = 1; sh_graph_find_tensor(g, name) >= 0; i++)
        snprintf(name, sizeof name, "%s%s_%d", base, suffix, i);
    int t = sh_graph_add_tensor(g, name, SH_DT_FLOAT32, s);
    if (t < 0) {
        sh_free(g->alloc, data);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory adding tensor '%s'", name);
    }
    int rc = sh_graph_adopt_const(g, t, data, nbytes, err);
    return rc ? rc : t;
}

static const float *const_f32(const sh_graph *g, int t, int64_t n)
{
    if (t < 0)
        return NULL;
    const sh_tensor *x = &g->tensors[t];
    if (!x->is_const || x->dtype != SH_DT_FLOAT32 || sh_shape_numel(&x->shape) != n)
        return NULL;
    return x->data;
}

/* Returns 1 when fused, 0 when the pattern does not apply, < 0 on error. */
static int fold_bn(sh_graph *g, int b, sh_err *err)
{
    sh_node *bn = &g->nodes[b];
    if (bn->n_inputs < 5 || bn->inputs[0] < 0)
        return 0;
    for (int i = 1; i < bn->n_outputs; i++)
        if (bn->outputs[i] >= 0 && g->tensors[bn->outputs[i]].n_consumers)
            return 0;
    sh_node *c = fusable_producer(g, bn->inputs[0], 1);
    if (!c || c->op != SH_OP_CONV)
        return 0;
    int ck = (int)(c - g->nodes);
    const sh_tensor *w = sh_node_input(g, c, 1);
    int64_t m = w->shape.d[0], per = sh_shape_numel(&w->shape) / (m ? m : 1);
    const float *wd = const_f32(g, c->inputs[1], m * per);
    const float *bd = c->n_inputs > 2 && c->inputs[2] >= 0 ? const_f32(g, c->inputs[2], m) : NULL;
    const float *sc = const_f32(g, bn->inputs[1], m), *bi = const_f32(g, bn->inputs[2], m);
    const float *mu = const_f32(g, bn->inputs[3], m), *var = const_f32(g, bn->inputs[4], m);
    if (!wd || (c->n_inputs > 2 && c->inputs[2] >= 0 && !bd) || !sc || !bi || !mu || !var)
        return 0;
    double eps = sh_node_float(bn, "epsilon", 1e-5f);
    size_t wbytes = (size_t)(m * per) * sizeof(float), bbytes = (size_t)m * sizeof(float);
    float *nw = sh_alloc(g->alloc, wbytes ? wbytes : 1), *nb = sh_alloc(g->alloc, bbytes ? bbytes : 1);
    if (!nw || !nb) {
        sh_free(g->alloc, nw);
        sh_free(g->alloc, nb);
        return sh_node_errf(err, SHOAL_ERR_NO_MEMORY, g, bn, "out of memory folding into '%s'", c->name);
    }
    for (int64_t o = 0; o < m; o++) {
        double s = (double)sc[o] / sqrt((double)var[o] + eps);
        for (int64_t i = 0; i < per; i++)
            nw[o * per + i] = (float)((double)wd[o * per + i] * s);
        nb[o] = (float)(((bd ? (double)bd[o] : 0.0) - (double)mu[o]) * s + (double)bi[o]);
    }
    sh_shape ws = w->shape, bs = {1, {m}};
    char base[200];
    snprintf(base, sizeof base, "%s", c->name);
    int tw = new_const(g, base, ".weight_bn", &ws, nw, wbytes, err);
    if (tw < 0) {
        sh_free(g->alloc, nb);
        return tw;
    }
    int tb = new_const(g, base, ".bias_bn", &bs, nb, bbytes, err);
    if (tb < 0)
        return tb;
    c = &g->nodes[ck];
    bn = &g->nodes[b];
    if (c->n_inputs < 3) {
        int *in = sh_realloc(g->alloc, c->inputs, 3 * sizeof(int));
        if (!in)
            return sh_node_errf(err, SHOAL_ERR_NO_MEMORY, g, c, "out of memory");
        c->inputs = in;
        c->n_inputs = 3;
    }
    c->inputs[1] = tw;
    c->inputs[2] = tb;
    c->outputs[0] = bn->outputs[0];
    bn->dead = true;
    return 1;
}

/* --- SiLU and activations ---------------------------------------------------------------- */

static int fuse_silu(sh_graph *g, int k)
{
    sh_node *m = &g->nodes[k];
    if (m->n_inputs != 2 || m->inputs[0] < 0 || m->inputs[1] < 0)
        return 0;
    for (int side = 0; side < 2; side++) {
        int st = m->inputs[side], x = m->inputs[1 - side];
        int sp = g->tensors[st].producer;
        if (sp < 0 || g->nodes[sp].dead || g->nodes[sp].op != SH_OP_SIGMOID || g->nodes[sp].inputs[0] != x ||
            !sh_shape_equal(&g->tensors[st].shape, &g->tensors[x].shape) || g->tensors[x].dtype != SH_DT_FLOAT32)
            continue;
        bool sig_private = g->tensors[st].n_consumers == 1 && !g->tensors[st].is_output;
        sh_node *p = sig_private ? fusable_producer(g, x, 2) : NULL;
        if (p) {
            p->act = SH_ACT_SILU;
            p->outputs[0] = m->outputs[0];
            g->nodes[sp].dead = true;
            m->dead = true;
            return 1;
        }
        m->op = SH_OP_SILU;
        m->inputs[0] = x;
        m->inputs[1] = -1;
        m->n_inputs = 1;
        if (sig_private)
            g->nodes[sp].dead = true;
        return 1;
    }
    return 0;
}

static bool clip_bounds(const sh_graph *g, const sh_node *n, float *lo, float *hi)
{
    *lo = -INFINITY;
    *hi = INFINITY;
    if (n->opset < 11) {
        *lo = sh_node_float(n, "min", -INFINITY);
        *hi = sh_node_float(n, "max", INFINITY);
        return true;
    }
    for (int i = 1; i < 3; i++) {
        if (i >= n->n_inputs || n->inputs[i] < 0)
            continue;
        float v;
        const sh_tensor *t = &g->tensors[n->inputs[i]];
        if (t->dtype != SH_DT_FLOAT32 || sh_const_floats(g, n->inputs[i], &v, 1) != 1)
            return false;
        *(i == 1 ? lo : hi) = v;
    }
    return true;
}

static int fuse_act(sh_graph *g, int k)
{
    sh_node *a = &g->nodes[k];
    if (a->n_inputs < 1 || a->inputs[0] < 0 || a->n_outputs != 1)
        return 0;
    sh_act act;
    float aa = 0, ab = 0;
    switch (a->op) {
    case SH_OP_RELU: act = SH_ACT_RELU; break;
    case SH_OP_SIGMOID: act = SH_ACT_SIGMOID; break;
    case SH_OP_HARD_SWISH: act = SH_ACT_HARD_SWISH; break;
    case SH_OP_SILU: act = SH_ACT_SILU; break;
    case SH_OP_HARD_SIGMOID:
        act = SH_ACT_HARD_SIGMOID;
        aa = sh_node_float(a, "alpha", 0.2f);
        ab = sh_node_float(a, "beta", 0.5f);
        break;
    case SH_OP_CLIP:
        act = SH_ACT_CLIP;
        if (!clip_bounds(g, a, &aa, &ab))
            return 0;
        break;
    default:
        return 0;
    }
    sh_node *p = fusable_producer(g, a->inputs[0], 1);
    if (!p)
        return 0;
    p->act = act;
    p->act_a = aa;
    p->act_b = ab;
    p->outputs[0] = a->outputs[0];
    a->dead = true;
    return 1;
}

int sh_graph_fuse(sh_graph *g, sh_err *err)
{
    sh_graph_refresh_uses(g);
    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && is_noop(g, k) && remove_noop(g, k))
            sh_graph_refresh_uses(g);
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead || g->nodes[k].op != SH_OP_PAD)
            continue;
        int rc = fuse_pad_conv(g, k, err);
        if (rc < 0)
            return rc;
        if (rc)
            sh_graph_refresh_uses(g);
    }
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead || g->nodes[k].op != SH_OP_BATCH_NORM)
            continue;
        int rc = fold_bn(g, k, err);
        if (rc < 0)
            return rc;
        if (rc)
            sh_graph_refresh_uses(g);
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && g->nodes[k].op == SH_OP_MUL && fuse_silu(g, k))
            sh_graph_refresh_uses(g);
    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && fuse_act(g, k))
            sh_graph_refresh_uses(g);
    return 0;
}
