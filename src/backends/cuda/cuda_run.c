/* Running a compiled program: enqueue every node's kernels on the backend's stream, captured
 * once per binding into a CUDA graph and replayed after. No allocation and no host sync here:
 * the caller's download is the one sync of a run. */
#include "backends/cuda/cuda_quant.h"
#include "backends/cuda/cuda.h"
#include "backends/cuda/conv.cuh"
#include "backends/cuda/convert.cuh"
#include "backends/cuda/copy.cuh"
#include "backends/cuda/elementwise.cuh"
#include "backends/cuda/matmul.cuh"
#include "backends/cuda/pool.cuh"
#include "backends/cuda/resize.cuh"
#include "backends/cuda/softmax.cuh"

#include <stdio.h>
#include <stdlib.h>

static const void *in_ptr(const sh_graph *g, const sh_node *n, const sh_cuda_node *cn, void *const *tp,
                          char *ws, int i)
{
    if (i >= n->n_inputs || n->inputs[i] < 0)
        return NULL;
    if (cn->stage_in[i] != SIZE_MAX)
        return ws + cn->stage_in[i];
    (void)g;
    return tp[n->inputs[i]];
}

static void *out_ptr(const sh_node *n, const sh_cuda_node *cn, void *const *tp, char *ws, int j)
{
    if (cn->stage_out[j] != SIZE_MAX)
        return ws + cn->stage_out[j];
    return tp[n->outputs[j]];
}

/* cuDNN runs on the handle's stream: point it at the step's stream first. */
static int cudnn_on(sh_cuda_ctx *c, cudaStream_t s, sh_err *err)
{
    if (c->cudnn_stream == s)
        return 0;
    SH_DNN(c, err, cudnnSetStream(c->cudnn, s));
    c->cudnn_stream = s;
    return 0;
}

/* counters: the split-K counter block of the lane the step is enqueued for. */
static int enqueue_node(sh_cuda_ctx *c, cudaStream_t s, int *counters, const sh_graph *g, int k,
                        const sh_cuda_node *cn, void *const *tp, void *const *wp, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    char *ws = wp ? wp[k] : NULL;
    const sh_k_stream ks = {s, c->pdl_small};
    if (cn->kind == NK_SKIP)
        return 0;
    /* fp32 graph inputs -> fp16 staging */
    for (int i = 0; i < n->n_inputs; i++) {
        if (cn->stage_in[i] == SIZE_MAX)
            continue;
        const sh_tensor *t = &g->tensors[n->inputs[i]];
        SH_CU(c, err, sh_k_f32_to_f16(ws + cn->stage_in[i], tp[n->inputs[i]], (int)sh_shape_numel(&t->shape), ks));
    }
    const void *x = in_ptr(g, n, cn, tp, ws, 0);
    void *y = out_ptr(n, cn, tp, ws, 0);
    float one = 1.f, zero = 0.f;
    switch (cn->kind) {
    case NK_CONV:
    case NK_CONVT: {   /* cuDNN, with the layout conversions its tensors need (cuda_conv.c) */
        char *scr = ws + cn->op_ws_off;
        if (cn->x_cvt) {
            SH_CU(c, err, sh_k_copy_strided(scr + cn->xcv_off, x, &cn->xcv_copy, ks));
            x = scr + cn->xcv_off;
        }
        if (cn->prepad) {
            void *xp = scr + cn->prepad_off;
            SH_CU(c, err, sh_k_fill(xp, 0.f, cn->prepad_n, s));
            SH_CU(c, err, sh_k_copy_strided(xp, x, &cn->prepad_copy, ks));
            x = xp;
        }
        void *yc = cn->y_cvt ? scr + cn->ycv_off : y;
        int rcs = cudnn_on(c, s, err);
        if (rcs)
            return rcs;
        if (cn->kind == NK_CONVT)
            SH_DNN(c, err, cudnnConvolutionBackwardData(c->cudnn, &one, cn->wd, in_ptr(g, n, cn, tp, ws, 1), cn->xd,
                                                        x, cn->cd, (cudnnConvolutionBwdDataAlgo_t)cn->algo, scr,
                                                        cn->dnn_ws_bytes, &zero, cn->yd, yc));
        else
            SH_DNN(c, err, cudnnConvolutionForward(c->cudnn, &one, cn->xd, x, cn->wd, in_ptr(g, n, cn, tp, ws, 1),
                                                   cn->cd, (cudnnConvolutionFwdAlgo_t)cn->algo, scr,
                                                   cn->dnn_ws_bytes, &zero, cn->yd, yc));
        if (in_ptr(g, n, cn, tp, ws, 2) || cn->act.act)
            SH_CU(c, err, sh_k_bias_act(yc, in_ptr(g, n, cn, tp, ws, 2), cn->conv_outer, cn->conv_c,
                                        cn->conv_inner, cn->act, ks));
        if (cn->y_cvt)
            SH_CU(c, err, sh_k_copy_strided(y, yc, &cn->ycv_copy, ks));
        break;
    }
    case NK_IGEMM: {
        char *scr = ws + cn->op_ws_off;
        if (cn->x_cvt) {
            SH_CU(c, err, sh_k_copy_strided(scr + cn->xcv_off, x, &cn->xcv_copy, ks));
            x = scr + cn->xcv_off;
        }
        void *yc = cn->y_cvt ? scr + cn->ycv_off : y;
        SH_CU(c, err, sh_k_igemm(yc, x, in_ptr(g, n, cn, tp, ws, 1), in_ptr(g, n, cn, tp, ws, 2),
                                 cn->has_res ? tp[cn->res_t] : NULL, &cn->ig, scr,
                                 counters + cn->ig_counter_off, s));
        if (cn->y_cvt)
            SH_CU(c, err, sh_k_copy_strided(y, yc, &cn->ycv_copy, ks));
        break;
    }
    case NK_PLANAR:
        SH_CU(c, err, sh_k_conv_planar(y, (const float *)x, in_ptr(g, n, cn, tp, ws, 1), in_ptr(g, n, cn, tp, ws, 2),
                                       &cn->planar, s));
        break;
    case NK_DW: {
        const sh_k_pool *q = &cn->pool;
        SH_CU(c, err, sh_k_depthwise(y, x, in_ptr(g, n, cn, tp, ws, 1), in_ptr(g, n, cn, tp, ws, 2), q->n, q->c,
                                     q->h, q->w, q->oh, q->ow, q->kh, q->kw, q->sh, q->sw, q->ph, q->pw, q->dh,
                                     q->dw, cn->act, q->nhwc, cn->dw_taps, ks));
        break;
    }
    case NK_BN:
        SH_CU(c, err, sh_k_batchnorm(y, x, in_ptr(g, n, cn, tp, ws, 1), in_ptr(g, n, cn, tp, ws, 2),
                                     in_ptr(g, n, cn, tp, ws, 3), in_ptr(g, n, cn, tp, ws, 4), cn->eps,
                                     cn->conv_outer, cn->conv_c, cn->conv_inner, s));
        break;
    case NK_UNARY:
        SH_CU(c, err, sh_k_unary(y, x, cn->n, cn->act, ks));
        break;
    case NK_BINARY:
        SH_CU(c, err, sh_k_binary(y, x, in_ptr(g, n, cn, tp, ws, 1), cn->n, cn->bin_op,
                                  cn->bin_flat ? NULL : &cn->bc, cn->act, ks));
        break;
    case NK_COPY:
        if (cn->fill)
            SH_CU(c, err, sh_k_fill(y, cn->fill_value, cn->n, s));
        for (int i = 0; i < cn->n_copies; i++) {
            const sh_cuda_copy *cp = &cn->copies[i];
            SH_CU(c, err, sh_k_copy_strided(out_ptr(n, cn, tp, ws, cp->out_slot),
                                            in_ptr(g, n, cn, tp, ws, cp->in_slot), &cp->p, ks));
        }
        break;
    case NK_MEMCPY:
        SH_CU(c, err, cudaMemcpyAsync(y, x, cn->memcpy_bytes, cudaMemcpyDeviceToDevice, s));
        break;
    case NK_POOL:
        SH_CU(c, err, sh_k_pool2d(y, x, &cn->pool, ks));
        break;
    case NK_MEAN:
        SH_CU(c, err, sh_k_reduce_mean(y, x, cn->r_outer, cn->r_len, cn->r_inner, s));
        break;
    case NK_RESIZE:
        SH_CU(c, err, sh_k_resize(y, x, &cn->rs, ks));
        break;
    case NK_SOFTMAX:
        SH_CU(c, err, sh_k_softmax(y, x, cn->r_outer, cn->r_len, cn->r_inner, ks));
        break;
    case NK_FRAME: {
        int rcf = sh_cuda_run_frame(c, s, n, cn, tp, ws ? ws + cn->op_ws_off : NULL, err);
        if (rcf)
            return rcf;
        break;
    }
    case NK_QUANT: {
        int rcq = sh_cuda_run_quant(c, s, g, n, cn, tp, ws, err);
        if (rcq)
            return rcq;
        break;
    }
    case NK_GEMM:
        SH_CU(c, err, sh_k_gemm(y, x, in_ptr(g, n, cn, tp, ws, 1),
                                n->op == SH_OP_GEMM ? in_ptr(g, n, cn, tp, ws, 2) : NULL, &cn->gm, ks));
        break;
    default:
        return sh_errf(err, SHOAL_ERR_INTERNAL, "node %s: unknown CUDA step %d", n->name, (int)cn->kind);
    }
    /* fp16 staging -> fp32 graph outputs */
    for (int j = 0; j < n->n_outputs; j++) {
        if (cn->stage_out[j] == SIZE_MAX)
            continue;
        const sh_tensor *t = &g->tensors[n->outputs[j]];
        SH_CU(c, err, sh_k_f16_to_f32(tp[n->outputs[j]], ws + cn->stage_out[j], (int)sh_shape_numel(&t->shape), ks));
    }
    return 0;
}

static cudaStream_t stream_at(const sh_cuda_lane *ln, int i) { return i == 0 ? ln->stream : ln->side[i - 1]; }

static int *lane_counters(const sh_cuda_ctx *c, int lane) { return c->ig_counters + lane * SH_CUDA_IG_COUNTERS; }

/* Every step on its stream of the lane (cuda_streams.c): side streams fork from the lane's
 * stream, wait for the steps of other streams they read from, and join back at the end, so
 * the lane's stream (and a graph captured from it) covers the whole program. */
int sh_cuda_enqueue_all(sh_cuda_ctx *c, int lane, const sh_program *p, void *const *tp, void *const *wp, sh_err *err)
{
    const sh_cuda_prog *cp = p->impl;
    const sh_graph *g = p->graph;
    const sh_cuda_lane *ln = &c->lanes[lane];
    int *counters = lane_counters(c, lane);
    int ns = cp->n_streams, rc = 0;
    if (ns > 1) {
        SH_CU(c, err, cudaEventRecord(cp->fork_ev, ln->stream));
        for (int i = 1; i < ns; i++)
            SH_CU(c, err, cudaStreamWaitEvent(stream_at(ln, i), cp->fork_ev, 0));
    }
    for (int k = 0; k < g->n_nodes && !rc; k++) {
        cudaStream_t s = ns > 1 ? stream_at(ln, cp->stream_of[k]) : ln->stream;
        if (ns > 1)
            for (int w = cp->wait_first[k]; w < cp->wait_first[k + 1]; w++) {
                cudaError_t e = cudaStreamWaitEvent(s, cp->events[cp->waits[w]], 0);
                if (e != cudaSuccess)
                    rc = sh_cuda_rt_fail(err, e, "cudaStreamWaitEvent (cross-stream input)", __FILE__, __LINE__, c->device);
            }
        if (!rc)
            rc = enqueue_node(c, s, counters, g, k, &cp->nodes[k], tp, wp, err);
        if (rc)
            rc = sh_err_prefix(err, rc, "node %s (%s): ", g->nodes[k].name, sh_op_name(g->nodes[k].op));
        else if (ns > 1 && cp->events[k]) {
            cudaError_t e = cudaEventRecord(cp->events[k], s);
            if (e != cudaSuccess)
                rc = sh_cuda_rt_fail(err, e, "cudaEventRecord (step done)", __FILE__, __LINE__, c->device);
        }
        if (!rc && cp->n_early)
            rc = sh_cuda_early_record(c, cp, lane, k, s, err);
        if (!rc && c->timeline) {   /* sh_cuda_timeline (cuda_timeline.c) */
            cudaError_t e = cudaEventRecordWithFlags(c->timeline[k], s, cudaEventRecordExternal);
            if (e != cudaSuccess)
                rc = sh_cuda_rt_fail(err, e, "cudaEventRecord (timeline)", __FILE__, __LINE__, c->device);
        }
    }
    /* join even after a failure: a capture must not end with a side stream still in it */
    for (int i = 1; i < ns; i++) {
        cudaError_t e = cudaEventRecord(cp->join_ev[i], stream_at(ln, i));
        if (e == cudaSuccess)
            e = cudaStreamWaitEvent(ln->stream, cp->join_ev[i], 0);
        if (e != cudaSuccess && !rc)
            rc = sh_cuda_rt_fail(err, e, "join of a side stream", __FILE__, __LINE__, c->device);
    }
    if (c->cudnn && c->cudnn_stream != c->stream && cudnn_on(c, c->stream, err) && !rc)
        rc = SHOAL_ERR_BACKEND;
    return rc;
}

/* Captures the whole program into a graph for this binding. Returns 0 with *exec set, or a
 * status; a failed capture leaves the stream out of capture mode. */
static int capture(sh_cuda_ctx *c, int lane, const sh_program *p, void *const *tp, void *const *wp,
                   cudaGraphExec_t *exec, sh_err *err)
{
    cudaGraph_t graph = NULL;
    cudaStream_t s = c->lanes[lane].stream;
    *exec = NULL;
    SH_CU(c, err, cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
    int rc = sh_cuda_enqueue_all(c, lane, p, tp, wp, err);
    cudaError_t e = cudaStreamEndCapture(s, &graph);
    if (rc) {
        if (graph)
            cudaGraphDestroy(graph);
        (void)cudaGetLastError();
        return rc;
    }
    if (e != cudaSuccess)
        return sh_cuda_rt_fail(err, e, "cudaStreamEndCapture(lane stream, &graph)", __FILE__, __LINE__, c->device);
    e = cudaGraphInstantiate(exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess)
        return sh_cuda_rt_fail(err, e, "cudaGraphInstantiate(exec, graph, 0)", __FILE__, __LINE__, c->device);
    return 0;
}

/* Replays the program's graph for (binding, lane) on the lane's stream, capturing it first
 * when the cache has none. Caller holds c->mu. */
static int run_on_lane(sh_cuda_ctx *c, int lane, sh_program *p, void *const *tensor_ptrs,
                       void *const *workspace_ptrs, unsigned long binding_id, sh_err *err)
{
    sh_cuda_prog *cp = p->impl;
    SH_CU(c, err, cudaSetDevice(c->device));
    int rc = sh_cuda_lane_ready(c, lane, cp->n_streams, err);
    if (!rc)
        rc = sh_cuda_early_events(c, cp, lane, err);
    if (rc)
        return rc;
    if (!c->use_graphs || cp->capture_failed)
        return sh_cuda_enqueue_all(c, lane, p, tensor_ptrs, workspace_ptrs, err);
    cp->use_clock++;
    int slot = -1, lru = 0;
    for (int i = 0; i < SH_CUDA_GRAPH_CACHE; i++) {
        if (cp->graphs[i].exec && cp->graphs[i].binding_id == binding_id && cp->graphs[i].lane == lane) {
            slot = i;
            break;
        }
        if (!cp->graphs[i].exec || (cp->graphs[lru].exec && cp->graphs[i].last_use < cp->graphs[lru].last_use))
            lru = i;
    }
    if (slot < 0) {
        cudaGraphExec_t exec = NULL;
        rc = capture(c, lane, p, tensor_ptrs, workspace_ptrs, &exec, err);
        if (rc) {
            /* a library call that cannot be captured: run eagerly from now on */
            cp->capture_failed = true;
            sh_err_clear(err);
            return sh_cuda_enqueue_all(c, lane, p, tensor_ptrs, workspace_ptrs, err);
        }
        slot = lru;
        if (cp->graphs[slot].exec)
            cudaGraphExecDestroy(cp->graphs[slot].exec);
        cp->graphs[slot].exec = exec;
        cp->graphs[slot].binding_id = binding_id;
        cp->graphs[slot].lane = lane;
    }
    cp->graphs[slot].last_use = cp->use_clock;
    cudaError_t e = cudaGraphLaunch(cp->graphs[slot].exec, c->lanes[lane].stream);
    if (e != cudaSuccess)
        return sh_cuda_rt_fail(err, e, "cudaGraphLaunch(exec, lane stream)", __FILE__, __LINE__, c->device);
    return 0;
}

int sh_cuda_run(void *vctx, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                unsigned long binding_id, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    pthread_mutex_lock(&c->mu);
    int rc = run_on_lane(c, 0, p, tensor_ptrs, workspace_ptrs, binding_id, err);
    c->lanes[0].early_prog = NULL;   /* the synchronous download copies in order */
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int sh_cuda_run_async(void *vctx, int lane, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                      unsigned long binding_id, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    if (lane < 0 || lane >= SH_MAX_LANES)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "cuda: lane %d (0..%d)", lane, SH_MAX_LANES - 1);
    pthread_mutex_lock(&c->mu);
    int rc = run_on_lane(c, lane, p, tensor_ptrs, workspace_ptrs, binding_id, err);
    if (!rc)
        sh_cuda_early_note(c, p->impl, lane, tensor_ptrs);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* --- profiling: GPU time per kind of step, inside a replayed graph ---------------------- */
/* SHOAL_CUDA_PROFILE_CONVS: one stderr line per conv (shape, path, time) for A/B tables. */
static void profile_conv_line(const sh_cuda_ctx *c, const sh_graph *g, int k, const sh_cuda_node *cn, float ms)
{
    const sh_node *n = &g->nodes[k];
    const sh_shape *x = &g->tensors[n->inputs[0]].shape, *y = &g->tensors[n->outputs[0]].shape;
    const sh_shape *w = &g->tensors[n->inputs[1]].shape;
    sh_cuda_logf(c, "convprof %s %s c%lld h%lld w%lld k%lld oh%lld ow%lld r%lld s%lld tile%dx%d%s split%d %.4f",
            g->name ? g->name : "-", cn->kind == NK_IGEMM ? "own" : cn->kind == NK_PLANAR ? "planar" : "cudnn", (long long)x->d[1],
            (long long)x->d[2], (long long)x->d[3], (long long)y->d[1], (long long)y->d[2],
            (long long)y->d[3], (long long)w->d[2], (long long)(x->d[2] / (y->d[2] ? y->d[2] : 1)), cn->ig.bm,
            cn->ig.bn, cn->ig.wg ? "wg" : "", cn->kind == NK_IGEMM ? cn->ig.splits : 0, ms * 1e3);
}

static const char *const kind_names[] = {"skip", "conv (cuDNN+epilogue)", "conv (own, fused)", "convT", "depthwise", "batchnorm",
                                         "unary", "binary", "copy", "memcpy", "pool", "mean", "resize",
                                         "softmax", "gemm", "conv (own, planar input)", "frame op",
                                         "quantized"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == NK_QUANT + 1, "kind names");
_Static_assert(SH_CUDA_PROFILE_KINDS == NK_QUANT + 1, "cuda.h profile kinds");

const char *sh_cuda_kind_name(int kind) { return kind >= 0 && kind <= NK_QUANT ? kind_names[kind] : "?"; }

/* An event record node between every two nodes (cudaEventRecordExternal), so the times are
 * those of a graph replay, without the launch gaps of an eager run. */
int sh_cuda_profile(sh_backend *b, sh_program *p, void *const *tp, void *const *wp, double ms_by_kind[SH_CUDA_PROFILE_KINDS],
                    int count_by_kind[SH_CUDA_PROFILE_KINDS], const char **names, sh_err *err)
{
    sh_cuda_ctx *c = b->ctx;
    const sh_cuda_prog *cp = p->impl;
    const sh_graph *g = p->graph;
    int n = g->n_nodes, rc = 0;
    for (int k = 0; k < SH_CUDA_PROFILE_KINDS; k++) {
        ms_by_kind[k] = 0;
        count_by_kind[k] = 0;
        names[k] = k <= NK_QUANT ? kind_names[k] : NULL;
    }
    cudaEvent_t *ev = sh_calloc(c->alloc, (size_t)n + 1, sizeof *ev);
    if (!ev)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda profile: events");
    bool per_conv = c->tune.cuda_profile_convs;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    pthread_mutex_lock(&c->mu);
    cudaError_t e = cudaSetDevice(c->device);
    for (int k = 0; k <= n && e == cudaSuccess; k++)
        e = cudaEventCreate(&ev[k]);
    if (e == cudaSuccess)
        e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
    if (e == cudaSuccess) {
        e = cudaEventRecordWithFlags(ev[0], c->stream, cudaEventRecordExternal);
        for (int k = 0; k < n && e == cudaSuccess && !rc; k++) {
            rc = enqueue_node(c, c->stream, lane_counters(c, 0), g, k, &cp->nodes[k], tp, wp, err);
            if (!rc)
                e = cudaEventRecordWithFlags(ev[k + 1], c->stream, cudaEventRecordExternal);
        }
        cudaError_t e2 = cudaStreamEndCapture(c->stream, &graph);
        if (e == cudaSuccess)
            e = e2;
    }
    if (e == cudaSuccess && !rc)
        e = cudaGraphInstantiate(&exec, graph, 0);
    for (int r = 0; r < 3 && e == cudaSuccess && !rc; r++) {
        e = cudaGraphLaunch(exec, c->stream);
        if (e == cudaSuccess)
            e = cudaStreamSynchronize(c->stream);
        for (int k = 0; k < n && e == cudaSuccess; k++) {
            float ms = 0;
            e = cudaEventElapsedTime(&ms, ev[k], ev[k + 1]);
            int kind = (int)cp->nodes[k].kind;
            if (r == 2 && kind < SH_CUDA_PROFILE_KINDS) {   /* the last of three replays */
                ms_by_kind[kind] += ms;
                count_by_kind[kind] += kind != NK_SKIP;
                if (per_conv && (kind == NK_CONV || kind == NK_IGEMM || kind == NK_PLANAR))
                    profile_conv_line(c, g, k, &cp->nodes[k], ms);
            }
        }
    }
    if (e != cudaSuccess && !rc)
        rc = sh_cuda_rt_fail(err, e, "cuda profile (capture with event nodes, replay)", __FILE__, __LINE__, c->device);
    if (exec)
        cudaGraphExecDestroy(exec);
    if (graph)
        cudaGraphDestroy(graph);
    for (int k = 0; k <= n; k++)
        if (ev[k])
            cudaEventDestroy(ev[k]);
    pthread_mutex_unlock(&c->mu);
    sh_free(c->alloc, ev);
    return rc;
}
