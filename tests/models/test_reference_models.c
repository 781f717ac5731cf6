/* Issue 3, must show 1: the CPU outputs of the five reference models (models/, written by
 * tools/export_models.py) equal PyTorch's outputs saved beside them: relative L2 error
 * ||shoal - torch|| / ||torch|| below 1e-4 on every output.
 *
 * models/MANIFEST.json names each model's ONNX file, its input .npy and its output .npys in
 * graph output order. Skipped (77) when models/ has not been generated. Each model runs once
 * through a session (import, optimize, compile, CPU backend); an output left unwritten would
 * keep the NaN poison the comparison starts from.
 *
 *   test_reference_models [MODEL...]     (default: every model of the manifest) */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "core/npy.h"
#include "runtime/session.h"

#define TOL 1e-4

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 0 when every output is within TOL; prints one line per output. */
static int check_model(sh_allocator *a, const sh_backend *be, const char *name, const cJSON *m)
{
    char path[1024];
    sh_err err = {0};
    const cJSON *file = cJSON_GetObjectItem(m, "file"), *input = cJSON_GetObjectItem(m, "input"),
                *outputs = cJSON_GetObjectItem(m, "outputs");
    const cJSON *in_file = input ? cJSON_GetObjectItem(input, "file") : NULL;
    if (!cJSON_IsString(file) || !cJSON_IsString(in_file) || !cJSON_IsArray(outputs)) {
        fprintf(stderr, "%s: manifest entry lacks file, input.file or outputs\n", name);
        return 1;
    }
    snprintf(path, sizeof path, "%s/%s", SHOAL_MODELS_DIR, file->valuestring);
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = be;
    sh_session *s = NULL;
    double t0 = seconds();
    if (sh_session_create_file(&sp, path, &s, &err)) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        return 1;
    }
    sh_npy x = {0};
    snprintf(path, sizeof path, "%s/%s", SHOAL_MODELS_DIR, in_file->valuestring);
    int rc = sh_npy_read_file(a, path, &x, &err);
    if (!rc)
        rc = sh_session_set_input(s, 0, x.dtype, &x.shape, x.data, x.nbytes, &err);
    double t1 = seconds();
    if (!rc)
        rc = sh_session_run(s, &err);
    double t2 = seconds();
    sh_npy_free(a, &x);
    if (rc) {
        fprintf(stderr, "%s: %s\n", name, err.msg);
        sh_session_destroy(s);
        return 1;
    }
    int bad = 0, n_out = cJSON_GetArraySize(outputs);
    if (n_out != sh_session_n_outputs(s)) {
        fprintf(stderr, "%s: the manifest lists %d outputs, the model has %d\n", name, n_out, sh_session_n_outputs(s));
        bad = 1;
    }
    for (int i = 0; i < n_out && !bad; i++) {
        const cJSON *o = cJSON_GetArrayItem(outputs, i);
        const cJSON *of = cJSON_GetObjectItem(o, "file");
        sh_npy ref = {0};
        snprintf(path, sizeof path, "%s/%s", SHOAL_MODELS_DIR, cJSON_IsString(of) ? of->valuestring : "?");
        if (sh_npy_read_file(a, path, &ref, &err)) {
            fprintf(stderr, "%s: %s\n", name, err.msg);
            bad = 1;
            break;
        }
        sh_tensor_info info;
        const void *data;
        size_t nbytes;
        if (sh_session_get_output(s, i, &info, &data, &nbytes, &err)) {
            fprintf(stderr, "%s: %s\n", name, err.msg);
            bad = 1;
        } else if (ref.dtype != SH_DT_FLOAT32 || info.dtype != SH_DT_FLOAT32 || nbytes != ref.nbytes) {
            fprintf(stderr, "%s: output %d (%s): %zu bytes of %s, the reference has %zu bytes of %s\n", name, i,
                    info.name, nbytes, sh_dtype_name(info.dtype), ref.nbytes, sh_dtype_name(ref.dtype));
            bad = 1;
        } else {
            const float *y = data, *r = ref.data;
            size_t n = nbytes / sizeof(float);
            double num = 0, den = 0, maxabs = 0;
            size_t nonfinite = 0;
            for (size_t k = 0; k < n; k++) {
                double d = (double)y[k] - (double)r[k];
                if (!isfinite(y[k]))
                    nonfinite++;
                num += d * d;
                den += (double)r[k] * r[k];
                if (fabs(d) > maxabs)
                    maxabs = fabs(d);
            }
            double rel = den > 0 ? sqrt(num / den) : sqrt(num);
            int ok = !nonfinite && rel < TOL;
            printf("%-14s output %d %-10s %9zu values  rel L2 %.3g  max |diff| %.3g  %s\n", name, i, info.name, n, rel,
                   maxabs, ok ? "ok" : "FAIL");
            if (nonfinite)
                printf("               %zu non-finite values\n", nonfinite);
            bad |= !ok;
        }
        sh_npy_free(a, &ref);
    }
    printf("%-14s create %.1f s, run %.1f s\n", name, t1 - t0, t2 - t1);
    sh_session_destroy(s);
    return bad;
}

int main(int argc, char **argv)
{
    char *manifest = read_text(SHOAL_MODELS_DIR "/MANIFEST.json");
    if (!manifest) {
        fprintf(stderr, "skipped: %s/MANIFEST.json is absent (make models)\n", SHOAL_MODELS_DIR);
        return 77;
    }
    cJSON *root = cJSON_Parse(manifest);
    free(manifest);
    const cJSON *models = root ? cJSON_GetObjectItem(root, "models") : NULL;
    if (!cJSON_IsObject(models)) {
        fprintf(stderr, "MANIFEST.json: no \"models\" object\n");
        cJSON_Delete(root);
        return 1;
    }
    sh_allocator *a = sh_allocator_create();
    sh_backend be;
    sh_err err = {0};
    sh_backend_params bp = {.alloc = a};
    if (!a || sh_backend_cpu_create(&bp, &be, &err)) {
        fprintf(stderr, "cpu backend: %s\n", err.msg);
        return 1;
    }
    int failures = 0, checked = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, models)
    {
        int wanted = argc < 2;
        for (int i = 1; i < argc; i++)
            wanted |= !strcmp(argv[i], m->string);
        if (!wanted)
            continue;
        failures += check_model(a, &be, m->string, m);
        checked++;
        fflush(stdout);
    }
    sh_backend_destroy(&be);
    cJSON_Delete(root);
    if (sh_allocator_stats(a).in_use)
        fprintf(stderr, "leak: %zu bytes still allocated\n", sh_allocator_stats(a).in_use);
    sh_allocator_destroy(a);
    printf("%d model%s checked, %d failed\n", checked, checked == 1 ? "" : "s", failures);
    return failures || !checked ? 1 : 0;
}
