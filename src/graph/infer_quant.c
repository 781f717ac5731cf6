/* Shape and dtype inference of the quantized ops: ONNX QuantizeLinear, DequantizeLinear,
 * DynamicQuantizeLinear, ConvInteger, MatMulInteger, QLinearConv, QLinearMatMul, and the
 * com.microsoft QLinear* ops onnxruntime's QOperator format emits. The quantized dtype of an
 * output follows its zero point, as ONNX specifies (uint8 when the zero point is omitted). */
#include "graph/passes-impl.h"

#include <string.h>

static const char *shp(const sh_shape *s, char *buf)
{
    return sh_shape_str(s, buf, 128);
}

static bool is_q8(sh_dtype d)
{
    return d == SH_DT_INT8 || d == SH_DT_UINT8;
}

/* The dtype of a quantized value whose zero point is input `zp` (uint8 when omitted). */
static int zp_dtype(const sh_graph *g, const sh_node *n, int zp, sh_dtype *dt, sh_err *err)
{
    const sh_tensor *z = sh_node_input(g, n, zp);
    *dt = z ? z->dtype : SH_DT_UINT8;
    if (!is_q8(*dt))
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "zero point '%s' is %s (int8/uint8 supported)", z->name,
                            sh_dtype_name(*dt));
    return 0;
}

static int infer_conv_like(sh_graph *g, int k, sh_dtype out_dt, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    sh_window_geom geo;
    int rc = sh_node_window_geom(g, k, &geo, err);
    if (rc)
        return rc;
    const sh_tensor *x = sh_node_input(g, n, 0);
    const sh_tensor *w = sh_node_input(g, n, n->op == SH_OP_QLINEAR_CONV ? 3 : 1);
    if ((rc = sh_infer_conv_weight(g, n, x, w, geo.group, err)))
        return rc;
    sh_shape o = sh_window_out_shape(&x->shape, w->shape.d[0], &geo);
    return sh_infer_set_out(g, n, 0, out_dt, &o);
}

/* numpy matmul shape of inputs a and b. */
static int infer_matmul_like(sh_graph *g, const sh_node *n, int ia, int ib, sh_dtype out_dt, sh_err *err)
{
    const sh_tensor *a, *b;
    int rc;
    if ((rc = sh_infer_need_input(g, n, ia, &a, err)) || (rc = sh_infer_need_input(g, n, ib, &b, err)))
        return rc;
    sh_shape sa = a->shape, sb = b->shape;
    char b1[128], b2[128];
    if (sa.ndim < 1 || sb.ndim < 1)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "scalar operand");
    bool va = sa.ndim == 1, vb = sb.ndim == 1;
    sh_shape_matmul_promote(&sa, &sb);
    if (sa.d[sa.ndim - 1] != sb.d[sb.ndim - 2])
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "'%s' %s and '%s' %s do not multiply", a->name,
                            shp(&a->shape, b1), b->name, shp(&b->shape, b2));
    sh_shape ba = sa, bb = sb, o;
    ba.ndim -= 2;
    bb.ndim -= 2;
    if (!sh_shape_broadcast(&ba, &bb, &o))
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "batch dims of %s and %s do not broadcast",
                            shp(&a->shape, b1), shp(&b->shape, b2));
    if (!va)
        o.d[o.ndim++] = sa.d[sa.ndim - 2];
    if (!vb)
        o.d[o.ndim++] = sb.d[sb.ndim - 1];
    return sh_infer_set_out(g, n, 0, out_dt, &o);
}

static int infer_qconcat(sh_graph *g, const sh_node *n, sh_err *err)
{
    if (n->n_inputs < 5 || (n->n_inputs - 2) % 3)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "has %d inputs, expected 2 + 3 per tensor", n->n_inputs);
    sh_dtype dt;
    int rc = zp_dtype(g, n, 1, &dt, err);
    if (rc)
        return rc;
    const sh_tensor *a;
    if ((rc = sh_infer_need_input(g, n, 2, &a, err)))
        return rc;
    const sh_attr *at = sh_node_attr(n, "axis");
    if (!at)
        return sh_node_errf(err, SHOAL_ERR_PARSE, g, n, "attribute axis is required");
    int64_t axis = at->i < 0 ? at->i + a->shape.ndim : at->i;
    char b1[128], b2[128];
    if (axis < 0 || axis >= a->shape.ndim)
        return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "axis %lld out of range for '%s' %s", (long long)at->i, a->name,
                            shp(&a->shape, b1));
    sh_shape o = a->shape;
    for (int i = 5; i < n->n_inputs; i += 3) {
        const sh_tensor *x;
        if ((rc = sh_infer_need_input(g, n, i, &x, err)))
            return rc;
        bool ok = x->shape.ndim == o.ndim && x->dtype == a->dtype;
        for (int d = 0; ok && d < o.ndim; d++)
            ok = d == axis || x->shape.d[d] == o.d[d];
        if (!ok)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n,
                                "'%s' %s %s does not concatenate with '%s' %s %s on axis %lld", x->name,
                                sh_dtype_name(x->dtype), shp(&x->shape, b1), a->name, sh_dtype_name(a->dtype),
                                shp(&a->shape, b2), (long long)axis);
        o.d[axis] += x->shape.d[axis];
    }
    return sh_infer_set_out(g, n, 0, dt, &o);
}

int sh_infer_quant_node(sh_graph *g, int k, sh_err *err)
{
    const sh_node *n = &g->nodes[k];
    const sh_tensor *x, *b;
    sh_dtype dt;
    int rc;
    char b1[128], b2[128];
    if ((rc = sh_infer_need_input(g, n, 0, &x, err)))
        return rc;
    switch (n->op) {
    case SH_OP_QUANTIZE_LINEAR: {
        const sh_tensor *z = sh_node_input(g, n, 2);
        int64_t od = sh_node_int(n, "output_dtype", 0);
        dt = z ? z->dtype : od ? sh_dtype_from_onnx(od) : SH_DT_UINT8;
        if (!is_q8(dt))
            return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "quantizing to %s (int8/uint8 supported)",
                                z ? sh_dtype_name(dt) : "ONNX type");
        return sh_infer_set_out(g, n, 0, dt, &x->shape);
    }
    case SH_OP_DEQUANTIZE_LINEAR:
        return sh_infer_set_out(g, n, 0, SH_DT_FLOAT32, &x->shape);
    case SH_OP_DYNAMIC_QUANTIZE_LINEAR: {
        sh_shape scalar = {0, {0}};
        sh_infer_set_out(g, n, 1, SH_DT_FLOAT32, &scalar);
        sh_infer_set_out(g, n, 2, SH_DT_UINT8, &scalar);
        return sh_infer_set_out(g, n, 0, SH_DT_UINT8, &x->shape);
    }
    case SH_OP_CONV_INTEGER:
        return infer_conv_like(g, k, SH_DT_INT32, err);
    case SH_OP_QLINEAR_CONV:
        if (sh_node_int(n, SH_QCONV_REQUANTIZE, 0)) {
            /* the folded QuantizeLinear's codes (graph/qdq.c) */
            if ((rc = zp_dtype(g, n, 10, &dt, err)))
                return rc;
            return infer_conv_like(g, k, dt, err);
        }
        if ((rc = zp_dtype(g, n, 7, &dt, err)))
            return rc;
        return infer_conv_like(g, k, sh_node_int(n, SH_QCONV_DEQUANTIZE, 0) ? SH_DT_FLOAT32 : dt, err);
    case SH_OP_MATMUL_INTEGER:
        return infer_matmul_like(g, n, 0, 1, SH_DT_INT32, err);
    case SH_OP_QLINEAR_MATMUL:
        if ((rc = zp_dtype(g, n, 7, &dt, err)))
            return rc;
        return infer_matmul_like(g, n, 0, 3, dt, err);
    case SH_OP_QLINEAR_ADD: case SH_OP_QLINEAR_MUL: {
        if ((rc = sh_infer_need_input(g, n, 3, &b, err)))
            return rc;
        sh_shape o;
        if (!sh_shape_broadcast(&x->shape, &b->shape, &o))
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "'%s' %s and '%s' %s do not broadcast", x->name,
                                shp(&x->shape, b1), b->name, shp(&b->shape, b2));
        if ((rc = zp_dtype(g, n, 7, &dt, err)))
            return rc;
        return sh_infer_set_out(g, n, 0, dt, &o);
    }
    case SH_OP_QLINEAR_CONCAT:
        return infer_qconcat(g, n, err);
    case SH_OP_QLINEAR_SIGMOID: case SH_OP_QLINEAR_LEAKY_RELU:
        if ((rc = zp_dtype(g, n, 4, &dt, err)))
            return rc;
        return sh_infer_set_out(g, n, 0, dt, &x->shape);
    case SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL: {
        if (x->shape.ndim < 3)
            return sh_node_errf(err, SHOAL_ERR_SHAPE, g, n, "input '%s' %s needs rank >= 3", x->name,
                                shp(&x->shape, b1));
        if ((rc = zp_dtype(g, n, 4, &dt, err)))
            return rc;
        bool last = sh_node_int(n, "channels_last", 0) != 0;
        sh_shape o = x->shape;
        for (int i = 1; i < o.ndim; i++)
            if (i != (last ? o.ndim - 1 : 1))
                o.d[i] = 1;
        return sh_infer_set_out(g, n, 0, dt, &o);
    }
    default:
        return sh_node_errf(err, SHOAL_ERR_UNSUPPORTED, g, n, "no shape inference for this op");
    }
}
