/* Quantized element-wise kernels: QuantizeLinear / DequantizeLinear (per tensor and per axis),
 * DynamicQuantizeLinear, and the com.microsoft QLinearAdd / QLinearMul / QLinearConcat /
 * QLinearSigmoid / QLinearLeakyRelu / QLinearGlobalAveragePool of onnxruntime's QOperator
 * format, plus max pooling on int8/uint8 activations.
 *
 * Integer semantics follow the ONNX reference: round half to even (rintf in the default
 * rounding mode), saturation to the output type, float32 arithmetic for the rescaling.
 * Where onnxruntime's contrib ops define the float expression (the ratio of scales in
 * QLinearAdd, the 256-entry tables of QLinearSigmoid and QLinearConcat), the same expression
 * is used so the integers agree. */
#include "backends/cpu/quant_impl.h"

#include <string.h>

#include "graph/passes.h"

/* ---- per-axis parameters ---------------------------------------------------------------- */

/* Validates the scale / zero point pair of a Q/DQ node and splits x into outer x S x inner, S
 * being the number of scales (1 per tensor, or x's dim at `axis`). */
static int q_axis_split(cpu_prep *pp, const sh_tensor *X, const sh_tensor *S, const sh_tensor *Z, int64_t *outer,
                        int64_t *ns, int64_t *inner, sh_err *err)
{
    if (sh_node_int(pp->n, "block_size", 0) != 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "blocked quantization (block_size %lld) is not supported",
                     (long long)sh_node_int(pp->n, "block_size", 0));
    if (!S || S->dtype != SH_DT_FLOAT32)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "scale '%s' must be float32", S ? S->name : "(missing)");
    int64_t n = cpu_numel(S);
    if (Z && cpu_numel(Z) != n)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "zero point '%s' has %lld values, scale '%s' %lld", Z->name,
                     (long long)cpu_numel(Z), S->name, (long long)n);
    *outer = 1;
    *inner = 1;
    *ns = 1;
    if (n == 1 && S->shape.ndim <= 1) {
        *inner = cpu_numel(X);
        return 0;
    }
    int axis = cpu_axis(sh_node_int(pp->n, "axis", 1), X->shape.ndim);
    if (S->shape.ndim != 1 || axis < 0 || X->shape.d[axis] != n)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "scale '%s' of %lld values does not match axis %lld of '%s'", S->name,
                     (long long)n, (long long)sh_node_int(pp->n, "axis", 1), X->name);
    for (int d = 0; d < axis; d++)
        *outer *= X->shape.d[d];
    for (int d = axis + 1; d < X->shape.ndim; d++)
        *inner *= X->shape.d[d];
    *ns = n;
    return 0;
}

typedef struct qdq_params {
    int x, s, z, y;
    sh_dtype xdt, ydt, zdt;
    int64_t outer, ns, inner;
    int64_t C, HW;            /* a per-tensor QuantizeLinear of one NCHW image, else 0 */
    bool out_nhwc;            /* ... writing its codes NHWC (cpu_qconv_link_nhwc) */
} qdq_params;

typedef struct qdq_job {
    const qdq_params *p;
    const cpu_exec *ex;
    bool quantize;
} qdq_job;

/* Elements [e0, e1) of x, whatever rows (one scale and zero point each) they fall in: a
 * per-tensor Q/DQ is a single row, which a split by rows would leave to one thread. */
static void qdq_elems(void *arg, int64_t e0, int64_t e1, int tid)
{
    const qdq_job *j = arg;
    const qdq_params *p = j->p;
    for (int64_t i0 = e0; i0 < e1;) {
        int64_t r = i0 / p->inner, i1 = (r + 1) * p->inner < e1 ? (r + 1) * p->inner : e1;
        int64_t c = r % p->ns;
        float s = q_scale(j->ex, p->s, c);
        int32_t z = q_zp(j->ex, p->z, p->zdt, c);
        if (j->quantize) {
            const float *x = j->ex->t[p->x];
            q_quantize_run(x + i0, (char *)j->ex->t[p->y] + i0, p->ydt, i1 - i0, s, z);
        } else {
            const void *x = j->ex->t[p->x];
            float *y = j->ex->t[p->y], zf = (float)z;
            for (int64_t i = i0; i < i1; i++)
                y[i] = ((float)q_get(x, p->xdt, i) - zf) * s;
        }
        i0 = i1;
    }
    (void)tid;
}

static int qdq_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err);

/* Pixels [q0, q1) of a per-tensor QuantizeLinear into NHWC codes: each channel's run of a
 * block quantized contiguously, then spread over the pixels' rows. */
static void quantize_nhwc(void *arg, int64_t q0, int64_t q1, int tid)
{
    const qdq_job *j = arg;
    const qdq_params *p = j->p;
    const float *x = j->ex->t[p->x];
    uint8_t *y = j->ex->t[p->y];
    float s = q_scale(j->ex, p->s, 0);
    int32_t z = q_zp(j->ex, p->z, p->zdt, 0);
    enum { BLOCK = 64 };
    uint8_t run[BLOCK];
    for (int64_t b0 = q0; b0 < q1; b0 += BLOCK) {
        int64_t b1 = b0 + BLOCK < q1 ? b0 + BLOCK : q1;
        for (int64_t c = 0; c < p->C; c++) {
            q_quantize_run(x + c * p->HW + b0, run, p->ydt, b1 - b0, s, z);
            for (int64_t q = b0; q < b1; q++)
                y[q * p->C + c] = run[q - b0];
        }
    }
    (void)tid;
}

bool cpu_quantize_nhwc_capable(cpu_kernel_fn fn, const void *params)
{
    return fn == qdq_run && ((const qdq_params *)params)->C > 0;
}

void cpu_quantize_set_nhwc(void *params)
{
    ((qdq_params *)params)->out_nhwc = true;
}

static int qdq_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qdq_params *p = vp;
    qdq_job j = {.p = p, .ex = ex, .quantize = n->op == SH_OP_QUANTIZE_LINEAR};
    if (p->out_nhwc) {
        cpu_parallel_for(ex->ctx->pool, p->HW, 256, quantize_nhwc, &j);
        return 0;
    }
    int64_t total = p->outer * p->ns * p->inner;
    if (total == 0)
        return 0;
    cpu_parallel_for(ex->ctx->pool, total, 16384, qdq_elems, &j);
    return 0;
}

static int prep_qdq(cpu_prep *pp, bool quantize, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *S = cpu_in(pp, 1), *Z = cpu_in(pp, 2), *Y = cpu_out(pp, 0);
    if (quantize ? X->dtype != SH_DT_FLOAT32 : !(q8_dt(X->dtype) || X->dtype == SH_DT_INT32))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "input '%s' of dtype %s", X->name, sh_dtype_name(X->dtype));
    sh_dtype qdt = quantize ? Y->dtype : X->dtype;
    if (Z && Z->dtype != qdt)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "zero point '%s' is %s, data is %s", Z->name, sh_dtype_name(Z->dtype),
                     sh_dtype_name(qdt));
    if (quantize && !q8_dt(qdt))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "output dtype %s", sh_dtype_name(qdt));
    qdq_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int rc = q_axis_split(pp, X, S, Z, &p->outer, &p->ns, &p->inner, err);
    if (rc)
        return rc;
    p->x = pp->n->inputs[0];
    p->s = pp->n->inputs[1];
    p->z = Z ? pp->n->inputs[2] : -1;
    p->y = pp->n->outputs[0];
    p->xdt = X->dtype;
    p->ydt = Y->dtype;
    p->zdt = qdt;
    if (quantize && p->ns == 1 && X->shape.ndim == 4 && X->shape.d[0] == 1) {
        p->C = X->shape.d[1];
        p->HW = X->shape.d[2] * X->shape.d[3];
    }
    pp->fn = qdq_run;
    return 0;
}

int cpu_prep_quantize_linear(cpu_prep *pp, sh_err *err)
{
    return prep_qdq(pp, true, err);
}

int cpu_prep_dequantize_linear(cpu_prep *pp, sh_err *err)
{
    return prep_qdq(pp, false, err);
}

/* ---- DynamicQuantizeLinear ---------------------------------------------------------------- */

typedef struct dql_params {
    int x, y, ys, yz;
    int64_t n;
} dql_params;

typedef struct dql_job {
    const float *x;
    uint8_t *y;
    float scale;
    int32_t zp;
    float *range;            /* [threads][2]: each worker's min and max */
} dql_job;

static void dql_range_of(void *arg, int64_t b, int64_t e, int tid)
{
    const dql_job *j = arg;
    float lo = j->range[2 * tid], hi = j->range[2 * tid + 1];
    for (int64_t i = b; i < e; i++) {
        lo = j->x[i] < lo ? j->x[i] : lo;
        hi = j->x[i] > hi ? j->x[i] : hi;
    }
    j->range[2 * tid] = lo;
    j->range[2 * tid + 1] = hi;
}

static void dql_quantize(void *arg, int64_t b, int64_t e, int tid)
{
    const dql_job *j = arg;
    for (int64_t i = b; i < e; i++)
        q_quantize(j->y, SH_DT_UINT8, i, j->x[i], j->scale, j->zp);
}

static int dql_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const dql_params *p = vp;
    dql_job j = {.x = ex->t[p->x], .y = ex->t[p->y], .range = ex->ws};
    /* The range always includes 0 so that 0 is exactly representable; min and max do not
     * depend on the order they are taken in. */
    int nt = ex->ctx->n_threads;
    for (int t = 0; t < 2 * nt; t++)
        j.range[t] = 0.0f;
    cpu_parallel_for(ex->ctx->pool, p->n, 16384, dql_range_of, &j);
    float lo = 0.0f, hi = 0.0f;
    for (int t = 0; t < nt; t++) {
        lo = j.range[2 * t] < lo ? j.range[2 * t] : lo;
        hi = j.range[2 * t + 1] > hi ? j.range[2 * t + 1] : hi;
    }
    float scale = (hi - lo) / 255.0f;
    int32_t zp = 0;
    if (scale > 0.0f) {
        float z = rintf(0.0f - lo / scale);
        zp = (int32_t)(z < 0.0f ? 0.0f : z > 255.0f ? 255.0f : z);
    } else {
        /* all zeros: any scale represents them; 1 keeps the division defined */
        scale = 1.0f;
    }
    if (p->ys >= 0)
        *(float *)ex->t[p->ys] = scale;
    if (p->yz >= 0)
        *(uint8_t *)ex->t[p->yz] = (uint8_t)zp;
    j.scale = scale;
    j.zp = zp;
    cpu_parallel_for(ex->ctx->pool, p->n, 16384, dql_quantize, &j);
    return 0;
}

int cpu_prep_dynamic_quantize_linear(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0);
    if (X->dtype != SH_DT_FLOAT32)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "input '%s' of dtype %s", X->name, sh_dtype_name(X->dtype));
    dql_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->ys = pp->n->n_outputs > 1 ? pp->n->outputs[1] : -1;
    p->yz = pp->n->n_outputs > 2 ? pp->n->outputs[2] : -1;
    p->n = cpu_numel(X);
    pp->p->workspace_bytes[pp->k] = (size_t)pp->ctx->n_threads * 2 * sizeof(float);
    pp->fn = dql_run;
    return 0;
}

/* ---- QLinearAdd / QLinearMul ---------------------------------------------------------------- */

typedef struct qbin_params {
    bool mul;
    int a, as, az, b, bs, bz, cs, cz, y;
    sh_dtype dt;
    int nd;
    int64_t dims[SH_MAX_DIMS], sa[SH_MAX_DIMS], sb[SH_MAX_DIMS];
    int64_t rows;
} qbin_params;

typedef struct qbin_job {
    const qbin_params *p;
    const void *a, *b;
    void *y;
    float ra, rb, fixed;    /* add: a*ra + b*rb + fixed; mul: (a-za)*(b-zb)*ra + fixed */
    int32_t za, zb;
} qbin_job;

static void qbin_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const qbin_job *j = arg;
    const qbin_params *p = j->p;
    int nd = p->nd;
    int64_t inner = p->dims[nd - 1], ia = p->sa[nd - 1], ib = p->sb[nd - 1];
    for (int64_t r = r0; r < r1; r++) {
        int64_t oa, ob;
        cpu_bcast_row(nd, p->dims, p->sa, p->sb, r, &oa, &ob);
        for (int64_t i = 0; i < inner; i++) {
            int32_t a = q_get(j->a, p->dt, oa + i * ia), b = q_get(j->b, p->dt, ob + i * ib);
            float v = p->mul ? (float)((a - j->za) * (b - j->zb)) * j->ra
                             : (float)a * j->ra + (float)b * j->rb + j->fixed;
            q_put(j->y, p->dt, r * inner + i, rintf(v) + (p->mul ? j->fixed : 0.0f));
        }
    }
}

static int qbin_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qbin_params *p = vp;
    qbin_job j = {.p = p, .a = ex->t[p->a], .b = ex->t[p->b], .y = ex->t[p->y]};
    float sa = q_scale(ex, p->as, 0), sb = q_scale(ex, p->bs, 0), sc = q_scale(ex, p->cs, 0);
    j.za = q_zp(ex, p->az, p->dt, 0);
    j.zb = q_zp(ex, p->bz, p->dt, 0);
    int32_t zc = q_zp(ex, p->cz, p->dt, 0);
    if (p->mul) {
        j.ra = sa * sb / sc;
        j.fixed = (float)zc;
    } else {
        /* onnxruntime's MLAS form: each input rescaled to the output's scale, zero points
         * folded into one constant */
        j.ra = sa / sc;
        j.rb = sb / sc;
        j.fixed = (float)zc - (j.ra * (float)j.za + j.rb * (float)j.zb);
    }
    if (p->rows * p->dims[p->nd - 1] == 0)
        return 0;
    cpu_parallel_for(ex->ctx->pool, p->rows, 1 + 16384 / (p->dims[p->nd - 1] + 1), qbin_range, &j);
    return 0;
}

/* The scale / zero point inputs of a QLinear op, as (scale slot, zero point slot) pairs:
 * per-tensor float32 scales, zero points of the data's dtype or omitted. */
static int q_scalar_pairs(cpu_prep *pp, const int *pairs, int n_pairs, sh_dtype qdt, sh_err *err)
{
    for (int i = 0; i < 2 * n_pairs; i++) {
        const sh_tensor *t = cpu_in(pp, pairs[i]);
        bool zp = i % 2 == 1;
        if (!t) {
            if (zp)
                continue;
            return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "scale input %d is missing", pairs[i]);
        }
        if (cpu_numel(t) != 1)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "'%s' has %lld values (per-tensor quantization only)",
                         t->name, (long long)cpu_numel(t));
        if (zp ? t->dtype != qdt : t->dtype != SH_DT_FLOAT32)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "'%s' is %s, expected %s", t->name, sh_dtype_name(t->dtype),
                         sh_dtype_name(zp ? qdt : SH_DT_FLOAT32));
    }
    return 0;
}

static int in_or_none(const cpu_prep *pp, int i)
{
    return cpu_in(pp, i) ? pp->n->inputs[i] : -1;
}

int cpu_prep_qlinear_binary(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *A = cpu_in(pp, 0), *B = cpu_in(pp, 3), *Y = cpu_out(pp, 0);
    if (!B || !q8_dt(A->dtype) || A->dtype != B->dtype || Y->dtype != A->dtype)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "operands %s and %s, output %s (one of int8/uint8 for all)",
                     sh_dtype_name(A->dtype), B ? sh_dtype_name(B->dtype) : "-", sh_dtype_name(Y->dtype));
    static const int pairs[] = {1, 2, 4, 5, 6, 7};
    int rc = q_scalar_pairs(pp, pairs, 3, A->dtype, err);
    if (rc)
        return rc;
    qbin_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->mul = pp->n->op == SH_OP_QLINEAR_MUL;
    p->a = pp->n->inputs[0];
    p->as = pp->n->inputs[1];
    p->az = in_or_none(pp, 2);
    p->b = pp->n->inputs[3];
    p->bs = pp->n->inputs[4];
    p->bz = in_or_none(pp, 5);
    p->cs = pp->n->inputs[6];
    p->cz = in_or_none(pp, 7);
    p->y = pp->n->outputs[0];
    p->dt = A->dtype;
    p->nd = Y->shape.ndim > 0 ? Y->shape.ndim : 1;
    p->dims[0] = 1;
    p->sa[0] = p->sb[0] = 0;
    for (int d = 0; d < Y->shape.ndim; d++)
        p->dims[d] = Y->shape.d[d];
    rc = cpu_bcast_pair(pp, A, B, -1, p->sa, p->sb, err);
    if (rc)
        return rc;
    p->rows = 1;
    for (int d = 0; d < p->nd - 1; d++)
        p->rows *= p->dims[d];
    pp->fn = qbin_run;
    return 0;
}

/* ---- QLinearConcat ----------------------------------------------------------------------------- */

#define QCAT_MAX 16

typedef struct qcat_params {
    int y, ys, yz, n;
    int x[QCAT_MAX], xs[QCAT_MAX], xz[QCAT_MAX];
    int64_t len[QCAT_MAX];      /* elements of input i per outer index */
    int64_t outer, out_len;
    sh_dtype dt;
} qcat_params;

typedef struct qcat_job {
    const qcat_params *p;
    const cpu_exec *ex;
    uint8_t lut[QCAT_MAX][256];   /* indexed by the raw byte */
    bool copy[QCAT_MAX];
} qcat_job;

static void qcat_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const qcat_job *j = arg;
    const qcat_params *p = j->p;
    uint8_t *y = j->ex->t[p->y];
    for (int64_t r = r0; r < r1; r++) {
        uint8_t *dst = y + r * p->out_len;
        for (int i = 0; i < p->n; i++) {
            const uint8_t *src = (const uint8_t *)j->ex->t[p->x[i]] + r * p->len[i];
            if (j->copy[i])
                memcpy(dst, src, (size_t)p->len[i]);
            else
                for (int64_t e = 0; e < p->len[i]; e++)
                    dst[e] = j->lut[i][src[e]];
            dst += p->len[i];
        }
    }
}

static int qcat_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qcat_params *p = vp;
    qcat_job *j = ex->ws;
    j->p = p;
    j->ex = ex;
    float sy = q_scale(ex, p->ys, 0);
    int32_t zy = q_zp(ex, p->yz, p->dt, 0);
    for (int i = 0; i < p->n; i++) {
        float sx = q_scale(ex, p->xs[i], 0);
        int32_t zx = q_zp(ex, p->xz[i], p->dt, 0);
        j->copy[i] = sx == sy && zx == zy;
        if (!j->copy[i])
            q_build_lut(j->lut[i], p->dt, sx, zx, sy, zy, NULL, 0.0f);
    }
    if (p->outer * p->out_len == 0)
        return 0;
    cpu_parallel_for(ex->ctx->pool, p->outer, 1 + 16384 / (p->out_len + 1), qcat_range, j);
    return 0;
}

int cpu_prep_qlinear_concat(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    const sh_tensor *Y = cpu_out(pp, 0);
    int cnt = (n->n_inputs - 2) / 3;
    if (cnt < 1 || cnt > QCAT_MAX)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%d inputs (at most %d)", cnt, QCAT_MAX);
    if (!q8_dt(Y->dtype))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "output dtype %s", sh_dtype_name(Y->dtype));
    int pairs[2 + 2 * QCAT_MAX];
    pairs[0] = 0;
    pairs[1] = 1;
    for (int i = 0; i < cnt; i++) {
        pairs[2 + 2 * i] = 3 + 3 * i;
        pairs[3 + 2 * i] = 4 + 3 * i;
    }
    int rc = q_scalar_pairs(pp, pairs, cnt + 1, Y->dtype, err);
    if (rc)
        return rc;
    qcat_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int axis = cpu_axis(sh_node_int(n, "axis", 0), Y->shape.ndim);
    if (axis < 0)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "axis %lld", (long long)sh_node_int(n, "axis", 0));
    int64_t inner = 1;
    p->outer = 1;
    for (int d = 0; d < axis; d++)
        p->outer *= Y->shape.d[d];
    for (int d = axis + 1; d < Y->shape.ndim; d++)
        inner *= Y->shape.d[d];
    p->out_len = Y->shape.d[axis] * inner;
    p->y = n->outputs[0];
    p->ys = n->inputs[0];
    p->yz = in_or_none(pp, 1);
    p->n = cnt;
    p->dt = Y->dtype;
    for (int i = 0; i < cnt; i++) {
        const sh_tensor *X = cpu_in(pp, 2 + 3 * i);
        if (!X || X->dtype != Y->dtype)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "input %d dtype %s, output %s", 2 + 3 * i,
                         X ? sh_dtype_name(X->dtype) : "-", sh_dtype_name(Y->dtype));
        p->x[i] = n->inputs[2 + 3 * i];
        p->xs[i] = n->inputs[3 + 3 * i];
        p->xz[i] = in_or_none(pp, 4 + 3 * i);
        p->len[i] = X->shape.d[axis] * inner;
    }
    pp->p->workspace_bytes[pp->k] = sizeof(qcat_job);
    pp->fn = qcat_run;
    return 0;
}

/* ---- QLinearSigmoid / QLinearLeakyRelu: 256-entry tables ------------------------------------- */

static float f_sigmoid(float x, float unused)
{
    (void)unused;
    return cpu_logistic(x);
}

static float f_leaky_relu(float x, float alpha)
{
    return x >= 0.0f ? x : x * alpha;
}

/* The operands of QLinearSigmoid / QLinearLeakyRelu / QLinearGlobalAveragePool: x, its scale and
 * zero point, the output's scale and zero point, y; one int8/uint8 dtype for x and y. */
typedef struct q_unary_io {
    int x, xs, xz, ys, yz, y;
    sh_dtype dt;
} q_unary_io;

static int q_unary_io_prep(cpu_prep *pp, q_unary_io *io, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    if (!q8_dt(X->dtype) || Y->dtype != X->dtype)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "input %s, output %s (int8/uint8, the same)",
                     sh_dtype_name(X->dtype), sh_dtype_name(Y->dtype));
    static const int pairs[] = {1, 2, 3, 4};
    int rc = q_scalar_pairs(pp, pairs, 2, X->dtype, err);
    if (rc)
        return rc;
    io->x = pp->n->inputs[0];
    io->xs = pp->n->inputs[1];
    io->xz = in_or_none(pp, 2);
    io->ys = pp->n->inputs[3];
    io->yz = in_or_none(pp, 4);
    io->y = pp->n->outputs[0];
    io->dt = X->dtype;
    return 0;
}

typedef struct qlut_params {
    q_unary_io io;
    float alpha;
    int64_t n;
} qlut_params;

typedef struct qlut_job {
    const uint8_t *x;
    uint8_t *y;
    uint8_t lut[256];
} qlut_job;

static void qlut_range(void *arg, int64_t b, int64_t e, int tid)
{
    const qlut_job *j = arg;
    for (int64_t i = b; i < e; i++)
        j->y[i] = j->lut[j->x[i]];
}

static int qlut_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qlut_params *p = vp;
    const q_unary_io *io = &p->io;
    qlut_job j = {.x = ex->t[io->x], .y = ex->t[io->y]};
    q_build_lut(j.lut, io->dt, q_scale(ex, io->xs, 0), q_zp(ex, io->xz, io->dt, 0), q_scale(ex, io->ys, 0),
                q_zp(ex, io->yz, io->dt, 0), n->op == SH_OP_QLINEAR_SIGMOID ? f_sigmoid : f_leaky_relu, p->alpha);
    cpu_parallel_for(ex->ctx->pool, p->n, 32768, qlut_range, &j);
    return 0;
}

int cpu_prep_qlinear_lut(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0);
    q_unary_io io;
    int rc = q_unary_io_prep(pp, &io, err);
    if (rc)
        return rc;
    qlut_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->io = io;
    p->alpha = sh_node_float(pp->n, "alpha", 0.01f);
    p->n = cpu_numel(X);
    pp->p->inplace_input[pp->k] = 0;
    pp->fn = qlut_run;
    return 0;
}

/* ---- QLinearGlobalAveragePool ------------------------------------------------------------------- */

typedef struct qgap_params {
    q_unary_io io;
    bool channels_last;
    int64_t n, c, hw;
} qgap_params;

static int qgap_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qgap_params *p = vp;
    const q_unary_io *io = &p->io;
    const void *x = ex->t[io->x];
    void *y = ex->t[io->y];
    int32_t zx = q_zp(ex, io->xz, io->dt, 0), zy = q_zp(ex, io->yz, io->dt, 0);
    /* onnxruntime's MLAS: integer sum less the zero points, one float rescale */
    float scale = q_scale(ex, io->xs, 0) / (q_scale(ex, io->ys, 0) * (float)p->hw);
    for (int64_t b = 0; b < p->n; b++)
        for (int64_t c = 0; c < p->c; c++) {
            int64_t sum = 0;
            for (int64_t i = 0; i < p->hw; i++)
                sum += q_get(x, io->dt, p->channels_last ? (b * p->hw + i) * p->c + c : (b * p->c + c) * p->hw + i);
            sum -= (int64_t)zx * p->hw;
            q_put(y, io->dt, b * p->c + c, rintf((float)sum * scale) + (float)zy);
        }
    return 0;
}

int cpu_prep_qlinear_global_avg_pool(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0);
    q_unary_io io;
    int rc = q_unary_io_prep(pp, &io, err);
    if (rc)
        return rc;
    qgap_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->io = io;
    p->channels_last = sh_node_int(pp->n, "channels_last", 0) != 0;
    int r = X->shape.ndim;
    p->n = X->shape.d[0];
    p->c = X->shape.d[p->channels_last ? r - 1 : 1];
    p->hw = (p->n * p->c) != 0 ? cpu_numel(X) / (p->n * p->c) : 0;
    pp->fn = qgap_run;
    return 0;
}

/* ---- MaxPool on int8/uint8 ------------------------------------------------------------------------ */

typedef struct qmax_params {
    int x, y;
    sh_dtype dt;
    sh_window_geom geo;
    int64_t planes, H, W, OH, OW;
} qmax_params;

typedef struct qmax_job {
    const qmax_params *p;
    const void *x;
    void *y;
} qmax_job;

static void qmax_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const qmax_job *j = arg;
    const qmax_params *p = j->p;
    const sh_window_geom *g = &p->geo;
    int64_t kh = g->n == 2 ? g->kernel[0] : 1, kw = g->kernel[g->n - 1];
    int64_t sh = g->n == 2 ? g->stride[0] : 1, sw = g->stride[g->n - 1];
    int64_t dh = g->n == 2 ? g->dilation[0] : 1, dw = g->dilation[g->n - 1];
    int64_t pt = g->n == 2 ? g->pad_begin[0] : 0, pl = g->pad_begin[g->n - 1];
    for (int64_t pl_i = r0; pl_i < r1; pl_i++) {
        int64_t xo = pl_i * p->H * p->W, yo = pl_i * p->OH * p->OW;
        for (int64_t oy = 0; oy < p->OH; oy++)
            for (int64_t ox = 0; ox < p->OW; ox++) {
                int32_t m = INT32_MIN;
                for (int64_t ky = 0; ky < kh; ky++) {
                    int64_t iy = oy * sh - pt + ky * dh;
                    if (iy < 0 || iy >= p->H)
                        continue;
                    for (int64_t kx = 0; kx < kw; kx++) {
                        int64_t ix = ox * sw - pl + kx * dw;
                        if (ix < 0 || ix >= p->W)
                            continue;
                        int32_t v = q_get(j->x, p->dt, xo + iy * p->W + ix);
                        m = v > m ? v : m;
                    }
                }
                q_put(j->y, p->dt, yo + oy * p->OW + ox, (float)(m == INT32_MIN ? 0 : m));
            }
    }
}

static int qmax_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const qmax_params *p = vp;
    qmax_job j = {.p = p, .x = ex->t[p->x], .y = ex->t[p->y]};
    cpu_parallel_for(ex->ctx->pool, p->planes, 1, qmax_range, &j);
    return 0;
}

int cpu_prep_max_pool_q8(cpu_prep *pp, sh_err *err)
{
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    if (pp->n->op != SH_OP_MAX_POOL || cpu_out(pp, 1))
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s input: MaxPool without Indices only",
                     sh_dtype_name(X->dtype));
    qmax_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    int rc = sh_node_window_geom(pp->g, pp->k, &p->geo, err);
    if (rc)
        return rc;
    if (p->geo.n < 1 || p->geo.n > 2)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%d spatial dims on %s (1-D and 2-D only)", p->geo.n,
                     sh_dtype_name(X->dtype));
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->dt = X->dtype;
    p->planes = X->shape.d[0] * X->shape.d[1];
    p->H = p->geo.n == 2 ? X->shape.d[2] : 1;
    p->W = X->shape.d[X->shape.ndim - 1];
    p->OH = p->geo.n == 2 ? Y->shape.d[2] : 1;
    p->OW = Y->shape.d[Y->shape.ndim - 1];
    pp->fn = qmax_run;
    return 0;
}
