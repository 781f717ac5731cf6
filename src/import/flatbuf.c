/* FlatBuffers reading with every offset checked (see flatbuf.h). All positions are kept as
 * size_t and compared against the buffer length before any read, so arithmetic on offsets
 * taken from the file can neither overflow nor leave the buffer. */
#include "import/flatbuf.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

/* [pos, pos + n) inside the buffer. */
static bool in_buf(const sh_fb *fb, size_t pos, size_t n)
{
    return pos <= fb->len && n <= fb->len - pos;
}

static int table_at(const sh_fb *fb, size_t pos, sh_fb_table *out, sh_err *err)
{
    if (!in_buf(fb, pos, 4))
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer table at byte %zu lies outside the %zu-byte file", pos, fb->len);
    int32_t soff;
    memcpy(&soff, fb->buf + pos, 4);
    /* the vtable is at pos - soff; done in int64 so neither sign can wrap */
    int64_t vt = (int64_t)pos - (int64_t)soff;
    if (vt < 0 || !in_buf(fb, (size_t)vt, 4))
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer table at byte %zu: vtable offset %d points outside the file",
                       pos, (int)soff);
    uint16_t vt_len = rd16(fb->buf + vt), tb_len = rd16(fb->buf + vt + 2);
    if (vt_len < 4 || (vt_len & 1) || !in_buf(fb, (size_t)vt, vt_len))
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer table at byte %zu: vtable of %u bytes is malformed", pos,
                       (unsigned)vt_len);
    if (tb_len < 4 || !in_buf(fb, pos, tb_len))
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer table at byte %zu: %u bytes run past the end of the file", pos,
                       (unsigned)tb_len);
    *out = (sh_fb_table){fb, pos, (size_t)vt, vt_len, tb_len};
    return 0;
}

int sh_fb_root(const sh_fb *fb, sh_fb_table *out, sh_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!fb->buf || fb->len < 8)
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer of %zu bytes is too short", fb->len);
    return table_at(fb, rd32(fb->buf), out, err);
}

/* Offset of field id inside the table, 0 when absent; checks `size` bytes fit the table. */
static int field(const sh_fb_table *t, int id, size_t size, size_t *off, sh_err *err)
{
    *off = 0;
    if (!t->fb || id < 0)
        return 0;
    size_t slot = 4 + 2 * (size_t)id;
    if (slot + 2 > t->vt_len)
        return 0;
    uint16_t fo = rd16(t->fb->buf + t->vtable + slot);
    if (fo == 0)
        return 0;
    if (fo < 4 || (size_t)fo + size > t->tb_len)
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer table at byte %zu: field %d (offset %u, %zu bytes) lies outside "
                       "the table's %u bytes", t->pos, id, (unsigned)fo, size, (unsigned)t->tb_len);
    *off = t->pos + fo;
    return 0;
}

bool sh_fb_has(const sh_fb_table *t, int id)
{
    size_t off;
    return field(t, id, 1, &off, NULL) == 0 && off != 0;
}

#define SCALAR_GETTER(fn, type)                                               \
    int fn(const sh_fb_table *t, int id, type dflt, type *out, sh_err *err)   \
    {                                                                         \
        size_t off;                                                           \
        *out = dflt;                                                          \
        int rc = field(t, id, sizeof(type), &off, err);                       \
        if (rc == 0 && off)                                                   \
            memcpy(out, t->fb->buf + off, sizeof(type));                      \
        return rc;                                                            \
    }
SCALAR_GETTER(sh_fb_u8, uint8_t)
SCALAR_GETTER(sh_fb_i8, int8_t)
SCALAR_GETTER(sh_fb_i32, int32_t)
SCALAR_GETTER(sh_fb_u32, uint32_t)
SCALAR_GETTER(sh_fb_u64, uint64_t)
SCALAR_GETTER(sh_fb_f32, float)
#undef SCALAR_GETTER

/* Follows the uoffset stored at byte `at`. */
static int follow(const sh_fb *fb, size_t at, size_t *target, sh_err *err)
{
    uint32_t rel = rd32(fb->buf + at);
    *target = 0;
    if (rel == 0 || rel > fb->len || at > fb->len - rel)
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer offset %u at byte %zu points outside the %zu-byte file",
                       (unsigned)rel, at, fb->len);
    *target = at + rel;
    return 0;
}

int sh_fb_subtable(const sh_fb_table *t, int id, sh_fb_table *out, bool *present, sh_err *err)
{
    size_t off, target;
    memset(out, 0, sizeof(*out));
    *present = false;
    int rc = field(t, id, 4, &off, err);
    if (rc || !off)
        return rc;
    if ((rc = follow(t->fb, off, &target, err)))
        return rc;
    *present = true;
    return table_at(t->fb, target, out, err);
}

int sh_fb_vector(const sh_fb_table *t, int id, size_t elem, sh_fb_vec *out, sh_err *err)
{
    size_t off, target;
    *out = (sh_fb_vec){t->fb, 0, 0, elem};
    int rc = field(t, id, 4, &off, err);
    if (rc || !off)
        return rc;
    if ((rc = follow(t->fb, off, &target, err)))
        return rc;
    if (!in_buf(t->fb, target, 4))
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer vector at byte %zu lies outside the file", target);
    uint32_t n = rd32(t->fb->buf + target);
    size_t first = target + 4;
    if (elem == 0 || n > (t->fb->len - first) / elem)
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer vector at byte %zu: %u elements of %zu bytes run past the end "
                       "of the file", target, (unsigned)n, elem);
    out->pos = first;
    out->n = n;
    return 0;
}

int sh_fb_string(const sh_fb_table *t, int id, const char **s, size_t *len, sh_err *err)
{
    sh_fb_vec v;
    *s = NULL;
    *len = 0;
    int rc = sh_fb_vector(t, id, 1, &v, err);
    if (rc || !v.pos)
        return rc;
    *s = (const char *)t->fb->buf + v.pos;
    *len = v.n;
    return 0;
}

int sh_fb_vector_table(const sh_fb_vec *v, uint32_t i, sh_fb_table *out, sh_err *err)
{
    size_t target;
    memset(out, 0, sizeof(*out));
    if (i >= v->n || v->elem != 4)
        return sh_errf(err, SHOAL_ERR_PARSE, "flatbuffer vector element %u of %u is not a table", (unsigned)i,
                       (unsigned)v->n);
    int rc = follow(v->fb, v->pos + 4 * (size_t)i, &target, err);
    return rc ? rc : table_at(v->fb, target, out, err);
}

int32_t sh_fb_vec_i32(const sh_fb_vec *v, uint32_t i)
{
    int32_t x;
    memcpy(&x, v->fb->buf + v->pos + 4 * (size_t)i, 4);
    return x;
}
