/* Decoding the compact output of device-side score filtering (vision/decode.h
 * sh_yolo_compact) against decoding the whole YOLOv8 output. Random outputs with the threshold
 * test's edge cases (fresh each run; SHOAL_TEST_SEED=n repeats one), filtered by the plain-C
 * reference (yolo_compact_ref.h) with survivors in shuffled order into poisoned buffers, must
 * give the same detections bit for bit, masks included; an overflowing buffer, no survivors,
 * and malformed buffers must give clear answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vision/decode.h"
#include "yolo_compact_ref.h"

static ref_rng RNG;

static ref_head make_head(int nc, int nm, int n, int side, float threshold)
{
    ref_head h = ref_make_head(&RNG, nc, nm, n, side, threshold);
    assert_non_null(h.out);
    return h;
}

/* The compact buffer with room for `rows` survivors, every byte poisoned (NaN) first. */
static void *compact_of(const ref_head *h, int rows, size_t *bytes, size_t *count)
{
    *bytes = sh_yolo_compact_bytes(h->channels, rows);
    assert_true(*bytes > 0);
    void *buf = malloc(*bytes);
    assert_non_null(buf);
    memset(buf, 0xff, *bytes);
    int *order = ref_shuffled(&RNG, h->n);
    assert_non_null(order);
    *count = ref_yolo_compact(h->out, h->channels, h->n, h->nc, h->threshold, rows, order, buf);
    free(order);
    return buf;
}

static void same_detections(const sh_detections *a, const sh_detections *b)
{
    char why[256];
    if (!ref_same_detections(a, b, why, sizeof why))
        fail_msg("compact decode differs from the whole output's: %s", why);
}

/* A 100x70 picture letterboxed into the square model input. */
static sh_transform letterbox(int side)
{
    sh_preprocess_params pp = sh_preprocess_default_params(side, side);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(100, 70, &pp, &xf, NULL), 0);
    return xf;
}

static float *random_protos(int nm, int hw)
{
    float *p = malloc((size_t)nm * hw * hw * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < (size_t)nm * hw * hw; i++)
        p[i] = ref_uniform(&RNG, -2, 2);
    return p;
}

/* Decodes h whole and compact (rows of room) with detections that held other results before
 * (a decoder must replace them); returns the number of detections. */
static size_t check_equal(const ref_head *h, const float *protos, int proto_hw, int side, int rows, float top_k_frac)
{
    sh_transform xf = letterbox(side);
    sh_decode_params p = sh_decode_default_params();
    p.score_threshold = h->threshold;
    if (top_k_frac > 0)
        p.top_k = 1 + (int)(top_k_frac * (float)h->n / 16);
    sh_ftensor full = {h->out, 3, {1, h->channels, h->n}};
    sh_ftensor pr = {protos, 4, {1, h->nm, proto_hw, proto_hw}};
    size_t bytes, count;
    void *buf = compact_of(h, rows, &bytes, &count);
    sh_yolo_compact c = {buf, bytes};
    size_t got_count, held;
    assert_int_equal(sh_yolo_compact_survivors(&c, &got_count, &held, NULL), 0);
    assert_int_equal(got_count, count);
    assert_true(held == count);
    sh_detections *a = sh_detections_create(NULL), *b = sh_detections_create(NULL);
    sh_err err = {0};
    for (int pass = 0; pass < 2; pass++) {   /* the second pass decodes over the first's results */
        int ra = protos ? sh_decode_yolov8_seg(&full, &pr, &xf, &p, a, &err)
                        : sh_decode_yolov8(&full, &xf, &p, a, &err);
        assert_int_equal(ra, 0);
        int rb = protos ? sh_decode_yolov8_seg_compact(&c, &pr, &xf, &p, b, &err)
                        : sh_decode_yolov8_compact(&c, &xf, &p, b, &err);
        if (rb)
            fail_msg("compact decode: %s", err.msg);
        same_detections(a, b);
    }
    size_t n = a->count;
    sh_detections_destroy(a);
    sh_detections_destroy(b);
    free(buf);
    return n;
}

static void detect_compact_equals_full(void **state)
{
    const int shapes[][2] = {{1, 300}, {3, 2100}, {80, 8400}};   /* nc, anchors */
    size_t dets = 0;
    for (int s = 0; s < 3; s++)
        for (int rep = 0; rep < 3; rep++) {
            ref_head h = make_head(shapes[s][0], 0, shapes[s][1], 640, rep == 2 ? 0.5f : 0.25f);
            size_t rows_exact = ref_yolo_compact(h.out, h.channels, h.n, h.nc, h.threshold, 0, NULL,
                                                 (int32_t[8]){0});
            /* room for exactly the survivors, and for more (unwritten rows stay poisoned) */
            dets += check_equal(&h, NULL, 0, 640, (int)rows_exact, 0);
            dets += check_equal(&h, NULL, 0, 640, (int)rows_exact + 17, rep == 1 ? 0.5f : 0);
            free(h.out);
        }
    assert_true(dets > 0);   /* the comparison had something to compare */
}

static void seg_compact_equals_full(void **state)
{
    const int nm = 8, hw = 40, side = 160;
    size_t dets = 0;
    for (int rep = 0; rep < 3; rep++) {
        ref_head h = make_head(rep == 0 ? 1 : 6, nm, 525, side, 0.3f);
        float *protos = random_protos(nm, hw);
        size_t rows = ref_yolo_compact(h.out, h.channels, h.n, h.nc, h.threshold, 0, NULL, (int32_t[8]){0});
        dets += check_equal(&h, protos, hw, side, (int)rows + 5, 0);
        free(protos);
        free(h.out);
    }
    assert_true(dets > 0);
}

/* More survivors than rows: the header says so, the decoder refuses and names the way out,
 * and the full output (what the runtime downloads then) still decodes. */
static void overflow_says_decode_full(void **state)
{
    ref_head h = make_head(4, 0, 1000, 320, 0.25f);
    size_t bytes, count;
    void *buf = compact_of(&h, 7, &bytes, &count);
    assert_true(count > 7);
    sh_yolo_compact c = {buf, bytes};
    size_t got, held;
    assert_int_equal(sh_yolo_compact_survivors(&c, &got, &held, NULL), 0);
    assert_int_equal(got, count);
    assert_int_equal(held, 7);
    sh_transform xf = letterbox(320);
    sh_decode_params p = sh_decode_default_params();
    sh_detections *d = sh_detections_create(NULL);
    sh_err err = {0};
    assert_int_equal(sh_decode_yolov8_compact(&c, &xf, &p, d, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "decode the full output"));
    sh_ftensor full = {h.out, 3, {1, h.channels, h.n}};
    assert_int_equal(sh_decode_yolov8(&full, &xf, &p, d, &err), 0);
    assert_true(d->count > 0);
    /* a buffer cut to its header plus the rows it holds is still whole */
    c.bytes = sh_yolo_compact_bytes(h.channels, 7);
    assert_int_equal(sh_yolo_compact_survivors(&c, &got, &held, NULL), 0);
    sh_detections_destroy(d);
    free(buf);
    free(h.out);
}

static void zero_survivors(void **state)
{
    ref_head h = make_head(5, 4, 600, 320, 0.25f);
    h.threshold = 1.5f;   /* above every score, the edge cases' included */
    float *protos = random_protos(4, 80);
    for (int rows = 0; rows < 2; rows++) {
        size_t bytes, count;
        void *buf = compact_of(&h, rows, &bytes, &count);
        assert_int_equal(count, 0);
        assert_int_equal(check_equal(&h, protos, 80, 320, rows, 0), 0);
        free(buf);
    }
    free(protos);
    free(h.out);
}

/* Decodes a fresh valid buffer with header word w set to value; w = -1: row 0's anchor set to
 * value instead, w = -2: row 1's anchor set to row 0's. cut: bytes handed over (0: all). */
static int decode_tampered(const ref_head *h, int w, int32_t value, size_t cut, sh_err *err)
{
    size_t bytes, count;
    void *buf = compact_of(h, 64, &bytes, &count);
    assert_true(count >= 2);
    char *row0 = (char *)buf + 4 * SH_YOLO_COMPACT_HEADER_WORDS, *row1 = row0 + 4 * (size_t)(1 + h->channels);
    if (w >= 0)
        memcpy((char *)buf + 4 * (size_t)w, &value, 4);
    else if (w == -1)
        memcpy(row0, &value, 4);
    else
        memcpy(row1, row0, 4);
    sh_yolo_compact c = {buf, cut ? cut : bytes};
    sh_transform xf = letterbox(320);
    sh_decode_params p = sh_decode_default_params();
    p.score_threshold = h->threshold;
    sh_detections *d = sh_detections_create(NULL);
    int rc = sh_decode_yolov8_compact(&c, &xf, &p, d, err);
    sh_detections_destroy(d);
    free(buf);
    return rc;
}

static void malformed_buffers(void **state)
{
    ref_head h = make_head(4, 0, 500, 320, 0.25f);
    const struct {
        int word;
        int32_t value;
        size_t cut;
        int status;
        const char *says;
    } cases[] = {
        {SH_YOLO_COMPACT_HEADER_WORDS - 1, 0, 20, SHOAL_ERR_SHAPE, "shorter than its 32-byte header"},
        {SH_YOLO_COMPACT_CHANNELS, 4, 0, SHOAL_ERR_SHAPE, "is not [4+nc, N]"},
        {SH_YOLO_COMPACT_ANCHORS, 0, 0, SHOAL_ERR_SHAPE, "is not [4+nc, N]"},
        {SH_YOLO_COMPACT_CLASSES, 5, 0, SHOAL_ERR_SHAPE, "scanned 5 classes of 8 channels"},
        {SH_YOLO_COMPACT_CLASSES, 3, 0, SHOAL_ERR_SHAPE, "filtered over 3 classes, the decoder reads 4"},
        {SH_YOLO_COMPACT_COUNT, 501, 0, SHOAL_ERR_SHAPE, "counts 501 survivors of 500 anchors"},
        {SH_YOLO_COMPACT_ROWS, -1, 0, SHOAL_ERR_SHAPE, "room for -1"},
        {SH_YOLO_COMPACT_THRESHOLD, 0x3f000000, 0, SHOAL_ERR_INVALID_ARG, "filtered at score 0.5, decoding at 0.25"},
        {SH_YOLO_COMPACT_HEADER_WORDS - 1, 0, 40, SHOAL_ERR_SHAPE, "is cut short"},
        {-1, 500, 0, SHOAL_ERR_SHAPE, "names anchor 500 of 500"},
        {-1, -3, 0, SHOAL_ERR_SHAPE, "names anchor -3 of 500"},
        {-2, 0, 0, SHOAL_ERR_SHAPE, "twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sh_err err = {0};
        int rc = decode_tampered(&h, cases[i].word, cases[i].value, cases[i].cut, &err);
        if (rc != cases[i].status || !strstr(err.msg, cases[i].says))
            fail_msg("case %zu: status %d (%s), expected %d saying '%s'", i, rc, err.msg, cases[i].status,
                     cases[i].says);
    }
    /* NULL, misaligned, and a detect buffer handed to the seg decoder */
    sh_transform xf = letterbox(320);
    sh_decode_params p = sh_decode_default_params();
    sh_detections *d = sh_detections_create(NULL);
    sh_err err = {0};
    sh_yolo_compact none = {NULL, 0};
    assert_int_equal(sh_decode_yolov8_compact(&none, &xf, &p, d, &err), SHOAL_ERR_INVALID_ARG);
    size_t bytes, count;
    char *buf = compact_of(&h, 64, &bytes, &count);
    char *odd = malloc(bytes + 1);
    memcpy(odd + 1, buf, bytes);
    sh_yolo_compact c = {odd + 1, bytes};
    assert_int_equal(sh_decode_yolov8_compact(&c, &xf, &p, d, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "aligned"));
    float protos[2 * 4 * 4] = {0};
    sh_ftensor pr = {protos, 4, {1, 2, 4, 4}};
    c.data = buf;
    assert_int_equal(sh_decode_yolov8_seg_compact(&c, &pr, &xf, &p, d, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "yolov8-seg"));
    sh_detections_destroy(d);
    free(odd);
    free(buf);
    free(h.out);
}

static void compact_sizes(void **state)
{
    assert_int_equal(sh_yolo_compact_bytes(116, 512), 32 + 512 * 117 * 4);
    assert_int_equal(sh_yolo_compact_bytes(5, 0), 32);
    assert_int_equal(sh_yolo_compact_bytes(4, 10), 0);
    assert_int_equal(sh_yolo_compact_bytes(65537, 10), 0);
    assert_int_equal(sh_yolo_compact_bytes(8, -1), 0);
    assert_int_equal(sh_yolo_compact_bytes(8, (int64_t)INT32_MAX + 1), 0);
    assert_true(sh_yolo_compact_bytes(65536, INT32_MAX) > (size_t)INT32_MAX);
}

int main(void)
{
    RNG = ref_rng_from(ref_fresh_seed());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(detect_compact_equals_full), cmocka_unit_test(seg_compact_equals_full),
        cmocka_unit_test(overflow_says_decode_full),  cmocka_unit_test(zero_survivors),
        cmocka_unit_test(malformed_buffers),          cmocka_unit_test(compact_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
