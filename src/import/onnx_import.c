/* ONNX ModelProto -> sh_graph.
 *
 * Hostile files are the normal case here, so the order of work is: check the wire format with a
 * bounded-depth walk (protobuf-c recurses without a limit) while splitting the initializers off
 * (onnx_split.c), unpack the rest with protobuf-c through the caller's allocator, resolve every
 * node's op and opset first (so one error lists every unsupported node), then build tensors (one
 * initializer read and unpacked at a time) and nodes, and let sh_graph_finalize() report
 * dangling inputs, double producers and cycles. Every size that reaches an allocation was
 * checked against bytes the file actually contains. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "import/import-impl.h"

#define MAX_NODE_IO 65535      /* inputs or outputs of one node */

/* --- protobuf-c glue -------------------------------------------------------------------- */

static void *pb_alloc_fn(void *ud, size_t size)
{
    sh_pb_alloc *pa = ud;
    void *p = sh_alloc(pa->a, size ? size : 1);
    if (!p)
        pa->failed = 1;
    return p;
}

static void pb_free_fn(void *ud, void *p)
{
    sh_pb_alloc *pa = ud;
    sh_free(pa->a, p);
}

void sh_onnx_pb_alloc_init(sh_pb_alloc *pa, sh_allocator *a)
{
    pa->base.alloc = pb_alloc_fn;
    pa->base.free = pb_free_fn;
    pa->base.allocator_data = pa;
    pa->a = a;
    pa->failed = 0;
}

Onnx__ModelProto *sh_onnx_unpack(sh_pb_alloc *pa, sh_allocator *a, const void *buf, size_t len,
                                 sh_err *err)
{
    sh_onnx_pb_alloc_init(pa, a);
    if (!buf || len == 0) {
        sh_errf(err, SHOAL_ERR_PARSE, "malformed model: empty input");
        return NULL;
    }
    if (sh_onnx_wire_check(buf, len, &onnx__model_proto__descriptor, 0, 0, err))
        return NULL;
    Onnx__ModelProto *m = onnx__model_proto__unpack(&pa->base, len, buf);
    if (!m) {
        if (pa->failed)
            sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory parsing the model (%zu bytes)", len);
        else
            sh_errf(err, SHOAL_ERR_PARSE, "malformed model: protobuf-c rejected the ModelProto (wrong field types?)");
    }
    return m;
}

void sh_onnx_model_free(sh_pb_alloc *pa, Onnx__ModelProto *m)
{
    if (m)
        onnx__model_proto__free_unpacked(m, &pa->base);
}

int sh_onnx_model_opset(const Onnx__ModelProto *m)
{
    int opset = 0;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o || (o->domain && *o->domain && strcmp(o->domain, "ai.onnx") != 0))
            continue;
        if (opset)
            return -1;
        int64_t v = o->has_version ? o->version : 0;
        opset = v < 1 ? -2 : v > 10000 ? 10000 : (int)v;
        if (opset == -2)
            return -2;
    }
    return opset;
}

/* --- graph building --------------------------------------------------------------------- */

typedef struct ctx {
    sh_allocator *a;
    sh_pb_alloc *pa;
    const sh_onnx_source *src;
    sh_onnx_split *split;         /* initializers still in the source, after gp's own */
    sh_graph *g;
    const char *model_dir;
    int opset;
    sh_err *err;
} ctx;

static const char *S(const char *s)
{
    return s ? s : "";
}

/* Tensor by name, created as "unknown yet" when absent; finalize reports it if nobody makes it. */
static int tensor_ref(ctx *c, const char *name)
{
    int t = sh_graph_find_tensor(c->g, name);
    if (t >= 0)
        return t;
    sh_shape unknown = {.ndim = -1};
    t = sh_graph_add_tensor(c->g, name, SH_DT_UNDEFINED, &unknown);
    if (t < 0)
        sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "out of memory adding tensor '%s'", name);
    return t;
}

static int type_of(ctx *c, const Onnx__ValueInfoProto *vi, const char *role, sh_dtype *dt, sh_shape *shape)
{
    const char *name = S(vi->name);
    char tn[32];
    *dt = SH_DT_UNDEFINED;
    shape->ndim = -1;
    const Onnx__TypeProto *tp = vi->type;
    if (!tp)
        return 0;
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%s '%s' is not a tensor (sequence, map, optional or sparse)",
                       role, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int et = tt->has_elem_type ? tt->elem_type : 0;
    if (et) {
        *dt = sh_onnx_dtype(et);
        if (*dt == SH_DT_UNDEFINED)
            return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%s '%s' has data type %s, which shoal does not support",
                           role, name, sh_onnx_elem_type_name(et, tn, sizeof tn));
    }
    if (!tt->shape)
        return 0;
    if (tt->shape->n_dim > SH_MAX_DIMS)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%s '%s' has %zu dims; shoal supports at most %d", role, name,
                       tt->shape->n_dim, SH_MAX_DIMS);
    shape->ndim = (int)tt->shape->n_dim;
    for (size_t i = 0; i < tt->shape->n_dim; i++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];
        shape->d[i] = -1;
        if (d && d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (d->dim_value < 0)
                return sh_errf(c->err, SHOAL_ERR_PARSE, "%s '%s': dim %zu is negative (%" PRId64 ")", role, name, i,
                               d->dim_value);
            shape->d[i] = d->dim_value;
        }
    }
    return 0;
}

/* Decodes a TensorProto into a new or placeholder tensor `name`, making it a constant. */
static int add_const(ctx *c, Onnx__TensorProto *tp, const char *name, const char *what, int *out)
{
    sh_dtype dt;
    sh_shape shape;
    void *data;
    size_t nbytes;
    int rc = sh_onnx_decode_tensor(c->a, tp, what, c->model_dir, &dt, &shape, &data, &nbytes, c->err);
    if (rc)
        return rc;
    int t = sh_graph_find_tensor(c->g, name);
    if (t >= 0 && (c->g->tensors[t].is_const || c->g->tensors[t].is_input)) {
        sh_free(c->a, data);
        return sh_errf(c->err, SHOAL_ERR_PARSE, "%s: tensor '%s' is defined twice", what, name);
    }
    if (t < 0 && (t = sh_graph_add_tensor(c->g, name, dt, &shape)) < 0) {
        sh_free(c->a, data);
        return sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "%s: out of memory", what);
    }
    c->g->tensors[t].dtype = dt;
    c->g->tensors[t].shape = shape;
    if ((rc = sh_graph_adopt_const(c->g, t, data, nbytes, c->err)))
        return rc;
    if (out)
        *out = t;
    return 0;
}

static const char *attr_type_name(int t)
{
    switch (t) {
    case 1: return "FLOAT";
    case 2: return "INT";
    case 3: return "STRING";
    case 4: return "TENSOR";
    case 5: return "GRAPH";
    case 6: return "FLOATS";
    case 7: return "INTS";
    case 8: return "STRINGS";
    case 9: return "TENSORS";
    case 10: return "GRAPHS";
    case 11: return "SPARSE_TENSOR";
    case 12: return "SPARSE_TENSORS";
    case 13: return "TYPE_PROTO";
    case 14: return "TYPE_PROTOS";
    default: return "UNDEFINED";
    }
}

/* IR-1/2 writers left AttributeProto.type unset; the field that is filled tells the type. */
static int attr_type(const Onnx__AttributeProto *at)
{
    if (at->has_type && at->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
        return at->type;
    if (at->has_f) return 1;
    if (at->has_i) return 2;
    if (at->has_s) return 3;
    if (at->t) return 4;
    if (at->g) return 5;
    if (at->n_floats) return 6;
    if (at->n_ints) return 7;
    if (at->n_strings) return 8;
    if (at->sparse_tensor) return 11;
    return 0;
}

static const char *type_code(int t)
{
    switch (t) {
    case 1: return "f";
    case 2: return "i";
    case 3: return "s";
    case 4: return "t";
    case 6: return "fs";
    case 7: return "is";
    default: return "?";
    }
}

static int add_attr(ctx *c, int node, const char *nl, Onnx__AttributeProto *at)
{
    sh_graph *g = c->g;
    const char *opname = sh_op_name(g->nodes[node].op);
    const char *an = S(at->name);
    if (!*an)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): attribute without a name", nl, opname);
    if (sh_node_attr(&g->nodes[node], an))
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): attribute '%s' given twice", nl, opname, an);
    int t = attr_type(at);
    char want[8];
    const char *exp = sh_onnx_attr_expected(g->nodes[node].op, an, want, sizeof want);
    if (exp && strcmp(exp, type_code(t)) != 0)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): attribute '%s' is %s, expected %s", nl, opname, an,
                       attr_type_name(t), strcmp(exp, "i") == 0 ? "INT" : strcmp(exp, "f") == 0 ? "FLOAT"
                       : strcmp(exp, "s") == 0 ? "STRING" : strcmp(exp, "is") == 0 ? "INTS"
                       : strcmp(exp, "fs") == 0 ? "FLOATS" : "TENSOR");
    int rc = 0;
    switch (t) {
    case 1: rc = sh_node_set_float(g, node, an, at->f); break;
    case 2: rc = sh_node_set_int(g, node, an, at->i); break;
    case 3: {
        if (at->s.len && memchr(at->s.data, 0, at->s.len))
            return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): attribute '%s' contains a NUL byte", nl, opname, an);
        char *s = sh_strndup(c->a, at->s.len ? (const char *)at->s.data : "", at->s.len);
        if (!s)
            return sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "node %s: out of memory", nl);
        rc = sh_node_set_string(g, node, an, s);
        sh_free(c->a, s);
        break;
    }
    case 6:
        if (at->n_floats > INT_MAX / 8)
            return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): attribute '%s' is too long", nl, opname, an);
        rc = sh_node_set_floats(g, node, an, at->floats, (int)at->n_floats);
        break;
    case 7:
        if (at->n_ints > INT_MAX / 8)
            return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): attribute '%s' is too long", nl, opname, an);
        rc = sh_node_set_ints(g, node, an, at->ints, (int)at->n_ints);
        break;
    case 4: {
        if (!at->t)
            return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): TENSOR attribute '%s' has no tensor", nl, opname, an);
        /* A name no ONNX tensor can clash with: node and attribute names joined by '#'. */
        char name[256], what[320];
        int k = 0;
        do {
            snprintf(name, sizeof name, "%.200s#%s%.0d", g->nodes[node].name, an, k);
        } while (sh_graph_find_tensor(g, name) >= 0 && ++k < 1000);
        snprintf(what, sizeof what, "node %s (%s) attribute '%s'", nl, opname, an);
        int ti;
        if ((rc = add_const(c, at->t, name, what, &ti)))
            return rc;
        rc = sh_node_set_tensor(g, node, an, ti);
        break;
    }
    default:
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "node %s (%s): attribute '%s' of type %s is not supported",
                       nl, opname, an, attr_type_name(t));
    }
    if (rc)
        return sh_errf(c->err, rc, "node %s (%s): out of memory setting attribute '%s'", nl, opname, an);
    return 0;
}

static const char *node_label(const Onnx__NodeProto *n, size_t k, char *buf, size_t cap)
{
    if (n->name && *n->name)
        snprintf(buf, cap, "'%.160s'", n->name);
    else
        snprintf(buf, cap, "#%zu", k);
    return buf;
}

/* A Constant node becomes a constant tensor named by its output; no node is added. */
static int add_constant_node(ctx *c, Onnx__NodeProto *n, const char *nl)
{
    if (n->n_output != 1 || !n->output[0] || !*n->output[0])
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (Constant): needs exactly one named output", nl);
    if (n->n_attribute != 1 || !n->attribute[0])
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (Constant): needs exactly one value attribute, has %zu",
                       nl, n->n_attribute);
    Onnx__AttributeProto *at = n->attribute[0];
    const char *an = S(at->name);
    const char *out = n->output[0];
    char what[400];
    snprintf(what, sizeof what, "node %s (Constant) output '%.80s'", nl, out);
    int t = attr_type(at);
    if (strcmp(an, "sparse_value") == 0)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%s: sparse_value is not supported", what);
    if (strcmp(an, "value_string") == 0 || strcmp(an, "value_strings") == 0)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%s: string constants are not supported", what);
    if (strcmp(an, "value") == 0) {
        if (t != 4 || !at->t)
            return sh_errf(c->err, SHOAL_ERR_PARSE, "%s: attribute 'value' is %s, expected TENSOR", what,
                           attr_type_name(t));
        return add_const(c, at->t, out, what, NULL);
    }
    /* value_float(s) / value_int(s): wrap in a TensorProto and share the one decoding path. */
    Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
    int64_t dim;
    tp.has_data_type = 1;
    if (strcmp(an, "value_float") == 0 && t == 1) {
        tp.data_type = 1;
        tp.n_float_data = 1;
        tp.float_data = &at->f;
    } else if (strcmp(an, "value_floats") == 0 && t == 6) {
        tp.data_type = 1;
        dim = (int64_t)at->n_floats;
        tp.n_dims = 1;
        tp.dims = &dim;
        tp.n_float_data = at->n_floats;
        tp.float_data = at->floats;
    } else if (strcmp(an, "value_int") == 0 && t == 2) {
        tp.data_type = 7;
        tp.n_int64_data = 1;
        tp.int64_data = &at->i;
    } else if (strcmp(an, "value_ints") == 0 && t == 7) {
        tp.data_type = 7;
        dim = (int64_t)at->n_ints;
        tp.n_dims = 1;
        tp.dims = &dim;
        tp.n_int64_data = at->n_ints;
        tp.int64_data = at->ints;
    } else {
        return sh_errf(c->err, SHOAL_ERR_PARSE, "%s: attribute '%s' of type %s is not a Constant value", what, an,
                       attr_type_name(t));
    }
    return add_const(c, &tp, out, what, NULL);
}

static int add_node(ctx *c, Onnx__NodeProto *n, size_t k, sh_op op, int since)
{
    char nl[200];
    node_label(n, k, nl, sizeof nl);
    if (op == SH_OP_CONSTANT)
        return add_constant_node(c, n, nl);
    if (n->n_input > MAX_NODE_IO || n->n_output > MAX_NODE_IO)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): too many inputs or outputs", nl, sh_op_name(op));
    if (n->n_output == 0)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): no outputs", nl, sh_op_name(op));
    size_t nio = n->n_input + n->n_output;
    int *io = sh_alloc(c->a, (nio ? nio : 1) * sizeof(int));
    if (!io)
        return sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "node %s: out of memory", nl);
    for (size_t i = 0; i < nio; i++) {
        const char *name = i < n->n_input ? n->input[i] : n->output[i - n->n_input];
        io[i] = -1;
        if (!name || !*name)
            continue;       /* an omitted optional input or output */
        if ((io[i] = tensor_ref(c, name)) < 0) {
            sh_free(c->a, io);
            return SHOAL_ERR_NO_MEMORY;
        }
    }
    for (size_t i = n->n_input; i < nio; i++)
        for (size_t j = n->n_input; j < i; j++)
            if (io[i] >= 0 && io[i] == io[j]) {
                int t = io[i];
                sh_free(c->a, io);
                return sh_errf(c->err, SHOAL_ERR_PARSE, "node %s (%s): output '%s' listed twice", nl, sh_op_name(op),
                               c->g->tensors[t].name);
            }
    int node = sh_graph_add_node(c->g, n->name, op, io, (int)n->n_input, io + n->n_input, (int)n->n_output);
    sh_free(c->a, io);
    if (node < 0)
        return sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "node %s: out of memory", nl);
    c->g->nodes[node].opset = since;
    for (size_t i = 0; i < n->n_attribute; i++) {
        if (!n->attribute[i])
            continue;
        int rc = add_attr(c, node, nl, n->attribute[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Resolves every node before building anything, so the error lists all unsupported ones. */
static int check_ops(ctx *c, const Onnx__GraphProto *gp, sh_op *ops, int *since)
{
    char msg[SH_ERR_MSG_MAX];
    size_t at = 0;
    int bad = 0;
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *n = gp->node[k];
        char why[200], nl[200];
        if (!n)
            continue;
        if (sh_onnx_resolve_op(n->domain, S(n->op_type), c->opset, &ops[k], &since[k], why, sizeof why) == 0)
            continue;
        node_label(n, k, nl, sizeof nl);
        if (bad++ == 0)
            at = (size_t)snprintf(msg, sizeof msg, "node %s (%s, opset %d): %s", nl, S(n->op_type), c->opset, why);
        else if (at < sizeof msg - 80)
            at += (size_t)snprintf(msg + at, sizeof msg - at, "; node %s (%s)", nl, S(n->op_type));
    }
    if (!bad)
        return 0;
    if (bad > 1)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%d unsupported nodes at opset %d: %s", bad, c->opset, msg);
    return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "%s", msg);
}

static int build(ctx *c, Onnx__ModelProto *m)
{
    int opset = sh_onnx_model_opset(m);
    if (opset == -1)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "model declares the default ONNX domain twice in opset_import");
    if (opset == -2)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "model declares an invalid default-domain opset version");
    if (opset == 0)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "model declares no default-domain opset (ir_version %" PRId64 ")",
                       m->ir_version);
    if (opset < SH_ONNX_MIN_OPSET || opset > SH_ONNX_MAX_OPSET)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "model opset %d is outside what shoal supports (%d..%d)", opset,
                       SH_ONNX_MIN_OPSET, SH_ONNX_MAX_OPSET);
    c->opset = opset;
    Onnx__GraphProto *gp = m->graph;
    if (!gp)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "model has no graph");
    size_t n_split = c->split ? c->split->n_inits : 0;
    if (gp->n_node > INT_MAX / 2 || gp->n_initializer > INT_MAX / 2 || n_split > INT_MAX / 2)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "graph is too large");
    if (gp->n_sparse_initializer)
        return sh_errf(c->err, SHOAL_ERR_UNSUPPORTED, "sparse initializer '%s' is not supported",
                       gp->sparse_initializer[0] && gp->sparse_initializer[0]->values
                           ? S(gp->sparse_initializer[0]->values->name) : "");
    if (gp->n_output == 0)
        return sh_errf(c->err, SHOAL_ERR_PARSE, "graph '%s' has no outputs", S(gp->name));

    sh_op *ops = sh_alloc(c->a, (gp->n_node ? gp->n_node : 1) * sizeof *ops);
    int *since = sh_alloc(c->a, (gp->n_node ? gp->n_node : 1) * sizeof *since);
    if (!ops || !since) {
        sh_free(c->a, ops);
        sh_free(c->a, since);
        return sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "out of memory (%zu nodes)", gp->n_node);
    }
    int rc = check_ops(c, gp, ops, since);
    if (rc)
        goto out;

    c->g = sh_graph_create(c->a, gp->name && *gp->name ? gp->name : "graph");
    if (!c->g) {
        rc = sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "out of memory creating the graph");
        goto out;
    }
    c->g->opset = opset;

    /* One initializer read from the source at a time, its protobuf copy freed once converted. */
    for (size_t i = 0; i < gp->n_initializer + n_split; i++) {
        Onnx__TensorProto *tp, *read = NULL;
        if (i < gp->n_initializer)
            tp = gp->initializer[i];
        else if ((rc = sh_onnx_split_tensor(c->pa, c->src, c->split, i - gp->n_initializer, &read, c->err)))
            goto out;
        else
            tp = read;
        const char *name = tp ? S(tp->name) : "";
        char what[200];
        snprintf(what, sizeof what, "initializer '%.160s'", name);
        if (!*name)
            rc = sh_errf(c->err, SHOAL_ERR_PARSE, "initializer #%zu has no name", i);
        else
            rc = add_const(c, tp, name, what, NULL);
        if (read)
            onnx__tensor_proto__free_unpacked(read, &c->pa->base);
        if (rc)
            goto out;
    }

    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        const char *name = vi ? S(vi->name) : "";
        if (!*name) {
            rc = sh_errf(c->err, SHOAL_ERR_PARSE, "graph input #%zu has no name", i);
            goto out;
        }
        int t = sh_graph_find_tensor(c->g, name);
        if (t >= 0 && c->g->tensors[t].is_const)
            continue;   /* a weight listed as input (IR < 4) or an overridable default: a constant */
        if (t >= 0) {
            rc = sh_errf(c->err, SHOAL_ERR_PARSE, "graph input '%s' is listed twice", name);
            goto out;
        }
        sh_dtype dt;
        sh_shape shape;
        if ((rc = type_of(c, vi, "graph input", &dt, &shape)))
            goto out;
        if (dt == SH_DT_UNDEFINED) {
            rc = sh_errf(c->err, SHOAL_ERR_PARSE, "graph input '%s' declares no tensor type", name);
            goto out;
        }
        if ((t = sh_graph_add_tensor(c->g, name, dt, &shape)) < 0) {
            rc = sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "out of memory adding input '%s'", name);
            goto out;
        }
        c->g->tensors[t].is_input = true;
    }

    for (size_t k = 0; k < gp->n_node; k++) {
        if (!gp->node[k])
            continue;
        if ((rc = add_node(c, gp->node[k], k, ops[k], since[k])))
            goto out;
    }

    /* Declared dtypes of intermediate tensors; shapes are left to shape inference. */
    for (size_t i = 0; i < gp->n_value_info; i++) {
        const Onnx__ValueInfoProto *vi = gp->value_info[i];
        int t = vi && vi->name ? sh_graph_find_tensor(c->g, vi->name) : -1;
        if (t < 0 || c->g->tensors[t].is_const || c->g->tensors[t].is_input)
            continue;
        const Onnx__TypeProto *tp = vi->type;
        if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type &&
            tp->tensor_type->has_elem_type)
            c->g->tensors[t].dtype = sh_onnx_dtype(tp->tensor_type->elem_type);
    }

    /* Graph inputs and outputs in model order. */
    {
        int *list = sh_alloc(c->a, (gp->n_input + gp->n_output + 1) * sizeof(int));
        if (!list) {
            rc = sh_errf(c->err, SHOAL_ERR_NO_MEMORY, "out of memory");
            goto out;
        }
        int n = 0;
        for (size_t i = 0; i < gp->n_input; i++) {
            int t = sh_graph_find_tensor(c->g, gp->input[i]->name);
            if (t >= 0 && c->g->tensors[t].is_input)
                list[n++] = t;
        }
        rc = sh_graph_set_inputs(c->g, list, n);
        n = 0;
        for (size_t i = 0; !rc && i < gp->n_output; i++) {
            const Onnx__ValueInfoProto *vi = gp->output[i];
            const char *name = vi ? S(vi->name) : "";
            if (!*name) {
                rc = sh_errf(c->err, SHOAL_ERR_PARSE, "graph output #%zu has no name", i);
                break;
            }
            int t = tensor_ref(c, name);
            if (t < 0) {
                rc = SHOAL_ERR_NO_MEMORY;
                break;
            }
            for (int j = 0; j < n; j++)
                if (list[j] == t)
                    rc = sh_errf(c->err, SHOAL_ERR_PARSE, "graph output '%s' is listed twice", name);
            if (rc)
                break;
            sh_dtype dt;
            sh_shape shape;
            if ((rc = type_of(c, vi, "graph output", &dt, &shape)))
                break;
            sh_tensor *x = &c->g->tensors[t];
            if (!x->is_const && !x->is_input && dt != SH_DT_UNDEFINED)
                x->dtype = dt;
            list[n++] = t;
        }
        if (!rc && (rc = sh_graph_set_outputs(c->g, list, n)))
            sh_errf(c->err, rc, "out of memory");
        sh_free(c->a, list);
        if (rc)
            goto out;
    }
    rc = sh_graph_finalize(c->g, c->err);

out:
    sh_free(c->a, ops);
    sh_free(c->a, since);
    return rc;
}

/* The graph, and the metadata when `meta` is not NULL. The model is split first (onnx_split.c):
 * protobuf-c unpacks everything but the initializers, which are then read and converted one at a
 * time, so the import never holds the file's bytes, protobuf-c's copy of the weights and the
 * graph's constants at once (that is twice the model). */
static int load_source(sh_allocator *a, const sh_onnx_source *src, const char *model_dir, sh_graph **out,
                       sh_model_meta **meta, sh_err *err)
{
    *out = NULL;
    if (meta)
        *meta = NULL;
    sh_err_clear(err);
    sh_onnx_split split;
    int rc = sh_onnx_split_model(a, src, &split, err);
    if (rc)
        return rc;
    sh_pb_alloc pa;
    Onnx__ModelProto *m = sh_onnx_unpack(&pa, a, split.skeleton, split.skeleton_len, err);
    sh_free(a, split.skeleton);
    split.skeleton = NULL;
    if (!m) {
        sh_onnx_split_free(a, &split);
        return err ? err->status : SHOAL_ERR_PARSE;
    }
    ctx c = {.a = a, .pa = &pa, .src = src, .split = &split, .model_dir = model_dir, .err = err};
    rc = build(&c, m);
    sh_onnx_split_free(a, &split);
    if (!rc && meta)
        rc = sh_onnx_meta_from_proto(a, m, meta, err);
    sh_onnx_model_free(&pa, m);
    if (rc) {
        sh_graph_destroy(c.g);
        if (err && err->status == SHOAL_OK)
            sh_errf(err, rc, "import failed");
        return rc;
    }
    *out = c.g;
    return 0;
}

int sh_onnx_load_buffer(sh_allocator *a, const void *buf, size_t len, const char *model_dir,
                        sh_graph **out, sh_err *err)
{
    sh_onnx_source src = {.buf = buf, .fd = -1, .len = buf ? len : 0};
    return load_source(a, &src, model_dir, out, NULL, err);
}

int sh_onnx_load_file_meta(sh_allocator *a, const char *path, sh_graph **out, sh_model_meta **meta, sh_err *err)
{
    *out = NULL;
    if (meta)
        *meta = NULL;
    sh_onnx_source src;
    int rc = sh_onnx_source_open(path, &src, err);
    if (rc)
        return rc;
    char dir[4096];
    sh_onnx_dirname(path, dir, sizeof dir);
    rc = load_source(a, &src, dir, out, meta, err);
    sh_onnx_source_close(&src);
    if (rc)
        sh_err_prefix(err, rc, "%s: ", path);
    return rc;
}

int sh_onnx_load_file(sh_allocator *a, const char *path, sh_graph **out, sh_err *err)
{
    return sh_onnx_load_file_meta(a, path, out, NULL, err);
}
