/* Temporary: the public runtime API until src/runtime/runtime.c lands. */
#include <stdlib.h>
#include <string.h>

#include "shoal.h"

shoal_runtime_params shoal_runtime_default_params(void)
{
    shoal_runtime_params p;
    memset(&p, 0, sizeof p);
    p.preload = 1;
    return p;
}
int shoal_runtime_create(const shoal_runtime_params *params, shoal_runtime_t *out)
{
    *out = NULL;
    if (params->error && params->error_cap)
        strncpy(params->error, "runtime not implemented yet", params->error_cap - 1);
    return SHOAL_ERR_UNSUPPORTED;
}
void shoal_runtime_destroy(shoal_runtime_t rt) { (void)rt; }
const char *shoal_runtime_last_error(shoal_runtime_t rt) { (void)rt; return "not implemented"; }
int shoal_runtime_run_mode(shoal_runtime_t rt, const char *mode, const shoal_image *f, shoal_results_t *out) { return SHOAL_ERR_UNSUPPORTED; }
int shoal_runtime_run_model(shoal_runtime_t rt, const char *m, const shoal_image *f, shoal_results_t *out) { return SHOAL_ERR_UNSUPPORTED; }
int shoal_runtime_load_model(shoal_runtime_t rt, const char *m) { return SHOAL_ERR_UNSUPPORTED; }
int shoal_runtime_unload_model(shoal_runtime_t rt, const char *m) { return SHOAL_ERR_UNSUPPORTED; }
int shoal_runtime_set_budget(shoal_runtime_t rt, int64_t b) { return SHOAL_ERR_UNSUPPORTED; }
int shoal_runtime_prefetch_mode(shoal_runtime_t rt, const char *m) { return SHOAL_ERR_UNSUPPORTED; }
int shoal_runtime_is_ready(shoal_runtime_t rt) { return 0; }
int shoal_runtime_model_count(shoal_runtime_t rt) { return 0; }
const char *shoal_runtime_model_name(shoal_runtime_t rt, int i) { return NULL; }
int shoal_runtime_mode_count(shoal_runtime_t rt) { return 0; }
const char *shoal_runtime_mode_name(shoal_runtime_t rt, int i) { return NULL; }
int shoal_results_count(shoal_results_t res) { return 0; }
const shoal_model_result *shoal_results_get(shoal_results_t res, int i) { return NULL; }
double shoal_results_total_ms(shoal_results_t res) { return 0; }
char *shoal_results_to_json(shoal_results_t res) { return NULL; }
int shoal_results_draw(shoal_results_t res, const shoal_image *frame, const char *png_path) { return SHOAL_ERR_UNSUPPORTED; }
void shoal_results_destroy(shoal_results_t res) { (void)res; }
void shoal_free_string(char *s) { free(s); }
int shoal_runtime_get_stats(shoal_runtime_t rt, shoal_stats *out) { memset(out, 0, sizeof *out); return SHOAL_ERR_UNSUPPORTED; }
void shoal_stats_free(shoal_stats *s) { (void)s; }
char *shoal_runtime_prometheus(shoal_runtime_t rt) { return NULL; }
char *shoal_runtime_report_json(shoal_runtime_t rt) { return NULL; }
int shoal_image_load(const char *path, shoal_image *out, char *err, size_t cap) { memset(out, 0, sizeof *out); return SHOAL_ERR_UNSUPPORTED; }
int shoal_image_decode(const void *d, size_t n, shoal_image *out, char *err, size_t cap) { memset(out, 0, sizeof *out); return SHOAL_ERR_UNSUPPORTED; }
shoal_image shoal_image_wrap(uint8_t *rgb, int w, int h) { shoal_image i = {w, h, rgb, 0}; return i; }
void shoal_image_free(shoal_image *img) { if (img && img->owned) free(img->rgb); }
