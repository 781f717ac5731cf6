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

#include "backends/cpu/winograd.h"
#include "core/alloc.h"
#include "conv_check.h"

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
                y[(oy * W + ox) * K + k] = cc_act_ref(s, act);
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
        x[i] = cc_frand();
    for (size_t i = 0; i < nw; i++)
        w[i] = cc_frand() * 0.3f;
    for (int i = 0; i < K; i++)
        bias[i] = cc_frand();
    for (size_t i = 0; i < ny; i++)
        y[i] = NAN;
    cpu_wino_pack(w, &wg, packed);
    cpu_wino_run(&wg, pool, x, packed, with_bias ? bias : NULL, y, scratch);
    direct(x, w, with_bias ? bias : NULL, H, W, C, K, act, ref);
    char what[64];
    snprintf(what, sizeof what, "H%d W%d C%d K%d act %d", H, W, C, K, (int)act);
    cc_expect_close(y, ref, ny, 1.0, what);
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

/* Two 3x3 convs at 48x48, NHWC between them. */
static int two_convs(th *h, int x)
{
    int y1 = th_conv(h, "c1", x, 16, 24, 3, 1, 48, SH_ACT_SILU);
    return th_conv(h, "c2", y1, 24, 16, 3, 1, 48, SH_ACT_NONE);
}

static void through_the_backend(void **state)
{
    (void)state;
    const int64_t xd[4] = {1, 16, 48, 48};
    shoal_tuning on = {.cpu_winograd = 1, .cpu_igemm = -1}, off = {.cpu_winograd = -1, .cpu_igemm = -1};
    cc_expect_same_as_off(&on, &off, xd, two_convs, "winograd", 2);
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
