/* Test harness for CPU kernels: hand-built one-node graphs with shapes set by hand, compiled
 * on the CPU backend, every activation and workspace poisoned with NaN bytes before the run,
 * inputs random and non-zero. Shared by the tests of this folder (header-only). */
#ifndef SHOAL_TESTS_CPU_HARNESS_H
#define SHOAL_TESTS_CPU_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "graph/graph.h"

typedef struct th {
    sh_allocator *a;
    sh_backend be;
    sh_graph *g;
    sh_program *p;
    void **ptr;
    void **ws;
    uint64_t rng;
} th;

/* With the backend's tuning switches (shoal.h shoal_tuning). */
static inline void th_init_tuned(th *h, int threads, const shoal_tuning *tuning)
{
    memset(h, 0, sizeof *h);
    h->a = sh_allocator_create();
    sh_backend_params bp = {.alloc = h->a, .n_threads = threads};
    if (tuning)
        bp.tuning = *tuning;
    sh_err err;
    if (sh_backend_cpu_create(&bp, &h->be, &err))
        abort();
    h->g = sh_graph_create(h->a, "t");
    h->rng = 0x9E3779B97F4A7C15ull;
}

static inline void th_init(th *h, int threads)
{
    th_init_tuned(h, threads, NULL);
}

static inline float th_rand(th *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    double u = (double)(h->rng >> 11) / 9007199254740992.0;
    /* non-zero, both signs, magnitude in [0.1, 1) */
    double m = 0.1 + 0.9 * fmod(u * 7.0, 1.0);
    return (float)(u < 0.5 ? -m : m);
}

static inline sh_shape th_shape(int n, const int64_t *d)
{
    sh_shape s = {.ndim = n};
    for (int i = 0; i < n; i++)
        s.d[i] = d[i];
    return s;
}

/* A graph input (or activation) of float32 with the given dims. */
static inline int th_tensor(th *h, const char *name, int n, const int64_t *d)
{
    sh_shape s = th_shape(n, d);
    return sh_graph_add_tensor(h->g, name, SH_DT_FLOAT32, &s);
}

/* A random float32 constant. Returns the tensor; values are written to *vals (malloc'd). */
static inline int th_const_rand(th *h, const char *name, int n, const int64_t *d, float **vals)
{
    int t = th_tensor(h, name, n, d);
    int64_t ne = sh_shape_numel(&h->g->tensors[t].shape);
    float *v = malloc((size_t)(ne ? ne : 1) * sizeof(float));
    for (int64_t i = 0; i < ne; i++)
        v[i] = th_rand(h);
    sh_graph_set_const(h->g, t, v, (size_t)ne * sizeof(float), NULL);
    *vals = v;
    return t;
}

static inline int th_const_i64(th *h, const char *name, int n, const int64_t *vals)
{
    int64_t d[1] = {n};
    sh_shape s = th_shape(1, d);
    int t = sh_graph_add_tensor(h->g, name, SH_DT_INT64, &s);
    sh_graph_set_const(h->g, t, vals, (size_t)n * sizeof(int64_t), NULL);
    return t;
}

static inline int th_const_f32(th *h, const char *name, int n, const float *vals)
{
    int64_t d[1] = {n};
    sh_shape s = th_shape(1, d);
    int t = sh_graph_add_tensor(h->g, name, SH_DT_FLOAT32, &s);
    sh_graph_set_const(h->g, t, vals, (size_t)n * sizeof(float), NULL);
    return t;
}

/* Finalizes, compiles, binds (poisoned) and returns 0 or the compile status. */
static inline int th_compile(th *h, const int *inputs, int n_in, const int *outputs, int n_out)
{
    sh_err err;
    sh_graph_set_inputs(h->g, inputs, n_in);
    sh_graph_set_outputs(h->g, outputs, n_out);
    for (int i = 0; i < n_in; i++)
        h->g->tensors[inputs[i]].is_input = true;
    for (int i = 0; i < n_out; i++)
        h->g->tensors[outputs[i]].is_output = true;
    if (sh_graph_finalize(h->g, &err))
        return -100;
    int rc = h->be.iface->compile(h->be.ctx, h->g, &h->p, &err);
    if (rc)
        return rc;
    h->ptr = calloc((size_t)h->g->n_tensors, sizeof(void *));
    h->ws = calloc((size_t)h->g->n_nodes + 1, sizeof(void *));
    for (int t = 0; t < h->g->n_tensors; t++) {
        const sh_tensor *x = &h->g->tensors[t];
        if (x->is_const) {
            if (h->p->weight_bytes[t]) {
                h->ptr[t] = malloc(h->p->weight_bytes[t]);
                h->be.iface->pack_weight(h->be.ctx, h->p, t, h->ptr[t], &err);
            }
        } else if (h->p->alias_of[t] < 0 && h->p->tensor_bytes[t]) {
            h->ptr[t] = malloc(h->p->tensor_bytes[t]);
            memset(h->ptr[t], 0xFF, h->p->tensor_bytes[t]);   /* NaN poison */
        }
    }
    for (int t = 0; t < h->g->n_tensors; t++)
        if (h->p->alias_of[t] >= 0)
            h->ptr[t] = (char *)h->ptr[h->p->alias_of[t]] + h->p->alias_offset[t];
    for (int k = 0; k < h->g->n_nodes; k++)
        if (h->p->workspace_bytes[k]) {
            h->ws[k] = malloc(h->p->workspace_bytes[k]);
            memset(h->ws[k], 0xFF, h->p->workspace_bytes[k]);
        }
    return 0;
}

/* A node's random 4-D weight "<name>.w" and bias "<name>.b" of n_bias values. */
static inline void th_weight_bias(th *h, const char *name, const int64_t *wd, int64_t n_bias, int *w, int *b)
{
    float *wv, *bv;
    char nm[64];
    snprintf(nm, sizeof nm, "%s.w", name);
    *w = th_const_rand(h, nm, 4, wd, &wv);
    snprintf(nm, sizeof nm, "%s.b", name);
    *b = th_const_rand(h, nm, 1, &n_bias, &bv);
    free(wv);
    free(bv);
}

/* A square Conv of a square map: random weights and bias, pads k/2, fused activation `act`.
 * Returns its output tensor. */
static inline int th_conv(th *h, const char *name, int x, int64_t cin, int64_t cout, int64_t k, int64_t stride,
                          int64_t hw, sh_act act)
{
    int64_t wd[4] = {cout, cin, k, k};
    int w, b;
    th_weight_bias(h, name, wd, cout, &w, &b);
    char nm[64];
    int64_t ohw = (hw + 2 * (k / 2) - k) / stride + 1, yd[4] = {1, cout, ohw, ohw};
    snprintf(nm, sizeof nm, "%s.y", name);
    int y = th_tensor(h, nm, 4, yd);
    int in[3] = {x, w, b};
    int n = sh_graph_add_node(h->g, name, SH_OP_CONV, in, 3, &y, 1);
    int64_t ks[2] = {k, k}, st[2] = {stride, stride}, pads[4] = {k / 2, k / 2, k / 2, k / 2};
    sh_node_set_ints(h->g, n, "kernel_shape", ks, 2);
    sh_node_set_ints(h->g, n, "strides", st, 2);
    sh_node_set_ints(h->g, n, "pads", pads, 4);
    h->g->nodes[n].opset = 11;
    h->g->nodes[n].act = act;
    return y;
}

/* Fills input t with random non-zero values; returns its buffer. */
static inline float *th_fill(th *h, int t)
{
    float *x = h->ptr[t];
    int64_t ne = sh_shape_numel(&h->g->tensors[t].shape);
    for (int64_t i = 0; i < ne; i++)
        x[i] = th_rand(h);
    return x;
}

static inline int th_run(th *h)
{
    sh_err err;
    return h->be.iface->run(h->be.ctx, h->p, h->ptr, h->ws, 1, &err);
}

static inline void th_free(th *h)
{
    if (h->ptr) {
        for (int t = 0; t < h->g->n_tensors; t++)
            if (h->p->alias_of[t] < 0)
                free(h->ptr[t]);
        for (int k = 0; k < h->g->n_nodes; k++)
            free(h->ws[k]);
    }
    free(h->ptr);
    free(h->ws);
    h->be.iface->program_free(h->be.ctx, h->p);
    sh_graph_destroy(h->g);
    sh_backend_destroy(&h->be);
    sh_allocator_destroy(h->a);
}

/* Max |a-b| / (1e-6 + |b|)-style check: returns the worst normalised error. */
static inline double th_max_err(const float *out, const double *ref, int64_t n)
{
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)out[i] - ref[i]) / (1e-5 + 1e-4 * fabs(ref[i]));
        if (!(e <= worst))
            worst = isnan(e) ? INFINITY : e;
    }
    return worst;
}

static inline double th_act(double v, sh_act act, double a, double b)
{
    switch (act) {
    case SH_ACT_RELU: return v > 0 ? v : 0;
    case SH_ACT_SIGMOID: return 1.0 / (1.0 + exp(-v));
    case SH_ACT_SILU: return v / (1.0 + exp(-v));
    case SH_ACT_HARD_SWISH: return v * fmin(1.0, fmax(0.0, v / 6.0 + 0.5));
    case SH_ACT_HARD_SIGMOID: return fmin(1.0, fmax(0.0, a * v + b));
    case SH_ACT_CLIP: return fmin(b, fmax(a, v));
    default: return v;
    }
}

#endif
