/* A bounds-checked reader of FlatBuffers binaries, just enough for TFLite models.
 *
 * FlatBuffers stores tables behind 32-bit offsets with a vtable of 16-bit field offsets; a
 * hostile file can point any of them anywhere. Every accessor here checks the offset, the
 * vtable and the size of what it returns against the buffer before reading, and reads through
 * memcpy so misaligned data is harmless. Absent fields give their default; malformed ones give
 * SHOAL_ERR_PARSE with the byte offset, and the caller prefixes which object it was reading.
 *
 *   sh_fb fb = {buf, len};
 *   sh_fb_table model;
 *   if (sh_fb_root(&fb, &model, err)) ...
 *   sh_fb_vec subgraphs;
 *   if (sh_fb_vector(&model, 2, 4, &subgraphs, err)) ...
 *   sh_fb_table sg;
 *   if (sh_fb_vector_table(&subgraphs, 0, &sg, err)) ...
 *
 * Nothing is allocated; results point into the caller's buffer. */
#ifndef SHOAL_IMPORT_FLATBUF_H
#define SHOAL_IMPORT_FLATBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct sh_fb {
    const uint8_t *buf;
    size_t len;
} sh_fb;

typedef struct sh_fb_table {
    const sh_fb *fb;
    size_t pos;          /* the table's first byte */
    size_t vtable;       /* its vtable's first byte */
    uint16_t vt_len;     /* vtable bytes (4 + 2 per field slot) */
    uint16_t tb_len;     /* table bytes the vtable declares */
} sh_fb_table;

typedef struct sh_fb_vec {
    const sh_fb *fb;
    size_t pos;          /* first element */
    uint32_t n;          /* element count; 0 for an absent field */
    size_t elem;         /* element size the caller asked for */
} sh_fb_vec;

/* The root table (the first 4 bytes are its offset). */
int sh_fb_root(const sh_fb *fb, sh_fb_table *out, sh_err *err);

/* Whether field `id` is stored (scalars equal to their default are usually left out). */
bool sh_fb_has(const sh_fb_table *t, int id);

/* Scalar fields; *out = dflt when absent. */
int sh_fb_u8(const sh_fb_table *t, int id, uint8_t dflt, uint8_t *out, sh_err *err);
int sh_fb_i8(const sh_fb_table *t, int id, int8_t dflt, int8_t *out, sh_err *err);
int sh_fb_i32(const sh_fb_table *t, int id, int32_t dflt, int32_t *out, sh_err *err);
int sh_fb_u32(const sh_fb_table *t, int id, uint32_t dflt, uint32_t *out, sh_err *err);
int sh_fb_u64(const sh_fb_table *t, int id, uint64_t dflt, uint64_t *out, sh_err *err);
int sh_fb_f32(const sh_fb_table *t, int id, float dflt, float *out, sh_err *err);

/* A sub-table; *present false (and *out zeroed) when absent. */
int sh_fb_subtable(const sh_fb_table *t, int id, sh_fb_table *out, bool *present, sh_err *err);

/* A vector of `elem`-byte scalars or (elem 4) of offsets; n = 0 when absent. */
int sh_fb_vector(const sh_fb_table *t, int id, size_t elem, sh_fb_vec *out, sh_err *err);

/* A string: pointer into the buffer and its length (not NUL-terminated on hostile input);
 * NULL and 0 when absent. */
int sh_fb_string(const sh_fb_table *t, int id, const char **s, size_t *len, sh_err *err);

/* Element i of a vector of tables (i < v->n, checked). */
int sh_fb_vector_table(const sh_fb_vec *v, uint32_t i, sh_fb_table *out, sh_err *err);
/* Element i of a vector of int32 / uint32 (elem 4); i must be < v->n (programmer error). */
int32_t sh_fb_vec_i32(const sh_fb_vec *v, uint32_t i);

#endif
