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

#include <cjson/cJSON.h>

#include "cli/commands.h"
#include "core/alloc.h"
#include "core/error.h"
#include "monitor/nvml.h"
#include "runtime/config.h"

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
            "  --config FILE  check FILE and take its monitor settings (per-model attribution: later)\n");
}

static int parse_seconds(const char *opt, const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = s ? strtod(s, &end) : NAN;
    if (!s || end == s || *end || errno || !isfinite(v) || v < 0) {
        fprintf(stderr, "shoal monitor: %s needs a number of seconds >= 0, got '%s'\n", opt, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
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

int cmd_monitor(int argc, char **argv)
{
    double interval = -1, duration = -1;
    bool json = false;
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--interval")) {
            if (parse_seconds(a, i + 1 < argc ? argv[++i] : NULL, &interval))
                return 2;
            if (interval <= 0) {
                fprintf(stderr, "shoal monitor: --interval must be above 0\n");
                return 2;
            }
        } else if (!strcmp(a, "--duration")) {
            if (parse_seconds(a, i + 1 < argc ? argv[++i] : NULL, &duration))
                return 2;
        } else if (!strcmp(a, "--json")) {
            json = true;
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

    /* ==== HOOK(lead): per-model attribution ================================================
     * With --config, create the runtime from `cfg` here (shoal_runtime_create), run it (a mode
     * cycle or the server's traffic), and each sample below add per model: weights (unique and
     * shared), plan share of the arena, host cache, state; plus the gap between NVML's process
     * usage and the sum of shoal's bytes (CUDA context and library overhead). Nothing here
     * does that yet: --config only validates the file and takes monitor.interval_s. */

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
            cJSON_AddNumberToObject(root, "elapsed_s", now_s() - start);
            cJSON *nvo = cJSON_AddObjectToObject(root, "nvml");
            cJSON_AddBoolToObject(nvo, "available", have_gpu);
            if (have_gpu)
                cJSON_AddStringToObject(nvo, "driver", sh_nvml_driver_version(nv));
            else
                cJSON_AddStringToObject(nvo, "message", nvml_msg);
            gpus = cJSON_AddArrayToObject(root, "gpus");
        }
        for (unsigned i = 0; have_gpu && i < sh_nvml_device_count(nv); i++) {
            sh_gpu_sample g;
            if (sh_nvml_sample(nv, i, &g, &err) != 0) {
                fprintf(stderr, "shoal monitor: %s\n", err.msg);
                status = 1;
                continue;
            }
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
        /* HOOK(lead): per-model rows go here (table) or into root["models"] (JSON). */
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
        if (duration >= 0 && interval * sample_no > duration + 1e-9)
            break;
        /* keep the cadence: sleep to the next multiple of the interval from the start */
        sleep_s(start + interval * sample_no - now_s());
    }
    sh_nvml_close(nv);
    sh_config_destroy(cfg);
    sh_allocator_destroy(alloc);
    return status;
}
