/* NVIDIA's management library (NVML), loaded at run time, and the host's memory figures.
 *
 * shoal has no build dependency on the driver: sh_nvml_open dlopens libnvidia-ml.so.1 and
 * resolves the few functions it needs. On a machine without the driver it fails with a
 * message a person can act on ("NVML not available: libnvidia-ml.so.1 not found (no NVIDIA
 * driver)") and the caller carries on with the host figures, which come from /proc.
 *
 *   sh_nvml *nv;  sh_err err;
 *   if (sh_nvml_open(alloc, NULL, &nv, &err) == 0) {
 *       for (unsigned i = 0; i < sh_nvml_device_count(nv); i++) {
 *           sh_gpu_sample s;
 *           if (sh_nvml_sample(nv, i, &s, &err) == 0) ... s.used ...
 *       }
 *       sh_nvml_close(nv);
 *   } else puts(err.msg);
 *
 * All state lives in the sh_nvml object (the dlopen handle, the function pointers); NVML's
 * own init count makes several objects in one process safe. Calls on one object are not
 * synchronised: use one per thread or lock around it. */
#ifndef SHOAL_MONITOR_NVML_H
#define SHOAL_MONITOR_NVML_H

#include <stdbool.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"

typedef struct sh_nvml sh_nvml;

typedef struct sh_gpu_sample {
    unsigned index;
    char name[96];
    uint64_t total, used, free;  /* bytes, as nvidia-smi shows them (nvmlDeviceGetMemoryInfo_v2) */
    uint64_t reserved;           /* driver-reserved bytes, outside `used` (0 with the v1 query,
                                    which counts them in `used`) */
    int util_gpu;                /* % of time a kernel ran over the last sample period; -1 unknown */
    int util_mem;                /* % of time device memory was read or written; -1 unknown */
    int64_t process_used;        /* bytes this process holds on the device; -1 when NVML does not
                                    show it (no permission, or a PID namespace hides our PID) */
    unsigned n_processes;        /* compute processes NVML lists on the device */
} sh_gpu_sample;

/* Loads `library` (NULL = "libnvidia-ml.so.1") and initialises NVML. On success *out is freed
 * with sh_nvml_close. On failure *out is NULL and err says why: SHOAL_ERR_NOT_FOUND when the
 * library is absent, SHOAL_ERR_BACKEND when it lacks a function or nvmlInit fails (driver
 * not loaded, version mismatch), SHOAL_ERR_NO_MEMORY. The message starts "NVML not available: ". */
int sh_nvml_open(sh_allocator *a, const char *library, sh_nvml **out, sh_err *err);
void sh_nvml_close(sh_nvml *nv);  /* accepts NULL */

unsigned sh_nvml_device_count(const sh_nvml *nv);
const char *sh_nvml_driver_version(const sh_nvml *nv);   /* "" when unknown */

/* Reads device `index` now. Fields NVML cannot give are -1 (utilisation, process usage);
 * a failed memory query fails the call with SHOAL_ERR_BACKEND. */
int sh_nvml_sample(sh_nvml *nv, unsigned index, sh_gpu_sample *out, sh_err *err);

/* Host memory from /proc. Fields the kernel does not give are 0. */
typedef struct sh_host_sample {
    uint64_t rss;              /* VmRSS of this process */
    uint64_t peak_rss;         /* VmHWM */
    uint64_t total;            /* MemTotal */
    uint64_t available;        /* MemAvailable */
} sh_host_sample;

int sh_host_sample_read(sh_host_sample *out, sh_err *err);

/* The parsers behind it, on text (for tests): "Key:   123 kB" lines. */
void sh_host_parse_status(const char *text, sh_host_sample *out);
void sh_host_parse_meminfo(const char *text, sh_host_sample *out);

#endif
