/* shoal bench: load time by phase, per-model and per-mode latency, mode-switch time under a
 * budget, and memory, for one config on one device; a JSON record for bench/table.py.
 *
 * Phases, in order (a progress line on stderr for each):
 *   create   shoal_runtime_create without preload: config, backend, then per model parse,
 *            optimize, compile, plan and pack (timed by the runtime, bench_hooks.h), arenas
 *   upload   every model made resident, one shoal_runtime_load_model each
 *   first    each model's first run (cold: first touch of the arena, CUDA graph capture)
 *   models   warmup + iters runs of each model alone
 *   profile  (CPU, --profile or SHOAL_PROFILE=1) per-op-type time of each model
 *   modes    warmup + iters runs of each mode with every model resident
 *   switch   the modes cycled under a budget too small for all of them at once: the first
 *            frame after each switch (evictions, re-uploads from the host cache, the run) and
 *            its overhead over the same mode's next frame. The unpinned models are unloaded
 *            before the budget is set (the modes phase left them all resident), so the cycles
 *            start from the pinned set and load and evict on demand
 *
 * Inputs: each model runs on an 8-bit frame made from the reference input its export wrote
 * next to it (<model>.input.npy: [1,3,H,W] floats in [0,1)), so the network sees the values
 * the PyTorch and ONNX Runtime runners feed it, rounded to 1/255; a mode runs on its first
 * model's frame. --image replaces them with one picture (--image MODE=FILE: that mode's
 * picture, its models included), and models without an .npy get a seeded noise frame of their
 * input size.
 *
 * Latency: "latency" is shoal's whole per-frame path (preprocess, inference, decode and NMS)
 * measured around the public call; "infer" is the network alone as the runtime reports it. On
 * a GPU, infer includes the input upload, the output download and the stream sync that the
 * download implies, so both are host wall-clock times.
 *
 * A mode whose picture is a JPEG file is also timed from the file's bytes in memory:
 * "jpeg_frame" is shoal_image_decode plus the mode's run, "jpeg_decode" the decode alone (the
 * camera's JPEG is decoded on the host; docs/benchmarks.md compares the decoders). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "backends/cpu/cpu_report.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/cpu_features.h"
#include "cli/tuning_env.h"
#include "core/npy.h"
#include "core/utf8.h"
#include "graph/flops.h"
#include "graph/graph.h"
#include "monitor/nvml.h"
#include "runtime/bench_hooks.h"
#include "runtime/introspect.h"
#include "shoal.h"

#define MAX_MODELS 32
#define MAX_MODES 16
#define MIB 1048576.0

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal bench [--config FILE] [--mode NAME|all] [--iters N] [--warmup N]\n"
            "                   [--budget auto|none|BYTES[K|M|G][iB]] [--cycles N] [--device cpu|cuda|auto]\n"
            "                   [--threads N] [--concurrent auto|on|off] [--image [MODE=]FILE]... [--profile]\n"
            "                   [--label NAME]\n"
            "                   [--out FILE.json] [--json]\n"
            "\n"
            "Measures load time (parse, optimize, compile, plan, pack, upload per model), each model's\n"
            "and each mode's latency (median, p90, p99 over --iters runs after --warmup runs; default\n"
            "20 and 3), the time of a mode switch under --budget (default auto: the smallest budget\n"
            "that holds the largest mode with the pinned models, so switches evict and reload; none\n"
            "skips it; --cycles rounds through every mode, default 10; every unpinned model is unloaded\n"
            "first so that a budget below all of them applies, and a budget that cannot apply, or a\n"
            "given one a mode does not fit, is an error), and memory: weights (unique,\n"
            "shared, stored), planned activations, arenas, peak RSS and, on a GPU, the process's\n"
            "device memory from NVML. Progress goes to stderr; --json prints one JSON record on\n"
            "stdout instead of the tables, --out also writes it to a file. --profile (or\n"
            "SHOAL_PROFILE=1) adds per-op-type times on the CPU backend.\n"
            "Latency is host wall clock: \"latency\" is the whole frame (preprocess, network, decode),\n"
            "\"infer\" the network alone; on a GPU it includes the input upload, the output download\n"
            "and the sync they imply. With concurrent modes (--concurrent, default the config's\n"
            "inference.concurrent_models) a mode's \"infer\" is the wall time of its whole device\n"
            "section, its models overlapping. Inputs: each model's <model>.input.npy beside its .onnx as an\n"
            "8-bit frame (the peers' inputs), else --image, else seeded noise. --image MODE=FILE (repeatable)\n"
            "gives one mode (and its models) its own picture. A mode whose picture is a JPEG file is also\n"
            "timed from the file's bytes: \"jpeg_frame\" is the decode and the run, \"jpeg_decode\" the decode.\n");
}

#define MAX_IMAGES MAX_MODES

/* One --image: for every mode (mode NULL) or the mode named by mode[0 .. mode_len). */
typedef struct bench_image {
    const char *mode, *path;
    size_t mode_len;
} bench_image;

typedef struct bench_opts {
    const char *config, *mode, *device, *out, *label, *budget, *concurrent;
    bench_image images[MAX_IMAGES];
    int n_images;
    int iters, warmup, threads, cycles;
    int json, profile;
} bench_opts;

/* --- small utilities -------------------------------------------------------------------- */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct summary {
    int n;
    double median, p90, p99, mean, min, max;
} summary;

/* Nearest-rank percentiles (p99 of 20 samples is the largest). */
static summary summarize(const double *v, int n)
{
    summary s = {.n = n};
    if (n <= 0)
        return s;
    double *b = malloc(sizeof(double) * (size_t)n);
    if (!b)
        return s;
    memcpy(b, v, sizeof(double) * (size_t)n);
    qsort(b, (size_t)n, sizeof(double), cmp_double);
#define RANK(p) b[(int)ceil((p) / 100.0 * n) - 1 < 0 ? 0 : (int)ceil((p) / 100.0 * n) - 1]
    s.median = n % 2 ? b[n / 2] : 0.5 * (b[n / 2 - 1] + b[n / 2]);
    s.p90 = RANK(90);
    s.p99 = RANK(99);
#undef RANK
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += b[i];
    s.mean = sum / n;
    s.min = b[0];
    s.max = b[n - 1];
    free(b);
    return s;
}

static cJSON *summary_json(const summary *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", s->n);
    cJSON_AddNumberToObject(o, "median", s->median);
    cJSON_AddNumberToObject(o, "p90", s->p90);
    cJSON_AddNumberToObject(o, "p99", s->p99);
    cJSON_AddNumberToObject(o, "mean", s->mean);
    cJSON_AddNumberToObject(o, "min", s->min);
    cJSON_AddNumberToObject(o, "max", s->max);
    return o;
}

/* A byte size as the config writes it ("512MB", "1.5GiB", 4096); "auto" and "none" are
 * handled by the caller. Checked by cli_size when parsed, so failing here is a program error. */
static int parse_budget(const char *s, int64_t *out)
{
    sh_config_size sz;
    char why[128];
    if (sh_config_parse_size(s, false, &sz, why, sizeof why) != 0 || sz.bytes > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)sz.bytes;
    return 0;
}

/* --- progress ----------------------------------------------------------------------------- */

static int g_tty = -1;

/* On a terminal one line is rewritten in place; in a log each call is its own line, so the
 * callers print only at the start of a step there. */
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    if (g_tty < 0)
        g_tty = isatty(2);
    va_list ap;
    va_start(ap, fmt);
    fputs(g_tty ? "\r\033[K[bench] " : "[bench] ", stderr);
    vfprintf(stderr, fmt, ap);
    if (!g_tty)
        fputc('\n', stderr);
    fflush(stderr);
    va_end(ap);
}

static void progress_done(void)
{
    if (g_tty > 0)
        fputs("\r\033[K", stderr);
}

/* Every k-th step on a tty only. */
static bool tick(int i)
{
    return g_tty > 0 || i == 0;
}

/* --- frames ------------------------------------------------------------------------------- */

/* <model>.input.npy beside <model>.onnx as an RGB8 frame; 0 or -1 when absent or unusable. */
static int frame_from_npy(const char *onnx_path, shoal_image *img)
{
    size_t n = strlen(onnx_path);
    if (n < 5 || strcmp(onnx_path + n - 5, ".onnx"))
        return -1;
    char path[4096];
    snprintf(path, sizeof path, "%.*s.input.npy", (int)(n - 5), onnx_path);
    if (access(path, R_OK))
        return -1;
    sh_npy t;
    sh_err err = {0};
    if (sh_npy_read_file(NULL, path, &t, &err))
        return -1;
    int rc = -1;
    if (t.dtype == SH_DT_FLOAT32 && t.shape.ndim == 4 && t.shape.d[0] == 1 && t.shape.d[1] == 3) {
        int h = (int)t.shape.d[2], w = (int)t.shape.d[3];
        uint8_t *rgb = malloc((size_t)w * h * 3);
        if (rgb) {
            const float *x = t.data;
            size_t plane = (size_t)w * h;
            for (size_t p = 0; p < plane; p++)
                for (int c = 0; c < 3; c++) {
                    float v = x[c * plane + p] * 255.0f + 0.5f;
                    rgb[p * 3 + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                }
            *img = (shoal_image){.width = w, .height = h, .rgb = rgb, .owned = 1};
            rc = 0;
        }
    }
    sh_npy_free(NULL, &t);
    return rc;
}

static int noise_frame(int w, int h, uint32_t seed, shoal_image *img)
{
    uint8_t *rgb = malloc((size_t)w * h * 3);
    if (!rgb)
        return -1;
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < (size_t)w * h * 3; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        rgb[i] = (uint8_t)(s >> 24);
    }
    *img = (shoal_image){.width = w, .height = h, .rgb = rgb, .owned = 1};
    return 0;
}


/* --- memory probes ------------------------------------------------------------------------- */

typedef struct mem_probe {
    int64_t rss, peak_rss;
    int64_t gpu_process, gpu_used;   /* -1 when unknown */
} mem_probe;

static mem_probe probe(sh_nvml *nv)
{
    mem_probe m = {-1, -1, -1, -1};
    sh_host_sample h;
    sh_err err = {0};
    if (sh_host_sample_read(&h, &err) == 0) {
        m.rss = (int64_t)h.rss;
        m.peak_rss = (int64_t)h.peak_rss;
    }
    sh_gpu_sample g;
    if (nv && sh_nvml_sample(nv, 0, &g, &err) == 0) {
        m.gpu_process = g.process_used;
        m.gpu_used = (int64_t)g.used;
    }
    return m;
}

static cJSON *probe_json(const mem_probe *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rss_bytes", (double)m->rss);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)m->peak_rss);
    cJSON_AddNumberToObject(o, "gpu_process_bytes", (double)m->gpu_process);
    cJSON_AddNumberToObject(o, "gpu_used_bytes", (double)m->gpu_used);
    return o;
}

/* --- the benchmark ------------------------------------------------------------------------- */

typedef struct bench {
    const bench_opts *o;
    shoal_runtime_t rt;
    sh_nvml *nv;
    int n_models, n_modes;
    const char *model_names[MAX_MODELS];
    const char *mode_names[MAX_MODES];
    bool mode_selected[MAX_MODES];
    shoal_image frames[MAX_MODELS];      /* per model (malloc'd, or wrapping a picture) */
    shoal_image pictures[MAX_IMAGES];    /* --image, decoded once */
    uint8_t *picture_bytes[MAX_IMAGES];  /* the file of each, kept where it is a JPEG */
    size_t picture_len[MAX_IMAGES];
    const shoal_image *mode_frame[MAX_MODES];
    int mode_picture[MAX_MODES];         /* index into pictures, or -1 */
    double *lat, *inf, *dev;             /* scratch [iters] */
    int64_t gpu_baseline;                /* NVML device used before create, or -1 */
    cJSON *root;
    int failures;
} bench;

static void note_error(bench *b, const char *msg)
{
    cJSON *errs = cJSON_GetObjectItem(b->root, "errors");
    if (!errs)
        errs = cJSON_AddArrayToObject(b->root, "errors");
    cJSON_AddItemToArray(errs, cJSON_CreateString(msg));
}

static void fail(bench *b, const char *what, const char *name)
{
    char msg[1200];
    snprintf(msg, sizeof msg, "%s %s: %s", what, name, shoal_runtime_last_error(b->rt));
    progress_done();
    fprintf(stderr, "shoal bench: %s\n", msg);
    note_error(b, msg);
    b->failures++;
}

/* One run of a model or mode: wall time around the call, the network time the runtime
 * reports for the call (the sum over its models in turn; the wall time of the device section
 * when they run concurrently) and that section on the device's clock (-1 where unknown).
 * Negative on failure. */
static double run_once(bench *b, bool is_mode, const char *name, const shoal_image *frame, double *infer_ms,
                       double *device_ms)
{
    shoal_results_t res;
    double t0 = now_ms();
    int rc = is_mode ? shoal_runtime_run_mode(b->rt, name, frame, &res) : shoal_runtime_run_model(b->rt, name, frame, &res);
    double ms = now_ms() - t0;
    if (rc != SHOAL_OK)
        return -1;
    double inf = shoal_results_infer_ms(res), dev = shoal_results_device_ms(res);
    shoal_results_destroy(res);
    if (infer_ms)
        *infer_ms = inf;
    if (device_ms)
        *device_ms = dev;
    return ms;
}

/* warmup + iters runs; fills the "latency_ms" and "infer_ms" summaries into obj. */
static int measure(bench *b, bool is_mode, const char *name, const shoal_image *frame, cJSON *obj)
{
    const char *kind = is_mode ? "mode" : "model";
    for (int i = 0; i < b->o->warmup; i++) {
        if (tick(i))
            progress("%s %s: warmup %d/%d", kind, name, i + 1, b->o->warmup);
        if (run_once(b, is_mode, name, frame, NULL, NULL) < 0) {
            fail(b, kind, name);
            return -1;
        }
    }
    for (int i = 0; i < b->o->iters; i++) {
        if (tick(i))
            progress("%s %s: run %d/%d", kind, name, i + 1, b->o->iters);
        b->lat[i] = run_once(b, is_mode, name, frame, &b->inf[i], &b->dev[i]);
        if (b->lat[i] < 0) {
            fail(b, kind, name);
            return -1;
        }
    }
    summary l = summarize(b->lat, b->o->iters), f = summarize(b->inf, b->o->iters);
    cJSON_AddItemToObject(obj, "latency_ms", summary_json(&l));
    cJSON_AddItemToObject(obj, "infer_ms", summary_json(&f));
    /* the same network part on the device's clock, where every run could tell it */
    bool known = b->o->iters > 0;
    for (int i = 0; i < b->o->iters; i++)
        known = known && b->dev[i] >= 0;
    if (known) {
        summary d = summarize(b->dev, b->o->iters);
        cJSON_AddItemToObject(obj, "device_ms", summary_json(&d));
    }
    return 0;
}

/* A mode from its picture's JPEG bytes in memory: decode + run per frame, warmup + iters times;
 * fills "jpeg_frame_ms" and "jpeg_decode_ms". */
static int measure_jpeg(bench *b, int k, const uint8_t *bytes, size_t len, cJSON *obj)
{
    const char *name = b->mode_names[k];
    double *decode = b->dev;   /* free scratch: measure() is done with it */
    char err[512];
    for (int i = 0; i < b->o->warmup + b->o->iters; i++) {
        if (tick(i))
            progress("mode %s from JPEG bytes: %d/%d", name, i + 1, b->o->warmup + b->o->iters);
        shoal_image img;
        double t0 = now_ms();
        if (shoal_image_decode(bytes, len, &img, err, sizeof err) != SHOAL_OK) {
            char msg[700];
            snprintf(msg, sizeof msg, "decoding the JPEG of mode %s: %s", name, err);
            fprintf(stderr, "shoal bench: %s\n", msg);
            note_error(b, msg);
            b->failures++;
            return -1;
        }
        double t1 = now_ms();
        double run = run_once(b, true, name, &img, NULL, NULL);
        shoal_image_free(&img);
        if (run < 0) {
            fail(b, "mode (from JPEG bytes)", name);
            return -1;
        }
        if (i >= b->o->warmup) {
            decode[i - b->o->warmup] = t1 - t0;
            b->lat[i - b->o->warmup] = t1 - t0 + run;
        }
    }
    summary f = summarize(b->lat, b->o->iters), d = summarize(decode, b->o->iters);
    cJSON_AddNumberToObject(obj, "jpeg_bytes", (double)len);
    cJSON_AddItemToObject(obj, "jpeg_frame_ms", summary_json(&f));
    cJSON_AddItemToObject(obj, "jpeg_decode_ms", summary_json(&d));
    return 0;
}

static int phase_create(bench *b, const char *device)
{
    char err[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    if (cli_runtime_tuning("bench", &p) != 0)
        return -1;
    p.config_path = b->o->config;
    p.device = device;
    p.threads = b->o->threads;
    p.preload = 0;            /* uploads are timed on their own */
    if (b->o->concurrent)
        p.concurrent_models = !strcmp(b->o->concurrent, "on") ? 1 : !strcmp(b->o->concurrent, "off") ? -1 : 0;
    p.error = err;
    p.error_cap = sizeof err;
    progress("create: parse, optimize, compile, plan, pack %s", b->o->config);
    double t0 = now_ms();
    int rc = shoal_runtime_create(&p, &b->rt);
    double wall = now_ms() - t0;
    if (rc) {
        progress_done();
        fprintf(stderr, "shoal bench: %s\n", err);
        note_error(b, err);
        return -1;
    }
    b->n_models = shoal_runtime_model_count(b->rt);
    b->n_modes = shoal_runtime_mode_count(b->rt);
    cJSON_AddBoolToObject(b->root, "concurrent_models", sh_runtime_concurrent(b->rt));
    if (b->n_models > MAX_MODELS || b->n_modes > MAX_MODES) {
        fprintf(stderr, "shoal bench: at most %d models and %d modes\n", MAX_MODELS, MAX_MODES);
        return -1;
    }
    for (int i = 0; i < b->n_models; i++)
        b->model_names[i] = shoal_runtime_model_name(b->rt, i);
    for (int k = 0; k < b->n_modes; k++)
        b->mode_names[k] = shoal_runtime_mode_name(b->rt, k);

    cJSON *load = cJSON_AddObjectToObject(b->root, "load");
    cJSON_AddNumberToObject(load, "create_ms", sh_runtime_create_ms(b->rt));
    cJSON_AddNumberToObject(load, "create_wall_ms", wall);
    cJSON *models = cJSON_AddObjectToObject(load, "models");
    for (int i = 0; i < b->n_models; i++) {
        sh_rt_load_times lt;
        sh_runtime_load_times(b->rt, i, &lt);
        cJSON *m = cJSON_AddObjectToObject(models, b->model_names[i]);
        cJSON_AddNumberToObject(m, "parse_ms", lt.parse_ms);
        cJSON_AddNumberToObject(m, "optimize_ms", lt.optimize_ms);
        cJSON_AddNumberToObject(m, "compile_ms", lt.compile_ms);
        cJSON_AddNumberToObject(m, "plan_ms", lt.plan_ms);
        cJSON_AddNumberToObject(m, "pack_ms", lt.pack_ms);
    }
    mem_probe m = probe(b->nv);
    cJSON_AddItemToObject(cJSON_AddObjectToObject(b->root, "memory_after"), "create", probe_json(&m));
    return 0;
}

/* Uploads every model and runs each once, timing both. */
static int phase_upload(bench *b)
{
    cJSON *load = cJSON_GetObjectItem(b->root, "load");
    cJSON *models = cJSON_GetObjectItem(load, "models");
    double upload = 0, first = 0;
    for (int i = 0; i < b->n_models; i++) {
        const char *n = b->model_names[i];
        progress("upload %s", n);
        double t0 = now_ms();
        int rc = shoal_runtime_load_model(b->rt, n);
        if (rc == SHOAL_ERR_BUDGET && shoal_runtime_set_budget(b->rt, 0) == SHOAL_OK) {
            /* The comparison runs every model resident, as the peers do; the switch phase
             * sets its own budget afterwards. */
            cJSON_AddStringToObject(b->root, "budget_note",
                                    "the config's budget does not hold every model: lifted for the steady phases");
            t0 = now_ms();
            rc = shoal_runtime_load_model(b->rt, n);
        }
        if (rc != SHOAL_OK) {
            fail(b, "loading", n);
            return -1;
        }
        double ms = now_ms() - t0;
        upload += ms;
        cJSON_AddNumberToObject(cJSON_GetObjectItem(models, n), "upload_ms", ms);
    }
    /* A tight budget may have evicted an earlier model to admit a later one. */
    shoal_stats st;
    if (shoal_runtime_get_stats(b->rt, &st) == SHOAL_OK) {
        for (int i = 0; i < st.n_models; i++) {
            if (st.models[i].state == SHOAL_MODEL_RESIDENT)
                continue;
            if (!cJSON_GetObjectItem(b->root, "budget_note"))
                cJSON_AddStringToObject(b->root, "budget_note",
                                        "the config's budget does not hold every model: lifted for the steady phases");
            shoal_runtime_set_budget(b->rt, 0);
            double t0 = now_ms();
            if (shoal_runtime_load_model(b->rt, st.models[i].name) != SHOAL_OK) {
                fail(b, "loading", st.models[i].name);
                shoal_stats_free(&st);
                return -1;
            }
            upload += now_ms() - t0;
        }
        shoal_stats_free(&st);
    }
    mem_probe m = probe(b->nv);
    cJSON_AddItemToObject(cJSON_GetObjectItem(b->root, "memory_after"), "upload", probe_json(&m));
    for (int i = 0; i < b->n_models; i++) {
        const char *n = b->model_names[i];
        if (sh_runtime_config(b->rt)->models[i].is_palm_stage)   /* runs inside its hand model */
            continue;
        progress("first run %s", n);
        double ms = run_once(b, false, n, &b->frames[i], NULL, NULL);
        if (ms < 0) {
            fail(b, "first run of", n);
            return -1;
        }
        first += ms;
        cJSON_AddNumberToObject(cJSON_GetObjectItem(models, n), "first_run_ms", ms);
    }
    double create = cJSON_GetObjectItem(load, "create_ms")->valuedouble;
    cJSON_AddNumberToObject(load, "upload_ms", upload);
    /* parse .. upload: every model resident and able to run */
    cJSON_AddNumberToObject(load, "total_ms", create + upload);
    cJSON_AddNumberToObject(load, "first_runs_ms", first);
    cJSON_AddNumberToObject(load, "to_first_results_ms", create + upload + first);
    return 0;
}

/* The model's optimized graph's work (graph/flops.h): achieved GFLOP/s against the peak. */
static void add_flops(cJSON *m, const sh_flops *f)
{
    cJSON *o = cJSON_AddObjectToObject(m, "gflop");
    cJSON_AddNumberToObject(o, "conv_1x1", f->conv_1x1 / 1e9);
    cJSON_AddNumberToObject(o, "conv_kxk", f->conv_kxk / 1e9);
    cJSON_AddNumberToObject(o, "conv_grouped", f->conv_grouped / 1e9);
    cJSON_AddNumberToObject(o, "conv_transpose", f->conv_transpose / 1e9);
    cJSON_AddNumberToObject(o, "matmul", f->matmul / 1e9);
    cJSON_AddNumberToObject(o, "total", sh_flops_total(f) / 1e9);
}

static int phase_models(bench *b)
{
    cJSON *models = cJSON_AddObjectToObject(b->root, "models");
    const sh_config *cfg = sh_runtime_config(b->rt);
    for (int i = 0; i < b->n_models; i++) {
        if (cfg->models[i].is_palm_stage)   /* runs inside its hand model, timed there */
            continue;
        cJSON *m = cJSON_AddObjectToObject(models, b->model_names[i]);
        sh_flops f = sh_graph_flops(sh_runtime_model_graph(b->rt, i));
        add_flops(m, &f);
        if (measure(b, false, b->model_names[i], &b->frames[i], m))
            return -1;
    }
    return 0;
}

/* Per-op-type milliseconds per run of each model, largest first, ops under 0.5% folded. */
static int phase_profile(bench *b)
{
    if (!sh_runtime_cpu_profile(b->rt, true)) {
        cJSON_AddStringToObject(b->root, "profile_note", "per-op profile: CPU backend only");
        return 0;
    }
    int runs = b->o->iters < 5 ? b->o->iters : 5;
    if (runs < 1)
        runs = 1;
    cJSON *prof = cJSON_AddObjectToObject(b->root, "profile");
    for (int i = 0; i < b->n_models; i++) {
        const char *n = b->model_names[i];
        if (sh_runtime_config(b->rt)->models[i].is_palm_stage)   /* profiled inside its hand model */
            continue;
        progress("profile %s", n);
        double *ms = sh_runtime_cpu_profile(b->rt, true);   /* zeroed */
        for (int r = 0; r < runs; r++)
            if (run_once(b, false, n, &b->frames[i], NULL, NULL) < 0) {
                fail(b, "profiling", n);
                sh_runtime_cpu_profile(b->rt, false);
                return -1;
            }
        cJSON *m = cJSON_AddObjectToObject(prof, n);
        double total = 0;
        for (int op = 0; op < SH_OP_COUNT; op++)
            total += ms[op];
        cJSON_AddNumberToObject(m, "total_ms", total / runs);
        sh_flops f = sh_graph_flops(sh_runtime_model_graph(b->rt, i));
        double conv = f.conv_1x1 + f.conv_kxk + f.conv_grouped;
        if (ms[SH_OP_CONV] > 0)
            cJSON_AddNumberToObject(m, "conv_gflops_per_s", conv / 1e9 / (ms[SH_OP_CONV] / runs / 1e3));
        cJSON *ops = cJSON_AddObjectToObject(m, "ops_ms");
        bool done[SH_OP_COUNT] = {false};
        for (;;) {
            int best = -1;
            for (int op = 0; op < SH_OP_COUNT; op++)
                if (!done[op] && ms[op] > 0 && (best < 0 || ms[op] > ms[best]))
                    best = op;
            if (best < 0)
                break;
            done[best] = true;
            cJSON_AddNumberToObject(ops, sh_op_name((sh_op)best), ms[best] / runs);
        }
    }
    sh_runtime_cpu_profile(b->rt, false);
    return 0;
}

static int phase_modes(bench *b)
{
    cJSON *modes = cJSON_AddObjectToObject(b->root, "modes");
    for (int k = 0; k < b->n_modes; k++) {
        if (!b->mode_selected[k])
            continue;
        cJSON *m = cJSON_AddObjectToObject(modes, b->mode_names[k]);
        cJSON *names = cJSON_AddArrayToObject(m, "models");
        const sh_config *cfg = sh_runtime_config(b->rt);
        for (size_t i = 0; i < cfg->modes[k].n_models; i++)
            cJSON_AddItemToArray(names, cJSON_CreateString(b->model_names[cfg->modes[k].models[i]]));
        if (measure(b, true, b->mode_names[k], b->mode_frame[k], m))
            return -1;
        int p = b->mode_picture[k];
        if (p >= 0 && b->picture_bytes[p] && measure_jpeg(b, k, b->picture_bytes[p], b->picture_len[p], m))
            return -1;
    }
    return 0;
}

static void memory_snapshot(bench *b, const char *key)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(b->rt, &st) != SHOAL_OK)
        return;
    cJSON *o = cJSON_AddObjectToObject(b->root, key);
    const shoal_device_stats *d = &st.devices[0];
    int64_t refs = 0, unique = 0, shared = 0, plans = 0, plan_max = 0;
    cJSON *pm = cJSON_AddObjectToObject(o, "models");
    for (int i = 0; i < st.n_models; i++) {
        const shoal_model_stats *m = &st.models[i];
        cJSON *j = cJSON_AddObjectToObject(pm, m->name);
        cJSON_AddBoolToObject(j, "resident", m->state == SHOAL_MODEL_RESIDENT);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)m->weight_bytes);
        cJSON_AddNumberToObject(j, "weight_unique_bytes", (double)m->weight_unique_bytes);
        cJSON_AddNumberToObject(j, "weight_shared_bytes", (double)m->weight_shared_bytes);
        cJSON_AddNumberToObject(j, "plan_bytes", (double)m->plan_bytes);
        cJSON_AddNumberToObject(j, "plan_lower_bound_bytes", (double)m->plan_lower_bound);
        refs += m->weight_bytes;
        unique += m->weight_unique_bytes;
        shared += m->weight_shared_bytes;
        plans += m->plan_bytes;
        if (m->plan_bytes > plan_max)
            plan_max = m->plan_bytes;
    }
    cJSON_AddStringToObject(o, "device", d->name);
    cJSON_AddNumberToObject(o, "weights_referenced_bytes", (double)refs);
    cJSON_AddNumberToObject(o, "weights_unique_bytes", (double)unique);
    cJSON_AddNumberToObject(o, "weights_shared_bytes", (double)shared);
    cJSON_AddNumberToObject(o, "weights_stored_bytes", (double)d->weights_stored_bytes);
    cJSON_AddNumberToObject(o, "weights_pool_bytes", (double)d->weights_bytes);
    cJSON_AddNumberToObject(o, "dedup_saved_bytes", (double)st.dedup_saved_bytes);
    cJSON_AddNumberToObject(o, "activations_planned_sum_bytes", (double)plans);
    cJSON_AddNumberToObject(o, "activations_planned_max_bytes", (double)plan_max);
    cJSON_AddNumberToObject(o, "arena_bytes", (double)d->arena_bytes);
    cJSON_AddNumberToObject(o, "arena_contexts", sh_runtime_context_count(b->rt));
    cJSON_AddNumberToObject(o, "arena_bytes_per_context", (double)sh_runtime_arena_bytes(b->rt));
    cJSON_AddNumberToObject(o, "staging_bytes", (double)d->staging_bytes);
    cJSON_AddNumberToObject(o, "host_cache_bytes", (double)d->host_cache_bytes);
    cJSON_AddNumberToObject(o, "device_in_use_bytes", (double)d->in_use_bytes);
    cJSON_AddNumberToObject(o, "device_peak_bytes", (double)d->peak_bytes);
    cJSON_AddNumberToObject(o, "budget_bytes", (double)d->budget_bytes);
    mem_probe m = probe(b->nv);
    cJSON_AddNumberToObject(o, "rss_bytes", (double)m.rss);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)m.peak_rss);
    cJSON_AddNumberToObject(o, "gpu_process_bytes", (double)m.gpu_process);
    cJSON_AddNumberToObject(o, "gpu_used_bytes", (double)m.gpu_used);
    if (m.gpu_used >= 0 && b->gpu_baseline >= 0)
        cJSON_AddNumberToObject(o, "gpu_used_delta_bytes", (double)(m.gpu_used - b->gpu_baseline));
    shoal_stats_free(&st);
}

static int64_t in_use_now(bench *b)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(b->rt, &st) != SHOAL_OK)
        return -1;
    int64_t v = st.devices[0].in_use_bytes;
    shoal_stats_free(&st);
    return v;
}

/* Unloads every resident model that is not pinned, appending its name to `names` (when not
 * NULL); the number unloaded, or -1. set_budget only evicts what its LRU cleanup reaches and
 * refuses a budget below what then stays, so a budget under "every model resident" has to
 * start from the pinned set alone. Preloaded models go too: preload says what is loaded at
 * start, not what must stay, and the cycles load them again on demand. */
static int unload_unpinned(bench *b, cJSON *names)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(b->rt, &st) != SHOAL_OK) {
        fail(b, "reading the stats of", "the runtime");
        return -1;
    }
    int n = 0;
    for (int i = 0; i < st.n_models && n >= 0; i++) {
        const shoal_model_stats *m = &st.models[i];
        if (m->pinned || m->state != SHOAL_MODEL_RESIDENT)
            continue;
        if (shoal_runtime_unload_model(b->rt, m->name) != SHOAL_OK) {
            fail(b, "unloading", m->name);
            n = -1;
        } else {
            if (names)
                cJSON_AddItemToArray(names, cJSON_CreateString(m->name));
            n++;
        }
    }
    shoal_stats_free(&st);
    return n;
}

/* The smallest budget that holds the largest mode with the pinned models, measured rather
 * than computed: per mode, everything unpinned is unloaded, the mode's models loaded, and
 * the device bytes charged read back (pool chunks and arenas included). -1 on failure. */
static int64_t auto_budget(bench *b, int64_t *all_bytes)
{
    const sh_config *cfg = sh_runtime_config(b->rt);
    *all_bytes = in_use_now(b);
    int64_t need = 0;
    for (int k = 0; k < b->n_modes; k++) {
        if (unload_unpinned(b, NULL) < 0)
            return -1;
        for (size_t i = 0; i < cfg->modes[k].n_models; i++)
            shoal_runtime_load_model(b->rt, b->model_names[cfg->modes[k].models[i]]);
        int64_t v = in_use_now(b);
        if (v > need)
            need = v;
    }
    return need;
}

/* Applies the switch phase's budget from the pinned models alone and records what left for
 * it. A refusal is an error, never a quietly larger budget: the phase exists to measure
 * evictions and reloads under the budget asked for. */
static int apply_budget(bench *b, int64_t budget, cJSON *sw)
{
    if (unload_unpinned(b, cJSON_AddArrayToObject(sw, "unloaded")) < 0)
        return -1;
    int64_t kept = in_use_now(b);
    cJSON_AddNumberToObject(sw, "resident_after_unload_bytes", (double)kept);
    if (shoal_runtime_set_budget(b->rt, budget) == SHOAL_OK)
        return 0;
    char what[200];
    snprintf(what, sizeof what, "--budget %s (%.2f MiB; %.2f MiB stay resident after unloading every unpinned model)",
             b->o->budget, (double)budget / MIB, (double)kept / MIB);
    fail(b, "switch phase:", what);
    return -1;
}

/* Makes a mode's models resident the way its first frame would (each admission evicts least
 * recently used unpinned models as needed); the milliseconds, or -1. */
static double switch_to(bench *b, int k)
{
    const sh_config *cfg = sh_runtime_config(b->rt);
    double t0 = now_ms();
    for (size_t i = 0; i < cfg->modes[k].n_models; i++)
        if (shoal_runtime_load_model(b->rt, b->model_names[cfg->modes[k].models[i]]) != SHOAL_OK)
            return -1;
    return now_ms() - t0;
}

/* Cycles through every mode under the budget. Per switch: "switch" is the residency work
 * alone (evictions and uploads, no inference), timed around the loads the first frame would
 * do itself; "first_frame" is that frame's latency once resident; "overhead" is switch +
 * first frame less the mode's steady median from the modes phase (noisy on a busy CPU). */
static int phase_switch(bench *b)
{
    cJSON *sw = cJSON_AddObjectToObject(b->root, "switch");
    if (b->n_modes < 2) {
        cJSON_AddStringToObject(sw, "skipped", "the config has one mode");
        return 0;
    }
    int64_t budget = 0, all = 0;
    const char *how = "given";
    progress("switch: finding the budget");
    bool is_auto = !strcmp(b->o->budget, "auto");
    if (is_auto) {
        budget = auto_budget(b, &all);
        how = "auto: the largest mode with the pinned models";
    } else if (parse_budget(b->o->budget, &budget)) {
        fprintf(stderr, "shoal bench: --budget '%s': expected auto, none or a size\n", b->o->budget);
        return -1;
    } else {
        all = in_use_now(b);
    }
    if (budget < 0 || apply_budget(b, budget, sw))
        return -1;
    /* auto only: the pool may place a mode's weights less tightly after other modes came and
     * went than when the budget was measured, so a switch that does not fit grows the
     * measured budget by 4 MiB, at most 8 times, and says so (budget_grown_bytes). A budget
     * given on the command line is kept as given: a mode it cannot hold is an error. */
    const int64_t stepb = (int64_t)4 << 20;
    int grown = 0;
    double steady[MAX_MODES];
    cJSON *modes = cJSON_GetObjectItem(b->root, "modes");
    for (int k = 0; k < b->n_modes; k++) {
        cJSON *m = cJSON_GetObjectItem(modes, b->mode_names[k]);
        cJSON *med = m ? cJSON_GetObjectItem(cJSON_GetObjectItem(m, "latency_ms"), "median") : NULL;
        steady[k] = med ? med->valuedouble : NAN;
    }
    shoal_stats st0;
    if (shoal_runtime_get_stats(b->rt, &st0) != SHOAL_OK)
        return -1;
    int n = b->o->cycles * b->n_modes;
    double *sw_ms = calloc((size_t)n + 1, sizeof(double)), *ff_ms = calloc((size_t)n + 1, sizeof(double));
    double *ov_ms = calloc((size_t)n + 1, sizeof(double));
    double *mode_sw[MAX_MODES] = {0};
    int mode_n[MAX_MODES] = {0}, done = 0, n_ov = 0, rc = 0;
    for (int k = 0; k < b->n_modes; k++)
        mode_sw[k] = calloc((size_t)b->o->cycles + 1, sizeof(double));
    /* Step -1 puts the runtime in the last mode, so the first measured step is a switch. */
    for (int step = -1; rc == 0 && step < n; step++) {
        int k = step < 0 ? b->n_modes - 1 : step % b->n_modes;
        const char *mode = b->mode_names[k];
        if (step >= 0 && tick(step))
            progress("switch cycle %d/%d: to %s", step / b->n_modes + 1, b->o->cycles, mode);
        double t_sw = switch_to(b, k);
        double f = t_sw >= 0 ? run_once(b, true, mode, b->mode_frame[k], NULL, NULL) : -1;
        if (t_sw < 0 || f < 0) {
            if (is_auto && grown < 8 && shoal_runtime_set_budget(b->rt, budget + stepb) == SHOAL_OK) {
                grown++;
                budget += stepb;
                step--;
                continue;
            }
            fail(b, is_auto ? "switching to" : "switching under the given --budget to", mode);
            rc = -1;
            break;
        }
        if (step < 0)
            continue;
        sw_ms[done] = t_sw;
        ff_ms[done] = f;
        done++;
        if (!isnan(steady[k]))
            ov_ms[n_ov++] = t_sw + f - steady[k];
        mode_sw[k][mode_n[k]++] = t_sw;
    }
    shoal_stats st1;
    if (shoal_runtime_get_stats(b->rt, &st1) != SHOAL_OK) {
        memset(&st1, 0, sizeof st1);
        rc = -1;
    }
    uint64_t loads = 0, evictions = 0;
    int64_t swap_bytes = 0;
    for (int i = 0; i < st1.n_models && i < st0.n_models; i++) {
        loads += st1.models[i].loads - st0.models[i].loads;
        evictions += st1.models[i].evictions - st0.models[i].evictions;
        swap_bytes += st1.models[i].load_bytes_total - st0.models[i].load_bytes_total;
    }
    cJSON_AddNumberToObject(sw, "budget_bytes", (double)budget);
    cJSON_AddStringToObject(sw, "budget_rule", how);
    cJSON_AddNumberToObject(sw, "budget_grown_bytes", (double)(grown * stepb));
    cJSON_AddNumberToObject(sw, "all_models_bytes", (double)all);
    cJSON_AddNumberToObject(sw, "cycles", b->o->cycles);
    cJSON_AddNumberToObject(sw, "switches", done);
    cJSON_AddNumberToObject(sw, "loads", (double)loads);
    cJSON_AddNumberToObject(sw, "evictions", (double)evictions);
    cJSON_AddNumberToObject(sw, "uploaded_bytes", (double)swap_bytes);
    if (st1.devices)
        cJSON_AddNumberToObject(sw, "device_peak_bytes", (double)st1.devices[0].peak_bytes);
    summary s = summarize(sw_ms, done), f = summarize(ff_ms, done), ov = summarize(ov_ms, n_ov);
    cJSON_AddItemToObject(sw, "switch_ms", summary_json(&s));
    cJSON_AddItemToObject(sw, "first_frame_ms", summary_json(&f));
    cJSON_AddItemToObject(sw, "overhead_ms", summary_json(&ov));
    cJSON *bm = cJSON_AddObjectToObject(sw, "to_mode_switch_ms");
    for (int k = 0; k < b->n_modes; k++) {
        summary m = summarize(mode_sw[k], mode_n[k]);
        cJSON_AddItemToObject(bm, b->mode_names[k], summary_json(&m));
        free(mode_sw[k]);
    }
    shoal_stats_free(&st0);
    shoal_stats_free(&st1);
    free(sw_ms);
    free(ff_ms);
    free(ov_ms);
    return rc;
}

/* --- output -------------------------------------------------------------------------------- */

static double jnum(cJSON *o, const char *path)
{
    /* "a.b.c" */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok && o; tok = strtok(NULL, "."))
        o = cJSON_GetObjectItem(o, tok);
    return o && cJSON_IsNumber(o) ? o->valuedouble : NAN;
}

/* The models the switch phase unloaded so that its budget could apply. */
static void print_unloaded(cJSON *sw)
{
    cJSON *names = cJSON_GetObjectItem(sw, "unloaded");
    printf("  before the budget: unloaded %d unpinned model(s)", cJSON_GetArraySize(names));
    const char *sep = " (";
    for (cJSON *n = names ? names->child : NULL; n; n = n->next, sep = ", ")
        printf("%s%s", sep, cJSON_GetStringValue(n));
    printf("%s; %.1f MiB stayed resident\n", cJSON_GetArraySize(names) ? ")" : "",
           jnum(sw, "resident_after_unload_bytes") / MIB);
}

static void print_tables(bench *b)
{
    cJSON *r = b->root;
    printf("shoal bench: %s on %s (%s), %d iterations after %d warmup\n", b->o->config,
           cJSON_GetStringValue(cJSON_GetObjectItem(r, "device")),
           cJSON_GetStringValue(cJSON_GetObjectItem(r, "device_name")), b->o->iters, b->o->warmup);
    printf("\nload: %.0f ms to all resident (create %.0f ms; upload %.0f ms); first results after %.0f ms\n"
           "  (models load on parallel threads beside the backend's setup: the phases below are each\n"
           "  model's own and overlap)\n",
           jnum(r, "load.total_ms"), jnum(r, "load.create_ms"), jnum(r, "load.upload_ms"),
           jnum(r, "load.to_first_results_ms"));
    printf("  %-14s %8s %8s %8s %8s %8s %8s %8s\n", "model", "parse", "optimize", "compile", "plan", "pack", "upload",
           "1st run");
    cJSON *lm = cJSON_GetObjectItem(cJSON_GetObjectItem(r, "load"), "models");
    for (cJSON *m = lm ? lm->child : NULL; m; m = m->next)
        printf("  %-14s %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f %8.1f\n", m->string, jnum(m, "parse_ms"),
               jnum(m, "optimize_ms"), jnum(m, "compile_ms"), jnum(m, "plan_ms"), jnum(m, "pack_ms"),
               jnum(m, "upload_ms"), jnum(m, "first_run_ms"));
    printf("\nlatency, ms (latency: preprocess + inference + decode; infer: the network%s)\n",
           b->n_models && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(r, "device")), "cpu")
               ? ", with upload, download and sync" : "");
    printf("  %-22s %8s %8s %8s   %8s %8s %8s\n", "", "median", "p90", "p99", "infer", "p90", "p99");
    const char *groups[] = {"models", "modes"};
    for (int g = 0; g < 2; g++) {
        cJSON *grp = cJSON_GetObjectItem(r, groups[g]);
        for (cJSON *m = grp ? grp->child : NULL; m; m = m->next) {
            char label[64];
            snprintf(label, sizeof label, "%s %s", g ? "mode" : "model", m->string);
            printf("  %-22s %8.1f %8.1f %8.1f   %8.2f %8.2f %8.2f", label, jnum(m, "latency_ms.median"),
                   jnum(m, "latency_ms.p90"), jnum(m, "latency_ms.p99"), jnum(m, "infer_ms.median"),
                   jnum(m, "infer_ms.p90"), jnum(m, "infer_ms.p99"));
            if (cJSON_GetObjectItem(m, "device_ms"))   /* the same on the device's clock */
                printf("   device %.2f %.2f %.2f", jnum(m, "device_ms.median"), jnum(m, "device_ms.p90"),
                       jnum(m, "device_ms.p99"));
            printf("\n");
            if (cJSON_GetObjectItem(m, "jpeg_frame_ms"))
                printf("  %-22s %8.1f %8.1f %8.1f   (from %.0f JPEG bytes; the decode: median %.2f, p90 %.2f)\n", "  from JPEG",
                       jnum(m, "jpeg_frame_ms.median"), jnum(m, "jpeg_frame_ms.p90"), jnum(m, "jpeg_frame_ms.p99"),
                       jnum(m, "jpeg_bytes"), jnum(m, "jpeg_decode_ms.median"), jnum(m, "jpeg_decode_ms.p90"));
        }
    }
    cJSON *sw = cJSON_GetObjectItem(r, "switch");
    if (sw && jnum(sw, "switches") > 0) {   /* none measured: the error on stderr says why */
        printf("\nmode switch under a %.1f MiB budget (%s; all models %.1f MiB): %d switches, %d loads, "
               "%d evictions, %.1f MiB uploaded\n",
               jnum(sw, "budget_bytes") / MIB, cJSON_GetStringValue(cJSON_GetObjectItem(sw, "budget_rule")),
               jnum(sw, "all_models_bytes") / MIB, (int)jnum(sw, "switches"), (int)jnum(sw, "loads"),
               (int)jnum(sw, "evictions"), jnum(sw, "uploaded_bytes") / MIB);
        printf("  switch (evict + upload) median %.1f ms, p99 %.1f ms; first frame after it median %.1f ms; "
               "overhead over a steady frame median %.1f ms, p99 %.1f ms\n",
               jnum(sw, "switch_ms.median"), jnum(sw, "switch_ms.p99"), jnum(sw, "first_frame_ms.median"),
               jnum(sw, "overhead_ms.median"), jnum(sw, "overhead_ms.p99"));
        print_unloaded(sw);
        if (jnum(sw, "budget_grown_bytes") > 0)
            printf("  the measured budget was grown by %.1f MiB: a mode did not fit it after others came and went\n",
                   jnum(sw, "budget_grown_bytes") / MIB);
        cJSON *tm = cJSON_GetObjectItem(sw, "to_mode_switch_ms");
        for (cJSON *m = tm ? tm->child : NULL; m; m = m->next)
            printf("    to %-12s median %.1f ms, p99 %.1f ms\n", m->string, jnum(m, "median"), jnum(m, "p99"));
    }
    cJSON *mem = cJSON_GetObjectItem(r, "memory");
    if (mem) {
        printf("\nmemory (all models resident): weights referenced %.1f MiB (unique %.1f, shared %.1f), stored %.1f MiB "
               "(dedup saved %.1f MiB); activation plans max %.1f MiB (sum %.1f MiB); arena %.1f MiB x %d; "
               "device in use %.1f MiB; host cache %.1f MiB\n",
               jnum(mem, "weights_referenced_bytes") / MIB, jnum(mem, "weights_unique_bytes") / MIB,
               jnum(mem, "weights_shared_bytes") / MIB, jnum(mem, "weights_stored_bytes") / MIB,
               jnum(mem, "dedup_saved_bytes") / MIB, jnum(mem, "activations_planned_max_bytes") / MIB,
               jnum(mem, "activations_planned_sum_bytes") / MIB, jnum(mem, "arena_bytes") / MIB,
               (int)jnum(mem, "arena_contexts"), jnum(mem, "device_in_use_bytes") / MIB,
               jnum(mem, "host_cache_bytes") / MIB);
        if (cJSON_IsTrue(cJSON_GetObjectItem(r, "concurrent_models")))
            printf("  a mode's models run concurrently: arena per context %.1f MiB (largest plan %.1f MiB)\n",
                   jnum(mem, "arena_bytes_per_context") / MIB, jnum(mem, "activations_planned_max_bytes") / MIB);
        printf("  process: RSS %.1f MiB, peak RSS %.1f MiB", jnum(mem, "rss_bytes") / MIB, jnum(mem, "peak_rss_bytes") / MIB);
        if (jnum(mem, "gpu_process_bytes") >= 0)
            printf(", GPU process %.1f MiB (NVML)", jnum(mem, "gpu_process_bytes") / MIB);
        printf("\n");
    }
    cJSON *prof = cJSON_GetObjectItem(r, "profile");
    for (cJSON *m = prof ? prof->child : NULL; m; m = m->next) {
        double total = jnum(m, "total_ms");
        printf("\nprofile %s: %.1f ms of kernels per run; Conv at %.1f GFLOP/s\n", m->string, total,
               jnum(m, "conv_gflops_per_s"));
        cJSON *ops = cJSON_GetObjectItem(m, "ops_ms");
        for (cJSON *op = ops ? ops->child : NULL; op; op = op->next)
            if (op->valuedouble >= 0.005 * total)
                printf("  %-24s %8.2f ms %5.1f%%\n", op->string, op->valuedouble, 100 * op->valuedouble / total);
    }
}

/* --- main ---------------------------------------------------------------------------------- */

static int parse(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->config = "configs/aiglasses.yaml";
    o->iters = 20;
    o->warmup = 3;
    o->cycles = 10;
    o->budget = "auto";
    o->label = "shoal";
    o->profile = cli_env_flag("SHOAL_PROFILE");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--json")) { o->json = 1; continue; }
        if (!strcmp(a, "--profile")) { o->profile = 1; continue; }
        if (i + 1 >= argc) {
            fprintf(stderr, "shoal bench: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--mode")) o->mode = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--image")) {
            if (o->n_images == MAX_IMAGES) {
                fprintf(stderr, "shoal bench: at most %d --image options\n", MAX_IMAGES);
                return 2;
            }
            /* MODE=FILE where the part before '=' has no '/', so a path with '=' still reads as a
             * file; no MODE= prefix: every mode's picture */
            const char *eq = strchr(v, '=');
            bench_image *im = &o->images[o->n_images++];
            if (eq && eq > v && !memchr(v, '/', (size_t)(eq - v)) && eq[1]) {
                *im = (bench_image){.mode = v, .mode_len = (size_t)(eq - v), .path = eq + 1};
            } else {
                *im = (bench_image){.mode = NULL, .path = v};
            }
        }
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--label")) o->label = v;
        else if (!strcmp(a, "--budget")) o->budget = v;
        else if (!strcmp(a, "--concurrent")) o->concurrent = v;
        else if (!strcmp(a, "--iters") || !strcmp(a, "--warmup") || !strcmp(a, "--threads") || !strcmp(a, "--cycles")) {
            int *dst = !strcmp(a, "--iters") ? &o->iters : !strcmp(a, "--warmup") ? &o->warmup
                       : !strcmp(a, "--threads") ? &o->threads : &o->cycles;
            int lo = !strcmp(a, "--iters") ? 1 : 0, hi = !strcmp(a, "--threads") ? 1024 : 1000000;
            if (cli_int32("bench", a, v, lo, hi, dst))
                return 2;
        } else {
            fprintf(stderr, "shoal bench: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    sh_config_size budget_size;
    if (strcmp(o->budget, "auto") && strcmp(o->budget, "none") &&
        cli_size("bench", "--budget", o->budget, false, &budget_size))
        return 2;
    if (o->concurrent && strcmp(o->concurrent, "auto") && strcmp(o->concurrent, "on") && strcmp(o->concurrent, "off")) {
        fprintf(stderr, "shoal bench: --concurrent '%s': expected auto, on or off\n", o->concurrent);
        return 2;
    }
    return 0;
}

static bool is_jpeg(const uint8_t *d, size_t n)
{
    return n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF;
}

/* The whole file into memory (malloc'd); -1 with a message on stderr. */
static int read_file(const char *path, uint8_t **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "shoal bench: cannot read %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    *data = malloc((size_t)n);
    *len = *data ? fread(*data, 1, (size_t)n, f) : 0;
    fclose(f);
    if (*len != (size_t)n) {
        fprintf(stderr, "shoal bench: cannot read %s\n", path);
        free(*data);
        *data = NULL;
        return -1;
    }
    return 0;
}

/* Decodes every --image once; the bytes stay where they are a JPEG (the modes' JPEG runs). */
static int load_pictures(bench *b)
{
    for (int p = 0; p < b->o->n_images; p++) {
        const bench_image *im = &b->o->images[p];
        uint8_t *data;
        size_t len;
        char err[512];
        if (read_file(im->path, &data, &len))
            return -1;
        if (shoal_image_decode(data, len, &b->pictures[p], err, sizeof err) != SHOAL_OK) {
            fprintf(stderr, "shoal bench: %s: %s\n", im->path, err);
            free(data);
            return -1;
        }
        if (is_jpeg(data, len)) {
            b->picture_bytes[p] = data;
            b->picture_len[p] = len;
        } else {
            free(data);
        }
    }
    return 0;
}

/* The --image for mode k: its own, else the one for every mode, else -1. A later option wins. */
static int picture_of_mode(const bench *b, int k)
{
    int found = -1;
    const char *name = b->mode_names[k];
    for (int p = 0; p < b->o->n_images; p++) {
        const bench_image *im = &b->o->images[p];
        if (im->mode && strlen(name) == im->mode_len && !strncmp(name, im->mode, im->mode_len))
            return p;
        if (!im->mode)
            found = p;
    }
    return found;
}

static int make_frames(bench *b)
{
    const sh_config *cfg = sh_runtime_config(b->rt);
    for (int p = 0; p < b->o->n_images; p++) {
        const bench_image *im = &b->o->images[p];
        bool known = !im->mode;
        for (int k = 0; k < b->n_modes && !known; k++)
            known = strlen(b->mode_names[k]) == im->mode_len && !strncmp(b->mode_names[k], im->mode, im->mode_len);
        if (!known) {
            fprintf(stderr, "shoal bench: --image %.*s=...: the config has no mode '%.*s'\n", (int)im->mode_len,
                    im->mode, (int)im->mode_len, im->mode);
            return -1;
        }
    }
    if (load_pictures(b))
        return -1;
    /* a model shows the picture of the first mode that lists it */
    int model_picture[MAX_MODELS];
    for (int i = 0; i < b->n_models; i++)
        model_picture[i] = -1;
    for (int k = b->n_modes - 1; k >= 0; k--) {
        b->mode_picture[k] = picture_of_mode(b, k);
        for (size_t i = 0; i < cfg->modes[k].n_models; i++)
            if (b->mode_picture[k] >= 0)
                model_picture[cfg->modes[k].models[i]] = b->mode_picture[k];
    }
    cJSON *inputs = cJSON_AddObjectToObject(b->root, "inputs");
    for (int i = 0; i < b->n_models; i++) {
        const char *src;
        int p = model_picture[i];
        if (p < 0)
            for (int q = 0; q < b->o->n_images; q++)
                p = b->o->images[q].mode ? p : q;
        if (p >= 0) {
            b->frames[i] = shoal_image_wrap(b->pictures[p].rgb, b->pictures[p].width, b->pictures[p].height);
            src = b->o->images[p].path;
        } else if (frame_from_npy(cfg->models[i].path, &b->frames[i]) == 0) {
            src = "reference .input.npy";
        } else if (noise_frame(cfg->models[i].input_w, cfg->models[i].input_h, (uint32_t)i + 1, &b->frames[i]) == 0) {
            src = "seeded noise";
        } else {
            return -1;
        }
        char d[4200];
        snprintf(d, sizeof d, "%dx%d %s", b->frames[i].width, b->frames[i].height, src);
        cJSON_AddStringToObject(inputs, b->model_names[i], d);
    }
    cJSON *mode_inputs = cJSON_AddObjectToObject(b->root, "mode_inputs");
    for (int k = 0; k < b->n_modes; k++) {
        const sh_mode_config *mc = &cfg->modes[k];
        int p = b->mode_picture[k];
        b->mode_frame[k] = p >= 0 ? &b->pictures[p] : &b->frames[mc->n_models ? (int)mc->models[0] : 0];
        char d[4200];
        snprintf(d, sizeof d, "%dx%d %s%s", b->mode_frame[k]->width, b->mode_frame[k]->height,
                 p >= 0 ? b->o->images[p].path : "the first model's input",
                 p >= 0 && b->picture_bytes[p] ? " (JPEG)" : "");
        cJSON_AddStringToObject(mode_inputs, b->mode_names[k], d);
        b->mode_selected[k] = !b->o->mode || !strcmp(b->o->mode, "all") || !strcmp(b->o->mode, b->mode_names[k]);
    }
    if (b->o->mode && strcmp(b->o->mode, "all")) {
        bool any = false;
        for (int k = 0; k < b->n_modes; k++)
            any |= b->mode_selected[k];
        if (!any) {
            fprintf(stderr, "shoal bench: unknown mode '%s'\n", b->o->mode);
            return -1;
        }
    }
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o;
    int rc = parse(argc, argv, &o);
    if (rc)
        return rc;
    bench b = {.o = &o};
    b.root = cJSON_CreateObject();
    b.lat = calloc((size_t)o.iters, sizeof(double));
    b.inf = calloc((size_t)o.iters, sizeof(double));
    b.dev = calloc((size_t)o.iters, sizeof(double));
    if (!b.root || !b.lat || !b.inf || !b.dev) {
        fprintf(stderr, "shoal bench: out of memory\n");
        return 1;
    }
    cJSON_AddStringToObject(b.root, "runner", "shoal");
    char label_buf[1024], config_buf[4096];
    cJSON_AddStringToObject(b.root, "config_name", sh_utf8_clean(o.label, label_buf, sizeof label_buf));
    cJSON_AddStringToObject(b.root, "shoal_version", SHOAL_VERSION);
    cJSON_AddStringToObject(b.root, "config", sh_utf8_clean(o.config, config_buf, sizeof config_buf));
    cJSON_AddNumberToObject(b.root, "iters", o.iters);
    cJSON_AddNumberToObject(b.root, "warmup", o.warmup);
    time_t t = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    cJSON_AddStringToObject(b.root, "date", when);

    sh_err err = {0}, nvml_err = {0};
    double t0 = now_ms();
    /* NVML opens before the runtime so the device's usage without us is known: where NVML
     * hides per-process figures (a PID namespace), used - baseline stands in for them on an
     * otherwise idle GPU. */
    b.gpu_baseline = -1;
    if (!o.device || strcmp(o.device, "cpu")) {
        sh_gpu_sample g0;
        if (sh_nvml_open(NULL, NULL, &b.nv, &nvml_err) == 0 && sh_nvml_sample(b.nv, 0, &g0, &nvml_err) == 0)
            b.gpu_baseline = (int64_t)g0.used;
    }
    rc = -1;
    if (phase_create(&b, o.device) == 0) {
        const char *dev = sh_runtime_backend_name(b.rt);
        bool gpu = strcmp(dev, "cpu") != 0;
        cJSON_AddStringToObject(b.root, "device", gpu ? "cuda" : "cpu");
        if (!gpu) {
            sh_nvml_close(b.nv);
            b.nv = NULL;
        } else if (!b.nv) {
            cJSON_AddStringToObject(b.root, "nvml", nvml_err.msg);
        } else {
            cJSON_AddNumberToObject(b.root, "gpu_used_before_bytes", (double)b.gpu_baseline);
        }
        sh_gpu_sample g;
        if (b.nv && sh_nvml_sample(b.nv, 0, &g, &err) == 0)
            cJSON_AddStringToObject(b.root, "device_name", g.name);
        else
            cJSON_AddStringToObject(b.root, "device_name", gpu ? "unknown GPU" : "host CPU");
        if (!gpu) {
            /* Which kernels ran: oneDNN's effective ISA (ONEDNN_MAX_CPU_ISA may cap it below
             * what the CPU has) beside the CPU's own vector extensions. */
            char feats[160];
            cli_cpu_features(feats, sizeof feats);
            cJSON_AddStringToObject(b.root, "cpu_isa", sh_backend_cpu_isa());
            cJSON_AddStringToObject(b.root, "cpu_flags", feats);
        }
        const sh_config *cfg = sh_runtime_config(b.rt);
        cJSON_AddNumberToObject(b.root, "threads", o.threads > 0 ? o.threads : cfg->inference.threads);
        rc = make_frames(&b);
        if (rc == 0)
            rc = phase_upload(&b);
        if (rc == 0)
            rc = phase_models(&b);
        if (rc == 0 && o.profile)
            rc = phase_profile(&b);
        if (rc == 0)
            rc = phase_modes(&b);
        if (rc == 0)
            memory_snapshot(&b, "memory");
        if (rc == 0 && strcmp(o.budget, "none") && o.cycles > 0)
            rc = phase_switch(&b);
        if (rc == 0)
            memory_snapshot(&b, "memory_end");
    }
    cJSON_AddNumberToObject(b.root, "bench_wall_s", (now_ms() - t0) / 1e3);
    cJSON_AddBoolToObject(b.root, "ok", rc == 0 && b.failures == 0);
    progress_done();
    char *text = cJSON_PrintUnformatted(b.root);
    if (o.out && text) {
        FILE *f = fopen(o.out, "w");
        if (!f || fprintf(f, "%s\n", text) < 0) {
            fprintf(stderr, "shoal bench: cannot write %s\n", o.out);
            rc = -1;
        }
        if (f)
            fclose(f);
    }
    if (o.json)
        printf("%s\n", text ? text : "{}");
    else if (b.rt)
        print_tables(&b);
    free(text);
    for (int i = 0; i < MAX_MODELS; i++)
        shoal_image_free(&b.frames[i]);
    for (int p = 0; p < MAX_IMAGES; p++) {
        shoal_image_free(&b.pictures[p]);
        free(b.picture_bytes[p]);
    }
    sh_nvml_close(b.nv);
    shoal_runtime_destroy(b.rt);
    cJSON_Delete(b.root);
    free(b.lat);
    free(b.inf);
    free(b.dev);
    return rc == 0 && b.failures == 0 ? 0 : 1;
}
