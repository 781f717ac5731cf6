/* The JSON memory report: the measured figures per device, model and mode, how the device
 * bytes break down per model (attribution), this process's usage as the OS or NVML sees it,
 * and recommendations computed from all of it by the rules in src/monitor/report.c. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "monitor/nvml.h"
#include "monitor/report.h"
#include "runtime/runtime-impl.h"

static const char *state_name(shoal_model_state s)
{
    return s == SHOAL_MODEL_RESIDENT ? "resident" : s == SHOAL_MODEL_CACHED ? "cached" : "unloaded";
}

/* Device bytes the whole config would hold at once: every model's weights (shared tensors
 * once), the arenas and the staging buffers. */
static int64_t all_models_bytes(shoal_runtime_t rt, const shoal_device_stats *d)
{
    unsigned char *set = malloc((size_t)(rt->n_models ? rt->n_models : 1));
    if (!set)
        return 0;   /* unknown: the rules that need it stay silent */
    memset(set, 1, (size_t)rt->n_models);
    int64_t w = (int64_t)sh_weight_store_set_bytes(rt->weights, set);
    free(set);
    return w + d->arena_bytes + d->staging_bytes;
}

/* Fills the rules' snapshot from the stats; models/modes arrays are the caller's, sized
 * st->n_models / st->n_modes, and mode_ids holds the concatenated model lists. */
static void fill_snapshot(shoal_runtime_t rt, const shoal_stats *st, sh_report_snapshot *s, sh_report_model *models,
                          sh_report_mode *modes, int *mode_ids)
{
    const shoal_device_stats *d = &st->devices[0];
    memset(s, 0, sizeof *s);
    s->device = d->name;
    s->gpu = !rt->backend.iface->host_memory;
    s->tensor_cores = s->gpu ? -1 : 0;   /* the backend does not report the compute capability yet */
    if (d->device_total_bytes > 0) {
        s->device_total_bytes = d->device_total_bytes;
    } else {
        long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
        s->device_total_bytes = pages > 0 && page > 0 ? (int64_t)pages * page : 0;
    }
    s->budget_bytes = d->budget_bytes;
    s->in_use_bytes = d->in_use_bytes;
    s->peak_bytes = d->peak_bytes;
    s->arena_bytes = d->arena_bytes;
    s->staging_bytes = d->staging_bytes;
    s->all_models_bytes = all_models_bytes(rt, d);
    s->host_cache_on = rt->host_cache_on;
    const sh_hardware_config *hw = &rt->cfg->hardware;
    if (hw->picked != SH_TIER_AUTO) {
        s->tier = sh_tier_name(hw->picked);
        const sh_tier_config *tc = &hw->tiers[hw->picked];
        s->tier_max_memory = tc->has_max_memory ? (int64_t)tc->max_memory : 0;
    }
    s->idle_unload_s = rt->cfg->memory.idle_unload_s;
    double now = sh_rt_now(rt);
    for (int i = 0; i < st->n_models; i++) {
        const shoal_model_stats *m = &st->models[i];
        const sh_rt_model *rm = &rt->models[i];
        pthread_mutex_lock(&rt->stats_lock);
        double since = rm->resident_since;
        pthread_mutex_unlock(&rt->stats_lock);
        models[i] = (sh_report_model){.name = m->name,
                                      .resident = m->state == SHOAL_MODEL_RESIDENT,
                                      .pinned = m->pinned,
                                      .preload = rm->cfg->preload,
                                      .weight_bytes = m->weight_bytes,
                                      .weight_unique_bytes = m->weight_unique_bytes,
                                      .plan_bytes = m->plan_bytes,
                                      .loads = m->loads,
                                      .evictions = m->evictions,
                                      .runs = m->runs,
                                      .last_use_s = m->last_use_s,
                                      .resident_s = since >= 0 ? now - since : -1,
                                      .reload_bytes = m->reload_bytes_total,
                                      .swap_in_ms_total = m->swap_in_ms_total,
                                      .fp32 = rm->prog && rm->prog->weight_dtype == SH_DT_FLOAT32};
    }
    int at = 0;
    for (int k = 0; k < st->n_modes; k++) {
        const sh_mode_config *mc = &rt->cfg->modes[k];
        const shoal_mode_stats *ms = &st->modes[k];
        int first = at;
        modes[k] = (sh_report_mode){.name = ms->name,
                                    .models = mode_ids + at,
                                    .runs = ms->runs,
                                    .switches = ms->switches,
                                    .reloading_switches = ms->reloading_switches,
                                    .switch_reload_bytes = ms->switch_reload_bytes};
        for (size_t i = 0; i < mc->n_models; i++) {
            mode_ids[at++] = (int)mc->models[i];
            if (rt->cfg->models[mc->models[i]].palm_stage)   /* a hand model's palm detector runs with it */
                mode_ids[at++] = (int)rt->cfg->models[mc->models[i]].palm_stage;
        }
        modes[k].n_models = at - first;
    }
    s->models = models;
    s->n_models = st->n_models;
    s->modes = modes;
    s->n_modes = st->n_modes;
}

/* How the device bytes shoal holds break down: per resident model its weights, less what
 * sharing saves, equals the distinct weights stored; the pool holds those in whole chunks;
 * the arenas and staging are shared by every model. */
static void add_attribution(shoal_runtime_t rt, cJSON *o, const shoal_stats *st)
{
    const shoal_device_stats *d = &st->devices[0];
    /* The union of the resident models' weights: what sharing across models leaves stored.
     * (dedup_saved_bytes also counts identical tensors inside one model.) */
    unsigned char *set = calloc((size_t)(st->n_models ? st->n_models : 1), 1);
    int64_t uni = -1;
    if (set) {
        for (int i = 0; i < st->n_models; i++)
            set[i] = st->models[i].state == SHOAL_MODEL_RESIDENT;
        uni = (int64_t)sh_weight_store_set_bytes(rt->weights, set);
        free(set);
    }
    int64_t resident_weights = 0, unique = 0, shared = 0;
    for (int i = 0; i < st->n_models; i++)
        if (st->models[i].state == SHOAL_MODEL_RESIDENT) {
            resident_weights += st->models[i].weight_bytes;
            unique += st->models[i].weight_unique_bytes;
            shared += st->models[i].weight_shared_bytes;
        }
    cJSON *a = cJSON_AddObjectToObject(o, "attribution");
    cJSON_AddNumberToObject(a, "resident_weight_bytes", (double)resident_weights);
    cJSON_AddNumberToObject(a, "resident_weight_unique_bytes", (double)unique);
    cJSON_AddNumberToObject(a, "resident_weight_shared_bytes", (double)shared);
    cJSON_AddNumberToObject(a, "resident_weight_union_bytes", (double)uni);
    cJSON_AddNumberToObject(a, "cross_model_shared_bytes", (double)(uni >= 0 ? resident_weights - uni : -1));
    cJSON_AddNumberToObject(a, "dedup_saved_bytes", (double)st->dedup_saved_bytes);
    cJSON_AddNumberToObject(a, "weights_stored_bytes", (double)d->weights_stored_bytes);
    cJSON_AddNumberToObject(a, "weights_pool_bytes", (double)d->weights_bytes);
    cJSON_AddNumberToObject(a, "pool_slack_bytes", (double)(d->weights_bytes - d->weights_stored_bytes));
    cJSON_AddNumberToObject(a, "arena_bytes", (double)d->arena_bytes);
    cJSON_AddNumberToObject(a, "staging_bytes", (double)d->staging_bytes);
    cJSON_AddNumberToObject(a, "device_in_use_bytes", (double)d->in_use_bytes);
    cJSON_AddNumberToObject(a, "host_cache_bytes", (double)d->host_cache_bytes);
}

/* What the process holds as the OS (RSS) or NVML (device process usage) sees it, and the gap
 * to shoal's own accounting: code, libraries, parsed graphs and plans on the host; the CUDA
 * context, cuDNN/cuBLAS handles and allocator rounding on a GPU. */
static void add_process(cJSON *o, const shoal_stats *st, bool gpu)
{
    const shoal_device_stats *d = &st->devices[0];
    cJSON *p = cJSON_AddObjectToObject(o, "process");
    sh_host_sample h;
    sh_err err = {0};
    int64_t accounted_host = d->host_cache_bytes + (gpu ? 0 : d->in_use_bytes);
    if (sh_host_sample_read(&h, &err) == 0) {
        cJSON_AddNumberToObject(p, "host_rss_bytes", (double)h.rss);
        cJSON_AddNumberToObject(p, "host_peak_rss_bytes", (double)h.peak_rss);
        cJSON_AddNumberToObject(p, "host_accounted_bytes", (double)accounted_host);
        cJSON_AddNumberToObject(p, "host_gap_bytes", (double)((int64_t)h.rss - accounted_host));
    }
    sh_nvml *nv = NULL;
    if (!gpu) {
        cJSON_AddStringToObject(p, "nvml", "not used: the runtime runs on the CPU");
    } else if (sh_nvml_open(NULL, NULL, &nv, &err) != 0) {
        cJSON_AddStringToObject(p, "nvml", err.msg);
    } else {
        sh_gpu_sample g;
        if (sh_nvml_sample(nv, 0, &g, &err) == 0) {
            cJSON_AddStringToObject(p, "nvml", "ok");
            cJSON_AddNumberToObject(p, "gpu_used_bytes", (double)g.used);
            cJSON_AddNumberToObject(p, "gpu_total_bytes", (double)g.total);
            if (g.process_used >= 0) {
                cJSON_AddNumberToObject(p, "gpu_process_bytes", (double)g.process_used);
                cJSON_AddNumberToObject(p, "gpu_accounted_bytes", (double)d->in_use_bytes);
                cJSON_AddNumberToObject(p, "gpu_gap_bytes", (double)(g.process_used - d->in_use_bytes));
            }
        } else {
            cJSON_AddStringToObject(p, "nvml", err.msg);
        }
        sh_nvml_close(nv);
    }
}

char *shoal_runtime_report_json(shoal_runtime_t rt)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return NULL;
    int n_ids = 0;
    for (size_t k = 0; k < rt->cfg->n_modes; k++)
        for (size_t i = 0; i < rt->cfg->modes[k].n_models; i++)
            n_ids += rt->cfg->models[rt->cfg->modes[k].models[i]].palm_stage ? 2 : 1;
    sh_report_model *rm = calloc((size_t)(st.n_models ? st.n_models : 1), sizeof *rm);
    sh_report_mode *rmo = calloc((size_t)(st.n_modes ? st.n_modes : 1), sizeof *rmo);
    int *ids = calloc((size_t)(n_ids ? n_ids : 1), sizeof *ids);
    sh_recommendation *recs = calloc(SH_REPORT_MAX_RECS, sizeof *recs);
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (!rm || !rmo || !ids || !recs || !o)
        goto done;
    sh_report_snapshot snap;
    fill_snapshot(rt, &st, &snap, rm, rmo, ids);

    cJSON_AddStringToObject(o, "shoal_version", SHOAL_VERSION);
    cJSON_AddNumberToObject(o, "uptime_s", sh_rt_now(rt));
    cJSON_AddStringToObject(o, "tier", snap.tier ? snap.tier : "none");
    /* how a mode's models run: at once in disjoint arena ranges, or in turn over one range */
    cJSON *ex = cJSON_AddObjectToObject(o, "execution");
    cJSON_AddBoolToObject(ex, "concurrent_models", rt->concurrent);
    cJSON_AddNumberToObject(ex, "arena_contexts", rt->n_contexts);
    cJSON_AddNumberToObject(ex, "arena_bytes_per_context", (double)rt->arena_bytes);
    cJSON_AddNumberToObject(ex, "largest_plan_bytes", (double)rt->plan_max_bytes);
    cJSON *devs = cJSON_AddArrayToObject(o, "devices");
    for (int i = 0; i < st.n_devices; i++) {
        const shoal_device_stats *d = &st.devices[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", d->name);
        cJSON_AddNumberToObject(j, "total_bytes", (double)snap.device_total_bytes);
        cJSON_AddNumberToObject(j, "budget_bytes", (double)d->budget_bytes);
        cJSON_AddNumberToObject(j, "in_use_bytes", (double)d->in_use_bytes);
        cJSON_AddNumberToObject(j, "peak_bytes", (double)d->peak_bytes);
        cJSON_AddNumberToObject(j, "weights_bytes", (double)d->weights_bytes);
        cJSON_AddNumberToObject(j, "weights_stored_bytes", (double)d->weights_stored_bytes);
        cJSON_AddNumberToObject(j, "arena_bytes", (double)d->arena_bytes);
        cJSON_AddNumberToObject(j, "staging_bytes", (double)d->staging_bytes);
        cJSON_AddNumberToObject(j, "host_cache_bytes", (double)d->host_cache_bytes);
        cJSON_AddBoolToObject(j, "host_cache_enabled", rt->host_cache_on);
        cJSON_AddNumberToObject(j, "dedup_saved_bytes", (double)st.dedup_saved_bytes);
        cJSON_AddNumberToObject(j, "all_models_bytes", (double)snap.all_models_bytes);
        cJSON_AddItemToArray(devs, j);
    }
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < st.n_models; i++) {
        const shoal_model_stats *m = &st.models[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", m->name);
        cJSON_AddStringToObject(j, "state", state_name(m->state));
        cJSON_AddBoolToObject(j, "pinned", m->pinned);
        cJSON_AddBoolToObject(j, "preload", rm[i].preload);
        cJSON_AddStringToObject(j, "precision", rm[i].fp32 ? "fp32" : "fp16");
        cJSON_AddNumberToObject(j, "weight_bytes", (double)m->weight_bytes);
        cJSON_AddNumberToObject(j, "weight_unique_bytes", (double)m->weight_unique_bytes);
        cJSON_AddNumberToObject(j, "weight_shared_bytes", (double)m->weight_shared_bytes);
        cJSON_AddNumberToObject(j, "plan_bytes", (double)m->plan_bytes);
        cJSON_AddNumberToObject(j, "plan_share_percent",
                                rt->arena_bytes > 0 ? 100.0 * (double)m->plan_bytes / (double)rt->arena_bytes : 0);
        cJSON_AddNumberToObject(j, "plan_lower_bound", (double)m->plan_lower_bound);
        cJSON_AddNumberToObject(j, "arena_offset", (double)rt->models[i].arena_off);
        cJSON_AddNumberToObject(j, "lane", rt->models[i].lane);
        cJSON_AddNumberToObject(j, "workspace_bytes", (double)m->workspace_bytes);
        cJSON_AddNumberToObject(j, "host_cache_bytes", (double)m->host_cache_bytes);
        cJSON_AddNumberToObject(j, "loads", (double)m->loads);
        cJSON_AddNumberToObject(j, "evictions", (double)m->evictions);
        cJSON_AddNumberToObject(j, "runs", (double)m->runs);
        cJSON_AddNumberToObject(j, "last_use_s", m->last_use_s);
        cJSON_AddNumberToObject(j, "load_bytes_total", (double)m->load_bytes_total);
        cJSON_AddNumberToObject(j, "reload_bytes_total", (double)m->reload_bytes_total);
        cJSON_AddNumberToObject(j, "swap_in_ms_last", m->swap_in_ms_last);
        cJSON_AddNumberToObject(j, "swap_in_ms_total", m->swap_in_ms_total);
        cJSON_AddNumberToObject(j, "latency_ms_p50", m->latency_ms_p50);
        cJSON_AddNumberToObject(j, "latency_ms_p90", m->latency_ms_p90);
        cJSON_AddNumberToObject(j, "latency_ms_p99", m->latency_ms_p99);
        cJSON_AddItemToArray(models, j);
    }
    cJSON *modes = cJSON_AddArrayToObject(o, "modes");
    for (int k = 0; k < st.n_modes; k++) {
        const shoal_mode_stats *ms = &st.modes[k];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", ms->name);
        cJSON *names = cJSON_AddArrayToObject(j, "models");
        for (int i = 0; i < rmo[k].n_models; i++)
            cJSON_AddItemToArray(names, cJSON_CreateString(rt->models[rmo[k].models[i]].cfg->name));
        cJSON_AddNumberToObject(j, "runs", (double)ms->runs);
        cJSON_AddNumberToObject(j, "switches", (double)ms->switches);
        cJSON_AddNumberToObject(j, "reloading_switches", (double)ms->reloading_switches);
        cJSON_AddNumberToObject(j, "switch_reload_bytes", (double)ms->switch_reload_bytes);
        cJSON_AddItemToArray(modes, j);
    }
    add_attribution(rt, o, &st);
    add_process(o, &st, snap.gpu);
    int n = sh_report_recommend(&snap, NULL, recs, SH_REPORT_MAX_RECS);
    cJSON *arr = sh_report_recs_json(recs, n);
    if (arr)
        cJSON_AddItemToObject(o, "recommendations", arr);
    text = cJSON_Print(o);
done:
    cJSON_Delete(o);
    free(recs);
    free(ids);
    free(rmo);
    free(rm);
    shoal_stats_free(&st);
    return text;
}
