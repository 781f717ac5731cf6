/* YOLOX-Nano reference data (../shared/real-models): our preprocessing against the
 * OpenCV-made input_0.pb, and our decoder on ONNX Runtime's output_0.pb against the
 * detections the README lists. Skips (77) without ../shared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tensor_pb.h"
#include "vision/decode.h"
#include "vision/draw.h"
#include "vision/image.h"
#include "vision/preprocess.h"

#define REAL SHOAL_SHARED_DIR "/real-models"
#define WORK SHOAL_BINARY_DIR "/tests/vision/yolox_golden"

static cJSON *golden;

static int unpack(void **state)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && tar xzf '%s/golden/g_yolox.tgz' -C '%s'", WORK, REAL, WORK);
    if (system(cmd) != 0)
        return -1;
    FILE *f = fopen(WORK "/golden.json", "rb");
    if (!f)
        return -1;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    golden = cJSON_Parse(buf);
    return golden ? 0 : -1;
}

static int teardown(void **state)
{
    cJSON_Delete(golden);
    return 0;
}

static const char *image_of_set(int k)
{
    cJSON *sets = cJSON_GetObjectItem(cJSON_GetObjectItem(golden, "yolox_nano"), "sets");
    cJSON *s;
    cJSON_ArrayForEach(s, sets)
    {
        if (cJSON_GetObjectItem(s, "k")->valueint == k)
            return cJSON_GetStringValue(cJSON_GetObjectItem(s, "image"));
    }
    return NULL;
}

typedef struct expect {
    int class_id;
    float score;   /* <0: any score */
} expect;

static int count_class(const sh_detections *d, int cls)
{
    int n = 0;
    for (size_t i = 0; i < d->count; i++)
        n += d->items[i].class_id == cls;
    return n;
}

static int has(const sh_detections *d, int cls, float score)
{
    for (size_t i = 0; i < d->count; i++)
        if (d->items[i].class_id == cls && fabsf(d->items[i].score - score) < 0.006f)
            return 1;
    return 0;
}

static void run_set(int k, sh_detections **out_dets, sh_image *out_img)
{
    const char *rel = image_of_set(k);
    assert_non_null(rel);
    char path[1024], why[256];
    snprintf(path, sizeof path, "%s/%s", REAL, rel);
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    sh_image img;
    assert_int_equal(sh_image_load_file(a, path, &img, &err), 0);

    test_tensor in, out;
    snprintf(path, sizeof path, WORK "/yolox_nano/test_data_set_%d/input_0.pb", k);
    if (test_tensor_read(path, &in, why) != 0)
        fail_msg("%s", why);
    assert_int_equal(in.count, 3 * 416 * 416);
    sh_preprocess_params p = sh_preprocess_yolox_params(416, 416);
    float *mine = malloc(in.count * sizeof(float));
    for (size_t i = 0; i < in.count; i++)
        mine[i] = -1e9f; /* poisoned: every value must be written */
    sh_transform xf;
    assert_int_equal(sh_preprocess(a, &img, &p, mine, in.count, &xf, &err), 0);
    double num = 0, den = 0, maxd = 0;
    size_t differ = 0;
    for (size_t i = 0; i < in.count; i++) {
        double dd = (double)mine[i] - in.data[i];
        num += dd * dd;
        den += (double)in.data[i] * in.data[i];
        maxd = fmax(maxd, fabs(dd));
        differ += dd != 0;
    }
    double rel_l2 = sqrt(num / den);
    printf("set %d %s (%dx%d): preprocess rel L2 %.3g, max |diff| %.0f, %zu of %zu values differ\n", k, rel,
           img.width, img.height, rel_l2, maxd, differ, in.count);
    assert_true(rel_l2 < 1e-2);

    snprintf(path, sizeof path, WORK "/yolox_nano/test_data_set_%d/output_0.pb", k);
    if (test_tensor_read(path, &out, why) != 0)
        fail_msg("%s", why);
    sh_ftensor t = {out.data, out.ndim, {0}};
    for (int i = 0; i < out.ndim; i++)
        t.shape[i] = out.dims[i];
    sh_decode_params dp = sh_decode_default_params();
    dp.score_threshold = 0.3f;
    dp.iou_threshold = 0.45f;
    dp.agnostic = 1;
    sh_detections *dets = sh_detections_create(NULL);
    assert_int_equal(sh_decode_yolox(&t, &xf, &dp, dets, &err), 0);
    for (size_t i = 0; i < dets->count; i++) {
        const sh_detection *d = &dets->items[i];
        printf("  %-14s %.3f  [%.1f %.1f %.1f %.1f]\n", sh_coco80_names[d->class_id], d->score, d->x1, d->y1, d->x2,
               d->y2);
        assert_true(d->x1 >= 0 && d->y1 >= 0 && d->x2 <= img.width && d->y2 <= img.height && d->x1 < d->x2);
        if (i)
            assert_true(d->score <= dets->items[i - 1].score);
    }
    free(mine);
    free(in.data);
    free(out.data);
    /* the image outlives this allocator: copy it to the default one */
    sh_image keep;
    assert_int_equal(sh_image_clone(NULL, &img, &keep, &err), 0);
    sh_image_free(&img);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
    *out_dets = dets;
    *out_img = keep;
}

static void annotate(int k, sh_image *img, const sh_detections *dets)
{
    sh_draw_params dp = sh_draw_default_params();
    dp.class_names = sh_coco80_names;
    dp.n_class_names = 80;
    sh_draw_detections(img, dets, &dp);
    char path[512];
    snprintf(path, sizeof path, WORK "/annotated_%d.png", k);
    sh_err err = {0};
    assert_int_equal(sh_image_write_png(img, path, &err), 0);
}

enum { PERSON = 0, BUS = 5, CHAIR = 56, DINING_TABLE = 60, TV = 62, CLOCK = 74 };

static void street_double_decker(void **state)
{
    sh_detections *d;
    sh_image img;
    run_set(0, &d, &img);
    assert_int_equal(count_class(d, BUS), 3);
    assert_true(has(d, BUS, 0.95f));
    assert_true(has(d, BUS, 0.87f));
    assert_int_equal(count_class(d, PERSON), 3);
    assert_int_equal(d->count, 6);
    assert_int_equal(d->items[0].class_id, BUS);
    annotate(0, &img, d);
    sh_image_free(&img);
    sh_detections_destroy(d);
}

static void street_bus(void **state)
{
    sh_detections *d;
    sh_image img;
    run_set(1, &d, &img);
    assert_int_equal(count_class(d, BUS), 1);
    assert_true(has(d, BUS, 0.96f));
    assert_int_equal(count_class(d, PERSON), 2);
    assert_int_equal(d->count, 3);
    annotate(1, &img, d);
    sh_image_free(&img);
    sh_detections_destroy(d);
}

static void indoor(void **state)
{
    sh_detections *d;
    sh_image img;
    run_set(2, &d, &img);
    assert_int_equal(count_class(d, TV), 1);
    assert_true(has(d, TV, 0.90f));
    assert_true(count_class(d, PERSON) >= 1);
    assert_int_equal(count_class(d, CLOCK), 1);
    assert_true(count_class(d, CHAIR) >= 2);
    assert_int_equal(count_class(d, DINING_TABLE), 1);
    annotate(2, &img, d);
    sh_image_free(&img);
    sh_detections_destroy(d);
}

int main(void)
{
    struct stat st;
    if (stat(REAL "/golden/g_yolox.tgz", &st) != 0) {
        printf("skipped: %s absent\n", REAL);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(street_double_decker),
        cmocka_unit_test(street_bus),
        cmocka_unit_test(indoor),
    };
    return cmocka_run_group_tests(tests, unpack, teardown);
}
