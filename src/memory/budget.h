/* Device memory budgets: every device byte shoal takes is charged here first.
 *
 * One sh_budget per device. Device kinds (weights, activations, workspace, staging) share
 * the device limit; the host-side cache of packed weights has its own limit. Charges carry a
 * model id so reports can say who holds what (SH_BUDGET_SHARED for the shared activation
 * arena and other common memory). sh_budget_reserve() checks and charges in one step under
 * the lock, so two threads cannot both take the last free bytes; on SHOAL_ERR_BUDGET nothing
 * changed and the message names the bytes needed and available.
 *
 *   sh_budget *b;
 *   sh_budget_create(alloc, "cuda:0", 6ull << 30, 512ull << 20, 8, &b, &err);
 *   if (sh_budget_reserve(b, SH_MEM_WEIGHTS, model, bytes, &err) == 0) {
 *       ...buffer_alloc; on its failure sh_budget_release(b, SH_MEM_WEIGHTS, model, bytes)...
 *   }
 *
 * Thread-safe: every call takes the budget's mutex. */
#ifndef SHOAL_MEMORY_BUDGET_H
#define SHOAL_MEMORY_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"

typedef enum sh_mem_kind {
    SH_MEM_WEIGHTS = 0,
    SH_MEM_ACTIVATIONS,
    SH_MEM_WORKSPACE,
    SH_MEM_STAGING,
    SH_MEM_HOST_CACHE,      /* host memory: counted against host_limit, not the device limit */
    SH_MEM_KIND_COUNT
} sh_mem_kind;

const char *sh_mem_kind_name(sh_mem_kind k);   /* "weights", ... */

#define SH_BUDGET_SHARED (-1)   /* model id for memory no single model owns */

typedef struct sh_budget sh_budget;

typedef struct sh_budget_stats {
    size_t device_limit;                  /* 0 = unlimited */
    size_t host_limit;                    /* 0 = unlimited */
    size_t device_in_use, device_peak;    /* sum over the device kinds */
    size_t in_use[SH_MEM_KIND_COUNT];
    size_t peak[SH_MEM_KIND_COUNT];
    unsigned long n_reserved, n_refused;
} sh_budget_stats;

/* What a hook sees after every successful charge or release (a copy taken under the lock). */
typedef struct sh_budget_event {
    sh_mem_kind kind;
    int model;
    size_t bytes;
    bool charge;                          /* false for a release */
    size_t device_in_use, device_limit;
    size_t host_in_use, host_limit;
} sh_budget_event;

/* Called under the budget's lock: it must not call back into this budget. */
typedef void (*sh_budget_hook)(void *user, const sh_budget_event *ev);

/* max_models: per-model attribution for ids 0..max_models-1. Free with sh_budget_destroy(). */
int sh_budget_create(sh_allocator *a, const char *device_name, size_t device_limit, size_t host_limit,
                     int max_models, sh_budget **out, sh_err *err);
void sh_budget_destroy(sh_budget *b);                                    /* accepts NULL */

/* Charges `bytes` of `kind` to `model` if they fit under the kind's limit. Returns 0, or
 * SHOAL_ERR_BUDGET ("needs N bytes ..., M available") with nothing changed, or
 * SHOAL_ERR_INVALID_ARG for a model id out of range. */
int sh_budget_reserve(sh_budget *b, sh_mem_kind kind, int model, size_t bytes, sh_err *err);
/* Gives back a charge made with the same kind and model. Releasing more than was charged is
 * a programmer error (assert); in release builds it clamps at zero. */
void sh_budget_release(sh_budget *b, sh_mem_kind kind, int model, size_t bytes);

/* Bytes still available for `kind` (SIZE_MAX when its limit is 0). */
size_t sh_budget_available(sh_budget *b, sh_mem_kind kind);
/* Whether `bytes` more of `kind` would fit now; changes nothing. */
bool sh_budget_fits(sh_budget *b, sh_mem_kind kind, size_t bytes);
/* A new device limit. Lowering it below what is in use refuses further charges until enough
 * is released; nothing is freed by this call. */
void sh_budget_set_limit(sh_budget *b, size_t device_limit, size_t host_limit);

void sh_budget_get_stats(sh_budget *b, sh_budget_stats *out);
/* Bytes of `kind` charged to `model` (SH_BUDGET_SHARED included); 0 for unknown ids. */
size_t sh_budget_model_in_use(sh_budget *b, int model, sh_mem_kind kind);
const char *sh_budget_device_name(const sh_budget *b);

/* Installs (or with NULL removes) the hook. */
void sh_budget_set_hook(sh_budget *b, sh_budget_hook hook, void *user);

#endif
