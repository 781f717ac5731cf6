/* Model metadata (ModelProto.metadata_props) and ultralytics' keys in it.
 *
 * ultralytics writes its export settings as strings made by Python's str(): `names` is a dict
 * literal "{0: 'person', 1: 'bicycle'}" (repr quoting: single quotes unless the name holds
 * one, then double quotes, with backslash escapes), `imgsz` a list "[640, 640]", `stride` an
 * int "32", `task` a bare word. The parsers below accept exactly that grammar (plus a plain
 * list of names), and a malformed value is an error naming the key and the offset: a model
 * whose class names were silently misread would print wrong labels. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "import/import-impl.h"

typedef struct scan {
    const char *s;
    size_t at;
} scan;

static void skip_ws(scan *c)
{
    while (c->s[c->at] && isspace((unsigned char)c->s[c->at]))
        c->at++;
}

static bool eat(scan *c, char ch)
{
    skip_ws(c);
    if (c->s[c->at] != ch)
        return false;
    c->at++;
    return true;
}

static bool read_int(scan *c, int64_t *v)
{
    skip_ws(c);
    const char *start = c->s + c->at;
    char *end;
    errno = 0;
    long long x = strtoll(start, &end, 10);
    if (end == start || errno)
        return false;
    c->at += (size_t)(end - start);
    *v = x;
    return true;
}

/* A Python string literal in single or double quotes into a new string from `a`. Escapes:
 * \\ \' \" \n \t; others keep the backslash, as Python's repr never writes them for names. */
static int read_str(sh_allocator *a, scan *c, char **out)
{
    skip_ws(c);
    char q = c->s[c->at];
    if (q != '\'' && q != '"')
        return SHOAL_ERR_PARSE;
    size_t start = ++c->at;
    while (c->s[c->at] && c->s[c->at] != q) {
        if (c->s[c->at] == '\\' && c->s[c->at + 1])
            c->at++;
        c->at++;
    }
    if (c->s[c->at] != q)
        return SHOAL_ERR_PARSE;
    c->at++;
    char *p = sh_alloc(a, c->at - start);   /* the raw span plus the terminator: escapes only shrink */
    if (!p)
        return SHOAL_ERR_NO_MEMORY;
    size_t o = 0;
    for (size_t i = start; i < c->at - 1; i++) {
        char ch = c->s[i];
        if (ch == '\\' && i + 1 < c->at - 1) {
            char e = c->s[++i];
            ch = e == 'n' ? '\n' : e == 't' ? '\t' : e;
            if (e != 'n' && e != 't' && e != '\\' && e != '\'' && e != '"')
                p[o++] = '\\';
        }
        p[o++] = ch;
    }
    p[o] = '\0';
    *out = p;
    return 0;
}

static void free_names(sh_allocator *a, char **names, int n)
{
    for (int i = 0; names && i < n; i++)
        sh_free(a, names[i]);
    sh_free(a, names);
}

/* Counts the top-level entries of a {...} or [...] literal (commas outside quotes + 1). */
static int count_entries(const char *s)
{
    int n = 0;
    bool any = false;
    char q = 0;
    for (const char *p = s; *p; p++) {
        if (q) {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == q)
                q = 0;
        } else if (*p == '\'' || *p == '"') {
            q = *p;
            any = true;
        } else if (*p == ',') {
            n++;
        } else if (!isspace((unsigned char)*p) && *p != '{' && *p != '}' && *p != '[' && *p != ']') {
            any = true;
        }
    }
    return any ? n + 1 : 0;
}

int sh_meta_parse_names(sh_allocator *a, const char *text, char ***names, int *n_names, sh_err *err)
{
    *names = NULL;
    *n_names = 0;
    scan c = {text, 0};
    skip_ws(&c);
    bool dict = c.s[c.at] == '{';
    if (!eat(&c, dict ? '{' : '['))
        return sh_errf(err, SHOAL_ERR_PARSE, "metadata 'names': expected a dict {0: 'name', ...} or a list");
    int cap = count_entries(text);
    if (cap > 1 << 20)
        return sh_errf(err, SHOAL_ERR_PARSE, "metadata 'names': %d entries", cap);
    char **v = sh_calloc(a, (size_t)(cap ? cap : 1), sizeof *v);
    if (!v)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading metadata 'names'");
    int n = 0, rc = 0;
    const char *why = NULL;
    skip_ws(&c);
    if (!eat(&c, dict ? '}' : ']')) {
        for (;;) {
            int64_t id = n;
            if (dict && (!read_int(&c, &id) || !eat(&c, ':'))) {
                why = "expected 'id:'";
                break;
            }
            if (id != n) {   /* ultralytics numbers classes 0..n-1 in order */
                why = "class ids must run 0, 1, 2, ... in order";
                break;
            }
            if (n >= cap) {
                why = "more entries than separators";
                break;
            }
            if ((rc = read_str(a, &c, &v[n]))) {
                why = rc == SHOAL_ERR_NO_MEMORY ? "out of memory" : "expected a quoted name";
                break;
            }
            n++;
            if (eat(&c, ','))
                continue;
            if (!eat(&c, dict ? '}' : ']'))
                why = "expected ',' or the closing bracket";
            break;
        }
    }
    skip_ws(&c);
    if (!why && c.s[c.at])
        why = "text after the closing bracket";
    if (why) {
        free_names(a, v, n);
        return sh_errf(err, rc == SHOAL_ERR_NO_MEMORY ? SHOAL_ERR_NO_MEMORY : SHOAL_ERR_PARSE,
                       "metadata 'names': %s at offset %zu of \"%.60s\"", why, c.at, text);
    }
    *names = v;
    *n_names = n;
    return 0;
}

/* "640", "[640]" or "[480, 640]" (height, width). */
int sh_meta_parse_imgsz(const char *text, int64_t hw[2], sh_err *err)
{
    scan c = {text, 0};
    int64_t v[2];
    int n = 0;
    bool list = eat(&c, '[');
    while (n < 2 && read_int(&c, &v[n])) {
        n++;
        if (!list || !eat(&c, ','))
            break;
    }
    if (list && !eat(&c, ']'))
        n = 0;
    skip_ws(&c);
    if (n == 0 || c.s[c.at] || v[0] <= 0 || v[n - 1] <= 0 || v[0] > 1 << 16 || v[n - 1] > 1 << 16)
        return sh_errf(err, SHOAL_ERR_PARSE, "metadata 'imgsz': \"%.40s\" is not a size like 640 or [640, 640]", text);
    hw[0] = v[0];
    hw[1] = v[n - 1];
    return 0;
}

/* "32", or a list "[8, 16, 32]" of which the largest decides the input size multiple. */
static int parse_stride(const char *text, int64_t *stride, sh_err *err)
{
    scan c = {text, 0};
    bool list = eat(&c, '[');
    int64_t best = 0, v;
    while (read_int(&c, &v)) {
        if (v <= 0 || v > 1 << 12)
            break;
        best = v > best ? v : best;
        if (!list || !eat(&c, ','))
            break;
    }
    if (list && !eat(&c, ']'))
        best = 0;
    skip_ws(&c);
    if (!best || c.s[c.at])
        return sh_errf(err, SHOAL_ERR_PARSE, "metadata 'stride': \"%.40s\" is not a stride like 32", text);
    *stride = best;
    return 0;
}

void sh_model_meta_destroy(sh_allocator *a, sh_model_meta *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_props; i++) {
        sh_free(a, m->keys[i]);
        sh_free(a, m->values[i]);
    }
    sh_free(a, m->keys);
    sh_free(a, m->values);
    free_names(a, m->names, m->n_names);
    sh_free(a, m);
}

const char *sh_model_meta_get(const sh_model_meta *m, const char *key)
{
    for (int i = 0; m && i < m->n_props; i++)
        if (!strcmp(m->keys[i], key))
            return m->values[i];
    return NULL;
}

int sh_model_meta_from_props(sh_allocator *a, const char *const *keys, const char *const *values, int n,
                             sh_model_meta **out, sh_err *err)
{
    *out = NULL;
    sh_model_meta *m = sh_calloc(a, 1, sizeof *m);
    if (!m || !(m->keys = sh_calloc(a, (size_t)n + 1, sizeof *m->keys)) ||
        !(m->values = sh_calloc(a, (size_t)n + 1, sizeof *m->values))) {
        sh_model_meta_destroy(a, m);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading the model's metadata");
    }
    for (int i = 0; i < n; i++) {
        m->keys[i] = sh_strdup(a, keys[i] ? keys[i] : "");
        m->values[i] = sh_strdup(a, values[i] ? values[i] : "");
        m->n_props = i + 1;
        if (!m->keys[i] || !m->values[i]) {
            sh_model_meta_destroy(a, m);
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading the model's metadata");
        }
    }
    const char *v;
    int rc = 0;
    if ((v = sh_model_meta_get(m, "names")))
        rc = sh_meta_parse_names(a, v, &m->names, &m->n_names, err);
    if (!rc && (v = sh_model_meta_get(m, "imgsz")))
        rc = sh_meta_parse_imgsz(v, m->imgsz, err);
    if (!rc && (v = sh_model_meta_get(m, "stride")))
        rc = parse_stride(v, &m->stride, err);
    if (!rc && (v = sh_model_meta_get(m, "task")))
        m->task = v;
    if (rc) {
        sh_model_meta_destroy(a, m);
        return rc;
    }
    *out = m;
    return 0;
}

int sh_onnx_meta_from_proto(sh_allocator *a, const Onnx__ModelProto *mp, sh_model_meta **out, sh_err *err)
{
    size_t n = mp->n_metadata_props;
    if (n > 1 << 16)
        return sh_errf(err, SHOAL_ERR_PARSE, "%zu metadata entries", n);
    const char **k = sh_calloc(a, n + 1, sizeof *k), **v = sh_calloc(a, n + 1, sizeof *v);
    int rc;
    if (!k || !v) {
        rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading the model's metadata");
    } else {
        for (size_t i = 0; i < n; i++) {
            k[i] = mp->metadata_props[i]->key;
            v[i] = mp->metadata_props[i]->value;
        }
        rc = sh_model_meta_from_props(a, k, v, (int)n, out, err);
    }
    sh_free(a, (void *)k);
    sh_free(a, (void *)v);
    return rc;
}
