/* Which steps of a program may run at the same time. At batch 1 most kernels fill a fraction
 * of the GPU, so independent branches (a detection head beside the rest of the neck, the
 * mask prototypes beside the box head) run on up to SH_CUDA_STREAMS streams, joined by
 * events; captured into one CUDA graph they become parallel branches of it.
 *
 * Memory stays correct by construction: the planner keeps what step k reads (and k's
 * workspace) reserved through release_step[k], the last step not ordered after k, so no
 * buffer is reused while a step that may still be running reads it (backend.h). */
#include "backends/cuda/cuda_ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sched {
    const sh_graph *g;
    const sh_cuda_prog *cp;
    int n, words;
    int window;         /* > 0: a step waits for every step more than this many real steps back */
    const size_t *bytes;    /* [tensors] the program's tensor bytes */
    size_t side_max;    /* > 0: steps writing more than this run on the first stream */
    int *tails;         /* [real steps][SH_CUDA_STREAMS]: each stream's last step after that step */
    uint64_t *hb;       /* [n][words]: hb[k] has bit j when step j finishes before step k starts */
    int *deps, n_deps;  /* scratch: real steps one step reads from */
    bool *seen;         /* [n] scratch for deps */
} sched;

static bool is_real(const sched *s, int k)
{
    return !s->g->nodes[k].dead && s->cp->nodes[k].kind != NK_SKIP;
}

static uint64_t *hb_row(const sched *s, int k) { return s->hb + (size_t)k * s->words; }
static bool hb_has(const sched *s, int k, int j) { return (hb_row(s, k)[j / 64] >> (j % 64)) & 1; }

static void hb_merge(sched *s, int k, int j)   /* j and everything before it precede k */
{
    uint64_t *dst = hb_row(s, k), *src = hb_row(s, j);
    for (int w = 0; w < s->words; w++)
        dst[w] |= src[w];
    dst[j / 64] |= 1ull << (j % 64);
}

/* The real steps that produce what tensor t holds: through views and skipped steps. */
static void add_producers(sched *s, int t, int depth)
{
    int p = t >= 0 ? s->g->tensors[t].producer : -1;
    if (p < 0 || depth > 64)
        return;
    if (is_real(s, p)) {
        if (!s->seen[p]) {
            s->seen[p] = true;
            s->deps[s->n_deps++] = p;
        }
        return;
    }
    const sh_node *n = &s->g->nodes[p];
    for (int i = 0; i < n->n_inputs; i++)
        add_producers(s, n->inputs[i], depth + 1);
}

static void collect_deps(sched *s, int k)
{
    for (int i = 0; i < s->n_deps; i++)
        s->seen[s->deps[i]] = false;
    s->n_deps = 0;
    const sh_node *n = &s->g->nodes[k];
    for (int i = 0; i < n->n_inputs; i++)
        add_producers(s, n->inputs[i], 0);
    const sh_cuda_node *cn = &s->cp->nodes[k];
    if (cn->kind == NK_IGEMM && cn->has_res)
        add_producers(s, cn->res_t, 0);
}

/* Bytes step k writes. */
static size_t step_bytes(const sched *s, int k)
{
    const sh_node *n = &s->g->nodes[k];
    size_t b = 0;
    for (int j = 0; j < n->n_outputs; j++)
        b += n->outputs[j] >= 0 ? s->bytes[n->outputs[j]] : 0;
    return b;
}

/* The stream k runs on: the one whose last step k directly continues, else one that is idle
 * by the time k may start, else that of k's latest input. */
static bool big_step(const sched *s, int k)
{
    return s->side_max && step_bytes(s, k) > s->side_max;
}

/* Large steps (the early, high-resolution layers) stay on the first stream: beside them a
 * side stream would keep their big buffers reserved longer, for little gain, as they fill
 * the GPU well on their own. */
static int pick_stream(sched *s, const int *tail, const signed char *stream_of, int n_streams, int k)
{
    if (big_step(s, k))
        return 0;
    int best = -1;
    for (int i = 0; i < s->n_deps; i++) {
        int p = s->deps[i];
        if (tail[stream_of[p]] == p && (best < 0 || p > best))
            best = p;
    }
    if (best >= 0)
        return stream_of[best];
    for (int st = 0; st < n_streams; st++)
        if (tail[st] < 0 || hb_has(s, k, tail[st]))
            return st;
    int latest = -1;
    for (int i = 0; i < s->n_deps; i++)
        if (s->deps[i] > latest)
            latest = s->deps[i];
    return latest >= 0 ? stream_of[latest] : 0;
}

static int alloc_schedule(sh_allocator *a, sh_program *p, sh_cuda_prog *cp, int n, sh_err *err)
{
    size_t nn = (size_t)(n ? n : 1);
    cp->stream_of = sh_calloc(a, nn, sizeof *cp->stream_of);
    cp->wait_first = sh_calloc(a, nn + 1, sizeof *cp->wait_first);
    cp->waits = sh_calloc(a, nn * SH_CUDA_STREAMS, sizeof *cp->waits);
    cp->events = sh_calloc(a, nn, sizeof *cp->events);
    p->release_step = sh_alloc(a, nn * sizeof *p->release_step);
    if (!cp->stream_of || !cp->wait_first || !cp->waits || !cp->events || !p->release_step)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda schedule");
    for (int k = 0; k < n; k++)
        p->release_step[k] = k;
    return 0;
}

/* The window: step k (the r-th real step) also waits for what every other stream had done
 * `window` real steps earlier. Then no step stays unordered with one more than `window` real
 * steps later, so release_step (and with it how long the planner keeps a step's buffers)
 * reaches at most that far: concurrency stays local, and so does the arena's growth. */
static void window_waits(sched *s, int k, int r, int st, int latest[SH_CUDA_STREAMS])
{
    if (s->window <= 0 || r <= s->window)
        return;
    const int *then = s->tails + (size_t)(r - s->window - 1) * SH_CUDA_STREAMS;
    for (int o = 0; o < SH_CUDA_STREAMS; o++) {
        int j = then[o];
        if (o == st || j < 0 || hb_has(s, k, j))
            continue;
        if (j > latest[o])
            latest[o] = j;
        hb_merge(s, k, j);
    }
}

/* Streams and cross-stream waits (CSR in wait_first/waits: at most one per other stream, on
 * its latest step k reads from, which orders the earlier ones too). */
static void assign_streams(sched *s, sh_cuda_prog *cp, int n_streams)
{
    int tail[SH_CUDA_STREAMS];
    for (int st = 0; st < SH_CUDA_STREAMS; st++)
        tail[st] = -1;
    int nw = 0, r = 0;
    for (int k = 0; k < s->n; k++) {
        cp->wait_first[k] = nw;
        if (!is_real(s, k))
            continue;
        collect_deps(s, k);
        for (int i = 0; i < s->n_deps; i++)
            hb_merge(s, k, s->deps[i]);
        int st = pick_stream(s, tail, cp->stream_of, n_streams, k);
        cp->stream_of[k] = (signed char)st;
        int latest[SH_CUDA_STREAMS];
        for (int o = 0; o < SH_CUDA_STREAMS; o++)
            latest[o] = -1;
        for (int i = 0; i < s->n_deps; i++) {
            int d = s->deps[i], o = cp->stream_of[d];
            bool ordered = o == st || (tail[st] >= 0 && (tail[st] == d || hb_has(s, tail[st], d)));
            if (!ordered && d > latest[o])
                latest[o] = d;
        }
        window_waits(s, k, r, st, latest);
        for (int o = 0; o < SH_CUDA_STREAMS; o++)
            if (latest[o] >= 0)
                cp->waits[nw++] = latest[o];
        if (tail[st] >= 0)
            hb_merge(s, k, tail[st]);
        tail[st] = k;
        memcpy(s->tails + (size_t)r++ * SH_CUDA_STREAMS, tail, sizeof tail);
    }
    cp->wait_first[s->n] = nw;
}

/* release_step: the last step not ordered after k. A skipped Add folded into a conv reads
 * (through that conv) what the conv reads. In-place reuse needs every other reader of the
 * input ordered before the step. */
static void set_release(sched *s, sh_program *p, const sh_cuda_prog *cp)
{
    const sh_graph *g = s->g;
    for (int k = 0; k < s->n; k++) {
        if (!is_real(s, k))
            continue;
        int rel = k;
        for (int j = s->n - 1; j > k; j--)
            if (is_real(s, j) && !hb_has(s, j, k)) {
                rel = j;
                break;
            }
        p->release_step[k] = rel;
    }
    for (int a = 0; a < s->n; a++) {
        if (!cp->fused_add[a] || g->nodes[a].dead)
            continue;
        int conv = g->tensors[g->nodes[a].inputs[cp->fused_add[a] - 1]].producer;
        if (conv >= 0 && p->release_step[conv] > p->release_step[a])
            p->release_step[a] = p->release_step[conv];
    }
    for (int k = 0; k < s->n; k++) {
        int slot = p->inplace_input[k];
        if (slot < 0)
            continue;
        int x = g->nodes[k].inputs[slot];
        for (int j = 0; j < s->n && p->inplace_input[k] >= 0; j++) {
            if (j == k || g->nodes[j].dead)
                continue;
            for (int i = 0; i < g->nodes[j].n_inputs; i++)
                if (g->nodes[j].inputs[i] == x && (!is_real(s, j) || !hb_has(s, k, j)))
                    p->inplace_input[k] = -1;
        }
    }
}

int sh_cuda_schedule_steps(sh_allocator *a, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int n_streams,
                           int window, size_t side_max, sh_err *err)
{
    if (n_streams > SH_CUDA_STREAMS)
        n_streams = SH_CUDA_STREAMS;
    cp->n_streams = 1;
    if (n_streams <= 1)
        return 0;
    int n = g->n_nodes;
    int rc = alloc_schedule(a, p, cp, n, err);
    if (rc)
        return rc;
    sched s = {.g = g, .cp = cp, .n = n, .words = (n + 63) / 64, .window = window, .bytes = p->tensor_bytes,
               .side_max = side_max};
    s.hb = sh_calloc(a, (size_t)(n ? n : 1) * (size_t)(s.words ? s.words : 1), sizeof(uint64_t));
    s.deps = sh_alloc(a, (size_t)(n ? n : 1) * sizeof(int));
    s.seen = sh_calloc(a, (size_t)(n ? n : 1), sizeof(bool));
    s.tails = sh_alloc(a, (size_t)(n ? n : 1) * SH_CUDA_STREAMS * sizeof(int));
    if (!s.hb || !s.deps || !s.seen || !s.tails) {
        rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda schedule: %d steps", n);
    } else {
        assign_streams(&s, cp, n_streams);
        set_release(&s, p, cp);
        for (int k = 0; k < n; k++)
            if (is_real(&s, k) && cp->stream_of[k] + 1 > cp->n_streams)
                cp->n_streams = cp->stream_of[k] + 1;
        /* split-K counters: one block per stream, as steps of one stream never overlap */
        for (int k = 0; k < n; k++)
            if (is_real(&s, k) && cp->nodes[k].kind == NK_IGEMM)
                cp->nodes[k].ig_counter_off = cp->stream_of[k] * (SH_CUDA_IG_COUNTERS / SH_CUDA_STREAMS);
    }
    sh_free(a, s.hb);
    sh_free(a, s.deps);
    sh_free(a, s.seen);
    sh_free(a, s.tails);
    return rc;
}

int sh_cuda_schedule(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, sh_err *err)
{
    /* Default 4 streams, a window of 4 steps and side streams only for steps writing at most
     * 4 MiB (docs/cuda-notes.md "v4", "v6"): at 256 KiB (session 4) the mask prototypes' and
     * the heads' 80x80 steps all queued on the first stream; at 4 MiB navigation 2.42-2.44 ->
     * 2.35-2.38 ms, shopping 0.86-0.88 -> 0.84-0.86 (H100), for 17 MiB more arena (47.4 ->
     * 64.8 MiB) - the same as with no limit now that transposed convs stay channels-last.
     * tuning.cuda_stream_side_kib = 256 is the leaner schedule; cuda_streams = 1 turns it off. */
    const shoal_tuning *t = &c->tune;
    int rc = sh_cuda_schedule_steps(c->alloc, g, p, cp, t->cuda_streams > 0 ? t->cuda_streams : SH_CUDA_STREAMS,
                                    t->cuda_stream_window > 0 ? t->cuda_stream_window : SH_CUDA_STREAM_WINDOW,
                                    (size_t)(t->cuda_stream_side_kib > 0 ? t->cuda_stream_side_kib
                                                                         : SH_CUDA_STREAM_SIDE_KIB) << 10, err);
    if (rc || cp->n_streams == 1)
        return rc;
    SH_CU(c, err, cudaSetDevice(c->device));
    /* an event for every step another stream waits for */
    for (int w = 0; w < cp->wait_first[g->n_nodes]; w++) {
        int d = cp->waits[w];
        if (!cp->events[d]) {
            cudaEvent_t e;
            SH_CU(c, err, cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
            cp->events[d] = e;
        }
    }
    return 0;
}
