/* Internal accessors; see introspect.h. sh_runtime_create_internal lives in runtime.c. */
#include "runtime/introspect.h"
#include "runtime/runtime-impl.h"

const sh_config *sh_runtime_config(shoal_runtime_t rt) { return rt->cfg; }
sh_allocator *sh_runtime_allocator(shoal_runtime_t rt) { return rt->alloc; }
sh_budget *sh_runtime_budget(shoal_runtime_t rt) { return rt->budget; }
sh_weight_store *sh_runtime_weights(shoal_runtime_t rt) { return rt->weights; }
sh_residency *sh_runtime_residency(shoal_runtime_t rt) { return rt->residency; }
const char *sh_runtime_backend_name(shoal_runtime_t rt) { return rt->backend.iface->name; }
int sh_runtime_context_count(shoal_runtime_t rt) { return rt->n_contexts; }
size_t sh_runtime_arena_bytes(shoal_runtime_t rt) { return rt->arena_bytes; }
bool sh_runtime_concurrent(shoal_runtime_t rt) { return rt->concurrent; }
size_t sh_runtime_plan_max_bytes(shoal_runtime_t rt) { return rt->plan_max_bytes; }

int sh_runtime_model_lane(shoal_runtime_t rt, int model, size_t *arena_offset)
{
    if (model < 0 || model >= rt->n_models)
        return -1;
    if (arena_offset)
        *arena_offset = rt->models[model].arena_off;
    return rt->models[model].lane;
}
uint64_t sh_runtime_device_total(shoal_runtime_t rt) { return sh_rt_device_total_bytes(rt); }

const sh_plan *sh_runtime_model_plan(shoal_runtime_t rt, int model)
{
    return model >= 0 && model < rt->n_models ? rt->models[model].plan : NULL;
}

const sh_graph *sh_runtime_model_graph(shoal_runtime_t rt, int model)
{
    return model >= 0 && model < rt->n_models ? rt->models[model].graph : NULL;
}
