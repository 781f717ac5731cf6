#!/usr/bin/env bash
# The 8 GB card, measured on the full model set (issue [2/6] section 3), in ONE device call:
#  1. exports the full set there (bench/gpu_export.py --set full: fp32 ONNX, opset 17, ~680 MB,
#     too big to carry; BN calibration on the GPU), writing PyTorch's weight cache with it;
#  2. shoal bench --budget none, all resident (NVML sampled every 100 ms);
#  3. the original system's way (bench/fullset_pytorch.py): fp16 and fp32 eager, each model
#     its own module, under an 8 GiB cap (co-resident count, cold start, NVML peak/mean, frames);
#  4. shoal bench --cycles 1000 under --budget 1GiB, auto (the smallest budget that runs every
#     mode), 2GiB, 4GiB, 8GiB, NVML sampled: device use must stay within budget + floor (the
#     floor: NVML's process bytes beyond shoal's own accounting in step 2); fp32 eager runs
#     between auto and 2GiB, so a short DEADLINE still measures what the targets need;
#  5. if time is left: PyTorch fp16 eager BN-folded, and fp16 + CUDA graphs (bench/pytorch_runner.py).
# Then bench/fullset_table.py prints the article's claims beside both measurements, the targets
# (PASS or MISSED with the ratio) and the budget runs, and draws the plot. Every step has a time
# limit from what is left of DEADLINE; a step that does not fit is skipped and the table says so.
# Writes to $OUT (the device tool): fullset-table.md, fullset.svg, fullset-results.tar.gz, the log.
#
#   usage (device tool): bash scripts/gpu-fullset.sh build-cu
#   carry: build-cu/shoal, .devlibs          env: DEADLINE (default 560 s), CYCLES (1000),
#   SKIP_EXPORT=1 (a second call on the same warm machine: models-full/ and the weight cache stay)
set -uo pipefail
T0=$(date +%s)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
B=${1:-build-cu}
if [ -d "$B" ]; then SHOAL=$B/shoal; else SHOAL=$B; fi
DEADLINE=${DEADLINE:-560}
CYCLES=${CYCLES:-1000}
CONFIG=configs/aiglasses-full.yaml
RES=${RES:-/tmp/gpu-fullset}
mkdir -p "$RES" && rm -f "$RES"/*.json "$RES"/*.smi "$RES"/*.err "$RES"/*.log "$RES"/*.md
exec > >(tee "$RES/gpu-fullset.log") 2>&1
log() { echo "[fullset $(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( DEADLINE - ($(date +%s) - T0) )); }
skip() { echo "{\"skipped\": \"$2\"}" > "$RES/$1.json"; log "skipped $1: $2"; }
# limit WANT: WANT seconds, or what is left less a 20 s reserve for the table; 0 = do not start
limit() { local l=$(( $(left) - 20 )); [ "$l" -lt 15 ] && { echo 0; return; }; [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }

. bench/gpu_env.sh
export SHOAL_BENCH_CACHE=/tmp/shoal-bench-weights
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$RES/gpu.txt"
python3 -c 'import torch; print("PyTorch", torch.__version__, "CUDA", torch.version.cuda)' | tee -a "$RES/gpu.txt"
LD_LIBRARY_PATH=$SHOAL_LD "$SHOAL" --version | tee -a "$RES/gpu.txt" || log "shoal does not start: $SHOAL"

# --- 1. models, and the same weights for PyTorch ----------------------------------------------
if [ -n "${SKIP_EXPORT:-}" ]; then
    log "SKIP_EXPORT: using models-full/ as it is"
else
log "exporting the full set (and writing PyTorch's weight cache with it)"
timeout -k 5 "$(limit 240)" python3 bench/gpu_export.py --set full --out models-full --threads 16 --calib-device cuda \
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
    smi_run "$name" env LD_LIBRARY_PATH="$SHOAL_LD" timeout -k 5 "$lim" "$SHOAL" bench --config "$CONFIG" --device cuda \
        --out "$RES/$name.json" "$@" > /dev/null 2> >(stamp > "$RES/$name.err")
    local rc=$?
    tail -n 2 "$RES/$name.err"
    [ -s "$RES/$name.json" ] || skip "$name" "shoal bench exited $rc: $(tail -n 1 "$RES/$name.err" | tr -d '"\\' | cut -c1-200)"
    save
}
run_shoal shoal 120 --iters 100 --warmup 10 --budget none

# --- 3. the original system's way ----------------------------------------------------------
run_pt() {   # NAME WANT_S script args...
    local name=$1 want=$2; shift 2
    local lim; lim=$(limit "$want")
    [ "$lim" = 0 ] && { skip "$name" "not run: the ${DEADLINE} s deadline was near"; return; }
    log "$* (limit ${lim} s)"
    timeout -k 5 "$lim" python3 "$@" > "$RES/$name.json" 2> "$RES/$name.err"
    local rc=$?
    if [ $rc -ne 0 ] || ! grep -q '^{' "$RES/$name.json"; then
        tail -n 3 "$RES/$name.err"
        skip "$name" "exited $rc$([ $rc = 124 ] && echo " (over ${lim} s)"): $(tail -n 1 "$RES/$name.err" | tr -d '"\\' | cut -c1-200)"
    fi
    save
}
# The targets' measurements first (fp16 eager is the memory target's peer; 1 GiB and the auto
# budget the swap-in one's), so a short call still answers them.
run_pt pt_fp16 100 bench/fullset_pytorch.py --dtype fp16 --cap-gib 8 --iters 50

# --- 4. budgets --------------------------------------------------------------------------------
budget_run() { run_shoal "budget_$1" 75 --mode all --iters 10 --warmup 2 --cycles "$CYCLES" --budget "$1"; }
budget_run 1GiB
budget_run auto
run_pt pt_fp32 110 bench/fullset_pytorch.py --dtype fp32 --cap-gib 8 --iters 50
for b in 2GiB 4GiB 8GiB; do budget_run "$b"; done

# --- 5. stronger PyTorch peers, as time allows -------------------------------------------------
run_pt pt_fp16_bnfold 90 bench/fullset_pytorch.py --dtype fp16 --bnfold --cap-gib 8 --iters 50
run_pt pt_graphs 110 bench/pytorch_runner.py --config fp16_cuda_graphs --set full --device cuda --iters 50 \
    --warmup 5 --threads 4 --models-dir models-full

log "table"
timeout -k 5 60 python3 bench/fullset_table.py "$RES" --md "$RES/fullset-table.md" --svg "$RES/fullset.svg"
if [ -n "${OUT:-}" ]; then
    cp "$RES/fullset-table.md" "$RES/fullset.svg" "$RES/gpu-fullset.log" "$OUT/" 2>/dev/null
    save
fi
log "done in $(( $(date +%s) - T0 )) s"
