/* NumPy .npy files (format 1.0 written; 1.0, 2.0 and 3.0 read), little-endian, C order.
 *
 *   sh_npy t;
 *   if (sh_npy_read_file(alloc, "x.npy", &t, &err) == 0) { ...t.dtype, t.shape, t.data...; sh_npy_free(alloc, &t); }
 *   sh_npy_write_file("y.npy", SH_DT_FLOAT32, &shape, data, &err);
 *
 * dtypes: '<f4' '<f8' '<i1|u1' '<i2|u2' '<i4|u4' '<i8|u8' '|b1' ('<f2' is read as FLOAT16).
 * Big-endian and Fortran-order arrays are refused (SHOAL_ERR_UNSUPPORTED), as are object and
 * structured dtypes. */
#ifndef SHOAL_CORE_NPY_H
#define SHOAL_CORE_NPY_H

#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"

typedef struct sh_npy {
    sh_dtype dtype;
    sh_shape shape;
    void *data;          /* nbytes, from the allocator passed to the reader */
    size_t nbytes;
} sh_npy;

/* Parses a whole .npy image in memory (data copied). */
int sh_npy_parse(sh_allocator *a, const void *buf, size_t len, sh_npy *out, sh_err *err);
int sh_npy_read_file(sh_allocator *a, const char *path, sh_npy *out, sh_err *err);
void sh_npy_free(sh_allocator *a, sh_npy *t);     /* accepts a zeroed struct */

/* Writes format 1.0; data holds numel(shape) elements of dt. */
int sh_npy_write_file(const char *path, sh_dtype dt, const sh_shape *shape, const void *data, sh_err *err);

#endif
