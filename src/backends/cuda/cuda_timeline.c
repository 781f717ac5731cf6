/* Where a model's time goes when its branches overlap: sh_cuda_timeline (cuda.h) captures the
 * program as it runs (same streams, same waits) with an event after every step on that step's
 * stream, replays it, and walks back the chain of latest predecessors from the last step. The
 * per-kind profile (sh_cuda_profile) serializes the steps and so cannot say which of them
 * decide the time. */
#include "backends/cuda/cuda_impl.h"
#include "backends/cuda/cuda.h"

#include <stdio.h>
#include <string.h>

typedef struct tl_step {
    float end, start;
    int pred;          /* the step whose end this one's start waited for, or -1 */
} tl_step;

static bool real_step(const sh_graph *g, const sh_cuda_prog *cp, int k)
{
    return !g->nodes[k].dead && cp->nodes[k].kind != NK_SKIP;
}

/* Estimated start: the later of the previous step on the same stream and the inputs from
 * other streams (the events it waits for). */
static void estimate_starts(const sh_graph *g, const sh_cuda_prog *cp, tl_step *st)
{
    int last_on[SH_CUDA_STREAMS];
    for (int i = 0; i < SH_CUDA_STREAMS; i++)
        last_on[i] = -1;
    for (int k = 0; k < g->n_nodes; k++) {
        if (!real_step(g, cp, k))
            continue;
        int s = cp->n_streams > 1 ? cp->stream_of[k] : 0;
        int pred = last_on[s];
        if (cp->n_streams > 1)
            for (int w = cp->wait_first[k]; w < cp->wait_first[k + 1]; w++) {
                int j = cp->waits[w];
                if (pred < 0 || st[j].end > st[pred].end)
                    pred = j;
            }
        st[k].pred = pred;
        st[k].start = pred >= 0 ? st[pred].end : 0.f;
        last_on[s] = k;
    }
}

static void print_steps(const sh_graph *g, const sh_cuda_prog *cp, const tl_step *st, FILE *out)
{
    for (int k = 0; k < g->n_nodes; k++) {
        if (!real_step(g, cp, k))
            continue;
        const sh_node *n = &g->nodes[k];
        const sh_shape *y = n->n_outputs > 0 && n->outputs[0] >= 0 ? &g->tensors[n->outputs[0]].shape : NULL;
        fprintf(out, "tl %s %4d s%d %8.1f %8.1f %7.1f %-22s %-12s %s [%lld,%lld,%lld]\n", g->name ? g->name : "-", k,
                cp->n_streams > 1 ? cp->stream_of[k] : 0, st[k].start * 1e3, st[k].end * 1e3,
                (st[k].end - st[k].start) * 1e3, sh_cuda_kind_name((int)cp->nodes[k].kind), sh_op_name(n->op),
                n->name ? n->name : "-", y && y->ndim > 1 ? (long long)y->d[1] : 0LL,
                y && y->ndim > 2 ? (long long)y->d[2] : 0LL, y && y->ndim > 3 ? (long long)y->d[3] : 0LL);
    }
}

static void print_critical_path(const sh_graph *g, const sh_cuda_prog *cp, const tl_step *st, FILE *out)
{
    int last = -1;
    for (int k = 0; k < g->n_nodes; k++)
        if (real_step(g, cp, k) && (last < 0 || st[k].end > st[last].end))
            last = k;
    double ms[SH_CUDA_PROFILE_KINDS] = {0};
    int cnt[SH_CUDA_PROFILE_KINDS] = {0};
    int steps = 0;
    for (int k = last; k >= 0 && steps <= g->n_nodes; k = st[k].pred, steps++) {
        int kind = (int)cp->nodes[k].kind;
        if (kind >= 0 && kind < SH_CUDA_PROFILE_KINDS) {
            ms[kind] += st[k].end - st[k].start;
            cnt[kind]++;
        }
    }
    fprintf(out, "tl-critical %s %.1f us over %d steps:", g->name ? g->name : "-", last >= 0 ? st[last].end * 1e3 : 0.0,
            steps);
    for (int kind = 0; kind < SH_CUDA_PROFILE_KINDS; kind++)
        if (cnt[kind])
            fprintf(out, " %s %d x %.1f", sh_cuda_kind_name(kind), cnt[kind], ms[kind] * 1e3);
    fprintf(out, "\n");
}

/* Captures p on lane 0 with the timeline events (enqueue_all records them while c->timeline
 * is set), replays it five times and reads the last replay. */
static cudaError_t replay_with_events(sh_cuda_ctx *c, sh_program *p, void *const *tp, void *const *wp,
                                      cudaEvent_t *ev, int n, int *rc, sh_err *err)
{
    cudaStream_t s = c->lanes[0].stream;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        e = cudaEventRecordWithFlags(ev[n], s, cudaEventRecordExternal);
        c->timeline = ev;
        if (e == cudaSuccess)
            *rc = sh_cuda_enqueue_all(c, 0, p, tp, wp, err);
        c->timeline = NULL;
        cudaError_t e2 = cudaStreamEndCapture(s, &graph);
        if (e == cudaSuccess)
            e = e2;
    }
    if (e == cudaSuccess && !*rc)
        e = cudaGraphInstantiate(&exec, graph, 0);
    for (int r = 0; r < 5 && e == cudaSuccess && !*rc; r++) {
        e = cudaGraphLaunch(exec, s);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(s);
    }
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    return e;
}

int sh_cuda_timeline(sh_backend *b, sh_program *p, void *const *tp, void *const *wp, FILE *out, sh_err *err)
{
    sh_cuda_ctx *c = b->ctx;
    const sh_cuda_prog *cp = p->impl;
    const sh_graph *g = p->graph;
    int n = g->n_nodes, rc = 0;
    cudaEvent_t *ev = sh_calloc(c->alloc, (size_t)n + 1, sizeof *ev);
    tl_step *st = sh_calloc(c->alloc, (size_t)n + 1, sizeof *st);
    if (!ev || !st) {
        sh_free(c->alloc, ev);
        sh_free(c->alloc, st);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda timeline: events");
    }
    pthread_mutex_lock(&c->mu);
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess)
        rc = sh_cuda_lane_ready(c, 0, cp->n_streams, err);
    for (int k = 0; k <= n && e == cudaSuccess && !rc; k++)
        e = cudaEventCreate(&ev[k]);
    if (e == cudaSuccess && !rc)
        e = replay_with_events(c, p, tp, wp, ev, n, &rc, err);
    for (int k = 0; k < n && e == cudaSuccess && !rc; k++)
        if (real_step(g, cp, k))
            e = cudaEventElapsedTime(&st[k].end, ev[n], ev[k]);
    if (e != cudaSuccess && !rc)
        rc = sh_cuda_rt_fail(err, e, "cuda timeline (capture with event nodes, replay)", __FILE__, __LINE__, c->device);
    for (int k = 0; k <= n; k++)
        if (ev[k])
            cudaEventDestroy(ev[k]);
    pthread_mutex_unlock(&c->mu);
    if (!rc) {
        estimate_starts(g, cp, st);
        print_steps(g, cp, st, out);
        print_critical_path(g, cp, st, out);
    }
    sh_free(c->alloc, ev);
    sh_free(c->alloc, st);
    return rc;
}
