/* bench_cpu_model THREADS REPS IMPLS MODEL.onnx INPUT.npy [MODEL.onnx INPUT.npy ...]: per model
 * and Conv implementation (IMPLS: comma-separated cpu_conv_impl values, 0 oneDNN,
 * 1 im2col+OpenBLAS, 2 oneDNN with 1x1 convs on dnnl_sgemm, 3 oneDNN with the integer convs on its
 * float kernel as without VNNI; 4 to 8 the own conv kernels forced on or off (set_impl), and
 * 9 oneDNN with NHWC between convs only), the median/best
 * latency of REPS runs after one warm-up,
 * the implementations' runs interleaved so that load from other processes hits them alike;
 * then one profiled pass of REPS runs each: time per op type and the costliest nodes (Conv
 * geometry and achieved GFLOP/s). A tool, not a test. The profiled pass adds a clock read per
 * node; its total is close to, not equal to, the median. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/cpu/cpu_impl.h"
#include "core/npy.h"
#include "runtime/session.h"

double *sh_backend_cpu_profile(sh_backend *b, bool on);
double *sh_backend_cpu_profile_nodes(sh_backend *b, int n_nodes);
void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl);

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct node_time {
    int k;
    double ms;
} node_time;

static int cmp_node_desc(const void *a, const void *b)
{
    double x = ((const node_time *)a)->ms, y = ((const node_time *)b)->ms;
    return x > y ? -1 : x < y;
}

static double conv_flops(const sh_graph *g, const sh_node *n)
{
    const sh_tensor *W = sh_node_input(g, n, 1), *Y = sh_node_output(g, n, 0);
    double f = 2.0;
    for (int i = 0; i < W->shape.ndim; i++)
        f *= (double)W->shape.d[i];
    for (int i = 2; i < Y->shape.ndim; i++)
        f *= (double)Y->shape.d[i];
    return f * (double)Y->shape.d[0];
}

#define MAX_IMPLS 4

static void profile_one(sh_backend *be, sh_session *s, int reps);

/* IMPLS value 9: oneDNN convs with activations NHWC between convs only (the layout pass's
 * propagation off, shoal_tuning.cpu_no_layout_flow), the comparison for layout.c; 7: the
 * default without the own implicit-GEMM conv (shoal_tuning.cpu_igemm = -1), 8: with it on any
 * CPU (cpu_igemm = 1), 6: it and the own Winograd on any CPU (both = 1), for igemm.c and
 * winograd.c on AVX-512 machines, where they are off by default; 5: the default with the 1x1
 * convs on oneDNN; 4: without Winograd (its convs on the implicit GEMM). */
enum { IMPL_NO_WINOGRAD = 4, IMPL_IGEMM_NO_1X1 = 5, IMPL_OWN_ALWAYS = 6, IMPL_NO_IGEMM = 7, IMPL_IGEMM_ALWAYS = 8, IMPL_NO_LAYOUT_FLOW = 9 };

static void set_impl(sh_backend *be, int impl)
{
    cpu_ctx *ctx = be->ctx;
    ctx->no_layout_flow = impl == IMPL_NO_LAYOUT_FLOW;
    ctx->igemm = impl == IMPL_NO_IGEMM ? -1 : impl == IMPL_IGEMM_ALWAYS || impl == IMPL_OWN_ALWAYS ? 1 : 0;
    ctx->winograd = impl == IMPL_OWN_ALWAYS ? 1 : impl == IMPL_NO_WINOGRAD ? -1 : 0;
    ctx->igemm_no_1x1 = impl == IMPL_IGEMM_NO_1X1;
    sh_backend_cpu_set_conv_impl(be, impl >= IMPL_NO_WINOGRAD ? CPU_CONV_DNNL : impl);
}

static int bench_one(sh_allocator *a, sh_backend *be, int reps, const int *impls, int n_impls, const char *model,
                     const char *input)
{
    sh_err err = {0};
    sh_npy in;
    if (sh_npy_read_file(a, input, &in, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    sh_session *ss[MAX_IMPLS];
    for (int m = 0; m < n_impls; m++) {
        set_impl(be, impls[m]);
        sh_session_params sp = sh_session_default_params();
        sp.alloc = a;
        sp.backend = be;
        sp.freeze_shape_inputs = true;
        if (sh_session_create_file(&sp, model, &ss[m], &err) ||
            sh_session_set_input(ss[m], 0, in.dtype, &in.shape, in.data, in.nbytes, &err) ||
            sh_session_run(ss[m], &err)) {
            fprintf(stderr, "%s: %s\n", model, err.msg);
            return 1;
        }
    }
    double *ms = calloc((size_t)(reps * n_impls), sizeof *ms);
    for (int r = 0; r < reps; r++)
        for (int m = 0; m < n_impls; m++) {
            set_impl(be, impls[m]);   /* GEMMs choose at run time */
            double t0 = now_ms();
            sh_session_run(ss[m], &err);
            ms[m * reps + r] = now_ms() - t0;
        }
    for (int m = 0; m < n_impls; m++) {
        double *v = ms + m * reps;
        qsort(v, (size_t)reps, sizeof *v, cmp_double);
        printf("%s conv_impl %d: median %.2f ms, best %.2f ms (%d runs)\n", model, impls[m], v[reps / 2], v[0], reps);
    }
    free(ms);
    for (int m = 0; m < n_impls; m++) {
        printf(" profile conv_impl %d\n", impls[m]);
        set_impl(be, impls[m]);
        profile_one(be, ss[m], reps);
        sh_session_destroy(ss[m]);
    }
    sh_npy_free(a, &in);
    return 0;
}

static void profile_one(sh_backend *be, sh_session *s, int reps)
{
    sh_err err = {0};
    const sh_graph *g = sh_session_graph(s);
    double *prof = sh_backend_cpu_profile(be, true);
    double *pn = sh_backend_cpu_profile_nodes(be, g->n_nodes);
    for (int r = 0; r < reps; r++)
        sh_session_run(s, &err);
    double total = 0;
    for (int o = 0; o < SH_OP_COUNT; o++)
        total += prof[o];
    printf("  per op (ms/run, %% of %.2f):", total / reps);
    for (int o = 0; o < SH_OP_COUNT; o++)
        if (prof[o] > 0.005 * total)
            printf(" %s %.2f (%.0f%%)", sh_op_name((sh_op)o), prof[o] / reps, 100 * prof[o] / total);
    printf("\n");
    node_time *nt = calloc((size_t)g->n_nodes, sizeof *nt);
    for (int k = 0; k < g->n_nodes; k++)
        nt[k] = (node_time){k, pn[k] / reps};
    qsort(nt, (size_t)g->n_nodes, sizeof *nt, cmp_node_desc);
    /* Conv time by class: the kernel path each takes in conv.c. */
    double cls[4] = {0}, clsf[4] = {0};
    static const char *cname[4] = {"1x1", "kxk s1", "kxk s2", "depthwise"};
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || n->op != SH_OP_CONV)
            continue;
        const sh_tensor *W = sh_node_input(g, n, 1);
        int64_t grp = sh_node_int(n, "group", 1);
        int cnt;
        const int64_t *st = sh_node_ints(n, "strides", &cnt);
        int c = grp > 1 ? 3 : W->shape.d[2] * W->shape.d[3] == 1 ? 0 : (st && st[0] > 1) ? 2 : 1;
        cls[c] += pn[k] / reps;
        clsf[c] += conv_flops(g, n);
    }
    printf("  conv by class:");
    for (int c = 0; c < 4; c++)
        if (cls[c] > 0)
            printf(" %s %.2f ms %.1f GFLOP/s;", cname[c], cls[c], clsf[c] / cls[c] / 1e6);
    printf("\n  top nodes:\n");
    for (int i = 0; i < 40 && i < g->n_nodes; i++) {
        const sh_node *n = &g->nodes[nt[i].k];
        if (nt[i].ms <= 0)
            break;
        printf("    %7.2f ms %-10s %-40s", nt[i].ms, sh_op_name(n->op), n->name);
        if (n->op == SH_OP_CONV) {
            const sh_tensor *X = sh_node_input(g, n, 0), *W = sh_node_input(g, n, 1), *Y = sh_node_output(g, n, 0);
            int cnt;
            const int64_t *st = sh_node_ints(n, "strides", &cnt);
            printf(" C%lld->%lld k%lldx%lld s%lld g%lld %lldx%lld->%lldx%lld %.1f GFLOP/s",
                   (long long)X->shape.d[1], (long long)Y->shape.d[1], (long long)W->shape.d[2],
                   (long long)W->shape.d[3], (long long)(st ? st[0] : 1), (long long)sh_node_int(n, "group", 1),
                   (long long)X->shape.d[2], (long long)X->shape.d[3], (long long)Y->shape.d[2],
                   (long long)Y->shape.d[3], conv_flops(g, n) / nt[i].ms / 1e6);
        }
        printf("\n");
    }
    free(nt);
    sh_backend_cpu_profile_nodes(be, 0);
    sh_backend_cpu_profile(be, false);
}

int main(int argc, char **argv)
{
    if (argc < 6 || (argc - 4) % 2) {
        fprintf(stderr, "usage: bench_cpu_model THREADS REPS IMPLS MODEL.onnx INPUT.npy [MODEL INPUT ...]\n");
        return 2;
    }
    int threads = atoi(argv[1]), reps = atoi(argv[2]);
    int impls[MAX_IMPLS], n_impls = 0;
    for (const char *c = argv[3]; *c && n_impls < MAX_IMPLS; c++)
        if (*c >= '0' && *c <= '9')
            impls[n_impls++] = *c - '0';
    if (reps < 1)
        reps = 1;
    sh_allocator *a = sh_allocator_create();
    sh_backend be;
    sh_err err;
    sh_backend_params bp = {.alloc = a, .n_threads = threads};
    if (sh_backend_cpu_create(&bp, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int rc = 0;
    for (int i = 4; i + 1 < argc && !rc; i += 2)
        rc = bench_one(a, &be, reps, impls, n_impls, argv[i], argv[i + 1]);
    sh_backend_destroy(&be);
    return rc;
}
