#!/usr/bin/python3
"""Writes tests/exports/data/: tiny ultralytics-style exports of the kinds users bring (issue 3,
items 4-7), with PyTorch's outputs as the reference.

  det.onnx         detect head [1, 4+3, N] (cx cy w h in input pixels, sigmoid scores), static
                   64x64 input, ultralytics metadata (names, imgsz, task, stride)
  det_fp16.onnx    the same model as a half=True export: fp16 weights, input and output, and
                   the fp32 island around the score sigmoid that half exports carry (Cast to
                   float before it, Cast to float16 after)
  det_dynamic.onnx the same model exported with dynamic height/width (its anchor grid is built
                   with Range from the input's shape); metadata imgsz [48, 64]
  e2e.onnx         a YOLOv10-style NMS-free head: ReduceMax + TopK over the scores, gathers
                   of boxes and scores (GatherElements), a second TopK over the flattened
                   scores, Mod/Div for class and anchor: [1, 20, 6] x1 y1 x2 y2 score class
  e2e_v8.onnx      ultralytics 8.3's end-to-end postprocess (advanced indexing of the boxes)
  e2e_seg.onnx     a segmenting NMS-free head: [1, 20, 6 + 4] rows (class by ArgMax) and
                   prototypes [1, 4, 32, 32]
  *_input.npy, *_output.npy   a random input and PyTorch's output for it (float32)

torch 1.13 cannot run a half-precision Conv on the CPU, so det_fp16.onnx is the fp32 export
rewritten the way a half export lays it out (its numbers still come from the same weights).
Deterministic; rerun after changing it and commit the output. Uses Debian's python3-torch,
python3-onnx and numpy:  /usr/bin/python3 tests/exports/gen_export_models.py"""
import os

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

torch.set_num_threads(1)
HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
NAMES = {0: "person", 1: "men's bike", 2: "car"}   # str() quotes the second name with "..."
NC = len(NAMES)
MAX_DET = 20
NM = 4   # mask coefficients of the segmenting head


class Backbone(torch.nn.Module):
    """Three stride-2 convs (stride 8 overall) and a 1x1 head of 4 + NC channels."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, 2, 1)
        self.c2 = torch.nn.Conv2d(8, 16, 3, 2, 1)
        self.c3 = torch.nn.Conv2d(16, 16, 3, 2, 1)
        self.head = torch.nn.Conv2d(16, 4 + NC, 1)

    def raw(self, x):
        f = torch.nn.functional.silu(self.c1(x))
        f = torch.nn.functional.silu(self.c2(f))
        f = torch.nn.functional.silu(self.c3(f))
        return self.head(f).flatten(2)            # [1, 4+NC, N]


class Detect(Backbone):
    def forward(self, x):
        p = self.raw(x)
        # ultralytics' make_anchors: grid cell centres from arange (Range in a dynamic export)
        h, w = x.shape[2] // 8, x.shape[3] // 8
        sx = torch.arange(end=w, dtype=p.dtype) + 0.5
        sy = torch.arange(end=h, dtype=p.dtype) + 0.5
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        anchors = torch.stack((sx, sy), 0).view(1, 2, -1)
        t = torch.sigmoid(p[:, :4])
        xy = (anchors + t[:, :2] * 2.0 - 1.0) * 8.0  # cx, cy and w, h in input pixels
        box = torch.cat([xy, t[:, 2:] * 32.0], 1)
        return torch.cat([box, torch.sigmoid(p[:, 4:])], 1)


class End2End(Backbone):
    def forward(self, x):
        p = self.raw(x).transpose(1, 2)            # [1, N, 4+NC]
        c = torch.sigmoid(p[..., :4]) * 64.0
        boxes = torch.cat([c[..., :2] - c[..., 2:] / 4, c[..., :2] + c[..., 2:] / 4], -1)
        scores = torch.sigmoid(p[..., 4:])
        # ultralytics' v10postprocess
        max_scores = scores.amax(dim=-1)
        max_scores, index = torch.topk(max_scores, MAX_DET, dim=-1)
        index = index.unsqueeze(-1)
        boxes = torch.gather(boxes, dim=1, index=index.repeat(1, 1, boxes.shape[-1]))
        scores = torch.gather(scores, dim=1, index=index.repeat(1, 1, scores.shape[-1]))
        scores, index = torch.topk(scores.flatten(1), MAX_DET, dim=-1)
        labels = index % NC
        index = index // NC
        boxes = boxes.gather(dim=1, index=index.unsqueeze(-1).repeat(1, 1, boxes.shape[-1]))
        return torch.cat([boxes, scores.unsqueeze(-1), labels.unsqueeze(-1).to(boxes.dtype)], dim=-1)


class End2EndV8(Backbone):
    """ultralytics 8.3's Detect.postprocess (end-to-end exports): one TopK of the best scores,
    gathers, a TopK over the flattened scores, and advanced indexing boxes[i, index // nc]."""

    def forward(self, x):
        p = self.raw(x).transpose(1, 2)
        c = torch.sigmoid(p[..., :4]) * 64.0
        preds = torch.cat([c[..., :2] - c[..., 2:] / 4, c[..., :2] + c[..., 2:] / 4, torch.sigmoid(p[..., 4:])], -1)
        batch_size, anchors, _ = preds.shape
        boxes, scores = preds.split([4, NC], dim=-1)
        index = scores.amax(dim=-1).topk(min(MAX_DET, anchors))[1].unsqueeze(-1)
        boxes = boxes.gather(dim=1, index=index.repeat(1, 1, 4))
        scores = scores.gather(dim=1, index=index.repeat(1, 1, NC))
        scores, index = scores.flatten(1).topk(min(MAX_DET, anchors))
        i = torch.arange(batch_size)[..., None]
        return torch.cat([boxes[i, index // NC], scores[..., None], (index % NC)[..., None].float()], dim=-1)


class End2EndSeg(Backbone):
    """A segmenting NMS-free head: rows x1 y1 x2 y2 score class + NM mask coefficients (the
    class by ArgMax, one TopK, GatherElements of boxes and coefficients), prototypes beside."""

    def __init__(self):
        super().__init__()
        self.coef = torch.nn.Conv2d(16, NM, 1)
        self.proto = torch.nn.Conv2d(8, NM, 3, 1, 1)

    def forward(self, x):
        f1 = torch.nn.functional.silu(self.c1(x))
        f = torch.nn.functional.silu(self.c3(torch.nn.functional.silu(self.c2(f1))))
        p = self.head(f).flatten(2).transpose(1, 2)
        k = self.coef(f).flatten(2).transpose(1, 2)
        c = torch.sigmoid(p[..., :4]) * 64.0
        boxes = torch.cat([c[..., :2] - c[..., 2:] / 4, c[..., :2] + c[..., 2:] / 4], -1)
        best, cls = torch.sigmoid(p[..., 4:]).max(-1)
        score, index = torch.topk(best, MAX_DET, dim=-1)
        index = index.unsqueeze(-1)
        boxes = boxes.gather(1, index.repeat(1, 1, 4))
        k = k.gather(1, index.repeat(1, 1, NM))
        cls = cls.gather(1, index.squeeze(-1)).float()
        rows = torch.cat([boxes, score.unsqueeze(-1), cls.unsqueeze(-1), k], -1)
        return rows, self.proto(f1)


def metadata(model, task, imgsz, stride):
    for k, v in [("author", "shoal tests"), ("task", task), ("stride", str(stride)), ("batch", "1"),
                 ("imgsz", str(list(imgsz))), ("names", str(NAMES))]:
        e = model.metadata_props.add()
        e.key, e.value = k, v


def export(net, x, path, dynamic=False):
    kw = {}
    if dynamic:
        kw["dynamic_axes"] = {"images": {2: "height", 3: "width"}}
    outs = ["output0", "output1"] if isinstance(net, End2EndSeg) else ["output0"]
    torch.onnx.export(net, x, path, opset_version=17, input_names=["images"], output_names=outs, **kw)
    return onnx.load(path)


def to_half(m):
    """fp32 export -> the layout of a half=True export."""
    g = m.graph
    for i, t in enumerate(g.initializer):
        if t.data_type == TensorProto.FLOAT:
            g.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name))
    for n in g.node:
        for a in n.attribute:
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float16)))
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    # the fp32 island around the score sigmoid (the last Sigmoid)
    k = max(i for i, n in enumerate(g.node) if n.op_type == "Sigmoid")
    sig = g.node[k]
    src, dst = sig.input[0], sig.output[0]
    sig.input[0], sig.output[0] = src + "_f32", dst + "_f32"
    g.node.insert(k, helper.make_node("Cast", [src], [src + "_f32"], name="to_f32", to=TensorProto.FLOAT))
    g.node.insert(k + 2, helper.make_node("Cast", [dst + "_f32"], [dst], name="to_f16", to=TensorProto.FLOAT16))
    return m


def main():
    os.makedirs(HERE, exist_ok=True)
    torch.manual_seed(0)
    det = Detect().eval()
    with torch.no_grad():   # PyTorch's default init gives near-constant heads: spread the scores
        for c in (det.c1, det.c2, det.c3):
            c.weight.mul_(2.5)
        det.head.weight.mul_(6.0)
    e2e = End2End().eval()
    e2e.load_state_dict(det.state_dict())
    e2e8 = End2EndV8().eval()
    e2e8.load_state_dict(det.state_dict())
    seg = End2EndSeg().eval()
    seg.load_state_dict(det.state_dict(), strict=False)
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.uniform(0.05, 1.0, (1, 3, 64, 64)).astype(np.float32))
    xd = torch.from_numpy(rng.uniform(0.05, 1.0, (1, 3, 48, 64)).astype(np.float32))
    with torch.no_grad():
        np.save(os.path.join(HERE, "det_input.npy"), x.numpy())
        np.save(os.path.join(HERE, "det_output.npy"), det(x).numpy())
        np.save(os.path.join(HERE, "dynamic_input.npy"), xd.numpy())
        np.save(os.path.join(HERE, "dynamic_output.npy"), det(xd).numpy())
        np.save(os.path.join(HERE, "e2e_output.npy"), e2e(x).numpy())
        np.save(os.path.join(HERE, "e2e_v8_output.npy"), e2e8(x).numpy())
        rows, protos = seg(x)
        np.save(os.path.join(HERE, "e2e_seg_output0.npy"), rows.numpy())
        np.save(os.path.join(HERE, "e2e_seg_output1.npy"), protos.numpy())

        m = export(det, x, os.path.join(HERE, "det.onnx"))
        metadata(m, "detect", (64, 64), 8)
        onnx.save(m, os.path.join(HERE, "det.onnx"))
        h = to_half(onnx.load(os.path.join(HERE, "det.onnx")))
        onnx.checker.check_model(h)
        onnx.save(h, os.path.join(HERE, "det_fp16.onnx"))

        m = export(det, x, os.path.join(HERE, "det_dynamic.onnx"), dynamic=True)
        metadata(m, "detect", (48, 64), 8)
        onnx.save(m, os.path.join(HERE, "det_dynamic.onnx"))

        for net, name, task in [(e2e, "e2e", "detect"), (e2e8, "e2e_v8", "detect"), (seg, "e2e_seg", "segment")]:
            m = export(net, x, os.path.join(HERE, name + ".onnx"))
            metadata(m, task, (64, 64), 8)
            onnx.save(m, os.path.join(HERE, name + ".onnx"))


if __name__ == "__main__":
    main()
