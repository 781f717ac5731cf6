/* Conv and ConvTranspose, 1-D to 3-D, on OpenBLAS sgemm.
 *
 * Conv lowers each (image, group) to one GEMM: W_g [Mg, Cg*k] x col [Cg*k, P] where col is
 * the im2col matrix in the node's workspace. 1x1 stride-1 unpadded convs read the input
 * directly (it already is col), and depthwise 2-D convs use a direct kernel, because their
 * GEMMs would be [1 x k^2] x [k^2 x P]: all im2col traffic and no reuse.
 * ConvTranspose is the adjoint: col = W_g^T x X_g, then col2im scatter-adds into the output.
 * Spatial dims are padded to three (unit dims) so one loop nest serves 1-D, 2-D and 3-D. */
#include "backends/cpu/cpu_impl.h"

#include <string.h>

typedef struct conv_params {
    int x, w, b, y;
    bool transpose;
    int nsp;
    int64_t N, C, M, G, Cg, Mg;
    int64_t in[3], out[3], k[3], s[3], d[3], pb[3];
    int64_t kprod, K, P, Pin;      /* K = Cg*kprod rows of col; P output, Pin input positions */
    bool pointwise, depthwise;
    sh_act act;
    float act_a, act_b;
} conv_params;

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
    size_t ws = 0;
    if (!p->pointwise && !p->depthwise &&
        !sh_mul_size((size_t)p->K * sizeof(float), (size_t)p->P, &ws))
        return CPU_ERR(pp, err, SHOAL_ERR_NO_MEMORY, "%s", "im2col workspace too large");
    pp->p->workspace_bytes[pp->k] = ws;
    pp->fn = conv_run;
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

static int convt_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const conv_params *p = vp;
    const float *X = ex->t[p->x], *Wt = ex->t[p->w];
    float *Y = ex->t[p->y];
    float *col = ex->ws;
    if (p->N * p->M * p->P == 0)
        return 0;
    convt_job j = {.p = p, .col = col, .bias = p->b >= 0 ? ex->t[p->b] : NULL};
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
    return 0;
}
