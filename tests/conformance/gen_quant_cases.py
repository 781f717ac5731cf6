#!/usr/bin/python3
"""Writes tests/conformance/quant/<case>/: small ONNX models of the quantized ops with random
inputs (non-power-of-two scales, non-zero zero points, broadcasting, per-channel weights) and
ONNX Runtime's outputs as the reference, in the ONNX node-test layout `shoal test-onnx` reads.

It covers what Debian's libonnx-testdata does not: the com.microsoft QLinear* ops of
onnxruntime's QOperator format, int8 variants, per-channel QLinearConv, batched integer
matmuls, ties in QuantizeLinear's rounding, and int8 data through Add / MaxPool / Resize.

Usage: gen_quant_cases.py ORT_NODE_MODULES   (a folder holding onnxruntime-node and
onnxruntime-common, e.g. unpacked from `npm pack onnxruntime-node@1.30 onnxruntime-common@1.30`).
Deterministic inputs; rerun after changing it and commit the output. Debian's python3-onnx."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto as TP

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "quant")
rng = np.random.default_rng(20261207)
NP = {TP.UINT8: np.uint8, TP.INT8: np.int8, TP.INT32: np.int32, TP.FLOAT: np.float32}
cases = []


def q(dt, shape):
    info = np.iinfo(NP[dt])
    return rng.integers(info.min, info.max + 1, size=shape, dtype=np.int64).astype(NP[dt])


def scalar(name, dt, v):
    return numpy_helper.from_array(np.array(v, dtype=NP[dt]), name)


def add(name, nodes, inputs, output, inits, opset=13, ms=False):
    """inputs: list of (name, numpy array) fed at run time; output: (name, elem type)."""
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype)
                                                                      if hasattr(helper, "np_dtype_to_tensor_dtype")
                                                                      else onnx.mapping.NP_TYPE_TO_TENSOR_TYPE[a.dtype],
                                                                      a.shape) for n, a in inputs],
                          [helper.make_tensor_value_info(output[0], output[1], None)], inits)
    ops = [helper.make_opsetid("", opset)]
    if ms:
        ops.append(helper.make_opsetid("com.microsoft", 1))
    m = helper.make_model(g, opset_imports=ops, producer_name="shoal-gen-quant")
    m.ir_version = 8
    cases.append((name, m, inputs))


def qbin(op, dt, sa, sb, scales, zps):
    a, b = q(dt, sa), q(dt, sb)
    inits = [scalar("as", TP.FLOAT, scales[0]), scalar("az", dt, zps[0]), scalar("bs", TP.FLOAT, scales[1]),
             scalar("bz", dt, zps[1]), scalar("cs", TP.FLOAT, scales[2]), scalar("cz", dt, zps[2])]
    n = helper.make_node(op, ["A", "as", "az", "B", "bs", "bz", "cs", "cz"], ["Y"], domain="com.microsoft")
    add(f"{op.lower()}_{np.dtype(NP[dt]).name}_{len(sb)}d", [n], [("A", a), ("B", b)], ("Y", dt), inits, ms=True)


def qdq_conv(name, xdt, xshape, wshape, per_channel, bias, pads, strides, group=1):
    m = wshape[0]
    x = (rng.standard_normal(xshape) * 1.7).astype(np.float32)
    xs, xz = np.float32(0.031), (np.uint8(119) if xdt == TP.UINT8 else np.int8(-6))
    w = rng.integers(-127, 128, size=wshape).astype(np.int8)
    ws = (np.linspace(0.002, 0.009, m) if per_channel else np.array([0.0047])).astype(np.float32)
    ys, yz = np.float32(0.087), (np.uint8(131) if xdt == TP.UINT8 else np.int8(3))
    inits = [numpy_helper.from_array(np.array(xs), "xs"), numpy_helper.from_array(np.array(xz), "xz"),
             numpy_helper.from_array(w, "W"), numpy_helper.from_array(ws if per_channel else ws[0], "ws"),
             numpy_helper.from_array(np.array(ys), "ys"), numpy_helper.from_array(np.array(yz), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["Xq"]),
             helper.make_node("DequantizeLinear", ["Xq", "xs", "xz"], ["Xf"]),
             helper.make_node("DequantizeLinear", ["W", "ws"], ["Wf"], axis=0)]
    conv_in = ["Xf", "Wf"]
    if bias:
        bs = (xs * ws).astype(np.float32)   # the float product, as quantizers write it
        inits += [numpy_helper.from_array(rng.integers(-4000, 4000, m).astype(np.int32), "B"),
                  numpy_helper.from_array(bs, "bs")]
        nodes.append(helper.make_node("DequantizeLinear", ["B", "bs"], ["Bf"], axis=0))
        conv_in.append("Bf")
    nodes += [helper.make_node("Conv", conv_in, ["C"], pads=pads, strides=strides, group=group,
                               kernel_shape=wshape[2:]),
              helper.make_node("QuantizeLinear", ["C", "ys", "yz"], ["Y"])]
    add(name, nodes, [("X", x)], ("Y", xdt), inits)


def gen():
    qbin("QLinearAdd", TP.UINT8, [1, 3, 4, 5], [3, 1, 1], [0.0173, 0.0291, 0.0417], [128, 100, 90])
    qbin("QLinearAdd", TP.INT8, [2, 3, 5], [2, 3, 5], [0.05, 0.031, 0.07], [-3, 5, 1])
    qbin("QLinearMul", TP.UINT8, [1, 3, 4, 5], [5], [0.0173, 0.0291, 0.117], [128, 100, 90])
    qbin("QLinearMul", TP.INT8, [2, 3, 5], [2, 3, 5], [0.05, 0.031, 0.21], [-3, 5, 1])

    for dt, axis in ((TP.INT8, 1), (TP.UINT8, -1)):
        xs = [q(dt, [1, 2, 3, 4]), q(dt, [1, 3, 3, 4] if axis == 1 else [1, 2, 3, 2]), q(dt, [1, 1, 3, 4] if axis == 1 else [1, 2, 3, 5])]
        zs = [-2, 0, 7] if dt == TP.INT8 else [120, 128, 3]
        inits = [scalar("ys", TP.FLOAT, 0.043), scalar("yz", dt, zs[1])]
        ins = ["ys", "yz"]
        for i, (s, z) in enumerate(zip([0.02, 0.043, 0.11], zs)):
            inits += [scalar(f"s{i}", TP.FLOAT, s), scalar(f"z{i}", dt, z)]
            ins += [f"X{i}", f"s{i}", f"z{i}"]
        n = helper.make_node("QLinearConcat", ins, ["Y"], axis=axis, domain="com.microsoft")
        add(f"qlinearconcat_{np.dtype(NP[dt]).name}", [n], [(f"X{i}", x) for i, x in enumerate(xs)], ("Y", dt),
            inits, ms=True)

    for op, attrs in (("QLinearSigmoid", {}), ("QLinearLeakyRelu", {"alpha": 0.1})):
        for dt, z in ((TP.UINT8, (130, 5)), (TP.INT8, (-7, -100))):
            inits = [scalar("xs", TP.FLOAT, 0.047), scalar("xz", dt, z[0]), scalar("ys", TP.FLOAT, 0.0041),
                     scalar("yz", dt, z[1])]
            n = helper.make_node(op, ["X", "xs", "xz", "ys", "yz"], ["Y"], domain="com.microsoft", **attrs)
            add(f"{op.lower()}_{np.dtype(NP[dt]).name}", [n], [("X", q(dt, [2, 3, 7, 5]))], ("Y", dt), inits, ms=True)

    for dt, z, last in ((TP.UINT8, (128, 3), 0), (TP.INT8, (-5, 2), 1)):
        inits = [scalar("xs", TP.FLOAT, 0.031), scalar("xz", dt, z[0]), scalar("ys", TP.FLOAT, 0.0077),
                 scalar("yz", dt, z[1])]
        n = helper.make_node("QLinearGlobalAveragePool", ["X", "xs", "xz", "ys", "yz"], ["Y"],
                             domain="com.microsoft", channels_last=last)
        add(f"qlinearglobalaveragepool_{np.dtype(NP[dt]).name}", [n], [("X", q(dt, [2, 3, 6, 5]))], ("Y", dt),
            inits, ms=True)

    # QLinearConv: uint8 x, int8 per-channel weights, bias, groups, stride, asymmetric pads.
    x, w = q(TP.UINT8, [1, 4, 9, 8]), q(TP.INT8, [6, 2, 3, 3])
    inits = [scalar("xs", TP.FLOAT, 0.019), scalar("xz", TP.UINT8, 121), numpy_helper.from_array(w, "W"),
             numpy_helper.from_array(np.linspace(0.003, 0.011, 6).astype(np.float32), "ws"),
             numpy_helper.from_array(np.zeros(6, np.int8), "wz"), scalar("ys", TP.FLOAT, 0.23),
             scalar("yz", TP.UINT8, 77), numpy_helper.from_array(rng.integers(-3000, 3000, 6).astype(np.int32), "B")]
    n = helper.make_node("QLinearConv", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz", "B"], ["Y"], group=2,
                         strides=[2, 1], pads=[1, 0, 2, 1], kernel_shape=[3, 3])
    add("qlinearconv_u8s8_perchannel", [n], [("X", x)], ("Y", TP.UINT8), inits)
    # int8 everything, dilation, per-tensor weights with a zero point.
    x, w = q(TP.INT8, [2, 3, 10, 10]), q(TP.INT8, [4, 3, 3, 3])
    inits = [scalar("xs", TP.FLOAT, 0.021), scalar("xz", TP.INT8, -4), numpy_helper.from_array(w, "W"),
             scalar("ws", TP.FLOAT, 0.0067), scalar("wz", TP.INT8, 0), scalar("ys", TP.FLOAT, 0.31),
             scalar("yz", TP.INT8, 9)]
    n = helper.make_node("QLinearConv", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz"], ["Y"], dilations=[2, 2],
                         pads=[2, 2, 2, 2])
    add("qlinearconv_s8s8_dilated", [n], [("X", x)], ("Y", TP.INT8), inits)

    # ConvInteger: uint8 weights with a zero point, groups and stride (the dynamic-quantization form).
    x, w = q(TP.UINT8, [1, 4, 11, 9]), q(TP.UINT8, [4, 2, 3, 3])
    inits = [numpy_helper.from_array(w, "W"), scalar("xz", TP.UINT8, 131), scalar("wz", TP.UINT8, 118)]
    n = helper.make_node("ConvInteger", ["X", "W", "xz", "wz"], ["Y"], group=2, strides=[2, 2], pads=[1, 1, 1, 1])
    add("convinteger_u8u8_group", [n], [("X", x)], ("Y", TP.INT32), inits, opset=10)
    x, w = q(TP.UINT8, [1, 3, 8, 8]), q(TP.INT8, [5, 3, 1, 1])
    inits = [numpy_helper.from_array(w, "W"), scalar("xz", TP.UINT8, 17)]
    n = helper.make_node("ConvInteger", ["X", "W", "xz"], ["Y"])
    add("convinteger_u8s8_1x1", [n], [("X", x)], ("Y", TP.INT32), inits, opset=10)

    # Larger geometry: K > 256 (several exact float steps) and pixel chunks that cut rows.
    x, w = q(TP.UINT8, [1, 40, 23, 29]), q(TP.UINT8, [7, 40, 3, 3])
    inits = [scalar("xs", TP.FLOAT, 0.017), scalar("xz", TP.UINT8, 250), numpy_helper.from_array(w, "W"),
             scalar("ws", TP.FLOAT, 0.0041), scalar("wz", TP.UINT8, 3), scalar("ys", TP.FLOAT, 1.9),
             scalar("yz", TP.UINT8, 128)]
    n = helper.make_node("QLinearConv", ["X", "xs", "xz", "W", "ws", "wz", "ys", "yz"], ["Y"], pads=[1, 1, 1, 1])
    add("qlinearconv_u8u8_k360", [n], [("X", x)], ("Y", TP.UINT8), inits)
    x, w = q(TP.UINT8, [1, 30, 37, 41]), q(TP.INT8, [5, 30, 3, 3])
    inits = [numpy_helper.from_array(w, "W"), scalar("xz", TP.UINT8, 0), scalar("wz", TP.INT8, 0)]
    n = helper.make_node("ConvInteger", ["X", "W", "xz", "wz"], ["Y"], strides=[2, 2], pads=[0, 1, 2, 1])
    add("convinteger_u8s8_stride2_k270", [n], [("X", x)], ("Y", TP.INT32), inits, opset=10)

    # MatMulInteger batched with broadcasting; QLinearMatMul int8.
    a, b = q(TP.UINT8, [2, 3, 4, 5]), q(TP.INT8, [5, 6])
    n = helper.make_node("MatMulInteger", ["A", "B", "az", "bz"], ["Y"])
    add("matmulinteger_batched", [n], [("A", a), ("B", b)], ("Y", TP.INT32),
        [scalar("az", TP.UINT8, 140), scalar("bz", TP.INT8, -3)], opset=10)
    a, b = q(TP.INT8, [3, 2, 7]), q(TP.INT8, [3, 7, 4])
    inits = [scalar("as", TP.FLOAT, 0.013), scalar("az", TP.INT8, 3), scalar("bs", TP.FLOAT, 0.027),
             scalar("bz", TP.INT8, 0), scalar("ys", TP.FLOAT, 0.19), scalar("yz", TP.INT8, -11)]
    n = helper.make_node("QLinearMatMul", ["A", "as", "az", "B", "bs", "bz", "ys", "yz"], ["Y"])
    add("qlinearmatmul_s8_batched", [n], [("A", a), ("B", b)], ("Y", TP.INT8), inits)

    # QuantizeLinear: ties (k + 0.5) * scale round to even; per-axis int8 at opset 19.
    x = ((np.arange(-40, 40, dtype=np.float32) + 0.5) * 0.25).reshape(2, 40)
    add("quantizelinear_ties_u8", [helper.make_node("QuantizeLinear", ["X", "s", "z"], ["Y"])], [("X", x)],
        ("Y", TP.UINT8), [scalar("s", TP.FLOAT, 0.25), scalar("z", TP.UINT8, 10)])
    x = (rng.standard_normal([2, 3, 4]) * 3).astype(np.float32)
    inits = [numpy_helper.from_array(np.array([0.02, 0.05, 0.013], np.float32), "s"),
             numpy_helper.from_array(np.array([-5, 0, 9], np.int8), "z")]
    add("quantizelinear_axis_s8_op19", [helper.make_node("QuantizeLinear", ["X", "s", "z"], ["Y"], axis=1)],
        [("X", x)], ("Y", TP.INT8), inits, opset=19)
    # DequantizeLinear: int32 input (bias-like), and int8 per-axis on axis 0 at opset 21.
    x = rng.integers(-100000, 100000, [3, 5]).astype(np.int32)
    add("dequantizelinear_s32", [helper.make_node("DequantizeLinear", ["X", "s"], ["Y"])], [("X", x)],
        ("Y", TP.FLOAT), [scalar("s", TP.FLOAT, 0.00031)])
    inits = [numpy_helper.from_array(np.array([0.5, 0.021, 1.7], np.float32), "s"),
             numpy_helper.from_array(np.array([3, -7, 0], np.int8), "z")]
    add("dequantizelinear_axis0_s8_op21", [helper.make_node("DequantizeLinear", ["X", "s", "z"], ["Y"], axis=0)],
        [("X", q(TP.INT8, [3, 4, 2]))], ("Y", TP.FLOAT), inits, opset=21)
    # DynamicQuantizeLinear on all-negative values (the zero point saturates at 255).
    x = -np.abs(rng.standard_normal([3, 17]).astype(np.float32)) * 2 - 0.1
    n = helper.make_node("DynamicQuantizeLinear", ["X"], ["Y", "Ys", "Yz"])
    add("dynamicquantizelinear_negative", [n], [("X", x)], ("Y", TP.UINT8), [], opset=11)

    # int8 data through Add (wraps), MaxPool and nearest Resize, as in QOperator graphs.
    add("add_int8_wrap", [helper.make_node("Add", ["A", "B"], ["Y"])], [("A", q(TP.INT8, [2, 3, 4]))], ("Y", TP.INT8),
        [numpy_helper.from_array(q(TP.INT8, [3, 1]), "B")], opset=14)
    n = helper.make_node("MaxPool", ["X"], ["Y"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    add("maxpool_int8", [n], [("X", q(TP.INT8, [1, 3, 7, 8]))], ("Y", TP.INT8), [], opset=12)
    n = helper.make_node("Resize", ["X", "", "sc"], ["Y"], mode="nearest", coordinate_transformation_mode="asymmetric",
                         nearest_mode="floor")
    add("resize_nearest_int8", [n], [("X", q(TP.INT8, [1, 2, 3, 4]))], ("Y", TP.INT8),
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc")], opset=13)

    # QDQ convolutions (what `shoal quantize` and onnxruntime's QDQ quantizer write): float x
    # quantized, DQ(x), DQ(int8 weights per channel), DQ(int32 bias with scale xs * ws), Conv, Q.
    # onnxruntime folds them into QLinearConv; shoal's graph pass does the same, and the
    # integers must agree.
    qdq_conv("qdq_conv_u8s8_perchannel_bias", TP.UINT8, [1, 6, 13, 11], [8, 6, 3, 3], per_channel=True, bias=True,
             pads=[1, 1, 1, 1], strides=[1, 1])
    qdq_conv("qdq_conv_s8s8_group_stride2", TP.INT8, [1, 8, 12, 10], [8, 4, 3, 3], per_channel=False, bias=False,
             pads=[1, 0, 1, 1], strides=[2, 2], group=2)

    qdq_conv_chain("qdq_conv_chain_silu")


def qdq_conv_chain(name):
    """Three QDQ convolutions in a row with SiLU between them, as `shoal quantize` writes a
    backbone: shoal folds each into a QLinearConv, the DQ -> SiLU -> Q between two of them into
    the first one's code table, and keeps the uint8 codes NHWC from one oneDNN conv into the
    next; ONNX Runtime runs the float SiLU between its QLinearConvs. The integers must agree."""
    import torch
    x = (rng.standard_normal([1, 5, 21, 18]) * 1.3).astype(np.float32)
    layers = [([16, 5, 3, 3], 1, 1), ([24, 16, 3, 3], 2, 1), ([8, 24, 1, 1], 1, 0)]

    def urange(a):
        lo, hi = min(float(a.min()), 0.0), max(float(a.max()), 0.0)
        s = np.float32((hi - lo) / 255.0)
        return s, np.uint8(np.clip(np.round(-lo / s), 0, 255))

    xs, xz = urange(x)
    inits = [numpy_helper.from_array(np.array(xs), "xs"), numpy_helper.from_array(np.array(xz), "xz")]
    nodes = [helper.make_node("QuantizeLinear", ["X", "xs", "xz"], ["q0"])]
    cur, cur_s, cur_z, f = "q0", xs, xz, torch.from_numpy(x)
    for i, (wshape, stride, pad) in enumerate(layers):
        w = rng.standard_normal(wshape).astype(np.float32) * 0.4
        ws = (np.abs(w).reshape(wshape[0], -1).max(1) / 127).astype(np.float32)
        wq = np.clip(np.round(w / ws[:, None, None, None]), -127, 127).astype(np.int8)
        bq = rng.integers(-300, 300, wshape[0]).astype(np.int32)
        bs = (cur_s * ws).astype(np.float32)
        c = torch.nn.functional.conv2d(f, torch.from_numpy(wq.astype(np.float32) * ws[:, None, None, None]),
                                       torch.from_numpy((bq * bs).astype(np.float32)), stride=stride, padding=pad)
        cs, cz = urange(c.numpy())
        inits += [numpy_helper.from_array(wq, f"w{i}"), numpy_helper.from_array(ws, f"ws{i}"),
                  numpy_helper.from_array(bq, f"b{i}"), numpy_helper.from_array(bs, f"bs{i}"),
                  numpy_helper.from_array(np.array(cs), f"cs{i}"), numpy_helper.from_array(np.array(cz), f"cz{i}")]
        nodes += [helper.make_node("DequantizeLinear", [cur, "xs" if i == 0 else f"as{i - 1}",
                                                        "xz" if i == 0 else f"az{i - 1}"], [f"xf{i}"]),
                  helper.make_node("DequantizeLinear", [f"w{i}", f"ws{i}"], [f"wf{i}"], axis=0),
                  helper.make_node("DequantizeLinear", [f"b{i}", f"bs{i}"], [f"bf{i}"], axis=0),
                  helper.make_node("Conv", [f"xf{i}", f"wf{i}", f"bf{i}"], [f"c{i}"], kernel_shape=wshape[2:],
                                   strides=[stride, stride], pads=[pad] * 4),
                  helper.make_node("QuantizeLinear", [f"c{i}", f"cs{i}", f"cz{i}"], [f"cq{i}"])]
        if i == len(layers) - 1:
            nodes[-1].output[0] = "Y"
            break
        a = torch.nn.functional.silu(c)
        as_, az = urange(a.numpy())
        inits += [numpy_helper.from_array(np.array(as_), f"as{i}"), numpy_helper.from_array(np.array(az), f"az{i}")]
        nodes += [helper.make_node("DequantizeLinear", [f"cq{i}", f"cs{i}", f"cz{i}"], [f"cf{i}"]),
                  helper.make_node("Sigmoid", [f"cf{i}"], [f"sg{i}"]),
                  helper.make_node("Mul", [f"cf{i}", f"sg{i}"], [f"a{i}"]),
                  helper.make_node("QuantizeLinear", [f"a{i}", f"as{i}", f"az{i}"], [f"aq{i}"])]
        cur, cur_s, cur_z, f = f"aq{i}", as_, az, a
    add(name, nodes, [("X", x)], ("Y", TP.UINT8), inits)


RUN_JS = r"""
const ort = require(process.argv[2] + '/onnxruntime-node');
const fs = require('fs');
(async () => {
  const dir = process.argv[3];
  const meta = JSON.parse(fs.readFileSync(dir + '/feeds.json'));
  const s = await ort.InferenceSession.create(dir + '/model.onnx');
  const feeds = {};
  const T = {uint8: Uint8Array, int8: Int8Array, int32: Int32Array, float32: Float32Array};
  for (const f of meta) {
    const b = fs.readFileSync(dir + '/' + f.name + '.bin');
    feeds[f.name] = new ort.Tensor(f.type, new T[f.type](b.buffer, b.byteOffset, b.length / T[f.type].BYTES_PER_ELEMENT), f.dims);
  }
  const r = await s.run(feeds);
  const t = r[s.outputNames[0]];
  fs.writeFileSync(dir + '/out.bin', Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  fs.writeFileSync(dir + '/out.json', JSON.stringify({type: t.type, dims: t.dims}));
})().catch(e => { console.error(e); process.exit(1); });
"""


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    gen()
    shutil.rmtree(HERE, ignore_errors=True)
    with tempfile.TemporaryDirectory() as tmp:
        js = os.path.join(tmp, "run.js")
        open(js, "w").write(RUN_JS)
        for name, m, inputs in cases:
            work = os.path.join(tmp, name)
            os.makedirs(work)
            onnx.save(m, os.path.join(work, "model.onnx"))
            meta = []
            for n, a in inputs:
                a.tofile(os.path.join(work, n + ".bin"))
                meta.append({"name": n, "type": np.dtype(a.dtype).name, "dims": list(a.shape)})
            json.dump(meta, open(os.path.join(work, "feeds.json"), "w"))
            subprocess.run(["node", js, os.path.abspath(sys.argv[1]), work], check=True)
            o = json.load(open(os.path.join(work, "out.json")))
            out = np.fromfile(os.path.join(work, "out.bin"), dtype=o["type"]).reshape(o["dims"])
            dst = os.path.join(HERE, name, "test_data_set_0")
            os.makedirs(dst)
            shutil.copy(os.path.join(work, "model.onnx"), os.path.join(HERE, name, "model.onnx"))
            for i, (n, a) in enumerate(inputs):
                open(os.path.join(dst, f"input_{i}.pb"), "wb").write(numpy_helper.from_array(a, n).SerializeToString())
            open(os.path.join(dst, "output_0.pb"), "wb").write(
                numpy_helper.from_array(out, m.graph.output[0].name).SerializeToString())
            print(name, out.dtype, out.shape)


if __name__ == "__main__":
    main()
