#!/usr/bin/env bash
# Issue 17's int8 benchmark on the GPU in one device call: the reference set quantized by
# `shoal quantize` (scripts/quantize-models.sh: QDQ, per-channel int8 weights, calibrated on
# models/frames) against the same models in fp16, per mode on the same camera frames, one
# `shoal bench` after the other on the same card: the whole frame (latency) and the network
# (infer) medians, and each model's weight bytes as the CUDA backend charges them (int8 codes
# plus their scales, against fp16). Ratios int8 / fp16 are printed beside the issue's targets
# (frame <= 0.7x, weight bytes <= 0.55x); `shoal inspect` says which kernel each int8
# convolution takes on the GPU. Everything lands in $OUT (int8.md, int8.json, the logs).
#
# Usage (device tool): bash scripts/gpu-int8.sh build-cu
#   carry: build-cu/shoal, .devlibs   (models and frames are made there as scripts/gpu-frame.sh
#          does, with the machine's PyTorch; the hand's .tflite files and, without PIL there,
#          models/frames come from .devdata/models and .devdata/frames when carried)
# Here:  bash scripts/gpu-int8.sh build    (CPU: a dry run of the path, this machine's numbers)
# env:   INT8_ITERS (50 on a GPU, 5 on a CPU), INT8_WARMUP (5 / 1), INT8_DEADLINE (540 s on a
#        GPU), INT8_RES (results folder, default /tmp/gpu-int8), PYTHON (the one with torch)
set -uo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
B=${1:-build-cu}
if [ -d "$B" ]; then SHOAL=$B/shoal; else SHOAL=$B; fi
RES=${INT8_RES:-/tmp/gpu-int8}
mkdir -p "$RES"
rm -f "$RES"/*.json "$RES"/*.log "$RES"/*.txt "$RES"/*.md "$RES"/*.yaml
exec > >(tee "$RES/gpu-int8.log") 2>&1
log() { echo "[gpu-int8 $(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }

PY=${PYTHON:-python3}
"$PY" -c 'import torch' 2>/dev/null || PY=/usr/bin/python3
TARGET=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo cpu)
if [ "$TARGET" = cuda ]; then ITERS=${INT8_ITERS:-50}; WARMUP=${INT8_WARMUP:-5}; DEADLINE=${INT8_DEADLINE:-540}
else ITERS=${INT8_ITERS:-5}; WARMUP=${INT8_WARMUP:-1}; DEADLINE=${INT8_DEADLINE:-3600}; fi
GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
log "device $TARGET ${GPU_NAME:+($GPU_NAME)}; $(nproc) CPU cores"

. bench/gpu_env.sh
[ -x "$SHOAL" ] || { log "no shoal binary at $SHOAL (carry the build)"; exit 1; }

# --- models and frames (as scripts/gpu-frame.sh makes them), then their int8 versions ----------
have=1
for n in blind_road obstacle shopping traffic_light; do [ -s models/$n.onnx ] || have=0; done
if [ "$have" = 0 ]; then
    log "exporting the reference models with this machine's PyTorch"
    timeout 240 "$PY" bench/gpu_export.py --out models --threads 8 > "$RES/export.json" 2> "$RES/export.log" ||
        { tail -n 20 "$RES/export.log"; log "gpu_export.py failed"; exit 1; }
fi
for f in hand_landmark_full.tflite palm_detection_full.tflite; do
    [ -s models/$f ] || cp ".devdata/models/$f" models/ 2>/dev/null || log "models/$f missing (carry .devdata/models)"
done
for f in sidewalk crossing shelf; do
    [ -s models/frames/$f.jpg ] && continue
    "$PY" tools/make_frames.py models/frames ||
        { mkdir -p models/frames && cp .devdata/frames/* models/frames/; } || { log "no camera frames"; exit 1; }
    break
done
log "shoal quantize of the reference set (scripts/quantize-models.sh)"
t=$(date +%s)
LD_LIBRARY_PATH=$SHOAL_LD QUANT_THREADS=${QUANT_THREADS:-2} timeout $(( $(left) / 3 )) bash scripts/quantize-models.sh --shoal "$SHOAL" \
    > "$RES/quantize.log" 2>&1 || { tail -n 5 "$RES/quantize.log"; log "quantize-models.sh failed"; exit 1; }
log "quantized in $(( $(date +%s) - t )) s"

# --- two configs that differ only in the ONNX files: fp16 (the CUDA backend's precision) and int8;
# beside the original, since a config's relative paths (the hand's palm detector too) start there
CFG16=configs/.gpu-int8-fp16.yaml CFG8=configs/.gpu-int8-int8.yaml
trap 'rm -f "$ROOT/$CFG16" "$ROOT/$CFG8"' EXIT
cp configs/aiglasses.yaml "$CFG16"
sed -E "s#path: \.\./models/(blind_road|obstacle|traffic_light|shopping)\.onnx#path: ../models/\1.int8.onnx#" \
    configs/aiglasses.yaml > "$CFG8"
cp "$CFG16" "$RES/fp16.yaml" && cp "$CFG8" "$RES/int8.yaml"
grep -q "int8.onnx" "$CFG8" || { log "no model of the config was swapped for its int8 file"; exit 1; }
IMAGES="--image navigation=models/frames/sidewalk.jpg --image crossing=models/frames/crossing.jpg --image shopping=models/frames/shelf.jpg"

# --- the GPU kernel of every int8 convolution ---------------------------------------------------
for n in blind_road obstacle traffic_light shopping; do
    echo "== $n.int8.onnx" >> "$RES/inspect.txt"
    LD_LIBRARY_PATH=$SHOAL_LD timeout 60 "$SHOAL" inspect "models/$n.int8.onnx" 2>&1 |
        sed -n '/^int8 convolutions/,$p' >> "$RES/inspect.txt"
done
cat "$RES/inspect.txt"

# --- fp16, then int8, on the same card --------------------------------------------------------
for v in fp16 int8; do
    if [ "$(left)" -lt 30 ]; then log "$v bench not run: the ${DEADLINE} s deadline was near"; continue; fi
    log "shoal bench --device $TARGET, $v models ($ITERS iterations after $WARMUP)"
    cfg=$CFG16; [ $v = int8 ] && cfg=$CFG8
    LD_LIBRARY_PATH=$SHOAL_LD timeout $(( $(left) / 2 < 10 ? 10 : $(left) / 2 )) "$SHOAL" bench --config "$cfg" \
        --device "$TARGET" --iters "$ITERS" --warmup "$WARMUP" --budget none $IMAGES --label "shoal $v" \
        --out "$RES/$v.json" > "$RES/$v.txt" 2> "$RES/$v.err" || log "$v bench exited $?: $(tail -n 1 "$RES/$v.err")"
    sed -n '/^latency/,/^$/p' "$RES/$v.txt"
done

# --- the table ------------------------------------------------------------------------------------
"$PY" - "$RES" "${GPU_NAME:-no GPU} ($TARGET)" <<'EOF'
import json, os, sys
res, machine = sys.argv[1], sys.argv[2]
def load(v):
    try:
        return json.load(open(os.path.join(res, v + ".json")))
    except (OSError, ValueError):
        return None
f, q = load("fp16"), load("int8")
if not f or not q:
    sys.exit("no table: a bench record is missing (see fp16.err / int8.err)")
med = lambda j, m, k: ((j.get("modes", {}).get(m) or {}).get(k) or {}).get("median")
out = {"machine": machine, "modes": {}, "models": {}}
lines = ["# int8 vs fp16 on " + machine, "",
         "(the float models run in fp16 on the GPU, in fp32 on a CPU)", "",
         "| mode | fp16 frame ms | int8 frame ms | int8/fp16 (target <= 0.7) | fp16 infer ms | int8 infer ms | ratio |",
         "| --- | --- | --- | --- | --- | --- | --- |"]
for m in sorted(f.get("modes", {})):
    a, b = med(f, m, "latency_ms"), med(q, m, "latency_ms")
    ia, ib = med(f, m, "infer_ms"), med(q, m, "infer_ms")
    if a is None or b is None:
        continue
    r, ri = b / a, (ib / ia if ia and ib else float("nan"))
    out["modes"][m] = {"fp16_frame_ms": a, "int8_frame_ms": b, "frame_ratio": r, "fp16_infer_ms": ia,
                       "int8_infer_ms": ib, "infer_ratio": ri}
    lines.append(f"| {m} | {a:.2f} | {b:.2f} | {r:.2f}{'' if r <= 0.7 else ' (missed)'} | {ia:.2f} | {ib:.2f} | {ri:.2f} |")
mem = lambda j: ((j.get("memory") or {}).get("models")) or {}
mf, mq = mem(f), mem(q)
lines += ["", "| model | fp16 weight MiB | int8 weight MiB | int8/fp16 (target <= 0.55) |", "| --- | --- | --- | --- |"]
tf = tq = 0
for n in sorted(mf):
    a, b = mf[n].get("weight_bytes"), (mq.get(n) or {}).get("weight_bytes")
    if not a or b is None:
        continue
    r = b / a
    if n in ("blind_road", "obstacle", "traffic_light", "shopping"):
        tf, tq = tf + a, tq + b
    out["models"][n] = {"fp16_weight_bytes": a, "int8_weight_bytes": b, "ratio": r}
    lines.append(f"| {n} | {a / 2**20:.2f} | {b / 2**20:.2f} | {r:.3f}{'' if r <= 0.55 or n.startswith('hand') else ' (missed)'} |")
if tf:
    out["quantized_weight_ratio"] = tq / tf
    lines.append(f"| the four quantized models | {tf / 2**20:.2f} | {tq / 2**20:.2f} | {tq / tf:.3f} |")
text = "\n".join(lines) + "\n"
print(text)
open(os.path.join(res, "int8.md"), "w").write(text)
json.dump(out, open(os.path.join(res, "int8.json"), "w"), indent=1)
EOF
if [ -n "${OUT:-}" ]; then
    cp "$RES/int8.md" "$RES/int8.json" "$RES/inspect.txt" "$OUT/" 2>/dev/null
    tar -czf "$OUT/int8.tgz" -C "$RES" . 2>/dev/null
fi
log "done in $(( $(date +%s) - T0 )) s"
