/* `shoal hands` as a user runs it, on MediaPipe's test photo with configs/hands.yaml (models
 * from make models and ../shared; skipped without them): one JSON line per frame, both hands
 * found on the first frame with the npm label "Right", the second frame tracked (no palm
 * model), and bad usage / a wrong model entry with the documented exit codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cjson/cJSON.h>
#include <cmocka.h>

#define SHOAL SHOAL_BINARY_DIR "/shoal"
#define PHOTO SHOAL_SHARED_DIR "/real-models/hands/left_hands.jpg"
#define CONFIG SHOAL_SOURCE_DIR "/configs/hands.yaml"

static int run(const char *cmd, char **out)
{
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    assert_non_null(buf);
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
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void check_frame(const char *line, bool detector)
{
    cJSON *j = cJSON_Parse(line);
    assert_non_null(j);
    assert_int_equal(cJSON_IsTrue(cJSON_GetObjectItem(j, "detector_ran")), detector);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "palms")), detector ? 2 : 0);
    cJSON *hands = cJSON_GetObjectItem(j, "hands");
    assert_int_equal(cJSON_GetArraySize(hands), 2);
    for (int h = 0; h < 2; h++) {
        cJSON *hand = cJSON_GetArrayItem(hands, h);
        assert_string_equal(cJSON_GetObjectItem(hand, "handedness")->valuestring, "Right");
        assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(hand, "landmarks")), 21);
    }
    cJSON_Delete(j);
}

static void test_frames(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(run(SHOAL " hands --config " CONFIG " --model hand " PHOTO " " PHOTO, &out), 0);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';
    check_frame(out, true);
    check_frame(second, false);
    free(out);
    /* --images: every frame detected afresh */
    assert_int_equal(run(SHOAL " hands --config " CONFIG " --model hand --images " PHOTO " " PHOTO, &out), 0);
    second = strchr(out, '\n');
    assert_non_null(second);
    *second++ = '\0';
    check_frame(second, true);
    free(out);
}

static void test_usage(void **state)
{
    (void)state;
    char *out;
    assert_int_equal(run(SHOAL " hands " PHOTO " 2>/dev/null", &out), 2);
    free(out);
    assert_int_equal(run(SHOAL " hands --config " CONFIG " --model hand --num-hands 9 " PHOTO " 2>/dev/null", &out), 2);
    free(out);
    assert_int_equal(run(SHOAL " hands --config " CONFIG " --model nope " PHOTO " 2>/dev/null", &out), 1);
    free(out);
}

int main(void)
{
    struct stat st;
    if (stat(PHOTO, &st) || stat(SHOAL_MODELS_DIR "/palm_detection_full.tflite", &st) ||
        stat(SHOAL_MODELS_DIR "/hand_landmark_full.tflite", &st)) {
        fprintf(stderr, "skipped: needs ../shared and the hand models (make models)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_frames), cmocka_unit_test(test_usage)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
