/* Convolutions on the CUDA backend: shoal's own implicit-GEMM kernel (igemm.cu) wherever it
 * applies (sm_80+, ungrouped 2-D Conv), cuDNN for the rest (grouped, transposed, older
 * cards), and the own depthwise kernel for group == C. Also folds an Add that consumes a
 * conv's output into that conv's epilogue (a residual). */
#include "backends/cuda/cuda_ops.h"

#include <stdlib.h>
#include <string.h>

static const sh_tensor *tin(const sh_graph *g, const sh_node *n, int i) { return sh_node_input(g, n, i); }

static int64_t numel(const sh_tensor *t) { return sh_shape_numel(&t->shape); }

/* A [n, c, h, w] copy between the two storage layouts (from_cl -> !from_cl). */
sh_k_copy sh_cuda_layout_copy(int64_t nn, int64_t cc, int64_t hh, int64_t ww, bool from_cl)
{
    int N = (int)nn, C = (int)cc, H = (int)hh, W = (int)ww;
    /* iterate in the destination's order so the writes are contiguous */
    sh_k_copy p = {.ndim = 4};
    if (from_cl) {   /* NHWC -> NCHW: dst order n, c, h, w */
        int sh[4] = {N, C, H, W}, ds[4] = {C * H * W, H * W, W, 1}, ss[4] = {H * W * C, 1, W * C, C};
        memcpy(p.shape, sh, sizeof sh);
        memcpy(p.dst_stride, ds, sizeof ds);
        memcpy(p.src_stride, ss, sizeof ss);
    } else {         /* NCHW -> NHWC: dst order n, h, w, c */
        int sh[4] = {N, H, W, C}, ds[4] = {H * W * C, W * C, C, 1}, ss[4] = {C * H * W, W, 1, H * W};
        memcpy(p.shape, sh, sizeof sh);
        memcpy(p.dst_stride, ds, sizeof ds);
        memcpy(p.src_stride, ss, sizeof ss);
    }
    return p;
}

/* cuDNN's heuristics pick the algorithm once per problem geometry (no device buffers exist at
 * compile time, so nothing is timed): the first one that supports the problem wins and its
 * workspace is planned. The memo answers repeats of a geometry without asking again.
 * tuning.cuda_cudnn_fixed_algo skips the query (~6 ms each, 67 on the full set) and takes
 * IMPLICIT_PRECOMP_GEMM wherever the workspace query accepts it: on an H100 the load fell from
 * 1.48-1.59 s to 1.21-1.27 s with the frames within 1% (docs/cuda-notes.md v7). It becomes the
 * default once test_cuda_runtime has passed with it on a GPU. */
static int choose_algo(sh_cuda_ctx *c, sh_cuda_node *cn, const sh_cuda_algo_key *key, size_t *ws,
                       const sh_node *n, sh_err *err)
{
    for (int i = 0; i < c->n_algo_memo; i++)
        if (!memcmp(&c->algo_memo[i].key, key, sizeof *key)) {
            cn->algo = c->algo_memo[i].algo;
            *ws = c->algo_memo[i].ws;
            return 0;
        }
    int got = 0;
    if (!key->transposed && c->tune.cuda_cudnn_fixed_algo &&
        cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, cn->xd, cn->wd, cn->cd, cn->yd,
                                                CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM, ws) ==
            CUDNN_STATUS_SUCCESS) {
        cn->algo = (int)CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
    } else if (!key->transposed) {
        cudnnConvolutionFwdAlgoPerf_t perf[8];
        SH_DNN(c, err, cudnnGetConvolutionForwardAlgorithm_v7(c->cudnn, cn->xd, cn->wd, cn->cd, cn->yd, 8, &got, perf));
        int i = 0;
        while (i < got && perf[i].status != CUDNN_STATUS_SUCCESS)
            i++;
        if (i == got)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (Conv): cuDNN has no algorithm", n->name);
        cn->algo = (int)perf[i].algo;
        SH_DNN(c, err, cudnnGetConvolutionForwardWorkspaceSize(c->cudnn, cn->xd, cn->wd, cn->cd, cn->yd,
                                                               perf[i].algo, ws));
    } else {
        cudnnConvolutionBwdDataAlgoPerf_t perf[8];
        SH_DNN(c, err, cudnnGetConvolutionBackwardDataAlgorithm_v7(c->cudnn, cn->wd, cn->xd, cn->cd, cn->yd, 8, &got, perf));
        int i = 0;
        while (i < got && perf[i].status != CUDNN_STATUS_SUCCESS)
            i++;
        if (i == got)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s (ConvTranspose): cuDNN has no algorithm", n->name);
        cn->algo = (int)perf[i].algo;
        SH_DNN(c, err, cudnnGetConvolutionBackwardDataWorkspaceSize(c->cudnn, cn->wd, cn->xd, cn->cd, cn->yd,
                                                                    perf[i].algo, ws));
    }
    if (c->n_algo_memo < SH_CUDA_ALGO_MEMO)
        c->algo_memo[c->n_algo_memo++] = (sh_cuda_algo_memo){*key, cn->algo, *ws};
    return 0;
}

static int conv_setup_layout(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                             const sh_cuda_prog *cp, bool cl, sh_err *err);

/* Appends to a conv's scratch (ws bytes so far) the converted input and the output before
 * conversion, where the layouts differ; returns the scratch size. */
static size_t scratch_conversions(sh_cuda_node *cn, const sh_tensor *x, const sh_tensor *y, size_t ws)
{
    if (cn->x_cvt) {
        cn->xcv_off = sh_align_up(ws, SH_CUDA_ALIGN);
        ws = cn->xcv_off + (size_t)numel(x) * 2;
    }
    if (cn->y_cvt) {
        cn->ycv_off = sh_align_up(ws, SH_CUDA_ALIGN);
        ws = cn->ycv_off + (size_t)numel(y) * 2;
    }
    return ws;
}

/* One channel, or one pixel: NCHW and NHWC are the same bytes. */
static bool same_in_both_layouts(const sh_shape *s)
{
    return s->d[1] == 1 || s->d[2] * s->d[3] == 1;
}

/* --- the own implicit-GEMM conv ------------------------------------------------------ */
/* Above this many FLOPs cuDNN's Hopper kernels beat the own mma.sync kernel even with its
 * fused epilogue (H100 sweep: 1.9 GFLOP 16.9 vs 27 us; 0.4-0.6 GFLOP about even; below,
 * the own kernel wins by up to 2x). */
#define SH_IGEMM_MAX_FLOP 1.0e9

/* tuning.cuda_igemm = -1 sends every conv to cuDNN, 1 every one it can take to the own kernel
 * (A/B runs in one call); 0, the FLOP threshold above decides. */
static bool igemm_fits(const sh_cuda_ctx *c, const sh_graph *g, const sh_node *n)
{
    const shoal_tuning *t = &c->tune;
    if (n->op != SH_OP_CONV || c->cc_major < 8 || c->max_smem < sh_k_igemm_smem(32, 32) || t->cuda_igemm < 0)
        return false;
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    if (!x || !w || !y || x->shape.ndim != 4 || w->shape.ndim != 4 || y->shape.ndim != 4 || !w->is_const)
        return false;
    /* channel counts off a multiple of 8 (RGB input layers) would take the kernel's plain
     * element loads, 2-3x slower than cuDNN there */
    if (sh_node_int(n, "group", 1) != 1 || w->shape.d[1] != x->shape.d[1] || x->shape.d[1] % 8)
        return false;
    /* 32-bit index arithmetic in the kernel */
    if (w->shape.d[1] * w->shape.d[2] * w->shape.d[3] >= (1 << 24) || numel(x) >= INT32_MAX ||
        numel(y) >= INT32_MAX)
        return false;
    double flop = 2.0 * (double)numel(y) * (double)(w->shape.d[1] * w->shape.d[2] * w->shape.d[3]);
    if (t->cuda_igemm > 0)
        return true;
    /* tuning.cuda_igemm_max_pixels: convs with more output pixels go to cuDNN (A/B) */
    if (t->cuda_igemm_max_pixels > 0 && numel(y) / y->shape.d[1] > t->cuda_igemm_max_pixels)
        return false;
    /* tuning.cuda_igemm_max_gflop: another threshold (A/B) */
    return flop <= (t->cuda_igemm_max_gflop > 0 ? t->cuda_igemm_max_gflop * 1e9 : SH_IGEMM_MAX_FLOP);
}

/* The launch plan of an own-kernel GEMM whose geometry q holds: tile, split K, PDL, and the
 * op's scratch; the weight is packed as `pack`. */
static int igemm_plan(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn, sh_cuda_prog *cp,
                      sh_k_igemm_p q, int pack, sh_err *err)
{
    const sh_tensor *x = tin(g, n, 0), *y = sh_node_output(g, n, 0);
    int xi = n->inputs[0], yi = n->outputs[0];
    cn->kind = NK_IGEMM;
    cn->conv_nhwc = true;
    cn->act = q.act;
    cn->x_cvt = !(cp->nhwc[xi] && !cp->f32[xi]) && !same_in_both_layouts(&x->shape);
    cn->y_cvt = !(cp->nhwc[yi] && !cp->f32[yi]) && !same_in_both_layouts(&y->shape);
    if (cn->x_cvt)
        cn->xcv_copy = sh_cuda_layout_copy(x->shape.d[0], x->shape.d[1], x->shape.d[2], x->shape.d[3], false);
    if (cn->y_cvt)
        cn->ycv_copy = sh_cuda_layout_copy(y->shape.d[0], y->shape.d[1], y->shape.d[2], y->shape.d[3], true);
    /* tuning.cuda_no_wgmma: the mma.sync kernel on Hopper too (A/B) */
    q.wg = c->wgmma && !c->tune.cuda_no_wgmma;
    size_t part = sh_k_igemm_plan(&q, c->sms, c->max_smem);
    /* tuning.cuda_no_pdl: plain launches (A/B) */
    q.pdl = c->cc_major >= 9 && !c->tune.cuda_no_pdl;
    /* one stream's block of the split-K counters (cuda_impl.h) */
    if (sh_k_igemm_counters(&q) > SH_CUDA_IG_COUNTERS / SH_CUDA_STREAMS)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "node %s (%s): %d split-K tiles exceed a stream's %d counters",
                       n->name, sh_op_name(n->op), sh_k_igemm_counters(&q), SH_CUDA_IG_COUNTERS / SH_CUDA_STREAMS);
    cn->ig = q;
    /* the op's scratch: [split-K partials][converted x][output before conversion] */
    cn->op_ws_bytes = scratch_conversions(cn, x, y, part);
    cp->wpack[n->inputs[1]] = (unsigned char)pack;
    return 0;
}

static int igemm_setup(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                       sh_cuda_prog *cp, sh_err *err)
{
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    int64_t k[2], s[2], dil[2], pb[2] = {0, 0}, pe[2] = {0, 0};
    sh_cuda_kernel_geom(n, w, 2, k, s, dil);
    sh_cuda_spatial_pads(n, &x->shape, &y->shape, k, s, dil, pb, pe, false);
    sh_k_igemm_p q = {
        .n = (int)x->shape.d[0], .h = (int)x->shape.d[2], .w = (int)x->shape.d[3], .c = (int)x->shape.d[1],
        .oh = (int)y->shape.d[2], .ow = (int)y->shape.d[3], .k = (int)y->shape.d[1],
        .kh = (int)k[0], .kw = (int)k[1], .sh = (int)s[0], .sw = (int)s[1], .ph = (int)pb[0],
        .pw = (int)pb[1], .dh = (int)dil[0], .dw = (int)dil[1],
        .x_ld = (int)x->shape.d[1], .y_ld = (int)y->shape.d[1], .r_ld = (int)y->shape.d[1],
        .act = sh_cuda_node_act(n),
    };
    return igemm_plan(c, g, n, cn, cp, q, SH_WPACK_KRSC, err);
}

/* --- transposed conv with kernel == stride as one GEMM ------------------------------- */
/* Each output pixel then takes exactly one tap, so the op is [pixels, C] x [C, R*S*K] with
 * every column landing on its own output pixel: the own kernel's 1x1 GEMM with an upsampling
 * store (igemm.cuh, up_h/up_w), channels-last on both sides. YOLO's mask prototypes have one
 * (256 channels, 80x80 -> 160x160), which cuDNN ran in NCHW with transposes around it.
 * tuning.cuda_no_convt_gemm keeps cuDNN (A/B). */
bool sh_cuda_convt_gemm_fits(const sh_cuda_ctx *c, const sh_graph *g, const sh_node *n)
{
    if (n->op != SH_OP_CONV_TRANSPOSE || c->cc_major < 8 || c->max_smem < sh_k_igemm_smem(32, 32) ||
        c->tune.cuda_no_convt_gemm)
        return false;
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    if (!x || !w || !y || x->shape.ndim != 4 || w->shape.ndim != 4 || y->shape.ndim != 4 || !w->is_const ||
        sh_node_int(n, "group", 1) != 1)
        return false;
    int64_t k[2], s[2], dil[2];
    sh_cuda_kernel_geom(n, w, 2, k, s, dil);
    int cnt = 0;
    const int64_t *pads = sh_node_ints(n, "pads", &cnt);
    for (int i = 0; pads && i < cnt; i++)
        if (pads[i])
            return false;
    const int64_t *opad = sh_node_ints(n, "output_padding", &cnt);
    for (int i = 0; opad && i < cnt; i++)
        if (opad[i])
            return false;
    int64_t C = x->shape.d[1], K = w->shape.d[1];
    /* channel counts a multiple of 8: vector loads, and a column pair never straddles pixels */
    return k[0] == s[0] && k[1] == s[1] && dil[0] == 1 && dil[1] == 1 && w->shape.d[0] == C && C % 8 == 0 &&
           K % 8 == 0 && y->shape.d[1] == K && y->shape.d[2] == x->shape.d[2] * k[0] &&
           y->shape.d[3] == x->shape.d[3] * k[1] && K * k[0] * k[1] < (1 << 24) && numel(x) < INT32_MAX &&
           numel(y) < INT32_MAX;
}

static int convt_gemm_setup(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                            sh_cuda_prog *cp, sh_err *err)
{
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    int up_h = (int)w->shape.d[2], up_w = (int)w->shape.d[3];
    sh_k_igemm_p q = {
        .n = (int)x->shape.d[0], .h = (int)x->shape.d[2], .w = (int)x->shape.d[3], .c = (int)x->shape.d[1],
        .oh = (int)x->shape.d[2], .ow = (int)x->shape.d[3], .k = (int)y->shape.d[1] * up_h * up_w,
        .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1,
        .x_ld = (int)x->shape.d[1], .y_ld = (int)y->shape.d[1], .r_ld = (int)y->shape.d[1],
        .act = sh_cuda_node_act(n), .up_h = up_h, .up_w = up_w,
    };
    return igemm_plan(c, g, n, cn, cp, q, SH_WPACK_RS_FIRST, err);
}

/* A plain fp16 channels-last activation (not a graph input/output, not a constant). */
static bool plain_cl(const sh_program *p, const sh_cuda_prog *cp, const sh_graph *g, int t)
{
    const sh_tensor *ts = &g->tensors[t];
    return !ts->is_const && !cp->f32[t] && cp->nhwc[t] && p->tensor_bytes[t] > 0;
}

/* Conv k's output feeds exactly one Add whose other operand has the same shape: the conv adds
 * that operand after its activation and writes the sum; the Add's output becomes a view of
 * the conv's. Saves the Add's launch and one read+write of the tensor (YOLO bottlenecks). */
void sh_cuda_fuse_residual(const sh_cuda_ctx *c, const sh_graph *g, sh_program *p, sh_cuda_prog *cp, int k)
{
    const sh_node *n = &g->nodes[k];
    sh_cuda_node *cn = &cp->nodes[k];
    if (cn->kind != NK_IGEMM || cn->y_cvt || cn->ig.up_h || c->tune.cuda_no_fuse_add)
        return;
    int yi = n->outputs[0];
    const sh_tensor *y = &g->tensors[yi];
    if (y->n_consumers != 1 || y->is_output || !plain_cl(p, cp, g, yi))
        return;
    for (int a = k + 1; a < g->n_nodes; a++) {
        const sh_node *an = &g->nodes[a];
        if (an->dead || an->n_inputs != 2 || (an->inputs[0] != yi && an->inputs[1] != yi))
            continue;
        int ri = an->inputs[0] == yi ? an->inputs[1] : an->inputs[0];
        int oi = an->outputs[0];
        /* the other operand must exist when the conv runs: fused into the later of two convs */
        if (an->op != SH_OP_ADD || ri == yi || g->tensors[ri].producer >= k ||
            sh_cuda_node_act(an).act != 0 || !plain_cl(p, cp, g, ri) ||
            !plain_cl(p, cp, g, oi) || !sh_shape_equal(&g->tensors[ri].shape, &y->shape) ||
            !sh_shape_equal(&g->tensors[oi].shape, &y->shape) || p->alias_of[oi] >= 0)
            return;
        cn->has_res = true;
        cn->res_t = ri;
        cn->ig.r_ld = cn->ig.k;
        cp->fused_add[a] = (unsigned char)(1 + (an->inputs[0] == yi ? 0 : 1));
        return;
    }
}

/* --- the first layer: RGB planes straight from the graph input ----------------------- */
/* A conv reading the fp32 NCHW graph input (few channels) and writing plain channels-last
 * fp16: conv_planar.cu does it in one memory-bound pass, where the cuDNN path staged the input
 * to fp16, transposed it, convolved and ran the epilogue (4 launches, 30-50 us at 640x640).
 * tuning.cuda_no_planar for A/B. */
static bool planar_setup(const sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                         sh_cuda_prog *cp)
{
    if (n->op != SH_OP_CONV || sh_node_int(n, "group", 1) != 1 || c->tune.cuda_no_planar)
        return false;
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    int xi = n->inputs[0], yi = n->outputs[0];
    if (!x || !w || !y || x->shape.ndim != 4 || w->shape.ndim != 4 || y->shape.ndim != 4 || !w->is_const ||
        !cp->f32[xi] || cp->nhwc[xi] || cp->f32[yi] || !cp->nhwc[yi] || numel(x) >= INT32_MAX || numel(y) >= INT32_MAX)
        return false;
    int64_t k[2], s[2], dil[2], pb[2] = {0, 0}, pe[2] = {0, 0};
    sh_cuda_kernel_geom(n, w, 2, k, s, dil);
    sh_cuda_spatial_pads(n, &x->shape, &y->shape, k, s, dil, pb, pe, false);
    sh_k_planar_p q = {
        .n = (int)x->shape.d[0], .c = (int)x->shape.d[1], .h = (int)x->shape.d[2], .w = (int)x->shape.d[3],
        .oh = (int)y->shape.d[2], .ow = (int)y->shape.d[3], .k = (int)y->shape.d[1],
        .kh = (int)k[0], .kw = (int)k[1], .sh = (int)s[0], .sw = (int)s[1], .ph = (int)pb[0], .pw = (int)pb[1],
        .dh = (int)dil[0], .dw = (int)dil[1], .y_ld = (int)y->shape.d[1], .act = sh_cuda_node_act(n),
    };
    if (!sh_k_planar_fits(&q))
        return false;
    cn->kind = NK_PLANAR;
    cn->act = q.act;
    cn->planar = q;
    cp->wpack[n->inputs[1]] = SH_WPACK_KRSC;
    return true;
}

int sh_cuda_build_conv(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                       sh_cuda_prog *cp, sh_err *err)
{
    if (planar_setup(c, g, n, cn, cp))
        return 0;
    if (sh_cuda_convt_gemm_fits(c, g, n))
        return convt_gemm_setup(c, g, n, cn, cp, err);
    if (igemm_fits(c, g, n))
        return igemm_setup(c, g, n, cn, cp, err);
    /* channels-last first (tensor-core implicit GEMM); NCHW where cuDNN has nothing for it */
    bool want_cl = n->op == SH_OP_CONV;
    int rc = conv_setup_layout(c, g, n, cn, cp, want_cl, err);
    if (rc && want_cl && cn->kind == NK_CONV) {
        if (cn->xd) cudnnDestroyTensorDescriptor(cn->xd);
        if (cn->yd) cudnnDestroyTensorDescriptor(cn->yd);
        if (cn->wd) cudnnDestroyFilterDescriptor(cn->wd);
        if (cn->cd) cudnnDestroyConvolutionDescriptor(cn->cd);
        cn->xd = cn->yd = NULL;
        cn->wd = NULL;
        cn->cd = NULL;
        sh_err_clear(err);
        rc = conv_setup_layout(c, g, n, cn, cp, false, err);
    }
    if (!rc && cn->kind == NK_CONV && cn->conv_nhwc)
        cp->wpack[n->inputs[1]] = SH_WPACK_KRSC;
    return rc;
}

static int conv_setup_layout(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_cuda_node *cn,
                             const sh_cuda_prog *cp, bool cl, sh_err *err)
{
    const sh_tensor *x = tin(g, n, 0), *w = tin(g, n, 1), *y = sh_node_output(g, n, 0);
    bool tr = n->op == SH_OP_CONV_TRANSPOSE;
    int group = (int)sh_node_int(n, "group", 1);
    int64_t k[2], s[2], dil[2], pb[2] = {0, 0}, pe[2] = {0, 0};
    sh_cuda_kernel_geom(n, w, 2, k, s, dil);
    if (!tr) {
        sh_cuda_spatial_pads(n, &x->shape, &y->shape, k, s, dil, pb, pe, false);
    } else {
        int cnt = 0;
        const int64_t *pads = sh_node_ints(n, "pads", &cnt);
        if (pads && cnt == 4) {
            pb[0] = pads[0];
            pb[1] = pads[1];
        }
    }
    cn->act = sh_cuda_node_act(n);
    int64_t C = x->shape.d[1];
    if (!tr && group == C && y->shape.d[1] == C && C > 1 && w->shape.d[1] == 1) {
        /* own kernel, in whichever layout the tensors have (choose_layouts keeps them equal) */
        sh_k_pool p = {(int)x->shape.d[0], (int)C, (int)x->shape.d[2], (int)x->shape.d[3],
                       (int)y->shape.d[2], (int)y->shape.d[3], (int)k[0], (int)k[1], (int)s[0],
                       (int)s[1], (int)pb[0], (int)pb[1], (int)dil[0], (int)dil[1], 0, 0,
                       cp->nhwc[n->outputs[0]]};
        cn->pool = p;
        cn->kind = NK_DW;
        /* channels-last, 8-channel groups: weights taps first for the kernel's vector loads */
        cn->dw_taps = p.nhwc && C % 8 == 0;
        if (cn->dw_taps)
            cp->wpack[n->inputs[1]] = SH_WPACK_RS_FIRST;
        return 0;
    }
    int rc = sh_cuda_ensure_cudnn(c, err);
    if (rc)
        return rc;
    cn->kind = tr ? NK_CONVT : NK_CONV;
    cn->conv_nhwc = cl;
    int xi = n->inputs[0], yi = n->outputs[0];
    /* graph inputs/outputs (fp32, staged as fp16 NCHW) and NCHW tensors are converted */
    cn->x_cvt = cl != (cp->nhwc[xi] && !cp->f32[xi]) && !same_in_both_layouts(&x->shape);
    cn->y_cvt = cl != (cp->nhwc[yi] && !cp->f32[yi]) && !same_in_both_layouts(&y->shape);
    if (cl) {
        cn->conv_outer = (int)(y->shape.d[0] * y->shape.d[2] * y->shape.d[3]);
        cn->conv_c = (int)y->shape.d[1];
        cn->conv_inner = 1;
    } else {
        cn->conv_outer = (int)y->shape.d[0];
        cn->conv_c = (int)y->shape.d[1];
        cn->conv_inner = (int)(y->shape.d[2] * y->shape.d[3]);
    }
    if (cn->x_cvt)
        cn->xcv_copy = sh_cuda_layout_copy(x->shape.d[0], x->shape.d[1], x->shape.d[2], x->shape.d[3], !cl);
    if (cn->y_cvt)
        cn->ycv_copy = sh_cuda_layout_copy(y->shape.d[0], y->shape.d[1], y->shape.d[2], y->shape.d[3], cl);
    int64_t xh = x->shape.d[2], xw = x->shape.d[3];
    if (!tr && (pb[0] != pe[0] || pb[1] != pe[1])) {
        /* cuDNN takes symmetric pads only: pad into the workspace, then convolve unpadded */
        int64_t ph = xh + pb[0] + pe[0], pw = xw + pb[1] + pe[1];
        int64_t nc = x->shape.d[0] * x->shape.d[1];
        sh_k_copy pc;
        if (cl) {
            int64_t ch = x->shape.d[1];
            sh_k_copy q = {.ndim = 3, .shape = {(int)x->shape.d[0], (int)xh, (int)(xw * ch)},
                           .dst_stride = {(int)(ph * pw * ch), (int)(pw * ch), 1},
                           .src_stride = {(int)(xh * xw * ch), (int)(xw * ch), 1},
                           .dst_off = (int)((pb[0] * pw + pb[1]) * ch)};
            pc = q;
        } else {
            sh_k_copy q = {.ndim = 3, .shape = {(int)nc, (int)xh, (int)xw},
                           .dst_stride = {(int)(ph * pw), (int)pw, 1}, .src_stride = {(int)(xh * xw), (int)xw, 1},
                           .dst_off = (int)(pb[0] * pw + pb[1])};
            pc = q;
        }
        cn->prepad = true;
        cn->prepad_copy = pc;
        cn->prepad_n = (int)(nc * ph * pw);
        xh = ph;
        xw = pw;
        pb[0] = pb[1] = 0;
    }
    cudnnTensorFormat_t fmt = cl ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
    SH_DNN(c, err, cudnnCreateTensorDescriptor(&cn->xd));
    SH_DNN(c, err, cudnnCreateTensorDescriptor(&cn->yd));
    SH_DNN(c, err, cudnnCreateFilterDescriptor(&cn->wd));
    SH_DNN(c, err, cudnnCreateConvolutionDescriptor(&cn->cd));
    SH_DNN(c, err, cudnnSetTensor4dDescriptor(cn->xd, fmt, CUDNN_DATA_HALF, (int)x->shape.d[0],
                                              (int)x->shape.d[1], (int)xh, (int)xw));
    SH_DNN(c, err, cudnnSetTensor4dDescriptor(cn->yd, fmt, CUDNN_DATA_HALF, (int)y->shape.d[0],
                                              (int)y->shape.d[1], (int)y->shape.d[2], (int)y->shape.d[3]));
    SH_DNN(c, err, cudnnSetFilter4dDescriptor(cn->wd, CUDNN_DATA_HALF, fmt, (int)w->shape.d[0],
                                              (int)w->shape.d[1], (int)w->shape.d[2], (int)w->shape.d[3]));
    SH_DNN(c, err, cudnnSetConvolution2dDescriptor(cn->cd, (int)pb[0], (int)pb[1], (int)s[0], (int)s[1],
                                                   (int)dil[0], (int)dil[1], CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    SH_DNN(c, err, cudnnSetConvolutionMathType(cn->cd, CUDNN_TENSOR_OP_MATH));
    if (group > 1)
        SH_DNN(c, err, cudnnSetConvolutionGroupCount(cn->cd, group));
    sh_cuda_algo_key key = {
        .dims = {(int)x->shape.d[0], (int)x->shape.d[1], (int)xh, (int)xw, (int)y->shape.d[0], (int)y->shape.d[1],
                 (int)y->shape.d[2], (int)y->shape.d[3], (int)w->shape.d[0], (int)w->shape.d[1],
                 (int)w->shape.d[2], (int)w->shape.d[3], (int)pb[0], (int)pb[1], (int)(s[0] << 16 | s[1]),
                 (int)(dil[0] << 16 | dil[1])},
        .group = group, .transposed = tr, .channels_last = cl};
    size_t ws = 0;
    rc = choose_algo(c, cn, &key, &ws, n, err);
    if (rc)
        return rc;
    /* the op's scratch: [cuDNN workspace][padded x][converted x][conv output before conversion] */
    cn->dnn_ws_bytes = ws;
    if (cn->prepad) {
        cn->prepad_off = sh_align_up(ws, SH_CUDA_ALIGN);   /* relative to the op's scratch */
        ws = cn->prepad_off + (size_t)cn->prepad_n * 2;
    }
    cn->op_ws_bytes = scratch_conversions(cn, x, y, ws);
    return 0;
}

