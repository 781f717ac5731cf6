/* The A/B switches of shoal_tuning (shoal.h) read from SHOAL_* environment variables, once, by
 * the command (and the GPU tests): the library itself reads no environment. The variables and
 * what they change are listed in docs/DEVELOPING.md.
 *
 *   shoal_runtime_params p = shoal_runtime_default_params();
 *   ...
 *   if (cli_runtime_tuning("run", &p) != 0)
 *       return 2;                       // the message is on stderr
 */
#ifndef SHOAL_CLI_TUNING_ENV_H
#define SHOAL_CLI_TUNING_ENV_H

#include <stdbool.h>

#include "shoal.h"

/* Fills *t from the environment (fields whose variable is unset stay as they are). Returns 0,
 * or prints "shoal CMD: SHOAL_X expects ..., got '...'" to stderr and returns -1. */
int cli_tuning_from_env(const char *cmd, shoal_tuning *t);
/* cli_tuning_from_env into p->tuning; when a switch asks for diagnostics (views, conv profile)
 * and p has no log sink, its lines go to stderr. */
int cli_runtime_tuning(const char *cmd, shoal_runtime_params *p);
/* A yes/no variable: set, non-empty and not "0". */
bool cli_env_flag(const char *name);

#endif
