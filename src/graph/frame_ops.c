/* The frame ops in the graph: shape inference, and extending a model's graph with them. */
#include "graph/frame_ops.h"

#include <string.h>

#include "graph/passes-impl.h"
#include "vision/frame.h"
#include "vision/hands.h"

sh_frame_spec sh_frame_default_spec(int width, int height)
{
    sh_preprocess_params p = sh_preprocess_default_params(width, height);
    sh_decode_params d = sh_decode_default_params();
    sh_frame_spec s = {
        .width = width, .height = height, .resize = (int)p.resize, .place = (int)p.place,
        .pad_value = p.pad_value, .order = (int)p.order, .scale = p.scale,
        .mean = {p.mean[0], p.mean[1], p.mean[2]}, .std = {p.std[0], p.std[1], p.std[2]},
        .pixel_format = SH_PIXEL_RGB, .max_pixels = 1920 * 1080,
        .decoder = SH_FRAME_SPEC_NONE, .score_threshold = d.score_threshold, .iou_threshold = d.iou_threshold,
        .mask_threshold = d.mask_threshold, .agnostic = d.agnostic, .max_detections = d.max_detections,
        .top_k = d.top_k,
    };
    return s;
}

/* --- shape inference -------------------------------------------------------------------- */

/* Input i, checked to be of dtype dt and rank `rank` (-1: any rank); dims[j] >= 0 pins dim j. */
static int want(const sh_graph *g, const sh_node *n, int i, sh_dtype dt, int rank, const int64_t *dims,
                const sh_tensor **out, sh_err *err)
{
    const sh_tensor *x = sh_node_input(g, n, i);
    *out = x;
    if (!x || x->shape.ndim < 0)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input %d is missing or has no shape", i);
    char b[128];
    bool ok = x->dtype == dt && (rank < 0 || x->shape.ndim == rank);
    for (int j = 0; ok && dims && j < rank; j++)
        ok = dims[j] < 0 || x->shape.d[j] == dims[j];
    if (!ok)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input %d '%s' is %s %s, not the %s of rank %d this op reads",
                            i, x->name, sh_dtype_name(x->dtype), sh_shape_str(&x->shape, b, sizeof b),
                            sh_dtype_name(dt), rank);
    return 0;
}

/* The boxes, scores, ids and count of K entries (candidates or detections) at input `first`. */
static int want_boxes(const sh_graph *g, const sh_node *n, int first, int64_t k, sh_err *err)
{
    const sh_tensor *x;
    const int64_t b[2] = {k, 4}, s[1] = {k}, ids[2] = {2, k}, one[1] = {1};
    int rc = want(g, n, first, SH_DT_FLOAT32, 2, b, &x, err);
    if (rc || (rc = want(g, n, first + 1, SH_DT_FLOAT32, 1, s, &x, err)) ||
        (rc = want(g, n, first + 2, SH_DT_INT32, 2, ids, &x, err)))
        return rc;
    return want(g, n, first + 3, SH_DT_INT32, 1, one, &x, err);
}

static void boxes_out(sh_graph *g, const sh_node *n, int64_t k)
{
    sh_infer_set_out(g, n, 0, SH_DT_FLOAT32, &(sh_shape){2, {k, 4}});
    sh_infer_set_out(g, n, 1, SH_DT_FLOAT32, &(sh_shape){1, {k}});
    sh_infer_set_out(g, n, 2, SH_DT_INT32, &(sh_shape){2, {2, k}});
    sh_infer_set_out(g, n, 3, SH_DT_INT32, &(sh_shape){1, {1}});
}

static sh_ftensor shape_only(const sh_tensor *x)
{
    sh_ftensor f = {NULL, x->shape.ndim, {0}};
    for (int i = 0; i < x->shape.ndim && i < 4; i++)
        f.shape[i] = x->shape.d[i];
    return f;
}

/* Inputs 0 and 1 of FrameToTensor and FrameCrop: the frame's bytes (whole RGB pixels) and its size. */
static int want_frame(const sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    const int64_t size_dims[1] = {2};
    int rc = want(g, n, 0, SH_DT_UINT8, 1, NULL, &x, err);
    if (rc)
        return rc;
    if (x->shape.d[0] < 3 || x->shape.d[0] % 3)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "frame input '%s' holds %lld bytes, not whole pixels", x->name,
                            (long long)x->shape.d[0]);
    return want(g, n, 1, SH_DT_INT32, 1, size_dims, &x, err);
}

int sh_infer_frame_op(sh_graph *g, const sh_node *n, sh_err *err)
{
    const sh_tensor *x;
    int rc;
    const int64_t xf_dims[1] = {SH_FRAME_XF_WORDS};
    switch (n->op) {
    case SH_OP_FRAME_TO_TENSOR: {
        int64_t w = sh_node_int(n, "width", 0), h = sh_node_int(n, "height", 0);
        if ((rc = want_frame(g, n, err)))
            return rc;
        if (w < 1 || h < 1 || w > 8192 || h > 8192)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "model input %lldx%lld out of range", (long long)w,
                                (long long)h);
        sh_infer_set_out(g, n, 0, SH_DT_FLOAT32, &(sh_shape){4, {1, 3, h, w}});
        return sh_infer_set_out(g, n, 1, SH_DT_FLOAT32, &(sh_shape){1, {SH_FRAME_XF_WORDS}});
    }
    case SH_OP_FRAME_DECODE: {
        if ((rc = want(g, n, 0, SH_DT_FLOAT32, -1, NULL, &x, err)))
            return rc;
        sh_ftensor head = shape_only(x);
        int64_t k = sh_frame_anchors((sh_frame_decoder)sh_node_int(n, "decoder", 0), &head);
        if (k < 1 || k > INT32_MAX)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "head '%s' is not a [1, C, N] / [1, N, C] output", x->name);
        boxes_out(g, n, k);
        return 0;
    }
    case SH_OP_FRAME_NMS: {
        if ((rc = want(g, n, 0, SH_DT_FLOAT32, 2, NULL, &x, err)))
            return rc;
        int64_t k = x->shape.d[0], m = sh_node_int(n, "max_detections", 0);
        if ((rc = want_boxes(g, n, 0, k, err)) || (rc = want(g, n, 4, SH_DT_FLOAT32, 1, xf_dims, &x, err)))
            return rc;
        if (m < 1 || m > INT32_MAX)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "max_detections %lld must be positive", (long long)m);
        boxes_out(g, n, m);
        return 0;
    }
    case SH_OP_FRAME_MASKS: {
        const int64_t protos_dims[4] = {1, -1, -1, -1};
        if ((rc = want(g, n, 0, SH_DT_FLOAT32, -1, NULL, &x, err)) ||
            (rc = want(g, n, 1, SH_DT_FLOAT32, 4, protos_dims, &x, err)) ||
            (rc = want(g, n, 2, SH_DT_FLOAT32, 2, NULL, &x, err)))
            return rc;
        int64_t m = x->shape.d[0], max_pixels = sh_node_int(n, "max_pixels", 0);
        int64_t frames = sh_node_int(n, "pool_frames", 0);
        size_t pool = sh_frame_mask_pool(max_pixels, frames, m);
        if ((rc = want_boxes(g, n, 2, m, err)) || (rc = want(g, n, 6, SH_DT_FLOAT32, 1, xf_dims, &x, err)))
            return rc;
        if (pool == 0)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n,
                                "a pool of %lld frames of %lld pixels for %lld masks is out of range (1..%d bytes)",
                                (long long)frames, (long long)max_pixels, (long long)m, INT32_MAX);
        sh_infer_set_out(g, n, 0, SH_DT_INT32, &(sh_shape){2, {m, SH_FRAME_MASK_BOX_WORDS}});
        return sh_infer_set_out(g, n, 1, SH_DT_UINT8, &(sh_shape){1, {(int64_t)pool}});
    }
    case SH_OP_FRAME_LANDMARKS:
        if ((rc = want(g, n, 0, SH_DT_FLOAT32, -1, NULL, &x, err)))
            return rc;
        if (sh_shape_numel(&x->shape) != SH_FRAME_LANDMARK_WORDS)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "'%s' does not hold %d landmark values", x->name,
                                SH_FRAME_LANDMARK_WORDS);
        if ((rc = want(g, n, 1, SH_DT_FLOAT32, 1, xf_dims, &x, err)))
            return rc;
        return sh_infer_set_out(g, n, 0, SH_DT_FLOAT32, &(sh_shape){1, {SH_FRAME_LANDMARK_WORDS}});
    case SH_OP_FRAME_CROP: {
        const int64_t rect_dims[1] = {SH_HAND_CROP_WORDS};
        int64_t w = sh_node_int(n, "width", 0), h = sh_node_int(n, "height", 0);
        if ((rc = want_frame(g, n, err)) || (rc = want(g, n, 2, SH_DT_FLOAT32, 1, rect_dims, &x, err)))
            return rc;
        if (w < 1 || h < 1 || w > 4096 || h > 4096)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "crop %lldx%lld out of range", (long long)w, (long long)h);
        return sh_infer_set_out(g, n, 0, SH_DT_FLOAT32, &(sh_shape){4, {1, h, w, 3}});
    }
    default:
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "not a frame op");
    }
}

/* --- extending a graph ------------------------------------------------------------------ */

static int add_tensor(sh_graph *g, const char *name, sh_dtype dt, int *t, sh_err *err)
{
    if (sh_graph_find_tensor(g, name) >= 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': already has a tensor named '%s'", g->name, name);
    sh_shape unknown = {.ndim = -1};
    *t = sh_graph_add_tensor(g, name, dt, &unknown);
    return *t < 0 ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': cannot add tensor '%s'", g->name, name) : 0;
}

static int add_tensors(sh_graph *g, const char *const *names, const sh_dtype *dts, int n, int *t, sh_err *err)
{
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = add_tensor(g, names[i], dts[i], &t[i], err);
    return rc;
}

static int add_node(sh_graph *g, const char *name, sh_op op, const int *in, int n_in, const int *out, int n_out,
                    int *node, sh_err *err)
{
    *node = sh_graph_add_node(g, name, op, in, n_in, out, n_out);
    return *node < 0 ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': cannot add node '%s'", g->name, name) : 0;
}

static int set_ints(sh_graph *g, int node, const char *const *names, const int64_t *v, int n, sh_err *err)
{
    for (int i = 0; i < n; i++)
        if (sh_node_set_int(g, node, names[i], v[i]))
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': cannot set attribute %s", g->name, names[i]);
    return 0;
}

static int set_floats(sh_graph *g, int node, const char *const *names, const float *v, int n, sh_err *err)
{
    for (int i = 0; i < n; i++)
        if (sh_node_set_float(g, node, names[i], v[i]))
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': cannot set attribute %s", g->name, names[i]);
    return 0;
}

static int add_preprocess(sh_graph *g, const sh_frame_spec *s, int input, int *xf, sh_err *err)
{
    int t[2], node, rc;
    const char *names[2] = {"frame", "frame_size"};
    const sh_dtype dts[2] = {SH_DT_UINT8, SH_DT_INT32};
    if (s->max_pixels < 1 || s->max_pixels > (int64_t)SH_IMAGE_MAX_PIXELS)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': frames of %lld pixels at most", g->name,
                       (long long)s->max_pixels);
    if ((rc = add_tensors(g, names, dts, 2, t, err)) || (rc = add_tensor(g, "frame_transform", SH_DT_FLOAT32, xf, err)))
        return rc;
    g->tensors[t[0]].shape = (sh_shape){1, {s->max_pixels * 3}};
    g->tensors[t[1]].shape = (sh_shape){1, {2}};
    const int outs[2] = {input, *xf};
    if ((rc = add_node(g, "shoal.frame_to_tensor", SH_OP_FRAME_TO_TENSOR, t, 2, outs, 2, &node, err)))
        return rc;
    const char *in_names[] = {"width", "height", "resize", "place", "pad_value", "order", "pixel_format"};
    const int64_t iv[] = {s->width, s->height, s->resize, s->place, s->pad_value, s->order, s->pixel_format};
    const char *f_names[] = {"scale"};
    if ((rc = set_ints(g, node, in_names, iv, 7, err)) || (rc = set_floats(g, node, f_names, &s->scale, 1, err)))
        return rc;
    if (sh_node_set_floats(g, node, "mean", s->mean, 3) || sh_node_set_floats(g, node, "std", s->std, 3))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': cannot set mean/std", g->name);
    g->tensors[input].is_input = false;
    g->tensors[input].shape.ndim = -1;
    return sh_graph_set_inputs(g, t, 2) ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': inputs", g->name) : 0;
}

static int add_landmarks(sh_graph *g, const sh_frame_spec *s, int xf, int *out, int *n_out, sh_err *err)
{
    if (g->n_outputs < 1)
        return sh_errf(err, SHOAL_ERR_SHAPE, "graph '%s': no output to read landmarks from", g->name);
    int t, node, rc = add_tensor(g, "landmarks", SH_DT_FLOAT32, &t, err);
    const int in[2] = {g->outputs[0], xf};
    const char *names[] = {"logits"};
    const int64_t v[] = {s->landmark_logits};
    if (rc || (rc = add_node(g, "shoal.frame_landmarks", SH_OP_FRAME_LANDMARKS, in, 2, &t, 1, &node, err)) ||
        (rc = set_ints(g, node, names, v, 1, err)))
        return rc;
    out[(*n_out)++] = t;
    return 0;
}

/* Decode, NMS and masks after the model's outputs; out[] receives the result tensors. */
static int add_postprocess(sh_graph *g, const sh_frame_spec *s, int xf, int *out, int *n_out, sh_err *err)
{
    int need = s->masks ? 2 : 1;
    if (g->n_outputs < need)
        return sh_errf(err, SHOAL_ERR_SHAPE, "graph '%s': %d outputs, the decoder reads %d", g->name, g->n_outputs,
                       need);
    if (s->max_detections < 1)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': max_detections %d must be positive", g->name,
                       s->max_detections);
    int pool_frames =
        s->mask_pool_frames > 0 ? s->mask_pool_frames : sh_frame_default_pool_frames(s->max_detections);
    if (s->masks && sh_frame_mask_pool(s->max_pixels, pool_frames, s->max_detections) == 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                       "graph '%s': a mask pool of %d frames of %lld pixels is out of range (1..%d bytes)", g->name,
                       pool_frames, (long long)s->max_pixels, INT32_MAX);
    int head = g->outputs[0], protos = s->masks ? g->outputs[1] : -1, cand[4], det[4], node, rc;
    const char *cn[4] = {"shoal.candidate_boxes", "shoal.candidate_scores", "shoal.candidate_ids",
                         "shoal.candidate_count"};
    const char *dn[4] = {"detection_boxes", "detection_scores", "detection_ids", "detection_count"};
    const sh_dtype dts[4] = {SH_DT_FLOAT32, SH_DT_FLOAT32, SH_DT_INT32, SH_DT_INT32};
    if ((rc = add_tensors(g, cn, dts, 4, cand, err)) || (rc = add_tensors(g, dn, dts, 4, det, err)))
        return rc;
    const int dec_in[2] = {head, protos};
    if ((rc = add_node(g, "shoal.frame_decode", SH_OP_FRAME_DECODE, dec_in, protos >= 0 ? 2 : 1, cand, 4, &node, err)))
        return rc;
    const char *dec_i[] = {"decoder", "width", "height"};
    const int64_t dec_v[] = {s->decoder, s->width, s->height};
    const char *dec_f[] = {"score_threshold"};
    if ((rc = set_ints(g, node, dec_i, dec_v, 3, err)) || (rc = set_floats(g, node, dec_f, &s->score_threshold, 1, err)))
        return rc;
    const int nms_in[5] = {cand[0], cand[1], cand[2], cand[3], xf};
    if ((rc = add_node(g, "shoal.frame_nms", SH_OP_FRAME_NMS, nms_in, 5, det, 4, &node, err)))
        return rc;
    const char *nms_i[] = {"agnostic", "max_detections", "top_k"};
    const int64_t nms_v[] = {s->agnostic, s->max_detections, s->top_k};
    const char *nms_f[] = {"iou_threshold"};
    if ((rc = set_ints(g, node, nms_i, nms_v, 3, err)) || (rc = set_floats(g, node, nms_f, &s->iou_threshold, 1, err)))
        return rc;
    memcpy(out + *n_out, det, sizeof det);
    *n_out += 4;
    if (!s->masks)
        return 0;
    const char *mn[2] = {"mask_boxes", "mask_bits"};
    const sh_dtype mdt[2] = {SH_DT_INT32, SH_DT_UINT8};
    int masks[2];
    if ((rc = add_tensors(g, mn, mdt, 2, masks, err)))
        return rc;
    const int mask_in[7] = {head, protos, det[0], det[1], det[2], det[3], xf};
    if ((rc = add_node(g, "shoal.frame_masks", SH_OP_FRAME_MASKS, mask_in, 7, masks, 2, &node, err)))
        return rc;
    const char *mask_i[] = {"max_pixels", "pool_frames", "width", "height"};
    const int64_t mask_v[] = {s->max_pixels, pool_frames, s->width, s->height};
    const char *mask_f[] = {"mask_threshold"};
    if ((rc = set_ints(g, node, mask_i, mask_v, 4, err)) ||
        (rc = set_floats(g, node, mask_f, &s->mask_threshold, 1, err)))
        return rc;
    memcpy(out + *n_out, masks, sizeof masks);
    *n_out += 2;
    return 0;
}

int sh_graph_add_frame_ops(sh_graph *g, const sh_frame_spec *s, sh_err *err)
{
    if (!g || !s)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "frame ops: NULL graph or spec");
    if (g->n_inputs != 1)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "graph '%s': %d inputs; the frame feeds a model of one input",
                       g->name, g->n_inputs);
    if (s->decoder < SH_FRAME_SPEC_NONE || s->decoder > SH_FRAME_SPEC_LANDMARKS)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': unknown frame decoder %d", g->name, (int)s->decoder);
    if (s->masks && s->decoder != SH_FRAME_SPEC_YOLOV8)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': masks need the yolov8 decoder", g->name);
    int xf = -1, rc = add_preprocess(g, s, g->inputs[0], &xf, err);
    if (rc)
        return rc;
    int n_out = 0, *out = sh_alloc(g->alloc, ((size_t)g->n_outputs + 7) * sizeof *out);
    if (!out)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': outputs", g->name);
    out[n_out++] = xf;
    if (s->decoder == SH_FRAME_SPEC_NONE) {
        for (int i = 0; i < g->n_outputs; i++)
            out[n_out++] = g->outputs[i];
    } else {
        rc = s->decoder == SH_FRAME_SPEC_LANDMARKS ? add_landmarks(g, s, xf, out, &n_out, err)
                                                   : add_postprocess(g, s, xf, out, &n_out, err);
        for (int i = 0; rc == 0 && i < g->n_outputs; i++)
            g->tensors[g->outputs[i]].is_output = false;
    }
    if (rc == 0 && sh_graph_set_outputs(g, out, n_out))
        rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': outputs", g->name);
    sh_free(g->alloc, out);
    return rc;
}

int sh_graph_add_frame_crop(sh_graph *g, int64_t max_pixels, bool zero_border, sh_err *err)
{
    if (!g)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "frame crop: NULL graph");
    if (g->n_inputs != 1)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "graph '%s': %d inputs; the crop feeds a model of one input",
                       g->name, g->n_inputs);
    if (max_pixels < 0 || max_pixels > (int64_t)SH_IMAGE_MAX_PIXELS)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "graph '%s': frames of %lld pixels at most", g->name,
                       (long long)max_pixels);
    int input = g->inputs[0];
    const sh_tensor *in = &g->tensors[input];
    char b[64];
    if (in->dtype != SH_DT_FLOAT32 || in->shape.ndim != 4 || in->shape.d[0] != 1 || in->shape.d[3] != 3 ||
        in->shape.d[1] < 1 || in->shape.d[2] < 1 || in->shape.d[1] > 4096 || in->shape.d[2] > 4096)
        return sh_errf(err, SHOAL_ERR_SHAPE, "graph '%s': input '%s' is %s %s; the crop feeds float32 [1,H,W,3]",
                       g->name, in->name, sh_dtype_name(in->dtype), sh_shape_str(&in->shape, b, sizeof b));
    int64_t h = in->shape.d[1], w = in->shape.d[2];
    int t[3], node, rc;
    const char *names[3] = {"frame", "frame_size", "crop_rect"};
    const sh_dtype dts[3] = {SH_DT_UINT8, SH_DT_INT32, SH_DT_FLOAT32};
    if ((rc = add_tensors(g, names, dts, 3, t, err)))
        return rc;
    g->tensors[t[0]].shape = (sh_shape){1, {max_pixels > 0 ? max_pixels * 3 : -1}};
    g->tensors[t[1]].shape = (sh_shape){1, {2}};
    g->tensors[t[2]].shape = (sh_shape){1, {SH_HAND_CROP_WORDS}};
    if ((rc = add_node(g, "shoal.frame_crop", SH_OP_FRAME_CROP, t, 3, &input, 1, &node, err)))
        return rc;
    const char *in_names[] = {"width", "height", "zero_border"};
    const int64_t iv[] = {w, h, zero_border};
    if ((rc = set_ints(g, node, in_names, iv, 3, err)))
        return rc;
    g->tensors[input].is_input = false;
    g->tensors[input].shape.ndim = -1;
    return sh_graph_set_inputs(g, t, 3) ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "graph '%s': inputs", g->name) : 0;
}
