#include "core/alloc.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Each block carries a 64-byte header holding its size, so frees need no size argument
 * and the payload keeps 64-byte alignment. */
#define HEADER 64u

typedef struct block_header {
    size_t size;
    uint64_t magic;
} block_header;

struct sh_allocator {
    pthread_mutex_t lock;
    sh_alloc_stats stats;
    long fail_countdown;   /* -1: off */
    int fail_repeat;
};

#define MAGIC 0x5a0a1b10c0ffee11ULL

sh_allocator *sh_allocator_create(void)
{
    sh_allocator *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    pthread_mutex_init(&a->lock, NULL);
    a->fail_countdown = -1;
    return a;
}

void sh_allocator_destroy(sh_allocator *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->lock);
    free(a);
}

int sh_mul_size(size_t x, size_t y, size_t *out)
{
    if (y != 0 && x > SIZE_MAX / y)
        return 0;
    *out = x * y;
    return 1;
}

int sh_add_size(size_t x, size_t y, size_t *out)
{
    if (x > SIZE_MAX - y)
        return 0;
    *out = x + y;
    return 1;
}

size_t sh_grow_cap(size_t cap, size_t need, size_t first, size_t limit)
{
    size_t nc = cap ? cap : first;
    while (nc < need)
        nc = nc > limit / 2 ? limit : nc * 2;
    return nc;
}

/* Decides under the lock whether this allocation may proceed and charges it. */
static int admit(sh_allocator *a, size_t size)
{
    if (!a)
        return 1;
    int ok = 1;
    pthread_mutex_lock(&a->lock);
    if (a->fail_countdown == 0) {
        ok = 0;
        if (!a->fail_repeat)
            a->fail_countdown = -1;
    } else if (a->fail_countdown > 0) {
        a->fail_countdown--;
    }
    if (ok && a->stats.limit && a->stats.in_use + size > a->stats.limit)
        ok = 0;
    if (ok) {
        a->stats.in_use += size;
        if (a->stats.in_use > a->stats.peak)
            a->stats.peak = a->stats.in_use;
        a->stats.n_allocs++;
    } else {
        a->stats.n_failed++;
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

static void release(sh_allocator *a, size_t size)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stats.in_use -= size;
    a->stats.n_frees++;
    pthread_mutex_unlock(&a->lock);
}

void *sh_alloc(sh_allocator *a, size_t size)
{
    size_t total;
    if (!sh_add_size(size, HEADER, &total))
        return NULL;
    if (!admit(a, size))
        return NULL;
    void *raw = NULL;
    if (posix_memalign(&raw, HEADER, total) != 0) {
        if (a) {
            pthread_mutex_lock(&a->lock);
            a->stats.in_use -= size;
            a->stats.n_allocs--;
            a->stats.n_failed++;
            pthread_mutex_unlock(&a->lock);
        }
        return NULL;
    }
    block_header *h = raw;
    h->size = size;
    h->magic = MAGIC;
    return (char *)raw + HEADER;
}

void *sh_calloc(sh_allocator *a, size_t count, size_t size)
{
    size_t n;
    if (!sh_mul_size(count, size, &n))
        return NULL;
    void *p = sh_alloc(a, n);
    if (p)
        memset(p, 0, n);
    return p;
}

size_t sh_alloc_size(const void *p)
{
    if (!p)
        return 0;
    const block_header *h = (const block_header *)((const char *)p - HEADER);
    return h->size;
}

void sh_free(sh_allocator *a, void *p)
{
    if (!p)
        return;
    block_header *h = (block_header *)((char *)p - HEADER);
    release(a, h->size);
    h->magic = 0;
    free(h);
}

/* Charges only the growth, so a block near the limit can still be resized. */
void *sh_realloc(sh_allocator *a, void *p, size_t size)
{
    if (!p)
        return sh_alloc(a, size);
    size_t old = sh_alloc_size(p), total;
    if (!sh_add_size(size, HEADER, &total))
        return NULL;
    if (!admit(a, size > old ? size - old : 0))
        return NULL;
    void *raw = NULL;
    if (posix_memalign(&raw, HEADER, total) != 0) {
        release(a, size > old ? size - old : 0);
        return NULL;
    }
    block_header *h = raw;
    h->size = size;
    h->magic = MAGIC;
    memcpy((char *)raw + HEADER, p, old < size ? old : size);
    block_header *oh = (block_header *)((char *)p - HEADER);
    oh->magic = 0;
    free(oh);
    if (a && size < old) {
        pthread_mutex_lock(&a->lock);
        a->stats.in_use -= old - size;
        pthread_mutex_unlock(&a->lock);
    }
    if (a) {   /* one block was replaced by another: not a new allocation */
        pthread_mutex_lock(&a->lock);
        a->stats.n_allocs--;
        a->stats.n_frees--;
        pthread_mutex_unlock(&a->lock);
    }
    return (char *)raw + HEADER;
}

char *sh_strndup(sh_allocator *a, const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = sh_alloc(a, len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

char *sh_strdup(sh_allocator *a, const char *s)
{
    return s ? sh_strndup(a, s, strlen(s)) : NULL;
}

void sh_allocator_fail_after(sh_allocator *a, long n, int repeat)
{
    pthread_mutex_lock(&a->lock);
    a->fail_countdown = n < 0 ? -1 : n;
    a->fail_repeat = repeat;
    pthread_mutex_unlock(&a->lock);
}

void sh_allocator_set_limit(sh_allocator *a, size_t limit_bytes)
{
    pthread_mutex_lock(&a->lock);
    a->stats.limit = limit_bytes;
    pthread_mutex_unlock(&a->lock);
}

sh_alloc_stats sh_allocator_stats(const sh_allocator *a)
{
    sh_alloc_stats s = {0};
    if (!a)
        return s;
    pthread_mutex_lock((pthread_mutex_t *)&a->lock);
    s = a->stats;
    pthread_mutex_unlock((pthread_mutex_t *)&a->lock);
    return s;
}
