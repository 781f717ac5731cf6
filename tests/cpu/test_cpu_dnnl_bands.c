/* The row-band planner of the oneDNN convolutions (backends/cpu/dnnl_bands.h), without oneDNN:
 * - geometry, over every small conv along H (rows, kernel, stride, dilation, pads smaller
 *   than the kernel's extent, as convolutions have them) and every band count: the bands cover the output rows once, in order, as evenly as they go; each
 *   band's input rows and padding are exactly the taps of its outputs (counted one tap at a
 *   time here), so the band's own conv gives exactly its rows, and padding appears only where
 *   the taps leave the image;
 * - the first band count: one per thread, capped by the rows and CPU_DNNL_MAX_BANDS;
 * - the retry's control, with a stand-in for oneDNN that refuses chosen bands as thin: the
 *   halving sequence, the drops between attempts, a lone band never refused, and failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "backends/cpu/dnnl_bands.h"

/* ---- geometry ---------------------------------------------------------------------------- */

/* The outputs' size along H by ONNX's formula, 0 when the kernel does not fit. */
static int64_t out_rows_of(int64_t H, int64_t k, int64_t s, int64_t d, int64_t pt, int64_t pb)
{
    int64_t ext = (k - 1) * d + 1;
    return H + pt + pb < ext ? 0 : (H + pt + pb - ext) / s + 1;
}

/* Checks band b against the taps of its outputs, one by one. */
static void check_span(const cpu_band_rows *r, int64_t k, int64_t d, int b, const cpu_band_span *sp)
{
    int64_t first = INT64_MAX, last = INT64_MIN;
    for (int64_t o = sp->oh0; o < sp->oh1; o++)
        for (int64_t t = 0; t < k; t++) {
            int64_t i = o * r->stride - r->pad_top + t * d;
            first = i < first ? i : first;
            last = i > last ? i : last;
        }
    int64_t want_ih0 = first > 0 ? first : 0, want_ih1 = last + 1 < r->in_rows ? last + 1 : r->in_rows;
    assert_int_equal(sp->ih0, want_ih0);
    assert_int_equal(sp->ih1, want_ih1);
    assert_int_equal(sp->pad_top, first < 0 ? -first : 0);
    assert_int_equal(sp->pad_bottom, last >= r->in_rows ? last + 1 - r->in_rows : 0);
    /* The band as a conv of its own: its rows plus its padding give exactly its outputs. */
    assert_true(sp->ih1 > sp->ih0);
    int64_t n = sp->ih1 - sp->ih0 + sp->pad_top + sp->pad_bottom;
    assert_int_equal((n - r->extent) / r->stride + 1, sp->oh1 - sp->oh0);
    assert_true(n >= r->extent);
    /* Padding only at the image's edges, and never more than the conv's own there. */
    int64_t conv_bottom = (r->out_rows - 1) * r->stride - r->pad_top + r->extent - r->in_rows;
    assert_true(sp->pad_top <= r->pad_top && sp->pad_bottom <= (conv_bottom > 0 ? conv_bottom : 0));
    if (sp->pad_top > 0)
        assert_int_equal(sp->ih0, 0);
    if (sp->pad_bottom > 0)
        assert_int_equal(sp->ih1, r->in_rows);
    if (b > 0 && r->pad_top == 0)
        assert_int_equal(sp->pad_top, 0);
}

static void check_bands(const cpu_band_rows *r, int64_t k, int64_t d, int nb)
{
    int64_t next = 0, small = INT64_MAX, large = 0;
    for (int b = 0; b < nb; b++) {
        cpu_band_span sp;
        memset(&sp, 0x5a, sizeof sp);
        cpu_band_span_of(r, nb, b, &sp);
        assert_int_equal(sp.oh0, next);
        assert_true(sp.oh1 > sp.oh0);
        next = sp.oh1;
        int64_t rows = sp.oh1 - sp.oh0;
        small = rows < small ? rows : small;
        large = rows > large ? rows : large;
        check_span(r, k, d, b, &sp);
    }
    assert_int_equal(next, r->out_rows);
    assert_true(large - small <= 1);
}

static void test_span_geometry(void **state)
{
    (void)state;
    int convs = 0;
    for (int64_t H = 1; H <= 23; H++)
        for (int64_t k = 1; k <= 7; k += 2)
            for (int64_t s = 1; s <= 3; s++)
                for (int64_t d = 1; d <= 2; d++)
                    for (int64_t pt = 0; pt < (k - 1) * d + 1 && pt <= 3; pt++)
                        for (int64_t pb = 0; pb < (k - 1) * d + 1 && pb <= 3; pb++) {
                            int64_t OH = out_rows_of(H, k, s, d, pt, pb);
                            if (OH < 1)
                                continue;
                            cpu_band_rows r = {.in_rows = H, .out_rows = OH, .stride = s, .pad_top = pt,
                                               .extent = (k - 1) * d + 1};
                            for (int nb = 1; nb <= OH; nb++)
                                check_bands(&r, k, d, nb);
                            convs++;
                        }
    assert_true(convs > 1000);
}

/* A YOLO head's 20 rows at 16 threads, by hand: bands of one or two rows, the first reading
 * the top padding and the last the bottom. */
static void test_span_example(void **state)
{
    (void)state;
    cpu_band_rows r = {.in_rows = 20, .out_rows = 20, .stride = 1, .pad_top = 1, .extent = 3};
    cpu_band_span sp;
    cpu_band_span_of(&r, 16, 0, &sp);
    assert_true(sp.oh0 == 0 && sp.oh1 == 1 && sp.ih0 == 0 && sp.ih1 == 2 && sp.pad_top == 1 && sp.pad_bottom == 0);
    cpu_band_span_of(&r, 16, 1, &sp);
    assert_true(sp.oh0 == 1 && sp.oh1 == 2 && sp.ih0 == 0 && sp.ih1 == 3 && sp.pad_top == 0 && sp.pad_bottom == 0);
    cpu_band_span_of(&r, 16, 15, &sp);
    assert_true(sp.oh0 == 18 && sp.oh1 == 20 && sp.ih0 == 17 && sp.ih1 == 20 && sp.pad_top == 0 &&
                sp.pad_bottom == 1);
}

static void test_first_count(void **state)
{
    (void)state;
    assert_int_equal(cpu_bands_first_count(16, 20), 16);
    assert_int_equal(cpu_bands_first_count(16, 3), 3);
    assert_int_equal(cpu_bands_first_count(1, 640), 1);
    assert_int_equal(cpu_bands_first_count(100, 640), CPU_DNNL_MAX_BANDS);
    assert_int_equal(cpu_bands_first_count(100, 40), 40);
    assert_int_equal(cpu_bands_first_count(8, 0), 0);
    assert_int_equal(cpu_bands_first_count(0, 8), 0);
    assert_int_equal(cpu_bands_first_count(16, (int64_t)1 << 40), 16);
}

/* ---- the retry's control ---------------------------------------------------------------- */

enum { MAX_CALLS = 256 };

/* The stand-in for oneDNN: refuses (when allowed) bands with fewer than min_rows rows, or the
 * band at the bottom edge when thin_bottom; fails band fail_at of the attempt fail_attempt. */
typedef struct fake_dnnl {
    int64_t min_rows;
    bool thin_bottom;
    int fail_attempt, fail_at;
    int attempt;                    /* attempts started (band 0 asked for) */
    int made;                       /* bands standing: made since the last drop */
    int drops;
    int n_calls;
    int call_b[MAX_CALLS];
    int call_attempt[MAX_CALLS];
    bool call_refuse[MAX_CALLS];
} fake_dnnl;

static int fake_make(void *user, int b, const cpu_band_span *span, bool refuse_reference)
{
    fake_dnnl *f = user;
    if (b == 0)
        f->attempt++;
    assert_int_equal(b, f->made);   /* in order, after a drop from band 0 */
    assert_true(f->n_calls < MAX_CALLS);
    f->call_b[f->n_calls] = b;
    f->call_attempt[f->n_calls] = f->attempt;
    f->call_refuse[f->n_calls] = refuse_reference;
    f->n_calls++;
    if (f->attempt == f->fail_attempt && b == f->fail_at)
        return -1;
    bool thin = span->oh1 - span->oh0 < f->min_rows || (f->thin_bottom && span->pad_bottom > 0);
    if (thin && refuse_reference)
        return CPU_BAND_THIN;
    f->made++;
    return CPU_BAND_MADE;
}

static void fake_drop(void *user)
{
    fake_dnnl *f = user;
    f->drops++;
    f->made = 0;
}

/* Bands asked for in attempt a (1-based). */
static int bands_in_attempt(const fake_dnnl *f, int a)
{
    int n = 0;
    for (int i = 0; i < f->n_calls; i++)
        n += f->call_attempt[i] == a;
    return n;
}

typedef struct plan_case {
    const char *what;
    cpu_band_rows rows;
    int threads;
    fake_dnnl fake;                 /* the stand-in's settings */
    int result;
    int asked[8];                   /* bands asked for in each attempt, 0 after the last */
    int made;                       /* bands standing at the end */
} plan_case;

static const plan_case plan_cases[] = {
    {"20 rows at 16 threads, one-row bands refused: band 0 of 16 has one row, 8 bands have 2-3",
     {.in_rows = 20, .out_rows = 20, .stride = 1, .pad_top = 1, .extent = 3}, 16,
     {.min_rows = 2, .fail_attempt = -1}, 8, {1, 8}, 8},
    {"the bottom band refused at 100 threads over 160 rows: every band before it dropped too, "
     "64 halved down to the lone band, which may not be refused",
     {.in_rows = 160, .out_rows = 160, .stride = 1, .pad_top = 1, .extent = 3}, 100,
     {.thin_bottom = true, .fail_attempt = -1}, 1, {64, 32, 16, 8, 4, 2, 1}, 1},
    {"odd counts halve downwards: 3 bands, then 1",
     {.in_rows = 3, .out_rows = 3, .stride = 1, .pad_top = 0, .extent = 1}, 8,
     {.min_rows = 2, .fail_attempt = -1}, 1, {1, 1}, 1},
    {"nothing refused: one band per thread, one attempt",
     {.in_rows = 640, .out_rows = 320, .stride = 2, .pad_top = 1, .extent = 3}, 7,
     {.min_rows = 1, .fail_attempt = -1}, 7, {7}, 7},
    {"a band oneDNN cannot make ends the plan, no retry, what was made left to the caller",
     {.in_rows = 20, .out_rows = 20, .stride = 1, .pad_top = 1, .extent = 3}, 16,
     {.min_rows = 2, .fail_attempt = 2, .fail_at = 3}, -1, {1, 4}, 3},
    {"no output rows: nothing asked",
     {.in_rows = 2, .out_rows = 0, .stride = 1, .pad_top = 0, .extent = 3}, 16,
     {.fail_attempt = -1}, -1, {0}, 0},
};

static void test_plan(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof plan_cases / sizeof plan_cases[0]; c++) {
        const plan_case *pc = &plan_cases[c];
        print_message("%s\n", pc->what);
        fake_dnnl f = pc->fake;
        assert_int_equal(cpu_bands_plan(&pc->rows, pc->threads, fake_make, fake_drop, &f), pc->result);
        int attempts = 0;
        while (attempts < 8 && pc->asked[attempts])
            attempts++;
        assert_int_equal(f.attempt, attempts);
        assert_int_equal(f.drops, attempts > 0 ? attempts - 1 : 0);
        assert_int_equal(f.made, pc->made);
        for (int a = 0; a < attempts; a++)
            assert_int_equal(bands_in_attempt(&f, a + 1), pc->asked[a]);
        /* Attempt a plans the first count halved a times; only a lone band is never refused. */
        int first = cpu_bands_first_count(pc->threads, pc->rows.out_rows);
        for (int i = 0; i < f.n_calls; i++)
            assert_int_equal(f.call_refuse[i], (first >> (f.call_attempt[i] - 1)) > 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_geometry),
        cmocka_unit_test(test_span_example),
        cmocka_unit_test(test_first_count),
        cmocka_unit_test(test_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
