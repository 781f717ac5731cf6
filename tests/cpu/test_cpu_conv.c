/* Conv / ConvTranspose kernels against direct-loop references: groups, depthwise (with
 * multiplier), pointwise, strides, dilations, asymmetric pads, auto_pad, 1-D/3-D, fused
 * activations. Outputs and workspaces are poisoned before every run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include "harness.h"

typedef struct conv_case {
    int nsp;
    int64_t N, C, M, G;
    int64_t in[3], k[3], s[3], d[3], pb[3], pe[3];
    bool bias;
    sh_act act;
    float a, b;
    const char *auto_pad;      /* NULL: explicit pads */
    bool transpose;
    int64_t opad[3];
} conv_case;

static int64_t conv_out(const conv_case *c, int i)
{
    int64_t ext = (c->k[i] - 1) * c->d[i] + 1;
    if (c->transpose)
        return c->s[i] * (c->in[i] - 1) + c->opad[i] + ext - c->pb[i] - c->pe[i];
    return (c->in[i] + c->pb[i] + c->pe[i] - ext) / c->s[i] + 1;
}

/* Direct conv over (up to) 3 spatial dims; unit dims are appended for 1-D/2-D. */
static void ref_conv(const conv_case *c, const float *x, const float *w, const float *bias, double *y)
{
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, pb[3] = {0}, out[3] = {1, 1, 1};
    for (int i = 0; i < c->nsp; i++) {
        in[i] = c->in[i];
        k[i] = c->k[i];
        s[i] = c->s[i];
        d[i] = c->d[i];
        pb[i] = c->pb[i];
        out[i] = conv_out(c, i);
    }
    int64_t Cg = c->C / c->G, Mg = c->M / c->G, P = out[0] * out[1] * out[2], Pin = in[0] * in[1] * in[2];
    int64_t K = k[0] * k[1] * k[2];
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t m = 0; m < c->M; m++) {
            int64_t g = m / Mg;
            for (int64_t o0 = 0; o0 < out[0]; o0++)
                for (int64_t o1 = 0; o1 < out[1]; o1++)
                    for (int64_t o2 = 0; o2 < out[2]; o2++) {
                        double acc = bias ? bias[m] : 0.0;
                        for (int64_t ci = 0; ci < Cg; ci++)
                            for (int64_t a = 0; a < k[0]; a++)
                                for (int64_t b = 0; b < k[1]; b++)
                                    for (int64_t e = 0; e < k[2]; e++) {
                                        int64_t i0 = o0 * s[0] - pb[0] + a * d[0];
                                        int64_t i1 = o1 * s[1] - pb[1] + b * d[1];
                                        int64_t i2 = o2 * s[2] - pb[2] + e * d[2];
                                        if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 || i2 >= in[2])
                                            continue;
                                        double xv = x[(n * c->C + g * Cg + ci) * Pin + (i0 * in[1] + i1) * in[2] + i2];
                                        double wv = w[(m * Cg + ci) * K + (a * k[1] + b) * k[2] + e];
                                        acc += xv * wv;
                                    }
                        y[(n * c->M + m) * P + (o0 * out[1] + o1) * out[2] + o2] = th_act(acc, c->act, c->a, c->b);
                    }
        }
}

/* Direct transposed conv: every input pixel scatters its kernel footprint. */
static void ref_convt(const conv_case *c, const float *x, const float *w, const float *bias, double *y)
{
    int64_t in[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1}, pb[3] = {0}, out[3] = {1, 1, 1};
    for (int i = 0; i < c->nsp; i++) {
        in[i] = c->in[i];
        k[i] = c->k[i];
        s[i] = c->s[i];
        d[i] = c->d[i];
        pb[i] = c->pb[i];
        out[i] = conv_out(c, i);
    }
    int64_t Cg = c->C / c->G, Mg = c->M / c->G, P = out[0] * out[1] * out[2], Pin = in[0] * in[1] * in[2];
    int64_t K = k[0] * k[1] * k[2];
    for (int64_t i = 0; i < c->N * c->M * P; i++)
        y[i] = bias ? bias[(i / P) % c->M] : 0.0;
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t ci = 0; ci < c->C; ci++) {
            int64_t g = ci / Cg;
            for (int64_t p = 0; p < Pin; p++) {
                int64_t i0 = p / (in[1] * in[2]), i1 = p / in[2] % in[1], i2 = p % in[2];
                double xv = x[(n * c->C + ci) * Pin + p];
                for (int64_t mo = 0; mo < Mg; mo++)
                    for (int64_t kk = 0; kk < K; kk++) {
                        int64_t a = kk / (k[1] * k[2]), b = kk / k[2] % k[1], e = kk % k[2];
                        int64_t o0 = i0 * s[0] - pb[0] + a * d[0], o1 = i1 * s[1] - pb[1] + b * d[1],
                                o2 = i2 * s[2] - pb[2] + e * d[2];
                        if (o0 < 0 || o0 >= out[0] || o1 < 0 || o1 >= out[1] || o2 < 0 || o2 >= out[2])
                            continue;
                        int64_t m = g * Mg + mo;
                        y[(n * c->M + m) * P + (o0 * out[1] + o1) * out[2] + o2] +=
                            xv * w[(ci * Mg + mo) * K + kk];
                    }
            }
        }
    for (int64_t i = 0; i < c->N * c->M * P; i++)
        y[i] = th_act(y[i], c->act, c->a, c->b);
}

static void run_case(const conv_case *c, int threads)
{
    th h;
    th_init(&h, threads);
    int64_t xd[5] = {c->N, c->C}, wd[5], yd[5] = {c->N, c->M};
    if (c->transpose) {
        wd[0] = c->C;
        wd[1] = c->M / c->G;
    } else {
        wd[0] = c->M;
        wd[1] = c->C / c->G;
    }
    for (int i = 0; i < c->nsp; i++) {
        xd[2 + i] = c->in[i];
        wd[2 + i] = c->k[i];
        yd[2 + i] = conv_out(c, i);
    }
    int x = th_tensor(&h, "x", 2 + c->nsp, xd);
    float *wv, *bv = NULL;
    int w = th_const_rand(&h, "w", 2 + c->nsp, wd, &wv);
    int64_t bd[1] = {c->M};
    int b = c->bias ? th_const_rand(&h, "b", 1, bd, &bv) : -1;
    int y = th_tensor(&h, "y", 2 + c->nsp, yd);
    int ins[3] = {x, w, b};
    int node = sh_graph_add_node(h.g, "conv", c->transpose ? SH_OP_CONV_TRANSPOSE : SH_OP_CONV, ins,
                                 c->bias ? 3 : 2, &y, 1);
    h.g->nodes[node].opset = 11;
    int64_t v[6];
    for (int i = 0; i < c->nsp; i++)
        v[i] = c->k[i];
    sh_node_set_ints(h.g, node, "kernel_shape", v, c->nsp);
    for (int i = 0; i < c->nsp; i++)
        v[i] = c->s[i];
    sh_node_set_ints(h.g, node, "strides", v, c->nsp);
    for (int i = 0; i < c->nsp; i++)
        v[i] = c->d[i];
    sh_node_set_ints(h.g, node, "dilations", v, c->nsp);
    if (c->auto_pad) {
        sh_node_set_string(h.g, node, "auto_pad", c->auto_pad);
    } else {
        for (int i = 0; i < c->nsp; i++) {
            v[i] = c->pb[i];
            v[i + c->nsp] = c->pe[i];
        }
        sh_node_set_ints(h.g, node, "pads", v, 2 * c->nsp);
    }
    if (c->transpose) {
        for (int i = 0; i < c->nsp; i++)
            v[i] = c->opad[i];
        sh_node_set_ints(h.g, node, "output_padding", v, c->nsp);
    }
    sh_node_set_int(h.g, node, "group", c->G);
    h.g->nodes[node].act = c->act;
    h.g->nodes[node].act_a = c->a;
    h.g->nodes[node].act_b = c->b;
    assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
    float *xv = th_fill(&h, x);
    assert_int_equal(th_run(&h), 0);
    int64_t ny = sh_shape_numel(&h.g->tensors[y].shape);
    double *ref = malloc((size_t)ny * sizeof(double));
    if (c->transpose)
        ref_convt(c, xv, wv, bv, ref);
    else
        ref_conv(c, xv, wv, bv, ref);
    double e = th_max_err(h.ptr[y], ref, ny);
    if (e > 1.0)
        fprintf(stderr, "case nsp=%d C=%lld M=%lld G=%lld k=%lld s=%lld d=%lld: err %g\n", c->nsp, (long long)c->C,
                (long long)c->M, (long long)c->G, (long long)c->k[0], (long long)c->s[0], (long long)c->d[0], e);
    assert_true(e <= 1.0);
    free(ref);
    free(wv);
    free(bv);
    th_free(&h);
}

static void conv2d_variants(void **state)
{
    conv_case cases[] = {
        /* generic 3x3, pad 1 */
        {2, 2, 4, 6, 1, {9, 7}, {3, 3}, {1, 1}, {1, 1}, {1, 1}, {1, 1}, true, SH_ACT_NONE},
        /* strided, asymmetric pads, rectangular kernel */
        {2, 1, 3, 5, 1, {10, 8}, {3, 2}, {2, 3}, {1, 1}, {0, 1}, {2, 0}, true, SH_ACT_RELU},
        /* dilated + groups */
        {2, 2, 6, 4, 2, {11, 9}, {3, 3}, {1, 2}, {2, 2}, {2, 1}, {2, 1}, false, SH_ACT_SILU},
        /* pointwise (direct GEMM, no im2col) */
        {2, 1, 16, 8, 1, {13, 11}, {1, 1}, {1, 1}, {1, 1}, {0, 0}, {0, 0}, true, SH_ACT_HARD_SWISH},
        /* pointwise strided (im2col path) */
        {2, 1, 8, 8, 1, {13, 11}, {1, 1}, {2, 2}, {1, 1}, {0, 0}, {0, 0}, true, SH_ACT_SIGMOID},
        /* depthwise 3x3, stride 2 */
        {2, 2, 8, 8, 8, {15, 12}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, true, SH_ACT_CLIP, 0.0f, 6.0f},
        /* depthwise with multiplier 2, 5x5, dilation 2 */
        {2, 1, 4, 8, 4, {12, 12}, {5, 5}, {1, 1}, {2, 2}, {4, 3}, {4, 5}, true, SH_ACT_HARD_SIGMOID, 0.2f, 0.5f},
        /* depthwise stride 2 with odd/asymmetric pads */
        {2, 1, 5, 5, 5, {9, 10}, {3, 3}, {2, 2}, {1, 1}, {0, 1}, {1, 0}, false, SH_ACT_NONE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], 3);
        run_case(&cases[i], 1);
    }
}

static void conv_auto_pad(void **state)
{
    /* SAME_UPPER / SAME_LOWER with stride 2 on odd sizes: pads differ at begin and end. */
    conv_case c = {2, 1, 3, 4, 1, {9, 8}, {3, 4}, {2, 2}, {1, 1}, {0}, {0}, true, SH_ACT_NONE, 0, 0, "SAME_UPPER"};
    for (int lower = 0; lower < 2; lower++) {
        c.auto_pad = lower ? "SAME_LOWER" : "SAME_UPPER";
        for (int i = 0; i < 2; i++) {
            int64_t out = (c.in[i] + c.s[i] - 1) / c.s[i];
            int64_t total = (out - 1) * c.s[i] + c.k[i] - c.in[i];
            c.pb[i] = lower ? total - total / 2 : total / 2;
            c.pe[i] = total - c.pb[i];
        }
        run_case(&c, 2);
    }
}

static void conv_1d_3d(void **state)
{
    conv_case c1 = {1, 2, 4, 6, 2, {17}, {3}, {2}, {2}, {2}, {1}, true, SH_ACT_RELU};
    conv_case c3 = {3, 1, 3, 4, 1, {5, 6, 7}, {2, 3, 2}, {1, 2, 1}, {2, 1, 1}, {1, 0, 1}, {0, 1, 1}, true, SH_ACT_NONE};
    conv_case dw1 = {1, 2, 4, 4, 4, {16}, {5}, {1}, {1}, {2}, {2}, false, SH_ACT_NONE};
    run_case(&c1, 2);
    run_case(&c3, 2);
    run_case(&dw1, 2);
}

static void conv_transpose_variants(void **state)
{
    conv_case cases[] = {
        {2, 2, 4, 6, 1, {5, 4}, {3, 3}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, true, SH_ACT_NONE, 0, 0, NULL, true, {1, 1}},
        {2, 1, 4, 6, 2, {4, 5}, {3, 2}, {3, 2}, {2, 1}, {0, 1}, {2, 0}, false, SH_ACT_RELU, 0, 0, NULL, true, {0, 1}},
        {1, 1, 3, 2, 1, {7}, {4}, {2}, {1}, {1}, {1}, true, SH_ACT_SIGMOID, 0, 0, NULL, true, {0}},
        {2, 1, 4, 4, 4, {6, 6}, {4, 4}, {2, 2}, {1, 1}, {1, 1}, {1, 1}, true, SH_ACT_NONE, 0, 0, NULL, true, {0, 0}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv2d_variants),
        cmocka_unit_test(conv_auto_pad),
        cmocka_unit_test(conv_1d_3d),
        cmocka_unit_test(conv_transpose_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
