#!/usr/bin/env python3
"""MediaPipe's hand landmarker (.tflite) as PyTorch modules, for the benchmark peers.

shoal runs MediaPipe's own palm_detection_full.tflite and hand_landmark_full.tflite. To time
the same work in PyTorch and ONNX Runtime, this reads those files (a small FlatBuffers reader
against TFLite's schema.fbs, version 3) and builds a torch module per file that runs the
file's operators in order with the file's weights (fp16 constants dequantized to fp32 at
load, as the DEQUANTIZE ops would). No TFLite or TensorFlow is needed.

Activations are NCHW inside the module (what PyTorch's convolutions want); the module takes
and returns the file's own layouts (input NHWC [1,S,S,3] float in [0,1], outputs as declared),
so its inputs and outputs compare one to one with `shoal exec MODEL.tflite`.

  python3 bench/tflite_torch.py check [--models models] [--shoal build/shoal]
      the torch modules against shoal on random inputs, and the landmark model against
      MediaPipe's expected landmarks on ../shared/real-models/hands/left_hands.jpg
  python3 bench/tflite_torch.py export --out DIR [--models models]
      hand_palm.onnx and hand_landmark.onnx (torch.onnx.export) for ONNX Runtime, with the
      inputs the peers time them on and the module's outputs there
  python3 bench/tflite_torch.py frame --out FILE.png
      the one-hand frame shoal's bench gets for the shopping mode (see HandPipeline)
"""
import argparse
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The hand landmarker's networks, as shoal's shopping mode runs them per frame.
PALM_FILE = "palm_detection_full.tflite"
LANDMARK_FILE = "hand_landmark_full.tflite"


# --- FlatBuffers ----------------------------------------------------------------------------
# A table starts with an int32 offset back to its vtable; the vtable lists, per field in
# schema order, the field's offset inside the table (0 = absent, default applies). Offsets
# to tables, vectors and strings are uint32 relative to where they are stored.

class Table:
    def __init__(self, buf, pos):
        self.buf, self.pos = buf, pos
        vt = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vt_len = struct.unpack_from("<H", buf, vt)[0]
        self.vt = vt

    def _field(self, i):
        o = 4 + 2 * i
        if o >= self.vt_len:
            return 0
        return struct.unpack_from("<H", self.buf, self.vt + o)[0]

    def scalar(self, i, fmt, default=0):
        o = self._field(i)
        return struct.unpack_from("<" + fmt, self.buf, self.pos + o)[0] if o else default

    def _indirect(self, i):
        o = self._field(i)
        if not o:
            return None
        p = self.pos + o
        return p + struct.unpack_from("<I", self.buf, p)[0]

    def table(self, i):
        p = self._indirect(i)
        return Table(self.buf, p) if p is not None else None

    def vector(self, i):
        """(start, length) of a vector field, or None."""
        p = self._indirect(i)
        if p is None:
            return None
        return p + 4, struct.unpack_from("<I", self.buf, p)[0]

    def tables(self, i):
        v = self.vector(i)
        if v is None:
            return []
        start, n = v
        return [Table(self.buf, start + 4 * k + struct.unpack_from("<I", self.buf, start + 4 * k)[0])
                for k in range(n)]

    def ints(self, i, fmt="i"):
        v = self.vector(i)
        if v is None:
            return None
        start, n = v
        return list(struct.unpack_from("<%d%s" % (n, fmt), self.buf, start))

    def bytes(self, i):
        v = self.vector(i)
        if v is None:
            return None
        start, n = v
        return self.buf[start:start + n]

    def string(self, i):
        b = self.bytes(i)
        return b.decode("utf-8") if b is not None else None


# schema.fbs (version 3): the enum values and field numbers this file uses.
T_FLOAT32, T_FLOAT16, T_INT32 = 0, 1, 2
DTYPES = {T_FLOAT32: np.float32, T_FLOAT16: np.float16, T_INT32: np.int32}
ADD, CONCATENATION, CONV_2D, DEPTHWISE_CONV_2D, DEQUANTIZE = 0, 2, 3, 4, 6
FULLY_CONNECTED, LOGISTIC, MAX_POOL_2D, RESHAPE, RESIZE_BILINEAR = 9, 14, 17, 22, 23
PAD, MEAN, PRELU = 34, 40, 54
OP_NAMES = {ADD: "ADD", CONCATENATION: "CONCATENATION", CONV_2D: "CONV_2D",
            DEPTHWISE_CONV_2D: "DEPTHWISE_CONV_2D", DEQUANTIZE: "DEQUANTIZE",
            FULLY_CONNECTED: "FULLY_CONNECTED", LOGISTIC: "LOGISTIC", MAX_POOL_2D: "MAX_POOL_2D",
            RESHAPE: "RESHAPE", RESIZE_BILINEAR: "RESIZE_BILINEAR", PAD: "PAD", MEAN: "MEAN",
            PRELU: "PRELU"}
ACT_NONE, ACT_RELU, ACT_RELU6 = 0, 1, 3
PAD_SAME, PAD_VALID = 0, 1


class TfliteModel:
    """The first subgraph of a .tflite file: tensors (constants as numpy), operators with
    their options decoded into dicts, inputs and outputs."""

    def __init__(self, path):
        with open(path, "rb") as f:
            buf = f.read()
        self.path = path
        model = Table(buf, struct.unpack_from("<I", buf, 0)[0])
        if model.scalar(0, "I") != 3:
            raise ValueError("%s: TFLite schema version %d, expected 3" % (path, model.scalar(0, "I")))
        codes = []
        for oc in model.tables(1):
            code = max(oc.scalar(0, "b"), oc.scalar(3, "i"))   # deprecated byte vs int32 field
            codes.append(code)
        buffers = model.tables(4)
        sg = model.tables(2)[0]
        self.tensors = []
        for t in sg.tables(0):
            dtype = t.scalar(1, "b")
            shape = t.ints(0) or []
            data = None
            b = t.scalar(2, "I")
            if b and b < len(buffers):
                raw = buffers[b].bytes(0)
                if raw is None and buffers[b].scalar(1, "Q"):   # data after the flatbuffer
                    off, size = buffers[b].scalar(1, "Q"), buffers[b].scalar(2, "Q")
                    raw = buf[off:off + size]
                if raw:
                    if dtype not in DTYPES:
                        raise ValueError("%s: tensor %s has type %d" % (path, t.string(3), dtype))
                    data = np.frombuffer(raw, DTYPES[dtype]).reshape(shape).copy()
            self.tensors.append({"name": t.string(3), "shape": shape, "type": dtype, "data": data})
        self.inputs = sg.ints(1)
        self.outputs = sg.ints(2)
        self.ops = []
        for op in sg.tables(3):
            code = codes[op.scalar(0, "I")]
            if code not in OP_NAMES:
                raise ValueError("%s: operator %d is builtin %d, which this reader does not map"
                                 % (path, len(self.ops), code))
            self.ops.append({"code": code, "inputs": op.ints(1), "outputs": op.ints(2),
                             "opt": self._options(code, op.table(4))})

    @staticmethod
    def _options(code, o):
        if o is None:
            return {}
        if code == CONV_2D:
            return {"padding": o.scalar(0, "b"), "stride": (o.scalar(2, "i"), o.scalar(1, "i")),
                    "act": o.scalar(3, "b"), "dilation": (o.scalar(5, "i", 1), o.scalar(4, "i", 1))}
        if code == DEPTHWISE_CONV_2D:
            return {"padding": o.scalar(0, "b"), "stride": (o.scalar(2, "i"), o.scalar(1, "i")),
                    "mult": o.scalar(3, "i"), "act": o.scalar(4, "b"),
                    "dilation": (o.scalar(6, "i", 1), o.scalar(5, "i", 1))}
        if code == MAX_POOL_2D:
            return {"padding": o.scalar(0, "b"), "stride": (o.scalar(2, "i"), o.scalar(1, "i")),
                    "kernel": (o.scalar(4, "i"), o.scalar(3, "i")), "act": o.scalar(5, "b")}
        if code == ADD:
            return {"act": o.scalar(0, "b")}
        if code == CONCATENATION:
            return {"axis": o.scalar(0, "i"), "act": o.scalar(1, "b")}
        if code == FULLY_CONNECTED:
            return {"act": o.scalar(0, "b"), "keep_dims": bool(o.scalar(2, "b"))}
        if code == RESHAPE:
            return {"new_shape": o.ints(0)}
        if code == RESIZE_BILINEAR:
            return {"align_corners": bool(o.scalar(2, "b")), "half_pixel": bool(o.scalar(3, "b"))}
        if code == MEAN:
            return {"keep_dims": bool(o.scalar(0, "b"))}
        return {}



# --- the torch module ------------------------------------------------------------------------

def same_pads(size, k, stride, dilation):
    """TFLite's SAME padding of one spatial dim: (before, after), the odd pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


NHWC_TO_NCHW_AXIS = [0, 2, 3, 1]


class TfliteNet(nn.Module):
    """Runs a TfliteModel's operators in file order. 4-D activations live NCHW; every
    constant is a buffer (fp32 after dequantization), so .half() / .cuda() move them all."""

    def __init__(self, tm):
        super().__init__()
        self.input_id = tm.inputs[0]
        self.output_ids = list(tm.outputs)
        self.output_names = [tm.tensors[i]["name"] for i in tm.outputs]
        self.shapes = [t["shape"] for t in tm.tensors]
        const = {}
        for i, t in enumerate(tm.tensors):
            if t["data"] is not None:
                const[i] = t["data"]
        for op in tm.ops:   # DEQUANTIZE of a constant is a constant: widen it now
            if op["code"] == DEQUANTIZE:
                const[op["outputs"][0]] = const[op["inputs"][0]].astype(np.float32)
        self.steps = []
        self._n = 0
        for op in tm.ops:
            if op["code"] != DEQUANTIZE:
                self.steps.append(self._step(op, const))

    def _buffer(self, arr):
        name = "w%d" % self._n
        self._n += 1
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        if t.dim() == 4:
            # The activations arrive NHWC (the file's layout, permuted to NCHW as a view), so
            # they are channels_last in memory; weights in the same format keep PyTorch's
            # convolutions from converting layouts on every call (about 1.3x on the CPU here).
            t = t.contiguous(memory_format=torch.channels_last)
        self.register_buffer(name, t)
        return name

    def _step(self, op, const):
        code, ins, outs, o = op["code"], op["inputs"], op["outputs"], op["opt"]
        out = outs[0]
        shp = self.shapes
        act = o.get("act", ACT_NONE)
        if act not in (ACT_NONE, ACT_RELU, ACT_RELU6):
            raise ValueError("fused activation %d is not mapped" % act)

        def fused(y):
            if act == ACT_RELU:
                return F.relu(y)
            if act == ACT_RELU6:
                return F.hardtanh(y, 0.0, 6.0)
            return y

        if code in (CONV_2D, DEPTHWISE_CONV_2D):
            w = const[ins[1]]
            bias = self._buffer(const[ins[2]]) if len(ins) > 2 and ins[2] >= 0 else None
            if code == CONV_2D:            # OHWI -> OIHW
                weight, groups = w.transpose(0, 3, 1, 2), 1
            else:                          # 1,H,W,C*mult -> C*mult,1,H,W
                weight, groups = w.transpose(3, 0, 1, 2), shp[ins[0]][3]
            wname = self._buffer(weight)
            kh, kw = weight.shape[2], weight.shape[3]
            _, h, wd, _ = shp[ins[0]]
            (sh, sw), (dh, dw) = o["stride"], o["dilation"]
            if o["padding"] == PAD_SAME:
                pt, pb = same_pads(h, kh, sh, dh)
                pl, pr = same_pads(wd, kw, sw, dw)
            else:
                pt = pb = pl = pr = 0
            symmetric = pt == pb and pl == pr

            def run(env):
                x = env[ins[0]]
                if not symmetric:
                    x = F.pad(x, (pl, pr, pt, pb))
                y = F.conv2d(x, getattr(self, wname), getattr(self, bias) if bias else None,
                             (sh, sw), (pt, pl) if symmetric else 0, (dh, dw), groups)
                env[out] = fused(y)
            return run
        if code == MAX_POOL_2D:
            kh, kw = o["kernel"]
            sh, sw = o["stride"]
            _, h, wd, _ = shp[ins[0]]
            pads = (0, 0, 0, 0)
            if o["padding"] == PAD_SAME:
                pt, pb = same_pads(h, kh, sh, 1)
                pl, pr = same_pads(wd, kw, sw, 1)
                pads = (pl, pr, pt, pb)

            def run(env):
                x = env[ins[0]]
                if any(pads):   # TFLite's SAME pooling ignores the padding: pad with -inf
                    x = F.pad(x, pads, value=float("-inf"))
                env[out] = fused(F.max_pool2d(x, (kh, kw), (sh, sw)))
            return run
        if code == ADD:
            a_const, b_const = ins[0] in const, ins[1] in const
            names = [self._buffer(self._as_activation(const[i], shp[out])) if i in const else None for i in ins]
            if a_const and b_const:
                raise ValueError("ADD of two constants")

            def run(env):
                a = getattr(self, names[0]) if names[0] else env[ins[0]]
                b = getattr(self, names[1]) if names[1] else env[ins[1]]
                env[out] = fused(a + b)
            return run
        if code == PRELU:
            a = const[ins[1]]
            channels = shp[out][-1]
            if a.size == channels and len(shp[out]) == 4:   # one slope per channel: F.prelu's own case
                alpha = self._buffer(a.reshape(channels))

                def run(env):
                    env[out] = F.prelu(env[ins[0]], getattr(self, alpha))
                return run
            alpha = self._buffer(self._as_activation(a, shp[out]))

            def run(env):
                x = env[ins[0]]
                env[out] = torch.where(x >= 0, x, x * getattr(self, alpha))
            return run
        if code == PAD:
            p = const[ins[1]].reshape(-1, 2)
            if len(p) == 4:   # NHWC pairs -> F.pad's last-dim-first order over NCHW
                order = [2, 1, 3]   # W, H, C
            else:
                order = list(range(len(p) - 1, 0, -1))
            if p[0].any():
                raise ValueError("PAD of the batch dim")
            pads = []
            for d in order:
                pads += [int(p[d][0]), int(p[d][1])]

            def run(env):
                env[out] = F.pad(env[ins[0]], pads)
            return run
        if code == RESIZE_BILINEAR:
            size = [int(v) for v in const[ins[1]]]
            if o["align_corners"] or not o["half_pixel"]:
                raise ValueError("RESIZE_BILINEAR without half-pixel centres is not mapped")

            def run(env):
                env[out] = F.interpolate(env[ins[0]], size=size, mode="bilinear", align_corners=False)
            return run
        if code == RESHAPE:
            new = [int(v) for v in shp[out]]
            from4 = len(shp[ins[0]]) == 4
            to4 = len(new) == 4

            def run(env):
                x = env[ins[0]]
                if from4:
                    x = x.permute(0, 2, 3, 1)
                x = x.reshape(new)
                env[out] = x.permute(0, 3, 1, 2) if to4 else x
            return run
        if code == CONCATENATION:
            axis = o["axis"] % len(shp[out])
            if len(shp[out]) == 4:
                axis = NHWC_TO_NCHW_AXIS[axis]

            def run(env):
                env[out] = fused(torch.cat([env[i] for i in ins], axis))
            return run
        if code == MEAN:
            axes = [int(a) % len(shp[ins[0]]) for a in np.atleast_1d(const[ins[1]])]
            if len(shp[ins[0]]) == 4:
                axes = [NHWC_TO_NCHW_AXIS[a] for a in axes]
            keep = o["keep_dims"]
            if keep and len(shp[ins[0]]) == 4:
                raise ValueError("MEAN keeping 4-D dims is not mapped")

            def run(env):
                env[out] = env[ins[0]].mean(dim=axes, keepdim=keep)
            return run
        if code == FULLY_CONNECTED:
            w = self._buffer(const[ins[1]])
            bias = self._buffer(const[ins[2]]) if len(ins) > 2 and ins[2] >= 0 else None
            from4 = len(shp[ins[0]]) == 4

            def run(env):
                x = env[ins[0]]
                if from4:
                    x = x.permute(0, 2, 3, 1)
                x = x.reshape(-1, x.shape[-1] if not from4 else x[0].numel())
                env[out] = fused(F.linear(x, getattr(self, w), getattr(self, bias) if bias else None))
            return run
        if code == LOGISTIC:
            def run(env):
                env[out] = torch.sigmoid(env[ins[0]])
            return run
        raise ValueError("operator %s is not mapped" % OP_NAMES.get(code, code))

    @staticmethod
    def _as_activation(c, out_shape):
        """A constant operand broadcast against an activation: NHWC -> NCHW where 4-D."""
        if len(out_shape) != 4:
            return c
        c = c.reshape([1] * (4 - c.ndim) + list(c.shape))
        return c.transpose(0, 3, 1, 2)

    def forward(self, x):
        env = {self.input_id: x.permute(0, 3, 1, 2)}
        for step in self.steps:
            step(env)
        outs = []
        for i in self.output_ids:
            y = env[i]
            outs.append(y.permute(0, 2, 3, 1) if y.dim() == 4 else y)
        return tuple(outs)


def load(path):
    """The module of one .tflite file, fp32, eval mode."""
    return TfliteNet(TfliteModel(path)).eval()


def input_size(net):
    return net.shapes[net.input_id][1]


# --- the hand pipeline's networks as the peers time them ------------------------------------
# shoal's shopping mode, on a frame where it finds one hand, runs the palm detector on the
# letterboxed frame (192x192) and the landmark model on one rotated crop (224x224); the crops,
# anchors and NMS around them are host or frame-op work, not network. The peers time exactly
# those two networks, in turn, on inputs made from MediaPipe's test photo: its left half (one
# hand) letterboxed for the palm detector, and the Tasks test's fixed ROI of that hand for the
# landmark model. Without ../shared the inputs are seeded noise of the same shapes (the network
# time does not depend on the pixels; shoal's bench then finds no palm and runs the palm
# detector alone, which the table must say).

HAND_PHOTO = os.path.join(ROOT, "..", "shared", "real-models", "hands", "left_hands.jpg")


def one_hand_frame(photo=HAND_PHOTO):
    """The left half of left_hands.jpg (the fingers-up hand alone), HxWx3 float in [0,1], or None."""
    if not os.path.exists(photo):
        return None
    try:
        from PIL import Image
    except ImportError:   # a machine without Pillow (the GPU machine's PyTorch may lack it)
        return None
    img = Image.open(photo).convert("RGB")
    w, h = img.size
    return np.asarray(img.crop((0, 0, w // 2, h)), np.float32) / 255


def save_one_hand_frame(dst, photo=HAND_PHOTO):
    """Writes the one-hand frame as PNG (shoal bench --image shopping=DST); False without the photo."""
    f = one_hand_frame(photo)
    if f is None:
        return False
    from PIL import Image
    Image.fromarray((f * 255 + 0.5).astype(np.uint8)).save(dst)
    return True


def hand_inputs(photo=HAND_PHOTO):
    """{"palm": [1,192,192,3], "landmark": [1,224,224,3]} float32 NHWC, and what they show."""
    f = one_hand_frame(photo)
    if f is None:
        rs = np.random.RandomState(505)
        return ({"palm": rs.uniform(0, 1, (1, 192, 192, 3)).astype(np.float32),
                 "landmark": rs.uniform(0, 1, (1, 224, 224, 3)).astype(np.float32)},
                "seeded noise (MediaPipe's photo or Pillow not found)")
    H, W = f.shape[:2]
    side = max(W, H)
    palm = crop(f, (W / 2, H / 2, side, side, 0.0), 192, zero_border=True)
    # the Tasks test's ROI of this hand (x 0.25, w 0.5 of the whole photo) is this half's middle
    landmark = crop(f, (W / 2, H / 2, W, H, 0.0), 224, zero_border=False)
    return {"palm": palm, "landmark": landmark}, "left_hands.jpg's left half: letterboxed; its hand's fixed ROI"


class HandPipeline(nn.Module):
    """Palm detector then landmark model on one crop: what shoal's hand model runs per frame
    when it finds one hand. Outputs: the palm detector's two, then the landmark model's four."""

    def __init__(self, models_dir):
        super().__init__()
        self.palm = load(os.path.join(models_dir, PALM_FILE))
        self.landmark = load(os.path.join(models_dir, LANDMARK_FILE))

    def forward(self, palm_x, landmark_x):
        return self.palm(palm_x) + self.landmark(landmark_x)


def load_pipeline(models_dir):
    return HandPipeline(models_dir).eval()


# --- checks ---------------------------------------------------------------------------------
# Against shoal: the same random input through `shoal exec` and the module, every output.
# Against MediaPipe (../shared/real-models/hands/README.md says which test made each file):
# the palm detector on the whole photo (letterboxed, SSD anchors, weighted NMS) vs the Tasks
# hand detector test's palm boxes, and the landmark model on that test's fixed ROIs vs its
# expected landmarks, with the tolerances those tests use.

def crop(img, rect, size, zero_border):
    """A rotated rect of img (HxWx3 float in [0,1]) resampled bilinearly to size x size, as
    MediaPipe's ImageToTensor does. rect = (x_center, y_center, width, height) in pixels and
    rotation in radians; border zero (palm input) or replicated (landmark input)."""
    cx, cy, w, h, rot = rect
    H, W = img.shape[:2]
    t = (np.arange(size) + 0.5) / size - 0.5
    a, b = np.meshgrid(t * w, t * h)
    c, s = np.cos(rot), np.sin(rot)
    x = cx + a * c - b * s - 0.5
    y = cy + a * s + b * c - 0.5
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]

    def at(yy, xx):
        inside = ((xx >= 0) & (xx < W) & (yy >= 0) & (yy < H))[..., None]
        v = img[np.clip(yy, 0, H - 1), np.clip(xx, 0, W - 1)]
        return v * inside if zero_border else v

    out = (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy) +
           at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)
    return out.astype(np.float32)[None]


def palm_anchors():
    """SSD anchors of palm_detection_full (README's table): strides 8, 16, 16, 16, two anchors
    per layer and cell, layers of one stride sharing a grid; centres only (sizes are 1)."""
    out = []
    for stride, per_cell in ((8, 2), (16, 6)):
        g = 192 // stride
        for row in range(g):
            for col in range(g):
                out += [((col + 0.5) / g, (row + 0.5) / g)] * per_cell
    return np.array(out, np.float32)


def decode_palms(boxes, logits, min_score=0.5, iou_thresh=0.3):
    """[xmin, ymin, w, h, score] in the 192x192 input's normalized coords, weighted NMS."""
    anchors = palm_anchors()
    scores = 1 / (1 + np.exp(-np.clip(logits.reshape(-1), -100, 100)))
    b = boxes.reshape(-1, 18)
    xc = b[:, 0] / 192 + anchors[:, 0]
    yc = b[:, 1] / 192 + anchors[:, 1]
    w, h = b[:, 2] / 192, b[:, 3] / 192
    cand = np.stack([xc - w / 2, yc - h / 2, w, h, scores], 1)[scores >= min_score]
    cand = cand[np.argsort(-cand[:, 4])]

    def iou(p, q):
        ix = max(0.0, min(p[0] + p[2], q[0] + q[2]) - max(p[0], q[0]))
        iy = max(0.0, min(p[1] + p[3], q[1] + q[3]) - max(p[1], q[1]))
        inter = ix * iy
        return inter / (p[2] * p[3] + q[2] * q[3] - inter)

    palms = []
    while len(cand):
        top = cand[0]
        near = np.array([iou(top, c) > iou_thresh for c in cand])
        cl = cand[near]
        wsum = cl[:, 4].sum()
        box = (cl[:, :4] * cl[:, 4:5]).sum(0) / wsum
        palms.append(list(box) + [top[4]])
        cand = cand[~near]
    return palms, iou


def pb_numbers(text, block, keys):
    """The `keys` of every `block {` of a text proto, as lists of floats."""
    out = []
    for part in text.split(block + " {")[1:]:
        vals = {}
        for line in part.splitlines():
            k, _, v = line.strip().partition(":")
            if k in keys and k not in vals:
                vals[k] = float(v)
        out.append([vals[k] for k in keys])
    return out


def check_against_shoal(models_dir, shoal, tmp):
    import subprocess
    worst = 0.0
    for f in (PALM_FILE, LANDMARK_FILE):
        path = os.path.join(models_dir, f)
        net = load(path)
        size = input_size(net)
        x = np.random.RandomState(7).uniform(0.02, 1.0, (1, size, size, 3)).astype(np.float32)
        inp, out_dir = os.path.join(tmp, "input.npy"), os.path.join(tmp, f + ".out")
        os.makedirs(out_dir, exist_ok=True)
        np.save(inp, x)
        subprocess.check_call([shoal, "exec", path, "--input", inp, "--out", out_dir], stdout=subprocess.DEVNULL)
        with torch.no_grad():
            ys = net(torch.from_numpy(x))
        for name, y in zip(net.output_names, ys):
            want = np.load(os.path.join(out_dir, name + ".npy"))
            y = y.numpy()
            rel = float(np.linalg.norm(y - want) / max(np.linalg.norm(want), 1e-30))
            worst = max(worst, rel)
            print("  %-28s %-10s %-14s rel L2 vs shoal %.2e" % (f, name, tuple(y.shape), rel))
    return worst


def check_against_mediapipe(models_dir, hands_dir):
    from PIL import Image
    img = np.asarray(Image.open(os.path.join(hands_dir, "left_hands.jpg")).convert("RGB"), np.float32) / 255
    H, W = img.shape[:2]
    ok = True
    # Palm detector: the whole photo letterboxed into 192x192 (a square of the long side).
    palm = load(os.path.join(models_dir, PALM_FILE))
    side = max(W, H)
    x = crop(img, (W / 2, H / 2, side, side, 0.0), 192, zero_border=True)
    with torch.no_grad():
        boxes, logits = [t.numpy() for t in palm(torch.from_numpy(x))]
    palms, iou = decode_palms(boxes, logits)
    got = [[(p[0] * side - (side - W) / 2) / W, (p[1] * side - (side - H) / 2) / H,
            p[2] * side / W, p[3] * side / H, p[4]] for p in palms[:2]]
    text = open(os.path.join(hands_dir, "left_hands.detector_two_hands.expected.pbtxt")).read()
    want = pb_numbers(text, "relative_bounding_box", ["xmin", "ymin", "width", "height"])
    scores = [v[0] for v in pb_numbers(text, "detections", ["score"])]
    for e, sc in zip(want, scores):
        g = max(got, key=lambda p: iou(p, e))
        d = max(abs(a - b) for a, b in zip(g[:4], e))
        good = d <= 0.01 and abs(g[4] - sc) <= 0.01
        ok &= good
        print("  palm %.4f %.4f %.4f %.4f score %.4f vs MediaPipe's %.4f %.4f %.4f %.4f %.4f: "
              "largest field diff %.4f (tolerance 0.01) %s" % (*g, *e, sc, d, "ok" if good else "FAIL"))
    ok &= len(got) == 2
    # Landmark model on the Tasks test's fixed ROIs, stretched to 224x224 as that graph does.
    lm = load(os.path.join(models_dir, LANDMARK_FILE))
    for name, (xc, yc, w, h, rot) in (("left_up", (0.25, 0.5, 0.5, 1.0, 0.0)),
                                      ("left_down", (0.75, 0.5, 0.5, 1.0, np.pi))):
        rect = (xc * W, yc * H, w * W, h * H, rot)
        x = crop(img, rect, 224, zero_border=False)
        with torch.no_grad():
            raw, presence, handed, _ = [t.numpy() for t in lm(torch.from_numpy(x))]
        pts = raw.reshape(21, 3)[:, :2] / 224 - 0.5
        c, s = np.cos(rot), np.sin(rot)
        px = (rect[0] + pts[:, 0] * rect[2] * c - pts[:, 1] * rect[3] * s) / W
        py = (rect[1] + pts[:, 0] * rect[2] * s + pts[:, 1] * rect[3] * c) / H
        text = open(os.path.join(hands_dir, "left_hands.landmarks_%s.expected.pbtxt" % name)).read()
        want = np.array(pb_numbers(text, "landmark", ["x", "y"]))
        d = float(np.abs(np.stack([px, py], 1) - want).max())
        # npm's label map: class 0 "Left" (mirrored convention); Tasks' "Left" is npm's "Right"
        label = "Left" if handed.item() > 0.5 else "Right"
        good = d <= 0.03 and presence.item() > 0.5 and label == "Right"
        ok &= good
        print("  landmarks %-9s largest |d| %.4f (tolerance 0.03), presence %.3f, handedness %s: %s"
              % (name, d, presence.item(), label, "ok" if good else "FAIL"))
    return ok


def export_onnx(models_dir, out_dir, photo=HAND_PHOTO):
    """hand_palm.onnx and hand_landmark.onnx (the modules traced by torch.onnx.export, fp32,
    NHWC inputs named as in the .tflite files), each with its input (KEY.input.npy, see
    hand_inputs) and the module's fp32 outputs on it (KEY.OUTPUT.npy), for ort_runner.js."""
    os.makedirs(out_dir, exist_ok=True)
    inputs, what = hand_inputs(photo)
    paths = {}
    for key, part, f in (("hand_palm", "palm", PALM_FILE), ("hand_landmark", "landmark", LANDMARK_FILE)):
        net = load(os.path.join(models_dir, f))
        x = torch.from_numpy(inputs[part])
        dst = os.path.join(out_dir, key + ".onnx")
        torch.onnx.export(net, (x,), dst, input_names=["input_1"], output_names=net.output_names,
                          opset_version=13, do_constant_folding=True)
        np.save(os.path.join(out_dir, key + ".input.npy"), inputs[part])
        with torch.no_grad():
            for name, y in zip(net.output_names, net(x)):
                np.save(os.path.join(out_dir, "%s.%s.npy" % (key, name)), y.numpy())
        paths[key] = dst
    with open(os.path.join(out_dir, "inputs.txt"), "w") as fh:
        fh.write(what + "\n")
    return paths


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["check", "export", "frame"])
    ap.add_argument("--models", default=os.path.join(ROOT, "models"))
    ap.add_argument("--shoal", default=os.path.join(ROOT, "build", "shoal"))
    ap.add_argument("--hands", default=os.path.join(ROOT, "..", "shared", "real-models", "hands"))
    ap.add_argument("--out", help="export: the folder for the .onnx files; frame: the .png")
    ap.add_argument("--tmp", default="/tmp/tflite_torch")
    a = ap.parse_args()
    photo = os.path.join(a.hands, "left_hands.jpg")
    if a.what == "frame":
        if not a.out:
            ap.error("frame needs --out FILE.png")
        if not save_one_hand_frame(a.out, photo):
            print("no %s: no frame written" % photo, file=sys.stderr)
            return 1
        return 0
    if a.what == "export":
        if not a.out:
            ap.error("export needs --out DIR")
        for k, p in export_onnx(a.models, a.out, photo).items():
            print(k, p)
        return 0
    # ctest runs `check` (test_tflite_torch_peer): what it needs and lacks is a skip (77)
    need = [os.path.join(a.models, PALM_FILE), os.path.join(a.models, LANDMARK_FILE), photo, a.shoal]
    missing = [p for p in need if not os.path.exists(p)]
    try:
        import PIL  # noqa: F401
    except ImportError:
        missing.append("Pillow (python3-pil)")
    if missing:
        print("skipped: missing " + ", ".join(missing))
        return 77
    os.makedirs(a.tmp, exist_ok=True)
    print("torch modules vs shoal exec (random input in [0.02, 1)):")
    rel = check_against_shoal(a.models, a.shoal, a.tmp)
    print("torch modules vs MediaPipe's expected results on left_hands.jpg:")
    ok = check_against_mediapipe(a.models, a.hands)
    ok &= rel <= 1e-4
    print("check %s (largest rel L2 vs shoal %.2e, bound 1e-4)" % ("passed" if ok else "FAILED", rel))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
