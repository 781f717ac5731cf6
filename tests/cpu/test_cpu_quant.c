/* Quantized CPU kernels beyond the ONNX Runtime cases of tests/conformance/quant:
 * - ConvInteger over random geometries (groups, strides, dilations, asymmetric pads, 1-D,
 *   K above the 256-row exact float step, pixel chunks that cut rows, int8 and uint8 on both
 *   sides, per-channel weight zero points) against a direct int64 convolution;
 * - ConvInteger and QLinearConv with symmetric int8 weights (no weight zero point), the form
 *   that runs on oneDNN's int8 convolution where exactness allows it: the same direct
 *   convolution, plus QLinearConv's requantization (per-channel scales, int32 bias, saturation)
 *   computed here from the int64 sums; on a VNNI machine they, and every single-image case
 *   with uint8 weights (split into w - 128 and a window-sum term), must take the oneDNN path;
 * - the same cases on the float oneDNN path (the bench hook that stands for a machine without
 *   VNNI): every single-image case with K <= 258 takes it, and every case is exact (above 258
 *   the float sums could round, so those take the im2col path);
 * - blocked quantization refused with a message naming node and op;
 * - the MLAS-compatible logistic within its stated bound of the exact function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

#include <oneapi/dnnl/dnnl.h>

#include "harness.h"

typedef struct qconv_case {
    int64_t n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, group;
    sh_dtype xdt, wdt;
    bool per_channel, one_d;
    bool symmetric;   /* int8 weights over their whole range, no weight zero point */
    bool qlinear;     /* QLinearConv with per-channel scales and a bias, else ConvInteger */
} qconv_case;

/* How the CPU backend runs a node, and how it runs convolutions (cpu_backend.c test hooks). */
const char *sh_backend_cpu_node_path(const sh_program *p, int node);
void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl);
/* cpu_conv_impl's CPU_CONV_DNNL_INT8_AS_F32 (backends/cpu/cpu_impl.h) */
#define IMPL_INT8_AS_F32 3
/* K up to which the float path's sums are exact (qconv_dnnl.c) */
#define F32_EXACT_K 258


static int32_t rnd_q(th *h, sh_dtype dt)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    int v = (int)(h->rng >> 56);   /* 0..255 */
    return dt == SH_DT_INT8 ? v - 128 : v;
}

static void put_q(void *p, sh_dtype dt, int64_t i, int32_t v)
{
    if (dt == SH_DT_INT8)
        ((int8_t *)p)[i] = (int8_t)v;
    else
        ((uint8_t *)p)[i] = (uint8_t)v;
}

static int32_t get_q(const void *p, sh_dtype dt, int64_t i)
{
    return dt == SH_DT_INT8 ? ((const int8_t *)p)[i] : ((const uint8_t *)p)[i];
}

static void run_case(const qconv_case *cs, bool as_f32)
{
    th h;
    th_init(&h, 2);
    if (as_f32)
        sh_backend_cpu_set_conv_impl(&h.be, IMPL_INT8_AS_F32);
    int64_t H = cs->one_d ? 1 : cs->h, kh = cs->one_d ? 1 : cs->kh;
    int64_t OH = (H + cs->pt + cs->pb - ((kh - 1) * cs->dh + 1)) / cs->sh + 1;
    int64_t OW = (cs->w + cs->pl + cs->pr - ((cs->kw - 1) * cs->dw + 1)) / cs->sw + 1;
    int64_t cg = cs->c / cs->group, mg = cs->m / cs->group;
    sh_shape xs = cs->one_d ? th_shape(3, (int64_t[]){cs->n, cs->c, cs->w})
                            : th_shape(4, (int64_t[]){cs->n, cs->c, H, cs->w});
    sh_shape ws = cs->one_d ? th_shape(3, (int64_t[]){cs->m, cg, cs->kw})
                            : th_shape(4, (int64_t[]){cs->m, cg, kh, cs->kw});
    sh_shape ys = cs->one_d ? th_shape(3, (int64_t[]){cs->n, cs->m, OW})
                            : th_shape(4, (int64_t[]){cs->n, cs->m, OH, OW});
    sh_shape zs = th_shape(cs->per_channel ? 1 : 0, (int64_t[]){cs->m});
    int x = sh_graph_add_tensor(h.g, "x", cs->xdt, &xs);
    int w = sh_graph_add_tensor(h.g, "w", cs->wdt, &ws);
    int xz = sh_graph_add_tensor(h.g, "xz", cs->xdt, &(sh_shape){0});
    int wz = sh_graph_add_tensor(h.g, "wz", cs->wdt, &zs);
    sh_dtype ydt = cs->qlinear ? cs->xdt : SH_DT_INT32;
    int y = sh_graph_add_tensor(h.g, "y", ydt, &ys);
    int64_t nw = sh_shape_numel(&ws), nx = sh_shape_numel(&xs), ny = sh_shape_numel(&ys);
    uint8_t *wv = malloc((size_t)nw), wzv[256], xzv[1], yzv[1];
    for (int64_t i = 0; i < nw; i++)
        put_q(wv, cs->wdt, i, cs->symmetric ? rnd_q(&h, SH_DT_INT8) | (i % 7 == 0 ? -128 : 0) : rnd_q(&h, cs->wdt));
    for (int64_t i = 0; i < (cs->per_channel ? cs->m : 1); i++)
        put_q(wzv, cs->wdt, i, cs->symmetric ? 0 : rnd_q(&h, cs->wdt));
    put_q(xzv, cs->xdt, 0, rnd_q(&h, cs->xdt));
    put_q(yzv, ydt, 0, cs->qlinear ? rnd_q(&h, ydt) / 4 : 0);
    sh_graph_set_const(h.g, w, wv, (size_t)nw, NULL);
    sh_graph_set_const(h.g, wz, wzv, (size_t)(cs->per_channel ? cs->m : 1), NULL);
    sh_graph_set_const(h.g, xz, xzv, 1, NULL);
    /* QLinearConv: scales that put typical sums a few dozen codes wide, so both rounding and
     * saturation occur; an int32 bias of either sign. */
    float xsv = 0.02f, ysv = 0.9f, wsv[256];
    int32_t bv[256];
    for (int64_t i = 0; i < cs->m; i++) {
        wsv[i] = 0.001f * (float)(1 + rnd_q(&h, SH_DT_UINT8) % 50);
        bv[i] = (rnd_q(&h, SH_DT_INT8) * 37) | 1;
    }
    int k;
    if (cs->qlinear) {
        int xsc = sh_graph_add_tensor(h.g, "xs", SH_DT_FLOAT32, &(sh_shape){0});
        int wsc = sh_graph_add_tensor(h.g, "ws", SH_DT_FLOAT32, &zs);
        int ysc = sh_graph_add_tensor(h.g, "ys", SH_DT_FLOAT32, &(sh_shape){0});
        int yz = sh_graph_add_tensor(h.g, "yz", ydt, &(sh_shape){0});
        sh_shape bs = th_shape(1, (int64_t[]){cs->m});
        int bias = sh_graph_add_tensor(h.g, "b", SH_DT_INT32, &bs);
        sh_graph_set_const(h.g, xsc, &xsv, sizeof xsv, NULL);
        sh_graph_set_const(h.g, wsc, wsv, (size_t)(cs->per_channel ? cs->m : 1) * sizeof(float), NULL);
        sh_graph_set_const(h.g, ysc, &ysv, sizeof ysv, NULL);
        sh_graph_set_const(h.g, yz, yzv, 1, NULL);
        sh_graph_set_const(h.g, bias, bv, (size_t)cs->m * sizeof(int32_t), NULL);
        k = sh_graph_add_node(h.g, "qc", SH_OP_QLINEAR_CONV, (int[]){x, xsc, xz, w, wsc, wz, ysc, yz, bias}, 9, &y,
                              1);
    } else {
        k = sh_graph_add_node(h.g, "ci", SH_OP_CONV_INTEGER, (int[]){x, w, xz, wz}, 4, &y, 1);
    }
    h.g->nodes[k].opset = 10;
    int64_t pads2[4] = {cs->pt, cs->pl, cs->pb, cs->pr}, pads1[2] = {cs->pl, cs->pr};
    sh_node_set_ints(h.g, k, "pads", cs->one_d ? pads1 : pads2, cs->one_d ? 2 : 4);
    sh_node_set_ints(h.g, k, "strides", cs->one_d ? &cs->sw : (int64_t[]){cs->sh, cs->sw}, cs->one_d ? 1 : 2);
    sh_node_set_ints(h.g, k, "dilations", cs->one_d ? &cs->dw : (int64_t[]){cs->dh, cs->dw}, cs->one_d ? 1 : 2);
    sh_node_set_int(h.g, k, "group", cs->group);
    assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
    uint8_t *xv = h.ptr[x];
    for (int64_t i = 0; i < nx; i++)
        put_q(xv, cs->xdt, i, rnd_q(&h, cs->xdt));
    const char *path = sh_backend_cpu_node_path(h.p, k);
    assert_non_null(path);
    bool dnnl_form = cs->symmetric || cs->wdt == SH_DT_UINT8;   /* s8 without zero point, or u8 */
    /* int8 oneDNN, or the float kernel where a probe found it faster and it is exact */
    if (!as_f32 && dnnl_form && cs->n == 1 && dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core_vnni &&
        strncmp(path, "int8 oneDNN", 11) != 0 && strcmp(path, "fp32 oneDNN (exact): probed faster than int8") != 0)
        fail_msg("node runs on '%s', not oneDNN, on a VNNI machine", path);
    int64_t K = cg * kh * cs->kw;
    if (as_f32 && cs->n == 1 && K <= F32_EXACT_K && strncmp(path, "fp32 oneDNN", 11) != 0)
        fail_msg("node runs on '%s', not the float oneDNN path", path);
    if (K > F32_EXACT_K && strncmp(path, "fp32", 4) == 0)
        fail_msg("K %lld > %d runs on '%s', where float sums may round", (long long)K, F32_EXACT_K, path);
    assert_int_equal(th_run(&h), 0);
    const void *out = h.ptr[y];
    int64_t bad = 0;
    int32_t xzero = get_q(xzv, cs->xdt, 0);
    for (int64_t b = 0; b < cs->n; b++)
        for (int64_t oc = 0; oc < cs->m; oc++) {
            int32_t wzero = get_q(wzv, cs->wdt, cs->per_channel ? oc : 0);
            int64_t g = oc / mg;
            for (int64_t oy = 0; oy < (cs->one_d ? 1 : OH); oy++)
                for (int64_t ox = 0; ox < OW; ox++) {
                    int64_t acc = 0;
                    for (int64_t ic = 0; ic < cg; ic++)
                        for (int64_t ky = 0; ky < kh; ky++)
                            for (int64_t kx = 0; kx < cs->kw; kx++) {
                                int64_t iy = oy * cs->sh - cs->pt + ky * cs->dh;
                                int64_t ix = ox * cs->sw - cs->pl + kx * cs->dw;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= cs->w)
                                    continue;
                                int64_t xi = ((b * cs->c + g * cg + ic) * H + iy) * cs->w + ix;
                                int64_t wi = ((oc * cg + ic) * kh + ky) * cs->kw + kx;
                                acc += (int64_t)(get_q(xv, cs->xdt, xi) - xzero) *
                                       (get_q(wv, cs->wdt, wi) - wzero);
                            }
                    int64_t yi = ((b * cs->m + oc) * (cs->one_d ? 1 : OH) + oy) * OW + ox;
                    if (!cs->qlinear) {
                        bad += ((const int32_t *)out)[yi] != acc;
                        continue;
                    }
                    float sc = xsv * wsv[cs->per_channel ? oc : 0] / ysv;
                    double q = (double)rintf((float)(acc + bv[oc]) * sc) + get_q(yzv, ydt, 0);
                    q = q < (ydt == SH_DT_INT8 ? -128 : 0) ? (ydt == SH_DT_INT8 ? -128 : 0) : q;
                    q = q > (ydt == SH_DT_INT8 ? 127 : 255) ? (ydt == SH_DT_INT8 ? 127 : 255) : q;
                    int32_t diff = get_q(out, ydt, yi) - (int32_t)q;
                    bad += diff != 0;
                }
        }
    assert_true(ny > 0);
    if (bad)
        fail_msg("%lld of %lld outputs differ from the direct convolution", (long long)bad, (long long)ny);
    free(wv);
    th_free(&h);
}

static void conv_integer_matches_direct(void **state)
{
    static const qconv_case cases[] = {
        /* n  c   h   w   m  kh kw sh sw dh dw pt pl pb pr group  x  w  per_channel one_d */
        {1, 3, 17, 19, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, SH_DT_UINT8, SH_DT_UINT8, false, false, false, false},
        {2, 40, 13, 23, 6, 3, 3, 1, 1, 1, 1, 1, 0, 2, 1, 1, SH_DT_UINT8, SH_DT_INT8, true, false, false, false},
        {1, 8, 21, 11, 8, 3, 2, 2, 3, 1, 2, 0, 2, 1, 0, 4, SH_DT_INT8, SH_DT_INT8, true, false, false, false},
        {1, 64, 9, 31, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, SH_DT_INT8, SH_DT_UINT8, false, false, false, false},
        {1, 6, 1, 300, 4, 1, 5, 1, 2, 1, 3, 0, 4, 0, 3, 2, SH_DT_UINT8, SH_DT_INT8, true, true, false, false},
        {1, 33, 18, 18, 3, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, SH_DT_UINT8, SH_DT_UINT8, true, false, false, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], false);
        run_case(&cases[i], true);
    }
}

static void symmetric_int8_convs_match_direct(void **state)
{
    static const qconv_case cases[] = {
        /* n  c   h   w   m  kh kw sh sw dh dw pt pl pb pr group  x  w  per_channel one_d symmetric qlinear */
        {1, 3, 17, 19, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 1, SH_DT_UINT8, SH_DT_INT8, false, false, true, false},
        {1, 40, 13, 23, 24, 3, 3, 1, 1, 1, 1, 1, 0, 2, 1, 1, SH_DT_UINT8, SH_DT_INT8, true, false, true, true},
        {1, 16, 21, 11, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 16, SH_DT_INT8, SH_DT_INT8, true, false, true, true},
        {1, 8, 21, 11, 8, 3, 2, 2, 3, 1, 2, 0, 2, 1, 0, 4, SH_DT_INT8, SH_DT_INT8, true, false, true, false},
        {1, 300, 9, 31, 33, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, SH_DT_UINT8, SH_DT_INT8, true, false, true, true},
        {1, 64, 20, 20, 32, 3, 3, 1, 1, 2, 2, 2, 2, 2, 2, 1, SH_DT_INT8, SH_DT_INT8, false, false, true, true},
        {1, 6, 1, 300, 4, 1, 5, 1, 2, 1, 3, 0, 4, 0, 3, 2, SH_DT_UINT8, SH_DT_INT8, true, true, true, false},
        {2, 5, 7, 9, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, SH_DT_UINT8, SH_DT_INT8, true, false, true, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_case(&cases[i], false);
        run_case(&cases[i], true);
    }
    (void)state;
}

static void blocked_quantization_is_refused(void **state)
{
    th h;
    th_init(&h, 1);
    int x = th_tensor(&h, "x", 2, (int64_t[]){4, 6});
    int s = sh_graph_add_tensor(h.g, "s", SH_DT_FLOAT32, &(sh_shape){2, {4, 3}});
    float sv[12];
    for (int i = 0; i < 12; i++)
        sv[i] = 0.1f;
    sh_graph_set_const(h.g, s, sv, sizeof sv, NULL);
    int y = sh_graph_add_tensor(h.g, "y", SH_DT_UINT8, &(sh_shape){2, {4, 6}});
    int k = sh_graph_add_node(h.g, "q", SH_OP_QUANTIZE_LINEAR, (int[]){x, s}, 2, &y, 1);
    h.g->nodes[k].opset = 21;
    sh_node_set_int(h.g, k, "block_size", 2);
    sh_graph_set_inputs(h.g, &x, 1);
    sh_graph_set_outputs(h.g, &y, 1);
    h.g->tensors[x].is_input = true;
    h.g->tensors[y].is_output = true;
    sh_err err = {0};
    assert_int_equal(sh_graph_finalize(h.g, &err), 0);
    sh_program *p = NULL;
    assert_int_equal(h.be.iface->compile(h.be.ctx, h.g, &p, &err), SHOAL_ERR_UNSUPPORTED);
    assert_null(p);
    assert_non_null(strstr(err.msg, "node q (QuantizeLinear)"));
    assert_non_null(strstr(err.msg, "blocked quantization"));
    th_free(&h);
}

#include "backends/cpu/cpu_impl.h"

static void logistic_within_bound(void **state)
{
    double worst = 0;
    for (int i = -200000; i <= 200000; i++) {
        float x = (float)i * 1e-4f;
        double e = fabs((double)cpu_logistic(x) - 1.0 / (1.0 + exp(-(double)x)));
        worst = e > worst ? e : worst;
    }
    assert_true(worst <= 2.4e-7);
    assert_true(cpu_logistic(-100.0f) >= 0.0f && cpu_logistic(-100.0f) < 1e-7f);
    assert_true(cpu_logistic(100.0f) <= 1.0f && cpu_logistic(100.0f) > 1.0f - 1e-6f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(conv_integer_matches_direct),
        cmocka_unit_test(symmetric_int8_convs_match_direct),
        cmocka_unit_test(blocked_quantization_is_refused),
        cmocka_unit_test(logistic_within_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
