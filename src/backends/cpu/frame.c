/* The frame ops (graph.h SH_OP_LIST_FRAME) on the CPU: the vision pipeline's own functions
 * (vision/frame.h) on the tensors of the binding. Their scratch is each node's planned
 * workspace, sized at compile time for the largest frame (the frame input's capacity), the
 * head's anchors and max_detections, so a run allocates nothing. */
#include "backends/cpu/cpu_impl.h"

#include <math.h>
#include <string.h>

#include "vision/frame.h"
#include "vision/hands.h"

typedef struct frame_params {
    sh_preprocess_params pre;
    sh_pixel_format format;
    size_t capacity;
    int frame, size, out, xf;
} frame_params;

typedef struct decode_params {
    sh_frame_decoder decoder;
    int n_classes, in_w, in_h;
    float threshold;
    size_t cap;
    sh_ftensor head;
    int in, out[4];
} decode_params;

typedef struct nms_params {
    sh_decode_params dp;
    size_t cap, out_cap;
    int in[5], out[4];
} nms_params;

typedef struct masks_params {
    sh_ftensor head, protos;
    sh_frame_mask_bounds bounds;
    size_t cap, pool;
    float threshold;
    int in[7], out[2];
} masks_params;

static sh_ftensor ften(const sh_tensor *t)
{
    sh_ftensor f = {NULL, t->shape.ndim, {0}};
    for (int i = 0; i < t->shape.ndim && i < 4; i++)
        f.shape[i] = t->shape.d[i];
    return f;
}

/* Every input and output of a frame op is required. */
static int all_present(const cpu_prep *pp, int n_in, int n_out, sh_err *err)
{
    if (pp->n->n_inputs < n_in || pp->n->n_outputs < n_out)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%d inputs and %d outputs, need %d and %d", pp->n->n_inputs,
                       pp->n->n_outputs, n_in, n_out);
    for (int i = 0; i < n_in; i++)
        if (!cpu_in(pp, i))
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "input %d is missing", i);
    for (int i = 0; i < n_out; i++)
        if (!cpu_out(pp, i))
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "output %d is missing", i);
    return 0;
}

static int set_workspace(cpu_prep *pp, size_t bytes, sh_err *err)
{
    if (bytes == SIZE_MAX)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "%s", "its scratch size overflows");
    pp->p->workspace_bytes[pp->k] = bytes;
    return 0;
}

static int run_frame_to_tensor(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const frame_params *p = vp;
    int rc = sh_frame_to_tensor(ex->ctx->alloc, ex->ws, ex->t[p->frame], p->capacity, ex->t[p->size], p->format,
                                &p->pre, ex->t[p->out], ex->t[p->xf], err);
    return rc ? sh_err_prefix(err, rc, "node %s: ", n->name) : 0;
}

int cpu_prep_frame_to_tensor(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    int rc = all_present(pp, 2, 2, err);
    if (rc)
        return rc;
    frame_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    sh_preprocess_params *q = &p->pre;
    q->width = (int)sh_node_int(n, "width", 0);
    q->height = (int)sh_node_int(n, "height", 0);
    q->resize = (sh_resize_mode)sh_node_int(n, "resize", SH_RESIZE_LETTERBOX);
    q->place = (sh_letterbox_place)sh_node_int(n, "place", SH_PLACE_CENTER);
    int64_t pad = sh_node_int(n, "pad_value", 114);
    q->order = (sh_channel_order)sh_node_int(n, "order", SH_CHANNELS_RGB);
    q->scale = sh_node_float(n, "scale", 1.0f);
    const sh_attr *mean = sh_node_attr(n, "mean"), *std = sh_node_attr(n, "std");
    if (!mean || !std || mean->type != SH_ATTR_FLOATS || std->type != SH_ATTR_FLOATS || mean->n != 3 || std->n != 3)
        return CPU_ERR(pp, err, SHOAL_ERR_INVALID_ARG, "%s", "mean and std must be 3 floats each");
    memcpy(q->mean, mean->floats, sizeof q->mean);
    memcpy(q->std, std->floats, sizeof q->std);
    p->format = (sh_pixel_format)sh_node_int(n, "pixel_format", SH_PIXEL_RGB);
    if (pad < 0 || pad > 255 || (p->format != SH_PIXEL_RGB && p->format != SH_PIXEL_BGR))
        return CPU_ERR(pp, err, SHOAL_ERR_INVALID_ARG, "pad value %lld / pixel format %d", (long long)pad,
                       (int)p->format);
    q->pad_value = (uint8_t)pad;
    float lut[3][256];
    sh_transform xf;
    if ((rc = sh_preprocess_lut(q, lut, err)) || (rc = sh_transform_compute(1, 1, q, &xf, err)))
        return sh_err_prefix(err, rc, "node %s: ", n->name);
    const sh_tensor *out = cpu_out(pp, 0);
    if (out->dtype != SH_DT_FLOAT32 || cpu_numel(out) != 3 * (int64_t)q->width * q->height ||
        cpu_in(pp, 0)->dtype != SH_DT_UINT8 || cpu_in(pp, 1)->dtype != SH_DT_INT32 || cpu_numel(cpu_in(pp, 1)) != 2 ||
        cpu_numel(cpu_out(pp, 1)) != SH_FRAME_XF_WORDS)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "tensors do not match a %dx%d model input", q->width, q->height);
    p->capacity = (size_t)cpu_numel(cpu_in(pp, 0));
    if ((rc = set_workspace(pp, sh_frame_to_tensor_ws(q, p->capacity, p->format), err)))
        return rc;
    p->frame = n->inputs[0];
    p->size = n->inputs[1];
    p->out = n->outputs[0];
    p->xf = n->outputs[1];
    pp->fn = run_frame_to_tensor;
    return 0;
}

static int run_frame_decode(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const decode_params *p = vp;
    sh_ftensor head = p->head;
    head.data = ex->t[p->in];
    int rc = sh_frame_decode(ex->ctx->alloc, ex->ws, p->decoder, &head, p->n_classes, p->in_w, p->in_h, p->threshold,
                             p->cap, ex->t[p->out[0]], ex->t[p->out[1]], ex->t[p->out[2]], ex->t[p->out[3]], err);
    return rc ? sh_err_prefix(err, rc, "node %s: ", n->name) : 0;
}

int cpu_prep_frame_decode(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    int rc = all_present(pp, 1, 4, err);
    if (rc)
        return rc;
    decode_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_tensor *head = cpu_in(pp, 0), *protos = cpu_in(pp, 1);
    p->decoder = (sh_frame_decoder)sh_node_int(n, "decoder", SH_FRAME_DECODER_YOLOV8);
    p->head = ften(head);
    int64_t cap = sh_frame_anchors(p->decoder, &p->head);
    if (head->dtype != SH_DT_FLOAT32 || head->shape.ndim > 4 || cap < 1 || cap != cpu_numel(cpu_out(pp, 1)))
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "head '%s' does not fit decoder %d", head->name, (int)p->decoder);
    if (p->decoder == SH_FRAME_DECODER_YOLOV8) {
        /* channels: box, classes, then (segmentation) one coefficient per prototype */
        int64_t channels = head->shape.d[head->shape.ndim - 2];
        int64_t nm = protos && protos->shape.ndim == 4 ? protos->shape.d[1] : 0;
        if (channels - 4 - nm < 1)
            return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "head '%s' of %lld channels leaves no class", head->name,
                           (long long)channels);
        p->n_classes = (int)(channels - 4 - nm);
    } else if (p->decoder != SH_FRAME_DECODER_YOLOX) {
        return CPU_ERR(pp, err, SHOAL_ERR_INVALID_ARG, "unknown decoder %d", (int)p->decoder);
    }
    p->in_w = (int)sh_node_int(n, "width", 0);
    p->in_h = (int)sh_node_int(n, "height", 0);
    p->threshold = sh_node_float(n, "score_threshold", 0.25f);
    if (isnan(p->threshold))
        return CPU_ERR(pp, err, SHOAL_ERR_INVALID_ARG, "%s", "score threshold is NaN");
    p->cap = (size_t)cap;
    if ((rc = set_workspace(pp, sh_frame_decode_ws(p->decoder, cap), err)))
        return rc;
    p->in = n->inputs[0];
    memcpy(p->out, n->outputs, sizeof p->out);
    pp->fn = run_frame_decode;
    return 0;
}

static int run_frame_nms(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const nms_params *p = vp;
    void *const *t = ex->t;
    int rc = sh_frame_nms(ex->ctx->alloc, ex->ws, &p->dp, t[p->in[0]], t[p->in[1]], t[p->in[2]], p->cap, t[p->in[3]],
                          t[p->in[4]], p->out_cap, t[p->out[0]], t[p->out[1]], t[p->out[2]], t[p->out[3]], err);
    return rc ? sh_err_prefix(err, rc, "node %s: ", n->name) : 0;
}

int cpu_prep_frame_nms(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    int rc = all_present(pp, 5, 4, err);
    if (rc)
        return rc;
    nms_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    p->dp = sh_decode_default_params();
    p->dp.iou_threshold = sh_node_float(n, "iou_threshold", p->dp.iou_threshold);
    p->dp.agnostic = (int)sh_node_int(n, "agnostic", 0);
    p->dp.max_detections = (int)sh_node_int(n, "max_detections", 0);
    p->dp.top_k = (int)sh_node_int(n, "top_k", p->dp.top_k);
    p->cap = (size_t)cpu_numel(cpu_in(pp, 1));
    p->out_cap = (size_t)cpu_numel(cpu_out(pp, 1));
    if (!(p->dp.iou_threshold >= 0 && p->dp.iou_threshold <= 1) || p->dp.max_detections < 1 ||
        (size_t)p->dp.max_detections != p->out_cap)
        return CPU_ERR(pp, err, SHOAL_ERR_INVALID_ARG, "iou threshold %g, max_detections %d for %zu detections",
                       p->dp.iou_threshold, p->dp.max_detections, p->out_cap);
    if ((rc = set_workspace(pp, sh_frame_nms_ws(p->cap, p->out_cap), err)))
        return rc;
    memcpy(p->in, n->inputs, sizeof p->in);
    memcpy(p->out, n->outputs, sizeof p->out);
    pp->fn = run_frame_nms;
    return 0;
}

static int run_frame_masks(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const masks_params *p = vp;
    void *const *t = ex->t;
    sh_ftensor head = p->head, protos = p->protos;
    head.data = t[p->in[0]];
    protos.data = t[p->in[1]];
    int rc = sh_frame_masks(ex->ctx->alloc, ex->ws, &p->bounds, &head, &protos, t[p->in[2]], t[p->in[4]], p->cap,
                            t[p->in[5]], t[p->in[6]], p->threshold, t[p->out[0]], t[p->out[1]], p->pool, err);
    return rc ? sh_err_prefix(err, rc, "node %s: ", n->name) : 0;
}

int cpu_prep_frame_masks(cpu_prep *pp, sh_err *err)
{
    const sh_node *n = pp->n;
    int rc = all_present(pp, 7, 2, err);
    if (rc)
        return rc;
    masks_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_tensor *head = cpu_in(pp, 0), *protos = cpu_in(pp, 1);
    if (head->shape.ndim > 4 || protos->shape.ndim != 4)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "head '%s' / prototypes '%s' of the wrong rank", head->name,
                       protos->name);
    p->head = ften(head);
    p->protos = ften(protos);
    p->cap = (size_t)cpu_numel(cpu_in(pp, 3));
    p->threshold = sh_node_float(n, "mask_threshold", 0.5f);
    int64_t max_pixels = sh_node_int(n, "max_pixels", 0), width = sh_node_int(n, "width", 0);
    p->pool = (size_t)cpu_numel(cpu_out(pp, 1));
    if (max_pixels < 1 || max_pixels > (int64_t)SH_IMAGE_MAX_PIXELS || width < 1 || width > SH_IMAGE_MAX_SIDE ||
        cpu_numel(cpu_out(pp, 0)) != (int64_t)p->cap * SH_FRAME_MASK_BOX_WORDS || p->pool > INT32_MAX)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "max_pixels %lld, width %lld, %zu mask boxes and a %zu-byte pool",
                       (long long)max_pixels, (long long)width, p->cap, p->pool);
    /* masks are built by up to one thread per pool thread, each with a slot of its own */
    p->bounds = (sh_frame_mask_bounds){.mh = (int)protos->shape.d[2], .mw = (int)protos->shape.d[3],
                                       .up_w = (int)width,
                                       .max_w = (int)(max_pixels < SH_IMAGE_MAX_SIDE ? max_pixels : SH_IMAGE_MAX_SIDE),
                                       .slots = pp->ctx->n_threads > 0 ? pp->ctx->n_threads : 1};
    if ((rc = set_workspace(pp, sh_frame_masks_ws(&p->bounds, p->cap), err)))
        return rc;
    memcpy(p->in, n->inputs, sizeof p->in);
    memcpy(p->out, n->outputs, sizeof p->out);
    pp->fn = run_frame_masks;
    return 0;
}

typedef struct landmarks_params {
    int logits, in[2], out;
} landmarks_params;

static int run_frame_landmarks(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const landmarks_params *p = vp;
    int rc = sh_frame_landmarks(ex->t[p->in[0]], ex->t[p->in[1]], p->logits, ex->t[p->out], err);
    return rc ? sh_err_prefix(err, rc, "node %s: ", n->name) : 0;
}

int cpu_prep_frame_landmarks(cpu_prep *pp, sh_err *err)
{
    int rc = all_present(pp, 2, 1, err);
    if (rc)
        return rc;
    landmarks_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    if (cpu_in(pp, 0)->dtype != SH_DT_FLOAT32 || cpu_numel(cpu_in(pp, 0)) != SH_FRAME_LANDMARK_WORDS)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "'%s' does not hold %d landmark values", cpu_in(pp, 0)->name,
                       SH_FRAME_LANDMARK_WORDS);
    p->logits = (int)sh_node_int(pp->n, "logits", 0);
    p->in[0] = pp->n->inputs[0];
    p->in[1] = pp->n->inputs[1];
    p->out = pp->n->outputs[0];
    pp->fn = run_frame_landmarks;
    return 0;
}

typedef struct crop_params {
    int width, height;
    bool zero_border;
    size_t capacity;   /* frame bytes */
    int in[3], out;
} crop_params;

static int run_frame_crop(const cpu_exec *ex, const sh_node *n, const void *vp, sh_err *err)
{
    const crop_params *p = vp;
    const int32_t *size = ex->t[p->in[1]];
    int rc = sh_frame_size_check(size, p->capacity, err);
    if (rc)
        return sh_err_prefix(err, rc, "node %s: ", n->name);
    sh_image img = {.width = size[0], .height = size[1], .channels = 3, .data = ex->t[p->in[0]]};
    sh_hand_crop_at(&img, ex->t[p->in[2]], p->width, p->height, p->zero_border, ex->t[p->out]);
    return 0;
}

int cpu_prep_frame_crop(cpu_prep *pp, sh_err *err)
{
    int rc = all_present(pp, 3, 1, err);
    if (rc)
        return rc;
    crop_params *p = cpu_params(pp, sizeof *p, err);
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    const sh_node *n = pp->n;
    p->width = (int)sh_node_int(n, "width", 0);
    p->height = (int)sh_node_int(n, "height", 0);
    p->zero_border = sh_node_int(n, "zero_border", 0) != 0;
    const sh_tensor *frame = cpu_in(pp, 0), *out = cpu_out(pp, 0);
    if (frame->dtype != SH_DT_UINT8 || cpu_in(pp, 1)->dtype != SH_DT_INT32 || cpu_numel(cpu_in(pp, 1)) != 2 ||
        cpu_in(pp, 2)->dtype != SH_DT_FLOAT32 || cpu_numel(cpu_in(pp, 2)) != SH_HAND_CROP_WORDS ||
        out->dtype != SH_DT_FLOAT32 || p->width < 1 || p->height < 1 ||
        cpu_numel(out) != 3 * (int64_t)p->width * p->height)
        return CPU_ERR(pp, err, SHOAL_ERR_SHAPE, "tensors do not match a %dx%d crop", p->width, p->height);
    p->capacity = (size_t)cpu_numel(frame);
    memcpy(p->in, n->inputs, sizeof p->in);
    p->out = n->outputs[0];
    pp->fn = run_frame_crop;
    return 0;
}
