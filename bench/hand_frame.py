#!/usr/bin/env python3
"""What the PyTorch peers share about a camera frame: the shoal config's per-model settings,
reading a frame file, and MediaPipe's hand landmarker run per frame (HandFrame).

bench/frame_pytorch.py (the frame-level peer) and bench/fullset_pytorch.py (the original
system's way on the full set) both import it, so both run the hand the same way: the palm
detector and the landmark model read from the .tflite files the config names
(bench/tflite_torch.py), crops as grid_sample on the device.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tflite_torch as TT  # noqa: E402


# ---------------------------------------------------------------------------- configuration
def model_settings(config_path):
    """Each model's pre/post-processing parameters from the shoal config the run uses, its
    files resolved against the config's folder as shoal resolves them; and the modes."""
    import yaml
    c = yaml.safe_load(open(config_path))
    here = os.path.dirname(os.path.abspath(config_path))
    out = {}
    for name, m in c["models"].items():
        out[name] = dict(
            path=os.path.normpath(os.path.join(here, m["path"])),
            palm_model=os.path.normpath(os.path.join(here, m["palm_model"])) if "palm_model" in m else None,
            task=m.get("task", "detect"), size=int(m.get("input_size", 640)),
            letterbox=m.get("letterbox", "center"), color=m.get("color", "rgb"),
            scale=float(m.get("scale", 1.0 / 255)), mean=[float(v) for v in m.get("mean", [0, 0, 0])],
            std=[float(v) for v in m.get("std", [1, 1, 1])],
            score=float(m.get("score_threshold", 0.25)), iou=float(m.get("iou_threshold", 0.45)),
            max_det=int(m.get("max_detections", 300)), agnostic=bool(m.get("agnostic_nms", False)),
            min_score=float(m.get("min_detection_confidence", 0.5)))
    return out, {k: list(v) for k, v in c["modes"].items()}


def read_frame(path):
    """An image file as an [H, W, 3] uint8 RGB array: PIL, else torchvision's decoder."""
    try:
        from PIL import Image
    except ImportError:
        from torchvision.io import ImageReadMode, read_image
        return read_image(path, ImageReadMode.RGB).permute(1, 2, 0).contiguous().numpy()
    return np.asarray(Image.open(path).convert("RGB")).copy()


# ---------------------------------------------------------------------------- the hand model
class HandFrame:
    """MediaPipe's hand landmarker per frame as shoal's hand model runs it in image mode: the
    palm detector (bench/tflite_torch.py's module of the .tflite file) on the frame letterboxed
    to 192x192 with a zero border, then, when a palm scores at least min_detection_confidence,
    the landmark model on a rotated square crop around it (224x224, MediaPipe's rect: rotation
    from the wrist to the middle finger, scale 2.6, shifted up half a box). Crops are one
    grid_sample each on the device; the best-scoring palm stands in for weighted NMS, so the
    peer runs at most one landmark crop where shoal may run num_hands: the table says so. With
    CUDA graphs the palm stage (frame to rect) and the landmark stage (rect to landmarks) are
    one graph each; the host reads one flag between them, as shoal's host decode does."""

    def __init__(self, name, settings, frame, dtype, graphs):
        """settings: model_settings()'s entry of the hand (its two .tflite files and
        min_detection_confidence); frame: the [H, W, 3] uint8 device tensor each frame is
        copied into."""
        self.name, self.s, self.frame, self.dtype = name, settings, frame, dtype
        self.h, self.w = frame.shape[:2]
        dev = frame.device
        self.palm = TT.load(settings["palm_model"]).to(device=dev, dtype=dtype)
        self.landmark = TT.load(settings["path"]).to(device=dev, dtype=dtype)
        self.anchors = torch.from_numpy(TT.palm_anchors()).to(dev)
        self.min_score = settings["min_score"]
        side = max(self.w, self.h)
        # normalised grid of the letterbox square in frame coordinates: x in [-1, 1] over W
        t = (torch.arange(192, device=dev, dtype=torch.float32) + 0.5) / 192 - 0.5
        gx = (self.w / 2 + t * side) / self.w * 2 - 1
        gy = (self.h / 2 + t * side) / self.h * 2 - 1
        self.palm_grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], -1)[None]
        self.lt = (torch.arange(224, device=dev, dtype=torch.float32) + 0.5) / 224 - 0.5
        self.graph_palm = self.graph_lm = None
        self.note = None
        with torch.no_grad():
            if graphs:
                st = torch.cuda.Stream()
                st.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(st):
                    for _ in range(3):
                        self.palm_out = self._palm()
                        self.lm_out = self._landmark()
                torch.cuda.current_stream().wait_stream(st)
                try:
                    self.graph_palm = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(self.graph_palm):
                        self.palm_out = self._palm()
                    self.graph_lm = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(self.graph_lm):
                        self.lm_out = self._landmark()
                except Exception as e:   # the record says so (self.note); eager then
                    self.graph_palm = self.graph_lm = None
                    self.note = f"hand: CUDA graph capture failed ({str(e)[:120]}); eager"
                    torch.cuda.synchronize()

    def _image(self):
        return self.frame.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255

    def _palm(self):
        """frame -> (best score, rect [cx, cy, side, rotation] in frame pixels)"""
        self.img = self._image()   # the landmark stage crops from the same float frame
        x = F.grid_sample(self.img, self.palm_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        boxes, logits = self.palm(x.permute(0, 2, 3, 1).contiguous().to(self.dtype))[:2]
        b = boxes.float().view(-1, 18)
        score = torch.sigmoid(logits.float().view(-1))
        best = score.argmax().view(1)           # indexing by a tensor, not an int: no host sync
        a, bb = self.anchors.index_select(0, best)[0], b.index_select(0, best)[0]
        top = score.index_select(0, best)[0]
        side = max(self.w, self.h)
        px = lambda v, axis: (v / 192 + a[axis] - 0.5) * side + (self.w if axis == 0 else self.h) / 2
        cx, cy = px(bb[0], 0), px(bb[1], 1)
        bw = bb[2] / 192 * side
        bh = bb[3] / 192 * side
        wx, wy = px(bb[4], 0), px(bb[5], 1)           # keypoint 0: wrist
        mx, my = px(bb[8], 0), px(bb[9], 1)           # keypoint 2: middle finger MCP
        rot = math.pi / 2 - torch.atan2(-(my - wy), mx - wx)
        rot = rot - 2 * math.pi * torch.floor((rot + math.pi) / (2 * math.pi))
        size = torch.maximum(bw, bh)
        cx = cx + 0.5 * size * torch.sin(rot)           # shift_y -0.5 along the rotated axis
        cy = cy - 0.5 * size * torch.cos(rot)
        return top, torch.stack([cx, cy, size * 2.6, rot])

    def _landmark(self):
        cx, cy, side, rot = self.palm_out[1]
        a, b = torch.meshgrid(self.lt * side, self.lt * side, indexing="xy")
        c, s = torch.cos(rot), torch.sin(rot)
        x = cx + a * c - b * s
        y = cy + a * s + b * c
        grid = torch.stack([x / self.w * 2 - 1, y / self.h * 2 - 1], -1)[None]
        crop = F.grid_sample(self.img, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return self.landmark(crop.permute(0, 2, 3, 1).contiguous().to(self.dtype))

    def run_network(self):
        if self.graph_palm is not None:
            self.graph_palm.replay()
        else:
            self.palm_out = self._palm()
        if float(self.palm_out[0]) >= self.min_score:
            if self.graph_lm is not None:
                self.graph_lm.replay()
            else:
                self.lm_out = self._landmark()
            self.found = True
        else:
            self.found = False

    def results(self):
        if not self.found:
            return dict(hands=np.zeros((0, 21, 3), np.float32))
        pts = self.lm_out[0].float().view(21, 3).cpu().numpy()
        return dict(hands=pts[None], presence=np.array([float(self.lm_out[1].float().view(-1)[0])]))
