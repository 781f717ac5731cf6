/*
 * shoal — several vision models on one GPU (or CPU) inside one memory budget.
 *
 * Overview
 *   A shoal_runtime_t holds the models of one YAML config, a memory budget per device,
 *   the weight store (identical tensors stored once) and one activation arena per
 *   execution context. Models are loaded on demand or preloaded, evicted when idle or
 *   when a load needs room, and swapped back in from a host-side cache.
 *
 *   shoal_runtime_params p = shoal_runtime_default_params();
 *   p.config_path = "configs/aiglasses.yaml";
 *   shoal_runtime_t rt;
 *   if (shoal_runtime_create(&p, &rt) != SHOAL_OK) { ...shoal_last_error(NULL)... }
 *   shoal_image img;  shoal_image_load("frame.jpg", &img, NULL);
 *   shoal_results_t res;
 *   if (shoal_runtime_run_mode(rt, "navigation", &img, &res) == SHOAL_OK) { ... }
 *   shoal_results_destroy(res);
 *   shoal_image_free(&img);
 *   shoal_runtime_destroy(rt);
 *
 * Conventions: 0 is success, negative values are failures (enum shoal_status); every
 * handle keeps a readable message of its last failure; destroy functions accept NULL;
 * no function exits, aborts or prints for a condition a caller can cause.
 */
#ifndef SHOAL_H
#define SHOAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SHOAL_VERSION "0.1.0"

typedef enum shoal_status {
    SHOAL_OK = 0,
    SHOAL_ERR_INVALID_ARG = -1,   /* a parameter or request field is wrong */
    SHOAL_ERR_NO_MEMORY = -2,     /* an allocation failed (host or device) */
    SHOAL_ERR_BUDGET = -3,        /* the memory budget does not admit the request; nothing changed */
    SHOAL_ERR_IO = -4,            /* a file could not be read or written */
    SHOAL_ERR_PARSE = -5,         /* malformed model, config, image or request */
    SHOAL_ERR_UNSUPPORTED = -6,   /* an op, dtype, attribute or feature shoal does not implement */
    SHOAL_ERR_SHAPE = -7,         /* shapes do not agree */
    SHOAL_ERR_NOT_FOUND = -8,     /* unknown model, mode, tensor or file */
    SHOAL_ERR_BACKEND = -9,       /* the device or a device library failed */
    SHOAL_ERR_STATE = -10,        /* the call is not valid in the object's current state */
    SHOAL_ERR_TIMEOUT = -11,
    SHOAL_ERR_BUSY = -12,         /* a bounded queue is full; try again later */
    SHOAL_ERR_INTERNAL = -13      /* a bug in shoal */
} shoal_status;

/* A static string naming the status ("budget exceeded", ...). Never NULL. */
const char *shoal_status_str(int status);

typedef enum shoal_log_level {
    SHOAL_LOG_DEBUG = 0,
    SHOAL_LOG_INFO = 1,
    SHOAL_LOG_WARN = 2,
    SHOAL_LOG_ERROR = 3
} shoal_log_level;

/* Log sink; shoal never prints on its own. `msg` is valid during the call only. */
typedef void (*shoal_log_fn)(void *user, shoal_log_level level, const char *msg);

#ifdef __cplusplus
}
#endif
#endif /* SHOAL_H */
