/* float32 -> IEEE half conversion for weight packing.
 *
 * One rounding everywhere: round to nearest, ties to even, with two shoal-specific choices
 * kept from the original CUDA packer so packed bytes never change: a value that rounds to
 * 65520 or more (infinity included) saturates to +-65504 (0x7bff) instead of becoming
 * infinity, and every NaN becomes the quiet NaN 0x7e00 with its sign.
 *
 *   uint16_t h = sh_f32_to_f16(x);            // one value: the reference
 *   sh_f32_to_f16_n(dst, src, n);             // n values, same bits, vectorized */
#ifndef SHOAL_CORE_HALF_H
#define SHOAL_CORE_HALF_H

#include <stddef.h>
#include <stdint.h>

uint16_t sh_f32_to_f16(float f);
/* dst[i] = sh_f32_to_f16(src[i]) for i < n; F16C where the CPU has it, else a branch-free
 * integer version the compiler vectorizes. dst and src must not overlap. */
void sh_f32_to_f16_n(uint16_t *dst, const float *src, size_t n);
/* The portable path alone, for tests that compare it on a machine with F16C. */
void sh_f32_to_f16_n_portable(uint16_t *dst, const float *src, size_t n);

/* IEEE binary16 conversions for graph values (Cast, fp16 model inputs and outputs): round to
 * nearest even, overflow to infinity, NaN kept (quiet). Unlike sh_f32_to_f16, nothing
 * saturates: Cast must give what ONNX's reference gives. */
uint16_t sh_f32_to_f16_ieee(float f);
float sh_f16_to_f32(uint16_t h);

#endif
