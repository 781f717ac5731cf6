/* Graph passes: shape inference with constant folding, dead-node removal, fusions.
 * Every backend runs on the graph these leave behind. */
#ifndef SHOAL_GRAPH_PASSES_H
#define SHOAL_GRAPH_PASSES_H

#include "graph/graph.h"

typedef struct sh_optimize_params {
    bool fold_constants;     /* evaluate nodes whose inputs are all constant (shape arithmetic) */
    bool fuse;               /* BatchNorm into Conv, Conv+activation, SiLU, no-op removal */
    size_t fold_max_bytes;   /* largest constant a fold may produce (default 16 MiB) */
    bool fold_qdq;           /* QDQ-wrapped convolutions into QLinearConv (qdq.c; default on) */
} sh_optimize_params;

sh_optimize_params sh_optimize_default_params(void);

/* Infers dtype and static shape of every tensor, folding constants where the shapes depend
 * on them (Shape -> Gather -> ... -> Reshape chains). Graph inputs must have static shapes.
 * Errors name the node, op and tensor. */
int sh_graph_infer_shapes(sh_graph *g, sh_err *err);

/* infer shapes + fold, remove dead nodes, fuse, compact, finalize. On failure the graph is
 * left consistent but possibly partly rewritten. */
int sh_graph_optimize(sh_graph *g, const sh_optimize_params *p, sh_err *err);

/* --- finer-grained entry points (sh_graph_optimize runs them in this order) ----------- */

/* Shape inference with the folding policy of p (NULL = defaults). Constant nodes are always
 * turned into constants; with p->fold_constants, nodes whose inputs are all constant (and
 * Shape of any tensor) are evaluated and marked dead. Sorts the graph first. */
int sh_graph_infer_fold(sh_graph *g, const sh_optimize_params *p, sh_err *err);
/* Marks dead every node none of whose outputs is read by a live node or is a graph output. */
int sh_graph_remove_dead(sh_graph *g, sh_err *err);
/* DequantizeLinear(x), DequantizeLinear(w) [, DequantizeLinear(bias)] -> Conv -> QuantizeLinear
 * into one QLinearConv with int8 weights and their per-channel scales, where that gives
 * exactly the integers onnxruntime computes for the file (qdq.c lists the conditions). Needs
 * inferred shapes; leaves dead nodes. *n_folded (may be NULL) counts the folds. */
int sh_graph_fold_qdq(sh_graph *g, int *n_folded, sh_err *err);
/* Int attribute the QDQ fold sets on a QLinearConv that also performs the DequantizeLinear
 * after it: the node's output is float32 ((code - y_zero_point) * y_scale, then the node's
 * fused activation). */
#define SH_QCONV_DEQUANTIZE "shoal.dequantize"
/* After fusion: a dequantizing QLinearConv (with its fused activation) whose float output only
 * a per-tensor QuantizeLinear reads takes that node over too (SH_QCONV_REQUANTIZE, inputs 9
 * and 10 the QuantizeLinear's scale and zero point): its output is then the QuantizeLinear's
 * int8/uint8 codes, so int8 convolutions feed each other without a float tensor between
 * them. Leaves dead nodes. *n_folded (may be NULL) counts the folds. */
int sh_graph_fold_qdq_requantize(sh_graph *g, int *n_folded, sh_err *err);
#define SH_QCONV_REQUANTIZE "shoal.requantize"
/* BatchNorm into Conv, Conv/ConvTranspose/Gemm + activation, SiLU, no-op removal. Needs
 * inferred shapes; leaves dead nodes for sh_graph_compact(). */
int sh_graph_fuse(sh_graph *g, sh_err *err);
/* fp16 exports: fp16 constants widened to float32, float16 tensors retyped float32, Cast to
 * float16 made Cast to float32 (widen.c). Run before shape inference. *widened (may be NULL)
 * tells whether the graph had anything fp16. */
int sh_graph_widen_fp16(sh_graph *g, bool *widened, sh_err *err);

/* --- resolved geometry, shared by inference, folding and kernels ---------------------- */

/* Sliding-window geometry of a Conv, ConvTranspose, MaxPool or AveragePool node, with auto_pad
 * resolved into explicit pads. Needs the input shapes (and, for ConvTranspose with
 * output_shape, nothing else). */
typedef struct sh_window_geom {
    int n;                              /* spatial dims */
    int64_t in[SH_MAX_DIMS], out[SH_MAX_DIMS];
    int64_t kernel[SH_MAX_DIMS], stride[SH_MAX_DIMS], dilation[SH_MAX_DIMS];
    int64_t pad_begin[SH_MAX_DIMS], pad_end[SH_MAX_DIMS];
    int64_t out_pad[SH_MAX_DIMS];       /* ConvTranspose output_padding */
    int64_t group;                      /* Conv, ConvTranspose */
    bool ceil_mode;                     /* pools */
} sh_window_geom;
int sh_node_window_geom(const sh_graph *g, int node, sh_window_geom *out, sh_err *err);

/* Per-axis first element, step and count of a Slice node (inputs starts/ends/axes/steps must
 * be constant, attributes before opset 10), clamped as ONNX specifies. */
typedef struct sh_slice_geom {
    int ndim;
    int64_t start[SH_MAX_DIMS], step[SH_MAX_DIMS], count[SH_MAX_DIMS];
} sh_slice_geom;
int sh_node_slice_geom(const sh_graph *g, int node, sh_slice_geom *out, sh_err *err);

/* ONNX TensorProto.DataType code -> sh_dtype (UNDEFINED when shoal has no such type). */
sh_dtype sh_dtype_from_onnx(int64_t code);

#endif
