/* The frame ops on CUDA (cuda_frame.c, frame.cu) against the CPU kernels (backends/cpu/frame.c,
 * the host pipeline's own code) on the same inputs.
 *
 * Each op alone, as a one-node graph run on both backends (outputs poisoned before every run):
 * FrameToTensor on random frames of odd and camera sizes and on the real frames of
 * models/frames, RGB and BGR, letterbox centred and top-left, stretch with mean/std, a frame
 * too small to fill a row vector and a size that does not fit (the device's all-zero transform);
 * FrameDecode on random YOLOv8 / YOLOv8-seg / YOLOX heads with tied and NaN scores; FrameNms on
 * clustered candidates with tied scores, per class and agnostic, top_k and max_detections
 * cutting; FrameMasks on random prototypes for the detections of a random head; FrameLandmarks;
 * FrameCrop (the hand landmarker's crops) on random frames and rects, both borders.
 * Then the chained graph (sh_graph_add_frame_ops) of the reference models on the real frames:
 * its detections and masks against the CPU frame functions applied to the same network's
 * outputs (the same model with the frame input but no decoder, so both read one fp16 network).
 *
 * Exact: transforms, model inputs, crops, candidates, detections (count, order, class, anchor, score
 * and box bits). Two places differ by design: exp() is evaluated correctly rounded on the device,
 * and glibc's expf is within 0.502 ulp, so what goes through exp (YOLOX box sizes, sigmoids) may
 * differ by 1 ulp: YOLOX boxes and sigmoid landmarks are compared within 2 ulp, and masks (a
 * sigmoid, then thresholded) must agree on >= 99.9% of their pixels. SHOAL_TEST_SEED=n repeats
 * a run's random inputs. Exits 77 without a CUDA device; the chained part is skipped without
 * models/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "graph/frame_ops.h"
#include "graph/passes.h"
#include "harness.h"
#include "import/onnx_import.h"
#include "vision/frame.h"
#include "vision/hands.h"

static sh_backend GPU, CPU;
static char MODELS[1024];
/* Real frames: models/frames (the camera frames) or, where only the exported models are, the
 * photos of ../shared's real-models; NULL where neither is. */
#define N_FRAMES 4
static char FRAME_FILES[N_FRAMES][2048];
static const char *FRAMES[N_FRAMES];

static void find_frames(void)
{
    static const char *const own[N_FRAMES] = {"crossing.png", "shelf.png", "sidewalk.png", "crossing.jpg"};
    static const char *const photos[N_FRAMES] = {"street/000000000724.jpg", "indoor/000000000139.jpg",
                                                 "indoor/000000000632.jpg", "street/000000001532.jpg"};
    const char *real = getenv("SHOAL_REAL_MODELS");
    struct stat st;
    for (int i = 0; i < N_FRAMES; i++) {
        snprintf(FRAME_FILES[i], sizeof FRAME_FILES[i], "%s/frames/%s", MODELS, own[i]);
        if (stat(FRAME_FILES[i], &st) != 0)
            snprintf(FRAME_FILES[i], sizeof FRAME_FILES[i], "%s/images/%s", real ? real : SHOAL_SHARED_DIR "/real-models",
                     photos[i]);
        FRAMES[i] = stat(FRAME_FILES[i], &st) == 0 ? FRAME_FILES[i] : NULL;
    }
}

#define MAX_PIXELS (1920 * 1080)

/* --- running one graph on a backend ------------------------------------------------------ */

static size_t tensor_bytes_of(const sh_tensor *t)
{
    size_t e = t->dtype == SH_DT_UINT8 ? 1 : 4;
    return (size_t)sh_shape_numel(&t->shape) * e;
}

/* Uploads inputs[i] to g's input i, poisons every output (0xff: NaN, count -1), runs, and
 * downloads output i into outputs[i] (host buffers of the graph dtype's size). */
static void run_on(hx_run *r, void *const *inputs, void *const *outputs)
{
    const sh_graph *g = r->g;
    sh_err err = {0};
    for (int i = 0; i < g->n_inputs; i++) {
        int t = g->inputs[i];
        if (r->b->iface->upload(r->b->ctx, r->tp[t], inputs[i], tensor_bytes_of(&g->tensors[t]), &err))
            fail_msg("upload of %s: %s", g->tensors[t].name, err.msg);
    }
    for (int i = 0; i < g->n_outputs; i++) {
        int t = g->outputs[i];
        size_t n = tensor_bytes_of(&g->tensors[t]);
        void *poison = malloc(n);
        memset(poison, 0xff, n);
        if (r->b->iface->upload(r->b->ctx, r->tp[t], poison, n, &err))
            fail_msg("poison of %s: %s", g->tensors[t].name, err.msg);
        free(poison);
    }
    if (r->b->iface->run(r->b->ctx, r->p, r->tp, r->wp, 1, &err))
        fail_msg("%s: %s", r->b == &GPU ? "cuda" : "cpu", err.msg);
    for (int i = 0; i < g->n_outputs; i++) {
        int t = g->outputs[i];
        size_t n = tensor_bytes_of(&g->tensors[t]);
        memset(outputs[i], 0xee, n);
        if (r->b->iface->download(r->b->ctx, outputs[i], r->tp[t], n, &err))
            fail_msg("download of %s: %s", g->tensors[t].name, err.msg);
    }
}

static void prepare(hx_run *r, sh_backend *b, const sh_graph *g)
{
    sh_err err = {0};
    if (hx_prepare(r, b, g, &err))
        fail_msg("%s: %s", b == &GPU ? "cuda" : "cpu", err.msg);
}

/* Host buffers for every output of g. */
static void **alloc_outputs(const sh_graph *g)
{
    void **o = calloc((size_t)g->n_outputs, sizeof *o);
    for (int i = 0; i < g->n_outputs; i++)
        o[i] = malloc(tensor_bytes_of(&g->tensors[g->outputs[i]]) + 8);
    return o;
}

static void free_outputs(const sh_graph *g, void **o)
{
    for (int i = 0; i < g->n_outputs; i++)
        free(o[i]);
    free(o);
}

/* --- one-node graphs -------------------------------------------------------------------- */

static int add_t(sh_graph *g, const char *name, sh_dtype dt, int ndim, const int64_t *d)
{
    sh_shape s = {.ndim = ndim};
    for (int i = 0; i < ndim; i++)
        s.d[i] = d[i];
    int t = sh_graph_add_tensor(g, name, dt, &s);
    assert_true(t >= 0);
    return t;
}

/* The graph of one op with the given inputs and outputs (shapes of the outputs inferred). */
static sh_graph *one_node(sh_op op, const int *in, int n_in, const int *out, int n_out, sh_graph *g, int *node)
{
    *node = sh_graph_add_node(g, "frame_op", op, in, n_in, out, n_out);
    assert_true(*node >= 0);
    assert_int_equal(sh_graph_set_inputs(g, in, n_in), 0);
    assert_int_equal(sh_graph_set_outputs(g, out, n_out), 0);
    return g;
}

static void finish(sh_graph *g)
{
    sh_err err = {0};
    sh_optimize_params op = sh_optimize_default_params();
    if (sh_graph_optimize(g, &op, &err))
        fail_msg("graph: %s", err.msg);
}

static uint64_t RNG = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
    RNG ^= RNG << 13;
    RNG ^= RNG >> 7;
    RNG ^= RNG << 17;
    return (uint32_t)(RNG >> 32);
}

static float unif(void) { return (float)(rnd() >> 8) * (1.0f / 16777216.0f); }

/* a value on a grid of 1/q in [lo, hi): exact in fp16 for |value| * q < 2048 */
static float grid(float lo, float hi, float q) { return floorf((lo + (hi - lo) * unif()) * q) / q; }

/* --- FrameToTensor ---------------------------------------------------------------------- */

typedef struct pre_case {
    const char *what;
    int w, h;                /* frame size (0: a real frame) */
    const char *file;        /* a real frame's path (FRAMES) */
    int bgr_frame;
    sh_frame_spec spec;
} pre_case;

static sh_frame_spec spec_yolo(int size)
{
    sh_frame_spec s = sh_frame_default_spec(size, size);
    s.max_pixels = MAX_PIXELS;
    return s;
}

static sh_frame_spec spec_yolox(void)
{
    sh_frame_spec s = spec_yolo(416);
    sh_preprocess_params p = sh_preprocess_yolox_params(416, 416);
    s.place = (int)p.place;
    s.order = (int)p.order;
    s.scale = p.scale;
    return s;
}

static sh_frame_spec spec_hand(void)
{
    sh_frame_spec s = spec_yolo(224);
    s.resize = SH_RESIZE_STRETCH;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(s.mean, mean, sizeof mean);
    memcpy(s.std, std, sizeof std);
    return s;
}

/* FrameToTensor's graph as sh_graph_add_frame_ops makes it, the model input an output. */
static sh_graph *pre_graph(const sh_frame_spec *s, int64_t cap_bytes)
{
    sh_graph *g = sh_graph_create(NULL, "pre");
    int64_t fd[1] = {cap_bytes}, sd[1] = {2}, od[4] = {1, 3, s->height, s->width}, xd[1] = {SH_FRAME_XF_WORDS};
    int in[2] = {add_t(g, "frame", SH_DT_UINT8, 1, fd), add_t(g, "frame_size", SH_DT_INT32, 1, sd)};
    int out[2] = {add_t(g, "input", SH_DT_FLOAT32, 4, od), add_t(g, "xf", SH_DT_FLOAT32, 1, xd)};
    int node;
    one_node(SH_OP_FRAME_TO_TENSOR, in, 2, out, 2, g, &node);
    const char *names[] = {"width", "height", "resize", "place", "pad_value", "order", "pixel_format"};
    const int64_t v[] = {s->width, s->height, s->resize, s->place, s->pad_value, s->order, s->pixel_format};
    for (int i = 0; i < 7; i++)
        assert_int_equal(sh_node_set_int(g, node, names[i], v[i]), 0);
    assert_int_equal(sh_node_set_float(g, node, "scale", s->scale), 0);
    assert_int_equal(sh_node_set_floats(g, node, "mean", s->mean, 3), 0);
    assert_int_equal(sh_node_set_floats(g, node, "std", s->std, 3), 0);
    finish(g);
    return g;
}

/* An 8-bit frame of `cap` bytes: the picture, then a pattern a kernel reading past it would
 * turn into wrong values. */
static uint8_t *frame_bytes(const pre_case *c, int *w, int *h, size_t cap)
{
    uint8_t *f = malloc(cap);
    memset(f, 0xA5, cap);
    if (c->file) {
        sh_image img;
        sh_err err = {0};
        if (sh_image_load_file(NULL, c->file, &img, &err))
            fail_msg("%s: %s", c->file, err.msg);
        *w = img.width;
        *h = img.height;
        assert_true((size_t)img.width * img.height * 3 <= cap);
        memcpy(f, img.data, (size_t)img.width * img.height * 3);
        sh_image_free(&img);
    } else {
        *w = c->w;
        *h = c->h;
        /* smooth gradients plus noise: bilinear weights matter on every pixel */
        for (int y = 0; y < c->h; y++)
            for (int x = 0; x < c->w; x++)
                for (int k = 0; k < 3; k++)
                    f[((size_t)y * c->w + x) * 3 + k] = (uint8_t)((x * (k + 1) + y * (3 - k) + (rnd() & 31)) & 255);
    }
    if (c->bgr_frame)
        for (size_t i = 0; i < (size_t)*w * *h * 3; i += 3) {
            uint8_t r = f[i];
            f[i] = f[i + 2];
            f[i + 2] = r;
        }
    return f;
}

static void frame_to_tensor(void **state)
{
    (void)state;
    sh_frame_spec yolo = spec_yolo(640), yolox = spec_yolox(), hand = spec_hand(), small = spec_yolo(64);
    sh_frame_spec tail12 = spec_yolo(100), tail6 = spec_yolo(98);
    small.pad_value = 0;
    tail6.place = SH_PLACE_TOP_LEFT;
    tail6.order = SH_CHANNELS_BGR;
    const pre_case cases[] = {
        {"640x480 RGB, letterbox centred", 640, 480, NULL, 0, yolo},
        {"1280x720 BGR, YOLOX (top-left, BGR planes, raw)", 1280, 720, NULL, 1, yolox},
        {"333x517, stretch + mean/std", 333, 517, NULL, 0, hand},
        {"7x5, upscaled", 7, 5, NULL, 1, yolo},
        {"1920x1080 into 64x64 (rows of 192 bytes)", 1920, 1080, NULL, 0, small},
        /* rows whose last bytes take OpenCV's scalar rounding: 300 = 288 + 8 + 4, 294 = 288 + 6 */
        {"640x480 into 100x100", 640, 480, NULL, 0, tail12},
        {"500x375 BGR into 98x98, top-left, BGR planes", 500, 375, NULL, 1, tail6},
        {"real frame 1", 0, 0, FRAMES[0], 0, yolo},
        {"real frame 2 BGR, YOLOX", 0, 0, FRAMES[1], 1, yolox},
        {"real frame 4, stretch", 0, 0, FRAMES[3], 0, hand},
    };
    size_t cap = (size_t)MAX_PIXELS * 3;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const pre_case *c = &cases[k];
        if (c->w == 0 && !c->file) {
            printf("  %s: skipped (no real frames)\n", c->what);
            continue;
        }
        sh_frame_spec s = c->spec;
        s.pixel_format = c->bgr_frame ? SH_PIXEL_BGR : SH_PIXEL_RGB;
        sh_graph *g = pre_graph(&s, (int64_t)cap);
        hx_run rc, rg;
        prepare(&rc, &CPU, g);
        prepare(&rg, &GPU, g);
        int w, h;
        uint8_t *f = frame_bytes(c, &w, &h, cap);
        int32_t size[2] = {w, h};
        void *in[2] = {f, size};
        void **oc = alloc_outputs(g), **og = alloc_outputs(g);
        run_on(&rc, in, oc);
        run_on(&rg, in, og);
        size_t n = 3 * (size_t)s.width * s.height;
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += memcmp((float *)oc[0] + i, (float *)og[0] + i, 4) != 0;
        if (diff || memcmp(oc[1], og[1], SH_FRAME_XF_WORDS * 4))
            fail_msg("%s: %zu of %zu input values differ, transform %s", c->what, diff, n,
                     memcmp(oc[1], og[1], SH_FRAME_XF_WORDS * 4) ? "differs" : "equal");
        printf("  %s (%dx%d): %zu values and the transform equal\n", c->what, w, h, n);
        /* a size that does not fit: the CPU kernel fails, the device writes an all-zero transform */
        if (k == 0) {
            int32_t bad[3][2] = {{1921, 1080}, {0, 10}, {20000, 1}};
            for (int b = 0; b < 3; b++) {
                void *in_bad[2] = {f, bad[b]};
                run_on(&rg, in_bad, og);
                sh_transform xf;
                sh_err err = {0};
                assert_int_not_equal(sh_transform_unpack(og[1], &xf, &err), 0);
                const float zero[SH_FRAME_XF_WORDS] = {0};
                assert_memory_equal(og[1], zero, sizeof zero);
            }
        }
        free(f);
        free_outputs(g, oc);
        free_outputs(g, og);
        hx_release(&rc);
        hx_release(&rg);
        sh_graph_destroy(g);
    }
}

/* --- FrameDecode ------------------------------------------------------------------------ */

typedef struct head_case {
    const char *what;
    int yolox, nc, nm, n, in;     /* in: model input side (YOLOX anchors follow from it) */
    float thr;
} head_case;

/* A random head: YOLOv8 [1, 4+nc+nm, n] (boxes in model pixels, scores mostly low with ties,
 * some NaN) or YOLOX [1, n, 5+nc] (grid offsets, log sizes with a few huge, obj x class). */
static float *random_head(const head_case *c, int64_t *d)
{
    size_t ch = c->yolox ? 5 + (size_t)c->nc : 4 + (size_t)c->nc + c->nm, n = (size_t)c->n;
    float *v = malloc(ch * n * sizeof *v);
    d[0] = 1;
    d[1] = c->yolox ? (int64_t)n : (int64_t)ch;
    d[2] = c->yolox ? (int64_t)ch : (int64_t)n;
    for (size_t j = 0; j < n; j++)
        for (size_t k = 0; k < ch; k++) {
            float x;
            if (!c->yolox && k < 4)
                x = k < 2 ? grid(0, (float)c->in, 2) : grid(4, 300, 2);
            else if (c->yolox && k < 2)
                x = grid(-1, 1, 64);
            else if (c->yolox && k < 4)
                x = (rnd() % 500) ? grid(-3, 3, 64) : 25.0f;
            else if (!c->yolox && k >= 4 + (size_t)c->nc)
                x = grid(-2, 2, 256);   /* mask coefficients */
            else {
                float u = unif();
                x = floorf(u * u * u * u * 256) / 256;   /* class / objectness scores */
                if (rnd() % 211 == 0)
                    x = NAN;
            }
            v[c->yolox ? j * ch + k : k * n + j] = x;
        }
    return v;
}

static bool within_ulps(float a, float b, int ulps)
{
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0))
        return a == b;
    return abs(ia - ib) <= ulps;
}

/* The first count entries of two K-slot boxes/scores/ids/count sets; box_ulps: 0 = bits. */
static void expect_entries(const char *what, void *const *a, void *const *b, size_t k, int box_ulps)
{
    int32_t na = *(int32_t *)a[3], nb = *(int32_t *)b[3];
    if (na != nb)
        fail_msg("%s: count %d on CUDA, %d on the CPU", what, nb, na);
    assert_true(na >= 0 && (size_t)na <= k);
    const float *ba = a[0], *bb = b[0], *sa = a[1], *sb = b[1];
    const int32_t *ia = a[2], *ib = b[2];
    for (int i = 0; i < na; i++) {
        bool box = true;
        for (int q = 0; q < 4; q++)
            box &= box_ulps ? within_ulps(ba[4 * i + q], bb[4 * i + q], box_ulps)
                            : memcmp(&ba[4 * i + q], &bb[4 * i + q], 4) == 0;
        if (!box || memcmp(&sa[i], &sb[i], 4) || ia[i] != ib[i] || ia[k + i] != ib[k + i])
            fail_msg("%s: entry %d differs: class %d/%d anchor %d/%d score %.9g/%.9g box %.9g,%.9g,%.9g,%.9g / "
                     "%.9g,%.9g,%.9g,%.9g", what, i, ib[i], ia[i], ib[k + i], ia[k + i], sb[i], sa[i], bb[4 * i],
                     bb[4 * i + 1], bb[4 * i + 2], bb[4 * i + 3], ba[4 * i], ba[4 * i + 1], ba[4 * i + 2],
                     ba[4 * i + 3]);
    }
}

static sh_graph *decode_graph(const head_case *c, const int64_t *hd)
{
    sh_graph *g = sh_graph_create(NULL, "decode");
    int64_t pd[4] = {1, c->nm, 16, 16};
    int in[2] = {add_t(g, "head", SH_DT_FLOAT32, 3, hd), c->nm ? add_t(g, "protos", SH_DT_FLOAT32, 4, pd) : -1};
    sh_shape unknown = {.ndim = -1};
    int out[4] = {sh_graph_add_tensor(g, "boxes", SH_DT_FLOAT32, &unknown),
                  sh_graph_add_tensor(g, "scores", SH_DT_FLOAT32, &unknown),
                  sh_graph_add_tensor(g, "ids", SH_DT_INT32, &unknown),
                  sh_graph_add_tensor(g, "count", SH_DT_INT32, &unknown)};
    int node;
    one_node(SH_OP_FRAME_DECODE, in, c->nm ? 2 : 1, out, 4, g, &node);
    assert_int_equal(sh_node_set_int(g, node, "decoder", c->yolox), 0);
    assert_int_equal(sh_node_set_int(g, node, "width", c->in), 0);
    assert_int_equal(sh_node_set_int(g, node, "height", c->in), 0);
    assert_int_equal(sh_node_set_float(g, node, "score_threshold", c->thr), 0);
    finish(g);
    return g;
}

static void frame_decode(void **state)
{
    (void)state;
    const head_case cases[] = {
        {"yolov8-seg, 80 classes", 0, 80, 32, 8400, 640, 0.3f},
        {"yolov8, 2 classes", 0, 2, 0, 8400, 640, 0.25f},
        {"yolov8, 37 anchors, 1 class, threshold 0", 0, 1, 0, 37, 640, 0.0f},
        {"yolox, 80 classes, 416", 1, 80, 0, 3549, 416, 0.25f},
        {"yolox, 3 classes, 640", 1, 3, 0, 8400, 640, 0.05f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const head_case *c = &cases[k];
        int64_t hd[3];
        float *head = random_head(c, hd);
        sh_graph *g = decode_graph(c, hd);
        hx_run rc, rg;
        prepare(&rc, &CPU, g);
        prepare(&rg, &GPU, g);
        float *protos = malloc(((size_t)c->nm * 256 + 1) * sizeof(float));
        for (size_t i = 0; i < (size_t)c->nm * 256 + 1; i++)
            protos[i] = grid(-1, 1, 64);   /* read for its shape only */
        void *in[2] = {head, protos};
        void **oc = alloc_outputs(g), **og = alloc_outputs(g);
        run_on(&rc, in, oc);
        run_on(&rg, in, og);
        /* YOLOX sizes go through exp: 1 ulp there, 2 at most in a corner */
        expect_entries(c->what, oc, og, (size_t)c->n, c->yolox ? 2 : 0);
        printf("  %s: %d candidates equal\n", c->what, *(int32_t *)oc[3]);
        assert_true(*(int32_t *)oc[3] > 0);
        free(head);
        free(protos);
        free_outputs(g, oc);
        free_outputs(g, og);
        hx_release(&rc);
        hx_release(&rg);
        sh_graph_destroy(g);
    }
}

/* --- FrameNms --------------------------------------------------------------------------- */

typedef struct nms_case {
    const char *what;
    int cap, n, classes, agnostic, max_det, top_k;
    float iou;
} nms_case;

static sh_graph *nms_graph(const nms_case *c)
{
    sh_graph *g = sh_graph_create(NULL, "nms");
    int64_t bd[2] = {c->cap, 4}, sd[1] = {c->cap}, id[2] = {2, c->cap}, one[1] = {1}, xd[1] = {SH_FRAME_XF_WORDS};
    int in[5] = {add_t(g, "boxes", SH_DT_FLOAT32, 2, bd), add_t(g, "scores", SH_DT_FLOAT32, 1, sd),
                 add_t(g, "ids", SH_DT_INT32, 2, id), add_t(g, "count", SH_DT_INT32, 1, one),
                 add_t(g, "xf", SH_DT_FLOAT32, 1, xd)};
    sh_shape unknown = {.ndim = -1};
    int out[4] = {sh_graph_add_tensor(g, "det_boxes", SH_DT_FLOAT32, &unknown),
                  sh_graph_add_tensor(g, "det_scores", SH_DT_FLOAT32, &unknown),
                  sh_graph_add_tensor(g, "det_ids", SH_DT_INT32, &unknown),
                  sh_graph_add_tensor(g, "det_count", SH_DT_INT32, &unknown)};
    int node;
    one_node(SH_OP_FRAME_NMS, in, 5, out, 4, g, &node);
    assert_int_equal(sh_node_set_int(g, node, "agnostic", c->agnostic), 0);
    assert_int_equal(sh_node_set_int(g, node, "max_detections", c->max_det), 0);
    assert_int_equal(sh_node_set_int(g, node, "top_k", c->top_k), 0);
    assert_int_equal(sh_node_set_float(g, node, "iou_threshold", c->iou), 0);
    finish(g);
    return g;
}

/* The transform of a w x h frame into a 640 x 640 letterbox. */
static void letterbox_xf(int w, int h, float words[SH_FRAME_XF_WORDS])
{
    sh_preprocess_params p = sh_preprocess_default_params(640, 640);
    sh_transform xf;
    sh_err err = {0};
    assert_int_equal(sh_transform_compute(w, h, &p, &xf, &err), 0);
    sh_transform_pack(&xf, words);
}

static void frame_nms(void **state)
{
    (void)state;
    const nms_case cases[] = {
        {"per class, 1500 of 2000 slots", 2000, 1500, 4, 0, 100, 3000, 0.45f},
        {"agnostic, top_k 500", 2000, 1800, 6, 1, 300, 500, 0.7f},
        {"max_detections 5 cuts", 8400, 3000, 2, 0, 5, 3000, 0.45f},
        {"top_k 50, iou 0", 1000, 1000, 3, 0, 100, 50, 0.0f},
        {"no candidates", 500, 0, 3, 0, 100, 3000, 0.45f},
        {"one candidate, iou 1", 64, 1, 1, 1, 300, 0, 1.0f},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const nms_case *c = &cases[k];
        sh_graph *g = nms_graph(c);
        hx_run rc, rg;
        prepare(&rc, &CPU, g);
        prepare(&rg, &GPU, g);
        float *boxes = malloc((size_t)c->cap * 4 * sizeof(float)), *scores = malloc((size_t)c->cap * sizeof(float));
        int32_t *ids = malloc((size_t)c->cap * 2 * sizeof(int32_t)), count = c->n;
        /* boxes around 40 centres so that many pairs overlap; scores on a coarse grid (ties) */
        float centres[40][2];
        for (int q = 0; q < 40; q++) {
            centres[q][0] = grid(0, 640, 2);
            centres[q][1] = grid(0, 640, 2);
        }
        for (int i = 0; i < c->cap; i++) {
            int q = (int)(rnd() % 40);
            float cx = centres[q][0] + grid(-20, 20, 4), cy = centres[q][1] + grid(-20, 20, 4);
            float w = grid(10, 120, 4), h = grid(10, 120, 4);
            boxes[4 * i] = cx - w / 2;
            boxes[4 * i + 1] = cy - h / 2;
            boxes[4 * i + 2] = cx + w / 2;
            boxes[4 * i + 3] = cy + h / 2;
            scores[i] = i < c->n ? 0.25f + floorf(unif() * 64) / 128 : NAN;   /* unused slots: garbage */
            ids[i] = (int32_t)(rnd() % (uint32_t)c->classes);
            ids[c->cap + i] = i * 3 + 1;
        }
        float xf[SH_FRAME_XF_WORDS];
        letterbox_xf(1280, 720, xf);
        void *in[5] = {boxes, scores, ids, &count, xf};
        void **oc = alloc_outputs(g), **og = alloc_outputs(g);
        run_on(&rc, in, oc);
        run_on(&rg, in, og);
        expect_entries(c->what, oc, og, (size_t)c->max_det, 0);
        printf("  %s: %d detections equal\n", c->what, *(int32_t *)oc[3]);
        assert_true(c->n == 0 || *(int32_t *)oc[3] > 0);
        free(boxes);
        free(scores);
        free(ids);
        free_outputs(g, oc);
        free_outputs(g, og);
        hx_release(&rc);
        hx_release(&rg);
        sh_graph_destroy(g);
    }
}

/* --- FrameMasks ------------------------------------------------------------------------- */

/* Pixels of two mask pools that agree; fails on a differing box or place in the pool. Returns
 * the masks left out of the pool. */
static int compare_masks(const char *what, int n, const int32_t *ba, const int32_t *bb, const uint8_t *ma,
                         const uint8_t *mb, size_t *same, size_t *total)
{
    int left_out = 0;
    for (int i = 0; i < n; i++) {
        const int32_t *a = ba + SH_FRAME_MASK_BOX_WORDS * i, *b = bb + SH_FRAME_MASK_BOX_WORDS * i;
        if (memcmp(a, b, 4 * sizeof(int32_t)) || a[5] != b[5])
            fail_msg("%s: mask %d box %d,%d %dx%d at %d on CUDA, %d,%d %dx%d at %d on the CPU", what, i, b[0], b[1],
                     b[2], b[3], b[5], a[0], a[1], a[2], a[3], a[5]);
        if (a[5] < 0) {
            left_out++;
            continue;
        }
        const uint8_t *pa = ma + a[5], *pb = mb + b[5];
        size_t npx = (size_t)a[2] * a[3], area = 0;
        for (size_t q = 0; q < npx; q++) {
            int va = (pa[q >> 3] >> (q & 7)) & 1, vb = (pb[q >> 3] >> (q & 7)) & 1;
            *same += va == vb;
            area += vb;
        }
        *total += npx;
        if ((size_t)b[4] != area)
            fail_msg("%s: mask %d says area %d, its bits hold %zu", what, i, b[4], area);
    }
    return left_out;
}

static void frame_masks(void **state)
{
    (void)state;
    enum { nc = 3, nm = 32, n = 8400, mh = 160, mw = 160, max_det = 40 };
    head_case hc = {"seg head", 0, nc, nm, n, 640, 0.25f};
    int64_t hd[3];
    float *head = random_head(&hc, hd);
    float *protos = malloc((size_t)nm * mh * mw * sizeof(float));
    for (size_t i = 0; i < (size_t)nm * mh * mw; i++)
        protos[i] = grid(-1, 1, 512);
    const int sizes[][2] = {{1280, 720}, {960, 720}, {480, 640}};
    /* a pool for every mask, and (on the last frame) a quarter of the frame's bits, which the
     * 40 masks overflow */
    const int pool_frames[] = {max_det, max_det, 1};
    const int64_t pool_pixels[] = {MAX_PIXELS, MAX_PIXELS, 480 * 640 / 4};
    size_t same = 0, total = 0;
    int left_out = 0;
    for (int s = 0; s < 3; s++) {
        /* the detections the CPU functions make of this head for a frame of that size */
        float xf[SH_FRAME_XF_WORDS];
        letterbox_xf(sizes[s][0], sizes[s][1], xf);
        float *cb = malloc((size_t)n * 4 * 4), *cs = malloc((size_t)n * 4), db[max_det * 4], ds[max_det];
        int32_t *ci = malloc((size_t)n * 8), cn = 0, di[2 * max_det], dn = 0;
        sh_ftensor ht = {head, 3, {hd[0], hd[1], hd[2]}};
        sh_decode_params dp = sh_decode_default_params();
        dp.max_detections = max_det;
        sh_err err = {0};
        assert_int_equal(sh_frame_decode(NULL, NULL, SH_FRAME_DECODER_YOLOV8, &ht, nc, 640, 640, 0.25f, (size_t)n, cb,
                                         cs, ci, &cn, &err), 0);
        assert_int_equal(sh_frame_nms(NULL, NULL, &dp, cb, cs, ci, (size_t)n, &cn, xf, max_det, db, ds, di, &dn, &err),
                         0);
        assert_true(dn > 0);

        sh_graph *g = sh_graph_create(NULL, "masks");
        int64_t pd[4] = {1, nm, mh, mw}, bd[2] = {max_det, 4}, sd[1] = {max_det}, id[2] = {2, max_det}, one[1] = {1},
                xd[1] = {SH_FRAME_XF_WORDS};
        int in[7] = {add_t(g, "head", SH_DT_FLOAT32, 3, hd), add_t(g, "protos", SH_DT_FLOAT32, 4, pd),
                     add_t(g, "boxes", SH_DT_FLOAT32, 2, bd), add_t(g, "scores", SH_DT_FLOAT32, 1, sd),
                     add_t(g, "ids", SH_DT_INT32, 2, id), add_t(g, "count", SH_DT_INT32, 1, one),
                     add_t(g, "xf", SH_DT_FLOAT32, 1, xd)};
        sh_shape unknown = {.ndim = -1};
        int out[2] = {sh_graph_add_tensor(g, "mask_boxes", SH_DT_INT32, &unknown),
                      sh_graph_add_tensor(g, "mask_bits", SH_DT_UINT8, &unknown)};
        int node;
        one_node(SH_OP_FRAME_MASKS, in, 7, out, 2, g, &node);
        assert_int_equal(sh_node_set_int(g, node, "max_pixels", pool_pixels[s]), 0);
        assert_int_equal(sh_node_set_int(g, node, "pool_frames", pool_frames[s]), 0);
        assert_int_equal(sh_node_set_int(g, node, "width", 640), 0);
        assert_int_equal(sh_node_set_float(g, node, "mask_threshold", 0.5f), 0);
        finish(g);
        hx_run rc, rg;
        prepare(&rc, &CPU, g);
        prepare(&rg, &GPU, g);
        void *inputs[7] = {head, protos, db, ds, di, &dn, xf};
        void **oc = alloc_outputs(g), **og = alloc_outputs(g);
        run_on(&rc, inputs, oc);
        run_on(&rg, inputs, og);
        size_t s0 = same, t0 = total;
        int out_now = compare_masks("masks", dn, oc[0], og[0], oc[1], og[1], &same, &total);
        left_out += out_now;
        printf("  %dx%d frame: %d masks (%d left out of a %d-frame pool), %zu of %zu pixels equal\n", sizes[s][0],
               sizes[s][1], dn, out_now, pool_frames[s], same - s0, total - t0);
        free(cb);
        free(cs);
        free(ci);
        free_outputs(g, oc);
        free_outputs(g, og);
        hx_release(&rc);
        hx_release(&rg);
        sh_graph_destroy(g);
    }
    assert_true(total > 0 && left_out > 0);
    if ((double)same < 0.999 * (double)total)
        fail_msg("masks: %zu of %zu pixels equal (< 99.9%%)", same, total);
    free(head);
    free(protos);
}

/* --- FrameLandmarks --------------------------------------------------------------------- */

static void frame_landmarks(void **state)
{
    (void)state;
    for (int logits = 0; logits < 2; logits++) {
        sh_graph *g = sh_graph_create(NULL, "landmarks");
        int64_t ld[1] = {SH_FRAME_LANDMARK_WORDS}, xd[1] = {SH_FRAME_XF_WORDS};
        int in[2] = {add_t(g, "raw", SH_DT_FLOAT32, 1, ld), add_t(g, "xf", SH_DT_FLOAT32, 1, xd)};
        sh_shape unknown = {.ndim = -1};
        int out = sh_graph_add_tensor(g, "landmarks", SH_DT_FLOAT32, &unknown), node;
        one_node(SH_OP_FRAME_LANDMARKS, in, 2, &out, 1, g, &node);
        assert_int_equal(sh_node_set_int(g, node, "logits", logits), 0);
        finish(g);
        hx_run rc, rg;
        prepare(&rc, &CPU, g);
        prepare(&rg, &GPU, g);
        float raw[SH_FRAME_LANDMARK_WORDS], xf[SH_FRAME_XF_WORDS];
        for (int i = 0; i < SH_FRAME_LANDMARK_WORDS; i++)
            raw[i] = i < 3 * SH_HAND_POINTS ? grid(-10, 230, 64) : grid(-4, 4, 64);
        sh_frame_spec s = spec_hand();
        sh_preprocess_params p = {.width = s.width, .height = s.height, .resize = SH_RESIZE_STRETCH, .scale = 1};
        sh_transform t;
        sh_err err = {0};
        assert_int_equal(sh_transform_compute(640, 480, &p, &t, &err), 0);
        sh_transform_pack(&t, xf);
        void *inputs[2] = {raw, xf};
        void **oc = alloc_outputs(g), **og = alloc_outputs(g);
        run_on(&rc, inputs, oc);
        run_on(&rg, inputs, og);
        const float *a = oc[0], *b = og[0];
        for (int i = 0; i < SH_FRAME_LANDMARK_WORDS; i++) {
            /* presence and handedness through a sigmoid (exp) when logits */
            bool ok = i >= 3 * SH_HAND_POINTS && logits ? within_ulps(a[i], b[i], 1) : !memcmp(&a[i], &b[i], 4);
            if (!ok)
                fail_msg("landmarks (logits %d): value %d is %.9g on CUDA, %.9g on the CPU", logits, i, b[i], a[i]);
        }
        printf("  landmarks, logits %d: 65 values equal\n", logits);
        free_outputs(g, oc);
        free_outputs(g, og);
        hx_release(&rc);
        hx_release(&rg);
        sh_graph_destroy(g);
    }
}

/* --- FrameCrop --------------------------------------------------------------------------- */

static sh_graph *crop_graph(int out_w, int out_h, int64_t max_pixels, bool zero_border)
{
    sh_graph *g = sh_graph_create(NULL, "crop");
    int64_t fd[1] = {max_pixels * 3}, sd[1] = {2}, rd[1] = {SH_HAND_CROP_WORDS};
    int in[3] = {add_t(g, "frame", SH_DT_UINT8, 1, fd), add_t(g, "frame_size", SH_DT_INT32, 1, sd),
                 add_t(g, "crop_rect", SH_DT_FLOAT32, 1, rd)};
    sh_shape unknown = {.ndim = -1};
    int out = sh_graph_add_tensor(g, "crop", SH_DT_FLOAT32, &unknown), node;
    one_node(SH_OP_FRAME_CROP, in, 3, &out, 1, g, &node);
    assert_int_equal(sh_node_set_int(g, node, "width", out_w), 0);
    assert_int_equal(sh_node_set_int(g, node, "height", out_h), 0);
    assert_int_equal(sh_node_set_int(g, node, "zero_border", zero_border), 0);
    finish(g);
    return g;
}

/* Random frames of odd sizes (bytes 1..255) and random rects: centres in and around the frame,
 * sizes from a few pixels to larger than the frame, any rotation; MediaPipe's two crop sizes
 * and an odd non-square one, both borders. Exact: every sample's bits. */
static void frame_crop(void **state)
{
    (void)state;
    static const int sizes[][2] = {{192, 192}, {224, 224}, {31, 17}};
    static const int frames[][2] = {{97, 61}, {640, 480}, {1, 1}, {333, 1001}};
    size_t compared = 0;
    for (int zb = 0; zb < 2; zb++)
        for (int si = 0; si < 3; si++) {
            int ow = sizes[si][0], oh = sizes[si][1];
            int64_t cap = 333 * 1001 + 5;
            sh_graph *g = crop_graph(ow, oh, cap, zb);
            hx_run rc, rg;
            prepare(&rc, &CPU, g);
            prepare(&rg, &GPU, g);
            uint8_t *frame = malloc((size_t)cap * 3);
            for (size_t i = 0; i < (size_t)cap * 3; i++)
                frame[i] = (uint8_t)(1 + rnd() % 255);
            void **oc = alloc_outputs(g), **og = alloc_outputs(g);
            for (int fi = 0; fi < 4; fi++)
                for (int k = 0; k < 6; k++) {
                    int32_t size[2] = {frames[fi][0], frames[fi][1]};
                    sh_hand_rect r = {-0.2f + 1.4f * unif(), -0.2f + 1.4f * unif(), 0.05f + 1.75f * unif(),
                                      0.05f + 1.75f * unif(), 3.14159265f * (2.0f * unif() - 1.0f)};
                    if (k == 0)
                        r = sh_palm_input_rect(size[0], size[1]);
                    float words[SH_HAND_CROP_WORDS];
                    sh_hand_crop_words(&r, words);
                    void *inputs[3] = {frame, size, words};
                    run_on(&rc, inputs, oc);
                    run_on(&rg, inputs, og);
                    const float *a = oc[0], *b = og[0];
                    for (int i = 0; i < 3 * ow * oh; i++)
                        if (memcmp(&a[i], &b[i], 4) != 0)
                            fail_msg("crop %dx%d (%s border), frame %dx%d, rect (%g, %g, %g, %g, %g): sample %d is "
                                     "%.9g on CUDA, %.9g on the CPU", ow, oh, zb ? "zero" : "edge", size[0], size[1],
                                     r.x_center, r.y_center, r.width, r.height, r.rotation, i, b[i], a[i]);
                    compared += (size_t)(3 * ow * oh);
                }
            /* a size the frame input cannot hold: the CPU kernel fails, the device writes NaN */
            int32_t bad[2] = {(int32_t)cap, 2};
            float words[SH_HAND_CROP_WORDS] = {0.5f, 0.5f, 1, 1, 1, 0};
            void *inputs[3] = {frame, bad, words};
            run_on(&rg, inputs, og);
            for (int i = 0; i < 3 * ow * oh; i++)
                assert_true(isnan(((const float *)og[0])[i]));
            free(frame);
            free_outputs(g, oc);
            free_outputs(g, og);
            hx_release(&rc);
            hx_release(&rg);
            sh_graph_destroy(g);
        }
    printf("  crop: %zu samples equal\n", compared);
}

/* --- the chained graph of a reference model --------------------------------------------- */

typedef struct chain_case {
    const char *model;
    sh_frame_spec spec;
} chain_case;

static sh_graph *chain_graph(const char *path, const sh_frame_spec *s)
{
    sh_graph *g = NULL;
    sh_err err = {0};
    if (sh_onnx_load_file(NULL, path, &g, &err))
        fail_msg("%s: %s", path, err.msg);
    if (sh_graph_add_frame_ops(g, s, &err))
        fail_msg("%s: %s", path, err.msg);
    finish(g);
    return g;
}

/* Runs one model's chain on the frames; adds its detections and mask pixels to the totals. */
static void run_chain(const chain_case *c, size_t *all_dets, size_t *all_same, size_t *all_px)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", MODELS, c->model);
    sh_frame_spec raw_spec = c->spec;
    raw_spec.decoder = SH_FRAME_SPEC_NONE;
    raw_spec.masks = false;
    sh_graph *g = chain_graph(path, &c->spec), *graw = chain_graph(path, &raw_spec);
    hx_run r, rraw;
    prepare(&r, &GPU, g);
    prepare(&rraw, &GPU, graw);
    size_t cap = (size_t)c->spec.max_pixels * 3;
    size_t pool = c->spec.masks ? (size_t)g->tensors[g->outputs[6]].shape.d[0] : 0;
    size_t same = 0, total = 0, dets = 0;
    void **o = alloc_outputs(g), **oraw = alloc_outputs(graw);
    /* the frames in turn on one binding (one captured graph): a result left from the previous
     * frame would show */
    for (int f = 0; f < N_FRAMES; f++) {
        {
            pre_case pc = {FRAMES[f], 0, 0, FRAMES[f], 0, c->spec};
            int w, h;
            uint8_t *bytes = frame_bytes(&pc, &w, &h, cap);
            int32_t size[2] = {w, h};
            void *in[2] = {bytes, size};
            run_on(&r, in, o);
            run_on(&rraw, in, oraw);
            char what[512];
            snprintf(what, sizeof what, "%s on %s", c->model, FRAMES[f]);
            if (memcmp(o[0], oraw[0], SH_FRAME_XF_WORDS * 4))
                fail_msg("%s: transforms differ", what);
            const sh_tensor *ht = &graw->tensors[graw->outputs[1]];
            sh_ftensor head = {oraw[1], ht->shape.ndim, {0}};
            for (int q = 0; q < ht->shape.ndim && q < 4; q++)
                head.shape[q] = ht->shape.d[q];
            sh_err err = {0};
            if (c->spec.decoder == SH_FRAME_SPEC_LANDMARKS) {
                float want[SH_FRAME_LANDMARK_WORDS];
                assert_int_equal(sh_frame_landmarks(oraw[1], oraw[0], c->spec.landmark_logits, want, &err), 0);
                const float *got = o[1];
                for (int i = 0; i < SH_FRAME_LANDMARK_WORDS; i++)
                    if (!within_ulps(want[i], got[i], i >= 3 * SH_HAND_POINTS && c->spec.landmark_logits ? 1 : 0))
                        fail_msg("%s: landmark value %d is %.9g, the CPU function gives %.9g", what, i, got[i],
                                 want[i]);
                free(bytes);
                continue;
            }
            /* the CPU frame functions on the same network's outputs */
            int64_t k = sh_frame_anchors((sh_frame_decoder)c->spec.decoder, &head);
            size_t m = (size_t)c->spec.max_detections;
            float *cb = malloc((size_t)k * 16), *cs = malloc((size_t)k * 4), *db = malloc(m * 16), *ds = malloc(m * 4);
            int32_t *ci = malloc((size_t)k * 8), *di = malloc(m * 8), cn = 0, dn = 0;
            sh_decode_params dp = sh_decode_default_params();
            dp.iou_threshold = c->spec.iou_threshold;
            dp.agnostic = c->spec.agnostic;
            dp.max_detections = c->spec.max_detections;
            dp.top_k = c->spec.top_k;
            int nm = c->spec.masks ? (int)graw->tensors[graw->outputs[2]].shape.d[1] : 0;
            int64_t channels = head.ndim == 3 ? head.shape[1] : head.shape[0];
            int nc = c->spec.decoder == SH_FRAME_SPEC_YOLOX ? 0 : (int)(channels - 4 - nm);
            if (sh_frame_decode(NULL, NULL, (sh_frame_decoder)c->spec.decoder, &head, nc, c->spec.width, c->spec.height,
                                c->spec.score_threshold, (size_t)k, cb, cs, ci, &cn, &err) ||
                sh_frame_nms(NULL, NULL, &dp, cb, cs, ci, (size_t)k, &cn, oraw[0], m, db, ds, di, &dn, &err))
                fail_msg("%s: %s", what, err.msg);
            void *want[4] = {db, ds, di, &dn}, *got[4] = {o[1], o[2], o[3], o[4]};
            expect_entries(what, want, got, m, 0);
            dets += (size_t)dn;
            if (c->spec.masks && dn > 0) {
                const sh_tensor *pt = &graw->tensors[graw->outputs[2]];
                sh_ftensor protos = {oraw[2], 4, {pt->shape.d[0], pt->shape.d[1], pt->shape.d[2], pt->shape.d[3]}};
                int32_t *mb = malloc(m * SH_FRAME_MASK_BOX_WORDS * 4);
                uint8_t *bits = malloc(pool);
                if (sh_frame_masks(NULL, NULL, NULL, &head, &protos, db, di, m, &dn, oraw[0], c->spec.mask_threshold,
                                   mb, bits, pool, &err))
                    fail_msg("%s: %s", what, err.msg);
                compare_masks(what, dn, mb, o[5], bits, o[6], &same, &total);
                free(mb);
                free(bits);
            }
            free(cb);
            free(cs);
            free(ci);
            free(db);
            free(ds);
            free(di);
            free(bytes);
        }
    }
    if (c->spec.decoder != SH_FRAME_SPEC_LANDMARKS) {
        printf("  %s: %zu detections equal", c->model, dets);
        if (c->spec.masks)
            printf(", %zu of %zu mask pixels equal", same, total);
        printf("\n");
        if (c->spec.masks && (double)same < 0.999 * (double)total)
            fail_msg("%s: %zu of %zu mask pixels equal (< 99.9%%)", c->model, same, total);
        *all_dets += dets;
        *all_same += same;
        *all_px += total;
    } else {
        printf("  %s: landmarks equal\n", c->model);
    }
    free_outputs(g, o);
    free_outputs(graw, oraw);
    hx_release(&r);
    hx_release(&rraw);
    sh_graph_destroy(g);
    sh_graph_destroy(graw);
}

static sh_frame_spec chain_spec(int decoder, bool masks, int max_det, float score)
{
    sh_frame_spec s = spec_yolo(640);
    s.decoder = (sh_frame_spec_decoder)decoder;
    s.masks = masks;
    s.max_detections = max_det;
    s.score_threshold = score;
    return s;
}

static void chained_models(void **state)
{
    (void)state;
    char probe[2048];
    struct stat st;
    snprintf(probe, sizeof probe, "%s/obstacle.onnx", MODELS);
    if (stat(probe, &st) != 0 || !FRAMES[0] || !FRAMES[1] || !FRAMES[2] || !FRAMES[3]) {
        printf("  skipped: no %s or no real frames\n", probe);
        skip();
    }
    chain_case obstacle = {"obstacle.onnx", chain_spec(SH_FRAME_SPEC_YOLOV8, true, 100, 0.3f)};
    obstacle.spec.agnostic = 1;
    chain_case blind = {"blind_road.onnx", chain_spec(SH_FRAME_SPEC_YOLOV8, true, 50, 0.25f)};
    chain_case shop = {"shopping.onnx", chain_spec(SH_FRAME_SPEC_YOLOV8, false, 100, 0.3f)};
    shop.spec.top_k = 50;
    chain_case light = {"traffic_light.onnx", chain_spec(SH_FRAME_SPEC_YOLOV8, false, 20, 0.35f)};
    chain_case hand = {"hand.onnx", spec_hand()};
    hand.spec.decoder = SH_FRAME_SPEC_LANDMARKS;
    hand.spec.landmark_logits = 1;
    const chain_case *cases[] = {&obstacle, &blind, &shop, &light, &hand};
    size_t dets = 0, same = 0, px = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_chain(cases[i], &dets, &same, &px);
    /* a comparison of empty results proves nothing (one model may find nothing on these frames) */
    assert_true(dets > 0);
    assert_true(px > 0);
}

int main(void)
{
    sh_backend_params bp = {.alloc = NULL, .n_threads = 0, .device = 0, .cuda_graphs = true};
    int rc = hx_cuda_or_skip(&GPU, &bp);
    if (rc)
        return rc;
    sh_err err = {0};
    if (sh_backend_cpu_create(&bp, &CPU, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    const char *seed = getenv("SHOAL_TEST_SEED"), *models = getenv("SHOAL_MODELS");
    uint64_t s = seed ? strtoull(seed, NULL, 10) : (uint64_t)time(NULL);
    RNG ^= s * 0x2545f4914f6cdd1dull;
    if (!RNG)
        RNG = 1;
    printf("SHOAL_TEST_SEED=%llu\n", (unsigned long long)s);
    snprintf(MODELS, sizeof MODELS, "%s", models ? models : SHOAL_MODELS_DIR);
    find_frames();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_to_tensor), cmocka_unit_test(frame_decode), cmocka_unit_test(frame_nms),
        cmocka_unit_test(frame_masks), cmocka_unit_test(frame_landmarks), cmocka_unit_test(frame_crop),
        cmocka_unit_test(chained_models),
    };
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    sh_backend_destroy(&CPU);
    sh_backend_destroy(&GPU);
    return rc;
}
