/* Budget errors and the residency API (issue 4): a budget too small for the pinned/preloaded
 * models or the arena is refused with the bytes needed and available; a refused load or
 * budget change leaves the runtime as it was; load/unload/set_budget/prefetch behave as
 * documented; unknown modes and models and bad frames are errors with a message. Runs on the
 * tiny model set of tests/runtime/data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "rt_util.h"
#include "runtime/introspect.h"

static shoal_image FRAME;
/* device bytes: the arena; + blind_road; + traffic_light; what shopping + hand and what obstacle add to that */
static int64_t ARENA, ROAD, PINNED, SHOP_HAND, OBSTACLE;

static shoal_runtime_t make(int64_t budget, int preload, char *err, size_t cap, int *rc)
{
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_path = TINY_CONFIG;
    p.budget_bytes = budget;
    p.preload = preload;
    p.error = err;
    p.error_cap = cap;
    err[0] = '\0';
    shoal_runtime_t rt = NULL;
    *rc = shoal_runtime_create(&p, &rt);
    return rt;
}

typedef struct snapshot {
    int64_t in_use, budget;
    int resident[8];
    uint64_t loads[8], evictions[8];
} snapshot;

static snapshot snap(shoal_runtime_t rt)
{
    snapshot s;
    memset(&s, 0, sizeof s);
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    s.in_use = st.devices[0].in_use_bytes;
    s.budget = st.devices[0].budget_bytes;
    for (int i = 0; i < st.n_models && i < 8; i++) {
        s.resident[i] = st.models[i].state == SHOAL_MODEL_RESIDENT;
        s.loads[i] = st.models[i].loads;
        s.evictions[i] = st.models[i].evictions;
    }
    shoal_stats_free(&st);
    return s;
}

static void assert_same(const snapshot *a, const snapshot *b)
{
    assert_memory_equal(a, b, sizeof *a);
}

static int setup(void **state)
{
    FRAME = rt_test_frame(64, 48);
    char err[512];
    int rc;
    /* Warm-up: the CPU backend's compile gives a smaller arena after the first run in a process
     * (state kept across runtimes; reported), so measure sizes only after one. */
    shoal_runtime_t rt = make(0, 1, err, sizeof err, &rc);
    if (rc)
        return -1;
    shoal_results_t res;
    if (shoal_runtime_run_mode(rt, "crossing", &FRAME, &res) == SHOAL_OK)
        shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
    rt = make(0, 0, err, sizeof err, &rc);
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    ARENA = rt_in_use(rt);
    shoal_runtime_load_model(rt, "blind_road");
    ROAD = rt_in_use(rt);
    shoal_runtime_load_model(rt, "traffic_light");
    PINNED = rt_in_use(rt);
    shoal_runtime_load_model(rt, "shopping");
    shoal_runtime_load_model(rt, "hand");
    SHOP_HAND = rt_in_use(rt) - PINNED;
    shoal_runtime_unload_model(rt, "shopping");
    shoal_runtime_unload_model(rt, "hand");
    shoal_runtime_load_model(rt, "obstacle");
    OBSTACLE = rt_in_use(rt) - PINNED;
    shoal_runtime_destroy(rt);
    /* the tiny set is sized so that obstacle alone outweighs shopping + hand */
    return ARENA > 0 && ROAD > ARENA && PINNED > ROAD && SHOP_HAND > 0 && OBSTACLE > SHOP_HAND ? 0 : -1;
}

static int teardown(void **state)
{
    shoal_image_free(&FRAME);
    return 0;
}

static void test_budget_too_small_for_pinned(void **state)
{
    char err[512];
    int rc;
    /* blind_road is preloaded first and fits; traffic_light then lacks one byte */
    shoal_runtime_t rt = make(PINNED - 1, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_ERR_BUDGET);
    assert_null(rt);
    char expect[128];
    snprintf(expect, sizeof expect, "needs %lld bytes, %lld available", (long long)(PINNED - ROAD),
             (long long)(PINNED - ROAD - 1));
    if (!strstr(err, expect) || !strstr(err, "traffic_light"))
        fail_msg("message '%s' lacks '%s' or the model's name", err, expect);
    /* exactly enough is enough */
    rt = make(PINNED, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_OK);
    assert_int_equal(shoal_runtime_is_ready(rt), 1);
    assert_int_equal(rt_in_use(rt), PINNED);
    shoal_runtime_destroy(rt);
}

static void test_budget_too_small_for_arena(void **state)
{
    char err[512];
    int rc;
    shoal_runtime_t rt = make(ARENA - 64, 0, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_ERR_BUDGET);
    assert_null(rt);
    char expect[128];
    snprintf(expect, sizeof expect, "needs %lld bytes", (long long)ARENA);
    if (!strstr(err, "arena") || !strstr(err, expect) || !strstr(err, "available"))
        fail_msg("message '%s' does not name the arena, its %lld bytes and what is available", err, (long long)ARENA);
}

static void test_refused_load_changes_nothing(void **state)
{
    char err[512];
    int rc;
    /* room for the pinned models and shopping + hand, not for obstacle even alone */
    shoal_runtime_t rt = make(PINNED + SHOP_HAND, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_OK);
    assert_int_equal(shoal_runtime_load_model(rt, "shopping"), SHOAL_OK);
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_OK);
    snapshot before = snap(rt);
    assert_int_equal(shoal_runtime_load_model(rt, "obstacle"), SHOAL_ERR_BUDGET);
    const char *msg = shoal_runtime_last_error(rt);
    if (!strstr(msg, "obstacle") || !strstr(msg, "needs") || !strstr(msg, "available"))
        fail_msg("message '%s'", msg);
    snapshot after = snap(rt);
    assert_same(&before, &after);
    /* the same through a mode: nothing of it ran, residency unchanged */
    shoal_results_t res = (shoal_results_t)1;
    assert_int_equal(shoal_runtime_run_mode(rt, "navigation", &FRAME, &res), SHOAL_ERR_BUDGET);
    assert_null(res);
    after = snap(rt);
    before.loads[0] = after.loads[0];   /* blind_road ran first: a run, not a load */
    assert_same(&before, &after);
    /* and the runtime still works */
    assert_int_equal(shoal_runtime_run_mode(rt, "shopping", &FRAME, &res), SHOAL_OK);
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
}

static void test_load_unload(void **state)
{
    char err[512];
    int rc;
    shoal_runtime_t rt = make(0, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_OK);
    assert_int_equal(shoal_runtime_is_ready(rt), 1);
    assert_int_equal(rt_resident(rt, "hand"), 0);
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_OK);
    assert_int_equal(rt_resident(rt, "hand"), 1);
    snapshot s0 = snap(rt);
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_OK);   /* resident: nothing to do */
    snapshot s1 = snap(rt);
    assert_same(&s0, &s1);
    assert_int_equal(shoal_runtime_unload_model(rt, "hand"), SHOAL_OK);
    assert_int_equal(rt_resident(rt, "hand"), 0);
    assert_int_equal(shoal_runtime_unload_model(rt, "hand"), SHOAL_OK);   /* not resident: no-op */
    /* pinned models stay */
    assert_int_equal(shoal_runtime_unload_model(rt, "blind_road"), SHOAL_ERR_STATE);
    assert_non_null(strstr(shoal_runtime_last_error(rt), "pinned"));
    assert_int_equal(rt_resident(rt, "blind_road"), 1);
    /* shopping shares its backbone with the resident blind_road: loading it adds only its own */
    int64_t before = rt_in_use(rt);
    assert_int_equal(shoal_runtime_load_model(rt, "shopping"), SHOAL_OK);
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    const shoal_model_stats *shop = &st.models[3];
    assert_string_equal(shop->name, "shopping");
    assert_true(shop->weight_shared_bytes > 0);
    assert_int_equal(rt_in_use(rt) - before, shop->weight_unique_bytes);
    assert_true(st.dedup_saved_bytes >= shop->weight_shared_bytes);
    shoal_stats_free(&st);
    /* evicting shopping keeps the backbone blind_road still uses */
    assert_int_equal(shoal_runtime_unload_model(rt, "shopping"), SHOAL_OK);
    assert_int_equal(rt_in_use(rt), before);
    shoal_results_t res;
    assert_int_equal(shoal_runtime_run_mode(rt, "navigation", &FRAME, &res), SHOAL_OK);
    shoal_results_destroy(res);
    /* unknown names */
    assert_int_equal(shoal_runtime_load_model(rt, "sonar"), SHOAL_ERR_NOT_FOUND);
    assert_non_null(strstr(shoal_runtime_last_error(rt), "sonar"));
    assert_int_equal(shoal_runtime_unload_model(rt, "sonar"), SHOAL_ERR_NOT_FOUND);
    assert_int_equal(shoal_runtime_load_model(rt, NULL), SHOAL_ERR_INVALID_ARG);
    /* prefetch loads what fits without evicting */
    assert_int_equal(shoal_runtime_prefetch_mode(rt, "shopping"), SHOAL_OK);
    assert_int_equal(rt_resident(rt, "shopping"), 1);
    assert_int_equal(rt_resident(rt, "hand"), 1);
    assert_int_equal(shoal_runtime_prefetch_mode(rt, "flying"), SHOAL_ERR_NOT_FOUND);
    shoal_runtime_destroy(rt);
}

static void test_set_budget(void **state)
{
    char err[512];
    int rc;
    shoal_runtime_t rt = make(0, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_OK);
    assert_int_equal(shoal_runtime_load_model(rt, "shopping"), SHOAL_OK);
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_OK);
    assert_int_equal(shoal_runtime_set_budget(rt, -1), SHOAL_ERR_INVALID_ARG);
    /* below what the arena and the pinned models hold: refused before anything is evicted */
    snapshot before = snap(rt);
    assert_int_equal(shoal_runtime_set_budget(rt, PINNED - 1), SHOAL_ERR_BUDGET);
    const char *msg = shoal_runtime_last_error(rt);
    char need[64];
    snprintf(need, sizeof need, "%lld", (long long)PINNED);
    if (!strstr(msg, need))
        fail_msg("message '%s' does not name the %s bytes needed", msg, need);
    snapshot after = snap(rt);
    assert_same(&before, &after);
    /* exactly the pinned set: the unpinned models are evicted, the pinned ones stay */
    assert_int_equal(shoal_runtime_set_budget(rt, PINNED), SHOAL_OK);
    assert_int_equal(rt_in_use(rt), PINNED);
    assert_int_equal(rt_resident(rt, "shopping"), 0);
    assert_int_equal(rt_resident(rt, "hand"), 0);
    assert_int_equal(rt_resident(rt, "blind_road"), 1);
    assert_int_equal(rt_resident(rt, "traffic_light"), 1);
    /* nothing else fits now */
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_ERR_BUDGET);
    shoal_results_t res;
    assert_int_equal(shoal_runtime_run_mode(rt, "crossing", &FRAME, &res), SHOAL_OK);
    shoal_results_destroy(res);
    /* 0 = unlimited */
    assert_int_equal(shoal_runtime_set_budget(rt, 0), SHOAL_OK);
    assert_int_equal(shoal_runtime_load_model(rt, "hand"), SHOAL_OK);
    shoal_stats st;
    assert_int_equal(shoal_runtime_get_stats(rt, &st), SHOAL_OK);
    assert_int_equal(st.devices[0].budget_bytes, 0);
    shoal_stats_free(&st);
    shoal_runtime_destroy(rt);
}

static void test_unknown_names(void **state)
{
    char err[512];
    int rc;
    shoal_runtime_t rt = make(0, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_OK);
    shoal_results_t res = (shoal_results_t)1;
    assert_int_equal(shoal_runtime_run_mode(rt, "flying", &FRAME, &res), SHOAL_ERR_NOT_FOUND);
    assert_null(res);
    const char *msg = shoal_runtime_last_error(rt);
    if (!strstr(msg, "flying") || !strstr(msg, "navigation") || !strstr(msg, "shopping"))
        fail_msg("message '%s' should name the mode and the config's modes", msg);
    res = (shoal_results_t)1;
    assert_int_equal(shoal_runtime_run_mode(rt, NULL, &FRAME, &res), SHOAL_ERR_INVALID_ARG);
    assert_null(res);
    res = (shoal_results_t)1;
    assert_int_equal(shoal_runtime_run_model(rt, "sonar", &FRAME, &res), SHOAL_ERR_NOT_FOUND);
    assert_null(res);
    assert_non_null(strstr(shoal_runtime_last_error(rt), "sonar"));
    assert_int_equal(shoal_runtime_run_model(rt, "hand", &FRAME, &res), SHOAL_OK);
    assert_int_equal(shoal_results_count(res), 1);
    shoal_results_destroy(res);
    assert_null(shoal_runtime_model_name(rt, -1));
    assert_null(shoal_runtime_model_name(rt, 5));
    assert_null(shoal_runtime_mode_name(rt, 3));
    shoal_runtime_destroy(rt);
}

static void test_bad_frames(void **state)
{
    char err[512];
    int rc;
    shoal_runtime_t rt = make(0, 1, err, sizeof err, &rc);
    assert_int_equal(rc, SHOAL_OK);
    uint8_t px[3 * 4] = {0};
    shoal_image bad[] = {
        shoal_image_wrap(NULL, 64, 48),          /* no pixels */
        shoal_image_wrap(px, 0, 0),              /* 0 x 0 */
        shoal_image_wrap(px, 0, 2),
        shoal_image_wrap(px, -4, 2),
        shoal_image_wrap(px, 100000, 100000),    /* declared huge; never read */
        shoal_image_wrap(px, 1, 2000000000),
    };
    snapshot before = snap(rt);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        shoal_results_t res = (shoal_results_t)1;
        rc = shoal_runtime_run_mode(rt, "navigation", &bad[i], &res);
        if (rc != SHOAL_ERR_INVALID_ARG)
            fail_msg("frame %zu (%dx%d): status %d", i, bad[i].width, bad[i].height, rc);
        assert_null(res);
        assert_true(shoal_runtime_last_error(rt)[0] != '\0');
    }
    shoal_results_t res = (shoal_results_t)1;
    assert_int_equal(shoal_runtime_run_mode(rt, "navigation", NULL, &res), SHOAL_ERR_INVALID_ARG);
    assert_null(res);
    assert_int_equal(shoal_runtime_run_model(rt, "hand", NULL, &res), SHOAL_ERR_INVALID_ARG);
    snapshot after = snap(rt);
    assert_same(&before, &after);
    /* the smallest frame is a frame */
    shoal_image one = shoal_image_wrap(px, 2, 2);
    assert_int_equal(shoal_runtime_run_mode(rt, "shopping", &one, &res), SHOAL_OK);
    shoal_results_destroy(res);
    shoal_runtime_destroy(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_budget_too_small_for_pinned),
        cmocka_unit_test(test_budget_too_small_for_arena),
        cmocka_unit_test(test_refused_load_changes_nothing),
        cmocka_unit_test(test_load_unload),
        cmocka_unit_test(test_set_budget),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_bad_frames),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
