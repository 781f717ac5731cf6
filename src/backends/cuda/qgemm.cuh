/* The int8 tensor-core convolution (qgemm.cu): 2-D QLinearConv / ConvInteger without groups,
 * int8 or uint8 on either side, zero points anywhere, as an implicit GEMM on mma.sync
 * m16n8k32 (sm_80+). Launchers callable from C (conventions in ktypes.h). */
#ifndef SHOAL_CUDA_QGEMM_CUH
#define SHOAL_CUDA_QGEMM_CUH

#include "backends/cuda/quant.cuh"

#ifdef __cplusplus
extern "C" {
#endif

/* Channels of the padded NHWC input and K of the packed weights: the input's channels padded
 * to 16 (one 16-byte load never crosses a kernel tap), K = kh * kw * that, padded to the K step. */
#define SH_KQG_CALIGN 16
#define SH_KQG_KSTEP 64

static inline int sh_kqg_cpad(int c) { return (c + SH_KQG_CALIGN - 1) / SH_KQG_CALIGN * SH_KQG_CALIGN; }
static inline int sh_kqg_kpad(int kh, int kw, int c)
{
    int k = kh * kw * sh_kqg_cpad(c);
    return (k + SH_KQG_KSTEP - 1) / SH_KQG_KSTEP * SH_KQG_KSTEP;
}

/* The padded input's extent: every row and column the windows read, the zero point outside. */
typedef struct sh_kqg_geom {
    int cp, hp, wp, kp;
} sh_kqg_geom;

/* Packed weights ([m][kp] codes: taps, then channels, zero beyond c and K; then [m] int32 sums
 * of each filter's weights) and the padded-input workspace (n * hp * wp * cp bytes, 16-byte
 * aligned). io.w points at the packed weights. Needs compute capability 8.0. */
cudaError_t sh_kq_conv_tc(const sh_kq_conv_io *io, const sh_kq_conv_p *p, const sh_kqg_geom *gm,
                          const sh_kq_qconv_tab *tab, void *xpad, cudaStream_t s);

#ifdef __cplusplus
}
#endif
#endif
