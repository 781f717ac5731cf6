/* The CPU backend's layout pass (backends/cpu/layout.c): graphs with Split, Add, Sigmoid, Mul,
 * Concat, MaxPool, AveragePool, Resize and ConvTranspose between oneDNN convs run with activations NHWC from
 * the first conv to the last, and give the outputs of the same graph compiled with every conv
 * on im2col + OpenBLAS (NCHW throughout, no oneDNN), an independent path, within fp32 bounds;
 * the same holds with the propagation switched off (shoal_tuning.cpu_no_layout_flow). The
 * transpose counters must show the propagation at work, so the test fails if it is off. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "backends/cpu/cpu_report.h"
#include "harness.h"

void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl);

enum { RUN_FLOW, RUN_NO_FLOW, RUN_BLAS };

/* ConvTranspose to twice the size: k2 s2 (no overlap) or k3 s2 pads 1 output_padding 1. */
static int convt2x(th *h, const char *name, int x, int64_t c, int64_t hw, int64_t k)
{
    int64_t wd[4] = {c, c, k, k}, yd[4] = {1, c, 2 * hw, 2 * hw};
    int w, b;
    th_weight_bias(h, name, wd, c, &w, &b);
    char nm[64];
    snprintf(nm, sizeof nm, "%s.y", name);
    int y = th_tensor(h, nm, 4, yd);
    int in[3] = {x, w, b};
    int n = sh_graph_add_node(h->g, name, SH_OP_CONV_TRANSPOSE, in, 3, &y, 1);
    int64_t ks[2] = {k, k}, st[2] = {2, 2}, p = k == 3, pads[4] = {p, p, p, p}, op[2] = {p, p};
    sh_node_set_ints(h->g, n, "kernel_shape", ks, 2);
    sh_node_set_ints(h->g, n, "strides", st, 2);
    sh_node_set_ints(h->g, n, "pads", pads, 4);
    sh_node_set_ints(h->g, n, "output_padding", op, 2);
    h->g->nodes[n].opset = 11;
    h->g->nodes[n].act = k == 3 ? SH_ACT_SILU : SH_ACT_NONE;
    return y;
}

static int node1(th *h, const char *name, sh_op op, const int *in, int n_in, int64_t c, int64_t hw)
{
    int64_t yd[4] = {1, c, hw, hw};
    char nm[64];
    snprintf(nm, sizeof nm, "%s.y", name);
    int y = th_tensor(h, nm, 4, yd);
    int n = sh_graph_add_node(h->g, name, op, in, n_in, &y, 1);
    h->g->nodes[n].opset = 13;
    if (op == SH_OP_CONCAT)
        sh_node_set_int(h->g, n, "axis", 1);
    return y;
}

static int pool(th *h, const char *name, sh_op op, int x, int64_t c, int64_t hw, int64_t k, int64_t s, int64_t pad)
{
    int64_t ohw = (hw + 2 * pad - k) / s + 1;
    int y = node1(h, name, op, &x, 1, c, ohw);
    int n = h->g->n_nodes - 1;
    int64_t ks[2] = {k, k}, st[2] = {s, s}, pads[4] = {pad, pad, pad, pad};
    sh_node_set_ints(h->g, n, "kernel_shape", ks, 2);
    sh_node_set_ints(h->g, n, "strides", st, 2);
    sh_node_set_ints(h->g, n, "pads", pads, 4);
    return y;
}

static int resize2x(th *h, const char *name, int x, int64_t c, int64_t hw, const char *mode)
{
    static const float scales[4] = {1, 1, 2, 2};
    char nm[64];
    snprintf(nm, sizeof nm, "%s.scales", name);
    int in[3] = {x, -1, th_const_f32(h, nm, 4, scales)};
    int y = node1(h, name, SH_OP_RESIZE, in, 3, c, 2 * hw);
    sh_node_set_string(h->g, h->g->n_nodes - 1, "mode", mode);
    return y;
}

/* Graph A, 16x16 input of 8 channels: a C2f-like block (conv, split, conv, residual Add,
 * SiLU as Sigmoid and Mul, 3-way concat), an SPP-like tail (1x1 conv, MaxPool 5x5 s1, average
 * pool 2x2 s2, scalar Mul, nearest and linear 2x Resize, ConvTranspose k2 s2 and k3 s2 with
 * overlapping taps, concat) and a strided conv output. */
static void build_flowing(th *h, int *x, int *out)
{
    int64_t xd[4] = {1, 8, 16, 16};
    *x = th_tensor(h, "x", 4, xd);
    int y1 = th_conv(h, "c1", *x, 8, 16, 3, 1, 16, SH_ACT_SILU);
    int64_t ad[4] = {1, 6, 16, 16}, bd[4] = {1, 10, 16, 16};
    int parts[2] = {th_tensor(h, "split.a", 4, ad), th_tensor(h, "split.b", 4, bd)};
    int sn = sh_graph_add_node(h->g, "split", SH_OP_SPLIT, &y1, 1, parts, 2);
    sh_node_set_int(h->g, sn, "axis", 1);
    int64_t sizes[2] = {6, 10};
    sh_node_set_ints(h->g, sn, "split", sizes, 2);
    h->g->nodes[sn].opset = 11;
    int c = th_conv(h, "c2", parts[1], 10, 10, 3, 1, 16, SH_ACT_NONE);
    int add_in[2] = {parts[1], c};
    int d = node1(h, "add", SH_OP_ADD, add_in, 2, 10, 16);
    int s = node1(h, "sigmoid", SH_OP_SIGMOID, &d, 1, 10, 16);
    int mul_in[2] = {d, s};
    int e = node1(h, "silu", SH_OP_MUL, mul_in, 2, 10, 16);
    int cat_in[3] = {parts[0], parts[1], e};
    int cat1 = node1(h, "cat1", SH_OP_CONCAT, cat_in, 3, 26, 16);
    int f = th_conv(h, "c3", cat1, 26, 16, 1, 1, 16, SH_ACT_RELU);
    int g = pool(h, "maxpool", SH_OP_MAX_POOL, f, 16, 16, 5, 1, 2);
    int p = pool(h, "avgpool", SH_OP_AVERAGE_POOL, g, 16, 16, 2, 2, 0);
    static const float half = 0.5f;
    int hq_in[2] = {p, th_const_f32(h, "half", 1, &half)};
    int q = node1(h, "half", SH_OP_MUL, hq_in, 2, 16, 8);
    int r = resize2x(h, "up_nearest", q, 16, 8, "nearest");
    int l = resize2x(h, "up_linear", p, 16, 8, "linear");
    int t2 = convt2x(h, "up_convt2", p, 16, 8, 2), t3 = convt2x(h, "up_convt3", q, 16, 8, 3);
    int cat2_in[5] = {g, r, l, t2, t3};
    int cat2 = node1(h, "cat2", SH_OP_CONCAT, cat2_in, 5, 80, 16);
    *out = th_conv(h, "c4", cat2, 80, 8, 3, 2, 16, SH_ACT_NONE);
}

/* Graph B: a per-channel Mul (NCHW only) after a MaxPool ties the first conv's output to NCHW,
 * while the later conv -> conv/Concat -> conv group still goes NHWC. */
static void build_mixed(th *h, int *x, int *out)
{
    int64_t xd[4] = {1, 8, 12, 12}, cd[4] = {1, 16, 1, 1};
    *x = th_tensor(h, "x", 4, xd);
    int y1 = th_conv(h, "c1", *x, 8, 16, 3, 1, 12, SH_ACT_SILU);
    int g = pool(h, "maxpool", SH_OP_MAX_POOL, y1, 16, 12, 3, 1, 1);
    float *cv;
    int mul_in[2] = {g, th_const_rand(h, "chan", 4, cd, &cv)};
    free(cv);
    int m = node1(h, "chan_mul", SH_OP_MUL, mul_in, 2, 16, 12);
    int c2 = th_conv(h, "c2", m, 16, 16, 3, 1, 12, SH_ACT_SILU);
    int c3 = th_conv(h, "c3", c2, 16, 8, 1, 1, 12, SH_ACT_NONE);
    int cat_in[2] = {c2, c3};
    int cat = node1(h, "cat", SH_OP_CONCAT, cat_in, 2, 24, 12);
    *out = th_conv(h, "c4", cat, 24, 4, 3, 1, 12, SH_ACT_NONE);
}

typedef struct run_result {
    float *y;
    int64_t n;
    sh_cpu_layout_stats st;
} run_result;

static run_result run_graph(void (*build)(th *, int *, int *), int how)
{
    shoal_tuning tuning = {.cpu_no_layout_flow = how == RUN_NO_FLOW};
    th h;
    th_init_tuned(&h, 2, &tuning);
    if (how == RUN_BLAS)
        sh_backend_cpu_set_conv_impl(&h.be, 1);
    int x, y;
    build(&h, &x, &y);
    assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
    run_result r = {.n = sh_shape_numel(&h.g->tensors[y].shape)};
    assert_int_equal(sh_backend_cpu_layout_stats(h.p, &r.st), 0);
    th_fill(&h, x);
    assert_int_equal(th_run(&h), 0);
    r.y = malloc((size_t)r.n * sizeof(float));
    memcpy(r.y, h.ptr[y], (size_t)r.n * sizeof(float));
    th_free(&h);
    return r;
}

/* |out - ref| <= 1e-4 (|ref| + mean |ref|) everywhere; NaN (the poison) fails. */
static void expect_close(const run_result *out, const run_result *ref, const char *what)
{
    assert_int_equal(out->n, ref->n);
    double mean = 0;
    for (int64_t i = 0; i < ref->n; i++)
        mean += fabs(ref->y[i]);
    mean /= (double)ref->n;
    assert_true(mean > 1e-2);
    for (int64_t i = 0; i < ref->n; i++) {
        double bound = 1e-4 * (fabs(ref->y[i]) + mean);
        if (!(fabs((double)out->y[i] - ref->y[i]) <= bound))
            fail_msg("%s: element %lld is %g, reference %g", what, (long long)i, out->y[i], ref->y[i]);
    }
}

static void flowing_graph(void **state)
{
    (void)state;
    run_result flow = run_graph(build_flowing, RUN_FLOW), off = run_graph(build_flowing, RUN_NO_FLOW),
               blas = run_graph(build_flowing, RUN_BLAS);
    expect_close(&flow, &blas, "layout flow vs im2col");
    expect_close(&off, &blas, "conv -> conv NHWC only vs im2col");
    /* With the flow, the graph input and output are the only transposes; without it, every conv
     * next to something other than a conv transposes on that side. */
    assert_int_equal(flow.st.transposes, 2);
    assert_int_equal(off.st.transposes, 8);
    assert_int_equal(flow.st.nhwc_other_ops, 13);
    assert_int_equal(off.st.nhwc_other_ops, 0);
    assert_int_equal(blas.st.transposes, 0);
    assert_int_equal(blas.st.nhwc_tensors, 0);
    free(flow.y);
    free(off.y);
    free(blas.y);
}

static void mixed_graph(void **state)
{
    (void)state;
    run_result flow = run_graph(build_mixed, RUN_FLOW), off = run_graph(build_mixed, RUN_NO_FLOW),
               blas = run_graph(build_mixed, RUN_BLAS);
    expect_close(&flow, &blas, "layout flow vs im2col");
    expect_close(&off, &blas, "conv -> conv NHWC only vs im2col");
    /* c1 both sides (input; MaxPool then the per-channel Mul), c2 in, c4 out. */
    assert_int_equal(flow.st.transposes, 4);
    assert_int_equal(flow.st.nhwc_other_ops, 1);
    /* Without the flow every conv transposes both sides: none has only convs around it. */
    assert_int_equal(off.st.transposes, 8);
    free(flow.y);
    free(off.y);
    free(blas.y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(flowing_graph),
        cmocka_unit_test(mixed_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
