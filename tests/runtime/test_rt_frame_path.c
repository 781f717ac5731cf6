/* The runtime's run path against the host pipeline it replaced: every reference model in
 * models/, YOLOX-Nano and the real int8 ultralytics exports from ../shared, and the exported
 * heads of tests/exports, on the reference frames and real photos. The reference side is
 * assembled here from the host functions the runtime used to call itself: the model alone in
 * a session, fed by sh_preprocess (letterbox, normalisation) and read by the host decoders
 * (score scan, NMS, masks, landmarks). The runtime extends each model's graph with the frame
 * ops (graph/frame_ops.h) and is fed the 8-bit frame; its detections, masks and landmarks
 * must be identical: floats compared by their bits, masks by their run lengths. Several
 * photos run in turn on one runtime, so an output left unwritten shows as the previous
 * photo's result. With a mask pool smaller than a frame's masks (inference.mask_pool_frames)
 * the masks past it must be left out (no mask, counted in n_masks_left_out and the JSON) by
 * the placement rule of vision/frame.h, and the others stay identical. Skips (77) when models/
 * or ../shared is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "backends/backend.h"
#include "runtime/session.h"
#include "shoal.h"
#include "vision/decode.h"
#include "vision/preprocess.h"

#define REAL SHOAL_SHARED_DIR "/real-models"
#define EXPORTS SHOAL_SOURCE_DIR "/tests/exports/data/"

typedef enum host_decoder { DEC_YOLOV8, DEC_YOLOV8_SEG, DEC_YOLOX, DEC_LANDMARKS, DEC_END2END, DEC_END2END_SEG } host_decoder;

typedef struct model_case {
    const char *name;
    const char *path;
    const char *yaml;              /* the model's config lines beside path (indented 4) */
    host_decoder decoder;
    int size;                      /* square model input */
    sh_preprocess_params pre;      /* what the config lines ask for, spelled for sh_preprocess */
    sh_decode_params dec;
    int n_classes;                 /* end2end heads name no classes of their own */
    const char *inference;         /* extra inference: lines (indented 2), or NULL */
    size_t pool_bytes;             /* the mask pool those lines make, 0: room for every mask */
} model_case;

static const char *const frames[] = {
    SHOAL_MODELS_DIR "/frames/sidewalk.jpg",
    SHOAL_MODELS_DIR "/frames/crossing.png",
    REAL "/images/street/000000000724.jpg",
    REAL "/images/indoor/000000000139.jpg",
    REAL "/images/people/1.jpg",
};
#define N_FRAMES (sizeof frames / sizeof frames[0])

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static sh_decode_params dec_params(float score, float iou, int agnostic)
{
    sh_decode_params d = sh_decode_default_params();
    d.score_threshold = score;
    d.iou_threshold = iou;
    d.agnostic = agnostic;
    d.max_detections = 300;
    return d;
}

static model_case make_case(const char *name, const char *path, const char *yaml, host_decoder d, int size,
                            float score)
{
    model_case c = {.name = name, .path = path, .yaml = yaml, .decoder = d, .size = size,
                    .pre = sh_preprocess_default_params(size, size), .dec = dec_params(score, 0.45f, 0)};
    return c;
}

static char *config_for(const model_case *c)
{
    static char y[4096];
    snprintf(y, sizeof y,
             "models:\n  m:\n    path: \"%s\"\n%s    preload: true\nmodes:\n  run: [m]\n"
             "inference:\n  device: cpu\n  threads: 2\n%s",
             c->path, c->yaml, c->inference ? c->inference : "");
    return y;
}

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        b->s = realloc(b->s, b->cap);
        assert_non_null(b->s);
    }
}

static void put_detection(sbuf *b, int class_id, float score, const float box[4])
{
    put(b, "%d %a [%a %a %a %a]", class_id, (double)score, (double)box[0], (double)box[1], (double)box[2],
        (double)box[3]);
}

/* The runtime's result in the text put_host writes for the host pipeline. */
static void put_runtime(sbuf *b, const shoal_model_result *r)
{
    put(b, "%d detections %d landmarks\n", r->n_detections, r->n_landmarks);
    for (int k = 0; k < r->n_detections; k++) {
        const shoal_detection *d = &r->detections[k];
        const float box[4] = {d->x1, d->y1, d->x2, d->y2};
        put_detection(b, d->class_id, d->score, box);
        put(b, " %lld %s\n", (long long)d->mask_area, d->mask_rle ? d->mask_rle : "-");
    }
    for (int k = 0; k < 3 * r->n_landmarks; k++)
        put(b, "%a%s", (double)r->landmarks[k], k % 3 == 2 ? "\n" : " ");
    if (r->n_landmarks)
        put(b, "presence %a handedness %a\n", (double)r->presence, (double)r->handedness);
}

/* The host's detections; with pool_bytes, each mask placed as vision/frame.h says (rank order,
 * each after the last that fitted) and those that do not fit written as no mask, counted in
 * *left_out. */
static void put_host(sbuf *b, const sh_detections *d, const sh_hand_landmarks *hand, size_t pool_bytes, int *left_out)
{
    put(b, "%zu detections %d landmarks\n", d ? d->count : 0, hand ? SH_HAND_POINTS : 0);
    size_t used = 0;
    for (size_t k = 0; d && k < d->count; k++) {
        const sh_detection *x = &d->items[k];
        const float box[4] = {x->x1, x->y1, x->x2, x->y2};
        put_detection(b, x->class_id, x->score, box);
        size_t bytes = x->mask ? ((size_t)x->mask->width * x->mask->height + 7) / 8 : 0;
        if (x->mask && pool_bytes && bytes > pool_bytes - used) {
            (*left_out)++;
            put(b, " 0 -\n");
            continue;
        }
        used += bytes;
        if (!x->mask) {
            put(b, " 0 -\n");
            continue;
        }
        const sh_mask *m = x->mask;
        put(b, " %zu %d %d %d %d:", m->area, m->x, m->y, m->width, m->height);
        for (size_t i = 0; i < m->n_runs; i++)
            put(b, " %u", m->runs[i]);
        put(b, "\n");
    }
    for (int k = 0; hand && k < SH_HAND_POINTS; k++)
        put(b, "%a %a %a\n", (double)hand->x[k], (double)hand->y[k], (double)hand->z[k]);
    if (hand)
        put(b, "presence %a handedness %a\n", (double)hand->presence, (double)hand->handedness);
}

static sh_ftensor out_tensor(sh_session *s, int i)
{
    sh_tensor_info info;
    const void *data;
    size_t bytes;
    sh_err err = {0};
    assert_int_equal(sh_session_get_output(s, i, &info, &data, &bytes, &err), 0);
    sh_ftensor f = {data, info.shape.ndim > 4 ? 4 : info.shape.ndim, {0}};
    for (int k = 0; k < f.ndim; k++)
        f.shape[k] = info.shape.d[k];
    return f;
}

/* The host pipeline: sh_preprocess, the model alone, the host decoder. */
static void host_result(sh_session *s, const model_case *c, const shoal_image *frame, sbuf *b, int *left_out)
{
    sh_image img = {.width = frame->width, .height = frame->height, .channels = 3, .data = frame->rgb};
    size_t count = 3 * (size_t)c->size * (size_t)c->size;
    float *in = malloc(count * sizeof(float));
    assert_non_null(in);
    sh_transform xf;
    sh_err err = {0};
    assert_int_equal(sh_preprocess(NULL, &img, &c->pre, in, count, &xf, &err), 0);
    sh_shape shape = {4, {1, 3, c->size, c->size}};
    if (sh_session_set_input(s, 0, SH_DT_FLOAT32, &shape, in, count * sizeof(float), &err) || sh_session_run(s, &err))
        fail_msg("%s: %s", c->name, err.msg);
    free(in);
    sh_ftensor o0 = out_tensor(s, 0), o1 = {0};
    if (c->decoder == DEC_YOLOV8_SEG || c->decoder == DEC_END2END_SEG)
        o1 = out_tensor(s, 1);
    if (c->decoder == DEC_LANDMARKS) {
        sh_landmark_params lp = {.logits = 0};
        sh_hand_landmarks hand;
        if (sh_decode_hand_landmarks(&o0, &xf, &lp, &hand, &err))
            fail_msg("%s: %s", c->name, err.msg);
        put_host(b, NULL, &hand, 0, left_out);
        return;
    }
    sh_detections *d = sh_detections_create(NULL);
    assert_non_null(d);
    int rc = 0;
    switch (c->decoder) {
    case DEC_YOLOV8: rc = sh_decode_yolov8(&o0, &xf, &c->dec, d, &err); break;
    case DEC_YOLOV8_SEG: rc = sh_decode_yolov8_seg(&o0, &o1, &xf, &c->dec, d, &err); break;
    case DEC_YOLOX: rc = sh_decode_yolox(&o0, &xf, &c->dec, d, &err); break;
    case DEC_END2END: rc = sh_decode_end2end(&o0, c->n_classes, &xf, &c->dec, d, &err); break;
    case DEC_END2END_SEG: rc = sh_decode_end2end_seg(&o0, &o1, c->n_classes, &xf, &c->dec, d, &err); break;
    case DEC_LANDMARKS: break;
    }
    if (rc)
        fail_msg("%s: %s", c->name, err.msg);
    put_host(b, d, NULL, c->pool_bytes, left_out);
    sh_detections_destroy(d);
}

/* Runs the case on every frame both ways; returns the detections the runtime found and adds
 * the masks it left out to *all_left_out (may be NULL). */
static int check_case_counting(const model_case *c, const shoal_image *imgs, int *all_left_out)
{
    char err[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = config_for(c);
    p.error = err;
    p.error_cap = sizeof err;
    shoal_runtime_t rt = NULL;
    if (shoal_runtime_create(&p, &rt))
        fail_msg("%s: runtime: %s", c->name, err);

    sh_backend be;
    sh_err e = {0};
    sh_backend_params bp = {.n_threads = 2};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &e), 0);
    sh_session_params sp = sh_session_default_params();
    sp.backend = &be;
    const char *in_name = NULL;
    sh_shape in_shape = {4, {1, 3, c->size, c->size}};
    sh_session *probe = NULL;
    if (sh_session_create_file(&sp, c->path, &probe, &e) == 0) {
        sh_tensor_info info;
        assert_int_equal(sh_session_input(probe, 0, &info), 0);
        in_name = strdup(info.name);
    }
    sh_session_destroy(probe);
    assert_non_null(in_name);
    sp.n_input_shapes = 1;
    sp.input_shape_names = &in_name;
    sp.input_shapes = &in_shape;
    sh_session *s = NULL;
    if (sh_session_create_file(&sp, c->path, &s, &e))
        fail_msg("%s: session: %s", c->name, e.msg);

    int found = 0;
    for (size_t f = 0; f < N_FRAMES; f++) {
        shoal_results_t res = NULL;
        if (shoal_runtime_run_mode(rt, "run", &imgs[f], &res))
            fail_msg("%s on %s: %s", c->name, frames[f], shoal_runtime_last_error(rt));
        const shoal_model_result *r = shoal_results_get(res, 0);
        sbuf got = {0}, want = {0};
        put_runtime(&got, r);
        int left_out = 0;
        host_result(s, c, &imgs[f], &want, &left_out);
        found += r->n_detections;
        if (r->n_masks_left_out != left_out)
            fail_msg("%s on %s: %d masks left out, the placement rule leaves out %d", c->name, frames[f],
                     r->n_masks_left_out, left_out);
        if (left_out) {
            char *json = shoal_results_to_json(res);
            char key[64];
            snprintf(key, sizeof key, "\"masks_left_out\":%d", left_out);
            if (!json || !strstr(json, key))
                fail_msg("%s on %s: the JSON does not say %s", c->name, frames[f], key);
            shoal_free_string(json);
        }
        if (all_left_out)
            *all_left_out += left_out;
        if (strcmp(got.s, want.s)) {
            print_error("%s on %s\nruntime:\n%.2000s\nhost pipeline:\n%.2000s\n", c->name, frames[f], got.s, want.s);
            fail_msg("%s on %s: the runtime's results differ from the host pipeline's", c->name, frames[f]);
        }
        print_message("%-16s %-44s %3d detections %2d landmarks: identical\n", c->name, frames[f] + strlen(frames[f]) - 
                      (strlen(frames[f]) > 40 ? 40 : strlen(frames[f])), r->n_detections, r->n_landmarks);
        free(got.s);
        free(want.s);
        shoal_results_destroy(res);
    }
    sh_session_destroy(s);
    sh_backend_destroy(&be);
    free((void *)in_name);
    shoal_runtime_destroy(rt);
    return found;
}

static int check_case(const model_case *c, const shoal_image *imgs)
{
    return check_case_counting(c, imgs, NULL);
}

static shoal_image imgs[N_FRAMES];

static int load_frames(void **state)
{
    (void)state;
    for (size_t f = 0; f < N_FRAMES; f++) {
        char err[512];
        if (shoal_image_load(frames[f], &imgs[f], err, sizeof err))
            return -1;
    }
    return 0;
}

static int free_frames(void **state)
{
    (void)state;
    for (size_t f = 0; f < N_FRAMES; f++)
        shoal_image_free(&imgs[f]);
    return 0;
}

static void reference_models(void **state)
{
    (void)state;
    model_case cases[] = {
        make_case("blind_road", SHOAL_MODELS_DIR "/blind_road.onnx", "    task: segment\n", DEC_YOLOV8_SEG, 640, 0.25f),
        make_case("obstacle", SHOAL_MODELS_DIR "/obstacle.onnx", "    task: segment\n    score_threshold: 0.3\n",
                  DEC_YOLOV8_SEG, 640, 0.3f),
        make_case("traffic_light", SHOAL_MODELS_DIR "/traffic_light.onnx", "    task: detect\n", DEC_YOLOV8, 640, 0.25f),
        make_case("shopping", SHOAL_MODELS_DIR "/shopping.onnx", "    task: detect\n", DEC_YOLOV8, 640, 0.25f),
        make_case("hand", SHOAL_MODELS_DIR "/hand.onnx", "    task: landmarks\n    input_size: 224\n", DEC_LANDMARKS,
                  224, 0.25f),
    };
    int found = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        found += check_case(&cases[i], imgs);
    assert_true(found > 0);   /* the comparison saw detections, not only empty lists */
}

static void real_models(void **state)
{
    (void)state;
    model_case yolox = make_case("yolox_nano", REAL "/yolox_nano/model.onnx",
                                 "    task: yolox\n    letterbox: top_left\n    color: bgr\n    scale: 1.0\n"
                                 "    score_threshold: 0.3\n    iou_threshold: 0.45\n    agnostic_nms: true\n",
                                 DEC_YOLOX, 416, 0.3f);
    yolox.pre = sh_preprocess_yolox_params(416, 416);
    yolox.dec.agnostic = 1;
    model_case cases[] = {
        yolox,
        make_case("yolov8n-int8", REAL "/ultralytics-int8/yolov8n-8.3.203-op17/model.onnx",
                  "    task: detect\n    input_size: [640, 640]\n", DEC_YOLOV8, 640, 0.25f),
        make_case("yolo11n-int8", REAL "/ultralytics-int8/yolo11n-8.3.49-op19/model.onnx",
                  "    task: detect\n    input_size: [640, 640]\n", DEC_YOLOV8, 640, 0.25f),
        make_case("yolov8n-seg-int8", REAL "/ultralytics-int8/yolov8n-seg-8.4.33-op20-320/model.onnx",
                  "    task: segment\n    input_size: [320, 320]\n", DEC_YOLOV8_SEG, 320, 0.25f),
        make_case("yolov8n-qop", REAL "/ultralytics-int8/yolov8n-8.0.232-op17-qoperator/model.onnx",
                  "    task: detect\n    input_size: [640, 640]\n", DEC_YOLOV8, 640, 0.25f),
    };
    int found = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        found += check_case(&cases[i], imgs);
    assert_true(found > 0);
}

/* One frame's worth of mask pool on frames up to 960x720: obstacle's masks on the sidewalk frame
 * alone need 1.3 frames. */
static void small_mask_pool(void **state)
{
    (void)state;
    model_case obstacle = make_case("obstacle", SHOAL_MODELS_DIR "/obstacle.onnx",
                                    "    task: segment\n    score_threshold: 0.3\n", DEC_YOLOV8_SEG, 640, 0.3f);
    obstacle.inference = "  max_frame_pixels: 691200\n  mask_pool_frames: 1\n";
    obstacle.pool_bytes = (691200 + 7) / 8;
    int left_out = 0;
    assert_true(check_case_counting(&obstacle, imgs, &left_out) > 0);
    assert_true(left_out > 0);
}

/* The exported heads of tests/exports: a YOLOv8 detector and the NMS-free end2end heads,
 * whose rows the host decodes from the graph's raw outputs. */
static void exported_heads(void **state)
{
    (void)state;
    model_case det = make_case("det", EXPORTS "det.onnx", "    task: detect\n    decoder: yolov8\n", DEC_YOLOV8, 64,
                               0.25f);
    model_case e2e = make_case("e2e", EXPORTS "e2e.onnx", "    task: detect\n    decoder: end2end\n", DEC_END2END, 64,
                               0.25f);
    model_case e2e_seg = make_case("e2e_seg", EXPORTS "e2e_seg.onnx", "    task: segment\n    decoder: end2end\n",
                                   DEC_END2END_SEG, 64, 0.25f);
    e2e.n_classes = e2e_seg.n_classes = 3;   /* the files' metadata names three */
    model_case cases[] = {det, e2e, e2e_seg};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], imgs);
}

int main(void)
{
    for (size_t f = 0; f < N_FRAMES; f++)
        if (!exists(frames[f])) {
            fprintf(stderr, "%s absent (make models; ../shared/real-models): skipped\n", frames[f]);
            return 77;
        }
    if (!exists(SHOAL_MODELS_DIR "/blind_road.onnx") || !exists(REAL "/yolox_nano/model.onnx")) {
        fprintf(stderr, "models/ or ../shared/real-models absent: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reference_models),
        cmocka_unit_test(real_models),
        cmocka_unit_test(exported_heads),
        cmocka_unit_test(small_mask_pool),
    };
    return cmocka_run_group_tests(tests, load_frames, free_frames);
}
