/* shoal inspect MODEL.onnx: what a model is and whether shoal can run it. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/cpu/cpu_report.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/cpu_features.h"
#include "cli/tuning_env.h"
#include "import/onnx_import.h"
#include "runtime/session.h"

/* How the CPU backend runs a node where it chose between kernels (cpu_backend.c hook). */
const char *sh_backend_cpu_node_path(const sh_program *p, int node);

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal inspect MODEL.onnx [--convs [--threads N]]\n"
            "\n"
            "Prints the model's producer, IR version and opset, its inputs and outputs with dtype and\n"
            "shape ('name' marks a symbolic dim), op counts, parameter count and bytes, and every node\n"
            "shoal cannot run with the reason. Then imports the model as `shoal run` would; a quantized\n"
            "model with static input shapes is also compiled for the CPU, and each integer\n"
            "convolution's kernel is listed (int8 oneDNN, or the im2col path and why); with a CUDA\n"
            "device, for the GPU too (int8 tensor cores, or the direct kernel and why).\n"
            "\n"
            "--convs       also compile the model for the CPU backend and print the CPU's vector\n"
            "              extensions, the instruction set oneDNN uses (ONEDNN_MAX_CPU_ISA may cap it)\n"
            "              and one line per Conv after graph passes: geometry, fused activation,\n"
            "              implementation with its ISA, and the layout of each side (needs static\n"
            "              input shapes); then how many conv sides transpose NCHW <-> NHWC and how\n"
            "              many other nodes run on NHWC tensors (SHOAL_CPU_NO_LAYOUT_FLOW=1: NHWC\n"
            "              between convs only, for comparison)\n"
            "--threads N   CPU threads for --convs (0 = all cores, default): the row bands per conv\n"
            "\n"
            "Exit status: 0 the model imports, 1 unsupported ops or an import error, 2 bad usage or\n"
            "an unreadable file.\n");
}

static void print_values(const char *title, const sh_onnx_value *v, int n)
{
    char tn[32];
    printf("%s (%d):\n", title, n);
    for (int i = 0; i < n; i++)
        printf("  %-24s %-9s %s\n", v[i].name, sh_onnx_elem_type_name(v[i].elem_type, tn, sizeof tn),
               v[i].dims_text);
}

/* ultralytics' keys as shoal reads them (they fill the model's defaults), then the rest raw. */
/* Compiles the model for a backend (cuda: the CUDA one, when a device is present) and counts
 * the kernels of its integer convolutions (after QDQ folding), one line per kind. Models with
 * dynamic inputs are not compiled here. */
static void print_int8_paths(sh_allocator *a, const char *path, bool cuda)
{
    sh_backend be;
    sh_backend_params bp = {.alloc = a, .n_threads = 1};
    sh_err err = {0};
    if (cuda ? sh_backend_cuda_create(&bp, &be, &err) : sh_backend_cpu_create(&bp, &be, &err))
        return;
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = &be;
    sh_session *s = NULL;
    const sh_program *prog = NULL;
    if (sh_session_create_file(&sp, path, &s, &err) == 0 && (prog = sh_session_program(s)) != NULL) {
        const sh_graph *g = sh_session_graph(s);
        const char *kinds[16];
        int counts[16], n_kinds = 0;
        for (int k = 0; k < g->n_nodes; k++) {
            const char *why = cuda ? sh_backend_cuda_node_path(prog, k) : sh_backend_cpu_node_path(prog, k);
            if (!why)
                continue;
            int i = 0;
            while (i < n_kinds && strcmp(kinds[i], why) != 0)
                i++;
            if (i == n_kinds && n_kinds < 16) {
                kinds[n_kinds] = why;
                counts[n_kinds++] = 0;
            }
            if (i < n_kinds)
                counts[i]++;
        }
        if (n_kinds) {
            printf("int8 convolutions on this machine's %s:\n", cuda ? "GPU" : "CPU");
            for (int i = 0; i < n_kinds; i++)
                printf("  %-60s %d\n", kinds[i], counts[i]);
        }
    } else if (!s) {
        printf("%s compile: not done (%s)\n", cuda ? "cuda" : "cpu", err.msg);
    }
    sh_session_destroy(s);
    sh_backend_destroy(&be);
}

static void print_meta(const sh_onnx_info *info)
{
    if (info->meta_error) {
        printf("metadata:  unreadable: %s\n", info->meta_error);
        return;
    }
    const sh_model_meta *m = info->meta;
    if (!m || !m->n_props)
        return;
    printf("metadata:  %d entries\n", m->n_props);
    if (m->task)
        printf("  task     %s\n", m->task);
    if (m->imgsz[0])
        printf("  imgsz    %" PRId64 "x%" PRId64 " (height x width)\n", m->imgsz[0], m->imgsz[1]);
    if (m->stride)
        printf("  stride   %" PRId64 "\n", m->stride);
    if (m->names) {
        printf("  names    %d classes:", m->n_names);
        for (int i = 0; i < m->n_names && i < 8; i++)
            printf(" %d=%s", i, m->names[i]);
        printf("%s\n", m->n_names > 8 ? " ..." : "");
    }
    for (int i = 0; i < m->n_props; i++) {
        const char *k = m->keys[i];
        if (strcmp(k, "task") && strcmp(k, "imgsz") && strcmp(k, "stride") && strcmp(k, "names"))
            printf("  %-8s %.100s%s\n", k, m->values[i], strlen(m->values[i]) > 100 ? "..." : "");
    }
}

/* "C128->128 k3x3 s1 g1 160x160->160x160" from the compiled graph's shapes. */
static void conv_geometry(const sh_graph *g, const sh_node *n, char *buf, size_t cap)
{
    const sh_tensor *X = sh_node_input(g, n, 0), *W = sh_node_input(g, n, 1), *Y = sh_node_output(g, n, 0);
    if (X->shape.ndim != 4 || W->shape.ndim != 4 || Y->shape.ndim != 4) {
        snprintf(buf, cap, "rank %d", X->shape.ndim);
        return;
    }
    int cnt;
    const int64_t *st = sh_node_ints(n, "strides", &cnt);
    snprintf(buf, cap, "C%" PRId64 "->%" PRId64 " k%" PRId64 "x%" PRId64 " s%" PRId64 " g%" PRId64 " %" PRId64 "x%" PRId64
             "->%" PRId64 "x%" PRId64,
             X->shape.d[1], Y->shape.d[1], W->shape.d[2], W->shape.d[3], st && cnt > 0 ? st[0] : 1,
             sh_node_int(n, "group", 1), X->shape.d[2], X->shape.d[3], Y->shape.d[2], Y->shape.d[3]);
}

/* Compiles the model for the CPU backend as `shoal exec` does and reports every Conv. */
static int print_convs(sh_allocator *a, const char *path, int threads)
{
    char feats[160];
    cli_cpu_features(feats, sizeof feats);
    sh_backend be = {0};
    sh_session *s = NULL;
    sh_err err = {0};
    sh_backend_params bp = {.alloc = a, .n_threads = threads};
    if (cli_tuning_from_env("inspect", &bp.tuning))
        return 2;
    if (sh_backend_cpu_create(&bp, &be, &err)) {
        printf("cpu:       FAILED: %s\n", err.msg);
        return 1;
    }
    printf("cpu:       %s; oneDNN ISA %s\n", feats, sh_backend_cpu_isa());
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = &be;
    int status = 0;
    const sh_program *prog = NULL;
    if (sh_session_create_file(&sp, path, &s, &err)) {
        printf("convs:     FAILED to compile: %s\n", err.msg);
        status = 1;
    } else if (!(prog = sh_session_program(s))) {
        printf("convs:     not compiled (the model's input shapes are not static)\n");
    } else {
        const sh_graph *g = sh_session_graph(s);
        int n_convs = 0;
        for (int k = 0; k < g->n_nodes; k++)
            n_convs += !g->nodes[k].dead && g->nodes[k].op == SH_OP_CONV;
        printf("convs:     %d after graph passes\n", n_convs);
        for (int k = 0; k < g->n_nodes; k++) {
            const sh_node *n = &g->nodes[k];
            if (n->dead || n->op != SH_OP_CONV)
                continue;
            char geo[96], how[256];
            conv_geometry(g, n, geo, sizeof geo);
            if (sh_backend_cpu_describe_node(prog, k, how, sizeof how) < 0)
                snprintf(how, sizeof how, "(no report)");
            static const char *const act_names[SH_ACT_COUNT] = {"-", "+relu", "+sigmoid", "+silu", "+hswish",
                                                                  "+hsigmoid", "+clip"};
            const char *act = n->act >= 0 && n->act < SH_ACT_COUNT ? act_names[n->act] : "+?";
            printf("  %-40s %-38s %-10s %s\n", n->name, geo, act, how);
        }
        sh_cpu_layout_stats st;
        if (sh_backend_cpu_layout_stats(prog, &st) == 0)
            printf("layouts:   %d conv sides transpose NCHW<->NHWC; %d tensors NHWC; %d other nodes run on NHWC\n",
                   st.transposes, st.nhwc_tensors, st.nhwc_other_ops);
    }
    sh_session_destroy(s);
    sh_backend_destroy(&be);
    return status;
}

int cmd_inspect(int argc, char **argv)
{
    const char *path = NULL;
    bool convs = false, threads_given = false;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--convs") == 0) {
            convs = true;
            continue;
        }
        if (strcmp(argv[i], "--threads") == 0) {
            if (i + 1 >= argc) {
                usage(stderr);
                return 2;
            }
            if (cli_int32("inspect", argv[i], argv[i + 1], 0, 1024, &threads))
                return 2;
            threads_given = true;
            i++;
            continue;
        }
        if (argv[i][0] == '-' || path) {
            usage(stderr);
            return 2;
        }
        path = argv[i];
    }
    if (!path || (threads_given && !convs)) {
        if (path)
            fprintf(stderr, "shoal inspect: --threads applies to --convs only\n");
        usage(stderr);
        return 2;
    }
    sh_allocator *a = sh_allocator_create();
    if (!a) {
        fprintf(stderr, "shoal inspect: out of memory\n");
        return 2;
    }
    sh_onnx_info *info;
    sh_err err;
    if (sh_onnx_info_file(a, path, &info, &err)) {
        fprintf(stderr, "shoal inspect: %s\n", err.msg);
        sh_allocator_destroy(a);
        return err.status == SHOAL_ERR_PARSE ? 1 : 2;
    }
    printf("model:     %s\n", path);
    printf("graph:     %s\n", info->graph_name);
    printf("producer:  %s\n", *info->producer ? info->producer : "(none)");
    printf("ir:        %" PRId64 "\n", info->ir_version);
    printf("opset:     %d (shoal supports %d..%d)\n", info->opset, SH_ONNX_MIN_OPSET, SH_ONNX_MAX_OPSET);
    print_values("inputs", info->inputs, info->n_inputs);
    print_values("outputs", info->outputs, info->n_outputs);
    printf("nodes:     %d\n", info->n_nodes);
    for (int i = 0; i < info->n_ops; i++)
        printf("  %-24s %d\n", info->ops[i].op_type, info->ops[i].count);
    printf("params:    %" PRId64 " in %d initializers + Constants, %.2f MiB as stored\n", info->n_params,
           info->n_initializers, (double)info->param_bytes / (1024.0 * 1024.0));
    print_meta(info);
    int status = 0;
    if (info->n_unsupported) {
        printf("unsupported (%d):\n", info->n_unsupported);
        for (int i = 0; i < info->n_unsupported; i++)
            printf("  node '%s' (%s): %s\n", info->unsupported[i].node, info->unsupported[i].op_type,
                   info->unsupported[i].reason);
        status = 1;
    } else {
        sh_graph *g;
        if (sh_onnx_load_file(a, path, &g, &err)) {
            printf("import:    FAILED: %s\n", err.msg);
            status = 1;
        } else {
            printf("import:    ok (%d nodes, %d tensors after removing Constant nodes)\n", g->n_nodes, g->n_tensors);
            bool quantized = false;
            for (int k = 0; k < g->n_nodes && !quantized; k++)
                quantized = g->nodes[k].op == SH_OP_CONV_INTEGER || g->nodes[k].op == SH_OP_QLINEAR_CONV ||
                            g->nodes[k].op == SH_OP_DEQUANTIZE_LINEAR;
            sh_graph_destroy(g);
            if (convs)
                status = print_convs(a, path, threads);
            if (quantized) {
                print_int8_paths(a, path, false);
                print_int8_paths(a, path, true);
            }
        }
    }
    sh_onnx_info_destroy(a, info);
    sh_allocator_destroy(a);
    return status;
}
