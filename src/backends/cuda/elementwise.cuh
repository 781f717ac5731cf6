/* Element-wise kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_ELEMENTWISE_CUH
#define SHOAL_CUDA_ELEMENTWISE_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_unary(void *y, const void *x, int n, sh_k_act act, sh_k_stream s);
/* out = act(a (op) b) with broadcasting described by bc (n = output elements). */
cudaError_t sh_k_binary(void *out, const void *a, const void *b, int n, int op,
                        const sh_k_bcast *bc, sh_k_act act, sh_k_stream s);

#ifdef __cplusplus
}
#endif
#endif
