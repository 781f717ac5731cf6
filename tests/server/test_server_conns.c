/* The server's connection table (src/server/conns.c) on socket pairs: the per-client and
 * global caps cut the oldest connection still receiving its request, never one being served,
 * and refuse the newcomer only when every other connection is busy; the receive deadline cuts
 * a receiving connection and leaves a busy one alone. A cut is seen from the client's end as
 * the end of the stream. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/conns.h"

typedef struct pair {
    int server, client;
    sh_conn *conn;
} pair;

static struct sockaddr_in client_addr(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static void open_pair(sh_conn_table *t, pair *p, const char *ip)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    p->server = fds[0];
    p->client = fds[1];
    struct sockaddr_in a = client_addr(ip);
    p->conn = sh_conn_open(t, p->server, (struct sockaddr *)&a);
    assert_non_null(p->conn);
}

static void close_pair(sh_conn_table *t, pair *p)
{
    sh_conn_close(t, p->conn);
    close(p->server);
    close(p->client);
}

/* True when the server's end was shut down: the client reads the end of the stream. Waits
 * at most wait_ms for it (the reaper works on its own thread). */
static bool cut(const pair *p, int wait_ms)
{
    struct pollfd pf = {.fd = p->client, .events = POLLIN};
    if (poll(&pf, 1, wait_ms) <= 0)
        return false;
    char b;
    return recv(p->client, &b, 1, MSG_DONTWAIT) == 0;
}

static void per_client_cap_cuts_the_oldest_receiving(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_conn_limits lim = {.max_connections = 100, .max_per_client = 2, .receive_timeout_ms = 600000};
    sh_conn_table *t = sh_conn_table_create(a, &lim);
    assert_non_null(t);
    pair p[6];
    open_pair(t, &p[0], "10.0.0.1");
    open_pair(t, &p[1], "10.0.0.1");
    open_pair(t, &p[2], "10.0.0.2");   /* another client: its own cap */
    assert_false(cut(&p[0], 0));
    assert_false(cut(&p[1], 0));
    sh_conn_set_phase(t, p[1].conn, SH_CONN_BUSY);
    open_pair(t, &p[3], "10.0.0.1");   /* over the cap: p[0] is the oldest receiving */
    assert_true(cut(&p[0], 0));
    assert_false(cut(&p[1], 0));
    assert_false(cut(&p[2], 0));
    assert_false(cut(&p[3], 0));
    sh_conn_set_phase(t, p[3].conn, SH_CONN_BUSY);
    open_pair(t, &p[4], "10.0.0.1");   /* p[1], p[3] busy: the newcomer itself is refused */
    assert_true(cut(&p[4], 0));
    assert_false(cut(&p[1], 0));
    assert_false(cut(&p[3], 0));
    sh_conn_set_phase(t, p[1].conn, SH_CONN_RECEIVING);   /* served: its slot may go again */
    open_pair(t, &p[5], "10.0.0.1");
    assert_true(cut(&p[1], 0));
    assert_false(cut(&p[5], 0));
    sh_conn_stats st;
    sh_conn_get_stats(t, &st);
    assert_int_equal(st.accepted, 6);
    assert_int_equal(st.open, 6);
    assert_int_equal(st.cut_evicted, 2);
    assert_int_equal(st.refused, 1);
    assert_int_equal(st.cut_deadline, 0);
    for (int i = 0; i < 6; i++)
        close_pair(t, &p[i]);
    sh_conn_get_stats(t, &st);
    assert_int_equal(st.open, 0);
    sh_conn_table_destroy(t);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void global_cap_cuts_any_client(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_conn_limits lim = {.max_connections = 3, .max_per_client = 3, .receive_timeout_ms = 600000};
    sh_conn_table *t = sh_conn_table_create(a, &lim);
    assert_non_null(t);
    pair p[4];
    open_pair(t, &p[0], "10.0.0.1");
    open_pair(t, &p[1], "10.0.0.2");
    open_pair(t, &p[2], "10.0.0.3");
    open_pair(t, &p[3], "10.0.0.4");   /* a health probe from a fourth address gets in */
    assert_true(cut(&p[0], 0));
    for (int i = 1; i < 4; i++)
        assert_false(cut(&p[i], 0));
    for (int i = 0; i < 4; i++)
        close_pair(t, &p[i]);
    sh_conn_table_destroy(t);
    sh_allocator_destroy(a);
}

static void deadline_cuts_receiving_not_busy(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_conn_limits lim = {.max_connections = 10, .max_per_client = 10, .receive_timeout_ms = 50};
    sh_conn_table *t = sh_conn_table_create(a, &lim);
    assert_non_null(t);
    pair busy, slow;
    open_pair(t, &busy, "10.0.0.1");
    sh_conn_set_phase(t, busy.conn, SH_CONN_BUSY);
    open_pair(t, &slow, "10.0.0.1");
    /* Bounded wait for the reaper (a few of its 100 ms rounds); the busy one was opened
     * earlier, so it is past the deadline too by the time the slow one is cut. */
    assert_true(cut(&slow, 10000));
    assert_false(cut(&busy, 0));
    sh_conn_stats st;
    sh_conn_get_stats(t, &st);
    assert_int_equal(st.cut_deadline, 1);
    close_pair(t, &busy);
    close_pair(t, &slow);
    sh_conn_table_destroy(t);
    sh_allocator_destroy(a);
}

/* The gate opens a connection's record, the connection layer claims it by socket once, and
 * a failed hand-over drops a record nobody claimed (a claimed one stays). */
static void claim_once_and_drop_unclaimed(void **state)
{
    (void)state;
    sh_allocator *a = sh_allocator_create();
    sh_conn_limits lim = {.max_connections = 10, .max_per_client = 10, .receive_timeout_ms = 600000};
    sh_conn_table *t = sh_conn_table_create(a, &lim);
    assert_non_null(t);
    pair p[2];
    open_pair(t, &p[0], "10.0.0.1");
    open_pair(t, &p[1], "10.0.0.1");
    assert_ptr_equal(sh_conn_claim(t, p[0].server), p[0].conn);
    assert_null(sh_conn_claim(t, p[0].server));
    assert_null(sh_conn_claim(t, p[1].client));   /* no record on that socket */
    sh_conn_drop_unclaimed(t, p[0].server);        /* claimed: stays */
    sh_conn_stats st;
    sh_conn_get_stats(t, &st);
    assert_int_equal(st.open, 2);
    sh_conn_drop_unclaimed(t, p[1].server);
    sh_conn_get_stats(t, &st);
    assert_int_equal(st.open, 1);
    assert_null(sh_conn_claim(t, p[1].server));
    p[1].conn = NULL;   /* dropped: close_pair closes the sockets only */
    for (int i = 0; i < 2; i++)
        close_pair(t, &p[i]);
    sh_conn_get_stats(t, &st);
    assert_int_equal(st.open, 0);
    sh_conn_table_destroy(t);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_client_cap_cuts_the_oldest_receiving),
        cmocka_unit_test(global_cap_cuts_any_client),
        cmocka_unit_test(deadline_cuts_receiving_not_busy),
        cmocka_unit_test(claim_once_and_drop_unclaimed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
