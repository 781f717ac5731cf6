/* The CPU backend describing itself, for shoal inspect and shoal bench (not part of backend.h:
 * only the CPU backend has these answers). */
#ifndef SHOAL_CPU_REPORT_H
#define SHOAL_CPU_REPORT_H
#include <stddef.h>

#include "backends/backend.h"

/* The instruction set oneDNN's kernels use in this process: the best the CPU has, or less
 * where ONEDNN_MAX_CPU_ISA caps it ("avx2", "avx512_core_vnni", ...). Static string. */
const char *sh_backend_cpu_isa(void);

/* One line on how node `node` of a program the CPU backend compiled runs, e.g. for a Conv
 * "oneDNN brgconv:avx512_core, 2 bands, src NCHW->NHWC, dst NHWC (to convs)". Returns 0 with
 * buf filled, or -1 (buf untouched) for a node with nothing to report (not a Conv, dead, out
 * of range). */
int sh_backend_cpu_describe_node(const sh_program *p, int node, char *buf, size_t cap);

#endif
