#!/usr/bin/python3
"""Writes tests/runtime/data/*.onnx: a tiny stand-in for the AIGlasses set, small enough that
the runtime tests can cycle modes a thousand times on a slow CPU.

The five models keep the reference set's shape where the runtime cares: the same tasks and
decoders (YOLO11-style segment/detect outputs [1, 4+nc(+32), anchors] plus a [1,32,H,W] proto,
a 65-value hand regressor), the same pinning, and blind_road/shopping sharing their backbone
bit for bit. Their weights are mostly in squeeze-excite style fully connected layers at 1x1
spatial size, so they are heavy in bytes (what residency juggles) and light in compute.
Byte sizes are chosen so that a budget of 60% of the all-resident bytes admits each mode
(pinned models + the shared arena + the mode's own models) but never all models at once:
every switch between navigation and shopping evicts. Deterministic; rerun after changing it
and commit the output. Uses Debian's python3-onnx and numpy."""
import os

import numpy as np
import onnx
from onnx import TensorProto as TP
from onnx import helper

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
SIZE = 64


class Net:
    def __init__(self, name, seed):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.n = 0

    def tname(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def weight(self, shape, scale, rng=None, name=None):
        rng = rng or self.rng
        w = (rng.standard_normal(shape) * scale).astype(np.float32)
        nm = name or self.tname("w")
        self.inits.append(helper.make_tensor(nm, TP.FLOAT, list(shape), w.ravel().tolist()))
        return nm

    def node(self, op, inputs, **attrs):
        out = self.tname(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, s, rng=None, prefix=None, act=True):
        w = self.weight((cout, cin, k, k), (2.0 / (cin * k * k)) ** 0.5, rng, prefix and prefix + ".w")
        b = self.weight((cout,), 0.1, rng, prefix and prefix + ".b")
        y = self.node("Conv", [x, w, b], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4)
        return self.node("Relu", [y]) if act else y

    def se(self, x, c, hidden, rng=None, prefix=None):
        """Squeeze-excite: global pool, two fully connected layers, a channel gate."""
        p = self.node("Flatten", [self.node("GlobalAveragePool", [x])], axis=1)
        w1 = self.weight((hidden, c), (2.0 / c) ** 0.5, rng, prefix and prefix + ".fc1.w")
        b1 = self.weight((hidden,), 0.1, rng, prefix and prefix + ".fc1.b")
        h = self.node("Relu", [self.node("Gemm", [p, w1, b1], transB=1)])
        w2 = self.weight((c, hidden), (1.0 / hidden) ** 0.5, rng, prefix and prefix + ".fc2.w")
        b2 = self.weight((c,), 0.1, rng, prefix and prefix + ".fc2.b")
        g = self.node("Sigmoid", [self.node("Gemm", [h, w2, b2], transB=1)])
        shape = self.const_i64([1, c, 1, 1])
        return self.node("Mul", [x, self.node("Reshape", [g, shape])])

    def const_i64(self, values):
        nm = self.tname("shape")
        self.inits.append(helper.make_tensor(nm, TP.INT64, [len(values)], values))
        return nm

    def const_f(self, value):
        nm = self.tname("k")
        self.inits.append(helper.make_tensor(nm, TP.FLOAT, [], [value]))
        return nm

    def backbone(self, seed, se_hidden):
        """64x64 -> (8x8x64 features, 16x16x16 features for the proto)."""
        rng = np.random.default_rng(seed)
        pre = f"backbone{seed}"
        x = self.conv("images", 3, 8, 3, 2, rng, pre + ".c1")
        p16 = self.conv(x, 8, 16, 3, 2, rng, pre + ".c2")
        x = self.conv(p16, 16, 32, 3, 2, rng, pre + ".c3")
        x = self.conv(x, 32, 64, 1, 1, rng, pre + ".c4")
        x = self.se(x, 64, se_hidden, rng, pre + ".se")
        return x, p16

    def yolo_head(self, x, nc, p16=None):
        """[1, 4+nc(+32), 64]: boxes (cx, cy, w, h in input pixels), sigmoid scores, mask coefficients."""
        box = self.node("Mul", [self.node("Sigmoid", [self.conv(x, 64, 4, 1, 1, act=False)]), self.const_f(SIZE)])
        cls = self.node("Sigmoid", [self.conv(x, 64, nc, 1, 1, act=False)])
        parts = [box, cls]
        if p16 is not None:
            parts.append(self.conv(x, 64, 32, 1, 1, act=False))
        flat = [self.node("Reshape", [p, self.const_i64([1, -1, 64])]) for p in parts]
        out = self.node("Concat", flat, axis=1)
        outs = [(out, [1, 4 + nc + (32 if p16 is not None else 0), 64])]
        if p16 is not None:
            outs.append((self.conv(p16, 16, 32, 1, 1, act=False), [1, 32, 16, 16]))
        return outs

    def save(self, outs):
        names = ["output0", "output1"]
        for (t, _), nm in zip(outs, names):
            self.nodes.append(helper.make_node("Identity", [t], [nm], name=nm + "_id"))
        g = helper.make_graph(self.nodes, self.name, [helper.make_tensor_value_info("images", TP.FLOAT, [1, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info(nm, TP.FLOAT, s) for (_, s), nm in zip(outs, names)],
                              self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="gen_tiny_models")
        m.ir_version = 8
        onnx.checker.check_model(m)
        onnx.save(m, os.path.join(HERE, self.name + ".onnx"))


def main():
    os.makedirs(HERE, exist_ok=True)
    # blind_road and shopping: one backbone (seed 1), two heads.
    n = Net("blind_road", 11)
    x, p16 = n.backbone(1, 256)
    n.save(n.yolo_head(x, 2, p16))
    n = Net("shopping", 12)
    x, _ = n.backbone(1, 256)
    x = n.se(x, 64, 440)
    n.save(n.yolo_head(x, 4))
    n = Net("traffic_light", 13)
    x, _ = n.backbone(2, 128)
    n.save(n.yolo_head(x, 4))
    n = Net("obstacle", 14)
    x, p16 = n.backbone(3, 1024)
    x = n.se(x, 64, 1300)
    n.save(n.yolo_head(x, 6, p16))
    n = Net("hand", 15)
    x, _ = n.backbone(4, 64)
    p = n.node("Flatten", [n.node("GlobalAveragePool", [x])], axis=1)
    h = n.node("Relu", [n.node("Gemm", [p, n.weight((1800, 64), 0.2), n.weight((1800,), 0.1)], transB=1)])
    y = n.node("Gemm", [h, n.weight((65, 1800), 0.03), n.weight((65,), 0.1)], transB=1)
    n.save([(n.node("Mul", [n.node("Sigmoid", [y]), n.const_f(SIZE)]), [1, 65])])


if __name__ == "__main__":
    main()
