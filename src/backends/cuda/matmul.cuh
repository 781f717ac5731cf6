/* MatMul / Gemm kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_MATMUL_CUH
#define SHOAL_CUDA_MATMUL_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = act(alpha * A.B + beta * C); c may be NULL. */
cudaError_t sh_k_gemm(void *y, const void *a, const void *b, const void *c, const sh_k_gemm_p *p,
                      sh_k_stream s);

#ifdef __cplusplus
}
#endif
#endif
