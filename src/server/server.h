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
 * Every error is a JSON body {"error": {"code": N, "message": "..."}}.
 *
 * Memory held by requests is bounded: at most max_connections bodies of max_body_bytes
 * each, and queue_depth + workers decoded frames.
 *
 * Endpoints: POST /v1/infer?mode=NAME | ?model=NAME [&width=W&height=H for raw RGB],
 * GET /v1/models, POST /v1/models/{name}/load | /unload, PUT /v1/budget {"bytes": N},
 * GET /metrics, GET /healthz, GET /readyz. */
#ifndef SHOAL_SERVER_H
#define SHOAL_SERVER_H

#include <stddef.h>

#include "core/error.h"
#include "shoal.h"

typedef struct sh_server_params {
    const char *listen;         /* "127.0.0.1:8080"; port 0 picks a free port */
    int workers;                /* inference threads = runtime execution contexts */
    int queue_depth;            /* jobs waiting beyond the workers before 429 */
    int timeout_ms;             /* per inference request, from queueing to the result */
    size_t max_body_bytes;      /* larger bodies get 413 */
    int connection_timeout_s;   /* idle/slow clients are dropped after this many idle seconds */
    int max_connections;        /* concurrent connections (one thread each) */
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
/* Graceful stop: stops accepting connections, answers new requests on open connections with
 * 503, lets in-flight requests finish (bounded by the request and connection timeouts),
 * then closes every connection, joins the workers and frees everything. Accepts NULL. */
void sh_server_stop(sh_server *s);

#endif
