#!/usr/bin/env python3
"""The full-set GPU run (scripts/gpu-fullset.sh) as one table: the article's claimed 8 GB-card
numbers beside PyTorch the original way and shoal, row by row; the targets, each PASS or MISSED
with its ratio; the budget runs (1,000 mode cycles each, NVML-sampled); per-mode latency.

    bench/fullset_table.py RESULTS_DIR [--md FILE] [--svg FILE]

Reads RESULTS_DIR/{shoal,pt_fp32,pt_fp16,pt_fp16_bnfold,pt_graphs,budget_*}.json, the
*.smi NVML samples beside the shoal runs and hand.txt (what the hand ran on, every side). Nothing here is a measured number unless it came from
those files; the article's numbers are quoted as the article gives them (no method, no hardware).
"""
import argparse
import glob
import json
import os
import sys

MIB = 2**20
GB = 1e9
MODES = ["navigation", "crossing", "shopping"]
# The article's claims for an 8 GB card: (traditional, optimized); GB, GB, s, ms, models.
CLAIMS = {"peak": (7.2, 4.1), "mean": (6.5, 3.8), "load": (12.3, 8.7), "frame": (156, 142), "models": (3, 5)}
TARGETS = dict(memory=0.35, speedup=2.0, swap_p99_ms=15.0, load=0.1)


def load(d, name):
    p = os.path.join(d, name + ".json")
    if not os.path.exists(p):
        return {"skipped": "no file (step not reached)"}
    try:
        with open(p) as f:
            return json.loads(f.read().strip().splitlines()[-1])
    except (ValueError, IndexError) as e:
        return {"skipped": f"unreadable: {e}"}


def smi(d, name, after=None):
    """NVML per-process samples (MiB) of a shoal run (every compute process on the card then;
    lines "EPOCH PID, MIB"), those taken after `after` (epoch s) when given."""
    p = os.path.join(d, name + ".smi")
    v = []
    if os.path.exists(p):
        for line in open(p):
            parts = [x.strip() for x in line.replace(" ", ",", 1).split(",")]
            try:
                t, mib = float(parts[0]), float(parts[2])
            except (ValueError, IndexError):
                continue
            if after is None or t >= after:
                v.append(mib)
    return v


def switch_start(d, name):
    """When shoal bench's switch phase began: its first stamped "switch:" progress line."""
    p = os.path.join(d, name + ".err")
    if os.path.exists(p):
        for line in open(p):
            if "[bench] switch" in line:
                try:
                    return float(line.split(" ", 1)[0])
                except ValueError:
                    return None
    return None


def fmt(x, digits=1):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def verdict(ok, detail=""):
    """PASS or MISSED with how far (detail says the ratio and the target), or not measured."""
    if ok is None:
        return "not measured"
    return ("PASS" if ok else "MISSED") + (f" ({detail})" if detail else "")


def pt_frame(p, mode, e2e=True):
    src = (p.get("e2e") or {}).get("per_mode", {}) if e2e else p.get("per_mode", {})
    v = src.get(mode) or {}
    return v.get("median_ms"), v.get("p99_ms")


def shoal_frame(s, mode, key="infer_ms"):
    v = (s.get("modes", {}).get(mode) or {}).get(key) or {}
    return v.get("median"), v.get("p99")


def frame_level_lines(d):
    """The target against [1/6]'s frame-level peer (bench/frame_pytorch.py --set full): the whole
    frame, 8-bit camera pixels to results, on both sides and on the same frames (step 3b)."""
    S, P = load(d, "shoal_frames"), load(d, "pt_frame")
    if "skipped" in S or "skipped" in P:
        why = S.get("skipped") or P.get("skipped")
        return [f"- the frame-level peer of [1/6] (frame_pytorch.py --set full): not measured ({why})"]
    lines = []
    for m in MODES:
        ours = shoal_frame(S, m, "latency_ms")[0]
        theirs = ((P.get("modes") or {}).get(m) or {}).get("frame_ms", {}).get("median_ms")
        if ours is None or theirs is None:
            lines.append(f"- {m}: ≥ {TARGETS['speedup']}× faster than the frame-level peer: not measured")
            continue
        sp = theirs / ours
        lines.append(f"- {m}: ≥ {TARGETS['speedup']}× faster, whole frame from 8-bit pixels, than the frame-level "
                     f"peer of [1/6] (fp16, CUDA graphs, frame ops on the device, {theirs:.2f} ms): shoal "
                     f"{ours:.2f} ms: {verdict(sp >= TARGETS['speedup'], f'{sp:.2f}× faster')}")
    return lines


def pt_memory(p):
    """(peak, mean) MiB over the process life (NVML), or the runner's single reading."""
    m = p.get("memory_all") or {}
    if m.get("peak_mib") is not None:
        return m["peak_mib"], m.get("mean_mib")
    return p.get("device_memory_mb"), None


def co_resident(models):
    """shoal's resident models as the config names them: a hand model's palm detector is an
    entry of its own ("hand.palm") that counts with its owner, which is resident when both are."""
    owners = {}
    for name, m in models.items():
        owner = name.split(".", 1)[0]
        owners[owner] = owners.get(owner, True) and bool(m.get("resident"))
    return sum(owners.values()) or None


def build(d):
    S = load(d, "shoal")
    P = {k: load(d, k) for k in ("pt_fp32", "pt_fp16", "pt_fp16_bnfold", "pt_graphs")}
    budgets = {os.path.basename(f)[7:-5]: load(d, os.path.basename(f)[:-5])
               for f in sorted(glob.glob(os.path.join(d, "budget_*.json")))}
    out = []
    gpu = open(os.path.join(d, "gpu.txt")).read().strip().replace("\n", "; ") if os.path.exists(
        os.path.join(d, "gpu.txt")) else "unknown"
    out.append(f"Machine: {gpu}")
    hand = os.path.join(d, "hand.txt")
    out.append(f"Hand: {open(hand).read().strip()}" if os.path.exists(hand) else
               "Hand: not recorded (a run before the full set's hand was MediaPipe's: the MobileNetV3 stand-in)")
    shopping_in = (S.get("mode_inputs") or {}).get("shopping")
    if shopping_in:
        out.append(f"- shoal's shopping frame: {shopping_in}")
    for k, v in P.items():
        if v.get("hand"):
            out.append(f"- {k}'s hand: {v['hand']}" + ("; no palm found there" if v.get("hand_found_palm") is False else ""))
    for k, v in [("shoal", S)] + list(P.items()) + [(f"budget {b}", v) for b, v in budgets.items()]:
        if "skipped" in v:
            out.append(f"- {k}: skipped: {v['skipped']}")
        elif v.get("ok") is False:
            out.append(f"- {k}: reported failures: {'; '.join(v.get('errors') or ['(none named)'])[:300]}")
    out.append("")

    s_smi = smi(d, "shoal") if "memory" in S else []   # a run that never got all resident: no figure
    s_mem = (S.get("memory") or {})
    s_nvml = s_mem.get("gpu_process_bytes") or -1    # -1: NVML had no figure
    s_peak = max(s_smi) if s_smi else (s_nvml / MIB if s_nvml > 0 else None)
    s_mean = sum(s_smi) / len(s_smi) if s_smi else None
    s_load = (S.get("load") or {}).get("to_first_results_ms")
    s_load = s_load / 1e3 if s_load is not None else None
    s_resident = co_resident(s_mem.get("models") or {})
    f32, f16 = P["pt_fp32"], P["pt_fp16"]

    # ---- the article's claims, row by row
    out.append("| 8 GB card | article: traditional | article: optimized | PyTorch fp32 eager (measured) "
               "| PyTorch fp16 eager (measured) | shoal, all resident (measured) | shoal / PyTorch fp16 |")
    out.append("|---|---|---|---|---|---|---|")

    def claim_row(name, key, pt_val, s_val, digits=1, scale=1.0):
        a, b = CLAIMS[key]
        v32, v16 = pt_val(f32), pt_val(f16)
        sc = lambda x: None if x is None else x * scale
        out.append(f"| {name} | {a} | {b} | {fmt(sc(v32), digits)} | {fmt(sc(v16), digits)} | {fmt(sc(s_val), digits)} "
                   f"| {fmt(ratio(s_val, v16), 2)}× |")

    claim_row("peak device memory (GB), NVML process", "peak", lambda p: pt_memory(p)[0], s_peak, 2, MIB / GB)
    claim_row("mean device memory (GB), NVML process", "mean", lambda p: pt_memory(p)[1], s_mean, 2, MIB / GB)
    claim_row("load, cold start to all resident (s)", "load", lambda p: p.get("cold_start_s"), s_load, 2)
    for m in MODES:
        claim_row(f"frame, {m} median (ms)", "frame", lambda p, m=m: pt_frame(p, m)[0], shoal_frame(S, m)[0], 1)
    a, b = CLAIMS["models"]
    out.append(f"| co-resident models under 8 GiB | {a} | {b} | {f32.get('co_resident', '–')} of 5 "
               f"| {f16.get('co_resident', '–')} of 5 | {s_resident or '–'} of 5 | – |")
    out.append("")
    out.append("PyTorch: each model its own module, `set_per_process_memory_fraction` = 8 GiB less its CUDA "
               "context; memory sampled by NVML every 20 ms, mean over the process life after the context; "
               "frame = a mode's models one after another, pinned input in, outputs out, synchronized. shoal: "
               "`shoal bench --budget none`, NVML sampled every 100 ms over its life; frame = `infer` (network, "
               "upload and download); load = `to_first_results` (create, upload, first runs).")
    out.append("")

    # ---- targets
    out.append("Targets (full set):")
    peer16 = pt_memory(f16)[0]
    r = ratio(s_peak, peer16)
    out.append(f"- all-resident process memory ≤ {TARGETS['memory']}× PyTorch fp16 eager: shoal {fmt(s_peak)} MiB, "
               f"PyTorch {fmt(peer16)} MiB: {verdict(None if r is None else r <= TARGETS['memory'], f'{r:.2f}×' if r else '')}")
    bn = P["pt_fp16_bnfold"]
    if pt_memory(bn)[0]:
        rb = ratio(s_peak, pt_memory(bn)[0])
        out.append(f"  (against fp16 eager BN-folded, {fmt(pt_memory(bn)[0])} MiB: {rb:.2f}×)")
    # the frame-level peer: the fastest PyTorch configuration measured, per mode
    for m in MODES:
        ours = shoal_frame(S, m)[0]
        cands = [(pt_frame(p, m)[0], p.get("label") or f"PyTorch {p.get('config')}") for p in P.values()
                 if "skipped" not in p and pt_frame(p, m)[0] is not None]
        if not cands or ours is None:
            out.append(f"- {m}: ≥ {TARGETS['speedup']}× faster per frame: not measured")
            continue
        best, label = min(cands)
        sp = best / ours
        out.append(f"- {m}: ≥ {TARGETS['speedup']}× faster per frame than the fastest PyTorch peer ({label}, "
                   f"{best:.2f} ms e2e): shoal {ours:.2f} ms: {verdict(sp >= TARGETS['speedup'], f'{sp:.2f}× faster')}")
    out.extend(frame_level_lines(d))
    one = budgets.get("1GiB") or {"skipped": "not run"}
    sw = one.get("switch") or {}
    runs = one.get("ok") and sw.get("switches") == sw.get("cycles", -1) * len(MODES)
    p99 = (sw.get("switch_ms") or {}).get("p99")
    out.append(f"- 1 GiB budget, every mode runs: {verdict(None if 'skipped' in one else bool(runs))}"
               f" ({sw.get('switches', '–')} switches, {sw.get('loads', '–')} loads)")
    out.append(f"- swap-in p99 ≤ {TARGETS['swap_p99_ms']} ms (1 GiB): "
               f"{verdict(None if p99 is None else p99 <= TARGETS['swap_p99_ms'], '' if p99 is None else f'p99 {p99:.3f} ms')}")
    auto = budgets.get("auto") or {}
    asw = auto.get("switch") or {}
    ap99 = (asw.get("switch_ms") or {}).get("p99")
    if ap99 is not None:
        out.append(f"- the same at the smallest budget (auto, {fmt((asw.get('budget_bytes') or 0) / MIB)} MiB, "
                   f"{asw.get('loads', '–')} loads in {asw.get('switches', '–')} switches): "
                   f"{verdict(ap99 <= TARGETS['swap_p99_ms'], f'p99 {ap99:.3f} ms')}")
    r = ratio(s_load, f16.get("cold_start_s"))
    out.append(f"- load ≤ {TARGETS['load']}× PyTorch's (fp16 eager cold start {fmt(f16.get('cold_start_s'), 2)} s): "
               f"shoal {fmt(s_load, 2)} s: {verdict(None if r is None else r <= TARGETS['load'], f'{r:.3f}×' if r else '')}")
    out.append("")

    # ---- budgets
    floor = None
    if s_nvml > 0 and s_mem.get("device_in_use_bytes") is not None:
        floor = (s_nvml - s_mem["device_in_use_bytes"]) / MIB
    cycles = next((v["switch"].get("cycles") for v in budgets.values() if v.get("switch")), "–")
    out.append(f"Budgets: {cycles} cycles through every mode each (`shoal bench --cycles N --budget B`, NVML sampled "
               f"every 100 ms); floor = NVML's process bytes beyond shoal's own accounting, all resident: "
               f"{fmt(floor)} MiB; pinned host cache {fmt((s_mem.get('host_cache_bytes') or 0) / MIB)} MiB.")
    out.append("")
    out.append("NVML max: the samples after the switch phase began (before it the bench makes every model "
               "resident on purpose); shoal peak: its own device bytes, which the budget bounds.")
    out.append("A switch's time is its residency work (evictions, uploads from the pinned host cache): ~0 when "
               "the mode's models are resident, so the p99 is the swap-in's when at least 1% of switches load.")
    out.append("")
    out.append("First frame: the frame right after each switch (all modes), median / p99; per mode the "
               "switch's median / p99 follows the table.")
    out.append("")
    out.append("| budget | runs every mode | switches | loads | evictions | switch median / p99 (ms) "
               "| first frame median / p99 (ms) | shoal peak (MiB) | NVML max (MiB) | budget + floor (MiB) | within |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    per_mode = []
    for b, v in budgets.items():
        if "skipped" in v:
            out.append(f"| {b} | skipped: {v['skipped'][:80]} |" + " |" * 9)
            continue
        sw = v.get("switch") or {}
        bb = (sw.get("budget_bytes") or 0) / MIB
        t_sw = switch_start(d, f"budget_{b}")
        mx = max(smi(d, f"budget_{b}", t_sw) or [0]) or None if t_sw is not None else None
        lim = bb + floor if floor is not None else None
        ok = None if mx is None or lim is None else mx <= lim
        swm = sw.get("switch_ms") or {}
        out.append(f"| {b} ({fmt(bb)} MiB) | {'yes' if v.get('ok') and sw.get('switches') == sw.get('cycles', -1) * len(MODES) else 'NO'} "
                   f"| {sw.get('switches', '–')} | {sw.get('loads', '–')} | {sw.get('evictions', '–')} "
                   f"| {fmt(swm.get('median'), 3)} / {fmt(swm.get('p99'), 3)} "
                   f"| {fmt((sw.get('first_frame_ms') or {}).get('median'), 2)} / {fmt((sw.get('first_frame_ms') or {}).get('p99'), 2)} "
                   f"| {fmt((sw.get('device_peak_bytes') or 0) / MIB or None)} | {fmt(mx)} | {fmt(lim)} "
                   f"| {'–' if ok is None else ('yes' if ok else 'NO')} |")
        tm = sw.get("to_mode_switch_ms") or {}
        per_mode.append(f"{b}: " + ", ".join(f"to {m} {fmt(q.get('median'), 3)} / {fmt(q.get('p99'), 3)} ms"
                                             for m, q in tm.items()))
    out.append("")
    out.extend(f"- {line}" for line in per_mode)
    out.append("")

    # ---- per-mode latency, every configuration
    cols = [("shoal", S)] + [(p.get("label") or f"PyTorch {p.get('config')}", p) for p in P.values() if "skipped" not in p]
    out.append("| per frame, median / p99 (ms) | " + " | ".join(c for c, _ in cols) + " |")
    out.append("|---" * (len(cols) + 1) + "|")
    for m in MODES:
        cells = []
        for c, v in cols:
            med, p99 = shoal_frame(v, m) if v is S else pt_frame(v, m)
            cells.append(f"{fmt(med, 2)} / {fmt(p99, 2)}")
        out.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(out), S, P, s_peak


def plot(svg, S, P, s_peak):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"fullset_table: no plot ({e})", file=sys.stderr)
        return
    cols = [("shoal", S, s_peak, [shoal_frame(S, m)[0] for m in MODES])]
    for p in P.values():
        if "skipped" not in p:
            cols.append(((p.get("label") or p.get("config", "")).replace(" (", "\n("), p, pt_memory(p)[0],
                         [pt_frame(p, m)[0] for m in MODES]))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = [c[0] for c in cols]
    a1.bar(range(len(cols)), [(c[2] or 0) * MIB / GB for c in cols], color=["C2"] + ["C0"] * (len(cols) - 1))
    a1.axhline(CLAIMS["peak"][0], ls="--", color="C3", label="article: traditional 7.2 GB")
    a1.axhline(CLAIMS["peak"][1], ls=":", color="C1", label="article: optimized 4.1 GB")
    a1.set_xticks(range(len(cols)), names, fontsize=7)
    a1.set_ylabel("peak device memory, NVML (GB)")
    a1.legend(fontsize=7)
    w = 0.8 / len(cols)
    for i, c in enumerate(cols):
        a2.bar([k + i * w for k in range(len(MODES))], [v or 0 for v in c[3]], w, label=c[0].replace("\n", " "))
    a2.set_xticks([k + 0.4 - w / 2 for k in range(len(MODES))], MODES)
    a2.set_ylabel("per frame, median (ms)")
    a2.set_yscale("log")
    a2.legend(fontsize=7)
    fig.suptitle("Full model set on one GPU: shoal against PyTorch the original way")
    fig.tight_layout()
    fig.savefig(svg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--md")
    ap.add_argument("--svg")
    args = ap.parse_args()
    text, S, P, s_peak = build(args.dir)
    print(text)
    if args.md:
        open(args.md, "w").write(text + "\n")
    if args.svg:
        try:
            plot(args.svg, S, P, s_peak)
        except Exception as e:  # noqa: BLE001 - the table is written; say why the plot is not
            print(f"fullset_table: plot failed: {type(e).__name__}: {e}", file=sys.stderr)


if __name__ == "__main__":
    main()
