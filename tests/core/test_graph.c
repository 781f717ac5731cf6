#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "graph/graph.h"

static sh_shape shape2(int64_t a, int64_t b)
{
    sh_shape s = {2, {a, b}};
    return s;
}

static void sorts_nodes_and_counts_consumers(void **state)
{
    sh_allocator *al = sh_allocator_create();
    sh_graph *g = sh_graph_create(al, "t");
    sh_shape s = shape2(2, 3);
    int x = sh_graph_add_tensor(g, "x", SH_DT_FLOAT32, &s);
    int y = sh_graph_add_tensor(g, "y", SH_DT_FLOAT32, &s);
    int z = sh_graph_add_tensor(g, "z", SH_DT_FLOAT32, &s);
    int in2[2] = {y, x};
    /* written out of order: z = y + x before y = relu(x) */
    sh_graph_add_node(g, "add", SH_OP_ADD, in2, 2, &z, 1);
    sh_graph_add_node(g, "relu", SH_OP_RELU, &x, 1, &y, 1);
    sh_graph_set_inputs(g, &x, 1);
    sh_graph_set_outputs(g, &z, 1);
    sh_err err = {0};
    assert_int_equal(sh_graph_finalize(g, &err), 0);
    assert_string_equal(g->nodes[0].name, "relu");
    assert_int_equal(g->tensors[x].n_consumers, 2);
    assert_int_equal(g->tensors[z].n_consumers, 1);
    assert_int_equal(sh_graph_find_tensor(g, "y"), y);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(al).in_use, 0);
    sh_allocator_destroy(al);
}

static void reports_cycles_and_missing_producers(void **state)
{
    sh_allocator *al = sh_allocator_create();
    sh_graph *g = sh_graph_create(al, "cyc");
    sh_shape s = shape2(1, 1);
    int a = sh_graph_add_tensor(g, "a", SH_DT_FLOAT32, &s);
    int b = sh_graph_add_tensor(g, "b", SH_DT_FLOAT32, &s);
    sh_graph_add_node(g, "n1", SH_OP_RELU, &a, 1, &b, 1);
    sh_graph_add_node(g, "n2", SH_OP_RELU, &b, 1, &a, 1);
    sh_graph_set_outputs(g, &b, 1);
    sh_err err = {0};
    assert_int_equal(sh_graph_finalize(g, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "cycle"));
    sh_graph_destroy(g);

    g = sh_graph_create(al, "missing");
    a = sh_graph_add_tensor(g, "ghost", SH_DT_FLOAT32, &s);
    b = sh_graph_add_tensor(g, "out", SH_DT_FLOAT32, &s);
    sh_graph_add_node(g, "n1", SH_OP_RELU, &a, 1, &b, 1);
    sh_graph_set_outputs(g, &b, 1);
    assert_int_equal(sh_graph_finalize(g, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "ghost"));
    sh_graph_destroy(g);
    sh_allocator_destroy(al);
}

static void compacts_dead_nodes(void **state)
{
    sh_allocator *al = sh_allocator_create();
    sh_graph *g = sh_graph_create(al, "c");
    sh_shape s = shape2(1, 4);
    int x = sh_graph_add_tensor(g, "x", SH_DT_FLOAT32, &s);
    int u = sh_graph_add_tensor(g, "unused", SH_DT_FLOAT32, &s);
    int y = sh_graph_add_tensor(g, "y", SH_DT_FLOAT32, &s);
    sh_graph_add_node(g, "dead", SH_OP_RELU, &x, 1, &u, 1);
    sh_graph_add_node(g, "live", SH_OP_SIGMOID, &x, 1, &y, 1);
    sh_node_set_int(g, 1, "axis", 3);
    sh_graph_set_inputs(g, &x, 1);
    sh_graph_set_outputs(g, &y, 1);
    g->nodes[0].dead = true;
    sh_err err = {0};
    assert_int_equal(sh_graph_compact(g, &err), 0);
    assert_int_equal(g->n_nodes, 1);
    assert_int_equal(g->n_tensors, 2);
    assert_int_equal(sh_graph_find_tensor(g, "unused"), -1);
    assert_int_equal(sh_node_int(&g->nodes[0], "axis", 0), 3);
    sh_graph_destroy(g);
    sh_allocator_destroy(al);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sorts_nodes_and_counts_consumers),
        cmocka_unit_test(reports_cycles_and_missing_producers),
        cmocka_unit_test(compacts_dead_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
