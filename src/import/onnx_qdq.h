/* Writing a QDQ-quantized copy of an ONNX model (`shoal quantize`). Part of the importer, the
 * one place that sees ONNX's protobuf types; the calibration that decides the ranges is the
 * caller's (src/cli/cmd_quantize.c).
 *
 * For each listed Conv (2-D, constant weights used by that Conv alone):
 *   x ─ QuantizeLinear(xs, xz) ─ DequantizeLinear ─┐
 *   W (int8, per output channel, symmetric) ─ DQ ──┼─ Conv ─ QuantizeLinear(ys, yz) ─ DQ ─ y
 *   B (int32, scale xs * ws[m], zero point 0) ─ DQ ┘
 * with x and y asymmetric uint8 over their calibrated [min, max] (widened to hold 0), one
 * Q/DQ pair per tensor however many Convs read it, and the float weights and bias replaced by
 * their integers. Every other node, initializer and the metadata stay as they are. This is
 * the form onnxruntime and shoal (graph/qdq.c) both fold into QLinearConv. */
#ifndef SHOAL_IMPORT_ONNX_QDQ_H
#define SHOAL_IMPORT_ONNX_QDQ_H

#include <stddef.h>

#include "core/alloc.h"
#include "core/error.h"

typedef struct sh_qdq_conv {
    const char *output;      /* the Conv's output tensor (names the node) */
    float x_min, x_max;      /* calibrated range of its input */
    float y_min, y_max;      /* and of its output */
} sh_qdq_conv;

typedef struct sh_qdq_stats {
    int convs_quantized;
    int convs_skipped;           /* listed but unfit (weights shared or not an initializer) */
    size_t float_weight_bytes;   /* the quantized Convs' weights and biases before ... */
    size_t int_weight_bytes;     /* ... and after, scales included */
} sh_qdq_stats;

/* Reads in_path, quantizes the n listed Convs and writes out_path. The model's default-domain
 * opset must be >= 13 (per-axis DequantizeLinear). SHOAL_ERR_NOT_FOUND names a listed output
 * no Conv writes; on failure out_path may be partly written. */
int sh_onnx_write_qdq(sh_allocator *a, const char *in_path, const char *out_path, const sh_qdq_conv *convs, int n,
                      sh_qdq_stats *stats, sh_err *err);

#endif
