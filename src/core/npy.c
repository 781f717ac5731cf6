#include "core/npy.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *descr;
    sh_dtype dt;
} NPY_TYPES[] = {
    {"<f4", SH_DT_FLOAT32}, {"<f8", SH_DT_FLOAT64}, {"<f2", SH_DT_FLOAT16}, {"|i1", SH_DT_INT8},
    {"<i1", SH_DT_INT8},    {"|u1", SH_DT_UINT8},   {"<u1", SH_DT_UINT8},   {"<i2", SH_DT_INT16},
    {"<u2", SH_DT_UINT16},  {"<i4", SH_DT_INT32},   {"<u4", SH_DT_UINT32},  {"<i8", SH_DT_INT64},
    {"<u8", SH_DT_UINT64},  {"|b1", SH_DT_BOOL},
};

static const char *descr_of(sh_dtype dt)
{
    for (size_t i = 0; i < sizeof NPY_TYPES / sizeof NPY_TYPES[0]; i++)
        if (NPY_TYPES[i].dt == dt)
            return NPY_TYPES[i].descr;
    return NULL;
}

/* Finds 'key': in the header dict and returns a pointer just past the colon. */
static const char *dict_value(const char *h, const char *key)
{
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(h, pat);
    if (!p)
        return NULL;
    p = strchr(p + strlen(pat), ':');
    if (!p)
        return NULL;
    p++;
    while (*p == ' ')
        p++;
    return p;
}

int sh_npy_parse(sh_allocator *a, const void *vbuf, size_t len, sh_npy *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    const unsigned char *buf = vbuf;
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0)
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: bad magic");
    int major = buf[6];
    size_t hlen, hoff;
    if (major == 1) {
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8;
        hoff = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return sh_errf(err, SHOAL_ERR_PARSE, "npy: truncated header");
        hlen = (size_t)buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
        hoff = 12;
    } else {
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "npy: format version %d", major);
    }
    if (hlen > len - hoff || hlen > 65536)
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: header length %zu exceeds the file", hlen);
    char h[65537];
    memcpy(h, buf + hoff, hlen);
    h[hlen] = 0;
    const char *v = dict_value(h, "descr");
    if (!v || *v != '\'')
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: no descr");
    char descr[16] = {0};
    const char *e = strchr(v + 1, '\'');
    if (!e || e - v - 1 >= (long)sizeof descr)
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: bad descr");
    memcpy(descr, v + 1, (size_t)(e - v - 1));
    /* '=' (native) is little-endian on every platform shoal targets */
    if (descr[0] == '=')
        descr[0] = '<';
    sh_dtype dt = SH_DT_UNDEFINED;
    for (size_t i = 0; i < sizeof NPY_TYPES / sizeof NPY_TYPES[0]; i++)
        if (!strcmp(NPY_TYPES[i].descr, descr))
            dt = NPY_TYPES[i].dt;
    if (dt == SH_DT_UNDEFINED)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "npy: dtype '%s' is not supported", descr);
    v = dict_value(h, "fortran_order");
    if (!v || strncmp(v, "False", 5) != 0)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "npy: Fortran-order arrays are not supported");
    v = dict_value(h, "shape");
    if (!v || *v != '(')
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: no shape");
    sh_shape s = {.ndim = 0};
    v++;
    for (;;) {
        while (*v == ' ' || *v == ',')
            v++;
        if (*v == ')')
            break;
        if (!isdigit((unsigned char)*v))
            return sh_errf(err, SHOAL_ERR_PARSE, "npy: bad shape");
        if (s.ndim >= SH_MAX_DIMS)
            return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "npy: more than %d dims", SH_MAX_DIMS);
        char *end;
        errno = 0;
        long long d = strtoll(v, &end, 10);
        if (errno || d < 0)
            return sh_errf(err, SHOAL_ERR_PARSE, "npy: bad dim");
        s.d[s.ndim++] = d;
        v = end;
    }
    int64_t ne = sh_shape_numel(&s);
    size_t nb;
    if (ne < 0 || !sh_mul_size((size_t)ne, sh_dtype_size(dt), &nb))
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: element count overflows");
    if (nb > len - hoff - hlen)
        return sh_errf(err, SHOAL_ERR_PARSE, "npy: %zu data bytes expected, %zu present", nb, len - hoff - hlen);
    out->data = sh_alloc(a, nb ? nb : 1);
    if (!out->data)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "npy: out of memory");
    memcpy(out->data, buf + hoff + hlen, nb);
    out->dtype = dt;
    out->shape = s;
    out->nbytes = nb;
    return 0;
}

int sh_npy_read_file(sh_allocator *a, const char *path, sh_npy *out, sh_err *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return sh_errf(err, SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    long sz = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        sz = ftell(f);
    if (sz < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_IO, "%s: cannot determine size", path);
    }
    void *buf = sh_alloc(a, sz ? (size_t)sz : 1);
    if (!buf) {
        fclose(f);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory", path);
    }
    size_t got = fread(buf, 1, (size_t)sz, f);
    fclose(f);
    if (got != (size_t)sz) {
        sh_free(a, buf);
        return sh_errf(err, SHOAL_ERR_IO, "%s: short read", path);
    }
    int rc = sh_npy_parse(a, buf, (size_t)sz, out, err);
    sh_free(a, buf);
    if (rc)
        sh_err_prefix(err, rc, "%s: ", path);
    return rc;
}

void sh_npy_free(sh_allocator *a, sh_npy *t)
{
    if (!t)
        return;
    sh_free(a, t->data);
    t->data = NULL;
    t->nbytes = 0;
}

int sh_npy_write_file(const char *path, sh_dtype dt, const sh_shape *shape, const void *data, sh_err *err)
{
    const char *descr = descr_of(dt);
    if (!descr)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "npy: cannot write dtype %s", sh_dtype_name(dt));
    char h[512];
    int n = snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < shape->ndim; i++)
        n += snprintf(h + n, sizeof h - (size_t)n, "%" PRId64 "%s", shape->d[i],
                      shape->ndim == 1 ? "," : i + 1 < shape->ndim ? ", " : "");
    n += snprintf(h + n, sizeof h - (size_t)n, "), }");
    /* Pad with spaces so magic + length + header ends on a 64-byte boundary, newline last. */
    size_t total = sh_align_up(10 + (size_t)n + 1, 64);
    size_t hl = total - 10;
    while ((size_t)n < hl - 1)
        h[n++] = ' ';
    h[n++] = '\n';
    int64_t ne = sh_shape_numel(shape);
    size_t nb = (size_t)(ne < 0 ? 0 : ne) * sh_dtype_size(dt);
    FILE *f = fopen(path, "wb");
    if (!f)
        return sh_errf(err, SHOAL_ERR_IO, "%s: %s", path, strerror(errno));
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(hl & 0xff), (unsigned char)(hl >> 8)};
    bool ok = fwrite(pre, 1, 10, f) == 10 && fwrite(h, 1, hl, f) == hl && (nb == 0 || fwrite(data, 1, nb, f) == nb);
    if (fclose(f) != 0)
        ok = false;
    if (!ok)
        return sh_errf(err, SHOAL_ERR_IO, "%s: write failed", path);
    return 0;
}
