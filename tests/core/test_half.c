/* The vectorized float -> half conversion (F16C and portable) must give the reference
 * routine's bits for every input class: zeros, fp32 subnormals, every half-subnormal
 * rounding step, ties, the saturation edge at 65504/65520, infinities and NaN payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#if defined(__x86_64__)
#include <xmmintrin.h>
#endif

#include "core/half.h"

typedef void (*convert_fn)(uint16_t *dst, const float *src, size_t n);

/* Converts bits[0..n) with fn and checks each against the reference; the odd lengths and
 * offsets exercise the vector tails. */
static void check_bits(convert_fn fn, const uint32_t *bits, size_t n)
{
    float *src = malloc(n * sizeof *src + 4);
    uint16_t *dst = malloc(n * sizeof *dst + 2);
    assert_non_null(src);
    assert_non_null(dst);
    memcpy(src, bits, n * sizeof *src);
    fn(dst, src, n);
    for (size_t i = 0; i < n; i++) {
        uint16_t want = sh_f32_to_f16(src[i]);
        if (dst[i] != want)
            fail_msg("f32 0x%08x -> 0x%04x, reference 0x%04x", bits[i], dst[i], want);
    }
    free(src);
    free(dst);
}

/* Dense runs around each boundary of the conversion, both signs. */
static size_t edge_bits(uint32_t *out)
{
    static const uint32_t edges[] = {
        0x00000000u, 0x00000001u, 0x007fffffu, 0x00800000u,  /* zero, fp32 subnormals */
        0x33000000u, 0x33000001u, 0x337fffffu,               /* 2^-25: ties to zero */
        0x33800000u, 0x34000000u, 0x38000000u,               /* half subnormals */
        0x387fc000u, 0x387fe000u, 0x38800000u,               /* last subnormal -> first normal */
        0x3f800000u, 0x3f801000u, 0x3f803000u,               /* 1.0 and its ties */
        0x477fe000u, 0x477fefffu, 0x477ff000u, 0x477ff001u,  /* 65504 .. saturation at 65520 */
        0x47800000u, 0x7f7fffffu, 0x7f800000u,               /* 65536, fp32 max, inf */
        0x7f800001u, 0x7fc00000u, 0x7fffffffu,               /* NaNs */
    };
    size_t n = 0;
    for (size_t e = 0; e < sizeof edges / sizeof edges[0]; e++)
        for (int64_t d = -300; d <= 300; d++)
            for (uint32_t sign = 0; sign <= 1; sign++) {
                int64_t v = (int64_t)edges[e] + d;
                if (v < 0 || v > 0x7fffffff)
                    continue;
                out[n++] = (uint32_t)v | sign << 31;
            }
    return n;
}

static void run_all(convert_fn fn)
{
    uint32_t *edges = malloc(26 * 601 * 2 * sizeof *edges);
    assert_non_null(edges);
    size_t ne = edge_bits(edges);
    check_bits(fn, edges, ne);
    for (size_t off = 1; off < 9; off++)
        check_bits(fn, edges + off, ne - off - (off & 3));
    free(edges);

    /* Every exponent and sign with a spread of mantissas: a stride over all 2^32 patterns. */
    size_t n = (size_t)1 << 22;
    uint32_t *bits = malloc(n * sizeof *bits);
    assert_non_null(bits);
    for (size_t i = 0; i < n; i++)
        bits[i] = (uint32_t)(i * 1021u + (i >> 7));
    check_bits(fn, bits, n);

    /* Random patterns, and random values in the half range (where rounding matters). */
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        uint32_t r = (uint32_t)(s >> 32);
        bits[i] = i & 1 ? r : (r & 0x80ffffffu) | ((0x30u + (r >> 24) % 0x1c) << 23);
    }
    check_bits(fn, bits, n);
    free(bits);
}

static void dispatch_matches_reference(void **state) { run_all(sh_f32_to_f16_n); }
static void portable_matches_reference(void **state) { run_all(sh_f32_to_f16_n_portable); }

/* Libraries loaded beside shoal (oneDNN, BLAS) may set flush-to-zero and denormals-are-zero
 * in a thread; the packed bytes must not depend on it. */
static void same_bits_under_ftz_daz(void **state)
{
#if defined(__x86_64__)
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u);   /* FTZ | DAZ */
    uint32_t *edges = malloc(26 * 601 * 2 * sizeof *edges);
    assert_non_null(edges);
    size_t ne = edge_bits(edges);
    _mm_setcsr(saved);
    /* the reference itself is integer-only, so compute it with the default mode */
    uint16_t *want = malloc(ne * sizeof *want), *got = malloc(ne * sizeof *got), *got_p = malloc(ne * sizeof *got_p);
    assert_true(want && got && got_p);
    for (size_t i = 0; i < ne; i++) {
        float f;
        memcpy(&f, &edges[i], 4);
        want[i] = sh_f32_to_f16(f);
    }
    _mm_setcsr(saved | 0x8040u);
    sh_f32_to_f16_n(got, (const float *)edges, ne);
    sh_f32_to_f16_n_portable(got_p, (const float *)edges, ne);
    _mm_setcsr(saved);
    for (size_t i = 0; i < ne; i++) {
        if (got[i] != want[i])
            fail_msg("FTZ/DAZ: f32 0x%08x -> 0x%04x, reference 0x%04x", edges[i], got[i], want[i]);
        if (got_p[i] != want[i])
            fail_msg("FTZ/DAZ portable: f32 0x%08x -> 0x%04x, reference 0x%04x", edges[i], got_p[i], want[i]);
    }
    free(want);
    free(got);
    free(got_p);
    free(edges);
#else
    skip();
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dispatch_matches_reference),
        cmocka_unit_test(portable_matches_reference),
        cmocka_unit_test(same_bits_under_ftz_daz),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
