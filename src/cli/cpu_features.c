/* x86 feature names through the compiler's cpuid wrapper (no /proc parsing, works in containers). */
#include "cli/cpu_features.h"

#include <stdio.h>
#include <string.h>

void cli_cpu_features(char *buf, size_t cap)
{
    if (!cap)
        return;
    buf[0] = '\0';
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    const struct {
        const char *lscpu;
        int on;
    } feats[] = {
        {"sse4_1", __builtin_cpu_supports("sse4.1")},
        {"avx", __builtin_cpu_supports("avx")},
        {"avx2", __builtin_cpu_supports("avx2")},
        {"fma", __builtin_cpu_supports("fma")},
        {"avx512f", __builtin_cpu_supports("avx512f")},
        {"avx512bw", __builtin_cpu_supports("avx512bw")},
        {"avx512vl", __builtin_cpu_supports("avx512vl")},
        {"avx512_vnni", __builtin_cpu_supports("avx512vnni")},
        {"avx512_bf16", __builtin_cpu_supports("avx512bf16")},
        {"avx_vnni", __builtin_cpu_supports("avxvnni")},
    };
    size_t used = 0;
    for (size_t i = 0; i < sizeof feats / sizeof feats[0]; i++) {
        if (!feats[i].on)
            continue;
        int w = snprintf(buf + used, cap - used, "%s%s", used ? " " : "", feats[i].lscpu);
        if (w < 0 || (size_t)w >= cap - used)
            break;
        used += (size_t)w;
    }
#endif
    if (!buf[0])
        snprintf(buf, cap, "none");
}
