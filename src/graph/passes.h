/* Graph passes: shape inference with constant folding, dead-node removal, fusions.
 * Every backend runs on the graph these leave behind. */
#ifndef SHOAL_GRAPH_PASSES_H
#define SHOAL_GRAPH_PASSES_H

#include "graph/graph.h"

typedef struct sh_optimize_params {
    bool fold_constants;     /* evaluate nodes whose inputs are all constant (shape arithmetic) */
    bool fuse;               /* BatchNorm into Conv, Conv+activation, SiLU, no-op removal */
    size_t fold_max_bytes;   /* largest constant a fold may produce (default 16 MiB) */
} sh_optimize_params;

sh_optimize_params sh_optimize_default_params(void);

/* Infers dtype and static shape of every tensor, folding constants where the shapes depend
 * on them (Shape -> Gather -> ... -> Reshape chains). Graph inputs must have static shapes.
 * Errors name the node, op and tensor. */
int sh_graph_infer_shapes(sh_graph *g, sh_err *err);

/* infer shapes + fold, remove dead nodes, fuse, compact, finalize. On failure the graph is
 * left consistent but possibly partly rewritten. */
int sh_graph_optimize(sh_graph *g, const sh_optimize_params *p, sh_err *err);

#endif
