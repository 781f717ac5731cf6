/* Data movement with a layout change: Concat, Split, Slice, Transpose, Pad. Byte-generic
 * (any element size), rows of the last dim copied at once where the layout allows. */
#include "backends/cpu/cpu_impl.h"

#include <string.h>

/* ---- Concat / Split ---------------------------------------------------------------------- */

#define MAX_PARTS 64

typedef struct cat_params {
    int whole;                       /* Concat output / Split input */
    int n;
    int parts[MAX_PARTS];
    int64_t part_len[MAX_PARTS];     /* elements of each part per outer index */
    int64_t outer, whole_len;
    int64_t inner;                   /* elements after the axis (NCHW channels: H*W) */
    size_t es;
    bool split;
} cat_params;

typedef struct cat_job {
    const cat_params *p;
    void *const *t;
} cat_job;

/* Outer indices [o0, o1) of every part: one contiguous run each side. In NCHW a channel
 * Concat has one outer index per image and long runs; in NHWC one per pixel and runs of a
 * part's channels. A copy is memory-bound: the pool gets chunks of 256 KiB or more, so small
 * ones stay on the calling thread. */
static void cat_range(void *arg, int64_t o0, int64_t o1, int tid)
{
    const cat_job *j = arg;
    const cat_params *p = j->p;
    unsigned char *whole = j->t[p->whole];
    size_t es = p->es;
    /* Outer index first, parts inside: the whole tensor is walked once, front to back, instead
     * of once per part (NHWC parts are a few cache lines per pixel). */
    for (int64_t o = o0; o < o1; o++) {
        unsigned char *w = whole + (size_t)(o * p->whole_len) * es;
        for (int i = 0; i < p->n; i++) {
            size_t len = (size_t)p->part_len[i] * es;
            unsigned char *q = (unsigned char *)j->t[p->parts[i]] + (size_t)o * len;
            /* a part that is a view of the whole (cpu_cat_views) is already in place */
            if (len && q != w && p->split)
                memcpy(q, w, len);
            else if (len && q != w)
                memcpy(w, q, len);
            w += len;
        }
    }
    (void)tid;
}

static int cat_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const cat_params *p = vp;
    cat_job j = {.p = p, .t = ex->t};
    size_t row = (size_t)p->whole_len * p->es;
    cpu_parallel_for(ex->ctx->pool, p->outer, 1 + (int64_t)(262144 / (row + 1)), cat_range, &j);
    return 0;
}

/* A channel Concat/Split of one image in NHWC: per pixel, each part's channels in turn. */
static void cat_to_nhwc(sh_program *prog, int k, void *vp, bool in_nhwc, bool out_nhwc)
{
    cat_params *p = vp;
    for (int i = 0; i < p->n; i++)
        p->part_len[i] /= p->inner;
    p->whole_len /= p->inner;
    p->outer *= p->inner;
    p->inner = 1;
    (void)prog;
    (void)k;
    (void)in_nhwc;
    (void)out_nhwc;
}

static int prep_cat(cpu_prep *pp, bool split, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *W = split ? cpu_in(pp, 0) : cpu_out(pp, 0);
    int R = W->shape.ndim;
    int axis = cpu_axis(sh_node_int(n, "axis", split ? 0 : 1), R);
    if (axis < 0 || (!split && !sh_node_attr(n, "axis") && n->opset >= 4))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "bad axis for rank %d", R);
    int np = split ? n->n_outputs : n->n_inputs;
    if (np > MAX_PARTS)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%d parts (max %d)", np, MAX_PARTS);
    cat_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->whole = split ? n->inputs[0] : n->outputs[0];
    p->es = sh_dtype_size(W->dtype);
    p->split = split;
    int64_t inner = 1;
    p->outer = 1;
    for (int d = 0; d < axis; d++)
        p->outer *= W->shape.d[d];
    for (int d = axis + 1; d < R; d++)
        inner *= W->shape.d[d];
    p->inner = inner;
    p->whole_len = W->shape.d[axis] * inner;
    int64_t sum = 0;
    bool any_const = W->is_const;
    for (int i = 0; i < np; i++) {
        const sh_tensor *t = split ? cpu_out(pp, i) : cpu_in(pp, i);
        if (!t)
            continue;
        any_const |= t->is_const;
        if (t->shape.ndim != R || t->dtype != W->dtype)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "part %d has rank %d/dtype %s", i, t->shape.ndim,
                           sh_dtype_name(t->dtype));
        p->parts[p->n] = split ? n->outputs[i] : n->inputs[i];
        p->part_len[p->n++] = t->shape.d[axis] * inner;
        sum += t->shape.d[axis];
    }
    if (sum != W->shape.d[axis])
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "parts sum to %lld along axis %d, whole has %lld", (long long)sum,
                       axis, (long long)W->shape.d[axis]);
    pp->fn = cat_run;
    /* A constant part would have to be laid out at pack time: such a Concat stays NCHW. */
    if (axis == 1 && R == 4 && W->shape.d[0] == 1 && W->dtype == SH_DT_FLOAT32 && inner > 0 && !any_const) {
        pp->layout = CPU_LAYOUT_FOLLOWS;
        pp->to_nhwc = cat_to_nhwc;
    }
    return 0;
}

int cpu_prep_concat(cpu_prep *pp, sh_err *err)
{
    return prep_cat(pp, false, err);
}

int cpu_prep_split(cpu_prep *pp, sh_err *err)
{
    /* The output shapes already carry the split sizes (attribute, input or num_outputs). */
    return prep_cat(pp, true, err);
}

/* A part may share the whole's bytes when it is one contiguous run of them: a single outer
 * index (leading dims all 1 in NCHW: YOLO's head Concat of box and class maps and the Split
 * back into them), whatever layout the pass chose, since NHWC makes outer the pixel count.
 * Constants, graph inputs and graph outputs keep their copies (they are bound to memory the
 * caller or the weight store owns), as do a part that already is a view of something else
 * and a tensor a Concat takes twice. The planner then gives the whole's block one lifetime
 * covering every part, and a part, having no bytes of its own, is never reused in place. */
static bool cat_view_ok(const sh_graph *g, const sh_program *prog, int t)
{
    const sh_tensor *x = &g->tensors[t];
    return t >= 0 && !x->is_const && !x->is_input && !x->is_output && prog->alias_of[t] < 0 &&
           prog->tensor_bytes[t] > 0;
}

void cpu_cat_views(const sh_graph *g, sh_program *prog, cpu_kernel_fn fn, void *params)
{
    if (fn != cat_run)
        return;
    const cat_params *p = params;
    const sh_tensor *w = &g->tensors[p->whole];
    /* the whole may itself be a view (a Split of a Reshape, a Concat taken in place by the
     * next): the chains are flattened after this pass */
    if (p->outer != 1 || w->is_const || w->is_input || w->is_output || prog->tensor_bytes[p->whole] == 0)
        return;
    size_t off = 0;
    for (int i = 0; i < p->n; i++) {
        int t = p->parts[i];
        size_t len = (size_t)p->part_len[i] * p->es;
        bool twice = false;
        for (int j = 0; j < p->n; j++)
            twice |= j != i && p->parts[j] == t;
        if (!twice && cat_view_ok(g, prog, t) && prog->tensor_bytes[t] == len) {
            prog->alias_of[t] = p->whole;
            prog->alias_offset[t] = off;
        }
        off += len;
    }
}

/* ---- strided gather: Slice and Transpose ----------------------------------------------------- */

typedef struct strided_params {
    int x, y;
    int nd;
    int64_t dims[SH_MAX_DIMS];       /* output dims */
    int64_t st[SH_MAX_DIMS];         /* input stride (elements) per output dim, may be negative */
    int64_t base;                    /* input offset of output element 0 */
    int64_t rows, inner;
    size_t es;
} strided_params;

static int strided_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const strided_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    int64_t ist = p->st[p->nd - 1];
    size_t es = p->es;
    for (int64_t r = 0; r < p->rows; r++) {
        int64_t off = p->base + cpu_row_offset(p->nd, p->dims, p->st, r);
        unsigned char *dst = y + (size_t)(r * p->inner) * es;
        if (ist == 1) {
            memcpy(dst, x + (size_t)off * es, (size_t)p->inner * es);
        } else if (es == 4) {
            const uint32_t *s = (const uint32_t *)x + off;
            uint32_t *dd = (uint32_t *)dst;
            for (int64_t i = 0; i < p->inner; i++)
                dd[i] = s[i * ist];
        } else {
            for (int64_t i = 0; i < p->inner; i++)
                memcpy(dst + (size_t)i * es, x + (size_t)(off + i * ist) * es, es);
        }
    }
    return 0;
}

static void strided_finish(strided_params *p, int nd)
{
    if (nd == 0) {
        p->dims[0] = 1;
        p->st[0] = 1;
        nd = 1;
    }
    p->nd = nd;
    p->inner = p->dims[nd - 1];
    int64_t total = 1;
    for (int d = 0; d < nd; d++)
        total *= p->dims[d];
    p->rows = p->inner ? total / p->inner : 0;
}

int cpu_prep_slice(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    int R = X->shape.ndim;
    int64_t starts[SH_MAX_DIMS], ends[SH_MAX_DIMS], axes[SH_MAX_DIMS], steps[SH_MAX_DIMS];
    int ns, ne, na = -1, nst = -1;
    if (n->opset < 10) {
        const int64_t *a = sh_node_ints(n, "starts", &ns);
        const int64_t *b = sh_node_ints(n, "ends", &ne);
        int c;
        const int64_t *ax = sh_node_ints(n, "axes", &c);
        if (!a || !b || ns > SH_MAX_DIMS || ne != ns)
            return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "starts/ends attributes");
        memcpy(starts, a, (size_t)ns * sizeof(int64_t));
        memcpy(ends, b, (size_t)ne * sizeof(int64_t));
        if (ax) {
            if (c != ns)
                return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "axes attribute");
            memcpy(axes, ax, (size_t)c * sizeof(int64_t));
            na = c;
        }
    } else {
        if ((ns = cpu_const_ints(pp, 1, starts, SH_MAX_DIMS, err)) < 0)
            return ns;
        if ((ne = cpu_const_ints(pp, 2, ends, SH_MAX_DIMS, err)) < 0)
            return ne;
        if (cpu_in(pp, 3) && (na = cpu_const_ints(pp, 3, axes, SH_MAX_DIMS, err)) < 0)
            return na;
        if (cpu_in(pp, 4) && (nst = cpu_const_ints(pp, 4, steps, SH_MAX_DIMS, err)) < 0)
            return nst;
        if (ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "starts/ends/axes/steps lengths differ");
    }
    strided_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    p->es = sh_dtype_size(X->dtype);
    int64_t ist[SH_MAX_DIMS], st0[SH_MAX_DIMS], step[SH_MAX_DIMS];
    cpu_strides(&X->shape, ist);
    for (int d = 0; d < R; d++) {
        st0[d] = 0;
        step[d] = 1;
        p->dims[d] = X->shape.d[d];
    }
    bool seen[SH_MAX_DIMS] = {false};
    for (int i = 0; i < ns; i++) {
        int a = cpu_axis(na >= 0 ? axes[i] : i, R);
        if (a < 0 || seen[a])
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "bad or repeated axis %lld", (long long)(na >= 0 ? axes[i] : i));
        seen[a] = true;
        int64_t dim = X->shape.d[a], s = starts[i], e = ends[i], k = nst >= 0 ? steps[i] : 1;
        if (k == 0)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "step 0 on axis %d", a);
        if (s < 0)
            s += dim;
        if (e < 0)
            e += dim;
        if (k > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
        } else {
            s = s < 0 ? 0 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
        }
        int64_t cnt = k > 0 ? (e - s + k - 1) / k : (s - e + (-k) - 1) / (-k);
        st0[a] = s;
        step[a] = k;
        p->dims[a] = cnt < 0 ? 0 : cnt;
    }
    for (int d = 0; d < R; d++) {
        if (p->dims[d] != Y->shape.d[d])
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output dim %d is %lld, slice gives %lld", d,
                           (long long)Y->shape.d[d], (long long)p->dims[d]);
        p->st[d] = ist[d] * step[d];
        if (p->dims[d] > 0)
            p->base += st0[d] * ist[d];
    }
    strided_finish(p, R);
    pp->fn = strided_run;
    return 0;
}

int cpu_prep_transpose(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    int R = X->shape.ndim, cnt;
    const int64_t *perm = sh_node_ints(pp->n, "perm", &cnt);
    if (perm && cnt != R)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "perm has %d values for rank %d", cnt, R);
    strided_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->es = sh_dtype_size(X->dtype);
    int64_t ist[SH_MAX_DIMS];
    cpu_strides(&X->shape, ist);
    bool used[SH_MAX_DIMS] = {false};
    for (int d = 0; d < R; d++) {
        int s = perm ? cpu_axis(perm[d], R) : R - 1 - d;
        if (s < 0 || used[s])
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "perm is not a permutation");
        used[s] = true;
        p->dims[d] = X->shape.d[s];
        p->st[d] = ist[s];
        if (p->dims[d] != Y->shape.d[d])
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output dim %d is %lld, perm gives %lld", d,
                           (long long)Y->shape.d[d], (long long)p->dims[d]);
    }
    strided_finish(p, R);
    pp->fn = strided_run;
    return 0;
}

/* ---- Pad ------------------------------------------------------------------------------------------ */

enum { PAD_CONSTANT, PAD_REFLECT, PAD_EDGE, PAD_WRAP };

typedef struct pad_params {
    int x, y, value_t;               /* value_t: constant_value input or -1 */
    int mode, nd;
    int64_t in[SH_MAX_DIMS], out[SH_MAX_DIMS], pb[SH_MAX_DIMS];
    size_t es;
    double value;
} pad_params;

/* Input coordinate of output coordinate o along one axis, or -1 for the constant. */
static inline int64_t pad_map(int64_t o, int64_t pb, int64_t in, int mode)
{
    int64_t i = o - pb;
    if (i >= 0 && i < in)
        return i;
    if (in == 0)
        return -1;
    switch (mode) {
    case PAD_EDGE: return i < 0 ? 0 : in - 1;
    case PAD_WRAP: return ((i % in) + in) % in;
    case PAD_REFLECT: {
        if (in == 1)
            return 0;
        int64_t period = 2 * (in - 1);
        i = ((i % period) + period) % period;
        return i < in ? i : period - i;
    }
    default: return -1;
    }
}

static void store_value(unsigned char *dst, size_t es, int64_t n, const unsigned char *v)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(dst + (size_t)i * es, v, es);
}

static int pad_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const pad_params *p = vp;
    const unsigned char *x = ex->t[p->x];
    unsigned char *y = ex->t[p->y];
    size_t es = p->es;
    unsigned char val[8] = {0};
    double v = p->value;
    if (p->value_t >= 0) {
        memcpy(val, ex->t[p->value_t], es);
    } else {
        if (es == 4) {
            float f = (float)v;
            /* int32 data gets an int32 value; float32 a float */
            if (ex->g->tensors[p->x].dtype == SH_DT_INT32) {
                int32_t iv = (int32_t)v;
                memcpy(val, &iv, 4);
            } else {
                memcpy(val, &f, 4);
            }
        } else {
            int64_t iv = (int64_t)v;
            memcpy(val, &iv, 8);
        }
    }
    int nd = p->nd;
    int64_t W = p->out[nd - 1], rows = 1;
    for (int d = 0; d < nd - 1; d++)
        rows *= p->out[d];
    if (W == 0)
        return 0;
    int64_t ist[SH_MAX_DIMS];
    int64_t acc = 1;
    for (int d = nd - 1; d >= 0; d--) {
        ist[d] = acc;
        acc *= p->in[d];
    }
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, rem = r;
        bool outside = false;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t c = rem % p->out[d];
            rem /= p->out[d];
            int64_t i = pad_map(c, p->pb[d], p->in[d], p->mode);
            if (i < 0)
                outside = true;
            else
                off += i * ist[d];
        }
        unsigned char *dst = y + (size_t)(r * W) * es;
        if (outside) {
            store_value(dst, es, W, val);
            continue;
        }
        const unsigned char *src = x + (size_t)off * es;
        for (int64_t o = 0; o < W; o++) {
            int64_t i = pad_map(o, p->pb[nd - 1], p->in[nd - 1], p->mode);
            if (i < 0)
                memcpy(dst + (size_t)o * es, val, es);
            else
                memcpy(dst + (size_t)o * es, src + (size_t)i * es, es);
        }
    }
    return 0;
}

int cpu_prep_pad(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    int R = X->shape.ndim;
    if (R == 0)
        return cpu_prep_view(pp, err);
    const char *mode = sh_node_string(n, "mode", "constant");
    int m = !strcmp(mode, "constant") ? PAD_CONSTANT : !strcmp(mode, "reflect") ? PAD_REFLECT
          : !strcmp(mode, "edge") ? PAD_EDGE : !strcmp(mode, "wrap") ? PAD_WRAP : -1;
    if (m < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "mode '%s'", mode);
    int64_t pads[2 * SH_MAX_DIMS], axes[SH_MAX_DIMS];
    int np, na = -1;
    pad_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->value_t = -1;
    if (n->opset < 11) {
        const int64_t *a = sh_node_ints(n, "pads", &np);
        if (!a)
            a = sh_node_ints(n, "paddings", &np);
        if (!a || np != 2 * R)
            return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "pads attribute has %d values for rank %d", np, R);
        memcpy(pads, a, (size_t)np * sizeof(int64_t));
        p->value = sh_node_float(n, "value", 0.0f);
    } else {
        if ((np = cpu_const_ints(pp, 1, pads, 2 * SH_MAX_DIMS, err)) < 0)
            return np;
        const sh_tensor *V = cpu_in(pp, 2);
        if (V) {
            if (V->dtype != X->dtype || cpu_numel(V) != 1)
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "constant_value must be a scalar of the data type");
            p->value_t = n->inputs[2];
        }
        if (cpu_in(pp, 3) && (na = cpu_const_ints(pp, 3, axes, SH_MAX_DIMS, err)) < 0)
            return na;
    }
    for (int d = 0; d < R; d++)
        p->pb[d] = 0;
    if (na >= 0) {
        if (np != 2 * na)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d pads for %d axes", np, na);
        for (int i = 0; i < na; i++) {
            int a = cpu_axis(axes[i], R);
            if (a < 0)
                return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis %lld", (long long)axes[i]);
            p->pb[a] = pads[i];
        }
    } else {
        if (np != 2 * R)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d pads for rank %d", np, R);
        for (int d = 0; d < R; d++)
            p->pb[d] = pads[d];
    }
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    p->mode = m;
    p->nd = R;
    p->es = sh_dtype_size(X->dtype);
    for (int d = 0; d < R; d++) {
        p->in[d] = X->shape.d[d];
        p->out[d] = Y->shape.d[d];
        if (p->in[d] == 0 && p->out[d] > 0 && m != PAD_CONSTANT)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "cannot %s-pad an empty axis", mode);
    }
    pp->fn = pad_run;
    return 0;
}
