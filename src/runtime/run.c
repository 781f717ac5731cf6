/* Running models: a context is taken for the whole call, each model of the mode is admitted
 * (holding a reference so it cannot be evicted mid-run), fed the frame, run and read back: in
 * turn, or all at once on the backend's lanes when the runtime runs modes concurrently. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/hand_task.h"
#include "runtime/model_meta.h"
#include "runtime/runtime-impl.h"
#include "vision/frame.h"
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

/* --- a mode's models as groups --------------------------------------------------------
 * A group is issued under the backend lock: each model's frame and frame size uploaded, its
 * graph run and its results downloaded on its lane, without a host wait; then each lane is
 * waited for once, so the device overlaps one model's kernels and copies with the others'.
 * Packed masks follow in a second round, read back only as far as the detections go. The
 * results are turned into shoal results on the host (results.c) once every lane is done.
 * Concurrent runtimes issue a mode as one group, its models in disjoint ranges of the arena
 * and staging (lanes.h); others issue it in turn as groups of one. A backend without lanes
 * (backend.c) runs each call synchronously, which makes the waits no-ops. */

typedef struct lane_job {
    sh_rt_model *m;
    sh_rt_result *r;
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

static char *results_of(sh_rt_context *ctx, const sh_rt_model *m)
{
    return (char *)ctx->output_host + m->out_off;
}

static int issue(shoal_runtime_t rt, sh_rt_context *ctx, const shoal_image *frame, const lane_job *j, sh_err *err)
{
    const sh_backend *b = &rt->backend;
    sh_rt_model *m = j->m;
    void **tp = m->tensor_ptrs[ctx->index];
    int32_t *size = (int32_t *)((char *)ctx->input_host + m->in_off);
    size[0] = frame->width;
    size[1] = frame->height;
    size_t frame_bytes = (size_t)frame->width * (size_t)frame->height * 3;
    int rc = sh_backend_upload(b, m->lane, tp[m->frame_in], frame->rgb, frame_bytes, err);
    if (rc == 0)
        rc = sh_backend_upload(b, m->lane, tp[m->size_in], size, 2 * sizeof(int32_t), err);
    if (rc == 0)
        rc = sh_backend_run(b, m->lane, m->prog, tp, m->ws_ptrs[ctx->index], m->binding[ctx->index], err);
    char *out = results_of(ctx, m);
    for (int i = 0; rc == 0 && i < m->n_results; i++) {
        int t = m->results[i];
        if (i != m->mask_bits)
            rc = sh_backend_download(b, m->lane, out + m->result_off[i], tp[t], m->plan->bytes[t], err);
    }
    return rc ? sh_err_prefix(err, rc, "model '%s': ", m->cfg->name) : 0;
}

/* The pool's bytes the masks of the detections found use (the count and the mask boxes have
 * landed), issued on the lane. */
static int issue_masks(shoal_runtime_t rt, sh_rt_context *ctx, const lane_job *j, sh_err *err)
{
    sh_rt_model *m = j->m;
    if (m->mask_bits < 0)
        return 0;
    size_t found = 0;
    int rc = sh_rt_result_count(m, results_of(ctx, m), &found, err);
    size_t used = rc ? 0 : sh_frame_mask_pool_used((const int32_t *)(results_of(ctx, m) + m->result_off[5]), found);
    if (used > m->mask_pool)   /* sh_frame_results refuses such boxes; nothing more to read */
        used = 0;
    if (rc == 0 && used > 0)
        rc = sh_backend_download(&rt->backend, m->lane, results_of(ctx, m) + m->result_off[m->mask_bits],
                                 m->tensor_ptrs[ctx->index][m->results[m->mask_bits]], used, err);
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
        int r2 = sh_backend_wait(&rt->backend, lane, &lane_ms[lane], rc ? &e2 : err);
        if (r2 && !rc)
            rc = sh_err_prefix(err, r2, "model '%s': ", jobs[i].m->cfg->name);
    }
    return rc;
}

static void add_lane(int *lanes, int *nl, int l)
{
    int seen = 0;
    for (int k = 0; k < *nl; k++)
        seen |= lanes[k] == l;
    if (!seen && *nl < SH_MAX_LANES)
        lanes[(*nl)++] = l;
}

/* Device time of the jobs' lanes and of what ran beside them together, -1 when unknown. */
static double lanes_device_ms(shoal_runtime_t rt, const lane_job *jobs, size_t n, const sh_rt_beside *beside)
{
    int lanes[SH_MAX_LANES], nl = 0;
    for (size_t i = 0; i < n; i++)
        add_lane(lanes, &nl, jobs[i].m->lane);
    for (int i = 0; beside && beside->ran && i < beside->n_lanes; i++)
        add_lane(lanes, &nl, beside->lanes[i]);
    double ms;
    sh_backend_span(&rt->backend, lanes, nl, &ms);
    return ms;
}

static int check_frame_fits(shoal_runtime_t rt, const shoal_image *frame, sh_err *err)
{
    if ((int64_t)frame->width * frame->height > rt->max_frame_pixels)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                       "frame of %dx%d pixels is larger than inference.max_frame_pixels (%d, the config's)",
                       frame->width, frame->height, rt->max_frame_pixels);
    return 0;
}

/* Detection k of the group's masks: the job it belongs to and its index there. */
static size_t mask_at(const size_t *first, size_t n, size_t k, size_t *i)
{
    size_t j = 0;
    while (j + 1 < n && first[j + 1] <= k)
        j++;
    *i = k - first[j];
    return j;
}

/* The masks of the group's detections, all at once: turning a mask's packed bits into runs
 * and its RLE string costs the host 0.1-0.2 ms a mask, which one after the other added up
 * behind the device section (navigation's two seg models: 0.8 ms of a 3.4 ms frame). */
static int read_masks(shoal_runtime_t rt, sh_rt_context *ctx, lane_job *jobs, size_t n, sh_err *err)
{
    size_t *first = sh_alloc(rt->alloc, (n ? n : 1) * sizeof *first), total = 0;
    if (!first)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for a run");
    for (size_t j = 0; j < n; j++) {
        first[j] = total;
        total += sh_rt_result_masks(jobs[j].m, jobs[j].r);
    }
    int rc = 0;
    int threads = total < 8 ? (int)total : 8;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1) if (threads > 1)
    for (size_t k = 0; k < total; k++) {
        size_t i, j = mask_at(first, n, k, &i);
        sh_err e = {0};
        int mrc = sh_rt_result_mask(rt, jobs[j].m, results_of(ctx, jobs[j].m), jobs[j].r, i, &e);
        if (mrc) {
#pragma omp critical(shoal_read_masks)
            if (!rc) {
                rc = mrc;
                if (err)
                    *err = e;
            }
        }
    }
    sh_free(rt->alloc, first);
    return rc;
}

static int read_results(shoal_runtime_t rt, sh_rt_context *ctx, lane_job *jobs, size_t n, double net_ms, sh_err *err)
{
    double t = now_s();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = sh_rt_result_read(rt, jobs[i].m, results_of(ctx, jobs[i].m), jobs[i].r, err);
        jobs[i].r->pub.latency_ms = net_ms + ms_since(t);
    }
    if (rc || (rc = read_masks(rt, ctx, jobs, n, err)))
        return rc;
    for (size_t i = 0; i < n; i++)
        if (sh_rt_result_masks(jobs[i].m, jobs[i].r))
            jobs[i].r->pub.latency_ms = net_ms + ms_since(t);
    return 0;
}

/* Runs jobs[0..n) as one group; every model must be referenced. *net_ms: the device
 * section's wall time; *dev_ms: the lanes' device time together (-1 unknown). */
static int run_group(shoal_runtime_t rt, sh_rt_context *ctx, const shoal_image *frame, lane_job *jobs, size_t n,
                     sh_rt_beside *beside, double *net_ms, double *dev_ms, sh_err *err)
{
    double lane_ms[SH_MAX_LANES];
    pthread_mutex_lock(&rt->backend_lock);
    double t1 = now_s();
    int rc = 0;
    size_t issued = 0;
    for (; issued < n && rc == 0; issued++)
        rc = issue(rt, ctx, frame, &jobs[issued], err);
    if (rc == 0 && beside)
        rc = beside->run(beside, err);
    sh_err werr = {0};
    int wrc = wait_lanes(rt, jobs, issued, lane_ms, rc ? &werr : err);
    double dev = rc == 0 && wrc == 0 ? lanes_device_ms(rt, jobs, issued, beside) : -1;
    bool masks = false;
    for (size_t i = 0; i < n && rc == 0 && wrc == 0; i++) {
        rc = issue_masks(rt, ctx, &jobs[i], err);
        masks |= jobs[i].m->mask_bits >= 0;
    }
    if (masks && wrc == 0) {
        /* the masks' round starts the lanes' clocks again: its time adds to the first's */
        double mask_ms[SH_MAX_LANES], masks_dev = 0;
        int mask_lanes[SH_MAX_LANES], n_mask_lanes = 0;
        wrc = wait_lanes(rt, jobs, issued, mask_ms, rc ? &werr : err);
        for (size_t i = 0; i < issued; i++) {
            int l = jobs[i].m->lane;
            if (mask_ms[l] >= 0) {
                add_lane(mask_lanes, &n_mask_lanes, l);
                lane_ms[l] = lane_ms[l] >= 0 ? lane_ms[l] + mask_ms[l] : -1;
                mask_ms[l] = -1;   /* a lane shared by several jobs counts once */
            }
        }
        if (n_mask_lanes)
            sh_backend_span(&rt->backend, mask_lanes, n_mask_lanes, &masks_dev);
        dev = dev >= 0 && masks_dev >= 0 ? dev + masks_dev : -1;
    }
    *net_ms = ms_since(t1);
    *dev_ms = rc == 0 && wrc == 0 ? dev : -1;
    pthread_mutex_unlock(&rt->backend_lock);
    if (rc || (rc = wrc))
        return rc;
    for (size_t i = 0; i < n; i++) {
        double lane = lane_ms[jobs[i].m->lane];
        jobs[i].r->pub.infer_ms = lane >= 0 ? lane : *net_ms;
    }
    return read_results(rt, ctx, jobs, n, *net_ms, err);
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

/* The models ids[0..n) into res->items: at once where the runtime runs modes concurrently
 * (models that cannot be resident together under the budget then run one at a time, each
 * still on its lane), else in turn. */
static int run_models(shoal_runtime_t rt, sh_rt_context *ctx, const size_t *ids, size_t n, const shoal_image *frame,
                      shoal_results_t res, sh_rt_beside *beside, sh_err *err)
{
    int rc = check_frame_fits(rt, frame, err);
    if (rc)
        return rc;
    lane_job *jobs = sh_calloc(rt->alloc, n ? n : 1, sizeof *jobs);
    if (!jobs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for a run");
    for (size_t i = 0; i < n; i++) {
        jobs[i].m = &rt->models[ids[i]];
        jobs[i].r = &res->items[i];
        jobs[i].r->cfg = jobs[i].m->cfg;
        jobs[i].r->pub.model = jobs[i].m->cfg->name;
        jobs[i].r->pub.task = sh_task_name(jobs[i].m->cfg->task);
    }
    size_t group = 1;
    bool each_acquires = true;
    if (rt->concurrent) {
        issue_heaviest_first(jobs, n);
        rc = acquire_all(rt, jobs, n, err);
        each_acquires = rc == SHOAL_ERR_BUDGET && n > 1;   /* then each acquires its own turn */
        if (each_acquires) {
            sh_err_clear(err);
            rc = 0;
        } else {
            group = n;
        }
    }
    res->n = rt->concurrent ? (int)n : 0;
    res->infer_ms = 0;
    res->device_ms = rt->concurrent ? 0 : -1;
    for (size_t at = 0; at < n && rc == 0; at += group) {
        if (each_acquires && (rc = acquire_all(rt, &jobs[at], 1, err)))
            break;
        if (!rt->concurrent)
            res->n = (int)(at + 1);
        double net = 0, dev = -1;
        /* work beside the networks only where they run as one group on their lanes */
        sh_rt_beside *b = rt->concurrent && !each_acquires ? beside : NULL;
        rc = run_group(rt, ctx, frame, &jobs[at], group, b, &net, &dev, err);
        release_all(rt, &jobs[at], group);
        res->infer_ms += rt->concurrent ? net : jobs[at].r->pub.infer_ms;
        if (rt->concurrent)
            res->device_ms = res->device_ms < 0 || dev < 0 ? -1 : res->device_ms + dev;
        for (size_t i = at; rc == 0 && i < at + group; i++)
            record_latency(rt, jobs[i].m, jobs[i].r->pub.latency_ms);
    }
    res->concurrent = group > 1 || (beside && beside->ran);
    sh_free(rt->alloc, jobs);
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
    int rc = sh_rt_hand_count(rt, ids, n) ? sh_rt_hand_run_mixed(rt, ctx, ids, n, frame, video, res, run_models, &err)
                                          : run_models(rt, ctx, ids, n, frame, res, NULL, &err);
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
