#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "fake_backend.h"
#include "memory/budget.h"
#include "memory/weights.h"
#include "synth.h"

/* Two models: A has weights from seeds {1, 2, 3}, B from {1, 7, 3}: B shares A's first and
 * last weight byte for byte. Sizes in floats. */
static const int sizes[3] = {1000, 5000, 300};

/* A chain of n Convs whose weights are floats[i] values from an LCG seeded seeds[i]. */
static sh_graph *conv_chain(sh_allocator *a, const char *name, int n, const int *floats, const unsigned *seeds)
{
    sh_graph *g = sh_graph_create(a, name);
    int x = syn_t(g, "x", 1, 8, 8);
    sh_graph_set_inputs(g, &x, 1);
    int most = 0;
    for (int i = 0; i < n; i++)
        most = floats[i] > most ? floats[i] : most;
    float *buf = malloc(sizeof(float) * (size_t)most);
    assert_non_null(buf);
    for (int i = 0; i < n; i++) {
        char wn[16], nn[16];
        snprintf(wn, sizeof wn, "w%d", i);
        snprintf(nn, sizeof nn, "conv%d", i);
        sh_shape s = {1, {floats[i]}};
        int w = sh_graph_add_tensor(g, wn, SH_DT_FLOAT32, &s);
        unsigned v = seeds[i];
        for (int j = 0; j < floats[i]; j++) {
            v = v * 1664525u + 1013904223u;
            buf[j] = (float)(v >> 8) / 16777216.0f - 0.5f;
        }
        assert_int_equal(sh_graph_set_const(g, w, buf, sizeof(float) * (size_t)floats[i], NULL), 0);
        int y = syn_t(g, "", 1, 8, 8);
        int in[2] = {x, w};
        sh_graph_add_node(g, nn, SH_OP_CONV, in, 2, &y, 1);
        x = y;
    }
    free(buf);
    sh_graph_set_outputs(g, &x, 1);
    assert_int_equal(sh_graph_finalize(g, NULL), 0);
    return g;
}

static sh_graph *model(sh_allocator *a, const char *name, const unsigned *seeds)
{
    return conv_chain(a, name, 3, sizes, seeds);
}

typedef struct fixture {
    sh_allocator *a;
    fake_dev d;
    sh_backend be;
    sh_budget *b;
    sh_graph *ga, *gb;
    sh_program *pa, *pb;
    int violations;
} fixture;

static void hook(void *user, const sh_budget_event *ev)
{
    fixture *f = user;
    if ((ev->device_limit && ev->device_in_use > ev->device_limit) || (ev->host_limit && ev->host_in_use > ev->host_limit))
        f->violations++;
}

static void setup(fixture *f, int pinned, size_t limit)
{
    static const unsigned sa[3] = {1, 2, 3}, sb[3] = {1, 7, 3};
    memset(f, 0, sizeof *f);
    f->a = sh_allocator_create();
    fake_backend_init(&f->d, &f->be, pinned);
    assert_int_equal(sh_budget_create(f->a, "fake:0", limit, 0, 4, &f->b, NULL), 0);
    sh_budget_set_hook(f->b, hook, f);
    f->ga = model(f->a, "A", sa);
    f->gb = model(f->a, "B", sb);
    f->pa = syn_compile(f->a, f->ga, 0);
    f->pb = syn_compile(f->a, f->gb, 0);
}

static void teardown(fixture *f)
{
    sh_budget_stats st;
    sh_budget_get_stats(f->b, &st);
    assert_int_equal(st.device_in_use, 0);
    assert_int_equal(st.in_use[SH_MEM_HOST_CACHE], 0);
    assert_int_equal(f->violations, 0);
    assert_int_equal(sh_allocator_stats(f->d.device).in_use, 0);
    assert_int_equal(sh_allocator_stats(f->d.pinned).in_use, 0);
    sh_program_release(f->a, f->pa);
    sh_program_release(f->a, f->pb);
    sh_graph_destroy(f->ga);
    sh_graph_destroy(f->gb);
    sh_budget_destroy(f->b);
    fake_backend_fini(&f->d);
    assert_int_equal(sh_allocator_stats(f->a).in_use, 0);
    sh_allocator_destroy(f->a);
}

static sh_weight_store *store(fixture *f, bool cache)
{
    sh_weight_store_params p = {.alloc = f->a, .backend = f->be, .budget = f->b, .alignment = 256,
                                .chunk_bytes = 8192, .host_cache = cache, .max_models = 4};
    sh_weight_store *ws = NULL;
    sh_err err = {0};
    assert_int_equal(sh_weight_store_create(&p, &ws, &err), 0);
    return ws;
}

static int widx(const sh_graph *g, int i)
{
    char n[8];
    snprintf(n, sizeof n, "w%d", i);
    return sh_graph_find_tensor(g, n);
}

static size_t al(size_t n) { return sh_align_up(n, 256); }
static size_t al64(size_t n) { return sh_align_up(n, 64); }

typedef struct kept_log {
    const sh_graph *g;
    pthread_mutex_t mu;     /* a threaded prepack calls back from its threads */
    int n, seen[256];
} kept_log;

static void kept_source(void *user, int t)
{
    kept_log *k = user;
    assert_true(t >= 0 && t < 256 && k->g->tensors[t].is_const);
    pthread_mutex_lock(&k->mu);
    k->seen[t]++;
    k->n++;
    pthread_mutex_unlock(&k->mu);
}

/* With the cache on, prepack names each packed constant once as its bytes are kept, and
 * registering needs nothing more from the sources: wiped after the callbacks (as the runtime
 * frees them), the two models still share their identical weights. Without the cache it names
 * none: registration still compares source bytes. */
static void prepack_tells_when_sources_are_free(void **state)
{
    (void)state;
    for (int cache = 1; cache >= 0; cache--) {
        fixture f;
        setup(&f, 1, 0);
        sh_weight_store *ws = store(&f, cache);
        sh_err err = {0};
        kept_log ka = {.g = f.ga, .mu = PTHREAD_MUTEX_INITIALIZER}, kb = {.g = f.gb, .mu = PTHREAD_MUTEX_INITIALIZER};
        sh_weight_prepack *pa = NULL, *pb = NULL;
        assert_int_equal(sh_weight_store_prepack(ws, f.pa, kept_source, &ka, &pa, &err), 0);
        assert_int_equal(sh_weight_store_prepack(ws, f.pb, kept_source, &kb, &pb, &err), 0);
        assert_int_equal(ka.n, cache ? 3 : 0);
        assert_int_equal(kb.n, cache ? 3 : 0);
        for (int i = 0; cache && i < 3; i++) {
            assert_int_equal(ka.seen[widx(f.ga, i)], 1);
            assert_int_equal(kb.seen[widx(f.gb, i)], 1);
            memset(f.ga->tensors[widx(f.ga, i)].data, 0xA5, f.ga->tensors[widx(f.ga, i)].nbytes);
            memset(f.gb->tensors[widx(f.gb, i)].data, 0x5A, f.gb->tensors[widx(f.gb, i)].nbytes);
        }
        assert_int_equal(sh_weight_store_register_prepacked(ws, 0, f.pa, pa, &err), 0);
        assert_int_equal(sh_weight_store_register_prepacked(ws, 1, f.pb, pb, &err), 0);
        sh_weight_store_stats st;
        sh_weight_store_get_stats(ws, &st);
        assert_int_equal(st.n_entries, 4);
        assert_int_equal(st.n_dedup_hits, 2);
        sh_weight_store_destroy(ws);
        teardown(&f);
    }
}

static void identical_weights_are_stored_once(void **state)
{
    fixture f;
    setup(&f, 1, 0);
    sh_weight_store *ws = store(&f, true);
    sh_err err = {0};
    assert_int_equal(sh_weight_store_register(ws, 0, f.pa, &err), 0);
    assert_int_equal(sh_weight_store_register(ws, 1, f.pb, &err), 0);
    sh_weight_store_stats st;
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.n_entries, 4);
    assert_int_equal(st.n_dedup_hits, 2);
    assert_int_equal(st.n_packs, 6);
    assert_int_equal(st.n_device_entries, 0);
    size_t w0 = 4000, w1 = 20000, w2 = 1200;
    assert_int_equal(st.host_cache_bytes, w0 + 2 * w1 + w2);
    assert_int_equal(sh_allocator_stats(f.d.pinned).in_use, w0 + 2 * w1 + w2);   /* pinned host memory */

    sh_weight_model_stats ms;
    sh_weight_store_model_stats(ws, 0, &ms);
    assert_true(ms.registered && !ms.resident);
    assert_int_equal(ms.bytes, al(w0) + al(w1) + al(w2));
    assert_int_equal(ms.shared_bytes, al(w0) + al(w2));
    assert_int_equal(ms.unique_bytes, al(w1));
    unsigned char set[4] = {1, 1, 0, 0};
    assert_int_equal(sh_weight_store_set_bytes(ws, set), al(w0) + 2 * al(w1) + al(w2));
    assert_int_equal(sh_weight_store_bytes_to_load(ws, 1), al(w0) + al(w1) + al(w2));

    void *pa[16], *pb[16];
    assert_int_equal(sh_weight_store_load(ws, 0, f.pa, pa, &err), 0);
    assert_int_equal(sh_weight_store_bytes_to_load(ws, 1), al(w1));
    assert_int_equal(sh_weight_store_load(ws, 1, NULL, pb, &err), 0);   /* all cached: no program needed */
    assert_ptr_equal(pa[widx(f.ga, 0)], pb[widx(f.gb, 0)]);
    assert_ptr_equal(pa[widx(f.ga, 2)], pb[widx(f.gb, 2)]);
    assert_ptr_not_equal(pa[widx(f.ga, 1)], pb[widx(f.gb, 1)]);
    assert_null(pa[0]);   /* x is not a weight */
    /* The device holds the packed bytes (the fake flips bit 7 of every 4th byte). */
    unsigned char expect[4];
    memcpy(expect, f.ga->tensors[widx(f.ga, 1)].data, 4);
    expect[3] ^= 0x80;
    assert_memory_equal(pa[widx(f.ga, 1)], expect, 4);
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.n_device_entries, 4);
    assert_int_equal(st.device_bytes, al(w0) + 2 * al(w1) + al(w2));
    assert_int_equal(st.shared_saved_bytes, al(w0) + al(w2));
    assert_int_equal(st.n_uploads, 4);
    assert_int_equal(st.n_packs, 6);

    /* Evicting A keeps what B shares, at the same addresses. */
    sh_weight_store_unload(ws, 0);
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.n_device_entries, 3);
    assert_int_equal(st.device_bytes, al(w0) + al(w1) + al(w2));
    assert_int_equal(st.shared_saved_bytes, 0);
    assert_int_equal(sh_weight_store_bytes_to_load(ws, 0), al(w1));
    void *pb2[16];
    assert_int_equal(sh_weight_store_load(ws, 1, NULL, pb2, &err), 0);   /* already resident */
    assert_memory_equal(pb, pb2, sizeof(void *) * (size_t)f.gb->n_tensors);

    /* Re-admitting A is one upload from the cache: no repack. */
    assert_int_equal(sh_weight_store_load(ws, 0, NULL, pa, &err), 0);
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.n_packs, 6);
    assert_int_equal(st.n_uploads, 5);
    assert_ptr_equal(pa[widx(f.ga, 0)], pb[widx(f.gb, 0)]);

    sh_weight_store_forget(ws, 1);
    sh_weight_store_model_stats(ws, 0, &ms);
    assert_int_equal(ms.shared_bytes, 0);
    assert_int_equal(ms.unique_bytes, ms.bytes);
    sh_weight_store_destroy(ws);
    teardown(&f);
}

static void without_cache_packs_again(void **state)
{
    fixture f;
    setup(&f, 0, 0);
    sh_weight_store *ws = store(&f, false);
    sh_err err = {0};
    void *p[16];
    assert_int_equal(sh_weight_store_load(ws, 0, f.pa, p, &err), 0);   /* registers on the way */
    sh_weight_store_stats st;
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.host_cache_bytes, 0);
    assert_int_equal(st.n_packs, 6);   /* hash at register, again at upload */
    assert_int_equal(sh_weight_store_load(ws, 1, f.pb, p, &err), 0);
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.n_device_entries, 4);
    assert_true(f.d.n_downloads >= 2);   /* dedup compared against the device copies */
    sh_weight_store_unload(ws, 0);
    assert_int_equal(sh_weight_store_load(ws, 0, NULL, p, &err), SHOAL_ERR_INVALID_ARG);   /* needs the program */
    assert_int_equal(sh_weight_store_load(ws, 0, f.pa, p, &err), 0);
    sh_weight_store_destroy(ws);
    teardown(&f);
}

static void budget_refusal_changes_nothing(void **state)
{
    fixture f;
    /* Room for A (one 8 KiB chunk + one 20 KiB chunk, +255 slack each) and not B's own w1. */
    setup(&f, 0, 8192 + 20224 + 2 * 255 + 4096);
    sh_weight_store *ws = store(&f, true);
    sh_err err = {0};
    void *p[16];
    assert_int_equal(sh_weight_store_load(ws, 0, f.pa, p, &err), 0);
    sh_weight_store_stats before, after;
    sh_weight_store_get_stats(ws, &before);
    size_t dev_before = sh_allocator_stats(f.d.device).in_use;
    assert_int_equal(sh_weight_store_load(ws, 1, f.pb, p, &err), SHOAL_ERR_BUDGET);
    assert_non_null(strstr(err.msg, "needs"));
    assert_non_null(strstr(err.msg, "available"));
    sh_weight_store_get_stats(ws, &after);
    assert_int_equal(after.device_bytes, before.device_bytes);
    assert_int_equal(after.n_device_entries, before.n_device_entries);
    assert_int_equal(after.n_entries, before.n_entries);   /* B was not registered before: rolled back */
    assert_int_equal(sh_allocator_stats(f.d.device).in_use, dev_before);
    sh_weight_model_stats ms;
    sh_weight_store_model_stats(ws, 1, &ms);
    assert_false(ms.registered);
    assert_false(ms.resident);
    /* Evicting A makes room; B then loads and shares nothing with the evicted copy. */
    sh_weight_store_unload(ws, 0);
    assert_int_equal(sh_weight_store_load(ws, 1, f.pb, p, &err), 0);
    sh_weight_store_destroy(ws);
    teardown(&f);
}

/* Fail the Nth host allocation, the Nth device buffer, or the Nth pack, for every N, during
 * register + load of both models: a status comes back, a failed model is not resident, and
 * after destroy every allocator is back to where it started. */
static void every_failure_is_clean(void **state)
{
    for (int mode = 0; mode < 3; mode++) {
        for (long n = 0; n < 80; n++) {
            fixture f;
            setup(&f, mode == 1, 0);
            size_t base = sh_allocator_stats(f.a).in_use;
            sh_weight_store *ws = store(&f, mode != 2);
            if (mode == 0)
                sh_allocator_fail_after(f.a, n, 0);
            else if (mode == 1)
                f.d.fail_buffer_after = n;
            else
                f.d.fail_pack_after = n;
            sh_err err = {0};
            void *p[16];
            int rc[3];
            rc[0] = sh_weight_store_register(ws, 0, f.pa, &err);
            rc[1] = sh_weight_store_load(ws, 0, f.pa, p, &err);
            rc[2] = sh_weight_store_load(ws, 1, f.pb, p, &err);
            sh_allocator_fail_after(f.a, -1, 0);
            f.d.fail_buffer_after = -1;
            f.d.fail_pack_after = -1;
            if (n == 0)
                assert_true(rc[0] || rc[1]);   /* the injection did fire */
            for (int i = 0; i < 3; i++)
                assert_true(rc[i] == 0 || rc[i] == SHOAL_ERR_NO_MEMORY || rc[i] == SHOAL_ERR_BACKEND);
            sh_weight_model_stats ms;
            sh_weight_store_model_stats(ws, 1, &ms);
            assert_int_equal(ms.resident, rc[2] == 0);
            sh_weight_store_stats st;
            sh_weight_store_get_stats(ws, &st);
            /* Device bytes are exactly those of the entries of resident models. */
            unsigned char set[4] = {0};
            sh_weight_store_model_stats(ws, 0, &ms);
            set[0] = ms.resident;
            set[1] = rc[2] == 0;
            if (set[0] || set[1])
                assert_int_equal(st.device_bytes, sh_weight_store_set_bytes(ws, set));
            else
                assert_int_equal(st.device_bytes, 0);
            /* After a failure everything still works. */
            assert_int_equal(sh_weight_store_load(ws, 1, f.pb, p, &err), 0);
            sh_weight_store_destroy(ws);
            assert_int_equal(sh_allocator_stats(f.a).in_use, base);
            teardown(&f);
        }
    }
}

/* A backend that computes on host memory (the CPU) takes the cached packed bytes as its
 * resident weights: no device buffer, no upload, the same addresses on every re-admission,
 * while the weights budget is charged and released exactly as for a copy. */
static void host_backend_uses_cached_bytes_in_place(void **state)
{
    (void)state;
    fixture f;
    size_t w0 = 4000, w1 = 20000, w2 = 1200;
    setup(&f, 0, al64(w0) + 2 * al64(w1) + al64(w2));   /* no host_alloc: host memory is the device */
    sh_weight_store_params prm = {.alloc = f.a, .backend = f.be, .budget = f.b, .alignment = 64,
                                  .chunk_bytes = 64, .host_cache = true, .host_is_device = true,
                                  .max_models = 4};
    sh_weight_store *ws = NULL;
    sh_err err = {0};
    assert_int_equal(sh_weight_store_create(&prm, &ws, &err), 0);
    assert_int_equal(sh_weight_store_register(ws, 0, f.pa, &err), 0);
    assert_int_equal(sh_weight_store_register(ws, 1, f.pb, &err), 0);
    size_t cached = sh_allocator_stats(f.a).in_use;
    void *pa[16], *pb[16], *pa2[16];
    for (int i = 0; i < 16; i++)
        pa[i] = pb[i] = pa2[i] = (void *)(uintptr_t)0xdeadbeef;
    assert_int_equal(sh_weight_store_load(ws, 0, f.pa, pa, &err), 0);
    assert_int_equal(sh_weight_store_load(ws, 1, NULL, pb, &err), 0);
    assert_int_equal(f.d.n_buffer_allocs, 0);
    assert_int_equal(f.d.n_uploads, 0);
    assert_int_equal(sh_allocator_stats(f.d.device).in_use, 0);
    assert_int_equal(sh_allocator_stats(f.a).in_use, cached);   /* nothing copied */
    /* The resident bytes are the packed ones (the fake flips bit 7 of every 4th byte). */
    unsigned char expect[4];
    memcpy(expect, f.ga->tensors[widx(f.ga, 1)].data, 4);
    expect[3] ^= 0x80;
    assert_memory_equal(pa[widx(f.ga, 1)], expect, 4);
    assert_ptr_equal(pa[widx(f.ga, 0)], pb[widx(f.gb, 0)]);
    assert_ptr_not_equal(pa[widx(f.ga, 1)], pb[widx(f.gb, 1)]);
    sh_budget_stats bs;
    sh_budget_get_stats(f.b, &bs);
    assert_int_equal(bs.in_use[SH_MEM_WEIGHTS], al64(w0) + 2 * al64(w1) + al64(w2));
    /* The budget is full: a third model's weights would not fit, as with copies. */
    assert_false(sh_budget_fits(f.b, SH_MEM_WEIGHTS, 64));

    /* Evicting A releases its unique weight's charge; its bytes stay in the cache, and
     * re-admitting it gives the very same addresses without an upload. */
    sh_weight_store_unload(ws, 0);
    sh_budget_get_stats(f.b, &bs);
    assert_int_equal(bs.in_use[SH_MEM_WEIGHTS], al64(w0) + al64(w1) + al64(w2));
    assert_int_equal(sh_weight_store_bytes_to_load(ws, 0), al64(w1));
    assert_int_equal(sh_weight_store_load(ws, 0, NULL, pa2, &err), 0);
    assert_memory_equal(pa, pa2, sizeof(void *) * (size_t)f.ga->n_tensors);
    assert_int_equal(f.d.n_uploads, 0);
    sh_weight_store_stats st;
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.device_bytes, al64(w0) + 2 * al64(w1) + al64(w2));
    assert_int_equal(st.n_uploads, 5);
    sh_weight_store_destroy(ws);
    teardown(&f);
}

/* host_is_device is ignored where the backend has its own host memory (a GPU): copies. */
static void device_backend_ignores_host_is_device(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 1, 0);
    sh_weight_store_params prm = {.alloc = f.a, .backend = f.be, .budget = f.b, .alignment = 256,
                                  .chunk_bytes = 8192, .host_cache = true, .host_is_device = true,
                                  .max_models = 4};
    sh_weight_store *ws = NULL;
    sh_err err = {0};
    assert_int_equal(sh_weight_store_create(&prm, &ws, &err), 0);
    void *pa[16];
    assert_int_equal(sh_weight_store_load(ws, 0, f.pa, pa, &err), 0);
    assert_int_equal(f.d.n_uploads, 3);
    assert_true(sh_allocator_stats(f.d.device).in_use > 0);
    sh_weight_store_destroy(ws);
    teardown(&f);
}

/* A model with 40 weights of 640 KiB (25 MiB: enough to be packed on threads), for the
 * threaded prepack below. */
enum { BIG_WEIGHTS = 40, BIG_FLOATS = 160 * 1024 };

static sh_graph *big_model(sh_allocator *a)
{
    int floats[BIG_WEIGHTS];
    unsigned seeds[BIG_WEIGHTS];
    for (int i = 0; i < BIG_WEIGHTS; i++) {
        floats[i] = BIG_FLOATS;
        seeds[i] = 977u * (unsigned)i + 5u;
    }
    return conv_chain(a, "big", BIG_WEIGHTS, floats, seeds);
}

/* Packed on four threads, a large model gives what one thread gives: the first model packs on
 * the caller's thread (register), the second, the same graph, on four (prepack), and every one
 * of its weights deduplicates against the first, byte for byte. Each weight is named once to
 * `kept`. A pack that fails midway fails the prepack with the backend's message, leaves
 * nothing behind (teardown counts the pinned bytes) and the store packs the model again. */
static void prepack_on_threads_matches_one_thread(void **state)
{
    (void)state;
    fixture f;
    setup(&f, 1, 0);
    sh_graph *g = big_model(f.a);
    sh_program *p = syn_compile(f.a, g, 0);
    sh_weight_store_params prm = {.alloc = f.a, .backend = f.be, .budget = f.b, .alignment = 256,
                                  .chunk_bytes = 8192, .host_cache = true, .max_models = 4, .pack_threads = 4};
    sh_weight_store *ws = NULL;
    sh_err err = {0};
    assert_int_equal(sh_weight_store_create(&prm, &ws, &err), 0);
    assert_int_equal(sh_weight_store_register(ws, 0, p, &err), 0);

    f.d.fail_pack_after = 17;
    kept_log k = {.g = g, .mu = PTHREAD_MUTEX_INITIALIZER};
    sh_weight_prepack *pk = NULL;
    assert_int_equal(sh_weight_store_prepack(ws, p, kept_source, &k, &pk, &err), SHOAL_ERR_BACKEND);
    assert_null(pk);
    assert_non_null(strstr(err.msg, "fake pack failed"));
    assert_true(k.n < BIG_WEIGHTS);

    memset(&k, 0, sizeof k);
    k.g = g;
    pthread_mutex_init(&k.mu, NULL);
    unsigned long packs_before = f.d.n_packs;
    assert_int_equal(sh_weight_store_prepack(ws, p, kept_source, &k, &pk, &err), 0);
    assert_int_equal(f.d.n_packs - packs_before, BIG_WEIGHTS);
    assert_int_equal(k.n, BIG_WEIGHTS);
    for (int i = 0; i < BIG_WEIGHTS; i++)
        assert_int_equal(k.seen[widx(g, i)], 1);
    assert_int_equal(sh_weight_store_register_prepacked(ws, 1, p, pk, &err), 0);
    sh_weight_store_stats st;
    sh_weight_store_get_stats(ws, &st);
    assert_int_equal(st.n_entries, BIG_WEIGHTS);
    assert_int_equal(st.n_dedup_hits, BIG_WEIGHTS);
    sh_weight_store_destroy(ws);
    sh_program_release(f.a, p);
    sh_graph_destroy(g);
    teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identical_weights_are_stored_once),
        cmocka_unit_test(prepack_tells_when_sources_are_free),
        cmocka_unit_test(prepack_on_threads_matches_one_thread),
        cmocka_unit_test(without_cache_packs_again),
        cmocka_unit_test(host_backend_uses_cached_bytes_in_place),
        cmocka_unit_test(device_backend_ignores_host_is_device),
        cmocka_unit_test(budget_refusal_changes_nothing),
        cmocka_unit_test(every_failure_is_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
