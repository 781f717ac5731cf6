/* The request-head check in front of libmicrohttpd (src/server/head.c): each kind of head
 * libmicrohttpd would answer with an HTML page is refused with the status the server
 * answers in JSON; well-formed heads pass with their exact length, and are "incomplete"
 * at every shorter prefix; a refusal stays a refusal whatever follows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/head.h"

typedef struct head_case {
    const char *name;
    const char *text;
    unsigned status;   /* 0: must pass */
} head_case;

static const head_case CASES[] = {
    {"get", "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 0},
    {"http10 without host", "GET /healthz HTTP/1.0\r\n\r\n", 0},
    {"post with length", "POST /v1/infer?mode=x HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n", 0},
    {"chunked", "POST /v1/infer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n", 0},
    {"value spaces and obs-text", "GET / HTTP/1.1\r\nHost: a\r\nX-A:  \tv\xe9 x \t\r\n\r\n", 0},
    {"empty value", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", 0},
    {"garbage", "\x01\x02 hello\r\n\r\n", 400},
    {"no version", "GET /healthz\r\n\r\n", 400},
    {"two spaces", "GET  /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n", 400},
    {"version garbage", "GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400},
    {"leading empty line", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"bare lf", "GET / HTTP/1.1\nHost: a\n\n", 400},
    {"cr inside a line", "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
    {"nul in target", "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 400},
    {"field without colon", "GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n", 400},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},
    {"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400},
    {"control in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01\r\n\r\n", 400},
    {"http11 without host", "GET / HTTP/1.1\r\n\r\n", 400},
    {"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
    {"bad length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400},
    {"negative length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
    {"empty length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400},
    {"two lengths", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
    {"length and chunked", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"length over 64 bits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 413},
    {"gzip encoding", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"http 2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505},
    {"http 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505},
};

static void check_text(const char *name, const char *text, size_t n, unsigned status)
{
    sh_head_verdict v;
    sh_head_check(text, n, &v);
    if (status == 0) {
        if (v.state != SH_HEAD_COMPLETE)
            fail_msg("%s: refused (%u, %s)", name, v.status, v.reason ? v.reason : "-");
        assert_int_equal(v.head_bytes, n);
        /* every prefix is merely incomplete, so a slow client is never refused early (long
         * heads: a sample of prefixes, the last one included) */
        size_t step = n > 4096 ? n / 509 : 1;
        for (size_t k = 0; k < n; k = k + step < n || k == n - 1 ? k + step : n - 1) {
            sh_head_check(text, k, &v);
            if (v.state != SH_HEAD_INCOMPLETE)
                fail_msg("%s: prefix of %zu bytes is state %d", name, k, (int)v.state);
        }
        /* a body behind the head does not change the head's length */
        char *more = malloc(n + 5);
        assert_non_null(more);
        memcpy(more, text, n);
        memcpy(more + n, "abcde", 5);
        sh_head_check(more, n + 5, &v);
        free(more);
        assert_int_equal(v.state, SH_HEAD_COMPLETE);
        assert_int_equal(v.head_bytes, n);
    } else {
        if (v.state != SH_HEAD_REFUSED || v.status != status)
            fail_msg("%s: state %d status %u, expected refused %u", name, (int)v.state, v.status, status);
        assert_non_null(v.reason);
        assert_null(strchr(v.reason, '"'));   /* it goes into a JSON string as it is */
    }
}

static void table_of_heads(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        /* the texts hold no NUL except where a case puts one on purpose */
        size_t n = strlen(CASES[i].text);
        if (!strcmp(CASES[i].name, "nul in target"))
            n = sizeof "GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n" - 1;
        check_text(CASES[i].name, CASES[i].text, n, CASES[i].status);
    }
}

/* A head built from a request line whose target has `target_len` (>= 1) bytes, Host and `fields` more header lines of `value_len` bytes each and the
 * blank line; returns its length. */
static size_t build_head(char *buf, size_t cap, size_t target_len, int fields, size_t value_len)
{
    size_t n = (size_t)snprintf(buf, cap, "GET /");
    for (size_t i = 1; i < target_len; i++)
        buf[n++] = 'a';
    n += (size_t)snprintf(buf + n, cap - n, " HTTP/1.1\r\nHost: a\r\n");
    for (int f = 0; f < fields; f++) {
        n += (size_t)snprintf(buf + n, cap - n, "X-%03d: ", f);
        for (size_t i = 0; i < value_len; i++)
            buf[n++] = 'v';
        buf[n++] = '\r';
        buf[n++] = '\n';
    }
    buf[n++] = '\r';
    buf[n++] = '\n';
    assert_true(n <= cap);
    return n;
}

static void limits(void **state)
{
    (void)state;
    size_t cap = 4 * SH_HEAD_MAX_BYTES;
    char *buf = malloc(cap);
    assert_non_null(buf);
    sh_head_verdict v;

    /* the longest target passes, one more byte is 414 */
    size_t n = build_head(buf, cap, SH_HEAD_MAX_TARGET, 0, 0);
    check_text("longest target", buf, n, 0);
    n = build_head(buf, cap, SH_HEAD_MAX_TARGET + 1, 0, 0);
    check_text("target too long", buf, n, 414);
    /* ... and 414 comes before the line ends: a client cannot make the gate wait for it */
    sh_head_check(buf, 5 + SH_HEAD_MAX_TARGET + 1, &v);
    assert_int_equal(v.state, SH_HEAD_REFUSED);
    assert_int_equal(v.status, 414);

    /* exactly SH_HEAD_MAX_BYTES passes with the most fields allowed; one byte more is 431 */
    int most = SH_HEAD_MAX_FIELDS - 1;   /* Host is a field too */
    size_t base = build_head(buf, cap, 1, most, 0);
    size_t value = (SH_HEAD_MAX_BYTES - base) / (size_t)most;
    size_t target = 1 + (SH_HEAD_MAX_BYTES - base) % (size_t)most;
    n = build_head(buf, cap, target, most, value);
    assert_int_equal(n, SH_HEAD_MAX_BYTES);
    check_text("largest head", buf, n, 0);
    n = build_head(buf, cap, target + 1, most, value);
    check_text("head one byte too large", buf, n, 431);
    /* an endless head is refused once SH_HEAD_MAX_BYTES have come, whatever is in them */
    size_t line_end = (size_t)(strstr(buf, "\r\n") - buf) + 2;
    memset(buf + line_end, 'v', cap - line_end);
    sh_head_check(buf, SH_HEAD_MAX_BYTES, &v);
    assert_int_equal(v.state, SH_HEAD_REFUSED);
    assert_int_equal(v.status, 431);
    sh_head_check(buf, SH_HEAD_MAX_BYTES - 1, &v);
    assert_int_equal(v.state, SH_HEAD_INCOMPLETE);

    /* one field too many */
    n = build_head(buf, cap, 1, most, 1);
    check_text("most fields", buf, n, 0);
    n = build_head(buf, cap, 1, most + 1, 1);
    check_text("too many fields", buf, n, 431);
    free(buf);
}

/* A refusal is final: appending bytes (here: the rest of the request, or more garbage)
 * never makes a refused head pass. */
static void refusal_is_final(void **state)
{
    (void)state;
    static const char tail[] = "X-More: 1\r\nHost: b\r\n\r\nbody";
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        if (!CASES[i].status)
            continue;
        size_t n = strlen(CASES[i].text);
        for (size_t cut = 1; cut <= n; cut++) {
            sh_head_verdict v;
            sh_head_check(CASES[i].text, cut, &v);
            if (v.state != SH_HEAD_REFUSED)
                continue;
            char buf[512];
            assert_true(cut + sizeof tail < sizeof buf);
            memcpy(buf, CASES[i].text, cut);
            memcpy(buf + cut, tail, sizeof tail - 1);
            sh_head_verdict w;
            sh_head_check(buf, cut + sizeof tail - 1, &w);
            if (w.state != SH_HEAD_REFUSED || w.status != v.status)
                fail_msg("%s: refused at %zu bytes, then state %d status %u", CASES[i].name, cut, (int)w.state,
                         w.status);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(table_of_heads),
        cmocka_unit_test(limits),
        cmocka_unit_test(refusal_is_final),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
