#!/usr/bin/python3
"""Tooling for the MediaPipe-in-Chromium hand check (scripts/hands-mediapipe-check.sh).

  graph SOLUTION_DIR OUT_DIR   the npm top-level graph with the palm detections and hand ROIs
                               exposed, once for still images and once for video
  images [--inference cpu|gl] SHARED_DIR OUT_DIR
                               the test images (MediaPipe's photo, variants made from it, the other
                               photos of ../shared) and the video frames, manifest.json
  list WORK_DIR images|video   the manifest's files, one a line
  compare WORK_DIR             MediaPipe's results (mediapipe.json) against shoal's, table, exit 1 on failure
  sampling WORK_DIR [--models DIR]
                               why palm scores differ: the palm detector (bench/tflite_torch.py, the
                               PyTorch peer; needs torch) on each image letterboxed with texel-centre
                               sampling (MediaPipe's GPU graph) and with corner sampling (shoal)
"""
import argparse
import itertools
import json
import math
import os
import shutil
import sys

# ---------------------------------------------------------------------------------------------
# The graph. hands.binarypb wires only landmarks, world landmarks and handedness out of
# HandLandmarkTrackingGpu, whose subgraph (compiled into the wasm) also has PALM_DETECTIONS and
# the ROIs as outputs, and a USE_PREV_LANDMARKS side packet that the npm graph leaves at its
# default (true: video). The npm file's nodes are kept byte for byte; only that node gains the
# outputs and the side packet, fed by one more ConstantSidePacketCalculator.

def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(buf, i):
    n = shift = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _fields(buf):
    """(field number, wire type, raw bytes of the whole field, value) of one message level."""
    i = 0
    while i < len(buf):
        start = i
        key, i = _read_varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _read_varint(buf, i)
        elif wt == 2:
            n, i = _read_varint(buf, i)
            v = buf[i:i + n]
            i += n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        else:
            raise ValueError(f"wire type {wt} in the graph")
        if i > len(buf):
            raise ValueError("truncated field")
        yield num, wt, buf[start:i], v


def _len_field(num, payload):
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


NODE, NODE_CALCULATOR, NODE_OUTPUT_STREAM, NODE_INPUT_SIDE_PACKET, NODE_OUTPUT_SIDE_PACKET, NODE_OPTIONS = 1, 2, 4, 5, 6, 7
CONSTANT_SIDE_PACKET_EXT = 291214597     # ConstantSidePacketCalculatorOptions.ext
CONSTANT_PACKET, PACKET_BOOL = 1, 3      # options.packet, ConstantSidePacket.bool_value
EXTRA_OUTPUTS = ["PALM_DETECTIONS:palm_detections",
                 "HAND_ROIS_FROM_PALM_DETECTIONS:hand_rects_from_palm_detections",
                 "HAND_ROIS_FROM_LANDMARKS:hand_rects_from_landmarks"]


def hands_graph(npm_graph, use_prev_landmarks):
    out = bytearray()
    tracking_nodes = 0
    for num, _, raw, value in _fields(npm_graph):
        if num != NODE:
            out += raw
            continue
        calculators = [v for n, _, _, v in _fields(value) if n == NODE_CALCULATOR]
        if calculators != [b"HandLandmarkTrackingGpu"]:
            out += raw
            continue
        tracking_nodes += 1
        node = bytearray(value)
        for stream in EXTRA_OUTPUTS:
            node += _len_field(NODE_OUTPUT_STREAM, stream.encode())
        node += _len_field(NODE_INPUT_SIDE_PACKET, b"USE_PREV_LANDMARKS:use_prev_landmarks")
        out += _len_field(NODE, bytes(node))
    if tracking_nodes != 1:
        raise ValueError(f"expected one HandLandmarkTrackingGpu node in the npm graph, found {tracking_nodes}")
    packet = _varint(PACKET_BOOL << 3 | 0) + _varint(1 if use_prev_landmarks else 0)
    ext = _len_field(CONSTANT_PACKET, packet)
    options = _len_field(CONSTANT_SIDE_PACKET_EXT, ext)
    node = (_len_field(1, b"ConstantSidePacketCalculatorUsePrevLandmarks")
            + _len_field(NODE_CALCULATOR, b"ConstantSidePacketCalculator")
            + _len_field(NODE_OUTPUT_SIDE_PACKET, b"PACKET:use_prev_landmarks")
            + _len_field(NODE_OPTIONS, options))
    # Nodes first, as in the npm file: prepending keeps every later field in place.
    return _len_field(NODE, node) + bytes(out)


def cmd_graph(a):
    with open(os.path.join(a.solution, "hands.binarypb"), "rb") as f:
        npm = f.read()
    os.makedirs(a.out, exist_ok=True)
    for name, prev in (("hands_images.binarypb", False), ("hands_video.binarypb", True)):
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(hands_graph(npm, prev))
    return 0


# ---------------------------------------------------------------------------------------------
# The images. Variants of MediaPipe's test photo change what the pipeline has to handle (mirror:
# the handedness flips; rotations: the palm ROI's rotation and the letterbox axis; crops: one
# hand, palm near the border; downscale: small hands; 16:9 frame: letterbox bars in the input)
# while the right answer stays known to be "the same hands". Everything but MediaPipe's own
# photo is written as PNG of its decoded pixels, so both sides see the same pixels: a JPEG's ICC
# profile (some COCO photos have one) would be applied by Chromium and ignored by shoal.

# Thresholds of shoal's configs/hands.yaml (and MediaPipe's defaults): both sides run with them.
OPTIONS = {"maxNumHands": 2, "modelComplexity": 1, "minDetectionConfidence": 0.5, "minTrackingConfidence": 0.5}


def _variants(photo):
    from PIL import Image
    w, h = photo.size
    yield "mirror", photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    yield "rot90", photo.transpose(Image.Transpose.ROTATE_90)
    yield "rot180", photo.transpose(Image.Transpose.ROTATE_180)
    yield "rot270", photo.transpose(Image.Transpose.ROTATE_270)
    yield "rot25", photo.rotate(25, resample=Image.Resampling.BILINEAR, expand=True)
    yield "crop_left", photo.crop((0, 0, w // 2, h))     # = bench/hand-inputs/one_hand.png
    yield "crop_right", photo.crop((w // 2, 0, w, h))
    yield "half", photo.resize((w // 2, h // 2), Image.Resampling.BOX)
    frame = Image.new("RGB", (1280, 720))
    fit = photo.resize((1280, round(1280 * h / w)), Image.Resampling.BICUBIC)
    frame.paste(fit, (0, (720 - fit.height) // 2))
    yield "frame_16x9", frame


def _video(photo):
    """A hand-held camera over the photo: a slow drift and turn (tracking), then the right hand
    covered (one tracked hand: the palm detector runs again), then uncovered (found again)."""
    from PIL import Image, ImageDraw
    w, h = photo.size
    frames = []
    for k in range(8):
        frames.append(photo.rotate(1.5 * k, resample=Image.Resampling.BILINEAR, translate=(3 * k, -k)))
    covered = frames[7].copy()
    ImageDraw.Draw(covered).rectangle((w // 2, 0, w, h), fill=(0, 0, 0))
    frames += [covered] * 3
    frames.append(frames[7])
    frames.append(photo)
    return frames


def cmd_images(a):
    from PIL import Image
    hands = os.path.join(a.shared, "real-models", "hands", "left_hands.jpg")
    os.makedirs(os.path.join(a.out, "images"), exist_ok=True)
    os.makedirs(os.path.join(a.out, "video"), exist_ok=True)
    images = []

    def add(name, src=None, img=None):
        rel = os.path.join("images", name)
        if src:
            shutil.copyfile(src, os.path.join(a.out, rel))
        else:
            img.save(os.path.join(a.out, rel))
        images.append({"file": rel})

    add("left_hands.jpg", src=hands)
    photo = Image.open(hands).convert("RGB")
    for name, img in _variants(photo):
        add(f"left_hands_{name}.png", img=img)
    others = os.path.join(a.shared, "real-models", "images")
    for folder in sorted(os.listdir(others)) if os.path.isdir(others) else []:
        d = os.path.join(others, folder)
        for f in sorted(os.listdir(d)):
            if f.lower().endswith((".jpg", ".png")):
                img = Image.open(os.path.join(d, f)).convert("RGB")
                add(f"{folder}_{os.path.splitext(f)[0]}.png", img=img)
    video = []
    for k, img in enumerate(_video(photo)):
        rel = os.path.join("video", f"frame{k:02d}.png")
        img.save(os.path.join(a.out, rel))
        video.append({"file": rel})
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        options = dict(OPTIONS, useCpuInference=a.inference == "cpu")
        json.dump({"options": options, "images": images, "video": video}, f, indent=1)
    return 0


# ---------------------------------------------------------------------------------------------
# The comparison. Tolerances are MediaPipe's own (../shared/real-models/hands/README.md) where
# the two runs do the same thing:
LANDMARK_PX = 20.0        # legacy solution test (hands_test.py), full model: every |dx|, |dy| < 20 px
LANDMARK_NORM = 0.03      # Tasks hand_landmarker tests: every |dx|/width, |dy|/height <= 0.03
HANDEDNESS_SCORE = 0.05   # Tasks tests: same top label, score within 0.05
# The palm detector's input is where they differ. The npm solution only has MediaPipe's GPU
# graph, whose ImageToTensor samples texel centres ((i + 0.5) / n); shoal follows the CPU graph
# (OpenCV warp, corners: i / n), which the Tasks tests' expected palms come from. Half an input
# pixel moves a hand-sized palm's box by up to 0.017 here and the score of a small palm by up to
# 0.25 (docs/hands.md: the PyTorch peer gives each side's score from each sampling). So: the
# same palms, boxes within twice the Tasks test's 0.01, scores shown but not compared.
PALM_BOX = 0.02
# Frames where shoal is known to differ from MediaPipe, with the reason. They are shown, not
# counted; one that starts to agree fails the check, so that the entry is removed.
KNOWN_DIVERGENCES = {
    ("image", "people_13.png"):
        "two palms whose ROIs overlap (IoU > 0.5): both sides keep only the later ROI, but the "
        "palm scores order them differently (MediaPipe's GPU graph, centre sampling: 0.731 then "
        "0.674; shoal, corner sampling like MediaPipe's CPU graph: 0.738 then 0.705, the other "
        "palm), and only shoal's later palm holds a hand (presence 0.96)",
}


def _centroid(lms):
    return (sum(p[0] for p in lms) / len(lms), sum(p[1] for p in lms) / len(lms))


def _pairing(a, b, key):
    """The one-to-one pairing of a's and b's items (equal counts) with the least summed distance."""
    best, best_cost = None, math.inf
    for perm in itertools.permutations(range(len(b))):
        cost = sum(math.dist(key(a[i]), key(b[j])) for i, j in enumerate(perm))
        if cost < best_cost:
            best, best_cost = perm, cost
    return list(enumerate(best)) if best is not None else []


def compare_frame(mp, sh):
    """Failures (strings) and the numbers of one frame: MediaPipe's result against shoal's."""
    w, h = mp["width"], mp["height"]
    fails, stats = [], {"hands": f"{len(mp['hands'])}/{len(sh['hands'])}",
                        "palms": f"{len(mp['palms'])}/{len(sh['palms'])}", "max_px": 0.0, "mean_px": None,
                        "max_norm": 0.0, "hand_score": 0.0, "palm_box": 0.0, "palm_score": 0.0, "dists": []}
    if len(mp["hands"]) != len(sh["hands"]):
        fails.append(f"{len(mp['hands'])} hands in MediaPipe, {len(sh['hands'])} in shoal")
    else:
        dists = []
        pairs = _pairing(mp["hands"], sh["hands"], lambda hand: _centroid(hand["landmarks"]))
        for i, j in pairs:
            a, b = mp["hands"][i], sh["hands"][j]
            if a.get("label") != b["handedness"]:
                fails.append(f"hand {i}: handedness {a.get('label')} in MediaPipe, {b['handedness']} in shoal")
            ds = abs(a.get("score", math.inf) - b["score"])
            stats["hand_score"] = max(stats["hand_score"], ds)
            if ds > HANDEDNESS_SCORE:
                fails.append(f"hand {i}: handedness score {a['score']:.3f} vs {b['score']:.3f}")
            for k, (p, q) in enumerate(zip(a["landmarks"], b["landmarks"])):
                dx, dy = abs(p[0] - q[0]), abs(p[1] - q[1])
                dists.append(math.hypot(dx, dy))
                stats["max_px"] = max(stats["max_px"], dx, dy)
                stats["max_norm"] = max(stats["max_norm"], dx / w, dy / h)
                if not (dx < LANDMARK_PX and dy < LANDMARK_PX and dx / w <= LANDMARK_NORM and dy / h <= LANDMARK_NORM):
                    fails.append(f"hand {i} landmark {k}: ({p[0]:.1f}, {p[1]:.1f}) vs ({q[0]:.1f}, {q[1]:.1f})")
        stats["mean_px"] = sum(dists) / len(dists) if dists else None
        stats["dists"] = dists
    if len(mp["palms"]) != len(sh["palms"]):
        fails.append(f"{len(mp['palms'])} palms in MediaPipe, {len(sh['palms'])} in shoal")
    else:
        for i, j in _pairing(mp["palms"], sh["palms"], lambda p: (p["box"][0] + p["box"][2] / 2, p["box"][1] + p["box"][3] / 2)):
            a, b = mp["palms"][i], sh["palms"][j]
            d = max(abs(x - y) for x, y in zip(a["box"], b["box"]))
            stats["palm_box"] = max(stats["palm_box"], d)
            stats["palm_score"] = max(stats["palm_score"], abs(a["score"] - b["score"]))
            if d > PALM_BOX:
                fails.append(f"palm {i}: score {a['score']:.4f} box {[round(x, 4) for x in a['box']]} vs "
                             f"{b['score']:.4f} {b['box']}")
    return fails, stats


def cmd_list(a):
    with open(os.path.join(a.work, "manifest.json")) as f:
        for item in json.load(f)[a.what]:
            print(item["file"])
    return 0


def comparison_catches_errors(mp_frames, sh_frames):
    """The comparison must fail on broken results: shoal's first frame with hands and palms,
    altered the ways a broken pipeline would be, each has to be refused."""
    import copy
    pairs = [(m, s) for m, s in zip(mp_frames, sh_frames) if m["hands"] and m["palms"] and not compare_frame(m, s)[0]]
    if not pairs:
        return "no agreeing frame with hands and palms to alter"
    mp, sh = pairs[0]
    w = mp["width"]

    def shift_landmark(f):   # twice the limit: beyond it whatever the difference was
        f["hands"][0]["landmarks"][8][0] += 2 * min(LANDMARK_PX, LANDMARK_NORM * w)

    def flip_label(f):
        f["hands"][0]["handedness"] = "Left" if f["hands"][0]["handedness"] == "Right" else "Right"

    def lower_score(f):
        f["hands"][0]["score"] -= 2 * HANDEDNESS_SCORE

    def drop_hand(f):
        f["hands"].pop()

    def move_palm(f):
        f["palms"][0]["box"][1] += 2 * PALM_BOX

    def drop_palm(f):
        f["palms"].pop()

    for alter in (shift_landmark, flip_label, lower_score, drop_hand, move_palm, drop_palm):
        bad = copy.deepcopy(sh)
        alter(bad)
        if not compare_frame(mp, bad)[0]:
            return f"{alter.__name__} on {sh['image']} passes the comparison"
    return None


def _read_lines(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def cmd_compare(a):
    with open(os.path.join(a.work, "mediapipe.json")) as f:
        mp = json.load(f)
    runs = [("image", mp["images"], _read_lines(os.path.join(a.work, "shoal_images.jsonl"))),
            ("video", mp["video"], _read_lines(os.path.join(a.work, "shoal_video.jsonl")))]
    print(f"MediaPipe @mediapipe/hands {mp['version']} in {mp['user_agent']}")
    wasm = [f for f in mp["files"] if f.endswith("wasm_bin.js")]
    print(f"  WebGL: {mp['webgl']}; wasm: {', '.join(wasm)}; options: {json.dumps(mp['options'])}")
    print(f"tolerances: landmarks |dx|,|dy| < {LANDMARK_PX:g} px and <= {LANDMARK_NORM:g} of the image size "
          f"(MediaPipe's legacy and Tasks tests); handedness label equal, score +-{HANDEDNESS_SCORE:g} (Tasks); "
          f"as many hands and palms; palm box fields +-{PALM_BOX:g} (twice the Tasks test's: the palm input is "
          f"sampled half a pixel apart); palm scores shown, not compared")
    failed = known = 0
    blind = comparison_catches_errors(runs[0][1], runs[0][2])
    if blind:
        print(f"FAIL: the comparison cannot fail: {blind}")
        failed += 1
    dists, worst = {"image": [], "video": []}, {"image": 0.0, "video": 0.0}
    # The npm class as shipped must give what the exposed graph gives on the same image.
    stock, first = mp["stock"][0], mp["images"][0]
    if json.dumps(stock["hands"]) != json.dumps(first["hands"]):
        print(f"FAIL: npm Hands and the exposed graph differ on {first['file']}")
        failed += 1
    print(f"{'run':5} {'image':30} {'hands':>5} {'palms':>5} {'max px':>7} {'mean px':>7} {'max/size':>8} "
          f"{'hand sc':>7} {'palm box':>8} {'palm sc':>7}  result")
    for run, mps, shs in runs:
        if len(mps) != len(shs):
            print(f"FAIL: {run}: {len(mps)} frames from MediaPipe, {len(shs)} from shoal")
            failed += 1
            continue
        for m, s in zip(mps, shs):
            if os.path.basename(s["image"]) != os.path.basename(m["file"]):
                print(f"FAIL: {run}: frame order differs ({m['file']} vs {s['image']})")
                failed += 1
                break
            fails, st = compare_frame(m, s)
            name = os.path.basename(m["file"])
            reason = KNOWN_DIVERGENCES.get((run, name))
            verdict = ("known" if fails else "FAIL: agrees now") if reason else ("FAIL" if fails else "ok")
            mean = f"{st['mean_px']:7.2f}" if st["mean_px"] is not None else "      -"
            print(f"{run:5} {name:30} {st['hands']:>5} {st['palms']:>5} {st['max_px']:7.2f} {mean} "
                  f"{st['max_norm']:8.4f} {st['hand_score']:7.3f} {st['palm_box']:8.4f} {st['palm_score']:7.3f}  {verdict}")
            for msg in fails[:6]:
                print(f"      {msg}")
            if len(fails) > 6:
                print(f"      ... {len(fails) - 6} more")
            if reason:
                print(f"      known divergence: {reason}" if fails else
                      "      listed in KNOWN_DIVERGENCES but agrees: remove the entry")
                known += bool(fails)
                failed += not fails
            else:
                failed += bool(fails)
                dists[run] += st["dists"]
                worst[run] = max(worst[run], st["max_px"])
    print("(hands, palms: MediaPipe/shoal; max px: the largest |dx| or |dy| of a landmark; mean px: the mean "
          "landmark distance; max/size: the largest |dx|/width or |dy|/height)")
    for run in ("image", "video"):
        if dists[run]:
            print(f"{run}: {len(dists[run])} landmarks compared (known divergences apart), mean distance "
                  f"{sum(dists[run]) / len(dists[run]):.2f} px, largest |dx| or |dy| {worst[run]:.2f} px")
    print(f"{failed} failed, {known} known divergences" if failed else f"all frames agree ({known} known divergences)")
    return 1 if failed else 0


def _letterbox_corners(img, size):
    """The palm input as shoal and MediaPipe's OpenCV converter sample it: output pixel i at the
    square's left + i * side / size (values at integer pixel coordinates), zero outside."""
    import numpy as np
    h, w = img.shape[:2]
    side = max(w, h)
    t = np.arange(size) * side / size - side / 2
    x, y = np.meshgrid(w / 2 + t, h / 2 + t)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]

    def at(yy, xx):
        inside = ((xx >= 0) & (xx < w) & (yy >= 0) & (yy < h))[..., None]
        return img[np.clip(yy, 0, h - 1), np.clip(xx, 0, w - 1)] * inside

    out = (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy) +
           at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)
    return out.astype(np.float32)[None]


def cmd_sampling(a):
    import numpy as np
    import torch
    from PIL import Image
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
    import tflite_torch as peer
    palm = peer.load(os.path.join(a.models, peer.PALM_FILE))
    with open(os.path.join(a.work, "mediapipe.json")) as f:
        mp = json.load(f)["images"]
    sh = _read_lines(os.path.join(a.work, "shoal_images.jsonl"))
    print("palm scores: MediaPipe (npm, GPU graph) | PyTorch peer, texel-centre sampling | shoal | PyTorch peer, corner sampling")
    for m, s in zip(mp, sh):
        if not m["palms"] and not s["palms"]:
            continue
        img = np.asarray(Image.open(os.path.join(a.work, m["file"])).convert("RGB"), np.float32) / 255
        h, w = img.shape[:2]
        side = max(w, h)
        peer_scores = []
        for x in (peer.crop(img, (w / 2, h / 2, side, side, 0.0), 192, zero_border=True), _letterbox_corners(img, 192)):
            with torch.no_grad():
                boxes, logits = (o.numpy() for o in palm(torch.from_numpy(x)))
            peer_scores.append(sorted(p[4] for p in peer.decode_palms(boxes, logits)[0]))
        fmt = lambda v: " ".join(f"{x:.4f}" for x in sorted(v)) or "-"   # noqa: E731
        print(f"{os.path.basename(m['file']):30} {fmt(p['score'] for p in m['palms']):15} | {fmt(peer_scores[0]):15} | "
              f"{fmt(p['score'] for p in s['palms']):15} | {fmt(peer_scores[1])}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("graph")
    g.add_argument("solution")
    g.add_argument("out")
    g = sub.add_parser("images")
    g.add_argument("--inference", choices=("cpu", "gl"), default="cpu")
    g.add_argument("shared")
    g.add_argument("out")
    g = sub.add_parser("list")
    g.add_argument("work")
    g.add_argument("what", choices=("images", "video"))
    g = sub.add_parser("compare")
    g.add_argument("work")
    g = sub.add_parser("sampling")
    g.add_argument("work")
    g.add_argument("--models", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "models"))
    a = ap.parse_args()
    return {"graph": cmd_graph, "images": cmd_images, "list": cmd_list, "compare": cmd_compare,
            "sampling": cmd_sampling}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
