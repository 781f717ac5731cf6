/* shoal's own graph: what the importer produces and every later stage reads.
 *
 * Tensors and nodes live in two growable arrays and refer to each other by index, so a
 * graph is cheap to copy, walk and rewrite. Nothing of ONNX's protobuf types appears here.
 * After sh_graph_finalize() nodes are in topological order, every tensor has a static
 * shape, and producers/consumer counts are filled.
 *
 * Ownership: a graph owns its names, attributes and constant data; all of it comes from
 * the graph's allocator and goes with sh_graph_destroy(). */
#ifndef SHOAL_GRAPH_H
#define SHOAL_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/alloc.h"
#include "core/error.h"

typedef enum sh_dtype {
    SH_DT_UNDEFINED = 0,
    SH_DT_FLOAT32,
    SH_DT_FLOAT16,
    SH_DT_FLOAT64,
    SH_DT_INT8,
    SH_DT_INT16,
    SH_DT_INT32,
    SH_DT_INT64,
    SH_DT_UINT8,
    SH_DT_UINT16,
    SH_DT_UINT32,
    SH_DT_UINT64,
    SH_DT_BOOL,
    SH_DT_COUNT
} sh_dtype;

size_t sh_dtype_size(sh_dtype dt);          /* 0 for UNDEFINED */
const char *sh_dtype_name(sh_dtype dt);
/* Element i of an array of dtype dt, as a double (NAN for UNDEFINED). */
double sh_dtype_load_f64(const void *p, sh_dtype dt, int64_t i);

#define SH_MAX_DIMS 8

typedef struct sh_shape {
    int ndim;                  /* 0 = scalar */
    int64_t d[SH_MAX_DIMS];
} sh_shape;

/* Element count, or -1 when a dim is negative or the product overflows int64. */
int64_t sh_shape_numel(const sh_shape *s);
bool sh_shape_equal(const sh_shape *a, const sh_shape *b);
/* numpy matmul's promotion of 1-D operands, in place: a vector a becomes [1,K], a vector b
 * becomes [K,1] (the added dim is dropped from the product's shape by the caller). */
void sh_shape_matmul_promote(sh_shape *a, sh_shape *b);
/* "[1,3,640,640]" into buf; returns buf. */
const char *sh_shape_str(const sh_shape *s, char *buf, size_t cap);

/* Every op shoal knows. Order matters only to the tables indexed by it; each such table
 * carries a static_assert on SH_OP_COUNT. Fused ops (SILU) are created by passes. */
#define SH_OP_LIST(X) \
    X(CONV, "Conv") X(CONV_TRANSPOSE, "ConvTranspose") X(BATCH_NORM, "BatchNormalization") \
    X(RELU, "Relu") X(SIGMOID, "Sigmoid") X(HARD_SIGMOID, "HardSigmoid") X(HARD_SWISH, "HardSwish") \
    X(CLIP, "Clip") X(EXP, "Exp") X(SILU, "shoal.SiLU") \
    X(ADD, "Add") X(SUB, "Sub") X(MUL, "Mul") X(DIV, "Div") \
    X(CONCAT, "Concat") X(SPLIT, "Split") X(SLICE, "Slice") \
    X(MAX_POOL, "MaxPool") X(AVERAGE_POOL, "AveragePool") X(GLOBAL_AVERAGE_POOL, "GlobalAveragePool") \
    X(RESIZE, "Resize") X(UPSAMPLE, "Upsample") X(RESHAPE, "Reshape") X(TRANSPOSE, "Transpose") \
    X(SOFTMAX, "Softmax") X(MATMUL, "MatMul") X(GEMM, "Gemm") X(FLATTEN, "Flatten") \
    X(CONSTANT, "Constant") X(CONSTANT_OF_SHAPE, "ConstantOfShape") X(SHAPE, "Shape") \
    X(GATHER, "Gather") X(UNSQUEEZE, "Unsqueeze") X(SQUEEZE, "Squeeze") X(IDENTITY, "Identity") \
    X(EXPAND, "Expand") X(CAST, "Cast") X(PAD, "Pad") X(REDUCE_MEAN, "ReduceMean") \
    /* selection ops of NMS-free (end-to-end) detection heads */ \
    X(TOPK, "TopK") X(GATHER_ELEMENTS, "GatherElements") X(GATHER_ND, "GatherND") \
    X(REDUCE_MAX, "ReduceMax") X(ARGMAX, "ArgMax") X(TILE, "Tile") X(MOD, "Mod") \
    /* anchor grids of dynamic exports (folded once the input size is known) */ \
    X(RANGE, "Range") \
    SH_OP_LIST_FRAME(X) \
    SH_QUANT_OP_LIST(X)

/* The frame ops: pre- and post-processing as graph ops (vision/frame.h has their tensors),
 * added to a model's graph from its config, never imported. */
#define SH_OP_LIST_FRAME(X) \
    X(FRAME_TO_TENSOR, "shoal.FrameToTensor") X(FRAME_DECODE, "shoal.FrameDecode") \
    X(FRAME_NMS, "shoal.FrameNms") X(FRAME_MASKS, "shoal.FrameMasks") X(FRAME_LANDMARKS, "shoal.FrameLandmarks") \
    X(FRAME_CROP, "shoal.FrameCrop")

/* Quantized ops (int8/uint8 data, int32 accumulators): the ONNX ones, then the com.microsoft
 * contrib ops of onnxruntime's QOperator format (from QLINEAR_ADD on; sh_op_is_ms_contrib). */
#define SH_QUANT_OP_LIST(X) \
    X(QUANTIZE_LINEAR, "QuantizeLinear") X(DEQUANTIZE_LINEAR, "DequantizeLinear") \
    X(DYNAMIC_QUANTIZE_LINEAR, "DynamicQuantizeLinear") X(CONV_INTEGER, "ConvInteger") \
    X(MATMUL_INTEGER, "MatMulInteger") X(QLINEAR_CONV, "QLinearConv") X(QLINEAR_MATMUL, "QLinearMatMul") \
    X(QLINEAR_ADD, "QLinearAdd") X(QLINEAR_MUL, "QLinearMul") X(QLINEAR_CONCAT, "QLinearConcat") \
    X(QLINEAR_SIGMOID, "QLinearSigmoid") X(QLINEAR_LEAKY_RELU, "QLinearLeakyRelu") \
    X(QLINEAR_GLOBAL_AVERAGE_POOL, "QLinearGlobalAveragePool")

typedef enum sh_op {
#define SH_OP_ENUM(id, name) SH_OP_##id,
    SH_OP_LIST(SH_OP_ENUM)
#undef SH_OP_ENUM
    SH_OP_COUNT
} sh_op;

const char *sh_op_name(sh_op op);                 /* ONNX op_type, or "shoal.X" for fused ops */
sh_op sh_op_from_onnx(const char *op_type);       /* SH_OP_COUNT when unknown */
/* Ops of onnxruntime's com.microsoft domain (imported from that domain only). */
static inline bool sh_op_is_ms_contrib(sh_op op)
{
    return op >= SH_OP_QLINEAR_ADD && op <= SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL;
}

/* Activation fused into a node's output by the fusion pass. Only CONV, CONV_TRANSPOSE and GEMM
 * carry one; an unfused x*sigmoid(x) becomes the SILU op. */
typedef enum sh_act {
    SH_ACT_NONE = 0,
    SH_ACT_RELU,
    SH_ACT_SIGMOID,
    SH_ACT_SILU,         /* x * sigmoid(x) */
    SH_ACT_HARD_SWISH,   /* x * clamp(x/6 + 1/2, 0, 1) */
    SH_ACT_HARD_SIGMOID, /* clamp(alpha*x + beta, 0, 1): act_a = alpha, act_b = beta */
    SH_ACT_CLIP,         /* clamp(x, act_a, act_b) */
    SH_ACT_COUNT
} sh_act;

typedef enum sh_attr_type {
    SH_ATTR_INT,
    SH_ATTR_FLOAT,
    SH_ATTR_STRING,
    SH_ATTR_INTS,
    SH_ATTR_FLOATS,
    SH_ATTR_TENSOR      /* `tensor` is a tensor index in the graph (a constant) */
} sh_attr_type;

typedef struct sh_attr {
    char *name;
    sh_attr_type type;
    int64_t i;
    float f;
    char *s;
    int n;              /* element count of ints/floats */
    int64_t *ints;
    float *floats;
    int tensor;
} sh_attr;

typedef struct sh_tensor {
    char *name;
    sh_dtype dtype;
    sh_shape shape;
    bool is_const;       /* initializer, Constant output or folded: `data` holds its value */
    bool is_input;       /* graph input fed by the caller */
    bool is_output;      /* graph output */
    void *data;          /* host bytes, row-major, `nbytes` long; owned by the graph */
    size_t nbytes;
    int producer;        /* node index, -1 for constants and inputs */
    int n_consumers;     /* node inputs reading it, + 1 if it is a graph output */
} sh_tensor;

typedef struct sh_node {
    char *name;
    sh_op op;
    int opset;           /* since-version of the op definition in effect: the largest ONNX
                            since-version of this op <= the model's default-domain opset
                            (the importer resolves it; kernels branch on it, e.g. Softmax < 13) */
    int n_inputs;
    int *inputs;         /* tensor indices; -1 for an omitted optional input */
    int n_outputs;
    int *outputs;
    int n_attrs;
    sh_attr *attrs;
    sh_act act;          /* fused output activation, SH_ACT_NONE by default */
    float act_a, act_b;
    bool dead;           /* removed by a pass; dropped by sh_graph_compact() */
} sh_node;

typedef struct sh_graph {
    sh_allocator *alloc;
    char *name;
    int opset;
    sh_tensor *tensors;
    int n_tensors, cap_tensors;
    sh_node *nodes;
    int n_nodes, cap_nodes;
    int *inputs;         /* tensor indices of the caller-fed inputs, in model order */
    int n_inputs;
    int *outputs;
    int n_outputs;
    void *name_index;    /* private: name -> tensor lookup */
} sh_graph;

/* --- building (importer, passes, tests) ------------------------------------------ */
sh_graph *sh_graph_create(sh_allocator *alloc, const char *name);
void sh_graph_destroy(sh_graph *g);                      /* accepts NULL */

/* Adds a tensor; returns its index or -1 on allocation failure. Names must be unique
 * (an empty name gets a generated one). */
int sh_graph_add_tensor(sh_graph *g, const char *name, sh_dtype dt, const sh_shape *shape);
/* Makes tensor t a constant owning a copy of `data` (nbytes must match dtype*shape). */
int sh_graph_set_const(sh_graph *g, int t, const void *data, size_t nbytes, sh_err *err);
/* Makes tensor t a constant taking ownership of `data` allocated from g->alloc. */
int sh_graph_adopt_const(sh_graph *g, int t, void *data, size_t nbytes, sh_err *err);
int sh_graph_find_tensor(const sh_graph *g, const char *name);  /* -1 if absent */

/* Adds a node with copies of the given input/output index arrays; returns its index or -1. */
int sh_graph_add_node(sh_graph *g, const char *name, sh_op op, const int *inputs, int n_inputs,
                      const int *outputs, int n_outputs);
/* Attributes (copied). Return 0 or a negative status. */
int sh_node_set_int(sh_graph *g, int node, const char *name, int64_t v);
int sh_node_set_float(sh_graph *g, int node, const char *name, float v);
int sh_node_set_string(sh_graph *g, int node, const char *name, const char *v);
int sh_node_set_ints(sh_graph *g, int node, const char *name, const int64_t *v, int n);
int sh_node_set_floats(sh_graph *g, int node, const char *name, const float *v, int n);
int sh_node_set_tensor(sh_graph *g, int node, const char *name, int tensor);

int sh_graph_set_inputs(sh_graph *g, const int *t, int n);
int sh_graph_set_outputs(sh_graph *g, const int *t, int n);

/* --- reading attributes ------------------------------------------------------------- */
const sh_attr *sh_node_attr(const sh_node *n, const char *name);      /* NULL if absent */
int64_t sh_node_int(const sh_node *n, const char *name, int64_t dflt);
float sh_node_float(const sh_node *n, const char *name, float dflt);
const char *sh_node_string(const sh_node *n, const char *name, const char *dflt);
/* Pointer to the ints and their count (0 and NULL if absent). */
const int64_t *sh_node_ints(const sh_node *n, const char *name, int *count);

/* Input i of node n as a tensor, or NULL when omitted / out of range. */
const sh_tensor *sh_node_input(const sh_graph *g, const sh_node *n, int i);
const sh_tensor *sh_node_output(const sh_graph *g, const sh_node *n, int i);

/* --- structure ---------------------------------------------------------------------- */
/* Sorts nodes topologically, fills producers and consumer counts; reports cycles, tensors
 * with two producers and inputs nobody produces, naming node and tensor. */
int sh_graph_finalize(sh_graph *g, sh_err *err);
/* Drops dead nodes and unreferenced tensors, renumbering everything. */
int sh_graph_compact(sh_graph *g, sh_err *err);

#endif
