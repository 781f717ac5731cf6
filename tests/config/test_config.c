/* Config loading: a full config, bad configs with their messages and positions, tiers,
 * relative paths, classes files, no leaks and every allocation failure along a full load. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime/config.h"

#define GiB ((uint64_t)1 << 30)
#define MiB ((uint64_t)1 << 20)

static const char FULL[] =
    "version: 1\n"
    "models:\n"
    "  blind_road:\n"
    "    path: models/blind_road.onnx\n"
    "    task: segment\n"
    "    input_size: [640, 640]\n"
    "    classes: [blind_path, crosswalk]\n"
    "    score_threshold: 0.3\n"
    "    priority: 10\n"
    "    preload: true\n"
    "    pinned: true\n"
    "  obstacle:\n"
    "    path: models/obstacle.onnx\n"
    "    task: segment\n"
    "    letterbox: top_left\n"
    "    color: bgr\n"
    "    scale: 0.00392156862745098\n"
    "    mean: [0.485, 0.456, 0.406]\n"
    "    std: [0.229, 0.224, 0.225]\n"
    "    classes_file: labels/obstacle.txt\n"
    "    iou_threshold: 0.5\n"
    "    max_detections: 100\n"
    "    agnostic_nms: yes\n"
    "    on_demand: true\n"
    "    precision: fp16\n"
    "  shopping:\n"
    "    path: /abs/shopping.onnx\n"
    "    task: detect\n"
    "    input_size: 640\n"
    "  traffic_light:\n"
    "    path: models/traffic_light.onnx\n"
    "    task: yolox\n"
    "    input_size: [320, 256]\n"
    "    pinned: true\n"
    "    preload: true\n"
    "  hand:\n"
    "    path: models/hand.onnx\n"
    "    task: landmarks\n"
    "    input_size: 224\n"
    "    letterbox: stretch\n"
    "    mean: 0\n"
    "    std: 1\n"
    "modes:\n"
    "  navigation: [blind_road, obstacle]\n"
    "  crossing: [traffic_light]\n"
    "  shopping:\n"
    "    - shopping\n"
    "    - hand\n"
    "default_mode: navigation\n"
    "memory:\n"
    "  budget: 60%\n"
    "  idle_unload_s: 300\n"
    "  cleanup_threshold: 0.8\n"
    "  host_cache: 256MiB\n"
    "  arena_contexts: 2\n"
    "inference:\n"
    "  fp16: false\n"
    "  streams: 2\n"
    "  cuda_graphs: true\n"
    "  threads: 4\n"
    "  device: auto\n"
    "  concurrent_models: off\n"
    "  mask_pool_frames: 12\n"
    "hardware:\n"
    "  tier: auto\n"
    "  tiers:\n"
    "    low:\n"
    "      max_memory: 6GB\n"
    "      fp16: true\n"
    "      idle_unload_s: 60\n"
    "      host_cache: 0\n"
    "      preload: [blind_road, traffic_light]\n"
    "    mid:\n"
    "      max_memory: 12GB\n"
    "      fp16: true\n"
    "      host_cache: 512MB\n"
    "    high:\n"
    "      preload: all\n"
    "      host_cache: 2GB\n"
    "server:\n"
    "  listen: 0.0.0.0:8080\n"
    "  workers: 4\n"
    "  queue: 32\n"
    "  timeout_ms: 2000\n"
    "  max_body_bytes: 8MB\n"
    "  token_file: secrets/token\n"
    "monitor:\n"
    "  interval_s: 2.5\n"
    "  report_path: reports/gpu.json\n";

static sh_allocator *A;

static int setup(void **state)
{
    A = sh_allocator_create();
    return A ? 0 : -1;
}

static int teardown(void **state)
{
    sh_alloc_stats s = sh_allocator_stats(A);
    sh_allocator_destroy(A);
    return s.in_use == 0 ? 0 : -1;  /* a leak fails the test */
}

static void test_full(void **state)
{
    sh_config *c = NULL;
    sh_err err = {0};
    int rc = sh_config_load_string(A, FULL, strlen(FULL), "full.yaml", "/etc/shoal", &c, &err);
    if (rc)
        fail_msg("%s", err.msg);
    assert_int_equal(c->n_models, 5);
    sh_model_config *br = &c->models[0], *ob = &c->models[1], *tl = &c->models[3], *hd = &c->models[4];
    assert_string_equal(br->name, "blind_road");
    assert_string_equal(br->path, "/etc/shoal/models/blind_road.onnx");
    assert_int_equal(br->task, SH_TASK_SEGMENT);
    assert_int_equal(br->decoder, SH_DECODER_YOLOV8_SEG);
    assert_int_equal(br->n_classes, 2);
    assert_string_equal(br->classes[1], "crosswalk");
    assert_true(br->preload && br->pinned);
    assert_int_equal(br->priority, 10);
    assert_float_equal(br->score_threshold, 0.3f, 1e-6);
    assert_int_equal(br->line, 3);
    assert_int_equal(ob->letterbox, SH_LETTERBOX_TOP_LEFT);
    assert_int_equal(ob->color, SH_COLOR_BGR);
    assert_float_equal(ob->std[2], 0.225f, 1e-6);
    assert_string_equal(ob->classes_file, "/etc/shoal/labels/obstacle.txt");
    assert_true(ob->agnostic_nms);
    assert_false(ob->preload);
    assert_int_equal(ob->precision, SH_PRECISION_FP16);
    assert_int_equal(ob->max_detections, 100);
    assert_string_equal(c->models[2].path, "/abs/shopping.onnx");
    assert_int_equal(c->models[2].input_w, 640);
    assert_int_equal(c->models[2].decoder, SH_DECODER_YOLOV8);
    assert_int_equal(tl->input_w, 320);
    assert_int_equal(tl->input_h, 256);
    assert_int_equal(tl->decoder, SH_DECODER_YOLOX);
    assert_int_equal(hd->decoder, SH_DECODER_LANDMARKS);
    assert_int_equal(hd->letterbox, SH_LETTERBOX_STRETCH);
    assert_float_equal(hd->std[1], 1.0f, 0);
    assert_float_equal(hd->scale, 1.0f / 255.0f, 1e-9);

    assert_int_equal(c->n_modes, 3);
    assert_string_equal(c->modes[2].name, "shopping");
    assert_int_equal(c->modes[2].n_models, 2);
    assert_int_equal(c->modes[2].models[0], 2);
    assert_int_equal(c->modes[2].models[1], 4);
    assert_int_equal(c->default_mode, 0);
    assert_int_equal(sh_config_find_mode(c, "crossing"), 1);
    assert_int_equal(sh_config_find_model(c, "hand"), 4);
    assert_int_equal(sh_config_find_model(c, "nope"), -1);

    assert_int_equal(c->memory.budget.kind, SH_SIZE_PERCENT);
    assert_float_equal(c->memory.budget.percent, 60.0, 0);
    assert_int_equal(sh_config_size_bytes(&c->memory.budget, 10 * GiB, 0), 6 * GiB);
    assert_int_equal(c->memory.host_cache.bytes, 256 * MiB);
    assert_int_equal(c->memory.arena_contexts, 2);
    assert_true(c->inference.cuda_graphs);
    assert_int_equal(c->inference.streams, 2);
    assert_int_equal(c->inference.threads, 4);
    assert_int_equal(c->inference.concurrent_models, SH_CONCURRENT_OFF);
    assert_int_equal(c->inference.mask_pool_frames, 12);
    assert_string_equal(c->server.listen, "0.0.0.0:8080");
    assert_int_equal(c->server.max_body_bytes, 8 * MiB);
    assert_string_equal(c->server.token_file, "/etc/shoal/secrets/token");
    assert_float_equal(c->monitor.interval_s, 2.5, 0);
    assert_string_equal(c->monitor.report_path, "/etc/shoal/reports/gpu.json");
    sh_config_destroy(c);
}

static void test_defaults(void **state)
{
    static const char Y[] = "models:\n  m:\n    path: m.onnx\n    task: classify\n";
    sh_config *c = NULL;
    sh_err err = {0};
    assert_int_equal(sh_config_load_string(A, Y, strlen(Y), NULL, NULL, &c, &err), 0);
    assert_string_equal(c->models[0].path, "m.onnx");           /* no base dir: as written */
    assert_int_equal(c->models[0].decoder, SH_DECODER_CLASSIFY);
    assert_int_equal(c->models[0].input_w, 640);
    assert_int_equal(c->n_modes, 0);
    assert_int_equal(c->default_mode, -1);
    assert_int_equal(c->memory.budget.kind, SH_SIZE_UNSET);
    assert_int_equal(c->memory.idle_unload_s, 300);
    assert_float_equal(c->memory.cleanup_threshold, 0.8, 0);
    assert_int_equal(c->inference.streams, 0);
    assert_int_equal(c->inference.concurrent_models, SH_CONCURRENT_AUTO);
    assert_int_equal(c->inference.mask_pool_frames, 0);   /* the runtime's default */
    assert_int_equal(c->hardware.tier, SH_TIER_AUTO);
    assert_null(c->server.listen);
    assert_int_equal(c->server.workers, 2);
    assert_float_equal(c->monitor.interval_s, 5.0, 0);
    sh_config_destroy(c);
}

/* Each bad config: the line and column where the message must point, and a piece of it. */
static const struct bad {
    const char *yaml;
    int line, col;
    const char *msg;
} BAD[] = {
    {"models:\n  obstacle:\n    path: a.onnx\n    task: detect\n    score_threshold: high\n", 5, 22,
     "models.obstacle.score_threshold: expected a number in [0,1], got 'high'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    scor_threshold: 0.5\n", 5, 5,
     "models.m: unknown key 'scor_threshold' (expected one of: path, task,"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    path: b.onnx\n", 5, 5,
     "models.m: duplicate key 'path' (first at line 3)"},
    {"models:\n  m:\n    task: detect\n", 3, 5, "models.m: missing required key 'path'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmodes:\n  nav: [m, obstcle]\n", 6, 12,
     "modes.nav[1]: unknown model 'obstcle' (models: m)"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmodes:\n  nav: [m, m]\n", 6, 12,
     "modes.nav[1]: model 'm' is listed twice"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmemory:\n  budget: 12 parsecs\n", 6, 11,
     "memory.budget: expected a byte size (like 512MB, 1.5GiB or 60%), got '12 parsecs': unknown unit 'parsecs'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmemory:\n  budget: 99999999999999999999\n", 6, 11,
     "memory.budget: expected a byte size (like 512MB, 1.5GiB or 60%), got '99999999999999999999': too large"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmemory:\n  budget: 17179869184TiB\n", 6, 11,
     "too large"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmemory:\n  cleanup_threshold: 1.5\n", 6, 22,
     "memory.cleanup_threshold: expected a number in (0,1], got '1.5'"},
    {"models:\n  m:\n    path: a.onnx\n    task: dettect\n", 4, 11,
     "models.m.task: expected one of detect, segment, landmarks, classify, yolox, hand_landmarks; got 'dettect'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\ninference:\n  streams: 0\n", 6, 12,
     "inference.streams: expected an integer in [1, 4], got '0'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\ninference:\n  fp16: maybe\n", 6, 9,
     "inference.fp16: expected true or false, got 'maybe'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\ninference:\n  concurrent_models: maybe\n", 6, 22,
     "inference.concurrent_models: expected one of auto, on, off; got 'maybe'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\ninference:\n  mask_pool_frames: 0\n", 6, 21,
     "inference.mask_pool_frames: expected an integer in [1, 65535], got '0'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\ninference:\n  mask_pool_frames: 2.5\n", 6, 21,
     "inference.mask_pool_frames: expected an integer in [1, 65535], got '2.5'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    input_size: [640]\n", 5, 17,
     "models.m.input_size: expected [width, height] or one integer, got a list"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    mean: [1, 2]\n", 5, 11,
     "models.m.mean: expected a list of 3 numbers (one per channel), got a list of another length"},
    {"models:\n  m:\n    path: a.onnx\n    task: segment\n    decoder: yolov8\n", 5, 14,
     "models.m.decoder: decoder 'yolov8' does not fit task 'segment' (use yolov8-seg or none)"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    preload: true\n    on_demand: true\n", 6, 5,
     "models.m.on_demand: contradicts preload: true"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    classes: [a]\n    classes_file: c.txt\n", 6, 19,
     "models.m: give classes or classes_file, not both"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\ndefault_mode: nav\n", 5, 15,
     "default_mode: unknown mode 'nav'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nhardware:\n  tiers:\n    low:\n      max_memory: 8GB\n"
     "    mid:\n      max_memory: 6GB\n", 7, 5, "hardware.tiers: tiers.mid.max_memory must be above tiers.low.max_memory"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nhardware:\n  tiers:\n    low:\n      preload: [x]\n", 8, 17,
     "hardware.tiers.low.preload[0]: unknown model 'x'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nhardware:\n  tier: huge\n", 6, 9,
     "hardware.tier: expected one of auto, low, mid, high; got 'huge'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nserver:\n  max_body_bytes: 50%\n", 6, 19,
     "a share (%) is not allowed here"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmonitor:\n  interval_s: 0\n", 6, 15,
     "monitor.interval_s: expected a number in (0,86400], got '0'"},
    {"modes:\n  nav: []\n", 1, 1, "missing required key 'models'"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nmodes:\n  nav: []\n", 6, 8,
     "modes.nav: expected at least one model name, got an empty list"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\nextras: 1\n", 5, 1, "unknown key 'extras'"},
    {"models:\n  m:\n    path: [a, b]\n    task: detect\n", 3, 11, "models.m.path: expected a path, got a list"},
    {"models:\n  bad name:\n    path: a.onnx\n    task: detect\n", 2, 3,
     "models.bad name: model name 'bad name': use 1 to 63 letters"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n  m:\n    path: b.onnx\n    task: detect\n", 5, 3,
     "models: duplicate key 'm' (first at line 2)"},
    {"models:\n  m:\n    path: a.onnx\n   task: detect\n", 4, 4,
     "invalid YAML: did not find expected key while parsing a block mapping"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n---\nmodels: {}\n", 6, 1, "a second YAML document"},
    {"", 0, 0, "bad.yaml: the config is empty"},
    {"- a\n- b\n", 1, 1, "expected a mapping at the top"},
    {"models:\n  m:\n    path: a.onnx\n    task: detect\n    max_detections: 1e3\n", 5, 21,
     "expected an integer in [1, 100000], got '1e3'"},
};

static void test_bad(void **state)
{
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        sh_config *c = (sh_config *)1;
        sh_err err = {0};
        int rc = sh_config_load_string(A, BAD[i].yaml, strlen(BAD[i].yaml), "bad.yaml", NULL, &c, &err);
        if (rc != SHOAL_ERR_PARSE || c != NULL)
            fail_msg("bad config %zu loaded (rc %d): %s", i, rc, BAD[i].yaml);
        char where[64];
        if (BAD[i].line)
            snprintf(where, sizeof where, "bad.yaml:%d:%d: ", BAD[i].line, BAD[i].col);
        else
            snprintf(where, sizeof where, "bad.yaml");
        if (strncmp(err.msg, where, strlen(where)) || !strstr(err.msg, BAD[i].msg))
            fail_msg("bad config %zu:\n  got      %s\n  expected %s...%s", i, err.msg, where, BAD[i].msg);
        assert_int_equal(sh_allocator_stats(A).in_use, 0);
    }
}

static sh_config *load(const char *y)
{
    sh_config *c = NULL;
    sh_err err = {0};
    if (sh_config_load_string(A, y, strlen(y), "t.yaml", NULL, &c, &err))
        fail_msg("%s", err.msg);
    return c;
}

static void test_tiers(void **state)
{
    sh_config *c = load(FULL);
    /* auto: low up to 6 GiB, mid up to 12 GiB, then high */
    assert_int_equal(sh_config_pick_tier(c, 6 * GiB), SH_TIER_LOW);
    assert_true(c->inference.fp16);
    assert_int_equal(c->memory.idle_unload_s, 60);
    assert_int_equal(c->memory.host_cache.kind, SH_SIZE_BYTES);
    assert_int_equal(c->memory.host_cache.bytes, 0);
    assert_true(c->models[0].preload);    /* in low's preload list */
    assert_false(c->models[1].preload);
    assert_true(c->models[3].preload);
    assert_false(c->models[2].preload);

    /* an "8 GB" card reports a little under 8 GiB */
    assert_int_equal(sh_config_pick_tier(c, 7800 * MiB), SH_TIER_MID);
    assert_true(c->inference.fp16);
    assert_int_equal(c->memory.idle_unload_s, 300);     /* back to the file's value */
    assert_int_equal(c->memory.host_cache.bytes, 512 * MiB);
    assert_false(c->models[2].preload);                  /* mid sets no preload: as written */
    assert_true(c->models[0].preload);
    assert_int_equal(c->hardware.picked, SH_TIER_MID);

    assert_int_equal(sh_config_pick_tier(c, 80 * GiB), SH_TIER_HIGH);
    assert_false(c->inference.fp16);                     /* high sets no fp16: the file's false */
    assert_int_equal(c->memory.host_cache.bytes, 2 * GiB);
    for (size_t i = 0; i < c->n_models; i++)
        assert_true(c->models[i].preload);

    assert_int_equal(sh_config_pick_tier(c, 0), SH_TIER_AUTO);   /* unknown total: none */
    assert_false(c->models[2].preload);
    assert_int_equal(c->memory.host_cache.bytes, 256 * MiB);
    sh_config_destroy(c);

    /* built-in tiers when the config has none; an explicit tier ignores the total */
    c = load("models:\n  m:\n    path: a.onnx\n    task: detect\nhardware:\n  tier: low\n");
    assert_int_equal(sh_config_pick_tier(c, 80 * GiB), SH_TIER_LOW);
    assert_int_equal(c->memory.idle_unload_s, 60);
    assert_true(c->inference.fp16);
    sh_config_destroy(c);

    /* a config's tier merges with the built-in one field by field */
    c = load("models:\n  m:\n    path: a.onnx\n    task: detect\nhardware:\n  tiers:\n    mid:\n"
             "      host_cache: 1GiB\n      budget: 70%\n      preload: none\n");
    assert_int_equal(sh_config_pick_tier(c, 10 * GiB), SH_TIER_MID);
    assert_int_equal(c->memory.host_cache.bytes, GiB);
    assert_int_equal(c->memory.budget.kind, SH_SIZE_PERCENT);
    assert_true(c->inference.fp16);
    assert_int_equal(sh_config_pick_tier(c, 16 * GiB), SH_TIER_HIGH);
    assert_true(c->models[0].preload);
    sh_config_destroy(c);
}

static void test_file_and_classes(void **state)
{
    char dir[] = "/tmp/shoal-cfg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], cls[256];
    snprintf(path, sizeof path, "%s/glasses.yaml", dir);
    snprintf(cls, sizeof cls, "%s/names.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("models:\n  m:\n    path: m.onnx\n    task: detect\n    classes_file: names.txt\n", f);
    fclose(f);
    f = fopen(cls, "w");
    assert_non_null(f);
    fputs("person\r\n\n  car \nbus", f);
    fclose(f);

    sh_config *c = NULL;
    sh_err err = {0};
    assert_int_equal(sh_config_load_file(A, path, &c, &err), 0);
    char want[300];
    snprintf(want, sizeof want, "%s/m.onnx", dir);
    assert_string_equal(c->models[0].path, want);
    assert_int_equal(sh_config_read_classes(c, &c->models[0], &err), 0);
    assert_int_equal(c->models[0].n_classes, 3);
    assert_string_equal(c->models[0].classes[0], "person");
    assert_string_equal(c->models[0].classes[1], "car");
    assert_string_equal(c->models[0].classes[2], "bus");
    sh_config_destroy(c);

    /* names end up in JSON: a Latin-1 byte is refused with its line, not passed on */
    f = fopen(cls, "w");
    assert_non_null(f);
    fputs("person\ncaf\xe9\n", f);
    fclose(f);
    assert_int_equal(sh_config_load_file(A, path, &c, &err), 0);
    assert_int_equal(sh_config_read_classes(c, &c->models[0], &err), SHOAL_ERR_PARSE);
    assert_non_null(strstr(err.msg, "names.txt:2: not UTF-8 text"));
    assert_int_equal(c->models[0].n_classes, 0);
    sh_config_destroy(c);
    f = fopen(cls, "w");
    assert_non_null(f);
    fputs("caf\xc3\xa9\n", f);   /* the same name in UTF-8 */
    fclose(f);
    assert_int_equal(sh_config_load_file(A, path, &c, &err), 0);
    assert_int_equal(sh_config_read_classes(c, &c->models[0], &err), 0);
    assert_string_equal(c->models[0].classes[0], "caf\xc3\xa9");
    sh_config_destroy(c);

    unlink(cls);
    assert_int_equal(sh_config_load_file(A, path, &c, &err), 0);
    assert_int_equal(sh_config_read_classes(c, &c->models[0], &err), SHOAL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "model m: classes_file: "));
    sh_config_destroy(c);

    /* a bad value in a file names the file */
    f = fopen(path, "w");
    fputs("models:\n  m:\n    path: m.onnx\n    task: detect\n    iou_threshold: -1\n", f);
    fclose(f);
    assert_int_equal(sh_config_load_file(A, path, &c, &err), SHOAL_ERR_PARSE);
    assert_null(c);
    char where[300];
    snprintf(where, sizeof where, "%s:5:20: models.m.iou_threshold: ", path);
    assert_memory_equal(err.msg, where, strlen(where));
    unlink(path);
    rmdir(dir);

    assert_int_equal(sh_config_load_file(A, "/nonexistent/shoal.yaml", &c, &err), SHOAL_ERR_NOT_FOUND);
    assert_non_null(strstr(err.msg, "/nonexistent/shoal.yaml"));
}

/* Fail each allocation of a full load in turn: every failure is reported as out of memory,
 * leaves nothing allocated, and the run that fails none loads. */
static void test_fault_injection(void **state)
{
    long n;
    for (n = 0; n < 100000; n++) {
        uint64_t failed_before = sh_allocator_stats(A).n_failed;
        sh_allocator_fail_after(A, n, 0);
        sh_config *c = NULL;
        sh_err err = {0};
        int rc = sh_config_load_string(A, FULL, strlen(FULL), "full.yaml", "/base", &c, &err);
        sh_alloc_stats s = sh_allocator_stats(A);
        sh_allocator_fail_after(A, -1, 0);
        if (rc == 0) {
            assert_int_equal(sh_config_pick_tier(c, 4 * GiB), SH_TIER_LOW);
            sh_config_destroy(c);
            assert_int_equal(sh_allocator_stats(A).in_use, 0);
            if (s.n_failed == failed_before)
                break;
            continue;
        }
        if (rc != SHOAL_ERR_NO_MEMORY)
            fail_msg("allocation %ld: status %d: %s", n, rc, err.msg);
        assert_null(c);
        assert_non_null(strstr(err.msg, "out of memory"));
        assert_int_equal(s.in_use, 0);
    }
    printf("fault injection: %ld allocations\n", n);
    assert_true(n > 20);     /* a full config makes many allocations: all of them were tried */
    assert_true(n < 100000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tiers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_and_classes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fault_injection, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
