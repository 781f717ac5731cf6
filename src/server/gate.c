/* accept4 and POLLRDHUP are Linux extensions */
#define _GNU_SOURCE

#include "server/gate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "server/head.h"

/* A refused client gets this long to stop sending before its socket closes: closing with
 * unread bytes makes the kernel send a reset, which can destroy the answer in flight. */
#define LINGER_MS 1000
/* How often lingering connections are checked for their end when nothing else happens. */
#define TICK_MS 100

typedef struct pending {
    int fd;
    sh_conn *conn;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    size_t seen;          /* bytes peeked last time: the next wake-up needs more */
    double linger_until;  /* 0 while the head is awaited */
} pending;

struct sh_gate {
    sh_allocator *alloc;
    sh_gate_params p;
    int wake_fd;          /* eventfd: close the listener, or stop */
    atomic_bool close_listener, stopping;
    pthread_t thread;
    pending *pend;
    int npend;
    struct pollfd *pfd;
    char *peek;           /* SH_HEAD_MAX_BYTES + 1: enough to tell "too large" */
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *status_text(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* Poll wakes a connection only once it has more than `bytes` bytes (or its end): the head
 * is re-checked when it has grown, never in a loop over the same bytes. */
static void wake_after(int fd, size_t bytes)
{
    int lowat = bytes < SH_HEAD_MAX_BYTES ? (int)bytes + 1 : (int)SH_HEAD_MAX_BYTES + 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof lowat);
}

static void finish(sh_gate *g, int i)
{
    pending *q = &g->pend[i];
    sh_conn_close(g->p.conns, q->conn);   /* before close: the reaper must never cut a reused number */
    close(q->fd);
    g->pend[i] = g->pend[--g->npend];
}

static void answer(sh_gate *g, pending *q, const sh_head_verdict *v)
{
    char id[80] = "-";
    g->p.refused(g->p.user, v->status, v->reason, id, sizeof id);
    char body[256], msg[768];
    int bn = snprintf(body, sizeof body, "{\"error\":{\"code\":%u,\"message\":\"%s\"}}", v->status, v->reason);
    int n = snprintf(msg, sizeof msg,
                     "HTTP/1.1 %u %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                     "Connection: close\r\nX-Request-Id: %s\r\nContent-Length: %d\r\n\r\n%s",
                     v->status, status_text(v->status), id, bn, body);
    /* A few hundred bytes into an empty send buffer: one send, and if even that fails the
     * client is gone. */
    if (send(q->fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        q->linger_until = -1;
    shutdown(q->fd, SHUT_WR);
    wake_after(q->fd, 0);
    if (q->linger_until == 0)
        q->linger_until = mono_ms() + LINGER_MS;
}

/* Returns true when the connection left the gate (handed over, or finished). */
static bool on_readable(sh_gate *g, int i, short revents)
{
    pending *q = &g->pend[i];
    if (q->linger_until != 0) {   /* refused: drain until the client's end */
        char sink[4096];
        ssize_t n;
        while ((n = recv(q->fd, sink, sizeof sink, MSG_DONTWAIT)) > 0)
            ;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK) || q->linger_until < 0) {
            finish(g, i);
            return true;
        }
        return false;
    }
    ssize_t n = recv(q->fd, g->peek, SH_HEAD_MAX_BYTES + 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return false;
    if (n <= 0) {   /* gone, or cut by the table's reaper */
        finish(g, i);
        return true;
    }
    sh_head_verdict v;
    sh_head_check(g->peek, (size_t)n, &v);
    if (v.state == SH_HEAD_INCOMPLETE) {
        if (revents & (POLLRDHUP | POLLHUP | POLLERR)) {   /* ended in the middle of its head */
            finish(g, i);
            return true;
        }
        q->seen = (size_t)n;
        wake_after(q->fd, q->seen);
        return false;
    }
    if (v.state == SH_HEAD_REFUSED) {
        answer(g, q, &v);
        return false;
    }
    wake_after(q->fd, 0);
    pending out = *q;
    g->pend[i] = g->pend[--g->npend];
    if (g->p.pass(g->p.user, out.fd, (struct sockaddr *)&out.addr, out.addr_len) != 0)
        sh_conn_drop_unclaimed(g->p.conns, out.fd);
    return true;
}

static void accept_all(sh_gate *g)
{
    while (g->npend < g->p.max_pending) {
        pending q = {.addr_len = sizeof q.addr};
        q.fd = accept4(g->p.listen_fd, (struct sockaddr *)&q.addr, &q.addr_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (q.fd < 0)
            return;   /* EAGAIN, or an error of that one connection (the backlog keeps the rest) */
        q.conn = sh_conn_open(g->p.conns, q.fd, (struct sockaddr *)&q.addr);
        if (!q.conn) {
            close(q.fd);
            continue;
        }
        g->pend[g->npend++] = q;
    }
}

static void *gate_main(void *arg)
{
    sh_gate *g = arg;
    while (!atomic_load(&g->stopping)) {
        if (atomic_load(&g->close_listener) && g->p.listen_fd >= 0) {
            close(g->p.listen_fd);
            g->p.listen_fd = -1;
        }
        int np = 0;
        g->pfd[np++] = (struct pollfd){.fd = g->wake_fd, .events = POLLIN};
        bool listening = g->p.listen_fd >= 0 && g->npend < g->p.max_pending;
        g->pfd[np++] = (struct pollfd){.fd = listening ? g->p.listen_fd : -1, .events = POLLIN};
        bool lingering = false;
        for (int i = 0; i < g->npend; i++) {
            g->pfd[np++] = (struct pollfd){.fd = g->pend[i].fd, .events = POLLIN | POLLRDHUP};
            lingering |= g->pend[i].linger_until != 0;
        }
        int ready = poll(g->pfd, (nfds_t)np, lingering || !listening ? TICK_MS : -1);
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
        double now = mono_ms();
        for (int i = g->npend - 1; i >= 0; i--) {
            short re = g->pfd[2 + i].revents;
            if (re && on_readable(g, i, re))
                continue;
            if (g->pend[i].linger_until != 0 && now > g->pend[i].linger_until)
                finish(g, i);
        }
        if (listening && (g->pfd[1].revents & POLLIN))
            accept_all(g);
    }
    while (g->npend > 0)
        finish(g, g->npend - 1);
    return NULL;
}

int sh_gate_start(sh_allocator *a, const sh_gate_params *p, sh_gate **out, sh_err *err)
{
    *out = NULL;
    size_t slots = (size_t)p->max_pending;
    sh_gate *g = sh_calloc(a, 1, sizeof *g);
    pending *pend = g ? sh_calloc(a, slots, sizeof *pend) : NULL;
    struct pollfd *pfd = pend ? sh_calloc(a, slots + 2, sizeof *pfd) : NULL;
    char *peek = pfd ? sh_alloc(a, SH_HEAD_MAX_BYTES + 1) : NULL;
    int wake = peek ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
    if (wake < 0) {
        sh_free(a, peek);
        sh_free(a, pfd);
        sh_free(a, pend);
        sh_free(a, g);
        close(p->listen_fd);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "connection gate: out of memory or descriptors");
    }
    /* accept4 is called until it would block: the listener must not block */
    int fl = fcntl(p->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(p->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        close(wake);
        close(p->listen_fd);
        sh_free(a, peek);
        sh_free(a, pfd);
        sh_free(a, pend);
        sh_free(a, g);
        return sh_errf(err, SHOAL_ERR_IO, "connection gate: listening socket: %s", strerror(errno));
    }
    g->alloc = a;
    g->p = *p;
    g->wake_fd = wake;
    g->pend = pend;
    g->pfd = pfd;
    g->peek = peek;
    int e = pthread_create(&g->thread, NULL, gate_main, g);
    if (e) {
        close(wake);
        close(p->listen_fd);
        sh_free(a, peek);
        sh_free(a, pfd);
        sh_free(a, pend);
        sh_free(a, g);
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
    if (g->p.listen_fd >= 0)
        close(g->p.listen_fd);
    close(g->wake_fd);
    sh_allocator *a = g->alloc;
    sh_free(a, g->peek);
    sh_free(a, g->pfd);
    sh_free(a, g->pend);
    sh_free(a, g);
}
