/* shoal stream: the reference client of /v1/stream, and its load generator.
 *
 * Streams a folder of JPEGs, or a video/MJPEG file cut into JPEGs by Debian's ffmpeg, to a
 * server at a chosen rate, as one or several simulated wearers (one connection each, with
 * its own client id), and prints each result's frame age and the drops. At the end it prints
 * a summary: frames sent, results, drops, errors, frames lost (sent but neither answered nor
 * reported dropped: those in flight when a connection broke), frame age p50/p99 as the server
 * measured it, per-client results per second (min/max: fairness), and reconnections with the
 * longest gap from a broken connection to the next result. With --reconnect a broken stream
 * is reopened (through a load balancer that lands on another server) until the run ends.
 * The last line is the summary as one JSON object, for scripts. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/alloc.h"
#include "server/stream.h"
#include "server/ws.h"

#define CMD "stream"
#define MAX_CLIENTS 256
#define MAX_FILES 4096
#define MAX_FILE_BYTES ((size_t)16 << 20)
#define MAX_VIDEO_BYTES ((size_t)256 << 20)
#define MAX_RESULT_BYTES ((size_t)16 << 20)
/* After the last frame, results of frames still in flight are awaited this long. */
#define END_GRACE_MS 2000.0
/* After the close, the server's last messages are awaited this long (its frame timeout). */
#define CLOSE_WAIT_MS 6000.0

typedef struct frames {
    uint8_t **data;
    size_t *len;
    int n, cap;
    size_t total, largest;
} frames;

typedef struct options {
    char host[256], port[16];
    const char *token;
    const char *mode;
    const char *client_prefix;
    double fps, duration_s;
    int clients;
    bool reconnect, quiet;
} options;

typedef struct client {
    sh_allocator *alloc;
    const options *o;
    const frames *fr;
    int index;
    char id[65];
    pthread_t thread;
    /* the current connection */
    int fd;
    pthread_mutex_t send_lock;
    atomic_bool alive;
    atomic_ullong last_answered;   /* the last seq answered (result or error) on this connection */
    /* counts, written by the client's own threads one at a time */
    uint64_t sent, results, errors, dropped, conn_dropped, reconnects;
    double *ages;
    size_t n_ages, cap_ages;
    double first_result, last_result;
    double send_end;                /* when the run stops sending */
    double disconnect_at, max_gap_ms, max_reopen_ms;
    bool failed_connect;
} client;

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000), (long)((ms - (double)(time_t)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

/* --- sources --------------------------------------------------------------------------- */

static int frames_add(sh_allocator *a, frames *f, uint8_t *data, size_t len)
{
    if (f->n == f->cap) {
        int nc = f->cap ? f->cap * 2 : 64;
        uint8_t **nd = sh_realloc(a, f->data, (size_t)nc * sizeof *nd);
        if (!nd)
            return -1;
        f->data = nd;
        size_t *nl = sh_realloc(a, f->len, (size_t)nc * sizeof *nl);
        if (!nl)
            return -1;
        f->len = nl;
        f->cap = nc;
    }
    f->data[f->n] = data;
    f->len[f->n++] = len;
    f->total += len;
    if (len > f->largest)
        f->largest = len;
    return 0;
}

static void frames_free(sh_allocator *a, frames *f)
{
    for (int i = 0; i < f->n; i++)
        sh_free(a, f->data[i]);
    sh_free(a, f->data);
    sh_free(a, f->len);
}

static int cmp_str(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static bool is_jpeg_name(const char *n)
{
    const char *dot = strrchr(n, '.');
    return dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

/* Every *.jpg / *.jpeg of a folder, in name order. */
static int load_folder(sh_allocator *a, const char *dir, frames *f)
{
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "shoal stream: cannot open folder %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char *names[MAX_FILES];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_FILES) {
        if (!is_jpeg_name(e->d_name))
            continue;
        size_t k = strlen(e->d_name) + 1;
        names[n] = sh_alloc(a, k);
        if (!names[n])
            break;
        memcpy(names[n++], e->d_name, k);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *fp = rc ? NULL : fopen(path, "rb");
        struct stat st;
        if (fp && fstat(fileno(fp), &st) == 0 && st.st_size > 0 && (size_t)st.st_size <= MAX_FILE_BYTES) {
            uint8_t *buf = sh_alloc(a, (size_t)st.st_size);
            if (buf && fread(buf, 1, (size_t)st.st_size, fp) == (size_t)st.st_size && !frames_add(a, f, buf, (size_t)st.st_size))
                buf = NULL;
            sh_free(a, buf);
        }
        if (fp)
            fclose(fp);
        sh_free(a, names[i]);
    }
    if (!f->n) {
        fprintf(stderr, "shoal stream: no readable .jpg files (up to %zu MiB each) in %s\n", MAX_FILE_BYTES >> 20, dir);
        return -1;
    }
    return 0;
}

/* A video or MJPEG file as JPEG frames at the chosen rate: ffmpeg writes them one after the
 * other to a pipe; each runs from its start marker (FF D8) to its end marker (FF D9), which
 * cannot occur inside the entropy-coded data (an FF there is always followed by 00). */
static int load_video(sh_allocator *a, const char *path, double fps, double seconds, frames *f)
{
    int pfd[2];
    if (pipe(pfd)) {
        fprintf(stderr, "shoal stream: pipe: %s\n", strerror(errno));
        return -1;
    }
    char rate[64], limit[64];
    snprintf(rate, sizeof rate, "fps=%g", fps);
    snprintf(limit, sizeof limit, "%g", seconds > 0 && seconds < 60 ? seconds : 60.0);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pfd[1], 1);
        close(pfd[0]);
        close(pfd[1]);
        execlp("ffmpeg", "ffmpeg", "-nostdin", "-loglevel", "error", "-i", path, "-t", limit, "-vf", rate, "-f",
               "image2pipe", "-c:v", "mjpeg", "-q:v", "5", "-", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    if (pid < 0) {
        close(pfd[0]);
        fprintf(stderr, "shoal stream: fork: %s\n", strerror(errno));
        return -1;
    }
    size_t cap = 1 << 20, len = 0;
    uint8_t *buf = sh_alloc(a, cap);
    int rc = buf ? 0 : -1;
    for (;;) {
        if (!rc && len == cap) {
            size_t nc = cap * 2;
            uint8_t *nb = nc <= MAX_VIDEO_BYTES ? sh_realloc(a, buf, nc) : NULL;
            if (!nb) {
                fprintf(stderr, "shoal stream: %s gives more than %zu MiB of JPEGs; using what fits\n", path,
                        MAX_VIDEO_BYTES >> 20);
                break;
            }
            buf = nb;
            cap = nc;
        }
        if (rc)
            break;
        ssize_t k = read(pfd[0], buf + len, cap - len);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        len += (size_t)k;
    }
    close(pfd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    for (size_t i = 0; !rc && i + 1 < len;) {
        if (buf[i] != 0xFF || buf[i + 1] != 0xD8) {
            i++;
            continue;
        }
        size_t j = i + 2;
        while (j + 1 < len && !(buf[j] == 0xFF && buf[j + 1] == 0xD9))
            j++;
        if (j + 1 >= len)
            break;
        size_t n = j + 2 - i;
        uint8_t *one = sh_alloc(a, n);
        if (!one || (memcpy(one, buf + i, n), frames_add(a, f, one, n))) {
            sh_free(a, one);
            rc = -1;
        }
        i = j + 2;
    }
    sh_free(a, buf);
    if (!f->n) {
        fprintf(stderr, "shoal stream: ffmpeg gave no frames for %s (exit status %d; is ffmpeg installed?)\n", path,
                WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -1;
    }
    return rc;
}

/* --- the WebSocket client ---------------------------------------------------------------- */

static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char T[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = T[(v >> 18) & 63];
        out[o++] = T[(v >> 12) & 63];
        out[o++] = i + 1 < n ? T[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? T[v & 63] : '=';
    }
    out[o] = '\0';
}

/* Connects and upgrades; the socket, or -1 with the reason on stderr (unless quiet). */
static int ws_connect(const options *o, const char *client_id, bool quiet)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gr = getaddrinfo(o->host, o->port, &hints, &res);
    if (gr) {
        if (!quiet)
            fprintf(stderr, "shoal stream: %s: %s\n", o->host, gai_strerror(gr));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen)) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (!quiet)
            fprintf(stderr, "shoal stream: cannot connect to %s:%s: %s\n", o->host, o->port, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    uint8_t raw[16];
    char key[25], want[29];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        close(fd);
        return -1;
    }
    base64(raw, sizeof raw, key);
    sh_ws_accept_key(key, want);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "GET /v1/stream?client=%s%s%s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s%s\r\n",
                     client_id, o->mode ? "&mode=" : "", o->mode ? o->mode : "", o->host, o->port, key,
                     o->token ? "Authorization: Bearer " : "", o->token ? o->token : "", o->token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    /* The answer's head, byte by byte so nothing of the stream after it is read here. */
    char head[8192];
    size_t hn = 0;
    while (hn + 1 < sizeof head && (hn < 4 || memcmp(head + hn - 4, "\r\n\r\n", 4))) {
        if (recv(fd, head + hn, 1, 0) != 1)
            break;
        hn++;
    }
    head[hn] = '\0';
    bool ok = !strncmp(head, "HTTP/1.1 101", 12) && strstr(head, want);
    if (!ok) {
        if (!quiet) {
            char *eol = strstr(head, "\r\n");
            fprintf(stderr, "shoal stream: upgrade refused: %.*s\n", eol ? (int)(eol - head) : (int)hn, head);
        }
        close(fd);
        return -1;
    }
    return fd;
}

/* --- one simulated wearer -------------------------------------------------------------------- */

static void record_age(client *c, double age)
{
    if (c->n_ages < c->cap_ages)
        c->ages[c->n_ages++] = age;
}

static void on_message(client *c, const uint8_t *data, size_t len)
{
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(o, "seq");
    double now = mono_ms();
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "result")) {
        const cJSON *age = cJSON_GetObjectItemCaseSensitive(o, "age_ms");
        const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(o, "dropped");
        c->results++;
        if (!c->first_result)
            c->first_result = now;
        c->last_result = now;
        /* Ages count while the wearers send: after that, the last frames wait their turn with
         * nothing newer to replace them, which no wearer that keeps streaming sees. */
        if (cJSON_IsNumber(age) && now <= c->send_end)
            record_age(c, age->valuedouble);
        if (cJSON_IsNumber(dropped))
            c->conn_dropped = (uint64_t)dropped->valuedouble;
        if (c->disconnect_at > 0) {   /* the first result after a broken connection */
            double gap = now - c->disconnect_at;
            if (gap > c->max_gap_ms)
                c->max_gap_ms = gap;
            c->disconnect_at = 0;
        }
        if (!c->o->quiet) {
            const cJSON *res = cJSON_GetObjectItemCaseSensitive(o, "results");
            char *rs = res ? cJSON_PrintUnformatted(res) : NULL;
            const cJSON *srv = cJSON_GetObjectItemCaseSensitive(o, "server_ms");
            printf("%s seq=%.0f age_ms=%.1f server_ms=%.1f dropped=%llu results=%.160s\n", c->id,
                   cJSON_IsNumber(seq) ? seq->valuedouble : -1.0, cJSON_IsNumber(age) ? age->valuedouble : -1.0,
                   cJSON_IsNumber(srv) ? srv->valuedouble : -1.0, (unsigned long long)c->conn_dropped, rs ? rs : "{}");
            cJSON_free(rs);
        }
    } else if (cJSON_IsString(type) && (!strcmp(type->valuestring, "bye") || !strcmp(type->valuestring, "dropped"))) {
        const cJSON *dropped = cJSON_GetObjectItemCaseSensitive(o, "dropped");
        if (cJSON_IsNumber(dropped))
            c->conn_dropped = (uint64_t)dropped->valuedouble;
    } else if (cJSON_IsString(type) && !strcmp(type->valuestring, "error")) {
        c->errors++;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "message");
        if (!c->o->quiet || c->errors <= 3)
            fprintf(stderr, "%s error seq=%.0f: %s\n", c->id, cJSON_IsNumber(seq) ? seq->valuedouble : -1.0,
                    cJSON_IsString(m) ? m->valuestring : "?");
    }
    if (cJSON_IsNumber(seq) && (unsigned long long)seq->valuedouble > atomic_load(&c->last_answered))
        atomic_store(&c->last_answered, (unsigned long long)seq->valuedouble);
    cJSON_Delete(o);
}

static void *reader_main(void *arg)
{
    client *c = arg;
    sh_ws_reader rd = {.alloc = c->alloc, .fd = c->fd, .max_message = MAX_RESULT_BYTES, .expect_masked = false};
    while (atomic_load(&c->alive)) {
        struct pollfd pf = {.fd = c->fd, .events = POLLIN};
        int pr = poll(&pf, 1, 100);
        if (pr == 0 || (pr < 0 && errno == EINTR))
            continue;
        sh_ws_message m;
        if (pr < 0 || sh_ws_read(&rd, &m))
            break;
        if (m.opcode == SH_WS_TEXT) {
            on_message(c, m.data, m.len);
        } else if (m.opcode == SH_WS_PING) {
            pthread_mutex_lock(&c->send_lock);
            sh_ws_write(c->fd, SH_WS_PONG, m.data, m.len, true);
            pthread_mutex_unlock(&c->send_lock);
        } else if (m.opcode == SH_WS_CLOSE) {
            break;
        }
    }
    sh_ws_reader_free(&rd);
    atomic_store(&c->alive, false);
    return NULL;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void *client_main(void *arg)
{
    client *c = arg;
    const options *o = c->o;
    double start = mono_ms(), end = start + o->duration_s * 1000.0, period = 1000.0 / o->fps;
    c->send_end = end;
    uint8_t *msg = sh_alloc(c->alloc, SH_STREAM_HEADER_BYTES + c->fr->largest);
    if (!msg)
        return NULL;
    uint64_t seq = 0;
    int next_frame = c->index % c->fr->n;
    bool first = true;
    while (mono_ms() < end) {
        c->fd = ws_connect(o, c->id, !first);
        if (c->fd < 0) {
            if (first || !o->reconnect) {
                c->failed_connect = true;
                break;
            }
            sleep_ms(50);
            continue;
        }
        first = false;
        if (c->disconnect_at > 0) {   /* streaming again: the stream is open on some server */
            double reopen = mono_ms() - c->disconnect_at;
            if (reopen > c->max_reopen_ms)
                c->max_reopen_ms = reopen;
        }
        c->conn_dropped = 0;
        atomic_store(&c->alive, true);
        pthread_t rd;
        if (pthread_create(&rd, NULL, reader_main, c)) {
            close(c->fd);
            break;
        }
        double next = mono_ms();
        while (atomic_load(&c->alive) && mono_ms() < end) {
            size_t n = c->fr->len[next_frame];
            memcpy(msg, "SHF1", 4);
            put_be64(msg + 4, ++seq);
            struct timespec wall;
            clock_gettime(CLOCK_REALTIME, &wall);
            put_be64(msg + 12, (uint64_t)wall.tv_sec * 1000000u + (uint64_t)(wall.tv_nsec / 1000));
            msg[20] = 0;
            memcpy(msg + SH_STREAM_HEADER_BYTES, c->fr->data[next_frame], n);
            pthread_mutex_lock(&c->send_lock);
            int wr = sh_ws_write(c->fd, SH_WS_BINARY, msg, SH_STREAM_HEADER_BYTES + n, true);
            pthread_mutex_unlock(&c->send_lock);
            if (wr)
                break;
            c->sent++;
            next_frame = (next_frame + 1) % c->fr->n;
            next += period;
            double now = mono_ms();
            if (next < now - period)   /* fell behind (a stalled send): keep the rate, not catch up */
                next = now;
            sleep_ms(next - now);
        }
        bool broken = mono_ms() < end;
        if (!broken) {
            /* The run is over: let the frames in flight be answered, then close; the server
             * answers the frame it is running, sends its final counts and its close frame,
             * which ends the reader. */
            double until = mono_ms() + END_GRACE_MS;
            while (atomic_load(&c->alive) && atomic_load(&c->last_answered) < seq && mono_ms() < until)
                sleep_ms(5);
            pthread_mutex_lock(&c->send_lock);
            sh_ws_write_close(c->fd, SH_WS_CLOSE_NORMAL, "done", true);
            pthread_mutex_unlock(&c->send_lock);
            until = mono_ms() + CLOSE_WAIT_MS;
            while (atomic_load(&c->alive) && mono_ms() < until)
                sleep_ms(5);
        }
        atomic_store(&c->alive, false);
        shutdown(c->fd, SHUT_RDWR);
        pthread_join(rd, NULL);
        close(c->fd);
        c->dropped += c->conn_dropped;
        if (!broken)
            break;
        if (!o->reconnect) {
            fprintf(stderr, "%s: connection lost\n", c->id);
            break;
        }
        c->reconnects++;
        if (c->disconnect_at <= 0)
            c->disconnect_at = mono_ms();
    }
    sh_free(c->alloc, msg);
    return NULL;
}

/* --- summary ------------------------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: shoal stream --server HOST:PORT (--frames DIR | --video FILE) [--fps F] [--duration S]\n"
            "                    [--clients N] [--client-id PREFIX] [--mode NAME] [--token-file FILE]\n"
            "                    [--reconnect] [--quiet]\n"
            "\n"
            "Streams JPEG frames to GET /v1/stream at F frames per second (default 15) for S seconds\n"
            "(default 10), as N wearers (default 1, at most %d; ids PREFIX-1..N, default 'wearer').\n"
            "--frames: the folder's *.jpg in name order, looped; --video: any file ffmpeg reads (MJPEG,\n"
            "MP4...), cut into JPEGs at F fps (up to 60 s). Prints one line per result (unless --quiet)\n"
            "and a summary: frame age p50/p99 (capture to result, as the server measured it, while\n"
            "the wearers send), drops,\n"
            "frames lost in broken connections, per-client results/s min/max; its last line is JSON.\n"
            "--reconnect reopens a broken stream until the run ends (the gap is reported).\n",
            MAX_CLIENTS);
}

static void read_token_file(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
}

int cmd_stream(int argc, char **argv)
{
    options o = {.fps = 15, .duration_s = 10, .clients = 1, .client_prefix = "wearer"};
    const char *server = NULL, *dir = NULL, *video = NULL, *token_file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--reconnect") || !strcmp(a, "--quiet")) {
            *(a[2] == 'r' ? &o.reconnect : &o.quiet) = true;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "shoal stream: %s needs a value\n", a);
            return 2;
        }
        int bad = 0;
        if (!strcmp(a, "--server"))
            server = v;
        else if (!strcmp(a, "--frames"))
            dir = v;
        else if (!strcmp(a, "--video"))
            video = v;
        else if (!strcmp(a, "--fps"))
            bad = cli_double(CMD, a, v, 0.1, 1000, &o.fps);
        else if (!strcmp(a, "--duration"))
            bad = cli_double(CMD, a, v, 0.1, 86400, &o.duration_s);
        else if (!strcmp(a, "--clients"))
            bad = cli_int32(CMD, a, v, 1, MAX_CLIENTS, &o.clients);
        else if (!strcmp(a, "--client-id"))
            o.client_prefix = v;
        else if (!strcmp(a, "--mode"))
            o.mode = v;
        else if (!strcmp(a, "--token-file"))
            token_file = v;
        else {
            fprintf(stderr, "shoal stream: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (bad)
            return 2;
        i++;
    }
    if (!server || (!dir == !video)) {
        fprintf(stderr, "shoal stream: --server and one of --frames or --video are required\n");
        usage(stderr);
        return 2;
    }
    /* HOST:PORT or [IPV6]:PORT */
    const char *colon = strrchr(server, ':');
    bool bracket = server[0] == '[';
    const char *hs = server + bracket, *he = bracket ? strchr(server, ']') : colon;
    if (!colon || !he || he < hs || (size_t)(he - hs) >= sizeof o.host || strlen(colon + 1) >= sizeof o.port ||
        (bracket && he + 1 != colon)) {
        fprintf(stderr, "shoal stream: --server expects HOST:PORT or [IPV6]:PORT, got '%s'\n", server);
        return 2;
    }
    int port;
    if (cli_int32(CMD, "--server port", colon + 1, 1, 65535, &port))
        return 2;
    memcpy(o.host, hs, (size_t)(he - hs));
    o.host[he - hs] = '\0';
    snprintf(o.port, sizeof o.port, "%d", port);
    size_t pl = strlen(o.client_prefix);
    for (size_t i = 0; i <= pl; i++)
        if (pl < 1 || pl > 48 || (i < pl && !(strchr("._:-", o.client_prefix[i]) || (o.client_prefix[i] >= '0' && o.client_prefix[i] <= '9') ||
                         ((o.client_prefix[i] | 0x20) >= 'a' && (o.client_prefix[i] | 0x20) <= 'z')))) {
            fprintf(stderr, "shoal stream: --client-id must be 1..48 characters of [A-Za-z0-9._:-]\n");
            return 2;
        }
    char token[300];
    if (token_file) {
        read_token_file(token_file, token, sizeof token);
        if (!token[0]) {
            fprintf(stderr, "shoal stream: cannot read a token from %s\n", token_file);
            return 2;
        }
        o.token = token;
    }
    signal(SIGPIPE, SIG_IGN);
    sh_allocator *a = sh_allocator_create();
    frames fr = {0};
    client *cl = a ? sh_calloc(a, (size_t)o.clients, sizeof *cl) : NULL;
    int rc = cl ? 0 : 1;
    if (!rc)
        rc = dir ? load_folder(a, dir, &fr) : load_video(a, video, o.fps, o.duration_s, &fr);
    if (rc) {
        frames_free(a, &fr);
        sh_free(a, cl);
        sh_allocator_destroy(a);
        return 1;
    }
    /* Ages kept for the percentiles: every result a client can get in the run, and a margin. */
    size_t cap_ages = (size_t)(o.fps * (o.duration_s + 5)) + 64;
    int started = 0;
    double t0 = mono_ms();
    for (int i = 0; i < o.clients; i++) {
        client *c = &cl[i];
        c->alloc = a;
        c->o = &o;
        c->fr = &fr;
        c->index = i;
        snprintf(c->id, sizeof c->id, o.clients > 1 ? "%s-%d" : "%s", o.client_prefix, i + 1);
        pthread_mutex_init(&c->send_lock, NULL);
        c->ages = sh_calloc(a, cap_ages, sizeof *c->ages);
        c->cap_ages = c->ages ? cap_ages : 0;
        if (pthread_create(&c->thread, NULL, client_main, c))
            break;
        started++;
    }
    for (int i = 0; i < started; i++)
        pthread_join(cl[i].thread, NULL);
    double wall_s = (mono_ms() - t0) / 1000.0;

    uint64_t sent = 0, results = 0, errors = 0, dropped = 0, reconnects = 0, lost = 0, lost_max = 0;
    double tput_min = 1e30, tput_max = 0, gap_max = 0, reopen_max = 0;
    size_t n_ages = 0;
    int failed = 0;
    for (int i = 0; i < started; i++) {
        client *c = &cl[i];
        sent += c->sent;
        results += c->results;
        errors += c->errors;
        dropped += c->dropped;
        reconnects += c->reconnects;
        uint64_t answered = c->results + c->errors + c->dropped;
        uint64_t l = c->sent > answered ? c->sent - answered : 0;
        lost += l;
        if (l > lost_max)
            lost_max = l;
        double tput = (double)c->results / o.duration_s;
        tput_min = tput < tput_min ? tput : tput_min;
        tput_max = tput > tput_max ? tput : tput_max;
        gap_max = c->max_gap_ms > gap_max ? c->max_gap_ms : gap_max;
        reopen_max = c->max_reopen_ms > reopen_max ? c->max_reopen_ms : reopen_max;
        n_ages += c->n_ages;
        failed += c->failed_connect;
    }
    double *all = n_ages ? sh_alloc(a, n_ages * sizeof *all) : NULL;
    size_t k = 0;
    for (int i = 0; all && i < started; i++) {
        memcpy(all + k, cl[i].ages, cl[i].n_ages * sizeof *all);
        k += cl[i].n_ages;
    }
    double p50 = 0, p99 = 0, pmax = 0;
    if (all && k) {
        qsort(all, k, sizeof *all, cmp_double);
        p50 = all[(k - 1) / 2];
        p99 = all[(size_t)((double)(k - 1) * 0.99)];
        pmax = all[k - 1];
    }
    if (!started)
        tput_min = 0;
    double drop_rate = sent ? (double)dropped / (double)sent : 0;
    printf("stream: %d clients at %.1f fps for %.1f s (%.1f s wall): sent %llu, results %llu, dropped %llu "
           "(%.1f%%), errors %llu, lost %llu (at most %llu on one client), connect failures %d\n",
           started, o.fps, o.duration_s, wall_s, (unsigned long long)sent, (unsigned long long)results,
           (unsigned long long)dropped, 100 * drop_rate, (unsigned long long)errors, (unsigned long long)lost,
           (unsigned long long)lost_max, failed);
    printf("frame age ms (capture to result, server clock, while sending): p50 %.1f, p99 %.1f, max %.1f over %zu "
           "results\n",
           p50, p99, pmax, k);
    printf("results per second per client: min %.2f, max %.2f; reconnects %llu, longest from a broken stream to "
           "streaming again %.0f ms, to the next result %.0f ms\n",
           tput_min, tput_max, (unsigned long long)reconnects, reopen_max, gap_max);
    printf("{\"clients\":%d,\"fps\":%g,\"duration_s\":%g,\"sent\":%llu,\"results\":%llu,\"dropped\":%llu,"
           "\"drop_rate\":%.4f,\"errors\":%llu,\"lost\":%llu,\"lost_max_per_client\":%llu,\"connect_failures\":%d,"
           "\"age_ms_p50\":%.2f,\"age_ms_p99\":%.2f,\"age_ms_max\":%.2f,\"client_fps_min\":%.3f,"
           "\"client_fps_max\":%.3f,\"reconnects\":%llu,\"reopen_ms_max\":%.1f,\"reconnect_gap_ms_max\":%.1f}\n",
           started, o.fps, o.duration_s, (unsigned long long)sent, (unsigned long long)results,
           (unsigned long long)dropped, drop_rate, (unsigned long long)errors, (unsigned long long)lost,
           (unsigned long long)lost_max, failed, p50, p99, pmax, tput_min, tput_max, (unsigned long long)reconnects,
           reopen_max, gap_max);
    fflush(stdout);
    sh_free(a, all);
    for (int i = 0; i < o.clients; i++) {
        sh_free(a, cl[i].ages);
        if (i < started)
            pthread_mutex_destroy(&cl[i].send_lock);
    }
    sh_free(a, cl);
    frames_free(a, &fr);
    sh_allocator_destroy(a);
    return failed || started < o.clients ? 1 : 0;
}
