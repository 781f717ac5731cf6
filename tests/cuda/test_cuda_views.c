/* Channel-slice views (cuda_views.c), checked without a GPU: the CUDA compiler runs on a host
 * context that claims an H100 (own convs only, so no cuDNN handle is needed), and each graph of
 * slice_graphs.h must get the views, pixel strides and remaining copies the pass promises;
 * SHOAL_CUDA_NO_SLICE_VIEWS=1 must give back today's copies; the planner must accept the
 * strided views. Values are compared with the CPU backend by test_cuda_ops on the GPU. */
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
#include "harness.h"
#include "slice_graphs.h"

typedef struct compiled {
    sh_graph *g;
    sh_program *p;
    sh_cuda_ctx c;
} compiled;

/* The backend tuning of the next compile. One stream: the multi-stream schedule creates events
 * on a device, and this test has none. */
static shoal_tuning tuning = {.cuda_streams = 1};

static void compile(compiled *out, void (*build)(sh_graph *))
{
    sh_err err = {0};
    memset(out, 0, sizeof *out);
    out->c.tune = tuning;
    out->c.cc_major = 9;
    out->c.sms = 132;
    out->c.max_smem = 227 * 1024;
    out->g = sh_graph_create(NULL, "slices");
    out->g->opset = 13;
    build(out->g);
    assert_int_equal(sh_graph_finalize(out->g, &err), 0);
    int rc = sh_cuda_compile(&out->c, out->g, &out->p, &err);
    if (rc)
        fail_msg("compile: %s", err.msg);
    /* the planner takes the strided views as they are */
    sh_plan *plan = NULL;
    rc = sh_plan_build(NULL, out->g, out->p, 256, &plan, &err);
    if (rc)
        fail_msg("plan: %s", err.msg);
    sh_plan_destroy(NULL, plan);
}

static void release(compiled *c)
{
    sh_cuda_program_free(&c->c, c->p);
    sh_graph_destroy(c->g);
}

static const sh_cuda_prog *prog(const compiled *c) { return c->p->impl; }

static int node_of(const compiled *c, sh_op op)
{
    for (int k = 0; k < c->g->n_nodes; k++)
        if (c->g->nodes[k].op == op)
            return k;
    return -1;
}

static int tensor_named(const compiled *c, const char *name, int nth)
{
    for (int t = 0; t < c->g->n_tensors; t++)
        if (!strcmp(c->g->tensors[t].name, name) && nth-- == 0)
            return t;
    return -1;
}

/* the own conv producing tensor t */
static const sh_cuda_node *conv_writing(const compiled *c, int t)
{
    int k = c->g->tensors[t].producer;
    assert_true(k >= 0);
    assert_int_equal(prog(c)->nodes[k].kind, NK_IGEMM);
    return &prog(c)->nodes[k];
}

static const sh_cuda_node *conv_reading(const compiled *c, int t)
{
    for (int k = 0; k < c->g->n_nodes; k++)
        if (c->g->nodes[k].op == SH_OP_CONV && c->g->nodes[k].inputs[0] == t) {
            assert_int_equal(prog(c)->nodes[k].kind, NK_IGEMM);
            return &prog(c)->nodes[k];
        }
    fail_msg("no conv reads tensor %d", t);
    return NULL;
}

static void c2f16(sh_graph *g) { sg_c2f(g, 32, 16, 2, true, 20); }
static void c2f8_plain(sh_graph *g) { sg_c2f(g, 16, 8, 2, false, 16); }
static void neck(sh_graph *g) { sg_neck(g, 16, 16, 24, 16); }
static void split_convs(sh_graph *g) { sg_split_convs(g, 16, 16, 24, 12); }

/* C2f: cv1 writes into the concat's first 32 channels, the split halves and both bottleneck
 * outputs are slices of the concat, nothing is copied, and every stride is 64. */
static void c2f_becomes_views(void **state)
{
    (void)state;
    compiled c;
    compile(&c, c2f16);
    const sh_program *p = c.p;
    int cat = tensor_named(&c, "cat", 0), cv1 = tensor_named(&c, "cv1", 0);
    int part0 = tensor_named(&c, "part", 0), part1 = tensor_named(&c, "part", 1);
    int sum0 = tensor_named(&c, "sum", 0), sum1 = tensor_named(&c, "sum", 1);
    assert_int_equal(prog(&c)->nodes[node_of(&c, SH_OP_CONCAT)].kind, NK_SKIP);
    assert_int_equal(prog(&c)->nodes[node_of(&c, SH_OP_SPLIT)].kind, NK_SKIP);
    assert_int_equal(p->alias_of[cv1], cat);
    assert_int_equal(p->alias_offset[cv1], 0);
    assert_int_equal(p->alias_of[part1], cat);
    assert_int_equal(p->alias_offset[part1], 16 * 2);
    assert_int_equal(p->alias_of[part0], cat);
    assert_int_equal(p->alias_of[sum0], cat);
    assert_int_equal(p->alias_offset[sum0], 32 * 2);
    assert_int_equal(p->alias_offset[sum1], 48 * 2);
    assert_int_equal(prog(&c)->ld[part1], 64);
    assert_int_equal(prog(&c)->ld[cat], 0);
    assert_int_equal(conv_writing(&c, cv1)->ig.y_ld, 64);
    const sh_cuda_node *m1 = conv_reading(&c, part1);
    assert_int_equal(m1->ig.x_ld, 64);
    assert_int_equal(m1->ig.y_ld, 16);   /* the bottleneck's inner tensor stays dense */
    /* the second conv of each bottleneck adds its input (a slice) and writes a slice */
    int z0 = tensor_named(&c, "m.cv2", 0);
    const sh_cuda_node *m2 = conv_writing(&c, z0);
    assert_true(m2->has_res);
    assert_int_equal(m2->res_t, part1);
    assert_int_equal(m2->ig.r_ld, 64);
    assert_int_equal(m2->ig.y_ld, 64);
    assert_int_equal(conv_reading(&c, cat)->ig.x_ld, 64);
    release(&c);

    tuning.cuda_no_slice_views = 1;
    compile(&c, c2f16);
    tuning.cuda_no_slice_views = 0;
    assert_int_equal(prog(&c)->nodes[node_of(&c, SH_OP_CONCAT)].kind, NK_COPY);
    assert_int_equal(prog(&c)->nodes[node_of(&c, SH_OP_SPLIT)].kind, NK_COPY);
    assert_int_equal(c.p->alias_of[tensor_named(&c, "cv1", 0)], -1);
    assert_int_equal(conv_reading(&c, tensor_named(&c, "part", 1))->ig.x_ld, 16);
    release(&c);
}

/* Without shortcuts the bottleneck outputs are the convs' own outputs. */
static void c2f_without_shortcut(void **state)
{
    (void)state;
    compiled c;
    compile(&c, c2f8_plain);
    int cat = tensor_named(&c, "cat", 0);
    assert_int_equal(prog(&c)->nodes[node_of(&c, SH_OP_CONCAT)].kind, NK_SKIP);
    int z1 = tensor_named(&c, "m.cv2", 1);
    assert_int_equal(c.p->alias_of[z1], cat);
    assert_int_equal(c.p->alias_offset[z1], 24 * 2);
    assert_int_equal(conv_writing(&c, z1)->ig.y_ld, 32);
    /* z0 feeds the next bottleneck and the concat */
    assert_int_equal(conv_reading(&c, tensor_named(&c, "m.cv2", 0))->ig.x_ld, 32);
    release(&c);
}

/* The neck: the resized map (not a conv's output) is copied, the skip conv writes in place
 * at channel 16 and the conv beside the concat reads it with the concat's stride. */
static void neck_concat(void **state)
{
    (void)state;
    compiled c;
    compile(&c, neck);
    int cat = tensor_named(&c, "cat", 0), skip = tensor_named(&c, "skip", 0);
    const sh_cuda_node *cc = &prog(&c)->nodes[node_of(&c, SH_OP_CONCAT)];
    assert_int_equal(cc->kind, NK_COPY);
    assert_int_equal(cc->n_copies, 1);
    assert_int_equal(cc->copies[0].in_slot, 0);
    assert_int_equal(c.p->alias_of[skip], cat);
    assert_int_equal(c.p->alias_offset[skip], 16 * 2);
    assert_int_equal(conv_writing(&c, skip)->ig.y_ld, 40);
    assert_int_equal(conv_reading(&c, skip)->ig.x_ld, 40);
    release(&c);
    /* channel offsets off a multiple of 8 (test_cuda_ops: neck c0=12) need cuDNN convs for
     * the 12-channel tensors, so they are checked on the GPU only */
}

/* A split read by own convs only (as input and as a fused residual). */
static void split_read_by_convs(void **state)
{
    (void)state;
    compiled c;
    compile(&c, split_convs);
    int wide = tensor_named(&c, "wide", 0);
    int part0 = tensor_named(&c, "part", 0), part1 = tensor_named(&c, "part", 1);
    assert_int_equal(prog(&c)->nodes[node_of(&c, SH_OP_SPLIT)].kind, NK_SKIP);
    assert_int_equal(c.p->alias_of[part0], wide);
    assert_int_equal(c.p->alias_of[part1], wide);
    assert_int_equal(c.p->alias_offset[part1], 16 * 2);
    assert_int_equal(conv_reading(&c, part0)->ig.x_ld, 40);
    assert_int_equal(conv_reading(&c, part1)->ig.x_ld, 40);
    assert_int_equal(conv_writing(&c, wide)->ig.y_ld, 40);   /* the root stays dense */
    const sh_cuda_node *pb = conv_writing(&c, tensor_named(&c, "pb", 0));
    assert_true(pb->has_res);
    assert_int_equal(pb->ig.r_ld, 40);
    assert_int_equal(pb->ig.y_ld, 24);
    release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(c2f_becomes_views),
        cmocka_unit_test(c2f_without_shortcut),
        cmocka_unit_test(neck_concat),
        cmocka_unit_test(split_read_by_convs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
