/* Early downloads: a graph output finished before its program's last step (a YOLO
 * segmenter's mask prototypes, done while the box and class heads still run) crosses PCIe
 * from then on, beside the remaining steps, instead of after the whole program. The producing
 * step records an event (inside the captured graph); download_async on a lane finds the
 * output by its address, and its copy waits for that event on the lane's copy stream, which
 * the lane's wait joins back. SHOAL_CUDA_NO_EARLY_DOWNLOAD=1 turns it off (A/B). */
#include "backends/cuda/cuda_impl.h"

#include <stdlib.h>

static int last_real_step(const sh_graph *g, const sh_cuda_prog *cp)
{
    for (int k = g->n_nodes - 1; k >= 0; k--)
        if (!g->nodes[k].dead && cp->nodes[k].kind != NK_SKIP)
            return k;
    return -1;
}

/* Outputs written by a real step (not a view) other than the last one. */
void sh_cuda_early_plan(const sh_cuda_ctx *c, const sh_graph *g, sh_cuda_prog *cp)
{
    cp->n_early = 0;
    if (c->tune.cuda_no_early_download)
        return;
    int last = last_real_step(g, cp);
    for (int i = 0; i < g->n_outputs && cp->n_early < SH_CUDA_EARLY_MAX; i++) {
        int t = g->outputs[i];
        int k = t >= 0 ? g->tensors[t].producer : -1;
        if (k < 0 || k == last || g->nodes[k].dead || cp->nodes[k].kind == NK_SKIP)
            continue;
        cp->early_t[cp->n_early] = t;
        cp->early_step[cp->n_early++] = k;
    }
}

int sh_cuda_early_events(sh_cuda_ctx *c, sh_cuda_prog *cp, int lane, sh_err *err)
{
    for (int j = 0; j < cp->n_early; j++)
        if (!cp->early_ev[lane][j])
            SH_CU(c, err, cudaEventCreateWithFlags(&cp->early_ev[lane][j], cudaEventDisableTiming));
    return 0;
}

/* After step k on stream s: its outputs that download early are ready. Inside a capture the
 * record becomes a node of the graph that every replay fires. */
int sh_cuda_early_record(sh_cuda_ctx *c, const sh_cuda_prog *cp, int lane, int k, cudaStream_t s, sh_err *err)
{
    for (int j = 0; j < cp->n_early; j++) {
        if (cp->early_step[j] != k || !cp->early_ev[lane][j])
            continue;
        enum cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
        SH_CU(c, err, cudaStreamIsCapturing(s, &st));
        unsigned flags = st == cudaStreamCaptureStatusActive ? cudaEventRecordExternal : cudaEventRecordDefault;
        SH_CU(c, err, cudaEventRecordWithFlags(cp->early_ev[lane][j], s, flags));
    }
    return 0;
}

/* A run was issued on the lane: its early outputs' device addresses, until the lane's wait. */
void sh_cuda_early_note(sh_cuda_ctx *c, const sh_cuda_prog *cp, int lane, void *const *tensor_ptrs)
{
    sh_cuda_lane *ln = &c->lanes[lane];
    ln->early_prog = cp->n_early > 0 ? cp : NULL;
    for (int j = 0; j < cp->n_early; j++)
        ln->early_src[j] = tensor_ptrs[cp->early_t[j]];
}

int sh_cuda_early_download(sh_cuda_ctx *c, int lane, void *dst, const void *src, size_t n, bool *issued,
                           sh_err *err)
{
    *issued = false;
    sh_cuda_lane *ln = &c->lanes[lane];
    const sh_cuda_prog *cp = ln->early_prog;
    int j = 0;
    while (cp && j < cp->n_early && ln->early_src[j] != src)
        j++;
    if (!cp || j == cp->n_early || !cp->early_ev[lane][j])
        return 0;
    if (!ln->copy)
        SH_CU(c, err, cudaStreamCreateWithFlags(&ln->copy, cudaStreamNonBlocking));
    if (!ln->copy_done)
        SH_CU(c, err, cudaEventCreateWithFlags(&ln->copy_done, cudaEventDisableTiming));
    SH_CU(c, err, cudaStreamWaitEvent(ln->copy, cp->early_ev[lane][j], 0));
    SH_CU(c, err, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, ln->copy));
    SH_CU(c, err, cudaEventRecord(ln->copy_done, ln->copy));
    ln->copy_pending = true;
    *issued = true;
    return 0;
}

/* At the lane's wait: the lane's stream waits for its early copies, so one wait covers all. */
int sh_cuda_early_join(sh_cuda_ctx *c, int lane, sh_err *err)
{
    sh_cuda_lane *ln = &c->lanes[lane];
    ln->early_prog = NULL;
    if (!ln->copy_pending)
        return 0;
    ln->copy_pending = false;
    SH_CU(c, err, cudaStreamWaitEvent(ln->stream, ln->copy_done, 0));
    return 0;
}

void sh_cuda_early_free(sh_cuda_prog *cp)
{
    for (int l = 0; l < SH_MAX_LANES; l++)
        for (int j = 0; j < SH_CUDA_EARLY_MAX; j++)
            if (cp->early_ev[l][j])
                cudaEventDestroy(cp->early_ev[l][j]);
}
