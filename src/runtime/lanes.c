/* Placement of concurrently running models (lanes.h). The model counts are small (a config
 * has a handful of models), so the loops are quadratic and allocate nothing: an offset of
 * SIZE_MAX marks a model not placed yet. */
#include <stdint.h>
#include <string.h>

#include "core/alloc.h"
#include "runtime/lanes.h"
#include "shoal.h"

void sh_lanes_together(int n, const sh_lanes_mode *modes, size_t n_modes, unsigned char *together)
{
    memset(together, 0, (size_t)n * (size_t)n);
    for (size_t k = 0; k < n_modes; k++)
        for (size_t a = 0; a < modes[k].n_models; a++)
            for (size_t b = 0; b < modes[k].n_models; b++) {
                size_t i = modes[k].models[a], j = modes[k].models[b];
                if (i != j && i < (size_t)n && j < (size_t)n)
                    together[i * (size_t)n + j] = 1;
            }
}

/* The unplaced model with the most bytes (the lowest index among equals), or -1. */
static int next_largest(int n, const size_t *bytes, const size_t *offset)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (offset[i] == SIZE_MAX && (best < 0 || bytes[i] > bytes[best]))
            best = i;
    return best;
}

/* Whether [at, at + size) is clear of every placed partner of model m. */
static int fits_at(int n, int m, size_t at, const size_t *bytes, const unsigned char *together,
                   const size_t *offset, size_t size)
{
    for (int j = 0; j < n; j++) {
        if (j == m || offset[j] == SIZE_MAX || !together[(size_t)m * n + j] || bytes[j] == 0)
            continue;
        if (at < offset[j] + bytes[j] && offset[j] < at + size)
            return 0;
    }
    return 1;
}

int sh_lanes_place(int n, const size_t *bytes, const unsigned char *together, size_t align, size_t *offset,
                   size_t *total)
{
    if (align == 0)
        align = 1;
    size_t end = 0, sum = 0;
    /* Every candidate offset is at most the sum of all aligned sizes: checking that sum
     * once makes every later addition safe. */
    for (int i = 0; i < n; i++) {
        offset[i] = SIZE_MAX;
        if (bytes[i] > SIZE_MAX / 2 || !sh_add_size(sum, sh_align_up(bytes[i], align), &sum))
            return SHOAL_ERR_INVALID_ARG;
    }
    for (int m; (m = next_largest(n, bytes, offset)) >= 0;) {
        size_t best = 0;
        if (bytes[m] > 0 && !fits_at(n, m, 0, bytes, together, offset, bytes[m])) {
            best = SIZE_MAX;
            for (int j = 0; j < n; j++) {
                if (offset[j] == SIZE_MAX || !together[(size_t)m * n + j])
                    continue;
                size_t at = sh_align_up(offset[j] + bytes[j], align);
                if (at < best && fits_at(n, m, at, bytes, together, offset, bytes[m]))
                    best = at;
            }
        }
        offset[m] = best;   /* the end of the highest partner always fits: never SIZE_MAX */
        if (best + bytes[m] > end)
            end = best + bytes[m];
    }
    *total = end;
    return 0;
}

void sh_lanes_assign(int n, const unsigned char *together, const double *weight, int n_lanes, int *lane)
{
    if (n_lanes < 1)
        n_lanes = 1;
    for (int i = 0; i < n; i++)
        lane[i] = -1;
    for (int step = 0; step < n; step++) {
        int m = -1;   /* the heaviest model not placed yet; ties in index order */
        for (int i = 0; i < n; i++)
            if (lane[i] < 0 && (m < 0 || (weight && weight[i] > weight[m])))
                m = i;
        int users[64] = {0};   /* partners of m already on each lane */
        int lanes = n_lanes < 64 ? n_lanes : 64;
        for (int j = 0; j < n; j++)
            if (j != m && lane[j] >= 0 && together[(size_t)m * n + j])
                users[lane[j]]++;
        int best = 0;
        for (int l = 1; l < lanes; l++)
            if (users[l] < users[best])
                best = l;
        lane[m] = best;
    }
}
