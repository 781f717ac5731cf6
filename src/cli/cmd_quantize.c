/* shoal quantize: post-training int8 quantization of a float ONNX model into a QDQ model.
 *
 * Which Convs: 2-D Convs with constant weights whose output goes into an activation (Sigmoid,
 * so SiLU, Relu, HardSwish, HardSigmoid, Clip). That is every conv block of a YOLO network;
 * the heads' last 1x1 Convs, which write box coordinates and class logits straight to the
 * outputs, stay float, because quantizing them to 8 bits moves boxes by whole steps.
 *
 * Calibration: the float model runs on the CPU over the first N images of the folder (sorted
 * by name), each preprocessed as `shoal run --model` would (config defaults plus the model's
 * metadata), with every chosen Conv's input and output kept as extra graph outputs; each
 * tensor's range is its minimum and maximum over all images (min/max calibration, no
 * percentile clipping). The writer (import/onnx_qdq.c) turns the ranges into uint8 scales and
 * zero points and the weights into per-channel symmetric int8. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backends/backend.h"
#include "cli/args.h"
#include "cli/commands.h"
#include "graph/graph.h"
#include "import/onnx_import.h"
#include "import/onnx_qdq.h"
#include "runtime/model_meta.h"
#include "runtime/session.h"
#include "vision/image.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal quantize --model IN.onnx --images DIR --out OUT.onnx [--calib N] [--threads N]\n"
            "\n"
            "Post-training quantization into a QDQ model that shoal and ONNX Runtime both run with int8\n"
            "convolutions: every Conv that feeds an activation gets per-channel symmetric int8 weights, an\n"
            "int32 bias, and uint8 QuantizeLinear/DequantizeLinear pairs on its input and output. The\n"
            "activation ranges are the min/max over the first N images of DIR (default 32; .jpg, .jpeg,\n"
            "and .png files, sorted by name), preprocessed as `shoal run --model` does (the model's\n"
            "metadata, letterbox, RGB, 1/255). Other nodes stay float.\n");
}

typedef struct quant_opts {
    const char *model, *images, *out;
    int calib, threads;
} quant_opts;

static int parse(int argc, char **argv, quant_opts *o)
{
    *o = (quant_opts){.calib = 32, .threads = 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "shoal quantize: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--images"))
            o->images = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--calib")) {
            if (cli_int32("quantize", a, v, 1, 100000, &o->calib))
                return 2;
        } else if (!strcmp(a, "--threads")) {
            if (cli_int32("quantize", a, v, 1, 1024, &o->threads))
                return 2;
        } else {
            fprintf(stderr, "shoal quantize: unknown argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o->model || !o->images || !o->out) {
        usage(stderr);
        return 2;
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool is_image_name(const char *n)
{
    const char *dot = strrchr(n, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

/* The first `limit` image paths of dir, sorted; *n their count. */
static char **list_images(const char *dir, int limit, int *n)
{
    *n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    char **names = NULL;
    int cap = 0, count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!is_image_name(e->d_name))
            continue;
        if (count == cap) {
            cap = cap ? 2 * cap : 64;
            char **g = realloc(names, (size_t)cap * sizeof *g);
            if (!g)
                break;
            names = g;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[count] = malloc(len);
        if (!names[count])
            break;
        snprintf(names[count], len, "%s/%s", dir, e->d_name);
        count++;
    }
    closedir(d);
    if (count > 1)
        qsort(names, (size_t)count, sizeof *names, cmp_str);
    for (int i = limit; i < count; i++)
        free(names[i]);
    *n = count < limit ? count : limit;
    return names;
}

static bool is_activation(sh_op op)
{
    return op == SH_OP_SIGMOID || op == SH_OP_RELU || op == SH_OP_HARD_SWISH || op == SH_OP_HARD_SIGMOID ||
           op == SH_OP_CLIP;
}

/* Chosen Convs (see the top of the file) as indices of their nodes. */
static int choose_convs(const sh_graph *g, int *conv_nodes)
{
    int n = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *c = &g->nodes[k];
        if (c->op != SH_OP_CONV || c->n_inputs < 2 || c->n_outputs != 1 || c->inputs[1] < 0)
            continue;
        const sh_tensor *w = &g->tensors[c->inputs[1]];
        if (!w->is_const || w->dtype != SH_DT_FLOAT32 || w->shape.ndim != 4)
            continue;
        bool feeds_act = false;
        for (int j = 0; j < g->n_nodes && !feeds_act; j++)
            for (int i = 0; i < g->nodes[j].n_inputs; i++)
                feeds_act |= g->nodes[j].inputs[i] == c->outputs[0] && is_activation(g->nodes[j].op);
        if (feeds_act)
            conv_nodes[n++] = k;
    }
    return n;
}

typedef struct range {
    float lo, hi;
} range;

static void update_range(range *r, const float *v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        r->lo = v[i] < r->lo ? v[i] : r->lo;
        r->hi = v[i] > r->hi ? v[i] : r->hi;
    }
}

/* Runs the calibration images through the float model with the chosen tensors as outputs;
 * ranges[2*i] is Conv i's input, ranges[2*i+1] its output. */
static int calibrate(sh_allocator *a, const quant_opts *o, sh_graph *g, const sh_model_config *mc, const int *convs,
                     int n_convs, char **images, int n_images, range *ranges, sh_err *err)
{
    int n_orig = g->n_outputs, n_out = n_orig + 2 * n_convs;
    int *outs = sh_alloc(a, (size_t)n_out * sizeof *outs);
    if (!outs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "quantize: out of memory");
    memcpy(outs, g->outputs, (size_t)n_orig * sizeof *outs);
    for (int i = 0; i < n_convs; i++) {
        outs[n_orig + 2 * i] = g->nodes[convs[i]].inputs[0];
        outs[n_orig + 2 * i + 1] = g->nodes[convs[i]].outputs[0];
    }
    /* Output names, kept here: the session takes the graph over. */
    int rc = sh_graph_set_outputs(g, outs, n_out);
    sh_free(a, outs);
    if (rc)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "quantize: out of memory");

    sh_backend cpu;
    sh_backend_params bp = {.alloc = a, .n_threads = o->threads};
    if ((rc = sh_backend_cpu_create(&bp, &cpu, err))) {
        sh_graph_destroy(g);
        return rc;
    }
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = &cpu;
    sh_shape in_shape = {.ndim = 4, .d = {1, 3, mc->input_h, mc->input_w}};
    const char *in_name = g->tensors[g->inputs[0]].name;
    sp.n_input_shapes = 1;
    sp.input_shape_names = &in_name;
    sp.input_shapes = &in_shape;
    sh_session *s = NULL;
    rc = sh_session_create_graph(&sp, g, &s, err);
    size_t n_in = (size_t)3 * (size_t)mc->input_h * (size_t)mc->input_w;
    float *input = rc ? NULL : sh_alloc(a, n_in * sizeof(float));
    if (!rc && !input)
        rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "quantize: out of memory");
    for (int i = 0; i < 2 * n_convs; i++)
        ranges[i] = (range){1e30f, -1e30f};
    sh_preprocess_params pp = sh_rt_preprocess_params(mc, mc->input_w, mc->input_h);
    for (int im = 0; im < n_images && !rc; im++) {
        sh_image img;
        if ((rc = sh_image_load_file(a, images[im], &img, err)))
            break;
        rc = sh_preprocess(a, &img, &pp, input, n_in, NULL, err);
        sh_image_free(&img);
        if (!rc)
            rc = sh_session_set_input(s, 0, SH_DT_FLOAT32, &in_shape, input, n_in * sizeof(float), err);
        if (!rc)
            rc = sh_session_run(s, err);
        for (int i = 0; i < 2 * n_convs && !rc; i++) {
            sh_tensor_info info;
            const void *data;
            if ((rc = sh_session_get_output(s, n_orig + i, &info, &data, NULL, err)))
                break;
            update_range(&ranges[i], data, sh_shape_numel(&info.shape));
        }
        fprintf(stderr, "\rcalibrating: %d/%d images", im + 1, n_images);
    }
    fprintf(stderr, "\n");
    sh_free(a, input);
    sh_session_destroy(s);
    sh_backend_destroy(&cpu);
    return rc;
}

static int load_config(sh_allocator *a, const char *model, sh_graph *g, const sh_model_meta *meta, sh_config **cfg,
                       sh_err *err)
{
    /* `shoal run --model`'s defaults: the metadata decides the input size */
    char text[4096];
    snprintf(text, sizeof text, "models:\n  model:\n    path: \"%s\"\nmodes:\n  model: [model]\n", model);
    int rc = sh_config_load_string(a, text, strlen(text), "quantize", ".", cfg, err);
    if (!rc)
        rc = sh_rt_meta_defaults(&(*cfg)->models[0], g, meta, err);
    return rc;
}

int cmd_quantize(int argc, char **argv)
{
    quant_opts o;
    int prc = parse(argc, argv, &o);
    if (prc)
        return prc == 1 ? 0 : 2;
    sh_allocator *a = sh_allocator_create();
    if (!a)
        return 1;
    sh_err err = {0};
    sh_graph *g = NULL;
    sh_model_meta *meta = NULL;
    sh_config *cfg = NULL;
    int n_images = 0, status = 1;
    char **images = list_images(o.images, o.calib, &n_images);
    int *convs = NULL;
    range *ranges = NULL;
    sh_qdq_conv *list = NULL;
    char **names = NULL;
    int n_convs = 0;
    if (n_images == 0) {
        fprintf(stderr, "shoal quantize: no .jpg/.jpeg/.png images in '%s'\n", o.images);
        goto out;
    }
    if (sh_onnx_load_file_meta(a, o.model, &g, &meta, &err) || load_config(a, o.model, g, meta, &cfg, &err))
        goto fail;
    if (g->n_inputs != 1) {
        fprintf(stderr, "shoal quantize: '%s' has %d inputs; one image input is supported\n", o.model, g->n_inputs);
        goto out;
    }
    convs = sh_alloc(a, (size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *convs);
    if (!convs)
        goto out;
    n_convs = choose_convs(g, convs);
    ranges = sh_calloc(a, (size_t)(2 * n_convs + 1), sizeof *ranges);
    list = sh_calloc(a, (size_t)(n_convs + 1), sizeof *list);
    names = sh_calloc(a, (size_t)(n_convs + 1), sizeof *names);
    if (!ranges || !list || !names)
        goto out;
    for (int i = 0; i < n_convs; i++) {
        const char *nm = g->tensors[g->nodes[convs[i]].outputs[0]].name;
        names[i] = sh_alloc(a, strlen(nm) + 1);
        if (!names[i])
            goto out;
        strcpy(names[i], nm);
    }
    {
        sh_graph *owned = g;
        g = NULL;   /* calibrate hands it to the session */
        if (calibrate(a, &o, owned, &cfg->models[0], convs, n_convs, images, n_images, ranges, &err))
            goto fail;
    }
    for (int i = 0; i < n_convs; i++)
        list[i] = (sh_qdq_conv){.output = names[i], .x_min = ranges[2 * i].lo, .x_max = ranges[2 * i].hi,
                                .y_min = ranges[2 * i + 1].lo, .y_max = ranges[2 * i + 1].hi};
    sh_qdq_stats st;
    if (sh_onnx_write_qdq(a, o.model, o.out, list, n_convs, &st, &err))
        goto fail;
    printf("quantized %d of %d Convs (%d skipped: shared or non-initializer weights) from %d images, min/max "
           "calibration\n",
           st.convs_quantized, n_convs, st.convs_skipped, n_images);
    printf("their weights and biases: %.2f MB float32 -> %.2f MB int8/int32 with scales\n",
           (double)st.float_weight_bytes / 1e6, (double)st.int_weight_bytes / 1e6);
    printf("wrote %s\n", o.out);
    status = 0;
    goto out;
fail:
    fprintf(stderr, "shoal quantize: %s\n", err.msg);
out:
    for (int i = 0; names && i < n_convs; i++)
        sh_free(a, names[i]);
    sh_free(a, names);
    sh_free(a, list);
    sh_free(a, ranges);
    sh_free(a, convs);
    for (int i = 0; i < n_images; i++)
        free(images[i]);
    free(images);
    sh_config_destroy(cfg);
    sh_graph_destroy(g);
    sh_model_meta_destroy(a, meta);
    sh_allocator_destroy(a);
    return status;
}
