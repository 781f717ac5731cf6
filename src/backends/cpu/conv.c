/* Conv and ConvTranspose, 1-D to 3-D.
 *
 * 2-D Convs of one image run on oneDNN convolution primitives (the last section of this file,
 * which says why it is built the way it is; docs/cpu-perf.md has the measurements). What
 * follows here is the GEMM path every other Conv takes, and every Conv in CPU_CONV_BLAS mode:
 *
 * Conv lowers each (image, group) to one GEMM: W_g [Mg, Cg*k] x col [Cg*k, P] where col is
 * the im2col matrix in the node's workspace. 1x1 stride-1 unpadded convs read the input
 * directly (it already is col), and depthwise 2-D convs use a direct kernel, because their
 * GEMMs would be [1 x k^2] x [k^2 x P]: all im2col traffic and no reuse.
 * ConvTranspose is the adjoint: col = W_g^T x X_g, then col2im scatter-adds into the output.
 * Spatial dims are padded to three (unit dims) so one loop nest serves 1-D, 2-D and 3-D. */
#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/dnnl_bands.h"
#include "backends/cpu/igemm.h"
#include "backends/cpu/winograd.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <string.h>
#ifdef __AVX2__
#include <immintrin.h>
#endif

typedef struct dnnl_conv dnnl_conv;

typedef struct conv_params {
    int x, w, b, y;
    bool transpose;
    int nsp;
    int64_t N, C, M, G, Cg, Mg;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3], pe[3];
    int64_t kprod, K, P, Pin;      /* K = Cg*kprod rows of col; P output, Pin input positions */
    bool pointwise, depthwise;
    sh_act act;
    float act_a, act_b;
    dnnl_conv *dnn;                /* oneDNN path (conv_dnnl_*), or NULL */
    bool in_nhwc, out_nhwc;        /* oneDNN path: X / Y stored NHWC (layout.c) */
} conv_params;

static int conv_dnnl_prepare(cpu_prep *pp, conv_params *p);
static int conv_dnnl_run(const cpu_exec *ex, const sh_node *n, const conv_params *p, sh_err *err);
static void conv_to_nhwc(sh_program *prog, int k, void *vp, bool in_nhwc, bool out_nhwc);

/* ---- shared attribute handling -------------------------------------------------------- */

static int read_geometry(cpu_prep *pp, conv_params *p, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0), *W = cpu_in(pp, 1), *Y = cpu_out(pp, 0);
    if (!X || !W)
        return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "needs X and W");
    int nsp = X->shape.ndim - 2;
    if (nsp < 1 || nsp > 3 || W->shape.ndim != X->shape.ndim || Y->shape.ndim != X->shape.ndim)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "rank %d (only 1-D to 3-D)", X->shape.ndim);
    p->nsp = nsp;
    p->x = n->inputs[0];
    p->w = n->inputs[1];
    p->b = n->n_inputs > 2 ? n->inputs[2] : -1;
    p->y = n->outputs[0];
    p->N = X->shape.d[0];
    p->C = X->shape.d[1];
    p->M = Y->shape.d[1];
    p->G = sh_node_int(n, "group", 1);
    if (p->G < 1 || p->C % p->G || p->M % p->G)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "group %lld does not divide channels", (long long)p->G);
    p->Cg = p->C / p->G;
    p->Mg = p->M / p->G;
    int cnt;
    const int64_t *ks = sh_node_ints(n, "kernel_shape", &cnt);
    const int64_t *st = sh_node_ints(n, "strides", &cnt);
    int nst = cnt;
    const int64_t *dl = sh_node_ints(n, "dilations", &cnt);
    int ndl = cnt;
    for (int i = 0; i < 3; i++) {
        p->in[i] = p->out[i] = p->k[i] = p->s[i] = p->d[i] = 1;
        p->pb[i] = 0;
    }
    int o = 3 - nsp;   /* unit dims first: the innermost loop walks the last real dim */
    for (int i = 0; i < nsp; i++) {
        p->in[o + i] = X->shape.d[2 + i];
        p->out[o + i] = Y->shape.d[2 + i];
        p->k[o + i] = ks ? ks[i] : W->shape.d[2 + i];
        p->s[o + i] = st && i < nst ? st[i] : 1;
        p->d[o + i] = dl && i < ndl ? dl[i] : 1;
        if (p->k[o + i] != W->shape.d[2 + i] || p->s[o + i] < 1 || p->d[o + i] < 1)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "bad kernel/stride/dilation on axis %d", i);
    }
    p->kprod = p->k[0] * p->k[1] * p->k[2];
    p->P = p->out[0] * p->out[1] * p->out[2];
    p->Pin = p->in[0] * p->in[1] * p->in[2];
    const sh_tensor *B = p->b >= 0 ? cpu_in(pp, 2) : NULL;
    if (B && cpu_numel(B) != p->M)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "bias has %lld values, expected %lld",
                       (long long)cpu_numel(B), (long long)p->M);
    if (!B)
        p->b = -1;
    p->act = n->act;
    p->act_a = n->act_a;
    p->act_b = n->act_b;
    return 0;
}

/* ---- Conv ------------------------------------------------------------------------------- */

typedef struct conv_job {
    const conv_params *p;
    cpu_ctx *ctx;
    const float *x;        /* image n, group g: [Cg, in...] */
    const float *w;
    const float *bias;     /* [M] or NULL */
    float *y;              /* image n, group g: [Mg, P] */
    float *col;
    int64_t g;
} conv_job;

static void im2col_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const conv_job *j = arg;
    const conv_params *p = j->p;
    for (int64_t r = r0; r < r1; r++) {
        int64_t c = r / p->kprod, kk = r % p->kprod;
        int64_t k0 = kk / (p->k[1] * p->k[2]), k1 = kk / p->k[2] % p->k[1], k2 = kk % p->k[2];
        const float *xc = j->x + c * p->Pin;
        float *dst = j->col + r * p->P;
        for (int64_t o0 = 0; o0 < p->out[0]; o0++) {
            int64_t i0 = o0 * p->s[0] - p->pb[0] + k0 * p->d[0];
            for (int64_t o1 = 0; o1 < p->out[1]; o1++, dst += p->out[2]) {
                int64_t i1 = o1 * p->s[1] - p->pb[1] + k1 * p->d[1];
                if (i0 < 0 || i0 >= p->in[0] || i1 < 0 || i1 >= p->in[1]) {
                    memset(dst, 0, (size_t)p->out[2] * sizeof(float));
                    continue;
                }
                const float *src = xc + (i0 * p->in[1] + i1) * p->in[2];
                int64_t off = k2 * p->d[2] - p->pb[2], s2 = p->s[2];
                for (int64_t o2 = 0; o2 < p->out[2]; o2++) {
                    int64_t i2 = o2 * s2 + off;
                    dst[o2] = i2 >= 0 && i2 < p->in[2] ? src[i2] : 0.0f;
                }
            }
        }
    }
}

/* Bias and activation over rows [r0, r1) of y [Mg, P]. */
static void bias_act_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const conv_job *j = arg;
    const conv_params *p = j->p;
    for (int64_t r = r0; r < r1; r++) {
        float *y = j->y + r * p->P;
        if (j->bias) {
            float b = j->bias[j->g * p->Mg + r];
            for (int64_t i = 0; i < p->P; i++)
                y[i] += b;
        }
        cpu_apply_act(y, p->P, p->act, p->act_a, p->act_b);
    }
}

/* Depthwise 2-D, direct: one task per (image, output channel) plane. */
static void depthwise_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const conv_job *j = arg;
    const conv_params *p = j->p;
    int64_t H = p->in[1], W = p->in[2], OH = p->out[1], OW = p->out[2];
    int64_t KH = p->k[1], KW = p->k[2], sh = p->s[1], sw = p->s[2], dh = p->d[1], dw = p->d[2];
    int64_t mult = p->Mg;
    for (int64_t r = r0; r < r1; r++) {
        int64_t n = r / p->M, m = r % p->M, c = m / mult;
        const float *x = j->x + (n * p->C + c) * H * W;
        const float *wt = j->w + m * KH * KW;
        float *y = j->y + (n * p->M + m) * OH * OW;
        float b = j->bias ? j->bias[m] : 0.0f;
        for (int64_t oh = 0; oh < OH; oh++) {
            float *yr = y + oh * OW;
            for (int64_t ow = 0; ow < OW; ow++)
                yr[ow] = b;
            for (int64_t kh = 0; kh < KH; kh++) {
                int64_t ih = oh * sh - p->pb[1] + kh * dh;
                if (ih < 0 || ih >= H)
                    continue;
                const float *xr = x + ih * W;
                for (int64_t kw = 0; kw < KW; kw++) {
                    float wv = wt[kh * KW + kw];
                    int64_t off = kw * dw - p->pb[2];
                    /* valid ow: 0 <= ow*sw + off < W */
                    int64_t lo = off >= 0 ? 0 : (-off + sw - 1) / sw;
                    int64_t hi = W - off <= 0 ? 0 : (W - off + sw - 1) / sw;
                    if (hi > OW)
                        hi = OW;
                    if (sw == 1) {
                        const float *xs = xr + off;
                        for (int64_t ow = lo; ow < hi; ow++)
                            yr[ow] += wv * xs[ow];
                    } else {
                        for (int64_t ow = lo; ow < hi; ow++)
                            yr[ow] += wv * xr[ow * sw + off];
                    }
                }
            }
            cpu_apply_act(yr, OW, p->act, p->act_a, p->act_b);
        }
    }
}

static int conv_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const conv_params *p = vp;
    conv_job j = {.p = p, .ctx = ex->ctx, .w = ex->t[p->w], .bias = p->b >= 0 ? ex->t[p->b] : NULL,
                  .col = ex->ws};
    const float *X = ex->t[p->x];
    float *Y = ex->t[p->y];
    if (p->N * p->M * p->P == 0)
        return 0;
    if (p->dnn)
        return conv_dnnl_run(ex, n, p, err);
    if (p->depthwise) {
        j.x = X;
        j.y = Y;
        int64_t plane = p->P * p->kprod;
        cpu_parallel_for(ex->ctx->pool, p->N * p->M, 1 + 16384 / (plane + 1), depthwise_range, &j);
        return 0;
    }
    for (int64_t n_ = 0; n_ < p->N; n_++) {
        for (int64_t g = 0; g < p->G; g++) {
            j.g = g;
            j.x = X + (n_ * p->C + g * p->Cg) * p->Pin;
            j.y = Y + (n_ * p->M + g * p->Mg) * p->P;
            const float *B;
            if (p->pointwise) {
                B = j.x;
            } else {
                cpu_parallel_for(ex->ctx->pool, p->K, 1 + 8192 / (p->P + 1), im2col_range, &j);
                B = j.col;
            }
            cpu_sgemm(ex->ctx, false, false, (int)p->Mg, (int)p->P, (int)p->K, 1.0f,
                      j.w + g * p->Mg * p->K, (int)p->K, B, (int)p->P, 0.0f, j.y, (int)p->P);
            if (j.bias || p->act != SH_ACT_NONE)
                cpu_parallel_for(ex->ctx->pool, p->Mg, 1 + 16384 / (p->P + 1), bias_act_range, &j);
        }
    }
    return 0;
}

int cpu_prep_conv(cpu_prep *pp, sh_err *err)
{
    conv_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int rc = read_geometry(pp, p, err);
    if (rc < 0)
        return rc;
    const sh_node *n = pp->n;
    const sh_tensor *W = cpu_in(pp, 1);
    if (W->shape.d[0] != p->M || W->shape.d[1] != p->Cg)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "weight dims [%lld,%lld,...] do not match M=%lld C/group=%lld",
                       (long long)W->shape.d[0], (long long)W->shape.d[1], (long long)p->M, (long long)p->Cg);
    const char *ap = sh_node_string(n, "auto_pad", "NOTSET");
    int cnt;
    const int64_t *pads = sh_node_ints(n, "pads", &cnt);
    int o = 3 - p->nsp;
    for (int i = 0; i < p->nsp; i++) {
        int a = o + i;
        int64_t ext = (p->k[a] - 1) * p->d[a] + 1, pb = 0, pe = 0;
        if (!strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER")) {
            int64_t total = (p->out[a] - 1) * p->s[a] + ext - p->in[a];
            if (total < 0)
                total = 0;
            pb = !strcmp(ap, "SAME_UPPER") ? total / 2 : total - total / 2;
            pe = total - pb;
        } else if (!strcmp(ap, "NOTSET")) {
            if (pads && cnt == 2 * p->nsp) {
                pb = pads[i];
                pe = pads[i + p->nsp];
            }
        } else if (strcmp(ap, "VALID") != 0) {
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
        }
        p->pb[a] = pb;
        p->pe[a] = pe;
        int64_t want = (p->in[a] + pb + pe - ext) / p->s[a] + 1;
        if (!strcmp(ap, "NOTSET") || !strcmp(ap, "VALID")) {
            if (want != p->out[a])
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output dim %d is %lld, attributes give %lld", i,
                               (long long)p->out[a], (long long)want);
        }
    }
    p->K = p->Cg * p->kprod;
    p->pointwise = p->kprod == 1 && p->s[0] * p->s[1] * p->s[2] == 1 &&
                   p->pb[0] + p->pb[1] + p->pb[2] == 0 && p->P == p->Pin;
    p->depthwise = p->nsp == 2 && p->G == p->C && p->Cg == 1 && p->G > 1;
    pp->fn = conv_run;
    if (conv_dnnl_prepare(pp, p) == 0)
        return 0;
    size_t ws = 0;
    if (!p->pointwise && !p->depthwise &&
        !sh_mul_size((size_t)p->K * sizeof(float), (size_t)p->P, &ws))
        return CPU_ERR(pp, err, SHOAL_ERR_NO_MEMORY, "%s", "im2col workspace too large");
    pp->p->workspace_bytes[pp->k] = ws;
    return 0;
}

/* ---- ConvTranspose ------------------------------------------------------------------------ */

typedef struct convt_job {
    const conv_params *p;
    const float *col;      /* [Mg*kprod, Pin] */
    const float *bias;
    float *y;              /* image n, group g: [Mg, P] */
    int64_t g;
    bool first_pass;
} convt_job;

/* col2im for output channels [m0, m1) of one group: each task owns whole output planes. */
static void col2im_range(void *arg, int64_t m0, int64_t m1, int tid)
{
    const convt_job *j = arg;
    const conv_params *p = j->p;
    for (int64_t m = m0; m < m1; m++) {
        float *y = j->y + m * p->P;
        float b = j->bias ? j->bias[j->g * p->Mg + m] : 0.0f;
        for (int64_t i = 0; i < p->P; i++)
            y[i] = b;
        for (int64_t kk = 0; kk < p->kprod; kk++) {
            int64_t k0 = kk / (p->k[1] * p->k[2]), k1 = kk / p->k[2] % p->k[1], k2 = kk % p->k[2];
            const float *src = j->col + (m * p->kprod + kk) * p->Pin;
            for (int64_t i0 = 0; i0 < p->in[0]; i0++) {
                int64_t o0 = i0 * p->s[0] - p->pb[0] + k0 * p->d[0];
                if (o0 < 0 || o0 >= p->out[0])
                    continue;
                for (int64_t i1 = 0; i1 < p->in[1]; i1++) {
                    int64_t o1 = i1 * p->s[1] - p->pb[1] + k1 * p->d[1];
                    if (o1 < 0 || o1 >= p->out[1])
                        continue;
                    const float *s = src + (i0 * p->in[1] + i1) * p->in[2];
                    float *dst = y + (o0 * p->out[1] + o1) * p->out[2];
                    int64_t off = k2 * p->d[2] - p->pb[2];
                    for (int64_t i2 = 0; i2 < p->in[2]; i2++) {
                        int64_t o2 = i2 * p->s[2] + off;
                        if (o2 >= 0 && o2 < p->out[2])
                            dst[o2] += s[i2];
                    }
                }
            }
        }
        cpu_apply_act(y, p->P, p->act, p->act_a, p->act_b);
    }
}

/* NHWC col2im (one image, one group, 2-D) for output rows [r0, r1): col is [Pin, M*kprod]
 * (each input pixel's row, columns (m, kh, kw)); every output row is owned by one task, which
 * gathers the taps that land on it. */
static void col2im_nhwc_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const convt_job *j = arg;
    const conv_params *p = j->p;
    int64_t M = p->M, IH = p->in[1], IW = p->in[2], OW = p->out[2], KH = p->k[1], KW = p->k[2];
    int64_t kk = p->kprod, row = M * kk;
    for (int64_t oh = r0; oh < r1; oh++) {
        float *y = j->y + oh * OW * M;
        for (int64_t ow = 0; ow < OW; ow++)
            for (int64_t m = 0; m < M; m++)
                y[ow * M + m] = j->bias ? j->bias[m] : 0.0f;
        for (int64_t kh = 0; kh < KH; kh++) {
            int64_t t = oh + p->pb[1] - kh * p->d[1];
            if (t < 0 || t % p->s[1])
                continue;
            int64_t ih = t / p->s[1];
            if (ih >= IH)
                continue;
            for (int64_t iw = 0; iw < IW; iw++) {
                const float *c = j->col + (ih * IW + iw) * row + kh * KW;
                for (int64_t kw = 0; kw < KW; kw++) {
                    int64_t ow = iw * p->s[2] - p->pb[2] + kw * p->d[2];
                    if (ow < 0 || ow >= OW)
                        continue;
                    float *yo = y + ow * M;
                    for (int64_t m = 0; m < M; m++)
                        yo[m] += c[m * kk + kw];
                }
            }
        }
        cpu_apply_act(y, OW * M, p->act, p->act_a, p->act_b);
    }
    (void)tid;
}

static int convt_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const conv_params *p = vp;
    const float *X = ex->t[p->x], *Wt = ex->t[p->w];
    float *Y = ex->t[p->y];
    float *col = ex->ws;
    if (p->N * p->M * p->P == 0)
        return 0;
    convt_job j = {.p = p, .col = col, .bias = p->b >= 0 ? ex->t[p->b] : NULL};
    if (p->in_nhwc) {
        /* X [Pin, C] x W [C, M*kprod] = col [Pin, M*kprod], then a gather per output row. */
        int64_t cols = p->M * p->kprod;
        cpu_sgemm(ex->ctx, false, false, (int)p->Pin, (int)cols, (int)p->C, 1.0f, X, (int)p->C, Wt, (int)cols,
                  0.0f, col, (int)cols);
        j.y = Y;
        cpu_parallel_for(ex->ctx->pool, p->out[1], 1, col2im_nhwc_range, &j);
        return 0;
    }
    int64_t rows = p->Mg * p->kprod;
    for (int64_t n_ = 0; n_ < p->N; n_++) {
        for (int64_t g = 0; g < p->G; g++) {
            const float *xg = X + (n_ * p->C + g * p->Cg) * p->Pin;
            const float *wg = Wt + g * p->Cg * rows;     /* [Cg, Mg*kprod] */
            cpu_sgemm(ex->ctx, true, false, (int)rows, (int)p->Pin, (int)p->Cg, 1.0f, wg, (int)rows,
                      xg, (int)p->Pin, 0.0f, col, (int)p->Pin);
            j.g = g;
            j.y = Y + (n_ * p->M + g * p->Mg) * p->P;
            cpu_parallel_for(ex->ctx->pool, p->Mg, 1, col2im_range, &j);
        }
    }
    return 0;
}

static void convt_to_nhwc(sh_program *prog, int k, void *vp, bool in_nhwc, bool out_nhwc)
{
    conv_params *p = vp;
    p->in_nhwc = in_nhwc;
    p->out_nhwc = out_nhwc;
    (void)prog;
    (void)k;
}

int cpu_prep_conv_transpose(cpu_prep *pp, sh_err *err)
{
    conv_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int rc = read_geometry(pp, p, err);
    if (rc < 0)
        return rc;
    p->transpose = true;
    const sh_node *n = pp->n;
    const sh_tensor *W = cpu_in(pp, 1);
    if (W->shape.d[0] != p->C || W->shape.d[1] != p->Mg)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "weight dims [%lld,%lld,...] do not match C=%lld M/group=%lld",
                       (long long)W->shape.d[0], (long long)W->shape.d[1], (long long)p->C, (long long)p->Mg);
    const char *ap = sh_node_string(n, "auto_pad", "NOTSET");
    int cnt, ncnt, nop;
    const int64_t *pads = sh_node_ints(n, "pads", &cnt);
    const int64_t *oshape = sh_node_ints(n, "output_shape", &ncnt);
    const int64_t *opad = sh_node_ints(n, "output_padding", &nop);
    bool same = !strcmp(ap, "SAME_UPPER") || !strcmp(ap, "SAME_LOWER");
    if (!same && strcmp(ap, "NOTSET") && strcmp(ap, "VALID"))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "auto_pad '%s'", ap);
    int o = 3 - p->nsp;
    for (int i = 0; i < p->nsp; i++) {
        int a = o + i;
        int64_t ext = (p->k[a] - 1) * p->d[a] + 1;
        int64_t op = opad && i < nop ? opad[i] : 0;
        int64_t full = p->s[a] * (p->in[a] - 1) + op + ext;   /* size with zero pads */
        int64_t pb = 0;
        if (same || (oshape && !pads)) {
            /* Total padding is what turns the full size into the requested one; the spec
             * puts the odd pixel at the end for SAME_UPPER and at the start otherwise. */
            int64_t total = full - p->out[a];
            if (!strcmp(ap, "SAME_UPPER"))
                pb = total / 2;
            else if (same)
                pb = total - total / 2;
            else
                pb = 0;
            if (pb < 0)
                pb = 0;
        } else if (pads && cnt == 2 * p->nsp && strcmp(ap, "VALID")) {
            pb = pads[i];
            int64_t want = full - pads[i] - pads[i + p->nsp];
            if (!oshape && want != p->out[a])
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output dim %d is %lld, attributes give %lld", i,
                               (long long)p->out[a], (long long)want);
        }
        p->pb[a] = pb;
    }
    p->K = p->Mg * p->kprod;
    size_t ws;
    if (!sh_mul_size((size_t)p->K * sizeof(float), (size_t)p->Pin, &ws))
        return CPU_ERR(pp, err, SHOAL_ERR_NO_MEMORY, "%s", "col workspace too large");
    pp->p->workspace_bytes[pp->k] = ws;
    pp->fn = convt_run;
    /* One image, one group, 2-D, constant weights (an activation weight would be tied to the
     * layout too): NHWC on both sides (col has the same size either way). */
    if (p->nsp == 2 && p->G == 1 && p->N == 1 && cpu_in(pp, 0)->dtype == SH_DT_FLOAT32 && W->is_const) {
        pp->layout = CPU_LAYOUT_FOLLOWS;
        pp->to_nhwc = convt_to_nhwc;
    }
    return 0;
}

/* ---- Conv on oneDNN ------------------------------------------------------------------------
 * A 2-D Conv (one image) becomes oneDNN convolution primitives created at compile time, with
 * bias and the node's fused activation as an eltwise post-op. oneDNN picks brgconv on AVX-512,
 * which wants NHWC: the node transposes its NCHW input into the workspace, convolves, and
 * transposes the NHWC result back (transpose_tiles; oneDNN 2.6's own reorder for this was
 * 50-100x slower here), except where the layout pass keeps the tensor NHWC (layout.c).
 * Weights are reordered once, by pack_weight, into the layout the
 * primitive chose, when the weight tensor feeds this node only (else plain OIHW is asked for).
 *
 * Threading: Debian's oneDNN runs on OpenMP, whose idle threads spin (OMP_WAIT_POLICY is
 * read once at process start, not ours to set). On a loaded 2-core machine those spinning
 * threads halved whole-model speed (docs/cpu-perf.md). So OpenMP stays at one thread and
 * the conv is cut into one band of output rows per pool thread, each its own primitive
 * (dnnl_bands.h plans them). Each band also transposes its own output rows.
 * All scratch (transposed input, NHWC output, per-band scratchpads) is in the workspace.
 *
 * Where oneDNN has no kernel near the FMA peak (below AVX-512: jit:avx2 runs YOLO's 3x3
 * convs at about half of it, its stride-2 ones at a third), the convs take own kernels on the
 * same NHWC sides. A 3x3 stride-1 conv on a map of at least WINO_MIN_PIXELS takes the Winograd
 * path (winograd.h): 2-2.5x the direct kernel's speed there (docs/cpu-perf.md, v13). Its
 * weights are 16/9 of the plain ones, so it is kept to the large maps, where a conv's FLOPs per
 * weight byte are highest. Every other conv of one group takes the implicit GEMM (igemm.h),
 * whose packed weights are the plain ones' size: the stride-2 convs at twice oneDNN's speed,
 * the 1x1 and small-map 3x3 ones at par or better (docs/cpu-perf.md, v14). */

/* 40x40 and up: YOLO's P3 and P2 levels and the seg prototype. Below 32 channels on either
 * side the transforms outweigh the saved multiplies: the implicit GEMM ran YOLO's C16->8,
 * C8->16, C32->16 and C16->32 convs 7-20% faster (docs/cpu-perf.md, v14). */
#define WINO_MIN_PIXELS 1600
#define WINO_MIN_CHANNELS 32

struct dnnl_conv {
    cpu_dnnl_bands bands;
    cpu_wino wino;                      /* used when use_wino: no bands, no oneDNN primitive */
    cpu_igemm igemm;                    /* used when use_igemm: the same */
    bool use_wino, use_igemm;
    size_t scratch_bytes;               /* bands' scratchpads or the own kernels' blocks, first in ws */
    dnnl_memory_t m_wei, m_bias;
    cpu_dnnl_weight_pack w_pack;        /* NULL members when the weight is used as stored */
    size_t off_src_t, off_dst_t;        /* NHWC input and output in the workspace */
    size_t src_t_bytes, dst_t_bytes;
};

void cpu_dnnl_init(cpu_ctx *ctx)
{
    dnnl_engine_t eng = NULL;
    dnnl_stream_t st = NULL;
    if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success)
        return;
    if (dnnl_stream_create(&st, eng, dnnl_stream_default_flags) != dnnl_success) {
        dnnl_engine_destroy(eng);
        return;
    }
    ctx->dnnl_engine = eng;
    ctx->dnnl_stream = st;
}

void cpu_dnnl_fini(cpu_ctx *ctx)
{
    if (ctx->dnnl_stream)
        dnnl_stream_destroy(ctx->dnnl_stream);
    if (ctx->dnnl_engine)
        dnnl_engine_destroy(ctx->dnnl_engine);
    ctx->dnnl_stream = ctx->dnnl_engine = NULL;
}

static void dnnl_conv_free(cpu_ctx *ctx, void *vp)
{
    conv_params *p = vp;
    dnnl_conv *d = p->dnn;
    if (!d)
        return;
    cpu_dnnl_bands_free(&d->bands);
    cpu_dnnl_weight_pack_free(&d->w_pack);
    dnnl_memory_t mems[] = {d->m_wei, d->m_bias};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    sh_free(ctx->alloc, d);
    p->dnn = NULL;
}

static int dnnl_conv_pack(cpu_ctx *ctx, const void *vp, const void *src, void *dst, sh_err *err)
{
    const conv_params *p = vp;
    return cpu_dnnl_weight_pack_run(&p->dnn->w_pack, ctx, src, dst, "a conv weight", err);
}

static int own_conv_pack(cpu_ctx *ctx, const void *vp, const void *src, void *dst, sh_err *err)
{
    const conv_params *p = vp;
    (void)ctx, (void)err;
    if (p->dnn->use_wino)
        cpu_wino_pack(src, &p->dnn->wino, dst);
    else
        cpu_igemm_pack(src, &p->dnn->igemm, dst);
    return 0;
}

static bool below_avx512(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core) != dnnl_cpu_isa_avx512_core;
}

/* Whether this conv takes the Winograd path: the shape fits, its weight is its own to
 * transform, and oneDNN lacks AVX-512 here (or the tuning asks for it everywhere). */
static bool wants_winograd(const cpu_ctx *ctx, const conv_params *p, bool own_w, cpu_wino *w)
{
    if (ctx->winograd < 0 || !own_w || p->G != 1 || p->k[1] != 3 || p->k[2] != 3 || p->s[1] != 1 ||
        p->s[2] != 1 || p->d[1] != 1 || p->d[2] != 1 || p->pb[1] != 1 || p->pb[2] != 1 || p->pe[1] != 1 ||
        p->pe[2] != 1 || p->out[1] != p->in[1] || p->out[2] != p->in[2] || p->P < WINO_MIN_PIXELS ||
        (ctx->winograd == 0 && (p->C < WINO_MIN_CHANNELS || p->M < WINO_MIN_CHANNELS)))
        return false;
    if ((ctx->winograd == 0 && !below_avx512()) || !cpu_fma_tiles_ok())
        return false;
    return cpu_wino_init(w, p->in[1], p->in[2], p->C, p->M, p->act, p->act_a, p->act_b);
}

/* Whether this conv takes the own implicit GEMM: one group, a weight of its own to pack, and
 * oneDNN lacks AVX-512 here (or the tuning asks for it everywhere). By default not the RGB
 * layer (fewer than 8 input channels), where oneDNN's kernel was as fast (docs/cpu-perf.md). */
static bool wants_igemm(const cpu_ctx *ctx, const conv_params *p, bool own_w, cpu_igemm *g)
{
    if (ctx->igemm < 0 || !own_w || p->G != 1 || p->transpose || (ctx->igemm_no_1x1 && p->pointwise))
        return false;
    if ((ctx->igemm == 0 && (!below_avx512() || p->C < 8)) || !cpu_fma_tiles_ok())
        return false;
    cpu_igemm_geom geom = {.H = p->in[1], .W = p->in[2], .C = p->C, .OH = p->out[1], .OW = p->out[2], .K = p->M,
                           .kh = p->k[1], .kw = p->k[2], .sh = p->s[1], .sw = p->s[2], .dh = p->d[1], .dw = p->d[2],
                           .pad_top = p->pb[1], .pad_left = p->pb[2]};
    return cpu_igemm_init(g, &geom, p->act, p->act_a, p->act_b);
}

static bool act_to_dnnl(const conv_params *p, dnnl_alg_kind_t *alg, float *a, float *b)
{
    *a = 0.0f;
    *b = 0.0f;
    switch (p->act) {
    case SH_ACT_RELU: *alg = dnnl_eltwise_relu; return true;
    case SH_ACT_SIGMOID: *alg = dnnl_eltwise_logistic; return true;
    case SH_ACT_SILU: *alg = dnnl_eltwise_swish; *a = 1.0f; return true;
    case SH_ACT_HARD_SWISH: *alg = dnnl_eltwise_hardswish; return true;
    case SH_ACT_HARD_SIGMOID:
        /* alpha*x + beta here; the clamp to [0, 1] is a second post-op (conv_dnnl_prepare). */
        *alg = dnnl_eltwise_linear;
        *a = p->act_a;
        *b = p->act_b;
        return true;
    case SH_ACT_CLIP:
        /* numpy.clip order (max then min) differs from clamp only when min > max. */
        if (!(p->act_a <= p->act_b))
            return false;
        *alg = dnnl_eltwise_clip_v2;
        *a = p->act_a;
        *b = p->act_b;
        return true;
    default: return false;
    }
}

/* The own kernels' scratch and their weight packing (d->use_wino or d->use_igemm is set). */
static void prepare_own(cpu_prep *pp, conv_params *p, dnnl_conv *d)
{
    int nt = pp->ctx->n_threads;
    size_t scratch = d->use_wino ? cpu_wino_scratch_bytes(&d->wino, nt) : cpu_igemm_scratch_bytes(&d->igemm, nt);
    d->scratch_bytes = sh_align_up(scratch, CPU_DNNL_ALIGN);
    pp->pack_tensor = p->w;
    pp->pack = own_conv_pack;
    pp->p->weight_bytes[p->w] = d->use_wino ? cpu_wino_weight_bytes(&d->wino) : cpu_igemm_weight_bytes(&d->igemm);
}

/* The row bands' primitives, the weight and bias handles they share, and the weight's pack
 * into the layout band 0 chose. */
static int prepare_bands(cpu_prep *pp, conv_params *p, dnnl_conv *d, const dnnl_memory_desc_t *w_plain,
                         const dnnl_memory_desc_t *w_md, const dnnl_memory_desc_t *b_md, dnnl_primitive_attr_t attr)
{
    cpu_ctx *ctx = pp->ctx;
    cpu_dnnl_band_conv bc = {
        .rows = {.in_rows = p->in[1], .out_rows = p->out[1], .stride = p->s[1], .pad_top = p->pb[1],
                 .extent = (p->k[1] - 1) * p->d[1] + 1},
        .src_channels = p->C, .src_width = p->in[2], .dst_channels = p->M, .dst_width = p->out[2],
        .pad_left = p->pb[2], .pad_right = p->pe[2],
        .strides = {p->s[1], p->s[2]}, .dilates = {p->d[1] - 1, p->d[2] - 1},
        .src_type = dnnl_f32, .dst_type = dnnl_f32, .weights = w_md, .bias = b_md, .attr = attr,
    };
    if (cpu_dnnl_bands_create(&d->bands, ctx, &bc) < 0)
        return -1;
    const dnnl_memory_desc_t *wchosen = &d->bands.weights;
    d->scratch_bytes = d->bands.scratch_bytes;
    if (dnnl_memory_create(&d->m_wei, wchosen, ctx->dnnl_engine, DNNL_MEMORY_NONE) ||
        (b_md && dnnl_memory_create(&d->m_bias, b_md, ctx->dnnl_engine, DNNL_MEMORY_NONE)))
        return -1;
    if (!dnnl_memory_desc_equal(wchosen, w_plain)) {
        /* The packed weight takes the primitive's layout (blocked layouts may pad channels). */
        if (cpu_dnnl_weight_pack_create(&d->w_pack, ctx, w_plain, wchosen) < 0)
            return -1;
        pp->pack_tensor = p->w;
        pp->pack = dnnl_conv_pack;
        pp->p->weight_bytes[p->w] = dnnl_memory_desc_get_size(wchosen);
    }
    return 0;
}

/* 0 when the node now runs on oneDNN, negative to keep the OpenBLAS path (not an error). */
static int conv_dnnl_prepare(cpu_prep *pp, conv_params *p)
{
    cpu_ctx *ctx = pp->ctx;
    if (!ctx->dnnl_engine || ctx->conv_impl == CPU_CONV_BLAS || p->nsp != 2 || p->N != 1)
        return -1;
    if (p->pointwise && ctx->conv_impl == CPU_CONV_DNNL_1X1_GEMM)
        return -1;
    dnnl_alg_kind_t alg = dnnl_alg_kind_undef;
    float aa = 0.0f, ab = 0.0f;
    if (p->act != SH_ACT_NONE && !act_to_dnnl(p, &alg, &aa, &ab))
        return -1;
    const sh_tensor *W = cpu_in(pp, 1);
    const sh_tensor *B = p->b >= 0 ? cpu_in(pp, 2) : NULL;
    /* Reorder the weights at pack time only when this node is their one consumer. */
    bool own_w = W->is_const && W->n_consumers == 1;

    dnnl_dims_t bdims = {p->M};
    dnnl_memory_desc_t w_plain, w_md, b_md;
    cpu_dnnl_weight_desc(&w_plain, p->G, p->M, p->Cg, p->k[1], p->k[2], dnnl_f32, false);
    cpu_dnnl_weight_desc(&w_md, p->G, p->M, p->Cg, p->k[1], p->k[2], dnnl_f32, own_w);
    dnnl_memory_desc_init_by_tag(&b_md, 1, bdims, dnnl_f32, dnnl_x);

    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    int rc = -1;
    /* oneDNN sizes its blocking for the thread count it sees at creation: one per band. The
     * count is the calling thread's own OpenMP setting, restored on the way out. */
    int prev_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl_conv *d = sh_calloc(ctx->alloc, 1, sizeof *d);
    if (!d || dnnl_primitive_attr_create(&attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success)
        goto out;
    if (p->act != SH_ACT_NONE) {
        if (dnnl_post_ops_create(&po) != dnnl_success || dnnl_post_ops_append_eltwise(po, 1.0f, alg, aa, ab) ||
            (p->act == SH_ACT_HARD_SIGMOID &&
             dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_clip_v2, 0.0f, 1.0f) != dnnl_success) ||
            dnnl_primitive_attr_set_post_ops(attr, po) != dnnl_success)
            goto out;
    }
    /* The scratch (the bands' scratchpads or the own kernels' blocks) first in the workspace, then
     * the NHWC input and output (last, so that conv_to_nhwc can drop them). */
    d->use_wino = wants_winograd(ctx, p, own_w, &d->wino);
    d->use_igemm = !d->use_wino && wants_igemm(ctx, p, own_w, &d->igemm);
    if (d->use_wino || d->use_igemm)
        prepare_own(pp, p, d);
    else if (prepare_bands(pp, p, d, &w_plain, &w_md, B ? &b_md : NULL, attr) < 0)
        goto out;
    size_t ws = d->scratch_bytes;
    d->src_t_bytes = sh_align_up((size_t)(p->C * p->Pin) * sizeof(float), CPU_DNNL_ALIGN);
    d->dst_t_bytes = sh_align_up((size_t)(p->M * p->P) * sizeof(float), CPU_DNNL_ALIGN);
    d->off_src_t = ws;
    d->off_dst_t = ws + d->src_t_bytes;
    pp->p->workspace_bytes[pp->k] = ws + d->src_t_bytes + d->dst_t_bytes;
    pp->layout = CPU_LAYOUT_CONV;
    pp->to_nhwc = conv_to_nhwc;
    rc = 0;
out:
    omp_set_num_threads(prev_threads);
    if (po)
        dnnl_post_ops_destroy(po);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (d) {
        p->dnn = d;
        pp->free_params = dnnl_conv_free;
        if (rc < 0) {
            pp->layout = CPU_LAYOUT_NCHW;
            pp->to_nhwc = NULL;
            pp->pack = NULL;
            pp->pack_tensor = -1;
            dnnl_conv_free(ctx, p);
        }
    }
    return rc;
}

#ifdef __AVX2__
/* 8x8 block: y[c * ldy + r] = x[r * ldx + c], r, c < 8. */
static inline void transpose8(const float *x, int64_t ldx, float *y, int64_t ldy)
{
    __m256 r0 = _mm256_loadu_ps(x), r1 = _mm256_loadu_ps(x + ldx), r2 = _mm256_loadu_ps(x + 2 * ldx),
           r3 = _mm256_loadu_ps(x + 3 * ldx), r4 = _mm256_loadu_ps(x + 4 * ldx), r5 = _mm256_loadu_ps(x + 5 * ldx),
           r6 = _mm256_loadu_ps(x + 6 * ldx), r7 = _mm256_loadu_ps(x + 7 * ldx);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
           t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(y, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(y + ldy, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(y + 2 * ldy, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(y + 3 * ldy, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(y + 4 * ldy, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(y + 5 * ldy, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(y + 6 * ldy, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(y + 7 * ldy, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

/* y[c * ldy + r] = x[r * ldx + c] for r < R, c < C (NCHW <-> NHWC of one image), in 16x16
 * tiles (8x8 AVX2 register transposes where the build has AVX2) so that both sides touch
 * whole cache lines. */
static void transpose_tiles(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t R, int64_t C)
{
    enum { T = 16 };
    for (int64_t r0 = 0; r0 < R; r0 += T) {
        int64_t r1 = r0 + T < R ? r0 + T : R;
        for (int64_t c0 = 0; c0 < C; c0 += T) {
            int64_t c1 = c0 + T < C ? c0 + T : C;
#ifdef __AVX2__
            if (r1 - r0 == T && c1 - c0 == T) {
                for (int i = 0; i < T; i += 8)
                    for (int k = 0; k < T; k += 8)
                        transpose8(x + (r0 + i) * ldx + c0 + k, ldx, y + (c0 + k) * ldy + r0 + i, ldy);
                continue;
            }
#endif
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++)
                    y[c * ldy + r] = x[r * ldx + c];
        }
    }
}

typedef struct dnnl_job {
    const conv_params *p;
    const dnnl_conv *d;
    cpu_ctx *ctx;
    const float *x;
    float *y;
    char *ws;
    int failed;
} dnnl_job;

/* NCHW -> NHWC over pixel ranges: rows [r0, r1) of the [P, C] result. */
static void to_nhwc_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const dnnl_job *j = arg;
    const conv_params *p = j->p;
    float *t = (float *)(j->ws + j->d->off_src_t);
    transpose_tiles(j->x + r0, p->Pin, t + r0 * p->C, p->C, p->C, r1 - r0);
    (void)tid;
}

static void band_range(void *arg, int64_t b0, int64_t b1, int tid)
{
    dnnl_job *j = arg;
    const conv_params *p = j->p;
    const dnnl_conv *d = j->d;
    /* One OpenMP thread for this band (the caller's setting is put back below). */
    int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int64_t b = b0; b < b1; b++) {
        const cpu_dnnl_band *bd = &d->bands.band[b];
        const float *src = (p->in_nhwc ? j->x : (const float *)(j->ws + d->off_src_t)) + bd->ih0 * p->in[2] * p->C;
        float *dst = (p->out_nhwc ? j->y : (float *)(j->ws + d->off_dst_t)) + bd->oh0 * p->out[2] * p->M;
        if (!cpu_dnnl_band_execute(bd, j->ctx, src, dst, j->ws, d->m_wei, DNNL_ARG_BIAS, d->m_bias))
            j->failed = 1;
        /* This band's NHWC rows [P0, P1) back to NCHW columns. */
        int64_t P0 = bd->oh0 * p->out[2], P1 = bd->oh1 * p->out[2];
        if (!p->out_nhwc)
            transpose_tiles(dst, p->M, j->y + P0, p->P, P1 - P0, p->M);
    }
    omp_set_num_threads(prev);
    (void)tid;
}

/* NHWC rows [r0, r1) of an own kernel's output back to NCHW columns. */
static void from_nhwc_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const dnnl_job *j = arg;
    const conv_params *p = j->p;
    const float *t = (const float *)(j->ws + j->d->off_dst_t);
    transpose_tiles(t + r0 * p->M, p->M, j->y + r0, p->P, r1 - r0, p->M);
    (void)tid;
}

static int conv_own_run(const cpu_exec *ex, const conv_params *p)
{
    dnnl_conv *d = p->dnn;
    dnnl_job j = {.p = p, .d = d, .ctx = ex->ctx, .x = ex->t[p->x], .y = ex->t[p->y], .ws = ex->ws};
    if (!p->in_nhwc)
        cpu_parallel_for(ex->ctx->pool, p->Pin, 64, to_nhwc_range, &j);
    const float *src = p->in_nhwc ? j.x : (const float *)(j.ws + d->off_src_t);
    float *dst = p->out_nhwc ? j.y : (float *)(j.ws + d->off_dst_t);
    const float *bias = p->b >= 0 ? ex->t[p->b] : NULL;
    if (d->use_wino)
        cpu_wino_run(&d->wino, ex->ctx->pool, src, ex->t[p->w], bias, dst, j.ws);
    else
        cpu_igemm_run(&d->igemm, ex->ctx->pool, src, ex->t[p->w], bias, dst, j.ws);
    if (!p->out_nhwc)
        cpu_parallel_for(ex->ctx->pool, p->P, 64, from_nhwc_range, &j);
    return 0;
}

static int conv_dnnl_run(const cpu_exec *ex, const sh_node *n, const conv_params *p, sh_err *err)
{
    dnnl_conv *d = p->dnn;
    if (d->use_wino || d->use_igemm)
        return conv_own_run(ex, p);
    dnnl_job j = {.p = p, .d = d, .ctx = ex->ctx, .x = ex->t[p->x], .y = ex->t[p->y], .ws = ex->ws};
    /* Shared by the bands, read-only while they run. */
    dnnl_memory_set_data_handle(d->m_wei, ex->t[p->w]);
    if (d->m_bias)
        dnnl_memory_set_data_handle(d->m_bias, ex->t[p->b]);
    if (!p->in_nhwc)
        cpu_parallel_for(ex->ctx->pool, p->Pin, 64, to_nhwc_range, &j);
    cpu_parallel_for_chunks(ex->ctx->pool, d->bands.n, 1, band_range, &j);
    /* The stream is in-order and CPU execution synchronous; wait() only reports errors. */
    if (j.failed || dnnl_stream_wait(ex->ctx->dnnl_stream) != dnnl_success)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "node %s (Conv): oneDNN execution failed", n->name);
    return 0;
}

static const char *band_impl(const dnnl_conv *d, int b)
{
    const char *impl = NULL;
    const_dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_get_primitive_desc(d->bands.band[b].conv, &pd) != dnnl_success ||
        dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) != dnnl_success || !impl)
        return "?";
    return impl;
}

/* How this Conv runs, for shoal inspect: oneDNN's implementation string of its first band
 * (and of the first band whose kind differs, if one does), the band count, and whether each
 * side is transposed at run time or stays NHWC (layout.c). */
int cpu_conv_describe(cpu_kernel_fn fn, const void *vp, char *buf, size_t cap)
{
    if (fn != conv_run)
        return -1;
    const conv_params *p = vp;
    if (!p->dnn) {
        const char *path = p->depthwise ? "direct depthwise kernel" : p->pointwise ? "sgemm" : "im2col + sgemm";
        snprintf(buf, cap, "%s, NCHW", path);
        return 0;
    }
    if (p->dnn->use_wino) {
        snprintf(buf, cap, "own winograd_f2x3:avx2, %lld tiles, src %s, dst %s", (long long)p->dnn->wino.n_tiles,
                 p->in_nhwc ? "NHWC" : "NCHW->NHWC", p->out_nhwc ? "NHWC" : "NHWC->NCHW");
        return 0;
    }
    if (p->dnn->use_igemm) {
        snprintf(buf, cap, "own igemm_6x16:avx2, %lld pixel blocks, src %s, dst %s",
                 (long long)((p->dnn->igemm.P + CPU_IGEMM_PIXELS - 1) / CPU_IGEMM_PIXELS),
                 p->in_nhwc ? "NHWC" : "NCHW->NHWC", p->out_nhwc ? "NHWC" : "NHWC->NCHW");
        return 0;
    }
    const char *impl = band_impl(p->dnn, 0), *other = NULL;
    int other_band = 0;
    for (int b = 1; b < p->dnn->bands.n && !other; b++)
        if (strcmp(band_impl(p->dnn, b), impl) != 0) {
            other = band_impl(p->dnn, b);
            other_band = b;
        }
    int n = snprintf(buf, cap, "oneDNN %s, %d band%s, src %s, dst %s", impl, p->dnn->bands.n,
                     p->dnn->bands.n == 1 ? "" : "s", p->in_nhwc ? "NHWC" : "NCHW->NHWC",
                     p->out_nhwc ? "NHWC" : "NHWC->NCHW");
    if (other && n >= 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", band %d %s", other_band, other);
    return 0;
}

const char *cpu_dnnl_isa_name(void)
{
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    default: return "unknown";
    }
}

/* The layout pass (layout.c) chose this conv's sides; a side that stays NHWC needs no copy in
 * the workspace. Both copies were sized at prepare time, so this only ever shrinks it. */
static void conv_to_nhwc(sh_program *prog, int k, void *vp, bool in_nhwc, bool out_nhwc)
{
    conv_params *p = vp;
    dnnl_conv *d = p->dnn;
    p->in_nhwc = in_nhwc;
    p->out_nhwc = out_nhwc;
    d->off_dst_t = d->scratch_bytes + (p->in_nhwc ? 0 : d->src_t_bytes);
    prog->workspace_bytes[k] = d->off_dst_t + (p->out_nhwc ? 0 : d->dst_t_bytes);
}
