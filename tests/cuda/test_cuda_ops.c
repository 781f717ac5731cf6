/* Every op the CUDA backend runs, against the CPU backend: random non-zero inputs and weights,
 * outputs poisoned before the run, relative L2 <= 1e-2 (fp16 storage, fp32 accumulation).
 * Prints one line per case; exits 77 without a CUDA device. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "slice_graphs.h"

static sh_graph *G;

static int T(const char *name, int nd, const int64_t *d)
{
    sh_shape s = {.ndim = nd};
    for (int i = 0; i < nd; i++)
        s.d[i] = d[i];
    return sh_graph_add_tensor(G, name, SH_DT_FLOAT32, &s);
}
#define SH(...) ((const int64_t[]){__VA_ARGS__}), (int)(sizeof((const int64_t[]){__VA_ARGS__}) / 8)
static int TS(const char *name, const int64_t *d, int nd) { return T(name, nd, d); }

static int CF(const char *name, const int64_t *d, int nd, float lo, float hi)
{
    int t = T(name, nd, d);
    hx_fill_random(G, t, lo, hi);
    return t;
}

static int CI(const char *name, const int64_t *v, int n)
{
    sh_shape s = {.ndim = 1, .d = {n}};
    int t = sh_graph_add_tensor(G, name, SH_DT_INT64, &s);
    sh_graph_set_const(G, t, v, (size_t)n * 8, NULL);
    return t;
}

static int CS(const char *name, float v)
{
    sh_shape s = {.ndim = 0};
    int t = sh_graph_add_tensor(G, name, SH_DT_FLOAT32, &s);
    sh_graph_set_const(G, t, &v, 4, NULL);
    return t;
}

static int N(sh_op op, const int *in, int nin, const int *out, int nout)
{
    static int counter;
    char name[32];
    snprintf(name, sizeof name, "n%d", counter++);
    int k = sh_graph_add_node(G, name, op, in, nin, out, nout);
    G->nodes[k].opset = 13;
    return k;
}
#define IN(...) ((const int[]){__VA_ARGS__}), (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

/* --- cases -------------------------------------------------------------------------- */
static void conv_case(int cin, int cout, int hw, int k, int s, int pad, int group, bool bias, sh_act act,
                      bool transpose)
{
    int x = TS("x", SH(1, cin, hw, hw));
    int w = transpose ? CF("w", SH(cin, cout / group, k, k), -0.5f, 0.5f)
                      : CF("w", SH(cout, cin / group, k, k), -0.5f, 0.5f);
    int b = bias ? CF("b", SH(cout), -0.5f, 0.5f) : -1;
    int64_t o = transpose ? (hw - 1) * s - 2 * pad + k : (hw + 2 * pad - k) / s + 1;
    int y = TS("y", SH(1, cout, o, o));
    int k_ = N(transpose ? SH_OP_CONV_TRANSPOSE : SH_OP_CONV, IN(x, w, b), IN(y));
    sh_node_set_ints(G, k_, "strides", (int64_t[]){s, s}, 2);
    sh_node_set_ints(G, k_, "pads", (int64_t[]){pad, pad, pad, pad}, 4);
    sh_node_set_ints(G, k_, "kernel_shape", (int64_t[]){k, k}, 2);
    sh_node_set_int(G, k_, "group", group);
    G->nodes[k_].act = act;
    if (act == SH_ACT_CLIP) {
        G->nodes[k_].act_a = 0.f;
        G->nodes[k_].act_b = 6.f;
    }
    if (act == SH_ACT_HARD_SIGMOID) {
        G->nodes[k_].act_a = 0.2f;
        G->nodes[k_].act_b = 0.5f;
    }
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_conv3(void) { conv_case(8, 16, 20, 3, 1, 1, 1, true, SH_ACT_NONE, false); }
static void c_conv_relu(void) { conv_case(8, 16, 20, 3, 1, 1, 1, true, SH_ACT_RELU, false); }
static void c_conv_silu(void) { conv_case(16, 32, 19, 3, 2, 1, 1, true, SH_ACT_SILU, false); }
static void c_conv_hswish(void) { conv_case(8, 8, 16, 1, 1, 0, 1, true, SH_ACT_HARD_SWISH, false); }
static void c_conv_hsig(void) { conv_case(8, 8, 16, 1, 1, 0, 1, true, SH_ACT_HARD_SIGMOID, false); }
static void c_conv_clip(void) { conv_case(8, 8, 16, 3, 1, 1, 1, false, SH_ACT_CLIP, false); }
static void c_conv_sig(void) { conv_case(8, 8, 16, 3, 1, 1, 1, true, SH_ACT_SIGMOID, false); }
static void c_conv_group(void) { conv_case(16, 32, 12, 3, 1, 1, 4, true, SH_ACT_RELU, false); }
static void c_conv_dw(void) { conv_case(24, 24, 21, 3, 2, 1, 24, true, SH_ACT_RELU, false); }
static void c_conv_dw5(void) { conv_case(16, 16, 20, 5, 1, 2, 16, false, SH_ACT_NONE, false); }
static void c_convt(void) { conv_case(16, 8, 10, 2, 2, 0, 1, true, SH_ACT_NONE, true); }
static void c_convt3(void) { conv_case(8, 8, 9, 3, 2, 1, 1, true, SH_ACT_RELU, true); }

/* Shapes that reach each path of the own implicit-GEMM conv (igemm.cu, tile by
 * sh_k_igemm_plan on an H100): split K, each tile shape, a partial column tile, an odd
 * channel count (plain loads), dilation. */
static void c_conv_splitk(void) { conv_case(256, 128, 10, 3, 1, 1, 1, true, SH_ACT_SILU, false); }
static void c_conv_bigm(void) { conv_case(8, 64, 160, 3, 1, 1, 1, true, SH_ACT_RELU, false); }
static void c_conv_midm(void) { conv_case(16, 64, 128, 1, 1, 0, 1, true, SH_ACT_RELU, false); }
static void c_conv_n32(void) { conv_case(8, 32, 132, 3, 1, 1, 1, true, SH_ACT_RELU, false); }
static void c_conv_partial_n(void) { conv_case(16, 48, 64, 1, 1, 0, 1, true, SH_ACT_NONE, false); }
/* sm_90a: the wgmma kernel's 128x128 tile, with a second, partial K step (72 channels) */
static void c_conv_wide_n(void) { conv_case(72, 128, 160, 1, 1, 0, 1, true, SH_ACT_SILU, false); }

/* A transposed conv with kernel == stride between channels-last convs: the own kernel's
 * upsampling GEMM (cuda_conv.c) with no layout conversion around it. The second is YOLO's
 * mask-prototype shape scaled down (wgmma tiles, 4 x 256 GEMM columns). */
static void convt_between_case(int cin, int mid, int cout, int hw, int k, int st, int pad)
{
    int o = (hw - 1) * st - 2 * pad + k;
    int x = TS("x", SH(1, cin, hw, hw)), m1 = TS("m1", SH(1, mid, hw, hw));
    int m2 = TS("m2", SH(1, cout, o, o)), y = TS("y", SH(1, 8, o, o));
    int w1 = CF("w1", SH(mid, cin, 3, 3), -0.3f, 0.3f), b1 = CF("b1", SH(mid), -0.5f, 0.5f);
    int wt = CF("wt", SH(mid, cout, k, k), -0.3f, 0.3f), bt = CF("bt", SH(cout), -0.5f, 0.5f);
    int w2 = CF("w2", SH(8, cout, 1, 1), -0.3f, 0.3f);
    int c1 = N(SH_OP_CONV, IN(x, w1, b1), IN(m1));
    sh_node_set_ints(G, c1, "pads", (int64_t[]){1, 1, 1, 1}, 4);
    G->nodes[c1].act = SH_ACT_SILU;
    int t = N(SH_OP_CONV_TRANSPOSE, IN(m1, wt, bt), IN(m2));
    sh_node_set_ints(G, t, "strides", (int64_t[]){st, st}, 2);
    sh_node_set_ints(G, t, "kernel_shape", (int64_t[]){k, k}, 2);
    sh_node_set_ints(G, t, "pads", (int64_t[]){pad, pad, pad, pad}, 4);
    N(SH_OP_CONV, IN(m2, w2), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
static void c_convt_gemm(void) { convt_between_case(16, 24, 40, 13, 2, 2, 0); }
static void c_convt_gemm_wide(void) { convt_between_case(32, 256, 256, 20, 2, 2, 0); }
static void c_convt_gemm_k3(void) { convt_between_case(8, 16, 8, 7, 3, 3, 0); }
/* not kernel == stride: cuDNN, converting its channels-last neighbours' layout */
static void c_convt_cudnn_cl(void) { convt_between_case(8, 16, 8, 9, 3, 2, 1); }

static void c_conv_odd_dil(void)
{
    int x = TS("x", SH(1, 6, 17, 15));
    int w = CF("w", SH(5, 6, 3, 3), -0.5f, 0.5f);
    int y = TS("y", SH(1, 5, 13, 11));
    int k = N(SH_OP_CONV, IN(x, w), IN(y));
    sh_node_set_ints(G, k, "dilations", (int64_t[]){2, 2}, 2);
    sh_node_set_ints(G, k, "kernel_shape", (int64_t[]){3, 3}, 2);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

/* A first layer reading the fp32 NCHW graph input (conv_planar.cu): its output must feed
 * another step (a graph output stays fp32 NCHW and takes the general path). */
static void rgb_case(int cin, int cout, int h, int w, int k, int stride, int pad, sh_act act)
{
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    int x = TS("x", SH(1, cin, h, w)), m = TS("m", SH(1, cout, oh, ow)), y = TS("y", SH(1, 8, oh, ow));
    int w1 = CF("w1", SH(cout, cin, k, k), -0.5f, 0.5f), b1 = CF("b1", SH(cout), -0.5f, 0.5f);
    int w2 = CF("w2", SH(8, cout, 1, 1), -0.3f, 0.3f);
    int c1 = N(SH_OP_CONV, IN(x, w1, b1), IN(m));
    sh_node_set_ints(G, c1, "pads", (int64_t[]){pad, pad, pad, pad}, 4);
    sh_node_set_ints(G, c1, "strides", (int64_t[]){stride, stride}, 2);
    sh_node_set_ints(G, c1, "kernel_shape", (int64_t[]){k, k}, 2);
    G->nodes[c1].act = act;
    N(SH_OP_CONV, IN(m, w2), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
static void c_conv_rgb_s2(void) { rgb_case(3, 32, 64, 48, 3, 2, 1, SH_ACT_SILU); }
static void c_conv_rgb_k64(void) { rgb_case(3, 64, 37, 29, 5, 1, 2, SH_ACT_RELU); }
static void c_conv_gray_k8(void) { rgb_case(1, 8, 21, 20, 3, 1, 0, SH_ACT_NONE); }

/* A YOLO bottleneck: a + silu(conv(silu(conv(a)))), the Add folded into the second conv. */
static void c_conv_residual(void)
{
    int x = TS("x", SH(1, 32, 20, 20)), a = TS("a", SH(1, 32, 20, 20));
    int h = TS("h", SH(1, 32, 20, 20)), z = TS("z", SH(1, 32, 20, 20));
    int s = TS("s", SH(1, 32, 20, 20)), y = TS("y", SH(1, 32, 20, 20));
    int w1 = CF("w1", SH(32, 32, 3, 3), -0.2f, 0.2f), b1 = CF("b1", SH(32), -0.5f, 0.5f);
    int w2 = CF("w2", SH(32, 32, 3, 3), -0.2f, 0.2f), b2 = CF("b2", SH(32), -0.5f, 0.5f);
    N(SH_OP_RELU, IN(x), IN(a));
    int c1 = N(SH_OP_CONV, IN(a, w1, b1), IN(h));
    int c2 = N(SH_OP_CONV, IN(h, w2, b2), IN(z));
    for (int i = 0; i < 2; i++) {
        int k = i ? c2 : c1;
        sh_node_set_ints(G, k, "pads", (int64_t[]){1, 1, 1, 1}, 4);
        sh_node_set_ints(G, k, "kernel_shape", (int64_t[]){3, 3}, 2);
        G->nodes[k].act = SH_ACT_SILU;
    }
    N(SH_OP_ADD, IN(a, z), IN(s));
    N(SH_OP_SIGMOID, IN(s), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

/* TF-style SAME padding exported as asymmetric pads (pan_seg's first conv) */
static void c_conv_asym(void)
{
    int x = TS("x", SH(1, 3, 16, 16));
    int w = CF("w", SH(8, 3, 3, 3), -0.5f, 0.5f), b = CF("b", SH(8), -0.5f, 0.5f);
    int y = TS("y", SH(1, 8, 8, 8));
    int k = N(SH_OP_CONV, IN(x, w, b), IN(y));
    sh_node_set_ints(G, k, "strides", (int64_t[]){2, 2}, 2);
    sh_node_set_ints(G, k, "pads", (int64_t[]){0, 0, 1, 1}, 4);
    sh_node_set_ints(G, k, "kernel_shape", (int64_t[]){3, 3}, 2);
    G->nodes[k].act = SH_ACT_HARD_SWISH;
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_bn(void)
{
    int x = TS("x", SH(2, 6, 7, 5));
    int y = TS("y", SH(2, 6, 7, 5));
    int s = CF("s", SH(6), 0.5f, 1.5f), b = CF("b", SH(6), -1, 1), m = CF("m", SH(6), -1, 1), v = CF("v", SH(6), 0.5f, 2);
    N(SH_OP_BATCH_NORM, IN(x, s, b, m, v), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void unary(sh_op op)
{
    int x = TS("x", SH(1, 5, 9, 11));
    int y = TS("y", SH(1, 5, 9, 11));
    int k;
    if (op == SH_OP_CLIP)
        k = N(op, IN(x, CS("lo", -0.3f), CS("hi", 0.4f)), IN(y));
    else
        k = N(op, IN(x), IN(y));
    (void)k;
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
static void c_relu(void) { unary(SH_OP_RELU); }
static void c_sigmoid(void) { unary(SH_OP_SIGMOID); }
static void c_hsig(void) { unary(SH_OP_HARD_SIGMOID); }
static void c_hswish(void) { unary(SH_OP_HARD_SWISH); }
static void c_clip(void) { unary(SH_OP_CLIP); }
static void c_exp(void) { unary(SH_OP_EXP); }
static void c_silu(void) { unary(SH_OP_SILU); }

/* x -> Relu -> a; a (op) b -> y, so the binary op reads an fp16 activation and may run in place */
static void binary(sh_op op, const int64_t *bs, int bnd, bool bconst)
{
    int x = TS("x", SH(1, 8, 6, 10));
    int a = TS("a", SH(1, 8, 6, 10));
    int b = bconst ? CF("b", bs, bnd, 0.5f, 1.5f) : TS("b", bs, bnd);
    int y = TS("y", SH(1, 8, 6, 10));
    N(SH_OP_RELU, IN(x), IN(a));
    N(op, IN(a, b), IN(y));
    if (bconst)
        sh_graph_set_inputs(G, IN(x));
    else
        sh_graph_set_inputs(G, IN(x, b));
    sh_graph_set_outputs(G, IN(y));
}
static void c_add(void) { binary(SH_OP_ADD, SH(1, 8, 6, 10), false); }
static void c_mul_chan(void) { binary(SH_OP_MUL, SH(1, 8, 1, 1), true); }
static void c_sub_row(void) { binary(SH_OP_SUB, SH(10), true); }
static void c_div_mid(void) { binary(SH_OP_DIV, SH(8, 6, 1), true); }

static void c_concat_views(void)
{
    int x = TS("x", SH(1, 4, 6, 6));
    int a = TS("a", SH(1, 4, 6, 6)), b = TS("b", SH(1, 4, 6, 6)), c = TS("c", SH(1, 12, 6, 6));
    int y = TS("y", SH(1, 12, 6, 6));
    N(SH_OP_RELU, IN(x), IN(a));
    N(SH_OP_SIGMOID, IN(x), IN(b));
    int k = N(SH_OP_CONCAT, IN(a, x, b), IN(c));
    sh_node_set_int(G, k, "axis", 1);
    N(SH_OP_SILU, IN(c), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_concat_inner(void)
{
    int x = TS("x", SH(2, 3, 5)), z = TS("z", SH(2, 3, 4));
    int y = TS("y", SH(2, 3, 9));
    int k = N(SH_OP_CONCAT, IN(x, z), IN(y));
    sh_node_set_int(G, k, "axis", -1);
    sh_graph_set_inputs(G, IN(x, z));
    sh_graph_set_outputs(G, IN(y));
}

static void c_split_views(void)
{
    int x = TS("x", SH(1, 10, 4, 4)), a = TS("a", SH(1, 10, 4, 4));
    int p = TS("p", SH(1, 3, 4, 4)), q = TS("q", SH(1, 7, 4, 4));
    int y1 = TS("y1", SH(1, 3, 4, 4)), y2 = TS("y2", SH(1, 7, 4, 4));
    N(SH_OP_RELU, IN(x), IN(a));
    int k = N(SH_OP_SPLIT, IN(a, CI("sp", (int64_t[]){3, 7}, 2)), IN(p, q));
    sh_node_set_int(G, k, "axis", 1);
    N(SH_OP_SIGMOID, IN(p), IN(y1));
    N(SH_OP_EXP, IN(q), IN(y2));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y1, y2));
}

static void c_split_inner(void)
{
    int x = TS("x", SH(2, 6, 5));
    int p = TS("p", SH(2, 2, 5)), q = TS("q", SH(2, 4, 5));
    int k = N(SH_OP_SPLIT, IN(x, CI("sp", (int64_t[]){2, 4}, 2)), IN(p, q));
    sh_node_set_int(G, k, "axis", 1);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(p, q));
}

static void c_slice_step(void)
{
    int x = TS("x", SH(1, 3, 8, 9));
    int y = TS("y", SH(1, 3, 4, 3));
    N(SH_OP_SLICE, IN(x, CI("st", (int64_t[]){0, 1}, 2), CI("en", (int64_t[]){8, 9}, 2),
                      CI("ax", (int64_t[]){2, 3}, 2), CI("sp", (int64_t[]){2, 3}, 2)), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_slice_neg(void)
{
    int x = TS("x", SH(2, 5, 6));
    int y = TS("y", SH(2, 5, 3));
    N(SH_OP_SLICE, IN(x, CI("st", (int64_t[]){-1}, 1), CI("en", (int64_t[]){-4}, 1),
                      CI("ax", (int64_t[]){2}, 1), CI("sp", (int64_t[]){-1}, 1)), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_slice_view(void)
{
    int x = TS("x", SH(1, 8, 5, 5)), a = TS("a", SH(1, 8, 5, 5)), s = TS("s", SH(1, 3, 5, 5));
    int y = TS("y", SH(1, 3, 5, 5));
    N(SH_OP_RELU, IN(x), IN(a));
    N(SH_OP_SLICE, IN(a, CI("st", (int64_t[]){2}, 1), CI("en", (int64_t[]){5}, 1), CI("ax", (int64_t[]){1}, 1)), IN(s));
    N(SH_OP_SIGMOID, IN(s), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_transpose(void)
{
    int x = TS("x", SH(1, 6, 7, 8));
    int y = TS("y", SH(1, 7, 8, 6));
    int k = N(SH_OP_TRANSPOSE, IN(x), IN(y));
    sh_node_set_ints(G, k, "perm", (int64_t[]){0, 2, 3, 1}, 4);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_reshape_view(void)
{
    int x = TS("x", SH(1, 6, 4, 4)), a = TS("a", SH(1, 6, 4, 4)), r = TS("r", SH(1, 6, 16));
    int y = TS("y", SH(1, 6, 16));
    N(SH_OP_RELU, IN(x), IN(a));
    N(SH_OP_RESHAPE, IN(a, CI("shp", (int64_t[]){1, 6, 16}, 3)), IN(r));
    N(SH_OP_SIGMOID, IN(r), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_expand(void)
{
    int x = TS("x", SH(1, 4, 1, 5));
    int y = TS("y", SH(2, 4, 3, 5));
    N(SH_OP_EXPAND, IN(x, CI("shp", (int64_t[]){2, 4, 3, 5}, 4)), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_gather(void)
{
    int x = TS("x", SH(2, 7, 5));
    int y = TS("y", SH(2, 3, 5));
    int k = N(SH_OP_GATHER, IN(x, CI("ix", (int64_t[]){4, 0, -1}, 3)), IN(y));
    sh_node_set_int(G, k, "axis", 1);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_pad(void)
{
    int x = TS("x", SH(1, 3, 5, 6));
    int y = TS("y", SH(1, 3, 8, 7));
    N(SH_OP_PAD, IN(x, CI("p", (int64_t[]){0, 0, 1, 0, 0, 0, 2, 1}, 8), CS("v", 0.25f)), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void pool(sh_op op, int k, int s, int pad, int hw, int64_t o, int cip, bool ceil)
{
    int x = TS("x", SH(1, 6, hw, hw));
    int y = TS("y", SH(1, 6, o, o));
    int n = N(op, IN(x), IN(y));
    sh_node_set_ints(G, n, "kernel_shape", (int64_t[]){k, k}, 2);
    sh_node_set_ints(G, n, "strides", (int64_t[]){s, s}, 2);
    sh_node_set_ints(G, n, "pads", (int64_t[]){pad, pad, pad, pad}, 4);
    if (cip)
        sh_node_set_int(G, n, "count_include_pad", 1);
    if (ceil)
        sh_node_set_int(G, n, "ceil_mode", 1);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
static void c_maxpool(void) { pool(SH_OP_MAX_POOL, 3, 2, 1, 13, 7, 0, false); }
static void c_maxpool_ceil(void) { pool(SH_OP_MAX_POOL, 2, 2, 0, 13, 7, 0, true); }
static void c_maxpool_same(void) { pool(SH_OP_MAX_POOL, 5, 1, 2, 13, 13, 0, false); }
static void c_avgpool(void) { pool(SH_OP_AVERAGE_POOL, 3, 1, 1, 10, 10, 0, false); }
static void c_avgpool_cip(void) { pool(SH_OP_AVERAGE_POOL, 3, 2, 1, 10, 5, 1, false); }

static void c_gap(void)
{
    int x = TS("x", SH(2, 5, 9, 7));
    int y = TS("y", SH(2, 5, 1, 1));
    N(SH_OP_GLOBAL_AVERAGE_POOL, IN(x), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_reduce_mean(void)
{
    int x = TS("x", SH(1, 16, 8, 8));
    int y = TS("y", SH(1, 16, 1, 1));
    int k = N(SH_OP_REDUCE_MEAN, IN(x), IN(y));
    sh_node_set_ints(G, k, "axes", (int64_t[]){2, 3}, 2);
    sh_node_set_int(G, k, "keepdims", 1);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void c_reduce_mean_c(void)
{
    int x = TS("x", SH(1, 16, 8, 8));
    int y = TS("y", SH(1, 1, 8, 8));
    int k = N(SH_OP_REDUCE_MEAN, IN(x), IN(y));
    sh_node_set_ints(G, k, "axes", (int64_t[]){1}, 1);
    sh_node_set_int(G, k, "keepdims", 1);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}

static void resize(const char *mode, const char *coord, const char *nearest, int hw, int o)
{
    int x = TS("x", SH(1, 4, hw, hw));
    int y = TS("y", SH(1, 4, o, o));
    float sc = (float)o / (float)hw;
    sh_shape s4 = {.ndim = 1, .d = {4}};
    int st = sh_graph_add_tensor(G, "sc", SH_DT_FLOAT32, &s4);
    float scv[4] = {1, 1, sc, sc};
    sh_graph_set_const(G, st, scv, 16, NULL);
    int k = N(SH_OP_RESIZE, IN(x, -1, st), IN(y));
    sh_node_set_string(G, k, "mode", mode);
    sh_node_set_string(G, k, "coordinate_transformation_mode", coord);
    if (nearest)
        sh_node_set_string(G, k, "nearest_mode", nearest);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
/* An op between two 1x1 convs, so its tensors are channels-last (the vector kernels for
 * 8-channel groups; 12 channels takes the per-channel path). `mid` builds it from m1 to m2. */
static void between_convs(int cin, int c, int hw, int ohw, void (*mid)(int m1, int m2, int c))
{
    int x = TS("x", SH(1, cin, hw, hw)), m1 = TS("m1", SH(1, c, hw, hw));
    int m2 = TS("m2", SH(1, c, ohw, ohw)), y = TS("y", SH(1, 8, ohw, ohw));
    int w1 = CF("w1", SH(c, cin, 1, 1), -0.4f, 0.4f), b1 = CF("b1", SH(c), -0.5f, 0.5f);
    int w2 = CF("w2", SH(8, c, 1, 1), -0.3f, 0.3f);
    N(SH_OP_CONV, IN(x, w1, b1), IN(m1));
    mid(m1, m2, c);
    N(SH_OP_CONV, IN(m2, w2), IN(y));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
static void dw_mid(int m1, int m2, int c, int k, int s)
{
    int w = CF("wd", SH(c, 1, k, k), -0.5f, 0.5f), b = CF("bd", SH(c), -0.5f, 0.5f);
    int n = N(SH_OP_CONV, IN(m1, w, b), IN(m2));
    sh_node_set_ints(G, n, "strides", (int64_t[]){s, s}, 2);
    sh_node_set_ints(G, n, "pads", (int64_t[]){k / 2, k / 2, k / 2, k / 2}, 4);
    sh_node_set_ints(G, n, "kernel_shape", (int64_t[]){k, k}, 2);
    sh_node_set_int(G, n, "group", c);
    G->nodes[n].act = SH_ACT_SILU;
}
static void dw3_mid(int m1, int m2, int c) { dw_mid(m1, m2, c, 3, 1); }
static void dw5s2_mid(int m1, int m2, int c) { dw_mid(m1, m2, c, 5, 2); }
static void resize_mid(int m1, int m2, const char *mode, const char *coord, const char *nearest)
{
    sh_shape s4 = {.ndim = 1, .d = {4}};
    int st = sh_graph_add_tensor(G, "sc", SH_DT_FLOAT32, &s4);
    sh_graph_set_const(G, st, (float[]){1, 1, 2, 2}, 16, NULL);
    int k = N(SH_OP_RESIZE, IN(m1, -1, st), IN(m2));
    sh_node_set_string(G, k, "mode", mode);
    sh_node_set_string(G, k, "coordinate_transformation_mode", coord);
    if (nearest)
        sh_node_set_string(G, k, "nearest_mode", nearest);
}
static void up_nearest_mid(int m1, int m2, int c) { (void)c; resize_mid(m1, m2, "nearest", "asymmetric", "floor"); }
static void up_linear_mid(int m1, int m2, int c) { (void)c; resize_mid(m1, m2, "linear", "half_pixel", NULL); }
static void c_dw_cl8(void) { between_convs(16, 32, 20, 20, dw3_mid); }
static void c_dw_cl8_s2(void) { between_convs(8, 24, 21, 11, dw5s2_mid); }
static void c_dw_cl12(void) { between_convs(8, 12, 15, 15, dw3_mid); }
static void c_up_nearest_cl8(void) { between_convs(16, 32, 10, 20, up_nearest_mid); }
static void c_up_linear_cl8(void) { between_convs(16, 32, 9, 18, up_linear_mid); }
static void c_up_nearest_cl12(void) { between_convs(8, 12, 7, 14, up_nearest_mid); }

static void c_resize_nearest(void) { resize("nearest", "asymmetric", "floor", 7, 14); }
static void c_resize_nearest_hp(void) { resize("nearest", "half_pixel", "round_prefer_floor", 6, 12); }
static void c_resize_linear(void) { resize("linear", "half_pixel", NULL, 7, 14); }
static void c_resize_linear_pt(void) { resize("linear", "pytorch_half_pixel", NULL, 8, 16); }
static void c_resize_linear_ac(void) { resize("linear", "align_corners", NULL, 5, 10); }

static void softmax(const int64_t *d, int nd, int axis, int opset)
{
    int x = TS("x", d, nd), y = TS("y", d, nd);
    int k = N(SH_OP_SOFTMAX, IN(x), IN(y));
    G->nodes[k].opset = opset;
    sh_node_set_int(G, k, "axis", axis);
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(y));
}
static void c_softmax_last(void) { softmax(SH(1, 300, 2), -1, 13); }
static void c_softmax_mid(void) { softmax(SH(1, 4, 16, 50), 2, 13); }
static void c_softmax_old(void) { softmax(SH(3, 4, 5), 1, 11); }
static void c_softmax_long(void) { softmax(SH(4, 1000), 1, 13); }

static void c_matmul(void)
{
    int a = TS("a", SH(2, 3, 17, 40));
    int b = CF("b", SH(40, 33), -0.5f, 0.5f);
    int y = TS("y", SH(2, 3, 17, 33));
    N(SH_OP_MATMUL, IN(a, b), IN(y));
    sh_graph_set_inputs(G, IN(a));
    sh_graph_set_outputs(G, IN(y));
}

/* enough output tiles (5 x 4 x 4 = 80) for the 64x64 tile; partial tiles and K steps */
static void c_matmul_large(void)
{
    int a = TS("a", SH(2, 2, 200, 72));
    int b = CF("b", SH(72, 260), -0.5f, 0.5f);
    int y = TS("y", SH(2, 2, 200, 260));
    N(SH_OP_MATMUL, IN(a, b), IN(y));
    sh_graph_set_inputs(G, IN(a));
    sh_graph_set_outputs(G, IN(y));
}

/* C2PSA attention: q^T k, then v attn^T (transposes as strides: K-contiguous loads) */
static void c_matmul_attn(void)
{
    int q = TS("q", SH(1, 2, 24, 72)), k = TS("k", SH(1, 2, 24, 72)), v = TS("v", SH(1, 2, 40, 72));
    int qt = TS("qt", SH(1, 2, 72, 24)), at = TS("at", SH(1, 2, 72, 72)), att = TS("att", SH(1, 2, 72, 72));
    int y = TS("y", SH(1, 2, 40, 72));
    int t1 = N(SH_OP_TRANSPOSE, IN(q), IN(qt));
    sh_node_set_ints(G, t1, "perm", (int64_t[]){0, 1, 3, 2}, 4);
    N(SH_OP_MATMUL, IN(qt, k), IN(at));
    int t2 = N(SH_OP_TRANSPOSE, IN(at), IN(att));
    sh_node_set_ints(G, t2, "perm", (int64_t[]){0, 1, 3, 2}, 4);
    N(SH_OP_MATMUL, IN(v, att), IN(y));
    sh_graph_set_inputs(G, IN(q, k, v));
    sh_graph_set_outputs(G, IN(y));
}

static void c_matmul_bcast(void)
{
    int a = TS("a", SH(1, 9, 20));
    int b = TS("b", SH(4, 20, 70));
    int y = TS("y", SH(4, 9, 70));
    N(SH_OP_MATMUL, IN(a, b), IN(y));
    sh_graph_set_inputs(G, IN(a, b));
    sh_graph_set_outputs(G, IN(y));
}

static void c_gemm(void)
{
    int a = TS("a", SH(3, 130));
    int b = CF("b", SH(100, 130), -0.5f, 0.5f);
    int c = CF("c", SH(100), -0.5f, 0.5f);
    int y = TS("y", SH(3, 100));
    int k = N(SH_OP_GEMM, IN(a, b, c), IN(y));
    sh_node_set_int(G, k, "transB", 1);
    sh_node_set_float(G, k, "alpha", 0.75f);
    G->nodes[k].act = SH_ACT_RELU;
    sh_graph_set_inputs(G, IN(a));
    sh_graph_set_outputs(G, IN(y));
}

static void c_identity_out(void)
{
    /* a graph output that is also read by another node, and a reshape at the fp32 boundary */
    int x = TS("x", SH(1, 4, 3, 3)), a = TS("a", SH(1, 4, 3, 3)), r = TS("r", SH(1, 36));
    N(SH_OP_RELU, IN(x), IN(a));
    N(SH_OP_RESHAPE, IN(a, CI("shp", (int64_t[]){1, 36}, 2)), IN(r));
    sh_graph_set_inputs(G, IN(x));
    sh_graph_set_outputs(G, IN(a, r));
}

/* Channel Split/Concat around own convs: views with pixel strides where channel offsets and
 * counts are multiples of 8 (cuda_views.c), copies where they are not (12 channels). */
static void c_c2f_views(void) { sg_c2f(G, 32, 16, 2, true, 20); }
static void c_c2f_wide(void) { sg_c2f(G, 64, 32, 1, true, 40); }
static void c_c2f_plain(void) { sg_c2f(G, 16, 8, 2, false, 16); }
static void c_c2f_odd(void) { sg_c2f(G, 24, 12, 1, true, 12); }
static void c_neck_views(void) { sg_neck(G, 16, 16, 24, 16); }
static void c_neck_odd(void) { sg_neck(G, 16, 12, 16, 16); }
static void c_split_convs(void) { sg_split_convs(G, 16, 16, 24, 12); }
static void c_split_convs_odd(void) { sg_split_convs(G, 16, 12, 16, 12); }

typedef struct { const char *name; void (*build)(void); } op_case;
static const op_case cases[] = {
    {"conv3x3+bias", c_conv3}, {"conv+relu", c_conv_relu}, {"conv s2+silu", c_conv_silu},
    {"conv1x1+hardswish", c_conv_hswish}, {"conv1x1+hardsigmoid", c_conv_hsig}, {"conv+clip(0,6)", c_conv_clip},
    {"conv+sigmoid", c_conv_sig}, {"conv group4", c_conv_group}, {"conv depthwise s2", c_conv_dw},
    {"conv depthwise 5x5", c_conv_dw5}, {"conv asymmetric pads", c_conv_asym}, {"convtranspose 2x2 s2", c_convt}, {"convtranspose 3x3 s2 p1", c_convt3},
    {"convtranspose 2x2 between convs (GEMM)", c_convt_gemm}, {"convtranspose 256 ch 20->40 (GEMM)", c_convt_gemm_wide},
    {"convtranspose 3x3 s3 (GEMM)", c_convt_gemm_k3}, {"convtranspose 3x3 s2 p1 between convs (cuDNN)", c_convt_cudnn_cl},
    {"conv split-K 256->128", c_conv_splitk}, {"conv 128x64 tiles", c_conv_bigm},
    {"conv 64x64 tiles", c_conv_midm}, {"conv 64x32 tiles", c_conv_n32},
    {"conv 1x1 48 channels", c_conv_partial_n}, {"conv 1x1 72->128 at 160x160", c_conv_wide_n},
    {"conv RGB input 3x3/2", c_conv_rgb_s2}, {"conv RGB input 5x5 64", c_conv_rgb_k64}, {"conv gray input 8", c_conv_gray_k8}, {"conv odd channels dilated", c_conv_odd_dil},
    {"conv + residual add (fused)", c_conv_residual},
    {"batchnorm", c_bn}, {"relu", c_relu}, {"sigmoid", c_sigmoid}, {"hardsigmoid", c_hsig},
    {"hardswish", c_hswish}, {"clip", c_clip}, {"exp", c_exp}, {"silu", c_silu},
    {"add", c_add}, {"mul [1,C,1,1]", c_mul_chan}, {"sub [W]", c_sub_row}, {"div [C,H,1]", c_div_mid},
    {"concat (views)", c_concat_views}, {"concat inner axis", c_concat_inner},
    {"split (views)", c_split_views}, {"split inner", c_split_inner}, {"slice steps", c_slice_step},
    {"slice negative step", c_slice_neg}, {"slice (view)", c_slice_view}, {"transpose", c_transpose},
    {"reshape (view)", c_reshape_view}, {"expand", c_expand}, {"gather", c_gather}, {"pad", c_pad},
    {"maxpool 3x3 s2", c_maxpool}, {"maxpool ceil", c_maxpool_ceil}, {"maxpool 5x5 s1", c_maxpool_same},
    {"avgpool", c_avgpool}, {"avgpool count_include_pad", c_avgpool_cip}, {"globalavgpool", c_gap},
    {"reducemean hw", c_reduce_mean}, {"reducemean c", c_reduce_mean_c},
    {"resize nearest asym", c_resize_nearest}, {"resize nearest half_pixel", c_resize_nearest_hp},
    {"resize linear half_pixel", c_resize_linear}, {"resize linear pytorch", c_resize_linear_pt},
    {"resize linear align_corners", c_resize_linear_ac},
    {"depthwise 3x3 channels-last 32", c_dw_cl8}, {"depthwise 5x5/2 channels-last 24", c_dw_cl8_s2},
    {"depthwise channels-last 12", c_dw_cl12}, {"upsample nearest channels-last 32", c_up_nearest_cl8},
    {"upsample linear channels-last 32", c_up_linear_cl8}, {"upsample nearest channels-last 12", c_up_nearest_cl12},
    {"softmax last", c_softmax_last}, {"softmax mid axis", c_softmax_mid}, {"softmax opset11", c_softmax_old},
    {"softmax 1000", c_softmax_long}, {"matmul batched", c_matmul}, {"matmul large", c_matmul_large}, {"matmul bcast", c_matmul_bcast}, {"matmul attention (transposed operands)", c_matmul_attn},
    {"gemm transB+relu", c_gemm}, {"outputs at boundary", c_identity_out},
    {"c2f 16ch (slice views)", c_c2f_views}, {"c2f 32ch 40x40 (slice views)", c_c2f_wide},
    {"c2f 8ch no shortcut", c_c2f_plain}, {"c2f 12ch (copies)", c_c2f_odd},
    {"neck concat (view)", c_neck_views}, {"neck concat c0=12 (copy)", c_neck_odd},
    {"split -> convs (views)", c_split_convs}, {"split -> convs c0=12", c_split_convs_odd},
};

int main(void)
{
    sh_backend_params bp = {.alloc = NULL, .n_threads = 1, .device = 0, .cuda_graphs = true};
    sh_backend gpu, cpu;
    int rc = hx_cuda_or_skip(&gpu, &bp);
    if (rc)
        return rc;
    sh_err err = {0};
    if (sh_backend_cpu_create(&bp, &cpu, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    int failed = 0;
    printf("%-30s %12s %s\n", "op", "rel L2", "");
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        G = sh_graph_create(NULL, cases[ci].name);
        G->opset = 13;
        cases[ci].build();
        if (sh_graph_finalize(G, &err)) {
            printf("%-30s build: %s\n", cases[ci].name, err.msg);
            failed++;
            sh_graph_destroy(G);
            continue;
        }
        float *in[8] = {0}, *oc[8] = {0}, *og[8] = {0};
        for (int i = 0; i < G->n_inputs; i++) {
            size_t n = (size_t)sh_shape_numel(&G->tensors[G->inputs[i]].shape);
            in[i] = malloc(n * 4);
            for (size_t j = 0; j < n; j++)
                in[i][j] = hx_rand(-1.f, 1.f);
        }
        for (int i = 0; i < G->n_outputs; i++) {
            size_t n = (size_t)sh_shape_numel(&G->tensors[G->outputs[i]].shape);
            oc[i] = malloc(n * 4);
            og[i] = malloc(n * 4);
        }
        hx_run rc_cpu = {0}, rc_gpu = {0};
        double worst = 0;
        const char *why = NULL;
        if (hx_prepare(&rc_cpu, &cpu, G, &err) || hx_exec(&rc_cpu, in, oc, 1, &err))
            why = "cpu";
        else if (hx_prepare(&rc_gpu, &gpu, G, &err) || hx_exec(&rc_gpu, in, og, 1, &err) ||
                 hx_exec(&rc_gpu, in, og, 1, &err))   /* second run replays the captured graph */
            why = "cuda";
        if (!why)
            for (int i = 0; i < G->n_outputs; i++) {
                size_t n = (size_t)sh_shape_numel(&G->tensors[G->outputs[i]].shape);
                double e = hx_rel_l2(og[i], oc[i], n);
                worst = e > worst ? e : worst;
            }
        bool ok = !why && worst <= 1e-2;
        if (why)
            printf("%-30s %12s FAIL %s: %s\n", cases[ci].name, "-", why, err.msg);
        else
            printf("%-30s %12.3e %s\n", cases[ci].name, worst, ok ? "ok" : "FAIL");
        failed += !ok;
        hx_release(&rc_cpu);
        hx_release(&rc_gpu);
        for (int i = 0; i < 8; i++) {
            free(in[i]);
            free(oc[i]);
            free(og[i]);
        }
        sh_graph_destroy(G);
    }
    sh_backend_destroy(&cpu);
    sh_backend_destroy(&gpu);
    printf("%d of %zu op cases failed\n", failed, sizeof cases / sizeof cases[0]);
    return failed ? 1 : 0;
}
