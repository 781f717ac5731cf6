/* /v1/stream keeps hand tracking per client: two WebSocket streams (socket pairs served by the
 * stream hub, frames run as jobs of the queue) send MediaPipe's test photo to a mode with the
 * hand landmarker. Each stream's first frame detects palms; its later frames are tracked from
 * its own previous hands, whatever the other stream did in between. Needs models/ (make models)
 * and ../shared (skipped, 77, without them). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "server/jobs.h"
#include "server/stream.h"
#include "server/ws.h"
#include "shoal.h"

#define HAND_DIR SHOAL_SHARED_DIR "/real-models/hands"
#define PALM_MODEL SHOAL_MODELS_DIR "/palm_detection_full.tflite"
#define LANDMARK_MODEL SHOAL_MODELS_DIR "/hand_landmark_full.tflite"

static shoal_runtime_t RT;

static void *acquire(void *user, shoal_runtime_t *rt, const char **default_mode)
{
    *rt = RT;
    *default_mode = "hands";
    return user;
}

static void release(void *token) { (void)token; }

typedef struct client {
    sh_stream_hub *hub;
    int fd[2];          /* [0] the client's end, [1] the server's */
    pthread_t serve;
    sh_ws_reader rd;
    const char *id;
} client;

static void *serve_main(void *arg)
{
    client *c = arg;
    sh_stream_serve(c->hub, c->fd[1], NULL, 0, c->id, "hands");
    return NULL;
}

static void open_client(client *c, sh_stream_hub *hub, const char *id)
{
    memset(c, 0, sizeof *c);
    c->hub = hub;
    c->id = id;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, c->fd), 0);
    assert_true(sh_stream_reserve(hub));
    assert_int_equal(pthread_create(&c->serve, NULL, serve_main, c), 0);
    c->rd = (sh_ws_reader){.fd = c->fd[0], .max_message = 1 << 20, .expect_masked = false};
}

static void close_client(client *c)
{
    sh_ws_write_close(c->fd[0], 1000, "done", true);
    for (;;) {   /* the bye message, then the server's close */
        sh_ws_message m;
        if (sh_ws_read(&c->rd, &m) || m.opcode == SH_WS_CLOSE)
            break;
    }
    pthread_join(c->serve, NULL);
    sh_ws_reader_free(&c->rd);
    close(c->fd[0]);
    close(c->fd[1]);
}

/* Sends the photo as frame `seq` and returns how many of the result's hands were tracked
 * (checking that it found both hands, and palms exactly when none was tracked). */
static int send_frame(client *c, const unsigned char *jpeg, size_t len, uint64_t seq)
{
    size_t n = SH_STREAM_HEADER_BYTES + len;
    unsigned char *msg = malloc(n);
    assert_non_null(msg);
    memcpy(msg, "SHF1", 4);
    for (int i = 0; i < 8; i++) {
        msg[4 + i] = (unsigned char)(seq >> (56 - 8 * i));
        msg[12 + i] = 0;   /* capture time unknown */
    }
    msg[20] = 0;           /* keep the stream's mode */
    memcpy(msg + SH_STREAM_HEADER_BYTES, jpeg, len);
    assert_int_equal(sh_ws_write(c->fd[0], SH_WS_BINARY, msg, n, true), 0);
    free(msg);
    sh_ws_message m;
    assert_int_equal(sh_ws_read(&c->rd, &m), 0);
    assert_int_equal(m.opcode, SH_WS_TEXT);
    cJSON *root = cJSON_ParseWithLength((const char *)m.data, m.len);
    assert_non_null(root);
    cJSON *type = cJSON_GetObjectItem(root, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "result"))
        fail_msg("stream %s frame %llu: %.*s", c->id, (unsigned long long)seq, (int)m.len, (const char *)m.data);
    assert_int_equal((uint64_t)cJSON_GetObjectItem(root, "seq")->valuedouble, seq);
    cJSON *model = cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(root, "results"), "models"), 0);
    assert_string_equal(cJSON_GetObjectItem(model, "model")->valuestring, "hand");
    cJSON *hands = cJSON_GetObjectItem(model, "hands");
    assert_int_equal(cJSON_GetArraySize(hands), 2);
    int tracked = 0;
    for (int i = 0; i < 2; i++)
        tracked += cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(hands, i), "tracked"));
    int palms = cJSON_GetArraySize(cJSON_GetObjectItem(model, "palms"));
    assert_int_equal(palms, tracked ? 0 : 2);
    cJSON_Delete(root);
    return tracked;
}

static void test_tracking_per_client(void **state)
{
    (void)state;
    FILE *f = fopen(HAND_DIR "/left_hands.jpg", "rb");
    assert_non_null(f);
    static unsigned char jpeg[1 << 20];
    size_t len = fread(jpeg, 1, sizeof jpeg, f);
    fclose(f);
    assert_true(len > 1000 && len < sizeof jpeg);

    char why[512] = "";
    shoal_runtime_params p = shoal_runtime_default_params();
    p.config_yaml = "models:\n  hand:\n    task: hand_landmarks\n    path: " LANDMARK_MODEL "\n"
                    "    palm_model: " PALM_MODEL "\nmodes:\n  hands: [hand]\n"
                    "inference:\n  device: cpu\n  threads: 2\nmemory:\n  arena_contexts: 2\n";
    p.error = why;
    p.error_cap = sizeof why;
    if (shoal_runtime_create(&p, &RT))
        fail_msg("runtime: %s", why);
    sh_allocator *a = sh_allocator_create();
    sh_job_queue *q = sh_job_queue_create(a, 2, 8, (size_t)256 << 20);
    assert_non_null(q);
    sh_stream_params sp = {.max_streams = 4, .max_frame_bytes = 1 << 20, .idle_timeout_s = 60, .heartbeat_s = 60,
                           .frame_timeout_ms = 60000, .lanes = 2, .max_pixels = (int64_t)1 << 24};
    sh_stream_runtime srt = {.acquire = acquire, .release = release, .user = &RT};
    sh_stream_hub *hub = sh_stream_hub_create(a, &sp, q, &srt, NULL, NULL);
    assert_non_null(hub);

    client ca, cb;
    open_client(&ca, hub, "a");
    open_client(&cb, hub, "b");
    assert_int_equal(send_frame(&ca, jpeg, len, 1), 0);   /* a detects */
    assert_int_equal(send_frame(&ca, jpeg, len, 2), 2);   /* a tracks its two hands */
    assert_int_equal(send_frame(&cb, jpeg, len, 1), 0);   /* b has tracked nothing yet */
    assert_int_equal(send_frame(&ca, jpeg, len, 3), 2);
    assert_int_equal(send_frame(&cb, jpeg, len, 2), 2);
    close_client(&ca);
    /* a new client starts afresh, not from a's state */
    client cc;
    open_client(&cc, hub, "c");
    assert_int_equal(send_frame(&cc, jpeg, len, 1), 0);
    assert_int_equal(send_frame(&cb, jpeg, len, 3), 2);
    close_client(&cb);
    close_client(&cc);

    sh_stream_hub_destroy(hub);
    sh_job_queue_destroy(q);
    shoal_runtime_destroy(RT);
    sh_allocator_destroy(a);
}

int main(void)
{
    FILE *probe[3] = {fopen(PALM_MODEL, "rb"), fopen(LANDMARK_MODEL, "rb"), fopen(HAND_DIR "/left_hands.jpg", "rb")};
    bool have = probe[0] && probe[1] && probe[2];
    for (int i = 0; i < 3; i++)
        if (probe[i])
            fclose(probe[i]);
    if (!have) {
        fprintf(stderr, "skipped: needs %s, %s (make models) and %s\n", PALM_MODEL, LANDMARK_MODEL, HAND_DIR);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tracking_per_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
