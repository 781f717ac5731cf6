/* A model's wire format split for an import that never holds the file, protobuf-c's copy of it
 * and the graph's constants at once.
 *
 * protobuf-c unpacks a message in one call and copies every bytes field, so unpacking a whole
 * ModelProto needs the file's bytes and a copy of all its weights side by side: twice the model,
 * while a runtime's other models are resident. The split walks the ModelProto and its GraphProto
 * by hand and copies every field into a small "skeleton" except the graph's initializers, whose
 * byte ranges it records instead; the importer unpacks the skeleton, then reads, unpacks and
 * converts one initializer at a time (sh_onnx_split_tensor), so the import's peak is the graph's
 * constants plus one tensor in flight. An initializer is split the same way: its raw_data, nearly
 * all of a model's bytes, goes from the file straight into the block the graph keeps, one copy
 * instead of a read, protobuf-c's copy and the page faults of both.
 *
 * Every byte is wire-checked with the same bounded-depth walk as sh_onnx_unpack and the same
 * messages and file offsets; an initializer's bytes are checked when they are read. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "import/import-impl.h"

#define MAX_NESTING 64
#define GRAPH_FIELD 7         /* ModelProto.graph */
#define INITIALIZER_FIELD 5   /* GraphProto.initializer */
#define RAW_DATA_FIELD 9      /* TensorProto.raw_data */
#define WINDOW_BYTES 65536    /* read-ahead for field keys and lengths of a file */
#define TENSOR_WINDOW 4096    /* the same inside one initializer: its fields before raw_data are small */

static int read_varint(const uint8_t *p, size_t len, size_t *i, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*i >= len)
            return -1;
        uint8_t b = p[(*i)++];
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int sh_onnx_wire_check(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth, size_t base,
                       sh_err *err)
{
    if (depth > MAX_NESTING)
        return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: messages nested deeper than %d (at byte %zu)",
                       MAX_NESTING, base);
    size_t i = 0;
    while (i < len) {
        size_t at = i;
        uint64_t key, v;
        if (read_varint(p, len, &i, &key))
            return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: truncated field key at byte %zu", base + at);
        uint64_t field = key >> 3;
        int wt = (int)(key & 7);
        if (field == 0 || field > 0x1fffffff)
            return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: invalid field number at byte %zu", base + at);
        switch (wt) {
        case 0:
            if (read_varint(p, len, &i, &v))
                return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: truncated varint at byte %zu", base + at);
            break;
        case 1:
        case 5: {
            size_t w = wt == 1 ? 8 : 4;
            if (len - i < w)
                return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: truncated fixed-size field at byte %zu",
                               base + at);
            i += w;
            break;
        }
        case 2: {
            if (read_varint(p, len, &i, &v) || v > len - i)
                return sh_errf(err, SHOAL_ERR_PARSE,
                               "malformed model: length-delimited field at byte %zu runs past the end (truncated file?)",
                               base + at);
            const ProtobufCFieldDescriptor *f =
                d ? protobuf_c_message_descriptor_get_field(d, (unsigned)field) : NULL;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE) {
                int rc = sh_onnx_wire_check(p + i, (size_t)v, f->descriptor, depth + 1, base + i, err);
                if (rc)
                    return rc;
            }
            i += (size_t)v;
            break;
        }
        default:
            return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: wire type %d at byte %zu", wt, base + at);
        }
    }
    return 0;
}

/* --- sources ---------------------------------------------------------------------------- */

int sh_onnx_source_open(const char *path, sh_onnx_source *src, sh_err *err)
{
    *src = (sh_onnx_source){.fd = -1, .path = path};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sh_errf(err, errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO, "model file '%s': %s",
                       path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_IO, "model file '%s' is not a regular file", path);
    }
    if ((uint64_t)st.st_size > SH_ONNX_MAX_FILE_BYTES) {
        close(fd);
        return sh_errf(err, SHOAL_ERR_UNSUPPORTED, "model file '%s' is %lld bytes; the limit is %zu",
                       path, (long long)st.st_size, SH_ONNX_MAX_FILE_BYTES);
    }
    src->fd = fd;
    src->len = (size_t)st.st_size;
    return 0;
}

void sh_onnx_source_close(sh_onnx_source *src)
{
    if (src->fd >= 0)
        close(src->fd);
    src->fd = -1;
}

int sh_onnx_source_read(const sh_onnx_source *src, size_t off, void *dst, size_t n, sh_err *err)
{
    if (off > src->len || n > src->len - off)
        return sh_errf(err, SHOAL_ERR_INTERNAL, "model bytes %zu..%zu read past the end (%zu)", off, off + n,
                       src->len);
    if (src->buf) {
        memcpy(dst, src->buf + off, n);
        return 0;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(src->fd, (char *)dst + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return sh_errf(err, SHOAL_ERR_IO, "model file '%s': short read (%zu of %zu bytes at offset %zu)",
                           src->path ? src->path : "?", got, n, off);
        got += (size_t)r;
    }
    return 0;
}

/* --- the walk --------------------------------------------------------------------------- */

typedef struct growbuf {
    uint8_t *p;
    size_t len, cap;
} growbuf;

/* What a walk is in: the ModelProto, its GraphProto (initializers recorded), or one
 * initializer's TensorProto (raw_data recorded). */
typedef enum walk_level { IN_MODEL, IN_GRAPH, IN_TENSOR } walk_level;

typedef struct walker {
    sh_allocator *a;
    const sh_onnx_source *src;
    sh_onnx_split *out;
    size_t raw_off, raw_len;     /* IN_TENSOR: the last raw_data field's bytes (protobuf: last wins) */
    bool has_raw;
    size_t inits_cap;
    uint8_t *window;             /* a file's bytes [win_off, win_off + win_len) */
    size_t window_cap;
    size_t win_off, win_len;
    sh_err *err;
} walker;

static int grow(walker *w, growbuf *b, size_t more)
{
    size_t need;
    if (!sh_add_size(b->len, more, &need))
        return sh_errf(w->err, SHOAL_ERR_NO_MEMORY, "model skeleton too large");
    if (need <= b->cap)
        return 0;
    size_t cap = sh_grow_cap(b->cap, need, 4096, SIZE_MAX);
    uint8_t *p = sh_realloc(w->a, b->p, cap);
    if (!p)
        return sh_errf(w->err, SHOAL_ERR_NO_MEMORY, "out of memory splitting the model (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static int put_varint(walker *w, growbuf *b, uint64_t v)
{
    int rc = grow(w, b, 10);
    if (rc)
        return rc;
    do {
        uint8_t byte = (uint8_t)(v & 0x7f);
        v >>= 7;
        b->p[b->len++] = byte | (v ? 0x80 : 0);
    } while (v);
    return 0;
}

/* Up to `want` bytes at `off` (fewer at the end of the source), for decoding keys and lengths. */
static const uint8_t *peek(walker *w, size_t off, size_t want, size_t *have, int *rc)
{
    *rc = 0;
    size_t n = w->src->len - off < want ? w->src->len - off : want;
    *have = n;
    if (w->src->buf)
        return w->src->buf + off;
    if (off < w->win_off || off + n > w->win_off + w->win_len) {
        size_t fill = w->src->len - off < w->window_cap ? w->src->len - off : w->window_cap;
        if ((*rc = sh_onnx_source_read(w->src, off, w->window, fill, w->err)))
            return NULL;
        w->win_off = off;
        w->win_len = fill;
    }
    return w->window + (off - w->win_off);
}

static int peek_varint(walker *w, size_t off, size_t end, size_t *next, uint64_t *v, int *io)
{
    size_t have, i = 0;
    const uint8_t *p = peek(w, off, 10, &have, io);
    if (!p)
        return -1;
    if (have > end - off)
        have = end - off;
    if (read_varint(p, have, &i, v))
        return -1;
    *next = off + i;
    return 0;
}

static int add_initializer(walker *w, size_t off, size_t len)
{
    sh_onnx_split *s = w->out;
    if (s->n_inits == w->inits_cap) {
        size_t cap = w->inits_cap ? w->inits_cap * 2 : 64, bytes;
        if (!sh_mul_size(cap, sizeof *s->inits, &bytes))
            return sh_errf(w->err, SHOAL_ERR_PARSE, "graph is too large");
        void *p = sh_realloc(w->a, s->inits, bytes);
        if (!p)
            return sh_errf(w->err, SHOAL_ERR_NO_MEMORY, "out of memory (%zu initializers)", cap);
        s->inits = p;
        w->inits_cap = cap;
    }
    s->inits[s->n_inits].off = off;
    s->inits[s->n_inits].len = len;
    s->n_inits++;
    return 0;
}

/* Copies the fields of the message in [off, end) of descriptor d, `depth` deep, into `out`;
 * inside the graph initializers are recorded instead of copied, inside a tensor its raw_data. */
static int walk(walker *w, size_t off, size_t end, const ProtobufCMessageDescriptor *d, int depth, walk_level level,
                growbuf *out)
{
    if (depth > MAX_NESTING)
        return sh_errf(w->err, SHOAL_ERR_PARSE, "malformed model: messages nested deeper than %d (at byte %zu)",
                       MAX_NESTING, off);
    while (off < end) {
        size_t at = off, next;
        uint64_t key, v;
        int io = 0, rc;
        if (peek_varint(w, off, end, &next, &key, &io))
            return io ? io : sh_errf(w->err, SHOAL_ERR_PARSE, "malformed model: truncated field key at byte %zu", at);
        off = next;
        uint64_t field = key >> 3;
        int wt = (int)(key & 7);
        if (field == 0 || field > 0x1fffffff)
            return sh_errf(w->err, SHOAL_ERR_PARSE, "malformed model: invalid field number at byte %zu", at);
        size_t field_end;
        switch (wt) {
        case 0:
            if (peek_varint(w, off, end, &field_end, &v, &io))
                return io ? io : sh_errf(w->err, SHOAL_ERR_PARSE, "malformed model: truncated varint at byte %zu", at);
            break;
        case 1:
        case 5:
            if (end - off < (size_t)(wt == 1 ? 8 : 4))
                return sh_errf(w->err, SHOAL_ERR_PARSE, "malformed model: truncated fixed-size field at byte %zu",
                               at);
            field_end = off + (wt == 1 ? 8 : 4);
            break;
        case 2: {
            if (peek_varint(w, off, end, &next, &v, &io) || v > end - next)
                return io ? io : sh_errf(w->err, SHOAL_ERR_PARSE,
                                         "malformed model: length-delimited field at byte %zu runs past the end "
                                         "(truncated file?)", at);
            size_t body = next, body_len = (size_t)v;
            field_end = body + body_len;
            if (level == IN_MODEL && field == GRAPH_FIELD) {
                growbuf g = {0};
                rc = walk(w, body, field_end, &onnx__graph_proto__descriptor, depth + 1, IN_GRAPH, &g);
                if (!rc && !(rc = put_varint(w, out, key)) && !(rc = put_varint(w, out, g.len)) &&
                    !(rc = grow(w, out, g.len)) && g.len) {
                    memcpy(out->p + out->len, g.p, g.len);
                    out->len += g.len;
                }
                sh_free(w->a, g.p);
                if (rc)
                    return rc;
                off = field_end;
                continue;
            }
            if (level == IN_GRAPH && field == INITIALIZER_FIELD) {
                if ((rc = add_initializer(w, body, body_len)))
                    return rc;
                off = field_end;
                continue;
            }
            if (level == IN_TENSOR && field == RAW_DATA_FIELD) {
                w->raw_off = body;
                w->raw_len = body_len;
                w->has_raw = true;
                off = field_end;
                continue;
            }
            /* any other field is copied below, then its bytes checked where they landed */
            const ProtobufCFieldDescriptor *f =
                d ? protobuf_c_message_descriptor_get_field(d, (unsigned)field) : NULL;
            if ((rc = grow(w, out, field_end - at)) ||
                (rc = sh_onnx_source_read(w->src, at, out->p + out->len, field_end - at, w->err)))
                return rc;
            out->len += field_end - at;
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                (rc = sh_onnx_wire_check(out->p + out->len - body_len, body_len, f->descriptor, depth + 1, body,
                                         w->err)))
                return rc;
            off = field_end;
            continue;
        }
        default:
            return sh_errf(w->err, SHOAL_ERR_PARSE, "malformed model: wire type %d at byte %zu", wt, at);
        }
        if ((rc = grow(w, out, field_end - at)) ||
            (rc = sh_onnx_source_read(w->src, at, out->p + out->len, field_end - at, w->err)))
            return rc;
        out->len += field_end - at;
        off = field_end;
    }
    return 0;
}

int sh_onnx_split_model(sh_allocator *a, const sh_onnx_source *src, sh_onnx_split *out, sh_err *err)
{
    *out = (sh_onnx_split){0};
    if (src->len == 0)
        return sh_errf(err, SHOAL_ERR_PARSE, "malformed model: empty input");
    walker w = {.a = a, .src = src, .out = out, .window_cap = WINDOW_BYTES, .err = err};
    if (!src->buf && !(w.window = sh_alloc(a, WINDOW_BYTES)))
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading the model");
    growbuf sk = {0};
    int rc = walk(&w, 0, src->len, &onnx__model_proto__descriptor, 0, IN_MODEL, &sk);
    sh_free(a, w.window);
    out->skeleton = sk.p;
    out->skeleton_len = sk.len;
    if (rc)
        sh_onnx_split_free(a, out);
    return rc;
}

void sh_onnx_split_free(sh_allocator *a, sh_onnx_split *s)
{
    sh_free(a, s->skeleton);
    sh_free(a, s->inits);
    sh_free(a, s->read_buf);
    *s = (sh_onnx_split){0};
}

/* The initializer's raw_data into a block of its own, which *tp then owns (protobuf-c frees it
 * with the message; sh_onnx_decode_tensor takes it over). */
static int read_raw_data(sh_pb_alloc *pa, const sh_onnx_source *src, const walker *w, size_t i,
                         Onnx__TensorProto *tp, sh_err *err)
{
    uint8_t *raw = sh_alloc(pa->a, w->raw_len ? w->raw_len : 1);
    if (!raw)
        return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading initializer #%zu (%zu bytes)", i,
                       w->raw_len);
    int rc = sh_onnx_source_read(src, w->raw_off, raw, w->raw_len, err);
    if (rc) {
        sh_free(pa->a, raw);
        return rc;
    }
    if (tp->has_raw_data)   /* cannot be: the skeleton holds no raw_data field */
        sh_free(pa->a, tp->raw_data.data);
    tp->raw_data.data = raw;
    tp->raw_data.len = w->raw_len;
    tp->has_raw_data = 1;
    return 0;
}

int sh_onnx_split_tensor(sh_pb_alloc *pa, const sh_onnx_source *src, sh_onnx_split *s, size_t i,
                         Onnx__TensorProto **out, sh_err *err)
{
    *out = NULL;
    size_t off = s->inits[i].off, len = s->inits[i].len;
    /* the graph's initializers sit two messages deep (ModelProto.graph.initializer) */
    walker w = {.a = pa->a, .src = src, .err = err, .window = s->read_buf, .window_cap = TENSOR_WINDOW};
    if (!src->buf && !w.window) {
        if (!(s->read_buf = sh_alloc(pa->a, TENSOR_WINDOW)))
            return sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory reading initializer #%zu", i);
        w.window = s->read_buf;
    }
    growbuf sk = {0};
    int rc = walk(&w, off, off + len, &onnx__tensor_proto__descriptor, 2, IN_TENSOR, &sk);
    if (rc == 0) {
        pa->failed = 0;
        *out = onnx__tensor_proto__unpack(&pa->base, sk.len, sk.p ? sk.p : (const uint8_t *)"");
        if (!*out)
            rc = pa->failed ? sh_errf(err, SHOAL_ERR_NO_MEMORY, "out of memory parsing initializer #%zu (%zu bytes)",
                                      i, len)
                            : sh_errf(err, SHOAL_ERR_PARSE,
                                      "malformed model: protobuf-c rejected initializer #%zu at byte %zu", i, off);
    }
    if (rc == 0 && w.has_raw && (rc = read_raw_data(pa, src, &w, i, *out, err))) {
        onnx__tensor_proto__free_unpacked(*out, &pa->base);
        *out = NULL;
    }
    sh_free(pa->a, sk.p);
    return rc;
}
