#include "rt_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

shoal_image rt_test_frame(int w, int h)
{
    uint8_t *px = malloc((size_t)w * (size_t)h * 3);
    if (px) {
        uint32_t s = 12345;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                s = s * 1664525u + 1013904223u;
                uint8_t *p = px + 3 * ((size_t)y * (size_t)w + (size_t)x);
                int block = ((x / 16) + (y / 16)) % 3;
                p[0] = (uint8_t)(x * 255 / (w > 1 ? w - 1 : 1));
                p[1] = (uint8_t)(y * 255 / (h > 1 ? h - 1 : 1));
                p[2] = (uint8_t)(block * 100 + (s >> 28));
            }
    }
    shoal_image img = shoal_image_wrap(px, w, h);
    img.owned = 1;
    return img;
}

typedef struct sbuf {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = 1;
            return;
        }
        if (b->s && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

char *rt_results_signature(shoal_results_t res)
{
    sbuf b = {0};
    int n = shoal_results_count(res);
    put(&b, "%d results\n", n);
    for (int i = 0; i < n; i++) {
        const shoal_model_result *r = shoal_results_get(res, i);
        put(&b, "%s %s %d dets %d landmarks %a %a\n", r->model, r->task, r->n_detections, r->n_landmarks,
            (double)r->presence, (double)r->handedness);
        for (int k = 0; k < r->n_detections; k++) {
            const shoal_detection *d = &r->detections[k];
            put(&b, "  %d %s %a [%a %a %a %a] %lld %s\n", d->class_id, d->class_name ? d->class_name : "", (double)d->score,
                (double)d->x1, (double)d->y1, (double)d->x2, (double)d->y2, (long long)d->mask_area,
                d->mask_rle ? d->mask_rle : "-");
        }
        for (int k = 0; k < 3 * r->n_landmarks; k++)
            put(&b, "%a%s", (double)r->landmarks[k], k % 3 == 2 ? "\n" : " ");
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

int64_t rt_in_use(shoal_runtime_t rt)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return -1;
    int64_t v = st.devices[0].in_use_bytes;
    shoal_stats_free(&st);
    return v;
}

int rt_resident(shoal_runtime_t rt, const char *model)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return -1;
    int r = 0;
    for (int i = 0; i < st.n_models; i++)
        if (!strcmp(st.models[i].name, model))
            r = st.models[i].state == SHOAL_MODEL_RESIDENT;
    shoal_stats_free(&st);
    return r;
}
