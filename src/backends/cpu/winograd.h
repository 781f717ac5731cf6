/* Winograd F(2x2, 3x3) convolutions on NHWC tensors, for CPUs whose oneDNN has no fast direct
 * kernel (AVX2: jit:avx2 runs YOLO's 3x3 stride-1 convs at about half the FMA peak, while this
 * form does 2.25x fewer multiplies in GEMMs that run near it).
 *
 * The output is cut into 2x2 tiles; each tile's 4x4 input patch is transformed (B^T d B), the
 * 16 transformed planes are multiplied by the transformed weights U = G g G^T in 16 GEMMs of
 * [tiles x C] x [C x K], and each tile's 4x4 result is folded back (A^T m A) into its 2x2
 * outputs, with the bias and the activation. Tiles go in blocks of CPU_WINO_TILES, one block at
 * a time per pool thread, so the transformed data of a block stays in the core's L2 and the
 * scratch is bounded (cpu_wino_scratch_bytes) whatever the image size.
 *
 *   cpu_wino w;
 *   if (cpu_wino_init(&w, H, W, C, K, act, a, b)) ...      // false: not a shape this path takes
 *   cpu_wino_pack(oihw, &w, packed);                        // packed: cpu_wino_weight_bytes(&w)
 *   cpu_wino_run(&w, pool, x_nhwc, packed, bias, y_nhwc, scratch);
 *
 * Only 3x3 kernels of stride 1, dilation 1 and padding 1 on every side (output size = input
 * size), one group, C and K multiples of 8, on a CPU with AVX2 and FMA (cpu_fma_tiles_ok: the
 * file is built for them in every build type, so ask before calling anything else). */
#ifndef SHOAL_BACKENDS_CPU_WINOGRAD_H
#define SHOAL_BACKENDS_CPU_WINOGRAD_H

#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/fma_tiles.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPU_WINO_TILES 32

typedef struct cpu_wino {
    int64_t H, W, C, K;
    int64_t tiles_w, n_tiles;
    sh_act act;
    float act_a, act_b;
} cpu_wino;

bool cpu_wino_init(cpu_wino *w, int64_t H, int64_t W, int64_t C, int64_t K, sh_act act, float act_a,
                   float act_b);
size_t cpu_wino_weight_bytes(const cpu_wino *w);
/* Scratch for n_threads workers (each its own block's transformed input and GEMM output). */
size_t cpu_wino_scratch_bytes(const cpu_wino *w, int n_threads);
/* oihw: [K, C, 3, 3] as ONNX stores it; packed: [16][C][K]. */
void cpu_wino_pack(const float *oihw, const cpu_wino *w, float *packed);
void cpu_wino_run(const cpu_wino *w, cpu_pool *pool, const float *x, const float *packed, const float *bias,
                  float *y, char *scratch);

#endif
