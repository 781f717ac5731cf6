/* Session-backed models for the hand landmarker (see hand_sessions.h). */
#include "runtime/hand_sessions.h"

#include "runtime/session.h"

struct sh_hand_sessions {
    sh_allocator *a;
    sh_session *s[2];       /* indexed by sh_hand_model */
    int side[2];            /* square input side */
    long runs[2];
};

static int run_model(void *ctx, sh_hand_model model, const float *input, size_t n_in, const float **outputs,
                     size_t *counts, int n_outputs, sh_err *err)
{
    sh_hand_sessions *hs = ctx;
    if ((int)model < 0 || model > SH_HAND_MODEL_LANDMARK)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "hand sessions: model %d", (int)model);
    sh_session *s = hs->s[model];
    sh_tensor_info in;
    int rc = sh_session_input(s, 0, &in);
    if (rc || (rc = sh_session_set_input(s, 0, SH_DT_FLOAT32, &in.shape, input, n_in * sizeof(float), err)) ||
        (rc = sh_session_run(s, err)))
        return rc;
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
    sh_hand_sessions *hs = sh_calloc(a, 1, sizeof(*hs));
    if (!hs)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "hand sessions: out of memory");
    hs->a = a;
    const char *paths[2] = {palm_path, landmark_path};
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        sh_session_params p = sh_session_default_params();
        p.alloc = a;
        p.backend = be;
        if ((rc = sh_session_create_file(&p, paths[i], &hs->s[i], err)))
            break;
        sh_tensor_info in;
        if ((rc = sh_session_input(hs->s[i], 0, &in)))
            break;
        if (sh_session_n_inputs(hs->s[i]) != 1 || in.dtype != SH_DT_FLOAT32 || in.shape.ndim != 4 ||
            in.shape.d[0] != 1 || in.shape.d[3] != 3 || in.shape.d[1] != in.shape.d[2] || in.shape.d[1] < 1 ||
            in.shape.d[1] > 4096) {
            char b[64];
            rc = sh_errf(err, SHOAL_ERR_SHAPE, "%s: input '%s' is %s; the hand landmarker feeds float32 [1,S,S,3]",
                         paths[i], in.name, sh_shape_str(&in.shape, b, sizeof b));
            break;
        }
        hs->side[i] = (int)in.shape.d[1];
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
    sh_session_destroy(hs->s[0]);
    sh_session_destroy(hs->s[1]);
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
