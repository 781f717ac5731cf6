/* The shipped configs/aiglasses.yaml (or the config named by argv[1]: aiglasses-full.yaml)
 * loads, names the original system's five models and three modes, and picks a tier for each
 * class of card. Its hand is MediaPipe's landmarker wired as in configs/aiglasses.yaml (task,
 * both .tflite files resolving to the ones `make models` fetches, thresholds), so a config
 * that drifts back to another hand fails here rather than in a benchmark. Skipped (77) while
 * the file is absent. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runtime/config.h"

#define CHECK(cond)                                                              \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            return 1;                                                            \
        }                                                                        \
    } while (0)

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && !strcmp(s + n - k, tail);
}

/* A resolved model path names the file `make models` writes into models/: the same file when
 * it is there, else the same name under a models/ folder. */
static int is_fetched_file(const char *path, const char *file)
{
    char want[PATH_MAX], a[PATH_MAX], b[PATH_MAX];
    snprintf(want, sizeof want, "%s/%s", SHOAL_MODELS_DIR, file);
    if (access(want, R_OK) == 0)
        return realpath(path, a) && realpath(want, b) && !strcmp(a, b);
    snprintf(want, sizeof want, "/models/%s", file);
    return ends_with(path, want);
}

/* The same file when both exist, else the same resolved path. */
static bool same_file(const char *x, const char *y)
{
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(x, a) && realpath(y, b))
        return !strcmp(a, b);
    return !strcmp(x, y);
}

static int check_hand(const sh_config *c, const sh_config *reference)
{
    int i = sh_config_find_model(c, "hand");
    CHECK(i >= 0);
    const sh_model_config *h = &c->models[i];
    CHECK(h->task == SH_TASK_HAND_LANDMARKS);
    CHECK(h->palm_path != NULL);
    CHECK(is_fetched_file(h->path, "hand_landmark_full.tflite"));
    CHECK(is_fetched_file(h->palm_path, "palm_detection_full.tflite"));
    /* the palm detector is budgeted as a model of its own */
    CHECK(h->palm_stage > 0 && h->palm_stage < c->n_models);
    CHECK(c->models[h->palm_stage].is_palm_stage && !strcmp(c->models[h->palm_stage].name, "hand.palm"));
    /* the shopping mode runs it */
    int shopping = sh_config_find_mode(c, "shopping");
    bool listed = false;
    for (size_t k = 0; k < c->modes[shopping].n_models; k++)
        listed |= c->modes[shopping].models[k] == (size_t)i;
    CHECK(listed);
    if (reference) {
        const sh_model_config *r = &reference->models[sh_config_find_model(reference, "hand")];
        CHECK(same_file(h->path, r->path) && same_file(h->palm_path, r->palm_path));
        CHECK(h->num_hands == r->num_hands);
        CHECK(h->min_detection_confidence == r->min_detection_confidence);
        CHECK(h->min_tracking_confidence == r->min_tracking_confidence);
        CHECK(h->tracking == r->tracking);
        CHECK(h->priority == r->priority && h->pinned == r->pinned && h->preload == r->preload);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : SHOAL_SOURCE_DIR "/configs/aiglasses.yaml";
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "skipped: %s is absent\n", path);
        return 77;
    }
    sh_allocator *a = sh_allocator_create();
    sh_config *c = NULL;
    sh_err err = {0};
    if (sh_config_load_file(a, path, &c, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    static const char *const models[] = {"blind_road", "obstacle", "shopping", "traffic_light", "hand"};
    for (size_t i = 0; i < 5; i++)
        CHECK(sh_config_find_model(c, models[i]) >= 0);
    static const char *const modes[] = {"navigation", "crossing", "shopping"};
    for (size_t i = 0; i < 3; i++)
        CHECK(sh_config_find_mode(c, modes[i]) >= 0);
    /* the full set's hand is the small set's, setting for setting */
    sh_config *small = NULL;
    if (argc > 1 && sh_config_load_file(a, SHOAL_SOURCE_DIR "/configs/aiglasses.yaml", &small, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (check_hand(c, small))
        return 1;
    if (small)
        sh_config_destroy(small);
    /* the safety-critical models are pinned (issue 4) */
    CHECK(c->models[sh_config_find_model(c, "blind_road")].pinned);
    CHECK(c->models[sh_config_find_model(c, "traffic_light")].pinned);
    for (size_t i = 0; i < c->n_models; i++) {
        const sh_model_config *m = &c->models[i];
        CHECK(m->path[0] == '/');          /* resolved against the config's folder */
        printf("%-14s %-9s %4dx%-4d %-10s %s%s\n", m->name, sh_task_name(m->task), m->input_w, m->input_h,
               sh_decoder_name(m->decoder), m->preload ? "preload" : "on demand", m->pinned ? ", pinned" : "");
    }
    const unsigned long long GiB = 1ull << 30;
    const unsigned long long cards[] = {4 * GiB, 6 * GiB, 8 * GiB - (200ull << 20), 12 * GiB, 16 * GiB, 80 * GiB};
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++) {
        sh_tier t = sh_config_pick_tier(c, cards[i]);
        CHECK(c->hardware.tier != SH_TIER_AUTO || t != SH_TIER_AUTO);
        printf("%6.1f GiB -> tier %s\n", (double)cards[i] / (double)GiB, sh_tier_name(t));
    }
    sh_config_destroy(c);
    CHECK(sh_allocator_stats(a).in_use == 0);
    sh_allocator_destroy(a);
    return 0;
}
