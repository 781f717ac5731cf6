/* CPU count for default thread pools (see cpus.h). */
#define _GNU_SOURCE
#include "core/cpus.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The whole decimal number after optional blanks, *end the byte after it; -1 when there is none
 * (a sign, a word, an overflow). */
static long long parse_count(const char *s, const char **end)
{
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *e = NULL;
    long long v = strtoll(s, &e, 10);
    if (errno || e == s)
        return -1;
    *end = e;
    return v;
}

static long quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = quota / period + (quota % period != 0);
    return n > 4096 ? 4096 : (long)n;
}

static int only_blanks(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n')
            return 0;
    return 1;
}

/* "max", a negative quota (v1's -1), zero or anything else that is not two whole numbers means
 * no limit: parse_count refuses all of them. */
long sh_cpu_quota_from_text(const char *cpu_max)
{
    const char *e = "";
    long long quota = cpu_max ? parse_count(cpu_max, &e) : -1;
    long long period = quota > 0 ? parse_count(e, &e) : -1;
    return period > 0 && only_blanks(e) ? quota_cpus(quota, period) : 0;
}

long sh_cpu_quota_from_v1(const char *quota_us, const char *period_us)
{
    const char *e = "", *f = "";
    long long quota = quota_us ? parse_count(quota_us, &e) : -1;
    long long period = quota > 0 && only_blanks(e) && period_us ? parse_count(period_us, &f) : -1;
    return period > 0 && only_blanks(f) ? quota_cpus(quota, period) : 0;
}

/* The first line of a small file; empty when it cannot be read. */
static void read_line(const char *path, char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    if (!fgets(buf, (int)cap, f))
        buf[0] = '\0';
    fclose(f);
}

static long cgroup_quota(void)
{
    char a[128], b[128];
    read_line("/sys/fs/cgroup/cpu.max", a, sizeof a);
    long n = a[0] ? sh_cpu_quota_from_text(a) : 0;
    if (n > 0)
        return n;
    read_line("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", a, sizeof a);
    read_line("/sys/fs/cgroup/cpu/cpu.cfs_period_us", b, sizeof b);
    return a[0] && b[0] ? sh_cpu_quota_from_v1(a, b) : 0;
}

int sh_cpu_count(void)
{
    long n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n <= 0)
        n = 1;
    long q = cgroup_quota();
    if (q > 0 && q < n)
        n = q;
    return n > 4096 ? 4096 : (int)n;
}
