/* Direct convolutions on NHWC tensors as an implicit GEMM, for CPUs whose oneDNN has no fast
 * kernel for them (AVX2: jit:avx2 ran YOLO's 3x3 stride-2 convs at about a third of the FMA
 * peak and its 1x1 convs at about two thirds; docs/cpu-perf.md, v14).
 *
 * Output pixels are the GEMM's rows, output channels its columns, and (filter tap, input
 * channel) its depth. No im2col matrix is written: in NHWC an output pixel's input under one
 * tap is C contiguous floats, so each pixel's row of the GEMM is `taps` pointers into the input
 * (a zero row where the tap lands in the padding), and the 6x16 register tiles (fma_tiles.h)
 * read the input in place. Pixels go in blocks of CPU_IGEMM_PIXELS, one block at a time per
 * pool thread: the block's pointer table is built once and each weight panel is then read once
 * per block, from the core's L2. The weights are packed once, at load, into 16-column panels
 * the same size as the plain ones, so this path costs no extra weight bytes.
 *
 *   cpu_igemm g;
 *   if (cpu_igemm_init(&g, &geom, act, a, b)) ...           // false: not a shape this path takes
 *   cpu_igemm_pack(oihw, &g, packed);                        // packed: cpu_igemm_weight_bytes(&g)
 *   cpu_igemm_run(&g, pool, x_nhwc, packed, bias, y_nhwc, scratch);
 *
 * 2-D convs of one group, any kernel size up to CPU_IGEMM_MAX_TAPS taps, stride, dilation and
 * padding, output channels a multiple of 8, on a CPU with AVX2 and FMA (cpu_fma_tiles_ok: the
 * file is built for them in every build type, so ask before calling anything else). */
#ifndef SHOAL_BACKENDS_CPU_IGEMM_H
#define SHOAL_BACKENDS_CPU_IGEMM_H

#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/fma_tiles.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPU_IGEMM_PIXELS 48   /* pixels per block: eight register tiles of six */
#define CPU_IGEMM_MAX_TAPS 49

typedef struct cpu_igemm_geom {
    int64_t H, W, C;            /* input map and channels */
    int64_t OH, OW, K;          /* output map and channels */
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pad_top, pad_left;  /* the bottom and right padding follow from OH, OW */
} cpu_igemm_geom;

typedef struct cpu_igemm {
    cpu_igemm_geom g;
    int taps;
    int64_t P;
    sh_act act;
    float act_a, act_b;
} cpu_igemm;

bool cpu_igemm_init(cpu_igemm *c, const cpu_igemm_geom *g, sh_act act, float act_a, float act_b);
size_t cpu_igemm_weight_bytes(const cpu_igemm *c);
/* Scratch for n_threads workers: each its block's pointer table, a zero row and an edge tile. */
size_t cpu_igemm_scratch_bytes(const cpu_igemm *c, int n_threads);
/* oihw: [K, C, kh, kw] as ONNX stores it; packed: panels of 16 output channels (the last 8 wide
 * when K % 16 == 8), each [taps][C][width]. */
void cpu_igemm_pack(const float *oihw, const cpu_igemm *c, float *packed);
void cpu_igemm_run(const cpu_igemm *c, cpu_pool *pool, const float *x, const float *packed, const float *bias,
                   float *y, char *scratch);

#endif
