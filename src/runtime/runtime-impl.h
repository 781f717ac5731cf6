/* Private structures of the runtime (src/runtime/runtime*.c). */
#ifndef SHOAL_RUNTIME_IMPL_H
#define SHOAL_RUNTIME_IMPL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"
#include "import/onnx_import.h"
#include "memory/budget.h"
#include "memory/residency.h"
#include "memory/weights.h"
#include "plan/plan.h"
#include "runtime/config.h"
#include "shoal.h"
#include "vision/decode.h"
#include "vision/hand_landmarker.h"
#include "vision/preprocess.h"

#define SH_RT_MAX_OUTPUTS 4
/* The graph outputs a run reads back (graph/frame_ops.h): the transform, detections (4) and
 * masks (2), or the transform and the network's own outputs. */
#define SH_RT_MAX_RESULTS (1 + SH_RT_MAX_OUTPUTS + 2)
#define SH_RT_LATENCY_RING 512
#define SH_RT_ERR_SLOTS 256

/* One configured model: its compiled form stays on the host for the runtime's life (plans are
 * needed to admit it); its weights come and go with residency. Its graph is the network
 * extended with the frame ops (graph/frame_ops.h): a run feeds the frame's bytes and size and
 * reads back only the graph's outputs, the results. */
typedef struct sh_rt_model {
    int id;
    sh_model_config *cfg;
    sh_graph *graph;
    sh_model_meta *meta;                /* the file's metadata (cfg->classes may point into it) */
    sh_program *prog;
    sh_plan *plan;
    int frame_in, size_in;              /* the graph's inputs: frame bytes (u8), frame size (i32 [2]) */
    int rect_in;                        /* a hand stage's crop rect (f32, sh_hand_crop_words), else -1 */
    int in_w, in_h;                     /* the network's input size */
    /* the network's own outputs where the host reads them (classify, end2end, no decoder);
     * n_outputs = 0 where the frame ops decode */
    int n_outputs;
    int outputs[SH_RT_MAX_OUTPUTS];
    /* the graph's outputs in graph order (results[0]: the frame transform), each at
     * result_off[i] of the model's output staging; mask_bits: the index among them of the
     * mask pool (read back only as far as the detections' masks go), or -1 */
    int n_results;
    int results[SH_RT_MAX_RESULTS];
    size_t result_off[SH_RT_MAX_RESULTS];
    int mask_bits;
    size_t mask_pool;                   /* bytes of the mask pool (vision/frame.h) */
    void **weight_ptrs;                 /* [n_tensors], valid while resident */
    void ***tensor_ptrs;                /* [contexts][n_tensors] */
    void ***ws_ptrs;                    /* [contexts][n_nodes] */
    unsigned long binding[8];           /* per context; changes whenever pointers do */
    /* concurrent runs (rt->concurrent; lanes.h): where its activations start in each arena,
     * its input and outputs in each context's staging, and the backend lane it runs on */
    size_t arena_off, in_off, out_off;
    int lane;
    double flops;                       /* graph/flops.h: a mode issues its heaviest model first */
    bool bound;
    bool consts_dropped;                /* graph weight data freed: packed copies are the only ones */
    /* measurements (under rt->stats_lock) */
    uint64_t runs;
    double lat_ms[SH_RT_LATENCY_RING];
    int lat_count;
    double lat_last_ms;
    double parse_ms, optimize_ms, compile_ms, plan_ms, pack_ms;   /* create's phases (bench_hooks.h) */
    /* weight bytes each load put on the device (under rt->stats_lock); a reload is a load
     * after the first, i.e. of weights evicted before */
    uint64_t n_loads;
    uint64_t load_bytes_total, reload_bytes_total;
    double resident_since;              /* sh_rt_now() of the last load; -1 when not resident */
} sh_rt_model;

/* Per mode: how often it was switched to and what the switches reloaded (under stats_lock). */
typedef struct sh_rt_mode_stats {
    uint64_t runs, switches, reloading_switches;
    uint64_t switch_reload_bytes;
} sh_rt_mode_stats;

/* An execution context: one activation arena shared by every model it runs in turn, and the
 * host staging of the frame's size and of the results read back. */
typedef struct sh_rt_context {
    int index;
    void *arena;
    size_t arena_bytes;
    void *input_host;                   /* each model's frame size before upload */
    void *output_host;                  /* each model's results after download */
    bool staging_pinned;                /* from the backend's host_alloc (concurrent runs) */
    bool busy;
} sh_rt_context;

typedef struct sh_rt_err_slot {
    pthread_t thread;
    bool used;
    char msg[SH_ERR_MSG_MAX];
} sh_rt_err_slot;

struct shoal_runtime {
    sh_allocator *alloc;
    bool owns_alloc;                    /* false when a test or tool lent its allocator */
    sh_config *cfg;
    shoal_log_fn log;
    void *log_user;
    shoal_tuning tuning;                /* A/B switches of the params, fixed at create */
    sh_backend backend;
    bool host_cache_on;
    bool host_cache_unlimited;
    sh_budget *budget;
    sh_weight_store *weights;
    sh_residency *residency;
    int n_models;
    sh_rt_model *models;
    int n_contexts;
    sh_rt_context *contexts;
    size_t arena_bytes;                 /* per context: the largest plan, or concurrent placement */
    size_t plan_max_bytes;              /* the largest plan (the arena when models run in turn) */
    size_t max_input_bytes, max_output_bytes;   /* staging per context */
    int max_frame_pixels;               /* inference.max_frame_pixels, resolved */
    /* A mode's models run at once, one backend lane each, in disjoint arena ranges (lanes.h);
     * else in turn, each at the arena's start. Fixed at create. */
    bool concurrent;
    unsigned long next_binding;
    pthread_mutex_t ctx_lock;
    /* Backend runs are serialized: the CPU backend's thread pool already uses every core for
     * one run, and the CUDA backend issues to one stream. Contexts still overlap everything
     * else (decode, preprocess, NMS) and keep separate arenas. */
    pthread_mutex_t backend_lock;
    pthread_cond_t ctx_free;
    pthread_mutex_t stats_lock;
    pthread_mutex_t err_lock;
    sh_rt_err_slot errs[SH_RT_ERR_SLOTS];
    int err_next;
    double t0;                          /* monotonic origin, seconds */
    double create_ms;
    /* background monitor */
    bool monitor_running, monitor_stop;
    pthread_t monitor;
    pthread_mutex_t monitor_lock;
    pthread_cond_t monitor_wake;
    uint64_t cleanups;
    /* report evidence (under stats_lock) */
    int last_mode;                      /* index of the mode run last; -1 none */
    sh_rt_mode_stats *mode_stats;       /* [cfg->n_modes] */
};

/* Per model result, public view plus what drawing needs. */
typedef struct sh_rt_result {
    shoal_model_result pub;
    sh_detections *dets;
    shoal_detection *items;
    char **rles;
    bool has_hand;
    sh_hand_landmarks hand;
    float landmarks[3 * SH_HAND_POINTS];
    shoal_hand hands[SH_HAND_MAX_HANDS];   /* task hand_landmarks (hand_task.c) */
    double device_ms;                      /* hand_landmarks on lanes: both stages' device time */
    const sh_model_config *cfg;
} sh_rt_result;

struct shoal_results {
    sh_allocator *alloc;
    int n;
    sh_rt_result *items;
    double total_ms;
    double infer_ms;                    /* shoal_results_infer_ms */
    double device_ms;                   /* shoal_results_device_ms */
    bool concurrent;
    char mode[64];
};

double sh_rt_now(const struct shoal_runtime *rt);
int sh_rt_fail(struct shoal_runtime *rt, const sh_err *err);
/* Records `fmt` as this thread's shoal_last_error() and returns status: the failures of calls
 * that have no runtime to keep them (a NULL handle, create, images, results). */
int sh_api_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sh_rt_logf(struct shoal_runtime *rt, shoal_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Bytes of a model's staged inputs in a context's input staging (at in_off): its frame size,
 * 64-aligned, then a hand stage's crop rect. */
size_t sh_rt_staged_input_bytes(const sh_rt_model *m);
/* results.c: the detections a model's staged results hold (its detection count, checked), and
 * its shoal result from them once they have landed: sh_rt_result_read all but the masks, then
 * each of the sh_rt_result_masks detections' mask by sh_rt_result_mask, at the same time for
 * distinct detections. */
int sh_rt_result_count(const sh_rt_model *m, const char *staging, size_t *n, sh_err *err);
int sh_rt_result_read(struct shoal_runtime *rt, const sh_rt_model *m, const char *staging, sh_rt_result *r,
                      sh_err *err);
size_t sh_rt_result_masks(const sh_rt_model *m, const sh_rt_result *r);
int sh_rt_result_mask(struct shoal_runtime *rt, const sh_rt_model *m, const char *staging, sh_rt_result *r, size_t i,
                      sh_err *err);
void sh_rt_result_free(sh_allocator *a, sh_rt_result *r);
/* task classify (classify.c): the output's shape, checked at create; its top_k into r->dets. */
int sh_rt_classify_check(const sh_rt_model *m, sh_err *err);
int sh_rt_classify(struct shoal_runtime *rt, const sh_rt_model *m, const float *out, const sh_transform *xf,
                   sh_rt_result *r, sh_err *err);
int sh_rt_monitor_start(struct shoal_runtime *rt, sh_err *err);
void sh_rt_monitor_stop(struct shoal_runtime *rt);
int sh_rt_cleanup(struct shoal_runtime *rt, double target_fraction);
/* Device memory in bytes (the backend's, or the host's on CPU): what percentages refer to. */
uint64_t sh_rt_device_total_bytes(struct shoal_runtime *rt);

#endif
