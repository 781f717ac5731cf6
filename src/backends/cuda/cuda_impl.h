/* Private to the CUDA backend: the context, the compiled program and the status checks. */
#ifndef SHOAL_CUDA_IMPL_H
#define SHOAL_CUDA_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "backends/backend.h"
#include "backends/cuda/ktypes.h"
#include "backends/cuda/igemm.cuh"
#include "backends/cuda/conv_planar.cuh"

/* Per-thread device stack the context reserves up front. Every shoal kernel reports a 0-byte
 * stack frame (build/cuda-ptxas-report.txt); the driver raises the limit by itself for a
 * library kernel that needs more. Each byte here costs (threads resident on the device) bytes
 * of device memory: ~100 MiB per KiB on an H100. */
#define SH_CUDA_STACK_BYTES 0

/* Streams a program's independent steps may run on (cuda_streams.c): the compute stream and
 * SH_CUDA_STREAMS - 1 side streams. */
#define SH_CUDA_STREAMS 4

/* Split-K tile counters of the own convolution (igemm.cu): zero between launches. One block
 * of SH_CUDA_IG_COUNTERS / SH_CUDA_STREAMS per stream, as the steps of a stream never overlap
 * (a split conv has fewer tiles than the device has multiprocessors). */
#define SH_CUDA_IG_COUNTERS 4096

/* Graph outputs of a program that may be downloaded before the program ends (cuda_early.c). */
#define SH_CUDA_EARLY_MAX 8

/* A lane of concurrent execution (backend.h sh_lane_i): its own streams, so two models
 * never share a stream, and its own block of SH_CUDA_IG_COUNTERS split-K counters (at
 * ig_counters + lane * SH_CUDA_IG_COUNTERS), so two models never share a counter. Lane 0 is
 * the context's compute and side streams. Created on first use (lane_ready). */
typedef struct sh_cuda_lane {
    bool ready;
    cudaStream_t stream;
    cudaStream_t side[SH_CUDA_STREAMS - 1];   /* created as a program needs them */
    cudaEvent_t t0, t1;         /* timing of the lane's work since its last wait */
    bool timing;                /* t0 recorded since the last wait */
    bool timed;                 /* t0 .. t1 span the work up to the last wait */
    /* early downloads (cuda_early.c): the program last run here and its outputs' addresses,
     * valid until the lane's wait; the copies go on `copy`, joined back at the wait */
    const struct sh_cuda_prog *early_prog;
    const void *early_src[SH_CUDA_EARLY_MAX];
    cudaStream_t copy;
    cudaEvent_t copy_done;
    bool copy_pending;
} sh_cuda_lane;

/* cuDNN's heuristic choice for one convolution problem, remembered per context: a YOLO has
 * many convs of the same geometry, and each heuristic query costs milliseconds at load. */
#define SH_CUDA_ALGO_MEMO 256
typedef struct sh_cuda_algo_key {
    int dims[16];   /* x NCHW, y NCHW, w KCRS, then pads, strides, dilations */
    int group, transposed, channels_last;
} sh_cuda_algo_key;

typedef struct sh_cuda_algo_memo {
    sh_cuda_algo_key key;
    int algo;
    size_t ws;
} sh_cuda_algo_memo;

typedef struct sh_cuda_ctx {
    sh_allocator *alloc;
    int device;
    bool use_graphs;
    cudaStream_t stream;        /* compute; programs start and end here */
    cudaStream_t side[SH_CUDA_STREAMS - 1];   /* independent branches of a program */
    cudaStream_t cudnn_stream;  /* the stream the cuDNN handle is set to */
    cudaStream_t copy_stream;   /* uploads */
    cudaEvent_t compute_done;
    cudnnHandle_t cudnn;        /* created by the first compile that has a cuDNN conv */
    /* filled by compile, which callers serialize (the cuDNN handle is not thread-safe) */
    sh_cuda_algo_memo *algo_memo;   /* [SH_CUDA_ALGO_MEMO], allocated with the handle */
    int n_algo_memo;
    pthread_mutex_t mu;
    char dev_name[64];
    int sms, cc_major;          /* multiprocessors; compute capability (own convs need >= 8) */
    int max_smem;               /* opt-in shared memory per block, bytes */
    int wgmma;                  /* the own conv's sm_90a wgmma kernel runs here (igemm_wg.cu) */
    int *ig_counters;           /* [SH_MAX_LANES][SH_CUDA_IG_COUNTERS] device ints, zero at rest */
    sh_cuda_lane lanes[SH_MAX_LANES];
    cudaEvent_t *timeline;      /* [n_nodes] while sh_cuda_timeline captures, else NULL */
    shoal_tuning tune;          /* A/B switches, fixed at create (shoal.h) */
    bool pdl_small;             /* the small kernels launch as programmatic dependents */
    shoal_log_fn log;           /* the diagnostics the tuning asks for */
    void *log_user;
    /* test hook (sh_backend_params.fail_alloc_nth): the N-th device buffer allocation of this
     * context fails as cudaErrorMemoryAllocation would; 0 = off */
    long fail_alloc_nth, n_allocs;
} sh_cuda_ctx;

/* A line to the backend's log sink (INFO); nothing without one. */
void sh_cuda_logf(const sh_cuda_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- status checks: every call's text, file, line and device go into sh_err ---------- */
int sh_cuda_rt_fail(sh_err *err, cudaError_t e, const char *call, const char *file, int line,
                    int device);
int sh_cuda_dnn_fail(sh_err *err, cudnnStatus_t s, const char *call, const char *file, int line,
                     int device);

#define SH_CU(ctx, err, call)                                                                \
    do {                                                                                     \
        cudaError_t e_ = (call);                                                             \
        if (e_ != cudaSuccess)                                                               \
            return sh_cuda_rt_fail((err), e_, #call, __FILE__, __LINE__, (ctx)->device);     \
    } while (0)

#define SH_DNN(ctx, err, call)                                                               \
    do {                                                                                     \
        cudnnStatus_t s_ = (call);                                                           \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                      \
            return sh_cuda_dnn_fail((err), s_, #call, __FILE__, __LINE__, (ctx)->device);    \
    } while (0)

/* --- the compiled program ------------------------------------------------------------- */
typedef enum sh_cuda_kind {
    NK_SKIP = 0,   /* views, folded nodes: nothing to launch */
    NK_CONV,       /* cuDNN forward + bias/act epilogue */
    NK_IGEMM,      /* own implicit-GEMM conv, bias/act/residual fused (igemm.cu) */
    NK_CONVT,      /* cuDNN backward-data + bias/act epilogue */
    NK_DW,         /* own depthwise kernel */
    NK_BN,
    NK_UNARY,
    NK_BINARY,
    NK_COPY,       /* optional fill, then strided copies */
    NK_MEMCPY,     /* same bytes, new shape (a reshape that could not be a view) */
    NK_POOL,
    NK_MEAN,
    NK_RESIZE,
    NK_SOFTMAX,
    NK_GEMM,
    NK_PLANAR,     /* own conv of the fp32 NCHW graph input with few channels (conv_planar.cu) */
    NK_FRAME,      /* a frame op (cuda_frame.c, frame.cu) */
    NK_QUANT       /* a quantized op or int8 data movement (cuda_quant.c, quant.cu) */
} sh_cuda_kind;

typedef struct sh_cuda_copy {
    int in_slot;                /* node input slot read */
    int out_slot;               /* node output slot written */
    sh_k_copy p;
} sh_cuda_copy;

typedef struct sh_cuda_node {
    sh_cuda_kind kind;
    size_t *stage_in;           /* [n_inputs]: fp16 staging offset in the workspace, or SIZE_MAX */
    size_t *stage_out;          /* [n_outputs] */
    size_t op_ws_off, op_ws_bytes;
    sh_k_act act;
    int n;                      /* element count of output 0 */
    /* conv */
    cudnnTensorDescriptor_t xd, yd;
    cudnnFilterDescriptor_t wd;
    cudnnConvolutionDescriptor_t cd;
    int algo;
    /* asymmetric pads (TF 'SAME' exports): the input is padded into the workspace first */
    bool prepad;
    size_t prepad_off;
    int prepad_n;
    sh_k_copy prepad_copy;
    int conv_c, conv_inner, conv_outer;       /* bias epilogue shape */
    /* channels-last: cuDNN computes in conv_nhwc; an input or output stored in the other
     * layout is converted through the op's scratch (x_cvt/y_cvt, offsets in the scratch) */
    bool conv_nhwc, x_cvt, y_cvt;
    size_t xcv_off, ycv_off, dnn_ws_bytes;
    sh_k_copy xcv_copy, ycv_copy;
    /* own conv: geometry (split-K partials at the start of the op's scratch), and a fused
     * residual (the single Add consuming the output) read from tensor res_t */
    sh_k_igemm_p ig;
    sh_k_planar_p planar;
    bool has_res;
    int res_t;
    int ig_counter_off;         /* this step's block of the split-K counters */
    /* others */
    int bin_op;
    bool bin_flat;
    sh_k_bcast bc;
    float eps, fill_value;
    bool fill;
    int n_copies;
    sh_cuda_copy *copies;
    sh_k_pool pool;             /* pooling, and the depthwise conv's geometry */
    bool dw_taps;               /* depthwise: weights packed taps first (SH_WPACK_RS_FIRST) */
    sh_k_resize_p rs;
    sh_k_gemm_p gm;
    int r_outer, r_len, r_inner;              /* mean / softmax */
    size_t memcpy_bytes;
    struct sh_cuda_frame *frame;              /* frame op parameters (cuda_frame.c), owned */
    struct sh_cuda_quant *quant;              /* quantized node parameters (cuda_quant.c), owned */
} sh_cuda_node;

#define SH_CUDA_GRAPH_CACHE 4

/* Weight layouts beside plain row-major (0): a channels-last conv's [K, R, S, C], and taps
 * first, [A, B, R, S] -> [R, S, B, A]: a transposed conv run as a GEMM (ONNX's [C, K, R, S]
 * becomes [R, S, K, C]) and a channels-last depthwise conv ([C, 1, R, S] -> [R, S, 1, C], so
 * a tap's weights for 8 neighbouring channels are one 16-byte load). */
/* SH_WPACK_RAW: the constant's own bytes in its own dtype (what quantized nodes read);
 * SH_WPACK_Q8: int8 conv weights for the tensor cores (qgemm.cuh). */
enum sh_cuda_wpack { SH_WPACK_PLAIN = 0, SH_WPACK_KRSC, SH_WPACK_RS_FIRST, SH_WPACK_RAW, SH_WPACK_Q8 };

typedef struct sh_cuda_prog {
    sh_cuda_node *nodes;        /* [n_nodes] */
    bool *f32;                  /* [n_tensors] stored as fp32 on the device (graph inputs/outputs) */
    bool *nhwc;                 /* [n_tensors] 4-D fp16 activation stored channels-last */
    unsigned char *wpack;       /* [n_tensors] how a weight is packed (sh_cuda_wpack) */
    unsigned char *fused_add;   /* [n_nodes] Add folded into the conv before it: 1 + the input
                                   slot holding that conv's output (the Add is a view now), else 0 */
    unsigned char *tview;       /* [n_tensors] a view of its source with the last two axes
                                   swapped (a Transpose folded into the MatMuls reading it) */
    int *ld;                    /* [n_tensors] pixel stride (elements) of a channels-last channel
                                   slice viewed in place (cuda_views.c), 0 when dense */
    bool capture_failed;        /* cuDNN refused capture once: run eagerly from then on */
    /* concurrency (cuda_streams.c): each real step's stream, the steps it waits for on other
     * streams (waits[wait_first[k] .. wait_first[k+1]]), and the events those steps record */
    int n_streams;              /* 1: everything on the compute stream */
    signed char *stream_of;     /* [n_nodes] */
    int *wait_first, *waits;
    cudaEvent_t *events;        /* [n_nodes], NULL where no step waits for it */
    cudaEvent_t fork_ev, join_ev[SH_CUDA_STREAMS];
    /* graph outputs finished before the last step (cuda_early.c): tensor, producing step, and
     * per lane the event that step records (created on the lane's first run) */
    int n_early;
    int early_t[SH_CUDA_EARLY_MAX], early_step[SH_CUDA_EARLY_MAX];
    cudaEvent_t early_ev[SH_MAX_LANES][SH_CUDA_EARLY_MAX];
    struct {
        unsigned long binding_id;
        int lane;               /* the graph bakes in the lane's counters and side streams */
        cudaGraphExec_t exec;
        unsigned long last_use;
    } graphs[SH_CUDA_GRAPH_CACHE];
    unsigned long use_clock;
} sh_cuda_prog;

int sh_cuda_compile(void *ctx, const sh_graph *g, sh_program **out, sh_err *err);
void sh_cuda_program_free(void *ctx, sh_program *p);
int sh_cuda_pack_weight(void *ctx, const sh_program *p, int t, void *dst, sh_err *err);
bool sh_cuda_supports_node(void *ctx, const sh_graph *g, int node);
int sh_cuda_run(void *ctx, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                unsigned long binding_id, sh_err *err);
int sh_cuda_ensure_cudnn(sh_cuda_ctx *c, sh_err *err);
/* Concurrent execution on lanes (cuda_lanes.c, run_async in cuda_run.c; backend.h). */
int sh_cuda_upload_async(void *ctx, int lane, void *dst, const void *src, size_t n, sh_err *err);
int sh_cuda_run_async(void *ctx, int lane, sh_program *p, void *const *tensor_ptrs, void *const *workspace_ptrs,
                      unsigned long binding_id, sh_err *err);
int sh_cuda_download_async(void *ctx, int lane, void *dst, const void *src, size_t n, sh_err *err);
int sh_cuda_lane_wait(void *ctx, int lane, double *busy_ms, sh_err *err);
int sh_cuda_lanes_span(void *ctx, const int *lanes, int n, double *ms, sh_err *err);
/* Creates the lane's stream, events and its first n_streams - 1 side streams where missing.
 * Caller holds c->mu. */
int sh_cuda_lane_ready(sh_cuda_ctx *c, int lane, int n_streams, sh_err *err);
/* Enqueues every step of p on the lane's streams (cuda_run.c; captured or eager). */
int sh_cuda_enqueue_all(sh_cuda_ctx *c, int lane, const sh_program *p, void *const *tp, void *const *wp, sh_err *err);
const char *sh_cuda_kind_name(int kind);   /* the profile's name of a step kind */
/* Early downloads (cuda_early.c): an output finished before its program's last step is
 * copied to the host from then on, beside the steps still running, instead of after them. */
void sh_cuda_early_plan(const sh_cuda_ctx *c, const sh_graph *g, sh_cuda_prog *cp);
int sh_cuda_early_events(sh_cuda_ctx *c, sh_cuda_prog *cp, int lane, sh_err *err);
int sh_cuda_early_record(sh_cuda_ctx *c, const sh_cuda_prog *cp, int lane, int k, cudaStream_t s, sh_err *err);
void sh_cuda_early_note(sh_cuda_ctx *c, const sh_cuda_prog *cp, int lane, void *const *tensor_ptrs);
/* *issued: the copy went on the lane's copy stream (else the caller copies in order). */
int sh_cuda_early_download(sh_cuda_ctx *c, int lane, void *dst, const void *src, size_t n, bool *issued,
                           sh_err *err);
int sh_cuda_early_join(sh_cuda_ctx *c, int lane, sh_err *err);
void sh_cuda_early_free(sh_cuda_prog *cp);
void sh_cuda_lanes_destroy(sh_cuda_ctx *c);
/* Streams, waits and release_step for a compiled program (cuda_streams.c). The _steps part
 * is pure host logic (no device; tests/cuda/test_cuda_schedule.c); sh_cuda_schedule adds the
 * events and reads SHOAL_CUDA_STREAMS. */
/* window: how many real steps a branch may run ahead of the others (<= 0: no limit);
 * side_max: steps writing more bytes stay on the first stream (0: no limit).
 * SHOAL_CUDA_STREAM_WINDOW and SHOAL_CUDA_STREAM_SIDE_KIB override the defaults. */
#define SH_CUDA_STREAM_WINDOW 4
#define SH_CUDA_STREAM_SIDE_KIB 4096
int sh_cuda_schedule_steps(sh_allocator *a, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int n_streams,
                           int window, size_t side_max, sh_err *err);
int sh_cuda_schedule(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, sh_err *err);

/* Channel-slice views (cuda_views.c): after every node is built, Concat inputs and Split
 * outputs whose readers all take a pixel stride become views (SHOAL_CUDA_NO_SLICE_VIEWS=1
 * turns it off); after the alias chains are flattened, sh_cuda_view_strides fills cp->ld and
 * the own convs' x_ld/y_ld/r_ld. Host logic, no device calls. */
int sh_cuda_slice_views(sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, sh_err *err);
void sh_cuda_view_strides(const sh_graph *g, const sh_program *p, sh_cuda_prog *cp);

/* IEEE half from float, round to nearest even, saturating at +-65504 (NaN kept). */
uint16_t sh_cuda_f32_to_f16(float f);

#endif
