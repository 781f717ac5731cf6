/* Whole models on the GPU against the CPU backend in fp32: every real model in
 * ../shared/real-models (or $SHOAL_REAL_MODELS) and every models/ *.onnx (or $SHOAL_MODELS),
 * same random input, relative L2 of every output <= 1e-2. Also times the CUDA run (graph
 * replay, median of 50) and reports device memory. Exits 77 without a device or models. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "graph/passes.h"
#include "import/onnx_import.h"
#include "harness.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int check_model(sh_backend *cpu, sh_backend *gpu, const char *label, const char *path)
{
    sh_err err = {0};
    sh_graph *g = NULL;
    if (sh_onnx_load_file(NULL, path, &g, &err)) {
        printf("%-28s import: %s\n", label, err.msg);
        return 1;
    }
    for (int i = 0; i < g->n_inputs; i++) {
        sh_tensor *t = &g->tensors[g->inputs[i]];
        for (int d = 0; d < t->shape.ndim; d++)
            if (t->shape.d[d] < 0)
                t->shape.d[d] = 1;
    }
    sh_optimize_params op = sh_optimize_default_params();
    if (sh_graph_optimize(g, &op, &err)) {
        printf("%-28s optimize: %s\n", label, err.msg);
        sh_graph_destroy(g);
        return 1;
    }
    /* YOLOX takes raw 0..255 pixels; the others normalised values */
    float hi = strstr(path, "yolox") ? 255.f : 1.f, lo = strstr(path, "yolox") ? 0.f : -1.f;
    float *in[8] = {0}, *oc[8] = {0}, *og[8] = {0};
    for (int i = 0; i < g->n_inputs && i < 8; i++) {
        size_t n = (size_t)sh_shape_numel(&g->tensors[g->inputs[i]].shape);
        in[i] = malloc(n * 4);
        for (size_t j = 0; j < n; j++)
            in[i][j] = hx_rand(lo, hi);
    }
    for (int i = 0; i < g->n_outputs && i < 8; i++) {
        size_t n = (size_t)sh_shape_numel(&g->tensors[g->outputs[i]].shape);
        oc[i] = malloc(n * 4);
        og[i] = malloc(n * 4);
    }
    hx_run rcpu = {0}, rgpu = {0};
    int bad = 0;
    double worst = 0, med = 0, eager = 0;
    size_t act_bytes = 0, w_bytes = 0, ws_bytes = 0;
    if (hx_prepare(&rcpu, cpu, g, &err) || hx_exec(&rcpu, in, oc, 1, &err)) {
        printf("%-28s cpu: %s\n", label, err.msg);
        bad = 1;
    } else if (hx_prepare(&rgpu, gpu, g, &err) || hx_exec(&rgpu, in, og, 1, &err)) {
        printf("%-28s cuda: %s\n", label, err.msg);
        bad = 1;
    } else {
        for (int t = 0; t < g->n_tensors; t++) {
            w_bytes += rgpu.p->weight_bytes[t];
            if (rgpu.p->alias_of[t] < 0)
                act_bytes += rgpu.p->tensor_bytes[t];
        }
        for (int k = 0; k < g->n_nodes; k++)
            ws_bytes += rgpu.p->workspace_bytes[k];
        for (int i = 0; i < g->n_outputs; i++) {
            size_t n = (size_t)sh_shape_numel(&g->tensors[g->outputs[i]].shape);
            double e = hx_rel_l2(og[i], oc[i], n);
            worst = e > worst ? e : worst;
        }
        /* latency: upload input, run (graph replay), download outputs; median of 50 */
        double ts[50];
        for (int r = 0; r < 50 && !bad; r++) {
            double t0 = now_ms();
            bad |= hx_exec(&rgpu, in, og, 1, &err) != 0;
            ts[r] = now_ms() - t0;
        }
        qsort(ts, 50, sizeof ts[0], cmp_d);
        med = ts[25];
        /* eager (binding change forces a fresh capture; time the steady state via new ids) */
        double t0 = now_ms();
        bad |= hx_exec(&rgpu, in, og, 2, &err) != 0;
        eager = now_ms() - t0;
        for (int i = 0; i < g->n_outputs; i++) {
            size_t n = (size_t)sh_shape_numel(&g->tensors[g->outputs[i]].shape);
            double e = hx_rel_l2(og[i], oc[i], n);
            worst = e > worst ? e : worst;
        }
        bad |= !(worst <= 1e-2);
        printf("%-28s %10.3e %8.3f %10.3f %9.2f %9.2f %8.2f %s\n", label, worst, med, eager,
               w_bytes / 1048576.0, act_bytes / 1048576.0, ws_bytes / 1048576.0, bad ? "FAIL" : "ok");
    }
    hx_release(&rcpu);
    hx_release(&rgpu);
    for (int i = 0; i < 8; i++) {
        free(in[i]);
        free(oc[i]);
        free(og[i]);
    }
    sh_graph_destroy(g);
    return bad;
}

int main(void)
{
    sh_backend_params bp = {.alloc = NULL, .n_threads = 0, .device = 0, .cuda_graphs = true};
    sh_backend gpu, cpu;
    int rc = hx_cuda_or_skip(&gpu, &bp);
    if (rc)
        return rc;
    sh_err err = {0};
    if (sh_backend_cpu_create(&bp, &cpu, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    char real[1024], models[1024];
    const char *e1 = getenv("SHOAL_REAL_MODELS"), *e2 = getenv("SHOAL_MODELS");
    snprintf(real, sizeof real, "%s", e1 ? e1 : SHOAL_SHARED_DIR "/real-models");
    snprintf(models, sizeof models, "%s", e2 ? e2 : SHOAL_MODELS_DIR);
    int failed = 0, n = 0;
    printf("%-28s %10s %8s %10s %9s %9s %8s\n", "model", "rel L2", "run ms", "capture ms", "w MiB",
           "act MiB*", "ws MiB");
    DIR *d = opendir(real);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char path[2048];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s/model.onnx", real, de->d_name);
        if (de->d_name[0] == '.' || stat(path, &st))
            continue;
        failed += check_model(&cpu, &gpu, de->d_name, path);
        n++;
    }
    if (d)
        closedir(d);
    d = opendir(models);
    while (d && (de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".onnx"))
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", models, de->d_name);
        failed += check_model(&cpu, &gpu, de->d_name, path);
        n++;
    }
    if (d)
        closedir(d);
    printf("(* act MiB: sum of unplanned activation tensors, an upper bound of the planned arena)\n");
    sh_backend_destroy(&cpu);
    sh_backend_destroy(&gpu);
    if (n == 0) {
        printf("skip: no models under %s or %s\n", real, models);
        return 77;
    }
    printf("%d of %d models failed\n", failed, n);
    return failed ? 1 : 0;
}
