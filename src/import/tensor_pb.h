/* Reading a serialized ONNX TensorProto (.pb) — the reference inputs and outputs of the ONNX
 * conformance tests and of shoal's golden data. Part of the importer (the only place that
 * sees protobuf types), kept apart from onnx_import.h so its owner's header stays unchanged.
 *
 *   sh_dtype dt; sh_shape s; void *data; size_t n;
 *   if (sh_tensor_pb_load_file(alloc, "input_0.pb", &dt, &s, &data, &n, NULL, 0, &err) == 0) { ...; sh_free(alloc, data); }
 */
#ifndef SHOAL_IMPORT_TENSOR_PB_H
#define SHOAL_IMPORT_TENSOR_PB_H

#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"

/* Decodes the TensorProto in `path`: dtype, shape and `*nbytes` host bytes in `*data`, allocated
 * from `a` (free with sh_free). The tensor's name (possibly empty) goes to name[cap] when name
 * is not NULL. SHOAL_ERR_UNSUPPORTED for element types shoal has no dtype for (strings,
 * float8, ...), SHOAL_ERR_PARSE for malformed files, SHOAL_ERR_IO when unreadable. On failure
 * nothing stays allocated. */
int sh_tensor_pb_load_file(sh_allocator *a, const char *path, sh_dtype *dt, sh_shape *shape, void **data,
                           size_t *nbytes, char *name, size_t cap, sh_err *err);

#endif
