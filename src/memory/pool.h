/* sh_device_pool: sub-allocates device memory from a few large backend buffers.
 *
 * cudaMalloc/cudaFree are slow and synchronising, and hundreds of small weight tensors each
 * in their own buffer fragment the device. A pool takes chunks from backend->buffer_alloc
 * (each charged to the budget first, under the pool's kind) and hands out aligned ranges
 * first-fit from a free list with coalescing. A chunk whose ranges are all free again goes
 * back to the device and the budget at once, so evicting a model returns real memory.
 * A request larger than the chunk size gets a chunk of its own size. When the backend aligns
 * its buffers less than the pool's alignment, each chunk carries alignment-1 bytes of slack.
 *
 * Thread-safe (one mutex). The pool does not own the backend or the budget. */
#ifndef SHOAL_MEMORY_POOL_H
#define SHOAL_MEMORY_POOL_H

#include <stddef.h>

#include "backends/backend.h"
#include "memory/budget.h"

typedef struct sh_device_pool sh_device_pool;

typedef struct sh_device_pool_stats {
    size_t reserved;        /* bytes of device buffers held (charged to the budget) */
    size_t used;            /* bytes handed out, aligned */
    int n_chunks;
    unsigned long n_buffer_allocs, n_buffer_frees;
} sh_device_pool_stats;

/* chunk_bytes: size of each device buffer (0 = one buffer per request); alignment a power of
 * two. Free with sh_device_pool_destroy() after every range was freed. */
int sh_device_pool_create(sh_allocator *a, const sh_backend *be, sh_budget *budget, sh_mem_kind kind,
                          size_t chunk_bytes, size_t alignment, sh_device_pool **out, sh_err *err);
/* Frees every chunk still held and releases its budget charge, even if ranges in it were
 * never freed (their pointers dangle afterwards). Accepts NULL. */
void sh_device_pool_destroy(sh_device_pool *p);

/* An aligned range of `size` bytes. SHOAL_ERR_BUDGET when a new chunk does not fit the
 * budget, SHOAL_ERR_NO_MEMORY when the device refuses; nothing changed on failure. */
int sh_device_pool_alloc(sh_device_pool *p, size_t size, void **out, sh_err *err);
/* Returns a range; accepts NULL. */
void sh_device_pool_free(sh_device_pool *p, void *ptr);
/* Bytes a new allocation of `size` would need from the budget now (0 if it fits in a hole). */
size_t sh_device_pool_charge_for(sh_device_pool *p, size_t size);
void sh_device_pool_get_stats(sh_device_pool *p, sh_device_pool_stats *out);

#endif
