/* Strict parsing of the CLI's flag values. Every numeric flag goes through here, so a value
 * that is not entirely a number in range ("abc", "-1" where 1.. is allowed, "2", "nan", "12x")
 * is refused with the flag, the range and the text the user gave, instead of becoming 0. */
#ifndef SHOAL_CLI_ARGS_H
#define SHOAL_CLI_ARGS_H

#include <stdbool.h>

#include "runtime/config.h"

/* Each returns 0 and sets *out, or prints "shoal CMD: FLAG expects ..., got 'TEXT'" to stderr
 * and returns -1 leaving *out untouched. `cmd` names the subcommand ("run", "serve"). */
int cli_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out);
/* An int-sized variant of cli_int for the many flags stored as int. */
int cli_int32(const char *cmd, const char *flag, const char *text, int lo, int hi, int *out);
/* A finite decimal in [lo, hi]; NaN and infinities are refused. */
int cli_double(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out);
/* A byte size as the config writes it: "4096", "512MB", "1.5GiB", and "60%" when
 * allow_percent (sh_config_parse_size). */
int cli_size(const char *cmd, const char *flag, const char *text, bool allow_percent, sh_config_size *out);

#endif
