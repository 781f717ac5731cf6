/* shoal's own convolution: channels-last fp16 implicit GEMM on tensor cores (sm_80+), with the
 * bias, activation and residual add fused into its epilogue, and channel-strided input,
 * output and residual so channel slices (split/concat) can be views. Launchers callable from
 * C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_IGEMM_CUH
#define SHOAL_CUDA_IGEMM_CUH

#include "backends/cuda/ktypes.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sh_k_igemm {
    int n, h, w, c;          /* input [n, h, w, c], pixel stride x_ld (elements) */
    int oh, ow, k;           /* output [n, oh, ow, k], pixel stride y_ld */
    int kh, kw, sh, sw, ph, pw, dh, dw;   /* ph/pw: leading pads (trailing follow from oh/ow) */
    int x_ld, y_ld, r_ld;    /* r_ld: residual's pixel stride */
    /* > 0: a transposed conv with kernel == stride run as this 1x1 GEMM (k = up_h * up_w *
     * channels): column (i * up_w + j) * channels + co of pixel (h, w) is written to output
     * pixel (h * up_h + i, w * up_w + j), channel co (pixel stride y_ld); no residual */
    int up_h, up_w;
    sh_k_act act;
    int wg;                  /* the sm_90a wgmma kernel (set before planning; see sh_k_igemm_init) */
    int bm, bn;              /* tile (32|64|128) x (16|32|64), chosen by sh_k_igemm_plan */
    int splits;              /* K split across CTAs (1 = none) */
    int pdl;                 /* launch as a programmatic dependent of the previous step (sm_90) */
} sh_k_igemm_p;

/* Once per device before the first launch (large shared-memory tiles); sm_80 and newer.
 * max_smem: the device's opt-in shared memory per block (cudaDevAttrMaxSharedMemoryPerBlockOptin).
 * *wgmma: 1 when the build has sm_90a machine code for this device (wg may be set). */
cudaError_t sh_k_igemm_init(int max_smem, int *wgmma);
/* Shared memory of a bm x bn tile's pipeline, bytes. */
int sh_k_igemm_smem(int bm, int bn);
/* Fills tile and split choice (only tiles within max_smem); returns the fp32 scratch bytes
 * the launch needs (0 when unsplit). `sms` is the device's multiprocessor count. */
size_t sh_k_igemm_plan(sh_k_igemm_p *p, int sms, int max_smem);
/* Number of split-K tile counters a launch of p uses (they must be zero before, and are
 * zero again after, every launch). */
int sh_k_igemm_counters(const sh_k_igemm_p *p);
/* y[m, j] = act(sum x*w + bias[j]) (+ res[m, j]) for every output pixel m and channel j.
 * w is [k][kh][kw][c] fp16; bias and res may be NULL. x, y, res 16-byte aligned when their
 * channel counts and strides are multiples of 8 (the fast path), else 2-byte. */
cudaError_t sh_k_igemm(void *y, const void *x, const void *w, const void *bias, const void *res,
                       const sh_k_igemm_p *p, void *scratch, int *counters, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
