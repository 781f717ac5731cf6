#include "runtime/session.h"

#include <string.h>

#include "import/onnx_import.h"
#include "import/tflite_import.h"

typedef struct sess_io {
    char *name;
    sh_dtype dtype;
    sh_shape shape;          /* declared, then fixed */
    int t;                   /* tensor index in the (current) graph; -1 when frozen */
    bool frozen;             /* bound as a constant (freeze_shape_inputs) */
    bool set;                /* data given at least once */
    void *staged;            /* data given before the session was prepared */
    size_t staged_bytes;
    void *host;              /* outputs: host copy of the last run */
    size_t host_bytes;
} sess_io;

struct sh_session {
    sh_allocator *alloc;
    const sh_backend *be;
    sh_session_params params;
    sh_graph *g;
    sess_io *in, *out;
    int n_in, n_out;
    bool prepared;
    sh_program *prog;
    /* memory binding */
    void **tptr;             /* [n_tensors] */
    void **wsptr;            /* [n_nodes] */
    void **owned;            /* backend buffers to free */
    int n_owned;
    unsigned long binding_id;
};

sh_session_params sh_session_default_params(void)
{
    sh_session_params p = {0};
    p.optimize = true;
    p.opt = sh_optimize_default_params();
    return p;
}

/* ---- memory: one buffer per tensor ------------------------------------------------------ */

static void release_memory(sh_session *s)
{
    for (int i = 0; i < s->n_owned; i++)
        s->be->iface->buffer_free(s->be->ctx, s->owned[i]);
    sh_free(s->alloc, s->owned);
    sh_free(s->alloc, s->tptr);
    sh_free(s->alloc, s->wsptr);
    s->owned = NULL;
    s->tptr = s->wsptr = NULL;
    s->n_owned = 0;
}

static int own_buffer(sh_session *s, size_t size, void **out, sh_err *err)
{
    int rc = s->be->iface->buffer_alloc(s->be->ctx, size, out, err);
    if (rc)
        return rc;
    s->owned[s->n_owned++] = *out;
    return 0;
}

/* Gives every tensor, weight and node workspace of the program its own buffer. This is the
 * one function the planned arena (src/plan) replaces. */
static int bind_memory(sh_session *s, sh_err *err)
{
    const sh_graph *g = s->g;
    const sh_program *p = s->prog;
    const sh_device_i *be = s->be->iface;
    size_t nt = (size_t)(g->n_tensors ? g->n_tensors : 1), nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    s->tptr = sh_calloc(s->alloc, nt, sizeof(void *));
    s->wsptr = sh_calloc(s->alloc, nn, sizeof(void *));
    s->owned = sh_calloc(s->alloc, nt + nn, sizeof(void *));
    if (!s->tptr || !s->wsptr || !s->owned)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory");
    int rc;
    for (int t = 0; t < g->n_tensors; t++) {
        if (g->tensors[t].is_const) {
            size_t wb = p->weight_bytes[t];
            if (!wb)
                continue;
            void *host = sh_alloc(s->alloc, wb);
            if (!host)
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory packing '%s'", g->tensors[t].name);
            rc = be->pack_weight(s->be->ctx, p, t, host, err);
            if (!rc)
                rc = own_buffer(s, wb, &s->tptr[t], err);
            if (!rc)
                rc = be->upload(s->be->ctx, s->tptr[t], host, wb, err);
            sh_free(s->alloc, host);
            if (rc)
                return rc;
        } else if (p->alias_of[t] < 0 && p->tensor_bytes[t] > 0) {
            if ((rc = own_buffer(s, p->tensor_bytes[t], &s->tptr[t], err)))
                return rc;
        }
    }
    for (int t = 0; t < g->n_tensors; t++) {
        int r = p->alias_of[t];
        if (r >= 0 && s->tptr[r])
            s->tptr[t] = (char *)s->tptr[r] + p->alias_offset[t];
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (p->workspace_bytes[k] && (rc = own_buffer(s, p->workspace_bytes[k], &s->wsptr[k], err)))
            return rc;
    s->binding_id++;
    return 0;
}

/* ---- create ------------------------------------------------------------------------------ */

static void free_io(sh_allocator *a, sess_io *io, int n)
{
    if (!io)
        return;
    for (int i = 0; i < n; i++) {
        sh_free(a, io[i].name);
        sh_free(a, io[i].staged);
        sh_free(a, io[i].host);
    }
    sh_free(a, io);
}

void sh_session_destroy(sh_session *s)
{
    if (!s)
        return;
    release_memory(s);
    if (s->prog)
        s->be->iface->program_free(s->be->ctx, s->prog);
    free_io(s->alloc, s->in, s->n_in);
    free_io(s->alloc, s->out, s->n_out);
    sh_graph_destroy(s->g);
    sh_free(s->alloc, s);
}

static bool shape_static(const sh_shape *sh)
{
    if (sh->ndim < 0)
        return false;
    for (int i = 0; i < sh->ndim; i++)
        if (sh->d[i] < 0)
            return false;
    return true;
}

/* Does tensor t feed a slot whose value decides an output shape? */
static bool decides_shape(const sh_graph *g, int t)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        for (int i = 0; i < n->n_inputs; i++) {
            if (n->inputs[i] != t)
                continue;
            switch (n->op) {
            case SH_OP_RESHAPE: case SH_OP_SPLIT: case SH_OP_SQUEEZE: case SH_OP_UNSQUEEZE:
            case SH_OP_EXPAND: case SH_OP_REDUCE_MEAN: case SH_OP_UPSAMPLE: case SH_OP_REDUCE_MAX:
            case SH_OP_TOPK: case SH_OP_TILE:
                if (i == 1)
                    return true;
                break;
            case SH_OP_RANGE:
                if (i <= 2)
                    return true;
                break;
            case SH_OP_SLICE: case SH_OP_RESIZE:
                if (i >= 1)
                    return true;
                break;
            case SH_OP_PAD:
                if (i == 1 || i == 3)
                    return true;
                break;
            case SH_OP_CONSTANT_OF_SHAPE:
                if (i == 0)
                    return true;
                break;
            default: break;
            }
        }
    }
    return false;
}

static bool any_frozen_needed(const sh_session *s)
{
    if (!s->params.freeze_shape_inputs)
        return false;
    for (int i = 0; i < s->n_in; i++)
        if (decides_shape(s->g, s->in[i].t))
            return true;
    return false;
}

static int prepare(sh_session *s, sh_err *err);

int sh_session_create_graph(const sh_session_params *p, sh_graph *g, sh_session **out, sh_err *err)
{
    *out = NULL;
    if (!p || !p->backend || !p->backend->iface || !g) {
        sh_graph_destroy(g);
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "session: params, backend and graph are required");
    }
    sh_allocator *a = p->alloc;
    sh_session *s = sh_calloc(a, 1, sizeof *s);
    if (!s) {
        sh_graph_destroy(g);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory");
    }
    s->alloc = a;
    s->be = p->backend;
    s->params = *p;
    s->params.input_shape_names = NULL;
    s->params.input_shapes = NULL;
    s->params.n_input_shapes = 0;
    s->g = g;
    int n_in = 0;
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->tensors[g->inputs[i]].is_const)
            n_in++;
    s->in = sh_calloc(a, (size_t)(n_in ? n_in : 1), sizeof(sess_io));
    s->out = sh_calloc(a, (size_t)(g->n_outputs ? g->n_outputs : 1), sizeof(sess_io));
    if (!s->in || !s->out) {
        sh_session_destroy(s);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory");
    }
    for (int i = 0; i < g->n_inputs; i++) {
        const sh_tensor *t = &g->tensors[g->inputs[i]];
        if (t->is_const)
            continue;
        sess_io *io = &s->in[s->n_in++];
        io->name = sh_strdup(a, t->name);
        io->dtype = t->dtype;
        io->shape = t->shape;
        io->t = g->inputs[i];
        if (!io->name) {
            sh_session_destroy(s);
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory");
        }
        for (int k = 0; k < p->n_input_shapes; k++)
            if (!strcmp(p->input_shape_names[k], t->name))
                io->shape = p->input_shapes[k];
    }
    for (int i = 0; i < g->n_outputs; i++) {
        const sh_tensor *t = &g->tensors[g->outputs[i]];
        sess_io *io = &s->out[s->n_out++];
        io->name = sh_strdup(a, t->name);
        io->dtype = t->dtype;
        io->shape = t->shape;
        io->t = g->outputs[i];
        if (!io->name) {
            sh_session_destroy(s);
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory");
        }
    }
    bool ready = !any_frozen_needed(s);
    for (int i = 0; i < s->n_in; i++)
        if (!shape_static(&s->in[i].shape))
            ready = false;
    if (ready) {
        int rc = prepare(s, err);
        if (rc) {
            sh_session_destroy(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

int sh_session_create_file(const sh_session_params *p, const char *path, sh_session **out, sh_err *err)
{
    *out = NULL;
    if (!p)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "session: params are required");
    sh_graph *g = NULL;
    int rc = sh_tflite_is_path(path) ? sh_tflite_load_file(p->alloc, path, &g, err)
                                     : sh_onnx_load_file(p->alloc, path, &g, err);
    if (rc)
        return rc;
    return sh_session_create_graph(p, g, out, err);
}

/* Fixes input shapes (and frozen values), optimizes, compiles and binds memory. */
static int prepare(sh_session *s, sh_err *err)
{
    sh_graph *g = s->g;
    int rc;
    /* Freeze first: a frozen input stops being a graph input. */
    int keep[256], nk = 0;
    if (g->n_inputs > 256)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "session: %d inputs (max 256)", g->n_inputs);
    for (int i = 0; i < s->n_in; i++) {
        sess_io *io = &s->in[i];
        sh_tensor *t = &g->tensors[io->t];
        if (io->set)
            t->shape = io->shape;
        else if (!shape_static(&io->shape))
            return sh_errf(err, SHOAL_ERR_STATE, "session: input '%s' has dynamic dims and no data yet", io->name);
        else
            t->shape = io->shape;
        if (s->params.freeze_shape_inputs && io->set && decides_shape(g, io->t)) {
            if ((rc = sh_graph_set_const(g, io->t, io->staged, io->staged_bytes, err)))
                return rc;
            t->is_input = false;
            io->frozen = true;
        }
    }
    for (int i = 0; i < g->n_inputs; i++)
        if (!g->tensors[g->inputs[i]].is_const)
            keep[nk++] = g->inputs[i];
    if (nk != g->n_inputs && (rc = sh_graph_set_inputs(g, keep, nk)))
        return sh_errf(err, rc, "session: cannot update graph inputs");
    if (s->params.optimize)
        rc = sh_graph_optimize(g, &s->params.opt, err);
    else
        rc = sh_graph_finalize(g, err);
    if (rc)
        return rc;
    /* Passes renumber tensors: find inputs again by name, outputs by position. */
    for (int i = 0; i < s->n_in; i++) {
        sess_io *io = &s->in[i];
        io->t = io->frozen ? -1 : sh_graph_find_tensor(g, io->name);
        if (!io->frozen && io->t < 0)
            io->t = -2;   /* input no node reads: removed by the passes */
    }
    if (g->n_outputs != s->n_out)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "session: graph has %d outputs after optimize, %d before",
                       g->n_outputs, s->n_out);
    for (int i = 0; i < s->n_out; i++) {
        const sh_tensor *t = &g->tensors[g->outputs[i]];
        s->out[i].t = g->outputs[i];
        s->out[i].dtype = t->dtype;
        s->out[i].shape = t->shape;
        int64_t ne = sh_shape_numel(&t->shape);
        size_t es = sh_dtype_size(t->dtype);
        if (ne < 0 || es == 0)
            return sh_errf(err, SHOAL_ERR_SHAPE, "session: output '%s' has no static shape", t->name);
        s->out[i].host_bytes = (size_t)ne * es;
        s->out[i].host = sh_alloc(s->alloc, s->out[i].host_bytes ? s->out[i].host_bytes : 1);
        if (!s->out[i].host)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory");
    }
    if ((rc = s->be->iface->compile(s->be->ctx, g, &s->prog, err)))
        return rc;
    if ((rc = bind_memory(s, err)))
        return rc;
    s->prepared = true;
    /* Data given before preparing goes in now. */
    for (int i = 0; i < s->n_in; i++) {
        sess_io *io = &s->in[i];
        if (io->set && io->t >= 0 && io->staged_bytes && s->tptr[io->t]) {
            if ((rc = s->be->iface->upload(s->be->ctx, s->tptr[io->t], io->staged, io->staged_bytes, err)))
                return rc;
        }
        if (!io->frozen) {
            sh_free(s->alloc, io->staged);
            io->staged = NULL;
        }
    }
    return 0;
}

/* ---- accessors ----------------------------------------------------------------------------- */

int sh_session_n_inputs(const sh_session *s)
{
    return s->n_in;
}

int sh_session_n_outputs(const sh_session *s)
{
    return s->n_out;
}

int sh_session_input(const sh_session *s, int i, sh_tensor_info *out)
{
    if (i < 0 || i >= s->n_in)
        return SHOAL_ERR_NOT_FOUND;
    out->name = s->in[i].name;
    out->dtype = s->in[i].dtype;
    out->shape = s->in[i].shape;
    return 0;
}

int sh_session_output(const sh_session *s, int i, sh_tensor_info *out)
{
    if (i < 0 || i >= s->n_out)
        return SHOAL_ERR_NOT_FOUND;
    out->name = s->out[i].name;
    out->dtype = s->out[i].dtype;
    out->shape = s->out[i].shape;
    return 0;
}

int sh_session_find_input(const sh_session *s, const char *name)
{
    for (int i = 0; i < s->n_in; i++)
        if (!strcmp(s->in[i].name, name))
            return i;
    return -1;
}

int sh_session_find_output(const sh_session *s, const char *name)
{
    for (int i = 0; i < s->n_out; i++)
        if (!strcmp(s->out[i].name, name))
            return i;
    return -1;
}

bool sh_session_prepared(const sh_session *s)
{
    return s->prepared;
}

const sh_graph *sh_session_graph(const sh_session *s)
{
    return s->prepared ? s->g : NULL;
}

const sh_program *sh_session_program(const sh_session *s)
{
    return s->prog;
}

/* ---- running ------------------------------------------------------------------------------- */

int sh_session_set_input(sh_session *s, int i, sh_dtype dt, const sh_shape *shape, const void *data,
                         size_t nbytes, sh_err *err)
{
    if (i < 0 || i >= s->n_in)
        return sh_errf(err, SHOAL_ERR_NOT_FOUND, "session: no input %d", i);
    sess_io *io = &s->in[i];
    char a[96], b[96];
    if (io->dtype != SH_DT_UNDEFINED && dt != io->dtype)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "session: input '%s' is %s, data is %s", io->name,
                       sh_dtype_name(io->dtype), sh_dtype_name(dt));
    int64_t ne = sh_shape_numel(shape);
    size_t want;
    if (ne < 0 || !sh_mul_size((size_t)ne, sh_dtype_size(dt), &want) || want != nbytes)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "session: input '%s': %zu bytes for %s %s", io->name, nbytes,
                       sh_dtype_name(dt), sh_shape_str(shape, a, sizeof a));
    bool fits = io->shape.ndim < 0 || io->shape.ndim == shape->ndim;
    for (int d = 0; fits && io->shape.ndim >= 0 && d < shape->ndim; d++)
        if (io->shape.d[d] >= 0 && io->shape.d[d] != shape->d[d])
            fits = false;
    if (!fits || (s->prepared && !sh_shape_equal(&io->shape, shape)))
        return sh_errf(err, SHOAL_ERR_SHAPE, "session: input '%s' is %s, data is %s", io->name,
                       sh_shape_str(&io->shape, a, sizeof a), sh_shape_str(shape, b, sizeof b));
    if (s->prepared) {
        if (io->frozen) {
            if (nbytes != io->staged_bytes || (nbytes && memcmp(data, io->staged, nbytes)))
                return sh_errf(err, SHOAL_ERR_STATE, "session: input '%s' decides shapes and was bound to "
                               "its first value", io->name);
            return 0;
        }
        io->set = true;
        if (io->t < 0 || !nbytes || !s->tptr[io->t])
            return 0;
        return s->be->iface->upload(s->be->ctx, s->tptr[io->t], data, nbytes, err);
    }
    void *copy = sh_alloc(s->alloc, nbytes ? nbytes : 1);
    if (!copy)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "session: out of memory staging '%s'", io->name);
    if (nbytes)
        memcpy(copy, data, nbytes);
    sh_free(s->alloc, io->staged);
    io->staged = copy;
    io->staged_bytes = nbytes;
    io->shape = *shape;
    io->dtype = dt;
    io->set = true;
    return 0;
}

int sh_session_run(sh_session *s, sh_err *err)
{
    int rc;
    for (int i = 0; i < s->n_in; i++)
        if (!s->in[i].set)
            return sh_errf(err, SHOAL_ERR_STATE, "session: input '%s' was not set", s->in[i].name);
    if (!s->prepared && (rc = prepare(s, err)))
        return rc;
    if ((rc = s->be->iface->run(s->be->ctx, s->prog, s->tptr, s->wsptr, s->binding_id, err)))
        return rc;
    for (int i = 0; i < s->n_out; i++) {
        sess_io *io = &s->out[i];
        const sh_tensor *t = &s->g->tensors[io->t];
        if (!io->host_bytes)
            continue;
        if (t->is_const) {
            memcpy(io->host, t->data, io->host_bytes);
        } else if (s->tptr[io->t]) {
            if ((rc = s->be->iface->download(s->be->ctx, io->host, s->tptr[io->t], io->host_bytes, err)))
                return rc;
        } else {
            return sh_errf(err, SHOAL_ERR_INTERNAL, "session: output '%s' has no memory", io->name);
        }
    }
    return 0;
}

int sh_session_get_output(sh_session *s, int i, sh_tensor_info *info, const void **data, size_t *nbytes,
                          sh_err *err)
{
    if (i < 0 || i >= s->n_out)
        return sh_errf(err, SHOAL_ERR_NOT_FOUND, "session: no output %d", i);
    if (!s->prepared)
        return sh_errf(err, SHOAL_ERR_STATE, "session: not run yet");
    if (info)
        sh_session_output(s, i, info);
    *data = s->out[i].host;
    if (nbytes)
        *nbytes = s->out[i].host_bytes;
    return 0;
}
