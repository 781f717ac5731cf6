/* The frame graph ops on host buffers (vision/frame.h): thin layers over the host pipeline's
 * own functions, so one implementation carries the semantics. */
#include "vision/frame.h"

#include <assert.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "core/scratch.h"
#include "vision/decode-impl.h"

/* ids tensors are int32 and the candidates' arrays int: the op reads one as the other. */
static_assert(sizeof(int) == sizeof(int32_t), "frame ops read int32 ids as int");

void sh_transform_pack(const sh_transform *xf, float w[SH_FRAME_XF_WORDS])
{
    const float v[SH_FRAME_XF_WORDS] = {
        xf->scale_x, xf->scale_y, xf->pad_x, xf->pad_y, xf->origin_x, xf->origin_y,
        (float)xf->src_w, (float)xf->src_h, (float)xf->dst_w, (float)xf->dst_h,
        (float)xf->resized_w, (float)xf->resized_h,
    };
    memcpy(w, v, sizeof v);
}

static bool side_ok(float v)
{
    return v >= 1 && v <= SH_IMAGE_MAX_SIDE && v == floorf(v);
}

int sh_transform_unpack(const float w[SH_FRAME_XF_WORDS], sh_transform *xf, sh_err *err)
{
    for (int i = 6; i < SH_FRAME_XF_WORDS; i++)
        if (!side_ok(w[i]))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "frame transform: size word %d is %g", i, w[i]);
    if (!(w[0] > 0) || !(w[1] > 0) || !isfinite(w[0]) || !isfinite(w[1]) || !isfinite(w[2]) || !isfinite(w[3]) ||
        !isfinite(w[4]) || !isfinite(w[5]))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "frame transform: scale %g x %g, pad %g, %g is not a transform",
                       w[0], w[1], w[2], w[3]);
    *xf = (sh_transform){
        .scale_x = w[0], .scale_y = w[1], .pad_x = w[2], .pad_y = w[3], .origin_x = w[4], .origin_y = w[5],
        .src_w = (int)w[6], .src_h = (int)w[7], .dst_w = (int)w[8], .dst_h = (int)w[9],
        .resized_w = (int)w[10], .resized_h = (int)w[11],
    };
    return 0;
}

size_t sh_frame_mask_pool(int64_t max_pixels, int64_t frames, int64_t max_detections)
{
    if (max_pixels < 1 || max_pixels > (int64_t)SH_IMAGE_MAX_PIXELS || frames < 1 || max_detections < 1)
        return 0;
    int64_t n = frames < max_detections ? frames : max_detections, frame = (max_pixels + 7) / 8;
    return n > INT32_MAX / frame ? 0 : (size_t)(n * frame);
}

size_t sh_frame_to_tensor_ws(const sh_preprocess_params *p, size_t capacity, sh_pixel_format format)
{
    return sh_preprocess_pixels_ws(p, capacity, format);
}

int sh_frame_size_check(const int32_t size[2], size_t capacity, sh_err *err)
{
    int32_t w = size[0], h = size[1];
    if (w < 1 || h < 1 || w > SH_IMAGE_MAX_SIDE || h > SH_IMAGE_MAX_SIDE ||
        (size_t)w * (size_t)h > SH_IMAGE_MAX_PIXELS || (size_t)w * (size_t)h * 3 > capacity)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "frame: a %dx%d frame does not fit the %zu-byte frame input", w, h,
                       capacity);
    return 0;
}

int sh_frame_to_tensor(sh_allocator *a, void *ws, const uint8_t *pixels, size_t capacity, const int32_t size[2],
                       sh_pixel_format format, const sh_preprocess_params *p, float *out,
                       float xf_words[SH_FRAME_XF_WORDS], sh_err *err)
{
    int32_t w = size[0], h = size[1];
    int rc = sh_frame_size_check(size, capacity, err);
    if (rc)
        return rc;
    sh_transform xf;
    size_t count = (size_t)p->width * (size_t)p->height * 3;
    rc = ws ? sh_preprocess_pixels_in(ws, sh_frame_to_tensor_ws(p, capacity, format), pixels, w, h, format, p, out,
                                          count, &xf, err)
                : sh_preprocess_pixels(a, pixels, w, h, format, p, out, count, &xf, err);
    if (rc == 0)
        sh_transform_pack(&xf, xf_words);
    return rc;
}

int64_t sh_frame_anchors(sh_frame_decoder d, const sh_ftensor *head)
{
    if (head->ndim == 3 && head->shape[0] == 1)
        return d == SH_FRAME_DECODER_YOLOX ? head->shape[1] : head->shape[2];
    if (head->ndim == 2)
        return d == SH_FRAME_DECODER_YOLOX ? head->shape[0] : head->shape[1];
    return -1;
}

size_t sh_frame_decode_ws(sh_frame_decoder d, int64_t anchors)
{
    return d == SH_FRAME_DECODER_YOLOX ? 0 : sh_yolov8_candidates_ws(anchors);
}

int sh_frame_decode(sh_allocator *a, void *ws, sh_frame_decoder d, const sh_ftensor *head, int n_classes, int in_w,
                    int in_h, float thr, size_t cap, float *boxes, float *scores, int32_t *ids, int32_t *count,
                    sh_err *err)
{
    if (cap > INT32_MAX)
        return sh_errf(err, SHOAL_ERR_SHAPE, "decode: room for %zu candidates, counted in int32", cap);
    /* written straight into the outputs: classes in row 0 of ids, anchors in row 1 */
    sh_candidates c;
    sh_candidates_view(&c, boxes, scores, ids, ids + cap, cap);
    int rc;
    if (d == SH_FRAME_DECODER_YOLOX) {
        rc = sh_yolox_candidates(a, head, in_w, in_h, thr, &c, err);
    } else {
        sh_yolo_cols src;
        if ((rc = sh_yolo_cols_full(head, "yolov8", &src, err)))
            return rc;
        if (n_classes < 1 || n_classes > src.channels - 4)
            return sh_errf(err, SHOAL_ERR_SHAPE, "yolov8: %d classes in an output of %lld channels", n_classes,
                           (long long)src.channels);
        rc = sh_yolov8_candidates(a, ws, &src, n_classes, thr, &c, err);
    }
    if (rc == 0)
        *count = (int32_t)c.n;
    return rc;
}

static int read_count(const int32_t *count, size_t cap, const char *who, size_t *n, sh_err *err)
{
    if (*count < 0 || (size_t)*count > cap)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: count %d is outside 0..%zu", who, *count, cap);
    *n = (size_t)*count;
    return 0;
}

size_t sh_frame_nms_ws(size_t cap, size_t out_cap)
{
    size_t keep;
    if (!sh_mul_size(out_cap + 1, sizeof(size_t), &keep))
        return SIZE_MAX;
    return sh_scratch_need(sh_scratch_need(0, sh_candidates_select_ws(cap)), keep);
}

int sh_frame_nms(sh_allocator *a, void *ws, const sh_decode_params *p, const float *boxes, const float *scores,
                 const int32_t *ids, size_t cap, const int32_t *count, const float xf_words[SH_FRAME_XF_WORDS],
                 size_t out_cap, float *out_boxes, float *out_scores, int32_t *out_ids, int32_t *out_count,
                 sh_err *err)
{
    sh_transform xf;
    size_t n = 0;
    int rc = read_count(count, cap, "nms", &n, err);
    if (rc || (rc = sh_transform_unpack(xf_words, &xf, err)))
        return rc;
    sh_candidates c = {.boxes = (float *)boxes, .scores = (float *)scores, .classes = (int *)ids,
                       .anchors = (int *)(ids + cap), .n = n};
    size_t max_keep = sh_decode_max_keep(p, n);
    if (max_keep > out_cap || out_cap > INT32_MAX)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "nms: up to %zu detections, room for %zu", max_keep, out_cap);
    size_t need = sh_frame_nms_ws(cap, out_cap);
    void *block = ws ? NULL : (need == SIZE_MAX ? NULL : sh_alloc(a, need));
    if (!ws && !block)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "nms: cannot allocate %zu bytes of scratch", need);
    sh_scratch s = sh_scratch_init(ws ? ws : block, need);
    void *rank = sh_scratch_take(&s, sh_candidates_select_ws(cap));
    size_t *keep = sh_scratch_take(&s, (out_cap + 1) * sizeof *keep), nk = 0;
    if (!rank || !keep) {
        sh_free(a, block);
        return sh_errf(err, SHOAL_ERR_INTERNAL, "nms: the workspace lacks room for %zu candidates", cap);
    }
    rc = sh_candidates_select(a, rank, p, &c, max_keep, keep, &nk, err);
    for (size_t k = 0; rc == 0 && k < nk; k++) {
        size_t i = keep[k];
        sh_box_to_image(&xf, boxes + 4 * i, out_boxes + 4 * k);
        out_scores[k] = scores[i];
        out_ids[k] = ids[i];
        out_ids[out_cap + k] = ids[cap + i];
    }
    sh_free(a, block);
    if (rc == 0)
        *out_count = (int32_t)nk;
    return rc;
}

size_t sh_frame_masks_ws(const sh_frame_mask_bounds *b, size_t cap)
{
    size_t slot = sh_frame_mask_slot_bytes(b), slots, items;
    if (slot == SIZE_MAX || b->slots < 1 || !sh_mul_size(slot, (size_t)b->slots, &slots) ||
        !sh_mul_size(cap ? cap : 1, sizeof(sh_detection), &items))
        return SIZE_MAX;
    return sh_scratch_need(sh_scratch_need(0, items), slots);
}

int sh_frame_masks(sh_allocator *a, void *ws, const sh_frame_mask_bounds *b, const sh_ftensor *head,
                   const sh_ftensor *protos, const float *boxes, const int32_t *ids, size_t cap, const int32_t *count,
                   const float xf_words[SH_FRAME_XF_WORDS], float mask_threshold, int32_t *mask_boxes, uint8_t *pool,
                   size_t pool_bytes, sh_err *err)
{
    sh_transform xf;
    size_t n = 0;
    int rc = read_count(count, cap, "masks", &n, err);
    if (rc || (rc = sh_transform_unpack(xf_words, &xf, err)) || n == 0)
        return rc;
    if (ws && !b)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "masks: a workspace without the bounds it was sized for");
    size_t items_bytes = sh_scratch_need(0, (cap ? cap : 1) * sizeof(sh_detection));
    sh_detection *items = ws ? ws : sh_calloc(a, n, sizeof *items);
    if (!items)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "masks: cannot allocate %zu detections", n);
    for (size_t i = 0; i < n; i++)
        items[i] = (sh_detection){.class_id = ids[i], .anchor = ids[cap + i], .x1 = boxes[4 * i],
                                  .y1 = boxes[4 * i + 1], .x2 = boxes[4 * i + 2], .y2 = boxes[4 * i + 3]};
    rc = sh_seg_masks_packed(a, ws ? (char *)ws + items_bytes : NULL, b, head, protos, &xf, mask_threshold, items,
                             (int)n, mask_boxes, pool, pool_bytes, err);
    if (!ws)
        sh_free(a, items);
    return rc;
}

size_t sh_frame_mask_pool_used(const int32_t *mask_boxes, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        const int32_t *b = mask_boxes + i * SH_FRAME_MASK_BOX_WORDS;
        if (b[5] >= 0)
            return b[2] < 0 || b[3] < 0 ? 0 : (size_t)b[5] + ((size_t)b[2] * (size_t)b[3] + 7) / 8;
    }
    return 0;
}

int sh_frame_result_mask(sh_allocator *a, const int32_t *mask_boxes, size_t i, const uint8_t *pool, size_t pool_bytes,
                         sh_mask **out, sh_err *err)
{
    const int32_t *mb = mask_boxes + i * SH_FRAME_MASK_BOX_WORDS;
    *out = NULL;
    if (mb[5] < 0)
        return 0;
    if ((size_t)mb[5] > pool_bytes)
        return sh_errf(err, SHOAL_ERR_SHAPE, "results: mask %zu at byte %d of a %zu-byte pool", i, mb[5], pool_bytes);
    return sh_mask_from_bits(a, mb, pool + mb[5], pool_bytes - (size_t)mb[5], out, err);
}

int sh_frame_results(const float *boxes, const float *scores, const int32_t *ids, size_t cap, const int32_t *count,
                     const float xf_words[SH_FRAME_XF_WORDS], const int32_t *mask_boxes, const uint8_t *pool,
                     size_t pool_bytes, sh_detections *d, sh_err *err)
{
    sh_transform xf;
    size_t n = 0;
    int rc = read_count(count, cap, "results", &n, err);
    if (rc || (rc = sh_transform_unpack(xf_words, &xf, err)))
        return rc;
    sh_detections_clear(d);
    d->image_w = (int)xf.origin_x + xf.src_w;
    d->image_h = (int)xf.origin_y + xf.src_h;
    for (size_t i = 0; i < n && rc == 0; i++) {
        sh_detection det = {.class_id = ids[i], .score = scores[i], .anchor = ids[cap + i], .x1 = boxes[4 * i],
                            .y1 = boxes[4 * i + 1], .x2 = boxes[4 * i + 2], .y2 = boxes[4 * i + 3]};
        if (mask_boxes && mask_boxes[i * SH_FRAME_MASK_BOX_WORDS + 5] < 0)
            d->masks_left_out++;
        else if (mask_boxes && pool && (rc = sh_frame_result_mask(d->alloc, mask_boxes, i, pool, pool_bytes, &det.mask, err)))
            break;
        if ((rc = sh_detections_push(d, &det, err)) && det.mask) {
            sh_free(d->alloc, det.mask->runs);
            sh_free(d->alloc, det.mask);
        }
    }
    if (rc)
        sh_detections_clear(d);
    return rc;
}

int sh_frame_landmarks(const float *out, const float xf_words[SH_FRAME_XF_WORDS], int logits,
                       float landmarks[SH_FRAME_LANDMARK_WORDS], sh_err *err)
{
    sh_transform xf;
    int rc = sh_transform_unpack(xf_words, &xf, err);
    if (rc)
        return rc;
    sh_ftensor t = {out, 1, {SH_FRAME_LANDMARK_WORDS}};
    sh_landmark_params lp = {.logits = logits};
    sh_hand_landmarks hand;
    if ((rc = sh_decode_hand_landmarks(&t, &xf, &lp, &hand, err)))
        return rc;
    for (int i = 0; i < SH_HAND_POINTS; i++) {
        landmarks[3 * i] = hand.x[i];
        landmarks[3 * i + 1] = hand.y[i];
        landmarks[3 * i + 2] = hand.z[i];
    }
    landmarks[3 * SH_HAND_POINTS] = hand.presence;
    landmarks[3 * SH_HAND_POINTS + 1] = hand.handedness;
    return 0;
}
