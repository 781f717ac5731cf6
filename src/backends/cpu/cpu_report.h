/* The CPU backend describing itself, for shoal inspect and shoal bench (not part of backend.h:
 * only the CPU backend has these answers). */
#ifndef SHOAL_CPU_REPORT_H
#define SHOAL_CPU_REPORT_H
#include <stddef.h>

#include "backends/backend.h"

/* The instruction set oneDNN's kernels use in this process: the best the CPU has, or less
 * where ONEDNN_MAX_CPU_ISA caps it ("avx2", "avx512_core_vnni", ...). Static string. */
const char *sh_backend_cpu_isa(void);

/* What the CPU backend's layout pass chose for a program (backends/cpu/layout.c). */
typedef struct sh_cpu_layout_stats {
    int transposes;         /* Conv sides that transpose NCHW <-> NHWC at run time */
    int nhwc_tensors;       /* activations stored NHWC */
    int nhwc_other_ops;     /* nodes other than Convs that run on NHWC tensors */
} sh_cpu_layout_stats;

/* The layout choices of a program the CPU backend compiled (no other backend's); -1 for NULL. */
int sh_backend_cpu_layout_stats(const sh_program *p, sh_cpu_layout_stats *out);

/* One line on how node `node` of a program the CPU backend compiled runs, e.g. for a Conv
 * "oneDNN brgconv:avx512_core, 2 bands, src NCHW->NHWC, dst NHWC", for another node that runs
 * on NHWC tensors "NHWC". Returns 0 with buf filled, or -1 (buf untouched) for a node with
 * nothing to report (neither, dead, out of range). */
int sh_backend_cpu_describe_node(const sh_program *p, int node, char *buf, size_t cap);

#endif
