/* shoal hands: MediaPipe's hand landmarker on images or the frames of one video. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/tuning_env.h"
#include "runtime/config.h"
#include "runtime/hand_sessions.h"
#include "vision/image.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal hands --config FILE --model NAME [options] IMAGE...\n"
            "       shoal hands --palm PALM.tflite --landmark LANDMARK.tflite [options] IMAGE...\n"
            "\n"
            "Runs the palm detector and the hand landmark model as MediaPipe Hands does and prints one\n"
            "JSON line per image: palms (score, box normalized to the image) when the detector ran,\n"
            "then each hand's handedness, presence and 21 landmarks (x, y in image pixels, z).\n"
            "A config entry with task hand_landmarks gives the models and thresholds; flags override.\n"
            "With tracking (the config's default, or --video) the images are the frames of one video:\n"
            "the palm detector only runs while fewer than num_hands hands are tracked.\n"
            "\n"
            "options:\n"
            "  --num-hands N          hands at most (1..8, default 2)\n"
            "  --min-detection X      palm score threshold (default 0.5)\n"
            "  --min-tracking X       hand presence threshold (default 0.5)\n"
            "  --video | --images     track across the images, or treat each alone\n"
            "  --device cpu|cuda      backend (default cpu); --threads N for the CPU\n"
            "\n"
            "Exit status: 0 done, 1 a model or image failed, 2 bad usage.\n");
}

static void print_json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static void print_frame(const char *path, const sh_palm *palms, int np, bool detector, const sh_hand *hands, int n)
{
    printf("{\"image\":");
    print_json_string(path);
    printf(",\"detector_ran\":%s,\"palms\":[", detector ? "true" : "false");
    for (int i = 0; i < np; i++)
        printf("%s{\"score\":%.4f,\"box\":[%.5f,%.5f,%.5f,%.5f]}", i ? "," : "", palms[i].score, palms[i].xmin,
               palms[i].ymin, palms[i].width, palms[i].height);
    printf("],\"hands\":[");
    for (int h = 0; h < n; h++) {
        printf("%s{\"handedness\":\"%s\",\"score\":%.4f,\"presence\":%.4f,\"landmarks\":[", h ? "," : "",
               sh_hand_label(hands[h].handedness), hands[h].handedness_score, hands[h].presence);
        for (int k = 0; k < SH_HAND_LANDMARKS; k++)
            printf("%s[%.2f,%.2f,%.2f]", k ? "," : "", hands[h].landmarks[k][0], hands[h].landmarks[k][1],
                   hands[h].landmarks[k][2]);
        printf("]}");
    }
    printf("]}\n");
}

typedef struct opts {
    const char *config, *model, *palm, *landmark, *device;
    int num_hands, threads, video;   /* video: -1 = as configured */
    double min_det, min_track;       /* < 0: as configured */
} opts;

static int parse(int argc, char **argv, opts *o, int *first_image)
{
    *o = (opts){.device = "cpu", .num_hands = -1, .video = -1, .min_det = -1, .min_track = -1};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(f, "--video") || !strcmp(f, "--images")) {
            o->video = f[2] == 'v';
            continue;
        }
        if (!v) {
            fprintf(stderr, "shoal hands: %s needs a value\n", f);
            return -1;
        }
        i++;
        if (!strcmp(f, "--config"))
            o->config = v;
        else if (!strcmp(f, "--model"))
            o->model = v;
        else if (!strcmp(f, "--palm"))
            o->palm = v;
        else if (!strcmp(f, "--landmark"))
            o->landmark = v;
        else if (!strcmp(f, "--device"))
            o->device = v;
        else if (!strcmp(f, "--num-hands")) {
            if (cli_int32("hands", f, v, 1, SH_HAND_MAX_HANDS, &o->num_hands))
                return -1;
        } else if (!strcmp(f, "--threads")) {
            if (cli_int32("hands", f, v, 0, 1024, &o->threads))
                return -1;
        } else if (!strcmp(f, "--min-detection")) {
            if (cli_double("hands", f, v, 0, 1, &o->min_det))
                return -1;
        } else if (!strcmp(f, "--min-tracking")) {
            if (cli_double("hands", f, v, 0, 1, &o->min_track))
                return -1;
        } else {
            fprintf(stderr, "shoal hands: unknown flag %s\n", f);
            return -1;
        }
    }
    *first_image = i;
    bool by_config = o->config || o->model, by_path = o->palm || o->landmark;
    if (i >= argc || by_config == by_path || (by_config && !(o->config && o->model)) ||
        (by_path && !(o->palm && o->landmark)) || (strcmp(o->device, "cpu") && strcmp(o->device, "cuda"))) {
        usage(stderr);
        return -1;
    }
    return 0;
}

int cmd_hands(int argc, char **argv)
{
    opts o;
    int first, rc = parse(argc, argv, &o, &first);
    if (rc)
        return rc > 0 ? 0 : 2;
    sh_allocator *a = sh_allocator_create();
    if (!a) {
        fprintf(stderr, "shoal hands: out of memory\n");
        return 1;
    }
    sh_err err = {0};
    sh_config *cfg = NULL;
    const sh_model_config *mc = NULL;
    sh_backend be = {0};
    bool have_be = false;
    sh_hand_sessions *hs = NULL;
    int status = 1;
    if (o.config) {
        if ((rc = sh_config_load_file(a, o.config, &cfg, &err)))
            goto fail;
        int mi = sh_config_find_model(cfg, o.model);
        if (mi < 0 || cfg->models[mi].task != SH_TASK_HAND_LANDMARKS || cfg->models[mi].is_palm_stage) {
            fprintf(stderr, "shoal hands: %s has no model '%s' with task hand_landmarks\n", o.config, o.model);
            goto done;
        }
        mc = &cfg->models[mi];
        o.palm = mc->palm_path;
        o.landmark = mc->path;
    }
    sh_backend_params bp = {.alloc = a, .n_threads = o.threads};
    if (cli_tuning_from_env("hands", &bp.tuning) != 0)
        goto done;
    if ((rc = strcmp(o.device, "cuda") ? sh_backend_cpu_create(&bp, &be, &err) : sh_backend_cuda_create(&bp, &be, &err)))
        goto fail;
    have_be = true;
    if ((rc = sh_hand_sessions_create(a, &be, o.palm, o.landmark, &hs, &err)))
        goto fail;
    sh_hand_params p = sh_hand_params_from_config(mc, hs);
    if (o.num_hands > 0)
        p.num_hands = o.num_hands;
    if (o.min_det >= 0)
        p.palm.min_score = (float)o.min_det;
    if (o.min_track >= 0)
        p.min_presence = (float)o.min_track;
    bool video = o.video >= 0 ? o.video == 1 : (mc ? mc->tracking : false);
    sh_hand_tracker tracker = {0};
    sh_hand_models m = sh_hand_sessions_models(hs);
    status = 0;
    for (int i = first; i < argc; i++) {
        sh_image img;
        sh_hand hands[SH_HAND_MAX_HANDS];
        sh_palm palms[SH_HAND_MAX_HANDS];
        int n = 0, np = 0;
        long before = sh_hand_sessions_runs(hs, SH_HAND_MODEL_PALM);
        if ((rc = sh_image_load_file(a, argv[i], &img, &err))) {
            fprintf(stderr, "shoal hands: %s\n", err.msg);
            status = 1;
            continue;
        }
        rc = sh_hand_landmarker_run(a, &p, &m, video ? &tracker : NULL, &img, hands, SH_HAND_MAX_HANDS, &n, palms,
                                    &np, &err);
        sh_image_free(&img);
        if (rc) {
            fprintf(stderr, "shoal hands: %s: %s\n", argv[i], err.msg);
            status = 1;
            continue;
        }
        print_frame(argv[i], palms, np, sh_hand_sessions_runs(hs, SH_HAND_MODEL_PALM) > before, hands, n);
    }
    goto done;
fail:
    fprintf(stderr, "shoal hands: %s\n", err.msg);
done:
    sh_hand_sessions_destroy(hs);
    if (have_be)
        sh_backend_destroy(&be);
    sh_config_destroy(cfg);
    sh_allocator_destroy(a);
    return status;
}
