/* shoal test-onnx: run ONNX conformance test folders (model.onnx + test_data_set_N/{input,output}_K.pb)
 * on the CPU backend and compare with the reference outputs. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/backend.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "core/alloc.h"
#include "import/tensor_pb.h"
#include "runtime/session.h"

typedef struct opts {
    double rtol, atol, max_rel_l2;
    int threads;
    bool verbose;
} opts;

typedef struct counts {
    int passed, failed, skipped;
} counts;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal test-onnx [--rtol R] [--atol A] [--max-rel-l2 E] [--threads N] [-v] PATH...\n\n"
            "PATH is an ONNX test folder (model.onnx + test_data_set_*/input_K.pb, output_K.pb) or a\n"
            "folder of such folders (searched two levels deep, sorted). input_K feeds the K-th graph\n"
            "input that has no initializer; output_K is graph output K.\n\n"
            "An element passes when |out - ref| <= atol + rtol * |ref|, as ONNX's own runner checks\n"
            "(defaults: rtol 1e-3, atol 1e-7); integer and bool outputs must match exactly.\n"
            "--max-rel-l2 E also requires ||out - ref|| / ||ref|| < E for float outputs.\n"
            "--threads N   CPU worker threads (0 = all cores, the default).\n"
            "-v            print error statistics for passing tests too.\n\n"
            "Prints PASS/FAIL/SKIP per test, then 'N passed, M failed, K skipped'. SKIP means the\n"
            "model uses an op, attribute or dtype shoal does not implement. Exit status 1 if any failed.\n");
}

/* "a/b" into buf; false when it does not fit (the caller reports the path as unreadable). */
static bool join(char *buf, size_t cap, const char *a, const char *b)
{
    int n = snprintf(buf, cap, "%s/%s", a, b);
    return n >= 0 && (size_t)n < cap;
}

static bool is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the entries of dir that start with prefix (malloc'd; tool code). */
static char **list_dir(const char *dir, const char *prefix, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    int cap = 16;
    char **v = malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        if (e->d_name[0] == '.' || strncmp(e->d_name, prefix, strlen(prefix)))
            continue;
        if (*n == cap) {
            cap *= 2;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v)
        qsort(v, (size_t)*n, sizeof *v, cmp_str);
    return v;
}

static void free_list(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

typedef struct cmp_result {
    double max_abs, max_rel, rel_l2;
    int64_t n_bad;
} cmp_result;

static void compare(const void *out, const void *ref, sh_dtype dt, int64_t n, const opts *o, cmp_result *r)
{
    bool exact = !(dt == SH_DT_FLOAT32 || dt == SH_DT_FLOAT64 || dt == SH_DT_FLOAT16);
    double se = 0.0, sr = 0.0;
    memset(r, 0, sizeof *r);
    for (int64_t i = 0; i < n; i++) {
        double a = sh_dtype_load_f64(out, dt, i), b = sh_dtype_load_f64(ref, dt, i);
        if (isnan(a) || isnan(b)) {
            if (!(isnan(a) && isnan(b)))
                r->n_bad++;
            continue;
        }
        if (isinf(a) || isinf(b)) {
            if (a != b)
                r->n_bad++;
            continue;
        }
        double d = fabs(a - b);
        if (d > r->max_abs)
            r->max_abs = d;
        if (b != 0.0 && d / fabs(b) > r->max_rel)
            r->max_rel = d / fabs(b);
        se += d * d;
        sr += b * b;
        if (exact ? a != b : d > o->atol + o->rtol * fabs(b))
            r->n_bad++;
    }
    r->rel_l2 = sr > 0.0 ? sqrt(se / sr) : sqrt(se);
}

typedef enum { R_PASS, R_FAIL, R_SKIP } result;

/* One data set: returns the result and a reason in why. */
static result run_set(sh_allocator *a, const sh_backend *be, const char *model, const char *set_dir, const opts *o,
                      char *why, size_t cap, double *worst_l2, double *worst_abs)
{
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = be;
    sp.freeze_shape_inputs = true;
    sh_err err = {0};
    sh_session *s = NULL;
    int rc = sh_session_create_file(&sp, model, &s, &err);
    if (rc) {
        snprintf(why, cap, "%s", err.msg);
        return rc == SHOAL_ERR_UNSUPPORTED ? R_SKIP : R_FAIL;
    }
    result res = R_PASS;
    char path[4096];
    int n_in = sh_session_n_inputs(s);
    int k = 0;
    for (;; k++) {
        char leaf[32];
        snprintf(leaf, sizeof leaf, "input_%d.pb", k);
        if (!join(path, sizeof path, set_dir, leaf) || !is_file(path))
            break;
        if (k >= n_in) {
            snprintf(why, cap, "input_%d.pb but the model has %d inputs", k, n_in);
            res = R_FAIL;
            goto done;
        }
        sh_dtype dt;
        sh_shape shape;
        void *data;
        size_t nb;
        rc = sh_tensor_pb_load_file(a, path, &dt, &shape, &data, &nb, NULL, 0, &err);
        if (!rc) {
            rc = sh_session_set_input(s, k, dt, &shape, data, nb, &err);
            sh_free(a, data);
        }
        if (rc) {
            snprintf(why, cap, "input_%d: %s", k, err.msg);
            res = rc == SHOAL_ERR_UNSUPPORTED ? R_SKIP : R_FAIL;
            goto done;
        }
    }
    if (k < n_in) {
        snprintf(why, cap, "%d input files for %d model inputs", k, n_in);
        res = R_FAIL;
        goto done;
    }
    rc = sh_session_run(s, &err);
    if (rc) {
        snprintf(why, cap, "%s", err.msg);
        res = rc == SHOAL_ERR_UNSUPPORTED ? R_SKIP : R_FAIL;
        goto done;
    }
    int n_out = sh_session_n_outputs(s), checked = 0;
    for (k = 0;; k++) {
        char leaf[32];
        snprintf(leaf, sizeof leaf, "output_%d.pb", k);
        if (!join(path, sizeof path, set_dir, leaf) || !is_file(path))
            break;
        if (k >= n_out) {
            snprintf(why, cap, "output_%d.pb but the model has %d outputs", k, n_out);
            res = R_FAIL;
            goto done;
        }
        sh_dtype dt;
        sh_shape shape;
        void *ref;
        size_t nb;
        rc = sh_tensor_pb_load_file(a, path, &dt, &shape, &ref, &nb, NULL, 0, &err);
        if (rc) {
            snprintf(why, cap, "output_%d: %s", k, err.msg);
            res = rc == SHOAL_ERR_UNSUPPORTED ? R_SKIP : R_FAIL;
            goto done;
        }
        sh_tensor_info info;
        const void *out;
        size_t ob;
        sh_session_get_output(s, k, &info, &out, &ob, &err);
        char s1[128], s2[128];
        if (info.dtype != dt || !sh_shape_equal(&info.shape, &shape)) {
            snprintf(why, cap, "output %d '%s' is %s %s, reference %s %s", k, info.name, sh_dtype_name(info.dtype),
                     sh_shape_str(&info.shape, s1, sizeof s1), sh_dtype_name(dt), sh_shape_str(&shape, s2, sizeof s2));
            sh_free(a, ref);
            res = R_FAIL;
            goto done;
        }
        cmp_result cr;
        compare(out, ref, dt, sh_shape_numel(&shape), o, &cr);
        sh_free(a, ref);
        checked++;
        if (cr.rel_l2 > *worst_l2)
            *worst_l2 = cr.rel_l2;
        if (cr.max_abs > *worst_abs)
            *worst_abs = cr.max_abs;
        bool l2_bad = o->max_rel_l2 > 0 && (dt == SH_DT_FLOAT32 || dt == SH_DT_FLOAT64) && !(cr.rel_l2 < o->max_rel_l2);
        if (cr.n_bad || l2_bad) {
            snprintf(why, cap, "output %d '%s': %lld of %lld elements off%s (max abs err %.3g, rel err %.3g, rel L2 %.3g)",
                     k, info.name, (long long)cr.n_bad, (long long)sh_shape_numel(&shape),
                     l2_bad ? ", rel L2 over the bound" : "", cr.max_abs, cr.max_rel, cr.rel_l2);
            res = R_FAIL;
            goto done;
        }
    }
    if (checked == 0) {
        snprintf(why, cap, "no output_K.pb in the data set");
        res = R_FAIL;
    }
done:
    sh_session_destroy(s);
    return res;
}

static void run_test(sh_allocator *a, const sh_backend *be, const char *dir, const char *name, const opts *o,
                     counts *c)
{
    char model[4096], why[1024] = "";
    join(model, sizeof model, dir, "model.onnx");
    int n_sets;
    char **sets = list_dir(dir, "test_data_set_", &n_sets);
    result res = R_PASS;
    double worst_l2 = 0.0, worst_abs = 0.0;
    if (n_sets == 0) {
        res = R_FAIL;
        snprintf(why, sizeof why, "no test_data_set_* folders");
    }
    for (int i = 0; i < n_sets && res == R_PASS; i++) {
        char sd[4096];
        char w[900] = "";
        if (!join(sd, sizeof sd, dir, sets[i]))
            continue;
        res = run_set(a, be, model, sd, o, w, sizeof w, &worst_l2, &worst_abs);
        if (res != R_PASS && snprintf(why, sizeof why, "%.64s%s%s", n_sets > 1 ? sets[i] : "", n_sets > 1 ? ": " : "", w) < 0)
            why[0] = 0;
    }
    free_list(sets, n_sets);
    switch (res) {
    case R_PASS:
        c->passed++;
        if (o->verbose)
            printf("PASS %s (max abs err %.3g, rel L2 %.3g)\n", name, worst_abs, worst_l2);
        else
            printf("PASS %s\n", name);
        break;
    case R_FAIL:
        c->failed++;
        printf("FAIL %s: %s\n", name, why);
        break;
    case R_SKIP:
        c->skipped++;
        printf("SKIP %s: %s\n", name, why);
        break;
    }
    fflush(stdout);
}

/* A test folder, or a folder of them (two levels: onnx-node-tests/pytorch-converted/test_x). */
static void run_path(sh_allocator *a, const sh_backend *be, const char *path, const char *name, int depth,
                     const opts *o, counts *c)
{
    char model[4096];
    if (join(model, sizeof model, path, "model.onnx") && is_file(model)) {
        run_test(a, be, path, name, o, c);
        return;
    }
    if (depth >= 2)
        return;
    int n;
    char **v = list_dir(path, "", &n);
    for (int i = 0; i < n; i++) {
        char sub[4096], subname[4096];
        if (!join(sub, sizeof sub, path, v[i]) || !is_dir(sub))
            continue;
        if (depth == 0)
            snprintf(subname, sizeof subname, "%s", v[i]);
        else if (!join(subname, sizeof subname, name, v[i]))
            continue;
        run_path(a, be, sub, subname, depth + 1, o, c);
    }
    free_list(v, n);
}

int cmd_test_onnx(int argc, char **argv)
{
    opts o = {.rtol = 1e-3, .atol = 1e-7, .max_rel_l2 = 0, .threads = 0};
    int first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            o.verbose = true;
        } else if (!strcmp(a, "--rtol") || !strcmp(a, "--atol") || !strcmp(a, "--max-rel-l2")) {
            double *dst = !strcmp(a, "--rtol") ? &o.rtol : !strcmp(a, "--atol") ? &o.atol : &o.max_rel_l2;
            if (cli_double("test-onnx", a, i + 1 < argc ? argv[++i] : NULL, 0.0, 1e6, dst))
                return 2;
        } else if (!strcmp(a, "--threads")) {
            if (cli_int32("test-onnx", a, i + 1 < argc ? argv[++i] : NULL, 0, 1024, &o.threads))
                return 2;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "shoal test-onnx: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (first >= argc) {
        usage(stderr);
        return 2;
    }
    sh_allocator *alloc = sh_allocator_create();
    if (!alloc) {
        fprintf(stderr, "shoal test-onnx: out of memory\n");
        return 2;
    }
    sh_backend_params bp = {.alloc = alloc, .n_threads = o.threads};
    sh_backend be;
    sh_err err = {0};
    if (sh_backend_cpu_create(&bp, &be, &err)) {
        fprintf(stderr, "shoal test-onnx: %s\n", err.msg);
        sh_allocator_destroy(alloc);
        return 2;
    }
    counts c = {0};
    for (int i = first; i < argc; i++) {
        if (!is_dir(argv[i])) {
            /* A shell glob over the test folders also names the files beside them (MANIFEST.txt):
             * those are skipped; a path that does not exist is still a failure. */
            if (access(argv[i], F_OK) == 0) {
                printf("SKIP %s: not a folder\n", argv[i]);
                c.skipped++;
            } else {
                printf("FAIL %s: %s\n", argv[i], strerror(errno));
                c.failed++;
            }
            continue;
        }
        char name[4096];
        const char *base = strrchr(argv[i], '/');
        snprintf(name, sizeof name, "%s", base && base[1] ? base + 1 : argv[i]);
        run_path(alloc, &be, argv[i], name, 0, &o, &c);
    }
    printf("%d passed, %d failed, %d skipped\n", c.passed, c.failed, c.skipped);
    sh_backend_destroy(&be);
    sh_allocator_destroy(alloc);
    return c.failed ? 1 : 0;
}
