/* fp32<->fp16 conversion kernels and the 8-bit input picture: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_CONVERT_CUH
#define SHOAL_CUDA_CONVERT_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t sh_k_f32_to_f16(void *dst, const float *src, int n, sh_k_stream s);
cudaError_t sh_k_f16_to_f32(float *dst, const void *src, int n, sh_k_stream s);

/* value of byte v in channel c (3 KiB: passed by value, within the launch parameter limit) */
typedef struct sh_k_image_lut {
    float v[3][256];
} sh_k_image_lut;
/* dst: 3 planes of width*height floats; hwc: width*height*3 bytes the device can read
 * (device memory, or pinned host memory mapped into the address space). */
cudaError_t sh_k_image_to_nchw(float *dst, const uint8_t *hwc, int width, int height, const sh_k_image_lut *lut,
                               cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
