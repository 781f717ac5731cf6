#include "server/framing.h"

#include <string.h>

static bool is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static unsigned hex_value(unsigned char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static size_t refuse(sh_head_verdict *v, unsigned status, const char *reason, uint64_t checked)
{
    v->state = SH_HEAD_REFUSED;
    v->status = status;
    v->reason = reason;
    return (size_t)checked;
}

static size_t incomplete(sh_head_verdict *v, uint64_t checked)
{
    v->state = SH_HEAD_INCOMPLETE;
    return (size_t)checked;
}

void sh_framing_init(sh_framing *f, uint64_t max_chunk)
{
    memset(f, 0, sizeof *f);
    f->next = SH_FRAMING_HEAD;
    f->max_chunk = max_chunk;
}

void sh_framing_passed(sh_framing *f, size_t n)
{
    if (f->next != SH_FRAMING_TUNNEL)
        f->checked -= n < f->checked ? n : f->checked;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* chunk-size [chunk-ext] CRLF (RFC 9112 section 7.1), the line in u[0..m) which may not be
 * whole yet. Returns 0 when it is not, else the line's length with its CRLF; *size is the
 * chunk's. A bad line sets v (refused). */
static size_t chunk_size_line(const unsigned char *u, size_t m, uint64_t *size, sh_head_verdict *v)
{
    size_t i = 0;
    uint64_t value = 0;
    while (i < m && is_hex(u[i])) {
        if (i == 16) {
            refuse(v, 400, "bad chunk: a chunk size has more than 16 hex digits", 0);
            return 0;
        }
        value = value << 4 | hex_value(u[i]);
        i++;
    }
    if (i == m)
        return 0;
    if (i == 0) {
        refuse(v, 400, "bad chunk: expected a chunk size in hex", 0);
        return 0;
    }
    /* No whitespace before the extensions: RFC 9112 allows it, libmicrohttpd does not. */
    if (i < m && u[i] == ';')   /* extensions: any field bytes up to the line's end */
        while (i < m && (u[i] == '\t' || (u[i] >= ' ' && u[i] != 0x7f)))
            i++;
    if (i >= SH_FRAMING_MAX_LINE) {
        refuse(v, 400, "bad chunk: a chunk-size line longer than 1024 bytes", 0);
        return 0;
    }
    if (i == m || (u[i] == '\r' && i + 1 == m))
        return 0;
    if (u[i] != '\r' || u[i + 1] != '\n') {
        refuse(v, 400, "bad chunk: the chunk-size line must end in CRLF", 0);
        return 0;
    }
    *size = value;
    return i + 2;
}

/* A trailer field line (NAME: VALUE CRLF) or the blank line ending the body, in u[0..m).
 * Returns 0 when it is not whole yet, else its length with its CRLF. */
static size_t trailer_line(const unsigned char *u, size_t m, sh_head_verdict *v)
{
    size_t i = 0;
    while (i < m && is_tchar(u[i]))
        i++;
    if (i < m && i > 0 && u[i] != ':') {
        refuse(v, 400, "bad chunked body: expected a trailer field NAME: VALUE or the closing CRLF", 0);
        return 0;
    }
    if (i < m && i > 0)
        for (i++; i < m && (u[i] == '\t' || (u[i] >= ' ' && u[i] != 0x7f)); i++)
            ;
    if (i >= SH_FRAMING_MAX_LINE) {
        refuse(v, 400, "bad chunked body: a trailer line longer than 1024 bytes", 0);
        return 0;
    }
    if (i == m || (u[i] == '\r' && i + 1 == m))
        return 0;
    if (u[i] != '\r' || u[i + 1] != '\n') {
        refuse(v, 400, i == 0 ? "bad chunked body: expected a trailer field or the closing CRLF"
                              : "bad chunked body: a trailer line must end in CRLF",
               0);
        return 0;
    }
    return i + 2;
}

size_t sh_framing_check(sh_framing *f, const char *buf, size_t n, sh_head_verdict *v)
{
    memset(v, 0, sizeof *v);
    for (;;) {
        if (f->next == SH_FRAMING_TUNNEL || f->checked >= n) {
            v->state = SH_HEAD_COMPLETE;
            return n;
        }
        const unsigned char *u = (const unsigned char *)buf + f->checked;
        size_t m = n - (size_t)f->checked;
        switch (f->next) {
        case SH_FRAMING_HEAD: {
            /* An empty line between requests is ignored (RFC 9112 section 2.2), as
             * libmicrohttpd does: some clients end a body with an extra CRLF. */
            if (f->requests && u[0] == '\r' && (m == 1 || u[1] == '\n')) {
                if (m == 1)
                    return incomplete(v, f->checked);
                f->checked += 2;
                break;
            }
            sh_head_check((const char *)u, m, v);
            if (v->state != SH_HEAD_COMPLETE)
                return (size_t)f->checked;
            f->requests++;
            f->checked += v->head_bytes;
            if (v->upgrade) {
                f->next = SH_FRAMING_TUNNEL;
            } else if (v->chunked) {
                f->next = SH_FRAMING_CHUNK_SIZE;
            } else {
                f->checked = add_sat(f->checked, v->content_length);
            }
            break;
        }
        case SH_FRAMING_CHUNK_SIZE: {
            uint64_t size = 0;
            size_t len = chunk_size_line(u, m, &size, v);
            if (v->state == SH_HEAD_REFUSED)
                return (size_t)f->checked;
            if (len == 0)
                return incomplete(v, f->checked);
            if (size > f->max_chunk)
                return refuse(v, 413, "bad chunk: a chunk larger than the body limit", f->checked);
            f->checked += len;
            if (size) {
                f->checked = add_sat(f->checked, size);
                f->next = SH_FRAMING_CHUNK_END;
            } else {
                f->next = SH_FRAMING_TRAILER;
                f->trailer_bytes = 0;
            }
            break;
        }
        case SH_FRAMING_CHUNK_END:
            if (u[0] != '\r' || (m > 1 && u[1] != '\n'))
                return refuse(v, 400, "bad chunk: its data is not followed by CRLF (longer than its size?)",
                              f->checked);
            if (m < 2)
                return incomplete(v, f->checked);
            f->checked += 2;
            f->next = SH_FRAMING_CHUNK_SIZE;
            break;
        case SH_FRAMING_TRAILER: {
            size_t len = trailer_line(u, m, v);
            if (v->state == SH_HEAD_REFUSED)
                return (size_t)f->checked;
            if (len == 0)
                return incomplete(v, f->checked);
            f->trailer_bytes += len;
            if (f->trailer_bytes > SH_FRAMING_MAX_TRAILER)
                return refuse(v, 431, "bad chunked body: a trailer section larger than 4 KiB", f->checked);
            f->checked += len;
            if (len == 2)
                f->next = SH_FRAMING_HEAD;
            break;
        }
        case SH_FRAMING_TUNNEL:
            break;
        }
    }
}
