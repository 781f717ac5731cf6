/* Register blocks of the own AVX2 convolutions (fma_tiles.h). The accumulators are named
 * variables, not an array: GCC 12 spills an array of them to the stack inside the loop, which
 * halved the Winograd GEMM's speed (docs/cpu-perf.md, v13). */
#include "backends/cpu/fma_tiles.h"

#ifdef __AVX2__
#include <immintrin.h>

#define FMA_ROW(r, i)                                                                                              \
    do {                                                                                                           \
        __m256 b_ = _mm256_broadcast_ss(r + c);                                                                    \
        a##i##0 = _mm256_fmadd_ps(b_, u0, a##i##0);                                                                \
        a##i##1 = _mm256_fmadd_ps(b_, u1, a##i##1);                                                                \
    } while (0)

void cpu_tile_6x16(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                   const float *init, float *y, size_t ldy)
{
    __m256 a00 = init ? _mm256_loadu_ps(init) : _mm256_setzero_ps();
    __m256 a01 = init ? _mm256_loadu_ps(init + 8) : _mm256_setzero_ps();
    __m256 a10 = a00, a11 = a01, a20 = a00, a21 = a01, a30 = a00, a31 = a01, a40 = a00, a41 = a01, a50 = a00,
           a51 = a01;
    for (int t = 0; t < taps; t++, B += depth * CPU_TILE_PANEL) {
        const float *const *rt = rows + (size_t)t * ldr;
        const float *r0 = rt[0], *r1 = rt[1], *r2 = rt[2], *r3 = rt[3], *r4 = rt[4], *r5 = rt[5];
        for (int64_t c = 0; c < depth; c++) {
            __m256 u0 = _mm256_loadu_ps(B + c * 16), u1 = _mm256_loadu_ps(B + c * 16 + 8);
            FMA_ROW(r0, 0);
            FMA_ROW(r1, 1);
            FMA_ROW(r2, 2);
            FMA_ROW(r3, 3);
            FMA_ROW(r4, 4);
            FMA_ROW(r5, 5);
        }
    }
    _mm256_storeu_ps(y, a00);
    _mm256_storeu_ps(y + 8, a01);
    _mm256_storeu_ps(y + ldy, a10);
    _mm256_storeu_ps(y + ldy + 8, a11);
    _mm256_storeu_ps(y + 2 * ldy, a20);
    _mm256_storeu_ps(y + 2 * ldy + 8, a21);
    _mm256_storeu_ps(y + 3 * ldy, a30);
    _mm256_storeu_ps(y + 3 * ldy + 8, a31);
    _mm256_storeu_ps(y + 4 * ldy, a40);
    _mm256_storeu_ps(y + 4 * ldy + 8, a41);
    _mm256_storeu_ps(y + 5 * ldy, a50);
    _mm256_storeu_ps(y + 5 * ldy + 8, a51);
}

void cpu_tile_6x8(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                  const float *init, float *y, size_t ldy)
{
    __m256 a0 = init ? _mm256_loadu_ps(init) : _mm256_setzero_ps();
    __m256 a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;
    for (int t = 0; t < taps; t++, B += depth * 8) {
        const float *const *rt = rows + (size_t)t * ldr;
        const float *r0 = rt[0], *r1 = rt[1], *r2 = rt[2], *r3 = rt[3], *r4 = rt[4], *r5 = rt[5];
        for (int64_t c = 0; c < depth; c++) {
            __m256 u = _mm256_loadu_ps(B + c * 8);
            a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(r0 + c), u, a0);
            a1 = _mm256_fmadd_ps(_mm256_broadcast_ss(r1 + c), u, a1);
            a2 = _mm256_fmadd_ps(_mm256_broadcast_ss(r2 + c), u, a2);
            a3 = _mm256_fmadd_ps(_mm256_broadcast_ss(r3 + c), u, a3);
            a4 = _mm256_fmadd_ps(_mm256_broadcast_ss(r4 + c), u, a4);
            a5 = _mm256_fmadd_ps(_mm256_broadcast_ss(r5 + c), u, a5);
        }
    }
    _mm256_storeu_ps(y, a0);
    _mm256_storeu_ps(y + ldy, a1);
    _mm256_storeu_ps(y + 2 * ldy, a2);
    _mm256_storeu_ps(y + 3 * ldy, a3);
    _mm256_storeu_ps(y + 4 * ldy, a4);
    _mm256_storeu_ps(y + 5 * ldy, a5);
}
#else
void cpu_tile_6x16(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                   const float *init, float *y, size_t ldy)
{
    (void)rows, (void)ldr, (void)taps, (void)depth, (void)B, (void)init, (void)y, (void)ldy;
}

void cpu_tile_6x8(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                  const float *init, float *y, size_t ldy)
{
    (void)rows, (void)ldr, (void)taps, (void)depth, (void)B, (void)init, (void)y, (void)ldy;
}
#endif
