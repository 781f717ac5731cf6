/* Shared by the tests of the own conv kernels (test_cpu_winograd.c, test_cpu_igemm.c): random
 * data, the fused activations in double, the accuracy check against a reference, and a small
 * graph compiled with given tuning switches and run through the backend. Include after cmocka.h
 * and harness.h (header-only). */
#ifndef SHOAL_TESTS_CPU_CONV_CHECK_H
#define SHOAL_TESTS_CPU_CONV_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/cpu/cpu_report.h"
#include "harness.h"

static uint32_t cc_rng = 2463534242u;

/* Uniform in [-1, 1). */
static inline float cc_frand(void)
{
    cc_rng ^= cc_rng << 13;
    cc_rng ^= cc_rng >> 17;
    cc_rng ^= cc_rng << 5;
    return (float)(cc_rng >> 8) / 16777216.0f * 2.0f - 1.0f;
}

static inline double cc_act_ref(double v, sh_act act)
{
    switch (act) {
    case SH_ACT_RELU: return v > 0 ? v : 0;
    case SH_ACT_SILU: return v / (1.0 + exp(-v));
    case SH_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    default: return v;
    }
}

/* y against ref: every element within 1e-4 of the reference's scale (its largest magnitude,
 * or scale_floor if that is larger) and relative L2 under 1e-5. */
static inline void cc_expect_close(const float *y, const double *ref, size_t n, double scale_floor, const char *what)
{
    double err = 0, norm = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        norm += ref[i] * ref[i];
        scale = fmax(scale, fabs(ref[i]));
    }
    scale = fmax(scale, scale_floor);
    for (size_t i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        if (!(fabs(d) <= 1e-4 * scale))
            fail_msg("%s: y[%zu] = %g, reference %g", what, i, (double)y[i], ref[i]);
        err += d * d;
    }
    if (!(sqrt(err / (norm > 0 ? norm : 1)) < 1e-5))
        fail_msg("%s: relative L2 %g", what, sqrt(err / (norm > 0 ? norm : 1)));
}

/* Builds a graph from input x (returning its output), compiles it on two threads with `tuning`,
 * counts in *matching the convs whose description contains `needle`, runs it on random input
 * and returns a copy of the output (*n_out elements). */
typedef int (*cc_build_fn)(th *h, int x);

static inline float *cc_run_graph(const shoal_tuning *tuning, const int64_t xd[4], cc_build_fn build,
                                  const char *needle, int64_t *n_out, int *matching)
{
    th h;
    th_init_tuned(&h, 2, tuning);
    int x = th_tensor(&h, "x", 4, xd);
    int y = build(&h, x);
    assert_int_equal(th_compile(&h, &x, 1, &y, 1), 0);
    *matching = 0;
    for (int k = 0; k < h.g->n_nodes; k++) {
        char buf[256];
        if (h.g->nodes[k].op == SH_OP_CONV && sh_backend_cpu_describe_node(h.p, k, buf, sizeof buf) == 0 &&
            strstr(buf, needle))
            (*matching)++;
    }
    th_fill(&h, x);
    assert_int_equal(th_run(&h), 0);
    *n_out = sh_shape_numel(&h.g->tensors[y].shape);
    float *out = malloc((size_t)*n_out * sizeof(float));
    memcpy(out, h.ptr[y], (size_t)*n_out * sizeof(float));
    th_free(&h);
    return out;
}

/* The output with the own kernel on against the same graph with it off: the kernel names
 * `needle` in expect_on convs' descriptions when on and in none when off, and the outputs
 * agree within cc_expect_close's bounds (scaled by the off output's largest magnitude). */
static inline void cc_expect_same_as_off(const shoal_tuning *on, const shoal_tuning *off, const int64_t xd[4],
                                         cc_build_fn build, const char *needle, int expect_on)
{
    int64_t n_on, n_off;
    int on_convs, off_convs;
    float *y_on = cc_run_graph(on, xd, build, needle, &n_on, &on_convs);
    float *y_off = cc_run_graph(off, xd, build, needle, &n_off, &off_convs);
    assert_int_equal(on_convs, expect_on);
    assert_int_equal(off_convs, 0);
    assert_int_equal(n_on, n_off);
    double *ref = malloc((size_t)n_off * sizeof *ref);
    for (int64_t i = 0; i < n_off; i++)
        ref[i] = y_off[i];
    cc_expect_close(y_on, ref, (size_t)n_off, 0.0, needle);
    free(ref);
    free(y_on);
    free(y_off);
}

#endif
