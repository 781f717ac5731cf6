/* The first layer of a vision net: a convolution of the fp32 NCHW graph input with few
 * channels (RGB), straight into channels-last fp16 with bias and activation fused (launcher
 * callable from C, conventions in ktypes.h). */
#ifndef SHOAL_CUDA_CONV_PLANAR_CUH
#define SHOAL_CUDA_CONV_PLANAR_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sh_k_planar {
    int n, c, h, w;          /* input [n, c, h, w] fp32 */
    int oh, ow, k;           /* output [n, oh, ow, k] fp16, pixel stride y_ld */
    int kh, kw, sh, sw, ph, pw, dh, dw;
    int y_ld;
    sh_k_act act;
} sh_k_planar_p;

/* Whether the kernel takes this geometry: c <= SH_K_PLANAR_MAX_C, k a multiple of 8 and its
 * weights within the kernel's shared memory. */
#define SH_K_PLANAR_MAX_C 4
int sh_k_planar_fits(const sh_k_planar_p *p);
/* y[n, oy, ox, j] = act(sum x * w + bias[j]); w is [k][kh][kw][c] fp16, bias fp16 or NULL. */
cudaError_t sh_k_conv_planar(void *y, const float *x, const void *w, const void *bias, const sh_k_planar_p *p,
                             cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
