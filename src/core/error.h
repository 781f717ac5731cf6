/* Error reporting inside shoal: a status code plus a readable message kept by the caller. */
#ifndef SHOAL_CORE_ERROR_H
#define SHOAL_CORE_ERROR_H

#include "shoal.h"

#define SH_ERR_MSG_MAX 512

typedef struct sh_err {
    int status;
    char msg[SH_ERR_MSG_MAX];
} sh_err;

/* Records status and a printf-style message in *err (err may be NULL); returns status,
 * so a failure path reads `return sh_errf(err, SHOAL_ERR_PARSE, "node %s: ...", n);`. */
int sh_errf(sh_err *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Prefixes the message already in *err with more context ("model obstacle: ").
 * Returns err->status (or `status` when err is NULL). */
int sh_err_prefix(sh_err *err, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void sh_err_clear(sh_err *err);

#endif
