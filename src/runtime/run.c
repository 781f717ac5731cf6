/* Running models: a context is taken for the whole call, each model of the mode is admitted
 * (holding a reference so it cannot be evicted mid-run), fed, run and decoded: in turn, or
 * all at once on the backend's lanes when the runtime runs modes concurrently. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/hand_task.h"
#include "runtime/model_meta.h"
#include "runtime/runtime-impl.h"
#include "vision/image.h"

static sh_rt_context *take_context(shoal_runtime_t rt)
{
    pthread_mutex_lock(&rt->ctx_lock);
    for (;;) {
        for (int c = 0; c < rt->n_contexts; c++) {
            if (!rt->contexts[c].busy) {
                rt->contexts[c].busy = true;
                pthread_mutex_unlock(&rt->ctx_lock);
                return &rt->contexts[c];
            }
        }
        pthread_cond_wait(&rt->ctx_free, &rt->ctx_lock);
    }
}

static void give_context(shoal_runtime_t rt, sh_rt_context *ctx)
{
    pthread_mutex_lock(&rt->ctx_lock);
    ctx->busy = false;
    pthread_cond_signal(&rt->ctx_free);
    pthread_mutex_unlock(&rt->ctx_lock);
}

static sh_preprocess_params preprocess_params(const sh_rt_model *m)
{
    return sh_rt_preprocess_params(m->cfg, m->in_w, m->in_h);
}

static sh_ftensor ftensor(const sh_graph *g, int t, const float *data)
{
    sh_ftensor f = {.data = data};
    const sh_shape *s = &g->tensors[t].shape;
    f.ndim = s->ndim > 4 ? 4 : s->ndim;
    for (int i = 0; i < f.ndim; i++)
        f.shape[i] = s->d[i];
    return f;
}

static char *mask_rle(sh_allocator *a, const sh_mask *m)
{
    /* "x y w h: r0 r1 ...": alternating background/foreground run lengths over the box's
     * rows, starting with background (COCO's uncompressed RLE, row-major). */
    size_t cap = 64 + m->n_runs * 11;
    char *s = sh_alloc(a, cap);
    if (!s)
        return NULL;
    size_t at = (size_t)snprintf(s, cap, "%d %d %d %d:", m->x, m->y, m->width, m->height);
    for (size_t i = 0; i < m->n_runs && at < cap; i++)
        at += (size_t)snprintf(s + at, cap - at, " %u", m->runs[i]);
    return s;
}

static int fill_detections(shoal_runtime_t rt, sh_rt_result *r, sh_err *err)
{
    const sh_model_config *c = r->cfg;
    size_t n = r->dets->count;
    r->items = sh_calloc(rt->alloc, n ? n : 1, sizeof *r->items);
    r->rles = sh_calloc(rt->alloc, n ? n : 1, sizeof *r->rles);
    if (!r->items || !r->rles)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for results");
    for (size_t i = 0; i < n; i++) {
        const sh_detection *d = &r->dets->items[i];
        shoal_detection *o = &r->items[i];
        o->class_id = d->class_id;
        o->class_name = d->class_id >= 0 && (size_t)d->class_id < c->n_classes ? c->classes[d->class_id] : "";
        o->score = d->score;
        o->x1 = d->x1;
        o->y1 = d->y1;
        o->x2 = d->x2;
        o->y2 = d->y2;
        if (d->mask) {
            o->mask_area = (int64_t)d->mask->area;
            r->rles[i] = mask_rle(rt->alloc, d->mask);
            if (!r->rles[i])
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for masks");
            o->mask_rle = r->rles[i];
        }
    }
    r->pub.n_detections = (int)n;
    r->pub.detections = r->items;
    return 0;
}

/* The YOLOv8 decoders on output 0 as it came: whole, or compact from the device filter. */
static int decode_yolov8(const sh_rt_model *m, const float *const *outs, bool compact, const sh_transform *xf,
                         const sh_decode_params *dp, sh_detections *dets, sh_err *err)
{
    bool seg = m->cfg->decoder == SH_DECODER_YOLOV8_SEG;
    sh_ftensor o0 = ftensor(m->graph, m->outputs[0], outs[0]), o1 = {0};
    if (seg)
        o1 = ftensor(m->graph, m->outputs[1], outs[1]);
    sh_yolo_compact c = {.data = outs[0], .bytes = m->filter_bytes};
    if (compact)
        return seg ? sh_decode_yolov8_seg_compact(&c, &o1, xf, dp, dets, err)
                   : sh_decode_yolov8_compact(&c, xf, dp, dets, err);
    return seg ? sh_decode_yolov8_seg(&o0, &o1, xf, dp, dets, err) : sh_decode_yolov8(&o0, xf, dp, dets, err);
}

/* outs[i]: output i on the host; `compact`: output 0 is the device filter's compact buffer. */
static int decode(shoal_runtime_t rt, sh_rt_model *m, const float *const *outs, bool compact, const sh_transform *xf,
                  sh_rt_result *r, sh_err *err)
{
    const sh_model_config *c = m->cfg;
    sh_decode_params dp = sh_decode_default_params();
    dp.score_threshold = c->score_threshold;
    dp.iou_threshold = c->iou_threshold;
    dp.max_detections = c->max_detections;
    dp.agnostic = c->agnostic_nms;
    sh_ftensor o0 = ftensor(m->graph, m->outputs[0], outs[0]);
    int rc = 0;
    if (c->decoder == SH_DECODER_LANDMARKS) {
        sh_landmark_params lp = {.logits = 0};
        rc = sh_decode_hand_landmarks(&o0, xf, &lp, &r->hand, err);
        if (rc)
            return rc;
        r->has_hand = true;
        for (int k = 0; k < SH_HAND_POINTS; k++) {
            r->landmarks[3 * k] = r->hand.x[k];
            r->landmarks[3 * k + 1] = r->hand.y[k];
            r->landmarks[3 * k + 2] = r->hand.z[k];
        }
        r->pub.n_landmarks = SH_HAND_POINTS;
        r->pub.landmarks = r->landmarks;
        r->pub.presence = r->hand.presence;
        r->pub.handedness = r->hand.handedness;
        return 0;
    }
    if (c->decoder == SH_DECODER_CLASSIFY) {
        if ((rc = sh_rt_classify(rt, m, outs[0], xf, r, err)))
            return rc;
        return fill_detections(rt, r, err);
    }
    if (c->decoder == SH_DECODER_NONE)
        return 0;
    r->dets = sh_detections_create(rt->alloc);
    if (!r->dets)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for detections");
    if (c->decoder == SH_DECODER_YOLOV8 || c->decoder == SH_DECODER_YOLOV8_SEG)
        rc = decode_yolov8(m, outs, compact, xf, &dp, r->dets, err);
    else if (c->decoder == SH_DECODER_YOLOX)
        rc = sh_decode_yolox(&o0, xf, &dp, r->dets, err);
    else if (c->decoder == SH_DECODER_END2END && c->task == SH_TASK_SEGMENT) {
        sh_ftensor o1 = ftensor(m->graph, m->outputs[1], outs[1]);
        rc = sh_decode_end2end_seg(&o0, &o1, (int)c->n_classes, xf, &dp, r->dets, err);
    } else if (c->decoder == SH_DECODER_END2END)
        rc = sh_decode_end2end(&o0, (int)c->n_classes, xf, &dp, r->dets, err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': decoding: ", c->name);
    return fill_detections(rt, r, err);
}

static double ms_since(double t0_s)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ((double)ts.tv_sec + ts.tv_nsec * 1e-9 - t0_s) * 1e3;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void record_latency(shoal_runtime_t rt, sh_rt_model *m, double ms)
{
    pthread_mutex_lock(&rt->stats_lock);
    m->lat_ms[m->runs % SH_RT_LATENCY_RING] = ms;
    m->runs++;
    if (m->lat_count < SH_RT_LATENCY_RING)
        m->lat_count++;
    m->lat_last_ms = ms;
    pthread_mutex_unlock(&rt->stats_lock);
}

/* Runs one resident, referenced model on ctx. */
static int run_resident(shoal_runtime_t rt, sh_rt_context *ctx, sh_rt_model *m, const sh_image *img,
                        sh_rt_result *r, sh_err *err)
{
    const sh_backend_i *be = rt->backend.iface;
    double t0 = now_s();
    void **tp = m->tensor_ptrs[ctx->index];
    size_t in_bytes = m->plan->bytes[m->input];
    float *in = rt->backend_is_cpu ? (float *)tp[m->input] : ctx->input_host;
    sh_preprocess_params pp = preprocess_params(m);
    sh_transform xf;
    int rc = sh_preprocess(rt->alloc, img, &pp, in, in_bytes / sizeof(float), &xf, err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': preprocessing: ", m->cfg->name);
    const float *outs[SH_RT_MAX_OUTPUTS] = {0};
    size_t at = 0;
    bool compact = false;
    double t1 = now_s();
    pthread_mutex_lock(&rt->backend_lock);
    if (!rt->backend_is_cpu)
        rc = be->upload(rt->backend.ctx, tp[m->input], in, in_bytes, err);
    if (rc == 0 && (rc = be->run(rt->backend.ctx, m->prog, tp, m->ws_ptrs[ctx->index], m->binding[ctx->index], err)))
        sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    for (int i = 0; rc == 0 && i < m->n_outputs; i++) {
        int t = m->outputs[i];
        if (rt->backend_is_cpu) {
            outs[i] = tp[t];
            continue;
        }
        float *dst = (float *)((char *)ctx->output_host + at);
        rc = i == 0 && m->filtered ? sh_rt_filter_download(rt, ctx, m, -1, dst, err)
                                   : be->download(rt->backend.ctx, dst, tp[t], m->plan->bytes[t], err);
        outs[i] = dst;
        at += sh_align_up(m->plan->bytes[t], 64);
    }
    if (rc == 0 && m->filtered)
        rc = sh_rt_filter_settle(rt, ctx, m, ctx->output_host, &compact, err);
    pthread_mutex_unlock(&rt->backend_lock);
    if (rc)
        return rc;
    r->pub.infer_ms = ms_since(t1);
    rc = decode(rt, m, outs, compact, &xf, r, err);
    r->pub.latency_ms = ms_since(t0);
    return rc;
}

/* --- a mode's models at once ------------------------------------------------------------
 * Every model is preprocessed into its own range of the staging, then, under the backend
 * lock, each one's upload, run and download are issued on its lane without a host wait, and
 * each lane is waited for once: the device overlaps one model's kernels and copies with the
 * others'. The models' activations lie in disjoint ranges of the arena (lanes.h). Decoding
 * follows on the host once every lane is done. */

typedef struct lane_job {
    sh_rt_model *m;
    sh_rt_result *r;
    sh_transform xf;
    double prep_ms;
    bool picture;             /* the staging holds the 8-bit picture, converted on the device */
    float lut[3][256];
    const float *outs[SH_RT_MAX_OUTPUTS];
    bool compact;             /* outs[0] is the device filter's compact buffer */
} lane_job;

static void release_all(shoal_runtime_t rt, lane_job *jobs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sh_residency_release(rt->residency, jobs[i].m->id, sh_rt_now(rt));
}

/* References every model; on failure none is held. */
static int acquire_all(shoal_runtime_t rt, lane_job *jobs, size_t n, sh_err *err)
{
    for (size_t i = 0; i < n; i++) {
        int rc = sh_residency_acquire(rt->residency, jobs[i].m->id, sh_rt_now(rt), err);
        if (rc) {
            release_all(rt, jobs, i);
            return sh_err_prefix(err, rc, "model '%s': ", jobs[i].m->cfg->name);
        }
    }
    return 0;
}

/* Whether the model's input is the plain 3-plane fp32 picture the device can expand from
 * bytes (backend.h upload_image_async). tuning.upload_float uploads the floats (A/B). */
static bool takes_picture(shoal_runtime_t rt, const sh_rt_model *m)
{
    return rt->backend.iface->upload_image_async && !rt->tuning.upload_float &&
           m->plan->bytes[m->input] == (size_t)3 * m->in_w * m->in_h * sizeof(float);
}

static int preprocess_into(shoal_runtime_t rt, sh_rt_context *ctx, const sh_image *img, lane_job *j, sh_err *err)
{
    sh_rt_model *m = j->m;
    double t0 = now_s();
    void *in = (char *)ctx->input_host + m->in_off;
    size_t in_bytes = m->plan->bytes[m->input];
    sh_preprocess_params pp = preprocess_params(m);
    j->picture = takes_picture(rt, m);
    int rc = j->picture ? sh_preprocess_lut(&pp, j->lut, err) : 0;
    if (rc == 0)
        rc = j->picture ? sh_preprocess_u8(rt->alloc, img, &pp, in, in_bytes, &j->xf, err)
                        : sh_preprocess(rt->alloc, img, &pp, in, in_bytes / sizeof(float), &j->xf, err);
    j->prep_ms = ms_since(t0);
    return rc ? sh_err_prefix(err, rc, "model '%s': preprocessing: ", m->cfg->name) : 0;
}

static int issue(shoal_runtime_t rt, sh_rt_context *ctx, lane_job *j, sh_err *err)
{
    const sh_backend_i *be = rt->backend.iface;
    void *bc = rt->backend.ctx;
    sh_rt_model *m = j->m;
    void **tp = m->tensor_ptrs[ctx->index];
    const void *in = (const char *)ctx->input_host + m->in_off;
    int rc = j->picture ? be->upload_image_async(bc, m->lane, tp[m->input], in, m->in_w, m->in_h, j->lut, err)
                        : be->upload_async(bc, m->lane, tp[m->input], in, m->plan->bytes[m->input], err);
    if (rc == 0)
        rc = be->run_async(bc, m->lane, m->prog, tp, m->ws_ptrs[ctx->index], m->binding[ctx->index], err);
    size_t at = m->out_off;
    for (int i = 0; rc == 0 && i < m->n_outputs; i++) {
        int t = m->outputs[i];
        float *dst = (float *)((char *)ctx->output_host + at);
        rc = i == 0 && m->filtered ? sh_rt_filter_download(rt, ctx, m, m->lane, dst, err)
                                   : be->download_async(bc, m->lane, dst, tp[t], m->plan->bytes[t], err);
        j->outs[i] = dst;
        at += sh_align_up(m->plan->bytes[t], 64);
    }
    return rc ? sh_err_prefix(err, rc, "model '%s': ", m->cfg->name) : 0;
}

/* Waits for every lane the jobs used, all of them even after a failure (their bytes are
 * reused next); lane_ms[lane]: the lane's device time. The first failure is kept. */
static int wait_lanes(shoal_runtime_t rt, const lane_job *jobs, size_t n, double lane_ms[SH_MAX_LANES], sh_err *err)
{
    int rc = 0;
    bool waited[SH_MAX_LANES] = {false};
    for (size_t i = 0; i < n; i++) {
        int lane = jobs[i].m->lane;
        if (waited[lane])
            continue;
        waited[lane] = true;
        sh_err e2 = {0};
        int r2 = rt->backend.iface->lane_wait(rt->backend.ctx, lane, &lane_ms[lane], rc ? &e2 : err);
        if (r2 && !rc)
            rc = sh_err_prefix(err, r2, "model '%s': ", jobs[i].m->cfg->name);
    }
    return rc;
}

/* After the wait, still under the backend lock: each filtered model's compact buffer, or its
 * whole output 0 where the compact block overflowed. */
static int settle_filtered(shoal_runtime_t rt, sh_rt_context *ctx, lane_job *jobs, size_t n, sh_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        if (jobs[i].m->filtered)
            rc = sh_rt_filter_settle(rt, ctx, jobs[i].m, (char *)ctx->output_host + jobs[i].m->out_off,
                                     &jobs[i].compact, err);
    return rc;
}

/* Runs jobs[0..n) at once; every model must be referenced. *net_ms: the device section's
 * wall time. */
/* Device time of the jobs' lanes together (backend lanes_span), -1 when unknown. */
static double lanes_device_ms(shoal_runtime_t rt, const lane_job *jobs, size_t n)
{
    int lanes[SH_MAX_LANES], nl = 0;
    for (size_t i = 0; i < n; i++) {
        int l = jobs[i].m->lane, seen = 0;
        for (int k = 0; k < nl; k++)
            seen |= lanes[k] == l;
        if (!seen && nl < SH_MAX_LANES)
            lanes[nl++] = l;
    }
    double ms = -1;
    sh_err e = {0};
    if (rt->backend.iface->lanes_span && rt->backend.iface->lanes_span(rt->backend.ctx, lanes, nl, &ms, &e))
        ms = -1;
    return ms;
}

static int run_lanes(shoal_runtime_t rt, sh_rt_context *ctx, const sh_image *img, lane_job *jobs, size_t n,
                     double *net_ms, double *dev_ms, sh_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = preprocess_into(rt, ctx, img, &jobs[i], err);
    if (rc)
        return rc;
    double lane_ms[SH_MAX_LANES];
    pthread_mutex_lock(&rt->backend_lock);
    double t1 = now_s();
    size_t issued = 0;
    for (; issued < n && rc == 0; issued++)
        rc = issue(rt, ctx, &jobs[issued], err);
    sh_err werr = {0};
    int wrc = wait_lanes(rt, jobs, issued, lane_ms, rc ? &werr : err);
    if (rc == 0 && wrc == 0)
        wrc = settle_filtered(rt, ctx, jobs, n, err);
    *net_ms = ms_since(t1);
    *dev_ms = rc == 0 && wrc == 0 ? lanes_device_ms(rt, jobs, issued) : -1;
    pthread_mutex_unlock(&rt->backend_lock);
    if (rc || (rc = wrc))
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        lane_job *j = &jobs[i];
        double dev = lane_ms[j->m->lane];
        j->r->pub.infer_ms = dev >= 0 ? dev : *net_ms;
        double t2 = now_s();
        rc = decode(rt, j->m, j->outs, j->compact, &j->xf, j->r, err);
        j->r->pub.latency_ms = j->prep_ms + *net_ms + ms_since(t2);
    }
    return rc;
}

/* The mode's longest model decides its time, and each issue (upload, graph launch, download)
 * takes the host tens of microseconds: the heaviest model goes first, the others fill in
 * beside it (navigation 2.81-2.82 -> 2.63-2.65 ms on the H100 with obstacle first). Stable:
 * equal work keeps the mode's order; results keep it whatever the issue order. */
static void issue_heaviest_first(lane_job *jobs, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && jobs[j].m->flops > jobs[j - 1].m->flops; j--) {
            lane_job t = jobs[j];
            jobs[j] = jobs[j - 1];
            jobs[j - 1] = t;
        }
}

/* The models ids[0..n) at once into res->items; models that cannot be resident together
 * under the budget run one at a time instead (each still on its lane). */
static int run_concurrent(shoal_runtime_t rt, sh_rt_context *ctx, const size_t *ids, size_t n, const shoal_image *frame,
                          shoal_results_t res, sh_err *err)
{
    lane_job *jobs = sh_calloc(rt->alloc, n ? n : 1, sizeof *jobs);
    if (!jobs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for a concurrent run");
    for (size_t i = 0; i < n; i++) {
        jobs[i].m = &rt->models[ids[i]];
        jobs[i].r = &res->items[i];
        jobs[i].r->cfg = jobs[i].m->cfg;
        jobs[i].r->pub.model = jobs[i].m->cfg->name;
        jobs[i].r->pub.task = sh_task_name(jobs[i].m->cfg->task);
    }
    res->n = (int)n;
    issue_heaviest_first(jobs, n);
    sh_image img = {.width = frame->width, .height = frame->height, .channels = 3, .data = frame->rgb};
    size_t group = n;
    int rc = acquire_all(rt, jobs, n, err);
    bool one_by_one = rc == SHOAL_ERR_BUDGET && n > 1;   /* then each acquires its own turn */
    if (one_by_one) {
        sh_err_clear(err);
        group = 1;
        rc = 0;
    }
    res->infer_ms = 0;
    res->device_ms = 0;
    for (size_t at = 0; at < n && rc == 0; at += group) {
        if (one_by_one && (rc = acquire_all(rt, &jobs[at], 1, err)))
            break;
        double net = 0, dev = -1;
        rc = run_lanes(rt, ctx, &img, &jobs[at], group, &net, &dev, err);
        release_all(rt, &jobs[at], group);
        res->infer_ms += net;
        res->device_ms = res->device_ms < 0 || dev < 0 ? -1 : res->device_ms + dev;
        for (size_t i = at; rc == 0 && i < at + group; i++)
            record_latency(rt, jobs[i].m, jobs[i].r->pub.latency_ms);
    }
    res->concurrent = group > 1;
    sh_free(rt->alloc, jobs);
    return rc;
}

int sh_rt_run_model_ctx(shoal_runtime_t rt, sh_rt_context *ctx, sh_rt_model *m, const shoal_image *frame,
                        shoal_video_t video, sh_rt_result *r, sh_err *err)
{
    if (sh_rt_hand_is_task(m))
        return sh_rt_hand_run(rt, ctx, m, frame, video, r, err);
    r->cfg = m->cfg;
    r->pub.model = m->cfg->name;
    r->pub.task = sh_task_name(m->cfg->task);
    sh_image img = {.width = frame->width, .height = frame->height, .channels = 3, .data = frame->rgb};
    int rc = sh_residency_acquire(rt->residency, m->id, sh_rt_now(rt), err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    rc = run_resident(rt, ctx, m, &img, r, err);
    sh_residency_release(rt->residency, m->id, sh_rt_now(rt));
    if (rc == 0)
        record_latency(rt, m, r->pub.latency_ms);
    return rc;
}

void sh_rt_result_free(sh_allocator *a, sh_rt_result *r)
{
    if (r->rles)
        for (int i = 0; i < r->pub.n_detections; i++)
            sh_free(a, r->rles[i]);
    sh_free(a, r->rles);
    sh_free(a, r->items);
    sh_detections_destroy(r->dets);
}

static int check_frame(const shoal_image *frame, sh_err *err)
{
    if (!frame || !frame->rgb)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "no frame given");
    if (frame->width <= 0 || frame->height <= 0 || frame->width > SH_IMAGE_MAX_SIDE ||
        frame->height > SH_IMAGE_MAX_SIDE || (uint64_t)frame->width * (uint64_t)frame->height > SH_IMAGE_MAX_PIXELS)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "frame of %dx%d pixels: sides must be 1..%d and at most %u pixels",
                       frame->width, frame->height, SH_IMAGE_MAX_SIDE, SH_IMAGE_MAX_PIXELS);
    return 0;
}

/* Reload bytes of the listed models so far: run_list takes the difference around a mode's
 * run to charge the switch with what it loaded again. */
static uint64_t reload_bytes(shoal_runtime_t rt, const size_t *ids, size_t n)
{
    uint64_t b = 0;
    pthread_mutex_lock(&rt->stats_lock);
    for (size_t i = 0; i < n; i++)
        b += rt->models[ids[i]].reload_bytes_total;
    pthread_mutex_unlock(&rt->stats_lock);
    return b;
}

static void record_mode(shoal_runtime_t rt, int mode, uint64_t reloaded)
{
    pthread_mutex_lock(&rt->stats_lock);
    sh_rt_mode_stats *ms = &rt->mode_stats[mode];
    ms->runs++;
    if (rt->last_mode >= 0 && rt->last_mode != mode) {
        ms->switches++;
        if (reloaded) {
            ms->reloading_switches++;
            ms->switch_reload_bytes += reloaded;
        }
    }
    rt->last_mode = mode;
    pthread_mutex_unlock(&rt->stats_lock);
}

/* mode: index of the mode being run, or -1 for a single model. */
static int run_list(shoal_runtime_t rt, const char *label, int mode, const size_t *ids, size_t n,
                    const shoal_image *frame, shoal_video_t video, shoal_results_t *out)
{
    sh_err err = {0};
    *out = NULL;
    if (check_frame(frame, &err))
        return sh_rt_fail(rt, &err);
    double t0 = now_s();
    shoal_results_t res = sh_calloc(rt->alloc, 1, sizeof *res);
    if (res)
        res->items = sh_calloc(rt->alloc, n ? n : 1, sizeof *res->items);
    if (!res || !res->items) {
        sh_free(rt->alloc, res);
        return sh_rt_fail(rt, &(sh_err){SHOAL_ERR_NO_MEMORY, "out of memory for results"});
    }
    res->alloc = rt->alloc;
    res->device_ms = -1;
    snprintf(res->mode, sizeof res->mode, "%s", label);
    uint64_t reload0 = mode >= 0 ? reload_bytes(rt, ids, n) : 0;
    sh_rt_context *ctx = take_context(rt);
    int rc = 0;
    if (rt->concurrent && sh_rt_hand_count(rt, ids, n)) {
        rc = sh_rt_hand_run_mixed(rt, ctx, ids, n, frame, video, res, run_concurrent, &err);
    } else if (rt->concurrent) {
        rc = run_concurrent(rt, ctx, ids, n, frame, res, &err);
    } else {
        for (size_t i = 0; i < n && rc == 0; i++) {
            rc = sh_rt_run_model_ctx(rt, ctx, &rt->models[ids[i]], frame, video, &res->items[i], &err);
            res->n = (int)i + 1;
            res->infer_ms += res->items[i].pub.infer_ms;
        }
    }
    give_context(rt, ctx);
    if (mode >= 0 && rc == 0)
        record_mode(rt, mode, reload_bytes(rt, ids, n) - reload0);
    if (rc) {
        shoal_results_destroy(res);
        return sh_rt_fail(rt, &err);
    }
    res->total_ms = ms_since(t0);
    *out = res;
    return SHOAL_OK;
}

/* The public run calls' NULL checks: a NULL rt or out has nowhere else to leave a message. */
static int check_run_args(shoal_runtime_t rt, const char *what, const char *name, shoal_results_t *out,
                          const char *fn)
{
    if (out)
        *out = NULL;
    if (!rt || !out)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "%s: %s is NULL", fn, !rt ? "rt" : "out");
    if (!name) {
        sh_err err;
        sh_errf(&err, SHOAL_ERR_INVALID_ARG, "no %s name given (NULL)", what);
        return sh_rt_fail(rt, &err);
    }
    return 0;
}

static int run_mode(shoal_runtime_t rt, const char *mode, const shoal_image *frame, shoal_video_t video,
                    shoal_results_t *out, const char *fn)
{
    int rc = check_run_args(rt, "mode", mode, out, fn);
    if (rc)
        return rc;
    int k = sh_config_find_mode(rt->cfg, mode);
    if (k < 0) {
        sh_err err;
        char names[256] = "";
        for (size_t i = 0; i < rt->cfg->n_modes; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", rt->cfg->modes[i].name);
        sh_errf(&err, SHOAL_ERR_NOT_FOUND, "unknown mode '%s' (the config has: %s)", mode, names);
        *out = NULL;
        return sh_rt_fail(rt, &err);
    }
    const sh_mode_config *mc = &rt->cfg->modes[k];
    return run_list(rt, mc->name, k, mc->models, mc->n_models, frame, video, out);
}

int shoal_runtime_run_mode(shoal_runtime_t rt, const char *mode, const shoal_image *frame, shoal_results_t *out)
{
    return run_mode(rt, mode, frame, NULL, out, "shoal_runtime_run_mode");
}

int shoal_runtime_run_mode_video(shoal_runtime_t rt, const char *mode, const shoal_image *frame, shoal_video_t video,
                                 shoal_results_t *out)
{
    return run_mode(rt, mode, frame, video, out, "shoal_runtime_run_mode_video");
}

int shoal_runtime_run_model(shoal_runtime_t rt, const char *model, const shoal_image *frame, shoal_results_t *out)
{
    int rc = check_run_args(rt, "model", model, out, "shoal_runtime_run_model");
    if (rc)
        return rc;
    int i = sh_config_find_model(rt->cfg, model);
    if (i < 0) {
        sh_err err;
        sh_errf(&err, SHOAL_ERR_NOT_FOUND, "unknown model '%s'", model);
        *out = NULL;
        return sh_rt_fail(rt, &err);
    }
    size_t id = (size_t)i;
    return run_list(rt, model, -1, &id, 1, frame, NULL, out);
}
