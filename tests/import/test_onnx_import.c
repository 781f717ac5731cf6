/* Real models and ONNX node tests from ../shared: inputs, outputs, constants and node opsets
 * as ONNX itself reads them (counts taken with python3-onnx). Skips (77) without ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "import/onnx_import.h"

typedef struct expect {
    const char *path;          /* under SHOAL_SHARED_DIR */
    int opset;
    const char *inputs;        /* comma-separated, in order */
    const char *outputs;
    int n_consts;              /* initializers + Constant nodes + TENSOR attributes */
    int n_nodes;               /* without Constant nodes */
} expect;

static const expect MODELS[] = {
    {"real-models/yolox_nano/model.onnx", 11, "images", "output", 236, 369},
    {"real-models/face_rfb320/model.onnx", 9, "input", "scores,boxes", 244 + 31, 211},
    {"real-models/face_slim320_simplified/model.onnx", 9, "input", "scores,boxes", 92, 95},
    {"real-models/pan_seg/model.onnx", 13, "x.1", "1273", 146, 241},
    {"real-models/pan_seg_unsimplified/model.onnx", 13, "x.1", "1273", 150 + 229 + 5, 513},
    /* IR 3, opset 6: PyTorch's old exporter lists the weights among the inputs */
    {"onnx-node-tests/pytorch-converted/test_Conv2d_groups/model.onnx", 6, "0", "3", 2, 1},
    /* opset 27, IR 13 */
    {"onnx-node-tests/test_causal_conv_with_state_with_bias_and_past_state_expanded/model.onnx", 27,
     "input,weight,bias,past_state", "output,present_state", 2, 8},
    {"onnx-node-tests/test_constant/model.onnx", 25, "", "values", 1, 0},
    {"onnx-node-tests/legacy-onnx-v1.7.0/test_resize_upsample_sizes_nearest/model.onnx", 11, "X,roi,scales,sizes",
     "Y", 0, 1},
    {"onnx-node-tests/test_resize_downsample_scales_linear_antialias/model.onnx", 19, "X,scales", "Y", 0, 1},
};

static int have_shared(void)
{
    struct stat st;
    return stat(SHOAL_SHARED_DIR "/onnx-node-tests", &st) == 0;
}

static void check_names(const sh_graph *g, const int *list, int n, const char *want)
{
    char buf[512];
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++)
        at += (size_t)snprintf(buf + at, sizeof buf - at, "%s%s", i ? "," : "", g->tensors[list[i]].name);
    assert_string_equal(buf, want);
}

static void test_models(void **state)
{
    (void)state;
    for (size_t m = 0; m < sizeof MODELS / sizeof MODELS[0]; m++) {
        const expect *e = &MODELS[m];
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", SHOAL_SHARED_DIR, e->path);
        sh_allocator *a = sh_allocator_create();
        sh_graph *g;
        sh_err err;
        int rc = sh_onnx_load_file(a, path, &g, &err);
        if (rc)
            fail_msg("%s: %s", e->path, err.msg);
        assert_int_equal(g->opset, e->opset);
        check_names(g, g->inputs, g->n_inputs, e->inputs);
        check_names(g, g->outputs, g->n_outputs, e->outputs);
        int consts = 0;
        for (int t = 0; t < g->n_tensors; t++)
            if (g->tensors[t].is_const) {
                consts++;
                assert_non_null(g->tensors[t].data);
                assert_int_equal(g->tensors[t].producer, -1);
            }
        if (consts != e->n_consts || g->n_nodes != e->n_nodes)
            fail_msg("%s: %d consts (want %d), %d nodes (want %d)", e->path, consts, e->n_consts, g->n_nodes,
                     e->n_nodes);
        for (int i = 0; i < g->n_inputs; i++) {
            const sh_tensor *x = &g->tensors[g->inputs[i]];
            assert_true(x->is_input && !x->is_const);
            assert_true(x->dtype != SH_DT_UNDEFINED);
        }
        for (int k = 0; k < g->n_nodes; k++) {
            assert_true(g->nodes[k].op != SH_OP_CONSTANT);
            assert_true(g->nodes[k].opset >= 1 && g->nodes[k].opset <= e->opset);
        }
        printf("ok %s: %d nodes, %d tensors, %d consts\n", e->path, g->n_nodes, g->n_tensors, consts);
        sh_graph_destroy(g);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        sh_allocator_destroy(a);
    }
}

static void test_yolox_details(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_graph *g;
    sh_err err;
    assert_int_equal(sh_onnx_load_file(a, SHOAL_SHARED_DIR "/real-models/yolox_nano/model.onnx", &g, &err), 0);
    const sh_tensor *in = &g->tensors[g->inputs[0]];
    assert_int_equal(in->dtype, SH_DT_FLOAT32);
    assert_int_equal(in->shape.ndim, 4);
    assert_true(in->shape.d[0] == 1 && in->shape.d[1] == 3 && in->shape.d[2] == 416 && in->shape.d[3] == 416);
    int resize = 0, conv = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].op == SH_OP_RESIZE) {
            assert_int_equal(g->nodes[k].opset, 11);
            assert_string_equal(sh_node_string(&g->nodes[k], "mode", ""), "nearest");
            resize++;
        }
        if (g->nodes[k].op == SH_OP_CONV) {
            assert_int_equal(g->nodes[k].opset, 11);
            assert_true(sh_node_attr(&g->nodes[k], "kernel_shape") != NULL);
            conv++;
        }
    }
    assert_true(resize > 0 && conv > 0);
    /* nodes are topologically ordered: every input is produced earlier */
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++) {
            int t = g->nodes[k].inputs[i];
            if (t >= 0)
                assert_true(g->tensors[t].producer < k);
        }
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
}

/* Every model.onnx of the node tests either loads, or is refused as unsupported (never parse
 * errors: these files are valid ONNX). */
static void test_all_node_tests(void **state)
{
    (void)state;
    FILE *p = popen("find '" SHOAL_SHARED_DIR "/onnx-node-tests' -name model.onnx | sort", "r");
    assert_non_null(p);
    char path[1024];
    int loaded = 0, unsupported = 0;
    sh_allocator *a = sh_allocator_create();
    while (fgets(path, sizeof path, p)) {
        path[strcspn(path, "\n")] = '\0';
        sh_graph *g;
        sh_err err;
        int rc = sh_onnx_load_file(a, path, &g, &err);
        if (rc == 0) {
            loaded++;
            sh_graph_destroy(g);
        } else if (rc == SHOAL_ERR_UNSUPPORTED) {
            printf("unsupported: %s\n", err.msg);
            unsupported++;
        } else {
            fail_msg("%s: %d %s", path, rc, err.msg);
        }
    }
    pclose(p);
    printf("node tests: %d loaded, %d unsupported\n", loaded, unsupported);
    assert_true(loaded >= 300);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    if (!have_shared()) {
        printf("skipped: %s absent\n", SHOAL_SHARED_DIR);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models),
        cmocka_unit_test(test_yolox_details),
        cmocka_unit_test(test_all_node_tests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
