/* YOLOv8/YOLO11 instance segmentation: boxes as in yolo.c, plus one mask per detection.
 *
 * The reference pipeline (ultralytics) builds each mask at proto resolution
 * (sigmoid(coeffs . protos), zeroed outside the box), upsamples it bilinearly to the model
 * input, cuts the letterbox border off and resizes bilinearly to the image, then
 * thresholds. Doing that literally costs two full-size float planes per detection. We
 * evaluate the same composition only where it can be non-zero: proto cells inside the box,
 * model-input pixels that image pixels of the box sample from, and image pixels of the
 * box. Pixels outside the box are background by definition of the encoding (see
 * sh_mask in decode.h), which also drops the half-proto-pixel halo that bilinear
 * upsampling leaks past the box edge. */
#include "vision/decode-impl.h"
#include "vision/frame.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct lin {
    int i0, i1;
    float l;
} lin;

/* Source taps of output index d for a bilinear resize with half-pixel centres
 * (PyTorch align_corners=False, cv2 INTER_LINEAR): negative coordinates clamp to 0. */
static lin lin_at(int d, double in_over_out, int n_in)
{
    double s = (d + 0.5) * in_over_out - 0.5;
    if (s < 0)
        s = 0;
    int i0 = (int)s;
    if (i0 > n_in - 1)
        i0 = n_in - 1;
    lin r = {i0, i0 < n_in - 1 ? i0 + 1 : i0, (float)(s - i0)};
    return r;
}

typedef struct seg_scratch {
    float *proto;      /* mh x mw */
    float *up;         /* model-input region */
    uint8_t *bits;     /* image box region */
    lin *cols;         /* horizontal taps of one row, shared by every row of a pass */
    size_t up_cap, bits_cap, cols_cap;
} seg_scratch;

static int grow(sh_allocator *a, void **p, size_t *cap, size_t need, sh_err *err)
{
    if (need <= *cap)
        return 0;
    void *n = sh_realloc(a, *p, need);
    if (!n)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate %zu bytes of mask scratch", need);
    *p = n;
    *cap = need;
    return 0;
}

/* Run-length code of a 0/1 plane (sh_mask: runs alternate background, foreground, starting
 * with background), in one pass; the run array grows geometrically. */
static int encode_runs(sh_allocator *a, const uint8_t *bits, size_t n, sh_mask *m, sh_err *err)
{
    size_t cap = 16, r = 0, area = 0;
    uint32_t *runs = sh_alloc(a, cap * sizeof *runs);
    if (!runs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate mask runs");
    uint8_t cur = 0;
    uint32_t len = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && bits[i] == cur) {
            len++;
            continue;
        }
        if (r == cap) {
            uint32_t *more = sh_realloc(a, runs, 2 * cap * sizeof *runs);
            if (!more) {
                sh_free(a, runs);
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate %zu mask runs", 2 * cap);
            }
            runs = more;
            cap *= 2;
        }
        runs[r++] = len;
        if (cur)
            area += len;
        cur = (uint8_t)!cur;
        len = 1;
    }
    m->runs = runs;
    m->n_runs = r;
    m->area = area;
    return 0;
}

/* The mask's box in image pixels into m (x, y, width, height) and its pixels, 0 or 1, into
 * s->bits (row-major over the box). */
static int build_mask(sh_allocator *a, const float *protos, int nm, int mh, int mw, const float *coeff,
                      size_t coeff_stride, const float *bm, const sh_transform *xf, const sh_detection *det,
                      float thr, seg_scratch *s, sh_mask *m, sh_err *err)
{
    int iw = xf->dst_w, ih = xf->dst_h;
    double rx = (double)mw / iw, ry = (double)mh / ih;
    /* 1. proto cells inside the box (crop rule: col >= x1 && col < x2, as ultralytics). */
    double px1 = bm[0] * rx, px2 = bm[2] * rx, py1 = bm[1] * ry, py2 = bm[3] * ry;
    int c_lo = (int)fmax(0, ceil(px1)), c_hi = (int)fmin(mw, ceil(px2));
    int r_lo = (int)fmax(0, ceil(py1)), r_hi = (int)fmin(mh, ceil(py2));
    memset(s->proto, 0, (size_t)mh * mw * sizeof(float));
    if (c_lo < c_hi && r_lo < r_hi) {
        for (int k = 0; k < nm; k++) {
            float ck = coeff[(size_t)k * coeff_stride];
            const float *pk = protos + (size_t)k * mh * mw;
            for (int r = r_lo; r < r_hi; r++)
                for (int c = c_lo; c < c_hi; c++)
                    s->proto[(size_t)r * mw + c] += ck * pk[(size_t)r * mw + c];
        }
        for (int r = r_lo; r < r_hi; r++)
            for (int c = c_lo; c < c_hi; c++) {
                float *v = &s->proto[(size_t)r * mw + c];
                *v = 1.0f / (1.0f + expf(-*v));
            }
    }
    /* 2. the image pixels of the box, local to the transform's region. */
    int ox0 = (int)floorf(det->x1 - xf->origin_x), ox1 = (int)ceilf(det->x2 - xf->origin_x);
    int oy0 = (int)floorf(det->y1 - xf->origin_y), oy1 = (int)ceilf(det->y2 - xf->origin_y);
    ox0 = ox0 < 0 ? 0 : ox0;
    oy0 = oy0 < 0 ? 0 : oy0;
    ox1 = ox1 > xf->src_w ? xf->src_w : ox1;
    oy1 = oy1 > xf->src_h ? xf->src_h : oy1;
    m->x = (int)xf->origin_x + ox0;
    m->y = (int)xf->origin_y + oy0;
    m->width = ox1 > ox0 ? ox1 - ox0 : 0;
    m->height = oy1 > oy0 ? oy1 - oy0 : 0;
    size_t npx = (size_t)m->width * m->height;
    int rc = grow(a, (void **)&s->bits, &s->bits_cap, npx + 1, err);
    if (rc)
        return rc;
    if (npx == 0)
        return 0;
    /* 3. the model-input pixels those sample (inside the picture, letterbox removed). */
    double sx = (double)xf->resized_w / xf->src_w, sy = (double)xf->resized_h / xf->src_h;
    int pad_x = (int)xf->pad_x, pad_y = (int)xf->pad_y;
    int ux0 = lin_at(ox0, sx, xf->resized_w).i0, ux1 = lin_at(ox1 - 1, sx, xf->resized_w).i1;
    int uy0 = lin_at(oy0, sy, xf->resized_h).i0, uy1 = lin_at(oy1 - 1, sy, xf->resized_h).i1;
    int uw = ux1 - ux0 + 1, uh = uy1 - uy0 + 1;
    if ((rc = grow(a, (void **)&s->up, &s->up_cap, (size_t)uw * uh * sizeof(float), err)))
        return rc;
    size_t ncols = (size_t)(uw > m->width ? uw : m->width);
    if ((rc = grow(a, (void **)&s->cols, &s->cols_cap, ncols * sizeof(lin), err)))
        return rc;
    /* the horizontal taps are the same for every row: computed once per pass */
    for (int x = 0; x < uw; x++)
        s->cols[x] = lin_at(pad_x + ux0 + x, rx, mw);
    for (int y = 0; y < uh; y++) {
        lin ly = lin_at(pad_y + uy0 + y, ry, mh);
        const float *p0 = s->proto + (size_t)ly.i0 * mw, *p1 = s->proto + (size_t)ly.i1 * mw;
        float *u = s->up + (size_t)y * uw;
        for (int x = 0; x < uw; x++) {
            lin lx = s->cols[x];
            float top = p0[lx.i0] + (p0[lx.i1] - p0[lx.i0]) * lx.l;
            float bot = p1[lx.i0] + (p1[lx.i1] - p1[lx.i0]) * lx.l;
            u[x] = top + (bot - top) * ly.l;
        }
    }
    /* 4. image pixels, thresholded. */
    for (int x = 0; x < m->width; x++) {
        lin lx = lin_at(ox0 + x, sx, xf->resized_w);
        s->cols[x] = (lin){lx.i0 - ux0, lx.i1 - ux0, lx.l};
    }
    for (int y = 0; y < m->height; y++) {
        lin ly = lin_at(oy0 + y, sy, xf->resized_h);
        const float *u0 = s->up + (size_t)(ly.i0 - uy0) * uw, *u1 = s->up + (size_t)(ly.i1 - uy0) * uw;
        uint8_t *b = s->bits + (size_t)y * m->width;
        for (int x = 0; x < m->width; x++) {
            lin lx = s->cols[x];
            float top = u0[lx.i0] + (u0[lx.i1] - u0[lx.i0]) * lx.l;
            float bot = u1[lx.i0] + (u1[lx.i1] - u1[lx.i0]) * lx.l;
            b[x] = top + (bot - top) * ly.l > thr;
        }
    }
    return 0;
}

/* Where a mask goes: run-length coded into its detection (sh_mask), or bit-packed into a
 * fixed slot of the frame graph op's output (vision/frame.h). */
typedef struct mask_sink {
    int32_t *boxes;          /* [n, SH_FRAME_MASK_BOX_WORDS], or NULL for run-length masks */
    uint8_t *bits;           /* [n, slot] */
    size_t slot;
} mask_sink;

static int pack_mask(const sh_mask *m, const uint8_t *px, const mask_sink *sink, int i, sh_err *err)
{
    size_t npx = (size_t)m->width * m->height, area = 0;
    if (npx > sink->slot * 8)
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolov8-seg: a %dx%d mask does not fit a slot of %zu bytes", m->width,
                       m->height, sink->slot);
    uint8_t *o = sink->bits + (size_t)i * sink->slot;
    memset(o, 0, (npx + 7) / 8);
    for (size_t k = 0; k < npx; k++) {
        o[k >> 3] |= (uint8_t)(px[k] << (k & 7));
        area += px[k];
    }
    int32_t *b = sink->boxes + (size_t)i * SH_FRAME_MASK_BOX_WORDS;
    b[0] = m->x;
    b[1] = m->y;
    b[2] = m->width;
    b[3] = m->height;
    b[4] = (int32_t)area;
    return 0;
}

/* The mask of detection i: its coefficients follow the box and the nc class scores in the
 * column of its anchor. */
static int mask_of(sh_allocator *a, const float *protos, int nm, int mh, int mw, const sh_yolo_cols *src, int nc,
                   const sh_transform *xf, float thr, sh_detection *det, const mask_sink *sink, int i, seg_scratch *s,
                   sh_err *err)
{
    size_t stride;
    const float *col = sh_yolo_column(src, det->anchor, &stride);
    if (!col)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "yolov8-seg: anchor %d of a detection is not in the output",
                       det->anchor);
    float bm[4];
    sh_yolo_box(col, stride, bm);
    const float *coeff = col + (4 + (size_t)nc) * stride;
    if (sink->boxes) {
        sh_mask geom = {0};
        int rc = build_mask(a, protos, nm, mh, mw, coeff, stride, bm, xf, det, thr, s, &geom, err);
        return rc ? rc : pack_mask(&geom, s->bits, sink, i, err);
    }
    sh_mask *m = sh_calloc(a, 1, sizeof *m);
    if (!m)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate a mask");
    int rc = build_mask(a, protos, nm, mh, mw, coeff, stride, bm, xf, det, thr, s, m, err);
    if (rc == 0)
        rc = encode_runs(a, s->bits, (size_t)m->width * m->height, m, err);
    if (rc) {
        sh_free(a, m->runs);
        sh_free(a, m);
        return rc;
    }
    det->mask = m;
    return 0;
}

/* Masks are independent of each other: spread over the OpenMP team (the network is done by
 * now, its threads idle), each thread with its own scratch; the first failure is reported. */
static int build_masks(sh_allocator *a, const float *protos, int nm, int mh, int mw, const sh_yolo_cols *src, int nc,
                       const sh_transform *xf, float thr, sh_detection *items, int n, const mask_sink *sink,
                       sh_err *err)
{
    int rc = 0;
    int threads = omp_get_max_threads();
    if (threads > n / 4)
        threads = n / 4 > 1 ? n / 4 : 1;
#pragma omp parallel num_threads(threads)
    {
        sh_err local = {0};
        int lrc = 0;
        seg_scratch s = {0};
        s.proto = sh_alloc(a, (size_t)mh * mw * sizeof(float));
        if (!s.proto)
            lrc = sh_errf(&local, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate a %dx%d proto plane", mw, mh);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < n; i++)
            if (!lrc)
                lrc = mask_of(a, protos, nm, mh, mw, src, nc, xf, thr, &items[i], sink, i, &s, &local);
        if (lrc) {
#pragma omp critical(shoal_seg_masks)
            if (!rc) {
                rc = lrc;
                if (err)
                    *err = local;
            }
        }
        sh_free(a, s.proto);
        sh_free(a, s.up);
        sh_free(a, s.bits);
        sh_free(a, s.cols);
    }
    return rc;
}

typedef struct protos_shape {
    int nm, mh, mw;
} protos_shape;

static int read_protos(const sh_ftensor *protos, protos_shape *ps, sh_err *err)
{
    if (!protos || !protos->data || protos->ndim != 4 || protos->shape[0] != 1 || protos->shape[1] <= 0 ||
        protos->shape[1] > SH_YOLO_MAX_CHANNELS || protos->shape[2] <= 0 || protos->shape[3] <= 0 ||
        protos->shape[2] > 4096 || protos->shape[3] > 4096)
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolov8-seg: protos must be [1, nm, Hp, Wp]");
    *ps = (protos_shape){(int)protos->shape[1], (int)protos->shape[2], (int)protos->shape[3]};
    return 0;
}

/* Boxes as the detect decoder makes them, then a mask per kept detection. */
static int segment(const sh_yolo_cols *src, const sh_ftensor *protos, const protos_shape *ps, const sh_transform *xf,
                   const sh_decode_params *p, sh_detections *dets, sh_err *err)
{
    if (src->channels <= 4 + ps->nm)
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolov8-seg: output has %lld channels, need 4 + nc + %d mask coefficients",
                       (long long)src->channels, ps->nm);
    int nc = (int)(src->channels - 4 - ps->nm);
    sh_allocator *a = dets->alloc;
    sh_candidates c;
    int rc = sh_yolov8_candidates(a, src, nc, p->score_threshold, &c, err);
    if (rc)
        return rc;
    rc = sh_detections_finish(dets, xf, p, &c, err);
    sh_candidates_free(a, &c);
    if (rc)
        return rc;
    mask_sink runs = {0};
    rc = build_masks(a, protos->data, ps->nm, ps->mh, ps->mw, src, nc, xf, p->mask_threshold, dets->items,
                     (int)dets->count, &runs, err);
    if (rc)
        sh_detections_clear(dets);
    return rc;
}

int sh_decode_yolov8_seg(const sh_ftensor *out, const sh_ftensor *protos, const sh_transform *xf,
                         const sh_decode_params *p, sh_detections *dets, sh_err *err)
{
    int rc = sh_decode_check(xf, p, dets, "yolov8-seg", err);
    sh_yolo_cols src = {0};
    if (rc == 0)
        rc = sh_yolo_cols_full(out, "yolov8-seg", &src, err);
    protos_shape ps = {0};
    if (rc || (rc = read_protos(protos, &ps, err)))
        return rc;
    return segment(&src, protos, &ps, xf, p, dets, err);
}

int sh_yolo_seg_masks(const sh_ftensor *protos, const sh_yolo_cols *src, int nc, const sh_transform *xf, float thr,
                      sh_detections *dets, sh_err *err)
{
    protos_shape ps = {0};
    int rc = read_protos(protos, &ps, err);
    if (!rc && src->channels < 4 + (int64_t)nc + ps.nm)
        rc = sh_errf(err, SHOAL_ERR_SHAPE, "masks: columns of %lld values lack %d coefficients", (long long)src->channels,
                     ps.nm);
    mask_sink runs = {0};
    if (!rc)
        rc = build_masks(dets->alloc, protos->data, ps.nm, ps.mh, ps.mw, src, nc, xf, thr, dets->items,
                         (int)dets->count, &runs, err);
    if (rc)
        sh_detections_clear(dets);
    return rc;
}

int sh_mask_at(const sh_mask *m, int x, int y)
{
    if (!m || x < m->x || y < m->y || x >= m->x + m->width || y >= m->y + m->height)
        return 0;
    size_t pos = (size_t)(y - m->y) * m->width + (size_t)(x - m->x), acc = 0;
    for (size_t r = 0; r < m->n_runs; r++) {
        acc += m->runs[r];
        if (pos < acc)
            return (int)(r & 1);
    }
    return 0;
}

void sh_mask_paint(const sh_mask *m, uint8_t *plane, int image_w, int image_h, uint8_t value)
{
    if (!m || !plane || m->width <= 0)
        return;
    size_t pos = 0;
    for (size_t r = 0; r < m->n_runs; r++) {
        size_t len = m->runs[r];
        if (r & 1) {
            for (size_t k = pos; k < pos + len; k++) {
                int x = m->x + (int)(k % (size_t)m->width), y = m->y + (int)(k / (size_t)m->width);
                if (x >= 0 && y >= 0 && x < image_w && y < image_h)
                    plane[(size_t)y * image_w + x] = value;
            }
        }
        pos += len;
    }
}

int sh_seg_masks_packed(sh_allocator *a, const sh_ftensor *out, const sh_ftensor *protos, const sh_transform *xf,
                        float thr, sh_detection *items, int n, int32_t *boxes, uint8_t *bits, size_t slot, sh_err *err)
{
    sh_yolo_cols src = {0};
    protos_shape ps = {0};
    int rc = sh_yolo_cols_full(out, "yolov8-seg", &src, err);
    if (rc || (rc = read_protos(protos, &ps, err)))
        return rc;
    if (src.channels <= 4 + ps.nm)
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolov8-seg: output has %lld channels, need 4 + nc + %d mask coefficients",
                       (long long)src.channels, ps.nm);
    int nc = (int)(src.channels - 4 - ps.nm);
    for (int i = 0; i < n; i++)
        if (items[i].anchor < 0 || items[i].anchor >= src.n_anchors)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "yolov8-seg: detection %d has anchor %d of %lld", i,
                           items[i].anchor, (long long)src.n_anchors);
    mask_sink sink = {boxes, bits, slot};
    return build_masks(a, protos->data, ps.nm, ps.mh, ps.mw, &src, nc, xf, thr, items, n, &sink, err);
}

int sh_mask_from_bits(sh_allocator *a, const int32_t box[SH_FRAME_MASK_BOX_WORDS], const uint8_t *bits, size_t slot,
                      sh_mask **out, sh_err *err)
{
    *out = NULL;
    if (box[2] < 0 || box[3] < 0 || (size_t)box[2] * (size_t)box[3] > slot * 8)
        return sh_errf(err, SHOAL_ERR_SHAPE, "mask: a %dx%d box does not fit a slot of %zu bytes", box[2], box[3], slot);
    size_t npx = (size_t)box[2] * (size_t)box[3];
    sh_mask *m = sh_calloc(a, 1, sizeof *m);
    uint8_t *px = sh_alloc(a, npx + 1);
    if (!m || !px) {
        sh_free(a, m);
        sh_free(a, px);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "mask: cannot allocate a %dx%d mask", box[2], box[3]);
    }
    for (size_t k = 0; k < npx; k++)
        px[k] = (uint8_t)((bits[k >> 3] >> (k & 7)) & 1);
    *m = (sh_mask){.x = box[0], .y = box[1], .width = box[2], .height = box[3]};
    int rc = encode_runs(a, px, npx, m, err);
    sh_free(a, px);
    if (rc == 0 && m->area != (size_t)box[4])
        rc = sh_errf(err, SHOAL_ERR_INTERNAL, "mask: %zu pixels set, the box says %d", m->area, box[4]);
    if (rc) {
        sh_free(a, m->runs);
        sh_free(a, m);
        return rc;
    }
    *out = m;
    return 0;
}
