/* The gate between the listening socket and libmicrohttpd: it accepts connections, waits
 * for each connection's first request head without reading it (MSG_PEEK), checks it
 * (server/head.h), and only then hands the connection to libmicrohttpd, which reads the same
 * bytes again. Later requests on a kept-alive connection go to libmicrohttpd unchecked. A head that
 * would get one of libmicrohttpd's HTML error pages is answered here instead, in JSON, and the
 * connection closes once the client has stopped sending (so the answer is not lost to a
 * reset). One thread polls every connection whose head has not arrived yet; it keeps no
 * copy of any head, a connection costs a table slot until it is handed over.
 *
 * Connections are registered in the connection table (server/conns.h) when accepted, so
 * the caps and the receive deadline cover the head's arrival too; the table's reaper cuts a
 * slow head like any slow request. A connection keeps its record when handed over: the
 * server claims it by socket with sh_conn_claim. */
#ifndef SHOAL_SERVER_GATE_H
#define SHOAL_SERVER_GATE_H

#include <stddef.h>
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
     * (which cut the oldest slow head to let a new connection in) only act on accepted ones. */
    int max_pending;
    /* A connection whose head passed. Returns 0 when the connection was taken; otherwise
     * the socket has been closed by the callee (libmicrohttpd closes it on failure). */
    int (*pass)(void *user, int fd, const struct sockaddr *addr, socklen_t addr_len);
    /* A head refused with `status`: fills `id` (the X-Request-Id of the answer), counts and
     * logs it. Called on the gate's thread. */
    void (*refused)(void *user, unsigned status, const char *reason, char *id, size_t id_cap);
    void *user;
} sh_gate_params;

/* Starts the gate's thread. On failure nothing is left running and listen_fd is closed. */
int sh_gate_start(sh_allocator *a, const sh_gate_params *p, sh_gate **out, sh_err *err);
/* Stops accepting: the listening socket closes, new connections are refused by the kernel.
 * Heads already arriving are still checked and handed over. */
void sh_gate_close_listener(sh_gate *g);
/* Stops the thread and closes every connection still waiting for its head. Accepts NULL. */
void sh_gate_stop(sh_gate *g);

#endif
