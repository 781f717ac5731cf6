/* A model's summary for `shoal inspect`, built straight from the protobuf so that it works for
 * models the importer refuses (unsupported ops are what inspect is asked about most). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "import/import-impl.h"

static char *dup(sh_allocator *a, const char *s, int *oom)
{
    char *p = sh_strdup(a, s ? s : "");
    if (!p)
        *oom = 1;
    return p;
}

static void fill_value(sh_allocator *a, const Onnx__ValueInfoProto *vi, sh_onnx_value *v, int *oom)
{
    v->name = dup(a, vi->name, oom);
    v->shape.ndim = -1;
    char text[512];
    size_t at = 0;
    text[0] = '\0';
    const Onnx__TypeProto *tp = vi->type;
    if (tp && tp->value_case == ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE && tp->tensor_type) {
        v->elem_type = tp->tensor_type->has_elem_type ? tp->tensor_type->elem_type : 0;
        const Onnx__TensorShapeProto *s = tp->tensor_type->shape;
        if (s) {
            v->shape.ndim = s->n_dim <= SH_MAX_DIMS ? (int)s->n_dim : -1;
            at += (size_t)snprintf(text + at, sizeof text - at, "[");
            for (size_t i = 0; i < s->n_dim && at < sizeof text - 1; i++) {
                const Onnx__TensorShapeProto__Dimension *d = s->dim[i];
                int64_t val = -1;
                if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
                    val = d->dim_value;
                    at += (size_t)snprintf(text + at, sizeof text - at, "%s%" PRId64, i ? "," : "", val);
                } else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM) {
                    at += (size_t)snprintf(text + at, sizeof text - at, "%s'%.40s'", i ? "," : "", d->dim_param);
                } else {
                    at += (size_t)snprintf(text + at, sizeof text - at, "%s?", i ? "," : "");
                }
                if (i < SH_MAX_DIMS)
                    v->shape.d[i] = val < 0 ? -1 : val;
            }
            if (at < sizeof text - 1)
                snprintf(text + at, sizeof text - at, "]");
        } else {
            snprintf(text, sizeof text, "(no shape)");
        }
    } else {
        snprintf(text, sizeof text, "(not a tensor)");
    }
    v->dims_text = dup(a, text, oom);
}

static int64_t tensor_numel(const Onnx__TensorProto *t)
{
    int64_t n = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || (t->dims[i] && n > INT64_MAX / t->dims[i]))
            return 0;
        n *= t->dims[i];
    }
    return n;
}

static void count_param(sh_onnx_info *info, const Onnx__TensorProto *t)
{
    int64_t n = tensor_numel(t);
    int64_t es = (int64_t)sh_onnx_elem_size(t->has_data_type ? t->data_type : 0);
    /* hostile dims can make the totals overflow: saturate instead */
    info->n_params = n > INT64_MAX - info->n_params ? INT64_MAX : info->n_params + n;
    int64_t b = es && n <= INT64_MAX / es ? n * es : INT64_MAX;
    info->param_bytes = b > INT64_MAX - info->param_bytes ? INT64_MAX : info->param_bytes + b;
}

static int count_op(sh_allocator *a, sh_onnx_info *info, const Onnx__NodeProto *n, int *oom)
{
    char key[256];
    const char *d = n->domain && *n->domain && strcmp(n->domain, "ai.onnx") ? n->domain : NULL;
    snprintf(key, sizeof key, "%s%s%s", d ? d : "", d ? ":" : "", n->op_type ? n->op_type : "");
    for (int i = 0; i < info->n_ops; i++)
        if (strcmp(info->ops[i].op_type, key) == 0) {
            info->ops[i].count++;
            return 0;
        }
    info->ops[info->n_ops].op_type = dup(a, key, oom);
    info->ops[info->n_ops++].count = 1;
    return 0;
}

static int fill(sh_allocator *a, const Onnx__ModelProto *m, sh_onnx_info *info)
{
    int oom = 0;
    char prod[256];
    info->ir_version = m->has_ir_version ? m->ir_version : 0;
    info->opset = sh_onnx_model_opset(m);
    if (info->opset < 0)
        info->opset = 0;
    snprintf(prod, sizeof prod, "%s%s%s", m->producer_name ? m->producer_name : "",
             m->producer_version && *m->producer_version ? " " : "", m->producer_version ? m->producer_version : "");
    info->producer = dup(a, prod, &oom);
    const Onnx__GraphProto *g = m->graph;
    info->graph_name = dup(a, g ? g->name : "", &oom);
    if (!g || oom)
        return oom;
    size_t cap = g->n_input + g->n_output + g->n_node + 1;
    info->inputs = sh_calloc(a, g->n_input + 1, sizeof *info->inputs);
    info->outputs = sh_calloc(a, g->n_output + 1, sizeof *info->outputs);
    info->ops = sh_calloc(a, g->n_node + 1, sizeof *info->ops);
    info->unsupported = sh_calloc(a, g->n_node + 1, sizeof *info->unsupported);
    if (!info->inputs || !info->outputs || !info->ops || !info->unsupported || cap > (size_t)1 << 30)
        return 1;
    info->n_initializers = (int)g->n_initializer;
    for (size_t i = 0; i < g->n_initializer; i++)
        count_param(info, g->initializer[i]);
    for (size_t i = 0; i < g->n_input && !oom; i++) {
        bool is_init = false;
        for (size_t j = 0; j < g->n_initializer && !is_init; j++)
            is_init = g->input[i]->name && g->initializer[j]->name &&
                      strcmp(g->input[i]->name, g->initializer[j]->name) == 0;
        if (!is_init)
            fill_value(a, g->input[i], &info->inputs[info->n_inputs++], &oom);
    }
    for (size_t i = 0; i < g->n_output && !oom; i++)
        fill_value(a, g->output[i], &info->outputs[info->n_outputs++], &oom);
    info->n_nodes = (int)g->n_node;
    for (size_t k = 0; k < g->n_node && !oom; k++) {
        const Onnx__NodeProto *n = g->node[k];
        count_op(a, info, n, &oom);
        sh_op op;
        int since;
        char why[256];
        if (info->opset && sh_onnx_resolve_op(n->domain, n->op_type ? n->op_type : "", info->opset, &op, &since,
                                              why, sizeof why) == 0) {
            if (op == SH_OP_CONSTANT)
                for (size_t i = 0; i < n->n_attribute; i++)
                    if (n->attribute[i]->t)
                        count_param(info, n->attribute[i]->t);
            continue;
        }
        if (!info->opset)
            snprintf(why, sizeof why, "no default-domain opset declared");
        sh_onnx_unsupported *u = &info->unsupported[info->n_unsupported++];
        char label[32];
        snprintf(label, sizeof label, "#%zu", k);
        u->node = dup(a, n->name && *n->name ? n->name : label, &oom);
        u->op_type = dup(a, n->op_type, &oom);
        u->reason = dup(a, why, &oom);
    }
    return oom;
}

int sh_onnx_info_buffer(sh_allocator *a, const void *buf, size_t len, sh_onnx_info **out, sh_err *err)
{
    *out = NULL;
    sh_pb_alloc pa;
    Onnx__ModelProto *m = sh_onnx_unpack(&pa, a, buf, len, err);
    if (!m)
        return err ? err->status : SHOAL_ERR_PARSE;
    sh_onnx_info *info = sh_calloc(a, 1, sizeof *info);
    int oom = !info || fill(a, m, info);
    if (!oom) {
        sh_err merr = {0};
        int rc = sh_onnx_meta_from_proto(a, m, &info->meta, &merr);
        oom = rc == SHOAL_ERR_NO_MEMORY || (rc && !(info->meta_error = sh_strdup(a, merr.msg)));
    }
    sh_onnx_model_free(&pa, m);
    if (oom) {
        sh_onnx_info_destroy(a, info);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory summarizing the model");
    }
    *out = info;
    return 0;
}

int sh_onnx_info_file(sh_allocator *a, const char *path, sh_onnx_info **out, sh_err *err)
{
    *out = NULL;
    void *buf;
    size_t len;
    int rc = sh_onnx_read_file(a, path, &buf, &len, err);
    if (rc)
        return rc;
    rc = sh_onnx_info_buffer(a, buf, len, out, err);
    sh_free(a, buf);
    if (rc)
        sh_err_prefix(err, rc, "%s: ", path);
    return rc;
}

static void free_values(sh_allocator *a, sh_onnx_value *v, int n)
{
    for (int i = 0; v && i < n; i++) {
        sh_free(a, v[i].name);
        sh_free(a, v[i].dims_text);
    }
    sh_free(a, v);
}

void sh_onnx_info_destroy(sh_allocator *a, sh_onnx_info *info)
{
    if (!info)
        return;
    free_values(a, info->inputs, info->n_inputs);
    free_values(a, info->outputs, info->n_outputs);
    for (int i = 0; info->ops && i < info->n_ops; i++)
        sh_free(a, info->ops[i].op_type);
    sh_free(a, info->ops);
    for (int i = 0; info->unsupported && i < info->n_unsupported; i++) {
        sh_free(a, info->unsupported[i].node);
        sh_free(a, info->unsupported[i].op_type);
        sh_free(a, info->unsupported[i].reason);
    }
    sh_free(a, info->unsupported);
    sh_free(a, info->producer);
    sh_free(a, info->graph_name);
    sh_model_meta_destroy(a, info->meta);
    sh_free(a, info->meta_error);
    sh_free(a, info);
}
