/* Resize / Upsample kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_RESIZE_CUH
#define SHOAL_CUDA_RESIZE_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_resize(void *y, const void *x, const sh_k_resize_p *p, sh_k_stream s);
/* Nearest only (p->linear 0, p->nhwc 0), over 1-byte elements (int8 / uint8 codes). */
cudaError_t sh_k_resize_bytes(void *y, const void *x, const sh_k_resize_p *p, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
