/* YOLO score filtering on the device: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_DECODE_CUH
#define SHOAL_CUDA_DECODE_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zeroes the count at out, then writes the compact buffer (header and up to p->rows
 * survivors, ktypes.h sh_k_yolo_filter_p) of the fp32 [channels, n] output x. The count may
 * exceed p->rows: the rows past it are not written. Survivor order is not deterministic. */
cudaError_t sh_k_yolo_filter(void *out, const float *x, const sh_k_yolo_filter_p *p, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
