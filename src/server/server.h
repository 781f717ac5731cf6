/* HTTP inference server over libmicrohttpd.
 *
 * Concurrency: libmicrohttpd runs one thread per connection (bounded by a connection
 * limit); a request that needs inference becomes a job in a bounded queue served by
 * `workers` threads, each of which is one execution context of the runtime (its own
 * activation arena). A full queue answers 429 with Retry-After instead of growing; a job
 * not done within the timeout answers 504 (the worker finishes it and drops the result). */
#ifndef SHOAL_SERVER_H
#define SHOAL_SERVER_H

#include <stddef.h>

#include "core/error.h"
#include "shoal.h"

typedef struct sh_server_params {
    const char *listen;         /* "127.0.0.1:8080"; port 0 picks a free port */
    int workers;                /* inference threads = runtime execution contexts */
    int queue_depth;            /* jobs waiting beyond the workers before 429 */
    int timeout_ms;             /* per inference request */
    size_t max_body_bytes;      /* larger bodies get 413 */
    int connection_timeout_s;   /* idle/slow clients are dropped after this */
    int max_connections;
    const char *token;          /* bearer token; NULL = no auth */
    shoal_log_fn log;
    void *log_user;
} sh_server_params;

sh_server_params sh_server_default_params(void);

typedef struct sh_server sh_server;

/* Starts listening. The runtime must outlive the server. */
int sh_server_start(shoal_runtime_t rt, const sh_server_params *p, sh_server **out, sh_err *err);
int sh_server_port(const sh_server *s);
/* Graceful stop: no new connections, in-flight requests finish, workers join, all freed. */
void sh_server_stop(sh_server *s);

#endif
