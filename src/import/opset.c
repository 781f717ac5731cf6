/* Opset policy: which ONNX definition of each op a model uses, and whether shoal runs it.
 *
 * An ONNX model declares one version of the default domain; a node uses the newest definition
 * of its op whose since-version is <= that version. The table below lists, per op, every
 * since-version ONNX has defined up to opset 27 (docs/Operators.md and Changelog.md of
 * onnx/onnx; opsets 18-27 from the release notes of onnx 1.13-1.22). A negative entry is a
 * definition shoal does not implement. Versions that only widened the type lists (bfloat16 in
 * 22, int4 in 21, float8e8m0 in 24, 2-bit ints in 25, ...) count as implemented: shoal's
 * dtypes are a subset of every later version's, so the semantics shoal runs did not change.
 * Definitions only reachable below SH_ONNX_MIN_OPSET are listed for completeness. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "import/import-impl.h"

#define MAX_VERSIONS 12

typedef struct op_versions {
    signed char v[MAX_VERSIONS];   /* ascending, 0-terminated; negative: not implemented */
    const char *attrs;             /* known attributes "name:type ..." (i f s is fs t) */
} op_versions;

static const op_versions OPS[] = {
    [SH_OP_CONV] = {{1, 11, 22}, "auto_pad:s dilations:is group:i kernel_shape:is pads:is strides:is"},
    [SH_OP_CONV_TRANSPOSE] = {{1, 11, 22},
        "auto_pad:s dilations:is group:i kernel_shape:is output_padding:is output_shape:is pads:is strides:is"},
    [SH_OP_BATCH_NORM] = {{1, 6, 7, 9, 14, 15},
        "epsilon:f momentum:f spatial:i is_test:i consumed_inputs:is training_mode:i"},
    [SH_OP_RELU] = {{1, 6, 13, 14}, ""},
    [SH_OP_SIGMOID] = {{1, 6, 13}, ""},
    [SH_OP_HARD_SIGMOID] = {{1, 6, 22}, "alpha:f beta:f"},
    [SH_OP_HARD_SWISH] = {{14, 22}, ""},
    [SH_OP_CLIP] = {{1, 6, 11, 12, 13}, "min:f max:f"},
    [SH_OP_EXP] = {{1, 6, 13}, ""},
    [SH_OP_SILU] = {{0}, NULL},    /* made by the fusion pass, never imported */
    [SH_OP_ADD] = {{1, 6, 7, 13, 14}, "axis:i broadcast:i"},
    [SH_OP_SUB] = {{1, 6, 7, 13, 14}, "axis:i broadcast:i"},
    [SH_OP_MUL] = {{1, 6, 7, 13, 14}, "axis:i broadcast:i"},
    [SH_OP_DIV] = {{1, 6, 7, 13, 14}, "axis:i broadcast:i"},
    [SH_OP_CONCAT] = {{1, 4, 11, 13}, "axis:i"},
    [SH_OP_SPLIT] = {{1, 2, 11, 13, 18}, "axis:i split:is num_outputs:i"},
    [SH_OP_SLICE] = {{1, 10, 11, 13}, "starts:is ends:is axes:is"},
    [SH_OP_MAX_POOL] = {{1, 8, 10, 11, 12, 22},
        "auto_pad:s ceil_mode:i dilations:is kernel_shape:is pads:is storage_order:i strides:is"},
    [SH_OP_AVERAGE_POOL] = {{1, 7, 10, 11, 19, 22},
        "auto_pad:s ceil_mode:i count_include_pad:i dilations:is kernel_shape:is pads:is strides:is"},
    [SH_OP_GLOBAL_AVERAGE_POOL] = {{1, 22}, ""},
    [SH_OP_RESIZE] = {{10, 11, 13, 18, 19},
        "mode:s coordinate_transformation_mode:s cubic_coeff_a:f exclude_outside:i extrapolation_value:f "
        "nearest_mode:s antialias:i axes:is keep_aspect_ratio_policy:s"},
    /* Upsample-1 was experimental; Upsample-10 is the deprecated stub ONNX keeps so that
     * opset-10+ models fail loudly. */
    [SH_OP_UPSAMPLE] = {{-1, 7, 9, -10}, "mode:s scales:fs height_scale:f width_scale:f"},
    [SH_OP_RESHAPE] = {{1, 5, 13, 14, 19, 21, 23, 24, 25}, "allowzero:i shape:is consumed_inputs:is"},
    [SH_OP_TRANSPOSE] = {{1, 13, 21, 23, 24, 25}, "perm:is"},
    [SH_OP_SOFTMAX] = {{1, 11, 13}, "axis:i"},
    [SH_OP_MATMUL] = {{1, 9, 13}, ""},
    [SH_OP_GEMM] = {{1, 6, 7, 9, 11, 13}, "alpha:f beta:f transA:i transB:i broadcast:i"},
    [SH_OP_FLATTEN] = {{1, 9, 11, 13, 21, 23, 24, 25}, "axis:i"},
    [SH_OP_CONSTANT] = {{1, 9, 11, 12, 13, 19, 21, 23, 24, 25},
        "value:t value_float:f value_floats:fs value_int:i value_ints:is value_string:s"},
    [SH_OP_CONSTANT_OF_SHAPE] = {{9, 20, 21, 23, 24, 25}, "value:t"},
    [SH_OP_SHAPE] = {{1, 13, 15, 19, 21, 23, 24, 25}, "start:i end:i"},
    [SH_OP_GATHER] = {{1, 11, 13}, "axis:i"},
    [SH_OP_UNSQUEEZE] = {{1, 11, 13, 21, 23, 24, 25}, "axes:is"},
    [SH_OP_SQUEEZE] = {{1, 11, 13, 21, 23, 24, 25}, "axes:is"},
    [SH_OP_IDENTITY] = {{1, 13, 14, 16, 19, 21, 23, 24, 25}, ""},
    [SH_OP_EXPAND] = {{8, 13}, ""},
    [SH_OP_CAST] = {{1, 6, 9, 13, 19, 21, 23, 24, 25}, "to:i saturate:i round_mode:s"},
    [SH_OP_PAD] = {{1, 2, 11, 13, 18, 19, 21, 23, 24, 25}, "mode:s pads:is value:f paddings:is"},
    [SH_OP_REDUCE_MEAN] = {{1, 11, 13, 18}, "axes:is keepdims:i noop_with_empty_axes:i"},
    /* TopK-1 takes k as an attribute; shoal reads k from the input (10+) only. */
    [SH_OP_TOPK] = {{-1, 10, 11, 24}, "axis:i k:i largest:i sorted:i"},
    [SH_OP_GATHER_ELEMENTS] = {{11, 13}, "axis:i"},
    [SH_OP_GATHER_ND] = {{11, 12, 13}, "batch_dims:i"},
    [SH_OP_REDUCE_MAX] = {{1, 11, 12, 13, 18, 20}, "axes:is keepdims:i noop_with_empty_axes:i"},
    [SH_OP_ARGMAX] = {{1, 11, 12, 13}, "axis:i keepdims:i select_last_index:i"},
    [SH_OP_TILE] = {{1, 6, 13}, ""},
    [SH_OP_MOD] = {{10, 13}, "fmod:i"},
    [SH_OP_RANGE] = {{11}, ""},
    /* the frame ops are added from a model's config, never imported */
    [SH_OP_FRAME_TO_TENSOR] = {{0}, NULL},
    [SH_OP_FRAME_DECODE] = {{0}, NULL},
    [SH_OP_FRAME_NMS] = {{0}, NULL},
    [SH_OP_FRAME_MASKS] = {{0}, NULL},
    [SH_OP_FRAME_LANDMARKS] = {{0}, NULL},
    [SH_OP_FRAME_CROP] = {{0}, NULL},
    /* Quantization: 19 added float8 (saturate), 21 blocked quantization and int4 (refused by
     * the kernels when block_size is set), 23-25 further narrow types. */
    [SH_OP_QUANTIZE_LINEAR] = {{10, 13, 19, 21, 23, 24, 25},
        "axis:i saturate:i block_size:i output_dtype:i precision:i"},
    [SH_OP_DEQUANTIZE_LINEAR] = {{10, 13, 19, 21, 23, 24, 25}, "axis:i block_size:i output_dtype:i"},
    [SH_OP_DYNAMIC_QUANTIZE_LINEAR] = {{11}, ""},
    [SH_OP_CONV_INTEGER] = {{10}, "auto_pad:s dilations:is group:i kernel_shape:is pads:is strides:is"},
    [SH_OP_MATMUL_INTEGER] = {{10}, ""},
    [SH_OP_QLINEAR_CONV] = {{10}, "auto_pad:s dilations:is group:i kernel_shape:is pads:is strides:is"},
    [SH_OP_QLINEAR_MATMUL] = {{10, 21}, ""},
    /* com.microsoft, version 1 (resolved against the model's default opset, which is >= 1). */
    [SH_OP_QLINEAR_ADD] = {{1}, ""},
    [SH_OP_QLINEAR_MUL] = {{1}, ""},
    [SH_OP_QLINEAR_CONCAT] = {{1}, "axis:i"},
    [SH_OP_QLINEAR_SIGMOID] = {{1}, ""},
    [SH_OP_QLINEAR_LEAKY_RELU] = {{1}, "alpha:f"},
    [SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL] = {{1}, "channels_last:i"},
};
static_assert(sizeof OPS / sizeof OPS[0] == SH_OP_COUNT, "update the op tables");
static_assert(SH_OP_COUNT == 66, "update the op tables");

const char *sh_onnx_op_versions(sh_op op, bool implemented_only, char *buf, size_t cap)
{
    size_t at = 0;
    if (!cap)
        return buf;
    buf[0] = '\0';
    if ((unsigned)op >= SH_OP_COUNT)
        return buf;
    for (int i = 0; i < MAX_VERSIONS && OPS[op].v[i] && at < cap; i++) {
        int v = OPS[op].v[i];
        if (implemented_only && v < 0)
            continue;
        at += (size_t)snprintf(buf + at, cap - at, "%s%d", at ? ", " : "", v < 0 ? -v : v);
    }
    return buf;
}

static bool is_default_domain(const char *d)
{
    return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

int sh_onnx_resolve_op(const char *domain, const char *op_type, int opset, sh_op *op, int *since,
                       char *why, size_t cap)
{
    sh_op o = op_type ? sh_op_from_onnx(op_type) : SH_OP_COUNT;
    bool ms = domain && strcmp(domain, "com.microsoft") == 0;
    if (ms && (o == SH_OP_COUNT || !sh_op_is_ms_contrib(o))) {
        snprintf(why, cap, "com.microsoft op '%s' is not supported (only its QLinear* ops)", op_type ? op_type : "");
        return SHOAL_ERR_UNSUPPORTED;
    }
    if (!ms && !is_default_domain(domain)) {
        snprintf(why, cap, "domain '%s' is not supported (only the default ONNX domain and com.microsoft's "
                 "QLinear* ops)", domain);
        return SHOAL_ERR_UNSUPPORTED;
    }
    if (!ms && o != SH_OP_COUNT && sh_op_is_ms_contrib(o)) {
        snprintf(why, cap, "'%s' is a com.microsoft op, not one of the default ONNX domain", op_type);
        return SHOAL_ERR_UNSUPPORTED;
    }
    if (o == SH_OP_COUNT || !OPS[o].v[0]) {
        snprintf(why, cap, "unknown op (shoal implements no '%s' at any opset)", op_type ? op_type : "");
        return SHOAL_ERR_UNSUPPORTED;
    }
    int found = 0;
    for (int i = 0; i < MAX_VERSIONS && OPS[o].v[i]; i++) {
        int v = OPS[o].v[i];
        if ((v < 0 ? -v : v) <= opset)
            found = v;
    }
    char list[64];
    if (found == 0) {
        snprintf(why, cap, "%s does not exist at opset %d (first defined in opset %d)", op_type, opset,
                 OPS[o].v[0] < 0 ? -OPS[o].v[0] : OPS[o].v[0]);
        return SHOAL_ERR_UNSUPPORTED;
    }
    if (found < 0) {
        snprintf(why, cap, "opset %d resolves to %s-%d, which shoal does not implement (implements %s)",
                 opset, op_type, -found, sh_onnx_op_versions(o, true, list, sizeof list));
        return SHOAL_ERR_UNSUPPORTED;
    }
    *op = o;
    *since = found;
    return 0;
}

/* Looks `name` up in the op's known attributes; returns the expected type letter code or NULL
 * when the attribute is not one shoal knows (those are copied unchecked). */
const char *sh_onnx_attr_expected(sh_op op, const char *name, char *buf, size_t cap)
{
    if ((unsigned)op >= SH_OP_COUNT || !OPS[op].attrs || !name)
        return NULL;
    size_t n = strlen(name);
    for (const char *p = OPS[op].attrs; *p;) {
        const char *sp = strchr(p, ' ');
        size_t len = sp ? (size_t)(sp - p) : strlen(p);
        if (len > n && strncmp(p, name, n) == 0 && p[n] == ':') {
            size_t tl = len - n - 1;
            if (tl >= cap)
                tl = cap - 1;
            memcpy(buf, p + n + 1, tl);
            buf[tl] = '\0';
            return buf;
        }
        p += len;
        while (*p == ' ')
            p++;
    }
    return NULL;
}
