#!/usr/bin/env python3
"""Draws one benchmark run (a folder of JSON files from bench/run_cpu.sh or run_gpu.sh):
memory per configuration (peak RSS on CPU, NVML process memory on a GPU) and per-mode
median latency per configuration (p99 as the whisker), side by side, into an SVG or PNG.

    bench/plot.py RESULTS_DIR --out docs/benchmarks-cpu.svg [--title TEXT]

matplotlib: Debian's python3-matplotlib here, pip's on the GPU machine.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import table  # noqa: E402  (the same reader, so the plot and the table agree)

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def short(label):
    return (label.replace("PyTorch ", "PyTorch\n").replace("ONNX Runtime ", "ONNX Runtime\n")
            .replace(", BN folded", "\nBN folded").replace(" + ", "\n+ ").replace(" (", "\n("))


def main():
    ap = argparse.ArgumentParser(description="plot one benchmark run")
    ap.add_argument("dir")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title")
    args = ap.parse_args()
    meta, shoal, peers = table.read_dir(args.dir)
    if shoal is None or shoal.skipped:
        sys.exit("plot.py: no shoal results")
    entries = [shoal] + [p for p in peers if not p.skipped]
    gpu = (shoal.raw or {}).get("device") == "cuda"
    labels = [short(e.label) for e in entries]
    oranges = iter(["#fdae6b", "#fd8d3c", "#e6550d", "#a63603", "#7f2704", "#4d1a02"])
    colors = ["#1f77b4" if e.kind == "shoal" else "#2ca02c" if e.kind == "ort" else next(oranges) for e in entries]

    fig, (ax_m, ax_l) = plt.subplots(1, 2, figsize=(6 + 1.6 * len(entries), 4.8),
                                     gridspec_kw={"width_ratios": [1, 2]})
    mem = [e.mem_mib or 0 for e in entries]
    bars = ax_m.bar(range(len(entries)), mem, color=colors)
    for b, v in zip(bars, mem):
        ax_m.annotate(f"{v:.0f}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
    ax_m.set_xticks(range(len(entries)), labels, fontsize=7)
    ax_m.set_ylabel("MiB")
    ax_m.set_title("device memory (NVML, process)" if gpu else "peak RSS", fontsize=10)

    modes = [m for m in table.MODES if m in shoal.modes]
    width = 0.8 / max(1, len(entries))
    for i, e in enumerate(entries):
        med = [e.modes[m][0] if m in e.modes else 0 for m in modes]
        err = [[0] * len(modes), [(e.modes[m][2] - e.modes[m][0]) if m in e.modes else 0 for m in modes]]
        xs = [k + (i - (len(entries) - 1) / 2) * width for k in range(len(modes))]
        ax_l.bar(xs, med, width, yerr=err, capsize=2, color=colors[i], label=e.label, edgecolor="black",
                 linewidth=0.4)
    ax_l.set_xticks(range(len(modes)), modes)
    ax_l.set_ylabel("ms per frame (median, whisker to p99)")
    ax_l.set_yscale("log")
    ax_l.set_title("per-mode latency, network", fontsize=10)
    ax_l.legend(fontsize=7, loc="upper right")
    title = args.title or (f"{'GPU' if gpu else 'CPU'}: {meta.get('machine', '')} — {meta.get('date', '')}"
                           f" (load avg {meta.get('load_before', '?')})")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out)
    print(f"plot.py: wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
