/* Pooling and reductions kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_POOL_CUH
#define SHOAL_CUDA_POOL_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_pool2d(void *y, const void *x, const sh_k_pool *p, sh_k_stream s);
/* Mean over the middle axis of [outer, r, inner]. */
cudaError_t sh_k_reduce_mean(void *y, const void *x, int outer, int r, int inner, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
