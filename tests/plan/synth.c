#include "synth.h"

#include <stdio.h>
#include <stdlib.h>

static char *nm(sh_graph *g, const char *what, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s_%d", what, g->n_nodes);
    return buf;
}

int syn_t(sh_graph *g, const char *name, int64_t c, int64_t h, int64_t w)
{
    sh_shape s = {4, {1, c, h, w}};
    return sh_graph_add_tensor(g, name, SH_DT_FLOAT32, &s);
}

static int64_t dim(const sh_graph *g, int t, int i) { return g->tensors[t].shape.d[i]; }

int syn_unary(sh_graph *g, sh_op op, int x, int64_t c, int64_t h, int64_t w)
{
    char b[64];
    int y = syn_t(g, nm(g, sh_op_name(op), b, sizeof b), c, h, w);
    sh_graph_add_node(g, b, op, &x, 1, &y, 1);
    return y;
}

int syn_binary(sh_graph *g, sh_op op, int x, int y)
{
    char b[64];
    int z = syn_t(g, nm(g, sh_op_name(op), b, sizeof b), dim(g, x, 1), dim(g, x, 2), dim(g, x, 3));
    int in[2] = {x, y};
    sh_graph_add_node(g, b, op, in, 2, &z, 1);
    return z;
}

int syn_conv(sh_graph *g, int x, int64_t cout, int k, int stride)
{
    char b[64];
    int y = syn_t(g, nm(g, "conv", b, sizeof b), cout, dim(g, x, 2) / stride, dim(g, x, 3) / stride);
    int node = sh_graph_add_node(g, b, SH_OP_CONV, &x, 1, &y, 1);
    int64_t ks[2] = {k, k}, st[2] = {stride, stride};
    sh_node_set_ints(g, node, "kernel_shape", ks, 2);
    sh_node_set_ints(g, node, "strides", st, 2);
    g->nodes[node].act = SH_ACT_SILU;
    return y;
}

int syn_concat(sh_graph *g, const int *xs, int n)
{
    char b[64];
    int64_t c = 0;
    for (int i = 0; i < n; i++)
        c += dim(g, xs[i], 1);
    int y = syn_t(g, nm(g, "concat", b, sizeof b), c, dim(g, xs[0], 2), dim(g, xs[0], 3));
    int node = sh_graph_add_node(g, b, SH_OP_CONCAT, xs, n, &y, 1);
    sh_node_set_int(g, node, "axis", 1);
    return y;
}

static void split2(sh_graph *g, int x, int *a, int *bb)
{
    char b[64];
    int64_t c = dim(g, x, 1) / 2;
    nm(g, "split", b, sizeof b);
    int outs[2];
    char n0[80], n1[80];
    snprintf(n0, sizeof n0, "%s_a", b);
    snprintf(n1, sizeof n1, "%s_b", b);
    outs[0] = syn_t(g, n0, c, dim(g, x, 2), dim(g, x, 3));
    outs[1] = syn_t(g, n1, c, dim(g, x, 2), dim(g, x, 3));
    int node = sh_graph_add_node(g, b, SH_OP_SPLIT, &x, 1, outs, 2);
    sh_node_set_int(g, node, "axis", 1);
    *a = outs[0];
    *bb = outs[1];
}

static int c2f(sh_graph *g, int x, int64_t c, int n, int shortcut)
{
    int y = syn_conv(g, x, c, 1, 1);
    int outs[8], no = 0, a, b;
    split2(g, y, &a, &b);
    outs[no++] = a;
    outs[no++] = b;
    int cur = b;
    for (int i = 0; i < n; i++) {
        int t = syn_conv(g, cur, c / 2, 3, 1);
        t = syn_conv(g, t, c / 2, 3, 1);
        cur = shortcut ? syn_binary(g, SH_OP_ADD, cur, t) : t;
        outs[no++] = cur;
    }
    return syn_conv(g, syn_concat(g, outs, no), c, 1, 1);
}

static int sppf(sh_graph *g, int x, int64_t c)
{
    int y = syn_conv(g, x, c / 2, 1, 1);
    int p[4] = {y};
    for (int i = 1; i < 4; i++)
        p[i] = syn_unary(g, SH_OP_MAX_POOL, p[i - 1], c / 2, dim(g, y, 2), dim(g, y, 3));
    return syn_conv(g, syn_concat(g, p, 4), c, 1, 1);
}

static int upsample(sh_graph *g, int x)
{
    return syn_unary(g, SH_OP_RESIZE, x, dim(g, x, 1), dim(g, x, 2) * 2, dim(g, x, 3) * 2);
}

static int head(sh_graph *g, int p, int64_t wm)
{
    int64_t cb = wm * 4, cc = 80;
    int box = syn_conv(g, syn_conv(g, p, cb, 3, 1), cb, 3, 1);
    box = syn_conv(g, box, 64, 1, 1);
    int cls = syn_conv(g, syn_conv(g, p, cc, 3, 1), cc, 3, 1);
    cls = syn_conv(g, cls, 80, 1, 1);
    int both[2] = {box, cls};
    int cat = syn_concat(g, both, 2);
    char b[64];
    sh_shape s = {3, {1, 144, dim(g, cat, 2) * dim(g, cat, 3)}};
    int r = sh_graph_add_tensor(g, nm(g, "reshape", b, sizeof b), SH_DT_FLOAT32, &s);
    sh_graph_add_node(g, b, SH_OP_RESHAPE, &cat, 1, &r, 1);
    return r;
}

sh_graph *syn_yolo(sh_allocator *a, int size, int wm)
{
    sh_graph *g = sh_graph_create(a, "yolo_synth");
    if (!g)
        return NULL;
    int x = syn_t(g, "images", 3, size, size);
    sh_graph_set_inputs(g, &x, 1);
    int t = syn_conv(g, x, wm, 3, 2);
    t = syn_conv(g, t, wm * 2, 3, 2);
    t = c2f(g, t, wm * 2, 1, 1);
    t = syn_conv(g, t, wm * 4, 3, 2);
    int b3 = c2f(g, t, wm * 4, 2, 1);
    t = syn_conv(g, b3, wm * 8, 3, 2);
    int b4 = c2f(g, t, wm * 8, 2, 1);
    t = syn_conv(g, b4, wm * 16, 3, 2);
    t = c2f(g, t, wm * 16, 1, 1);
    int b5 = sppf(g, t, wm * 16);

    int cat[2] = {upsample(g, b5), b4};
    int n4 = c2f(g, syn_concat(g, cat, 2), wm * 8, 1, 0);
    cat[0] = upsample(g, n4);
    cat[1] = b3;
    int p3 = c2f(g, syn_concat(g, cat, 2), wm * 4, 1, 0);
    cat[0] = syn_conv(g, p3, wm * 4, 3, 2);
    cat[1] = n4;
    int p4 = c2f(g, syn_concat(g, cat, 2), wm * 8, 1, 0);
    cat[0] = syn_conv(g, p4, wm * 8, 3, 2);
    cat[1] = b5;
    int p5 = c2f(g, syn_concat(g, cat, 2), wm * 16, 1, 0);

    int r[3] = {head(g, p3, wm), head(g, p4, wm), head(g, p5, wm)};
    int64_t hw = 0;
    for (int i = 0; i < 3; i++)
        hw += dim(g, r[i], 2);
    sh_shape s = {3, {1, 144, hw}};
    int out = sh_graph_add_tensor(g, "output0", SH_DT_FLOAT32, &s);
    int node = sh_graph_add_node(g, "concat_out", SH_OP_CONCAT, r, 3, &out, 1);
    sh_node_set_int(g, node, "axis", 2);   /* not contiguous: never in place */
    sh_graph_set_outputs(g, &out, 1);
    if (sh_graph_finalize(g, NULL)) {
        sh_graph_destroy(g);
        return NULL;
    }
    return g;
}

sh_graph *syn_random(sh_allocator *a, unsigned seed, int n)
{
    srand(seed);
    sh_graph *g = sh_graph_create(a, "random");
    if (!g)
        return NULL;
    int ins[2];
    ins[0] = syn_t(g, "in0", 1 + rand() % 16, 16, 16);
    ins[1] = syn_t(g, "in1", 1 + rand() % 16, 16, 16);
    sh_graph_set_inputs(g, ins, 2);
    for (int k = 0; k < n; k++) {
        int nt = g->n_tensors;
        /* Mostly recent tensors, sometimes an old one: long skips like real nets. */
        int x = rand() % 4 ? nt - 1 - rand() % (nt < 5 ? nt : 5) : rand() % nt;
        int64_t c = dim(g, x, 1), h = dim(g, x, 2), w = dim(g, x, 3);
        switch (rand() % 6) {
        case 0: syn_unary(g, SH_OP_RELU, x, c, h, w); break;
        case 1: syn_conv(g, x, 1 + rand() % 48, rand() % 2 ? 3 : 1, 1); break;
        case 2: {
            int y = rand() % nt;
            if (dim(g, y, 1) == c && dim(g, y, 2) == h && y != x)
                syn_binary(g, SH_OP_ADD, x, y);
            else
                syn_unary(g, SH_OP_SIGMOID, x, c, h, w);
            break;
        }
        case 3: {
            int y = rand() % nt;
            int xs[2] = {x, y};
            if (dim(g, y, 2) == h && y != x)
                syn_concat(g, xs, 2);
            else
                syn_unary(g, SH_OP_RELU, x, c, h, w);
            break;
        }
        case 4: syn_unary(g, SH_OP_RESHAPE, x, c, h, w); break;
        default: syn_unary(g, SH_OP_MAX_POOL, x, c, h, w); break;
        }
    }
    /* Tensors nobody reads become outputs, plus the last one. */
    int *outs = malloc(sizeof(int) * (size_t)g->n_tensors), no = 0;
    char *used = calloc((size_t)g->n_tensors, 1);
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++)
            used[g->nodes[k].inputs[i]] = 1;
    for (int t = 2; t < g->n_tensors; t++)
        if (!used[t] || t == g->n_tensors - 1)
            outs[no++] = t;
    sh_graph_set_outputs(g, outs, no);
    free(outs);
    free(used);
    if (sh_graph_finalize(g, NULL)) {
        sh_graph_destroy(g);
        return NULL;
    }
    return g;
}

static bool contiguous_before(const sh_graph *g, int t, int axis)
{
    for (int i = 0; i < axis; i++)
        if (g->tensors[t].shape.d[i] != 1)
            return false;
    return true;
}

sh_program *syn_compile(sh_allocator *a, const sh_graph *g, int flags)
{
    sh_program *p = sh_program_alloc(a, g);
    if (!p)
        return NULL;
    for (int t = 0; t < g->n_tensors; t++) {
        const sh_tensor *x = &g->tensors[t];
        if (x->is_const)
            p->weight_bytes[t] = x->nbytes;
        else if (x->shape.ndim >= 0)
            p->tensor_bytes[t] = (size_t)sh_shape_numel(&x->shape) * 4;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        int y = n->n_outputs ? n->outputs[0] : -1, x = n->n_inputs ? n->inputs[0] : -1;
        switch (n->op) {
        case SH_OP_RESHAPE: case SH_OP_FLATTEN: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE: case SH_OP_IDENTITY:
            if ((flags & SYN_VIEWS) && x >= 0 && !g->tensors[x].is_const)
                p->alias_of[y] = x;
            break;
        case SH_OP_SPLIT: {
            int axis = (int)sh_node_int(n, "axis", 0);
            if ((flags & SYN_VIEWS) && contiguous_before(g, x, axis)) {
                size_t off = 0;
                for (int o = 0; o < n->n_outputs; o++) {
                    p->alias_of[n->outputs[o]] = x;
                    p->alias_offset[n->outputs[o]] = off;
                    off += p->tensor_bytes[n->outputs[o]];
                }
            }
            break;
        }
        case SH_OP_CONCAT: {
            int axis = (int)sh_node_int(n, "axis", 0);
            if (!(flags & SYN_CONCAT_INPLACE) || !contiguous_before(g, y, axis))
                break;
            size_t off = 0;
            for (int i = 0; i < n->n_inputs; i++) {
                int t = n->inputs[i];
                bool dup = false;
                for (int j = 0; j < i; j++)
                    dup |= n->inputs[j] == t;
                if (!dup && !g->tensors[t].is_const && !g->tensors[t].is_input && g->tensors[t].producer >= 0 &&
                    p->alias_of[t] < 0 && g->tensors[t].producer < k) {
                    /* Only a tensor nobody else aliases: its producer must write here. */
                    bool rooted = false;
                    for (int u = 0; u < g->n_tensors; u++)
                        rooted |= p->alias_of[u] == t;
                    if (!rooted) {
                        p->alias_of[t] = y;
                        p->alias_offset[t] = off;
                    }
                }
                off += p->tensor_bytes[t];
            }
            break;
        }
        case SH_OP_RELU: case SH_OP_SIGMOID: case SH_OP_SILU: case SH_OP_CLIP: case SH_OP_EXP:
        case SH_OP_HARD_SWISH: case SH_OP_HARD_SIGMOID: case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL:
        case SH_OP_DIV:
            if ((flags & SYN_INPLACE) && x >= 0 && p->tensor_bytes[x] == p->tensor_bytes[y])
                p->inplace_input[k] = 0;
            break;
        case SH_OP_CONV: {
            int cnt = 0;
            const int64_t *ks = sh_node_ints(n, "kernel_shape", &cnt);
            if ((flags & SYN_WORKSPACE) && cnt == 2 && ks[0] > 1)
                p->workspace_bytes[k] = (size_t)(g->tensors[x].shape.d[1] * ks[0] * ks[1] *
                                                 g->tensors[y].shape.d[2] * g->tensors[y].shape.d[3] * 4);
            break;
        }
        default:
            break;
        }
    }
    return p;
}
