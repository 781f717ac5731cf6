/* YAML config loading and validation.
 *
 * libyaml's document API gives a node tree with positions; we walk it once, checking each
 * mapping's keys against a table (unknown and duplicate keys are errors) and each value
 * against its type and range, and copy what we keep into memory owned by the config. Models
 * are parsed before anything that names them (modes, tier preload lists) whatever the order
 * in the file. Every block the config owns is chained on one list, so destroy and every
 * error path free everything with one walk. */
#include "runtime/config.h"

#include "vision/image.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "core/utf8.h"

/* ---- memory owned by the config --------------------------------------------------------- */

typedef struct chunk {
    struct chunk *next;
    _Alignas(max_align_t) unsigned char data[];
} chunk;

static void *cfg_alloc(sh_config *cfg, size_t size)
{
    size_t total;
    if (!sh_add_size(offsetof(chunk, data), size, &total))
        return NULL;
    chunk *c = sh_alloc(cfg->alloc_, total);
    if (!c)
        return NULL;
    memset(c, 0, total);
    c->next = cfg->chunks_;
    cfg->chunks_ = c;
    return c->data;
}

static void *cfg_calloc(sh_config *cfg, size_t count, size_t size)
{
    size_t total;
    if (!sh_mul_size(count, size, &total))
        return NULL;
    return cfg_alloc(cfg, total ? total : 1);
}

static char *cfg_strndup(sh_config *cfg, const char *s, size_t n)
{
    char *d = cfg_alloc(cfg, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void sh_config_destroy(sh_config *cfg)
{
    if (!cfg)
        return;
    sh_allocator *a = cfg->alloc_;
    for (chunk *c = cfg->chunks_; c;) {
        chunk *next = c->next;
        sh_free(a, c);
        c = next;
    }
    sh_free(a, cfg);
}

/* ---- names ----------------------------------------------------------------------------- */

static const char *const TASK_NAMES[] = {"detect", "segment", "landmarks", "classify", "yolox", "hand_landmarks"};
static const char *const LETTERBOX_NAMES[] = {"center", "top_left", "stretch"};
static const char *const COLOR_NAMES[] = {"rgb", "bgr"};
static const char *const DECODER_NAMES[] = {"yolov8", "yolov8-seg", "yolox", "landmarks", "none", "classify",
                                              "end2end"};
static const char *const PRECISION_NAMES[] = {"auto", "fp32", "fp16"};
static const char *const CLASS_OUTPUT_NAMES[] = {"auto", "logits", "probabilities"};
static const char *const DEVICE_NAMES[] = {"auto", "cpu", "cuda"};
static const char *const CONCURRENCY_NAMES[] = {"auto", "on", "off"};
static const char *const TIER_NAMES[] = {"auto", "low", "mid", "high"};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *sh_task_name(sh_task t) { return (unsigned)t < COUNT(TASK_NAMES) ? TASK_NAMES[t] : "?"; }
const char *sh_decoder_name(sh_decoder d) { return (unsigned)d < COUNT(DECODER_NAMES) ? DECODER_NAMES[d] : "?"; }
const char *sh_tier_name(sh_tier t) { return (unsigned)t < COUNT(TIER_NAMES) ? TIER_NAMES[t] : "?"; }

/* ---- byte sizes -------------------------------------------------------------------------- */

static int why_f(char *why, size_t why_len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int why_f(char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* Exact integer arithmetic, no floating point: "1.5GiB" is 1 GiB + 5 * GiB / 10. At most six
 * decimals keep frac * unit (< 10^6 * 2^40 < 2^60) inside 64 bits. */
int sh_config_parse_size(const char *s, bool allow_percent, sh_config_size *out, char *why, size_t why_len)
{
    const char *p = s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p < '0' || *p > '9')
        return why_f(why, why_len, "expected a number first");
    uint64_t ip = 0;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p++ - '0');
        if (ip > (UINT64_MAX - d) / 10)
            return why_f(why, why_len, "too large");
        ip = ip * 10 + d;
    }
    uint64_t frac = 0, frac_div = 1;
    int n_frac = 0;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return why_f(why, why_len, "expected digits after '.'");
        while (*p >= '0' && *p <= '9') {
            if (++n_frac > 6)
                return why_f(why, why_len, "more than 6 decimals");
            frac = frac * 10 + (uint64_t)(*p++ - '0');
            frac_div *= 10;
        }
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '%') {
        if (!allow_percent)
            return why_f(why, why_len, "a share (%%) is not allowed here");
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return why_f(why, why_len, "unexpected '%s' after '%%'", p);
        double pct = (double)ip + (double)frac / (double)frac_div;
        if (!(pct > 0.0 && pct <= 100.0))
            return why_f(why, why_len, "a share must be in (0%%, 100%%]");
        *out = (sh_config_size){.kind = SH_SIZE_PERCENT, .percent = pct};
        return 0;
    }
    /* the unit: B, K, KB, KiB, M, MB, MiB, ... case-insensitive, all binary (see config.h) */
    uint64_t unit = 1;
    const char *u = p;
    size_t ulen = strlen(u);
    while (ulen && (u[ulen - 1] == ' ' || u[ulen - 1] == '\t'))
        ulen--;
    if (ulen) {
        static const char prefixes[] = "kmgt";
        const char *pre = strchr(prefixes, u[0] | 0x20);
        size_t rest;
        if (pre && u[0] != '\0') {
            unit = (uint64_t)1 << (10 * (1 + (pre - prefixes)));
            rest = 1;
        } else {
            unit = 1;
            rest = 0;
        }
        const char *tail = u + rest;
        size_t tlen = ulen - rest;
        bool ok = (tlen == 0 && rest == 1) || (tlen == 1 && (tail[0] | 0x20) == 'b') ||
                  (rest == 1 && tlen == 2 && (tail[0] | 0x20) == 'i' && (tail[1] | 0x20) == 'b');
        if (!ok)
            return why_f(why, why_len, "unknown unit '%.*s' (use B, KB, MB, GB, TB or KiB..TiB)", (int)ulen, u);
    }
    uint64_t bytes;
    if (ip > UINT64_MAX / unit)
        return why_f(why, why_len, "too large");
    bytes = ip * unit;
    if (n_frac) {
        if (unit == 1)
            return why_f(why, why_len, "a byte count must be whole");
        uint64_t fb = frac * unit / frac_div;
        if (bytes > UINT64_MAX - fb)
            return why_f(why, why_len, "too large");
        bytes += fb;
    }
    *out = (sh_config_size){.kind = SH_SIZE_BYTES, .bytes = bytes};
    return 0;
}

uint64_t sh_config_size_bytes(const sh_config_size *s, uint64_t total, uint64_t dflt)
{
    switch (s->kind) {
    case SH_SIZE_BYTES: return s->bytes;
    case SH_SIZE_PERCENT: return (uint64_t)((double)total * (s->percent / 100.0));
    default: return dflt;
    }
}

/* ---- the walk ----------------------------------------------------------------------------- */

/* Aliases let a small file name a huge tree; bound the walk instead of following it forever. */
#define MAX_VISITS 100000

typedef struct pctx {
    yaml_document_t *doc;
    sh_config *cfg;
    sh_err *err;
    char path[200];
    size_t visits;
} pctx;

static int perr_at(pctx *p, yaml_mark_t m, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int perr_at(pctx *p, yaml_mark_t m, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sh_errf(p->err, SHOAL_ERR_PARSE, "%s:%zu:%zu: %s%s%s", p->cfg->source, m.line + 1, m.column + 1,
            p->path, p->path[0] ? ": " : "", msg);
    return SHOAL_ERR_PARSE;
}
#define PERR(p, n, ...) perr_at((p), (n)->start_mark, __VA_ARGS__)

static int no_memory(pctx *p)
{
    return sh_errf(p->err, SHOAL_ERR_NO_MEMORY, "%s: out of memory while loading the config", p->cfg->source);
}

static size_t path_push(pctx *p, const char *seg, bool index)
{
    size_t old = strlen(p->path);
    if (index)
        snprintf(p->path + old, sizeof p->path - old, "[%s]", seg);
    else
        snprintf(p->path + old, sizeof p->path - old, "%s%s", old ? "." : "", seg);
    return old;
}
static void path_pop(pctx *p, size_t old) { p->path[old] = '\0'; }

static yaml_node_t *node(pctx *p, int id)
{
    p->visits++;
    return yaml_document_get_node(p->doc, id);
}

static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = sval(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* How a value reads in a message: 'text' (shortened), null, a list, a mapping. */
static const char *shown(const yaml_node_t *n, char *buf, size_t len)
{
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (is_null(n))
        return "nothing (null)";
    const char *s = sval(n);
    size_t sl = strlen(s);
    char tmp[48];
    size_t k = 0;
    for (size_t i = 0; i < sl && k + 4 < sizeof tmp; i++)
        tmp[k++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    tmp[k] = '\0';
    snprintf(buf, len, "'%s%s'", tmp, k < sl ? "..." : "");
    return buf;
}

static int expect_scalar(pctx *p, yaml_node_t *n, const char *what)
{
    char b[64];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return PERR(p, n, "expected %s, got %s", what, shown(n, b, sizeof b));
    if (strlen(sval(n)) != n->data.scalar.length)
        return PERR(p, n, "expected %s, got a string with a NUL byte", what);
    return 0;
}

static int get_str(pctx *p, yaml_node_t *n, char **out)
{
    int rc = expect_scalar(p, n, "a string");
    if (rc)
        return rc;
    if (!(*out = cfg_strndup(p->cfg, sval(n), n->data.scalar.length)))
        return no_memory(p);
    return 0;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

static int get_name(pctx *p, yaml_node_t *n, const char *what, char **out)
{
    int rc = expect_scalar(p, n, what);
    if (rc)
        return rc;
    char b[64];
    if (!valid_name(sval(n)))
        return PERR(p, n, "%s %s: use 1 to 63 letters, digits, '_', '-' or '.'", what, shown(n, b, sizeof b));
    return get_str(p, n, out);
}

static int get_bool(pctx *p, yaml_node_t *n, bool *out)
{
    char b[64];
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        static const char *const T[] = {"true", "yes", "on"}, *const F[] = {"false", "no", "off"};
        for (size_t i = 0; i < 3; i++) {
            if (!strcasecmp(sval(n), T[i])) { *out = true; return 0; }
            if (!strcasecmp(sval(n), F[i])) { *out = false; return 0; }
        }
    }
    return PERR(p, n, "expected true or false, got %s", shown(n, b, sizeof b));
}

static int get_int(pctx *p, yaml_node_t *n, long long lo, long long hi, int *out)
{
    char b[64], range[64];
    if (hi == INT_MAX)
        snprintf(range, sizeof range, ">= %lld", lo);
    else
        snprintf(range, sizeof range, "in [%lld, %lld]", lo, hi);
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        const char *s = sval(n);
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (end != s && !*end && errno == 0 && v >= lo && v <= hi) {
            *out = (int)v;
            return 0;
        }
    }
    return PERR(p, n, "expected an integer %s, got %s", range, shown(n, b, sizeof b));
}

/* A number in [lo, hi] (or (lo, hi] with lo_open). */
static int get_num(pctx *p, yaml_node_t *n, double lo, double hi, bool lo_open, double *out)
{
    char b[64], range[64];
    if (isinf(hi))
        snprintf(range, sizeof range, "%s %g", lo_open ? ">" : ">=", lo);
    else
        snprintf(range, sizeof range, "in %c%g,%g]", lo_open ? '(' : '[', lo, hi);
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        const char *s = sval(n);
        char *end;
        errno = 0;
        double v = strtod(s, &end);
        if (end != s && !*end && errno == 0 && isfinite(v) && (lo_open ? v > lo : v >= lo) && v <= hi) {
            *out = v;
            return 0;
        }
    }
    return PERR(p, n, "expected a number %s, got %s", range, shown(n, b, sizeof b));
}

static int get_float(pctx *p, yaml_node_t *n, double lo, double hi, bool lo_open, float *out)
{
    double v;
    int rc = get_num(p, n, lo, hi, lo_open, &v);
    if (!rc)
        *out = (float)v;
    return rc;
}

static int get_enum(pctx *p, yaml_node_t *n, const char *const *names, size_t count, int *out)
{
    if (n->type == YAML_SCALAR_NODE && !is_null(n))
        for (size_t i = 0; i < count; i++)
            if (!strcmp(sval(n), names[i])) {
                *out = (int)i;
                return 0;
            }
    char list[160] = "", b[64];
    for (size_t i = 0; i < count; i++) {
        size_t l = strlen(list);
        snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", names[i]);
    }
    return PERR(p, n, "expected one of %s; got %s", list, shown(n, b, sizeof b));
}

static int get_size(pctx *p, yaml_node_t *n, bool allow_percent, bool allow_bool, bool allow_zero,
                    sh_config_size *out)
{
    char b[64], why[128] = "";
    const char *forms = allow_percent ? "like 512MB, 1.5GiB or 60%" : "like 4096, 512MB or 1.5GiB";
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        if (allow_bool && !strcasecmp(sval(n), "true")) { *out = (sh_config_size){.kind = SH_SIZE_AUTO}; return 0; }
        if (allow_bool && !strcasecmp(sval(n), "false")) { *out = (sh_config_size){.kind = SH_SIZE_BYTES}; return 0; }
        if (sh_config_parse_size(sval(n), allow_percent, out, why, sizeof why) == 0) {
            if (out->kind == SH_SIZE_BYTES && out->bytes == 0 && !allow_zero)
                return PERR(p, n, "expected a byte size above 0, got %s", shown(n, b, sizeof b));
            return 0;
        }
    }
    return PERR(p, n, "expected a byte size (%s%s), got %s%s%s", forms, allow_bool ? ", or true/false" : "",
                shown(n, b, sizeof b), why[0] ? ": " : "", why);
}

static int resolve_path(pctx *p, yaml_node_t *n, char **out)
{
    int rc = expect_scalar(p, n, "a path");
    if (rc)
        return rc;
    const char *rel = sval(n);
    const char *base = p->cfg->base_dir;
    if (!base || rel[0] == '/')
        return get_str(p, n, out);
    size_t bl = strlen(base), rl = strlen(rel), total;
    if (!sh_add_size(bl, rl, &total) || !sh_add_size(total, 2, &total) || !(*out = cfg_alloc(p->cfg, total)))
        return no_memory(p);
    snprintf(*out, total, "%s/%s", base, rel);
    return 0;
}

/* Checks a mapping's keys: all plain strings, none twice and, with a table, each in it.
 * Calls fn(p, obj, key_index, key, value) per pair with the key pushed on the path. */
typedef int (*field_fn)(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v);

static int walk_map(pctx *p, yaml_node_t *map, const char *const *keys, size_t nkeys, field_fn fn, void *obj)
{
    char b[64];
    if (map->type != YAML_MAPPING_NODE)
        return PERR(p, map, "expected a mapping of keys, got %s", shown(map, b, sizeof b));
    for (yaml_node_pair_t *pr = map->data.mapping.pairs.start; pr < map->data.mapping.pairs.top; pr++) {
        yaml_node_t *k = node(p, pr->key), *v = node(p, pr->value);
        if (p->visits > MAX_VISITS)
            return PERR(p, map, "the config expands to more than %d nodes (aliases?)", MAX_VISITS);
        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return PERR(p, k, "expected a key name, got %s", shown(k, b, sizeof b));
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < pr; q++) {
            yaml_node_t *qk = node(p, q->key);
            if (qk->type == YAML_SCALAR_NODE && !strcmp(sval(qk), sval(k)))
                return PERR(p, k, "duplicate key '%s' (first at line %zu)", sval(k), qk->start_mark.line + 1);
        }
        int idx = -1;
        if (keys) {
            for (size_t i = 0; i < nkeys; i++)
                if (!strcmp(keys[i], sval(k)))
                    idx = (int)i;
            if (idx < 0) {
                char list[256] = "";
                for (size_t i = 0; i < nkeys; i++) {
                    size_t l = strlen(list);
                    snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "", keys[i]);
                }
                return PERR(p, k, "unknown key %s (expected one of: %s)", shown(k, b, sizeof b), list);
            }
        }
        size_t mark = path_push(p, sval(k), false);
        int rc = fn(p, obj, idx, k, v);
        if (rc)
            return rc;
        path_pop(p, mark);
    }
    return 0;
}

static size_t map_len(const yaml_node_t *n) { return (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start); }
static size_t seq_len(const yaml_node_t *n) { return (size_t)(n->data.sequence.items.top - n->data.sequence.items.start); }

/* A list of model names -> indices (no repeats). */
static int model_list(pctx *p, yaml_node_t *n, bool allow_empty, size_t **out, size_t *count)
{
    char b[64];
    if (n->type != YAML_SEQUENCE_NODE)
        return PERR(p, n, "expected a list of model names, got %s", shown(n, b, sizeof b));
    size_t len = seq_len(n);
    if (!len && !allow_empty)
        return PERR(p, n, "expected at least one model name, got an empty list");
    size_t *idx = cfg_calloc(p->cfg, len, sizeof *idx);
    if (!idx)
        return no_memory(p);
    for (size_t i = 0; i < len; i++) {
        char num[24];
        snprintf(num, sizeof num, "%zu", i);
        size_t mark = path_push(p, num, true);
        yaml_node_t *it = node(p, n->data.sequence.items.start[i]);
        int rc = expect_scalar(p, it, "a model name");
        if (rc)
            return rc;
        int m = sh_config_find_model(p->cfg, sval(it));
        if (m < 0) {
            char list[200] = "";
            for (size_t j = 0; j < p->cfg->n_models; j++) {
                size_t l = strlen(list);
                snprintf(list + l, sizeof list - l, "%s%s", j ? ", " : "", p->cfg->models[j].name);
            }
            return PERR(p, it, "unknown model %s (models: %s)", shown(it, b, sizeof b), list);
        }
        for (size_t j = 0; j < i; j++)
            if (idx[j] == (size_t)m)
                return PERR(p, it, "model '%s' is listed twice", sval(it));
        idx[i] = (size_t)m;
        path_pop(p, mark);
    }
    *out = idx;
    *count = len;
    return 0;
}

/* A list of exactly 3 numbers, or one number for all three channels. */
static int get_triple(pctx *p, yaml_node_t *n, double lo, bool lo_open, float out[3])
{
    char b[64];
    if (n->type == YAML_SCALAR_NODE) {
        int rc = get_float(p, n, lo, INFINITY, lo_open, &out[0]);
        out[1] = out[2] = out[0];
        return rc;
    }
    if (n->type != YAML_SEQUENCE_NODE || seq_len(n) != 3)
        return PERR(p, n, "expected a list of 3 numbers (one per channel), got %s%s",
                    shown(n, b, sizeof b), n->type == YAML_SEQUENCE_NODE ? " of another length" : "");
    for (int i = 0; i < 3; i++) {
        int rc = get_float(p, node(p, n->data.sequence.items.start[i]), lo, INFINITY, lo_open, &out[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- models ------------------------------------------------------------------------------ */

enum {
    MK_PATH, MK_TASK, MK_INPUT_SIZE, MK_LETTERBOX, MK_COLOR, MK_SCALE, MK_MEAN, MK_STD, MK_CLASSES,
    MK_CLASSES_FILE, MK_DECODER, MK_SCORE, MK_IOU, MK_MAXDET, MK_AGNOSTIC, MK_PRIORITY, MK_PRELOAD,
    MK_ON_DEMAND, MK_PINNED, MK_PRECISION, MK_PALM, MK_NUM_HANDS, MK_MIN_DET, MK_MIN_TRACK, MK_TRACKING,
    MK_TOP_K, MK_SCORES, MK_COUNT
};
static const char *const MODEL_KEYS[MK_COUNT] = {
    "path", "task", "input_size", "letterbox", "color", "scale", "mean", "std", "classes",
    "classes_file", "decoder", "score_threshold", "iou_threshold", "max_detections", "agnostic_nms",
    "priority", "preload", "on_demand", "pinned", "precision", "palm_model", "num_hands",
    "min_detection_confidence", "min_tracking_confidence", "tracking", "top_k", "scores"};

typedef struct model_seen {
    sh_model_config *m;
    yaml_node_t *at[MK_COUNT];   /* the value node of each key given */
} model_seen;

static int model_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    model_seen *ms = obj;
    sh_model_config *m = ms->m;
    char b[64];
    int e = 0, rc = 0;
    ms->at[key] = v;
    switch (key) {
    case MK_PATH: return resolve_path(p, v, &m->path);
    case MK_TASK: rc = get_enum(p, v, TASK_NAMES, COUNT(TASK_NAMES), &e); m->task = (sh_task)e; return rc;
    case MK_INPUT_SIZE: {
        int w, h;
        if (v->type == YAML_SEQUENCE_NODE && seq_len(v) == 2) {
            if ((rc = get_int(p, node(p, v->data.sequence.items.start[0]), 1, 16384, &w)) ||
                (rc = get_int(p, node(p, v->data.sequence.items.start[1]), 1, 16384, &h)))
                return rc;
        } else if (v->type == YAML_SCALAR_NODE) {
            if ((rc = get_int(p, v, 1, 16384, &w)))
                return rc;
            h = w;
        } else {
            return PERR(p, v, "expected [width, height] or one integer, got %s", shown(v, b, sizeof b));
        }
        m->input_w = w;
        m->input_h = h;
        return 0;
    }
    case MK_LETTERBOX: rc = get_enum(p, v, LETTERBOX_NAMES, COUNT(LETTERBOX_NAMES), &e); m->letterbox = (sh_letterbox)e; return rc;
    case MK_COLOR: rc = get_enum(p, v, COLOR_NAMES, COUNT(COLOR_NAMES), &e); m->color = (sh_color)e; return rc;
    case MK_SCALE: return get_float(p, v, 0, INFINITY, true, &m->scale);
    case MK_MEAN: return get_triple(p, v, -INFINITY, false, m->mean);
    case MK_STD: return get_triple(p, v, 0, true, m->std);
    case MK_CLASSES: {
        if (v->type != YAML_SEQUENCE_NODE)
            return PERR(p, v, "expected a list of class names, got %s", shown(v, b, sizeof b));
        size_t len = seq_len(v);
        if (!(m->classes = cfg_calloc(p->cfg, len, sizeof *m->classes)))
            return no_memory(p);
        for (size_t i = 0; i < len; i++) {
            char num[24];
            snprintf(num, sizeof num, "%zu", i);
            size_t mark = path_push(p, num, true);
            if ((rc = get_str(p, node(p, v->data.sequence.items.start[i]), &m->classes[i])))
                return rc;
            path_pop(p, mark);
        }
        m->n_classes = len;
        return 0;
    }
    case MK_CLASSES_FILE: return resolve_path(p, v, &m->classes_file);
    case MK_DECODER: rc = get_enum(p, v, DECODER_NAMES, COUNT(DECODER_NAMES), &e); m->decoder = (sh_decoder)e; return rc;
    case MK_SCORE: return get_float(p, v, 0, 1, false, &m->score_threshold);
    case MK_IOU: return get_float(p, v, 0, 1, false, &m->iou_threshold);
    case MK_MAXDET: return get_int(p, v, 1, 100000, &m->max_detections);
    case MK_AGNOSTIC: return get_bool(p, v, &m->agnostic_nms);
    case MK_PRIORITY: return get_int(p, v, -1000000, 1000000, &m->priority);
    case MK_PRELOAD: {
        bool pv;
        if ((rc = get_bool(p, v, &pv)))
            return rc;
        if (ms->at[MK_ON_DEMAND] && pv != m->preload)
            return PERR(p, k, "contradicts on_demand: %s (on_demand is the opposite of preload)",
                        m->preload ? "false" : "true");
        m->preload = pv;
        return 0;
    }
    case MK_ON_DEMAND: {
        bool od;
        if ((rc = get_bool(p, v, &od)))
            return rc;
        if (ms->at[MK_PRELOAD] && m->preload == od)
            return PERR(p, k, "contradicts preload: %s (on_demand is the opposite of preload)",
                        m->preload ? "true" : "false");
        m->preload = !od;
        return 0;
    }
    case MK_PINNED: return get_bool(p, v, &m->pinned);
    case MK_PRECISION: rc = get_enum(p, v, PRECISION_NAMES, COUNT(PRECISION_NAMES), &e); m->precision = (sh_precision)e; return rc;
    case MK_PALM: return resolve_path(p, v, &m->palm_path);
    case MK_NUM_HANDS: return get_int(p, v, 1, 8, &m->num_hands);
    case MK_MIN_DET: return get_float(p, v, 0, 1, false, &m->min_detection_confidence);
    case MK_MIN_TRACK: return get_float(p, v, 0, 1, false, &m->min_tracking_confidence);
    case MK_TRACKING: return get_bool(p, v, &m->tracking);
    case MK_TOP_K: return get_int(p, v, 1, 1000, &m->top_k);
    case MK_SCORES: rc = get_enum(p, v, CLASS_OUTPUT_NAMES, COUNT(CLASS_OUTPUT_NAMES), &e); m->scores = (sh_class_output)e; return rc;
    }
    return SHOAL_ERR_INTERNAL;
}

static const sh_decoder DEFAULT_DECODER[] = {
    [SH_TASK_DETECT] = SH_DECODER_YOLOV8, [SH_TASK_SEGMENT] = SH_DECODER_YOLOV8_SEG,
    [SH_TASK_LANDMARKS] = SH_DECODER_LANDMARKS, [SH_TASK_CLASSIFY] = SH_DECODER_CLASSIFY,
    [SH_TASK_YOLOX] = SH_DECODER_YOLOX, [SH_TASK_HAND_LANDMARKS] = SH_DECODER_NONE};

static bool decoder_fits(sh_task t, sh_decoder d)
{
    if (d == SH_DECODER_NONE)
        return true;
    switch (t) {
    case SH_TASK_DETECT: return d == SH_DECODER_YOLOV8 || d == SH_DECODER_YOLOX || d == SH_DECODER_END2END;
    case SH_TASK_SEGMENT: return d == SH_DECODER_YOLOV8_SEG || d == SH_DECODER_END2END;
    case SH_TASK_LANDMARKS: return d == SH_DECODER_LANDMARKS;
    case SH_TASK_YOLOX: return d == SH_DECODER_YOLOX;
    case SH_TASK_CLASSIFY: return d == SH_DECODER_CLASSIFY;
    case SH_TASK_HAND_LANDMARKS: return false;   /* its decoding is the hand pipeline's own */
    }
    return false;
}

static int parse_model(pctx *p, yaml_node_t *k, yaml_node_t *v, sh_model_config *m)
{
    *m = (sh_model_config){
        .input_w = 640, .input_h = 640, .scale = 1.0f / 255.0f, .std = {1, 1, 1},
        .score_threshold = 0.25f, .iou_threshold = 0.45f, .max_detections = 300, .top_k = 5,
        .num_hands = 2, .min_detection_confidence = 0.5f, .min_tracking_confidence = 0.5f, .tracking = true,
        .line = (int)k->start_mark.line + 1};
    int rc = get_name(p, k, "model name", &m->name);
    if (rc)
        return rc;
    model_seen ms = {.m = m};
    if ((rc = walk_map(p, v, MODEL_KEYS, MK_COUNT, model_field, &ms)))
        return rc;
    if (!ms.at[MK_PATH])
        return PERR(p, v, "missing required key 'path' (the model file, ONNX or TFLite, relative to the config)");
    m->task_given = ms.at[MK_TASK] != NULL;
    m->decoder_given = ms.at[MK_DECODER] != NULL;
    m->input_size_given = ms.at[MK_INPUT_SIZE] != NULL;
    bool hands = m->task == SH_TASK_HAND_LANDMARKS;
    if (hands && !ms.at[MK_PALM])
        return PERR(p, v, "task hand_landmarks needs 'palm_model' (the palm detector; 'path' is the landmark model)");
    for (int key = MK_PALM; key <= MK_TRACKING && !hands; key++)
        if (ms.at[key]) {
            path_push(p, MODEL_KEYS[key], false);
            return PERR(p, ms.at[key], "only task hand_landmarks takes '%s'", MODEL_KEYS[key]);
        }
    if (ms.at[MK_CLASSES] && ms.at[MK_CLASSES_FILE])
        return PERR(p, ms.at[MK_CLASSES_FILE], "give classes or classes_file, not both");
    if (!ms.at[MK_DECODER])
        m->decoder = DEFAULT_DECODER[m->task];
    else if (!decoder_fits(m->task, m->decoder)) {
        path_push(p, "decoder", false);
        return PERR(p, ms.at[MK_DECODER], "decoder '%s' does not fit task '%s' (use %s or none)",
                    sh_decoder_name(m->decoder), sh_task_name(m->task), sh_decoder_name(DEFAULT_DECODER[m->task]));
    }
    /* A key the model's decoder never reads is refused rather than silently ignored. */
    static const int DETECTION_KEYS[] = {MK_SCORE, MK_IOU, MK_MAXDET, MK_AGNOSTIC, MK_CLASSES, MK_CLASSES_FILE};
    static const int CLASSIFY_KEYS[] = {MK_TOP_K, MK_SCORES};
    for (size_t i = 0; i < COUNT(CLASSIFY_KEYS); i++)
        if (m->decoder != SH_DECODER_CLASSIFY && ms.at[CLASSIFY_KEYS[i]]) {
            path_push(p, MODEL_KEYS[CLASSIFY_KEYS[i]], false);
            return PERR(p, ms.at[CLASSIFY_KEYS[i]], "applies to decoder classify (task classify) only, not %s",
                        sh_decoder_name(m->decoder));
        }
    for (size_t i = 0; i < COUNT(DETECTION_KEYS); i++) {
        int key = DETECTION_KEYS[i];
        bool unread = m->decoder == SH_DECODER_LANDMARKS || m->decoder == SH_DECODER_NONE ||
                      (m->decoder == SH_DECODER_CLASSIFY && (key == MK_IOU || key == MK_MAXDET || key == MK_AGNOSTIC));
        if (unread && ms.at[key]) {
            path_push(p, MODEL_KEYS[key], false);
            return PERR(p, ms.at[key], "decoder %s does not read it (%s)", sh_decoder_name(m->decoder),
                        m->decoder == SH_DECODER_CLASSIFY ? "no boxes, no NMS; top_k bounds the classes reported"
                        : m->decoder == SH_DECODER_LANDMARKS ? "it gives 21 hand landmarks, presence and handedness"
                                                             : "none decodes nothing");
        }
    }
    if (m->decoder == SH_DECODER_CLASSIFY && !ms.at[MK_SCORE])
        m->score_threshold = 0.0f;
    m->preload_base = m->preload;
    return 0;
}

static int parse_models(pctx *p, yaml_node_t *v)
{
    char b[64];
    if (v->type != YAML_MAPPING_NODE)
        return PERR(p, v, "expected a mapping of model name -> settings, got %s", shown(v, b, sizeof b));
    size_t n = map_len(v);
    if (n == 0)
        return PERR(p, v, "expected at least one model");
    sh_config *cfg = p->cfg;
    if (!(cfg->models = cfg_calloc(cfg, n, sizeof *cfg->models)))
        return no_memory(p);
    /* keys checked (duplicates) by walk_map with no table; each model parsed in turn */
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *pr = &v->data.mapping.pairs.start[i];
        yaml_node_t *k = node(p, pr->key), *val = node(p, pr->value);
        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return PERR(p, k, "expected a model name, got %s", shown(k, b, sizeof b));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->models[j].name, sval(k)))
                return PERR(p, k, "duplicate key '%s' (first at line %d)", sval(k), cfg->models[j].line);
        size_t mark = path_push(p, sval(k), false);
        int rc = parse_model(p, k, val, &cfg->models[i]);
        if (rc)
            return rc;
        cfg->n_models = i + 1;
        path_pop(p, mark);
    }
    return 0;
}

/* ---- modes -------------------------------------------------------------------------------- */

static int parse_modes(pctx *p, yaml_node_t *v)
{
    char b[64];
    if (v->type != YAML_MAPPING_NODE)
        return PERR(p, v, "expected a mapping of mode name -> list of models, got %s", shown(v, b, sizeof b));
    size_t n = map_len(v);
    sh_config *cfg = p->cfg;
    if (!(cfg->modes = cfg_calloc(cfg, n, sizeof *cfg->modes)))
        return no_memory(p);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t *pr = &v->data.mapping.pairs.start[i];
        yaml_node_t *k = node(p, pr->key), *val = node(p, pr->value);
        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return PERR(p, k, "expected a mode name, got %s", shown(k, b, sizeof b));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->modes[j].name, sval(k)))
                return PERR(p, k, "duplicate key '%s' (first at line %d)", sval(k), cfg->modes[j].line);
        size_t mark = path_push(p, sval(k), false);
        sh_mode_config *md = &cfg->modes[i];
        md->line = (int)k->start_mark.line + 1;
        int rc = get_name(p, k, "mode name", &md->name);
        if (!rc)
            rc = model_list(p, val, false, &md->models, &md->n_models);
        if (rc)
            return rc;
        cfg->n_modes = i + 1;
        path_pop(p, mark);
    }
    return 0;
}

/* ---- memory, inference, server, monitor -------------------------------------------------- */

static const char *const MEMORY_KEYS[] = {"budget", "idle_unload_s", "cleanup_threshold", "host_cache", "arena_contexts"};

static int memory_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_memory_config *m = obj;
    switch (key) {
    case 0: return get_size(p, v, true, false, false, &m->budget);
    case 1: return get_int(p, v, 0, 10000000, &m->idle_unload_s);
    case 2: return get_num(p, v, 0, 1, true, &m->cleanup_threshold);
    case 3: return get_size(p, v, true, true, true, &m->host_cache);
    case 4: return get_int(p, v, 1, 64, &m->arena_contexts);
    }
    return SHOAL_ERR_INTERNAL;
}

static const char *const INFERENCE_KEYS[] = {"fp16", "streams", "cuda_graphs", "threads", "device",
                                              "concurrent_models", "max_frame_pixels", "mask_pool_frames"};

static int inference_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_inference_config *in = obj;
    int e = 0, rc;
    switch (key) {
    case 0: in->fp16_set = true; return get_bool(p, v, &in->fp16);
    case 1: return get_int(p, v, 1, SH_CONFIG_MAX_STREAMS, &in->streams);
    case 2: return get_bool(p, v, &in->cuda_graphs);
    case 3: return get_int(p, v, 0, 1024, &in->threads);
    case 4: rc = get_enum(p, v, DEVICE_NAMES, COUNT(DEVICE_NAMES), &e); in->device = (sh_device_kind)e; return rc;
    case 5:
        /* YAML 1.1 readers take bare on/off for booleans: accept true/false as on/off too */
        if (v->type == YAML_SCALAR_NODE && (!strcmp(sval(v), "true") || !strcmp(sval(v), "false"))) {
            in->concurrent_models = !strcmp(sval(v), "true") ? SH_CONCURRENT_ON : SH_CONCURRENT_OFF;
            return 0;
        }
        rc = get_enum(p, v, CONCURRENCY_NAMES, COUNT(CONCURRENCY_NAMES), &e);
        in->concurrent_models = (sh_concurrency)e;
        return rc;
    case 6: return get_int(p, v, 1, (int)SH_IMAGE_MAX_PIXELS, &in->max_frame_pixels);
    case 7: return get_int(p, v, 1, SH_CONFIG_MAX_MASK_POOL_FRAMES, &in->mask_pool_frames);
    }
    return SHOAL_ERR_INTERNAL;
}

static const char *const SERVER_KEYS[] = {"listen", "workers", "queue", "timeout_ms", "max_body_bytes", "token_file"};

static int server_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_server_config *s = obj;
    sh_config_size sz;
    int rc;
    switch (key) {
    case 0: return get_str(p, v, &s->listen);
    case 1: return get_int(p, v, 1, 1024, &s->workers);
    case 2: return get_int(p, v, 1, 1 << 20, &s->queue);
    case 3: return get_int(p, v, 1, 3600000, &s->timeout_ms);
    case 4:
        if ((rc = get_size(p, v, false, false, false, &sz)))
            return rc;
        s->max_body_bytes = sz.bytes;
        return 0;
    case 5: return resolve_path(p, v, &s->token_file);
    }
    return SHOAL_ERR_INTERNAL;
}

static const char *const MONITOR_KEYS[] = {"interval_s", "report_path"};

static int monitor_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_monitor_config *m = obj;
    switch (key) {
    case 0: return get_num(p, v, 0, 86400, true, &m->interval_s);
    case 1: return resolve_path(p, v, &m->report_path);
    }
    return SHOAL_ERR_INTERNAL;
}

/* ---- hardware tiers ----------------------------------------------------------------------- */

/* Built-in tiers, from the original system's presets (../shared/ORIGINAL.md); a config's
 * tiers override them field by field. */
static void default_tiers(sh_tier_config t[SH_TIER_COUNT])
{
    const uint64_t GiB = (uint64_t)1 << 30, MiB = (uint64_t)1 << 20;
    t[SH_TIER_LOW] = (sh_tier_config){
        .has_max_memory = true, .max_memory = 6 * GiB, .has_fp16 = true, .fp16 = true,
        .has_idle_unload_s = true, .idle_unload_s = 60,
        .has_host_cache = true, .host_cache = {.kind = SH_SIZE_BYTES, .bytes = 0}};
    t[SH_TIER_MID] = (sh_tier_config){
        .has_max_memory = true, .max_memory = 12 * GiB, .has_fp16 = true, .fp16 = true,
        .has_host_cache = true, .host_cache = {.kind = SH_SIZE_BYTES, .bytes = 512 * MiB}};
    t[SH_TIER_HIGH] = (sh_tier_config){
        .has_preload = true, .preload_all = true,
        .has_host_cache = true, .host_cache = {.kind = SH_SIZE_BYTES, .bytes = 2 * GiB}};
}

static const char *const TIER_KEYS[] = {"max_memory", "fp16", "idle_unload_s", "host_cache", "preload",
                                        "budget", "cleanup_threshold", "streams"};

static int tier_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_tier_config *t = obj;
    sh_config_size sz;
    int rc;
    switch (key) {
    case 0:
        if ((rc = get_size(p, v, false, false, false, &sz)))
            return rc;
        t->has_max_memory = true;
        t->max_memory = sz.bytes;
        return 0;
    case 1: t->has_fp16 = true; return get_bool(p, v, &t->fp16);
    case 2: t->has_idle_unload_s = true; return get_int(p, v, 0, 10000000, &t->idle_unload_s);
    case 3: t->has_host_cache = true; return get_size(p, v, true, true, true, &t->host_cache);
    case 4:
        t->has_preload = true;
        t->preload_all = false;
        t->preload = NULL;
        t->n_preload = 0;
        if (v->type == YAML_SCALAR_NODE && !is_null(v)) {
            if (!strcmp(sval(v), "all") || !strcasecmp(sval(v), "true")) {
                t->preload_all = true;
                return 0;
            }
            if (!strcasecmp(sval(v), "false") || !strcmp(sval(v), "none"))
                return 0;
            char b[64];
            return PERR(p, v, "expected a list of model names, all or none; got %s", shown(v, b, sizeof b));
        }
        return model_list(p, v, true, &t->preload, &t->n_preload);
    case 5: t->has_budget = true; return get_size(p, v, true, false, false, &t->budget);
    case 6: t->has_cleanup_threshold = true; return get_num(p, v, 0, 1, true, &t->cleanup_threshold);
    case 7: t->has_streams = true; return get_int(p, v, 1, SH_CONFIG_MAX_STREAMS, &t->streams);
    }
    return SHOAL_ERR_INTERNAL;
}

static int tiers_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_tier_config *tiers = obj;
    return walk_map(p, v, TIER_KEYS, COUNT(TIER_KEYS), tier_field, &tiers[key + 1]);
}

static const char *const HARDWARE_KEYS[] = {"tier", "tiers"};

static int hardware_field(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    sh_hardware_config *h = obj;
    static const char *const TIER_SECTIONS[] = {"low", "mid", "high"};
    int e = 0, rc;
    switch (key) {
    case 0: rc = get_enum(p, v, TIER_NAMES, COUNT(TIER_NAMES), &e); h->tier = (sh_tier)e; return rc;
    case 1:
        if ((rc = walk_map(p, v, TIER_SECTIONS, COUNT(TIER_SECTIONS), tiers_field, h->tiers)))
            return rc;
        /* auto picks the first tier that admits the device: the bounds must rise */
        for (int t = SH_TIER_LOW; t < SH_TIER_HIGH; t++)
            for (int u = t + 1; u <= SH_TIER_HIGH; u++)
                if (h->tiers[t].has_max_memory && h->tiers[u].has_max_memory &&
                    h->tiers[u].max_memory <= h->tiers[t].max_memory)
                    return PERR(p, v, "tiers.%s.max_memory must be above tiers.%s.max_memory",
                                TIER_NAMES[u], TIER_NAMES[t]);
        return 0;
    }
    return SHOAL_ERR_INTERNAL;
}

/* ---- top level ---------------------------------------------------------------------------- */

enum { TK_VERSION, TK_MODELS, TK_MODES, TK_DEFAULT_MODE, TK_MEMORY, TK_INFERENCE, TK_HARDWARE, TK_SERVER,
       TK_MONITOR, TK_COUNT };
static const char *const TOP_KEYS[TK_COUNT] = {"version", "models", "modes", "default_mode", "memory",
                                               "inference", "hardware", "server", "monitor"};

static int top_collect(pctx *p, void *obj, int key, yaml_node_t *k, yaml_node_t *v)
{
    ((yaml_node_t **)obj)[2 * key] = k;
    ((yaml_node_t **)obj)[2 * key + 1] = v;
    return 0;
}

static int parse_root(pctx *p, yaml_node_t *root)
{
    yaml_node_t *at[2 * TK_COUNT] = {0};
    sh_config *cfg = p->cfg;
    int rc;
    if (root->type != YAML_MAPPING_NODE) {
        char b[64];
        return PERR(p, root, "expected a mapping at the top (models:, modes:, memory:, ...), got %s",
                    shown(root, b, sizeof b));
    }
    if ((rc = walk_map(p, root, TOP_KEYS, TK_COUNT, top_collect, at)))
        return rc;
#define SECTION(key, call)                                            \
    do {                                                              \
        if (at[2 * (key) + 1]) {                                      \
            size_t mark_ = path_push(p, TOP_KEYS[key], false);        \
            yaml_node_t *v = at[2 * (key) + 1];                       \
            if ((rc = (call)))                                        \
                return rc;                                            \
            path_pop(p, mark_);                                       \
        }                                                             \
    } while (0)
    if (at[2 * TK_VERSION + 1]) {
        int ver;
        SECTION(TK_VERSION, get_int(p, v, 1, 1, &ver));
    }
    if (!at[2 * TK_MODELS + 1])
        return PERR(p, root, "missing required key 'models'");
    SECTION(TK_MODELS, parse_models(p, v));
    SECTION(TK_MODES, parse_modes(p, v));
    if (at[2 * TK_DEFAULT_MODE + 1]) {
        yaml_node_t *v = at[2 * TK_DEFAULT_MODE + 1];
        size_t mark = path_push(p, "default_mode", false);
        if ((rc = expect_scalar(p, v, "a mode name")))
            return rc;
        if ((cfg->default_mode = sh_config_find_mode(cfg, sval(v))) < 0) {
            char b[64];
            return PERR(p, v, "unknown mode %s", shown(v, b, sizeof b));
        }
        path_pop(p, mark);
    }
    SECTION(TK_MEMORY, walk_map(p, v, MEMORY_KEYS, COUNT(MEMORY_KEYS), memory_field, &cfg->memory));
    SECTION(TK_INFERENCE, walk_map(p, v, INFERENCE_KEYS, COUNT(INFERENCE_KEYS), inference_field, &cfg->inference));
    SECTION(TK_HARDWARE, walk_map(p, v, HARDWARE_KEYS, COUNT(HARDWARE_KEYS), hardware_field, &cfg->hardware));
    SECTION(TK_SERVER, walk_map(p, v, SERVER_KEYS, COUNT(SERVER_KEYS), server_field, &cfg->server));
    SECTION(TK_MONITOR, walk_map(p, v, MONITOR_KEYS, COUNT(MONITOR_KEYS), monitor_field, &cfg->monitor));
#undef SECTION
    return 0;
}

static void set_defaults(sh_config *cfg)
{
    cfg->default_mode = -1;
    cfg->memory = (sh_memory_config){.idle_unload_s = 300, .cleanup_threshold = 0.8, .arena_contexts = 1};
    cfg->inference = (sh_inference_config){.cuda_graphs = true, .device = SH_DEVICE_AUTO};
    default_tiers(cfg->hardware.tiers);
    cfg->server = (sh_server_config){.workers = 2, .queue = 16, .timeout_ms = 5000,
                                     .max_body_bytes = (uint64_t)16 << 20};
    cfg->monitor = (sh_monitor_config){.interval_s = 5.0};
}

static int yaml_failure(pctx *p, yaml_parser_t *parser)
{
    if (parser->error == YAML_MEMORY_ERROR)
        return no_memory(p);
    yaml_mark_t m = parser->problem_mark;
    const char *prob = parser->problem ? parser->problem : "malformed YAML";
    if (parser->context)
        return sh_errf(p->err, SHOAL_ERR_PARSE, "%s:%zu:%zu: invalid YAML: %s %s", p->cfg->source, m.line + 1,
                       m.column + 1, prob, parser->context);
    return sh_errf(p->err, SHOAL_ERR_PARSE, "%s:%zu:%zu: invalid YAML: %s", p->cfg->source, m.line + 1,
                   m.column + 1, prob);
}

static int load_document(pctx *p, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    if (!yaml_parser_initialize(&parser))
        return no_memory(p);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc;
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_failure(p, &parser);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        rc = sh_errf(p->err, SHOAL_ERR_PARSE, "%s: the config is empty", p->cfg->source);
    } else if (!yaml_parser_load(&parser, &extra)) {
        rc = yaml_failure(p, &parser);
    } else {
        yaml_node_t *r2 = yaml_document_get_root_node(&extra);
        rc = r2 ? perr_at(p, r2->start_mark, "a second YAML document ('---'); a config is one document") : 0;
        yaml_document_delete(&extra);
        if (!rc) {
            p->doc = &doc;
            rc = parse_root(p, root);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
}

/* Appends the palm detector of every hand_landmarks model as an entry "<name>.palm" (see
 * config.h). Mode lists and tier preload lists keep their indices: the new entries come last. */
static int add_palm_stages(sh_config *cfg, sh_err *err)
{
    size_t n_hands = 0;
    for (size_t i = 0; i < cfg->n_models; i++)
        n_hands += cfg->models[i].task == SH_TASK_HAND_LANDMARKS;
    if (n_hands == 0)
        return 0;
    size_t n = cfg->n_models + n_hands;
    sh_model_config *all = cfg_calloc(cfg, n, sizeof *all);
    if (!all)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory while loading the config", cfg->source);
    memcpy(all, cfg->models, cfg->n_models * sizeof *all);
    size_t at = cfg->n_models;
    for (size_t i = 0; i < cfg->n_models; i++) {
        sh_model_config *owner = &all[i];
        if (owner->task != SH_TASK_HAND_LANDMARKS)
            continue;
        size_t len = strlen(owner->name);
        char *name = cfg_alloc(cfg, len + sizeof ".palm");
        if (!name)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory while loading the config", cfg->source);
        memcpy(name, owner->name, len);
        memcpy(name + len, ".palm", sizeof ".palm");
        for (size_t j = 0; j < cfg->n_models; j++)
            if (!strcmp(all[j].name, name))
                return sh_errf(err, SHOAL_ERR_PARSE, "%s:%d: models.%s: its palm detector runs as model '%s', "
                               "a name model '%s' (line %d) already has", cfg->source, owner->line, owner->name,
                               name, all[j].name, all[j].line);
        sh_model_config *st = &all[at];
        *st = *owner;
        st->name = name;
        st->path = owner->palm_path;
        st->palm_path = NULL;
        st->is_palm_stage = true;
        st->stage_owner = i;
        owner->palm_stage = at++;
    }
    cfg->models = all;
    cfg->n_models = n;
    return 0;
}

int sh_config_load_string(sh_allocator *a, const char *text, size_t len, const char *source,
                          const char *base_dir, sh_config **out, sh_err *err)
{
    *out = NULL;
    sh_config *cfg = sh_alloc(a, sizeof *cfg);
    if (!cfg)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory while loading the config",
                       source ? source : "<string>");
    memset(cfg, 0, sizeof *cfg);
    cfg->alloc_ = a;
    pctx p = {.cfg = cfg, .err = err};
    if (!source)
        source = "<string>";
    cfg->source = cfg_strndup(cfg, source, strlen(source));
    if (!cfg->source || (base_dir && !(cfg->base_dir = cfg_strndup(cfg, base_dir, strlen(base_dir))))) {
        cfg->source = (char *)source;  /* for the message only */
        int rc = no_memory(&p);
        sh_config_destroy(cfg);
        return rc;
    }
    set_defaults(cfg);
    int rc = load_document(&p, text, len);
    if (rc == 0)
        rc = add_palm_stages(cfg, err);
    if (rc) {
        sh_config_destroy(cfg);
        return rc;
    }
    cfg->base_.memory = cfg->memory;
    cfg->base_.inference = cfg->inference;
    *out = cfg;
    return 0;
}

/* Reads a whole (small) file into an allocator block; NUL-terminated. */
static int read_file(sh_allocator *a, const char *path, size_t max, char **out, size_t *len, sh_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sh_errf(err, errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            if (ncap > max + 4096 + 1) {
                if (n > max) {
                    rc = sh_errf(err, SHOAL_ERR_IO, "%s: larger than %zu bytes", path, max);
                    break;
                }
                ncap = max + 4096 + 1;
            }
            char *nb = sh_realloc(a, buf, ncap);
            if (!nb) {
                rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory reading the file", path);
                break;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = sh_errf(err, SHOAL_ERR_IO, "%s: read error", path);
            break;
        }
        if (n > max) {
            rc = sh_errf(err, SHOAL_ERR_IO, "%s: larger than %zu bytes", path, max);
            break;
        }
    }
    fclose(f);
    if (rc) {
        sh_free(a, buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int sh_config_load_file(sh_allocator *a, const char *path, sh_config **out, sh_err *err)
{
    *out = NULL;
    char *text;
    size_t len;
    int rc = read_file(a, path, (size_t)16 << 20, &text, &len, err);
    if (rc)
        return rc;
    char *dir = NULL;
    const char *slash = strrchr(path, '/');
    if (slash) {
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        if (!(dir = sh_strndup(a, path, dl))) {
            sh_free(a, text);
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory while loading the config", path);
        }
    }
    rc = sh_config_load_string(a, text, len, path, dir, out, err);
    sh_free(a, dir);
    sh_free(a, text);
    return rc;
}

/* ---- after loading ------------------------------------------------------------------------ */

int sh_config_find_model(const sh_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg->models[i].name && !strcmp(cfg->models[i].name, name))
            return (int)i;
    return -1;
}

int sh_config_find_mode(const sh_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_modes; i++)
        if (cfg->modes[i].name && !strcmp(cfg->modes[i].name, name))
            return (int)i;
    return -1;
}

sh_tier sh_config_pick_tier(sh_config *cfg, uint64_t device_total_bytes)
{
    cfg->memory = cfg->base_.memory;
    cfg->inference = cfg->base_.inference;
    for (size_t i = 0; i < cfg->n_models; i++)
        cfg->models[i].preload = cfg->models[i].preload_base;
    sh_tier t = cfg->hardware.tier;
    if (t == SH_TIER_AUTO) {
        if (device_total_bytes == 0) {
            cfg->hardware.picked = SH_TIER_AUTO;
            return SH_TIER_AUTO;
        }
        t = SH_TIER_HIGH;
        for (int c = SH_TIER_LOW; c <= SH_TIER_HIGH; c++) {
            const sh_tier_config *tc = &cfg->hardware.tiers[c];
            if (!tc->has_max_memory || device_total_bytes <= tc->max_memory) {
                t = (sh_tier)c;
                break;
            }
        }
    }
    const sh_tier_config *tc = &cfg->hardware.tiers[t];
    if (tc->has_fp16) {
        cfg->inference.fp16 = tc->fp16;
        cfg->inference.fp16_set = true;
    }
    if (tc->has_streams)
        cfg->inference.streams = tc->streams;
    if (tc->has_idle_unload_s)
        cfg->memory.idle_unload_s = tc->idle_unload_s;
    if (tc->has_host_cache)
        cfg->memory.host_cache = tc->host_cache;
    if (tc->has_budget)
        cfg->memory.budget = tc->budget;
    if (tc->has_cleanup_threshold)
        cfg->memory.cleanup_threshold = tc->cleanup_threshold;
    if (tc->has_preload) {
        for (size_t i = 0; i < cfg->n_models; i++)
            cfg->models[i].preload = tc->preload_all;
        for (size_t i = 0; i < tc->n_preload; i++)
            cfg->models[tc->preload[i]].preload = true;
    }
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg->models[i].is_palm_stage)
            cfg->models[i].preload = cfg->models[cfg->models[i].stage_owner].preload;
    cfg->hardware.picked = t;
    return t;
}

int sh_config_check_precision(const sh_config *cfg, sh_precision device_precision, const char *device_name,
                              sh_err *err)
{
    const char *device_has = PRECISION_NAMES[device_precision];
    for (size_t i = 0; i < cfg->n_models; i++) {
        const sh_model_config *m = &cfg->models[i];
        if (m->precision == SH_PRECISION_AUTO || m->precision == device_precision)
            continue;
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                       "%s:%d: models.%s.precision: %s is not supported on %s: its backend computes in %s only "
                       "(use precision: %s or auto, or another device)",
                       cfg->source, m->line, m->name, PRECISION_NAMES[m->precision], device_name, device_has,
                       device_has);
    }
    if (cfg->inference.fp16_set && !cfg->inference.fp16 && device_precision == SH_PRECISION_FP16) {
        char key[64] = "inference.fp16";
        if (cfg->hardware.picked != SH_TIER_AUTO && cfg->hardware.tiers[cfg->hardware.picked].has_fp16)
            snprintf(key, sizeof key, "hardware.tiers.%s.fp16", sh_tier_name(cfg->hardware.picked));
        for (size_t i = 0; i < cfg->n_models; i++)
            if (cfg->models[i].precision == SH_PRECISION_AUTO)
                return sh_errf(err, SHOAL_ERR_UNSUPPORTED,
                               "%s: %s: false asks for fp32 (model %s), which %s does not compute in: its backend "
                               "computes in fp16 only (set it to true, remove it, or run on the CPU)",
                               cfg->source, key, cfg->models[i].name, device_name);
    }
    return 0;
}

int sh_config_read_classes(sh_config *cfg, sh_model_config *m, sh_err *err)
{
    if (!m->classes_file || m->n_classes)
        return 0;
    char *text;
    size_t len;
    int rc = read_file(cfg->alloc_, m->classes_file, (size_t)4 << 20, &text, &len, err);
    if (rc)
        return sh_err_prefix(err, rc, "model %s: classes_file: ", m->name);
    size_t lines = 1;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    char **names = cfg_calloc(cfg, lines, sizeof *names);
    size_t n = 0;
    rc = names ? 0 : sh_errf(err, SHOAL_ERR_NO_MEMORY, "model %s: out of memory reading classes", m->name);
    int line = 0;
    for (char *s = text; !rc && s < text + len;) {
        line++;
        char *e = memchr(s, '\n', (size_t)(text + len - s));
        if (!e)
            e = text + len;
        char *b = s, *t = e;
        while (b < t && (*b == ' ' || *b == '\t' || *b == '\r'))
            b++;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        if (t > b && !(names[n++] = cfg_strndup(cfg, b, (size_t)(t - b))))
            rc = sh_errf(err, SHOAL_ERR_NO_MEMORY, "model %s: out of memory reading classes", m->name);
        /* names go into JSON results and drawn labels, which are UTF-8 */
        else if (t > b && (!sh_utf8_valid(names[n - 1]) || memchr(b, '\0', (size_t)(t - b))))
            rc = sh_errf(err, SHOAL_ERR_PARSE, "model %s: classes_file: %s:%d: not UTF-8 text", m->name,
                         m->classes_file, line);
        s = e + 1;
    }
    sh_free(cfg->alloc_, text);
    if (!rc) {
        m->classes = names;
        m->n_classes = n;
    }
    return rc;
}
