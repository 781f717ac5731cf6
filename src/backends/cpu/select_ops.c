/* Selection and index ops, the tail of NMS-free (end-to-end) detection heads such as
 * YOLOv10's: TopK, GatherElements, GatherND, ReduceMax, ArgMax, Tile and Mod; and Range,
 * which dynamic exports build anchor grids with (folded once shapes are known, so the kernel
 * only runs when folding was out of scope).
 *
 * These run on a few thousand values per frame, after the network proper, so they favour
 * plain loops over the thread pool. Values are compared through double, which holds every
 * float32 and int32 exactly and int64 up to 2^53 (indices and class ids are far below). */
#include "backends/cpu/cpu_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t load_index(const void *p, sh_dtype dt, int64_t i)
{
    return dt == SH_DT_INT64 ? ((const int64_t *)p)[i] : ((const int32_t *)p)[i];
}

static bool is_index_dt(sh_dtype d)
{
    return d == SH_DT_INT64 || d == SH_DT_INT32;
}

/* The three-factor view of a shape around one axis: outer * dim * inner elements. */
static void split_at(const sh_shape *s, int axis, int64_t *outer, int64_t *dim, int64_t *inner)
{
    *outer = *inner = 1;
    for (int d = 0; d < axis; d++)
        *outer *= s->d[d];
    for (int d = axis + 1; d < s->ndim; d++)
        *inner *= s->d[d];
    *dim = s->d[axis];
}

/* ---- TopK --------------------------------------------------------------------------------- */

typedef struct topk_params {
    int x, vals, idx;
    sh_dtype dt;
    int64_t outer, dim, inner, k;
    bool largest;
} topk_params;

typedef struct topk_item {
    double v;
    int64_t i;
} topk_item;

/* ONNX orders equal values by ascending index, for largest and smallest alike. NaN sorts
 * as the largest value, as numpy's sort does. */
static int cmp_desc(const void *a, const void *b)
{
    const topk_item *x = a, *y = b;
    bool xn = isnan(x->v), yn = isnan(y->v);
    if (xn != yn)
        return xn ? -1 : 1;
    if (!xn && x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static int cmp_asc(const void *a, const void *b)
{
    const topk_item *x = a, *y = b;
    bool xn = isnan(x->v), yn = isnan(y->v);
    if (xn != yn)
        return xn ? 1 : -1;
    if (!xn && x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

static void store_value(void *p, sh_dtype dt, int64_t i, double v)
{
    switch (dt) {
    case SH_DT_FLOAT32: ((float *)p)[i] = (float)v; break;
    case SH_DT_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    default: ((int64_t *)p)[i] = (int64_t)v; break;
    }
}

static int topk_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const topk_params *p = vp;
    const void *x = ex->t[p->x];
    void *vals = p->vals >= 0 ? ex->t[p->vals] : NULL;
    int64_t *idx = p->idx >= 0 ? ex->t[p->idx] : NULL;
    topk_item *row = ex->ws;
    if (p->dim == 0)
        return 0;
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t in = 0; in < p->inner; in++) {
            for (int64_t d = 0; d < p->dim; d++) {
                row[d].v = sh_dtype_load_f64(x, p->dt, (o * p->dim + d) * p->inner + in);
                row[d].i = d;
            }
            qsort(row, (size_t)p->dim, sizeof *row, p->largest ? cmp_desc : cmp_asc);
            for (int64_t j = 0; j < p->k; j++) {
                int64_t at = (o * p->k + j) * p->inner + in;
                if (vals)
                    store_value(vals, p->dt, at, row[j].v);
                if (idx)
                    idx[at] = row[j].i;
            }
        }
    return 0;
}

int cpu_prep_topk(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *V = cpu_out(pp, 0);
    int axis = cpu_axis(sh_node_int(pp->n, "axis", -1), X->shape.ndim);
    if (axis < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis out of range for rank %d", X->shape.ndim);
    topk_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->vals = pp->n->outputs[0];
    p->idx = pp->n->n_outputs > 1 ? pp->n->outputs[1] : -1;
    p->dt = X->dtype;
    p->largest = sh_node_int(pp->n, "largest", 1) != 0;
    split_at(&X->shape, axis, &p->outer, &p->dim, &p->inner);
    p->k = V->shape.d[axis];
    size_t ws;
    if (!sh_mul_size((size_t)p->dim, sizeof(topk_item), &ws))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis of %lld values is too long", (long long)p->dim);
    pp->p->workspace_bytes[pp->k] = ws;
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = topk_run;
    return 0;
}

/* ---- GatherElements ---------------------------------------------------------------------- */

typedef struct gather_el_params {
    int x, ind, y;
    sh_dtype ind_dt;
    int ndim, axis;
    int64_t out_dims[SH_MAX_DIMS], x_st[SH_MAX_DIMS];
    int64_t n, axis_len;
    size_t es;
} gather_el_params;

static int gather_el_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const gather_el_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    const void *ind = ex->t[p->ind];
    int64_t pos[SH_MAX_DIMS] = {0};
    for (int64_t i = 0; i < p->n; i++) {
        int64_t k = load_index(ind, p->ind_dt, i);
        if (k < 0)
            k += p->axis_len;
        if (k < 0 || k >= p->axis_len)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s (GatherElements): index %lld out of range [0, %lld)",
                           n->name, (long long)load_index(ind, p->ind_dt, i), (long long)p->axis_len);
        int64_t off = 0;
        for (int d = 0; d < p->ndim; d++)
            off += (d == p->axis ? k : pos[d]) * p->x_st[d];
        memcpy(y + (size_t)i * p->es, x + (size_t)off * p->es, p->es);
        for (int d = p->ndim - 1; d >= 0 && ++pos[d] == p->out_dims[d]; d--)
            pos[d] = 0;
    }
    return 0;
}

int cpu_prep_gather_elements(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *I = cpu_in(pp, 1);
    int axis = cpu_axis(sh_node_int(pp->n, "axis", 0), X->shape.ndim);
    if (axis < 0 || !is_index_dt(I->dtype))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "needs int32/int64 indices and an axis within rank %d",
                       X->shape.ndim);
    gather_el_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->ind = pp->n->inputs[1];
    p->y = pp->n->outputs[0];
    p->ind_dt = I->dtype;
    p->ndim = X->shape.ndim;
    p->axis = axis;
    memcpy(p->out_dims, I->shape.d, sizeof p->out_dims);
    cpu_strides(&X->shape, p->x_st);
    p->n = cpu_numel(I);
    p->axis_len = X->shape.d[axis];
    p->es = sh_dtype_size(X->dtype);
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = gather_el_run;
    return 0;
}

/* ---- GatherND ------------------------------------------------------------------------------ */

typedef struct gather_nd_params {
    int x, ind, y;
    sh_dtype ind_dt;
    int64_t batches;          /* product of the batch dims */
    int64_t per_batch;        /* index tuples per batch */
    int64_t tuple;            /* indices.shape[-1] */
    int64_t x_dims[SH_MAX_DIMS], x_st[SH_MAX_DIMS];
    int batch_dims;
    int64_t batch_stride;     /* data elements per batch */
    size_t slice_bytes;       /* bytes copied per tuple */
    size_t es;
} gather_nd_params;

static int gather_nd_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const gather_nd_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    const void *ind = ex->t[p->ind];
    for (int64_t b = 0; b < p->batches; b++)
        for (int64_t t = 0; t < p->per_batch; t++) {
            int64_t at = (b * p->per_batch + t) * p->tuple, off = b * p->batch_stride;
            for (int64_t j = 0; j < p->tuple; j++) {
                int64_t dim = p->x_dims[p->batch_dims + j], k = load_index(ind, p->ind_dt, at + j);
                if (k < 0)
                    k += dim;
                if (k < 0 || k >= dim)
                    return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s (GatherND): index %lld out of range [0, %lld)",
                                   n->name, (long long)load_index(ind, p->ind_dt, at + j), (long long)dim);
                off += k * p->x_st[p->batch_dims + j];
            }
            memcpy(y + (size_t)(b * p->per_batch + t) * p->slice_bytes, x + (size_t)off * p->es, p->slice_bytes);
        }
    return 0;
}

int cpu_prep_gather_nd(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *I = cpu_in(pp, 1);
    if (!is_index_dt(I->dtype))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "indices are %s, not int32/int64", sh_dtype_name(I->dtype));
    gather_nd_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int q = I->shape.ndim, b = (int)sh_node_int(pp->n, "batch_dims", 0);
    p->x = pp->n->inputs[0];
    p->ind = pp->n->inputs[1];
    p->y = pp->n->outputs[0];
    p->ind_dt = I->dtype;
    p->batch_dims = b;
    p->tuple = I->shape.d[q - 1];
    p->batches = p->per_batch = 1;
    for (int d = 0; d < b; d++)
        p->batches *= I->shape.d[d];
    for (int d = b; d < q - 1; d++)
        p->per_batch *= I->shape.d[d];
    memcpy(p->x_dims, X->shape.d, sizeof p->x_dims);
    cpu_strides(&X->shape, p->x_st);
    p->batch_stride = b > 0 ? p->x_st[b - 1] : 0;
    p->es = sh_dtype_size(X->dtype);
    int64_t slice = 1;
    for (int64_t d = b + p->tuple; d < X->shape.ndim; d++)
        slice *= X->shape.d[d];
    p->slice_bytes = (size_t)slice * p->es;
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = gather_nd_run;
    return 0;
}

/* ---- ReduceMax and ArgMax ------------------------------------------------------------------ */

/* ReduceMax visits every input element once and folds it into its output slot: output
 * strides are 0 along reduced axes, so any set of axes costs the same walk. */
typedef struct reduce_max_params {
    int x, y;
    sh_dtype dt;
    int ndim;
    int64_t x_dims[SH_MAX_DIMS], y_st[SH_MAX_DIMS];
    int64_t n_in, n_out;
} reduce_max_params;

static int reduce_max_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const reduce_max_params *p = vp;
    const void *x = ex->t[p->x];
    void *y = ex->t[p->y];
    double *acc = ex->ws;
    for (int64_t i = 0; i < p->n_out; i++)
        acc[i] = -INFINITY;
    int64_t pos[SH_MAX_DIMS] = {0}, off = 0;
    for (int64_t i = 0; i < p->n_in; i++) {
        double v = sh_dtype_load_f64(x, p->dt, i);
        if (v > acc[off] || isnan(v))
            acc[off] = v;
        for (int d = p->ndim - 1; d >= 0; d--) {
            off += p->y_st[d];
            if (++pos[d] < p->x_dims[d])
                break;
            off -= p->y_st[d] * pos[d];
            pos[d] = 0;
        }
    }
    for (int64_t i = 0; i < p->n_out; i++)
        store_value(y, p->dt, i, acc[i]);
    return 0;
}

int cpu_prep_reduce_max(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    reduce_max_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->dt = X->dtype;
    p->ndim = X->shape.ndim;
    p->n_in = cpu_numel(X);
    p->n_out = cpu_numel(Y);
    if (p->n_in == 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "input '%s' is empty", X->name);
    /* Shape inference kept the reduced axes (as 1) or dropped them; either way the kept axes
     * appear in order, so walking the input's axes finds each one's output stride. */
    int64_t axes[SH_MAX_DIMS];
    int na = pp->n->opset >= 18 ? cpu_const_ints(pp, 1, axes, SH_MAX_DIMS, err) : 0;
    if (na < 0)
        return na;
    if (pp->n->opset < 18) {
        int c;
        const int64_t *a = sh_node_ints(pp->n, "axes", &c);
        for (int i = 0; a && i < c && i < SH_MAX_DIMS; i++)
            axes[na++] = a[i];
    }
    bool red[SH_MAX_DIMS] = {false};
    if (na == 0 && !(pp->n->opset >= 18 && sh_node_int(pp->n, "noop_with_empty_axes", 0)))
        for (int d = 0; d < p->ndim; d++)
            red[d] = true;
    for (int i = 0; i < na; i++) {
        int a = cpu_axis(axes[i], p->ndim);
        if (a < 0)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis %lld out of range", (long long)axes[i]);
        red[a] = true;
    }
    int64_t st = 1;
    for (int d = p->ndim - 1; d >= 0; d--) {
        p->x_dims[d] = X->shape.d[d];
        p->y_st[d] = red[d] ? 0 : st;
        if (!red[d])
            st *= X->shape.d[d];
    }
    size_t ws;
    if (!sh_mul_size((size_t)p->n_out, sizeof(double), &ws))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output '%s' is too large", Y->name);
    pp->p->workspace_bytes[pp->k] = ws;
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = reduce_max_run;
    return 0;
}

typedef struct argmax_params {
    int x, y;
    sh_dtype dt;
    int64_t outer, dim, inner;
    bool last;
} argmax_params;

static int argmax_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const argmax_params *p = vp;
    const void *x = ex->t[p->x];
    int64_t *y = ex->t[p->y];
    for (int64_t o = 0; o < p->outer; o++)
        for (int64_t in = 0; in < p->inner; in++) {
            int64_t best = 0;
            double bv = sh_dtype_load_f64(x, p->dt, o * p->dim * p->inner + in);
            for (int64_t d = 1; d < p->dim; d++) {
                double v = sh_dtype_load_f64(x, p->dt, (o * p->dim + d) * p->inner + in);
                if (v > bv || (p->last && v == bv)) {
                    bv = v;
                    best = d;
                }
            }
            y[o * p->inner + in] = best;
        }
    return 0;
}

int cpu_prep_argmax(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0);
    int axis = cpu_axis(sh_node_int(pp->n, "axis", 0), X->shape.ndim);
    if (axis < 0 || X->shape.d[axis] == 0)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis out of range or empty for '%s'", X->name);
    argmax_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->dt = X->dtype;
    p->last = pp->n->opset >= 12 && sh_node_int(pp->n, "select_last_index", 0);
    split_at(&X->shape, axis, &p->outer, &p->dim, &p->inner);
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = argmax_run;
    return 0;
}

/* ---- Tile ------------------------------------------------------------------------------------- */

typedef struct tile_params {
    int x, y;
    int ndim;
    int64_t y_dims[SH_MAX_DIMS], x_dims[SH_MAX_DIMS], x_st[SH_MAX_DIMS];
    int64_t n;
    size_t es;
} tile_params;

static int tile_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const tile_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    int64_t pos[SH_MAX_DIMS] = {0};
    for (int64_t i = 0; i < p->n; i++) {
        int64_t off = 0;
        for (int d = 0; d < p->ndim; d++)
            off += (pos[d] % p->x_dims[d]) * p->x_st[d];
        memcpy(y + (size_t)i * p->es, x + (size_t)off * p->es, p->es);
        for (int d = p->ndim - 1; d >= 0 && ++pos[d] == p->y_dims[d]; d--)
            pos[d] = 0;
    }
    return 0;
}

int cpu_prep_tile(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    tile_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->ndim = X->shape.ndim;
    memcpy(p->x_dims, X->shape.d, sizeof p->x_dims);
    memcpy(p->y_dims, Y->shape.d, sizeof p->y_dims);
    cpu_strides(&X->shape, p->x_st);
    p->n = cpu_numel(X) ? cpu_numel(Y) : 0;
    p->es = sh_dtype_size(X->dtype);
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = tile_run;
    return 0;
}

/* ---- Mod ---------------------------------------------------------------------------------- */

typedef struct mod_params {
    int a, b, y;
    sh_dtype dt;
    bool fmod;
    int ndim;
    int64_t dims[SH_MAX_DIMS], sa[SH_MAX_DIMS], sb[SH_MAX_DIMS];
    int64_t n;
} mod_params;

/* Integer Mod takes the divisor's sign (Python's %), fmod the dividend's (C's %). */
static int64_t int_mod(int64_t a, int64_t b, bool fmod_sign)
{
    if (b == -1)
        return 0;   /* INT64_MIN % -1 overflows in C */
    int64_t r = a % b;
    if (!fmod_sign && r != 0 && ((r < 0) != (b < 0)))
        r += b;
    return r;
}

static int mod_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const mod_params *p = vp;
    const void *a = ex->t[p->a], *b = ex->t[p->b];
    void *y = ex->t[p->y];
    int64_t pos[SH_MAX_DIMS] = {0}, ia = 0, ib = 0;
    for (int64_t i = 0; i < p->n; i++) {
        if (p->dt == SH_DT_FLOAT32) {
            ((float *)y)[i] = fmodf(((const float *)a)[ia], ((const float *)b)[ib]);
        } else {
            int64_t va = load_index(a, p->dt, ia), vb = load_index(b, p->dt, ib);
            if (vb == 0)
                return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s (Mod): integer division by zero", n->name);
            int64_t r = int_mod(va, vb, p->fmod);
            if (p->dt == SH_DT_INT64)
                ((int64_t *)y)[i] = r;
            else
                ((int32_t *)y)[i] = (int32_t)r;
        }
        for (int d = p->ndim - 1; d >= 0; d--) {
            ia += p->sa[d];
            ib += p->sb[d];
            if (++pos[d] < p->dims[d])
                break;
            ia -= p->sa[d] * pos[d];
            ib -= p->sb[d] * pos[d];
            pos[d] = 0;
        }
    }
    return 0;
}

int cpu_prep_mod(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *A = cpu_in(pp, 0), *B = cpu_in(pp, 1), *Y = cpu_out(pp, 0);
    bool fm = sh_node_int(pp->n, "fmod", 0) != 0;
    if (A->dtype == SH_DT_FLOAT32 && !fm)
        return CPU_ERR(pp, err, SHOAL_ERR_INVALID_ARG, "float input '%s' needs fmod=1", A->name);
    mod_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->a = pp->n->inputs[0];
    p->b = pp->n->inputs[1];
    p->y = pp->n->outputs[0];
    p->dt = A->dtype;
    p->fmod = fm;
    p->ndim = Y->shape.ndim;
    memcpy(p->dims, Y->shape.d, sizeof p->dims);
    int rc = cpu_bcast_pair(pp, A, B, -1, p->sa, p->sb, err);
    if (rc)
        return rc;
    p->n = cpu_numel(Y);
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = mod_run;
    return 0;
}

/* ---- Range ------------------------------------------------------------------------------------ */

typedef struct range_params {
    int start, delta, y;
    sh_dtype dt;
    int64_t n;
} range_params;

/* start + i * delta in double, as constant folding computes it (graph/fold.c). */
static int range_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const range_params *p = vp;
    double s = sh_dtype_load_f64(ex->t[p->start], p->dt, 0), d = sh_dtype_load_f64(ex->t[p->delta], p->dt, 0);
    void *y = ex->t[p->y];
    for (int64_t i = 0; i < p->n; i++)
        switch (p->dt) {
        case SH_DT_FLOAT32: ((float *)y)[i] = (float)(s + (double)i * d); break;
        case SH_DT_INT32: ((int32_t *)y)[i] = (int32_t)((int64_t)s + i * (int64_t)d); break;
        default: ((int64_t *)y)[i] = (int64_t)s + i * (int64_t)d; break;
        }
    return 0;
}

int cpu_prep_range(cpu_prep *pp, sh_err *err)
{
    range_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->start = pp->n->inputs[0];
    p->delta = pp->n->inputs[2];
    p->y = pp->n->outputs[0];
    p->dt = cpu_out(pp, 0)->dtype;
    p->n = cpu_numel(cpu_out(pp, 0));
    pp->p->inplace_input[pp->k] = -1;
    pp->fn = range_run;
    return 0;
}
