#include <cub/cub.cuh>

#include "backends/cuda/kcommon.cuh"
#include "backends/cuda/frame.cuh"

/* The frame ops reproduce the host pipeline bit for bit (vision/frame.h), so every float and
 * double operation here is one IEEE operation rounded to nearest, written as an intrinsic: the
 * target is built with --use_fast_math (approximate division) and nvcc contracts a * b + c into
 * one fma, while the host is C11 with -ffp-contract=off. exp() is taken in double and rounded
 * to float, which is what glibc's expf returns (correctly rounded but for cases of 1e-9
 * probability). Comparisons that decide a result go through the bits (fr_gt), since fast-math
 * compares flush denormals to zero and the host's do not. What remains fast-math's: a product
 * or sum whose result is denormal (|x| < 1.2e-38) is flushed to zero; no box, score or mask
 * value of a real frame is that small. */

#define FR_XF_WORDS 12
#define FR_THREADS 256

__device__ __forceinline__ bool fr_nan(float v) { return (__float_as_uint(v) & 0x7fffffffu) > 0x7f800000u; }

/* non-NaN floats in IEEE order as integers; -0 and +0 both map to 0 */
__device__ __forceinline__ int fr_ord(float v)
{
    unsigned u = __float_as_uint(v);
    return u & 0x80000000u ? -(int)(u & 0x7fffffffu) : (int)u;
}

__device__ __forceinline__ bool fr_gt(float a, float b) { return !fr_nan(a) && !fr_nan(b) && fr_ord(a) > fr_ord(b); }
__device__ __forceinline__ bool fr_ge(float a, float b) { return !fr_nan(a) && !fr_nan(b) && fr_ord(a) >= fr_ord(b); }
__device__ __forceinline__ bool fr_le(float a, float b) { return !fr_nan(a) && !fr_nan(b) && fr_ord(a) <= fr_ord(b); }

__device__ __forceinline__ float fr_ld(const void *p, long long i, int f32)
{
    return f32 ? ((const float *)p)[i] : __half2float(((const __half *)p)[i]);
}

__device__ __forceinline__ float fr_expf(float x) { return __double2float_rn(exp((double)x)); }

__device__ __forceinline__ float fr_sigmoid(float v)
{
    return __fdiv_rn(1.0f, __fadd_rn(1.0f, fr_expf(-v)));
}

/* The transform (preprocess.h sh_transform) as the frame ops pass it (12 floats). */
struct fr_xf {
    float sx, sy, px, py, ox, oy;
    int src_w, src_h, dst_w, dst_h, rw, rh;
};

/* sh_transform_unpack's checks: false where the host op would fail. */
__device__ bool fr_unpack(const float *w, int max_side, fr_xf *xf)
{
    for (int i = 6; i < FR_XF_WORDS; i++)
        if (!(w[i] >= 1.0f && w[i] <= (float)max_side && w[i] == floorf(w[i])))
            return false;
    if (!(w[0] > 0.0f) || !(w[1] > 0.0f))
        return false;
    for (int i = 0; i < 6; i++)
        if (!isfinite(w[i]))
            return false;
    xf->sx = w[0];
    xf->sy = w[1];
    xf->px = w[2];
    xf->py = w[3];
    xf->ox = w[4];
    xf->oy = w[5];
    xf->src_w = (int)w[6];
    xf->src_h = (int)w[7];
    xf->dst_w = (int)w[8];
    xf->dst_h = (int)w[9];
    xf->rw = (int)w[10];
    xf->rh = (int)w[11];
    return true;
}

/* --- FrameToTensor ------------------------------------------------------------------------ */

/* sh_transform_compute for a w x h frame (model size checked at compile). */
__device__ void fr_transform(int w, int h, const sh_k_frame_pre_p &p, fr_xf *xf)
{
    xf->ox = xf->oy = 0.0f;
    xf->px = xf->py = 0.0f;
    xf->src_w = w;
    xf->src_h = h;
    xf->dst_w = p.width;
    xf->dst_h = p.height;
    if (p.stretch) {
        xf->rw = p.width;
        xf->rh = p.height;
        xf->sx = __double2float_rn(__ddiv_rn((double)p.width, (double)w));
        xf->sy = __double2float_rn(__ddiv_rn((double)p.height, (double)h));
        return;
    }
    double r = fmin(__ddiv_rn((double)p.width, (double)w), __ddiv_rn((double)p.height, (double)h));
    int rw, rh;
    if (p.top_left) {
        rw = (int)__dmul_rn((double)w, r);
        rh = (int)__dmul_rn((double)h, r);
    } else {
        rw = (int)rint(__dmul_rn((double)w, r));
        rh = (int)rint(__dmul_rn((double)h, r));
    }
    rw = rw < 1 ? 1 : rw > p.width ? p.width : rw;
    rh = rh < 1 ? 1 : rh > p.height ? p.height : rh;
    double left = 0, top = 0;
    if (!p.top_left) {
        left = rint(__dsub_rn(__ddiv_rn((double)(p.width - rw), 2.0), 0.1));
        top = rint(__dsub_rn(__ddiv_rn((double)(p.height - rh), 2.0), 0.1));
        left = left < 0 ? 0 : left;
        top = top < 0 ? 0 : top;
    }
    xf->rw = rw;
    xf->rh = rh;
    xf->sx = xf->sy = __double2float_rn(r);
    xf->px = __double2float_rn(left);
    xf->py = __double2float_rn(top);
}

/* OpenCV's 11-bit weight of a fraction (preprocess.c coef) */
__device__ __forceinline__ int fr_coef(float v) { return (short)__float2int_rn(__fmul_rn(v, 2048.0f)); }

/* One source tap of sh_resize_bilinear_u8 along an axis: output index d of n_out from n_in. */
struct fr_tap {
    int s;           /* first source index */
    int w0, w1;      /* weights of s and s + 1 */
    bool edge;       /* columns: the last pixel alone (past OpenCV's xmax) */
};

__device__ fr_tap fr_col_tap(int d, int n_out, int n_in)
{
    double scale = __ddiv_rn(1.0, __ddiv_rn((double)n_out, (double)n_in));
    float f = __double2float_rn(__dsub_rn(__dmul_rn(__dadd_rn((double)d, 0.5), scale), 0.5));
    int s = (int)floorf(f);
    f = __fsub_rn(f, (float)s);
    if (s < 0) {
        f = 0;
        s = 0;
    }
    /* xmax is the first column whose pair leaves the picture; sx only grows with dx */
    bool edge = s + 1 >= n_in;
    if (s >= n_in - 1) {
        f = 0;
        s = n_in - 1;
    }
    return fr_tap{s, fr_coef(__fsub_rn(1.0f, f)), fr_coef(f), edge};
}

__device__ fr_tap fr_row_tap(int d, int n_out, int n_in)
{
    double scale = __ddiv_rn(1.0, __ddiv_rn((double)n_out, (double)n_in));
    float f = __double2float_rn(__dsub_rn(__dmul_rn(__dadd_rn((double)d, 0.5), scale), 0.5));
    int s = (int)floorf(f);
    f = __fsub_rn(f, (float)s);
    return fr_tap{s, fr_coef(__fsub_rn(1.0f, f)), fr_coef(f), false};
}

/* The horizontal pass of one source row at an output column, RGB channel k. */
__device__ __forceinline__ int fr_hres(const uint8_t *row, const fr_tap &c, int k, int frame_bgr)
{
    int ch = frame_bgr ? 2 - k : k;
    int a = row[3 * c.s + ch];
    if (c.edge)
        return a * 2048;
    return a * c.w0 + row[3 * (c.s + 1) + ch] * c.w1;
}

__device__ __forceinline__ int fr_sat(int v) { return v < 0 ? 0 : v > 255 ? 255 : v; }

/* One thread per model-input pixel, all three planes. The vertical pass rounds as OpenCV's
 * vector loop for the row's first elements and as its scalar tail for the last ones (element
 * index rx * 3 + k of the RGB row), so each element takes the formula its position took. */
__global__ void k_frame_to_tensor(void *out, float *xf_out, const uint8_t *frame, const int32_t *size,
                                  const sh_k_frame_pre_p p)
{
    __shared__ float lut[3][256];
    for (int i = threadIdx.x; i < 3 * 256; i += blockDim.x)
        lut[i / 256][i % 256] = p.lut[i / 256][i % 256];
    __syncthreads();
    int w = size[0], h = size[1];
    bool ok = w >= 1 && h >= 1 && w <= p.max_side && h <= p.max_side && (long long)w * h <= p.max_pixels;
    long long plane = (long long)p.width * p.height;
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    fr_xf xf;
    if (ok)
        fr_transform(w, h, p, &xf);
    if (i == 0) {
        float v[FR_XF_WORDS] = {0};
        if (ok) {
            float t[FR_XF_WORDS] = {xf.sx, xf.sy, xf.px, xf.py, xf.ox, xf.oy, (float)xf.src_w, (float)xf.src_h,
                                    (float)xf.dst_w, (float)xf.dst_h, (float)xf.rw, (float)xf.rh};
            for (int k = 0; k < FR_XF_WORDS; k++)
                v[k] = t[k];
        }
        for (int k = 0; k < FR_XF_WORDS; k++)
            xf_out[k] = v[k];
    }
    if (!ok || i >= plane)
        return;
    int x = (int)(i % p.width), y = (int)(i / p.width);
    int rx = x - (int)xf.px, ry = y - (int)xf.py;
    int byte[3];
    if (ry < 0 || ry >= xf.rh || rx < 0 || rx >= xf.rw) {
        byte[0] = byte[1] = byte[2] = p.pad_value;
    } else {
        fr_tap c = fr_col_tap(rx, xf.rw, w), r = fr_row_tap(ry, xf.rh, h);
        int r0 = r.s < 0 ? 0 : r.s >= h ? h - 1 : r.s;
        int r1 = r.s + 1 < 0 ? 0 : r.s + 1 >= h ? h - 1 : r.s + 1;
        const uint8_t *row0 = frame + (size_t)r0 * w * 3, *row1 = frame + (size_t)r1 * w * 3;
        int row_len = xf.rw * 3, vec_end = row_len / 16 * 16;
        if (row_len - vec_end > 8)
            vec_end += 8;
        for (int co = 0; co < 3; co++) {
            int k = p.out_bgr ? 2 - co : co;
            int s0 = fr_hres(row0, c, k, p.frame_bgr), s1 = fr_hres(row1, c, k, p.frame_bgr);
            int v;
            if (rx * 3 + k < vec_end)
                v = fr_sat(((((int)(short)(s0 >> 4) * r.w0) >> 16) + (((int)(short)(s1 >> 4) * r.w1) >> 16) + 2) >> 2);
            else
                v = fr_sat((s0 * r.w0 + s1 * r.w1 + (1 << 21)) >> 22);
            byte[co] = v;
        }
    }
    for (int co = 0; co < 3; co++) {
        float v = lut[co][byte[co]];
        if (p.out_f32)
            ((float *)out)[co * plane + i] = v;
        else
            ((__half *)out)[co * plane + i] = k_h(v);
    }
}

extern "C" cudaError_t sh_k_frame_to_tensor(void *out, float *xf, const uint8_t *frame, const int32_t *size,
                                            const sh_k_frame_pre_p *p, cudaStream_t s)
{
    long long plane = (long long)p->width * p->height;
    k_frame_to_tensor<<<k_blocks((long)plane, FR_THREADS), FR_THREADS, 0, s>>>(out, xf, frame, size, *p);
    return cudaGetLastError();
}

/* --- FrameDecode -------------------------------------------------------------------------- */

/* Per anchor: its box, best score and class, and whether it passes (the workspace). */
struct fr_dec_ws {
    float *box, *score;
    int *cls, *keep;
};

__device__ __forceinline__ fr_dec_ws fr_dec_layout(void *ws, int n)
{
    float *f = (float *)ws;
    return fr_dec_ws{f, f + 4 * (size_t)n, (int *)(f + 5 * (size_t)n), (int *)(f + 6 * (size_t)n)};
}

/* x1, y1, x2, y2 of a centre and size (yolo.c sh_yolo_box) */
__device__ __forceinline__ void fr_box(float cx, float cy, float w, float h, float *b)
{
    float hw = __fdiv_rn(w, 2.0f), hh = __fdiv_rn(h, 2.0f);
    b[0] = __fsub_rn(cx, hw);
    b[1] = __fsub_rn(cy, hh);
    b[2] = __fadd_rn(cx, hw);
    b[3] = __fadd_rn(cy, hh);
}

/* yolo.c's class scan (first class, then every strictly greater score) and yolox.c's decode. */
__global__ void k_frame_scores(void *ws, const void *head, const sh_k_frame_decode_p p)
{
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= p.n)
        return;
    fr_dec_ws o = fr_dec_layout(ws, p.n);
    float b[4], best;
    int bc = 0;
    if (!p.yolox) {
        long long n = p.n;
        best = fr_ld(head, 4 * n + j, p.head_f32);
        for (int k = 1; k < p.n_cls; k++) {
            float v = fr_ld(head, (4 + k) * n + j, p.head_f32);
            if (fr_gt(v, best)) {
                best = v;
                bc = k;
            }
        }
        fr_box(fr_ld(head, j, p.head_f32), fr_ld(head, n + j, p.head_f32), fr_ld(head, 2 * n + j, p.head_f32),
               fr_ld(head, 3 * n + j, p.head_f32), b);
    } else {
        long long r = (long long)j * p.channels;
        float top = fr_ld(head, r + 5, p.head_f32);
        for (int k = 1; k < p.n_cls; k++) {
            float v = fr_ld(head, r + 5 + k, p.head_f32);
            if (fr_gt(v, top)) {
                top = v;
                bc = k;
            }
        }
        best = __fmul_rn(fr_ld(head, r + 4, p.head_f32), top);
        int n8 = (p.in_w / 8) * (p.in_h / 8), n16 = (p.in_w / 16) * (p.in_h / 16);
        int st = j < n8 ? 8 : j < n8 + n16 ? 16 : 32, local = j < n8 ? j : j < n8 + n16 ? j - n8 : j - n8 - n16;
        int gw = p.in_w / st, gx = local % gw, gy = local / gw;
        float cx = __fmul_rn(__fadd_rn(fr_ld(head, r, p.head_f32), (float)gx), (float)st);
        float cy = __fmul_rn(__fadd_rn(fr_ld(head, r + 1, p.head_f32), (float)gy), (float)st);
        /* yolox.c MAX_LOG_SIZE: exp of a garbage regression value stays finite */
        float bw = __fmul_rn(fr_expf(fminf(fr_ld(head, r + 2, p.head_f32), 20.0f)), (float)st);
        float bh = __fmul_rn(fr_expf(fminf(fr_ld(head, r + 3, p.head_f32), 20.0f)), (float)st);
        fr_box(cx, cy, bw, bh, b);
    }
    for (int k = 0; k < 4; k++)
        o.box[4 * (size_t)j + k] = b[k];
    o.score[j] = best;
    o.cls[j] = bc;
    o.keep[j] = fr_ge(best, p.thresh);
}

#define FR_SCAN_THREADS 1024

/* The survivors in anchor order: one block scans the keep flags a chunk at a time. */
__global__ void __launch_bounds__(FR_SCAN_THREADS)
    k_frame_compact(float *boxes, float *scores, int32_t *ids, int32_t *count, const void *ws, int n)
{
    typedef cub::BlockScan<int, FR_SCAN_THREADS> scan_t;
    __shared__ typename scan_t::TempStorage tmp;
    __shared__ int base;
    fr_dec_ws o = fr_dec_layout((void *)ws, n);
    if (threadIdx.x == 0)
        base = 0;
    __syncthreads();
    for (int start = 0; start < n; start += blockDim.x) {
        int j = start + threadIdx.x, keep = j < n ? o.keep[j] : 0, pos, total;
        scan_t(tmp).ExclusiveSum(keep, pos, total);
        if (keep) {
            int at = base + pos;
            for (int k = 0; k < 4; k++)
                boxes[4 * (size_t)at + k] = o.box[4 * (size_t)j + k];
            scores[at] = o.score[j];
            ids[at] = o.cls[j];
            ids[n + at] = j;
        }
        __syncthreads();
        if (threadIdx.x == 0)
            base += total;
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *count = base;
}

extern "C" size_t sh_k_frame_decode_ws(int n) { return (size_t)n * 7 * sizeof(float); }

extern "C" cudaError_t sh_k_frame_decode(float *boxes, float *scores, int32_t *ids, int32_t *count, const void *head,
                                         void *ws, const sh_k_frame_decode_p *p, cudaStream_t s)
{
    k_frame_scores<<<k_blocks(p->n, FR_THREADS), FR_THREADS, 0, s>>>(ws, head, *p);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    k_frame_compact<<<1, FR_SCAN_THREADS, 0, s>>>(boxes, scores, ids, count, ws, p->n);
    return cudaGetLastError();
}

/* --- FrameNms ----------------------------------------------------------------------------- */

/* Workspace: sort keys in and out, the IoU bitmask [rows, words], CUB's scratch. */
struct fr_nms_ws {
    unsigned long long *keys_in, *keys_out, *mask;
    void *sort;
};

static __host__ __device__ size_t fr_align(size_t v) { return (v + 255) & ~(size_t)255; }
static __host__ __device__ int fr_words(int rows) { return (rows + 63) / 64; }

static __host__ __device__ fr_nms_ws fr_nms_layout(void *ws, const sh_k_frame_nms_p &p)
{
    char *b = (char *)ws;
    size_t keys = fr_align((size_t)p.cap * 8), mask = fr_align((size_t)p.rows * fr_words(p.rows) * 8);
    return fr_nms_ws{(unsigned long long *)b, (unsigned long long *)(b + keys),
                     (unsigned long long *)(b + 2 * keys), b + 2 * keys + mask};
}

__device__ __forceinline__ int fr_count(const int32_t *count, int cap)
{
    int n = *count;
    return n >= 0 && n <= cap ? n : -1;
}

/* (score descending, index ascending) as one ascending 64-bit key; empty slots sort last.
 * Scores equal as floats (+0 and -0) get the same key, as they tie on the host. */
__global__ void k_nms_keys(unsigned long long *keys, const float *scores, const int32_t *count, int cap)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= cap)
        return;
    int n = fr_count(count, cap);
    if (i >= n) {
        keys[i] = ~0ull;
        return;
    }
    unsigned u = __float_as_uint(scores[i]);
    if (u == 0x80000000u)
        u = 0;
    unsigned ascending = u & 0x80000000u ? ~u : u | 0x80000000u;
    keys[i] = (unsigned long long)(~ascending) << 32 | (unsigned)i;
}

/* nms.c sh_box_iou, operation by operation */
__device__ float fr_iou(const float *a, const float *b)
{
    float iw = __fsub_rn(fminf(a[2], b[2]), fmaxf(a[0], b[0]));
    float ih = __fsub_rn(fminf(a[3], b[3]), fmaxf(a[1], b[1]));
    if (fr_le(iw, 0.0f) || fr_le(ih, 0.0f))
        return 0.0f;
    float inter = __fmul_rn(iw, ih);
    float area_a = __fmul_rn(fmaxf(__fsub_rn(a[2], a[0]), 0.0f), fmaxf(__fsub_rn(a[3], a[1]), 0.0f));
    float area_b = __fmul_rn(fmaxf(__fsub_rn(b[2], b[0]), 0.0f), fmaxf(__fsub_rn(b[3], b[1]), 0.0f));
    float ua = __fsub_rn(__fadd_rn(area_a, area_b), inter);
    return fr_gt(ua, 0.0f) ? __fdiv_rn(inter, ua) : 0.0f;
}

__device__ __forceinline__ int fr_rank_index(const unsigned long long *keys, int r) { return (int)(keys[r] & 0xffffffffu); }

/* Bit j of row i: candidate of rank j > i is suppressed by the one of rank i, should that one
 * be kept. 64 x 64 pairs per block; blocks left of the diagonal are never read. */
__global__ void k_nms_mask(unsigned long long *mask, const unsigned long long *keys, const float *boxes,
                           const int32_t *ids, const int32_t *count, const sh_k_frame_nms_p p)
{
    int rb = blockIdx.y, cb = blockIdx.x, words = fr_words(p.rows);
    int n = fr_count(count, p.cap);
    int m = n < p.rows ? n : p.rows;
    if (cb < rb || rb * 64 >= m || cb * 64 >= m)
        return;
    __shared__ float cbox[64][4];
    __shared__ int ccls[64];
    int t = threadIdx.x, j = cb * 64 + t;
    if (j < m) {
        int idx = fr_rank_index(keys, j);
        for (int k = 0; k < 4; k++)
            cbox[t][k] = boxes[4 * (size_t)idx + k];
        ccls[t] = ids[idx];
    }
    __syncthreads();
    int i = rb * 64 + t;
    if (i >= m)
        return;
    int idx = fr_rank_index(keys, i), cls = ids[idx];
    float box[4] = {boxes[4 * (size_t)idx], boxes[4 * (size_t)idx + 1], boxes[4 * (size_t)idx + 2],
                    boxes[4 * (size_t)idx + 3]};
    unsigned long long bits = 0;
    int end = m - cb * 64 < 64 ? m - cb * 64 : 64;
    for (int c = 0; c < end; c++) {
        int jj = cb * 64 + c;
        if (jj <= i || (!p.agnostic && ccls[c] != cls))
            continue;
        if (fr_gt(fr_iou(box, cbox[c]), p.iou))
            bits |= 1ull << c;
    }
    mask[(size_t)i * words + cb] = bits;
}

/* The greedy pass (nms.c nms_ranked) in one block: walk the ranks in order, keep a candidate
 * no kept one suppressed, and OR its row into the suppressed set. */
__global__ void k_nms_select(float *out_boxes, float *out_scores, int32_t *out_ids, int32_t *out_count,
                             const unsigned long long *mask, const unsigned long long *keys, const float *boxes,
                             const float *scores, const int32_t *ids, const int32_t *count, const float *xf_words,
                             const sh_k_frame_nms_p p)
{
    extern __shared__ unsigned long long removed[];
    fr_xf xf;
    int n = fr_count(count, p.cap);
    if (n < 0 || !fr_unpack(xf_words, p.max_side, &xf)) {
        if (threadIdx.x == 0)
            *out_count = 0;
        return;
    }
    int m = n < p.rows ? n : p.rows, words = fr_words(p.rows), wm = fr_words(m);
    for (int w = threadIdx.x; w < wm; w += blockDim.x)
        removed[w] = 0;
    __syncthreads();
    float x_lo = xf.ox, y_lo = xf.oy;
    float x_hi = __fadd_rn(x_lo, (float)xf.src_w), y_hi = __fadd_rn(y_lo, (float)xf.src_h);
    int nk = 0;
    for (int i = 0; i < m && nk < p.out_cap; i++) {
        if ((removed[i >> 6] >> (i & 63)) & 1)
            continue;
        __syncthreads();   /* every thread has read the word before row i changes it */
        if (threadIdx.x == 0) {
            int idx = fr_rank_index(keys, i);
            const float *b = boxes + 4 * (size_t)idx;
            /* nms.c sh_box_to_image */
            float x1 = __fadd_rn(xf.ox, __fdiv_rn(__fsub_rn(b[0], xf.px), xf.sx));
            float y1 = __fadd_rn(xf.oy, __fdiv_rn(__fsub_rn(b[1], xf.py), xf.sy));
            float x2 = __fadd_rn(xf.ox, __fdiv_rn(__fsub_rn(b[2], xf.px), xf.sx));
            float y2 = __fadd_rn(xf.oy, __fdiv_rn(__fsub_rn(b[3], xf.py), xf.sy));
            float *o = out_boxes + 4 * (size_t)nk;
            o[0] = fminf(fmaxf(x1, x_lo), x_hi);
            o[1] = fminf(fmaxf(y1, y_lo), y_hi);
            o[2] = fminf(fmaxf(x2, x_lo), x_hi);
            o[3] = fminf(fmaxf(y2, y_lo), y_hi);
            out_scores[nk] = scores[idx];
            out_ids[nk] = ids[idx];
            out_ids[p.out_cap + nk] = ids[p.cap + idx];
        }
        for (int w = (i >> 6) + threadIdx.x; w < wm; w += blockDim.x)
            removed[w] |= mask[(size_t)i * words + w];
        nk++;
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *out_count = nk;
}

extern "C" cudaError_t sh_k_frame_nms_ws(sh_k_frame_nms_p *p, size_t *bytes)
{
    size_t sort = 0;
    cudaError_t e = cub::DeviceRadixSort::SortKeys(nullptr, sort, (const unsigned long long *)nullptr,
                                                   (unsigned long long *)nullptr, p->cap, 0, 64);
    if (e != cudaSuccess)
        return e;
    p->sort_bytes = sort;
    *bytes = 2 * fr_align((size_t)p->cap * 8) + fr_align((size_t)p->rows * fr_words(p->rows) * 8) + fr_align(sort);
    return cudaSuccess;
}

extern "C" cudaError_t sh_k_frame_nms(float *out_boxes, float *out_scores, int32_t *out_ids, int32_t *out_count,
                                      const float *boxes, const float *scores, const int32_t *ids,
                                      const int32_t *count, const float *xf, void *ws, const sh_k_frame_nms_p *p,
                                      cudaStream_t s)
{
    fr_nms_ws w = fr_nms_layout(ws, *p);
    k_nms_keys<<<k_blocks(p->cap, FR_THREADS), FR_THREADS, 0, s>>>(w.keys_in, scores, count, p->cap);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    size_t sort = p->sort_bytes;
    e = cub::DeviceRadixSort::SortKeys(w.sort, sort, (const unsigned long long *)w.keys_in, w.keys_out, p->cap, 0, 64,
                                       s);
    if (e != cudaSuccess)
        return e;
    int words = fr_words(p->rows);
    k_nms_mask<<<dim3(words, words), 64, 0, s>>>(w.mask, w.keys_out, boxes, ids, count, *p);
    if ((e = cudaGetLastError()) != cudaSuccess)
        return e;
    k_nms_select<<<1, FR_THREADS, (size_t)words * 8, s>>>(out_boxes, out_scores, out_ids, out_count, w.mask,
                                                           w.keys_out, boxes, scores, ids, count, xf, *p);
    return cudaGetLastError();
}

/* --- FrameMasks --------------------------------------------------------------------------- */

/* segment.c lin_at: the taps of output index d in a half-pixel bilinear resize */
struct fr_lin {
    int i0, i1;
    float l;
};

__device__ __forceinline__ fr_lin fr_lin_at(int d, double in_over_out, int n_in)
{
    double s = __dsub_rn(__dmul_rn(__dadd_rn((double)d, 0.5), in_over_out), 0.5);
    if (s < 0)
        s = 0;
    int i0 = (int)s;
    if (i0 > n_in - 1)
        i0 = n_in - 1;
    return fr_lin{i0, i0 < n_in - 1 ? i0 + 1 : i0, __double2float_rn(__dsub_rn(s, (double)i0))};
}

__device__ __forceinline__ float fr_lerp(float a, float b, float l) { return __fadd_rn(a, __fmul_rn(__fsub_rn(b, a), l)); }

/* Detection i's mask box in image pixels (segment.c build_mask step 2), local to the region */
struct fr_mbox {
    int ox0, oy0, w, h;
};

__device__ fr_mbox fr_mask_box(const float *det, const fr_xf &xf)
{
    int ox0 = (int)floorf(__fsub_rn(det[0], xf.ox)), ox1 = (int)ceilf(__fsub_rn(det[2], xf.ox));
    int oy0 = (int)floorf(__fsub_rn(det[1], xf.oy)), oy1 = (int)ceilf(__fsub_rn(det[3], xf.oy));
    ox0 = ox0 < 0 ? 0 : ox0;
    oy0 = oy0 < 0 ? 0 : oy0;
    ox1 = ox1 > xf.src_w ? xf.src_w : ox1;
    oy1 = oy1 > xf.src_h ? xf.src_h : oy1;
    return fr_mbox{ox0, oy0, ox1 > ox0 ? ox1 - ox0 : 0, oy1 > oy0 ? oy1 - oy0 : 0};
}

/* The detection a block works on, or -1 when it holds none (a bad count, transform or anchor:
 * the host op fails there, the device writes nothing for it; or no room in the pool). */
__device__ int fr_mask_det(const int32_t *mask_boxes, const int32_t *ids, const int32_t *count,
                           const float *xf_words, const sh_k_frame_masks_p &p, fr_xf *xf)
{
    int i = blockIdx.y, n = fr_count(count, p.cap);
    if (i >= n || !fr_unpack(xf_words, p.max_side, xf) || mask_boxes[6 * (size_t)i + 5] < 0)
        return -1;
    int a = ids[p.cap + i];
    return a >= 0 && a < p.n ? a : -1;
}

/* Each detection's mask box, and its place in the pool (sh_seg_masks_packed's rule: rank order,
 * each after the last that fitted, -1 when it does not fit); one thread, as there are at most
 * max_detections of them. */
__global__ void k_mask_place(int32_t *mask_boxes, const float *boxes, const int32_t *count, const float *xf_words,
                             const sh_k_frame_masks_p p)
{
    fr_xf xf;
    int n = fr_count(count, p.cap);
    if (threadIdx.x != 0 || !fr_unpack(xf_words, p.max_side, &xf))
        return;
    long long used = 0;
    for (int i = 0; i < n; i++) {
        fr_mbox mb = fr_mask_box(boxes + 4 * (size_t)i, xf);
        long long bytes = ((long long)mb.w * mb.h + 7) / 8;
        bool fits = bytes <= p.pool - used && used <= 0x7fffffffLL;
        int32_t *o = mask_boxes + 6 * (size_t)i;
        o[0] = (int)xf.ox + mb.ox0;
        o[1] = (int)xf.oy + mb.oy0;
        o[2] = mb.w;
        o[3] = mb.h;
        o[4] = 0;   /* the area, summed by k_mask_bits */
        o[5] = fits ? (int32_t)used : -1;
        used += fits ? bytes : 0;
    }
}

/* Step 1: the proto plane of detection i, sigmoid(coefficients . prototypes) in the proto cells
 * inside its box, 0 elsewhere; the sum runs over the prototypes in order, as the host's. */
__global__ void k_mask_planes(float *planes, const int32_t *mask_boxes, const void *head, const void *protos,
                              const float *boxes, const int32_t *ids, const int32_t *count, const float *xf_words,
                              const sh_k_frame_masks_p p)
{
    fr_xf xf;
    int a = fr_mask_det(mask_boxes, ids, count, xf_words, p, &xf), i = blockIdx.y;
    if (a < 0)
        return;
    int cells = p.mh * p.mw, q = blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= cells)
        return;
    long long n = p.n;
    float bm[4];
    fr_box(fr_ld(head, a, p.head_f32), fr_ld(head, n + a, p.head_f32), fr_ld(head, 2 * n + a, p.head_f32),
           fr_ld(head, 3 * n + a, p.head_f32), bm);
    double rx = __ddiv_rn((double)p.mw, (double)xf.dst_w), ry = __ddiv_rn((double)p.mh, (double)xf.dst_h);
    int c_lo = (int)fmax(0.0, ceil(__dmul_rn((double)bm[0], rx))), c_hi = (int)fmin((double)p.mw, ceil(__dmul_rn((double)bm[2], rx)));
    int r_lo = (int)fmax(0.0, ceil(__dmul_rn((double)bm[1], ry))), r_hi = (int)fmin((double)p.mh, ceil(__dmul_rn((double)bm[3], ry)));
    int r = q / p.mw, c = q % p.mw;
    float v = 0.0f;
    if (c_lo < c_hi && r_lo < r_hi && r >= r_lo && r < r_hi && c >= c_lo && c < c_hi) {
        long long coeff = (4 + (long long)p.n_cls) * n + a;
        for (int k = 0; k < p.nm; k++)
            v = __fadd_rn(v, __fmul_rn(fr_ld(head, coeff + k * n, p.head_f32),
                                        fr_ld(protos, (long long)k * cells + q, p.protos_f32)));
        v = fr_sigmoid(v);
    }
    planes[(size_t)i * cells + q] = v;
}

/* The model-input value at (uy, ux) of the proto plane upsampled (build_mask step 3) */
__device__ __forceinline__ float fr_up(const float *plane, int mh, int mw, const fr_lin &ly, const fr_lin &lx)
{
    const float *p0 = plane + (size_t)ly.i0 * mw, *p1 = plane + (size_t)ly.i1 * mw;
    float top = fr_lerp(p0[lx.i0], p0[lx.i1], lx.l), bot = fr_lerp(p1[lx.i0], p1[lx.i1], lx.l);
    return fr_lerp(top, bot, ly.l);
}

/* Steps 3 and 4 at one image pixel of the box (region-local x, y) */
__device__ bool fr_mask_pixel(const float *plane, const sh_k_frame_masks_p &p, const fr_xf &xf, int x, int y)
{
    double sx = __ddiv_rn((double)xf.rw, (double)xf.src_w), sy = __ddiv_rn((double)xf.rh, (double)xf.src_h);
    double rx = __ddiv_rn((double)p.mw, (double)xf.dst_w), ry = __ddiv_rn((double)p.mh, (double)xf.dst_h);
    int pad_x = (int)xf.px, pad_y = (int)xf.py;
    fr_lin lx = fr_lin_at(x, sx, xf.rw), ly = fr_lin_at(y, sy, xf.rh);
    fr_lin ux0 = fr_lin_at(pad_x + lx.i0, rx, p.mw), ux1 = fr_lin_at(pad_x + lx.i1, rx, p.mw);
    fr_lin uy0 = fr_lin_at(pad_y + ly.i0, ry, p.mh), uy1 = fr_lin_at(pad_y + ly.i1, ry, p.mh);
    float u00 = fr_up(plane, p.mh, p.mw, uy0, ux0), u01 = fr_up(plane, p.mh, p.mw, uy0, ux1);
    float u10 = fr_up(plane, p.mh, p.mw, uy1, ux0), u11 = fr_up(plane, p.mh, p.mw, uy1, ux1);
    float top = fr_lerp(u00, u01, lx.l), bot = fr_lerp(u10, u11, lx.l);
    return fr_gt(fr_lerp(top, bot, ly.l), p.thresh);
}

/* Step 4 bit-packed: a thread per byte (8 pixels of the box, row-major) at the mask's offset in
 * the pool, the area summed per block into the box's fifth word. */
__global__ void k_mask_bits(uint8_t *pool, int32_t *mask_boxes, const float *planes, const float *boxes,
                            const int32_t *ids, const int32_t *count, const float *xf_words, const sh_k_frame_masks_p p)
{
    fr_xf xf;
    int a = fr_mask_det(mask_boxes, ids, count, xf_words, p, &xf), i = blockIdx.y;
    if (a < 0)
        return;
    fr_mbox mb = fr_mask_box(boxes + 4 * (size_t)i, xf);
    long long npx = (long long)mb.w * mb.h, nbytes = (npx + 7) / 8;
    const float *plane = planes + (size_t)i * p.mh * p.mw;
    uint8_t *o = pool + mask_boxes[6 * (size_t)i + 5];
    int area = 0;
    for (long long b = (long long)blockIdx.x * blockDim.x + threadIdx.x; b < nbytes;
         b += (long long)gridDim.x * blockDim.x) {
        unsigned v = 0;
        for (int t = 0; t < 8; t++) {
            long long k = 8 * b + t;
            if (k < npx && fr_mask_pixel(plane, p, xf, mb.ox0 + (int)(k % mb.w), mb.oy0 + (int)(k / mb.w)))
                v |= 1u << t;
        }
        o[b] = (uint8_t)v;
        area += __popc(v);
    }
    typedef cub::BlockReduce<int, FR_THREADS> reduce_t;
    __shared__ typename reduce_t::TempStorage tmp;
    int total = reduce_t(tmp).Sum(area);
    if (threadIdx.x == 0 && total)
        atomicAdd(&mask_boxes[6 * (size_t)i + 4], total);
}

extern "C" size_t sh_k_frame_masks_ws(const sh_k_frame_masks_p *p)
{
    return (size_t)p->cap * p->mh * p->mw * sizeof(float);
}

#define FR_MASK_BLOCKS 32

extern "C" cudaError_t sh_k_frame_masks(int32_t *mask_boxes, uint8_t *pool, const void *head, const void *protos,
                                        const float *boxes, const int32_t *ids, const int32_t *count, const float *xf,
                                        void *ws, const sh_k_frame_masks_p *p, cudaStream_t s)
{
    float *planes = (float *)ws;
    k_mask_place<<<1, 32, 0, s>>>(mask_boxes, boxes, count, xf, *p);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return e;
    dim3 g1(k_blocks((long)p->mh * p->mw, FR_THREADS), p->cap);
    k_mask_planes<<<g1, FR_THREADS, 0, s>>>(planes, mask_boxes, head, protos, boxes, ids, count, xf, *p);
    if ((e = cudaGetLastError()) != cudaSuccess)
        return e;
    k_mask_bits<<<dim3(FR_MASK_BLOCKS, p->cap), FR_THREADS, 0, s>>>(pool, mask_boxes, planes, boxes, ids, count, xf,
                                                                   *p);
    return cudaGetLastError();
}

/* --- FrameLandmarks ----------------------------------------------------------------------- */

#define FR_HAND_POINTS 21

/* landmarks.c sh_decode_hand_landmarks */
__global__ void k_frame_landmarks(float *out, const void *in, const float *xf_words, const sh_k_frame_landmarks_p p)
{
    int t = threadIdx.x;
    fr_xf xf;
    if (!fr_unpack(xf_words, p.max_side, &xf)) {
        for (int k = t; k < 3 * FR_HAND_POINTS + 2; k += blockDim.x)
            out[k] = __int_as_float(0x7fc00000);
        return;
    }
    if (t < FR_HAND_POINTS) {
        float x = fr_ld(in, 3 * t, p.in_f32), y = fr_ld(in, 3 * t + 1, p.in_f32), z = fr_ld(in, 3 * t + 2, p.in_f32);
        out[3 * t] = __fadd_rn(xf.ox, __fdiv_rn(__fsub_rn(x, xf.px), xf.sx));
        out[3 * t + 1] = __fadd_rn(xf.oy, __fdiv_rn(__fsub_rn(y, xf.py), xf.sy));
        out[3 * t + 2] = __fdiv_rn(z, xf.sx);
    } else if (t < FR_HAND_POINTS + 2) {
        int k = 3 * FR_HAND_POINTS + (t - FR_HAND_POINTS);
        float v = fr_ld(in, k, p.in_f32);
        out[k] = p.logits ? fr_sigmoid(v) : v;
    }
}

extern "C" cudaError_t sh_k_frame_landmarks(float *out, const void *in, const float *xf,
                                           const sh_k_frame_landmarks_p *p, cudaStream_t s)
{
    k_frame_landmarks<<<1, 32, 0, s>>>(out, in, xf, *p);
    return cudaGetLastError();
}

/* --- FrameCrop ---------------------------------------------------------------------------- */

__device__ __forceinline__ float fr_crop_px(const uint8_t *frame, int w, int h, int x, int y, int c, bool zero)
{
    if (x < 0 || y < 0 || x >= w || y >= h) {
        if (zero)
            return 0.0f;
        x = x < 0 ? 0 : x >= w ? w - 1 : x;
        y = y < 0 ? 0 : y >= h ? h - 1 : y;
    }
    return (float)frame[((size_t)y * (size_t)w + (size_t)x) * 3 + c];
}

/* hands.c sh_hand_crop_at, one thread per crop pixel, its operations in the host's order */
__global__ void k_frame_crop(float *out, const uint8_t *frame, const int32_t *size, const float *rect,
                             const sh_k_frame_crop_p p)
{
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (long long)p.width * p.height)
        return;
    int w = size[0], h = size[1];
    float *o = out + i * 3;
    if (!(w >= 1 && h >= 1 && w <= p.max_side && h <= p.max_side && (long long)w * h <= p.max_pixels)) {
        o[0] = o[1] = o[2] = __int_as_float(0x7fc00000);
        return;
    }
    int u = (int)(i % p.width), v = (int)(i / p.width);
    float W = (float)w, H = (float)h;
    float cx = __fmul_rn(rect[0], W), cy = __fmul_rn(rect[1], H), rw = __fmul_rn(rect[2], W);
    float rh = __fmul_rn(rect[3], H), cs = rect[4], sn = rect[5];
    float dx = __fmul_rn(__fsub_rn(__fdiv_rn((float)u, (float)p.width), 0.5f), rw);
    float dy = __fmul_rn(__fsub_rn(__fdiv_rn((float)v, (float)p.height), 0.5f), rh);
    float sx = __fsub_rn(__fadd_rn(cx, __fmul_rn(cs, dx)), __fmul_rn(sn, dy));
    float sy = __fadd_rn(__fadd_rn(cy, __fmul_rn(sn, dx)), __fmul_rn(cs, dy));
    sx = fminf(fmaxf(sx, -2.0f), __fadd_rn(W, 1.0f));
    sy = fminf(fmaxf(sy, -2.0f), __fadd_rn(H, 1.0f));
    float fx = floorf(sx), fy = floorf(sy), ax = __fsub_rn(sx, fx), ay = __fsub_rn(sy, fy);
    int x0 = (int)fx, y0 = (int)fy;
    bool zero = p.zero_border != 0;
    for (int c = 0; c < 3; c++) {
        float p00 = fr_crop_px(frame, w, h, x0, y0, c, zero), p01 = fr_crop_px(frame, w, h, x0 + 1, y0, c, zero);
        float p10 = fr_crop_px(frame, w, h, x0, y0 + 1, c, zero);
        float p11 = fr_crop_px(frame, w, h, x0 + 1, y0 + 1, c, zero);
        float top = __fadd_rn(p00, __fmul_rn(__fsub_rn(p01, p00), ax));
        float bot = __fadd_rn(p10, __fmul_rn(__fsub_rn(p11, p10), ax));
        o[c] = __fdiv_rn(__fadd_rn(top, __fmul_rn(__fsub_rn(bot, top), ay)), 255.0f);
    }
}

extern "C" cudaError_t sh_k_frame_crop(float *out, const uint8_t *frame, const int32_t *size, const float *rect,
                                       const sh_k_frame_crop_p *p, cudaStream_t s)
{
    long long n = (long long)p->width * p->height;
    k_frame_crop<<<k_blocks((long)n, FR_THREADS), FR_THREADS, 0, s>>>(out, frame, size, rect, *p);
    return cudaGetLastError();
}
