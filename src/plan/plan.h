/* Activation planning: where every activation and node workspace of one program lives
 * inside a single arena, decided before anything runs.
 *
 * A backend's compile (backends/backend.h) says how many bytes each tensor takes, which
 * tensors are views into others (zero-copy Reshape, Concat written in place), which node
 * may write its output over a dying input, and how much scratch each node needs. The
 * planner turns that into lifetimes over the execution order (node index = step) and places
 * each lifetime-class in one arena so that no two blocks alive at the same step overlap.
 * Nothing is allocated on the device here: the plan only says how big the arena must be
 * (`arena_bytes`) and where each tensor sits in it; sh_plan_bind() turns an arena base and
 * the weight pointers into the tables backend->run() takes.
 *
 *   sh_plan *plan;
 *   if (sh_plan_build(alloc, g, prog, backend->alignment, &plan, &err)) return err.status;
 *   void *arena = ...device buffer of plan->arena_bytes...;
 *   sh_plan_bind(plan, prog, arena, weight_ptrs, tensor_ptrs, ws_ptrs);
 *   backend->run(ctx, prog, tensor_ptrs, ws_ptrs, binding_id, &err);
 *   sh_plan_destroy(alloc, plan);
 *
 * Models that never run at the same time share one arena: its size is the max over their
 * plans (sh_plan_shared_arena_bytes); N execution contexts need N such arenas.
 *
 * Thread-safety: a built plan is immutable; any number of threads may read and bind it. */
#ifndef SHOAL_PLAN_H
#define SHOAL_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backends/backend.h"
#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"

/* Placement algorithm; plan.c explains each and the choice. AUTO (what sh_plan_build uses)
 * runs the four heuristics and keeps the smallest arena. */
typedef enum sh_plan_strategy {
    SH_PLAN_GREEDY_SIZE = 0,   /* largest block first, lowest offset free over its lifetime */
    SH_PLAN_GREEDY_SIZE_TIGHT, /* largest block first, tightest hole that fits (TFLite Micro) */
    SH_PLAN_GREEDY_BREADTH,    /* largest size x lifetime first, tightest hole */
    SH_PLAN_BEST_FIT,          /* execution order, smallest free hole that fits (ggml-alloc) */
    SH_PLAN_GREEDY_JITTER,     /* greedy-by-size over 48 seeded perturbed orders, best kept */
    SH_PLAN_AUTO,              /* all of the above, smallest arena wins */
    SH_PLAN_STRATEGY_COUNT
} sh_plan_strategy;

const char *sh_plan_strategy_name(sh_plan_strategy s);   /* "greedy-by-size", ... */

typedef struct sh_plan {
    const sh_graph *graph;  /* borrowed (names for drawing); must outlive the plan's readers */
    sh_plan_strategy strategy;   /* the placement that produced the offsets (never AUTO) */
    int n_tensors;
    int n_nodes;
    int n_steps;            /* max(n_nodes, 1): the x extent of the lifetimes */
    size_t alignment;
    size_t arena_bytes;     /* bytes the arena must have (a multiple of alignment) */
    size_t lower_bound;     /* max over steps of the aligned bytes alive at that step */
    /* [n_tensors] byte offset in the arena, SIZE_MAX when not in it (constants, shape-only
     * tensors, views of constants). Views carry their root's offset + their alias offset. */
    size_t *offset;
    size_t *bytes;          /* [n_tensors] program tensor_bytes (0 outside the arena) */
    int *root;              /* [n_tensors] tensor owning the block this one lives in, -1 */
    /* [n_tensors] lifetime of the tensor's block (first and last step, inclusive); -1 when
     * not in the arena. A view or in-place output reports its whole block's lifetime. */
    int *first;
    int *last;
    size_t *ws_offset;      /* [n_nodes] workspace offset, SIZE_MAX when the node needs none */
    size_t *ws_bytes;       /* [n_nodes] */
    int n_blocks;           /* placed blocks (roots + workspaces), for statistics */
    int n_inplace;          /* in-place reuses the program asked for and the planner granted */
} sh_plan;

/* Plans g (finalized; nodes in execution order) as compiled into p. alignment is a power of
 * two (64 on CPU, 256 on CUDA). On success *out is a plan freed with sh_plan_destroy(); on
 * failure *out is NULL, nothing is leaked and err says why (SHOAL_ERR_INVALID_ARG for a
 * malformed program: a view outside its root, an alias cycle; SHOAL_ERR_NO_MEMORY). */
int sh_plan_build(sh_allocator *a, const sh_graph *g, const sh_program *p, size_t alignment,
                  sh_plan **out, sh_err *err);
/* The same with an explicit placement strategy. */
int sh_plan_build_strategy(sh_allocator *a, const sh_graph *g, const sh_program *p, size_t alignment,
                           sh_plan_strategy strategy, sh_plan **out, sh_err *err);
void sh_plan_destroy(sh_allocator *a, sh_plan *plan);                    /* accepts NULL */

/* Fills the pointer tables backend->run() takes: tensor_ptrs_out[n_tensors] (arena slot,
 * packed weight from weight_ptrs[t] — or weight_ptrs[root] + offset for a view of a
 * constant — or NULL) and workspace_ptrs_out[n_nodes] (NULL when none). weight_ptrs may be
 * NULL when the program has no weights. Returns SHOAL_ERR_INVALID_ARG when the plan was not
 * built from this program's graph or arena_base is NULL for a non-empty arena. */
int sh_plan_bind(const sh_plan *plan, const sh_program *p, void *arena_base, void *const *weight_ptrs,
                 void **tensor_ptrs_out, void **workspace_ptrs_out);

/* One arena shared by models that never run at the same time: the largest of the plans'
 * arenas (NULL entries are skipped). */
size_t sh_plan_shared_arena_bytes(const sh_plan *const *plans, int n);
/* Bytes for n_contexts execution contexts, each with its own shared arena (n_contexts x max).
 * Returns SHOAL_ERR_INVALID_ARG on overflow or n_contexts < 0. */
int sh_plan_contexts_arena_bytes(const sh_plan *const *plans, int n, int n_contexts, size_t *out);

/* Check used by tests and `shoal plan --verify`: every pair of tensors (and workspaces) whose
 * lifetimes overlap lies in disjoint byte ranges unless one is a view inside the other's
 * block; every block is aligned and inside arena_bytes. Returns 0 or SHOAL_ERR_INTERNAL with
 * the first conflict named in err. O(blocks^2). */
int sh_plan_verify(const sh_plan *plan, sh_err *err);

/* Draws plans as SVG: one lane per plan stacked vertically, x = step, y = arena offset, each
 * block a rectangle with a <title> tooltip (name, bytes, lifetime), MB on the y axis, arena
 * and lower bound in each lane's legend, and the shared arena in the header (0 = the max of
 * the plans). names[i] may be NULL (the graph's name is used). */
int sh_plan_write_svg(FILE *f, const sh_plan *const *plans, const char *const *names, int n,
                      size_t shared_arena_bytes, sh_err *err);

#endif
