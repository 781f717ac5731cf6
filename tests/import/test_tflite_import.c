/* TFLite import of MediaPipe's real hand models (models/, from make models; skipped without
 * them): names, shapes and op mapping as the files declare them (counts read from the files'
 * operator lists: graph.txt section 4 of ../shared/real-models/hands), the same graphs read
 * from a .task zip bundle, and malformed files: every truncation point and byte flips all over
 * the header, vtables and offsets must end in a clear error or a valid graph, never a crash
 * (run under ASan in the sanitizer build). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "backends/backend.h"
#include "import/tflite_import.h"
#include "runtime/session.h"

#define PALM SHOAL_MODELS_DIR "/palm_detection_full.tflite"
#define LANDMARK SHOAL_MODELS_DIR "/hand_landmark_full.tflite"

static void *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, f), *len);
    fclose(f);
    return b;
}

static int count_op(const sh_graph *g, sh_op op)
{
    int n = 0;
    for (int i = 0; i < g->n_nodes; i++)
        n += g->nodes[i].op == op;
    return n;
}

/* Imports, compiles on the CPU backend and checks the outputs' static shapes. */
static void check_model(const char *path, const char *input, const sh_shape *in_shape, int n_out,
                        const char *const *out_names, const sh_shape *out_shapes, int convs)
{
    sh_allocator *a = sh_allocator_create();
    sh_graph *g = NULL;
    sh_err err = {0};
    int rc = sh_tflite_load_file(a, path, &g, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(g->n_inputs, 1);
    assert_string_equal(g->tensors[g->inputs[0]].name, input);
    assert_true(sh_shape_equal(&g->tensors[g->inputs[0]].shape, in_shape));
    /* every CONV_2D and DEPTHWISE_CONV_2D of the file is one Conv */
    assert_int_equal(count_op(g, SH_OP_CONV), convs);
    sh_backend be;
    sh_backend_params bp = {.alloc = a, .n_threads = 1};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &err), 0);
    sh_session_params p = sh_session_default_params();
    p.alloc = a;
    p.backend = &be;
    sh_session *s;
    rc = sh_session_create_graph(&p, g, &s, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(sh_session_n_outputs(s), n_out);
    for (int i = 0; i < n_out; i++) {
        sh_tensor_info o;
        assert_int_equal(sh_session_output(s, i, &o), 0);
        assert_string_equal(o.name, out_names[i]);
        assert_true(sh_shape_equal(&o.shape, &out_shapes[i]));
    }
    sh_session_destroy(s);
    sh_backend_destroy(&be);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_palm_model(void **state)
{
    (void)state;
    sh_shape in = {4, {1, 192, 192, 3}};
    const char *names[2] = {"Identity", "Identity_1"};
    sh_shape shapes[2] = {{3, {1, 2016, 18}}, {3, {1, 2016, 1}}};
    check_model(PALM, "input_1", &in, 2, names, shapes, 63);
}

static void test_landmark_model(void **state)
{
    (void)state;
    sh_shape in = {4, {1, 224, 224, 3}};
    const char *names[4] = {"Identity", "Identity_1", "Identity_2", "Identity_3"};
    sh_shape shapes[4] = {{2, {1, 63}}, {2, {1, 1}}, {2, {1, 1}}, {2, {1, 63}}};
    check_model(LANDMARK, "input_1", &in, 4, names, shapes, 47);
}

/* Writes a zip bundle like MediaPipe's hand_landmarker.task (two named .tflite members). */
static void write_bundle(const char *path, const void *palm, size_t palm_len, const void *lm, size_t lm_len)
{
    int zerr;
    unlink(path);
    zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &zerr);
    assert_non_null(z);
    zip_source_t *s1 = zip_source_buffer(z, palm, palm_len, 0), *s2 = zip_source_buffer(z, lm, lm_len, 0);
    assert_true(zip_file_add(z, "hand_detector.tflite", s1, 0) >= 0);
    assert_true(zip_file_add(z, "hand_landmarks_detector.tflite", s2, 0) >= 0);
    assert_int_equal(zip_close(z), 0);
}

static void test_task_bundle(void **state)
{
    (void)state;
    size_t pl, ll;
    void *palm = read_all(PALM, &pl), *lm = read_all(LANDMARK, &ll);
    char path[] = "/tmp/shoal_test_bundle_XXXXXX.task";
    int fd = mkstemps(path, 5);
    assert_true(fd >= 0);
    close(fd);
    write_bundle(path, palm, pl, lm, ll);
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_graph *g = NULL;
    char member[512];
    snprintf(member, sizeof member, "%s#hand_landmarks_detector.tflite", path);
    assert_int_equal(sh_tflite_load_file(a, member, &g, &err), 0);
    assert_int_equal(g->n_outputs, 4);
    sh_graph_destroy(g);
    snprintf(member, sizeof member, "%s#hand_detector.tflite", path);
    assert_int_equal(sh_tflite_load_file(a, member, &g, &err), 0);
    assert_int_equal(g->n_outputs, 2);
    sh_graph_destroy(g);
    /* a missing member names what the bundle holds; two .tflite members need a name */
    snprintf(member, sizeof member, "%s#nope.tflite", path);
    assert_int_equal(sh_tflite_load_file(a, member, &g, &err), SHOAL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "hand_detector.tflite"));
    assert_int_equal(sh_tflite_load_file(a, path, &g, &err), SHOAL_ERR_NOT_FOUND);
    assert_null(g);
    /* a truncated archive is a parse error */
    size_t zl;
    void *zipb = read_all(path, &zl);
    void *buf;
    size_t len;
    assert_int_equal(sh_task_read_member_buffer(a, zipb, zl / 2, "hand_detector.tflite", &buf, &len, &err),
                     SHOAL_ERR_PARSE);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    unlink(path);
    free(zipb);
    free(palm);
    free(lm);
}

static int n_rejected;

static void expect_error_or_graph(sh_allocator *a, const void *buf, size_t len)
{
    sh_graph *g = NULL;
    sh_err err = {0};
    int rc = sh_tflite_load_buffer(a, buf, len, "mutant", &g, &err);
    if (rc) {
        assert_true(rc == SHOAL_ERR_PARSE || rc == SHOAL_ERR_UNSUPPORTED || rc == SHOAL_ERR_SHAPE);
        assert_null(g);
        assert_true(strlen(err.msg) > 0);
        n_rejected++;
    } else {
        sh_graph_destroy(g);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    size_t len;
    uint8_t *orig = read_all(PALM, &len), *buf = malloc(len);
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_graph *g = NULL;
    /* clear errors for the obvious cases */
    assert_int_equal(sh_tflite_load_buffer(a, orig, 4, "short", &g, &err), SHOAL_ERR_PARSE);
    memcpy(buf, orig, len);
    memcpy(buf + 4, "ONNX", 4);
    assert_int_equal(sh_tflite_load_buffer(a, buf, len, "ident", &g, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "TFL3"));
    memcpy(buf, orig, len);
    buf[0] = 0xff;
    buf[3] = 0x7f;   /* root offset past the end */
    assert_int_equal(sh_tflite_load_buffer(a, buf, len, "root", &g, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "outside"));
    /* truncations: the tables sit at the end of the file, behind the weights */
    n_rejected = 0;
    int tries = 0;
    for (size_t cut = len - 1; cut > len - 4096; cut -= 11, tries++)
        expect_error_or_graph(a, orig, cut);
    for (size_t cut = 8; cut < 4096; cut += 17, tries++)
        expect_error_or_graph(a, orig, cut);
    /* a cut file can only pass when the cut falls in the unused tail: nearly all must fail */
    assert_true(n_rejected > tries * 9 / 10);
    /* byte flips in the first and last 64 KiB (header, vtables, offsets, shapes) */
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    for (int i = 0; i < 300; i++) {
        memcpy(buf, orig, len);
        for (int k = 0; k < 4; k++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            size_t span = 65536, pos = (size_t)(rng >> 20) % span;
            if (rng & 1)
                pos = len - 1 - pos;
            buf[pos] = (uint8_t)(rng >> 8);
        }
        expect_error_or_graph(a, buf, len);
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    free(buf);
    free(orig);
}

/* Allocation failures anywhere in the import end in SHOAL_ERR_NO_MEMORY and leak nothing. */
static void test_alloc_failures(void **state)
{
    (void)state;
    size_t len;
    void *buf = read_all(LANDMARK, &len);
    sh_allocator *a = sh_allocator_create();
    for (long n = 0; n < 4000; n += 37) {
        sh_graph *g = NULL;
        sh_err err = {0};
        sh_allocator_fail_after(a, n, 0);
        int rc = sh_tflite_load_buffer(a, buf, len, "landmark", &g, &err);
        sh_allocator_fail_after(a, -1, 0);
        if (rc == 0) {
            sh_graph_destroy(g);
            break;
        }
        assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
    }
    sh_allocator_destroy(a);
    free(buf);
}

int main(void)
{
    struct stat st;
    if (stat(PALM, &st) != 0 || stat(LANDMARK, &st) != 0) {
        fprintf(stderr, "skipped: needs %s and %s (make models)\n", PALM, LANDMARK);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_palm_model),  cmocka_unit_test(test_landmark_model),
        cmocka_unit_test(test_task_bundle), cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
