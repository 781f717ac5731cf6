/* Resize / Upsample kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_RESIZE_CUH
#define SHOAL_CUDA_RESIZE_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_resize(void *y, const void *x, const sh_k_resize_p *p, sh_k_stream s);

#ifdef __cplusplus
}
#endif
#endif
