/* Test helper shared by tests/cuda: runs one graph on a backend with every tensor in its own
 * buffer (no planner, so the backend's views and in-place claims are exercised directly),
 * weights packed and uploaded, activations poisoned with NaN before the run. Header-only: one
 * test executable per file. */
#ifndef SHOAL_TESTS_CUDA_HARNESS_H
#define SHOAL_TESTS_CUDA_HARNESS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "cli/tuning_env.h"

typedef struct hx_run {
    sh_backend *b;
    const sh_graph *g;
    sh_program *p;
    void **tp, **wp, **owned;
} hx_run;

static inline int hx_prepare(hx_run *r, sh_backend *b, const sh_graph *g, sh_err *err)
{
    memset(r, 0, sizeof *r);
    r->b = b;
    r->g = g;
    int rc = b->iface->compile(b->ctx, g, &r->p, err);
    if (rc)
        return rc;
    r->tp = calloc((size_t)g->n_tensors + 1, sizeof(void *));
    r->owned = calloc((size_t)g->n_tensors + 1, sizeof(void *));
    r->wp = calloc((size_t)g->n_nodes + 1, sizeof(void *));
    for (int t = 0; t < g->n_tensors; t++) {
        size_t wb = r->p->weight_bytes[t], tb = r->p->tensor_bytes[t];
        if (wb) {
            void *host = malloc(wb);
            if ((rc = b->iface->pack_weight(b->ctx, r->p, t, host, err)) ||
                (rc = b->iface->buffer_alloc(b->ctx, wb, &r->owned[t], err)) ||
                (rc = b->iface->upload(b->ctx, r->owned[t], host, wb, err))) {
                free(host);
                return rc;
            }
            free(host);
            r->tp[t] = r->owned[t];
        } else if (tb && r->p->alias_of[t] < 0) {
            void *poison = malloc(tb);
            memset(poison, 0xff, tb);   /* NaN in fp16 and fp32 */
            if ((rc = b->iface->buffer_alloc(b->ctx, tb, &r->owned[t], err)) ||
                (rc = b->iface->upload(b->ctx, r->owned[t], poison, tb, err))) {
                free(poison);
                return rc;
            }
            free(poison);
            r->tp[t] = r->owned[t];
        }
    }
    /* views: follow chains until every alias has its root's pointer */
    for (int pass = 0; pass < g->n_tensors; pass++) {
        int left = 0;
        for (int t = 0; t < g->n_tensors; t++) {
            int a = r->p->alias_of[t];
            if (a < 0 || r->tp[t])
                continue;
            if (r->tp[a])
                r->tp[t] = (char *)r->tp[a] + r->p->alias_offset[t];
            else
                left++;
        }
        if (!left)
            break;
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (r->p->workspace_bytes[k] &&
            (rc = b->iface->buffer_alloc(b->ctx, r->p->workspace_bytes[k], &r->wp[k], err)))
            return rc;
    return 0;
}

/* inputs[i] feeds g->inputs[i] (fp32); outputs[i] receives g->outputs[i] (fp32). */
static inline int hx_exec(hx_run *r, float *const *inputs, float **outputs, unsigned long binding, sh_err *err)
{
    const sh_graph *g = r->g;
    int rc;
    for (int i = 0; i < g->n_inputs; i++) {
        int t = g->inputs[i];
        size_t n = (size_t)sh_shape_numel(&g->tensors[t].shape) * 4;
        if ((rc = r->b->iface->upload(r->b->ctx, r->tp[t], inputs[i], n, err)))
            return rc;
    }
    if ((rc = r->b->iface->run(r->b->ctx, r->p, r->tp, r->wp, binding, err)))
        return rc;
    for (int i = 0; i < g->n_outputs; i++) {
        int t = g->outputs[i];
        size_t n = (size_t)sh_shape_numel(&g->tensors[t].shape) * 4;
        if ((rc = r->b->iface->download(r->b->ctx, outputs[i], r->tp[t], n, err)))
            return rc;
    }
    return 0;
}

static inline void hx_release(hx_run *r)
{
    if (!r->b)
        return;
    if (r->owned)
        for (int t = 0; t < r->g->n_tensors; t++)
            if (r->owned[t])
                r->b->iface->buffer_free(r->b->ctx, r->owned[t]);
    if (r->wp)
        for (int k = 0; k < r->g->n_nodes; k++)
            if (r->wp[k])
                r->b->iface->buffer_free(r->b->ctx, r->wp[k]);
    if (r->p)
        r->b->iface->program_free(r->b->ctx, r->p);
    free(r->tp);
    free(r->wp);
    free(r->owned);
    memset(r, 0, sizeof *r);
}

/* ||a - ref|| / ||ref||; any NaN/inf in a gives +inf (an unwritten, poisoned element). */
static inline double hx_rel_l2(const float *a, const float *ref, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        double d = (double)a[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

static uint64_t hx_rng = 0x9e3779b97f4a7c15ull;
/* uniform in [lo, hi) with |x| >= 0.05*hi kept away from zero when lo < 0 < hi */
static inline float hx_rand(float lo, float hi)
{
    hx_rng ^= hx_rng << 13;
    hx_rng ^= hx_rng >> 7;
    hx_rng ^= hx_rng << 17;
    float u = (float)((hx_rng >> 40) * (1.0 / 16777216.0));
    float v = lo + (hi - lo) * u;
    if (lo < 0 && hi > 0 && fabsf(v) < 0.05f * hi)
        v = v < 0 ? -0.05f * hi : 0.05f * hi;
    return v;
}

/* Makes tensor t of g a constant of uniform values in [lo, hi). */
static inline void hx_fill_random(sh_graph *g, int t, float lo, float hi)
{
    int64_t n = sh_shape_numel(&g->tensors[t].shape);
    float *v = malloc((size_t)(n ? n : 1) * 4);
    for (int64_t i = 0; i < n; i++)
        v[i] = hx_rand(lo, hi);
    sh_graph_set_const(g, t, v, (size_t)n * 4, NULL);
    free(v);
}

static inline void hx_log_stderr(void *user, shoal_log_level level, const char *msg)
{
    (void)user;
    (void)level;
    fprintf(stderr, "%s\n", msg);
}

/* 77 (ctest: skipped) when no CUDA device / no CUDA build. The backend takes its tuning from
 * the SHOAL_CUDA_* variables as the `shoal` command does (A/B runs of the tests), and its
 * diagnostics go to stderr. */
static inline int hx_cuda_or_skip(sh_backend *b, sh_backend_params *bp)
{
    sh_err err = {0};
    if (cli_tuning_from_env("test", &bp->tuning) != 0)
        return 1;
    if (!bp->log)
        bp->log = hx_log_stderr;
    int rc = sh_backend_cuda_create(bp, b, &err);
    if (rc == SHOAL_ERR_UNSUPPORTED) {
        printf("skip: %s\n", err.msg);
        return 77;
    }
    if (rc) {
        printf("cuda backend: %s\n", err.msg);
        return 1;
    }
    return 0;
}

#endif
