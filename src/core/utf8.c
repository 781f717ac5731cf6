#include "core/utf8.h"

#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (1..4), or 0 when s[0] does not start one
 * (RFC 3629: the second byte's range depends on the first, which rules out overlong forms,
 * UTF-16 surrogates and code points above U+10FFFF). */
static size_t sequence_length(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0;
        else if (c == 0xed)
            hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90;
        else if (c == 0xf4)
            hi = 0x8f;
    } else {
        return 0;
    }
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

bool sh_utf8_valid(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = sequence_length(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

const char *sh_utf8_clean(const char *s, char *buf, size_t cap)
{
    if (sh_utf8_valid(s))
        return s;
    static const char replacement[] = "\xef\xbf\xbd";   /* U+FFFD */
    const unsigned char *p = (const unsigned char *)s;
    size_t at = 0;
    while (*p) {
        size_t n = sequence_length(p);
        const char *from = n ? (const char *)p : replacement;
        size_t len = n ? n : 3;
        if (at + len >= cap)
            break;
        memcpy(buf + at, from, len);
        at += len;
        p += n ? n : 1;
    }
    buf[at] = '\0';
    return buf;
}
