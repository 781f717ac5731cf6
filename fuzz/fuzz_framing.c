/* libFuzzer entry for the request-stream check the server's gate runs on every byte a client
 * sends on a relayed connection (src/server/framing.c). The first input byte seeds how the
 * stream arrives and is passed on; the rest is the stream. Checked at once and in random
 * pieces (bytes arriving a few at a time, only part of what is passable passed each time), it
 * must come to the same end: the same bytes passed, the same refusal. That is what the gate
 * relies on when a unit arrives over several reads and the other side takes it partly.
 * Each verdict keeps its contract: never more passable than shown, a refusal answerable
 * (status 400..599, a reason that fits a JSON string as it is).
 * Run: build-fuzz/fuzz/fuzz_framing -max_total_time=600 CORPUS_DIR fuzz/corpus/fuzz_framing */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/framing.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct outcome {
    size_t passed;
    unsigned status;   /* 0: not refused */
} outcome;

static outcome run(const char *buf, size_t size, uint64_t max_chunk, uint32_t seed, bool pieces)
{
    sh_framing f;
    sh_framing_init(&f, max_chunk);
    size_t pos = 0, avail = pieces ? 0 : size;
    uint32_t r = seed;
    outcome o = {0, 0};
    for (;;) {
        r = r * 1103515245u + 12345u;
        if (avail < size)
            avail += 1 + (r >> 16) % 97;
        if (avail > size)
            avail = size;
        sh_head_verdict v;
        size_t k = sh_framing_check(&f, buf + pos, avail - pos, &v);
        if (k > avail - pos)
            abort();
        if (v.state == SH_HEAD_REFUSED &&
            (v.status < 400 || v.status > 599 || !v.reason || strchr(v.reason, '"') || strchr(v.reason, '\\')))
            abort();
        if (v.state == SH_HEAD_COMPLETE && k != avail - pos)
            abort();
        if (v.state == SH_HEAD_REFUSED && k == 0) {
            o.status = v.status;
            break;
        }
        size_t s = k;
        if (pieces && k > 1 && (r & 0x100))
            s = 1 + (r >> 9) % k;
        sh_framing_passed(&f, s);
        pos += s;
        if (pos == size || (k == 0 && avail == size))
            break;
    }
    o.passed = pos;
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t seed = data[0];
    /* An exact-size copy, so reading one byte past the stream is caught by the sanitizer. */
    size_t n = size - 1;
    char *buf = malloc(n ? n : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 1, n);
    /* Both limits: the server's body limit, and one small enough for a fuzzed chunk to pass. */
    const uint64_t limits[] = {16u << 20, 64};
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++) {
        outcome whole = run(buf, n, limits[i], seed, false);
        outcome parts = run(buf, n, limits[i], seed * 2654435761u + 1, true);
        if (whole.passed != parts.passed || whole.status != parts.status)
            abort();
    }
    free(buf);
    return 0;
}
