/* The process floor on the device: what the CUDA context costs at the stack limit the
 * backend sets, and what a cuDNN handle adds, measured with cudaMemGetInfo (device-wide, so
 * run it alone on the GPU). Also checks the error paths: a huge allocation gives
 * SHOAL_ERR_NO_MEMORY and the backend keeps working. Exits 77 without a device. */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "harness.h"

int main(void)
{
#ifndef SHOAL_HAVE_CUDA
    printf("skip: built without CUDA\n");
    return 77;
#else
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("skip: no CUDA device\n");
        return 77;
    }
    size_t free0 = 0, total = 0, free1 = 0, free2 = 0, free3 = 0;
    sh_backend b;
    sh_backend_params bp = {.device = 0, .cuda_graphs = true};
    sh_err err = {0};
    if (sh_backend_cuda_create(&bp, &b, &err)) {
        printf("cuda backend: %s\n", err.msg);
        return 1;
    }
    b.iface->memory_info(b.ctx, &total, &free1);
    size_t stack = 0, heap = 0, fifo = 0;
    cudaDeviceGetLimit(&stack, cudaLimitStackSize);
    cudaDeviceGetLimit(&heap, cudaLimitMallocHeapSize);
    cudaDeviceGetLimit(&fifo, cudaLimitPrintfFifoSize);
    cudnnHandle_t h = NULL;
    cudnnCreate(&h);
    cudaMemGetInfo(&free2, &total);
    cudnnDestroy(h);
    (void)free0;
    void *p = NULL;
    int rc = b.iface->buffer_alloc(b.ctx, (size_t)1 << 50, &p, &err);
    int ok = rc == SHOAL_ERR_NO_MEMORY;
    printf("oom: status %d (%s)\n", rc, err.msg);
    rc = b.iface->buffer_alloc(b.ctx, 1 << 20, &p, &err);
    ok &= rc == 0;
    b.iface->buffer_free(b.ctx, p);
    cudaMemGetInfo(&free3, &total);
    printf("device total %.0f MiB; in use after context: %.1f MiB; + cuDNN handle: %.1f MiB\n",
           total / 1048576.0, (total - free1) / 1048576.0, ((double)free1 - (double)free2) / 1048576.0);
    printf("limits: stack %zu B/thread, malloc heap %zu B, printf fifo %zu B\n", stack, heap, fifo);
    sh_backend_destroy(&b);
    printf("%s\n", ok ? "ok" : "FAIL");
    return ok ? 0 : 1;
#endif
}
