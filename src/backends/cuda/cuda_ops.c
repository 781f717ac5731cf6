/* Per-op parameter building for the CUDA backend (called by cuda_compile.c). Each builder
 * fills one sh_cuda_node from the graph's shapes and attributes; all shapes are static. */
#include "backends/cuda/cuda_ops.h"

#include <float.h>
#include <string.h>

static int64_t prod(const sh_shape *s, int from, int to)
{
    int64_t p = 1;
    for (int d = from; d < to; d++)
        p *= s->d[d];
    return p;
}

static int norm_axis(int64_t a, int ndim) { return (int)(a < 0 ? a + ndim : a); }

/* Channels-last storage of a 4-D tensor: logical (n, c, h, w) lies in memory as (n, h, w, c).
 * Kernels that only move or combine elements (copies, broadcasts) run on the storage order. */
void sh_cuda_storage_shape(const sh_shape *s, bool cl, sh_shape *out)
{
    *out = *s;
    if (cl && s->ndim == 4) {
        out->d[1] = s->d[2];
        out->d[2] = s->d[3];
        out->d[3] = s->d[1];
    }
}

int sh_cuda_storage_axis(int axis, int ndim, bool cl)
{
    static const int to_cl[4] = {0, 3, 1, 2};
    return cl && ndim == 4 ? to_cl[axis] : axis;
}

static void row_strides(const sh_shape *s, int64_t *st)
{
    int64_t acc = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        st[d] = acc;
        acc *= s->d[d];
    }
}

static int add_copy(sh_cuda_ctx *c, sh_cuda_node *cn, int in_slot, int out_slot, const sh_k_copy *p,
                    sh_err *err)
{
    sh_cuda_copy *nc = sh_realloc(c->alloc, cn->copies, (size_t)(cn->n_copies + 1) * sizeof *nc);
    if (!nc)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda compile: copy list");
    cn->copies = nc;
    nc[cn->n_copies].in_slot = in_slot;
    nc[cn->n_copies].out_slot = out_slot;
    nc[cn->n_copies].p = *p;
    cn->n_copies++;
    return 0;
}

/* Drops size-1 dims and merges dims that are contiguous in both views. */
static void copy_simplify(sh_k_copy *p)
{
    sh_k_copy q = {0};
    q.dst_off = p->dst_off;
    q.src_off = p->src_off;
    for (int d = 0; d < p->ndim; d++) {
        if (p->shape[d] == 1)
            continue;
        if (q.ndim > 0 && q.dst_stride[q.ndim - 1] == p->dst_stride[d] * p->shape[d] &&
            q.src_stride[q.ndim - 1] == p->src_stride[d] * p->shape[d]) {
            q.shape[q.ndim - 1] *= p->shape[d];
            q.dst_stride[q.ndim - 1] = p->dst_stride[d];
            q.src_stride[q.ndim - 1] = p->src_stride[d];
            continue;
        }
        q.shape[q.ndim] = p->shape[d];
        q.dst_stride[q.ndim] = p->dst_stride[d];
        q.src_stride[q.ndim] = p->src_stride[d];
        q.ndim++;
    }
    if (q.ndim == 0) {
        q.ndim = 1;
        q.shape[0] = 1;
        q.dst_stride[0] = q.src_stride[0] = 1;
    }
    *p = q;
}

int sh_cuda_build_concat(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                         const bool *aliased_in, bool cl, sh_err *err)
{
    const sh_tensor *y = sh_node_output(g, n, 0);
    int nd = y->shape.ndim;
    sh_shape ys;
    sh_cuda_storage_shape(&y->shape, cl, &ys);
    int laxis = norm_axis(sh_node_int(n, "axis", 0), nd);
    int axis = sh_cuda_storage_axis(laxis, nd, cl);
    int64_t outer = prod(&ys, 0, axis), inner = prod(&ys, axis + 1, nd);
    int64_t off = 0;
    cn->kind = NK_COPY;
    for (int i = 0; i < n->n_inputs; i++) {
        const sh_tensor *x = sh_node_input(g, n, i);
        if (!x)
            continue;
        int64_t a = x->shape.d[laxis];
        if (!aliased_in[i] && a > 0) {
            sh_k_copy p = {.ndim = 2, .shape = {(int)outer, (int)(a * inner)},
                           .dst_stride = {(int)(ys.d[axis] * inner), 1},
                           .src_stride = {(int)(a * inner), 1}, .dst_off = (int)(off * inner)};
            copy_simplify(&p);
            if (add_copy(c, cn, i, 0, &p, err))
                return err->status;
        }
        off += a;
    }
    if (cn->n_copies == 0)
        cn->kind = NK_SKIP;
    return 0;
}

/* Split: output j is the slice [off_j, off_j + d_j) along axis (sizes from the output shapes). */
int sh_cuda_build_split(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                        const bool *aliased_out, bool cl, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0);
    int nd = x->shape.ndim;
    sh_shape xs;
    sh_cuda_storage_shape(&x->shape, cl, &xs);
    int laxis = norm_axis(sh_node_int(n, "axis", 0), nd);
    int axis = sh_cuda_storage_axis(laxis, nd, cl);
    int64_t outer = prod(&xs, 0, axis), inner = prod(&xs, axis + 1, nd);
    int64_t off = 0;
    cn->kind = NK_COPY;
    for (int j = 0; j < n->n_outputs; j++) {
        const sh_tensor *y = sh_node_output(g, n, j);
        if (!y)
            continue;
        int64_t a = y->shape.d[laxis];
        if (!aliased_out[j] && a > 0) {
            sh_k_copy p = {.ndim = 2, .shape = {(int)outer, (int)(a * inner)},
                           .dst_stride = {(int)(a * inner), 1},
                           .src_stride = {(int)(xs.d[axis] * inner), 1},
                           .src_off = (int)(off * inner)};
            copy_simplify(&p);
            if (add_copy(c, cn, 0, j, &p, err))
                return err->status;
        }
        off += a;
    }
    if (cn->n_copies == 0)
        cn->kind = NK_SKIP;
    return 0;
}

/* Slice start per axis after ONNX clamping, and the step. */
int sh_cuda_slice_params(const sh_graph *g, const sh_node *n, int64_t *start, int64_t *step)
{
    const sh_tensor *x = sh_node_input(g, n, 0);
    int nd = x->shape.ndim;
    for (int d = 0; d < nd; d++) {
        start[d] = 0;
        step[d] = 1;
    }
    int64_t st[SH_MAX_DIMS], ax[SH_MAX_DIMS], sp[SH_MAX_DIMS];
    int ns, na = -1, nsp = -1;
    if (n->n_inputs >= 3) {
        ns = sh_cuda_const_ints(sh_node_input(g, n, 1), st, SH_MAX_DIMS);
        if (n->n_inputs > 3 && sh_node_input(g, n, 3))
            na = sh_cuda_const_ints(sh_node_input(g, n, 3), ax, SH_MAX_DIMS);
        if (n->n_inputs > 4 && sh_node_input(g, n, 4))
            nsp = sh_cuda_const_ints(sh_node_input(g, n, 4), sp, SH_MAX_DIMS);
    } else {
        int cnt = 0;
        const int64_t *v = sh_node_ints(n, "starts", &cnt);
        ns = cnt;
        for (int i = 0; i < cnt && i < SH_MAX_DIMS; i++)
            st[i] = v[i];
        v = sh_node_ints(n, "axes", &cnt);
        if (v) {
            na = cnt;
            for (int i = 0; i < cnt && i < SH_MAX_DIMS; i++)
                ax[i] = v[i];
        }
    }
    if (ns < 0 || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns))
        return SHOAL_ERR_UNSUPPORTED;
    for (int i = 0; i < ns; i++) {
        int a = na >= 0 ? norm_axis(ax[i], nd) : i;
        if (a < 0 || a >= nd)
            return SHOAL_ERR_SHAPE;
        int64_t dim = x->shape.d[a], s = nsp >= 0 ? sp[i] : 1, b = st[i];
        if (s == 0)
            return SHOAL_ERR_SHAPE;
        if (b < 0)
            b += dim;
        if (s > 0)
            b = b < 0 ? 0 : (b > dim ? dim : b);
        else
            b = b < 0 ? 0 : (b > dim - 1 ? dim - 1 : b);
        start[a] = b;
        step[a] = s;
    }
    return 0;
}

int sh_cuda_build_slice(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                        sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *y = sh_node_output(g, n, 0);
    int64_t start[SH_MAX_DIMS], step[SH_MAX_DIMS], xs[SH_MAX_DIMS], ys[SH_MAX_DIMS];
    int rc = sh_cuda_slice_params(g, n, start, step);
    if (rc)
        return sh_errf(err, rc, "node %s (Slice): starts/axes/steps must be constant and consistent", n->name);
    row_strides(&x->shape, xs);
    row_strides(&y->shape, ys);
    sh_k_copy p = {.ndim = x->shape.ndim};
    for (int d = 0; d < x->shape.ndim; d++) {
        p.shape[d] = (int)y->shape.d[d];
        p.dst_stride[d] = (int)ys[d];
        p.src_stride[d] = (int)(xs[d] * step[d]);
        p.src_off += (int)(start[d] * xs[d]);
    }
    copy_simplify(&p);
    cn->kind = NK_COPY;
    return add_copy(c, cn, 0, 0, &p, err);
}

int sh_cuda_build_transpose(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                            sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *y = sh_node_output(g, n, 0);
    int nd = x->shape.ndim, cnt = 0;
    const int64_t *perm = sh_node_ints(n, "perm", &cnt);
    int64_t xs[SH_MAX_DIMS], ys[SH_MAX_DIMS];
    row_strides(&x->shape, xs);
    row_strides(&y->shape, ys);
    sh_k_copy p = {.ndim = nd};
    for (int d = 0; d < nd; d++) {
        int pd = perm && cnt == nd ? (int)perm[d] : nd - 1 - d;
        p.shape[d] = (int)y->shape.d[d];
        p.dst_stride[d] = (int)ys[d];
        p.src_stride[d] = (int)xs[pd];
    }
    copy_simplify(&p);
    cn->kind = NK_COPY;
    return add_copy(c, cn, 0, 0, &p, err);
}

int sh_cuda_build_expand(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                         sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *y = sh_node_output(g, n, 0);
    int nd = y->shape.ndim, off = nd - x->shape.ndim;
    int64_t xs[SH_MAX_DIMS], ys[SH_MAX_DIMS];
    row_strides(&x->shape, xs);
    row_strides(&y->shape, ys);
    sh_k_copy p = {.ndim = nd};
    for (int d = 0; d < nd; d++) {
        int xd = d - off;
        p.shape[d] = (int)y->shape.d[d];
        p.dst_stride[d] = (int)ys[d];
        p.src_stride[d] = (xd < 0 || x->shape.d[xd] == 1) ? 0 : (int)xs[xd];
    }
    copy_simplify(&p);
    cn->kind = NK_COPY;
    return add_copy(c, cn, 0, 0, &p, err);
}

int sh_cuda_build_gather(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                         sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0);
    int nd = x->shape.ndim;
    int axis = norm_axis(sh_node_int(n, "axis", 0), nd);
    int64_t idx[64];
    int ni = sh_cuda_const_ints(sh_node_input(g, n, 1), idx, 64);
    if (ni < 0)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (Gather): indices must be a constant of <= 64", n->name);
    int64_t outer = prod(&x->shape, 0, axis), inner = prod(&x->shape, axis + 1, nd), a = x->shape.d[axis];
    cn->kind = NK_COPY;
    for (int j = 0; j < ni; j++) {
        int64_t v = idx[j] < 0 ? idx[j] + a : idx[j];
        if (v < 0 || v >= a)
            return sh_errf(err, SHOAL_ERR_SHAPE, "node %s (Gather): index %lld out of range", n->name,
                           (long long)idx[j]);
        sh_k_copy p = {.ndim = 2, .shape = {(int)outer, (int)inner},
                       .dst_stride = {(int)(ni * inner), 1}, .src_stride = {(int)(a * inner), 1},
                       .dst_off = (int)(j * inner), .src_off = (int)(v * inner)};
        copy_simplify(&p);
        if (add_copy(c, cn, 0, 0, &p, err))
            return err->status;
    }
    return 0;
}

int sh_cuda_build_pad(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                      sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *y = sh_node_output(g, n, 0);
    int nd = x->shape.ndim;
    int64_t pads[2 * SH_MAX_DIMS];
    int np;
    if (n->n_inputs >= 2 && sh_node_input(g, n, 1)) {
        np = sh_cuda_const_ints(sh_node_input(g, n, 1), pads, 2 * SH_MAX_DIMS);
        cn->fill_value = n->n_inputs >= 3 ? sh_cuda_const_scalar(sh_node_input(g, n, 2), 0.f) : 0.f;
    } else {
        int cnt = 0;
        const int64_t *v = sh_node_ints(n, "pads", &cnt);
        np = cnt;
        for (int i = 0; i < cnt && i < 2 * SH_MAX_DIMS; i++)
            pads[i] = v[i];
        cn->fill_value = sh_node_float(n, "value", 0.f);
    }
    if (np != 2 * nd)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (Pad): pads must be constant, 2*rank long", n->name);
    int64_t xs[SH_MAX_DIMS], ys[SH_MAX_DIMS];
    row_strides(&x->shape, xs);
    row_strides(&y->shape, ys);
    sh_k_copy p = {.ndim = nd};
    for (int d = 0; d < nd; d++) {
        int64_t b = pads[d], e = pads[nd + d];
        int64_t len = x->shape.d[d] + (b < 0 ? b : 0) + (e < 0 ? e : 0);
        if (len <= 0) {
            len = 0;
        }
        p.shape[d] = (int)len;
        p.dst_stride[d] = (int)ys[d];
        p.src_stride[d] = (int)xs[d];
        p.dst_off += (int)((b > 0 ? b : 0) * ys[d]);
        p.src_off += (int)((b < 0 ? -b : 0) * xs[d]);
    }
    cn->kind = NK_COPY;
    cn->fill = true;
    copy_simplify(&p);
    return add_copy(c, cn, 0, 0, &p, err);
}

/* Broadcast strides for a binary op, dims collapsed where both operands stay contiguous. Each
 * operand's strides come from its own storage (cl: channels-last 4-D); the loop runs over the
 * output's storage order, so same-layout same-shape operands stay one flat run. */
static void logical_strides(const sh_shape *s, bool cl, int64_t *st)
{
    if (cl && s->ndim == 4) {
        st[1] = 1;
        st[3] = s->d[1];
        st[2] = s->d[1] * s->d[3];
        st[0] = st[2] * s->d[2];
        return;
    }
    row_strides(s, st);
}

void sh_cuda_build_bcast(const sh_shape *a, const sh_shape *b, const sh_shape *y, bool a_cl, bool b_cl,
                         bool y_cl, sh_k_bcast *bc, bool *flat)
{
    int nd = y->ndim;
    int64_t sa[SH_MAX_DIMS], sb[SH_MAX_DIMS], as[SH_MAX_DIMS], bs[SH_MAX_DIMS];
    logical_strides(a, a_cl, as);
    logical_strides(b, b_cl, bs);
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        sa[d] = (da < 0 || a->d[da] == 1) ? 0 : as[da];
        sb[d] = (db < 0 || b->d[db] == 1) ? 0 : bs[db];
    }
    static const int cl_order[4] = {0, 2, 3, 1};
    memset(bc, 0, sizeof *bc);
    for (int dd = 0; dd < nd; dd++) {
        int d = y_cl && nd == 4 ? cl_order[dd] : dd;
        if (y->d[d] == 1)
            continue;
        int k = bc->ndim;
        if (k > 0 && bc->sa[k - 1] == sa[d] * y->d[d] && bc->sb[k - 1] == sb[d] * y->d[d]) {
            bc->shape[k - 1] *= (int)y->d[d];
            bc->sa[k - 1] = (int)sa[d];
            bc->sb[k - 1] = (int)sb[d];
            continue;
        }
        bc->shape[k] = (int)y->d[d];
        bc->sa[k] = (int)sa[d];
        bc->sb[k] = (int)sb[d];
        bc->ndim++;
    }
    if (bc->ndim == 0) {
        bc->ndim = 1;
        bc->shape[0] = 1;
    }
    *flat = bc->ndim == 1 && bc->sa[0] == 1 && bc->sb[0] == 1;
}

int sh_cuda_build_pool(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, bool cl, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *y = sh_node_output(g, n, 0);
    int64_t k[2], s[2], dil[2], pb[2], pe[2];
    sh_cuda_kernel_geom(n, NULL, 2, k, s, dil);
    sh_cuda_spatial_pads(n, &x->shape, &y->shape, k, s, dil, pb, pe, false);
    sh_k_pool p = {(int)x->shape.d[0], (int)x->shape.d[1], (int)x->shape.d[2], (int)x->shape.d[3],
                   (int)y->shape.d[2], (int)y->shape.d[3], (int)k[0], (int)k[1], (int)s[0], (int)s[1],
                   (int)pb[0], (int)pb[1], (int)dil[0], (int)dil[1],
                   n->op == SH_OP_MAX_POOL, (int)sh_node_int(n, "count_include_pad", 0), cl};
    (void)err;
    cn->pool = p;
    cn->kind = NK_POOL;
    return 0;
}

int sh_cuda_build_reduce(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0);
    int nd = x->shape.ndim;
    bool red[SH_MAX_DIMS] = {false};
    if (n->op == SH_OP_GLOBAL_AVERAGE_POOL) {
        for (int d = 2; d < nd; d++)
            red[d] = true;
    } else {
        int64_t ax[SH_MAX_DIMS];
        int na = -1, cnt = 0;
        const int64_t *v = sh_node_ints(n, "axes", &cnt);
        if (v) {
            na = cnt;
            for (int i = 0; i < cnt && i < SH_MAX_DIMS; i++)
                ax[i] = v[i];
        } else if (n->n_inputs >= 2 && sh_node_input(g, n, 1)) {
            na = sh_cuda_const_ints(sh_node_input(g, n, 1), ax, SH_MAX_DIMS);
        }
        if (na < 0 || na == 0) {
            for (int d = 0; d < nd; d++)
                red[d] = true;
        } else {
            for (int i = 0; i < na; i++)
                red[norm_axis(ax[i], nd)] = true;
        }
    }
    int first = -1, last = -1;
    for (int d = 0; d < nd; d++)
        if (red[d] && x->shape.d[d] != 1) {
            if (first < 0)
                first = d;
            last = d;
        }
    if (first < 0) {
        first = 0;
        last = -1;
    }
    for (int d = first; d <= last; d++)
        if (!red[d] && x->shape.d[d] != 1)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): reduced axes must be contiguous",
                           n->name, sh_op_name(n->op));
    cn->r_outer = (int)prod(&x->shape, 0, first);
    cn->r_len = (int)prod(&x->shape, first, last + 1);
    cn->r_inner = (int)prod(&x->shape, last + 1, nd);
    cn->kind = NK_MEAN;
    return 0;
}

int sh_cuda_build_resize(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, bool cl, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0), *y = sh_node_output(g, n, 0);
    const char *mode = sh_node_string(n, "mode", "nearest");
    sh_k_resize_p p = {0};
    p.c = (int)x->shape.d[1];
    p.nhwc = cl;
    p.nc = (int)(x->shape.d[0] * x->shape.d[1]);
    p.h = (int)x->shape.d[2];
    p.w = (int)x->shape.d[3];
    p.oh = (int)y->shape.d[2];
    p.ow = (int)y->shape.d[3];
    p.linear = !strcmp(mode, "linear") || !strcmp(mode, "bilinear");
    p.scale_h = (float)p.oh / (float)p.h;
    p.scale_w = (float)p.ow / (float)p.w;
    float sc[8];
    const sh_tensor *st = NULL;
    bool legacy = n->op == SH_OP_UPSAMPLE || n->opset < 11;
    if (n->op == SH_OP_UPSAMPLE)
        st = n->n_inputs >= 2 ? sh_node_input(g, n, 1) : NULL;
    else
        st = n->opset < 11 ? (n->n_inputs >= 2 ? sh_node_input(g, n, 1) : NULL)
                           : (n->n_inputs >= 3 ? sh_node_input(g, n, 2) : NULL);
    if (st && sh_cuda_const_floats(st, sc, 8) == 4) {
        p.scale_h = sc[2];
        p.scale_w = sc[3];
    } else {
        int cnt = 0;
        const sh_attr *a = sh_node_attr(n, "scales");
        if (a && a->type == SH_ATTR_FLOATS && a->n == 4) {
            p.scale_h = a->floats[2];
            p.scale_w = a->floats[3];
        }
        (void)cnt;
    }
    if (legacy) {
        p.coord = 1;
        p.nearest_mode = 2;   /* Upsample / Resize-10: asymmetric, floor */
    } else {
        const char *ct = sh_node_string(n, "coordinate_transformation_mode", "half_pixel");
        const char *nm = sh_node_string(n, "nearest_mode", "round_prefer_floor");
        if (!strcmp(ct, "half_pixel")) p.coord = 0;
        else if (!strcmp(ct, "asymmetric")) p.coord = 1;
        else if (!strcmp(ct, "align_corners")) p.coord = 2;
        else if (!strcmp(ct, "pytorch_half_pixel")) p.coord = 3;
        else if (!strcmp(ct, "tf_half_pixel_for_nearest")) p.coord = 4;
        else
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (Resize): coordinate mode %s", n->name, ct);
        if (!strcmp(nm, "round_prefer_floor")) p.nearest_mode = 0;
        else if (!strcmp(nm, "round_prefer_ceil")) p.nearest_mode = 1;
        else if (!strcmp(nm, "floor")) p.nearest_mode = 2;
        else p.nearest_mode = 3;
    }
    cn->rs = p;
    cn->kind = NK_RESIZE;
    return 0;
}

int sh_cuda_build_softmax(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, 0);
    int nd = x->shape.ndim;
    (void)err;
    if (n->opset < 13) {
        int axis = norm_axis(sh_node_int(n, "axis", 1), nd);
        cn->r_outer = (int)prod(&x->shape, 0, axis);
        cn->r_len = (int)prod(&x->shape, axis, nd);
        cn->r_inner = 1;
    } else {
        int axis = norm_axis(sh_node_int(n, "axis", -1), nd);
        cn->r_outer = (int)prod(&x->shape, 0, axis);
        cn->r_len = (int)x->shape.d[axis];
        cn->r_inner = (int)prod(&x->shape, axis + 1, nd);
    }
    cn->kind = NK_SOFTMAX;
    return 0;
}

int sh_cuda_build_gemm(const sh_graph *g, const sh_node *n, sh_cuda_node *cn, const unsigned char *tview,
                       sh_err *err)
{
    const sh_tensor *a = sh_node_input(g, n, 0), *b = sh_node_input(g, n, 1), *y = sh_node_output(g, n, 0);
    sh_k_gemm_p p = {0};
    p.alpha = 1.f;
    p.act = sh_cuda_node_act(n);
    if (n->op == SH_OP_GEMM) {
        int ta = (int)sh_node_int(n, "transA", 0), tb = (int)sh_node_int(n, "transB", 0);
        p.batch = 1;
        p.m = (int)(ta ? a->shape.d[1] : a->shape.d[0]);
        p.k = (int)(ta ? a->shape.d[0] : a->shape.d[1]);
        p.n = (int)(tb ? b->shape.d[0] : b->shape.d[1]);
        p.a_rs = ta ? 1 : p.k;
        p.a_cs = ta ? p.m : 1;
        p.b_rs = tb ? 1 : p.n;
        p.b_cs = tb ? p.k : 1;
        p.alpha = sh_node_float(n, "alpha", 1.f);
        p.beta = sh_node_float(n, "beta", 1.f);
        const sh_tensor *c = n->n_inputs >= 3 ? sh_node_input(g, n, 2) : NULL;
        if (c) {
            int cm = 1, cnn = 1;
            if (c->shape.ndim == 2) {
                cm = (int)c->shape.d[0];
                cnn = (int)c->shape.d[1];
            } else if (c->shape.ndim == 1) {
                cnn = (int)c->shape.d[0];
            }
            p.c_rs = cm == 1 ? 0 : cnn;
            p.c_cs = cnn == 1 ? 0 : 1;
        }
    } else {
        /* MatMul: 1-D operands become [1,K] / [K,1]; batch dims broadcast */
        sh_shape as = a->shape, bs = b->shape;
        if (as.ndim == 1) {
            as.ndim = 2;
            as.d[1] = as.d[0];
            as.d[0] = 1;
        }
        if (bs.ndim == 1) {
            bs.ndim = 2;
            bs.d[1] = 1;
        }
        p.m = (int)as.d[as.ndim - 2];
        p.k = (int)as.d[as.ndim - 1];
        p.n = (int)bs.d[bs.ndim - 1];
        /* an operand that is a folded Transpose's view: its source read column by column */
        bool ta = tview && tview[n->inputs[0]], tb = tview && tview[n->inputs[1]];
        p.a_rs = ta ? 1 : p.k;
        p.a_cs = ta ? p.m : 1;
        p.b_rs = tb ? 1 : p.n;
        p.b_cs = tb ? p.k : 1;
        int nba = as.ndim - 2, nbb = bs.ndim - 2, nb = nba > nbb ? nba : nbb;
        if (nb > 4)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (MatMul): more than 4 batch dims", n->name);
        p.batch = 1;
        p.nbd = nb;
        int64_t sa = (int64_t)p.m * p.k, sb = (int64_t)p.k * p.n;
        for (int d = nb - 1; d >= 0; d--) {
            int da = d - (nb - nba), db = d - (nb - nbb);
            int64_t ea = da >= 0 ? as.d[da] : 1, eb = db >= 0 ? bs.d[db] : 1;
            int64_t e = ea > eb ? ea : eb;
            p.bdim[d] = (int)e;
            p.a_bs[d] = ea == 1 ? 0 : (int)sa;
            p.b_bs[d] = eb == 1 ? 0 : (int)sb;
            sa *= ea;
            sb *= eb;
            p.batch *= (int)e;
        }
    }
    (void)y;
    cn->gm = p;
    cn->kind = NK_GEMM;
    return 0;
}
