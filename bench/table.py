#!/usr/bin/env python3
"""Reads one benchmark run's JSON files (bench/run_cpu.sh or bench/run_gpu.sh wrote them into
one folder) and prints one Markdown table: shoal's absolute numbers beside every peer's, each
peer's with shoal's ratio to it, then the issue's targets with PASS/SHORT and by how much.

Ratios: latency and load are theirs / ours for latency (> 1: shoal is faster) and ours /
theirs for memory and load time (< 1: shoal needs less). Written that way because the targets
are written that way: latency >= 2x faster, memory <= 0.5x, load <= 0.05x, RSS <= 0.3x; on the CPU
latency >= 1.2x ONNX Runtime's, RSS <= 0.3x, mode switch p99 <= 100 ms.

    bench/table.py RESULTS_DIR [--md OUT.md]

Latency on a GPU is compared twice against PyTorch where its JSON has "e2e" (pytorch_runner.py
writes it on GPU): with its device-only time (CUDA events around the forward passes, input
already on the device) and with its e2e time (host wall clock of input upload, forward, output
download and sync: what shoal's "infer" times, like for like). Older JSON without "e2e" gets
the device-only comparison alone.

Files: shoal*.json (shoal bench --json), pytorch_<config>.json (bench/pytorch_runner.py),
ort*.json (bench/ort_runner.js), meta.json (the driver: machine, versions, load average);
a file holding {"skipped": "why"} is listed as skipped. Standard library only.
"""
import argparse
import glob
import json
import math
import os
import sys

MODES = ["navigation", "crossing", "shopping"]
PT_NAMES = {
    "fp32_eager": "PyTorch fp32 eager",
    "fp16_eager_bnfold": "PyTorch fp16 eager, BN folded",
    "fp16_cudnn_benchmark": "PyTorch fp16 + cudnn.benchmark",
    "fp16_cuda_graphs": "PyTorch fp16 + CUDA graphs",
    "compile": "PyTorch torch.compile",
}
PT_ORDER = list(PT_NAMES)
MIB = 2.0 ** 20


def load_json(path):
    """The last JSON object line of a file (runners may print warnings before it)."""
    with open(path) as f:
        text = f.read()
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"skipped": f"no JSON in {os.path.basename(path)}"}


def num(v):
    return v if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v)) and v >= 0 else None


class Entry:
    """One configuration's numbers, normalised: ms, MiB, seconds."""

    def __init__(self, key, label, kind):
        self.key, self.label, self.kind = key, label, kind
        self.modes = {}          # mode -> (median, p90, p99) of the network time
        self.modes_e2e = {}      # shoal: the whole per-frame path
        self.modes_dev = {}      # shoal on GPU: the network part on the device's clock (events)
        self.models = {}
        self.modes_wall = {}     # PyTorch on GPU, "e2e": upload + forward + download + sync, host
        self.models_wall = {}    # wall clock, what shoal's infer times (empty in older JSON)
        self.mem_mib = None      # GPU: NVML process; CPU: peak RSS
        self.rss_mib = None
        self.gpu_mib = None
        self.load_s = None       # as the runner defines it
        self.load_first_s = None  # shoal: load + each model's first run (PyTorch's definition)
        self.switch = None       # (median, p99) ms
        self.note = ""
        self.skipped = None
        self.raw = None
        self.frame_ops = {}     # shoal on the CPU: per model, frame ops' ms taken out of infer


def frame_ops_ms(d):
    """Per model, the milliseconds its frame ops (shoal.Frame*: letterbox, decode, NMS, masks,
    crops) took per run in shoal bench's profile run; {} without a profile."""
    return {m: sum(t for op, t in v.get("ops_ms", {}).items() if op.startswith("shoal.Frame"))
            for m, v in (d.get("profile") or {}).items()}


def less_frame_ops(e, d):
    """On the CPU shoal's infer runs the frame ops inside the graph, while the peers' forward
    call starts from a prepared tensor and ends at the raw outputs: like for like, the network
    column is infer less the frame ops' profiled time (per mode, its models' sum)."""
    fo = frame_ops_ms(d)
    if d.get("device", "cpu") != "cpu" or not fo:
        return
    e.frame_ops = fo
    for m in e.models:
        e.models[m] = tuple(x - fo.get(m, 0.0) for x in e.models[m])
    for m, v in d.get("modes", {}).items():
        cut = sum(fo.get(x, 0.0) for x in v.get("models", []))
        if m in e.modes:
            e.modes[m] = tuple(x - cut for x in e.modes[m])


def from_shoal(d, key="shoal"):
    e = Entry(key, d.get("config_name") if d.get("config_name") not in (None, "shoal") else "shoal", "shoal")
    e.raw = d
    dev = d.get("device", "cpu")
    for m, v in d.get("modes", {}).items():
        e.modes[m] = tuple(v["infer_ms"][k] for k in ("median", "p90", "p99"))
        e.modes_e2e[m] = tuple(v["latency_ms"][k] for k in ("median", "p90", "p99"))
        if "device_ms" in v:
            e.modes_dev[m] = tuple(v["device_ms"][k] for k in ("median", "p90", "p99"))
    for m, v in d.get("models", {}).items():
        e.models[m] = tuple(v["infer_ms"][k] for k in ("median", "p90", "p99"))
    less_frame_ops(e, d)
    mem = d.get("memory", {})
    if num(mem.get("peak_rss_bytes")) is not None:
        e.rss_mib = mem["peak_rss_bytes"] / MIB
    if num(mem.get("gpu_process_bytes")) is not None:
        e.gpu_mib = mem["gpu_process_bytes"] / MIB
    elif dev == "cuda" and num(mem.get("gpu_used_delta_bytes")) is not None:
        e.gpu_mib = mem["gpu_used_delta_bytes"] / MIB
        e.note = "NVML showed no per-process figure: device used minus used before start"
    e.mem_mib = e.gpu_mib if dev == "cuda" else e.rss_mib
    ld = d.get("load", {})
    if num(ld.get("total_ms")) is not None:
        e.load_s = ld["total_ms"] / 1e3
    if num(ld.get("to_first_results_ms")) is not None:
        e.load_first_s = ld["to_first_results_ms"] / 1e3
    sw = d.get("switch", {})
    if "switch_ms" in sw and sw["switch_ms"].get("n"):
        e.switch = (sw["switch_ms"]["median"], sw["switch_ms"]["p99"])
    if not d.get("ok", True):
        e.note = "run reported failures"
    return e


def peer_quantiles(per):
    """A runner's {name: {median_ms, p90_ms, p99_ms}} as {name: (median, p90, p99)}."""
    return {m: (v["median_ms"], v["p90_ms"], v["p99_ms"]) for m, v in (per or {}).items()}


def from_peer(d, key, label, kind):
    e = Entry(key, label, kind)
    e.raw = d
    e.modes = peer_quantiles(d.get("per_mode"))
    e.models = peer_quantiles(d.get("per_model"))
    e2e = d.get("e2e") or {}
    e.modes_wall = peer_quantiles(e2e.get("per_mode"))
    e.models_wall = peer_quantiles(e2e.get("per_model"))
    e.rss_mib = num(d.get("peak_rss_mb"))
    e.gpu_mib = num(d.get("device_memory_mb"))
    e.mem_mib = e.gpu_mib if d.get("device") == "cuda" else e.rss_mib
    e.load_s = num(d.get("load_s"))
    e.note = d.get("note", "")
    return e


def read_dir(path):
    meta, shoal, peers = {}, None, []
    for f in sorted(glob.glob(os.path.join(path, "*.json"))):
        base = os.path.basename(f)[:-5]
        d = load_json(f)
        if base == "meta":
            meta = d
            continue
        if base.startswith("shoal"):
            if not d.get("skipped") and not d.get("modes"):
                d = {"skipped": "; ".join(d.get("errors", [])) or "shoal bench measured nothing"}
            if d.get("skipped"):
                shoal = Entry(base, "shoal", "shoal")
                shoal.skipped = d["skipped"]
            elif shoal is None or base == "shoal":
                shoal = from_shoal(d, base)
            continue
        if base.startswith("pytorch_"):
            cfg = base[len("pytorch_"):]
            tv = d.get("torch", "").split("+")[0]
            label = PT_NAMES.get(cfg, f"PyTorch {cfg}") + (f" ({tv})" if tv else "")
            e = from_peer(d, base, label, "pytorch") if not d.get("skipped") else Entry(base, label, "pytorch")
            if d.get("skipped"):
                e.skipped = d["skipped"]
            e.order = PT_ORDER.index(cfg) if cfg in PT_ORDER else 99
            peers.append(e)
            continue
        if base.startswith("ort"):
            v = d.get("ort_version") or ""
            label = f"ONNX Runtime {v}".strip() + f" ({d.get('threads', '?')} threads)"
            e = from_peer(d, base, label, "ort") if not d.get("skipped") else Entry(base, label, "ort")
            if d.get("skipped"):
                e.skipped = d["skipped"]
            e.order = 100
            peers.append(e)
    peers.sort(key=lambda e: e.order)
    return meta, shoal, peers


def fmt(v, digits=1):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(x, digits=2):
    return "–" if x is None else f"{x:.{digits}f}×"


def div(a, b):
    return a / b if a is not None and b not in (None, 0) else None


def shoal_load_for(shoal, peer):
    """PyTorch's load includes the first run of every model; ONNX Runtime's does not."""
    return shoal.load_first_s if peer.kind == "pytorch" else shoal.load_s


def build_table(meta, shoal, peers, gpu):
    live = [p for p in peers if not p.skipped]
    head = ["", "shoal"] + [p.label for p in live]
    rows = []

    def row(name, ours, theirs_fn, ratio_fn, digits=1):
        r = [name, fmt(ours, digits)]
        for p in live:
            t = theirs_fn(p)
            r.append(f"{fmt(t, digits)} ({ratio(ratio_fn(ours, t, p))})" if t is not None else "–")
        rows.append(r)

    mem_name = "device memory, NVML process (MiB)" if gpu else "peak RSS (MiB)"
    row(mem_name, shoal.mem_mib, lambda p: p.mem_mib, lambda o, t, p: div(o, t))
    if gpu:
        row("peak RSS, host (MiB)", shoal.rss_mib, lambda p: p.rss_mib, lambda o, t, p: div(o, t))
    r = ["load time (s)", f"{fmt(shoal.load_s, 2)} / {fmt(shoal.load_first_s, 2)}¹"]
    for p in live:
        r.append(f"{fmt(p.load_s, 2)} ({ratio(div(shoal_load_for(shoal, p), p.load_s), 3)})" if p.load_s else "–")
    rows.append(r)
    # With e2e numbers, every latency row says which PyTorch time its ratio is against.
    walls = any(p.modes_wall for p in live)
    kinds = [("modes", " (ms)")] if not walls else [
        ("modes", " (ms), PyTorch device-only: CUDA events"), ("modes_wall", " (ms), PyTorch e2e: like for like")]
    for m in MODES:
        if m not in shoal.modes and not any(m in p.modes for p in live):
            continue
        for attr, suffix in kinds:
            for i, q in ((0, "median"), (2, "p99")):
                row(f"{m} {q}{suffix}", shoal.modes[m][i] if m in shoal.modes else None,
                    lambda p, m=m, i=i, a=attr: getattr(p, a)[m][i] if m in getattr(p, a) else None,
                    lambda o, t, p: div(t, o))
        if m in shoal.modes_dev and walls:   # both on the device's clock: CUDA events each
            for i, q in ((0, "median"), (2, "p99")):
                row(f"{m} {q} (ms), both device-only: CUDA events", shoal.modes_dev[m][i],
                    lambda p, m=m, i=i: p.modes[m][i] if m in p.modes else None, lambda o, t, p: div(t, o))
    if shoal.switch:
        r = ["mode switch median / p99 (ms)", f"{fmt(shoal.switch[0])} / {fmt(shoal.switch[1])}"]
        r += ["n/a (all resident)"] * len(live)
        rows.append(r)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def model_table(shoal, peers):
    """Per-model network medians, the finer grain behind the per-mode rows."""
    live = [p for p in peers if not p.skipped]
    names = [m for m in ("blind_road", "obstacle", "traffic_light", "shopping", "hand")
             if m in shoal.models or any(m in p.models for p in live)]
    if not names:
        return []
    head = ["model, median (ms)", "shoal"] + [p.label for p in live]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in names:
        ours = shoal.models[m][0] if m in shoal.models else None
        r = [m, fmt(ours)]
        for p in live:
            t = p.models[m][0] if m in p.models else None
            cell = f"{fmt(t)} ({ratio(div(t, ours))})" if t is not None else "–"
            if m in p.models_wall:   # device-only first, then e2e: the same order as the mode rows
                w = p.models_wall[m][0]
                cell += f"; e2e {fmt(w)} ({ratio(div(w, ours))})"
            r.append(cell)
        lines.append("| " + " | ".join(r) + " |")
    return lines


def read_rounds(path, shoal, peers):
    """Round 1 (the main run's shoal and ONNX Runtime) and each later round of bench/run_cpu.sh -r:
    [(round, {mode: ORT / shoal median})]. The later rounds have no profile: shoal's frame ops are
    taken out with the main run's figures."""
    ort = next((p for p in peers if p.kind == "ort" and not p.skipped), None)
    rounds = []
    if ort:
        rounds.append((1, {m: div(ort.modes[m][0], shoal.modes[m][0]) for m in MODES
                           if m in shoal.modes and m in ort.modes}))
    for f in sorted(glob.glob(os.path.join(path, "rounds", "shoal_r*.json")),
                    key=lambda f: int(os.path.basename(f)[7:-5])):
        r = int(os.path.basename(f)[7:-5])
        d, o = load_json(f), load_json(os.path.join(path, "rounds", f"ort_r{r}.json"))
        if not d.get("modes") or not o.get("per_mode"):
            continue
        e = from_shoal(d)
        if not e.frame_ops and shoal.frame_ops:
            for m, v in d.get("modes", {}).items():
                cut = sum(shoal.frame_ops.get(x, 0.0) for x in v.get("models", []))
                e.modes[m] = tuple(x - cut for x in e.modes[m])
        their = peer_quantiles(o.get("per_mode"))
        rounds.append((r, {m: div(their[m][0], e.modes[m][0]) for m in MODES if m in e.modes and m in their}))
    return rounds


def rounds_table(rounds):
    lines = ["| round | " + " | ".join(MODES) + " |", "|---|" + "---|" * len(MODES)]
    for r, rat in rounds:
        lines.append(f"| {r} | " + " | ".join(ratio(rat.get(m)) for m in MODES) + " |")
    lines.append("| median | " + " | ".join(ratio(median_ratio(rounds, m)) for m in MODES) + " |")
    return lines


def median_ratio(rounds, mode):
    vals = sorted(v for _, rat in rounds for m, v in rat.items() if m == mode and v is not None)
    if not vals:
        return None
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2


def targets(shoal, peers, gpu, rounds=None):
    """The issue's targets, each with PASS or SHORT and by how much. With several rounds
    (bench/run_cpu.sh -r) the CPU latency targets are judged on the median round."""
    by = {p.key: p for p in peers if not p.skipped}
    out = []

    def check(name, value, target, higher_better):
        if value is None:
            out.append(f"- {name}: not measured")
            return
        ok = value >= target if higher_better else value <= target
        if ok:
            out.append(f"- {name}: {value:.3g}× (target {'≥' if higher_better else '≤'} {target}×) — PASS")
        else:
            factor = target / value if higher_better else value / target
            out.append(f"- {name}: {value:.3g}× (target {'≥' if higher_better else '≤'} {target}×) — SHORT by "
                       f"{factor:.2f}× ({(factor - 1) * 100:.0f}% {'slower' if higher_better else 'over'})")

    if gpu:
        ref = by.get("pytorch_fp16_eager_bnfold")
        check("memory vs PyTorch fp16 eager (ours/theirs, NVML process)",
              div(shoal.mem_mib, ref.mem_mib) if ref else None, 0.5, False)
        ref = by.get("pytorch_fp16_cuda_graphs")
        for m in MODES:
            if m not in shoal.modes:
                continue
            # Both comparisons, device-only first: e2e is the like-for-like one, device-only the
            # stricter one (PyTorch's time leaves out the transfers and the host wait).
            for attr, what in (("modes", "device-only: CUDA events, input already on the device"),
                               ("modes_wall", "e2e, like for like: upload + forward + download + sync, "
                                              "host wall clock")):
                theirs = getattr(ref, attr) if ref else {}
                if attr == "modes_wall" and m not in theirs:
                    continue       # older JSON: no e2e numbers
                check(f"{m} latency vs PyTorch fp16 + CUDA graphs, {what} (theirs/ours, median)",
                      div(theirs[m][0], shoal.modes[m][0]) if m in theirs else None, 2.0, True)
            if m in shoal.modes_dev and ref and m in ref.modes:
                check(f"{m} latency vs PyTorch fp16 + CUDA graphs, both device-only: CUDA events on each "
                      f"side, shoal's from its first upload to its last download (theirs/ours, median)",
                      div(ref.modes[m][0], shoal.modes_dev[m][0]), 2.0, True)
        for k in ("pytorch_fp32_eager", "pytorch_fp16_eager_bnfold"):
            ref = by.get(k)
            if ref:
                check(f"load vs {ref.label} (ours/theirs, first results)", div(shoal.load_first_s, ref.load_s),
                      0.05, False)
    else:
        ref = next((p for p in peers if p.kind == "ort" and not p.skipped), None)
        for m in MODES:
            if m in shoal.modes and rounds and len(rounds) > 1:
                check(f"{m} latency vs ONNX Runtime (theirs/ours, median of {len(rounds)} rounds' ratios)",
                      median_ratio(rounds, m), 1.2, True)
            elif m in shoal.modes:
                check(f"{m} latency vs ONNX Runtime (theirs/ours, median)",
                      div(ref.modes[m][0], shoal.modes[m][0]) if ref and m in ref.modes else None, 1.2, True)
        check("peak RSS vs ONNX Runtime (ours/theirs)", div(shoal.rss_mib, ref.rss_mib) if ref else None, 0.3, False)
        if shoal.switch:
            # Not a ratio: the p99 in ms against 100 ms (shown as p99 / 100 ms, <= 1 passes).
            check("mode switch p99 under the auto budget (ms / 100 ms)", shoal.switch[1] / 100.0, 1.0, False)
        pt = by.get("pytorch_fp32_eager")
        for m in MODES:
            if m in shoal.modes and pt and m in pt.modes:
                check(f"{m} latency vs PyTorch fp32 eager (theirs/ours, median)", div(pt.modes[m][0], shoal.modes[m][0]),
                      2.0, True)
    return out


def breakdown(shoal):
    """Where shoal's bytes and (on CPU) kernel time go."""
    d = shoal.raw or {}
    mem = d.get("memory", {})
    out = []
    if mem:
        g = lambda k: (mem.get(k) or 0) / MIB
        out.append(f"- shoal memory, all models resident: weights stored {g('weights_stored_bytes'):.1f} MiB "
                   f"(referenced {g('weights_referenced_bytes'):.1f}, shared by content {g('dedup_saved_bytes'):.1f} saved), "
                   f"activation arena {g('arena_bytes'):.1f} MiB × {mem.get('arena_contexts', 1)} "
                   f"(largest plan {g('activations_planned_max_bytes'):.1f} MiB, sum of all plans "
                   f"{g('activations_planned_sum_bytes'):.1f} MiB), staging {g('staging_bytes'):.1f} MiB, "
                   f"host cache {g('host_cache_bytes'):.1f} MiB; shoal accounts for {g('device_in_use_bytes'):.1f} MiB "
                   f"on the device")
        if d.get("device") == "cuda" and num(mem.get("gpu_process_bytes")) is not None:
            gap = (mem["gpu_process_bytes"] - (mem.get("device_in_use_bytes") or 0)) / MIB
            out.append(f"- NVML shows {mem['gpu_process_bytes'] / MIB:.1f} MiB for the process: {gap:.1f} MiB beyond "
                       f"shoal's own accounting (CUDA context, cuDNN/cuBLAS handles and workspaces, module images)")
        elif num(mem.get("peak_rss_bytes")) is not None:
            # on the CPU a resident weight the host cache holds is the cached bytes themselves: count them once
            cache = mem.get("host_cache_bytes") or 0
            if d.get("device") == "cpu":
                cache = max(0, cache - (mem.get("weights_stored_bytes") or 0))
            acc = ((mem.get("device_in_use_bytes") or 0) + cache) / MIB
            out.append(f"- peak RSS {mem['peak_rss_bytes'] / MIB:.1f} MiB: {acc:.1f} MiB of it is shoal's accounted "
                       f"buffers (weights, arena, host cache); the rest is code, libraries, parsed graphs and plans, "
                       f"and allocator slack")
    ld = d.get("load", {})
    if ld.get("models"):
        tot = {k: sum(v.get(k, 0) for v in ld["models"].values())
               for k in ("parse_ms", "optimize_ms", "compile_ms", "plan_ms", "pack_ms", "upload_ms", "first_run_ms")}
        out.append("- shoal load by phase (summed over the models, ms; models load on parallel threads, so these "
                   "overlap): " + ", ".join(f"{k[:-3]} {v:.0f}" for k, v in tot.items())
                   + f"; create {ld.get('create_ms', 0):.0f} ms wall")
    prof = d.get("profile")
    if prof:
        for m, v in prof.items():
            ops = sorted(v.get("ops_ms", {}).items(), key=lambda kv: -kv[1])[:4]
            tot = v.get("total_ms") or 1
            gf = d.get("models", {}).get(m, {}).get("gflop", {})
            rate = f"; Conv at {v['conv_gflops_per_s']:.0f} GFLOP/s" if v.get("conv_gflops_per_s") else ""
            work = f" ({gf['total']:.1f} GFLOP)" if gf.get("total") else ""
            out.append(f"- profile {m}{work}: {tot:.1f} ms of kernels per run{rate}; "
                       + ", ".join(f"{o} {t:.1f} ms ({100 * t / tot:.0f}%)" for o, t in ops))
    return out


def main():
    ap = argparse.ArgumentParser(description="one table from one benchmark run")
    ap.add_argument("dir")
    ap.add_argument("--md", help="also write the Markdown here")
    args = ap.parse_args()
    meta, shoal, peers = read_dir(args.dir)
    if shoal is None:
        sys.exit(f"table.py: no shoal*.json in {args.dir}")
    lines = []
    if meta:
        lines.append(f"Machine: {meta.get('machine', '?')}; {meta.get('os', '')}; date {meta.get('date', '?')}; "
                     f"load average before/after {meta.get('load_before', '?')} / {meta.get('load_after', '?')}")
        if meta.get("cpu_flags") or meta.get("isa"):
            lines.append(f"CPU flags: {meta.get('cpu_flags', '?')}; ISA used: "
                         + ", ".join(f"{k} {v}" for k, v in (meta.get("isa") or {}).items()))
        if meta.get("versions"):
            lines.append("Versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()))
        lines.append("")
    if shoal.skipped:
        lines.append(f"**shoal did not run: {shoal.skipped}**")
        lines.append("")
    gpu = (shoal.raw or {}).get("device") == "cuda" or meta.get("kind") == "gpu"
    if True:
        lines += build_table(meta, shoal, peers, gpu)
        lines.append("")
        mt = model_table(shoal, peers)
        if mt:
            lines += mt + [""]
        lines.append("Ratios in brackets: latency theirs/ours (> 1: shoal faster); memory and load ours/theirs "
                     "(< 1: shoal smaller/quicker). Latency is the network alone for every column (shoal's \"infer\": "
                     + ("input upload, run, output download and sync, host wall clock; PyTorch: CUDA events around "
                        "the forward passes, input already on the device" if gpu else
                        "the CPU backend's run less its frame ops (letterbox, decode, NMS, masks, the hand's "
                        "crops: shoal.Frame* in the profile run, the peers do that work outside their timing); "
                        "PyTorch and ONNX Runtime: the forward call") + ").")
        if shoal.frame_ops:
            lines.append("shoal's frame ops taken out of its network figures, ms per run: "
                         + ", ".join(f"{m} {t:.2f}" for m, t in shoal.frame_ops.items()) + ".")
        if any(p.modes_wall for p in peers if not p.skipped):
            lines.append("Rows marked \"device-only\" compare shoal's infer with PyTorch's CUDA-event time (no "
                         "transfers, no host wait: to PyTorch's advantage); rows marked \"e2e\" compare it like for "
                         "like with PyTorch timed the way shoal's infer is: host wall clock of the fp32 input copied "
                         "from pinned host memory to the device, the forward (graph replay), every output copied to "
                         "pinned host memory, and torch.cuda.synchronize(). The per-model table gives both, "
                         "device-only first.")
        if shoal.modes_dev:
            lines.append("Rows marked \"both device-only\" time shoal on the device's clock too: CUDA events from "
                         "the start of a mode's first input upload to the end of its last output download, the "
                         "models' lanes together (shoal_results_device_ms) - like for like with PyTorch's "
                         "device-only time, except that shoal's still includes its transfers.")
        lines.append("¹ shoal load: every model resident and runnable (parse, optimize, compile, plan, pack, upload) / "
                     "the same plus each model's first run. Compared with ONNX Runtime's session creation by the "
                     "first, with PyTorch's load (weights file to first output) by the second.")
        e2e = ", ".join(f"{m} {shoal.modes_e2e[m][0]:.1f} ms" for m in MODES if m in shoal.modes_e2e)
        if e2e:
            lines.append(f"shoal's whole per-frame path (preprocess + network + decode/NMS), median: {e2e}.")
        skipped = [p for p in peers if p.skipped]
        for p in skipped:
            lines.append(f"- {p.label}: skipped — {p.skipped}")
        for p in peers:
            if p.note and not p.skipped:
                lines.append(f"- {p.label}: {p.note}")
        rounds = [] if gpu else read_rounds(args.dir, shoal, peers)
        if len(rounds) > 1:
            lines.append("")
            lines.append(f"ONNX Runtime / shoal per round (median of each runner's iterations, network alone; round 1 "
                         f"is the run above, later rounds alternate which runner goes first):")
            lines.append("")
            lines += rounds_table(rounds)
        lines.append("")
        lines.append("Targets:")
        lines += targets(shoal, peers, gpu, rounds)
        lines.append("")
        lines.append("Where shoal's bytes and time go:")
        lines += breakdown(shoal)
    if meta.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in meta["notes"]]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
