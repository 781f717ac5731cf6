/* ultralytics metadata: the parsers of its Python literals, what the importer and
 * sh_onnx_info read from metadata_props, and the failures a malformed value gives. With an
 * argument (a folder of the real int8 exports), their metadata instead: exits 77 when absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "import/onnx_import.h"
#include "runtime/model_meta.h"

#define DATA SHOAL_SOURCE_DIR "/tests/exports/data/"

static void free_list(sh_allocator *a, char **v, int n)
{
    for (int i = 0; i < n; i++)
        sh_free(a, v[i]);
    sh_free(a, v);
}

static void test_names_dict(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    char **v;
    int n;
    /* what str() gives for ultralytics' names, escapes and a quote-holding name included */
    const char *text = "{0: 'person', 1: \"men's bike\", 2: 'back\\\\slash', 3: 'tab\\tand \\'q\\''}";
    assert_int_equal(sh_meta_parse_names(a, text, &v, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(v[0], "person");
    assert_string_equal(v[1], "men's bike");
    assert_string_equal(v[2], "back\\slash");
    assert_string_equal(v[3], "tab\tand 'q'");
    free_list(a, v, n);
    assert_int_equal(sh_meta_parse_names(a, "['a', 'b']", &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(v[1], "b");
    free_list(a, v, n);
    assert_int_equal(sh_meta_parse_names(a, " {} ", &v, &n, &err), 0);
    assert_int_equal(n, 0);
    free_list(a, v, n);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_names_malformed(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    static const char *const bad[] = {
        "{0: 'a', 2: 'b'}",      /* ids must run 0, 1, 2 */
        "{0: 'a' 1: 'b'}",       /* missing comma */
        "{0: 'a', 1: 'b'",       /* unclosed */
        "{0: a}",                /* unquoted */
        "{0: 'a'} trailing",
        "person, car",
        "{'0': 'a'}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_err err = {0};
        char **v = NULL;
        int n = -1;
        assert_int_equal(sh_meta_parse_names(a, bad[i], &v, &n, &err), SHOAL_ERR_PARSE);
        assert_null(v);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err.msg, "metadata 'names'"));
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_imgsz(void **state)
{
    (void)state;
    sh_err err;
    int64_t hw[2];
    assert_int_equal(sh_meta_parse_imgsz("[480, 640]", hw, &err), 0);
    assert_int_equal(hw[0], 480);
    assert_int_equal(hw[1], 640);
    assert_int_equal(sh_meta_parse_imgsz("320", hw, &err), 0);
    assert_int_equal(hw[0], 320);
    assert_int_equal(hw[1], 320);
    assert_int_equal(sh_meta_parse_imgsz("[640]", hw, &err), 0);
    assert_int_equal(hw[1], 640);
    assert_int_equal(sh_meta_parse_imgsz("[640, 0]", hw, &err), SHOAL_ERR_PARSE);
    assert_int_equal(sh_meta_parse_imgsz("640x640", hw, &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "imgsz"));
    assert_int_equal(sh_meta_parse_imgsz("[1, 2, 3]", hw, &err), SHOAL_ERR_PARSE);
}

static void test_from_props(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    const char *k[] = {"author", "task", "stride", "imgsz", "names"};
    const char *v[] = {"Ultralytics", "segment", "32", "[320, 320]", "{0: 'person', 1: 'bicycle'}"};
    sh_model_meta *m;
    assert_int_equal(sh_model_meta_from_props(a, k, v, 5, &m, &err), 0);
    assert_string_equal(m->task, "segment");
    assert_int_equal(m->stride, 32);
    assert_int_equal(m->imgsz[0], 320);
    assert_int_equal(m->n_names, 2);
    assert_string_equal(m->names[1], "bicycle");
    assert_string_equal(sh_model_meta_get(m, "author"), "Ultralytics");
    assert_null(sh_model_meta_get(m, "license"));
    sh_model_meta_destroy(a, m);
    /* a malformed key is an error naming it, nothing left allocated */
    v[2] = "thirty-two";
    assert_int_equal(sh_model_meta_from_props(a, k, v, 5, &m, &err), SHOAL_ERR_PARSE);
    assert_null(m);
    assert_non_null(strstr(err.msg, "stride"));
    /* every allocation failing in turn: an error, never a leak */
    v[2] = "32";
    for (long fail = 0; fail < 40; fail++) {
        sh_allocator_fail_after(a, fail, 0);
        int rc = sh_model_meta_from_props(a, k, v, 5, &m, &err);
        sh_allocator_fail_after(a, -1, 0);
        if (rc == 0) {
            sh_model_meta_destroy(a, m);
            break;
        }
        assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
    }
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* The importer keeps metadata_props: the graph and the metadata of one read. */
static void test_model_file(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_graph *g;
    sh_model_meta *m;
    assert_int_equal(sh_onnx_load_file_meta(a, DATA "e2e.onnx", &g, &m, &err), 0);
    assert_non_null(g);
    assert_string_equal(m->task, "detect");
    assert_int_equal(m->imgsz[0], 64);
    assert_int_equal(m->stride, 8);
    assert_int_equal(m->n_names, 3);
    assert_string_equal(m->names[1], "men's bike");
    sh_model_meta_destroy(a, m);
    sh_graph_destroy(g);
    sh_onnx_info *info;
    assert_int_equal(sh_onnx_info_file(a, DATA "det_dynamic.onnx", &info, &err), 0);
    assert_null(info->meta_error);
    assert_int_equal(info->meta->imgsz[0], 48);
    assert_int_equal(info->meta->imgsz[1], 64);
    assert_string_equal(info->meta->names[2], "car");
    sh_onnx_info_destroy(a, info);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

/* --- metadata as config defaults (runtime/model_meta.c) on hand-built graphs ------------- */

static sh_graph *image_graph(sh_allocator *a, int64_t h, int64_t w)
{
    sh_graph *g = sh_graph_create(a, "g");
    sh_shape s = {4, {1, 3, h, w}};
    int t = sh_graph_add_tensor(g, "images", SH_DT_FLOAT32, &s);
    assert_int_equal(sh_graph_set_inputs(g, &t, 1), 0);
    return g;
}

static sh_model_meta *meta_of(sh_allocator *a, const char *task, const char *imgsz)
{
    const char *k[] = {"task", "stride", "names", "imgsz"};
    const char *v[] = {task, "32", "{0: 'a', 1: 'b'}", imgsz};
    sh_model_meta *m;
    sh_err err;
    assert_int_equal(sh_model_meta_from_props(a, k, v, imgsz ? 4 : 3, &m, &err), 0);
    return m;
}

static sh_model_config plain_config(void)
{
    sh_model_config c = {.name = "m", .input_w = 640, .input_h = 640};
    return c;
}

static void test_defaults_apply(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_graph *g = image_graph(a, -1, -1);
    sh_model_meta *m = meta_of(a, "segment", "[320, 256]");
    sh_model_config c = plain_config();
    assert_int_equal(sh_rt_meta_defaults(&c, g, m, &err), 0);
    assert_int_equal(c.task, SH_TASK_SEGMENT);
    assert_int_equal(c.decoder, SH_DECODER_YOLOV8_SEG);
    assert_int_equal(c.input_h, 320);
    assert_int_equal(c.input_w, 256);
    assert_int_equal(c.n_classes, 2);
    assert_string_equal(c.classes[1], "b");
    /* a config that wrote its own values keeps them */
    static char *mine[] = {"x", "y"};
    c = plain_config();
    c.task = SH_TASK_YOLOX;
    c.decoder = SH_DECODER_YOLOX;
    c.task_given = c.decoder_given = c.input_size_given = true;
    c.input_w = c.input_h = 416;
    c.classes = mine;
    c.n_classes = 2;
    assert_int_equal(sh_rt_meta_defaults(&c, g, m, &err), 0);
    assert_int_equal(c.task, SH_TASK_YOLOX);
    assert_int_equal(c.input_w, 416);
    assert_string_equal(c.classes[0], "x");
    /* no metadata at all: the config's defaults stand */
    c = plain_config();
    assert_int_equal(sh_rt_meta_defaults(&c, g, NULL, &err), 0);
    assert_int_equal(c.input_w, 640);
    assert_int_equal(c.n_classes, 0);
    sh_model_meta_destroy(a, m);
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
}

static void test_defaults_refuse(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    /* a task shoal does not decode, with no task in the config */
    sh_graph *g = image_graph(a, 640, 640);
    sh_model_meta *m = meta_of(a, "pose", NULL);
    sh_model_config c = plain_config();
    assert_int_equal(sh_rt_meta_defaults(&c, g, m, &err), SHOAL_ERR_UNSUPPORTED);
    assert_non_null(strstr(err.msg, "'pose'"));
    sh_model_meta_destroy(a, m);
    sh_graph_destroy(g);
    /* half-dynamic input: its static height stays, and a config height against it is refused */
    g = image_graph(a, 480, -1);
    m = meta_of(a, "detect", "[480, 640]");
    c = plain_config();
    assert_int_equal(sh_rt_meta_defaults(&c, g, m, &err), 0);
    assert_int_equal(c.input_h, 480);
    assert_int_equal(c.input_w, 640);
    sh_model_meta *bare = meta_of(a, "detect", NULL);   /* no imgsz: the 640 default is no contradiction */
    c = plain_config();
    c.input_w = c.input_h = 320;
    assert_int_equal(sh_rt_meta_defaults(&c, g, bare, &err), 0);
    assert_int_equal(c.input_h, 480);
    assert_int_equal(c.input_w, 320);
    sh_model_meta_destroy(a, bare);
    c = plain_config();
    c.input_size_given = true;
    assert_int_equal(sh_rt_meta_defaults(&c, g, m, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "640"));
    assert_non_null(strstr(err.msg, "480"));
    /* classes the config names against the metadata's */
    static char *three[] = {"x", "y", "z"};
    c = plain_config();
    c.classes = three;
    c.n_classes = 3;
    assert_int_equal(sh_rt_meta_check_classes(&c, m, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "3 classes"));
    c.n_classes = 2;
    assert_int_equal(sh_rt_meta_check_classes(&c, m, &err), 0);
    sh_model_meta_destroy(a, m);
    sh_graph_destroy(g);
    sh_allocator_destroy(a);
}

/* --- the real int8 exports (../shared/real-models/ultralytics-int8) ---------------------- */

static const char *real_dir;

static void check_real(const char *sub, const char *task, int64_t imgsz)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/model.onnx", real_dir, sub);
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_onnx_info *info;
    assert_int_equal(sh_onnx_info_file(a, path, &info, &err), 0);
    const sh_model_meta *m = info->meta;
    assert_null(info->meta_error);
    assert_non_null(m);
    assert_string_equal(m->task, task);
    assert_int_equal(m->imgsz[0], imgsz);
    assert_int_equal(m->imgsz[1], imgsz);
    assert_int_equal(m->stride, 32);
    assert_int_equal(m->n_names, 80);   /* COCO, as the head's 84 / 116 channels say */
    assert_string_equal(m->names[0], "person");
    assert_string_equal(m->names[5], "bus");
    assert_string_equal(m->names[79], "toothbrush");
    assert_string_equal(sh_model_meta_get(m, "author"), "Ultralytics");
    sh_onnx_info_destroy(a, info);
    sh_allocator_destroy(a);
}

static void test_real_yolov8n(void **s) { (void)s; check_real("yolov8n-8.3.203-op17", "detect", 640); }
static void test_real_yolo11n(void **s) { (void)s; check_real("yolo11n-8.3.49-op19", "detect", 640); }
static void test_real_seg(void **s) { (void)s; check_real("yolov8n-seg-8.4.33-op20-320", "segment", 320); }
static void test_real_qop(void **s) { (void)s; check_real("yolov8n-8.0.232-op17-qoperator", "detect", 640); }

int main(int argc, char **argv)
{
    if (argc > 1) {
        struct stat st;
        real_dir = argv[1];
        if (stat(real_dir, &st) != 0)
            return 77;
        const struct CMUnitTest real[] = {
            cmocka_unit_test(test_real_yolov8n),
            cmocka_unit_test(test_real_yolo11n),
            cmocka_unit_test(test_real_seg),
            cmocka_unit_test(test_real_qop),
        };
        return cmocka_run_group_tests(real, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_dict),
        cmocka_unit_test(test_names_malformed),
        cmocka_unit_test(test_imgsz),
        cmocka_unit_test(test_from_props),
        cmocka_unit_test(test_model_file),
        cmocka_unit_test(test_defaults_apply),
        cmocka_unit_test(test_defaults_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
