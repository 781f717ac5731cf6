/* The gate between the listening socket and libmicrohttpd. libmicrohttpd answers whatever it
 * cannot parse (a malformed head, a bad chunk) with its own HTML pages and offers no hook to
 * change them, so no byte a client sends reaches it unchecked:
 *  - The gate accepts connections and waits for each one's first request head without reading
 *    it (MSG_PEEK), checks it (server/head.h) and answers a bad one itself in JSON.
 *  - A good first head hands the connection over. A WebSocket upgrade goes to libmicrohttpd on
 *    the client's own socket (the stream after it is not HTTP). Any other connection is
 *    relayed: libmicrohttpd gets one end of a socket pair, the gate keeps the client's socket
 *    and the other end, and copies both ways, running every byte the client sends through the
 *    stream check (server/framing.h) before passing it on. The copy goes from one socket's
 *    queue to the other's: the gate peeks, sends what the other side takes, and only then
 *    consumes that much, so it holds no buffer per connection.
 *  - A bad later head on a relayed connection is never passed on; in its place the gate passes
 *    a request of its own to the refusal path (`refusal_path`, with the status and reason in
 *    headers), so the server answers it in JSON after the requests before it, in order, and
 *    closes. A bad chunk (the request's body half passed on already) ends the stream towards
 *    libmicrohttpd, which drops that request; the gate then answers it in JSON itself.
 *  - GET or HEAD /healthz as a connection's first request (a head of at most 2 KiB without an
 *    X-Request-Id, as probes send) is answered by the gate at once: a probe never waits for a
 *    connection thread, however many slow clients hold the others.
 * A connection the gate answered closes once the client has stopped sending (so the answer
 * is not lost to a reset).
 *
 * Connections are registered in the connection table (server/conns.h) when accepted, so the
 * caps and the receive deadline cover the head's arrival too. A connection keeps its record
 * when handed over (a relayed one under libmicrohttpd's socket): the server claims it by
 * socket with sh_conn_claim. */
#ifndef SHOAL_SERVER_GATE_H
#define SHOAL_SERVER_GATE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/alloc.h"
#include "core/error.h"
#include "server/conns.h"

typedef struct sh_gate sh_gate;

typedef struct sh_gate_params {
    int listen_fd;        /* listening socket; the gate closes it */
    sh_conn_table *conns;
    /* Connections waiting for their head at once; more wait in the kernel's backlog. Keep it
     * above the table's max_connections: a full gate stops accepting, and the table's caps
     * (which cut the oldest slow head to let a new connection in) only act on accepted ones.
     * Relayed connections take slots of their own, as many again. */
    int max_pending;
    /* A chunk larger than this is refused (413): the server's body limit. */
    uint64_t max_chunk;
    /* The path of the gate's own requests that stand for a refused one (see above): random
     * per process, so that no client can send one. Must start with '/'. */
    const char *refusal_path;
    /* A connection whose head passed, on socket fd (the client's, or libmicrohttpd's end of a
     * relay). Returns 0 when the connection was taken; otherwise the socket has been closed
     * by the callee (libmicrohttpd closes it on failure). */
    int (*pass)(void *user, int fd, const struct sockaddr *addr, socklen_t addr_len);
    /* The gate answered a request itself with `status`: a refused one (`reason` says why) or a
     * health probe (`endpoint` "/healthz", reason NULL). Fills `id` (the X-Request-Id of the
     * answer), counts and logs it. Called on the gate's thread. */
    void (*answered)(void *user, unsigned status, const char *endpoint, const char *reason, char *id,
                     size_t id_cap);
    void *user;
} sh_gate_params;

/* Starts the gate's thread. On failure nothing is left running and listen_fd is closed. */
int sh_gate_start(sh_allocator *a, const sh_gate_params *p, sh_gate **out, sh_err *err);
/* Stops accepting: the listening socket closes, new connections are refused by the kernel.
 * Heads already arriving are still checked and handed over, relays keep copying. */
void sh_gate_close_listener(sh_gate *g);
/* Stops the thread and closes every connection it still holds (waiting for a head, relayed,
 * or answered). Accepts NULL. */
void sh_gate_stop(sh_gate *g);

#endif
