/* shoal monitor: a live table of device memory per GPU (like the original system's
 * monitor_gpu.py), this process's share, and the host's memory; or one JSON object per
 * sample with --json. Without NVML it says so once and keeps printing the host figures. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/tuning_env.h"
#include "core/alloc.h"
#include "core/error.h"
#include "monitor/nvml.h"
#include "runtime/config.h"
#include "shoal.h"

/* The CLI owns the process, so a signal flag is the one global here; the library has none. */
static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal monitor [--interval S] [--duration S] [--json] [--config FILE]\n"
            "\n"
            "  --interval S   seconds between samples (default: the config's monitor.interval_s, else 5)\n"
            "  --duration S   stop after S seconds (default: until interrupted); 0 takes one sample\n"
            "  --json         one JSON object per sample, one per line\n"
            "  --config FILE  run the runtime of FILE (one mode per sample, in turn, on a generated frame)\n"
            "                 and show shoal's per-model attribution beside the device figures; with\n"
            "                 monitor.report_path set, the memory report (as `shoal report`) is\n"
            "                 rewritten there after every sample\n"
            "  --device D     with --config: cpu, cuda or auto (default: the config's)\n"
            "  --no-run       with --config: load the preload list only, run nothing\n");
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);   /* a signal cuts it short, which is what we want */
}

#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

static void print_header(bool have_gpu)
{
    if (have_gpu) {
        printf("%-8s | %-3s | %10s | %10s | %10s | %6s | %6s | %12s\n", "time", "GPU", "total MiB", "used MiB",
               "free MiB", "usage", "util", "process MiB");
        printf("---------+-----+------------+------------+------------+--------+--------+-------------\n");
    }
}

static cJSON *host_json(const sh_host_sample *h)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rss_bytes", (double)h->rss);
    cJSON_AddNumberToObject(o, "peak_rss_bytes", (double)h->peak_rss);
    cJSON_AddNumberToObject(o, "total_bytes", (double)h->total);
    cJSON_AddNumberToObject(o, "available_bytes", (double)h->available);
    return o;
}

static cJSON *gpu_json(const sh_gpu_sample *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "index", g->index);
    cJSON_AddStringToObject(o, "name", g->name);
    cJSON_AddNumberToObject(o, "total_bytes", (double)g->total);
    cJSON_AddNumberToObject(o, "used_bytes", (double)g->used);
    cJSON_AddNumberToObject(o, "free_bytes", (double)g->free);
    cJSON_AddNumberToObject(o, "reserved_bytes", (double)g->reserved);
    cJSON_AddNumberToObject(o, "usage_percent", g->total ? 100.0 * (double)g->used / (double)g->total : 0.0);
    if (g->util_gpu >= 0) {
        cJSON_AddNumberToObject(o, "util_gpu_percent", g->util_gpu);
        cJSON_AddNumberToObject(o, "util_memory_percent", g->util_mem);
    } else {
        cJSON_AddNullToObject(o, "util_gpu_percent");
        cJSON_AddNullToObject(o, "util_memory_percent");
    }
    if (g->process_used >= 0)
        cJSON_AddNumberToObject(o, "process_bytes", (double)g->process_used);
    else
        cJSON_AddNullToObject(o, "process_bytes");
    cJSON_AddNumberToObject(o, "processes", g->n_processes);
    return o;
}

/* monitor.report_path: the runtime's memory report (as `shoal report` prints it) after every
 * sample, replaced whole (written beside it, then renamed) so a reader never sees half. */
static int write_report(shoal_runtime_t rt, const char *path)
{
    char *text = shoal_runtime_report_json(rt);
    if (!text) {
        fprintf(stderr, "shoal monitor: report: %s\n", shoal_runtime_last_error(rt));
        return -1;
    }
    char tmp[4096];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = n > 0 && (size_t)n < sizeof tmp ? fopen(tmp, "w") : NULL;
    int rc = -1;
    if (!f) {
        fprintf(stderr, "shoal monitor: monitor.report_path %s: %s\n", path, strerror(errno));
    } else {
        size_t len = strlen(text);
        bool ok = fwrite(text, 1, len, f) == len && fputc('\n', f) != EOF;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, path) == 0)
            rc = 0;
        else
            fprintf(stderr, "shoal monitor: monitor.report_path %s: %s\n", path, strerror(errno));
    }
    shoal_free_string(text);
    return rc;
}

/* --- per-model attribution (--config) ---------------------------------------------------- */

static const char *state_str(shoal_model_state s)
{
    return s == SHOAL_MODEL_RESIDENT ? "resident" : s == SHOAL_MODEL_CACHED ? "cached" : "unloaded";
}

/* A deterministic frame: gradient and blocks (see cmd_report.c). */
static uint8_t *make_frame(int w, int h)
{
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    for (int y = 0; px && y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3;
            bool block = ((x / 80) + (y / 80)) % 3 == 0;
            p[0] = (uint8_t)(block ? 230 : x * 255 / w);
            p[1] = (uint8_t)(block ? 40 : y * 255 / h);
            p[2] = (uint8_t)(block ? 40 : ((x + y) * 255) / (w + h));
        }
    return px;
}

/* What shoal accounts for in the memory the gap is measured against: on a GPU its device
 * bytes (NVML's process figure covers device memory only); on the CPU everything is host
 * memory, so the device bytes plus the host cache. */
static int64_t accounted_bytes(const shoal_stats *st, bool gpu_runtime)
{
    const shoal_device_stats *d = &st->devices[0];
    return d->in_use_bytes + (gpu_runtime ? 0 : d->host_cache_bytes);
}

static void print_models(const shoal_stats *st, const char *hhmmss)
{
    const shoal_device_stats *d = &st->devices[0];
    printf("%-8s | %-16s | %-8s | %9s | %9s | %9s | %14s | %9s | %5s | %5s\n", hhmmss, "model (MiB)", "state", "weights",
           "unique", "shared", "plan (share)", "host cache", "loads", "evict");
    for (int i = 0; i < st->n_models; i++) {
        const shoal_model_stats *m = &st->models[i];
        char plan[32];
        snprintf(plan, sizeof plan, "%.1f (%.0f%%)", MIB(m->plan_bytes),
                 d->arena_bytes > 0 ? 100.0 * (double)m->plan_bytes / (double)d->arena_bytes : 0.0);
        printf("%-8s | %-16.16s | %-8s | %9.1f | %9.1f | %9.1f | %14s | %9.1f | %5llu | %5llu\n", "", m->name,
               state_str(m->state), MIB(m->weight_bytes), MIB(m->weight_unique_bytes), MIB(m->weight_shared_bytes), plan,
               MIB(m->host_cache_bytes), (unsigned long long)m->loads, (unsigned long long)m->evictions);
    }
    printf("%-8s | shoal %s: in use %.1f MiB (weights %.1f, arena %.1f, staging %.1f), peak %.1f MiB, budget %s, "
           "host cache %.1f MiB\n",
           "", d->name, MIB(d->in_use_bytes), MIB(d->weights_bytes), MIB(d->arena_bytes), MIB(d->staging_bytes),
           MIB(d->peak_bytes), d->budget_bytes > 0 ? "set" : "unlimited", MIB(d->host_cache_bytes));
    if (d->budget_bytes > 0)
        printf("%-8s | budget %.1f MiB, %.1f%% in use\n", "", MIB(d->budget_bytes),
               100.0 * (double)d->in_use_bytes / (double)d->budget_bytes);
}

static cJSON *models_json(const shoal_stats *st)
{
    cJSON *arr = cJSON_CreateArray();
    const shoal_device_stats *d = &st->devices[0];
    for (int i = 0; arr && i < st->n_models; i++) {
        const shoal_model_stats *m = &st->models[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", m->name);
        cJSON_AddStringToObject(o, "state", state_str(m->state));
        cJSON_AddBoolToObject(o, "pinned", m->pinned);
        cJSON_AddNumberToObject(o, "weight_bytes", (double)m->weight_bytes);
        cJSON_AddNumberToObject(o, "weight_unique_bytes", (double)m->weight_unique_bytes);
        cJSON_AddNumberToObject(o, "weight_shared_bytes", (double)m->weight_shared_bytes);
        cJSON_AddNumberToObject(o, "plan_bytes", (double)m->plan_bytes);
        cJSON_AddNumberToObject(o, "plan_share_percent",
                                d->arena_bytes > 0 ? 100.0 * (double)m->plan_bytes / (double)d->arena_bytes : 0.0);
        cJSON_AddNumberToObject(o, "host_cache_bytes", (double)m->host_cache_bytes);
        cJSON_AddNumberToObject(o, "loads", (double)m->loads);
        cJSON_AddNumberToObject(o, "evictions", (double)m->evictions);
        cJSON_AddNumberToObject(o, "runs", (double)m->runs);
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

static cJSON *shoal_json(const shoal_stats *st, bool gpu_runtime)
{
    const shoal_device_stats *d = &st->devices[0];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "device", d->name);
    cJSON_AddNumberToObject(o, "budget_bytes", (double)d->budget_bytes);
    cJSON_AddNumberToObject(o, "in_use_bytes", (double)d->in_use_bytes);
    cJSON_AddNumberToObject(o, "peak_bytes", (double)d->peak_bytes);
    cJSON_AddNumberToObject(o, "weights_bytes", (double)d->weights_bytes);
    cJSON_AddNumberToObject(o, "arena_bytes", (double)d->arena_bytes);
    cJSON_AddNumberToObject(o, "staging_bytes", (double)d->staging_bytes);
    cJSON_AddNumberToObject(o, "host_cache_bytes", (double)d->host_cache_bytes);
    cJSON_AddNumberToObject(o, "accounted_bytes", (double)accounted_bytes(st, gpu_runtime));
    return o;
}

int cmd_monitor(int argc, char **argv)
{
    double interval = -1, duration = -1;
    bool json = false, no_run = false;
    const char *config_path = NULL, *device = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--interval")) {
            if (cli_double("monitor", a, i + 1 < argc ? argv[++i] : NULL, 0.001, 86400.0, &interval))
                return 2;
        } else if (!strcmp(a, "--duration")) {
            if (cli_double("monitor", a, i + 1 < argc ? argv[++i] : NULL, 0.0, 1e9, &duration))
                return 2;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--no-run")) {
            no_run = true;
        } else if (!strcmp(a, "--device")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "shoal monitor: --device needs cpu, cuda or auto\n");
                return 2;
            }
            device = argv[++i];
        } else if (!strcmp(a, "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "shoal monitor: --config needs a file\n");
                return 2;
            }
            config_path = argv[++i];
        } else {
            fprintf(stderr, "shoal monitor: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }

    sh_allocator *alloc = sh_allocator_create();
    if (!alloc) {
        fprintf(stderr, "shoal monitor: out of memory\n");
        return 1;
    }
    sh_err err = {0};
    sh_config *cfg = NULL;
    if (config_path) {
        if (sh_config_load_file(alloc, config_path, &cfg, &err) != 0) {
            fprintf(stderr, "shoal monitor: %s\n", err.msg);
            sh_allocator_destroy(alloc);
            return 1;
        }
        if (interval < 0)
            interval = cfg->monitor.interval_s;
    }
    if (interval < 0)
        interval = 5.0;

    /* Per-model attribution: the runtime of the config runs here, one mode per sample in
     * turn, and each sample shows what shoal accounts for per model beside the device's own
     * figures; the gap between the process's usage and shoal's bytes is the CUDA context and
     * library overhead on a GPU, or code, libraries, graphs and plans on the host. */
    shoal_runtime_t rt = NULL;
    cli_progress progress;   /* the runtime's log sink for its whole life, so it lives as long */
    uint8_t *frame_px = NULL;
    shoal_image frame = {0};
    if (config_path) {
        char error[1024] = "";
        shoal_runtime_params p = shoal_runtime_default_params();
        p.config_path = config_path;
        p.device = device;
        p.error = error;
        p.error_cap = sizeof error;
        cli_progress_start(&progress, stderr, "loading models", 1.0, cli_progress_wanted(STDERR_FILENO, json));
        p.log = cli_progress_log;
        p.log_user = &progress;
        int create_rc = cli_runtime_tuning("monitor", &p) != 0 ? SHOAL_ERR_INVALID_ARG : shoal_runtime_create(&p, &rt);
        cli_progress_stop(&progress);
        if (create_rc != SHOAL_OK) {
            if (error[0])
                fprintf(stderr, "shoal monitor: %s\n", error);
            sh_config_destroy(cfg);
            sh_allocator_destroy(alloc);
            return 1;
        }
        if (!no_run && !(frame_px = make_frame(640, 480))) {
            fprintf(stderr, "shoal monitor: out of memory\n");
            shoal_runtime_destroy(rt);
            sh_config_destroy(cfg);
            sh_allocator_destroy(alloc);
            return 1;
        }
        frame = shoal_image_wrap(frame_px, 640, 480);
    }

    sh_nvml *nv = NULL;
    bool have_gpu = sh_nvml_open(alloc, NULL, &nv, &err) == 0;
    char nvml_msg[SH_ERR_MSG_MAX];
    snprintf(nvml_msg, sizeof nvml_msg, "%s", have_gpu ? "" : err.msg);
    if (!have_gpu && !json)
        printf("%s\nShowing host memory only.\n", nvml_msg);
    else if (have_gpu && !json)
        printf("NVML: %u GPU(s), driver %s\n", sh_nvml_device_count(nv), sh_nvml_driver_version(nv));

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int status = 0;
    double start = now_s();
    unsigned sample_no = 0;
    print_header(have_gpu && !json);
    while (!g_stop) {
        /* A sleep may overrun its tick: the clock, read once here, decides whether the sample
         * still starts within --duration and is the sample's elapsed time. */
        double elapsed = now_s() - start;
        if (sample_no > 0 && duration >= 0 && elapsed > duration + 1e-9)
            break;
        time_t wall = time(NULL);
        struct tm tmv;
        localtime_r(&wall, &tmv);
        char hhmmss[16], iso[40];
        strftime(hhmmss, sizeof hhmmss, "%H:%M:%S", &tmv);
        strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S%z", &tmv);

        sh_host_sample host;
        bool have_host = sh_host_sample_read(&host, &err) == 0;
        cJSON *root = json ? cJSON_CreateObject() : NULL;
        cJSON *gpus = NULL;
        if (root) {
            cJSON_AddStringToObject(root, "time", iso);
            cJSON_AddNumberToObject(root, "elapsed_s", elapsed);
            cJSON *nvo = cJSON_AddObjectToObject(root, "nvml");
            cJSON_AddBoolToObject(nvo, "available", have_gpu);
            if (have_gpu)
                cJSON_AddStringToObject(nvo, "driver", sh_nvml_driver_version(nv));
            else
                cJSON_AddStringToObject(nvo, "message", nvml_msg);
            gpus = cJSON_AddArrayToObject(root, "gpus");
        }
        sh_gpu_sample gpu0 = {.process_used = -1};
        for (unsigned i = 0; have_gpu && i < sh_nvml_device_count(nv); i++) {
            sh_gpu_sample g;
            if (sh_nvml_sample(nv, i, &g, &err) != 0) {
                fprintf(stderr, "shoal monitor: %s\n", err.msg);
                status = 1;
                continue;
            }
            if (i == 0)   /* the runtime uses device 0 ("cuda:0") */
                gpu0 = g;
            if (gpus) {
                cJSON_AddItemToArray(gpus, gpu_json(&g));
                continue;
            }
            char util[16] = "n/a", proc[24] = "n/a";
            if (g.util_gpu >= 0)
                snprintf(util, sizeof util, "%d%%", g.util_gpu);
            if (g.process_used >= 0)
                snprintf(proc, sizeof proc, "%.0f", MIB(g.process_used));
            printf("%-8s | %-3u | %10.0f | %10.0f | %10.0f | %5.1f%% | %6s | %12s\n", hhmmss, i, MIB(g.total),
                   MIB(g.used), MIB(g.free), g.total ? 100.0 * (double)g.used / (double)g.total : 0.0, util, proc);
        }
        shoal_stats st;
        bool have_stats = false, gpu_runtime = false;
        if (rt) {
            int n_modes = shoal_runtime_mode_count(rt);
            if (frame_px && n_modes > 0) {
                const char *mode = shoal_runtime_mode_name(rt, (int)(sample_no % (unsigned)n_modes));
                shoal_results_t res = NULL;
                if (shoal_runtime_run_mode(rt, mode, &frame, &res) != SHOAL_OK) {
                    fprintf(stderr, "shoal monitor: mode '%s': %s\n", mode, shoal_runtime_last_error(rt));
                    status = 1;
                }
                shoal_results_destroy(res);
                if (!json)
                    printf("%-8s | ran mode %s\n", hhmmss, mode);
            }
            have_stats = shoal_runtime_get_stats(rt, &st) == SHOAL_OK;
            if (cfg->monitor.report_path && write_report(rt, cfg->monitor.report_path) != 0)
                status = 1;
            gpu_runtime = have_stats && strcmp(st.devices[0].name, "cpu") != 0;
        }
        if (have_stats) {
            int64_t acc = accounted_bytes(&st, gpu_runtime);
            /* the gap: what the process holds beyond shoal's accounted bytes */
            int64_t proc = -1;
            const char *basis = NULL;
            if (gpu_runtime && have_gpu && gpu0.process_used >= 0) {
                proc = gpu0.process_used;
                basis = "NVML process usage";
            } else if (!gpu_runtime && have_host) {
                proc = (int64_t)host.rss;
                basis = "process RSS";
            }
            if (root) {
                cJSON *sj = shoal_json(&st, gpu_runtime);
                if (proc >= 0) {
                    cJSON_AddStringToObject(sj, "gap_basis", basis);
                    cJSON_AddNumberToObject(sj, "process_bytes", (double)proc);
                    cJSON_AddNumberToObject(sj, "gap_bytes", (double)(proc - acc));
                } else {
                    cJSON_AddNullToObject(sj, "gap_bytes");
                }
                cJSON_AddItemToObject(root, "shoal", sj);
                cJSON_AddItemToObject(root, "models", models_json(&st));
            } else {
                print_models(&st, hhmmss);
                if (proc >= 0)
                    printf("%-8s | gap: %s %.1f MiB - shoal %.1f MiB = %.1f MiB (%s)\n", "", basis, MIB(proc), MIB(acc),
                           MIB(proc - acc),
                           proc < acc ? "negative: reserved pages not touched yet"
                           : gpu_runtime ? "CUDA context, cuDNN/cuBLAS, allocator rounding"
                                         : "code, libraries, parsed graphs and plans, allocator overhead");
                else if (gpu_runtime)
                    printf("%-8s | gap: unknown (NVML does not show this process's usage)\n", "");
            }
            shoal_stats_free(&st);
        }
        if (root) {
            if (have_host)
                cJSON_AddItemToObject(root, "host", host_json(&host));
            else
                cJSON_AddNullToObject(root, "host");
            char *text = cJSON_PrintUnformatted(root);
            if (text) {
                puts(text);
                cJSON_free(text);
            }
            cJSON_Delete(root);
        } else if (have_host) {
            printf("%-8s | host | process RSS %.0f MiB (peak %.0f MiB) | host %.0f MiB, available %.0f MiB\n",
                   hhmmss, MIB(host.rss), MIB(host.peak_rss), MIB(host.total), MIB(host.available));
        } else {
            fprintf(stderr, "shoal monitor: %s\n", err.msg);
        }
        fflush(stdout);
        sample_no++;
        /* Keep the cadence on the clock: the next sample is at the next multiple of the
         * interval from the start that is still ahead (a sample that ran longer than the
         * interval skips the ticks it overran), and none starts after --duration. */
        double t = now_s();
        double tick = ceil((t - start) / interval + 1e-9);
        double next = start + interval * (tick > (double)sample_no ? tick : (double)sample_no);
        if (duration >= 0 && next - start > duration + 1e-9)
            break;
        sleep_s(next - now_s());
    }
    sh_nvml_close(nv);
    shoal_runtime_destroy(rt);
    free(frame_px);
    sh_config_destroy(cfg);
    sh_allocator_destroy(alloc);
    return status;
}
