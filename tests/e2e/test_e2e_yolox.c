/* The real YOLOX-Nano end to end: JPEG -> runtime (decode, letterbox, CPU inference, YOLOX
 * decoder) must give the detections decoded from ONNX Runtime's reference output for the same
 * image: same classes, IoU >= 0.9, scores within 0.01. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "import/tensor_pb.h"
#include "shoal.h"
#include "vision/decode.h"
#include "vision/draw.h"
#include "vision/preprocess.h"

static char golden_dir[1024];

static const char *const SETS[3] = {"images/street/000000001584.jpg", "images/street/000000002006.jpg",
                                    "images/indoor/000000000139.jpg"};

static char *yolox_config(void)
{
    static char y[8192];
    int n = snprintf(y, sizeof y,
                     "models:\n  yolox:\n    path: \"%s/real-models/yolox_nano/model.onnx\"\n    task: yolox\n"
                     "    letterbox: top_left\n    color: bgr\n    scale: 1.0\n    score_threshold: 0.3\n"
                     "    iou_threshold: 0.45\n    agnostic_nms: true\n    preload: true\n    classes: [",
                     SHOAL_SHARED_DIR);
    for (int i = 0; i < 80; i++)
        n += snprintf(y + n, sizeof y - (size_t)n, "%s%s", i ? ", " : "", sh_coco80_names[i]);
    snprintf(y + n, sizeof y - (size_t)n, "]\nmodes:\n  street: [yolox]\ninference:\n  device: cpu\n  threads: 2\n");
    return y;
}

static void reference_detections(int k, int img_w, int img_h, sh_detections *dets)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/yolox_nano/test_data_set_%d/output_0.pb", golden_dir, k);
    sh_dtype dt;
    sh_shape shape;
    void *data = NULL;
    size_t nbytes;
    sh_err err = {0};
    assert_int_equal(sh_tensor_pb_load_file(NULL, path, &dt, &shape, &data, &nbytes, NULL, 0, &err), 0);
    sh_ftensor t = {.data = data, .ndim = 3, .shape = {shape.d[0], shape.d[1], shape.d[2]}};
    sh_preprocess_params pp = sh_preprocess_yolox_params(416, 416);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(img_w, img_h, &pp, &xf, &err), 0);
    sh_decode_params dp = sh_decode_default_params();
    dp.score_threshold = 0.3f;
    dp.iou_threshold = 0.45f;
    dp.agnostic = 1;
    assert_int_equal(sh_decode_yolox(&t, &xf, &dp, dets, &err), 0);
    sh_free(NULL, data);
}

static float iou(const shoal_detection *a, const sh_detection *b)
{
    float ab[4] = {a->x1, a->y1, a->x2, a->y2}, bb[4] = {b->x1, b->y1, b->x2, b->y2};
    return sh_box_iou(ab, bb);
}

static void matches_onnx_runtime_reference(void **state)
{
    char err[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = yolox_config();
    p.error = err;
    p.error_cap = sizeof err;
    shoal_runtime_t rt;
    int rc = shoal_runtime_create(&p, &rt);
    if (rc)
        fail_msg("runtime: %s", err);
    for (int k = 0; k < 3; k++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/real-models/%s", SHOAL_SHARED_DIR, SETS[k]);
        shoal_image img;
        assert_int_equal(shoal_image_load(path, &img, err, sizeof err), 0);
        shoal_results_t res;
        assert_int_equal(shoal_runtime_run_mode(rt, "street", &img, &res), 0);
        const shoal_model_result *r = shoal_results_get(res, 0);
        sh_detections *ref = sh_detections_create(NULL);
        reference_detections(k, img.width, img.height, ref);
        print_message("%s: %d detections, reference %zu\n", SETS[k], r->n_detections, ref->count);
        assert_true(ref->count >= 3);
        assert_int_equal((size_t)r->n_detections, ref->count);
        for (size_t i = 0; i < ref->count; i++) {
            const sh_detection *want = &ref->items[i];
            int found = 0;
            for (int j = 0; j < r->n_detections && !found; j++) {
                const shoal_detection *got = &r->detections[j];
                if (got->class_id == want->class_id && iou(got, want) >= 0.9f &&
                    got->score > want->score - 0.01f && got->score < want->score + 0.01f)
                    found = 1;
            }
            if (!found)
                fail_msg("%s: reference %s %.3f [%.1f %.1f %.1f %.1f] has no match", SETS[k],
                         sh_coco80_names[want->class_id], want->score, want->x1, want->y1, want->x2, want->y2);
        }
        sh_detections_destroy(ref);
        shoal_results_destroy(res);
        shoal_image_free(&img);
    }
    shoal_runtime_destroy(rt);
}

int main(void)
{
    char tgz[1024];
    snprintf(tgz, sizeof tgz, "%s/real-models/golden/g_yolox.tgz", SHOAL_SHARED_DIR);
    FILE *f = fopen(tgz, "rb");
    if (!f) {
        printf("SKIP: %s absent\n", tgz);
        return 77;
    }
    fclose(f);
    snprintf(golden_dir, sizeof golden_dir, "%s/tests/e2e/golden", SHOAL_BINARY_DIR);
    char cmd[3200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && tar -xzf '%s' -C '%s'", golden_dir, tgz, golden_dir);
    if (system(cmd) != 0) {
        printf("could not unpack %s\n", tgz);
        return 1;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(matches_onnx_runtime_reference)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
