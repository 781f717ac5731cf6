/* libFuzzer entry for the request-head check in front of libmicrohttpd (src/server/head.c):
 * any bytes must give a verdict without reading past them, and the verdict must keep its
 * contract: a complete head ends in its blank line within the limit, a refusal has an
 * answerable status and a reason that fits a JSON string as it is, and the verdict on a
 * prefix never contradicts the verdict on the whole (what the gate relies on when it checks
 * a head again as it grows).
 * Run: build-fuzz/fuzz/fuzz_head -max_total_time=600 CORPUS_DIR fuzz/corpus/fuzz_head */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_contract(const char *buf, size_t n, const sh_head_verdict *v)
{
    switch (v->state) {
    case SH_HEAD_INCOMPLETE:
        if (n >= SH_HEAD_MAX_BYTES)
            abort();   /* a head that never ends must be refused at the limit */
        break;
    case SH_HEAD_COMPLETE:
        if (v->head_bytes < 4 || v->head_bytes > n || v->head_bytes > SH_HEAD_MAX_BYTES ||
            memcmp(buf + v->head_bytes - 4, "\r\n\r\n", 4))
            abort();
        break;
    case SH_HEAD_REFUSED:
        if (v->status < 400 || v->status > 599 || !v->reason || strchr(v->reason, '"') || strchr(v->reason, '\\'))
            abort();
        break;
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy, so reading one byte past the input is caught by the sanitizer. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    sh_head_verdict whole;
    sh_head_check(buf, size, &whole);
    check_contract(buf, size, &whole);
    /* A few prefixes: each must be incomplete, or already the verdict of the whole (a
     * complete head at the same length, a refusal with the same status). */
    size_t cuts[] = {size / 2, size ? size - 1 : 0, whole.head_bytes ? whole.head_bytes - 1 : 0};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        sh_head_verdict part;
        sh_head_check(buf, cuts[i], &part);
        check_contract(buf, cuts[i], &part);
        if (part.state == SH_HEAD_COMPLETE &&
            (whole.state != SH_HEAD_COMPLETE || whole.head_bytes != part.head_bytes))
            abort();
        if (part.state == SH_HEAD_REFUSED && (whole.state != SH_HEAD_REFUSED || whole.status != part.status))
            abort();
        if (whole.state == SH_HEAD_COMPLETE && cuts[i] < whole.head_bytes && part.state != SH_HEAD_INCOMPLETE)
            abort();
    }
    free(buf);
    return 0;
}
