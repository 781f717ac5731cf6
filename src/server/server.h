/* HTTP inference server over libmicrohttpd.
 *
 * Concurrency: libmicrohttpd runs one thread per connection (bounded by max_connections);
 * a request that needs inference becomes a job in a bounded queue served by `workers`
 * threads, each of which is one execution context of the runtime (its own activation
 * arena, charged to the budget when the runtime was created with contexts = workers). A
 * full queue answers 429 with Retry-After instead of growing; a job not done within the
 * timeout answers 504 (a worker that has not started it yet skips it).
 *
 * Everything a request can send is checked before any work is done for it, in this order:
 * URL length (414), endpoint (404), method (405, with Allow), bearer token (401), declared
 * body size (413, answered before the body is read), query parameters (400), names (only
 * the config's model and mode names; 404 otherwise; a name is never a path), body (400).
 * Every error is a JSON body {"error": {"code": N, "message": "..."}} (431 for headers over
 * 16 KiB included), except for requests libmicrohttpd itself cannot parse (a malformed request
 * line or Content-Length, a request head beyond its 64 KiB pool), which get its own short
 * HTML answer before any of shoal's code sees them. Every response carries
 * X-Request-Id: the client's when it sent a sane one, else a new one; the access log line
 * (one per request, at info level) carries the same id.
 *
 * Memory held by requests is bounded: at most max_connections bodies of max_body_bytes
 * each, and decoded frames within host_limit_bytes: a request charges the bytes its decode
 * needs (read from the image's header, before decoding) and its frame keeps its share
 * charged until the frame is freed; over the limit the request gets 429, and an image of
 * more than max_pixels gets 413 however idle the server is.
 *
 * Slow clients: see conns.h (a total deadline per request, per-client and global caps that
 * cut requests still arriving rather than refuse new clients).
 *
 * Streams: GET /v1/stream[?client=ID][&mode=NAME] upgrades to a WebSocket of camera frames
 * (stream.h: the frame header, latest-frame-wins slots, round-robin over the workers). The
 * upgrade passes the same checks as any request (token, caps); streams over max_streams get
 * 503 before the upgrade.
 *
 * Draining: sh_server_stop first answers /readyz with 503 for drain_ms while serving as usual
 * (a load balancer's health check takes the server out of rotation), then closes the streams
 * (1001, going away: clients reconnect elsewhere) and finishes the requests in flight.
 *
 * Endpoints: POST /v1/infer?mode=NAME | ?model=NAME [&width=W&height=H for raw RGB],
 * GET /v1/models, POST /v1/models/{name}/load | /unload, PUT /v1/budget {"bytes": N},
 * GET /v1/stream, GET /metrics, GET /healthz, GET /readyz. */
#ifndef SHOAL_SERVER_H
#define SHOAL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "shoal.h"

typedef struct sh_server_params {
    const char *listen;         /* "127.0.0.1:8080", "[::1]:8080", "[::]:8080"; port 0 picks a
                                   free port. An address already in use is an error. */
    int workers;                /* inference threads = runtime execution contexts */
    int queue_depth;            /* jobs waiting beyond the workers before 429 */
    int timeout_ms;             /* per inference request, from queueing to the result */
    size_t max_body_bytes;      /* larger bodies get 413 */
    int connection_timeout_s;   /* idle/slow clients are dropped after this many idle seconds */
    int receive_timeout_s;      /* a request's headers and body must arrive within this */
    int max_connections;        /* concurrent connections (one thread each) */
    int max_connections_per_client;   /* per client address */
    int64_t max_pixels;         /* largest image (width x height) accepted, 413 above */
    size_t host_limit_bytes;    /* decodes in progress + decoded frames, 429 above */
    int max_streams;            /* open /v1/stream WebSockets; 503 above */
    size_t stream_max_frame_bytes;   /* one stream message (header + image); larger closes (1009) */
    int stream_idle_timeout_s;  /* a stream silent this long is closed */
    int stream_heartbeat_s;     /* a stream silent this long is pinged */
    int drain_ms;               /* on stop, /readyz answers 503 this long before anything closes */
    const char *default_mode;   /* /v1/infer without mode= or model= runs it; NULL = required */
    bool log_json;              /* access log lines as JSON objects */
    const char *token;          /* bearer token, copied; NULL or "" = no auth */
    shoal_log_fn log;
    void *log_user;
} sh_server_params;

sh_server_params sh_server_default_params(void);

typedef struct sh_server sh_server;

/* Starts listening. The runtime must outlive the server and should have been created with
 * contexts >= p->workers (a worker without a free context waits for one). On failure *out is
 * NULL, nothing is left running and err says why. */
int sh_server_start(shoal_runtime_t rt, const sh_server_params *p, sh_server **out, sh_err *err);
int sh_server_port(const sh_server *s);
/* Serves new requests with `rt` from now on (and `default_mode`, copied; NULL = none).
 * Requests and jobs already holding the old runtime finish on it; once the last of them is
 * done the old runtime is returned in *old (the caller destroys it). Nothing is dropped.
 * SHOAL_ERR_NO_MEMORY: nothing changed, *old is NULL and rt is still the caller's. */
int sh_server_swap_runtime(sh_server *s, shoal_runtime_t rt, const char *default_mode, shoal_runtime_t *old);
/* Graceful stop: stops accepting connections, answers new requests on open connections with
 * 503, lets in-flight requests finish (bounded by the request and connection timeouts),
 * then closes every connection, joins the workers and frees everything. Accepts NULL. */
void sh_server_stop(sh_server *s);

#endif
