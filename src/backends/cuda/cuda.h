/* What the CUDA backend offers beyond backend.h. Only built with SHOAL_HAVE_CUDA: callers
 * guard their use with #ifdef SHOAL_HAVE_CUDA. */
#ifndef SHOAL_BACKENDS_CUDA_H
#define SHOAL_BACKENDS_CUDA_H

#include <stdint.h>
#include <stdio.h>

#include "backends/backend.h"

/* GPU time of one graph replay, split by kind of step (index < SH_CUDA_PROFILE_KINDS; names[k]
 * is NULL past the last kind): captures the program with an event between every two nodes,
 * replays it three times and keeps the last. For benchmarks and notes; synchronous. */
#define SH_CUDA_PROFILE_KINDS 18
int sh_cuda_profile(sh_backend *b, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                    double ms_by_kind[SH_CUDA_PROFILE_KINDS], int count_by_kind[SH_CUDA_PROFILE_KINDS],
                    const char **names, sh_err *err);

/* The steps of one graph replay with the program's own concurrency (an event after every step
 * on its stream), one line per step to `out`: stream, estimated start (its stream's previous
 * step or the latest input from another stream, whichever ended last), end and duration, us
 * from the replay's start; then the critical path (the chain of latest predecessors from the
 * last step) summed by kind of step. Events between steps cost PDL overlap: times run a little
 * long. For notes and A/B runs; synchronous. */
int sh_cuda_timeline(sh_backend *b, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                     FILE *out, sh_err *err);

#endif
