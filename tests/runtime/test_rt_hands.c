/* Task hand_landmarks as a model of a runtime mode, on the CPU backend with MediaPipe's own
 * models (models/, `make models`) and test photo (../shared/real-models/hands):
 *  - the mode's hands (and the palm detector run as a model alone) against MediaPipe's expected results with its tests' tolerances: palm
 *    boxes and scores +-0.01 (normalized), hand-ROI sizes +-0.02, landmarks < 20 px vs the
 *    legacy Hands solution, handedness label; and against the same landmarker run through
 *    plain sessions (hand_sessions.h), which the runtime must reproduce;
 *  - both stages counted by the budget: a budget one byte short of what a run holds fails
 *    with SHOAL_ERR_BUDGET naming the palm detector, the exact amount runs;
 *  - video state per caller: each shoal_video_t tracks on its own, a run without one detects;
 *  - a concurrent runtime (the CPU presented as a device with lanes): the mode's other model
 *    at once, the hand stages on their lanes after it, the same hands as in turn, the 8-bit
 *    frame uploaded once per model and frame (the palm and both hands' crops from one upload).
 * Skips (77) without the models or the photo. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "hand_ref.h"
#include "runtime/introspect.h"
#include "runtime/runtime-impl.h"
#include "shoal.h"

/* a hand model beside a network of the reference set's tiny stand-ins (order kept) */
#define CONFIG                                                                                     \
    "models:\n"                                                                                        \
    "  tl:\n    path: " SHOAL_SOURCE_DIR "/tests/runtime/data/traffic_light.onnx\n"                    \
    "    task: detect\n    input_size: 64\n    classes: [red, green, yellow, off]\n"                   \
    "  hand:\n    task: hand_landmarks\n    path: " LANDMARK_MODEL "\n    palm_model: " PALM_MODEL "\n" \
    "modes:\n  shopping: [tl, hand]\n  hands: [hand]\n"                                                \
    "inference:\n  device: cpu\n  threads: 2\n"

typedef struct fixture {
    shoal_image photo;
    shoal_image grey;
} fixture;

static shoal_runtime_t open_runtime(long long budget, char *why, size_t cap)
{
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = CONFIG;
    p.budget_bytes = budget;   /* 0: unlimited */
    p.preload = 0;
    p.error = why;
    p.error_cap = cap;
    shoal_runtime_t rt = NULL;
    return shoal_runtime_create(&p, &rt) == SHOAL_OK ? rt : NULL;
}

/* NaN in every byte of the activation arenas: outputs the run does not write stay NaN. */
static void poison_arenas(shoal_runtime_t rt)
{
    for (int c = 0; c < rt->n_contexts; c++)
        if (rt->contexts[c].arena)
            memset(rt->contexts[c].arena, 0xff, rt->contexts[c].arena_bytes);
}

static const shoal_model_result *hand_result(shoal_results_t res)
{
    for (int i = 0; i < shoal_results_count(res); i++)
        if (!strcmp(shoal_results_get(res, i)->model, "hand"))
            return shoal_results_get(res, i);
    fail_msg("no result of model 'hand'");
    return NULL;
}

static int setup(void **state)
{
    static fixture f;
    char err[256];
    if (shoal_image_load(HAND_DIR "/left_hands.jpg", &f.photo, err, sizeof err)) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    size_t n = (size_t)f.photo.width * (size_t)f.photo.height * 3;
    f.grey = shoal_image_wrap(malloc(n), f.photo.width, f.photo.height);
    if (!f.grey.rgb)
        return -1;
    memset(f.grey.rgb, 128, n);
    f.grey.owned = 1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    shoal_image_free(&f->photo);
    shoal_image_free(&f->grey);
    return 0;
}

/* Both hands against the legacy solution's pixels (source 0: MediaPipe's Python test), matched
 * by nearest wrist; returns the largest |dx|, |dy|. */
static float compare_legacy(const shoal_hand *hands, int n)
{
    char *txt = hr_read_text(HAND_DIR "/left_hands.legacy_solution.expected.json");
    assert_non_null(txt);
    cJSON *root = cJSON_Parse(txt);
    free(txt);
    assert_non_null(root);
    cJSON *src = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "sources"), 0);
    cJSON *want = cJSON_GetObjectItem(src, "hands");
    cJSON *tol = cJSON_GetObjectItem(src, "tolerance_px");
    cJSON *full = cJSON_IsObject(tol) ? cJSON_GetObjectItem(tol, "model_complexity_1_full") : tol;
    assert_true(cJSON_IsNumber(full));
    int tol_px = full->valueint;
    assert_int_equal(tol_px, 20);
    assert_int_equal(cJSON_GetArraySize(want), 2);
    assert_int_equal(n, 2);
    float worst = 0;
    for (int e = 0; e < 2; e++) {
        cJSON *pts = cJSON_GetArrayItem(want, e);
        assert_int_equal(cJSON_GetArraySize(pts), SHOAL_HAND_LANDMARKS);
        float wx = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 0)->valuedouble;
        float wy = (float)cJSON_GetArrayItem(cJSON_GetArrayItem(pts, 0), 1)->valuedouble;
        int best = 0;
        float bd = INFINITY;
        for (int i = 0; i < n; i++) {
            float d = hypotf(hands[i].landmarks[0][0] - wx, hands[i].landmarks[0][1] - wy);
            if (d < bd) {
                bd = d;
                best = i;
            }
        }
        for (int k = 0; k < SHOAL_HAND_LANDMARKS; k++) {
            cJSON *pt = cJSON_GetArrayItem(pts, k);
            worst = fmaxf(worst, fabsf(hands[best].landmarks[k][0] - (float)cJSON_GetArrayItem(pt, 0)->valuedouble));
            worst = fmaxf(worst, fabsf(hands[best].landmarks[k][1] - (float)cJSON_GetArrayItem(pt, 1)->valuedouble));
        }
        /* the npm label map (mirrored-selfie convention) names both hands of this photo "Right" */
        assert_string_equal(hands[best].handedness_label, "Right");
        assert_int_equal(hands[best].handedness, 1);
        assert_true(hands[best].handedness_score > 0.5f && hands[best].handedness_score <= 1.0f);
        assert_true(hands[best].presence > 0.5f && hands[best].presence <= 1.0f);
    }
    cJSON_Delete(root);
    assert_true(worst < (float)tol_px);
    return worst;
}

/* The palm detections (image pixels) against the hand detector test's expectations. */
static void compare_palms(const shoal_model_result *r, const shoal_image *img)
{
    char *txt = hr_read_text(HAND_DIR "/left_hands.detector_two_hands.expected.pbtxt");
    assert_non_null(txt);
    assert_int_equal(r->n_detections, 2);
    const char *at = txt;
    int expected = 0;
    bool used[2] = {false, false};
    float w = (float)img->width, h = (float)img->height;
    const char *det;
    while ((det = strstr(at, "detections {")) != NULL) {
        float score = (float)hr_pb_number(det, "score", &at);
        float xmin = (float)hr_pb_number(at, "xmin", &at), ymin = (float)hr_pb_number(at, "ymin", &at);
        float bw = (float)hr_pb_number(at, "width", &at), bh = (float)hr_pb_number(at, "height", &at);
        expected++;
        int best = -1;
        float bd = INFINITY;
        for (int i = 0; i < r->n_detections; i++) {
            float d = fabsf(r->detections[i].x1 / w - xmin) + fabsf(r->detections[i].y1 / h - ymin);
            if (!used[i] && d < bd) {
                bd = d;
                best = i;
            }
        }
        assert_true(best >= 0);
        used[best] = true;
        const shoal_detection *g = &r->detections[best];
        assert_string_equal(g->class_name, "palm");
        assert_true(fabsf(g->score - score) <= 0.01f);
        assert_true(fabsf(g->x1 / w - xmin) <= 0.01f && fabsf(g->y1 / h - ymin) <= 0.01f);
        assert_true(fabsf((g->x2 - g->x1) / w - bw) <= 0.01f && fabsf((g->y2 - g->y1) / h - bh) <= 0.01f);
    }
    assert_int_equal(expected, 2);
    /* each hand's crop has the size of one of MediaPipe's hand ROIs: +-0.02 */
    for (int i = 0; i < r->n_hands; i++) {
        bool match = false;
        for (const char *rect = strstr(txt, "hand_rects {"); rect; rect = strstr(rect + 1, "hand_rects {")) {
            const char *q;
            double rh = hr_pb_number(rect, "height", &q), rw = hr_pb_number(rect, "width", &q);
            match |= fabs(r->hands[i].roi_width / w - rw) <= 0.02 && fabs(r->hands[i].roi_height / h - rh) <= 0.02;
        }
        assert_true(match);
    }
    free(txt);
}

static void test_mode_matches_mediapipe(void **state)
{
    fixture *f = *state;
    char why[512] = "";
    shoal_runtime_t rt = open_runtime(0, why, sizeof why);
    if (!rt)
        fail_msg("runtime: %s", why);
    assert_int_equal(shoal_runtime_model_count(rt), 3);
    assert_string_equal(shoal_runtime_model_name(rt, 2), "hand.palm");
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_OK);
    assert_int_equal(shoal_runtime_load_model(rt, "hand.palm"), SHOAL_OK);
    poison_arenas(rt);
    shoal_results_t res = NULL;
    assert_int_equal(shoal_runtime_run_mode(rt, "shopping", &f->photo, &res), SHOAL_OK);
    assert_int_equal(shoal_results_count(res), 2);
    assert_string_equal(shoal_results_get(res, 0)->model, "tl");
    const shoal_model_result *r = shoal_results_get(res, 1);
    assert_string_equal(r->model, "hand");
    assert_string_equal(r->task, "hand_landmarks");
    assert_int_equal(r->n_hands, 2);
    for (int i = 0; i < r->n_hands; i++)
        assert_int_equal(r->hands[i].tracked, 0);
    float worst = compare_legacy(r->hands, r->n_hands);
    compare_palms(r, &f->photo);
    /* the first hand repeats in the single-hand fields */
    assert_int_equal(r->n_landmarks, SHOAL_HAND_LANDMARKS);
    assert_true(r->landmarks[0] == r->hands[0].landmarks[0][0] && r->presence == r->hands[0].presence);

    /* the same landmarker through plain sessions on the same backend: same numbers */
    sh_allocator *a = sh_allocator_create();
    hr_models hm;
    sh_err err = {0};
    if (hr_open(&hm, a, &err))
        fail_msg("sessions: %s", err.msg);
    sh_hand_models cb = sh_hand_sessions_models(hm.hs);
    sh_hand_params p = sh_hand_default_params();
    sh_image img = {.width = f->photo.width, .height = f->photo.height, .channels = 3, .data = f->photo.rgb};
    sh_hand ref[SH_HAND_MAX_HANDS];
    int n = 0;
    assert_int_equal(sh_hand_landmarker_run(a, &p, &cb, NULL, &img, ref, SH_HAND_MAX_HANDS, &n, NULL, NULL, &err), 0);
    assert_int_equal(n, r->n_hands);
    float most = 0;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < SH_HAND_LANDMARKS; k++)
            for (int c = 0; c < 3; c++)
                most = fmaxf(most, fabsf(ref[i].landmarks[k][c] - r->hands[i].landmarks[k][c]) /
                                       fmaxf(1.0f, fabsf(ref[i].landmarks[k][c])));
    assert_true(most <= 1e-4f);
    hr_close(&hm);
    sh_allocator_destroy(a);

    /* JSON: hands with 21 landmarks, the palms */
    char *json = shoal_results_to_json(res);
    assert_non_null(json);
    cJSON *root = cJSON_Parse(json);
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "models"), 1);
    cJSON *hands = cJSON_GetObjectItem(m, "hands");
    assert_int_equal(cJSON_GetArraySize(hands), 2);
    cJSON *h0 = cJSON_GetArrayItem(hands, 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(h0, "landmarks")), SHOAL_HAND_LANDMARKS);
    assert_string_equal(cJSON_GetObjectItem(h0, "handedness")->valuestring, "Right");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(h0, "tracked")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(m, "palms")), 2);
    cJSON_Delete(root);
    shoal_free_string(json);
    printf("mode shopping: 2 hands, largest |d| %.2f px vs MediaPipe (20), runtime vs sessions %.2g\n", worst, most);
    shoal_results_destroy(res);

    /* the palm stage run alone: MediaPipe's palm detections, no hands */
    poison_arenas(rt);
    assert_int_equal(shoal_runtime_run_model(rt, "hand.palm", &f->photo, &res), SHOAL_OK);
    r = shoal_results_get(res, 0);
    assert_string_equal(r->model, "hand.palm");
    assert_int_equal(r->n_hands, 0);
    assert_int_equal(r->n_landmarks, 0);
    compare_palms(r, &f->photo);
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
}

static int64_t cpu_in_use(shoal_runtime_t rt)
{
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    assert_true(st.n_devices >= 1);
    int64_t b = st.devices[0].in_use_bytes;
    for (int i = 0; i < st.n_models; i++)
        if (!strcmp(st.models[i].name, "hand") || !strcmp(st.models[i].name, "hand.palm")) {
            assert_int_equal(st.models[i].state, SHOAL_MODEL_RESIDENT);
            assert_true(st.models[i].weight_bytes > 1000000);   /* 2.3 and 5.5 MB of fp16 files */
            assert_true(st.models[i].runs >= 1);
        }
    shoal_stats_free(&st);
    return b;
}

static void test_budget_counts_both_stages(void **state)
{
    fixture *f = *state;
    char why[512] = "";
    shoal_runtime_t rt = open_runtime(0, why, sizeof why);
    if (!rt)
        fail_msg("runtime: %s", why);
    shoal_results_t res = NULL;
    assert_int_equal(shoal_runtime_run_mode(rt, "hands", &f->photo, &res), SHOAL_OK);
    shoal_results_destroy(res);
    int64_t need = cpu_in_use(rt);   /* the arena and both stages' weights */
    shoal_runtime_destroy(rt);

    rt = open_runtime(need - 1, why, sizeof why);
    if (!rt)
        fail_msg("runtime: %s", why);
    assert_int_equal(shoal_runtime_run_mode(rt, "hands", &f->photo, &res), SHOAL_ERR_BUDGET);
    assert_null(res);
    if (!strstr(shoal_runtime_last_error(rt), "hand.palm"))
        fail_msg("budget failure does not name the palm detector: %s", shoal_runtime_last_error(rt));
    shoal_runtime_destroy(rt);

    rt = open_runtime(need, why, sizeof why);
    if (!rt)
        fail_msg("runtime: %s", why);
    assert_int_equal(shoal_runtime_run_mode(rt, "hands", &f->photo, &res), SHOAL_OK);
    assert_int_equal(hand_result(res)->n_hands, 2);
    shoal_results_destroy(res);
    assert_int_equal(cpu_in_use(rt), need);
    shoal_runtime_destroy(rt);
}

static const shoal_model_result *run_video(shoal_runtime_t rt, shoal_video_t v, const shoal_image *img,
                                           shoal_results_t *res)
{
    int rc = shoal_runtime_run_mode_video(rt, "hands", img, v, res);
    if (rc)
        fail_msg("run: %s", shoal_runtime_last_error(rt));
    return hand_result(*res);
}

static uint64_t palm_runs(shoal_runtime_t rt)
{
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    uint64_t n = 0;
    for (int i = 0; i < st.n_models; i++)
        if (!strcmp(st.models[i].name, "hand.palm"))
            n = st.models[i].runs;
    shoal_stats_free(&st);
    return n;
}

static void test_video_state_per_caller(void **state)
{
    fixture *f = *state;
    char why[512] = "";
    shoal_runtime_t rt = open_runtime(0, why, sizeof why);
    if (!rt)
        fail_msg("runtime: %s", why);
    shoal_video_t a = shoal_video_create(), b = shoal_video_create();
    assert_non_null(a);
    assert_non_null(b);
    shoal_results_t res = NULL;
    const shoal_model_result *r = run_video(rt, a, &f->photo, &res);   /* a: detects */
    assert_int_equal(r->n_hands, 2);
    assert_int_equal(r->n_detections, 2);
    assert_false(r->hands[0].tracked || r->hands[1].tracked);
    shoal_results_destroy(res);
    assert_int_equal(palm_runs(rt), 1);
    r = run_video(rt, a, &f->photo, &res);   /* a: tracks, no palm detection */
    assert_int_equal(r->n_detections, 0);
    assert_true(r->hands[0].tracked && r->hands[1].tracked);
    float worst = compare_legacy(r->hands, r->n_hands);
    shoal_results_destroy(res);
    assert_int_equal(palm_runs(rt), 1);
    r = run_video(rt, b, &f->photo, &res);   /* b: its own first frame */
    assert_int_equal(r->n_detections, 2);
    assert_false(r->hands[0].tracked || r->hands[1].tracked);
    shoal_results_destroy(res);
    r = run_video(rt, NULL, &f->photo, &res);   /* no video: every frame alone */
    assert_int_equal(r->n_detections, 2);
    assert_false(r->hands[0].tracked || r->hands[1].tracked);
    shoal_results_destroy(res);
    assert_int_equal(palm_runs(rt), 3);
    r = run_video(rt, a, &f->grey, &res);   /* a loses its hands on a grey frame ... */
    assert_int_equal(r->n_hands, 0);
    assert_int_equal(r->n_landmarks, 0);
    shoal_results_destroy(res);
    r = run_video(rt, b, &f->photo, &res);   /* ... b still tracks its own */
    assert_int_equal(r->n_detections, 0);
    assert_true(r->hands[0].tracked && r->hands[1].tracked);
    shoal_results_destroy(res);
    r = run_video(rt, a, &f->photo, &res);   /* a detects again */
    assert_int_equal(r->n_detections, 2);
    assert_int_equal(r->n_hands, 2);
    compare_legacy(r->hands, r->n_hands);
    shoal_results_destroy(res);
    printf("tracked frame: largest |d| %.2f px vs MediaPipe (20)\n", worst);
    shoal_video_destroy(a);
    shoal_video_destroy(b);
    shoal_runtime_destroy(rt);
}

/* --- the CPU presented as a device with lanes (the concurrent path of a GPU) --------------- */

typedef struct fake {
    sh_backend inner;
    sh_device_i iface;
    sh_lane_i lanes;
    unsigned long async_runs;
    size_t frame_bytes;           /* uploads of this many bytes are counted */
    unsigned long frame_uploads;
} fake;

static fake FAKE;

#define INNER(c) (((fake *)(c))->inner)
static int f_buffer_alloc(void *c, size_t n, void **out, sh_err *err)
{
    return INNER(c).iface->buffer_alloc(INNER(c).ctx, n, out, err);
}
static void f_buffer_free(void *c, void *p) { INNER(c).iface->buffer_free(INNER(c).ctx, p); }
static int f_upload(void *c, void *d, const void *s, size_t n, sh_err *err)
{
    return INNER(c).iface->upload(INNER(c).ctx, d, s, n, err);
}
static int f_download(void *c, void *d, const void *s, size_t n, sh_err *err)
{
    return INNER(c).iface->download(INNER(c).ctx, d, s, n, err);
}
static bool f_supports(void *c, const sh_graph *g, int k) { return INNER(c).iface->supports_node(INNER(c).ctx, g, k); }
static int f_compile(void *c, const sh_graph *g, sh_program **out, sh_err *err)
{
    return INNER(c).iface->compile(INNER(c).ctx, g, out, err);
}
static void f_program_free(void *c, sh_program *p) { INNER(c).iface->program_free(INNER(c).ctx, p); }
static int f_pack(void *c, const sh_program *p, int t, void *dst, sh_err *err)
{
    return INNER(c).iface->pack_weight(INNER(c).ctx, p, t, dst, err);
}
static int f_run(void *c, sh_program *p, void *const *tp, void *const *wp, unsigned long b, sh_err *err)
{
    return INNER(c).iface->run(INNER(c).ctx, p, tp, wp, b, err);
}
static int f_lane_upload(void *c, int lane, void *d, const void *s, size_t n, sh_err *err)
{
    (void)lane;
    ((fake *)c)->frame_uploads += n == ((fake *)c)->frame_bytes;
    return f_upload(c, d, s, n, err);
}
static int f_lane_run(void *c, int lane, sh_program *p, void *const *tp, void *const *wp, unsigned long b, sh_err *err)
{
    (void)lane;
    ((fake *)c)->async_runs++;
    return f_run(c, p, tp, wp, b, err);
}
static int f_lane_download(void *c, int lane, void *d, const void *s, size_t n, sh_err *err)
{
    (void)lane;
    return f_download(c, d, s, n, err);
}
static int f_lane_wait(void *c, int lane, double *busy_ms, sh_err *err)
{
    (void)c, (void)lane, (void)err;
    if (busy_ms)
        *busy_ms = -1;
    return 0;
}
static void f_destroy(void *c) { sh_backend_destroy(&INNER(c)); }

static int wrap_fake(void *user, sh_backend *be, sh_err *err)
{
    (void)err;
    fake *w = user;
    w->inner = *be;
    w->iface = (sh_device_i){
        .name = "fake-device", .alignment = 256,
        .buffer_alloc = f_buffer_alloc, .buffer_free = f_buffer_free, .upload = f_upload, .download = f_download,
        .supports_node = f_supports, .compile = f_compile, .program_free = f_program_free, .pack_weight = f_pack,
        .run = f_run, .destroy = f_destroy,
    };
    w->lanes = (sh_lane_i){.upload = f_lane_upload, .run = f_lane_run, .download = f_lane_download,
                           .wait = f_lane_wait};
    be->iface = &w->iface;
    be->lanes = &w->lanes;
    be->ctx = w;
    return 0;
}

static void test_concurrent_runtime(void **state)
{
    fixture *f = *state;
    char why[512] = "";
    shoal_runtime_t in_turn = open_runtime(0, why, sizeof why);
    if (!in_turn)
        fail_msg("runtime: %s", why);
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = CONFIG;
    p.preload = 0;
    p.concurrent_models = 1;
    p.error = why;
    p.error_cap = sizeof why;
    sh_runtime_internal_params ip = {.wrap_backend = wrap_fake, .wrap_backend_user = &FAKE};
    shoal_runtime_t rt = NULL;
    if (sh_runtime_create_internal(&p, &ip, &rt))
        fail_msg("concurrent runtime: %s", why);
    assert_true(sh_runtime_concurrent(rt));
    shoal_video_t v = shoal_video_create();
    FAKE.frame_bytes = (size_t)f->photo.width * (size_t)f->photo.height * 3;
    for (int frame = 0; frame < 2; frame++) {   /* detected, then tracked */
        shoal_results_t a = NULL, b = NULL;
        FAKE.frame_uploads = 0;
        if (shoal_runtime_run_mode_video(rt, "shopping", &f->photo, v, &a) != SHOAL_OK)
            fail_msg("concurrent shopping: %s", shoal_runtime_last_error(rt));
        unsigned long runs = FAKE.async_runs;
        /* the 8-bit frame crosses once per model: tl, and the hand's stages once for both (the
         * palm detector's upload serves the landmark crops of the detected frame) */
        assert_int_equal(FAKE.frame_uploads, 2u);
        assert_int_equal(shoal_runtime_run_mode(in_turn, "shopping", &f->photo, &b), SHOAL_OK);
        assert_int_equal(shoal_results_count(a), 2);
        assert_true(shoal_results_concurrent(a));   /* the hand ran beside tl, on lanes of its own */
        assert_string_equal(shoal_results_get(a, 0)->model, "tl");
        assert_int_equal(shoal_results_get(a, 0)->n_detections, shoal_results_get(b, 0)->n_detections);
        const shoal_model_result *ra = shoal_results_get(a, 1), *rb = shoal_results_get(b, 1);
        assert_string_equal(ra->model, "hand");
        assert_int_equal(ra->n_hands, 2);
        assert_int_equal(ra->n_detections, frame == 0 ? 2 : 0);
        assert_int_equal(ra->hands[0].tracked, frame == 1);
        compare_legacy(ra->hands, ra->n_hands);
        if (frame == 0)   /* the same frame alone: the same numbers as in turn */
            assert_memory_equal(ra->hands, rb->hands, 2 * sizeof *ra->hands);
        /* every network ran on a lane: tl, the palm detector and two landmark runs; then tl and
         * the two tracked hands */
        assert_int_equal(runs, frame == 0 ? 4u : 7u);
        shoal_results_destroy(a);
        shoal_results_destroy(b);
    }
    shoal_video_destroy(v);
    shoal_runtime_destroy(rt);
    shoal_runtime_destroy(in_turn);
}

int main(void)
{
    hr_require_data();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode_matches_mediapipe),
        cmocka_unit_test(test_budget_counts_both_stages),
        cmocka_unit_test(test_video_state_per_caller),
        cmocka_unit_test(test_concurrent_runtime),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
