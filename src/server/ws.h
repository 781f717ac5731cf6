/* The WebSocket protocol (RFC 6455) as far as /v1/stream needs it: the handshake's accept
 * key, and frames read from and written to a socket that libmicrohttpd handed over after
 * the upgrade.
 *
 * Why our own framing rather than libwebsockets: the server already owns its listening
 * socket, bearer-token check, connection caps and access log on libmicrohttpd; its upgrade
 * support hands over the raw socket on the same port, so a stream is admitted by exactly the
 * same checks as any request. The framing needed is small (no extensions, no TLS: a
 * terminator or HAProxy in front does that), and keeping one event model avoids a second
 * listener and a second thread model; measured against libwebsockets (docs/deploy.md,
 * tests/stream/bench_ws.c) it is as fast at 15 fps and fairer flat out. The handshake's SHA-1
 * and base64 are nettle's. Everything read is bounded: a message above the limit closes the
 * connection with status 1009 before it is buffered. */
#ifndef SHOAL_SERVER_WS_H
#define SHOAL_SERVER_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"

enum {
    SH_WS_CONT = 0x0, SH_WS_TEXT = 0x1, SH_WS_BINARY = 0x2,
    SH_WS_CLOSE = 0x8, SH_WS_PING = 0x9, SH_WS_PONG = 0xA
};

/* Close codes used by the server. */
enum {
    SH_WS_CLOSE_NORMAL = 1000, SH_WS_CLOSE_GOING_AWAY = 1001, SH_WS_CLOSE_PROTOCOL = 1002,
    SH_WS_CLOSE_BAD_DATA = 1007, SH_WS_CLOSE_POLICY = 1008, SH_WS_CLOSE_TOO_BIG = 1009
};

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64(SHA-1(key + GUID)), 28
 * characters and a NUL in out. False when the key is not 24 base64 characters. */
bool sh_ws_accept_key(const char *client_key, char out[29]);

/* Reads whole messages from one socket. `masked_only`: a server must refuse unmasked frames
 * from a client (RFC 6455 5.1); the reference client reads the server's unmasked ones. */
typedef struct sh_ws_reader {
    sh_allocator *alloc;
    int fd;
    size_t max_message;     /* payload bytes of one message (fragments together) */
    bool expect_masked;
    const uint8_t *pre;     /* bytes already read from the socket (after the handshake), used first */
    size_t pre_len;
    uint8_t *buf;           /* one message being assembled, grown up to max_message */
    size_t len, cap;
    int opcode;             /* of the message being assembled, 0 = none */
    uint8_t ctrl[125];      /* a control frame's payload, which may arrive between fragments */
} sh_ws_reader;

typedef struct sh_ws_message {
    int opcode;             /* SH_WS_TEXT, SH_WS_BINARY, SH_WS_PING, SH_WS_PONG, SH_WS_CLOSE */
    const uint8_t *data;    /* valid until the next read */
    size_t len;
} sh_ws_message;

/* Reads one complete message (blocking reads; the caller polls for readability first).
 * Returns 0 with *msg filled, or a close code to send before closing: SH_WS_CLOSE_PROTOCOL for
 * a malformed frame, SH_WS_CLOSE_TOO_BIG above max_message, SH_WS_CLOSE_GOING_AWAY when the
 * peer closed the socket or reading failed. */
int sh_ws_read(sh_ws_reader *r, sh_ws_message *msg);
void sh_ws_reader_free(sh_ws_reader *r);

/* Writes one unfragmented frame, masked with a random key when `mask` (a client must mask).
 * 0 or -1 (socket error). Not thread safe: one writer per socket at a time. */
int sh_ws_write(int fd, int opcode, const void *data, size_t len, bool mask);
/* A close frame with its status code (masked when `mask`, as a client sends it). */
int sh_ws_write_close(int fd, int code, const char *reason, bool mask);

#endif
