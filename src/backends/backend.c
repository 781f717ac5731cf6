#include "backends/backend.h"

#include <string.h>

#ifndef SHOAL_HAVE_CUDA
int sh_backend_cuda_create(const sh_backend_params *p, sh_backend *out, sh_err *err)
{
    (void)p;
    memset(out, 0, sizeof *out);
    return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "shoal was built without the CUDA backend (SHOAL_CUDA=OFF or no toolkit)");
}
#endif

void sh_backend_destroy(sh_backend *b)
{
    if (!b || !b->iface)
        return;
    if (b->iface->destroy)
        b->iface->destroy(b->ctx);
    b->iface = NULL;
    b->ctx = NULL;
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
