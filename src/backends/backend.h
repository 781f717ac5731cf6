/* The backend contract, in two roles (as ggml-backend splits device and stream):
 * - the device (sh_device_i, every backend): memory (device buffers, host buffers that copy
 *   fast, synchronous copies), which nodes it runs, compiling a graph into a program, packing
 *   weights, memory info, and a synchronous run;
 * - its lanes (sh_lane_i, optional: NULL in a backend that runs one program at a time, the CPU):
 *   in-order queues that upload, run, download and are waited for, several at once.
 * The runtime calls the lane functions of backend.c, which fall back to the device's
 * synchronous calls where a backend has no lanes, so it has one run path for both.
 *
 * A backend compiles a finalized graph into a program: it picks a kernel per node and tells
 * the planner what it needs — bytes per activation tensor in its own precision, a scratch
 * workspace per node, which outputs may overwrite an input in place, which tensors are views
 * into another (zero-copy Reshape, Concat written in place) — and how it wants each weight
 * packed. The planner (src/plan) then places activations and workspaces in one arena; the
 * weight store (src/memory) packs, deduplicates and uploads weights. A run receives one
 * pointer per tensor (weights and arena slots alike) and one per node workspace.
 *
 * Memory: backends never decide how much memory to take; buffer_alloc is called by the
 * memory subsystem after it has charged the device budget. */
#ifndef SHOAL_BACKEND_H
#define SHOAL_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "graph/graph.h"

/* Lanes a backend offers at most (sh_lane_i below). */
#define SH_MAX_LANES 4

typedef struct sh_program {
    const struct sh_graph *graph;   /* borrowed; must outlive the program */
    /* [n_tensors] bytes of each non-constant tensor as the backend stores it (0 = never
     * materialised, e.g. shape-only tensors). */
    size_t *tensor_bytes;
    /* [n_tensors] -1, or the tensor this one lives inside (a view), at alias_offset bytes. */
    int *alias_of;
    size_t *alias_offset;
    /* [n_nodes] input slot whose buffer output 0 may reuse when that input dies here, or -1. */
    int *inplace_input;
    /* [n_nodes] scratch bytes the node needs during its own step. */
    size_t *workspace_bytes;
    /* [n_nodes] or NULL (steps run one after another). A backend that runs independent steps
     * concurrently sets release_step[k] >= k: the last step that may still run while step k
     * does, so what k reads (and its workspace) stays reserved through it. */
    int *release_step;
    /* [n_tensors] bytes of each constant packed for this backend (0 = not needed on the
     * device, e.g. folded into another weight or read only at compile time). */
    size_t *weight_bytes;
    sh_dtype weight_dtype;           /* FLOAT32 on CPU, FLOAT16 on CUDA */
    void *impl;                      /* backend private */
} sh_program;

typedef struct sh_device_i {
    const char *name;                 /* "cpu", "cuda": for messages and the budget's device name */
    size_t alignment;                 /* arena alignment the backend needs (64 CPU, 256 CUDA) */
    /* Capabilities the runtime asks instead of naming a backend. host_memory: buffers are the
     * host's own memory (its memory is the host's, there is no bus to stage for); fp16: it
     * computes in fp16 (else fp32); compile_serial: compile calls must not overlap. */
    bool host_memory;
    bool fp16;
    bool compile_serial;

    /* Device memory. buffer_alloc returns SHOAL_ERR_NO_MEMORY (never aborts). */
    int (*buffer_alloc)(void *ctx, size_t size, void **out, sh_err *err);
    void (*buffer_free)(void *ctx, void *p);
    /* Host-side memory that copies to the device fast (pinned on CUDA). Optional: NULL
     * means plain host memory from the caller's allocator. */
    int (*host_alloc)(void *ctx, size_t size, void **out, sh_err *err);
    void (*host_free)(void *ctx, void *p);
    int (*upload)(void *ctx, void *dst_device, const void *src_host, size_t n, sh_err *err);
    int (*download)(void *ctx, void *dst_host, const void *src_device, size_t n, sh_err *err);

    /* Whether node k of g can run here (op, dtypes, attributes). */
    bool (*supports_node)(void *ctx, const sh_graph *g, int node);

    /* Compile a finalized graph. On failure *out is NULL and err names node and op. */
    int (*compile)(void *ctx, const sh_graph *g, sh_program **out, sh_err *err);
    void (*program_free)(void *ctx, sh_program *p);                 /* accepts NULL */
    /* Pack constant tensor t into host buffer dst of p->weight_bytes[t] bytes. Deterministic:
     * equal source bytes give equal packed bytes, which lets the weight store deduplicate.
     * Reads tensor t's data only: a constant's bytes may be freed once it is packed. */
    int (*pack_weight)(void *ctx, const sh_program *p, int t, void *dst, sh_err *err);

    /* Run the program. tensor_ptrs[t]: device pointer of tensor t (packed weight, arena slot
     * or view); workspace_ptrs[k]: node k's scratch (NULL when 0 bytes). Inputs must already
     * be in place; outputs are left in place. `binding_id` changes whenever the pointers do,
     * so a backend may cache per-binding state (CUDA graphs). */
    int (*run)(void *ctx, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
               unsigned long binding_id, sh_err *err);

    /* Device memory total/free in bytes where the device knows it (optional). */
    int (*memory_info)(void *ctx, size_t *total, size_t *free_bytes);
    void (*destroy)(void *ctx);
} sh_device_i;

/* Concurrent execution. A lane (0..SH_MAX_LANES-1) is an in-order queue: what is issued on one
 * lane runs in order, lanes run at the same time. The calls only enqueue: host buffers must
 * stay untouched until wait returns (the device's host_alloc memory makes the copies truly
 * asynchronous), and two lanes must not touch the same device bytes. A program may run on any
 * lane; per-binding state may be kept per (binding, lane). All required but span. */
typedef struct sh_lane_i {
    int (*upload)(void *ctx, int lane, void *dst_device, const void *src_host, size_t n, sh_err *err);
    int (*run)(void *ctx, int lane, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
               unsigned long binding_id, sh_err *err);
    int (*download)(void *ctx, int lane, void *dst_host, const void *src_device, size_t n, sh_err *err);
    /* Waits until everything issued on the lane is done, also after a failure (the lane is
     * drained either way). *busy_ms (may be NULL): device time from the lane's first
     * operation since the previous wait to its last, or -1 when unknown. */
    int (*wait)(void *ctx, int lane, double *busy_ms, sh_err *err);
    /* Optional: *ms = device time from the earliest first operation to the latest last
     * operation of the given lanes' work, each waited for since (-1 when unknown): what
     * several lanes' overlapping work took on the device together. */
    int (*span)(void *ctx, const int *lanes, int n, double *ms, sh_err *err);
} sh_lane_i;

/* One backend: its device interface, its lanes (NULL: none) and the context both take. */
typedef struct sh_backend {
    const sh_device_i *iface;
    const sh_lane_i *lanes;
    void *ctx;
} sh_backend;

typedef struct sh_backend_params {
    sh_allocator *alloc;     /* host allocator for the backend's own bookkeeping */
    int n_threads;           /* CPU: worker threads, 0 = number of cores */
    int device;              /* CUDA: device ordinal */
    bool cuda_graphs;        /* CUDA: capture and replay */
    shoal_tuning tuning;     /* A/B switches (shoal.h); zero = the defaults */
    shoal_log_fn log;        /* diagnostics the tuning asks for; NULL = dropped */
    void *log_user;
    /* fault injection for tests: the N-th device buffer allocation fails as out of memory
     * (CUDA; 0 = never) */
    long fail_alloc_nth;
} sh_backend_params;

/* Creates the CPU backend; returns 0 or a status with err set. */
int sh_backend_cpu_create(const sh_backend_params *p, sh_backend *out, sh_err *err);
/* Creates the CUDA backend; SHOAL_ERR_UNSUPPORTED when shoal was built without CUDA or no
 * device is present. */
int sh_backend_cuda_create(const sh_backend_params *p, sh_backend *out, sh_err *err);
void sh_backend_destroy(sh_backend *b);                                   /* accepts NULL */
/* Which kernel the CUDA backend's program p runs node `node` on, where it chose between
 * kernels (its integer convolutions: the int8 tensor cores, or the direct kernel and why);
 * NULL for other nodes, and always in builds without CUDA. */
const char *sh_backend_cuda_node_path(const sh_program *p, int node);

/* The runtime's calls (backend.c): on a lane where the backend has lanes, else synchronous
 * through the device's upload, run and download, which makes wait a no-op. A run issues
 * uploads, the run and downloads, then waits. */
bool sh_backend_has_lanes(const sh_backend *b);
int sh_backend_upload(const sh_backend *b, int lane, void *dst_device, const void *src_host, size_t n, sh_err *err);
int sh_backend_run(const sh_backend *b, int lane, sh_program *p, void *const *tensor_ptrs,
                   void *const *workspace_ptrs, unsigned long binding_id, sh_err *err);
int sh_backend_download(const sh_backend *b, int lane, void *dst_host, const void *src_device, size_t n, sh_err *err);
/* *busy_ms (may be NULL): the lane's device time since the previous wait, -1 when unknown. */
int sh_backend_wait(const sh_backend *b, int lane, double *busy_ms, sh_err *err);
/* *ms: device time of the given lanes' work together (lanes_span), -1 when unknown. */
void sh_backend_span(const sh_backend *b, const int *lanes, int n, double *ms);

/* Helpers shared by backends: allocate/free the per-program arrays. */
sh_program *sh_program_alloc(sh_allocator *a, const sh_graph *g);
void sh_program_release(sh_allocator *a, sh_program *p);

#endif
