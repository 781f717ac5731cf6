/* Pools, Resize modes, MatMul/Gemm, Softmax and broadcasting binary ops against naive
 * references, on random non-zero inputs with poisoned outputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "harness.h"

/* ---- pools ------------------------------------------------------------------------------ */

typedef struct pool_case {
    bool max, include_pad, ceil;
    int64_t H, W, k[2], s[2], d[2], pb[2], pe[2];
} pool_case;

static int64_t pool_out(const pool_case *c, int i)
{
    int64_t in = i ? c->W : c->H, ext = (c->k[i] - 1) * c->d[i] + 1;
    int64_t span = in + c->pb[i] + c->pe[i] - ext;
    int64_t o = c->ceil ? (span + c->s[i] - 1) / c->s[i] + 1 : span / c->s[i] + 1;
    /* the last window must start inside the input or the begin pad */
    if (c->ceil && (o - 1) * c->s[i] >= in + c->pb[i])
        o--;
    return o;
}

static void pools(void **state)
{
    pool_case cases[] = {
        {true, false, false, 9, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}},
        {true, false, true, 10, 7, {3, 2}, {2, 2}, {1, 1}, {0, 1}, {0, 0}},
        {true, false, false, 11, 9, {3, 3}, {1, 1}, {2, 2}, {2, 2}, {2, 2}},
        {false, false, false, 9, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}},
        {false, true, false, 9, 8, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}},
        {false, true, true, 10, 7, {3, 3}, {2, 2}, {1, 1}, {1, 0}, {1, 1}},
        {false, false, true, 10, 7, {2, 3}, {3, 2}, {1, 1}, {0, 0}, {0, 0}},
        {true, false, false, 13, 13, {13, 13}, {1, 1}, {1, 1}, {6, 6}, {6, 6}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const pool_case *c = &cases[ci];
        th h;
        th_init(&h, 3);
        int64_t OH = pool_out(c, 0), OW = pool_out(c, 1);
        int64_t xd[4] = {2, 3, c->H, c->W}, yd[4] = {2, 3, OH, OW};
        int x = th_tensor(&h, "x", 4, xd), y = th_tensor(&h, "y", 4, yd);
        int n = sh_graph_add_node(h.g, "p", c->max ? SH_OP_MAX_POOL : SH_OP_AVERAGE_POOL, &x, 1, &y, 1);
        h.g->nodes[n].opset = 19;
        int64_t pads[4] = {c->pb[0], c->pb[1], c->pe[0], c->pe[1]};
        sh_node_set_ints(h.g, n, "kernel_shape", c->k, 2);
        sh_node_set_ints(h.g, n, "strides", c->s, 2);
        sh_node_set_ints(h.g, n, "dilations", c->d, 2);
        sh_node_set_ints(h.g, n, "pads", pads, 4);
        sh_node_set_int(h.g, n, "ceil_mode", c->ceil);
        sh_node_set_int(h.g, n, "count_include_pad", c->include_pad);
        assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
        float *xv = th_fill(&h, x);
        assert_int_equal(th_run(&h), 0);
        double *ref = malloc((size_t)(6 * OH * OW) * sizeof(double));
        for (int64_t pl = 0; pl < 6; pl++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    double best = -INFINITY, sum = 0;
                    int cnt = 0, cnt_pad = 0;
                    for (int64_t a = 0; a < c->k[0]; a++)
                        for (int64_t b = 0; b < c->k[1]; b++) {
                            int64_t ih = oh * c->s[0] - c->pb[0] + a * c->d[0];
                            int64_t iw = ow * c->s[1] - c->pb[1] + b * c->d[1];
                            if (ih >= -c->pb[0] && ih < c->H + c->pe[0] && iw >= -c->pb[1] && iw < c->W + c->pe[1])
                                cnt_pad++;
                            if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W)
                                continue;
                            double v = xv[(pl * c->H + ih) * c->W + iw];
                            best = v > best ? v : best;
                            sum += v;
                            cnt++;
                        }
                    ref[(pl * OH + oh) * OW + ow] = c->max ? best : sum / (c->include_pad ? cnt_pad : cnt);
                }
        assert_true(th_max_err(h.ptr[y], ref, 6 * OH * OW) <= 1.0);
        free(ref);
        th_free(&h);
    }
}

/* ---- resize ---------------------------------------------------------------------------------- */

/* 2-D bilinear / nearest reference written from the spec's formulas, on [1,2,H,W]. */
static double src_coord(const char *ct, int64_t x, double scale, int64_t in, int64_t out)
{
    if (!strcmp(ct, "align_corners"))
        return out == 1 ? 0 : (double)x * (in - 1) / (double)(out - 1);
    if (!strcmp(ct, "asymmetric"))
        return x / scale;
    if (!strcmp(ct, "pytorch_half_pixel"))
        return out == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
    return (x + 0.5) / scale - 0.5;
}

static void resize_case(const char *mode, const char *ct, const char *nm, int64_t H, int64_t W, int64_t OH, int64_t OW,
                        bool by_sizes)
{
    th h;
    th_init(&h, 3);
    int64_t xd[4] = {1, 2, H, W}, yd[4] = {1, 2, OH, OW};
    int x = th_tensor(&h, "x", 4, xd), y = th_tensor(&h, "y", 4, yd);
    double sh = (double)OH / H, sw = (double)OW / W;
    float scales[4] = {1, 1, (float)sh, (float)sw};
    int64_t sizes[4] = {1, 2, OH, OW};
    int in[4] = {x, -1, -1, -1};
    if (by_sizes)
        in[3] = th_const_i64(&h, "sizes", 4, sizes);
    else
        in[2] = th_const_f32(&h, "scales", 4, scales);
    if (!by_sizes) {
        sh = scales[2];
        sw = scales[3];
    }
    int n = sh_graph_add_node(h.g, "r", SH_OP_RESIZE, in, 4, &y, 1);
    h.g->nodes[n].opset = 13;
    sh_node_set_string(h.g, n, "mode", mode);
    sh_node_set_string(h.g, n, "coordinate_transformation_mode", ct);
    sh_node_set_string(h.g, n, "nearest_mode", nm);
    assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
    float *xv = th_fill(&h, x);
    assert_int_equal(th_run(&h), 0);
    double *ref = malloc((size_t)(2 * OH * OW) * sizeof(double));
    for (int64_t c = 0; c < 2; c++)
        for (int64_t oy = 0; oy < OH; oy++)
            for (int64_t ox = 0; ox < OW; ox++) {
                double fy = src_coord(ct, oy, sh, H, OH), fx = src_coord(ct, ox, sw, W, OW);
                const float *p = xv + c * H * W;
                double v;
                if (!strcmp(mode, "nearest")) {
                    double ry = !strcmp(nm, "floor") ? floor(fy) : !strcmp(nm, "ceil") ? ceil(fy)
                              : !strcmp(nm, "round_prefer_ceil") ? floor(fy + 0.5) : ceil(fy - 0.5);
                    double rx = !strcmp(nm, "floor") ? floor(fx) : !strcmp(nm, "ceil") ? ceil(fx)
                              : !strcmp(nm, "round_prefer_ceil") ? floor(fx + 0.5) : ceil(fx - 0.5);
                    int64_t iy = (int64_t)fmin(fmax(ry, 0), H - 1), ix = (int64_t)fmin(fmax(rx, 0), W - 1);
                    v = p[iy * W + ix];
                } else {
                    fy = fmin(fmax(fy, 0), H - 1);
                    fx = fmin(fmax(fx, 0), W - 1);
                    int64_t y0 = (int64_t)floor(fy), x0 = (int64_t)floor(fx);
                    int64_t y1 = y0 + 1 < H ? y0 + 1 : H - 1, x1 = x0 + 1 < W ? x0 + 1 : W - 1;
                    double ty = fy - y0, tx = fx - x0;
                    v = (1 - ty) * ((1 - tx) * p[y0 * W + x0] + tx * p[y0 * W + x1]) +
                        ty * ((1 - tx) * p[y1 * W + x0] + tx * p[y1 * W + x1]);
                }
                ref[(c * OH + oy) * OW + ox] = v;
            }
    double e = th_max_err(h.ptr[y], ref, 2 * OH * OW);
    if (e > 1.0)
        fprintf(stderr, "resize %s %s %s %lldx%lld->%lldx%lld: err %g\n", mode, ct, nm, (long long)H, (long long)W,
                (long long)OH, (long long)OW, e);
    assert_true(e <= 1.0);
    free(ref);
    th_free(&h);
}

static void resize_modes(void **state)
{
    const char *cts[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"};
    const char *nms[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    for (int i = 0; i < 4; i++) {
        resize_case("linear", cts[i], "floor", 5, 7, 10, 14, false);     /* 2x up */
        resize_case("linear", cts[i], "floor", 6, 9, 9, 4, true);        /* mixed, by sizes */
        for (int j = 0; j < 4; j++) {
            resize_case("nearest", cts[i], nms[j], 4, 6, 8, 12, false);
            resize_case("nearest", cts[i], nms[j], 7, 5, 3, 11, true);
        }
    }
}

/* ---- MatMul / Gemm ------------------------------------------------------------------------------ */

static void matmul_batched(void **state)
{
    th h;
    th_init(&h, 3);
    int64_t ad[4] = {2, 3, 5, 7}, bd[3] = {3, 7, 70}, yd[4] = {2, 3, 5, 70};
    int a = th_tensor(&h, "a", 4, ad), b = th_tensor(&h, "b", 3, bd), y = th_tensor(&h, "y", 4, yd);
    int ins[2] = {a, b};
    sh_graph_add_node(h.g, "mm", SH_OP_MATMUL, ins, 2, &y, 1);
    assert_int_equal(th_compile(&h, ins, 2, &y, 1), 0);
    float *av = th_fill(&h, a), *bv = th_fill(&h, b);
    assert_int_equal(th_run(&h), 0);
    double *ref = malloc(2 * 3 * 5 * 70 * sizeof(double));
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int m = 0; m < 5; m++)
                for (int n = 0; n < 70; n++) {
                    double s = 0;
                    for (int k = 0; k < 7; k++)
                        s += (double)av[((i * 3 + j) * 5 + m) * 7 + k] * bv[(j * 7 + k) * 70 + n];
                    ref[((i * 3 + j) * 5 + m) * 70 + n] = s;
                }
    assert_true(th_max_err(h.ptr[y], ref, 2 * 3 * 5 * 70) <= 1.0);
    free(ref);
    th_free(&h);
}

static void gemm_variants(void **state)
{
    for (int v = 0; v < 4; v++) {
        th h;
        th_init(&h, 3);
        int ta = v & 1, tb = v >> 1;
        int64_t M = 37, N = 150, K = 19;
        int64_t ad[2] = {ta ? K : M, ta ? M : K}, bd[2] = {tb ? N : K, tb ? K : N}, yd[2] = {M, N};
        int64_t cd[2] = {v == 3 ? M : N, 1};
        int a = th_tensor(&h, "a", 2, ad), y = th_tensor(&h, "y", 2, yd);
        float *bv, *cv;
        int b = th_const_rand(&h, "b", 2, bd, &bv);
        int c = th_const_rand(&h, "c", v == 3 ? 2 : 1, cd, &cv);   /* [N] or [M,1] */
        int ins[3] = {a, b, c};
        int n = sh_graph_add_node(h.g, "g", SH_OP_GEMM, ins, 3, &y, 1);
        sh_node_set_int(h.g, n, "transA", ta);
        sh_node_set_int(h.g, n, "transB", tb);
        sh_node_set_float(h.g, n, "alpha", 0.75f);
        sh_node_set_float(h.g, n, "beta", 1.5f);
        h.g->nodes[n].act = SH_ACT_RELU;
        assert_int_equal(th_compile(&h, &a, 1, &y, 1), 0);
        float *av = th_fill(&h, a);
        assert_int_equal(th_run(&h), 0);
        double *ref = malloc((size_t)(M * N) * sizeof(double));
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += (double)(ta ? av[k * M + i] : av[i * K + k]) * (tb ? bv[j * K + k] : bv[k * N + j]);
                double cc = v == 3 ? cv[i] : cv[j];
                ref[i * N + j] = th_act(0.75 * s + 1.5 * cc, SH_ACT_RELU, 0, 0);
            }
        assert_true(th_max_err(h.ptr[y], ref, M * N) <= 1.0);
        free(ref);
        free(bv);
        free(cv);
        th_free(&h);
    }
}

/* ---- Softmax, binary broadcast ----------------------------------------------------------------- */

static void softmax_both_semantics(void **state)
{
    for (int legacy = 0; legacy < 2; legacy++) {
        th h;
        th_init(&h, 2);
        int64_t d[3] = {3, 4, 5};
        int x = th_tensor(&h, "x", 3, d), y = th_tensor(&h, "y", 3, d);
        int n = sh_graph_add_node(h.g, "s", SH_OP_SOFTMAX, &x, 1, &y, 1);
        h.g->nodes[n].opset = legacy ? 11 : 13;
        sh_node_set_int(h.g, n, "axis", 1);
        assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
        float *xv = th_fill(&h, x);
        for (int i = 0; i < 60; i++)
            xv[i] *= 20.0f;   /* large logits exercise the max subtraction */
        assert_int_equal(th_run(&h), 0);
        double ref[60];
        for (int a = 0; a < 3; a++) {
            if (legacy) {   /* over the flattened [4*5] */
                double mx = -INFINITY, s = 0;
                for (int i = 0; i < 20; i++)
                    mx = fmax(mx, xv[a * 20 + i]);
                for (int i = 0; i < 20; i++)
                    s += exp(xv[a * 20 + i] - mx);
                for (int i = 0; i < 20; i++)
                    ref[a * 20 + i] = exp(xv[a * 20 + i] - mx) / s;
            } else {        /* over axis 1 only */
                for (int c = 0; c < 5; c++) {
                    double mx = -INFINITY, s = 0;
                    for (int b = 0; b < 4; b++)
                        mx = fmax(mx, xv[(a * 4 + b) * 5 + c]);
                    for (int b = 0; b < 4; b++)
                        s += exp(xv[(a * 4 + b) * 5 + c] - mx);
                    for (int b = 0; b < 4; b++)
                        ref[(a * 4 + b) * 5 + c] = exp(xv[(a * 4 + b) * 5 + c] - mx) / s;
                }
            }
        }
        assert_true(th_max_err(h.ptr[y], ref, 60) <= 1.0);
        th_free(&h);
    }
}

static void binary_broadcast(void **state)
{
    sh_op ops[4] = {SH_OP_ADD, SH_OP_SUB, SH_OP_MUL, SH_OP_DIV};
    for (int o = 0; o < 4; o++) {
        th h;
        th_init(&h, 3);
        int64_t ad[4] = {2, 3, 1, 33}, bd[3] = {3, 17, 1}, yd[4] = {2, 3, 17, 33};
        int a = th_tensor(&h, "a", 4, ad), b = th_tensor(&h, "b", 3, bd), y = th_tensor(&h, "y", 4, yd);
        int ins[2] = {a, b};
        sh_graph_add_node(h.g, "op", ops[o], ins, 2, &y, 1);
        assert_int_equal(th_compile(&h, ins, 2, &y, 1), 0);
        float *av = th_fill(&h, a), *bv = th_fill(&h, b);
        assert_int_equal(th_run(&h), 0);
        double *ref = malloc(2 * 3 * 17 * 33 * sizeof(double));
        for (int i = 0; i < 2; i++)
            for (int c = 0; c < 3; c++)
                for (int r = 0; r < 17; r++)
                    for (int q = 0; q < 33; q++) {
                        double x = av[(i * 3 + c) * 33 + q], z = bv[c * 17 + r];
                        ref[((i * 3 + c) * 17 + r) * 33 + q] = o == 0 ? x + z : o == 1 ? x - z : o == 2 ? x * z : x / z;
                    }
        assert_true(th_max_err(h.ptr[y], ref, 2 * 3 * 17 * 33) <= 1.0);
        free(ref);
        th_free(&h);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pools),
        cmocka_unit_test(resize_modes),
        cmocka_unit_test(matmul_batched),
        cmocka_unit_test(gemm_variants),
        cmocka_unit_test(softmax_both_semantics),
        cmocka_unit_test(binary_broadcast),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
