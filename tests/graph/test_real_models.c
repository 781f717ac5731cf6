/* Every real model in ../shared/real-models imports, optimizes, and ends with the output shapes
 * the model declares; the unsimplified PAN segmenter loses all of its shape plumbing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "graph/passes.h"
#include "import/onnx_import.h"

static char g_dir[1024];

static int count_op(const sh_graph *g, sh_op op)
{
    int c = 0;
    for (int k = 0; k < g->n_nodes; k++)
        c += g->nodes[k].op == op;
    return c;
}

static void check_model(const char *name)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/model.onnx", g_dir, name);
    sh_allocator *al = sh_allocator_create();
    sh_err err = {0};
    sh_onnx_info *info = NULL;
    assert_int_equal(sh_onnx_info_file(al, path, &info, &err), 0);
    sh_graph *g = NULL;
    int rc = sh_onnx_load_file(al, path, &g, &err);
    if (rc)
        fail_msg("%s: import: %s", name, err.msg);
    int before = g->n_nodes;
    sh_optimize_params p = sh_optimize_default_params();
    rc = sh_graph_optimize(g, &p, &err);
    if (rc)
        fail_msg("%s: optimize: %s", name, err.msg);
    assert_int_equal(g->n_outputs, info->n_outputs);
    for (int i = 0; i < g->n_outputs; i++) {
        const sh_tensor *y = &g->tensors[g->outputs[i]];
        const sh_onnx_value *d = &info->outputs[i];
        char b1[128], b2[128];
        assert_string_equal(y->name, d->name);
        assert_int_equal(y->shape.ndim, d->shape.ndim);
        for (int j = 0; j < d->shape.ndim; j++)
            if (d->shape.d[j] >= 0 && d->shape.d[j] != y->shape.d[j])
                fail_msg("%s: output '%s' is %s, declared %s", name, y->name, sh_shape_str(&y->shape, b1, 128),
                         sh_shape_str(&d->shape, b2, 128));
        printf("  %s: %s %s\n", name, y->name, sh_shape_str(&y->shape, b1, 128));
    }
    static const sh_op plumbing[] = {SH_OP_SHAPE, SH_OP_GATHER, SH_OP_CAST, SH_OP_CONSTANT_OF_SHAPE,
                                     SH_OP_UNSQUEEZE, SH_OP_CONSTANT, SH_OP_IDENTITY, SH_OP_BATCH_NORM};
    for (size_t i = 0; i < sizeof plumbing / sizeof plumbing[0]; i++)
        if (count_op(g, plumbing[i]))
            fail_msg("%s: %d %s nodes left after optimize", name, count_op(g, plumbing[i]),
                     sh_op_name(plumbing[i]));
    if (strcmp(name, "pan_seg_unsimplified") == 0) {
        /* every Pad of the dynamic padding is all-zero; Reshape/Transpose only moved int64s */
        assert_int_equal(count_op(g, SH_OP_PAD), 0);
        assert_int_equal(count_op(g, SH_OP_RESHAPE), 0);
        assert_int_equal(count_op(g, SH_OP_TRANSPOSE), 0);
        assert_int_equal(count_op(g, SH_OP_SLICE), 0);
        assert_int_equal(count_op(g, SH_OP_CONCAT), 0);
        /* and it ends as the simplified export does */
        char p2[2048];
        snprintf(p2, sizeof p2, "%s/pan_seg/model.onnx", g_dir);
        sh_graph *g2 = NULL;
        assert_int_equal(sh_onnx_load_file(al, p2, &g2, &err), 0);
        assert_int_equal(sh_graph_optimize(g2, &p, &err), 0);
        assert_int_equal(g2->n_nodes, g->n_nodes);
        for (int op = 0; op < SH_OP_COUNT; op++)
            assert_int_equal(count_op(g2, (sh_op)op), count_op(g, (sh_op)op));
        sh_graph_destroy(g2);
        for (int k = 0; k < g->n_nodes; k++)
            for (int j = 0; j < g->nodes[k].n_outputs; j++)
                assert_int_equal(g->tensors[g->nodes[k].outputs[j]].dtype, SH_DT_FLOAT32);
    }
    printf("  %s: %d nodes -> %d\n", name, before, g->n_nodes);
    /* idempotent */
    int n1 = g->n_nodes, t1 = g->n_tensors;
    assert_int_equal(sh_graph_optimize(g, &p, &err), 0);
    assert_int_equal(g->n_nodes, n1);
    assert_int_equal(g->n_tensors, t1);
    sh_graph_destroy(g);
    sh_onnx_info_destroy(al, info);
    assert_int_equal(sh_allocator_stats(al).in_use, 0);
    sh_allocator_destroy(al);
}

static void all_models(void **state)
{
    (void)state;
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        char path[2048];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s/model.onnx", g_dir, e->d_name);
        if (e->d_name[0] == '.' || stat(path, &st) != 0)
            continue;
        check_model(e->d_name);
        n++;
    }
    closedir(d);
    assert_true(n >= 7);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "%s/real-models", SHOAL_SHARED_DIR);
    struct stat st;
    if (stat(g_dir, &st) != 0) {
        printf("no %s: skipped\n", g_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(all_models)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
