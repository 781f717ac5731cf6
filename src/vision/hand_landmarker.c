/* The hand landmarker's frame loop (see hand_landmarker.h). */
#include "vision/hand_landmarker.h"

#include <math.h>
#include <string.h>

sh_hand_params sh_hand_default_params(void)
{
    return (sh_hand_params){.palm = sh_palm_default_params(), .num_hands = 2, .min_presence = 0.5f,
                            .landmark_size = 224, .track_iou = 0.5f};
}

const char *sh_hand_label(int handedness)
{
    return handedness == 0 ? "Left" : "Right";
}

static int check_output(const float *o, size_t got, size_t want, const char *what, sh_err *err)
{
    if (!o || got != want)
        return sh_errf(err, SHOAL_ERR_SHAPE, "hand landmarker: %s output has %zu values, expected %zu", what, got, want);
    return 0;
}

static bool params_ok(const sh_hand_params *p, const sh_hand_models *m, const sh_image *img)
{
    return p && m && m->run && img && img->data && img->width >= 1 && img->height >= 1 && p->num_hands >= 1 &&
           p->num_hands <= SH_HAND_MAX_HANDS && p->landmark_size >= 1 && p->landmark_size <= 4096 &&
           p->palm.input_size >= 1 && p->palm.input_size <= 4096;
}

int sh_hand_detect_palms(sh_allocator *a, const sh_hand_params *p, const sh_hand_models *m, const sh_image *img,
                         sh_palm *palms, int *n, sh_err *err)
{
    if (!params_ok(p, m, img) || !palms || !n)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand landmarker: invalid parameters or image");
    int rc;
    float anchors[2 * SH_PALM_MAX_ANCHORS];
    int na = sh_palm_anchors(&p->palm, anchors, SH_PALM_MAX_ANCHORS, err);
    if (na < 0)
        return na;
    size_t scratch_n = sh_palm_scratch_bytes(na);
    void *scratch = sh_alloc(a, scratch_n ? scratch_n : 1);
    if (!scratch)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "hand landmarker: out of memory for the palm decoder");
    sh_hand_rect whole = sh_palm_input_rect(img->width, img->height);
    const float *out[2] = {NULL, NULL};
    size_t counts[2] = {0, 0};
    rc = m->run(m->ctx, SH_HAND_MODEL_PALM, img, &whole, out, counts, 2, err);
    if (!rc && !(rc = check_output(out[0], counts[0], (size_t)na * (4 + 2 * SH_PALM_KEYPOINTS), "palm box", err)) &&
        !(rc = check_output(out[1], counts[1], (size_t)na, "palm score", err))) {
        rc = sh_palm_decode(&p->palm, out[0], out[1], anchors, na, img->width, img->height, scratch, scratch_n, palms,
                            p->num_hands, err);
        if (rc >= 0) {
            *n = rc;
            rc = 0;
        }
    }
    sh_free(a, scratch);
    return rc;
}

/* Palm detection on the whole frame: ROIs (and palms) for at most num_hands hands. */
static int detect(sh_allocator *a, const sh_hand_params *p, const sh_hand_models *m, const sh_image *img,
                  sh_hand_rect *rects, sh_palm *palms, int *n, sh_err *err)
{
    int rc = sh_hand_detect_palms(a, p, m, img, palms, n, err);
    for (int i = 0; rc == 0 && i < *n; i++)
        rects[i] = sh_hand_rect_from_palm(&palms[i], img->width, img->height);
    return rc;
}

/* AssociationNormRect: each ROI in turn, the palm ROIs then the tracked ones, replaces every
 * earlier ROI it overlaps (IoU above track_iou), so two palms over one hand leave one ROI, the
 * later, and a tracked hand takes the place of its palm. rects holds 2 * SH_HAND_MAX_HANDS. */
static int associate(const sh_hand_params *p, sh_hand_rect *rects, int n, const sh_hand_rect *prev, int n_prev,
                     bool *from_palm)
{
    sh_hand_rect cand[2 * SH_HAND_MAX_HANDS];
    int n_cand = 0;
    for (int i = 0; i < n && n_cand < 2 * SH_HAND_MAX_HANDS; i++)
        cand[n_cand++] = rects[i];
    int n_from_palm = n_cand;
    for (int j = 0; j < n_prev && n_cand < 2 * SH_HAND_MAX_HANDS; j++)
        cand[n_cand++] = prev[j];
    int kept = 0;
    for (int c = 0; c < n_cand; c++) {
        int k = 0;
        for (int i = 0; i < kept; i++)
            if (sh_hand_rect_iou(&rects[i], &cand[c]) <= p->track_iou) {
                rects[k] = rects[i];
                from_palm[k++] = from_palm[i];
            }
        rects[k] = cand[c];
        from_palm[k] = c < n_from_palm;
        kept = k + 1;
    }
    return kept;
}

static int landmarks(const sh_hand_params *p, const sh_hand_models *m, const sh_image *img, const sh_hand_rect *roi,
                     sh_hand *h, sh_err *err)
{
    int side = p->landmark_size;
    const float *out[4] = {NULL, NULL, NULL, NULL};
    size_t counts[4] = {0, 0, 0, 0};
    int rc = m->run(m->ctx, SH_HAND_MODEL_LANDMARK, img, roi, out, counts, 4, err);
    if (rc || (rc = check_output(out[0], counts[0], 3 * SH_HAND_LANDMARKS, "landmark", err)) ||
        (rc = check_output(out[1], counts[1], 1, "presence", err)) ||
        (rc = check_output(out[2], counts[2], 1, "handedness", err)) ||
        (rc = check_output(out[3], counts[3], 3 * SH_HAND_LANDMARKS, "world landmark", err)))
        return rc;
    memset(h, 0, sizeof(*h));
    h->roi = *roi;
    h->presence = out[1][0];
    /* binary classification: the output is class 0's probability ("Left") */
    float left = out[2][0];
    h->handedness = left > 0.5f ? 0 : 1;
    h->handedness_score = left > 0.5f ? left : 1.0f - left;
    sh_hand_landmarks_project(out[0], side, side, roi, img->width, img->height, h->landmarks);
    float cs = cosf(roi->rotation), sn = sinf(roi->rotation);
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {   /* WorldLandmarkProjection: the ROI's rotation */
        const float *w = out[3] + 3 * i;
        h->world[i][0] = cs * w[0] - sn * w[1];
        h->world[i][1] = sn * w[0] + cs * w[1];
        h->world[i][2] = w[2];
    }
    return 0;
}

int sh_hand_landmarks_run(const sh_hand_params *p, const sh_hand_models *m, const sh_image *img,
                          const sh_hand_rect *roi, sh_hand *out, sh_err *err)
{
    if (!params_ok(p, m, img) || !roi)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand landmarker: invalid parameters or image");
    return landmarks(p, m, img, roi, out, err);
}

int sh_hand_landmarker_run(sh_allocator *a, const sh_hand_params *p, const sh_hand_models *m,
                           sh_hand_tracker *tracker, const sh_image *img, sh_hand *out, int cap, int *n_out,
                           sh_palm *palms, int *n_palms, sh_err *err)
{
    *n_out = 0;
    if (n_palms)
        *n_palms = 0;
    if (!params_ok(p, m, img) || cap < 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand landmarker: invalid parameters or image");
    sh_hand_rect rects[2 * SH_HAND_MAX_HANDS];
    sh_palm found[SH_HAND_MAX_HANDS];
    bool from_palm[2 * SH_HAND_MAX_HANDS];
    int n = 0, rc;
    bool tracked_enough = tracker && tracker->n_prev >= p->num_hands;
    if (tracked_enough) {
        n = tracker->n_prev;
        memcpy(rects, tracker->prev, (size_t)n * sizeof(sh_hand_rect));
        for (int i = 0; i < n; i++)
            from_palm[i] = false;
    } else {
        if ((rc = detect(a, p, m, img, rects, found, &n, err)))
            return rc;
        if (palms)
            memcpy(palms, found, (size_t)n * sizeof(sh_palm));
        if (n_palms)
            *n_palms = n;
        if (tracker)
            tracker->detector_runs++;
        n = associate(p, rects, n, tracker ? tracker->prev : NULL, tracker ? tracker->n_prev : 0, from_palm);
    }
    int kept = 0, limit = cap < p->num_hands ? cap : p->num_hands;
    for (int i = 0; i < n && kept < limit; i++) {
        if ((rc = landmarks(p, m, img, &rects[i], &out[kept], err)))
            return rc;
        out[kept].from_palm = from_palm[i];
        if (out[kept].presence >= p->min_presence)
            kept++;
    }
    *n_out = kept;
    if (tracker) {
        tracker->frames++;
        tracker->n_prev = kept;
        for (int i = 0; i < kept; i++)
            tracker->prev[i] = sh_hand_rect_from_landmarks((const float(*)[3])out[i].landmarks, img->width,
                                                           img->height);
    }
    return 0;
}
