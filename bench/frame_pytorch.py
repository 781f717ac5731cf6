#!/usr/bin/env python3
"""Frame-level PyTorch peer for shoal's per-frame benchmark (issue 15, "Benchmarks").

The same five networks and weights as bench/pytorch_runner.py (tools/export_models.py's seeded
modules), run the way a careful PyTorch deployment runs a whole camera frame:

  8-bit RGB frame in host memory -> pinned staging buffer -> device (the frame crosses the bus
  as 8-bit pixels once) -> letterbox (bilinear, rounded to 8 bits like cv2.resize, grey 114
  padding) and normalisation on the device -> the network -> box decode on the device ->
  torchvision's batched NMS on the device -> masks as sigmoid(coefficients x prototypes),
  cropped to the box at prototype resolution, upsampled to the model input, the letterbox
  border cut off, resized to the frame and thresholded at 0.5 (ultralytics' process_mask +
  scale_masks, then cut to the box as shoal's masks are), bit-packed on the device -> every
  result copied to host memory.

GPU: fp16 weights (BatchNorm folded) and one CUDA graph per model covering letterbox,
normalisation, the network and the fixed-shape part of the decode (scores, classes, boxes);
what follows has data-dependent shapes (how many boxes pass the threshold) and runs eagerly.
CPU: float32, eager, no graphs (the same code path otherwise).

Per mode (its models in turn on one frame), host wall clock:
  frame     from the 8-bit frame in host memory to results in host memory
  jpeg_cpu  from the frame's JPEG bytes in host memory: torchvision.io.decode_jpeg on the CPU,
            then as "frame" (the decode alone is reported too)
  jpeg_dev  the same with decode_jpeg(device="cuda") (nvJPEG), where torchvision has it
  network   the networks alone on the prepared input (graph replays / forward passes), for
            the frame/network ratio of the peer itself

Without torchvision (the device's PyTorch may come without it) NMS is a pure-torch greedy
pass over an IoU matrix and JPEG decoding falls back to PIL on the CPU; the JSON says so.

--check SHOAL_RUN.json compares the detections with `shoal run --json` on the same frames:
the same boxes (class and IoU) within the tolerance of the precision used.

Prints one JSON record (and writes it to --out).
"""
import argparse
import io
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import pytorch_runner as R  # noqa: E402
from hand_frame import HandFrame, model_settings, read_frame  # noqa: E402

E = R.E

try:
    import torchvision
    from torchvision.ops import batched_nms as tv_batched_nms
    from torchvision.io import decode_jpeg as tv_decode_jpeg
    TV_VERSION = torchvision.__version__
except Exception:  # absent or broken on the device's PyTorch: the fallbacks below say so
    tv_batched_nms = tv_decode_jpeg = None
    TV_VERSION = None

# Which of models/frames (tools/make_frames.py) each mode's camera sees.
MODE_FRAMES = {"navigation": "sidewalk", "crossing": "crossing", "shopping": "shelf"}
TOP_K = 3000          # candidates entering NMS, as shoal's sh_decode_default_params
MASK_THRESHOLD = 0.5


# ---------------------------------------------------------------------------- geometry
def letterbox_geometry(src_w, src_h, s):
    """shoal's sh_transform_compute: resized size, padding and scale (double precision,
    rounding like the Python references)."""
    dw, dh = s["size"], s["size"]
    if s["letterbox"] == "stretch":
        return dict(rw=dw, rh=dh, left=0, top=0, sx=dw / src_w, sy=dh / src_h)
    r = min(dw / src_w, dh / src_h)
    if s["letterbox"] == "topleft":
        rw, rh, left, top = int(src_w * r), int(src_h * r), 0, 0
    else:
        rw, rh = int(round(src_w * r)), int(round(src_h * r))
        rw, rh = max(1, min(dw, rw)), max(1, min(dh, rh))
        left, top = max(0, int(round((dw - rw) / 2 - 0.1))), max(0, int(round((dh - rh) / 2 - 0.1)))
    return dict(rw=rw, rh=rh, left=left, top=top, sx=r, sy=r)


def nms_torch(boxes, scores, classes, iou):
    """Greedy per-class NMS in pure torch (no torchvision): classes offset apart as
    torchvision's batched_nms does, IoU matrix once, then the sequential pass on the host
    over a boolean matrix (small: at most TOP_K rows)."""
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    off = boxes + (classes.to(boxes.dtype) * (boxes.max() + 1))[:, None]
    order = scores.argsort(descending=True)
    b = off[order]
    area = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.max(b[:, None, :2], b[None, :, :2])
    rb = torch.min(b[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    over = (inter / (area[:, None] + area[None, :] - inter).clamp(min=1e-9) > iou).cpu().numpy()
    keep, dead = [], np.zeros(len(order), bool)
    for i in range(len(order)):
        if dead[i]:
            continue
        keep.append(i)
        dead |= over[i]
    return order[torch.as_tensor(keep, dtype=torch.long, device=boxes.device)]


def batched_nms(boxes, scores, classes, iou):
    if tv_batched_nms is not None:
        return tv_batched_nms(boxes, scores, classes, iou)
    return nms_torch(boxes, scores, classes, iou)


def pack_bits(masks):
    """[n, H, W] bool -> [n, H, ceil(W/8)] uint8, most significant bit first (numpy packbits)."""
    n, h, w = masks.shape
    pad = (-w) % 8
    if pad:
        masks = F.pad(masks, (0, pad))
    m = masks.view(n, h, -1, 8).to(torch.uint8)
    weights = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=masks.device)
    return (m * weights).sum(-1, dtype=torch.uint8)


# ---------------------------------------------------------------------------- one model
class FrameModel:
    """One network with its frame-in, results-out pipeline for frames of one size."""

    def __init__(self, name, module, settings, frame, dtype, graphs):
        """frame: the [H, W, 3] uint8 device tensor the mode's frames are copied into (the
        graph's input: every model of a mode reads the same one)."""
        self.name, self.s, self.dev, self.dtype = name, settings, frame.device, dtype
        self.h, self.w = frame.shape[:2]
        self.geo = letterbox_geometry(self.w, self.h, settings)
        self.module = module
        self.frame = frame
        device = frame.device
        sz = settings["size"]
        mean = torch.tensor(settings["mean"], device=device).view(1, 3, 1, 1)
        std = torch.tensor(settings["std"], device=device).view(1, 3, 1, 1)
        self.mul = (settings["scale"] / std).to(torch.float32)
        self.add = (-mean / std).to(torch.float32)
        self.canvas = torch.full((1, 3, sz, sz), 114.0, device=device)   # padding stays 114
        self.graph = None
        with torch.no_grad():
            if graphs:
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):     # cudnn picks algorithms before the capture
                        self._static()
                torch.cuda.current_stream().wait_stream(s)
                self.graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(self.graph):
                    self.static_out = self._static()
            else:
                self.static_out = self._static()

    def _input(self):
        """The frame in device memory -> the network's input (letterbox, normalisation)."""
        g = self.geo
        x = self.frame.permute(2, 0, 1).unsqueeze(0).to(torch.float32)
        if self.s["color"] == "bgr":
            x = x.flip(1)
        x = F.interpolate(x, size=(g["rh"], g["rw"]), mode="bilinear", align_corners=False)
        x = x.round_().clamp_(0, 255)          # cv2.resize writes 8-bit pixels
        self.canvas[:, :, g["top"]:g["top"] + g["rh"], g["left"]:g["left"] + g["rw"]] = x
        return (self.canvas * self.mul + self.add).to(self.dtype)

    def _static(self):
        """Everything with fixed shapes: input, network, and the decode's per-anchor part."""
        y = R.as_tuple(self.module(self._input()))
        if self.s["task"] == "landmarks":
            return (y[0].float(),)
        out0 = y[0][0]                          # [4 + nc (+ 32), anchors]
        nm = 32 if self.s["task"] == "segment" else 0
        nc = out0.shape[0] - 4 - nm
        cx, cy, w, h = out0[:4].float()
        boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1)
        scores, classes = out0[4:4 + nc].float().max(0)
        if nm:
            return boxes, scores, classes, out0[4 + nc:].t(), y[1][0]
        return boxes, scores, classes

    def run_network(self):
        """The fixed-shape part: a graph replay on the GPU, a forward pass on the CPU."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self.static_out = self._static()

    def results(self):
        """Decode, NMS and masks from the network's outputs; results in host memory."""
        s, g = self.s, self.geo
        if s["task"] == "landmarks":
            d = self.static_out[0].view(-1)
            pts = d[:63].view(21, 3)
            xy = torch.stack([(pts[:, 0] - g["left"]) / g["sx"], (pts[:, 1] - g["top"]) / g["sy"],
                              pts[:, 2] / g["sx"]], 1)
            pres = torch.sigmoid(d[63:65])
            return dict(landmarks=xy.cpu().numpy(), presence=pres.cpu().numpy())
        boxes, scores, classes = self.static_out[:3]
        keep = torch.nonzero(scores >= s["score"]).squeeze(1)
        if keep.numel() > TOP_K:
            keep = keep[scores[keep].topk(TOP_K).indices]
        kept = keep[batched_nms(boxes[keep], scores[keep], classes[keep], s["iou"])[:s["max_det"]]]
        b = boxes[kept]
        img = torch.stack([((b[:, 0] - g["left"]) / g["sx"]).clamp(0, self.w), ((b[:, 1] - g["top"]) / g["sy"]).clamp(0, self.h),
                           ((b[:, 2] - g["left"]) / g["sx"]).clamp(0, self.w), ((b[:, 3] - g["top"]) / g["sy"]).clamp(0, self.h)], 1)
        res = dict(boxes=img, scores=scores[kept], classes=classes[kept])
        if s["task"] == "segment" and kept.numel():
            res["masks"] = self.masks(kept, b, img)
        return {k: v.cpu().numpy() for k, v in res.items()}

    def masks(self, kept, model_boxes, image_boxes):
        coeff, protos = self.static_out[3][kept], self.static_out[4]
        c, mh, mw = protos.shape
        m = torch.sigmoid((coeff.float() @ protos.float().view(c, -1)).view(-1, mh, mw))
        sz, g = self.s["size"], self.geo
        pb = model_boxes * torch.tensor([mw / sz, mh / sz, mw / sz, mh / sz], device=m.device)
        cols = torch.arange(mw, device=m.device, dtype=pb.dtype)[None, None, :]
        rows = torch.arange(mh, device=m.device, dtype=pb.dtype)[None, :, None]
        x1, y1, x2, y2 = (pb[:, i, None, None] for i in range(4))
        m = m * ((cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2))      # crop_mask
        m = F.interpolate(m[None], size=(sz, sz), mode="bilinear", align_corners=False)[0]
        m = m[:, g["top"]:g["top"] + g["rh"], g["left"]:g["left"] + g["rw"]]  # scale_masks: border off
        m = F.interpolate(m[None], size=(self.h, self.w), mode="bilinear", align_corners=False)[0]
        cols = torch.arange(self.w, device=m.device, dtype=torch.float32)[None, None, :]
        rows = torch.arange(self.h, device=m.device, dtype=torch.float32)[None, :, None]
        x1, y1, x2, y2 = (image_boxes[:, i, None, None] for i in range(4))
        inside = (cols >= x1.floor()) & (cols < x2.ceil()) & (rows >= y1.floor()) & (rows < y2.ceil())
        return pack_bits((m > MASK_THRESHOLD) & inside)


# ---------------------------------------------------------------------------- the runner
def load_modules(names, dev, dtype, bnfold, cache_dir, threads):
    import subprocess
    subprocess.run([sys.executable, R.__file__, "--config", "fp32_eager", "--generate-only", "--threads", str(threads),
                    "--cache-dir", cache_dir, "--set", E.SET, "--models", *names], check=True)
    cache, _, made = R.weights_cache(cache_dir, names)
    assert not made
    mods = {}
    for n in names:
        m = R.skeleton(n)
        m.load_state_dict(torch.load(os.path.join(cache, f"{n}.pt"), map_location="cpu"))
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        if bnfold:
            R.fold_bn(m)
        mods[n] = m.to(device=dev, dtype=dtype)
    return mods


def frame_sources(args, modes, settings):
    """Per mode: (label, 8-bit frame, JPEG bytes or None)."""
    out = {}
    for mode, models in modes.items():
        if args.frames == "npy":
            x = np.load(os.path.join(args.models_dir, f"{models[0]}.input.npy"))[0]
            rgb = np.clip(np.transpose(x, (1, 2, 0)) * 255 + 0.5, 0, 255).astype(np.uint8)
            out[mode] = (f"{models[0]}.input.npy", rgb, None)
            continue
        base = os.path.join(args.models_dir, "frames", MODE_FRAMES.get(mode, mode))
        jpg = base + ".jpg"
        data = open(jpg, "rb").read() if os.path.exists(jpg) else None
        src = base + ".png" if args.frames == "png" else jpg
        out[mode] = (os.path.relpath(src, ROOT), read_frame(src), data)
    return out


def summary(ms):
    q = R.quantiles(ms)
    q["mean_ms"] = round(float(np.mean(ms)), 3)
    return q


class ModeRunner:
    """A mode's models in turn on one frame: the frame crosses to the device once."""

    def __init__(self, names, mods, settings, dev, dtype, graphs, hw):
        self.dev = dev
        h, w = hw
        self.pinned = torch.empty((h, w, 3), dtype=torch.uint8, pin_memory=dev == "cuda")
        self.chw_stage = torch.empty((3, h, w), dtype=torch.uint8, device=dev)
        self.frame = torch.zeros((h, w, 3), dtype=torch.uint8, device=dev)
        self.models = [HandFrame(n, settings[n], self.frame, dtype, graphs)
                       if settings[n]["task"] == "hand_landmarks" else
                       FrameModel(n, mods[n], settings[n], self.frame, dtype, graphs) for n in names]

    def sync(self):
        if self.dev == "cuda":
            torch.cuda.synchronize()

    def _finish(self):
        out = {}
        for m in self.models:
            m.run_network()
            out[m.name] = m.results()
        return out

    def from_pixels(self, rgb):
        self.pinned.copy_(torch.from_numpy(rgb))
        self.frame.copy_(self.pinned, non_blocking=True)
        return self._finish()

    def from_chw(self, chw):
        """A decoded [3, H, W] picture (host or device) into the frame buffer."""
        if chw.device.type != self.dev:
            self.chw_stage.copy_(chw, non_blocking=True)
            chw = self.chw_stage
        self.frame.copy_(chw.permute(1, 2, 0))
        return self._finish()

    def network(self):
        for m in self.models:
            m.run_network()
        self.sync()


def timed(fn, warmup, iters, sync):
    for _ in range(warmup):
        fn()
        sync()
    ms = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        sync()
        ms.append((time.perf_counter() - t) * 1e3)
    return ms


def decode_cpu(data):
    """data: the JPEG file's bytes as a uint8 tensor -> [3, H, W] uint8 on the CPU."""
    if tv_decode_jpeg is not None:
        return tv_decode_jpeg(data)
    from PIL import Image
    return torch.from_numpy(np.asarray(Image.open(io.BytesIO(data.numpy().tobytes())).convert("RGB")).copy()).permute(2, 0, 1)


def detections_json(res):
    """Results as plain lists, for --check and the record."""
    out = {}
    for n, r in res.items():
        if "boxes" in r:
            out[n] = dict(detections=[dict(class_id=int(c), score=round(float(s), 5), box=[round(float(v), 2) for v in b])
                                      for b, s, c in zip(r["boxes"], r["scores"], r["classes"])],
                          mask_pixels=[int(np.unpackbits(m).sum()) for m in r.get("masks", [])])
        elif "hands" in r:
            out[n] = dict(hands=len(r["hands"]))
        else:
            out[n] = dict(landmarks=[[round(float(v), 2) for v in p] for p in r["landmarks"]])
    return out


# ---------------------------------------------------------------------------- --check
def iou(a, b):
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def shoal_detections(path):
    """`shoal run --json` output (one record per image and mode) as
    {(image file stem, mode, model): detections [(class_id, score, box)] or landmarks}."""
    out = {}
    for line in open(path):
        if not line.strip().startswith("{"):
            continue
        r = json.loads(line)
        stem = os.path.splitext(os.path.basename(r["image"]))[0]
        res = r["results"]
        for m in res["models"]:
            key = (stem, res["mode"], m["model"])
            if "detections" in m:
                out[key] = [(d["class_id"], d["score"], d["box"], d.get("mask", {}).get("area")) for d in m["detections"]]
            elif "landmarks" in m:
                out[key] = m["landmarks"]
    return out


def check_boxes(mine, theirs, iou_min, score_tol, threshold, nms_iou):
    """Matches each of shoal's detections to one of ours (same class, the best IoU). A
    detection found on one side only is a precision flip, not a mismatch, when its score lies
    within score_tol of the model's threshold, or when it overlaps a same-class box of the
    other side by an IoU within 0.03 of the NMS threshold (which of the two NMS keeps turns on
    the last digits); any other is a mismatch. Masks are compared by area only (informative:
    the mask ops' own tests hold them to the pixel)."""
    used, ious, sdiff, missing, area_diff = set(), [], [], [], []
    for c, s, b, area in theirs:
        best, bi = 0.0, -1
        for j, (c2, _, b2, _) in enumerate(mine):
            if j not in used and c2 == c and iou(b, b2) > best:
                best, bi = iou(b, b2), j
        if bi >= 0 and best >= iou_min:
            used.add(bi)
            ious.append(best)
            sdiff.append(abs(s - mine[bi][1]))
            if area is not None and mine[bi][3] is not None:
                area_diff.append(abs(area - mine[bi][3]) / max(area, 1))
        else:
            missing.append((c, s, b, area))
    extra = [mine[j] for j in range(len(mine)) if j not in used]

    def flip(det, other):
        c, s, b, _ = det
        near_nms = any(c2 == c and abs(iou(b, b2) - nms_iou) <= 0.03 for c2, _, b2, _ in other)
        return abs(s - threshold) <= score_tol or near_nms
    flips = [d for d in missing if flip(d, mine)] + [d for d in extra if flip(d, theirs)]
    return dict(shoal=len(theirs), peer=len(mine), matched=len(ious), min_iou=round(min(ious, default=1.0), 4),
                max_score_diff=round(max(sdiff, default=0.0), 5), only_shoal=[round(d[1], 4) for d in missing],
                only_peer=[round(d[1], 4) for d in extra], excused=len(flips),
                mask_area_max_rel_diff=round(max(area_diff), 5) if area_diff else None,
                same=len(missing) + len(extra) == len(flips))


def check(ours, frame_hw, shoal, half, settings):
    """ours: {mode: {model: results}}; frame_hw: {mode: (height, width)}; shoal:
    shoal_detections(); one entry per model."""
    # fp16 moves scores by ~1e-3 and box edges by a fraction of a pixel; in float32 the peer
    # differs from shoal only through the letterbox's rounding and the summation order.
    iou_min, score_tol = (0.95, 0.01) if half else (0.99, 0.002)
    rep = {}
    for mode, models in ours.items():
        stem = MODE_FRAMES.get(mode, mode)
        for n, r in models.items():
            theirs = shoal.get((stem, mode, n))
            if theirs is None:
                continue
            key = f"{mode}/{n}"
            if "hands" in r:   # the peer crops one best palm, not MediaPipe's weighted NMS: timing only
                continue
            if "detections" in r:
                areas = r.get("mask_pixels") or [None] * len(r["detections"])
                mine = [(d["class_id"], d["score"], d["box"], a) for d, a in zip(r["detections"], areas)]
                rep[key] = check_boxes(mine, theirs, iou_min, score_tol, settings[n]["score"], settings[n]["iou"])
            else:
                a, b = np.asarray(r["landmarks"])[:, :2], np.asarray(theirs)[:, :2]
                err = float(np.abs(a - b).max())
                # The regressor's x, y are model-input pixels scaled to the frame; the letterbox's
                # rounding alone moves them by a tenth of an input pixel in float32.
                g = letterbox_geometry(*frame_hw[mode][::-1], settings[n])
                tol = (1.0 if half else 0.25) / min(g["sx"], g["sy"])
                rep[key] = dict(landmarks_max_abs_px=round(err, 3), tolerance_px=round(tol, 3), same=err <= tol)
    return dict(iou_min=iou_min, score_tol=score_tol, models=rep,
                same_boxes=bool(rep) and all(v["same"] for v in rep.values()))


# ---------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description="frame-level PyTorch peer for shoal bench")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "aiglasses.yaml"))
    ap.add_argument("--set", choices=sorted(E.SETS), default="small",
                    help="full: the original system's sizes (configs/aiglasses-full.yaml; weights from the cache "
                         "that bench/gpu_export.py --set full --weights-cache writes)")
    ap.add_argument("--modes", nargs="*", default=None, help="default: every mode of the config")
    ap.add_argument("--frames", choices=["jpg", "png", "npy"], default="jpg",
                    help="jpg/png: models/frames/<scene> per mode (8-bit pixels decoded once, outside the "
                         "timing); npy: the mode's first model's .input.npy as 8-bit pixels (shoal bench's default)")
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "models"))
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-graphs", action="store_true", help="GPU: eager instead of CUDA graphs")
    ap.add_argument("--cache-dir", default=os.environ.get("SHOAL_BENCH_CACHE", "/tmp/shoal-bench-weights"))
    ap.add_argument("--check", help="`shoal run --json` output on the same frames: compare detections")
    ap.add_argument("--check-only", action="store_true", help="results and --check, no timing")
    ap.add_argument("--out", help="also write the JSON record here")
    args = ap.parse_args()
    if args.iters < 1 or args.warmup < 0 or args.threads < 1:
        sys.exit("frame_pytorch: --iters >= 1, --warmup >= 0, --threads >= 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("frame_pytorch: --device cuda but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    E.use_set(args.set)
    dev = args.device
    half = dev == "cuda"
    dtype = torch.float16 if half else torch.float32
    graphs = dev == "cuda" and not args.no_graphs
    if dev == "cuda":
        torch.backends.cudnn.benchmark = True

    settings, modes = model_settings(args.config)
    if args.modes:
        unknown = [m for m in args.modes if m not in modes]
        if unknown:
            sys.exit(f"frame_pytorch: modes not in {args.config}: {unknown}")
        modes = {m: modes[m] for m in args.modes}
    names = [n for n in E.ORDER if any(n in v for v in modes.values())]
    notes = []
    if tv_batched_nms is None:
        notes.append("torchvision absent: NMS is a pure-torch greedy pass (IoU matrix on the device, "
                     "the sequential pass on the host); JPEG decoded by PIL on the CPU; no device JPEG decode")
    if dev == "cpu":
        notes.append("CPU: float32, eager, no CUDA graphs")

    t = time.perf_counter()
    mods = load_modules([n for n in names if settings[n]["task"] != "hand_landmarks"], dev, dtype, True,
                        args.cache_dir, args.threads)
    load_s = time.perf_counter() - t
    frames = frame_sources(args, modes, settings)

    record = dict(runner="pytorch-frame", torch=torch.__version__, torchvision=TV_VERSION, device=dev,
                  device_name=torch.cuda.get_device_name() if dev == "cuda" else "cpu", dtype=str(dtype)[6:],
                  cuda_graphs=graphs, bn_folded=True, threads=args.threads, iters=args.iters, warmup=args.warmup,
                  config=os.path.relpath(os.path.abspath(args.config), ROOT), set=E.SET, frames=args.frames,
                  load_s=round(load_s, 2),
                  modes={}, notes=notes)
    all_results = {}
    sync = (lambda: torch.cuda.synchronize()) if dev == "cuda" else (lambda: None)
    for mode, members in modes.items():
        label, rgb, jpeg = frames[mode]
        hw = rgb.shape[:2]
        runner = ModeRunner(members, mods, settings, dev, dtype, graphs, hw)
        notes += [m.note for m in runner.models if getattr(m, "note", None)]
        with torch.no_grad():
            res = runner.from_pixels(rgb)
            all_results[mode] = detections_json(res)
            rec = dict(models=members, frame=label, frame_size=[int(hw[1]), int(hw[0])],
                       results={n: (dict(detections=len(r["detections"])) if "detections" in r else
                                    dict(hands=r["hands"]) if "hands" in r else dict(landmarks=21))
                                for n, r in all_results[mode].items()})
            if not args.check_only:
                rec["network_ms"] = summary(timed(runner.network, args.warmup, args.iters, sync))
                rec["frame_ms"] = summary(timed(lambda: runner.from_pixels(rgb), args.warmup, args.iters, sync))
                if jpeg is not None:
                    data = torch.frombuffer(bytearray(jpeg), dtype=torch.uint8)
                    rec["jpeg_bytes"] = len(jpeg)
                    rec["jpeg_decode_cpu_ms"] = summary(timed(lambda: decode_cpu(data), args.warmup, args.iters, sync))
                    rec["frame_jpeg_cpu_ms"] = summary(timed(lambda: runner.from_chw(decode_cpu(data)), args.warmup,
                                                             args.iters, sync))
                    if dev == "cuda" and tv_decode_jpeg is not None:
                        try:
                            tv_decode_jpeg(data, device="cuda")
                            rec["jpeg_decode_dev_ms"] = summary(timed(lambda: tv_decode_jpeg(data, device="cuda"),
                                                                      args.warmup, args.iters, sync))
                            rec["frame_jpeg_dev_ms"] = summary(timed(
                                lambda: runner.from_chw(tv_decode_jpeg(data, device="cuda")), args.warmup, args.iters, sync))
                        except Exception as e:  # a torchvision built without nvJPEG
                            rec["jpeg_dev_note"] = f"decode_jpeg(device='cuda') failed: {str(e)[:200]}"
        record["modes"][mode] = rec
    record["detections"] = all_results
    if args.check:
        if args.frames == "npy":
            sys.exit("frame_pytorch: --check compares camera frames (--frames png or jpg)")
        hw = {m: frames[m][1].shape[:2] for m in modes}
        record["check"] = dict(against=args.check, **check(all_results, hw, shoal_detections(args.check), half,
                                                           settings))
    text = json.dumps(record)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    print(text, flush=True)
    if args.check and not record["check"]["same_boxes"]:
        sys.exit(3)


if __name__ == "__main__":
    main()
