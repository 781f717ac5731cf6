/* shoal exec: run one ONNX model on .npy inputs and write its outputs as .npy files. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backends/backend.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/alloc.h"
#include "core/npy.h"
#include "runtime/session.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal exec MODEL.onnx --input NAME=FILE.npy ... --out DIR [--threads N] [--repeat N]\n\n"
            "Runs MODEL on the CPU backend. Each --input binds a graph input by name (a single-input\n"
            "model also takes FILE.npy without NAME=); the .npy dtype must be the input's. Inputs\n"
            "with dynamic dims take the shape of their file.\n"
            "Writes DIR/<output name>.npy per output (format 1.0, little-endian, C order) in the\n"
            "output's own dtype: float32 as '<f4', int64 as '<i8' (not converted), and so on.\n"
            "Characters other than [A-Za-z0-9._-] in output names become '_'.\n"
            "--threads N   worker threads (0 = all cores, default)\n"
            "--repeat N    run N more times after the first and print the mean and best time\n");
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int cmd_exec(int argc, char **argv)
{
    const char *model = NULL, *out_dir = NULL;
    const char *inputs[64];
    int n_inputs = 0, threads = 0, repeat = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (i + 1 < argc && !strcmp(a, "--input")) {
            if (n_inputs == 64) {
                fprintf(stderr, "shoal exec: too many inputs\n");
                return 2;
            }
            inputs[n_inputs++] = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--out")) {
            out_dir = argv[++i];
        } else if (i + 1 < argc && !strcmp(a, "--threads")) {
            if (cli_int32("exec", a, argv[++i], 0, 1024, &threads))
                return 2;
        } else if (i + 1 < argc && !strcmp(a, "--repeat")) {
            if (cli_int32("exec", a, argv[++i], 0, 1000000, &repeat))
                return 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "shoal exec: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else if (!model) {
            model = a;
        } else {
            fprintf(stderr, "shoal exec: unexpected argument '%s'\n", a);
            return 2;
        }
    }
    if (!model || !out_dir) {
        usage(stderr);
        return 2;
    }
    int status = 1;
    sh_allocator *alloc = sh_allocator_create();
    sh_backend be = {0};
    sh_session *s = NULL;
    sh_err err = {0};
    sh_backend_params bp = {.alloc = alloc, .n_threads = threads};
    if (!alloc || sh_backend_cpu_create(&bp, &be, &err)) {
        fprintf(stderr, "shoal exec: %s\n", alloc ? err.msg : "out of memory");
        goto done;
    }
    sh_session_params sp = sh_session_default_params();
    sp.alloc = alloc;
    sp.backend = &be;
    sp.freeze_shape_inputs = true;
    if (sh_session_create_file(&sp, model, &s, &err)) {
        fprintf(stderr, "shoal exec: %s\n", err.msg);
        goto done;
    }
    for (int i = 0; i < n_inputs; i++) {
        char name[512];
        const char *file = inputs[i];
        const char *eq = strchr(inputs[i], '=');
        int idx;
        if (eq) {
            snprintf(name, sizeof name, "%.*s", (int)(eq - inputs[i]), inputs[i]);
            file = eq + 1;
            idx = sh_session_find_input(s, name);
        } else {
            idx = sh_session_n_inputs(s) == 1 ? 0 : -1;
            snprintf(name, sizeof name, "(unnamed)");
        }
        if (idx < 0) {
            fprintf(stderr, "shoal exec: model has no input '%s'\n", name);
            goto done;
        }
        sh_npy t;
        if (sh_npy_read_file(alloc, file, &t, &err)) {
            fprintf(stderr, "shoal exec: %s\n", err.msg);
            goto done;
        }
        int rc = sh_session_set_input(s, idx, t.dtype, &t.shape, t.data, t.nbytes, &err);
        sh_npy_free(alloc, &t);
        if (rc) {
            fprintf(stderr, "shoal exec: %s\n", err.msg);
            goto done;
        }
    }
    double t0 = now_ms();
    if (sh_session_run(s, &err)) {
        fprintf(stderr, "shoal exec: %s\n", err.msg);
        goto done;
    }
    double first = now_ms() - t0, best = 1e300, total = 0;
    for (int r = 0; r < repeat; r++) {
        double t1 = now_ms();
        if (sh_session_run(s, &err)) {
            fprintf(stderr, "shoal exec: %s\n", err.msg);
            goto done;
        }
        double dt = now_ms() - t1;
        total += dt;
        best = dt < best ? dt : best;
    }
    if (repeat > 0)
        fprintf(stderr, "first run (compile + run) %.2f ms; %d runs: mean %.2f ms, best %.2f ms (%d threads)\n",
                first, repeat, total / repeat, best, threads);
    if (mkdir(out_dir, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "shoal exec: cannot create %s: %s\n", out_dir, strerror(errno));
        goto done;
    }
    for (int i = 0; i < sh_session_n_outputs(s); i++) {
        sh_tensor_info info;
        const void *data;
        size_t nb;
        if (sh_session_get_output(s, i, &info, &data, &nb, &err)) {
            fprintf(stderr, "shoal exec: %s\n", err.msg);
            goto done;
        }
        char fname[512], path[4096];
        snprintf(fname, sizeof fname, "%s", info.name);
        for (char *c = fname; *c; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                  *c == '_' || *c == '-'))
                *c = '_';
        snprintf(path, sizeof path, "%s/%s.npy", out_dir, fname);
        if (sh_npy_write_file(path, info.dtype, &info.shape, data, &err)) {
            fprintf(stderr, "shoal exec: %s\n", err.msg);
            goto done;
        }
        printf("%s\n", path);
    }
    status = 0;
done:
    sh_session_destroy(s);
    sh_backend_destroy(&be);
    sh_allocator_destroy(alloc);
    return status;
}
