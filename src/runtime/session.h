/* A session: one model imported, optimized, compiled on one backend and given memory.
 *
 *   sh_session_params p = sh_session_default_params();
 *   p.alloc = alloc;  p.backend = &cpu;
 *   sh_session *s;
 *   if (sh_session_create_file(&p, "model.onnx", &s, &err)) { ...err.msg... }
 *   sh_session_set_input(s, 0, SH_DT_FLOAT32, &shape, pixels, nbytes, &err);
 *   sh_session_run(s, &err);
 *   sh_tensor_info o;  const void *data;
 *   sh_session_get_output(s, 0, &o, &data, &err);     // valid until the next run / destroy
 *   sh_session_destroy(s);
 *
 * Shapes are fixed once. An input whose declared dims are all known, or whose shape is given
 * in the params, is fixed at create; an input with dynamic dims (-1, or no declared shape)
 * takes the shape of the data of the first set_input call, and the model is compiled at the
 * first run, after every input has been set. Later set_input calls must use the same shapes
 * (re-planning on a shape change is not supported: create another session).
 *
 * Memory: every tensor gets its own backend buffer and weights are packed with the backend's
 * pack_weight (bind_memory() in session.c; the planned arena replaces it later). All host
 * allocations go through params.alloc. */
#ifndef SHOAL_RUNTIME_SESSION_H
#define SHOAL_RUNTIME_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "backends/backend.h"
#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"
#include "graph/passes.h"

typedef struct sh_session sh_session;

typedef struct sh_session_params {
    sh_allocator *alloc;             /* required */
    const sh_backend *backend;       /* required; borrowed, must outlive the session */
    bool optimize;                   /* run sh_graph_optimize (default true); false: the graph must
                                        already carry static shapes (hand-built test graphs) */
    sh_optimize_params opt;
    /* Shapes for inputs with dynamic dims, by name (optional). */
    int n_input_shapes;
    const char *const *input_shape_names;
    const sh_shape *input_shapes;
    /* Bind the values of inputs that decide output shapes (Reshape shape, Slice starts/ends/
     * axes/steps, Resize roi/scales/sizes, Split split, (Un)Squeeze axes, Expand shape, Pad pads,
     * ConstantOfShape shape, ReduceMean axes) as constants from the data given before the first
     * run. Conformance tests feed these as inputs; a static-shape engine needs their values.
     * Such an input cannot change afterwards (set_input with other values: SHOAL_ERR_STATE). */
    bool freeze_shape_inputs;
} sh_session_params;

sh_session_params sh_session_default_params(void);

/* Imports an ONNX file (or a TFLite one: .tflite, bundle.task#member) and prepares it as far as the known shapes allow. On failure *out is
 * NULL and nothing stays allocated; SHOAL_ERR_UNSUPPORTED names the op/dtype shoal lacks. */
int sh_session_create_file(const sh_session_params *p, const char *path, sh_session **out, sh_err *err);
/* Same from a graph, which the session takes over (destroyed with it, or on failure). */
int sh_session_create_graph(const sh_session_params *p, sh_graph *g, sh_session **out, sh_err *err);
void sh_session_destroy(sh_session *s);                         /* accepts NULL */

typedef struct sh_tensor_info {
    const char *name;                /* owned by the session */
    sh_dtype dtype;
    sh_shape shape;                  /* dims -1 while not fixed; ndim -1 when not declared */
} sh_tensor_info;

int sh_session_n_inputs(const sh_session *s);
int sh_session_n_outputs(const sh_session *s);
/* Info of input/output i; SHOAL_ERR_NOT_FOUND when out of range. Output shapes are known once
 * the session is prepared (after create with static inputs, or after the first run). */
int sh_session_input(const sh_session *s, int i, sh_tensor_info *out);
int sh_session_output(const sh_session *s, int i, sh_tensor_info *out);
int sh_session_find_input(const sh_session *s, const char *name);     /* -1 if absent */
int sh_session_find_output(const sh_session *s, const char *name);    /* -1 if absent */
bool sh_session_prepared(const sh_session *s);

/* Copies host data into input i. dtype must be the input's; shape must match the fixed shape
 * (or fix it, see above). SHOAL_ERR_SHAPE / SHOAL_ERR_INVALID_ARG leave the input unchanged. */
int sh_session_set_input(sh_session *s, int i, sh_dtype dt, const sh_shape *shape, const void *data,
                         size_t nbytes, sh_err *err);
/* Runs the model (compiling it first when shapes were pending). Every input must have been set
 * at least once. */
int sh_session_run(sh_session *s, sh_err *err);
/* Output i of the last run: info and a host pointer valid until the next run or destroy. */
int sh_session_get_output(sh_session *s, int i, sh_tensor_info *info, const void **data, size_t *nbytes,
                          sh_err *err);

/* The optimized graph (NULL before the session is prepared). */
const sh_graph *sh_session_graph(const sh_session *s);
const sh_program *sh_session_program(const sh_session *s);

#endif
