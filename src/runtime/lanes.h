/* Which models of a config may run at the same time, and where each one's bytes go then.
 *
 * Models that share a mode run concurrently (one lane each, backend.h) when the backend can,
 * so they need disjoint activation bytes and disjoint host staging; models that never share a
 * mode run in turn and may still share bytes. Pure host logic (tests/runtime/test_rt_lanes.c):
 *
 *   unsigned char together[n * n];              // together[i * n + j]: i and j share a mode
 *   sh_lanes_together(n, modes, n_modes, together);
 *   size_t off[n], total;
 *   sh_lanes_place(n, plan_bytes, together, 256, off, &total);   // arena of `total` bytes
 *   int lane[n];
 *   sh_lanes_assign(n, together, flops, SH_MAX_LANES, lane);
 */
#ifndef SHOAL_RUNTIME_LANES_H
#define SHOAL_RUNTIME_LANES_H

#include <stddef.h>

/* One mode: indices of its models. */
typedef struct sh_lanes_mode {
    const size_t *models;
    size_t n_models;
} sh_lanes_mode;

/* Fills together[n * n] (1 where two models share at least one mode; the diagonal is 0). */
void sh_lanes_together(int n, const sh_lanes_mode *modes, size_t n_modes, unsigned char *together);

/* Offsets (multiples of align) such that two models that run together never overlap; models
 * that do not may share bytes. Greedy by decreasing size: each model at the lowest offset
 * clear of every model already placed that runs with it. *total: the bytes that covers.
 * Returns 0, or SHOAL_ERR_INVALID_ARG on a size overflow (nothing meaningful in offset). */
int sh_lanes_place(int n, const size_t *bytes, const unsigned char *together, size_t align, size_t *offset,
                   size_t *total);

/* A lane per model (0..n_lanes-1) such that models that run together get different lanes
 * where n_lanes allows; past that, the lane fewest of its partners use (two models on one
 * lane simply run one after the other). Models are placed heaviest first (weight[i], NULL:
 * in index order), so each mode's heaviest model gets the lowest lane free of its partners:
 * lane 0, the backend's first (on CUDA the high-priority stream), where it can. */
void sh_lanes_assign(int n, const unsigned char *together, const double *weight, int n_lanes, int *lane);

#endif
