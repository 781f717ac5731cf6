/* Task hand_landmarks inside the runtime (see hand_task.h). */
#include "runtime/hand_task.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "graph/flops.h"
#include "graph/frame_ops.h"
#include "graph/passes.h"
#include "import/onnx_import.h"
#include "import/tflite_import.h"
#include "runtime/hand_sessions.h"
#include "vision/draw.h"
#include "vision/hand_landmarker.h"

_Static_assert(SHOAL_HAND_LANDMARKS == SH_HAND_LANDMARKS, "shoal_hand and sh_hand hold the same landmarks");

/* The caller's video: one tracker per model id of the runtime it last ran on. The runtime is
 * told apart by its address and its creation time, so a new runtime at a freed one's address
 * does not inherit the old one's hands. */
struct shoal_video {
    const struct shoal_runtime *rt;
    double rt_t0;
    int n;
    sh_hand_tracker *trackers;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

bool sh_rt_hand_is_task(const sh_rt_model *m)
{
    return m->cfg->task == SH_TASK_HAND_LANDMARKS;
}

size_t sh_rt_hand_count(const struct shoal_runtime *rt, const size_t *ids, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += sh_rt_hand_is_task(&rt->models[ids[i]]);
    return k;
}

/* --- import ------------------------------------------------------------------------------ */

int sh_rt_hand_load_graph(struct shoal_runtime *rt, const sh_rt_model *m, sh_graph **out, sh_err *err)
{
    const sh_model_config *c = m->cfg;
    const char *path = c->path;
    const char *owner = c->is_palm_stage ? rt->cfg->models[c->stage_owner].name : c->name;
    *out = NULL;
    /* a .task member path names the bundle before '#' */
    char file[4096];
    snprintf(file, sizeof file, "%s", path);
    char *hash = strchr(file, '#');
    if (hash)
        *hash = '\0';
    struct stat st;
    if (stat(file, &st) != 0)
        return sh_errf(err, SHOAL_ERR_NOT_FOUND, "model '%s': %s (the %s of hand model '%s') is missing: `make models` "
                       "fetches MediaPipe's hand models (scripts/fetch-hand-models.sh)", c->name, path,
                       c->is_palm_stage ? "palm detector" : "landmark model", owner);
    sh_graph *g = NULL;
    int rc = sh_tflite_is_path(path) ? sh_tflite_load_file(rt->alloc, path, &g, err)
                                     : sh_onnx_load_file(rt->alloc, path, &g, err);
    if (rc == 0)
        rc = sh_graph_widen_fp16(g, NULL, err);
    sh_optimize_params op = sh_optimize_default_params();
    if (rc == 0)
        rc = sh_graph_optimize(g, &op, err);
    if (rc) {
        sh_graph_destroy(g);
        return sh_err_prefix(err, rc, "model '%s': ", c->name);
    }
    *out = g;
    return 0;
}

/* The landmarker feeds float32 [1,S,S,3] crops and reads the outputs by count: the palm
 * detector's boxes (18 per anchor) and scores, the landmark model's 63 landmarks, presence,
 * handedness (and 63 world landmarks). A file that is neither fails here, at create. */
static int check_stage(const sh_rt_model *m, sh_err *err)
{
    const sh_graph *g = m->graph;
    const sh_model_config *c = m->cfg;
    char b[64];
    if (g->n_inputs != 1)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': %d graph inputs; the hand landmarker feeds one", c->name,
                       g->n_inputs);
    const sh_tensor *in = &g->tensors[g->inputs[0]];
    if (in->dtype != SH_DT_FLOAT32 || in->shape.ndim != 4 || in->shape.d[0] != 1 || in->shape.d[3] != 3 ||
        in->shape.d[1] != in->shape.d[2] || in->shape.d[1] < 1 || in->shape.d[1] > 4096)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': input '%s' is %s %s; the hand landmarker feeds float32 "
                       "[1,S,S,3]", c->name, in->name, sh_dtype_name(in->dtype), sh_shape_str(&in->shape, b, sizeof b));
    int64_t n[4] = {0, 0, 0, 0};
    for (int i = 0; i < g->n_outputs && i < 4; i++)
        n[i] = sh_shape_numel(&g->tensors[g->outputs[i]].shape);
    bool ok = c->is_palm_stage ? g->n_outputs == 2 && n[0] > 0 && n[0] % 18 == 0 && n[1] == n[0] / 18
                               : g->n_outputs >= 3 && g->n_outputs <= 4 && n[0] == 3 * SH_HAND_LANDMARKS &&
                                     n[1] == 1 && n[2] == 1 && (g->n_outputs == 3 || n[3] == 3 * SH_HAND_LANDMARKS);
    if (!ok)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': %d outputs of %lld, %lld, %lld, %lld values; %s", c->name,
                       g->n_outputs, (long long)n[0], (long long)n[1], (long long)n[2], (long long)n[3],
                       c->is_palm_stage ? "a palm detector gives boxes [anchors*18] and scores [anchors]"
                                        : "a hand landmark model gives landmarks [63], presence [1], handedness [1] "
                                          "and world landmarks [63]");
    return 0;
}

/* The frame input made a graph output too, after the model's outputs: the plan keeps a graph
 * output's bytes to the end of the program, so the frame uploaded for a frame's first crop
 * serves its later ones (the second hand; on a concurrent runtime the landmark stage's crops
 * from the palm detector's frame, see shared_frame) and is not uploaded again. */
static int keep_frame(sh_graph *g, sh_err *err)
{
    int n = g->n_outputs, out[SH_RT_MAX_RESULTS];
    if (n + 1 > SH_RT_MAX_RESULTS)
        return sh_errf(err, SHOAL_ERR_SHAPE, "%d outputs", n);
    memcpy(out, g->outputs, (size_t)n * sizeof *out);
    out[n] = g->inputs[0];
    if (sh_graph_set_outputs(g, out, n + 1))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': outputs", g->name);
    g->tensors[out[n]].is_output = true;
    return sh_graph_finalize(g, err);
}

int sh_rt_hand_import(struct shoal_runtime *rt, sh_rt_model *m, sh_err *err)
{
    double t = now_s();
    int rc = sh_rt_hand_load_graph(rt, m, &m->graph, err);
    if (rc || (rc = check_stage(m, err)))
        return rc;
    sh_graph *g = m->graph;
    /* the stage's crop made on the backend from the frame and a rect; its raw outputs back */
    m->in_h = m->in_w = (int)g->tensors[g->inputs[0]].shape.d[1];
    sh_optimize_params op = sh_optimize_default_params();
    if ((rc = sh_graph_add_frame_crop(g, rt->max_frame_pixels, m->cfg->is_palm_stage, err)) ||
        (rc = sh_graph_optimize(g, &op, err)))
        return sh_err_prefix(err, rc, "model '%s': frame crop: ", m->cfg->name);
    if (g->n_inputs != 3)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "model '%s': %d inputs after the frame crop", m->cfg->name,
                       g->n_inputs);
    m->frame_in = g->inputs[0];
    m->size_in = g->inputs[1];
    m->rect_in = g->inputs[2];
    if ((rc = keep_frame(g, err)))
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    m->n_outputs = m->n_results = g->n_outputs - 1;   /* the kept frame is not read back */
    memcpy(m->outputs, g->outputs, (size_t)m->n_outputs * sizeof *g->outputs);
    memcpy(m->results, g->outputs, (size_t)m->n_results * sizeof *g->outputs);
    m->mask_bits = -1;
    sh_flops f = sh_graph_flops(m->graph);
    m->flops = sh_flops_total(&f);
    m->parse_ms = (now_s() - t) * 1e3;
    return 0;
}

/* --- running ------------------------------------------------------------------------------ */

typedef struct stage_run {
    shoal_runtime_t rt;
    sh_rt_context *ctx;
    sh_rt_model *stage[2];        /* by sh_hand_model */
    double net_ms;                /* upload + run + download of both, host wall time */
    double stage_ms[2];           /* of each stage's last run, for its latency record */
    double device_ms;             /* the lanes' busy time of every stage run; -1 when unknown */
    int runs[2];
    bool frame_sent[2];           /* this frame's bytes are on the stage's frame input already
                                     (index 0 for both stages when they share it) */
    bool locked;                  /* the caller holds the backend lock (run beside a group) */
} stage_run;

/* On a concurrent runtime the palm detector's arena overlaps no model that runs beside the
 * landmark stage (join_palm_stages), so the landmark stage reads its frame from the palm
 * detector's frame input, which keeps it (keep_frame): a detected frame is uploaded once for
 * both stages. Models run in turn share one arena, so there each stage reads its own. The
 * landmark stage's binding changes with the pointer (a CUDA graph is captured again once). */
static bool shared_frame(stage_run *s)
{
    shoal_runtime_t rt = s->rt;
    sh_rt_model *palm = s->stage[SH_HAND_MODEL_PALM], *lm = s->stage[SH_HAND_MODEL_LANDMARK];
    if (!rt->concurrent || palm == lm)
        return false;
    int ci = s->ctx->index;
    void **tp = lm->tensor_ptrs[ci], *frame = palm->tensor_ptrs[ci][palm->frame_in];
    if (tp[lm->frame_in] != frame) {
        tp[lm->frame_in] = frame;
        lm->binding[ci] = __atomic_add_fetch(&rt->next_binding, 1, __ATOMIC_RELAXED);
    }
    return true;
}

/* The sh_hand_models callback: the frame (once per frame and stage, or once for both:
 * shared_frame), its size and the rect to the stage's inputs, its program (which makes the
 * crop), its outputs back to the host (on a concurrent runtime on the stage's lane, waited for
 * here). */
static int run_stage(void *user, sh_hand_model which, const sh_image *frame, const sh_hand_rect *rect,
                     const float **outs, size_t *counts, int n_outputs, sh_err *err)
{
    stage_run *s = user;
    if ((int)which < 0 || which > SH_HAND_MODEL_LANDMARK)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand landmarker: model %d", (int)which);
    shoal_runtime_t rt = s->rt;
    sh_rt_model *m = s->stage[which];
    const sh_backend *b = &rt->backend;
    int ci = s->ctx->index;
    void **tp = m->tensor_ptrs[ci];
    size_t frame_bytes = (size_t)frame->width * (size_t)frame->height * 3;
    if (frame_bytes > m->plan->bytes[m->frame_in])
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "model '%s': a %dx%d frame, larger than the %zu bytes of its input",
                       m->cfg->name, frame->width, frame->height, m->plan->bytes[m->frame_in]);
    char *in_host = (char *)s->ctx->input_host + m->in_off;
    int32_t *size = (int32_t *)in_host;
    float *words = (float *)(in_host + sh_align_up(m->plan->bytes[m->size_in], 64));
    size[0] = frame->width;
    size[1] = frame->height;
    sh_hand_crop_words(rect, words);
    char *staged = (char *)s->ctx->output_host + m->out_off;
    double t0 = now_s();
    if (!s->locked)
        pthread_mutex_lock(&rt->backend_lock);
    int rc = 0, sent = shared_frame(s) ? 0 : (int)which;
    if (!s->frame_sent[sent])
        rc = sh_backend_upload(b, m->lane, tp[m->frame_in], frame->data, frame_bytes, err);
    if (rc == 0)   /* the size and the rect are a few bytes: their arena bytes are reused after the crop */
        rc = sh_backend_upload(b, m->lane, tp[m->size_in], size, 2 * sizeof(int32_t), err);
    if (rc == 0)
        rc = sh_backend_upload(b, m->lane, tp[m->rect_in], words, SH_HAND_CROP_WORDS * sizeof(float), err);
    if (rc == 0)
        rc = sh_backend_run(b, m->lane, m->prog, tp, m->ws_ptrs[ci], m->binding[ci], err);
    for (int i = 0; i < n_outputs; i++) {
        outs[i] = NULL;
        counts[i] = 0;
        if (rc || i >= m->n_outputs)
            continue;
        size_t bytes = m->plan->bytes[m->outputs[i]];
        counts[i] = bytes / sizeof(float);
        outs[i] = (const float *)(staged + m->result_off[i]);
        rc = sh_backend_download(b, m->lane, staged + m->result_off[i], tp[m->outputs[i]], bytes, err);
    }
    /* waited for even after a failure: the lane's bytes are reused next */
    double busy = -1;
    sh_err e2 = {0};
    int w = sh_backend_wait(b, m->lane, &busy, rc ? &e2 : err);
    if (rc == 0)
        rc = w;
    s->device_ms = busy >= 0 && s->device_ms >= 0 ? s->device_ms + busy : -1;
    if (!s->locked)
        pthread_mutex_unlock(&rt->backend_lock);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", m->cfg->name);
    s->frame_sent[sent] = true;
    double ms = (now_s() - t0) * 1e3;
    s->net_ms += ms;
    s->stage_ms[which] = ms;
    s->runs[which]++;
    return 0;
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

static int video_tracker(shoal_video_t v, shoal_runtime_t rt, int id, sh_hand_tracker **out, sh_err *err)
{
    *out = NULL;
    if (!v)
        return 0;
    if (v->rt != rt || v->rt_t0 != rt->t0 || v->n != rt->n_models) {
        sh_hand_tracker *t = sh_calloc(NULL, (size_t)rt->n_models, sizeof *t);
        if (!t)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for the video's hand trackers");
        sh_free(NULL, v->trackers);
        v->trackers = t;
        v->n = rt->n_models;
        v->rt = rt;
        v->rt_t0 = rt->t0;
    }
    *out = &v->trackers[id];
    return 0;
}

static int fill_result(shoal_runtime_t rt, const sh_image *img, const sh_hand *hands, int n, const sh_palm *palms,
                       int np, sh_rt_result *r, sh_err *err)
{
    float w = (float)img->width, h = (float)img->height;
    for (int i = 0; i < n; i++) {
        const sh_hand *s = &hands[i];
        shoal_hand *o = &r->hands[i];
        memcpy(o->landmarks, s->landmarks, sizeof o->landmarks);
        memcpy(o->world, s->world, sizeof o->world);
        o->presence = s->presence;
        o->handedness = s->handedness;
        o->handedness_label = sh_hand_label(s->handedness);
        o->handedness_score = s->handedness_score;
        o->tracked = !s->from_palm;
        o->roi_x = s->roi.x_center * w;
        o->roi_y = s->roi.y_center * h;
        o->roi_width = s->roi.width * w;
        o->roi_height = s->roi.height * h;
        o->roi_rotation = s->roi.rotation;
    }
    r->pub.n_hands = n;
    r->pub.hands = r->hands;
    if (n > 0) {
        const shoal_hand *f = &r->hands[0];
        for (int k = 0; k < SH_HAND_POINTS; k++) {
            r->hand.x[k] = r->landmarks[3 * k] = f->landmarks[k][0];
            r->hand.y[k] = r->landmarks[3 * k + 1] = f->landmarks[k][1];
            r->hand.z[k] = r->landmarks[3 * k + 2] = f->landmarks[k][2];
        }
        r->hand.presence = f->presence;
        r->hand.handedness = f->handedness == 1 ? f->handedness_score : 1.0f - f->handedness_score;
        r->has_hand = true;
        r->pub.n_landmarks = SH_HAND_POINTS;
        r->pub.landmarks = r->landmarks;
        r->pub.presence = r->hand.presence;
        r->pub.handedness = r->hand.handedness;
    }
    r->items = sh_calloc(rt->alloc, np > 0 ? (size_t)np : 1, sizeof *r->items);
    if (!r->items)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for results");
    for (int i = 0; i < np; i++)
        r->items[i] = (shoal_detection){.class_id = 0, .class_name = "palm", .score = palms[i].score,
                                        .x1 = palms[i].xmin * w, .y1 = palms[i].ymin * h,
                                        .x2 = (palms[i].xmin + palms[i].width) * w,
                                        .y2 = (palms[i].ymin + palms[i].height) * h};
    r->pub.n_detections = np;
    r->pub.detections = r->items;
    return 0;
}

/* The palm detector alone on the whole frame (the hand landmarker's first step): its palms
 * as detections, no hands. */
static int run_palms(shoal_runtime_t rt, sh_rt_context *ctx, sh_rt_model *palm, const sh_image *img,
                     const sh_hand_params *p, sh_palm *palms, int *np, double *net_ms, double *device_ms,
                     sh_err *err)
{
    stage_run s = {.rt = rt, .ctx = ctx, .stage = {palm, palm}};
    sh_hand_models hm = {.run = run_stage, .ctx = &s};
    int rc = sh_hand_detect_palms(rt->alloc, p, &hm, img, palms, np, err);
    *net_ms = s.net_ms;
    *device_ms = s.device_ms;
    return rc;
}

static sh_hand_params hand_params(const sh_model_config *owner, const sh_rt_model *palm, const sh_rt_model *lm)
{
    sh_hand_params p = sh_hand_params_from_config(owner, NULL);
    p.palm.input_size = palm->in_w;
    p.palm.coord_scale = (float)palm->in_w;
    p.landmark_size = lm->in_w;
    return p;
}

/* A palm stage run as a model of its own: its palm detections on the frame. */
static int run_palm_stage(struct shoal_runtime *rt, sh_rt_context *ctx, sh_rt_model *palm, const shoal_image *frame,
                          sh_rt_result *r, sh_err *err)
{
    const sh_model_config *owner = &rt->cfg->models[palm->cfg->stage_owner];
    double t0 = now_s();
    int rc = sh_residency_acquire(rt->residency, palm->id, sh_rt_now(rt), err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", palm->cfg->name);
    sh_hand_params p = hand_params(owner, palm, &rt->models[palm->cfg->stage_owner]);
    sh_image img = {.width = frame->width, .height = frame->height, .channels = 3, .data = frame->rgb};
    sh_palm palms[SH_HAND_MAX_HANDS];
    int np = 0;
    double net = 0, device = -1;
    rc = run_palms(rt, ctx, palm, &img, &p, palms, &np, &net, &device, err);
    sh_residency_release(rt->residency, palm->id, sh_rt_now(rt));
    if (rc == 0)
        rc = fill_result(rt, &img, NULL, 0, palms, np, r, err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': ", palm->cfg->name);
    r->pub.infer_ms = net;
    r->device_ms = device;
    r->pub.latency_ms = (now_s() - t0) * 1e3;
    record_latency(rt, palm, r->pub.latency_ms);
    return 0;
}

/* One frame through hand model m's landmarker. locked: the caller holds the backend lock.
 * ran[stage] (may be NULL): whether each stage ran on this frame (a tracked frame skips the
 * palm detector; a frame without palms skips the landmark model). */
static int hand_frame(struct shoal_runtime *rt, sh_rt_context *ctx, sh_rt_model *m, const shoal_image *frame,
                      shoal_video_t video, bool locked, sh_rt_result *r, bool ran[2], sh_err *err)
{
    const sh_model_config *c = m->cfg;
    sh_rt_model *palm = &rt->models[c->palm_stage];
    double t0 = now_s();
    sh_hand_tracker *tracker = NULL;
    int rc = c->tracking ? video_tracker(video, rt, m->id, &tracker, err) : 0;
    if (rc)
        return rc;
    /* Both stages stay referenced for the whole frame: the landmarker may need either. They are
     * one residency set, so the first acquire admits both or neither. */
    if ((rc = sh_residency_acquire(rt->residency, m->id, sh_rt_now(rt), err)))
        return sh_err_prefix(err, rc, "model '%s': ", c->name);
    if ((rc = sh_residency_acquire(rt->residency, palm->id, sh_rt_now(rt), err))) {
        sh_residency_release(rt->residency, m->id, sh_rt_now(rt));
        return sh_err_prefix(err, rc, "model '%s' (palm detector of '%s'): ", palm->cfg->name, c->name);
    }
    stage_run s = {.rt = rt, .ctx = ctx, .stage = {palm, m}, .locked = locked};
    sh_hand_models hm = {.run = run_stage, .ctx = &s};
    sh_hand_params p = hand_params(c, palm, m);
    sh_image img = {.width = frame->width, .height = frame->height, .channels = 3, .data = frame->rgb};
    sh_hand hands[SH_HAND_MAX_HANDS];
    sh_palm palms[SH_HAND_MAX_HANDS];
    int n = 0, np = 0;
    rc = sh_hand_landmarker_run(rt->alloc, &p, &hm, tracker, &img, hands, SH_HAND_MAX_HANDS, &n, palms, &np, err);
    for (int k = 0; ran && k < 2; k++)
        ran[k] = s.runs[k] > 0;
    sh_residency_release(rt->residency, palm->id, sh_rt_now(rt));
    sh_residency_release(rt->residency, m->id, sh_rt_now(rt));
    if (rc) {
        if (tracker)   /* the next frame starts from a detection, not from half a frame */
            memset(tracker, 0, sizeof *tracker);
        return sh_err_prefix(err, rc, "model '%s': ", c->name);
    }
    if ((rc = fill_result(rt, &img, hands, n, palms, np, r, err)))
        return rc;
    r->pub.infer_ms = s.net_ms;
    r->device_ms = s.device_ms;
    r->pub.latency_ms = (now_s() - t0) * 1e3;
    if (s.runs[SH_HAND_MODEL_PALM])
        record_latency(rt, palm, s.stage_ms[SH_HAND_MODEL_PALM]);
    record_latency(rt, m, r->pub.latency_ms);
    return 0;
}

static void name_result(sh_rt_result *r, const sh_model_config *c)
{
    r->cfg = c;
    r->pub.model = c->name;
    r->pub.task = sh_task_name(c->task);
}

int sh_rt_hand_run(struct shoal_runtime *rt, sh_rt_context *ctx, sh_rt_model *m, const shoal_image *frame,
                   shoal_video_t video, sh_rt_result *r, sh_err *err)
{
    name_result(r, m->cfg);
    if (m->cfg->is_palm_stage)
        return run_palm_stage(rt, ctx, m, frame, r, err);
    return hand_frame(rt, ctx, m, frame, video, false, r, NULL, err);
}

/* A result moved to another slot: its landmarks point into itself. */
static void move_result(sh_rt_result *dst, sh_rt_result *src)
{
    *dst = *src;
    if (src->pub.landmarks == src->landmarks)
        dst->pub.landmarks = dst->landmarks;
    if (src->pub.hands == src->hands)
        dst->pub.hands = dst->hands;
    memset(src, 0, sizeof *src);
}

/* The mode's hand models beside its networks' group (sh_rt_beside): each whose stages the
 * budget admits beside the networks runs while they run; the others are left for after. A
 * palm stage listed in a mode on its own always runs after (it takes the lock itself). */
typedef struct hand_beside {
    sh_rt_beside base;
    shoal_runtime_t rt;
    sh_rt_context *ctx;
    const size_t *ids;
    size_t n;
    const shoal_image *frame;
    shoal_video_t video;
    shoal_results_t res;
    bool *done;
} hand_beside;

static void beside_lane(sh_rt_beside *b, int lane)
{
    for (int k = 0; k < b->n_lanes; k++)
        if (b->lanes[k] == lane)
            return;
    if (b->n_lanes < SH_MAX_LANES)
        b->lanes[b->n_lanes++] = lane;
}

static int hands_beside(sh_rt_beside *b, sh_err *err)
{
    hand_beside *h = (hand_beside *)b;
    for (size_t i = 0; i < h->n; i++) {
        sh_rt_model *m = &h->rt->models[h->ids[i]];
        if (!sh_rt_hand_is_task(m) || m->cfg->is_palm_stage)
            continue;
        sh_rt_result *r = &h->res->items[i];
        name_result(r, m->cfg);
        bool ran[2] = {false, false};
        int rc = hand_frame(h->rt, h->ctx, m, h->frame, h->video, true, r, ran, err);
        if (rc == SHOAL_ERR_BUDGET) {
            sh_err_clear(err);
            continue;
        }
        if (rc)
            return rc;
        h->done[i] = true;
        b->ran = true;
        /* only lanes used on this frame: another's events are of an older frame, or none */
        if (ran[SH_HAND_MODEL_LANDMARK])
            beside_lane(b, m->lane);
        if (ran[SH_HAND_MODEL_PALM])
            beside_lane(b, h->rt->models[m->cfg->palm_stage].lane);
    }
    return 0;
}

int sh_rt_hand_run_mixed(struct shoal_runtime *rt, sh_rt_context *ctx, const size_t *ids, size_t n,
                         const shoal_image *frame, shoal_video_t video, shoal_results_t res,
                         sh_rt_models_fn run_models, sh_err *err)
{
    size_t n_hands = sh_rt_hand_count(rt, ids, n), n_net = n - n_hands;
    size_t *net = sh_calloc(rt->alloc, n_net ? n_net : 1, sizeof *net);
    struct shoal_results part = {.alloc = rt->alloc, .device_ms = -1};
    part.items = sh_calloc(rt->alloc, n_net ? n_net : 1, sizeof *part.items);
    bool *done = sh_calloc(rt->alloc, n ? n : 1, sizeof *done);
    if (!net || !part.items || !done) {
        sh_free(rt->alloc, net);
        sh_free(rt->alloc, part.items);
        sh_free(rt->alloc, done);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for a concurrent run");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!sh_rt_hand_is_task(&rt->models[ids[i]]))
            net[k++] = ids[i];
    hand_beside beside = {.base = {.run = hands_beside}, .rt = rt, .ctx = ctx, .ids = ids, .n = n, .frame = frame,
                          .video = video, .res = res, .done = done};
    int rc = n_net ? run_models(rt, ctx, net, n_net, frame, &part, &beside.base, err) : 0;
    /* the networks' results into their places in the mode's order, hands between them */
    size_t from = 0;
    for (size_t i = 0; i < n && from < (size_t)part.n; i++)
        if (!sh_rt_hand_is_task(&rt->models[ids[i]]))
            move_result(&res->items[i], &part.items[from++]);
    res->n = (int)n;
    res->infer_ms = part.infer_ms;
    res->concurrent = part.concurrent;
    res->device_ms = n_net ? part.device_ms : 0;   /* with the span of the hands run beside */
    for (size_t i = from; i < (size_t)part.n; i++)
        sh_rt_result_free(rt->alloc, &part.items[i]);
    sh_free(rt->alloc, part.items);
    sh_free(rt->alloc, net);
    /* the rest after the networks' lanes, one stage at a time: their lanes' busy times add to
     * the networks' span */
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!sh_rt_hand_is_task(&rt->models[ids[i]]) || done[i])
            continue;
        rc = sh_rt_hand_run(rt, ctx, &rt->models[ids[i]], frame, video, &res->items[i], err);
        res->infer_ms += res->items[i].pub.infer_ms;
        res->device_ms = res->device_ms < 0 || res->items[i].device_ms < 0 ? -1
                                                                          : res->device_ms + res->items[i].device_ms;
    }
    sh_free(rt->alloc, done);
    if (rc || !rt->concurrent)   /* in turn, the network is host-timed per model */
        res->device_ms = -1;
    return rc;
}

/* --- video objects ------------------------------------------------------------------------ */

shoal_video_t shoal_video_create(void)
{
    shoal_video_t v = sh_calloc(NULL, 1, sizeof *v);
    if (!v)
        sh_api_fail(SHOAL_ERR_NO_MEMORY, "shoal_video_create: out of memory");
    return v;
}

void shoal_video_destroy(shoal_video_t video)
{
    if (!video)
        return;
    sh_free(NULL, video->trackers);
    sh_free(NULL, video);
}

/* --- output -------------------------------------------------------------------------------- */

static double round3(double v)
{
    return (double)(long long)(v * 1000.0 + (v >= 0 ? 0.5 : -0.5)) / 1000.0;
}

static cJSON *points_json(const float (*p)[3])
{
    cJSON *a = cJSON_CreateArray();
    for (int k = 0; a && k < SH_HAND_LANDMARKS; k++) {
        double v[3] = {round3(p[k][0]), round3(p[k][1]), round3(p[k][2])};
        cJSON_AddItemToArray(a, cJSON_CreateDoubleArray(v, 3));
    }
    return a;
}

void sh_rt_hand_json(struct cJSON *j, const sh_rt_result *r)
{
    cJSON *hands = cJSON_AddArrayToObject(j, "hands");
    for (int i = 0; hands && i < r->pub.n_hands; i++) {
        const shoal_hand *h = &r->pub.hands[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddItemToObject(o, "landmarks", points_json(h->landmarks));
        cJSON_AddItemToObject(o, "world_landmarks", points_json(h->world));
        cJSON_AddNumberToObject(o, "presence", round3(h->presence));
        cJSON_AddStringToObject(o, "handedness", h->handedness_label);
        cJSON_AddNumberToObject(o, "handedness_score", round3(h->handedness_score));
        cJSON_AddBoolToObject(o, "tracked", h->tracked);
        double roi[5] = {round3(h->roi_x), round3(h->roi_y), round3(h->roi_width), round3(h->roi_height),
                         round3(h->roi_rotation)};
        cJSON_AddItemToObject(o, "roi", cJSON_CreateDoubleArray(roi, 5));
        cJSON_AddItemToArray(hands, o);
    }
    cJSON *palms = cJSON_AddArrayToObject(j, "palms");
    for (int i = 0; palms && i < r->pub.n_detections; i++) {
        const shoal_detection *d = &r->pub.detections[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddNumberToObject(o, "score", round3(d->score));
        double box[4] = {round3(d->x1), round3(d->y1), round3(d->x2), round3(d->y2)};
        cJSON_AddItemToObject(o, "box", cJSON_CreateDoubleArray(box, 4));
        cJSON_AddItemToArray(palms, o);
    }
}

void sh_rt_hand_draw(sh_image *img, const sh_rt_result *r)
{
    sh_draw_params dp = sh_draw_default_params();
    for (int i = 0; i < r->pub.n_hands; i++) {
        const shoal_hand *h = &r->pub.hands[i];
        sh_hand_landmarks lm = {.presence = h->presence,
                                .handedness = h->handedness == 1 ? h->handedness_score : 1.0f - h->handedness_score};
        for (int k = 0; k < SH_HAND_POINTS; k++) {
            lm.x[k] = h->landmarks[k][0];
            lm.y[k] = h->landmarks[k][1];
            lm.z[k] = h->landmarks[k][2];
        }
        sh_draw_hand(img, &lm, &dp);
    }
}
