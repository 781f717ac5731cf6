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

/* Sets up `pa` to route protobuf-c's allocations through `a`. */
void sh_onnx_pb_alloc_init(sh_pb_alloc *pa, sh_allocator *a);

/* The wire-format check behind sh_onnx_unpack: nesting depth, lengths and wire types of the
 * message of descriptor `d` in p[0..len), `depth` messages deep; `base` is p's offset in the
 * model, for messages. */
int sh_onnx_wire_check(const uint8_t *p, size_t len, const ProtobufCMessageDescriptor *d, int depth, size_t base,
                       sh_err *err);

/* A model's bytes: a caller's buffer (`buf`), or a file read piece by piece (`fd`). */
typedef struct sh_onnx_source {
    const uint8_t *buf;
    int fd;                 /* -1 for a buffer */
    size_t len;
    const char *path;       /* for messages; NULL for a buffer */
} sh_onnx_source;

/* Opens `path` (a regular file of at most SH_ONNX_MAX_FILE_BYTES); close with
 * sh_onnx_source_close. */
int sh_onnx_source_open(const char *path, sh_onnx_source *src, sh_err *err);
void sh_onnx_source_close(sh_onnx_source *src);
int sh_onnx_source_read(const sh_onnx_source *src, size_t off, void *dst, size_t n, sh_err *err);

/* A ModelProto split for an import that converts one initializer at a time (onnx_split.c):
 * `skeleton` holds every field of the model but the graph's initializers (wire-checked, for
 * sh_onnx_unpack), `inits` each initializer's TensorProto bytes in the source, in model order. */
typedef struct sh_onnx_split {
    uint8_t *skeleton;
    size_t skeleton_len;
    struct sh_onnx_range {
        size_t off, len;
    } *inits;
    size_t n_inits;
    uint8_t *read_buf;      /* a file's field keys and lengths in an initializer, read ahead */
} sh_onnx_split;

int sh_onnx_split_model(sh_allocator *a, const sh_onnx_source *src, sh_onnx_split *out, sh_err *err);
void sh_onnx_split_free(sh_allocator *a, sh_onnx_split *s);
/* Reads, wire-checks and unpacks initializer i into *out, its raw_data read straight into a
 * block of its own
 * (through pa, set up with sh_onnx_pb_alloc_init). Free *out with
 * onnx__tensor_proto__free_unpacked(*out, &pa->base). */
int sh_onnx_split_tensor(sh_pb_alloc *pa, const sh_onnx_source *src, sh_onnx_split *s, size_t i,
                         Onnx__TensorProto **out, sh_err *err);

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
