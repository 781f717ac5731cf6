/* The own NHWC implicit-GEMM conv (backends/cpu/igemm.h) against a direct convolution in double
 * on random data: 1x1, 3x3 stride 1 and 2, 5x5, 7x7 stride 2 with padding 3, dilation,
 * asymmetric padding (the right and bottom padding only implied by the output size), maps whose
 * pixel count leaves a partial block and a partial register tile, three input channels (the
 * RGB layer), output channels that leave an 8-wide weight panel, with and without a bias, the
 * fused activations (each the same bits as the activation pass applied to the plain result);
 * outputs poisoned before each run. Relative L2 error under 1e-5 and every
 * element within 1e-4 of the output's scale. Shapes the path does not take are refused by
 * cpu_igemm_init. Through the backend: a graph of a 3x3 stride-2 conv and a 1x1 conv (NCHW
 * graph input and output, NHWC between them) compiled with the path forced on
 * (shoal_tuning.cpu_igemm) runs both convs on it, as the node descriptions say, and gives the
 * oneDNN kernels' outputs within the same bounds. Tuning values outside -1..1 are refused. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/igemm.h"
#include "core/alloc.h"
#include "conv_check.h"

/* x NHWC, w OIHW, y NHWC [OH][OW][K]. */
static void direct(const cpu_igemm_geom *g, const float *x, const float *w, const float *bias, sh_act act, double *y)
{
    for (int64_t oy = 0; oy < g->OH; oy++)
        for (int64_t ox = 0; ox < g->OW; ox++)
            for (int64_t k = 0; k < g->K; k++) {
                double s = bias ? bias[k] : 0.0;
                for (int64_t i = 0; i < g->kh; i++)
                    for (int64_t j = 0; j < g->kw; j++) {
                        int64_t iy = oy * g->sh - g->pad_top + i * g->dh, ix = ox * g->sw - g->pad_left + j * g->dw;
                        if (iy < 0 || iy >= g->H || ix < 0 || ix >= g->W)
                            continue;
                        for (int64_t c = 0; c < g->C; c++)
                            s += (double)x[(iy * g->W + ix) * g->C + c] * w[((k * g->C + c) * g->kh + i) * g->kw + j];
                    }
                y[(oy * g->OW + ox) * g->K + k] = cc_act_ref(s, act);
            }
}

/* An output size from ONNX's formula with symmetric padding `pad`, unless extra_end asks for
 * one more row and column (padding on the far side only). */
static cpu_igemm_geom geom(int64_t H, int64_t W, int64_t C, int64_t K, int64_t k, int64_t s, int64_t d, int64_t pad,
                           int extra_end)
{
    int64_t ext = (k - 1) * d + 1;
    cpu_igemm_geom g = {.H = H, .W = W, .C = C, .K = K, .kh = k, .kw = k, .sh = s, .sw = s, .dh = d, .dw = d,
                        .pad_top = pad, .pad_left = pad};
    g.OH = (H + 2 * pad - ext) / s + 1 + extra_end;
    g.OW = (W + 2 * pad - ext) / s + 1 + extra_end;
    return g;
}

static void check_case(cpu_igemm_geom g, bool with_bias, sh_act act, int threads)
{
    sh_allocator *a = sh_allocator_create();
    cpu_pool *pool = NULL;
    assert_int_equal(cpu_pool_create(a, threads, 0, &pool), 0);
    cpu_igemm cg;
    assert_true(cpu_igemm_init(&cg, &g, act, 0.0f, 0.0f));
    size_t nx = (size_t)(g.H * g.W * g.C), ny = (size_t)(g.OH * g.OW * g.K), nw = (size_t)(g.K * g.C * g.kh * g.kw);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *bias = malloc((size_t)g.K * sizeof *bias);
    float *y = malloc(ny * sizeof *y), *packed = malloc(cpu_igemm_weight_bytes(&cg));
    char *scratch = malloc(cpu_igemm_scratch_bytes(&cg, cpu_pool_threads(pool)));
    double *ref = malloc(ny * sizeof *ref);
    assert_true(x && w && bias && y && packed && scratch && ref);
    for (size_t i = 0; i < nx; i++)
        x[i] = cc_frand();
    for (size_t i = 0; i < nw; i++)
        w[i] = cc_frand() * 0.3f;
    for (int64_t i = 0; i < g.K; i++)
        bias[i] = cc_frand();
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    cpu_igemm_pack(w, &cg, packed);
    cpu_igemm_run(&cg, pool, x, packed, with_bias ? bias : NULL, y, scratch);
    direct(&g, x, w, with_bias ? bias : NULL, act, ref);
    char what[96];
    snprintf(what, sizeof what, "%lldx%lld C%lld K%lld k%lld s%lld act %d", (long long)g.H, (long long)g.W,
             (long long)g.C, (long long)g.K, (long long)g.kh, (long long)g.sh, (int)act);
    cc_expect_close(y, ref, ny, 1.0, what);
    free(x), free(w), free(bias), free(y), free(packed), free(scratch), free(ref);
    cpu_pool_destroy(pool);
    sh_allocator_destroy(a);
}

static void pointwise(void **state)
{
    (void)state;
    check_case(geom(8, 8, 16, 16, 1, 1, 1, 0, 0), true, SH_ACT_NONE, 2);
    check_case(geom(7, 9, 40, 24, 1, 1, 1, 0, 0), true, SH_ACT_NONE, 2);   /* 63 pixels, 8-wide panel */
    check_case(geom(1, 1, 8, 8, 1, 1, 1, 0, 0), false, SH_ACT_NONE, 3);
    check_case(geom(13, 11, 5, 32, 1, 2, 1, 0, 0), true, SH_ACT_NONE, 2);  /* stride 2 */
}

static void strided_and_padded(void **state)
{
    (void)state;
    check_case(geom(16, 16, 16, 32, 3, 2, 1, 1, 0), true, SH_ACT_NONE, 2);
    check_case(geom(17, 15, 24, 40, 3, 2, 1, 1, 0), true, SH_ACT_NONE, 2);
    check_case(geom(20, 20, 3, 16, 3, 2, 1, 1, 0), true, SH_ACT_NONE, 2);  /* RGB in */
    check_case(geom(21, 19, 8, 16, 3, 1, 1, 1, 0), false, SH_ACT_NONE, 4);
    check_case(geom(12, 12, 8, 8, 5, 1, 1, 2, 0), true, SH_ACT_NONE, 2);
    check_case(geom(23, 23, 3, 24, 7, 2, 1, 3, 0), true, SH_ACT_NONE, 2);
    check_case(geom(14, 14, 8, 16, 3, 1, 2, 2, 0), true, SH_ACT_NONE, 2);  /* dilation 2 */
    check_case(geom(10, 10, 8, 16, 3, 2, 1, 0, 1), true, SH_ACT_NONE, 2);  /* padding at the end only */
    check_case(geom(1, 1, 8, 16, 3, 1, 1, 1, 0), true, SH_ACT_NONE, 1);
}

static void activations(void **state)
{
    (void)state;
    check_case(geom(10, 12, 16, 16, 3, 2, 1, 1, 0), true, SH_ACT_SILU, 2);
    check_case(geom(10, 12, 16, 16, 1, 1, 1, 0, 0), true, SH_ACT_RELU, 2);
    check_case(geom(9, 7, 8, 24, 3, 1, 1, 1, 0), false, SH_ACT_SIGMOID, 2);
}

/* y from one run of the path on fixed data (the generator restarted), poisoned first. */
static float *run_once(const cpu_igemm_geom *g, sh_act act, size_t *ny)
{
    sh_allocator *a = sh_allocator_create();
    cpu_pool *pool = NULL;
    assert_int_equal(cpu_pool_create(a, 2, 0, &pool), 0);
    cpu_igemm cg;
    assert_true(cpu_igemm_init(&cg, g, act, 0.0f, 0.0f));
    size_t nx = (size_t)(g->H * g->W * g->C), nw = (size_t)(g->K * g->C * g->kh * g->kw);
    *ny = (size_t)(g->OH * g->OW * g->K);
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *bias = malloc((size_t)g->K * sizeof *bias);
    float *y = malloc(*ny * sizeof *y), *packed = malloc(cpu_igemm_weight_bytes(&cg));
    char *scratch = malloc(cpu_igemm_scratch_bytes(&cg, cpu_pool_threads(pool)));
    assert_true(x && w && bias && y && packed && scratch);
    cc_rng = 12345u;
    for (size_t i = 0; i < nx; i++)
        x[i] = 4.0f * cc_frand();
    for (size_t i = 0; i < nw; i++)
        w[i] = cc_frand();
    for (int64_t i = 0; i < g->K; i++)
        bias[i] = cc_frand();
    memset(y, 0xff, *ny * sizeof *y);
    cpu_igemm_pack(w, &cg, packed);
    cpu_igemm_run(&cg, pool, x, packed, bias, y, scratch);
    free(x), free(w), free(bias), free(packed), free(scratch);
    cpu_pool_destroy(pool);
    sh_allocator_destroy(a);
    return y;
}

static void fused_activations_match_the_pass(void **state)
{
    (void)state;
    const sh_act acts[] = {SH_ACT_RELU, SH_ACT_SIGMOID, SH_ACT_SILU};
    cpu_igemm_geom g = geom(11, 13, 24, 40, 3, 1, 1, 1, 0);   /* includes an 8-wide panel, an edge tile */
    for (size_t k = 0; k < sizeof acts / sizeof acts[0]; k++) {
        size_t n0, n1;
        float *plain = run_once(&g, SH_ACT_NONE, &n0), *fused = run_once(&g, acts[k], &n1);
        assert_int_equal(n0, n1);
        cpu_apply_act(plain, (int64_t)n0, acts[k], 0.0f, 0.0f);
        for (size_t i = 0; i < n0; i++)
            if (memcmp(&plain[i], &fused[i], sizeof(float)) != 0)
                fail_msg("act %d, y[%zu]: fused %.9g, pass %.9g", (int)acts[k], i, (double)fused[i], (double)plain[i]);
        free(plain);
        free(fused);
    }
}

static void refuses_other_shapes(void **state)
{
    (void)state;
    cpu_igemm cg;
    cpu_igemm_geom g = geom(8, 8, 16, 12, 3, 1, 1, 1, 0);   /* K not a multiple of 8 */
    assert_false(cpu_igemm_init(&cg, &g, SH_ACT_NONE, 0, 0));
    g = geom(8, 8, 16, 16, 3, 1, 1, 1, 0);
    g.H = 0;
    assert_false(cpu_igemm_init(&cg, &g, SH_ACT_NONE, 0, 0));
    g = geom(16, 16, 8, 16, 9, 1, 1, 4, 0);                 /* 81 taps */
    assert_false(cpu_igemm_init(&cg, &g, SH_ACT_NONE, 0, 0));
}

/* A 3x3 stride-2 conv and a 1x1 conv, NHWC between them. */
static int two_convs(th *h, int x)
{
    int y1 = th_conv(h, "c1", x, 16, 24, 3, 2, 47, SH_ACT_SILU);
    return th_conv(h, "c2", y1, 24, 32, 1, 1, 24, SH_ACT_NONE);
}

static void through_the_backend(void **state)
{
    (void)state;
    const int64_t xd[4] = {1, 16, 47, 47};
    shoal_tuning on = {.cpu_igemm = 1, .cpu_winograd = -1}, off = {.cpu_igemm = -1, .cpu_winograd = -1};
    cc_expect_same_as_off(&on, &off, xd, two_convs, "own igemm", 2);
}

/* Values outside what shoal.h lists are refused when the backend is made, naming the field. */
static void refuses_bad_tuning(void **state)
{
    (void)state;
    const shoal_tuning bad[] = {{.cpu_igemm = 2}, {.cpu_winograd = -2}, {.cpu_pool_spin_us = -5}};
    const char *names[] = {"tuning.cpu_igemm 2", "tuning.cpu_winograd -2", "tuning.cpu_pool_spin_us -5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_allocator *a = sh_allocator_create();
        sh_backend_params bp = {.alloc = a, .n_threads = 1, .tuning = bad[i]};
        sh_backend be;
        sh_err err = {0};
        assert_int_equal(sh_backend_cpu_create(&bp, &be, &err), SHOAL_ERR_INVALID_ARG);
        if (!strstr(err.msg, names[i]))
            fail_msg("message '%s' does not name '%s'", err.msg, names[i]);
        sh_allocator_destroy(a);
    }
}

int main(void)
{
    if (!cpu_fma_tiles_ok()) {
        printf("skipped: this CPU lacks AVX2 or FMA, which the own conv kernels need\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pointwise),
        cmocka_unit_test(strided_and_padded),
        cmocka_unit_test(activations),
        cmocka_unit_test(fused_activations_match_the_pass),
        cmocka_unit_test(refuses_other_shapes),
        cmocka_unit_test(through_the_backend),
        cmocka_unit_test(refuses_bad_tuning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
