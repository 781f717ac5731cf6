/* YOLO-style candidate filtering kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_DECODE_CUH
#define SHOAL_CUDA_DECODE_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zeroes *count, then appends every candidate scoring >= thresh (up to max_out stored;
 * *count may exceed max_out, telling the caller how many there were). */
cudaError_t sh_k_filter(sh_k_candidate *out, int *count, const float *x, const sh_k_filter_p *p,
                        cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
