/* graph/flops.h: the multiply-add work of each op kind, on shapes after inference, counted by
 * hand here (2 FLOPs per multiply-add). */
#include "gbuild.h"

#include "graph/flops.h"

static float W[64 * 16 * 3 * 3];

static void counts_each_kind(void **state)
{
    (void)state;
    begin(13);
    int x = input("x", SH_DT_FLOAT32, S(4, 1, 16, 10, 10));
    int w3 = cst("w3", SH_DT_FLOAT32, S(4, 32, 16, 3, 3), W);   /* 3x3, pad 1: 10x10 out */
    int w1 = cst("w1", SH_DT_FLOAT32, S(4, 8, 32, 1, 1), W);
    int wd = cst("wd", SH_DT_FLOAT32, S(4, 8, 1, 3, 3), W);     /* depthwise */
    int y3;
    int k = node(SH_OP_CONV, "c3", IDS(x, w3), 1, &y3);
    sh_node_set_ints(G, k, "pads", I64(1, 1, 1, 1));
    int y1;
    node(SH_OP_CONV, "c1", IDS(y3, w1), 1, &y1);
    int yd;
    k = node(SH_OP_CONV, "dw", IDS(y1, wd), 1, &yd);
    sh_node_set_int(G, k, "group", 8);
    int flat = un(SH_OP_FLATTEN, "flat", yd);                    /* [1, 8 * 8 * 8] */
    int wm = cst("wm", SH_DT_FLOAT32, S(2, 512, 5), W);
    output(bin(SH_OP_MATMUL, "mm", flat, wm));
    assert_int_equal(infer(), 0);
    sh_flops f = sh_graph_flops(G);
    assert_true(f.conv_kxk == 2.0 * (32 * 10 * 10) * (16 * 9));
    assert_true(f.conv_1x1 == 2.0 * (8 * 10 * 10) * 32);
    assert_true(f.conv_grouped == 2.0 * (8 * 8 * 8) * 9);
    assert_true(f.matmul == 2.0 * 5 * 512);
    assert_true(f.conv_transpose == 0);
    assert_true(sh_flops_total(&f) == f.conv_kxk + f.conv_1x1 + f.conv_grouped + f.matmul);
    sh_flops none = sh_graph_flops(NULL);
    assert_true(sh_flops_total(&none) == 0);
    end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(counts_each_kind)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
