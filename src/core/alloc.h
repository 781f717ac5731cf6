/* shoal's host allocator: every host byte shoal owns goes through one of these.
 *
 * It counts bytes in use and the peak, can refuse beyond a byte limit, and can fail the
 * Nth allocation on purpose so tests drive every error path (Lua's ltests.c allocator is
 * the model). Blocks are 64-byte aligned, enough for any SIMD load. Thread-safe.
 * Passing NULL as the allocator uses an unaccounted malloc-backed default: only tools and
 * tests may do that; the runtime always passes its own. */
#ifndef SHOAL_CORE_ALLOC_H
#define SHOAL_CORE_ALLOC_H

#include <stddef.h>
#include <stdint.h>

typedef struct sh_allocator sh_allocator;

typedef struct sh_alloc_stats {
    size_t in_use;        /* bytes handed out and not yet freed */
    size_t peak;          /* highest in_use seen */
    size_t limit;         /* 0 = unlimited */
    uint64_t n_allocs;
    uint64_t n_frees;
    uint64_t n_failed;    /* refused by the limit, by injection or by malloc */
} sh_alloc_stats;

/* Returns NULL when malloc fails. Free with sh_allocator_destroy. */
sh_allocator *sh_allocator_create(void);
/* Accepts NULL. Blocks still outstanding are not freed (LSan reports them). */
void sh_allocator_destroy(sh_allocator *a);

void *sh_alloc(sh_allocator *a, size_t size);                    /* NULL on failure */
void *sh_calloc(sh_allocator *a, size_t count, size_t size);     /* zeroed, overflow-checked */
void *sh_realloc(sh_allocator *a, void *p, size_t size);         /* NULL on failure, p untouched */
void sh_free(sh_allocator *a, void *p);                          /* accepts NULL */
char *sh_strdup(sh_allocator *a, const char *s);
char *sh_strndup(sh_allocator *a, const char *s, size_t n);
size_t sh_alloc_size(const void *p);                             /* usable size of a block */

/* Fail the allocation `n` allocations from now (0 = the very next one); -1 turns it off.
 * With `repeat`, every allocation from then on fails. */
void sh_allocator_fail_after(sh_allocator *a, long n, int repeat);
void sh_allocator_set_limit(sh_allocator *a, size_t limit_bytes);
sh_alloc_stats sh_allocator_stats(const sh_allocator *a);

/* Overflow-checked size arithmetic: return 0 on overflow, 1 otherwise. */
int sh_mul_size(size_t a, size_t b, size_t *out);
int sh_add_size(size_t a, size_t b, size_t *out);
/* The capacity a growing buffer of `cap` bytes moves to so that it holds need (<= limit) bytes:
 * doubling from `first` (when cap is 0), capped at limit, so that a run of equal sizes settles
 * on one buffer and no more than limit is ever asked for. */
size_t sh_grow_cap(size_t cap, size_t need, size_t first, size_t limit);
static inline size_t sh_align_up(size_t n, size_t align) { return (n + align - 1) / align * align; }

#endif
