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
#include <stdbool.h>
#include <string.h>

#include "core/scratch.h"

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

/* One thread's scratch. The packed path (the graph op) runs on `fixed` scratch carved from a
 * planned workspace (sh_frame_mask_slot_bytes) and never grows it; the host decoders grow theirs. */
typedef struct seg_scratch {
    float *proto;      /* mh x mw */
    float *up;         /* two rows of the model-input region (up_row: which), uw floats each */
    lin *taps_up;      /* horizontal taps of those rows, shared by every row */
    lin *taps_img;     /* horizontal taps of the image rows of the box */
    uint8_t *bits;     /* the box's pixels, one byte each (run-length path), or one row (packed) */
    size_t proto_cap, up_cap, taps_up_cap, taps_img_cap, bits_cap;
    int up_row[2];
    bool fixed;
} seg_scratch;

static int grow(sh_allocator *a, bool fixed, void **p, size_t *cap, size_t need, sh_err *err)
{
    if (need <= *cap)
        return 0;
    if (fixed)
        return sh_errf(err, SHOAL_ERR_INTERNAL,
                       "yolov8-seg: a mask needs %zu bytes of scratch, the workspace holds %zu", need, *cap);
    void *n = sh_realloc(a, *p, need);
    if (!n)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate %zu bytes of mask scratch", need);
    *p = n;
    *cap = need;
    return 0;
}

/* Runs of a mask as they are found (sh_mask: runs alternate background, foreground, starting
 * with background); the run array grows geometrically. */
typedef struct run_coder {
    sh_allocator *a;
    uint32_t *runs;
    size_t cap, n, area;
    uint8_t cur;     /* the value of the run being counted */
} run_coder;

static int coder_start(run_coder *c, sh_allocator *a, sh_err *err)
{
    *c = (run_coder){.a = a, .cap = 16};
    c->runs = sh_alloc(a, c->cap * sizeof *c->runs);
    return c->runs ? 0 : sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate mask runs");
}

/* Ends the current run at len pixels; the next one has the other value. */
static int coder_push(run_coder *c, uint32_t len, sh_err *err)
{
    if (c->n == c->cap) {
        uint32_t *more = sh_realloc(c->a, c->runs, 2 * c->cap * sizeof *c->runs);
        if (!more) {
            sh_free(c->a, c->runs);
            c->runs = NULL;
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate %zu mask runs", 2 * c->cap);
        }
        c->runs = more;
        c->cap *= 2;
    }
    c->runs[c->n++] = len;
    if (c->cur)
        c->area += len;
    c->cur = (uint8_t)!c->cur;
    return 0;
}

static void coder_finish(run_coder *c, sh_mask *m)
{
    m->runs = c->runs;
    m->n_runs = c->n;
    m->area = c->area;
}

/* Run-length code of a 0/1 byte plane, in one pass. */
static int encode_runs(sh_allocator *a, const uint8_t *bits, size_t n, sh_mask *m, sh_err *err)
{
    run_coder c;
    int rc = coder_start(&c, a, err);
    uint32_t len = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (bits[i] == c.cur) {
            len++;
            continue;
        }
        rc = coder_push(&c, len, err);
        len = 1;
    }
    if (rc == 0 && (rc = coder_push(&c, len, err)) == 0)
        coder_finish(&c, m);
    return rc;
}

/* The same from n packed bits, least significant first (the frame ops' mask pool): the
 * next change of value is found a 64-bit window at a time with a count of trailing zeros,
 * so the cost is the runs and the words, not the pixels, and no byte plane is made. */
static uint64_t bits_window(const uint8_t *bits, size_t n, size_t k, size_t *valid)
{
    size_t byte = k / 8, bytes = (n + 7) / 8 - byte;
    uint64_t w = 0;
    if (bytes >= sizeof w) {
        memcpy(&w, bits + byte, sizeof w);
    } else {
        for (size_t i = 0; i < bytes; i++)
            w |= (uint64_t)bits[byte + i] << (8 * i);
    }
    size_t shift = k & 7, left = n - k;
    *valid = left < 64 - shift ? left : 64 - shift;
    return w >> shift;
}

static int encode_packed_runs(sh_allocator *a, const uint8_t *bits, size_t n, sh_mask *m, sh_err *err)
{
    run_coder c;
    int rc = coder_start(&c, a, err);
    uint32_t len = 0;
    size_t k = 0;
    while (k < n && rc == 0) {
        size_t valid;
        uint64_t w = bits_window(bits, n, k, &valid);
        uint64_t change = (c.cur ? ~w : w) & (valid == 64 ? ~(uint64_t)0 : ((uint64_t)1 << valid) - 1);
        if (!change) {
            len += (uint32_t)valid;
            k += valid;
            continue;
        }
        unsigned same = (unsigned)__builtin_ctzll(change);
        k += same;
        rc = coder_push(&c, len + same, err);
        len = 0;
    }
    if (rc == 0 && (rc = coder_push(&c, len, err)) == 0)
        coder_finish(&c, m);
    return rc;
}

/* The mask's box: image pixels of the detection's box, local to the transform's region. */
typedef struct mask_geom {
    int ox0, oy0, width, height;
} mask_geom;

static mask_geom mask_geom_of(const sh_transform *xf, const sh_detection *det)
{
    int ox0 = (int)floorf(det->x1 - xf->origin_x), ox1 = (int)ceilf(det->x2 - xf->origin_x);
    int oy0 = (int)floorf(det->y1 - xf->origin_y), oy1 = (int)ceilf(det->y2 - xf->origin_y);
    ox0 = ox0 < 0 ? 0 : ox0;
    oy0 = oy0 < 0 ? 0 : oy0;
    ox1 = ox1 > xf->src_w ? xf->src_w : ox1;
    oy1 = oy1 > xf->src_h ? xf->src_h : oy1;
    return (mask_geom){ox0, oy0, ox1 > ox0 ? ox1 - ox0 : 0, oy1 > oy0 ? oy1 - oy0 : 0};
}

/* What a mask is made from: the prototypes, the detection's coefficients and model-input box. */
typedef struct mask_src {
    const float *protos;
    int nm, mh, mw;
    const float *coeff;
    size_t coeff_stride;
    float bm[4];
} mask_src;

/* Model-input row r (of the resized picture) of the upsampled proto plane over the uw
 * columns of the box's taps into slot k (build_mask step 3). */
static void up_row(seg_scratch *s, const mask_src *ms, const sh_transform *xf, int uw, int r, int k)
{
    double ry = (double)ms->mh / xf->dst_h;
    lin ly = lin_at((int)xf->pad_y + r, ry, ms->mh);
    const float *p0 = s->proto + (size_t)ly.i0 * ms->mw, *p1 = s->proto + (size_t)ly.i1 * ms->mw;
    float *u = s->up + (size_t)k * uw;
    for (int x = 0; x < uw; x++) {
        lin lx = s->taps_up[x];
        float top = p0[lx.i0] + (p0[lx.i1] - p0[lx.i0]) * lx.l;
        float bot = p1[lx.i0] + (p1[lx.i1] - p1[lx.i0]) * lx.l;
        u[x] = top + (bot - top) * ly.l;
    }
    s->up_row[k] = r;
}

/* Rows want[0] and want[1] of the upsampled plane, computed when not held yet; each image row
 * reads two, and successive image rows mostly the same two (row indices never decrease). */
static void up_rows(seg_scratch *s, const mask_src *ms, const sh_transform *xf, int uw, const int want[2],
                    const float *u[2])
{
    for (int k = 0; k < 2; k++) {
        int slot = s->up_row[0] == want[k] ? 0 : s->up_row[1] == want[k] ? 1 : -1;
        if (slot < 0) {
            slot = s->up_row[0] == want[1 - k] ? 1 : 0;   /* keep the other row this image row reads */
            up_row(s, ms, xf, uw, want[k], slot);
        }
        u[k] = s->up + (size_t)slot * uw;
    }
}

/* The pixels of the mask box g, 0 or 1: into s->bits (row-major over the box), or bit-packed
 * into `packed` (pixel k at bit k & 7 of byte k >> 3) with *area the foreground pixels. */
static int build_mask(sh_allocator *a, const mask_src *ms, const sh_transform *xf, const mask_geom *g, float thr,
                      seg_scratch *s, uint8_t *packed, size_t *area, sh_err *err)
{
    int iw = xf->dst_w, ih = xf->dst_h, mh = ms->mh, mw = ms->mw;
    double rx = (double)mw / iw, ry = (double)mh / ih;
    size_t npx = (size_t)g->width * g->height;
    *area = 0;
    int rc = grow(a, s->fixed, (void **)&s->bits, &s->bits_cap, (packed ? (size_t)g->width : npx) + 1, err);
    if (rc || npx == 0)
        return rc;
    /* 1. proto cells inside the box (crop rule: col >= x1 && col < x2, as ultralytics). */
    double px1 = ms->bm[0] * rx, px2 = ms->bm[2] * rx, py1 = ms->bm[1] * ry, py2 = ms->bm[3] * ry;
    int c_lo = (int)fmax(0, ceil(px1)), c_hi = (int)fmin(mw, ceil(px2));
    int r_lo = (int)fmax(0, ceil(py1)), r_hi = (int)fmin(mh, ceil(py2));
    if ((rc = grow(a, s->fixed, (void **)&s->proto, &s->proto_cap, (size_t)mh * mw * sizeof(float), err)))
        return rc;
    memset(s->proto, 0, (size_t)mh * mw * sizeof(float));
    if (c_lo < c_hi && r_lo < r_hi) {
        for (int k = 0; k < ms->nm; k++) {
            float ck = ms->coeff[(size_t)k * ms->coeff_stride];
            const float *pk = ms->protos + (size_t)k * mh * mw;
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
    /* 3. the model-input pixels the box's image pixels sample (inside the picture, letterbox
     * removed), two rows at a time: columns ux0..ux1 of rows as step 4 asks for them. */
    double sx = (double)xf->resized_w / xf->src_w, sy = (double)xf->resized_h / xf->src_h;
    int ox0 = g->ox0, oy0 = g->oy0;
    int ux0 = lin_at(ox0, sx, xf->resized_w).i0, ux1 = lin_at(ox0 + g->width - 1, sx, xf->resized_w).i1;
    int uw = ux1 - ux0 + 1;
    if ((rc = grow(a, s->fixed, (void **)&s->up, &s->up_cap, 2 * (size_t)uw * sizeof(float), err)) ||
        (rc = grow(a, s->fixed, (void **)&s->taps_up, &s->taps_up_cap, (size_t)uw * sizeof(lin), err)) ||
        (rc = grow(a, s->fixed, (void **)&s->taps_img, &s->taps_img_cap, (size_t)g->width * sizeof(lin), err)))
        return rc;
    for (int x = 0; x < uw; x++)
        s->taps_up[x] = lin_at((int)xf->pad_x + ux0 + x, rx, mw);
    s->up_row[0] = s->up_row[1] = -1;
    /* 4. image pixels, thresholded. */
    for (int x = 0; x < g->width; x++) {
        lin lx = lin_at(ox0 + x, sx, xf->resized_w);
        s->taps_img[x] = (lin){lx.i0 - ux0, lx.i1 - ux0, lx.l};
    }
    if (packed)
        memset(packed, 0, (npx + 7) / 8);
    size_t fg = 0;
    for (int y = 0; y < g->height; y++) {
        lin ly = lin_at(oy0 + y, sy, xf->resized_h);
        const int want[2] = {ly.i0, ly.i1};
        const float *u[2];
        up_rows(s, ms, xf, uw, want, u);
        uint8_t *b = s->bits + (packed ? 0 : (size_t)y * g->width);
        for (int x = 0; x < g->width; x++) {
            lin lx = s->taps_img[x];
            float top = u[0][lx.i0] + (u[0][lx.i1] - u[0][lx.i0]) * lx.l;
            float bot = u[1][lx.i0] + (u[1][lx.i1] - u[1][lx.i0]) * lx.l;
            b[x] = top + (bot - top) * ly.l > thr;
        }
        if (!packed)
            continue;
        size_t k0 = (size_t)y * g->width;
        for (int x = 0; x < g->width; x++) {
            size_t k = k0 + (size_t)x;
            packed[k >> 3] |= (uint8_t)(b[x] << (k & 7));
            fg += b[x];
        }
    }
    *area = fg;
    return 0;
}

/* Where masks go: run-length coded into their detections (sh_mask), or bit-packed into the
 * frame graph op's pool at the offsets its boxes carry (vision/frame.h). */
typedef struct mask_sink {
    int32_t *boxes;          /* [n, SH_FRAME_MASK_BOX_WORDS], or NULL for run-length masks */
    uint8_t *pool;
} mask_sink;

/* The mask of detection i: its coefficients follow the box and the nc class scores in the
 * column of its anchor. */
static int mask_of(sh_allocator *a, const float *protos, int nm, int mh, int mw, const sh_yolo_cols *src, int nc,
                   const sh_transform *xf, float thr, sh_detection *det, const mask_sink *sink, int i, seg_scratch *s,
                   sh_err *err)
{
    int32_t *box = sink->boxes ? sink->boxes + (size_t)i * SH_FRAME_MASK_BOX_WORDS : NULL;
    if (box && box[5] < 0)
        return 0;   /* no room in the pool: the detection goes without its mask */
    size_t stride;
    const float *col = sh_yolo_column(src, det->anchor, &stride);
    if (!col)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "yolov8-seg: anchor %d of a detection is not in the output",
                       det->anchor);
    mask_src ms = {protos, nm, mh, mw, col + (4 + (size_t)nc) * stride, stride, {0}};
    sh_yolo_box(col, stride, ms.bm);
    mask_geom g = mask_geom_of(xf, det);
    size_t area = 0;
    if (box) {
        int rc = build_mask(a, &ms, xf, &g, thr, s, sink->pool + box[5], &area, err);
        box[4] = (int32_t)area;
        return rc;
    }
    sh_mask *m = sh_calloc(a, 1, sizeof *m);
    if (!m)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "yolov8-seg: cannot allocate a mask");
    *m = (sh_mask){.x = (int)xf->origin_x + g.ox0, .y = (int)xf->origin_y + g.oy0, .width = g.width,
                   .height = g.height};
    int rc = build_mask(a, &ms, xf, &g, thr, s, NULL, &area, err);
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

/* Per-thread scratch: `slots` fixed ones carved from ws (sh_frame_mask_slot_bytes(bounds) each), or
 * grown from a when ws is NULL. */
typedef struct seg_ws {
    void *base;
    int slots;
    sh_frame_mask_bounds bounds;
} seg_ws;

static size_t slot_pieces(const sh_frame_mask_bounds *b, size_t sizes[5])
{
    sizes[0] = (size_t)b->mh * b->mw * sizeof(float);
    sizes[1] = 2 * (size_t)b->up_w * sizeof(float);
    sizes[2] = (size_t)b->up_w * sizeof(lin);
    sizes[3] = (size_t)b->max_w * sizeof(lin);
    sizes[4] = (size_t)b->max_w + 1;
    size_t total = 0;
    for (int k = 0; k < 5; k++)
        total = sh_scratch_need(total, sizes[k]);
    return total;
}

size_t sh_frame_mask_slot_bytes(const sh_frame_mask_bounds *b)
{
    if (b->mh < 1 || b->mw < 1 || b->mh > 4096 || b->mw > 4096 || b->up_w < 1 || b->up_w > SH_IMAGE_MAX_SIDE ||
        b->max_w < 1 || b->max_w > SH_IMAGE_MAX_SIDE)
        return SIZE_MAX;
    size_t sizes[5];
    return slot_pieces(b, sizes);
}

static void slot_carve(const seg_ws *ws, int t, seg_scratch *s)
{
    size_t sizes[5], bytes = slot_pieces(&ws->bounds, sizes);
    sh_scratch c = sh_scratch_init((char *)ws->base + (size_t)t * bytes, bytes);
    *s = (seg_scratch){.fixed = true};
    s->proto = sh_scratch_take(&c, sizes[0]);
    s->up = sh_scratch_take(&c, sizes[1]);
    s->taps_up = sh_scratch_take(&c, sizes[2]);
    s->taps_img = sh_scratch_take(&c, sizes[3]);
    s->bits = sh_scratch_take(&c, sizes[4]);
    s->proto_cap = sizes[0];
    s->up_cap = sizes[1];
    s->taps_up_cap = sizes[2];
    s->taps_img_cap = sizes[3];
    s->bits_cap = sizes[4];
}

/* Masks are independent of each other: spread over the OpenMP team (the network is done by
 * now, its threads idle), each thread with its own scratch; the first failure is reported. */
static int build_masks(sh_allocator *a, const seg_ws *ws, const float *protos, int nm, int mh, int mw,
                       const sh_yolo_cols *src, int nc, const sh_transform *xf, float thr, sh_detection *items, int n,
                       const mask_sink *sink, sh_err *err)
{
    int rc = 0;
    int threads = omp_get_max_threads();
    if (threads > n / 4)
        threads = n / 4 > 1 ? n / 4 : 1;
    if (ws && threads > ws->slots)
        threads = ws->slots;
#pragma omp parallel num_threads(threads)
    {
        sh_err local = {0};
        int lrc = 0;
        seg_scratch s = {0};
        if (ws)
            slot_carve(ws, omp_get_thread_num(), &s);
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
        if (!ws) {
            sh_free(a, s.proto);
            sh_free(a, s.up);
            sh_free(a, s.taps_up);
            sh_free(a, s.taps_img);
            sh_free(a, s.bits);
        }
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
    sh_candidates c = {0};
    int rc = sh_yolov8_candidates(a, NULL, src, nc, p->score_threshold, &c, err);
    if (rc)
        return rc;
    rc = sh_detections_finish(dets, xf, p, &c, err);
    sh_candidates_free(a, &c);
    if (rc)
        return rc;
    mask_sink runs = {0};
    rc = build_masks(a, NULL, protos->data, ps->nm, ps->mh, ps->mw, src, nc, xf, p->mask_threshold, dets->items,
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
        rc = build_masks(dets->alloc, NULL, protos->data, ps.nm, ps.mh, ps.mw, src, nc, xf, thr, dets->items,
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

int sh_seg_masks_packed(sh_allocator *a, void *ws, const sh_frame_mask_bounds *bounds, const sh_ftensor *out,
                        const sh_ftensor *protos, const sh_transform *xf, float thr, sh_detection *items, int n,
                        int32_t *boxes, uint8_t *pool, size_t pool_bytes, sh_err *err)
{
    sh_yolo_cols src = {0};
    protos_shape ps = {0};
    int rc = sh_yolo_cols_full(out, "yolov8-seg", &src, err);
    if (rc || (rc = read_protos(protos, &ps, err)))
        return rc;
    if (src.channels <= 4 + ps.nm)
        return sh_errf(err, SHOAL_ERR_SHAPE, "yolov8-seg: output has %lld channels, need 4 + nc + %d mask coefficients",
                       (long long)src.channels, ps.nm);
    if (ws && (bounds->mh != ps.mh || bounds->mw != ps.mw || bounds->slots < 1))
        return sh_errf(err, SHOAL_ERR_INTERNAL, "yolov8-seg: a workspace for %dx%d prototypes, given %dx%d",
                       bounds->mw, bounds->mh, ps.mw, ps.mh);
    int nc = (int)(src.channels - 4 - ps.nm);
    for (int i = 0; i < n; i++)
        if (items[i].anchor < 0 || items[i].anchor >= src.n_anchors)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "yolov8-seg: detection %d has anchor %d of %lld", i,
                           items[i].anchor, (long long)src.n_anchors);
    /* Places in rank order, each mask right after the last that fitted; one that no longer fits
     * is left out (offset -1) and a smaller one after it may still fit. */
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        mask_geom g = mask_geom_of(xf, &items[i]);
        size_t bytes = ((size_t)g.width * g.height + 7) / 8;
        bool fits = bytes <= pool_bytes - used && used <= INT32_MAX;
        int32_t *b = boxes + (size_t)i * SH_FRAME_MASK_BOX_WORDS;
        b[0] = (int)xf->origin_x + g.ox0;
        b[1] = (int)xf->origin_y + g.oy0;
        b[2] = g.width;
        b[3] = g.height;
        b[4] = 0;
        b[5] = fits ? (int32_t)used : -1;
        used += fits ? bytes : 0;
    }
    mask_sink sink = {boxes, pool};
    seg_ws w = {ws, ws ? bounds->slots : 0, ws ? *bounds : (sh_frame_mask_bounds){0}};
    return build_masks(a, ws ? &w : NULL, protos->data, ps.nm, ps.mh, ps.mw, &src, nc, xf, thr, items, n, &sink,
                       err);
}

int sh_mask_from_bits(sh_allocator *a, const int32_t box[SH_FRAME_MASK_BOX_WORDS], const uint8_t *bits, size_t room,
                      sh_mask **out, sh_err *err)
{
    *out = NULL;
    if (box[2] < 0 || box[3] < 0 || ((size_t)box[2] * (size_t)box[3] + 7) / 8 > room)
        return sh_errf(err, SHOAL_ERR_SHAPE, "mask: a %dx%d box does not fit the %zu bytes left in the pool", box[2],
                       box[3], room);
    size_t npx = (size_t)box[2] * (size_t)box[3];
    sh_mask *m = sh_calloc(a, 1, sizeof *m);
    if (!m)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "mask: cannot allocate a %dx%d mask", box[2], box[3]);
    *m = (sh_mask){.x = box[0], .y = box[1], .width = box[2], .height = box[3]};
    int rc = encode_packed_runs(a, bits, npx, m, err);
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
