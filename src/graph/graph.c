#include "graph/graph.h"

#include "core/half.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const OP_NAMES[] = {
#define SH_OP_NAME(id, name) name,
    SH_OP_LIST(SH_OP_NAME)
#undef SH_OP_NAME
};
static_assert(sizeof OP_NAMES / sizeof OP_NAMES[0] == SH_OP_COUNT, "update the op tables");

const char *sh_op_name(sh_op op)
{
    return (unsigned)op < SH_OP_COUNT ? OP_NAMES[op] : "?";
}

sh_op sh_op_from_onnx(const char *op_type)
{
    for (int i = 0; i < SH_OP_COUNT; i++)
        if (strcmp(OP_NAMES[i], op_type) == 0)
            return (sh_op)i;
    return SH_OP_COUNT;
}

size_t sh_dtype_size(sh_dtype dt)
{
    switch (dt) {
    case SH_DT_FLOAT32: case SH_DT_INT32: case SH_DT_UINT32: return 4;
    case SH_DT_FLOAT16: case SH_DT_INT16: case SH_DT_UINT16: return 2;
    case SH_DT_FLOAT64: case SH_DT_INT64: case SH_DT_UINT64: return 8;
    case SH_DT_INT8: case SH_DT_UINT8: case SH_DT_BOOL: return 1;
    default: return 0;
    }
}

const char *sh_dtype_name(sh_dtype dt)
{
    static const char *const names[SH_DT_COUNT] = {
        "undefined", "float32", "float16", "float64", "int8", "int16", "int32", "int64",
        "uint8", "uint16", "uint32", "uint64", "bool"};
    return (unsigned)dt < SH_DT_COUNT ? names[dt] : "?";
}

double sh_dtype_load_f64(const void *p, sh_dtype d, int64_t i)
{
    switch (d) {
    case SH_DT_FLOAT32: return ((const float *)p)[i];
    case SH_DT_FLOAT64: return ((const double *)p)[i];
    case SH_DT_INT8: return ((const int8_t *)p)[i];
    case SH_DT_INT16: return ((const int16_t *)p)[i];
    case SH_DT_INT32: return ((const int32_t *)p)[i];
    case SH_DT_INT64: return (double)((const int64_t *)p)[i];
    case SH_DT_UINT8: case SH_DT_BOOL: return ((const uint8_t *)p)[i];
    case SH_DT_UINT16: return ((const uint16_t *)p)[i];
    case SH_DT_UINT32: return ((const uint32_t *)p)[i];
    case SH_DT_UINT64: return (double)((const uint64_t *)p)[i];
    case SH_DT_FLOAT16: return sh_f16_to_f32(((const uint16_t *)p)[i]);
    default: return NAN;
    }
}

int64_t sh_shape_numel(const sh_shape *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++) {
        if (s->d[i] < 0)
            return -1;
        if (s->d[i] != 0 && n > INT64_MAX / s->d[i])
            return -1;
        n *= s->d[i];
    }
    return n;
}

bool sh_shape_equal(const sh_shape *a, const sh_shape *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

void sh_shape_matmul_promote(sh_shape *a, sh_shape *b)
{
    if (a->ndim == 1) {
        a->ndim = 2;
        a->d[1] = a->d[0];
        a->d[0] = 1;
    }
    if (b->ndim == 1) {
        b->ndim = 2;
        b->d[1] = 1;
    }
}

const char *sh_shape_str(const sh_shape *s, char *buf, size_t cap)
{
    size_t at = 0;
    at += (size_t)snprintf(buf + at, cap - at, "[");
    for (int i = 0; i < s->ndim && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, i ? ",%" PRId64 : "%" PRId64, s->d[i]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

/* --- name index: open addressing over tensor indices ----------------------------- */

typedef struct name_index {
    int *slots;        /* tensor index + 1; 0 = empty */
    size_t cap;        /* power of two */
} name_index;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int index_insert(sh_graph *g, name_index *ix, int t);

static int index_grow(sh_graph *g, name_index *ix)
{
    size_t cap = ix->cap ? ix->cap * 2 : 256;
    int *slots = sh_calloc(g->alloc, cap, sizeof *slots);
    if (!slots)
        return -1;
    int *old = ix->slots;
    size_t old_cap = ix->cap;
    ix->slots = slots;
    ix->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            index_insert(g, ix, old[i] - 1);
    sh_free(g->alloc, old);
    return 0;
}

static int index_insert(sh_graph *g, name_index *ix, int t)
{
    size_t mask = ix->cap - 1;
    size_t i = hash_str(g->tensors[t].name) & mask;
    while (ix->slots[i])
        i = (i + 1) & mask;
    ix->slots[i] = t + 1;
    return 0;
}

int sh_graph_find_tensor(const sh_graph *g, const char *name)
{
    const name_index *ix = g->name_index;
    if (!ix || !ix->cap || !name)
        return -1;
    size_t mask = ix->cap - 1;
    for (size_t i = hash_str(name) & mask; ix->slots[i]; i = (i + 1) & mask) {
        int t = ix->slots[i] - 1;
        if (strcmp(g->tensors[t].name, name) == 0)
            return t;
    }
    return -1;
}

static int index_rebuild(sh_graph *g)
{
    name_index *ix = g->name_index;
    sh_free(g->alloc, ix->slots);
    ix->slots = NULL;
    ix->cap = 0;
    size_t need = 256;
    while (need < (size_t)g->n_tensors * 2)
        need *= 2;
    ix->slots = sh_calloc(g->alloc, need, sizeof *ix->slots);
    if (!ix->slots)
        return -1;
    ix->cap = need;
    for (int t = 0; t < g->n_tensors; t++)
        index_insert(g, ix, t);
    return 0;
}

/* --- lifetime ----------------------------------------------------------------------- */

sh_graph *sh_graph_create(sh_allocator *alloc, const char *name)
{
    sh_graph *g = sh_calloc(alloc, 1, sizeof *g);
    if (!g)
        return NULL;
    g->alloc = alloc;
    g->name = sh_strdup(alloc, name ? name : "graph");
    g->name_index = sh_calloc(alloc, 1, sizeof(name_index));
    if (!g->name || !g->name_index) {
        sh_graph_destroy(g);
        return NULL;
    }
    return g;
}

static void free_attr(sh_allocator *a, sh_attr *at)
{
    sh_free(a, at->name);
    sh_free(a, at->s);
    sh_free(a, at->ints);
    sh_free(a, at->floats);
}

static void free_node(sh_allocator *a, sh_node *n)
{
    sh_free(a, n->name);
    sh_free(a, n->inputs);
    sh_free(a, n->outputs);
    for (int i = 0; i < n->n_attrs; i++)
        free_attr(a, &n->attrs[i]);
    sh_free(a, n->attrs);
}

static void free_tensor(sh_allocator *a, sh_tensor *t)
{
    sh_free(a, t->name);
    sh_free(a, t->data);
}

void sh_graph_destroy(sh_graph *g)
{
    if (!g)
        return;
    sh_allocator *a = g->alloc;
    for (int i = 0; i < g->n_nodes; i++)
        free_node(a, &g->nodes[i]);
    for (int i = 0; i < g->n_tensors; i++)
        free_tensor(a, &g->tensors[i]);
    sh_free(a, g->nodes);
    sh_free(a, g->tensors);
    sh_free(a, g->inputs);
    sh_free(a, g->outputs);
    if (g->name_index)
        sh_free(a, ((name_index *)g->name_index)->slots);
    sh_free(a, g->name_index);
    sh_free(a, g->name);
    sh_free(a, g);
}

/* --- building ----------------------------------------------------------------------- */

static int grow(sh_allocator *a, void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 64;
    while (nc < need)
        nc *= 2;
    void *p = sh_realloc(a, *arr, (size_t)nc * elem);
    if (!p)
        return -1;
    memset((char *)p + (size_t)*cap * elem, 0, (size_t)(nc - *cap) * elem);
    *arr = p;
    *cap = nc;
    return 0;
}

int sh_graph_add_tensor(sh_graph *g, const char *name, sh_dtype dt, const sh_shape *shape)
{
    if (grow(g->alloc, (void **)&g->tensors, &g->cap_tensors, g->n_tensors + 1, sizeof(sh_tensor)))
        return -1;
    char gen[48];
    if (!name || !*name) {
        snprintf(gen, sizeof gen, "shoal_tensor_%d", g->n_tensors);
        name = gen;
    }
    int t = g->n_tensors;
    sh_tensor *x = &g->tensors[t];
    memset(x, 0, sizeof *x);
    x->name = sh_strdup(g->alloc, name);
    if (!x->name)
        return -1;
    x->dtype = dt;
    if (shape)
        x->shape = *shape;
    x->producer = -1;
    g->n_tensors++;
    name_index *ix = g->name_index;
    if ((size_t)g->n_tensors * 2 > ix->cap && index_grow(g, ix)) {
        g->n_tensors--;
        sh_free(g->alloc, x->name);
        return -1;
    }
    index_insert(g, ix, t);
    return t;
}

static int const_size_check(const sh_tensor *x, size_t nbytes, sh_err *err)
{
    int64_t numel = sh_shape_numel(&x->shape);
    size_t want;
    if (numel < 0 || !sh_mul_size((size_t)numel, sh_dtype_size(x->dtype), &want))
        return sh_errf(err, SHOAL_ERR_PARSE, "tensor '%s': invalid shape", x->name);
    if (want != nbytes)
        return sh_errf(err, SHOAL_ERR_PARSE, "tensor '%s': %zu data bytes but %s shape needs %zu",
                       x->name, nbytes, sh_dtype_name(x->dtype), want);
    return 0;
}

int sh_graph_adopt_const(sh_graph *g, int t, void *data, size_t nbytes, sh_err *err)
{
    sh_tensor *x = &g->tensors[t];
    int rc = const_size_check(x, nbytes, err);
    if (rc) {
        sh_free(g->alloc, data);
        return rc;
    }
    sh_free(g->alloc, x->data);
    x->data = data;
    x->nbytes = nbytes;
    x->is_const = true;
    return 0;
}

int sh_graph_set_const(sh_graph *g, int t, const void *data, size_t nbytes, sh_err *err)
{
    int rc = const_size_check(&g->tensors[t], nbytes, err);
    if (rc)
        return rc;
    void *copy = sh_alloc(g->alloc, nbytes ? nbytes : 1);
    if (!copy)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "tensor '%s': out of memory (%zu bytes)",
                       g->tensors[t].name, nbytes);
    if (nbytes)
        memcpy(copy, data, nbytes);
    return sh_graph_adopt_const(g, t, copy, nbytes, err);
}

static int *dup_ints(sh_allocator *a, const int *v, int n)
{
    int *p = sh_alloc(a, (size_t)(n ? n : 1) * sizeof *p);
    if (p && n)
        memcpy(p, v, (size_t)n * sizeof *p);
    return p;
}

int sh_graph_add_node(sh_graph *g, const char *name, sh_op op, const int *inputs, int n_inputs,
                      const int *outputs, int n_outputs)
{
    if (grow(g->alloc, (void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(sh_node)))
        return -1;
    sh_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    char gen[48];
    if (!name || !*name) {
        snprintf(gen, sizeof gen, "%s_%d", sh_op_name(op), g->n_nodes);
        name = gen;
    }
    n->name = sh_strdup(g->alloc, name);
    n->inputs = dup_ints(g->alloc, inputs, n_inputs);
    n->outputs = dup_ints(g->alloc, outputs, n_outputs);
    if (!n->name || !n->inputs || !n->outputs) {
        free_node(g->alloc, n);
        return -1;
    }
    n->op = op;
    n->opset = g->opset;
    n->n_inputs = n_inputs;
    n->n_outputs = n_outputs;
    return g->n_nodes++;
}

static sh_attr *new_attr(sh_graph *g, int node, const char *name, sh_attr_type type)
{
    sh_node *n = &g->nodes[node];
    for (int i = 0; i < n->n_attrs; i++) {
        if (strcmp(n->attrs[i].name, name) == 0) {
            free_attr(g->alloc, &n->attrs[i]);
            memmove(&n->attrs[i], &n->attrs[i + 1], (size_t)(n->n_attrs - i - 1) * sizeof(sh_attr));
            n->n_attrs--;
            break;
        }
    }
    sh_attr *arr = sh_realloc(g->alloc, n->attrs, (size_t)(n->n_attrs + 1) * sizeof(sh_attr));
    if (!arr)
        return NULL;
    n->attrs = arr;
    sh_attr *at = &arr[n->n_attrs];
    memset(at, 0, sizeof *at);
    at->name = sh_strdup(g->alloc, name);
    if (!at->name)
        return NULL;
    at->type = type;
    at->tensor = -1;
    n->n_attrs++;
    return at;
}

int sh_node_set_int(sh_graph *g, int node, const char *name, int64_t v)
{
    sh_attr *a = new_attr(g, node, name, SH_ATTR_INT);
    if (!a)
        return SHOAL_ERR_NO_MEMORY;
    a->i = v;
    return 0;
}

int sh_node_set_float(sh_graph *g, int node, const char *name, float v)
{
    sh_attr *a = new_attr(g, node, name, SH_ATTR_FLOAT);
    if (!a)
        return SHOAL_ERR_NO_MEMORY;
    a->f = v;
    return 0;
}

int sh_node_set_string(sh_graph *g, int node, const char *name, const char *v)
{
    sh_attr *a = new_attr(g, node, name, SH_ATTR_STRING);
    if (!a || !(a->s = sh_strdup(g->alloc, v)))
        return SHOAL_ERR_NO_MEMORY;
    return 0;
}

int sh_node_set_ints(sh_graph *g, int node, const char *name, const int64_t *v, int n)
{
    sh_attr *a = new_attr(g, node, name, SH_ATTR_INTS);
    if (!a || !(a->ints = sh_alloc(g->alloc, (size_t)(n ? n : 1) * sizeof(int64_t))))
        return SHOAL_ERR_NO_MEMORY;
    if (n)
        memcpy(a->ints, v, (size_t)n * sizeof(int64_t));
    a->n = n;
    return 0;
}

int sh_node_set_floats(sh_graph *g, int node, const char *name, const float *v, int n)
{
    sh_attr *a = new_attr(g, node, name, SH_ATTR_FLOATS);
    if (!a || !(a->floats = sh_alloc(g->alloc, (size_t)(n ? n : 1) * sizeof(float))))
        return SHOAL_ERR_NO_MEMORY;
    if (n)
        memcpy(a->floats, v, (size_t)n * sizeof(float));
    a->n = n;
    return 0;
}

int sh_node_set_tensor(sh_graph *g, int node, const char *name, int tensor)
{
    sh_attr *a = new_attr(g, node, name, SH_ATTR_TENSOR);
    if (!a)
        return SHOAL_ERR_NO_MEMORY;
    a->tensor = tensor;
    return 0;
}

static int set_list(sh_graph *g, int **dst, int *n_dst, const int *t, int n)
{
    int *p = dup_ints(g->alloc, t, n);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    sh_free(g->alloc, *dst);
    *dst = p;
    *n_dst = n;
    return 0;
}

int sh_graph_set_inputs(sh_graph *g, const int *t, int n)
{
    for (int i = 0; i < n; i++)
        g->tensors[t[i]].is_input = true;
    return set_list(g, &g->inputs, &g->n_inputs, t, n);
}

int sh_graph_set_outputs(sh_graph *g, const int *t, int n)
{
    for (int i = 0; i < n; i++)
        g->tensors[t[i]].is_output = true;
    return set_list(g, &g->outputs, &g->n_outputs, t, n);
}

/* --- attributes ---------------------------------------------------------------------- */

const sh_attr *sh_node_attr(const sh_node *n, const char *name)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].name, name) == 0)
            return &n->attrs[i];
    return NULL;
}

int64_t sh_node_int(const sh_node *n, const char *name, int64_t dflt)
{
    const sh_attr *a = sh_node_attr(n, name);
    return a && a->type == SH_ATTR_INT ? a->i : dflt;
}

float sh_node_float(const sh_node *n, const char *name, float dflt)
{
    const sh_attr *a = sh_node_attr(n, name);
    if (a && a->type == SH_ATTR_FLOAT)
        return a->f;
    if (a && a->type == SH_ATTR_INT)
        return (float)a->i;
    return dflt;
}

const char *sh_node_string(const sh_node *n, const char *name, const char *dflt)
{
    const sh_attr *a = sh_node_attr(n, name);
    return a && a->type == SH_ATTR_STRING ? a->s : dflt;
}

const int64_t *sh_node_ints(const sh_node *n, const char *name, int *count)
{
    const sh_attr *a = sh_node_attr(n, name);
    if (!a || a->type != SH_ATTR_INTS) {
        *count = 0;
        return NULL;
    }
    *count = a->n;
    return a->ints;
}

const sh_tensor *sh_node_input(const sh_graph *g, const sh_node *n, int i)
{
    if (i < 0 || i >= n->n_inputs || n->inputs[i] < 0)
        return NULL;
    return &g->tensors[n->inputs[i]];
}

const sh_tensor *sh_node_output(const sh_graph *g, const sh_node *n, int i)
{
    if (i < 0 || i >= n->n_outputs || n->outputs[i] < 0)
        return NULL;
    return &g->tensors[n->outputs[i]];
}

/* --- structure ----------------------------------------------------------------------- */

static int fill_producers(sh_graph *g, sh_err *err)
{
    for (int t = 0; t < g->n_tensors; t++) {
        g->tensors[t].producer = -1;
        g->tensors[t].n_consumers = g->tensors[t].is_output ? 1 : 0;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int o = 0; o < n->n_outputs; o++) {
            int t = n->outputs[o];
            if (t < 0)
                continue;
            if (t >= g->n_tensors)
                return sh_errf(err, SHOAL_ERR_INTERNAL, "node '%s': bad output index", n->name);
            sh_tensor *x = &g->tensors[t];
            if (x->producer >= 0)
                return sh_errf(err, SHOAL_ERR_PARSE, "tensor '%s' is produced by both node '%s' and node '%s'",
                               x->name, g->nodes[x->producer].name, n->name);
            if (x->is_const || x->is_input)
                return sh_errf(err, SHOAL_ERR_PARSE, "node '%s' (%s) writes tensor '%s', which is a %s",
                               n->name, sh_op_name(n->op), x->name, x->is_const ? "constant" : "graph input");
            x->producer = k;
        }
    }
    for (int k = 0; k < g->n_nodes; k++) {
        sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_inputs; i++) {
            int t = n->inputs[i];
            if (t < 0)
                continue;
            if (t >= g->n_tensors)
                return sh_errf(err, SHOAL_ERR_INTERNAL, "node '%s': bad input index", n->name);
            sh_tensor *x = &g->tensors[t];
            if (x->producer < 0 && !x->is_const && !x->is_input)
                return sh_errf(err, SHOAL_ERR_PARSE,
                               "node '%s' (%s) reads tensor '%s', which no node produces and is neither an input nor an initializer",
                               n->name, sh_op_name(n->op), x->name);
            x->n_consumers++;
        }
    }
    for (int i = 0; i < g->n_outputs; i++) {
        sh_tensor *x = &g->tensors[g->outputs[i]];
        if (x->producer < 0 && !x->is_const && !x->is_input)
            return sh_errf(err, SHOAL_ERR_PARSE, "graph output '%s' is produced by no node", x->name);
    }
    return 0;
}

/* Kahn's algorithm, stable: among ready nodes the earliest in file order goes first, so a
 * model already in order keeps its order (the planner's lifetimes then match the file). */
int sh_graph_finalize(sh_graph *g, sh_err *err)
{
    int rc = fill_producers(g, err);
    if (rc)
        return rc;
    int n = g->n_nodes;
    if (n == 0)
        return 0;
    sh_allocator *a = g->alloc;
    int *pending = sh_calloc(a, (size_t)n, sizeof(int));
    int *order = sh_alloc(a, (size_t)n * sizeof(int));
    char *done = sh_calloc(a, (size_t)n, 1);
    if (!pending || !order || !done) {
        sh_free(a, pending);
        sh_free(a, order);
        sh_free(a, done);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': out of memory sorting nodes", g->name);
    }
    for (int k = 0; k < n; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++) {
            int t = g->nodes[k].inputs[i];
            if (t >= 0 && g->tensors[t].producer >= 0)
                pending[k]++;
        }
    int placed = 0;
    int progress = 1;
    /* O(n^2) worst case but linear for graphs already in order, which exporters write. */
    int start = 0;
    while (placed < n && progress) {
        progress = 0;
        for (int k = start; k < n; k++) {
            if (done[k] || pending[k])
                continue;
            done[k] = 1;
            order[placed++] = k;
            progress = 1;
            for (int o = 0; o < g->nodes[k].n_outputs; o++) {
                int t = g->nodes[k].outputs[o];
                /* a dead node's outputs were never counted as pending (no producer) */
                if (t < 0 || g->tensors[t].producer != k)
                    continue;
                for (int c = 0; c < n; c++) {
                    if (done[c])
                        continue;
                    for (int i = 0; i < g->nodes[c].n_inputs; i++)
                        if (g->nodes[c].inputs[i] == t)
                            pending[c]--;
                }
            }
            break;
        }
        while (start < n && done[start])
            start++;
    }
    if (placed < n) {
        int k = 0;
        while (done[k])
            k++;
        sh_free(a, pending);
        sh_free(a, order);
        sh_free(a, done);
        return sh_errf(err, SHOAL_ERR_PARSE, "graph '%s' has a cycle through node '%s' (%s)", g->name,
                       g->nodes[k].name, sh_op_name(g->nodes[k].op));
    }
    sh_node *sorted = sh_alloc(a, (size_t)g->cap_nodes * sizeof(sh_node));
    if (!sorted) {
        sh_free(a, pending);
        sh_free(a, order);
        sh_free(a, done);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': out of memory sorting nodes", g->name);
    }
    for (int k = 0; k < n; k++)
        sorted[k] = g->nodes[order[k]];
    sh_free(a, g->nodes);
    g->nodes = sorted;
    sh_free(a, pending);
    sh_free(a, order);
    sh_free(a, done);
    return fill_producers(g, err);
}

int sh_graph_compact(sh_graph *g, sh_err *err)
{
    sh_allocator *a = g->alloc;
    int w = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead) {
            free_node(a, &g->nodes[k]);
            continue;
        }
        g->nodes[w++] = g->nodes[k];
    }
    g->n_nodes = w;
    char *used = sh_calloc(a, (size_t)(g->n_tensors ? g->n_tensors : 1), 1);
    int *remap = sh_alloc(a, (size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(int));
    if (!used || !remap) {
        sh_free(a, used);
        sh_free(a, remap);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': out of memory compacting", g->name);
    }
    for (int k = 0; k < g->n_nodes; k++) {
        sh_node *n = &g->nodes[k];
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0)
                used[n->inputs[i]] = 1;
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0)
                used[n->outputs[i]] = 1;
        for (int i = 0; i < n->n_attrs; i++)
            if (n->attrs[i].type == SH_ATTR_TENSOR && n->attrs[i].tensor >= 0)
                used[n->attrs[i].tensor] = 1;
    }
    for (int i = 0; i < g->n_inputs; i++)
        used[g->inputs[i]] = 1;
    for (int i = 0; i < g->n_outputs; i++)
        used[g->outputs[i]] = 1;
    int nt = 0;
    for (int t = 0; t < g->n_tensors; t++) {
        if (!used[t]) {
            free_tensor(a, &g->tensors[t]);
            remap[t] = -1;
            continue;
        }
        remap[t] = nt;
        g->tensors[nt++] = g->tensors[t];
    }
    g->n_tensors = nt;
    for (int k = 0; k < g->n_nodes; k++) {
        sh_node *n = &g->nodes[k];
        for (int i = 0; i < n->n_inputs; i++)
            if (n->inputs[i] >= 0)
                n->inputs[i] = remap[n->inputs[i]];
        for (int i = 0; i < n->n_outputs; i++)
            if (n->outputs[i] >= 0)
                n->outputs[i] = remap[n->outputs[i]];
        for (int i = 0; i < n->n_attrs; i++)
            if (n->attrs[i].type == SH_ATTR_TENSOR && n->attrs[i].tensor >= 0)
                n->attrs[i].tensor = remap[n->attrs[i].tensor];
    }
    for (int i = 0; i < g->n_inputs; i++)
        g->inputs[i] = remap[g->inputs[i]];
    for (int i = 0; i < g->n_outputs; i++)
        g->outputs[i] = remap[g->outputs[i]];
    sh_free(a, used);
    sh_free(a, remap);
    if (index_rebuild(g))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': out of memory indexing names", g->name);
    return fill_producers(g, err);
}
