#!/usr/bin/env python3
"""PyTorch peer for shoal's benchmarks: the five AIGlasses models resident in one process.

One configuration per process (so memory numbers are not polluted by another's caches):
  fp32_eager            float32, eager, BN unfolded (what a plain `model.eval()` server does)
  fp16_eager_bnfold     Conv+BN folded, half precision, eager
  fp16_cudnn_benchmark  + torch.backends.cudnn.benchmark, TF32 allowed
  fp16_cuda_graphs      + one CUDA graph per model, replayed per frame
  compile               + torch.compile (PyTorch 2.x), --compile-mode, default "default"
On CPU the fp16 configurations keep float32 (PyTorch's CPU half convolutions are not a
deployment path) and say so in the JSON; cuda_graphs needs CUDA.

Measures: load time (weights from disk -> ready, first run included), per-model and per-mode
latency (median/p90/p99; CUDA events on GPU, perf_counter on CPU; on GPU also "e2e", below),
process device memory (NVML or nvidia-smi), torch.cuda.max_memory_allocated/reserved, peak
RSS, and the relative L2 of each output against the fp32 reference in models/ (the accuracy
cost of fp16).
Prints one JSON line.

Two GPU latencies, because they answer different questions:
  per_model / per_mode   CUDA events around the forward passes (or graph replays), input
                         already on the device, outputs left there: the device time alone.
  e2e.per_model / .per_mode  host wall clock (perf_counter) of what shoal's "infer" times:
                         the preprocessed fp32 input copied from a pinned host tensor to the
                         device (non_blocking; cast to fp16 on the device in fp16 configs), the
                         forward (or replay), every output copied to a pinned host tensor in
                         the model's dtype (non_blocking), then torch.cuda.synchronize().
                         Buffers are allocated once, outside the timed loop; memory figures
                         are taken before them so they match the event-timed run.

The weights come from tools/export_models.py's build_model() (same seeds, same weights). The
first run generates them (seconds to a minute on CPU) and caches state_dicts under --cache-dir,
keyed by the exporter's source hash, so the timed load reads files as a server would.

"hand" is MediaPipe's hand landmarker by default (--hand mediapipe): the palm detector
(palm_detection_full.tflite, 192x192) then the landmark model on one crop
(hand_landmark_full.tflite, 224x224), read from the .tflite files by bench/tflite_torch.py
(real weights; loading them is the timed load), one frame = both networks in turn, what
shoal's hand model runs on a frame where it finds one hand. Its inputs come from MediaPipe's
test photo (tflite_torch.hand_inputs) and its accuracy figure is against the fp32 module on
the CPU (which tflite_torch.py check holds to shoal within 1e-4). --hand stand-in times the
old MobileNetV3 stand-in (hand.onnx's network) for configs that still use it; the JSON says
which in "hand".

On CUDA: python3 bench/pytorch_runner.py --config fp16_cuda_graphs --device cuda
(PyTorch 2.x there; needs models/ with the two .tflite files, and ../shared for the photo).
"""
import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
import export_models as E  # noqa: E402
import tflite_torch as TT  # noqa: E402

CONFIGS = ["fp32_eager", "fp16_eager_bnfold", "fp16_cudnn_benchmark", "fp16_cuda_graphs", "compile"]
MODES = {"navigation": ["blind_road", "obstacle"], "crossing": ["traffic_light"],
         "shopping": ["shopping", "hand"]}


def skeleton(name):
    """The module without running the seeded init/calibration (weights come from the cache)."""
    spec = E.MODELS[name]
    if spec["kind"] == "hand":
        return E.HandLandmarks(spec["imgsz"])
    return E.YOLO(spec["scale"], spec["nc"], spec["task"], arch=spec.get("arch", "yolo11"))


def cache_path(cache_dir):
    """The folder of this exporter source's, this torch's and this set's state_dicts."""
    src = open(E.__file__, "rb").read()
    key = hashlib.sha256(src + torch.__version__.split("+")[0].encode() + E.SET.encode()).hexdigest()[:16]
    d = os.path.join(cache_dir, key)
    os.makedirs(d, exist_ok=True)
    return d


def weights_cache(cache_dir, names):
    d = cache_path(cache_dir)
    t0 = time.perf_counter()
    made = []
    shared = E.SET == "small" and "shopping" in names and "blind_road" not in names
    for n in names + (["blind_road"] if shared else []):
        f = os.path.join(d, f"{n}.pt")
        if not os.path.exists(f):
            m = E.build_model(n)
            torch.save(m.state_dict(), f + ".tmp")
            os.replace(f + ".tmp", f)
            made.append(n)
    return d, time.perf_counter() - t0, made


def fold_bn(model):
    """Fold every eval-mode BatchNorm2d into the Conv2d before it (Conv wrappers and Sequentials)."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    n = 0
    for m in model.modules():
        if isinstance(m, E.Conv) and isinstance(m.bn, nn.BatchNorm2d):
            m.conv, m.bn = fuse_conv_bn_eval(m.conv, m.bn), nn.Identity()
            n += 1
        elif isinstance(m, nn.Sequential):
            for i in range(len(m) - 1):
                if isinstance(m[i], nn.Conv2d) and isinstance(m[i + 1], nn.BatchNorm2d):
                    m[i], m[i + 1] = fuse_conv_bn_eval(m[i], m[i + 1]), nn.Identity()
                    n += 1
    return n


def device_memory_mb(device):
    """This process's device memory as the driver sees it (context included), or None."""
    if device != "cuda":
        return None, None
    pid = os.getpid()
    try:
        import pynvml
        pynvml.nvmlInit()
        h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(h):
            if p.pid == pid and p.usedGpuMemory is not None:
                return p.usedGpuMemory / 2**20, "nvml"
        return None, "nvml (pid not listed)"
    except Exception:
        pass
    try:
        out = subprocess.run(["nvidia-smi", "--query-compute-apps=pid,used_memory",
                              "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=20)
        for line in out.stdout.splitlines():
            parts = [p.strip() for p in line.split(",")]
            if len(parts) == 2 and parts[0] == str(pid):
                return float(parts[1]), "nvidia-smi"
        return None, "nvidia-smi (pid not listed)"
    except Exception as e:  # no driver tools: report why
        return None, f"unavailable: {e}"


def gpu_memory():
    """Device memory figures of the event-timed run (taken before the e2e buffers exist)."""
    used, src = device_memory_mb("cuda")
    return dict(device_memory_mb=None if used is None else round(used, 1), device_memory_source=src,
                max_memory_allocated_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                max_memory_reserved_mb=round(torch.cuda.max_memory_reserved() / 2**20, 1),
                cudnn_benchmark=torch.backends.cudnn.benchmark)


def quantiles(ms):
    a = np.sort(np.asarray(ms, dtype=np.float64))
    q = lambda p: float(a[min(len(a) - 1, max(0, int(np.ceil(p * len(a))) - 1))])
    return dict(median_ms=round(q(0.5), 3), p90_ms=round(q(0.9), 3), p99_ms=round(q(0.99), 3), n=len(a))


def as_tuple(y):
    return tuple(y) if isinstance(y, (tuple, list)) else (y,)


def wall_ms(fn):
    """Host wall clock of fn through a device sync: what a caller waiting for results sees."""
    t = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t) * 1e3


def latency(steps, timer, warmup, iters):
    """Per model, then per mode (its models one after another), warmup then iters timed runs."""
    per_model, per_mode = {}, {}
    with torch.no_grad():
        for n, step in steps.items():
            for _ in range(warmup):
                step()
            per_model[n] = quantiles([timer(step) for _ in range(iters)])
        for mode, ms in MODES.items():
            if not all(n in steps for n in ms):
                continue
            frame = lambda ms=ms: [steps[n]() for n in ms]
            for _ in range(warmup):
                frame()
            per_mode[mode] = quantiles([timer(frame) for _ in range(iters)])
    return per_model, per_mode


def e2e_step(model, run, x_np):
    """One frame of a model as a server hands it over: pinned fp32 input -> device, forward,
    every output -> pinned host buffers. Buffers are made here, once; run() must return the
    outputs (a graph's static outputs after its replay)."""
    _, xs, _, y = model
    host_in = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).pin_memory() for a in x_np]
    # fp16 configs: the bytes cross the bus as fp32 (as shoal's float inputs do) and are cast
    # on the device into the input the model (or its graph) reads.
    stage = [x if x.dtype == torch.float32 else torch.empty(x.shape, dtype=torch.float32, device=x.device)
             for x in xs]
    host_out = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in as_tuple(y)]

    def step():
        for h, st, x in zip(host_in, stage, xs):
            st.copy_(h, non_blocking=True)
            if st is not x:
                x.copy_(st)
        for h, t in zip(host_out, as_tuple(run())):
            h.copy_(t, non_blocking=True)
    return step


class Timer:
    def __init__(self, device):
        self.cuda = device == "cuda"

    def __call__(self, fn):
        if self.cuda:
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e)
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1e3


def main():
    ap = argparse.ArgumentParser(description="PyTorch peer for shoal's benchmarks")
    ap.add_argument("--config", choices=CONFIGS, required=True)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--models", nargs="*", default=E.ORDER)
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "models"),
                    help="reference .npy outputs for the accuracy check (skipped where absent)")
    ap.add_argument("--cache-dir", default=os.environ.get("SHOAL_BENCH_CACHE", "/tmp/shoal-bench-weights"))
    ap.add_argument("--compile-mode", default="default")
    ap.add_argument("--set", choices=sorted(E.SETS), default="small", help="full: the original system's sizes")
    ap.add_argument("--hand", choices=["mediapipe", "stand-in"], default="mediapipe",
                    help="mediapipe: the palm detector + landmark model from models/*.tflite; "
                         "stand-in: the MobileNetV3 stand-in of hand.onnx")
    ap.add_argument("--hand-models", default=os.path.join(ROOT, "models"),
                    help="the folder of the two .tflite files (both configs read them from models/)")
    ap.add_argument("--hand-photo", default=TT.HAND_PHOTO, help="MediaPipe's left_hands.jpg (inputs)")
    ap.add_argument("--hand-inputs", help="a folder from `tflite_torch.py export`: its hand_palm.input.npy and "
                                          "hand_landmark.input.npy instead of the photo (machines without it)")
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    E.use_set(args.set)

    torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("pytorch_runner: --device cuda but torch.cuda.is_available() is False")
    if args.config == "fp16_cuda_graphs" and dev != "cuda":
        sys.exit("pytorch_runner: fp16_cuda_graphs needs --device cuda")
    if args.config == "compile" and not hasattr(torch, "compile"):
        sys.exit(f"pytorch_runner: compile needs PyTorch 2.x (this is {torch.__version__})")
    names = [n for n in E.ORDER if n in args.models]
    real_hand = args.hand == "mediapipe" and "hand" in names
    if "hand" in names and not real_hand and "hand" not in E.MODELS:
        sys.exit(f"pytorch_runner: the {args.set} set has no stand-in hand network (--hand mediapipe)")
    cached = [n for n in names if not (real_hand and n == "hand")]   # the real hand reads its .tflite
    half = args.config != "fp32_eager" and dev == "cuda"
    dtype = torch.float16 if half else torch.float32
    bnfold = args.config != "fp32_eager"
    if dev == "cuda":
        torch.backends.cudnn.benchmark = args.config in ("fp16_cudnn_benchmark", "fp16_cuda_graphs", "compile")
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.benchmark

    if args.generate_only:
        weights_cache(args.cache_dir, names)
        return
    # Generation (init + BN calibration forward) runs in a child so it stays out of peak RSS.
    t = time.perf_counter()
    if cached:
        subprocess.run([sys.executable, os.path.abspath(__file__), "--config", args.config, "--generate-only",
                        "--set", args.set, "--threads", str(args.threads), "--cache-dir", args.cache_dir,
                        "--models", *cached], check=True)
    gen_s = time.perf_counter() - t
    cache, _, made = weights_cache(args.cache_dir, cached)
    assert not made
    # every model's inputs, as a tuple (the real hand takes the palm and the landmark input)
    inputs_np = {n: (E.make_input(n),) for n in cached}
    hand_what = None
    if real_hand:
        if args.hand_inputs:
            hx = {k: np.load(os.path.join(args.hand_inputs, f"hand_{k}.input.npy")) for k in ("palm", "landmark")}
            src = os.path.join(args.hand_inputs, "inputs.txt")
            hand_src = open(src).read().strip() if os.path.exists(src) else args.hand_inputs
        else:
            hx, hand_src = TT.hand_inputs(args.hand_photo)
        inputs_np["hand"] = (hx["palm"], hx["landmark"])
        hand_what = ("MediaPipe hand landmarker: palm_detection_full.tflite [1,192,192,3] then "
                     "hand_landmark_full.tflite [1,224,224,3] on one crop, per frame; inputs: " + hand_src)
    elif "hand" in names:
        hand_what = "stand-in: tools/export_models.py's MobileNetV3 hand network (hand.onnx), not MediaPipe's"
    ctx_s = None
    if dev == "cuda":
        # The CUDA context is a fixed cost of the process, not of loading models: time it apart.
        # cuBLAS/cuDNN handles are still created lazily and land in the first model's load.
        t = time.perf_counter()
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        ctx_s = round(time.perf_counter() - t, 3)

    # ---- timed load: weights file -> module on device, converted, first run done
    models, run, outputs, load_ms = {}, {}, {}, {}   # outputs: like run, returning the outputs
    t_load = time.perf_counter()
    for n in names:
        t = time.perf_counter()
        if n == "hand" and real_hand:
            m = TT.load_pipeline(args.hand_models)   # parses both .tflite files, dequantizes fp16
        else:
            m = skeleton(n)
            m.load_state_dict(torch.load(os.path.join(cache, f"{n}.pt"), map_location="cpu"))
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        if bnfold:
            fold_bn(m)
        m = m.to(device=dev, dtype=dtype)
        x = tuple(torch.from_numpy(a).to(device=dev, dtype=dtype) for a in inputs_np[n])
        if args.config == "compile":
            m = torch.compile(m, mode=args.compile_mode)
        if args.config == "fp16_cuda_graphs":
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s), torch.no_grad():
                for _ in range(3):       # cudnn.benchmark picks algorithms outside the capture
                    m(*x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g), torch.no_grad():
                y = m(*x)
            run[n] = (lambda g=g: g.replay())
            outputs[n] = (lambda g=g, y=y: (g.replay(), y)[1])
            models[n] = (m, x, g, y)
        else:
            with torch.no_grad():
                y = m(*x)              # first run: lazy init, cudnn autotune, compilation
            run[n] = outputs[n] = (lambda m=m, x=x: m(*x))
            models[n] = (m, x, None, y)
        if dev == "cuda":
            torch.cuda.synchronize()
        load_ms[n] = round((time.perf_counter() - t) * 1e3, 1)
    load_s = time.perf_counter() - t_load

    # ---- accuracy against the fp32 reference outputs (relative L2)
    acc = {}
    for n in names:
        m, x, g, y = models[n]
        if g is not None:
            g.replay()
        else:
            with torch.no_grad():
                y = m(*x)
        ys = y if isinstance(y, tuple) else (y,)
        if n == "hand" and real_hand:   # the reference: the fp32 module on the CPU, same inputs
            ref_net = TT.load_pipeline(args.hand_models)
            with torch.no_grad():
                refs = [r.numpy() for r in ref_net(*(torch.from_numpy(a) for a in inputs_np[n]))]
            onames = [f"palm.{o}" for o in ref_net.palm.output_names] + \
                     [f"landmark.{o}" for o in ref_net.landmark.output_names]
            pairs = [(o, r) for o, r in zip(onames, refs)]
        else:
            _, outs = E.model_io(n)
            pairs = []
            for oname, _ in outs:
                ref = os.path.join(args.models_dir, f"{n}.{oname}.npy")
                pairs.append((oname, np.load(ref) if os.path.exists(ref) else None))
        for (oname, r), t in zip(pairs, ys):
            if r is not None:
                r = r.astype(np.float64)
                a = t.detach().float().cpu().numpy().astype(np.float64)
                acc.setdefault(n, {})[oname] = float(f"{np.linalg.norm(a - r) / np.linalg.norm(r):.3g}")

    # ---- latency: device time (events) first, as before; then, on GPU, the e2e path
    per_model, per_mode = latency(run, Timer(dev), args.warmup, args.iters)
    mem = gpu_memory() if dev == "cuda" else {}
    peak_rss = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    e2e = None
    if dev == "cuda":
        steps = {n: e2e_step(models[n], outputs[n], inputs_np[n]) for n in names}
        e2e_model, e2e_mode = latency(steps, wall_ms, args.warmup, args.iters)
        e2e = dict(per_model=e2e_model, per_mode=e2e_mode,
                   what="host wall clock: pinned fp32 input -> device (non_blocking), forward, outputs -> "
                        "pinned host (non_blocking), torch.cuda.synchronize()")

    out = dict(runner="pytorch", torch=torch.__version__, config=args.config, set=args.set, device=dev,
               device_name=torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               dtype=str(dtype).replace("torch.", ""), bn_folded=bnfold, threads=args.threads,
               iters=args.iters, warmup=args.warmup, models=names,
               weights_cache_s=round(gen_s, 2),
               cuda_context_s=ctx_s, load_s=round(load_s, 3), load_ms_per_model=load_ms,
               per_model=per_model, per_mode=per_mode, vs_reference_rel_l2=acc)
    if hand_what:
        out["hand"] = hand_what
    if e2e:
        out["e2e"] = e2e
    if dev == "cpu" and args.config != "fp32_eager":
        out["note"] = "CPU: fp16 configurations run float32 (BN folded)"
    out.update(mem)
    out["peak_rss_mb"] = peak_rss
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
