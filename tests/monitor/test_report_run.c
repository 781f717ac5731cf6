/* The memory report of a real mode-cycling run (yolox_nano and face_slim320 from
 * ../shared/real-models, skipped when absent): per-model attribution adds up to the device
 * totals, mode switches and their reload bytes are counted exactly, the recommendations that
 * the run calls for are there with its numbers and the others are not, and the runtime's
 * Prometheus text passes the format-rule reader (and promtool when installed). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "prom_reader.h"
#include "shoal.h"

#define MODELS SHOAL_SHARED_DIR "/real-models"

static char YAML[2048];
static shoal_image FRAME;

static void make_yaml(const char *extra_models, const char *street, const char *memory)
{
    snprintf(YAML, sizeof YAML,
             "models:\n"
             "  det:\n"
             "    path: " MODELS "/yolox_nano/model.onnx\n"
             "    task: yolox\n"
             "    input_size: 416\n"
             "    preload: true\n"
             "  face:\n"
             "    path: " MODELS "/face_slim320_simplified/model.onnx\n"
             "    task: classify\n"
             "    decoder: none\n"
             "    input_size: [320, 240]\n"
             "%s"
             "modes:\n"
             "  street: %s\n"
             "  faces: [face]\n"
             "memory:\n"
             "%s"
             "inference:\n"
             "  device: cpu\n"
             "  threads: 2\n",
             extra_models, street, memory);
}

static shoal_runtime_t create(int64_t budget)
{
    char error[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = YAML;
    p.budget_bytes = budget;
    p.error = error;
    p.error_cap = sizeof error;
    shoal_runtime_t rt = NULL;
    if (shoal_runtime_create(&p, &rt) != SHOAL_OK)
        fail_msg("create: %s", error);
    return rt;
}

static void cycle(shoal_runtime_t rt, int cycles)
{
    for (int c = 0; c < cycles; c++)
        for (int k = 0; k < shoal_runtime_mode_count(rt); k++) {
            shoal_results_t res = NULL;
            if (shoal_runtime_run_mode(rt, shoal_runtime_mode_name(rt, k), &FRAME, &res) != SHOAL_OK)
                fail_msg("mode %s: %s", shoal_runtime_mode_name(rt, k), shoal_runtime_last_error(rt));
            shoal_results_destroy(res);
        }
}

static const shoal_model_stats *model(const shoal_stats *st, const char *name)
{
    for (int i = 0; i < st->n_models; i++)
        if (!strcmp(st->models[i].name, name))
            return &st->models[i];
    fail_msg("no model %s", name);
    return NULL;
}

static const shoal_mode_stats *mode(const shoal_stats *st, const char *name)
{
    for (int i = 0; i < st->n_modes; i++)
        if (!strcmp(st->modes[i].name, name))
            return &st->modes[i];
    fail_msg("no mode %s", name);
    return NULL;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItem(o, key);
    if (!cJSON_IsNumber(v))
        fail_msg("no number '%s'", key);
    return v->valuedouble;
}

static const cJSON *rec(const cJSON *report, const char *id, const char *subject)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(report, "recommendations"))
    {
        if (!strcmp(cJSON_GetObjectItem(r, "id")->valuestring, id) &&
            (!subject || !strcmp(cJSON_GetObjectItem(r, "subject")->valuestring, subject)))
            return r;
    }
    return NULL;
}

/* Attribution that must hold for any report: resident models' weights less what they share
 * are the distinct weights stored; the pool holds them (whole chunks); the device bytes are
 * pool + arenas + staging; per model, loads put its bytes on the device and reloads are the
 * loads after the first. */
static void check_attribution(const shoal_stats *st, const cJSON *report)
{
    const shoal_device_stats *d = &st->devices[0];
    int64_t resident = 0, max_plan = 0;
    for (int i = 0; i < st->n_models; i++) {
        const shoal_model_stats *m = &st->models[i];
        if (m->state == SHOAL_MODEL_RESIDENT)
            resident += m->weight_bytes;
        if (m->plan_bytes > max_plan)
            max_plan = m->plan_bytes;
        assert_int_equal(m->weight_unique_bytes + m->weight_shared_bytes, m->weight_bytes);
        assert_true(m->reload_bytes_total <= m->load_bytes_total);
    }
    assert_int_equal(d->in_use_bytes, d->weights_bytes + d->arena_bytes + d->staging_bytes);
    assert_true(d->weights_stored_bytes <= d->weights_bytes);
    assert_int_equal(d->arena_bytes, max_plan);   /* one context: the largest plan */
    assert_true(d->peak_bytes >= d->in_use_bytes);

    const cJSON *a = cJSON_GetObjectItem(report, "attribution");
    assert_non_null(a);
    assert_true(num(a, "resident_weight_bytes") == (double)resident);
    assert_true(num(a, "resident_weight_bytes") - num(a, "cross_model_shared_bytes") == num(a, "weights_stored_bytes"));
    assert_true(num(a, "resident_weight_union_bytes") == (double)d->weights_stored_bytes);
    assert_true(num(a, "weights_stored_bytes") + num(a, "pool_slack_bytes") == num(a, "weights_pool_bytes"));
    assert_true(num(a, "weights_pool_bytes") + num(a, "arena_bytes") + num(a, "staging_bytes") ==
                num(a, "device_in_use_bytes"));
    const cJSON *dev = cJSON_GetArrayItem(cJSON_GetObjectItem(report, "devices"), 0);
    assert_true(num(dev, "in_use_bytes") == (double)d->in_use_bytes);
    assert_true(num(dev, "peak_bytes") == (double)d->peak_bytes);
    const cJSON *proc = cJSON_GetObjectItem(report, "process");
    assert_non_null(proc);
    assert_true(num(proc, "host_rss_bytes") > 0);
    assert_true(num(proc, "host_rss_bytes") - num(proc, "host_accounted_bytes") == num(proc, "host_gap_bytes"));
}

static cJSON *report(shoal_runtime_t rt)
{
    char *text = shoal_runtime_report_json(rt);
    assert_non_null(text);
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    shoal_free_string(text);
    return j;
}

/* A budget that holds one mode's model at a time, host cache off: every switch after the
 * first pair reloads the other model. */
static void test_tight_budget_swaps(void **state)
{
    (void)state;
    make_yaml("", "[det]", "  host_cache: false\n");
    shoal_runtime_t probe = create(0);
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(probe, &st), SHOAL_OK);
    int64_t det_w = model(&st, "det")->weight_bytes, face_w = model(&st, "face")->weight_bytes;
    int64_t arena = st.devices[0].arena_bytes;
    shoal_stats_free(&st);
    shoal_runtime_destroy(probe);

    /* room for the arena and the larger model, not both models */
    int64_t budget = arena + det_w + face_w / 2;
    shoal_runtime_t rt = create(budget);
    cycle(rt, 3);   /* street, faces, street, faces, street, faces */
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    const shoal_model_stats *det = model(&st, "det"), *face = model(&st, "face");
    assert_int_equal(det->loads, 3);
    assert_int_equal(face->loads, 3);
    assert_int_equal(det->load_bytes_total, 3 * det_w);
    assert_int_equal(det->reload_bytes_total, 2 * det_w);
    assert_int_equal(face->reload_bytes_total, 2 * face_w);
    const shoal_mode_stats *street = mode(&st, "street"), *faces = mode(&st, "faces");
    assert_int_equal(street->runs, 3);
    assert_int_equal(street->switches, 2);
    assert_int_equal(street->reloading_switches, 2);
    assert_int_equal(street->switch_reload_bytes, 2 * det_w);
    assert_int_equal(faces->switches, 3);
    assert_int_equal(faces->reloading_switches, 2);   /* its first load was cold */
    assert_int_equal(faces->switch_reload_bytes, 2 * face_w);
    assert_true(st.devices[0].in_use_bytes <= budget);

    cJSON *j = report(rt);
    check_attribution(&st, j);
    const cJSON *r = rec(j, "mode_switch_reload", "street");
    assert_non_null(r);
    const cJSON *ev = cJSON_GetObjectItem(r, "evidence");
    assert_true(num(ev, "reload_bytes_per_switch") == (double)det_w);
    assert_true(num(ev, "reloading_switches") == 2);
    assert_non_null(rec(j, "mode_switch_reload", "faces"));
    r = rec(j, "host_cache_off", NULL);
    assert_non_null(r);
    assert_true(num(cJSON_GetObjectItem(r, "evidence"), "reload_bytes") == (double)(2 * det_w + 2 * face_w));
    assert_null(rec(j, "preload_all", NULL));   /* they do not fit together */
    assert_null(rec(j, "fp16", NULL));          /* CPU */
    assert_null(rec(j, "idle_model", NULL));
    r = rec(j, "usage_critical", "cpu");        /* the peak is > 90% of this budget */
    assert_non_null(r);
    assert_true(num(cJSON_GetObjectItem(r, "evidence"), "peak_bytes") == (double)st.devices[0].peak_bytes);
    cJSON_Delete(j);
    shoal_stats_free(&st);
    shoal_runtime_destroy(rt);
}

/* No budget, host cache on, two models with identical weights in one mode: no swaps, shared
 * weights stored once, and the budget admits everything while face loads on demand. */
static void test_shared_weights_no_swaps(void **state)
{
    (void)state;
    make_yaml("  det_copy:\n"
              "    path: " MODELS "/yolox_nano/model.onnx\n"
              "    task: yolox\n"
              "    input_size: 416\n",
              "[det, det_copy]", "  host_cache: 64MiB\n");
    shoal_runtime_t rt = create(0);
    cycle(rt, 2);
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    const shoal_model_stats *det = model(&st, "det"), *copy = model(&st, "det_copy"), *face = model(&st, "face");
    assert_int_equal(det->weight_shared_bytes, det->weight_bytes);
    assert_int_equal(copy->load_bytes_total, 0);   /* everything it needs was already there */
    assert_int_equal(st.devices[0].weights_stored_bytes, det->weight_bytes + face->weight_bytes);
    assert_true(st.devices[0].host_cache_bytes > 0);
    for (int k = 0; k < st.n_modes; k++)
        assert_int_equal(st.modes[k].reloading_switches, 0);

    cJSON *j = report(rt);
    check_attribution(&st, j);
    const cJSON *a = cJSON_GetObjectItem(j, "attribution");
    assert_true(num(a, "cross_model_shared_bytes") == (double)det->weight_bytes);
    assert_null(rec(j, "mode_switch_reload", NULL));
    assert_null(rec(j, "host_cache_off", NULL));
    const cJSON *r = rec(j, "preload_all", NULL);
    assert_non_null(r);
    assert_true(num(cJSON_GetObjectItem(r, "evidence"), "on_demand_models") == 2);
    cJSON_Delete(j);
    shoal_stats_free(&st);
    shoal_runtime_destroy(rt);
}

static int promtool_check(const char *text)
{
    const char *path = getenv("PATH");
    char dirs[4096], tool[1100] = "";
    snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
    for (char *d = strtok(dirs, ":"); d && !tool[0]; d = strtok(NULL, ":")) {
        snprintf(tool, sizeof tool, "%s/promtool", d);
        if (access(tool, X_OK) != 0)
            tool[0] = '\0';
    }
    if (!tool[0])
        return -77;
    char file[] = "/tmp/shoal-prom-run-XXXXXX";
    int fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_true(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s' 2>&1", tool, file);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof line, f))
        print_message("promtool: %s", line);
    int st = pclose(f);
    unlink(file);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_prometheus_text(void **state)
{
    (void)state;
    make_yaml("", "[det]", "  host_cache: false\n");
    shoal_runtime_t rt = create(0);
    cycle(rt, 2);
    char *text = shoal_runtime_prometheus(rt);
    assert_non_null(text);
    reader r = {0};
    read_exposition(&r, text);
    assert_true(r.n_buckets_checked > 0);
    assert_non_null(strstr(text, "shoal_model_loads_total{model=\"det\"} 1\n"));
    assert_non_null(strstr(text, "shoal_device_bytes{device=\"cpu\",kind=\"in_use\"}"));
    int rc = promtool_check(text);
    if (rc == -77)
        print_message("promtool not installed: format checked by the reader only\n");
    else
        assert_int_equal(rc, 0);
    shoal_free_string(text);
    shoal_runtime_destroy(rt);
}

int main(void)
{
    if (access(MODELS "/yolox_nano/model.onnx", R_OK) != 0 ||
        access(MODELS "/face_slim320_simplified/model.onnx", R_OK) != 0) {
        fprintf(stderr, "skipped: %s not found\n", MODELS);
        return 77;
    }
    static uint8_t px[480 * 640 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (uint8_t)((i * 2654435761u) >> 24);
    FRAME = shoal_image_wrap(px, 640, 480);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tight_budget_swaps),
        cmocka_unit_test(test_shared_weights_no_swaps),
        cmocka_unit_test(test_prometheus_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
