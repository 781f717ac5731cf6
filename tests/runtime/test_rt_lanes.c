/* Placement of concurrently running models (src/runtime/lanes.h): models that share a mode
 * never overlap in the arena and get different lanes; models that never run together share
 * bytes; the arena is as small as the greedy placement allows. Host logic only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "runtime/lanes.h"
#include "shoal.h"

#define MAXN 12

static void check_disjoint(int n, const size_t *bytes, const unsigned char *together, const size_t *off,
                           size_t align, size_t total)
{
    for (int i = 0; i < n; i++) {
        assert_int_equal(off[i] % align, 0);
        assert_true(off[i] + bytes[i] <= total);
        for (int j = 0; j < n; j++)
            if (i != j && together[i * n + j] && bytes[i] && bytes[j])
                assert_true(off[i] + bytes[i] <= off[j] || off[j] + bytes[j] <= off[i]);
    }
}

/* The default config: navigation = blind_road + obstacle, crossing = traffic_light,
 * shopping = shopping + hand. */
static void test_aiglasses(void **state)
{
    (void)state;
    const size_t nav[] = {0, 1}, cross[] = {2}, shop[] = {3, 4};
    sh_lanes_mode modes[] = {{nav, 2}, {cross, 1}, {shop, 2}};
    unsigned char t[25];
    sh_lanes_together(5, modes, 3, t);
    assert_int_equal(t[0 * 5 + 1], 1);
    assert_int_equal(t[1 * 5 + 0], 1);
    assert_int_equal(t[3 * 5 + 4], 1);
    assert_int_equal(t[0 * 5 + 2], 0);
    assert_int_equal(t[0 * 5 + 0], 0);
    size_t bytes[5] = {42 << 20, 40 << 20, 30 << 20, 35 << 20, 3 << 20}, off[5], total = 0;
    assert_int_equal(sh_lanes_place(5, bytes, t, 256, off, &total), 0);
    check_disjoint(5, bytes, t, off, 256, total);
    /* the largest mode decides: 42 + 40 MiB, the others fit inside it */
    assert_int_equal(total, (size_t)82 << 20);
    assert_int_equal(off[0], 0);
    assert_int_equal(off[1], (size_t)42 << 20);
    assert_int_equal(off[2], 0);   /* crossing runs alone: from the start */
    int lane[5];
    sh_lanes_assign(5, t, NULL, SH_MAX_LANES, lane);
    assert_int_not_equal(lane[0], lane[1]);
    assert_int_not_equal(lane[3], lane[4]);
    assert_int_equal(lane[0], 0);
    assert_int_equal(lane[2], 0);
    /* heaviest first: each mode's heaviest model on lane 0 (obstacle, traffic_light, shopping) */
    const double gflop[5] = {33, 142, 6.4, 21.5, 0.1};
    sh_lanes_assign(5, t, gflop, SH_MAX_LANES, lane);
    assert_int_equal(lane[1], 0);
    assert_int_equal(lane[0], 1);
    assert_int_equal(lane[2], 0);
    assert_int_equal(lane[3], 0);
    assert_int_equal(lane[4], 1);
}

/* No mode shares models: the arena is the largest plan, as when models run in turn. */
static void test_no_sharing(void **state)
{
    (void)state;
    const size_t a[] = {0}, b[] = {1}, c[] = {2};
    sh_lanes_mode modes[] = {{a, 1}, {b, 1}, {c, 1}};
    unsigned char t[9];
    sh_lanes_together(3, modes, 3, t);
    size_t bytes[3] = {1000, 5000, 3000}, off[3], total;
    assert_int_equal(sh_lanes_place(3, bytes, t, 64, off, &total), 0);
    assert_int_equal(total, 5000);
    for (int i = 0; i < 3; i++)
        assert_int_equal(off[i], 0);
}

/* A gap left between two placed partners is used when the model fits there. */
static void test_fills_gaps(void **state)
{
    (void)state;
    /* m0 (100) with m1 (60) and with m2 (50); m1 and m2 never together: both sit above m0,
     * sharing bytes */
    const size_t x[] = {0, 1}, y[] = {0, 2};
    sh_lanes_mode modes[] = {{x, 2}, {y, 2}};
    unsigned char t[9];
    sh_lanes_together(3, modes, 2, t);
    size_t bytes[3] = {100, 60, 50}, off[3], total;
    assert_int_equal(sh_lanes_place(3, bytes, t, 1, off, &total), 0);
    check_disjoint(3, bytes, t, off, 1, total);
    assert_int_equal(total, 160);
    assert_int_equal(off[1], 100);
    assert_int_equal(off[2], 100);
}

/* Random configs: disjointness always holds, and the total never exceeds the sum of sizes
 * nor falls under the largest mode's sum. */
static void test_random(void **state)
{
    (void)state;
    srand(7);
    for (int iter = 0; iter < 500; iter++) {
        int n = 1 + rand() % MAXN, n_modes = 1 + rand() % 5;
        size_t lists[5][MAXN], counts[5] = {0};
        sh_lanes_mode modes[5];
        for (int k = 0; k < n_modes; k++) {
            for (int i = 0; i < n; i++)
                if (rand() % 3 == 0)
                    lists[k][counts[k]++] = (size_t)i;
            modes[k] = (sh_lanes_mode){lists[k], counts[k]};
        }
        unsigned char t[MAXN * MAXN];
        sh_lanes_together(n, modes, (size_t)n_modes, t);
        size_t bytes[MAXN], off[MAXN], total, sum = 0;
        size_t align = iter % 2 ? 256 : 1;
        for (int i = 0; i < n; i++) {
            bytes[i] = (size_t)(rand() % 4 == 0 ? 0 : rand() % 100000);
            sum += (bytes[i] + align - 1) / align * align;
        }
        assert_int_equal(sh_lanes_place(n, bytes, t, align, off, &total), 0);
        check_disjoint(n, bytes, t, off, align, total);
        assert_true(total <= sum);
        for (int k = 0; k < n_modes; k++) {
            size_t mode_sum = 0;
            for (size_t i = 0; i < counts[k]; i++)
                mode_sum += bytes[lists[k][i]];
            assert_true(total >= mode_sum);
        }
        int lane[MAXN];
        sh_lanes_assign(n, t, NULL, SH_MAX_LANES, lane);
        /* greedy in model order: a model with fewer earlier partners than lanes shares a
         * lane with none of them */
        for (int m = 0; m < n; m++) {
            assert_true(lane[m] >= 0 && lane[m] < SH_MAX_LANES);
            int earlier = 0;
            for (int j = 0; j < m; j++)
                earlier += t[m * n + j];
            for (int j = 0; j < m && earlier < SH_MAX_LANES; j++)
                if (t[m * n + j])
                    assert_int_not_equal(lane[m], lane[j]);
        }
    }
}

/* More partners than lanes: lanes are reused, spread as evenly as possible. */
static void test_more_models_than_lanes(void **state)
{
    (void)state;
    const size_t all[] = {0, 1, 2, 3, 4, 5};
    sh_lanes_mode modes[] = {{all, 6}};
    unsigned char t[36];
    sh_lanes_together(6, modes, 1, t);
    int lane[6];
    sh_lanes_assign(6, t, NULL, 4, lane);
    int used[4] = {0};
    for (int i = 0; i < 6; i++)
        used[lane[i]]++;
    for (int l = 0; l < 4; l++)
        assert_true(used[l] >= 1 && used[l] <= 2);
    for (int i = 0; i < 4; i++)
        assert_int_equal(lane[i], i);
}

static void test_overflow(void **state)
{
    (void)state;
    unsigned char t[4] = {0, 1, 1, 0};
    size_t bytes[2] = {SIZE_MAX - 10, 100}, off[2], total;
    assert_int_equal(sh_lanes_place(2, bytes, t, 256, off, &total), SHOAL_ERR_INVALID_ARG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aiglasses),
        cmocka_unit_test(test_no_sharing),
        cmocka_unit_test(test_fills_gaps),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_more_models_than_lanes),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
