#include "fake_backend.h"

#include <string.h>

static int fb_buffer_alloc(void *ctx, size_t size, void **out, sh_err *err)
{
    fake_dev *d = ctx;
    if (d->fail_buffer_after == 0) {
        d->fail_buffer_after = -1;
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "fake device: out of memory (%zu bytes)", size);
    }
    if (d->fail_buffer_after > 0)
        d->fail_buffer_after--;
    *out = sh_alloc(d->device, size);
    if (!*out)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "fake device: out of memory (%zu bytes)", size);
    d->n_buffer_allocs++;
    return 0;
}

static void fb_buffer_free(void *ctx, void *p) { sh_free(((fake_dev *)ctx)->device, p); }

static int fb_host_alloc(void *ctx, size_t size, void **out, sh_err *err)
{
    fake_dev *d = ctx;
    *out = sh_alloc(d->pinned, size);
    pthread_mutex_lock(&d->mu);
    d->n_host_allocs++;
    pthread_mutex_unlock(&d->mu);
    return *out ? 0 : sh_errf(err, SHOAL_ERR_NO_MEMORY, "fake pinned: out of memory");
}

static void fb_host_free(void *ctx, void *p) { sh_free(((fake_dev *)ctx)->pinned, p); }

static int fb_upload(void *ctx, void *dst, const void *src, size_t n, sh_err *err)
{
    ((fake_dev *)ctx)->n_uploads++;
    memcpy(dst, src, n);
    return 0;
}

static int fb_download(void *ctx, void *dst, const void *src, size_t n, sh_err *err)
{
    ((fake_dev *)ctx)->n_downloads++;
    memcpy(dst, src, n);
    return 0;
}

/* Packs by copying and flipping the sign bit of every 4th byte: deterministic, and not the
 * identity, so a test can tell packed from raw bytes. */
static int fb_pack(void *ctx, const sh_program *p, int t, void *dst, sh_err *err)
{
    fake_dev *d = ctx;
    pthread_mutex_lock(&d->mu);
    bool fail = d->fail_pack_after == 0;
    if (fail)
        d->fail_pack_after = -1;
    else if (d->fail_pack_after > 0)
        d->fail_pack_after--;
    if (!fail)
        d->n_packs++;
    pthread_mutex_unlock(&d->mu);
    if (fail)
        return sh_errf(err, SHOAL_ERR_BACKEND, "fake pack failed");
    const sh_tensor *x = &p->graph->tensors[t];
    memcpy(dst, x->data, p->weight_bytes[t]);
    for (size_t i = 3; i < p->weight_bytes[t]; i += 4)
        ((unsigned char *)dst)[i] ^= 0x80;
    return 0;
}

static const sh_device_i fake_iface = {
    .name = "fake", .alignment = 64,   /* pools asking 256 add slack */
    .buffer_alloc = fb_buffer_alloc, .buffer_free = fb_buffer_free,
    .upload = fb_upload, .download = fb_download, .pack_weight = fb_pack,
};

static const sh_device_i fake_iface_pinned = {
    .name = "fake-pinned", .alignment = 256,
    .buffer_alloc = fb_buffer_alloc, .buffer_free = fb_buffer_free,
    .host_alloc = fb_host_alloc, .host_free = fb_host_free,
    .upload = fb_upload, .download = fb_download, .pack_weight = fb_pack,
};

void fake_backend_init(fake_dev *d, sh_backend *be, int with_host_alloc)
{
    memset(d, 0, sizeof *d);
    d->device = sh_allocator_create();
    d->pinned = sh_allocator_create();
    d->fail_buffer_after = -1;
    d->fail_pack_after = -1;
    pthread_mutex_init(&d->mu, NULL);
    be->iface = with_host_alloc ? &fake_iface_pinned : &fake_iface;
    be->lanes = NULL;
    be->ctx = d;
}

void fake_backend_fini(fake_dev *d)
{
    pthread_mutex_destroy(&d->mu);
    sh_allocator_destroy(d->device);
    sh_allocator_destroy(d->pinned);
}
