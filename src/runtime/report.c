/* The JSON memory report. Recommendations are computed in src/monitor (report.c there)
 * once it exists; this gives the measured figures they are computed from. */
#include <cjson/cJSON.h>

#include "runtime/runtime-impl.h"

char *shoal_runtime_report_json(shoal_runtime_t rt)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON *devs = cJSON_AddArrayToObject(o, "devices");
    for (int i = 0; i < st.n_devices; i++) {
        const shoal_device_stats *d = &st.devices[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", d->name);
        cJSON_AddNumberToObject(j, "budget_bytes", (double)d->budget_bytes);
        cJSON_AddNumberToObject(j, "in_use_bytes", (double)d->in_use_bytes);
        cJSON_AddNumberToObject(j, "peak_bytes", (double)d->peak_bytes);
        cJSON_AddNumberToObject(j, "weights_bytes", (double)d->weights_bytes);
        cJSON_AddNumberToObject(j, "arena_bytes", (double)d->arena_bytes);
        cJSON_AddNumberToObject(j, "host_cache_bytes", (double)d->host_cache_bytes);
        cJSON_AddNumberToObject(j, "dedup_saved_bytes", (double)st.dedup_saved_bytes);
        cJSON_AddItemToArray(devs, j);
    }
    cJSON *models = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < st.n_models; i++) {
        const shoal_model_stats *m = &st.models[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", m->name);
        cJSON_AddStringToObject(j, "state", m->state == SHOAL_MODEL_RESIDENT ? "resident"
                                            : m->state == SHOAL_MODEL_CACHED ? "cached" : "unloaded");
        cJSON_AddBoolToObject(j, "pinned", m->pinned);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)m->weight_bytes);
        cJSON_AddNumberToObject(j, "weight_unique_bytes", (double)m->weight_unique_bytes);
        cJSON_AddNumberToObject(j, "weight_shared_bytes", (double)m->weight_shared_bytes);
        cJSON_AddNumberToObject(j, "plan_bytes", (double)m->plan_bytes);
        cJSON_AddNumberToObject(j, "plan_lower_bound", (double)m->plan_lower_bound);
        cJSON_AddNumberToObject(j, "workspace_bytes", (double)m->workspace_bytes);
        cJSON_AddNumberToObject(j, "host_cache_bytes", (double)m->host_cache_bytes);
        cJSON_AddNumberToObject(j, "loads", (double)m->loads);
        cJSON_AddNumberToObject(j, "evictions", (double)m->evictions);
        cJSON_AddNumberToObject(j, "runs", (double)m->runs);
        cJSON_AddNumberToObject(j, "swap_in_ms_last", m->swap_in_ms_last);
        cJSON_AddNumberToObject(j, "latency_ms_p50", m->latency_ms_p50);
        cJSON_AddNumberToObject(j, "latency_ms_p99", m->latency_ms_p99);
        cJSON_AddItemToArray(models, j);
    }
    shoal_stats_free(&st);
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    return text;
}
