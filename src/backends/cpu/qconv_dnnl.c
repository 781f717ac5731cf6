/* ConvInteger and QLinearConv on oneDNN's int8 convolutions (u8s8 / s8s8 with int32
 * accumulators: VNNI's vpdpbusd on AVX512-VNNI and AVX-VNNI, vpmaddubsw otherwise).
 *
 * Exactness is the condition, not a hope: oneDNN accumulates the same integers ONNX defines,
 * and the requantization (QLinearConv) or int32 copy (ConvInteger) is done here, with the
 * very expression of the im2col path (qconv.c), on the int32 result. Two things could break
 * it, and the node stays on the im2col path when either may happen:
 * - oneDNN convolutions take s8 weights without a zero point. uint8 weights w with zero point
 *   z (onnxruntime's dynamic quantizer writes them) are split exactly:
 *   sum (x - xz)(w - z) = sum (x - xz)(w - 128) + (128 - z) * sum (x - xz), where w - 128 is
 *   s8 for oneDNN and the second sum, over the output's window of the group's channels
 *   (padding contributing 0), is a box sum of per-group channel sums computed here. int8
 *   weights with a non-zero zero point stay on im2col.
 * - Without VNNI, vpmaddubsw adds two u8 x s8 products in saturating int16 (255 * 127 * 2 >
 *   32767; oneDNN documents this for non-VNNI int8). Even weights with |w| <= 64, which cannot
 *   reach it, gave inexact outputs on an AVX2-only EPYC, so int8 needs a VNNI ISA.
 * The input zero point is oneDNN's runtime source zero point, which also treats padding as
 * the zero point (contributing 0, as ONNX's zero-point-corrected products do).
 *
 * Layout and threading follow the fp32 oneDNN conv (conv.c): OpenMP at one thread, one
 * primitive per band of output rows over shoal's pool (dnnl_bands.h), NHWC input transposed
 * into the workspace, and each band turns its own NHWC int32 rows into the NCHW output. */
#include "backends/cpu/dnnl_bands.h"
#include "backends/cpu/quant_impl.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Largest K whose products (|x - xz|, |w - wz| <= 255) sum exactly in float32 in any order:
 * 258 * 255 * 255 < 2^24. */
#define QD_F32_EXACT_K 258

struct qconv_dnnl {
    cpu_dnnl_bands bands;
    dnnl_memory_t m_wei, m_zp;      /* m_zp: the runtime source zero point, NULL without one */
    cpu_dnnl_weight_pack w_pack;    /* NULL members without needs_pack */
    bool u8_weights;                /* packed as w - 128 */
    bool f32;                       /* the float convolution on zero-point-corrected values */
    int32_t *wzero;                 /* f32: [M] the weights' zero points, NULL when all 0 */
    int64_t w_per_m;                /* f32: weights per output channel */
    int32_t *shift;                 /* uint8 weights: [M] 128 - zero point, NULL when all 0 */
    size_t w_count;                 /* weight elements (the pack's s8 / f32 staging) */
    size_t packed_bytes;            /* the primitive's weight layout, compensation included */
    bool needs_pack;                /* weights reordered (qd_pack) rather than used as stored */
    size_t ws_bytes;                /* the node's workspace */
    /* workspace: NHWC x, NHWC int32 y, [M] scales and the code tables, [M] bias, zp; with
     * shift also the per-group channel sums of x - xz [G, H*W] and their window sums [G, OH*OW] */
    size_t off_src, off_dst, off_scale, off_bias, off_zp, off_csum, off_wsum;
};

static void qd_destroy(cpu_ctx *ctx, qconv_dnnl *d)
{
    if (!d)
        return;
    cpu_dnnl_bands_free(&d->bands);
    cpu_dnnl_weight_pack_free(&d->w_pack);
    sh_free(ctx->alloc, d->shift);
    sh_free(ctx->alloc, d->wzero);
    dnnl_memory_t mems[] = {d->m_wei, d->m_zp};
    for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
        if (mems[i])
            dnnl_memory_destroy(mems[i]);
    sh_free(ctx->alloc, d);
}

static void qd_free(cpu_ctx *ctx, void *vp)
{
    qconv_params *p = vp;
    qd_destroy(ctx, p->dnn);
    p->dnn = NULL;
}

static int qd_pack(cpu_ctx *ctx, const void *vp, const void *src, void *dst, sh_err *err)
{
    const qconv_params *p = vp;
    qconv_dnnl *d = p->dnn;
    void *staged = NULL;
    if (d->f32) {
        size_t bytes;
        if (!sh_mul_size(d->w_count ? d->w_count : 1, sizeof(float), &bytes) || !(staged = sh_alloc(ctx->alloc, bytes)))
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu: out of memory staging %zu conv weights as float", d->w_count);
        float *f = staged;
        for (size_t i = 0; i < d->w_count; i++) {
            int32_t z = d->wzero ? d->wzero[(int64_t)i / d->w_per_m] : 0;
            int32_t w = p->wdt == SH_DT_UINT8 ? ((const uint8_t *)src)[i] : ((const int8_t *)src)[i];
            f[i] = (float)(w - z);
        }
        src = staged;
    } else if (d->u8_weights) {
        staged = sh_alloc(ctx->alloc, d->w_count ? d->w_count : 1);
        if (!staged)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cpu: out of memory staging %zu int8 conv weights", d->w_count);
        for (size_t i = 0; i < d->w_count; i++)
            ((int8_t *)staged)[i] = (int8_t)(((const uint8_t *)src)[i] - 128);
        src = staged;
    }
    /* The reorder leaves the layout's padding (channels rounded up to the block) unwritten;
     * packed bytes are hashed for the weight store and must not depend on the buffer. */
    memset(dst, 0, d->packed_bytes);
    int rc = cpu_dnnl_weight_pack_run(&d->w_pack, ctx, src, dst, "an int8 conv weight", err);
    sh_free(ctx->alloc, staged);
    return rc;
}

static bool isa_has_vnni(void)
{
    dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
    return (isa & dnnl_cpu_isa_avx512_core_vnni) == dnnl_cpu_isa_avx512_core_vnni ||
           (isa & dnnl_cpu_isa_avx2_vnni) == dnnl_cpu_isa_avx2_vnni;
}

/* Whether the weights fit oneDNN at all (a constant read by this node alone), and then
 * whether they fit its int8 convolution (s8 without zero point, or u8 with a constant zero
 * point: *shifted; otherwise *no_int8 says why). */
static bool weights_fit(const cpu_prep *pp, const qconv_params *p, bool *shifted, const char **no_int8,
                        const char **why)
{
    const sh_tensor *W = &pp->g->tensors[p->w];
    if (!W->is_const || !W->data) {
        *why = "int8 im2col: weights are not a constant";
        return false;
    }
    if (W->n_consumers != 1) {
        *why = "int8 im2col: weights shared with another node";
        return false;
    }
    *shifted = W->dtype == SH_DT_UINT8;
    *no_int8 = NULL;
    if (p->wz >= 0) {
        const sh_tensor *Z = &pp->g->tensors[p->wz];
        if (!Z->is_const || !Z->data) {
            *why = "int8 im2col: weight zero point is not a constant";
            return false;
        }
        for (int64_t i = 0; i < cpu_numel(Z) && !*shifted && !*no_int8; i++)
            if (((const int8_t *)Z->data)[i] != 0)
                *no_int8 = "int8 weights with a non-zero zero point";
    }
    return true;
}

/* oneDNN's convolution for the node: int8 (u8s8 / s8s8, int32 sums; `shifted`: uint8 weights
 * as w - 128) or, with f32, float on the zero-point-corrected values. *out on success (0). */
static int qd_build(cpu_prep *pp, const qconv_params *p, bool f32, bool shifted, qconv_dnnl **out)
{
    cpu_ctx *ctx = pp->ctx;
    /* A source zero point known to be 0 needs no attribute (and no compensation pass). */
    bool src_zp = p->xz >= 0 && !f32;
    if (src_zp) {
        const sh_tensor *Z = &pp->g->tensors[p->xz];
        if (Z->is_const && Z->data && q_get(Z->data, Z->dtype, 0) == 0)
            src_zp = false;
    }
    dnnl_data_type_t xdt = f32 ? dnnl_f32 : p->xdt == SH_DT_UINT8 ? dnnl_u8 : dnnl_s8;
    dnnl_data_type_t wdt = f32 ? dnnl_f32 : dnnl_s8, ydt = f32 ? dnnl_f32 : dnnl_s32;
    dnnl_memory_desc_t w_plain, w_any;
    cpu_dnnl_weight_desc(&w_plain, p->G, p->M, p->Cg, p->kh, p->kw, wdt, false);
    cpu_dnnl_weight_desc(&w_any, p->G, p->M, p->Cg, p->kh, p->kw, wdt, true);

    dnnl_primitive_attr_t attr = NULL;
    int rc = -1;
    int prev_threads = omp_get_max_threads();
    omp_set_num_threads(1);
    qconv_dnnl *d = sh_calloc(ctx->alloc, 1, sizeof *d);
    const int32_t runtime_zp = DNNL_RUNTIME_S32_VAL;
    if (d && f32) {
        const sh_tensor *Z = p->wz >= 0 ? &pp->g->tensors[p->wz] : NULL;
        d->f32 = true;
        d->w_count = pp->g->tensors[p->w].nbytes;
        d->w_per_m = p->K;
        if (Z) {
            d->wzero = sh_alloc(ctx->alloc, (size_t)p->M * sizeof(int32_t));
            if (!d->wzero)
                goto out;
            for (int64_t m = 0; m < p->M; m++)
                d->wzero[m] = q_get(Z->data, Z->dtype, p->n_wz > 1 ? m : 0);
        }
    }
    if (d && shifted) {
        /* 128 - z per output channel; all zero (z = 128) needs no correction at all */
        const sh_tensor *Z = p->wz >= 0 ? &pp->g->tensors[p->wz] : NULL;
        bool any = false;
        d->shift = sh_alloc(ctx->alloc, (size_t)p->M * sizeof(int32_t));
        if (!d->shift)
            goto out;
        for (int64_t m = 0; m < p->M; m++) {
            int32_t z = Z ? ((const uint8_t *)Z->data)[p->n_wz > 1 ? m : 0] : 0;
            d->shift[m] = 128 - z;
            any |= d->shift[m] != 0;
        }
        d->u8_weights = true;
        d->w_count = pp->g->tensors[p->w].nbytes;
        if (!any) {
            sh_free(ctx->alloc, d->shift);
            d->shift = NULL;
        }
    }
    if (!d || dnnl_primitive_attr_create(&attr) != dnnl_success ||
        dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) != dnnl_success ||
        (src_zp && dnnl_primitive_attr_set_zero_points(attr, DNNL_ARG_SRC, 1, 0, &runtime_zp) != dnnl_success))
        goto out;
    cpu_dnnl_band_conv bc = {
        .rows = {.in_rows = p->H, .out_rows = p->OH, .stride = p->sh, .pad_top = p->pt,
                 .extent = (p->kh - 1) * p->dh + 1},
        .src_channels = p->C, .src_width = p->W, .dst_channels = p->M, .dst_width = p->OW,
        .pad_left = p->pl, .pad_right = p->pr,
        .strides = {p->sh, p->sw}, .dilates = {p->dh - 1, p->dw - 1},
        .src_type = xdt, .dst_type = ydt, .weights = &w_any, .attr = attr,
    };
    if (cpu_dnnl_bands_create(&d->bands, ctx, &bc) < 0)
        goto out;
    const dnnl_memory_desc_t *wchosen = &d->bands.weights;
    size_t ws = d->bands.scratch_bytes;
    if (dnnl_memory_create(&d->m_wei, wchosen, ctx->dnnl_engine, DNNL_MEMORY_NONE))
        goto out;
    if (src_zp) {
        dnnl_dims_t one = {1};
        dnnl_memory_desc_t zp_md;
        dnnl_memory_desc_init_by_tag(&zp_md, 1, one, dnnl_s32, dnnl_x);
        if (dnnl_memory_create(&d->m_zp, &zp_md, ctx->dnnl_engine, DNNL_MEMORY_NONE))
            goto out;
    }
    if (!dnnl_memory_desc_equal(wchosen, &w_plain) || d->u8_weights || d->f32) {
        /* The packed weight is the primitive's layout, compensation terms included. */
        if (cpu_dnnl_weight_pack_create(&d->w_pack, ctx, &w_plain, wchosen) < 0)
            goto out;
        d->needs_pack = true;
        d->packed_bytes = dnnl_memory_desc_get_size(wchosen);
    }
    size_t src_bytes, dst_bytes;
    if (!sh_mul_size((size_t)p->C, (size_t)(p->H * p->W) * (f32 ? sizeof(float) : 1), &src_bytes) ||
        !sh_mul_size((size_t)p->M, (size_t)(p->OH * p->OW) * sizeof(int32_t), &dst_bytes))
        goto out;
    d->off_src = ws;
    d->off_dst = d->off_src + sh_align_up(src_bytes, CPU_DNNL_ALIGN);
    d->off_scale = d->off_dst + sh_align_up(dst_bytes, CPU_DNNL_ALIGN);
    d->off_bias = d->off_scale + sh_align_up((size_t)p->M * sizeof(float) + QCONV_TABLE_BYTES, CPU_DNNL_ALIGN);
    d->off_zp = d->off_bias + sh_align_up((size_t)p->M * sizeof(int32_t), CPU_DNNL_ALIGN);
    d->off_csum = d->off_zp + 64;
    d->off_wsum = d->off_csum;
    size_t csum = 0, wsum = 0;
    if (d->shift && (!sh_mul_size((size_t)p->G, (size_t)(p->H * p->W) * sizeof(int32_t), &csum) ||
                     !sh_mul_size((size_t)p->G, (size_t)(p->OH * p->OW) * sizeof(int32_t), &wsum)))
        goto out;
    d->off_wsum = d->off_csum + sh_align_up(csum, CPU_DNNL_ALIGN);
    d->ws_bytes = d->off_wsum + sh_align_up(wsum, CPU_DNNL_ALIGN);
    rc = 0;
out:
    omp_set_num_threads(prev_threads);
    if (attr)
        dnnl_primitive_attr_destroy(attr);
    if (rc < 0) {
        qd_destroy(ctx, d);
        d = NULL;
    }
    *out = d;
    return rc;
}

/* The per-conv choice by speed. Both kernels give the same integers where the float one is
 * exact (K <= QD_F32_EXACT_K), so the faster may run without any change in results; which one
 * is faster depends on the shape and the machine (on a 2-vCPU Zen 5 with VNNI, int8 won 70 of
 * traffic_light's 77 convs; the 7 others, small 1x1 and depthwise convs, lost 0.46 ms
 * together), so both are timed at compile time on the node's own shapes with synthetic codes.
 * Only small convs are probed: above QD_PROBE_MAX_FLOP int8 won every conv measured, and the
 * probe's cost (a few runs of each kernel) would grow with the conv. The float kernel must win
 * by QD_PROBE_MARGIN: it charges 4 bytes per weight instead of 1. */
#define QD_PROBE_MAX_FLOP 64e6
#define QD_PROBE_MARGIN 0.85
#define QD_PROBE_RUNS 3

/* Whether the node's scales and zero points are constants (the probe reads them) and the
 * conv is small and exact enough to probe. */
static bool qd_probe_fits(const cpu_prep *pp, const qconv_params *p)
{
    if (p->K > QD_F32_EXACT_K || 2.0 * (double)p->M * (double)p->K * (double)(p->OH * p->OW) > QD_PROBE_MAX_FLOP)
        return false;
    int params[] = {p->xs, p->xz, p->ws, p->wz, p->ys, p->yz, p->b, p->qs, p->qz};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if (params[i] >= 0 && (!pp->g->tensors[params[i]].is_const || !pp->g->tensors[params[i]].data))
            return false;
    return true;
}

static double qd_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* Times kernels a (int8) and b (float) on synthetic input codes: the best of QD_PROBE_RUNS
 * alternating runs each, after one warm-up run of each. On a pool and a oneDNN stream of its
 * own: a model may be compiled while others run on the context's. */
static int qd_probe(cpu_prep *pp, qconv_params *p, qconv_dnnl *a, qconv_dnnl *b, double *ta, double *tb)
{
    cpu_ctx *ctx = pp->ctx;
    const sh_graph *g = pp->g;
    const sh_tensor *X = &g->tensors[p->x], *Y = &g->tensors[p->y], *W = &g->tensors[p->w];
    size_t ws = a->ws_bytes > b->ws_bytes ? a->ws_bytes : b->ws_bytes, xbytes, ybytes;
    if (!sh_mul_size((size_t)cpu_numel(X), sh_dtype_size(X->dtype), &xbytes) ||
        !sh_mul_size((size_t)cpu_numel(Y), sh_dtype_size(Y->dtype), &ybytes))
        return -1;
    size_t wa = a->needs_pack ? a->packed_bytes : 0, wb = b->needs_pack ? b->packed_bytes : 0;
    void **t = sh_calloc(ctx->alloc, (size_t)g->n_tensors, sizeof *t);
    char *xbuf = sh_alloc(ctx->alloc, xbytes ? xbytes : 1), *ybuf = sh_alloc(ctx->alloc, ybytes ? ybytes : 1);
    char *wsbuf = sh_alloc(ctx->alloc, ws ? ws : 1);
    char *wabuf = sh_alloc(ctx->alloc, wa ? wa : 1), *wbbuf = sh_alloc(ctx->alloc, wb ? wb : 1);
    int rc = -1;
    qconv_dnnl *keep = p->dnn;
    cpu_pool *pool = NULL;
    dnnl_stream_t st = NULL;
    if (!t || !xbuf || !ybuf || !wsbuf || !wabuf || !wbbuf || cpu_pool_create(ctx->alloc, ctx->n_threads, ctx->pool_spin_us, &pool) ||
        dnnl_stream_create(&st, ctx->dnnl_engine, dnnl_stream_default_flags) != dnnl_success)
        goto out;
    cpu_ctx own = *ctx;
    own.pool = pool;
    own.dnnl_stream = st;
    own.prof_ms = own.prof_node_ms = NULL;
    own.prof_node_cap = 0;
    uint32_t r = 0x9E3779B9u;
    for (size_t i = 0; i < xbytes; i++) {
        r = r * 1664525u + 1013904223u;
        xbuf[i] = (char)(r >> 24);
    }
    int params[] = {p->xs, p->xz, p->ws, p->wz, p->ys, p->yz, p->b, p->qs, p->qz};
    for (size_t i = 0; i < sizeof params / sizeof params[0]; i++)
        if (params[i] >= 0)
            t[params[i]] = g->tensors[params[i]].data;
    t[p->x] = xbuf;
    t[p->y] = ybuf;
    sh_err err = {0};
    p->dnn = a;
    if (a->needs_pack && qd_pack(ctx, p, W->data, wabuf, &err))
        goto out;
    p->dnn = b;
    if (b->needs_pack && qd_pack(ctx, p, W->data, wbbuf, &err))
        goto out;
    cpu_exec ex = {.ctx = &own, .g = g, .t = t, .ws = wsbuf};
    const sh_node *n = &g->nodes[pp->k];
    double best[2] = {1e30, 1e30};
    for (int run = 0; run <= QD_PROBE_RUNS; run++)
        for (int v = 0; v < 2; v++) {
            p->dnn = v ? b : a;
            t[p->w] = v ? (b->needs_pack ? wbbuf : W->data) : (a->needs_pack ? wabuf : W->data);
            double t0 = qd_now_ms();
            if (qconv_dnnl_run(&ex, n, p, &err))
                goto out;
            double dt = qd_now_ms() - t0;
            if (run > 0 && dt < best[v])
                best[v] = dt;
        }
    *ta = best[0];
    *tb = best[1];
    rc = 0;
out:
    p->dnn = keep;
    if (st)
        dnnl_stream_destroy(st);
    cpu_pool_destroy(pool);
    sh_free(ctx->alloc, t);
    sh_free(ctx->alloc, xbuf);
    sh_free(ctx->alloc, ybuf);
    sh_free(ctx->alloc, wsbuf);
    sh_free(ctx->alloc, wabuf);
    sh_free(ctx->alloc, wbbuf);
    return rc;
}

int qconv_dnnl_prepare(cpu_prep *pp, qconv_params *p)
{
    cpu_ctx *ctx = pp->ctx;
    p->path = "int8 im2col: oneDNN unavailable";
    if (!ctx->dnnl_engine)
        return -1;
    if (ctx->conv_impl == CPU_CONV_BLAS) {
        p->path = "int8 im2col: oneDNN convolutions off";
        return -1;
    }
    if (p->N != 1) {
        p->path = "int8 im2col: batch > 1";
        return -1;
    }
    bool shifted = false;
    const char *no_int8 = NULL;
    if (!weights_fit(pp, p, &shifted, &no_int8, &p->path))
        return -1;
    /* Without VNNI oneDNN 2.6's int8 kernels are not exact even where |w| <= 64 keeps their
     * int16 pair sums from saturating: on an AVX2-only EPYC the three such convs of the real
     * QOperator YOLOv8n took the final output to relative L2 0.034 from onnxruntime's. */
    if (!no_int8 && !isa_has_vnni())
        no_int8 = "no VNNI";
    if (!no_int8 && ctx->conv_impl == CPU_CONV_DNNL_INT8_AS_F32)
        no_int8 = "int8 convolutions off (bench hook)";
    /* Where oneDNN's int8 convolution cannot give the exact integers, its float convolution
     * of the zero-point-corrected values can, while every partial sum stays an integer below
     * 2^24 (K <= QD_F32_EXACT_K). Above that the float sum may round, and an output one code
     * off changes every layer after it (a real QOperator YOLOv8n: relative L2 0.034 against
     * onnxruntime on an AVX2-only EPYC), so those convs take the exact im2col path. */
    bool f32 = no_int8 != NULL;
    if (f32 && p->K > QD_F32_EXACT_K) {
        snprintf(p->path_buf, sizeof p->path_buf, "int8 im2col: %s, and K > %d", no_int8, QD_F32_EXACT_K);
        p->path = p->path_buf;
        return -1;
    }
    if (f32) {
        shifted = false;
        snprintf(p->path_buf, sizeof p->path_buf, "fp32 oneDNN (exact): %s", no_int8);
    }
    qconv_dnnl *d = NULL;
    if (qd_build(pp, p, f32, shifted, &d) < 0) {
        p->path = f32 ? "int8 im2col: oneDNN has no float convolution for this shape"
                      : "int8 im2col: oneDNN has no int8 convolution for this shape";
        return -1;
    }
    if (!f32)
        snprintf(p->path_buf, sizeof p->path_buf, "int8 oneDNN");
    if (!f32 && qd_probe_fits(pp, p)) {
        /* where the float kernel gives the same integers, the faster of the two runs */
        qconv_dnnl *df = NULL;
        double t8 = 0, tf = 0;
        if (qd_build(pp, p, true, false, &df) == 0 && qd_probe(pp, p, d, df, &t8, &tf) == 0) {
            if (tf < QD_PROBE_MARGIN * t8) {
                qd_destroy(ctx, d);
                d = df;
                df = NULL;
                f32 = true;
                snprintf(p->path_buf, sizeof p->path_buf, "fp32 oneDNN (exact): probed faster than int8");
            } else {
                snprintf(p->path_buf, sizeof p->path_buf, "int8 oneDNN, probed faster than fp32");
            }
        }
        qd_destroy(ctx, df);
    }
    p->dnn = d;
    p->path = p->path_buf;
    pp->free_params = qd_free;
    if (d->needs_pack) {
        pp->pack_tensor = p->w;
        pp->pack = qd_pack;
        pp->p->weight_bytes[p->w] = d->packed_bytes;
    }
    pp->p->workspace_bytes[pp->k] = d->ws_bytes;
    return 0;
}

typedef struct qd_job {
    const qconv_params *p;
    const qconv_dnnl *d;
    cpu_ctx *ctx;
    const void *x;
    void *y;
    char *ws;
    const float *scale;
    const int32_t *bias;
    const float *table;             /* dequantizing QLinearConv: [256] code -> float output */
    const uint8_t *btable;          /* otherwise: [256] code -> output byte */
    int32_t yz, xz;
    int failed;
} qd_job;

/* NCHW -> NHWC bytes over pixel ranges, in blocks of pixels so both sides stay in cache. */
static void qd_to_nhwc(void *arg, int64_t r0, int64_t r1, int tid)
{
    const qd_job *j = arg;
    const qconv_params *p = j->p;
    const uint8_t *x = j->x;
    uint8_t *t = (uint8_t *)(j->ws + j->d->off_src);
    int64_t P = p->H * p->W;
    enum { BLOCK = 64 };
    for (int64_t q0 = r0; q0 < r1; q0 += BLOCK) {
        int64_t q1 = q0 + BLOCK < r1 ? q0 + BLOCK : r1;
        for (int64_t c = 0; c < p->C; c++) {
            const uint8_t *src = x + c * P;
            for (int64_t q = q0; q < q1; q++)
                t[q * p->C + c] = src[q];
        }
        if (!j->d->shift)
            continue;
        int32_t *csum = (int32_t *)(j->ws + j->d->off_csum);
        for (int64_t g = 0; g < p->G; g++) {
            int32_t *cs = csum + g * P;
            for (int64_t q = q0; q < q1; q++)
                cs[q] = -(int32_t)p->Cg * j->xz;
            for (int64_t c = g * p->Cg; c < (g + 1) * p->Cg; c++) {
                if (p->xdt == SH_DT_UINT8)
                    for (int64_t q = q0; q < q1; q++)
                        cs[q] += x[c * P + q];
                else
                    for (int64_t q = q0; q < q1; q++)
                        cs[q] += (int8_t)x[c * P + q];
            }
        }
    }
    (void)tid;
}

/* The float path's input: x - xz as float32, NHWC, over pixel ranges, from NCHW or (linked)
 * NHWC codes. */
static void qd_to_nhwc_f32(void *arg, int64_t r0, int64_t r1, int tid)
{
    const qd_job *j = arg;
    const qconv_params *p = j->p;
    float *t = (float *)(j->ws + j->d->off_src);
    float xz = (float)j->xz;
    bool u8 = p->xdt == SH_DT_UINT8;
    if (p->in_nhwc) {
        const uint8_t *xu = j->x;
        const int8_t *xs = j->x;
        for (int64_t i = r0 * p->C; i < r1 * p->C; i++)
            t[i] = (u8 ? (float)xu[i] : (float)xs[i]) - xz;
        return;
    }
    int64_t P = p->H * p->W;
    enum { BLOCK = 64 };
    for (int64_t q0 = r0; q0 < r1; q0 += BLOCK) {
        int64_t q1 = q0 + BLOCK < r1 ? q0 + BLOCK : r1;
        for (int64_t c = 0; c < p->C; c++) {
            if (u8) {
                const uint8_t *src = (const uint8_t *)j->x + c * P;
                for (int64_t q = q0; q < q1; q++)
                    t[q * p->C + c] = (float)src[q] - xz;
            } else {
                const int8_t *src = (const int8_t *)j->x + c * P;
                for (int64_t q = q0; q < q1; q++)
                    t[q * p->C + c] = (float)src[q] - xz;
            }
        }
    }
    (void)tid;
}

/* Window sums of the channel sums for output pixels [P0, P1): sum (x - xz) over each output's
 * receptive field in its group, the padding contributing 0. */
static void qd_window_sums(const qd_job *j, int64_t P0, int64_t P1)
{
    const qconv_params *p = j->p;
    const int32_t *csum = (const int32_t *)(j->ws + j->d->off_csum);
    int32_t *wsum = (int32_t *)(j->ws + j->d->off_wsum);
    int64_t P = p->H * p->W, OP = p->OH * p->OW;
    for (int64_t g = 0; g < p->G; g++)
        for (int64_t q = P0; q < P1; q++) {
            int64_t oy = q / p->OW, ox = q % p->OW;
            int32_t sum = 0;
            for (int64_t ky = 0; ky < p->kh; ky++) {
                int64_t iy = oy * p->sh - p->pt + ky * p->dh;
                if (iy < 0 || iy >= p->H)
                    continue;
                const int32_t *row = csum + g * P + iy * p->W;
                for (int64_t kx = 0; kx < p->kw; kx++) {
                    int64_t ix = ox * p->sw - p->pl + kx * p->dw;
                    if (ix >= 0 && ix < p->W)
                        sum += row[ix];
                }
            }
            wsum[g * OP + q] = sum;
        }
}

/* This band's NHWC int32 rows [P0, P1) into the output: the int32 itself (ConvInteger), or
 * requantized exactly as the im2col path does (QLinearConv), NCHW or NHWC (p->out_nhwc). The
 * requantization runs over the NHWC rows as they are, where every operand is contiguous and
 * the loop vectorises, and leaves each code's table index (code - lowest code) in place of
 * its sum; the tables then give the output bytes or floats. */
static void qd_store(const qd_job *j, int32_t *acc, int64_t P0, int64_t P1)
{
    const qconv_params *p = j->p;
    int64_t P = p->OH * p->OW, M = p->M;
    const int32_t *shift = j->d->shift;
    if (j->d->f32) {
        /* the float sums are exact integers (K <= QD_F32_EXACT_K): only the type changes */
        for (int64_t i = 0; i < (P1 - P0) * M; i++) {
            float f;
            memcpy(&f, &acc[i], sizeof f);
            acc[i] = (int32_t)rintf(f);
        }
    }
    if (shift) {
        /* the (128 - z) * window-sum term of the uint8-weight split, into the NHWC sums */
        qd_window_sums(j, P0, P1);
        const int32_t *wsum = (const int32_t *)(j->ws + j->d->off_wsum);
        for (int64_t q = P0; q < P1; q++) {
            int32_t *a = acc + (q - P0) * M;
            for (int64_t m = 0; m < M; m++)
                a[m] += shift[m] * wsum[(m / p->Mg) * P + q];
        }
    }
    enum { BLOCK = 64 };
    if (!p->qlinear) {
        for (int64_t q0 = P0; q0 < P1; q0 += BLOCK) {
            int64_t q1 = q0 + BLOCK < P1 ? q0 + BLOCK : P1;
            for (int64_t m = 0; m < M; m++) {
                const int32_t *a = acc + (q0 - P0) * M + m;
                int32_t *y = (int32_t *)j->y + m * P;
                for (int64_t q = q0; q < q1; q++, a += M)
                    y[q] = *a;
            }
        }
        return;
    }
    const int32_t *restrict bias = j->bias;
    const float *restrict scale = j->scale;
    float z = (float)j->yz, lo = q_lo(p->ydt), hi = q_hi(p->ydt);
    for (int64_t q = P0; q < P1; q++) {
        int32_t *restrict a = acc + (q - P0) * M;
        for (int64_t m = 0; m < M; m++) {
            float v = rintf((float)(a[m] + bias[m]) * scale[m]) + z;
            v = v < lo ? lo : v;
            v = v > hi ? hi : v;
            a[m] = (int32_t)(v - lo);
        }
    }
    if (p->out_nhwc) {
        uint8_t *y = (uint8_t *)j->y + P0 * M;
        const uint8_t *bt = j->btable;
        for (int64_t i = 0; i < (P1 - P0) * M; i++)
            y[i] = bt[acc[i]];
        return;
    }
    for (int64_t q0 = P0; q0 < P1; q0 += BLOCK) {
        int64_t q1 = q0 + BLOCK < P1 ? q0 + BLOCK : P1;
        for (int64_t m = 0; m < M; m++) {
            const int32_t *a = acc + (q0 - P0) * M + m;
            if (j->table) {
                float *y = (float *)j->y + m * P;
                for (int64_t q = q0; q < q1; q++, a += M)
                    y[q] = j->table[*a];
            } else {
                uint8_t *y = (uint8_t *)j->y + m * P;
                for (int64_t q = q0; q < q1; q++, a += M)
                    y[q] = j->btable[*a];
            }
        }
    }
}

static void qd_bands(void *arg, int64_t b0, int64_t b1, int tid)
{
    qd_job *j = arg;
    const qconv_params *p = j->p;
    const qconv_dnnl *d = j->d;
    int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    for (int64_t b = b0; b < b1; b++) {
        const cpu_dnnl_band *bd = &d->bands.band[b];
        size_t xe = d->f32 ? sizeof(float) : 1;
        const char *src = (p->in_nhwc && !d->f32 ? (const char *)j->x : j->ws + d->off_src) +
                          (size_t)(bd->ih0 * p->W * p->C) * xe;
        int32_t *dst = (int32_t *)(j->ws + d->off_dst) + bd->oh0 * p->OW * p->M;
        if (!cpu_dnnl_band_execute(bd, j->ctx, src, dst, j->ws, d->m_wei, DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC,
                                   d->m_zp)) {
            j->failed = 1;
            continue;
        }
        qd_store(j, dst, bd->oh0 * p->OW, bd->oh1 * p->OW);
    }
    omp_set_num_threads(prev);
    (void)tid;
}

int qconv_dnnl_run(const cpu_exec *ex, const sh_node *n, const qconv_params *p, sh_err *err)
{
    qconv_dnnl *d = p->dnn;
    char *ws = ex->ws;
    float *scale = (float *)(ws + d->off_scale);
    int32_t *zp = (int32_t *)(ws + d->off_zp);
    qd_job j = {.p = p, .d = d, .ctx = ex->ctx, .x = ex->t[p->x], .y = ex->t[p->y], .ws = ws, .scale = scale};
    if (p->qlinear) {
        float xs = q_scale(ex, p->xs, 0), ys = q_scale(ex, p->ys, 0);
        for (int64_t m = 0; m < p->M; m++)
            scale[m] = xs * q_scale(ex, p->ws, p->n_ws > 1 ? m : 0) / ys;
        int32_t *bias = (int32_t *)(ws + d->off_bias);
        for (int64_t m = 0; m < p->M; m++)
            bias[m] = p->b >= 0 ? ((const int32_t *)ex->t[p->b])[m] : 0;
        j.bias = bias;
        j.yz = q_zp(ex, p->yz, p->ydt, 0);
        float *table = scale + p->M;
        uint8_t *btable = (uint8_t *)(table + 256);
        if (p->dequant) {
            qconv_dequant_table(ex, p, table, btable);
            j.table = p->requant ? NULL : table;
        } else {
            /* the codes' own bytes */
            int32_t lo = (int32_t)q_lo(p->ydt);
            for (int32_t c = 0; c < 256; c++)
                btable[c] = (uint8_t)(c + lo);
        }
        j.btable = btable;
    }
    *zp = q_zp(ex, p->xz, p->xdt, 0);
    j.xz = *zp;
    /* Shared by the bands, read-only while they run. */
    dnnl_memory_set_data_handle(d->m_wei, ex->t[p->w]);
    if (d->m_zp)
        dnnl_memory_set_data_handle(d->m_zp, zp);
    if (d->f32)
        cpu_parallel_for(ex->ctx->pool, p->H * p->W, 256, qd_to_nhwc_f32, &j);
    else if (!p->in_nhwc)
        cpu_parallel_for(ex->ctx->pool, p->H * p->W, 256, qd_to_nhwc, &j);
    cpu_parallel_for_chunks(ex->ctx->pool, d->bands.n, 1, qd_bands, &j);
    if (j.failed || dnnl_stream_wait(ex->ctx->dnnl_stream) != dnnl_success)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "node %s (%s): oneDNN int8 convolution failed", n->name,
                       sh_op_name(n->op));
    return 0;
}

/* A oneDNN ConvInteger / QLinearConv that can read x NHWC: the uint8-weight split needs its
 * channel sums from the NCHW input. */
static qconv_params *nhwc_reader(const sh_graph *g, int k, void *const *params)
{
    const sh_node *n = &g->nodes[k];
    qconv_params *p = params[k];
    if (n->dead || (n->op != SH_OP_QLINEAR_CONV && n->op != SH_OP_CONV_INTEGER) || !p || !p->dnn || p->dnn->shift)
        return NULL;
    return p;
}

void cpu_qconv_link_nhwc(const sh_graph *g, cpu_kernel_fn const *fns, void *const *params)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || n->n_outputs != 1 || !params[k])
            continue;
        qconv_params *pq = NULL;
        if (n->op == SH_OP_QLINEAR_CONV) {
            pq = params[k];
            if (!pq->dnn || (pq->dequant && !pq->requant))
                continue;
        } else if (!cpu_quantize_nhwc_capable(fns[k], params[k])) {
            continue;
        }
        int y = n->outputs[0];
        const sh_tensor *Y = &g->tensors[y];
        if (Y->is_output || Y->n_consumers < 1)
            continue;
        int readers = 0;
        bool ok = true;
        for (int c = 0; c < g->n_nodes && ok; c++) {
            if (g->nodes[c].dead)
                continue;
            for (int i = 0; i < g->nodes[c].n_inputs; i++) {
                if (g->nodes[c].inputs[i] != y)
                    continue;
                const qconv_params *pc = nhwc_reader(g, c, params);
                if (i != 0 || !pc || pc->C != Y->shape.d[1])
                    ok = false;
                else
                    readers++;
            }
        }
        if (!ok || readers != Y->n_consumers)
            continue;
        if (pq)
            pq->out_nhwc = true;
        else
            cpu_quantize_set_nhwc(params[k]);
        for (int c = 0; c < g->n_nodes; c++)
            if (!g->nodes[c].dead && g->nodes[c].n_inputs > 0 && g->nodes[c].inputs[0] == y)
                nhwc_reader(g, c, params)->in_nhwc = true;
    }
    for (int k = 0; k < g->n_nodes; k++) {
        qconv_params *p = nhwc_reader(g, k, params);
        if (!p || (!p->in_nhwc && !p->out_nhwc))
            continue;
        char base[80];
        snprintf(base, sizeof base, "%s", p->path);
        snprintf(p->path_buf, sizeof p->path_buf, "%s, int8 NHWC %s", base,
                 p->in_nhwc && p->out_nhwc ? "in and out" : p->in_nhwc ? "in" : "out");
        p->path = p->path_buf;
    }
}
