/* Session-backed models for the hand landmarker (see hand_sessions.h). */
#include "runtime/hand_sessions.h"

#include <string.h>

#include "graph/frame_ops.h"
#include "import/onnx_import.h"
#include "import/tflite_import.h"
#include "runtime/session.h"

struct sh_hand_sessions {
    sh_allocator *a;
    const sh_backend *be;
    char *path[2];          /* indexed by sh_hand_model */
    sh_session *s[2];
    int side[2];            /* square input side */
    int64_t pixels[2];      /* frame size (pixels) the session is bound to; 0 before its first run */
    long runs[2];
};

/* The model with the crop in front of its input (a zero border for the palm detector's
 * letterbox, the edge pixel for the landmark ROI); the frame's length is fixed by the first
 * frame the session runs. */
static int open_stage(sh_hand_sessions *hs, int i, sh_err *err)
{
    const char *path = hs->path[i];
    sh_graph *g = NULL;
    int rc = sh_tflite_is_path(path) ? sh_tflite_load_file(hs->a, path, &g, err)
                                     : sh_onnx_load_file(hs->a, path, &g, err);
    if (rc)
        return rc;
    const sh_tensor *in = g->n_inputs == 1 ? &g->tensors[g->inputs[0]] : NULL;
    if (!in || in->dtype != SH_DT_FLOAT32 || in->shape.ndim != 4 || in->shape.d[0] != 1 || in->shape.d[3] != 3 ||
        in->shape.d[1] != in->shape.d[2] || in->shape.d[1] < 1 || in->shape.d[1] > 4096) {
        char b[64];
        rc = in ? sh_errf(err, SHOAL_ERR_SHAPE, "%s: input '%s' is %s; the hand landmarker feeds float32 [1,S,S,3]",
                          path, in->name, sh_shape_str(&in->shape, b, sizeof b))
                : sh_errf(err, SHOAL_ERR_SHAPE, "%s: %d inputs; the hand landmarker feeds one", path, g->n_inputs);
        sh_graph_destroy(g);
        return rc;
    }
    hs->side[i] = (int)in->shape.d[1];
    if ((rc = sh_graph_add_frame_crop(g, 0, i == SH_HAND_MODEL_PALM, err))) {
        sh_graph_destroy(g);
        return sh_err_prefix(err, rc, "%s: ", path);
    }
    sh_session_params p = sh_session_default_params();
    p.alloc = hs->a;
    p.backend = hs->be;
    hs->pixels[i] = 0;
    return sh_session_create_graph(&p, g, &hs->s[i], err);   /* takes g, also on failure */
}

static int run_model(void *ctx, sh_hand_model model, const sh_image *frame, const sh_hand_rect *rect,
                     const float **outputs, size_t *counts, int n_outputs, sh_err *err)
{
    sh_hand_sessions *hs = ctx;
    if ((int)model < 0 || model > SH_HAND_MODEL_LANDMARK)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand sessions: model %d", (int)model);
    int64_t pixels = (int64_t)frame->width * frame->height;
    int rc;
    if (hs->pixels[model] != 0 && hs->pixels[model] != pixels) {   /* bound to another frame size */
        sh_session_destroy(hs->s[model]);
        hs->s[model] = NULL;
        if ((rc = open_stage(hs, model, err)))
            return rc;
    }
    sh_session *s = hs->s[model];
    int32_t size[2] = {frame->width, frame->height};
    float words[SH_HAND_CROP_WORDS];
    sh_hand_crop_words(rect, words);
    sh_shape frame_shape = {1, {pixels * 3}}, size_shape = {1, {2}}, rect_shape = {1, {SH_HAND_CROP_WORDS}};
    if ((rc = sh_session_set_input(s, 0, SH_DT_UINT8, &frame_shape, frame->data, (size_t)pixels * 3, err)) ||
        (rc = sh_session_set_input(s, 1, SH_DT_INT32, &size_shape, size, sizeof size, err)) ||
        (rc = sh_session_set_input(s, 2, SH_DT_FLOAT32, &rect_shape, words, sizeof words, err)) ||
        (rc = sh_session_run(s, err)))
        return rc;
    hs->pixels[model] = pixels;
    hs->runs[model]++;
    int n = sh_session_n_outputs(s);
    for (int i = 0; i < n_outputs; i++) {
        outputs[i] = NULL;
        counts[i] = 0;
        if (i >= n)
            continue;
        sh_tensor_info o;
        const void *d;
        size_t nb;
        if ((rc = sh_session_get_output(s, i, &o, &d, &nb, err)))
            return rc;
        if (o.dtype != SH_DT_FLOAT32)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "hand sessions: output '%s' is not float32", o.name);
        outputs[i] = d;
        counts[i] = nb / sizeof(float);
    }
    return 0;
}

int sh_hand_sessions_create(sh_allocator *a, const sh_backend *be, const char *palm_path, const char *landmark_path,
                            sh_hand_sessions **out, sh_err *err)
{
    *out = NULL;
    if (!palm_path || !landmark_path)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand sessions: both model paths are required");
    sh_hand_sessions *hs = sh_calloc(a, 1, sizeof(*hs));
    if (!hs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "hand sessions: out of memory");
    hs->a = a;
    hs->be = be;
    const char *paths[2] = {palm_path, landmark_path};
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        hs->path[i] = sh_strdup(a, paths[i]);
        rc = hs->path[i] ? open_stage(hs, i, err) : sh_errf(err, SHOAL_ERR_NO_MEMORY, "hand sessions: out of memory");
    }
    if (rc) {
        sh_hand_sessions_destroy(hs);
        return rc;
    }
    *out = hs;
    return 0;
}

void sh_hand_sessions_destroy(sh_hand_sessions *hs)
{
    if (!hs)
        return;
    for (int i = 0; i < 2; i++) {
        sh_session_destroy(hs->s[i]);
        sh_free(hs->a, hs->path[i]);
    }
    sh_free(hs->a, hs);
}

sh_hand_models sh_hand_sessions_models(sh_hand_sessions *hs)
{
    return (sh_hand_models){.run = run_model, .ctx = hs};
}

long sh_hand_sessions_runs(const sh_hand_sessions *hs, sh_hand_model model)
{
    return hs && (int)model >= 0 && model <= SH_HAND_MODEL_LANDMARK ? hs->runs[model] : 0;
}

sh_hand_params sh_hand_params_from_config(const sh_model_config *c, const sh_hand_sessions *hs)
{
    sh_hand_params p = sh_hand_default_params();
    if (c) {
        p.num_hands = c->num_hands;
        p.palm.min_score = c->min_detection_confidence;
        p.min_presence = c->min_tracking_confidence;
    }
    if (hs) {
        p.palm.input_size = hs->side[SH_HAND_MODEL_PALM];
        p.palm.coord_scale = (float)hs->side[SH_HAND_MODEL_PALM];
        p.landmark_size = hs->side[SH_HAND_MODEL_LANDMARK];
    }
    return p;
}
