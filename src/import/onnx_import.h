/* ONNX import: a serialized ModelProto in, a finalized sh_graph out.
 *
 * Nothing of ONNX's protobuf types leaves src/import: callers see only sh_graph (graph/graph.h)
 * and the plain structs below.
 *
 *   sh_graph *g;  sh_err err;
 *   if (sh_onnx_load_file(alloc, "yolox.onnx", &g, &err) != 0) { ...err.msg... }
 *   ...
 *   sh_graph_destroy(g);
 *
 * What the graph holds after a successful load (sh_graph_finalize() has run):
 *  - g->inputs: the graph.input entries that are not initializers, in model order (IR<4 models
 *    list their weights as inputs too; those are constants). Shapes come from the declared type:
 *    a dim_param or missing dim is -1 (the caller fixes it from data); no shape at all is ndim -1.
 *  - g->outputs: graph.output in model order; dtype from the declared type, shape ndim -1.
 *  - every initializer and every Constant node's value is a const tensor (Constant nodes are
 *    removed); TENSOR attributes (ConstantOfShape 'value') are const tensors referenced with
 *    sh_node_set_tensor. bfloat16 constants are widened to float32 (exact; shoal has no bf16).
 *  - node->opset is the since-version of the op's definition in effect (see sh_onnx_resolve_op).
 *  - every other tensor: ndim -1 and dtype UNDEFINED unless value_info declares its dtype.
 * Models must use the default ONNX domain at opset SH_ONNX_MIN_OPSET..SH_ONNX_MAX_OPSET.
 *
 * Errors: 0 or a negative shoal_status with err->msg naming node, op, opset, tensor or file.
 * SHOAL_ERR_PARSE malformed model, SHOAL_ERR_UNSUPPORTED valid ONNX that shoal cannot run (the
 * message lists every unsupported node), SHOAL_ERR_IO file problems, SHOAL_ERR_NO_MEMORY.
 * On failure *out is NULL and nothing stays allocated. */
#ifndef SHOAL_IMPORT_ONNX_IMPORT_H
#define SHOAL_IMPORT_ONNX_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"

#define SH_ONNX_MIN_OPSET 6   /* opset-6 IR-3 PyTorch exports are common in the ONNX test data */
#define SH_ONNX_MAX_OPSET 27
/* Models and external-data files larger than this are refused before anything is read. */
#define SH_ONNX_MAX_FILE_BYTES ((size_t)4 << 30)

/* Reads `path`; external data files are looked up next to it. The graph is freed with
 * sh_graph_destroy(). */
int sh_onnx_load_file(sh_allocator *a, const char *path, sh_graph **out, sh_err *err);

/* Parses `len` bytes at `buf` (not kept). `model_dir` is the folder external data is read from;
 * NULL makes any tensor with external data an error. */
int sh_onnx_load_buffer(sh_allocator *a, const void *buf, size_t len, const char *model_dir,
                        sh_graph **out, sh_err *err);

/* --- model metadata (ModelProto.metadata_props) ------------------------------------------ */

/* Every metadata entry, and ultralytics' keys parsed (see onnx_meta.c for the grammar). */
typedef struct sh_model_meta {
    char **keys, **values;  /* n_props entries in model order */
    int n_props;
    const char *task;       /* value of 'task' ("detect", "segment"), borrowed from values; NULL if absent */
    int64_t imgsz[2];       /* 'imgsz' as height, width; 0 when absent */
    int64_t stride;         /* largest value of 'stride'; 0 when absent */
    char **names;           /* 'names': class names by id 0..n_names-1; NULL when absent */
    int n_names;
} sh_model_meta;

/* As sh_onnx_load_file, and the model's metadata into *meta (free with sh_model_meta_destroy;
 * present, with n_props 0, for a model without any). A malformed ultralytics key (names,
 * imgsz, stride) is SHOAL_ERR_PARSE naming the key. On failure both outputs are NULL. */
int sh_onnx_load_file_meta(sh_allocator *a, const char *path, sh_graph **out, sh_model_meta **meta, sh_err *err);
/* Builds metadata from key/value strings (what the importer does with metadata_props). */
int sh_model_meta_from_props(sh_allocator *a, const char *const *keys, const char *const *values, int n,
                             sh_model_meta **out, sh_err *err);
/* Value of `key`, or NULL. Accepts a NULL meta. */
const char *sh_model_meta_get(const sh_model_meta *m, const char *key);
void sh_model_meta_destroy(sh_allocator *a, sh_model_meta *m);           /* accepts NULL */
/* The parsers alone: a Python dict/list literal of names; "640" or "[h, w]". */
int sh_meta_parse_names(sh_allocator *a, const char *text, char ***names, int *n_names, sh_err *err);
int sh_meta_parse_imgsz(const char *text, int64_t hw[2], sh_err *err);

/* --- op versions ------------------------------------------------------------------------ */

/* Maps a node's (domain, op_type) at the model's default-domain `opset` to a shoal op and the
 * since-version in effect. Returns 0, or SHOAL_ERR_UNSUPPORTED with the reason in `why`
 * ("unknown op", "domain 'com.microsoft' is not supported", "opset 11 resolves to Upsample-10,
 * which shoal does not implement (implements 7, 9)"). */
int sh_onnx_resolve_op(const char *domain, const char *op_type, int opset, sh_op *op, int *since,
                       char *why, size_t cap);

/* ONNX since-versions of op's definition as "1, 6, 13" into buf (only those shoal implements when
 * `implemented_only`); "" for ops ONNX does not define (fused ops). Returns buf. */
const char *sh_onnx_op_versions(sh_op op, bool implemented_only, char *buf, size_t cap);

/* --- model summary (shoal inspect) --------------------------------------------------------- */

typedef struct sh_onnx_value {
    char *name;
    int elem_type;          /* ONNX TensorProto.DataType; 0 when not a tensor / unknown */
    sh_shape shape;         /* ndim -1 when not declared; -1 dims are symbolic */
    char *dims_text;        /* "[1,3,'height',640]" with symbolic names kept */
} sh_onnx_value;

typedef struct sh_onnx_op_count {
    char *op_type;          /* "Conv", or "com.microsoft:FusedConv" for other domains */
    int count;
} sh_onnx_op_count;

typedef struct sh_onnx_unsupported {
    char *node;
    char *op_type;
    char *reason;
} sh_onnx_unsupported;

typedef struct sh_onnx_info {
    int64_t ir_version;
    int opset;              /* default-domain opset, 0 if none is declared */
    char *producer;         /* "pytorch 1.13.1" */
    char *graph_name;
    int n_nodes;
    sh_onnx_value *inputs;  /* graph inputs that are not initializers */
    int n_inputs;
    sh_onnx_value *outputs;
    int n_outputs;
    sh_onnx_op_count *ops;  /* in order of first appearance */
    int n_ops;
    int64_t n_params;       /* elements of initializers and Constant values */
    int64_t param_bytes;    /* as stored (sum of element size * count) */
    int n_initializers;
    sh_onnx_unsupported *unsupported;
    int n_unsupported;
    sh_model_meta *meta;    /* metadata; NULL when the model's ultralytics keys are malformed */
    char *meta_error;       /* why meta is NULL, else NULL */
} sh_onnx_info;

/* Summarizes a model without building a graph, so it works for models shoal cannot run. Only
 * parse failures are errors. Free with sh_onnx_info_destroy(). */
int sh_onnx_info_file(sh_allocator *a, const char *path, sh_onnx_info **out, sh_err *err);
int sh_onnx_info_buffer(sh_allocator *a, const void *buf, size_t len, sh_onnx_info **out, sh_err *err);
void sh_onnx_info_destroy(sh_allocator *a, sh_onnx_info *info);       /* accepts NULL */

/* ONNX TensorProto.DataType name ("FLOAT", "BFLOAT16", "type 99"). */
const char *sh_onnx_elem_type_name(int elem_type, char *buf, size_t cap);

#endif
