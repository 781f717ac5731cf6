/* Concurrent execution on lanes (backend.h sh_lane_i): the models of a mode each get a
 * lane, issue their upload, graph replay and download there without a host wait, and the
 * runtime waits for each lane once. At batch 1 one model fills a fraction of an H100, so two
 * lanes overlap one model's kernels and copies with the other's.
 *
 * What two lanes must not share, and how they do not: streams (one per lane, with its own
 * side streams for SHOAL_CUDA_STREAMS > 1); the split-K counters (a block per lane, chosen
 * when a graph is captured for (binding, lane)); activation bytes (the runtime gives models
 * that run together disjoint arena ranges). The cuDNN handle is shared: its stream is set
 * before every call under c->mu, and a captured graph no longer refers to it. */
#include "backends/cuda/cuda_impl.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_lane(int lane, sh_err *err)
{
    if (lane < 0 || lane >= SH_MAX_LANES)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "cuda: lane %d (0..%d)", lane, SH_MAX_LANES - 1);
    return 0;
}

int sh_cuda_lane_ready(sh_cuda_ctx *c, int lane, int n_streams, sh_err *err)
{
    sh_cuda_lane *ln = &c->lanes[lane];
    if (!ln->ready) {
        if (lane == 0) {
            ln->stream = c->stream;   /* the synchronous calls' stream: lane 0 is that queue */
            for (int i = 0; i < SH_CUDA_STREAMS - 1; i++)
                ln->side[i] = c->side[i];
        } else if (!ln->stream) {
            SH_CU(c, err, cudaStreamCreateWithFlags(&ln->stream, cudaStreamNonBlocking));
        }
        if (!ln->t0)
            SH_CU(c, err, cudaEventCreate(&ln->t0));
        if (!ln->t1)
            SH_CU(c, err, cudaEventCreate(&ln->t1));
        ln->ready = true;
    }
    for (int i = 0; i < n_streams - 1 && i < SH_CUDA_STREAMS - 1; i++)
        if (!ln->side[i])
            SH_CU(c, err, cudaStreamCreateWithFlags(&ln->side[i], cudaStreamNonBlocking));
    return 0;
}

/* The lane's first operation since its last wait starts its clock. */
static int lane_begin(sh_cuda_ctx *c, int lane, sh_err *err)
{
    SH_CU(c, err, cudaSetDevice(c->device));
    int rc = sh_cuda_lane_ready(c, lane, 1, err);
    if (rc)
        return rc;
    sh_cuda_lane *ln = &c->lanes[lane];
    if (!ln->timing) {
        SH_CU(c, err, cudaEventRecord(ln->t0, ln->stream));
        ln->timing = true;
        ln->timed = false;
    }
    return 0;
}

static int copy_async(void *vctx, int lane, void *dst, const void *src, size_t n, enum cudaMemcpyKind kind,
                      sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    int rc = check_lane(lane, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    rc = lane_begin(c, lane, err);
    bool early = false;
    if (rc == 0 && kind == cudaMemcpyDeviceToHost)
        rc = sh_cuda_early_download(c, lane, dst, src, n, &early, err);
    if (rc == 0 && !early) {
        cudaError_t e = cudaMemcpyAsync(dst, src, n, kind, c->lanes[lane].stream);
        if (e != cudaSuccess)
            rc = sh_cuda_rt_fail(err, e, kind == cudaMemcpyHostToDevice ? "upload: cudaMemcpyAsync(H2D) on a lane"
                                                                         : "download: cudaMemcpyAsync(D2H) on a lane",
                                 __FILE__, __LINE__, c->device);
    }
    pthread_mutex_unlock(&c->mu);
    return rc;
}

int sh_cuda_upload_async(void *vctx, int lane, void *dst, const void *src, size_t n, sh_err *err)
{
    return copy_async(vctx, lane, dst, src, n, cudaMemcpyHostToDevice, err);
}

int sh_cuda_download_async(void *vctx, int lane, void *dst, const void *src, size_t n, sh_err *err)
{
    return copy_async(vctx, lane, dst, src, n, cudaMemcpyDeviceToHost, err);
}

/* The host waits outside c->mu: another lane's work may be issued meanwhile. */
int sh_cuda_lane_wait(void *vctx, int lane, double *busy_ms, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    if (busy_ms)
        *busy_ms = -1;
    int rc = check_lane(lane, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&c->mu);
    sh_cuda_lane *ln = &c->lanes[lane];
    bool timed = ln->ready && ln->timing;
    cudaStream_t s = ln->ready ? ln->stream : NULL;
    cudaEvent_t t0 = ln->t0, t1 = ln->t1;
    ln->timing = false;
    ln->timed = false;
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess && s && sh_cuda_early_join(c, lane, err)) {
        pthread_mutex_unlock(&c->mu);
        (void)cudaStreamSynchronize(s);   /* drained either way (backend.h) */
        if (ln->copy)
            (void)cudaStreamSynchronize(ln->copy);
        return SHOAL_ERR_BACKEND;
    }
    if (e == cudaSuccess && timed)
        e = cudaEventRecord(t1, s);
    pthread_mutex_unlock(&c->mu);
    if (!s)
        return 0;   /* nothing was ever issued on this lane */
    /* On a failed record, still drain the stream: the caller may reuse the bytes next. */
    cudaError_t w = e == cudaSuccess && timed ? cudaEventSynchronize(t1) : cudaStreamSynchronize(s);
    if (e == cudaSuccess)
        e = w;
    if (e == cudaSuccess && timed) {
        pthread_mutex_lock(&c->mu);
        ln->timed = !ln->timing;   /* no new work issued on the lane since */
        pthread_mutex_unlock(&c->mu);
    }
    float ms = 0;
    if (e == cudaSuccess && timed && busy_ms) {
        if (cudaEventElapsedTime(&ms, t0, t1) == cudaSuccess)
            *busy_ms = ms;
        else
            (void)cudaGetLastError();   /* a time is a nicety: -1, and nothing left pending */
    }
    if (e != cudaSuccess) {
        char what[64];
        snprintf(what, sizeof what, "waiting for lane %d (cudaEventSynchronize)", lane);
        return sh_cuda_rt_fail(err, e, what, __FILE__, __LINE__, c->device);
    }
    return 0;
}

/* The earliest start to the latest end: the largest t1_j - t0_i over the lanes. */
int sh_cuda_lanes_span(void *vctx, const int *lanes, int n, double *ms, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    *ms = -1;
    pthread_mutex_lock(&c->mu);
    float best = -1;
    bool known = n > 0;
    for (int i = 0; i < n && known; i++)
        known = lanes[i] >= 0 && lanes[i] < SH_MAX_LANES && c->lanes[lanes[i]].timed;
    for (int i = 0; i < n && known; i++)
        for (int j = 0; j < n && known; j++) {
            float d = 0;
            if (cudaEventElapsedTime(&d, c->lanes[lanes[i]].t0, c->lanes[lanes[j]].t1) != cudaSuccess) {
                (void)cudaGetLastError();
                known = false;
            } else if (d > best) {
                best = d;
            }
        }
    pthread_mutex_unlock(&c->mu);
    (void)err;
    if (known)
        *ms = best;
    return 0;
}

void sh_cuda_lanes_destroy(sh_cuda_ctx *c)
{
    for (int l = 0; l < SH_MAX_LANES; l++) {
        sh_cuda_lane *ln = &c->lanes[l];
        if (ln->stream)
            cudaStreamSynchronize(ln->stream);
        if (ln->t0)
            cudaEventDestroy(ln->t0);
        if (ln->t1)
            cudaEventDestroy(ln->t1);
        if (ln->copy) {
            cudaStreamSynchronize(ln->copy);
            cudaStreamDestroy(ln->copy);
        }
        if (ln->copy_done)
            cudaEventDestroy(ln->copy_done);
        if (l == 0)
            continue;   /* lane 0's streams are the context's, destroyed with it */
        for (int i = 0; i < SH_CUDA_STREAMS - 1; i++)
            if (ln->side[i])
                cudaStreamDestroy(ln->side[i]);
        if (ln->stream)
            cudaStreamDestroy(ln->stream);
    }
}
