/* Device-side score filtering through the runtime (runtime/filter.c), without a GPU: a
 * wrapper presents the CPU backend as a device (copies, staging, lanes) whose download_filtered
 * is the plain-C reference filter (tests/vision/yolo_compact_ref.h, survivors appended in
 * reverse anchor order, its buffer poisoned first, the output poisoned after unless the
 * block overflowed). Over the tiny models, in turn and with a
 * mode's models at once, every mode and model must give bit for bit what the CPU runtime gives
 * and what the same device gives downloading whole outputs (SHOAL_CUDA_NO_DEVICE_FILTER=1);
 * likewise when the compact block overflows (the whole output follows) and when nothing passes.
 * The filter buffers are charged to the budget as staging; a failing filter or device
 * allocation is a status, and the runtime keeps serving. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_util.h"
#include "runtime/introspect.h"
#include "runtime/runtime-impl.h"
#include "yolo_compact_ref.h"

#define DATA SHOAL_SOURCE_DIR "/tests/runtime/data/"

/* --- the fake device ----------------------------------------------------------------- */

typedef struct fake {
    sh_backend inner;
    sh_backend_i iface;
    long fail_alloc_after;          /* -1 off; 0 = the next buffer_alloc fails */
    bool fail_filter;               /* the next download_filtered fails */
    unsigned long allocs_failed;
    unsigned long filtered, overflowed, empty;   /* download_filtered calls: all, count > rows, count 0 */
    size_t bytes_down;              /* bytes copied to the host, filtered or not */
} fake;

static fake F;

static fake *as_fake(void *c) { return c; }

static int f_buffer_alloc(void *c, size_t n, void **out, sh_err *err)
{
    fake *w = as_fake(c);
    if (w->fail_alloc_after == 0) {
        w->fail_alloc_after = -1;
        w->allocs_failed++;
        *out = NULL;
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "injected device failure (%zu bytes)", n);
    }
    if (w->fail_alloc_after > 0)
        w->fail_alloc_after--;
    return w->inner.iface->buffer_alloc(w->inner.ctx, n, out, err);
}
static void f_buffer_free(void *c, void *p) { as_fake(c)->inner.iface->buffer_free(as_fake(c)->inner.ctx, p); }
static int f_upload(void *c, void *d, const void *s, size_t n, sh_err *err)
{
    return as_fake(c)->inner.iface->upload(as_fake(c)->inner.ctx, d, s, n, err);
}
static int f_download(void *c, void *d, const void *s, size_t n, sh_err *err)
{
    as_fake(c)->bytes_down += n;
    return as_fake(c)->inner.iface->download(as_fake(c)->inner.ctx, d, s, n, err);
}
static bool f_supports(void *c, const sh_graph *g, int k)
{
    return as_fake(c)->inner.iface->supports_node(as_fake(c)->inner.ctx, g, k);
}
static int f_compile(void *c, const sh_graph *g, sh_program **out, sh_err *err)
{
    return as_fake(c)->inner.iface->compile(as_fake(c)->inner.ctx, g, out, err);
}
static void f_program_free(void *c, sh_program *p) { as_fake(c)->inner.iface->program_free(as_fake(c)->inner.ctx, p); }
static int f_pack(void *c, const sh_program *p, int t, void *dst, sh_err *err)
{
    return as_fake(c)->inner.iface->pack_weight(as_fake(c)->inner.ctx, p, t, dst, err);
}
static int f_run(void *c, sh_program *p, void *const *tp, void *const *wp, unsigned long b, sh_err *err)
{
    return as_fake(c)->inner.iface->run(as_fake(c)->inner.ctx, p, tp, wp, b, err);
}

/* Lanes that do their work at once: the runtime's concurrent path runs unchanged. */
static int f_upload_async(void *c, int lane, void *d, const void *s, size_t n, sh_err *err)
{
    return f_upload(c, d, s, n, err);
}
static int f_run_async(void *c, int lane, sh_program *p, void *const *tp, void *const *wp, unsigned long b, sh_err *err)
{
    return f_run(c, p, tp, wp, b, err);
}
static int f_download_async(void *c, int lane, void *d, const void *s, size_t n, sh_err *err)
{
    return f_download(c, d, s, n, err);
}
static int f_lane_wait(void *c, int lane, double *busy_ms, sh_err *err)
{
    if (busy_ms)
        *busy_ms = -1;
    return 0;
}

static int f_download_filtered(void *c, int lane, const sh_yolo_filter *f, const void *src, void *scratch, void *dst,
                               sh_err *err)
{
    fake *w = as_fake(c);
    if (lane >= SH_MAX_LANES)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "fake device: lane %d", lane);
    if (w->fail_filter) {
        w->fail_filter = false;
        return sh_errf(err, SHOAL_ERR_BACKEND, "injected filter failure");
    }
    size_t bytes = sh_yolo_compact_bytes(f->channels, f->rows);
    int *order = malloc((size_t)f->anchors * sizeof *order);
    if (!bytes || !order) {
        free(order);
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "fake device: filter of [%d, %d]", f->channels, f->anchors);
    }
    for (int i = 0; i < f->anchors; i++)
        order[i] = f->anchors - 1 - i;
    memset(scratch, 0xff, bytes);
    size_t count = ref_yolo_compact(src, f->channels, f->anchors, f->n_classes, f->threshold, f->rows, order, scratch);
    free(order);
    w->filtered++;
    w->overflowed += count > (size_t)f->rows;
    w->empty += count == 0;
    w->bytes_down += bytes;
    memcpy(dst, scratch, bytes);
    /* Nothing but the decoder reads output 0, and it reads the compact buffer unless that
     * overflowed: spoil the output so a result taken from it shows. */
    if (count <= (size_t)f->rows)
        memset((void *)src, 0xff, (size_t)f->channels * (size_t)f->anchors * sizeof(float));
    return 0;
}

static void f_destroy(void *c) { sh_backend_destroy(&as_fake(c)->inner); }

static int wrap_fake(void *user, sh_backend *be, sh_err *err)
{
    fake *w = user;
    w->inner = *be;
    w->iface = (sh_backend_i){
        .name = "fake-device", .kind = SH_BACKEND_CUDA, .alignment = 256,
        .buffer_alloc = f_buffer_alloc, .buffer_free = f_buffer_free, .upload = f_upload, .download = f_download,
        .supports_node = f_supports, .compile = f_compile, .program_free = f_program_free, .pack_weight = f_pack,
        .run = f_run, .upload_async = f_upload_async, .run_async = f_run_async, .download_async = f_download_async,
        .lane_wait = f_lane_wait, .download_filtered = f_download_filtered, .destroy = f_destroy,
    };
    be->iface = &w->iface;
    be->ctx = w;
    return 0;
}

/* --- runtimes over the tiny models ------------------------------------------------------ */

static shoal_image FRAME;
#define N_MODES 3
#define N_MODELS 5
static const char *const MODES[N_MODES] = {"navigation", "crossing", "shopping"};
static const char *const MODELS[N_MODELS] = {"blind_road", "obstacle", "traffic_light", "shopping", "hand"};
static const bool FILTERABLE[N_MODELS] = {true, true, true, true, false};

static char *config(float threshold)
{
    static char buf[2048];
    snprintf(buf, sizeof buf,
             "models:\n"
             "  blind_road: {path: " DATA "blind_road.onnx, task: segment, score_threshold: %g}\n"
             "  obstacle: {path: " DATA "obstacle.onnx, task: segment, score_threshold: %g}\n"
             "  traffic_light: {path: " DATA "traffic_light.onnx, task: detect, score_threshold: %g}\n"
             "  shopping: {path: " DATA "shopping.onnx, task: detect, score_threshold: %g}\n"
             "  hand: {path: " DATA "hand.onnx, task: landmarks}\n"
             "modes:\n"
             "  navigation: [blind_road, obstacle]\n"
             "  crossing: [traffic_light]\n"
             "  shopping: [shopping, hand]\n"
             "inference: {device: cpu, threads: 1}\n",
             (double)threshold, (double)threshold, (double)threshold, (double)threshold);
    return buf;
}

typedef struct setup {
    float threshold;
    int concurrent;       /* shoal_runtime_params.concurrent_models */
    bool device;          /* the fake device; else the plain CPU backend */
    bool filter_off;      /* SHOAL_CUDA_NO_DEVICE_FILTER=1 at create */
    int rows;             /* compact rows (internal param) */
    int contexts;
    sh_allocator *alloc;  /* NULL: the runtime's own */
} setup;

static shoal_runtime_t make(const setup *s, int *status, char *msg, size_t cap)
{
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = config(s->threshold);
    p.concurrent_models = s->concurrent;
    p.contexts = s->contexts;
    p.error = msg;
    p.error_cap = cap;
    sh_runtime_internal_params ip = {.alloc = s->alloc, .device_filter_rows = s->rows};
    if (s->device) {
        ip.wrap_backend = wrap_fake;
        ip.wrap_backend_user = &F;
    }
    p.tuning.no_device_filter = s->filter_off;
    shoal_runtime_t rt = NULL;
    *status = sh_runtime_create_internal(&p, &ip, &rt);
    return rt;
}

static shoal_runtime_t make_ok(const setup *s)
{
    char msg[512] = "";
    int rc;
    shoal_runtime_t rt = make(s, &rc, msg, sizeof msg);
    if (rc)
        fail_msg("create: %s", msg);
    return rt;
}

/* Signature of mode k (k < N_MODES) or model k - N_MODES; `dets` adds its detections. */
static char *run_one(shoal_runtime_t rt, int k, int *dets)
{
    shoal_results_t res = NULL;
    int rc = k < N_MODES ? shoal_runtime_run_mode(rt, MODES[k], &FRAME, &res)
                         : shoal_runtime_run_model(rt, MODELS[k - N_MODES], &FRAME, &res);
    if (rc)
        fail_msg("%s: %s", k < N_MODES ? MODES[k] : MODELS[k - N_MODES], shoal_runtime_last_error(rt));
    for (int i = 0; dets && i < shoal_results_count(res); i++)
        *dets += shoal_results_get(res, i)->n_detections;
    /* this device has lanes but no lanes_span: no device time, in turn or at once */
    assert_true(shoal_results_device_ms(res) == -1);
    char *sig = rt_results_signature(res);
    assert_non_null(sig);
    shoal_results_destroy(res);
    return sig;
}

/* Every mode and model on `rt` gives what the CPU runtime gives (twice: the second run over
 * the staging the first one left). Returns the detections seen. */
static int same_as_cpu(shoal_runtime_t rt, shoal_runtime_t cpu)
{
    int dets = 0;
    for (int k = 0; k < N_MODES + N_MODELS; k++) {
        char *want = run_one(cpu, k, NULL);
        for (int r = 0; r < 2; r++) {
            char *got = run_one(rt, k, &dets);
            if (strcmp(got, want))
                fail_msg("%s differs from the CPU runtime:\n%s\nexpected:\n%s",
                         k < N_MODES ? MODES[k] : MODELS[k - N_MODES], got, want);
            free(got);
        }
        free(want);
    }
    return dets;
}

static void expect_filtered(shoal_runtime_t rt, bool on)
{
    for (int i = 0; i < N_MODELS; i++)
        if (rt->models[i].filtered != (on && FILTERABLE[i]))
            fail_msg("%s: filtered %d, expected %d", MODELS[i], rt->models[i].filtered, on && FILTERABLE[i]);
}

static int64_t staging_bytes(shoal_runtime_t rt)
{
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    int64_t v = st.devices[0].staging_bytes;
    shoal_stats_free(&st);
    return v;
}

/* The filter buffer: in turn, the largest compact buffer; at once, a mode's buffers side by
 * side. Charged as staging, once per context. */
static void expect_accounted(shoal_runtime_t rt, int contexts)
{
    size_t largest = 0;
    for (int i = 0; i < N_MODELS; i++)
        largest = rt->models[i].filter_bytes > largest ? rt->models[i].filter_bytes : largest;
    assert_true(largest > 0);
    if (sh_runtime_concurrent(rt)) {
        const sh_rt_model *a = &rt->models[0], *b = &rt->models[1];   /* navigation runs both at once */
        assert_true(a->filter_off + a->filter_bytes <= b->filter_off ||
                    b->filter_off + b->filter_bytes <= a->filter_off);
        for (int i = 0; i < N_MODELS; i++)
            assert_true(rt->models[i].filter_off + rt->models[i].filter_bytes <= rt->filter_bytes);
    } else {
        assert_int_equal(rt->filter_bytes, largest);
    }
    assert_int_equal(staging_bytes(rt), (int64_t)rt->filter_bytes * contexts);
}

/* Filtered, whole-output and CPU runtimes agree; `rows` decides whether blocks overflow. */
/* Every run released its models: each resident, unpinned model unloads. (A one-model mode on
 * the concurrent path once took a second reference it never gave back, and the model could
 * then never be evicted.) */
static void expect_unloadable(shoal_runtime_t rt)
{
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    for (int i = 0; i < st.n_models; i++)
        if (st.models[i].state == SHOAL_MODEL_RESIDENT && !st.models[i].pinned)
            assert_int_equal(shoal_runtime_unload_model(rt, st.models[i].name), SHOAL_OK);
    shoal_stats_free(&st);
}

static void agree(float threshold, int rows, int concurrent, unsigned long *overflowed, unsigned long *empty,
                  int *dets)
{
    setup cpu_s = {.threshold = threshold};
    setup on_s = {.threshold = threshold, .concurrent = concurrent, .device = true, .rows = rows, .contexts = 2};
    setup off_s = on_s;
    off_s.filter_off = true;
    shoal_runtime_t cpu = make_ok(&cpu_s);
    memset(&F, 0, sizeof F);
    F.fail_alloc_after = -1;
    shoal_runtime_t off = make_ok(&off_s);
    expect_filtered(off, false);
    assert_int_equal(staging_bytes(off), 0);
    same_as_cpu(off, cpu);
    assert_int_equal(F.filtered, 0);
    size_t whole = F.bytes_down;
    shoal_runtime_destroy(off);

    memset(&F, 0, sizeof F);
    F.fail_alloc_after = -1;
    shoal_runtime_t on = make_ok(&on_s);
    assert_int_equal(sh_runtime_concurrent(on), concurrent > 0);
    expect_filtered(on, true);
    expect_accounted(on, 2);
    *dets += same_as_cpu(on, cpu);
    expect_unloadable(on);
    assert_true(F.filtered > 0);
    if (F.overflowed == 0)
        assert_true(F.bytes_down < whole);   /* what the filter is for */
    *overflowed += F.overflowed;
    *empty += F.empty;
    print_message("  threshold %g, %d rows, %s: %lu filtered downloads (%lu overflowed, %lu empty), %zu bytes "
                  "down against %zu whole\n", (double)threshold, rows, concurrent > 0 ? "at once" : "in turn",
                  F.filtered, F.overflowed, F.empty, F.bytes_down, whole);
    shoal_runtime_destroy(on);
    shoal_runtime_destroy(cpu);
}

static void filtered_equals_whole(void **state)
{
    unsigned long overflowed = 0, empty = 0;
    int dets = 0;
    for (int c = -1; c <= 1; c += 2)
        agree(0.55f, 48, c, &overflowed, &empty, &dets);
    assert_true(dets > 0);
    assert_int_equal(overflowed, 0);   /* every result came from compact buffers */
}

static void overflow_downloads_whole(void **state)
{
    unsigned long overflowed = 0, empty = 0;
    int dets = 0;
    for (int c = -1; c <= 1; c += 2)
        agree(0.55f, 2, c, &overflowed, &empty, &dets);
    assert_true(overflowed > 0);
    assert_true(dets > 0);
}

static void nothing_passes(void **state)
{
    unsigned long overflowed = 0, empty = 0;
    int dets = 0;
    for (int c = -1; c <= 1; c += 2)
        agree(1.0f, 48, c, &overflowed, &empty, &dets);
    assert_true(empty > 0);
}

/* A failing filter gives a status naming it; the runtime serves the next call exactly. */
static void filter_failure_is_a_status(void **state)
{
    for (int c = -1; c <= 1; c += 2) {
        setup s = {.threshold = 0.55f, .concurrent = c, .device = true, .rows = 48, .contexts = 1};
        memset(&F, 0, sizeof F);
        F.fail_alloc_after = -1;
        shoal_runtime_t rt = make_ok(&s);
        char *want = run_one(rt, 0, NULL);
        F.fail_filter = true;
        shoal_results_t res = NULL;
        assert_int_equal(shoal_runtime_run_mode(rt, MODES[0], &FRAME, &res), SHOAL_ERR_BACKEND);
        assert_null(res);
        assert_non_null(strstr(shoal_runtime_last_error(rt), "injected filter failure"));
        char *got = run_one(rt, 0, NULL);
        assert_string_equal(got, want);
        free(got);
        free(want);
        shoal_runtime_destroy(rt);
    }
}

/* The Nth device allocation of create fails, every N: the filter buffers' included. */
static void device_alloc_failures(void **state)
{
    long n = 0;
    for (;; n++) {
        sh_allocator *a = sh_allocator_create();
        memset(&F, 0, sizeof F);
        F.fail_alloc_after = n;
        setup s = {.threshold = 0.55f, .concurrent = 1, .device = true, .rows = 48, .contexts = 2, .alloc = a};
        char msg[512] = "";
        int rc;
        shoal_runtime_t rt = make(&s, &rc, msg, sizeof msg);
        F.fail_alloc_after = -1;
        bool reached = F.allocs_failed > 0;
        if (rc) {
            assert_true(reached);
            assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
            assert_non_null(strstr(msg, "injected device failure"));
        } else {
            free(run_one(rt, 0, NULL));
            assert_int_equal(staging_bytes(rt), (int64_t)rt->filter_bytes * 2);
            shoal_runtime_destroy(rt);
        }
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        sh_allocator_destroy(a);
        if (!reached)
            break;
    }
    print_message("  %ld device allocations along create, each failure a status\n", n);
    assert_true(n >= 4);   /* two arenas and two filter buffers at least */
}

static int setup_frame(void **state)
{
    FRAME = rt_test_frame(80, 60);
    return 0;
}

static int teardown_frame(void **state)
{
    shoal_image_free(&FRAME);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filtered_equals_whole),      cmocka_unit_test(overflow_downloads_whole),
        cmocka_unit_test(nothing_passes),             cmocka_unit_test(filter_failure_is_a_status),
        cmocka_unit_test(device_alloc_failures),
    };
    return cmocka_run_group_tests(tests, setup_frame, teardown_frame);
}
