#include "server/stream.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "server/ws.h"
#include "vision/image.h"

/* Results kept for the age percentiles on /metrics: enough for a stable p99, small enough to
 * sort on every scrape. */
#define AGE_WINDOW 1024
/* How often a stream's reader wakes to check heartbeats and whether the hub is closing. */
#define READER_TICK_MS 200
/* Same as the HTTP path: the decoder's peak bytes per pixel, charged before decoding. */
#define DECODE_BYTES_PER_PIXEL 16
/* A full job queue (HTTP requests beside the streams) is retried this often within the
 * frame's timeout rather than failing the frame at once. */
#define QUEUE_RETRY_MS 5
/* When the server closes a stream, frames already on their way are read (and counted as
 * dropped) for at least this long. */
#define LATE_READ_MS 50

typedef struct stream {
    int fd;
    char id[65];
    pthread_mutex_t send_lock;      /* one writer at a time: the reader (pongs) or a dispatcher */
    /* under the hub's lock */
    uint8_t *waiting, *work;        /* the waiting frame's bytes; the one being processed */
    size_t waiting_len, waiting_cap, work_len, work_cap;
    uint64_t waiting_seq, work_seq;
    int64_t waiting_capture_us, work_capture_us;
    double waiting_arrival_ms, work_arrival_ms;
    bool has_waiting, busy, closing;
    char mode[128];
    uint64_t received, processed, dropped;
    /* the wearer's video state (hand tracking), used by one frame at a time: created with the
     * first frame, handed to a job that outlives its wait */
    shoal_video_t video;
} stream;

struct sh_stream_hub {
    sh_allocator *alloc;
    sh_stream_params p;
    sh_job_queue *jobs;
    sh_stream_runtime rt;
    shoal_log_fn log;
    void *log_user;
    pthread_mutex_t lock;
    pthread_cond_t work;            /* a frame is waiting, or the hub is closing */
    pthread_cond_t idle;            /* a stream's frame is done (its reader may be waiting) */
    stream **slots;                 /* max_streams entries; NULL = free */
    int cursor;                     /* the slot after the one served last */
    int reserved, open;
    bool closing, stopping;
    uint64_t opened, received, processed, dropped, failed;
    double ages[AGE_WINDOW];
    uint64_t n_ages;
    pthread_t *lanes;
    int n_lanes;
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void hlog(sh_stream_hub *h, shoal_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void hlog(sh_stream_hub *h, shoal_log_level level, const char *fmt, ...)
{
    if (!h->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    h->log(h->log_user, level, msg);
}

/* --- sending ----------------------------------------------------------------------------- */

static void send_text(stream *st, const char *text, size_t n)
{
    pthread_mutex_lock(&st->send_lock);
    if (sh_ws_write(st->fd, SH_WS_TEXT, text, n, false) != 0)
        shutdown(st->fd, SHUT_RDWR);   /* a peer that cannot take answers is gone: its reader ends */
    pthread_mutex_unlock(&st->send_lock);
}

static void send_error(stream *st, uint64_t seq, bool has_seq, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void send_error(stream *st, uint64_t seq, bool has_seq, int code, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "error");
    if (has_seq)
        cJSON_AddNumberToObject(o, "seq", (double)seq);
    cJSON_AddNumberToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", msg);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text)
        send_text(st, text, strlen(text));
    cJSON_free(text);
}

/* --- dispatching --------------------------------------------------------------------------- */

/* The next stream, after the one served last, with a frame waiting and none in flight. */
static stream *pick(sh_stream_hub *h)
{
    int n = h->p.max_streams;
    for (int k = 0; k < n; k++) {
        int i = (h->cursor + k) % n;
        stream *st = h->slots[i];
        if (st && st->has_waiting && !st->busy && !st->closing) {
            h->cursor = (i + 1) % n;
            return st;
        }
    }
    return NULL;
}

static bool is_mode(shoal_runtime_t rt, const char *name)
{
    for (int i = 0; i < shoal_runtime_mode_count(rt); i++)
        if (!strcmp(shoal_runtime_mode_name(rt, i), name))
            return true;
    return false;
}

/* Sends the runtime's results wrapped with the frame's identity and timings. */
static void send_result(sh_stream_hub *h, stream *st, const sh_job *job, double age_ms, bool age_known,
                        double server_ms, uint64_t dropped)
{
    char head[512];
    char age[32];
    if (age_known)
        snprintf(age, sizeof age, "%.3f", age_ms);
    else
        snprintf(age, sizeof age, "null");
    int hn = snprintf(head, sizeof head,
                      "{\"type\":\"result\",\"seq\":%llu,\"mode\":\"%s\",\"age_ms\":%s,\"server_ms\":%.3f,"
                      "\"queue_ms\":%.3f,\"run_ms\":%.3f,\"dropped\":%llu,\"results\":",
                      (unsigned long long)st->work_seq, job->target, age, server_ms, job->queue_ms, job->run_ms,
                      (unsigned long long)dropped);
    size_t jn = strlen(job->json), total;
    if (hn < 0 || (size_t)hn >= sizeof head || !sh_add_size((size_t)hn, jn + 2, &total))
        return;
    char *text = sh_alloc(h->alloc, total);
    if (!text) {
        send_error(st, st->work_seq, true, 503, "out of memory formatting the result");
        return;
    }
    memcpy(text, head, (size_t)hn);
    memcpy(text + hn, job->json, jn);
    text[hn + jn] = '}';
    send_text(st, text, (size_t)hn + jn + 1);
    sh_free(h->alloc, text);
}

/* Decodes and runs the stream's work frame; true when a result was sent. */
static bool process(sh_stream_hub *h, stream *st, const char *mode)
{
    const uint8_t *img = st->work + SH_STREAM_HEADER_BYTES + st->work[20];
    size_t len = st->work_len - SH_STREAM_HEADER_BYTES - st->work[20];
    uint64_t seq = st->work_seq;
    sh_err perr = {0};
    int w = 0, hgt = 0;
    int rc = sh_image_probe(img, len, &w, &hgt, &perr);
    if (rc != SHOAL_OK) {
        send_error(st, seq, true, 400, "bad image: %s", perr.msg[0] ? perr.msg : shoal_status_str(rc));
        return false;
    }
    int64_t pixels = (int64_t)w * hgt;
    if (pixels > h->p.max_pixels) {
        send_error(st, seq, true, 413, "image of %dx%d exceeds the limit of %lld pixels", w, hgt,
                   (long long)h->p.max_pixels);
        return false;
    }
    size_t charge = (size_t)pixels * DECODE_BYTES_PER_PIXEL;
    if (!sh_job_queue_charge(h->jobs, charge)) {
        send_error(st, seq, true, 429, "decoded images in flight are at the host limit");
        return false;
    }
    sh_job *job = sh_job_new(h->jobs);
    if (!job) {
        sh_job_queue_uncharge(h->jobs, charge);
        send_error(st, seq, true, 503, "out of memory");
        return false;
    }
    job->frame_charge = charge;
    char err[256] = "";
    rc = shoal_image_decode(img, len, &job->frame, err, sizeof err);
    if (rc != SHOAL_OK) {
        sh_job_release(h->jobs, job);
        send_error(st, seq, true, 400, "bad image: %s", err[0] ? err : shoal_status_str(rc));
        return false;
    }
    sh_job_queue_uncharge(h->jobs, charge - (size_t)pixels * 3);   /* the decoder's buffers are gone */
    job->frame_charge = (size_t)pixels * 3;
    const char *default_mode = NULL;
    shoal_runtime_t rt = NULL;
    void *token = h->rt.acquire(h->rt.user, &rt, &default_mode);
    job->rt = rt;
    job->done_with_rt = h->rt.release;
    job->done_with_rt_user = token;
    const char *target = mode[0] ? mode : default_mode;
    if (!target || !is_mode(rt, target)) {
        sh_job_release(h->jobs, job);
        send_error(st, seq, true, 400, "no mode: send {\"mode\":\"NAME\"} or a mode in the frame header (the "
                   "config names no default mode, or a reload removed this one)");
        return false;
    }
    snprintf(job->target, sizeof job->target, "%s", target);
    if (!st->video)
        st->video = shoal_video_create();   /* NULL (out of memory): frames run on their own */
    job->video = st->video;
    double deadline = mono_ms() + h->p.frame_timeout_ms;
    while ((rc = sh_job_submit(h->jobs, job)) == SHOAL_ERR_BUSY && mono_ms() < deadline)
        nanosleep(&(struct timespec){0, QUEUE_RETRY_MS * 1000000L}, NULL);
    if (rc != SHOAL_OK) {
        sh_job_release(h->jobs, job);
        send_error(st, seq, true, rc == SHOAL_ERR_BUSY ? 429 : 503,
                   rc == SHOAL_ERR_BUSY ? "inference queue full" : "server is shutting down");
        return false;
    }
    double left = deadline - mono_ms();
    if (!sh_job_wait(h->jobs, job, left > 1 ? (int)left : 1)) {
        if (!sh_job_cancel(h->jobs, job, false)) {   /* still running: the video goes with it */
            job->owns_video = true;
            st->video = NULL;
        }
        sh_job_release(h->jobs, job);
        send_error(st, seq, true, 504, "frame not done within %d ms", h->p.frame_timeout_ms);
        return false;
    }
    bool ok = job->status == SHOAL_OK;
    if (ok) {
        double now = mono_ms();
        int64_t now_us = wall_us();
        bool age_known = st->work_capture_us > 0;
        double server_ms = now - st->work_arrival_ms;
        double age = age_known ? (double)(now_us - st->work_capture_us) / 1000.0 : server_ms;
        pthread_mutex_lock(&h->lock);
        h->ages[h->n_ages++ % AGE_WINDOW] = age;
        uint64_t dropped = st->dropped;
        pthread_mutex_unlock(&h->lock);
        send_result(h, st, job, age, age_known, server_ms, dropped);
    } else {
        send_error(st, seq, true, job->status == SHOAL_ERR_BUDGET ? 503 : 500, "%s",
                   job->error[0] ? job->error : shoal_status_str(job->status));
    }
    sh_job_release(h->jobs, job);
    return ok;
}

static void *lane_main(void *arg)
{
    sh_stream_hub *h = arg;
    pthread_mutex_lock(&h->lock);
    for (;;) {
        stream *st = NULL;
        while (!h->stopping && !(st = pick(h)))
            pthread_cond_wait(&h->work, &h->lock);
        if (!st)
            break;
        /* Take the waiting frame: its buffer becomes the work buffer, so neither is copied. */
        uint8_t *b = st->work;
        size_t bc = st->work_cap;
        st->work = st->waiting;
        st->work_cap = st->waiting_cap;
        st->work_len = st->waiting_len;
        st->work_seq = st->waiting_seq;
        st->work_capture_us = st->waiting_capture_us;
        st->work_arrival_ms = st->waiting_arrival_ms;
        st->waiting = b;
        st->waiting_cap = bc;
        st->waiting_len = 0;
        st->has_waiting = false;
        st->busy = true;
        char mode[128];
        memcpy(mode, st->mode, sizeof mode);
        pthread_mutex_unlock(&h->lock);
        bool ok = process(h, st, mode);
        pthread_mutex_lock(&h->lock);
        if (ok) {
            st->processed++;
            h->processed++;
        } else {
            h->failed++;
        }
        st->busy = false;
        pthread_cond_broadcast(&h->idle);
        if (st->has_waiting)
            pthread_cond_signal(&h->work);
    }
    pthread_mutex_unlock(&h->lock);
    return NULL;
}

/* --- reading ------------------------------------------------------------------------------- */

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* A mode name from the client is accepted only when it is one of the config's. */
static bool known_mode(sh_stream_hub *h, const char *name)
{
    shoal_runtime_t rt = NULL;
    const char *def = NULL;
    void *token = h->rt.acquire(h->rt.user, &rt, &def);
    bool ok = is_mode(rt, name);
    h->rt.release(token);
    return ok;
}

static void set_mode(sh_stream_hub *h, stream *st, const char *name)
{
    size_t n = strlen(name);   /* callers checked it fits */
    pthread_mutex_lock(&h->lock);
    memcpy(st->mode, name, n < sizeof st->mode ? n + 1 : 0);
    pthread_mutex_unlock(&h->lock);
}

static void on_frame(sh_stream_hub *h, stream *st, const uint8_t *data, size_t len)
{
    if (len < SH_STREAM_HEADER_BYTES || memcmp(data, "SHF1", 4) ||
        len < (size_t)SH_STREAM_HEADER_BYTES + data[20]) {
        send_error(st, 0, false, 400, "a frame starts with the 21-byte header \"SHF1\", seq, capture time, mode "
                   "length (see docs/deploy.md)");
        return;
    }
    uint64_t seq = be64(data + 4);
    int64_t capture = (int64_t)be64(data + 12);
    size_t ml = data[20];
    if (ml) {
        char name[256];
        memcpy(name, data + SH_STREAM_HEADER_BYTES, ml);
        name[ml] = '\0';
        if (ml >= sizeof st->mode || !known_mode(h, name)) {
            send_error(st, seq, true, 404, "unknown mode in the frame header");
            return;
        }
        set_mode(h, st, name);
    }
    if (len == SH_STREAM_HEADER_BYTES + ml) {
        send_error(st, seq, true, 400, "frame has a header but no image");
        return;
    }
    pthread_mutex_lock(&h->lock);
    if (len > st->waiting_cap) {
        uint8_t *nb = sh_realloc(h->alloc, st->waiting, len);
        if (!nb) {
            pthread_mutex_unlock(&h->lock);
            send_error(st, seq, true, 503, "out of memory");
            return;
        }
        st->waiting = nb;
        st->waiting_cap = len;
    }
    st->received++;
    h->received++;
    bool replaced = st->has_waiting;
    uint64_t replaced_seq = st->waiting_seq, dropped = 0;
    if (replaced) {   /* latest frame wins: the one waiting was never started */
        dropped = ++st->dropped;
        h->dropped++;
    }
    memcpy(st->waiting, data, len);
    st->waiting_len = len;
    st->waiting_seq = seq;
    st->waiting_capture_us = capture;
    st->waiting_arrival_ms = mono_ms();
    st->has_waiting = true;
    pthread_cond_signal(&h->work);
    pthread_mutex_unlock(&h->lock);
    if (replaced) {   /* said at once, so a client knows the fate of every frame it sent */
        char msg[120];
        int n = snprintf(msg, sizeof msg, "{\"type\":\"dropped\",\"seq\":%llu,\"dropped\":%llu}",
                         (unsigned long long)replaced_seq, (unsigned long long)dropped);
        send_text(st, msg, (size_t)n);
    }
}

/* A frame that arrived after the server decided to close the stream. */
static void on_late_frame(sh_stream_hub *h, stream *st)
{
    pthread_mutex_lock(&h->lock);
    st->received++;
    st->dropped++;
    h->received++;
    h->dropped++;
    pthread_mutex_unlock(&h->lock);
}

static void on_text(sh_stream_hub *h, stream *st, const uint8_t *data, size_t len)
{
    cJSON *o = cJSON_ParseWithLength((const char *)data, len);
    cJSON *m = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "mode") : NULL;
    if (!cJSON_IsString(m) || cJSON_GetArraySize(o) != 1) {
        send_error(st, 0, false, 400, "text messages are {\"mode\":\"NAME\"}");
    } else if (strlen(m->valuestring) >= sizeof st->mode || !known_mode(h, m->valuestring)) {
        send_error(st, 0, false, 404, "unknown mode '%.64s'", m->valuestring);
    } else {
        set_mode(h, st, m->valuestring);
        char reply[200];
        int n = snprintf(reply, sizeof reply, "{\"type\":\"mode\",\"mode\":\"%s\"}", m->valuestring);
        send_text(st, reply, (size_t)n);
    }
    cJSON_Delete(o);
}


void sh_stream_serve(sh_stream_hub *h, int fd, const void *pre, size_t pre_len, const char *client_id,
                     const char *mode)
{
    stream *st = sh_calloc(h->alloc, 1, sizeof *st);
    pthread_mutex_lock(&h->lock);
    int slot = -1;
    for (int i = 0; st && i < h->p.max_streams && slot < 0; i++)
        if (!h->slots[i])
            slot = i;
    if (slot >= 0) {
        h->slots[slot] = st;
        h->open++;
        h->opened++;
    }
    h->reserved--;
    pthread_mutex_unlock(&h->lock);
    if (slot < 0) {   /* out of memory (a reserved slot is always free) */
        sh_free(h->alloc, st);
        sh_ws_write_close(fd, SH_WS_CLOSE_GOING_AWAY, "out of memory", false);
        return;
    }
    st->fd = fd;
    snprintf(st->id, sizeof st->id, "%s", client_id ? client_id : "-");
    if (mode)
        snprintf(st->mode, sizeof st->mode, "%s", mode);
    pthread_mutex_init(&st->send_lock, NULL);
    /* A message that stops arriving halfway cannot hold the reader past the idle timeout;
     * a peer that stops reading cannot hold a dispatcher past it either. */
    struct timeval tv = {.tv_sec = h->p.idle_timeout_s};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    hlog(h, SHOAL_LOG_INFO, "stream opened: client=%s mode=%s", st->id, st->mode[0] ? st->mode : "(default)");

    sh_ws_reader rd = {.alloc = h->alloc, .fd = fd, .max_message = h->p.max_frame_bytes, .expect_masked = true,
                       .pre = pre, .pre_len = pre_len};
    double last_rx = mono_ms(), last_ping = 0;
    const char *why = "closed by client";
    int close_code = SH_WS_CLOSE_NORMAL;   /* 0: the connection is gone, nothing more to send */
    const char *close_reason = "";
    for (;;) {
        pthread_mutex_lock(&h->lock);
        bool closing = h->closing;
        pthread_mutex_unlock(&h->lock);
        if (closing) {
            close_code = SH_WS_CLOSE_GOING_AWAY;
            close_reason = why = "server going away";
            break;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = rd.pre_len ? 1 : poll(&pf, 1, READER_TICK_MS);
        double now = mono_ms();
        if (pr == 0) {
            /* A stream whose frame is waiting or running is not idle: its client waits for us. */
            pthread_mutex_lock(&h->lock);
            bool pending = st->busy || st->has_waiting;
            pthread_mutex_unlock(&h->lock);
            if (pending)
                last_rx = now;
            if (now - last_rx > 1000.0 * h->p.idle_timeout_s) {
                close_code = SH_WS_CLOSE_POLICY;
                close_reason = why = "idle timeout";
                break;
            }
            if (now - last_rx > 1000.0 * h->p.heartbeat_s && now - last_ping > 1000.0 * h->p.heartbeat_s) {
                pthread_mutex_lock(&st->send_lock);
                sh_ws_write(fd, SH_WS_PING, "hb", 2, false);
                pthread_mutex_unlock(&st->send_lock);
                last_ping = now;
            }
            continue;
        }
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            why = "poll failed";
            close_code = 0;
            break;
        }
        sh_ws_message msg;
        int code = sh_ws_read(&rd, &msg);
        if (code) {
            close_code = code == SH_WS_CLOSE_GOING_AWAY ? 0 : code;
            close_reason = why = code == SH_WS_CLOSE_TOO_BIG ? "message too big"
                                 : code == SH_WS_CLOSE_PROTOCOL ? "protocol error" : "connection lost";
            break;
        }
        last_rx = mono_ms();
        if (msg.opcode == SH_WS_BINARY) {
            on_frame(h, st, msg.data, msg.len);
        } else if (msg.opcode == SH_WS_TEXT) {
            on_text(h, st, msg.data, msg.len);
        } else if (msg.opcode == SH_WS_PING) {
            pthread_mutex_lock(&st->send_lock);
            sh_ws_write(fd, SH_WS_PONG, msg.data, msg.len, false);
            pthread_mutex_unlock(&st->send_lock);
        } else if (msg.opcode == SH_WS_CLOSE) {
            break;
        }
    }
    /* The socket closes when this returns: wait for a frame in flight to be answered (it is
     * bounded by the frame timeout), then leave the rotation. No dispatcher writes after this,
     * so the last messages below need no lock. When the server ends a healthy stream (going
     * away, idle), frames the client sends meanwhile are still read and counted as dropped,
     * so the final counts cover every frame sent before the close frame. */
    pthread_mutex_lock(&h->lock);
    st->closing = true;
    if (st->has_waiting) {   /* never to be started */
        st->has_waiting = false;
        st->dropped++;
        h->dropped++;
    }
    bool keep_reading = close_code == SH_WS_CLOSE_GOING_AWAY || close_code == SH_WS_CLOSE_POLICY;
    double read_until = mono_ms() + LATE_READ_MS;
    while (st->busy || (keep_reading && mono_ms() < read_until)) {
        if (!keep_reading) {
            pthread_cond_wait(&h->idle, &h->lock);
            continue;
        }
        pthread_mutex_unlock(&h->lock);
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        sh_ws_message msg;
        if (rd.pre_len || poll(&pf, 1, 20) > 0) {
            if (sh_ws_read(&rd, &msg) != 0)
                keep_reading = false;
            else if (msg.opcode == SH_WS_BINARY)
                on_late_frame(h, st);
        }
        pthread_mutex_lock(&h->lock);
    }
    sh_ws_reader_free(&rd);
    h->slots[slot] = NULL;
    h->open--;
    uint64_t rx = st->received, done = st->processed, dropped = st->dropped;
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->lock);
    /* The last word before the close frame: the stream's final counts, so a client can tell
     * the frames dropped here from those lost on the way. */
    if (close_code) {
        char bye[200];
        int n = snprintf(bye, sizeof bye, "{\"type\":\"bye\",\"received\":%llu,\"processed\":%llu,\"dropped\":%llu}",
                         (unsigned long long)rx, (unsigned long long)done, (unsigned long long)dropped);
        sh_ws_write(fd, SH_WS_TEXT, bye, (size_t)n, false);
        sh_ws_write_close(fd, close_code, close_reason, false);
    }
    hlog(h, SHOAL_LOG_INFO, "stream closed: client=%s (%s) frames received=%llu processed=%llu dropped=%llu", st->id,
         why, (unsigned long long)rx, (unsigned long long)done, (unsigned long long)dropped);
    pthread_mutex_destroy(&st->send_lock);
    shoal_video_destroy(st->video);
    sh_free(h->alloc, st->waiting);
    sh_free(h->alloc, st->work);
    sh_free(h->alloc, st);
}

/* --- the hub ------------------------------------------------------------------------------- */

sh_stream_hub *sh_stream_hub_create(sh_allocator *a, const sh_stream_params *p, sh_job_queue *jobs,
                                    const sh_stream_runtime *rt, shoal_log_fn log, void *log_user)
{
    if (p->max_streams < 1 || p->lanes < 1)
        return NULL;
    sh_stream_hub *h = sh_calloc(a, 1, sizeof *h);
    if (!h)
        return NULL;
    h->alloc = a;
    h->p = *p;
    h->jobs = jobs;
    h->rt = *rt;
    h->log = log;
    h->log_user = log_user;
    h->slots = sh_calloc(a, (size_t)p->max_streams, sizeof *h->slots);
    h->lanes = sh_calloc(a, (size_t)p->lanes, sizeof *h->lanes);
    if (!h->slots || !h->lanes) {
        sh_free(a, h->slots);
        sh_free(a, h->lanes);
        sh_free(a, h);
        return NULL;
    }
    pthread_mutex_init(&h->lock, NULL);
    pthread_cond_init(&h->work, NULL);
    pthread_cond_init(&h->idle, NULL);
    for (int i = 0; i < p->lanes; i++) {
        if (pthread_create(&h->lanes[i], NULL, lane_main, h) != 0)
            break;
        h->n_lanes++;
    }
    if (h->n_lanes < p->lanes) {
        sh_stream_hub_destroy(h);
        return NULL;
    }
    return h;
}

void sh_stream_hub_close_all(sh_stream_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->closing = true;
    pthread_mutex_unlock(&h->lock);
}

void sh_stream_hub_destroy(sh_stream_hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->closing = true;
    /* Readers see `closing` within one tick and leave once their frame in flight is done. A
     * reserved slot whose upgrade never completes (the 101 could not be sent) is given up on
     * after a while; an open stream must be waited for, since its socket is still in use. */
    double give_up = mono_ms() + 2000.0 + h->p.frame_timeout_ms;
    while (h->open > 0 || (h->reserved > 0 && mono_ms() < give_up)) {
        pthread_mutex_unlock(&h->lock);
        nanosleep(&(struct timespec){0, 10 * 1000000L}, NULL);
        pthread_mutex_lock(&h->lock);
    }
    h->stopping = true;
    pthread_cond_broadcast(&h->work);
    pthread_mutex_unlock(&h->lock);
    for (int i = 0; i < h->n_lanes; i++)
        pthread_join(h->lanes[i], NULL);
    pthread_cond_destroy(&h->idle);
    pthread_cond_destroy(&h->work);
    pthread_mutex_destroy(&h->lock);
    sh_free(h->alloc, h->slots);
    sh_free(h->alloc, h->lanes);
    sh_free(h->alloc, h);
}

bool sh_stream_reserve(sh_stream_hub *h)
{
    pthread_mutex_lock(&h->lock);
    bool ok = !h->closing && h->open + h->reserved < h->p.max_streams;
    if (ok)
        h->reserved++;
    pthread_mutex_unlock(&h->lock);
    return ok;
}

void sh_stream_unreserve(sh_stream_hub *h)
{
    pthread_mutex_lock(&h->lock);
    h->reserved--;
    pthread_mutex_unlock(&h->lock);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void sh_stream_get_stats(sh_stream_hub *h, sh_stream_stats *out)
{
    double tmp[AGE_WINDOW];
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&h->lock);
    out->streams = h->open;
    out->opened = h->opened;
    out->frames_received = h->received;
    out->frames_processed = h->processed;
    out->frames_dropped = h->dropped;
    out->frames_failed = h->failed;
    size_t n = h->n_ages < AGE_WINDOW ? (size_t)h->n_ages : AGE_WINDOW;
    memcpy(tmp, h->ages, n * sizeof *tmp);
    pthread_mutex_unlock(&h->lock);
    out->age_samples = n;
    if (n) {
        qsort(tmp, n, sizeof *tmp, cmp_double);
        out->age_ms_p50 = tmp[(n - 1) / 2];
        out->age_ms_p99 = tmp[(size_t)((double)(n - 1) * 0.99)];
    }
}
