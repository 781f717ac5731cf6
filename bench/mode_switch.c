/* Mode-switch benchmark (issue 4, must show 4): how long making a mode's models resident
 * takes when the budget forces swaps, with the host cache of packed weights on (a swap-in is
 * an upload of cached bytes) and off (the weights are packed again from the compiled model).
 * Not a test: it prints times. Built as build/tests/runtime/bench_mode_switch.
 *
 *   bench_mode_switch [--config FILE] [--cycles N] [--budget-frac F]
 *
 * Default config: the reference set (tests/runtime/data/reference.yaml over models/) when
 * models/ exists, else the tiny set. The budget is F (default 0.6) of the bytes all models
 * take resident together. A switch is timed from the mode change until every model of the
 * new mode is resident (shoal_runtime_load_model, which evicts least recently used unpinned
 * models as a run would); inference is not part of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rt_util.h"
#include "runtime/introspect.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The config text with host_cache set as asked (any `host_cache:` line dropped, one written
 * under `memory:`, which the config must have). Paths stay relative: we run from the config's
 * folder. */
static char *config_text(const char *path, int cache)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *src = malloc((size_t)n + 1);
    char *out = malloc((size_t)n + 64);
    if (!src || !out || fread(src, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(src);
        free(out);
        return NULL;
    }
    fclose(f);
    src[n] = '\0';
    out[0] = '\0';
    int replaced = 0;
    for (char *line = strtok(src, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "host_cache:"))
            continue;   /* dropped; written once under memory: */
        strcat(out, line);
        strcat(out, "\n");
        if (!replaced && !strcmp(line, "memory:")) {
            strcat(out, cache ? "  host_cache: true\n" : "  host_cache: false\n");
            replaced = 1;
        }
    }
    free(src);
    return out;
}

typedef struct result {
    double p50, p99, mean;
    int n;
    double mb_per_switch;
    double create_ms;
} result;

static int bench(const char *yaml, int cycles, double frac, result *out)
{
    char err[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = yaml;
    p.error = err;
    p.error_cap = sizeof err;
    p.preload = 0;
    shoal_runtime_t rt;
    if (shoal_runtime_create(&p, &rt)) {
        fprintf(stderr, "bench_mode_switch: %s\n", err);
        return 1;
    }
    int nm = shoal_runtime_model_count(rt);
    for (int i = 0; i < nm; i++)
        shoal_runtime_load_model(rt, shoal_runtime_model_name(rt, i));
    int64_t all = rt_in_use(rt);
    shoal_runtime_destroy(rt);

    p.preload = 1;
    p.budget_bytes = (int64_t)(frac * (double)all);
    double t0 = now_ms();
    if (shoal_runtime_create(&p, &rt)) {
        fprintf(stderr, "bench_mode_switch: budget %lld: %s\n", (long long)p.budget_bytes, err);
        return 1;
    }
    out->create_ms = now_ms() - t0;
    const sh_config *cfg = sh_runtime_config(rt);
    double *t = calloc((size_t)cycles, sizeof *t);
    if (!t)
        return 1;
    int n = 0;
    uint64_t loads0 = 0, loads1 = 0;
    shoal_stats st;
    shoal_runtime_get_stats(rt, &st);
    int64_t weights_total = 0;
    for (int i = 0; i < st.n_models; i++)
        loads0 += st.models[i].loads;
    shoal_stats_free(&st);
    for (int c = 0; c < cycles; c++) {
        const sh_mode_config *mc = &cfg->modes[c % cfg->n_modes];
        double a = now_ms();
        for (size_t k = 0; k < mc->n_models; k++)
            if (shoal_runtime_load_model(rt, cfg->models[mc->models[k]].name)) {
                fprintf(stderr, "bench_mode_switch: mode %s: %s\n", mc->name, shoal_runtime_last_error(rt));
                return 1;
            }
        t[n++] = now_ms() - a;
    }
    shoal_runtime_get_stats(rt, &st);
    for (int i = 0; i < st.n_models; i++) {
        loads1 += st.models[i].loads;
        weights_total += (int64_t)st.models[i].loads * st.models[i].weight_unique_bytes;
    }
    shoal_stats_free(&st);
    qsort(t, (size_t)n, sizeof *t, cmp);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += t[i];
    out->n = n;
    out->p50 = t[(n - 1) / 2];
    out->p99 = t[(n - 1) * 99 / 100];
    out->mean = sum / n;
    out->mb_per_switch = (double)weights_total / (1024.0 * 1024.0) / n;
    printf("    %d switches, %llu loads, budget %.1f MiB of %.1f MiB all-resident, create %.0f ms\n", n,
           (unsigned long long)(loads1 - loads0), p.budget_bytes / 1048576.0, all / 1048576.0, out->create_ms);
    free(t);
    shoal_runtime_destroy(rt);
    return 0;
}

int main(int argc, char **argv)
{
    const char *config = access(SHOAL_MODELS_DIR "/obstacle.onnx", R_OK) == 0 ? REFERENCE_CONFIG : TINY_CONFIG;
    int cycles = 0;
    double frac = 0.6;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--config")) config = argv[i + 1];
        else if (!strcmp(argv[i], "--cycles")) cycles = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--budget-frac")) frac = atof(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_mode_switch [--config FILE] [--cycles N] [--budget-frac F]\n");
            return 2;
        }
    }
    if (cycles <= 0)
        cycles = strcmp(config, TINY_CONFIG) ? 60 : 600;
    char *abs_config = realpath(config, NULL);
    if (!abs_config) {
        fprintf(stderr, "bench_mode_switch: %s: not found\n", config);
        return 1;
    }
    char *dir = strdup(abs_config);
    *strrchr(dir, '/') = '\0';
    if (chdir(dir) != 0) {
        fprintf(stderr, "bench_mode_switch: cannot enter %s\n", dir);
        return 1;
    }
    printf("mode switch on CPU: %s, %d switches cycling the modes, budget %.0f%% of all-resident\n", abs_config, cycles,
           frac * 100);
    result r[2];
    for (int cache = 1; cache >= 0; cache--) {
        char *yaml = config_text(abs_config, cache);
        if (!yaml)
            return 1;
        printf("  host cache %s:\n", cache ? "on " : "off");
        if (bench(yaml, cycles, frac, &r[cache]))
            return 1;
        printf("    switch time median %.2f ms, p99 %.2f ms, mean %.2f ms; %.2f MiB of weights loaded per switch\n",
               r[cache].p50, r[cache].p99, r[cache].mean, r[cache].mb_per_switch);
        free(yaml);
    }
    printf("  without / with host cache: median %.2fx, p99 %.2fx\n", r[0].p50 / r[1].p50, r[0].p99 / r[1].p99);
    free(dir);
    free(abs_config);
    return 0;
}
