/* The CPU backend's exp (backends/cpu/vexp.h) against double-precision exp rounded to float:
 * within 2 ulp (relative error under 2.4e-7 for normal results) over bit patterns sampled
 * across the whole float range and dense runs around the overflow, underflow and subnormal
 * edges; inf, -inf and NaN handled as exp does; every vector body this CPU runs (AVX2,
 * AVX-512) gives the scalar function's bits at every length and offset (vector tails), and
 * the shift-and-sum form used by Softmax sums what it stores. */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/vexp.h"

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static float float_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Distance in representable floats between two non-negative floats (inf counts as one past
 * FLT_MAX, so FLT_MAX where exp overflows is 1 ulp off). */
static uint32_t ulp_distance(float a, float b)
{
    uint32_t x = bits_of(a), y = bits_of(b);
    return x > y ? x - y : y - x;
}

static void check_against_double(float x)
{
    float got = cpu_expf(x);
    if (isnan(x)) {
        assert_true(isnan(got));
        return;
    }
    double exact = exp((double)x);
    float want = (float)exact;
    uint32_t d = ulp_distance(got, want);
    if (d > 2)
        fail_msg("exp(%a = %g) = %a, reference %a (%u ulp)", x, x, got, want, d);
    if (want >= FLT_MIN && isfinite(want) && fabs((double)got - exact) > 2.4e-7 * exact)
        fail_msg("exp(%a): relative error %g", x, fabs((double)got - exact) / exact);
}

static void test_sampled_range(void **state)
{
    (void)state;
    /* Every 251st bit pattern covers all exponents and both signs; 251 is prime, so the low
     * mantissa bits vary too. */
    for (uint64_t b = 0; b <= 0xffffffffu; b += 251)
        check_against_double(float_of((uint32_t)b));
}

static void test_edges(void **state)
{
    (void)state;
    const float edges[] = {
        0.0f,        88.72283f,  88.7228394f, 89.0f,      -87.33654f, -103.278931f,
        -103.972084f, -104.0f,    -126.0f * 0.693147f, 1e-8f,     -1e-8f,      0.346573590f,
        -0.346573590f, 1.0f,      -1.0f,      10.0f,      -10.0f,     80.0f,
    };
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
        for (int d = -2000; d <= 2000; d++)
            check_against_double(float_of((uint32_t)((int64_t)bits_of(edges[e]) + d)));

    assert_true(isinf(cpu_expf(INFINITY)) && cpu_expf(INFINITY) > 0.0f);
    assert_true(cpu_expf(-INFINITY) == 0.0f);
    assert_true(isinf(cpu_expf(89.0f)));
    assert_true(isinf(cpu_expf(1e30f)));
    assert_true(cpu_expf(-105.0f) == 0.0f);
    assert_true(cpu_expf(-1e30f) == 0.0f);
    assert_true(isnan(cpu_expf(NAN)));
    assert_true(isnan(cpu_expf(-NAN)));
    assert_true(cpu_expf(-103.0f) > 0.0f && cpu_expf(-103.0f) < FLT_MIN);   /* gradual underflow */
    assert_true(cpu_expf(0.0f) == 1.0f);
}

/* Non-trivial values of every class: sampled patterns, edges, inf, NaN. */
static void fill(float *x, size_t n, uint32_t seed)
{
    const float special[] = {INFINITY, -INFINITY, NAN, 89.0f, -104.0f, -103.5f, 88.7f, 0.0f};
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        if (seed >> 28 == 0)
            x[i] = special[(seed >> 8) % (sizeof special / sizeof special[0])];
        else
            x[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 220.0f;
    }
}

static void test_vector_bodies_match_scalar(void **state)
{
    (void)state;
    enum { N = 300 };
    float *x = malloc((N + 16) * sizeof *x), *y = malloc((N + 16) * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    int bodies = 0;
    for (int isa = CPU_EXP_SCALAR; isa <= CPU_EXP_AVX512; isa++) {
        if (!cpu_exp_isa_available((cpu_exp_isa)isa))
            continue;
        bodies++;
        for (size_t off = 0; off < 3; off++)
            for (int64_t n = 0; n <= 67; n++) {
                fill(x, N + 16, (uint32_t)(n * 31 + (int64_t)off));
                for (size_t i = 0; i < N + 16; i++)
                    y[i] = -7.0f;   /* poison: also shows writes past n */
                float shift = n % 3 == 0 ? 0.0f : 3.5f;
                cpu_exp_shift_sum_isa((cpu_exp_isa)isa, y + off, x + off, shift, n);
                for (int64_t i = 0; i < n; i++) {
                    float want = cpu_expf(x[off + i] - shift);
                    if (isnan(want))
                        assert_true(isnan(y[off + i]));
                    else if (bits_of(want) != bits_of(y[off + i]))
                        fail_msg("isa %d n %lld [%lld]: exp(%a) = %a, scalar %a", isa, (long long)n,
                                 (long long)i, x[off + i] - shift, y[off + i], want);
                }
                for (size_t i = off + (size_t)n; i < N + 16; i++)
                    assert_true(y[i] == -7.0f);
            }
    }
    assert_true(bodies >= 1);
    free(x);
    free(y);
}

static void test_shift_sum(void **state)
{
    (void)state;
    enum { N = 1000 };
    float x[N], y[N];
    for (int64_t n = 1; n <= N; n += 37) {
        float mx = -INFINITY;
        for (int64_t i = 0; i < n; i++) {
            x[i] = (float)((i * 7919) % 2001) / 100.0f - 10.0f;
            mx = x[i] > mx ? x[i] : mx;
        }
        for (int64_t i = 0; i < n; i++)
            y[i] = NAN;
        float s = cpu_exp_shift_sum(y, x, mx, n);
        double stored = 0.0, exact = 0.0;
        for (int64_t i = 0; i < n; i++) {
            stored += y[i];
            /* the difference is taken in float, as Softmax always did */
            double want = exp((double)(x[i] - mx));
            exact += want;
            assert_true(fabs((double)y[i] - want) < 2.4e-7 * want);
        }
        assert_true(fabs(s - stored) <= 1e-6 * stored);
        assert_true(fabs(s - exact) <= 2e-6 * exact);
    }
    /* the plain array form, in place */
    for (int i = 0; i < 50; i++)
        x[i] = (float)i * 0.37f - 9.0f;
    cpu_exp_array(x, x, 50);
    for (int i = 0; i < 50; i++) {
        double want = exp((double)((float)i * 0.37f - 9.0f));
        assert_true(fabs(x[i] - want) <= 2.4e-7 * want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampled_range),
        cmocka_unit_test(test_edges),
        cmocka_unit_test(test_vector_bodies_match_scalar),
        cmocka_unit_test(test_shift_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
