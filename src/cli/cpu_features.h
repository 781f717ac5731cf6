/* The x86 vector extensions this machine has, as benchmark metadata and in shoal inspect. */
#ifndef SHOAL_CLI_CPU_FEATURES_H
#define SHOAL_CLI_CPU_FEATURES_H
#include <stddef.h>

/* Space-separated names as lscpu spells them, of those that decide which kernels run
 * ("sse4_1 avx avx2 fma avx512f avx512bw avx512vl avx512_vnni avx512_bf16 avx_vnni" at most);
 * "none" on a CPU without any or another architecture. */
void cli_cpu_features(char *buf, size_t cap);

#endif
