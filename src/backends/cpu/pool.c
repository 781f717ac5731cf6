/* MaxPool (with the optional Indices output) and AveragePool, 1-D to 3-D, with pads,
 * auto_pad, ceil_mode (the output shape comes from shape inference), dilations and
 * count_include_pad. One task per (image, channel) plane; per output position the valid
 * kernel range of each axis is computed once so the inner loops carry no bounds checks. */
#include "backends/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

typedef struct pool_params {
    int x, y, idx;             /* idx: Indices output tensor or -1 */
    bool is_max, include_pad, col_major;
    bool separable;            /* 2-D max, stride 1, no dilation: rows then columns */
    bool nhwc;                 /* 2-D, one image, channels innermost (layout.c) */
    int64_t planes;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
} pool_params;

typedef struct pool_job {
    const pool_params *p;
    const float *x;
    float *y;
    int64_t *idx;
    float *ws;                 /* separable: [threads][H * OW] */
} pool_job;

/* Valid kernel taps [lo, hi) of one axis for a window starting at `st`. */
static inline void tap_range(int64_t st, int64_t k, int64_t d, int64_t in, int64_t *lo, int64_t *hi)
{
    int64_t l = st >= 0 ? 0 : (-st + d - 1) / d;
    int64_t h = in - st <= 0 ? 0 : (in - st + d - 1) / d;
    *lo = l;
    *hi = h < k ? h : k;
}

/* Stride-1 max pooling is separable: a max over each row window, then over each column window
 * of those — O(k) per output instead of O(k^2) (the 13x13 SPP pools of YOLO necks). */
static void sep_max_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const pool_job *j = arg;
    const pool_params *p = j->p;
    int64_t H = p->in[1], W = p->in[2], OH = p->out[1], OW = p->out[2], kh = p->k[1], kw = p->k[2];
    float *t = j->ws + (size_t)tid * (size_t)(H * OW);
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * H * W;
        float *y = j->y + r * OH * OW;
        for (int64_t h = 0; h < H; h++)
            for (int64_t ow = 0; ow < OW; ow++) {
                int64_t lo, hi, st = ow - p->pb[2];
                tap_range(st, kw, 1, W, &lo, &hi);
                float m = -INFINITY;
                for (int64_t c = st + lo; c < st + hi; c++)
                    m = x[h * W + c] > m ? x[h * W + c] : m;
                t[h * OW + ow] = m;
            }
        for (int64_t oh = 0; oh < OH; oh++) {
            int64_t lo, hi, st = oh - p->pb[1];
            tap_range(st, kh, 1, H, &lo, &hi);
            float *yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ow++)
                yr[ow] = -INFINITY;
            for (int64_t h = st + lo; h < st + hi; h++)
                for (int64_t ow = 0; ow < OW; ow++)
                    yr[ow] = t[h * OW + ow] > yr[ow] ? t[h * OW + ow] : yr[ow];
        }
    }
}

/* Taps whose position lies inside the padded extent [-pb, in + pe): the divisor of
 * count_include_pad (ceil_mode overhang beyond the pads is never counted). */
static inline int64_t padded_taps(int64_t st, int64_t k, int64_t d, int64_t in, int64_t pb, int64_t pe)
{
    int64_t lo, hi;
    tap_range(st + pb, k, d, in + pb + pe, &lo, &hi);
    return hi > lo ? hi - lo : 0;
}

static void pool_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const pool_job *j = arg;
    const pool_params *p = j->p;
    int64_t pin = p->in[0] * p->in[1] * p->in[2], pout = p->out[0] * p->out[1] * p->out[2];
    for (int64_t r = r0; r < r1; r++) {
        const float *x = j->x + r * pin;
        float *y = j->y + r * pout;
        int64_t *ix = j->idx ? j->idx + r * pout : NULL;
        for (int64_t o0 = 0; o0 < p->out[0]; o0++) {
            int64_t st0 = o0 * p->s[0] - p->pb[0], l0, h0;
            tap_range(st0, p->k[0], p->d[0], p->in[0], &l0, &h0);
            for (int64_t o1 = 0; o1 < p->out[1]; o1++) {
                int64_t st1 = o1 * p->s[1] - p->pb[1], l1, h1;
                tap_range(st1, p->k[1], p->d[1], p->in[1], &l1, &h1);
                for (int64_t o2 = 0; o2 < p->out[2]; o2++) {
                    int64_t st2 = o2 * p->s[2] - p->pb[2], l2, h2;
                    tap_range(st2, p->k[2], p->d[2], p->in[2], &l2, &h2);
                    float best = -INFINITY, sum = 0.0f;
                    int64_t arg_i = -1, cnt = 0;
                    for (int64_t a = l0; a < h0; a++) {
                        int64_t i0 = st0 + a * p->d[0];
                        for (int64_t b = l1; b < h1; b++) {
                            int64_t i1 = st1 + b * p->d[1];
                            const float *row = x + (i0 * p->in[1] + i1) * p->in[2];
                            for (int64_t c = l2; c < h2; c++) {
                                int64_t i2 = st2 + c * p->d[2];
                                float v = row[i2];
                                if (p->is_max) {
                                    if (v > best || arg_i < 0) {
                                        best = v;
                                        arg_i = p->col_major ? (i2 * p->in[1] + i1) * p->in[0] + i0
                                                             : (i0 * p->in[1] + i1) * p->in[2] + i2;
                                    }
                                } else {
                                    sum += v;
                                }
                                cnt++;
                            }
                        }
                    }
                    int64_t o = (o0 * p->out[1] + o1) * p->out[2] + o2;
                    if (p->is_max) {
                        y[o] = best;
                        if (ix)
                            ix[o] = arg_i < 0 ? 0 : r * pin + arg_i;
                    } else {
                        if (p->include_pad)
                            cnt = padded_taps(st0, p->k[0], p->d[0], p->in[0], p->pb[0], p->pe[0]) *
                                  padded_taps(st1, p->k[1], p->d[1], p->in[1], p->pb[1], p->pe[1]) *
                                  padded_taps(st2, p->k[2], p->d[2], p->in[2], p->pb[2], p->pe[2]);
                        y[o] = cnt ? sum / (float)cnt : 0.0f;
                    }
                }
            }
        }
    }
}

/* NHWC, 2-D: one output row per item; every tap is a run of `planes` channels, so the inner
 * loop is over channels whatever the window. */
static void nhwc_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const pool_job *j = arg;
    const pool_params *p = j->p;
    int64_t C = p->planes, W = p->in[2], OW = p->out[2];
    for (int64_t oh = r0; oh < r1; oh++) {
        int64_t st1 = oh * p->s[1] - p->pb[1], l1, h1;
        tap_range(st1, p->k[1], p->d[1], p->in[1], &l1, &h1);
        for (int64_t ow = 0; ow < OW; ow++) {
            int64_t st2 = ow * p->s[2] - p->pb[2], l2, h2;
            tap_range(st2, p->k[2], p->d[2], W, &l2, &h2);
            float *y = j->y + (oh * OW + ow) * C;
            int64_t taps = (h1 > l1 ? h1 - l1 : 0) * (h2 > l2 ? h2 - l2 : 0);
            if (taps == 0) {
                for (int64_t c = 0; c < C; c++)
                    y[c] = p->is_max ? -INFINITY : 0.0f;
                continue;
            }
            bool first = true;
            for (int64_t a = l1; a < h1; a++) {
                const float *row = j->x + (st1 + a * p->d[1]) * W * C;
                for (int64_t b = l2; b < h2; b++) {
                    const float *x = row + (st2 + b * p->d[2]) * C;
                    if (first)
                        memcpy(y, x, (size_t)C * sizeof(float));
                    else if (p->is_max)
                        for (int64_t c = 0; c < C; c++)
                            y[c] = x[c] > y[c] ? x[c] : y[c];
                    else
                        for (int64_t c = 0; c < C; c++)
                            y[c] += x[c];
                    first = false;
                }
            }
            if (!p->is_max) {
                int64_t cnt = p->include_pad ? padded_taps(st1, p->k[1], p->d[1], p->in[1], p->pb[1], p->pe[1]) *
                                                   padded_taps(st2, p->k[2], p->d[2], W, p->pb[2], p->pe[2])
                                             : taps;
                for (int64_t c = 0; c < C; c++)
                    y[c] = cnt ? y[c] / (float)cnt : 0.0f;
            }
        }
    }
    (void)tid;
}

static void pool_to_nhwc(sh_program *prog, int k, void *vp, bool in_nhwc, bool out_nhwc)
{
    pool_params *p = vp;
    p->nhwc = true;
    prog->workspace_bytes[k] = 0;
    (void)in_nhwc;
    (void)out_nhwc;
}

static int pool_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const pool_params *p = vp;
    pool_job j = {.p = p, .x = ex->t[p->x], .y = ex->t[p->y], .idx = p->idx >= 0 ? ex->t[p->idx] : NULL,
                  .ws = ex->ws};
    if (p->nhwc) {
        int64_t work = p->out[2] * p->k[1] * p->k[2] * p->planes;
        cpu_parallel_for(ex->ctx->pool, p->out[1], 1 + 32768 / (work + 1), nhwc_range, &j);
        return 0;
    }
    if (p->separable) {
        cpu_parallel_for(ex->ctx->pool, p->planes, 1, sep_max_range, &j);
        return 0;
    }
    int64_t work = p->out[0] * p->out[1] * p->out[2] * p->k[0] * p->k[1] * p->k[2];
    cpu_parallel_for(ex->ctx->pool, p->planes, 1 + 32768 / (work + 1), pool_range, &j);
    return 0;
}

int cpu_prep_pool(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    if (X->dtype == SH_DT_INT8 || X->dtype == SH_DT_UINT8)
        return cpu_prep_max_pool_q8(pp, err);
    int nsp = X->shape.ndim - 2;
    if (nsp < 1 || nsp > 3 || Y->shape.ndim != X->shape.ndim)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "rank %d (only 1-D to 3-D pooling)", X->shape.ndim);
    pool_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    p->idx = -1;
    p->is_max = n->op == SH_OP_MAX_POOL;
    const sh_tensor *I = cpu_out(pp, 1);
    if (p->is_max && I) {
        if (I->dtype != SH_DT_INT64)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "Indices dtype %s", sh_dtype_name(I->dtype));
        p->idx = n->outputs[1];
        p->col_major = sh_node_int(n, "storage_order", 0) == 1;
    }
    p->include_pad = !p->is_max && sh_node_int(n, "count_include_pad", 0) != 0;
    p->planes = X->shape.d[0] * X->shape.d[1];
    int nk, ns, nd, npad;
    const int64_t *ks = sh_node_ints(n, "kernel_shape", &nk);
    const int64_t *st = sh_node_ints(n, "strides", &ns);
    const int64_t *dl = sh_node_ints(n, "dilations", &nd);
    const int64_t *pads = sh_node_ints(n, "pads", &npad);
    const char *ap = sh_node_string(n, "auto_pad", "NOTSET");
    bool ceil_mode = sh_node_int(n, "ceil_mode", 0) != 0;
    if (!ks || nk != nsp)
        return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "kernel_shape has %d values for %d spatial dims", nk, nsp);
    bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
    if (!same && strcmp(ap, "NOTSET") && strcmp(ap, "VALID"))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
    for (int i = 0; i < 3; i++) {
        p->in[i] = p->out[i] = p->k[i] = p->s[i] = p->d[i] = 1;
        p->pb[i] = p->pe[i] = 0;
    }
    int o = 3 - nsp;
    for (int i = 0; i < nsp; i++) {
        int a = o + i;
        p->in[a] = X->shape.d[2 + i];
        p->out[a] = Y->shape.d[2 + i];
        p->k[a] = ks[i];
        p->s[a] = st && i < ns ? st[i] : 1;
        p->d[a] = dl && i < nd ? dl[i] : 1;
        if (p->k[a] < 1 || p->s[a] < 1 || p->d[a] < 1)
            return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "bad kernel/stride/dilation on axis %d", i);
        int64_t ext = (p->k[a] - 1) * p->d[a] + 1;
        if (same) {
            int64_t total = (p->out[a] - 1) * p->s[a] + ext - p->in[a];
            if (total < 0)
                total = 0;
            p->pb[a] = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            p->pe[a] = total - p->pb[a];
        } else if (!strcmp(ap, "NOTSET") && pads && npad == 2 * nsp) {
            p->pb[a] = pads[i];
            p->pe[a] = pads[i + nsp];
        }
        if (!same) {
            int64_t span = p->in[a] + p->pb[a] + p->pe[a] - ext;
            int64_t fl = span / p->s[a] + 1, cl = (span + p->s[a] - 1) / p->s[a] + 1;
            if (p->out[a] != fl && !(ceil_mode && (p->out[a] == cl || p->out[a] == cl - 1)))
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output dim %d is %lld, attributes give %lld", i,
                               (long long)p->out[a], (long long)(ceil_mode ? cl : fl));
        }
    }
    /* Windows hanging past the input on both sides (all-padding windows) keep the generic path. */
    p->separable = p->is_max && p->idx < 0 && p->in[0] == 1 && p->out[0] == 1 && p->s[1] == 1 && p->s[2] == 1 &&
                   p->d[1] == 1 && p->d[2] == 1 && p->k[1] > 1 && p->k[2] > 1 && p->pb[1] < p->k[1] &&
                   p->pb[2] < p->k[2] && p->pe[1] < p->k[1] && p->pe[2] < p->k[2];
    if (p->separable)
        pp->p->workspace_bytes[pp->k] = (size_t)pp->ctx->n_threads * (size_t)(p->in[1] * p->out[2]) * sizeof(float);
    pp->fn = pool_run;
    if (nsp == 2 && p->idx < 0 && X->shape.d[0] == 1 && X->dtype == SH_DT_FLOAT32) {
        pp->layout = CPU_LAYOUT_FOLLOWS;
        pp->to_nhwc = pool_to_nhwc;
    }
    return 0;
}
