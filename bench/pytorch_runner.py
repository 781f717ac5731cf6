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
latency (median/p90/p99; CUDA events on GPU, perf_counter on CPU), process device memory
(NVML or nvidia-smi), torch.cuda.max_memory_allocated/reserved, peak RSS, and the relative L2
of each output against the fp32 reference in models/ (the accuracy cost of fp16).
Prints one JSON line.

The weights come from tools/export_models.py's build_model() (same seeds, same weights). The
first run generates them (seconds to a minute on CPU) and caches state_dicts under --cache-dir,
keyed by the exporter's source hash, so the timed load reads files as a server would.
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

CONFIGS = ["fp32_eager", "fp16_eager_bnfold", "fp16_cudnn_benchmark", "fp16_cuda_graphs", "compile"]
MODES = {"navigation": ["blind_road", "obstacle"], "crossing": ["traffic_light"],
         "shopping": ["shopping", "hand"]}


def skeleton(name):
    """The module without running the seeded init/calibration (weights come from the cache)."""
    spec = E.MODELS[name]
    if spec["kind"] == "hand":
        return E.HandLandmarks(spec["imgsz"])
    return E.YOLO(spec["scale"], spec["nc"], spec["task"])


def weights_cache(cache_dir, names):
    src = open(E.__file__, "rb").read()
    key = hashlib.sha256(src + torch.__version__.split("+")[0].encode()).hexdigest()[:16]
    d = os.path.join(cache_dir, key)
    os.makedirs(d, exist_ok=True)
    t0 = time.perf_counter()
    made = []
    for n in names + (["blind_road"] if "shopping" in names and "blind_road" not in names else []):
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


def quantiles(ms):
    a = np.sort(np.asarray(ms, dtype=np.float64))
    q = lambda p: float(a[min(len(a) - 1, max(0, int(np.ceil(p * len(a))) - 1))])
    return dict(median_ms=round(q(0.5), 3), p90_ms=round(q(0.9), 3), p99_ms=round(q(0.99), 3), n=len(a))


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
    ap.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("pytorch_runner: --device cuda but torch.cuda.is_available() is False")
    if args.config == "fp16_cuda_graphs" and dev != "cuda":
        sys.exit("pytorch_runner: fp16_cuda_graphs needs --device cuda")
    if args.config == "compile" and not hasattr(torch, "compile"):
        sys.exit(f"pytorch_runner: compile needs PyTorch 2.x (this is {torch.__version__})")
    names = [n for n in E.ORDER if n in args.models]
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
    subprocess.run([sys.executable, os.path.abspath(__file__), "--config", args.config, "--generate-only",
                    "--threads", str(args.threads), "--cache-dir", args.cache_dir, "--models", *names],
                   check=True)
    gen_s = time.perf_counter() - t
    cache, _, made = weights_cache(args.cache_dir, names)
    assert not made
    inputs_np = {n: E.make_input(n) for n in names}
    ctx_s = None
    if dev == "cuda":
        # The CUDA context is a fixed cost of the process, not of loading models: time it apart.
        # cuBLAS/cuDNN handles are still created lazily and land in the first model's load.
        t = time.perf_counter()
        torch.zeros(1, device="cuda")
        torch.cuda.synchronize()
        ctx_s = round(time.perf_counter() - t, 3)

    # ---- timed load: weights file -> module on device, converted, first run done
    models, run, load_ms = {}, {}, {}
    t_load = time.perf_counter()
    for n in names:
        t = time.perf_counter()
        m = skeleton(n)
        m.load_state_dict(torch.load(os.path.join(cache, f"{n}.pt"), map_location="cpu"))
        m.eval()
        for p in m.parameters():
            p.requires_grad_(False)
        if bnfold:
            fold_bn(m)
        m = m.to(device=dev, dtype=dtype)
        x = torch.from_numpy(inputs_np[n]).to(device=dev, dtype=dtype)
        if args.config == "compile":
            m = torch.compile(m, mode=args.compile_mode)
        if args.config == "fp16_cuda_graphs":
            s = torch.cuda.Stream()
            s.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(s), torch.no_grad():
                for _ in range(3):       # cudnn.benchmark picks algorithms outside the capture
                    m(x)
            torch.cuda.current_stream().wait_stream(s)
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g), torch.no_grad():
                y = m(x)
            run[n] = (lambda g=g: g.replay())
            models[n] = (m, x, g, y)
        else:
            with torch.no_grad():
                y = m(x)               # first run: lazy init, cudnn autotune, compilation
            run[n] = (lambda m=m, x=x: m(x))
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
                y = m(x)
        ys = y if isinstance(y, tuple) else (y,)
        _, outs = E.model_io(n)
        for (oname, _), t in zip(outs, ys):
            ref = os.path.join(args.models_dir, f"{n}.{oname}.npy")
            if os.path.exists(ref):
                r = np.load(ref).astype(np.float64)
                a = t.detach().float().cpu().numpy().astype(np.float64)
                acc.setdefault(n, {})[oname] = float(f"{np.linalg.norm(a - r) / np.linalg.norm(r):.3g}")

    # ---- latency
    timer = Timer(dev)
    per_model, per_mode = {}, {}
    with torch.no_grad():
        for n in names:
            for _ in range(args.warmup):
                run[n]()
            per_model[n] = quantiles([timer(run[n]) for _ in range(args.iters)])
        for mode, ms in MODES.items():
            if not all(n in run for n in ms):
                continue
            frame = lambda ms=ms: [run[n]() for n in ms]
            for _ in range(args.warmup):
                frame()
            per_mode[mode] = quantiles([timer(frame) for _ in range(args.iters)])

    out = dict(runner="pytorch", torch=torch.__version__, config=args.config, device=dev,
               device_name=torch.cuda.get_device_name() if dev == "cuda" else "cpu",
               dtype=str(dtype).replace("torch.", ""), bn_folded=bnfold, threads=args.threads,
               iters=args.iters, warmup=args.warmup, models=names,
               weights_cache_s=round(gen_s, 2),
               cuda_context_s=ctx_s, load_s=round(load_s, 3), load_ms_per_model=load_ms,
               per_model=per_model, per_mode=per_mode, vs_reference_rel_l2=acc)
    if dev == "cpu" and args.config != "fp32_eager":
        out["note"] = "CPU: fp16 configurations run float32 (BN folded)"
    if dev == "cuda":
        used, src = device_memory_mb(dev)
        out.update(device_memory_mb=None if used is None else round(used, 1), device_memory_source=src,
                   max_memory_allocated_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
                   max_memory_reserved_mb=round(torch.cuda.max_memory_reserved() / 2**20, 1),
                   cudnn_benchmark=torch.backends.cudnn.benchmark)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
