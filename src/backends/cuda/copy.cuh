/* Strided copy (slice, split, concat, transpose, expand, gather, pad) and fill kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_COPY_CUH
#define SHOAL_CUDA_COPY_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_copy_strided(void *dst, const void *src, const sh_k_copy *p, sh_k_stream s);
cudaError_t sh_k_fill(void *dst, float value, int n, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
