/* Fusions: BatchNorm into Conv (numerics against a direct reference convolution), activation
 * fusion, SiLU, no-op removal that keeps graph output names. */
#include "gbuild.h"

#include <math.h>

static uint32_t rng = 12345;

static float frand(float lo, float hi)   /* non-zero values in [lo, hi) */
{
    rng = rng * 1664525u + 1013904223u;
    float v = lo + (hi - lo) * (float)(rng >> 8) / 16777216.0f;
    return v == 0.0f ? 0.25f : v;
}

/* direct NCHW convolution, group 1, one batch */
static void ref_conv(const float *x, int c, int h, int w, const float *wt, const float *b, int m, int k, int s,
                     int p, float *y, int oh, int ow)
{
    for (int o = 0; o < m; o++)
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                float acc = b ? b[o] : 0.0f;
                for (int ci = 0; ci < c; ci++)
                    for (int u = 0; u < k; u++)
                        for (int v = 0; v < k; v++) {
                            int yy = i * s - p + u, xx = j * s - p + v;
                            if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                                continue;
                            acc += x[(ci * h + yy) * w + xx] * wt[((o * c + ci) * k + u) * k + v];
                        }
                y[(o * oh + i) * ow + j] = acc;
            }
}

static void batchnorm_folds_into_conv(void **state)
{
    enum { C = 3, H = 7, W = 6, M = 4, K = 3, OH = 4, OW = 3 };
    float x[C * H * W], wt[M * C * K * K], b[M], sc[M], bi[M], mu[M], var[M];
    for (size_t i = 0; i < sizeof x / 4; i++)
        x[i] = frand(-1, 1);
    for (size_t i = 0; i < sizeof wt / 4; i++)
        wt[i] = frand(-0.5f, 0.5f);
    for (int i = 0; i < M; i++) {
        b[i] = frand(-0.2f, 0.2f);
        sc[i] = frand(0.5f, 1.5f);
        bi[i] = frand(-0.3f, 0.3f);
        mu[i] = frand(-0.1f, 0.1f);
        var[i] = frand(0.2f, 2.0f);
    }
    float eps = 1e-3f;
    begin(13);
    int xi = input("x", SH_DT_FLOAT32, S(4, 1, C, H, W));
    int wi = cst("W", SH_DT_FLOAT32, S(4, M, C, K, K), wt);
    int bb = cst("B", SH_DT_FLOAT32, S(1, M), b);
    int k = node(SH_OP_CONV, "conv", IDS(xi, wi, bb), 1, NULL);
    sh_node_set_ints(G, k, "strides", I64(2, 2));
    sh_node_set_ints(G, k, "pads", I64(1, 1, 1, 1));
    int cv = G->nodes[k].outputs[0];
    int pi[4] = {cst("scale", SH_DT_FLOAT32, S(1, M), sc), cst("bias", SH_DT_FLOAT32, S(1, M), bi),
                 cst("mean", SH_DT_FLOAT32, S(1, M), mu), cst("var", SH_DT_FLOAT32, S(1, M), var)};
    k = node(SH_OP_BATCH_NORM, "bn", IDS(cv, pi[0], pi[1], pi[2], pi[3]), 1, NULL);
    sh_node_set_float(G, k, "epsilon", eps);
    output(G->nodes[k].outputs[0]);
    /* a second Conv shares W: its weights must stay untouched */
    k = node(SH_OP_CONV, "conv2", IDS(xi, wi), 1, NULL);
    sh_node_set_ints(G, k, "strides", I64(2, 2));
    sh_node_set_ints(G, k, "pads", I64(1, 1, 1, 1));
    output(G->nodes[k].outputs[0]);
    /* a standalone BatchNorm on a graph input stays */
    float p3[C] = {1, 2, 3};
    int q[4];
    for (int i = 0; i < 4; i++) {
        char nm[16];
        snprintf(nm, sizeof nm, "p%d", i);
        q[i] = cst(nm, SH_DT_FLOAT32, S(1, C), p3);
    }
    output(G->nodes[node(SH_OP_BATCH_NORM, "bn_alone", IDS(xi, q[0], q[1], q[2], q[3]), 1, NULL)].outputs[0]);
    assert_int_equal(optimize(NULL), 0);

    assert_null(N("bn"));
    assert_non_null(N("bn_alone"));
    const sh_node *c = N("conv");
    assert_non_null(c);
    assert_string_equal(G->tensors[c->outputs[0]].name, "bn");
    assert_memory_equal(T("W")->data, wt, sizeof wt);
    assert_int_equal(G->tensors[N("conv2")->inputs[1]].data == T("W")->data, 1);
    const float *wf = G->tensors[c->inputs[1]].data, *bf = G->tensors[c->inputs[2]].data;
    assert_true(wf != T("W")->data);

    float conv_out[M * OH * OW], unfused[M * OH * OW], fused[M * OH * OW];
    ref_conv(x, C, H, W, wt, b, M, K, 2, 1, conv_out, OH, OW);
    for (int o = 0; o < M; o++)
        for (int i = 0; i < OH * OW; i++)
            unfused[o * OH * OW + i] = sc[o] * (conv_out[o * OH * OW + i] - mu[o]) / sqrtf(var[o] + eps) + bi[o];
    ref_conv(x, C, H, W, wf, bf, M, K, 2, 1, fused, OH, OW);
    double num = 0, den = 0;
    for (int i = 0; i < M * OH * OW; i++) {
        num = fmax(num, fabs((double)fused[i] - unfused[i]));
        den = fmax(den, fabs((double)unfused[i]));
    }
    assert_true(den > 0.1);
    if (num / den >= 1e-5)
        fail_msg("relative error %g", num / den);
    end();
}

static void activations_fuse_into_producers(void **state)
{
    float w[4 * 2] = {1, 2, 3, 4, 5, 6, 7, 8};
    begin(13);
    int x = input("x", SH_DT_FLOAT32, S(4, 1, 2, 3, 3));
    int wi = cst("W", SH_DT_FLOAT32, S(4, 4, 2, 1, 1), w);
    int c1 = bin(SH_OP_CONV, "c_relu", x, wi);
    output(un(SH_OP_RELU, "relu", c1));
    int c2 = bin(SH_OP_CONV, "c_silu_a", x, wi);
    output(bin(SH_OP_MUL, "silu_a", c2, un(SH_OP_SIGMOID, "sig_a", c2)));
    int c3 = bin(SH_OP_CONV, "c_silu_b", x, wi);
    output(bin(SH_OP_MUL, "silu_b", un(SH_OP_SIGMOID, "sig_b", c3), c3));
    int c4 = bin(SH_OP_CONV, "c_hsw", x, wi);
    output(un(SH_OP_HARD_SWISH, "hsw", c4));
    int c5 = bin(SH_OP_CONV, "c_clip", x, wi);
    float six = 6.0f;
    int k = node(SH_OP_CLIP, "clip", IDS(c5, -1, cst("six", SH_DT_FLOAT32, S(0), &six)), 1, NULL);
    output(G->nodes[k].outputs[0]);
    int c6 = bin(SH_OP_CONV, "c_clip6", x, wi);
    k = node(SH_OP_CLIP, "clip6", IDS(c6), 1, NULL);
    G->nodes[k].opset = 6;
    sh_node_set_float(G, k, "min", 0.0f);
    sh_node_set_float(G, k, "max", 6.0f);
    output(G->nodes[k].outputs[0]);
    /* conv output also a graph output: nothing fuses */
    int c7 = bin(SH_OP_CONV, "c_out", x, wi);
    output(c7);
    output(un(SH_OP_RELU, "relu_out", c7));
    /* x * sigmoid(x) where x has another reader: a SiLU node */
    int c8 = bin(SH_OP_CONV, "c_shared", x, wi);
    output(bin(SH_OP_MUL, "silu_node", c8, un(SH_OP_SIGMOID, "sig_c", c8)));
    output(un(SH_OP_EXP, "other", c8));
    /* on a graph input: a SiLU node too */
    output(bin(SH_OP_MUL, "silu_in", x, un(SH_OP_SIGMOID, "sig_in", x)));
    /* Gemm + HardSigmoid */
    int ga = input("ga", SH_DT_FLOAT32, S(2, 2, 4));
    int gb = cst("gb", SH_DT_FLOAT32, S(2, 4, 2), w);
    int gm = bin(SH_OP_GEMM, "gemm", ga, gb);
    k = node(SH_OP_HARD_SIGMOID, "hsig", IDS(gm), 1, NULL);
    sh_node_set_float(G, k, "alpha", 0.25f);
    output(G->nodes[k].outputs[0]);
    assert_int_equal(optimize(NULL), 0);

    struct { const char *conv, *out; sh_act act; } want[] = {
        {"c_relu", "relu", SH_ACT_RELU},          {"c_silu_a", "silu_a", SH_ACT_SILU},
        {"c_silu_b", "silu_b", SH_ACT_SILU},      {"c_hsw", "hsw", SH_ACT_HARD_SWISH},
        {"c_clip", "clip", SH_ACT_CLIP},          {"c_clip6", "clip6", SH_ACT_CLIP},
        {"c_out", "c_out", SH_ACT_NONE},          {"c_shared", "c_shared", SH_ACT_NONE},
        {"gemm", "hsig", SH_ACT_HARD_SIGMOID},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const sh_node *n = N(want[i].conv);
        if (!n)
            fail_msg("%s removed", want[i].conv);
        assert_string_equal(G->tensors[n->outputs[0]].name, want[i].out);
        if (n->act != want[i].act)
            fail_msg("%s: act %d, want %d", want[i].conv, n->act, want[i].act);
    }
    assert_true(N("c_clip")->act_a == -INFINITY && N("c_clip")->act_b == 6.0f);
    assert_true(N("c_clip6")->act_a == 0.0f && N("c_clip6")->act_b == 6.0f);
    assert_true(N("gemm")->act_a == 0.25f && N("gemm")->act_b == 0.5f);
    assert_non_null(N("relu_out"));
    const sh_node *s = N("silu_node");
    assert_non_null(s);
    assert_int_equal(s->op, SH_OP_SILU);
    assert_int_equal(s->n_inputs, 1);
    assert_string_equal(G->tensors[s->inputs[0]].name, "c_shared");
    assert_int_equal(N("silu_in")->op, SH_OP_SILU);
    assert_int_equal(count_live(SH_OP_SIGMOID), 0);
    for (const char *const *nm = (const char *const[]){"relu", "sig_a", "sig_b", "hsw", "clip", "clip6", "hsig", NULL};
         *nm; nm++)
        assert_null(N(*nm));
    /* idempotent */
    int nn = G->n_nodes;
    assert_int_equal(sh_graph_optimize(G, NULL, &ERR), 0);
    assert_int_equal(G->n_nodes, nn);
    end();
}

static void noops_are_removed_keeping_output_names(void **state)
{
    begin(13);
    int x = input("x", SH_DT_FLOAT32, S(2, 2, 3));
    int r = un(SH_OP_RELU, "r", x);
    int id = un(SH_OP_IDENTITY, "id_mid", r);
    int rs = bin(SH_OP_RESHAPE, "rs_same", id, ci64("sh", I64(2, 3)));
    int e = un(SH_OP_EXP, "e", rs);
    output(un(SH_OP_IDENTITY, "final", e));   /* graph output through an Identity */
    output(un(SH_OP_IDENTITY, "passthrough", x));   /* input -> output: must stay */
    int u = bin(SH_OP_UNSQUEEZE, "unsq", e, ci64("ax", I64(0)));
    output(bin(SH_OP_SQUEEZE, "sq", u, ci64("ax2", I64(0))));
    assert_int_equal(optimize(NULL), 0);
    assert_null(N("id_mid"));
    assert_null(N("rs_same"));
    assert_null(N("final"));
    assert_non_null(N("passthrough"));
    const sh_node *en = N("e");
    assert_string_equal(G->tensors[en->inputs[0]].name, "r");
    assert_string_equal(G->tensors[en->outputs[0]].name, "final");
    assert_string_equal(G->tensors[G->outputs[0]].name, "final");
    assert_string_equal(G->tensors[G->outputs[2]].name, "sq");
    assert_int_equal(G->n_outputs, 3);
    /* Unsqueeze then Squeeze: both change shape, both stay */
    assert_non_null(N("unsq"));
    assert_non_null(N("sq"));
    end();
}

static void zero_pad_moves_into_conv(void **state)
{
    float w[4 * 2 * 9];
    for (int i = 0; i < 72; i++)
        w[i] = frand(-1, 1);
    begin(13);
    int x = input("x", SH_DT_FLOAT32, S(4, 1, 2, 8, 8));
    int p = bin(SH_OP_PAD, "pad", x, ci64("pads", I64(0, 0, 0, 0, 0, 0, 1, 1)));
    int k = node(SH_OP_CONV, "conv", IDS(p, cst("W", SH_DT_FLOAT32, S(4, 4, 2, 3, 3), w)), 1, NULL);
    sh_node_set_ints(G, k, "strides", I64(2, 2));
    sh_node_set_ints(G, k, "pads", I64(1, 1, 0, 0));
    output(G->nodes[k].outputs[0]);
    assert_int_equal(optimize(NULL), 0);
    assert_null(N("pad"));
    expect_shape("conv", SH_DT_FLOAT32, 4, 1, 4, 4, 4);
    int c;
    const int64_t *pads = sh_node_ints(N("conv"), "pads", &c);
    assert_int_equal(c, 4);
    assert_int_equal(pads[0], 1);
    assert_int_equal(pads[1], 1);
    assert_int_equal(pads[2], 1);
    assert_int_equal(pads[3], 1);
    end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(batchnorm_folds_into_conv),
        cmocka_unit_test(activations_fuse_into_producers),
        cmocka_unit_test(noops_are_removed_keeping_output_names),
        cmocka_unit_test(zero_pad_moves_into_conv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
