/* Constant folding: the exporters' shape chains vanish, and the reference evaluator computes
 * what ONNX specifies (bit-exact for floats). */
#include "gbuild.h"

static const int64_t *i64(const char *name)
{
    const sh_tensor *t = T(name);
    assert_true(t->is_const);
    assert_int_equal(t->dtype, SH_DT_INT64);
    return t->data;
}

/* torch 1.13 exports x.chunk(2, dim=1) of a [1,6,4,4] tensor as
 * Shape -> Gather(1) -> Add(1) -> Div(2) -> Mul(1) -> Slice ends, and Mul(2) for the second. */
static void chunk_chain_folds_to_constant_slices(void **state)
{
    begin(13);
    int x = input("x", SH_DT_FLOAT32, S(4, 1, 6, 4, 4));
    int sh = un(SH_OP_SHAPE, "Shape_0", x);
    int dim = bin(SH_OP_GATHER, "Gather_1", sh, sc64("c1", 1));
    int add = bin(SH_OP_ADD, "Add_2", dim, sc64("c_one", 1));
    int div = bin(SH_OP_DIV, "Div_3", add, sc64("c_two", 2));
    int m1 = bin(SH_OP_MUL, "Mul_4", div, sc64("c_one_b", 1));
    int m2 = bin(SH_OP_MUL, "Mul_5", div, sc64("c_two_b", 2));
    int u1 = bin(SH_OP_UNSQUEEZE, "Unsqueeze_6", m1, ci64("ax0", I64(0)));
    int u2 = bin(SH_OP_UNSQUEEZE, "Unsqueeze_7", m2, ci64("ax0b", I64(0)));
    int axes = ci64("axes", I64(1));
    int a;
    node(SH_OP_SLICE, "Slice_8", IDS(x, ci64("zero", I64(0)), u1, axes), 1, &a);
    int b;
    node(SH_OP_SLICE, "Slice_9", IDS(x, u1, u2, axes), 1, &b);
    int y = bin(SH_OP_ADD, "sum", a, b);
    output(y);
    assert_int_equal(optimize(NULL), 0);
    expect_shape("Slice_8", SH_DT_FLOAT32, 4, 1, 3, 4, 4);
    expect_shape("Slice_9", SH_DT_FLOAT32, 4, 1, 3, 4, 4);
    assert_int_equal(G->n_nodes, 3);
    const sh_node *s9 = N("Slice_9");
    assert_non_null(s9);
    assert_true(G->tensors[s9->inputs[1]].is_const);
    assert_true(G->tensors[s9->inputs[2]].is_const);
    assert_int_equal(((int64_t *)G->tensors[s9->inputs[1]].data)[0], 3);
    assert_int_equal(((int64_t *)G->tensors[s9->inputs[2]].data)[0], 6);
    assert_int_equal(count_live(SH_OP_SHAPE) + count_live(SH_OP_GATHER) + count_live(SH_OP_DIV), 0);
    end();
}

/* x.view(x.size(0), -1): Shape -> Gather(0) -> Unsqueeze -> Concat([-1]) -> Reshape */
static void reshape_shape_chain_folds(void **state)
{
    begin(11);
    int x = input("x", SH_DT_FLOAT32, S(4, 2, 3, 4, 5));
    int sh = un(SH_OP_SHAPE, "Shape", x);
    int n = bin(SH_OP_GATHER, "Gather", sh, sc64("zero", 0));
    int k = node(SH_OP_UNSQUEEZE, "Unsqueeze", IDS(n), 1, NULL);
    sh_node_set_ints(G, k, "axes", I64(0));
    int u = G->nodes[k].outputs[0];
    k = node(SH_OP_CONCAT, "Concat", IDS(u, ci64("m1", I64(-1))), 1, NULL);
    sh_node_set_int(G, k, "axis", 0);
    int y = bin(SH_OP_RESHAPE, "Reshape", x, G->nodes[k].outputs[0]);
    output(y);
    assert_int_equal(optimize(NULL), 0);
    expect_shape("Reshape", SH_DT_FLOAT32, 2, 2, 60);
    assert_int_equal(G->n_nodes, 1);
    assert_int_equal(G->nodes[0].op, SH_OP_RESHAPE);
    const sh_tensor *s = &G->tensors[G->nodes[0].inputs[1]];
    assert_true(s->is_const);
    assert_int_equal(((int64_t *)s->data)[0], 2);
    assert_int_equal(((int64_t *)s->data)[1], -1);
    end();
}

static void evaluator_semantics(void **state)
{
    begin(13);
    int64_t v[6] = {10, 11, 12, 13, 14, 15};
    int m = cst("m", SH_DT_INT64, S(2, 2, 3), v);
    int k = node(SH_OP_GATHER, "gather_neg", IDS(m, ci64("gi", I64(-1, 0))), 1, NULL);
    sh_node_set_int(G, k, "axis", 1);
    k = node(SH_OP_TRANSPOSE, "transpose", IDS(m), 1, NULL);
    int r = cst("r", SH_DT_INT64, S(1, 6), v);
    node(SH_OP_SLICE, "slice_rev", IDS(r, ci64("s", I64(-2)), ci64("e", I64(INT64_MIN)), ci64("a", I64(0)),
                                       ci64("st", I64(-2))), 1, NULL);
    node(SH_OP_EXPAND, "expand", IDS(ci64("ev", I64(7, 8)), ci64("es", I64(2, 1, 2))), 1, NULL);
    k = node(SH_OP_CONCAT, "concat", IDS(m, m), 1, NULL);
    sh_node_set_int(G, k, "axis", -1);
    float fv[4] = {-2.7f, 2.7f, 1e9f, -0.5f};
    int f = cst("f", SH_DT_FLOAT32, S(1, 4), fv);
    k = node(SH_OP_CAST, "cast_i64", IDS(f), 1, NULL);
    sh_node_set_int(G, k, "to", 7);
    float one = 1.0f, three = 3.0f, tenth = 0.1f;
    int fo = cst("fo", SH_DT_FLOAT32, S(0), &one), ft = cst("ft", SH_DT_FLOAT32, S(0), &three);
    int fdiv = bin(SH_OP_DIV, "fdiv", fo, ft);
    int fmul = bin(SH_OP_MUL, "fmul", fdiv, cst("tenth", SH_DT_FLOAT32, S(0), &tenth));
    (void)fmul;
    bin(SH_OP_SUB, "isub", m, ci64("sv", I64(1, 2, 3)));
    bin(SH_OP_DIV, "idiv", ci64("nv", I64(-7, 7)), sc64("two", 2));
    int64_t seven = 7;
    int val = cst("val", SH_DT_INT64, S(1, 1), &seven);
    k = node(SH_OP_CONSTANT_OF_SHAPE, "cos", IDS(ci64("cs", I64(2, 2))), 1, NULL);
    sh_node_set_tensor(G, k, "value", val);
    k = node(SH_OP_SQUEEZE, "squeeze", IDS(cst("one", SH_DT_INT64, S(2, 1, 2), v), ci64("sqa", I64(0))), 1, NULL);
    k = node(SH_OP_FLATTEN, "flatten", IDS(m), 1, NULL);
    sh_node_set_int(G, k, "axis", 0);
    k = node(SH_OP_CONSTANT, "constant", NULL, 0, 1, NULL);
    sh_node_set_float(G, k, "value_float", 2.5f);
    assert_int_equal(infer(), 0);
    const int64_t *g = i64("gather_neg");
    assert_int_equal(g[0], 12);
    assert_int_equal(g[1], 10);
    assert_int_equal(g[2], 15);
    assert_int_equal(g[3], 13);
    const int64_t *t = i64("transpose");
    int64_t tw[6] = {10, 13, 11, 14, 12, 15};
    for (int i = 0; i < 6; i++)
        assert_int_equal(t[i], tw[i]);
    expect_shape("slice_rev", SH_DT_INT64, 1, 3);
    const int64_t *s = i64("slice_rev");
    assert_int_equal(s[0], 14);
    assert_int_equal(s[1], 12);
    assert_int_equal(s[2], 10);
    expect_shape("expand", SH_DT_INT64, 3, 2, 1, 2);
    assert_int_equal(i64("expand")[3], 8);
    expect_shape("concat", SH_DT_INT64, 2, 2, 6);
    assert_int_equal(i64("concat")[3], 10);
    assert_int_equal(i64("concat")[6], 13);
    const int64_t *c = i64("cast_i64");
    assert_int_equal(c[0], -2);
    assert_int_equal(c[1], 2);
    assert_int_equal(c[2], 1000000000);
    assert_int_equal(c[3], 0);
    /* float folding is the IEEE operation a kernel performs, bit for bit */
    volatile float a1 = 1.0f, a3 = 3.0f, a01 = 0.1f;
    float want = (a1 / a3) * a01, got;
    memcpy(&got, T("fmul")->data, 4);
    assert_memory_equal(&got, &want, 4);
    assert_true(T("fmul")->is_const);
    const int64_t *d = i64("isub");
    assert_int_equal(d[5], 12);
    assert_int_equal(i64("idiv")[0], -3);   /* truncation, as ONNX Runtime's integer Div */
    assert_int_equal(i64("cos")[3], 7);
    expect_shape("squeeze", SH_DT_INT64, 1, 2);
    expect_shape("flatten", SH_DT_INT64, 2, 1, 6);
    float cv;
    memcpy(&cv, T("constant")->data, 4);
    assert_true(cv == 2.5f);
    for (int i = 0; i < G->n_nodes; i++)
        assert_true(G->nodes[i].dead);
    end();
}

static void fold_limits_and_switch(void **state)
{
    /* an Expand larger than fold_max_bytes stays a node; with folding off Add stays too */
    begin(13);
    int e = node(SH_OP_EXPAND, "big", IDS(sc64("v", 3), ci64("shape", I64(1000))), 1, NULL);
    (void)e;
    int add = bin(SH_OP_ADD, "add", ci64("a", I64(1)), ci64("b", I64(2)));
    int x = input("x", SH_DT_INT64, S(1, 1000));
    output(bin(SH_OP_ADD, "use_big", x, G->nodes[0].outputs[0]));
    output(bin(SH_OP_ADD, "use_add", x, add));
    sh_optimize_params p = sh_optimize_default_params();
    p.fold_max_bytes = 4000;
    assert_int_equal(optimize(&p), 0);
    assert_non_null(N("big"));
    assert_null(N("add"));
    assert_true(T("add")->is_const);
    end();

    begin(13);
    add = bin(SH_OP_ADD, "add", ci64("a", I64(1)), ci64("b", I64(2)));
    x = input("x", SH_DT_INT64, S(1, 1));
    output(bin(SH_OP_ADD, "use_add", x, add));
    p = sh_optimize_default_params();
    p.fold_constants = false;
    assert_int_equal(optimize(&p), 0);
    assert_non_null(N("add"));
    assert_false(T("add")->is_const);
    end();
}

static void dead_nodes_are_removed(void **state)
{
    begin(13);
    int x = input("x", SH_DT_FLOAT32, S(2, 2, 3));
    int r = un(SH_OP_RELU, "unused_relu", x);
    un(SH_OP_SIGMOID, "unused_sig", r);
    int e = un(SH_OP_EXP, "kept", x);
    output(e);
    assert_int_equal(optimize(NULL), 0);
    assert_int_equal(G->n_nodes, 1);
    assert_string_equal(G->nodes[0].name, "kept");
    assert_int_equal(sh_graph_find_tensor(G, "unused_relu"), -1);
    assert_int_equal(G->n_tensors, 2);
    end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chunk_chain_folds_to_constant_slices),
        cmocka_unit_test(reshape_shape_chain_folds),
        cmocka_unit_test(evaluator_semantics),
        cmocka_unit_test(fold_limits_and_switch),
        cmocka_unit_test(dead_nodes_are_removed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
