#include "server/head.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* field-value bytes: visible ASCII, obs-text, SP and HTAB (RFC 9110 section 5.5) */
static bool is_field_byte(unsigned char c)
{
    return c == '\t' || (c >= ' ' && c != 0x7f);
}

static void refuse(sh_head_verdict *v, unsigned status, const char *reason)
{
    v->state = SH_HEAD_REFUSED;
    v->status = status;
    v->reason = reason;
}

/* The request line without its CRLF: METHOD SP TARGET SP HTTP/1.x. Sets *http11, and the
 * verdict's method and target. */
static bool check_request_line(const unsigned char *b, size_t n, bool *http11, sh_head_verdict *v)
{
    size_t i = 0;
    while (i < n && is_tchar(b[i]))
        i++;
    if (i == 0 || i == n || b[i] != ' ') {
        refuse(v, 400, "malformed request line: expected METHOD SP TARGET SP HTTP/1.1");
        return false;
    }
    size_t t0 = ++i;
    while (i < n && b[i] > ' ' && b[i] != 0x7f)
        i++;
    if (i - t0 > SH_HEAD_MAX_TARGET) {
        refuse(v, 414, "request target longer than 8192 bytes");
        return false;
    }
    if (i == t0 || i == n || b[i] != ' ') {
        refuse(v, 400, "malformed request line: expected METHOD SP TARGET SP HTTP/1.1");
        return false;
    }
    v->get_or_head = (t0 == 4 && !memcmp(b, "GET", 3)) || (t0 == 5 && !memcmp(b, "HEAD", 4));
    v->target = (const char *)b + t0;
    v->target_len = i - t0;
    i++;
    static const char http[] = "HTTP/";
    size_t left = n - i;
    if (left != 8 || memcmp(b + i, http, 5) || b[i + 5] < '0' || b[i + 5] > '9' || b[i + 6] != '.' ||
        b[i + 7] < '0' || b[i + 7] > '9') {
        refuse(v, 400, "malformed request line: the version must be HTTP/1.0 or HTTP/1.1");
        return false;
    }
    if (b[i + 5] != '1' || (b[i + 7] != '0' && b[i + 7] != '1')) {
        refuse(v, 505, "HTTP version not supported: only HTTP/1.0 and HTTP/1.1 are served");
        return false;
    }
    *http11 = b[i + 7] == '1';
    return true;
}

/* A request line still arriving: refused early once its target is too long, so a client
 * cannot make the server wait for 64 KiB of URI. */
static bool check_partial_request_line(const unsigned char *b, size_t n, sh_head_verdict *v)
{
    const unsigned char *sp = memchr(b, ' ', n);
    if (!sp)
        return true;
    const unsigned char *t = sp + 1, *end = b + n;
    const unsigned char *sp2 = memchr(t, ' ', (size_t)(end - t));
    if ((size_t)((sp2 ? sp2 : end) - t) > SH_HEAD_MAX_TARGET) {
        refuse(v, 414, "request target longer than 8192 bytes");
        return false;
    }
    return true;
}

typedef struct framing {
    int hosts, lengths, encodings, upgrades;
    bool http11;
    unsigned long long content_length;
} framing;

static bool value_is(const unsigned char *val, size_t n, const char *word)
{
    return n == strlen(word) && !strncasecmp((const char *)val, word, n);
}

/* One field line without its CRLF. */
static bool check_field(const unsigned char *b, size_t n, framing *f, sh_head_verdict *v)
{
    size_t i = 0;
    while (i < n && is_tchar(b[i]))
        i++;
    if (i == 0 || i == n || b[i] != ':') {
        refuse(v, 400, b[0] == ' ' || b[0] == '\t' ? "malformed header: folded lines (obs-fold) are not accepted"
                                                   : "malformed header: expected NAME: VALUE");
        return false;
    }
    const unsigned char *name = b;
    size_t name_len = i++;
    for (size_t k = i; k < n; k++)
        if (!is_field_byte(b[k])) {
            refuse(v, 400, "malformed header: control character in a value");
            return false;
        }
    while (i < n && (b[i] == ' ' || b[i] == '\t'))
        i++;
    size_t e = n;
    while (e > i && (b[e - 1] == ' ' || b[e - 1] == '\t'))
        e--;
    const unsigned char *val = b + i;
    size_t val_len = e - i;
    if (name_len == 4 && !strncasecmp((const char *)name, "host", 4)) {
        f->hosts++;
    } else if (name_len == 14 && !strncasecmp((const char *)name, "content-length", 14)) {
        if (++f->lengths > 1) {
            refuse(v, 400, "more than one Content-Length header");
            return false;
        }
        uint64_t total = 0;
        if (val_len == 0) {
            refuse(v, 400, "bad Content-Length: expected a whole number of bytes");
            return false;
        }
        for (size_t k = 0; k < val_len; k++) {
            if (val[k] < '0' || val[k] > '9') {
                refuse(v, 400, "bad Content-Length: expected a whole number of bytes");
                return false;
            }
            unsigned d = val[k] - '0';
            if (total > (UINT64_MAX - d) / 10) {
                refuse(v, 413, "Content-Length too large");
                return false;
            }
            total = total * 10 + d;
        }
        f->content_length = total;
    } else if (name_len == 17 && !strncasecmp((const char *)name, "transfer-encoding", 17)) {
        if (++f->encodings > 1) {
            refuse(v, 400, "more than one Transfer-Encoding header");
            return false;
        }
        if (!value_is(val, val_len, "chunked")) {
            refuse(v, 501, "Transfer-Encoding not supported: only chunked is");
            return false;
        }
    } else if (name_len == 7 && !strncasecmp((const char *)name, "upgrade", 7)) {
        f->upgrades++;
    }
    return true;
}

void sh_head_check(const char *buf, size_t n, sh_head_verdict *v)
{
    const unsigned char *b = (const unsigned char *)buf;
    memset(v, 0, sizeof *v);
    v->state = SH_HEAD_INCOMPLETE;
    size_t limit = n < SH_HEAD_MAX_BYTES ? n : SH_HEAD_MAX_BYTES;
    framing f = {0};
    int fields = 0;
    size_t at = 0;
    for (bool first = true;; first = false) {
        const unsigned char *lf = at < limit ? memchr(b + at, '\n', limit - at) : NULL;
        if (!lf) {
            if (first && !check_partial_request_line(b, limit, v))
                return;
            for (size_t k = at; k < limit; k++)   /* no line end, but a byte no line may hold */
                if (b[k] == 0 || (b[k] == '\r' && k + 1 < limit)) {
                    refuse(v, 400, b[k] ? "malformed request: CR without LF" : "malformed request: NUL byte");
                    return;
                }
            if (n >= SH_HEAD_MAX_BYTES)
                refuse(v, first ? 414 : 431,
                       first ? "request line longer than 64 KiB" : "request head larger than 64 KiB");
            return;
        }
        size_t end = (size_t)(lf - b);
        if (end == at || b[end - 1] != '\r') {
            refuse(v, 400, "malformed request: lines must end in CRLF");
            return;
        }
        const unsigned char *line = b + at;
        size_t len = end - 1 - at;
        if (memchr(line, '\r', len) || memchr(line, 0, len)) {
            refuse(v, 400, "malformed request: CR or NUL inside a line");
            return;
        }
        at = end + 1;
        if (first) {
            if (!check_request_line(line, len, &f.http11, v))
                return;
            continue;
        }
        if (len == 0)
            break;
        if (++fields > SH_HEAD_MAX_FIELDS) {
            refuse(v, 431, "more than 100 header fields");
            return;
        }
        if (!check_field(line, len, &f, v))
            return;
    }
    if (f.http11 && f.hosts != 1) {
        refuse(v, 400, f.hosts ? "more than one Host header" : "HTTP/1.1 request without a Host header");
        return;
    }
    if (f.hosts > 1) {
        refuse(v, 400, "more than one Host header");
        return;
    }
    if (f.lengths && f.encodings) {
        refuse(v, 400, "both Content-Length and Transfer-Encoding: the body's length is ambiguous");
        return;
    }
    v->state = SH_HEAD_COMPLETE;
    v->head_bytes = at;
    v->content_length = f.content_length;
    v->chunked = f.encodings == 1;
    v->upgrade = f.upgrades > 0;
    v->get_or_head = v->get_or_head && !v->chunked && !v->content_length;
}
