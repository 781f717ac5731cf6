/* Residency manager. See residency.h for the API and the concurrency model.
 *
 * Sets
 * ----
 * Some models are only useful together: MediaPipe's hand landmarker is a palm detector and a
 * landmark model, and a frame that finds a palm needs both. Admitting them one after the other
 * would let the first admission evict models for a stage that is useless alone, and a refusal
 * of the second would leave half a hand holding the bytes. So models can be bound into a set
 * (sh_residency_bind), and the unit the policy below works on is the set, not the model: a
 * set's need is the growth of the resident footprint with every member in it, computed before
 * anything is evicted; its members are loaded together (a member whose load fails takes the
 * members loaded before it back out); it is offered as a victim whole, only when none of its
 * members is pinned or held by a run; and tick() unloads it only when all of its resident
 * members have been idle past their timeouts. A model bound to nothing is a set of one, which
 * is the case the rest of this comment describes.
 *
 * Eviction policy
 * ---------------
 * shoal runs a handful of models (five in the AIGlasses configuration), not millions of keys,
 * so unlike Redis' approximated LRU (evict.c samples a few keys because scanning them all
 * would cost too much) we can afford to look at every model on every admission and choose
 * exactly. The order in which resident models are offered as victims is:
 *
 *   1. Never a model a run holds a reference on (it would vanish mid-run), never a pinned
 *      model (the critical ones the configuration preloads), never the model being admitted.
 *   2. Idle-expired models first, oldest first: they would be unloaded by the next tick()
 *      anyway, so taking them costs nothing the policy has not already decided.
 *   3. Then the rest by priority, lowest first, and within one priority least recently used
 *      first. Priority comes first because modes make recency misleading: the hand model in
 *      shopping mode may be used less often than a detector yet be the one the user waits on.
 *      A set ranks by its highest priority and its most recent use.
 *
 * Victims are taken in that order only until the model fits, measured with the runtime's
 * footprint() of the resident set: evicting a model that shares most of its weights with
 * the newcomer frees little, and footprint() sees that because it counts shared weights once
 * per set. If even evicting every candidate leaves too little room, the admission fails with
 * SHOAL_ERR_BUDGET before anything is unloaded: planning first means a refused load never
 * costs the models that were working. Only after the plan succeeds are the victims unloaded,
 * then the model loaded; a load callback that fails at that point (a device out of memory the
 * budget did not foresee) leaves the victims unloaded and reports the callback's status.
 *
 * prefetch() is the polite version: it may only take idle-expired victims, so warming a model
 * the next mode will need never pushes out one the current mode is using. */
#include "memory/residency.h"

#include <float.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct rmodel {
    char *name;
    char *set_name;          /* on a set's leader only: what errors call the set */
    int leader;              /* lowest id of its set; its own id when bound to nothing */
    int priority;
    bool pinned;
    double idle_timeout;
    bool resident;
    int refs;
    double last_use;
    unsigned long loads, evictions, idle_unloads;
    uint64_t swap_ns_total, swap_ns_last;
} rmodel;

struct sh_residency {
    sh_allocator *alloc;
    pthread_mutex_t lock;
    sh_budget *budget;
    sh_residency_callbacks cb;
    int n;
    rmodel *m;
    unsigned char *set;      /* scratch: the resident set being simulated */
    int *order;              /* scratch: victim candidates, by set leader */
    sh_residency_stats st;
};

int sh_residency_create(sh_allocator *a, sh_budget *budget, const sh_residency_callbacks *cb, int n_models,
                        sh_residency **out, sh_err *err)
{
    *out = NULL;
    if (!budget || !cb || !cb->footprint || !cb->load || !cb->unload || n_models <= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: needs a budget, footprint/load/unload callbacks "
                                                   "and at least one model");
    sh_residency *r = sh_calloc(a, 1, sizeof *r);
    if (!r)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "residency: out of memory");
    r->alloc = a;
    r->budget = budget;
    r->cb = *cb;
    r->n = n_models;
    r->m = sh_calloc(a, (size_t)n_models, sizeof *r->m);
    r->set = sh_calloc(a, (size_t)n_models, 1);
    r->order = sh_calloc(a, (size_t)n_models, sizeof(int));
    if (!r->m || !r->set || !r->order) {
        sh_free(a, r->m);
        sh_free(a, r->set);
        sh_free(a, r->order);
        sh_free(a, r);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "residency: out of memory");
    }
    for (int i = 0; i < n_models; i++)
        r->m[i].leader = i;
    pthread_mutex_init(&r->lock, NULL);
    *out = r;
    return 0;
}

void sh_residency_destroy(sh_residency *r)
{
    if (!r)
        return;
    for (int i = 0; i < r->n; i++) {
        sh_free(r->alloc, r->m[i].name);
        sh_free(r->alloc, r->m[i].set_name);
    }
    pthread_mutex_destroy(&r->lock);
    sh_free(r->alloc, r->m);
    sh_free(r->alloc, r->set);
    sh_free(r->alloc, r->order);
    sh_free(r->alloc, r);
}

static bool bad_id(const sh_residency *r, int model) { return !r || model < 0 || model >= r->n; }

static const char *name_of(const sh_residency *r, int i, char *buf, size_t cap)
{
    if (r->m[i].name)
        return r->m[i].name;
    snprintf(buf, cap, "model %d", i);
    return buf;
}

/* What errors call the set `model` belongs to: the model's own name when it is alone, else
 * "set 'NAME' (a + b)". */
static const char *label_of(const sh_residency *r, int model, char *buf, size_t cap)
{
    int lead = r->m[model].leader;
    const char *set_name = r->m[lead].set_name;
    if (!set_name)
        return name_of(r, model, buf, cap);
    size_t at = (size_t)snprintf(buf, cap, "set '%s' (", set_name);
    char nb[32];
    for (int i = 0, k = 0; i < r->n && at < cap; i++)
        if (r->m[i].leader == lead)
            at += (size_t)snprintf(buf + at, cap - at, "%s%s", k++ ? " + " : "", name_of(r, i, nb, sizeof nb));
    if (at < cap)
        snprintf(buf + at, cap - at, ")");
    return buf;
}

int sh_residency_configure(sh_residency *r, int model, const sh_residency_model *cfg, sh_err *err)
{
    if (bad_id(r, model) || !cfg)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: bad model id %d", model);
    char *nm = NULL;
    if (cfg->name && !(nm = sh_strdup(r->alloc, cfg->name)))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "residency: out of memory");
    pthread_mutex_lock(&r->lock);
    rmodel *m = &r->m[model];
    sh_free(r->alloc, m->name);
    m->name = nm;
    m->priority = cfg->priority;
    m->pinned = cfg->pinned;
    m->idle_timeout = cfg->idle_timeout_s;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

int sh_residency_bind(sh_residency *r, const int *models, int n, const char *name, sh_err *err)
{
    if (!r || !models || n < 2 || !name)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: a set needs a name and at least two models");
    int lead = r->n;
    for (int k = 0; k < n; k++) {
        if (bad_id(r, models[k]))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: set '%s': bad model id %d", name, models[k]);
        for (int q = 0; q < k; q++)
            if (models[q] == models[k])
                return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: set '%s' lists model %d twice", name,
                               models[k]);
        if (models[k] < lead)
            lead = models[k];
    }
    char *nm = sh_strdup(r->alloc, name);
    if (!nm)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "residency: out of memory");
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    char nb[32];
    for (int k = 0; k < n && !rc; k++) {
        const rmodel *m = &r->m[models[k]];
        if (m->leader != models[k] || m->set_name)
            rc = sh_errf(err, SHOAL_ERR_STATE, "residency: set '%s': %s already belongs to a set", name,
                         name_of(r, models[k], nb, sizeof nb));
        else if (m->resident)
            rc = sh_errf(err, SHOAL_ERR_STATE, "residency: set '%s': %s is resident (bind before admitting)",
                         name, name_of(r, models[k], nb, sizeof nb));
    }
    if (!rc) {
        for (int k = 0; k < n; k++)
            r->m[models[k]].leader = lead;
        r->m[lead].set_name = nm;
        nm = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    sh_free(r->alloc, nm);
    return rc;
}

int sh_residency_set_pinned(sh_residency *r, int model, bool pinned)
{
    if (bad_id(r, model))
        return SHOAL_ERR_INVALID_ARG;
    pthread_mutex_lock(&r->lock);
    r->m[model].pinned = pinned;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static bool expired(const rmodel *m, double now)
{
    return m->idle_timeout > 0 && now - m->last_use >= m->idle_timeout;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void unload_locked(sh_residency *r, int i)
{
    r->cb.unload(r->cb.user, i);
    r->m[i].resident = false;
}

/* How a set ranks as a victim (see the comment at the top). */
typedef struct set_rank {
    bool any_resident, movable, expired;
    int priority;
    double last_use;
} set_rank;

static set_rank rank_of(const sh_residency *r, int lead, double now)
{
    set_rank k = {.movable = true, .expired = true, .priority = INT_MIN, .last_use = -DBL_MAX};
    for (int i = lead; i < r->n; i++) {
        const rmodel *m = &r->m[i];
        if (m->leader != lead || !m->resident)
            continue;
        k.any_resident = true;
        k.movable = k.movable && !m->pinned && m->refs == 0;
        k.expired = k.expired && expired(m, now);
        if (m->priority > k.priority)
            k.priority = m->priority;
        if (m->last_use > k.last_use)
            k.last_use = m->last_use;
    }
    return k;
}

/* Victim candidates in policy order, as set leaders, never `lead`'s own set; returns their
 * count. */
static int candidates(sh_residency *r, int lead, double now, bool only_expired)
{
    int n = 0;
    for (int i = 0; i < r->n; i++) {
        if (r->m[i].leader != i || i == lead)
            continue;
        set_rank k = rank_of(r, i, now);
        if (!k.any_resident || !k.movable || (only_expired && !k.expired))
            continue;
        r->order[n++] = i;
    }
    /* Insertion sort: n is the number of models, a handful. */
    for (int a = 1; a < n; a++) {
        int v = r->order[a], b = a;
        set_rank y = rank_of(r, v, now);
        while (b > 0) {
            set_rank x = rank_of(r, r->order[b - 1], now);
            bool y_first = y.expired != x.expired ? y.expired
                           : y.expired          ? y.last_use < x.last_use
                           : y.priority != x.priority ? y.priority < x.priority
                                                      : y.last_use < x.last_use;
            if (!y_first)
                break;
            r->order[b] = r->order[b - 1];
            b--;
        }
        r->order[b] = v;
    }
    return n;
}

static void mark_set(sh_residency *r, int lead, unsigned char v)
{
    for (int i = lead; i < r->n; i++)
        if (r->m[i].leader == lead)
            r->set[i] = v;
}

/* Bytes `lead`'s whole set adds to the set in r->set (where none of its members is). */
static size_t growth(sh_residency *r, int lead)
{
    size_t base = r->cb.footprint(r->cb.user, r->set, r->n);
    mark_set(r, lead, 1);
    size_t with = r->cb.footprint(r->cb.user, r->set, r->n);
    mark_set(r, lead, 0);
    return with > base ? with - base : 0;
}

/* Loads every member of `lead`'s set not yet resident, or none: a member whose load fails
 * takes the ones this call loaded (marked 2 in r->set, which the caller cleared) back out. */
static int load_set_locked(sh_residency *r, int lead, double now, sh_err *err)
{
    for (int i = lead; i < r->n; i++) {
        rmodel *m = &r->m[i];
        if (m->leader != lead || m->resident)
            continue;
        uint64_t t0 = mono_ns();
        int rc = r->cb.load(r->cb.user, i, err);
        if (rc) {
            for (int j = lead; j < i; j++)
                if (r->set[j] == 2)
                    unload_locked(r, j);
            char nb[32], lb[160];
            if (r->m[lead].set_name)
                return sh_err_prefix(err, rc, "%s: %s: ", label_of(r, i, lb, sizeof lb),
                                     name_of(r, i, nb, sizeof nb));
            return sh_err_prefix(err, rc, "%s: ", name_of(r, i, nb, sizeof nb));
        }
        uint64_t dt = mono_ns() - t0;
        r->set[i] = 2;   /* loaded by this call, for the rollback above */
        m->resident = true;
        m->last_use = now;
        m->loads++;
        m->swap_ns_last = dt;
        m->swap_ns_total += dt;
        r->st.loads++;
    }
    return 0;
}

static int admit_locked(sh_residency *r, int model, double now, bool only_expired, sh_err *err)
{
    rmodel *m = &r->m[model];
    int lead = m->leader;
    bool whole = true;
    for (int i = lead; i < r->n; i++)
        if (r->m[i].leader == lead && !r->m[i].resident)
            whole = false;
    if (whole) {
        m->last_use = now;
        return 0;
    }
    for (int i = 0; i < r->n; i++)
        r->set[i] = r->m[i].resident && r->m[i].leader != lead;
    size_t avail = sh_budget_available(r->budget, SH_MEM_WEIGHTS);
    /* Members already resident (only after a failed load the budget did not foresee) hold
     * their bytes: growth() would count them again, so they count as free here. */
    for (int i = lead; i < r->n; i++)
        if (r->m[i].leader == lead && r->m[i].resident) {
            size_t before = r->cb.footprint(r->cb.user, r->set, r->n);
            r->set[i] = 1;
            size_t after = r->cb.footprint(r->cb.user, r->set, r->n);
            r->set[i] = 0;
            size_t held = after > before ? after - before : 0;
            avail = avail > SIZE_MAX - held ? SIZE_MAX : avail + held;
        }
    size_t need = growth(r, lead);
    size_t avail0 = avail, need0 = need;
    int nc = candidates(r, lead, now, only_expired), nv = 0;
    /* Simulate evictions in policy order until the set fits. */
    while (need > avail && nv < nc) {
        int v = r->order[nv++];
        size_t before = r->cb.footprint(r->cb.user, r->set, r->n);
        mark_set(r, v, 0);
        size_t after = r->cb.footprint(r->cb.user, r->set, r->n);
        size_t freed = before > after ? before - after : 0;
        avail = avail > SIZE_MAX - freed ? SIZE_MAX : avail + freed;
        need = growth(r, lead);
    }
    char lb[160];
    if (need > avail) {
        r->st.refused++;
        int busy = 0, pinned = 0;
        for (int i = 0; i < r->n; i++)
            if (r->m[i].leader != lead && r->m[i].resident) {
                busy += r->m[i].refs > 0;
                pinned += r->m[i].pinned && r->m[i].refs == 0;
            }
        return sh_errf(err, SHOAL_ERR_BUDGET,
                       "%s: needs %zu bytes, %zu available (%zu after evicting %d %s model%s; %d in use, %d pinned)",
                       label_of(r, model, lb, sizeof lb), need0, avail0, avail, nc,
                       only_expired ? "idle-expired" : "evictable", nc == 1 ? "" : "s", busy, pinned);
    }
    for (int k = 0; k < nv; k++)
        for (int i = r->order[k]; i < r->n; i++)
            if (r->m[i].leader == r->order[k] && r->m[i].resident) {
                unload_locked(r, i);
                r->m[i].evictions++;
                r->st.evictions++;
            }
    memset(r->set, 0, (size_t)r->n);
    int rc = load_set_locked(r, lead, now, err);
    if (!rc)
        m->last_use = now;
    return rc;
}

int sh_residency_admit(sh_residency *r, int model, double now, sh_err *err)
{
    if (bad_id(r, model))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: bad model id %d", model);
    pthread_mutex_lock(&r->lock);
    int rc = admit_locked(r, model, now, false, err);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int sh_residency_acquire(sh_residency *r, int model, double now, sh_err *err)
{
    if (bad_id(r, model))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: bad model id %d", model);
    pthread_mutex_lock(&r->lock);
    int rc = admit_locked(r, model, now, false, err);
    if (!rc)
        r->m[model].refs++;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

void sh_residency_release(sh_residency *r, int model, double now)
{
    if (bad_id(r, model))
        return;
    pthread_mutex_lock(&r->lock);
    if (r->m[model].refs > 0)
        r->m[model].refs--;
    r->m[model].last_use = now;
    pthread_mutex_unlock(&r->lock);
}

int sh_residency_evict(sh_residency *r, int model, sh_err *err)
{
    if (bad_id(r, model))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "residency: bad model id %d", model);
    pthread_mutex_lock(&r->lock);
    int lead = r->m[model].leader, rc = 0;
    char nb[32], lb[160];
    for (int i = lead; i < r->n && !rc; i++) {
        const rmodel *m = &r->m[i];
        if (m->leader != lead || (m->refs == 0 && !m->pinned))
            continue;
        if (i == model || !r->m[lead].set_name)
            rc = sh_errf(err, SHOAL_ERR_STATE, "%s is %s", name_of(r, i, nb, sizeof nb),
                         m->refs > 0 ? "in use by a run" : "pinned");
        else
            rc = sh_errf(err, SHOAL_ERR_STATE, "%s: %s is %s", label_of(r, model, lb, sizeof lb),
                         name_of(r, i, nb, sizeof nb), m->refs > 0 ? "in use by a run" : "pinned");
    }
    for (int i = lead; i < r->n && !rc; i++)
        if (r->m[i].leader == lead && r->m[i].resident) {
            unload_locked(r, i);
            r->m[i].evictions++;
            r->st.evictions++;
        }
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int sh_residency_tick(sh_residency *r, double now)
{
    if (!r)
        return 0;
    int n = 0;
    pthread_mutex_lock(&r->lock);
    for (int lead = 0; lead < r->n; lead++) {
        if (r->m[lead].leader != lead)
            continue;
        set_rank k = rank_of(r, lead, now);
        if (!k.any_resident || !k.movable || !k.expired)
            continue;
        for (int i = lead; i < r->n; i++) {
            rmodel *m = &r->m[i];
            if (m->leader == lead && m->resident) {
                unload_locked(r, i);
                m->idle_unloads++;
                r->st.idle_unloads++;
                n++;
            }
        }
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

int sh_residency_prefetch(sh_residency *r, const int *models, int n, double now)
{
    if (!r || !models)
        return 0;
    int ok = 0;
    pthread_mutex_lock(&r->lock);
    for (int i = 0; i < n; i++)
        if (!bad_id(r, models[i]) && admit_locked(r, models[i], now, true, NULL) == 0)
            ok++;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

bool sh_residency_is_resident(sh_residency *r, int model)
{
    if (bad_id(r, model))
        return false;
    pthread_mutex_lock(&r->lock);
    bool v = r->m[model].resident;
    pthread_mutex_unlock(&r->lock);
    return v;
}

void sh_residency_model_get_stats(sh_residency *r, int model, sh_residency_model_stats *out)
{
    memset(out, 0, sizeof *out);
    if (bad_id(r, model))
        return;
    pthread_mutex_lock(&r->lock);
    const rmodel *m = &r->m[model];
    out->resident = m->resident;
    out->pinned = m->pinned;
    out->refs = m->refs;
    out->last_use = m->last_use;
    out->loads = m->loads;
    out->evictions = m->evictions;
    out->idle_unloads = m->idle_unloads;
    out->swap_in_ns_total = m->swap_ns_total;
    out->swap_in_ns_last = m->swap_ns_last;
    pthread_mutex_unlock(&r->lock);
}

void sh_residency_get_stats(sh_residency *r, sh_residency_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    *out = r->st;
    for (int i = 0; i < r->n; i++)
        out->n_resident += r->m[i].resident;
    pthread_mutex_unlock(&r->lock);
}
