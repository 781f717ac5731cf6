/* Prometheus text format 0.0.4 writer. See prom.h. */
#include "monitor/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sh_prom {
    sh_allocator *alloc;
    char *buf;
    size_t len, cap;
    bool failed;                 /* an append ran out of memory */
    char **families;             /* names written so far: each family appears once */
    size_t n_families, cap_families;
    const char *open;            /* the open family's name (in families), or NULL */
    sh_prom_type open_type;
};

int sh_prom_create(sh_allocator *a, sh_prom **out, sh_err *err)
{
    *out = sh_calloc(a, 1, sizeof **out);
    if (!*out)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "prometheus writer: out of memory");
    (*out)->alloc = a;
    return 0;
}

void sh_prom_reset(sh_prom *p)
{
    for (size_t i = 0; i < p->n_families; i++)
        sh_free(p->alloc, p->families[i]);
    p->n_families = 0;
    p->len = 0;
    if (p->buf)
        p->buf[0] = '\0';
    p->open = NULL;
    p->failed = false;
}

void sh_prom_destroy(sh_prom *p)
{
    if (!p)
        return;
    sh_prom_reset(p);
    sh_free(p->alloc, p->families);
    sh_free(p->alloc, p->buf);
    sh_free(p->alloc, p);
}

const char *sh_prom_text(const sh_prom *p, size_t *len)
{
    if (len)
        *len = p->len;
    return p->buf ? p->buf : "";
}

/* ---- the buffer --------------------------------------------------------------------------- */

static bool reserve(sh_prom *p, size_t more)
{
    size_t need;
    if (p->failed || !sh_add_size(p->len, more, &need) || !sh_add_size(need, 1, &need)) {
        p->failed = true;
        return false;
    }
    if (need <= p->cap)
        return true;
    size_t cap = p->cap ? p->cap : 1024;
    while (cap < need)
        if (!sh_mul_size(cap, 2, &cap)) {
            p->failed = true;
            return false;
        }
    char *nb = sh_realloc(p->alloc, p->buf, cap);
    if (!nb) {
        p->failed = true;
        return false;
    }
    p->buf = nb;
    p->cap = cap;
    return true;
}

static void put(sh_prom *p, const char *s, size_t n)
{
    if (!reserve(p, n))
        return;
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void puts_(sh_prom *p, const char *s) { put(p, s, strlen(s)); }

static void put_u64(sh_prom *p, uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    puts_(p, b);
}

/* Escapes \ and newline (HELP text), and " too (label values). */
static void put_escaped(sh_prom *p, const char *s, bool quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            put(p, "\\\\", 2);
        else if (*s == '\n')
            put(p, "\\n", 2);
        else if (quote && *s == '"')
            put(p, "\\\"", 2);
        else
            put(p, s, 1);
    }
}

/* Go's strconv 'g' with shortest round trip is what Prometheus writes; %.17g always round
 * trips, so we try the shorter forms first and keep the first that reads back exactly. */
static void put_value(sh_prom *p, double v)
{
    char b[40];
    if (isnan(v))
        snprintf(b, sizeof b, "NaN");
    else if (isinf(v))
        snprintf(b, sizeof b, v > 0 ? "+Inf" : "-Inf");
    else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(b, sizeof b, "%.*g", prec, v);
            if (strtod(b, NULL) == v)
                break;
        }
    }
    puts_(p, b);
}

/* ---- rules -------------------------------------------------------------------------------- */

int sh_prom_valid_metric_name(const char *s)
{
    if (!s || !*s || (s[0] >= '0' && s[0] <= '9'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' || *s == ':'))
            return 0;
    return 1;
}

int sh_prom_valid_label_name(const char *s)
{
    if (!s || !*s || (s[0] >= '0' && s[0] <= '9') || (s[0] == '_' && s[1] == '_'))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_'))
            return 0;
    return 1;
}

static bool valid_utf8(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        unsigned c = *u, n;
        unsigned long cp;
        if (c < 0x80) { u++; continue; }
        else if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((u[i] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (u[i] & 0x3F);
        }
        static const unsigned long MIN[] = {0, 0x80, 0x800, 0x10000};
        if (cp < MIN[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        u += n + 1;
    }
    return true;
}

static int check_labels(const sh_prom *p, const sh_prom_label *l, size_t n, bool histogram, sh_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!sh_prom_valid_label_name(l[i].name))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: invalid label name '%s'", p->open,
                           l[i].name ? l[i].name : "(null)");
        if (histogram && !strcmp(l[i].name, "le"))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: 'le' is the bucket label of a histogram", p->open);
        if (!l[i].value || !valid_utf8(l[i].value))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: label %s: value is not UTF-8", p->open, l[i].name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(l[i].name, l[j].name))
                return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: label %s given twice", p->open, l[i].name);
    }
    return 0;
}

static int out_of_memory(sh_prom *p, sh_err *err)
{
    return sh_errf(err, SHOAL_ERR_NO_MEMORY, "prometheus writer: out of memory");
}

/* ---- families and samples ------------------------------------------------------------------ */

int sh_prom_family(sh_prom *p, const char *name, sh_prom_type type, const char *help, sh_err *err)
{
    if (!sh_prom_valid_metric_name(name))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "invalid metric name '%s'", name ? name : "(null)");
    size_t nl = strlen(name);
    bool add_total = type == SH_PROM_COUNTER && !(nl >= 6 && !strcmp(name + nl - 6, "_total"));
    if (type != SH_PROM_COUNTER && nl >= 6 && !strcmp(name + nl - 6, "_total"))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: only counters end in _total", name);
    if (type == SH_PROM_HISTOGRAM && ((nl >= 7 && !strcmp(name + nl - 7, "_bucket")) ||
                                      (nl >= 4 && !strcmp(name + nl - 4, "_sum")) ||
                                      (nl >= 6 && !strcmp(name + nl - 6, "_count"))))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: a histogram's name may not end in _bucket, _sum or _count", name);
    char *full = sh_alloc(p->alloc, nl + 7);
    if (!full)
        return out_of_memory(p, err);
    snprintf(full, nl + 7, "%s%s", name, add_total ? "_total" : "");
    for (size_t i = 0; i < p->n_families; i++)
        if (!strcmp(p->families[i], full)) {
            int rc = sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: family written twice", full);
            sh_free(p->alloc, full);
            return rc;
        }
    if (p->n_families == p->cap_families) {
        size_t cap = p->cap_families ? p->cap_families * 2 : 16;
        char **nf = sh_realloc(p->alloc, p->families, cap * sizeof *nf);
        if (!nf) {
            sh_free(p->alloc, full);
            return out_of_memory(p, err);
        }
        p->families = nf;
        p->cap_families = cap;
    }
    size_t mark = p->len;
    puts_(p, "# HELP ");
    puts_(p, full);
    puts_(p, " ");
    put_escaped(p, help ? help : "", false);
    puts_(p, "\n# TYPE ");
    puts_(p, full);
    puts_(p, type == SH_PROM_COUNTER ? " counter\n" : type == SH_PROM_GAUGE ? " gauge\n" : " histogram\n");
    if (p->failed) {
        p->failed = false;
        p->len = mark;
        if (p->buf)
            p->buf[mark] = '\0';
        sh_free(p->alloc, full);
        return out_of_memory(p, err);
    }
    p->families[p->n_families++] = full;
    p->open = full;
    p->open_type = type;
    return 0;
}

/* name{labels[,extra="v"]} */
static void put_series(sh_prom *p, const char *suffix, const sh_prom_label *l, size_t n, const char *extra,
                       const char *extra_value)
{
    puts_(p, p->open);
    puts_(p, suffix);
    if (n || extra) {
        puts_(p, "{");
        for (size_t i = 0; i < n; i++) {
            if (i)
                puts_(p, ",");
            puts_(p, l[i].name);
            puts_(p, "=\"");
            put_escaped(p, l[i].value, true);
            puts_(p, "\"");
        }
        if (extra) {
            if (n)
                puts_(p, ",");
            puts_(p, extra);
            puts_(p, "=\"");
            puts_(p, extra_value);
            puts_(p, "\"");
        }
        puts_(p, "}");
    }
    puts_(p, " ");
}

static int finish(sh_prom *p, size_t mark, sh_err *err)
{
    if (!p->failed)
        return 0;
    p->failed = false;
    p->len = mark;
    if (p->buf)
        p->buf[mark] = '\0';
    return out_of_memory(p, err);
}

int sh_prom_sample(sh_prom *p, const sh_prom_label *labels, size_t n_labels, double value, sh_err *err)
{
    if (!p->open)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "prometheus sample outside a family");
    if (p->open_type == SH_PROM_HISTOGRAM)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: a histogram takes sh_prom_histogram", p->open);
    if (p->open_type == SH_PROM_COUNTER && !(value >= 0 && isfinite(value)))
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: a counter must be finite and >= 0, got %g", p->open, value);
    int rc = check_labels(p, labels, n_labels, false, err);
    if (rc)
        return rc;
    size_t mark = p->len;
    put_series(p, "", labels, n_labels, NULL, NULL);
    put_value(p, value);
    puts_(p, "\n");
    return finish(p, mark, err);
}

int sh_prom_hist_init(sh_prom_hist *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    if (n > SH_PROM_HIST_MAX)
        return SHOAL_ERR_INVALID_ARG;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i && !(bounds[i] > bounds[i - 1])))
            return SHOAL_ERR_INVALID_ARG;
        h->bounds[i] = bounds[i];
    }
    h->n = n;
    return 0;
}

void sh_prom_hist_observe(sh_prom_hist *h, double v)
{
    size_t i = 0;
    while (i < h->n && v > h->bounds[i])   /* le: a value equal to a bound falls in its bucket */
        i++;
    h->counts[i]++;
    h->sum += v;
}

int sh_prom_histogram(sh_prom *p, const sh_prom_label *labels, size_t n_labels, const sh_prom_hist *h, sh_err *err)
{
    if (!p->open || p->open_type != SH_PROM_HISTOGRAM)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: not a histogram family", p->open ? p->open : "(none)");
    if (h->n > SH_PROM_HIST_MAX)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: more than %d buckets", p->open, SH_PROM_HIST_MAX);
    for (size_t i = 0; i < h->n; i++)
        if (!isfinite(h->bounds[i]) || (i && !(h->bounds[i] > h->bounds[i - 1])))
            return sh_errf(err, SHOAL_ERR_INVALID_ARG, "metric %s: bucket bounds must be finite and rising", p->open);
    int rc = check_labels(p, labels, n_labels, true, err);
    if (rc)
        return rc;
    size_t mark = p->len;
    uint64_t cum = 0;
    for (size_t i = 0; i <= h->n; i++) {
        char le[40];
        if (i == h->n) {
            snprintf(le, sizeof le, "+Inf");
        } else {
            for (int prec = 15; prec <= 17; prec++) {
                snprintf(le, sizeof le, "%.*g", prec, h->bounds[i]);
                if (strtod(le, NULL) == h->bounds[i])
                    break;
            }
        }
        cum += h->counts[i];
        put_series(p, "_bucket", labels, n_labels, "le", le);
        put_u64(p, cum);
        puts_(p, "\n");
    }
    put_series(p, "_sum", labels, n_labels, NULL, NULL);
    put_value(p, h->sum);
    puts_(p, "\n");
    put_series(p, "_count", labels, n_labels, NULL, NULL);
    put_u64(p, cum);
    puts_(p, "\n");
    return finish(p, mark, err);
}
