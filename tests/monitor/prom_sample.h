/* A sample exposition that uses every feature of the writer, shared by the format test and
 * the promtool test. Returns 0 or a status. */
#ifndef SHOAL_TEST_PROM_SAMPLE_H
#define SHOAL_TEST_PROM_SAMPLE_H

#include "monitor/prom.h"

static int write_sample(sh_prom *p, sh_err *err)
{
    int rc;
    sh_prom_label dev[] = {{"device", "cuda:0"}, {"kind", "weights"}};
    if ((rc = sh_prom_family(p, "shoal_device_bytes", SH_PROM_GAUGE, "Bytes in use on a device, by kind.", err)) ||
        (rc = sh_prom_sample(p, dev, 2, 123456789, err)))
        return rc;
    dev[1].value = "arena";
    if ((rc = sh_prom_sample(p, dev, 2, 0.1, err)))
        return rc;
    /* a label value with every character that needs escaping, and UTF-8 */
    sh_prom_label odd[] = {{"model", "we\\ird \"name\"\nline2 \xe7\x9b\xb2\xe9\x81\x93"}, {"kind", "host_cache"}};
    if ((rc = sh_prom_family(p, "shoal_model_bytes", SH_PROM_GAUGE, "Bytes a model holds.\nSecond line with \\.", err)) ||
        (rc = sh_prom_sample(p, odd, 2, 4096, err)) ||
        (rc = sh_prom_family(p, "shoal_model_loads", SH_PROM_COUNTER, "Times a model was loaded.", err)))
        return rc;
    sh_prom_label m[] = {{"model", "obstacle"}};
    if ((rc = sh_prom_sample(p, m, 1, 7, err)))
        return rc;
    m[0].value = "hand";
    if ((rc = sh_prom_sample(p, m, 1, 0, err)) ||
        (rc = sh_prom_family(p, "shoal_model_evictions_total", SH_PROM_COUNTER, "Times a model was evicted.", err)) ||
        (rc = sh_prom_sample(p, m, 1, 3, err)) ||
        (rc = sh_prom_family(p, "shoal_up", SH_PROM_GAUGE, "1 while the runtime serves.", err)) ||
        (rc = sh_prom_sample(p, NULL, 0, 1, err)))
        return rc;
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
    sh_prom_hist h;
    if ((rc = sh_prom_hist_init(&h, bounds, 8)))
        return rc;
    static const double obs[] = {0.004, 0.005, 0.02, 0.03, 0.03, 0.09, 0.3, 0.7, 1.5, 2.5, 0.012};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++)
        sh_prom_hist_observe(&h, obs[i]);
    m[0].value = "obstacle";
    if ((rc = sh_prom_family(p, "shoal_run_seconds", SH_PROM_HISTOGRAM, "Latency of one model run.", err)) ||
        (rc = sh_prom_histogram(p, m, 1, &h, err)))
        return rc;
    sh_prom_hist empty;
    sh_prom_hist_init(&empty, bounds, 3);
    m[0].value = "hand";
    return sh_prom_histogram(p, m, 1, &empty, err);
}

#endif
