/* Recommendation rules (see report.h). Each rule reads the snapshot, and only when its
 * condition holds adds one recommendation with the numbers it used as evidence. Sizes in
 * messages are MiB, like the config's units (binary). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "monitor/report.h"

#define MIB(b) ((double)(b) / (1024.0 * 1024.0))

const char *sh_rec_severity_name(sh_rec_severity s)
{
    switch (s) {
    case SH_REC_CRITICAL:
        return "critical";
    case SH_REC_WARNING:
        return "warning";
    default:
        return "info";
    }
}

sh_report_thresholds sh_report_default_thresholds(void)
{
    return (sh_report_thresholds){.critical_percent = 90,
                                  .warning_percent = 70,
                                  .low_percent = 30,
                                  .idle_hold_s = 3600,
                                  .min_reloading_switches = 2,
                                  .headroom_warn_percent = 10};
}

typedef struct recs {
    sh_recommendation *out;
    int cap, n;
    sh_recommendation spare;    /* written into when out is full, so rules need no checks */
} recs;

static sh_recommendation *rec_new(recs *r, const char *id, sh_rec_severity sev, const char *subject)
{
    sh_recommendation *x = r->n < r->cap ? &r->out[r->n++] : &r->spare;
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    x->severity = sev;
    snprintf(x->subject, sizeof x->subject, "%s", subject ? subject : "");
    return x;
}

static void rec_msg(sh_recommendation *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rec_msg(sh_recommendation *x, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof x->message, fmt, ap);
    va_end(ap);
}

static void ev(sh_recommendation *x, const char *key, double v)
{
    if (x->n_evidence >= SH_REC_MAX_EVIDENCE)
        return;
    sh_rec_evidence *e = &x->evidence[x->n_evidence++];
    snprintf(e->key, sizeof e->key, "%s", key);
    e->value = v;
}

int sh_rec_evidence_get(const sh_recommendation *r, const char *key, double *value)
{
    for (int i = 0; i < r->n_evidence; i++)
        if (!strcmp(r->evidence[i].key, key)) {
            if (value)
                *value = r->evidence[i].value;
            return 1;
        }
    return 0;
}

/* The limit usage is measured against: the budget, else the device's memory (GPU only: on the
 * CPU "device memory" is the host's RAM, which other processes share). 0 = none known. */
static int64_t usage_limit(const sh_report_snapshot *s)
{
    if (s->budget_bytes > 0)
        return s->budget_bytes;
    return s->gpu ? s->device_total_bytes : 0;
}

/* The budget admits every model at once while some load on demand: loading on demand then
 * only costs first-run latency and reloads, never memory. */
static void rule_preload_all(const sh_report_snapshot *s, recs *r)
{
    int on_demand = 0;
    for (int i = 0; i < s->n_models; i++)
        on_demand += !s->models[i].preload;
    int64_t limit = usage_limit(s);
    if (!on_demand || s->all_models_bytes <= 0 || (limit > 0 && s->all_models_bytes > limit))
        return;
    sh_recommendation *x = rec_new(r, "preload_all", SH_REC_INFO, s->device);
    if (limit > 0)
        rec_msg(x,
                "All %d models fit together in the budget (%.1f MiB of %.1f MiB, %.1f MiB to spare): "
                "preload them all (hardware tier `preload: all`, or `preload: true` per model) and turn "
                "off on-demand loading for the %d model(s) that use it; nothing will be loaded on a mode switch.",
                s->n_models, MIB(s->all_models_bytes), MIB(limit), MIB(limit - s->all_models_bytes), on_demand);
    else
        rec_msg(x,
                "No budget is set and all %d models together take %.1f MiB: preload them all and turn off "
                "on-demand loading for the %d model(s) that use it, or set memory.budget to make eviction mean something.",
                s->n_models, MIB(s->all_models_bytes), on_demand);
    ev(x, "all_models_bytes", (double)s->all_models_bytes);
    ev(x, "budget_bytes", (double)limit);
    if (limit > 0)
        ev(x, "spare_bytes", (double)(limit - s->all_models_bytes));
    ev(x, "on_demand_models", on_demand);
    ev(x, "models", s->n_models);
}

/* A mode whose switches keep reloading weights: the budget holds one mode's models but not
 * the next one's as well, so every switch pays an upload (or a repack) of the same bytes. */
static void rule_mode_switch_reload(const sh_report_snapshot *s, const sh_report_thresholds *t, recs *r)
{
    for (int k = 0; k < s->n_modes; k++) {
        const sh_report_mode *m = &s->modes[k];
        if (m->reloading_switches < t->min_reloading_switches || m->switch_reload_bytes <= 0)
            continue;
        double per = (double)m->switch_reload_bytes / (double)m->reloading_switches;
        char names[160] = "";
        for (int i = 0; i < m->n_models; i++) {
            int id = m->models[i];
            if (id < 0 || id >= s->n_models || s->models[id].pinned)
                continue;
            size_t l = strlen(names);
            snprintf(names + l, sizeof names - l, "%s%s", l ? ", " : "", s->models[id].name);
        }
        sh_recommendation *x = rec_new(r, "mode_switch_reload", SH_REC_WARNING, m->name);
        rec_msg(x,
                "Switching to mode '%s' reloaded %.1f MiB of weights on %llu of %llu switches (%.1f MiB in all): "
                "pin its models (%s: `pinned: true`) or raise memory.budget by %.1f MiB so they stay resident.",
                m->name, MIB(per), (unsigned long long)m->reloading_switches, (unsigned long long)m->switches,
                MIB(m->switch_reload_bytes), names[0] ? names : "none unpinned", MIB(per));
        ev(x, "switches", (double)m->switches);
        ev(x, "reloading_switches", (double)m->reloading_switches);
        ev(x, "reload_bytes_per_switch", per);
        ev(x, "switch_reload_bytes", (double)m->switch_reload_bytes);
        ev(x, "raise_budget_by_bytes", per);
        ev(x, "budget_bytes", (double)s->budget_bytes);
    }
}

/* fp32 on a GPU with tensor cores: half the weight and activation bytes and the tensor-core
 * throughput are left unused. No config key changes a backend's precision (the CPU computes
 * in fp32, shoal's CUDA backend in fp16; sh_config_check_precision refuses anything else), so
 * the advice is the one thing that does: running the model on the CUDA backend. */
static void rule_fp16(const sh_report_snapshot *s, recs *r)
{
    if (!s->gpu || s->tensor_cores == 0)
        return;
    for (int i = 0; i < s->n_models; i++) {
        const sh_report_model *m = &s->models[i];
        if (!m->fp32)
            continue;
        int64_t saving = (m->weight_bytes + m->plan_bytes) / 2;
        sh_recommendation *x = rec_new(r, "fp16", s->tensor_cores > 0 ? SH_REC_WARNING : SH_REC_INFO, m->name);
        rec_msg(x,
                "Model '%s' runs in fp32 on %s%s: run it on shoal's CUDA backend (inference.device: cuda, "
                "with precision: auto or fp16), which computes in fp16, to halve its "
                "%.1f MiB of weights and %.1f MiB activation plan (about %.1f MiB saved) and use the tensor cores.",
                m->name, s->device, s->tensor_cores > 0 ? ", which has tensor cores" : " (tensor cores if compute capability >= 7.0)",
                MIB(m->weight_bytes), MIB(m->plan_bytes), MIB(saving));
        ev(x, "weight_bytes", (double)m->weight_bytes);
        ev(x, "plan_bytes", (double)m->plan_bytes);
        ev(x, "estimated_saving_bytes", (double)saving);
        ev(x, "tensor_cores", s->tensor_cores);
    }
}

/* The tier the config applied and what it leaves free at the observed peak. */
static void rule_tier(const sh_report_snapshot *s, const sh_report_thresholds *t, recs *r)
{
    if (!s->tier)
        return;
    int64_t limit = usage_limit(s);
    double headroom = limit > 0 ? (double)(limit - s->peak_bytes) : NAN;
    double pct = limit > 0 ? 100.0 * headroom / (double)limit : NAN;
    bool tight = limit > 0 && pct < t->headroom_warn_percent;
    sh_recommendation *x = rec_new(r, "tier", tight ? SH_REC_WARNING : SH_REC_INFO, s->device);
    char bound[64] = "";
    if (s->tier_max_memory > 0)
        snprintf(bound, sizeof bound, ", tier up to %.0f MiB", MIB(s->tier_max_memory));
    if (limit > 0)
        rec_msg(x, "Hardware tier '%s' applied (device %.0f MiB%s); the peak of %.1f MiB leaves %.1f MiB (%.1f%%) of the "
                   "%.1f MiB budget%s",
                s->tier, MIB(s->device_total_bytes), bound, MIB(s->peak_bytes), headroom / 1048576.0, pct, MIB(limit),
                tight ? ": too little for another mode's models; pick a lower tier or a smaller budget share." : ".");
    else
        rec_msg(x, "Hardware tier '%s' applied; no budget is set, so the peak of %.1f MiB has no limit to measure headroom against.",
                s->tier, MIB(s->peak_bytes));
    ev(x, "device_total_bytes", (double)s->device_total_bytes);
    ev(x, "tier_max_memory_bytes", (double)s->tier_max_memory);
    ev(x, "budget_bytes", (double)limit);
    ev(x, "peak_bytes", (double)s->peak_bytes);
    if (limit > 0) {
        ev(x, "headroom_bytes", headroom);
        ev(x, "headroom_percent", pct);
    }
}

/* A resident, unpinned model nobody ran for a long time holds its unique weights for nothing. */
static void rule_idle(const sh_report_snapshot *s, const sh_report_thresholds *t, recs *r)
{
    for (int i = 0; i < s->n_models; i++) {
        const sh_report_model *m = &s->models[i];
        double idle = m->last_use_s >= 0 ? m->last_use_s : m->resident_s;
        if (!m->resident || m->pinned || !(idle >= t->idle_hold_s))
            continue;
        sh_recommendation *x = rec_new(r, "idle_model", SH_REC_INFO, m->name);
        if (s->idle_unload_s > 0)
            rec_msg(x,
                    "Model '%s' has been resident for %.1f h without a run, holding %.1f MiB of its own weights, "
                    "although memory.idle_unload_s is %d: start the runtime's monitor (it unloads idle models) or unload it.",
                    m->name, idle / 3600.0, MIB(m->weight_unique_bytes), s->idle_unload_s);
        else
            rec_msg(x,
                    "Model '%s' has been resident for %.1f h without a run, holding %.1f MiB of its own weights: "
                    "set memory.idle_unload_s (now 0, never) or load it on demand.",
                    m->name, idle / 3600.0, MIB(m->weight_unique_bytes));
        ev(x, "idle_s", idle);
        ev(x, "weight_unique_bytes", (double)m->weight_unique_bytes);
        ev(x, "runs", (double)m->runs);
        ev(x, "idle_unload_s", s->idle_unload_s);
    }
}

static int cmp_bytes_desc(const void *a, const void *b)
{
    const int64_t *x = a, *y = b;   /* pairs {bytes, index} */
    return x[0] < y[0] ? 1 : x[0] > y[0] ? -1 : (x[1] > y[1]) - (x[1] < y[1]);
}

/* The original's usage levels (> 90% critical, > 70% warning, < 30% info), measured at the
 * peak against the budget rather than the whole GPU, and split per model: the evidence gives
 * each resident model's weight bytes (shared tensors count in every model using them) and the
 * arena, so the message names what to act on. */
static void rule_usage(const sh_report_snapshot *s, const sh_report_thresholds *t, recs *r)
{
    int64_t limit = usage_limit(s);
    if (limit <= 0)
        return;
    double pct = 100.0 * (double)s->peak_bytes / (double)limit;
    const char *id;
    sh_rec_severity sev;
    if (pct > t->critical_percent) {
        id = "usage_critical";
        sev = SH_REC_CRITICAL;
    } else if (pct > t->warning_percent) {
        id = "usage_warning";
        sev = SH_REC_WARNING;
    } else if (pct < t->low_percent) {
        id = "usage_low";
        sev = SH_REC_INFO;
    } else {
        return;
    }
    int64_t order[SH_REPORT_MAX_RECS][2];
    int n = 0;
    for (int i = 0; i < s->n_models && n < SH_REPORT_MAX_RECS; i++)
        if (s->models[i].resident) {
            order[n][0] = s->models[i].weight_bytes;
            order[n][1] = i;
            n++;
        }
    qsort(order, (size_t)n, sizeof order[0], cmp_bytes_desc);
    char who[200] = "";
    for (int j = 0; j < n && j < 3; j++) {
        const sh_report_model *m = &s->models[order[j][1]];
        size_t l = strlen(who);
        snprintf(who + l, sizeof who - l, "%s%s %.1f MiB (%.0f%%)", l ? ", " : "", m->name, MIB(m->weight_bytes),
                 100.0 * (double)m->weight_bytes / (double)limit);
    }
    size_t l = strlen(who);
    snprintf(who + l, sizeof who - l, "%sarena %.1f MiB (%.0f%%)", l ? ", " : "", MIB(s->arena_bytes),
             100.0 * (double)s->arena_bytes / (double)limit);
    sh_recommendation *x = rec_new(r, id, sev, s->device);
    if (sev == SH_REC_CRITICAL)
        rec_msg(x, "Peak %.1f%% of the %.1f MiB budget (%s): unpin or load on demand the largest unpinned model, "
                   "use fp16, or split its mode; a load that does not fit will evict on every switch.",
                pct, MIB(limit), who);
    else if (sev == SH_REC_WARNING)
        rec_msg(x, "Peak %.1f%% of the %.1f MiB budget (%s): lower memory.idle_unload_s for the largest models or "
                   "use fp16 before another model is added.",
                pct, MIB(limit), who);
    else
        rec_msg(x, "Peak %.1f%% of the %.1f MiB budget (%s): room to preload on-demand models, enable the host "
                   "cache, or give the budget back (lower memory.budget).",
                pct, MIB(limit), who);
    ev(x, "usage_percent", pct);
    ev(x, "peak_bytes", (double)s->peak_bytes);
    ev(x, "in_use_bytes", (double)s->in_use_bytes);
    ev(x, "budget_bytes", (double)limit);
    ev(x, "arena_bytes", (double)s->arena_bytes);
    for (int j = 0; j < n && x->n_evidence < SH_REC_MAX_EVIDENCE; j++) {
        char key[48];
        snprintf(key, sizeof key, "model_bytes.%s", s->models[order[j][1]].name);
        ev(x, key, (double)s->models[order[j][1]].weight_bytes);
    }
}

/* Swaps with the host cache off: every reload packs the weights again from the parsed model
 * (CPU work) instead of copying them from host memory. */
static void rule_host_cache(const sh_report_snapshot *s, recs *r)
{
    if (s->host_cache_on)
        return;
    uint64_t reloads = 0;
    int64_t bytes = 0, cache_need = 0;
    double ms = 0;
    for (int i = 0; i < s->n_models; i++) {
        const sh_report_model *m = &s->models[i];
        if (m->loads < 2 && m->reload_bytes <= 0)
            continue;
        reloads += m->loads > 1 ? m->loads - 1 : 0;
        bytes += m->reload_bytes;
        cache_need += m->weight_bytes;
        ms += m->swap_in_ms_total;
    }
    if (!reloads)
        return;
    sh_recommendation *x = rec_new(r, "host_cache_off", SH_REC_WARNING, s->device);
    rec_msg(x,
            "The host cache is off while models swap: %llu reloads brought back %.1f MiB (%.1f ms of swap-in in all). "
            "Set memory.host_cache to at least %.1f MiB so a reload is a copy from host memory, not a repack.",
            (unsigned long long)reloads, MIB(bytes), ms, MIB(cache_need));
    ev(x, "reloads", (double)reloads);
    ev(x, "reload_bytes", (double)bytes);
    ev(x, "swap_in_ms_total", ms);
    ev(x, "host_cache_needed_bytes", (double)cache_need);
}

static int cmp_severity(const void *a, const void *b)
{
    const sh_recommendation *x = a, *y = b;
    return (int)y->severity - (int)x->severity;
}

int sh_report_recommend(const sh_report_snapshot *s, const sh_report_thresholds *t, sh_recommendation *out, int cap)
{
    sh_report_thresholds dt = sh_report_default_thresholds();
    if (!t)
        t = &dt;
    recs r = {.out = out, .cap = out ? cap : 0};
    rule_usage(s, t, &r);
    rule_mode_switch_reload(s, t, &r);
    rule_host_cache(s, &r);
    rule_fp16(s, &r);
    rule_idle(s, t, &r);
    rule_preload_all(s, &r);
    rule_tier(s, t, &r);
    /* stable by construction order within a severity: insertion sort, qsort is not stable */
    for (int i = 1; i < r.n; i++) {
        sh_recommendation tmp = out[i];
        int j = i;
        while (j > 0 && cmp_severity(&out[j - 1], &tmp) > 0) {
            out[j] = out[j - 1];
            j--;
        }
        out[j] = tmp;
    }
    return r.n;
}

void *sh_report_recs_json(const sh_recommendation *list, int n)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return NULL;
    for (int i = 0; i < n; i++) {
        const sh_recommendation *x = &list[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) {
            cJSON_Delete(arr);
            return NULL;
        }
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "id", x->id);
        cJSON_AddStringToObject(o, "severity", sh_rec_severity_name(x->severity));
        cJSON_AddStringToObject(o, "subject", x->subject);
        cJSON_AddStringToObject(o, "message", x->message);
        cJSON *e = cJSON_AddObjectToObject(o, "evidence");
        for (int k = 0; e && k < x->n_evidence; k++)
            cJSON_AddNumberToObject(e, x->evidence[k].key, isfinite(x->evidence[k].value) ? x->evidence[k].value : 0);
    }
    return arr;
}
