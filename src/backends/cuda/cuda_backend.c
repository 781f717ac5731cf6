/* The CUDA backend's device side: context, memory, copies, and the iface table. Compilation
 * is in cuda_compile.c, execution in cuda_run.c, kernels in the .cu files. */
#include "backends/cuda/cuda_impl.h"
#include "backends/cuda/cuda.h"
#include "core/half.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sh_cuda_rt_fail(sh_err *err, cudaError_t e, const char *call, const char *file, int line,
                    int device)
{
    int status = SHOAL_ERR_BACKEND;
    if (e == cudaErrorMemoryAllocation)
        status = SHOAL_ERR_NO_MEMORY;
    else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver)
        status = SHOAL_ERR_UNSUPPORTED;
    /* clear a non-sticky error so the next call does not report it again */
    (void)cudaGetLastError();
    return sh_errf(err, status, "cuda device %d: %s failed: %s (%s) at %s:%d", device, call,
                   cudaGetErrorName(e), cudaGetErrorString(e), file, line);
}

int sh_cuda_dnn_fail(sh_err *err, cudnnStatus_t s, const char *call, const char *file, int line,
                     int device)
{
    int status = s == CUDNN_STATUS_ALLOC_FAILED ? SHOAL_ERR_NO_MEMORY
               : s == CUDNN_STATUS_NOT_SUPPORTED ? SHOAL_ERR_UNSUPPORTED : SHOAL_ERR_BACKEND;
    return sh_errf(err, status, "cuda device %d: %s failed: %s at %s:%d", device, call,
                   cudnnGetErrorString(s), file, line);
}

/* The packer's rounding lives in core/half.c, where the vectorized bulk version is tested
 * against it on hosts without a GPU. */
uint16_t sh_cuda_f32_to_f16(float f)
{
    return sh_f32_to_f16(f);
}

int sh_cuda_ensure_cudnn(sh_cuda_ctx *c, sh_err *err)
{
    if (c->cudnn)
        return 0;
    SH_CU(c, err, cudaSetDevice(c->device));
    if (!c->algo_memo && !(c->algo_memo = sh_calloc(c->alloc, SH_CUDA_ALGO_MEMO, sizeof *c->algo_memo)))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda: cuDNN algorithm memo");
    cudnnHandle_t h = NULL;
    SH_DNN(c, err, cudnnCreate(&h));
    cudnnStatus_t s = cudnnSetStream(h, c->stream);
    if (s != CUDNN_STATUS_SUCCESS) {
        cudnnDestroy(h);
        return sh_cuda_dnn_fail(err, s, "cudnnSetStream(h, c->stream)", __FILE__, __LINE__, c->device);
    }
    c->cudnn = h;
    c->cudnn_stream = c->stream;
    return 0;
}

static int cuda_buffer_alloc(void *vctx, size_t size, void **out, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    *out = NULL;
    SH_CU(c, err, cudaSetDevice(c->device));
    if (c->fail_alloc_nth > 0 && ++c->n_allocs == c->fail_alloc_nth)
        return sh_cuda_rt_fail(err, cudaErrorMemoryAllocation, "cudaMalloc (injected by fail_alloc_nth)",
                               __FILE__, __LINE__, c->device);
    SH_CU(c, err, cudaMalloc(out, size ? size : 1));
    return 0;
}

static void cuda_buffer_free(void *vctx, void *p)
{
    sh_cuda_ctx *c = vctx;
    if (p) {
        cudaSetDevice(c->device);
        cudaFree(p);
    }
}

/* Prepacks call these from threads of their own (memory/weights.c), whose current device is
 * 0 until set: pinned memory belongs to the context current at the call. */
static int cuda_host_alloc(void *vctx, size_t size, void **out, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    *out = NULL;
    SH_CU(c, err, cudaSetDevice(c->device));
    SH_CU(c, err, cudaMallocHost(out, size ? size : 1));
    return 0;
}

static void cuda_host_free(void *vctx, void *p)
{
    sh_cuda_ctx *c = vctx;
    if (p) {
        cudaSetDevice(c->device);
        cudaFreeHost(p);
    }
}

/* Uploads go on the copy stream, ordered after the compute already enqueued (an input buffer
 * may still be read by the previous run) without a host wait for it. Synchronous on return:
 * the caller may reuse `src` at once. */
static int cuda_upload(void *vctx, void *dst, const void *src, size_t n, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess)
        e = cudaEventRecord(c->compute_done, c->stream);
    if (e == cudaSuccess)
        e = cudaStreamWaitEvent(c->copy_stream, c->compute_done, 0);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->copy_stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->copy_stream);
    if (e != cudaSuccess)
        rc = sh_cuda_rt_fail(err, e, "upload: cudaMemcpyAsync(H2D) on the copy stream", __FILE__,
                             __LINE__, c->device);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

/* The one host sync of a run: the download after it, on the compute stream. */
static int cuda_download(void *vctx, void *dst, const void *src, size_t n, sh_err *err)
{
    sh_cuda_ctx *c = vctx;
    int rc = 0;
    pthread_mutex_lock(&c->mu);
    cudaError_t e = cudaSetDevice(c->device);
    if (e == cudaSuccess)
        e = cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, c->stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(c->stream);
    if (e != cudaSuccess)
        rc = sh_cuda_rt_fail(err, e, "download: cudaMemcpyAsync(D2H) + cudaStreamSynchronize",
                             __FILE__, __LINE__, c->device);
    pthread_mutex_unlock(&c->mu);
    return rc;
}

static int cuda_memory_info(void *vctx, size_t *total, size_t *free_bytes)
{
    sh_cuda_ctx *c = vctx;
    if (cudaSetDevice(c->device) != cudaSuccess || cudaMemGetInfo(free_bytes, total) != cudaSuccess) {
        (void)cudaGetLastError();
        return SHOAL_ERR_BACKEND;
    }
    return 0;
}

static void cuda_destroy(void *vctx)
{
    sh_cuda_ctx *c = vctx;
    if (!c)
        return;
    cudaSetDevice(c->device);
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    sh_cuda_lanes_destroy(c);
    if (c->cudnn)
        cudnnDestroy(c->cudnn);
    sh_free(c->alloc, c->algo_memo);
    if (c->ig_counters)
        cudaFree(c->ig_counters);
    if (c->compute_done)
        cudaEventDestroy(c->compute_done);
    if (c->copy_stream)
        cudaStreamDestroy(c->copy_stream);
    for (int i = 0; i < SH_CUDA_STREAMS - 1; i++)
        if (c->side[i])
            cudaStreamDestroy(c->side[i]);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    pthread_mutex_destroy(&c->mu);
    sh_free(c->alloc, c);
}

static const sh_lane_i cuda_lanes = {
    .upload = sh_cuda_upload_async,
    .run = sh_cuda_run_async,
    .download = sh_cuda_download_async,
    .wait = sh_cuda_lane_wait,
    .span = sh_cuda_lanes_span,
};

static const sh_device_i cuda_i = {
    .name = "cuda",
    .alignment = 256,
    .fp16 = true,
    .compile_serial = true,   /* one cuDNN handle per backend, not thread-safe */
    .buffer_alloc = cuda_buffer_alloc,
    .buffer_free = cuda_buffer_free,
    .host_alloc = cuda_host_alloc,
    .host_free = cuda_host_free,
    .upload = cuda_upload,
    .download = cuda_download,
    .supports_node = sh_cuda_supports_node,
    .compile = sh_cuda_compile,
    .program_free = sh_cuda_program_free,
    .pack_weight = sh_cuda_pack_weight,
    .run = sh_cuda_run,
    .memory_info = cuda_memory_info,
    .destroy = cuda_destroy,
};

/* The process floor. A device's context is per process, so these limits are too: the first
 * backend on a device sets them before anything else touches it (later calls fail harmlessly
 * once the context is live, and are then left as they are). */
static void cuda_trim_floor(void)
{
    if (cudaDeviceSetLimit(cudaLimitStackSize, SH_CUDA_STACK_BYTES) != cudaSuccess)
        (void)cudaGetLastError();
    /* no kernel of ours calls malloc or printf; 0 is refused by some drivers: take the least
     * they accept */
    size_t small[] = {0, 4096, 65536};
    for (size_t i = 0; i < 3; i++) {
        if (cudaDeviceSetLimit(cudaLimitMallocHeapSize, small[i]) == cudaSuccess)
            break;
        (void)cudaGetLastError();
    }
    for (size_t i = 0; i < 3; i++) {
        if (cudaDeviceSetLimit(cudaLimitPrintfFifoSize, small[i]) == cudaSuccess)
            break;
        (void)cudaGetLastError();
    }
}

void sh_cuda_logf(const sh_cuda_ctx *c, const char *fmt, ...)
{
    if (!c->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->log(c->log_user, SHOAL_LOG_INFO, msg);
}

/* Lane 0's stream runs at the device's highest priority, the other lanes at the default: the
 * runtime gives each mode's heaviest model lane 0 (lanes.h), so when SMs free up, the model
 * that decides the mode's time gets them first. A graph's kernels take the priority of the
 * stream it is launched into, so lane 0's side streams need none of their own.
 * tuning.cuda_no_lane_priority: every stream at the default (A/B). */
static int lane0_priority(const sh_cuda_ctx *c)
{
    int least = 0, greatest = 0;
    if (c->tune.cuda_no_lane_priority || cudaDeviceGetStreamPriorityRange(&least, &greatest) != cudaSuccess) {
        (void)cudaGetLastError();
        return 0;
    }
    return greatest;
}

int sh_backend_cuda_create(const sh_backend_params *p, sh_backend *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        (void)cudaGetLastError();
        /* Without a driver the runtime reports "driver version is insufficient", which sends
         * the user hunting for a driver update on a machine that has no GPU at all; the driver
         * version (0 when none is installed) tells the cases apart. */
        int driver = 0, runtime = 0;
        if (cudaDriverGetVersion(&driver) != cudaSuccess)
            driver = 0;
        (void)cudaRuntimeGetVersion(&runtime);
        (void)cudaGetLastError();
        if (driver == 0)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                           "no CUDA device or driver found: this machine has no NVIDIA driver (use the CPU: --device cpu)");
        if (e == cudaSuccess || e == cudaErrorNoDevice)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                           "no CUDA device found: the NVIDIA driver (CUDA %d.%d) sees no GPU (use the CPU: --device cpu)",
                           driver / 1000, driver % 1000 / 10);
        if (e == cudaErrorInsufficientDriver)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                           "the NVIDIA driver supports CUDA %d.%d, older than the CUDA %d.%d shoal was built with: "
                           "update the driver or use --device cpu",
                           driver / 1000, driver % 1000 / 10, runtime / 1000, runtime % 1000 / 10);
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "no usable CUDA device: %s (%s)", cudaGetErrorString(e),
                       cudaGetErrorName(e));
    }
    int dev = p ? p->device : 0;
    if (dev < 0 || dev >= n)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "CUDA device %d does not exist (%d present)", dev, n);
    sh_allocator *a = p ? p->alloc : NULL;
    sh_cuda_ctx *c = sh_calloc(a, 1, sizeof *c);
    if (!c)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda backend context");
    c->alloc = a;
    c->device = dev;
    c->use_graphs = p ? p->cuda_graphs : true;
    if (p) {
        c->tune = p->tuning;
        c->log = p->log;
        c->log_user = p->log_user;
        c->fail_alloc_nth = p->fail_alloc_nth;
    }
    pthread_mutex_init(&c->mu, NULL);
    int rc = 0;
    e = cudaSetDevice(dev);
    if (e == cudaSuccess) {
        cuda_trim_floor();
        struct cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess) {
            snprintf(c->dev_name, sizeof c->dev_name, "%.63s", prop.name);
            c->sms = prop.multiProcessorCount;
            c->cc_major = prop.major;
            c->max_smem = (int)prop.sharedMemPerBlockOptin;
        } else {
            (void)cudaGetLastError();
        }
        e = cudaStreamCreateWithPriority(&c->stream, cudaStreamNonBlocking, lane0_priority(c));
    }
    /* part of the fixed floor (16 KiB a lane), like the streams: not charged to a budget */
    size_t counter_bytes = (size_t)SH_MAX_LANES * SH_CUDA_IG_COUNTERS * sizeof(int);
    if (e == cudaSuccess)
        e = cudaMalloc((void **)&c->ig_counters, counter_bytes);
    if (e == cudaSuccess)
        e = cudaMemset(c->ig_counters, 0, counter_bytes);
    /* programmatic launches need sm_90 (kcommon.cuh) */
    c->pdl_small = c->cc_major >= 9 && !c->tune.cuda_no_pdl && !c->tune.cuda_no_pdl_small;
    if (e == cudaSuccess && c->cc_major >= 8)
        e = sh_k_igemm_init(c->max_smem, &c->wgmma);
    if (e == cudaSuccess)
        e = cudaStreamCreateWithFlags(&c->copy_stream, cudaStreamNonBlocking);
    for (int i = 0; i < SH_CUDA_STREAMS - 1 && e == cudaSuccess; i++)
        e = cudaStreamCreateWithFlags(&c->side[i], cudaStreamNonBlocking);
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&c->compute_done, cudaEventDisableTiming);
    if (e != cudaSuccess)
        rc = sh_cuda_rt_fail(err, e, "cuda backend init (cudaSetDevice/cudaStreamCreate/cudaEventCreate/cudaMalloc)",
                             __FILE__, __LINE__, dev);
    if (rc) {
        cuda_destroy(c);
        return rc;
    }
    out->iface = &cuda_i;
    out->lanes = &cuda_lanes;
    out->ctx = c;
    return 0;
}
