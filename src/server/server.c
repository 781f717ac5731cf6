#include "server/server.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/jobs.h"

#define MAX_URL 256

struct sh_server {
    sh_allocator *alloc;
    shoal_runtime_t rt;
    sh_server_params p;
    char token[256];
    struct MHD_Daemon *mhd;
    sh_job_queue *jobs;
    int port;
    pthread_mutex_t lock;
    /* request counters by status class, exported on /metrics */
    atomic_ulong requests_total, responses_2xx, responses_4xx, responses_429, responses_5xx;
    atomic_ulong in_flight;
};

/* Per-connection state across libmicrohttpd's repeated calls for one request. */
typedef struct request {
    char *body;
    size_t len, cap;
    bool too_large;
} request;

sh_server_params sh_server_default_params(void)
{
    sh_server_params p = {
        .listen = "127.0.0.1:8080",
        .workers = 2,
        .queue_depth = 16,
        .timeout_ms = 10000,
        .max_body_bytes = 8u << 20,
        .connection_timeout_s = 10,
        .max_connections = 256,
    };
    return p;
}

/* --- responses ------------------------------------------------------------------- */

static enum MHD_Result send_text(sh_server *s, struct MHD_Connection *c, unsigned code, const char *type,
                                 const char *text, size_t len, const char *retry_after)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    if (code < 300)
        s->responses_2xx++;
    else if (code == 429)
        s->responses_429++;
    else if (code < 500)
        s->responses_4xx++;
    else
        s->responses_5xx++;
    return ok;
}

static enum MHD_Result send_json(sh_server *s, struct MHD_Connection *c, unsigned code, cJSON *obj)
{
    char *text = cJSON_PrintUnformatted(obj);
    cJSON_Delete(obj);
    if (!text)
        return send_text(s, c, 500, "application/json", "{\"error\":{\"code\":500}}", 23, NULL);
    enum MHD_Result ok = send_text(s, c, code, "application/json", text, strlen(text), NULL);
    cJSON_free(text);
    return ok;
}

static enum MHD_Result send_error(sh_server *s, struct MHD_Connection *c, unsigned code, const char *msg,
                                  const char *retry_after)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddNumberToObject(e, "code", code);
    cJSON_AddStringToObject(e, "message", msg);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    enum MHD_Result ok = send_text(s, c, code, "application/json", text ? text : "{}", text ? strlen(text) : 2,
                                   retry_after);
    cJSON_free(text);
    return ok;
}

static unsigned http_code(int status)
{
    switch (status) {
    case SHOAL_OK: return 200;
    case SHOAL_ERR_INVALID_ARG: case SHOAL_ERR_PARSE: case SHOAL_ERR_SHAPE: return 400;
    case SHOAL_ERR_NOT_FOUND: return 404;
    case SHOAL_ERR_UNSUPPORTED: return 422;
    case SHOAL_ERR_BUSY: return 429;
    case SHOAL_ERR_BUDGET: case SHOAL_ERR_NO_MEMORY: return 507;
    case SHOAL_ERR_TIMEOUT: return 504;
    case SHOAL_ERR_STATE: return 409;
    default: return 500;
    }
}

/* --- handlers ---------------------------------------------------------------------- */

static bool authorized(sh_server *s, struct MHD_Connection *c)
{
    if (!s->token[0])
        return true;
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    size_t n = strlen(s->token);
    if (strlen(h) != n)
        return false;
    unsigned diff = 0;   /* constant time in the token's length */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)h[i] ^ (unsigned char)s->token[i];
    return diff == 0;
}

static bool valid_name(const char *name)
{
    if (!name || !*name || strlen(name) >= 128)
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_' ||
              *p == '-' || *p == '.'))
            return false;
    return true;
}

static bool parse_dim(const char *v, int *out)
{
    if (!v || !*v)
        return false;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (*end || errno || x <= 0 || x > 16384)
        return false;
    *out = (int)x;
    return true;
}

static enum MHD_Result handle_infer(sh_server *s, struct MHD_Connection *c, request *rq)
{
    const char *mode = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "mode");
    const char *model = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "model");
    if ((mode && model) || (!mode && !model))
        return send_error(s, c, 400, "give exactly one of ?mode=NAME or ?model=NAME", NULL);
    const char *target = mode ? mode : model;
    if (!valid_name(target))
        return send_error(s, c, 400, "mode/model names are letters, digits, '_', '-', '.'", NULL);
    if (!rq->len)
        return send_error(s, c, 400, "empty body: send a JPEG/PNG image, or raw RGB with ?width=&height=", NULL);

    sh_job *job = sh_job_new(s->jobs);
    if (!job)
        return send_error(s, c, 503, "out of memory", NULL);
    snprintf(job->target, sizeof job->target, "%s", target);
    job->is_model = model != NULL;
    const char *w = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "width");
    const char *h = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "height");
    char err[256] = "";
    int rc;
    if (w || h) {
        int iw, ih;
        if (!parse_dim(w, &iw) || !parse_dim(h, &ih)) {
            sh_job_release(s->jobs, job);
            return send_error(s, c, 400, "width and height must both be integers in 1..16384", NULL);
        }
        if ((size_t)iw * (size_t)ih * 3 != rq->len) {
            snprintf(err, sizeof err, "raw RGB body is %zu bytes but %dx%dx3 = %zu", rq->len, iw, ih,
                     (size_t)iw * ih * 3);
            sh_job_release(s->jobs, job);
            return send_error(s, c, 400, err, NULL);
        }
        uint8_t *copy = malloc(rq->len);
        if (!copy) {
            sh_job_release(s->jobs, job);
            return send_error(s, c, 503, "out of memory", NULL);
        }
        memcpy(copy, rq->body, rq->len);
        job->frame = shoal_image_wrap(copy, iw, ih);
        job->frame.owned = 1;
        rc = SHOAL_OK;
    } else {
        rc = shoal_image_decode(rq->body, rq->len, &job->frame, err, sizeof err);
    }
    if (rc != SHOAL_OK) {
        sh_job_release(s->jobs, job);
        char msg[320];
        snprintf(msg, sizeof msg, "bad image: %s", err);
        return send_error(s, c, 400, msg, NULL);
    }
    rc = sh_job_submit(s->jobs, job);
    if (rc == SHOAL_ERR_BUSY) {
        sh_job_release(s->jobs, job);
        return send_error(s, c, 429, "inference queue full, retry later", "1");
    }
    if (rc != SHOAL_OK) {
        sh_job_release(s->jobs, job);
        return send_error(s, c, 503, "server is shutting down", NULL);
    }
    if (!sh_job_wait(s->jobs, job, s->p.timeout_ms)) {
        sh_job_release(s->jobs, job);
        return send_error(s, c, 504, "inference did not finish within the request timeout", NULL);
    }
    enum MHD_Result ok;
    if (job->status != SHOAL_OK) {
        ok = send_error(s, c, http_code(job->status), job->error, NULL);
    } else {
        cJSON *o = cJSON_Parse(job->json);
        if (!o) {
            ok = send_error(s, c, 500, "internal error formatting results", NULL);
        } else {
            cJSON *t = cJSON_AddObjectToObject(o, "server");
            cJSON_AddNumberToObject(t, "queue_ms", job->queue_ms);
            cJSON_AddNumberToObject(t, "run_ms", job->run_ms);
            ok = send_json(s, c, 200, o);
        }
    }
    sh_job_release(s->jobs, job);
    return ok;
}

static const char *state_name(shoal_model_state st)
{
    return st == SHOAL_MODEL_RESIDENT ? "resident" : st == SHOAL_MODEL_CACHED ? "cached" : "unloaded";
}

static enum MHD_Result handle_models(sh_server *s, struct MHD_Connection *c)
{
    shoal_stats st;
    if (shoal_runtime_get_stats(s->rt, &st) != SHOAL_OK)
        return send_error(s, c, 500, shoal_runtime_last_error(s->rt), NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(o, "models");
    for (int i = 0; i < st.n_models; i++) {
        const shoal_model_stats *m = &st.models[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", m->name);
        cJSON_AddStringToObject(j, "state", state_name(m->state));
        cJSON_AddBoolToObject(j, "pinned", m->pinned);
        cJSON_AddNumberToObject(j, "weight_bytes", (double)m->weight_bytes);
        cJSON_AddNumberToObject(j, "weight_unique_bytes", (double)m->weight_unique_bytes);
        cJSON_AddNumberToObject(j, "weight_shared_bytes", (double)m->weight_shared_bytes);
        cJSON_AddNumberToObject(j, "plan_bytes", (double)m->plan_bytes);
        cJSON_AddNumberToObject(j, "host_cache_bytes", (double)m->host_cache_bytes);
        cJSON_AddNumberToObject(j, "last_use_s", m->last_use_s);
        cJSON_AddNumberToObject(j, "loads", (double)m->loads);
        cJSON_AddNumberToObject(j, "evictions", (double)m->evictions);
        cJSON_AddNumberToObject(j, "runs", (double)m->runs);
        cJSON_AddItemToArray(arr, j);
    }
    if (st.n_devices > 0) {
        cJSON *d = cJSON_AddObjectToObject(o, "device");
        cJSON_AddStringToObject(d, "name", st.devices[0].name);
        cJSON_AddNumberToObject(d, "budget_bytes", (double)st.devices[0].budget_bytes);
        cJSON_AddNumberToObject(d, "in_use_bytes", (double)st.devices[0].in_use_bytes);
        cJSON_AddNumberToObject(d, "peak_bytes", (double)st.devices[0].peak_bytes);
    }
    shoal_stats_free(&st);
    return send_json(s, c, 200, o);
}

static enum MHD_Result handle_model_action(sh_server *s, struct MHD_Connection *c, const char *url)
{
    /* /v1/models/{name}/load|unload */
    const char *rest = url + strlen("/v1/models/");
    const char *slash = strchr(rest, '/');
    if (!slash)
        return send_error(s, c, 404, "use POST /v1/models/{name}/load or /unload", NULL);
    char name[128];
    size_t n = (size_t)(slash - rest);
    if (n == 0 || n >= sizeof name)
        return send_error(s, c, 400, "bad model name", NULL);
    memcpy(name, rest, n);
    name[n] = '\0';
    if (!valid_name(name))
        return send_error(s, c, 400, "bad model name", NULL);
    const char *action = slash + 1;
    int rc;
    if (!strcmp(action, "load"))
        rc = shoal_runtime_load_model(s->rt, name);
    else if (!strcmp(action, "unload"))
        rc = shoal_runtime_unload_model(s->rt, name);
    else
        return send_error(s, c, 404, "unknown action: use load or unload", NULL);
    if (rc != SHOAL_OK)
        return send_error(s, c, http_code(rc), shoal_runtime_last_error(s->rt), NULL);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", name);
    cJSON_AddStringToObject(o, "action", action);
    cJSON_AddStringToObject(o, "result", "ok");
    return send_json(s, c, 200, o);
}

static enum MHD_Result handle_budget(sh_server *s, struct MHD_Connection *c, request *rq)
{
    if (!rq->len)
        return send_error(s, c, 400, "body must be JSON {\"bytes\": N}", NULL);
    cJSON *o = cJSON_ParseWithLength(rq->body, rq->len);
    cJSON *b = o ? cJSON_GetObjectItemCaseSensitive(o, "bytes") : NULL;
    if (!cJSON_IsNumber(b) || b->valuedouble < 0 || b->valuedouble > 9.0e18) {
        cJSON_Delete(o);
        return send_error(s, c, 400, "body must be JSON {\"bytes\": N} with N >= 0 (0 = unlimited)", NULL);
    }
    int64_t bytes = (int64_t)b->valuedouble;
    cJSON_Delete(o);
    int rc = shoal_runtime_set_budget(s->rt, bytes);
    if (rc != SHOAL_OK)
        return send_error(s, c, http_code(rc), shoal_runtime_last_error(s->rt), NULL);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddNumberToObject(r, "budget_bytes", (double)bytes);
    return send_json(s, c, 200, r);
}

static enum MHD_Result handle_metrics(sh_server *s, struct MHD_Connection *c)
{
    char *text = shoal_runtime_prometheus(s->rt);
    if (!text)
        return send_error(s, c, 500, "could not format metrics", NULL);
    char extra[1024];
    int n = snprintf(extra, sizeof extra,
                     "# HELP shoal_http_requests_total HTTP requests received.\n"
                     "# TYPE shoal_http_requests_total counter\n"
                     "shoal_http_requests_total %lu\n"
                     "# HELP shoal_http_responses_total HTTP responses by status class.\n"
                     "# TYPE shoal_http_responses_total counter\n"
                     "shoal_http_responses_total{class=\"2xx\"} %lu\n"
                     "shoal_http_responses_total{class=\"429\"} %lu\n"
                     "shoal_http_responses_total{class=\"4xx\"} %lu\n"
                     "shoal_http_responses_total{class=\"5xx\"} %lu\n"
                     "# HELP shoal_http_queue_depth Inference jobs waiting for a worker.\n"
                     "# TYPE shoal_http_queue_depth gauge\n"
                     "shoal_http_queue_depth %d\n",
                     (unsigned long)s->requests_total, (unsigned long)s->responses_2xx,
                     (unsigned long)s->responses_429, (unsigned long)s->responses_4xx,
                     (unsigned long)s->responses_5xx, sh_job_queue_depth(s->jobs));
    size_t tl = strlen(text);
    char *all = sh_alloc(s->alloc, tl + (size_t)n + 1);
    if (!all) {
        shoal_free_string(text);
        return send_error(s, c, 500, "out of memory", NULL);
    }
    memcpy(all, text, tl);
    memcpy(all + tl, extra, (size_t)n + 1);
    shoal_free_string(text);
    enum MHD_Result ok = send_text(s, c, 200, "text/plain; version=0.0.4", all, tl + (size_t)n, NULL);
    sh_free(s->alloc, all);
    return ok;
}

static enum MHD_Result route(sh_server *s, struct MHD_Connection *c, const char *method, const char *url,
                             request *rq)
{
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
    if (!strcmp(url, "/healthz"))
        return get ? send_text(s, c, 200, "application/json", "{\"status\":\"ok\"}", 15, NULL)
                   : send_error(s, c, 405, "use GET", NULL);
    if (!strcmp(url, "/readyz")) {
        if (!get)
            return send_error(s, c, 405, "use GET", NULL);
        return shoal_runtime_is_ready(s->rt)
                   ? send_text(s, c, 200, "application/json", "{\"ready\":true}", 14, NULL)
                   : send_text(s, c, 503, "application/json", "{\"ready\":false}", 15, NULL);
    }
    if (!authorized(s, c))
        return send_error(s, c, 401, "missing or wrong bearer token", NULL);
    if (rq->too_large) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body exceeds the limit of %zu bytes", s->p.max_body_bytes);
        return send_error(s, c, 413, msg, NULL);
    }
    if (!strcmp(url, "/metrics"))
        return get ? handle_metrics(s, c) : send_error(s, c, 405, "use GET", NULL);
    if (!strcmp(url, "/v1/infer"))
        return post ? handle_infer(s, c, rq) : send_error(s, c, 405, "use POST with an image body", NULL);
    if (!strcmp(url, "/v1/models"))
        return get ? handle_models(s, c) : send_error(s, c, 405, "use GET", NULL);
    if (!strncmp(url, "/v1/models/", 11))
        return post ? handle_model_action(s, c, url) : send_error(s, c, 405, "use POST", NULL);
    if (!strcmp(url, "/v1/budget"))
        return put ? handle_budget(s, c, rq) : send_error(s, c, 405, "use PUT with {\"bytes\": N}", NULL);
    return send_error(s, c, 404, "no such endpoint", NULL);
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
        s->requests_total++;
        /* Refuse early when the declared length is over the limit. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > s->p.max_body_bytes)
            rq->too_large = true;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!rq->too_large) {
            if (rq->len + *upload_size > s->p.max_body_bytes) {
                rq->too_large = true;
                sh_free(s->alloc, rq->body);
                rq->body = NULL;
                rq->len = rq->cap = 0;
            } else {
                if (rq->len + *upload_size > rq->cap) {
                    size_t nc = rq->cap ? rq->cap * 2 : 65536;
                    while (nc < rq->len + *upload_size)
                        nc *= 2;
                    char *nb = sh_realloc(s->alloc, rq->body, nc);
                    if (!nb)
                        return MHD_NO;
                    rq->body = nb;
                    rq->cap = nc;
                }
                memcpy(rq->body + rq->len, upload, *upload_size);
                rq->len += *upload_size;
            }
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (strlen(url) >= MAX_URL)
        return send_error(s, c, 414, "URL too long", NULL);
    s->in_flight++;
    enum MHD_Result r = route(s, c, method, url, rq);
    s->in_flight--;
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
    sh_server *s = cls;
    request *rq = *con_cls;
    if (rq) {
        sh_free(s->alloc, rq->body);
        sh_free(s->alloc, rq);
        *con_cls = NULL;
    }
}

static int parse_listen(const char *listen, struct sockaddr_in *sa, sh_err *err)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    if (!colon || (size_t)(colon - listen) >= sizeof host)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "--listen '%s': expected HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "--listen '%s': bad port", listen);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "--listen '%s': '%s' is not an IPv4 address", listen, host);
    return 0;
}

int sh_server_start(shoal_runtime_t rt, const sh_server_params *p, sh_server **out, sh_err *err)
{
    *out = NULL;
    struct sockaddr_in sa;
    int rc = parse_listen(p->listen ? p->listen : "127.0.0.1:8080", &sa, err);
    if (rc)
        return rc;
    if (p->workers < 1 || p->workers > 64)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "workers must be in 1..64, got %d", p->workers);
    sh_server *s = calloc(1, sizeof *s);
    if (!s)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory");
    s->rt = rt;
    s->p = *p;
    if (p->token)
        snprintf(s->token, sizeof s->token, "%s", p->token);
    s->alloc = sh_allocator_create();
    s->jobs = s->alloc ? sh_job_queue_create(s->alloc, rt, p->workers, p->queue_depth) : NULL;
    if (!s->jobs) {
        sh_allocator_destroy(s->alloc);
        free(s);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "could not start %d worker threads", p->workers);
    }
    s->mhd = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)p->connection_timeout_s,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)p->max_connections,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->mhd) {
        sh_job_queue_destroy(s->jobs);
        sh_allocator_destroy(s->alloc);
        free(s);
        return sh_errf(err, SHOAL_ERR_IO, "could not listen on %s (address in use or not permitted)", p->listen);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : ntohs(sa.sin_port);
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
    /* Stop accepting first; MHD_stop_daemon then waits for connection threads, which
     * in turn wait for their jobs, so in-flight requests complete. */
    MHD_socket fd = MHD_quiesce_daemon(s->mhd);
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    MHD_stop_daemon(s->mhd);
    sh_job_queue_destroy(s->jobs);
    sh_allocator_destroy(s->alloc);
    free(s);
}
