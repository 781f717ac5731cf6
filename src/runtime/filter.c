/* Device-side score filtering of YOLOv8/YOLO11 outputs (backend.h download_filtered).
 *
 * A YOLO head's output 0 is read by nothing but the host decoder, which keeps the few anchors
 * whose best class score passes the threshold. Where the backend can filter, the output stays
 * on the device and only a compact buffer (vision/decode.h sh_yolo_compact) crosses the bus:
 * the survivor count and a fixed block of rows, in one copy issued with the rest of the run.
 * The count is only known once that copy has landed, so the block cannot be cut to it; a
 * frame with more survivors than the block holds has output 0 downloaded whole after the
 * wait instead (still intact in the arena: the context is held until the call returns) and
 * decoded as before. Either way the detections are bit for bit those of the whole output:
 * the block's size decides the bytes moved, never the result.
 *
 * The compact buffers live in one device buffer per context, charged to the budget as
 * staging (the memory report's "staging"). Models that run at once get disjoint ranges of
 * it, placed like their arena ranges (runtime.c lay_out); models that run in turn share it. */
#include <stdlib.h>
#include <string.h>

#include "runtime/runtime-impl.h"

void sh_rt_filter_plan(shoal_runtime_t rt, sh_rt_model *m)
{
    m->filtered = false;
    m->filter_bytes = 0;
    const sh_model_config *c = m->cfg;
    bool seg = c->decoder == SH_DECODER_YOLOV8_SEG;
    if (rt->backend_is_cpu || !rt->backend.iface->download_filtered || (c->decoder != SH_DECODER_YOLOV8 && !seg) ||
        rt->tuning.no_device_filter)
        return;
    /* check_outputs made output 0 [1, C, N] with C > 4 (+ the protos' nm for seg) */
    const sh_graph *g = m->graph;
    int t = m->outputs[0];
    int64_t ch = g->tensors[t].shape.d[1], n = g->tensors[t].shape.d[2];
    int64_t nm = seg ? g->tensors[m->outputs[1]].shape.d[1] : 0;
    size_t full;
    if (n <= 0 || n > INT32_MAX || ch > INT32_MAX / n || !sh_mul_size((size_t)(ch * n), sizeof(float), &full) ||
        m->plan->bytes[t] != full)
        return;   /* not the plain fp32 [C, N] (under 2^31 values) the filter reads */
    int64_t rows = n < rt->filter_rows ? n : rt->filter_rows;
    size_t bytes = sh_yolo_compact_bytes(ch, rows);
    if (bytes == 0 || bytes >= full)
        return;   /* a block that large saves nothing */
    m->filter = (sh_yolo_filter){.channels = (int)ch, .anchors = (int)n, .n_classes = (int)(ch - 4 - nm),
                                 .rows = (int)rows, .threshold = c->score_threshold};
    m->filter_bytes = bytes;
    m->filtered = true;
}

int sh_rt_filter_buffer_alloc(shoal_runtime_t rt, sh_rt_context *ctx, sh_err *err)
{
    size_t bytes = rt->filter_bytes;
    int rc = sh_budget_reserve(rt->budget, SH_MEM_STAGING, SH_BUDGET_SHARED, bytes, err);
    if (rc)
        return sh_err_prefix(err, rc, "device filter buffer of context %d: ", ctx->index);
    if ((rc = rt->backend.iface->buffer_alloc(rt->backend.ctx, bytes, &ctx->filter_dev, err))) {
        ctx->filter_dev = NULL;
        sh_budget_release(rt->budget, SH_MEM_STAGING, SH_BUDGET_SHARED, bytes);
        return sh_err_prefix(err, rc, "device filter buffer of context %d: ", ctx->index);
    }
    ctx->filter_bytes = bytes;
    return 0;
}

void sh_rt_filter_buffer_free(shoal_runtime_t rt, sh_rt_context *ctx)
{
    if (ctx->filter_dev)
        rt->backend.iface->buffer_free(rt->backend.ctx, ctx->filter_dev);
    if (ctx->filter_bytes)
        sh_budget_release(rt->budget, SH_MEM_STAGING, SH_BUDGET_SHARED, ctx->filter_bytes);
    ctx->filter_dev = NULL;
    ctx->filter_bytes = 0;
}

int sh_rt_filter_download(shoal_runtime_t rt, sh_rt_context *ctx, sh_rt_model *m, int lane, void *dst, sh_err *err)
{
    const void *src = m->tensor_ptrs[ctx->index][m->outputs[0]];
    void *scratch = (char *)ctx->filter_dev + m->filter_off;
    return rt->backend.iface->download_filtered(rt->backend.ctx, lane, &m->filter, src, scratch, dst, err);
}

int sh_rt_filter_settle(shoal_runtime_t rt, sh_rt_context *ctx, sh_rt_model *m, void *dst, bool *compact, sh_err *err)
{
    sh_yolo_compact c = {.data = dst, .bytes = m->filter_bytes};
    size_t count = 0, held = 0;
    int rc = sh_yolo_compact_survivors(&c, &count, &held, err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': device filter: ", m->cfg->name);
    *compact = held == count;
    if (*compact)
        return 0;
    int t = m->outputs[0];
    rc = rt->backend.iface->download(rt->backend.ctx, dst, m->tensor_ptrs[ctx->index][t], m->plan->bytes[t], err);
    return rc ? sh_err_prefix(err, rc, "model '%s': %zu survivors, more than the compact block's %d: ", m->cfg->name,
                              count, m->filter.rows)
              : 0;
}
