/* bench_vision FRAME MODEL_DIR [REPS]: host-side per-frame work of the seg and detect models,
 * timed apart from any network: image decode, letterbox preprocessing to 640x640, and the
 * YOLOv8-seg / YOLOv8 decoders (candidates, NMS, masks) on the reference outputs stored beside
 * the models (blind_road/obstacle: seg; traffic_light/shopping: detect). Median of REPS. A
 * tool, not a test (performance lives in benchmarks: docs/benchmarks.md). Each decode is also
 * timed stage by stage (score scan, NMS, masks) through the frame graph ops' functions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/npy.h"
#include "vision/decode.h"
#include "vision/frame.h"
#include "vision/image.h"
#include "vision/preprocess.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static sh_ftensor ften(const sh_npy *t)
{
    sh_ftensor f = {t->data, t->shape.ndim, {0}};
    for (int i = 0; i < t->shape.ndim && i < 4; i++)
        f.shape[i] = t->shape.d[i];
    return f;
}

/* The same decode split into the frame ops' stages (vision/frame.h): where a frame's host time
 * goes between the score scan, NMS and the masks. */
static void stages(sh_allocator *a, const sh_ftensor *head, const sh_ftensor *protos, const sh_transform *xf,
                   const sh_decode_params *dp, double *t, int reps)
{
    int64_t n = sh_frame_anchors(SH_FRAME_DECODER_YOLOV8, head);
    int nc = (int)(head->shape[1] - 4 - (protos ? protos->shape[1] : 0));
    size_t m = (size_t)dp->max_detections, pool = sh_frame_mask_pool(640 * 640, (int64_t)m, (int64_t)m);
    float *cb = malloc((size_t)n * 5 * sizeof(float)), *db = malloc(m * 5 * sizeof(float)), words[SH_FRAME_XF_WORDS];
    int32_t *ci = malloc((size_t)n * 2 * sizeof(int32_t)), *di = malloc(m * 2 * sizeof(int32_t)), cc = 0, dc = 0;
    int32_t *mb = malloc(m * SH_FRAME_MASK_BOX_WORDS * sizeof(int32_t));
    uint8_t *bits = malloc(pool);
    sh_transform_pack(xf, words);
    double ms[3];
    sh_err err = {0};
    for (int stage = 0; stage < (protos ? 3 : 2); stage++) {
        for (int r = 0; r < reps; r++) {
            double t0 = now_ms();
            int rc = stage == 0 ? sh_frame_decode(a, NULL, SH_FRAME_DECODER_YOLOV8, head, nc, 640, 640,
                                                  dp->score_threshold, (size_t)n, cb, cb + 4 * n, ci, &cc, &err)
                   : stage == 1 ? sh_frame_nms(a, NULL, dp, cb, cb + 4 * n, ci, (size_t)n, &cc, words, m, db,
                                               db + 4 * m, di, &dc, &err)
                                : sh_frame_masks(a, NULL, NULL, head, protos, db, di, m, &dc, words,
                                                 dp->mask_threshold, mb, bits, pool, &err);
            t[r] = now_ms() - t0;
            if (rc) {
                printf("  stage %d failed: %s\n", stage, err.msg);
                reps = 0;
            }
        }
        ms[stage] = reps ? median(t, reps) : -1;
    }
    printf("  stages: score scan %d candidates %.3f ms, nms %d kept %.3f ms", cc, ms[0], dc, ms[1]);
    if (protos)
        printf(", masks %.3f ms", ms[2]);
    printf("\n");
    free(cb);
    free(db);
    free(ci);
    free(di);
    free(mb);
    free(bits);
}

static void decode_model(sh_allocator *a, const char *dir, const char *name, bool seg, const sh_transform *xf,
                         int reps)
{
    char p0[512], p1[512];
    snprintf(p0, sizeof p0, "%s/%s.output0.npy", dir, name);
    snprintf(p1, sizeof p1, "%s/%s.output1.npy", dir, name);
    sh_npy o0 = {0}, o1 = {0};
    sh_err err = {0};
    if (sh_npy_read_file(a, p0, &o0, &err) || (seg && sh_npy_read_file(a, p1, &o1, &err))) {
        printf("%-14s skipped: %s\n", name, err.msg);
        sh_npy_free(a, &o0);
        return;
    }
    sh_ftensor f0 = ften(&o0), f1 = ften(&o1);
    sh_decode_params dp = sh_decode_default_params();
    sh_detections *dets = sh_detections_create(a);
    double *t = malloc((size_t)reps * sizeof *t);
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        int rc = seg ? sh_decode_yolov8_seg(&f0, &f1, xf, &dp, dets, &err) : sh_decode_yolov8(&f0, xf, &dp, dets, &err);
        t[r] = now_ms() - t0;
        if (rc) {
            printf("%-14s decode failed: %s\n", name, err.msg);
            break;
        }
    }
    unsigned long long digest = 0;   /* mask area and run lengths: equal runs, equal masks */
    for (size_t i = 0; i < dets->count; i++) {
        const sh_mask *m = dets->items[i].mask;
        for (size_t r = 0; m && r < m->n_runs; r++)
            digest = digest * 1000003ull + m->runs[r];
        digest = digest * 31 + (m ? m->area : 0);
    }
    printf("%-14s %-8s %4zu detections  decode median %7.3f ms  masks %016llx\n", name, seg ? "seg" : "detect",
           dets->count, median(t, reps), digest);
    stages(a, &f0, seg ? &f1 : NULL, xf, &dp, t, reps);
    free(t);
    sh_detections_destroy(dets);
    sh_npy_free(a, &o0);
    sh_npy_free(a, &o1);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s FRAME MODEL_DIR [REPS]\n", argv[0]);
        return 2;
    }
    int reps = argc > 3 ? atoi(argv[3]) : 20;
    if (reps < 1)
        reps = 1;
    sh_allocator *a = sh_allocator_create();
    sh_err err = {0};
    double *t = malloc((size_t)reps * sizeof *t);
    sh_image img = {0};
    for (int r = 0; r < reps; r++) {
        sh_image_free(&img);
        double t0 = now_ms();
        if (sh_image_load_file(a, argv[1], &img, &err)) {
            printf("image: %s\n", err.msg);
            return 1;
        }
        t[r] = now_ms() - t0;
    }
    printf("image %s %dx%d: decode median %.3f ms\n", argv[1], img.width, img.height, median(t, reps));
    sh_preprocess_params pp = sh_preprocess_default_params(640, 640);
    float *in = malloc(3 * 640 * 640 * sizeof(float));
    sh_transform xf;
    for (int r = 0; r < reps; r++) {
        double t0 = now_ms();
        if (sh_preprocess(a, &img, &pp, in, 3 * 640 * 640, &xf, &err)) {
            printf("preprocess: %s\n", err.msg);
            return 1;
        }
        t[r] = now_ms() - t0;
    }
    printf("letterbox to 640x640 + float planes: median %.3f ms\n", median(t, reps));
    /* the reference outputs belong to 640x640 inputs: decode them against a 640x640 frame */
    sh_transform ref;
    if (sh_transform_compute(640, 640, &pp, &ref, &err)) {
        printf("transform: %s\n", err.msg);
        return 1;
    }
    decode_model(a, argv[2], "blind_road", true, &ref, reps);
    decode_model(a, argv[2], "obstacle", true, &ref, reps);
    decode_model(a, argv[2], "traffic_light", false, &ref, reps);
    decode_model(a, argv[2], "shopping", false, &ref, reps);
    free(in);
    free(t);
    sh_image_free(&img);
    sh_allocator_destroy(a);
    return 0;
}
