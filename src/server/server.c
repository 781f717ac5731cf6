#include "server/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "runtime/config.h"
#include "server/conns.h"
#include "server/gate.h"
#include "server/head.h"
#include "server/jobs.h"
#include "server/listen.h"
#include "server/stream.h"
#include "server/ws.h"
#include "vision/image.h"

#define MAX_URL 256
#define BUDGET_MAX_BODY 4096
/* A chunked body (no Content-Length) can only be found too large while it arrives; it is
 * read and dropped up to this much more so the client still gets its 413, then cut. */
#define DISCARD_SLACK ((size_t)64 << 20)
/* Bytes a decode may hold at its peak per pixel of the image: the decoder's own buffers
 * (a 16-bit RGBA PNG inflates to 8 bytes a pixel) plus the RGB image and its public copy
 * (3 + 3). Charged before decoding; afterwards only the frame's 3 bytes a pixel stay. */
#define DECODE_BYTES_PER_PIXEL 16
/* Request headers beyond this total get 431 from the request handler; heads beyond
 * SH_HEAD_MAX_BYTES (or SH_HEAD_MAX_FIELDS fields) never reach libmicrohttpd (server/gate.h),
 * and its pool holds any head the gate lets through, so none of its HTML pages is sent. */
#define MAX_HEADER_BYTES (16u << 10)
#define MHD_POOL_BYTES (SH_HEAD_MAX_BYTES * 2)
/* libmicrohttpd's own connection limit sits above ours: connections the table cut are still
 * counted by it until their threads have closed them. */
#define MHD_CONNECTION_SLACK 64
/* How often a request waiting for its job checks whether its client is still there. */
#define CLIENT_CHECK_MS 50

/* Status codes counted one by one on /metrics; anything else counts as "other". */
static const unsigned COUNTED[] = {200, 400, 401, 404, 405, 409, 413, 414, 422, 429, 431, 500, 503, 504};
#define N_COUNTED (sizeof COUNTED / sizeof COUNTED[0])

typedef enum endpoint {
    EP_HEALTHZ, EP_READYZ, EP_METRICS, EP_INFER, EP_MODELS, EP_MODEL_ACTION, EP_BUDGET, EP_STREAM, EP_COUNT
} endpoint;

typedef struct endpoint_info {
    const char *path;
    bool prefix;        /* path is a prefix: /v1/models/{name}/{action} */
    const char *method; /* the one method allowed (GET also allows HEAD) */
    bool auth;          /* needs the bearer token when one is set */
    bool body;          /* reads a request body */
    const char *usage;  /* 405 hint */
} endpoint_info;

static const endpoint_info ENDPOINTS[EP_COUNT] = {
    [EP_HEALTHZ] = {"/healthz", false, "GET", false, false, "use GET"},
    [EP_READYZ] = {"/readyz", false, "GET", false, false, "use GET"},
    [EP_METRICS] = {"/metrics", false, "GET", true, false, "use GET"},
    [EP_INFER] = {"/v1/infer", false, "POST", true, true, "use POST with a JPEG/PNG body (or raw RGB with width/height)"},
    [EP_MODELS] = {"/v1/models", false, "GET", true, false, "use GET"},
    [EP_MODEL_ACTION] = {"/v1/models/", true, "POST", true, false, "use POST /v1/models/{name}/load or /unload"},
    [EP_BUDGET] = {"/v1/budget", false, "PUT", true, true, "use PUT with {\"bytes\": N}"},
    [EP_STREAM] = {"/v1/stream", false, "GET", true, false, "use GET with Upgrade: websocket"},
};

/* One runtime the server serves with, and the requests and jobs still using it. A swap
 * installs a new generation and waits until the old one's count drops to zero. */
typedef struct rt_gen {
    struct sh_server *s;
    shoal_runtime_t rt;
    char default_mode[128];     /* "" = none */
    int refs;                   /* under the server's gen_lock */
} rt_gen;

struct sh_server {
    sh_allocator *alloc;
    sh_server_params p;
    char token[256];
    struct MHD_Daemon *mhd;
    sh_gate *gate;
    sh_job_queue *jobs;
    sh_conn_table *conns;
    sh_stream_hub *streams;
    pthread_mutex_t gen_lock;
    pthread_cond_t gen_idle;
    rt_gen *gen;
    int port;
    uint64_t id_seed;           /* random per process, so generated request ids do not repeat */
    char refusal_path[48];      /* the gate's stand-in for a refused request (server/gate.h) */
    atomic_ulong id_counter;
    atomic_bool stopping;
    atomic_bool draining;       /* /readyz says no; everything else is served as usual */
    atomic_ulong requests_total;
    atomic_ulong responses[N_COUNTED + 1];
    atomic_long in_flight;      /* requests between their first callback and completion */
};

/* Per-request state across libmicrohttpd's repeated calls for one request. */
typedef struct request {
    endpoint ep;
    sh_conn *conn;
    rt_gen *gen;                /* held while the request uses the runtime */
    char id[65];                /* X-Request-Id */
    char target[80];            /* the mode or model asked for, for the access log */
    char path[48];
    unsigned status;            /* the response's code; 499 when the client went away */
    double t0;
    char *body;
    size_t len, cap, limit;
    size_t discarded;
    bool too_large;
} request;

sh_server_params sh_server_default_params(void)
{
    sh_server_params p = {
        .listen = "127.0.0.1:8080",
        .workers = 2,
        .queue_depth = 16,
        /* The same as a config without a server: section (runtime/config.c). */
        .timeout_ms = 5000,
        .max_body_bytes = 16u << 20,
        .connection_timeout_s = 10,
        .receive_timeout_s = 15,
        .max_connections = 128,
        .max_connections_per_client = 64,
        .max_pixels = 4096 * 4096,
        .host_limit_bytes = (size_t)1 << 30,
        .max_streams = 64,
        .stream_max_frame_bytes = 4u << 20,
        .stream_idle_timeout_s = 30,
        .stream_heartbeat_s = 10,
        .drain_ms = 0,
    };
    return p;
}

static void slog(sh_server *s, shoal_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void slog(sh_server *s, shoal_log_level level, const char *fmt, ...)
{
    if (!s->p.log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->p.log(s->p.log_user, level, msg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    sh_server *s = cls;
    if (!s->p.log)
        return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    /* libmicrohttpd reports what clients do wrong (closed early, malformed requests): at a
     * warning level a slow-client attack would flood the journal; /metrics counts the cuts. */
    s->p.log(s->p.log_user, SHOAL_LOG_DEBUG, msg);
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* --- runtime generations ------------------------------------------------------------ */

static rt_gen *gen_acquire(sh_server *s)
{
    pthread_mutex_lock(&s->gen_lock);
    rt_gen *g = s->gen;
    g->refs++;
    pthread_mutex_unlock(&s->gen_lock);
    return g;
}

static void gen_release(void *user)
{
    rt_gen *g = user;
    if (!g)
        return;
    sh_server *s = g->s;
    pthread_mutex_lock(&s->gen_lock);
    if (--g->refs == 0 && g != s->gen)
        pthread_cond_broadcast(&s->gen_idle);
    pthread_mutex_unlock(&s->gen_lock);
}

/* Another reference on a generation already held. */
static rt_gen *gen_acquire_same(rt_gen *g)
{
    pthread_mutex_lock(&g->s->gen_lock);
    g->refs++;
    pthread_mutex_unlock(&g->s->gen_lock);
    return g;
}

static rt_gen *gen_new(sh_server *s, shoal_runtime_t rt, const char *default_mode)
{
    rt_gen *g = sh_calloc(s->alloc, 1, sizeof *g);
    if (!g)
        return NULL;
    g->s = s;
    g->rt = rt;
    if (default_mode)
        snprintf(g->default_mode, sizeof g->default_mode, "%s", default_mode);
    return g;
}

int sh_server_swap_runtime(sh_server *s, shoal_runtime_t rt, const char *default_mode, shoal_runtime_t *old)
{
    *old = NULL;
    rt_gen *g = gen_new(s, rt, default_mode);
    if (!g)
        return SHOAL_ERR_NO_MEMORY;
    pthread_mutex_lock(&s->gen_lock);
    rt_gen *prev = s->gen;
    s->gen = g;
    while (prev->refs > 0)
        pthread_cond_wait(&s->gen_idle, &s->gen_lock);
    pthread_mutex_unlock(&s->gen_lock);
    *old = prev->rt;
    sh_free(s->alloc, prev);
    return SHOAL_OK;
}

/* The request of a connection (set by on_request), or NULL. */
static request *request_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    sh_conn *conn = ci ? ci->socket_context : NULL;
    return conn ? sh_conn_user(conn) : NULL;
}

/* --- responses ------------------------------------------------------------------- */

typedef struct extra_header {
    const char *name, *value;
} extra_header;

static enum MHD_Result send_text(sh_server *s, struct MHD_Connection *c, unsigned code, const char *type,
                                 const char *text, size_t len, const extra_header *hdr)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (hdr && hdr->name)
        MHD_add_response_header(r, hdr->name, hdr->value);
    request *rq = request_of(c);
    if (rq) {
        MHD_add_response_header(r, "X-Request-Id", rq->id);
        rq->status = code;
        if (rq->conn)
            sh_conn_set_phase(s->conns, rq->conn, SH_CONN_BUSY);
    }
    /* While stopping, every answer closes its connection so keep-alive clients go away. */
    if (atomic_load(&s->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    size_t k = 0;
    while (k < N_COUNTED && COUNTED[k] != code)
        k++;
    atomic_fetch_add(&s->responses[k], 1);
    return ok;
}

static enum MHD_Result send_json(sh_server *s, struct MHD_Connection *c, unsigned code, cJSON *obj)
{
    char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!text) {
        static const char oom[] = "{\"error\":{\"code\":500,\"message\":\"out of memory formatting the response\"}}";
        return send_text(s, c, 500, "application/json", oom, sizeof oom - 1, NULL);
    }
    enum MHD_Result ok = send_text(s, c, code, "application/json", text, strlen(text), NULL);
    cJSON_free(text);
    return ok;
}

static enum MHD_Result send_error_h(sh_server *s, struct MHD_Connection *c, unsigned code, const char *msg,
                                    const extra_header *hdr)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = o ? cJSON_AddObjectToObject(o, "error") : NULL;
    if (e) {
        cJSON_AddNumberToObject(e, "code", code);
        cJSON_AddStringToObject(e, "message", msg);
    }
    char *text = e ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    char fallback[64];
    if (!text)
        snprintf(fallback, sizeof fallback, "{\"error\":{\"code\":%u}}", code);
    enum MHD_Result ok = send_text(s, c, code, "application/json", text ? text : fallback,
                                   strlen(text ? text : fallback), hdr);
    cJSON_free(text);
    if (code >= 500 && code != 503 && code != 504)
        slog(s, SHOAL_LOG_ERROR, "http %u: %s", code, msg);
    return ok;
}

static enum MHD_Result send_error(sh_server *s, struct MHD_Connection *c, unsigned code, const char *msg)
{
    return send_error_h(s, c, code, msg, NULL);
}

static enum MHD_Result send_errorf(sh_server *s, struct MHD_Connection *c, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result send_errorf(sh_server *s, struct MHD_Connection *c, unsigned code, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_error(s, c, code, msg);
}

/* HTTP status of a runtime failure. `control`: load/unload/budget, where a budget refusal is
 * a conflict with the current state; for inference it is transient (models in use will be
 * released), so the client is told to retry. */
static unsigned http_code(int status, bool control)
{
    switch (status) {
    case SHOAL_OK: return 200;
    case SHOAL_ERR_INVALID_ARG: case SHOAL_ERR_PARSE: case SHOAL_ERR_SHAPE: return 400;
    case SHOAL_ERR_NOT_FOUND: return 404;
    case SHOAL_ERR_UNSUPPORTED: return 422;
    case SHOAL_ERR_BUSY: return 429;
    case SHOAL_ERR_BUDGET: return control ? 409 : 503;
    case SHOAL_ERR_STATE: return 409;
    case SHOAL_ERR_NO_MEMORY: return 503;
    case SHOAL_ERR_TIMEOUT: return 504;
    default: return 500;
    }
}

static enum MHD_Result send_runtime_error(sh_server *s, struct MHD_Connection *c, int status, const char *msg,
                                          bool control)
{
    unsigned code = http_code(status, control);
    extra_header retry = {"Retry-After", "1"};
    return send_error_h(s, c, code, msg && *msg ? msg : shoal_status_str(status), code == 503 ? &retry : NULL);
}

/* --- request checks -------------------------------------------------------------------- */

static bool authorized(sh_server *s, struct MHD_Connection *c)
{
    if (!s->token[0])
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t n = strlen(s->token), m = strlen(h);
    /* Compare every byte of the token whatever the given length, so timing reveals neither
     * the token's bytes nor where a wrong guess first differs. */
    unsigned diff = (unsigned)(m != n);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(i < m ? h[i] : 0) ^ (unsigned char)s->token[i];
    return diff == 0;
}

/* Physical memory of the host (the CPU backend's device), 0 when unknown. */
static int64_t host_total_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? (int64_t)pages * page : 0;
}

static int find_name(const char *name, int count, const char *(*get)(shoal_runtime_t, int), shoal_runtime_t rt)
{
    for (int i = 0; i < count; i++) {
        const char *n = get(rt, i);
        if (n && !strcmp(n, name))
            return i;
    }
    return -1;
}

/* "a, b, c" of the config's names, for 404 messages. */
static void list_names(char *buf, size_t cap, int count, const char *(*get)(shoal_runtime_t, int), shoal_runtime_t rt)
{
    buf[0] = '\0';
    size_t at = 0;
    for (int i = 0; i < count && at + 1 < cap; i++) {
        int n = snprintf(buf + at, cap - at, "%s%s", i ? ", " : "", get(rt, i));
        if (n < 0)
            break;
        at += (size_t)n;
    }
}

static bool parse_dim(const char *v, int *out)
{
    if (!v || *v < '0' || *v > '9')
        return false;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || errno || x <= 0 || x > 16384)
        return false;
    *out = (int)x;
    return true;
}

/* Query parameters of /v1/infer: each known one at most once, nothing else. */
static const char *const INFER_ARGS[] = {"mode", "model", "width", "height"};
#define N_INFER_ARGS 4

typedef struct arg_check {
    const char *const *allowed;
    int n_allowed;
    int seen[N_INFER_ARGS];
    char bad[96];
} arg_check;

static enum MHD_Result check_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    arg_check *ac = cls;
    for (int i = 0; i < ac->n_allowed; i++) {
        if (!strcmp(key, ac->allowed[i])) {
            if (++ac->seen[i] > 1) {
                snprintf(ac->bad, sizeof ac->bad, "query parameter '%.40s' given more than once", key);
                return MHD_NO;
            }
            if (!value || !*value) {
                snprintf(ac->bad, sizeof ac->bad, "query parameter '%.40s' has no value", key);
                return MHD_NO;
            }
            return MHD_YES;
        }
    }
    snprintf(ac->bad, sizeof ac->bad, "unknown query parameter '%.40s'", key);
    return MHD_NO;
}

/* NULL when the query is acceptable, else the message (in ac). */
static const char *check_query(struct MHD_Connection *c, arg_check *ac, const char *const *allowed, int n)
{
    memset(ac, 0, sizeof *ac);
    ac->allowed = allowed;
    ac->n_allowed = n;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, check_arg, ac);
    return ac->bad[0] ? ac->bad : NULL;
}

/* --- handlers ---------------------------------------------------------------------- */

/* Splices the server's timings into the runtime's JSON: {...} -> {...,"server":{...}}. */
static enum MHD_Result send_results(sh_server *s, struct MHD_Connection *c, const sh_job *job)
{
    size_t n = strlen(job->json);
    if (n < 2 || job->json[n - 1] != '}')
        return send_error(s, c, 500, "internal error: malformed results JSON");
    char tail[160];
    int tn = snprintf(tail, sizeof tail, ",\"server\":{\"queue_ms\":%.3f,\"run_ms\":%.3f}}", job->queue_ms,
                      job->run_ms);
    size_t total;
    if (tn < 0 || !sh_add_size(n, (size_t)tn, &total))
        return send_error(s, c, 500, "internal error formatting results");
    char *text = sh_alloc(s->alloc, total);
    if (!text)
        return send_error_h(s, c, 503, "out of memory", &(extra_header){"Retry-After", "1"});
    memcpy(text, job->json, n - 1);
    memcpy(text + n - 1, tail, (size_t)tn);
    enum MHD_Result ok = send_text(s, c, 200, "application/json", text, n - 1 + (size_t)tn, NULL);
    sh_free(s->alloc, text);
    return ok;
}

/* True when the client has closed its end: nobody will read the answer. */
static bool client_gone(request *rq)
{
    if (!rq->conn)
        return false;
    int fd = sh_conn_fd(rq->conn);
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (poll(&pf, 1, 0) <= 0)
        return false;
    if (pf.revents & (POLLHUP | POLLERR))
        return true;
    /* Readable: the end of the stream, or the next pipelined request (left where it is). */
    char b;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* A budget refusal is temporary only while other jobs run (their models hold the budget);
 * refused with nothing else running, the target does not fit beside the arenas and pinned
 * models at all, and asking again would get the same answer. */
static enum MHD_Result send_job_error(sh_server *s, struct MHD_Connection *c, const sh_job *job)
{
    if (job->status == SHOAL_ERR_BUDGET && !job->ran_beside_others)
        return send_errorf(s, c, 422, "'%s' cannot run within the memory budget: %s", job->target, job->error);
    return send_runtime_error(s, c, job->status, job->error, false);
}

/* Waits for the job within the request timeout, watching the client: a job whose client has
 * gone is taken out of the queue. Returns MHD_NO (close, nothing to answer) in that case. */
static enum MHD_Result await_job(sh_server *s, struct MHD_Connection *c, request *rq, sh_job *job)
{
    double deadline = mono_ms() + s->p.timeout_ms;
    for (;;) {
        double left = deadline - mono_ms();
        if (left <= 0) {
            sh_job_cancel(s->jobs, job, false);
            sh_job_release(s->jobs, job);
            return send_errorf(s, c, 504, "inference did not finish within %d ms", s->p.timeout_ms);
        }
        if (sh_job_wait(s->jobs, job, left < CLIENT_CHECK_MS ? (int)left + 1 : CLIENT_CHECK_MS))
            break;
        if (client_gone(rq)) {
            bool dropped = sh_job_cancel(s->jobs, job, true);
            sh_job_release(s->jobs, job);
            rq->status = 499;
            slog(s, SHOAL_LOG_DEBUG, "request %s: client went away, job %s", rq->id,
                 dropped ? "dropped from the queue" : "left to finish");
            return MHD_NO;
        }
    }
    enum MHD_Result ok = job->status == SHOAL_OK ? send_results(s, c, job) : send_job_error(s, c, job);
    sh_job_release(s->jobs, job);
    return ok;
}

static enum MHD_Result handle_infer(sh_server *s, struct MHD_Connection *c, request *rq)
{
    shoal_runtime_t rt = rq->gen->rt;
    arg_check ac;
    const char *bad = check_query(c, &ac, INFER_ARGS, N_INFER_ARGS);
    if (bad)
        return send_error(s, c, 400, bad);
    const char *mode = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mode");
    const char *model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    if (mode && model)
        return send_error(s, c, 400, "give one of ?mode=NAME or ?model=NAME, not both");
    if (!mode && !model) {
        if (!rq->gen->default_mode[0])
            return send_error(s, c, 400, "give ?mode=NAME or ?model=NAME (the config names no default_mode)");
        mode = rq->gen->default_mode;
    }
    const char *target = mode ? mode : model;
    /* Names are looked up among the config's, never used as paths. */
    char names[512];
    if (mode && find_name(mode, shoal_runtime_mode_count(rt), shoal_runtime_mode_name, rt) < 0) {
        list_names(names, sizeof names, shoal_runtime_mode_count(rt), shoal_runtime_mode_name, rt);
        return send_errorf(s, c, 404, "unknown mode '%.64s' (the config has: %s)", mode, names);
    }
    if (model && find_name(model, shoal_runtime_model_count(rt), shoal_runtime_model_name, rt) < 0) {
        list_names(names, sizeof names, shoal_runtime_model_count(rt), shoal_runtime_model_name, rt);
        return send_errorf(s, c, 404, "unknown model '%.64s' (the config has: %s)", model, names);
    }
    /* Only a name of the config's reaches the access log, never the client's text. */
    snprintf(rq->target, sizeof rq->target, "%s=%.64s", mode ? "mode" : "model", target);
    for (char *p = rq->target; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '\\')
            *p = '?';
    const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "width");
    const char *h = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "height");
    int iw = 0, ih = 0;
    if ((w || h) && (!parse_dim(w, &iw) || !parse_dim(h, &ih)))
        return send_error(s, c, 400, "width and height must both be given, as integers in 1..16384");
    if (!rq->len)
        return send_error(s, c, 400, "empty body: send a JPEG/PNG image, or raw RGB with ?width=&height=");
    if (w && (size_t)iw * (size_t)ih * 3 != rq->len)
        return send_errorf(s, c, 400, "raw RGB body is %zu bytes but %dx%dx3 = %zu", rq->len, iw, ih,
                           (size_t)iw * (size_t)ih * 3);
    if (!w) {   /* the size the image declares, from its header: nothing is decoded yet */
        sh_err perr = {0};
        int prc = sh_image_probe(rq->body, rq->len, &iw, &ih, &perr);
        /* A JPEG or PNG the decoder refuses as unsupported declares a size beyond its limits. */
        bool jpeg_or_png = (rq->len >= 4 && !memcmp(rq->body, "\x89PNG", 4)) ||
                           (rq->len >= 2 && !memcmp(rq->body, "\xff\xd8", 2));
        if (prc == SHOAL_ERR_UNSUPPORTED && jpeg_or_png)
            return send_errorf(s, c, 413, "image too large: %s", perr.msg);
        if (prc != SHOAL_OK)
            return send_errorf(s, c, 400, "bad image: %s", perr.msg[0] ? perr.msg : shoal_status_str(prc));
    }
    int64_t pixels = (int64_t)iw * ih;
    if (pixels > s->p.max_pixels)
        return send_errorf(s, c, 413, "image of %dx%d = %lld pixels exceeds the limit of %lld pixels", iw, ih,
                           (long long)pixels, (long long)s->p.max_pixels);
    /* Overload costs no decode: refuse before the work when the queue is already full, or
     * when the decoded frames in flight would pass the host limit. */
    extra_header retry = {"Retry-After", "1"};
    if (!sh_job_queue_has_room(s->jobs))
        return send_error_h(s, c, 429, "inference queue full, retry later", &retry);
    size_t frame_bytes = (size_t)pixels * 3;
    size_t charge = w ? frame_bytes : (size_t)pixels * DECODE_BYTES_PER_PIXEL;
    if (!sh_job_queue_charge(s->jobs, charge))
        return send_errorf(s, c, 429, "decoded images in flight are at the host limit of %zu bytes "
                           "(this one needs %zu), retry later", s->p.host_limit_bytes, charge);

    sh_job *job = sh_job_new(s->jobs);
    if (!job) {
        sh_job_queue_uncharge(s->jobs, charge);
        return send_error_h(s, c, 503, "out of memory", &retry);
    }
    job->frame_charge = charge;   /* from here on the job gives it back */
    job->rt = rt;
    snprintf(job->target, sizeof job->target, "%s", target);
    job->is_model = model != NULL;
    char err[256] = "";
    int rc = SHOAL_OK;
    if (w) {
        /* Public images own malloc'd pixels (shoal_image_free frees them with free). */
        uint8_t *copy = malloc(rq->len);
        if (!copy) {
            sh_job_release(s->jobs, job);
            return send_error_h(s, c, 503, "out of memory", &retry);
        }
        memcpy(copy, rq->body, rq->len);
        job->frame = shoal_image_wrap(copy, iw, ih);
        job->frame.owned = 1;
    } else {
        rc = shoal_image_decode(rq->body, rq->len, &job->frame, err, sizeof err);
        if (rc == SHOAL_OK && charge > frame_bytes) {   /* the decoder's buffers are gone */
            sh_job_queue_uncharge(s->jobs, charge - frame_bytes);
            job->frame_charge = frame_bytes;
        }
    }
    /* The body is not needed past this point; give it back before waiting. */
    sh_free(s->alloc, rq->body);
    rq->body = NULL;
    rq->cap = 0;
    if (rc != SHOAL_OK) {
        sh_job_release(s->jobs, job);
        if (rc == SHOAL_ERR_NO_MEMORY)
            return send_error_h(s, c, 503, "out of memory decoding the image", &retry);
        return send_errorf(s, c, 400, "bad image: %s", err[0] ? err : shoal_status_str(rc));
    }
    /* The job holds the runtime until it no longer needs it, past this request if need be. */
    job->done_with_rt = gen_release;
    job->done_with_rt_user = gen_acquire_same(rq->gen);
    rc = sh_job_submit(s->jobs, job);
    if (rc != SHOAL_OK) {
        sh_job_release(s->jobs, job);
        if (rc == SHOAL_ERR_BUSY)
            return send_error_h(s, c, 429, "inference queue full, retry later", &retry);
        return send_error(s, c, 503, "server is shutting down");
    }
    return await_job(s, c, rq, job);
}

static const char *state_name(shoal_model_state st)
{
    return st == SHOAL_MODEL_RESIDENT ? "resident" : st == SHOAL_MODEL_CACHED ? "cached" : "unloaded";
}

static enum MHD_Result handle_models(sh_server *s, struct MHD_Connection *c, shoal_runtime_t rt)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) != SHOAL_OK)
        return send_error(s, c, 500, "could not read the runtime's stats");
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; arr && i < st.n_models; i++) {
        const shoal_model_stats *m = &st.models[i];
        cJSON *j = cJSON_CreateObject();
        if (!j)
            break;
        cJSON_AddStringToObject(j, "name", m->name);
        cJSON_AddStringToObject(j, "state", state_name(m->state));
        cJSON_AddBoolToObject(j, "pinned", m->pinned);
        cJSON_AddNumberToObject(j, "priority", m->priority);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)m->weight_bytes);
        cJSON_AddNumberToObject(j, "weight_unique_bytes", (double)m->weight_unique_bytes);
        cJSON_AddNumberToObject(j, "weight_shared_bytes", (double)m->weight_shared_bytes);
        cJSON_AddNumberToObject(j, "plan_bytes", (double)m->plan_bytes);
        cJSON_AddNumberToObject(j, "host_cache_bytes", (double)m->host_cache_bytes);
        cJSON_AddNumberToObject(j, "last_use_s", m->last_use_s);
        cJSON_AddNumberToObject(j, "loads", (double)m->loads);
        cJSON_AddNumberToObject(j, "evictions", (double)m->evictions);
        cJSON_AddNumberToObject(j, "runs", (double)m->runs);
        cJSON_AddNumberToObject(j, "latency_ms_p50", m->latency_ms_p50);
        cJSON_AddNumberToObject(j, "latency_ms_p99", m->latency_ms_p99);
        cJSON_AddItemToArray(arr, j);
    }
    cJSON *modes = cJSON_AddArrayToObject(o, "modes");
    for (int i = 0; modes && i < shoal_runtime_mode_count(rt); i++)
        cJSON_AddItemToArray(modes, cJSON_CreateString(shoal_runtime_mode_name(rt, i)));
    if (st.n_devices > 0) {
        const shoal_device_stats *d = &st.devices[0];
        cJSON *dj = cJSON_AddObjectToObject(o, "device");
        cJSON_AddStringToObject(dj, "name", d->name);
        cJSON_AddNumberToObject(dj, "budget_bytes", (double)d->budget_bytes);
        cJSON_AddNumberToObject(dj, "in_use_bytes", (double)d->in_use_bytes);
        cJSON_AddNumberToObject(dj, "peak_bytes", (double)d->peak_bytes);
        cJSON_AddNumberToObject(dj, "weights_bytes", (double)d->weights_bytes);
        cJSON_AddNumberToObject(dj, "arena_bytes", (double)d->arena_bytes);
    }
    shoal_stats_free(&st);
    return send_json(s, c, 200, o);
}

static enum MHD_Result model_state_json(sh_server *s, struct MHD_Connection *c, shoal_runtime_t rt,
                                        const char *name, const char *action)
{
    shoal_stats st;
    const char *state = "unknown";
    bool have = shoal_runtime_get_stats(rt, &st) == SHOAL_OK;
    for (int i = 0; have && i < st.n_models; i++)
        if (!strcmp(st.models[i].name, name))
            state = state_name(st.models[i].state);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", name);
    cJSON_AddStringToObject(o, "action", action);
    cJSON_AddStringToObject(o, "state", state);
    if (have)
        shoal_stats_free(&st);
    return send_json(s, c, 200, o);
}

static enum MHD_Result handle_model_action(sh_server *s, struct MHD_Connection *c, shoal_runtime_t rt,
                                           const char *url)
{
    arg_check ac;
    const char *bad = check_query(c, &ac, NULL, 0);
    if (bad)
        return send_error(s, c, 400, bad);
    /* /v1/models/{name}/load|unload; the name must be one of the config's. */
    const char *rest = url + strlen("/v1/models/");
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest)
        return send_error(s, c, 404, "use POST /v1/models/{name}/load or /unload");
    char name[128];
    size_t n = (size_t)(slash - rest);
    if (n >= sizeof name)
        return send_error(s, c, 404, "unknown model (name too long)");
    memcpy(name, rest, n);
    name[n] = '\0';
    const char *action = slash + 1;
    if (strcmp(action, "load") && strcmp(action, "unload"))
        return send_error(s, c, 404, "unknown action: use /v1/models/{name}/load or /unload");
    if (find_name(name, shoal_runtime_model_count(rt), shoal_runtime_model_name, rt) < 0) {
        char names[512];
        list_names(names, sizeof names, shoal_runtime_model_count(rt), shoal_runtime_model_name, rt);
        return send_errorf(s, c, 404, "unknown model '%.64s' (the config has: %s)", name, names);
    }
    int rc = !strcmp(action, "load") ? shoal_runtime_load_model(rt, name) : shoal_runtime_unload_model(rt, name);
    if (rc != SHOAL_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", shoal_runtime_last_error(rt));   /* this thread's own */
        return send_runtime_error(s, c, rc, msg, true);
    }
    slog(s, SHOAL_LOG_INFO, "model %s: %s requested over HTTP", name, action);
    return model_state_json(s, c, rt, name, action);
}

static enum MHD_Result handle_budget(sh_server *s, struct MHD_Connection *c, request *rq)
{
    shoal_runtime_t rt = rq->gen->rt;
    arg_check ac;
    const char *bad = check_query(c, &ac, NULL, 0);
    if (bad)
        return send_error(s, c, 400, bad);
    static const char usage[] = "body must be JSON {\"bytes\": N} with N a whole number >= 0 (0 = unlimited), "
                                "or a size string such as \"512MB\", \"1.5GiB\" or \"60%\" (of the device's memory)";
    if (!rq->len)
        return send_error(s, c, 400, usage);
    cJSON *o = cJSON_ParseWithLength(rq->body, rq->len);
    cJSON *b = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "bytes") : NULL;
    bool ok = b && cJSON_GetArraySize(o) == 1;
    int64_t bytes = 0;
    char why[128] = "";
    if (ok && cJSON_IsNumber(b)) {
        ok = b->valuedouble >= 0 && b->valuedouble <= 9007199254740992.0 && floor(b->valuedouble) == b->valuedouble;
        bytes = ok ? (int64_t)b->valuedouble : 0;
    } else if (ok && cJSON_IsString(b)) {
        sh_config_size sz;
        ok = sh_config_parse_size(b->valuestring, true, &sz, why, sizeof why) == 0;
        if (ok && sz.kind == SH_SIZE_PERCENT) {
            shoal_stats st;
            int64_t total = 0;
            if (shoal_runtime_get_stats(rt, &st) == SHOAL_OK) {
                if (st.n_devices > 0)
                    total = st.devices[0].device_total_bytes;
                shoal_stats_free(&st);
            }
            if (total <= 0)
                total = host_total_bytes();
            if (total <= 0) {
                cJSON_Delete(o);
                return send_error(s, c, 422, "a percentage needs the device's total memory, which is unknown here");
            }
            bytes = (int64_t)((double)total * sz.percent / 100.0);
        } else if (ok) {
            ok = sz.kind == SH_SIZE_BYTES && sz.bytes <= INT64_MAX;
            bytes = ok ? (int64_t)sz.bytes : 0;
        }
    } else {
        ok = false;
    }
    cJSON_Delete(o);
    if (!ok)
        return why[0] ? send_errorf(s, c, 400, "%s: %s", usage, why) : send_error(s, c, 400, usage);
    int rc = shoal_runtime_set_budget(rt, bytes);
    if (rc != SHOAL_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", shoal_runtime_last_error(rt));
        return send_runtime_error(s, c, rc, msg, true);
    }
    slog(s, SHOAL_LOG_INFO, "budget set to %lld bytes over HTTP", (long long)bytes);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "budget_bytes", (double)bytes);
    shoal_stats st;
    if (shoal_runtime_get_stats(rt, &st) == SHOAL_OK) {
        if (st.n_devices > 0)
            cJSON_AddNumberToObject(r, "in_use_bytes", (double)st.devices[0].in_use_bytes);
        shoal_stats_free(&st);
    }
    return send_json(s, c, 200, r);
}

static enum MHD_Result handle_metrics(sh_server *s, struct MHD_Connection *c, shoal_runtime_t rt)
{
    char *text = shoal_runtime_prometheus(rt);
    if (!text)
        return send_error(s, c, 500, "could not format metrics");
    sh_job_queue_stats qs;
    sh_job_queue_get_stats(s->jobs, &qs);
    char extra[12288];
    size_t at = 0;
#define PUT(...) at += (size_t)snprintf(extra + at, sizeof extra - at, __VA_ARGS__)
    PUT("# HELP shoal_http_requests_total HTTP requests received.\n"
        "# TYPE shoal_http_requests_total counter\n"
        "shoal_http_requests_total %lu\n"
        "# HELP shoal_http_responses_total HTTP responses by status code.\n"
        "# TYPE shoal_http_responses_total counter\n",
        (unsigned long)atomic_load(&s->requests_total));
    for (size_t k = 0; k < N_COUNTED; k++)
        PUT("shoal_http_responses_total{code=\"%u\"} %lu\n", COUNTED[k], (unsigned long)atomic_load(&s->responses[k]));
    PUT("shoal_http_responses_total{code=\"other\"} %lu\n", (unsigned long)atomic_load(&s->responses[N_COUNTED]));
    PUT("# HELP shoal_http_in_flight Requests being received, queued, run or answered.\n"
        "# TYPE shoal_http_in_flight gauge\n"
        "shoal_http_in_flight %ld\n"
        "# HELP shoal_http_queue_depth Inference jobs waiting for a worker.\n"
        "# TYPE shoal_http_queue_depth gauge\n"
        "shoal_http_queue_depth %d\n"
        "# HELP shoal_http_queue_capacity Jobs that may wait before requests get 429.\n"
        "# TYPE shoal_http_queue_capacity gauge\n"
        "shoal_http_queue_capacity %d\n"
        "# HELP shoal_http_workers_busy Workers running a job.\n"
        "# TYPE shoal_http_workers_busy gauge\n"
        "shoal_http_workers_busy %d\n"
        "# HELP shoal_http_workers Worker threads (execution contexts).\n"
        "# TYPE shoal_http_workers gauge\n"
        "shoal_http_workers %d\n"
        "# HELP shoal_http_jobs_abandoned_total Queued jobs skipped because the request had timed out.\n"
        "# TYPE shoal_http_jobs_abandoned_total counter\n"
        "shoal_http_jobs_abandoned_total %lu\n"
        "# HELP shoal_http_jobs_client_gone_total Queued jobs dropped because their client went away.\n"
        "# TYPE shoal_http_jobs_client_gone_total counter\n"
        "shoal_http_jobs_client_gone_total %lu\n",
        (long)atomic_load(&s->in_flight), qs.waiting, qs.capacity, qs.running, qs.workers,
        (unsigned long)qs.abandoned, (unsigned long)qs.client_gone);
    PUT("# HELP shoal_http_decode_bytes Host bytes charged to decodes in progress and decoded frames.\n"
        "# TYPE shoal_http_decode_bytes gauge\n"
        "shoal_http_decode_bytes{kind=\"in_use\"} %zu\n"
        "shoal_http_decode_bytes{kind=\"peak\"} %zu\n"
        "shoal_http_decode_bytes{kind=\"limit\"} %zu\n"
        "# HELP shoal_http_decode_refused_total Requests refused (429) because decoded frames were at the limit.\n"
        "# TYPE shoal_http_decode_refused_total counter\n"
        "shoal_http_decode_refused_total %lu\n",
        qs.host_in_use, qs.host_peak, qs.host_limit, (unsigned long)qs.host_refused);
    sh_conn_stats cs;
    sh_conn_get_stats(s->conns, &cs);
    PUT("# HELP shoal_http_connections Open client connections.\n"
        "# TYPE shoal_http_connections gauge\n"
        "shoal_http_connections %d\n"
        "# HELP shoal_http_connections_cut_total Connections cut: their request missed its deadline, or a newer "
        "connection needed the slot while their request was still arriving; refused: every slot was busy.\n"
        "# TYPE shoal_http_connections_cut_total counter\n"
        "shoal_http_connections_cut_total{reason=\"deadline\"} %lu\n"
        "shoal_http_connections_cut_total{reason=\"evicted\"} %lu\n"
        "shoal_http_connections_cut_total{reason=\"refused\"} %lu\n",
        cs.open, (unsigned long)cs.cut_deadline, (unsigned long)cs.cut_evicted, (unsigned long)cs.refused);
    sh_stream_stats ss;
    sh_stream_get_stats(s->streams, &ss);
    PUT("# HELP shoal_stream_active Open /v1/stream WebSockets.\n"
        "# TYPE shoal_stream_active gauge\n"
        "shoal_stream_active %d\n"
        "# HELP shoal_stream_limit Streams accepted at once (503 above).\n"
        "# TYPE shoal_stream_limit gauge\n"
        "shoal_stream_limit %d\n"
        "# HELP shoal_stream_opened_total Streams opened.\n"
        "# TYPE shoal_stream_opened_total counter\n"
        "shoal_stream_opened_total %llu\n"
        "# HELP shoal_stream_frames_total Stream frames: received; processed (a result sent); dropped (replaced by a "
        "newer frame before it started, latest frame wins); failed (an error sent).\n"
        "# TYPE shoal_stream_frames_total counter\n"
        "shoal_stream_frames_total{result=\"received\"} %llu\n"
        "shoal_stream_frames_total{result=\"processed\"} %llu\n"
        "shoal_stream_frames_total{result=\"dropped\"} %llu\n"
        "shoal_stream_frames_total{result=\"failed\"} %llu\n"
        "# HELP shoal_stream_frame_age_ms Capture (or arrival) to result of the last 1024 results.\n"
        "# TYPE shoal_stream_frame_age_ms summary\n"
        "shoal_stream_frame_age_ms{quantile=\"0.5\"} %.3f\n"
        "shoal_stream_frame_age_ms{quantile=\"0.99\"} %.3f\n"
        "shoal_stream_frame_age_ms_count %llu\n",
        ss.streams, s->p.max_streams, (unsigned long long)ss.opened, (unsigned long long)ss.frames_received,
        (unsigned long long)ss.frames_processed, (unsigned long long)ss.frames_dropped,
        (unsigned long long)ss.frames_failed, ss.age_ms_p50, ss.age_ms_p99, (unsigned long long)ss.age_samples);
#undef PUT
    if (at >= sizeof extra)
        at = sizeof extra - 1;
    size_t tl = strlen(text), total;
    char *all = sh_add_size(tl, at + 1, &total) ? sh_alloc(s->alloc, total) : NULL;
    if (!all) {
        shoal_free_string(text);
        return send_error(s, c, 500, "out of memory");
    }
    memcpy(all, text, tl);
    memcpy(all + tl, extra, at + 1);
    shoal_free_string(text);
    enum MHD_Result ok = send_text(s, c, 200, "text/plain; version=0.0.4", all, tl + at, NULL);
    sh_free(s->alloc, all);
    return ok;
}


/* --- /v1/stream ---------------------------------------------------------------------------- */

/* What the upgrade handler needs once libmicrohttpd hands the socket over; the request itself
 * may be gone by then. */
typedef struct stream_start {
    sh_server *s;
    sh_conn *conn;
    char client[65];
    char mode[128];
} stream_start;

static void *stream_rt_acquire(void *user, shoal_runtime_t *rt, const char **default_mode)
{
    rt_gen *g = gen_acquire(user);
    *rt = g->rt;
    *default_mode = g->default_mode[0] ? g->default_mode : NULL;
    return g;
}

static void on_upgraded(void *cls, struct MHD_Connection *c, void *con_cls, const char *extra_in, size_t extra_len,
                        MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
    (void)c;
    (void)con_cls;
    stream_start *ss = cls;
    sh_server *s = ss->s;
    if (ss->conn)   /* a stream is served for its whole life: never cut as a slow request */
        sh_conn_set_phase(s->conns, ss->conn, SH_CONN_BUSY);
    /* libmicrohttpd's sockets are non-blocking; the stream's reader blocks with timeouts. */
    int fl = fcntl(sock, F_GETFL);
    if (fl >= 0)
        fcntl(sock, F_SETFL, fl & ~O_NONBLOCK);
    sh_stream_serve(s->streams, sock, extra_in, extra_len, ss->client, ss->mode[0] ? ss->mode : NULL);
    sh_free(s->alloc, ss);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

static const char *const STREAM_ARGS[] = {"client", "mode"};

/* True when the comma-separated header value contains `token` (case-insensitive). */
static bool header_has(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len == n && !strncasecmp(p, token, n))
            return true;
        p = end;
    }
    return false;
}

static enum MHD_Result handle_stream(sh_server *s, struct MHD_Connection *c, request *rq)
{
    arg_check ac;
    const char *bad = check_query(c, &ac, STREAM_ARGS, 2);
    if (bad)
        return send_error(s, c, 400, bad);
    const char *up = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
    const char *conn = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
    const char *ver = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    const char *key = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    if (!up || strcasecmp(up, "websocket") || !conn || !header_has(conn, "upgrade"))
        return send_error_h(s, c, 426, "GET /v1/stream is a WebSocket: send Upgrade: websocket, Connection: Upgrade",
                            &(extra_header){"Upgrade", "websocket"});
    if (!ver || strcmp(ver, "13"))
        return send_error_h(s, c, 426, "only WebSocket version 13 is spoken",
                            &(extra_header){"Sec-WebSocket-Version", "13"});
    char accept[29];
    if (!sh_ws_accept_key(key, accept))
        return send_error(s, c, 400, "Sec-WebSocket-Key must be 16 bytes in base64");
    const char *client = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "client");
    const char *mode = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mode");
    /* The client id travels to logs and a load balancer's hash: a short plain token only. */
    size_t cn = client ? strlen(client) : 0;
    bool sane = !client || (cn >= 1 && cn <= 64);
    for (size_t i = 0; sane && i < cn; i++)
        sane = (client[i] >= 'a' && client[i] <= 'z') || (client[i] >= 'A' && client[i] <= 'Z') ||
               (client[i] >= '0' && client[i] <= '9') || strchr("._:-", client[i]);
    if (!sane)
        return send_error(s, c, 400, "client must be 1..64 characters of [A-Za-z0-9._:-]");
    shoal_runtime_t rt = rq->gen->rt;
    if (mode && (strlen(mode) >= sizeof ((stream_start *)0)->mode ||
                 find_name(mode, shoal_runtime_mode_count(rt), shoal_runtime_mode_name, rt) < 0)) {
        char names[512];
        list_names(names, sizeof names, shoal_runtime_mode_count(rt), shoal_runtime_mode_name, rt);
        return send_errorf(s, c, 404, "unknown mode '%.64s' (the config has: %s)", mode, names);
    }
    snprintf(rq->target, sizeof rq->target, "client=%s", client ? client : "-");
    extra_header retry = {"Retry-After", "1"};
    if (!sh_stream_reserve(s->streams))
        return send_errorf(s, c, 503, "at the limit of %d streams, or stopping", s->p.max_streams);
    stream_start *ss = sh_calloc(s->alloc, 1, sizeof *ss);
    struct MHD_Response *r = ss ? MHD_create_response_for_upgrade(on_upgraded, ss) : NULL;
    if (!r) {
        sh_free(s->alloc, ss);
        sh_stream_unreserve(s->streams);
        return send_error_h(s, c, 503, "out of memory", &retry);
    }
    ss->s = s;
    ss->conn = rq->conn;
    snprintf(ss->client, sizeof ss->client, "%s", client ? client : "-");
    if (mode)
        snprintf(ss->mode, sizeof ss->mode, "%s", mode);
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    MHD_add_response_header(r, "X-Request-Id", rq->id);
    rq->status = 101;
    enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    if (ok != MHD_YES) {   /* the handler will never run */
        sh_free(s->alloc, ss);
        sh_stream_unreserve(s->streams);
    }
    return ok;
}

static enum MHD_Result dispatch(sh_server *s, struct MHD_Connection *c, const char *url, request *rq)
{
    shoal_runtime_t rt = rq->gen->rt;
    switch (rq->ep) {
    case EP_HEALTHZ:
        return send_text(s, c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL);
    case EP_READYZ:
        if (atomic_load(&s->stopping) || atomic_load(&s->draining))
            return send_text(s, c, 503, "application/json", "{\"ready\":false,\"reason\":\"stopping\"}", 35, NULL);
        return shoal_runtime_is_ready(rt)
                   ? send_text(s, c, 200, "application/json", "{\"ready\":true}", 14, NULL)
                   : send_text(s, c, 503, "application/json", "{\"ready\":false,\"reason\":\"preloading\"}", 37, NULL);
    case EP_METRICS: return handle_metrics(s, c, rt);
    case EP_INFER: return handle_infer(s, c, rq);
    case EP_MODELS: return handle_models(s, c, rt);
    case EP_MODEL_ACTION: return handle_model_action(s, c, rt, url);
    case EP_BUDGET: return handle_budget(s, c, rq);
    case EP_STREAM: return handle_stream(s, c, rq);
    case EP_COUNT: break;
    }
    return send_error(s, c, 500, "internal error: no handler");
}

/* The request has arrived whole: it is served with the runtime current now, which a reload
 * cannot take away until the answer is queued. */
static enum MHD_Result handle(sh_server *s, struct MHD_Connection *c, const char *url, request *rq)
{
    if (rq->conn)
        sh_conn_set_phase(s->conns, rq->conn, SH_CONN_BUSY);
    rq->gen = gen_acquire(s);
    enum MHD_Result r = dispatch(s, c, url, rq);
    gen_release(rq->gen);
    rq->gen = NULL;
    return r;
}

static endpoint find_endpoint(const char *url)
{
    for (int e = 0; e < EP_COUNT; e++) {
        const endpoint_info *ei = &ENDPOINTS[e];
        if (ei->prefix ? !strncmp(url, ei->path, strlen(ei->path)) && url[strlen(ei->path)] : !strcmp(url, ei->path))
            return (endpoint)e;
    }
    return EP_COUNT;
}

static bool method_allowed(const endpoint_info *ei, const char *method)
{
    return !strcmp(method, ei->method) || (!strcmp(ei->method, "GET") && !strcmp(method, "HEAD"));
}

/* First call for a request: everything that can be decided from the request line and the
 * headers is decided here, so a refused request costs no body reading (a response queued
 * now makes MHD skip the body and close the connection). Returns MHD_YES without a response
 * when the body should be read. */
/* A client's X-Request-Id is echoed when it is 1..64 characters of [A-Za-z0-9._:-] (safe in
 * logs and headers); otherwise the server makes one: the process's random seed and a count. */
static void request_id(sh_server *s, struct MHD_Connection *c, request *rq)
{
    const char *given = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
    size_t n = given ? strlen(given) : 0;
    bool sane = n >= 1 && n < sizeof rq->id;
    for (size_t i = 0; sane && i < n; i++) {
        char ch = given[i];
        sane = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
               ch == '_' || ch == ':' || ch == '-';
    }
    if (sane)
        memcpy(rq->id, given, n + 1);
    else
        snprintf(rq->id, sizeof rq->id, "%016llx-%llu", (unsigned long long)s->id_seed,
                 (unsigned long long)atomic_fetch_add(&s->id_counter, 1));
}

static enum MHD_Result add_header_bytes(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    size_t *total = cls;
    *total += strlen(key) + (value ? strlen(value) : 0) + 4;   /* ": " and CRLF */
    return MHD_YES;
}

/* The gate's stand-in for a request it refused on a kept-alive connection (server/gate.h):
 * the refusal's status and reason come in its headers; the connection closes after it. */
static enum MHD_Result answer_refused(sh_server *s, struct MHD_Connection *c, request *rq)
{
    snprintf(rq->path, sizeof rq->path, "-");
    snprintf(rq->target, sizeof rq->target, "refused-head");
    const char *st = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Shoal-Gate-Status");
    const char *why = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Shoal-Gate-Reason");
    unsigned long code = st ? strtoul(st, NULL, 10) : 400;
    if (code < 400 || code > 599)
        code = 400;
    return send_error_h(s, c, (unsigned)code, why ? why : "bad request", &(extra_header){"Connection", "close"});
}

static enum MHD_Result first_call(sh_server *s, struct MHD_Connection *c, const char *url, const char *method,
                                  request *rq)
{
    rq->t0 = mono_ms();
    request_id(s, c, rq);
    if (!strcmp(url, s->refusal_path))   /* a request the gate refused, answered in its turn */
        return answer_refused(s, c, rq);
    snprintf(rq->path, sizeof rq->path, "%s", url);
    size_t header_bytes = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, add_header_bytes, &header_bytes);
    if (header_bytes > MAX_HEADER_BYTES)
        return send_errorf(s, c, 431, "request headers of %zu bytes exceed the limit of %u bytes", header_bytes,
                           MAX_HEADER_BYTES);
    if (atomic_load(&s->stopping))
        return send_error(s, c, 503, "server is shutting down");
    if (strlen(url) >= MAX_URL)
        return send_error(s, c, 414, "URL too long");
    rq->ep = find_endpoint(url);
    if (rq->ep == EP_COUNT)
        return send_error(s, c, 404, "no such endpoint (see /v1/infer, /v1/models, /v1/budget, /metrics)");
    const endpoint_info *ei = &ENDPOINTS[rq->ep];
    if (!method_allowed(ei, method)) {
        extra_header allow = {MHD_HTTP_HEADER_ALLOW, !strcmp(ei->method, "GET") ? "GET, HEAD" : ei->method};
        return send_error_h(s, c, 405, ei->usage, &allow);
    }
    if (ei->auth && !authorized(s, c))
        return send_error_h(s, c, 401, "missing or wrong bearer token", &(extra_header){"WWW-Authenticate", "Bearer"});
    /* No answer on the first call: libmicrohttpd closes a connection whose answer was queued
     * before the request was wholly received, and keep-alive clients (probes, scrapers)
     * would reconnect each time. The next call, with the request complete, answers it. */
    if (!ei->body)
        return MHD_YES;
    rq->limit = rq->ep == EP_BUDGET ? BUDGET_MAX_BODY : s->p.max_body_bytes;
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long declared = strtoull(cl, &end, 10);
        if (end == cl || *end || errno)
            return send_error(s, c, 400, "bad Content-Length");
        if (declared > rq->limit)
            return send_errorf(s, c, 413, "request body of %llu bytes exceeds the limit of %zu bytes", declared,
                               rq->limit);
        if (declared) {   /* one allocation of the right size */
            rq->body = sh_alloc(s->alloc, (size_t)declared);
            if (!rq->body)
                return send_error_h(s, c, 503, "out of memory", &(extra_header){"Retry-After", "1"});
            rq->cap = (size_t)declared;
        }
    }
    return MHD_YES;
}

static enum MHD_Result take_upload(sh_server *s, request *rq, const char *data, size_t n)
{
    if (rq->too_large) {
        rq->discarded += n;
        return rq->discarded > DISCARD_SLACK ? MHD_NO : MHD_YES;   /* MHD_NO closes the connection */
    }
    size_t need;
    if (!sh_add_size(rq->len, n, &need) || need > rq->limit) {
        rq->too_large = true;
        rq->discarded = n;
        sh_free(s->alloc, rq->body);
        rq->body = NULL;
        rq->len = rq->cap = 0;
        return MHD_YES;
    }
    if (need > rq->cap) {
        size_t nc = sh_grow_cap(rq->cap, need, 65536, rq->limit);
        char *nb = sh_realloc(s->alloc, rq->body, nc);
        if (!nb)
            return MHD_NO;
        rq->body = nb;
        rq->cap = nc;
    }
    memcpy(rq->body + rq->len, data, n);
    rq->len = need;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    sh_server *s = cls;
    request *rq = *con_cls;
    if (!rq) {
        rq = sh_calloc(s->alloc, 1, sizeof *rq);
        if (!rq)
            return MHD_NO;
        *con_cls = rq;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        rq->conn = ci ? ci->socket_context : NULL;
        if (rq->conn)
            sh_conn_set_user(rq->conn, rq);
        snprintf(rq->target, sizeof rq->target, "-");
        atomic_fetch_add(&s->requests_total, 1);
        atomic_fetch_add(&s->in_flight, 1);   /* until on_completed */
        return first_call(s, c, url, method, rq);
    }
    if (*upload_size) {
        enum MHD_Result r = take_upload(s, rq, upload, *upload_size);
        *upload_size = 0;
        return r;
    }
    if (rq->too_large)
        return send_errorf(s, c, 413, "request body exceeds the limit of %zu bytes", rq->limit);
    return handle(s, c, url, rq);
}

/* One line per request: id, endpoint, target, status, milliseconds. A request cut
 * before any answer shows status 0 with the reason. */
static void access_log(sh_server *s, const request *rq, enum MHD_RequestTerminationCode t)
{
    const char *end = t == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "ok"
                      : t == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED ? "idle-timeout"
                      : t == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client-abort"
                      : t == MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN ? "shutdown"
                      : rq->status == 499 ? "client-gone" : "error";
    double ms = mono_ms() - rq->t0;
    const char *ep = rq->ep < EP_COUNT ? ENDPOINTS[rq->ep].path : rq->path;
    char path[64];
    /* The path is the client's text only for unknown endpoints; keep it printable and short. */
    size_t n = 0;
    for (const char *p = ep; *p && n + 1 < sizeof path; p++)
        path[n++] = (*p > ' ' && *p < 0x7f && *p != '"' && *p != '\\') ? *p : '?';
    path[n] = '\0';
    if (s->p.log_json)
        slog(s, SHOAL_LOG_INFO,
             "{\"event\":\"access\",\"request_id\":\"%s\",\"endpoint\":\"%s\",\"target\":\"%s\",\"status\":%u,"
             "\"ms\":%.1f,\"end\":\"%s\"}",
             rq->id, path, rq->target, rq->status, ms, end);
    else
        slog(s, SHOAL_LOG_INFO, "access id=%s endpoint=%s target=%s status=%u ms=%.1f end=%s", rq->id, path,
             rq->target, rq->status, ms, end);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    sh_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fdi = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (!fdi)
            return;
        /* Every connection comes through the gate, which opened its record; a connection
         * libmicrohttpd took some other way would still be counted. */
        *socket_context = sh_conn_claim(s->conns, fdi->connect_fd);
        if (!*socket_context)
            *socket_context = sh_conn_open(s->conns, fdi->connect_fd, ai ? ai->client_addr : NULL);
        if (!*socket_context)
            shutdown(fdi->connect_fd, SHUT_RDWR);   /* out of memory: refuse it */
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        sh_conn_close(s->conns, *socket_context);
        *socket_context = NULL;
    }
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    sh_server *s = cls;
    request *rq = *con_cls;
    if (!rq)
        return;
    if (t == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED)
        slog(s, SHOAL_LOG_INFO, "request %s: dropped a connection idle for %d s in the middle of a request", rq->id,
             s->p.connection_timeout_s);
    access_log(s, rq, t);
    if (rq->conn) {
        sh_conn_set_user(rq->conn, NULL);
        if (rq->status != 101)   /* an upgraded connection is a stream from now on, never a request */
            sh_conn_set_phase(s->conns, rq->conn, SH_CONN_RECEIVING);   /* the next request's deadline */
    }
    sh_free(s->alloc, rq->body);
    sh_free(s->alloc, rq);
    *con_cls = NULL;
    atomic_fetch_sub(&s->in_flight, 1);
}

static int gate_pass(void *user, int fd, const struct sockaddr *addr, socklen_t addr_len)
{
    sh_server *s = user;
    return MHD_add_connection(s->mhd, fd, addr, addr_len) == MHD_YES ? 0 : -1;
}

static void gate_answered(void *user, unsigned status, const char *path, const char *reason, char *id,
                          size_t id_cap)
{
    sh_server *s = user;
    snprintf(id, id_cap, "%016llx-%llu", (unsigned long long)s->id_seed,
             (unsigned long long)atomic_fetch_add(&s->id_counter, 1));
    atomic_fetch_add(&s->requests_total, 1);
    size_t k = 0;
    while (k < N_COUNTED && COUNTED[k] != status)
        k++;
    atomic_fetch_add(&s->responses[k], 1);
    /* a refused head (reason says why), or a health probe the gate answered (reason NULL) */
    const char *end = reason ? "refused-head" : "ok", *q = reason ? "\"" : "";
    if (s->p.log_json)
        slog(s, SHOAL_LOG_INFO,
             "{\"event\":\"access\",\"request_id\":\"%s\",\"endpoint\":\"%s\",\"target\":\"-\",\"status\":%u,"
             "\"ms\":0.0,\"end\":\"%s\"%s%s%s}",
             id, path, status, end, reason ? ",\"reason\":\"" : "", reason ? reason : "", q);
    else
        slog(s, SHOAL_LOG_INFO, "access id=%s endpoint=%s target=- status=%u ms=0.0 end=%s%s%s%s", id, path, status,
             end, reason ? " reason=\"" : "", reason ? reason : "", q);
}

static void server_free(sh_server *s)
{
    sh_allocator *a = s->alloc;
    sh_stream_hub_destroy(s->streams);
    sh_conn_table_destroy(s->conns);
    sh_job_queue_destroy(s->jobs);
    sh_free(a, s->gen);
    pthread_cond_destroy(&s->gen_idle);
    pthread_mutex_destroy(&s->gen_lock);
    sh_free(a, s);
    sh_allocator_destroy(a);
}

int sh_server_start(shoal_runtime_t rt, const sh_server_params *p, sh_server **out, sh_err *err)
{
    *out = NULL;
    const char *listen = p->listen ? p->listen : "127.0.0.1:8080";
    if (p->workers < 1 || p->workers > 64)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "workers must be in 1..64, got %d", p->workers);
    if (p->queue_depth < 1 || p->timeout_ms < 1 || p->max_body_bytes < 1 || p->connection_timeout_s < 1 ||
        p->receive_timeout_s < 1 || p->max_connections < 1 || p->max_connections_per_client < 1 ||
        p->max_pixels < 1 || p->host_limit_bytes < 1 || p->max_streams < 1 || p->stream_max_frame_bytes < 64 ||
        p->stream_idle_timeout_s < 1 || p->stream_heartbeat_s < 1 || p->drain_ms < 0)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                       "queue depth, timeouts, body limit, connection limits, pixel limit, host limit, stream "
                       "limit, heartbeat must be >= 1, stream frame limit >= 64 bytes, drain >= 0");
    if (p->stream_heartbeat_s >= p->stream_idle_timeout_s)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "stream heartbeat (%d s) must be shorter than the idle timeout (%d s)",
                       p->stream_heartbeat_s, p->stream_idle_timeout_s);
    if (p->max_connections > 65535 - MHD_CONNECTION_SLACK)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "max_connections %d is above %d", p->max_connections,
                       65535 - MHD_CONNECTION_SLACK);
    if (p->token && strlen(p->token) >= 256)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "bearer token longer than 255 bytes");
    if (p->default_mode && (strlen(p->default_mode) >= sizeof ((rt_gen *)0)->default_mode ||
                            find_name(p->default_mode, shoal_runtime_mode_count(rt), shoal_runtime_mode_name, rt) < 0))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "default mode '%.64s' is not a mode of the config", p->default_mode);
    sh_allocator *a = sh_allocator_create();
    sh_server *s = a ? sh_calloc(a, 1, sizeof *s) : NULL;
    if (!s) {
        sh_allocator_destroy(a);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory");
    }
    s->alloc = a;
    s->p = *p;
    s->p.token = NULL;   /* copied below; the caller's buffers may go away */
    s->p.listen = NULL;
    s->p.default_mode = NULL;
    if (p->token)
        snprintf(s->token, sizeof s->token, "%s", p->token);
    pthread_mutex_init(&s->gen_lock, NULL);
    pthread_cond_init(&s->gen_idle, NULL);
    if (getrandom(&s->id_seed, sizeof s->id_seed, GRND_NONBLOCK) != (ssize_t)sizeof s->id_seed)
        s->id_seed = (uint64_t)mono_ms() ^ ((uint64_t)getpid() << 32);
    s->gen = gen_new(s, rt, p->default_mode);
    sh_conn_limits lim = {p->max_connections, p->max_connections_per_client, p->receive_timeout_s * 1000};
    s->conns = s->gen ? sh_conn_table_create(a, &lim) : NULL;
    s->jobs = s->conns ? sh_job_queue_create(s->alloc, p->workers, p->queue_depth, p->host_limit_bytes) : NULL;
    if (!s->jobs) {
        server_free(s);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "could not start %d worker threads", p->workers);
    }
    sh_stream_params sp = {
        .max_streams = p->max_streams,
        .max_frame_bytes = p->stream_max_frame_bytes,
        .idle_timeout_s = p->stream_idle_timeout_s,
        .heartbeat_s = p->stream_heartbeat_s,
        .frame_timeout_ms = p->timeout_ms,
        .lanes = p->workers,
        .max_pixels = p->max_pixels,
    };
    sh_stream_runtime srt = {stream_rt_acquire, gen_release, s};
    s->streams = sh_stream_hub_create(a, &sp, s->jobs, &srt, p->log, p->log_user);
    if (!s->streams) {
        server_free(s);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "could not start %d stream dispatcher threads", p->workers);
    }
    int fd = -1;
    bool ipv6 = false;
    int rc = sh_listen_open(listen, &fd, &s->port, &ipv6, err);
    if (rc) {
        server_free(s);
        return rc;
    }
    s->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                                  MHD_USE_NO_LISTEN_SOCKET | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG |
                                  (ipv6 ? MHD_USE_IPv6 : 0),
                              0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->connection_timeout_s,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)(p->max_connections + MHD_CONNECTION_SLACK),
                              MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)MHD_POOL_BYTES,
                              MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_END);
    if (!s->mhd) {
        close(fd);
        server_free(s);
        return sh_errf(err, SHOAL_ERR_IO, "could not start the HTTP server on %s", listen);
    }
    /* The table's caps decide which connections stay; the gate only needs room for those
     * plus the ones just cut (shut down, about to be closed on its next round). */
    /* Not the request ids' seed: every answer shows that. A client that guessed the path
     * could only have its own request answered with an error it chose. */
    uint64_t key[2] = {(uint64_t)mono_ms(), (uint64_t)(uintptr_t)s};
    if (getrandom(key, sizeof key, GRND_NONBLOCK) != (ssize_t)sizeof key)
        key[1] ^= s->id_seed * 0x9e3779b97f4a7c15ull;
    snprintf(s->refusal_path, sizeof s->refusal_path, "/.gate-refused-%016llx%016llx", (unsigned long long)key[0],
             (unsigned long long)key[1]);
    sh_gate_params gp = {
        .listen_fd = fd,
        .conns = s->conns,
        .max_pending = p->max_connections + MHD_CONNECTION_SLACK,
        .max_chunk = p->max_body_bytes,
        .refusal_path = s->refusal_path,
        .pass = gate_pass,
        .answered = gate_answered,
        .user = s,
    };
    rc = sh_gate_start(a, &gp, &s->gate, err);
    if (rc) {
        MHD_stop_daemon(s->mhd);
        server_free(s);
        return rc;
    }
    *out = s;
    return SHOAL_OK;
}

int sh_server_port(const sh_server *s)
{
    return s->port;
}

void sh_server_stop(sh_server *s)
{
    if (!s)
        return;
    /* 0. Out of a load balancer's rotation first: /readyz says no while everything else is
     * served as usual, so its health check moves new clients elsewhere before anything closes. */
    if (s->p.drain_ms > 0) {
        atomic_store(&s->draining, true);
        slog(s, SHOAL_LOG_INFO, "draining: /readyz answers 503 for %d ms before stopping", s->p.drain_ms);
        nanosleep(&(struct timespec){s->p.drain_ms / 1000, (long)(s->p.drain_ms % 1000) * 1000000L}, NULL);
    }
    /* 1. Stop accepting: the listening socket goes away, new connections are refused; streams
     * are told to go away (their clients reconnect to another server). */
    atomic_store(&s->stopping, true);
    sh_stream_hub_close_all(s->streams);
    sh_gate_close_listener(s->gate);
    /* 2. Let requests already started finish and their answers go out. MHD_stop_daemon
     * shuts every socket down before joining the connection threads, so calling it now would
     * cut the answers of requests still running. A client that trickles its request is
     * bounded by the receive deadline, a running job by the request timeout. */
    double deadline = mono_ms() + s->p.timeout_ms + 1000.0 * s->p.receive_timeout_s + 1000.0;
    long left;
    while ((left = atomic_load(&s->in_flight)) > 0 && mono_ms() < deadline)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    if (left > 0)
        slog(s, SHOAL_LOG_WARN, "stopping with %ld request(s) still in flight after the grace period", left);
    /* 3. Streams end within a reader tick once their frame in flight is answered; libmicrohttpd
     * must not stop while an upgraded socket is still open. Then close idle keep-alive
     * connections, join their threads, then the workers. */
    sh_stream_hub_destroy(s->streams);
    s->streams = NULL;
    sh_gate_stop(s->gate);
    MHD_stop_daemon(s->mhd);
    server_free(s);
}
