/* Multiply-add work of a graph, 2 FLOPs per multiply-add: the bench's yardstick for kernel
 * time (achieved GFLOP/s) and the runtime's estimate of which model of a mode runs longest.
 * Convolutions are split by shape, because 1x1, dense kxk and depthwise ones run at very
 * different rates. */
#ifndef SHOAL_GRAPH_FLOPS_H
#define SHOAL_GRAPH_FLOPS_H

#include "graph/graph.h"

typedef struct sh_flops {
    double conv_1x1, conv_kxk, conv_grouped, conv_transpose, matmul;
} sh_flops;

/* Live Conv, ConvTranspose, MatMul and Gemm nodes of g (NULL gives zeros). */
sh_flops sh_graph_flops(const sh_graph *g);
double sh_flops_total(const sh_flops *f);

#endif
