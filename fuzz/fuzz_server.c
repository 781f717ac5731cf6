/* libFuzzer entry for the HTTP server's request handling: each input is written, as is, to a
 * fresh loopback connection of a server running inside this process, and must be answered
 * or closed - never crash the server, hang it or leak. The runtime behind it serves one tiny
 * model (an ONNX node test's 1x3x32x32 average pool, from ../shared) so that requests reaching
 * inference stay cheap; the server's own code (parsing, limits, image probing, JSON, jobs) is
 * compiled into this target with the fuzzer's instrumentation.
 * Run: build-fuzz/fuzz/fuzz_server -max_total_time=600 -timeout=10 CORPUS_DIR fuzz/server-seeds */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"
#include "shoal.h"

/* An answer or a close must come within this; more means the server hangs on the input. */
#define ANSWER_MS 5000

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static shoal_runtime_t rt;
static sh_server *srv;
static int port;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char model[1024];
    snprintf(model, sizeof model, "%s/onnx-node-tests/test_averagepool_2d_default/model.onnx", SHOAL_SHARED_DIR);
    if (access(model, R_OK) != 0) {   /* ctest's replay reports 77 as skipped */
        fprintf(stderr, "fuzz_server: skipped: %s not found\n", model);
        exit(77);
    }
    static char yaml[2048];
    snprintf(yaml, sizeof yaml,
             "models:\n"
             "  pool:\n"
             "    path: %s\n"
             "    task: classify\n"
             "    decoder: none\n"
             "modes:\n"
             "  m: [pool]\n"
             "default_mode: m\n"
             "inference:\n"
             "  device: cpu\n"
             "  threads: 1\n",
             model);
    char err[512] = "";
    shoal_runtime_params rp = shoal_runtime_default_params();
    rp.config_yaml = yaml;
    rp.contexts = 1;
    rp.start_monitor = 0;
    rp.error = err;
    rp.error_cap = sizeof err;
    if (shoal_runtime_create(&rp, &rt) != SHOAL_OK) {
        fprintf(stderr, "fuzz_server: no runtime (is ../shared there?): %s\n", err);
        exit(1);
    }
    sh_server_params sp = sh_server_default_params();
    sp.listen = "127.0.0.1:0";
    sp.workers = 1;
    sp.queue_depth = 4;
    sp.timeout_ms = 2000;
    sp.connection_timeout_s = 2;
    sp.receive_timeout_s = 2;
    sp.max_body_bytes = 1u << 20;
    sp.max_pixels = 1 << 20;
    sp.host_limit_bytes = 64u << 20;
    sp.default_mode = "m";
    sh_err e = {0};
    if (sh_server_start(rt, &sp, &srv, &e) != SHOAL_OK) {
        fprintf(stderr, "fuzz_server: %s\n", e.msg);
        exit(1);
    }
    port = sh_server_port(srv);
    return 0;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return 0;
    }
    /* The server may answer (and close) before reading everything: a short write is fine. */
    for (size_t at = 0; at < size;) {
        ssize_t n = send(fd, data + at, size - at, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        at += (size_t)n;
    }
    /* The end of the input is the end of the client's stream, so an incomplete request is
     * finished with at once instead of waiting for the receive deadline. */
    shutdown(fd, SHUT_WR);
    double deadline = now_ms() + ANSWER_MS;
    char buf[65536];
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left <= 0) {
            fprintf(stderr, "fuzz_server: no answer and no close within %d ms\n", ANSWER_MS);
            abort();
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, left) <= 0)
            continue;
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
    }
    close(fd);
    return 0;
}
