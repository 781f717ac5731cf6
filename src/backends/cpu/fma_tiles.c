/* Register blocks of the own AVX2 convolutions (fma_tiles.h). The accumulators are named
 * variables, not an array: GCC 12 spills an array of them to the stack inside the loop, which
 * halved the Winograd GEMM's speed (docs/cpu-perf.md, v13). */
#include "backends/cpu/fma_tiles.h"

#ifdef __AVX2__
#include <immintrin.h>

/* cpu_logistic (cpu_impl.h) on eight lanes: the same clamps, fused multiply-adds, products and
 * division in the same order, so the same bits. The maxima and minima take x as their second
 * operand, which AVX returns when either is NaN, as the scalar selects keep a NaN. */
static inline __m256 logistic8(__m256 x)
{
    x = _mm256_max_ps(_mm256_set1_ps(-18.0f), x);
    x = _mm256_min_ps(_mm256_set1_ps(18.0f), x);
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 p = _mm256_fmadd_ps(x2, _mm256_set1_ps(4.37031012579801e-11f), _mm256_set1_ps(1.15627324459942e-07f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(6.08574864600143e-05f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(8.51377133304701e-03f));
    p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.48287947061529e-01f));
    p = _mm256_mul_ps(p, x);
    __m256 q = _mm256_fmadd_ps(x2, _mm256_set1_ps(6.10247389755681e-13f), _mm256_set1_ps(5.76102136993427e-09f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(6.29106785017040e-06f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.70198817374094e-03f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(1.16817656904453e-01f));
    q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(9.93151921023180e-01f));
    __m256 y = _mm256_add_ps(_mm256_div_ps(p, q), _mm256_set1_ps(0.5f));
    y = _mm256_max_ps(_mm256_setzero_ps(), y);
    return _mm256_min_ps(_mm256_set1_ps(1.0f), y);
}

/* The result of one register: x > 0 ? x : 0 keeps no NaN, which max(x, 0) matches. */
static inline __m256 activate(__m256 x, cpu_tile_act act)
{
    switch (act) {
    case CPU_TILE_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps());
    case CPU_TILE_ACT_SIGMOID: return logistic8(x);
    case CPU_TILE_ACT_SILU: return _mm256_mul_ps(x, logistic8(x));
    default: return x;
    }
}

#define FMA_ROW(r, i)                                                                                              \
    do {                                                                                                           \
        __m256 b_ = _mm256_broadcast_ss(r + c);                                                                    \
        a##i##0 = _mm256_fmadd_ps(b_, u0, a##i##0);                                                                \
        a##i##1 = _mm256_fmadd_ps(b_, u1, a##i##1);                                                                \
    } while (0)

void cpu_tile_6x16(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                   const float *init, cpu_tile_act act, float *y, size_t ldy)
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
    _mm256_storeu_ps(y, activate(a00, act));
    _mm256_storeu_ps(y + 8, activate(a01, act));
    _mm256_storeu_ps(y + ldy, activate(a10, act));
    _mm256_storeu_ps(y + ldy + 8, activate(a11, act));
    _mm256_storeu_ps(y + 2 * ldy, activate(a20, act));
    _mm256_storeu_ps(y + 2 * ldy + 8, activate(a21, act));
    _mm256_storeu_ps(y + 3 * ldy, activate(a30, act));
    _mm256_storeu_ps(y + 3 * ldy + 8, activate(a31, act));
    _mm256_storeu_ps(y + 4 * ldy, activate(a40, act));
    _mm256_storeu_ps(y + 4 * ldy + 8, activate(a41, act));
    _mm256_storeu_ps(y + 5 * ldy, activate(a50, act));
    _mm256_storeu_ps(y + 5 * ldy + 8, activate(a51, act));
}

void cpu_tile_6x8(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                  const float *init, cpu_tile_act act, float *y, size_t ldy)
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
    _mm256_storeu_ps(y, activate(a0, act));
    _mm256_storeu_ps(y + ldy, activate(a1, act));
    _mm256_storeu_ps(y + 2 * ldy, activate(a2, act));
    _mm256_storeu_ps(y + 3 * ldy, activate(a3, act));
    _mm256_storeu_ps(y + 4 * ldy, activate(a4, act));
    _mm256_storeu_ps(y + 5 * ldy, activate(a5, act));
}
#else
void cpu_tile_6x16(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                   const float *init, cpu_tile_act act, float *y, size_t ldy)
{
    (void)rows, (void)ldr, (void)taps, (void)depth, (void)B, (void)init, (void)act, (void)y, (void)ldy;
}

void cpu_tile_6x8(const float *const *rows, size_t ldr, int taps, int64_t depth, const float *B,
                  const float *init, cpu_tile_act act, float *y, size_t ldy)
{
    (void)rows, (void)ldr, (void)taps, (void)depth, (void)B, (void)init, (void)act, (void)y, (void)ldy;
}
#endif
