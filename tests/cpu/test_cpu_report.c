/* The CPU backend's self-report (cpu_report.h), which shoal inspect --convs and the benchmark
 * metadata print: every Conv of the reference models names a oneDNN implementation built for
 * the ISA the backend reports (or an own AVX2 kernel, with the ISA it is built for), the
 * layout claims agree across every edge (a conv that hands
 * NHWC on has only readers that read NHWC; a conv reading what an NHWC node wrote reads NHWC),
 * and the layout counters match the per-node reports. Skips (77) without models/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/cpu/cpu_report.h"
#include "runtime/session.h"

/* oneDNN names its kernels by the ISA family they were generated for ("jit:avx2",
 * "brgconv:avx512_core"); the reported ISA may carry a suffix ("avx512_core_vnni"). */
static bool impl_matches_isa(const char *how, const char *isa)
{
    const char *colon = strchr(how, ':');
    if (!colon)
        return false;
    size_t n = strcspn(colon + 1, ",");
    return n > 0 && strncmp(colon + 1, isa, n) == 0;
}

static void check_model(const char *path, int threads)
{
    sh_allocator *a = sh_allocator_create();
    assert_non_null(a);
    sh_backend be = {0};
    sh_err err = {0};
    sh_backend_params bp = {.alloc = a, .n_threads = threads};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &err), 0);
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = &be;
    sh_session *s = NULL;
    if (sh_session_create_file(&sp, path, &s, &err))
        fail_msg("%s: %s", path, err.msg);
    const sh_program *prog = sh_session_program(s);
    const sh_graph *g = sh_session_graph(s);
    assert_non_null(prog);
    const char *isa = sh_backend_cpu_isa();
    assert_true(strncmp(isa, "avx", 3) == 0 || strcmp(isa, "sse41") == 0);
    int convs = 0, linked_out = 0, linked_in = 0, transposes = 0, nhwc_nodes = 0;
    char how[256], next[256];
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        memset(how, 0x5a, sizeof how);
        int rc = sh_backend_cpu_describe_node(prog, k, how, sizeof how);
        if (n->dead || n->op != SH_OP_CONV) {
            /* Nodes other than convs report only that they run on NHWC tensors, if they do. */
            if (rc == 0)
                assert_string_equal(how, "NHWC");
            else
                assert_int_equal(rc, -1);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_non_null(memchr(how, '\0', sizeof how));
        convs++;
        bool onednn = strncmp(how, "oneDNN ", 7) == 0;
        if (!onednn && strncmp(how, "own ", 4) != 0)
            continue;   /* the GEMM paths (e.g. a conv whose activation oneDNN lacks) */
        if (onednn) {
            if (!impl_matches_isa(how, isa))
                fail_msg("%s: '%s' is not an %s kernel", n->name, how, isa);
            /* oneDNN's reference kernel on any band is a 50-100x slower conv (a band of a row
             * or two at many threads got it): never. */
            if (strstr(how, "ref:"))
                fail_msg("%s at %d threads: '%s'", n->name, threads, how);
            const sh_tensor *Y = sh_node_output(g, n, 0);
            int bands = atoi(strchr(how, ',') + 1);
            assert_true(bands >= 1 && bands <= threads);
            if (threads <= 2 && Y->shape.d[2] >= threads)
                assert_int_equal(bands, threads);
        } else if (!strstr(how, ":avx2,")) {
            fail_msg("%s: the own kernel '%s' names no ISA", n->name, how);
        }
        linked_in += strstr(how, "src NHWC,") != NULL;
        transposes += strstr(how, "src NCHW->NHWC") != NULL;
        transposes += strstr(how, "dst NHWC->NCHW") != NULL;
        if (!strstr(how, "dst NHWC") || strstr(how, "dst NHWC->NCHW"))
            continue;
        linked_out++;
        /* Every reader of an NHWC output must read it as NHWC: a oneDNN or own conv (as its
         * input 0) that says so, or another node that reports running on NHWC tensors. */
        int out_t = n->outputs[0];
        for (int c = 0; c < g->n_nodes; c++) {
            const sh_node *r = &g->nodes[c];
            if (r->dead)
                continue;
            for (int i = 0; i < r->n_inputs; i++) {
                if (r->inputs[i] != out_t)
                    continue;
                memset(next, 0x5a, sizeof next);
                assert_int_equal(sh_backend_cpu_describe_node(prog, c, next, sizeof next), 0);
                if (r->op == SH_OP_CONV) {
                    assert_int_equal(i, 0);
                    if (!strstr(next, "src NHWC,"))
                        fail_msg("%s hands NHWC to %s, which reports '%s'", n->name, r->name, next);
                } else if (strcmp(next, "NHWC") != 0)
                    fail_msg("%s hands NHWC to %s (%s), which reports '%s'", n->name, r->name, sh_op_name(r->op),
                             next);
            }
        }
    }
    /* The NHWC nodes other than convs: every tensor they touch that the next node reads in a
     * layout of its own must be NHWC too, so a conv reading one of their outputs says so. */
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || n->op == SH_OP_CONV || sh_backend_cpu_describe_node(prog, k, how, sizeof how) != 0)
            continue;
        assert_string_equal(how, "NHWC");
        nhwc_nodes++;
        for (int c = 0; c < g->n_nodes; c++) {
            const sh_node *r = &g->nodes[c];
            if (r->dead || r->op != SH_OP_CONV || r->n_inputs < 1)
                continue;
            for (int o = 0; o < n->n_outputs; o++)
                if (r->inputs[0] == n->outputs[o] && sh_backend_cpu_describe_node(prog, c, next, sizeof next) == 0 &&
                    !strstr(next, "src NHWC,"))
                    fail_msg("%s (%s) writes NHWC for %s, which reports '%s'", n->name, sh_op_name(n->op), r->name,
                             next);
        }
    }
    sh_cpu_layout_stats st;
    assert_int_equal(sh_backend_cpu_layout_stats(prog, &st), 0);
    assert_int_equal(st.transposes, transposes);
    assert_int_equal(st.nhwc_other_ops, nhwc_nodes);
    assert_true(convs > 10);
    assert_true(linked_out > 0);
    assert_true(linked_in >= linked_out);
    assert_int_equal(sh_backend_cpu_describe_node(prog, -1, how, sizeof how), -1);
    assert_int_equal(sh_backend_cpu_describe_node(prog, g->n_nodes, how, sizeof how), -1);
    assert_int_equal(sh_backend_cpu_describe_node(NULL, 0, how, sizeof how), -1);
    sh_session_destroy(s);
    sh_backend_destroy(&be);
    sh_allocator_destroy(a);
}

static void test_yolo_convs(void **state)
{
    (void)state;
    check_model(SHOAL_MODELS_DIR "/blind_road.onnx", 2);
}

/* Many threads: thin bands, where oneDNN offered only its reference kernel for band 0's
 * weight layout; the backend takes fewer, taller bands instead. */
static void test_yolo_convs_many_threads(void **state)
{
    (void)state;
    check_model(SHOAL_MODELS_DIR "/blind_road.onnx", 16);
}

static void test_mobilenet_convs(void **state)
{
    (void)state;
    check_model(SHOAL_MODELS_DIR "/hand.onnx", 1);
}

int main(void)
{
    if (access(SHOAL_MODELS_DIR "/blind_road.onnx", R_OK) || access(SHOAL_MODELS_DIR "/hand.onnx", R_OK)) {
        printf("models/ absent: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yolo_convs),
        cmocka_unit_test(test_yolo_convs_many_threads),
        cmocka_unit_test(test_mobilenet_convs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
