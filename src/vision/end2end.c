/* NMS-free heads (YOLOv10, ultralytics end-to-end exports): the graph itself already ranked
 * and de-duplicated its detections, so decoding is reading rows. Each row of [1, max_det, 6]
 * is x1 y1 x2 y2 (model-input pixels), score, class id (a float); a segmenting head appends
 * its nm mask coefficients ([1, max_det, 6 + nm]) beside prototypes [1, nm, Hp, Wp]. */
#include "vision/decode-impl.h"

#include <math.h>
#include <stdlib.h>

/* Rows of `width` values into dets (anchor = row index). */
static int read_rows(const sh_ftensor *out, int64_t width, int n_classes, const sh_transform *xf,
                     const sh_decode_params *p, sh_detections *dets, sh_err *err)
{
    int64_t n;
    if (out->ndim == 3 && out->shape[0] == 1 && out->shape[2] == width)
        n = out->shape[1];
    else if (out->ndim == 2 && out->shape[1] == width)
        n = out->shape[0];
    else
        return sh_errf(err, SHOAL_ERR_SHAPE, "end2end: output must be [1, max_det, %lld] (x1 y1 x2 y2 score class%s)",
                       (long long)width, width > 6 ? " coefficients" : "");
    const float *d = out->data;
    size_t m = 0;
    for (int64_t j = 0; j < n; j++)
        m += d[width * j + 4] >= p->score_threshold;
    sh_candidates c = {0};
    int rc = sh_candidates_alloc(dets->alloc, m, &c, err);
    if (rc)
        return rc;
    size_t i = 0;
    for (int64_t j = 0; j < n && i < m; j++) {
        const float *r = d + width * j;
        if (!(r[4] >= p->score_threshold))
            continue;
        float cls = r[5];
        /* a class id outside the head's classes means the model is not what its shape says */
        if (!(cls >= 0 && cls < (float)(n_classes > 0 ? n_classes : 1 << 20)) || cls != floorf(cls)) {
            sh_candidates_free(dets->alloc, &c);
            return sh_errf(err, SHOAL_ERR_SHAPE, "end2end: row %lld has class %g, not an id in [0, %d)", (long long)j,
                           cls, n_classes);
        }
        for (int k = 0; k < 4; k++)
            c.boxes[4 * i + k] = r[k];
        c.scores[i] = r[4];
        c.classes[i] = (int)cls;
        c.anchors[i] = (int)j;
        i++;
    }
    c.n = i;
    /* The shared tail maps to the image, clips, ranks and caps; at IoU threshold 1 its NMS
     * keeps every box (it drops IoU > threshold only), as the head already suppressed. */
    sh_decode_params keep_all = *p;
    keep_all.iou_threshold = 1.0f;
    keep_all.top_k = 0;
    rc = sh_detections_finish(dets, xf, &keep_all, &c, err);
    sh_candidates_free(dets->alloc, &c);
    return rc;
}

int sh_decode_end2end(const sh_ftensor *out, int n_classes, const sh_transform *xf, const sh_decode_params *p,
                      sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "end2end", err);
    if (rc)
        return rc;
    if (!out || !out->data)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "end2end: output tensor is NULL");
    return read_rows(out, 6, n_classes, xf, p, dets, err);
}

static int by_anchor(const void *a, const void *b)
{
    const sh_yolo_held *x = a, *y = b;
    return (x->anchor > y->anchor) - (x->anchor < y->anchor);
}

/* The masks reuse the YOLOv8-seg mask code, which reads a detection's box and coefficients
 * from its anchor's column [cx cy w h, nc scores, nm coefficients]: each kept row is laid out
 * that way (with nc = 2: the score and class values stand in the score slots). */
int sh_decode_end2end_seg(const sh_ftensor *out, const sh_ftensor *protos, int n_classes, const sh_transform *xf,
                          const sh_decode_params *p, sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "end2end", err);
    if (rc)
        return rc;
    if (!out || !out->data || !protos || !protos->data || protos->ndim != 4)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "end2end: output or prototypes [1, nm, Hp, Wp] missing");
    int64_t nm = protos->shape[1], width = 6 + nm;
    if (nm <= 0 || nm > SH_YOLO_MAX_CHANNELS)
        return sh_errf(err, SHOAL_ERR_SHAPE, "end2end: prototypes have %lld planes", (long long)nm);
    if ((rc = read_rows(out, width, n_classes, xf, p, dets, err)))
        return rc;
    size_t n = dets->count, bytes;
    if (!n)
        return 0;
    sh_allocator *a = dets->alloc;
    sh_yolo_held *held = sh_calloc(a, n, sizeof *held);
    float *cols = NULL;
    if (held && sh_mul_size(n, (size_t)width * sizeof(float), &bytes))
        cols = sh_alloc(a, bytes);
    if (!held || !cols) {
        sh_free(a, held);
        sh_detections_clear(dets);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "end2end: cannot allocate mask columns for %zu detections", n);
    }
    const float *d = out->data;
    for (size_t i = 0; i < n; i++) {
        const float *r = d + width * dets->items[i].anchor;
        float *col = cols + (size_t)width * i;
        col[0] = (r[0] + r[2]) * 0.5f;
        col[1] = (r[1] + r[3]) * 0.5f;
        col[2] = r[2] - r[0];
        col[3] = r[3] - r[1];
        col[4] = r[4];
        col[5] = r[5];
        for (int64_t k = 0; k < nm; k++)
            col[6 + k] = r[6 + k];
        held[i] = (sh_yolo_held){.anchor = dets->items[i].anchor, .values = col};
    }
    qsort(held, n, sizeof *held, by_anchor);
    sh_yolo_cols src = {.channels = width, .n_anchors = out->ndim == 3 ? out->shape[1] : out->shape[0],
                        .held = held, .n_held = n};
    rc = sh_yolo_seg_masks(protos, &src, 2, xf, p->mask_threshold, dets, err);
    sh_free(a, cols);
    sh_free(a, held);
    return rc;
}
