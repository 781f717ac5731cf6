/* An independent reader of the Prometheus text format 0.0.4 rules, shared by the writer's
 * test (test_prom.c) and the runtime's exposition test (test_report_run.c): HELP/TYPE before
 * samples, valid names, escapes that read back, counters in _total, histogram buckets
 * cumulative and rising with +Inf == _count. Include after <cmocka.h>: it fails the test on
 * any rule broken. */
#ifndef SHOAL_TEST_PROM_READER_H
#define SHOAL_TEST_PROM_READER_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#endif
