/* Ops that only move bytes or read shapes: zero-copy views (Reshape, Flatten, Squeeze,
 * Unsqueeze, Identity), Shape, Constant, ConstantOfShape, Gather and Expand. They work on
 * any element size, so the int64 shape arithmetic a model did not fold still runs. */
#include "backends/cpu/cpu_impl.h"

#include <string.h>

/* ---- views ------------------------------------------------------------------------------- */

typedef struct copy_params {
    int x, y;
    size_t bytes;
} copy_params;

static int copy_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const copy_params *p = vp;
    const void *x = ex->t[p->x];
    void *y = ex->t[p->y];
    /* A view shares its input's bytes; a planner that did not alias it gets a copy. */
    if (x != y && p->bytes)
        memcpy(y, x, p->bytes);
    return 0;
}

int cpu_prep_view(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    if (!X || cpu_numel(X) != cpu_numel(Y) || X->dtype != Y->dtype) {
        char a[96], b[96];
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s %s cannot become %s %s", X ? sh_dtype_name(X->dtype) : "-",
                       X ? sh_shape_str(&X->shape, a, sizeof a) : "-", sh_dtype_name(Y->dtype),
                       sh_shape_str(&Y->shape, b, sizeof b));
    }
    copy_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->bytes = (size_t)cpu_numel(Y) * sh_dtype_size(Y->dtype);
    /* Constants live in the weight store, which is read-only to activations: copy those. */
    if (!X->is_const && p->bytes > 0) {
        pp->p->alias_of[p->y] = p->x;
        pp->p->alias_offset[p->y] = 0;
    }
    pp->fn = copy_run;
    return 0;
}

/* ---- Shape --------------------------------------------------------------------------------- */

typedef struct shape_params {
    int y;
    int n;
    int64_t dims[SH_MAX_DIMS];
} shape_params;

static int shape_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const shape_params *p = vp;
    if (p->n)
        memcpy(ex->t[p->y], p->dims, (size_t)p->n * sizeof(int64_t));
    return 0;
}

int cpu_prep_shape(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    shape_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int r = X->shape.ndim;
    int64_t s = sh_node_int(pp->n, "start", 0), e = sh_node_int(pp->n, "end", r);
    if (s < 0)
        s += r;
    if (e < 0)
        e += r;
    s = s < 0 ? 0 : s > r ? r : s;
    e = e < 0 ? 0 : e > r ? r : e;
    p->y = pp->n->outputs[0];
    for (int64_t i = s; i < e; i++)
        p->dims[p->n++] = X->shape.d[i];
    if (cpu_numel(Y) != p->n)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output has %lld values, expected %d", (long long)cpu_numel(Y), p->n);
    pp->fn = shape_run;
    return 0;
}

/* ---- Constant, ConstantOfShape ---------------------------------------------------------------- */

typedef struct fill_params {
    int y;
    int64_t n;                 /* elements to write */
    size_t es;
    bool repeat;               /* ConstantOfShape: value[0] repeated; Constant: value copied */
    size_t value_bytes;
    /* value bytes follow */
} fill_params;

static int fill_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const fill_params *p = vp;
    const unsigned char *v = (const unsigned char *)(p + 1);
    unsigned char *y = ex->t[p->y];
    if (!p->repeat) {
        if (p->value_bytes)
            memcpy(y, v, p->value_bytes);
        return 0;
    }
    for (int64_t i = 0; i < p->n; i++)
        memcpy(y + (size_t)i * p->es, v, p->es);
    return 0;
}

int cpu_prep_constant(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *Y = cpu_out(pp, 0);
    if (Y->is_const)
        return 0;   /* the value is a constant of the graph: nothing to run */
    const sh_node *n = pp->n;
    size_t es = sh_dtype_size(Y->dtype);
    int64_t ne = cpu_numel(Y);
    size_t bytes = (size_t)ne * es;
    const void *src = NULL;
    float f;
    int64_t iv;
    const sh_attr *a = NULL;
    if ((a = sh_node_attr(n, "value")) && a->type == SH_ATTR_TENSOR) {
        const sh_tensor *t = &pp->g->tensors[a->tensor];
        if (t->nbytes != bytes)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "value has %zu bytes, output %zu", t->nbytes, bytes);
        src = t->data;
    } else if ((a = sh_node_attr(n, "value_float"))) {
        f = a->f;
        src = &f;
    } else if ((a = sh_node_attr(n, "value_int"))) {
        iv = a->i;
        src = &iv;
    } else if ((a = sh_node_attr(n, "value_floats"))) {
        src = a->floats;
    } else if ((a = sh_node_attr(n, "value_ints"))) {
        src = a->ints;
    } else {
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "Constant without a numeric value attribute");
    }
    if (a->type == SH_ATTR_FLOATS || a->type == SH_ATTR_INTS) {
        size_t want = (size_t)a->n * (a->type == SH_ATTR_FLOATS ? sizeof(float) : sizeof(int64_t));
        if (want != bytes)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "value has %zu bytes, output %zu", want, bytes);
    } else if (a->type != SH_ATTR_TENSOR && bytes != es) {
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "scalar value for a non-scalar output");
    }
    fill_params *p = cpu_params(pp, sizeof *p + bytes, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->y = n->outputs[0];
    p->value_bytes = bytes;
    if (bytes)
        memcpy(p + 1, src, bytes);
    pp->fn = fill_run;
    return 0;
}

int cpu_prep_constant_of_shape(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *Y = cpu_out(pp, 0);
    if (Y->is_const)
        return 0;
    size_t es = sh_dtype_size(Y->dtype);
    fill_params *p = cpu_params(pp, sizeof *p + 8, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->y = pp->n->outputs[0];
    p->n = cpu_numel(Y);
    p->es = es;
    p->repeat = true;
    const sh_attr *a = sh_node_attr(pp->n, "value");
    if (a && a->type == SH_ATTR_TENSOR) {
        const sh_tensor *t = &pp->g->tensors[a->tensor];
        if (t->dtype != Y->dtype || t->nbytes != es)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "value is %s with %zu bytes", sh_dtype_name(t->dtype), t->nbytes);
        memcpy(p + 1, t->data, es);
    } else if (a) {
        return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "value must be a tensor");
    }
    /* absent value: zeros of the output type, already there from calloc */
    pp->fn = fill_run;
    return 0;
}

/* ---- Gather ------------------------------------------------------------------------------------ */

typedef struct gather_params {
    int x, ind, y;
    sh_dtype ind_dt;
    int64_t outer, dim, inner, n_ind;
    size_t es;
} gather_params;

static int gather_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const gather_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    const void *ind = ex->t[p->ind];
    size_t row = (size_t)p->inner * p->es;
    for (int64_t i = 0; i < p->n_ind; i++) {
        int64_t k = p->ind_dt == SH_DT_INT64 ? ((const int64_t *)ind)[i] : ((const int32_t *)ind)[i];
        if (k < 0)
            k += p->dim;
        if (k < 0 || k >= p->dim)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "index %lld out of range [0, %lld)", (long long)k,
                           (long long)p->dim);
        for (int64_t o = 0; o < p->outer; o++)
            memcpy(y + ((size_t)o * p->n_ind + (size_t)i) * row, x + ((size_t)o * p->dim + (size_t)k) * row, row);
    }
    return 0;
}

int cpu_prep_gather(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *I = cpu_in(pp, 1), *Y = cpu_out(pp, 0);
    if (!I || (I->dtype != SH_DT_INT64 && I->dtype != SH_DT_INT32))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "indices must be int32/int64");
    int r = X->shape.ndim;
    int axis = cpu_axis(sh_node_int(pp->n, "axis", 0), r);
    if (axis < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis out of range for rank %d", r);
    gather_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->ind = pp->n->inputs[1];
    p->y = pp->n->outputs[0];
    p->ind_dt = I->dtype;
    p->es = sh_dtype_size(X->dtype);
    p->outer = p->inner = 1;
    for (int d = 0; d < axis; d++)
        p->outer *= X->shape.d[d];
    for (int d = axis + 1; d < r; d++)
        p->inner *= X->shape.d[d];
    p->dim = X->shape.d[axis];
    p->n_ind = cpu_numel(I);
    if (p->outer * p->n_ind * p->inner != cpu_numel(Y))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output has %lld elements", (long long)cpu_numel(Y));
    pp->fn = gather_run;
    return 0;
}

/* ---- Expand ------------------------------------------------------------------------------------- */

typedef struct expand_params {
    int x, y;
    int nd;
    int64_t dims[SH_MAX_DIMS], st[SH_MAX_DIMS];
    size_t es;
    int64_t rows, inner;
} expand_params;

static int expand_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const expand_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    int64_t inner = p->inner, ist = p->st[p->nd - 1];
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t off = cpu_row_offset(p->nd, p->dims, p->st, r);
        unsigned char *dst = y + (size_t)(r * inner) * p->es;
        if (ist == 1) {
            memcpy(dst, x + (size_t)off * p->es, (size_t)inner * p->es);
        } else {
            for (int64_t i = 0; i < inner; i++)
                memcpy(dst + (size_t)i * p->es, x + (size_t)(off + i * ist) * p->es, p->es);
        }
    }
    return 0;
}

int cpu_prep_expand(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    expand_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->es = sh_dtype_size(Y->dtype);
    int R = Y->shape.ndim, off = R - X->shape.ndim;
    if (off < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output rank %d below input rank %d", R, X->shape.ndim);
    int64_t ist[SH_MAX_DIMS];
    cpu_strides(&X->shape, ist);
    for (int d = 0; d < R; d++) {
        int id = d - off;
        int64_t xd = id >= 0 ? X->shape.d[id] : 1;
        if (xd != Y->shape.d[d] && xd != 1)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "input dim %lld does not broadcast to %lld", (long long)xd,
                           (long long)Y->shape.d[d]);
        p->dims[d] = Y->shape.d[d];
        p->st[d] = id >= 0 && xd != 1 ? ist[id] : 0;
    }
    if (R == 0) {
        p->dims[0] = 1;
        p->st[0] = 0;
        R = 1;
    }
    p->nd = R;
    p->inner = p->dims[R - 1];
    p->rows = p->inner ? cpu_numel(Y) / p->inner : 0;
    pp->fn = expand_run;
    return 0;
}
