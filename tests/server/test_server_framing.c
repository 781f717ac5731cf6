/* The request-stream check of relayed connections (src/server/framing.c): pipelined requests
 * with Content-Length and chunked bodies pass whole; each bad later head and each kind of bad
 * chunk framing is refused with its status exactly at the first byte it cannot pass, whether
 * the stream arrives at once or a byte at a time; after an upgrade everything passes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "server/framing.h"

#define MAX_CHUNK 4096

typedef struct outcome {
    size_t passed;
    unsigned status;       /* 0: not refused */
    uint64_t requests;
} outcome;

/* Feeds `text` arriving `step` bytes at a time (0: all at once), passing all that is passable. */
static outcome feed(const char *text, size_t n, size_t step)
{
    sh_framing f;
    sh_framing_init(&f, MAX_CHUNK);
    size_t pos = 0, avail = step ? 0 : n;
    outcome o = {0, 0, 0};
    for (;;) {
        if (avail < n)
            avail = avail + step < n ? avail + step : n;
        sh_head_verdict v;
        size_t k = sh_framing_check(&f, text + pos, avail - pos, &v);
        assert_true(k <= avail - pos);
        sh_framing_passed(&f, k);
        pos += k;
        if (v.state == SH_HEAD_REFUSED && k == 0) {
            o.status = v.status;
            assert_non_null(v.reason);
            break;
        }
        if (pos == n || (k == 0 && avail == n))
            break;
    }
    o.passed = pos;
    o.requests = f.requests;
    return o;
}

/* A stream that must be refused with `status` at the offset where `bad` begins in it. */
typedef struct bad_case {
    const char *name;
    const char *text;
    const char *bad;
    unsigned status;
} bad_case;

#define CHUNKED_PUT "PUT /v1/budget HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
#define GOOD_GET "GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n"

static const bad_case BAD[] = {
    {"bad later head", GOOD_GET "GET /x HTTP/1.1\r\n\r\n", "GET /x", 400},
    {"later head http 1.2", GOOD_GET GOOD_GET "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "GET / HTTP/1.2", 505},
    {"later head after a body", "POST /v1/infer HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGARBAGE\r\n\r\n",
     "GARBAGE", 400},
    {"chunk size not hex", CHUNKED_PUT "zz\r\n", "zz", 400},
    {"chunk size line without CRLF", CHUNKED_PUT "5\nhello", "5\n", 400},
    {"chunk longer than its size", CHUNKED_PUT "5\r\nhelloXX\r\n0\r\n\r\n", "XX", 400},
    {"17 hex digits", CHUNKED_PUT "00000000000000001\r\nx\r\n", "00000000000000001", 400},
    {"chunk over the limit", CHUNKED_PUT "1001\r\n", "1001", 413},
    {"space after a chunk size", CHUNKED_PUT "1 \r\na\r\n0\r\n\r\n", "1 ", 400},
    {"second chunk bad", CHUNKED_PUT "1\r\na\r\n-1\r\n", "-1", 400},
    {"trailer without colon", CHUNKED_PUT "0\r\nnocolon\r\n\r\n", "nocolon", 400},
};

static void check_bad(const char *name, const char *text, size_t n, size_t at, unsigned status)
{
    static const size_t steps[] = {0, 1, 2, 7, 64};
    for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
        outcome o = feed(text, n, steps[s]);
        if (o.status != status || o.passed != at)
            fail_msg("%s (arriving %zu at a time): refused %u after %zu bytes, wanted %u after %zu", name, steps[s],
                     o.status, o.passed, status, at);
    }
}

static void bad_streams_are_refused_where_they_go_wrong(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        const char *at = strstr(BAD[i].text, BAD[i].bad);
        assert_non_null(at);
        check_bad(BAD[i].name, BAD[i].text, strlen(BAD[i].text), (size_t)(at - BAD[i].text), BAD[i].status);
    }
    /* A trailer section past 4 KiB: refused at the line that crosses it. */
    char line[512];
    memcpy(line, "X-A: ", 5);
    memset(line + 5, 'a', sizeof line - 7);
    memcpy(line + sizeof line - 2, "\r\n", 2);
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof text, CHUNKED_PUT "0\r\n");
    size_t at = n + SH_FRAMING_MAX_TRAILER / sizeof line * sizeof line;
    for (size_t k = 0; k <= SH_FRAMING_MAX_TRAILER / sizeof line; k++, n += sizeof line)
        memcpy(text + n, line, sizeof line);
    check_bad("trailer section over 4 KiB", text, n, at, 431);
}

static void good_streams_pass_whole(void **state)
{
    (void)state;
    static const struct {
        const char *name, *text;
        uint64_t requests;
    } GOOD[] = {
        {"pipelined gets", GOOD_GET GOOD_GET GOOD_GET, 3},
        {"bodies by length", "POST /v1/infer HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n\r\n\r\n" GOOD_GET, 2},
        {"chunked with extensions and trailers",
         CHUNKED_PUT "4;name=value\r\n{\"by\r\nA\r\ntes\": 1e9}\r\n0\r\nX-Sum: 1\r\n\r\n" GOOD_GET, 2},
        {"chunk sizes in upper case", CHUNKED_PUT "A\r\n0123456789\r\n0\r\n\r\n", 1},
        {"empty lines between requests", GOOD_GET "\r\n\r\n" GOOD_GET, 2},
        {"no checks after an upgrade",
         "GET /v1/stream HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x82\x05hello GET /x\r\n",
         1},
    };
    static const size_t steps[] = {0, 1, 3, 50};
    for (size_t i = 0; i < sizeof GOOD / sizeof GOOD[0]; i++)
        for (size_t s = 0; s < sizeof steps / sizeof steps[0]; s++) {
            size_t n = strlen(GOOD[i].text);
            outcome o = feed(GOOD[i].text, n, steps[s]);
            if (o.status || o.passed != n || o.requests != GOOD[i].requests)
                fail_msg("%s (arriving %zu at a time): passed %zu of %zu, refused %u, %llu requests", GOOD[i].name,
                         steps[s], o.passed, n, o.status, (unsigned long long)o.requests);
        }
}

/* Body bytes are never looked at, and a unit that has not arrived whole is not passable. */
static void bodies_pass_unseen_and_units_wait(void **state)
{
    (void)state;
    sh_framing f;
    sh_framing_init(&f, MAX_CHUNK);
    const char head[] = "POST /v1/infer HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n";
    sh_head_verdict v;
    assert_int_equal(sh_framing_check(&f, head, sizeof head - 10, &v), 0);
    assert_int_equal(v.state, SH_HEAD_INCOMPLETE);
    char stream[256];
    memcpy(stream, head, sizeof head - 1);
    memset(stream + sizeof head - 1, 0, 100);   /* NUL bytes: refused in a head, fine in a body */
    size_t n = sizeof head - 1 + 100;
    assert_int_equal(sh_framing_check(&f, stream, n - 40, &v), n - 40);
    sh_framing_passed(&f, 10);   /* the other side took only part */
    assert_int_equal(sh_framing_check(&f, stream + 10, n - 10, &v), n - 10);
    assert_int_equal(v.state, SH_HEAD_COMPLETE);
    sh_framing_passed(&f, n - 10);
    /* A chunk-size line arriving in pieces waits for its CRLF. */
    sh_framing_init(&f, MAX_CHUNK);
    const char chunked[] = CHUNKED_PUT "1f";
    size_t hn = strlen(CHUNKED_PUT);
    assert_int_equal(sh_framing_check(&f, chunked, sizeof chunked - 1, &v), hn);
    sh_framing_passed(&f, hn);
    assert_int_equal(sh_framing_check(&f, "1f", 2, &v), 0);
    assert_int_equal(v.state, SH_HEAD_INCOMPLETE);
    assert_int_equal(sh_framing_check(&f, "1f\r", 3, &v), 0);
    assert_int_equal(v.state, SH_HEAD_INCOMPLETE);
    assert_int_equal(sh_framing_check(&f, "1f\r\n", 4, &v), 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_streams_are_refused_where_they_go_wrong),
        cmocka_unit_test(good_streams_pass_whole),
        cmocka_unit_test(bodies_pass_unseen_and_units_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
