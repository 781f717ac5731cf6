/* MatMul (numpy semantics, batched, broadcast) and Gemm, plus the sgemm wrapper that every
 * GEMM of this backend goes through.
 *
 * Threading of sgemm: two ways, measured with tests/cpu/bench_cpu_gemm on a 16-core Xeon
 * (OpenBLAS 0.3.21 pthread), YOLOX-Nano 416x416, mean / best of 10 runs:
 *
 *   threads   OWN_THREADS (one call, OpenBLAS threads it)   SPLIT (1-thread calls over our pool)
 *     16          44.9 / 42.0 ms                               31.8 / 26.4 ms
 *      8          27.2 / 26.1 ms                               26.0 / 24.7 ms
 *      4          41.4 / 38.2 ms                               34.9 / 32.5 ms
 *      1          91.7 / 89.9 ms                               92.3 / 89.8 ms
 *
 * An isolated large GEMM is faster with OpenBLAS's own threads (64x10816x288: 1.8 vs 3.7 ms at
 * 16 threads: it partitions K and shares packed panels, while each of our slabs repacks A),
 * but on whole models SPLIT wins: between GEMMs OpenBLAS's threads keep spinning and compete
 * with our pool's threads for the same cores during the depthwise/im2col/elementwise steps
 * that dominate small vision nets, and its per-call thread count is process-wide state. So
 * SPLIT is the default: OpenBLAS pinned to one thread, the larger of M/N cut into one slab per
 * pool thread.
 *
 * The slabs run on oneDNN's dnnl_sgemm (one OpenMP thread each) unless the context is in
 * CPU_CONV_BLAS mode: OpenBLAS 0.3.21 does not know Zen 5 and falls back to its Haswell AVX2
 * kernels here, dnnl_sgemm uses AVX-512 (docs/cpu-perf.md). Most convolutions no longer come
 * here at all (conv.c runs them on oneDNN convolution primitives). */
#include "backends/cpu/cpu_impl.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <string.h>

typedef struct gemm_job {
    bool ta, tb, split_n, dnnl;
    int M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} gemm_job;

static void gemm_range(void *arg, int64_t b, int64_t e, int tid)
{
    const gemm_job *j = arg;
    enum CBLAS_TRANSPOSE ta = j->ta ? CblasTrans : CblasNoTrans, tb = j->tb ? CblasTrans : CblasNoTrans;
    if (j->dnnl) {
        /* oneDNN's sgemm (row-major, AVX-512 kernels; OpenBLAS 0.3.21 runs Haswell AVX2 ones on
         * this CPU), one OpenMP thread: the pool does the threading, as for OpenBLAS. */
        int prev = omp_get_max_threads();
        omp_set_num_threads(1);
        char cta = j->ta ? 'T' : 'N', ctb = j->tb ? 'T' : 'N';
        dnnl_status_t st;
        if (j->split_n) {
            const float *B = j->tb ? j->B + b * j->ldb : j->B + b;
            st = dnnl_sgemm(cta, ctb, j->M, e - b, j->K, j->alpha, j->A, j->lda, B, j->ldb, j->beta, j->C + b, j->ldc);
        } else {
            const float *A = j->ta ? j->A + b : j->A + b * j->lda;
            st = dnnl_sgemm(cta, ctb, e - b, j->N, j->K, j->alpha, A, j->lda, j->B, j->ldb, j->beta,
                            j->C + b * j->ldc, j->ldc);
        }
        omp_set_num_threads(prev);
        if (st == dnnl_success)
            return;
    }
    if (j->split_n) {
        const float *B = j->tb ? j->B + b * j->ldb : j->B + b;
        cblas_sgemm(CblasRowMajor, ta, tb, j->M, (int)(e - b), j->K, j->alpha, j->A, j->lda, B, j->ldb,
                    j->beta, j->C + b, j->ldc);
    } else {
        const float *A = j->ta ? j->A + b : j->A + b * j->lda;
        cblas_sgemm(CblasRowMajor, ta, tb, (int)(e - b), j->N, j->K, j->alpha, A, j->lda, j->B, j->ldb,
                    j->beta, j->C + b * j->ldc, j->ldc);
    }
}

void cpu_sgemm(cpu_ctx *ctx, bool trans_a, bool trans_b, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (K <= 0) {
        for (int i = 0; i < M; i++)
            for (int jx = 0; jx < N; jx++)
                C[(int64_t)i * ldc + jx] = beta == 0.0f ? 0.0f : beta * C[(int64_t)i * ldc + jx];
        return;
    }
    gemm_job j = {.ta = trans_a, .tb = trans_b, .M = M, .N = N, .K = K, .lda = lda, .ldb = ldb,
                  .ldc = ldc, .alpha = alpha, .beta = beta, .A = A, .B = B, .C = C,
                  .dnnl = ctx->dnnl_engine && ctx->conv_impl != CPU_CONV_BLAS &&
                          ctx->blas_mode == CPU_BLAS_SPLIT};
    double flops = 2.0 * M * N * K;
    if (ctx->blas_mode == CPU_BLAS_OWN_THREADS || ctx->n_threads == 1 || flops < 2e5) {
        j.split_n = true;
        gemm_range(&j, 0, N, 0);
        return;
    }
    /* One slab per thread: every sgemm call packs the whole shared operand again, so more,
     * smaller slabs cost more than the load balance they buy. Slabs stay multiples of 16 and
     * at least 64 wide to keep OpenBLAS's micro-kernels at full width. */
    j.split_n = N >= M;
    int64_t len = j.split_n ? N : M;
    int64_t grain = (len + ctx->n_threads - 1) / ctx->n_threads;
    grain = (grain + 15) / 16 * 16;
    if (grain < 64)
        grain = 64;
    if (len <= grain) {
        gemm_range(&j, 0, len, 0);
        return;
    }
    cpu_parallel_for_chunks(ctx->pool, len, grain, gemm_range, &j);
}

/* ---- MatMul --------------------------------------------------------------------------------- */

typedef struct matmul_params {
    int a, b, y;
    int M, N, K;
    int nb;                          /* batch rank of the output */
    int64_t batch;                   /* product of the output batch dims */
    int64_t bdims[SH_MAX_DIMS];
    int64_t sa[SH_MAX_DIMS], sb[SH_MAX_DIMS];   /* batch strides in matrices (0 = broadcast) */
    bool fold_batch;                 /* B shared by all batches, A contiguous: one GEMM */
} matmul_params;

typedef struct mm_job {
    const matmul_params *p;
    const float *A, *B;
    float *Y;
} mm_job;

static void mm_batch_range(void *arg, int64_t b0, int64_t b1, int tid)
{
    const mm_job *j = arg;
    const matmul_params *p = j->p;
    for (int64_t bi = b0; bi < b1; bi++) {
        int64_t ia = 0, ib = 0, rem = bi;
        for (int d = p->nb - 1; d >= 0; d--) {
            int64_t c = rem % p->bdims[d];
            rem /= p->bdims[d];
            ia += c * p->sa[d];
            ib += c * p->sb[d];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, p->M, p->N, p->K, 1.0f,
                    j->A + ia * p->M * p->K, p->K, j->B + ib * p->K * p->N, p->N, 0.0f,
                    j->Y + bi * p->M * p->N, p->N);
    }
}

static int matmul_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const matmul_params *p = vp;
    mm_job j = {.p = p, .A = ex->t[p->a], .B = ex->t[p->b], .Y = ex->t[p->y]};
    if (p->batch == 0 || p->M == 0 || p->N == 0)
        return 0;
    if (p->fold_batch || p->batch == 1) {
        cpu_sgemm(ex->ctx, false, false, (int)(p->M * p->batch), p->N, p->K, 1.0f, j.A, p->K, j.B, p->N, 0.0f,
                  j.Y, p->N);
        return 0;
    }
    if (ex->ctx->blas_mode == CPU_BLAS_SPLIT) {
        cpu_parallel_for(ex->ctx->pool, p->batch, 1, mm_batch_range, &j);
    } else {
        mm_batch_range(&j, 0, p->batch, 0);
    }
    return 0;
}

int cpu_prep_matmul(cpu_prep *pp, sh_err *err)
{
    matmul_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_tensor *A = cpu_in(pp, 0), *B = cpu_in(pp, 1), *Y = cpu_out(pp, 0);
    if (!A || !B || A->shape.ndim < 1 || B->shape.ndim < 1)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "needs two inputs of rank >= 1");
    p->a = pp->n->inputs[0];
    p->b = pp->n->inputs[1];
    p->y = pp->n->outputs[0];
    /* 1-D operands are promoted to matrices (and the added dim dropped from the output). */
    sh_shape sa = A->shape, sb = B->shape;
    sh_shape_matmul_promote(&sa, &sb);
    p->M = (int)sa.d[sa.ndim - 2];
    p->K = (int)sa.d[sa.ndim - 1];
    p->N = (int)sb.d[sb.ndim - 1];
    if (sb.d[sb.ndim - 2] != p->K)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "inner dims %d and %lld differ", p->K, (long long)sb.d[sb.ndim - 2]);
    int ba = sa.ndim - 2, bb = sb.ndim - 2;
    p->nb = ba > bb ? ba : bb;
    int64_t sta = 1, stb = 1;
    for (int d = p->nb - 1; d >= 0; d--) {
        int ia = d - (p->nb - ba), ib = d - (p->nb - bb);
        int64_t da = ia >= 0 ? sa.d[ia] : 1, db = ib >= 0 ? sb.d[ib] : 1;
        if (da != db && da != 1 && db != 1)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "batch dims %lld and %lld do not broadcast", (long long)da,
                           (long long)db);
        p->bdims[d] = da > db ? da : db;
        p->sa[d] = da == 1 ? 0 : sta;
        p->sb[d] = db == 1 ? 0 : stb;
        sta *= da;
        stb *= db;
    }
    p->batch = 1;
    for (int d = 0; d < p->nb; d++)
        p->batch *= p->bdims[d];
    if (p->batch * p->M * p->N != cpu_numel(Y))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output has %lld elements, expected %lld",
                       (long long)cpu_numel(Y), (long long)(p->batch * p->M * p->N));
    p->fold_batch = stb == 1 && sta == p->batch;
    pp->fn = matmul_run;
    return 0;
}

/* ---- Gemm ---------------------------------------------------------------------------------- */

typedef struct gemm_params {
    int a, b, c, y;
    bool ta, tb;
    int M, N, K;
    float alpha, beta;
    int64_t c_rs, c_cs;             /* C's strides over Y's rows/cols (0 = broadcast) */
    sh_act act;
    float act_a, act_b;
} gemm_params;

static int gemm_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const gemm_params *p = vp;
    const float *A = ex->t[p->a], *B = ex->t[p->b];
    float *Y = ex->t[p->y];
    float beta = 0.0f;
    if (p->c >= 0 && p->beta != 0.0f) {
        const float *C = ex->t[p->c];
        for (int i = 0; i < p->M; i++)
            for (int jx = 0; jx < p->N; jx++)
                Y[(int64_t)i * p->N + jx] = p->beta * C[i * p->c_rs + jx * p->c_cs];
        beta = 1.0f;
    }
    cpu_sgemm(ex->ctx, p->ta, p->tb, p->M, p->N, p->K, p->alpha, A, p->ta ? p->M : p->K, B,
              p->tb ? p->K : p->N, beta, Y, p->N);
    if (p->act != SH_ACT_NONE)
        cpu_apply_act(Y, (int64_t)p->M * p->N, p->act, p->act_a, p->act_b);
    return 0;
}

int cpu_prep_gemm(cpu_prep *pp, sh_err *err)
{
    gemm_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_node *n = pp->n;
    const sh_tensor *A = cpu_in(pp, 0), *B = cpu_in(pp, 1), *C = cpu_in(pp, 2), *Y = cpu_out(pp, 0);
    if (!A || !B || A->shape.ndim != 2 || B->shape.ndim != 2)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "A and B must be matrices");
    p->a = n->inputs[0];
    p->b = n->inputs[1];
    p->c = C ? n->inputs[2] : -1;
    p->y = n->outputs[0];
    p->ta = sh_node_int(n, "transA", 0) != 0;
    p->tb = sh_node_int(n, "transB", 0) != 0;
    p->alpha = sh_node_float(n, "alpha", 1.0f);
    p->beta = sh_node_float(n, "beta", 1.0f);
    p->M = (int)(p->ta ? A->shape.d[1] : A->shape.d[0]);
    p->K = (int)(p->ta ? A->shape.d[0] : A->shape.d[1]);
    p->N = (int)(p->tb ? B->shape.d[0] : B->shape.d[1]);
    int64_t kb = p->tb ? B->shape.d[1] : B->shape.d[0];
    if (kb != p->K || Y->shape.ndim != 2 || Y->shape.d[0] != p->M || Y->shape.d[1] != p->N)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "A is %dx%d, B gives K=%lld N=%d", p->M, p->K, (long long)kb, p->N);
    if (C) {
        /* Unidirectional broadcast of C to [M, N]. */
        int64_t cr = 1, cc = 1;
        if (C->shape.ndim == 1) {
            cc = C->shape.d[0];
        } else if (C->shape.ndim == 2) {
            cr = C->shape.d[0];
            cc = C->shape.d[1];
        } else if (C->shape.ndim != 0) {
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "C has rank %d", C->shape.ndim);
        }
        if ((cr != 1 && cr != p->M) || (cc != 1 && cc != p->N))
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "C [%lld,%lld] does not broadcast to [%d,%d]",
                           (long long)cr, (long long)cc, p->M, p->N);
        p->c_cs = cc == 1 ? 0 : 1;
        p->c_rs = cr == 1 ? 0 : cc;
    }
    p->act = n->act;
    p->act_a = n->act_a;
    p->act_b = n->act_b;
    pp->fn = gemm_run;
    return 0;
}
