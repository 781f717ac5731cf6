/* Model metadata as config defaults; see model_meta.h. */
#include "runtime/model_meta.h"

#include <string.h>

/* The tasks shoal decodes, by ultralytics' names; false for the others (pose, obb). */
static bool task_from_name(const char *name, sh_task *t)
{
    if (!strcmp(name, "detect"))
        *t = SH_TASK_DETECT;
    else if (!strcmp(name, "segment"))
        *t = SH_TASK_SEGMENT;
    else if (!strcmp(name, "classify"))
        *t = SH_TASK_CLASSIFY;
    else
        return false;
    return true;
}

static sh_decoder default_decoder(sh_task t)
{
    switch (t) {
    case SH_TASK_DETECT: return SH_DECODER_YOLOV8;
    case SH_TASK_SEGMENT: return SH_DECODER_YOLOV8_SEG;
    case SH_TASK_LANDMARKS: return SH_DECODER_LANDMARKS;
    case SH_TASK_YOLOX: return SH_DECODER_YOLOX;
    case SH_TASK_CLASSIFY: return SH_DECODER_CLASSIFY;
    case SH_TASK_HAND_LANDMARKS: return SH_DECODER_NONE;
    }
    return SH_DECODER_NONE;
}

static int apply_task(sh_model_config *c, const sh_model_meta *meta, sh_err *err)
{
    if (!meta || !meta->task)
        return 0;
    sh_task t;
    bool known = task_from_name(meta->task, &t);
    if (c->task_given) {
        sh_task mine;
        if (known && task_from_name(sh_task_name(c->task), &mine) && mine != t)
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "model '%s': the config's task '%s' contradicts the model's "
                           "metadata task '%s'", c->name, sh_task_name(c->task), meta->task);
        return 0;
    }
    if (!known)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "model '%s': the model's metadata task '%s' is not one shoal "
                       "decodes (detect, segment, classify); set task and decoder in the config", c->name, meta->task);
    c->task = t;
    if (!c->decoder_given)
        c->decoder = default_decoder(t);
    return 0;
}

static int apply_input_size(sh_model_config *c, const sh_graph *g, const sh_model_meta *meta, sh_err *err)
{
    if (g->n_inputs != 1)
        return 0;   /* the runtime's own check names the problem */
    const sh_tensor *in = &g->tensors[g->inputs[0]];
    if (in->shape.ndim != 4)
        return 0;
    int64_t h = in->shape.d[2], w = in->shape.d[3];
    char b[64];
    if (h > 0 && w > 0) {
        if (c->input_size_given && (c->input_w != w || c->input_h != h))
            return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': input_size %dx%d (config) contradicts the model's static "
                           "input '%s' %s (%lldx%lld); remove input_size or export the model with dynamic axes",
                           c->name, c->input_w, c->input_h, in->name, sh_shape_str(&in->shape, b, sizeof b),
                           (long long)w, (long long)h);
        c->input_w = (int)w;
        c->input_h = (int)h;
        return 0;
    }
    if (!c->input_size_given) {
        if (meta && meta->imgsz[0] > 0) {
            c->input_h = (int)meta->imgsz[0];
            c->input_w = (int)meta->imgsz[1];
        }
        /* a half-dynamic input keeps its static side */
        if (h > 0)
            c->input_h = (int)h;
        if (w > 0)
            c->input_w = (int)w;
    }
    if (h > 0 && c->input_h != h)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': input_size height %d (config) contradicts the model's static "
                       "height %lld", c->name, c->input_h, (long long)h);
    if (w > 0 && c->input_w != w)
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': input_size width %d (config) contradicts the model's static "
                       "width %lld", c->name, c->input_w, (long long)w);
    if (meta && meta->stride > 0 && (c->input_w % meta->stride || c->input_h % meta->stride))
        return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': input size %dx%d is not a multiple of the model's stride "
                       "%lld (metadata)", c->name, c->input_w, c->input_h, (long long)meta->stride);
    return 0;
}

int sh_rt_meta_defaults(sh_model_config *c, const sh_graph *g, const sh_model_meta *meta, sh_err *err)
{
    int rc;
    if ((rc = apply_task(c, meta, err)) || (rc = apply_input_size(c, g, meta, err)))
        return rc;
    if (meta && meta->names && !c->n_classes && !c->classes_file) {
        c->classes = meta->names;
        c->n_classes = (size_t)meta->n_names;
    }
    return 0;
}

void sh_rt_meta_pick_decoder(sh_model_config *c, const sh_graph *g)
{
    if (c->decoder_given || g->n_outputs < 1)
        return;
    const sh_shape *s = &g->tensors[g->outputs[0]].shape;
    if (s->ndim != 3 || s->d[0] != 1)
        return;
    if (c->task == SH_TASK_DETECT && s->d[2] == 6 && s->d[1] != 6)
        c->decoder = SH_DECODER_END2END;
    /* a YOLOv8-seg head is [1, 4+nc+nm, anchors]; an end-to-end one [1, max_det, 6+nm] */
    const sh_shape *p = g->n_outputs > 1 ? &g->tensors[g->outputs[1]].shape : NULL;
    if (c->task == SH_TASK_SEGMENT && p && p->ndim == 4 && s->d[2] == 6 + p->d[1])
        c->decoder = SH_DECODER_END2END;
}

int sh_rt_meta_check_classes(const sh_model_config *c, const sh_model_meta *meta, sh_err *err)
{
    if (!meta || !meta->names || !c->n_classes || c->classes == meta->names || c->n_classes == (size_t)meta->n_names)
        return 0;
    return sh_errf(err, SHOAL_ERR_SHAPE, "model '%s': the config names %zu classes but the model's metadata names %d",
                   c->name, c->n_classes, meta->n_names);
}

sh_preprocess_params sh_rt_preprocess_params(const sh_model_config *c, int in_w, int in_h)
{
    sh_preprocess_params p = sh_preprocess_default_params(in_w, in_h);
    p.resize = c->letterbox == SH_LETTERBOX_STRETCH ? SH_RESIZE_STRETCH : SH_RESIZE_LETTERBOX;
    p.place = c->letterbox == SH_LETTERBOX_TOP_LEFT ? SH_PLACE_TOP_LEFT : SH_PLACE_CENTER;
    p.pad_value = 114;
    p.order = c->color == SH_COLOR_BGR ? SH_CHANNELS_BGR : SH_CHANNELS_RGB;
    p.scale = c->scale;
    for (int k = 0; k < 3; k++) {
        p.mean[k] = c->mean[k];
        p.std[k] = c->std[k];
    }
    return p;
}
