/* Results of a run: a model's graph outputs turned into its shoal result; accessors, JSON,
 * drawing; and the public image functions. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/hand_task.h"
#include "runtime/runtime-impl.h"
#include "vision/draw.h"
#include "vision/frame.h"
#include "vision/image.h"

static sh_ftensor ftensor(const sh_graph *g, int t, const float *data)
{
    sh_ftensor f = {.data = data};
    const sh_shape *s = &g->tensors[t].shape;
    f.ndim = s->ndim > 4 ? 4 : s->ndim;
    for (int i = 0; i < f.ndim; i++)
        f.shape[i] = s->d[i];
    return f;
}

/* v in decimal at s, no terminator; the digit count. */
static size_t put_u32(char *s, uint32_t v)
{
    char tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        s[i] = tmp[n - 1 - i];
    return n;
}

static char *mask_rle(sh_allocator *a, const sh_mask *m)
{
    /* "x y w h: r0 r1 ...": alternating background/foreground run lengths over the box's
     * rows, starting with background (COCO's uncompressed RLE, row-major). A mask has
     * thousands of runs: formatted by hand, snprintf per run cost milliseconds a frame. */
    size_t cap = 64 + m->n_runs * 11;
    char *s = sh_alloc(a, cap);
    if (!s)
        return NULL;
    size_t at = (size_t)snprintf(s, cap, "%d %d %d %d:", m->x, m->y, m->width, m->height);
    for (size_t i = 0; i < m->n_runs; i++) {
        s[at++] = ' ';
        at += put_u32(s + at, m->runs[i]);
    }
    s[at] = '\0';
    return s;
}

static int set_mask(shoal_runtime_t rt, sh_rt_result *r, size_t i, sh_err *err)
{
    const sh_mask *m = r->dets->items[i].mask;
    r->items[i].mask_area = (int64_t)m->area;
    r->rles[i] = mask_rle(rt->alloc, m);
    if (!r->rles[i])
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for masks");
    r->items[i].mask_rle = r->rles[i];
    return 0;
}

static int fill_detections(shoal_runtime_t rt, sh_rt_result *r, sh_err *err)
{
    const sh_model_config *c = r->cfg;
    size_t n = r->dets->count;
    r->items = sh_calloc(rt->alloc, n ? n : 1, sizeof *r->items);
    r->rles = sh_calloc(rt->alloc, n ? n : 1, sizeof *r->rles);
    if (!r->items || !r->rles)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for results");
    for (size_t i = 0; i < n; i++) {
        const sh_detection *d = &r->dets->items[i];
        shoal_detection *o = &r->items[i];
        o->class_id = d->class_id;
        o->class_name = d->class_id >= 0 && (size_t)d->class_id < c->n_classes ? c->classes[d->class_id] : "";
        o->score = d->score;
        o->x1 = d->x1;
        o->y1 = d->y1;
        o->x2 = d->x2;
        o->y2 = d->y2;
        if (d->mask && set_mask(rt, r, i, err))
            return SHOAL_ERR_NO_MEMORY;
    }
    r->pub.n_detections = (int)n;
    r->pub.detections = r->items;
    return 0;
}

/* The graph's outputs in the model's staging (graph/frame_ops.h): results[0] the transform;
 * with the frame ops' decoder the detections (boxes, scores, ids, count) and masks, or the
 * landmarks; else the network's own outputs. */
static const void *result_at(const sh_rt_model *m, const char *staging, int i)
{
    return staging + m->result_off[i];
}

int sh_rt_result_count(const sh_rt_model *m, const char *staging, size_t *n, sh_err *err)
{
    int32_t count = *(const int32_t *)result_at(m, staging, 4);
    size_t cap = (size_t)m->cfg->max_detections;
    if (count < 0 || (size_t)count > cap)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "model '%s': %d detections in an output of %zu", m->cfg->name, count,
                       cap);
    *n = (size_t)count;
    return 0;
}

static int read_landmarks(const sh_rt_model *m, const char *staging, sh_rt_result *r)
{
    const float *v = result_at(m, staging, 1);
    for (int k = 0; k < SH_HAND_POINTS; k++) {
        r->hand.x[k] = r->landmarks[3 * k] = v[3 * k];
        r->hand.y[k] = r->landmarks[3 * k + 1] = v[3 * k + 1];
        r->hand.z[k] = r->landmarks[3 * k + 2] = v[3 * k + 2];
    }
    r->hand.presence = v[3 * SH_HAND_POINTS];
    r->hand.handedness = v[3 * SH_HAND_POINTS + 1];
    r->has_hand = true;
    r->pub.n_landmarks = SH_HAND_POINTS;
    r->pub.landmarks = r->landmarks;
    r->pub.presence = r->hand.presence;
    r->pub.handedness = r->hand.handedness;
    return 0;
}

/* Decoders the frame ops do not run read the network's outputs here. */
static int decode_on_host(shoal_runtime_t rt, const sh_rt_model *m, const char *staging, const sh_transform *xf,
                          sh_rt_result *r, sh_err *err)
{
    const sh_model_config *c = m->cfg;
    sh_decode_params dp = sh_decode_default_params();
    dp.score_threshold = c->score_threshold;
    dp.iou_threshold = c->iou_threshold;
    dp.max_detections = c->max_detections;
    dp.agnostic = c->agnostic_nms;
    const float *o0 = result_at(m, staging, 1);
    if (c->decoder == SH_DECODER_CLASSIFY) {
        int rc = sh_rt_classify(rt, m, o0, xf, r, err);
        return rc ? rc : fill_detections(rt, r, err);
    }
    if (c->decoder != SH_DECODER_END2END)
        return 0;
    r->dets = sh_detections_create(rt->alloc);
    if (!r->dets)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for detections");
    sh_ftensor f0 = ftensor(m->graph, m->outputs[0], o0);
    int rc;
    if (c->task == SH_TASK_SEGMENT) {
        sh_ftensor f1 = ftensor(m->graph, m->outputs[1], result_at(m, staging, 2));
        rc = sh_decode_end2end_seg(&f0, &f1, (int)c->n_classes, xf, &dp, r->dets, err);
    } else {
        rc = sh_decode_end2end(&f0, (int)c->n_classes, xf, &dp, r->dets, err);
    }
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': decoding: ", c->name);
    return fill_detections(rt, r, err);
}

int sh_rt_result_read(shoal_runtime_t rt, const sh_rt_model *m, const char *staging, sh_rt_result *r, sh_err *err)
{
    const sh_model_config *c = m->cfg;
    const float *xf_words = result_at(m, staging, 0);
    if (c->decoder == SH_DECODER_LANDMARKS)
        return read_landmarks(m, staging, r);
    if (m->n_outputs > 0) {
        sh_transform xf;
        int rc = sh_transform_unpack(xf_words, &xf, err);
        return rc ? sh_err_prefix(err, rc, "model '%s': ", c->name) : decode_on_host(rt, m, staging, &xf, r, err);
    }
    r->dets = sh_detections_create(rt->alloc);
    if (!r->dets)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory for detections");
    int rc = sh_frame_results(result_at(m, staging, 1), result_at(m, staging, 2), result_at(m, staging, 3),
                              (size_t)c->max_detections, result_at(m, staging, 4), xf_words,
                              m->mask_bits >= 0 ? result_at(m, staging, 5) : NULL, NULL, 0, r->dets, err);
    if (rc)
        return sh_err_prefix(err, rc, "model '%s': reading results: ", c->name);
    r->pub.n_masks_left_out = r->dets->masks_left_out;
    return fill_detections(rt, r, err);
}

size_t sh_rt_result_masks(const sh_rt_model *m, const sh_rt_result *r)
{
    return m->mask_bits >= 0 && m->n_outputs == 0 && r->dets ? r->dets->count : 0;
}

int sh_rt_result_mask(shoal_runtime_t rt, const sh_rt_model *m, const char *staging, sh_rt_result *r, size_t i,
                      sh_err *err)
{
    sh_detection *d = &r->dets->items[i];
    int rc = sh_frame_result_mask(rt->alloc, result_at(m, staging, 5), i, result_at(m, staging, 6), m->mask_pool,
                                  &d->mask, err);
    if (rc == 0 && d->mask)
        rc = set_mask(rt, r, i, err);
    return rc ? sh_err_prefix(err, rc, "model '%s': reading mask %zu: ", m->cfg->name, i) : 0;
}

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
        if (r->n_masks_left_out > 0)
            cJSON_AddNumberToObject(j, "masks_left_out", r->n_masks_left_out);
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
