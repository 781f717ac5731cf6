/* The runtime: a config's models compiled once, kept resident inside one budget, run by mode.
 *
 * At create every model is imported, optimized, compiled and planned on the host (its plan
 * decides admission), and its weights are registered with the weight store (packed, hashed,
 * deduplicated, and kept in the host cache when it is on). Each execution context gets one
 * activation arena sized to the largest plan, charged to the budget up front. The residency
 * manager then decides which models' weights are on the device. */
#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/cpus.h"
#include "import/onnx_import.h"
#include "graph/flops.h"
#include "graph/frame_ops.h"
#include "vision/frame.h"
#include "vision/hands.h"
#include "graph/passes.h"
#include "runtime/hand_task.h"
#include "runtime/introspect.h"
#include "runtime/lanes.h"
#include "runtime/model_meta.h"
#include "runtime/runtime-impl.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

double sh_rt_now(const struct shoal_runtime *rt)
{
    return mono_s() - rt->t0;
}

void sh_rt_logf(shoal_runtime_t rt, shoal_log_level level, const char *fmt, ...)
{
    if (!rt->log)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt->log(rt->log_user, level, msg);
}

/* shoal_last_error(): the calling thread's last failure on any handle, or on none (create,
 * images, a NULL argument). Per thread, like errno, so it needs no handle and no lock. */
static _Thread_local char api_error[512];

static void set_api_error(const char *msg)
{
    snprintf(api_error, sizeof api_error, "%s", msg);
}

const char *shoal_last_error(void)
{
    return api_error;
}

const char *shoal_version(void)
{
    return SHOAL_VERSION;
}

int sh_api_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(api_error, sizeof api_error, fmt, ap);
    va_end(ap);
    return status;
}

/* The last error is kept per calling thread (a small table keyed by thread id), so two
 * threads serving requests never read each other's messages. */
static sh_rt_err_slot *err_slot(shoal_runtime_t rt, bool claim)
{
    pthread_t self = pthread_self();
    for (int i = 0; i < SH_RT_ERR_SLOTS; i++)
        if (rt->errs[i].used && pthread_equal(rt->errs[i].thread, self))
            return &rt->errs[i];
    if (!claim)
        return NULL;
    sh_rt_err_slot *s = &rt->errs[rt->err_next];
    rt->err_next = (rt->err_next + 1) % SH_RT_ERR_SLOTS;
    s->used = true;
    s->thread = self;
    s->msg[0] = '\0';
    return s;
}

int sh_rt_fail(shoal_runtime_t rt, const sh_err *err)
{
    pthread_mutex_lock(&rt->err_lock);
    sh_rt_err_slot *s = err_slot(rt, true);
    snprintf(s->msg, sizeof s->msg, "%s", err->msg[0] ? err->msg : shoal_status_str(err->status));
    set_api_error(s->msg);
    pthread_mutex_unlock(&rt->err_lock);
    return err->status ? err->status : SHOAL_ERR_INTERNAL;
}

const char *shoal_runtime_last_error(shoal_runtime_t rt)
{
    if (!rt)
        return api_error;
    pthread_mutex_lock(&rt->err_lock);
    sh_rt_err_slot *s = err_slot(rt, false);
    const char *m = s ? s->msg : "";
    pthread_mutex_unlock(&rt->err_lock);
    return m;
}

shoal_runtime_params shoal_runtime_default_params(void)
{
    shoal_runtime_params p;
    memset(&p, 0, sizeof p);
    p.preload = 1;
    return p;
}

/* --- models -------------------------------------------------------------------------- */

static int find_image_input(shoal_runtime_t rt, sh_rt_model *m, sh_err *err)
{
    sh_graph *g = m->graph;
    if (g->n_inputs != 1)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "model '%s': %d graph inputs; an image model has exactly one",
                       m->cfg->name, g->n_inputs);
    sh_tensor *in = &g->tensors[g->inputs[0]];
    if (in->shape.ndim != 4 || (in->shape.d[0] != 1 && in->shape.d[0] != -1) ||
        (in->shape.d[1] != 3 && in->shape.d[1] != -1))
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': input '%s' must be [1,3,H,W]", m->cfg->name, in->name);
    /* Dynamic dims take the configured input size. */
    in->shape.d[0] = 1;
    in->shape.d[1] = 3;
    if (in->shape.d[2] < 0)
        in->shape.d[2] = m->cfg->input_h;
    if (in->shape.d[3] < 0)
        in->shape.d[3] = m->cfg->input_w;
    m->in_h = (int)in->shape.d[2];
    m->in_w = (int)in->shape.d[3];
    if (in->dtype != SH_DT_FLOAT32)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "model '%s': input '%s' is %s; shoal feeds float32 images",
                       m->cfg->name, in->name, sh_dtype_name(in->dtype));
    (void)rt;
    return 0;
}

/* Checks that the outputs fit the configured decoder, so a wrong model fails at create with
 * a message rather than producing garbage later. */
static int check_outputs(sh_rt_model *m, sh_err *err)
{
    int rc;
    sh_graph *g = m->graph;
    const sh_model_config *c = m->cfg;
    if (g->n_outputs > SH_RT_MAX_OUTPUTS)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "model '%s': %d outputs; shoal reads %d at most", c->name,
                       g->n_outputs, SH_RT_MAX_OUTPUTS);
    m->n_outputs = g->n_outputs;
    for (int i = 0; i < m->n_outputs; i++)
        m->outputs[i] = g->outputs[i];
    const sh_shape *s0 = &g->tensors[m->outputs[0]].shape;
    char buf[64];
    const char *names_from = m->meta && c->classes == m->meta->names ? "the model's metadata" : "the config";
    switch (c->decoder) {
    case SH_DECODER_YOLOV8:
    case SH_DECODER_YOLOV8_SEG: {
        int64_t extra = c->decoder == SH_DECODER_YOLOV8_SEG ? 32 : 0;
        if (s0->ndim != 3 || s0->d[0] != 1 || s0->d[1] <= 4 + extra)
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output '%s' is %s; decoder %s expects [1, 4+classes%s, anchors]",
                           c->name, g->tensors[m->outputs[0]].name, sh_shape_str(s0, buf, sizeof buf),
                           sh_decoder_name(c->decoder), extra ? "+32" : "");
        int64_t nc = s0->d[1] - 4 - extra;
        if (c->n_classes && (int64_t)c->n_classes != nc)
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output has %lld classes but %s names %zu",
                           c->name, (long long)nc, names_from, c->n_classes);
        if (extra) {
            if (m->n_outputs < 2 || g->tensors[m->outputs[1]].shape.ndim != 4 || g->tensors[m->outputs[1]].shape.d[1] != 32)
                return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': decoder yolov8-seg needs a second output of prototypes [1,32,H,W]",
                               c->name);
        }
        break;
    }
    case SH_DECODER_YOLOX:
        if (s0->ndim != 3 || s0->d[0] != 1 || s0->d[2] <= 5)
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output is %s; decoder yolox expects [1, anchors, 5+classes]",
                           c->name, sh_shape_str(s0, buf, sizeof buf));
        if (c->n_classes && (int64_t)c->n_classes != s0->d[2] - 5)
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output has %lld classes but %s names %zu",
                           c->name, (long long)(s0->d[2] - 5), names_from, c->n_classes);
        break;
    case SH_DECODER_LANDMARKS:
        if (sh_shape_numel(s0) < 3 * SH_HAND_POINTS + 2)
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output is %s; decoder landmarks expects >= 65 values",
                           c->name, sh_shape_str(s0, buf, sizeof buf));
        break;
    case SH_DECODER_CLASSIFY: {
        int crc = sh_rt_classify_check(m, err);
        if (crc)
            return crc;
        break;
    }
    case SH_DECODER_END2END:
        if (c->task == SH_TASK_SEGMENT) {
            const sh_shape *s1 = m->n_outputs > 1 ? &g->tensors[m->outputs[1]].shape : NULL;
            if (!s1 || s1->ndim != 4 || s0->ndim != 3 || s0->d[0] != 1 || s0->d[2] != 6 + s1->d[1])
                return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output '%s' is %s; decoder end2end for task segment "
                               "expects [1, max_det, 6+nm] and prototypes [1, nm, H, W]", c->name,
                               g->tensors[m->outputs[0]].name, sh_shape_str(s0, buf, sizeof buf));
        } else if (s0->ndim != 3 || s0->d[0] != 1 || s0->d[2] != 6) {
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': output '%s' is %s; decoder end2end expects [1, max_det, 6]",
                           c->name, g->tensors[m->outputs[0]].name, sh_shape_str(s0, buf, sizeof buf));
        }
        break;
    case SH_DECODER_NONE:
        break;
    }
    if ((rc = sh_rt_meta_check_classes(c, m->meta, err)))
        return rc;
    for (int i = 0; i < m->n_outputs; i++)
        if (g->tensors[m->outputs[i]].dtype != SH_DT_FLOAT32)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "model '%s': output '%s' is not float32", c->name,
                           g->tensors[m->outputs[i]].name);
    return 0;
}

static void drop_const(shoal_runtime_t rt, sh_rt_model *m, int t);
static void drop_consts(shoal_runtime_t rt, sh_rt_model *m);

size_t sh_rt_staged_input_bytes(const sh_rt_model *m)
{
    size_t n = sh_align_up(m->plan->bytes[m->size_in], 64);
    return m->rect_in >= 0 ? n + sh_align_up(m->plan->bytes[m->rect_in], 64) : n;
}

/* The frame ops the config asks for: its preprocessing keys, decoder and thresholds. */
static sh_frame_spec frame_spec(const shoal_runtime_t rt, const sh_rt_model *m)
{
    const sh_model_config *c = m->cfg;
    sh_frame_spec s = sh_frame_default_spec(m->in_w, m->in_h);
    s.resize = c->letterbox == SH_LETTERBOX_STRETCH ? SH_RESIZE_STRETCH : SH_RESIZE_LETTERBOX;
    s.place = c->letterbox == SH_LETTERBOX_TOP_LEFT ? SH_PLACE_TOP_LEFT : SH_PLACE_CENTER;
    s.pad_value = 114;
    s.order = c->color == SH_COLOR_BGR ? SH_CHANNELS_BGR : SH_CHANNELS_RGB;
    s.scale = c->scale;
    for (int k = 0; k < 3; k++) {
        s.mean[k] = c->mean[k];
        s.std[k] = c->std[k];
    }
    s.pixel_format = SH_PIXEL_RGB;   /* shoal_image holds RGB */
    s.max_pixels = rt->max_frame_pixels;
    if (rt->cfg->inference.mask_pool_frames > 0)
        s.mask_pool_frames = rt->cfg->inference.mask_pool_frames;
    s.decoder = c->decoder == SH_DECODER_YOLOV8 || c->decoder == SH_DECODER_YOLOV8_SEG ? SH_FRAME_SPEC_YOLOV8
              : c->decoder == SH_DECODER_YOLOX                                       ? SH_FRAME_SPEC_YOLOX
              : c->decoder == SH_DECODER_LANDMARKS                                   ? SH_FRAME_SPEC_LANDMARKS
                                                                                     : SH_FRAME_SPEC_NONE;
    s.masks = c->decoder == SH_DECODER_YOLOV8_SEG;
    s.score_threshold = c->score_threshold;
    s.iou_threshold = c->iou_threshold;
    s.max_detections = c->max_detections;
    s.agnostic = c->agnostic_nms;
    return s;
}

/* Extends the optimized network with the frame ops and optimizes the whole again; the
 * network's outputs stay graph outputs only where the host decodes them (classify, end2end,
 * none). Compaction renumbers tensors, so indices are read afterwards. */
static int add_frame_ops(shoal_runtime_t rt, sh_rt_model *m, sh_err *err)
{
    sh_frame_spec spec = frame_spec(rt, m);
    sh_graph *g = m->graph;
    int rc = sh_graph_add_frame_ops(g, &spec, err);
    sh_optimize_params op = sh_optimize_default_params();
    if (rc || (rc = sh_graph_optimize(g, &op, err)))
        return sh_err_prefix(err, rc, "model '%s': frame ops: ", m->cfg->name);
    if (g->n_inputs != 2 || g->n_outputs > SH_RT_MAX_RESULTS)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "model '%s': %d inputs and %d outputs after the frame ops",
                       m->cfg->name, g->n_inputs, g->n_outputs);
    m->frame_in = g->inputs[0];
    m->size_in = g->inputs[1];
    m->rect_in = -1;
    m->n_results = g->n_outputs;
    memcpy(m->results, g->outputs, (size_t)g->n_outputs * sizeof *g->outputs);
    m->n_outputs = spec.decoder == SH_FRAME_SPEC_NONE ? g->n_outputs - 1 : 0;
    for (int i = 0; i < m->n_outputs; i++)
        m->outputs[i] = g->outputs[1 + i];
    m->mask_bits = spec.masks ? 6 : -1;
    /* the pool's size as shape inference made it from the spec */
    m->mask_pool = spec.masks ? (size_t)sh_shape_numel(&g->tensors[m->results[m->mask_bits]].shape) : 0;
    return 0;
}

/* Parse and the passes: the model's own graph only, no backend. */
static int import_model(shoal_runtime_t rt, sh_rt_model *m, sh_err *err)
{
    double t = mono_s();
    if (sh_rt_hand_is_task(m))   /* NHWC crops from the hand landmarker, not the letterboxed frame */
        return sh_rt_hand_import(rt, m, err);
    int rc = sh_onnx_load_file_meta(rt->alloc, m->cfg->path, &m->graph, &m->meta, err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    m->parse_ms = (mono_s() - t) * 1e3;
    t = mono_s();
    if ((rc = sh_graph_widen_fp16(m->graph, NULL, err)))
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    if ((rc = sh_rt_meta_defaults(m->cfg, m->graph, m->meta, err)) || (rc = find_image_input(rt, m, err)))
        return rc;
    sh_optimize_params op = sh_optimize_default_params();
    if ((rc = sh_graph_optimize(m->graph, &op, err)))
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    sh_rt_meta_pick_decoder(m->cfg, m->graph);
    sh_flops f = sh_graph_flops(m->graph);
    m->flops = sh_flops_total(&f);
    if ((rc = check_outputs(m, err)) || (rc = add_frame_ops(rt, m, err)))
        return rc;
    m->optimize_ms = (mono_s() - t) * 1e3;
    return 0;
}

/* Compile, plan and pack: the model's own program, plan and packed weights. compile_mu, when
 * given, serializes compile for a backend that says its compile is not thread-safe. */
typedef struct drop_ctx {
    shoal_runtime_t rt;
    sh_rt_model *m;
} drop_ctx;

static void drop_packed_const(void *user, int t)
{
    drop_ctx *d = user;
    drop_const(d->rt, d->m, t);
}

static int build_model(shoal_runtime_t rt, sh_rt_model *m, pthread_mutex_t *compile_mu, sh_weight_prepack **pk,
                       sh_err *err)
{
    double t = mono_s();
    int rc;
    if (compile_mu)
        pthread_mutex_lock(compile_mu);
    rc = rt->backend.iface->compile(rt->backend.ctx, m->graph, &m->prog, err);
    if (compile_mu)
        pthread_mutex_unlock(compile_mu);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    m->compile_ms = (mono_s() - t) * 1e3;
    t = mono_s();
    if ((rc = sh_plan_build(rt->alloc, m->graph, m->prog, rt->backend.iface->alignment, &m->plan, err)))
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    m->plan_ms = (mono_s() - t) * 1e3;
    t = mono_s();
    /* With an unlimited cache every pack is kept and registration drops the graph's copy
     * anyway (register_model): each weight's source bytes go as soon as it is packed, so a
     * model never holds its fp32 weights beside its packed ones (that set the peak RSS). */
    drop_ctx dc = {rt, m};
    rc = sh_weight_store_prepack(rt->weights, m->prog, rt->host_cache_unlimited ? drop_packed_const : NULL, &dc, pk,
                                 err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    if (rt->host_cache_unlimited)
        drop_consts(rt, m);
    m->pack_ms = (mono_s() - t) * 1e3;
    return 0;
}

/* What a prepared model adds to shared state, on the creating thread in model order: its
 * weight entries (dedup and host cache charges), bindings and the runtime's maxima. */
static int register_model(shoal_runtime_t rt, sh_rt_model *m, sh_weight_prepack *pk, sh_err *err)
{
    double t = mono_s();
    int rc;
    if ((rc = sh_weight_store_register_prepacked(rt->weights, m->id, m->prog, pk, err)))
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    m->pack_ms += (mono_s() - t) * 1e3;
    /* Models not loaded at create give their host copy back now; their first load reads the
     * file again. Keeping five models' fp32 weights around would double peak memory. */
    if (!m->consts_dropped && (rt->host_cache_unlimited || (!rt->host_cache_on && !m->cfg->preload)))
        drop_consts(rt, m);

    size_t nt = (size_t)m->graph->n_tensors, nn = (size_t)(m->graph->n_nodes ? m->graph->n_nodes : 1);
    m->weight_ptrs = sh_calloc(rt->alloc, nt, sizeof(void *));
    m->tensor_ptrs = sh_calloc(rt->alloc, (size_t)rt->n_contexts, sizeof(void **));
    m->ws_ptrs = sh_calloc(rt->alloc, (size_t)rt->n_contexts, sizeof(void **));
    if (!m->weight_ptrs || !m->tensor_ptrs || !m->ws_ptrs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "model '%s': out of memory", m->cfg->name);
    for (int c = 0; c < rt->n_contexts; c++) {
        m->tensor_ptrs[c] = sh_calloc(rt->alloc, nt, sizeof(void *));
        m->ws_ptrs[c] = sh_calloc(rt->alloc, nn, sizeof(void *));
        if (!m->tensor_ptrs[c] || !m->ws_ptrs[c])
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "model '%s': out of memory", m->cfg->name);
    }
    /* the frame is uploaded from the caller's image; its size (and a hand stage's rect) are staged */
    size_t in_bytes = sh_rt_staged_input_bytes(m);
    if (m->plan->bytes[m->size_in] != 2 * sizeof(int32_t) ||
        m->plan->bytes[m->frame_in] != (size_t)rt->max_frame_pixels * 3 ||
        (m->rect_in >= 0 && m->plan->bytes[m->rect_in] != SH_HAND_CROP_WORDS * sizeof(float)))
        return sh_errf(err, SHOAL_ERR_INTERNAL, "model '%s': backend stores the frame in %zu bytes and its size in "
                       "%zu, not as 8-bit pixels and two int32 (and a crop rect of %d floats)", m->cfg->name,
                       m->plan->bytes[m->frame_in], m->plan->bytes[m->size_in], SH_HAND_CROP_WORDS);
    if (in_bytes > rt->max_input_bytes)
        rt->max_input_bytes = in_bytes;
    size_t out_bytes = 0;
    for (int i = 0; i < m->n_results; i++) {
        m->result_off[i] = out_bytes;
        out_bytes += sh_align_up(m->plan->bytes[m->results[i]], 64);
    }
    if (out_bytes > rt->max_output_bytes)
        rt->max_output_bytes = out_bytes;
    if (m->plan->arena_bytes > rt->arena_bytes)
        rt->arena_bytes = m->plan->arena_bytes;
    return 0;
}

static void free_model(shoal_runtime_t rt, sh_rt_model *m)
{
    for (int c = 0; m->tensor_ptrs && c < rt->n_contexts; c++)
        sh_free(rt->alloc, m->tensor_ptrs[c]);
    for (int c = 0; m->ws_ptrs && c < rt->n_contexts; c++)
        sh_free(rt->alloc, m->ws_ptrs[c]);
    sh_free(rt->alloc, m->tensor_ptrs);
    sh_free(rt->alloc, m->ws_ptrs);
    sh_free(rt->alloc, m->weight_ptrs);
    sh_plan_destroy(rt->alloc, m->plan);
    if (m->prog)
        rt->backend.iface->program_free(rt->backend.ctx, m->prog);
    sh_graph_destroy(m->graph);
    if (m->cfg && m->meta && m->cfg->classes == m->meta->names) {
        m->cfg->classes = NULL;
        m->cfg->n_classes = 0;
    }
    sh_model_meta_destroy(rt->alloc, m->meta);
    m->meta = NULL;
}

/* --- weight data on the host ------------------------------------------------------------
 * Once packed weights exist elsewhere (on the device, or in the host cache), the graph's own
 * fp32 copy is dead weight: on the CPU it would double the process's memory. It is freed, and
 * read again from the model file (parse + the same passes) if a later load must repack —
 * which is exactly the cost the host cache exists to avoid. */

static void drop_const(shoal_runtime_t rt, sh_rt_model *m, int t)
{
    sh_tensor *x = &m->graph->tensors[t];
    if (m->prog->weight_bytes[t] > 0 && x->is_const && x->data) {
        sh_free(rt->alloc, x->data);
        x->data = NULL;
    }
}

static void drop_consts(shoal_runtime_t rt, sh_rt_model *m)
{
    for (int t = 0; t < m->graph->n_tensors; t++)
        drop_const(rt, m, t);
    m->consts_dropped = true;
}

static int restore_consts(shoal_runtime_t rt, sh_rt_model *m, sh_err *err)
{
    sh_graph *g2 = NULL;
    bool hand = sh_rt_hand_is_task(m);   /* read with the import's own passes, NHWC input as is */
    int rc = hand ? sh_rt_hand_load_graph(rt, m, &g2, err) : sh_onnx_load_file(rt->alloc, m->cfg->path, &g2, err);
    if (rc == 0 && !hand)
        rc = sh_graph_widen_fp16(g2, NULL, err);
    if (rc == 0 && !hand && g2->n_inputs == 1) {
        sh_tensor *in = &g2->tensors[g2->inputs[0]];
        in->shape.d[0] = 1;
        in->shape.d[1] = 3;
        in->shape.d[2] = m->in_h;
        in->shape.d[3] = m->in_w;
    }
    sh_optimize_params op = sh_optimize_default_params();
    if (rc == 0 && !hand)
        rc = sh_graph_optimize(g2, &op, err);
    for (int t = 0; rc == 0 && t < m->graph->n_tensors; t++) {
        sh_tensor *x = &m->graph->tensors[t];
        if (m->prog->weight_bytes[t] == 0 || !x->is_const || x->data)
            continue;
        int t2 = sh_graph_find_tensor(g2, x->name);
        if (t2 < 0 || !g2->tensors[t2].data || g2->tensors[t2].nbytes != x->nbytes)
            rc = sh_errf(err, SHOAL_ERR_STATE, "model '%s': file changed since it was planned (weight '%s')",
                         m->cfg->name, x->name);
        else {
            x->data = g2->tensors[t2].data;
            g2->tensors[t2].data = NULL;
        }
    }
    sh_graph_destroy(g2);
    if (rc)
        return sh_err_prefix(err, rc, "reloading model '%s': ", m->cfg->name);
    m->consts_dropped = false;
    return 0;
}

/* --- residency callbacks ----------------------------------------------------------- */

static size_t footprint_cb(void *user, const unsigned char *set, int n)
{
    shoal_runtime_t rt = user;
    return sh_weight_store_set_bytes(rt->weights, set);
}

static int load_cb(void *user, int id, sh_err *err)
{
    shoal_runtime_t rt = user;
    sh_rt_model *m = &rt->models[id];
    /* Called under the residency lock, so nothing else loads between the two calls. */
    size_t adds = sh_weight_store_bytes_to_load(rt->weights, id);
    int rc;
    if (m->consts_dropped && !rt->host_cache_unlimited && (rc = restore_consts(rt, m, err)))
        return rc;
    rc = sh_weight_store_load(rt->weights, id, m->prog, m->weight_ptrs, err);
    if (rc)
        return sh_err_prefix(err, rc, "loading model '%s': ", m->cfg->name);
    if (!rt->host_cache_on) {
        drop_consts(rt, m);
        malloc_trim(0);
    }
    if (adds != SIZE_MAX) {
        pthread_mutex_lock(&rt->stats_lock);
        m->load_bytes_total += adds;
        if (m->n_loads)
            m->reload_bytes_total += adds;
        m->n_loads++;
        m->resident_since = sh_rt_now(rt);
        pthread_mutex_unlock(&rt->stats_lock);
    }
    for (int c = 0; c < rt->n_contexts; c++) {
        char *base = rt->contexts[c].arena ? (char *)rt->contexts[c].arena + m->arena_off : NULL;
        rc = sh_plan_bind(m->plan, m->prog, base, m->weight_ptrs, m->tensor_ptrs[c], m->ws_ptrs[c]);
        if (rc) {
            sh_weight_store_unload(rt->weights, id);
            return sh_errf(err, rc, "model '%s': binding its plan failed", m->cfg->name);
        }
        m->binding[c] = __atomic_add_fetch(&rt->next_binding, 1, __ATOMIC_RELAXED);
    }
    m->bound = true;
    sh_rt_logf(rt, SHOAL_LOG_INFO, "model %s resident", m->cfg->name);
    return 0;
}

static void unload_cb(void *user, int id)
{
    shoal_runtime_t rt = user;
    sh_rt_model *m = &rt->models[id];
    sh_weight_store_unload(rt->weights, id);
    m->bound = false;
    pthread_mutex_lock(&rt->stats_lock);
    m->resident_since = -1;
    pthread_mutex_unlock(&rt->stats_lock);
    sh_rt_logf(rt, SHOAL_LOG_INFO, "model %s unloaded", m->cfg->name);
}

/* --- create / destroy ---------------------------------------------------------------- */

static int host_total_bytes(uint64_t *out)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    *out = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    return 0;
}

static int create_backend(shoal_runtime_t rt, const shoal_runtime_params *p, const sh_runtime_internal_params *ip,
                          sh_err *err)
{
    const char *dev = p->device;
    if (!dev)
        dev = rt->cfg->inference.device == SH_DEVICE_CUDA ? "cuda"
              : rt->cfg->inference.device == SH_DEVICE_CPU ? "cpu" : "auto";
    sh_backend_params bp = {.alloc = rt->alloc,
                            .n_threads = p->threads > 0 ? p->threads : rt->cfg->inference.threads,
                            .cuda_graphs = rt->cfg->inference.cuda_graphs,
                            .tuning = rt->tuning,
                            .log = rt->log,
                            .log_user = rt->log_user,
                            .fail_alloc_nth = ip ? ip->backend_fail_alloc_nth : 0};
    /* the tuning's stream count (an A/B run) wins over the config's */
    if (bp.tuning.cuda_streams < 0 || bp.tuning.cuda_streams > SH_CONFIG_MAX_STREAMS)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "tuning.cuda_streams %d: expected 1..%d (0 = the config's)",
                       bp.tuning.cuda_streams, SH_CONFIG_MAX_STREAMS);
    if (bp.tuning.cuda_streams == 0)
        bp.tuning.cuda_streams = rt->cfg->inference.streams;
    if (!strcmp(dev, "cuda") || !strcmp(dev, "auto")) {
        sh_err cerr = {0};
        int rc = sh_backend_cuda_create(&bp, &rt->backend, &cerr);
        if (rc == 0)
            return 0;
        if (!strcmp(dev, "cuda"))
            return sh_errf(err, rc, "%s", cerr.msg);
        sh_rt_logf(rt, SHOAL_LOG_INFO, "device auto: using the CPU (%s)", cerr.msg);
    } else if (strcmp(dev, "cpu")) {
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "device '%s': expected cpu, cuda or auto", dev);
    }
    return sh_backend_cpu_create(&bp, &rt->backend, err);
}

uint64_t sh_rt_device_total_bytes(shoal_runtime_t rt)
{
    uint64_t total = 0;
    size_t free_b = 0, total_b = 0;
    if (rt->backend.iface->memory_info && rt->backend.iface->memory_info(rt->backend.ctx, &total_b, &free_b) == 0)
        total = total_b;
    else
        host_total_bytes(&total);
    return total;
}

static int setup_memory(shoal_runtime_t rt, const shoal_runtime_params *p, const sh_runtime_internal_params *ip,
                        sh_err *err)
{
    uint64_t total = sh_rt_device_total_bytes(rt);
    const sh_device_i *dev = rt->backend.iface;
    /* tiers are the GPU presets: a host-memory device picks one only when the config names it */
    if (!dev->host_memory || rt->cfg->hardware.tier != SH_TIER_AUTO)
        sh_config_pick_tier(rt->cfg, dev->host_memory ? 0 : total);
    int prc = sh_config_check_precision(rt->cfg, dev->fp16 ? SH_PRECISION_FP16 : SH_PRECISION_FP32, dev->name, err);
    if (prc)
        return prc;
    uint64_t budget = sh_config_size_bytes(&rt->cfg->memory.budget, total, 0);
    if (p->budget_bytes > 0)
        budget = (uint64_t)p->budget_bytes;
    if (p->budget_fraction > 0)
        budget = (uint64_t)(p->budget_fraction * (double)total);
    const sh_config_size *hc = &rt->cfg->memory.host_cache;
    bool cache_on = hc->kind == SH_SIZE_AUTO || (hc->kind == SH_SIZE_BYTES && hc->bytes > 0) ||
                    (hc->kind == SH_SIZE_PERCENT && hc->percent > 0);
    uint64_t host_limit = hc->kind == SH_SIZE_AUTO ? 0 : sh_config_size_bytes(hc, total, 0);
    rt->host_cache_on = cache_on;
    rt->host_cache_unlimited = cache_on && host_limit == 0;
    char device_name[32];
    snprintf(device_name, sizeof device_name, dev->host_memory ? "%s" : "%s:0", dev->name);
    int rc = sh_budget_create(rt->alloc, device_name, (size_t)budget, (size_t)host_limit,
                              rt->n_models, &rt->budget, err);
    if (rc)
        return rc;
    if (ip && ip->budget_hook)   /* before the first charge, so a test sees every one */
        sh_budget_set_hook(rt->budget, ip->budget_hook, ip->budget_hook_user);
    sh_weight_store_params wp = {.alloc = rt->alloc,
                                 .backend = rt->backend,
                                 .budget = rt->budget,
                                 .host_cache = cache_on,
                                 .host_is_device = dev->host_memory,
                                 /* CPU buffers are plain host blocks: one per weight keeps the
                                  * budget's charges equal to the footprint residency plans with
                                  * (16 MiB chunks made small models look 16 MiB big). */
                                 .chunk_bytes = dev->host_memory ? dev->alignment : (size_t)4 << 20,
                                 .max_models = rt->n_models,
                                 /* a full-size model's weights pack on a few cores while the
                                  * other models load beside it */
                                 .pack_threads = sh_cpu_count() < 4 ? sh_cpu_count() : 4};
    if ((rc = sh_weight_store_create(&wp, &rt->weights, err)))
        return rc;
    sh_residency_callbacks cb = {.user = rt, .footprint = footprint_cb, .load = load_cb, .unload = unload_cb};
    if ((rc = sh_residency_create(rt->alloc, rt->budget, &cb, rt->n_models, &rt->residency, err)))
        return rc;
    for (int i = 0; i < rt->n_models; i++) {
        const sh_model_config *c = rt->models[i].cfg;
        sh_residency_model rm = {.name = c->name, .priority = c->priority, .pinned = c->pinned,
                                 .idle_timeout_s = c->pinned ? 0 : rt->cfg->memory.idle_unload_s};
        if ((rc = sh_residency_configure(rt->residency, i, &rm, err)))
            return rc;
    }
    /* A hand landmarker is useful only with both networks, so its stages come and go as one. */
    for (int i = 0; i < rt->n_models; i++) {
        const sh_model_config *c = rt->models[i].cfg;
        int stages[2] = {i, (int)c->palm_stage};
        if (c->palm_stage && (rc = sh_residency_bind(rt->residency, stages, 2, c->name, err)))
            return rc;
    }
    return 0;
}

/* Host staging of a context. Concurrent runs issue every copy before waiting, which only
 * overlaps with page-locked memory (a copy from pageable memory makes the host wait). */
static int alloc_staging(shoal_runtime_t rt, sh_rt_context *x, sh_err *err)
{
    const sh_device_i *be = rt->backend.iface;
    if (rt->concurrent && be->host_alloc) {
        x->staging_pinned = true;
        int rc = be->host_alloc(rt->backend.ctx, rt->max_input_bytes, (void **)&x->input_host, err);
        if (rc == 0)
            rc = be->host_alloc(rt->backend.ctx, rt->max_output_bytes, (void **)&x->output_host, err);
        return rc ? sh_err_prefix(err, rc, "staging buffers of context %d: ", x->index) : 0;
    }
    x->input_host = sh_alloc(rt->alloc, rt->max_input_bytes);
    x->output_host = sh_alloc(rt->alloc, rt->max_output_bytes);
    if (!x->input_host || !x->output_host)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for staging buffers");
    return 0;
}

static void free_staging(shoal_runtime_t rt, sh_rt_context *x)
{
    if (!x->staging_pinned) {
        sh_free(rt->alloc, x->input_host);
        sh_free(rt->alloc, x->output_host);
        return;
    }
    if (x->input_host)
        rt->backend.iface->host_free(rt->backend.ctx, x->input_host);
    if (x->output_host)
        rt->backend.iface->host_free(rt->backend.ctx, x->output_host);
}

/* --- concurrency: which models run at once, and where their bytes go ----------------------
 * Models that share a mode run together (one lane each) when the backend offers lanes, so
 * each gets its own range of the arena and of the staging; models that never share a mode
 * still share bytes. The arena grows from the largest plan to the largest sum over a mode's
 * models (lanes.h), so `auto` turns it on only when the budget holds every context's larger
 * arena beside the weights of the largest mode and the pinned models. */

/* Weight bytes of the largest set that must be resident at once: a mode's models (or one
 * model alone) with the pinned ones. */
static size_t largest_weight_set(shoal_runtime_t rt, unsigned char *set)
{
    size_t most = 0;
    for (int k = -1; k < (int)rt->cfg->n_modes + rt->n_models; k++) {
        for (int i = 0; i < rt->n_models; i++)
            set[i] = rt->models[i].cfg->pinned;
        if (k >= 0 && k < (int)rt->cfg->n_modes)
            for (size_t i = 0; i < rt->cfg->modes[k].n_models; i++)
                set[rt->cfg->modes[k].models[i]] = 1;
        else if (k >= (int)rt->cfg->n_modes)
            set[k - (int)rt->cfg->n_modes] = 1;
        for (int i = 0; i < rt->n_models; i++)   /* a hand model runs with its palm detector */
            if (set[i] && rt->cfg->models[i].palm_stage)
                set[rt->cfg->models[i].palm_stage] = 1;
        size_t b = sh_weight_store_set_bytes(rt->weights, set);
        if (b > most)
            most = b;
    }
    return most;
}

/* What lay_out places per model: its arena range, input and output staging. */
enum { PLACE_ARENA, PLACE_INPUT, PLACE_OUTPUT, PLACE_KINDS };

/* A hand model's palm stage is not listed in the modes, yet it runs beside its owner's mode
 * partners (hand_task.c): it shares their company, so its arena, staging and lane stay apart
 * from theirs and from its owner's. */
static void join_palm_stages(shoal_runtime_t rt, unsigned char *together)
{
    size_t n = (size_t)rt->n_models;
    for (size_t i = 0; i < n; i++) {
        const sh_model_config *c = rt->models[i].cfg;
        size_t p = c->palm_stage;
        if (c->is_palm_stage || p == 0 || p >= n)
            continue;
        for (size_t j = 0; j < n; j++)
            if (j != p && (together[i * n + j] || j == i))
                together[p * n + j] = together[j * n + p] = 1;
    }
}

/* Offsets and lanes of every model; the sizes of the arena and staging they need. */
static int lay_out(shoal_runtime_t rt, unsigned char *together, size_t *bytes, size_t *off, int *lane,
                   size_t sizes[PLACE_KINDS], sh_err *err)
{
    const sh_config *cfg = rt->cfg;
    sh_lanes_mode modes[64];
    size_t n_modes = cfg->n_modes < 64 ? cfg->n_modes : 64;
    for (size_t k = 0; k < n_modes; k++)
        modes[k] = (sh_lanes_mode){.models = cfg->modes[k].models, .n_models = cfg->modes[k].n_models};
    int n = rt->n_models;
    sh_lanes_together(n, modes, n_modes, together);
    join_palm_stages(rt, together);
    for (int what = 0; what < PLACE_KINDS; what++) {
        for (int i = 0; i < n; i++) {
            sh_rt_model *m = &rt->models[i];
            size_t out = 0;
            for (int o = 0; o < m->n_results; o++)
                out += sh_align_up(m->plan->bytes[m->results[o]], 64);
            bytes[i] = what == PLACE_ARENA ? m->plan->arena_bytes
                     : what == PLACE_INPUT ? sh_rt_staged_input_bytes(m)
                     : out;
        }
        size_t align = what == PLACE_ARENA ? rt->backend.iface->alignment : 64;
        if (sh_lanes_place(n, bytes, together, align, off + (size_t)what * n, &sizes[what]))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "arena placement of the models overflows");
    }
    double flops[64];
    for (int i = 0; i < n && i < 64; i++)
        flops[i] = rt->models[i].flops;
    sh_lanes_assign(n, together, n <= 64 ? flops : NULL, SH_MAX_LANES, lane);
    return 0;
}

static bool budget_holds(shoal_runtime_t rt, size_t arena, unsigned char *set)
{
    sh_budget_stats st;
    sh_budget_get_stats(rt->budget, &st);
    if (st.device_limit == 0)
        return true;
    size_t need = 0;
    if (!sh_mul_size(arena, (size_t)rt->n_contexts, &need) || !sh_add_size(need, largest_weight_set(rt, set), &need))
        return false;
    return need <= st.device_limit;
}

static int pick_concurrency(shoal_runtime_t rt, const shoal_runtime_params *p, sh_err *err)
{
    rt->plan_max_bytes = rt->arena_bytes;
    sh_concurrency want = p->concurrent_models > 0 ? SH_CONCURRENT_ON
                        : p->concurrent_models < 0 ? SH_CONCURRENT_OFF : rt->cfg->inference.concurrent_models;
    if (want == SH_CONCURRENT_OFF || !sh_backend_has_lanes(&rt->backend) || rt->n_models == 0)
        return 0;
    size_t n = (size_t)rt->n_models;
    unsigned char *together = sh_calloc(rt->alloc, n * n + n, 1);
    size_t *bytes = sh_calloc(rt->alloc, n * (1 + PLACE_KINDS), sizeof *bytes);
    int *lane = sh_calloc(rt->alloc, n, sizeof *lane);
    size_t sizes[PLACE_KINDS];
    int rc = !together || !bytes || !lane ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory")
                                          : lay_out(rt, together, bytes, bytes + n, lane, sizes, err);
    if (rc == 0 && want == SH_CONCURRENT_AUTO &&
        !budget_holds(rt, sizes[PLACE_ARENA], together + n * n)) {
        sh_rt_logf(rt, SHOAL_LOG_INFO, "models run in turn: the budget does not hold %d arena(s) of %zu bytes "
                   "for concurrent modes", rt->n_contexts, sizes[0]);
    } else if (rc == 0) {
        rt->concurrent = true;
        for (size_t i = 0; i < n; i++) {
            sh_rt_model *m = &rt->models[i];
            m->arena_off = bytes[(1 + PLACE_ARENA) * n + i];
            m->in_off = bytes[(1 + PLACE_INPUT) * n + i];
            m->out_off = bytes[(1 + PLACE_OUTPUT) * n + i];
            m->lane = lane[i];
        }
        rt->arena_bytes = sizes[PLACE_ARENA];
        rt->max_input_bytes = sizes[PLACE_INPUT];
        rt->max_output_bytes = sizes[PLACE_OUTPUT];
        sh_rt_logf(rt, SHOAL_LOG_INFO, "a mode's models run concurrently: arena %zu bytes (largest plan %zu)",
                   sizes[0], rt->plan_max_bytes);
    }
    sh_free(rt->alloc, together);
    sh_free(rt->alloc, bytes);
    sh_free(rt->alloc, lane);
    return rc;
}

static int setup_contexts(shoal_runtime_t rt, sh_err *err)
{
    rt->contexts = sh_calloc(rt->alloc, (size_t)rt->n_contexts, sizeof *rt->contexts);
    if (!rt->contexts)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory");
    for (int c = 0; c < rt->n_contexts; c++) {
        sh_rt_context *x = &rt->contexts[c];
        x->index = c;
        int rc = sh_budget_reserve(rt->budget, SH_MEM_ACTIVATIONS, SH_BUDGET_SHARED, rt->arena_bytes, err);
        if (rc)
            return sh_err_prefix(err, rc, "activation arena of context %d: ", c);
        x->arena_bytes = rt->arena_bytes;   /* charged: destroy releases it */
        if (rt->arena_bytes && (rc = rt->backend.iface->buffer_alloc(rt->backend.ctx, rt->arena_bytes, &x->arena, err))) {
            sh_budget_release(rt->budget, SH_MEM_ACTIVATIONS, SH_BUDGET_SHARED, rt->arena_bytes);
            x->arena_bytes = 0;
            return rc;
        }
        if ((rc = alloc_staging(rt, x, err)))
            return rc;
    }
    return 0;
}

static int preload(shoal_runtime_t rt, sh_err *err)
{
    for (int i = 0; i < rt->n_models; i++) {
        if (!rt->models[i].cfg->preload)
            continue;
        int rc = sh_residency_admit(rt->residency, i, sh_rt_now(rt), err);
        if (rc)
            return sh_err_prefix(err, rc, "preloading '%s': ", rt->models[i].cfg->name);
    }
    return 0;
}

/* --- preparing the models in parallel ----------------------------------------------------
 * Import, compile, plan and pack touch nothing but the model's own graph, program, plan and
 * packed bytes, so a few worker threads prepare the models, taking them in config order.
 * Import needs no backend and overlaps with the backend's creation (a CUDA context takes a
 * few hundred ms); the rest waits at the gate until the backend and the weight store exist.
 * Everything shared (weight entries and dedup, host-cache charges, the runtime's maxima) is
 * registered afterwards on the creating thread in config order, so packed bytes, dedup
 * choices and the arena layout do not depend on thread timing; and the first failing model
 * in config order gives the error, as when the models loaded one after another (a worker
 * stops taking models after a failure: every model before it was already taken). */

typedef struct loader {
    shoal_runtime_t rt;
    pthread_mutex_t mu;
    pthread_cond_t opened;
    int gate;                    /* 0 closed, 1 open, -1 never: setting up the backend failed */
    int next;                    /* next model to take */
    bool failed;                 /* a model failed: take no more */
    pthread_mutex_t compile_mu;
    bool serialize_compile;      /* the backend's compile_serial */
    sh_weight_prepack **packs;   /* [n_models] */
    int *rc;                     /* [n_models] */
    sh_err *errs;                /* [n_models] */
} loader;

static int loader_take(loader *L)
{
    pthread_mutex_lock(&L->mu);
    int i = L->failed || L->gate < 0 || L->next >= L->rt->n_models ? -1 : L->next++;
    pthread_mutex_unlock(&L->mu);
    return i;
}

static bool loader_wait_gate(loader *L)
{
    pthread_mutex_lock(&L->mu);
    while (L->gate == 0)
        pthread_cond_wait(&L->opened, &L->mu);
    bool open = L->gate > 0;
    pthread_mutex_unlock(&L->mu);
    return open;
}

static void loader_open_gate(loader *L, bool open)
{
    pthread_mutex_lock(&L->mu);
    L->gate = open ? 1 : -1;
    pthread_cond_broadcast(&L->opened);
    pthread_mutex_unlock(&L->mu);
}

static void *loader_work(void *arg)
{
    loader *L = arg;
    shoal_runtime_t rt = L->rt;
    for (int i; (i = loader_take(L)) >= 0;) {
        sh_rt_model *m = &rt->models[i];
        int rc = import_model(rt, m, &L->errs[i]);
        if (rc == 0 && loader_wait_gate(L))
            rc = build_model(rt, m, L->serialize_compile ? &L->compile_mu : NULL, &L->packs[i], &L->errs[i]);
        L->rc[i] = rc;
        if (rc) {
            pthread_mutex_lock(&L->mu);
            L->failed = true;
            pthread_mutex_unlock(&L->mu);
        }
    }
    return NULL;
}

static int loader_init(loader *L, shoal_runtime_t rt, sh_err *err)
{
    memset(L, 0, sizeof *L);
    L->rt = rt;
    size_t n = (size_t)(rt->n_models ? rt->n_models : 1);
    L->packs = sh_calloc(rt->alloc, n, sizeof *L->packs);
    L->rc = sh_calloc(rt->alloc, n, sizeof *L->rc);
    L->errs = sh_calloc(rt->alloc, n, sizeof *L->errs);
    if (!L->packs || !L->rc || !L->errs) {
        sh_free(rt->alloc, L->packs);
        sh_free(rt->alloc, L->rc);
        sh_free(rt->alloc, L->errs);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory");
    }
    pthread_mutex_init(&L->mu, NULL);
    pthread_cond_init(&L->opened, NULL);
    pthread_mutex_init(&L->compile_mu, NULL);
    return 0;
}

static void loader_fini(loader *L)
{
    shoal_runtime_t rt = L->rt;
    for (int i = 0; i < rt->n_models; i++)
        sh_weight_prepack_destroy(rt->weights, L->packs[i]);
    sh_free(rt->alloc, L->packs);
    sh_free(rt->alloc, L->rc);
    sh_free(rt->alloc, L->errs);
    pthread_mutex_destroy(&L->mu);
    pthread_cond_destroy(&L->opened);
    pthread_mutex_destroy(&L->compile_mu);
}

/* Workers besides the creating thread, which joins them once the backend is set up: one per
 * model, at most one per core (import and packing are CPU-bound). */
static int loader_start(loader *L, pthread_t *threads, int cap)
{
    int cores = sh_cpu_count();
    int want = L->rt->n_models < cap ? L->rt->n_models : cap;
    if (want > cores)
        want = cores;
    int n = 0;
    while (n < want && pthread_create(&threads[n], NULL, loader_work, L) == 0)
        n++;
    return n;   /* fewer (even none) only slows the load: the creating thread works too */
}

/* Backend, budget, weight store and residency: what compile and pack need. Runs on the
 * creating thread while the workers import. */
static int setup_backend(shoal_runtime_t rt, const shoal_runtime_params *p, const sh_runtime_internal_params *ip,
                         sh_err *err)
{
    int rc;
    if ((rc = create_backend(rt, p, ip, err)))
        return rc;
    if (ip && ip->wrap_backend && (rc = ip->wrap_backend(ip->wrap_backend_user, &rt->backend, err)))
        return rc;
    /* a test's wrapper may present the CPU backend as a device (staging, copies, lanes) */
    rt->n_contexts = p->contexts > 0 ? p->contexts : (rt->cfg->memory.arena_contexts > 0 ? rt->cfg->memory.arena_contexts : 1);
    if (rt->n_contexts > 8)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "%d execution contexts: at most 8", rt->n_contexts);
    for (int i = 0; i < rt->n_models; i++)
        if ((rc = sh_config_read_classes(rt->cfg, rt->models[i].cfg, err)))
            return rc;
    return setup_memory(rt, p, ip, err);
}

/* Prepares every model (in parallel with the backend's setup, see above), then registers
 * them in config order. */
static int load_models(shoal_runtime_t rt, const shoal_runtime_params *p, const sh_runtime_internal_params *ip,
                       sh_err *err)
{
    loader L;
    int rc = loader_init(&L, rt, err);
    if (rc)
        return rc;
    pthread_t threads[16];
    int n_threads = loader_start(&L, threads, 16);
    rc = setup_backend(rt, p, ip, err);
    L.serialize_compile = rc == 0 && rt->backend.iface->compile_serial;
    loader_open_gate(&L, rc == 0);
    loader_work(&L);
    for (int t = 0; t < n_threads; t++)
        pthread_join(threads[t], NULL);
    for (int i = 0; rc == 0 && i < rt->n_models; i++)
        if (L.rc[i]) {
            *err = L.errs[i];
            rc = L.rc[i];
        }
    for (int i = 0; rc == 0 && i < rt->n_models; i++) {
        sh_weight_prepack *pk = L.packs[i];
        L.packs[i] = NULL;   /* register frees it */
        rc = register_model(rt, &rt->models[i], pk, err);
    }
    loader_fini(&L);
    return rc;
}

static int create(const shoal_runtime_params *p, const sh_runtime_internal_params *ip, shoal_runtime_t rt, sh_err *err)
{
    int rc;
    if (p->config_path)
        rc = sh_config_load_file(rt->alloc, p->config_path, &rt->cfg, err);
    else if (p->config_yaml)
        rc = sh_config_load_string(rt->alloc, p->config_yaml, strlen(p->config_yaml), NULL, NULL, &rt->cfg, err);
    else
        rc = sh_errf(err, SHOAL_ERR_INVALID_ARG, "no config: set config_path or config_yaml");
    if (rc)
        return rc;
    rt->max_frame_pixels = rt->cfg->inference.max_frame_pixels > 0 ? rt->cfg->inference.max_frame_pixels
                                                                    : SH_CONFIG_MAX_FRAME_PIXELS;
    rt->n_models = (int)rt->cfg->n_models;
    rt->models = sh_calloc(rt->alloc, (size_t)(rt->n_models ? rt->n_models : 1), sizeof *rt->models);
    if (!rt->models)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory");
    rt->last_mode = -1;
    rt->mode_stats = sh_calloc(rt->alloc, rt->cfg->n_modes ? rt->cfg->n_modes : 1, sizeof *rt->mode_stats);
    if (!rt->mode_stats)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory");
    for (int i = 0; i < rt->n_models; i++) {
        rt->models[i].id = i;
        rt->models[i].resident_since = -1;
        rt->models[i].cfg = &rt->cfg->models[i];
    }
    if ((rc = load_models(rt, p, ip, err)))
        return rc;
    if ((rc = pick_concurrency(rt, p, err)) || (rc = setup_contexts(rt, err)))
        return rc;
    if (p->preload && (rc = preload(rt, err)))
        return rc;
    if (p->start_monitor && (rc = sh_rt_monitor_start(rt, err)))
        return rc;
    malloc_trim(0);   /* hand the parse buffers of the load back to the system */
    return 0;
}

int shoal_runtime_create(const shoal_runtime_params *p, shoal_runtime_t *out)
{
    return sh_runtime_create_internal(p, NULL, out);
}

int sh_runtime_create_internal(const shoal_runtime_params *p, const sh_runtime_internal_params *ip,
                               shoal_runtime_t *out)
{
    if (out)
        *out = NULL;
    if (!p || !out)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_create: %s is NULL", !p ? "params" : "out");
    sh_err err = {0};
    bool own = !(ip && ip->alloc);
    sh_allocator *a = own ? sh_allocator_create() : ip->alloc;
    shoal_runtime_t rt = a ? sh_calloc(a, 1, sizeof *rt) : NULL;
    if (!rt) {
        if (own)
            sh_allocator_destroy(a);
        if (p->error && p->error_cap)
            snprintf(p->error, p->error_cap, "out of memory");
        return sh_api_fail(SHOAL_ERR_NO_MEMORY, "out of memory");
    }
    rt->alloc = a;
    rt->owns_alloc = own;
    rt->log = p->log;
    rt->log_user = p->log_user;
    rt->tuning = p->tuning;
    rt->t0 = mono_s();
    pthread_mutex_init(&rt->ctx_lock, NULL);
    pthread_mutex_init(&rt->backend_lock, NULL);
    pthread_cond_init(&rt->ctx_free, NULL);
    pthread_mutex_init(&rt->stats_lock, NULL);
    pthread_mutex_init(&rt->err_lock, NULL);
    pthread_mutex_init(&rt->monitor_lock, NULL);
    pthread_cond_init(&rt->monitor_wake, NULL);
    int rc = create(p, ip, rt, &err);
    if (rc) {
        if (p->error && p->error_cap)
            snprintf(p->error, p->error_cap, "%s", err.msg[0] ? err.msg : shoal_status_str(rc));
        set_api_error(err.msg[0] ? err.msg : shoal_status_str(rc));
        shoal_runtime_destroy(rt);
        return rc;
    }
    rt->create_ms = sh_rt_now(rt) * 1e3;
    *out = rt;
    return SHOAL_OK;
}

void shoal_runtime_destroy(shoal_runtime_t rt)
{
    if (!rt)
        return;
    sh_rt_monitor_stop(rt);
    for (int i = 0; rt->models && i < rt->n_models; i++)
        if (rt->weights)
            sh_weight_store_forget(rt->weights, i);
    sh_residency_destroy(rt->residency);
    for (int c = 0; rt->contexts && c < rt->n_contexts; c++) {
        sh_rt_context *x = &rt->contexts[c];
        if (x->arena)
            rt->backend.iface->buffer_free(rt->backend.ctx, x->arena);
        if (x->arena_bytes)
            sh_budget_release(rt->budget, SH_MEM_ACTIVATIONS, SH_BUDGET_SHARED, x->arena_bytes);
        free_staging(rt, x);
    }
    sh_free(rt->alloc, rt->contexts);
    sh_weight_store_destroy(rt->weights);
    for (int i = 0; rt->models && i < rt->n_models; i++)
        free_model(rt, &rt->models[i]);
    sh_free(rt->alloc, rt->models);
    sh_free(rt->alloc, rt->mode_stats);
    sh_budget_destroy(rt->budget);
    sh_backend_destroy(&rt->backend);
    sh_config_destroy(rt->cfg);
    pthread_mutex_destroy(&rt->ctx_lock);
    pthread_mutex_destroy(&rt->backend_lock);
    pthread_cond_destroy(&rt->ctx_free);
    pthread_mutex_destroy(&rt->stats_lock);
    pthread_mutex_destroy(&rt->err_lock);
    pthread_mutex_destroy(&rt->monitor_lock);
    pthread_cond_destroy(&rt->monitor_wake);
    sh_allocator *a = rt->alloc;
    bool own = rt->owns_alloc;
    sh_free(a, rt);
    if (own)
        sh_allocator_destroy(a);
}

/* --- residency control ---------------------------------------------------------------- */

static int model_index(shoal_runtime_t rt, const char *name, sh_err *err)
{
    if (!name)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "no model name given (NULL)");
    int i = sh_config_find_model(rt->cfg, name);
    if (i < 0)
        return sh_errf(err, SHOAL_ERR_NOT_FOUND, "unknown model '%s' (the config defines %d models)",
                       name ? name : "(null)", rt->n_models);
    return i;
}

int shoal_runtime_load_model(shoal_runtime_t rt, const char *model)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_load_model: rt is NULL");
    sh_err err = {0};
    int i = model_index(rt, model, &err);
    if (i < 0)
        return sh_rt_fail(rt, &err);
    int rc = sh_residency_admit(rt->residency, i, sh_rt_now(rt), &err);   /* a hand's palm stage too */
    return rc ? sh_rt_fail(rt, &err) : SHOAL_OK;
}

int shoal_runtime_unload_model(shoal_runtime_t rt, const char *model)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_unload_model: rt is NULL");
    sh_err err = {0};
    int i = model_index(rt, model, &err);
    if (i < 0)
        return sh_rt_fail(rt, &err);
    if (!sh_residency_is_resident(rt->residency, i))
        return SHOAL_OK;
    int rc = sh_residency_evict(rt->residency, i, &err);   /* a hand's palm stage with it */
    return rc ? sh_rt_fail(rt, &err) : SHOAL_OK;
}

int shoal_runtime_set_budget(shoal_runtime_t rt, int64_t bytes)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_set_budget: rt is NULL");
    sh_err err = {0};
    if (bytes < 0)
        return sh_rt_fail(rt, &(sh_err){SHOAL_ERR_INVALID_ARG, "budget must be >= 0 bytes (0 = unlimited)"});
    if (bytes > 0) {
        /* Refuse before evicting anything: the arenas and the weights of pinned and running
         * models (shared tensors once) cannot leave. */
        unsigned char *keep = sh_calloc(rt->alloc, (size_t)rt->n_models, 1);
        if (!keep)
            return sh_rt_fail(rt, &(sh_err){SHOAL_ERR_NO_MEMORY, "out of memory"});
        for (int i = 0; i < rt->n_models; i++) {
            sh_residency_model_stats rs;
            sh_residency_model_get_stats(rt->residency, i, &rs);
            keep[i] = rs.resident && (rs.pinned || rs.refs > 0);
        }
        size_t fixed = sh_weight_store_set_bytes(rt->weights, keep) +
                       rt->arena_bytes * (size_t)rt->n_contexts;
        sh_free(rt->alloc, keep);
        if (fixed > (size_t)bytes) {
            sh_errf(&err, SHOAL_ERR_BUDGET,
                    "budget of %lld bytes refused: needs %zu bytes for the activation arenas and the pinned or "
                    "running models; nothing was evicted", (long long)bytes, fixed);
            return sh_rt_fail(rt, &err);
        }
    }
    sh_budget_stats st;
    sh_budget_get_stats(rt->budget, &st);
    size_t old = st.device_limit;
    sh_budget_set_limit(rt->budget, (size_t)bytes, st.host_limit);
    if (bytes == 0)
        return SHOAL_OK;
    /* Evict unpinned, unreferenced models, least recently used first, until in budget. */
    sh_rt_cleanup(rt, 1.0);
    sh_budget_get_stats(rt->budget, &st);
    if (st.device_in_use > (size_t)bytes) {
        sh_budget_set_limit(rt->budget, old, st.host_limit);
        sh_errf(&err, SHOAL_ERR_BUDGET,
                "budget of %lld bytes refused: pinned or running models and arenas hold %zu bytes",
                (long long)bytes, st.device_in_use);
        return sh_rt_fail(rt, &err);
    }
    return SHOAL_OK;
}

int shoal_runtime_prefetch_mode(shoal_runtime_t rt, const char *mode)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_prefetch_mode: rt is NULL");
    sh_err err = {0};
    if (!mode)
        return sh_rt_fail(rt, &(sh_err){SHOAL_ERR_INVALID_ARG, "no mode name given (NULL)"});
    int k = sh_config_find_mode(rt->cfg, mode);
    if (k < 0) {
        sh_errf(&err, SHOAL_ERR_NOT_FOUND, "unknown mode '%s'", mode ? mode : "(null)");
        return sh_rt_fail(rt, &err);
    }
    const sh_mode_config *mc = &rt->cfg->modes[k];
    int ids[64];
    int n = 0;
    for (size_t i = 0; i < mc->n_models && n < 64; i++) {
        ids[n++] = (int)mc->models[i];
        if (rt->cfg->models[mc->models[i]].palm_stage && n < 64)
            ids[n++] = (int)rt->cfg->models[mc->models[i]].palm_stage;
    }
    sh_residency_prefetch(rt->residency, ids, n, sh_rt_now(rt));
    return SHOAL_OK;
}

int shoal_runtime_is_ready(shoal_runtime_t rt)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_is_ready: rt is NULL");
    for (int i = 0; i < rt->n_models; i++)
        if (rt->models[i].cfg->preload && !sh_residency_is_resident(rt->residency, i))
            return 0;
    return 1;
}

int shoal_runtime_model_count(shoal_runtime_t rt)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_model_count: rt is NULL");
    return rt->n_models;
}

const char *shoal_runtime_model_name(shoal_runtime_t rt, int i)
{
    if (!rt) {
        sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_model_name: rt is NULL");
        return NULL;
    }
    return i >= 0 && i < rt->n_models ? rt->models[i].cfg->name : NULL;
}

int shoal_runtime_mode_count(shoal_runtime_t rt)
{
    if (!rt)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_mode_count: rt is NULL");
    return (int)rt->cfg->n_modes;
}

const char *shoal_runtime_mode_name(shoal_runtime_t rt, int i)
{
    if (!rt) {
        sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_mode_name: rt is NULL");
        return NULL;
    }
    return i >= 0 && i < (int)rt->cfg->n_modes ? rt->cfg->modes[i].name : NULL;
}
