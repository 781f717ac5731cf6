/* Task hand_landmarks inside the runtime: MediaPipe's hand landmarker (vision/hand_landmarker.h)
 * with both of its networks as runtime models.
 *
 * The config loader gives a hand_landmarks model's palm detector an entry of its own
 * ("<name>.palm", config.h palm_stage), so the palm detector and the landmark model are each
 * imported, compiled, planned, budgeted and made resident like any other model; a run holds a
 * reference on both. Their inputs are NHWC [1,S,S,3] float crops made by the landmarker, not
 * the letterboxed frame: the landmarker calls back into run_stage for each network run, which
 * feeds the crop to the model's bound program on the run's execution context.
 *
 * Video mode (shoal_video_t) keeps one sh_hand_tracker per hand model, owned by the caller. */
#ifndef SHOAL_RUNTIME_HAND_TASK_H
#define SHOAL_RUNTIME_HAND_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include "runtime/runtime-impl.h"

/* Whether m runs through the hand landmarker (the landmark model or its palm stage). */
bool sh_rt_hand_is_task(const sh_rt_model *m);

/* Import and passes of either stage (runtime.c import_model): the graph with its NHWC input
 * checked, the input and output tensors, flops. */
int sh_rt_hand_import(struct shoal_runtime *rt, sh_rt_model *m, sh_err *err);

/* Reads a stage's file again (the graph whose constants runtime.c restores): TFLite or ONNX
 * by the path, with the same passes as the import. */
int sh_rt_hand_load_graph(struct shoal_runtime *rt, const sh_rt_model *m, sh_graph **out, sh_err *err);

/* One frame through the landmarker for hand model m on ctx (its stages referenced for the
 * call), results into r. video NULL, or a model with tracking off: image mode. A palm stage
 * given as m runs alone: its palm detections on the frame (no hands). */
int sh_rt_hand_run(struct shoal_runtime *rt, sh_rt_context *ctx, sh_rt_model *m, const shoal_image *frame,
                   shoal_video_t video, sh_rt_result *r, sh_err *err);

/* How many of ids[0..n) are hand models. */
size_t sh_rt_hand_count(const struct shoal_runtime *rt, const size_t *ids, size_t n);

/* Work run beside a group of networks (run.c run_group): called once their jobs are issued on
 * their lanes and before the host waits for them, with the backend lock held, so it overlaps
 * the networks on lanes of its own. It names those lanes for the group's device span and says
 * whether it ran (a budget that cannot hold it beside the networks leaves it for later). */
typedef struct sh_rt_beside {
    int (*run)(struct sh_rt_beside *b, sh_err *err);
    int lanes[SH_MAX_LANES];
    int n_lanes;
    bool ran;
} sh_rt_beside;

/* A mode with hand models: its other models through run_models (run.c: at once on a
 * concurrent runtime, else in turn). On a concurrent runtime the hand models run beside the
 * networks' group; otherwise, or where the budget cannot hold them beside it, after it, their
 * stages in turn on their lanes. res->items keep the mode's order. */
typedef int (*sh_rt_models_fn)(struct shoal_runtime *rt, sh_rt_context *ctx, const size_t *ids, size_t n,
                               const shoal_image *frame, shoal_results_t res, sh_rt_beside *beside, sh_err *err);
int sh_rt_hand_run_mixed(struct shoal_runtime *rt, sh_rt_context *ctx, const size_t *ids, size_t n,
                         const shoal_image *frame, shoal_video_t video, shoal_results_t res,
                         sh_rt_models_fn run_models, sh_err *err);

/* results.c: a hand result's "hands" JSON array, and its drawing. */
struct cJSON;
void sh_rt_hand_json(struct cJSON *model, const sh_rt_result *r);
void sh_rt_hand_draw(sh_image *img, const sh_rt_result *r);

#endif
