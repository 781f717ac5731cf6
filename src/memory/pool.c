/* First-fit device sub-allocator over a few backend buffers. See pool.h. */
#include "memory/pool.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* A chunk is one backend buffer cut into segments sorted by offset, each free or used;
 * adjacent free segments are always merged, so a chunk with one free segment is empty. */
typedef struct segment {
    size_t off, size;
    int used;
} segment;

typedef struct chunk {
    struct chunk *next;
    void *raw;         /* what buffer_alloc returned */
    char *base;        /* raw aligned up to the pool's alignment */
    size_t size;       /* usable bytes from base */
    size_t charged;    /* bytes asked of the device and charged to the budget */
    segment *seg;
    int n_seg, cap_seg;
} chunk;

struct sh_device_pool {
    sh_allocator *alloc;
    sh_backend be;
    sh_budget *budget;
    sh_mem_kind kind;
    size_t chunk_bytes, alignment;
    pthread_mutex_t lock;
    chunk *chunks;
    sh_device_pool_stats st;
};

int sh_device_pool_create(sh_allocator *a, const sh_backend *be, sh_budget *budget, sh_mem_kind kind,
                          size_t chunk_bytes, size_t alignment, sh_device_pool **out, sh_err *err)
{
    *out = NULL;
    if (!be || !be->iface || !be->iface->buffer_alloc || !be->iface->buffer_free || !budget || alignment == 0 ||
        (alignment & (alignment - 1)) || kind == SH_MEM_HOST_CACHE)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "device pool: needs a backend with buffers, a budget, a device "
                                                   "kind and a power-of-two alignment");
    sh_device_pool *p = sh_calloc(a, 1, sizeof *p);
    if (!p)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "device pool: out of memory");
    p->alloc = a;
    p->be = *be;
    p->budget = budget;
    p->kind = kind;
    p->chunk_bytes = sh_align_up(chunk_bytes, alignment);
    p->alignment = alignment;
    pthread_mutex_init(&p->lock, NULL);
    *out = p;
    return 0;
}

static void chunk_release(sh_device_pool *p, chunk *c)
{
    p->be.iface->buffer_free(p->be.ctx, c->raw);
    sh_budget_release(p->budget, p->kind, SH_BUDGET_SHARED, c->charged);
    p->st.reserved -= c->charged;
    p->st.n_chunks--;
    p->st.n_buffer_frees++;
    sh_free(p->alloc, c->seg);
    sh_free(p->alloc, c);
}

void sh_device_pool_destroy(sh_device_pool *p)
{
    if (!p)
        return;
    while (p->chunks) {
        chunk *c = p->chunks;
        p->chunks = c->next;
        chunk_release(p, c);
    }
    pthread_mutex_destroy(&p->lock);
    sh_free(p->alloc, p);
}

/* Makes room for one more segment so a split cannot fail half-way. */
static int reserve_seg(sh_device_pool *p, chunk *c)
{
    if (c->n_seg < c->cap_seg)
        return 0;
    int cap = c->cap_seg ? c->cap_seg * 2 : 8;
    segment *s = sh_realloc(p->alloc, c->seg, sizeof *s * (size_t)cap);
    if (!s)
        return SHOAL_ERR_NO_MEMORY;
    c->seg = s;
    c->cap_seg = cap;
    return 0;
}

/* First fit inside c; returns the offset or SIZE_MAX. */
static size_t take(sh_device_pool *p, chunk *c, size_t size, int *oom)
{
    for (int i = 0; i < c->n_seg; i++) {
        segment *s = &c->seg[i];
        if (s->used || s->size < size)
            continue;
        if (s->size > size) {
            if (reserve_seg(p, c)) {
                *oom = 1;
                return SIZE_MAX;
            }
            s = &c->seg[i];
            memmove(&c->seg[i + 2], &c->seg[i + 1], sizeof *s * (size_t)(c->n_seg - i - 1));
            c->seg[i + 1] = (segment){s->off + size, s->size - size, 0};
            c->n_seg++;
            s->size = size;
        }
        s->used = 1;
        return s->off;
    }
    return SIZE_MAX;
}

int sh_device_pool_alloc(sh_device_pool *p, size_t size, void **out, sh_err *err)
{
    *out = NULL;
    if (size == 0)
        size = 1;
    if (size > SIZE_MAX - p->alignment)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "device pool: %zu bytes is too large", size);
    size = sh_align_up(size, p->alignment);
    pthread_mutex_lock(&p->lock);
    int oom = 0;
    for (chunk *c = p->chunks; c; c = c->next) {
        size_t off = take(p, c, size, &oom);
        if (off != SIZE_MAX) {
            p->st.used += size;
            *out = c->base + off;
            pthread_mutex_unlock(&p->lock);
            return 0;
        }
        if (oom)
            goto host_oom;
    }
    /* New chunk: host bookkeeping first, then budget, then device, undoing in reverse. */
    size_t csize = size > p->chunk_bytes ? size : p->chunk_bytes;
    chunk *c = sh_calloc(p->alloc, 1, sizeof *c);
    if (!c || reserve_seg(p, c)) {   /* capacity 8: room for the two first segments */
        if (c)
            sh_free(p->alloc, c->seg);
        sh_free(p->alloc, c);
        goto host_oom;
    }
    /* A backend that aligns less than the pool asks is given slack to align within. */
    size_t be_align = p->be.iface->alignment ? p->be.iface->alignment : 1;
    size_t charged = csize + (p->alignment > be_align ? p->alignment - 1 : 0);
    int rc = sh_budget_reserve(p->budget, p->kind, SH_BUDGET_SHARED, charged, err);
    if (rc == 0) {
        void *raw = NULL;
        rc = p->be.iface->buffer_alloc(p->be.ctx, charged, &raw, err);
        if (rc == 0 && !raw)
            rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "device pool: backend returned no buffer");
        if (rc)
            sh_budget_release(p->budget, p->kind, SH_BUDGET_SHARED, charged);
        c->raw = raw;
        c->base = (char *)raw + (sh_align_up((uintptr_t)raw, p->alignment) - (uintptr_t)raw);
    }
    if (rc) {
        sh_free(p->alloc, c->seg);
        sh_free(p->alloc, c);
        pthread_mutex_unlock(&p->lock);
        return rc;
    }
    c->charged = charged;
    c->size = csize;
    c->seg[0] = (segment){0, size, 1};
    c->n_seg = 1;
    if (csize > size)
        c->seg[c->n_seg++] = (segment){size, csize - size, 0};
    c->next = p->chunks;
    p->chunks = c;
    p->st.reserved += charged;
    p->st.used += size;
    p->st.n_chunks++;
    p->st.n_buffer_allocs++;
    *out = c->base;
    pthread_mutex_unlock(&p->lock);
    return 0;

host_oom:
    pthread_mutex_unlock(&p->lock);
    return sh_errf(err, SHOAL_ERR_NO_MEMORY, "device pool: out of host memory for bookkeeping");
}

void sh_device_pool_free(sh_device_pool *p, void *ptr)
{
    if (!p || !ptr)
        return;
    pthread_mutex_lock(&p->lock);
    chunk **link = &p->chunks;
    for (chunk *c = p->chunks; c; link = &c->next, c = c->next) {
        uintptr_t u = (uintptr_t)ptr, b = (uintptr_t)c->base;
        if (u < b || u >= b + c->size)
            continue;
        size_t off = (size_t)(u - b);
        int i = 0;
        while (i < c->n_seg && c->seg[i].off != off)
            i++;
        if (i == c->n_seg || !c->seg[i].used)
            break;   /* not a range we handed out: ignore rather than corrupt */
        c->seg[i].used = 0;
        p->st.used -= c->seg[i].size;
        if (i + 1 < c->n_seg && !c->seg[i + 1].used) {
            c->seg[i].size += c->seg[i + 1].size;
            memmove(&c->seg[i + 1], &c->seg[i + 2], sizeof(segment) * (size_t)(c->n_seg - i - 2));
            c->n_seg--;
        }
        if (i > 0 && !c->seg[i - 1].used) {
            c->seg[i - 1].size += c->seg[i].size;
            memmove(&c->seg[i], &c->seg[i + 1], sizeof(segment) * (size_t)(c->n_seg - i - 1));
            c->n_seg--;
        }
        if (c->n_seg == 1 && !c->seg[0].used) {
            *link = c->next;
            chunk_release(p, c);
        }
        break;
    }
    pthread_mutex_unlock(&p->lock);
}

size_t sh_device_pool_charge_for(sh_device_pool *p, size_t size)
{
    size = sh_align_up(size ? size : 1, p->alignment);
    pthread_mutex_lock(&p->lock);
    for (chunk *c = p->chunks; c; c = c->next)
        for (int i = 0; i < c->n_seg; i++)
            if (!c->seg[i].used && c->seg[i].size >= size) {
                pthread_mutex_unlock(&p->lock);
                return 0;
            }
    pthread_mutex_unlock(&p->lock);
    size_t be_align = p->be.iface->alignment ? p->be.iface->alignment : 1;
    return (size > p->chunk_bytes ? size : p->chunk_bytes) + (p->alignment > be_align ? p->alignment - 1 : 0);
}

void sh_device_pool_get_stats(sh_device_pool *p, sh_device_pool_stats *out)
{
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
}
