/* The CUDA backend's multi-stream schedule (cuda_streams.c), checked without a GPU: on
 * YOLO-like and random graphs (tests/plan/synth.c, with views, concat in place, in-place ops and
 * workspaces), every step must come after the steps it reads from (same stream or a wait),
 * and the plan built with the schedule's release_step must never let two blocks share bytes
 * unless every access to one happens before every access to the other, in the order the
 * streams and waits actually guarantee (not the step order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/cuda/cuda_impl.h"
#include "plan/plan.h"
#include "synth.h"

/* happens-before over steps 0..n-1 plus a virtual start (n) and end (n + 1) */
typedef struct order {
    int n, words;
    uint64_t *bits;
} order;

static bool before(const order *o, int a, int b)
{
    if (a == b)
        return false;
    if (a == o->n || b == o->n + 1)
        return true;                       /* start precedes and end follows everything */
    if (b == o->n || a == o->n + 1)
        return false;
    return (o->bits[(size_t)b * o->words + a / 64] >> (a % 64)) & 1;
}

static void add_before(order *o, int b, int a)   /* a and its predecessors precede b */
{
    uint64_t *dst = o->bits + (size_t)b * o->words, *src = o->bits + (size_t)a * o->words;
    for (int w = 0; w < o->words; w++)
        dst[w] |= src[w];
    dst[a / 64] |= 1ull << (a % 64);
}

static bool real(const sh_graph *g, const sh_cuda_prog *cp, int k)
{
    return !g->nodes[k].dead && cp->nodes[k].kind != NK_SKIP;
}

/* What the streams and waits guarantee: stream order plus one edge per wait. */
static order guaranteed(const sh_graph *g, const sh_cuda_prog *cp)
{
    order o = {.n = g->n_nodes, .words = (g->n_nodes + 63) / 64};
    o.bits = calloc((size_t)o.n * (size_t)(o.words ? o.words : 1) + 1, sizeof(uint64_t));
    for (int k = 0; k < o.n; k++) {
        if (!real(g, cp, k))
            continue;
        for (int j = k - 1; j >= 0; j--)
            if (real(g, cp, j) && cp->stream_of[j] == cp->stream_of[k]) {
                add_before(&o, k, j);
                break;
            }
        for (int w = cp->wait_first[k]; w < cp->wait_first[k + 1]; w++)
            add_before(&o, k, cp->waits[w]);
    }
    return o;
}

/* The steps that produce tensor t's bytes, through views (skipped steps). */
static void producers(const sh_graph *g, const sh_cuda_prog *cp, int t, int *out, int *n)
{
    int p = t >= 0 ? g->tensors[t].producer : -1;
    if (p < 0)
        return;
    if (real(g, cp, p)) {
        out[(*n)++] = p;
        return;
    }
    for (int i = 0; i < g->nodes[p].n_inputs; i++)
        producers(g, cp, g->nodes[p].inputs[i], out, n);
}

/* The fake compile's steps: views and fully in-place concats do nothing at run time. */
static void fake_kinds(const sh_graph *g, const sh_program *p, sh_cuda_prog *cp)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        /* a view: every output lives in the step's own input (split, reshape), or a concat whose
         * inputs were all written in place; an output aliased elsewhere is still written here */
        bool skip = n->n_outputs > 0 && n->n_inputs > 0;
        if (n->op == SH_OP_CONCAT) {
            for (int i = 0; i < n->n_inputs; i++)
                skip &= p->alias_of[n->inputs[i]] == n->outputs[0];
        } else {
            for (int o = 0; o < n->n_outputs; o++)
                skip &= p->alias_of[n->outputs[o]] == n->inputs[0];
        }
        cp->nodes[k].kind = skip ? NK_SKIP : NK_UNARY;
    }
}

/* Accesses (steps) of every block: a tensor root's writers and readers, a workspace's step. */
typedef struct block_use {
    size_t lo, hi;
    int n;
    int *steps;
} block_use;

static void use(block_use *b, int step)
{
    for (int i = 0; i < b->n; i++)
        if (b->steps[i] == step)
            return;
    b->steps[b->n++] = step;
}

static void check_schedule(sh_allocator *a, const sh_graph *g, int flags, int window, bool *saw_concurrency)
{
    sh_program *p = syn_compile(a, g, flags);
    assert_non_null(p);
    sh_cuda_prog cp = {0};
    cp.nodes = calloc((size_t)g->n_nodes + 1, sizeof *cp.nodes);
    cp.fused_add = calloc((size_t)g->n_nodes + 1, 1);
    fake_kinds(g, p, &cp);
    sh_err err = {0};
    assert_int_equal(sh_cuda_schedule_steps(a, g, p, &cp, SH_CUDA_STREAMS, window, window ? 4096 : 0, &err), 0);
    *saw_concurrency |= cp.n_streams > 1;
    order o = guaranteed(g, &cp);
    int *deps = malloc(sizeof(int) * (size_t)(g->n_nodes + 1) * 8);

    /* 1. every step after what it reads */
    for (int k = 0; k < g->n_nodes; k++) {
        if (!real(g, &cp, k))
            continue;
        assert_true(p->release_step[k] >= k);
        for (int i = 0; i < g->nodes[k].n_inputs; i++) {
            int nd = 0;
            producers(g, &cp, g->nodes[k].inputs[i], deps, &nd);
            for (int d = 0; d < nd; d++)
                assert_true(before(&o, deps[d], k));
        }
    }

    /* 2. a window keeps every step's release within `window` real steps; steps writing more
     * than the side limit stay on the first stream */
    if (window > 0) {
        for (int k = 0; k < g->n_nodes; k++) {
            size_t out = 0;
            for (int j = 0; j < g->nodes[k].n_outputs; j++)
                out += g->nodes[k].outputs[j] >= 0 ? p->tensor_bytes[g->nodes[k].outputs[j]] : 0;
            if (real(g, &cp, k) && out > 4096)
                assert_int_equal(cp.stream_of[k], 0);
        }
        int *pos = calloc((size_t)g->n_nodes + 1, sizeof *pos), r = 0;
        for (int k = 0; k < g->n_nodes; k++)
            pos[k] = real(g, &cp, k) ? r++ : -1;
        for (int k = 0; k < g->n_nodes; k++)
            if (real(g, &cp, k))
                assert_true(pos[p->release_step[k]] <= pos[k] + window);
        free(pos);
    }

    /* 3. shared bytes only between blocks whose accesses are ordered */
    sh_plan *pl = NULL;
    assert_int_equal(sh_plan_build(a, g, p, 64, &pl, &err), 0);
    int nb = g->n_tensors + g->n_nodes;
    block_use *b = calloc((size_t)nb, sizeof *b);
    for (int i = 0; i < nb; i++)
        b[i].steps = malloc(sizeof(int) * (size_t)(g->n_nodes + 2));
    for (int t = 0; t < g->n_tensors; t++) {
        int r = pl->root[t];
        if (r < 0 || pl->offset[r] == SIZE_MAX || g->tensors[t].is_const)
            continue;
        b[r].lo = pl->offset[r];
        b[r].hi = pl->offset[r] + p->tensor_bytes[r];
        int nd = 0;
        producers(g, &cp, t, deps, &nd);
        for (int d = 0; d < nd; d++)
            use(&b[r], deps[d]);
        if (g->tensors[t].is_input)
            use(&b[r], g->n_nodes);
        if (g->tensors[t].is_output)
            use(&b[r], g->n_nodes + 1);
        for (int k = 0; k < g->n_nodes; k++)
            if (real(g, &cp, k))
                for (int i = 0; i < g->nodes[k].n_inputs; i++)
                    if (g->nodes[k].inputs[i] == t)
                        use(&b[r], k);
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (pl->ws_offset[k] != SIZE_MAX) {
            block_use *w = &b[g->n_tensors + k];
            w->lo = pl->ws_offset[k];
            w->hi = pl->ws_offset[k] + pl->ws_bytes[k];
            use(w, k);
        }
    for (int i = 0; i < nb; i++)
        for (int j = i + 1; j < nb; j++) {
            if (!b[i].n || !b[j].n || b[i].hi <= b[j].lo || b[j].hi <= b[i].lo)
                continue;
            bool i_first = true, j_first = true;
            for (int x = 0; x < b[i].n; x++)
                for (int y = 0; y < b[j].n; y++) {
                    i_first &= before(&o, b[i].steps[x], b[j].steps[y]);
                    j_first &= before(&o, b[j].steps[y], b[i].steps[x]);
                }
            if (!i_first && !j_first) {
                for (int z = 0; z < 2; z++) {
                    const block_use *u = z ? &b[j] : &b[i];
                    fprintf(stderr, "block %d (%s):", z ? j : i, (z ? j : i) < g->n_tensors ? g->tensors[z ? j : i].name : "ws");
                    for (int x = 0; x < u->n; x++)
                        fprintf(stderr, " step %d (stream %d, release %d)", u->steps[x],
                                u->steps[x] < g->n_nodes ? cp.stream_of[u->steps[x]] : -1,
                                u->steps[x] < g->n_nodes ? p->release_step[u->steps[x]] : -1);
                    fprintf(stderr, "\n");
                }
                for (int t = 0; t < g->n_tensors; t++)
                    if (pl->root[t] == i || pl->root[t] == j)
                        fprintf(stderr, "  tensor %d (%s) root %d offset %zu bytes %zu\n", t, g->tensors[t].name,
                                pl->root[t], pl->offset[t], p->tensor_bytes[t]);
                fail_msg("flags %d, %s: blocks %d and %d share bytes [%zu, %zu) but may be in use at once", flags, g->name, i, j,
                         b[i].lo > b[j].lo ? b[i].lo : b[j].lo, b[i].hi < b[j].hi ? b[i].hi : b[j].hi);
            }
        }
    for (int i = 0; i < nb; i++)
        free(b[i].steps);
    free(b);
    free(deps);
    free(o.bits);
    sh_plan_destroy(a, pl);
    sh_free(a, cp.stream_of);
    sh_free(a, cp.wait_first);
    sh_free(a, cp.waits);
    sh_free(a, cp.events);
    free(cp.nodes);
    free(cp.fused_add);
    sh_program_release(a, p);
}

static void yolo_graphs(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    bool concurrent = false;
    for (int wm = 8; wm <= 16; wm += 8) {
        sh_graph *g = syn_yolo(a, 160, wm);
        assert_non_null(g);
        for (int flags = 0; flags <= SYN_ALL; flags += 5)
            for (int w = 0; w <= 12; w += 4)
                check_schedule(a, g, flags, w, &concurrent);
        sh_graph_destroy(g);
    }
    assert_true(concurrent);   /* the heads do run beside the neck */
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void random_graphs(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    bool concurrent = false;
    for (unsigned seed = 1; seed <= 60; seed++) {
        sh_graph *g = syn_random(a, seed, 40 + (int)(seed % 30));
        assert_non_null(g);
        check_schedule(a, g, seed % 2 ? SYN_ALL : 0, (int)(seed % 3) * 5, &concurrent);
        sh_graph_destroy(g);
    }
    assert_true(concurrent);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void one_stream_changes_nothing(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = syn_yolo(a, 160, 8);
    sh_program *p = syn_compile(a, g, SYN_ALL);
    sh_cuda_prog cp = {0};
    cp.nodes = calloc((size_t)g->n_nodes, sizeof *cp.nodes);
    cp.fused_add = calloc((size_t)g->n_nodes, 1);
    fake_kinds(g, p, &cp);
    sh_err err = {0};
    assert_int_equal(sh_cuda_schedule_steps(a, g, p, &cp, 1, 0, 0, &err), 0);
    assert_int_equal(cp.n_streams, 1);
    assert_null(p->release_step);
    assert_null(cp.stream_of);
    free(cp.nodes);
    free(cp.fused_add);
    sh_program_release(a, p);
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(yolo_graphs),
        cmocka_unit_test(random_graphs),
        cmocka_unit_test(one_stream_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
