/* float32 -> half for weight packing: the reference routine and a vectorized one that gives
 * the same bits. See half.h for the rounding contract. */
#include "core/half.h"

#include <string.h>

#define HALF_SATURATE_FROM 0x477ff000u   /* |x| >= 65520: rounds past 65504 */
#define HALF_MAX 0x7bffu
#define HALF_QNAN 0x7e00u
#define F32_INF 0x7f800000u
#define F32_HALF_NORMAL_MIN 0x38800000u /* 2^-14: below it the half is subnormal or zero */

uint16_t sh_f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    if (ax > F32_INF)
        return (uint16_t)(sign | HALF_QNAN);
    if (ax >= HALF_SATURATE_FROM)
        return (uint16_t)(sign | HALF_MAX);
    if (ax < F32_HALF_NORMAL_MIN) {
        if (ax < 0x33000000u)                        /* <= 2^-25: rounds to zero */
            return (uint16_t)sign;
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23);           /* 14..24 */
        uint32_t h = mant >> (shift);
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1)))
            h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((ax >> 13) - (112u << 10));
    uint32_t rem = ax & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1)))
        h++;
    return (uint16_t)(sign | h);
}

/* Branch-free so the loop vectorizes. Normal halves: adding 0xfff plus the lowest kept bit
 * carries into the kept bits exactly when round-to-nearest-even rounds up. Subnormal halves:
 * adding 0.5f, whose ulp is 2^-24 (the half subnormal step), lets the FPU's own
 * nearest-even rounding drop the bits; what remains above 0.5f's bits is the half. */
static inline uint16_t f32_bits_to_f16(uint32_t x)
{
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;
    uint32_t odd = (ax >> 13) & 1u;
    uint32_t normal = (ax - (112u << 23) + 0xfffu + odd) >> 13;
    float small;
    memcpy(&small, &ax, 4);
    small += 0.5f;
    uint32_t sub;
    memcpy(&sub, &small, 4);
    sub -= 0x3f000000u;
    uint32_t h = ax < F32_HALF_NORMAL_MIN ? sub : normal;
    h = ax >= HALF_SATURATE_FROM ? HALF_MAX : h;
    h = ax > F32_INF ? HALF_QNAN : h;
    return (uint16_t)(sign | h);
}

void sh_f32_to_f16_n_portable(uint16_t *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &src[i], 4);
        dst[i] = f32_bits_to_f16(x);
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>

/* F16C rounds to nearest even like the reference; only its overflow (infinity) and NaN
 * payloads differ, so those inputs are replaced first: the saturating ones by +-65504.0f,
 * NaNs by the quiet NaN with an empty payload, which converts to 0x7e00. */
__attribute__((target("avx2,f16c"))) static void f32_to_f16_n_f16c(uint16_t *dst, const float *src, size_t n)
{
    const __m256i abs_mask = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32((int)F32_INF);
    const __m256i sat_below = _mm256_set1_epi32((int)(HALF_SATURATE_FROM - 1));
    const __m256i f32_65504 = _mm256_set1_epi32(0x477fe000);
    const __m256i f32_qnan = _mm256_set1_epi32(0x7fc00000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i x = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i ax = _mm256_and_si256(x, abs_mask);
        __m256i sign = _mm256_andnot_si256(abs_mask, x);
        __m256i is_nan = _mm256_cmpgt_epi32(ax, inf);
        __m256i is_big = _mm256_cmpgt_epi32(ax, sat_below);
        x = _mm256_blendv_epi8(x, _mm256_or_si256(sign, f32_65504), is_big);
        x = _mm256_blendv_epi8(x, _mm256_or_si256(sign, f32_qnan), is_nan);
        __m128i h = _mm256_cvtps_ph(_mm256_castsi256_ps(x), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128((__m128i *)(dst + i), h);
    }
    for (; i < n; i++)
        dst[i] = sh_f32_to_f16(src[i]);
}

static int have_f16c(void)
{
    static int known = -1;   /* a CPU fact, the same for every caller: no per-object state */
    int k = __atomic_load_n(&known, __ATOMIC_RELAXED);
    if (k < 0) {
        __builtin_cpu_init();
        /* F16C read from CPUID itself: clang 14 (the fuzz build) knows no "f16c" feature name */
        unsigned eax, ebx, ecx, edx;
        int f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C);
        k = __builtin_cpu_supports("avx2") && f16c;
        __atomic_store_n(&known, k, __ATOMIC_RELAXED);
    }
    return k;
}
#endif

void sh_f32_to_f16_n(uint16_t *dst, const float *src, size_t n)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (have_f16c()) {
        f32_to_f16_n_f16c(dst, src, n);
        return;
    }
#endif
    sh_f32_to_f16_n_portable(dst, src, n);
}
