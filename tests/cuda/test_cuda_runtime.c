/* The runtime on the GPU against the runtime on the CPU: one config (configs/aiglasses.yaml,
 * or $SHOAL_CONFIG), the same 8-bit frame, every mode and every model alone, through the public
 * API only (the frame uploaded, each model's graph with its frame ops run, the results read). The CUDA backend computes in fp16,
 * so the two runs are not bit for bit equal: every confident CPU detection (score at least
 * SCORE_MARGIN over the lowest score the CPU kept) must have a GPU detection of the same class
 * with IoU >= 0.8 and a score within 0.05, and the other way round (unless NMS kept the
 * other box of a near-tied overlapping pair, see TIE_SCORE_DIFF); hand landmarks must agree
 * within 2 pixels. Model paths in the config are relative to the directory that holds models/
 * ($SHOAL_MODELS, default SHOAL_MODELS_DIR), so the test runs there.
 *
 * Concurrent modes (inference.concurrent_models): on a runtime that runs a mode's models at
 * once on the backend's lanes, every model's result must be exactly what it gives alone on
 * that runtime, run after run, with every output buffer poisoned before each run (so a
 * download that lands too late, or a lane that reads another's bytes, shows), and exactly
 * what a runtime that runs them in turn gives (same kernels, other arena offsets).
 *
 * Exits 77 (skipped) without a CUDA device, the config or the generated models. */
#include <execinfo.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/tuning_env.h"
#include "core/npy.h"
#include "runtime/introspect.h"
#include "runtime/runtime-impl.h"
#include "shoal.h"

#define SCORE_MARGIN 0.05f
#define MIN_IOU 0.8f
#define MAX_SCORE_DIFF 0.05f
#define MAX_LANDMARK_PX 2.0f
/* Two same-class boxes overlapping more than NMS's IoU threshold (configs: 0.45) suppress each
 * other: the higher score stays. When their scores are this close, fp16 may order them the
 * other way and each backend keeps one of the pair - a tie flip, not a wrong detection. */
#define NMS_IOU 0.45f
#define TIE_SCORE_DIFF 0.01f

static float iou(const shoal_detection *a, const shoal_detection *b)
{
    float ix = fminf(a->x2, b->x2) - fmaxf(a->x1, b->x1), iy = fminf(a->y2, b->y2) - fmaxf(a->y1, b->y1);
    if (ix <= 0 || iy <= 0)
        return 0;
    float in = ix * iy;
    float ua = (a->x2 - a->x1) * (a->y2 - a->y1) + (b->x2 - b->x1) * (b->y2 - b->y1) - in;
    return ua > 0 ? in / ua : 0;
}

/* Confident detections of `a` without a partner in `b`. */
static int unmatched(const shoal_model_result *a, const shoal_model_result *b, float floor_score)
{
    int miss = 0;
    for (int i = 0; i < a->n_detections; i++) {
        const shoal_detection *d = &a->detections[i];
        if (d->score < floor_score + SCORE_MARGIN)
            continue;
        int ok = 0, near = -1;
        for (int j = 0; j < b->n_detections && !ok; j++) {
            const shoal_detection *e = &b->detections[j];
            ok = e->class_id == d->class_id && iou(d, e) >= MIN_IOU && fabsf(e->score - d->score) <= MAX_SCORE_DIFF;
            if (near < 0 || iou(d, e) > iou(d, &b->detections[near]))
                near = j;
        }
        if (ok)
            continue;
        /* what it was and its nearest box on the other side, to tell a flip from a bug */
        const shoal_detection *e = near >= 0 ? &b->detections[near] : NULL;
        bool tie = e && e->class_id == d->class_id && iou(d, e) > NMS_IOU && fabsf(e->score - d->score) <= TIE_SCORE_DIFF;
        printf("  %s: class %d score %.3f box %.1f %.1f %.1f %.1f; nearest: class %d score %.3f iou %.3f\n",
               tie ? "NMS tie flip (accepted)" : "unmatched", d->class_id, d->score, d->x1, d->y1, d->x2, d->y2,
               e ? e->class_id : -1, e ? e->score : 0.f, e ? iou(d, e) : 0.f);
        miss += !tie;
    }
    return miss;
}

static float min_score(const shoal_model_result *r)
{
    float m = 1.f;
    for (int i = 0; i < r->n_detections; i++)
        m = fminf(m, r->detections[i].score);
    return m;
}

static int compare(const char *what, shoal_results_t rc, shoal_results_t rg)
{
    int bad = 0, n = shoal_results_count(rc);
    if (shoal_results_count(rg) != n) {
        printf("%-28s result count cpu %d cuda %d\n", what, n, shoal_results_count(rg));
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const shoal_model_result *c = shoal_results_get(rc, i), *g = shoal_results_get(rg, i);
        float floor_score = fminf(min_score(c), min_score(g));
        int mc = unmatched(c, g, floor_score), mg = unmatched(g, c, floor_score);
        float lm = 0;
        if (c->n_landmarks != g->n_landmarks) {
            lm = INFINITY;
        } else {
            for (int k = 0; k < c->n_landmarks; k++)
                lm = fmaxf(lm, hypotf(c->landmarks[3 * k] - g->landmarks[3 * k],
                                      c->landmarks[3 * k + 1] - g->landmarks[3 * k + 1]));
        }
        int ok = mc == 0 && mg == 0 && lm <= MAX_LANDMARK_PX &&
                 (c->n_landmarks == 0 || fabsf(c->presence - g->presence) <= 0.05f);
        printf("%-12s %-14s dets cpu %3d cuda %3d  unmatched %d/%d  landmarks %.2f px  infer cpu %.1f ms cuda %.2f ms  %s\n",
               what, c->model, c->n_detections, g->n_detections, mc, mg, lm, c->infer_ms, g->infer_ms,
               ok ? "ok" : "MISMATCH");
        bad += !ok;
    }
    return bad;
}

/* An 8-bit RGB frame from <models>/<name>.input.npy ([1,3,H,W] floats in [0,1)). */
static int frame_from_npy(const char *models, const char *name, shoal_image *img)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s.input.npy", models, name);
    sh_npy t = {0};
    sh_err err = {0};
    if (sh_npy_read_file(NULL, path, &t, &err) || t.dtype != SH_DT_FLOAT32 || t.shape.ndim != 4 || t.shape.d[1] != 3) {
        sh_npy_free(NULL, &t);
        return -1;
    }
    int h = (int)t.shape.d[2], w = (int)t.shape.d[3];
    uint8_t *rgb = malloc((size_t)w * h * 3);
    const float *f = t.data;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                float v = f[(size_t)c * w * h + (size_t)y * w + x] * 255.f + 0.5f;
                rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
    sh_npy_free(NULL, &t);
    *img = shoal_image_wrap(rgb, w, h);
    return 0;
}

/* A crash on the device machine printed nothing (stdout to a file is block-buffered): say
 * where it happened. */
static void on_crash(int sig)
{
    void *bt[64];
    int n = backtrace(bt, 64);
    fprintf(stderr, "test_cuda_runtime: signal %d, backtrace:\n", sig);
    backtrace_symbols_fd(bt, n, 2);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int concurrency = 0;   /* shoal_runtime_params.concurrent_models of the next make_ex */
static long fail_alloc_nth = 0;   /* the next make_ex's backend fails this device allocation */

static shoal_runtime_t make_ex(const char *config, const char *device, int64_t budget, int preload, int *status)
{
    char msg[512] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.concurrent_models = concurrency;
    p.config_path = config;
    p.device = device;
    p.preload = preload;
    p.budget_bytes = budget;
    p.error = msg;
    p.error_cap = sizeof msg;
    if (cli_runtime_tuning("test_cuda_runtime", &p) != 0)
        return NULL;
    sh_runtime_internal_params ip = {.backend_fail_alloc_nth = fail_alloc_nth};
    shoal_runtime_t rt = NULL;
    int rc = sh_runtime_create_internal(&p, &ip, &rt);
    if (status)
        *status = rc;
    if (rc) {
        printf("runtime on %s: %s (%s)\n", device, msg, shoal_status_str(rc));
        return NULL;
    }
    return rt;
}

static shoal_runtime_t make(const char *config, const char *device)
{
    return make_ex(config, device, 0, 1, NULL);
}

/* NaN in every output: on the device (each bound model, each context) and in the host
 * staging, so a result can only come from the run that follows. */
static void poison_outputs(shoal_runtime_t rt)
{
    for (int c = 0; c < rt->n_contexts; c++) {
        sh_rt_context *x = &rt->contexts[c];
        if (x->output_host)
            memset(x->output_host, 0xff, rt->max_output_bytes);
        for (int i = 0; i < rt->n_models; i++) {
            sh_rt_model *m = &rt->models[i];
            for (int o = 0; m->bound && o < m->n_results; o++) {
                int t = m->results[o];
                size_t n = m->plan->bytes[t];
                void *nan = malloc(n);
                sh_err err = {0};
                memset(nan, 0xff, n);
                if (rt->backend.iface->upload(rt->backend.ctx, m->tensor_ptrs[c][t], nan, n, &err))
                    printf("poison: %s\n", err.msg);
                free(nan);
            }
        }
    }
}

/* Bit-equal results of one model: detections (class, score, box, mask) and landmarks. */
static bool same_item(const shoal_model_result *x, const shoal_model_result *y)
{
    bool same = x->n_detections == y->n_detections && x->n_landmarks == y->n_landmarks && !strcmp(x->model, y->model);
    for (int d = 0; same && d < x->n_detections; d++) {
        const shoal_detection *p = &x->detections[d], *q = &y->detections[d];
        /* field by field: class_name points into each runtime's own config */
        same = p->class_id == q->class_id && !strcmp(p->class_name, q->class_name) && p->score == q->score &&
               p->x1 == q->x1 && p->y1 == q->y1 && p->x2 == q->x2 && p->y2 == q->y2 && p->mask_area == q->mask_area &&
               (!p->mask_rle) == (!q->mask_rle) && (!p->mask_rle || !strcmp(p->mask_rle, q->mask_rle));
    }
    if (same && x->n_landmarks)
        same = !memcmp(x->landmarks, y->landmarks, 3 * sizeof(float) * (size_t)x->n_landmarks) &&
               x->presence == y->presence && x->handedness == y->handedness;
    return same;
}

static int same_results(const char *what, shoal_results_t a, shoal_results_t b)
{
    int n = shoal_results_count(a);
    if (shoal_results_count(b) != n) {
        printf("%s: %d results against %d\n", what, n, shoal_results_count(b));
        return 1;
    }
    int bad = 0;
    for (int i = 0; i < n; i++) {
        const shoal_model_result *x = shoal_results_get(a, i), *y = shoal_results_get(b, i);
        if (!same_item(x, y)) {
            printf("%s: %s differs (%d against %d detections)\n", what, x->model, x->n_detections, y->n_detections);
            bad++;
        }
    }
    return bad;
}

/* Largest difference of score or box corner (pixels) between two results whose detections
 * pair up in order by class; -1 when they do not. */
static double largest_diff(const shoal_model_result *x, const shoal_model_result *y)
{
    if (x->n_detections != y->n_detections || x->n_landmarks != y->n_landmarks)
        return -1;
    double d = 0;
    for (int i = 0; i < x->n_detections; i++) {
        const shoal_detection *p = &x->detections[i], *q = &y->detections[i];
        if (p->class_id != q->class_id)
            return -1;
        double e[5] = {p->score - q->score, p->x1 - q->x1, p->y1 - q->y1, p->x2 - q->x2, p->y2 - q->y2};
        for (int k = 0; k < 5; k++)
            d = fmax(d, fabs(e[k]));
    }
    for (int i = 0; i < 3 * x->n_landmarks; i++)
        d = fmax(d, fabs(x->landmarks[i] - y->landmarks[i]));
    return d;
}

static int run_poisoned(shoal_runtime_t rt, bool mode, const char *name, const shoal_image *frame,
                        shoal_results_t *out)
{
    poison_outputs(rt);
    int rc = mode ? shoal_runtime_run_mode(rt, name, frame, out) : shoal_runtime_run_model(rt, name, frame, out);
    if (rc)
        printf("concurrent: %s: %s\n", name, shoal_runtime_last_error(rt));
    return rc;
}

/* In turn the network is host-timed per model: no device time for the call. */
static bool in_turn_dev(shoal_results_t res) { return shoal_results_device_ms(res) != -1; }

/* A mode run at once must give, model by model, exactly what each model gives alone on the
 * same runtime (same graphs, same bytes). */
static int mode_at_once_checks(shoal_runtime_t on, const char *mode, const shoal_image *frame, shoal_results_t got)
{
    int bad = 0;
    if (shoal_results_count(got) > 1 && !shoal_results_concurrent(got)) {
        printf("concurrent: %s ran in turn on the concurrent runtime\n", mode);
        bad++;
    }
    for (int i = 0; i < shoal_results_count(got); i++) {
        const shoal_model_result *x = shoal_results_get(got, i);
        shoal_results_t alone = NULL;
        if (run_poisoned(on, false, x->model, frame, &alone))
            return bad + 1;
        char what[96];
        snprintf(what, sizeof what, "%s at once vs %s alone", mode, x->model);
        const shoal_model_result *y = shoal_results_get(alone, 0);
        if (!same_item(x, y)) {
            printf("concurrent: %s: differs (largest difference %g)\n", what, largest_diff(x, y));
            bad++;
        }
        shoal_results_destroy(alone);
    }
    return bad;
}

static int concurrency_checks(const char *config, const shoal_image *frame)
{
    concurrency = 1;
    shoal_runtime_t on = make_ex(config, "cuda", 0, 1, NULL);
    concurrency = -1;
    shoal_runtime_t off = make_ex(config, "cuda", 0, 1, NULL), off2 = make_ex(config, "cuda", 0, 1, NULL);
    concurrency = 0;
    int bad = 0;
    if (!on || !off || !off2 || !sh_runtime_concurrent(on) || sh_runtime_concurrent(off)) {
        printf("concurrent: runtimes with concurrent_models on/off not as asked\n");
        bad = 1;
        goto done;
    }
    printf("concurrent: arena %zu bytes per context (in turn %zu)\n", sh_runtime_arena_bytes(on),
           sh_runtime_arena_bytes(off));
    int nk = shoal_runtime_mode_count(on), nm = shoal_runtime_model_count(on);
    for (int k = 0; k < nk + nm; k++) {
        bool mode = k < nk;
        const char *name = mode ? shoal_runtime_mode_name(on, k) : shoal_runtime_model_name(on, k - nk);
        shoal_results_t ref = NULL, ref2 = NULL, first = NULL;
        if (run_poisoned(off, mode, name, frame, &ref) || run_poisoned(off2, mode, name, frame, &ref2)) {
            bad++;
            goto next;
        }
        double net[3] = {0}, vs_turn = 0, turn_turn = 0;
        for (int r = 0; r < 3; r++) {
            shoal_results_t got = NULL;
            if (run_poisoned(on, mode, name, frame, &got)) {
                bad++;
                break;
            }
            net[r] = shoal_results_infer_ms(got);
            /* the device's clock: known on lanes, inside the host's wall time around it */
            double dev = shoal_results_device_ms(got);
            if (!(dev > 0 && dev <= net[r] + 0.01)) {
                printf("FAIL %s: device time %.3f ms beside a network time of %.3f ms\n", name, dev, net[r]);
                bad++;
            }
            if (in_turn_dev(ref)) {
                printf("FAIL %s: the in-turn runtime reports a device time\n", name);
                bad++;
            }
            for (int i = 0; i < shoal_results_count(got); i++) {
                const shoal_model_result *x = shoal_results_get(got, i);
                double d = largest_diff(x, shoal_results_get(ref, i));
                double t = largest_diff(shoal_results_get(ref, i), shoal_results_get(ref2, i));
                vs_turn = d < 0 || vs_turn < 0 ? -1 : fmax(vs_turn, d);
                turn_turn = t < 0 || turn_turn < 0 ? -1 : fmax(turn_turn, t);
            }
            if (r == 0) {
                first = got;
                bad += same_results(name, ref, got);
                if (mode)
                    bad += mode_at_once_checks(on, name, frame, got);
                continue;
            }
            bad += same_results(name, first, got);
            shoal_results_destroy(got);
        }
        printf("concurrent: %-14s in turn %.2f ms, at once %.2f %.2f %.2f ms (network); largest difference to "
               "the in-turn runtime %g (two in-turn runtimes: %g)\n",
               name, shoal_results_infer_ms(ref), net[0], net[1], net[2], vs_turn, turn_turn);
    next:
        shoal_results_destroy(first);
        shoal_results_destroy(ref);
        shoal_results_destroy(ref2);
    }
done:
    shoal_runtime_destroy(on);
    shoal_runtime_destroy(off);
    shoal_runtime_destroy(off2);
    return bad;
}

/* Device out of memory (issue 5, must show 4): a budget too small for any model gives
 * SHOAL_ERR_BUDGET and a working runtime once the budget grows; an injected cudaMalloc
 * failure (SHOAL_CUDA_FAIL_ALLOC=N: the N-th device allocation fails) gives a status for the
 * model it hits, and every model runs afterwards in the same runtime. */
static int oom_checks(const char *config, const shoal_image *frame)
{
    int bad = 0, st = 0;
    shoal_runtime_t rt = make_ex(config, "cuda", 1 << 20, 0, &st);
    int nm = 0, refused = 0, other = 0, served = 0;
    if (!rt) {
        /* refusing the budget at create is a status too; nothing to serve then */
        printf("oom: runtime with a 1 MiB budget: create refused (%s)\n", shoal_status_str(st));
        bad += st >= 0;
        goto inject;
    }
    nm = shoal_runtime_model_count(rt);
    for (int i = 0; i < nm; i++) {
        shoal_results_t r = NULL;
        int rc = shoal_runtime_run_model(rt, shoal_runtime_model_name(rt, i), frame, &r);
        refused += rc == SHOAL_ERR_BUDGET;
        if (rc != 0 && rc != SHOAL_ERR_BUDGET) {
            printf("oom: %s in a 1 MiB budget: %s (%s)\n", shoal_runtime_model_name(rt, i), shoal_status_str(rc),
                   shoal_runtime_last_error(rt));
            other++;
        }
        shoal_results_destroy(r);
    }
    int sb = shoal_runtime_set_budget(rt, (int64_t)2 << 30);
    for (int i = 0; i < nm && sb == 0; i++) {
        shoal_results_t r = NULL;
        served += shoal_runtime_run_model(rt, shoal_runtime_model_name(rt, i), frame, &r) == 0;
        shoal_results_destroy(r);
    }
    printf("oom: 1 MiB budget: %d/%d models refused with 'budget'; after set_budget(2 GiB) %d/%d ran\n",
           refused, nm, served, nm);
    bad += refused == 0 || other != 0 || served != nm;
    shoal_runtime_destroy(rt);

inject:;
    int hit_total = 0;
    for (int nth = 1; nth <= 3; nth++) {
        fail_alloc_nth = nth;
        rt = make_ex(config, "cuda", 0, 0, &st);
        fail_alloc_nth = 0;
        if (!rt) {
            /* the failure hit the runtime's own setup: a status, not a crash, is what counts */
            printf("oom: injected failure #%d at create: %s\n", nth, shoal_status_str(st));
            bad += st >= 0;
            continue;
        }
        nm = shoal_runtime_model_count(rt);
        int failed = 0, ok2 = 0;
        for (int i = 0; i < nm; i++) {
            shoal_results_t r = NULL;
            int rc = shoal_runtime_run_model(rt, shoal_runtime_model_name(rt, i), frame, &r);
            if (rc) {
                failed++;
                printf("oom: injected failure #%d: %s -> %s (%s)\n", nth, shoal_runtime_model_name(rt, i),
                       shoal_status_str(rc), shoal_runtime_last_error(rt));
            }
            shoal_results_destroy(r);
        }
        for (int i = 0; i < nm; i++) {
            shoal_results_t r = NULL;
            ok2 += shoal_runtime_run_model(rt, shoal_runtime_model_name(rt, i), frame, &r) == 0;
            shoal_results_destroy(r);
        }
        /* and every mode (its models at once where the runtime runs them concurrently) */
        int nk = shoal_runtime_mode_count(rt), modes_ok = 0;
        for (int k = 0; k < nk; k++) {
            shoal_results_t r = NULL;
            modes_ok += shoal_runtime_run_mode(rt, shoal_runtime_mode_name(rt, k), frame, &r) == 0;
            shoal_results_destroy(r);
        }
        printf("oom: injected failure #%d: %d model(s) failed with a status, then %d/%d served, %d/%d modes "
               "(concurrent %d)\n", nth, failed, ok2, nm, modes_ok, nk, (int)sh_runtime_concurrent(rt));
        hit_total += failed;
        bad += ok2 != nm || modes_ok != nk;
        shoal_runtime_destroy(rt);
    }
    if (hit_total == 0) {
        printf("oom: no injected failure reached a model run\n");
        bad++;
    }
    return bad;
}

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    signal(SIGSEGV, on_crash);
    signal(SIGABRT, on_crash);
    const char *models = getenv("SHOAL_MODELS") ? getenv("SHOAL_MODELS") : SHOAL_MODELS_DIR;
    char config[4096], root[4096];
    snprintf(config, sizeof config, "%s", getenv("SHOAL_CONFIG") ? getenv("SHOAL_CONFIG")
                                                                   : SHOAL_SOURCE_DIR "/configs/aiglasses.yaml");
    if (!realpath(config, root) || access(config, R_OK)) {
        printf("skip: no config %s\n", config);
        return 77;
    }
    snprintf(config, sizeof config, "%s", root);
    char mcopy[4096];
    snprintf(mcopy, sizeof mcopy, "%s", models);
    if (!realpath(mcopy, root)) {
        printf("skip: no models folder %s (make models)\n", models);
        return 77;
    }
    char models_abs[4096];
    snprintf(models_abs, sizeof models_abs, "%s", root);
    if (chdir(dirname(root))) {
        printf("skip: cannot enter the folder above %s\n", models_abs);
        return 77;
    }
    shoal_image frame;
    if (frame_from_npy(models_abs, "traffic_light", &frame)) {
        printf("skip: no %s/traffic_light.input.npy (make models)\n", models_abs);
        return 77;
    }
    shoal_runtime_t gpu = make(config, "cuda");
    if (!gpu) {
        free(frame.rgb);
        printf("skip: no CUDA runtime\n");
        return 77;
    }
    shoal_runtime_t cpu = make(config, "cpu");
    if (!cpu) {
        shoal_runtime_destroy(gpu);
        free(frame.rgb);
        return 1;
    }
    int bad = 0;
    for (int m = 0; m < shoal_runtime_mode_count(cpu); m++) {
        const char *mode = shoal_runtime_mode_name(cpu, m);
        shoal_results_t rc = NULL, rg = NULL;
        if (shoal_runtime_run_mode(cpu, mode, &frame, &rc)) {
            printf("mode %s on cpu: %s\n", mode, shoal_runtime_last_error(cpu));
            bad++;
        } else if (shoal_runtime_run_mode(gpu, mode, &frame, &rg)) {
            printf("mode %s on cuda: %s\n", mode, shoal_runtime_last_error(gpu));
            bad++;
        } else {
            bad += compare(mode, rc, rg);
        }
        shoal_results_destroy(rc);
        shoal_results_destroy(rg);
    }
    /* each model alone, twice on the GPU: the second run replays the captured graph and
     * must give the first run's detections exactly */
    for (int i = 0; i < shoal_runtime_model_count(cpu); i++) {
        const char *name = shoal_runtime_model_name(cpu, i);
        shoal_results_t rc = NULL, rg = NULL, rg2 = NULL;
        if (shoal_runtime_run_model(cpu, name, &frame, &rc) || shoal_runtime_run_model(gpu, name, &frame, &rg) ||
            shoal_runtime_run_model(gpu, name, &frame, &rg2)) {
            printf("model %s: %s %s\n", name, shoal_runtime_last_error(cpu), shoal_runtime_last_error(gpu));
            bad++;
        } else {
            bad += compare("model", rc, rg);
            const shoal_model_result *x = shoal_results_get(rg, 0), *y = shoal_results_get(rg2, 0);
            if (!x || !y) {
                printf("model %s: no result\n", name);
                bad++;
            } else if (x->n_detections != y->n_detections ||
                (x->n_detections && memcmp(x->detections, y->detections, offsetof(shoal_detection, mask_area)))) {
                printf("model %s: graph replay differs from the first run\n", name);
                bad++;
            }
        }
        shoal_results_destroy(rc);
        shoal_results_destroy(rg);
        shoal_results_destroy(rg2);
    }
    shoal_runtime_destroy(cpu);
    shoal_runtime_destroy(gpu);
    bad += concurrency_checks(config, &frame);
    bad += oom_checks(config, &frame);
    free(frame.rgb);
    printf("%s\n", bad ? "FAIL" : "all modes and models agree (cpu fp32 vs cuda fp16)");
    return bad ? 1 : 0;
}
