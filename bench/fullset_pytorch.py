#!/usr/bin/env python3
"""The original system's way, on the full model set: PyTorch with each model loaded as its own
module (no shared activations, no planning), under a per-process memory cap like an 8 GB card.

One configuration per process (so one's caches do not pollute the other's memory):
  --dtype fp32   the article's "traditional" loader: float32 eager, model.eval()
  --dtype fp16   its "optimized" loader: model.half(), eager (BN kept, as model.half() leaves it);
                 --bnfold also folds Conv+BN first (the usual anchor of docs/benchmarks.md)

Measures, in one process: cold start (CUDA context included) to every model resident with its
first run done; how many models stay co-resident under --cap-gib (the CUDA context's own bytes
are taken out of the cap given to torch.cuda.set_per_process_memory_fraction, which governs the
caching allocator only, so the whole process stays within the cap; a model whose load or first
run raises OutOfMemoryError is dropped and the next one tried); per-mode and per-model latency
(host wall clock through a sync, input copied from pinned host memory and outputs back, as
bench/pytorch_runner.py's "e2e"; and CUDA events, device only); the process's device memory
sampled by NVML (pynvml, else nvidia-smi) every --sample-ms: peak over the whole life, mean over
the latency phase (the steady state). Prints one JSON line.

Weights come from pytorch_runner's cache (the exporter's seeded networks; filled on first use).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dtype", choices=["fp32", "fp16"], required=True)
    ap.add_argument("--bnfold", action="store_true")
    ap.add_argument("--set", choices=sorted(E.SETS), default="full")
    ap.add_argument("--cap-gib", type=float, default=8.0, help="0: no cap")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--sample-ms", type=float, default=20)
    ap.add_argument("--cache-dir", default=os.environ.get("SHOAL_BENCH_CACHE", "/tmp/shoal-bench-weights"))
    args = ap.parse_args()
    E.use_set(args.set)
    torch.set_num_threads(args.threads)
    if not torch.cuda.is_available():
        sys.exit("fullset_pytorch: needs CUDA")
    names = list(E.ORDER)
    cache, gen_s, _ = R.weights_cache(args.cache_dir, names)   # outside the timed load
    inputs = {n: E.make_input(n) for n in names}
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32

    t_cold = time.perf_counter()
    torch.zeros(1, device="cuda")
    torch.cuda.synchronize()
    ctx_s = time.perf_counter() - t_cold
    sampler = Sampler(args.sample_ms / 1e3)
    sampler.start()
    ctx_mib, _ = R.device_memory_mb("cuda")
    cap = None
    if args.cap_gib > 0:
        total = torch.cuda.get_device_properties(0).total_memory
        cap = args.cap_gib * 2**30 - (ctx_mib or 0) * 2**20
        torch.cuda.set_per_process_memory_fraction(max(cap, 0) / total)

    sampler.phase = "load"
    models, resident, failed, load_ms = {}, [], {}, {}
    t_load = time.perf_counter()
    for n in names:
        t = time.perf_counter()
        try:
            m = R.skeleton(n)
            m.load_state_dict(torch.load(os.path.join(cache, f"{n}.pt"), map_location="cpu"))
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            if args.bnfold:
                R.fold_bn(m)
            m = m.to(device="cuda", dtype=dtype)
            x = torch.from_numpy(inputs[n]).to(device="cuda", dtype=dtype)
            with torch.no_grad():
                y = m(x)
            torch.cuda.synchronize()
            models[n] = (m, x, None, y)
            resident.append(n)
        except RuntimeError as e:   # OutOfMemoryError is one
            if not is_oom(e):
                raise
            failed[n] = f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
            m = x = y = None
        if n in failed:     # after the except block: its traceback no longer holds the tensors
            torch.cuda.empty_cache()
        load_ms[n] = round((time.perf_counter() - t) * 1e3, 1)
    load_s = time.perf_counter() - t_load
    cold_s = time.perf_counter() - t_cold

    sampler.phase = "steady"
    run = {n: (lambda m=models[n][0], x=models[n][1]: m(x)) for n in resident}
    lat_err = None
    try:
        per_model, per_mode = R.latency(run, R.Timer("cuda"), args.warmup, args.iters)
        steps = {n: R.e2e_step(models[n], run[n], inputs[n]) for n in resident}
        e2e_model, e2e_mode = R.latency(steps, R.wall_ms, args.warmup, args.iters)
    except RuntimeError as e:
        if not is_oom(e):
            raise
        lat_err = f"{type(e).__name__} while running: {str(e).splitlines()[0][:200]}"
        per_model = per_mode = e2e_model = e2e_mode = {}
    sampler.phase = "end"
    time.sleep(3 * args.sample_ms / 1e3)
    sampler.finish()
    label = f"PyTorch {args.dtype} eager{', BN folded' if args.bnfold else ''} ({torch.__version__})"
    out = dict(runner="fullset_pytorch", label=label, torch=torch.__version__, set=args.set, dtype=args.dtype,
               bn_folded=args.bnfold, device_name=torch.cuda.get_device_name(), iters=args.iters,
               cap_gib=args.cap_gib or None, cap_allocator_bytes=cap, cuda_context_mib=ctx_mib,
               models=names, resident=resident, co_resident=len(resident), failed=failed,
               latency_error=lat_err, weights_cache_s=round(gen_s, 2), cuda_context_s=round(ctx_s, 3),
               load_s=round(load_s, 3), cold_start_s=round(cold_s, 3), load_ms_per_model=load_ms,
               per_model=per_model, per_mode=per_mode, e2e=dict(per_model=e2e_model, per_mode=e2e_mode),
               memory_source=sampler.source, memory_all=sampler.stats(), memory_load=sampler.stats("load"),
               memory_steady=sampler.stats("steady"),
               max_memory_allocated_mib=round(torch.cuda.max_memory_allocated() / 2**20, 1),
               max_memory_reserved_mib=round(torch.cuda.max_memory_reserved() / 2**20, 1))
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
