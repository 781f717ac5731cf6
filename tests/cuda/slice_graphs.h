/* Small graphs with channel Split/Concat around convolutions (YOLOv8's C2f block, its neck's
 * concat, a split read by convs only), shared by test_cuda_ops (against the CPU backend) and
 * test_cuda_views (the compiler's view decisions, host only). Header-only; needs harness.h's
 * hx_rand. Every graph has one fp32 input "x" and one output "y". */
#ifndef SHOAL_TESTS_CUDA_SLICE_GRAPHS_H
#define SHOAL_TESTS_CUDA_SLICE_GRAPHS_H

#include <stdio.h>
#include <stdlib.h>

#include "graph/graph.h"

static int sg_tensor(sh_graph *g, const char *name, int64_t c, int64_t hw)
{
    sh_shape s = {.ndim = 4, .d = {1, c, hw, hw}};
    return sh_graph_add_tensor(g, name, SH_DT_FLOAT32, &s);
}

static int sg_const(sh_graph *g, const char *name, const sh_shape *s, float lo, float hi)
{
    int t = sh_graph_add_tensor(g, name, SH_DT_FLOAT32, s);
    hx_fill_random(g, t, lo, hi);
    return t;
}

static int sg_node(sh_graph *g, sh_op op, const int *in, int nin, const int *out, int nout)
{
    char name[32];
    snprintf(name, sizeof name, "n%d", g->n_nodes);
    int k = sh_graph_add_node(g, name, op, in, nin, out, nout);
    g->nodes[k].opset = 13;
    return k;
}

/* conv k x k, stride 1, same padding, bias, SiLU: [1, cin, hw, hw] -> [1, cout, hw, hw] */
static int sg_conv(sh_graph *g, int x, int64_t cout, int k, const char *name)
{
    const sh_shape *xs = &g->tensors[x].shape;
    int64_t cin = xs->d[1], hw = xs->d[2];
    sh_shape ws = {.ndim = 4, .d = {cout, cin, k, k}}, bs = {.ndim = 1, .d = {cout}};
    float a = 1.5f / (float)(cin * k * k);
    int w = sg_const(g, "w", &ws, -a * 4, a * 4), b = sg_const(g, "b", &bs, -0.3f, 0.3f);
    int y = sg_tensor(g, name, cout, hw);
    int n = sg_node(g, SH_OP_CONV, (const int[]){x, w, b}, 3, (const int[]){y}, 1);
    int64_t p = k / 2;
    sh_node_set_ints(g, n, "pads", (const int64_t[]){p, p, p, p}, 4);
    sh_node_set_ints(g, n, "kernel_shape", (const int64_t[]){k, k}, 2);
    g->nodes[n].act = SH_ACT_SILU;
    return y;
}

static int sg_add(sh_graph *g, int a, int b)
{
    const sh_shape *s = &g->tensors[a].shape;
    int y = sg_tensor(g, "sum", s->d[1], s->d[2]);
    sg_node(g, SH_OP_ADD, (const int[]){a, b}, 2, (const int[]){y}, 1);
    return y;
}

static int sg_concat(sh_graph *g, const int *in, int n)
{
    int64_t c = 0;
    for (int i = 0; i < n; i++)
        c += g->tensors[in[i]].shape.d[1];
    int y = sg_tensor(g, "cat", c, g->tensors[in[0]].shape.d[2]);
    int k = sg_node(g, SH_OP_CONCAT, in, n, (const int[]){y}, 1);
    sh_node_set_int(g, k, "axis", 1);
    return y;
}

static void sg_split(sh_graph *g, int x, const int64_t *sizes, int n, int *out)
{
    sh_shape ss = {.ndim = 1, .d = {n}};
    int sp = sh_graph_add_tensor(g, "sizes", SH_DT_INT64, &ss);
    sh_graph_set_const(g, sp, sizes, (size_t)n * 8, NULL);
    for (int i = 0; i < n; i++)
        out[i] = sg_tensor(g, "part", sizes[i], g->tensors[x].shape.d[2]);
    int k = sg_node(g, SH_OP_SPLIT, (const int[]){x, sp}, 2, out, n);
    sh_node_set_int(g, k, "axis", 1);
}

/* YOLOv8 C2f: cv1 -> Split(c, c) -> nb bottlenecks on the second half (3x3, 3x3, + input
 * when shortcut) -> Concat(both halves, every bottleneck output) -> cv2. */
static void sg_c2f(sh_graph *g, int64_t cin, int64_t c, int nb, bool shortcut, int64_t hw)
{
    int x = sg_tensor(g, "x", cin, hw);
    int cv1 = sg_conv(g, x, 2 * c, 1, "cv1");
    int parts[2], cat_in[2 + 8];
    sg_split(g, cv1, (const int64_t[]){c, c}, 2, parts);
    cat_in[0] = parts[0];
    cat_in[1] = parts[1];
    int cur = parts[1];
    for (int i = 0; i < nb && i < 8; i++) {
        int h = sg_conv(g, cur, c, 3, "m.cv1");
        int z = sg_conv(g, h, c, 3, "m.cv2");
        cur = shortcut ? sg_add(g, cur, z) : z;
        cat_in[2 + i] = cur;
    }
    int cat = sg_concat(g, cat_in, 2 + nb);
    int y = sg_conv(g, cat, cin, 1, "y");
    sh_graph_set_inputs(g, (const int[]){x}, 1);
    sh_graph_set_outputs(g, (const int[]){y}, 1);
}

/* YOLOv8's neck: Concat(Resize(conv(a)), conv(x)) -> conv, the conv output also read by a
 * stride-1 conv beside the concat (the backbone feature feeding the next stage). */
static void sg_neck(sh_graph *g, int64_t cin, int64_t c_up, int64_t c_skip, int64_t hw)
{
    int x = sg_tensor(g, "x", cin, hw);
    int low = sg_conv(g, x, c_up, 3, "low");
    int half = sg_tensor(g, "half", c_up, hw / 2);
    int mp = sg_node(g, SH_OP_MAX_POOL, (const int[]){low}, 1, (const int[]){half}, 1);
    sh_node_set_ints(g, mp, "kernel_shape", (const int64_t[]){2, 2}, 2);
    sh_node_set_ints(g, mp, "strides", (const int64_t[]){2, 2}, 2);
    int up = sg_tensor(g, "up", c_up, hw);
    sh_shape s4 = {.ndim = 1, .d = {4}};
    int sc = sh_graph_add_tensor(g, "scales", SH_DT_FLOAT32, &s4);
    sh_graph_set_const(g, sc, (const float[]){1, 1, 2, 2}, 16, NULL);
    int rz = sg_node(g, SH_OP_RESIZE, (const int[]){half, -1, sc}, 3, (const int[]){up}, 1);
    sh_node_set_string(g, rz, "mode", "nearest");
    int skip = sg_conv(g, x, c_skip, 3, "skip");
    int side = sg_conv(g, skip, c_skip, 3, "side");
    int cat = sg_concat(g, (const int[]){up, skip}, 2);
    int h = sg_conv(g, cat, c_skip, 1, "h");
    /* a conv before the (fp32, NCHW) graph output keeps the adds channels-last */
    int y = sg_conv(g, sg_add(g, h, side), c_skip, 1, "y");
    sh_graph_set_inputs(g, (const int[]){x}, 1);
    sh_graph_set_outputs(g, (const int[]){y}, 1);
}

/* A split read by convs only (no concat): conv -> Split(a, b) -> conv on each part, the
 * second part also the residual of a conv of the first. */
static void sg_split_convs(sh_graph *g, int64_t cin, int64_t a, int64_t b, int64_t hw)
{
    int x = sg_tensor(g, "x", cin, hw);
    int wide = sg_conv(g, x, a + b, 1, "wide");
    int parts[2];
    sg_split(g, wide, (const int64_t[]){a, b}, 2, parts);
    int pa = sg_conv(g, parts[0], b, 3, "pa");
    int pb = sg_conv(g, pa, b, 3, "pb");
    int s = sg_add(g, parts[1], pb);
    int q = sg_conv(g, parts[1], b, 1, "q");
    int y = sg_conv(g, sg_add(g, s, q), b, 1, "y");
    sh_graph_set_inputs(g, (const int[]){x}, 1);
    sh_graph_set_outputs(g, (const int[]){y}, 1);
}

#endif
