/* The real int8 ultralytics exports (../shared/real-models/ultralytics-int8) against ONNX
 * Runtime's outputs for the shared photo, decoded by the same YOLOv8 decoder:
 * - on the reference's own input tensor (input_0.pb), shoal's outputs must give the same
 *   detections: same classes, IoU >= 0.99, scores within 1e-3;
 * - end to end, JPEG -> runtime (decode, ultralytics letterbox, CPU inference of the quantized graph, YOLOv8
 * decoder, per-class NMS) must give the detections that the same decoder finds in ONNX
 * Runtime's reference output for the same photo: same count, same classes, IoU >= 0.9, scores
 * within 0.05. The reference input was letterboxed by OpenCV and ours by shoal; the int8 graphs
 * requantize every activation with its own range, which turns those pixel differences into
 * score differences of up to 0.025 (measured), where the fp32 YOLOX test holds 0.01. Skips
 * (77) without ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "backends/backend.h"
#include "import/tensor_pb.h"
#include "runtime/session.h"
#include "shoal.h"
#include "vision/decode.h"
#include "vision/draw.h"
#include "vision/preprocess.h"

#define IMAGE "images/street/000000002006.jpg"

static char golden_dir[1024];

typedef struct int8_model {
    const char *dir;
    int size;
    bool seg;
    bool finds_objects;   /* false: ONNX Runtime's own output has no score above 0 */
} int8_model;

/* The QOperator file's quantization (power-of-two scales) leaves every class score at 0 in
 * ONNX Runtime's output, so both sides must find nothing; conformance_real_* checks that its
 * raw outputs agree bit for bit. */
static const int8_model MODELS[] = {
    {"yolov8n-8.3.203-op17", 640, false, true},
    {"yolo11n-8.3.49-op19", 640, false, true},
    {"yolov8n-seg-8.4.33-op20-320", 320, true, true},
    {"yolov8n-8.0.232-op17-qoperator", 640, false, false},
};

static char *config_for(const int8_model *m)
{
    static char y[8192];
    int n = snprintf(y, sizeof y,
                     "models:\n  m:\n    path: \"%s/real-models/ultralytics-int8/%s/model.onnx\"\n    task: %s\n"
                     "    input_size: [%d, %d]\n    letterbox: center\n    color: rgb\n    score_threshold: 0.25\n"
                     "    iou_threshold: 0.45\n    preload: true\n    classes: [",
                     SHOAL_SHARED_DIR, m->dir, m->seg ? "segment" : "detect", m->size, m->size);
    for (int i = 0; i < 80; i++)
        n += snprintf(y + n, sizeof y - (size_t)n, "%s%s", i ? ", " : "", sh_coco80_names[i]);
    snprintf(y + n, sizeof y - (size_t)n, "]\nmodes:\n  street: [m]\ninference:\n  device: cpu\n  threads: 2\n");
    return y;
}

static void *load_pb(const char *dir, const char *leaf, sh_ftensor *t)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s/test_data_set_0/%s", golden_dir, dir, leaf);
    sh_dtype dt;
    sh_shape shape;
    void *data = NULL;
    size_t nbytes;
    sh_err err = {0};
    assert_int_equal(sh_tensor_pb_load_file(NULL, path, &dt, &shape, &data, &nbytes, NULL, 0, &err), 0);
    assert_int_equal(dt, SH_DT_FLOAT32);
    t->data = data;
    t->ndim = shape.ndim;
    for (int i = 0; i < shape.ndim && i < 4; i++)
        t->shape[i] = shape.d[i];
    return data;
}

static void decode(const int8_model *m, const sh_ftensor *out, const sh_ftensor *protos, int img_w, int img_h,
                   sh_detections *dets)
{
    sh_preprocess_params pp = sh_preprocess_default_params(m->size, m->size);
    sh_transform xf;
    sh_err err = {0};
    assert_int_equal(sh_transform_compute(img_w, img_h, &pp, &xf, &err), 0);
    sh_decode_params dp = sh_decode_default_params();
    if (m->seg)
        assert_int_equal(sh_decode_yolov8_seg(out, protos, &xf, &dp, dets, &err), 0);
    else
        assert_int_equal(sh_decode_yolov8(out, &xf, &dp, dets, &err), 0);
}

static void reference_detections(const int8_model *m, int img_w, int img_h, sh_detections *dets)
{
    sh_ftensor out, protos;
    void *a = load_pb(m->dir, "output_0.pb", &out), *b = NULL;
    if (m->seg)
        b = load_pb(m->dir, "output_1.pb", &protos);
    decode(m, &out, m->seg ? &protos : NULL, img_w, img_h, dets);
    sh_free(NULL, a);
    sh_free(NULL, b);
}

static float iou(const shoal_detection *a, const sh_detection *b)
{
    float ab[4] = {a->x1, a->y1, a->x2, a->y2}, bb[4] = {b->x1, b->y1, b->x2, b->y2};
    return sh_box_iou(ab, bb);
}

static float iou_sh(const sh_detection *a, const sh_detection *b)
{
    float ab[4] = {a->x1, a->y1, a->x2, a->y2}, bb[4] = {b->x1, b->y1, b->x2, b->y2};
    return sh_box_iou(ab, bb);
}

/* shoal on the reference input tensor: the outputs agree with ONNX Runtime's (bit for bit on
 * three of the four files), so the detections must too. */
static void same_input_same_detections(void **state)
{
    char img_path[1200], err[1024] = "";
    snprintf(img_path, sizeof img_path, "%s/real-models/%s", SHOAL_SHARED_DIR, IMAGE);
    shoal_image img;
    assert_int_equal(shoal_image_load(img_path, &img, err, sizeof err), 0);
    sh_backend be;
    sh_err e = {0};
    sh_backend_params bp = {.alloc = NULL, .n_threads = 2};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &e), 0);
    for (size_t k = 0; k < sizeof MODELS / sizeof MODELS[0]; k++) {
        const int8_model *m = &MODELS[k];
        char model[1400];
        snprintf(model, sizeof model, "%s/real-models/ultralytics-int8/%s/model.onnx", SHOAL_SHARED_DIR, m->dir);
        sh_session_params sp = sh_session_default_params();
        sp.backend = &be;
        sh_session *s = NULL;
        if (sh_session_create_file(&sp, model, &s, &e))
            fail_msg("%s: %s", m->dir, e.msg);
        sh_ftensor in;
        void *in_data = load_pb(m->dir, "input_0.pb", &in);
        sh_shape shape = {4, {in.shape[0], in.shape[1], in.shape[2], in.shape[3]}};
        size_t nbytes = (size_t)(in.shape[0] * in.shape[1] * in.shape[2] * in.shape[3]) * sizeof(float);
        assert_int_equal(sh_session_set_input(s, 0, SH_DT_FLOAT32, &shape, in_data, nbytes, &e), 0);
        sh_free(NULL, in_data);
        assert_int_equal(sh_session_run(s, &e), 0);
        sh_ftensor out[2] = {{0}};
        for (int i = 0; i < (m->seg ? 2 : 1); i++) {
            sh_tensor_info info;
            const void *data;
            size_t nb;
            assert_int_equal(sh_session_get_output(s, i, &info, &data, &nb, &e), 0);
            out[i].data = data;
            out[i].ndim = info.shape.ndim;
            for (int d = 0; d < info.shape.ndim && d < 4; d++)
                out[i].shape[d] = info.shape.d[d];
        }
        sh_detections *got = sh_detections_create(NULL), *ref = sh_detections_create(NULL);
        decode(m, &out[0], m->seg ? &out[1] : NULL, img.width, img.height, got);
        reference_detections(m, img.width, img.height, ref);
        print_message("%s on the reference input: %zu detections, reference %zu\n", m->dir, got->count, ref->count);
        assert_true(m->finds_objects ? ref->count >= 2 : ref->count == 0);
        assert_int_equal(got->count, ref->count);
        for (size_t i = 0; i < ref->count; i++) {
            const sh_detection *want = &ref->items[i];
            int found = 0;
            for (size_t j = 0; j < got->count && !found; j++)
                found = got->items[j].class_id == want->class_id && iou_sh(&got->items[j], want) >= 0.99f &&
                        got->items[j].score > want->score - 1e-3f && got->items[j].score < want->score + 1e-3f;
            if (!found)
                fail_msg("%s: reference %s %.3f has no match", m->dir, sh_coco80_names[want->class_id], want->score);
        }
        sh_detections_destroy(got);
        sh_detections_destroy(ref);
        sh_session_destroy(s);
    }
    sh_backend_destroy(&be);
    shoal_image_free(&img);
}

static void detections_match_onnx_runtime(void **state)
{
    char img_path[1200], err[1024] = "";
    snprintf(img_path, sizeof img_path, "%s/real-models/%s", SHOAL_SHARED_DIR, IMAGE);
    shoal_image img;
    assert_int_equal(shoal_image_load(img_path, &img, err, sizeof err), 0);
    for (size_t k = 0; k < sizeof MODELS / sizeof MODELS[0]; k++) {
        const int8_model *m = &MODELS[k];
        shoal_runtime_params p = shoal_runtime_default_params();
        p.config_yaml = config_for(m);
        p.error = err;
        p.error_cap = sizeof err;
        shoal_runtime_t rt;
        if (shoal_runtime_create(&p, &rt))
            fail_msg("%s: runtime: %s", m->dir, err);
        shoal_results_t res;
        assert_int_equal(shoal_runtime_run_mode(rt, "street", &img, &res), 0);
        const shoal_model_result *r = shoal_results_get(res, 0);
        sh_detections *ref = sh_detections_create(NULL);
        reference_detections(m, img.width, img.height, ref);
        int buses = 0, people = 0;
        for (size_t i = 0; i < ref->count; i++) {
            buses += ref->items[i].class_id == 5;
            people += ref->items[i].class_id == 0;
        }
        print_message("%s: %d detections, reference %zu (%d bus, %d person)\n", m->dir, r->n_detections, ref->count,
                      buses, people);
        /* the README's reference: a bus and people */
        assert_true(m->finds_objects ? buses >= 1 && people >= 1 : ref->count == 0);
        assert_int_equal((size_t)r->n_detections, ref->count);
        for (size_t i = 0; i < ref->count; i++) {
            const sh_detection *want = &ref->items[i];
            int found = 0;
            for (int j = 0; j < r->n_detections && !found; j++) {
                const shoal_detection *got = &r->detections[j];
                found = got->class_id == want->class_id && iou(got, want) >= 0.9f &&
                        got->score > want->score - 0.05f && got->score < want->score + 0.05f;
            }
            if (!found) {
                for (int j = 0; j < r->n_detections; j++)
                    print_message("  got %s %.3f [%.1f %.1f %.1f %.1f]\n", sh_coco80_names[r->detections[j].class_id],
                                  r->detections[j].score, r->detections[j].x1, r->detections[j].y1,
                                  r->detections[j].x2, r->detections[j].y2);
                fail_msg("%s: reference %s %.3f [%.1f %.1f %.1f %.1f] has no match", m->dir,
                         sh_coco80_names[want->class_id], want->score, want->x1, want->y1, want->x2, want->y2);
            }
        }
        sh_detections_destroy(ref);
        shoal_results_destroy(res);
        shoal_runtime_destroy(rt);
    }
    shoal_image_free(&img);
}

int main(void)
{
    char tgz[1024];
    snprintf(tgz, sizeof tgz, "%s/real-models/golden/g_ultralytics_int8.tgz", SHOAL_SHARED_DIR);
    FILE *f = fopen(tgz, "rb");
    if (!f) {
        printf("SKIP: %s absent\n", tgz);
        return 77;
    }
    fclose(f);
    snprintf(golden_dir, sizeof golden_dir, "%s/tests/e2e/golden_int8", SHOAL_BINARY_DIR);
    char cmd[3200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && tar -xzf '%s' -C '%s'", golden_dir, tgz, golden_dir);
    if (system(cmd) != 0) {
        printf("could not unpack %s\n", tgz);
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(same_input_same_detections),
                                       cmocka_unit_test(detections_match_onnx_runtime)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
