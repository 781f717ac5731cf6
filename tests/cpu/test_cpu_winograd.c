/* Winograd F(2x2, 3x3) (backends/cpu/winograd.h) against a direct convolution in double on
 * random data: odd and even sizes (tiles cut by the right and bottom edges), one-pixel images,
 * channel counts that leave an 8-wide weight panel, blocks of tiles that end mid-row, with and
 * without a bias, every activation the conv path fuses; outputs poisoned before each run.
 * Relative L2 error under 1e-5 and every element within 1e-4 of the output's scale. Shapes the
 * path does not take are refused by cpu_wino_init. Through the backend: a graph of two 3x3
 * convs at 48x48 (NCHW graph input and output, NHWC between them) compiled with the Winograd
 * path forced on (shoal_tuning.cpu_winograd) runs both convs on it, as the node description
 * says, and gives the oneDNN direct kernels' outputs within the same bounds. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/cpu_report.h"
#include "backends/cpu/winograd.h"
#include "core/alloc.h"
#include "harness.h"

static uint32_t rng = 2463534242u;

static float frand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return (float)(rng >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static double act_ref(double v, sh_act act)
{
    switch (act) {
    case SH_ACT_RELU: return v > 0 ? v : 0;
    case SH_ACT_SILU: return v / (1.0 + exp(-v));
    case SH_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    default: return v;
    }
}

/* x NHWC [H][W][C], w OIHW [K][C][3][3], y NHWC [H][W][K]; padding 1. */
static void direct(const float *x, const float *w, const float *bias, int H, int W, int C, int K, sh_act act,
                   double *y)
{
    for (int oy = 0; oy < H; oy++)
        for (int ox = 0; ox < W; ox++)
            for (int k = 0; k < K; k++) {
                double s = bias ? bias[k] : 0.0;
                for (int i = 0; i < 3; i++)
                    for (int j = 0; j < 3; j++) {
                        int iy = oy - 1 + i, ix = ox - 1 + j;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W)
                            continue;
                        for (int c = 0; c < C; c++)
                            s += (double)x[(iy * W + ix) * C + c] * w[((k * C + c) * 3 + i) * 3 + j];
                    }
                y[(oy * W + ox) * K + k] = act_ref(s, act);
            }
}

static void check_case(int H, int W, int C, int K, bool with_bias, sh_act act, int threads)
{
    sh_allocator *a = sh_allocator_create();
    cpu_pool *pool = NULL;
    assert_int_equal(cpu_pool_create(a, threads, 0, &pool), 0);
    cpu_wino wg;
    assert_true(cpu_wino_init(&wg, H, W, C, K, act, 0.0f, 0.0f));
    size_t nx = (size_t)H * W * C, ny = (size_t)H * W * K, nw = (size_t)K * C * 9;
    float *x = malloc(nx * sizeof *x), *w = malloc(nw * sizeof *w), *bias = malloc((size_t)K * sizeof *bias);
    float *y = malloc(ny * sizeof *y), *packed = malloc(cpu_wino_weight_bytes(&wg));
    char *scratch = malloc(cpu_wino_scratch_bytes(&wg, cpu_pool_threads(pool)));
    double *ref = malloc(ny * sizeof *ref);
    assert_true(x && w && bias && y && packed && scratch && ref);
    for (size_t i = 0; i < nx; i++)
        x[i] = frand();
    for (size_t i = 0; i < nw; i++)
        w[i] = frand() * 0.3f;
    for (int i = 0; i < K; i++)
        bias[i] = frand();
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    cpu_wino_pack(w, &wg, packed);
    cpu_wino_run(&wg, pool, x, packed, with_bias ? bias : NULL, y, scratch);
    direct(x, w, with_bias ? bias : NULL, H, W, C, K, act, ref);
    double err = 0, norm = 0, scale = 0;
    for (size_t i = 0; i < ny; i++) {
        norm += ref[i] * ref[i];
        scale = fmax(scale, fabs(ref[i]));
    }
    for (size_t i = 0; i < ny; i++) {
        double d = (double)y[i] - ref[i];
        if (!(fabs(d) <= 1e-4 * (scale > 1 ? scale : 1)))
            fail_msg("H%d W%d C%d K%d act %d: y[%zu] = %g, direct %g", H, W, C, K, (int)act, i, (double)y[i], ref[i]);
        err += d * d;
    }
    if (!(sqrt(err / (norm > 0 ? norm : 1)) < 1e-5))
        fail_msg("H%d W%d C%d K%d: relative L2 %g", H, W, C, K, sqrt(err / norm));
    free(x), free(w), free(bias), free(y), free(packed), free(scratch), free(ref);
    cpu_pool_destroy(pool);
    sh_allocator_destroy(a);
}

static void even_and_odd_sizes(void **state)
{
    (void)state;
    check_case(8, 8, 16, 16, true, SH_ACT_NONE, 2);
    check_case(7, 9, 8, 32, true, SH_ACT_NONE, 2);
    check_case(13, 5, 24, 16, false, SH_ACT_NONE, 3);
    check_case(1, 1, 8, 8, true, SH_ACT_NONE, 2);
    check_case(1, 11, 8, 16, true, SH_ACT_NONE, 1);
}

/* 24 and 40 output channels leave an 8-wide last panel; 31x29 gives 240 tiles, 7.5 blocks. */
static void narrow_panels_and_partial_blocks(void **state)
{
    (void)state;
    check_case(31, 29, 16, 24, true, SH_ACT_NONE, 2);
    check_case(20, 20, 32, 40, true, SH_ACT_NONE, 2);
    check_case(40, 40, 64, 64, true, SH_ACT_NONE, 4);
}

static void activations(void **state)
{
    (void)state;
    check_case(10, 12, 16, 16, true, SH_ACT_SILU, 2);
    check_case(10, 12, 16, 16, true, SH_ACT_RELU, 2);
    check_case(9, 7, 8, 24, false, SH_ACT_SIGMOID, 2);
}

static void refuses_other_shapes(void **state)
{
    (void)state;
    cpu_wino wg;
    assert_false(cpu_wino_init(&wg, 8, 8, 12, 16, SH_ACT_NONE, 0, 0));   /* C not a multiple of 8 */
    assert_false(cpu_wino_init(&wg, 8, 8, 16, 4, SH_ACT_NONE, 0, 0));    /* K below 8 */
    assert_false(cpu_wino_init(&wg, 0, 8, 16, 16, SH_ACT_NONE, 0, 0));   /* empty image */
}

/* The two-conv graph's output with the Winograd path on (1) or off (-1); *winograd counts the
 * convs whose description names it. */
static float *run_two_convs(int winograd, int64_t *n_out, int *winograd_convs)
{
    shoal_tuning tuning = {.cpu_winograd = winograd, .cpu_igemm = -1};
    th h;
    th_init_tuned(&h, 2, &tuning);
    int64_t xd[4] = {1, 16, 48, 48};
    int x = th_tensor(&h, "x", 4, xd);
    int y1 = th_conv(&h, "c1", x, 16, 24, 3, 1, 48, SH_ACT_SILU);
    int y = th_conv(&h, "c2", y1, 24, 16, 3, 1, 48, SH_ACT_NONE);
    assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
    *winograd_convs = 0;
    for (int k = 0; k < h.g->n_nodes; k++) {
        char buf[256];
        if (h.g->nodes[k].op == SH_OP_CONV && sh_backend_cpu_describe_node(h.p, k, buf, sizeof buf) == 0 &&
            strstr(buf, "winograd"))
            (*winograd_convs)++;
    }
    th_fill(&h, x);
    assert_int_equal(th_run(&h), 0);
    *n_out = sh_shape_numel(&h.g->tensors[y].shape);
    float *out = malloc((size_t)*n_out * sizeof(float));
    memcpy(out, h.ptr[y], (size_t)*n_out * sizeof(float));
    th_free(&h);
    return out;
}

static void through_the_backend(void **state)
{
    (void)state;
    int64_t n_on, n_off;
    int on_convs, off_convs;
    float *on = run_two_convs(1, &n_on, &on_convs), *off = run_two_convs(-1, &n_off, &off_convs);
    assert_int_equal(on_convs, 2);
    assert_int_equal(off_convs, 0);
    assert_int_equal(n_on, n_off);
    double err = 0, norm = 0, scale = 0;
    for (int64_t i = 0; i < n_off; i++) {
        norm += (double)off[i] * off[i];
        scale = fmax(scale, fabs(off[i]));
    }
    for (int64_t i = 0; i < n_off; i++) {
        double d = (double)on[i] - off[i];
        if (!(fabs(d) <= 1e-4 * scale))
            fail_msg("y[%lld]: winograd %g, direct %g", (long long)i, (double)on[i], (double)off[i]);
        err += d * d;
    }
    assert_true(sqrt(err / norm) < 1e-5);
    free(on);
    free(off);
}

int main(void)
{
    if (!cpu_fma_tiles_ok()) {
        printf("skipped: this CPU lacks AVX2 or FMA, which the Winograd kernels need\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(even_and_odd_sizes),
        cmocka_unit_test(narrow_panels_and_partial_blocks),
        cmocka_unit_test(activations),
        cmocka_unit_test(refuses_other_shapes),
        cmocka_unit_test(through_the_backend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
