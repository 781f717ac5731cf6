/* Elementwise kernels: activations, Clip, Exp, broadcasting Add/Sub/Mul/Div (float32,
 * int32, int64), BatchNormalization (inference) and Cast. All of them may run in place. */
#include "backends/cpu/cpu_impl.h"
#include "backends/cpu/vexp.h"
#include "core/half.h"

#include <math.h>
#include <string.h>

/* ---- activations ------------------------------------------------------------------------ */

static inline float sigmoidf(float x)
{
    return cpu_logistic(x);
}

void cpu_apply_act(float *x, int64_t n, sh_act act, float a, float b)
{
    switch (act) {
    case SH_ACT_NONE: break;
    case SH_ACT_RELU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case SH_ACT_SIGMOID:
        for (int64_t i = 0; i < n; i++)
            x[i] = sigmoidf(x[i]);
        break;
    case SH_ACT_SILU:
        for (int64_t i = 0; i < n; i++)
            x[i] = x[i] * sigmoidf(x[i]);
        break;
    case SH_ACT_HARD_SWISH:
        for (int64_t i = 0; i < n; i++) {
            float v = x[i] / 6.0f + 0.5f;
            v = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
            x[i] = x[i] * v;
        }
        break;
    case SH_ACT_HARD_SIGMOID:
        for (int64_t i = 0; i < n; i++) {
            float v = a * x[i] + b;
            x[i] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
        break;
    case SH_ACT_CLIP:
        for (int64_t i = 0; i < n; i++) {
            /* max then min, as numpy.clip: min > max gives max; NaN propagates. */
            float v = x[i] < a ? a : x[i];
            x[i] = v > b ? b : v;
        }
        break;
    default: break;
    }
}

typedef struct unary_params {
    sh_act act;
    float a, b;
    bool exp;
    int clip_min_t, clip_max_t;   /* Clip-11+: tensor indices of min/max inputs, or -1 */
    int x, y;
    int64_t n;
} unary_params;

typedef struct unary_job {
    const float *x;
    float *y;
    sh_act act;
    bool exp;
    float a, b;
} unary_job;

static void unary_range(void *arg, int64_t b, int64_t e, int tid)
{
    const unary_job *j = arg;
    if (j->exp) {
        cpu_exp_array(j->y + b, j->x + b, e - b);
        return;
    }
    if (j->y != j->x)
        memcpy(j->y + b, j->x + b, (size_t)(e - b) * sizeof(float));
    cpu_apply_act(j->y + b, e - b, j->act, j->a, j->b);
}

static int unary_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const unary_params *p = vp;
    unary_job j = {.x = ex->t[p->x], .y = ex->t[p->y], .act = p->act, .exp = p->exp, .a = p->a, .b = p->b};
    if (p->clip_min_t >= 0)
        j.a = *(const float *)ex->t[p->clip_min_t];
    if (p->clip_max_t >= 0)
        j.b = *(const float *)ex->t[p->clip_max_t];
    cpu_parallel_for(ex->ctx->pool, p->n, 16384, unary_range, &j);
    return 0;
}

int cpu_prep_unary(cpu_prep *pp, sh_err *err)
{
    unary_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_node *n = pp->n;
    p->x = n->inputs[0];
    p->y = n->outputs[0];
    p->n = cpu_numel(cpu_out(pp, 0));
    p->clip_min_t = p->clip_max_t = -1;
    switch (n->op) {
    case SH_OP_RELU: p->act = SH_ACT_RELU; break;
    case SH_OP_SIGMOID: p->act = SH_ACT_SIGMOID; break;
    case SH_OP_SILU: p->act = SH_ACT_SILU; break;
    case SH_OP_HARD_SWISH: p->act = SH_ACT_HARD_SWISH; break;
    case SH_OP_EXP: p->exp = true; break;
    case SH_OP_HARD_SIGMOID:
        p->act = SH_ACT_HARD_SIGMOID;
        p->a = sh_node_float(n, "alpha", 0.2f);
        p->b = sh_node_float(n, "beta", 0.5f);
        break;
    case SH_OP_CLIP:
        p->act = SH_ACT_CLIP;
        if (n->opset < 11) {
            p->a = sh_node_float(n, "min", -INFINITY);
            p->b = sh_node_float(n, "max", INFINITY);
        } else {
            p->a = -INFINITY;
            p->b = INFINITY;
            const sh_tensor *mn = cpu_in(pp, 1), *mx = cpu_in(pp, 2);
            if ((mn && (mn->dtype != SH_DT_FLOAT32 || cpu_numel(mn) != 1)) ||
                (mx && (mx->dtype != SH_DT_FLOAT32 || cpu_numel(mx) != 1)))
                return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "min/max must be float32 scalars");
            if (mn)
                p->clip_min_t = n->inputs[1];
            if (mx)
                p->clip_max_t = n->inputs[2];
        }
        break;
    default:
        return CPU_ERR(pp, err, SHOAL_ERR_INTERNAL, "%s", "not a unary op");
    }
    pp->p->inplace_input[pp->k] = 0;
    pp->fn = unary_run;
    cpu_layout_elementwise(pp);
    return 0;
}

/* ---- broadcasting binary ops -------------------------------------------------------------- */

typedef struct binary_params {
    sh_op op;
    sh_dtype dt;
    int a, b, y;
    int nd;                        /* after merging dims; the last one is the inner loop */
    int64_t dims[SH_MAX_DIMS];
    int64_t sa[SH_MAX_DIMS], sb[SH_MAX_DIMS];
    int64_t rows;                  /* product of dims[0..nd-2] */
} binary_params;

typedef struct binary_job {
    const binary_params *p;
    const void *a, *b;
    void *y;
} binary_job;

#define BIN_LOOP(T, EXPR)                                                                  \
    do {                                                                                   \
        const T *A = (const T *)j->a + oa, *B = (const T *)j->b + ob;                      \
        T *Y = (T *)j->y + oy;                                                             \
        if (ia == 1 && ib == 1)                                                            \
            for (int64_t i = 0; i < inner; i++) { T x = A[i], z = B[i]; Y[i] = (EXPR); }   \
        else if (ia == 1 && ib == 0) {                                                     \
            T z = B[0];                                                                    \
            for (int64_t i = 0; i < inner; i++) { T x = A[i]; Y[i] = (EXPR); }             \
        } else if (ia == 0 && ib == 1) {                                                   \
            T x = A[0];                                                                    \
            for (int64_t i = 0; i < inner; i++) { T z = B[i]; Y[i] = (EXPR); }             \
        } else                                                                             \
            for (int64_t i = 0; i < inner; i++) { T x = A[i * ia], z = B[i * ib]; Y[i] = (EXPR); } \
    } while (0)

#define BIN_OPS(T)                                         \
    switch (p->op) {                                       \
    case SH_OP_ADD: BIN_LOOP(T, x + z); break;             \
    case SH_OP_SUB: BIN_LOOP(T, x - z); break;             \
    case SH_OP_MUL: BIN_LOOP(T, x * z); break;             \
    default: BIN_LOOP(T, x / z); break;                    \
    }

static void binary_range(void *arg, int64_t r0, int64_t r1, int tid)
{
    const binary_job *j = arg;
    const binary_params *p = j->p;
    int nd = p->nd;
    int64_t inner = p->dims[nd - 1], ia = p->sa[nd - 1], ib = p->sb[nd - 1];
    for (int64_t r = r0; r < r1; r++) {
        int64_t oa, ob;
        cpu_bcast_row(nd, p->dims, p->sa, p->sb, r, &oa, &ob);
        int64_t oy = r * inner;
        if (p->dt == SH_DT_FLOAT32) {
            BIN_OPS(float)
        } else if (p->dt == SH_DT_INT8 || p->dt == SH_DT_UINT8) {
            /* Results wrap modulo 256 like onnxruntime's; division by zero gives 0. */
            if (p->op == SH_OP_DIV) {
                for (int64_t i = 0; i < inner; i++) {
                    int64_t ai = oa + i * ia, bi = ob + i * ib;
                    int a = p->dt == SH_DT_INT8 ? ((const int8_t *)j->a)[ai] : ((const uint8_t *)j->a)[ai];
                    int b = p->dt == SH_DT_INT8 ? ((const int8_t *)j->b)[bi] : ((const uint8_t *)j->b)[bi];
                    ((uint8_t *)j->y)[oy + i] = (uint8_t)(b ? a / b : 0);
                }
            } else if (p->dt == SH_DT_INT8) {
                BIN_OPS(int8_t)
            } else {
                BIN_OPS(uint8_t)
            }
        } else if (p->dt == SH_DT_INT32) {
            if (p->op == SH_OP_DIV) {
                /* Integer division by zero is left as 0 instead of trapping. */
                const int32_t *A = (const int32_t *)j->a + oa, *B = (const int32_t *)j->b + ob;
                int32_t *Y = (int32_t *)j->y + oy;
                for (int64_t i = 0; i < inner; i++)
                    Y[i] = B[i * ib] ? A[i * ia] / B[i * ib] : 0;
            } else {
                BIN_OPS(int32_t)
            }
        } else {
            if (p->op == SH_OP_DIV) {
                const int64_t *A = (const int64_t *)j->a + oa, *B = (const int64_t *)j->b + ob;
                int64_t *Y = (int64_t *)j->y + oy;
                for (int64_t i = 0; i < inner; i++)
                    Y[i] = B[i * ib] ? A[i * ia] / B[i * ib] : 0;
            } else {
                BIN_OPS(int64_t)
            }
        }
    }
}

static int binary_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const binary_params *p = vp;
    binary_job j = {.p = p, .a = ex->t[p->a], .b = ex->t[p->b], .y = ex->t[p->y]};
    if (p->rows * p->dims[p->nd - 1] == 0)
        return 0;
    int64_t grain = 16384 / (p->dims[p->nd - 1] + 1) + 1;
    cpu_parallel_for(ex->ctx->pool, p->rows, grain, binary_range, &j);
    return 0;
}

/* Merges adjacent dims that both operands walk contiguously (or both broadcast). */
static int merge_dims(int nd, int64_t *dims, int64_t *s1, int64_t *s2)
{
    if (nd == 0) {
        dims[0] = 1;
        s1[0] = s2[0] = 0;
        return 1;
    }
    int o = 0;
    for (int d = 1; d < nd; d++) {
        bool ok1 = s1[o] == s1[d] * dims[d];
        bool ok2 = s2[o] == s2[d] * dims[d];
        if (ok1 && ok2) {
            dims[o] *= dims[d];
            s1[o] = s1[d];
            s2[o] = s2[d];
        } else {
            o++;
            dims[o] = dims[d];
            s1[o] = s1[d];
            s2[o] = s2[d];
        }
    }
    return o + 1;
}

int cpu_prep_binary(cpu_prep *pp, sh_err *err)
{
    binary_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_node *n = pp->n;
    const sh_tensor *A = cpu_in(pp, 0), *B = cpu_in(pp, 1), *Y = cpu_out(pp, 0);
    if (!A || !B)
        return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "%s", "needs two inputs");
    p->op = n->op;
    p->dt = Y->dtype;
    p->a = n->inputs[0];
    p->b = n->inputs[1];
    p->y = n->outputs[0];
    int align_b = -1;
    if (n->opset < 7 && sh_node_int(n, "broadcast", 0) && sh_node_attr(n, "axis"))
        align_b = cpu_axis(sh_node_int(n, "axis", 0), Y->shape.ndim);
    int nd = Y->shape.ndim;
    for (int d = 0; d < nd; d++)
        p->dims[d] = Y->shape.d[d];
    int rc = cpu_bcast_pair(pp, A, B, align_b, p->sa, p->sb, err);
    if (rc)
        return rc;
    p->nd = merge_dims(nd, p->dims, p->sa, p->sb);
    p->rows = 1;
    for (int d = 0; d < p->nd - 1; d++)
        p->rows *= p->dims[d];
    int64_t ny = cpu_numel(Y);
    if (cpu_numel(A) == ny && A->dtype == Y->dtype)
        pp->p->inplace_input[pp->k] = 0;
    else if (cpu_numel(B) == ny && B->dtype == Y->dtype)
        pp->p->inplace_input[pp->k] = 1;
    pp->fn = binary_run;
    if (p->dt == SH_DT_FLOAT32)
        cpu_layout_elementwise(pp);
    return 0;
}

/* ---- BatchNormalization (inference) -------------------------------------------------------- */

typedef struct bn_params {
    int x, scale, bias, mean, var, y;
    float eps;
    int64_t N, C, inner;
} bn_params;

typedef struct bn_job {
    const bn_params *p;
    const float *x;
    float *y;
    const float *scale, *bias, *mean, *var;
} bn_job;

static void bn_range(void *arg, int64_t b, int64_t e, int tid)
{
    const bn_job *j = arg;
    const bn_params *p = j->p;
    for (int64_t r = b; r < e; r++) {
        int64_t c = r % p->C;
        float a = j->scale[c] / sqrtf(j->var[c] + p->eps);
        float o = j->bias[c] - j->mean[c] * a;
        const float *x = j->x + r * p->inner;
        float *y = j->y + r * p->inner;
        for (int64_t i = 0; i < p->inner; i++)
            y[i] = x[i] * a + o;
    }
}

static int bn_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const bn_params *p = vp;
    bn_job j = {.p = p, .x = ex->t[p->x], .y = ex->t[p->y], .scale = ex->t[p->scale],
                .bias = ex->t[p->bias], .mean = ex->t[p->mean], .var = ex->t[p->var]};
    cpu_parallel_for(ex->ctx->pool, p->N * p->C, 16384 / (p->inner + 1) + 1, bn_range, &j);
    return 0;
}

int cpu_prep_batch_norm(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    if (n->n_inputs < 5)
        return CPU_ERR(pp, err, SHOAL_ERR_PARSE, "has %d inputs, needs 5", n->n_inputs);
    if (sh_node_int(n, "training_mode", 0) != 0)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "training_mode=1 is not supported (inference only)");
    if (n->opset < 9 && sh_node_int(n, "spatial", 1) != 1)
        return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "spatial=0 is not supported");
    for (int i = 1; i < n->n_outputs; i++) {
        const sh_tensor *o = cpu_out(pp, i);
        if (o && o->n_consumers > 0)
            return CPU_ERR(pp, err, SHOAL_ERR_UNSUPPORTED, "%s", "running mean/var outputs are not supported");
    }
    const sh_tensor *X = cpu_in(pp, 0);
    for (int i = 1; i < 5; i++) {
        const sh_tensor *t = cpu_in(pp, i);
        if (!t || t->dtype != SH_DT_FLOAT32 || (X->shape.ndim > 1 && cpu_numel(t) != X->shape.d[1]))
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "input %d must be float32 [C]", i);
    }
    bn_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->x = n->inputs[0];
    p->scale = n->inputs[1];
    p->bias = n->inputs[2];
    p->mean = n->inputs[3];
    p->var = n->inputs[4];
    p->y = n->outputs[0];
    p->eps = sh_node_float(n, "epsilon", 1e-5f);
    p->N = X->shape.ndim > 0 ? X->shape.d[0] : 1;
    p->C = X->shape.ndim > 1 ? X->shape.d[1] : 1;
    p->inner = 1;
    for (int d = 2; d < X->shape.ndim; d++)
        p->inner *= X->shape.d[d];
    pp->p->inplace_input[pp->k] = 0;
    pp->fn = bn_run;
    return 0;
}

/* ---- Cast ------------------------------------------------------------------------------------ */

typedef struct cast_params {
    int x, y;
    sh_dtype from, to;
    int64_t n;
} cast_params;

static bool dt_is_float(sh_dtype d)
{
    return d == SH_DT_FLOAT32 || d == SH_DT_FLOAT64 || d == SH_DT_FLOAT16;
}

static int64_t load_i(const void *p, sh_dtype d, int64_t i)
{
    switch (d) {
    case SH_DT_INT8: return ((const int8_t *)p)[i];
    case SH_DT_INT16: return ((const int16_t *)p)[i];
    case SH_DT_INT32: return ((const int32_t *)p)[i];
    case SH_DT_INT64: return ((const int64_t *)p)[i];
    case SH_DT_UINT8: case SH_DT_BOOL: return ((const uint8_t *)p)[i];
    case SH_DT_UINT16: return ((const uint16_t *)p)[i];
    case SH_DT_UINT32: return ((const uint32_t *)p)[i];
    case SH_DT_UINT64: return (int64_t)((const uint64_t *)p)[i];
    default: return 0;
    }
}

static void store_i(void *p, sh_dtype d, int64_t i, int64_t v)
{
    switch (d) {
    case SH_DT_FLOAT32: ((float *)p)[i] = (float)v; break;
    case SH_DT_FLOAT64: ((double *)p)[i] = (double)v; break;
    case SH_DT_FLOAT16: ((uint16_t *)p)[i] = sh_f32_to_f16_ieee((float)v); break;
    case SH_DT_INT8: ((int8_t *)p)[i] = (int8_t)v; break;
    case SH_DT_INT16: ((int16_t *)p)[i] = (int16_t)v; break;
    case SH_DT_INT32: ((int32_t *)p)[i] = (int32_t)v; break;
    case SH_DT_INT64: ((int64_t *)p)[i] = v; break;
    case SH_DT_UINT8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case SH_DT_BOOL: ((uint8_t *)p)[i] = v != 0; break;
    case SH_DT_UINT16: ((uint16_t *)p)[i] = (uint16_t)v; break;
    case SH_DT_UINT32: ((uint32_t *)p)[i] = (uint32_t)v; break;
    case SH_DT_UINT64: ((uint64_t *)p)[i] = (uint64_t)v; break;
    default: break;
    }
}

static void store_f(void *p, sh_dtype d, int64_t i, double v)
{
    switch (d) {
    case SH_DT_FLOAT32: ((float *)p)[i] = (float)v; break;
    case SH_DT_FLOAT64: ((double *)p)[i] = v; break;
    /* through float32: double rounding can differ from a direct rounding only on exact ties
     * of the float32 value, a half-ulp of fp16 at most */
    case SH_DT_FLOAT16: ((uint16_t *)p)[i] = sh_f32_to_f16_ieee((float)v); break;
    case SH_DT_BOOL: ((uint8_t *)p)[i] = v != 0.0; break;
    default:
        /* Float to integer truncates toward zero like numpy's astype; NaN becomes 0. */
        store_i(p, d, i, isnan(v) ? 0 : (int64_t)v);
        break;
    }
}

static int cast_run(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const cast_params *p = vp;
    const void *x = ex->t[p->x];
    void *y = ex->t[p->y];
    if (p->from == p->to) {
        if (x != y && p->n)
            memcpy(y, x, (size_t)p->n * sh_dtype_size(p->from));
        return 0;
    }
    if (p->from == SH_DT_INT32 && p->to == SH_DT_FLOAT32) {
        /* integer accumulators (ConvInteger, MatMulInteger) on their way to dequantization */
        const int32_t *xi = x;
        float *yf = y;
        for (int64_t i = 0; i < p->n; i++)
            yf[i] = (float)xi[i];
        return 0;
    }
    if (dt_is_float(p->from))
        for (int64_t i = 0; i < p->n; i++)
            store_f(y, p->to, i, sh_dtype_load_f64(x, p->from, i));
    else if (dt_is_float(p->to))
        for (int64_t i = 0; i < p->n; i++)
            store_f(y, p->to, i, sh_dtype_load_f64(x, p->from, i));
    else
        for (int64_t i = 0; i < p->n; i++)
            store_i(y, p->to, i, load_i(x, p->from, i));
    return 0;
}

int cpu_prep_cast(cpu_prep *pp, sh_err *err)
{
    cast_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_tensor *X = cpu_in(pp, 0), *Y = cpu_out(pp, 0);
    p->x = pp->n->inputs[0];
    p->y = pp->n->outputs[0];
    p->from = X->dtype;
    p->to = Y->dtype;
    p->n = cpu_numel(Y);
    if (sh_dtype_size(p->from) == sh_dtype_size(p->to))
        pp->p->inplace_input[pp->k] = 0;
    pp->fn = cast_run;
    return 0;
}
