/* Private to src/import: the only header that exposes ONNX's protobuf-c types. */
#ifndef SHOAL_IMPORT_IMPL_H
#define SHOAL_IMPORT_IMPL_H

#include <protobuf-c/protobuf-c.h>

#include "onnx.pb-c.h"
#include "import/onnx_import.h"

/* protobuf-c allocations routed through an sh_allocator, so parsing is accounted and fault
 * injection reaches it; `failed` tells an allocation failure from malformed input. */
typedef struct sh_pb_alloc {
    ProtobufCAllocator base;
    sh_allocator *a;
    int failed;
} sh_pb_alloc;

/* Checks the wire format (nesting depth, lengths, wire types) and unpacks a ModelProto.
 * Free with sh_onnx_model_free(pa, m). */
Onnx__ModelProto *sh_onnx_unpack(sh_pb_alloc *pa, sh_allocator *a, const void *buf, size_t len,
                                 sh_err *err);
void sh_onnx_model_free(sh_pb_alloc *pa, Onnx__ModelProto *m);

/* Reads a whole file (at most SH_ONNX_MAX_FILE_BYTES) into a block from `a`. */
int sh_onnx_read_file(sh_allocator *a, const char *path, void **buf, size_t *len, sh_err *err);
/* Folder part of path ("." when none) into buf. */
void sh_onnx_dirname(const char *path, char *buf, size_t cap);

/* shoal dtype of an ONNX elem_type; SH_DT_UNDEFINED when shoal has none. BFLOAT16 maps to
 * FLOAT32 only through sh_onnx_decode_tensor's widening, not here. */
sh_dtype sh_onnx_dtype(int elem_type);
/* Bytes per element as ONNX stores it (0 for strings and unknown types, 1 for 4-bit/2-bit
 * types rounded up per element). */
size_t sh_onnx_elem_size(int elem_type);

/* Decodes a TensorProto into dtype, shape and host bytes allocated from `a` (caller owns them).
 * `what` names the tensor in messages ("initializer 'w'"). Takes the raw_data block over from
 * protobuf-c when it can, so weights are not copied: `tp` may be changed. */
int sh_onnx_decode_tensor(sh_allocator *a, Onnx__TensorProto *tp, const char *what,
                          const char *model_dir, sh_dtype *dt, sh_shape *shape, void **data,
                          size_t *nbytes, sh_err *err);

/* Expected type code ("i", "f", "s", "is", "fs", "t") of a known attribute, or NULL. */
const char *sh_onnx_attr_expected(sh_op op, const char *name, char *buf, size_t cap);

/* The model's metadata_props, parsed (onnx_meta.c). */
int sh_onnx_meta_from_proto(sh_allocator *a, const Onnx__ModelProto *mp, sh_model_meta **out, sh_err *err);

/* Default-domain opset of a model, 0 when none is declared, -1 when declared twice. */
int sh_onnx_model_opset(const Onnx__ModelProto *m);

#endif
