/* The byte stream a client sends on one HTTP/1.1 connection, checked request after request:
 * each request head (server/head.h), then its body as the head frames it (Content-Length
 * bytes, or chunks: each chunk-size line, the CRLF after each chunk's data, the trailer
 * section). libmicrohttpd answers whatever it cannot parse on a kept-alive connection, a bad
 * chunk included, with its own HTML pages; the gate runs every byte it passes on through this
 * check, so it can answer those in JSON instead.
 *
 * The check keeps no copy of the stream. The caller shows it the bytes that have arrived and
 * not been passed on yet (from the stream's current position), and learns how many of them
 * are checked and may be passed on; it then tells how many it did pass on. A unit that is
 * not whole yet (a head, a chunk-size line) is looked at again when more bytes came. Body
 * bytes are never looked at. After a request that asks to switch protocols the rest of the
 * stream is passed on unchecked: it may not be HTTP any more. */
#ifndef SHOAL_SERVER_FRAMING_H
#define SHOAL_SERVER_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "server/head.h"

/* A chunk-size line (with any chunk extensions) or a trailer field line longer than this is
 * answered 400. */
#define SH_FRAMING_MAX_LINE 1024
/* A trailer section larger than this is answered 431: libmicrohttpd keeps trailer fields in
 * the connection's memory pool beside the head. */
#define SH_FRAMING_MAX_TRAILER 4096

typedef enum sh_framing_next {
    SH_FRAMING_HEAD,        /* a request head */
    SH_FRAMING_CHUNK_SIZE,  /* a chunk-size line */
    SH_FRAMING_CHUNK_END,   /* the CRLF after a chunk's data */
    SH_FRAMING_TRAILER,     /* a trailer field line, or the blank line ending the body */
    SH_FRAMING_TUNNEL       /* not HTTP any more: everything passes */
} sh_framing_next;

typedef struct sh_framing {
    uint64_t checked;       /* bytes from the stream's position that are checked already */
    sh_framing_next next;   /* what follows them */
    uint64_t max_chunk;     /* a larger chunk is answered 413 */
    uint64_t requests;      /* request heads checked so far */
    size_t trailer_bytes;   /* of the trailer section being checked */
} sh_framing;

void sh_framing_init(sh_framing *f, uint64_t max_chunk);

/* Checks as much of buf[0..n) (the stream from its current position) as it can. Returns how
 * many of those bytes may be passed on; v->state says why it stopped short of n:
 * SH_HEAD_INCOMPLETE (the next unit is not whole: call again with more bytes) or
 * SH_HEAD_REFUSED (the bytes right after the returned count are bad: answer v->status and
 * close). With all n passable, v->state is SH_HEAD_COMPLETE. `f` only learns what is checked;
 * the stream's position moves with sh_framing_passed. v->reason is static; v's other
 * fields point into buf. */
size_t sh_framing_check(sh_framing *f, const char *buf, size_t n, sh_head_verdict *v);

/* `n` bytes (at most what the last check returned) were passed on. */
void sh_framing_passed(sh_framing *f, size_t n);

#endif
