/* libFuzzer entry for the cgroup CPU-quota parsers behind the default thread counts
 * (src/core/cpus.c): any text must give 0 (no limit, or not understood) or a whole number
 * of CPUs in [1, 4096], without reading past the text's end. The input is split at its
 * first NUL: before it cgroup v2's `cpu.max` line (also v1's quota), after it v1's period.
 * Run: build-fuzz/fuzz/fuzz_cpus -max_total_time=300 CORPUS_DIR fuzz/corpus/fuzz_cpus */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/cpus.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(long n)
{
    if (n < 0 || n > 4096)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* exact-size copies with their terminators, so reading past one is caught */
    const uint8_t *nul = memchr(data, 0, size);
    size_t n1 = nul ? (size_t)(nul - data) : size, n2 = nul ? size - n1 - 1 : 0;
    char *a = malloc(n1 + 1), *b = malloc(n2 + 1);
    if (!a || !b)
        abort();
    memcpy(a, data, n1);
    a[n1] = '\0';
    memcpy(b, nul ? nul + 1 : data, n2);
    b[n2] = '\0';
    check(sh_cpu_quota_from_text(a));
    check(sh_cpu_quota_from_v1(a, b));
    free(a);
    free(b);
    return 0;
}
