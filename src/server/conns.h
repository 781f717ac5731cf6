/* The server's table of open connections, which keeps slow and greedy clients from taking
 * the server away from everyone else.
 *
 * libmicrohttpd only knows an idle timeout: a client that sends one byte every few seconds
 * never goes idle and holds its connection (and thread) forever, and once max_connections
 * such clients are in, nobody else - health probes included - gets through. So the table:
 *  - gives every request a total deadline for its headers and body (receive_timeout_ms,
 *    counted from the moment the connection is ready for a request), enforced by a reaper
 *    thread that shuts down the socket of a connection past it;
 *  - caps connections per client address (max_per_client) and in all (max_connections). A new
 *    connection over a cap does not wait for a slot: the oldest connection that is still
 *    receiving its request (of that client for the per-client cap, of anyone for the global
 *    one) is cut to make room, since a request still arriving has cost the server nothing
 *    yet. Connections whose request is being served are never cut. Only when every
 *    connection is busy is the newcomer refused.
 * Cutting means shutdown(2) on the socket under the table's lock; libmicrohttpd then sees
 * the end of the stream and closes the connection itself (the table hears of it in
 * sh_conn_close, before the descriptor is closed, so a cut never reaches a reused number). */
#ifndef SHOAL_SERVER_CONNS_H
#define SHOAL_SERVER_CONNS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "core/alloc.h"

typedef enum sh_conn_phase {
    SH_CONN_RECEIVING,   /* waiting for or reading a request: may be cut */
    SH_CONN_BUSY         /* its request is being served or answered */
} sh_conn_phase;

typedef struct sh_conn sh_conn;

typedef struct sh_conn_limits {
    int max_connections;
    int max_per_client;
    int receive_timeout_ms;
} sh_conn_limits;

typedef struct sh_conn_stats {
    int open;
    uint64_t accepted;
    uint64_t cut_deadline;   /* requests not received within the deadline */
    uint64_t cut_evicted;    /* receiving connections cut to make room for a newer one */
    uint64_t refused;        /* new connections refused: every other one was busy */
} sh_conn_stats;

typedef struct sh_conn_table sh_conn_table;

/* Starts the reaper thread. NULL when out of memory or the thread cannot start. */
sh_conn_table *sh_conn_table_create(sh_allocator *a, const sh_conn_limits *limits);
/* Stops the reaper and frees the table; every connection must have been closed. Accepts NULL. */
void sh_conn_table_destroy(sh_conn_table *t);

/* A new connection on socket `fd` from `addr`, in the receiving phase. Applies the caps: may
 * cut older connections, or cut this one (it is still returned and must still be closed).
 * NULL when out of memory (the caller should refuse the connection). */
sh_conn *sh_conn_open(sh_conn_table *t, int fd, const struct sockaddr *addr);
/* Forgets the connection; its socket must still be open. Accepts NULL. */
void sh_conn_close(sh_conn_table *t, sh_conn *c);
/* The unclaimed connection on socket `fd`, now claimed (a second claim finds nothing):
 * how the connection layer takes over a connection the gate (server/gate.h) opened and
 * handed to it. NULL when there is none. */
sh_conn *sh_conn_claim(sh_conn_table *t, int fd);
/* The connection now lives on socket `fd` (the gate relays it to libmicrohttpd over a socket
 * pair): its cuts shut that socket down, and it is claimed by that socket. */
void sh_conn_set_fd(sh_conn_table *t, sh_conn *c, int fd);
/* Forgets the unclaimed connection on `fd`, if any: a hand-over that failed. */
void sh_conn_drop_unclaimed(sh_conn_table *t, int fd);
/* Entering SH_CONN_RECEIVING restarts the request's deadline. */
void sh_conn_set_phase(sh_conn_table *t, sh_conn *c, sh_conn_phase phase);
/* A slot the server keeps per connection (its current request). */
void sh_conn_set_user(sh_conn *c, void *user);
void *sh_conn_user(const sh_conn *c);
/* The socket, for checks such as "has the client gone away". */
int sh_conn_fd(const sh_conn *c);

void sh_conn_get_stats(sh_conn_table *t, sh_conn_stats *out);

#endif
