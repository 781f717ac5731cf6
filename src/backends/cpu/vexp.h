/* exp(x) for float32 arrays, vectorized (AVX-512 or AVX2 + FMA chosen at run time from what the
 * CPU supports, a scalar loop elsewhere), and the same function for one value.
 *
 * Cody-Waite reduction x = n*ln2 + r with |r| <= ln2/2 (ln2 split in two so n*ln2_hi is exact),
 * e^r by Cephes' degree-7 polynomial 1 + r + r^2*P(r) (within 1 ulp on that interval), then
 * scaling by 2^n. Every path computes the same operations with fused multiply-adds in the same
 * order, so the scalar, AVX2 and AVX-512 results are identical bit for bit.
 *
 * Within 1 ulp of double-precision exp rounded to float for every float input (checked
 * exhaustively once; test_cpu_vexp samples the range and allows 2); results below FLT_MIN are
 * gradual (subnormal, one rounding), below ~7.0e-46 zero; x above ~88.72 gives +inf, -inf
 * gives 0, NaN stays NaN. */
#ifndef SHOAL_CPU_VEXP_H
#define SHOAL_CPU_VEXP_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* Beyond these e^x is inf or rounds to 0; clamping first keeps 2^n's exponent in range. */
#define CPU_EXP_HI 89.0f
#define CPU_EXP_LO -104.0f
#define CPU_EXP_LOG2E 1.44269504088896341f
#define CPU_EXP_LN2_HI 0.693359375f       /* 9 significant bits: n * LN2_HI is exact */
#define CPU_EXP_LN2_LO -2.12194440e-4f
#define CPU_EXP_P0 1.9875691500e-4f
#define CPU_EXP_P1 1.3981999507e-3f
#define CPU_EXP_P2 8.3334519073e-3f
#define CPU_EXP_P3 4.1665795894e-2f
#define CPU_EXP_P4 1.6666665459e-1f
#define CPU_EXP_P5 5.0000001201e-1f

static inline float cpu_exp_pow2(int32_t e)
{
    uint32_t bits = (uint32_t)(e + 127) << 23;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* e^x for one value; the array function's result for the same input, bit for bit. */
static inline float cpu_expf(float x)
{
    if (x != x)
        return x;
    float xc = x > CPU_EXP_LO ? x : CPU_EXP_LO;
    xc = xc < CPU_EXP_HI ? xc : CPU_EXP_HI;
    float n = rintf(xc * CPU_EXP_LOG2E);
    float r = fmaf(-n, CPU_EXP_LN2_HI, xc);
    r = fmaf(-n, CPU_EXP_LN2_LO, r);
    float p = fmaf(CPU_EXP_P0, r, CPU_EXP_P1);
    p = fmaf(p, r, CPU_EXP_P2);
    p = fmaf(p, r, CPU_EXP_P3);
    p = fmaf(p, r, CPU_EXP_P4);
    p = fmaf(p, r, CPU_EXP_P5);
    float y = fmaf(p, r * r, r) + 1.0f;
    /* 2^n in two factors: n reaches -150 and +128, outside a float's normal exponents; y * 2^n1
     * is exact, the second product rounds once (also into the subnormals). */
    int32_t ni = (int32_t)n, n1 = ni / 2;
    return y * cpu_exp_pow2(n1) * cpu_exp_pow2(ni - n1);
}

/* The array bodies by name, for tests that check each against the scalar function. */
typedef enum cpu_exp_isa { CPU_EXP_SCALAR, CPU_EXP_AVX2, CPU_EXP_AVX512 } cpu_exp_isa;
/* Whether this build and CPU can run isa's body. */
bool cpu_exp_isa_available(cpu_exp_isa isa);
/* cpu_exp_shift_sum with the given body; isa must be available. */
float cpu_exp_shift_sum_isa(cpu_exp_isa isa, float *y, const float *x, float shift, int64_t n);

/* y[i] = e^x[i] for i < n; y may be x. */
void cpu_exp_array(float *y, const float *x, int64_t n);

/* y[i] = e^(x[i] - shift) for i < n, returning the sum of the y[i] (Softmax); y may be x. */
float cpu_exp_shift_sum(float *y, const float *x, float shift, int64_t n);

#endif
