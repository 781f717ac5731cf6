/* Synthetic graphs and a fake "compile" for planner tests: no backend needed. */
#ifndef SHOAL_TEST_SYNTH_H
#define SHOAL_TEST_SYNTH_H

#include "backends/backend.h"
#include "graph/graph.h"

enum {
    SYN_VIEWS = 1,          /* Reshape/Flatten/Squeeze/Unsqueeze/Identity and contiguous Split are views */
    SYN_CONCAT_INPLACE = 2, /* contiguous Concat inputs are written into the output */
    SYN_INPLACE = 4,        /* unary/binary elementwise ops may overwrite input 0 */
    SYN_WORKSPACE = 8,      /* k x k Conv (k > 1) needs an im2col workspace */
    SYN_ALL = 15
};

/* float32 tensor [1,c,h,w]; returns its index. */
int syn_t(sh_graph *g, const char *name, int64_t c, int64_t h, int64_t w);
/* One-output node; returns the output tensor. */
int syn_unary(sh_graph *g, sh_op op, int x, int64_t c, int64_t h, int64_t w);
int syn_binary(sh_graph *g, sh_op op, int x, int y);
int syn_conv(sh_graph *g, int x, int64_t cout, int k, int stride);
int syn_concat(sh_graph *g, const int *xs, int n);   /* along channels */

/* A YOLOv8-like detector (CSP backbone, SPPF, FPN/PAN neck, 3 decoupled heads) at `size`
 * pixels with channel width multiplier `wm` (16 = "n"). Finalized. */
sh_graph *syn_yolo(sh_allocator *a, int size, int wm);
/* A random DAG of n nodes with random shapes, seeded. Finalized. */
sh_graph *syn_random(sh_allocator *a, unsigned seed, int n);

/* The fake backend's compile: fills tensor_bytes = numel * 4 for non-constant tensors and
 * the view / in-place / workspace tables per `flags`. NULL on allocation failure. */
sh_program *syn_compile(sh_allocator *a, const sh_graph *g, int flags);

#endif
