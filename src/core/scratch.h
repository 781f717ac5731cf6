/* Scratch carved from one caller-owned buffer: a planned workspace (a graph op's, placed in
 * the arena by src/plan) or one block a host caller allocated at the size the same code
 * computes. Functions that take an sh_scratch never allocate, so what they need is decided
 * once, from shapes and attributes, before anything runs.
 *
 *   size_t need = sh_scratch_need(0, rows_bytes);       // at compile time, or before a call
 *   need = sh_scratch_need(need, taps_bytes);
 *   sh_scratch s = sh_scratch_init(ws, need);
 *   float *rows = sh_scratch_take(&s, rows_bytes);    // NULL only when `need` was wrong
 */
#ifndef SHOAL_CORE_SCRATCH_H
#define SHOAL_CORE_SCRATCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"

#define SH_SCRATCH_ALIGN 64

typedef struct sh_scratch {
    uint8_t *next;
    size_t left;
} sh_scratch;

static inline sh_scratch sh_scratch_init(void *base, size_t bytes)
{
    sh_scratch s = {(uint8_t *)base, base ? bytes : 0};
    return s;
}

/* `total` grown by one piece of `bytes` as sh_scratch_take lays it out; SIZE_MAX on overflow
 * (which no buffer satisfies, so the caller's size check fails). */
static inline size_t sh_scratch_need(size_t total, size_t bytes)
{
    size_t piece, sum;
    if (total == SIZE_MAX || bytes > SIZE_MAX - SH_SCRATCH_ALIGN)
        return SIZE_MAX;
    piece = sh_align_up(bytes, SH_SCRATCH_ALIGN);
    return sh_add_size(total, piece, &sum) ? sum : SIZE_MAX;
}

/* The next `bytes` (64-byte aligned), or NULL when the buffer is exhausted. */
static inline void *sh_scratch_take(sh_scratch *s, size_t bytes)
{
    size_t piece = sh_scratch_need(0, bytes);
    if (piece > s->left)
        return NULL;
    void *p = s->next;
    s->next += piece;
    s->left -= piece;
    return p;
}

#endif
