/* Recommendations computed from measurements.
 *
 * The original system's report looked only at the GPU's total usage. shoal knows the bytes of
 * every model, how often each mode's switch reloads weights, which models sit idle, and what
 * preloading everything would take; these rules read those numbers and say what to change.
 * Each recommendation carries the numbers that triggered it, and a rule whose condition is not
 * met says nothing (no "all good" entries).
 *
 * The rules are pure functions over a snapshot struct, so tests craft snapshots directly; the
 * runtime fills one from its accounting (src/runtime/report.c) and puts the result in the
 * JSON report's "recommendations" array.
 *
 *   sh_report_snapshot s = {...};
 *   sh_report_thresholds t = sh_report_default_thresholds();
 *   sh_recommendation recs[SH_REPORT_MAX_RECS];
 *   int n = sh_report_recommend(&s, &t, recs, SH_REPORT_MAX_RECS);
 *   cJSON *arr = sh_report_recs_json(recs, n);
 */
#ifndef SHOAL_MONITOR_REPORT_H
#define SHOAL_MONITOR_REPORT_H

#include <stdbool.h>
#include <stdint.h>

typedef enum sh_rec_severity { SH_REC_INFO = 0, SH_REC_WARNING, SH_REC_CRITICAL } sh_rec_severity;
const char *sh_rec_severity_name(sh_rec_severity s);   /* "info", "warning", "critical" */

#define SH_REC_MAX_EVIDENCE 16
#define SH_REPORT_MAX_RECS 64

typedef struct sh_rec_evidence {
    char key[48];
    double value;
} sh_rec_evidence;

typedef struct sh_recommendation {
    char id[32];          /* stable rule name: "preload_all", "mode_switch_reload", ... */
    sh_rec_severity severity;
    char subject[64];     /* the device, model or mode it is about */
    char message[480];
    int n_evidence;
    sh_rec_evidence evidence[SH_REC_MAX_EVIDENCE];
} sh_recommendation;

typedef struct sh_report_model {
    const char *name;
    bool resident, pinned, preload;
    int64_t weight_bytes;         /* all its weights (shared ones included) */
    int64_t weight_unique_bytes;  /* what unloading it frees */
    int64_t plan_bytes;           /* its activation plan (inside the shared arena) */
    uint64_t loads, evictions, runs;
    double last_use_s;            /* seconds since its last run; -1 never ran */
    double resident_s;            /* seconds since it became resident (for never-run models); -1 unknown */
    int64_t reload_bytes;         /* weight bytes uploaded by loads after its first */
    double swap_in_ms_total;
    bool fp32;                    /* computes in fp32 (packed weights are fp32) */
} sh_report_model;

typedef struct sh_report_mode {
    const char *name;
    const int *models;            /* indices into the snapshot's models */
    int n_models;
    uint64_t runs;
    uint64_t switches;            /* runs whose previous run was another mode */
    uint64_t reloading_switches;  /* switches that had to load weights evicted before */
    int64_t switch_reload_bytes;  /* weight bytes those switches loaded again */
} sh_report_mode;

typedef struct sh_report_snapshot {
    const char *device;           /* "cpu", "cuda:0" */
    bool gpu;
    int tensor_cores;             /* 1 yes, 0 no, -1 unknown (GPUs of compute capability >= 7.0 have them) */
    int64_t device_total_bytes;   /* 0 unknown */
    int64_t budget_bytes;         /* 0 unlimited */
    int64_t in_use_bytes, peak_bytes;
    int64_t arena_bytes, staging_bytes;
    /* Device bytes every model of the config would hold together: weights (shared tensors
     * once) + arenas + staging. */
    int64_t all_models_bytes;
    bool host_cache_on;
    const char *tier;             /* the hardware tier applied, or NULL */
    int64_t tier_max_memory;      /* the tier's max_memory; 0 none */
    int idle_unload_s;            /* config; 0 never */
    const sh_report_model *models;
    int n_models;
    const sh_report_mode *modes;
    int n_modes;
} sh_report_snapshot;

typedef struct sh_report_thresholds {
    double critical_percent;      /* 90: peak above this share of the budget is critical */
    double warning_percent;       /* 70 */
    double low_percent;           /* 30: below is "room to spare" */
    double idle_hold_s;           /* 3600: a resident model unused this long is flagged */
    uint64_t min_reloading_switches;  /* 2: one reload is a cold start, two a pattern */
    double headroom_warn_percent; /* 10: a tier leaving less than this of its budget free */
} sh_report_thresholds;

sh_report_thresholds sh_report_default_thresholds(void);

/* Applies every rule to `s`; writes at most `cap` recommendations to out, most severe first,
 * and returns how many it wrote. `t` NULL = the defaults. */
int sh_report_recommend(const sh_report_snapshot *s, const sh_report_thresholds *t, sh_recommendation *out,
                        int cap);

/* Evidence lookup for callers and tests: 1 and *value when `key` is present. */
int sh_rec_evidence_get(const sh_recommendation *r, const char *key, double *value);

/* A cJSON array of {id, severity, subject, message, evidence: {key: number}} (cJSON * as void *
 * so this header needs no cJSON include); free with cJSON_Delete. NULL when out of memory. */
void *sh_report_recs_json(const sh_recommendation *recs, int n);

#endif
