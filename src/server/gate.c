/* accept4 and POLLRDHUP are Linux extensions */
#define _GNU_SOURCE

#include "server/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "server/framing.h"
#include "server/head.h"

/* A client the gate answered gets this long to stop sending before its socket closes: closing
 * with unread bytes makes the kernel send a reset, which can destroy the answer in flight. */
#define LINGER_MS 1000
/* How often lingering connections are checked for their end when nothing else happens. */
#define TICK_MS 100
/* On stop, relays get this long to pass on the answers libmicrohttpd has written. */
#define STOP_FLUSH_MS 1000
/* The largest head of a health probe the gate answers itself (see is_healthz). */
#define PROBE_MAX_HEAD 2048
/* The most the gate peeks at once: a whole head of the largest size, and one byte to tell
 * "too large". */
#define PEEK_BYTES (SH_HEAD_MAX_BYTES + 1)

typedef enum gate_state {
    AWAIT_HEAD,   /* the first head has not arrived: the gate owns the connection and its record */
    RELAY,        /* libmicrohttpd serves it through the socket pair */
    LINGER        /* answered and shut down for writing: waiting for the client's end */
} gate_state;

typedef struct gconn {
    gate_state state;
    int fd;                 /* the client's socket */
    int up;                 /* RELAY: the gate's end of the pair towards libmicrohttpd, else -1 */
    sh_conn *conn;          /* the table's record while the gate owns it, else NULL */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    int lowat;              /* the client socket's SO_RCVLOWAT as last set */
    double linger_until;    /* LINGER: when to close anyway; < 0: close at once */
    sh_framing fr;
    bool client_done;       /* no more client bytes pass up (its end, or a refusal) */
    bool up_shut;           /* shutdown(up, SHUT_WR) done */
    bool up_full, client_full;   /* the last send that way was partial: wait for POLLOUT */
    bool answer_at_end;     /* the gate answers `status` itself once libmicrohttpd closes... */
    uint64_t down_bytes;    /* relayed to the client so far */
    uint64_t down_at_head;  /* ...unless bytes came down since the last head passed up: the
                             * server answered that request early (a 405, a 413) */
    uint64_t heads_seen;
    unsigned status;
    const char *reason;
    char inject[384];       /* the gate's own request passed up in place of a refused one */
    size_t inject_len, inject_off;
} gconn;

struct sh_gate {
    sh_allocator *alloc;
    sh_gate_params p;
    int slots;
    int wake_fd;            /* eventfd: close the listener, or stop */
    atomic_bool close_listener, stopping;
    pthread_t thread;
    gconn *conns;
    int nconns;
    struct pollfd *pfd;
    char *buf;              /* PEEK_BYTES */
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static bool would_block(void)
{
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

static const char *status_text(unsigned status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Poll wakes a connection only once it has more than `bytes` bytes (or its end): a unit
 * still arriving is checked again when it has grown, never in a loop over the same bytes. */
static void wake_after(gconn *q, size_t bytes)
{
    int lowat = bytes < SH_HEAD_MAX_BYTES ? (int)bytes + 1 : (int)SH_HEAD_MAX_BYTES + 1;
    if (lowat != q->lowat && setsockopt(q->fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat) == 0)
        q->lowat = lowat;
}

static void finish(sh_gate *g, int i)
{
    gconn *q = &g->conns[i];
    sh_conn_close(g->p.conns, q->conn);   /* before close: the reaper must never cut a reused number */
    if (q->up >= 0)
        close(q->up);
    close(q->fd);
    g->conns[i] = g->conns[--g->nconns];
}

static void start_linger(gconn *q)
{
    shutdown(q->fd, SHUT_WR);
    wake_after(q, 0);
    q->state = LINGER;
    if (q->linger_until == 0)
        q->linger_until = mono_ms() + LINGER_MS;
}

/* Answers the client with `status` in JSON (a refusal with `reason`, or a health probe when
 * reason is NULL; no body for HEAD), and lingers. */
static void answer(sh_gate *g, gconn *q, unsigned status, const char *reason, bool head_only)
{
    char id[80] = "-";
    g->p.answered(g->p.user, status, reason ? "-" : "/healthz", reason, id, sizeof id);
    char body[256], msg[768];
    int bn = reason ? snprintf(body, sizeof body, "{\"error\":{\"code\":%u,\"message\":\"%s\"}}", status, reason)
                    : snprintf(body, sizeof body, "{\"status\":\"ok\"}");
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\nX-Request-Id: %s\r\nContent-Length: %d\r\n\r\n%s",
                     status, status_text(status), id, bn, head_only ? "" : body);
    /* A few hundred bytes into an empty send buffer (a relay has passed everything before):
     * one send, and if even that fails the client is gone. */
    if (send(q->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        q->linger_until = -1;
    start_linger(q);
}

/* True when the head (its request line first) has a field named `name` (lower case). */
static bool has_field(const char *head, size_t n, const char *name)
{
    size_t k = strlen(name);
    for (const char *p = memchr(head, '\n', n); p && (size_t)(head + n - p) > k + 1;
         p = memchr(p + 1, '\n', (size_t)(head + n - p - 1)))
        if (!strncasecmp(p + 1, name, k) && p[1 + k] == ':')
            return true;
    return false;
}

/* A health probe the gate answers itself. Probes send a few hundred bytes and no request id;
 * a larger head goes to the server, whose limits on header fields it may be meant to test,
 * and one with an X-Request-Id to the server, which echoes it. */
static bool is_healthz(const char *head, const sh_head_verdict *v)
{
    static const char path[] = "/healthz";
    size_t n = sizeof path - 1;
    return v->get_or_head && v->head_bytes <= PROBE_MAX_HEAD && v->target_len >= n && !memcmp(v->target, path, n) &&
           (v->target_len == n || v->target[n] == '?') && !has_field(head, v->head_bytes, "x-request-id");
}

/* Hands a connection with a good first head over: a WebSocket upgrade on its own socket, any
 * other through a relay. Returns true when the entry left the table. */
static bool hand_over(sh_gate *g, int i, const sh_head_verdict *v)
{
    gconn *q = &g->conns[i];
    wake_after(q, 0);
    if (v->upgrade) {
        gconn out = *q;
        g->conns[i] = g->conns[--g->nconns];
        if (g->p.pass(g->p.user, out.fd, (struct sockaddr *)&out.addr, out.addr_len) != 0)
            sh_conn_drop_unclaimed(g->p.conns, out.fd);
        return true;
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair) != 0) {
        finish(g, i);   /* out of descriptors: the client sees its connection close */
        return true;
    }
    /* The relay passes each of libmicrohttpd's writes on as it comes: Nagle's algorithm would
     * hold a response's body back until the head is acknowledged. */
    int one = 1;
    setsockopt(q->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sh_conn_set_fd(g->p.conns, q->conn, pair[1]);
    q->conn = NULL;
    q->up = pair[0];
    q->state = RELAY;
    sh_framing_init(&q->fr, g->p.max_chunk);
    if (g->p.pass(g->p.user, pair[1], (struct sockaddr *)&q->addr, q->addr_len) != 0) {
        sh_conn_drop_unclaimed(g->p.conns, pair[1]);
        finish(g, i);
        return true;
    }
    return false;
}

/* AWAIT_HEAD: the connection's first head, peeked. Returns true when the entry left. */
static bool on_first_head(sh_gate *g, int i, short revents)
{
    gconn *q = &g->conns[i];
    ssize_t n = recv(q->fd, g->buf, PEEK_BYTES, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && would_block())
        return false;
    if (n <= 0) {   /* gone, or cut by the table's reaper */
        finish(g, i);
        return true;
    }
    sh_head_verdict v;
    sh_head_check(g->buf, (size_t)n, &v);
    switch (v.state) {
    case SH_HEAD_INCOMPLETE:
        if (revents & (POLLRDHUP | POLLHUP | POLLERR)) {   /* ended in the middle of its head */
            finish(g, i);
            return true;
        }
        wake_after(q, (size_t)n);
        return false;
    case SH_HEAD_REFUSED:
        answer(g, q, v.status, v.reason, false);
        return false;
    case SH_HEAD_COMPLETE:
        break;
    }
    if (is_healthz(g->buf, &v)) {
        answer(g, q, 200, NULL, v.target[-2] == 'D');   /* "HEAD /" vs "GET /" */
        return false;
    }
    return hand_over(g, i, &v);
}

static void shut_up(gconn *q)
{
    if (!q->up_shut) {
        shutdown(q->up, SHUT_WR);
        q->up_shut = true;
    }
}

/* The gate's own request in place of a refused one, once everything before it has passed. */
static void send_inject(gconn *q)
{
    while (q->inject_off < q->inject_len) {
        ssize_t s = send(q->up, q->inject + q->inject_off, q->inject_len - q->inject_off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (s < 0) {
            q->up_full = would_block();
            if (!q->up_full)
                q->inject_off = q->inject_len;   /* libmicrohttpd has gone: nothing to answer */
            return;
        }
        q->inject_off += (size_t)s;
    }
    /* The stream towards libmicrohttpd stays open: at its end it would cut the answers of the
     * requests before this one short. The request says Connection: close. */
    q->up_full = false;
}

/* A bad request on a relayed connection: nothing more of the client's passes up. At a request
 * boundary the server answers it, after the requests before it; inside a body the stream
 * towards libmicrohttpd ends (the request is dropped) and the gate answers once it closes. */
static void refuse_relayed(sh_gate *g, gconn *q, const sh_head_verdict *v)
{
    q->client_done = true;
    wake_after(q, 0);
    if (q->fr.next == SH_FRAMING_HEAD) {
        int n = snprintf(q->inject, sizeof q->inject,
                         "GET %s HTTP/1.1\r\nHost: gate\r\nConnection: close\r\nX-Shoal-Gate-Status: %u\r\n"
                         "X-Shoal-Gate-Reason: %s\r\n\r\n",
                         g->p.refusal_path, v->status, v->reason);
        if (n > 0 && (size_t)n < sizeof q->inject) {
            q->inject_len = (size_t)n;
            send_inject(q);
            return;
        }
    }
    q->answer_at_end = true;
    q->status = v->status;
    q->reason = v->reason;
    shut_up(q);
}

/* Client to libmicrohttpd: peek, check, send what the pair takes, consume that much. */
static void relay_up(sh_gate *g, gconn *q)
{
    while (!q->client_done && !q->up_full) {
        ssize_t n = recv(q->fd, g->buf, PEEK_BYTES, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && would_block())
            return;
        if (n <= 0) {   /* the client's end (or its failure): libmicrohttpd sees it too */
            q->client_done = true;
            shut_up(q);
            return;
        }
        sh_head_verdict v;
        size_t k = sh_framing_check(&q->fr, g->buf, (size_t)n, &v);
        if (k == 0) {
            if (v.state == SH_HEAD_REFUSED)
                refuse_relayed(g, q, &v);
            else
                wake_after(q, (size_t)n);
            return;
        }
        ssize_t s = send(q->up, g->buf, k, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (s < 0) {
            if (would_block()) {
                q->up_full = true;
            } else {   /* libmicrohttpd has closed: what comes now has nobody to go to */
                q->client_done = true;
            }
            return;
        }
        /* MSG_TRUNC: TCP drops the bytes already sent on without copying them again. */
        if (recv(q->fd, NULL, (size_t)s, MSG_DONTWAIT | MSG_TRUNC) != s) {   /* cannot happen: the bytes were there */
            q->client_done = true;
            shut_up(q);
            return;
        }
        sh_framing_passed(&q->fr, (size_t)s);
        if (q->fr.requests != q->heads_seen) {
            q->heads_seen = q->fr.requests;
            q->down_at_head = q->down_bytes;
        }
        wake_after(q, 0);
        if ((size_t)s < k)
            q->up_full = true;
    }
}

/* libmicrohttpd to the client. Returns true when the entry left the table. */
static bool relay_down(sh_gate *g, int i)
{
    gconn *q = &g->conns[i];
    while (!q->client_full) {
        ssize_t n = recv(q->up, g->buf, PEEK_BYTES, MSG_PEEK | MSG_DONTWAIT);
        if (n < 0 && would_block())
            return false;
        if (n <= 0) {   /* libmicrohttpd closed the connection */
            close(q->up);
            q->up = -1;
            if (q->answer_at_end && q->down_bytes == q->down_at_head)
                answer(g, q, q->status, q->reason, false);
            else
                start_linger(q);
            return false;
        }
        ssize_t s = send(q->fd, g->buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (s < 0) {
            if (would_block()) {
                q->client_full = true;
                return false;
            }
            finish(g, i);   /* the client has gone: libmicrohttpd sees its end of the pair close */
            return true;
        }
        if (recv(q->up, g->buf, (size_t)s, MSG_DONTWAIT) != s) {
            finish(g, i);
            return true;
        }
        q->down_bytes += (uint64_t)s;
        if (s < n)
            q->client_full = true;
    }
    return false;
}

static bool on_relay(sh_gate *g, int i, short client_ev, short up_ev)
{
    gconn *q = &g->conns[i];
    if (up_ev & POLLOUT) {
        q->up_full = false;
        if (q->inject_len)
            send_inject(q);
    }
    if (client_ev & POLLOUT)
        q->client_full = false;
    if (client_ev & (POLLIN | POLLRDHUP | POLLHUP | POLLERR) || (up_ev & POLLOUT))
        relay_up(g, q);
    if (up_ev || (client_ev & POLLOUT))
        return relay_down(g, i);
    return false;
}

/* LINGER: drain until the client's end. */
static bool on_linger(sh_gate *g, int i)
{
    gconn *q = &g->conns[i];
    ssize_t n;
    while ((n = recv(q->fd, g->buf, PEEK_BYTES, MSG_DONTWAIT)) > 0)
        ;
    if (n == 0 || !would_block() || q->linger_until < 0) {
        finish(g, i);
        return true;
    }
    return false;
}

static void accept_all(sh_gate *g)
{
    while (g->nconns < g->slots) {
        gconn q = {.addr_len = sizeof q.addr, .up = -1, .lowat = 1};
        q.fd = accept4(g->p.listen_fd, (struct sockaddr *)&q.addr, &q.addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (q.fd < 0)
            return;   /* EAGAIN, or an error of that one connection (the backlog keeps the rest) */
        q.conn = sh_conn_open(g->p.conns, q.fd, (struct sockaddr *)&q.addr);
        if (!q.conn) {
            close(q.fd);
            continue;
        }
        g->conns[g->nconns++] = q;
    }
}

static void poll_events(const gconn *q, struct pollfd *client, struct pollfd *up)
{
    *client = (struct pollfd){.fd = q->fd, .events = POLLIN | POLLRDHUP};
    *up = (struct pollfd){.fd = -1};
    if (q->state != RELAY)
        return;
    client->events = (short)((q->client_done || q->up_full ? 0 : POLLIN | POLLRDHUP) | (q->client_full ? POLLOUT : 0));
    /* A client that has ended stays hung up: polled, it would wake the gate in a loop. */
    if (!client->events)
        client->fd = -1;
    *up = (struct pollfd){.fd = q->up, .events = (short)((q->client_full ? 0 : POLLIN) | (q->up_full ? POLLOUT : 0))};
}

static void *gate_main(void *arg)
{
    sh_gate *g = arg;
    double stop_by = 0;
    for (;;) {
        if (atomic_load(&g->close_listener) && g->p.listen_fd >= 0) {
            close(g->p.listen_fd);
            g->p.listen_fd = -1;
        }
        double now = mono_ms();
        if (atomic_load(&g->stopping)) {
            /* No more requests: every relay's stream towards libmicrohttpd ends (so it closes
             * idle connections), and answers already written still reach their clients. */
            if (stop_by == 0) {
                stop_by = now + STOP_FLUSH_MS;
                for (int i = 0; i < g->nconns; i++)
                    if (g->conns[i].state == RELAY && !g->conns[i].inject_len) {
                        g->conns[i].client_done = true;
                        shut_up(&g->conns[i]);
                    }
            }
            bool relaying = false;
            for (int i = 0; i < g->nconns; i++)
                relaying |= g->conns[i].state == RELAY;
            if (!relaying || now > stop_by)
                break;
        }
        int np = 0;
        g->pfd[np++] = (struct pollfd){.fd = g->wake_fd, .events = POLLIN};
        bool listening = g->p.listen_fd >= 0 && g->nconns < g->slots;
        g->pfd[np++] = (struct pollfd){.fd = listening ? g->p.listen_fd : -1, .events = POLLIN};
        bool timed = !listening || stop_by != 0;
        for (int i = 0; i < g->nconns; i++) {
            poll_events(&g->conns[i], &g->pfd[np], &g->pfd[np + 1]);
            np += 2;
            timed |= g->conns[i].state == LINGER;
        }
        int ready = poll(g->pfd, (nfds_t)np, timed ? TICK_MS : -1);
        if (ready < 0 && errno != EINTR)
            break;
        if (g->pfd[0].revents & POLLIN) {
            uint64_t v;
            if (read(g->wake_fd, &v, sizeof v) < 0) {
                /* a counter read fails only when it is zero: nothing to take */
            }
        }
        /* The connections first, walking down so that removing one keeps the others' slots
         * lined up with their poll entries. */
        now = mono_ms();
        for (int i = g->nconns - 1; i >= 0; i--) {
            short ce = g->pfd[2 + 2 * i].revents, ue = g->pfd[3 + 2 * i].revents;
            bool gone = false;
            switch (g->conns[i].state) {
            case AWAIT_HEAD: gone = ce && on_first_head(g, i, ce); break;
            case RELAY: gone = (ce || ue) && on_relay(g, i, ce, ue); break;
            case LINGER: gone = ce && on_linger(g, i); break;
            }
            if (!gone && g->conns[i].state == LINGER && now > g->conns[i].linger_until)
                finish(g, i);
        }
        if (listening && (g->pfd[1].revents & POLLIN))
            accept_all(g);
    }
    while (g->nconns > 0)
        finish(g, g->nconns - 1);
    return NULL;
}

static void free_gate(sh_gate *g, int listen_fd)
{
    sh_allocator *a = g->alloc;
    if (listen_fd >= 0)
        close(listen_fd);
    if (g->wake_fd >= 0)
        close(g->wake_fd);
    sh_free(a, g->buf);
    sh_free(a, g->pfd);
    sh_free(a, g->conns);
    sh_free(a, g);
}

int sh_gate_start(sh_allocator *a, const sh_gate_params *p, sh_gate **out, sh_err *err)
{
    *out = NULL;
    sh_gate *g = sh_calloc(a, 1, sizeof *g);
    if (!g) {
        close(p->listen_fd);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "connection gate: out of memory");
    }
    g->alloc = a;
    g->p = *p;
    g->wake_fd = -1;
    /* Connections awaiting a head, and as many relayed or lingering. */
    g->slots = p->max_pending > 0 && p->max_pending < (1 << 20) ? 2 * p->max_pending : 0;
    size_t nfds = 0;
    if (g->slots == 0 || !sh_mul_size((size_t)g->slots, 2, &nfds) || !sh_add_size(nfds, 2, &nfds)) {
        free_gate(g, p->listen_fd);
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "connection gate: max_pending %d out of range", p->max_pending);
    }
    g->conns = sh_calloc(a, (size_t)g->slots, sizeof *g->conns);
    g->pfd = g->conns ? sh_calloc(a, nfds, sizeof *g->pfd) : NULL;
    g->buf = g->pfd ? sh_alloc(a, PEEK_BYTES) : NULL;
    g->wake_fd = g->buf ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    if (g->wake_fd < 0) {
        free_gate(g, p->listen_fd);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "connection gate: out of memory or descriptors");
    }
    /* accept4 is called until it would block: the listener must not block */
    int fl = fcntl(p->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(p->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = errno;
        free_gate(g, p->listen_fd);
        return sh_errf(err, SHOAL_ERR_IO, "connection gate: listening socket: %s", strerror(e));
    }
    int e = pthread_create(&g->thread, NULL, gate_main, g);
    if (e) {
        free_gate(g, p->listen_fd);
        return sh_errf(err, SHOAL_ERR_IO, "connection gate: cannot start its thread: %s", strerror(e));
    }
    *out = g;
    return 0;
}

static void wake(sh_gate *g)
{
    uint64_t one = 1;
    if (write(g->wake_fd, &one, sizeof one) < 0) {
        /* only fails when the counter is full, and then the gate is awake anyway */
    }
}

void sh_gate_close_listener(sh_gate *g)
{
    if (!g)
        return;
    atomic_store(&g->close_listener, true);
    wake(g);
}

void sh_gate_stop(sh_gate *g)
{
    if (!g)
        return;
    atomic_store(&g->close_listener, true);
    atomic_store(&g->stopping, true);
    wake(g);
    pthread_join(g->thread, NULL);
    free_gate(g, g->p.listen_fd);
}
