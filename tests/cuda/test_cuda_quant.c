/* Quantized graphs on the CUDA backend against the CPU backend (backends/cpu/quant.c, qconv.c)
 * on the same random non-zero float inputs: every integer output (codes, int32 accumulators)
 * equal element for element, every float output within 1e-6 relative. The CPU reference runs
 * its integer convolutions on the im2col path, exact on every CPU. The device's outputs are
 * poisoned with two different byte patterns before two runs (the second a graph replay), so
 * an element left unwritten cannot match both times.
 *
 * Cases: QuantizeLinear / DequantizeLinear per tensor and per axis, int8 and uint8, values
 * beyond the codes' range; DequantizeLinear of int32; DynamicQuantizeLinear; ConvInteger on a
 * dynamically quantized input with per-channel weight zero points, and Cast of its int32
 * output; QLinearConv with per-channel scales and int32 bias, plain, dequantizing through a
 * SiLU table and requantizing (the forms graph/qdq.c folds), 1-D, grouped, odd shapes, weight
 * zero points; then real layer shapes (3x3 s1/s2, 1x1, channels not a multiple of 32, the RGB
 * layer, the dynamic exports' uint8 weights with zero points); each integer conv must take the
 * kernel expected of it (the tensor cores for 2-D ungrouped convs on sm_80+);
 * MatMulInteger and QLinearMatMul with broadcast batches and per-column parameters; the
 * com.microsoft QLinearAdd / Mul / Concat / Sigmoid / LeakyRelu / GlobalAveragePool; int8 data
 * moved by Reshape, Transpose, Split, Slice, Concat, MaxPool and nearest Resize, and wrapped by
 * Add / Mul / Div (with a divisor of 0 among the constants).
 *
 * With the real int8 exports present (../shared/real-models/ultralytics-int8, or
 * $SHOAL_REAL_MODELS/ultralytics-int8, with their ONNX Runtime outputs unpacked from
 * golden/g_ultralytics_int8.tgz by the conformance fixture, or into $SHOAL_GOLDEN), each
 * runs on CUDA against ONNX Runtime's outputs: relative L2 <= 5e-2 (the float parts of these
 * graphs run in fp16 on the device, and the dynamically quantized ones requantize every
 * activation with its own range, so an fp16 rounding moves codes; the CPU backend's fp32 run
 * meets 1e-4). Exits 77 without a CUDA device. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "graph/passes.h"
#include "import/onnx_import.h"
#include "import/tensor_pb.h"
#include "harness.h"

/* The CPU backend's im2col integer convolution (cpu_impl.h CPU_CONV_BLAS; test hook). */
void sh_backend_cpu_set_conv_impl(sh_backend *b, int impl);
#define CPU_IMPL_IM2COL 1

static sh_graph *G;
static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 32);
}

#define SH(...) ((const int64_t[]){__VA_ARGS__}), (int)(sizeof((const int64_t[]){__VA_ARGS__}) / 8)
#define IN(...) ((const int[]){__VA_ARGS__}), (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static int T(const char *name, sh_dtype dt, const int64_t *d, int nd)
{
    sh_shape s = {.ndim = nd};
    for (int i = 0; i < nd; i++)
        s.d[i] = d[i];
    return sh_graph_add_tensor(G, name, dt, &s);
}

/* A constant of random codes of dt in [lo, hi]. */
static int CQ(const char *name, sh_dtype dt, const int64_t *d, int nd, int lo, int hi)
{
    int t = T(name, dt, d, nd);
    int64_t n = sh_shape_numel(&G->tensors[t].shape);
    size_t es = sh_dtype_size(dt);
    unsigned char *v = malloc((size_t)(n ? n : 1) * es);
    for (int64_t i = 0; i < n; i++) {
        int32_t x = lo + (int32_t)(rnd() % (uint32_t)(hi - lo + 1));
        if (dt == SH_DT_INT32)
            memcpy(v + i * 4, &x, 4);
        else
            v[i] = (unsigned char)(dt == SH_DT_INT8 ? (uint8_t)(int8_t)x : (uint8_t)x);
    }
    sh_graph_set_const(G, t, v, (size_t)n * es, NULL);
    free(v);
    return t;
}

/* A float32 constant of n values in [lo, hi] (a scale vector). */
static int CFV(const char *name, int64_t n, float lo, float hi)
{
    int t = T(name, SH_DT_FLOAT32, SH(n));
    float *v = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++)
        v[i] = lo + (hi - lo) * (float)(rnd() % 1000) / 999.f;
    sh_graph_set_const(G, t, v, (size_t)n * 4, NULL);
    free(v);
    return t;
}

static int CS(const char *name, float v)
{
    int t = T(name, SH_DT_FLOAT32, NULL, 0);
    sh_graph_set_const(G, t, &v, 4, NULL);
    return t;
}

static int CZ(const char *name, sh_dtype dt, int v)
{
    int t = T(name, dt, NULL, 0);
    unsigned char b = (unsigned char)v;
    sh_graph_set_const(G, t, &b, 1, NULL);
    return t;
}

static int N(sh_op op, const int *in, int nin, const int *out, int nout)
{
    static int counter;
    char name[32];
    snprintf(name, sizeof name, "q%d", counter++);
    int k = sh_graph_add_node(G, name, op, in, nin, out, nout);
    G->nodes[k].opset = sh_op_is_ms_contrib(op) ? 1 : 13;
    return k;
}

/* x (float graph input) quantized per tensor into codes of dt. */
static int quantized_input(const char *name, sh_dtype dt, const int64_t *d, int nd, float scale, int zp)
{
    char b[64];
    int x = T(name, SH_DT_FLOAT32, d, nd);
    snprintf(b, sizeof b, "%s_q", name);
    int q = T(b, dt, d, nd);
    snprintf(b, sizeof b, "%s_s", name);
    int s = CS(b, scale);
    snprintf(b, sizeof b, "%s_z", name);
    N(SH_OP_QUANTIZE_LINEAR, IN(x, s, CZ(b, dt, zp)), &q, 1);
    return q;
}

/* --- cases --------------------------------------------------------------------------------- */
static void b_qdq(void)
{
    int x = T("x", SH_DT_FLOAT32, SH(2, 5, 3, 7));
    int qa = T("qa", SH_DT_INT8, SH(2, 5, 3, 7)), qt = T("qt", SH_DT_UINT8, SH(2, 5, 3, 7));
    int ya = T("ya", SH_DT_FLOAT32, SH(2, 5, 3, 7)), yt = T("yt", SH_DT_FLOAT32, SH(2, 5, 3, 7));
    int za = CQ("za", SH_DT_INT8, SH(5), -20, 20);
    int sa = CFV("sa", 5, 0.004f, 0.03f);
    int k = N(SH_OP_QUANTIZE_LINEAR, IN(x, sa, za), &qa, 1);
    sh_node_set_int(G, k, "axis", 1);
    k = N(SH_OP_DEQUANTIZE_LINEAR, IN(qa, sa, za), &ya, 1);
    sh_node_set_int(G, k, "axis", -3);
    int st = CS("st", 0.011f), zt = CZ("zt", SH_DT_UINT8, 120);
    N(SH_OP_QUANTIZE_LINEAR, IN(x, st, zt), &qt, 1);
    N(SH_OP_DEQUANTIZE_LINEAR, IN(qt, st, zt), &yt, 1);
    int b32 = CQ("b32", SH_DT_INT32, SH(7), -100000, 100000), y32 = T("y32", SH_DT_FLOAT32, SH(7));
    N(SH_OP_DEQUANTIZE_LINEAR, IN(b32, CS("s32", 0.00037f)), &y32, 1);
    sh_graph_set_inputs(G, &x, 1);
    sh_graph_set_outputs(G, IN(qa, ya, qt, yt, y32));
}

static void b_dynamic(void)
{
    int x = T("x", SH_DT_FLOAT32, SH(1, 8, 13, 11));
    int y = T("y", SH_DT_UINT8, SH(1, 8, 13, 11)), s = T("s", SH_DT_FLOAT32, NULL, 0),
        z = T("z", SH_DT_UINT8, NULL, 0);
    N(SH_OP_DYNAMIC_QUANTIZE_LINEAR, IN(x), IN(y, s, z));
    sh_graph_set_inputs(G, &x, 1);
    sh_graph_set_outputs(G, IN(y, s, z));
}

/* One integer convolution. form: 0 QLinearConv codes, 1 dequantizing through a SiLU table,
 * 2 requantizing (SiLU) to uint8, 3 ConvInteger on DynamicQuantizeLinear with Cast to float. */
typedef struct qc_case {
    int n, c, h, w, m, k, s, pad, group;
    bool one_d, per_channel;
    bool wzp;       /* int8 weights with non-zero zero points (uint8 weights always have them) */
    sh_dtype xdt, wdt;
    int form;
} qc_case;
static qc_case QC;

static void b_qconv(void)
{
    const qc_case *q = &QC;
    int h = q->one_d ? 1 : q->h, kh = q->one_d ? 1 : q->k;
    int oh = (h + 2 * (q->one_d ? 0 : q->pad) - kh) / q->s + 1, ow = (q->w + 2 * q->pad - q->k) / q->s + 1;
    int nd = q->one_d ? 3 : 4, cg = q->c / q->group;
    int64_t xd[4] = {q->n, q->c, h, q->w}, wd[4] = {q->m, cg, kh, q->k}, yd[4] = {q->n, q->m, oh, ow};
    if (q->one_d) {
        xd[2] = q->w;
        wd[2] = q->k;
        yd[2] = ow;
    }
    int x = T("x", SH_DT_FLOAT32, xd, nd), xq, xs = -1, xz;
    int wlo = q->wdt == SH_DT_INT8 ? -127 : 0, whi = q->wdt == SH_DT_INT8 ? 127 : 255;
    int w = CQ("w", q->wdt, wd, nd, wlo, whi);
    int zlo = q->wdt == SH_DT_UINT8 ? 120 : q->wzp ? -9 : 0, zhi = q->wdt == SH_DT_UINT8 ? 136 : q->wzp ? 9 : 0;
    int wz = q->per_channel ? CQ("wz", q->wdt, SH(q->m), zlo, zhi) : CZ("wz", q->wdt, q->wzp ? 3 : (zlo + zhi) / 2);
    int y, k;
    if (q->form == 3) {
        xq = T("xq", SH_DT_UINT8, xd, nd);
        xs = T("xs", SH_DT_FLOAT32, NULL, 0);
        xz = T("xz", SH_DT_UINT8, NULL, 0);
        N(SH_OP_DYNAMIC_QUANTIZE_LINEAR, IN(x), IN(xq, xs, xz));
        y = T("y", SH_DT_INT32, yd, nd);
        k = N(SH_OP_CONV_INTEGER, IN(xq, w, xz, wz), &y, 1);
        G->nodes[k].opset = 10;
    } else {
        xs = CS("xs", 0.02f);
        xz = CZ("xz", q->xdt, q->xdt == SH_DT_UINT8 ? 131 : -3);
        xq = T("xq", q->xdt, xd, nd);
        N(SH_OP_QUANTIZE_LINEAR, IN(x, xs, xz), &xq, 1);
        int ws = q->per_channel ? CFV("ws", q->m, 0.002f, 0.05f) : CS("ws", 0.01f);
        int ys = CS("ys", 0.9f), b = CQ("b", SH_DT_INT32, SH(q->m), -5000, 5000);
        sh_dtype code = q->form == 0 ? q->xdt : SH_DT_UINT8;
        int yz = CZ("yz", code, code == SH_DT_UINT8 ? 100 : 5);
        if (q->form == 0) {
            y = T("y", code, yd, nd);
            k = N(SH_OP_QLINEAR_CONV, IN(xq, xs, xz, w, ws, wz, ys, yz, b), &y, 1);
        } else if (q->form == 1) {
            y = T("y", SH_DT_FLOAT32, yd, nd);
            k = N(SH_OP_QLINEAR_CONV, IN(xq, xs, xz, w, ws, wz, ys, yz, b), &y, 1);
            sh_node_set_int(G, k, SH_QCONV_DEQUANTIZE, 1);
        } else {
            y = T("y", SH_DT_UINT8, yd, nd);
            k = N(SH_OP_QLINEAR_CONV, IN(xq, xs, xz, w, ws, wz, ys, yz, b, CS("qs", 0.05f), CZ("qz", SH_DT_UINT8, 7)), &y,
                  1);
            sh_node_set_int(G, k, SH_QCONV_DEQUANTIZE, 1);
            sh_node_set_int(G, k, SH_QCONV_REQUANTIZE, 1);
        }
        if (q->form != 0)
            G->nodes[k].act = SH_ACT_SILU;
        G->nodes[k].opset = 10;
    }
    int64_t pads[4] = {q->pad, q->pad, q->pad, q->pad};
    sh_node_set_ints(G, k, "pads", pads, q->one_d ? 2 : 4);
    sh_node_set_ints(G, k, "strides", (int64_t[]){q->s, q->s}, q->one_d ? 1 : 2);
    sh_node_set_ints(G, k, "kernel_shape", (int64_t[]){q->k, q->k}, q->one_d ? 1 : 2);
    sh_node_set_int(G, k, "group", q->group);
    sh_graph_set_inputs(G, &x, 1);
    if (q->form == 3) {
        int yf = T("yf", SH_DT_FLOAT32, yd, nd);
        int kc = N(SH_OP_CAST, &y, 1, &yf, 1);
        sh_node_set_int(G, kc, "to", 1);
        sh_graph_set_outputs(G, IN(y, yf, xq, xs, xz));
    } else {
        sh_graph_set_outputs(G, IN(y, xq));
    }
}

#define QCONV(fn, ...)                                                                                       \
    static void fn(void)                                                                                     \
    {                                                                                                        \
        QC = (qc_case){__VA_ARGS__};                                                                         \
        b_qconv();                                                                                           \
    }
/* odd shapes, both dtypes, per tensor / per channel, groups, 1-D, the folded forms */
QCONV(b_qc_u8_3x3s2, .n = 1, .c = 5, .h = 13, .w = 11, .m = 7, .k = 3, .s = 2, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 0)
QCONV(b_qc_i8_grouped, .n = 2, .c = 6, .h = 9, .w = 10, .m = 9, .k = 3, .s = 1, .pad = 1, .group = 3,
      .per_channel = true, .wzp = true, .xdt = SH_DT_INT8, .wdt = SH_DT_INT8, .form = 0)
QCONV(b_qc_i8_wzp, .n = 1, .c = 17, .h = 9, .w = 10, .m = 9, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .wzp = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 0)
QCONV(b_qc_u8w_pt, .n = 1, .c = 4, .h = 7, .w = 7, .m = 5, .k = 1, .s = 1, .pad = 0, .group = 1,
      .per_channel = false, .xdt = SH_DT_UINT8, .wdt = SH_DT_UINT8, .form = 0)
QCONV(b_qc_1d, .n = 1, .c = 3, .h = 1, .w = 17, .m = 4, .k = 5, .s = 2, .pad = 2, .group = 1, .one_d = true,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 0)
QCONV(b_qc_deq_silu, .n = 1, .c = 7, .h = 12, .w = 9, .m = 6, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 1)
QCONV(b_qc_req_silu, .n = 1, .c = 7, .h = 12, .w = 9, .m = 6, .k = 3, .s = 2, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 2)
QCONV(b_ci_dyn, .n = 1, .c = 5, .h = 11, .w = 13, .m = 8, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_UINT8, .form = 3)
QCONV(b_ci_dyn_s8w, .n = 1, .c = 16, .h = 10, .w = 10, .m = 12, .k = 3, .s = 2, .pad = 1, .group = 4,
      .per_channel = false, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 3)
QCONV(b_ci_dyn_tc, .n = 2, .c = 20, .h = 15, .w = 17, .m = 70, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = false, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 3)
/* real layer shapes (yolov8n at 640): what the tensor-core kernel takes */
QCONV(b_real_3x3s1, .n = 1, .c = 64, .h = 80, .w = 80, .m = 64, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 2)
QCONV(b_real_3x3s2, .n = 1, .c = 32, .h = 160, .w = 160, .m = 64, .k = 3, .s = 2, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 1)
QCONV(b_real_1x1, .n = 1, .c = 128, .h = 40, .w = 40, .m = 64, .k = 1, .s = 1, .pad = 0, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 2)
QCONV(b_real_c48, .n = 1, .c = 48, .h = 40, .w = 40, .m = 80, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 0)
QCONV(b_real_rgb, .n = 1, .c = 3, .h = 320, .w = 320, .m = 16, .k = 3, .s = 2, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_INT8, .form = 2)
QCONV(b_real_ci_u8w, .n = 1, .c = 64, .h = 40, .w = 40, .m = 64, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_UINT8, .wdt = SH_DT_UINT8, .form = 3)
QCONV(b_real_c144_i8, .n = 1, .c = 144, .h = 20, .w = 20, .m = 80, .k = 3, .s = 1, .pad = 1, .group = 1,
      .per_channel = true, .xdt = SH_DT_INT8, .wdt = SH_DT_INT8, .form = 0)

static void matmul(bool qlinear, sh_dtype adt, sh_dtype bdt)
{
    int a = qlinear ? quantized_input("a", adt, SH(4, 9), 0.03f, adt == SH_DT_UINT8 ? 128 : 2)
                    : quantized_input("a", adt, SH(2, 1, 5, 9), 0.03f, adt == SH_DT_UINT8 ? 128 : 2);
    int b = qlinear ? CQ("b", bdt, SH(9, 6), bdt == SH_DT_INT8 ? -127 : 0, bdt == SH_DT_INT8 ? 127 : 255)
                    : CQ("b", bdt, SH(3, 9, 6), bdt == SH_DT_INT8 ? -127 : 0, bdt == SH_DT_INT8 ? 127 : 255);
    int bz = CQ("bz", bdt, SH(6), bdt == SH_DT_INT8 ? -5 : 120, bdt == SH_DT_INT8 ? 5 : 136);
    int y;
    if (qlinear) {
        y = T("y", SH_DT_UINT8, SH(4, 6));
        N(SH_OP_QLINEAR_MATMUL,
          IN(a, CS("as", 0.03f), CZ("az", adt, adt == SH_DT_UINT8 ? 128 : 2), b, CFV("bs", 6, 0.001f, 0.02f), bz,
             CS("ys", 0.05f), CZ("yz", SH_DT_UINT8, 110)),
          &y, 1);
    } else {
        y = T("y", SH_DT_INT32, SH(2, 3, 5, 6));
        N(SH_OP_MATMUL_INTEGER, IN(a, b, CZ("az", adt, adt == SH_DT_UINT8 ? 128 : 2), bz), &y, 1);
    }
    sh_graph_set_inputs(G, IN(sh_graph_find_tensor(G, "a")));
    sh_graph_set_outputs(G, &y, 1);
}
static void b_mmi(void) { matmul(false, SH_DT_UINT8, SH_DT_INT8); }
static void b_mmi_s8(void) { matmul(false, SH_DT_INT8, SH_DT_UINT8); }
static void b_qmm(void) { matmul(true, SH_DT_UINT8, SH_DT_INT8); }

static void binary(sh_op op, sh_dtype dt)
{
    int a = quantized_input("a", dt, SH(1, 4, 5, 6), 0.02f, dt == SH_DT_UINT8 ? 128 : -4);
    int b = quantized_input("b", dt, SH(1, 4, 1, 1), 0.013f, dt == SH_DT_UINT8 ? 100 : 7);
    int y = T("y", dt, SH(1, 4, 5, 6));
    N(op,
      IN(a, CS("as", 0.02f), CZ("az", dt, dt == SH_DT_UINT8 ? 128 : -4), b, CS("bs", 0.013f),
         CZ("bz", dt, dt == SH_DT_UINT8 ? 100 : 7), CS("cs", op == SH_OP_QLINEAR_ADD ? 0.025f : 0.011f),
         CZ("cz", dt, dt == SH_DT_UINT8 ? 90 : 1)),
      &y, 1);
    sh_graph_set_inputs(G, IN(sh_graph_find_tensor(G, "a"), sh_graph_find_tensor(G, "b")));
    sh_graph_set_outputs(G, &y, 1);
}
static void b_qadd_u8(void) { binary(SH_OP_QLINEAR_ADD, SH_DT_UINT8); }
static void b_qadd_i8(void) { binary(SH_OP_QLINEAR_ADD, SH_DT_INT8); }
static void b_qmul_u8(void) { binary(SH_OP_QLINEAR_MUL, SH_DT_UINT8); }
static void b_qmul_i8(void) { binary(SH_OP_QLINEAR_MUL, SH_DT_INT8); }

static void b_qconcat(void)
{
    int a = quantized_input("a", SH_DT_UINT8, SH(1, 2, 3, 5), 0.02f, 128);
    int b = quantized_input("b", SH_DT_UINT8, SH(1, 4, 3, 5), 0.03f, 120);
    int c = quantized_input("c", SH_DT_UINT8, SH(1, 1, 3, 5), 0.025f, 125);
    int y = T("y", SH_DT_UINT8, SH(1, 7, 3, 5));
    /* c has the output's scale and zero point: copied, the others through tables */
    int k = N(SH_OP_QLINEAR_CONCAT,
              IN(CS("ys", 0.025f), CZ("yz", SH_DT_UINT8, 125), a, CS("as", 0.02f), CZ("az", SH_DT_UINT8, 128), b,
                 CS("bs", 0.03f), CZ("bz", SH_DT_UINT8, 120), c, CS("cs", 0.025f), CZ("cz", SH_DT_UINT8, 125)),
              &y, 1);
    sh_node_set_int(G, k, "axis", 1);
    sh_graph_set_inputs(G, IN(sh_graph_find_tensor(G, "a"), sh_graph_find_tensor(G, "b"), sh_graph_find_tensor(G, "c")));
    sh_graph_set_outputs(G, &y, 1);
}

static void lut(sh_op op, sh_dtype dt)
{
    int x = quantized_input("x", dt, SH(1, 3, 16, 16), 0.06f, dt == SH_DT_UINT8 ? 128 : 0);
    int y = T("y", dt, SH(1, 3, 16, 16));
    int k = N(op, IN(x, CS("xs", 0.06f), CZ("xz", dt, dt == SH_DT_UINT8 ? 128 : 0), CS("ys", 0.004f),
                     CZ("yz", dt, dt == SH_DT_UINT8 ? 0 : -128)),
              &y, 1);
    if (op == SH_OP_QLINEAR_LEAKY_RELU)
        sh_node_set_float(G, k, "alpha", 0.1f);
    sh_graph_set_inputs(G, IN(sh_graph_find_tensor(G, "x")));
    sh_graph_set_outputs(G, &y, 1);
}
static void b_qsigmoid_u8(void) { lut(SH_OP_QLINEAR_SIGMOID, SH_DT_UINT8); }
static void b_qsigmoid_i8(void) { lut(SH_OP_QLINEAR_SIGMOID, SH_DT_INT8); }
static void b_qleaky_u8(void) { lut(SH_OP_QLINEAR_LEAKY_RELU, SH_DT_UINT8); }

static void gap(bool channels_last)
{
    const int64_t *d = channels_last ? (const int64_t[]){1, 7, 9, 6} : (const int64_t[]){1, 6, 7, 9};
    int x = quantized_input("x", SH_DT_UINT8, d, 4, 0.02f, 128);
    int y = channels_last ? T("y", SH_DT_UINT8, SH(1, 1, 1, 6)) : T("y", SH_DT_UINT8, SH(1, 6, 1, 1));
    int k = N(SH_OP_QLINEAR_GLOBAL_AVERAGE_POOL,
              IN(x, CS("xs", 0.02f), CZ("xz", SH_DT_UINT8, 128), CS("ys", 0.003f), CZ("yz", SH_DT_UINT8, 128)), &y, 1);
    sh_node_set_int(G, k, "channels_last", channels_last);
    sh_graph_set_inputs(G, IN(sh_graph_find_tensor(G, "x")));
    sh_graph_set_outputs(G, &y, 1);
}
static void b_qgap(void) { gap(false); }
static void b_qgap_cl(void) { gap(true); }

/* int8 codes moved the way QOperator graphs move them between QLinear ops */
static void b_moves(void)
{
    int q = quantized_input("x", SH_DT_UINT8, SH(1, 6, 8, 8), 0.02f, 128);
    int s0 = T("s0", SH_DT_UINT8, SH(1, 2, 8, 8)), s1 = T("s1", SH_DT_UINT8, SH(1, 4, 8, 8));
    int64_t sizes[2] = {2, 4};
    int sp = T("sizes", SH_DT_INT64, SH(2));
    sh_graph_set_const(G, sp, sizes, sizeof sizes, NULL);
    int k = N(SH_OP_SPLIT, IN(q, sp), IN(s0, s1));
    sh_node_set_int(G, k, "axis", 1);
    int tp = T("tp", SH_DT_UINT8, SH(1, 8, 8, 4));
    k = N(SH_OP_TRANSPOSE, &s1, 1, &tp, 1);
    sh_node_set_ints(G, k, "perm", (int64_t[]){0, 2, 3, 1}, 4);
    int mp = T("mp", SH_DT_UINT8, SH(1, 6, 8, 8));
    k = N(SH_OP_MAX_POOL, &q, 1, &mp, 1);
    sh_node_set_ints(G, k, "kernel_shape", (int64_t[]){5, 5}, 2);
    sh_node_set_ints(G, k, "pads", (int64_t[]){2, 2, 2, 2}, 4);
    int64_t shp[3] = {1, 6, 64};
    int rs_shape = T("rs_shape", SH_DT_INT64, SH(3));
    sh_graph_set_const(G, rs_shape, shp, sizeof shp, NULL);
    int rs = T("rs", SH_DT_UINT8, SH(1, 6, 64));
    N(SH_OP_RESHAPE, IN(mp, rs_shape), &rs, 1);
    int64_t st[1] = {5}, en[1] = {40}, ax[1] = {2};
    int sst = T("sst", SH_DT_INT64, SH(1)), sen = T("sen", SH_DT_INT64, SH(1)), sax = T("sax", SH_DT_INT64, SH(1));
    sh_graph_set_const(G, sst, st, 8, NULL);
    sh_graph_set_const(G, sen, en, 8, NULL);
    sh_graph_set_const(G, sax, ax, 8, NULL);
    int sl = T("sl", SH_DT_UINT8, SH(1, 6, 35));
    N(SH_OP_SLICE, IN(rs, sst, sen, sax), &sl, 1);
    int cc = T("cc", SH_DT_UINT8, SH(1, 12, 8, 8));
    k = N(SH_OP_CONCAT, IN(mp, q), &cc, 1);
    sh_node_set_int(G, k, "axis", 1);
    int st4 = T("st4", SH_DT_FLOAT32, SH(4));
    sh_graph_set_const(G, st4, (float[]){1, 1, 2, 2}, 16, NULL);
    int rz = T("rz", SH_DT_UINT8, SH(1, 6, 16, 16)), rh = T("rh", SH_DT_UINT8, SH(1, 6, 16, 16));
    k = N(SH_OP_RESIZE, IN(q, -1, st4), &rz, 1);
    sh_node_set_string(G, k, "mode", "nearest");
    sh_node_set_string(G, k, "coordinate_transformation_mode", "asymmetric");
    sh_node_set_string(G, k, "nearest_mode", "floor");
    k = N(SH_OP_RESIZE, IN(q, -1, st4), &rh, 1);
    sh_node_set_string(G, k, "mode", "nearest");
    /* the element-wise arithmetic QOperator graphs keep on codes: wraps modulo 256 */
    int ad = T("ad", SH_DT_UINT8, SH(1, 6, 8, 8)), ml = T("ml", SH_DT_UINT8, SH(1, 6, 8, 8)),
        dv = T("dv", SH_DT_UINT8, SH(1, 6, 8, 8));
    N(SH_OP_ADD, IN(mp, q), &ad, 1);
    N(SH_OP_MUL, IN(q, CQ("mc", SH_DT_UINT8, SH(1, 6, 1, 1), 0, 9)), &ml, 1);
    N(SH_OP_DIV, IN(mp, CQ("dc", SH_DT_UINT8, SH(1, 1, 1, 8), 0, 7)), &dv, 1);
    sh_graph_set_inputs(G, IN(sh_graph_find_tensor(G, "x")));
    sh_graph_set_outputs(G, IN(s0, tp, sl, cc, rz, rh, ad, ml, dv));
}

typedef struct qcase {
    const char *name;
    void (*build)(void);
    float lo, hi;   /* float inputs */
    bool tc;        /* its integer convolution must run on the int8 tensor cores (sm_80+) */
} qcase;

static const qcase cases[] = {
    {"qdq_axis_i8_tensor_u8_i32", b_qdq, -3.f, 3.f, false},
    {"dynamic_quantize", b_dynamic, -2.f, 5.f, false},
    {"qlinearconv_u8_3x3s2_pc", b_qc_u8_3x3s2, -3.f, 3.f, true},
    {"qlinearconv_i8_grouped", b_qc_i8_grouped, -3.f, 3.f, false},
    {"qlinearconv_weight_zero_points", b_qc_i8_wzp, -3.f, 3.f, true},
    {"qlinearconv_u8w_1x1_pt", b_qc_u8w_pt, -3.f, 3.f, true},
    {"qlinearconv_1d", b_qc_1d, -3.f, 3.f, false},
    {"qlinearconv_dequant_silu", b_qc_deq_silu, -3.f, 3.f, true},
    {"qlinearconv_requant_silu", b_qc_req_silu, -3.f, 3.f, true},
    {"convinteger_dynamic_cast", b_ci_dyn, -1.f, 4.f, true},
    {"convinteger_s8w_grouped", b_ci_dyn_s8w, -1.f, 4.f, false},
    {"convinteger_s8w_tc", b_ci_dyn_tc, -1.f, 4.f, true},
    {"real_3x3s1_c64_requant", b_real_3x3s1, -3.f, 3.f, true},
    {"real_3x3s2_c32_dequant", b_real_3x3s2, -3.f, 3.f, true},
    {"real_1x1_c128_requant", b_real_1x1, -3.f, 3.f, true},
    {"real_3x3_c48_m80", b_real_c48, -3.f, 3.f, true},
    {"real_rgb_3x3s2_c3", b_real_rgb, 0.f, 3.f, true},
    {"real_3x3_c144_i8", b_real_c144_i8, -3.f, 3.f, true},
    {"real_convinteger_u8w_zp", b_real_ci_u8w, -1.f, 4.f, true},
    {"matmulinteger_u8s8_bcast", b_mmi, -4.f, 4.f, false},
    {"matmulinteger_s8u8_bcast", b_mmi_s8, -4.f, 4.f, false},
    {"qlinearmatmul_pc", b_qmm, -4.f, 4.f, false},
    {"qlinearadd_u8_bcast", b_qadd_u8, -3.f, 3.f, false},
    {"qlinearadd_i8_bcast", b_qadd_i8, -3.f, 3.f, false},
    {"qlinearmul_u8_bcast", b_qmul_u8, -3.f, 3.f, false},
    {"qlinearmul_i8_bcast", b_qmul_i8, -3.f, 3.f, false},
    {"qlinearconcat", b_qconcat, -3.f, 3.f, false},
    {"qlinearsigmoid_u8", b_qsigmoid_u8, -9.f, 9.f, false},
    {"qlinearsigmoid_i8", b_qsigmoid_i8, -9.f, 9.f, false},
    {"qlinearleakyrelu_u8", b_qleaky_u8, -9.f, 9.f, false},
    {"qlinearglobalavgpool", b_qgap, -3.f, 3.f, false},
    {"qlinearglobalavgpool_nhwc", b_qgap_cl, -3.f, 3.f, false},
    {"int8_moves_resize_wrapping_arith", b_moves, -3.f, 3.f, false},
};

/* --- running ------------------------------------------------------------------------------- */
static size_t tensor_bytes(const sh_graph *g, int t)
{
    return (size_t)sh_shape_numel(&g->tensors[t].shape) * sh_dtype_size(g->tensors[t].dtype);
}

/* Uploads the float inputs, fills every output with `poison`, runs, downloads the outputs. */
static int q_exec(hx_run *r, float *const *in, void **out, int poison, sh_err *err)
{
    const sh_graph *g = r->g;
    int rc;
    for (int i = 0; i < g->n_inputs; i++)
        if ((rc = r->b->iface->upload(r->b->ctx, r->tp[g->inputs[i]], in[i], tensor_bytes(g, g->inputs[i]), err)))
            return rc;
    for (int i = 0; i < g->n_outputs; i++) {
        size_t n = tensor_bytes(g, g->outputs[i]);
        void *p = malloc(n ? n : 1);
        memset(p, poison, n);
        rc = r->b->iface->upload(r->b->ctx, r->tp[g->outputs[i]], p, n, err);
        free(p);
        if (rc)
            return rc;
    }
    if ((rc = r->b->iface->run(r->b->ctx, r->p, r->tp, r->wp, 1, err)))
        return rc;
    for (int i = 0; i < g->n_outputs; i++)
        if ((rc = r->b->iface->download(r->b->ctx, out[i], r->tp[g->outputs[i]], tensor_bytes(g, g->outputs[i]), err)))
            return rc;
    return 0;
}

/* Elements of output i that differ: integers exactly, floats beyond 1e-6 relative (or not
 * finite where the reference is). */
static long mismatches(const sh_tensor *t, const void *got, const void *ref, double *worst_rel)
{
    int64_t n = sh_shape_numel(&t->shape);
    long bad = 0;
    if (t->dtype == SH_DT_FLOAT32) {
        const float *a = got, *b = ref;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)a[i] - b[i]), rel = d / (fabs(b[i]) > 1e-30 ? fabs(b[i]) : 1e-30);
            if (!isfinite(a[i]) || (d > 0 && rel > 1e-6))
                bad++;
            if (isfinite(a[i]) && d > 0 && rel > *worst_rel)
                *worst_rel = rel;
        }
        return bad;
    }
    size_t es = sh_dtype_size(t->dtype);
    for (int64_t i = 0; i < n; i++)
        bad += memcmp((const char *)got + i * es, (const char *)ref + i * es, es) != 0;
    return bad;
}

static int run_case(sh_backend *cpu, sh_backend *gpu, const qcase *qc)
{
    sh_err err = {0};
    G = sh_graph_create(NULL, qc->name);
    G->opset = 13;
    qc->build();
    if (sh_graph_finalize(G, &err)) {
        printf("%-40s build: %s\n", qc->name, err.msg);
        sh_graph_destroy(G);
        return 1;
    }
    enum { MAXIO = 16 };
    float *in[MAXIO] = {0};
    void *oc[MAXIO] = {0}, *og[MAXIO] = {0};
    if (G->n_inputs > MAXIO || G->n_outputs > MAXIO) {
        printf("%-40s build: more than %d inputs or outputs\n", qc->name, MAXIO);
        sh_graph_destroy(G);
        return 1;
    }
    for (int i = 0; i < G->n_inputs; i++) {
        size_t n = (size_t)sh_shape_numel(&G->tensors[G->inputs[i]].shape);
        in[i] = malloc(n * 4);
        for (size_t j = 0; j < n; j++)
            in[i][j] = hx_rand(qc->lo, qc->hi);
    }
    for (int i = 0; i < G->n_outputs; i++) {
        size_t n = tensor_bytes(G, G->outputs[i]);
        oc[i] = malloc(n ? n : 1);
        og[i] = malloc(n ? n : 1);
    }
    hx_run rcpu = {0}, rgpu = {0};
    const char *why = NULL;
    long bad = 0, total = 0;
    double worst = 0;
    if (hx_prepare(&rcpu, cpu, G, &err) || q_exec(&rcpu, in, oc, 0x7f, &err)) {
        why = "cpu";
    } else if (hx_prepare(&rgpu, gpu, G, &err)) {
        why = "cuda compile";
    } else {
        /* two runs, two poisons (0xa5, then 0x5a): the second replays the captured graph */
        for (int run = 0; run < 2 && !why; run++) {
            if (q_exec(&rgpu, in, og, run ? 0x5a : 0xa5, &err)) {
                why = "cuda run";
                break;
            }
            for (int i = 0; i < G->n_outputs; i++) {
                const sh_tensor *t = &G->tensors[G->outputs[i]];
                bad += mismatches(t, og[i], oc[i], &worst);
                total += run == 0 ? (long)sh_shape_numel(&t->shape) : 0;
            }
        }
    }
    /* which kernel each integer convolution took: the tensor cores where the case needs them
     * (unless the device predates them), and the direct kernel for the rest */
    const char *path = NULL;
    bool path_ok = true;
    for (int k = 0; !why && k < G->n_nodes; k++) {
        const char *pk = sh_backend_cuda_node_path(rgpu.p, k);
        if (!pk)
            continue;
        path = pk;
        bool tc = !strncmp(pk, "int8 tensor cores", 17);
        path_ok &= qc->tc ? tc || strstr(pk, "compute capability") != NULL : !tc;
    }
    bool ok = !why && bad == 0 && path_ok;
    if (path)
        printf("%-40s kernel: %s%s\n", qc->name, path, path_ok ? "" : " (FAIL: not the expected kernel)");
    if (why)
        printf("%-40s FAIL %s: %s\n", qc->name, why, err.msg);
    else
        printf("%-40s %8ld elements, %ld differ (worst float rel %.1e) %s\n", qc->name, total, bad, worst,
               ok ? "ok" : "FAIL");
    hx_release(&rcpu);
    hx_release(&rgpu);
    for (int i = 0; i < MAXIO; i++) {
        free(in[i]);
        free(oc[i]);
        free(og[i]);
    }
    sh_graph_destroy(G);
    return ok ? 0 : 1;
}

/* --- the real int8 exports against ONNX Runtime ---------------------------------------------- */
#define REAL_MAX_REL_L2 5e-2

static int real_model(sh_backend *gpu, const char *name, const char *model, const char *golden)
{
    sh_err err = {0};
    sh_graph *g = NULL;
    char p[4200];
    if (sh_onnx_load_file(NULL, model, &g, &err)) {
        printf("%-40s import: %s\n", name, err.msg);
        return 1;
    }
    sh_optimize_params op = sh_optimize_default_params();
    if (sh_graph_optimize(g, &op, &err)) {
        printf("%-40s optimize: %s\n", name, err.msg);
        sh_graph_destroy(g);
        return 1;
    }
    int bad = 0;
    float *in[8] = {0}, *out[8] = {0}, *ref[8] = {0};
    size_t nout[8] = {0};
    for (int i = 0; i < g->n_inputs && i < 8 && !bad; i++) {
        sh_dtype dt;
        sh_shape s;
        size_t nb;
        void *data = NULL;
        snprintf(p, sizeof p, "%s/test_data_set_0/input_%d.pb", golden, i);
        if (sh_tensor_pb_load_file(NULL, p, &dt, &s, &data, &nb, NULL, 0, &err) || dt != SH_DT_FLOAT32 ||
            nb != tensor_bytes(g, g->inputs[i])) {
            printf("%-40s input %d: %s\n", name, i, err.msg[0] ? err.msg : "dtype or size differs");
            bad = 1;
        }
        in[i] = data;
    }
    for (int i = 0; i < g->n_outputs && i < 8 && !bad; i++) {
        sh_dtype dt;
        sh_shape s;
        size_t nb;
        void *data = NULL;
        snprintf(p, sizeof p, "%s/test_data_set_0/output_%d.pb", golden, i);
        if (sh_tensor_pb_load_file(NULL, p, &dt, &s, &data, &nb, NULL, 0, &err) || dt != SH_DT_FLOAT32 ||
            nb != tensor_bytes(g, g->outputs[i])) {
            printf("%-40s output %d: %s\n", name, i, err.msg[0] ? err.msg : "dtype or size differs");
            bad = 1;
        }
        ref[i] = data;
        nout[i] = nb / 4;
        out[i] = malloc(nb ? nb : 1);
    }
    hx_run r = {0};
    if (!bad && (hx_prepare(&r, gpu, g, &err) || hx_exec(&r, in, out, 1, &err))) {
        printf("%-40s cuda: %s\n", name, err.msg);
        bad = 1;
    }
    if (!bad) {
        size_t wq = 0, w16 = 0;
        for (int t = 0; t < g->n_tensors; t++) {
            sh_dtype dt = g->tensors[t].dtype;
            if (dt == SH_DT_INT8 || dt == SH_DT_UINT8)
                wq += r.p->weight_bytes[t];
            else
                w16 += r.p->weight_bytes[t];
        }
        printf("%-40s weights: %.2f MiB int8 codes + %.2f MiB other constants\n", name, wq / 1048576.0,
               w16 / 1048576.0);
        for (int i = 0; i < g->n_outputs && i < 8; i++) {
            double e = hx_rel_l2(out[i], ref[i], nout[i]);
            bool ok = e <= REAL_MAX_REL_L2;
            printf("%-40s output %d vs ONNX Runtime: rel L2 %.3e (bound %.0e) %s\n", name, i, e, REAL_MAX_REL_L2,
                   ok ? "ok" : "FAIL");
            bad |= !ok;
        }
    }
    hx_release(&r);
    /* the .pb loader's buffers come from shoal's allocator (a header in front), out[] from malloc */
    for (int i = 0; i < 8; i++) {
        sh_free(NULL, in[i]);
        free(out[i]);
        sh_free(NULL, ref[i]);
    }
    sh_graph_destroy(g);
    return bad;
}

static int real_models(sh_backend *gpu, int *n_run)
{
    char dir[2048];
    const char *e = getenv("SHOAL_REAL_MODELS"), *gd = getenv("SHOAL_GOLDEN");
    snprintf(dir, sizeof dir, "%s/ultralytics-int8", e ? e : SHOAL_SHARED_DIR "/real-models");
    if (!gd)
        gd = SHOAL_GOLDEN_DIR;
    DIR *d = opendir(dir);
    if (!d) {
        printf("real int8 models: none (no %s)\n", dir);
        return 0;
    }
    int failed = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char model[2400], gold[2400];
        struct stat st;
        snprintf(model, sizeof model, "%s/%s/model.onnx", dir, de->d_name);
        snprintf(gold, sizeof gold, "%s/%s", gd, de->d_name);
        if (de->d_name[0] == '.' || stat(model, &st) || stat(gold, &st)) {
            if (de->d_name[0] != '.')
                printf("%-40s no golden data under %s\n", de->d_name, gd);
            continue;
        }
        failed += real_model(gpu, de->d_name, model, gold);
        (*n_run)++;
    }
    closedir(d);
    return failed;
}

int main(void)
{
    sh_backend_params bp = {.alloc = NULL, .n_threads = 0, .device = 0, .cuda_graphs = true};
    sh_backend gpu, cpu;
    int rc = hx_cuda_or_skip(&gpu, &bp);
    if (rc)
        return rc;
    sh_err err = {0};
    if (sh_backend_cpu_create(&bp, &cpu, &err)) {
        printf("cpu backend: %s\n", err.msg);
        return 1;
    }
    sh_backend_cpu_set_conv_impl(&cpu, CPU_IMPL_IM2COL);
    int failed = 0, n = (int)(sizeof cases / sizeof cases[0]), n_real = 0;
    for (int i = 0; i < n; i++)
        failed += run_case(&cpu, &gpu, &cases[i]);
    int failed_real = real_models(&gpu, &n_real);
    sh_backend_destroy(&cpu);
    sh_backend_destroy(&gpu);
    printf("%d of %d op cases failed; %d of %d real int8 models failed\n", failed, n, failed_real, n_real);
    return failed || failed_real ? 1 : 0;
}
