/* Results of a run: accessors, JSON, drawing; and the public image functions. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/hand_task.h"
#include "runtime/runtime-impl.h"
#include "vision/draw.h"
#include "vision/image.h"

static int no_results(const char *fn)
{
    return sh_api_fail(SHOAL_ERR_INVALID_ARG, "%s: res is NULL", fn);
}

int shoal_results_count(shoal_results_t res)
{
    return res ? res->n : no_results("shoal_results_count");
}

const shoal_model_result *shoal_results_get(shoal_results_t res, int i)
{
    if (!res) {
        no_results("shoal_results_get");
        return NULL;
    }
    return i >= 0 && i < res->n ? &res->items[i].pub : NULL;
}

double shoal_results_total_ms(shoal_results_t res)
{
    return res ? res->total_ms : no_results("shoal_results_total_ms");
}

double shoal_results_infer_ms(shoal_results_t res)
{
    return res ? res->infer_ms : no_results("shoal_results_infer_ms");
}

double shoal_results_device_ms(shoal_results_t res)
{
    return res ? res->device_ms : no_results("shoal_results_device_ms");
}

int shoal_results_concurrent(shoal_results_t res)
{
    return res ? res->concurrent : no_results("shoal_results_concurrent");
}

void shoal_results_destroy(shoal_results_t res)
{
    if (!res)
        return;
    for (int i = 0; i < res->n; i++)
        sh_rt_result_free(res->alloc, &res->items[i]);
    sh_allocator *a = res->alloc;
    sh_free(a, res->items);
    sh_free(a, res);
}

void shoal_free_string(char *s)
{
    cJSON_free(s);
}

static double round3(double v)
{
    return (double)(long long)(v * 1000.0 + (v >= 0 ? 0.5 : -0.5)) / 1000.0;
}

static cJSON *detection_json(const shoal_detection *d)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "class_id", d->class_id);
    cJSON_AddStringToObject(j, "class", d->class_name ? d->class_name : "");
    cJSON_AddNumberToObject(j, "score", round3(d->score));
    double box[4] = {round3(d->x1), round3(d->y1), round3(d->x2), round3(d->y2)};
    cJSON_AddItemToObject(j, "box", cJSON_CreateDoubleArray(box, 4));
    if (d->mask_rle) {
        cJSON *m = cJSON_AddObjectToObject(j, "mask");
        cJSON_AddNumberToObject(m, "area", (double)d->mask_area);
        cJSON_AddStringToObject(m, "rle", d->mask_rle);
    }
    return j;
}

char *shoal_results_to_json(shoal_results_t res)
{
    if (!res && no_results("shoal_results_to_json"))
        return NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "mode", res->mode);
    cJSON_AddNumberToObject(o, "total_ms", round3(res->total_ms));
    cJSON_AddNumberToObject(o, "infer_ms", round3(res->infer_ms));
    if (res->device_ms >= 0)
        cJSON_AddNumberToObject(o, "device_ms", round3(res->device_ms));
    cJSON_AddBoolToObject(o, "concurrent", res->concurrent);
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < res->n; i++) {
        const shoal_model_result *r = &res->items[i].pub;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", r->model ? r->model : "");
        cJSON_AddStringToObject(j, "task", r->task ? r->task : "");
        cJSON_AddNumberToObject(j, "latency_ms", round3(r->latency_ms));
        cJSON_AddNumberToObject(j, "infer_ms", round3(r->infer_ms));
        if (res->items[i].cfg && res->items[i].cfg->task == SH_TASK_HAND_LANDMARKS) {
            sh_rt_hand_json(j, &res->items[i]);
        } else if (r->n_landmarks) {
            cJSON *lm = cJSON_AddArrayToObject(j, "landmarks");
            for (int k = 0; k < r->n_landmarks; k++) {
                double p[3] = {round3(r->landmarks[3 * k]), round3(r->landmarks[3 * k + 1]),
                               round3(r->landmarks[3 * k + 2])};
                cJSON_AddItemToArray(lm, cJSON_CreateDoubleArray(p, 3));
            }
            cJSON_AddNumberToObject(j, "presence", round3(r->presence));
            cJSON_AddNumberToObject(j, "handedness", round3(r->handedness));
        } else {
            cJSON *dets = cJSON_AddArrayToObject(j, "detections");
            for (int k = 0; k < r->n_detections; k++)
                cJSON_AddItemToArray(dets, detection_json(&r->detections[k]));
        }
        cJSON_AddItemToArray(arr, j);
    }
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

int shoal_results_draw(shoal_results_t res, const shoal_image *frame, const char *png_path)
{
    if (!res || !frame || !frame->rgb || !png_path)
        return sh_api_fail(SHOAL_ERR_INVALID_ARG, "shoal_results_draw: %s is NULL",
                           !res ? "res" : !frame ? "frame" : !frame->rgb ? "frame->rgb" : "png_path");
    sh_err err = {0};
    sh_image src = {.width = frame->width, .height = frame->height, .channels = 3, .data = frame->rgb};
    sh_image img;
    int rc = sh_image_clone(res->alloc, &src, &img, &err);
    if (rc)
        return sh_api_fail(rc, "%s", err.msg);
    for (int i = 0; i < res->n; i++) {
        const sh_rt_result *r = &res->items[i];
        sh_draw_params dp = sh_draw_default_params();
        dp.class_names = (const char *const *)r->cfg->classes;
        dp.n_class_names = (int)r->cfg->n_classes;
        if (r->dets)
            sh_draw_detections(&img, r->dets, &dp);
        if (r->pub.n_hands)
            sh_rt_hand_draw(&img, r);
        else if (r->has_hand)
            sh_draw_hand(&img, &r->hand, &dp);
    }
    rc = sh_image_write_png(&img, png_path, &err);
    sh_image_free(&img);
    return rc ? sh_api_fail(rc, "%s", err.msg) : SHOAL_OK;
}

/* --- public images: pixels come from malloc so callers may own them plainly ----------- */

static int image_out(sh_image *img, shoal_image *out)
{
    size_t n = (size_t)img->width * (size_t)img->height * 3;
    uint8_t *copy = malloc(n);
    if (!copy) {
        sh_image_free(img);
        return SHOAL_ERR_NO_MEMORY;
    }
    memcpy(copy, img->data, n);
    out->width = img->width;
    out->height = img->height;
    out->rgb = copy;
    out->owned = 1;
    sh_image_free(img);
    return SHOAL_OK;
}

/* An image call's failure: this thread's shoal_last_error(), and errbuf when given. */
static int image_fail(char *errbuf, size_t cap, const sh_err *err)
{
    if (errbuf && cap)
        snprintf(errbuf, cap, "%s", err->msg);
    return sh_api_fail(err->status, "%s", err->msg);
}

int shoal_image_load(const char *path, shoal_image *out, char *errbuf, size_t cap)
{
    sh_err err = {0};
    if (out)
        memset(out, 0, sizeof *out);
    if (!path || !out) {
        sh_errf(&err, SHOAL_ERR_INVALID_ARG, "shoal_image_load: %s is NULL", !path ? "path" : "out");
        return image_fail(errbuf, cap, &err);
    }
    sh_image img;
    int rc = sh_image_load_file(NULL, path, &img, &err);
    if (rc)
        return image_fail(errbuf, cap, &err);
    rc = image_out(&img, out);
    return rc ? sh_api_fail(rc, "out of memory") : rc;
}

int shoal_image_decode(const void *data, size_t len, shoal_image *out, char *errbuf, size_t cap)
{
    sh_err err = {0};
    if (out)
        memset(out, 0, sizeof *out);
    if (!data || !out) {
        sh_errf(&err, SHOAL_ERR_INVALID_ARG, "shoal_image_decode: %s is NULL", !data ? "data" : "out");
        return image_fail(errbuf, cap, &err);
    }
    sh_image img;
    int rc = sh_image_load_memory(NULL, data, len, "request body", &img, &err);
    if (rc)
        return image_fail(errbuf, cap, &err);
    rc = image_out(&img, out);
    return rc ? sh_api_fail(rc, "out of memory") : rc;
}

shoal_image shoal_image_wrap(uint8_t *rgb, int width, int height)
{
    /* not checked here: the run calls refuse a frame without pixels or with bad sides */
    shoal_image i = {width, height, rgb, 0};
    return i;
}

void shoal_image_free(shoal_image *img)
{
    if (!img)
        return;
    if (img->owned)
        free(img->rgb);
    memset(img, 0, sizeof *img);
}
