/* QDQ folding (graph/qdq.c) on the QDQ convolutions of tests/conformance/quant (whose integers
 * conformance_quant_ort checks against onnxruntime, folded as here):
 * - each DQ/DQ/DQ -> Conv -> Q becomes one QLinearConv reading the int8 weights themselves,
 *   and only the input's QuantizeLinear stays;
 * - a bias whose scale is not xs * ws, a Conv output read by something else, and the pass
 *   switched off leave the float Conv in place;
 * - in a chain of QDQ convs with SiLU between them, each conv's DQ -> SiLU -> Q folds into its
 *   QLinearConv (SH_QCONV_REQUANTIZE: uint8 output read by the next QLinearConv), and a
 *   QuantizeLinear with a second reader stays. */
#include <setjmp.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <cmocka.h>

#include "graph/passes.h"
#include "import/onnx_import.h"

static sh_graph *load_case(sh_allocator *a, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/conformance/quant/%s/model.onnx", SHOAL_SOURCE_DIR, name);
    sh_graph *g = NULL;
    sh_err err = {0};
    if (sh_onnx_load_file(a, path, &g, &err))
        fail_msg("%s: %s", path, err.msg);
    return g;
}

static int count_op(const sh_graph *g, sh_op op)
{
    int n = 0;
    for (int k = 0; k < g->n_nodes; k++)
        n += !g->nodes[k].dead && g->nodes[k].op == op;
    return n;
}

static void optimize(sh_graph *g, bool fold)
{
    sh_optimize_params p = sh_optimize_default_params();
    p.fold_qdq = fold;
    sh_err err = {0};
    if (sh_graph_optimize(g, &p, &err))
        fail_msg("optimize: %s", err.msg);
}

static void qdq_convs_become_qlinearconv(void **state)
{
    static const char *const cases[] = {"qdq_conv_u8s8_perchannel_bias", "qdq_conv_s8s8_group_stride2"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sh_allocator *a = sh_allocator_create();
        sh_graph *g = load_case(a, cases[i]);
        optimize(g, true);
        assert_int_equal(count_op(g, SH_OP_QLINEAR_CONV), 1);
        assert_int_equal(count_op(g, SH_OP_CONV), 0);
        assert_int_equal(count_op(g, SH_OP_DEQUANTIZE_LINEAR), 0);
        assert_int_equal(count_op(g, SH_OP_QUANTIZE_LINEAR), 1);
        for (int k = 0; k < g->n_nodes; k++) {
            const sh_node *n = &g->nodes[k];
            if (n->op != SH_OP_QLINEAR_CONV)
                continue;
            /* the weights stay int8 constants, the output is the graph's */
            const sh_tensor *w = sh_node_input(g, n, 3);
            assert_true(w->is_const && w->dtype == SH_DT_INT8);
            assert_true(sh_node_output(g, n, 0)->is_output);
        }
        sh_graph_destroy(g);
        sh_allocator_destroy(a);
    }
    (void)state;
}

static void unfit_patterns_stay_float(void **state)
{
    sh_allocator *a = sh_allocator_create();
    /* switched off */
    sh_graph *g = load_case(a, "qdq_conv_u8s8_perchannel_bias");
    optimize(g, false);
    assert_int_equal(count_op(g, SH_OP_QLINEAR_CONV), 0);
    assert_int_equal(count_op(g, SH_OP_CONV), 1);
    sh_graph_destroy(g);
    /* a bias scale one ulp away from xs * ws: adding the int32 bias is no longer exact */
    g = load_case(a, "qdq_conv_u8s8_perchannel_bias");
    int bs = sh_graph_find_tensor(g, "bs");
    assert_true(bs >= 0 && g->tensors[bs].is_const);
    float *v = g->tensors[bs].data;
    v[2] = nextafterf(v[2], 1.0f);
    optimize(g, true);
    assert_int_equal(count_op(g, SH_OP_QLINEAR_CONV), 0);
    assert_int_equal(count_op(g, SH_OP_CONV), 1);
    sh_graph_destroy(g);
    /* the float Conv output is also a graph output */
    g = load_case(a, "qdq_conv_s8s8_group_stride2");
    int c = sh_graph_find_tensor(g, "C");
    assert_true(c >= 0);
    int outs[2] = {g->outputs[0], c};
    assert_int_equal(sh_graph_set_outputs(g, outs, 2), 0);
    g->tensors[c].is_output = true;
    optimize(g, true);
    assert_int_equal(count_op(g, SH_OP_QLINEAR_CONV), 0);
    assert_int_equal(count_op(g, SH_OP_CONV), 1);
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
    (void)state;
}

static void chain_requantizes_between_convs(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = load_case(a, "qdq_conv_chain_silu");
    optimize(g, true);
    assert_int_equal(count_op(g, SH_OP_QLINEAR_CONV), 3);
    assert_int_equal(count_op(g, SH_OP_QUANTIZE_LINEAR), 1);   /* the graph input's */
    assert_int_equal(count_op(g, SH_OP_DEQUANTIZE_LINEAR) + count_op(g, SH_OP_SIGMOID) + count_op(g, SH_OP_MUL), 0);
    int requant = 0;
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || n->op != SH_OP_QLINEAR_CONV || !sh_node_int(n, SH_QCONV_REQUANTIZE, 0))
            continue;
        requant++;
        assert_int_equal(n->n_inputs, 11);
        assert_int_equal(n->act, SH_ACT_SILU);
        const sh_tensor *y = sh_node_output(g, n, 0);
        assert_int_equal(y->dtype, SH_DT_UINT8);
        assert_int_equal(y->n_consumers, 1);
    }
    assert_int_equal(requant, 2);
    sh_graph_destroy(g);

    /* the activation's float output read by a second node: the QuantizeLinear stays apart */
    g = load_case(a, "qdq_conv_chain_silu");
    int act = sh_graph_find_tensor(g, "a0");
    assert_true(act >= 0);
    int outs[2] = {g->outputs[0], act};
    assert_int_equal(sh_graph_set_outputs(g, outs, 2), 0);
    g->tensors[act].is_output = true;
    optimize(g, true);
    assert_int_equal(count_op(g, SH_OP_QLINEAR_CONV), 3);
    assert_int_equal(count_op(g, SH_OP_QUANTIZE_LINEAR), 2);
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
    (void)state;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(qdq_convs_become_qlinearconv),
        cmocka_unit_test(unfit_patterns_stay_float),
        cmocka_unit_test(chain_requantizes_between_convs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
