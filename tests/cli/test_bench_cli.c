/* `shoal bench` end to end on the tiny stand-in set (tests/runtime/data/tiny.yaml): the JSON
 * record holds every phase the benchmark scripts read (bench/table.py), the auto budget and a
 * given one below every model resident make mode switches evict and reload, a budget that
 * cannot apply fails the run, the CPU profile names op types, a mode given a JPEG picture is
 * also timed from its bytes, and bad options fail with the documented exit codes. Values are
 * checked for presence and sense, never for speed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <cmocka.h>
#include <turbojpeg.h>

#define SHOAL SHOAL_BINARY_DIR "/shoal"
#define TINY SHOAL_SOURCE_DIR "/tests/runtime/data/tiny.yaml"

/* Runs a command, returns its exit status and (if out) its stdout, malloc'd. */
static int run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static cJSON *at(cJSON *o, const char *path)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *tok = strtok(buf, "."); tok && o; tok = strtok(NULL, "."))
        o = cJSON_GetObjectItem(o, tok);
    if (!o)
        fail_msg("missing %s", path);
    return o;
}

static double num(cJSON *o, const char *path)
{
    cJSON *v = at(o, path);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static void test_record(void **state)
{
    (void)state;
    char *out = NULL;
    int rc = run(SHOAL " bench --config " TINY " --device cpu --threads 1 --iters 3 --warmup 1 --cycles 2"
                       " --profile --json 2>/dev/null", &out);
    assert_int_equal(rc, 0);
    cJSON *r = cJSON_Parse(out);
    assert_non_null(r);
    assert_true(cJSON_IsTrue(at(r, "ok")));
    assert_string_equal(cJSON_GetStringValue(at(r, "device")), "cpu");

    const char *models[] = {"blind_road", "obstacle", "traffic_light", "shopping", "hand"};
    const char *phases[] = {"parse_ms", "optimize_ms", "compile_ms", "plan_ms", "pack_ms", "upload_ms", "first_run_ms"};
    for (int i = 0; i < 5; i++) {
        char p[128];
        for (int k = 0; k < 7; k++) {
            snprintf(p, sizeof p, "load.models.%s.%s", models[i], phases[k]);
            assert_true(num(r, p) >= 0);
        }
        snprintf(p, sizeof p, "models.%s.infer_ms.n", models[i]);
        assert_int_equal((int)num(r, p), 3);
        snprintf(p, sizeof p, "models.%s.latency_ms.median", models[i]);
        double lat = num(r, p);
        snprintf(p, sizeof p, "models.%s.infer_ms.median", models[i]);
        assert_true(lat >= num(r, p));            /* the whole path contains the network */
        snprintf(p, sizeof p, "models.%s.gflop.total", models[i]);
        assert_true(num(r, p) > 0);
        snprintf(p, sizeof p, "profile.%s.total_ms", models[i]);
        assert_true(num(r, p) > 0);
        snprintf(p, sizeof p, "memory.models.%s.weight_bytes", models[i]);
        assert_true(num(r, p) > 0);
    }
    assert_true(num(r, "load.total_ms") >= num(r, "load.create_ms"));
    assert_true(num(r, "profile.obstacle.ops_ms.Conv") > 0);
    const char *modes[] = {"navigation", "crossing", "shopping"};
    for (int k = 0; k < 3; k++) {
        char p[128];
        snprintf(p, sizeof p, "modes.%s.latency_ms.p99", modes[k]);
        double p99 = num(r, p);
        snprintf(p, sizeof p, "modes.%s.latency_ms.median", modes[k]);
        assert_true(p99 >= num(r, p));
    }
    /* blind_road and shopping share their backbone: the store keeps it once */
    assert_true(num(r, "memory.dedup_saved_bytes") > 0);
    assert_true(num(r, "memory.weights_stored_bytes") < num(r, "memory.weights_referenced_bytes"));
    assert_true(num(r, "memory.arena_bytes") >= num(r, "memory.activations_planned_max_bytes"));
    assert_true(num(r, "memory.peak_rss_bytes") > 0);
    /* the auto budget holds the largest mode but not every model: switches must swap */
    assert_true(num(r, "switch.budget_bytes") < num(r, "switch.all_models_bytes"));
    assert_int_equal((int)num(r, "switch.switches"), 6);
    assert_true(num(r, "switch.loads") > 0);
    assert_true(num(r, "switch.evictions") > 0);
    assert_true(num(r, "switch.uploaded_bytes") > 0);
    assert_int_equal((int)num(r, "switch.switch_ms.n"), 6);
    assert_true(num(r, "memory_end.device_peak_bytes") <= num(r, "memory.device_peak_bytes"));
    cJSON_Delete(r);
    free(out);
}

/* Runs the bench on the tiny set under `budget`, JSON on stdout; *rc gets the exit status. */
static cJSON *bench_budget(const char *budget, int *rc)
{
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, SHOAL " bench --config " TINY " --device cpu --threads 1 --iters 1 --warmup 0"
             " --cycles 2 --budget %s --json 2>/dev/null", budget);
    *rc = run(cmd, &out);
    cJSON *r = cJSON_Parse(out);
    free(out);
    assert_non_null(r);
    return r;
}

static bool has_error(cJSON *r, const char *text)
{
    cJSON *errs = cJSON_GetObjectItem(r, "errors");
    for (cJSON *e = errs ? errs->child : NULL; e; e = e->next)
        if (strstr(cJSON_GetStringValue(e), text))
            return true;
    return false;
}

/* A budget given on the command line below "every model resident" (the modes phase left
 * them all loaded) is applied as given: the unpinned models leave first, the cycles reload
 * and evict them. A budget that cannot apply, or that a mode does not fit, fails the run
 * instead of growing. The byte figures come from an auto run, so no model size is assumed. */
static void test_given_budget(void **state)
{
    (void)state;
    int rc;
    cJSON *a = bench_budget("auto", &rc);
    assert_int_equal(rc, 0);
    const double auto_b = num(a, "switch.budget_bytes"), all = num(a, "switch.all_models_bytes");
    const double pinned = num(a, "switch.resident_after_unload_bytes");
    cJSON_Delete(a);
    assert_true(pinned < auto_b && auto_b < all);

    char given[64];
    snprintf(given, sizeof given, "%.0f", auto_b + 65536);
    cJSON *r = bench_budget(given, &rc);
    assert_int_equal(rc, 0);
    assert_true(cJSON_IsTrue(at(r, "ok")));
    assert_string_equal(cJSON_GetStringValue(at(r, "switch.budget_rule")), "given");
    assert_true(num(r, "switch.budget_bytes") == auto_b + 65536);   /* as given, not grown */
    assert_true(num(r, "switch.budget_bytes") < num(r, "switch.all_models_bytes"));
    assert_true(num(r, "switch.budget_grown_bytes") == 0);
    cJSON *gone = at(r, "switch.unloaded");
    const char *unpinned[] = {"obstacle", "shopping", "hand"};
    assert_int_equal(cJSON_GetArraySize(gone), 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(gone, i)), unpinned[i]);
    assert_true(num(r, "switch.resident_after_unload_bytes") == pinned);
    assert_int_equal((int)num(r, "switch.switches"), 6);
    /* 2 cycles: obstacle twice, shopping and hand twice each, evicted in between */
    assert_true(num(r, "switch.loads") >= 6);
    assert_true(num(r, "switch.evictions") >= 4);
    assert_true(num(r, "switch.uploaded_bytes") > 0);
    cJSON_Delete(r);

    /* below the pinned models and the arena: refused, exit 1, no larger budget tried */
    r = bench_budget("64KiB", &rc);
    assert_int_equal(rc, 1);
    assert_false(cJSON_IsTrue(at(r, "ok")));
    assert_true(has_error(r, "--budget 64KiB"));
    assert_null(cJSON_GetObjectItem(at(r, "switch"), "budget_bytes"));
    cJSON_Delete(r);

    /* above the pinned models but below navigation: its first switch fails, exit 1 */
    long long mid = ((long long)pinned + (long long)auto_b) / 2;
    snprintf(given, sizeof given, "%lld", mid);
    r = bench_budget(given, &rc);
    assert_int_equal(rc, 1);
    assert_true(has_error(r, "switching under the given --budget to"));
    assert_true(num(r, "switch.budget_bytes") == (double)mid);
    assert_int_equal((int)num(r, "switch.switches"), 0);
    cJSON_Delete(r);
}

/* A 160x120 camera-like picture as a JPEG file at path (gradients and blocks, not flat). */
static void write_jpeg(const char *path)
{
    enum { W = 160, H = 120 };
    static uint8_t rgb[W * H * 3];
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)(x * 255 / W);
            p[1] = (uint8_t)(y * 255 / H);
            p[2] = (uint8_t)((x / 20 + y / 20) % 2 ? 200 : 40);
        }
    tjhandle tj = tjInitCompress();
    assert_non_null(tj);
    unsigned char *jpeg = NULL;
    unsigned long size = 0;
    assert_int_equal(tjCompress2(tj, rgb, W, 0, H, TJPF_RGB, &jpeg, &size, TJSAMP_420, 85, 0), 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(jpeg, 1, size, f), size);
    fclose(f);
    tjFree(jpeg);
    tjDestroy(tj);
}

/* --image MODE=FILE: that mode and its models see the picture; a JPEG picture adds the run
 * from its bytes (decode + frame), with the decode apart; the other modes keep their models'
 * frames and get no JPEG figures. */
static void test_mode_images(void **state)
{
    (void)state;
    char path[] = "/tmp/shoal-bench-cli-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    write_jpeg(path);
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd, SHOAL " bench --config " TINY " --device cpu --threads 1 --iters 3 --warmup 1"
             " --budget none --image navigation=%s --json 2>/dev/null", path);
    int rc = run(cmd, &out);
    assert_int_equal(rc, 0);
    cJSON *r = cJSON_Parse(out);
    free(out);
    assert_non_null(r);
    assert_true(cJSON_IsTrue(at(r, "ok")));
    assert_non_null(strstr(cJSON_GetStringValue(at(r, "mode_inputs.navigation")), "160x120"));
    assert_non_null(strstr(cJSON_GetStringValue(at(r, "mode_inputs.navigation")), "(JPEG)"));
    assert_non_null(strstr(cJSON_GetStringValue(at(r, "inputs.obstacle")), path));
    assert_null(strstr(cJSON_GetStringValue(at(r, "inputs.traffic_light")), path));
    assert_int_equal((int)num(r, "modes.navigation.jpeg_frame_ms.n"), 3);
    assert_int_equal((int)num(r, "modes.navigation.jpeg_decode_ms.n"), 3);
    assert_true(num(r, "modes.navigation.jpeg_bytes") > 100);
    assert_true(num(r, "modes.navigation.jpeg_decode_ms.min") > 0);
    /* each run from bytes is its decode plus a whole frame */
    assert_true(num(r, "modes.navigation.jpeg_frame_ms.min") > num(r, "modes.navigation.jpeg_decode_ms.min"));
    assert_null(cJSON_GetObjectItem(at(r, "modes.crossing"), "jpeg_frame_ms"));
    cJSON_Delete(r);

    /* a mode the config does not have, and a file that is not there: errors, exit 1 */
    snprintf(cmd, sizeof cmd, SHOAL " bench --config " TINY " --device cpu --iters 1 --warmup 0 --budget none"
             " --image nowhere=%s 2>/dev/null", path);
    assert_int_equal(run(cmd, NULL), 1);
    assert_int_equal(run(SHOAL " bench --config " TINY " --device cpu --iters 1 --warmup 0 --budget none"
                         " --image crossing=/nonexistent.jpg 2>/dev/null", NULL), 1);
    unlink(path);
}

static void test_bad_options(void **state)
{
    (void)state;
    assert_int_equal(run(SHOAL " bench --no-such-option 2>/dev/null", NULL), 2);
    assert_int_equal(run(SHOAL " bench --iters 0 2>/dev/null", NULL), 2);
    /* a budget that is not a size is a usage error, found before anything loads */
    assert_int_equal(run(SHOAL " bench --config " TINY " --iters 1 --warmup 0 --budget lots 2>/dev/null", NULL), 2);
    assert_int_equal(run(SHOAL " bench --config " TINY " --iters 1 --warmup 0 --mode nowhere 2>/dev/null", NULL), 1);
    assert_int_equal(run(SHOAL " bench --config /nonexistent.yaml 2>/dev/null", NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record),
        cmocka_unit_test(test_given_budget),
        cmocka_unit_test(test_mode_images),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
