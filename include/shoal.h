/*
 * shoal — several vision models on one GPU (or CPU) inside one memory budget.
 *
 * Overview
 *   A shoal_runtime_t holds the models of one YAML config, a memory budget per device,
 *   the weight store (identical tensors stored once) and one activation arena per
 *   execution context. Models are loaded on demand or preloaded, evicted when idle or
 *   when a load needs room, and swapped back in from a host-side cache.
 *
 * Example (tests/lib builds the text between the markers as a program, so it compiles):
 * EXAMPLE-BEGIN
    #include <stdio.h>
    #include <shoal.h>

    int main(int argc, char **argv)
    {
        if (argc != 4) {
            fprintf(stderr, "usage: %s CONFIG.yaml MODE FRAME.jpg\n", argv[0]);
            return 2;
        }
        shoal_runtime_params p = shoal_runtime_default_params();
        p.config_path = argv[1];
        shoal_runtime_t rt = NULL;
        shoal_image img;
        shoal_results_t res = NULL;
        int rc = shoal_runtime_create(&p, &rt);
        if (rc == SHOAL_OK)
            rc = shoal_image_load(argv[3], &img, NULL, 0);
        if (rc == SHOAL_OK) {
            rc = shoal_runtime_run_mode(rt, argv[2], &img, &res);
            shoal_image_free(&img);
        }
        if (rc != SHOAL_OK)
            fprintf(stderr, "shoal %s: %s (%s)\n", shoal_version(), shoal_last_error(), shoal_status_str(rc));
        for (int i = 0; i < shoal_results_count(res); i++) {
            const shoal_model_result *m = shoal_results_get(res, i);
            printf("%s: %d detections\n", m->model, m->n_detections);
        }
        shoal_results_destroy(res);
        shoal_runtime_destroy(rt);
        return rc == SHOAL_OK ? 0 : 1;
    }
 * EXAMPLE-END
 *
 * Conventions
 *   - Every function that can fail returns an int: SHOAL_OK (0) or a negative shoal_status.
 *     Functions returning a pointer return NULL on failure; counts return a negative status;
 *     times return a negative value.
 *   - A failed call leaves a readable message for the calling thread in shoal_last_error();
 *     calls on a runtime also keep it on the runtime (shoal_runtime_last_error).
 *   - A NULL handle or a NULL required pointer is SHOAL_ERR_INVALID_ARG, never a crash.
 *   - destroy and free functions accept NULL.
 *   - No function exits, aborts or prints for a condition a caller can cause; messages
 *     go to the log callback of shoal_runtime_params.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SHOAL_API __attribute__((visibility("default")))
#else
#define SHOAL_API
#endif

#define SHOAL_VERSION "0.1.0"
#define SHOAL_VERSION_MAJOR 0
#define SHOAL_VERSION_MINOR 1
#define SHOAL_VERSION_PATCH 0

/* The library's version, "MAJOR.MINOR.PATCH": SHOAL_VERSION of the build, which may differ
 * from the header a program was compiled with. Never NULL. */
SHOAL_API const char *shoal_version(void);

typedef enum shoal_status {
    SHOAL_OK = 0,
    SHOAL_ERR_INVALID_ARG = -1,   /* a parameter or request field is wrong */
    SHOAL_ERR_NO_MEMORY = -2,     /* an allocation failed (host or device) */
    SHOAL_ERR_BUDGET = -3,        /* the memory budget does not admit the request; nothing changed */
    SHOAL_ERR_IO = -4,            /* a file could not be read or written */
    SHOAL_ERR_PARSE = -5,         /* malformed model, config, image or request */
    SHOAL_ERR_UNSUPPORTED = -6,   /* an op, dtype, attribute or feature shoal does not implement */
    SHOAL_ERR_SHAPE = -7,         /* shapes do not agree */
    SHOAL_ERR_NOT_FOUND = -8,     /* unknown model, mode, tensor or file */
    SHOAL_ERR_BACKEND = -9,       /* the device or a device library failed */
    SHOAL_ERR_STATE = -10,        /* the call is not valid in the object's current state */
    SHOAL_ERR_TIMEOUT = -11,
    SHOAL_ERR_BUSY = -12,         /* a bounded queue is full; try again later */
    SHOAL_ERR_INTERNAL = -13      /* a bug in shoal */
} shoal_status;

/* A static string naming the status ("budget exceeded", ...). Never NULL. */
SHOAL_API const char *shoal_status_str(int status);
/* Message of this thread's last failed shoal call, whatever its handle ("" if none). Valid
 * until this thread's next failing call. Never NULL. */
SHOAL_API const char *shoal_last_error(void);

typedef enum shoal_log_level {
    SHOAL_LOG_DEBUG = 0,
    SHOAL_LOG_INFO = 1,
    SHOAL_LOG_WARN = 2,
    SHOAL_LOG_ERROR = 3
} shoal_log_level;

/* Log sink; shoal never prints on its own. `msg` is valid during the call only. */
typedef void (*shoal_log_fn)(void *user, shoal_log_level level, const char *msg);


/* ---------------------------------------------------------------------------------- */
/* Images                                                                              */
/* ---------------------------------------------------------------------------------- */

/* An 8-bit RGB frame, rows packed (stride = 3 * width). */
typedef struct shoal_image {
    int width;
    int height;
    uint8_t *rgb;       /* owned by the image when it came from shoal_image_load/decode */
    int owned;
} shoal_image;

/* Decodes a JPEG or PNG file / buffer. On failure *out is zeroed (when out is not NULL) and the
 * message is in shoal_last_error(), also copied into `err` when given (`err_cap` bytes).
 * Free with shoal_image_free. */
SHOAL_API int shoal_image_load(const char *path, shoal_image *out, char *err, size_t err_cap);
SHOAL_API int shoal_image_decode(const void *data, size_t len, shoal_image *out, char *err, size_t err_cap);
/* Wraps caller memory (not copied, not freed). Never fails; the run calls refuse a frame
 * without pixels or with sides out of range. */
SHOAL_API shoal_image shoal_image_wrap(uint8_t *rgb, int width, int height);
SHOAL_API void shoal_image_free(shoal_image *img);                 /* accepts NULL and wrapped images */

/* ---------------------------------------------------------------------------------- */
/* Runtime                                                                             */
/* ---------------------------------------------------------------------------------- */

typedef struct shoal_runtime *shoal_runtime_t;
typedef struct shoal_results *shoal_results_t;

/* Switches for measuring alternatives against the tuned defaults (A/B runs). All zero is the
 * default everywhere, so a zeroed struct changes nothing. Not a stable interface: fields
 * follow the experiments. The library reads no environment; the `shoal` command fills this
 * from SHOAL_* variables (docs/DEVELOPING.md lists them). CUDA fields are ignored on the CPU, CPU fields on the GPU. */
typedef struct shoal_tuning {
    int cuda_streams;               /* streams per program, 1..4 (1 = no branch overlap); 0 = 4 */
    int cuda_stream_window;         /* a step waits for what each stream did this many steps
                                       earlier; 0 = 4 */
    int cuda_stream_side_kib;       /* only steps writing at most this many KiB leave the first
                                       stream; 0 = 4096 */
    int cuda_igemm;                 /* own implicit-GEMM conv: 0 = by its FLOP limit; 1 = every
                                       conv it can take; -1 = none (all through cuDNN) */
    double cuda_igemm_max_gflop;    /* > 0: the own conv's FLOP limit in GFLOP (default 1) */
    int64_t cuda_igemm_max_pixels;  /* > 0: convs with more output pixels go to cuDNN */
    int cuda_no_wgmma;              /* the mma.sync conv on Hopper too */
    int cuda_no_pdl;                /* no programmatic dependent launches at all */
    int cuda_no_pdl_small;          /* none for the small kernels (the convs keep theirs) */
    int cuda_no_planar;             /* the RGB layer through cuDNN */
    int cuda_no_fuse_add;           /* residual Adds not fused into the conv before them */
    int cuda_no_convt_gemm;         /* transposed convs through cuDNN */
    int cuda_no_early_download;     /* outputs copied after the whole program */
    int cuda_no_transpose_fold;     /* MatMul operands' transposes copied */
    int cuda_no_slice_views;        /* channel Concat/Split copied, never viewed in place */
    int cuda_no_lane_priority;      /* lane 0's stream at the default priority */
    int cuda_cudnn_fixed_algo;      /* cuDNN convs take IMPLICIT_PRECOMP_GEMM wherever it applies
                                       instead of asking the heuristics (load -20%, H100) */
    int cuda_log_views;             /* log (INFO) each compiled graph's slice-view counts */
    int cuda_profile_convs;         /* a per-node profile logs (INFO) one line per conv */
    int cpu_no_layout_flow;         /* CPU: activations NHWC between oneDNN convs only, not
                                       through Concat/Split/Add/pooling/Resize */
    int cpu_winograd;               /* CPU: 3x3 stride-1 convs of 40x40 and larger on the own
                                       Winograd kernel: 0 = where oneDNN lacks AVX-512, 1 = on
                                       any CPU, -1 = never */
    int cpu_igemm;                  /* CPU: the other one-group convs on the own NHWC implicit
                                       GEMM: 0 = where oneDNN lacks AVX-512, 1 = on any CPU,
                                       -1 = never (oneDNN) */
    int cpu_pool_spin_us;           /* CPU: how long idle pool threads spin before they sleep,
                                       in microseconds; 0 = 200, -1 = they sleep at once */
} shoal_tuning;

typedef struct shoal_runtime_params {
    const char *config_path;    /* YAML config file (or config_yaml) */
    const char *config_yaml;    /* YAML text; model paths are relative to the cwd */
    const char *device;         /* "cpu", "cuda" or "auto"; NULL = the config's */
    int64_t budget_bytes;       /* > 0 overrides the config's budget */
    double budget_fraction;     /* > 0 overrides: share of the device's memory */
    int threads;                /* > 0 overrides CPU threads */
    int contexts;               /* > 0: execution contexts that may run at once (one arena each) */
    int preload;                /* 1 (default): load the config's preload list at create */
    int start_monitor;          /* 1: background monitor thread (idle unload, cleanup) */
    int concurrent_models;      /* 0: the config's inference.concurrent_models; 1 on; -1 off */
    shoal_tuning tuning;        /* A/B switches; zeroed by default */
    shoal_log_fn log;
    void *log_user;
    char *error;                /* optional: also receives the reason create failed */
    size_t error_cap;
} shoal_runtime_params;

SHOAL_API shoal_runtime_params shoal_runtime_default_params(void);

/* Creates a runtime from a config. On failure *out is NULL (when out is not NULL) and
 * shoal_last_error() (and params->error, when given) says why. Free with shoal_runtime_destroy. */
SHOAL_API int shoal_runtime_create(const shoal_runtime_params *params, shoal_runtime_t *out);
/* Frees every model, arena and cache. Accepts NULL. No call may be in flight. */
SHOAL_API void shoal_runtime_destroy(shoal_runtime_t rt);
/* Message of this thread's last failed call on rt ("" if none); for a NULL rt, the same as
 * shoal_last_error(). Valid until the next call on rt from this thread. */
SHOAL_API const char *shoal_runtime_last_error(shoal_runtime_t rt);

/* Runs the models of `mode` on one frame on one execution context (one activation arena):
 * in the mode's order, or all at once where the runtime runs a mode's models concurrently
 * (inference.concurrent_models; results stay in the mode's order either way). Loads models
 * not resident (evicting idle/LRU ones within the budget). On SHOAL_ERR_BUDGET no model of
 * the mode ran and residency is unchanged.
 * *out is freed with shoal_results_destroy. Thread-safe. */
SHOAL_API int shoal_runtime_run_mode(shoal_runtime_t rt, const char *mode, const shoal_image *frame,
                                     shoal_results_t *out);
/* Runs one configured model. */
SHOAL_API int shoal_runtime_run_model(shoal_runtime_t rt, const char *model, const shoal_image *frame,
                                      shoal_results_t *out);

/* Video mode: the state one stream of frames carries from frame to frame, owned by the caller
 * (one per camera, client or file; never shared by two calls at once). A hand_landmarks model
 * with `tracking: true` then starts from the previous frame's landmarks and runs its palm
 * detector only while it tracks fewer than num_hands hands. A video follows one runtime: used
 * with another one, it starts over. Free with shoal_video_destroy; NULL when out of memory.
 *
 *   shoal_video_t v = shoal_video_create();
 *   for (each frame) { shoal_runtime_run_mode_video(rt, "shopping", &frame, v, &res); ... }
 *   shoal_video_destroy(v);
 */
typedef struct shoal_video *shoal_video_t;
SHOAL_API shoal_video_t shoal_video_create(void);
SHOAL_API void shoal_video_destroy(shoal_video_t video);                /* accepts NULL */
/* shoal_runtime_run_mode for the next frame of `video` (NULL: each frame on its own, as
 * shoal_runtime_run_mode). Thread-safe for different videos. */
SHOAL_API int shoal_runtime_run_mode_video(shoal_runtime_t rt, const char *mode, const shoal_image *frame,
                                           shoal_video_t video, shoal_results_t *out);

/* Residency control. load: resident after return (or SHOAL_ERR_BUDGET, nothing changed). */
SHOAL_API int shoal_runtime_load_model(shoal_runtime_t rt, const char *model);
SHOAL_API int shoal_runtime_unload_model(shoal_runtime_t rt, const char *model);
/* Changes the device budget; evicts unpinned idle models down to it. SHOAL_ERR_BUDGET if
 * pinned/in-use models alone exceed it (budget unchanged). */
SHOAL_API int shoal_runtime_set_budget(shoal_runtime_t rt, int64_t bytes);
/* Loads the models of a mode ahead of use (prefetch on mode change). */
SHOAL_API int shoal_runtime_prefetch_mode(shoal_runtime_t rt, const char *mode);

/* 1 when every model of the config's preload list is resident, else 0 (negative: bad rt). */
SHOAL_API int shoal_runtime_is_ready(shoal_runtime_t rt);

/* Counts (negative: bad rt) and names (NULL for a bad rt or index): valid while rt lives. */
SHOAL_API int shoal_runtime_model_count(shoal_runtime_t rt);
SHOAL_API const char *shoal_runtime_model_name(shoal_runtime_t rt, int i);
SHOAL_API int shoal_runtime_mode_count(shoal_runtime_t rt);
SHOAL_API const char *shoal_runtime_mode_name(shoal_runtime_t rt, int i);

/* ---------------------------------------------------------------------------------- */
/* Results                                                                             */
/* ---------------------------------------------------------------------------------- */

typedef struct shoal_detection {
    int class_id;
    const char *class_name;
    float score;
    float x1, y1, x2, y2;       /* original image pixels */
    int64_t mask_area;          /* pixels; 0 without a mask */
    const char *mask_rle;       /* run lengths over the box's rows, "x0 y0 w h: r0 r1 ..." or NULL */
} shoal_detection;

#define SHOAL_HAND_LANDMARKS 21

/* One hand of a hand_landmarks model (MediaPipe's hand landmarker). */
typedef struct shoal_hand {
    float landmarks[SHOAL_HAND_LANDMARKS][3];   /* x, y image pixels; z in x's unit, smaller is nearer */
    float world[SHOAL_HAND_LANDMARKS][3];       /* metres, hand-centred */
    float presence;             /* probability that the crop holds a hand */
    int handedness;             /* 0 "Left", 1 "Right" (MediaPipe's label map, mirrored-selfie
                                   convention: a right hand in a plain photo says "Left") */
    const char *handedness_label;
    float handedness_score;     /* probability of that label */
    int tracked;                /* 1: its crop came from the previous frame (no palm detection) */
    float roi_x, roi_y, roi_width, roi_height;  /* the crop: centre and size in image pixels */
    float roi_rotation;         /* radians */
} shoal_hand;

typedef struct shoal_model_result {
    const char *model;
    const char *task;
    double latency_ms;          /* preprocess + inference + decode (concurrent: the mode's
                                   network time, shoal_results_infer_ms, as its inference) */
    double infer_ms;            /* in turn: upload + run + download, host wall time; concurrent:
                                   device time from its upload to the end of its download,
                                   overlapping the other models' */
    int n_detections;
    const shoal_detection *detections;
    int n_landmarks;            /* 21 for a hand */
    const float *landmarks;     /* x, y (image pixels), z per landmark */
    float presence;
    float handedness;
    /* task hand_landmarks: the hands found (landmarks/presence/handedness above repeat the
     * first one; handedness there is its probability of "Right"); detections are this
     * frame's palm detections (class "palm"), none on a frame where every hand was tracked */
    int n_hands;
    const shoal_hand *hands;
    /* segmentation: detections whose mask did not fit the frame's mask pool
     * (inference.mask_pool_frames); their mask_rle is NULL and mask_area 0 */
    int n_masks_left_out;
} shoal_model_result;

/* Accessors of a run's results, valid until shoal_results_destroy. A NULL res gives
 * SHOAL_ERR_INVALID_ARG from the int ones, a negative time, or NULL. */
SHOAL_API int shoal_results_count(shoal_results_t res);
SHOAL_API const shoal_model_result *shoal_results_get(shoal_results_t res, int i);   /* NULL: bad i */
SHOAL_API double shoal_results_total_ms(shoal_results_t res);
/* Network time of the whole call: host wall time from the first upload to the last download
 * (concurrent), or the sum of the models' infer_ms (in turn). */
SHOAL_API double shoal_results_infer_ms(shoal_results_t res);
/* The same network part timed on the device: from the first upload's start to the last
 * download's end (a mode's concurrent models together); -1 where the backend cannot tell
 * (the CPU, a single model run in turn). */
SHOAL_API double shoal_results_device_ms(shoal_results_t res);
/* 1 when the call ran its models concurrently, else 0. */
SHOAL_API int shoal_results_concurrent(shoal_results_t res);
/* JSON text of the results (as `shoal run --json` prints); free with shoal_free_string.
 * NULL on failure. */
SHOAL_API char *shoal_results_to_json(shoal_results_t res);
/* Draws boxes, labels, masks and landmarks over `frame`, writes a PNG. */
SHOAL_API int shoal_results_draw(shoal_results_t res, const shoal_image *frame, const char *png_path);
SHOAL_API void shoal_results_destroy(shoal_results_t res);          /* accepts NULL */
SHOAL_API void shoal_free_string(char *s);                  /* accepts NULL */

/* ---------------------------------------------------------------------------------- */
/* Stats                                                                               */
/* ---------------------------------------------------------------------------------- */

typedef enum shoal_model_state {
    SHOAL_MODEL_UNLOADED = 0,   /* nothing held */
    SHOAL_MODEL_CACHED = 1,     /* packed weights in the host cache only */
    SHOAL_MODEL_RESIDENT = 2    /* weights on the device, ready to run */
} shoal_model_state;

typedef struct shoal_model_stats {
    const char *name;
    shoal_model_state state;
    int pinned;
    int priority;
    int64_t weight_bytes;           /* all weights the model references */
    int64_t weight_unique_bytes;    /* referenced by this model alone */
    int64_t weight_shared_bytes;    /* also referenced by another model */
    int64_t plan_bytes;             /* its activation plan */
    int64_t plan_lower_bound;
    int64_t workspace_bytes;        /* inside the plan */
    int64_t host_cache_bytes;
    uint64_t loads, evictions, runs;
    double last_use_s;              /* seconds since the last run; -1 never */
    double swap_in_ms_last, swap_in_ms_total;
    double latency_ms_last, latency_ms_p50, latency_ms_p90, latency_ms_p99;
    int64_t load_bytes_total;       /* weight bytes its loads put on the device */
    int64_t reload_bytes_total;     /* of those, by loads after the first (weights evicted before) */
} shoal_model_stats;

typedef struct shoal_mode_stats {
    const char *name;
    uint64_t runs;
    uint64_t switches;              /* runs that followed a run of another mode */
    uint64_t reloading_switches;    /* switches that loaded evicted weights again */
    int64_t switch_reload_bytes;    /* weight bytes those switches loaded again */
} shoal_mode_stats;

typedef struct shoal_device_stats {
    const char *name;               /* "cpu", "cuda:0" */
    int64_t budget_bytes;           /* 0 = unlimited */
    int64_t in_use_bytes, peak_bytes;
    int64_t weights_bytes, arena_bytes;
    int64_t staging_bytes;          /* device transfer buffers (compact YOLO outputs) */
    int64_t host_cache_bytes;
    int64_t device_total_bytes, device_used_bytes, process_bytes;  /* NVML where present, else -1 */
    int64_t weights_stored_bytes;   /* distinct weight bytes on the device (inside weights_bytes,
                                       which counts the pool's whole chunks) */
} shoal_device_stats;

typedef struct shoal_stats {
    int n_models;
    shoal_model_stats *models;
    int n_devices;
    shoal_device_stats *devices;
    int64_t dedup_saved_bytes;      /* bytes not stored thanks to identical tensors */
    int n_modes;
    shoal_mode_stats *modes;
} shoal_stats;

/* Snapshot of the runtime's accounting; free with shoal_stats_free (also after a failure:
 * *out is then empty). */
SHOAL_API int shoal_runtime_get_stats(shoal_runtime_t rt, shoal_stats *out);
SHOAL_API void shoal_stats_free(shoal_stats *s);
/* Prometheus text exposition of the stats; free with shoal_free_string. NULL on failure. */
SHOAL_API char *shoal_runtime_prometheus(shoal_runtime_t rt);
/* JSON memory report with recommendations; free with shoal_free_string. NULL on failure. */
SHOAL_API char *shoal_runtime_report_json(shoal_runtime_t rt);

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
