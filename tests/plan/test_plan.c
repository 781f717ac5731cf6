#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "plan/plan.h"
#include "synth.h"

/* ---- an independent checker ------------------------------------------------------------
 * Recomputes each tensor's own live range from the graph (producer .. last reader, inputs
 * from 0, outputs to the end) and checks every pair of arena tensors alive at a common step
 * for disjoint bytes, unless the program made them share on purpose: same alias root (views,
 * concat in place) or an in-place pair overlapping only at the node that reuses the input. */

static int alias_root(const sh_program *p, int t)
{
    while (p->alias_of[t] >= 0)
        t = p->alias_of[t];
    return t;
}

static void naive_life(const sh_graph *g, int t, int *f, int *l)
{
    const sh_tensor *x = &g->tensors[t];
    *f = x->is_input ? 0 : x->producer;
    *l = *f;
    for (int k = 0; k < g->n_nodes; k++)
        for (int i = 0; i < g->nodes[k].n_inputs; i++)
            if (g->nodes[k].inputs[i] == t && k > *l)
                *l = k;
    if (x->is_output)
        *l = g->n_nodes - 1;
}

static bool inplace_pair(const sh_graph *g, const sh_program *p, int t, int u, int step)
{
    const sh_node *n = &g->nodes[step];
    int s = p->inplace_input[step];
    if (s < 0)
        return false;
    /* Chains of in-place ops and views: compare alias roots through every in-place hop. */
    int in = alias_root(p, n->inputs[s]), out = alias_root(p, n->outputs[0]);
    int rt = alias_root(p, t), ru = alias_root(p, u);
    return (rt == in && ru == out) || (rt == out && ru == in);
}

static void check_plan(const sh_graph *g, const sh_program *p, const sh_plan *pl)
{
    sh_err err = {0};
    int rc = sh_plan_verify(pl, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_true(pl->arena_bytes >= pl->lower_bound);
    assert_int_equal(pl->arena_bytes % pl->alignment, 0);
    int nt = g->n_tensors;
    for (int t = 0; t < nt; t++) {
        bool want = !g->tensors[t].is_const && p->tensor_bytes[t] > 0 &&
                    (g->tensors[t].producer >= 0 || g->tensors[t].is_input) &&
                    !g->tensors[alias_root(p, t)].is_const;
        assert_int_equal(pl->offset[t] != SIZE_MAX, want);
        if (want && p->alias_of[t] < 0 && pl->root[t] == t)
            assert_int_equal(pl->offset[t] % pl->alignment, 0);
        if (want)
            assert_true(pl->offset[t] + p->tensor_bytes[t] <= pl->arena_bytes);
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (pl->ws_offset[k] != SIZE_MAX)
            assert_int_equal(pl->ws_offset[k] % pl->alignment, 0);
    for (int t = 0; t < nt; t++) {
        if (pl->offset[t] == SIZE_MAX)
            continue;
        int ft, lt;
        naive_life(g, t, &ft, &lt);
        for (int u = t + 1; u < nt; u++) {
            if (pl->offset[u] == SIZE_MAX)
                continue;
            int fu, lu;
            naive_life(g, u, &fu, &lu);
            if (lu < ft || fu > lt)
                continue;
            if (alias_root(p, t) == alias_root(p, u))
                continue;
            int lo = ft > fu ? ft : fu, hi = lt < lu ? lt : lu;
            if (lo == hi && inplace_pair(g, p, t, u, lo))
                continue;
            bool disjoint = pl->offset[t] + p->tensor_bytes[t] <= pl->offset[u] ||
                            pl->offset[u] + p->tensor_bytes[u] <= pl->offset[t];
            if (!disjoint)
                fprintf(stderr, "overlap: %s [%d,%d] @%zu+%zu and %s [%d,%d] @%zu+%zu\n", g->tensors[t].name, ft, lt,
                        pl->offset[t], p->tensor_bytes[t], g->tensors[u].name, fu, lu, pl->offset[u],
                        p->tensor_bytes[u]);
            assert_true(disjoint);
        }
        /* Workspaces against live tensors. */
        for (int k = 0; k < g->n_nodes; k++) {
            if (pl->ws_offset[k] == SIZE_MAX || k < ft || k > lt)
                continue;
            assert_true(pl->offset[t] + p->tensor_bytes[t] <= pl->ws_offset[k] ||
                        pl->ws_offset[k] + pl->ws_bytes[k] <= pl->offset[t]);
        }
    }
}

static sh_plan *plan_ok(sh_allocator *a, const sh_graph *g, const sh_program *p, size_t align, sh_plan_strategy s)
{
    sh_plan *pl = NULL;
    sh_err err = {0};
    int rc = sh_plan_build_strategy(a, g, p, align, s, &pl, &err);
    if (rc)
        fprintf(stderr, "plan: %s\n", err.msg);
    assert_int_equal(rc, 0);
    check_plan(g, p, pl);
    return pl;
}

/* ---- small graphs --------------------------------------------------------------------- */

static sh_graph *chain(sh_allocator *a, int n, sh_op op)
{
    sh_graph *g = sh_graph_create(a, "chain");
    int x = syn_t(g, "x", 4, 10, 10);   /* 1600 bytes */
    sh_graph_set_inputs(g, &x, 1);
    for (int i = 0; i < n; i++)
        x = syn_unary(g, op, x, 4, 10, 10);
    sh_graph_set_outputs(g, &x, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    return g;
}

static void chain_reuses_two_slots_or_one_in_place(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = chain(a, 6, SH_OP_RELU);
    sh_program *p = syn_compile(a, g, 0);
    sh_plan *pl = plan_ok(a, g, p, 64, SH_PLAN_GREEDY_SIZE);
    assert_int_equal(pl->lower_bound, 2 * 1600);
    assert_int_equal(pl->arena_bytes, 2 * 1600);
    assert_int_equal(pl->first[0], 0);
    assert_int_equal(pl->last[g->outputs[0]], 5);
    sh_plan_destroy(a, pl);
    sh_program_release(a, p);

    p = syn_compile(a, g, SYN_INPLACE);
    pl = plan_ok(a, g, p, 64, SH_PLAN_GREEDY_SIZE);
    assert_int_equal(pl->n_inplace, 6);
    assert_int_equal(pl->arena_bytes, 1600);
    for (int t = 0; t < g->n_tensors; t++)
        assert_int_equal(pl->offset[t], 0);
    sh_plan_destroy(a, pl);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void diamond_keeps_both_branches(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "diamond");
    int x = syn_t(g, "x", 1, 10, 10);              /* 400 -> aligned 448 at 64 */
    sh_graph_set_inputs(g, &x, 1);
    int l = syn_unary(g, SH_OP_RELU, x, 2, 10, 10);  /* 800 -> 832 */
    int r = syn_unary(g, SH_OP_SIGMOID, x, 3, 10, 10); /* 1200 -> 1216 */
    int s = syn_binary(g, SH_OP_ADD, l, l);
    int o = syn_unary(g, SH_OP_RELU, s, 2, 10, 10);
    int both[2] = {o, r};
    int y = syn_concat(g, both, 2);
    sh_graph_set_outputs(g, &y, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    for (int fl = 0; fl <= SYN_ALL; fl++) {
        sh_program *p = syn_compile(a, g, fl);
        for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++) {
            sh_plan *pl = plan_ok(a, g, p, 64, (sh_plan_strategy)st);
            sh_plan_destroy(a, pl);
        }
        sh_program_release(a, p);
    }
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void views_extend_their_root(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "views");
    int x = syn_t(g, "x", 4, 8, 8);
    sh_graph_set_inputs(g, &x, 1);
    int c = syn_conv(g, x, 4, 1, 1);                        /* step 0 */
    int v1 = syn_unary(g, SH_OP_RESHAPE, c, 4, 8, 8);       /* step 1, view */
    int v2 = syn_unary(g, SH_OP_FLATTEN, v1, 4, 8, 8);      /* step 2, view of view */
    int z = syn_unary(g, SH_OP_RELU, x, 4, 8, 8);           /* step 3 */
    int w = syn_unary(g, SH_OP_RELU, z, 4, 8, 8);           /* step 4 */
    int y = syn_binary(g, SH_OP_ADD, v2, w);                /* step 5 */
    sh_graph_set_outputs(g, &y, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    sh_program *p = syn_compile(a, g, SYN_VIEWS);
    p->alias_offset[v2] = 0;
    sh_plan *pl = plan_ok(a, g, p, 64, SH_PLAN_GREEDY_SIZE);
    assert_int_equal(pl->root[v2], c);
    assert_int_equal(pl->offset[v2], pl->offset[c]);
    assert_int_equal(pl->first[c], 0);
    assert_int_equal(pl->last[c], 5);   /* the view is read at step 5 */
    assert_true(pl->offset[z] != pl->offset[c]);
    sh_plan_destroy(a, pl);

    /* A view reaching outside its parent, and an alias cycle, are refused. */
    sh_err err = {0};
    p->alias_offset[v1] = 64;
    assert_int_equal(sh_plan_build(a, g, p, 64, &pl, &err), SHOAL_ERR_INVALID_ARG);
    assert_null(pl);
    assert_non_null(strstr(err.msg, "does not fit"));
    p->alias_offset[v1] = 0;
    p->alias_of[c] = v2;
    assert_int_equal(sh_plan_build(a, g, p, 64, &pl, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "cyclic"));
    assert_int_equal(sh_plan_build(a, g, p, 48, &pl, &err), SHOAL_ERR_INVALID_ARG);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void concat_in_place_writes_into_the_output(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "concat");
    int x = syn_t(g, "x", 2, 8, 8);
    sh_graph_set_inputs(g, &x, 1);
    int p1 = syn_unary(g, SH_OP_RELU, x, 2, 8, 8);      /* step 0 */
    int p2 = syn_unary(g, SH_OP_SIGMOID, x, 2, 8, 8);   /* step 1 */
    int p3 = syn_conv(g, p2, 3, 1, 1);                   /* step 2: p2 read after the concat too */
    int ins[3] = {p1, p2, p3};
    int c = syn_concat(g, ins, 3);                       /* step 3 */
    int y = syn_binary(g, SH_OP_ADD, c, c);              /* step 4 */
    sh_graph_set_outputs(g, &y, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    sh_program *p = syn_compile(a, g, SYN_CONCAT_INPLACE);
    sh_plan *pl = plan_ok(a, g, p, 256, SH_PLAN_GREEDY_SIZE);
    assert_int_equal(pl->offset[p1], pl->offset[c]);
    assert_int_equal(pl->offset[p2], pl->offset[c] + 512);
    assert_int_equal(pl->offset[p3], pl->offset[c] + 1024);
    assert_int_equal(pl->first[c], 0);     /* starts with the first producer */
    assert_int_equal(pl->root[p1], c);
    sh_plan_destroy(a, pl);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void inplace_only_when_the_input_dies(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "inplace");
    int x = syn_t(g, "x", 2, 8, 8);
    sh_graph_set_inputs(g, &x, 1);
    int c = syn_conv(g, x, 2, 1, 1);             /* step 0 */
    int s = syn_unary(g, SH_OP_SIGMOID, c, 2, 8, 8);  /* step 1: c dies -> in place */
    int r = syn_unary(g, SH_OP_RELU, s, 2, 8, 8);     /* step 2: s still read at 3 -> no */
    int y = syn_binary(g, SH_OP_MUL, s, r);           /* step 3: s dies, same size -> in place */
    sh_graph_set_outputs(g, &y, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    sh_program *p = syn_compile(a, g, SYN_INPLACE);
    sh_plan *pl = plan_ok(a, g, p, 64, SH_PLAN_GREEDY_SIZE);
    assert_int_equal(pl->offset[s], pl->offset[c]);
    assert_true(pl->offset[r] != pl->offset[s]);
    assert_int_equal(pl->offset[y], pl->offset[s]);
    assert_int_equal(pl->n_inplace, 2);
    assert_int_equal(pl->last[c], 3);
    sh_plan_destroy(a, pl);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* A backend running steps 1 and 3 beside steps 0 and 2 (two streams) sets release_step:
 * what step 2 reads must stay reserved through step 3, which may run at the same time, so
 * a (read by 2) and d (written by 3) may not share bytes, though in step order they could. */
static void release_steps_keep_reads_reserved(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "two streams");
    int x = syn_t(g, "x", 4, 8, 8);
    sh_graph_set_inputs(g, &x, 1);
    int ta = syn_unary(g, SH_OP_RELU, x, 4, 8, 8);        /* step 0, stream 0 */
    int tb = syn_unary(g, SH_OP_SIGMOID, x, 4, 8, 8);     /* step 1, stream 1 */
    int tc = syn_unary(g, SH_OP_RELU, ta, 4, 8, 8);       /* step 2, stream 0 */
    int td = syn_unary(g, SH_OP_RELU, tb, 4, 8, 8);       /* step 3, stream 1 */
    int y = syn_binary(g, SH_OP_ADD, tc, td);             /* step 4, joins */
    sh_graph_set_outputs(g, &y, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    for (int concurrent = 0; concurrent < 2; concurrent++) {
        sh_program *p = syn_compile(a, g, 0);
        if (concurrent) {
            p->release_step = sh_alloc(a, 5 * sizeof(int));
            assert_non_null(p->release_step);
            int rel[5] = {3, 2, 3, 3, 4};
            memcpy(p->release_step, rel, sizeof rel);
        }
        for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++) {
            sh_plan *pl = plan_ok(a, g, p, 64, (sh_plan_strategy)st);
            assert_int_equal(pl->last[ta], concurrent ? 3 : 2);
            if (concurrent) {
                bool apart = pl->offset[ta] + pl->bytes[ta] <= pl->offset[td] ||
                             pl->offset[td] + pl->bytes[td] <= pl->offset[ta];
                assert_true(apart);
            }
            sh_plan_destroy(a, pl);
        }
        sh_program_release(a, p);
    }
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void workspaces_live_one_step(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "ws");
    int x = syn_t(g, "x", 4, 16, 16);
    sh_graph_set_inputs(g, &x, 1);
    int c1 = syn_conv(g, x, 4, 3, 1);
    int c2 = syn_conv(g, c1, 4, 3, 1);
    int c3 = syn_conv(g, c2, 4, 3, 1);
    sh_graph_set_outputs(g, &c3, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    sh_program *p = syn_compile(a, g, SYN_WORKSPACE);
    sh_plan *pl = plan_ok(a, g, p, 64, SH_PLAN_GREEDY_SIZE);
    for (int k = 0; k < 3; k++)
        assert_int_equal(pl->ws_bytes[k], 4 * 9 * 16 * 16 * 4);
    /* At every step: input, output and workspace = 4096 + 4096 + 36864 bytes. */
    assert_int_equal(pl->lower_bound, 4096 * 2 + 36864);
    assert_int_equal(pl->arena_bytes, pl->lower_bound);
    /* Bind: every pointer is base + offset, workspaces too. */
    char *arena = malloc(pl->arena_bytes);
    void *tp[8], *wp[3];
    assert_int_equal(sh_plan_bind(pl, p, arena, NULL, tp, wp), 0);
    assert_ptr_equal(tp[c2], arena + pl->offset[c2]);
    assert_ptr_equal(wp[1], arena + pl->ws_offset[1]);
    assert_int_equal(sh_plan_bind(pl, p, NULL, NULL, tp, wp), SHOAL_ERR_INVALID_ARG);
    free(arena);
    sh_plan_destroy(a, pl);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void bind_points_weights_and_weight_views(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = sh_graph_create(a, "weights");
    int x = syn_t(g, "x", 1, 2, 2);
    sh_shape ws = {1, {4}};
    int w = sh_graph_add_tensor(g, "w", SH_DT_FLOAT32, &ws);
    float wv[4] = {1, 2, 3, 4};
    assert_int_equal(sh_graph_set_const(g, w, wv, sizeof wv, NULL), 0);
    int wr = syn_t(g, "w_view", 1, 2, 2);
    sh_graph_add_node(g, "reshape_w", SH_OP_RESHAPE, &w, 1, &wr, 1);
    int y = syn_binary(g, SH_OP_ADD, x, wr);
    sh_graph_set_inputs(g, &x, 1);
    sh_graph_set_outputs(g, &y, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    sh_program *p = syn_compile(a, g, 0);
    p->alias_of[wr] = w;      /* a view of a weight: outside the arena */
    p->tensor_bytes[wr] = 16;
    sh_plan *pl = plan_ok(a, g, p, 64, SH_PLAN_GREEDY_SIZE);
    assert_int_equal(pl->offset[w], SIZE_MAX);
    assert_int_equal(pl->offset[wr], SIZE_MAX);
    char arena[256], packed[16];
    void *wptr[8] = {0}, *tp[8], *wsp[2];
    wptr[w] = packed;
    assert_int_equal(sh_plan_bind(pl, p, arena, wptr, tp, wsp), 0);
    assert_ptr_equal(tp[w], packed);
    assert_ptr_equal(tp[wr], packed);
    assert_ptr_equal(tp[x], arena + pl->offset[x]);

    /* Shared arena helpers: max, then N x max. */
    const sh_plan *two[2] = {pl, NULL};
    assert_int_equal(sh_plan_shared_arena_bytes(two, 2), pl->arena_bytes);
    size_t n3;
    assert_int_equal(sh_plan_contexts_arena_bytes(two, 2, 3, &n3), 0);
    assert_int_equal(n3, 3 * pl->arena_bytes);
    sh_plan_destroy(a, pl);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* ---- random graphs and the YOLO-like one ---------------------------------------------- */

static void random_graphs_never_overlap(void **state)
{
    sh_allocator *a = sh_allocator_create();
    double worst[SH_PLAN_STRATEGY_COUNT] = {0}, sum[SH_PLAN_STRATEGY_COUNT] = {0};
    int n = 0;
    for (unsigned seed = 1; seed <= 60; seed++) {
        sh_graph *g = syn_random(a, seed, 20 + (int)(seed % 40));
        assert_non_null(g);
        int fl = (int)(seed % (SYN_ALL + 1));
        sh_program *p = syn_compile(a, g, fl);
        size_t best = SIZE_MAX;
        for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++) {
            sh_plan *pl = plan_ok(a, g, p, seed % 2 ? 256 : 64, (sh_plan_strategy)st);
            double r = (double)pl->arena_bytes / (double)pl->lower_bound;
            sum[st] += r;
            if (r > worst[st])
                worst[st] = r;
            if (st < SH_PLAN_AUTO && pl->arena_bytes < best)
                best = pl->arena_bytes;
            if (st == SH_PLAN_AUTO)
                assert_int_equal(pl->arena_bytes, best);
            sh_plan_destroy(a, pl);
        }
        n++;
        sh_program_release(a, p);
        sh_graph_destroy(g);
    }
    printf("random DAGs (%d), arena / lower bound:\n", n);
    for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++)
        printf("  %-22s mean %.3f worst %.3f\n", sh_plan_strategy_name((sh_plan_strategy)st), sum[st] / n, worst[st]);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void yolo_like_within_five_percent(void **state)
{
    sh_allocator *a = sh_allocator_create();
    static const struct { int size, wm, flags; size_t align; } cases[] = {
        {640, 16, SYN_ALL, 64}, {640, 16, SYN_ALL, 256}, {640, 16, 0, 256}, {640, 16, SYN_VIEWS | SYN_INPLACE, 64},
        {640, 64, SYN_ALL, 256}, {320, 32, SYN_ALL, 256}, {640, 48, SYN_CONCAT_INPLACE | SYN_VIEWS, 256},
        {640, 32, SYN_VIEWS | SYN_INPLACE | SYN_WORKSPACE, 256},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sh_graph *g = syn_yolo(a, cases[i].size, cases[i].wm);
        assert_non_null(g);
        sh_program *p = syn_compile(a, g, cases[i].flags);
        sh_plan *pl[SH_PLAN_STRATEGY_COUNT];
        for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++) {
            pl[st] = plan_ok(a, g, p, cases[i].align, (sh_plan_strategy)st);
            assert_int_equal(pl[st]->lower_bound, pl[0]->lower_bound);
        }
        printf("yolo %d w%-2d flags %2d align %3zu: %d nodes %d blocks, bound %7.2f MB; arena/bound:", cases[i].size,
               cases[i].wm, cases[i].flags, cases[i].align, g->n_nodes, pl[0]->n_blocks,
               pl[0]->lower_bound / 1048576.0);
        for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++)
            printf(" %s %.3f", sh_plan_strategy_name((sh_plan_strategy)st),
                   (double)pl[st]->arena_bytes / (double)pl[st]->lower_bound);
        printf("\n");
        assert_true((double)pl[SH_PLAN_AUTO]->arena_bytes <= 1.05 * (double)pl[SH_PLAN_AUTO]->lower_bound);
        if (i == 0) {
            /* Leave a drawing for humans in the test's working directory. */
            FILE *f = fopen("plan_yolo.svg", "w");
            if (f) {
                const sh_plan *ps[2] = {pl[SH_PLAN_AUTO], pl[SH_PLAN_BEST_FIT]};
                const char *names[2] = {"yolo-like 640, all backend features (auto)", "same, best-fit only"};
                sh_err err = {0};
                assert_int_equal(sh_plan_write_svg(f, ps, names, 2, 0, &err), 0);
                fclose(f);
            }
        }
        for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++)
            sh_plan_destroy(a, pl[st]);
        sh_program_release(a, p);
        sh_graph_destroy(g);
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* ---- fault injection ------------------------------------------------------------------ */

static void every_failed_allocation_is_reported_without_leaks(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = syn_yolo(a, 320, 16);
    sh_program *p = syn_compile(a, g, SYN_ALL);
    size_t base = sh_allocator_stats(a).in_use;
    for (int st = 0; st < SH_PLAN_STRATEGY_COUNT; st++) {
        int ok_at = -1;
        for (long n = 0; n < 100; n++) {
            sh_allocator_fail_after(a, n, 0);
            sh_plan *pl = NULL;
            sh_err err = {0};
            int rc = sh_plan_build_strategy(a, g, p, 256, (sh_plan_strategy)st, &pl, &err);
            sh_allocator_fail_after(a, -1, 0);
            if (rc == 0) {
                ok_at = (int)n;
                sh_plan_destroy(a, pl);
                break;
            }
            assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
            assert_null(pl);
            assert_non_null(strstr(err.msg, "out of memory"));
            assert_int_equal(sh_allocator_stats(a).in_use, base);
        }
        assert_true(ok_at > 5);
    }
    sh_program_release(a, p);
    sh_graph_destroy(g);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void svg_has_lanes_tooltips_and_legend(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g1 = syn_yolo(a, 320, 16), *g2 = chain(a, 8, SH_OP_RELU);
    sh_program *p1 = syn_compile(a, g1, SYN_ALL), *p2 = syn_compile(a, g2, 0);
    sh_plan *l1 = plan_ok(a, g1, p1, 256, SH_PLAN_GREEDY_SIZE), *l2 = plan_ok(a, g2, p2, 256, SH_PLAN_GREEDY_SIZE);
    const sh_plan *ps[2] = {l1, l2};
    const char *names[2] = {"detector <320>", NULL};
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    sh_err err = {0};
    assert_int_equal(sh_plan_write_svg(f, ps, names, 2, 0, &err), 0);
    fclose(f);
    assert_non_null(strstr(buf, "<svg"));
    assert_non_null(strstr(buf, "</svg>"));
    assert_non_null(strstr(buf, "<title>images"));
    assert_non_null(strstr(buf, "detector &lt;320&gt;"));
    assert_non_null(strstr(buf, ">chain<"));
    assert_non_null(strstr(buf, "lower bound"));
    assert_non_null(strstr(buf, "shared arena"));
    assert_non_null(strstr(buf, "workspace of"));
    free(buf);
    assert_int_equal(sh_plan_write_svg(NULL, ps, names, 2, 0, &err), SHOAL_ERR_INVALID_ARG);
    sh_plan_destroy(a, l1);
    sh_plan_destroy(a, l2);
    sh_program_release(a, p1);
    sh_program_release(a, p2);
    sh_graph_destroy(g1);
    sh_graph_destroy(g2);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(chain_reuses_two_slots_or_one_in_place),
        cmocka_unit_test(diamond_keeps_both_branches),
        cmocka_unit_test(views_extend_their_root),
        cmocka_unit_test(concat_in_place_writes_into_the_output),
        cmocka_unit_test(inplace_only_when_the_input_dies),
        cmocka_unit_test(workspaces_live_one_step),
        cmocka_unit_test(release_steps_keep_reads_reserved),
        cmocka_unit_test(bind_points_weights_and_weight_views),
        cmocka_unit_test(random_graphs_never_overlap),
        cmocka_unit_test(yolo_like_within_five_percent),
        cmocka_unit_test(every_failed_allocation_is_reported_without_leaks),
        cmocka_unit_test(svg_has_lanes_tooltips_and_legend),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
