/* Internal hooks for shoal bench; see bench_hooks.h. */
#include "runtime/bench_hooks.h"
#include "runtime/runtime-impl.h"

/* Defined in src/backends/cpu/cpu_backend.c (a bench hook, not part of backend.h). */
double *sh_backend_cpu_profile(sh_backend *b, bool on);

double sh_runtime_create_ms(shoal_runtime_t rt)
{
    return rt->create_ms;
}

int sh_runtime_load_times(shoal_runtime_t rt, int model, sh_rt_load_times *out)
{
    if (model < 0 || model >= rt->n_models)
        return SHOAL_ERR_NOT_FOUND;
    const sh_rt_model *m = &rt->models[model];
    *out = (sh_rt_load_times){.parse_ms = m->parse_ms,
                              .optimize_ms = m->optimize_ms,
                              .compile_ms = m->compile_ms,
                              .plan_ms = m->plan_ms,
                              .pack_ms = m->pack_ms};
    return 0;
}

double *sh_runtime_cpu_profile(shoal_runtime_t rt, bool on)
{
    return sh_backend_cpu_profile(&rt->backend, on);
}
