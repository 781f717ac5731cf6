/* The own convolution's launch plan (sh_k_igemm_plan, igemm.cu), host logic checked without a
 * GPU: tiles within the card's shared memory (sm_86/sm_89 allow 99 KiB per block, where the
 * 128x64 tile's 108 KiB does not fit), splits that leave no slice empty and fit a stream's
 * counter block, scratch sized for the slices, and the picks the H100 sweep chose. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backends/cuda/cuda_impl.h"

#define SMEM_SM86 (99 * 1024)
#define SMEM_SM90 (227 * 1024)

static sh_k_igemm_p conv(int c, int hw, int k, int r, int s)
{
    int pad = r / 2, o = (hw + 2 * pad - r) / s + 1;
    sh_k_igemm_p p = {.n = 1, .h = hw, .w = hw, .c = c, .oh = o, .ow = o, .k = k, .kh = r, .kw = r, .sh = s,
                      .sw = s, .ph = pad, .pw = pad, .dh = 1, .dw = 1, .x_ld = c, .y_ld = k, .r_ld = k};
    return p;
}

static void plans_fit_every_card(void **state)
{
    (void)state;
    const int cs[] = {8, 16, 32, 48, 64, 96, 128, 192, 256, 512, 1024};
    const int hws[] = {1, 5, 13, 20, 40, 80, 160, 320};
    const int smems[] = {SMEM_SM86, SMEM_SM90};
    const int sms[] = {46, 82, 132};
    for (size_t a = 0; a < sizeof cs / sizeof *cs; a++)
        for (size_t b = 0; b < sizeof cs / sizeof *cs; b++)
            for (size_t h = 0; h < sizeof hws / sizeof *hws; h++)
                for (int r = 1; r <= 3; r += 2)
                    for (size_t m = 0; m < 2; m++)
                        for (size_t d = 0; d < 3; d++) {
                            sh_k_igemm_p p = conv(cs[a], hws[h], cs[b], r, 1);
                            size_t scratch = sh_k_igemm_plan(&p, sms[d], smems[m]);
                            assert_true(sh_k_igemm_smem(p.bm, p.bn) <= smems[m]);
                            assert_true(p.splits >= 1 && p.splits <= 4);
                            long M = (long)p.oh * p.ow, kiters = ((long)r * r * cs[a] + 63) / 64;
                            if (p.splits == 1) {
                                assert_int_equal(scratch, 0);
                                continue;
                            }
                            long kper = (kiters + p.splits - 1) / p.splits;
                            assert_true((p.splits - 1) * kper < kiters);   /* no empty slice */
                            assert_int_equal(scratch, (size_t)p.splits * M * cs[b] * sizeof(float));
                            assert_true(sh_k_igemm_counters(&p) <= SH_CUDA_IG_COUNTERS / SH_CUDA_STREAMS);
                        }
}

static void h100_sweep_picks(void **state)
{
    (void)state;
    struct { int c, hw, k, r, s, bm, bn, splits; } want[] = {
        {256, 160, 256, 3, 1, 128, 64, 1},   /* large image, many channels */
        {192, 80, 256, 1, 1, 128, 64, 1},
        {64, 80, 64, 3, 1, 64, 32, 1},       /* 200 CTAs of 64x32 */
        {32, 160, 32, 3, 1, 64, 32, 1},      /* 32 channels: no 64-wide tiles */
        {64, 26, 64, 1, 1, 32, 32, 1},       /* tiny: the smallest tile */
        {128, 20, 128, 3, 1, 32, 32, 4},     /* deep K, 52 CTAs: split in 4 */
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        sh_k_igemm_p p = conv(want[i].c, want[i].hw, want[i].k, want[i].r, want[i].s);
        sh_k_igemm_plan(&p, 132, SMEM_SM90);
        assert_int_equal(p.bm, want[i].bm);
        assert_int_equal(p.bn, want[i].bn);
        assert_int_equal(p.splits, want[i].splits);
    }
    /* the same large conv on a 99 KiB card takes the largest tile that fits */
    sh_k_igemm_p p = conv(256, 160, 256, 3, 1);
    sh_k_igemm_plan(&p, 82, SMEM_SM86);
    assert_int_equal(p.bm, 64);
    assert_int_equal(p.bn, 64);
}

/* sm_90a: the wgmma kernel's tiles (64 rows a warpgroup, down to 64x16 for small layers),
 * twice the CTAs for one- or two-step K, and counters for whichever kernel runs at launch. */
static void wgmma_picks(void **state)
{
    (void)state;
    struct { int c, hw, k, r, bm, bn; } want[] = {
        {256, 160, 256, 3, 128, 64},   /* large: 800 CTAs */
        {64, 80, 64, 3, 64, 32},       /* 200 CTAs of 64x32 */
        {64, 80, 64, 1, 64, 16},       /* one K step: 400 CTAs */
        {128, 40, 128, 3, 64, 16},     /* 200 CTAs only at 64x16 */
        {1024, 40, 512, 1, 64, 64},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        sh_k_igemm_p p = conv(want[i].c, want[i].hw, want[i].k, want[i].r, 1);
        p.wg = 1;
        sh_k_igemm_plan(&p, 132, SMEM_SM90);
        assert_int_equal(p.wg, 1);
        assert_int_equal(p.bm, want[i].bm);
        assert_int_equal(p.bn, want[i].bn);
    }
    const int cs[] = {8, 32, 64, 256, 1024}, hws[] = {1, 13, 20, 80, 320};
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t h = 0; h < 5; h++) {
                sh_k_igemm_p p = conv(cs[a], hws[h], cs[b], 3, 1);
                p.wg = 1;
                sh_k_igemm_plan(&p, 132, SMEM_SM90);
                assert_true(p.bm == 64 || p.bm == 128);
                assert_true(sh_k_igemm_counters(&p) <= SH_CUDA_IG_COUNTERS / SH_CUDA_STREAMS);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plans_fit_every_card),
        cmocka_unit_test(h100_sweep_picks), cmocka_unit_test(wgmma_picks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
