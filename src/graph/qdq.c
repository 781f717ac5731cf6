/* QDQ folding: the QuantizeLinear / DequantizeLinear pairs a QDQ model wraps around its
 * convolutions become one integer convolution, as TensorRT and onnxruntime fold them.
 *
 *   DQ(x_q, xs, xz) ─┐
 *   DQ(w_q, ws, wz) ─┼─ Conv ── Q(ys, yz)   =>   QLinearConv(x_q, xs, xz, w_q, ws, wz, ys, yz, b_q)
 *   DQ(b_q, xs*ws) ──┘
 *
 * The float graph and the folded one differ only in how the output is rounded: the float
 * graph rounds sum(xs*(x-xz) * ws*(w-wz)) + b in float before quantizing, QLinearConv
 * accumulates the exact integers and requantizes them once. The folded form is what
 * onnxruntime executes for the same file, so shoal's integers equal its integers, and the
 * weights stay int8 in memory (one byte each, with their per-channel scales) instead of being
 * dequantized to float.
 *
 * Conditions (otherwise the nodes stay as they are and run in float):
 * - x and y quantized per tensor; weights per tensor or per output channel (axis 0),
 *   constant, never blocked;
 * - the bias, when present, an int32 constant dequantized with zero point 0 and scale
 *   xs * ws[m] (float product) for every channel, which is how quantizers write it, so that
 *   adding it to the accumulator is exactly adding it in float;
 * - the Conv's output read only by the QuantizeLinear.
 *
 * Then a QLinearConv whose output only a DequantizeLinear with the same scale and zero point
 * reads writes that float output itself (attribute SH_QCONV_DEQUANTIZE): its kernel maps each
 * requantized code through a 256-entry table of the dequantized values, and the fusion pass
 * may then fuse the following activation (SiLU, ...) into the same table, so the QDQ model's
 * DQ -> activation -> Q chain costs one lookup per element, bit for bit what the separate
 * nodes compute.
 *
 * After fusion, sh_graph_fold_qdq_requantize goes one step further where that float output
 * (activation applied) is read by a per-tensor QuantizeLinear alone: the table then maps each
 * requantized code to the QuantizeLinear's code of the activated value, so the node writes
 * int8 codes and the next QLinearConv reads them directly; again bit for bit the separate
 * nodes' result, since the table is their composition over all 256 codes. */
#include "graph/passes-impl.h"

#include <string.h>

static bool is_q8(sh_dtype dt)
{
    return dt == SH_DT_INT8 || dt == SH_DT_UINT8;
}

static int64_t numel_or_neg(const sh_graph *g, int t)
{
    return t < 0 ? 0 : sh_shape_numel(&g->tensors[t].shape);
}

/* The live Q/DQ node of kind `op` producing tensor t, without blocked quantization. */
static const sh_node *qdq_producer(const sh_graph *g, int t, sh_op op)
{
    if (t < 0 || g->tensors[t].producer < 0)
        return NULL;
    const sh_node *n = &g->nodes[g->tensors[t].producer];
    if (n->dead || n->op != op || n->n_inputs < 2 || sh_node_int(n, "block_size", 0) != 0)
        return NULL;
    return n;
}

static int in(const sh_node *n, int i)
{
    return i < n->n_inputs ? n->inputs[i] : -1;
}

/* A per-tensor scale (float32, one value) and zero point (absent, or one value of dt). */
static bool per_tensor(const sh_graph *g, const sh_node *n, sh_dtype dt)
{
    int s = in(n, 1), z = in(n, 2);
    if (g->tensors[s].dtype != SH_DT_FLOAT32 || numel_or_neg(g, s) != 1)
        return false;
    return z < 0 || (g->tensors[z].dtype == dt && numel_or_neg(g, z) == 1);
}

/* Whether DQ(bias) is int32 with zero point 0 and scale xs * ws[m] for every channel m. */
static bool bias_fits(const sh_graph *g, const sh_node *bdq, int xs, int ws, int64_t M)
{
    int b = in(bdq, 0), bs = in(bdq, 1), bz = in(bdq, 2);
    const sh_tensor *B = &g->tensors[b], *BS = &g->tensors[bs], *XS = &g->tensors[xs], *WS = &g->tensors[ws];
    if (!B->is_const || B->dtype != SH_DT_INT32 || numel_or_neg(g, b) != M || !BS->is_const ||
        BS->dtype != SH_DT_FLOAT32 || !XS->is_const || !WS->is_const)
        return false;
    if (bz >= 0) {
        const sh_tensor *BZ = &g->tensors[bz];
        if (!BZ->is_const || BZ->dtype != SH_DT_INT32)
            return false;
        for (int64_t i = 0; i < numel_or_neg(g, bz); i++)
            if (((const int32_t *)BZ->data)[i] != 0)
                return false;
    }
    int64_t nbs = numel_or_neg(g, bs), nws = numel_or_neg(g, ws);
    if ((nbs != 1 && nbs != M) || (nws != 1 && nws != M))
        return false;
    float xsv = ((const float *)XS->data)[0];
    for (int64_t m = 0; m < M; m++) {
        float want = xsv * ((const float *)WS->data)[nws > 1 ? m : 0];
        if (((const float *)BS->data)[nbs > 1 ? m : 0] != want)
            return false;
    }
    return true;
}

/* Folds Conv node k when the pattern holds; *folded says whether it did. */
static int fold_conv(sh_graph *g, int k, bool *folded, sh_err *err)
{
    *folded = false;
    sh_node *conv = &g->nodes[k];
    if (conv->act != SH_ACT_NONE || conv->n_inputs < 2 || conv->n_outputs != 1)
        return 0;
    const sh_tensor *Y = &g->tensors[conv->outputs[0]];
    if (Y->is_output || Y->n_consumers != 1)
        return 0;
    const sh_node *xdq = qdq_producer(g, in(conv, 0), SH_OP_DEQUANTIZE_LINEAR);
    const sh_node *wdq = qdq_producer(g, in(conv, 1), SH_OP_DEQUANTIZE_LINEAR);
    const sh_node *bdq = in(conv, 2) >= 0 ? qdq_producer(g, in(conv, 2), SH_OP_DEQUANTIZE_LINEAR) : NULL;
    if (!xdq || !wdq || (in(conv, 2) >= 0 && !bdq))
        return 0;
    /* the one reader of the Conv's output must be a per-tensor QuantizeLinear */
    int qk = -1;
    for (int c = 0; c < g->n_nodes && qk < 0; c++) {
        const sh_node *n = &g->nodes[c];
        if (!n->dead && n->n_inputs > 0 && n->inputs[0] == conv->outputs[0])
            qk = c;
    }
    if (qk < 0)
        return 0;
    const sh_node *q = &g->nodes[qk];
    if (q->op != SH_OP_QUANTIZE_LINEAR || q->n_inputs < 2 || sh_node_int(q, "block_size", 0) != 0 ||
        q->n_outputs != 1)
        return 0;
    const sh_tensor *X = &g->tensors[in(xdq, 0)], *W = &g->tensors[in(wdq, 0)], *Q = &g->tensors[q->outputs[0]];
    int64_t M = W->shape.ndim >= 3 ? W->shape.d[0] : -1;
    if (!is_q8(X->dtype) || !is_q8(W->dtype) || !is_q8(Q->dtype) || !W->is_const || M < 1 ||
        !per_tensor(g, xdq, X->dtype) || !per_tensor(g, q, Q->dtype))
        return 0;
    /* weights: per tensor, or per output channel along axis 0 */
    int ws = in(wdq, 1), wz = in(wdq, 2);
    int64_t nws = numel_or_neg(g, ws);
    if (g->tensors[ws].dtype != SH_DT_FLOAT32 || !g->tensors[ws].is_const ||
        (wz >= 0 && (!g->tensors[wz].is_const || g->tensors[wz].dtype != W->dtype)))
        return 0;
    if (nws != 1 && !(nws == M && g->tensors[ws].shape.ndim == 1 && sh_node_int(wdq, "axis", 1) == 0))
        return 0;
    if (wz >= 0 && numel_or_neg(g, wz) != nws)
        return 0;
    if (bdq && !bias_fits(g, bdq, in(xdq, 1), ws, M))
        return 0;

    int ins[9] = {in(xdq, 0), in(xdq, 1), in(xdq, 2), in(wdq, 0), ws, wz, in(q, 1), in(q, 2), bdq ? in(bdq, 0) : -1};
    int *inputs = sh_alloc(g->alloc, sizeof ins);
    if (!inputs)
        return sh_node_errf(err, SHOAL_ERR_NO_MEMORY, g, conv, "%s", "out of memory folding QDQ");
    memcpy(inputs, ins, sizeof ins);
    sh_free(g->alloc, conv->inputs);
    conv->inputs = inputs;
    conv->n_inputs = 9;
    conv->op = SH_OP_QLINEAR_CONV;
    conv->opset = 10;
    conv->outputs[0] = q->outputs[0];
    g->nodes[qk].dead = true;
    *folded = true;
    return 0;
}

/* Same constant value (or the same tensor) for a scale or zero point; -1 (absent) equals absent. */
static bool same_param(const sh_graph *g, int a, int b)
{
    if (a == b)
        return true;
    if (a < 0 || b < 0)
        return false;
    const sh_tensor *x = &g->tensors[a], *y = &g->tensors[b];
    return x->is_const && y->is_const && x->dtype == y->dtype && x->nbytes == y->nbytes && x->data && y->data &&
           memcmp(x->data, y->data, x->nbytes) == 0;
}

/* QLinearConv k -> DequantizeLinear into one node with a float output. */
static void fold_dequantize(sh_graph *g, int k)
{
    sh_node *conv = &g->nodes[k];
    const sh_tensor *Y = &g->tensors[conv->outputs[0]];
    if (Y->is_output || Y->n_consumers != 1 || sh_node_int(conv, SH_QCONV_DEQUANTIZE, 0))
        return;
    int dk = -1;
    for (int c = 0; c < g->n_nodes && dk < 0; c++)
        if (!g->nodes[c].dead && g->nodes[c].n_inputs > 0 && g->nodes[c].inputs[0] == conv->outputs[0])
            dk = c;
    if (dk < 0)
        return;
    sh_node *dq = &g->nodes[dk];
    if (dq->op != SH_OP_DEQUANTIZE_LINEAR || dq->n_outputs != 1 || sh_node_int(dq, "block_size", 0) != 0 ||
        !same_param(g, in(dq, 1), in(conv, 6)) || !same_param(g, in(dq, 2), in(conv, 7)) ||
        g->tensors[dq->outputs[0]].dtype != SH_DT_FLOAT32)
        return;
    if (sh_node_set_int(g, k, SH_QCONV_DEQUANTIZE, 1))
        return;   /* out of memory: the two nodes simply stay apart */
    conv = &g->nodes[k];
    conv->outputs[0] = dq->outputs[0];
    dq->dead = true;
}

int sh_graph_fold_qdq(sh_graph *g, int *n_folded, sh_err *err)
{
    int count = 0;
    sh_graph_refresh_uses(g);
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead || g->nodes[k].op != SH_OP_CONV)
            continue;
        bool folded = false;
        int rc = fold_conv(g, k, &folded, err);
        if (rc)
            return rc;
        if (folded) {
            count++;
            sh_graph_refresh_uses(g);
        }
    }
    for (int k = 0; k < g->n_nodes; k++)
        if (!g->nodes[k].dead && g->nodes[k].op == SH_OP_QLINEAR_CONV) {
            fold_dequantize(g, k);
            sh_graph_refresh_uses(g);
        }
    if (n_folded)
        *n_folded = count;
    return 0;
}

/* Dequantizing QLinearConv k -> per-tensor QuantizeLinear into one node with int8 output. */
static int fold_requantize(sh_graph *g, int k, bool *folded, sh_err *err)
{
    *folded = false;
    sh_node *conv = &g->nodes[k];
    const sh_tensor *Y = &g->tensors[conv->outputs[0]];
    if (!sh_node_int(conv, SH_QCONV_DEQUANTIZE, 0) || sh_node_int(conv, SH_QCONV_REQUANTIZE, 0) || Y->is_output ||
        Y->n_consumers != 1 || Y->dtype != SH_DT_FLOAT32 || conv->n_inputs > 9)
        return 0;
    int qk = -1;
    for (int c = 0; c < g->n_nodes && qk < 0; c++)
        if (!g->nodes[c].dead && g->nodes[c].n_inputs > 0 && g->nodes[c].inputs[0] == conv->outputs[0])
            qk = c;
    if (qk < 0)
        return 0;
    const sh_node *q = &g->nodes[qk];
    if (q->op != SH_OP_QUANTIZE_LINEAR || q->n_inputs < 2 || q->n_outputs != 1 ||
        sh_node_int(q, "block_size", 0) != 0 || !is_q8(g->tensors[q->outputs[0]].dtype) ||
        !per_tensor(g, q, g->tensors[q->outputs[0]].dtype))
        return 0;
    int *inputs = sh_alloc(g->alloc, 11 * sizeof *inputs);
    if (!inputs)
        return sh_node_errf(err, SHOAL_ERR_NO_MEMORY, g, conv, "%s", "out of memory folding a QuantizeLinear");
    for (int i = 0; i < 9; i++)
        inputs[i] = in(conv, i);
    inputs[9] = in(q, 1);
    inputs[10] = in(q, 2);
    int y = q->outputs[0];
    if (sh_node_set_int(g, k, SH_QCONV_REQUANTIZE, 1)) {
        sh_free(g->alloc, inputs);
        return 0;   /* out of memory: the two nodes simply stay apart */
    }
    conv = &g->nodes[k];
    sh_free(g->alloc, conv->inputs);
    conv->inputs = inputs;
    conv->n_inputs = 11;
    conv->outputs[0] = y;
    g->nodes[qk].dead = true;
    *folded = true;
    return 0;
}

int sh_graph_fold_qdq_requantize(sh_graph *g, int *n_folded, sh_err *err)
{
    int count = 0;
    sh_graph_refresh_uses(g);
    for (int k = 0; k < g->n_nodes; k++) {
        if (g->nodes[k].dead || g->nodes[k].op != SH_OP_QLINEAR_CONV)
            continue;
        bool folded = false;
        int rc = fold_requantize(g, k, &folded, err);
        if (rc)
            return rc;
        if (folded) {
            count++;
            sh_graph_refresh_uses(g);
        }
    }
    if (n_folded)
        *n_folded = count;
    return 0;
}
