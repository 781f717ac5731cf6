/* Internal view of a runtime for tools and tests (`shoal plan`, fault injection, budget
 * checks); not part of the public API and not stable.
 *
 *   sh_runtime_internal_params ip = {.alloc = my_alloc, .budget_hook = check, .budget_hook_user = &st};
 *   shoal_runtime_params p = shoal_runtime_default_params();
 *   p.config_path = "configs/aiglasses.yaml";
 *   p.preload = 0;                                  // plan only: compile, plan, register weights
 *   shoal_runtime_t rt;
 *   if (sh_runtime_create_internal(&p, &ip, &rt) == 0) {
 *       const sh_plan *plan = sh_runtime_model_plan(rt, 0);
 *       ...
 *       shoal_runtime_destroy(rt);                  // my_alloc is not destroyed
 *   }
 *
 * Everything returned is borrowed from the runtime and valid while it lives. Reading is safe
 * while no other thread changes residency; the budget and weight store have their own locks. */
#ifndef SHOAL_RUNTIME_INTROSPECT_H
#define SHOAL_RUNTIME_INTROSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/alloc.h"
#include "memory/budget.h"
#include "memory/residency.h"
#include "memory/weights.h"
#include "plan/plan.h"
#include "runtime/config.h"
#include "shoal.h"

typedef struct sh_runtime_internal_params {
    /* Host allocator for everything the runtime owns (CPU device buffers included). Borrowed:
     * the caller destroys it after shoal_runtime_destroy. NULL = the runtime's own. */
    sh_allocator *alloc;
    /* Installed on the device budget before its first charge, so it sees every one. */
    sh_budget_hook budget_hook;
    void *budget_hook_user;
    /* Called once the backend exists, before anything uses it: may replace *be with a wrapper
     * (e.g. one whose buffer_alloc fails on purpose). The wrapper's destroy must destroy what
     * it wraps. On failure it must leave *be as it was. */
    int (*wrap_backend)(void *user, sh_backend *be, sh_err *err);
    void *wrap_backend_user;
    /* The backend's N-th device buffer allocation fails as out of memory (CUDA; 0 = never):
     * the error paths of create, load and run under a real device. */
    long backend_fail_alloc_nth;
} sh_runtime_internal_params;

/* shoal_runtime_create with internal options (ip may be NULL: the same as the public call). */
int sh_runtime_create_internal(const shoal_runtime_params *p, const sh_runtime_internal_params *ip,
                               shoal_runtime_t *out);

const sh_config *sh_runtime_config(shoal_runtime_t rt);
sh_allocator *sh_runtime_allocator(shoal_runtime_t rt);
sh_budget *sh_runtime_budget(shoal_runtime_t rt);
sh_weight_store *sh_runtime_weights(shoal_runtime_t rt);
sh_residency *sh_runtime_residency(shoal_runtime_t rt);
const char *sh_runtime_backend_name(shoal_runtime_t rt);
/* Execution contexts, each with one shared activation arena of sh_runtime_arena_bytes. */
int sh_runtime_context_count(shoal_runtime_t rt);
size_t sh_runtime_arena_bytes(shoal_runtime_t rt);
/* Whether a mode's models run at once (inference.concurrent_models); the largest plan, which
 * is the arena when they run in turn; model i's lane and arena offset (0 and 0 in turn). */
bool sh_runtime_concurrent(shoal_runtime_t rt);
size_t sh_runtime_plan_max_bytes(shoal_runtime_t rt);
int sh_runtime_model_lane(shoal_runtime_t rt, int model, size_t *arena_offset);
/* Device (CPU: host) memory in bytes, what a percentage budget refers to; 0 if unknown. */
uint64_t sh_runtime_device_total(shoal_runtime_t rt);

/* Model i's activation plan and optimized graph (NULL for a bad index). */
const sh_plan *sh_runtime_model_plan(shoal_runtime_t rt, int model);
const sh_graph *sh_runtime_model_graph(shoal_runtime_t rt, int model);

#endif
