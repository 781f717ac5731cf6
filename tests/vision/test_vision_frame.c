/* The frame ops' functions (vision/frame.h) under failing allocations and malformed tensors:
 * every allocation the decode, NMS and mask stages make is failed in turn on blind_road's
 * reference outputs (models/), and each failure must come back as SHOAL_ERR_NO_MEMORY with
 * nothing left allocated, while the run that fails nothing gives the host decoder's masks.
 * Given workspaces of the sizes their *_ws functions name, the stages must run with every
 * allocation failing and write what the allocating run wrote. A mask pool too small for the
 * frame's masks must leave out the masks the placement rule says, and only those. Transforms,
 * counts and mask boxes that no op could have written are refused. Skips (77) without models/. */
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
#include "vision/decode-impl.h"
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

#define FRAME_W 500
#define FRAME_H 375

typedef struct stage_bufs {
    float *cand, *det;
    int32_t *cand_ids, *det_ids, cand_count, det_count, *mask_boxes;
    uint8_t *pool;
    size_t n, pool_bytes;
    void *ws[3];                    /* decode, NMS, masks; NULL: allocate from `a` */
    sh_frame_mask_bounds bounds;
} stage_bufs;

static void bufs_init(stage_bufs *b, const sh_ftensor *head, const sh_ftensor *protos)
{
    *b = (stage_bufs){.n = (size_t)sh_frame_anchors(SH_FRAME_DECODER_YOLOV8, head)};
    /* max_detections frames: room for any frame's masks */
    b->pool_bytes = sh_frame_mask_pool(FRAME_W * FRAME_H, MAX_DETS, MAX_DETS);
    b->cand = malloc(b->n * 5 * sizeof(float));
    b->cand_ids = malloc(b->n * 2 * sizeof(int32_t));
    b->det = malloc(MAX_DETS * 5 * sizeof(float));
    b->det_ids = malloc(MAX_DETS * 2 * sizeof(int32_t));
    b->mask_boxes = malloc(MAX_DETS * SH_FRAME_MASK_BOX_WORDS * sizeof(int32_t));
    b->pool = malloc(b->pool_bytes);
    b->bounds = (sh_frame_mask_bounds){.mh = (int)protos->shape[2], .mw = (int)protos->shape[3], .up_w = 640,
                                       .max_w = FRAME_W, .slots = 3};
}

static void bufs_free(stage_bufs *b)
{
    free(b->cand);
    free(b->cand_ids);
    free(b->det);
    free(b->det_ids);
    free(b->mask_boxes);
    free(b->pool);
    for (int k = 0; k < 3; k++)
        free(b->ws[k]);
}

/* Decode, NMS and masks of the reference outputs for a 500x375 frame, allocating from `a`
 * unless b holds workspaces. */
static int run_stages(sh_allocator *a, const sh_ftensor *head, const sh_ftensor *protos, const float xf[12],
                      const sh_decode_params *dp, stage_bufs *b, sh_err *err)
{
    int nc = (int)(head->shape[1] - 4 - protos->shape[1]);
    int rc = sh_frame_decode(a, b->ws[0], SH_FRAME_DECODER_YOLOV8, head, nc, 640, 640, dp->score_threshold, b->n,
                             b->cand, b->cand + 4 * b->n, b->cand_ids, &b->cand_count, err);
    if (rc == 0)
        rc = sh_frame_nms(a, b->ws[1], dp, b->cand, b->cand + 4 * b->n, b->cand_ids, b->n, &b->cand_count, xf,
                          MAX_DETS, b->det, b->det + 4 * MAX_DETS, b->det_ids, &b->det_count, err);
    if (rc == 0)
        rc = sh_frame_masks(a, b->ws[2], &b->bounds, head, protos, b->det, b->det_ids, MAX_DETS, &b->det_count, xf,
                            dp->mask_threshold, b->mask_boxes, b->pool, b->pool_bytes, err);
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

    stage_bufs b;
    bufs_init(&b, &head, &protos);

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
                                      b.mask_boxes, b.pool, b.pool_bytes, got, &err), 0);
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
    bufs_free(&b);
    sh_npy_free(a, &o0);
    sh_npy_free(a, &o1);
    sh_allocator_destroy(a);
}

static void load_case(sh_allocator *a, sh_npy *o0, sh_npy *o1, sh_ftensor *head, sh_ftensor *protos,
                      float words[SH_FRAME_XF_WORDS], sh_transform *xf, sh_decode_params *dp)
{
    sh_err err = {0};
    assert_int_equal(sh_npy_read_file(a, HEAD, o0, &err), 0);
    assert_int_equal(sh_npy_read_file(a, PROTOS, o1, &err), 0);
    *head = ften(o0);
    *protos = ften(o1);
    sh_preprocess_params pp = sh_preprocess_default_params(640, 640);
    assert_int_equal(sh_transform_compute(FRAME_W, FRAME_H, &pp, xf, &err), 0);
    sh_transform_pack(xf, words);
    *dp = sh_decode_default_params();
    dp->max_detections = MAX_DETS;
}

/* With workspaces the stages allocate nothing and write what the allocating run wrote. */
static void test_workspaces(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_npy o0 = {0}, o1 = {0};
    sh_ftensor head, protos;
    float words[SH_FRAME_XF_WORDS];
    sh_transform xf;
    sh_decode_params dp;
    load_case(a, &o0, &o1, &head, &protos, words, &xf, &dp);
    sh_err err = {0};
    stage_bufs want, got;
    bufs_init(&want, &head, &protos);
    bufs_init(&got, &head, &protos);
    assert_int_equal(run_stages(a, &head, &protos, words, &dp, &want, &err), 0);
    assert_true(want.det_count > 1);
    size_t sizes[3] = {sh_frame_decode_ws(SH_FRAME_DECODER_YOLOV8, (int64_t)got.n),
                       sh_frame_nms_ws(got.n, MAX_DETS), sh_frame_masks_ws(&got.bounds, MAX_DETS)};
    for (int k = 0; k < 3; k++) {
        assert_true(sizes[k] > 0 && sizes[k] < ((size_t)1 << 30));
        got.ws[k] = malloc(sizes[k]);
        memset(got.ws[k], 0xA5, sizes[k]);   /* scratch holds garbage, as an arena does */
    }
    /* poisoned outputs: whatever the run does not write differs from the allocating run */
    memset(got.mask_boxes, 0x5A, MAX_DETS * SH_FRAME_MASK_BOX_WORDS * sizeof(int32_t));
    memset(got.pool, 0x5A, got.pool_bytes);
    sh_alloc_stats before = sh_allocator_stats(a);
    sh_allocator_fail_after(a, 0, 1);
    int rc = run_stages(a, &head, &protos, words, &dp, &got, &err);
    sh_allocator_fail_after(a, -1, 0);
    if (rc)
        fail_msg("with workspaces: %s", err.msg);
    sh_alloc_stats after = sh_allocator_stats(a);
    assert_int_equal(after.n_allocs, before.n_allocs);
    assert_int_equal(after.n_failed, before.n_failed);
    assert_int_equal(got.cand_count, want.cand_count);
    assert_int_equal(got.det_count, want.det_count);
    size_t nc = (size_t)want.cand_count, nd = (size_t)want.det_count;
    assert_memory_equal(got.cand, want.cand, nc * 4 * sizeof(float));
    assert_memory_equal(got.cand + 4 * got.n, want.cand + 4 * want.n, nc * sizeof(float));
    assert_memory_equal(got.det, want.det, nd * 4 * sizeof(float));
    assert_memory_equal(got.det_ids, want.det_ids, nd * sizeof(int32_t));
    assert_memory_equal(got.mask_boxes, want.mask_boxes, nd * SH_FRAME_MASK_BOX_WORDS * sizeof(int32_t));
    size_t used = sh_frame_mask_pool_used(want.mask_boxes, nd);
    assert_true(used > 0);
    assert_memory_equal(got.pool, want.pool, used);
    /* a workspace sized for narrower frames is refused with a status, never overrun */
    got.bounds.max_w = 8;
    rc = run_stages(a, &head, &protos, words, &dp, &got, &err);
    assert_int_equal(rc, SHOAL_ERR_INTERNAL);
    bufs_free(&want);
    bufs_free(&got);
    sh_npy_free(a, &o0);
    sh_npy_free(a, &o1);
    sh_allocator_destroy(a);
}

/* A pool of half the bytes the frame's masks need: masks are placed in rank order, each right
 * after the last that fitted; those that do not fit are left out and counted, the others are
 * the host decoder's. */
static void test_pool_left_out(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_npy o0 = {0}, o1 = {0};
    sh_ftensor head, protos;
    float words[SH_FRAME_XF_WORDS];
    sh_transform xf;
    sh_decode_params dp;
    load_case(a, &o0, &o1, &head, &protos, words, &xf, &dp);
    sh_err err = {0};
    sh_detections *want = sh_detections_create(a), *got = sh_detections_create(a);
    assert_int_equal(sh_decode_yolov8_seg(&head, &protos, &xf, &dp, want, &err), 0);
    size_t need = 0;
    for (size_t i = 0; i < want->count; i++) {
        const sh_mask *m = want->items[i].mask;
        need += ((size_t)m->width * m->height + 7) / 8;
    }
    stage_bufs b;
    bufs_init(&b, &head, &protos);
    b.pool_bytes = need / 2;
    assert_int_equal(run_stages(a, &head, &protos, words, &dp, &b, &err), 0);
    assert_int_equal(sh_frame_results(b.det, b.det + 4 * MAX_DETS, b.det_ids, MAX_DETS, &b.det_count, words,
                                      b.mask_boxes, b.pool, b.pool_bytes, got, &err), 0);
    assert_int_equal(want->count, got->count);
    size_t used = 0;
    int left_out = 0, kept = 0;
    for (size_t i = 0; i < want->count; i++) {
        const sh_mask *w = want->items[i].mask, *g = got->items[i].mask;
        size_t bytes = ((size_t)w->width * w->height + 7) / 8;
        if (bytes > b.pool_bytes - used) {
            assert_null(g);
            left_out++;
            continue;
        }
        used += bytes;
        kept++;
        assert_non_null(g);
        assert_int_equal(w->area, g->area);
        assert_int_equal(w->n_runs, g->n_runs);
        assert_memory_equal(w->runs, g->runs, w->n_runs * sizeof *w->runs);
    }
    assert_true(left_out > 0 && kept > 0);
    assert_int_equal(got->masks_left_out, left_out);
    assert_int_equal(sh_frame_mask_pool_used(b.mask_boxes, (size_t)b.det_count), used);
    sh_detections_destroy(want);
    sh_detections_destroy(got);
    bufs_free(&b);
    sh_npy_free(a, &o0);
    sh_npy_free(a, &o1);
    sh_allocator_destroy(a);
}

/* Runs read from packed bits against a pixel-by-pixel reading: boxes of every width up to
 * two 64-bit words and then some, runs short and long across byte and word edges, each
 * pool exactly as long as its mask so a read past its end shows under ASan. */
static void expect_runs_of(sh_allocator *a, const uint8_t *bits, int w, int h)
{
    size_t npx = (size_t)w * h, area = 0, n = 0;
    uint32_t *want = malloc((npx + 1) * sizeof *want);
    uint32_t len = 0;
    int cur = 0;
    for (size_t k = 0; k < npx; k++) {
        int v = (bits[k / 8] >> (k & 7)) & 1;
        area += (size_t)v;
        if (v != cur) {
            want[n++] = len;
            len = 0;
            cur = v;
        }
        len++;
    }
    want[n++] = len;
    int32_t box[SH_FRAME_MASK_BOX_WORDS] = {3, 4, w, h, (int32_t)area, 0};
    sh_mask *m = NULL;
    sh_err err = {0};
    assert_int_equal(sh_mask_from_bits(a, box, bits, (npx + 7) / 8, &m, &err), 0);
    assert_int_equal(m->n_runs, n);
    assert_int_equal(m->area, area);
    assert_memory_equal(m->runs, want, n * sizeof *want);
    sh_free(a, m->runs);
    sh_free(a, m);
    free(want);
}

static void test_runs_from_bits(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    uint32_t seed = 12345;
    for (int w = 1; w <= 140; w += (w < 70 ? 1 : 7))
        for (int h = 1; h <= 9; h += 4)
            for (int pattern = 0; pattern < 4; pattern++) {
                size_t npx = (size_t)w * h, bytes = (npx + 7) / 8;
                uint8_t *bits = malloc(bytes);
                int v = pattern == 1;
                size_t left = 0;
                memset(bits, 0, bytes);
                for (size_t k = 0; k < npx; k++) {
                    if (pattern >= 2 && left-- == 0) {
                        seed = seed * 1103515245u + 12345u;
                        left = pattern == 2 ? (seed >> 16) % 5 : (seed >> 16) % 200;
                        v = !v;
                    }
                    bits[k / 8] |= (uint8_t)(v << (k & 7));
                }
                expect_runs_of(a, bits, w, h);
                free(bits);
            }
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

    /* a mask past the pool's end or starting beyond it, or an area its bits do not have */
    uint8_t pool[8];
    memset(pool, 0x0F, sizeof pool);
    int32_t too_big[2 * 6] = {0, 0, 9, 8, 36, 0, 0, 0, 2, 2, 2, 0};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, too_big, pool, 8, d, &err), SHOAL_ERR_SHAPE);
    assert_int_equal(d->count, 0);
    int32_t past[2 * 6] = {0, 0, 2, 2, 4, 0, 0, 0, 2, 2, 4, 9};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, past, pool, 8, d, &err), SHOAL_ERR_SHAPE);
    int32_t wrong_area[2 * 6] = {0, 0, 4, 2, 4, 0, 0, 0, 2, 2, 3, 1};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, wrong_area, pool, 8, d, &err),
                     SHOAL_ERR_INTERNAL);
    int32_t fits[2 * 6] = {0, 0, 4, 2, 4, 0, 0, 0, 2, 2, 4, 1};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, fits, pool, 8, d, &err), 0);
    assert_int_equal(sh_mask_at(d->items[0].mask, 0, 0), 1);
    assert_int_equal(sh_mask_at(d->items[0].mask, 0, 1), 0);
    assert_int_equal(d->items[1].mask->area, 4);
    assert_int_equal(d->masks_left_out, 0);
    assert_int_equal(sh_frame_mask_pool_used(fits, 2), 2);
    /* a mask left out of the pool: the detection stays, without a mask, and is counted */
    int32_t left_out[2 * 6] = {0, 0, 4, 2, 4, 0, 0, 0, 2, 2, 0, -1};
    assert_int_equal(sh_frame_results(boxes, scores, ids, 2, &two, words, left_out, pool, 8, d, &err), 0);
    assert_int_equal(d->count, 2);
    assert_null(d->items[1].mask);
    assert_int_equal(d->masks_left_out, 1);
    assert_int_equal(sh_frame_mask_pool_used(left_out, 2), 1);
    sh_detections_destroy(d);

    /* pools: whole frames' bytes, no more than one a detection, offsets within int32 */
    assert_int_equal(sh_frame_mask_pool(1920 * 1080, 4, 100), 4 * 259200);
    assert_int_equal(sh_frame_mask_pool(1920 * 1080, 400, 100), 100 * 259200);
    assert_int_equal(sh_frame_mask_pool(9, 2, 100), 4);
    assert_int_equal(sh_frame_mask_pool(0, 4, 100), 0);
    assert_int_equal(sh_frame_mask_pool(1920 * 1080, 0, 100), 0);
    assert_int_equal(sh_frame_mask_pool((int64_t)SH_IMAGE_MAX_PIXELS, 300, 300), 0);

    /* a frame that does not fit the frame input, and a size of nothing */
    uint8_t frame[4 * 4 * 3] = {1};
    float out[3 * 640 * 640 / 64];
    const int32_t sizes[3][2] = {{5, 4}, {0, 4}, {4, 0}};
    sh_preprocess_params small = sh_preprocess_default_params(8, 8);
    for (int i = 0; i < 3; i++)
        assert_int_equal(
            sh_frame_to_tensor(a, NULL, frame, sizeof frame, sizes[i], SH_PIXEL_RGB, &small, out, words, &err),
            SHOAL_ERR_INVALID_ARG);
    const int32_t ok[2] = {4, 4};
    assert_int_equal(sh_frame_to_tensor(a, NULL, frame, sizeof frame, ok, SH_PIXEL_RGB, &small, out, words, &err), 0);
    assert_int_equal(
        sh_frame_to_tensor(a, NULL, frame, sizeof frame, ok, (sh_pixel_format)7, &small, out, words, &err),
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
        cmocka_unit_test(test_workspaces),
        cmocka_unit_test(test_pool_left_out),
        cmocka_unit_test(test_runs_from_bits),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
