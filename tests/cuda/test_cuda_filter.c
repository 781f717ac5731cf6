/* Device-side score filtering on the GPU (backend.h download_filtered, cuda/decode.cu).
 *
 * The kernel against the plain-C reference (tests/vision/yolo_compact_ref.h) on random device
 * tensors (fresh each run; SHOAL_TEST_SEED=n repeats one) of the real heads' shapes and odd
 * ones, with the threshold test's edge cases and thresholds at a denormal, at 0 over signed
 * zeros, and below 0 (the kernel is built with --use_fast_math, whose float compares flush
 * denormals; it compares bits instead): synchronous and on lanes, with room for every
 * survivor and for fewer (the count still exact, the rows written a subset of the
 * reference's), device buffer and host copy poisoned first. Decoding what came back gives the
 * whole output's detections bit for bit, masks included.
 *
 * Then the runtime (configs/aiglasses.yaml over the generated models, as test_cuda_runtime):
 * with the filter (default) and without it (SHOAL_CUDA_NO_DEVICE_FILTER=1), in turn and with
 * a mode's models at once, and with a compact block of 8 rows that overflows, every mode and
 * model gives the same results bit for bit, host staging poisoned before each run.
 *
 * Exits 77 without a CUDA device; the runtime part is skipped without the config or models. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "rt_util.h"
#include "runtime/introspect.h"
#include "runtime/runtime-impl.h"
#include "yolo_compact_ref.h"

static sh_backend B;
static ref_rng RNG;

/* --- the kernel ------------------------------------------------------------------------ */

typedef struct filter_case {
    const char *what;
    int nc, nm, n;
    float threshold;
    int rows;
    int tiny;            /* class scores drawn from around the threshold's denormal neighbours */
} filter_case;

static const filter_case CASES[] = {
    {"obstacle head (YOLO11l-seg)", 80, 32, 8400, 0.3f, 512, 0},
    {"blind_road head (YOLO11s-seg)", 2, 32, 8400, 0.25f, 512, 0},
    {"traffic_light head", 4, 0, 8400, 0.35f, 512, 0},
    {"shopping head", 40, 0, 8400, 0.3f, 512, 0},
    {"16 rows: overflow", 80, 0, 8400, 0.3f, 16, 0},
    {"no rows: the count alone", 6, 0, 2000, 0.25f, 0, 0},
    {"37 anchors: a partial warp", 3, 0, 37, 0.25f, 37, 0},
    {"one anchor, one class", 1, 0, 1, 0.0f, 1, 0},
    {"denormal threshold", 5, 0, 3000, 1e-40f, 3000, 1},
    {"threshold 0 over signed zeros", 5, 0, 3000, 0.0f, 3000, 1},
    {"negative threshold", 5, 0, 3000, -1e-40f, 3000, 1},
    {"threshold 2: only the exact tie passes", 6, 0, 2000, 2.0f, 64, 0},
};

/* Scores that a flushing compare would misjudge against a tiny threshold. */
static void tiny_scores(ref_head *h)
{
    const float v[] = {0.0f, -0.0f, 1e-40f, 5e-41f, 2e-40f, -1e-40f, -2e-40f, 1.2e-38f, 1.4e-45f, NAN};
    for (size_t i = (size_t)4 * h->n; i < (size_t)(4 + h->nc) * h->n; i++)
        h->out[i] = v[ref_u32(&RNG) % (sizeof v / sizeof v[0])];
}

static void *dev_alloc(size_t bytes)
{
    void *p = NULL;
    sh_err err = {0};
    if (B.iface->buffer_alloc(B.ctx, bytes, &p, &err))
        fail_msg("buffer_alloc: %s", err.msg);
    return p;
}

static void dev_put(void *dst, const void *src, size_t bytes)
{
    sh_err err = {0};
    if (B.iface->upload(B.ctx, dst, src, bytes, &err))
        fail_msg("upload: %s", err.msg);
}

static void *pinned(size_t bytes)
{
    void *p = NULL;
    sh_err err = {0};
    if (B.iface->host_alloc(B.ctx, bytes, &p, &err))
        fail_msg("host_alloc: %s", err.msg);
    return p;
}

static int32_t word(const void *buf, size_t i)
{
    int32_t v;
    memcpy(&v, (const char *)buf + 4 * i, 4);
    return v;
}

/* The device's buffer against the reference's (every survivor, ascending): the same header
 * but for its rows, and each row it wrote is the reference's row of that anchor, once. */
static void same_survivors(const filter_case *fc, const ref_head *h, const void *got, const void *want, size_t count)
{
    for (int w = 0; w < 8; w++) {
        int32_t expect = w == SH_YOLO_COMPACT_ROWS ? fc->rows : word(want, (size_t)w);
        if (word(got, (size_t)w) != expect)
            fail_msg("%s: header word %d is %d, expected %d", fc->what, w, word(got, (size_t)w), expect);
    }
    size_t row = (size_t)(1 + h->channels), held = count < (size_t)fc->rows ? count : (size_t)fc->rows;
    int *pos = malloc((size_t)h->n * sizeof *pos);
    assert_non_null(pos);
    for (int j = 0; j < h->n; j++)
        pos[j] = -1;
    for (size_t i = 0; i < count; i++)
        pos[word(want, 8 + i * row)] = (int)i;
    for (size_t i = 0; i < held; i++) {
        int32_t j = word(got, 8 + i * row);
        if (j < 0 || j >= h->n || pos[j] < 0)
            fail_msg("%s: row %zu names anchor %d, which the reference does not keep", fc->what, i, j);
        if (memcmp((const char *)got + 4 * (8 + i * row), (const char *)want + 4 * (8 + (size_t)pos[j] * row), 4 * row))
            fail_msg("%s: row %zu (anchor %d) differs from the reference's", fc->what, i, j);
        pos[j] = -1;   /* a second row for it fails the test above */
    }
    free(pos);
}

/* Decoding the device's buffer gives the whole output's detections. */
static void same_decode(const filter_case *fc, const ref_head *h, const void *got, size_t bytes)
{
    const int side = 640, hw = 160;
    sh_preprocess_params pp = sh_preprocess_default_params(side, side);
    sh_transform xf;
    assert_int_equal(sh_transform_compute(1280, 720, &pp, &xf, NULL), 0);
    sh_decode_params p = sh_decode_default_params();
    p.score_threshold = h->threshold;
    float *protos = NULL;
    if (h->nm) {
        protos = malloc((size_t)h->nm * hw * hw * sizeof(float));
        assert_non_null(protos);
        for (size_t i = 0; i < (size_t)h->nm * hw * hw; i++)
            protos[i] = ref_uniform(&RNG, -2, 2);
    }
    sh_ftensor full = {h->out, 3, {1, h->channels, h->n}}, pr = {protos, 4, {1, h->nm, hw, hw}};
    sh_yolo_compact c = {got, bytes};
    sh_detections *a = sh_detections_create(NULL), *b = sh_detections_create(NULL);
    sh_err err = {0};
    int ra = h->nm ? sh_decode_yolov8_seg(&full, &pr, &xf, &p, a, &err) : sh_decode_yolov8(&full, &xf, &p, a, &err);
    int rb = ra ? ra : h->nm ? sh_decode_yolov8_seg_compact(&c, &pr, &xf, &p, b, &err)
                             : sh_decode_yolov8_compact(&c, &xf, &p, b, &err);
    char why[256];
    if (ra || rb)
        fail_msg("%s: decode: %s", fc->what, err.msg);
    if (!ref_same_detections(a, b, why, sizeof why))
        fail_msg("%s: %s", fc->what, why);
    print_message("  %-32s decodes as the whole output (%zu detections)\n", fc->what, a->count);
    sh_detections_destroy(a);
    sh_detections_destroy(b);
    free(protos);
}

/* lane < 0: the synchronous call; else on the lane, then its wait. */
static void filter_on(int lane, const sh_yolo_filter *f, const void *src, void *scratch, void *dst)
{
    sh_err err = {0};
    int rc = B.iface->download_filtered(B.ctx, lane, f, src, scratch, dst, &err);
    if (rc == 0 && lane >= 0)
        rc = B.iface->lane_wait(B.ctx, lane, NULL, &err);
    if (rc)
        fail_msg("download_filtered on lane %d: %s", lane, err.msg);
}

static void kernel_case(const filter_case *fc)
{
    ref_head h = ref_make_head(&RNG, fc->nc, fc->nm, fc->n, 640, fc->threshold);
    assert_non_null(h.out);
    if (fc->tiny)
        tiny_scores(&h);
    size_t out_bytes = (size_t)h.channels * h.n * sizeof(float);
    size_t count = ref_yolo_compact(h.out, h.channels, h.n, h.nc, h.threshold, 0, NULL, (int32_t[8]){0});
    void *want = malloc(sh_yolo_compact_bytes(h.channels, (int64_t)count));
    assert_non_null(want);
    ref_yolo_compact(h.out, h.channels, h.n, h.nc, h.threshold, (int)count, NULL, want);
    size_t bytes = sh_yolo_compact_bytes(h.channels, fc->rows);
    void *src = dev_alloc(out_bytes), *scratch = dev_alloc(bytes), *dst = pinned(bytes), *poison = malloc(bytes);
    assert_non_null(poison);
    memset(poison, 0xff, bytes);
    dev_put(src, h.out, out_bytes);
    sh_yolo_filter f = {.channels = h.channels, .anchors = h.n, .n_classes = h.nc, .rows = fc->rows,
                        .threshold = h.threshold};
    const int lanes[] = {-1, 0, 2};
    for (int l = 0; l < 3; l++) {
        dev_put(scratch, poison, bytes);
        memset(dst, 0xff, bytes);
        filter_on(lanes[l], &f, src, scratch, dst);
        same_survivors(fc, &h, dst, want, count);
    }
    print_message("  %-32s %zu of %d anchors pass, room for %d\n", fc->what, count, h.n, fc->rows);
    if (count <= (size_t)fc->rows)
        same_decode(fc, &h, dst, bytes);
    B.iface->buffer_free(B.ctx, src);
    B.iface->buffer_free(B.ctx, scratch);
    B.iface->host_free(B.ctx, dst);
    free(poison);
    free(want);
    free(h.out);
}

static void kernel_matches_reference(void **state)
{
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++)
        kernel_case(&CASES[i]);
}

/* Arguments the kernel cannot take come back as statuses. */
static void bad_filters_are_statuses(void **state)
{
    void *src = dev_alloc(4096), *scratch = dev_alloc(4096), *dst = pinned(4096);
    const sh_yolo_filter bad[] = {
        {.channels = 4, .anchors = 10, .n_classes = 1, .rows = 1, .threshold = 0.5f},
        {.channels = 8, .anchors = 0, .n_classes = 1, .rows = 1, .threshold = 0.5f},
        {.channels = 8, .anchors = 10, .n_classes = 5, .rows = 1, .threshold = 0.5f},
        {.channels = 8, .anchors = 10, .n_classes = 2, .rows = -1, .threshold = 0.5f},
        {.channels = 8, .anchors = 10, .n_classes = 2, .rows = 1, .threshold = NAN},
        {.channels = 65536, .anchors = 65536, .n_classes = 2, .rows = 1, .threshold = 0.5f},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sh_err err = {0};
        int rc = B.iface->download_filtered(B.ctx, -1, &bad[i], src, scratch, dst, &err);
        assert_int_equal(rc, SHOAL_ERR_INVALID_ARG);
        assert_non_null(strstr(err.msg, "device filter"));
    }
    sh_err err = {0};
    const sh_yolo_filter ok = {.channels = 8, .anchors = 10, .n_classes = 2, .rows = 1, .threshold = 0.5f};
    assert_int_equal(B.iface->download_filtered(B.ctx, SH_MAX_LANES, &ok, src, scratch, dst, &err),
                     SHOAL_ERR_INVALID_ARG);
    assert_int_equal(B.iface->download_filtered(B.ctx, -1, &ok, NULL, scratch, dst, &err), SHOAL_ERR_INVALID_ARG);
    B.iface->buffer_free(B.ctx, src);
    B.iface->buffer_free(B.ctx, scratch);
    B.iface->host_free(B.ctx, dst);
}

/* --- the runtime ----------------------------------------------------------------------- */

static char CONFIG[4096];
static bool HAVE_MODELS;

/* The config and models as test_cuda_runtime finds them (model paths relative to the folder
 * above models/, which becomes the working directory). */
static void find_models(void)
{
    const char *models = getenv("SHOAL_MODELS") ? getenv("SHOAL_MODELS") : SHOAL_MODELS_DIR;
    char path[4096], root[4096];
    snprintf(path, sizeof path, "%s", getenv("SHOAL_CONFIG") ? getenv("SHOAL_CONFIG")
                                                               : SHOAL_SOURCE_DIR "/configs/aiglasses.yaml");
    if (!realpath(path, CONFIG) || access(CONFIG, R_OK))
        return;
    snprintf(path, sizeof path, "%s/obstacle.onnx", models);
    if (access(path, R_OK) || !realpath(models, root) || chdir(dirname(root)))
        return;
    HAVE_MODELS = true;
}

static shoal_runtime_t make(bool filter, int concurrent, int rows)
{
    char msg[512] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_path = CONFIG;
    p.device = "cuda";
    p.concurrent_models = concurrent;
    p.error = msg;
    p.error_cap = sizeof msg;
    sh_runtime_internal_params ip = {.device_filter_rows = rows};
    p.tuning.no_device_filter = !filter;
    shoal_runtime_t rt = NULL;
    int rc = sh_runtime_create_internal(&p, &ip, &rt);
    if (rc)
        fail_msg("runtime (filter %d, concurrent %d, rows %d): %s", filter, concurrent, rows, msg);
    return rt;
}

/* Mode k (k < modes) or model k - modes, host staging poisoned first; its signature. */
static char *run_poisoned(shoal_runtime_t rt, int k, const shoal_image *frame)
{
    for (int c = 0; c < rt->n_contexts; c++)
        memset(rt->contexts[c].output_host, 0xff, rt->max_output_bytes);
    int modes = shoal_runtime_mode_count(rt);
    const char *name = k < modes ? shoal_runtime_mode_name(rt, k) : shoal_runtime_model_name(rt, k - modes);
    shoal_results_t res = NULL;
    int rc = k < modes ? shoal_runtime_run_mode(rt, name, frame, &res) : shoal_runtime_run_model(rt, name, frame, &res);
    if (rc)
        fail_msg("%s: %s", name, shoal_runtime_last_error(rt));
    char *sig = rt_results_signature(res);
    assert_non_null(sig);
    shoal_results_destroy(res);
    return sig;
}

static int filtered_models(shoal_runtime_t rt)
{
    int n = 0;
    for (int i = 0; i < rt->n_models; i++)
        n += rt->models[i].filtered;
    return n;
}

static void runtime_results_unchanged(void **state)
{
    if (!HAVE_MODELS) {
        print_message("  no config or generated models (make models): runtime part skipped\n");
        skip();
    }
    shoal_image frame = rt_test_frame(1280, 720);
    for (int concurrent = -1; concurrent <= 1; concurrent += 2) {
        shoal_runtime_t whole = make(false, concurrent, 0), on = make(true, concurrent, 0),
                        small = make(true, concurrent, 8);
        assert_int_equal(filtered_models(whole), 0);
        assert_true(filtered_models(on) >= 4);   /* the YOLO detect and seg models */
        assert_true(filtered_models(small) >= 4);
        assert_true(sh_runtime_concurrent(on) == (concurrent > 0));
        int n = shoal_runtime_mode_count(on) + shoal_runtime_model_count(on);
        for (int k = 0; k < n; k++) {
            char *want = run_poisoned(whole, k, &frame);
            for (int r = 0; r < 2; r++) {   /* the second run replays the captured graphs */
                char *a = run_poisoned(on, k, &frame), *b = run_poisoned(small, k, &frame);
                if (strcmp(a, want))
                    fail_msg("run %d of %d with the device filter differs:\n%s\nwithout:\n%s", r, k, a, want);
                if (strcmp(b, want))
                    fail_msg("run %d of %d with an overflowing filter differs:\n%s\nwithout:\n%s", r, k, b, want);
                free(a);
                free(b);
            }
            free(want);
        }
        print_message("  %s: %d modes and models alike with the filter, without it, and overflowing\n",
                      concurrent > 0 ? "at once" : "in turn", n);
        shoal_runtime_destroy(whole);
        shoal_runtime_destroy(on);
        shoal_runtime_destroy(small);
    }
    shoal_image_free(&frame);
}

int main(void)
{
    sh_backend_params bp = {.device = 0, .cuda_graphs = true};
    int rc = hx_cuda_or_skip(&B, &bp);
    if (rc)
        return rc;
    RNG = ref_rng_from(ref_fresh_seed());
    find_models();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernel_matches_reference),
        cmocka_unit_test(bad_filters_are_statuses),
        cmocka_unit_test(runtime_results_unchanged),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sh_backend_destroy(&B);
    return rc;
}
