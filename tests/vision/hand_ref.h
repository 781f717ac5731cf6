/* Shared by the hand tests: the two MediaPipe models (models/, fetched by make models) on
 * the CPU backend (runtime/hand_sessions.h), and readers for MediaPipe's expected
 * results in ../shared/real-models/hands. Header-only. */
#ifndef SHOAL_TESTS_VISION_HAND_REF_H
#define SHOAL_TESTS_VISION_HAND_REF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/hand_sessions.h"
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
    sh_backend be;
    sh_hand_sessions *hs;
} hr_models;

static inline int hr_open(hr_models *h, sh_allocator *a, sh_err *err)
{
    memset(h, 0, sizeof *h);
    sh_backend_params bp = {.alloc = a, .n_threads = 0};
    int rc = sh_backend_cpu_create(&bp, &h->be, err);
    return rc ? rc : sh_hand_sessions_create(a, &h->be, PALM_MODEL, LANDMARK_MODEL, &h->hs, err);
}

static inline void hr_close(hr_models *h)
{
    sh_hand_sessions_destroy(h->hs);
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
