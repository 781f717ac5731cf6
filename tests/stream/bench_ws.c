/* bench_ws: the WebSocket transport of /v1/stream alone, shoal's own (libmicrohttpd's upgrade
 * + src/server/ws.c, served on the connection's thread as `shoal serve` does) beside
 * libwebsockets (its one service thread), with no inference: each binary frame is answered at
 * once with a small JSON text carrying the frame's sequence number, as the stream answers a
 * processed frame. Loopback only.
 *   bench_ws serve own|lws PORT            a server until killed
 *   bench_ws load PORT CLIENTS FPS SECONDS FRAME_BYTES
 *                                          clients, each with one frame in flight; FPS 0 =
 *                                          flat out. Prints frames/s, per-client min/max and
 *                                          the round trip's p50/p99/max in ms.
 * scripts/ws-bench.sh runs the matrix of docs/deploy.md. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/ws.h"

#define MAX_FRAME (4u << 20)

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int reply_text(char *out, size_t cap, const uint8_t *frame, size_t len)
{
    unsigned long long seq = 0;
    if (len >= 8)
        for (int i = 0; i < 8; i++)
            seq = seq << 8 | frame[i];
    return snprintf(out, cap,
                    "{\"type\":\"result\",\"seq\":%llu,\"age_ms\":0.0,\"mode\":\"crossing\",\"results\":[]}", seq);
}

/* --- own: libmicrohttpd's upgrade and ws.c -------------------------------------------------- */

static void own_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in, size_t extra_len,
                         MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)cls;
    (void)c;
    (void)con_cls;
    sh_allocator *a = sh_allocator_create();
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    /* as `shoal serve` does: libmicrohttpd's sockets are non-blocking, the reader blocks */
    int fl = fcntl(sock, F_GETFL);
    if (fl >= 0)
        fcntl(sock, F_SETFL, fl & ~O_NONBLOCK);
    sh_ws_reader r = {.alloc = a, .fd = sock, .max_message = MAX_FRAME, .expect_masked = true,
                      .pre = (const uint8_t *)extra_in, .pre_len = extra_len};
    for (;;) {
        struct pollfd pf = {.fd = sock, .events = POLLIN};
        if (r.pre_len == 0 && poll(&pf, 1, 30000) <= 0)
            break;
        sh_ws_message m;
        if (sh_ws_read(&r, &m))
            break;
        if (m.opcode == SH_WS_CLOSE)
            break;
        char text[256];
        int n = reply_text(text, sizeof text, m.data, m.len);
        if (sh_ws_write(sock, SH_WS_TEXT, text, (size_t)n, false))
            break;
    }
    sh_ws_reader_free(&r);
    sh_allocator_destroy(a);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static enum MHD_Result own_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                   const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    char accept[29];
    if (!key || !sh_ws_accept_key(key, accept))
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_for_upgrade(own_upgraded, NULL);
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    return ok;
}

static int serve_own(int port)
{
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                                                MHD_ALLOW_UPGRADE | MHD_USE_ITC,
                                            (uint16_t)port, NULL, NULL, own_request, NULL,
                                            MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "bench_ws: libmicrohttpd did not start on %d\n", port);
        return 1;
    }
    printf("serving (own) on %d\n", port);
    fflush(stdout);
    for (;;)
        pause();
}

/* --- libwebsockets ---------------------------------------------------------------------------- */

typedef struct lws_session {
    uint8_t *buf;
    size_t len, cap;
    unsigned char reply[LWS_PRE + 256];
    size_t reply_len;
} lws_session;

static int lws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    lws_session *ss = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED: {
        int one = 1;
        setsockopt(lws_get_socket_fd(wsi), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        memset(ss, 0, sizeof *ss);
        break;
    }
    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi))
            ss->len = 0;
        if (ss->len + len > MAX_FRAME)
            return -1;
        if (ss->len + len > ss->cap) {
            size_t nc = ss->cap ? ss->cap : 65536;
            while (nc < ss->len + len)
                nc *= 2;
            uint8_t *nb = realloc(ss->buf, nc);
            if (!nb)
                return -1;
            ss->buf = nb;
            ss->cap = nc;
        }
        memcpy(ss->buf + ss->len, in, len);
        ss->len += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            ss->reply_len = (size_t)reply_text((char *)ss->reply + LWS_PRE, 256, ss->buf, ss->len);
            lws_callback_on_writable(wsi);
        }
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (ss->reply_len) {
            if (lws_write(wsi, ss->reply + LWS_PRE, ss->reply_len, LWS_WRITE_TEXT) < (int)ss->reply_len)
                return -1;
            ss->reply_len = 0;
        }
        break;
    case LWS_CALLBACK_CLOSED:
        free(ss->buf);
        ss->buf = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols LWS_PROTOCOLS[] = {
    {"shoal-stream", lws_cb, sizeof(lws_session), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int serve_lws(int port)
{
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = port;
    info.protocols = LWS_PROTOCOLS;
    info.gid = -1;
    info.uid = -1;
    struct lws_context *ctx = lws_create_context(&info);
    if (!ctx) {
        fprintf(stderr, "bench_ws: libwebsockets did not start on %d\n", port);
        return 1;
    }
    printf("serving (lws) on %d\n", port);
    fflush(stdout);
    for (;;)
        lws_service(ctx, 0);
}

/* --- load ------------------------------------------------------------------------------------ */

typedef struct client {
    pthread_t th;
    int port, fps;
    double seconds;
    size_t frame_bytes;
    double *lat;
    size_t nlat, cap;
    int failed;
} client;

static int ws_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static const char req[] = "GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Version: 13\r\n\r\n";
    if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1))
        return close(fd), -1;
    char head[2048];
    size_t n = 0;
    while (n < sizeof head - 1) {   /* byte by byte: nothing after the head is taken */
        if (recv(fd, head + n, 1, 0) != 1)
            return close(fd), -1;
        n++;
        if (n >= 4 && !memcmp(head + n - 4, "\r\n\r\n", 4))
            break;
    }
    head[n] = '\0';
    if (strncmp(head, "HTTP/1.1 101", 12))
        return close(fd), -1;
    return fd;
}

static void *client_main(void *arg)
{
    client *c = arg;
    int fd = ws_connect(c->port);
    if (fd < 0) {
        c->failed = 1;
        return NULL;
    }
    sh_allocator *a = sh_allocator_create();
    sh_ws_reader r = {.alloc = a, .fd = fd, .max_message = 65536, .expect_masked = false};
    uint8_t *frame = malloc(c->frame_bytes);
    for (size_t i = 0; i < c->frame_bytes; i++)
        frame[i] = (uint8_t)(i * 131 + 7);   /* not compressible, not all zero */
    double start = now_ms(), end = start + c->seconds * 1000.0, period = c->fps ? 1000.0 / c->fps : 0;
    for (unsigned long long seq = 0;; seq++) {
        double due = start + (double)seq * period;
        double t = now_ms();
        if (t >= end)
            break;
        if (due > t)
            nanosleep(&(struct timespec){0, (long)((due - t) * 1e6)}, NULL);
        for (int i = 0; i < 8; i++)
            frame[i] = (uint8_t)(seq >> (56 - 8 * i));
        double sent = now_ms();
        if (sh_ws_write(fd, SH_WS_BINARY, frame, c->frame_bytes, true)) {
            c->failed = 1;
            break;
        }
        sh_ws_message m;
        if (sh_ws_read(&r, &m) || m.opcode != SH_WS_TEXT) {
            c->failed = 1;
            break;
        }
        if (c->nlat == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 1024;
            c->lat = realloc(c->lat, c->cap * sizeof *c->lat);
        }
        c->lat[c->nlat++] = now_ms() - sent;
    }
    sh_ws_write_close(fd, SH_WS_CLOSE_NORMAL, "", true);
    close(fd);
    free(frame);
    sh_ws_reader_free(&r);
    sh_allocator_destroy(a);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int load(int port, int clients, int fps, double seconds, size_t frame_bytes)
{
    client *cs = calloc((size_t)clients, sizeof *cs);
    for (int i = 0; i < clients; i++) {
        cs[i] = (client){.port = port, .fps = fps, .seconds = seconds, .frame_bytes = frame_bytes};
        pthread_create(&cs[i].th, NULL, client_main, &cs[i]);
    }
    size_t total = 0, minc = (size_t)-1, maxc = 0;
    int failed = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(cs[i].th, NULL);
        total += cs[i].nlat;
        minc = cs[i].nlat < minc ? cs[i].nlat : minc;
        maxc = cs[i].nlat > maxc ? cs[i].nlat : maxc;
        failed += cs[i].failed;
    }
    double *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < clients; i++) {
        memcpy(all + k, cs[i].lat, cs[i].nlat * sizeof *all);
        k += cs[i].nlat;
        free(cs[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_double);
    double p50 = total ? all[total / 2] : 0, p99 = total ? all[(size_t)(0.99 * (double)(total - 1))] : 0,
           mx = total ? all[total - 1] : 0;
    char rate[16];
    snprintf(rate, sizeof rate, fps ? "%d" : "max", fps);
    printf("clients %d fps %s frame %zu B: %.0f frames/s, per client %.1f..%.1f frames/s, round trip p50 %.3f "
           "p99 %.3f max %.3f ms, failed clients %d\n",
           clients, rate, frame_bytes, (double)total / seconds, (double)minc / seconds,
           (double)maxc / seconds, p50, p99, mx, failed);
    free(all);
    free(cs);
    return failed ? 1 : 0;
}

/* A whole number in lo..hi, else the usage. */
static long number(const char *text, long lo, long hi)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < lo || v > hi) {
        fprintf(stderr, "bench_ws: '%s' is not a whole number in %ld..%ld\n", text, lo, hi);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc == 4 && !strcmp(argv[1], "serve")) {
        int port = (int)number(argv[3], 1, 65535);
        if (!strcmp(argv[2], "own"))
            return serve_own(port);
        if (!strcmp(argv[2], "lws"))
            return serve_lws(port);
    }
    if (argc == 7 && !strcmp(argv[1], "load"))
        return load((int)number(argv[2], 1, 65535), (int)number(argv[3], 1, 1024), (int)number(argv[4], 0, 1000),
                    (double)number(argv[5], 1, 3600), (size_t)number(argv[6], 16, MAX_FRAME - 1024));
    fprintf(stderr, "usage: bench_ws serve own|lws PORT | bench_ws load PORT CLIENTS FPS SECONDS FRAME_BYTES\n");
    return 2;
}
