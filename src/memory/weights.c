/* Weight store: content-addressed packed weights, refcounted per model. See weights.h. */
#include "memory/weights.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <xxhash.h>

#include "memory/pool.h"

typedef struct entry {
    XXH128_hash_t hash;
    size_t bytes;
    void *host;        /* packed copy in the host cache, or NULL */
    void *dev;         /* device copy, or NULL; == host when it is the cached bytes (host_is_device) */
    int dev_refs;      /* tensor references from resident models */
    int reg_refs;      /* tensor references from registered models */
    int mark;          /* scratch for set computations, under the lock */
    bool live;
} entry;

typedef struct wmodel {
    bool registered, resident;
    int n_tensors;
    int *entry_of;     /* [n_tensors] entry index, -1 for tensors without a device weight */
} wmodel;

struct sh_weight_store {
    sh_weight_store_params prm;
    sh_allocator *alloc;
    pthread_mutex_t lock;
    sh_device_pool *pool;
    entry *e;
    int n_e, cap_e;
    wmodel *m;
    sh_weight_store_stats st;
};

int sh_weight_store_create(const sh_weight_store_params *prm, sh_weight_store **out, sh_err *err)
{
    *out = NULL;
    if (!prm || !prm->backend.iface || !prm->backend.iface->pack_weight || !prm->backend.iface->upload ||
        !prm->budget || prm->max_models <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: needs a backend that packs and uploads, a budget "
                                                   "and max_models > 0");
    sh_weight_store *ws = sh_calloc(prm->alloc, 1, sizeof *ws);
    if (!ws)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory");
    ws->prm = *prm;
    ws->alloc = prm->alloc;
    ws->prm.host_is_device = prm->host_is_device && prm->host_cache && !prm->backend.iface->host_alloc;
    if (!ws->prm.alignment)
        ws->prm.alignment = prm->backend.iface->alignment ? prm->backend.iface->alignment : 256;
    if (!ws->prm.chunk_bytes)
        ws->prm.chunk_bytes = (size_t)16 << 20;
    ws->m = sh_calloc(ws->alloc, (size_t)prm->max_models, sizeof *ws->m);
    int rc = ws->m ? 0 : sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory");
    if (!rc)
        rc = sh_device_pool_create(ws->alloc, &ws->prm.backend, prm->budget, SH_MEM_WEIGHTS, ws->prm.chunk_bytes,
                                   ws->prm.alignment, &ws->pool, err);
    if (rc) {
        sh_free(ws->alloc, ws->m);
        sh_free(ws->alloc, ws);
        return rc;
    }
    pthread_mutex_init(&ws->lock, NULL);
    *out = ws;
    return 0;
}

/* ---- host buffers ------------------------------------------------------------------- */

static void *host_get(sh_weight_store *ws, size_t n, sh_err *err)
{
    const sh_device_i *be = ws->prm.backend.iface;
    void *p = NULL;
    if (be->host_alloc) {
        if (be->host_alloc(ws->prm.backend.ctx, n, &p, err))
            return NULL;
        return p;
    }
    p = sh_alloc(ws->alloc, n);
    if (!p)
        sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of host memory for %zu packed bytes", n);
    return p;
}

static void host_put(sh_weight_store *ws, void *p)
{
    if (!p)
        return;
    const sh_device_i *be = ws->prm.backend.iface;
    if (be->host_alloc)
        be->host_free(ws->prm.backend.ctx, p);
    else
        sh_free(ws->alloc, p);
}

static size_t dev_size(const sh_weight_store *ws, size_t n) { return sh_align_up(n ? n : 1, ws->prm.alignment); }

/* ---- entries -------------------------------------------------------------------------- */

static void entry_drop_host(sh_weight_store *ws, entry *e)
{
    if (!e->host)
        return;
    host_put(ws, e->host);
    e->host = NULL;
    sh_budget_release(ws->prm.budget, SH_MEM_HOST_CACHE, SH_BUDGET_SHARED, e->bytes);
    ws->st.host_cache_bytes -= e->bytes;
}

static void entry_drop_dev(sh_weight_store *ws, entry *e)
{
    if (!e->dev)
        return;
    if (e->dev == e->host)
        sh_budget_release(ws->prm.budget, SH_MEM_WEIGHTS, SH_BUDGET_SHARED, dev_size(ws, e->bytes));
    else
        sh_device_pool_free(ws->pool, e->dev);
    e->dev = NULL;
    ws->st.device_bytes -= dev_size(ws, e->bytes);
    ws->st.n_device_entries--;
}

static void entry_maybe_free(sh_weight_store *ws, entry *e)
{
    if (e->dev_refs == 0)
        entry_drop_dev(ws, e);
    if (e->dev_refs == 0 && e->reg_refs == 0 && e->live) {
        entry_drop_host(ws, e);
        e->live = false;
        ws->st.n_entries--;
    }
}

/* Whether entry e holds exactly `buf`: compared against the host copy, else the device copy,
 * else (neither exists: a registered, non-resident, uncached entry) the 128-bit hash is
 * trusted for now and load compares again once a device copy exists. */
static int same_bytes(sh_weight_store *ws, const entry *e, const void *buf, bool *same, sh_err *err)
{
    if (e->host) {
        *same = memcmp(e->host, buf, e->bytes) == 0;
        return 0;
    }
    if (!e->dev || !ws->prm.backend.iface->download) {
        *same = true;
        return 0;
    }
    void *tmp = sh_alloc(ws->alloc, e->bytes);
    if (!tmp)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory comparing %zu bytes", e->bytes);
    int rc = ws->prm.backend.iface->download(ws->prm.backend.ctx, tmp, e->dev, e->bytes, err);
    if (!rc)
        *same = memcmp(tmp, buf, e->bytes) == 0;
    sh_free(ws->alloc, tmp);
    return rc;
}

/* Packed bytes of one tensor while it registers: from prepack (maybe only the hash) or packed
 * here. `host_mem` says which allocator they came from. */
typedef struct packed {
    void *buf;
    bool host_mem;
    XXH128_hash_t hash;
} packed;

static void packed_free(sh_weight_store *ws, packed *k)
{
    if (k->host_mem)
        host_put(ws, k->buf);
    else
        sh_free(ws->alloc, k->buf);
    k->buf = NULL;
}

static int pack(sh_weight_store *ws, const sh_program *p, int t, bool for_cache, void **out, XXH128_hash_t *h,
                sh_err *err);

/* Makes sure k holds the bytes (from the allocator `host_mem` names) when prepack kept only the
 * hash: packed again, which must give the same hash. */
static int packed_need_bytes(sh_weight_store *ws, const sh_program *p, int t, bool host_mem, packed *k, sh_err *err)
{
    if (k->buf && k->host_mem == host_mem)
        return 0;
    packed again = {.host_mem = host_mem};
    int rc = pack(ws, p, t, host_mem, &again.buf, &again.hash, err);
    if (rc)
        return rc;
    if (!XXH128_isEqual(again.hash, k->hash)) {
        packed_free(ws, &again);
        return sh_errf(err, SHOAL_ERR_INTERNAL, "weight '%s': packing is not deterministic (hash changed)",
                       p->graph->tensors[t].name);
    }
    if (k->buf)
        packed_free(ws, k);
    *k = again;
    return 0;
}

/* Finds a live entry with these bytes or returns -1; counts hash collisions. */
static int find_entry(sh_weight_store *ws, const sh_program *p, int t, size_t n, packed *k, int *found, sh_err *err)
{
    /* A linear scan: a few thousand entries across all models, once per tensor at register. */
    *found = -1;
    for (int i = 0; i < ws->n_e; i++) {
        entry *e = &ws->e[i];
        if (!e->live || e->bytes != n || !XXH128_isEqual(e->hash, k->hash))
            continue;
        bool same = false;
        int rc = 0;
        if (!k->buf && (e->host || e->dev))   /* a comparison needs the bytes */
            rc = packed_need_bytes(ws, p, t, false, k, err);
        if (!rc)
            rc = same_bytes(ws, &ws->e[i], k->buf, &same, err);
        if (rc)
            return rc;
        if (same) {
            *found = i;
            return 0;
        }
        ws->st.n_hash_collisions++;
    }
    return 0;
}

static int new_entry(sh_weight_store *ws, sh_err *err)
{
    for (int i = 0; i < ws->n_e; i++)
        if (!ws->e[i].live) {
            memset(&ws->e[i], 0, sizeof ws->e[i]);
            return i;
        }
    if (ws->n_e == ws->cap_e) {
        int cap = ws->cap_e ? ws->cap_e * 2 : 64;
        entry *e = sh_realloc(ws->alloc, ws->e, sizeof *e * (size_t)cap);
        if (!e)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory for entries");
        ws->e = e;
        ws->cap_e = cap;
    }
    memset(&ws->e[ws->n_e], 0, sizeof ws->e[0]);
    return ws->n_e++;
}

/* Packs tensor t into a fresh host buffer (from the cache allocator when `for_cache`). */
static int pack_unlocked(sh_weight_store *ws, const sh_program *p, int t, bool host_mem, void **out,
                         XXH128_hash_t *h, sh_err *err);

static int pack(sh_weight_store *ws, const sh_program *p, int t, bool for_cache, void **out, XXH128_hash_t *h,
                sh_err *err)
{
    int rc = pack_unlocked(ws, p, t, for_cache, out, h, err);
    if (!rc)
        ws->st.n_packs++;
    return rc;
}

/* ---- prepack: the pure half of register, run outside the lock ----------------------- */

struct sh_weight_prepack {
    int n_tensors;
    bool host_mem;            /* buffers from the cache allocator (host_get) */
    unsigned long n_packs;
    bool *have;               /* [n_tensors] hash[t] computed */
    XXH128_hash_t *hash;      /* [n_tensors] */
    void **buf;               /* [n_tensors] packed bytes, kept only when the cache may take them */
};

void sh_weight_prepack_destroy(sh_weight_store *ws, sh_weight_prepack *pk)
{
    if (!pk)
        return;
    for (int t = 0; pk->buf && t < pk->n_tensors; t++) {
        if (!pk->buf[t])
            continue;
        if (pk->host_mem)
            host_put(ws, pk->buf[t]);
        else
            sh_free(ws->alloc, pk->buf[t]);
    }
    sh_free(ws->alloc, pk->have);
    sh_free(ws->alloc, pk->hash);
    sh_free(ws->alloc, pk->buf);
    sh_free(ws->alloc, pk);
}

/* Packs into a fresh buffer and hashes it: backend->pack_weight and XXH3 only, no store
 * state, so any number of models may do it at once. */
static int pack_unlocked(sh_weight_store *ws, const sh_program *p, int t, bool host_mem, void **out,
                         XXH128_hash_t *h, sh_err *err)
{
    size_t n = p->weight_bytes[t];
    void *buf = host_mem ? host_get(ws, n, err) : sh_alloc(ws->alloc, n);
    if (!buf)
        return host_mem ? (err ? err->status : SHOAL_ERR_NO_MEMORY)
                        : sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory packing %zu bytes", n);
    int rc = ws->prm.backend.iface->pack_weight(ws->prm.backend.ctx, p, t, buf, err);
    if (rc) {
        if (host_mem)
            host_put(ws, buf);
        else
            sh_free(ws->alloc, buf);
        return sh_err_prefix(err, rc, "weight '%s': ", p->graph->tensors[t].name);
    }
    *h = XXH3_128bits(buf, n);
    *out = buf;
    return 0;
}

/* One prepack's tensors, taken in turn by its threads. A tensor's pack reads only that
 * tensor, and each thread writes only the slots of the tensors it took. */
typedef struct prepack_job {
    sh_weight_store *ws;
    const sh_program *p;
    sh_weight_kept_fn kept;
    void *user;
    sh_weight_prepack *pk;
    atomic_int next;
    atomic_bool failed;
    pthread_mutex_t mu;     /* guards rc and err: the first failure is the one reported */
    int rc;
    sh_err err;
} prepack_job;

static void *prepack_worker(void *arg)
{
    prepack_job *j = arg;
    const sh_graph *g = j->p->graph;
    sh_weight_prepack *pk = j->pk;
    while (!atomic_load(&j->failed)) {
        int t = atomic_fetch_add(&j->next, 1);
        if (t >= g->n_tensors)
            break;
        if (!g->tensors[t].is_const || j->p->weight_bytes[t] == 0)
            continue;
        sh_err e = {0};
        int rc = pack_unlocked(j->ws, j->p, t, pk->host_mem, &pk->buf[t], &pk->hash[t], &e);
        if (rc) {
            pthread_mutex_lock(&j->mu);
            if (!j->rc) {
                j->rc = rc;
                j->err = e;
            }
            pthread_mutex_unlock(&j->mu);
            atomic_store(&j->failed, true);
            break;
        }
        pk->have[t] = true;
        /* Without a cache nothing would keep these bytes: only the hash is needed to register
         * (see take_packed), and five models' packed copies would raise peak memory. */
        if (!pk->host_mem) {
            sh_free(j->ws->alloc, pk->buf[t]);
            pk->buf[t] = NULL;
        } else if (j->kept) {
            j->kept(j->user, t);
        }
    }
    return NULL;
}

/* Below this many packed bytes a program packs on the caller's thread alone. */
#define PREPACK_PARALLEL_BYTES ((size_t)16 << 20)
#define PREPACK_MAX_THREADS 8

static int prepack_threads(const sh_weight_store *ws, const sh_program *p)
{
    size_t bytes = 0;
    for (int t = 0; t < p->graph->n_tensors; t++)
        if (p->graph->tensors[t].is_const)
            bytes += p->weight_bytes[t];
    int n = ws->prm.pack_threads < PREPACK_MAX_THREADS ? ws->prm.pack_threads : PREPACK_MAX_THREADS;
    return bytes >= PREPACK_PARALLEL_BYTES && n > 1 ? n : 1;
}

static int prepack_run(sh_weight_store *ws, const sh_program *p, sh_weight_kept_fn kept, void *user,
                       sh_weight_prepack *pk, sh_err *err)
{
    prepack_job j = {.ws = ws, .p = p, .kept = kept, .user = user, .pk = pk};
    atomic_init(&j.next, 0);
    atomic_init(&j.failed, false);
    pthread_mutex_init(&j.mu, NULL);
    pthread_t th[PREPACK_MAX_THREADS];
    int n_th = 0, want = prepack_threads(ws, p);
    /* A helper that cannot start leaves its share to the others; the caller is one of them. */
    while (n_th + 1 < want && pthread_create(&th[n_th], NULL, prepack_worker, &j) == 0)
        n_th++;
    prepack_worker(&j);
    for (int i = 0; i < n_th; i++)
        pthread_join(th[i], NULL);
    pthread_mutex_destroy(&j.mu);
    for (int t = 0; t < p->graph->n_tensors; t++)
        pk->n_packs += pk->have[t];
    if (j.rc && err)
        *err = j.err;
    return j.rc;
}

int sh_weight_store_prepack(sh_weight_store *ws, const sh_program *p, sh_weight_kept_fn kept, void *user,
                            sh_weight_prepack **out, sh_err *err)
{
    *out = NULL;
    const sh_graph *g = p->graph;
    size_t nt = (size_t)(g->n_tensors ? g->n_tensors : 1);
    sh_weight_prepack *pk = sh_calloc(ws->alloc, 1, sizeof *pk);
    if (pk) {
        pk->n_tensors = g->n_tensors;
        pk->host_mem = ws->prm.host_cache;
        pk->have = sh_calloc(ws->alloc, nt, sizeof *pk->have);
        pk->hash = sh_calloc(ws->alloc, nt, sizeof *pk->hash);
        pk->buf = sh_calloc(ws->alloc, nt, sizeof *pk->buf);
    }
    if (!pk || !pk->have || !pk->hash || !pk->buf) {
        sh_weight_prepack_destroy(ws, pk);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory packing a model");
    }
    int rc = prepack_run(ws, p, kept, user, pk, err);
    if (rc) {
        sh_weight_prepack_destroy(ws, pk);
        return rc;
    }
    *out = pk;
    return 0;
}

/* ---- register ------------------------------------------------------------------------- */

static void unregister_locked(sh_weight_store *ws, wmodel *m)
{
    for (int t = 0; m->entry_of && t < m->n_tensors; t++) {
        int i = m->entry_of[t];
        if (i < 0)
            continue;
        ws->e[i].reg_refs--;
        entry_maybe_free(ws, &ws->e[i]);
    }
    sh_free(ws->alloc, m->entry_of);
    m->entry_of = NULL;
    m->registered = false;
    m->n_tensors = 0;
}

/* Entry of one constant of a registering model: found by content, else new. The cache copy
 * is charged before it is kept; when the cache is off or full the packed bytes serve only for
 * hashing and comparing. */
static int register_tensor(sh_weight_store *ws, wmodel *m, const sh_program *p, int t, sh_weight_prepack *pk,
                           sh_err *err)
{
    size_t n = p->weight_bytes[t];
    bool cache = ws->prm.host_cache &&
                 sh_budget_reserve(ws->prm.budget, SH_MEM_HOST_CACHE, SH_BUDGET_SHARED, n, NULL) == 0;
    packed k = {.host_mem = cache};
    int rc = 0;
    if (pk && pk->have[t]) {
        k = (packed){.buf = pk->buf[t], .host_mem = pk->host_mem, .hash = pk->hash[t]};
        pk->buf[t] = NULL;
    } else {
        rc = pack(ws, p, t, cache, &k.buf, &k.hash, err);
    }
    int found = -1;
    if (!rc)
        rc = find_entry(ws, p, t, n, &k, &found, err);
    if (!rc && found < 0 && cache)
        rc = packed_need_bytes(ws, p, t, true, &k, err);
    if (!rc && found < 0) {
        found = new_entry(ws, err);
        if (found < 0)
            rc = found;
        else {
            entry *e = &ws->e[found];
            e->hash = k.hash;
            e->bytes = n;
            e->live = true;
            ws->st.n_entries++;
            if (cache) {
                e->host = k.buf;
                ws->st.host_cache_bytes += n;
                k.buf = NULL;
                cache = false;
            }
        }
    } else if (!rc) {
        ws->st.n_dedup_hits++;
    }
    if (!rc) {
        ws->e[found].reg_refs++;
        m->entry_of[t] = found;
    }
    if (k.buf)
        packed_free(ws, &k);
    if (cache)
        sh_budget_release(ws->prm.budget, SH_MEM_HOST_CACHE, SH_BUDGET_SHARED, n);
    return rc;
}

static int register_locked(sh_weight_store *ws, int model, const sh_program *p, sh_weight_prepack *pk, sh_err *err)
{
    wmodel *m = &ws->m[model];
    if (m->registered)
        return 0;
    if (!p)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: model %d is not registered and has no program", model);
    const sh_graph *g = p->graph;
    if (pk && pk->n_tensors != g->n_tensors)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: model %d: packed weights of another program", model);
    m->n_tensors = g->n_tensors;
    m->entry_of = sh_alloc(ws->alloc, sizeof(int) * (size_t)(g->n_tensors ? g->n_tensors : 1));
    if (!m->entry_of)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "weight store: out of memory registering model %d", model);
    for (int t = 0; t < g->n_tensors; t++)
        m->entry_of[t] = -1;
    if (pk)   /* the packs happened outside; counted as if done here */
        ws->st.n_packs += pk->n_packs;
    int rc = 0;
    for (int t = 0; t < g->n_tensors && !rc; t++)
        if (g->tensors[t].is_const && p->weight_bytes[t] != 0)
            rc = register_tensor(ws, m, p, t, pk, err);
    if (rc) {
        unregister_locked(ws, m);
        return sh_err_prefix(err, rc, "model %d: ", model);
    }
    m->registered = true;
    return 0;
}

int sh_weight_store_register(sh_weight_store *ws, int model, const sh_program *p, sh_err *err)
{
    if (!ws || model < 0 || model >= ws->prm.max_models)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: model id %d out of range", model);
    pthread_mutex_lock(&ws->lock);
    int rc = register_locked(ws, model, p, NULL, err);
    pthread_mutex_unlock(&ws->lock);
    return rc;
}

int sh_weight_store_register_prepacked(sh_weight_store *ws, int model, const sh_program *p, sh_weight_prepack *pk,
                                       sh_err *err)
{
    int rc;
    if (!ws || model < 0 || model >= ws->prm.max_models)
        rc = sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: model id %d out of range", model);
    else {
        pthread_mutex_lock(&ws->lock);
        rc = register_locked(ws, model, p, pk, err);
        pthread_mutex_unlock(&ws->lock);
    }
    sh_weight_prepack_destroy(ws, pk);
    return rc;
}

/* ---- load / unload -------------------------------------------------------------------- */

static void unref_dev(sh_weight_store *ws, wmodel *m, int upto)
{
    for (int t = 0; t < upto; t++) {
        int i = m->entry_of[t];
        if (i < 0)
            continue;
        ws->e[i].dev_refs--;
        ws->st.device_ref_bytes -= dev_size(ws, ws->e[i].bytes);
        entry_maybe_free(ws, &ws->e[i]);
    }
}

/* Puts entry i on the device from the host cache or by packing tensor t again. */
static int upload_entry(sh_weight_store *ws, int i, const sh_program *p, int t, sh_err *err)
{
    entry *e = &ws->e[i];
    const void *src = e->host;
    void *tmp = NULL;
    if (!src) {
        XXH128_hash_t h;
        if (!p)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: weight %d is not cached and no program was given", t);
        int rc = pack(ws, p, t, false, &tmp, &h, err);
        if (rc)
            return rc;
        e = &ws->e[i];
        if (!XXH128_isEqual(h, e->hash)) {
            sh_free(ws->alloc, tmp);
            return sh_errf(err, SHOAL_ERR_INTERNAL, "weight '%s': packing is not deterministic (hash changed)",
                           p->graph->tensors[t].name);
        }
        src = tmp;
    }
    void *dev = NULL;
    int rc;
    if (e->host && ws->prm.host_is_device && (uintptr_t)e->host % ws->prm.alignment == 0) {
        /* The cached bytes serve as they are; the budget still sees the weight arrive, so
         * residency plans and evicts exactly as with a copy. */
        rc = sh_budget_reserve(ws->prm.budget, SH_MEM_WEIGHTS, SH_BUDGET_SHARED,
                               dev_size(ws, e->bytes), err);
        if (rc)
            return rc;
        e->dev = e->host;
        ws->st.device_bytes += dev_size(ws, e->bytes);
        ws->st.n_device_entries++;
        ws->st.n_uploads++;
        return 0;
    }
    rc = sh_device_pool_alloc(ws->pool, e->bytes, &dev, err);
    if (!rc) {
        rc = ws->prm.backend.iface->upload(ws->prm.backend.ctx, dev, src, e->bytes, err);
        if (rc)
            sh_device_pool_free(ws->pool, dev);
    }
    sh_free(ws->alloc, tmp);
    if (rc)
        return rc;
    e->dev = dev;
    ws->st.device_bytes += dev_size(ws, e->bytes);
    ws->st.n_device_entries++;
    ws->st.n_uploads++;
    return 0;
}

int sh_weight_store_load(sh_weight_store *ws, int model, const sh_program *p, void **weight_ptrs, sh_err *err)
{
    if (!ws || model < 0 || model >= ws->prm.max_models)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: model id %d out of range", model);
    pthread_mutex_lock(&ws->lock);
    wmodel *m = &ws->m[model];
    bool was_registered = m->registered;
    int rc = register_locked(ws, model, p, NULL, err);
    if (!rc && p && p->graph->n_tensors != m->n_tensors)
        rc = sh_errf(err, SHOAL_ERR_INVALID_ARG, "weight store: model %d was registered with another program", model);
    int t = 0;
    if (!rc && !m->resident) {
        for (; t < m->n_tensors; t++) {
            int i = m->entry_of[t];
            if (i < 0)
                continue;
            if (!ws->e[i].dev) {
                rc = upload_entry(ws, i, p, t, err);
                if (rc)
                    break;
            }
            ws->e[i].dev_refs++;
            ws->st.device_ref_bytes += dev_size(ws, ws->e[i].bytes);
        }
        if (rc) {
            unref_dev(ws, m, t);
            if (!was_registered)
                unregister_locked(ws, m);
            rc = sh_err_prefix(err, rc, "model %d: ", model);
        } else {
            m->resident = true;
        }
    }
    if (!rc && weight_ptrs)
        for (int u = 0; u < m->n_tensors; u++)
            weight_ptrs[u] = m->entry_of[u] >= 0 ? ws->e[m->entry_of[u]].dev : NULL;
    pthread_mutex_unlock(&ws->lock);
    return rc;
}

void sh_weight_store_unload(sh_weight_store *ws, int model)
{
    if (!ws || model < 0 || model >= ws->prm.max_models)
        return;
    pthread_mutex_lock(&ws->lock);
    wmodel *m = &ws->m[model];
    if (m->resident) {
        unref_dev(ws, m, m->n_tensors);
        m->resident = false;
    }
    pthread_mutex_unlock(&ws->lock);
}

void sh_weight_store_forget(sh_weight_store *ws, int model)
{
    if (!ws || model < 0 || model >= ws->prm.max_models)
        return;
    sh_weight_store_unload(ws, model);
    pthread_mutex_lock(&ws->lock);
    if (ws->m[model].registered)
        unregister_locked(ws, &ws->m[model]);
    pthread_mutex_unlock(&ws->lock);
}

void sh_weight_store_destroy(sh_weight_store *ws)
{
    if (!ws)
        return;
    for (int i = 0; i < ws->prm.max_models; i++)
        sh_weight_store_forget(ws, i);
    /* Every entry went with its last reference; the pool is empty. */
    sh_device_pool_destroy(ws->pool);
    pthread_mutex_destroy(&ws->lock);
    sh_free(ws->alloc, ws->e);
    sh_free(ws->alloc, ws->m);
    sh_free(ws->alloc, ws);
}

/* ---- accounting ----------------------------------------------------------------------- */

size_t sh_weight_store_bytes_to_load(sh_weight_store *ws, int model)
{
    if (!ws || model < 0 || model >= ws->prm.max_models)
        return SIZE_MAX;
    pthread_mutex_lock(&ws->lock);
    wmodel *m = &ws->m[model];
    size_t n = SIZE_MAX;
    if (m->registered) {
        n = 0;
        for (int i = 0; i < ws->n_e; i++)
            ws->e[i].mark = 0;
        for (int t = 0; t < m->n_tensors; t++) {
            int i = m->entry_of[t];
            if (i >= 0 && !ws->e[i].dev && !ws->e[i].mark) {
                ws->e[i].mark = 1;
                n += dev_size(ws, ws->e[i].bytes);
            }
        }
    }
    pthread_mutex_unlock(&ws->lock);
    return n;
}

size_t sh_weight_store_set_bytes(sh_weight_store *ws, const unsigned char *set)
{
    if (!ws || !set)
        return 0;
    pthread_mutex_lock(&ws->lock);
    for (int i = 0; i < ws->n_e; i++)
        ws->e[i].mark = 0;
    size_t n = 0;
    for (int k = 0; k < ws->prm.max_models; k++) {
        wmodel *m = &ws->m[k];
        if (!set[k] || !m->registered)
            continue;
        for (int t = 0; t < m->n_tensors; t++) {
            int i = m->entry_of[t];
            if (i >= 0 && !ws->e[i].mark) {
                ws->e[i].mark = 1;
                n += dev_size(ws, ws->e[i].bytes);
            }
        }
    }
    pthread_mutex_unlock(&ws->lock);
    return n;
}

void sh_weight_store_get_stats(sh_weight_store *ws, sh_weight_store_stats *out)
{
    pthread_mutex_lock(&ws->lock);
    *out = ws->st;
    out->shared_saved_bytes = ws->st.device_ref_bytes - ws->st.device_bytes;
    sh_device_pool_stats ps;
    sh_device_pool_get_stats(ws->pool, &ps);
    out->pool_reserved_bytes = ps.reserved;
    pthread_mutex_unlock(&ws->lock);
}

void sh_weight_store_model_stats(sh_weight_store *ws, int model, sh_weight_model_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!ws || model < 0 || model >= ws->prm.max_models)
        return;
    pthread_mutex_lock(&ws->lock);
    wmodel *m = &ws->m[model];
    out->registered = m->registered;
    out->resident = m->resident;
    /* mark = this model's references to each entry; an entry is shared when other
     * registered models hold references too. */
    for (int i = 0; i < ws->n_e; i++)
        ws->e[i].mark = 0;
    for (int t = 0; m->registered && t < m->n_tensors; t++)
        if (m->entry_of[t] >= 0)
            ws->e[m->entry_of[t]].mark++;
    for (int i = 0; i < ws->n_e; i++) {
        entry *e = &ws->e[i];
        if (!e->mark)
            continue;
        size_t b = dev_size(ws, e->bytes);
        out->bytes += b;
        if (e->reg_refs > e->mark)
            out->shared_bytes += b;
        else
            out->unique_bytes += b;
    }
    pthread_mutex_unlock(&ws->lock);
}
