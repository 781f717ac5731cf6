/* TFLite import: a TFLite flatbuffer (or one .tflite inside a MediaPipe `.task` bundle) in, a
 * finalized sh_graph out, in shoal's ONNX-style op set.
 *
 *   sh_graph *g;  sh_err err;
 *   if (sh_tflite_load_file(alloc, "palm_detection_full.tflite", &g, &err)) { ...err.msg... }
 *   if (sh_tflite_load_file(alloc, "hand_landmarker.task#hand_detector.tflite", &g, &err)) ...
 *
 * Layout: TFLite activations are NHWC, shoal's convolutions NCHW. The graph's inputs and
 * outputs keep the file's names, shapes and NHWC layout; inside, every 4-D activation that a
 * spatial op produces is kept NCHW, weights are permuted at load (OHWI -> OIHW, depthwise
 * 1HWC -> C1HW with group = C), and a Transpose is inserted only where an op needs the NHWC
 * element order (Reshape, FullyConnected's flatten, graph outputs). Such tensors are named
 * "<tflite name>/nchw".
 *
 * Constants: float16 weights behind DEQUANTIZE are widened to float32 at load; the
 * DEQUANTIZE ops disappear. SAME padding becomes explicit pads from the declared shapes.
 * Fused activations (RELU, RELU6, RELU_N1_TO_1) become Relu/Clip nodes that the fusion
 * pass folds back into their producer. PRELU is lowered to Relu/Sub/Mul/Add.
 *
 * Only subgraph 0 is imported. Errors: 0 or a negative shoal_status naming the operator
 * (index and builtin name) or tensor: SHOAL_ERR_PARSE for a malformed file (every offset is
 * bounds-checked), SHOAL_ERR_UNSUPPORTED for valid TFLite that shoal cannot run (the message
 * names the first such operator), SHOAL_ERR_IO / SHOAL_ERR_NOT_FOUND for files and bundle
 * members, SHOAL_ERR_NO_MEMORY. On failure *out is NULL and nothing stays allocated. */
#ifndef SHOAL_IMPORT_TFLITE_IMPORT_H
#define SHOAL_IMPORT_TFLITE_IMPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"
#include "graph/graph.h"

/* Files larger than this are refused before anything is read. */
#define SH_TFLITE_MAX_FILE_BYTES ((size_t)2 << 30)

/* `path` is a .tflite file, or "<bundle>.task#<member>" for one model of a zip bundle
 * ("<bundle>.task" alone takes its only .tflite). The graph is freed with sh_graph_destroy(). */
int sh_tflite_load_file(sh_allocator *a, const char *path, sh_graph **out, sh_err *err);

/* Parses `len` bytes at `buf` (not kept: constants are copied). `name` labels messages and
 * becomes the graph's name (may be NULL). */
int sh_tflite_load_buffer(sh_allocator *a, const void *buf, size_t len, const char *name, sh_graph **out,
                          sh_err *err);

/* Whether a path names a TFLite model (".tflite", ".task", or "....task#member"). */
bool sh_tflite_is_path(const char *path);

/* --- .task bundles (zip archives, read with libzip) ----------------------------------- */

/* Reads member `member` of the zip bundle at `path` into a block from `a` (caller frees with
 * sh_free). `member` NULL: the bundle must hold exactly one *.tflite, which is read.
 * SHOAL_ERR_NOT_FOUND names the member and lists what the bundle holds. */
int sh_task_read_member(sh_allocator *a, const char *path, const char *member, void **buf, size_t *len,
                        sh_err *err);
/* Same from a zip archive in memory (`zip` is not kept). */
int sh_task_read_member_buffer(sh_allocator *a, const void *zip, size_t zip_len, const char *member, void **buf,
                               size_t *len, sh_err *err);

#endif
