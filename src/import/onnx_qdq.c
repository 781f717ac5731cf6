/* QDQ quantization of an ONNX model's Convs, written back as ONNX (see onnx_qdq.h).
 *
 * The model is unpacked with protobuf-c through the caller's allocator, edited in place (new
 * messages come from the same allocator, so protobuf-c's free releases them with the rest),
 * packed and written. Quantization parameters are computed in float32 exactly as the graph
 * will use them: the bias scale is the float product xs * ws[m], which is what lets a folding
 * runtime add the int32 bias to its accumulator without rounding (graph/qdq.c checks that). */
#include "import/onnx_qdq.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "import/import-impl.h"

typedef struct qdq_writer {
    sh_allocator *a;
    sh_pb_alloc pa;
    Onnx__GraphProto *g;
    Onnx__NodeProto **nodes;       /* the rewritten node list */
    size_t n_nodes, cap_nodes;
    /* tensor name -> name of its dequantized copy, for Conv inputs already quantized */
    char **q_from, **q_to;
    float *q_scale;
    int n_q, cap_q;
    sh_err *err;
    int rc;
} qdq_writer;

static int oom(qdq_writer *w)
{
    if (!w->rc)
        w->rc = sh_errf(w->err, SHOAL_ERR_NO_MEMORY, "quantize: out of memory building the QDQ model");
    return w->rc;
}

static char *dup_cat(qdq_writer *w, const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    char *r = sh_alloc(w->a, n + m + 1);
    if (!r) {
        oom(w);
        return NULL;
    }
    memcpy(r, s, n);
    memcpy(r + n, suffix, m + 1);
    return r;
}

/* A new initializer owning `data` (allocated from w->a, nbytes long). */
static int add_init(qdq_writer *w, const char *name, int elem_type, int ndim, const int64_t *dims, void *data,
                    size_t nbytes)
{
    Onnx__TensorProto *t = sh_alloc(w->a, sizeof *t);
    int64_t *d = sh_alloc(w->a, (size_t)(ndim ? ndim : 1) * sizeof *d);
    Onnx__TensorProto **arr = sh_realloc(w->a, w->g->initializer, (w->g->n_initializer + 1) * sizeof *arr);
    char *nm = dup_cat(w, name, "");
    if (arr)
        w->g->initializer = arr;
    if (!t || !d || !arr || !nm) {
        sh_free(w->a, t);
        sh_free(w->a, d);
        sh_free(w->a, nm);
        sh_free(w->a, data);
        return oom(w);
    }
    onnx__tensor_proto__init(t);
    if (ndim > 0)
        memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = elem_type;
    t->name = nm;
    t->has_raw_data = 1;
    t->raw_data.data = data;
    t->raw_data.len = nbytes;
    arr[w->g->n_initializer++] = t;
    return 0;
}

static int add_scalar(qdq_writer *w, const char *name, int elem_type, const void *v, size_t size)
{
    void *data = sh_alloc(w->a, size);
    if (!data)
        return oom(w);
    memcpy(data, v, size);
    return add_init(w, name, elem_type, 0, NULL, data, size);
}

/* Appends a node (inputs/outputs copied) to the rewritten list; axis >= 0 adds that attribute. */
static int emit(qdq_writer *w, const char *op, const char *const *in, int n_in, const char *out, int axis)
{
    if (w->n_nodes == w->cap_nodes) {
        size_t cap = w->cap_nodes ? 2 * w->cap_nodes : 64;
        Onnx__NodeProto **n = sh_realloc(w->a, w->nodes, cap * sizeof *n);
        if (!n)
            return oom(w);
        w->nodes = n;
        w->cap_nodes = cap;
    }
    Onnx__NodeProto *n = sh_calloc(w->a, 1, sizeof *n);
    if (!n)
        return oom(w);
    onnx__node_proto__init(n);
    w->nodes[w->n_nodes++] = n;   /* owned by the graph from here, even if half built */
    n->input = sh_calloc(w->a, (size_t)n_in, sizeof(char *));
    n->output = sh_calloc(w->a, 1, sizeof(char *));
    n->op_type = dup_cat(w, op, "");
    n->name = dup_cat(w, out, "_node");
    if (!n->input || !n->output || !n->op_type || !n->name)
        return oom(w);
    for (int i = 0; i < n_in; i++) {
        n->input[i] = dup_cat(w, in[i], "");
        if (!n->input[i])
            return oom(w);
        n->n_input++;
    }
    n->output[0] = dup_cat(w, out, "");
    if (!n->output[0])
        return oom(w);
    n->n_output = 1;
    if (axis >= 0) {
        Onnx__AttributeProto *at = sh_calloc(w->a, 1, sizeof *at);
        n->attribute = sh_calloc(w->a, 1, sizeof *n->attribute);
        if (!at || !n->attribute) {
            sh_free(w->a, at);
            return oom(w);
        }
        onnx__attribute_proto__init(at);
        n->attribute[0] = at;
        n->n_attribute = 1;
        at->name = dup_cat(w, "axis", "");
        if (!at->name)
            return oom(w);
        at->has_type = 1;
        at->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
        at->has_i = 1;
        at->i = axis;
    }
    return 0;
}

/* uint8 asymmetric parameters of [lo, hi] widened to hold 0, as float32. */
static void act_params(float lo, float hi, float *scale, uint8_t *zp)
{
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    float s = (hi - lo) / 255.0f;
    if (!(s > 0.0f) || !isfinite(s))
        s = 1.0f;
    float z = rintf(-lo / s);
    *scale = s;
    *zp = (uint8_t)(z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z);
}

/* Q/DQ of an activation: "<name>_shq_q" then back to `dq_name`. */
static int emit_qdq(qdq_writer *w, const char *name, const char *dq_name, float lo, float hi, float *scale_out)
{
    float s;
    uint8_t z;
    act_params(lo, hi, &s, &z);
    *scale_out = s;
    char *sn = dup_cat(w, name, "_shq_scale"), *zn = dup_cat(w, name, "_shq_zp"), *qn = dup_cat(w, name, "_shq_q");
    int rc = w->rc;
    if (!rc && !(rc = add_scalar(w, sn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, &s, sizeof s)) &&
        !(rc = add_scalar(w, zn, ONNX__TENSOR_PROTO__DATA_TYPE__UINT8, &z, 1)))
        if (!(rc = emit(w, "QuantizeLinear", (const char *[]){name, sn, zn}, 3, qn, -1)))
            rc = emit(w, "DequantizeLinear", (const char *[]){qn, sn, zn}, 3, dq_name, -1);
    sh_free(w->a, sn);
    sh_free(w->a, zn);
    sh_free(w->a, qn);
    return rc;
}

static Onnx__TensorProto *find_init(const Onnx__GraphProto *g, const char *name, size_t *index)
{
    for (size_t i = 0; i < g->n_initializer; i++)
        if (g->initializer[i]->name && strcmp(g->initializer[i]->name, name) == 0) {
            *index = i;
            return g->initializer[i];
        }
    return NULL;
}

static int uses_of(const Onnx__GraphProto *g, const char *name)
{
    int n = 0;
    for (size_t k = 0; k < g->n_node; k++)
        for (size_t i = 0; i < g->node[k]->n_input; i++)
            n += strcmp(g->node[k]->input[i], name) == 0;
    return n;
}

static void drop_init(qdq_writer *w, size_t index)
{
    onnx__tensor_proto__free_unpacked(w->g->initializer[index], &w->pa.base);
    memmove(&w->g->initializer[index], &w->g->initializer[index + 1],
            (w->g->n_initializer - index - 1) * sizeof *w->g->initializer);
    w->g->n_initializer--;
}

/* Float32 contents of an initializer, decoded into a block from w->a. */
static int init_floats(qdq_writer *w, Onnx__TensorProto *t, float **out, sh_shape *shape)
{
    sh_dtype dt;
    void *data;
    size_t nbytes;
    char what[300];
    snprintf(what, sizeof what, "initializer '%s'", t->name);
    int rc = sh_onnx_decode_tensor(w->a, t, what, ".", &dt, shape, &data, &nbytes, w->err);
    if (rc)
        return w->rc = rc;
    if (dt != SH_DT_FLOAT32) {
        sh_free(w->a, data);
        return 1;   /* not float: left alone */
    }
    *out = data;
    return 0;
}

/* The Conv's weights and bias as int8 / int32 initializers with their DQ nodes. 1 when the
 * Conv does not fit (the caller leaves it float), 0 when done, negative on error. */
static int quantize_params(qdq_writer *w, Onnx__NodeProto *conv, float xs, sh_qdq_stats *st)
{
    size_t wi, bi = 0;
    Onnx__TensorProto *wt = find_init(w->g, conv->input[1], &wi);
    Onnx__TensorProto *bt = conv->n_input > 2 && conv->input[2][0] ? find_init(w->g, conv->input[2], &bi) : NULL;
    if (!wt || uses_of(w->g, conv->input[1]) != 1 || (conv->n_input > 2 && conv->input[2][0] && !bt) ||
        (bt && uses_of(w->g, conv->input[2]) != 1) || wt->n_dims != 4)
        return 1;
    float *wf = NULL, *bf = NULL;
    sh_shape ws_shape, bs_shape;
    int rc = init_floats(w, wt, &wf, &ws_shape);
    if (rc)
        return rc;
    if (bt && (rc = init_floats(w, bt, &bf, &bs_shape))) {
        sh_free(w->a, wf);
        return rc;
    }
    int64_t M = ws_shape.d[0], K = sh_shape_numel(&ws_shape) / (M ? M : 1);
    if (M < 1 || (bf && sh_shape_numel(&bs_shape) != M)) {
        sh_free(w->a, wf);
        sh_free(w->a, bf);
        return 1;
    }
    int8_t *wq = sh_alloc(w->a, (size_t)(M * K));
    float *wsc = sh_alloc(w->a, (size_t)M * sizeof(float));
    int32_t *bq = bf ? sh_alloc(w->a, (size_t)M * sizeof(int32_t)) : NULL;
    float *bsc = bf ? sh_alloc(w->a, (size_t)M * sizeof(float)) : NULL;
    if (!wq || !wsc || (bf && (!bq || !bsc))) {
        sh_free(w->a, wf);
        sh_free(w->a, bf);
        sh_free(w->a, wq);
        sh_free(w->a, wsc);
        sh_free(w->a, bq);
        sh_free(w->a, bsc);
        return oom(w);
    }
    for (int64_t m = 0; m < M; m++) {
        float amax = 0.0f;
        for (int64_t k = 0; k < K; k++)
            amax = fabsf(wf[m * K + k]) > amax ? fabsf(wf[m * K + k]) : amax;
        float s = amax > 0.0f ? amax / 127.0f : 1.0f;
        wsc[m] = s;
        for (int64_t k = 0; k < K; k++) {
            float q = rintf(wf[m * K + k] / s);
            wq[m * K + k] = (int8_t)(q < -127.0f ? -127.0f : q > 127.0f ? 127.0f : q);
        }
        if (bf) {
            bsc[m] = xs * s;
            double q = rint((double)bf[m] / (double)bsc[m]);
            bq[m] = (int32_t)(q < -2147483647.0 ? -2147483647.0 : q > 2147483647.0 ? 2147483647.0 : q);
        }
    }
    st->float_weight_bytes += (size_t)(M * K + (bf ? M : 0)) * sizeof(float);
    st->int_weight_bytes += (size_t)(M * K) + (size_t)M * sizeof(float) + (bf ? (size_t)M * 8 : 0);
    sh_free(w->a, wf);
    sh_free(w->a, bf);

    char *wname = dup_cat(w, conv->input[1], "_shq"), *wsn = dup_cat(w, conv->input[1], "_shq_scale");
    char *wdq = dup_cat(w, conv->input[1], "_shq_dq");
    char *bname = bq ? dup_cat(w, conv->input[2], "_shq") : NULL, *bsn = bq ? dup_cat(w, conv->input[2], "_shq_scale") : NULL;
    char *bdq = bq ? dup_cat(w, conv->input[2], "_shq_dq") : NULL;
    int64_t wdims[4] = {ws_shape.d[0], ws_shape.d[1], ws_shape.d[2], ws_shape.d[3]};
    bool has_bias = bq != NULL;
    /* add_init owns its data from the call on, whatever it returns */
    rc = w->rc;
    if (!rc) {
        rc = add_init(w, wname, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 4, wdims, wq, (size_t)(M * K));
        wq = NULL;
    }
    if (!rc) {
        rc = add_init(w, wsn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &M, wsc, (size_t)M * sizeof(float));
        wsc = NULL;
    }
    if (!rc)
        rc = emit(w, "DequantizeLinear", (const char *[]){wname, wsn}, 2, wdq, 0);
    if (!rc && has_bias) {
        rc = add_init(w, bname, ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, &M, bq, (size_t)M * 4);
        bq = NULL;
        if (!rc) {
            rc = add_init(w, bsn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &M, bsc, (size_t)M * 4);
            bsc = NULL;
        }
        if (!rc)
            rc = emit(w, "DequantizeLinear", (const char *[]){bname, bsn}, 2, bdq, 0);
    }
    sh_free(w->a, wq);
    sh_free(w->a, wsc);
    sh_free(w->a, bq);
    sh_free(w->a, bsc);
    if (!rc) {
        /* the Conv reads the dequantized copies; the float initializers go */
        sh_free(w->a, conv->input[1]);
        conv->input[1] = wdq;
        wdq = NULL;
        if (has_bias) {
            sh_free(w->a, conv->input[2]);
            conv->input[2] = bdq;
            bdq = NULL;
        }
        if (bt) {
            find_init(w->g, bt->name, &bi);
            drop_init(w, bi);
        }
        find_init(w->g, wt->name, &wi);
        drop_init(w, wi);
    }
    sh_free(w->a, wname);
    sh_free(w->a, wsn);
    sh_free(w->a, wdq);
    sh_free(w->a, bname);
    sh_free(w->a, bsn);
    sh_free(w->a, bdq);
    return rc;
}

static const sh_qdq_conv *listed(const sh_qdq_conv *convs, int n, const Onnx__NodeProto *node)
{
    if (strcmp(node->op_type, "Conv") != 0 || (node->domain && node->domain[0]) || node->n_output != 1 ||
        node->n_input < 2)
        return NULL;
    for (int i = 0; i < n; i++)
        if (strcmp(convs[i].output, node->output[0]) == 0)
            return &convs[i];
    return NULL;
}

static int remember_q(qdq_writer *w, const char *from, const char *to, float scale)
{
    if (w->n_q == w->cap_q) {
        int cap = w->cap_q ? 2 * w->cap_q : 64;
        char **f = sh_realloc(w->a, w->q_from, (size_t)cap * sizeof *f);
        if (f)
            w->q_from = f;
        char **t = f ? sh_realloc(w->a, w->q_to, (size_t)cap * sizeof *t) : NULL;
        if (t)
            w->q_to = t;
        float *s = t ? sh_realloc(w->a, w->q_scale, (size_t)cap * sizeof *s) : NULL;
        if (!s)
            return oom(w);
        w->q_scale = s;
        w->cap_q = cap;
    }
    w->q_from[w->n_q] = dup_cat(w, from, "");
    w->q_to[w->n_q] = dup_cat(w, to, "");
    w->q_scale[w->n_q] = scale;
    if (!w->q_from[w->n_q] || !w->q_to[w->n_q]) {
        sh_free(w->a, w->q_from[w->n_q]);
        sh_free(w->a, w->q_to[w->n_q]);
        return oom(w);
    }
    w->n_q++;
    return 0;
}

static int find_q(const qdq_writer *w, const char *name)
{
    for (int i = 0; i < w->n_q; i++)
        if (strcmp(w->q_from[i], name) == 0)
            return i;
    return -1;
}

/* Appends an existing node of the graph to the rewritten list. */
static int emit_existing(qdq_writer *w, Onnx__NodeProto *n)
{
    if (w->n_nodes == w->cap_nodes) {
        size_t cap = w->cap_nodes ? 2 * w->cap_nodes : 64;
        Onnx__NodeProto **nn = sh_realloc(w->a, w->nodes, cap * sizeof *nn);
        if (!nn)
            return oom(w);
        w->nodes = nn;
        w->cap_nodes = cap;
    }
    w->nodes[w->n_nodes++] = n;
    return 0;
}

/* One listed Conv: its input's Q/DQ (or the one made before), weights, the Conv itself with
 * its output renamed, then Q/DQ back to the original output name. */
static int rewrite_conv(qdq_writer *w, Onnx__NodeProto *conv, const sh_qdq_conv *c, sh_qdq_stats *st)
{
    int qi = find_q(w, conv->input[0]);
    float xs;
    if (qi < 0) {
        char *dq = dup_cat(w, conv->input[0], "_shq_dq");
        int rc = dq ? emit_qdq(w, conv->input[0], dq, c->x_min, c->x_max, &xs) : w->rc;
        if (!rc)
            rc = remember_q(w, conv->input[0], dq, xs);
        sh_free(w->a, dq);
        if (rc)
            return rc;
        qi = w->n_q - 1;
    }
    xs = w->q_scale[qi];
    int rc = quantize_params(w, conv, xs, st);
    if (rc < 0)
        return rc;
    if (rc == 1) {
        st->convs_skipped++;
        return emit_existing(w, conv);
    }
    char *x = dup_cat(w, w->q_to[qi], ""), *y = conv->output[0], *yf = dup_cat(w, y, "_shq_f");
    if (!x || !yf) {
        sh_free(w->a, x);
        sh_free(w->a, yf);
        return oom(w);
    }
    sh_free(w->a, conv->input[0]);
    conv->input[0] = x;
    conv->output[0] = yf;
    if ((rc = emit_existing(w, conv))) {
        sh_free(w->a, y);
        return rc;
    }
    float ys;
    rc = emit_qdq(w, yf, y, c->y_min, c->y_max, &ys);
    /* a later Conv reading y reads this DQ's output as it is */
    if (!rc)
        rc = remember_q(w, y, y, ys);
    sh_free(w->a, y);
    st->convs_quantized++;
    return rc;
}

static int write_file(qdq_writer *w, const Onnx__ModelProto *m, const char *path)
{
    size_t n = onnx__model_proto__get_packed_size(m);
    uint8_t *buf = sh_alloc(w->a, n ? n : 1);
    if (!buf)
        return oom(w);
    onnx__model_proto__pack(m, buf);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(buf, 1, n, f) == n;
    if (f && fclose(f) != 0)
        ok = false;
    sh_free(w->a, buf);
    if (!ok)
        return w->rc = sh_errf(w->err, SHOAL_ERR_IO, "quantize: cannot write '%s'", path);
    return 0;
}

int sh_onnx_write_qdq(sh_allocator *a, const char *in_path, const char *out_path, const sh_qdq_conv *convs, int n,
                      sh_qdq_stats *stats, sh_err *err)
{
    if (!a || !in_path || !out_path || (n > 0 && !convs))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "quantize: NULL argument");
    sh_qdq_stats st = {0};
    void *buf = NULL;
    size_t len = 0;
    int rc = sh_onnx_read_file(a, in_path, &buf, &len, err);
    if (rc)
        return rc;
    qdq_writer w = {.a = a, .err = err};
    Onnx__ModelProto *m = sh_onnx_unpack(&w.pa, a, buf, len, err);
    sh_free(a, buf);
    if (!m)
        return w.pa.failed ? SHOAL_ERR_NO_MEMORY : SHOAL_ERR_PARSE;
    if (!m->graph) {
        sh_onnx_model_free(&w.pa, m);
        return sh_errf(err, SHOAL_ERR_PARSE, "quantize: '%s' has no graph", in_path);
    }
    int opset = sh_onnx_model_opset(m);
    if (opset < 13) {
        sh_onnx_model_free(&w.pa, m);
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                       "quantize: '%s' has opset %d; per-channel DequantizeLinear needs 13 or later", in_path, opset);
    }
    w.g = m->graph;
    /* every listed output must be a Conv's */
    for (int i = 0; i < n; i++) {
        bool found = false;
        for (size_t k = 0; k < w.g->n_node && !found; k++)
            found = listed(&convs[i], 1, w.g->node[k]) != NULL;
        if (!found) {
            sh_onnx_model_free(&w.pa, m);
            return sh_errf(err, SHOAL_ERR_NOT_FOUND, "quantize: no Conv in '%s' writes '%s'", in_path,
                           convs[i].output);
        }
    }
    size_t n_orig = w.g->n_node;
    for (size_t k = 0; k < n_orig && !rc; k++) {
        Onnx__NodeProto *node = w.g->node[k];
        const sh_qdq_conv *c = listed(convs, n, node);
        rc = c ? rewrite_conv(&w, node, c, &st) : emit_existing(&w, node);
    }
    if (!rc && w.n_nodes >= n_orig) {
        sh_free(a, w.g->node);
        w.g->node = w.nodes;
        w.g->n_node = w.n_nodes;
        w.nodes = NULL;
        rc = write_file(&w, m, out_path);
    } else if (w.nodes) {
        /* the original nodes stay in g->node; free only the ones made here */
        for (size_t i = 0; i < w.n_nodes; i++) {
            bool orig = false;
            for (size_t k = 0; k < n_orig && !orig; k++)
                orig = w.g->node[k] == w.nodes[i];
            if (!orig)
                onnx__node_proto__free_unpacked(w.nodes[i], &w.pa.base);
        }
        sh_free(a, w.nodes);
    }
    for (int i = 0; i < w.n_q; i++) {
        sh_free(a, w.q_from[i]);
        sh_free(a, w.q_to[i]);
    }
    sh_free(a, w.q_from);
    sh_free(a, w.q_to);
    sh_free(a, w.q_scale);
    sh_onnx_model_free(&w.pa, m);
    if (stats)
        *stats = st;
    return rc;
}
