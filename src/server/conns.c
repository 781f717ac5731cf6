#include "server/conns.h"

#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

/* How often the reaper looks for requests past their deadline: the deadline is in whole
 * seconds, so a tenth of a second late is within its resolution. */
#define REAP_PERIOD_MS 100

struct sh_conn {
    sh_conn *prev, *next;
    int fd;
    uint8_t client[16];        /* IPv4 addresses as IPv4-mapped IPv6, so one key type */
    sh_conn_phase phase;
    double since_ms;           /* when the current phase began */
    bool cut;
    bool claimed;              /* by the connection layer, after the gate handed it over */
    void *user;
};

struct sh_conn_table {
    sh_allocator *alloc;
    sh_conn_limits limits;
    pthread_mutex_t lock;
    pthread_cond_t wake;       /* CLOCK_MONOTONIC */
    bool stopping;
    pthread_t reaper;
    sh_conn *head;
    sh_conn_stats st;
};

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void client_key(const struct sockaddr *addr, uint8_t key[16])
{
    memset(key, 0, 16);
    if (addr && addr->sa_family == AF_INET) {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)addr;
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &a4->sin_addr, 4);
    } else if (addr && addr->sa_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
    }
}

static void cut_locked(sh_conn *c)
{
    if (!c->cut) {
        c->cut = true;
        shutdown(c->fd, SHUT_RDWR);
    }
}

/* The connection receiving for the longest time, other than `except`, among those of
 * `client` (NULL: any client); NULL when none. */
static sh_conn *oldest_receiving(sh_conn_table *t, const uint8_t *client, const sh_conn *except)
{
    sh_conn *best = NULL;
    for (sh_conn *c = t->head; c; c = c->next)
        if (c != except && !c->cut && c->phase == SH_CONN_RECEIVING &&
            (!client || !memcmp(c->client, client, 16)) && (!best || c->since_ms < best->since_ms))
            best = c;
    return best;
}

static void *reaper_main(void *arg)
{
    sh_conn_table *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += REAP_PERIOD_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&t->wake, &t->lock, &until);
        double now = mono_ms();
        for (sh_conn *c = t->head; c; c = c->next)
            if (!c->cut && c->phase == SH_CONN_RECEIVING && now - c->since_ms > t->limits.receive_timeout_ms) {
                cut_locked(c);
                t->st.cut_deadline++;
            }
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

sh_conn_table *sh_conn_table_create(sh_allocator *a, const sh_conn_limits *limits)
{
    sh_conn_table *t = sh_calloc(a, 1, sizeof *t);
    if (!t)
        return NULL;
    t->alloc = a;
    t->limits = *limits;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->reaper, NULL, reaper_main, t) != 0) {
        pthread_cond_destroy(&t->wake);
        pthread_mutex_destroy(&t->lock);
        sh_free(a, t);
        return NULL;
    }
    return t;
}

void sh_conn_table_destroy(sh_conn_table *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stopping = true;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->reaper, NULL);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    sh_free(t->alloc, t);
}

sh_conn *sh_conn_open(sh_conn_table *t, int fd, const struct sockaddr *addr)
{
    sh_conn *c = sh_calloc(t->alloc, 1, sizeof *c);
    if (!c)
        return NULL;
    c->fd = fd;
    client_key(addr, c->client);
    c->phase = SH_CONN_RECEIVING;
    c->since_ms = mono_ms();
    pthread_mutex_lock(&t->lock);
    int total = 1, mine = 1;
    for (sh_conn *o = t->head; o; o = o->next)
        if (!o->cut) {
            total++;
            mine += !memcmp(o->client, c->client, 16);
        }
    c->next = t->head;
    if (t->head)
        t->head->prev = c;
    t->head = c;
    t->st.open++;
    t->st.accepted++;
    /* Over a cap: make room by cutting a request that has not arrived yet, else refuse. */
    if (mine > t->limits.max_per_client) {
        sh_conn *v = oldest_receiving(t, c->client, c);
        if (v) {
            cut_locked(v);
            t->st.cut_evicted++;
            total--;
        } else {
            cut_locked(c);
            t->st.refused++;
        }
    }
    if (!c->cut && total > t->limits.max_connections) {
        sh_conn *v = oldest_receiving(t, NULL, c);
        if (v) {
            cut_locked(v);
            t->st.cut_evicted++;
        } else {
            cut_locked(c);
            t->st.refused++;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return c;
}

void sh_conn_close(sh_conn_table *t, sh_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&t->lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    t->st.open--;
    pthread_mutex_unlock(&t->lock);
    sh_free(t->alloc, c);
}

sh_conn *sh_conn_claim(sh_conn_table *t, int fd)
{
    pthread_mutex_lock(&t->lock);
    sh_conn *c = t->head;
    while (c && (c->fd != fd || c->claimed))
        c = c->next;
    if (c)
        c->claimed = true;
    pthread_mutex_unlock(&t->lock);
    return c;
}

void sh_conn_set_fd(sh_conn_table *t, sh_conn *c, int fd)
{
    pthread_mutex_lock(&t->lock);
    c->fd = fd;
    pthread_mutex_unlock(&t->lock);
}

void sh_conn_drop_unclaimed(sh_conn_table *t, int fd)
{
    pthread_mutex_lock(&t->lock);
    sh_conn *c = t->head;
    while (c && (c->fd != fd || c->claimed))
        c = c->next;
    if (c) {
        if (c->prev)
            c->prev->next = c->next;
        else
            t->head = c->next;
        if (c->next)
            c->next->prev = c->prev;
        t->st.open--;
    }
    pthread_mutex_unlock(&t->lock);
    sh_free(t->alloc, c);
}

void sh_conn_set_phase(sh_conn_table *t, sh_conn *c, sh_conn_phase phase)
{
    pthread_mutex_lock(&t->lock);
    if (phase == SH_CONN_RECEIVING || c->phase != phase)
        c->since_ms = mono_ms();
    c->phase = phase;
    pthread_mutex_unlock(&t->lock);
}

void sh_conn_set_user(sh_conn *c, void *user)
{
    c->user = user;
}

void *sh_conn_user(const sh_conn *c)
{
    return c->user;
}

int sh_conn_fd(const sh_conn *c)
{
    return c->fd;
}

void sh_conn_get_stats(sh_conn_table *t, sh_conn_stats *out)
{
    pthread_mutex_lock(&t->lock);
    *out = t->st;
    pthread_mutex_unlock(&t->lock);
}
