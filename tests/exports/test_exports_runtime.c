/* Exports through the runtime: a config that names only the model's path gets task, decoder,
 * class names and (for a dynamic export) input size from the model's metadata; a config value
 * a static model contradicts fails naming both values; an fp16 export runs as its fp32 twin
 * does; an NMS-free head gets the end2end decoder, whose row decoding is checked by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/introspect.h"
#include "shoal.h"
#include "vision/decode.h"

#define DATA SHOAL_SOURCE_DIR "/tests/exports/data/"

/* A runtime over one model with `extra` lines (indented 4) in its section; NULL on failure
 * with the message in err. */
static shoal_runtime_t make_rt(const char *model, const char *extra, char *err, size_t cap)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "models:\n  m:\n    path: \"" DATA "%s\"\n%s"
             "modes:\n  run: [m]\ninference:\n  device: cpu\n  threads: 1\n",
             model, extra ? extra : "");
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = yaml;
    p.error = err;
    p.error_cap = cap;
    shoal_runtime_t rt = NULL;
    err[0] = '\0';
    if (shoal_runtime_create(&p, &rt) != SHOAL_OK)
        return NULL;
    return rt;
}

/* A deterministic frame that is not the model's size (so the letterbox matters). */
static shoal_image frame(int w, int h)
{
    uint8_t *px = malloc((size_t)w * h * 3);
    assert_non_null(px);
    uint32_t s = 7;
    for (int i = 0; i < w * h * 3; i++) {
        s = s * 1664525u + 1013904223u;
        px[i] = (uint8_t)(40 + (s >> 25) + (i / 3 % w) / 2);
    }
    shoal_image img = shoal_image_wrap(px, w, h);
    img.owned = 1;
    return img;
}

static const sh_model_config *model_cfg(shoal_runtime_t rt)
{
    return &sh_runtime_config(rt)->models[0];
}

static void check_named(const shoal_model_result *r)
{
    static const char *const names[] = {"person", "men's bike", "car"};
    for (int k = 0; k < r->n_detections; k++) {
        const shoal_detection *d = &r->detections[k];
        assert_true(d->class_id >= 0 && d->class_id < 3);
        assert_string_equal(d->class_name, names[d->class_id]);
        assert_true(d->score >= 0.25f);
        if (k)
            assert_true(d->score <= r->detections[k - 1].score);
    }
}

static void test_defaults_from_metadata(void **state)
{
    (void)state;
    char err[512];
    shoal_runtime_t rt = make_rt("det.onnx", NULL, err, sizeof err);
    if (!rt)
        fail_msg("%s", err);
    const sh_model_config *c = model_cfg(rt);
    assert_int_equal(c->task, SH_TASK_DETECT);
    assert_int_equal(c->decoder, SH_DECODER_YOLOV8);
    assert_int_equal(c->n_classes, 3);
    assert_string_equal(c->classes[1], "men's bike");
    assert_int_equal(c->input_w, 64);
    shoal_image img = frame(120, 90);
    shoal_results_t res;
    assert_int_equal(shoal_runtime_run_mode(rt, "run", &img, &res), SHOAL_OK);
    const shoal_model_result *r = shoal_results_get(res, 0);
    assert_string_equal(r->task, "detect");
    assert_true(r->n_detections > 0);
    check_named(r);
    shoal_results_destroy(res);
    shoal_image_free(&img);
    shoal_runtime_destroy(rt);
}

/* The config's own values win where they agree with the model. */
static void test_config_values_kept(void **state)
{
    (void)state;
    char err[512];
    shoal_runtime_t rt = make_rt("det.onnx", "    task: detect\n    input_size: 64\n    classes: [a, b, c]\n", err,
                                 sizeof err);
    if (!rt)
        fail_msg("%s", err);
    assert_string_equal(model_cfg(rt)->classes[2], "c");
    shoal_runtime_destroy(rt);
}

static void test_end2end_picked(void **state)
{
    (void)state;
    char err[512];
    shoal_runtime_t rt = make_rt("e2e.onnx", NULL, err, sizeof err);
    if (!rt)
        fail_msg("%s", err);
    assert_int_equal(model_cfg(rt)->decoder, SH_DECODER_END2END);
    shoal_image img = frame(100, 140);
    shoal_results_t res;
    assert_int_equal(shoal_runtime_run_mode(rt, "run", &img, &res), SHOAL_OK);
    const shoal_model_result *r = shoal_results_get(res, 0);
    assert_true(r->n_detections > 0 && r->n_detections <= 20);
    check_named(r);
    for (int k = 0; k < r->n_detections; k++) {
        const shoal_detection *d = &r->detections[k];
        assert_true(d->x1 >= 0 && d->x2 <= 100 && d->y1 >= 0 && d->y2 <= 140 && d->x1 <= d->x2 && d->y1 <= d->y2);
    }
    shoal_results_destroy(res);
    shoal_image_free(&img);
    shoal_runtime_destroy(rt);
}

static void test_end2end_seg_picked(void **state)
{
    (void)state;
    char err[512];
    shoal_runtime_t rt = make_rt("e2e_seg.onnx", NULL, err, sizeof err);
    if (!rt)
        fail_msg("%s", err);
    assert_int_equal(model_cfg(rt)->task, SH_TASK_SEGMENT);
    assert_int_equal(model_cfg(rt)->decoder, SH_DECODER_END2END);
    shoal_image img = frame(100, 140);
    shoal_results_t res;
    assert_int_equal(shoal_runtime_run_mode(rt, "run", &img, &res), SHOAL_OK);
    const shoal_model_result *r = shoal_results_get(res, 0);
    assert_string_equal(r->task, "segment");
    assert_true(r->n_detections > 0 && r->n_detections <= 20);
    check_named(r);
    for (int k = 0; k < r->n_detections; k++)
        assert_non_null(r->detections[k].mask_rle);
    shoal_results_destroy(res);
    shoal_image_free(&img);
    shoal_runtime_destroy(rt);
}

/* The network's input: what the frame op that feeds it writes (the graph's own inputs are the
 * frame's bytes and size). */
static void input_hw(shoal_runtime_t rt, int64_t *h, int64_t *w)
{
    const sh_graph *g = sh_runtime_model_graph(rt, 0);
    *h = *w = -1;
    for (int k = 0; k < g->n_nodes; k++)
        if (g->nodes[k].op == SH_OP_FRAME_TO_TENSOR) {
            const sh_tensor *in = &g->tensors[g->nodes[k].outputs[0]];
            *h = in->shape.d[2];
            *w = in->shape.d[3];
        }
}

static void test_dynamic_sizes(void **state)
{
    (void)state;
    char err[512];
    int64_t h, w;
    shoal_runtime_t rt = make_rt("det_dynamic.onnx", NULL, err, sizeof err);   /* imgsz [48, 64] */
    if (!rt)
        fail_msg("%s", err);
    input_hw(rt, &h, &w);
    assert_int_equal(h, 48);
    assert_int_equal(w, 64);
    shoal_image img = frame(64, 64);
    shoal_results_t res;
    assert_int_equal(shoal_runtime_run_mode(rt, "run", &img, &res), SHOAL_OK);
    check_named(shoal_results_get(res, 0));
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
    rt = make_rt("det_dynamic.onnx", "    input_size: [96, 32]\n", err, sizeof err);   /* width, height */
    if (!rt)
        fail_msg("%s", err);
    input_hw(rt, &h, &w);
    assert_int_equal(h, 32);
    assert_int_equal(w, 96);
    assert_int_equal(shoal_runtime_run_mode(rt, "run", &img, &res), SHOAL_OK);
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
    shoal_image_free(&img);
    assert_null(make_rt("det_dynamic.onnx", "    input_size: 36\n", err, sizeof err));
    assert_non_null(strstr(err, "36x36"));
    assert_non_null(strstr(err, "stride 8"));
}

static void expect_error(const char *model, const char *extra, const char *a, const char *b)
{
    char err[512];
    shoal_runtime_t rt = make_rt(model, extra, err, sizeof err);
    if (rt)
        fail_msg("%s with '%s' was accepted", model, extra);
    if (!strstr(err, a) || !strstr(err, b))
        fail_msg("message for '%s' lacks '%s' or '%s': %s", extra, a, b, err);
}

static void test_contradictions(void **state)
{
    (void)state;
    expect_error("det.onnx", "    input_size: 320\n", "320x320", "64x64");
    expect_error("det.onnx", "    classes: [a, b]\n", "3 classes", "names 2");
    expect_error("e2e.onnx", "    classes: [a, b]\n", "names 2 classes", "metadata names 3");
    expect_error("det.onnx", "    task: segment\n", "'segment'", "'detect'");
}

/* The half export through the runtime: what its fp32 twin finds, within fp16's precision. */
static void test_fp16_like_fp32(void **state)
{
    (void)state;
    char err[512];
    shoal_runtime_t r32 = make_rt("det.onnx", NULL, err, sizeof err);
    if (!r32)
        fail_msg("%s", err);
    shoal_runtime_t r16 = make_rt("det_fp16.onnx", NULL, err, sizeof err);
    if (!r16)
        fail_msg("%s", err);
    shoal_image img = frame(160, 120);
    shoal_results_t a, b;
    assert_int_equal(shoal_runtime_run_mode(r32, "run", &img, &a), SHOAL_OK);
    assert_int_equal(shoal_runtime_run_mode(r16, "run", &img, &b), SHOAL_OK);
    const shoal_model_result *ra = shoal_results_get(a, 0), *rb = shoal_results_get(b, 0);
    assert_true(ra->n_detections > 0);
    assert_int_equal(ra->n_detections, rb->n_detections);
    for (int k = 0; k < ra->n_detections; k++) {
        const shoal_detection *x = &ra->detections[k], *y = &rb->detections[k];
        assert_int_equal(x->class_id, y->class_id);
        assert_true(fabsf(x->score - y->score) < 1e-2f);
        assert_true(fabsf(x->x1 - y->x1) < 1.0f && fabsf(x->y2 - y->y2) < 1.0f);
    }
    shoal_results_destroy(a);
    shoal_results_destroy(b);
    shoal_image_free(&img);
    shoal_runtime_destroy(r32);
    shoal_runtime_destroy(r16);
}

/* Rows as the head writes them, mapped through a letterbox worked out by hand: a 200x100
 * image in a 64x64 input is scaled by 0.32 and padded by (64 - 32) / 2 = 16 rows on top. */
static void test_end2end_rows(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_preprocess_params pp = sh_preprocess_default_params(64, 64);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(200, 100, &pp, &xf, &err), 0);
    const float rows[4][6] = {
        {8.0f, 20.0f, 24.0f, 40.0f, 0.9f, 2.0f},
        {0.0f, 10.0f, 70.0f, 30.0f, 0.6f, 0.0f},    /* spills over the input: clipped */
        {8.5f, 20.5f, 24.5f, 40.5f, 0.8f, 2.0f},    /* overlaps row 0 and is kept: no NMS */
        {1.0f, 1.0f, 2.0f, 2.0f, 0.1f, 1.0f},       /* under the threshold */
    };
    sh_ftensor out = {&rows[0][0], 3, {1, 4, 6}};
    sh_decode_params dp = sh_decode_default_params();
    dp.score_threshold = 0.25f;
    sh_detections *d = sh_detections_create(a);
    assert_int_equal(sh_decode_end2end(&out, 3, &xf, &dp, d, &err), 0);
    assert_int_equal(d->count, 3);
    assert_int_equal(d->items[0].class_id, 2);
    assert_true(fabsf(d->items[0].x1 - 8.0f / 0.32f) < 1e-3f);
    assert_true(fabsf(d->items[0].y1 - (20.0f - 16.0f) / 0.32f) < 1e-3f);
    assert_true(fabsf(d->items[0].x2 - 24.0f / 0.32f) < 1e-3f);
    assert_true(fabsf(d->items[0].y2 - (40.0f - 16.0f) / 0.32f) < 1e-3f);
    assert_true(fabsf(d->items[1].score - 0.8f) < 1e-6f);
    assert_true(d->items[2].x2 == 200.0f && d->items[2].y1 == 0.0f);
    dp.max_detections = 1;
    assert_int_equal(sh_decode_end2end(&out, 3, &xf, &dp, d, &err), 0);
    assert_int_equal(d->count, 1);
    /* a class id the head cannot have: the model is not what its shape says */
    assert_int_equal(sh_decode_end2end(&out, 2, &xf, &dp, d, &err), SHOAL_ERR_SHAPE);
    assert_non_null(strstr(err.msg, "class 2"));
    sh_ftensor wrong = {&rows[0][0], 3, {1, 6, 4}};
    assert_int_equal(sh_decode_end2end(&wrong, 3, &xf, &dp, d, &err), SHOAL_ERR_SHAPE);
    sh_detections_destroy(d);
    sh_allocator_destroy(a);
}

/* A segmenting end-to-end head gives the masks the YOLOv8-seg decoder gives for the same
 * boxes and coefficients: rows made from a seg output's columns decode to the same
 * detections and the same mask runs. */
static void test_end2end_seg_masks(void **state)
{
    (void)state;
    enum { NC = 2, NM = 4, N = 16, C = 4 + NC + NM, HP = 8 };
    static float cols[C * N], rows[N * (6 + NM)], protos[NM * HP * HP];
    uint32_t s = 99;
    for (int i = 0; i < NM * HP * HP; i++) {
        s = s * 1664525u + 1013904223u;
        protos[i] = (float)(s >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    for (int j = 0; j < N; j++) {
        float cx = 4.0f + 8.0f * (float)(j % 4), cy = 4.0f + 8.0f * (float)(j / 4);
        cols[0 * N + j] = cx;
        cols[1 * N + j] = cy;
        cols[2 * N + j] = 6.0f;   /* apart from each other: NMS keeps every box */
        cols[3 * N + j] = 6.0f;
        cols[(4 + j % 2) * N + j] = 0.3f + 0.04f * (float)j;
        cols[(4 + (j + 1) % 2) * N + j] = 0.1f;
        float *r = rows + (6 + NM) * j;
        r[0] = cx - 3.0f;
        r[1] = cy - 3.0f;
        r[2] = cx + 3.0f;
        r[3] = cy + 3.0f;
        r[4] = 0.3f + 0.04f * (float)j;
        r[5] = (float)(j % 2);
        for (int k = 0; k < NM; k++) {
            s = s * 1664525u + 1013904223u;
            cols[(4 + NC + k) * N + j] = r[6 + k] = (float)(s >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
        }
    }
    sh_allocator *a = sh_allocator_create();
    sh_err err;
    sh_preprocess_params pp = sh_preprocess_default_params(32, 32);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(64, 48, &pp, &xf, &err), 0);
    sh_decode_params dp = sh_decode_default_params();
    sh_ftensor seg = {cols, 3, {1, C, N}}, pr = {protos, 4, {1, NM, HP, HP}}, e2e = {rows, 3, {1, N, 6 + NM}};
    sh_detections *want = sh_detections_create(a), *got = sh_detections_create(a);
    assert_int_equal(sh_decode_yolov8_seg(&seg, &pr, &xf, &dp, want, &err), 0);
    assert_int_equal(sh_decode_end2end_seg(&e2e, &pr, NC, &xf, &dp, got, &err), 0);
    assert_int_equal(want->count, N);
    assert_int_equal(got->count, want->count);
    size_t fg = 0;
    for (size_t i = 0; i < got->count; i++) {
        const sh_detection *x = &want->items[i], *y = &got->items[i];
        assert_int_equal(x->class_id, y->class_id);
        assert_int_equal(x->anchor, y->anchor);
        assert_true(fabsf(x->x1 - y->x1) < 1e-3f && fabsf(x->y2 - y->y2) < 1e-3f);
        assert_non_null(y->mask);
        assert_int_equal(x->mask->area, y->mask->area);
        assert_int_equal(x->mask->n_runs, y->mask->n_runs);
        assert_memory_equal(x->mask->runs, y->mask->runs, x->mask->n_runs * sizeof *x->mask->runs);
        fg += y->mask->area;
    }
    assert_true(fg > 0);
    sh_ftensor few = {protos, 4, {1, NM - 1, HP, HP}};   /* 6 + 3 != the rows' 10 values */
    assert_int_equal(sh_decode_end2end_seg(&e2e, &few, NC, &xf, &dp, got, &err), SHOAL_ERR_SHAPE);
    sh_detections_destroy(want);
    sh_detections_destroy(got);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_from_metadata),
        cmocka_unit_test(test_config_values_kept),
        cmocka_unit_test(test_end2end_picked),
        cmocka_unit_test(test_end2end_seg_picked),
        cmocka_unit_test(test_dynamic_sizes),
        cmocka_unit_test(test_contradictions),
        cmocka_unit_test(test_fp16_like_fp32),
        cmocka_unit_test(test_end2end_rows),
        cmocka_unit_test(test_end2end_seg_masks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
