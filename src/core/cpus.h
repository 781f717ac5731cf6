/* How many CPUs this process may use, for the default thread counts.
 *
 * sysconf(_SC_NPROCESSORS_ONLN) counts the host's CPUs. Inside a container (a Kubernetes pod,
 * the GPU machines' 16-core slices of a larger host) that is several times what the process
 * may run on, and a pool of that many spinning workers on a few CPUs runs slower than one
 * thread. So the count is the CPUs in the affinity mask, lowered to the cgroup's CPU quota
 * (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), rounded up.
 *
 *   int n = sh_cpu_count();                        // >= 1
 *   long q = sh_cpu_quota_from_text("150000 100000"); // 2: the quota in whole CPUs, rounded up */
#ifndef SHOAL_CORE_CPUS_H
#define SHOAL_CORE_CPUS_H

int sh_cpu_count(void);

/* The CPUs a cgroup v2 `cpu.max` line ("QUOTA PERIOD" or "max PERIOD") allows, rounded up;
 * 0 when it sets no limit or does not parse. */
long sh_cpu_quota_from_text(const char *cpu_max);

/* The same for cgroup v1's two files' contents (quota -1: no limit). */
long sh_cpu_quota_from_v1(const char *quota_us, const char *period_us);

#endif
