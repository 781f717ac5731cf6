/* The int8 tensor-core convolution's data layout, on the host (no device needed): the weights
 * as sh_cuda_pack_q8_weight packs them ([m][kp] codes, taps then channels padded to 16, zero
 * beyond; then the int32 filter sums), and the identity the kernel rests on: over the padded
 * NHWC input (halo and padded channels holding the zero point xz), with K real taps and
 * channels and P padded channels per pixel,
 *   sum(x * w) - wz * (sum(x) - P * xz) - xz * sum(w) + K * xz * wz
 * is the ONNX accumulator sum((x - xz) * (w - wz)) with padding contributing nothing. Checked
 * against a direct convolution on odd geometries (channels not a multiple of 16, strides,
 * dilation, asymmetric padding, a batch of 2), int8 and uint8 weights, with and without
 * zero points. The mma fragment layout itself is checked on the GPU by test_cuda_quant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/cuda/cuda_quant.h"
#include "backends/cuda/qgemm.cuh"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static int rnd(int lo, int hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (int)((rng >> 33) % (uint64_t)(hi - lo + 1));
}

typedef struct geo {
    int n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
    bool u8w;    /* uint8 weights (else int8) */
    bool wzp;    /* per-channel weight zero points (else none) */
} geo;

static void check(const geo *q)
{
    int oh = (q->h + q->pt + q->pb - ((q->kh - 1) * q->dh + 1)) / q->sh + 1;
    int ow = (q->w + q->pl + q->pr - ((q->kw - 1) * q->dw + 1)) / q->sw + 1;
    int cp = sh_kqg_cpad(q->c), kp = sh_kqg_kpad(q->kh, q->kw, q->c);
    int hp = (oh - 1) * q->sh + (q->kh - 1) * q->dh + 1, wp = (ow - 1) * q->sw + (q->kw - 1) * q->dw + 1;
    assert_int_equal(cp % 16, 0);
    assert_int_equal(kp % SH_KQG_KSTEP, 0);
    assert_true(kp >= q->kh * q->kw * cp);
    size_t nw = (size_t)q->m * q->c * q->kh * q->kw, nx = (size_t)q->n * q->c * q->h * q->w;
    int32_t *w = malloc(nw * sizeof *w), *wz = calloc((size_t)q->m, sizeof *wz);
    uint8_t *wb = malloc(nw), *x = malloc(nx);
    for (size_t i = 0; i < nw; i++) {
        w[i] = q->u8w ? rnd(0, 255) : rnd(-128, 127);
        wb[i] = (uint8_t)w[i];
    }
    for (int m = 0; q->wzp && m < q->m; m++)
        wz[m] = q->u8w ? rnd(100, 156) : rnd(-20, 20);
    for (size_t i = 0; i < nx; i++)
        x[i] = (uint8_t)rnd(0, 255);
    int xz = rnd(0, 255);
    sh_tensor wt = {.name = "w", .dtype = q->u8w ? SH_DT_UINT8 : SH_DT_INT8, .is_const = true, .data = wb,
                    .shape = {.ndim = 4, .d = {q->m, q->c, q->kh, q->kw}}};
    size_t wbytes = (size_t)q->m * kp + (size_t)q->m * 4;
    unsigned char *packed = malloc(wbytes);
    memset(packed, 0x5a, wbytes);   /* every byte must be written */
    sh_err err = {0};
    assert_int_equal(sh_cuda_pack_q8_weight(&wt, packed, &err), 0);
    const uint8_t *pw = packed;
    const int32_t *sums = (const int32_t *)(packed + (size_t)q->m * kp);
    for (int m = 0; m < q->m; m++) {
        int32_t s = 0;
        for (int k = 0; k < kp; k++) {
            int tap = k / cp, ci = k % cp, want = 0;
            if (tap < q->kh * q->kw && ci < q->c) {
                want = w[((size_t)m * q->c + ci) * q->kh * q->kw + tap];
                s += want;
            }
            assert_int_equal(pw[(size_t)m * kp + k], (uint8_t)want);
        }
        assert_int_equal(sums[m], s);
    }
    /* the padded NHWC input, as qg_pad writes it */
    size_t np = (size_t)q->n * hp * wp * cp;
    uint8_t *xp = malloc(np);
    for (int b = 0; b < q->n; b++)
        for (int yy = 0; yy < hp; yy++)
            for (int xx = 0; xx < wp; xx++)
                for (int c = 0; c < cp; c++) {
                    int iy = yy - q->pt, ix = xx - q->pl;
                    bool in = iy >= 0 && iy < q->h && ix >= 0 && ix < q->w && c < q->c;
                    xp[(((size_t)b * hp + yy) * wp + xx) * cp + c] =
                        in ? x[(((size_t)b * q->c + c) * q->h + iy) * q->w + ix] : (uint8_t)xz;
                }
    long bad = 0;
    for (int b = 0; b < q->n; b++)
        for (int m = 0; m < q->m; m++)
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    /* the kernel: K in chunks of 16 within the padded buffer, then the correction */
                    long base = (((long)b * hp + (long)oy * q->sh) * wp + (long)ox * q->sw) * cp;
                    int32_t acc = 0, sx = 0;
                    for (int k = 0; k < q->kh * q->kw * cp; k++) {
                        int tap = k / cp, ci = k % cp, ky = tap / q->kw, kx = tap % q->kw;
                        int xv = xp[base + ((long)ky * q->dh * wp + (long)kx * q->dw) * cp + ci];
                        int wv = q->u8w ? pw[(size_t)m * kp + k] : (int8_t)pw[(size_t)m * kp + k];
                        acc += xv * wv;
                        sx += xv;
                    }
                    int kreal = q->kh * q->kw * q->c, kpadded = q->kh * q->kw * (cp - q->c);
                    acc += -xz * sums[m] - wz[m] * (sx - kpadded * xz) + kreal * xz * wz[m];
                    /* ONNX: (x - xz) * w over the taps inside the image */
                    int32_t ref = 0;
                    for (int c = 0; c < q->c; c++)
                        for (int ky = 0; ky < q->kh; ky++)
                            for (int kx = 0; kx < q->kw; kx++) {
                                int iy = oy * q->sh - q->pt + ky * q->dh, ix = ox * q->sw - q->pl + kx * q->dw;
                                if (iy < 0 || iy >= q->h || ix < 0 || ix >= q->w)
                                    continue;
                                ref += (x[(((size_t)b * q->c + c) * q->h + iy) * q->w + ix] - xz) *
                                       (w[(((size_t)m * q->c + c) * q->kh + ky) * q->kw + kx] - wz[m]);
                            }
                    bad += acc != ref;
                }
    assert_int_equal(bad, 0);
    free(w);
    free(wz);
    free(wb);
    free(x);
    free(xp);
    free(packed);
}

static void t_layouts(void **state)
{
    (void)state;
    static const geo cases[] = {
        {1, 3, 17, 13, 16, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, false, false},   /* the RGB layer */
        {2, 20, 9, 11, 70, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, false, false},   /* channels not a multiple of 16 */
        {1, 48, 8, 8, 80, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, false, false},    /* 1x1 */
        {1, 33, 10, 9, 5, 3, 5, 2, 1, 2, 1, 0, 2, 1, 1, false, true},     /* dilation, asymmetric pads */
        {1, 16, 7, 7, 64, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, false, false},    /* SPPF-like 5x5 */
        {1, 13, 11, 10, 24, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, true, true},    /* uint8 weights, zero points */
        {2, 32, 6, 6, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, true, false},      /* uint8 weights, none */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check(&cases[i]);
}

static void t_refuses(void **state)
{
    (void)state;
    int32_t v[4] = {1, 2, 3, 4};
    sh_tensor u8 = {.name = "u", .dtype = SH_DT_INT32, .is_const = true, .data = v,
                    .shape = {.ndim = 4, .d = {1, 1, 2, 2}}};
    unsigned char out[128];
    sh_err err = {0};
    assert_int_equal(sh_cuda_pack_q8_weight(&u8, out, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "u"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_layouts),
        cmocka_unit_test(t_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
