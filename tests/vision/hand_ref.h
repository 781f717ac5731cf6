/* Shared by the hand tests: the two MediaPipe models (models/, fetched by make models) run
 * through CPU-backend sessions behind sh_hand_models, and readers for MediaPipe's expected
 * results in ../shared/real-models/hands. Header-only. */
#ifndef SHOAL_TESTS_VISION_HAND_REF_H
#define SHOAL_TESTS_VISION_HAND_REF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "import/tflite_import.h"
#include "runtime/session.h"
#include "vision/hand_landmarker.h"

#define HAND_DIR SHOAL_SHARED_DIR "/real-models/hands"
#define PALM_MODEL SHOAL_MODELS_DIR "/palm_detection_full.tflite"
#define LANDMARK_MODEL SHOAL_MODELS_DIR "/hand_landmark_full.tflite"

static inline int hr_have(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Exits 77 (skipped) when the models or the shared photo are missing. */
static inline void hr_require_data(void)
{
    if (!hr_have(PALM_MODEL) || !hr_have(LANDMARK_MODEL) || !hr_have(HAND_DIR "/left_hands.jpg")) {
        fprintf(stderr, "skipped: needs %s, %s (make models) and %s\n", PALM_MODEL, LANDMARK_MODEL, HAND_DIR);
        exit(77);
    }
}

typedef struct hr_models {
    sh_allocator *a;
    sh_backend be;
    sh_session *s[2];
    long runs[2];
} hr_models;

static inline int hr_run(void *ctx, sh_hand_model model, const float *input, size_t n_in, const float **outputs,
                         size_t *counts, int n_outputs, sh_err *err)
{
    hr_models *h = ctx;
    sh_session *s = h->s[model];
    sh_tensor_info in;
    int rc = sh_session_input(s, 0, &in);
    if (rc || (rc = sh_session_set_input(s, 0, SH_DT_FLOAT32, &in.shape, input, n_in * sizeof(float), err)) ||
        (rc = sh_session_run(s, err)))
        return rc;
    h->runs[model]++;
    for (int i = 0; i < n_outputs && i < sh_session_n_outputs(s); i++) {
        sh_tensor_info o;
        const void *d;
        size_t nb;
        if ((rc = sh_session_get_output(s, i, &o, &d, &nb, err)))
            return rc;
        outputs[i] = d;
        counts[i] = nb / sizeof(float);
    }
    return 0;
}

static inline int hr_open(hr_models *h, sh_allocator *a, sh_err *err)
{
    memset(h, 0, sizeof *h);
    h->a = a;
    sh_backend_params bp = {.alloc = a, .n_threads = 0};
    int rc = sh_backend_cpu_create(&bp, &h->be, err);
    const char *paths[2] = {PALM_MODEL, LANDMARK_MODEL};
    for (int i = 0; i < 2 && !rc; i++) {
        sh_graph *g;
        sh_session_params p = sh_session_default_params();
        p.alloc = a;
        p.backend = &h->be;
        if ((rc = sh_tflite_load_file(a, paths[i], &g, err)) == 0)
            rc = sh_session_create_graph(&p, g, &h->s[i], err);
    }
    return rc;
}

static inline void hr_close(hr_models *h)
{
    sh_session_destroy(h->s[0]);
    sh_session_destroy(h->s[1]);
    sh_backend_destroy(&h->be);
}

static inline char *hr_read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = '\0';
    fclose(f);
    return s;
}

/* The k-th "key: value" number after `from` in a text proto; NAN when absent. Returns the
 * position after it through *next. */
static inline double hr_pb_number(const char *from, const char *key, const char **next)
{
    char pat[64];
    snprintf(pat, sizeof pat, "%s:", key);
    const char *p = strstr(from, pat);
    if (!p) {
        *next = from + strlen(from);
        return NAN;
    }
    p += strlen(pat);
    char *end;
    double v = strtod(p, &end);
    *next = end;
    return v;
}

#endif
