/* The request head (request line and header fields, RFC 9112 section 2-6) checked before
 * libmicrohttpd parses it. libmicrohttpd answers the heads it cannot take (a malformed line,
 * a URI or a head larger than its memory pool, a missing Host, a bad Content-Length) with
 * its own HTML pages and offers no hook to change them; every head those would hit is
 * refused here first, so the server can answer it in JSON like any other error. The check is
 * stricter than libmicrohttpd (no obs-fold, no bare LF, no whitespace before a colon, one
 * framing header), so a head that passes never reaches one of its error pages. */
#ifndef SHOAL_SERVER_HEAD_H
#define SHOAL_SERVER_HEAD_H

#include <stdbool.h>
#include <stddef.h>

/* A head of more bytes than this (its blank line included) is answered 431. */
#define SH_HEAD_MAX_BYTES ((size_t)64 << 10)
/* A request target longer than this is answered 414 as soon as it is seen. */
#define SH_HEAD_MAX_TARGET ((size_t)8 << 10)
/* More header fields than this are answered 431: libmicrohttpd keeps a record per field in
 * its per-connection pool, so their number bounds that pool as the byte limit bounds its
 * read buffer. */
#define SH_HEAD_MAX_FIELDS 100

typedef enum sh_head_state {
    SH_HEAD_INCOMPLETE,   /* no error so far, and the blank line has not arrived */
    SH_HEAD_COMPLETE,     /* a whole head that libmicrohttpd will take */
    SH_HEAD_REFUSED       /* answer `status` with `reason` and close */
} sh_head_state;

typedef struct sh_head_verdict {
    sh_head_state state;
    unsigned status;      /* SH_HEAD_REFUSED: 400, 413, 414, 431, 501 or 505 */
    const char *reason;   /* SH_HEAD_REFUSED: a static sentence naming what is wrong */
    size_t head_bytes;    /* SH_HEAD_COMPLETE: the head's length, its blank line included */
    /* SH_HEAD_COMPLETE: how the body is framed (RFC 9112 section 6.3; a request with neither
     * header has none), and whether the request asks to switch protocols, after which the
     * connection may stop being HTTP. */
    unsigned long long content_length;
    bool chunked;
    bool upgrade;
    /* SH_HEAD_COMPLETE: the method is GET or HEAD and there is no body (a probe, perhaps) */
    bool get_or_head;
    const char *target;   /* the request target, pointing into the checked bytes */
    size_t target_len;
} sh_head_verdict;

/* Checks the first `n` bytes a client sent on a connection (any bytes, no terminator
 * needed). More bytes never turn a refusal into an acceptance, so a caller may refuse as
 * soon as the verdict says so. */
void sh_head_check(const char *buf, size_t n, sh_head_verdict *v);

#endif
