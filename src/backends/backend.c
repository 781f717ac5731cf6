#include "backends/backend.h"

#include <string.h>

#ifndef SHOAL_HAVE_CUDA
int sh_backend_cuda_create(const sh_backend_params *p, sh_backend *out, sh_err *err)
{
    (void)p;
    memset(out, 0, sizeof *out);
    return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "shoal was built without the CUDA backend (SHOAL_CUDA=OFF or no toolkit)");
}

const char *sh_backend_cuda_node_path(const sh_program *p, int node)
{
    (void)p;
    (void)node;
    return NULL;
}
#endif

void sh_backend_destroy(sh_backend *b)
{
    if (!b || !b->iface)
        return;
    if (b->iface->destroy)
        b->iface->destroy(b->ctx);
    b->iface = NULL;
    b->lanes = NULL;
    b->ctx = NULL;
}

bool sh_backend_has_lanes(const sh_backend *b)
{
    return b->lanes != NULL;
}

int sh_backend_upload(const sh_backend *b, int lane, void *dst_device, const void *src_host, size_t n, sh_err *err)
{
    if (n == 0)
        return 0;
    return b->lanes ? b->lanes->upload(b->ctx, lane, dst_device, src_host, n, err)
                    : b->iface->upload(b->ctx, dst_device, src_host, n, err);
}

int sh_backend_run(const sh_backend *b, int lane, sh_program *p, void *const *tensor_ptrs,
                   void *const *workspace_ptrs, unsigned long binding_id, sh_err *err)
{
    return b->lanes ? b->lanes->run(b->ctx, lane, p, tensor_ptrs, workspace_ptrs, binding_id, err)
                    : b->iface->run(b->ctx, p, tensor_ptrs, workspace_ptrs, binding_id, err);
}

int sh_backend_download(const sh_backend *b, int lane, void *dst_host, const void *src_device, size_t n, sh_err *err)
{
    if (n == 0)
        return 0;
    return b->lanes ? b->lanes->download(b->ctx, lane, dst_host, src_device, n, err)
                    : b->iface->download(b->ctx, dst_host, src_device, n, err);
}

int sh_backend_wait(const sh_backend *b, int lane, double *busy_ms, sh_err *err)
{
    if (busy_ms)
        *busy_ms = -1;
    return b->lanes ? b->lanes->wait(b->ctx, lane, busy_ms, err) : 0;
}

void sh_backend_span(const sh_backend *b, const int *lanes, int n, double *ms)
{
    sh_err e = {0};
    *ms = -1;
    if (!b->lanes || !b->lanes->span || b->lanes->span(b->ctx, lanes, n, ms, &e))
        *ms = -1;
}

sh_program *sh_program_alloc(sh_allocator *a, const sh_graph *g)
{
    sh_program *p = sh_calloc(a, 1, sizeof *p);
    if (!p)
        return NULL;
    size_t nt = (size_t)(g->n_tensors ? g->n_tensors : 1);
    size_t nn = (size_t)(g->n_nodes ? g->n_nodes : 1);
    p->graph = g;
    p->tensor_bytes = sh_calloc(a, nt, sizeof(size_t));
    p->alias_of = sh_alloc(a, nt * sizeof(int));
    p->alias_offset = sh_calloc(a, nt, sizeof(size_t));
    p->inplace_input = sh_alloc(a, nn * sizeof(int));
    p->workspace_bytes = sh_calloc(a, nn, sizeof(size_t));
    p->weight_bytes = sh_calloc(a, nt, sizeof(size_t));
    if (!p->tensor_bytes || !p->alias_of || !p->alias_offset || !p->inplace_input ||
        !p->workspace_bytes || !p->weight_bytes) {
        sh_program_release(a, p);
        return NULL;
    }
    for (size_t i = 0; i < nt; i++)
        p->alias_of[i] = -1;
    for (size_t i = 0; i < nn; i++)
        p->inplace_input[i] = -1;
    return p;
}

void sh_program_release(sh_allocator *a, sh_program *p)
{
    if (!p)
        return;
    sh_free(a, p->tensor_bytes);
    sh_free(a, p->alias_of);
    sh_free(a, p->alias_offset);
    sh_free(a, p->inplace_input);
    sh_free(a, p->workspace_bytes);
    sh_free(a, p->release_step);
    sh_free(a, p->weight_bytes);
    sh_free(a, p);
}
