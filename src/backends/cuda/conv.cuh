/* Convolution helpers (cuDNN does the convolutions) kernels: launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_CONV_CUH
#define SHOAL_CUDA_CONV_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y = act(y + bias[c]) in place over [outer, c, inner]; bias may be NULL. Channels-last is
 * inner == 1 (outer = n*h*w). */
cudaError_t sh_k_bias_act(void *y, const void *bias, int outer, int c, int inner, sh_k_act act,
                          sh_k_stream s);
/* Unfused BatchNormalization (inference) over [outer, c, inner]. */
cudaError_t sh_k_batchnorm(void *y, const void *x, const void *gamma, const void *beta,
                           const void *mean, const void *var, float eps, int outer, int c,
                           int inner, cudaStream_t s);
/* Depthwise conv (group == C == K), NCHW or channels-last (nhwc), with fused bias + act.
 * Weights [c, kh, kw], or with w_taps (channels-last only) [kh, kw, c]. */
cudaError_t sh_k_depthwise(void *y, const void *x, const void *w, const void *bias, int n, int c,
                           int h, int wd, int oh, int ow, int kh, int kw, int sh, int sw, int ph,
                           int pw, int dh, int dw, sh_k_act act, int nhwc, int w_taps, sh_k_stream s);

#ifdef __cplusplus
}
#endif
#endif
