/* The frame ops' functions (vision/frame.h) under failing allocations and malformed tensors:
 * every allocation the decode, NMS and mask stages make is failed in turn on blind_road's
 * reference outputs (models/), and each failure must come back as SHOAL_ERR_NO_MEMORY with
 * nothing left allocated, while the run that fails nothing gives the host decoder's masks.
 * Transforms, counts and mask boxes that no op could have written are refused. Skips (77)
 * without models/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/npy.h"
#include "vision/frame.h"

#define HEAD SHOAL_MODELS_DIR "/blind_road.output0.npy"
#define PROTOS SHOAL_MODELS_DIR "/blind_road.output1.npy"
#define MAX_DETS 50

static sh_ftensor ften(const sh_npy *t)
{
    sh_ftensor f = {t->data, t->shape.ndim, {0}};
    for (int i = 0; i < t->shape.ndim && i < 4; i++)
        f.shape[i] = t->shape.d[i];
    return f;
}

typedef struct stage_bufs {
    float *cand, *det;
    int32_t *cand_ids, *det_ids, cand_count, det_count, *mask_boxes;
    uint8_t *bits;
    size_t n, slot;
} stage_bufs;

/* Decode, NMS and masks of the reference outputs for a 500x375 frame, allocating from `a`. */
static int run_stages(sh_allocator *a, const sh_ftensor *head, const sh_ftensor *protos, const float xf[12],
                      const sh_decode_params *dp, stage_bufs *b, sh_err *err)
{
    int nc = (int)(head->shape[1] - 4 - protos->shape[1]);
    int rc = sh_frame_decode(a, SH_FRAME_DECODER_YOLOV8, head, nc, 640, 640, dp->score_threshold, b->n, b->cand,
                             b->cand + 4 * b->n, b->cand_ids, &b->cand_count, err);
    if (rc == 0)
        rc = sh_frame_nms(a, dp, b->cand, b->cand + 4 * b->n, b->cand_ids, b->n, &b->cand_count, xf, MAX_DETS, b->det,
                          b->det + 4 * MAX_DETS, b->det_ids, &b->det_count, err);
    if (rc == 0)
        rc = sh_frame_masks(a, head, protos, b->det, b->det_ids, MAX_DETS, &b->det_count, xf, dp->mask_threshold,
                            b->mask_boxes, b->bits, b->slot, err);
    return rc;
}

static void test_failing_allocations(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_npy o0 = {0}, o1 = {0};
    sh_err err = {0};
    assert_int_equal(sh_npy_read_file(a, HEAD, &o0, &err), 0);
    assert_int_equal(sh_npy_read_file(a, PROTOS, &o1, &err), 0);
    sh_ftensor head = ften(&o0), protos = ften(&o1);
    sh_preprocess_params pp = sh_preprocess_default_params(640, 640);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(500, 375, &pp, &xf, &err), 0);
    float words[SH_FRAME_XF_WORDS];
    sh_transform_pack(&xf, words);
    sh_decode_params dp = sh_decode_default_params();
    dp.max_detections = MAX_DETS;

    stage_bufs b = {.n = (size_t)sh_frame_anchors(SH_FRAME_DECODER_YOLOV8, &head), .slot = sh_frame_mask_slot(500 * 375)};
    b.cand = malloc(b.n * 5 * sizeof(float));
    b.cand_ids = malloc(b.n * 2 * sizeof(int32_t));
    b.det = malloc(MAX_DETS * 5 * sizeof(float));
    b.det_ids = malloc(MAX_DETS * 2 * sizeof(int32_t));
    b.mask_boxes = malloc(MAX_DETS * SH_FRAME_MASK_BOX_WORDS * sizeof(int32_t));
    b.bits = malloc(MAX_DETS * b.slot);

    size_t base = sh_allocator_stats(a).in_use;
    uint64_t before = sh_allocator_stats(a).n_allocs;
    assert_int_equal(run_stages(a, &head, &protos, words, &dp, &b, &err), 0);
    uint64_t needed = sh_allocator_stats(a).n_allocs - before;
    assert_true(needed > 0 && b.det_count > 0);
    assert_int_equal(sh_allocator_stats(a).in_use, base);

    /* the masks the host decoder makes of the same outputs */
    sh_detections *want = sh_detections_create(a), *got = sh_detections_create(a);
    assert_int_equal(sh_decode_yolov8_seg(&head, &protos, &xf, &dp, want, &err), 0);
    assert_int_equal(sh_frame_results(b.det, b.det + 4 * MAX_DETS, b.det_ids, MAX_DETS, &b.det_count, words,
                                      b.mask_boxes, b.bits, b.slot, got, &err), 0);
    assert_int_equal(want->count, got->count);
    for (size_t i = 0; i < want->count; i++) {
        const sh_mask *w = want->items[i].mask, *g = got->items[i].mask;
        assert_int_equal(w->area, g->area);
        assert_int_equal(w->n_runs, g->n_runs);
        assert_memory_equal(w->runs, g->runs, w->n_runs * sizeof *w->runs);
    }
    sh_detections_destroy(want);
    sh_detections_destroy(got);

    base = sh_allocator_stats(a).in_use;
    /* The masks' threads grow their scratch in whatever order they pick masks, so a run may
     * make fewer allocations than the first: one that succeeds must not have reached the
     * failing allocation. */
    int failures = 0;
    for (uint64_t k = 0; k < needed; k++) {
        uint64_t n0 = sh_allocator_stats(a).n_allocs;
        sh_allocator_fail_after(a, (long)k, 0);
        int rc = run_stages(a, &head, &protos, words, &dp, &b, &err);
        sh_allocator_fail_after(a, -1, 0);
        if (rc == 0 && sh_allocator_stats(a).n_allocs - n0 > k)
            fail_msg("allocation %llu was to fail, the run succeeded", (unsigned long long)k);
        if (rc != 0 && rc != SHOAL_ERR_NO_MEMORY)
            fail_msg("allocation %llu failed: status %d (%s)", (unsigned long long)k, rc, err.msg);
        failures += rc != 0;
        assert_int_equal(sh_allocator_stats(a).in_use, base);
    }
    assert_true(failures > 0);
    free(b.cand);
    free(b.cand_ids);
    free(b.det);
    free(b.det_ids);
    free(b.mask_boxes);
    free(b.bits);
    sh_npy_free(a, &o0);
    sh_npy_free(a, &o1);
    sh_allocator_destroy(a);
}

static void test_malformed(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_preprocess_params pp = sh_preprocess_default_params(640, 640);
    sh_transform xf, back;
    assert_int_equal(sh_transform_compute(500, 375, &pp, &xf, &err), 0);
    float words[SH_FRAME_XF_WORDS];
    sh_transform_pack(&xf, words);
    assert_int_equal(sh_transform_unpack(words, &back, &err), 0);
    assert_memory_equal(&xf, &back, sizeof xf);
    const int bad_word[] = {0, 1, 2, 6, 8, 11};
    const float bad_value[] = {0.0f, -1.0f, NAN, 0.5f, 1e9f, INFINITY};
    for (size_t i = 0; i < sizeof bad_word / sizeof bad_word[0]; i++) {
        float w[SH_FRAME_XF_WORDS];
        memcpy(w, words, sizeof w);
        w[bad_word[i]] = bad_value[i];
        assert_int_equal(sh_transform_unpack(w, &back, &err), SHOAL_ERR_INVALID_ARG);
    }

    float boxes[2 * 4] = {1, 2, 30, 40, 5, 6, 70, 80}, scores[2] = {0.9f, 0.8f};
    int32_t ids[2 * 2] = {0, 1, 17, 42};
    sh_detections *d = sh_detections_create(a);
    const int32_t counts[] = {-1, 3};
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &counts[i], words, NULL, NULL, 0, d, &err),
                         SHOAL_ERR_INVALID_ARG);
    int32_t two = 2;
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, NULL, NULL, 0, d, &err), 0);
    assert_int_equal(d->count, 2);
    assert_int_equal(d->items[1].anchor, 42);
    assert_int_equal(d->items[1].class_id, 1);

    /* a mask box bigger than its slot, or an area its bits do not have */
    uint8_t bits[2 * 4];
    memset(bits, 0x0F, sizeof bits);
    int32_t too_big[2 * 5] = {0, 0, 8, 5, 20, 0, 0, 2, 2, 2};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, too_big, bits, 4, d, &err), SHOAL_ERR_SHAPE);
    assert_int_equal(d->count, 0);
    int32_t wrong_area[2 * 5] = {0, 0, 4, 2, 4, 0, 0, 2, 2, 3};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, wrong_area, bits, 4, d, &err),
                     SHOAL_ERR_INTERNAL);
    int32_t fits[2 * 5] = {0, 0, 4, 2, 4, 0, 0, 2, 2, 4};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, fits, bits, 4, d, &err), 0);
    assert_int_equal(sh_mask_at(d->items[0].mask, 0, 0), 1);
    assert_int_equal(sh_mask_at(d->items[0].mask, 0, 1), 0);
    sh_detections_destroy(d);

    /* a frame that does not fit the frame input, and a size of nothing */
    uint8_t frame[4 * 4 * 3] = {1};
    float out[3 * 640 * 640 / 64];
    const int32_t sizes[3][2] = {{5, 4}, {0, 4}, {4, 0}};
    sh_preprocess_params small = sh_preprocess_default_params(8, 8);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sh_frame_to_tensor(a, frame, sizeof frame, sizes[i], SH_PIXEL_RGB, &small, out, words, &err),
                         SHOAL_ERR_INVALID_ARG);
    const int32_t ok[2] = {4, 4};
    assert_int_equal(sh_frame_to_tensor(a, frame, sizeof frame, ok, SH_PIXEL_RGB, &small, out, words, &err), 0);
    assert_int_equal(sh_frame_to_tensor(a, frame, sizeof frame, ok, (sh_pixel_format)7, &small, out, words, &err),
                     SHOAL_ERR_INVALID_ARG);
    sh_allocator_destroy(a);
}

int main(void)
{
    struct stat st;
    if (stat(HEAD, &st) != 0 || stat(PROTOS, &st) != 0) {
        printf("models/ absent: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failing_allocations),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
