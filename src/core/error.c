#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *shoal_status_str(int status)
{
    switch (status) {
    case SHOAL_OK: return "ok";
    case SHOAL_ERR_INVALID_ARG: return "invalid argument";
    case SHOAL_ERR_NO_MEMORY: return "out of memory";
    case SHOAL_ERR_BUDGET: return "memory budget exceeded";
    case SHOAL_ERR_IO: return "i/o error";
    case SHOAL_ERR_PARSE: return "parse error";
    case SHOAL_ERR_UNSUPPORTED: return "unsupported";
    case SHOAL_ERR_SHAPE: return "shape mismatch";
    case SHOAL_ERR_NOT_FOUND: return "not found";
    case SHOAL_ERR_BACKEND: return "backend failure";
    case SHOAL_ERR_STATE: return "invalid state";
    case SHOAL_ERR_TIMEOUT: return "timeout";
    case SHOAL_ERR_BUSY: return "busy";
    case SHOAL_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

int sh_errf(sh_err *err, int status, const char *fmt, ...)
{
    if (!err)
        return status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = status;
    return status;
}

int sh_err_prefix(sh_err *err, int status, const char *fmt, ...)
{
    if (!err)
        return status;
    char prefix[SH_ERR_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[SH_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    size_t n = strlen(prefix);
    memcpy(err->msg, prefix, n);
    size_t rest = strnlen(old, sizeof err->msg - n - 1);
    memcpy(err->msg + n, old, rest);
    err->msg[n + rest] = '\0';
    if (err->status == SHOAL_OK)
        err->status = status;
    return err->status;
}

void sh_err_clear(sh_err *err)
{
    if (err) {
        err->status = SHOAL_OK;
        err->msg[0] = '\0';
    }
}
