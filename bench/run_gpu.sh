#!/usr/bin/env bash
# The GPU benchmark, in one call on the GPU machine (PyTorch 2.11 + CUDA 13 there; nothing is
# built there): generates the five reference models with that machine's PyTorch, then runs,
# one process each and one after the other, shoal bench --device cuda and bench/pytorch_runner.py
# in every configuration (fp32 eager, fp16 eager BN-folded, fp16 + cudnn.benchmark, fp16 + CUDA
# graphs, torch.compile within a time limit); prints one table and draws the plot. Everything
# it writes lands in RESULTS_DIR and, when $OUT is set (the device tool), in $OUT as
# gpu-results.tar.gz, table.md, benchmarks-gpu.svg and run_gpu.log.
#
#   bench/run_gpu.sh [-b BUILD_DIR_OR_SHOAL_BINARY] [-o RESULTS_DIR] [-n ITERS] [-w WARMUP]
#                    [-c CONFIG] [--configs "fp32_eager ... compile"] [--deadline SECONDS]
#                    [--compile-limit SECONDS] [--no-shoal]
#
# Defaults: build-gpu, bench/results/gpu, 100 iterations after 10 warmup runs,
# configs/aiglasses.yaml, every PyTorch configuration, a 560 s deadline for the whole script
# (the device tool stops a command at 600 s) and at most 240 s for torch.compile. A step that
# does not fit in what is left of the deadline is skipped and the table says so. --no-shoal
# runs only the PyTorch configurations (no export, no shoal): for a second call that gives
# torch.compile the whole deadline, e.g. --no-shoal --configs compile --compile-limit 500 -o DIR;
# copy DIR/pytorch_compile.json into the first run's folder and rerun bench/table.py there.
#
# From the build machine (the device tool's run; carry the shoal binary's build folder, or just
# the binary, and the Debian libraries it links):
#   cmake -S . -B build-gpu -DSHOAL_CUDA=ON && cmake --build build-gpu -j2 --target shoal
#   run: command "bench/run_gpu.sh -b build-gpu", carry ["build-gpu/shoal", ".devlibs", "bench/hand-inputs"], timeout_s 600
#
# The hand (configs with task: hand_landmarks): every side runs MediaPipe's palm detector and
# its landmark model on one crop per frame, as bench/run_cpu.sh explains. The GPU machine has
# neither ../shared nor models/: carry bench/hand-inputs (bench/run_cpu.sh makes it here: the
# two .tflite files, shoal's one-hand frame and the PyTorch peer's inputs); without the frame
# shoal's hand model sees no palm and the notes say the hand rows are not like for like. The
# PyTorch peer alone:
#   python3 bench/pytorch_runner.py --config fp16_cuda_graphs --device cuda --hand-inputs bench/hand-inputs
set -uo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
BUILD=build-gpu
RES=bench/results/gpu
ITERS=100
WARMUP=10
CONFIG=configs/aiglasses.yaml
PT_CONFIGS="fp32_eager fp16_eager_bnfold fp16_cudnn_benchmark fp16_cuda_graphs compile"
DEADLINE=560
COMPILE_LIMIT=240
RUN_SHOAL=1
while [ $# -gt 0 ]; do
    case $1 in
        -b) BUILD=$2; shift 2 ;;
        -o) RES=$2; shift 2 ;;
        -n) ITERS=$2; shift 2 ;;
        -w) WARMUP=$2; shift 2 ;;
        -c) CONFIG=$2; shift 2 ;;
        --configs) PT_CONFIGS=$2; shift 2 ;;
        --deadline) DEADLINE=$2; shift 2 ;;
        --compile-limit) COMPILE_LIMIT=$2; shift 2 ;;
        --no-shoal) RUN_SHOAL=0; shift ;;
        -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
        *) echo "run_gpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
mkdir -p "$RES"
rm -f "$RES"/*.json "$RES"/*.log
LOG=$RES/run_gpu.log
exec > >(tee "$LOG") 2>&1
log() { echo "[run_gpu $(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
skip() { echo "{\"skipped\": \"$2\"}" > "$RES/$1.json"; log "skipped $1: $2"; }
NOTES=()

finish() {
    LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
    python3 - "$RES/meta.json" "${NOTES[@]+"${NOTES[@]}"}" <<EOF
import json, sys, datetime
json.dump(dict(kind="gpu", machine="$GPU_NAME (driver $DRIVER), $(nproc) CPU cores", os="$OS",
               iters=$ITERS, warmup=$WARMUP, config="$CONFIG",
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               load_before="$LOAD_BEFORE", load_after="$LOAD_AFTER",
               versions={"shoal": "$SHOAL_V", "PyTorch": "$TORCH_V", "CUDA (torch)": "$CUDA_V",
                         "cuDNN (torch)": "$CUDNN_V", "onnx": "$ONNX_V"},
               notes=sys.argv[2:]), open(sys.argv[1], "w"), indent=1)
EOF
    python3 bench/table.py "$RES" --md "$RES/table.md" || log "table.py failed"
    python3 bench/plot.py "$RES" --out "$RES/benchmarks-gpu.svg" || log "plot.py failed"
    if [ -n "${OUT:-}" ]; then
        tar -czf "$OUT/gpu-results.tar.gz" -C "$RES" . 2>/dev/null
        cp "$RES/table.md" "$RES/benchmarks-gpu.svg" "$OUT/" 2>/dev/null
        cp "$LOG" "$OUT/run_gpu.log" 2>/dev/null
    fi
    log "done in $(( $(date +%s) - T0 )) s"
}

# --- the machine ---------------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
OS=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
read -r GPU_NAME DRIVER < <(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null |
                            head -1 | awk -F', ' '{gsub(/ /,"_",$1); print $1, $2}')
GPU_NAME=${GPU_NAME//_/ }
TORCH_V=$(python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
CUDA_V=$(python3 -c 'import torch; print(torch.version.cuda)' 2>/dev/null || echo none)
CUDNN_V=$(python3 -c 'import torch; print(torch.backends.cudnn.version())' 2>/dev/null || echo none)
ONNX_V=$(python3 -c 'import onnx; print(onnx.__version__)' 2>/dev/null || echo "missing")
log "GPU: ${GPU_NAME:-none} (driver ${DRIVER:-?}); PyTorch $TORCH_V, CUDA $CUDA_V, cuDNN $CUDNN_V, onnx $ONNX_V"
nvidia-smi --query-gpu=memory.total,memory.used --format=csv 2>/dev/null

# --- shoal's binary and the libraries it links (as scripts/gpu-check.sh does) ---------------
if [ -d "$BUILD" ]; then SHOAL=$BUILD/shoal; else SHOAL=$BUILD; fi
. bench/gpu_env.sh        # SHOAL_LD: cuDNN from PyTorch, the carried Debian libraries
SHOAL_V=none
if [ -x "$SHOAL" ]; then
    missing=$(LD_LIBRARY_PATH=$SHOAL_LD ldd "$SHOAL" | grep 'not found')
    [ -n "$missing" ] && log "shoal links libraries not found here: $missing"
    SHOAL_V=$(LD_LIBRARY_PATH=$SHOAL_LD "$SHOAL" --version 2>/dev/null | awk '{print $2}')
fi

# --- models: exported here, with this machine's PyTorch; PyTorch's weight cache alongside ------
# Both build the same seeded networks on the CPU; they run side by side (16 cores) before
# anything is timed. The PyTorch runner's own first step then finds its cache filled.
export SHOAL_BENCH_CACHE=/tmp/shoal-bench-weights
log "filling PyTorch's weight cache (background)"
timeout 150 python3 bench/pytorch_runner.py --config fp32_eager --device cpu --generate-only --threads 6 \
    >"$RES/weights.log" 2>&1 &
GEN=$!
# The hand: MediaPipe's (from models/*.tflite, nothing to export) or the stand-in (hand.onnx).
HAND=stand-in
grep -q 'task: *hand_landmarks' "$CONFIG" && HAND=mediapipe
HAND_DIR=bench/hand-inputs
HAND_IMAGE=()
PT_HAND=(--hand "$HAND")
if [ "$HAND" = mediapipe ]; then
    mkdir -p "$HAND_DIR" models
    for f in palm_detection_full hand_landmark_full; do   # models/ is not carried; bench/hand-inputs is
        [ -s models/$f.tflite ] || cp "$HAND_DIR/$f.tflite" models/ 2>/dev/null ||
            NOTES+=("hand: models/$f.tflite missing (carry bench/hand-inputs)")
    done
    [ -s "$HAND_DIR/one_hand.png" ] || python3 bench/tflite_torch.py frame --out "$HAND_DIR/one_hand.png" 2>/dev/null
    [ -s "$HAND_DIR/hand_palm.input.npy" ] && PT_HAND+=(--hand-inputs "$HAND_DIR")
    if [ -s "$HAND_DIR/one_hand.png" ]; then
        HAND_IMAGE=(--image "shopping=$HAND_DIR/one_hand.png")
        NOTES+=("hand: MediaPipe's palm detector (192x192) then its landmark model on one crop (224x224) per frame on every side; shoal's shopping mode and hand model on one_hand.png (the left half of MediaPipe's left_hands.jpg: one hand)")
    else
        NOTES+=("hand: no one-hand frame (carry bench/hand-inputs): shoal's hand model saw no palm (palm detector alone) while PyTorch ran palm + one landmark crop; the hand rows are not like for like")
    fi
else
    NOTES+=("hand: $CONFIG uses the MobileNetV3 stand-in (hand.onnx); every side timed the stand-in, not MediaPipe's hand landmarker")
fi
have=1
for n in blind_road obstacle shopping traffic_light hand; do [ -s models/$n.onnx ] || have=0; done
if [ "$RUN_SHOAL" = 0 ]; then
    EXPORTED="blind_road obstacle shopping traffic_light hand"   # not needed: no shoal run
elif [ "$have" = 1 ]; then
    log "models/ already holds the five models (not exported again)"
    EXPORTED="blind_road obstacle shopping traffic_light hand"
else
    log "exporting the reference models with PyTorch $TORCH_V"
    timeout $(( $(left) > 300 ? 240 : $(left) - 60 )) python3 bench/gpu_export.py --out models --threads 8 \
        > "$RES/export.json" 2>"$RES/export.log"
    rc=$?
    tail -n 20 "$RES/export.log"
    EXPORTED=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["exported"]))' \
               "$RES/export.json" 2>/dev/null)
    [ $rc -ne 0 ] && log "gpu_export.py exited $rc"
fi
wait $GEN || log "weight cache generation failed (rc $?); pytorch_runner will retry it"
log "weight cache ready"
FAILED=""
for n in blind_road obstacle shopping traffic_light hand; do
    [ "$n" = hand ] && [ "$HAND" = mediapipe ] && continue   # read from its .tflite files
    case " $EXPORTED " in *" $n "*) ;; *) FAILED="$FAILED $n" ;; esac
done

# --- shoal ------------------------------------------------------------------------------------
if [ "$RUN_SHOAL" = 1 ] && [ -x "$SHOAL" ] && ! LD_LIBRARY_PATH=$SHOAL_LD "$SHOAL" plan --config "$CONFIG" --device cpu >/dev/null 2>"$RES/config.err"; then
    # Until shoal reads the product config, the test fixture for the same five models stands in.
    NOTES+=("shoal could not read $CONFIG ($(head -c 200 "$RES/config.err" | tr -d '"\\' | tr '\n' ' ')); ran tests/runtime/data/reference.yaml (the same five models)")
    log "${NOTES[-1]}"
    CONFIG=tests/runtime/data/reference.yaml
fi
BCONFIG=$CONFIG
if [ -n "$FAILED" ]; then
    NOTES+=("models not exported on this machine, left out of shoal's run:$FAILED (see export.log)")
    # A copy of the config without them, beside the original so relative paths still resolve.
    BCONFIG=$(dirname "$CONFIG")/.gpu-bench.yaml
    python3 - "$CONFIG" "$BCONFIG" $FAILED <<'EOF' || BCONFIG=""
import sys, yaml
src, dst, drop = sys.argv[1], sys.argv[2], set(sys.argv[3:])
c = yaml.safe_load(open(src))
c["models"] = {k: v for k, v in c["models"].items() if k not in drop}
c["modes"] = {k: [m for m in v if m not in drop] for k, v in c["modes"].items()}
c["modes"] = {k: v for k, v in c["modes"].items() if v}
if c.get("default_mode") not in c["modes"]:
    c.pop("default_mode", None)
if not c["models"]:
    sys.exit(1)
yaml.safe_dump(c, open(dst, "w"), default_flow_style=False, sort_keys=False)
EOF
fi
if [ "$RUN_SHOAL" = 0 ]; then
    log "shoal not run (--no-shoal)"
elif [ ! -x "$SHOAL" ]; then
    skip shoal "no shoal binary at $SHOAL (carry the CUDA build)"
elif [ -z "$BCONFIG" ]; then
    skip shoal "no model could be exported on this machine"
else
    log "shoal bench --device cuda ($ITERS iterations)"
    LD_LIBRARY_PATH=$SHOAL_LD timeout $(( $(left) > 200 ? 150 : $(left) / 2 )) "$SHOAL" bench --config "$BCONFIG" \
        --device cuda --iters "$ITERS" --warmup "$WARMUP" "${HAND_IMAGE[@]+"${HAND_IMAGE[@]}"}" \
        --out "$RES/shoal.json" 2>"$RES/shoal.err"
    rc=$?
    tail -n 5 "$RES/shoal.err"
    [ -s "$RES/shoal.json" ] || skip shoal "shoal bench exited $rc: $(tail -n 1 "$RES/shoal.err" | tr -d '"\\')"
fi

# --- PyTorch, one process per configuration -------------------------------------------------
for c in $PT_CONFIGS; do
    lim=90
    [ "$c" = compile ] && lim=$COMPILE_LIMIT
    avail=$(( $(left) - 25 ))
    if [ "$avail" -lt 45 ]; then
        skip "pytorch_$c" "not run: the ${DEADLINE} s deadline was near"
        continue
    fi
    [ "$lim" -gt "$avail" ] && lim=$avail
    log "PyTorch $c (limit ${lim} s)"
    timeout "$lim" python3 bench/pytorch_runner.py --config "$c" --device cuda --iters "$ITERS" --warmup "$WARMUP" \
        --threads 4 "${PT_HAND[@]}" > "$RES/pytorch_$c.json" 2>"$RES/pytorch_$c.err"
    rc=$?
    if [ $rc -eq 124 ]; then
        skip "pytorch_$c" "did not finish within ${lim} s$([ "$c" = compile ] && echo ' (torch.compile of the five models)')"
    elif [ $rc -ne 0 ] || ! grep -q '^{' "$RES/pytorch_$c.json"; then
        tail -n 5 "$RES/pytorch_$c.err"
        skip "pytorch_$c" "exited $rc: $(tail -n 1 "$RES/pytorch_$c.err" | tr -d '"\\' | cut -c1-200)"
    fi
done
finish
