/* The WebSocket layer of /v1/stream (src/server/ws.c) over a socketpair: the handshake key of
 * RFC 6455's own example, masked and unmasked frames both ways, fragments with a ping between
 * them, bytes read before the upgrade, and every malformed or oversized frame refused with the
 * close code the RFC asks for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/ws.h"

static void accept_key_matches_rfc_example(void **state)
{
    (void)state;
    char out[29];
    assert_true(sh_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out));
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_false(sh_ws_accept_key("short", out));
    assert_false(sh_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ!=", out));
    assert_false(sh_ws_accept_key(NULL, out));
    /* 24 base64 characters that are not 16 bytes (RFC 6455 4.2.1): 18 bytes, and a '=' early */
    assert_false(sh_ws_accept_key("AAAAAAAAAAAAAAAAAAAAAAAA", out));
    assert_false(sh_ws_accept_key("AAAAAAAAAAAAAAAAAAAA====", out));
    /* a second key: Python's base64(sha1(key + GUID)) */
    assert_true(sh_ws_accept_key("x3JJHMbDL1EzLkh9GBhXDw==", out));
    assert_string_equal(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}

typedef struct pair {
    int a, b;
    sh_allocator *alloc;
    sh_ws_reader r;
} pair;

static void open_pair(pair *p, bool masked, size_t max)
{
    int fds[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    p->a = fds[0];
    p->b = fds[1];
    p->alloc = sh_allocator_create();
    memset(&p->r, 0, sizeof p->r);
    p->r.alloc = p->alloc;
    p->r.fd = p->b;
    p->r.max_message = max;
    p->r.expect_masked = masked;
}

static void close_pair(pair *p)
{
    sh_ws_reader_free(&p->r);
    close(p->a);
    close(p->b);
    assert_int_equal(sh_allocator_stats(p->alloc).in_use, 0);
    sh_allocator_destroy(p->alloc);
}

static void round_trips_masked_and_unmasked(void **state)
{
    (void)state;
    static uint8_t big[70000];   /* a 64-bit length */
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
    for (int masked = 0; masked < 2; masked++) {
        pair p;
        open_pair(&p, masked, 1 << 20);
        sh_ws_message m;
        assert_int_equal(sh_ws_write(p.a, SH_WS_TEXT, "hello", 5, masked), 0);
        assert_int_equal(sh_ws_read(&p.r, &m), 0);
        assert_int_equal(m.opcode, SH_WS_TEXT);
        assert_int_equal(m.len, 5);
        assert_memory_equal(m.data, "hello", 5);
        /* 300 bytes: a 16-bit length; written from another process so the pipe never fills */
        pid_t pid = fork();
        if (pid == 0) {
            sh_ws_write(p.a, SH_WS_BINARY, big, 300, masked);
            sh_ws_write(p.a, SH_WS_BINARY, big, sizeof big, masked);
            _exit(0);
        }
        assert_int_equal(sh_ws_read(&p.r, &m), 0);
        assert_int_equal(m.opcode, SH_WS_BINARY);
        assert_int_equal(m.len, 300);
        assert_memory_equal(m.data, big, 300);
        assert_int_equal(sh_ws_read(&p.r, &m), 0);
        assert_int_equal(m.len, sizeof big);
        assert_memory_equal(m.data, big, sizeof big);
        close_pair(&p);
    }
}

/* A raw frame: header as given, payload masked with key 1,2,3,4 when `mask`. */
static void raw_frame(int fd, uint8_t b0, const void *data, size_t n, bool mask)
{
    uint8_t f[256];
    assert_true(n < 126);
    f[0] = b0;
    f[1] = (uint8_t)(n | (mask ? 0x80 : 0));
    size_t at = 2;
    static const uint8_t key[4] = {1, 2, 3, 4};
    if (mask) {
        memcpy(f + 2, key, 4);
        at = 6;
    }
    for (size_t i = 0; i < n; i++)
        f[at + i] = ((const uint8_t *)data)[i] ^ (mask ? key[i & 3] : 0);
    assert_int_equal(write(fd, f, at + n), (ssize_t)(at + n));
}

static void fragments_with_a_ping_between(void **state)
{
    (void)state;
    pair p;
    open_pair(&p, true, 1024);
    raw_frame(p.a, 0x02, "abc", 3, true);          /* binary, not final */
    raw_frame(p.a, 0x89, "hb", 2, true);           /* ping in between */
    raw_frame(p.a, 0x80, "def", 3, true);          /* continuation, final */
    sh_ws_message m;
    assert_int_equal(sh_ws_read(&p.r, &m), 0);
    assert_int_equal(m.opcode, SH_WS_PING);
    assert_memory_equal(m.data, "hb", 2);
    assert_int_equal(sh_ws_read(&p.r, &m), 0);
    assert_int_equal(m.opcode, SH_WS_BINARY);
    assert_int_equal(m.len, 6);
    assert_memory_equal(m.data, "abcdef", 6);
    close_pair(&p);
}

static void bytes_read_before_the_upgrade_come_first(void **state)
{
    (void)state;
    pair p;
    open_pair(&p, false, 1024);
    /* an unmasked text frame "hi", split: its first 3 bytes were read by the HTTP layer */
    static const uint8_t whole[] = {0x81, 0x02, 'h', 'i'};
    p.r.pre = whole;
    p.r.pre_len = 3;
    assert_int_equal(write(p.a, whole + 3, 1), 1);
    sh_ws_message m;
    assert_int_equal(sh_ws_read(&p.r, &m), 0);
    assert_int_equal(m.len, 2);
    assert_memory_equal(m.data, "hi", 2);
    close_pair(&p);
}

static void refuses_what_the_rfc_refuses(void **state)
{
    (void)state;
    sh_ws_message m;
    struct {
        uint8_t b0;
        bool mask;
        size_t n;
        int want;
    } cases[] = {
        {0x82, false, 3, SH_WS_CLOSE_PROTOCOL},   /* a client frame without a mask */
        {0xC2, true, 3, SH_WS_CLOSE_PROTOCOL},    /* a reserved bit */
        {0x83, true, 3, SH_WS_CLOSE_PROTOCOL},    /* an unknown opcode */
        {0x09, true, 3, SH_WS_CLOSE_PROTOCOL},    /* a fragmented control frame */
        {0x80, true, 3, SH_WS_CLOSE_PROTOCOL},    /* a continuation with nothing to continue */
        {0x82, true, 100, SH_WS_CLOSE_TOO_BIG},   /* above the reader's limit of 64 */
    };
    static const uint8_t junk[125];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pair p;
        open_pair(&p, true, 64);
        raw_frame(p.a, cases[i].b0, junk, cases[i].n, cases[i].mask);
        assert_int_equal(sh_ws_read(&p.r, &m), cases[i].want);
        close_pair(&p);
    }
    /* a control frame over 125 bytes (16-bit length form) */
    pair p;
    open_pair(&p, true, 1024);
    static const uint8_t long_ping[] = {0x89, 0x80 | 126, 0, 200};
    assert_int_equal(write(p.a, long_ping, sizeof long_ping), (ssize_t)sizeof long_ping);
    assert_int_equal(sh_ws_read(&p.r, &m), SH_WS_CLOSE_PROTOCOL);
    close_pair(&p);
    /* the peer going away mid-frame */
    open_pair(&p, true, 1024);
    static const uint8_t half[] = {0x82, 0x80 | 10, 1, 2};
    assert_int_equal(write(p.a, half, sizeof half), (ssize_t)sizeof half);
    shutdown(p.a, SHUT_WR);
    assert_int_equal(sh_ws_read(&p.r, &m), SH_WS_CLOSE_GOING_AWAY);
    close_pair(&p);
}

static void close_frame_carries_its_code(void **state)
{
    (void)state;
    pair p;
    open_pair(&p, false, 1024);
    assert_int_equal(sh_ws_write_close(p.a, SH_WS_CLOSE_GOING_AWAY, "bye", false), 0);
    sh_ws_message m;
    assert_int_equal(sh_ws_read(&p.r, &m), 0);
    assert_int_equal(m.opcode, SH_WS_CLOSE);
    assert_int_equal(m.len, 5);
    assert_int_equal(m.data[0] << 8 | m.data[1], 1001);
    assert_memory_equal(m.data + 2, "bye", 3);
    close_pair(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accept_key_matches_rfc_example),
        cmocka_unit_test(round_trips_masked_and_unmasked),
        cmocka_unit_test(fragments_with_a_ping_between),
        cmocka_unit_test(bytes_read_before_the_upgrade_come_first),
        cmocka_unit_test(refuses_what_the_rfc_refuses),
        cmocka_unit_test(close_frame_carries_its_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
