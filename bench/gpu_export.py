#!/usr/bin/env python3
"""Writes the reference models into a folder on a machine whose PyTorch is not Debian's 1.13
(the GPU machine: PyTorch 2.11), for bench/run_gpu.sh. The five ONNX files (~200 MB) are too
big to carry there, so they are generated where they run, from tools/export_models.py's
definitions (same seeds, same weights).

PyTorch 2.9+ exports through dynamo by default; the reference files were written by the
TorchScript exporter (opset 17, the op set shoal's importer covers), so this forces
dynamo=False. When the `onnx` package is missing, export_models.py's checks cannot run; the
files are then exported without them (the TorchScript exporter itself does not need onnx).
A model that cannot be exported at all is reported and left out; run_gpu.sh then runs shoal
without it and says so.

--set full exports the full set (the original system's sizes) into --out; --calib-device cuda
calibrates their BatchNorms on the GPU (minutes on the CPU otherwise); --weights-cache DIR also
saves each model's state_dict where bench/pytorch_runner.py looks for it (its --cache-dir), so
the PyTorch runners load the very weights shoal runs and nothing is generated twice.

Prints one JSON line: {"exported": [...], "failed": {name: reason}, "torch": ..., "onnx": ...}.
"""
import argparse
import inspect
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tools"))
import export_models as E  # noqa: E402

_export = torch.onnx.export
_params = set(inspect.signature(_export).parameters)


def export_legacy(*args, **kw):
    """torch.onnx.export through the TorchScript exporter, dropping arguments this version
    no longer takes (e.g. `training` once it is removed)."""
    if "dynamo" in _params:
        kw["dynamo"] = False
    for k in list(kw):
        if k not in _params:
            kw.pop(k)
    return _export(*args, **kw)


torch.onnx.export = export_legacy


def export_unchecked(name, model, outdir):
    """export_models.export_one without the onnx-package checks."""
    shape, outs = E.model_io(name)
    x = E.make_input(name)
    path = os.path.join(outdir, f"{name}.onnx")
    with torch.no_grad():
        export_legacy(model, torch.from_numpy(x), path, opset_version=E.OPSET, do_constant_folding=True,
                      input_names=["images"], output_names=[o for o, _ in outs],
                      training=getattr(torch.onnx, "TrainingMode", None) and torch.onnx.TrainingMode.EVAL)
    np.save(os.path.join(outdir, f"{name}.input.npy"), x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--only", nargs="*", default=None)
    ap.add_argument("--set", choices=sorted(E.SETS), default="small", help="full: the original system's sizes")
    ap.add_argument("--calib-device", default=None, help="cuda: BN calibration on the GPU (when it has one)")
    ap.add_argument("--weights-cache", default=None, help="also write pytorch_runner's state_dict cache here")
    args = ap.parse_args()
    E.use_set(args.set)
    calib = args.calib_device
    if calib == "cuda":
        if torch.cuda.is_available():
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        else:
            print("gpu_export: no CUDA; calibrating on the CPU", file=sys.stderr)
            calib = None
    wdir = None
    if args.weights_cache:
        import pytorch_runner as R   # bench/, beside this file
        wdir = R.cache_path(args.weights_cache)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    try:
        import onnx  # noqa: F401
        have_onnx = onnx.__version__
    except Exception as e:  # noqa: BLE001
        have_onnx = None
        print(f"gpu_export: `import onnx` failed ({e}); exporting without the checks", file=sys.stderr)
    names = args.only or E.exported_names()
    unknown = [n for n in names if n not in E.MODELS]
    if unknown:
        ap.error(f"--only: the {args.set} set exports none of {unknown}")
    order = sorted(names, key=E.ORDER.index)
    if E.SET == "small" and "shopping" in order and "blind_road" not in order:
        E.build_model("blind_road")      # shopping copies blind_road's trunk
    done, failed, secs = [], {}, {}
    for n in order:
        t = time.time()
        try:
            model = E.build_model(n, calib_device=calib)
            if wdir:
                torch.save(model.state_dict(), os.path.join(wdir, f"{n}.pt.tmp"))
                os.replace(os.path.join(wdir, f"{n}.pt.tmp"), os.path.join(wdir, f"{n}.pt"))
            if have_onnx:
                try:
                    E.export_one(n, model, args.out)
                except Exception:  # noqa: BLE001 - the checks, not the file, may be what failed
                    traceback.print_exc()
                    print(f"gpu_export: {n}: checked export failed; exporting without the checks",
                          file=sys.stderr)
                    export_unchecked(n, model, args.out)
            else:
                export_unchecked(n, model, args.out)
            done.append(n)
        except Exception as e:  # noqa: BLE001 - reported, the driver goes on without the model
            traceback.print_exc()
            failed[n] = f"{type(e).__name__}: {e}"[:300]
            for suffix in (".onnx", ".input.npy"):
                p = os.path.join(args.out, n + suffix)
                if os.path.exists(p):
                    os.remove(p)
        secs[n] = round(time.time() - t, 1)
        print(f"gpu_export: {n} {'ok' if n in done else 'FAILED'} in {secs[n]} s", file=sys.stderr, flush=True)
    print(json.dumps(dict(exported=done, failed=failed, seconds=secs, torch=torch.__version__, onnx=have_onnx,
                          checked=bool(have_onnx))), flush=True)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
