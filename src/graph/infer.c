/* Shape inference: dtype and static shape of every tensor, one node at a time in
 * topological order, following each op's ONNX definition at the since-version the importer
 * resolved (node->opset). Inputs that decide a shape (Reshape's shape, Slice's starts, Resize's
 * sizes, ...) must be constants by the time their node is reached; sh_graph_infer_fold
 * interleaves folding so the exporters' Shape -> Gather -> Concat plumbing becomes constant
 * first. */
#include "graph/frame_ops.h"
#include "graph/passes-impl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sh_node_errf(sh_err *err, int status, const sh_graph *g, const sh_node *n, const char *fmt, ...)
{
    (void)g;
    char msg[SH_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return sh_errf(err, status, "node '%s' (%s): %s", n->name, sh_op_name(n->op), msg);
}

sh_dtype sh_dtype_from_onnx(int64_t code)
{
    switch (code) {
    case 1: return SH_DT_FLOAT32;
    case 2: return SH_DT_UINT8;
    case 3: return SH_DT_INT8;
    case 4: return SH_DT_UINT16;
    case 5: return SH_DT_INT16;
    case 6: return SH_DT_INT32;
    case 7: return SH_DT_INT64;
    case 9: return SH_DT_BOOL;
    case 10: return SH_DT_FLOAT16;
    case 11: return SH_DT_FLOAT64;
    case 12: return SH_DT_UINT32;
    case 13: return SH_DT_UINT64;
    default: return SH_DT_UNDEFINED;
    }
}

/* The constant tensor t when it has one of the two dtypes and at most cap elements (its
 * element count in *n), else NULL. */
static const sh_tensor *const_of(const sh_graph *g, int t, sh_dtype a, sh_dtype b, int cap, int64_t *n)
{
    if (t < 0)
        return NULL;
    const sh_tensor *x = &g->tensors[t];
    if (!x->is_const || (x->dtype != a && x->dtype != b))
        return NULL;
    *n = sh_shape_numel(&x->shape);
    return *n < 0 || *n > cap ? NULL : x;
}

int sh_const_ints(const sh_graph *g, int t, int64_t *out, int cap)
{
    int64_t n;
    const sh_tensor *x = const_of(g, t, SH_DT_INT64, SH_DT_INT32, cap, &n);
    if (!x)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        if (x->dtype == SH_DT_INT64) {
            memcpy(&out[i], (const char *)x->data + i * 8, 8);
        } else {
            int32_t v;
            memcpy(&v, (const char *)x->data + i * 4, 4);
            out[i] = v;
        }
    }
    return (int)n;
}

int sh_const_floats(const sh_graph *g, int t, float *out, int cap)
{
    int64_t n;
    const sh_tensor *x = const_of(g, t, SH_DT_FLOAT32, SH_DT_FLOAT64, cap, &n);
    if (!x)
        return -1;
    for (int64_t i = 0; i < n; i++) {
        if (x->dtype == SH_DT_FLOAT32) {
            memcpy(&out[i], (const char *)x->data + i * 4, 4);
        } else {
            double v;
            memcpy(&v, (const char *)x->data + i * 8, 8);
            out[i] = (float)v;
        }
    }
    return (int)n;
}

bool sh_shape_broadcast(const sh_shape *a, const sh_shape *b, sh_shape *out)
{
    int r = a->ndim > b->ndim ? a->ndim : b->ndim;
    sh_shape o = {r, {0}};
    for (int i = 0; i < r; i++) {
        int ia = i - (r - a->ndim), ib = i - (r - b->ndim);
        int64_t da = ia >= 0 ? a->d[ia] : 1, db = ib >= 0 ? b->d[ib] : 1;
        if (da == db || db == 1)
            o.d[i] = da;
        else if (da == 1)
            o.d[i] = db;
        else
            return false;
    }
    *out = o;
    return true;
}

/* --- small helpers ---------------------------------------------------------------------- */

static const char *shp(const sh_shape *s, char *buf)
{
    return sh_shape_str(s, buf, 128);
}

int sh_infer_set_out(sh_graph *g, const sh_node *n, int i, sh_dtype dt, const sh_shape *s)
{
    if (i >= n->n_outputs || n->outputs[i] < 0)
        return 0;
    sh_tensor *y = &g->tensors[n->outputs[i]];
    y->dtype = dt;
    y->shape = *s;
    return 0;
}

/* Normalises axis a into [0, r); false when out of range. */
static bool norm_axis(int64_t *a, int r)
{
    if (*a < -r || *a >= r)
        return false;
    if (*a < 0)
        *a += r;
    return true;
}

/* Input i as a constant integer list (its values are needed to know the output shape). */
/* Attribute `axis` (default 0) of n normalised against x's rank into *axis; SHOAL_ERR_SHAPE
 * naming the node, the attribute's value and x when it is out of range. */
static int axis_attr(const sh_graph *g, const sh_node *n, const sh_tensor *x, int64_t *axis, sh_err *err)
{
    char b1[128];
    *axis = sh_node_int(n, "axis", 0);
    if (!norm_axis(axis, x->shape.ndim))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s",
                            (long long)sh_node_int(n, "axis", 0), x->name, shp(&x->shape, b1));
    return 0;
}

static int need_ints(const sh_graph *g, const sh_node *n, int i, const char *what, int64_t *out, int cap,
                     int *count, sh_err *err)
{
    int t = i < n->n_inputs ? n->inputs[i] : -1;
    int c = sh_const_ints(g, t, out, cap);
    if (c < 0) {
        if (t >= 0 && !g->tensors[t].is_const)
            return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n,
                                "%s input '%s' is not a constant (its value must be known to infer shapes)", what,
                                g->tensors[t].name);
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%s input '%s' must be a constant int64 list of at most %d values",
                            what, t >= 0 ? g->tensors[t].name : "(missing)", cap);
    }
    *count = c;
    return 0;
}

int sh_infer_need_input(const sh_graph *g, const sh_node *n, int i, const sh_tensor **x, sh_err *err)
{
    *x = sh_node_input(g, n, i);
    if (!*x)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "input %d is missing", i);
    if ((*x)->shape.ndim < 0)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' has no inferred shape", (*x)->name);
    return 0;
}

static bool present(const sh_graph *g, const sh_node *n, int i)
{
    const sh_tensor *x = sh_node_input(g, n, i);
    return x && !(x->is_const && sh_shape_numel(&x->shape) == 0);
}

/* --- geometry ------------------------------------------------------------------------- */

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int sh_node_window_geom(const sh_graph *g, int node, sh_window_geom *geom, sh_err *err)
{
    const sh_node *n = &g->nodes[node];
    const sh_tensor *x, *w = NULL;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    bool conv = n->op == SH_OP_CONV || n->op == SH_OP_CONV_TRANSPOSE || n->op == SH_OP_CONV_INTEGER ||
                n->op == SH_OP_QLINEAR_CONV;
    char b1[128], b2[128];
    if (x->shape.ndim < 3)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' %s needs rank >= 3 (N, C, spatial...)", x->name,
                            shp(&x->shape, b1));
    memset(geom, 0, sizeof *geom);
    int ns = x->shape.ndim - 2;
    geom->n = ns;
    geom->group = sh_node_int(n, "group", 1);
    geom->ceil_mode = sh_node_int(n, "ceil_mode", 0) != 0;
    int cnt;
    const int64_t *ks = sh_node_ints(n, "kernel_shape", &cnt);
    if (conv) {
        if ((rc = sh_infer_need_input(g, n, n->op == SH_OP_QLINEAR_CONV ? 3 : 1, &w, err)))
            return rc;
        if (w->shape.ndim != x->shape.ndim)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "weight '%s' %s and input '%s' %s differ in rank", w->name,
                                shp(&w->shape, b1), x->name, shp(&x->shape, b2));
        for (int i = 0; i < ns; i++)
            geom->kernel[i] = w->shape.d[2 + i];
        if (ks && cnt == ns)
            for (int i = 0; i < ns; i++)
                if (ks[i] != geom->kernel[i])
                    return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "kernel_shape disagrees with weight '%s' %s",
                                        w->name, shp(&w->shape, b1));
    } else {
        if (!ks || cnt != ns)
            return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "kernel_shape needs %d values for input '%s' %s", ns,
                                x->name, shp(&x->shape, b1));
        for (int i = 0; i < ns; i++)
            geom->kernel[i] = ks[i];
    }
    const int64_t *st = sh_node_ints(n, "strides", &cnt);
    if (st && cnt != ns)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "strides has %d values, expected %d", cnt, ns);
    const int64_t *dl = sh_node_ints(n, "dilations", &cnt);
    if (dl && cnt != ns)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "dilations has %d values, expected %d", cnt, ns);
    const int64_t *pd = sh_node_ints(n, "pads", &cnt);
    if (pd && cnt != 2 * ns)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "pads has %d values, expected %d", cnt, 2 * ns);
    const int64_t *op = sh_node_ints(n, "output_padding", &cnt);
    if (op && cnt != ns)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "output_padding has %d values, expected %d", cnt, ns);
    int nos;
    const int64_t *os = sh_node_ints(n, "output_shape", &nos);
    if (os && nos < ns)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "output_shape has %d values, expected %d", nos, ns);
    const char *ap = sh_node_string(n, "auto_pad", "NOTSET");
    bool same_upper = strcmp(ap, "SAME_UPPER") == 0, same_lower = strcmp(ap, "SAME_LOWER") == 0;
    bool valid = strcmp(ap, "VALID") == 0;
    if (!same_upper && !same_lower && !valid && strcmp(ap, "NOTSET") != 0)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "auto_pad '%s'", ap);
    for (int i = 0; i < ns; i++) {
        int64_t in = x->shape.d[2 + i];
        int64_t k = geom->kernel[i], s = st ? st[i] : 1, d = dl ? dl[i] : 1;
        if (k < 1 || s < 1 || d < 1)
            return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "kernel %lld, stride %lld, dilation %lld must be >= 1",
                                (long long)k, (long long)s, (long long)d);
        int64_t dk = (k - 1) * d + 1;
        int64_t pb = pd ? pd[i] : 0, pe = pd ? pd[ns + i] : 0;
        int64_t opad = op ? op[i] : 0;
        int64_t out;
        geom->in[i] = in;
        geom->stride[i] = s;
        geom->dilation[i] = d;
        geom->out_pad[i] = opad;
        if (n->op == SH_OP_CONV_TRANSPOSE) {
            if (os || same_upper || same_lower) {
                out = os ? os[nos - ns + i] : in * s;
                int64_t total = s * (in - 1) + opad + dk - out;
                if (total < 0)
                    total = 0;
                /* ONNX Runtime: SAME_UPPER pads more at the head, otherwise at the tail. */
                if (same_upper) {
                    pb = total - total / 2;
                    pe = total / 2;
                } else {
                    pb = total / 2;
                    pe = total - total / 2;
                }
            } else {
                if (valid)
                    pb = pe = 0;
                out = s * (in - 1) + opad + dk - pb - pe;
            }
        } else if (same_upper || same_lower) {
            out = (in + s - 1) / s;
            int64_t total = (out - 1) * s + dk - in;
            if (total < 0)
                total = 0;
            pb = same_upper ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            if (valid)
                pb = pe = 0;
            int64_t span = in + pb + pe - dk;
            if (span < 0)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n,
                                    "input '%s' %s: spatial dim %d (%lld + pads %lld+%lld) is smaller than the %skernel %lld",
                                    x->name, shp(&x->shape, b1), i, (long long)in, (long long)pb, (long long)pe,
                                    d > 1 ? "dilated " : "", (long long)dk);
            if (geom->ceil_mode) {
                out = (span + s - 1) / s + 1;
                /* the last window must start inside the input or the left padding */
                if ((out - 1) * s >= in + pb)
                    out--;
            } else {
                out = floordiv(span, s) + 1;
            }
        }
        if (out < 1)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' %s gives output dim %d = %lld", x->name,
                                shp(&x->shape, b1), i, (long long)out);
        geom->pad_begin[i] = pb;
        geom->pad_end[i] = pe;
        geom->out[i] = out;
    }
    return 0;
}

int sh_node_slice_geom(const sh_graph *g, int node, sh_slice_geom *sg, sh_err *err)
{
    const sh_node *n = &g->nodes[node];
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int r = x->shape.ndim;
    int64_t starts[SH_MAX_DIMS], ends[SH_MAX_DIMS], axes[SH_MAX_DIMS], steps[SH_MAX_DIMS];
    int ns, ne, na = -1, nst = -1;
    if (n->opset < 10) {
        const int64_t *p = sh_node_ints(n, "starts", &ns);
        const int64_t *q = sh_node_ints(n, "ends", &ne);
        if (!p || !q || ns > SH_MAX_DIMS || ne > SH_MAX_DIMS)
            return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "needs attributes starts and ends (at most %d)", SH_MAX_DIMS);
        memcpy(starts, p, (size_t)ns * 8);
        memcpy(ends, q, (size_t)ne * 8);
        const int64_t *a = sh_node_ints(n, "axes", &na);
        if (a) {
            if (na > SH_MAX_DIMS)
                return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "too many axes");
            memcpy(axes, a, (size_t)na * 8);
        } else {
            na = -1;
        }
    } else {
        if ((rc = need_ints(g, n, 1, "starts", starts, SH_MAX_DIMS, &ns, err)) ||
            (rc = need_ints(g, n, 2, "ends", ends, SH_MAX_DIMS, &ne, err)))
            return rc;
        if (n->n_inputs > 3 && n->inputs[3] >= 0 && (rc = need_ints(g, n, 3, "axes", axes, SH_MAX_DIMS, &na, err)))
            return rc;
        if (n->n_inputs > 4 && n->inputs[4] >= 0 && (rc = need_ints(g, n, 4, "steps", steps, SH_MAX_DIMS, &nst, err)))
            return rc;
    }
    if (ns != ne || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "starts, ends, axes and steps differ in length (%d, %d, %d, %d)",
                            ns, ne, na, nst);
    sg->ndim = r;
    for (int i = 0; i < r; i++) {
        sg->start[i] = 0;
        sg->step[i] = 1;
        sg->count[i] = x->shape.d[i];
    }
    bool seen[SH_MAX_DIMS] = {false};
    for (int i = 0; i < ns; i++) {
        int64_t a = na >= 0 ? axes[i] : i;
        if (!norm_axis(&a, r))
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for input '%s' of rank %d",
                                (long long)(na >= 0 ? axes[i] : i), x->name, r);
        if (seen[a])
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld repeated", (long long)a);
        seen[a] = true;
        int64_t dim = x->shape.d[a], s = nst >= 0 ? steps[i] : 1;
        if (s == 0)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "step 0 on axis %lld", (long long)a);
        int64_t b = starts[i], e = ends[i];
        if (b < 0)
            b += dim;   /* clamped below; INT64_MIN + dim does not overflow */
        if (e < 0)
            e += dim;
        int64_t count;
        if (s > 0) {
            b = b < 0 ? 0 : (b > dim ? dim : b);
            e = e < 0 ? 0 : (e > dim ? dim : e);
            count = e > b ? (e - b + s - 1) / s : 0;
        } else {
            b = b < 0 ? 0 : (b > dim - 1 ? dim - 1 : b);
            e = e < -1 ? -1 : (e > dim - 1 ? dim - 1 : e);
            count = b > e ? (b - e + (-s) - 1) / (-s) : 0;
        }
        sg->start[a] = count ? b : 0;
        sg->step[a] = s;
        sg->count[a] = count;
    }
    return 0;
}

/* --- per-op inference ----------------------------------------------------------------- */

static int infer_binary(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *a, *b;
    int rc;
    if ((rc = sh_infer_need_input(g, n, 0, &a, err)) || (rc = sh_infer_need_input(g, n, 1, &b, err)))
        return rc;
    char b1[128], b2[128];
    if (a->dtype != b->dtype)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "inputs '%s' (%s) and '%s' (%s) differ in dtype", a->name,
                            sh_dtype_name(a->dtype), b->name, sh_dtype_name(b->dtype));
    sh_shape o;
    if (!sh_shape_broadcast(&a->shape, &b->shape, &o))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "inputs '%s' %s and '%s' %s do not broadcast", a->name,
                            shp(&a->shape, b1), b->name, shp(&b->shape, b2));
    return sh_infer_set_out(g, n, 0, a->dtype, &o);
}

int sh_infer_conv_weight(const sh_graph *g, const sh_node *n, const sh_tensor *x, const sh_tensor *w, int64_t group,
                         sh_err *err)
{
    char b1[128], b2[128];
    if (group < 1 || w->shape.d[1] * group != x->shape.d[1] || w->shape.d[0] % group)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "weight '%s' %s does not fit input '%s' %s with group %lld",
                            w->name, shp(&w->shape, b1), x->name, shp(&x->shape, b2), (long long)group);
    return 0;
}

sh_shape sh_window_out_shape(const sh_shape *x, int64_t channels, const sh_window_geom *geo)
{
    sh_shape o = *x;
    o.d[1] = channels;
    for (int i = 0; i < geo->n; i++)
        o.d[2 + i] = geo->out[i];
    return o;
}

static int infer_conv(sh_graph *g, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_window_geom geo;
    int rc = sh_node_window_geom(g, k, &geo, err);
    if (rc)
        return rc;
    const sh_tensor *x = sh_node_input(g, n, 0), *w = sh_node_input(g, n, 1);
    char b1[128], b2[128];
    int64_t c = x->shape.d[1], m;
    if (geo.group < 1)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "group %lld", (long long)geo.group);
    if (n->op == SH_OP_CONV) {
        m = w->shape.d[0];
        if ((rc = sh_infer_conv_weight(g, n, x, w, geo.group, err)))
            return rc;
    } else {
        m = w->shape.d[1] * geo.group;
        if (w->shape.d[0] != c)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "weight '%s' %s does not fit input '%s' %s", w->name,
                                shp(&w->shape, b1), x->name, shp(&x->shape, b2));
    }
    const sh_tensor *b = sh_node_input(g, n, 2);
    if (b && (b->shape.ndim != 1 || b->shape.d[0] != m))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "bias '%s' %s, expected [%lld]", b->name, shp(&b->shape, b1),
                            (long long)m);
    sh_shape o = sh_window_out_shape(&x->shape, m, &geo);
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_pool(sh_graph *g, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_window_geom geo;
    int rc = sh_node_window_geom(g, k, &geo, err);
    if (rc)
        return rc;
    const sh_tensor *x = sh_node_input(g, n, 0);
    sh_shape o = sh_window_out_shape(&x->shape, x->shape.d[1], &geo);
    sh_infer_set_out(g, n, 0, x->dtype, &o);
    return sh_infer_set_out(g, n, 1, SH_DT_INT64, &o);   /* MaxPool Indices */
}

static int infer_concat(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *a;
    int rc = sh_infer_need_input(g, n, 0, &a, err);
    if (rc)
        return rc;
    const sh_attr *at = sh_node_attr(n, "axis");
    if (!at)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute axis is required");
    int64_t axis = at->i;
    char b1[128], b2[128];
    if (!norm_axis(&axis, a->shape.ndim))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s", (long long)at->i, a->name,
                            shp(&a->shape, b1));
    sh_shape o = a->shape;
    o.d[axis] = 0;
    for (int i = 0; i < n->n_inputs; i++) {
        const sh_tensor *x;
        if ((rc = sh_infer_need_input(g, n, i, &x, err)))
            return rc;
        if (x->dtype != a->dtype)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' is %s, '%s' is %s", x->name,
                                sh_dtype_name(x->dtype), a->name, sh_dtype_name(a->dtype));
        bool ok = x->shape.ndim == a->shape.ndim;
        for (int d = 0; ok && d < a->shape.ndim; d++)
            ok = d == axis || x->shape.d[d] == a->shape.d[d];
        if (!ok)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' %s does not match '%s' %s off axis %lld",
                                x->name, shp(&x->shape, b1), a->name, shp(&a->shape, b2), (long long)axis);
        o.d[axis] += x->shape.d[axis];
    }
    return sh_infer_set_out(g, n, 0, a->dtype, &o);
}

static int infer_split(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    int64_t axis;
    if (rc || (rc = axis_attr(g, n, x, &axis, err)))
        return rc;
    char b1[128];
    int64_t dim = x->shape.d[axis];
    int no = n->n_outputs;
    int64_t sizes[64];
    int cnt = -1;
    if (no > 64)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "%d outputs (at most 64)", no);
    if (n->opset >= 13) {
        if (n->n_inputs > 1 && n->inputs[1] >= 0 && (rc = need_ints(g, n, 1, "split", sizes, 64, &cnt, err)))
            return rc;
    } else {
        const int64_t *s = sh_node_ints(n, "split", &cnt);
        if (s && cnt <= 64)
            memcpy(sizes, s, (size_t)cnt * 8);
        else if (!s)
            cnt = -1;
    }
    if (cnt > 0) {
        int64_t sum = 0;
        for (int i = 0; i < cnt; i++) {
            if (sizes[i] < 0)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "negative split size %lld", (long long)sizes[i]);
            sum += sizes[i];
        }
        if (cnt != no || sum != dim)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n,
                                "split sizes (%d, summing to %lld) do not fit %d outputs and dim %lld of '%s' %s", cnt,
                                (long long)sum, no, (long long)dim, x->name, shp(&x->shape, b1));
    } else {
        int64_t num = n->opset >= 18 ? sh_node_int(n, "num_outputs", no) : no;
        if (num != no || no < 1)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "num_outputs %lld but %d outputs", (long long)num, no);
        if (n->opset >= 18 && sh_node_attr(n, "num_outputs")) {
            int64_t chunk = (dim + no - 1) / no;
            for (int i = 0; i < no; i++) {
                int64_t left = dim - chunk * i;
                sizes[i] = left < 0 ? 0 : (left < chunk ? left : chunk);
            }
        } else {
            if (dim % no)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "dim %lld of '%s' %s does not split evenly into %d",
                                    (long long)dim, x->name, shp(&x->shape, b1), no);
            for (int i = 0; i < no; i++)
                sizes[i] = dim / no;
        }
    }
    for (int i = 0; i < no; i++) {
        sh_shape o = x->shape;
        o.d[axis] = sizes[i];
        sh_infer_set_out(g, n, i, x->dtype, &o);
    }
    return 0;
}

static int infer_slice(sh_graph *g, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_slice_geom sg;
    int rc = sh_node_slice_geom(g, k, &sg, err);
    if (rc)
        return rc;
    const sh_tensor *x = sh_node_input(g, n, 0);
    sh_shape o = x->shape;
    for (int i = 0; i < o.ndim; i++)
        o.d[i] = sg.count[i];
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_resize(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int r = x->shape.ndim;
    char b1[128];
    float scales[SH_MAX_DIMS];
    int64_t sizes[SH_MAX_DIMS], axes[SH_MAX_DIMS];
    int nsc = 0, nsz = 0, na = r;
    for (int i = 0; i < r; i++)
        axes[i] = i;
    int ia = 0;
    const int64_t *ax = n->op == SH_OP_RESIZE && n->opset >= 18 ? sh_node_ints(n, "axes", &ia) : NULL;
    if (ax) {
        if (ia > r)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%d axes for rank %d", ia, r);
        na = ia;
        for (int i = 0; i < na; i++) {
            axes[i] = ax[i];
            if (!norm_axis(&axes[i], r))
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range", (long long)ax[i]);
        }
    }
    int si = -1, zi = -1;  /* input slots of scales and sizes */
    if (n->op == SH_OP_UPSAMPLE) {
        if (n->opset < 9) {
            int c;
            const sh_attr *a = sh_node_attr(n, "scales");
            if (!a || a->type != SH_ATTR_FLOATS || a->n != r)
                return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute scales needs %d floats", r);
            (void)c;
            memcpy(scales, a->floats, (size_t)r * sizeof(float));
            nsc = r;
        } else {
            si = 1;
        }
    } else if (n->opset < 11) {
        si = 1;
    } else {
        si = 2;
        zi = 3;
    }
    if (si >= 0 && present(g, n, si)) {
        nsc = sh_const_floats(g, n->inputs[si], scales, SH_MAX_DIMS);
        if (nsc < 0)
            return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "scales input '%s' is not a constant float list",
                                g->tensors[n->inputs[si]].name);
    }
    if (zi >= 0 && present(g, n, zi) && (rc = need_ints(g, n, zi, "sizes", sizes, SH_MAX_DIMS, &nsz, err)))
        return rc;
    if ((nsc > 0) == (nsz > 0))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "exactly one of scales and sizes must be given");
    if ((nsc > 0 && nsc != na) || (nsz > 0 && nsz != na))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%d scales/sizes for '%s' %s (%d axes)", nsc ? nsc : nsz, x->name,
                            shp(&x->shape, b1), na);
    sh_shape o = x->shape;
    const char *ctm = sh_node_string(n, "coordinate_transformation_mode", "half_pixel");
    float roi[2 * SH_MAX_DIMS];
    int nroi = 0;
    bool crop = n->op == SH_OP_RESIZE && n->opset >= 11 && strcmp(ctm, "tf_crop_and_resize") == 0;
    if (crop && present(g, n, 1))
        nroi = sh_const_floats(g, n->inputs[1], roi, 2 * SH_MAX_DIMS);
    if (nsz > 0) {
        const char *pol = n->opset >= 18 ? sh_node_string(n, "keep_aspect_ratio_policy", "stretch") : "stretch";
        if (strcmp(pol, "stretch") == 0) {
            for (int i = 0; i < na; i++)
                o.d[axes[i]] = sizes[i];
        } else {
            bool larger = strcmp(pol, "not_smaller") == 0;
            float s = larger ? 0.0f : INFINITY;
            for (int i = 0; i < na; i++) {
                float v = (float)sizes[i] / (float)x->shape.d[axes[i]];
                s = larger ? fmaxf(s, v) : fminf(s, v);
            }
            for (int i = 0; i < na; i++)
                o.d[axes[i]] = (int64_t)roundf(s * (float)x->shape.d[axes[i]]);
        }
    } else {
        for (int i = 0; i < na; i++) {
            if (!(scales[i] > 0.0f))
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "scale %g must be positive", (double)scales[i]);
            /* what ONNX Runtime computes: float product, truncated */
            float v = (float)x->shape.d[axes[i]] * scales[i];
            if (crop && nroi == 2 * na)
                v = (float)x->shape.d[axes[i]] * (roi[na + i] - roi[i]) * scales[i];
            o.d[axes[i]] = (int64_t)floorf(v);
        }
    }
    for (int i = 0; i < r; i++)
        if (o.d[i] < 0)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "negative output dim for '%s' %s", x->name, shp(&x->shape, b1));
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_reshape(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int64_t want[SH_MAX_DIMS];
    int c;
    char b1[128];
    if (n->opset < 5) {
        const int64_t *s = sh_node_ints(n, "shape", &c);
        if (!s || c > SH_MAX_DIMS)
            return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute shape missing or too long");
        memcpy(want, s, (size_t)c * 8);
    } else if ((rc = need_ints(g, n, 1, "shape", want, SH_MAX_DIMS, &c, err))) {
        return rc;
    }
    bool allowzero = n->opset >= 14 && sh_node_int(n, "allowzero", 0) != 0;
    sh_shape o = {c, {0}};
    int infer_at = -1;
    int64_t known = 1;
    for (int i = 0; i < c; i++) {
        int64_t v = want[i];
        if (v == 0 && !allowzero) {
            if (i >= x->shape.ndim)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "shape[%d] = 0 copies a dim '%s' %s does not have", i,
                                    x->name, shp(&x->shape, b1));
            v = x->shape.d[i];
        } else if (v == -1) {
            if (infer_at >= 0)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "shape has more than one -1");
            infer_at = i;
            v = 1;
        } else if (v < 0) {
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "shape[%d] = %lld", i, (long long)v);
        }
        o.d[i] = v;
        known *= v;
    }
    int64_t total = sh_shape_numel(&x->shape);
    if (infer_at >= 0) {
        if (known == 0 || total % known)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "cannot infer -1: '%s' %s has %lld elements, the rest %lld",
                                x->name, shp(&x->shape, b1), (long long)total, (long long)known);
        o.d[infer_at] = total / known;
    } else if (known != total) {
        char b2[128];
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "cannot reshape '%s' %s (%lld elements) to %s", x->name,
                            shp(&x->shape, b1), (long long)total, shp(&o, b2));
    }
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_transpose(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int r = x->shape.ndim, c;
    const int64_t *perm = sh_node_ints(n, "perm", &c);
    sh_shape o = {r, {0}};
    bool seen[SH_MAX_DIMS] = {false};
    char b1[128];
    if (perm && c != r)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "perm has %d values for '%s' %s", c, x->name, shp(&x->shape, b1));
    for (int i = 0; i < r; i++) {
        int64_t p = perm ? perm[i] : r - 1 - i;
        if (p < 0 || p >= r || seen[p])
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "perm is not a permutation of 0..%d", r - 1);
        seen[p] = true;
        o.d[i] = x->shape.d[p];
    }
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_matmul(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *a, *b;
    int rc;
    if ((rc = sh_infer_need_input(g, n, 0, &a, err)) || (rc = sh_infer_need_input(g, n, 1, &b, err)))
        return rc;
    char b1[128], b2[128];
    sh_shape sa = a->shape, sb = b->shape;
    if (sa.ndim < 1 || sb.ndim < 1)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "scalar input ('%s' %s, '%s' %s)", a->name, shp(&sa, b1), b->name,
                            shp(&sb, b2));
    bool a1 = sa.ndim == 1, b1d = sb.ndim == 1;
    sh_shape_matmul_promote(&sa, &sb);
    if (sa.d[sa.ndim - 1] != sb.d[sb.ndim - 2])
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "inner dims differ: '%s' %s x '%s' %s", a->name,
                            shp(&a->shape, b1), b->name, shp(&b->shape, b2));
    sh_shape ba = {sa.ndim - 2, {0}}, bb = {sb.ndim - 2, {0}}, bo;
    memcpy(ba.d, sa.d, (size_t)ba.ndim * 8);
    memcpy(bb.d, sb.d, (size_t)bb.ndim * 8);
    if (!sh_shape_broadcast(&ba, &bb, &bo))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "batch dims of '%s' %s and '%s' %s do not broadcast", a->name,
                            shp(&a->shape, b1), b->name, shp(&b->shape, b2));
    if (a->dtype != b->dtype)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "inputs differ in dtype");
    sh_shape o = bo;
    if (o.ndim + 2 > SH_MAX_DIMS)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "rank too high");
    if (!a1)
        o.d[o.ndim++] = sa.d[sa.ndim - 2];
    if (!b1d)
        o.d[o.ndim++] = sb.d[sb.ndim - 1];
    return sh_infer_set_out(g, n, 0, a->dtype, &o);
}

static int infer_gemm(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *a, *b;
    int rc;
    if ((rc = sh_infer_need_input(g, n, 0, &a, err)) || (rc = sh_infer_need_input(g, n, 1, &b, err)))
        return rc;
    char b1[128], b2[128];
    if (a->shape.ndim != 2 || b->shape.ndim != 2)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "inputs '%s' %s and '%s' %s must be 2-D", a->name,
                            shp(&a->shape, b1), b->name, shp(&b->shape, b2));
    bool ta = sh_node_int(n, "transA", 0) != 0, tb = sh_node_int(n, "transB", 0) != 0;
    int64_t m = a->shape.d[ta ? 1 : 0], ka = a->shape.d[ta ? 0 : 1];
    int64_t kb = b->shape.d[tb ? 1 : 0], nn = b->shape.d[tb ? 0 : 1];
    if (ka != kb)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "inner dims differ: '%s' %s%s x '%s' %s%s", a->name,
                            shp(&a->shape, b1), ta ? "^T" : "", b->name, shp(&b->shape, b2), tb ? "^T" : "");
    sh_shape o = {2, {m, nn}}, t;
    const sh_tensor *c = sh_node_input(g, n, 2);
    if (c && (!sh_shape_broadcast(&c->shape, &o, &t) || !sh_shape_equal(&t, &o)))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "bias '%s' %s does not broadcast to %s", c->name,
                            shp(&c->shape, b1), shp(&o, b2));
    return sh_infer_set_out(g, n, 0, a->dtype, &o);
}

static int read_axes(sh_graph *g, const sh_node *n, int since_input, int slot, int64_t *axes, int *na, sh_err *err)
{
    *na = -1;
    if (n->opset >= since_input) {
        if (n->n_inputs > slot && n->inputs[slot] >= 0)
            return need_ints(g, n, slot, "axes", axes, SH_MAX_DIMS, na, err);
        return 0;
    }
    int c;
    const int64_t *a = sh_node_ints(n, "axes", &c);
    if (a) {
        if (c > SH_MAX_DIMS)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "too many axes (%d)", c);
        memcpy(axes, a, (size_t)c * 8);
        *na = c;
    }
    return 0;
}

static int infer_unsqueeze(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int64_t axes[SH_MAX_DIMS];
    int na;
    if ((rc = read_axes(g, n, 13, 1, axes, &na, err)))
        return rc;
    if (na < 1)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "axes are required");
    int r = x->shape.ndim + na;
    if (r > SH_MAX_DIMS)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "output rank %d > %d", r, SH_MAX_DIMS);
    bool ins[SH_MAX_DIMS] = {false};
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i];
        if (!norm_axis(&a, r) || ins[a])
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range or repeated for output rank %d",
                                (long long)axes[i], r);
        ins[a] = true;
    }
    sh_shape o = {r, {0}};
    for (int i = 0, j = 0; i < r; i++)
        o.d[i] = ins[i] ? 1 : x->shape.d[j++];
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_squeeze(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int64_t axes[SH_MAX_DIMS];
    int na;
    if ((rc = read_axes(g, n, 13, 1, axes, &na, err)))
        return rc;
    int r = x->shape.ndim;
    bool drop[SH_MAX_DIMS] = {false};
    char b1[128];
    if (na <= 0) {
        for (int i = 0; i < r; i++)
            drop[i] = x->shape.d[i] == 1;
    } else {
        for (int i = 0; i < na; i++) {
            int64_t a = axes[i];
            if (!norm_axis(&a, r))
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s", (long long)axes[i],
                                    x->name, shp(&x->shape, b1));
            if (x->shape.d[a] != 1)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "dim %lld of '%s' %s is not 1", (long long)a, x->name,
                                    shp(&x->shape, b1));
            drop[a] = true;
        }
    }
    sh_shape o = {0, {0}};
    for (int i = 0; i < r; i++)
        if (!drop[i])
            o.d[o.ndim++] = x->shape.d[i];
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_gather(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x, *idx;
    int rc;
    int64_t axis;
    if ((rc = sh_infer_need_input(g, n, 0, &x, err)) || (rc = sh_infer_need_input(g, n, 1, &idx, err)) ||
        (rc = axis_attr(g, n, x, &axis, err)))
        return rc;
    char b1[128];
    int r = x->shape.ndim;
    if (idx->dtype != SH_DT_INT64 && idx->dtype != SH_DT_INT32)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "indices '%s' are %s, not int32/int64", idx->name,
                            sh_dtype_name(idx->dtype));
    int ro = r - 1 + idx->shape.ndim;
    if (ro > SH_MAX_DIMS)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "output rank %d", ro);
    sh_shape o = {0, {0}};
    for (int i = 0; i < axis; i++)
        o.d[o.ndim++] = x->shape.d[i];
    for (int i = 0; i < idx->shape.ndim; i++)
        o.d[o.ndim++] = idx->shape.d[i];
    for (int i = (int)axis + 1; i < r; i++)
        o.d[o.ndim++] = x->shape.d[i];
    if (idx->is_const) {
        int64_t dim = x->shape.d[axis], v;
        int64_t cnt = sh_shape_numel(&idx->shape);
        for (int64_t i = 0; i < cnt; i++) {
            if (idx->dtype == SH_DT_INT64) {
                memcpy(&v, (const char *)idx->data + i * 8, 8);
            } else {
                int32_t v32;
                memcpy(&v32, (const char *)idx->data + i * 4, 4);
                v = v32;
            }
            if (v < -dim || v >= dim)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "index %lld in '%s' out of range for dim %lld of '%s' %s",
                                    (long long)v, idx->name, (long long)dim, x->name, shp(&x->shape, b1));
        }
    }
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_pad(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int r = x->shape.ndim, c;
    int64_t pads[2 * SH_MAX_DIMS], axes[SH_MAX_DIMS];
    char b1[128];
    if (n->opset < 11) {
        const int64_t *p = sh_node_ints(n, "pads", &c);
        if (!p)
            p = sh_node_ints(n, "paddings", &c);
        if (!p || c > 2 * SH_MAX_DIMS)
            return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute pads missing");
        memcpy(pads, p, (size_t)c * 8);
    } else if ((rc = need_ints(g, n, 1, "pads", pads, 2 * SH_MAX_DIMS, &c, err))) {
        return rc;
    }
    int na = r;
    for (int i = 0; i < r; i++)
        axes[i] = i;
    if (n->opset >= 18 && n->n_inputs > 3 && n->inputs[3] >= 0) {
        if ((rc = need_ints(g, n, 3, "axes", axes, SH_MAX_DIMS, &na, err)))
            return rc;
        for (int i = 0; i < na; i++)
            if (!norm_axis(&axes[i], r))
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis out of range");
    }
    if (c != 2 * na)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%d pads for '%s' %s (%d axes)", c, x->name, shp(&x->shape, b1), na);
    sh_shape o = x->shape;
    for (int i = 0; i < na; i++) {
        o.d[axes[i]] += pads[i] + pads[na + i];
        if (o.d[axes[i]] < 0)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "pads make dim %lld of '%s' %s negative", (long long)axes[i],
                                x->name, shp(&x->shape, b1));
    }
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_reduce(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int64_t axes[SH_MAX_DIMS];
    int na;
    if ((rc = read_axes(g, n, 18, 1, axes, &na, err)))
        return rc;
    bool keep = sh_node_int(n, "keepdims", 1) != 0;
    int r = x->shape.ndim;
    bool red[SH_MAX_DIMS] = {false};
    char b1[128];
    if (na <= 0) {
        if (!(n->opset >= 18 && sh_node_int(n, "noop_with_empty_axes", 0)))
            for (int i = 0; i < r; i++)
                red[i] = true;
    }
    for (int i = 0; i < na; i++) {
        int64_t a = axes[i];
        if (!norm_axis(&a, r))
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s", (long long)axes[i],
                                x->name, shp(&x->shape, b1));
        red[a] = true;
    }
    sh_shape o = {0, {0}};
    for (int i = 0; i < r; i++) {
        if (!red[i])
            o.d[o.ndim++] = x->shape.d[i];
        else if (keep)
            o.d[o.ndim++] = 1;
    }
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_constant(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_attr *a = NULL;
    static const char *const names[] = {"value", "value_float", "value_floats", "value_int", "value_ints"};
    int which = -1;
    for (int i = 0; i < 5 && !a; i++)
        if ((a = sh_node_attr(n, names[i])))
            which = i;
    sh_shape o = {0, {0}};
    switch (which) {
    case 0:
        if (a->type != SH_ATTR_TENSOR || a->tensor < 0 || !g->tensors[a->tensor].is_const)
            return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute value is not a tensor");
        return sh_infer_set_out(g, n, 0, g->tensors[a->tensor].dtype, &g->tensors[a->tensor].shape);
    case 1: return sh_infer_set_out(g, n, 0, SH_DT_FLOAT32, &o);
    case 3: return sh_infer_set_out(g, n, 0, SH_DT_INT64, &o);
    case 2: case 4:
        o.ndim = 1;
        o.d[0] = a->n;
        return sh_infer_set_out(g, n, 0, which == 2 ? SH_DT_FLOAT32 : SH_DT_INT64, &o);
    default:
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "no supported value attribute");
    }
}

/* --- selection ops of end-to-end detection heads ------------------------------------------ */

static int infer_topk(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int64_t k;
    int c;
    if ((rc = need_ints(g, n, 1, "K", &k, 1, &c, err)))
        return rc;
    char b1[128];
    int64_t axis = sh_node_int(n, "axis", -1);
    if (c != 1 || !norm_axis(&axis, x->shape.ndim))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "needs one K and an axis within '%s' %s", x->name,
                            shp(&x->shape, b1));
    if (k < 0 || k > x->shape.d[axis])
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "K %lld outside [0, %lld] for '%s' %s", (long long)k,
                            (long long)x->shape.d[axis], x->name, shp(&x->shape, b1));
    sh_shape o = x->shape;
    o.d[axis] = k;
    sh_infer_set_out(g, n, 1, SH_DT_INT64, &o);
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

/* Inputs 0 (data) and 1 (int32/int64 indices) of GatherElements / GatherND. */
static int need_data_indices(const sh_graph *g, const sh_node *n, const sh_tensor **x, const sh_tensor **idx,
                             sh_err *err)
{
    int rc;
    if ((rc = sh_infer_need_input(g, n, 0, x, err)) || (rc = sh_infer_need_input(g, n, 1, idx, err)))
        return rc;
    if ((*idx)->dtype != SH_DT_INT64 && (*idx)->dtype != SH_DT_INT32)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "indices '%s' are %s, not int32/int64", (*idx)->name,
                            sh_dtype_name((*idx)->dtype));
    return 0;
}

static int infer_gather_elements(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x, *idx;
    int rc = need_data_indices(g, n, &x, &idx, err);
    if (rc)
        return rc;
    char b1[128], b2[128];
    int64_t axis = sh_node_int(n, "axis", 0);
    if (idx->shape.ndim != x->shape.ndim || !norm_axis(&axis, x->shape.ndim))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "indices '%s' %s and data '%s' %s need the same rank and a valid axis",
                            idx->name, shp(&idx->shape, b1), x->name, shp(&x->shape, b2));
    for (int i = 0; i < x->shape.ndim; i++)
        if (i != axis && idx->shape.d[i] > x->shape.d[i])
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "indices '%s' %s exceed data '%s' %s on axis %d", idx->name,
                                shp(&idx->shape, b1), x->name, shp(&x->shape, b2), i);
    return sh_infer_set_out(g, n, 0, x->dtype, &idx->shape);
}

static int infer_gather_nd(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x, *idx;
    int rc = need_data_indices(g, n, &x, &idx, err);
    if (rc)
        return rc;
    char b1[128], b2[128];
    int64_t b = sh_node_int(n, "batch_dims", 0);
    int r = x->shape.ndim, q = idx->shape.ndim;
    int64_t last = q > 0 ? idx->shape.d[q - 1] : -1;
    if (q < 1 || b < 0 || b >= q || b >= r || last < 1 || b + last > r)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "indices '%s' %s do not address data '%s' %s with batch_dims %lld",
                            idx->name, shp(&idx->shape, b1), x->name, shp(&x->shape, b2), (long long)b);
    for (int i = 0; i < b; i++)
        if (idx->shape.d[i] != x->shape.d[i])
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "batch dim %d differs: '%s' %s, '%s' %s", i, idx->name,
                                shp(&idx->shape, b1), x->name, shp(&x->shape, b2));
    sh_shape o = {0, {0}};
    if (q - 1 + r - (b + last) > SH_MAX_DIMS)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "output rank over %d", SH_MAX_DIMS);
    for (int i = 0; i < q - 1; i++)
        o.d[o.ndim++] = idx->shape.d[i];
    for (int64_t i = b + last; i < r; i++)
        o.d[o.ndim++] = x->shape.d[i];
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

static int infer_argmax(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int64_t axis;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc || (rc = axis_attr(g, n, x, &axis, err)))
        return rc;
    bool keep = sh_node_int(n, "keepdims", 1) != 0;
    sh_shape o = {0, {0}};
    for (int i = 0; i < x->shape.ndim; i++)
        if (i != axis)
            o.d[o.ndim++] = x->shape.d[i];
        else if (keep)
            o.d[o.ndim++] = 1;
    return sh_infer_set_out(g, n, 0, SH_DT_INT64, &o);
}

static int infer_tile(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc = sh_infer_need_input(g, n, 0, &x, err);
    if (rc)
        return rc;
    int64_t rep[SH_MAX_DIMS];
    int c;
    if ((rc = need_ints(g, n, 1, "repeats", rep, SH_MAX_DIMS, &c, err)))
        return rc;
    char b1[128];
    if (c != x->shape.ndim)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%d repeats for '%s' %s", c, x->name, shp(&x->shape, b1));
    sh_shape o = x->shape;
    for (int i = 0; i < c; i++) {
        if (rep[i] < 0 || (rep[i] && o.d[i] > INT64_MAX / rep[i]))
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "repeat %lld on axis %d of '%s' %s", (long long)rep[i], i,
                                x->name, shp(&x->shape, b1));
        o.d[i] *= rep[i];
    }
    return sh_infer_set_out(g, n, 0, x->dtype, &o);
}

/* The element count needs the three scalars: a static-shape engine folds Range once the
 * input size is known (dynamic exports build their anchor grids with it). */
static int infer_range(sh_graph *g, const sh_node *n, sh_err *err)
{
    double v[3];
    sh_dtype dt = SH_DT_UNDEFINED;
    static const char *const what[] = {"start", "limit", "delta"};
    for (int i = 0; i < 3; i++) {
        const sh_tensor *t = sh_node_input(g, n, i);
        if (!t || !t->is_const || !t->data || sh_shape_numel(&t->shape) != 1)
            return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n,
                                "%s '%s' is not a constant scalar (its value must be known to infer shapes)", what[i],
                                t ? t->name : "(missing)");
        if (i == 0)
            dt = t->dtype;
        else if (t->dtype != dt)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%s '%s' is %s, start is %s", what[i], t->name,
                                sh_dtype_name(t->dtype), sh_dtype_name(dt));
        v[i] = sh_dtype_load_f64(t->data, t->dtype, 0);
    }
    if (dt != SH_DT_FLOAT32 && dt != SH_DT_FLOAT64 && dt != SH_DT_INT16 && dt != SH_DT_INT32 && dt != SH_DT_INT64)
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "dtype %s", sh_dtype_name(dt));
    if (v[2] == 0 || isnan(v[0] + v[1] + v[2]))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "delta %g from %g to %g gives no count", v[2], v[0], v[1]);
    double cnt = ceil((v[1] - v[0]) / v[2]);
    if (!(cnt < (double)(1 << 30)))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "%g elements", cnt);
    sh_shape o = {1, {cnt > 0 ? (int64_t)cnt : 0}};
    return sh_infer_set_out(g, n, 0, dt, &o);
}

static int infer_node_op(sh_graph *g, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    const sh_tensor *x = NULL;
    int rc;
    char b1[128];
    switch (n->op) {
    case SH_OP_CONV:
    case SH_OP_CONV_TRANSPOSE:
        return infer_conv(g, k, err);
    case SH_OP_MAX_POOL:
    case SH_OP_AVERAGE_POOL:
        return infer_pool(g, k, err);
    case SH_OP_BATCH_NORM: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        if (x->shape.ndim < 2)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' %s needs rank >= 2", x->name, shp(&x->shape, b1));
        for (int i = 1; i < 5; i++) {
            const sh_tensor *p = sh_node_input(g, n, i);
            if (!p || p->shape.ndim != 1 || p->shape.d[0] != x->shape.d[1])
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "parameter %d '%s' must be [%lld]", i,
                                    p ? p->name : "(missing)", (long long)x->shape.d[1]);
        }
        sh_shape c = {1, {x->shape.d[1]}};
        for (int i = 1; i < n->n_outputs; i++)
            sh_infer_set_out(g, n, i, x->dtype, &c);
        return sh_infer_set_out(g, n, 0, x->dtype, &x->shape);
    }
    case SH_OP_RELU: case SH_OP_SIGMOID: case SH_OP_HARD_SIGMOID: case SH_OP_HARD_SWISH:
    case SH_OP_CLIP: case SH_OP_EXP: case SH_OP_SILU: case SH_OP_IDENTITY:
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        return sh_infer_set_out(g, n, 0, x->dtype, &x->shape);
    case SH_OP_SOFTMAX: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        int64_t axis = sh_node_int(n, "axis", n->opset < 13 ? 1 : -1);
        if (!norm_axis(&axis, x->shape.ndim))
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s",
                                (long long)sh_node_int(n, "axis", 1), x->name, shp(&x->shape, b1));
        return sh_infer_set_out(g, n, 0, x->dtype, &x->shape);
    }
    case SH_OP_ADD: case SH_OP_SUB: case SH_OP_MUL: case SH_OP_DIV:
        return infer_binary(g, n, err);
    case SH_OP_CONCAT: return infer_concat(g, n, err);
    case SH_OP_SPLIT: return infer_split(g, n, err);
    case SH_OP_SLICE: return infer_slice(g, k, err);
    case SH_OP_GLOBAL_AVERAGE_POOL: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        if (x->shape.ndim < 3)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' %s needs rank >= 3", x->name, shp(&x->shape, b1));
        sh_shape o = x->shape;
        for (int i = 2; i < o.ndim; i++)
            o.d[i] = 1;
        return sh_infer_set_out(g, n, 0, x->dtype, &o);
    }
    case SH_OP_RESIZE: case SH_OP_UPSAMPLE: return infer_resize(g, n, err);
    case SH_OP_RESHAPE: return infer_reshape(g, n, err);
    case SH_OP_TRANSPOSE: return infer_transpose(g, n, err);
    case SH_OP_MATMUL: return infer_matmul(g, n, err);
    case SH_OP_GEMM: return infer_gemm(g, n, err);
    case SH_OP_FLATTEN: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        int r = x->shape.ndim;
        int64_t axis = sh_node_int(n, "axis", 1);
        if (axis < -r || axis > r)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s", (long long)axis, x->name,
                                shp(&x->shape, b1));
        if (axis < 0)
            axis += r;
        sh_shape o = {2, {1, 1}};
        for (int i = 0; i < r; i++)
            o.d[i < axis ? 0 : 1] *= x->shape.d[i];
        return sh_infer_set_out(g, n, 0, x->dtype, &o);
    }
    case SH_OP_CONSTANT: return infer_constant(g, n, err);
    case SH_OP_CONSTANT_OF_SHAPE: {
        int64_t dims[SH_MAX_DIMS];
        int c;
        if ((rc = need_ints(g, n, 0, "shape", dims, SH_MAX_DIMS, &c, err)))
            return rc;
        sh_shape o = {c, {0}};
        for (int i = 0; i < c; i++) {
            if (dims[i] < 0)
                return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "negative dim %lld", (long long)dims[i]);
            o.d[i] = dims[i];
        }
        sh_dtype dt = SH_DT_FLOAT32;
        const sh_attr *v = sh_node_attr(n, "value");
        if (v) {
            if (v->type != SH_ATTR_TENSOR || v->tensor < 0 || sh_shape_numel(&g->tensors[v->tensor].shape) != 1)
                return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute value must be a one-element tensor");
            dt = g->tensors[v->tensor].dtype;
        }
        return sh_infer_set_out(g, n, 0, dt, &o);
    }
    case SH_OP_SHAPE: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        int64_t r = x->shape.ndim, s = 0, e = r;
        if (n->opset >= 15) {
            s = sh_node_int(n, "start", 0);
            e = sh_node_int(n, "end", r);
            s = s < 0 ? s + r : s;
            e = e < 0 ? e + r : e;
            s = s < 0 ? 0 : (s > r ? r : s);
            e = e < 0 ? 0 : (e > r ? r : e);
        }
        sh_shape o = {1, {e > s ? e - s : 0}};
        return sh_infer_set_out(g, n, 0, SH_DT_INT64, &o);
    }
    case SH_OP_GATHER: return infer_gather(g, n, err);
    case SH_OP_UNSQUEEZE: return infer_unsqueeze(g, n, err);
    case SH_OP_SQUEEZE: return infer_squeeze(g, n, err);
    case SH_OP_EXPAND: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        int64_t dims[SH_MAX_DIMS];
        int c;
        if ((rc = need_ints(g, n, 1, "shape", dims, SH_MAX_DIMS, &c, err)))
            return rc;
        sh_shape s = {c, {0}}, o;
        memcpy(s.d, dims, (size_t)c * 8);
        char b2[128];
        if (!sh_shape_broadcast(&x->shape, &s, &o))
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "'%s' %s does not broadcast with shape %s", x->name,
                                shp(&x->shape, b1), shp(&s, b2));
        return sh_infer_set_out(g, n, 0, x->dtype, &o);
    }
    case SH_OP_CAST: {
        if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
            return rc;
        int64_t to = sh_node_int(n, "to", 0);
        sh_dtype dt = sh_dtype_from_onnx(to);
        if (dt == SH_DT_UNDEFINED)
            return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "cast to ONNX type %lld", (long long)to);
        return sh_infer_set_out(g, n, 0, dt, &x->shape);
    }
    case SH_OP_PAD: return infer_pad(g, n, err);
    case SH_OP_REDUCE_MEAN: case SH_OP_REDUCE_MAX: return infer_reduce(g, n, err);
    case SH_OP_MOD: return infer_binary(g, n, err);
    case SH_OP_TOPK: return infer_topk(g, n, err);
    case SH_OP_GATHER_ELEMENTS: return infer_gather_elements(g, n, err);
    case SH_OP_GATHER_ND: return infer_gather_nd(g, n, err);
    case SH_OP_ARGMAX: return infer_argmax(g, n, err);
    case SH_OP_TILE: return infer_tile(g, n, err);
    case SH_OP_RANGE: return infer_range(g, n, err);
    case SH_OP_FRAME_TO_TENSOR: case SH_OP_FRAME_DECODE: case SH_OP_FRAME_NMS: case SH_OP_FRAME_MASKS:
    case SH_OP_FRAME_LANDMARKS: case SH_OP_FRAME_CROP:
        return sh_infer_frame_op(g, n, err);
    default:
        if (n->op >= SH_OP_QUANTIZE_LINEAR && n->op < SH_OP_COUNT)
            return sh_infer_quant_node(g, k, err);
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "no shape inference for this op");
    }
}

int sh_infer_node(sh_graph *g, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    for (int i = 0; i < n->n_outputs; i++) {
        if (n->outputs[i] < 0)
            continue;
        sh_tensor *y = &g->tensors[n->outputs[i]];
        y->shape.ndim = -1;
    }
    int rc = infer_node_op(g, k, err);
    if (rc)
        return rc;
    for (int i = 0; i < n->n_outputs; i++) {
        if (n->outputs[i] < 0)
            continue;
        sh_tensor *y = &g->tensors[n->outputs[i]];
        if (y->shape.ndim < 0)
            return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "output %d '%s' is not produced by this op", i, y->name);
        if (sh_shape_numel(&y->shape) < 0) {
            char b1[128];
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "output '%s' has shape %s", y->name, shp(&y->shape, b1));
        }
    }
    return 0;
}

/* --- the driver ------------------------------------------------------------------------ */

sh_optimize_params sh_optimize_default_params(void)
{
    sh_optimize_params p = {.fold_constants = true, .fuse = true, .fold_max_bytes = 16u << 20, .fold_qdq = true};
    return p;
}

int sh_graph_infer_fold(sh_graph *g, const sh_optimize_params *p, sh_err *err)
{
    sh_optimize_params def = sh_optimize_default_params();
    if (!p)
        p = &def;
    int rc = sh_graph_finalize(g, err);
    if (rc)
        return rc;
    char b1[128];
    for (int i = 0; i < g->n_inputs; i++) {
        const sh_tensor *x = &g->tensors[g->inputs[i]];
        if (x->is_const)
            continue;
        bool ok = x->shape.ndim >= 0 && x->dtype != SH_DT_UNDEFINED;
        for (int d = 0; ok && d < x->shape.ndim; d++)
            ok = x->shape.d[d] >= 0;
        if (!ok)
            return sh_errf(err, SHOAL_ERR_SHAPE, "graph input '%s' has shape %s (%s): inputs need static shapes", x->name,
                           x->shape.ndim < 0 ? "unknown" : shp(&x->shape, b1), sh_dtype_name(x->dtype));
    }
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead)
            continue;
        if ((rc = sh_infer_node(g, k, err)))
            return rc;
        sh_op op = g->nodes[k].op;
        if (op != SH_OP_CONSTANT && !(p->fold_constants && sh_fold_supported(op)))
            continue;
        const sh_node *n = &g->nodes[k];
        bool all_const = true;
        for (int i = 0; i < n->n_inputs && all_const; i++)
            all_const = n->inputs[i] < 0 || g->tensors[n->inputs[i]].is_const;
        if (!all_const && op != SH_OP_SHAPE)
            continue;
        bool folded;
        size_t cap = op == SH_OP_CONSTANT ? SIZE_MAX : p->fold_max_bytes;
        if ((rc = sh_fold_node(g, k, cap, &folded, err)))
            return rc;
    }
    return sh_graph_finalize(g, err);
}

int sh_graph_infer_shapes(sh_graph *g, sh_err *err)
{
    sh_optimize_params p = sh_optimize_default_params();
    return sh_graph_infer_fold(g, &p, err);
}
