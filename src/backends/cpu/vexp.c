/* The array forms of cpu_expf (vexp.h): AVX-512 and AVX2 + FMA bodies compiled with target
 * attributes, so a build for baseline x86-64 still gets them, chosen per call from what the CPU
 * reports; the scalar function elsewhere and for the AVX2 tail. */
#include "backends/cpu/vexp.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define CPU_EXP_X86 1
#endif

static float exp_scalar(float *y, const float *x, float shift, int64_t n)
{
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        y[i] = cpu_expf(x[i] - shift);
        s += y[i];
    }
    return s;
}

#ifdef CPU_EXP_X86

__attribute__((target("avx2,fma"))) static inline __m256 exp8(__m256 x)
{
    __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
    /* max/min return their second operand when the first is NaN: xc is never NaN. */
    __m256 xc = _mm256_max_ps(x, _mm256_set1_ps(CPU_EXP_LO));
    xc = _mm256_min_ps(xc, _mm256_set1_ps(CPU_EXP_HI));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(CPU_EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(CPU_EXP_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(CPU_EXP_LN2_LO), r);
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(CPU_EXP_P0), r, _mm256_set1_ps(CPU_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CPU_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CPU_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CPU_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CPU_EXP_P5));
    __m256 y = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    y = _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
    return _mm256_blendv_ps(y, x, nan);
}

__attribute__((target("avx2,fma"))) static float exp_avx2(float *y, const float *x, float shift, int64_t n)
{
    __m256 acc = _mm256_setzero_ps(), sh = _mm256_set1_ps(shift);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), sh));
        _mm256_storeu_ps(y + i, v);
        acc = _mm256_add_ps(acc, v);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, acc);
    float s = exp_scalar(y + i, x + i, shift, n - i);
    for (int l = 0; l < 8; l++)
        s += lanes[l];
    return s;
}

__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x)
{
    __mmask16 num = _mm512_cmp_ps_mask(x, x, _CMP_ORD_Q);
    __m512 xc = _mm512_max_ps(x, _mm512_set1_ps(CPU_EXP_LO));
    xc = _mm512_min_ps(xc, _mm512_set1_ps(CPU_EXP_HI));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(CPU_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(CPU_EXP_LN2_HI), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(CPU_EXP_LN2_LO), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(CPU_EXP_P0), r, _mm512_set1_ps(CPU_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CPU_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CPU_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CPU_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(CPU_EXP_P5));
    __m512 y = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    /* y * 2^n with one rounding, overflow to inf and gradual underflow included. */
    y = _mm512_scalef_ps(y, n);
    return _mm512_mask_mov_ps(x, num, y);
}

__attribute__((target("avx512f"))) static float exp_avx512(float *y, const float *x, float shift, int64_t n)
{
    __m512 acc = _mm512_setzero_ps(), sh = _mm512_set1_ps(shift);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), sh));
        _mm512_storeu_ps(y + i, v);
        acc = _mm512_add_ps(acc, v);
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        __m512 v = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), sh));
        _mm512_mask_storeu_ps(y + i, m, v);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(m, v));
    }
    return _mm512_reduce_add_ps(acc);
}

#endif

bool cpu_exp_isa_available(cpu_exp_isa isa)
{
    switch (isa) {
    case CPU_EXP_SCALAR: return true;
#ifdef CPU_EXP_X86
    case CPU_EXP_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case CPU_EXP_AVX512: return __builtin_cpu_supports("avx512f");
#endif
    default: return false;
    }
}

float cpu_exp_shift_sum_isa(cpu_exp_isa isa, float *y, const float *x, float shift, int64_t n)
{
    switch (isa) {
#ifdef CPU_EXP_X86
    case CPU_EXP_AVX2: return exp_avx2(y, x, shift, n);
    case CPU_EXP_AVX512: return exp_avx512(y, x, shift, n);
#endif
    default: return exp_scalar(y, x, shift, n);
    }
}

/* The widest body the CPU runs; asked per call because __builtin_cpu_supports only reads
 * libgcc's table, where caching the choice would need process-wide state. */
static cpu_exp_isa exp_best(void)
{
    return cpu_exp_isa_available(CPU_EXP_AVX512) ? CPU_EXP_AVX512
           : cpu_exp_isa_available(CPU_EXP_AVX2) ? CPU_EXP_AVX2
                                                 : CPU_EXP_SCALAR;
}

void cpu_exp_array(float *y, const float *x, int64_t n)
{
    cpu_exp_shift_sum_isa(exp_best(), y, x, 0.0f, n);
}

float cpu_exp_shift_sum(float *y, const float *x, float shift, int64_t n)
{
    return cpu_exp_shift_sum_isa(exp_best(), y, x, shift, n);
}
