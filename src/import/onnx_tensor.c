/* TensorProto -> host bytes: dtype mapping, dims, raw/typed/external data, all size-checked
 * against what the file actually holds before anything is allocated. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import/import-impl.h"

/* ONNX TensorProto.DataType values (onnx.proto); the generated enum stops at BFLOAT16 because
 * the system onnx.proto is older than the newest types, so they are spelled out here. */
enum {
    DT_UNDEFINED = 0, DT_FLOAT = 1, DT_UINT8 = 2, DT_INT8 = 3, DT_UINT16 = 4, DT_INT16 = 5,
    DT_INT32 = 6, DT_INT64 = 7, DT_STRING = 8, DT_BOOL = 9, DT_FLOAT16 = 10, DT_DOUBLE = 11,
    DT_UINT32 = 12, DT_UINT64 = 13, DT_COMPLEX64 = 14, DT_COMPLEX128 = 15, DT_BFLOAT16 = 16,
    DT_LAST_KNOWN = 26
};

static const char *const ELEM_NAMES[] = {
    "UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32", "INT64", "STRING", "BOOL",
    "FLOAT16", "DOUBLE", "UINT32", "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16",
    "FLOAT8E4M3FN", "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ", "UINT4", "INT4",
    "FLOAT4E2M1", "FLOAT8E8M0", "UINT2", "INT2"};

const char *sh_onnx_elem_type_name(int t, char *buf, size_t cap)
{
    if (t >= 0 && t <= DT_LAST_KNOWN)
        return ELEM_NAMES[t];
    snprintf(buf, cap, "type %d", t);
    return buf;
}

sh_dtype sh_onnx_dtype(int t)
{
    switch (t) {
    case DT_FLOAT: return SH_DT_FLOAT32;
    case DT_UINT8: return SH_DT_UINT8;
    case DT_INT8: return SH_DT_INT8;
    case DT_UINT16: return SH_DT_UINT16;
    case DT_INT16: return SH_DT_INT16;
    case DT_INT32: return SH_DT_INT32;
    case DT_INT64: return SH_DT_INT64;
    case DT_BOOL: return SH_DT_BOOL;
    case DT_FLOAT16: return SH_DT_FLOAT16;
    case DT_DOUBLE: return SH_DT_FLOAT64;
    case DT_UINT32: return SH_DT_UINT32;
    case DT_UINT64: return SH_DT_UINT64;
    default: return SH_DT_UNDEFINED;
    }
}

size_t sh_onnx_elem_size(int t)
{
    switch (t) {
    case DT_COMPLEX128: return 16;
    case DT_COMPLEX64: return 8;
    case DT_BFLOAT16: return 2;
    case 17: case 18: case 19: case 20: case 21: case 22: case 23: case 24: case 25: case 26: return 1;
    default: return sh_dtype_size(sh_onnx_dtype(t));
    }
}

/* --- external data -------------------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t *v)
{
    if (!s || !*s)
        return -1;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *v = x;
    return 0;
}

/* The location must stay inside model_dir: no absolute path, no '..' component, and after
 * resolving symlinks the file must still be under model_dir's real path. */
static int read_external(sh_allocator *a, const Onnx__TensorProto *tp, const char *what,
                         const char *model_dir, size_t want, void **out, sh_err *err)
{
    const char *loc = NULL, *off_s = NULL, *len_s = NULL;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e || !e->key)
            continue;
        if (strcmp(e->key, "location") == 0)
            loc = e->value;
        else if (strcmp(e->key, "offset") == 0)
            off_s = e->value;
        else if (strcmp(e->key, "length") == 0)
            len_s = e->value;
    }
    if (!model_dir)
        return sh_errf(err, SHOAL_ERR_INVALID_ARG,
                       "%s: external data is not allowed when loading from memory", what);
    if (!loc || !*loc)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data without a 'location'", what);
    if (loc[0] == '/' || loc[0] == '\\')
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data location '%s' is an absolute path", what, loc);
    for (const char *p = loc; *p;) {
        size_t n = strcspn(p, "/\\");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return sh_errf(err, SHOAL_ERR_PARSE,
                           "%s: external data location '%s' leaves the model's folder ('..')", what, loc);
        p += n;
        while (*p == '/' || *p == '\\')
            p++;
    }
    uint64_t offset = 0, length = 0;
    if (off_s && parse_u64(off_s, &offset))
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data offset '%s' is not a number", what, off_s);
    if (len_s && parse_u64(len_s, &length))
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data length '%s' is not a number", what, len_s);

    char joined[PATH_MAX], real_dir[PATH_MAX], real_file[PATH_MAX];
    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", model_dir, loc) >= sizeof joined)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data path too long", what);
    if (!realpath(model_dir, real_dir))
        return sh_errf(err, SHOAL_ERR_IO, "%s: model folder '%s': %s", what, model_dir, strerror(errno));
    if (!realpath(joined, real_file))
        return sh_errf(err, SHOAL_ERR_IO, "%s: external data file '%s': %s", what, joined, strerror(errno));
    size_t dl = strlen(real_dir);
    if (strncmp(real_file, real_dir, dl) != 0 || (real_file[dl] != '/' && dl > 1))
        return sh_errf(err, SHOAL_ERR_PARSE,
                       "%s: external data file '%s' resolves outside the model's folder", what, loc);
    int fd = open(real_file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sh_errf(err, SHOAL_ERR_IO, "%s: external data file '%s': %s", what, loc, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_IO, "%s: external data '%s' is not a regular file", what, loc);
    }
    uint64_t fsize = (uint64_t)st.st_size;
    if (offset > fsize) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data offset %" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)",
                       what, offset, loc, fsize);
    }
    if (!len_s)
        length = fsize - offset;
    if (length > fsize - offset) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_PARSE,
                       "%s: external data range %" PRIu64 "+%" PRIu64 " is past the end of '%s' (%" PRIu64 " bytes)",
                       what, offset, length, loc, fsize);
    }
    if (length != want) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: external data has %" PRIu64 " bytes but the shape needs %zu",
                       what, length, want);
    }
    void *buf = sh_alloc(a, want ? want : 1);
    if (!buf) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory (%zu bytes)", what, want);
    }
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(fd, (char *)buf + got, want - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            close(fd);
            sh_free(a, buf);
            return sh_errf(err, SHOAL_ERR_IO, "%s: reading external data '%s' failed", what, loc);
        }
        got += (size_t)r;
    }
    close(fd);
    *out = buf;
    return 0;
}

/* --- decoding ------------------------------------------------------------------------- */

static float bf16_to_f32(uint16_t b)
{
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int sh_onnx_decode_tensor(sh_allocator *a, Onnx__TensorProto *tp, const char *what,
                          const char *model_dir, sh_dtype *dt_out, sh_shape *shape, void **data,
                          size_t *nbytes, sh_err *err)
{
    char tn[32];
    int et = tp->has_data_type ? tp->data_type : 0;
    if (et == DT_UNDEFINED)
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: no data_type", what);
    bool widen_bf16 = et == DT_BFLOAT16;
    sh_dtype dt = widen_bf16 ? SH_DT_FLOAT32 : sh_onnx_dtype(et);
    if (dt == SH_DT_UNDEFINED)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "%s: data type %s is not supported", what,
                       sh_onnx_elem_type_name(et, tn, sizeof tn));
    if (tp->n_dims > SH_MAX_DIMS)
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "%s: %zu dims; shoal supports at most %d", what,
                       tp->n_dims, SH_MAX_DIMS);
    sh_shape s = {.ndim = (int)tp->n_dims};
    for (size_t i = 0; i < tp->n_dims; i++) {
        if (tp->dims[i] < 0)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: dim %zu is negative (%" PRId64 ")", what, i, tp->dims[i]);
        s.d[i] = tp->dims[i];
    }
    int64_t numel = sh_shape_numel(&s);
    size_t out_bytes, stored_bytes;
    size_t stored_es = widen_bf16 ? 2 : sh_dtype_size(dt);
    if (numel < 0 || !sh_mul_size((size_t)numel, sh_dtype_size(dt), &out_bytes) ||
        !sh_mul_size((size_t)numel, stored_es, &stored_bytes))
        return sh_errf(err, SHOAL_ERR_PARSE, "%s: element count overflows", what);
    size_t n = (size_t)numel;

    void *buf = NULL;
    int rc;
    bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    if (external) {
        if ((rc = read_external(a, tp, what, model_dir, stored_bytes, &buf, err)))
            return rc;
        if (widen_bf16) {
            float *f = sh_alloc(a, out_bytes ? out_bytes : 1);
            if (!f) {
                sh_free(a, buf);
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory", what);
            }
            for (size_t i = 0; i < n; i++) {
                uint16_t b;
                memcpy(&b, (char *)buf + 2 * i, 2);
                f[i] = bf16_to_f32(b);
            }
            sh_free(a, buf);
            buf = f;
        }
    } else if (tp->has_raw_data) {
        if (tp->raw_data.len != stored_bytes)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: raw_data has %zu bytes but %s shape needs %zu", what,
                           tp->raw_data.len, sh_onnx_elem_type_name(et, tn, sizeof tn), stored_bytes);
        if (!widen_bf16 && stored_bytes > 0) {
            /* protobuf-c gave raw_data its own block from our allocator: take it over rather
             * than copy the weights (halves peak memory while loading). */
            buf = tp->raw_data.data;
            tp->raw_data.data = NULL;
            tp->raw_data.len = 0;
            tp->has_raw_data = 0;
        } else {
            buf = sh_alloc(a, out_bytes ? out_bytes : 1);
            if (!buf)
                return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory (%zu bytes)", what, out_bytes);
            float *f = buf;
            for (size_t i = 0; widen_bf16 && i < n; i++) {
                uint16_t b;
                memcpy(&b, tp->raw_data.data + 2 * i, 2);
                f[i] = bf16_to_f32(b);
            }
        }
    } else {
        size_t have;
        const char *field;
        switch (et) {
        case DT_FLOAT: have = tp->n_float_data; field = "float_data"; break;
        case DT_INT64: have = tp->n_int64_data; field = "int64_data"; break;
        case DT_DOUBLE: have = tp->n_double_data; field = "double_data"; break;
        case DT_UINT32: case DT_UINT64: have = tp->n_uint64_data; field = "uint64_data"; break;
        default: have = tp->n_int32_data; field = "int32_data"; break;
        }
        if (have != n)
            return sh_errf(err, SHOAL_ERR_PARSE, "%s: %zu values in %s but the shape needs %zu", what, have,
                           field, n);
        buf = sh_alloc(a, out_bytes ? out_bytes : 1);
        if (!buf)
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "%s: out of memory (%zu bytes)", what, out_bytes);
        for (size_t i = 0; i < n; i++) {
            switch (et) {
            case DT_FLOAT: ((float *)buf)[i] = tp->float_data[i]; break;
            case DT_INT64: ((int64_t *)buf)[i] = tp->int64_data[i]; break;
            case DT_DOUBLE: ((double *)buf)[i] = tp->double_data[i]; break;
            case DT_UINT32: ((uint32_t *)buf)[i] = (uint32_t)tp->uint64_data[i]; break;
            case DT_UINT64: ((uint64_t *)buf)[i] = tp->uint64_data[i]; break;
            case DT_INT32: ((int32_t *)buf)[i] = tp->int32_data[i]; break;
            case DT_INT16: ((int16_t *)buf)[i] = (int16_t)tp->int32_data[i]; break;
            case DT_UINT16: case DT_FLOAT16: ((uint16_t *)buf)[i] = (uint16_t)tp->int32_data[i]; break;
            case DT_INT8: ((int8_t *)buf)[i] = (int8_t)tp->int32_data[i]; break;
            case DT_UINT8: ((uint8_t *)buf)[i] = (uint8_t)tp->int32_data[i]; break;
            case DT_BOOL: ((uint8_t *)buf)[i] = tp->int32_data[i] != 0; break;
            case DT_BFLOAT16: ((float *)buf)[i] = bf16_to_f32((uint16_t)tp->int32_data[i]); break;
            default: break;
            }
        }
    }
    *dt_out = dt;
    *shape = s;
    *data = buf;
    *nbytes = out_bytes;
    return 0;
}

/* --- files ----------------------------------------------------------------------------- */

void sh_onnx_dirname(const char *path, char *buf, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(buf, cap, ".");
        return;
    }
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= cap)
        n = cap - 1;
    memcpy(buf, path, n);
    buf[n] = '\0';
}

int sh_onnx_read_file(sh_allocator *a, const char *path, void **out, size_t *len, sh_err *err)
{
    sh_onnx_source src;
    int rc = sh_onnx_source_open(path, &src, err);
    if (rc)
        return rc;
    char *buf = sh_alloc(a, src.len ? src.len : 1);
    if (!buf) {
        sh_onnx_source_close(&src);
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "model file '%s': out of memory (%zu bytes)", path, src.len);
    }
    rc = sh_onnx_source_read(&src, 0, buf, src.len, err);
    sh_onnx_source_close(&src);
    if (rc) {
        sh_free(a, buf);
        return rc;
    }
    *out = buf;
    *len = src.len;
    return 0;
}
