/* fp32<->fp16 conversion kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_CONVERT_CUH
#define SHOAL_CUDA_CONVERT_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_f32_to_f16(void *dst, const float *src, int n, sh_k_stream s);
cudaError_t sh_k_f16_to_f32(float *dst, const void *src, int n, sh_k_stream s);


#ifdef __cplusplus
}
#endif
#endif
