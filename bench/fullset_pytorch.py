#!/usr/bin/env python3
"""The original system's way, on the full model set: PyTorch with each model loaded as its own
module (no shared activations, no planning), under a per-process memory cap like an 8 GB card.

One configuration per process (so one's caches do not pollute the other's memory):
  --dtype fp32   the article's "traditional" loader: float32 eager, model.eval()
  --dtype fp16   its "optimized" loader: model.half(), eager (BN kept, as model.half() leaves it);
                 --bnfold also folds Conv+BN first (the usual anchor of docs/benchmarks.md)
  --graphs       one CUDA graph per model (cudnn.benchmark and TF32 on, as pytorch_runner's
                 fp16_cuda_graphs), replayed per frame: the strongest of these peers

The hand is what --config's hand model is. MediaPipe's landmarker (task: hand_landmarks, the
full config's) runs per frame as the frame-level peer runs it (bench/hand_frame.py's HandFrame:
the palm detector and, where a palm passes min_detection_confidence, the landmark model on
one crop, both read from the config's .tflite files by bench/tflite_torch.py) on the frame
shoal bench gives the shopping mode: --hand-frame FILE (what `shoal bench --image
shopping=FILE` reads), else the mode's first model's input as 8-bit pixels (shoal bench's
frame without --image). Parsing the .tflite files is part of its load. A config whose hand is
the MobileNetV3 stand-in (the small set's hand.onnx) runs that network like the others. The
JSON says which hand ran, on what frame, and whether it found a palm there.

Measures, in one process: cold start (CUDA context included) to every model resident with its
first run done; how many models stay co-resident under --cap-gib (the CUDA context's own bytes
are taken out of the cap given to torch.cuda.set_per_process_memory_fraction, which governs the
caching allocator only, so the whole process stays within the cap; a model whose load or first
run raises OutOfMemoryError is dropped and the next one tried); per-mode and per-model latency
(host wall clock through a sync, input copied from pinned host memory and outputs back, as
bench/pytorch_runner.py's "e2e"; and CUDA events, device only); the process's device memory
sampled by NVML (pynvml, else nvidia-smi) every --sample-ms: peak over the whole life, mean over
the latency phase (the steady state). Prints one JSON line.

The YOLO weights come from pytorch_runner's cache (the exporter's seeded networks; filled on
first use).
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hand_frame as HF  # noqa: E402
import pytorch_runner as R  # noqa: E402
from pytorch_runner import E  # noqa: E402


def is_oom(e):
    """cuDNN and cuBLAS report a failed allocation as a RuntimeError, not OutOfMemoryError."""
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


class Sampler(threading.Thread):
    """This process's device memory (MiB) every `period` s, with a phase tag per sample."""

    def __init__(self, period):
        super().__init__(daemon=True)
        self.period, self.pid, self.samples, self.phase = period, os.getpid(), [], "start"
        self.stop = threading.Event()
        self.source = None
        try:
            import pynvml
            pynvml.nvmlInit()
            self.h = pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
            self.nvml, self.source = pynvml, "nvml"
        except Exception:  # noqa: BLE001 - no pynvml: nvidia-smi's own loop
            self.nvml = None
            self.smi = subprocess.Popen(
                ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits",
                 "-lms", str(max(50, int(period * 1e3)))], stdout=subprocess.PIPE, text=True)
            self.source = "nvidia-smi"

    def run(self):
        while not self.stop.is_set():
            if self.nvml:
                try:
                    for p in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.h):
                        if p.pid == self.pid and p.usedGpuMemory is not None:
                            self.samples.append((self.phase, p.usedGpuMemory / 2**20))
                except Exception:  # noqa: BLE001
                    pass
                time.sleep(self.period)
            else:
                line = self.smi.stdout.readline()
                if not line:
                    return
                parts = [x.strip() for x in line.split(",")]
                if len(parts) == 2 and parts[0] == str(self.pid):
                    self.samples.append((self.phase, float(parts[1])))

    def finish(self):
        self.stop.set()
        if not self.nvml:
            self.smi.terminate()
        self.join(timeout=2)

    def stats(self, phase=None):
        v = [m for p, m in self.samples if phase is None or p == phase]
        return dict(n=len(v), peak_mib=round(max(v), 1) if v else None,
                    mean_mib=round(float(np.mean(v)), 1) if v else None)


def hand_frame_pixels(path, modes):
    """The 8-bit frame the hand sees, as shoal bench gives it one, and what it is."""
    if path:
        return HF.read_frame(path), os.path.basename(path)
    for mode, members in modes.items():
        if "hand" in members and members[0] != "hand":
            x = E.make_input(members[0])[0]
            rgb = np.clip(np.transpose(x, (1, 2, 0)) * 255 + 0.5, 0, 255).astype(np.uint8)
            return rgb, f"{members[0]}.input.npy as 8-bit pixels (shoal bench's {mode} frame without --image)"
    rgb = np.random.RandomState(505).randint(0, 256, (224, 224, 3), dtype=np.uint8)
    return rgb, "seeded noise"


def capture(m, x):
    """One CUDA graph of m(x); cudnn.benchmark picks its algorithms on a side stream first."""
    st = torch.cuda.Stream()
    st.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(st), torch.no_grad():
        for _ in range(3):
            m(x)
    torch.cuda.current_stream().wait_stream(st)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g), torch.no_grad():
        y = m(x)
    return g, y


def hand_step(hand, rgb):
    """One frame of the hand as a server hands it over: the 8-bit frame from pinned host memory
    into the device frame, palm (and landmarks), the landmarks back to the host."""
    pinned = torch.from_numpy(rgb)
    if hand.frame.is_cuda:
        pinned = pinned.pin_memory()

    def step():
        hand.frame.copy_(pinned, non_blocking=True)
        hand.run_network()
        hand.results()
    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", choices=["fp32", "fp16"], required=True)
    ap.add_argument("--bnfold", action="store_true")
    ap.add_argument("--graphs", action="store_true", help="one CUDA graph per model, replayed per frame")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda",
                    help="cpu: a dry run of the same path (float32, no cap, no NVML, no graphs)")
    ap.add_argument("--set", choices=sorted(E.SETS), default="full")
    ap.add_argument("--config", default=None, help="the shoal config whose hand model to run "
                                                   "(default: configs/aiglasses-full.yaml, or aiglasses.yaml for --set small)")
    ap.add_argument("--hand-frame", default=None, help="the image shoal bench's shopping mode reads (--image shopping=FILE)")
    ap.add_argument("--cap-gib", type=float, default=8.0, help="0: no cap")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--sample-ms", type=float, default=20)
    ap.add_argument("--cache-dir", default=os.environ.get("SHOAL_BENCH_CACHE", "/tmp/shoal-bench-weights"))
    args = ap.parse_args()
    E.use_set(args.set)
    torch.set_num_threads(args.threads)
    dev = args.device
    if dev == "cuda" and not torch.cuda.is_available():
        sys.exit("fullset_pytorch: --device cuda but torch.cuda.is_available() is False (--device cpu: a dry run)")
    if dev == "cpu" and (args.graphs or args.dtype == "fp16"):
        sys.exit("fullset_pytorch: --device cpu runs float32 eager only (--dtype fp32, no --graphs)")
    config = args.config or os.path.join(R.ROOT, "configs", "aiglasses-full.yaml" if args.set == "full" else "aiglasses.yaml")
    settings, modes = HF.model_settings(config)
    real_hand = settings.get("hand", {}).get("task") == "hand_landmarks"
    if not real_hand and "hand" not in E.MODELS:
        sys.exit(f"fullset_pytorch: {config}'s hand is not task hand_landmarks and the {args.set} set has no hand network")
    names = list(E.ORDER)
    cached = [n for n in names if not (real_hand and n == "hand")]   # the real hand reads its .tflite files
    cache, gen_s, _ = R.weights_cache(args.cache_dir, cached)   # outside the timed load
    inputs = {n: E.make_input(n) for n in cached}
    if real_hand:
        hand_rgb, hand_src = hand_frame_pixels(args.hand_frame, modes)
        hs = settings["hand"]
        hand_what = (f"MediaPipe hand landmarker per frame (bench/hand_frame.py): {os.path.basename(hs['palm_model'])} "
                     f"on the frame letterboxed to 192x192, then {os.path.basename(hs['path'])} on one 224x224 crop "
                     f"where a palm scores >= {hs['min_score']}; frame: {hand_src} ({hand_rgb.shape[1]}x{hand_rgb.shape[0]})")
    else:
        hand_what = "stand-in: tools/export_models.py's MobileNetV3 hand network (hand.onnx), not MediaPipe's"
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    if args.graphs:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True

    sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
    t_cold = time.perf_counter()
    torch.zeros(1, device=dev)
    sync()
    ctx_s = time.perf_counter() - t_cold
    sampler = Sampler(args.sample_ms / 1e3) if dev == "cuda" else None
    if sampler:
        sampler.start()
    ctx_mib, _ = R.device_memory_mb(dev)
    cap = None
    if args.cap_gib > 0 and dev == "cuda":
        total = torch.cuda.get_device_properties(0).total_memory
        cap = args.cap_gib * 2**30 - (ctx_mib or 0) * 2**20
        torch.cuda.set_per_process_memory_fraction(max(cap, 0) / total)

    phase = (lambda p: setattr(sampler, "phase", p)) if sampler else (lambda p: None)
    phase("load")
    # run: the forward pass (or replay) alone, device-timed; steps: one frame as a server sees it
    run, steps, resident, failed, load_ms = {}, {}, [], {}, {}
    hand = None
    t_load = time.perf_counter()
    for n in names:
        t = time.perf_counter()
        try:
            if n == "hand" and real_hand:
                frame = torch.from_numpy(hand_rgb).to(dev)
                hf = HF.HandFrame(n, settings[n], frame, dtype, args.graphs)
                with torch.no_grad():
                    hf.run_network()        # first run (the graphs' capture ran their warm-up)
                run[n], steps[n] = hf.run_network, hand_step(hf, hand_rgb)
                hand = hf
            else:
                m = R.skeleton(n)
                m.load_state_dict(torch.load(os.path.join(cache, f"{n}.pt"), map_location="cpu"))
                m.eval()
                for p in m.parameters():
                    p.requires_grad_(False)
                if args.bnfold:
                    R.fold_bn(m)
                m = m.to(device=dev, dtype=dtype)
                x = torch.from_numpy(inputs[n]).to(device=dev, dtype=dtype)
                if args.graphs:
                    g, y = capture(m, x)
                    run[n] = g.replay
                    outputs = (lambda g=g, y=y: (g.replay(), y)[1])
                else:
                    with torch.no_grad():
                        y = m(x)
                    run[n] = outputs = (lambda m=m, x=x: m(x))
                # the CPU has no copies to make: its frame is the forward pass
                steps[n] = R.e2e_step((m, (x,), None, y), outputs, (inputs[n],)) if dev == "cuda" else outputs
            sync()
            resident.append(n)
        except RuntimeError as e:   # OutOfMemoryError is one
            if not is_oom(e):
                raise
            failed[n] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            m = x = y = g = frame = hf = outputs = None
            run.pop(n, None)
            steps.pop(n, None)
        if n in failed:     # after the except block: its traceback no longer holds the tensors
            torch.cuda.empty_cache()
        load_ms[n] = round((time.perf_counter() - t) * 1e3, 1)
    load_s = time.perf_counter() - t_load
    cold_s = time.perf_counter() - t_cold
    hand_found = bool(hand.found) if hand is not None else None

    phase("steady")
    lat_err = None
    try:
        per_model, per_mode = R.latency(run, R.Timer(dev), args.warmup, args.iters)
        e2e_model, e2e_mode = R.latency(steps, R.wall_ms if dev == "cuda" else R.Timer(dev), args.warmup, args.iters)
    except RuntimeError as e:
        if not is_oom(e):
            raise
        lat_err = f"{type(e).__name__} while running: {str(e).splitlines()[0][:200]}"
        per_model = per_mode = e2e_model = e2e_mode = {}
    phase("end")
    if sampler:
        time.sleep(3 * args.sample_ms / 1e3)
        sampler.finish()
    stats = sampler.stats if sampler else (lambda phase=None: dict(n=0, peak_mib=None, mean_mib=None))
    mib = lambda f: round(f() / 2**20, 1) if dev == "cuda" else None
    label = (f"PyTorch {args.dtype} {'+ CUDA graphs' if args.graphs else 'eager'}"
             f"{', BN folded' if args.bnfold else ''}{', CPU dry run' if dev == 'cpu' else ''} ({torch.__version__})")
    out = dict(runner="fullset_pytorch", label=label, torch=torch.__version__, set=args.set, dtype=args.dtype,
               bn_folded=args.bnfold, cuda_graphs=args.graphs, device=dev, config=os.path.relpath(os.path.abspath(config), R.ROOT),
               hand=hand_what, hand_found_palm=hand_found,
               device_name=torch.cuda.get_device_name() if dev == "cuda" else "cpu", iters=args.iters,
               cap_gib=(args.cap_gib or None) if dev == "cuda" else None, cap_allocator_bytes=cap, cuda_context_mib=ctx_mib,
               models=names, resident=resident, co_resident=len(resident), failed=failed,
               latency_error=lat_err, weights_cache_s=round(gen_s, 2), cuda_context_s=round(ctx_s, 3),
               load_s=round(load_s, 3), cold_start_s=round(cold_s, 3), load_ms_per_model=load_ms,
               per_model=per_model, per_mode=per_mode, e2e=dict(per_model=e2e_model, per_mode=e2e_mode),
               memory_source=sampler.source if sampler else None, memory_all=stats(), memory_load=stats("load"),
               memory_steady=stats("steady"),
               max_memory_allocated_mib=mib(torch.cuda.max_memory_allocated),
               max_memory_reserved_mib=mib(torch.cuda.max_memory_reserved))
    notes = [hand.note] if hand is not None and hand.note else []
    if real_hand and hand_found is False:
        notes.append("hand: no palm on this frame, so the hand ran the palm detector alone (as shoal's does on it)")
    if notes:
        out["notes"] = notes
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
