/* Geometry and decoding of MediaPipe's hand pipeline (see hands.h). Each function follows one
 * MediaPipe calculator; the comments name it and say where shoal's choice differs. */
#include "vision/hands.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

sh_palm_params sh_palm_default_params(void)
{
    return (sh_palm_params){
        .input_size = 192, .n_layers = 4, .strides = {8, 16, 16, 16}, .anchors_per_cell = 2,
        .coord_scale = 192.0f, .score_clip = 100.0f, .min_score = 0.5f, .nms_iou = 0.3f};
}

/* SsdAnchorsCalculator with fixed_anchor_size: consecutive layers of one stride share a grid,
 * and each cell lists the anchors of all those layers together (2 per layer). Only the centres
 * matter since every anchor is 1 x 1. */
int sh_palm_anchors(const sh_palm_params *p, float *xy, int cap, sh_err *err)
{
    int n = 0;
    for (int l = 0; l < p->n_layers;) {
        int last = l;
        while (last + 1 < p->n_layers && p->strides[last + 1] == p->strides[l])
            last++;
        int stride = p->strides[l], per_cell = p->anchors_per_cell * (last - l + 1);
        if (stride < 1 || p->input_size < stride)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "palm anchors: stride %d for input %d", stride, p->input_size);
        int rows = (p->input_size + stride - 1) / stride, cols = rows;
        for (int y = 0; y < rows; y++)
            for (int x = 0; x < cols; x++)
                for (int k = 0; k < per_cell; k++) {
                    if (n >= cap)
                        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "palm anchors: more than %d", cap);
                    xy[2 * n] = ((float)x + 0.5f) / (float)cols;
                    xy[2 * n + 1] = ((float)y + 0.5f) / (float)rows;
                    n++;
                }
        l = last + 1;
    }
    return n;
}

sh_hand_rect sh_palm_input_rect(int image_w, int image_h)
{
    float side = (float)(image_w > image_h ? image_w : image_h);
    return (sh_hand_rect){0.5f, 0.5f, side / (float)image_w, side / (float)image_h, 0.0f};
}

float sh_palm_iou(const sh_palm *a, const sh_palm *b)
{
    float ix = fminf(a->xmin + a->width, b->xmin + b->width) - fmaxf(a->xmin, b->xmin);
    float iy = fminf(a->ymin + a->height, b->ymin + b->height) - fmaxf(a->ymin, b->ymin);
    if (ix <= 0.0f || iy <= 0.0f)
        return 0.0f;
    float inter = ix * iy, uni = a->width * a->height + b->width * b->height - inter;
    return uni > 0.0f ? inter / uni : 0.0f;
}

size_t sh_palm_scratch_bytes(int n_anchors)
{
    return n_anchors > 0 ? (size_t)n_anchors * (sizeof(sh_palm) + sizeof(int)) : 0;
}

static void decode_one(const sh_palm_params *p, const float *raw, const float *anchor, float score, sh_palm *d)
{
    /* TensorsToDetections, reverse_output_order: x, y, w, h, then keypoints x, y */
    float s = p->coord_scale;
    float xc = raw[0] / s + anchor[0], yc = raw[1] / s + anchor[1];
    float w = raw[2] / s, h = raw[3] / s;
    d->score = score;
    d->xmin = xc - w / 2;
    d->ymin = yc - h / 2;
    d->width = w;
    d->height = h;
    for (int k = 0; k < SH_PALM_KEYPOINTS; k++) {
        d->kp[k][0] = raw[4 + 2 * k] / s + anchor[0];
        d->kp[k][1] = raw[4 + 2 * k + 1] / s + anchor[1];
    }
}

/* DetectionLetterboxRemoval: from the square model input back to the image. */
static void remove_letterbox(sh_palm *d, int image_w, int image_h)
{
    float side = (float)(image_w > image_h ? image_w : image_h);
    float pad_x = (side - (float)image_w) / 2 / side, pad_y = (side - (float)image_h) / 2 / side;
    float sx = 1.0f - 2 * pad_x, sy = 1.0f - 2 * pad_y;
    d->xmin = (d->xmin - pad_x) / sx;
    d->ymin = (d->ymin - pad_y) / sy;
    d->width /= sx;
    d->height /= sy;
    for (int k = 0; k < SH_PALM_KEYPOINTS; k++) {
        d->kp[k][0] = (d->kp[k][0] - pad_x) / sx;
        d->kp[k][1] = (d->kp[k][1] - pad_y) / sy;
    }
}

/* NonMaxSuppression, WEIGHTED: the best remaining box absorbs every box overlapping it by more
 * than the threshold (itself included); corners and keypoints become the score-weighted mean
 * of the absorbed ones, the score stays the best one's. */
int sh_palm_decode(const sh_palm_params *p, const float *boxes, const float *logits, const float *anchors,
                   int n_anchors, int image_w, int image_h, void *scratch, size_t scratch_bytes, sh_palm *out,
                   int cap, sh_err *err)
{
    if (n_anchors < 0 || image_w < 1 || image_h < 1 || cap < 0 || scratch_bytes < sh_palm_scratch_bytes(n_anchors))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "palm decode: %d anchors, image %dx%d, %zu scratch bytes",
                       n_anchors, image_w, image_h, scratch_bytes);
    sh_palm *cand = scratch;
    int *order = (int *)(cand + n_anchors);
    int n = 0;
    for (int i = 0; i < n_anchors; i++) {
        float l = logits[i];
        if (!(l == l))   /* NaN never passes */
            continue;
        l = fminf(fmaxf(l, -p->score_clip), p->score_clip);
        float score = 1.0f / (1.0f + expf(-l));
        if (score < p->min_score)
            continue;
        decode_one(p, boxes + (size_t)i * (4 + 2 * SH_PALM_KEYPOINTS), anchors + 2 * i, score, &cand[n]);
        order[n] = n;
        n++;
    }
    /* stable insertion sort by score, best first: equal scores keep anchor order as
     * std::stable_sort does upstream; n is small after the threshold */
    for (int i = 1; i < n; i++) {
        int v = order[i], j = i;
        while (j > 0 && cand[order[j - 1]].score < cand[v].score) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = v;
    }
    int kept = 0, left = n;
    while (left > 0 && kept < cap) {
        const sh_palm *best = &cand[order[0]];
        double wsum = 0, acc[4 + 2 * SH_PALM_KEYPOINTS] = {0};
        int rest = 0;
        for (int i = 0; i < left; i++) {
            const sh_palm *c = &cand[order[i]];
            if (sh_palm_iou(best, c) > p->nms_iou) {
                double w = c->score;
                wsum += w;
                acc[0] += w * c->xmin;
                acc[1] += w * c->ymin;
                acc[2] += w * (c->xmin + c->width);
                acc[3] += w * (c->ymin + c->height);
                for (int k = 0; k < SH_PALM_KEYPOINTS; k++) {
                    acc[4 + 2 * k] += w * c->kp[k][0];
                    acc[5 + 2 * k] += w * c->kp[k][1];
                }
            } else {
                order[rest++] = order[i];
            }
        }
        sh_palm m = *best;
        if (wsum > 0) {   /* always: the best box overlaps itself */
            m.xmin = (float)(acc[0] / wsum);
            m.ymin = (float)(acc[1] / wsum);
            m.width = (float)(acc[2] / wsum) - m.xmin;
            m.height = (float)(acc[3] / wsum) - m.ymin;
            for (int k = 0; k < SH_PALM_KEYPOINTS; k++) {
                m.kp[k][0] = (float)(acc[4 + 2 * k] / wsum);
                m.kp[k][1] = (float)(acc[5 + 2 * k] / wsum);
            }
        }
        if (rest == left) {   /* an empty best box (IoU 0 with itself) absorbs nothing */
            memmove(order, order + 1, (size_t)(left - 1) * sizeof(int));
            rest--;
        }
        remove_letterbox(&m, image_w, image_h);
        out[kept++] = m;
        left = rest;
    }
    return kept;
}

static float normalize_radians(float a)
{
    return a - 2.0f * (float)M_PI * floorf((a + (float)M_PI) / (2.0f * (float)M_PI));
}

/* RectTransformation: shift along the rotated axes in units of the rect's size, square on the
 * long side in pixels, then scale. */
static sh_hand_rect transform_rect(sh_hand_rect r, int image_w, int image_h, float scale, float shift_y)
{
    float W = (float)image_w, H = (float)image_h;
    float sn = sinf(r.rotation), cs = cosf(r.rotation);
    r.x_center += (-H * r.height * shift_y * sn) / W;
    r.y_center += (H * r.height * shift_y * cs) / H;
    float long_side = fmaxf(r.width * W, r.height * H);
    r.width = long_side / W * scale;
    r.height = long_side / H * scale;
    return r;
}

/* DetectionsToRects (rotation from keypoint 0 to keypoint 2, target 90 degrees), then
 * RectTransformation with the palm graph's scale 2.6 and shift -0.5. */
sh_hand_rect sh_hand_rect_from_palm(const sh_palm *palm, int image_w, int image_h)
{
    float W = (float)image_w, H = (float)image_h;
    float x0 = palm->kp[0][0] * W, y0 = palm->kp[0][1] * H, x1 = palm->kp[2][0] * W, y1 = palm->kp[2][1] * H;
    sh_hand_rect r = {palm->xmin + palm->width / 2, palm->ymin + palm->height / 2, palm->width, palm->height,
                      normalize_radians((float)M_PI / 2 - atan2f(-(y1 - y0), x1 - x0))};
    return transform_rect(r, image_w, image_h, 2.6f, -0.5f);
}

static void pixel(const sh_image *img, int x, int y, bool zero_border, float rgb[3])
{
    if (x < 0 || y < 0 || x >= img->width || y >= img->height) {
        if (zero_border) {
            rgb[0] = rgb[1] = rgb[2] = 0.0f;
            return;
        }
        x = x < 0 ? 0 : x >= img->width ? img->width - 1 : x;
        y = y < 0 ? 0 : y >= img->height ? img->height - 1 : y;
    }
    const uint8_t *p = img->data + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
    rgb[0] = p[0];
    rgb[1] = p[1];
    rgb[2] = p[2];
}

void sh_hand_crop_words(const sh_hand_rect *r, float words[SH_HAND_CROP_WORDS])
{
    words[0] = r->x_center;
    words[1] = r->y_center;
    words[2] = r->width;
    words[3] = r->height;
    words[4] = cosf(r->rotation);
    words[5] = sinf(r->rotation);
}

void sh_hand_crop_at(const sh_image *img, const float words[SH_HAND_CROP_WORDS], int out_w, int out_h,
                     bool zero_border, float *out)
{
    float W = (float)img->width, H = (float)img->height;
    float cx = words[0] * W, cy = words[1] * H, w = words[2] * W, h = words[3] * H;
    float cs = words[4], sn = words[5];
    for (int v = 0; v < out_h; v++) {
        for (int u = 0; u < out_w; u++) {
            float dx = ((float)u / (float)out_w - 0.5f) * w, dy = ((float)v / (float)out_h - 0.5f) * h;
            float sx = cx + cs * dx - sn * dy, sy = cy + sn * dx + cs * dy;
            /* bounded so the int conversion below stays defined for absurd rects (NaN too) */
            sx = fminf(fmaxf(sx, -2.0f), W + 1.0f);
            sy = fminf(fmaxf(sy, -2.0f), H + 1.0f);
            float fx = floorf(sx), fy = floorf(sy), ax = sx - fx, ay = sy - fy;
            int x0 = (int)fx, y0 = (int)fy;
            float p00[3], p01[3], p10[3], p11[3];
            pixel(img, x0, y0, zero_border, p00);
            pixel(img, x0 + 1, y0, zero_border, p01);
            pixel(img, x0, y0 + 1, zero_border, p10);
            pixel(img, x0 + 1, y0 + 1, zero_border, p11);
            float *o = out + ((size_t)v * (size_t)out_w + (size_t)u) * 3;
            for (int c = 0; c < 3; c++) {
                float top = p00[c] + (p01[c] - p00[c]) * ax, bot = p10[c] + (p11[c] - p10[c]) * ax;
                o[c] = (top + (bot - top) * ay) / 255.0f;
            }
        }
    }
}

void sh_hand_crop(const sh_image *img, const sh_hand_rect *r, int out_w, int out_h, bool zero_border, float *out)
{
    float words[SH_HAND_CROP_WORDS];
    sh_hand_crop_words(r, words);
    sh_hand_crop_at(img, words, out_w, out_h, zero_border, out);
}

/* TensorsToLandmarks (x, y / input size; z / input width / 0.4) then LandmarkProjection: the
 * crop's offset from its centre, rotated by the rect's rotation, in pixels. */
void sh_hand_landmarks_project(const float *raw, int in_w, int in_h, const sh_hand_rect *r, int image_w,
                               int image_h, float out[SH_HAND_LANDMARKS][3])
{
    float W = (float)image_w, H = (float)image_h;
    float cx = r->x_center * W, cy = r->y_center * H, w = r->width * W, h = r->height * H;
    float cs = cosf(r->rotation), sn = sinf(r->rotation);
    for (int i = 0; i < SH_HAND_LANDMARKS; i++) {
        float dx = (raw[3 * i] / (float)in_w - 0.5f) * w, dy = (raw[3 * i + 1] / (float)in_h - 0.5f) * h;
        out[i][0] = cx + cs * dx - sn * dy;
        out[i][1] = cy + sn * dx + cs * dy;
        out[i][2] = raw[3 * i + 2] / (float)in_w / 0.4f * w;
    }
}

/* The landmarks the tracking ROI is measured on: wrist, thumb CMC/MCP/IP and the two lower
 * joints of each finger (MediaPipe's hand_landmark_landmarks_to_roi subset). Fingertips move
 * most between frames; including them grows the ROI frame after frame. */
static const int ROI_LANDMARKS[] = {0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18};
#define N_ROI_LANDMARKS ((int)(sizeof ROI_LANDMARKS / sizeof ROI_LANDMARKS[0]))

/* HandLandmarksToRect: rotation from the wrist to the mean of the index/ring MCP mean and the
 * middle MCP; the rect is the subset's extent in that rotated frame. Then RectTransformation
 * with scale 2 and shift -0.1. */
sh_hand_rect sh_hand_rect_from_landmarks(const float lm[SH_HAND_LANDMARKS][3], int image_w, int image_h)
{
    float W = (float)image_w, H = (float)image_h;
    float x1 = ((lm[5][0] + lm[13][0]) / 2 + lm[9][0]) / 2, y1 = ((lm[5][1] + lm[13][1]) / 2 + lm[9][1]) / 2;
    float rot = normalize_radians((float)M_PI / 2 - atan2f(-(y1 - lm[0][1]), x1 - lm[0][0]));
    float minx = INFINITY, maxx = -INFINITY, miny = INFINITY, maxy = -INFINITY;
    for (int k = 0; k < N_ROI_LANDMARKS; k++) {
        const float *q = lm[ROI_LANDMARKS[k]];
        minx = fminf(minx, q[0]);
        maxx = fmaxf(maxx, q[0]);
        miny = fminf(miny, q[1]);
        maxy = fmaxf(maxy, q[1]);
    }
    float acx = (minx + maxx) / 2, acy = (miny + maxy) / 2;
    float cs = cosf(-rot), sn = sinf(-rot);
    float pminx = INFINITY, pmaxx = -INFINITY, pminy = INFINITY, pmaxy = -INFINITY;
    for (int k = 0; k < N_ROI_LANDMARKS; k++) {
        const float *q = lm[ROI_LANDMARKS[k]];
        float ox = q[0] - acx, oy = q[1] - acy;
        float px = ox * cs - oy * sn, py = ox * sn + oy * cs;
        pminx = fminf(pminx, px);
        pmaxx = fmaxf(pmaxx, px);
        pminy = fminf(pminy, py);
        pmaxy = fmaxf(pmaxy, py);
    }
    float pcx = (pminx + pmaxx) / 2, pcy = (pminy + pmaxy) / 2;
    float c2 = cosf(rot), s2 = sinf(rot);
    sh_hand_rect r = {(pcx * c2 - pcy * s2 + acx) / W, (pcx * s2 + pcy * c2 + acy) / H, (pmaxx - pminx) / W,
                      (pmaxy - pminy) / H, rot};
    return transform_rect(r, image_w, image_h, 2.0f, -0.1f);
}

float sh_hand_rect_iou(const sh_hand_rect *a, const sh_hand_rect *b)
{
    sh_palm pa = {.xmin = a->x_center - a->width / 2, .ymin = a->y_center - a->height / 2, .width = a->width,
                  .height = a->height};
    sh_palm pb = {.xmin = b->x_center - b->width / 2, .ymin = b->y_center - b->height / 2, .width = b->width,
                  .height = b->height};
    return sh_palm_iou(&pa, &pb);
}
