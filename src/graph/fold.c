/* Constant folding: a small reference evaluator for the ops exporters use to compute shapes
 * (Shape -> Gather -> Unsqueeze -> Concat -> Reshape, chunk()'s Add/Div/Mul, ConstantOfShape,
 * Pad's Cast/Transpose dance). It runs after the node's outputs are inferred, so every op only
 * fills bytes into a shape it is given.
 *
 * Float arithmetic is one IEEE operation per element in float32 (or float64), exactly what a
 * kernel computes for the same op, so folding never changes a model's numbers. Anything out of
 * scope (a dtype, an op, a size above fold_max_bytes) is left for the backends. */
#include "graph/passes-impl.h"

#include <math.h>
#include <string.h>

bool sh_fold_supported(sh_op op)
{
    switch (op) {
    case SH_OP_CONSTANT: case SH_OP_SHAPE: case SH_OP_GATHER: case SH_OP_ADD: case SH_OP_SUB:
    case SH_OP_MUL: case SH_OP_DIV: case SH_OP_CONCAT: case SH_OP_SLICE: case SH_OP_UNSQUEEZE:
    case SH_OP_SQUEEZE: case SH_OP_CAST: case SH_OP_CONSTANT_OF_SHAPE: case SH_OP_EXPAND:
    case SH_OP_RESHAPE: case SH_OP_IDENTITY: case SH_OP_FLATTEN: case SH_OP_TRANSPOSE: case SH_OP_RANGE:
        return true;
    default:
        return false;
    }
}

/* Row-major strides of s in elements; broadcast dims (size 1 against a larger output) get
 * stride 0, aligned to the right of an output of rank r. */
static void bcast_strides(const sh_shape *s, const sh_shape *out, int64_t *st)
{
    int r = out->ndim;
    int64_t acc = 1;
    for (int i = r - 1; i >= 0; i--) {
        int j = i - (r - s->ndim);
        if (j < 0) {
            st[i] = 0;
            continue;
        }
        st[i] = (s->d[j] == 1 && out->d[i] != 1) ? 0 : acc;
        acc *= s->d[j];
    }
}

/* Offset of output element `lin` in an input with strides st. */
static int64_t offset_of(int64_t lin, const sh_shape *out, const int64_t *st)
{
    int64_t off = 0;
    for (int i = out->ndim - 1; i >= 0; i--) {
        int64_t d = out->d[i];
        if (d == 0)
            return 0;
        off += (lin % d) * st[i];
        lin /= d;
    }
    return off;
}

static int binary(const sh_graph *g, const sh_node *n, void *dst, sh_err *err)
{
    const sh_tensor *a = sh_node_input(g, n, 0), *b = sh_node_input(g, n, 1);
    const sh_tensor *y = sh_node_output(g, n, 0);
    int64_t sa[SH_MAX_DIMS], sb[SH_MAX_DIMS];
    bcast_strides(&a->shape, &y->shape, sa);
    bcast_strides(&b->shape, &y->shape, sb);
    int64_t cnt = sh_shape_numel(&y->shape);
    for (int64_t i = 0; i < cnt; i++) {
        int64_t ia = offset_of(i, &y->shape, sa), ib = offset_of(i, &y->shape, sb);
        switch (y->dtype) {
#define ARITH(T, INTDIV)                                                                     \
        {                                                                                    \
            T x = ((const T *)a->data)[ia], z = ((const T *)b->data)[ib], r;                 \
            switch (n->op) {                                                                 \
            case SH_OP_ADD: r = x + z; break;                                                \
            case SH_OP_SUB: r = x - z; break;                                                \
            case SH_OP_MUL: r = x * z; break;                                                \
            default:                                                                         \
                if (INTDIV && z == 0)                                                        \
                    return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "integer division by zero (input '%s')", \
                                        b->name);                                            \
                r = x / z;                                                                   \
                break;                                                                       \
            }                                                                                \
            ((T *)dst)[i] = r;                                                               \
            break;                                                                           \
        }
        case SH_DT_FLOAT32: ARITH(float, 0)
        case SH_DT_FLOAT64: ARITH(double, 0)
        case SH_DT_INT32: ARITH(int32_t, 1)
        case SH_DT_INT64: ARITH(int64_t, 1)
#undef ARITH
        default:
            return 1;
        }
    }
    return 0;
}

/* Reads element i of a tensor of a numeric dtype as double (floats) or int64 (integers). */
static bool is_float(sh_dtype dt)
{
    return dt == SH_DT_FLOAT32 || dt == SH_DT_FLOAT64;
}

static bool load(const void *p, sh_dtype dt, int64_t i, double *f, int64_t *v)
{
    switch (dt) {
    case SH_DT_FLOAT32: *f = ((const float *)p)[i]; return true;
    case SH_DT_FLOAT64: *f = ((const double *)p)[i]; return true;
    case SH_DT_INT8: *v = ((const int8_t *)p)[i]; return true;
    case SH_DT_INT16: *v = ((const int16_t *)p)[i]; return true;
    case SH_DT_INT32: *v = ((const int32_t *)p)[i]; return true;
    case SH_DT_INT64: *v = ((const int64_t *)p)[i]; return true;
    case SH_DT_UINT8: *v = ((const uint8_t *)p)[i]; return true;
    case SH_DT_UINT16: *v = ((const uint16_t *)p)[i]; return true;
    case SH_DT_UINT32: *v = ((const uint32_t *)p)[i]; return true;
    case SH_DT_UINT64: *v = (int64_t)((const uint64_t *)p)[i]; return true;
    case SH_DT_BOOL: *v = ((const uint8_t *)p)[i] != 0; return true;
    default: return false;
    }
}

/* Cast: float -> integer truncates toward zero (C and ONNX Runtime); out-of-range values are
 * left to the backend (returns 1) rather than folded into undefined behaviour. */
static int cast(const sh_tensor *x, const sh_tensor *y, void *dst)
{
    int64_t cnt = sh_shape_numel(&y->shape);
    bool fin = is_float(x->dtype), fout = is_float(y->dtype);
    for (int64_t i = 0; i < cnt; i++) {
        double f = 0;
        int64_t v = 0;
        if (!load(x->data, x->dtype, i, &f, &v))
            return 1;
        if (y->dtype == SH_DT_BOOL) {
            ((uint8_t *)dst)[i] = fin ? f != 0.0 : v != 0;
            continue;
        }
        if (fout) {
            /* int64 -> float32 rounds once, as a kernel's (float)x does */
            if (y->dtype == SH_DT_FLOAT32)
                ((float *)dst)[i] = fin ? (x->dtype == SH_DT_FLOAT32 ? ((const float *)x->data)[i] : (float)f) : (float)v;
            else
                ((double *)dst)[i] = fin ? f : (double)v;
            continue;
        }
        if (fin) {
            if (!(f > -9.2e18 && f < 9.2e18))
                return 1;
            v = (int64_t)f;
        }
        switch (y->dtype) {
        case SH_DT_INT8: ((int8_t *)dst)[i] = (int8_t)v; break;
        case SH_DT_INT16: ((int16_t *)dst)[i] = (int16_t)v; break;
        case SH_DT_INT32: ((int32_t *)dst)[i] = (int32_t)v; break;
        case SH_DT_INT64: ((int64_t *)dst)[i] = v; break;
        case SH_DT_UINT8: ((uint8_t *)dst)[i] = (uint8_t)v; break;
        case SH_DT_UINT16: ((uint16_t *)dst)[i] = (uint16_t)v; break;
        case SH_DT_UINT32: ((uint32_t *)dst)[i] = (uint32_t)v; break;
        case SH_DT_UINT64: ((uint64_t *)dst)[i] = (uint64_t)v; break;
        default: return 1;
        }
    }
    return 0;
}

/* Range: start + i * delta, computed in double and stored in the output's dtype (the CPU
 * kernel computes the same). */
static int range(const sh_graph *g, const sh_node *n, const sh_tensor *y, void *dst)
{
    const sh_tensor *s = sh_node_input(g, n, 0), *d = sh_node_input(g, n, 2);
    double sf = 0, df = 0;
    int64_t sv = 0, dv = 0;
    if (!d || !d->data || !load(s->data, s->dtype, 0, &sf, &sv) || !load(d->data, d->dtype, 0, &df, &dv))
        return 1;
    int64_t cnt = sh_shape_numel(&y->shape);
    for (int64_t i = 0; i < cnt; i++)
        switch (y->dtype) {
        case SH_DT_FLOAT32: ((float *)dst)[i] = (float)(sf + (double)i * df); break;
        case SH_DT_FLOAT64: ((double *)dst)[i] = sf + (double)i * df; break;
        case SH_DT_INT16: ((int16_t *)dst)[i] = (int16_t)(sv + i * dv); break;
        case SH_DT_INT32: ((int32_t *)dst)[i] = (int32_t)(sv + i * dv); break;
        case SH_DT_INT64: ((int64_t *)dst)[i] = sv + i * dv; break;
        default: return 1;
        }
    return 0;
}

static int gather(const sh_graph *g, const sh_node *n, char *dst, size_t es, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *idx = sh_node_input(g, n, 1);
    int r = x->shape.ndim;
    int64_t axis = sh_node_int(n, "axis", 0);
    if (axis < 0)
        axis += r;
    int64_t outer = 1, inner = 1, dim = x->shape.d[axis];
    for (int i = 0; i < axis; i++)
        outer *= x->shape.d[i];
    for (int i = (int)axis + 1; i < r; i++)
        inner *= x->shape.d[i];
    int64_t ni = sh_shape_numel(&idx->shape);
    size_t row = (size_t)inner * es;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < ni; j++) {
            double f = 0;
            int64_t v = 0;
            load(idx->data, idx->dtype, j, &f, &v);
            if (v < 0)
                v += dim;
            if (v < 0 || v >= dim)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "index out of range in '%s'", idx->name);
            memcpy(dst + ((size_t)(o * ni + j)) * row, (const char *)x->data + ((size_t)(o * dim + v)) * row, row);
        }
    return 0;
}

static void concat(const sh_graph *g, const sh_node *n, char *dst, size_t es)
{
    const sh_tensor *y = sh_node_output(g, n, 0);
    int r = y->shape.ndim;
    int64_t axis = sh_node_int(n, "axis", 0);
    if (axis < 0)
        axis += r;
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < axis; i++)
        outer *= y->shape.d[i];
    for (int i = (int)axis + 1; i < r; i++)
        inner *= y->shape.d[i];
    size_t out_row = (size_t)(y->shape.d[axis] * inner) * es, at = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        const sh_tensor *x = sh_node_input(g, n, k);
        size_t in_row = (size_t)(x->shape.d[axis] * inner) * es;
        for (int64_t o = 0; o < outer; o++)
            memcpy(dst + (size_t)o * out_row + at, (const char *)x->data + (size_t)o * in_row, in_row);
        at += in_row;
    }
}

/* Generic strided gather: out element i comes from base + sum(idx_d * st[d]) elements. */
static void strided_copy(const char *src, int64_t base, const int64_t *st, const sh_shape *out, char *dst,
                         size_t es)
{
    int64_t cnt = sh_shape_numel(out);
    for (int64_t i = 0; i < cnt; i++) {
        int64_t off = base + offset_of(i, out, st);
        memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
    }
}

static void row_strides(const sh_shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int i = s->ndim - 1; i >= 0; i--) {
        st[i] = acc;
        acc *= s->d[i];
    }
}

int sh_fold_node(sh_graph *g, int k, size_t max_bytes, bool *folded, sh_err *err)
{
    *folded = false;
    const sh_node *n = &g->nodes[k];
    if (n->n_outputs != 1 || n->outputs[0] < 0)
        return 0;
    int yt = n->outputs[0];
    const sh_tensor *y = &g->tensors[yt];
    const sh_tensor *x = sh_node_input(g, n, 0);
    size_t es = sh_dtype_size(y->dtype), nbytes;
    int64_t cnt = sh_shape_numel(&y->shape);
    if (!es || cnt < 0 || !sh_mul_size((size_t)cnt, es, &nbytes) || nbytes > max_bytes)
        return 0;
    if (n->op != SH_OP_SHAPE && n->op != SH_OP_CONSTANT && (!x || !x->data))
        return 0;
    char *dst = sh_alloc(g->alloc, nbytes ? nbytes : 1);
    if (!dst)
        return sh_node_errf(err, SHOAL_ERR_NO_MEMORY, g, n, "out of memory folding '%s' (%zu bytes)", y->name, nbytes);
    int rc = 0;   /* 1 = not folded, < 0 = error */
    switch (n->op) {
    case SH_OP_CONSTANT: {
        const sh_attr *a = NULL;
        if ((a = sh_node_attr(n, "value"))) {
            memcpy(dst, g->tensors[a->tensor].data, nbytes);
        } else if ((a = sh_node_attr(n, "value_float"))) {
            memcpy(dst, &a->f, 4);
        } else if ((a = sh_node_attr(n, "value_floats"))) {
            memcpy(dst, a->floats, nbytes);
        } else if ((a = sh_node_attr(n, "value_int"))) {
            memcpy(dst, &a->i, 8);
        } else if ((a = sh_node_attr(n, "value_ints"))) {
            memcpy(dst, a->ints, nbytes);
        } else {
            rc = 1;
        }
        break;
    }
    case SH_OP_SHAPE: {
        int64_t r = x->shape.ndim, s = 0;
        if (n->opset >= 15) {
            s = sh_node_int(n, "start", 0);
            s = s < 0 ? s + r : s;
            s = s < 0 ? 0 : (s > r ? r : s);
        }
        for (int64_t i = 0; i < cnt; i++)
            ((int64_t *)dst)[i] = x->shape.d[s + i];
        break;
    }
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
        rc = binary(g, n, dst, err);
        break;
    case SH_OP_CAST:
        rc = cast(x, y, dst);
        break;
    case SH_OP_RANGE:
        rc = range(g, n, y, dst);
        break;
    case SH_OP_GATHER:
        rc = gather(g, n, dst, es, err);
        break;
    case SH_OP_CONCAT:
        concat(g, n, dst, es);
        break;
    case SH_OP_UNSQUEEZE: case SH_OP_SQUEEZE: case SH_OP_RESHAPE: case SH_OP_IDENTITY: case SH_OP_FLATTEN:
        memcpy(dst, x->data, nbytes);
        break;
    case SH_OP_SLICE: {
        sh_slice_geom sg;
        if ((rc = sh_node_slice_geom(g, k, &sg, err)))
            break;
        int64_t st[SH_MAX_DIMS], base = 0;
        row_strides(&x->shape, st);
        for (int i = 0; i < sg.ndim; i++) {
            base += sg.start[i] * st[i];
            st[i] *= sg.step[i];
        }
        strided_copy(x->data, base, st, &y->shape, dst, es);
        break;
    }
    case SH_OP_TRANSPOSE: {
        int r = x->shape.ndim, c;
        const int64_t *perm = sh_node_ints(n, "perm", &c);
        int64_t st[SH_MAX_DIMS], pst[SH_MAX_DIMS];
        row_strides(&x->shape, st);
        for (int i = 0; i < r; i++)
            pst[i] = st[perm ? perm[i] : r - 1 - i];
        strided_copy(x->data, 0, pst, &y->shape, dst, es);
        break;
    }
    case SH_OP_EXPAND: {
        int64_t st[SH_MAX_DIMS];
        bcast_strides(&x->shape, &y->shape, st);
        strided_copy(x->data, 0, st, &y->shape, dst, es);
        break;
    }
    case SH_OP_CONSTANT_OF_SHAPE: {
        const sh_attr *a = sh_node_attr(n, "value");
        char v[8] = {0};
        if (a)
            memcpy(v, g->tensors[a->tensor].data, es);
        for (int64_t i = 0; i < cnt; i++)
            memcpy(dst + (size_t)i * es, v, es);
        break;
    }
    default:
        rc = 1;
        break;
    }
    if (rc) {
        sh_free(g->alloc, dst);
        return rc < 0 ? rc : 0;
    }
    if ((rc = sh_graph_adopt_const(g, yt, dst, nbytes, err)))
        return rc;
    g->tensors[yt].producer = -1;
    g->nodes[k].dead = true;
    *folded = true;
    return 0;
}
