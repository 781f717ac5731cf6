/* Stats, Prometheus text, the cleanup policy and the background monitor thread. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor/prom.h"
#include "runtime/runtime-impl.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void percentiles(shoal_runtime_t rt, const sh_rt_model *m, double *p50, double *p90, double *p99)
{
    double buf[SH_RT_LATENCY_RING];
    pthread_mutex_lock(&rt->stats_lock);
    int n = m->lat_count;
    memcpy(buf, m->lat_ms, sizeof(double) * (size_t)n);
    pthread_mutex_unlock(&rt->stats_lock);
    if (!n) {
        *p50 = *p90 = *p99 = 0;
        return;
    }
    qsort(buf, (size_t)n, sizeof(double), cmp_double);
    *p50 = buf[(n - 1) * 50 / 100];
    *p90 = buf[(n - 1) * 90 / 100];
    *p99 = buf[(n - 1) * 99 / 100];
}

int shoal_runtime_get_stats(shoal_runtime_t rt, shoal_stats *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!rt || !out)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_runtime_get_stats: %s is NULL", !rt ? "rt" : "out");
    out->models = calloc((size_t)(rt->n_models ? rt->n_models : 1), sizeof *out->models);
    out->devices = calloc(1, sizeof *out->devices);
    out->modes = calloc(rt->cfg->n_modes ? rt->cfg->n_modes : 1, sizeof *out->modes);
    if (!out->models || !out->devices || !out->modes) {
        shoal_stats_free(out);
        return sh_rt_fail(rt, &(sh_err){SHOAL_ERR_NO_MEMORY, "out of memory"});
    }
    double now = sh_rt_now(rt);
    out->n_models = rt->n_models;
    for (int i = 0; i < rt->n_models; i++) {
        const sh_rt_model *m = &rt->models[i];
        shoal_model_stats *s = &out->models[i];
        sh_residency_model_stats rs;
        sh_weight_model_stats ws;
        sh_residency_model_get_stats(rt->residency, i, &rs);
        sh_weight_store_model_stats(rt->weights, i, &ws);
        s->name = m->cfg->name;
        s->state = rs.resident ? SHOAL_MODEL_RESIDENT : SHOAL_MODEL_UNLOADED;
        s->pinned = rs.pinned;
        s->priority = m->cfg->priority;
        s->weight_bytes = (int64_t)ws.bytes;
        s->weight_unique_bytes = (int64_t)ws.unique_bytes;
        s->weight_shared_bytes = (int64_t)ws.shared_bytes;
        s->plan_bytes = m->plan ? (int64_t)m->plan->arena_bytes : 0;
        s->plan_lower_bound = m->plan ? (int64_t)m->plan->lower_bound : 0;
        int64_t wsb = 0;
        for (int k = 0; m->plan && k < m->plan->n_nodes; k++)
            wsb += (int64_t)m->plan->ws_bytes[k];
        s->workspace_bytes = wsb;
        s->host_cache_bytes = (int64_t)sh_budget_model_in_use(rt->budget, i, SH_MEM_HOST_CACHE);
        if (!rs.resident && s->host_cache_bytes > 0)
            s->state = SHOAL_MODEL_CACHED;
        s->loads = rs.loads;
        s->evictions = rs.evictions + rs.idle_unloads;
        pthread_mutex_lock(&rt->stats_lock);
        s->runs = m->runs;
        s->latency_ms_last = m->lat_last_ms;
        s->load_bytes_total = (int64_t)m->load_bytes_total;
        s->reload_bytes_total = (int64_t)m->reload_bytes_total;
        pthread_mutex_unlock(&rt->stats_lock);
        s->last_use_s = rs.last_use > 0 ? now - rs.last_use : -1;
        s->swap_in_ms_last = (double)rs.swap_in_ns_last / 1e6;
        s->swap_in_ms_total = (double)rs.swap_in_ns_total / 1e6;
        percentiles(rt, m, &s->latency_ms_p50, &s->latency_ms_p90, &s->latency_ms_p99);
    }
    sh_budget_stats bs;
    sh_budget_get_stats(rt->budget, &bs);
    shoal_device_stats *d = &out->devices[0];
    out->n_devices = 1;
    d->name = sh_budget_device_name(rt->budget);
    d->budget_bytes = (int64_t)bs.device_limit;
    d->in_use_bytes = (int64_t)bs.device_in_use;
    d->peak_bytes = (int64_t)bs.device_peak;
    d->weights_bytes = (int64_t)bs.in_use[SH_MEM_WEIGHTS];
    d->arena_bytes = (int64_t)(bs.in_use[SH_MEM_ACTIVATIONS] + bs.in_use[SH_MEM_WORKSPACE]);
    d->staging_bytes = (int64_t)bs.in_use[SH_MEM_STAGING];
    d->host_cache_bytes = (int64_t)bs.in_use[SH_MEM_HOST_CACHE];
    d->device_total_bytes = d->device_used_bytes = d->process_bytes = -1;
    size_t total, free_b;
    if (rt->backend.iface->memory_info && rt->backend.iface->memory_info(rt->backend.ctx, &total, &free_b) == 0) {
        d->device_total_bytes = (int64_t)total;
        d->device_used_bytes = (int64_t)(total - free_b);
    }
    sh_weight_store_stats wst;
    sh_weight_store_get_stats(rt->weights, &wst);
    out->dedup_saved_bytes = (int64_t)wst.shared_saved_bytes;
    d->weights_stored_bytes = (int64_t)wst.device_bytes;
    out->n_modes = (int)rt->cfg->n_modes;
    pthread_mutex_lock(&rt->stats_lock);
    for (int k = 0; k < out->n_modes; k++) {
        const sh_rt_mode_stats *ms = &rt->mode_stats[k];
        out->modes[k] = (shoal_mode_stats){.name = rt->cfg->modes[k].name,
                                           .runs = ms->runs,
                                           .switches = ms->switches,
                                           .reloading_switches = ms->reloading_switches,
                                           .switch_reload_bytes = (int64_t)ms->switch_reload_bytes};
    }
    pthread_mutex_unlock(&rt->stats_lock);
    return SHOAL_OK;
}

void shoal_stats_free(shoal_stats *s)
{
    if (!s)
        return;
    free(s->models);
    free(s->devices);
    free(s->modes);
    memset(s, 0, sizeof *s);
}

/* --- Prometheus ------------------------------------------------------------------------ */

static int prom_models(sh_prom *p, const shoal_stats *st, sh_err *err)
{
    static const char *const kinds[] = {"weights", "weights_unique", "weights_shared", "plan", "workspace", "host_cache"};
    int rc = sh_prom_family(p, "shoal_model_bytes", SH_PROM_GAUGE, "Bytes a model holds or plans, by kind.", err);
    for (int i = 0; rc == 0 && i < st->n_models; i++) {
        const shoal_model_stats *m = &st->models[i];
        double v[] = {(double)m->weight_bytes, (double)m->weight_unique_bytes, (double)m->weight_shared_bytes,
                      (double)m->plan_bytes, (double)m->workspace_bytes, (double)m->host_cache_bytes};
        for (int k = 0; rc == 0 && k < 6; k++) {
            sh_prom_label l[] = {{"model", m->name}, {"kind", kinds[k]}};
            rc = sh_prom_sample(p, l, 2, v[k], err);
        }
    }
    if (rc == 0)
        rc = sh_prom_family(p, "shoal_model_resident", SH_PROM_GAUGE, "1 when the model's weights are on the device.", err);
    for (int i = 0; rc == 0 && i < st->n_models; i++) {
        sh_prom_label l[] = {{"model", st->models[i].name}};
        rc = sh_prom_sample(p, l, 1, st->models[i].state == SHOAL_MODEL_RESIDENT, err);
    }
    struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"shoal_model_loads", "Times the model was made resident.", offsetof(shoal_model_stats, loads)},
        {"shoal_model_evictions", "Times the model was evicted or unloaded idle.", offsetof(shoal_model_stats, evictions)},
        {"shoal_model_runs", "Inferences the model ran.", offsetof(shoal_model_stats, runs)},
    };
    for (int c = 0; rc == 0 && c < 3; c++) {
        rc = sh_prom_family(p, counters[c].name, SH_PROM_COUNTER, counters[c].help, err);
        for (int i = 0; rc == 0 && i < st->n_models; i++) {
            sh_prom_label l[] = {{"model", st->models[i].name}};
            uint64_t v = *(const uint64_t *)((const char *)&st->models[i] + counters[c].off);
            rc = sh_prom_sample(p, l, 1, (double)v, err);
        }
    }
    return rc;
}

static int prom_latency(shoal_runtime_t rt, sh_prom *p, sh_err *err)
{
    /* Seconds, Prometheus's base unit (promtool's lint rejects abbreviated units like _ms). */
    static const double bounds[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5};
    int rc = sh_prom_family(p, "shoal_model_latency_seconds", SH_PROM_HISTOGRAM,
                            "Per-model latency (preprocess + inference + decode) of recent runs.", err);
    for (int i = 0; rc == 0 && i < rt->n_models; i++) {
        sh_prom_hist h;
        sh_prom_hist_init(&h, bounds, sizeof bounds / sizeof bounds[0]);
        const sh_rt_model *m = &rt->models[i];
        pthread_mutex_lock(&rt->stats_lock);
        for (int k = 0; k < m->lat_count; k++)
            sh_prom_hist_observe(&h, m->lat_ms[k] / 1000.0);
        pthread_mutex_unlock(&rt->stats_lock);
        sh_prom_label l[] = {{"model", m->cfg->name}};
        rc = sh_prom_histogram(p, l, 1, &h, err);
    }
    return rc;
}

/* Mode switches and the weight bytes they loaded again (the report's mode_switch_reload). */
static int prom_modes(sh_prom *p, const shoal_stats *st, sh_err *err)
{
    int rc = sh_prom_family(p, "shoal_mode_switches", SH_PROM_COUNTER, "Runs of a mode that followed another mode.", err);
    for (int k = 0; rc == 0 && k < st->n_modes; k++) {
        sh_prom_label l[] = {{"mode", st->modes[k].name}};
        rc = sh_prom_sample(p, l, 1, (double)st->modes[k].switches, err);
    }
    if (rc == 0)
        rc = sh_prom_family(p, "shoal_mode_switch_reload_bytes", SH_PROM_COUNTER,
                            "Weight bytes switches to a mode loaded again after an eviction.", err);
    for (int k = 0; rc == 0 && k < st->n_modes; k++) {
        sh_prom_label l[] = {{"mode", st->modes[k].name}};
        rc = sh_prom_sample(p, l, 1, (double)st->modes[k].switch_reload_bytes, err);
    }
    return rc;
}

static int prom_device(sh_prom *p, const shoal_stats *st, sh_err *err)
{
    const shoal_device_stats *d = &st->devices[0];
    int rc = sh_prom_family(p, "shoal_device_bytes", SH_PROM_GAUGE, "Device bytes shoal accounts for, by kind.", err);
    struct {
        const char *kind;
        int64_t v;
    } kinds[] = {{"in_use", d->in_use_bytes}, {"peak", d->peak_bytes}, {"budget", d->budget_bytes},
                 {"weights", d->weights_bytes}, {"arena", d->arena_bytes}, {"staging", d->staging_bytes},
                 {"host_cache", d->host_cache_bytes}};
    for (int k = 0; rc == 0 && k < 7; k++) {
        sh_prom_label l[] = {{"device", d->name}, {"kind", kinds[k].kind}};
        rc = sh_prom_sample(p, l, 2, (double)kinds[k].v, err);
    }
    if (rc == 0)
        rc = sh_prom_family(p, "shoal_dedup_saved_bytes", SH_PROM_GAUGE,
                            "Device bytes not stored because identical tensors are shared.", err);
    if (rc == 0)
        rc = sh_prom_sample(p, NULL, 0, (double)st->dedup_saved_bytes, err);
    return rc;
}

char *shoal_runtime_prometheus(shoal_runtime_t rt)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return NULL;
    sh_err err = {0};
    sh_prom *p = NULL;
    char *out = NULL;
    int rc = sh_prom_create(rt->alloc, &p, &err);
    if (rc == 0)
        rc = prom_device(p, &st, &err);
    if (rc == 0)
        rc = prom_models(p, &st, &err);
    if (rc == 0)
        rc = prom_modes(p, &st, &err);
    if (rc == 0)
        rc = prom_latency(rt, p, &err);
    if (rc == 0) {
        size_t len;
        const char *text = sh_prom_text(p, &len);
        out = malloc(len + 1);
        if (out) {
            memcpy(out, text, len);
            out[len] = '\0';
        }
    } else {
        sh_rt_fail(rt, &err);
    }
    sh_prom_destroy(p);
    shoal_stats_free(&st);
    return out;
}

/* --- cleanup and the monitor thread ---------------------------------------------------- */

/* Evicts unpinned, unreferenced models, least recently used first, until the device bytes in
 * use are at most target_fraction of the budget. Returns how many it evicted. */
int sh_rt_cleanup(shoal_runtime_t rt, double target_fraction)
{
    int evicted = 0;
    for (;;) {
        sh_budget_stats bs;
        sh_budget_get_stats(rt->budget, &bs);
        if (!bs.device_limit || (double)bs.device_in_use <= target_fraction * (double)bs.device_limit)
            break;
        int victim = -1;
        double oldest = 0;
        for (int i = 0; i < rt->n_models; i++) {
            sh_residency_model_stats rs;
            sh_residency_model_get_stats(rt->residency, i, &rs);
            if (!rs.resident || rs.pinned || rs.refs)
                continue;
            if (victim < 0 || rs.last_use < oldest) {
                victim = i;
                oldest = rs.last_use;
            }
        }
        if (victim < 0 || sh_residency_evict(rt->residency, victim, NULL) != 0)
            break;
        evicted++;
    }
    if (evicted) {
        pthread_mutex_lock(&rt->stats_lock);
        rt->cleanups++;
        pthread_mutex_unlock(&rt->stats_lock);
        sh_rt_logf(rt, SHOAL_LOG_INFO, "cleanup evicted %d model(s)", evicted);
    }
    return evicted;
}

static void *monitor_main(void *arg)
{
    shoal_runtime_t rt = arg;
    double interval = rt->cfg->monitor.interval_s > 0 ? rt->cfg->monitor.interval_s : 5.0;
    pthread_mutex_lock(&rt->monitor_lock);
    while (!rt->monitor_stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long ns = (long)((interval - (long)interval) * 1e9);
        until.tv_sec += (time_t)interval + (until.tv_nsec + ns) / 1000000000L;
        until.tv_nsec = (until.tv_nsec + ns) % 1000000000L;
        int rc = 0;
        while (!rt->monitor_stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&rt->monitor_wake, &rt->monitor_lock, &until);
        if (rt->monitor_stop)
            break;
        pthread_mutex_unlock(&rt->monitor_lock);
        int idle = sh_residency_tick(rt->residency, sh_rt_now(rt));
        if (idle)
            sh_rt_logf(rt, SHOAL_LOG_INFO, "monitor unloaded %d idle model(s)", idle);
        double thr = rt->cfg->memory.cleanup_threshold;
        if (thr > 0 && thr < 1)
            sh_rt_cleanup(rt, thr);
        pthread_mutex_lock(&rt->monitor_lock);
    }
    pthread_mutex_unlock(&rt->monitor_lock);
    return NULL;
}

int sh_rt_monitor_start(shoal_runtime_t rt, sh_err *err)
{
    rt->monitor_stop = false;
    if (pthread_create(&rt->monitor, NULL, monitor_main, rt) != 0)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "could not start the monitor thread");
    rt->monitor_running = true;
    return 0;
}

void sh_rt_monitor_stop(shoal_runtime_t rt)
{
    if (!rt->monitor_running)
        return;
    pthread_mutex_lock(&rt->monitor_lock);
    rt->monitor_stop = true;
    pthread_cond_signal(&rt->monitor_wake);
    pthread_mutex_unlock(&rt->monitor_lock);
    pthread_join(rt->monitor, NULL);
    rt->monitor_running = false;
}
