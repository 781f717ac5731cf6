/* The shipped configs/aiglasses.yaml (or the config named by argv[1]: aiglasses-full.yaml)
 * loads, names the original system's five models and three modes, and picks a tier for each
 * class of card. Skipped (77) while the file is absent. */
#include <stdio.h>
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
