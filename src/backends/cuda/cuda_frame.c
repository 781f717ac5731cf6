/* The frame ops (graph.h SH_OP_LIST_FRAME) on the CUDA backend: their storage, parameters and
 * workspace at compile, their launches at run; the kernels are in frame.cu.
 *
 * Storage: a frame op's own tensors (the frame and its size, the transform, candidates,
 * detections, masks, landmarks) keep their graph dtype on the device (u8, i32, fp32), so the
 * results are the CPU kernels' bit for bit and the runtime copies them as they are. The model
 * input FrameToTensor writes is fp32 NCHW, as the graph input it replaces was: the network's
 * first conv reads it in one pass (conv_planar.cu) and other readers stage it to fp16 as they
 * staged the graph input. The tensors a frame op reads from the network (head, prototypes,
 * regressor output) are stored as the network stores them: fp16, or fp32 where they are graph
 * outputs; the kernels read both, so no staging copy is made.
 * Everything the host kernels check per run that depends only on shapes and attributes is
 * checked here, once; what depends on the data (the frame size, counts) is checked on the
 * device (frame.cuh says what a bad value leaves behind). */
#include "backends/cuda/cuda_ops.h"
#include "backends/cuda/frame.cuh"

#include <math.h>
#include <string.h>

#include "vision/frame.h"
#include "vision/hands.h"

struct sh_cuda_frame {
    union {
        sh_k_frame_pre_p pre;
        sh_k_frame_decode_p dec;
        sh_k_frame_nms_p nms;
        sh_k_frame_masks_p masks;
        sh_k_frame_landmarks_p lm;
        sh_k_frame_crop_p crop;
    } k;
};

bool sh_cuda_is_frame_op(sh_op op)
{
    return op == SH_OP_FRAME_TO_TENSOR || op == SH_OP_FRAME_DECODE || op == SH_OP_FRAME_NMS ||
           op == SH_OP_FRAME_MASKS || op == SH_OP_FRAME_LANDMARKS || op == SH_OP_FRAME_CROP;
}

/* Whether slot `slot` (an output when `out`) of a frame op is one of its own tensors rather
 * than one it reads from the network (FrameToTensor's model input counts as its own). */
static bool own_slot(sh_op op, bool out, int slot)
{
    switch (op) {
    case SH_OP_FRAME_TO_TENSOR: return true;
    case SH_OP_FRAME_DECODE: return out;
    case SH_OP_FRAME_NMS: return true;
    case SH_OP_FRAME_MASKS: return out || slot >= 2;
    case SH_OP_FRAME_LANDMARKS: return out || slot == 1;
    case SH_OP_FRAME_CROP: return true;
    default: return false;
    }
}

static size_t dtype_bytes(sh_dtype dt)
{
    switch (dt) {
    case SH_DT_UINT8: return 1;
    case SH_DT_INT32: case SH_DT_FLOAT32: return 4;
    default: return 0;
    }
}

static int64_t numel(const sh_tensor *t) { return sh_shape_numel(&t->shape); }

static bool is_float(const sh_tensor *t) { return t->dtype == SH_DT_FLOAT32 || t->dtype == SH_DT_FLOAT16; }

bool sh_cuda_frame_supports(const sh_graph *g, const sh_node *n)
{
    static const int n_in[] = {2, 1, 5, 7, 2, 3}, n_out[] = {2, 4, 4, 2, 1, 1};
    _Static_assert(SH_OP_FRAME_CROP - SH_OP_FRAME_TO_TENSOR == 5, "the frame ops' slot counts");
    int op = n->op - SH_OP_FRAME_TO_TENSOR;
    if (op < 0 || op > 5 || n->n_inputs < n_in[op] || n->n_outputs < n_out[op])
        return false;
    for (int s = 0; s < n_in[op] + n_out[op]; s++) {
        bool out = s >= n_in[op];
        int slot = out ? s - n_in[op] : s;
        const sh_tensor *t = out ? sh_node_output(g, n, slot) : sh_node_input(g, n, slot);
        if (!t || t->is_const || t->shape.ndim < 0 || numel(t) < 1 || numel(t) >= INT32_MAX)
            return false;
        if (own_slot(n->op, out, slot) ? dtype_bytes(t->dtype) == 0 : !is_float(t))
            return false;
        if ((n->op == SH_OP_FRAME_TO_TENSOR || n->op == SH_OP_FRAME_CROP) && out && slot == 0 &&
            t->dtype != SH_DT_FLOAT32)
            return false;
    }
    return true;
}

void sh_cuda_frame_storage(const sh_graph *g, sh_program *p, sh_cuda_prog *cp)
{
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead || !sh_cuda_is_frame_op(n->op))
            continue;
        for (int s = 0; s < n->n_inputs + n->n_outputs; s++) {
            bool out = s >= n->n_inputs;
            int slot = out ? s - n->n_inputs : s, t = out ? n->outputs[slot] : n->inputs[slot];
            if (t < 0 || !own_slot(n->op, out, slot))
                continue;
            const sh_tensor *ts = &g->tensors[t];
            int64_t ne = numel(ts);
            if (ts->is_const || ts->shape.ndim < 0 || ne < 1 || dtype_bytes(ts->dtype) == 0)
                continue;   /* supports_node refuses the node */
            cp->f32[t] = ts->dtype == SH_DT_FLOAT32;
            p->tensor_bytes[t] = (size_t)ne * dtype_bytes(ts->dtype);
        }
    }
}

bool sh_cuda_frame_input_ok(const sh_graph *g, int t)
{
    bool read = false;
    for (int k = 0; k < g->n_nodes; k++) {
        const sh_node *n = &g->nodes[k];
        if (n->dead)
            continue;
        for (int i = 0; i < n->n_inputs; i++) {
            if (n->inputs[i] != t)
                continue;
            if (!sh_cuda_is_frame_op(n->op) || !own_slot(n->op, false, i))
                return false;
            read = true;
        }
    }
    return read && dtype_bytes(g->tensors[t].dtype) > 0;
}

static int build_to_tensor(const sh_graph *g, const sh_node *n, const sh_cuda_prog *cp, sh_k_frame_pre_p *k,
                           sh_err *err)
{
    sh_preprocess_params q = {
        .width = (int)sh_node_int(n, "width", 0), .height = (int)sh_node_int(n, "height", 0),
        .resize = (sh_resize_mode)sh_node_int(n, "resize", SH_RESIZE_LETTERBOX),
        .place = (sh_letterbox_place)sh_node_int(n, "place", SH_PLACE_CENTER),
        .order = (sh_channel_order)sh_node_int(n, "order", SH_CHANNELS_RGB), .scale = sh_node_float(n, "scale", 1.0f),
    };
    int64_t pad = sh_node_int(n, "pad_value", 114);
    sh_pixel_format format = (sh_pixel_format)sh_node_int(n, "pixel_format", SH_PIXEL_RGB);
    const sh_attr *mean = sh_node_attr(n, "mean"), *std = sh_node_attr(n, "std");
    if (!mean || !std || mean->type != SH_ATTR_FLOATS || std->type != SH_ATTR_FLOATS || mean->n != 3 || std->n != 3)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s: mean and std must be 3 floats each", n->name);
    if (pad < 0 || pad > 255 || (format != SH_PIXEL_RGB && format != SH_PIXEL_BGR))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s: pad value %lld / pixel format %d", n->name,
                       (long long)pad, (int)format);
    memcpy(q.mean, mean->floats, sizeof q.mean);
    memcpy(q.std, std->floats, sizeof q.std);
    sh_transform xf;
    int rc = sh_preprocess_lut(&q, k->lut, err);
    if (rc || (rc = sh_transform_compute(1, 1, &q, &xf, err)))
        return sh_err_prefix(err, rc, "node %s: ", n->name);
    const sh_tensor *out = sh_node_output(g, n, 0), *frame = sh_node_input(g, n, 0);
    if (numel(out) != 3 * (int64_t)q.width * q.height || frame->dtype != SH_DT_UINT8 ||
        sh_node_input(g, n, 1)->dtype != SH_DT_INT32 || numel(sh_node_input(g, n, 1)) != 2 ||
        numel(sh_node_output(g, n, 1)) != SH_FRAME_XF_WORDS || sh_node_output(g, n, 1)->dtype != SH_DT_FLOAT32)
        return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: tensors do not match a %dx%d model input", n->name, q.width,
                       q.height);
    int64_t max_pixels = numel(frame) / 3;
    k->width = q.width;
    k->height = q.height;
    k->stretch = q.resize == SH_RESIZE_STRETCH;
    k->top_left = q.place == SH_PLACE_TOP_LEFT;
    k->out_bgr = q.order == SH_CHANNELS_BGR;
    k->frame_bgr = format == SH_PIXEL_BGR;
    k->pad_value = (int)pad;
    k->max_side = SH_IMAGE_MAX_SIDE;
    k->max_pixels = max_pixels < (int64_t)SH_IMAGE_MAX_PIXELS ? max_pixels : (int64_t)SH_IMAGE_MAX_PIXELS;
    k->out_f32 = cp->f32[n->outputs[0]];
    return 0;
}

/* The YOLOv8 head's channels and anchors ([1, C, N] or [C, N]), or YOLOX's ([1, N, C] / [N, C]). */
static bool head_dims(const sh_tensor *head, bool yolox, int64_t *channels, int64_t *anchors)
{
    const sh_shape *s = &head->shape;
    if (!(s->ndim == 2 || (s->ndim == 3 && s->d[0] == 1)))
        return false;
    *channels = yolox ? s->d[s->ndim - 1] : s->d[s->ndim - 2];
    *anchors = yolox ? s->d[s->ndim - 2] : s->d[s->ndim - 1];
    return true;
}

static int build_decode(const sh_graph *g, const sh_node *n, const sh_cuda_prog *cp, sh_k_frame_decode_p *k,
                        size_t *ws, sh_err *err)
{
    const sh_tensor *head = sh_node_input(g, n, 0), *protos = n->n_inputs > 1 ? sh_node_input(g, n, 1) : NULL;
    int decoder = (int)sh_node_int(n, "decoder", SH_FRAME_DECODER_YOLOV8);
    if (decoder != SH_FRAME_DECODER_YOLOV8 && decoder != SH_FRAME_DECODER_YOLOX)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s: unknown decoder %d", n->name, decoder);
    bool yolox = decoder == SH_FRAME_DECODER_YOLOX;
    int64_t ch = 0, anchors = 0;
    if (!head_dims(head, yolox, &ch, &anchors) || anchors != numel(sh_node_output(g, n, 1)))
        return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: head '%s' does not fit decoder %d", n->name, head->name,
                       decoder);
    *k = (sh_k_frame_decode_p){.yolox = yolox, .n = (int)anchors, .channels = (int)ch,
                               .in_w = (int)sh_node_int(n, "width", 0), .in_h = (int)sh_node_int(n, "height", 0),
                               .thresh = sh_node_float(n, "score_threshold", 0.25f),
                               .head_f32 = cp->f32[n->inputs[0]]};
    if (isnan(k->thresh))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s: score threshold is NaN", n->name);
    if (yolox) {
        /* yolox.c's checks, made at run on the host: strides 8/16/32 tile the input */
        int64_t expect = 0;
        for (int st = 8; st <= 32; st *= 2)
            expect += k->in_w % st || k->in_h % st || k->in_w < 1 || k->in_h < 1
                          ? -INT32_MAX
                          : (int64_t)(k->in_w / st) * (k->in_h / st);
        if (ch <= 5 || ch > 65536 || anchors != expect)
            return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: yolox head of %lld anchors x %lld values for a %dx%d input",
                           n->name, (long long)anchors, (long long)ch, k->in_w, k->in_h);
        k->n_cls = (int)(ch - 5);
    } else {
        int64_t nm = protos && protos->shape.ndim == 4 ? protos->shape.d[1] : 0;
        if (ch - 4 - nm < 1 || ch > 65536)
            return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: head '%s' of %lld channels leaves no class", n->name,
                           head->name, (long long)ch);
        k->n_cls = (int)(ch - 4 - nm);
    }
    *ws = sh_k_frame_decode_ws(k->n);
    return 0;
}

static int build_nms(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, sh_k_frame_nms_p *k, size_t *ws,
                     sh_err *err)
{
    sh_decode_params d = sh_decode_default_params();
    float iou = sh_node_float(n, "iou_threshold", d.iou_threshold);
    int64_t top_k = sh_node_int(n, "top_k", d.top_k), max_det = sh_node_int(n, "max_detections", 0);
    int64_t cap = numel(sh_node_input(g, n, 1)), out_cap = numel(sh_node_output(g, n, 1));
    if (!(iou >= 0 && iou <= 1) || max_det < 1 || max_det != out_cap)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "node %s: iou threshold %g, max_detections %lld for %lld detections",
                       n->name, iou, (long long)max_det, (long long)out_cap);
    int64_t rows = top_k > 0 && top_k < cap ? top_k : cap;
    /* the suppressed set of the greedy pass lives in one block's shared memory */
    if ((rows + 63) / 64 * 8 > 48 * 1024)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "node %s: %lld candidates ranked (top_k), at most %d on CUDA",
                       n->name, (long long)rows, 48 * 1024 * 8);
    *k = (sh_k_frame_nms_p){.cap = (int)cap, .rows = (int)rows, .out_cap = (int)out_cap,
                            .agnostic = sh_node_int(n, "agnostic", 0) != 0, .iou = iou,
                            .max_side = SH_IMAGE_MAX_SIDE};
    /* CUB sizes its scratch for the current device's architecture */
    SH_CU(c, err, cudaSetDevice(c->device));
    SH_CU(c, err, sh_k_frame_nms_ws(k, ws));
    return 0;
}

static int build_masks(const sh_graph *g, const sh_node *n, const sh_cuda_prog *cp, sh_k_frame_masks_p *k,
                       size_t *ws, sh_err *err)
{
    const sh_tensor *head = sh_node_input(g, n, 0), *protos = sh_node_input(g, n, 1);
    const sh_shape *ps = &protos->shape;
    int64_t ch = 0, anchors = 0;
    if (!head_dims(head, false, &ch, &anchors) || ps->ndim != 4 || ps->d[0] != 1 || ps->d[1] > 65536 ||
        ps->d[2] > 4096 || ps->d[3] > 4096 || ch <= 4 + ps->d[1] || ch > 65536)
        return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: head '%s' / prototypes '%s' do not fit yolov8-seg", n->name,
                       head->name, protos->name);
    int64_t cap = numel(sh_node_input(g, n, 3)), pool = numel(sh_node_output(g, n, 1));
    if (cap > 65535 || numel(sh_node_output(g, n, 0)) != cap * SH_FRAME_MASK_BOX_WORDS || pool < 1 || pool > INT32_MAX)
        return sh_errf(err, SHOAL_ERR_SHAPE,
                       "node %s: %lld mask boxes (at most 65535 on CUDA) and a %lld-byte pool '%s' (1..%d)", n->name,
                       (long long)cap, (long long)pool, sh_node_output(g, n, 1)->name, INT32_MAX);
    *k = (sh_k_frame_masks_p){.n = (int)anchors, .channels = (int)ch, .n_cls = (int)(ch - 4 - ps->d[1]),
                              .nm = (int)ps->d[1], .mh = (int)ps->d[2], .mw = (int)ps->d[3], .cap = (int)cap,
                              .pool = (long long)pool, .thresh = sh_node_float(n, "mask_threshold", 0.5f),
                              .max_side = SH_IMAGE_MAX_SIDE, .head_f32 = cp->f32[n->inputs[0]],
                              .protos_f32 = cp->f32[n->inputs[1]]};
    *ws = sh_k_frame_masks_ws(k);
    return 0;
}

static int build_crop(const sh_graph *g, const sh_node *n, sh_k_frame_crop_p *k, sh_err *err)
{
    int64_t w = sh_node_int(n, "width", 0), h = sh_node_int(n, "height", 0);
    const sh_tensor *frame = sh_node_input(g, n, 0);
    if (w < 1 || h < 1 || w > 4096 || h > 4096 || numel(sh_node_output(g, n, 0)) != 3 * w * h ||
        frame->dtype != SH_DT_UINT8 || sh_node_input(g, n, 1)->dtype != SH_DT_INT32 ||
        numel(sh_node_input(g, n, 1)) != 2 || sh_node_input(g, n, 2)->dtype != SH_DT_FLOAT32 ||
        numel(sh_node_input(g, n, 2)) != SH_HAND_CROP_WORDS)
        return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: tensors do not match a %lldx%lld crop", n->name, (long long)w,
                       (long long)h);
    int64_t max_pixels = numel(frame) / 3;
    *k = (sh_k_frame_crop_p){.width = (int)w, .height = (int)h, .zero_border = sh_node_int(n, "zero_border", 0) != 0,
                             .max_side = SH_IMAGE_MAX_SIDE,
                             .max_pixels = max_pixels < (int64_t)SH_IMAGE_MAX_PIXELS ? max_pixels
                                                                                     : (int64_t)SH_IMAGE_MAX_PIXELS};
    return 0;
}

int sh_cuda_build_frame(sh_cuda_ctx *c, const sh_graph *g, const sh_node *n, const sh_cuda_prog *cp,
                        sh_cuda_node *cn, sh_err *err)
{
    if (!sh_cuda_frame_supports(g, n))
        return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: inputs or outputs missing or of the wrong dtype", n->name);
    cn->frame = sh_calloc(c->alloc, 1, sizeof *cn->frame);
    if (!cn->frame)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "cuda compile: node %s", n->name);
    cn->kind = NK_FRAME;
    cn->op_ws_bytes = 0;
    switch (n->op) {
    case SH_OP_FRAME_TO_TENSOR: return build_to_tensor(g, n, cp, &cn->frame->k.pre, err);
    case SH_OP_FRAME_DECODE: return build_decode(g, n, cp, &cn->frame->k.dec, &cn->op_ws_bytes, err);
    case SH_OP_FRAME_NMS: return build_nms(c, g, n, &cn->frame->k.nms, &cn->op_ws_bytes, err);
    case SH_OP_FRAME_MASKS: return build_masks(g, n, cp, &cn->frame->k.masks, &cn->op_ws_bytes, err);
    case SH_OP_FRAME_LANDMARKS:
        if (numel(sh_node_input(g, n, 0)) != SH_FRAME_LANDMARK_WORDS ||
            numel(sh_node_output(g, n, 0)) != SH_FRAME_LANDMARK_WORDS)
            return sh_errf(err, SHOAL_ERR_SHAPE, "node %s: '%s' does not hold %d landmark values", n->name,
                           sh_node_input(g, n, 0)->name, SH_FRAME_LANDMARK_WORDS);
        cn->frame->k.lm = (sh_k_frame_landmarks_p){.logits = sh_node_int(n, "logits", 0) != 0,
                                                   .in_f32 = cp->f32[n->inputs[0]], .max_side = SH_IMAGE_MAX_SIDE};
        return 0;
    case SH_OP_FRAME_CROP: return build_crop(g, n, &cn->frame->k.crop, err);
    default:
        return sh_errf(err, SHOAL_ERR_INTERNAL, "node %s: not a frame op", n->name);
    }
}

int sh_cuda_run_frame(sh_cuda_ctx *c, cudaStream_t s, const sh_node *n, const sh_cuda_node *cn, void *const *tp,
                      char *ws, sh_err *err)
{
    const struct sh_cuda_frame *f = cn->frame;
    void *in[7] = {NULL}, *out[4] = {NULL};
    for (int i = 0; i < n->n_inputs && i < 7; i++)
        in[i] = n->inputs[i] >= 0 ? tp[n->inputs[i]] : NULL;
    for (int j = 0; j < n->n_outputs && j < 4; j++)
        out[j] = tp[n->outputs[j]];
    switch (n->op) {
    case SH_OP_FRAME_TO_TENSOR:
        SH_CU(c, err, sh_k_frame_to_tensor(out[0], out[1], in[0], in[1], &f->k.pre, s));
        return 0;
    case SH_OP_FRAME_DECODE:
        SH_CU(c, err, sh_k_frame_decode(out[0], out[1], out[2], out[3], in[0], ws, &f->k.dec, s));
        return 0;
    case SH_OP_FRAME_NMS:
        SH_CU(c, err, sh_k_frame_nms(out[0], out[1], out[2], out[3], in[0], in[1], in[2], in[3], in[4], ws,
                                     &f->k.nms, s));
        return 0;
    case SH_OP_FRAME_MASKS:
        SH_CU(c, err, sh_k_frame_masks(out[0], out[1], in[0], in[1], in[2], in[4], in[5], in[6], ws, &f->k.masks, s));
        return 0;
    case SH_OP_FRAME_LANDMARKS:
        SH_CU(c, err, sh_k_frame_landmarks(out[0], in[0], in[1], &f->k.lm, s));
        return 0;
    case SH_OP_FRAME_CROP:
        SH_CU(c, err, sh_k_frame_crop(out[0], in[0], in[1], in[2], &f->k.crop, s));
        return 0;
    default:
        return sh_errf(err, SHOAL_ERR_INTERNAL, "node %s: not a frame op", n->name);
    }
}
