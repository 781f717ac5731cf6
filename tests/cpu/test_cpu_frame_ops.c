/* The frame graph ops on the CPU against the host pipeline they replace: every reference model
 * in models/ and YOLOX-Nano from ../shared, on real photos, run once as model + sh_preprocess +
 * host decoder and once as one graph from 8-bit frame to detections (graph/frame_ops.h). The
 * detections (class, anchor, score and box bits) and the masks' run lengths must be identical;
 * without a decoder (the hand model) the network outputs must be. Each graph runs the photos in
 * turn, so a kernel that left an output unwritten would hand back the previous photo's result.
 * After the first photo every graph run happens with the allocator failing every allocation:
 * the frame ops' scratch is their planned workspace, so a run must neither allocate nor fail.
 * A mask pool too small for a frame's masks must leave out exactly the masks the placement rule
 * (vision/frame.h) leaves out, and keep the others identical.
 * Skips (77) when models/ or ../shared is absent. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "graph/frame_ops.h"
#include "import/onnx_import.h"
#include "runtime/session.h"
#include "vision/frame.h"

#define REAL SHOAL_SHARED_DIR "/real-models"
#define MAX_PIXELS (640 * 640)

static const char *const photos[] = {
    REAL "/images/street/000000000724.jpg",
    REAL "/images/indoor/000000000139.jpg",
    REAL "/images/indoor/000000000632.jpg",
};
#define N_PHOTOS (sizeof photos / sizeof photos[0])

typedef struct model_case {
    const char *path;
    sh_frame_spec spec;
} model_case;

static sh_preprocess_params pre_of(const sh_frame_spec *s)
{
    sh_preprocess_params p = {
        .width = s->width, .height = s->height, .resize = (sh_resize_mode)s->resize,
        .place = (sh_letterbox_place)s->place, .pad_value = (uint8_t)s->pad_value,
        .order = (sh_channel_order)s->order, .scale = s->scale,
    };
    memcpy(p.mean, s->mean, sizeof p.mean);
    memcpy(p.std, s->std, sizeof p.std);
    return p;
}

static sh_decode_params decode_of(const sh_frame_spec *s)
{
    sh_decode_params d = sh_decode_default_params();
    d.score_threshold = s->score_threshold;
    d.iou_threshold = s->iou_threshold;
    d.mask_threshold = s->mask_threshold;
    d.agnostic = s->agnostic;
    d.max_detections = s->max_detections;
    d.top_k = s->top_k;
    return d;
}

static sh_session *open_session(sh_allocator *a, sh_backend *be, const model_case *mc, bool frame)
{
    sh_session_params sp = sh_session_default_params();
    sp.alloc = a;
    sp.backend = be;
    sh_graph *g = NULL;
    sh_err err = {0};
    assert_int_equal(sh_onnx_load_file(a, mc->path, &g, &err), 0);
    if (frame) {
        int rc = sh_graph_add_frame_ops(g, &mc->spec, &err);
        if (rc)
            fail_msg("%s: %s", mc->path, err.msg);
    }
    sh_session *s = NULL;
    if (sh_session_create_graph(&sp, g, &s, &err))
        fail_msg("%s: %s", mc->path, err.msg);
    return s;
}

static const void *output_bytes(sh_session *s, int i, size_t *bytes)
{
    sh_tensor_info info;
    const void *data;
    sh_err err = {0};
    assert_int_equal(sh_session_get_output(s, i, &info, &data, bytes, &err), 0);
    return data;
}

static const void *output(sh_session *s, int i)
{
    size_t bytes;
    return output_bytes(s, i, &bytes);
}

static void set_input(sh_session *s, int i, sh_dtype dt, int64_t n, const void *data, size_t bytes)
{
    sh_shape shape = {1, {n}};
    sh_err err = {0};
    if (sh_session_set_input(s, i, dt, &shape, data, bytes, &err))
        fail_msg("input %d: %s", i, err.msg);
}

/* The host path: the model fed by sh_preprocess, its outputs through the host decoder. */
static void host_path(sh_allocator *a, sh_session *s, const model_case *mc, const sh_image *img, sh_detections *d,
                      float **outs, size_t *out_bytes)
{
    sh_preprocess_params pp = pre_of(&mc->spec);
    size_t count = 3 * (size_t)pp.width * pp.height;
    float *in = sh_alloc(a, count * sizeof(float));
    sh_transform xf;
    sh_err err = {0};
    assert_int_equal(sh_preprocess(a, img, &pp, in, count, &xf, &err), 0);
    sh_shape shape = {4, {1, 3, pp.height, pp.width}};
    assert_int_equal(sh_session_set_input(s, 0, SH_DT_FLOAT32, &shape, in, count * sizeof(float), &err), 0);
    sh_free(a, in);
    if (sh_session_run(s, &err))
        fail_msg("%s: %s", mc->path, err.msg);
    sh_tensor_info i0, i1 = {0};
    const void *o0, *o1 = NULL;
    size_t b0, b1 = 0;
    assert_int_equal(sh_session_get_output(s, 0, &i0, &o0, &b0, &err), 0);
    if (sh_session_n_outputs(s) > 1)
        assert_int_equal(sh_session_get_output(s, 1, &i1, &o1, &b1, &err), 0);
    sh_ftensor f0 = {o0, i0.shape.ndim, {0}}, f1 = {o1, i1.shape.ndim, {0}};
    for (int k = 0; k < 4; k++) {
        f0.shape[k] = k < i0.shape.ndim ? i0.shape.d[k] : 0;
        f1.shape[k] = k < i1.shape.ndim ? i1.shape.d[k] : 0;
    }
    sh_decode_params dp = decode_of(&mc->spec);
    int rc = 0;
    if (mc->spec.decoder == SH_FRAME_SPEC_YOLOX)
        rc = sh_decode_yolox(&f0, &xf, &dp, d, &err);
    else if (mc->spec.decoder == SH_FRAME_SPEC_YOLOV8)
        rc = mc->spec.masks ? sh_decode_yolov8_seg(&f0, &f1, &xf, &dp, d, &err) : sh_decode_yolov8(&f0, &xf, &dp, d, &err);
    if (rc)
        fail_msg("%s: %s", mc->path, err.msg);
    if (outs) {
        *outs = sh_alloc(a, b0);
        memcpy(*outs, o0, b0);
        *out_bytes = b0;
    }
}

/* The graph path: 8-bit frame in, results out. The frame input's bytes past the picture are
 * filled with a pattern that a kernel reading too far would turn into wrong results. With
 * no_alloc, every allocation fails from the upload through the run. */
static void frame_path(sh_allocator *a, sh_session *s, const model_case *mc, const sh_image *img, bool bgr,
                       bool no_alloc, sh_detections *d)
{
    size_t cap = (size_t)MAX_PIXELS * 3, bytes = (size_t)img->width * img->height * 3;
    assert_true(bytes <= cap);
    uint8_t *frame = sh_alloc(a, cap);
    memset(frame, 0xA5, cap);
    memcpy(frame, img->data, bytes);
    if (bgr)
        for (size_t i = 0; i < bytes; i += 3) {
            uint8_t r = frame[i];
            frame[i] = frame[i + 2];
            frame[i + 2] = r;
        }
    const int32_t size[2] = {img->width, img->height};
    sh_alloc_stats before = sh_allocator_stats(a);
    if (no_alloc)
        sh_allocator_fail_after(a, 0, 1);
    set_input(s, 0, SH_DT_UINT8, (int64_t)cap, frame, cap);
    set_input(s, 1, SH_DT_INT32, 2, size, sizeof size);
    sh_err err = {0};
    int run_rc = sh_session_run(s, &err);
    sh_allocator_fail_after(a, -1, 0);
    sh_alloc_stats after = sh_allocator_stats(a);
    sh_free(a, frame);
    if (run_rc)
        fail_msg("%s: %s", mc->path, err.msg);
    if (no_alloc && (after.n_allocs != before.n_allocs || after.n_failed != before.n_failed))
        fail_msg("%s: a run after the first asked for %llu allocations", mc->path,
                 (unsigned long long)(after.n_allocs + after.n_failed - before.n_allocs - before.n_failed));
    if (mc->spec.decoder == SH_FRAME_SPEC_NONE || mc->spec.decoder == SH_FRAME_SPEC_LANDMARKS)
        return;
    size_t pool_bytes = 0;
    const void *pool = mc->spec.masks ? output_bytes(s, 6, &pool_bytes) : NULL;
    int rc = sh_frame_results(output(s, 1), output(s, 2), output(s, 3), (size_t)mc->spec.max_detections,
                              output(s, 4), output(s, 0), mc->spec.masks ? output(s, 5) : NULL, pool, pool_bytes, d,
                              &err);
    if (rc)
        fail_msg("%s: %s", mc->path, err.msg);
}

static void expect_same(const sh_detections *want, const sh_detections *got, const char *what)
{
    if (want->count != got->count)
        fail_msg("%s: %zu detections, the host path has %zu", what, got->count, want->count);
    assert_int_equal(want->image_w, got->image_w);
    assert_int_equal(want->image_h, got->image_h);
    for (size_t i = 0; i < want->count; i++) {
        const sh_detection *w = &want->items[i], *g = &got->items[i];
        float wb[5] = {w->score, w->x1, w->y1, w->x2, w->y2}, gb[5] = {g->score, g->x1, g->y1, g->x2, g->y2};
        if (w->class_id != g->class_id || w->anchor != g->anchor || memcmp(wb, gb, sizeof wb))
            fail_msg("%s: detection %zu differs (class %d/%d anchor %d/%d score %.9g/%.9g box %.9g,%.9g,%.9g,%.9g / "
                     "%.9g,%.9g,%.9g,%.9g)", what, i, w->class_id, g->class_id, w->anchor, g->anchor, w->score,
                     g->score, w->x1, w->y1, w->x2, w->y2, g->x1, g->y1, g->x2, g->y2);
        assert_int_equal(w->mask == NULL, g->mask == NULL);
        if (!w->mask)
            continue;
        const sh_mask *wm = w->mask, *gm = g->mask;
        if (wm->x != gm->x || wm->y != gm->y || wm->width != gm->width || wm->height != gm->height ||
            wm->area != gm->area || wm->n_runs != gm->n_runs ||
            memcmp(wm->runs, gm->runs, wm->n_runs * sizeof *wm->runs))
            fail_msg("%s: mask of detection %zu differs (area %zu/%zu)", what, i, wm->area, gm->area);
    }
}

static void run_case(const model_case *given, bool bgr)
{
    model_case m = *given, *mc = &m;
    m.spec.pixel_format = bgr ? SH_PIXEL_BGR : SH_PIXEL_RGB;
    sh_allocator *a = sh_allocator_create();
    sh_backend be;
    sh_backend_params bp = {.alloc = a, .n_threads = 2};
    sh_err err = {0};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &err), 0);
    sh_session *host = open_session(a, &be, mc, false), *graph = open_session(a, &be, mc, true);
    sh_detections *want = sh_detections_create(a), *got = sh_detections_create(a);
    size_t total = 0;
    for (size_t k = 0; k < N_PHOTOS; k++) {
        sh_image img;
        assert_int_equal(sh_image_load_file(a, photos[k], &img, &err), 0);
        float *net = NULL;
        size_t net_bytes = 0;
        bool plain = mc->spec.decoder == SH_FRAME_SPEC_NONE || mc->spec.decoder == SH_FRAME_SPEC_LANDMARKS;
        host_path(a, host, mc, &img, want, plain ? &net : NULL, &net_bytes);
        frame_path(a, graph, mc, &img, bgr, k > 0, got);
        char what[512];
        snprintf(what, sizeof what, "%s on %s%s", mc->path, photos[k], bgr ? " (BGR frame)" : "");
        if (plain) {
            /* output 0 of the extended graph is the transform; the model's own follow */
            sh_transform xf;
            sh_preprocess_params pp = pre_of(&mc->spec);
            float words[SH_FRAME_XF_WORDS];
            assert_int_equal(sh_transform_compute(img.width, img.height, &pp, &xf, &err), 0);
            sh_transform_pack(&xf, words);
            assert_memory_equal(output(graph, 0), words, sizeof words);
            if (mc->spec.decoder == SH_FRAME_SPEC_LANDMARKS) {
                float want_lm[SH_FRAME_LANDMARK_WORDS];
                assert_int_equal(net_bytes, sizeof want_lm);
                assert_int_equal(sh_frame_landmarks(net, words, mc->spec.landmark_logits, want_lm, &err), 0);
                sh_hand_landmarks hand;
                sh_ftensor t = {net, 1, {SH_FRAME_LANDMARK_WORDS}};
                sh_landmark_params lp = {.logits = mc->spec.landmark_logits};
                assert_int_equal(sh_decode_hand_landmarks(&t, &xf, &lp, &hand, &err), 0);
                /* the host decoder's own result, read back field by field */
                assert_memory_equal(&want_lm[3 * SH_HAND_POINTS], &hand.presence, sizeof(float));
                assert_memory_equal(&want_lm[3 * SH_HAND_POINTS + 1], &hand.handedness, sizeof(float));
                for (int p = 0; p < SH_HAND_POINTS; p++) {
                    assert_memory_equal(&want_lm[3 * p], &hand.x[p], sizeof(float));
                    assert_memory_equal(&want_lm[3 * p + 1], &hand.y[p], sizeof(float));
                    assert_memory_equal(&want_lm[3 * p + 2], &hand.z[p], sizeof(float));
                }
                if (memcmp(output(graph, 1), want_lm, sizeof want_lm))
                    fail_msg("%s: landmarks differ", what);
            } else if (memcmp(output(graph, 1), net, net_bytes)) {
                fail_msg("%s: network output differs", what);
            }
            sh_free(a, net);
        } else {
            expect_same(want, got, what);
            total += want->count;
        }
        sh_image_free(&img);
    }
    /* a comparison of empty results proves nothing */
    if (mc->spec.decoder == SH_FRAME_SPEC_YOLOV8 || mc->spec.decoder == SH_FRAME_SPEC_YOLOX)
        assert_true(total > 0);
    sh_detections_destroy(want);
    sh_detections_destroy(got);
    sh_session_destroy(host);
    sh_session_destroy(graph);
    sh_backend_destroy(&be);
    sh_allocator_destroy(a);
}

static sh_frame_spec yolo_spec(int decoder, bool masks, int max_detections, float score)
{
    sh_frame_spec s = sh_frame_default_spec(640, 640);
    s.max_pixels = MAX_PIXELS;
    s.decoder = (sh_frame_spec_decoder)decoder;
    s.masks = masks;
    s.max_detections = max_detections;
    s.score_threshold = score;
    return s;
}

static void test_seg_models(void **state)
{
    (void)state;
    model_case blind = {SHOAL_MODELS_DIR "/blind_road.onnx", yolo_spec(SH_FRAME_SPEC_YOLOV8, true, 50, 0.25f)};
    model_case obstacle = {SHOAL_MODELS_DIR "/obstacle.onnx", yolo_spec(SH_FRAME_SPEC_YOLOV8, true, 100, 0.3f)};
    obstacle.spec.agnostic = 1;
    run_case(&blind, false);
    run_case(&obstacle, true);
}

static void test_detect_models(void **state)
{
    (void)state;
    model_case light = {SHOAL_MODELS_DIR "/traffic_light.onnx", yolo_spec(SH_FRAME_SPEC_YOLOV8, false, 20, 0.35f)};
    model_case shop = {SHOAL_MODELS_DIR "/shopping.onnx", yolo_spec(SH_FRAME_SPEC_YOLOV8, false, 100, 0.3f)};
    shop.spec.top_k = 50;
    run_case(&light, true);
    run_case(&shop, false);
}

static void test_yolox_nano(void **state)
{
    (void)state;
    model_case mc = {REAL "/yolox_nano/model.onnx", yolo_spec(SH_FRAME_SPEC_YOLOX, false, 300, 0.25f)};
    sh_preprocess_params p = sh_preprocess_yolox_params(416, 416);
    mc.spec.width = mc.spec.height = 416;
    mc.spec.place = (int)p.place;
    mc.spec.order = (int)p.order;
    mc.spec.scale = p.scale;
    run_case(&mc, false);
    run_case(&mc, true);
}

/* The frame op's stretch and mean/std feed the hand model: without a decoder its outputs must be
 * the host-fed model's, with the landmarks decoder they must be sh_decode_hand_landmarks'. */
static void test_hand_landmarks(void **state)
{
    (void)state;
    model_case mc = {SHOAL_MODELS_DIR "/hand.onnx", sh_frame_default_spec(224, 224)};
    mc.spec.max_pixels = MAX_PIXELS;
    mc.spec.resize = SH_RESIZE_STRETCH;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(mc.spec.mean, mean, sizeof mean);
    memcpy(mc.spec.std, std, sizeof std);
    run_case(&mc, true);
    mc.spec.decoder = SH_FRAME_SPEC_LANDMARKS;
    run_case(&mc, false);
    mc.spec.landmark_logits = 1;
    run_case(&mc, false);
}

/* A frame bigger than the frame input is refused with a status naming the node, not read. */
static void test_frame_too_large(void **state)
{
    (void)state;
    model_case mc = {SHOAL_MODELS_DIR "/hand.onnx", sh_frame_default_spec(224, 224)};
    mc.spec.max_pixels = 64 * 64;
    sh_allocator *a = sh_allocator_create();
    sh_backend be;
    sh_backend_params bp = {.alloc = a, .n_threads = 1};
    sh_err err = {0};
    assert_int_equal(sh_backend_cpu_create(&bp, &be, &err), 0);
    sh_session *s = open_session(a, &be, &mc, true);
    uint8_t frame[64 * 64 * 3];
    for (size_t i = 0; i < sizeof frame; i++)
        frame[i] = (uint8_t)(i * 7 + 1);
    const int32_t sizes[3][2] = {{65, 64}, {0, 64}, {64, -1}};
    set_input(s, 0, SH_DT_UINT8, (int64_t)sizeof frame, frame, sizeof frame);
    for (int k = 0; k < 3; k++) {
        set_input(s, 1, SH_DT_INT32, 2, sizes[k], sizeof sizes[k]);
        assert_int_equal(sh_session_run(s, &err), SHOAL_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "shoal.frame_to_tensor"));
    }
    const int32_t fits[2] = {64, 48};
    set_input(s, 1, SH_DT_INT32, 2, fits, sizeof fits);
    assert_int_equal(sh_session_run(s, &err), 0);
    sh_session_destroy(s);
    sh_backend_destroy(&be);
    sh_allocator_destroy(a);
}

int main(void)
{
    struct stat st;
    if (stat(SHOAL_MODELS_DIR "/obstacle.onnx", &st) != 0 || stat(photos[0], &st) != 0 ||
        stat(REAL "/yolox_nano/model.onnx", &st) != 0) {
        printf("models/ or ../shared absent: skipped\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seg_models),
        cmocka_unit_test(test_detect_models),
        cmocka_unit_test(test_yolox_nano),
        cmocka_unit_test(test_hand_landmarks),
        cmocka_unit_test(test_frame_too_large),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
