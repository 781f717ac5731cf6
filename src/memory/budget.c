/* Device budgets. See budget.h. */
#include "memory/budget.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

struct sh_budget {
    sh_allocator *alloc;
    pthread_mutex_t lock;
    char *name;
    size_t device_limit, host_limit;
    size_t device_in_use, device_peak;
    size_t in_use[SH_MEM_KIND_COUNT], peak[SH_MEM_KIND_COUNT];
    unsigned long n_reserved, n_refused;
    int max_models;
    size_t *per_model;      /* [(max_models + 1) * SH_MEM_KIND_COUNT], row 0 = SH_BUDGET_SHARED */
    sh_budget_hook hook;
    void *hook_user;
};

const char *sh_mem_kind_name(sh_mem_kind k)
{
    static const char *const names[] = {"weights", "activations", "workspace", "staging", "host cache"};
    _Static_assert(sizeof names / sizeof names[0] == SH_MEM_KIND_COUNT, "update the kind names");
    return (unsigned)k < SH_MEM_KIND_COUNT ? names[k] : "?";
}

int sh_budget_create(sh_allocator *a, const char *device_name, size_t device_limit, size_t host_limit,
                     int max_models, sh_budget **out, sh_err *err)
{
    *out = NULL;
    if (max_models < 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "budget: max_models %d < 0", max_models);
    sh_budget *b = sh_calloc(a, 1, sizeof *b);
    if (!b)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "budget: out of memory");
    b->alloc = a;
    b->name = sh_strdup(a, device_name ? device_name : "device");
    b->per_model = sh_calloc(a, (size_t)max_models + 1, sizeof(size_t) * SH_MEM_KIND_COUNT);
    if (!b->name || !b->per_model) {
        sh_free(a, b->name);
        sh_free(a, b->per_model);
        sh_free(a, b);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "budget: out of memory");
    }
    pthread_mutex_init(&b->lock, NULL);
    b->device_limit = device_limit;
    b->host_limit = host_limit;
    b->max_models = max_models;
    *out = b;
    return 0;
}

void sh_budget_destroy(sh_budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    sh_free(b->alloc, b->name);
    sh_free(b->alloc, b->per_model);
    sh_free(b->alloc, b);
}

static size_t *model_row(sh_budget *b, int model)
{
    return &b->per_model[(size_t)(model + 1) * SH_MEM_KIND_COUNT];
}

/* Free bytes for `kind` under the lock. */
static size_t avail_locked(const sh_budget *b, sh_mem_kind kind)
{
    if (kind == SH_MEM_HOST_CACHE)
        return b->host_limit == 0 ? SIZE_MAX
               : b->host_limit > b->in_use[kind] ? b->host_limit - b->in_use[kind] : 0;
    return b->device_limit == 0 ? SIZE_MAX
           : b->device_limit > b->device_in_use ? b->device_limit - b->device_in_use : 0;
}

static void notify(sh_budget *b, sh_mem_kind kind, int model, size_t bytes, bool charge)
{
    if (!b->hook)
        return;
    sh_budget_event ev = {kind, model, bytes, charge, b->device_in_use, b->device_limit,
                          b->in_use[SH_MEM_HOST_CACHE], b->host_limit};
    b->hook(b->hook_user, &ev);
}

int sh_budget_reserve(sh_budget *b, sh_mem_kind kind, int model, size_t bytes, sh_err *err)
{
    if (!b || (unsigned)kind >= SH_MEM_KIND_COUNT || model < SH_BUDGET_SHARED || model >= b->max_models)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "budget: bad kind %d or model id %d", (int)kind, model);
    pthread_mutex_lock(&b->lock);
    size_t avail = avail_locked(b, kind);
    if (bytes > avail) {
        b->n_refused++;
        size_t limit = kind == SH_MEM_HOST_CACHE ? b->host_limit : b->device_limit;
        size_t used = kind == SH_MEM_HOST_CACHE ? b->in_use[kind] : b->device_in_use;
        pthread_mutex_unlock(&b->lock);
        char who[32];
        if (model == SH_BUDGET_SHARED)
            snprintf(who, sizeof who, "shared use");
        else
            snprintf(who, sizeof who, "model %d", model);
        return sh_errf(err, SHOAL_ERR_BUDGET,
                       "%s: needs %zu bytes of %s for %s, %zu available (limit %zu, %zu in use)", b->name, bytes,
                       sh_mem_kind_name(kind), who, avail, limit, used);
    }
    /* bytes <= avail <= limit - in_use, or the limit is 0 and sizes are real allocations:
     * the sums below cannot wrap. */
    b->in_use[kind] += bytes;
    if (b->in_use[kind] > b->peak[kind])
        b->peak[kind] = b->in_use[kind];
    if (kind != SH_MEM_HOST_CACHE) {
        b->device_in_use += bytes;
        if (b->device_in_use > b->device_peak)
            b->device_peak = b->device_in_use;
    }
    model_row(b, model)[kind] += bytes;
    b->n_reserved++;
    notify(b, kind, model, bytes, true);
    pthread_mutex_unlock(&b->lock);
    return 0;
}

static void sub_clamp(size_t *v, size_t n)
{
    assert(*v >= n && "budget: releasing more than was charged");
    *v = *v >= n ? *v - n : 0;
}

void sh_budget_release(sh_budget *b, sh_mem_kind kind, int model, size_t bytes)
{
    if (!b || bytes == 0 || (unsigned)kind >= SH_MEM_KIND_COUNT || model < SH_BUDGET_SHARED ||
        model >= b->max_models)
        return;
    pthread_mutex_lock(&b->lock);
    sub_clamp(&b->in_use[kind], bytes);
    if (kind != SH_MEM_HOST_CACHE)
        sub_clamp(&b->device_in_use, bytes);
    sub_clamp(&model_row(b, model)[kind], bytes);
    notify(b, kind, model, bytes, false);
    pthread_mutex_unlock(&b->lock);
}

size_t sh_budget_available(sh_budget *b, sh_mem_kind kind)
{
    pthread_mutex_lock(&b->lock);
    size_t v = avail_locked(b, kind);
    pthread_mutex_unlock(&b->lock);
    return v;
}

bool sh_budget_fits(sh_budget *b, sh_mem_kind kind, size_t bytes)
{
    return bytes <= sh_budget_available(b, kind);
}

void sh_budget_set_limit(sh_budget *b, size_t device_limit, size_t host_limit)
{
    pthread_mutex_lock(&b->lock);
    b->device_limit = device_limit;
    b->host_limit = host_limit;
    pthread_mutex_unlock(&b->lock);
}

void sh_budget_get_stats(sh_budget *b, sh_budget_stats *out)
{
    pthread_mutex_lock(&b->lock);
    out->device_limit = b->device_limit;
    out->host_limit = b->host_limit;
    out->device_in_use = b->device_in_use;
    out->device_peak = b->device_peak;
    memcpy(out->in_use, b->in_use, sizeof out->in_use);
    memcpy(out->peak, b->peak, sizeof out->peak);
    out->n_reserved = b->n_reserved;
    out->n_refused = b->n_refused;
    pthread_mutex_unlock(&b->lock);
}

size_t sh_budget_model_in_use(sh_budget *b, int model, sh_mem_kind kind)
{
    if (!b || model < SH_BUDGET_SHARED || model >= b->max_models || (unsigned)kind >= SH_MEM_KIND_COUNT)
        return 0;
    pthread_mutex_lock(&b->lock);
    size_t v = model_row(b, model)[kind];
    pthread_mutex_unlock(&b->lock);
    return v;
}

const char *sh_budget_device_name(const sh_budget *b) { return b->name; }

void sh_budget_set_hook(sh_budget *b, sh_budget_hook hook, void *user)
{
    pthread_mutex_lock(&b->lock);
    b->hook = hook;
    b->hook_user = user;
    pthread_mutex_unlock(&b->lock);
}
