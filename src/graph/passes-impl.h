/* Private to src/graph: helpers shared by inference, folding and fusion. */
#ifndef SHOAL_GRAPH_PASSES_IMPL_H
#define SHOAL_GRAPH_PASSES_IMPL_H

#include "graph/passes.h"

/* Formats "node 'NAME' (Op): <message>" into err; returns status. */
int sh_node_errf(sh_err *err, int status, const sh_graph *g, const sh_node *n, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Reads constant integer tensor t (int64 or int32, any shape) into out[0..cap). Returns the
 * element count, or -1 when t is not a constant integer tensor or has more than cap values. */
int sh_const_ints(const sh_graph *g, int t, int64_t *out, int cap);
/* Same for a float32/float64 constant. */
int sh_const_floats(const sh_graph *g, int t, float *out, int cap);

/* Sets output i of n to dtype dt and shape *s; an omitted output is left alone. Returns 0 so
 * that inference can end with `return sh_infer_set_out(...)`. */
int sh_infer_set_out(sh_graph *g, const sh_node *n, int i, sh_dtype dt, const sh_shape *s);
/* Input i of n into *x: SHOAL_ERR_PARSE when it is omitted, SHOAL_ERR_SHAPE when its shape is
 * not inferred yet, each naming the node. */
int sh_infer_need_input(const sh_graph *g, const sh_node *n, int i, const sh_tensor **x, sh_err *err);

/* Whether Conv weight w ([M, C/group, k...]) fits input x ([N, C, ...]) with `group` groups;
 * SHOAL_ERR_SHAPE naming the node and both shapes when not. */
int sh_infer_conv_weight(const sh_graph *g, const sh_node *n, const sh_tensor *x, const sh_tensor *w, int64_t group,
                         sh_err *err);
/* The output shape of a windowed op (Conv, pooling, their quantized forms): x's with `channels`
 * channels and geo's spatial dims. */
sh_shape sh_window_out_shape(const sh_shape *x, int64_t channels, const sh_window_geom *geo);

/* Multidirectional (numpy) broadcasting; false when the shapes do not broadcast. */
bool sh_shape_broadcast(const sh_shape *a, const sh_shape *b, sh_shape *out);

/* Infers the output dtypes and shapes of node k from its inputs. */
/* fuse.c: recomputes every tensor's producer and consumer count over the live nodes (passes
 * that rewire nodes call it before reading them). */
void sh_graph_refresh_uses(sh_graph *g);

int sh_infer_node(sh_graph *g, int k, sh_err *err);

/* Shape inference of the quantized ops (infer_quant.c). */
int sh_infer_quant_node(sh_graph *g, int k, sh_err *err);

/* Whether the reference evaluator can fold this op (given constant inputs). */
bool sh_fold_supported(sh_op op);
/* Evaluates node k (outputs already inferred) into constant outputs and marks it dead.
 * *folded is false (and nothing changes) when the op, a dtype or the size is out of scope. */
int sh_fold_node(sh_graph *g, int k, size_t max_bytes, bool *folded, sh_err *err);

#endif
