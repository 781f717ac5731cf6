#!/usr/bin/env bash
# The 8 GB card, measured on the full model set (issue [2/6] section 3), in ONE device call:
#  1. exports the full set's four YOLOs there (bench/gpu_export.py --set full: fp32 ONNX, opset
#     17, ~670 MB, too big to carry; BN calibration on the GPU), writing PyTorch's weight cache;
#  2. shoal bench --budget none, all resident (NVML sampled every 100 ms);
#  3. the original system's way (bench/fullset_pytorch.py): fp16 and fp32 eager, each model
#     its own module, under an 8 GiB cap (co-resident count, cold start, NVML peak/mean, frames);
#  4. shoal bench --cycles 1000 under --budget 1GiB, auto (the smallest budget that runs every
#     mode), 2GiB, 4GiB, 8GiB, NVML sampled: device use must stay within budget + floor (the
#     floor: NVML's process bytes beyond shoal's own accounting in step 2); fp32 eager runs
#     between auto and 2GiB, so a short DEADLINE still measures what the targets need;
#  5. if time is left: PyTorch fp16 eager BN-folded, and fp16 + CUDA graphs (fullset_pytorch.py
#     --graphs).
# Between 3 and 4 (3b), the frame-level peer of [1/6] (bench/frame_pytorch.py --set full: fp16,
# CUDA graphs, camera frames to results on the device) beside shoal bench on the same frames.
# Then bench/fullset_table.py prints the article's claims beside both measurements, the targets
# (PASS or MISSED with the ratio) and the budget runs, and draws the plot. Every step has a time
# limit from what is left of DEADLINE; a step that does not fit is skipped and the table says so.
# Writes to $OUT (the device tool): fullset-table.md, fullset.svg, fullset-results.tar.gz, the log.
#
# The hand is MediaPipe's landmarker on every side (configs/aiglasses-full.yaml): shoal and the
# PyTorch peers read models/palm_detection_full.tflite and models/hand_landmark_full.tflite. The
# device has no network: carry them as models/*.tflite, or bench/hand-inputs/ (bench/run_cpu.sh
# makes it: both files and one_hand.png), whose copies go to models/ (sha256-checked by
# scripts/fetch-hand-models.sh). The hand sees a frame with one hand when there is one
# (HAND_FRAME, default bench/hand-inputs/one_hand.png, else made from ../shared's photo): shoal
# bench gets --image shopping=FRAME and the peers --hand-frame FRAME, so both run the palm
# detector and one landmark crop per frame. Without it both see the shopping model's input
# (noise: the palm detector alone on both sides) and the table says so.
#
# Without a GPU the same steps run on the CPU as a dry run (shoal --device cpu, the peers
# float32 eager without cap or NVML, fp16 and graphs skipped): a check of the whole path, its
# numbers no measurement.
#
#   usage (device tool): bash scripts/gpu-fullset.sh build-cu
#   carry: build-cu/shoal, .devlibs, and models/*.tflite or bench/hand-inputs
#   env: DEADLINE (default 560 s; 3600 without a GPU), CYCLES (1000), ITERS / WARMUP (shoal all
#   resident: 100 / 10; the budget runs take at most 10 / 2), PT_ITERS / PT_WARMUP (50 / 5),
#   HAND_FRAME, SKIP_EXPORT=1 (a second call on the same warm machine: models-full/ and the
#   weight cache stay), PYTHON (the interpreter with torch)
#   here (CPU dry run): SKIP_EXPORT=1 CYCLES=2 ITERS=1 WARMUP=0 PT_ITERS=1 PT_WARMUP=0 \
#       nice -n 10 bash scripts/gpu-fullset.sh build
#   (models-full/ from `make models SET=full`; the PyTorch weight cache is filled on first use)
set -uo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
B=${1:-build-cu}
if [ -d "$B" ]; then SHOAL=$B/shoal; else SHOAL=$B; fi
# Python with torch: the device's plain python3; Debian's here (the pyenv one has none)
PY=${PYTHON:-python3}
"$PY" -c 'import torch' 2>/dev/null || PY=/usr/bin/python3
TARGET=cpu
nvidia-smi -L >/dev/null 2>&1 && "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null &&
    TARGET=cuda
if [ "$TARGET" = cuda ]; then DEADLINE=${DEADLINE:-560}; else DEADLINE=${DEADLINE:-3600}; SLOW=10; fi
CYCLES=${CYCLES:-1000}
ITERS=${ITERS:-100}
WARMUP=${WARMUP:-10}
PT_ITERS=${PT_ITERS:-50}
PT_WARMUP=${PT_WARMUP:-5}
CONFIG=configs/aiglasses-full.yaml
RES=${RES:-/tmp/gpu-fullset}
mkdir -p "$RES" && rm -f "$RES"/*.json "$RES"/*.smi "$RES"/*.err "$RES"/*.log "$RES"/*.md
exec > >(tee "$RES/gpu-fullset.log") 2>&1
log() { echo "[fullset $(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
skip() { echo "{\"skipped\": \"$2\"}" > "$RES/$1.json"; log "skipped $1: $2"; }
# limit WANT: WANT seconds (x10 on the CPU), or what is left less a 20 s reserve for the table;
# 0 = do not start
limit() {
    local l=$(( $(left) - 20 )) w=$(( $1 * ${SLOW:-1} ))
    [ "$l" -lt 15 ] && { echo 0; return; }; [ "$w" -lt "$l" ] && echo "$w" || echo "$l"
}

. bench/gpu_env.sh
export SHOAL_BENCH_CACHE=${SHOAL_BENCH_CACHE:-/tmp/shoal-bench-weights}
if [ "$TARGET" = cuda ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$RES/gpu.txt"
else
    echo "no GPU: CPU dry run ($(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))" |
        tee "$RES/gpu.txt"
fi
"$PY" -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)' | tee -a "$RES/gpu.txt"
LD_LIBRARY_PATH=$SHOAL_LD "$SHOAL" --version | tee -a "$RES/gpu.txt" || log "shoal does not start: $SHOAL"

# --- the hand: MediaPipe's two .tflite files in models/, and the frame it sees ----------------
HAND_DIR=bench/hand-inputs
mkdir -p models
for f in palm_detection_full hand_landmark_full; do
    [ -s models/$f.tflite ] || cp "$HAND_DIR/$f.tflite" models/ 2>/dev/null ||
        log "models/$f.tflite missing (carry it, or bench/hand-inputs): the hand cannot load"
done
# with both files there it only checks their sha256 (a wrong one would try npm: no network here)
[ -s models/palm_detection_full.tflite ] && [ -s models/hand_landmark_full.tflite ] &&
    timeout 30 scripts/fetch-hand-models.sh models > /dev/null 2>&1 ||
    log "the hand's .tflite files are missing or fail their sha256: shoal's runs will fail to load the hand"
HAND_FRAME=${HAND_FRAME:-$HAND_DIR/one_hand.png}
if [ ! -s "$HAND_FRAME" ]; then
    HAND_FRAME=$RES/one_hand.png
    "$PY" bench/tflite_torch.py frame --out "$HAND_FRAME" 2>/dev/null || HAND_FRAME=""
fi
SHOAL_IMAGE=()
PT_HAND=()
if [ -n "$HAND_FRAME" ]; then
    SHOAL_IMAGE=(--image "shopping=$HAND_FRAME")
    PT_HAND=(--hand-frame "$HAND_FRAME")
    echo "MediaPipe's hand landmarker on every side (palm detector, then the landmark model on one crop per hand found); shoal's shopping mode and hand model on $(basename "$HAND_FRAME") (one hand), the PyTorch peers' hand on the same frame" > "$RES/hand.txt"
else
    echo "MediaPipe's hand landmarker on every side, on the shopping model's input (noise: no palm, so the palm detector alone on both sides); carry bench/hand-inputs for a frame with a hand" > "$RES/hand.txt"
fi
log "hand: $(cat "$RES/hand.txt")"

# --- 1. models, and the same weights for PyTorch ----------------------------------------------
if [ -n "${SKIP_EXPORT:-}" ]; then
    log "SKIP_EXPORT: using models-full/ as it is"
else
log "exporting the full set (and writing PyTorch's weight cache with it)"
timeout -k 5 "$(limit 240)" "$PY" bench/gpu_export.py --set full --out models-full --threads 16 --calib-device cuda \
    --weights-cache "$SHOAL_BENCH_CACHE" > "$RES/export.json" 2> "$RES/export.log"
log "export rc $?: $(head -c 400 "$RES/export.json" 2>/dev/null)"
grep "gpu_export:" "$RES/export.log"
fi

# Each line prefixed with the epoch time it arrived: the budget check keeps the NVML samples
# taken after shoal bench's "switch" phase began (before it, every model is resident on purpose).
stamp() { while IFS= read -r l; do printf '%s %s\n' "$(date +%s.%N)" "$l"; done; }
# NVML samples of every compute process, one short nvidia-smi call each ~100 ms: a sampler that
# is killed leaves nothing running (a long-lived `nvidia-smi -lms` behind a pipe outlived its
# reader on the device and held the step).
smi_sample() {
    while :; do
        local t; t=$(date +%s.%N)
        timeout -k 1 2 nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
            sed "s/^/$t /"
        sleep 0.1
    done
}
smi_run() {   # smi_run NAME cmd...
    local name=$1; shift
    smi_sample > "$RES/$name.smi" &
    local smi=$!
    "$@"
    local rc=$?
    kill -KILL $smi 2>/dev/null; wait $smi 2>/dev/null
    return $rc
}
# What is measured so far goes to $OUT after every step: a call cut short still returns it.
save() { [ -n "${OUT:-}" ] && tar -czf "$OUT/fullset-results.tar.gz" -C "$RES" . 2>/dev/null; true; }

# --- 2. shoal, all resident -----------------------------------------------------------------
run_shoal() {   # NAME WANT_S extra bench args...
    local name=$1 want=$2; shift 2
    local lim; lim=$(limit "$want")
    [ "$lim" = 0 ] && { skip "$name" "not run: the ${DEADLINE} s deadline was near"; return; }
    log "shoal bench $* (limit ${lim} s)"
    smi_run "$name" env LD_LIBRARY_PATH="$SHOAL_LD" timeout -k 5 "$lim" "$SHOAL" bench --config "$CONFIG" --device "$TARGET" \
        --out "$RES/$name.json" "${SHOAL_IMAGE[@]+"${SHOAL_IMAGE[@]}"}" "$@" > /dev/null 2> >(stamp > "$RES/$name.err")
    local rc=$?
    tail -n 2 "$RES/$name.err"
    [ -s "$RES/$name.json" ] || skip "$name" "shoal bench exited $rc: $(tail -n 1 "$RES/$name.err" | tr -d '"\\' | cut -c1-200)"
    save
}
run_shoal shoal 120 --iters "$ITERS" --warmup "$WARMUP" --budget none

# --- 3. the original system's way ----------------------------------------------------------
run_pt() {   # NAME WANT_S script args...
    local name=$1 want=$2; shift 2
    local lim; lim=$(limit "$want")
    [ "$lim" = 0 ] && { skip "$name" "not run: the ${DEADLINE} s deadline was near"; return; }
    log "$* (limit ${lim} s)"
    timeout -k 5 "$lim" "$PY" "$@" --device "$TARGET" --warmup "$PT_WARMUP" "${PT_HAND[@]+"${PT_HAND[@]}"}" > "$RES/$name.json" 2> "$RES/$name.err"
    local rc=$?
    if [ $rc -ne 0 ] || ! grep -q '^{' "$RES/$name.json"; then
        tail -n 3 "$RES/$name.err"
        skip "$name" "exited $rc$([ $rc = 124 ] && echo " (over ${lim} s)"): $(tail -n 1 "$RES/$name.err" | tr -d '"\\' | cut -c1-200)"
    fi
    save
}
# The targets' measurements first (fp16 eager is the memory target's peer; 1 GiB and the auto
# budget the swap-in one's), so a short call still answers them. The CPU runs float32 alone.
PT=bench/fullset_pytorch.py
on_gpu() { if [ "$TARGET" = cuda ]; then run_pt "$@"; else skip "$1" "no GPU (CPU dry run: float32 eager only)"; fi; }
on_gpu pt_fp16 100 $PT --dtype fp16 --cap-gib 8 --iters "$PT_ITERS"

# --- 3b. the frame-level peer of [1/6]: 8-bit camera frames to results, both sides ----------------
# bench/frame_pytorch.py --set full (fp16, BN folded, one CUDA graph per model, letterbox and
# decode on the device) beside shoal bench on the same three camera frames (models/frames).
run_frames() {
    local lim; lim=$(limit 100)
    [ "$lim" = 0 ] && { skip shoal_frames "not run: the ${DEADLINE} s deadline was near"; skip pt_frame "not run"; return; }
    [ "$TARGET" = cuda ] || { skip shoal_frames "no GPU"; skip pt_frame "no GPU (CPU dry run)"; return; }
    if [ ! -s models/frames/sidewalk.jpg ]; then
        "$PY" tools/make_frames.py models/frames > /dev/null 2>&1 ||
            { mkdir -p models/frames && cp .devdata/frames/* models/frames/ 2>/dev/null; }
    fi
    [ -s models/frames/sidewalk.jpg ] || { skip shoal_frames "no camera frames (models/frames)"; skip pt_frame "no camera frames"; return; }
    local img=(--image navigation=models/frames/sidewalk.jpg --image crossing=models/frames/crossing.jpg
               --image shopping=models/frames/shelf.jpg)
    log "frame-level: shoal bench and bench/frame_pytorch.py --set full on models/frames (limit ${lim} s)"
    LD_LIBRARY_PATH="$SHOAL_LD" timeout -k 5 $(( lim / 3 )) "$SHOAL" bench --config "$CONFIG" --device "$TARGET" \
        --iters "$PT_ITERS" --warmup "$PT_WARMUP" --budget none "${img[@]}" --out "$RES/shoal_frames.json" \
        > /dev/null 2> "$RES/shoal_frames.err" || skip shoal_frames "shoal bench exited $?: $(tail -n 1 "$RES/shoal_frames.err" | tr -d '"\\' | cut -c1-200)"
    timeout -k 5 $(( lim * 2 / 3 )) "$PY" bench/frame_pytorch.py --set full --config "$CONFIG" --device "$TARGET" \
        --frames jpg --threads 4 --iters "$PT_ITERS" --warmup "$PT_WARMUP" --out "$RES/pt_frame.json" \
        > /dev/null 2> "$RES/pt_frame.err" || skip pt_frame "exited $?: $(tail -n 1 "$RES/pt_frame.err" | tr -d '"\\' | cut -c1-200)"
    save
}
run_frames

# --- 4. budgets --------------------------------------------------------------------------------
budget_run() { run_shoal "budget_$1" 75 --mode all --iters $(( ITERS < 10 ? ITERS : 10 )) --warmup $(( WARMUP < 2 ? WARMUP : 2 )) \
    --cycles "$CYCLES" --budget "$1"; }
budget_run 1GiB
budget_run auto
run_pt pt_fp32 110 $PT --dtype fp32 --cap-gib 8 --iters "$PT_ITERS"
for b in 2GiB 4GiB 8GiB; do budget_run "$b"; done

# --- 5. stronger PyTorch peers, as time allows -------------------------------------------------
on_gpu pt_fp16_bnfold 90 $PT --dtype fp16 --bnfold --cap-gib 8 --iters "$PT_ITERS"
on_gpu pt_graphs 110 $PT --dtype fp16 --bnfold --graphs --cap-gib 8 --iters "$PT_ITERS"

log "table"
timeout -k 5 60 "$PY" bench/fullset_table.py "$RES" --md "$RES/fullset-table.md" --svg "$RES/fullset.svg"
if [ -n "${OUT:-}" ]; then
    cp "$RES/fullset-table.md" "$RES/fullset.svg" "$RES/gpu-fullset.log" "$OUT/" 2>/dev/null
    save
fi
log "done in $(( $(date +%s) - T0 )) s"
