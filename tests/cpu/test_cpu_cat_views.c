/* Concat and Split parts as views of the whole (copy_ops.c cpu_cat_views): where each part is
 * one contiguous range (NCHW, leading dims 1) the Concat's inputs are written in place and the
 * Split's outputs read in place, so the compiled program must alias them at the right byte
 * offsets; a tensor a Concat takes twice, a part that already is a view and a Concat with
 * several outer indices keep their copies. Then the program runs through the planner (plan
 * verified, one NaN-poisoned arena) and every output is compared with a double-precision
 * reference computed here, so a view at a wrong offset or a part overwritten while still
 * needed shows as a wrong value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "harness.h"
#include "plan/plan.h"

enum { C = 4, H = 5, W = 6, HW = H * W };

typedef struct cat_graph {
    int x, e, s, cat, s0, s1, y0, y1, twice, rows, r0, r1;
} cat_graph;

static int node(th *h, const char *name, sh_op op, const int *in, int n_in, const int *out, int n_out)
{
    return sh_graph_add_node(h->g, name, op, in, n_in, out, n_out);
}

/* x -> e = Exp(x), s = Sigmoid(x) -> cat = Concat(e, s) [1, 2C, H, W] -> Split (3, 2C - 3) ->
 * y0 = s0 + s0, y1 = Relu(s1); twice = Concat(e, e); rows = Concat over axis 2 of Exp(x) and
 * Sigmoid(x) reshaped (several outer indices: copied). */
static void build(th *h, cat_graph *t)
{
    int64_t xd[4] = {1, C, H, W}, cd[4] = {1, 2 * C, H, W}, s0d[4] = {1, 3, H, W}, s1d[4] = {1, 2 * C - 3, H, W};
    int64_t rd[4] = {1, C, 2 * H, W};
    t->x = th_tensor(h, "x", 4, xd);
    t->e = th_tensor(h, "e", 4, xd);
    t->s = th_tensor(h, "s", 4, xd);
    t->cat = th_tensor(h, "cat", 4, cd);
    t->s0 = th_tensor(h, "s0", 4, s0d);
    t->s1 = th_tensor(h, "s1", 4, s1d);
    t->y0 = th_tensor(h, "y0", 4, s0d);
    t->y1 = th_tensor(h, "y1", 4, s1d);
    t->twice = th_tensor(h, "twice", 4, cd);
    t->r0 = th_tensor(h, "r0", 4, xd);
    t->r1 = th_tensor(h, "r1", 4, xd);
    t->rows = th_tensor(h, "rows", 4, rd);
    node(h, "exp", SH_OP_EXP, &t->x, 1, &t->e, 1);
    node(h, "sigmoid", SH_OP_SIGMOID, &t->x, 1, &t->s, 1);
    int cat_in[2] = {t->e, t->s};
    int k = node(h, "concat", SH_OP_CONCAT, cat_in, 2, &t->cat, 1);
    sh_node_set_int(h->g, k, "axis", 1);
    int parts[2] = {t->s0, t->s1};
    k = node(h, "split", SH_OP_SPLIT, &t->cat, 1, parts, 2);
    int64_t sizes[2] = {3, 2 * C - 3};
    sh_node_set_int(h->g, k, "axis", 1);
    sh_node_set_ints(h->g, k, "split", sizes, 2);
    int add_in[2] = {t->s0, t->s0};
    node(h, "add", SH_OP_ADD, add_in, 2, &t->y0, 1);
    node(h, "relu", SH_OP_RELU, &t->s1, 1, &t->y1, 1);
    int tw_in[2] = {t->e, t->e};
    k = node(h, "concat_twice", SH_OP_CONCAT, tw_in, 2, &t->twice, 1);
    sh_node_set_int(h->g, k, "axis", 1);
    node(h, "exp_r", SH_OP_EXP, &t->x, 1, &t->r0, 1);
    node(h, "sigmoid_r", SH_OP_SIGMOID, &t->x, 1, &t->r1, 1);
    int rows_in[2] = {t->r0, t->r1};
    k = node(h, "concat_rows", SH_OP_CONCAT, rows_in, 2, &t->rows, 1);
    sh_node_set_int(h->g, k, "axis", 2);
}

/* The graph above compiled for `threads` pool threads, its four results the graph outputs. */
static void compile_cat_graph(th *h, cat_graph *t, int threads)
{
    th_init(h, threads);
    build(h, t);
    int outs[4] = {t->y0, t->y1, t->twice, t->rows};
    assert_int_equal(th_compile(h, &t->x, 1, outs, 4), 0);
}

static void aliases_are_chosen(void **state)
{
    (void)state;
    th h;
    cat_graph t;
    compile_cat_graph(&h, &t, 1);
    const sh_program *p = h.p;
    size_t plane = HW * sizeof(float);
    assert_int_equal(p->alias_of[t.e], t.cat);
    assert_int_equal(p->alias_offset[t.e], 0);
    assert_int_equal(p->alias_of[t.s], t.cat);
    assert_int_equal(p->alias_offset[t.s], C * plane);
    assert_int_equal(p->alias_of[t.s0], t.cat);
    assert_int_equal(p->alias_offset[t.s0], 0);
    assert_int_equal(p->alias_of[t.s1], t.cat);
    assert_int_equal(p->alias_offset[t.s1], 3 * plane);
    /* the whole keeps its bytes; outputs and the copied parts are their own */
    assert_true(p->alias_of[t.cat] < 0 && p->tensor_bytes[t.cat] == 2 * C * plane);
    assert_true(p->alias_of[t.twice] < 0 && p->alias_of[t.y0] < 0 && p->alias_of[t.y1] < 0);
    assert_true(p->alias_of[t.r0] < 0 && p->alias_of[t.r1] < 0 && p->alias_of[t.rows] < 0);
    th_free(&h);
}

static double sigmoid(double v)
{
    return 1.0 / (1.0 + exp(-v));
}

static void check(const char *what, const float *got, const double *want, int64_t n)
{
    double e = th_max_err(got, want, n);
    if (!(e <= 1.0))
        fail_msg("%s: normalised error %g", what, e);
}

static void runs_through_the_planner(void **state)
{
    (void)state;
    th h;
    cat_graph t;
    compile_cat_graph(&h, &t, 2);
    sh_err err;
    sh_plan *plan = NULL;
    assert_int_equal(sh_plan_build(h.a, h.g, h.p, 64, &plan, &err), 0);
    assert_int_equal(sh_plan_verify(plan, &err), 0);
    unsigned char *arena = aligned_alloc(64, plan->arena_bytes + 64);
    assert_non_null(arena);
    memset(arena, 0xFF, plan->arena_bytes);   /* NaN poison */
    void **ptr = calloc((size_t)h.g->n_tensors, sizeof *ptr), **ws = calloc((size_t)h.g->n_nodes + 1, sizeof *ws);
    assert_int_equal(sh_plan_bind(plan, h.p, arena, NULL, ptr, ws), 0);
    /* the input's block may be reused once it is read: keep the values for the reference */
    float x[C * HW];
    for (int i = 0; i < C * HW; i++)
        x[i] = th_rand(&h) * 4.0f;
    memcpy(ptr[t.x], x, sizeof x);
    assert_int_equal(h.be.iface->run(h.be.ctx, h.p, ptr, ws, 1, &err), 0);

    double cat[2 * C * HW], want[2 * C * HW];
    for (int i = 0; i < C * HW; i++) {
        cat[i] = exp(x[i]);
        cat[C * HW + i] = sigmoid(x[i]);
    }
    for (int i = 0; i < 3 * HW; i++)
        want[i] = 2.0 * cat[i];
    check("y0", ptr[t.y0], want, 3 * HW);
    for (int i = 0; i < (2 * C - 3) * HW; i++)
        want[i] = cat[3 * HW + i] > 0 ? cat[3 * HW + i] : 0;
    check("y1", ptr[t.y1], want, (2 * C - 3) * HW);
    for (int i = 0; i < 2 * C * HW; i++)
        want[i] = exp(x[i % (C * HW)]);
    check("twice", ptr[t.twice], want, 2 * C * HW);
    for (int c = 0; c < C; c++)
        for (int i = 0; i < 2 * HW; i++) {
            double v = x[c * HW + i % HW];
            want[c * 2 * HW + i] = i < HW ? exp(v) : sigmoid(v);
        }
    check("rows", ptr[t.rows], want, 2 * C * HW);

    free(ptr);
    free(ws);
    free(arena);
    sh_plan_destroy(h.a, plan);
    th_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aliases_are_chosen),
        cmocka_unit_test(runs_through_the_planner),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
