/* A writer for the Prometheus text exposition format 0.0.4, into a growable buffer.
 *
 *   sh_prom *p;  sh_prom_create(alloc, &p);
 *   sh_prom_family(p, "shoal_model_bytes", SH_PROM_GAUGE, "Bytes a model holds, by kind.");
 *   sh_prom_label l[] = {{"model", "obstacle"}, {"kind", "weights"}};
 *   sh_prom_sample(p, l, 2, 41943040);
 *   sh_prom_family(p, "shoal_model_loads", SH_PROM_COUNTER, "Loads of a model.");  // -> _total
 *   ...
 *   size_t len;  const char *text = sh_prom_text(p, &len);   // valid until the next call
 *   sh_prom_destroy(p);
 *
 * The writer enforces the format's rules rather than trusting callers: metric and label
 * names are checked, label values escaped (\\, \", \n) and checked for UTF-8, a family is
 * written once, samples belong to the family just opened, counters end in _total, and a
 * histogram's buckets come out cumulative with +Inf equal to _count. A call that breaks a
 * rule returns SHOAL_ERR_INVALID_ARG and writes nothing. */
#ifndef SHOAL_MONITOR_PROM_H
#define SHOAL_MONITOR_PROM_H

#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"

typedef struct sh_prom sh_prom;

typedef enum sh_prom_type { SH_PROM_COUNTER, SH_PROM_GAUGE, SH_PROM_HISTOGRAM } sh_prom_type;

typedef struct sh_prom_label {
    const char *name;
    const char *value;
} sh_prom_label;

/* Free with sh_prom_destroy (accepts NULL). */
int sh_prom_create(sh_allocator *a, sh_prom **out, sh_err *err);
void sh_prom_destroy(sh_prom *p);
void sh_prom_reset(sh_prom *p);   /* empties the text and the families seen, keeps the buffer */

/* Opens a family: writes # HELP and # TYPE. A counter's name gets "_total" unless it has it. */
int sh_prom_family(sh_prom *p, const char *name, sh_prom_type type, const char *help, sh_err *err);

/* A counter or gauge sample of the open family. Counters must be finite and >= 0; gauges may
 * be NaN or infinite. */
int sh_prom_sample(sh_prom *p, const sh_prom_label *labels, size_t n_labels, double value, sh_err *err);

/* Histogram observations: `bounds` are the n upper bounds, strictly rising and finite; the
 * +Inf bucket is implicit. Counts are per bucket (not cumulative), n + 1 of them, the last one
 * for values above every bound. */
#define SH_PROM_HIST_MAX 32
typedef struct sh_prom_hist {
    double bounds[SH_PROM_HIST_MAX];
    uint64_t counts[SH_PROM_HIST_MAX + 1];
    size_t n;
    double sum;
} sh_prom_hist;

/* Returns SHOAL_ERR_INVALID_ARG if the bounds are not rising and finite, or more than
 * SH_PROM_HIST_MAX. */
int sh_prom_hist_init(sh_prom_hist *h, const double *bounds, size_t n);
void sh_prom_hist_observe(sh_prom_hist *h, double v);

/* A histogram sample of the open family: _bucket{le=...} lines (cumulative), _sum, _count.
 * A label called "le" is refused. */
int sh_prom_histogram(sh_prom *p, const sh_prom_label *labels, size_t n_labels, const sh_prom_hist *h,
                      sh_err *err);

/* The text so far, NUL-terminated; owned by p. */
const char *sh_prom_text(const sh_prom *p, size_t *len);

/* Rules, exposed for tests and other writers. */
int sh_prom_valid_metric_name(const char *s);   /* [a-zA-Z_:][a-zA-Z0-9_:]* */
int sh_prom_valid_label_name(const char *s);    /* [a-zA-Z_][a-zA-Z0-9_]*, not __reserved */

#endif
