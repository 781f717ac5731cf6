#!/usr/bin/python3
"""Writes shoal's reference model set (the AIGlasses five) into models/.

The networks follow the public ultralytics YOLO11 and YOLOv8 definitions (yolo11.yaml,
yolo11-seg.yaml, yolov8.yaml, yolov8-seg.yaml) and torchvision's mobilenet_v3_small, with the same layer graph, channel scaling and export
output layout, so a real `yolo export format=onnx opset=17` file drops in for any of them.
The weights are random but seeded and calibrated: every BatchNorm gets running statistics
measured on a batch of calibration images and then perturbed, so activations stay in a sane range
through 300+ layers and the BN statistics are not the trivial (0, 1).

blind_road (YOLO11s-seg) and shopping (YOLO11s) share layers 0..22 bit for bit; only their
heads differ. That is what the weight store's content-hash dedup must find.

Also writes, per model, a fixed input (<name>.input.npy, uniform [0,1)) and PyTorch's
float32 outputs for it (<name>.<output>.npy), and MANIFEST.json. Run with Debian's
/usr/bin/python3 (torch 1.13, onnx 1.12); bench/pytorch_runner.py imports build_model().

Two sets: "small" (the default, models/: keeps CI fast) and "full" (--set full, models-full/:
the original system's sizes, YOLOv8x-seg / YOLO11l-seg / YOLOv8l / YOLOv8m). --check-params
builds every full-set architecture at nc=80 and compares its parameter count with ultralytics'
published one (PUBLISHED below), without exporting anything.
"""
import argparse
import hashlib
import json
import math
import os
import sys
import time
from statistics import NormalDist

import warnings

import numpy as np
import torch
from torch import nn

# The int() shape reads are deliberate (static shapes); the tracer's warnings about them are noise.
warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
warnings.filterwarnings("ignore", message="The shape inference of prim::Constant")

OPSET = 17
IMGSZ = 640
STRIDES = (8, 16, 32)
REG_MAX = 16
CALIB_SEED = 20240601
# Calibrated BN: beta ~ N(0.75, 0.25) keeps SiLU nearer its linear range and residual-branch
# gammas ~ U(0.2, 0.5) (Fixup-like). Together they cut the float32-vs-float64 error at the
# outputs ~10x: with beta ~ N(0, .25) and gamma ~ 1 everywhere, a random YOLO11-L is chaotic
# enough that float rounding alone gives relative L2 ~3e-4 between two correct runtimes.
BN_BETA_MEAN = 0.75
RES_GAMMA = (0.2, 0.5)

ALLOWED_OPS = {
    "Conv", "ConvTranspose", "BatchNormalization", "Relu", "Sigmoid", "HardSigmoid",
    "HardSwish", "Clip", "Exp", "Mul", "Add", "Sub", "Div", "Concat", "Split", "Slice",
    "MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Upsample", "Reshape",
    "Transpose", "Softmax", "MatMul", "Gemm", "Flatten", "Constant", "ConstantOfShape",
    "Shape", "Gather", "Unsqueeze", "Squeeze", "Identity", "Expand", "Cast", "Pad",
    "ReduceMean",
}

# name -> architecture. trunk_seed seeds layers 0..22 (backbone + neck); seed the rest.
MODELS = {
    "blind_road":    dict(kind="yolo", scale="s", nc=2,  task="segment", seed=101, trunk_seed=7),
    "obstacle":      dict(kind="yolo", scale="l", nc=80, task="segment", seed=202, trunk_seed=202),
    "shopping":      dict(kind="yolo", scale="s", nc=40, task="detect",  seed=303, trunk_seed=7),
    "traffic_light": dict(kind="yolo", scale="n", nc=4,  task="detect",  seed=404, trunk_seed=404),
    "hand":          dict(kind="hand", imgsz=224, seed=505),
}
# The original system's sizes. obstacle is the small set's own (already YOLO11l-seg: the same
# file). The full set has no hand network: configs/aiglasses-full.yaml runs MediaPipe's hand
# landmarker from its .tflite files (scripts/fetch-hand-models.sh). The small set keeps the
# MobileNetV3 stand-in (hand.onnx) for the tests and test configs that still load it.
MODELS_FULL = {
    "blind_road":    dict(kind="yolo", arch="yolov8", scale="x", nc=2,  task="segment", seed=111, trunk_seed=111),
    "obstacle":      MODELS["obstacle"],
    "shopping":      dict(kind="yolo", arch="yolov8", scale="m", nc=40, task="detect",  seed=313, trunk_seed=313),
    "traffic_light": dict(kind="yolo", arch="yolov8", scale="l", nc=4,  task="detect",  seed=414, trunk_seed=414),
}
SETS = {"small": MODELS, "full": MODELS_FULL}
ORDER = ["blind_road", "obstacle", "shopping", "traffic_light", "hand"]
INPUT_SEEDS = {n: 9000 + i for i, n in enumerate(ORDER)}
SET = "small"


def exported_names():
    """The networks the current set exports, in ORDER (the full set's hand is not one)."""
    return [n for n in ORDER if n in MODELS]


def use_set(name):
    """Makes MODELS the named set: build_model, model_io and the runners all read MODELS."""
    global MODELS, SET
    MODELS, SET = SETS[name], name


# ultralytics scales: depth multiple, width multiple, max channels (yolo11.yaml, yolov8.yaml)
SCALES = {"n": (0.50, 0.25, 1024), "s": (0.50, 0.50, 1024), "m": (0.50, 1.00, 512),
          "l": (1.00, 1.00, 512), "x": (1.00, 1.50, 512)}
SCALES_V8 = {"n": (0.33, 0.25, 1024), "s": (0.33, 0.50, 1024), "m": (0.67, 0.75, 768),
             "l": (1.00, 1.00, 512), "x": (1.00, 1.25, 512)}

# ultralytics' parameter counts at nc=80, as built from the yaml (model.info() before fusing:
# BatchNorm weight and bias counted, the DFL conv's 16 included). Sources: the "summary:" comments
# of ultralytics/cfg/models/v8/yolov8.yaml and 11/yolo11-seg.yaml (commit 023641f); yolov8-seg.yaml
# has none: YOLOv8x-seg's 71,827,888 (71,797,696 fused, the docs' "71.8M") is the loaded
# yolov8x-seg.pt's count as printed by ultralytics (and 71,753,737 at nc=3 in a training log).
PUBLISHED = {
    ("yolov8", "x", "segment", 80): 71_827_888,
    ("yolov8", "x", "segment", 3): 71_753_737,
    ("yolov8", "x", "detect", 80): 68_229_648,
    ("yolov8", "l", "detect", 80): 43_691_520,
    ("yolov8", "m", "detect", 80): 25_902_640,
    ("yolo11", "l", "segment", 80): 27_678_368,
}


# ----------------------------------------------------------------------------- modules
def autopad(k, p=None, d=1):
    if d > 1:
        k = d * (k - 1) + 1
    return k // 2 if p is None else p


class Conv(nn.Module):
    """Conv2d + BatchNorm2d + SiLU (ultralytics Conv)."""

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2, eps=1e-3, momentum=0.03)
        self.act = nn.SiLU() if act is True else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class DWConv(Conv):
    def __init__(self, c1, c2, k=1, s=1, d=1, act=True):
        super().__init__(c1, c2, k, s, g=math.gcd(c1, c2), d=d, act=act)


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=(3, 3), e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).split((self.c, self.c), 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))


class C3(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c1, c_, 1, 1)
        self.cv3 = Conv(2 * c_, c2, 1)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, k=(1, 3), e=1.0) for _ in range(n)))

    def forward(self, x):
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


class C3k(C3):
    def __init__(self, c1, c2, n=1, shortcut=True, g=1, e=0.5, k=3):
        super().__init__(c1, c2, n, shortcut, g, e)
        c_ = int(c2 * e)
        self.m = nn.Sequential(*(Bottleneck(c_, c_, shortcut, g, k=(k, k), e=1.0) for _ in range(n)))


class C3k2(C2f):
    def __init__(self, c1, c2, n=1, c3k=False, e=0.5, g=1, shortcut=True):
        super().__init__(c1, c2, n, shortcut, g, e)
        self.m = nn.ModuleList(
            C3k(self.c, self.c, 2, shortcut, g) if c3k else Bottleneck(self.c, self.c, shortcut, g)
            for _ in range(n))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))


class Attention(nn.Module):
    def __init__(self, dim, num_heads=8, attn_ratio=0.5):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.key_dim = int(self.head_dim * attn_ratio)
        self.scale = self.key_dim ** -0.5
        nh_kd = self.key_dim * num_heads
        self.qkv = Conv(dim, dim + nh_kd * 2, 1, act=False)
        self.proj = Conv(dim, dim, 1, act=False)
        self.pe = Conv(dim, dim, 3, 1, g=dim, act=False)

    def forward(self, x):
        # Static shapes: plain ints keep Shape/Gather plumbing out of the exported graph.
        B, C, H, W = (int(v) for v in x.shape)
        N = H * W
        qkv = self.qkv(x)
        q, k, v = qkv.view(B, self.num_heads, self.key_dim * 2 + self.head_dim, N).split(
            [self.key_dim, self.key_dim, self.head_dim], dim=2)
        attn = (q.transpose(-2, -1) @ k) * self.scale
        attn = attn.softmax(dim=-1)
        x = (v @ attn.transpose(-2, -1)).view(B, C, H, W) + self.pe(v.reshape(B, C, H, W))
        return self.proj(x)


class PSABlock(nn.Module):
    def __init__(self, c, attn_ratio=0.5, num_heads=4, shortcut=True):
        super().__init__()
        self.attn = Attention(c, attn_ratio=attn_ratio, num_heads=num_heads)
        self.ffn = nn.Sequential(Conv(c, c * 2, 1), Conv(c * 2, c, 1, act=False))
        self.add = shortcut

    def forward(self, x):
        x = x + self.attn(x) if self.add else self.attn(x)
        x = x + self.ffn(x) if self.add else self.ffn(x)
        return x


class C2PSA(nn.Module):
    def __init__(self, c1, c2, n=1, e=0.5):
        super().__init__()
        assert c1 == c2
        self.c = int(c1 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv(2 * self.c, c1, 1)
        self.m = nn.Sequential(*(PSABlock(self.c, attn_ratio=0.5, num_heads=self.c // 64) for _ in range(n)))

    def forward(self, x):
        a, b = self.cv1(x).split((self.c, self.c), dim=1)
        b = self.m(b)
        return self.cv2(torch.cat((a, b), 1))


class Concat(nn.Module):
    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)


class DFL(nn.Module):
    """Distribution focal loss integral: expected bin index of a 16-way softmax."""

    def __init__(self, c1=16):
        super().__init__()
        self.conv = nn.Conv2d(c1, 1, 1, bias=False).requires_grad_(False)
        self.conv.weight.data[:] = torch.arange(c1, dtype=torch.float).view(1, c1, 1, 1)
        self.conv.fixed_init = True
        self.c1 = c1

    def forward(self, x):
        b, _, a = (int(v) for v in x.shape)
        return self.conv(x.view(b, 4, self.c1, a).transpose(2, 1).softmax(1)).view(b, 4, a)


def make_anchors(imgsz, strides, offset=0.5):
    """Anchor centres (grid units) and per-anchor strides, precomputed: no Range in the graph."""
    pts, strd = [], []
    for s in strides:
        h = w = imgsz // s
        sx = torch.arange(w, dtype=torch.float32) + offset
        sy = torch.arange(h, dtype=torch.float32) + offset
        yy, xx = torch.meshgrid(sy, sx, indexing="ij")
        pts.append(torch.stack((xx, yy), -1).view(-1, 2))
        strd.append(torch.full((h * w, 1), float(s)))
    return torch.cat(pts).t().contiguous(), torch.cat(strd).t().contiguous()


class Detect(nn.Module):
    """YOLOv8/YOLO11 detect head in export form: [1, 4+nc, A], xywh in input pixels, sigmoid scores."""

    def __init__(self, nc=80, ch=(), imgsz=IMGSZ, legacy=False):
        super().__init__()
        self.nc = nc
        self.nl = len(ch)
        self.reg_max = REG_MAX
        self.no = nc + self.reg_max * 4
        c2, c3 = max((16, ch[0] // 4, self.reg_max * 4)), max(ch[0], min(self.nc, 100))
        self.cv2 = nn.ModuleList(
            nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * self.reg_max, 1)) for x in ch)
        # YOLOv8's class branch is two plain 3x3 convs (ultralytics' Detect.legacy); YOLO11's
        # is depthwise + pointwise.
        self.cv3 = nn.ModuleList(
            nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, self.nc, 1)) if legacy else
            nn.Sequential(nn.Sequential(DWConv(x, x, 3), Conv(x, c3, 1)),
                          nn.Sequential(DWConv(c3, c3, 3), Conv(c3, c3, 1)),
                          nn.Conv2d(c3, self.nc, 1)) for x in ch)
        for m in self.cv2:
            m[-1].calib_target = (0.0, 2.0)      # DFL logits
        # Class logits ~ N(mu, 1.5) with mu set so that ~1.5% of anchors have a best class score
        # above 0.25 whatever nc is: enough candidates to exercise NMS, not a saturated sheet.
        p_cls = 1.0 - (1.0 - 0.015) ** (1.0 / nc)
        mu = math.log(0.25 / 0.75) - 1.5 * NormalDist().inv_cdf(1.0 - p_cls)
        for m in self.cv3:
            m[-1].calib_target = (mu, 1.5)
        self.dfl = DFL(self.reg_max)
        anchors, strides = make_anchors(imgsz, STRIDES[:self.nl])
        self.register_buffer("anchors", anchors.unsqueeze(0))   # [1, 2, A]
        self.register_buffer("strides", strides.unsqueeze(0))   # [1, 1, A]

    def forward(self, x):
        x = list(x)
        for i in range(self.nl):
            x[i] = torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)
        bs = int(x[0].shape[0])
        x_cat = torch.cat([xi.view(bs, self.no, -1) for xi in x], 2)
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        lt, rb = self.dfl(box).split((2, 2), 1)
        x1y1 = self.anchors - lt
        x2y2 = self.anchors + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * self.strides
        return torch.cat((dbox, cls.sigmoid()), 1)


class Proto(nn.Module):
    def __init__(self, c1, c_=256, c2=32):
        super().__init__()
        self.cv1 = Conv(c1, c_, k=3)
        self.upsample = nn.ConvTranspose2d(c_, c_, 2, 2, 0, bias=True)
        self.cv2 = Conv(c_, c_, k=3)
        self.cv3 = Conv(c_, c2)

    def forward(self, x):
        return self.cv3(self.cv2(self.upsample(self.cv1(x))))


class Segment(Detect):
    """Detect + 32 mask coefficients per anchor, and 32 prototype masks at 1/4 resolution."""

    def __init__(self, nc=80, nm=32, npr=256, ch=(), imgsz=IMGSZ, legacy=False):
        super().__init__(nc, ch, imgsz, legacy)
        self.nm = nm
        self.npr = npr
        self.proto = Proto(ch[0], self.npr, self.nm)
        c4 = max(ch[0] // 4, self.nm)
        self.cv4 = nn.ModuleList(
            nn.Sequential(Conv(x, c4, 3), Conv(c4, c4, 3), nn.Conv2d(c4, self.nm, 1)) for x in ch)
        for m in self.cv4:
            m[-1].calib_target = (0.0, 1.0)

    def forward(self, x):
        p = self.proto(x[0])
        bs = int(p.shape[0])
        mc = torch.cat([self.cv4[i](x[i]).view(bs, self.nm, -1) for i in range(self.nl)], 2)
        y = Detect.forward(self, x)
        return torch.cat([y, mc], 1), p


def make_divisible(x, divisor=8):
    return int(math.ceil(x / divisor) * divisor)


# yolo11.yaml: (from, repeats, module, args)
YOLO11 = [
    (-1, 1, "Conv", [64, 3, 2]),            # 0 P1/2
    (-1, 1, "Conv", [128, 3, 2]),           # 1 P2/4
    (-1, 2, "C3k2", [256, False, 0.25]),
    (-1, 1, "Conv", [256, 3, 2]),           # 3 P3/8
    (-1, 2, "C3k2", [512, False, 0.25]),
    (-1, 1, "Conv", [512, 3, 2]),           # 5 P4/16
    (-1, 2, "C3k2", [512, True]),
    (-1, 1, "Conv", [1024, 3, 2]),          # 7 P5/32
    (-1, 2, "C3k2", [1024, True]),
    (-1, 1, "SPPF", [1024, 5]),             # 9
    (-1, 2, "C2PSA", [1024]),               # 10
    (-1, 1, "Upsample", [None, 2, "nearest"]),
    ([-1, 6], 1, "Concat", [1]),
    (-1, 2, "C3k2", [512, False]),          # 13
    (-1, 1, "Upsample", [None, 2, "nearest"]),
    ([-1, 4], 1, "Concat", [1]),
    (-1, 2, "C3k2", [256, False]),          # 16 P3/8
    (-1, 1, "Conv", [256, 3, 2]),
    ([-1, 13], 1, "Concat", [1]),
    (-1, 2, "C3k2", [512, False]),          # 19 P4/16
    (-1, 1, "Conv", [512, 3, 2]),
    ([-1, 10], 1, "Concat", [1]),
    (-1, 2, "C3k2", [1024, True]),          # 22 P5/32
]
TRUNK_LAYERS = len(YOLO11)  # 23: layers 0..22; layer 23 is the head

# yolov8.yaml (yolov8-seg.yaml has the same layers and a Segment head)
YOLOV8 = [
    (-1, 1, "Conv", [64, 3, 2]),            # 0 P1/2
    (-1, 1, "Conv", [128, 3, 2]),           # 1 P2/4
    (-1, 3, "C2f", [128, True]),
    (-1, 1, "Conv", [256, 3, 2]),           # 3 P3/8
    (-1, 6, "C2f", [256, True]),
    (-1, 1, "Conv", [512, 3, 2]),           # 5 P4/16
    (-1, 6, "C2f", [512, True]),
    (-1, 1, "Conv", [1024, 3, 2]),          # 7 P5/32
    (-1, 3, "C2f", [1024, True]),
    (-1, 1, "SPPF", [1024, 5]),             # 9
    (-1, 1, "Upsample", [None, 2, "nearest"]),
    ([-1, 6], 1, "Concat", [1]),
    (-1, 3, "C2f", [512]),                  # 12
    (-1, 1, "Upsample", [None, 2, "nearest"]),
    ([-1, 4], 1, "Concat", [1]),
    (-1, 3, "C2f", [256]),                  # 15 P3/8
    (-1, 1, "Conv", [256, 3, 2]),
    ([-1, 12], 1, "Concat", [1]),
    (-1, 3, "C2f", [512]),                  # 18 P4/16
    (-1, 1, "Conv", [512, 3, 2]),
    ([-1, 9], 1, "Concat", [1]),
    (-1, 3, "C2f", [1024]),                 # 21 P5/32
]
# arch -> (layers, scales, the head's inputs)
ARCHS = {"yolo11": (YOLO11, SCALES, [16, 19, 22]), "yolov8": (YOLOV8, SCALES_V8, [15, 18, 21])}


class YOLO(nn.Module):
    """YOLO11 or YOLOv8 built the way ultralytics' parse_model builds it (state_dict keys model.N.*)."""

    def __init__(self, scale, nc, task, imgsz=IMGSZ, arch="yolo11"):
        super().__init__()
        graph, scales, hfrom = ARCHS[arch]
        depth, width, max_ch = scales[scale]
        ch = [3]
        layers, froms = [], []
        for f, n, mname, args in graph:
            args = list(args)
            n = max(round(n * depth), 1) if n > 1 else n
            if mname in ("Conv", "C3k2", "SPPF", "C2PSA", "C2f"):
                c1, c2 = ch[f], make_divisible(min(args[0], max_ch) * width, 8)
                rest = args[1:]
                if mname == "Conv":
                    m = Conv(c1, c2, *rest)
                elif mname == "SPPF":
                    m = SPPF(c1, c2, *rest)
                elif mname == "C2PSA":
                    m = C2PSA(c1, c2, n)
                elif mname == "C2f":
                    m = C2f(c1, c2, n, *rest)
                else:
                    c3k = True if scale in "mlx" else rest[0]
                    m = C3k2(c1, c2, n, c3k, *rest[1:])
            elif mname == "Upsample":
                m, c2 = nn.Upsample(None, 2, "nearest"), ch[f]
            elif mname == "Concat":
                m, c2 = Concat(1), sum(ch[x] for x in f)
            layers.append(m)
            froms.append(f)
            if len(layers) == 1:
                ch = []          # from here on ch[i] is layer i's output channels
            ch.append(c2)
        hch = [ch[i] for i in hfrom]
        legacy = arch == "yolov8"
        if task == "segment":
            npr = make_divisible(min(256, max_ch) * width, 8)
            head = Segment(nc, 32, npr, hch, imgsz, legacy)
        else:
            head = Detect(nc, hch, imgsz, legacy)
        layers.append(head)
        froms.append(hfrom)
        self.model = nn.ModuleList(layers)
        self.froms = froms
        self.task, self.nc, self.scale = task, nc, scale

    def forward(self, x):
        y = []
        for m, f in zip(self.model, self.froms):
            if f != -1:
                x = y[f] if isinstance(f, int) else [x if j == -1 else y[j] for j in f]
            x = m(x)
            y.append(x)
        return x


class HandLandmarks(nn.Module):
    """MobileNetV3-small features + regression head: [1, 65] = 21 x (x, y, z), presence, handedness.

    x, y are in input pixels (0..imgsz), z in (-imgsz/2, imgsz/2) relative to the wrist plane
    (MediaPipe's convention, same units as x), presence and handedness (1 = right) are probabilities.
    """

    def __init__(self, imgsz=224):
        super().__init__()
        import torchvision
        self.features = torchvision.models.mobilenet_v3_small(weights=None).features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(576, 1024)
        self.act = nn.Hardswish()
        self.fc2 = nn.Linear(1024, 65)
        self.fc2.calib_target = (0.0, 1.5)
        scale = torch.ones(65)
        offset = torch.zeros(65)
        for i in range(21):
            scale[3 * i] = scale[3 * i + 1] = float(imgsz)
            scale[3 * i + 2], offset[3 * i + 2] = float(imgsz), -imgsz / 2.0
        self.register_buffer("out_scale", scale.view(1, 65))
        self.register_buffer("out_offset", offset.view(1, 65))

    def forward(self, x):
        x = self.flatten(self.pool(self.features(x)))
        x = self.fc2(self.act(self.fc1(x)))
        return torch.sigmoid(x) * self.out_scale + self.out_offset


# ----------------------------------------------------------------------------- weights
def _rng(*key):
    h = hashlib.sha256(repr(key).encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(h[:8], "little")))


def _seed_of(name, spec):
    """Trunk layers (model.0 .. model.22) take the trunk seed so shared trunks are identical."""
    if spec["kind"] == "yolo" and name.startswith("model."):
        if int(name.split(".")[1]) < TRUNK_LAYERS:
            return spec["trunk_seed"]
    return spec["seed"]


def init_weights(model, spec):
    """numpy PCG64 draws, keyed by (seed, module name): stable across torch versions and devices."""
    for name, m in model.named_modules():
        if getattr(m, "fixed_init", False):
            continue
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.weight
            fan_in = w[0].numel()
            if isinstance(m, nn.ConvTranspose2d):   # weight [in, out, 2, 2], stride 2: one tap per output
                fan_in = w.shape[0] * w.shape[2] * w.shape[3] // 4
            g = _rng(_seed_of(name, spec), name, "w")
            w.data = torch.from_numpy(g.normal(0, 1 / math.sqrt(fan_in), tuple(w.shape)).astype(np.float32))
            if m.bias is not None:
                m.bias.data = torch.from_numpy(g.normal(0, 0.1, tuple(m.bias.shape)).astype(np.float32))


def _calib_input(hw):
    """A batch of 4 unlike images: noise, two smooth random fields, low-contrast noise. The BN
    statistics must hold across images; one image's spatial variance alone is too small in the
    deep layers and a different input then blows activations up by 100x."""
    g = _rng(CALIB_SEED, hw)
    up = lambda c: nn.functional.interpolate(torch.from_numpy(g.random((1, 3, c, c), dtype=np.float32)),
                                             size=(hw, hw), mode="bilinear", align_corners=False)
    noise = lambda: torch.from_numpy(g.random((1, 3, hw, hw), dtype=np.float32))
    return torch.cat([noise(), up(hw // 32), 0.9 * up(5) + 0.1 * noise(), 0.5 * noise() + 0.25])


@torch.no_grad()
def calibrate(model, spec, hw, skip_prefixes=()):
    """One eval-mode forward; each BN takes its running stats from the activations it sees,
    then perturbs them (mean +- 0.1 std, var x e^N(0, 0.2)), with random gamma/beta. Final
    head layers are rescaled to a target (mean, std) of their outputs."""
    hooks = []
    names = {m: n for n, m in model.named_modules()}
    # BNs that end a residual branch get a small gamma (see RES_GAMMA).
    res_end = set()
    for m in model.modules():
        if isinstance(m, Bottleneck) and m.add:
            res_end.add(m.cv2.bn)
        elif isinstance(m, PSABlock):
            res_end.update((m.attn.proj.bn, m.ffn[1].bn))

    def bn_pre(m, inp):
        name = names[m]
        x = inp[0].double()
        mean = x.mean((0, 2, 3))
        var = x.var((0, 2, 3), unbiased=False)
        g = _rng(_seed_of(name, spec), name, "bn")
        c = m.num_features
        dev = lambda a: torch.from_numpy(a).to(x.device)
        m.running_mean.copy_((mean + 0.1 * var.sqrt() * dev(g.normal(0, 1, c))).float())
        m.running_var.copy_((var * dev(np.exp(g.normal(0, 0.2, c)))).float())
        lo, hi = RES_GAMMA if m in res_end else (0.6, 1.4)
        m.weight.data.copy_(torch.from_numpy(g.uniform(lo, hi, c)).float())
        m.bias.data.copy_(torch.from_numpy(g.normal(BN_BETA_MEAN, 0.25, c)).float())

    def head_post(m, inp, out):
        tmean, tstd = m.calib_target
        o = out.double()
        k = tstd / max(float(o.std()), 1e-12)
        mu = float(o.mean())
        m.weight.data.mul_(k)
        m.bias.data.copy_(((m.bias.data.double() - mu) * k + tmean).float())
        return m._conv_forward(inp[0], m.weight, m.bias) if isinstance(m, nn.Conv2d) \
            else nn.functional.linear(inp[0], m.weight, m.bias)

    for name, m in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes):
            continue
        if isinstance(m, nn.BatchNorm2d):
            hooks.append(m.register_forward_pre_hook(bn_pre))
        elif hasattr(m, "calib_target"):
            hooks.append(m.register_forward_hook(head_post))
    model.eval()
    on = next(model.parameters()).device
    model(_calib_input(hw).to(on))
    for h in hooks:
        h.remove()
    # The heads' output statistics differ between smooth images and noise. The reference inputs
    # are noise, so set the heads' targets on one noise image (not the reference input itself).
    hooks = [m.register_forward_hook(head_post) for name, m in model.named_modules()
             if hasattr(m, "calib_target") and not any(name.startswith(p) for p in skip_prefixes)]
    model(torch.from_numpy(_rng(CALIB_SEED, hw, "head").random((1, 3, hw, hw), dtype=np.float32)).to(on))
    for h in hooks:
        h.remove()


_TRUNKS = {}


def build_model(name, device="cpu", calib_device=None):
    """The reference network `name`, in eval mode, float32. Deterministic for a given name.
    calib_device="cuda" runs the BN calibration there (the full set's big networks take minutes
    on a CPU): the same seeds, statistics equal to float rounding, so not the same bytes."""
    spec = MODELS[name]
    calib = calib_device or "cpu"
    if spec["kind"] == "hand":
        model = HandLandmarks(spec["imgsz"])
        init_weights(model, spec)
        calibrate(model.to(calib), spec, spec["imgsz"])
    else:
        arch = spec.get("arch", "yolo11")
        model = YOLO(spec["scale"], spec["nc"], spec["task"], arch=arch)
        init_weights(model, spec)
        model.to(calib)
        key = (arch, spec["scale"], spec["trunk_seed"])
        skip = ()
        if key in _TRUNKS:
            # Copy, not recompute: the shared layers must be bit-identical.
            model.load_state_dict(_TRUNKS[key], strict=False)
            skip = tuple(f"model.{i}." for i in range(TRUNK_LAYERS))
        calibrate(model, spec, IMGSZ, skip)
        if key not in _TRUNKS:
            _TRUNKS[key] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                            if k.startswith("model.") and int(k.split(".")[1]) < TRUNK_LAYERS}
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def model_io(name):
    """(input shape, [(output name, shape)]) of the exported graph."""
    spec = MODELS[name]
    if spec["kind"] == "hand":
        s = spec["imgsz"]
        return (1, 3, s, s), [("output0", (1, 65))]
    a = sum((IMGSZ // s) ** 2 for s in STRIDES)
    if spec["task"] == "segment":
        return (1, 3, IMGSZ, IMGSZ), [("output0", (1, 4 + spec["nc"] + 32, a)),
                                      ("output1", (1, 32, IMGSZ // 4, IMGSZ // 4))]
    return (1, 3, IMGSZ, IMGSZ), [("output0", (1, 4 + spec["nc"], a))]


def make_input(name):
    shape, _ = model_io(name)
    return _rng(INPUT_SEEDS[name], "input").random(shape, dtype=np.float32)


# ----------------------------------------------------------------------------- export
def export_one(name, model, outdir):
    import onnx
    import onnx.numpy_helper
    shape, outs = model_io(name)
    x = make_input(name)
    path = os.path.join(outdir, f"{name}.onnx")
    xt = torch.from_numpy(x)
    with torch.no_grad():
        y = model(xt)
    y = y if isinstance(y, tuple) else (y,)
    torch.onnx.export(model, xt, path, opset_version=OPSET, do_constant_folding=True,
                      input_names=["images"], output_names=[o for o, _ in outs],
                      training=torch.onnx.TrainingMode.EVAL)
    np.save(os.path.join(outdir, f"{name}.input.npy"), x)
    stats = {}
    for (oname, oshape), t in zip(outs, y):
        a = t.numpy().astype(np.float32)
        assert tuple(a.shape) == tuple(oshape), (name, oname, a.shape, oshape)
        np.save(os.path.join(outdir, f"{name}.{oname}.npy"), a)
        stats[oname] = dict(min=float(a.min()), max=float(a.max()), mean=float(a.mean()), std=float(a.std()))

    m = onnx.load(path)
    onnx.checker.check_model(m)
    inferred = onnx.shape_inference.infer_shapes(m)
    got = {o.name: [d.dim_value for d in o.type.tensor_type.shape.dim] for o in inferred.graph.output}
    for oname, oshape in outs:
        assert got[oname] == list(oshape), (name, oname, got[oname], oshape)
    ops = {}
    for n in m.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    bad = sorted(set(ops) - ALLOWED_OPS)
    inits = {}
    init_bytes = 0
    for t in m.graph.initializer:
        raw = onnx.numpy_helper.to_array(t).tobytes()
        inits[hashlib.sha256(raw).hexdigest()] = len(raw)
        init_bytes += len(raw)
    info = dict(
        file=f"{name}.onnx", input=dict(name="images", shape=list(shape), file=f"{name}.input.npy"),
        outputs=[dict(name=o, shape=list(s), file=f"{name}.{o}.npy") for o, s in outs],
        params_torch=int(sum(p.numel() for p in model.parameters())),
        params_torch_with_buffers=int(sum(p.numel() for p in model.parameters())
                                      + sum(b.numel() for b in model.buffers())),
        onnx_initializers=len(m.graph.initializer),
        onnx_initializer_bytes=init_bytes,
        onnx_file_bytes=os.path.getsize(path),
        nodes=len(m.graph.node), ops=dict(sorted(ops.items())), disallowed_ops=bad,
        output_stats=stats, **{k: v for k, v in MODELS[name].items() if k not in ("seed", "trunk_seed")})
    return info, inits


def count_params(model):
    """(parameters, parameters after Conv+BN fusing): fusing drops each BN's weight and bias
    and gives its conv a bias, one number per channel."""
    n = sum(p.numel() for p in model.parameters())
    return n, n - sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def check_params():
    """Every PUBLISHED architecture built (no weights drawn, nothing exported) and counted
    against ultralytics' number, then the full set's models at their configured nc. 0 when
    all match."""
    bad = 0
    print("architecture            nc   parameters   published  fused        check")
    for (arch, scale, task, nc), want in PUBLISHED.items():
        got, fused = count_params(YOLO(scale, nc, task, arch=arch))
        ok = got == want
        bad += not ok
        name = f"{arch}{scale}{'-seg' if task == 'segment' else ''}"
        print(f"{name:22s} {nc:3d} {got:12,d} {want:11,d}  {fused:11,d}  "
              f"{'ok' if ok else f'MISMATCH ({got - want:+,d})'}", flush=True)
    print("full set, as configured:")
    for n in ORDER:
        spec = MODELS_FULL.get(n)
        if spec is None:
            print(f"  {n:14s} MediaPipe's hand landmarker (.tflite files, not exported)", flush=True)
            continue
        got, fused = count_params(YOLO(spec["scale"], spec["nc"], spec["task"], arch=spec.get("arch", "yolo11")))
        what = f"{spec.get('arch', 'yolo11')}{spec['scale']}{'-seg' if spec['task'] == 'segment' else ''} nc={spec['nc']}"
        print(f"  {n:14s} {what:34s} {got:12,d} (fused {fused:,d})", flush=True)
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--set", choices=sorted(SETS), default="small")
    ap.add_argument("--out", default=None, help="default: models/ (small), models-full/ (full)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="export only these models")
    ap.add_argument("--check-params", action="store_true", help="compare parameter counts with ultralytics' and exit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.check_params:
        return check_params()
    use_set(args.set)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = os.path.abspath(args.out or os.path.join(root, "models" if args.set == "small" else "models-full"))
    os.makedirs(out, exist_ok=True)
    t0 = time.time()
    manifest = dict(torch=torch.__version__, opset=OPSET, models={})
    if args.set != "small":
        manifest["set"] = args.set
    hashes = {}
    names = args.only or exported_names()
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        ap.error(f"--only: the {args.set} set exports none of {unknown} (it has {exported_names()})")
    # shopping copies blind_road's trunk, so build blind_road first whatever the order asked.
    build_order = sorted(names, key=ORDER.index)
    if SET == "small" and "shopping" in build_order and "blind_road" not in build_order:
        build_model("blind_road")
    for name in build_order:
        t1 = time.time()
        model = build_model(name)
        info, hashes[name] = export_one(name, model, out)
        info["build_export_s"] = round(time.time() - t1, 2)
        manifest["models"][name] = info
        print(f"{name:14s} params {info['params_torch']:>10,d}  init bytes {info['onnx_initializer_bytes']:>11,d}"
              f"  nodes {info['nodes']:4d}  {info['build_export_s']:.1f}s  ops {','.join(info['ops'])}",
              flush=True)
        if info["disallowed_ops"]:
            print(f"  ERROR {name}: ops outside the allowed set: {info['disallowed_ops']}", file=sys.stderr)
        for o, s in info["output_stats"].items():
            print(f"  {o}: min {s['min']:.4g} max {s['max']:.4g} mean {s['mean']:.4g} std {s['std']:.4g}")
    if "blind_road" in hashes and "shopping" in hashes:
        common = set(hashes["blind_road"]) & set(hashes["shopping"])
        manifest["shared"] = dict(models=["blind_road", "shopping"], tensors=len(common),
                                  bytes=int(sum(hashes["blind_road"][h] for h in common)))
        print(f"shared blind_road/shopping: {len(common)} tensors, {manifest['shared']['bytes']:,d} bytes")
    manifest["export_s"] = round(time.time() - t0, 1)
    manifest["threads"] = args.threads
    if args.only is None:
        with open(os.path.join(out, "MANIFEST.json"), "w") as f:
            json.dump(manifest, f, indent=1)
    print(f"export took {manifest['export_s']} s")
    bad = [n for n, i in manifest["models"].items() if i["disallowed_ops"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
