#!/usr/bin/env python3
"""The per-frame table of docs/benchmarks.md from one scripts/gpu-frame.sh results folder.

Reads, in RESULTS_DIR: meta.json; shoal_<dev>.json (`shoal bench`); pytorch_frame_<dev>.json
(bench/frame_pytorch.py); check_<dev>.json (the detection comparison); shoal_cpu.json (the CPU
target; on a CPU-only run the same file as shoal_cpu). Prints Markdown, writes it to --md and a
summary with every figure and each target's verdict to --json.

Per mode, medians in ms (host wall clock):
  network           shoal's "infer": the networks (on a GPU with the input upload, the output
                    download and the sync they imply)
  frame             shoal's whole frame from the 8-bit frame in host memory to results
  frame / network   target <= 1.3 on the GPU
  JPEG frame        the same from the frame's JPEG bytes (shoal_image_decode + frame)
  PyTorch frame     the peer from the 8-bit frame in host memory to results in host memory
  PyTorch / shoal   the peer's frame over shoal's: target >= 2
  CPU overhead      (frame - network) / network on the CPU: target <= 5%
"""
import argparse
import json
import os
import sys

MODES = ["navigation", "crossing", "shopping"]
TARGET_FRAME_OVER_NETWORK = 1.3
TARGET_PEER_RATIO = 2.0
TARGET_CPU_OVERHEAD = 0.05


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def med(o, *path):
    """o[path...]'s median: shoal writes "median", the peer "median_ms"; None when absent."""
    for k in path:
        if not isinstance(o, dict) or k not in o:
            return None
        o = o[k]
    if not isinstance(o, dict):
        return None
    return o.get("median", o.get("median_ms"))


def fmt(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def verdict(ok):
    return "–" if ok is None else ("yes" if ok else "**no**")


def ratio(a, b):
    return a / b if a is not None and b else None


def summarize(res):
    meta = load(os.path.join(res, "meta.json")) or {}
    dev = meta.get("device", "cuda")
    shoal = load(os.path.join(res, f"shoal_{dev}.json")) or {}
    peer = load(os.path.join(res, f"pytorch_frame_{dev}.json")) or {}
    check = load(os.path.join(res, f"check_{dev}.json")) or {}
    cpu = load(os.path.join(res, "shoal_cpu.json")) or {}
    rows = []
    for m in MODES:
        s = shoal.get("modes", {}).get(m, {})
        p = peer.get("modes", {}).get(m, {})
        c = cpu.get("modes", {}).get(m, {})
        net, frame = med(s, "infer_ms"), med(s, "latency_ms")
        pt_frame = med(p, "frame_ms")
        pt_jpeg = [v for v in (med(p, "frame_jpeg_cpu_ms"), med(p, "frame_jpeg_dev_ms")) if v is not None]
        cnet, cframe = med(c, "infer_ms"), med(c, "latency_ms")
        r = dict(mode=m, models=s.get("models") or p.get("models"),
                 network_ms=net, device_ms=med(s, "device_ms"), frame_ms=frame,
                 frame_over_network=ratio(frame, net),
                 jpeg_frame_ms=med(s, "jpeg_frame_ms"), jpeg_decode_ms=med(s, "jpeg_decode_ms"),
                 jpeg_bytes=s.get("jpeg_bytes"),
                 pytorch_network_ms=med(p, "network_ms"), pytorch_frame_ms=pt_frame,
                 pytorch_frame_jpeg_cpu_ms=med(p, "frame_jpeg_cpu_ms"), pytorch_frame_jpeg_dev_ms=med(p, "frame_jpeg_dev_ms"),
                 pytorch_jpeg_decode_cpu_ms=med(p, "jpeg_decode_cpu_ms"), pytorch_jpeg_decode_dev_ms=med(p, "jpeg_decode_dev_ms"),
                 pytorch_over_shoal=ratio(pt_frame, frame),
                 pytorch_over_shoal_jpeg=ratio(min(pt_jpeg) if pt_jpeg else None, med(s, "jpeg_frame_ms")),
                 cpu_network_ms=cnet, cpu_frame_ms=cframe,
                 cpu_overhead=None if cnet is None or cframe is None else (cframe - cnet) / cnet,
                 results=p.get("results"))
        r["frame_target_met"] = None if r["frame_over_network"] is None or dev != "cuda" else \
            r["frame_over_network"] <= TARGET_FRAME_OVER_NETWORK
        r["peer_target_met"] = None if r["pytorch_over_shoal"] is None or dev != "cuda" else \
            r["pytorch_over_shoal"] >= TARGET_PEER_RATIO
        r["cpu_target_met"] = None if r["cpu_overhead"] is None else r["cpu_overhead"] <= TARGET_CPU_OVERHEAD
        rows.append(r)
    return dict(meta=meta, device=dev, shoal_device_name=shoal.get("device_name"), shoal_version=shoal.get("shoal_version"),
                torch=peer.get("torch"), torchvision=peer.get("torchvision"), peer_dtype=peer.get("dtype"),
                cuda_graphs=peer.get("cuda_graphs"), peer_notes=peer.get("notes", []),
                shoal_inputs=shoal.get("mode_inputs"), cpu_threads=cpu.get("threads"),
                check=check.get("check"), rows=rows,
                targets=dict(frame_over_network_max=TARGET_FRAME_OVER_NETWORK, pytorch_over_shoal_min=TARGET_PEER_RATIO,
                             cpu_overhead_max=TARGET_CPU_OVERHEAD))


def markdown(sm):
    meta, dev = sm["meta"], sm["device"]
    out = [f"Run on {meta.get('date', '?')}: {meta.get('machine', '?')}; shoal {sm.get('shoal_version') or '?'}, "
           f"PyTorch {sm.get('torch') or '?'} (torchvision {sm.get('torchvision') or 'absent'}), peer in "
           f"{sm.get('peer_dtype') or '?'}{' with CUDA graphs' if sm.get('cuda_graphs') else ''}; "
           f"{meta.get('iters', '?')} frames after {meta.get('warmup', '?')} per figure, medians in ms; "
           f"load average {meta.get('load', '?')}.", ""]
    if dev != "cuda":
        out += ["No GPU: every figure below is the CPU's (the GPU targets do not apply).", ""]
    out += [f"| mode | network | frame (8-bit) | frame / network (≤ {TARGET_FRAME_OVER_NETWORK}×) | frame (JPEG) | "
            f"JPEG decode | PyTorch network | PyTorch frame | PyTorch / shoal (≥ {TARGET_PEER_RATIO:g}×) | "
            "PyTorch frame (JPEG, CPU / device decode) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in sm["rows"]:
        f_over = "–" if r["frame_over_network"] is None else \
            f"{r['frame_over_network']:.2f}× {verdict(r['frame_target_met']) if dev == 'cuda' else ''}".strip()
        p_over = "–" if r["pytorch_over_shoal"] is None else \
            f"{r['pytorch_over_shoal']:.2f}× {verdict(r['peer_target_met']) if dev == 'cuda' else ''}".strip()
        out.append(f"| {r['mode']} | {fmt(r['network_ms'])} | {fmt(r['frame_ms'])} | {f_over} | {fmt(r['jpeg_frame_ms'])} | "
                   f"{fmt(r['jpeg_decode_ms'])} | {fmt(r['pytorch_network_ms'])} | {fmt(r['pytorch_frame_ms'])} | {p_over} | "
                   f"{fmt(r['pytorch_frame_jpeg_cpu_ms'])} / {fmt(r['pytorch_frame_jpeg_dev_ms'])} |")
    if any(r["cpu_network_ms"] is not None for r in sm["rows"]):
        out += ["", f"CPU ({sm.get('cpu_threads') or '?'} threads): per-frame overhead, target ≤ {TARGET_CPU_OVERHEAD:.0%} "
                "of the network time.", "",
                "| mode | network | frame (8-bit) | overhead | target met |", "| --- | ---: | ---: | ---: | --- |"]
        for r in sm["rows"]:
            ov = "–" if r["cpu_overhead"] is None else f"{100 * r['cpu_overhead']:.1f}%"
            out.append(f"| {r['mode']} | {fmt(r['cpu_network_ms'], 1)} | {fmt(r['cpu_frame_ms'], 1)} | {ov} | "
                       f"{verdict(r['cpu_target_met'])} |")
    ck = sm.get("check")
    if ck:
        out += ["", f"Detections, shoal against the peer on the lossless frames (same class, IoU ≥ {ck['iou_min']}; "
                f"a box on one side only is excused when its score is within {ck['score_tol']} of the threshold "
                "or it overlaps a box of the other side by an IoU within 0.03 of the NMS threshold): "
                f"**{'same' if ck['same_boxes'] else 'different'}**.", "",
                "| mode/model | shoal | peer | matched | min IoU | max score diff | excused | mask area max diff | "
                "landmarks max px |",
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for k, v in ck["models"].items():
            if "landmarks_max_abs_px" in v:
                out.append(f"| {k} | | | | | | | | {v['landmarks_max_abs_px']} |")
            else:
                area = v.get("mask_area_max_rel_diff")
                out.append(f"| {k} | {v['shoal']} | {v['peer']} | {v['matched']} | {v['min_iou']} | "
                           f"{v['max_score_diff']} | {v['excused']} | {'' if area is None else f'{100 * area:.2f}%'} | |")
    notes = list(meta.get("notes", [])) + list(sm.get("peer_notes", []))
    if notes:
        out += [""] + [f"- {n}" for n in notes]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results")
    ap.add_argument("--md")
    ap.add_argument("--json")
    a = ap.parse_args()
    if not os.path.isfile(os.path.join(a.results, "meta.json")):
        sys.exit(f"frame_table: {a.results} has no meta.json (not a scripts/gpu-frame.sh folder)")
    sm = summarize(a.results)
    text = markdown(sm)
    sys.stdout.write(text)
    if a.md:
        with open(a.md, "w") as f:
            f.write(text)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(sm, f, indent=1)


if __name__ == "__main__":
    main()
