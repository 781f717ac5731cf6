/* Non-maximum suppression and the results object shared by all box decoders. */
#include "vision/decode-impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sh_decode_params sh_decode_default_params(void)
{
    sh_decode_params p = {
        .score_threshold = 0.25f, .iou_threshold = 0.45f, .agnostic = 0,
        .max_detections = 300, .top_k = 3000, .mask_threshold = 0.5f,
    };
    return p;
}

sh_detections *sh_detections_create(sh_allocator *a)
{
    sh_detections *d = sh_calloc(a, 1, sizeof *d);
    if (d)
        d->alloc = a;
    return d;
}

static void mask_free(sh_allocator *a, sh_mask *m)
{
    if (!m)
        return;
    sh_free(a, m->runs);
    sh_free(a, m);
}

void sh_detections_clear(sh_detections *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->count; i++)
        mask_free(d->alloc, d->items[i].mask);
    d->count = 0;
    d->masks_left_out = 0;
}

void sh_detections_destroy(sh_detections *d)
{
    if (!d)
        return;
    sh_detections_clear(d);
    sh_free(d->alloc, d->items);
    sh_free(d->alloc, d);
}

int sh_detections_push(sh_detections *d, const sh_detection *det, sh_err *err)
{
    if (d->count == d->capacity) {
        size_t cap = d->capacity ? d->capacity * 2 : 16, bytes;
        if (!sh_mul_size(cap, sizeof *d->items, &bytes))
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "detections: %zu entries overflow", cap);
        sh_detection *n = sh_realloc(d->alloc, d->items, bytes);
        if (!n)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "detections: cannot grow to %zu entries", cap);
        d->items = n;
        d->capacity = cap;
    }
    d->items[d->count++] = *det;
    return 0;
}

float sh_box_iou(const float *a, const float *b)
{
    float iw = fminf(a[2], b[2]) - fmaxf(a[0], b[0]);
    float ih = fminf(a[3], b[3]) - fmaxf(a[1], b[1]);
    if (iw <= 0 || ih <= 0)
        return 0.0f;
    float inter = iw * ih;
    float ua = fmaxf(a[2] - a[0], 0) * fmaxf(a[3] - a[1], 0) + fmaxf(b[2] - b[0], 0) * fmaxf(b[3] - b[1], 0) - inter;
    return ua > 0 ? inter / ua : 0.0f;
}

typedef struct ranked {
    float score;
    uint32_t index;
} ranked;

static int ranked_cmp(const void *pa, const void *pb)
{
    const ranked *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Sorts candidates by (score desc, index asc) into room for n entries; NaN scores never get
 * here (decoders drop them with the threshold test, and sh_nms refuses them). */
static void rank_into(ranked *r, const float *scores, size_t n)
{
    for (size_t i = 0; i < n; i++)
        r[i] = (ranked){scores[i], (uint32_t)i};
    qsort(r, n, sizeof *r, ranked_cmp);
}

static ranked *rank(sh_allocator *a, const float *scores, size_t n, sh_err *err)
{
    ranked *r = sh_alloc(a, (n ? n : 1) * sizeof *r);
    if (!r) {
        sh_errf(err, SHOAL_ERR_NO_MEMORY, "nms: cannot allocate %zu candidates", n);
        return NULL;
    }
    rank_into(r, scores, n);
    return r;
}

/* Greedy pass over an already ranked list. The kept list is short (max_keep), so each
 * candidate is compared with the kept boxes only: O(n * kept). */
static size_t nms_ranked(const ranked *r, size_t n, const float *boxes, const int *classes, float iou, int agnostic,
                         size_t max_keep, size_t *keep)
{
    size_t nk = 0;
    for (size_t i = 0; i < n && nk < max_keep; i++) {
        size_t c = r[i].index;
        int drop = 0;
        for (size_t k = 0; k < nk && !drop; k++) {
            size_t o = keep[k];
            if (!agnostic && classes && classes[o] != classes[c])
                continue;
            drop = sh_box_iou(boxes + 4 * o, boxes + 4 * c) > iou;
        }
        if (!drop)
            keep[nk++] = c;
    }
    return nk;
}

int sh_nms(sh_allocator *a, const float *boxes, const float *scores, const int *classes, size_t n,
           float iou_threshold, int agnostic, size_t max_keep, size_t *keep, size_t *n_keep, sh_err *err)
{
    *n_keep = 0;
    if (n == 0)
        return 0;
    if (!boxes || !scores || !keep || n > UINT32_MAX)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "nms: NULL boxes/scores/keep or %zu candidates", n);
    for (size_t i = 0; i < n; i++)
        if (isnan(scores[i]))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "nms: score %zu is NaN", i);
    ranked *r = rank(a, scores, n, err);
    if (!r)
        return SHOAL_ERR_NO_MEMORY;
    *n_keep = nms_ranked(r, n, boxes, classes, iou_threshold, agnostic, max_keep, keep);
    sh_free(a, r);
    return 0;
}

void sh_candidates_view(sh_candidates *c, float *boxes, float *scores, int *classes, int *anchors, size_t cap)
{
    *c = (sh_candidates){.boxes = boxes, .scores = scores, .classes = classes, .anchors = anchors, .cap = cap};
}

int sh_candidates_alloc(sh_allocator *a, size_t n, sh_candidates *c, sh_err *err)
{
    if (!c->block && c->cap) {
        if (n > c->cap)
            return sh_errf(err, SHOAL_ERR_SHAPE, "decode: %zu candidates, room for %zu", n, c->cap);
        c->n = n;
        return 0;
    }
    memset(c, 0, sizeof *c);
    size_t m = n ? n : 1, bytes;
    if (!sh_mul_size(m, 4 * sizeof(float) + sizeof(float) + 2 * sizeof(int), &bytes))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "decode: %zu candidates overflow", n);
    c->block = sh_alloc(a, bytes);
    if (!c->block)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "decode: cannot allocate %zu candidates", n);
    c->boxes = c->block;
    c->scores = c->boxes + 4 * m;
    c->classes = (int *)(c->scores + m);
    c->anchors = c->classes + m;
    c->n = n;
    return 0;
}

void sh_candidates_free(sh_allocator *a, sh_candidates *c)
{
    sh_free(a, c->block);
    memset(c, 0, sizeof *c);
}

int sh_decode_check(const sh_transform *xf, const sh_decode_params *p, sh_detections *d, const char *who,
                    sh_err *err)
{
    if (!xf || !p || !d)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: NULL transform, params or results", who);
    if (xf->dst_w <= 0 || xf->dst_h <= 0 || xf->src_w <= 0 || xf->src_h <= 0 || !(xf->scale_x > 0) ||
        !(xf->scale_y > 0))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: transform is not set (model %dx%d, image %dx%d)", who,
                       xf->dst_w, xf->dst_h, xf->src_w, xf->src_h);
    if (!(p->iou_threshold >= 0 && p->iou_threshold <= 1) || isnan(p->score_threshold))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%s: iou threshold %g / score threshold %g out of range", who,
                       p->iou_threshold, p->score_threshold);
    return 0;
}

size_t sh_candidates_select_ws(size_t n)
{
    size_t bytes;
    return sh_mul_size(n ? n : 1, sizeof(ranked), &bytes) ? bytes : SIZE_MAX;
}

int sh_candidates_select(sh_allocator *a, void *ws, const sh_decode_params *p, const sh_candidates *c,
                         size_t max_keep, size_t *keep, size_t *n_keep, sh_err *err)
{
    *n_keep = 0;
    if (c->n == 0)
        return 0;
    ranked *r = ws;
    if (r)
        rank_into(r, c->scores, c->n);
    else if (!(r = rank(a, c->scores, c->n, err)))
        return SHOAL_ERR_NO_MEMORY;
    size_t cand = c->n;
    if (p->top_k > 0 && cand > (size_t)p->top_k)
        cand = (size_t)p->top_k;
    *n_keep = nms_ranked(r, cand, c->boxes, c->classes, p->iou_threshold, p->agnostic, max_keep, keep);
    if (r != ws)
        sh_free(a, r);
    return 0;
}

void sh_box_to_image(const sh_transform *xf, const float model_box[4], float image_box[4])
{
    float x_lo = xf->origin_x, y_lo = xf->origin_y;
    float x_hi = x_lo + (float)xf->src_w, y_hi = y_lo + (float)xf->src_h;
    float x1, y1, x2, y2;
    sh_transform_to_image(xf, model_box[0], model_box[1], &x1, &y1);
    sh_transform_to_image(xf, model_box[2], model_box[3], &x2, &y2);
    image_box[0] = fminf(fmaxf(x1, x_lo), x_hi);
    image_box[1] = fminf(fmaxf(y1, y_lo), y_hi);
    image_box[2] = fminf(fmaxf(x2, x_lo), x_hi);
    image_box[3] = fminf(fmaxf(y2, y_lo), y_hi);
}

size_t sh_decode_max_keep(const sh_decode_params *p, size_t n)
{
    size_t cand = p->top_k > 0 && n > (size_t)p->top_k ? (size_t)p->top_k : n;
    size_t max_keep = p->max_detections > 0 ? (size_t)p->max_detections : cand;
    return max_keep < cand ? max_keep : cand;
}

int sh_detections_finish(sh_detections *d, const sh_transform *xf, const sh_decode_params *p,
                         const sh_candidates *c, sh_err *err)
{
    sh_detections_clear(d);
    d->image_w = (int)xf->origin_x + xf->src_w;
    d->image_h = (int)xf->origin_y + xf->src_h;
    if (c->n == 0)
        return 0;
    size_t max_keep = sh_decode_max_keep(p, c->n);
    size_t *keep = sh_alloc(d->alloc, max_keep * sizeof *keep + 1);
    if (!keep)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "decode: cannot allocate %zu kept indices", max_keep);
    size_t nk;
    int rc = sh_candidates_select(d->alloc, NULL, p, c, max_keep, keep, &nk, err);
    for (size_t k = 0; k < nk && rc == 0; k++) {
        size_t i = keep[k];
        sh_detection det = {.class_id = c->classes[i], .score = c->scores[i], .anchor = c->anchors[i]};
        float box[4];
        sh_box_to_image(xf, c->boxes + 4 * i, box);
        det.x1 = box[0];
        det.y1 = box[1];
        det.x2 = box[2];
        det.y2 = box[3];
        rc = sh_detections_push(d, &det, err);
    }
    sh_free(d->alloc, keep);
    return rc;
}
