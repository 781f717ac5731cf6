/* CPU backend internals shared by the op-family files of this folder.
 *
 * Compile walks the graph once and asks each op family to "prepare" a node: check its
 * attributes against the static shapes, precompute what the kernel needs (geometry, axis
 * maps) into a params block, and declare workspace, in-place and view facts in the
 * sh_program. Run then calls each node's kernel with the tensor pointers of this binding.
 * Kernels never allocate: all scratch comes from the node's workspace. */
#ifndef SHOAL_CPU_IMPL_H
#define SHOAL_CPU_IMPL_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "backends/cpu/cpu_report.h"

/* ---- thread pool (threadpool.c) ----------------------------------------------------- */
typedef struct cpu_pool cpu_pool;
/* Work on [begin, end) of a range; `tid` is the worker slot in [0, n_threads). */
typedef void (*cpu_range_fn)(void *arg, int64_t begin, int64_t end, int tid);

/* How long an idle worker, or the caller waiting for the workers, spins before it sleeps
 * (threadpool.c says why). */
#define CPU_POOL_SPIN_US 200
/* spin_us: 0 the default above, < 0 never spin. */
int cpu_pool_create(sh_allocator *a, int n_threads, int spin_us, cpu_pool **out);
void cpu_pool_destroy(cpu_pool *p);
int cpu_pool_threads(const cpu_pool *p);
/* Splits [0, n) into chunks of at least `grain` items and runs fn over them on the pool and
 * the calling thread; returns when all are done. Must not be called from inside fn. */
void cpu_parallel_for(cpu_pool *p, int64_t n, int64_t grain, cpu_range_fn fn, void *arg);
/* Same with chunks of exactly `chunk` items (the last may be shorter). */
void cpu_parallel_for_chunks(cpu_pool *p, int64_t n, int64_t chunk, cpu_range_fn fn, void *arg);

/* ---- backend context ------------------------------------------------------------------ */
typedef enum cpu_blas_mode {
    CPU_BLAS_SPLIT = 0,     /* single-threaded sgemm calls, columns split over our pool */
    CPU_BLAS_OWN_THREADS    /* one sgemm call, OpenBLAS threads it */
} cpu_blas_mode;

/* How Conv runs (bench hook sh_backend_cpu_set_conv_impl; see conv.c for the measurements). */
typedef enum cpu_conv_impl {
    CPU_CONV_DNNL = 0,          /* oneDNN brgconv on NHWC copies, row bands over our pool;
                                   GEMMs (MatMul, ConvTranspose, fallbacks) on dnnl_sgemm */
    CPU_CONV_BLAS,              /* im2col + OpenBLAS sgemm over our pool */
    CPU_CONV_DNNL_1X1_GEMM,     /* as CPU_CONV_DNNL, but 1x1 stride-1 convs on dnnl_sgemm */
    CPU_CONV_DNNL_INT8_AS_F32   /* as CPU_CONV_DNNL, but the integer convs on oneDNN's float
                                   convolution, as without VNNI (qconv_dnnl.c) */
} cpu_conv_impl;

typedef struct cpu_ctx {
    sh_allocator *alloc;
    cpu_pool *pool;
    int n_threads;
    cpu_blas_mode blas_mode;
    cpu_conv_impl conv_impl;
    void *dnnl_engine;      /* dnnl_engine_t / dnnl_stream_t (conv.c); NULL when unavailable */
    void *dnnl_stream;
    bool no_layout_flow;    /* shoal_tuning.cpu_no_layout_flow: NHWC only on conv -> conv edges */
    int pool_spin_us;       /* shoal_tuning.cpu_pool_spin_us, for pools made later */
    int winograd;           /* shoal_tuning.cpu_winograd: 0 below AVX-512, 1 everywhere, -1 never */
    int igemm;              /* shoal_tuning.cpu_igemm: 0 below AVX-512, 1 everywhere, -1 never */
    bool igemm_no_1x1;      /* bench hook (bench_cpu_model): 1x1 convs stay on oneDNN */
    double *prof_ms;        /* [SH_OP_COUNT] time per op when profiling (bench only), else NULL */
    double *prof_node_ms;   /* [prof_node_cap] time per node index (bench tool only), else NULL */
    int prof_node_cap;
} cpu_ctx;

/* ---- compile / run --------------------------------------------------------------------- */
typedef struct cpu_exec {
    cpu_ctx *ctx;
    const sh_graph *g;
    void *const *t;       /* tensor pointers of this binding */
    void *ws;             /* this node's workspace */
} cpu_exec;

typedef int (*cpu_kernel_fn)(const cpu_exec *ex, const sh_node *n, const void *params, sh_err *err);

/* Which activation layouts a prepared kernel can run in (layout.c decides, after every node is
 * prepared). Every tensor is NCHW unless the layout pass makes it NHWC. */
typedef enum cpu_layout_role {
    CPU_LAYOUT_NCHW = 0,    /* reads and writes NCHW only */
    CPU_LAYOUT_CONV,        /* input 0 and output 0 each NCHW or NHWC, chosen apart (oneDNN Conv) */
    CPU_LAYOUT_FOLLOWS      /* every non-constant rank-4 input and output in one layout, either */
} cpu_layout_role;

/* Switches a prepared kernel to NHWC: for CPU_LAYOUT_CONV per side (called for every such
 * node, so that it can also size its workspace for the final choice), for
 * CPU_LAYOUT_FOLLOWS with both true when its tensors became NHWC. */
typedef void (*cpu_to_nhwc_fn)(sh_program *prog, int k, void *params, bool in_nhwc, bool out_nhwc);

typedef struct cpu_prep {
    cpu_ctx *ctx;
    const sh_graph *g;
    sh_program *p;
    int k;                 /* node index */
    const sh_node *n;
    /* set by the prepare function */
    cpu_kernel_fn fn;
    void *params;          /* from ctx->alloc (sh_calloc), freed with the program */
    /* Optional: releases what params own beyond their block (library handles). */
    void (*free_params)(cpu_ctx *ctx, void *params);
    /* Optional: constant tensor `pack_tensor` is stored in a kernel-specific layout of
     * p->weight_bytes[pack_tensor] bytes (set by prepare), written by pack(). */
    int pack_tensor;
    int (*pack)(cpu_ctx *ctx, const void *params, const void *src, void *dst, sh_err *err);
    /* Optional: set by kernels that can run in NHWC (see cpu_layout_role). */
    cpu_layout_role layout;
    cpu_to_nhwc_fn to_nhwc;
} cpu_prep;

typedef int (*cpu_prepare_fn)(cpu_prep *pp, sh_err *err);

/* Per-family prepare entry points. */
int cpu_prep_conv(cpu_prep *pp, sh_err *err);
int cpu_prep_conv_transpose(cpu_prep *pp, sh_err *err);
int cpu_prep_batch_norm(cpu_prep *pp, sh_err *err);
int cpu_prep_unary(cpu_prep *pp, sh_err *err);
int cpu_prep_binary(cpu_prep *pp, sh_err *err);
int cpu_prep_cast(cpu_prep *pp, sh_err *err);
int cpu_prep_softmax(cpu_prep *pp, sh_err *err);
int cpu_prep_pool(cpu_prep *pp, sh_err *err);
int cpu_prep_global_avg_pool(cpu_prep *pp, sh_err *err);
int cpu_prep_reduce_mean(cpu_prep *pp, sh_err *err);
int cpu_prep_resize(cpu_prep *pp, sh_err *err);
int cpu_prep_matmul(cpu_prep *pp, sh_err *err);
int cpu_prep_gemm(cpu_prep *pp, sh_err *err);
int cpu_prep_view(cpu_prep *pp, sh_err *err);
int cpu_prep_concat(cpu_prep *pp, sh_err *err);
int cpu_prep_split(cpu_prep *pp, sh_err *err);
/* After the layout pass: makes the parts of a Concat/Split (fn, params: its prepared kernel)
 * views of the whole where each is one contiguous range of it (copy_ops.c); other kernels
 * are left alone. */
void cpu_cat_views(const sh_graph *g, sh_program *prog, cpu_kernel_fn fn, void *params);
int cpu_prep_slice(cpu_prep *pp, sh_err *err);
int cpu_prep_transpose(cpu_prep *pp, sh_err *err);
int cpu_prep_gather(cpu_prep *pp, sh_err *err);
int cpu_prep_expand(cpu_prep *pp, sh_err *err);
int cpu_prep_pad(cpu_prep *pp, sh_err *err);
int cpu_prep_shape(cpu_prep *pp, sh_err *err);
int cpu_prep_constant(cpu_prep *pp, sh_err *err);
int cpu_prep_constant_of_shape(cpu_prep *pp, sh_err *err);
int cpu_prep_frame_to_tensor(cpu_prep *pp, sh_err *err);
int cpu_prep_frame_decode(cpu_prep *pp, sh_err *err);
int cpu_prep_frame_nms(cpu_prep *pp, sh_err *err);
int cpu_prep_frame_masks(cpu_prep *pp, sh_err *err);
int cpu_prep_frame_landmarks(cpu_prep *pp, sh_err *err);
int cpu_prep_frame_crop(cpu_prep *pp, sh_err *err);
/* select_ops.c: the tail of end-to-end detection heads */
int cpu_prep_topk(cpu_prep *pp, sh_err *err);
int cpu_prep_gather_elements(cpu_prep *pp, sh_err *err);
int cpu_prep_gather_nd(cpu_prep *pp, sh_err *err);
int cpu_prep_reduce_max(cpu_prep *pp, sh_err *err);
int cpu_prep_argmax(cpu_prep *pp, sh_err *err);
int cpu_prep_tile(cpu_prep *pp, sh_err *err);
int cpu_prep_mod(cpu_prep *pp, sh_err *err);
int cpu_prep_range(cpu_prep *pp, sh_err *err);
/* quantized ops (quant.c, qconv.c) */
int cpu_prep_quantize_linear(cpu_prep *pp, sh_err *err);
int cpu_prep_dequantize_linear(cpu_prep *pp, sh_err *err);
int cpu_prep_dynamic_quantize_linear(cpu_prep *pp, sh_err *err);
int cpu_prep_qconv(cpu_prep *pp, sh_err *err);
int cpu_prep_qmatmul(cpu_prep *pp, sh_err *err);
int cpu_prep_qlinear_binary(cpu_prep *pp, sh_err *err);
int cpu_prep_qlinear_concat(cpu_prep *pp, sh_err *err);
int cpu_prep_qlinear_lut(cpu_prep *pp, sh_err *err);
int cpu_prep_qlinear_global_avg_pool(cpu_prep *pp, sh_err *err);
int cpu_prep_max_pool_q8(cpu_prep *pp, sh_err *err);

/* ---- helpers (cpu_backend.c) ------------------------------------------------------------ */
/* Allocates zeroed params of `size` bytes into pp->params. */
void *cpu_params(cpu_prep *pp, size_t size, sh_err *err);
const sh_tensor *cpu_in(const cpu_prep *pp, int i);    /* NULL if omitted */
const sh_tensor *cpu_out(const cpu_prep *pp, int i);
/* Reads an integer tensor (int32/int64) that must be a constant at compile time.
 * Returns the count or a negative status; at most `cap` values. */
int cpu_const_ints(const cpu_prep *pp, int input, int64_t *vals, int cap, sh_err *err);
/* Reads a float tensor constant (float32/float64) at compile time. */
int cpu_const_floats(const cpu_prep *pp, int input, double *vals, int cap, sh_err *err);
/* Error naming the node: CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "fmt", args...) (one arg at least). */
#define CPU_ERR(pp, err, st, fmt, ...) \
    sh_errf(err, st, "node %s (%s): " fmt, (pp)->n->name, sh_op_name((pp)->n->op), __VA_ARGS__)
int64_t cpu_numel(const sh_tensor *t);
/* Negative axis normalised to [0, rank); -1 when out of range. */
int cpu_axis(int64_t axis, int rank);

/* The logistic function as ONNX Runtime's MLAS computes it (a rational approximation on
 * [-18, 18] evaluated with fused multiply-adds), bit for bit. Dynamically quantized models
 * requantize every activation: a one-ulp difference from the reference in a sigmoid moves a
 * tensor's min/max and with it every integer code downstream, so matching the reference's
 * float function is what makes int8 outputs agree with it. Within 2.4e-7 of 1/(1+e^-x). */
static inline float cpu_logistic(float x)
{
    /* one select per bound: GCC if-converts (and so vectorizes) these, not a nested one */
    x = x < -18.0f ? -18.0f : x;
    x = x > 18.0f ? 18.0f : x;
    float x2 = x * x;
    float p = fmaf(x2, 4.37031012579801e-11f, 1.15627324459942e-07f);
    p = fmaf(p, x2, 6.08574864600143e-05f);
    p = fmaf(p, x2, 8.51377133304701e-03f);
    p = fmaf(p, x2, 2.48287947061529e-01f);
    p = p * x;
    float q = fmaf(x2, 6.10247389755681e-13f, 5.76102136993427e-09f);
    q = fmaf(q, x2, 6.29106785017040e-06f);
    q = fmaf(q, x2, 1.70198817374094e-03f);
    q = fmaf(q, x2, 1.16817656904453e-01f);
    q = fmaf(q, x2, 9.93151921023180e-01f);
    float y = p / q + 0.5f;
    y = y < 0.0f ? 0.0f : y;
    return y > 1.0f ? 1.0f : y;
}

/* Activation applied to a contiguous run (conv.c). */
void cpu_apply_act(float *x, int64_t n, sh_act act, float a, float b);
/* Row-major C[M,N] = A[M,K] (lda) * B[K,N] (ldb) + beta*C (ldc), with transposes as cblas.
 * Threads according to ctx->blas_mode (matmul.c). */
void cpu_sgemm(cpu_ctx *ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);

/* One prepared node as the layout pass sees it. */
typedef struct cpu_layout_node {
    cpu_layout_role role;
    cpu_to_nhwc_fn to_nhwc;
    void *params;
    bool nhwc;              /* set by the pass: a FOLLOWS node whose tensors went NHWC */
} cpu_layout_node;

/* Chooses every activation's layout: groups of tensors tied by CPU_LAYOUT_FOLLOWS nodes go NHWC
 * as a whole when only oneDNN convs (as input 0) and such nodes produce and read them and none is
 * a graph input or output; then switches the kernels (layout.c). nodes is [g->n_nodes]. */
int cpu_layout_flow(cpu_ctx *ctx, sh_program *prog, const sh_graph *g, cpu_layout_node *nodes,
                    sh_cpu_layout_stats *stats, sh_err *err);
/* Marks a node FOLLOWS when its non-constant inputs and outputs are all rank-4, of one
 * image, float32 and each the output's shape or a single value (elementwise ops). */
void cpu_layout_elementwise(cpu_prep *pp);
/* The to_nhwc of kernels that need no change to run on NHWC tensors. */
void cpu_layout_keep(sh_program *prog, int k, void *params, bool in_nhwc, bool out_nhwc);
/* One line on how a prepared Conv runs (implementation, ISA, layouts) into buf; -1 when fn is
 * not the Conv kernel (conv.c). */
int cpu_conv_describe(cpu_kernel_fn fn, const void *params, char *buf, size_t cap);
/* oneDNN's effective ISA for this process ("avx2", "avx512_core", ...; conv.c). */
const char *cpu_dnnl_isa_name(void);
/* oneDNN engine/stream for ctx (conv.c); failure leaves them NULL and Conv on OpenBLAS. */
void cpu_dnnl_init(cpu_ctx *ctx);
void cpu_dnnl_fini(cpu_ctx *ctx);

/* Row-major strides of a shape (elements). */
void cpu_strides(const sh_shape *s, int64_t *st);
/* Broadcast strides (elements, 0 on broadcast axes) of the operands A and B walked along the
 * node's output 0, for every binary op that broadcasts; align_b >= 0 is the legacy (opset < 7)
 * output axis B's dims start at, -1 numpy's right alignment. SHOAL_ERR_SHAPE naming the node
 * when the shapes do not broadcast. */
int cpu_bcast_pair(const cpu_prep *pp, const sh_tensor *A, const sh_tensor *B, int align_b, int64_t *sa,
                   int64_t *sb, sh_err *err);

/* Where row r (an index over every dim but the last of dims[0..nd)) starts in an operand walked
 * with strides st (Expand, strided copies). */
static inline int64_t cpu_row_offset(int nd, const int64_t *dims, const int64_t *st, int64_t r)
{
    int64_t off = 0, rem = r;
    for (int d = nd - 2; d >= 0; d--) {
        off += rem % dims[d] * st[d];
        rem /= dims[d];
    }
    return off;
}

/* The same for two broadcast operands walked with strides sa and sb (binary kernels, once a row,
 * hence inline). */
static inline void cpu_bcast_row(int nd, const int64_t *dims, const int64_t *sa, const int64_t *sb, int64_t r,
                                 int64_t *oa, int64_t *ob)
{
    int64_t a = 0, b = 0, rem = r;
    for (int d = nd - 2; d >= 0; d--) {
        int64_t c = rem % dims[d];
        rem /= dims[d];
        a += c * sa[d];
        b += c * sb[d];
    }
    *oa = a;
    *ob = b;
}

#endif
