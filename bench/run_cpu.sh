#!/usr/bin/env bash
# The CPU benchmark, in one call: shoal bench, PyTorch (Debian's torch 1.13, fp32 eager) and
# ONNX Runtime (npm onnxruntime-node, CPU provider) on the same five models and inputs, all
# five resident in each process, 2 threads each, one after the other; then one table with the
# absolute numbers and shoal's ratio to each, and a plot.
#
#   bench/run_cpu.sh [-b BUILD_DIR] [-o RESULTS_DIR] [-n ITERS] [-w WARMUP] [-t THREADS]
#                    [-c CONFIG] [--pytorch-configs "fp32_eager fp16_eager_bnfold"] [--no-plot]
#                    [--onednn-isa AVX2] [-r ROUNDS]
#
# --onednn-isa caps the instruction set of oneDNN (shoal's convolutions) and of PyTorch (its
# oneDNN and ATen kernels) at the named level, to reproduce an AVX2-only machine on an AVX-512
# one. ONNX Runtime (MLAS) has no such switch: it keeps the CPU's best, and the table says so.
# The metadata records the CPU's flags and the ISA oneDNN used in shoal.
#
# -r ROUNDS (default 1): after the full run, ROUNDS-1 more rounds of shoal bench and ONNX
# Runtime alone (no profile, no switch cycles), alternating which goes first, into
# RESULTS_DIR/rounds/. On a shared host whose speed drifts by tens of percent between minutes
# (another tenant's load shows in no load average), a ratio from runs minutes apart says more
# about the drift than about the runtimes; the table then gives each round's ratios and judges
# the latency targets on their median.
#
# Defaults: build-bench (then build), bench/results/cpu, 20 iterations after 3 warmup runs,
# 2 threads, configs/aiglasses.yaml. Needs models/ (scripts/make-models.sh makes it) and
# bench/node_modules (cd bench && npm install --ignore-scripts). Timings are only as quiet as
# the machine: the load average before and after goes into meta.json and the table.
#
# The hand: when the config's hand model is MediaPipe's (task: hand_landmarks), every side
# times its palm detector (192x192) and then its landmark model on one crop (224x224) per
# frame. shoal bench gets --image shopping=<the left half of ../shared's left_hands.jpg>, one
# hand, on which its hand model runs exactly those two networks ("infer": their uploads, runs
# and downloads, each with the FrameCrop op that makes its input from the 8-bit frame in front);
# the peers run the same two networks (their inputs cropped outside the timing) from
# the same .tflite files (bench/tflite_torch.py: PyTorch modules, and ONNX files exported from
# them for ONNX Runtime). Without ../shared the peers get noise and shoal's hand model finds
# no palm (palm detector alone): the notes say so. A config whose hand is the MobileNetV3
# stand-in (hand.onnx) is timed as the stand-in on every side, labelled.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=/usr/bin/python3
BUILD=""
RES=bench/results/cpu
ITERS=20
WARMUP=3
THREADS=2
CONFIG=configs/aiglasses.yaml
PT_CONFIGS="fp32_eager"
PLOT=1
CAP_ISA=""
ROUNDS=1
while [ $# -gt 0 ]; do
    case $1 in
        -b) BUILD=$2; shift 2 ;;
        -o) RES=$2; shift 2 ;;
        -n) ITERS=$2; shift 2 ;;
        -w) WARMUP=$2; shift 2 ;;
        -t) THREADS=$2; shift 2 ;;
        -c) CONFIG=$2; shift 2 ;;
        --pytorch-configs) PT_CONFIGS=$2; shift 2 ;;
        --no-plot) PLOT=0; shift ;;
        --onednn-isa) CAP_ISA=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "run_cpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
case $ROUNDS in ''|*[!0-9]*|0) echo "run_cpu.sh: -r wants a positive integer, got '$ROUNDS'" >&2; exit 2 ;; esac
if [ -z "$BUILD" ]; then
    for b in build-bench build; do [ -x "$b/shoal" ] && { BUILD=$b; break; }; done
fi
SHOAL=${BUILD:+$BUILD/shoal}
[ -n "$SHOAL" ] && [ -x "$SHOAL" ] || { echo "run_cpu.sh: no shoal binary (build it, or -b DIR)" >&2; exit 1; }
for n in blind_road obstacle shopping traffic_light; do
    [ -s models/$n.onnx ] && [ -s models/$n.input.npy ] || {
        echo "run_cpu.sh: models/$n.onnx missing: run scripts/make-models.sh" >&2; exit 1; }
done
mkdir -p "$RES"
rm -f "$RES"/*.json
rm -rf "$RES/rounds"
log() { echo "[run_cpu] $*" >&2; }
NOTE=""
if ! "$SHOAL" plan --config "$CONFIG" >/dev/null 2>"${TMPDIR:-/tmp}/shoal-config.err"; then
    # The product config is written alongside the runtime; until shoal reads it, the test
    # fixture for the same five models stands in, and the table says so.
    NOTE="shoal could not read $CONFIG ($(head -c 200 "${TMPDIR:-/tmp}/shoal-config.err" | tr -d '"\\' | tr '\n' ' ')); ran tests/runtime/data/reference.yaml (the same five models)"
    log "$NOTE"
    CONFIG=tests/runtime/data/reference.yaml
fi
note() { NOTE="${NOTE:+$NOTE$'\n'}$*"; log "$*"; }

# --- the hand: MediaPipe's two networks on every side, or the stand-in where the config has it
HAND=stand-in
grep -q 'task: *hand_landmarks' "$CONFIG" && HAND=mediapipe
HAND_ARGS=()
ORT_HAND=()
if [ "$HAND" = mediapipe ]; then
    for f in palm_detection_full hand_landmark_full; do
        [ -s models/$f.tflite ] || { echo "run_cpu.sh: models/$f.tflite missing: run scripts/make-models.sh" >&2; exit 1; }
    done
    HAND_DIR=bench/hand-inputs   # generated, ignored by git; bench/run_gpu.sh reads it where ../shared is absent
    mkdir -p "$HAND_DIR"
    if $PY bench/tflite_torch.py frame --out "$HAND_DIR/one_hand.png" 2>/dev/null; then
        HAND_ARGS=(--image "shopping=$HAND_DIR/one_hand.png")
        note "hand: MediaPipe's palm detector (192x192) then its landmark model on one crop (224x224) per frame on every side; shoal's shopping mode and hand model on one_hand.png (the left half of MediaPipe's left_hands.jpg: one hand, so palm + one crop), the peers on inputs made from the same photo"
    else
        note "hand: ../shared's left_hands.jpg missing: shoal's hand model saw no palm (palm detector alone) while the peers ran palm + one landmark crop on noise; the hand rows are not like for like"
    fi
    cp models/palm_detection_full.tflite models/hand_landmark_full.tflite "$HAND_DIR/"   # for the GPU machine
    if $PY bench/tflite_torch.py export --out "$HAND_DIR" >"$HAND_DIR/export.log" 2>&1; then
        ORT_HAND=(--hand "$HAND_DIR")
    else
        note "hand: the ONNX export for ONNX Runtime failed ($HAND_DIR/export.log): ONNX Runtime timed the stand-in"
    fi
else
    [ -s models/hand.onnx ] && [ -s models/hand.input.npy ] || {
        echo "run_cpu.sh: models/hand.onnx missing: run scripts/make-models.sh" >&2; exit 1; }
    note "hand: $CONFIG uses the MobileNetV3 stand-in (hand.onnx); every side timed the stand-in, not MediaPipe's hand landmarker"
fi
load1() { cut -d' ' -f1 /proc/loadavg; }
if [ -n "$CAP_ISA" ]; then
    case $CAP_ISA in
        AVX2|avx2) export ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 ;;
        *) echo "run_cpu.sh: --onednn-isa supports AVX2 only, got $CAP_ISA" >&2; exit 2 ;;
    esac
    NOTE="${NOTE:+$NOTE$'\n'}shoal and PyTorch capped at AVX2 (ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2); ONNX Runtime cannot be capped and used the CPU's best ISA"
fi

# --- machine and versions ---------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
OS=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
TORCH_V=$($PY -c 'import torch; print(torch.__version__)' 2>/dev/null || echo none)
ORT_V=$(node -e 'console.log(require("./bench/node_modules/onnxruntime-node/package.json").version)' 2>/dev/null || echo none)
NODE_V=$(node --version 2>/dev/null || echo none)
BLAS_V=$(dpkg-query -W -f='${Version}' libopenblas0-pthread 2>/dev/null || echo "?")
DNNL_V=$(dpkg-query -W -f='${Version}' libdnnl2 2>/dev/null || echo "?")
ISA=$(grep -m1 -o -w 'avx512f' /proc/cpuinfo || grep -m1 -o -w 'avx2' /proc/cpuinfo)
# The vector extensions that decide which kernels run, as lscpu names them.
CPU_FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -x -E 'avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|avx_vnni|amx_tile' | tr '\n' ' ' | sed 's/ $//')
GCC_V=$(gcc -dumpversion 2>/dev/null || echo "?")
SHOAL_V=$("$SHOAL" --version 2>/dev/null | awk '{print $2}')
GIT_V=$(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo "+dirty")
log "machine: $CPU, $(nproc) cores; load average $LOAD_BEFORE"
if awk "BEGIN{exit !($(load1) >= 2.5)}"; then
    log "WARNING: load average $(load1) >= 2.5: other work is running, timings will be noisy"
fi

# --- the three runners, one process each, one after the other ---------------------------
log "shoal bench ($THREADS threads, $ITERS iterations)"
SHOAL_PROFILE=1 "$SHOAL" bench --config "$CONFIG" --device cpu --threads "$THREADS" --iters "$ITERS" \
    --warmup "$WARMUP" --profile "${HAND_ARGS[@]+"${HAND_ARGS[@]}"}" --out "$RES/shoal.json" --json >/dev/null ||
    log "shoal bench failed (rc $?)"
[ -s "$RES/shoal.json" ] || echo '{"skipped": "shoal bench failed; see the log"}' > "$RES/shoal.json"

# int8 beside fp32: the same config with each model's .int8.onnx (make models-int8), when all
# of them exist; results in $RES/int8/ (shoal.json and table.md), apart from the fp32 table.
INT8_CFG="$(dirname "$CONFIG")/.bench-int8-$$.yaml"
if sed -E 's#^( *path: *.*)\.onnx *$#\1.int8.onnx#' "$CONFIG" > "$INT8_CFG" &&
   "$SHOAL" plan --config "$INT8_CFG" >/dev/null 2>&1; then
    mkdir -p "$RES/int8"
    log "shoal bench, int8 models ($THREADS threads, $ITERS iterations)"
    "$SHOAL" bench --config "$INT8_CFG" --device cpu --threads "$THREADS" --iters "$ITERS" \
        --warmup "$WARMUP" --out "$RES/int8/shoal.json" --json >/dev/null || log "shoal bench int8 failed (rc $?)"
    [ -s "$RES/int8/shoal.json" ] && $PY - "$RES/shoal.json" "$RES/int8/shoal.json" "$(load1)" > "$RES/int8/table.md" <<'PYEOF'
import json, sys
f32, i8 = (json.load(open(p)) for p in sys.argv[1:3])
print("| model | fp32 median ms | int8 median ms | int8 / fp32 |")
print("| --- | --- | --- | --- |")
for name, m in f32.get("models", {}).items():
    q = i8.get("models", {}).get(name)
    if not q:
        continue
    a, b = m["latency_ms"]["median"], q["latency_ms"]["median"]
    print(f"| {name} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
print(f"\nload average after: {sys.argv[3]}")
PYEOF
else
    log "int8 models absent (make models-int8): int8 pass skipped"
fi
rm -f "$INT8_CFG"

for c in $PT_CONFIGS; do
    log "PyTorch $TORCH_V $c ($THREADS threads)"
    $PY bench/pytorch_runner.py --config "$c" --device cpu --threads "$THREADS" --iters "$ITERS" \
        --warmup "$WARMUP" --hand "$HAND" > "$RES/pytorch_$c.json" || {
        log "PyTorch $c failed"; echo "{\"skipped\": \"pytorch_runner.py $c failed\"}" > "$RES/pytorch_$c.json"; }
done

if [ -d bench/node_modules/onnxruntime-node ]; then
    log "ONNX Runtime $ORT_V ($THREADS intra-op threads)"
    node bench/ort_runner.js --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" \
        "${ORT_HAND[@]+"${ORT_HAND[@]}"}" > "$RES/ort.json" || {
        log "ONNX Runtime failed"; echo '{"skipped": "ort_runner.js failed"}' > "$RES/ort.json"; }
else
    echo '{"skipped": "bench/node_modules missing: (cd bench && npm install --ignore-scripts)"}' > "$RES/ort.json"
fi

# --- more rounds, shoal and ONNX Runtime alternating which goes first -----------------------
round_shoal() {
    "$SHOAL" bench --config "$CONFIG" --device cpu --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" \
        --budget none "${HAND_ARGS[@]+"${HAND_ARGS[@]}"}" --out "$RES/rounds/shoal_r$1.json" --json >/dev/null ||
        log "round $1: shoal bench failed (rc $?)"
}
round_ort() {
    node bench/ort_runner.js --threads "$THREADS" --iters "$ITERS" --warmup "$WARMUP" \
        "${ORT_HAND[@]+"${ORT_HAND[@]}"}" > "$RES/rounds/ort_r$1.json" || log "round $1: ONNX Runtime failed"
}
if [ "$ROUNDS" -gt 1 ] && [ -d bench/node_modules/onnxruntime-node ]; then
    mkdir -p "$RES/rounds"
    for r in $(seq 2 "$ROUNDS"); do
        log "round $r of $ROUNDS: shoal bench and ONNX Runtime (load average $(load1))"
        if [ $((r % 2)) = 0 ]; then round_ort "$r"; round_shoal "$r"; else round_shoal "$r"; round_ort "$r"; fi
    done
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
$PY - "$RES/meta.json" <<EOF
import json, sys, datetime
try:
    shoal_isa = json.load(open("$RES/shoal.json")).get("cpu_isa", "?")
except Exception:
    shoal_isa = "?"
json.dump(dict(kind="cpu", machine="$CPU, $(nproc) cores ($ISA)", os="$OS",
               cpu_flags="$CPU_FLAGS", isa={"shoal (oneDNN)": shoal_isa,
                                            "PyTorch": "${ATEN_CPU_CAPABILITY:-best}",
                                            "ONNX Runtime": "best (no cap)"}, threads=$THREADS, iters=$ITERS,
               warmup=$WARMUP, rounds=$ROUNDS, config="$CONFIG",
               date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               load_before="$LOAD_BEFORE", load_after="$LOAD_AFTER",
               versions={"shoal": "$SHOAL_V ($GIT_V)", "gcc": "$GCC_V", "OpenBLAS": "$BLAS_V", "oneDNN": "$DNNL_V",
                         "PyTorch": "$TORCH_V", "onnxruntime-node": "$ORT_V", "node": "$NODE_V"},
               notes=[n for n in """$NOTE""".split("\n") if n]),
          open(sys.argv[1], "w"), indent=1)
EOF
log "load average after: $LOAD_AFTER"

$PY bench/table.py "$RES" --md "$RES/table.md"
if [ "$PLOT" = 1 ]; then
    $PY bench/plot.py "$RES" --out docs/benchmarks-cpu.svg || log "plot failed (matplotlib missing?)"
fi
