/* The YAML config of a shoal runtime: models, modes, memory, inference, hardware tiers,
 * server and monitor settings. Shaped like the original system's config (../shared/ORIGINAL.md).
 *
 *   sh_config *cfg;  sh_err err;
 *   if (sh_config_load_file(alloc, "configs/aiglasses.yaml", &cfg, &err) != 0)
 *       fprintf(stderr, "%s\n", err.msg);   // "configs/aiglasses.yaml:12:5: models.obstacle...."
 *   sh_config_pick_tier(cfg, device_total_bytes, &err);   // applies the tier's overrides
 *   ...
 *   sh_config_destroy(cfg);
 *
 * Validation is strict: unknown keys, duplicate keys, bad values, missing required fields and
 * modes naming unknown models are errors whose message starts with "FILE:LINE:COLUMN: key.path: ".
 * Relative paths (model path, classes_file, token_file, report_path) are resolved against the
 * config file's folder, so a config works from any working directory.
 *
 * Byte sizes accept an integer (bytes) or a string: "512MB", "1.5GiB", "64 KiB", "60%" where
 * a share is allowed. K/M/G/T with or without B/iB are all binary (1024-based): GPU memory is
 * sold in binary units (an "8 GB" card has 8 GiB), so "6GB" in a tier means what its
 * owner reads on the box. Every allocation goes through the allocator passed to the loader;
 * libyaml's own short-lived parse buffers are the one exception (libyaml takes no allocator).
 */
#ifndef SHOAL_RUNTIME_CONFIG_H
#define SHOAL_RUNTIME_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"

/* inference.mask_pool_frames: at most this many frames; with max_detections or more a pool
 * holds every mask of any frame */
#define SH_CONFIG_MAX_MASK_POOL_FRAMES 65535
/* inference.max_frame_pixels default: a 1920x1080 camera frame */
#define SH_CONFIG_MAX_FRAME_PIXELS (1920 * 1080)
/* inference.streams: the most streams a program runs on (the CUDA backend's SH_CUDA_STREAMS) */
#define SH_CONFIG_MAX_STREAMS 4

typedef enum sh_task {
    SH_TASK_DETECT = 0, SH_TASK_SEGMENT, SH_TASK_LANDMARKS, SH_TASK_CLASSIFY, SH_TASK_YOLOX,
    SH_TASK_HAND_LANDMARKS       /* MediaPipe's two-model hand landmarker (vision/hand_landmarker.h) */
} sh_task;
typedef enum sh_letterbox { SH_LETTERBOX_CENTER = 0, SH_LETTERBOX_TOP_LEFT, SH_LETTERBOX_STRETCH } sh_letterbox;
typedef enum sh_color { SH_COLOR_RGB = 0, SH_COLOR_BGR } sh_color;
typedef enum sh_decoder {
    SH_DECODER_YOLOV8 = 0, SH_DECODER_YOLOV8_SEG, SH_DECODER_YOLOX, SH_DECODER_LANDMARKS,
    SH_DECODER_NONE,             /* no post-processing: the model runs, its result has nothing */
    SH_DECODER_CLASSIFY,         /* top_k classes as probabilities (src/vision/classify.h) */
    SH_DECODER_END2END   /* NMS-free heads (YOLOv10, end-to-end exports): [1, max_det, 6] x1 y1 x2 y2 score
                            class; task segment: [1, max_det, 6 + nm] and prototypes */
} sh_decoder;
/* How a classifier's output reads: auto = probabilities when the graph's output comes
 * straight out of a Softmax, logits (a softmax is applied) otherwise. */
typedef enum sh_class_output {
    SH_CLASS_OUTPUT_AUTO = 0, SH_CLASS_OUTPUT_LOGITS, SH_CLASS_OUTPUT_PROBABILITIES
} sh_class_output;
typedef enum sh_precision { SH_PRECISION_AUTO = 0, SH_PRECISION_FP32, SH_PRECISION_FP16 } sh_precision;
typedef enum sh_device_kind { SH_DEVICE_AUTO = 0, SH_DEVICE_CPU, SH_DEVICE_CUDA } sh_device_kind;
/* inference.concurrent_models: auto = on where the backend can and the budget holds the
 * larger arena (src/runtime/runtime.c pick_concurrency). */
typedef enum sh_concurrency { SH_CONCURRENT_AUTO = 0, SH_CONCURRENT_ON, SH_CONCURRENT_OFF } sh_concurrency;
typedef enum sh_tier { SH_TIER_AUTO = 0, SH_TIER_LOW, SH_TIER_MID, SH_TIER_HIGH, SH_TIER_COUNT } sh_tier;

/* A byte size as written in the config. */
typedef enum sh_size_kind {
    SH_SIZE_UNSET = 0,   /* not given: the consumer's default */
    SH_SIZE_BYTES,       /* `bytes` */
    SH_SIZE_PERCENT,     /* `percent` (0, 100] of the device's (or host's) total */
    SH_SIZE_AUTO         /* `true` where a bool is allowed (host_cache: true): the runtime decides */
} sh_size_kind;

typedef struct sh_config_size {
    sh_size_kind kind;
    uint64_t bytes;
    double percent;
} sh_config_size;

typedef struct sh_model_config {
    char *name;
    char *path;                  /* required; resolved against the config's folder */
    sh_task task;                /* default: the model's metadata 'task', else detect */
    int input_w, input_h;        /* default: a static model's own input size, else the metadata's
                                    imgsz, else 640x640; `input_size: 320` means 320x320 */
    sh_letterbox letterbox;      /* default center */
    sh_color color;              /* default rgb */
    float scale;                 /* pixel scale before mean/std, default 1/255 */
    float mean[3], std[3];       /* default 0 and 1 */
    char **classes;              /* n_classes names, or NULL */
    size_t n_classes;
    char *classes_file;          /* resolved path, or NULL; read with sh_config_read_classes */
    sh_decoder decoder;          /* default from task: detect->yolov8 (end2end when the output is
                                    [1, N, 6]), segment->yolov8-seg, yolox->yolox,
                                    landmarks->landmarks, classify->classify */
    float score_threshold;       /* default 0.25; classify: 0 (every one of the top_k) */
    float iou_threshold;         /* default 0.45 */
    int max_detections;          /* default 300 */
    bool agnostic_nms;           /* default false */
    int priority;                /* higher is evicted later; default 0 */
    bool preload;                /* default false; `on_demand: true` is `preload: false` */
    bool pinned;                 /* never evicted; default false */
    int top_k;                   /* decoder classify only: classes reported, default 5 */
    sh_class_output scores;      /* decoder classify only: default auto */
    sh_precision precision;      /* default auto: the device's (inference.fp16 may ask for fp32);
                                    a precision the device does not compute in is refused by
                                    sh_config_check_precision */
    /* task hand_landmarks only: `path` is the landmark model, `palm_model` the palm detector
     * (.tflite, or bundle.task#member); thresholds as MediaPipe names them */
    char *palm_path;             /* required for hand_landmarks; resolved */
    int num_hands;               /* default 2 (1..8) */
    float min_detection_confidence;   /* palm score threshold, default 0.5 */
    float min_tracking_confidence;    /* hand presence threshold, default 0.5 */
    bool tracking;               /* video mode: later frames start from the last landmarks; default true */
    /* The palm detector of a hand_landmarks model is an entry of its own, added after the
     * file's models by the loader ("<name>.palm", no key of its own in the file), so the
     * runtime plans, budgets and keeps it resident like any model; its preload, pinned and
     * priority follow its owner's. */
    size_t palm_stage;           /* hand_landmarks: index of that entry (0: none) */
    bool is_palm_stage;          /* this entry is models[stage_owner]'s palm detector */
    size_t stage_owner;
    int line;                    /* 1-based line of the model's key, for later messages */
    bool preload_base;           /* preload as written, before a tier override */
    /* Which defaults the config wrote itself; the rest come from the model's metadata when it
     * is loaded (runtime/model_meta.c), and a written value a static model contradicts is an
     * error there. */
    bool task_given, decoder_given, input_size_given;
} sh_model_config;

typedef struct sh_mode_config {
    char *name;
    size_t *models;              /* indices into sh_config.models, in run order */
    size_t n_models;
    int line;
} sh_mode_config;

typedef struct sh_memory_config {
    sh_config_size budget;       /* bytes or percent; unset = the device's memory */
    int idle_unload_s;           /* 0 = never; default 300 */
    double cleanup_threshold;    /* share of the budget that triggers cleanup; default 0.8 */
    sh_config_size host_cache;   /* bytes, false (= 0 bytes), true (= auto); default unset */
    int arena_contexts;          /* execution contexts with their own arena; default 1 */
} sh_memory_config;

typedef struct sh_inference_config {
    bool fp16;                   /* with fp16_set: true = fp16 where the device computes in it
                                    (CUDA; the CPU computes in fp32), false = fp32 everywhere */
    bool fp16_set;               /* the config or the applied tier gave fp16 */
    int streams;                 /* CUDA streams per program, 1..SH_CONFIG_MAX_STREAMS; 0 (default) =
                                    the backend's choice (shoal_tuning.cuda_streams overrides) */
    bool cuda_graphs;            /* default false */
    int threads;                 /* CPU threads; 0 = one per core (default) */
    sh_device_kind device;       /* default auto */
    sh_concurrency concurrent_models;   /* a mode's models at once, one lane each; default auto */
    int max_frame_pixels;        /* the largest frame a run accepts, in pixels: sizes the frame input
                                    and the mask outputs of every model's graph; 0 (default) =
                                    SH_CONFIG_MAX_FRAME_PIXELS */
    int mask_pool_frames;        /* segmentation models' packed masks share a pool of this many
                                    frames' worth (of max_frame_pixels each; masks past it are left
                                    out and counted); 0 (default) = a quarter of each model's
                                    max_detections (graph/frame_ops.h) */
} sh_inference_config;

/* One hardware tier's overrides; a has_* flag says the tier sets that field. */
typedef struct sh_tier_config {
    bool has_max_memory, has_fp16, has_idle_unload_s, has_host_cache, has_preload,
         has_budget, has_cleanup_threshold, has_streams;
    uint64_t max_memory;         /* auto picks the first tier (low, mid, high) with total <= this */
    bool fp16;
    int idle_unload_s;
    sh_config_size host_cache;
    bool preload_all;            /* `preload: all` (or true) */
    size_t *preload;             /* model indices, when !preload_all; `preload: []` or false = none */
    size_t n_preload;
    sh_config_size budget;
    double cleanup_threshold;
    int streams;
} sh_tier_config;

typedef struct sh_hardware_config {
    sh_tier tier;                /* as written: auto (default), low, mid or high */
    sh_tier_config tiers[SH_TIER_COUNT];   /* [SH_TIER_LOW..HIGH]; built-in defaults merged
                                              field by field under the config's */
    sh_tier picked;              /* SH_TIER_AUTO until sh_config_pick_tier applied one */
} sh_hardware_config;

typedef struct sh_server_config {
    char *listen;                /* default "127.0.0.1:8080" */
    int workers;                 /* default 2 */
    int queue;                   /* default 16 */
    int timeout_ms;              /* default 5000 */
    uint64_t max_body_bytes;     /* default 16 MiB */
    char *token_file;            /* resolved path or NULL */
} sh_server_config;

typedef struct sh_monitor_config {
    double interval_s;           /* default 5 */
    char *report_path;           /* resolved path or NULL */
} sh_monitor_config;

typedef struct sh_config {
    char *source;                /* the file path (or name) used in messages */
    char *base_dir;              /* folder relative paths were resolved against, or NULL */
    sh_model_config *models;     /* in file order */
    size_t n_models;
    sh_mode_config *modes;       /* in file order */
    size_t n_modes;
    int default_mode;            /* index into modes, -1 if the config names none */
    sh_memory_config memory;
    sh_inference_config inference;
    sh_hardware_config hardware;
    sh_server_config server;
    sh_monitor_config monitor;

    /* private: what a tier may override, as written, so picking twice starts from the file */
    struct {
        sh_memory_config memory;
        sh_inference_config inference;
    } base_;
    sh_allocator *alloc_;
    void *chunks_;
} sh_config;

/* Parses the file at `path`. On success *out owns everything and is freed with
 * sh_config_destroy; on failure *out is NULL, nothing is leaked and err holds
 * "path:line:col: key.path: what is wrong" (SHOAL_ERR_PARSE), an I/O message
 * (SHOAL_ERR_IO) or SHOAL_ERR_NO_MEMORY. */
int sh_config_load_file(sh_allocator *a, const char *path, sh_config **out, sh_err *err);

/* Same from text of `len` bytes. `source` names it in messages (NULL = "<string>");
 * relative paths are resolved against `base_dir` (NULL: kept as written). */
int sh_config_load_string(sh_allocator *a, const char *text, size_t len, const char *source,
                          const char *base_dir, sh_config **out, sh_err *err);

/* Accepts NULL. */
void sh_config_destroy(sh_config *cfg);

/* Applies a hardware tier: the configured one, or with `tier: auto` the first of low, mid,
 * high whose max_memory admits `device_total_bytes` (0 = unknown: auto then applies none).
 * Starts from the values as written each time, so it may be called again. Returns the tier
 * applied (SH_TIER_AUTO = none). */
sh_tier sh_config_pick_tier(sh_config *cfg, uint64_t device_total_bytes);

/* Index of the model or mode called `name`, or -1. */
int sh_config_find_model(const sh_config *cfg, const char *name);
int sh_config_find_mode(const sh_config *cfg, const char *name);

/* Bytes a size stands for given the device's total: BYTES as is, PERCENT of total, UNSET
 * and AUTO give `dflt`. */
uint64_t sh_config_size_bytes(const sh_config_size *s, uint64_t total, uint64_t dflt);

/* Parses "512MB", "1.5GiB", "4096", "60%" (when allow_percent). Returns 0, or -1 with a
 * reason in why[why_len] (overflow, unknown unit, ...). */
int sh_config_parse_size(const char *s, bool allow_percent, sh_config_size *out,
                         char *why, size_t why_len);

/* Fills model->classes from model->classes_file (one name per line, blank lines skipped)
 * when the model has a classes_file and no classes yet; the names belong to cfg. */
int sh_config_read_classes(sh_config *cfg, sh_model_config *model, sh_err *err);

/* Whether every model can run in the precision the config asks of it on a device that
 * computes in `device_precision` (SH_PRECISION_FP32 or _FP16; the backends offer no choice:
 * the CPU computes in fp32, CUDA in fp16). A model's explicit `precision` must be the
 * device's; `inference.fp16: false` (as written or from the applied tier) asks for fp32 and
 * is refused on an fp16 device. Returns 0, or SHOAL_ERR_UNSUPPORTED naming the model or key,
 * the config and the device. Call after sh_config_pick_tier. */
int sh_config_check_precision(const sh_config *cfg, sh_precision device_precision, const char *device_name,
                              sh_err *err);

const char *sh_task_name(sh_task t);
const char *sh_decoder_name(sh_decoder d);
const char *sh_tier_name(sh_tier t);

#endif
