#!/usr/bin/env bash
# Issue 15's frame-level benchmark in one device call: per mode (navigation, crossing,
# shopping) on the same camera frames (models/frames, tools/make_frames.py), shoal's network
# time, its whole frame from 8-bit pixels and from JPEG bytes (`shoal bench --image
# MODE=FILE.jpg`), and the frame-level PyTorch peer (bench/frame_pytorch.py: fp16, CUDA graphs,
# letterbox/NMS/masks on the device) on the same frames, one process after the other; then
# both sides' detections on the lossless frames compared (`shoal run --json` against the peer),
# and a CPU run of shoal for the CPU target. bench/frame_table.py prints the table (targets:
# frame <= 1.3x network, PyTorch frame / shoal frame >= 2x, CPU per-frame overhead <= 5% of
# the network) and writes frame.json; both land in $OUT with every record and log (frame.tgz).
#
# Without a GPU the same steps run on the CPU (shoal --device cpu, the peer in float32 without
# graphs): a dry run of the whole path, its numbers those of this machine.
#
# Usage (device tool): bash scripts/gpu-frame.sh build-cu
#   carry: build-cu/shoal, .devlibs   (models and frames are made there, ~1-2 min; without PIL
#          there, carry models/frames copied to .devdata/frames too)
# Here:  bash scripts/gpu-frame.sh build      (CPU; FRAME_ITERS=5 FRAME_WARMUP=1 for a quick one)
# env:   FRAME_ITERS (100 on a GPU, 10 on a CPU), FRAME_WARMUP (10 / 2), CPU_ITERS (10),
#        CPU_THREADS (8), FRAME_DEADLINE (540 s on a GPU, 1800 s without: later steps are skipped
#        and say so),
#        FRAME_RES (results folder, default /tmp/gpu-frame), PYTHON (the interpreter with torch)
set -uo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
B=${1:-build-cu}
if [ -d "$B" ]; then SHOAL=$B/shoal; else SHOAL=$B; fi
RES=${FRAME_RES:-/tmp/gpu-frame}
CONFIG=configs/aiglasses.yaml
mkdir -p "$RES"
rm -f "$RES"/*.json "$RES"/*.log "$RES"/*.md
exec > >(tee "$RES/gpu-frame.log") 2>&1
log() { echo "[gpu-frame $(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
# what is left less a reserve, at least 10 s (a step that gets it was checked to fit first)
limit() { local t=$(( $(left) - $1 )); echo $(( t < 10 ? 10 : t )); }
NOTES=()
note() { NOTES+=("$*"); log "$*"; }

# --- Python with torch: the device's plain python3; Debian's here (the pyenv one has none) ---
PY=${PYTHON:-python3}
"$PY" -c 'import torch' 2>/dev/null || PY=/usr/bin/python3
TARGET=$("$PY" -c 'import torch; print("cuda" if torch.cuda.is_available() else "cpu")' 2>/dev/null || echo cpu)
# the device tool stops a command at 600 s; a CPU-only machine has no such limit
if [ "$TARGET" = cuda ]; then ITERS=${FRAME_ITERS:-100}; WARMUP=${FRAME_WARMUP:-10}; DEADLINE=${FRAME_DEADLINE:-540}
else ITERS=${FRAME_ITERS:-10}; WARMUP=${FRAME_WARMUP:-2}; DEADLINE=${FRAME_DEADLINE:-1800}; fi
CPU_ITERS=${CPU_ITERS:-10}
CPU_THREADS=${CPU_THREADS:-8}
GPU_NAME=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
log "device $TARGET ${GPU_NAME:+($GPU_NAME)}; $(nproc) CPU cores; $("$PY" -c 'import torch; print("PyTorch", torch.__version__)')"

# --- shoal's libraries (cuDNN from PyTorch, the carried Debian ones) --------------------------
. bench/gpu_env.sh
if [ ! -x "$SHOAL" ]; then
    log "no shoal binary at $SHOAL (carry the build)"; exit 1
fi
missing=$(LD_LIBRARY_PATH=$SHOAL_LD ldd "$SHOAL" | grep 'not found')
[ -n "$missing" ] && log "shoal links libraries not found here: $missing"

# --- models and frames: made here when absent (the export is seeded: the same weights) -------
export SHOAL_BENCH_CACHE=${SHOAL_BENCH_CACHE:-/tmp/shoal-bench-weights}
have=1
for n in blind_road obstacle shopping traffic_light hand; do [ -s models/$n.onnx ] || have=0; done
if [ "$have" = 0 ]; then
    log "exporting the reference models with this machine's PyTorch; the peer's weight cache beside it"
    timeout 200 "$PY" bench/pytorch_runner.py --config fp32_eager --device cpu --generate-only --threads 6 \
        > "$RES/weights.log" 2>&1 &
    GEN=$!
    timeout 240 "$PY" bench/gpu_export.py --out models --threads 8 > "$RES/export.json" 2> "$RES/export.log" ||
        { tail -n 20 "$RES/export.log"; log "gpu_export.py failed"; exit 1; }
    wait $GEN || log "weight cache generation failed (rc $?); frame_pytorch.py retries it"
fi
# (tools/make_frames.py draws them with PIL; where that is missing, carry them in .devdata/frames)
for f in sidewalk crossing shelf; do
    [ -s models/frames/$f.jpg ] && [ -s models/frames/$f.png ] && continue
    "$PY" tools/make_frames.py models/frames ||
        { mkdir -p models/frames && cp .devdata/frames/* models/frames/; } || { log "no camera frames"; exit 1; }
    break
done
IMAGES="--image navigation=models/frames/sidewalk.jpg --image crossing=models/frames/crossing.jpg --image shopping=models/frames/shelf.jpg"

# --- 1. shoal on the device: network, frame from pixels, frame from JPEG bytes ----------------
log "shoal bench --device $TARGET ($ITERS iterations after $WARMUP)"
LD_LIBRARY_PATH=$SHOAL_LD timeout $(( $(left) / 3 < 10 ? 10 : $(left) / 3 )) "$SHOAL" bench --config $CONFIG --device "$TARGET" --iters "$ITERS" \
    --warmup "$WARMUP" --budget none $IMAGES --label "shoal $TARGET" --out "$RES/shoal_$TARGET.json" > "$RES/shoal_$TARGET.txt" \
    2> "$RES/shoal_$TARGET.err" || note "shoal bench --device $TARGET exited $?: $(tail -n 1 "$RES/shoal_$TARGET.err")"
sed -n '/^latency/,/^$/p' "$RES/shoal_$TARGET.txt"

# --- 2. the PyTorch frame peer on the same frames ----------------------------------------------
if [ "$(left)" -gt 60 ]; then
    log "frame_pytorch.py --device $TARGET"
    timeout "$(limit 40)" "$PY" bench/frame_pytorch.py --device "$TARGET" --frames jpg --iters "$ITERS" \
        --warmup "$WARMUP" --threads 4 --out "$RES/pytorch_frame_$TARGET.json" > /dev/null 2> "$RES/pytorch_frame_$TARGET.err" ||
        note "frame_pytorch.py --device $TARGET exited $?: $(tail -n 1 "$RES/pytorch_frame_$TARGET.err" | cut -c1-300)"
else
    note "PyTorch frame peer not run: the ${DEADLINE} s deadline was near"
fi

# --- 3. the same detections: shoal run and the peer on the lossless frames --------------------
if [ "$(left)" -gt 40 ]; then
    log "detections: shoal run --device $TARGET against the peer on models/frames/*.png"
    : > "$RES/shoal_run_$TARGET.jsonl"
    for m in navigation:sidewalk crossing:crossing shopping:shelf; do
        LD_LIBRARY_PATH=$SHOAL_LD timeout 90 "$SHOAL" run --config $CONFIG --device "$TARGET" --mode "${m%%:*}" --json \
            "models/frames/${m#*:}.png" >> "$RES/shoal_run_$TARGET.jsonl" 2>> "$RES/shoal_run.err" ||
            note "shoal run --mode ${m%%:*} exited $?"
    done
    timeout "$(limit 20)" "$PY" bench/frame_pytorch.py --device "$TARGET" --frames png --check-only --threads 4 \
        --check "$RES/shoal_run_$TARGET.jsonl" --out "$RES/check_$TARGET.json" > /dev/null 2> "$RES/check_$TARGET.err"
    rc=$?
    [ $rc -eq 3 ] && note "detections differ between shoal and the peer (check_$TARGET.json)"
    [ $rc -ne 0 ] && [ $rc -ne 3 ] && note "the detection check exited $rc: $(tail -n 1 "$RES/check_$TARGET.err" | cut -c1-300)"
else
    note "detection check not run: the ${DEADLINE} s deadline was near"
fi

# --- 4. the CPU target: shoal on the host's CPU (on a CPU-only machine step 1 was that run) ---
if [ "$TARGET" = cuda ]; then
    if [ "$(left)" -gt 90 ]; then
        log "shoal bench --device cpu ($CPU_ITERS iterations, $CPU_THREADS threads)"
        LD_LIBRARY_PATH=$SHOAL_LD timeout "$(limit 30)" "$SHOAL" bench --config $CONFIG --device cpu \
            --threads "$CPU_THREADS" --iters "$CPU_ITERS" --warmup 2 --budget none $IMAGES --label "shoal cpu" \
            --out "$RES/shoal_cpu.json" > "$RES/shoal_cpu.txt" 2> "$RES/shoal_cpu.err" ||
            note "shoal bench --device cpu exited $?: $(tail -n 1 "$RES/shoal_cpu.err")"
    else
        note "CPU run not made: the ${DEADLINE} s deadline was near"
    fi
fi

# --- the table ----------------------------------------------------------------------------------
"$PY" - "$RES/meta.json" "${NOTES[@]+"${NOTES[@]}"}" <<EOF
import json, sys, datetime
json.dump(dict(device="$TARGET", machine="${GPU_NAME:-no GPU}; $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))",
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               iters=$ITERS, warmup=$WARMUP, cpu_iters=$CPU_ITERS, cpu_threads=$CPU_THREADS, config="$CONFIG",
               load="$(cut -d' ' -f1-3 /proc/loadavg)", notes=sys.argv[2:]), open(sys.argv[1], "w"), indent=1)
EOF
"$PY" bench/frame_table.py "$RES" --md "$RES/frame_table.md" --json "$RES/frame.json" || log "frame_table.py failed"
if [ -n "${OUT:-}" ]; then
    cp "$RES/frame_table.md" "$RES/frame.json" "$OUT/" 2>/dev/null
    tar -czf "$OUT/frame.tgz" -C "$RES" . 2>/dev/null
fi
log "done in $(( $(date +%s) - T0 )) s"
