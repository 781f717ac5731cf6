/* Quantized nodes on the CUDA backend (cuda_quant.c): which nodes they are, the storage of
 * their tensors (after the default fp16/fp32 choice), whether one runs, its parameters and
 * raw-packed constants, its launches. */
#ifndef SHOAL_CUDA_QUANT_H
#define SHOAL_CUDA_QUANT_H

#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/quant.cuh"

/* The quantized ops, Cast of integers to float, and int8 / uint8 data moved by reshape,
 * split, concat, slice, transpose or max pooling. */
bool sh_cuda_quant_handles(const sh_graph *g, const sh_node *n);
bool sh_cuda_quant_supports(const sh_graph *g, int node);
void sh_cuda_quant_storage(const sh_graph *g, sh_program *p, sh_cuda_prog *cp);
int sh_cuda_build_quant(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int node, sh_err *err);
int sh_cuda_run_quant(sh_cuda_ctx *c, cudaStream_t s, const sh_graph *g, const sh_node *n, const sh_cuda_node *cn,
                      void *const *tp, char *ws, sh_err *err);
/* The packed weights of a tensor-core conv (SH_WPACK_Q8, qgemm.cuh): [m][kp] codes (int8 or
 * uint8, as the constant's), then [m] int32 filter sums. */
int sh_cuda_pack_q8_weight(const sh_tensor *w, void *dst, sh_err *err);

#endif
