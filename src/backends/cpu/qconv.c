/* Integer convolution and matrix products: ConvInteger and QLinearConv (1-D and 2-D, groups,
 * per-tensor or per-output-channel weight zero points and scales), MatMulInteger and
 * QLinearMatMul (batched, broadcast).
 *
 * The convolution is im2col + GEMM over chunks of output pixels, one chunk per pool task.
 * The GEMM runs in float32 on zero-point-corrected operands, QCONV_KSTEP rows of K at a time:
 * every product is an integer of magnitude <= 255 * 255, so every partial sum of a step stays
 * below 2^24 and is exact in float32 whatever the summation order or FMA use, and the steps
 * are added in int32. That is the exact accumulator ONNX specifies, at OpenBLAS sgemm speed.
 * Padding contributes 0 after the zero point is removed, which is what padding the raw input
 * with its zero point gives. */
#include "backends/cpu/quant_impl.h"

#include <cblas.h>
#include <string.h>

#include "graph/passes.h"

/* Most output pixels per task (the im2col block is K x chunk floats): sgemm's packing cost
 * per call favours long rows (256 -> 1024 pixels took yolov8n's ConvIntegers from 490 to
 * 280 ms on 2 loaded threads); smaller images are split evenly over the threads instead. */
#define QCONV_CHUNK 1024
/* K rows per exact float32 GEMM step: 258 * 255 * 255 < 2^24. */
#define QCONV_KSTEP 256


typedef struct qconv_job {
    const qconv_params *p;
    const void *x;            /* image n */
    void *y;                  /* image n */
    const float *wd;          /* group g's [Mg x K] */
    char *thread_ws;
    int64_t g;
    int32_t xz;
    const float *scale;       /* [M] requantization scales (QLinearConv) */
    const int32_t *bias;      /* [M] or NULL */
    int32_t yz;
    const float *table;       /* dequantizing QLinearConv: [256] code -> output */
    const uint8_t *qtable;    /* requantizing QLinearConv: [256] code -> output code */
} qconv_job;

static void qconv_chunk(void *arg, int64_t p0, int64_t p1, int tid)
{
    const qconv_job *j = arg;
    const qconv_params *p = j->p;
    int64_t cw = p1 - p0, ohw = p->OH * p->OW, khw = p->kh * p->kw;
    float *col = (float *)(j->thread_ws + (size_t)tid * p->ws_thread);
    float *step = col + p->K * p->chunk;
    int32_t *acc = (int32_t *)(step + p->Mg * p->chunk);
    for (int64_t k = 0; k < p->K; k++) {
        int64_t c = j->g * p->Cg + k / khw, ky = (k % khw) / p->kw, kx = k % p->kw;
        float *dst = col + k * cw;
        /* one output row at a time: the input row is fixed and the valid columns are a range */
        for (int64_t q = p0; q < p1;) {
            int64_t oy = q / p->OW, ox0 = q % p->OW;
            int64_t ox1 = p->OW < ox0 + (p1 - q) ? p->OW : ox0 + (p1 - q);
            float *d = dst + (q - p0);
            int64_t iy = oy * p->sh - p->pt + ky * p->dh;
            int64_t n = ox1 - ox0;
            if (iy < 0 || iy >= p->H) {
                memset(d, 0, (size_t)n * sizeof(float));
            } else {
                /* ox with 0 <= ox * sw - pl + kx * dw < W */
                int64_t off = kx * p->dw - p->pl, lo = ox0, hi = ox1;
                if (off < 0)
                    lo = lo > (-off + p->sw - 1) / p->sw ? lo : (-off + p->sw - 1) / p->sw;
                int64_t lim = p->W - off <= 0 ? 0 : (p->W - off + p->sw - 1) / p->sw;
                hi = hi < lim ? hi : lim;
                lo = lo < ox1 ? lo : ox1;
                hi = hi > lo ? hi : lo;
                for (int64_t ox = ox0; ox < lo; ox++)
                    d[ox - ox0] = 0.0f;
                int64_t row = (c * p->H + iy) * p->W + off;
                float xz = (float)j->xz;
                if (p->xdt == SH_DT_UINT8) {
                    const uint8_t *src = (const uint8_t *)j->x + row;
                    for (int64_t ox = lo; ox < hi; ox++)
                        d[ox - ox0] = (float)src[ox * p->sw] - xz;
                } else {
                    const int8_t *src = (const int8_t *)j->x + row;
                    for (int64_t ox = lo; ox < hi; ox++)
                        d[ox - ox0] = (float)src[ox * p->sw] - xz;
                }
                for (int64_t ox = hi; ox < ox1; ox++)
                    d[ox - ox0] = 0.0f;
            }
            q += n;
        }
    }
    for (int64_t k0 = 0; k0 < p->K; k0 += QCONV_KSTEP) {
        int64_t kl = p->K - k0 < QCONV_KSTEP ? p->K - k0 : QCONV_KSTEP;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)p->Mg, (int)cw, (int)kl, 1.0f, j->wd + k0,
                    (int)p->K, col + k0 * cw, (int)cw, 0.0f, step, (int)cw);
        int64_t n = p->Mg * cw;
        if (k0 == 0)
            for (int64_t i = 0; i < n; i++)
                acc[i] = (int32_t)step[i];
        else
            for (int64_t i = 0; i < n; i++)
                acc[i] += (int32_t)step[i];
    }
    for (int64_t m = 0; m < p->Mg; m++) {
        int64_t oc = j->g * p->Mg + m;
        const int32_t *a = acc + m * cw;
        if (!p->qlinear) {
            int32_t *y = (int32_t *)j->y + oc * ohw + p0;
            for (int64_t i = 0; i < cw; i++)
                y[i] = a[i];
            continue;
        }
        int32_t bias = j->bias ? j->bias[oc] : 0;
        float s = j->scale[oc], z = (float)j->yz;
        for (int64_t i = 0; i < cw; i++)
            qconv_put(p, j->y, oc * ohw + p0 + i, rintf((float)(a[i] + bias) * s) + z, j->table, j->qtable);
    }
}

void qconv_dequant_table(const cpu_exec *ex, const qconv_params *p, float *table, uint8_t *qtable)
{
    float ys = q_scale(ex, p->ys, 0), z = (float)q_zp(ex, p->yz, p->ydt, 0);
    int32_t lo = (int32_t)q_lo(p->ydt);
    for (int32_t c = 0; c < 256; c++)
        table[c] = ((float)(c + lo) - z) * ys;
    cpu_apply_act(table, 256, p->act, p->act_a, p->act_b);
    if (p->requant)
        q_quantize_run(table, qtable, p->qdt, 256, q_scale(ex, p->qs, 0), q_zp(ex, p->qz, p->qdt, 0));
}

static int qconv_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qconv_params *p = vp;
    if (p->dnn)
        return qconv_dnnl_run(ex, n, p, err);
    float *wd = ex->ws;
    char *rest = (char *)ex->ws + p->ws_wd;
    float *scale = (float *)(rest + (size_t)ex->ctx->n_threads * p->ws_thread);
    const void *w = ex->t[p->w];
    for (int64_t m = 0; m < p->M; m++) {
        int32_t z = q_zp(ex, p->wz, p->wdt, p->n_wz > 1 ? m : 0);
        for (int64_t k = 0; k < p->K; k++)
            wd[m * p->K + k] = (float)(q_get(w, p->wdt, m * p->K + k) - z);
    }
    qconv_job j = {.p = p, .thread_ws = rest, .xz = q_zp(ex, p->xz, p->xdt, 0)};
    if (p->qlinear) {
        float xs = q_scale(ex, p->xs, 0), ys = q_scale(ex, p->ys, 0);
        for (int64_t m = 0; m < p->M; m++)
            scale[m] = xs * q_scale(ex, p->ws, p->n_ws > 1 ? m : 0) / ys;
        j.scale = scale;
        j.bias = p->b >= 0 ? ex->t[p->b] : NULL;
        j.yz = q_zp(ex, p->yz, p->ydt, 0);
        if (p->dequant) {
            float *table = scale + p->M;
            qconv_dequant_table(ex, p, table, (uint8_t *)(table + 256));
            j.table = table;
            j.qtable = (const uint8_t *)(table + 256);
        }
    }
    size_t xe = sh_dtype_size(p->xdt), ye = sh_dtype_size(ex->g->tensors[p->y].dtype);
    for (int64_t b = 0; b < p->N; b++) {
        j.x = (const char *)ex->t[p->x] + (size_t)(b * p->C * p->H * p->W) * xe;
        j.y = (char *)ex->t[p->y] + (size_t)(b * p->M * p->OH * p->OW) * ye;
        for (int64_t g = 0; g < p->G; g++) {
            j.g = g;
            j.wd = wd + g * p->Mg * p->K;
            cpu_parallel_for_chunks(ex->ctx->pool, p->OH * p->OW, p->chunk, qconv_chunk, &j);
        }
    }
    return 0;
}

/* A zero point or scale of the weights: one value, or one per output channel. */
static int weight_param(cpu_prep *pp, int slot, bool scale, sh_dtype dt, int64_t M, int64_t *count, sh_err *err)
{
    const sh_tensor *t = cpu_in(pp, slot);
    *count = 1;
    if (!t)
        return scale ? CPU_ERR(pp, err, SHOAL_ERR_PARSE, "input %d (weight scale) is missing", slot) : 0;
    int64_t n = cpu_numel(t);
    if ((n != 1 && n != M) || t->dtype != (scale ? SH_DT_FLOAT32 : dt))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "'%s' %s of %lld values (one, or %lld of dtype %s)", t->name,
                       sh_dtype_name(t->dtype), (long long)n, (long long)M,
                       sh_dtype_name(scale ? SH_DT_FLOAT32 : dt));
    *count = n;
    return 0;
}

static int scalar_param(cpu_prep *pp, int slot, bool scale, sh_dtype dt, sh_err *err)
{
    const sh_tensor *t = cpu_in(pp, slot);
    if (!t)
        return scale ? CPU_ERR(pp, err, SHOAL_ERR_PARSE, "input %d (scale) is missing", slot) : 0;
    if (cpu_numel(t) != 1 || t->dtype != (scale ? SH_DT_FLOAT32 : dt))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "'%s' must be a %s scalar (per-tensor)", t->name,
                       sh_dtype_name(scale ? SH_DT_FLOAT32 : dt));
    return 0;
}

static int opt_in(const cpu_prep *pp, int i)
{
    return cpu_in(pp, i) ? pp->n->inputs[i] : -1;
}

int cpu_prep_qconv(cpu_prep *pp, sh_err *err)
{
    bool ql = pp->n->op == SH_OP_QLINEAR_CONV;
    int wi = ql ? 3 : 1;
    const sh_tensor *X = cpu_in(pp, 0), *Wt = cpu_in(pp, wi), *Y = cpu_out(pp, 0);
    bool deq = ql && sh_node_int(pp->n, SH_QCONV_DEQUANTIZE, 0);
    bool req = deq && sh_node_int(pp->n, SH_QCONV_REQUANTIZE, 0);
    /* a dequantizing QLinearConv's codes have the zero point's dtype (uint8 without one) */
    sh_dtype code_dt = !deq ? Y->dtype : cpu_in(pp, 7) ? cpu_in(pp, 7)->dtype : SH_DT_UINT8;
    if (!Wt || !q8_dt(X->dtype) || !q8_dt(Wt->dtype) || (deq && !req && Y->dtype != SH_DT_FLOAT32) ||
        (req && !q8_dt(Y->dtype)) ||
        (ql ? !q8_dt(code_dt) : Y->dtype != SH_DT_INT32))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "input %s, weight %s, output %s", sh_dtype_name(X->dtype),
                       Wt ? sh_dtype_name(Wt->dtype) : "-", sh_dtype_name(Y->dtype));
    qconv_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    sh_window_geom geo;
    int rc = sh_node_window_geom(pp->g, pp->k, &geo, err);
    if (rc)
        return rc;
    if (geo.n < 1 || geo.n > 2)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%d spatial dims (1-D and 2-D only)", geo.n);
    bool two = geo.n == 2;
    p->qlinear = ql;
    p->x = pp->n->inputs[0];
    p->w = pp->n->inputs[wi];
    p->y = pp->n->outputs[0];
    p->xdt = X->dtype;
    p->wdt = Wt->dtype;
    p->ydt = code_dt;
    p->dequant = deq;
    p->requant = req;
    p->qdt = Y->dtype;
    p->qs = p->qz = -1;
    p->act = pp->n->act;
    p->act_a = pp->n->act_a;
    p->act_b = pp->n->act_b;
    if (!deq && p->act != SH_ACT_NONE)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "a fused activation on an int8 output");
    p->N = X->shape.d[0];
    p->C = X->shape.d[1];
    p->H = two ? X->shape.d[2] : 1;
    p->W = X->shape.d[X->shape.ndim - 1];
    p->M = Y->shape.d[1];
    p->OH = two ? Y->shape.d[2] : 1;
    p->OW = Y->shape.d[Y->shape.ndim - 1];
    p->G = geo.group;
    p->Cg = p->C / p->G;
    p->Mg = p->M / p->G;
    p->kh = two ? geo.kernel[0] : 1;
    p->kw = geo.kernel[geo.n - 1];
    p->sh = two ? geo.stride[0] : 1;
    p->sw = geo.stride[geo.n - 1];
    p->dh = two ? geo.dilation[0] : 1;
    p->dw = geo.dilation[geo.n - 1];
    p->pt = two ? geo.pad_begin[0] : 0;
    p->pl = geo.pad_begin[geo.n - 1];
    p->pb = two ? geo.pad_end[0] : 0;
    p->pr = geo.pad_end[geo.n - 1];
    p->K = p->Cg * p->kh * p->kw;
    if (ql) {
        p->xs = pp->n->inputs[1];
        p->xz = opt_in(pp, 2);
        p->ws = pp->n->inputs[4];
        p->wz = opt_in(pp, 5);
        p->ys = pp->n->inputs[6];
        p->yz = opt_in(pp, 7);
        p->b = opt_in(pp, 8);
        if ((rc = scalar_param(pp, 1, true, X->dtype, err)) || (rc = scalar_param(pp, 2, false, X->dtype, err)) ||
            (rc = weight_param(pp, 4, true, Wt->dtype, p->M, &p->n_ws, err)) ||
            (rc = weight_param(pp, 5, false, Wt->dtype, p->M, &p->n_wz, err)) ||
            (rc = scalar_param(pp, 6, true, code_dt, err)) || (rc = scalar_param(pp, 7, false, code_dt, err)))
            return rc;
        if (req) {
            p->qs = pp->n->inputs[9];
            p->qz = opt_in(pp, 10);
            if ((rc = scalar_param(pp, 9, true, Y->dtype, err)) || (rc = scalar_param(pp, 10, false, Y->dtype, err)))
                return rc;
        }
        const sh_tensor *B = cpu_in(pp, 8);
        if (B && (B->dtype != SH_DT_INT32 || cpu_numel(B) != p->M))
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "bias '%s' must be int32 [%lld]", B->name, (long long)p->M);
    } else {
        p->xs = p->ws = p->ys = p->yz = p->b = -1;
        p->xz = opt_in(pp, 2);
        p->wz = opt_in(pp, 3);
        if ((rc = scalar_param(pp, 2, false, X->dtype, err)) ||
            (rc = weight_param(pp, 3, false, Wt->dtype, p->M, &p->n_wz, err)))
            return rc;
    }
    if (qconv_dnnl_prepare(pp, p) == 0) {
        pp->fn = qconv_run;
        return 0;
    }
    int64_t per_thread = (p->OH * p->OW + pp->ctx->n_threads - 1) / pp->ctx->n_threads;
    p->chunk = per_thread < 64 ? 64 : per_thread > QCONV_CHUNK ? QCONV_CHUNK : (per_thread + 15) / 16 * 16;
    size_t wd, th, col, acc, sc, total;
    if (!sh_mul_size((size_t)p->M, (size_t)p->K, &wd) || !sh_mul_size(wd, sizeof(float), &wd) ||
        !sh_mul_size((size_t)p->K, (size_t)p->chunk * sizeof(float), &col) ||
        !sh_mul_size((size_t)p->Mg, (size_t)p->chunk * (sizeof(float) + sizeof(int32_t)), &acc) ||
        !sh_add_size(col, acc, &th) ||
        !sh_mul_size(th, (size_t)pp->ctx->n_threads, &total) || !sh_add_size(total, wd, &total) ||
        !sh_mul_size((size_t)p->M, sizeof(float), &sc) || !sh_add_size(sc, QCONV_TABLE_BYTES, &sc) ||
        !sh_add_size(total, sc, &total) ||
        p->K > INT32_MAX || p->Mg > INT32_MAX)
        return CPU_ERR(pp, err, SHOAL_ERR_NO_MEMORY, "workspace for K=%lld, M=%lld overflows", (long long)p->K,
                       (long long)p->M);
    p->ws_wd = wd;
    p->ws_thread = th;
    pp->p->workspace_bytes[pp->k] = total;
    pp->fn = qconv_run;
    return 0;
}

/* ---- MatMulInteger / QLinearMatMul ---------------------------------------------------------------- */

typedef struct qmm_params {
    bool qlinear;
    int a, as, az, b, bs, bz, ys, yz, y;
    sh_dtype adt, bdt, ydt;
    int64_t M, K, N;
    int64_t n_az, n_bz, n_bs;  /* a's zero point per row (M) or 1; b's per column (N) or 1 */
    int nb;                    /* batch dims of the output */
    int64_t bdims[SH_MAX_DIMS], sa[SH_MAX_DIMS], sb[SH_MAX_DIMS];  /* batch strides in matrices */
    int64_t batches;
} qmm_params;

typedef struct qmm_job {
    const qmm_params *p;
    const cpu_exec *ex;
} qmm_job;

static void qmm_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const qmm_job *j = arg;
    const qmm_params *p = j->p;
    const cpu_exec *ex = j->ex;
    const void *A = ex->t[p->a], *B = ex->t[p->b];
    void *Y = ex->t[p->y];
    float as = p->qlinear ? q_scale(ex, p->as, 0) : 0.0f, ys = p->qlinear ? q_scale(ex, p->ys, 0) : 1.0f;
    int32_t yz = q_zp(ex, p->yz, p->ydt, 0);
    for (int64_t r = r0; r < r1; r++) {
        int64_t bi = r / p->M, i = r % p->M, oa = 0, ob = 0, rem = bi;
        for (int d = p->nb - 1; d >= 0; d--) {
            int64_t c = rem % p->bdims[d];
            rem /= p->bdims[d];
            oa += c * p->sa[d];
            ob += c * p->sb[d];
        }
        const int64_t a0 = (oa * p->M + i) * p->K, b0 = ob * p->K * p->N;
        int32_t az = q_zp(ex, p->az, p->adt, p->n_az > 1 ? i : 0);
        for (int64_t c = 0; c < p->N; c++) {
            int32_t bz = q_zp(ex, p->bz, p->bdt, p->n_bz > 1 ? c : 0);
            int64_t acc = 0;
            for (int64_t k = 0; k < p->K; k++)
                acc += (int64_t)(q_get(A, p->adt, a0 + k) - az) * (q_get(B, p->bdt, b0 + k * p->N + c) - bz);
            int64_t o = r * p->N + c;
            if (!p->qlinear) {
                ((int32_t *)Y)[o] = (int32_t)acc;
                continue;
            }
            float s = as * q_scale(ex, p->bs, p->n_bs > 1 ? c : 0) / ys;
            q_put(Y, p->ydt, o, rintf((float)(int32_t)acc * s) + (float)yz);
        }
    }
}

static int qmm_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qmm_params *p = vp;
    qmm_job j = {.p = p, .ex = ex};
    int64_t rows = p->batches * p->M;
    if (rows * p->N == 0)
        return 0;
    cpu_parallel_for(ex->ctx->pool, rows, 1 + 4096 / (p->N * p->K + 1), qmm_range, &j);
    return 0;
}

int cpu_prep_qmatmul(cpu_prep *pp, sh_err *err)
{
    bool ql = pp->n->op == SH_OP_QLINEAR_MATMUL;
    int bi = ql ? 3 : 1;
    const sh_tensor *A = cpu_in(pp, 0), *B = cpu_in(pp, bi), *Y = cpu_out(pp, 0);
    if (!B || !q8_dt(A->dtype) || !q8_dt(B->dtype) || (ql ? !q8_dt(Y->dtype) : Y->dtype != SH_DT_INT32))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "A %s, B %s, output %s", sh_dtype_name(A->dtype),
                       B ? sh_dtype_name(B->dtype) : "-", sh_dtype_name(Y->dtype));
    qmm_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    sh_shape sa = A->shape, sb = B->shape;
    sh_shape_matmul_promote(&sa, &sb);
    p->qlinear = ql;
    p->M = sa.d[sa.ndim - 2];
    p->K = sa.d[sa.ndim - 1];
    p->N = sb.d[sb.ndim - 1];
    p->a = pp->n->inputs[0];
    p->b = pp->n->inputs[bi];
    p->y = pp->n->outputs[0];
    p->adt = A->dtype;
    p->bdt = B->dtype;
    p->ydt = Y->dtype;
    /* batch dims: the output's, with a and b aligned right and broadcast */
    int nba = sa.ndim - 2, nbb = sb.ndim - 2;
    p->nb = nba > nbb ? nba : nbb;
    p->batches = 1;
    int64_t acc_a = 1, acc_b = 1;
    for (int d = p->nb - 1; d >= 0; d--) {
        int da = d - (p->nb - nba), db = d - (p->nb - nbb);
        int64_t ea = da >= 0 ? sa.d[da] : 1, eb = db >= 0 ? sb.d[db] : 1;
        p->bdims[d] = ea > eb ? ea : eb;
        p->sa[d] = ea == 1 ? 0 : acc_a;
        p->sb[d] = eb == 1 ? 0 : acc_b;
        acc_a *= ea;
        acc_b *= eb;
        p->batches *= p->bdims[d];
    }
    int rc;
    const sh_tensor *az = cpu_in(pp, 2), *bz = cpu_in(pp, ql ? 5 : 3), *bs = ql ? cpu_in(pp, 4) : NULL;
    p->az = opt_in(pp, 2);
    p->bz = opt_in(pp, ql ? 5 : 3);
    p->n_az = az ? cpu_numel(az) : 1;
    p->n_bz = bz ? cpu_numel(bz) : 1;
    p->n_bs = bs ? cpu_numel(bs) : 1;
    if ((az && (az->dtype != A->dtype || (p->n_az != 1 && p->n_az != p->M))) ||
        (bz && (bz->dtype != B->dtype || (p->n_bz != 1 && p->n_bz != p->N))) ||
        (bs && (bs->dtype != SH_DT_FLOAT32 || (p->n_bs != 1 && p->n_bs != p->N))))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s",
                       "zero points / scales must be per tensor, per row of A or per column of B, of the data's dtype");
    if (ql) {
        p->as = pp->n->inputs[1];
        p->bs = pp->n->inputs[4];
        p->ys = pp->n->inputs[6];
        p->yz = opt_in(pp, 7);
        if ((rc = scalar_param(pp, 1, true, A->dtype, err)) || (rc = scalar_param(pp, 6, true, Y->dtype, err)) ||
            (rc = scalar_param(pp, 7, false, Y->dtype, err)))
            return rc;
        if (p->n_az != 1)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "a_zero_point must be per tensor");
    } else {
        p->as = p->bs = p->ys = p->yz = -1;
    }
    pp->fn = qmm_run;
    return 0;
}
