#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "memory/budget.h"
#include "memory/residency.h"

/* A fake runtime: each model has its own weight bytes, may belong to a group sharing more
 * weight bytes (counted once per set), and has an activation arena (the set needs the max).
 * load/unload charge the budget with the footprint's change, as the real runtime would. */
#define NM 6
typedef struct rt {
    sh_budget *b;
    size_t own[NM], arena[NM];
    int group[NM];            /* -1 none */
    size_t group_bytes[2];
    unsigned char res[NM];
    size_t charged;
    int fail_load;
    int unloaded[64], n_unloaded, loads;
    pthread_mutex_t lock;
} rt;

static size_t footprint(void *user, const unsigned char *set, int n)
{
    rt *r = user;
    size_t total = 0, arena = 0;
    int g_used[2] = {0, 0};
    for (int i = 0; i < n; i++) {
        if (!set[i])
            continue;
        total += r->own[i];
        if (r->group[i] >= 0)
            g_used[r->group[i]] = 1;
        if (r->arena[i] > arena)
            arena = r->arena[i];
    }
    return total + arena + (g_used[0] ? r->group_bytes[0] : 0) + (g_used[1] ? r->group_bytes[1] : 0);
}

static int load(void *user, int m, sh_err *err)
{
    rt *r = user;
    if (r->fail_load)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "fake load failed");
    r->res[m] = 1;
    size_t now = footprint(r, r->res, NM);
    int rc = sh_budget_reserve(r->b, SH_MEM_WEIGHTS, SH_BUDGET_SHARED, now - r->charged, err);
    if (rc) {
        r->res[m] = 0;
        return rc;
    }
    r->charged = now;
    r->loads++;
    return 0;
}

static void unload(void *user, int m)
{
    rt *r = user;
    r->res[m] = 0;
    size_t now = footprint(r, r->res, NM);
    sh_budget_release(r->b, SH_MEM_WEIGHTS, SH_BUDGET_SHARED, r->charged - now);
    r->charged = now;
    if (r->n_unloaded < 64)
        r->unloaded[r->n_unloaded++] = m;
}

static int violations;
static void hook(void *user, const sh_budget_event *ev)
{
    if (ev->device_limit && ev->device_in_use > ev->device_limit)
        violations++;
}

typedef struct fx {
    sh_allocator *a;
    rt r;
    sh_residency *res;
} fx;

static void fx_init(fx *f, size_t limit, const size_t *own)
{
    memset(f, 0, sizeof *f);
    violations = 0;
    f->a = sh_allocator_create();
    assert_int_equal(sh_budget_create(f->a, "fake:0", limit, 0, NM, &f->r.b, NULL), 0);
    sh_budget_set_hook(f->r.b, hook, NULL);
    for (int i = 0; i < NM; i++) {
        f->r.own[i] = own ? own[i] : 100;
        f->r.group[i] = -1;
    }
    pthread_mutex_init(&f->r.lock, NULL);
    sh_residency_callbacks cb = {&f->r, footprint, load, unload};
    sh_err err = {0};
    assert_int_equal(sh_residency_create(f->a, f->r.b, &cb, NM, &f->res, &err), 0);
}

static void fx_fini(fx *f)
{
    for (int i = 0; i < NM; i++) {
        sh_residency_set_pinned(f->res, i, false);
        sh_residency_evict(f->res, i, NULL);
    }
    sh_budget_stats st;
    sh_budget_get_stats(f->r.b, &st);
    assert_int_equal(st.device_in_use, 0);
    assert_int_equal(violations, 0);
    sh_residency_destroy(f->res);
    sh_budget_destroy(f->r.b);
    pthread_mutex_destroy(&f->r.lock);
    assert_int_equal(sh_allocator_stats(f->a).in_use, 0);
    sh_allocator_destroy(f->a);
}

static void use(fx *f, int m, double t)
{
    sh_err err = {0};
    int rc = sh_residency_acquire(f->res, m, t, &err);
    if (rc)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    sh_residency_release(f->res, m, t);
}

static void evicts_least_recently_used(void **state)
{
    fx f;
    fx_init(&f, 300, NULL);
    use(&f, 0, 1);
    use(&f, 1, 2);
    use(&f, 2, 3);
    use(&f, 0, 4);
    use(&f, 3, 5);                        /* 1 is the oldest */
    assert_int_equal(f.r.n_unloaded, 1);
    assert_int_equal(f.r.unloaded[0], 1);
    use(&f, 1, 6);                        /* now 2 (t=3) */
    assert_int_equal(f.r.unloaded[1], 2);
    sh_residency_model_stats ms;
    sh_residency_model_get_stats(f.res, 1, &ms);
    assert_int_equal(ms.loads, 2);
    assert_int_equal(ms.evictions, 1);
    assert_true(ms.resident);
    sh_residency_stats st;
    sh_residency_get_stats(f.res, &st);
    assert_int_equal(st.loads, 5);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.n_resident, 3);
    fx_fini(&f);
}

static void lower_priority_goes_first(void **state)
{
    fx f;
    fx_init(&f, 300, NULL);
    for (int i = 0; i < NM; i++) {
        sh_residency_model cfg = {.priority = i == 2 ? 0 : 5};
        assert_int_equal(sh_residency_configure(f.res, i, &cfg, NULL), 0);
    }
    use(&f, 0, 1);
    use(&f, 1, 2);
    use(&f, 2, 3);   /* most recent, but lowest priority */
    use(&f, 3, 4);
    assert_int_equal(f.r.unloaded[0], 2);
    fx_fini(&f);
}

static void pinned_and_in_use_are_never_evicted(void **state)
{
    fx f;
    fx_init(&f, 300, NULL);
    sh_residency_model pin = {.name = "blind_road", .pinned = true, .priority = 0};
    assert_int_equal(sh_residency_configure(f.res, 0, &pin, NULL), 0);
    sh_residency_model named = {.name = "obstacle"};
    assert_int_equal(sh_residency_configure(f.res, 4, &named, NULL), 0);
    sh_err err = {0};
    assert_int_equal(sh_residency_admit(f.res, 0, 1, &err), 0);
    assert_int_equal(sh_residency_acquire(f.res, 1, 2, &err), 0);   /* held by a run */
    use(&f, 2, 3);
    use(&f, 3, 4);                                                  /* only 2 can go */
    assert_int_equal(f.r.unloaded[0], 2);
    assert_int_equal(sh_residency_acquire(f.res, 3, 5, &err), 0);   /* now 3 is held too */

    /* Nothing can go: refused, and nothing changed. */
    sh_budget_stats b0, b1;
    sh_budget_get_stats(f.r.b, &b0);
    sh_residency_stats s0, s1;
    sh_residency_get_stats(f.res, &s0);
    int unl = f.r.n_unloaded, loads = f.r.loads;
    assert_int_equal(sh_residency_admit(f.res, 4, 6, &err), SHOAL_ERR_BUDGET);
    assert_non_null(strstr(err.msg, "obstacle: needs 100 bytes, 0 available"));
    assert_non_null(strstr(err.msg, "2 in use, 1 pinned"));
    sh_budget_get_stats(f.r.b, &b1);
    sh_residency_get_stats(f.res, &s1);
    assert_int_equal(b1.device_in_use, b0.device_in_use);
    assert_int_equal(s1.n_resident, s0.n_resident);
    assert_int_equal(s1.evictions, s0.evictions);
    assert_int_equal(s1.refused, s0.refused + 1);
    assert_int_equal(f.r.n_unloaded, unl);
    assert_int_equal(f.r.loads, loads);
    assert_true(sh_residency_is_resident(f.res, 0));
    assert_int_equal(sh_residency_evict(f.res, 1, &err), SHOAL_ERR_STATE);
    assert_int_equal(sh_residency_evict(f.res, 0, &err), SHOAL_ERR_STATE);
    assert_non_null(strstr(err.msg, "blind_road is pinned"));

    /* Releasing a run makes its model a candidate again. */
    sh_residency_release(f.res, 1, 7);
    assert_int_equal(sh_residency_admit(f.res, 4, 8, &err), 0);
    assert_false(sh_residency_is_resident(f.res, 1));
    sh_residency_release(f.res, 3, 9);
    fx_fini(&f);
}

static void shared_weights_count_once(void **state)
{
    fx f;
    size_t own[NM] = {50, 50, 300, 50, 100, 100};
    fx_init(&f, 400, own);
    f.r.group[0] = f.r.group[1] = f.r.group[3] = 0;
    f.r.group_bytes[0] = 200;
    use(&f, 0, 1);   /* 250 */
    use(&f, 1, 2);   /* +50 */
    use(&f, 3, 3);   /* +50: the shared backbone is already there */
    assert_int_equal(f.r.n_unloaded, 0);
    /* Model 2 needs 300 with 50 free: evicting 0 frees 50, 1 frees 50, 3 frees 250. */
    use(&f, 2, 4);
    assert_int_equal(f.r.n_unloaded, 3);
    sh_budget_stats st;
    sh_budget_get_stats(f.r.b, &st);
    assert_int_equal(st.device_in_use, 300);
    fx_fini(&f);
}

static void arena_growth_is_part_of_the_need(void **state)
{
    fx f;
    size_t own[NM] = {10, 10, 10, 10, 10, 10};
    fx_init(&f, 200, own);
    f.r.arena[0] = 100;
    f.r.arena[1] = 50;
    f.r.arena[2] = 150;
    use(&f, 0, 1);   /* 110 */
    use(&f, 1, 2);   /* +10: its arena fits in the shared one */
    use(&f, 2, 3);   /* +10 + 50 growth = 180 */
    assert_int_equal(f.r.n_unloaded, 0);
    f.r.arena[3] = 200;  /* alone it needs 210: no eviction can make room, none happens */
    sh_err err = {0};
    assert_int_equal(sh_residency_admit(f.res, 3, 4, &err), SHOAL_ERR_BUDGET);
    assert_int_equal(f.r.n_unloaded, 0);
    fx_fini(&f);
}

static void idle_models_unload_on_tick(void **state)
{
    fx f;
    fx_init(&f, 0, NULL);   /* unlimited */
    for (int i = 0; i < 4; i++) {
        sh_residency_model cfg = {.idle_timeout_s = 10, .pinned = i == 3};
        sh_residency_configure(f.res, i, &cfg, NULL);
    }
    use(&f, 0, 0);
    use(&f, 1, 5);
    use(&f, 3, 0);
    sh_err err = {0};
    assert_int_equal(sh_residency_acquire(f.res, 2, 0, &err), 0);   /* in use through the tick */
    assert_int_equal(sh_residency_tick(f.res, 9), 0);
    assert_int_equal(sh_residency_tick(f.res, 12), 1);             /* 0 only */
    assert_false(sh_residency_is_resident(f.res, 0));
    assert_true(sh_residency_is_resident(f.res, 1));
    assert_true(sh_residency_is_resident(f.res, 2));
    assert_true(sh_residency_is_resident(f.res, 3));
    sh_residency_release(f.res, 2, 12);
    assert_int_equal(sh_residency_tick(f.res, 30), 2);             /* 1 and 2; 3 is pinned */
    sh_residency_model_stats ms;
    sh_residency_model_get_stats(f.res, 1, &ms);
    assert_int_equal(ms.idle_unloads, 1);
    fx_fini(&f);
}

static void prefetch_takes_only_idle_room(void **state)
{
    fx f;
    fx_init(&f, 300, NULL);
    for (int i = 0; i < NM; i++) {
        sh_residency_model cfg = {.idle_timeout_s = 100};
        sh_residency_configure(f.res, i, &cfg, NULL);
    }
    use(&f, 0, 0);
    use(&f, 1, 50);
    use(&f, 2, 60);
    int want[2] = {3, 4};
    assert_int_equal(sh_residency_prefetch(f.res, want, 2, 70), 0);   /* nobody idle yet */
    assert_int_equal(f.r.n_unloaded, 0);
    assert_int_equal(sh_residency_prefetch(f.res, want, 2, 120), 1);  /* 0 expired: room for one */
    assert_int_equal(f.r.unloaded[0], 0);
    assert_true(sh_residency_is_resident(f.res, 3));
    assert_false(sh_residency_is_resident(f.res, 4));
    fx_fini(&f);
}

static void failed_load_reports_its_status(void **state)
{
    fx f;
    fx_init(&f, 200, NULL);
    use(&f, 0, 1);
    use(&f, 1, 2);
    f.r.fail_load = 1;
    sh_err err = {0};
    assert_int_equal(sh_residency_admit(f.res, 2, 3, &err), SHOAL_ERR_NO_MEMORY);
    assert_non_null(strstr(err.msg, "fake load failed"));
    assert_false(sh_residency_is_resident(f.res, 2));
    f.r.fail_load = 0;
    use(&f, 2, 4);
    fx_fini(&f);
}

/* A hand landmarker: landmark model 4 and palm detector 5 bound into one set. */
static void bind_hand(fx *f)
{
    sh_residency_model lm = {.name = "hand"}, palm = {.name = "hand.palm"};
    assert_int_equal(sh_residency_configure(f->res, 4, &lm, NULL), 0);
    assert_int_equal(sh_residency_configure(f->res, 5, &palm, NULL), 0);
    int stages[2] = {4, 5};
    sh_err err = {0};
    assert_int_equal(sh_residency_bind(f->res, stages, 2, "hand", &err), 0);
}

static void a_set_that_does_not_fit_leaves_nothing_behind(void **state)
{
    fx f;
    size_t own[NM] = {100, 100, 100, 100, 150, 120};
    fx_init(&f, 500, own);
    bind_hand(&f);
    sh_residency_model pin = {.name = "blind_road", .pinned = true};
    assert_int_equal(sh_residency_configure(f.res, 0, &pin, NULL), 0);
    sh_err err = {0};
    assert_int_equal(sh_residency_admit(f.res, 0, 1, &err), 0);
    assert_int_equal(sh_residency_acquire(f.res, 1, 2, &err), 0);   /* held by a run */
    use(&f, 2, 3);
    /* 200 free and nothing movable: either stage alone (150, 120) would fit, the set (270) not. */
    assert_int_equal(sh_residency_acquire(f.res, 2, 4, &err), 0);
    sh_budget_stats b0, b1;
    sh_budget_get_stats(f.r.b, &b0);
    int loads = f.r.loads, unl = f.r.n_unloaded;
    assert_int_equal(sh_residency_acquire(f.res, 5, 5, &err), SHOAL_ERR_BUDGET);   /* through the palm stage */
    assert_non_null(strstr(err.msg, "set 'hand' (hand + hand.palm): needs 270 bytes, 200 available"));
    assert_int_equal(sh_residency_admit(f.res, 4, 5, &err), SHOAL_ERR_BUDGET);     /* through the landmarks */
    assert_non_null(strstr(err.msg, "set 'hand'"));
    assert_false(sh_residency_is_resident(f.res, 4));
    assert_false(sh_residency_is_resident(f.res, 5));
    assert_int_equal(f.r.loads, loads);
    assert_int_equal(f.r.n_unloaded, unl);
    sh_budget_get_stats(f.r.b, &b1);
    assert_int_equal(b1.device_in_use, b0.device_in_use);
    sh_residency_stats st;
    sh_residency_get_stats(f.res, &st);
    assert_int_equal(st.refused, 2);   /* the old way admitted one stage here and refused the other */
    assert_int_equal(st.evictions, 0);

    /* A run lets go of 2: the set fits after evicting 2 alone; 1 stays though it is older. */
    sh_residency_release(f.res, 1, 6);
    sh_residency_release(f.res, 2, 7);
    sh_residency_model hi = {.priority = 9};
    assert_int_equal(sh_residency_configure(f.res, 1, &hi, NULL), 0);
    assert_int_equal(sh_residency_acquire(f.res, 4, 8, &err), 0);
    assert_true(sh_residency_is_resident(f.res, 4));
    assert_true(sh_residency_is_resident(f.res, 5));
    assert_int_equal(f.r.n_unloaded, unl + 1);
    assert_int_equal(f.r.unloaded[unl], 2);
    assert_true(sh_residency_is_resident(f.res, 1));

    /* A member held by a run keeps the whole set: neither evict() nor another admission splits it. */
    assert_int_equal(sh_residency_evict(f.res, 5, &err), SHOAL_ERR_STATE);
    assert_non_null(strstr(err.msg, "set 'hand' (hand + hand.palm): hand is in use by a run"));
    sh_residency_set_pinned(f.res, 1, true);
    assert_int_equal(sh_residency_admit(f.res, 3, 9, &err), SHOAL_ERR_BUDGET);   /* 30 free, 1 pinned */
    sh_residency_set_pinned(f.res, 1, false);
    assert_int_equal(sh_residency_admit(f.res, 3, 9, &err), 0);                   /* 1 goes, the hand stays */
    assert_true(sh_residency_is_resident(f.res, 4) && sh_residency_is_resident(f.res, 5));
    assert_false(sh_residency_is_resident(f.res, 1));
    sh_residency_release(f.res, 4, 10);

    /* Released, the set leaves whole for a newcomer that needs its room. */
    f.r.own[2] = 250;
    assert_int_equal(sh_residency_admit(f.res, 2, 11, &err), 0);
    assert_false(sh_residency_is_resident(f.res, 4));
    assert_false(sh_residency_is_resident(f.res, 5));
    sh_residency_model_stats ms;
    sh_residency_model_get_stats(f.res, 5, &ms);
    assert_int_equal(ms.evictions, 1);
    fx_fini(&f);
}

static void a_set_loads_whole_or_not_at_all(void **state)
{
    fx f;
    fx_init(&f, 0, NULL);
    bind_hand(&f);
    f.r.fail_load = 1;
    sh_err err = {0};
    assert_int_equal(sh_residency_admit(f.res, 5, 1, &err), SHOAL_ERR_NO_MEMORY);
    assert_false(sh_residency_is_resident(f.res, 4));
    assert_false(sh_residency_is_resident(f.res, 5));
    f.r.fail_load = 0;
    use(&f, 5, 2);
    assert_true(sh_residency_is_resident(f.res, 4));
    /* Idle unloads take the set when every member is idle, not before. */
    for (int i = 4; i < 6; i++)
        sh_residency_configure(f.res, i, &(sh_residency_model){.name = i == 4 ? "hand" : "hand.palm",
                                                              .idle_timeout_s = 10}, NULL);
    use(&f, 4, 8);
    assert_int_equal(sh_residency_tick(f.res, 13), 0);   /* the palm stage is idle, the landmarks not */
    assert_int_equal(sh_residency_tick(f.res, 19), 2);
    assert_false(sh_residency_is_resident(f.res, 4) || sh_residency_is_resident(f.res, 5));
    /* Binding twice or binding resident models is refused. */
    int again[2] = {5, 1};
    assert_int_equal(sh_residency_bind(f.res, again, 2, "again", &err), SHOAL_ERR_STATE);
    use(&f, 1, 20);
    int two[2] = {1, 2};
    assert_int_equal(sh_residency_bind(f.res, two, 2, "late", &err), SHOAL_ERR_STATE);
    fx_fini(&f);
}

typedef struct worker {
    fx *f;
    unsigned seed;
    int ok, refused;
} worker;

static void *runner(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 3000; i++) {
        w->seed = w->seed * 1103515245u + 12345u;
        int m = (int)((w->seed >> 8) % NM);
        double now = (double)i;
        sh_err err = {0};
        int rc = sh_residency_acquire(w->f->res, m, now, &err);
        if (rc == 0) {
            /* While held, the model must stay resident. */
            if (!sh_residency_is_resident(w->f->res, m))
                w->refused = -1000000;
            sh_residency_release(w->f->res, m, now);
            w->ok++;
        } else if (rc == SHOAL_ERR_BUDGET) {
            w->refused++;
        }
        if (i % 97 == 0)
            sh_residency_tick(w->f->res, now);
    }
    return NULL;
}

static void threads_keep_the_invariants(void **state)
{
    fx f;
    fx_init(&f, 350, NULL);
    for (int i = 0; i < NM; i++) {
        sh_residency_model cfg = {.idle_timeout_s = 50, .priority = i % 3};
        sh_residency_configure(f.res, i, &cfg, NULL);
    }
    worker w[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){&f, (unsigned)(i + 1) * 2654435761u, 0, 0};
        pthread_create(&th[i], NULL, runner, &w[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(w[i].refused >= 0);
        ok += w[i].ok;
    }
    assert_true(ok > 0);
    for (int i = 0; i < NM; i++) {
        sh_residency_model_stats ms;
        sh_residency_model_get_stats(f.res, i, &ms);
        assert_int_equal(ms.refs, 0);
    }
    fx_fini(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(evicts_least_recently_used),
        cmocka_unit_test(lower_priority_goes_first),
        cmocka_unit_test(pinned_and_in_use_are_never_evicted),
        cmocka_unit_test(shared_weights_count_once),
        cmocka_unit_test(arena_growth_is_part_of_the_need),
        cmocka_unit_test(idle_models_unload_on_tick),
        cmocka_unit_test(prefetch_takes_only_idle_room),
        cmocka_unit_test(failed_load_reports_its_status),
        cmocka_unit_test(a_set_that_does_not_fit_leaves_nothing_behind),
        cmocka_unit_test(a_set_loads_whole_or_not_at_all),
        cmocka_unit_test(threads_keep_the_invariants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
