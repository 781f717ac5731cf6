/* NVML through dlopen, and host memory from /proc. See nvml.h. */
#include "monitor/nvml.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The slice of nvml.h we use, written from NVIDIA's documented ABI so no header is needed. */
typedef int nvml_return;
typedef void *nvml_device;
typedef struct { unsigned long long total, free, used; } nvml_memory;
/* _v2 splits driver-reserved memory out of `used`, as nvidia-smi shows it */
typedef struct { unsigned int version; unsigned long long total, reserved, free, used; } nvml_memory_v2;
#define NVML_MEMORY_V2_VERSION ((unsigned)sizeof(nvml_memory_v2) | (2u << 24))
typedef struct { unsigned int gpu, memory; } nvml_utilization;
enum { NVML_SUCCESS = 0, NVML_ERROR_INSUFFICIENT_SIZE = 7 };
#define NVML_VALUE_NOT_AVAILABLE 0xFFFFFFFFFFFFFFFFull

struct sh_nvml {
    sh_allocator *alloc;
    void *lib;
    unsigned count;
    char driver[96];
    nvml_return (*init)(void);
    nvml_return (*shutdown)(void);
    const char *(*error_string)(nvml_return);
    nvml_return (*get_count)(unsigned *);
    nvml_return (*get_handle)(unsigned, nvml_device *);
    nvml_return (*get_name)(nvml_device, char *, unsigned);
    nvml_return (*get_memory)(nvml_device, nvml_memory *);
    nvml_return (*get_memory_v2)(nvml_device, nvml_memory_v2 *);   /* optional */
    nvml_return (*get_util)(nvml_device, nvml_utilization *);
    nvml_return (*get_driver)(char *, unsigned);
    /* the newest of ..._v3, ..._v2, the unversioned one; `procs_abi` says which */
    nvml_return (*get_procs)(nvml_device, unsigned *, void *);
    int procs_abi;
};

static void *sym(void *lib, const char *a, const char *b)
{
    void *p = dlsym(lib, a);
    return (!p && b) ? dlsym(lib, b) : p;
}

static const char *nvml_msg(const sh_nvml *nv, nvml_return r)
{
    const char *s = nv->error_string ? nv->error_string(r) : NULL;
    return s ? s : "unknown NVML error";
}

int sh_nvml_open(sh_allocator *a, const char *library, sh_nvml **out, sh_err *err)
{
    *out = NULL;
    if (!library)
        library = "libnvidia-ml.so.1";
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        if (why && strstr(why, "No such file"))
            return sh_errf(err, SHOAL_ERR_NOT_FOUND, "NVML not available: %s not found (no NVIDIA driver)", library);
        return sh_errf(err, SHOAL_ERR_NOT_FOUND, "NVML not available: %s", why ? why : library);
    }
    sh_nvml *nv = sh_calloc(a, 1, sizeof *nv);
    if (!nv) {
        dlclose(lib);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "NVML not available: out of memory");
    }
    nv->alloc = a;
    nv->lib = lib;
    *(void **)&nv->init = sym(lib, "nvmlInit_v2", "nvmlInit");
    *(void **)&nv->shutdown = sym(lib, "nvmlShutdown", NULL);
    *(void **)&nv->error_string = sym(lib, "nvmlErrorString", NULL);
    *(void **)&nv->get_count = sym(lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    *(void **)&nv->get_handle = sym(lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    *(void **)&nv->get_name = sym(lib, "nvmlDeviceGetName", NULL);
    *(void **)&nv->get_memory = sym(lib, "nvmlDeviceGetMemoryInfo", NULL);
    *(void **)&nv->get_memory_v2 = sym(lib, "nvmlDeviceGetMemoryInfo_v2", NULL);
    *(void **)&nv->get_util = sym(lib, "nvmlDeviceGetUtilizationRates", NULL);
    *(void **)&nv->get_driver = sym(lib, "nvmlSystemGetDriverVersion", NULL);
    static const char *const PROCS[] = {"nvmlDeviceGetComputeRunningProcesses_v3",
                                        "nvmlDeviceGetComputeRunningProcesses_v2",
                                        "nvmlDeviceGetComputeRunningProcesses"};
    for (int i = 0; i < 3 && !nv->get_procs; i++) {
        *(void **)&nv->get_procs = dlsym(lib, PROCS[i]);
        nv->procs_abi = 3 - i;
    }
    const char *missing = !nv->init ? "nvmlInit" : !nv->shutdown ? "nvmlShutdown" : !nv->get_count ? "nvmlDeviceGetCount"
                        : !nv->get_handle ? "nvmlDeviceGetHandleByIndex" : !nv->get_memory ? "nvmlDeviceGetMemoryInfo" : NULL;
    if (missing) {
        dlclose(lib);
        sh_free(a, nv);
        return sh_errf(err, SHOAL_ERR_BACKEND, "NVML not available: %s lacks %s", library, missing);
    }
    nvml_return r = nv->init();
    if (r != NVML_SUCCESS) {
        int rc = sh_errf(err, SHOAL_ERR_BACKEND, "NVML not available: nvmlInit failed: %s (error %d)", nvml_msg(nv, r), r);
        dlclose(lib);
        sh_free(a, nv);
        return rc;
    }
    r = nv->get_count(&nv->count);
    if (r != NVML_SUCCESS) {
        int rc = sh_errf(err, SHOAL_ERR_BACKEND, "NVML not available: nvmlDeviceGetCount failed: %s", nvml_msg(nv, r));
        nv->shutdown();
        dlclose(lib);
        sh_free(a, nv);
        return rc;
    }
    if (nv->get_driver && nv->get_driver(nv->driver, sizeof nv->driver) != NVML_SUCCESS)
        nv->driver[0] = '\0';
    *out = nv;
    return 0;
}

void sh_nvml_close(sh_nvml *nv)
{
    if (!nv)
        return;
    nv->shutdown();
    dlclose(nv->lib);
    sh_free(nv->alloc, nv);
}

unsigned sh_nvml_device_count(const sh_nvml *nv) { return nv->count; }
const char *sh_nvml_driver_version(const sh_nvml *nv) { return nv->driver; }

/* The process list's element size changed under one name: R535 drivers wrote 32-byte
 * entries from ..._v3 (with usedGpuCcProtectedMemory), others 24 bytes, the unversioned
 * call 16. We zero the buffer and take 24 unless an entry read that way has PID 0, which
 * a real process never has, while 32-byte entries read at 24 land on a zero field. */
static void read_procs(const unsigned char *buf, unsigned n, int abi, pid_t self, int64_t *mine)
{
    size_t stride = abi == 1 ? 16 : 24;
    if (abi == 3)
        for (unsigned i = 0; i < n; i++) {
            unsigned pid;
            memcpy(&pid, buf + 24 * i, sizeof pid);
            if (pid == 0) {
                stride = 32;
                break;
            }
        }
    *mine = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned pid;
        unsigned long long used;
        memcpy(&pid, buf + stride * i, sizeof pid);
        memcpy(&used, buf + stride * i + 8, sizeof used);
        if (pid == (unsigned)self) {
            if (used == NVML_VALUE_NOT_AVAILABLE) {
                *mine = -1;
                return;
            }
            *mine += (int64_t)used;
        }
    }
}

int sh_nvml_sample(sh_nvml *nv, unsigned index, sh_gpu_sample *s, sh_err *err)
{
    memset(s, 0, sizeof *s);
    s->index = index;
    s->util_gpu = s->util_mem = -1;
    s->process_used = -1;
    if (index >= nv->count)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "GPU %u: only %u devices", index, nv->count);
    nvml_device dev;
    nvml_return r = nv->get_handle(index, &dev);
    if (r != NVML_SUCCESS)
        return sh_errf(err, SHOAL_ERR_BACKEND, "GPU %u: nvmlDeviceGetHandleByIndex: %s", index, nvml_msg(nv, r));
    nvml_memory_v2 m2 = {.version = NVML_MEMORY_V2_VERSION};
    nvml_memory mem;
    if (nv->get_memory_v2 && nv->get_memory_v2(dev, &m2) == NVML_SUCCESS) {
        s->total = m2.total;
        s->used = m2.used;
        s->free = m2.free;
        s->reserved = m2.reserved;
    } else if ((r = nv->get_memory(dev, &mem)) == NVML_SUCCESS) {
        s->total = mem.total;
        s->used = mem.used;
        s->free = mem.free;
    } else {
        return sh_errf(err, SHOAL_ERR_BACKEND, "GPU %u: nvmlDeviceGetMemoryInfo: %s", index, nvml_msg(nv, r));
    }
    if (!nv->get_name || nv->get_name(dev, s->name, sizeof s->name) != NVML_SUCCESS)
        snprintf(s->name, sizeof s->name, "GPU %u", index);
    nvml_utilization u;
    if (nv->get_util && nv->get_util(dev, &u) == NVML_SUCCESS) {
        s->util_gpu = (int)u.gpu;
        s->util_mem = (int)u.memory;
    }
    if (!nv->get_procs)
        return 0;
    /* Ask for the count, then read; processes may start between the calls, so retry a few
     * times with room to spare. */
    unsigned n = 0;
    r = nv->get_procs(dev, &n, NULL);
    if (r != NVML_SUCCESS && r != NVML_ERROR_INSUFFICIENT_SIZE)
        return 0;   /* no permission or not supported: process usage stays unknown */
    for (int attempt = 0; attempt < 3; attempt++) {
        unsigned cap = n + 8;
        size_t bytes;
        if (!sh_mul_size(cap, 32, &bytes))
            return 0;
        unsigned char *buf = sh_calloc(nv->alloc, 1, bytes);
        if (!buf)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "GPU %u: out of memory listing processes", index);
        n = cap;
        r = nv->get_procs(dev, &n, buf);
        if (r == NVML_SUCCESS) {
            s->n_processes = n;
            read_procs(buf, n, nv->procs_abi, getpid(), &s->process_used);
        }
        sh_free(nv->alloc, buf);
        if (r != NVML_ERROR_INSUFFICIENT_SIZE)
            break;
    }
    return 0;
}

/* ---- host ------------------------------------------------------------------------------- */

/* The value in kB of the line starting with `key` ("VmRSS:"), in bytes; 0 when absent. */
static uint64_t kb_field(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *line = text; line && *line;) {
        if (!strncmp(line, key, kl)) {
            char *end;
            unsigned long long v = strtoull(line + kl, &end, 10);
            if (end == line + kl)
                return 0;
            return v > UINT64_MAX / 1024 ? UINT64_MAX : (uint64_t)v * 1024;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return 0;
}

void sh_host_parse_status(const char *text, sh_host_sample *out)
{
    out->rss = kb_field(text, "VmRSS:");
    out->peak_rss = kb_field(text, "VmHWM:");
}

void sh_host_parse_meminfo(const char *text, sh_host_sample *out)
{
    out->total = kb_field(text, "MemTotal:");
    out->available = kb_field(text, "MemAvailable:");
}

static int read_small(const char *path, char *buf, size_t cap, sh_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sh_errf(err, SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    buf[n] = '\0';
    return 0;
}

int sh_host_sample_read(sh_host_sample *out, sh_err *err)
{
    char buf[8192];
    memset(out, 0, sizeof *out);
    int rc = read_small("/proc/self/status", buf, sizeof buf, err);
    if (rc)
        return rc;
    sh_host_parse_status(buf, out);
    /* MemTotal and MemAvailable are among the first lines; 8 KiB holds them */
    if ((rc = read_small("/proc/meminfo", buf, sizeof buf, err)))
        return rc;
    sh_host_parse_meminfo(buf, out);
    return 0;
}
