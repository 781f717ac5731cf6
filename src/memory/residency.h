/* Residency: which models are on the device, and which leave when another needs room.
 *
 * The manager knows N models by id (0..n-1) and, through callbacks the runtime supplies,
 * what a set of models needs on the device together (`footprint`: their weights counted once
 * however many of them share them, plus the shared activation arena the largest plan needs),
 * how to load one model and how to unload one. It never allocates device memory itself.
 *
 * An admission is planned before anything changes: the bytes the model adds to the resident
 * set are compared with what the budget has free; if they do not fit, victims are chosen (see
 * residency.c for the policy) until they do, and only then are the victims unloaded and the
 * model loaded. If no choice of victims makes room, SHOAL_ERR_BUDGET names the bytes needed
 * and available and nothing changed. Models bound into a set (sh_residency_bind: a hand
 * landmarker's palm detector and landmark model) are admitted, evicted and idle-unloaded
 * together: both resident or neither.
 *
 * Concurrency model: one execution context per thread; every residency change (admit, evict,
 * tick, prefetch) happens under the manager's one mutex, load/unload callbacks included, so
 * two threads never pick the same bytes. A run holds a reference (sh_residency_acquire ..
 * sh_residency_release) on each model it uses: a referenced model is never evicted, so a
 * model cannot leave mid-run. Runs themselves do not hold the lock.
 *
 *   if (sh_residency_acquire(r, id, now, &err) == 0) {   // admits if needed
 *       ...run the model...
 *       sh_residency_release(r, id, now);
 *   }
 *   sh_residency_tick(r, now);                          // from the monitor thread
 *
 * Times are seconds from any monotonic origin, passed in by the caller (tests use their own). */
#ifndef SHOAL_MEMORY_RESIDENCY_H
#define SHOAL_MEMORY_RESIDENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"
#include "memory/budget.h"

typedef struct sh_residency sh_residency;

typedef struct sh_residency_callbacks {
    void *user;
    /* Device bytes the models with set[i] != 0 need together. Must be monotone (adding a model
     * never lowers it). Called under the manager's lock. */
    size_t (*footprint)(void *user, const unsigned char *set, int n_models);
    /* Makes `model` resident (weights uploaded, arena grown). 0 or a status with err set. */
    int (*load)(void *user, int model, sh_err *err);
    /* Releases what load took for `model` (shared weights stay while others use them). */
    void (*unload)(void *user, int model);
} sh_residency_callbacks;

typedef struct sh_residency_model {
    const char *name;        /* copied; NULL = "model <id>" */
    int priority;            /* higher stays longer; victims are taken lowest first */
    bool pinned;             /* never evicted (critical models: blind_road, traffic_light) */
    double idle_timeout_s;   /* unloaded by tick() after this long unused; 0 = never */
} sh_residency_model;

typedef struct sh_residency_model_stats {
    bool resident, pinned;
    int refs;                      /* runs holding it now */
    double last_use;
    unsigned long loads, evictions, idle_unloads;
    uint64_t swap_in_ns_total, swap_in_ns_last;
} sh_residency_model_stats;

typedef struct sh_residency_stats {
    int n_resident;
    unsigned long loads, evictions, idle_unloads, refused;
} sh_residency_stats;

/* The budget gives the free bytes (sh_budget_available(SH_MEM_WEIGHTS)); it must outlive the
 * manager, as must cb.user. Free with sh_residency_destroy(). */
int sh_residency_create(sh_allocator *a, sh_budget *budget, const sh_residency_callbacks *cb, int n_models,
                        sh_residency **out, sh_err *err);
/* Does not unload anything (the runtime tears models down itself). Accepts NULL. */
void sh_residency_destroy(sh_residency *r);

int sh_residency_configure(sh_residency *r, int model, const sh_residency_model *cfg, sh_err *err);
int sh_residency_set_pinned(sh_residency *r, int model, bool pinned);
/* Binds `models` (n >= 2, none resident, none in a set yet) into one set called `name`
 * (copied): admitting any member admits every member or none, the budget check counts them
 * together before anything is evicted, SHOAL_ERR_BUDGET names the set, and the set is evicted
 * or idle-unloaded whole (never while a member is pinned or referenced). References stay per
 * model. SHOAL_ERR_STATE when a model is resident or already bound; nothing changes then. */
int sh_residency_bind(sh_residency *r, const int *models, int n, const char *name, sh_err *err);

/* Makes `model` and the rest of its set resident, evicting others if needed (plan first, see
 * above). 0 when resident afterwards; SHOAL_ERR_BUDGET with nothing changed when no eviction
 * makes room; a load callback's status when the load itself fails (victims chosen for it stay
 * unloaded, members of the set loaded before the failure are unloaded again). */
int sh_residency_admit(sh_residency *r, int model, double now, sh_err *err);
/* admit + take a reference for a run. Every success pairs with one sh_residency_release(). */
int sh_residency_acquire(sh_residency *r, int model, double now, sh_err *err);
void sh_residency_release(sh_residency *r, int model, double now);
/* Unloads `model` (with the rest of its set) now. SHOAL_ERR_STATE, nothing unloaded, when
 * it or a member of its set is referenced or pinned. */
int sh_residency_evict(sh_residency *r, int model, sh_err *err);
/* Unloads every unreferenced, unpinned model idle past its timeout (a set when all its resident
 * members are); returns how many models. */
int sh_residency_tick(sh_residency *r, double now);
/* Admits each listed model that fits without evicting anything but idle-expired models;
 * returns how many are resident afterwards (others are skipped, never an error). */
int sh_residency_prefetch(sh_residency *r, const int *models, int n, double now);

bool sh_residency_is_resident(sh_residency *r, int model);
void sh_residency_model_get_stats(sh_residency *r, int model, sh_residency_model_stats *out);
void sh_residency_get_stats(sh_residency *r, sh_residency_stats *out);

#endif
