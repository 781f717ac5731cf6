/* A tiny host-memory backend for memory tests: buffers, pinned host memory, upload/download
 * and pack_weight, each counted, and device allocations that can be made to fail. */
#ifndef SHOAL_TEST_FAKE_BACKEND_H
#define SHOAL_TEST_FAKE_BACKEND_H

#include "backends/backend.h"

#include <pthread.h>

typedef struct fake_dev {
    sh_allocator *device;     /* "device" memory: its in_use is the device's */
    sh_allocator *pinned;     /* host_alloc memory */
    long fail_buffer_after;   /* -1 off; 0 = fail the next buffer_alloc */
    long fail_pack_after;     /* -1 off */
    unsigned long n_buffer_allocs, n_uploads, n_downloads, n_packs, n_host_allocs;
    pthread_mutex_t mu;       /* pack and host_alloc may be called from several threads */
} fake_dev;

/* with_host_alloc: whether the backend offers host_alloc (pinned memory). */
void fake_backend_init(fake_dev *d, sh_backend *be, int with_host_alloc);
void fake_backend_fini(fake_dev *d);

#endif
