/* Reductions: GlobalAveragePool, ReduceMean and Softmax (both the coerce-to-2-D semantics
 * of opset < 13 and the single-axis one of opset 13+). Sums accumulate in double: the
 * means feed squeeze-excite gates, where a few ulps of drift over large planes show. */
#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/vexp.h"

#include <math.h>
#include <string.h>

/* ---- GlobalAveragePool ---------------------------------------------------------------------- */

typedef struct gap_params {
    int x, y;
    int64_t planes, inner;
} gap_params;

typedef struct gap_job {
    const gap_params *p;
    const float *x;
    float *y;
} gap_job;

static void gap_range(void *arg, int64_t b, int64_t e, int tid)
{
    const gap_job *j = arg;
    for (int64_t r = b; r < e; r++) {
        const float *x = j->x + r * j->p->inner;
        double s = 0.0;
        for (int64_t i = 0; i < j->p->inner; i++)
            s += x[i];
        j->y[r] = j->p->inner ? (float)(s / (double)j->p->inner) : 0.0f;
    }
}

static int gap_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const gap_params *p = vp;
    gap_job j = {.p = p, .x = ex->t[p->x], .y = ex->t[p->y]};
    cpu_parallel_for(ex->ctx->pool, p->planes, 1 + 16384 / (p->inner + 1), gap_range, &j);
    return 0;
}

int cpu_prep_global_avg_pool(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0);
    if (X->shape.ndim < 2)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "rank %d input", X->shape.ndim);
    gap_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->planes = X->shape.d[0] * X->shape.d[1];
    p->inner = 1;
    for (int d = 2; d < X->shape.ndim; d++)
        p->inner *= X->shape.d[d];
    pp->fn = gap_run;
    return 0;
}

/* ---- ReduceMean ------------------------------------------------------------------------------ */

typedef struct rmean_params {
    int x, y;
    int nk, nr;                          /* kept and reduced dims */
    int64_t kd[SH_MAX_DIMS], ks[SH_MAX_DIMS];
    int64_t rd[SH_MAX_DIMS], rs[SH_MAX_DIMS];
    int64_t n_out, n_red;
    bool tail;                           /* reduced dims are one contiguous trailing block */
    bool copy;                           /* noop_with_empty_axes with no axes */
} rmean_params;

typedef struct rmean_job {
    const rmean_params *p;
    const float *x;
    float *y;
} rmean_job;

static void rmean_range(void *arg, int64_t b, int64_t e, int tid)
{
    const rmean_job *j = arg;
    const rmean_params *p = j->p;
    for (int64_t o = b; o < e; o++) {
        int64_t base = 0, rem = o;
        for (int d = p->nk - 1; d >= 0; d--) {
            base += rem % p->kd[d] * p->ks[d];
            rem /= p->kd[d];
        }
        double s = 0.0;
        if (p->tail) {
            const float *x = j->x + base;
            for (int64_t i = 0; i < p->n_red; i++)
                s += x[i];
        } else {
            for (int64_t r = 0; r < p->n_red; r++) {
                int64_t off = 0, rr = r;
                for (int d = p->nr - 1; d >= 0; d--) {
                    off += rr % p->rd[d] * p->rs[d];
                    rr /= p->rd[d];
                }
                s += j->x[base + off];
            }
        }
        j->y[o] = p->n_red ? (float)(s / (double)p->n_red) : NAN;
    }
}

static int rmean_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const rmean_params *p = vp;
    rmean_job j = {.p = p, .x = ex->t[p->x], .y = ex->t[p->y]};
    if (p->copy) {
        if (j.x != j.y && p->n_out)
            memcpy(j.y, j.x, (size_t)p->n_out * sizeof(float));
        return 0;
    }
    cpu_parallel_for(ex->ctx->pool, p->n_out, 1 + 16384 / (p->n_red + 1), rmean_range, &j);
    return 0;
}

int cpu_prep_reduce_mean(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0);
    rmean_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    int r = X->shape.ndim;
    int64_t axes[SH_MAX_DIMS];
    int na = 0;
    if (n->opset >= 18) {
        int rc = cpu_const_ints(pp, 1, axes, SH_MAX_DIMS, err);
        if (rc < 0)
            return rc;
        na = rc;
    } else {
        const int64_t *a = sh_node_ints(n, "axes", &na);
        if (na > SH_MAX_DIMS)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d axes", na);
        for (int i = 0; i < na; i++)
            axes[i] = a[i];
    }
    bool red[SH_MAX_DIMS] = {false};
    if (na == 0) {
        if (n->opset >= 18 && sh_node_int(n, "noop_with_empty_axes", 0)) {
            p->copy = true;
            p->n_out = cpu_numel(X);
            pp->fn = rmean_run;
            return 0;
        }
        for (int d = 0; d < r; d++)
            red[d] = true;
    }
    for (int i = 0; i < na; i++) {
        int a = cpu_axis(axes[i], r);
        if (a < 0)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis %lld out of range", (long long)axes[i]);
        red[a] = true;
    }
    int64_t st[SH_MAX_DIMS];
    cpu_strides(&X->shape, st);
    p->n_out = p->n_red = 1;
    int first_red = r;
    for (int d = 0; d < r; d++) {
        if (red[d]) {
            p->rd[p->nr] = X->shape.d[d];
            p->rs[p->nr++] = st[d];
            p->n_red *= X->shape.d[d];
            if (first_red == r)
                first_red = d;
        } else {
            p->kd[p->nk] = X->shape.d[d];
            p->ks[p->nk++] = st[d];
            p->n_out *= X->shape.d[d];
        }
    }
    p->tail = true;
    for (int d = first_red; d < r; d++)
        if (!red[d])
            p->tail = false;
    if (p->n_out != cpu_numel(cpu_out(pp, 0)))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output has %lld elements, expected %lld",
                       (long long)cpu_numel(cpu_out(pp, 0)), (long long)p->n_out);
    pp->fn = rmean_run;
    return 0;
}

/* ---- Softmax --------------------------------------------------------------------------------- */

typedef struct softmax_params {
    int x, y;
    int64_t outer, len, inner;
} softmax_params;

typedef struct softmax_job {
    const softmax_params *p;
    const float *x;
    float *y;
} softmax_job;

static void softmax_range(void *arg, int64_t b, int64_t e, int tid)
{
    const softmax_job *j = arg;
    const softmax_params *p = j->p;
    int64_t L = p->len, I = p->inner;
    for (int64_t line = b; line < e; line++) {
        int64_t o = line / I, i = line % I;
        const float *x = j->x + o * L * I + i;
        float *y = j->y + o * L * I + i;
        float mx = -INFINITY;
        for (int64_t k = 0; k < L; k++)
            mx = x[k * I] > mx ? x[k * I] : mx;
        double s = 0.0;
        if (I == 1) {
            s = cpu_exp_shift_sum(y, x, mx, L);
        } else {
            for (int64_t k = 0; k < L; k++) {
                float v = cpu_expf(x[k * I] - mx);
                y[k * I] = v;
                s += v;
            }
        }
        float inv = (float)(1.0 / s);
        for (int64_t k = 0; k < L; k++)
            y[k * I] *= inv;
    }
}

/* Softmax over a strided axis (inner > 1, e.g. YOLO's DFL over [1, 16, 4, 8400]) a block of
 * SM_BLK adjacent lines at a time: every pass walks whole rows of the block, contiguous and
 * vectorizable, where one line at a time strides by `inner` through memory three times.
 * Range items are blocks: (outer index, block of inner). */
enum { SM_BLK = 64 };

static void softmax_block_range(void *arg, int64_t b, int64_t e, int tid)
{
    const softmax_job *j = arg;
    const softmax_params *p = j->p;
    int64_t L = p->len, I = p->inner, nblk = (I + SM_BLK - 1) / SM_BLK;
    float mx[SM_BLK], sum[SM_BLK];
    for (int64_t blk = b; blk < e; blk++) {
        int64_t o = blk / nblk, i0 = blk % nblk * SM_BLK;
        int64_t w = I - i0 < SM_BLK ? I - i0 : SM_BLK;
        const float *x = j->x + o * L * I + i0;
        float *y = j->y + o * L * I + i0;
        for (int64_t c = 0; c < w; c++) {
            mx[c] = -INFINITY;
            sum[c] = 0.0f;
        }
        for (int64_t k = 0; k < L; k++)
            for (int64_t c = 0; c < w; c++)
                mx[c] = x[k * I + c] > mx[c] ? x[k * I + c] : mx[c];
        for (int64_t k = 0; k < L; k++) {
            float *row = y + k * I;
            for (int64_t c = 0; c < w; c++)
                row[c] = x[k * I + c] - mx[c];
            cpu_exp_array(row, row, w);
            for (int64_t c = 0; c < w; c++)
                sum[c] += row[c];
        }
        for (int64_t c = 0; c < w; c++)
            sum[c] = 1.0f / sum[c];
        for (int64_t k = 0; k < L; k++)
            for (int64_t c = 0; c < w; c++)
                y[k * I + c] *= sum[c];
    }
    (void)tid;
}

static int softmax_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const softmax_params *p = vp;
    softmax_job j = {.p = p, .x = ex->t[p->x], .y = ex->t[p->y]};
    if (p->len == 0)
        return 0;
    if (p->inner >= SM_BLK) {
        int64_t nblk = (p->inner + SM_BLK - 1) / SM_BLK;
        cpu_parallel_for(ex->ctx->pool, p->outer * nblk, 1 + 128 / (p->len + 1), softmax_block_range, &j);
        return 0;
    }
    cpu_parallel_for(ex->ctx->pool, p->outer * p->inner, 1 + 8192 / (p->len + 1), softmax_range, &j);
    return 0;
}

int cpu_prep_softmax(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0);
    int r = X->shape.ndim;
    softmax_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    if (r == 0) {
        p->outer = p->len = p->inner = 1;
        pp->fn = softmax_run;
        return 0;
    }
    int axis = cpu_axis(sh_node_int(n, "axis", n->opset < 13 ? 1 : -1), r);
    if (axis < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis out of range for rank %d", r);
    p->outer = p->len = p->inner = 1;
    for (int d = 0; d < axis; d++)
        p->outer *= X->shape.d[d];
    if (n->opset < 13) {
        for (int d = axis; d < r; d++)
            p->len *= X->shape.d[d];
    } else {
        p->len = X->shape.d[axis];
        for (int d = axis + 1; d < r; d++)
            p->inner *= X->shape.d[d];
    }
    pp->p->inplace_input[pp->k] = 0;
    pp->fn = softmax_run;
    return 0;
}
