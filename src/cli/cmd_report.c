/* shoal report: builds the runtime from a config, optionally cycles its modes on a generated
 * frame so loads, evictions, swap-ins and latencies are measured rather than zero, then prints
 * (or writes) the JSON memory report with recommendations, or the Prometheus text. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/tuning_env.h"
#include "runtime/config.h"
#include "shoal.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal report [--config FILE] [--out FILE] [--prometheus] [--cycles N] [--device D]\n"
            "                    [--budget SIZE] [--verbose]\n"
            "\n"
            "  --config FILE  the runtime's config (default configs/aiglasses.yaml)\n"
            "  --out FILE     write the report there instead of stdout\n"
            "  --prometheus   the Prometheus text exposition instead of JSON\n"
            "  --cycles N     run every mode N times in turn on a generated 640x480 frame first (default 0)\n"
            "  --device D     cpu, cuda or auto (default: the config's)\n"
            "  --budget SIZE  override memory.budget (\"512MB\", \"60%%\" of the device)\n"
            "  --verbose      print the runtime's log on stderr\n");
}

static void log_stderr(void *user, shoal_log_level level, const char *msg)
{
    (void)user;
    static const char *const names[] = {"debug", "info", "warn", "error"};
    fprintf(stderr, "shoal: %s: %s\n", names[level & 3], msg);
}

/* A smooth gradient with a few blocks: deterministic, and busy enough that detectors and
 * their decoders do real work (an all-grey frame gives no boxes, so NMS would be skipped). */
static int make_frame(shoal_image *img, int w, int h)
{
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    if (!px)
        return -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = px + ((size_t)y * (size_t)w + (size_t)x) * 3;
            bool block = ((x / 80) + (y / 80)) % 3 == 0;
            p[0] = (uint8_t)(block ? 230 : x * 255 / w);
            p[1] = (uint8_t)(block ? 40 : y * 255 / h);
            p[2] = (uint8_t)(block ? 40 : ((x + y) * 255) / (w + h));
        }
    *img = shoal_image_wrap(px, w, h);
    return 0;
}

/* Runs every mode `cycles` times in turn; with no modes, every model. */
static int cycle_modes(shoal_runtime_t rt, const shoal_image *frame, long cycles, const char *who)
{
    int n_modes = shoal_runtime_mode_count(rt), n_models = shoal_runtime_model_count(rt);
    for (long c = 0; c < cycles; c++) {
        int n = n_modes ? n_modes : n_models;
        for (int k = 0; k < n; k++) {
            shoal_results_t res = NULL;
            int rc = n_modes ? shoal_runtime_run_mode(rt, shoal_runtime_mode_name(rt, k), frame, &res)
                             : shoal_runtime_run_model(rt, shoal_runtime_model_name(rt, k), frame, &res);
            if (rc != SHOAL_OK) {
                fprintf(stderr, "shoal %s: %s '%s': %s\n", who, n_modes ? "mode" : "model",
                        n_modes ? shoal_runtime_mode_name(rt, k) : shoal_runtime_model_name(rt, k),
                        shoal_runtime_last_error(rt));
                return rc;
            }
            shoal_results_destroy(res);
        }
    }
    return 0;
}

int cmd_report(int argc, char **argv)
{
    const char *config = NULL, *out_path = NULL, *device = NULL, *budget = NULL;
    bool prometheus = false, verbose = false;
    long long cycles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--prometheus")) {
            prometheus = true;
        } else if (!strcmp(a, "--verbose")) {
            verbose = true;
        } else if (!strcmp(a, "--config") || !strcmp(a, "--out") || !strcmp(a, "--device") ||
                   !strcmp(a, "--budget") || !strcmp(a, "--cycles")) {
            if (!v) {
                fprintf(stderr, "shoal report: %s needs a value\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--config"))
                config = v;
            else if (!strcmp(a, "--out"))
                out_path = v;
            else if (!strcmp(a, "--device"))
                device = v;
            else if (!strcmp(a, "--budget"))
                budget = v;
            else if (cli_int("report", a, v, 0, 1000000, &cycles))
                return 2;
        } else {
            fprintf(stderr, "shoal report: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!config) {
        config = "configs/aiglasses.yaml";
        if (access(config, R_OK) != 0) {
            fprintf(stderr, "shoal report: no --config given and %s is not there\n", config);
            return 2;
        }
    }

    char error[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    if (cli_runtime_tuning("report", &p) != 0)
        return 2;
    p.config_path = config;
    p.device = device;
    p.error = error;
    p.error_cap = sizeof error;
    if (verbose) {
        p.log = log_stderr;
    }
    if (budget) {
        sh_config_size sz;
        if (cli_size("report", "--budget", budget, true, &sz))
            return 2;
        if (sz.kind == SH_SIZE_PERCENT)
            p.budget_fraction = sz.percent / 100.0;
        else
            p.budget_bytes = (int64_t)sz.bytes;
    }
    /* the report is JSON or Prometheus text on stdout: the line goes to a terminal's stderr */
    cli_progress progress;
    cli_progress_start(&progress, stderr, "loading models", 1.0, cli_progress_wanted(STDERR_FILENO, false));
    if (!verbose) {
        p.log = cli_progress_log;
        p.log_user = &progress;
    }
    shoal_runtime_t rt;
    int create_rc = shoal_runtime_create(&p, &rt);
    cli_progress_stop(&progress);
    if (create_rc != SHOAL_OK) {
        fprintf(stderr, "shoal report: %s\n", error);
        return 1;
    }
    int status = 0;
    shoal_image frame = {0};
    if (cycles > 0) {
        if (make_frame(&frame, 640, 480) != 0) {
            fprintf(stderr, "shoal report: out of memory for the frame\n");
            status = 1;
        } else if (cycle_modes(rt, &frame, (long)cycles, "report") != 0) {
            status = 1;
        }
        free(frame.rgb);
    }
    char *text = NULL;
    if (status == 0) {
        text = prometheus ? shoal_runtime_prometheus(rt) : shoal_runtime_report_json(rt);
        if (!text) {
            fprintf(stderr, "shoal report: %s\n", shoal_runtime_last_error(rt)[0] ? shoal_runtime_last_error(rt)
                                                                                 : "out of memory");
            status = 1;
        }
    }
    if (text) {
        FILE *f = out_path ? fopen(out_path, "w") : stdout;
        if (!f) {
            fprintf(stderr, "shoal report: %s: %s\n", out_path, strerror(errno));
            status = 1;
        } else {
            size_t len = strlen(text);
            bool ok = fwrite(text, 1, len, f) == len && (len && text[len - 1] == '\n' ? 1 : fputc('\n', f) != EOF);
            if (out_path) {
                ok = (fclose(f) == 0) && ok;
                if (ok)
                    fprintf(stderr, "shoal report: wrote %s\n", out_path);
            }
            if (!ok) {
                fprintf(stderr, "shoal report: writing %s failed\n", out_path ? out_path : "stdout");
                status = 1;
            }
        }
        shoal_free_string(text);
    }
    shoal_runtime_destroy(rt);
    return status;
}
