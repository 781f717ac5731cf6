/* Config entries with task hand_landmarks: the two model paths resolved, the palm detector's
 * entry of its own ("<name>.palm"), MediaPipe's thresholds with their defaults and ranges, the
 * keys refused on other tasks, the runtime's message naming `make models` when the files are
 * missing, and configs/hands.yaml as shipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "runtime/config.h"
#include "shoal.h"

static sh_config *load(const char *y, sh_err *err)
{
    sh_config *c = NULL;
    sh_allocator *a = sh_allocator_create();
    int rc = sh_config_load_string(a, y, strlen(y), "h.yaml", "/base", &c, err);
    if (rc) {
        sh_allocator_destroy(a);
        return NULL;
    }
    return c;
}

static void release(sh_config *c)
{
    sh_allocator *a = c->alloc_;
    sh_config_destroy(c);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_parse(void **state)
{
    (void)state;
    sh_err err = {0};
    sh_config *c = load("models:\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n"
                        "    palm_model: b.task#hand_detector.tflite\n    num_hands: 1\n"
                        "    min_detection_confidence: 0.6\n    min_tracking_confidence: 0.7\n    tracking: false\n",
                        &err);
    if (!c)
        fail_msg("%s", err.msg);
    const sh_model_config *m = &c->models[0];
    assert_int_equal(m->task, SH_TASK_HAND_LANDMARKS);
    assert_string_equal(m->path, "/base/lm.tflite");
    assert_string_equal(m->palm_path, "/base/b.task#hand_detector.tflite");
    assert_int_equal(m->num_hands, 1);
    assert_true(m->min_detection_confidence == 0.6f && m->min_tracking_confidence == 0.7f);
    assert_false(m->tracking);
    assert_string_equal(sh_task_name(m->task), "hand_landmarks");
    /* the palm detector follows as a model of its own, after the file's models */
    assert_int_equal(c->n_models, 2);
    assert_int_equal(m->palm_stage, 1);
    assert_false(m->is_palm_stage);
    const sh_model_config *palm = &c->models[1];
    assert_string_equal(palm->name, "hand.palm");
    assert_string_equal(palm->path, "/base/b.task#hand_detector.tflite");
    assert_null(palm->palm_path);
    assert_true(palm->is_palm_stage);
    assert_int_equal(palm->stage_owner, 0);
    assert_int_equal(sh_config_find_model(c, "hand.palm"), 1);
    release(c);
    /* modes and tiers keep pointing at the file's models; the palm entry preloads with its owner */
    c = load("models:\n  a:\n    path: a.onnx\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n"
             "    palm_model: p.tflite\n    preload: true\n    pinned: true\n  b:\n    path: b.onnx\n"
             "modes:\n  m: [hand, b]\nhardware:\n  tier: low\n  tiers:\n    low:\n      preload: [a]\n", &err);
    if (!c)
        fail_msg("%s", err.msg);
    assert_int_equal(c->n_models, 4);
    assert_string_equal(c->models[3].name, "hand.palm");
    assert_int_equal(c->models[1].palm_stage, 3);
    assert_true(c->models[3].pinned && c->models[3].preload);
    assert_int_equal(c->modes[0].n_models, 2);
    assert_int_equal(c->modes[0].models[0], 1);
    assert_int_equal(c->modes[0].models[1], 2);
    assert_int_equal(sh_config_pick_tier(c, 0), SH_TIER_LOW);
    assert_true(c->models[0].preload);
    assert_false(c->models[1].preload);
    assert_false(c->models[3].preload);
    release(c);
    /* MediaPipe's defaults: 2 hands, 0.5 / 0.5, video tracking on */
    c = load("models:\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n    palm_model: p.tflite\n", &err);
    assert_non_null(c);
    m = &c->models[0];
    assert_int_equal(m->num_hands, 2);
    assert_true(m->min_detection_confidence == 0.5f && m->min_tracking_confidence == 0.5f && m->tracking);
    release(c);
}

static void test_bad(void **state)
{
    (void)state;
    static const struct {
        const char *yaml, *msg;
    } BAD[] = {
        {"models:\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n",
         "h.yaml:3:5: models.hand: task hand_landmarks needs 'palm_model'"},
        {"models:\n  m:\n    task: detect\n    path: a.onnx\n    num_hands: 2\n",
         "h.yaml:5:16: models.m.num_hands: only task hand_landmarks takes 'num_hands'"},
        {"models:\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n    palm_model: p.tflite\n    num_hands: 9\n",
         "models.hand.num_hands: expected an integer in [1, 8], got '9'"},
        {"models:\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n    palm_model: p.tflite\n"
         "    min_tracking_confidence: 1.5\n",
         "models.hand.min_tracking_confidence: expected a number in [0,1], got '1.5'"},
        {"models:\n  hand.palm:\n    path: x.onnx\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n"
         "    palm_model: p.tflite\n",
         "h.yaml:4: models.hand: its palm detector runs as model 'hand.palm', a name model 'hand.palm' (line 2) "
         "already has"},
    };
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        sh_err err = {0};
        sh_config *c = load(BAD[i].yaml, &err);
        if (c || !strstr(err.msg, BAD[i].msg))
            fail_msg("bad config %zu:\n  got      %s\n  expected %s", i, c ? "(loaded)" : err.msg, BAD[i].msg);
    }
}

/* Without the fetched files the runtime fails at create with a message naming the model, the
 * file and `make models`, instead of an I/O error alone. */
static void test_runtime_missing_files(void **state)
{
    (void)state;
    char why[512] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = "models:\n  hand:\n    task: hand_landmarks\n    path: lm.tflite\n    palm_model: p.tflite\n"
                    "inference:\n  device: cpu\n";
    p.error = why;
    p.error_cap = sizeof why;
    shoal_runtime_t rt = NULL;
    int rc = shoal_runtime_create(&p, &rt);
    assert_int_equal(rc, SHOAL_ERR_NOT_FOUND);
    assert_null(rt);
    if (!strstr(why, "model 'hand': lm.tflite (the landmark model of hand model 'hand') is missing: `make models`"))
        fail_msg("runtime said: %s", why);
}

static void test_shipped_config(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_config *c = NULL;
    sh_err err = {0};
    int rc = sh_config_load_file(a, SHOAL_SOURCE_DIR "/configs/hands.yaml", &c, &err);
    if (rc)
        fail_msg("%s", err.msg);
    int i = sh_config_find_model(c, "hand");
    assert_true(i >= 0);
    assert_int_equal(c->models[i].task, SH_TASK_HAND_LANDMARKS);
    assert_non_null(strstr(c->models[i].palm_path, "palm_detection_full.tflite"));
    sh_config_destroy(c);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_runtime_missing_files),
        cmocka_unit_test(test_shipped_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
