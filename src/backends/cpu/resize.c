/* Resize (opset 10 to 19) and Upsample (7, 9).
 *
 * Every mode ONNX defines is separable: the N-d result is a 1-D interpolation along each
 * resized axis in turn, and because each 1-D filter's weights sum to one (extrapolated
 * points included: a row of extrapolation values stays one), the order of the axes does
 * not matter. So compile turns each resized axis into a tap table — for output index i,
 * the input indices and weights it reads, or "extrapolate" — following the ONNX reference
 * (coordinate transform, then the n nearest source pixels with edge padding, then the
 * mode's coefficients; antialias widens the linear/cubic filter by 1/scale when
 * downscaling). Nearest has one tap per axis and runs as a direct gather; linear and cubic
 * run one pass per axis through the node's workspace. */
#include "backends/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

typedef struct axis_taps {
    int64_t in, out;
    int nt;               /* taps per output index */
    int64_t *idx;         /* [out * nt] */
    float *w;             /* [out * nt] */
    uint8_t *extrap;      /* [out] */
} axis_taps;

typedef struct resize_params {
    int x, y;
    int rank;
    bool nearest;
    bool bytes;                        /* int8/uint8 elements (nearest only) */
    float extrap_value;
    int n_active;
    int active[SH_MAX_DIMS];           /* axes that change, in pass order */
    int64_t in[SH_MAX_DIMS], out[SH_MAX_DIMS];
    axis_taps ax[SH_MAX_DIMS];         /* tables live after this struct, in the same block */
    size_t buf_elems;                  /* elements of each ping-pong buffer */
} resize_params;

enum { M_NEAREST, M_LINEAR, M_CUBIC };
enum { CT_HALF_PIXEL, CT_HALF_PIXEL_SYM, CT_PYTORCH_HALF_PIXEL, CT_ALIGN_CORNERS, CT_ASYMMETRIC,
       CT_TF_HALF_PIXEL_NN, CT_TF_CROP_AND_RESIZE };
enum { NM_ROUND_PREFER_FLOOR, NM_ROUND_PREFER_CEIL, NM_FLOOR, NM_CEIL };

typedef struct axis_spec {
    int mode, ct, nm;
    double scale, roi0, roi1, cubic_a;
    bool antialias, exclude_outside;
} axis_spec;

static double cubic_w(double x, double A)
{
    x = fabs(x);
    if (x <= 1.0)
        return ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0;
    if (x < 2.0)
        return ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A;
    return 0.0;
}

/* Taps per output index for this axis. */
static int taps_count(const axis_spec *s)
{
    if (s->mode == M_NEAREST)
        return 1;
    double sc = s->antialias && s->scale < 1.0 ? s->scale : 1.0;
    if (s->mode == M_LINEAR)
        return 2 - 2 * (int)(floor(-1.0 / sc) + 1.0);
    return 2 - 2 * (int)(floor(-2.0 / sc) + 1.0);
}

static void fill_taps(const axis_spec *s, axis_taps *t)
{
    double in = (double)t->in, outw = s->scale * in;
    for (int64_t x = 0; x < t->out; x++) {
        double xo;
        t->extrap[x] = 0;
        switch (s->ct) {
        case CT_ALIGN_CORNERS: xo = outw == 1.0 ? 0.0 : (double)x * (in - 1.0) / (outw - 1.0); break;
        case CT_ASYMMETRIC: xo = (double)x / s->scale; break;
        case CT_PYTORCH_HALF_PIXEL: xo = outw == 1.0 ? -0.5 : ((double)x + 0.5) / s->scale - 0.5; break;
        case CT_TF_HALF_PIXEL_NN: xo = ((double)x + 0.5) / s->scale; break;
        case CT_HALF_PIXEL_SYM: {
            double adj = (double)t->out / outw, off = in / 2.0 * (1.0 - adj);
            xo = off + ((double)x + 0.5) / s->scale - 0.5;
            break;
        }
        case CT_TF_CROP_AND_RESIZE:
            xo = t->out == 1 ? (s->roi1 - s->roi0) * (in - 1.0) / 2.0
                             : (double)x * (s->roi1 - s->roi0) * (in - 1.0) / ((double)t->out - 1.0);
            xo += s->roi0 * (in - 1.0);
            if (xo < 0.0 || xo > in - 1.0)
                t->extrap[x] = 1;
            break;
        default: xo = ((double)x + 0.5) / s->scale - 0.5; break;
        }
        int64_t *idx = t->idx + x * t->nt;
        float *w = t->w + x * t->nt;
        if (t->extrap[x]) {
            for (int k = 0; k < t->nt; k++) {
                idx[k] = 0;
                w[k] = 0.0f;
            }
            continue;
        }
        /* The source pixel "to the left": an integral coordinate counts as the right tap of
         * the pair below it (ratio 1), exactly as the reference picks its neighbours. */
        double fl = floor(xo);
        int64_t base = (int64_t)fl;
        double ratio = xo - fl;
        if (ratio == 0.0) {
            base -= 1;
            ratio = 1.0;
        }
        if (s->mode == M_NEAREST) {
            bool right;
            if (ratio == 1.0)
                right = true;
            else if (s->nm == NM_ROUND_PREFER_FLOOR)
                right = ratio > 0.5;
            else if (s->nm == NM_ROUND_PREFER_CEIL)
                right = ratio >= 0.5;
            else
                right = s->nm == NM_CEIL;
            int64_t i = base + (right ? 1 : 0);
            idx[0] = i < 0 ? 0 : i >= t->in ? t->in - 1 : i;
            w[0] = 1.0f;
            continue;
        }
        double sc = s->antialias && s->scale < 1.0 ? s->scale : 1.0;
        int start = 1 - t->nt / 2;
        double cw[64], sum = 0.0;
        for (int k = 0; k < t->nt; k++) {
            double arg = ((double)(start + k) - ratio) * sc;
            double c;
            if (s->mode == M_LINEAR)
                c = 1.0 - fabs(arg) < 0.0 ? 0.0 : 1.0 - fabs(arg);
            else
                c = cubic_w(arg, s->cubic_a);
            cw[k] = c;
            sum += c;
        }
        /* The reference normalises antialiased filters; plain cubic weights already sum to 1. */
        if (s->antialias && sum != 0.0)
            for (int k = 0; k < t->nt; k++)
                cw[k] /= sum;
        if (s->exclude_outside) {
            double s2 = 0.0;
            for (int k = 0; k < t->nt; k++) {
                int64_t i = base + start + k;
                if (i < 0 || i >= t->in)
                    cw[k] = 0.0;
                s2 += cw[k];
            }
            if (s2 != 0.0)
                for (int k = 0; k < t->nt; k++)
                    cw[k] /= s2;
        }
        for (int k = 0; k < t->nt; k++) {
            int64_t i = base + start + k;
            idx[k] = i < 0 ? 0 : i >= t->in ? t->in - 1 : i;
            w[k] = (float)cw[k];
        }
    }
}

/* ---- kernels ------------------------------------------------------------------------------- */

typedef struct resize_job {
    const resize_params *p;
    const float *x;
    float *y;
    int axis;                  /* separable pass: the axis */
    int64_t len_in, len_out, inner;
} resize_job;

/* Nearest: one output row (last axis) per item. */
static void nearest_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const resize_job *j = arg;
    const resize_params *p = j->p;
    int R = p->rank;
    int64_t ist[SH_MAX_DIMS];
    int64_t acc = 1;
    for (int d = R - 1; d >= 0; d--) {
        ist[d] = acc;
        acc *= p->in[d];
    }
    int64_t W = p->out[R - 1];
    const axis_taps *last = &p->ax[R - 1];
    for (int64_t r = r0; r < r1; r++) {
        int64_t off = 0, rem = r;
        bool ext = false;
        for (int d = R - 2; d >= 0; d--) {
            int64_t c = rem % p->out[d];
            rem /= p->out[d];
            const axis_taps *t = &p->ax[d];
            if (t->idx) {
                ext |= t->extrap[c] != 0;
                off += t->idx[c] * ist[d];
            } else {
                off += c * ist[d];
            }
        }
        if (p->bytes) {
            /* quantized data: a nearest resize only moves bytes */
            uint8_t *yb = (uint8_t *)j->y + r * W;
            const uint8_t *xb = (const uint8_t *)j->x + off;
            for (int64_t i = 0; i < W; i++)
                yb[i] = ext || (last->idx && last->extrap[i]) ? (uint8_t)(int8_t)p->extrap_value
                        : xb[last->idx ? last->idx[i] : i];
            continue;
        }
        float *y = j->y + r * W;
        const float *x = j->x + off;
        if (ext) {
            for (int64_t i = 0; i < W; i++)
                y[i] = p->extrap_value;
        } else if (last->idx) {
            for (int64_t i = 0; i < W; i++)
                y[i] = last->extrap[i] ? p->extrap_value : x[last->idx[i]];
        } else {
            memcpy(y, x, (size_t)W * sizeof(float));
        }
    }
}

/* One separable pass: item = (outer, output index along the axis), a row of `inner`. */
static void pass_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const resize_job *j = arg;
    const axis_taps *t = &j->p->ax[j->axis];
    int64_t inner = j->inner;
    for (int64_t r = r0; r < r1; r++) {
        int64_t o = r / j->len_out, i = r % j->len_out;
        float *y = j->y + r * inner;
        if (t->extrap[i]) {
            for (int64_t q = 0; q < inner; q++)
                y[q] = j->p->extrap_value;
            continue;
        }
        const float *xb = j->x + o * j->len_in * inner;
        const int64_t *idx = t->idx + i * t->nt;
        const float *w = t->w + i * t->nt;
        if (inner == 1) {
            float s = 0.0f;
            for (int k = 0; k < t->nt; k++)
                s += w[k] * xb[idx[k]];
            y[0] = s;
            continue;
        }
        const float *x0 = xb + idx[0] * inner;
        for (int64_t q = 0; q < inner; q++)
            y[q] = w[0] * x0[q];
        for (int k = 1; k < t->nt; k++) {
            if (w[k] == 0.0f)
                continue;
            const float *xk = xb + idx[k] * inner;
            float wk = w[k];
            for (int64_t q = 0; q < inner; q++)
                y[q] += wk * xk[q];
        }
    }
}

/* NHWC: the same separable resize over the dims in storage order (N, H, W, C); with N and C
 * unchanged, nearest copies runs of C channels. */
static void resize_to_nhwc(sh_program *prog, int k, void *vp, bool in_nhwc, bool out_nhwc)
{
    resize_params *p = vp;
    static const int from[4] = {0, 2, 3, 1}, to[4] = {0, 3, 1, 2};
    int64_t in[4], out[4];
    axis_taps ax[4];
    for (int d = 0; d < 4; d++) {
        in[d] = p->in[from[d]];
        out[d] = p->out[from[d]];
        ax[d] = p->ax[from[d]];
    }
    for (int d = 0; d < 4; d++) {
        p->in[d] = in[d];
        p->out[d] = out[d];
        p->ax[d] = ax[d];
    }
    for (int s = 0; s < p->n_active; s++)
        p->active[s] = to[p->active[s]];
    (void)prog;
    (void)k;
    (void)in_nhwc;
    (void)out_nhwc;
}

static int resize_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const resize_params *p = vp;
    const float *X = ex->t[p->x];
    float *Y = ex->t[p->y];
    int64_t ny = 1;
    for (int d = 0; d < p->rank; d++)
        ny *= p->out[d];
    if (ny == 0)
        return 0;
    resize_job j = {.p = p, .x = X, .y = Y};
    if (p->n_active == 0) {
        memcpy(Y, X, (size_t)ny * (p->bytes ? 1 : sizeof(float)));
        return 0;
    }
    if (p->nearest) {
        int64_t W = p->out[p->rank - 1];
        cpu_parallel_for(ex->ctx->pool, ny / W, 1 + 4096 / (W + 1), nearest_range, &j);
        return 0;
    }
    int64_t cur[SH_MAX_DIMS];
    memcpy(cur, p->in, sizeof cur);
    float *bufs[2] = {ex->ws, (float *)ex->ws + p->buf_elems};
    const float *src = X;
    for (int s = 0; s < p->n_active; s++) {
        int a = p->active[s];
        int64_t outer = 1, inner = 1;
        for (int d = 0; d < a; d++)
            outer *= cur[d];
        for (int d = a + 1; d < p->rank; d++)
            inner *= cur[d];
        float *dst = s == p->n_active - 1 ? Y : bufs[s & 1];
        j.x = src;
        j.y = dst;
        j.axis = a;
        j.len_in = cur[a];
        j.len_out = p->out[a];
        j.inner = inner;
        cpu_parallel_for(ex->ctx->pool, outer * p->out[a], 1 + 4096 / (inner * p->ax[a].nt + 1), pass_range, &j);
        cur[a] = p->out[a];
        src = dst;
    }
    return 0;
}

/* ---- prepare -------------------------------------------------------------------------------- */

static int parse_ct(const char *s)
{
    static const char *const names[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel",
                                        "align_corners", "asymmetric", "tf_half_pixel_for_nn",
                                        "tf_crop_and_resize"};
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

static int parse_nm(const char *s)
{
    static const char *const names[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i]))
            return i;
    return -1;
}

int cpu_prep_resize(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    int R = X->shape.ndim;
    if (R < 1 || Y->shape.ndim != R)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "input rank %d, output rank %d", R, Y->shape.ndim);
    bool upsample = n->op == SH_OP_UPSAMPLE;
    const char *mode_s = sh_node_string(n, "mode", "nearest");
    int mode = !strcmp(mode_s, "nearest") ? M_NEAREST
             : !strcmp(mode_s, "linear") || !strcmp(mode_s, "bilinear") ? M_LINEAR
             : !strcmp(mode_s, "cubic") && !upsample ? M_CUBIC : -1;
    if (mode < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "mode '%s'", mode_s);
    bool legacy = upsample || n->opset < 11;   /* Upsample and Resize-10: asymmetric, floor */
    int ct = legacy ? CT_ASYMMETRIC : parse_ct(sh_node_string(n, "coordinate_transformation_mode", "half_pixel"));
    int nm = legacy ? NM_FLOOR : parse_nm(sh_node_string(n, "nearest_mode", "round_prefer_floor"));
    if (ct < 0 || nm < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "coordinate_transformation_mode or nearest_mode");
    if (legacy && !upsample && mode == M_NEAREST)
        nm = NM_ROUND_PREFER_FLOOR;   /* Resize-10 rounds like Resize-11's default */
    const char *policy = sh_node_string(n, "keep_aspect_ratio_policy", "stretch");
    int pol = !strcmp(policy, "stretch") ? 0 : !strcmp(policy, "not_larger") ? 1 : !strcmp(policy, "not_smaller") ? 2 : -1;
    if (pol < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "keep_aspect_ratio_policy '%s'", policy);

    /* axes (opset 18) */
    int axes[SH_MAX_DIMS], na;
    int cnt;
    const int64_t *ax = sh_node_ints(n, "axes", &cnt);
    if (ax) {
        if (cnt > R)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d axes for rank %d", cnt, R);
        na = cnt;
        for (int i = 0; i < na; i++) {
            axes[i] = cpu_axis(ax[i], R);
            if (axes[i] < 0)
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis %lld out of range", (long long)ax[i]);
        }
    } else {
        na = R;
        for (int i = 0; i < R; i++)
            axes[i] = i;
    }

    double scales[SH_MAX_DIMS], roi[2 * SH_MAX_DIMS], vals[2 * SH_MAX_DIMS];
    int64_t sizes[SH_MAX_DIMS];
    for (int d = 0; d < R; d++) {
        scales[d] = 1.0;
        roi[d] = 0.0;
        roi[R + d] = 1.0;
    }
    bool have_scales = false, have_sizes = false;
    int rc;
    if (upsample && n->opset < 9) {
        const sh_attr *a = sh_node_attr(n, "scales");
        if (!a || a->type != SH_ATTR_FLOATS || a->n != R)
            return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "scales attribute must have one value per dim");
        for (int d = 0; d < R; d++)
            scales[d] = a->floats[d];
        have_scales = true;
    } else {
        int si = upsample || n->opset < 11 ? 1 : 2;
        if ((rc = cpu_const_floats(pp, si, vals, SH_MAX_DIMS, err)) < 0)
            return rc;
        if (rc > 0) {
            if (rc != na)
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d scales for %d axes", rc, na);
            for (int i = 0; i < na; i++)
                scales[axes[i]] = vals[i];
            have_scales = true;
        }
        if (!upsample && n->opset >= 11) {
            if ((rc = cpu_const_ints(pp, 3, sizes, SH_MAX_DIMS, err)) < 0)
                return rc;
            if (rc > 0) {
                if (rc != na)
                    return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d sizes for %d axes", rc, na);
                have_sizes = true;
            }
            if (ct == CT_TF_CROP_AND_RESIZE) {
                if ((rc = cpu_const_floats(pp, 1, vals, 2 * SH_MAX_DIMS, err)) < 0)
                    return rc;
                if (rc != 2 * na)
                    return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "roi has %d values for %d axes", rc, na);
                for (int i = 0; i < na; i++) {
                    roi[axes[i]] = vals[i];
                    roi[R + axes[i]] = vals[na + i];
                }
            }
        }
    }
    if (have_sizes == have_scales)
        return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "exactly one of scales and sizes must be given");
    if (have_sizes) {
        double sc[SH_MAX_DIMS];
        for (int i = 0; i < na; i++)
            sc[i] = (double)sizes[i] / (double)X->shape.d[axes[i]];
        double pick = sc[0];
        for (int i = 1; i < na; i++)
            pick = pol == 1 ? (sc[i] < pick ? sc[i] : pick) : (sc[i] > pick ? sc[i] : pick);
        for (int i = 0; i < na; i++)
            scales[axes[i]] = pol ? pick : sc[i];
    }

    axis_spec spec = {.mode = mode, .ct = ct, .nm = nm, .cubic_a = sh_node_float(n, "cubic_coeff_a", -0.75f),
                      .antialias = sh_node_int(n, "antialias", 0) != 0,
                      .exclude_outside = sh_node_int(n, "exclude_outside", 0) != 0};
    /* Which axes change, and how large the tap tables are. */
    int nt[SH_MAX_DIMS];
    bool act[SH_MAX_DIMS];
    size_t extra = 0;
    for (int d = 0; d < R; d++) {
        spec.scale = scales[d];
        if (!(scales[d] > 0.0))
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "scale %g on axis %d", scales[d], d);
        act[d] = X->shape.d[d] != Y->shape.d[d] || scales[d] != 1.0 ||
                 (ct == CT_TF_CROP_AND_RESIZE && (roi[d] != 0.0 || roi[R + d] != 1.0));
        nt[d] = taps_count(&spec);
        if (nt[d] > 64)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "antialias filter of %d taps", nt[d]);
        if (act[d])
            extra += (size_t)Y->shape.d[d] * ((size_t)nt[d] * (sizeof(int64_t) + sizeof(float)) + 1) + 16;
    }
    resize_params *p = cpu_params(pp, sizeof(resize_params) + extra, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    p->rank = R;
    p->nearest = mode == M_NEAREST;
    p->bytes = X->dtype != SH_DT_FLOAT32;
    if (p->bytes && !p->nearest)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s input needs mode nearest", sh_dtype_name(X->dtype));
    p->extrap_value = sh_node_float(n, "extrapolation_value", 0.0f);
    char *mem = (char *)(p + 1);
    for (int d = 0; d < R; d++) {
        p->in[d] = X->shape.d[d];
        p->out[d] = Y->shape.d[d];
        if (!act[d])
            continue;
        axis_taps *t = &p->ax[d];
        t->in = p->in[d];
        t->out = p->out[d];
        t->nt = nt[d];
        mem = (char *)sh_align_up((size_t)mem, 8);
        t->idx = (int64_t *)mem;
        mem += (size_t)t->out * t->nt * sizeof(int64_t);
        t->w = (float *)mem;
        mem += (size_t)t->out * t->nt * sizeof(float);
        t->extrap = (uint8_t *)mem;
        mem += (size_t)t->out;
        if (t->in == 0 && t->out > 0)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "cannot resize an empty axis %d", d);
        spec.scale = scales[d];
        spec.roi0 = roi[d];
        spec.roi1 = roi[R + d];
        fill_taps(&spec, t);
        p->active[p->n_active++] = d;
    }
    /* Ping-pong buffers hold every intermediate of the separable passes. */
    if (!p->nearest && p->n_active > 1) {
        int64_t cur[SH_MAX_DIMS];
        memcpy(cur, p->in, sizeof cur);
        size_t mx = 0;
        for (int s = 0; s < p->n_active - 1; s++) {
            cur[p->active[s]] = p->out[p->active[s]];
            size_t e = 1;
            for (int d = 0; d < R; d++)
                e *= (size_t)cur[d];
            mx = e > mx ? e : mx;
        }
        p->buf_elems = mx;
        pp->p->workspace_bytes[pp->k] = 2 * mx * sizeof(float);
    }
    pp->fn = resize_run;
    if (R == 4 && !p->bytes && p->in[0] == 1 && !act[0] && !act[1]) {
        pp->layout = CPU_LAYOUT_FOLLOWS;
        pp->to_nhwc = resize_to_nhwc;
    }
    return 0;
}
