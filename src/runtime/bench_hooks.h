/* Internal hooks for `shoal bench` (src/cli/cmd_bench.c): the load phases the runtime timed
 * while creating itself, and the CPU backend's per-op timer. Not public, not stable.
 *
 *   sh_rt_load_times lt;
 *   sh_runtime_load_times(rt, 0, &lt);           // parse, optimize, compile, plan, pack of model 0
 *   double *ms = sh_runtime_cpu_profile(rt, 1);  // [SH_OP_COUNT] ms per op type, zeroed; NULL off CPU
 *   ...runs...
 *   sh_runtime_cpu_profile(rt, 0);               // off; ms is freed
 *
 * The profile adds two clock reads per node; only the bench turns it on. */
#ifndef SHOAL_RUNTIME_BENCH_HOOKS_H
#define SHOAL_RUNTIME_BENCH_HOOKS_H

#include <stdbool.h>

#include "shoal.h"

typedef struct sh_rt_load_times {
    double parse_ms;      /* ONNX protobuf -> sh_graph */
    double optimize_ms;   /* shape inference, folding, fusions */
    double compile_ms;    /* output checks + backend compile (kernel choice, params) */
    double plan_ms;       /* activation liveness and arena layout */
    double pack_ms;       /* weight packing, hashing, dedup, host cache copy */
} sh_rt_load_times;

/* Milliseconds shoal_runtime_create took (config, backend, every model's phases, arenas,
 * preload when asked). */
double sh_runtime_create_ms(shoal_runtime_t rt);
/* 0, or SHOAL_ERR_NOT_FOUND for a bad index. */
int sh_runtime_load_times(shoal_runtime_t rt, int model, sh_rt_load_times *out);
/* Per-op-type time accumulation on the CPU backend: on returns the zeroed [SH_OP_COUNT] array
 * of milliseconds (valid until turned off or on again), off returns NULL. NULL as well when
 * the runtime does not run on the CPU. Not thread-safe: profile with one caller only. */
double *sh_runtime_cpu_profile(shoal_runtime_t rt, bool on);

#endif
