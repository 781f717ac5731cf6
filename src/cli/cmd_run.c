/* shoal run: models of a config (or one ONNX model) on image files. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/progress.h"
#include "cli/tuning_env.h"
#include "core/utf8.h"
#include "runtime/introspect.h"
#include "shoal.h"
#include "vision/draw.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal run [--config FILE] [--mode NAME|all] [--model FILE.onnx [--decoder yolov8|yolov8-seg|yolox|landmarks|end2end]]\n"
            "                 [--score T] [--device cpu|cuda|auto] [--threads N] [--draw OUT.png] [--json] IMAGE...\n"
            "\n"
            "Runs the models of a mode (default: the config's default_mode, else every mode; --mode all\n"
            "runs every mode) of the config on each image and prints\n"
            "detections (class, score, box in image pixels), mask areas and landmarks, with the time\n"
            "per model and per mode and the memory each model holds. --model runs one ONNX file\n"
            "instead of a config; without --decoder, the model's metadata (ultralytics exports: task,\n"
            "imgsz, names) and its output shape pick the decoder, input size and class names.\n"
            "--draw writes an annotated PNG (with several images or modes, the image and mode are\n"
            "added to the name). --score (0..1) is the score threshold of --model; a config sets each\n"
            "model's score_threshold instead.\n"
            "The images are one video in the order given: a hand_landmarks model (MediaPipe's hand\n"
            "landmarker) with `tracking: true` starts each image from the previous one's hands and\n"
            "runs its palm detector only when it tracks fewer than num_hands.\n"
            "--threads N: CPU threads, 0..1024 (0 = the config's, else one per core).\n");
}

typedef struct run_opts {
    const char *config, *mode, *model, *decoder, *device, *draw;
    double score;
    bool score_given;
    int threads;
    int json;
} run_opts;

static char *adhoc_config(const run_opts *o)
{
    /* Without --decoder, task, decoder, input size and class names come from the model's
     * metadata (ultralytics exports) or its output shape; the lines below stay empty. */
    const char *d = o->decoder ? o->decoder : "";
    const char *task = !strcmp(d, "yolox") ? "yolox" : !strcmp(d, "yolov8-seg") ? "segment"
                       : !strcmp(d, "landmarks") ? "landmarks" : "detect";
    int yolox = !strcmp(d, "yolox");
    char task_lines[128] = "";
    if (o->decoder)
        snprintf(task_lines, sizeof task_lines, "    task: %s\n    decoder: %s\n", task, d);
    size_t cap = strlen(o->model) + 4096;
    char *y = malloc(cap);
    if (!y)
        return NULL;
    snprintf(y, cap,
             "models:\n"
             "  model:\n"
             "    path: \"%s\"\n"
             "%s"
             "    letterbox: %s\n"
             "    color: %s\n"
             "    scale: %s\n"
             "    score_threshold: %g\n"
             "    agnostic_nms: %s\n"
             "    preload: true\n"
             "modes:\n"
             "  model: [model]\n"
             "inference:\n"
             "  device: %s\n",
             o->model, task_lines, yolox ? "top_left" : "center", yolox ? "bgr" : "rgb", yolox ? "1.0" : "0.00392156862745098",
             o->score_given ? o->score : (yolox ? 0.3 : 0.25), yolox ? "true" : "false", o->device ? o->device : "auto");
    if (o->threads > 0) {
        size_t n = strlen(y);
        snprintf(y + n, cap - n, "  threads: %d\n", o->threads);
    }
    if (yolox) {   /* YOLOX exports are COCO detectors: name the classes */
        char *models_end = strstr(y, "modes:\n");
        size_t tail_len = strlen(models_end);
        char names[2048] = "    classes: [";
        for (int i = 0; i < 80; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "", sh_coco80_names[i]);
        snprintf(names + strlen(names), sizeof names - strlen(names), "]\n");
        memmove(models_end + strlen(names), models_end, tail_len + 1);
        memcpy(models_end, names, strlen(names));
    }
    return y;
}

static void print_result(const shoal_model_result *r)
{
    printf("  %-14s %-9s %7.1f ms (inference %.1f ms)", r->model, r->task, r->latency_ms, r->infer_ms);
    if (!strcmp(r->task, "hand_landmarks")) {
        printf("  %d hand%s, %d palm detection%s\n", r->n_hands, r->n_hands == 1 ? "" : "s", r->n_detections,
               r->n_detections == 1 ? "" : "s");
        for (int k = 0; k < r->n_hands; k++) {
            const shoal_hand *h = &r->hands[k];
            printf("    %-5s %.2f  presence %.2f  wrist (%.0f, %.0f)%s\n", h->handedness_label, h->handedness_score,
                   h->presence, h->landmarks[0][0], h->landmarks[0][1], h->tracked ? "  tracked" : "");
        }
        return;
    }
    if (r->n_landmarks) {
        printf("  hand presence %.2f handedness %.2f, wrist (%.0f, %.0f)\n", r->presence, r->handedness, r->landmarks[0],
               r->landmarks[1]);
        return;
    }
    if (!strcmp(r->task, "classify")) {   /* the top classes; their box is the whole picture */
        printf("  top %d class%s\n", r->n_detections, r->n_detections == 1 ? "" : "es");
        for (int k = 0; k < r->n_detections; k++)
            printf("    %-16s %.3f\n", r->detections[k].class_name && *r->detections[k].class_name
                                          ? r->detections[k].class_name : "?", r->detections[k].score);
        return;
    }
    printf("  %d detection%s\n", r->n_detections, r->n_detections == 1 ? "" : "s");
    for (int k = 0; k < r->n_detections && k < 20; k++) {
        const shoal_detection *d = &r->detections[k];
        printf("    %-16s %.2f  [%6.1f %6.1f %6.1f %6.1f]", d->class_name && *d->class_name ? d->class_name : "?",
               d->score, d->x1, d->y1, d->x2, d->y2);
        if (d->mask_rle)
            printf("  mask %lld px", (long long)d->mask_area);
        printf("\n");
    }
    if (r->n_detections > 20)
        printf("    ... %d more\n", r->n_detections - 20);
}

static void draw_name(char *buf, size_t cap, const char *draw, const char *mode, int image_i, int many)
{
    if (!many) {
        snprintf(buf, cap, "%s", draw);
        return;
    }
    const char *dot = strrchr(draw, '.');
    int stem = dot ? (int)(dot - draw) : (int)strlen(draw);
    snprintf(buf, cap, "%.*s-%s-%d%s", stem, draw, mode, image_i, dot ? dot : ".png");
}

static void print_memory(shoal_runtime_t rt)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return;
    printf("\nmemory (%s): %.1f MB in use (peak %.1f MB, budget %s)\n", st.devices[0].name,
           st.devices[0].in_use_bytes / 1e6, st.devices[0].peak_bytes / 1e6,
           st.devices[0].budget_bytes ? "set" : "unlimited");
    printf("  %-14s %-9s %10s %10s %10s %10s\n", "model", "state", "weights MB", "shared MB", "plan MB", "p50 ms");
    for (int i = 0; i < st.n_models; i++) {
        const shoal_model_stats *m = &st.models[i];
        printf("  %-14s %-9s %10.2f %10.2f %10.2f %10.1f\n", m->name,
               m->state == SHOAL_MODEL_RESIDENT ? "resident" : m->state == SHOAL_MODEL_CACHED ? "cached" : "unloaded",
               m->weight_bytes / 1e6, m->weight_shared_bytes / 1e6, m->plan_bytes / 1e6, m->latency_ms_p50);
    }
    printf("  shared activation arena %.2f MB; identical tensors stored once saved %.2f MB\n",
           st.devices[0].arena_bytes / 1e6, st.dedup_saved_bytes / 1e6);
    shoal_stats_free(&st);
}

static int parse(int argc, char **argv, run_opts *o, int *first_image)
{
    memset(o, 0, sizeof *o);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "shoal run: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "--config")) o->config = v;
        else if (!strcmp(a, "--mode")) o->mode = v;
        else if (!strcmp(a, "--model")) o->model = v;
        else if (!strcmp(a, "--decoder")) o->decoder = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--draw")) o->draw = v;
        else if (!strcmp(a, "--threads")) {
            if (cli_int32("run", a, v, 0, 1024, &o->threads))
                return 2;
        } else if (!strcmp(a, "--score")) {
            if (cli_double("run", a, v, 0.0, 1.0, &o->score))
                return 2;
            o->score_given = true;
        } else {
            fprintf(stderr, "shoal run: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    *first_image = i;
    if (i >= argc) {
        fprintf(stderr, "shoal run: no image given\n");
        usage(stderr);
        return 2;
    }
    if (o->model && o->config) {
        fprintf(stderr, "shoal run: give --config or --model, not both\n");
        return 2;
    }
    /* A config gives each model its own score_threshold; one flag over all of them would
     * silently change models the user did not look at, so it belongs to --model alone. */
    if (o->score_given && !o->model) {
        fprintf(stderr, "shoal run: --score applies to --model only; with a config, set each model's "
                        "score_threshold in the config\n");
        return 2;
    }
    if (o->decoder && strcmp(o->decoder, "yolov8") && strcmp(o->decoder, "yolov8-seg") && strcmp(o->decoder, "yolox") &&
        strcmp(o->decoder, "landmarks") && strcmp(o->decoder, "end2end")) {
        fprintf(stderr, "shoal run: unknown decoder '%s' (yolov8, yolov8-seg, yolox, landmarks, end2end)\n", o->decoder);
        return 2;
    }
    if (!o->model && !o->config)
        o->config = "configs/aiglasses.yaml";
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_opts o;
    int first;
    int rc = parse(argc, argv, &o, &first);
    if (rc)
        return rc;
    char err[1024] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    if (cli_runtime_tuning("run", &p) != 0)
        return 2;
    char *yaml = NULL;
    if (o.model) {
        yaml = adhoc_config(&o);
        p.config_yaml = yaml;
    } else {
        p.config_path = o.config;
    }
    p.device = o.device;
    p.threads = o.threads;
    p.error = err;
    p.error_cap = sizeof err;
    shoal_runtime_t rt;
    cli_progress progress;
    cli_progress_start(&progress, stderr, "loading models", 1.0, cli_progress_wanted(STDERR_FILENO, o.json));
    p.log = cli_progress_log;
    p.log_user = &progress;
    rc = shoal_runtime_create(&p, &rt);
    cli_progress_stop(&progress);
    free(yaml);
    if (rc) {
        fprintf(stderr, "shoal run: %s\n", err);
        return 1;
    }
    const char *modes[64];
    int n_modes = 0;
    const sh_config *cfg = sh_runtime_config(rt);
    if (!o.mode && cfg->default_mode >= 0) {
        modes[n_modes++] = cfg->modes[cfg->default_mode].name;
    } else if (!o.mode || !strcmp(o.mode, "all")) {
        for (int k = 0; k < shoal_runtime_mode_count(rt) && n_modes < 64; k++)
            modes[n_modes++] = shoal_runtime_mode_name(rt, k);
    } else {
        modes[n_modes++] = o.mode;
    }
    int n_images = argc - first, failures = 0;
    /* the images are one video (in the order given): a hand model with tracking on starts
     * each image from the last one's hands */
    shoal_video_t video = shoal_video_create();
    for (int i = first; i < argc; i++) {
        shoal_image img;
        if (shoal_image_load(argv[i], &img, err, sizeof err) != SHOAL_OK) {
            fprintf(stderr, "shoal run: %s\n", err);
            failures++;
            continue;
        }
        if (!o.json)
            printf("%s (%dx%d)\n", argv[i], img.width, img.height);
        for (int k = 0; k < n_modes; k++) {
            shoal_results_t res;
            if (shoal_runtime_run_mode_video(rt, modes[k], &img, video, &res) != SHOAL_OK) {
                fprintf(stderr, "shoal run: %s: mode %s: %s\n", argv[i], modes[k], shoal_runtime_last_error(rt));
                failures++;
                continue;
            }
            if (o.json) {
                char *j = shoal_results_to_json(res), name_buf[4096];
                cJSON *name = cJSON_CreateString(sh_utf8_clean(argv[i], name_buf, sizeof name_buf));
                char *name_json = name ? cJSON_PrintUnformatted(name) : NULL;
                if (j && name_json) {
                    printf("{\"image\":%s,\"results\":%s}\n", name_json, j);
                } else {
                    fprintf(stderr, "shoal run: %s: out of memory for the JSON results\n", argv[i]);
                    failures++;
                }
                cJSON_free(name_json);
                cJSON_Delete(name);
                shoal_free_string(j);
            } else {
                printf(" mode %s: %.1f ms\n", modes[k], shoal_results_total_ms(res));
                for (int m = 0; m < shoal_results_count(res); m++)
                    print_result(shoal_results_get(res, m));
            }
            if (o.draw) {
                char path[1024];
                draw_name(path, sizeof path, o.draw, modes[k], i - first, n_images > 1 || n_modes > 1);
                if (shoal_results_draw(res, &img, path) != SHOAL_OK) {
                    fprintf(stderr, "shoal run: could not write %s\n", path);
                    failures++;
                } else if (!o.json) {
                    printf(" drawn: %s\n", path);
                }
            }
            shoal_results_destroy(res);
        }
        shoal_image_free(&img);
    }
    if (!o.json)
        print_memory(rt);
    shoal_video_destroy(video);
    shoal_runtime_destroy(rt);
    return failures ? 1 : 0;
}
