#include "server/ws.h"

#include <errno.h>
#include <nettle/base64.h>
#include <nettle/sha1.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

bool sh_ws_accept_key(const char *client_key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    /* The key must decode to 16 bytes (RFC 6455 4.2.1): 24 base64 characters, "==" last. */
    if (!client_key || strlen(client_key) != 24 || client_key[21] == '=' || client_key[22] != '=' ||
        client_key[23] != '=')
        return false;
    struct base64_decode_ctx b64;
    uint8_t raw[BASE64_DECODE_LENGTH(24)];
    size_t raw_len = sizeof raw;
    base64_decode_init(&b64);
    if (!base64_decode_update(&b64, &raw_len, raw, 24, client_key) || !base64_decode_final(&b64) || raw_len != 16)
        return false;
    struct sha1_ctx sha;
    uint8_t digest[SHA1_DIGEST_SIZE];
    sha1_init(&sha);
    sha1_update(&sha, 24, (const uint8_t *)client_key);
    sha1_update(&sha, sizeof guid - 1, (const uint8_t *)guid);
    sha1_digest(&sha, sizeof digest, digest);
    base64_encode_raw(out, sizeof digest, digest);
    out[BASE64_ENCODE_RAW_LENGTH(SHA1_DIGEST_SIZE)] = '\0';
    return true;
}

/* --- reading --------------------------------------------------------------------------- */

static int read_full(sh_ws_reader *r, void *buf, size_t n)
{
    uint8_t *p = buf;
    if (r->pre_len) {
        size_t k = n < r->pre_len ? n : r->pre_len;
        memcpy(p, r->pre, k);
        r->pre += k;
        r->pre_len -= k;
        p += k;
        n -= k;
    }
    while (n) {
        ssize_t k = recv(r->fd, p, n, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void unmask(uint8_t *p, size_t n, const uint8_t key[4], size_t phase)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= key[(i + phase) & 3];
}

int sh_ws_read(sh_ws_reader *r, sh_ws_message *msg)
{
    for (;;) {
        uint8_t h[2];
        if (read_full(r, h, 2))
            return SH_WS_CLOSE_GOING_AWAY;
        bool fin = h[0] & 0x80;
        int op = h[0] & 0x0F;
        bool masked = h[1] & 0x80;
        uint64_t n = h[1] & 0x7F;
        if (h[0] & 0x70)   /* no extension was negotiated, so no reserved bit may be set */
            return SH_WS_CLOSE_PROTOCOL;
        if (masked != r->expect_masked)
            return SH_WS_CLOSE_PROTOCOL;
        if (n == 126) {
            uint8_t e[2];
            if (read_full(r, e, 2))
                return SH_WS_CLOSE_GOING_AWAY;
            n = (uint64_t)e[0] << 8 | e[1];
        } else if (n == 127) {
            uint8_t e[8];
            if (read_full(r, e, 8))
                return SH_WS_CLOSE_GOING_AWAY;
            n = 0;
            for (int i = 0; i < 8; i++)
                n = n << 8 | e[i];
        }
        bool control = op & 0x8;
        /* Everything the header alone can refute is refused before reading further. */
        if (control && (!fin || n > 125 || (op != SH_WS_CLOSE && op != SH_WS_PING && op != SH_WS_PONG)))
            return SH_WS_CLOSE_PROTOCOL;
        uint8_t key[4] = {0};
        if (masked && read_full(r, key, 4))
            return SH_WS_CLOSE_GOING_AWAY;
        if (control) {
            if (read_full(r, r->ctrl, (size_t)n))
                return SH_WS_CLOSE_GOING_AWAY;
            unmask(r->ctrl, (size_t)n, key, 0);
            msg->opcode = op;
            msg->data = r->ctrl;
            msg->len = (size_t)n;
            return 0;
        }
        if (op == SH_WS_CONT ? r->opcode == 0 : (r->opcode != 0 || (op != SH_WS_TEXT && op != SH_WS_BINARY)))
            return SH_WS_CLOSE_PROTOCOL;
        if (op != SH_WS_CONT) {
            r->opcode = op;
            r->len = 0;
        }
        if (n > r->max_message || r->len > r->max_message - (size_t)n)
            return SH_WS_CLOSE_TOO_BIG;
        size_t need = r->len + (size_t)n;
        if (need > r->cap) {
            /* a stream of equal frames settles on one buffer of the frame size */
            size_t nc = sh_grow_cap(r->cap, need, 4096, r->max_message);
            uint8_t *nb = sh_realloc(r->alloc, r->buf, nc);
            if (!nb)
                return SH_WS_CLOSE_TOO_BIG;
            r->buf = nb;
            r->cap = nc;
        }
        if (read_full(r, r->buf + r->len, (size_t)n))
            return SH_WS_CLOSE_GOING_AWAY;
        unmask(r->buf + r->len, (size_t)n, key, 0);
        r->len = need;
        if (fin) {
            msg->opcode = r->opcode;
            msg->data = r->buf;
            msg->len = r->len;
            r->opcode = 0;
            return 0;
        }
    }
}

void sh_ws_reader_free(sh_ws_reader *r)
{
    sh_free(r->alloc, r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

/* --- writing --------------------------------------------------------------------------- */

static int send_all(int fd, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int sh_ws_write(int fd, int opcode, const void *data, size_t len, bool mask)
{
    uint8_t h[14];
    size_t hn = 2;
    h[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        h[1] = (uint8_t)len;
    } else if (len <= 0xFFFF) {
        h[1] = 126;
        h[2] = (uint8_t)(len >> 8);
        h[3] = (uint8_t)len;
        hn = 4;
    } else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        hn = 10;
    }
    if (!mask) {
        struct iovec iov[2] = {{h, hn}, {(void *)data, len}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
        ssize_t k;
        do
            k = sendmsg(fd, &m, MSG_NOSIGNAL);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            return -1;
        size_t sent = (size_t)k;
        if (sent < hn)
            return send_all(fd, h + sent, hn - sent) || send_all(fd, data, len) ? -1 : 0;
        return sent - hn < len ? send_all(fd, (const uint8_t *)data + (sent - hn), len - (sent - hn)) : 0;
    }
    uint8_t key[4];
    if (getrandom(key, 4, 0) != 4)
        return -1;
    h[1] |= 0x80;
    memcpy(h + hn, key, 4);
    if (send_all(fd, h, hn + 4))
        return -1;
    /* Masked in pieces on the stack: the caller's bytes stay as they are. */
    uint8_t chunk[4096];
    const uint8_t *p = data;
    for (size_t off = 0; off < len; off += sizeof chunk) {
        size_t k = len - off < sizeof chunk ? len - off : sizeof chunk;
        memcpy(chunk, p + off, k);
        unmask(chunk, k, key, off);
        if (send_all(fd, chunk, k))
            return -1;
    }
    return 0;
}

int sh_ws_write_close(int fd, int code, const char *reason, bool mask)
{
    uint8_t b[125];
    size_t n = reason ? strlen(reason) : 0;
    if (n > sizeof b - 2)
        n = sizeof b - 2;
    b[0] = (uint8_t)(code >> 8);
    b[1] = (uint8_t)code;
    if (n)
        memcpy(b + 2, reason, n);
    return sh_ws_write(fd, SH_WS_CLOSE, b, n + 2, mask);
}
