/* The register blocks under the own AVX2 convolutions (winograd.c's GEMMs, igemm.c's NHWC
 * convs): six output rows by one panel of 16 (or 8) output channels, summed over `taps` input
 * rows per output row, each `depth` floats long:
 *
 *   y[i * ldy + n] = act(init[n] + sum over t < taps, c < depth of
 *                        rows[t * ldr + i][c] * B[(t * depth + c) * width + n])
 *
 * for i < 6 and n < width, with init NULL meaning zero; the activation is applied in registers
 * (the conv's last step, so only where the tile holds the whole sum). A row pointer is anything
 * readable for `depth` floats: a Winograd plane's tile, or an input pixel's channels under one
 * filter tap (a zero row where the tap falls in the padding). B is one panel of packed weights, its taps
 * in order, each [depth][width]. The whole sum stays in twelve (six) registers, so the
 * products never go through memory; fewer than six rows are the caller's to pad (repeat a row)
 * and to copy out.
 *
 * Built with AVX2 and FMA in every build type; cpu_fma_tiles_ok says whether this CPU runs them. */
#ifndef SHOAL_BACKENDS_CPU_FMA_TILES_H
#define SHOAL_BACKENDS_CPU_FMA_TILES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CPU_TILE_ROWS 6
#define CPU_TILE_PANEL 16

/* The activations a tile applies itself; others are the caller's pass over what it wrote.
 * Each equals cpu_apply_act's result bit for bit (the same operations in the same order). */
typedef enum cpu_tile_act {
    CPU_TILE_ACT_NONE,
    CPU_TILE_ACT_RELU,
    CPU_TILE_ACT_SIGMOID,
    CPU_TILE_ACT_SILU,
} cpu_tile_act;

/* Whether this CPU runs the kernels (AVX2 and FMA), asked from code built without them. */
static inline bool cpu_fma_tiles_ok(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

void cpu_tile_6x16(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                   const float *init, cpu_tile_act act, float *y, size_t ldy);
void cpu_tile_6x8(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                  const float *init, cpu_tile_act act, float *y, size_t ldy);

#endif
