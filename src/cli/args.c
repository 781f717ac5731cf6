#include "cli/args.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int cli_int(const char *cmd, const char *flag, const char *text, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    if (!text || end == text || *end || errno || v < lo || v > hi) {
        fprintf(stderr, "shoal %s: %s expects an integer in %lld..%lld, got '%s'\n", cmd, flag, lo, hi,
                text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_int32(const char *cmd, const char *flag, const char *text, int lo, int hi, int *out)
{
    long long v;
    if (cli_int(cmd, flag, text, lo, hi, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

int cli_double(const char *cmd, const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = text ? strtod(text, &end) : NAN;
    if (!text || end == text || *end || errno || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "shoal %s: %s expects a number in %g..%g, got '%s'\n", cmd, flag, lo, hi,
                text ? text : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cli_size(const char *cmd, const char *flag, const char *text, bool allow_percent, sh_config_size *out)
{
    char why[128];
    sh_config_size s;
    if (!text || sh_config_parse_size(text, allow_percent, &s, why, sizeof why) != 0) {
        fprintf(stderr, "shoal %s: %s expects a size such as 4096, 512MB or 1.5GiB%s, got '%s' (%s)\n", cmd, flag,
                allow_percent ? " or a percentage such as 60%" : "", text ? text : "", text ? why : "missing");
        return -1;
    }
    *out = s;
    return 0;
}
