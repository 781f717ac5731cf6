/* Shared by the vision, runtime and CUDA tests of device-side score filtering (backend.h
 * download_filtered). Header-only: one test executable per file.
 *
 * ref_yolo_compact is a plain-C reference of the filter: the compact buffer of vision/decode.h
 * from a whole fp32 [C, N] YOLOv8 output, written out on its own from the rule the host
 * decoder applies (best = the first class score, then every strictly greater one; kept when
 * best >= threshold). Survivors are appended in the order `order` visits the anchors (NULL:
 * ascending), as the device's atomics may in any order; all are counted, at most `rows`
 * written.
 *
 * ref_make_head makes random head outputs that look trained (low scores, a few confident
 * anchors) with the threshold test's edge cases sprinkled in; ref_fresh_seed gives a new seed
 * each run (SHOAL_TEST_SEED=n repeats one). ref_same_detections compares two decodes bit for
 * bit, masks included. */
#ifndef SHOAL_TESTS_YOLO_COMPACT_REF_H
#define SHOAL_TESTS_YOLO_COMPACT_REF_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vision/decode.h"

static inline void ref_compact_word(void *dst, size_t i, const void *v)
{
    memcpy((unsigned char *)dst + 4 * i, v, 4);
}

/* Writes the header and rows into dst (room for 8 + rows * (1 + channels) words); returns
 * the survivor count. */
static inline size_t ref_yolo_compact(const float *out, int channels, int n, int nc, float threshold, int rows,
                                      const int *order, void *dst)
{
    size_t count = 0;
    for (int i = 0; i < n; i++) {
        int j = order ? order[i] : i;
        float best = out[(size_t)4 * n + j];
        for (int k = 1; k < nc; k++)
            if (out[(size_t)(4 + k) * n + j] > best)
                best = out[(size_t)(4 + k) * n + j];
        if (!(best >= threshold))
            continue;
        if (count < (size_t)rows) {
            size_t at = 8 + count * (size_t)(1 + channels);
            int32_t anchor = j;
            ref_compact_word(dst, at, &anchor);
            for (int c = 0; c < channels; c++)
                ref_compact_word(dst, at + 1 + c, &out[(size_t)c * n + j]);
        }
        count++;
    }
    int32_t head[8] = {(int32_t)count, channels, n, nc, rows, 0, 0, 0};
    memcpy(&head[5], &threshold, 4);
    for (int w = 0; w < 8; w++)
        ref_compact_word(dst, (size_t)w, &head[w]);
    return count;
}

/* --- random heads --------------------------------------------------------------------- */

typedef struct ref_rng {
    uint64_t s;
} ref_rng;

static inline uint64_t ref_fresh_seed(void)
{
    const char *s = getenv("SHOAL_TEST_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 0) : ((uint64_t)time(NULL) << 20) ^ (uint64_t)getpid();
    printf("seed %llu (SHOAL_TEST_SEED repeats it)\n", (unsigned long long)seed);
    return seed;
}

static inline ref_rng ref_rng_from(uint64_t seed)
{
    uint64_t z = (seed ^ (seed >> 30)) * 0xbf58476d1ce4e5b9ull;   /* splitmix: nearby seeds, unrelated streams */
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (ref_rng){(z ^ (z >> 31)) | 1};
}

static inline uint32_t ref_u32(ref_rng *r)
{
    r->s ^= r->s << 13;
    r->s ^= r->s >> 7;
    r->s ^= r->s << 17;
    return (uint32_t)(r->s >> 32);
}

static inline float ref_uniform(ref_rng *r, float lo, float hi)
{
    return lo + (hi - lo) * (float)(ref_u32(r) >> 8) * (1.0f / 16777216.0f);
}

/* A YOLOv8 head output [4 + nc + nm, n] (owned: free out). */
typedef struct ref_head {
    int nc, nm, n, channels;
    float threshold;
    float *out;
} ref_head;

/* Places where the threshold test could go wrong: NaN first (never kept) or later (skipped),
 * exactly the threshold (kept) and just under it, -0, a denormal, a tie between classes (the
 * first wins) and ties across anchors (anchor order decides their ranking). */
static inline void ref_edge_cases(ref_rng *r, ref_head *h)
{
    size_t n = (size_t)h->n;
    float *cls = h->out + 4 * n;
    float below = nextafterf(h->threshold, -INFINITY);
    for (int e = 0; e < 10; e++) {
        size_t j = ref_u32(r) % n;
        size_t k = h->nc > 1 ? 1 + ref_u32(r) % (uint32_t)(h->nc - 1) : 0;
        float *later = &cls[k * n + j];
        switch (e) {
        case 0: cls[j] = NAN; *later = 0.99f; break;
        case 1: *later = NAN; cls[j] = 0.98f; break;
        case 2: *later = h->threshold; break;
        case 3: *later = below; break;
        case 4: cls[j] = -0.0f; break;
        case 5: *later = 1e-40f; break;
        case 6: cls[j] = 0.97f; *later = 0.97f; break;
        default: *later = 0.875f; break;
        }
    }
}

static inline ref_head ref_make_head(ref_rng *r, int nc, int nm, int n, int side, float threshold)
{
    ref_head h = {.nc = nc, .nm = nm, .n = n, .channels = 4 + nc + nm, .threshold = threshold};
    h.out = malloc((size_t)h.channels * n * sizeof(float));
    if (!h.out)
        return h;
    for (int j = 0; j < n; j++) {
        h.out[j] = ref_uniform(r, 0, (float)side);
        h.out[n + j] = ref_uniform(r, 0, (float)side);
        h.out[2 * n + j] = ref_uniform(r, 1, side / 2.0f);
        h.out[3 * n + j] = ref_uniform(r, 1, side / 2.0f);
        for (int k = 0; k < nc; k++)
            h.out[(size_t)(4 + k) * n + j] = ref_uniform(r, 0, 0.2f);
        if (ref_u32(r) % 16 == 0)
            h.out[(size_t)(4 + ref_u32(r) % (uint32_t)nc) * n + j] = ref_uniform(r, 0.2f, 1);
        for (int k = 0; k < nm; k++)
            h.out[(size_t)(4 + nc + k) * n + j] = ref_uniform(r, -3, 3);
    }
    ref_edge_cases(r, &h);
    return h;
}

/* 0 .. n-1 in a random order (owned), the order the device's appends may give. */
static inline int *ref_shuffled(ref_rng *r, int n)
{
    int *p = malloc((size_t)(n > 0 ? n : 1) * sizeof *p);
    if (!p)
        return NULL;
    for (int i = 0; i < n; i++)
        p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int k = (int)(ref_u32(r) % (uint32_t)(i + 1)), t = p[i];
        p[i] = p[k];
        p[k] = t;
    }
    return p;
}

/* --- comparing decodes ------------------------------------------------------------------ */

static inline int ref_same_mask(const sh_mask *a, const sh_mask *b)
{
    if (!a || !b)
        return a == b;
    return a->x == b->x && a->y == b->y && a->width == b->width && a->height == b->height && a->area == b->area &&
           a->n_runs == b->n_runs && !memcmp(a->runs, b->runs, a->n_runs * sizeof *a->runs);
}

/* 1 when a and b hold the same detections bit for bit (the floats' bits: equal values are not
 * enough); else 0 with the first difference in why. */
static inline int ref_same_detections(const sh_detections *a, const sh_detections *b, char *why, size_t cap)
{
    if (a->count != b->count || a->image_w != b->image_w || a->image_h != b->image_h) {
        snprintf(why, cap, "%zu detections against %zu (images %dx%d, %dx%d)", a->count, b->count, a->image_w,
                 a->image_h, b->image_w, b->image_h);
        return 0;
    }
    for (size_t i = 0; i < a->count; i++) {
        const sh_detection *x = &a->items[i], *y = &b->items[i];
        const float fx[5] = {x->score, x->x1, x->y1, x->x2, x->y2}, fy[5] = {y->score, y->x1, y->y1, y->x2, y->y2};
        if (x->class_id != y->class_id || x->anchor != y->anchor || memcmp(fx, fy, sizeof fx)) {
            snprintf(why, cap, "detection %zu: class %d anchor %d score %a against class %d anchor %d score %a", i,
                     x->class_id, x->anchor, (double)x->score, y->class_id, y->anchor, (double)y->score);
            return 0;
        }
        if (!ref_same_mask(x->mask, y->mask)) {
            snprintf(why, cap, "detection %zu (anchor %d): masks differ", i, x->anchor);
            return 0;
        }
    }
    return 1;
}

#endif
