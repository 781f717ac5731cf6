/* The Prometheus text writer, checked by an independent reader of the 0.0.4 format rules:
 * HELP/TYPE before samples, valid names, escapes that read back to the original values,
 * counters in _total, histogram buckets cumulative and rising with +Inf == _count. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/prom.h"
#include "prom_sample.h"

static bool name_ok(const char *s, size_t n, bool label)
{
    if (!n || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || (!label && c == ':')))
            return false;
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

typedef struct reader {
    char family[128], type[16];
    char families[32][128];
    int n_families;
    bool family_has_samples;
    /* the histogram series in progress */
    char series[512];
    double last_le;
    double last_count;
    bool saw_inf;
    double inf_count;
    int n_buckets_checked;
    /* a label value to find after unescaping */
    const char *want_value;
    bool found_value;
} reader;

/* Reads one sample line; fails the test on any rule broken. */
static void read_sample(reader *r, const char *line)
{
    const char *p = line;
    while (*p && *p != '{' && *p != ' ')
        p++;
    char name[128];
    assert_true((size_t)(p - line) < sizeof name);
    memcpy(name, line, (size_t)(p - line));
    name[p - line] = '\0';
    if (!name_ok(name, strlen(name), false))
        fail_msg("bad metric name in '%s'", line);
    assert_true(r->family[0] != '\0');   /* a sample needs its TYPE first */
    const char *suffix = "";
    if (!strcmp(r->type, "histogram")) {
        size_t fl = strlen(r->family);
        if (strncmp(name, r->family, fl))
            fail_msg("sample %s outside family %s", name, r->family);
        suffix = name + fl;
        assert_true(!strcmp(suffix, "_bucket") || !strcmp(suffix, "_sum") || !strcmp(suffix, "_count"));
    } else {
        assert_string_equal(name, r->family);
        if (!strcmp(r->type, "counter"))
            assert_true(ends_with(name, "_total"));
    }
    char labels_no_le[512] = "";
    double le = NAN;
    bool has_le = false;
    if (*p == '{') {
        p++;
        char prev[64][64];
        int n_prev = 0;
        while (*p != '}') {
            const char *ln = p;
            while (*p && *p != '=')
                p++;
            assert_true(*p == '=');
            if (!name_ok(ln, (size_t)(p - ln), true) || (p - ln >= 2 && ln[0] == '_' && ln[1] == '_'))
                fail_msg("bad label name in '%s'", line);
            char lname[64];
            snprintf(lname, sizeof lname, "%.*s", (int)(p - ln), ln);
            for (int i = 0; i < n_prev; i++)
                assert_string_not_equal(prev[i], lname);
            snprintf(prev[n_prev++], sizeof prev[0], "%s", lname);
            p++;
            assert_true(*p == '"');
            p++;
            char value[256];
            size_t vn = 0;
            while (*p != '"') {
                assert_true(*p != '\0' && *p != '\n');
                if (*p == '\\') {
                    p++;
                    assert_true(*p == '\\' || *p == '"' || *p == 'n');   /* the only escapes */
                    value[vn++] = *p == 'n' ? '\n' : *p;
                } else {
                    value[vn++] = *p;
                }
                p++;
                assert_true(vn < sizeof value);
            }
            value[vn] = '\0';
            p++;
            if (r->want_value && !strcmp(value, r->want_value))
                r->found_value = true;
            if (!strcmp(lname, "le")) {
                has_le = true;
                le = !strcmp(value, "+Inf") ? INFINITY : strtod(value, NULL);
            } else {
                size_t l = strlen(labels_no_le);
                snprintf(labels_no_le + l, sizeof labels_no_le - l, "%s=%s;", lname, value);
            }
            if (*p == ',')
                p++;
            else
                assert_true(*p == '}');
        }
        p++;
    }
    assert_true(*p == ' ');
    p++;
    char *end;
    double v = !strcmp(p, "+Inf") ? INFINITY : !strcmp(p, "-Inf") ? -INFINITY : !strcmp(p, "NaN") ? NAN : strtod(p, &end);
    if (strcmp(p, "+Inf") && strcmp(p, "-Inf") && strcmp(p, "NaN"))
        assert_true(end != p && *end == '\0');
    r->family_has_samples = true;

    if (!strcmp(suffix, "_bucket")) {
        assert_true(has_le);
        if (strcmp(r->series, labels_no_le)) {     /* a new series starts */
            assert_false(r->series[0] && !r->saw_inf);
            snprintf(r->series, sizeof r->series, "%s", labels_no_le);
            r->last_le = -INFINITY;
            r->last_count = 0;
            r->saw_inf = false;
        }
        assert_true(le > r->last_le);          /* bounds rise */
        assert_true(v >= r->last_count);       /* counts are cumulative */
        r->last_le = le;
        r->last_count = v;
        r->n_buckets_checked++;
        if (isinf(le)) {
            r->saw_inf = true;
            r->inf_count = v;
        }
    } else if (!strcmp(suffix, "_count")) {
        assert_string_equal(r->series, labels_no_le);
        assert_true(r->saw_inf);
        assert_true(v == r->inf_count);        /* +Inf bucket == _count */
        r->series[0] = '\0';
    } else {
        assert_false(has_le);
    }
}

static void read_exposition(reader *r, const char *text)
{
    char *copy = strdup(text);
    assert_non_null(copy);
    assert_true(ends_with(text, "\n"));
    for (char *line = strtok(copy, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "# HELP ", 7)) {
            const char *n = line + 7, *sp = strchr(n, ' ');
            assert_non_null(sp);
            assert_true(name_ok(n, (size_t)(sp - n), false));
            for (const char *h = sp + 1; *h; h++)
                if (*h == '\\') {
                    h++;
                    assert_true(*h == '\\' || *h == 'n');
                }
        } else if (!strncmp(line, "# TYPE ", 7)) {
            char name[128], type[16];
            assert_int_equal(sscanf(line + 7, "%127s %15s", name, type), 2);
            for (int i = 0; i < r->n_families; i++)
                assert_string_not_equal(r->families[i], name);    /* a family appears once */
            snprintf(r->families[r->n_families++], sizeof r->families[0], "%s", name);
            assert_true(!strcmp(type, "counter") || !strcmp(type, "gauge") || !strcmp(type, "histogram"));
            snprintf(r->family, sizeof r->family, "%s", name);
            snprintf(r->type, sizeof r->type, "%s", type);
            r->family_has_samples = false;
        } else {
            assert_true(line[0] != '#');
            read_sample(r, line);
        }
    }
    free(copy);
}

static void test_sample_reads_back(void **state)
{
    sh_allocator *a = sh_allocator_create();
    sh_prom *p;
    sh_err err = {0};
    assert_int_equal(sh_prom_create(a, &p, &err), 0);
    if (write_sample(p, &err))
        fail_msg("%s", err.msg);
    size_t len;
    const char *text = sh_prom_text(p, &len);
    assert_int_equal(strlen(text), len);
    reader r = {.want_value = "we\\ird \"name\"\nline2 \xe7\x9b\xb2\xe9\x81\x93"};
    read_exposition(&r, text);
    assert_true(r.found_value);
    assert_int_equal(r.n_families, 6);
    assert_int_equal(r.n_buckets_checked, 9 + 4);
    /* exact pieces */
    assert_non_null(strstr(text, "# HELP shoal_model_bytes Bytes a model holds.\\nSecond line with \\\\.\n"));
    assert_non_null(strstr(text, "# TYPE shoal_model_loads_total counter\nshoal_model_loads_total{model=\"obstacle\"} 7\n"));
    assert_non_null(strstr(text, "shoal_device_bytes{device=\"cuda:0\",kind=\"arena\"} 0.1\n"));
    assert_non_null(strstr(text, "shoal_up 1\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_bucket{model=\"obstacle\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_bucket{model=\"obstacle\",le=\"1\"} 9\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_bucket{model=\"obstacle\",le=\"+Inf\"} 11\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_count{model=\"obstacle\"} 11\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_sum{model=\"obstacle\"} 5.191\n"));
    assert_non_null(strstr(text, "shoal_run_seconds_count{model=\"hand\"} 0\n"));
    sh_prom_destroy(p);
    assert_int_equal(sh_allocator_stats(a).in_use, 0);
    sh_allocator_destroy(a);
}

static void test_values(void **state)
{
    sh_prom *p;
    sh_err err;
    assert_int_equal(sh_prom_create(NULL, &p, &err), 0);
    assert_int_equal(sh_prom_family(p, "g", SH_PROM_GAUGE, "", &err), 0);
    static const double v[] = {NAN, INFINITY, -INFINITY, 1e21, -2.5, 1.0 / 3.0, 0};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        assert_int_equal(sh_prom_sample(p, NULL, 0, v[i], &err), 0);
    assert_string_equal(sh_prom_text(p, NULL),
                        "# HELP g \n# TYPE g gauge\ng NaN\ng +Inf\ng -Inf\ng 1e+21\ng -2.5\ng 0.3333333333333333\ng 0\n");
    sh_prom_destroy(p);
}

static void test_rules(void **state)
{
    sh_prom *p;
    sh_err err;
    assert_int_equal(sh_prom_create(NULL, &p, &err), 0);
    assert_int_equal(sh_prom_sample(p, NULL, 0, 1, &err), SHOAL_ERR_INVALID_ARG);     /* no family open */
    assert_int_equal(sh_prom_family(p, "1abc", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "a-b", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "x_total", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "lat_count", SH_PROM_HISTOGRAM, "", &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "ns:ok_name", SH_PROM_GAUGE, "", &err), 0);
    assert_int_equal(sh_prom_family(p, "ns:ok_name", SH_PROM_GAUGE, "", &err), SHOAL_ERR_INVALID_ARG);
    sh_prom_label bad1[] = {{"__reserved", "x"}}, bad2[] = {{"a:b", "x"}}, dup[] = {{"a", "1"}, {"a", "2"}},
                  utf[] = {{"a", "\xff\xfe"}}, over[] = {{"a", "\xc0\xaf"}}, le[] = {{"le", "1"}};
    assert_int_equal(sh_prom_sample(p, bad1, 1, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, bad2, 1, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, dup, 2, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_non_null(strstr(err.msg, "label a given twice"));
    assert_int_equal(sh_prom_sample(p, utf, 1, 1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, over, 1, 1, &err), SHOAL_ERR_INVALID_ARG);   /* overlong '/' */
    assert_int_equal(sh_prom_sample(p, le, 1, 1, &err), 0);                          /* le is fine on a gauge */
    assert_int_equal(sh_prom_family(p, "c", SH_PROM_COUNTER, "", &err), 0);
    assert_int_equal(sh_prom_sample(p, NULL, 0, -1, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_sample(p, NULL, 0, NAN, &err), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_family(p, "c_total", SH_PROM_COUNTER, "", &err), SHOAL_ERR_INVALID_ARG); /* same family */
    assert_int_equal(sh_prom_family(p, "h", SH_PROM_HISTOGRAM, "", &err), 0);
    assert_int_equal(sh_prom_sample(p, NULL, 0, 1, &err), SHOAL_ERR_INVALID_ARG);
    sh_prom_hist h;
    static const double rising[] = {1, 2}, flat[] = {1, 1}, inf[] = {1, INFINITY};
    assert_int_equal(sh_prom_hist_init(&h, flat, 2), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_hist_init(&h, inf, 2), SHOAL_ERR_INVALID_ARG);
    assert_int_equal(sh_prom_hist_init(&h, rising, 2), 0);
    assert_int_equal(sh_prom_histogram(p, le, 1, &h, &err), SHOAL_ERR_INVALID_ARG);
    h.bounds[1] = 0.5;   /* broken by hand: the writer checks again */
    assert_int_equal(sh_prom_histogram(p, NULL, 0, &h, &err), SHOAL_ERR_INVALID_ARG);
    /* nothing of the refused calls reached the text */
    assert_string_equal(sh_prom_text(p, NULL),
                        "# HELP ns:ok_name \n# TYPE ns:ok_name gauge\nns:ok_name{le=\"1\"} 1\n"
                        "# HELP c_total \n# TYPE c_total counter\n# HELP h \n# TYPE h histogram\n");
    sh_prom_reset(p);
    assert_string_equal(sh_prom_text(p, NULL), "");
    assert_int_equal(sh_prom_family(p, "c", SH_PROM_COUNTER, "", &err), 0);   /* a new exposition */
    sh_prom_destroy(p);
    sh_prom_destroy(NULL);
}

/* Fail each allocation of the sample in turn: an error, then text that still reads as valid,
 * and no leak. */
static void test_fault_injection(void **state)
{
    sh_allocator *a = sh_allocator_create();
    int n;
    for (n = 0; n < 1000; n++) {
        sh_prom *p = NULL;
        sh_err err = {0};
        uint64_t before = sh_allocator_stats(a).n_failed;
        sh_allocator_fail_after(a, n, 0);
        int rc = sh_prom_create(a, &p, &err);
        if (!rc)
            rc = write_sample(p, &err);
        bool injected = sh_allocator_stats(a).n_failed != before;
        sh_allocator_fail_after(a, -1, 0);
        if (rc) {
            assert_int_equal(rc, SHOAL_ERR_NO_MEMORY);
            if (p) {
                reader r = {0};
                read_exposition(&r, *sh_prom_text(p, NULL) ? sh_prom_text(p, NULL) : "\n");
            }
        }
        sh_prom_destroy(p);
        assert_int_equal(sh_allocator_stats(a).in_use, 0);
        if (!rc && !injected)
            break;
    }
    assert_true(n > 3 && n < 1000);
    sh_allocator_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_reads_back),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_rules),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
