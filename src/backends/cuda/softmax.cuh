/* Softmax kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_SOFTMAX_CUH
#define SHOAL_CUDA_SOFTMAX_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Softmax over the middle axis of [outer, l, inner]. */
cudaError_t sh_k_softmax(void *y, const void *x, int outer, int l, int inner, sh_k_stream s);

#ifdef __cplusplus
}
#endif
#endif
