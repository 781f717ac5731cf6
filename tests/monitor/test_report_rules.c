/* Each recommendation rule, triggered by a crafted snapshot with the numbers it must quote,
 * and absent when its condition does not hold. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "monitor/report.h"

#define MiB ((int64_t)1 << 20)

/* A calm baseline: GPU, 1 GiB budget, peak at 50%, everything preloaded and pinned, host cache
 * on, no reloads, models in fp16, recently used. No rule fires on it. */
static sh_report_model M[3];
static int NAV[] = {0, 1}, SHOP[] = {2};
static sh_report_mode MODES[2];

static sh_report_snapshot calm(void)
{
    M[0] = (sh_report_model){.name = "blind_road", .resident = true, .pinned = true, .preload = true,
                             .weight_bytes = 100 * MiB, .weight_unique_bytes = 80 * MiB, .plan_bytes = 200 * MiB,
                             .loads = 1, .runs = 10, .last_use_s = 1, .resident_s = 100};
    M[1] = (sh_report_model){.name = "obstacle", .resident = true, .pinned = true, .preload = true,
                             .weight_bytes = 120 * MiB, .weight_unique_bytes = 100 * MiB, .plan_bytes = 250 * MiB,
                             .loads = 1, .runs = 10, .last_use_s = 1, .resident_s = 100};
    M[2] = (sh_report_model){.name = "shopping", .resident = true, .pinned = true, .preload = true,
                             .weight_bytes = 50 * MiB, .weight_unique_bytes = 50 * MiB, .plan_bytes = 100 * MiB,
                             .loads = 1, .runs = 10, .last_use_s = 2, .resident_s = 100};
    MODES[0] = (sh_report_mode){.name = "navigation", .models = NAV, .n_models = 2, .runs = 10, .switches = 5};
    MODES[1] = (sh_report_mode){.name = "shopping", .models = SHOP, .n_models = 1, .runs = 10, .switches = 5};
    return (sh_report_snapshot){.device = "cuda:0", .gpu = true, .tensor_cores = 1,
                                .device_total_bytes = 8192 * MiB, .budget_bytes = 1024 * MiB,
                                .in_use_bytes = 500 * MiB, .peak_bytes = 512 * MiB, .arena_bytes = 250 * MiB,
                                .all_models_bytes = 1100 * MiB, /* more than the budget: no preload_all */
                                .host_cache_on = true, .idle_unload_s = 300,
                                .models = M, .n_models = 3, .modes = MODES, .n_modes = 2};
}

static sh_recommendation R[SH_REPORT_MAX_RECS];

static int run(const sh_report_snapshot *s)
{
    return sh_report_recommend(s, NULL, R, SH_REPORT_MAX_RECS);
}

/* The recommendation with this id (and subject, when given), or NULL. */
static const sh_recommendation *find(int n, const char *id, const char *subject)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(R[i].id, id) && (!subject || !strcmp(R[i].subject, subject)))
            return &R[i];
    return NULL;
}

static double evid(const sh_recommendation *r, const char *key)
{
    double v = NAN;
    if (!sh_rec_evidence_get(r, key, &v))
        fail_msg("%s: no evidence '%s'", r->id, key);
    return v;
}

static void test_calm_is_silent(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    int n = run(&s);
    for (int i = 0; i < n; i++)
        print_message("unexpected: %s %s\n", R[i].id, R[i].message);
    assert_int_equal(n, 0);
}

static void test_preload_all(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    M[2].preload = false;                /* one model on demand ... */
    s.all_models_bytes = 900 * MiB;      /* ... and everything fits */
    int n = run(&s);
    const sh_recommendation *r = find(n, "preload_all", NULL);
    assert_non_null(r);
    assert_true(evid(r, "all_models_bytes") == 900.0 * MiB);
    assert_true(evid(r, "budget_bytes") == 1024.0 * MiB);
    assert_true(evid(r, "spare_bytes") == 124.0 * MiB);
    assert_true(evid(r, "on_demand_models") == 1);
    assert_non_null(strstr(r->message, "900.0 MiB"));
    /* absent: too big for the budget */
    s.all_models_bytes = 1025 * MiB;
    assert_null(find(run(&s), "preload_all", NULL));
    /* absent: nothing loads on demand */
    s.all_models_bytes = 900 * MiB;
    M[2].preload = true;
    assert_null(find(run(&s), "preload_all", NULL));
    /* no budget on a GPU: measured against the device's memory */
    M[2].preload = false;
    s.budget_bytes = 0;
    r = find(run(&s), "preload_all", NULL);
    assert_non_null(r);
    assert_true(evid(r, "budget_bytes") == 8192.0 * MiB);
}

static void test_mode_switch_reload(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    MODES[1].switches = 6;
    MODES[1].reloading_switches = 5;
    MODES[1].switch_reload_bytes = 5 * 50 * MiB;
    M[2].pinned = false;
    int n = run(&s);
    const sh_recommendation *r = find(n, "mode_switch_reload", "shopping");
    assert_non_null(r);
    assert_int_equal(r->severity, SH_REC_WARNING);
    assert_true(evid(r, "reload_bytes_per_switch") == 50.0 * MiB);
    assert_true(evid(r, "raise_budget_by_bytes") == 50.0 * MiB);
    assert_true(evid(r, "reloading_switches") == 5);
    assert_true(evid(r, "switches") == 6);
    assert_non_null(strstr(r->message, "50.0 MiB"));
    assert_non_null(strstr(r->message, "shopping: `pinned: true`"));
    assert_null(find(n, "mode_switch_reload", "navigation"));
    /* one reload is a cold start, not a pattern */
    MODES[1].reloading_switches = 1;
    MODES[1].switch_reload_bytes = 50 * MiB;
    assert_null(find(run(&s), "mode_switch_reload", NULL));
    /* switches that reload nothing */
    MODES[1].reloading_switches = 0;
    MODES[1].switch_reload_bytes = 0;
    assert_null(find(run(&s), "mode_switch_reload", NULL));
}

static void test_fp16(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    M[1].fp32 = true;
    int n = run(&s);
    const sh_recommendation *r = find(n, "fp16", "obstacle");
    assert_non_null(r);
    assert_int_equal(r->severity, SH_REC_WARNING);
    assert_true(evid(r, "weight_bytes") == 120.0 * MiB);
    assert_true(evid(r, "estimated_saving_bytes") == 185.0 * MiB);   /* (120 + 250) / 2 */
    /* the advice must be one the config can follow: no key makes a backend compute in fp16
     * (sh_config_check_precision), running on the CUDA backend does */
    assert_non_null(strstr(r->message, "inference.device: cuda"));
    assert_null(strstr(r->message, "inference.fp16: true"));
    assert_null(find(n, "fp16", "blind_road"));
    /* unknown tensor cores: still said, as info */
    s.tensor_cores = -1;
    r = find(run(&s), "fp16", "obstacle");
    assert_non_null(r);
    assert_int_equal(r->severity, SH_REC_INFO);
    /* absent: a GPU without tensor cores, and the CPU */
    s.tensor_cores = 0;
    assert_null(find(run(&s), "fp16", NULL));
    s.tensor_cores = -1;
    s.gpu = false;
    assert_null(find(run(&s), "fp16", NULL));
}

static void test_tier(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    s.tier = "mid";
    s.tier_max_memory = 12288 * MiB;
    int n = run(&s);
    const sh_recommendation *r = find(n, "tier", NULL);
    assert_non_null(r);
    assert_int_equal(r->severity, SH_REC_INFO);
    assert_true(evid(r, "headroom_bytes") == 512.0 * MiB);
    assert_true(fabs(evid(r, "headroom_percent") - 50.0) < 1e-9);
    assert_true(evid(r, "tier_max_memory_bytes") == 12288.0 * MiB);
    assert_non_null(strstr(r->message, "'mid'"));
    /* little headroom: a warning (peak 95% -> 5% < 10%) */
    s.peak_bytes = 1024 * MiB * 95 / 100;
    r = find(run(&s), "tier", NULL);
    assert_non_null(r);
    assert_int_equal(r->severity, SH_REC_WARNING);
    /* absent when no tier was applied */
    s.tier = NULL;
    assert_null(find(run(&s), "tier", NULL));
}

static void test_idle_model(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    M[2].pinned = false;
    M[2].last_use_s = 3 * 3600;
    s.idle_unload_s = 0;
    int n = run(&s);
    const sh_recommendation *r = find(n, "idle_model", "shopping");
    assert_non_null(r);
    assert_true(evid(r, "idle_s") == 3 * 3600.0);
    assert_true(evid(r, "weight_unique_bytes") == 50.0 * MiB);
    assert_non_null(strstr(r->message, "3.0 h"));
    assert_non_null(strstr(r->message, "idle_unload_s"));
    /* a never-run model resident for hours counts from its load */
    M[2].last_use_s = -1;
    M[2].resident_s = 2 * 3600;
    assert_non_null(find(run(&s), "idle_model", "shopping"));
    /* absent: pinned, not resident, or recently used */
    M[2].pinned = true;
    assert_null(find(run(&s), "idle_model", NULL));
    M[2].pinned = false;
    M[2].resident = false;
    assert_null(find(run(&s), "idle_model", NULL));
    M[2].resident = true;
    M[2].last_use_s = 59 * 60;
    assert_null(find(run(&s), "idle_model", NULL));
}

static void test_usage_levels(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    struct {
        int64_t peak;
        const char *id;
        sh_rec_severity sev;
    } cases[] = {
        {1000 * MiB, "usage_critical", SH_REC_CRITICAL},   /* 97.7% */
        {800 * MiB, "usage_warning", SH_REC_WARNING},      /* 78.1% */
        {200 * MiB, "usage_low", SH_REC_INFO},             /* 19.5% */
        {512 * MiB, NULL, SH_REC_INFO},                    /* 50%: nothing */
        {716 * MiB, NULL, SH_REC_INFO},                    /* 69.9%: not above 70 */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        s.peak_bytes = cases[c].peak;
        int n = run(&s);
        int found = 0;
        for (int i = 0; i < n; i++)
            found += !strncmp(R[i].id, "usage_", 6);
        if (!cases[c].id) {
            assert_int_equal(found, 0);
            continue;
        }
        assert_int_equal(found, 1);
        const sh_recommendation *r = find(n, cases[c].id, "cuda:0");
        assert_non_null(r);
        assert_int_equal(r->severity, cases[c].sev);
        assert_true(fabs(evid(r, "usage_percent") - 100.0 * (double)cases[c].peak / (1024.0 * MiB)) < 1e-9);
        /* per model: each resident model's bytes, largest named first in the message */
        assert_true(evid(r, "model_bytes.obstacle") == 120.0 * MiB);
        assert_true(evid(r, "model_bytes.blind_road") == 100.0 * MiB);
        assert_true(evid(r, "model_bytes.shopping") == 50.0 * MiB);
        const char *o = strstr(r->message, "obstacle"), *b = strstr(r->message, "blind_road");
        assert_true(o && b && o < b);
    }
    /* most severe first */
    s.peak_bytes = 1000 * MiB;
    M[1].fp32 = true;
    int n = run(&s);
    assert_true(n >= 2);
    assert_string_equal(R[0].id, "usage_critical");
    /* no limit known (CPU, no budget): no usage level */
    s.gpu = false;
    s.budget_bytes = 0;
    n = run(&s);
    for (int i = 0; i < n; i++)
        assert_true(strncmp(R[i].id, "usage_", 6) != 0);
}

static void test_host_cache_off(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    s.host_cache_on = false;
    assert_null(find(run(&s), "host_cache_off", NULL));   /* no swaps: nothing to say */
    M[2].loads = 4;
    M[2].evictions = 3;
    M[2].reload_bytes = 3 * 50 * MiB;
    M[2].swap_in_ms_total = 120;
    int n = run(&s);
    const sh_recommendation *r = find(n, "host_cache_off", NULL);
    assert_non_null(r);
    assert_true(evid(r, "reloads") == 3);
    assert_true(evid(r, "reload_bytes") == 150.0 * MiB);
    assert_true(evid(r, "host_cache_needed_bytes") == 50.0 * MiB);
    assert_true(evid(r, "swap_in_ms_total") == 120);
    /* absent with the cache on */
    s.host_cache_on = true;
    assert_null(find(run(&s), "host_cache_off", NULL));
}

static void test_cap_and_json(void **state)
{
    (void)state;
    sh_report_snapshot s = calm();
    M[0].fp32 = M[1].fp32 = M[2].fp32 = true;
    s.peak_bytes = 1000 * MiB;
    sh_recommendation two[2];
    assert_int_equal(sh_report_recommend(&s, NULL, two, 2), 2);   /* never past cap */
    int n = run(&s);
    assert_int_equal(n, 4);
    cJSON *arr = sh_report_recs_json(R, n);
    assert_non_null(arr);
    assert_int_equal(cJSON_GetArraySize(arr), n);
    cJSON *first = cJSON_GetArrayItem(arr, 0);
    assert_string_equal(cJSON_GetObjectItem(first, "id")->valuestring, "usage_critical");
    assert_string_equal(cJSON_GetObjectItem(first, "severity")->valuestring, "critical");
    cJSON *ev = cJSON_GetObjectItem(first, "evidence");
    assert_true(cJSON_IsObject(ev));
    assert_true(cJSON_GetObjectItem(ev, "peak_bytes")->valuedouble == 1000.0 * MiB);
    cJSON_Delete(arr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_calm_is_silent), cmocka_unit_test(test_preload_all),
        cmocka_unit_test(test_mode_switch_reload), cmocka_unit_test(test_fp16),
        cmocka_unit_test(test_tier), cmocka_unit_test(test_idle_model),
        cmocka_unit_test(test_usage_levels), cmocka_unit_test(test_host_cache_off),
        cmocka_unit_test(test_cap_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
