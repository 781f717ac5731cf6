#!/usr/bin/env bash
# The hand alone on the CPU, the three runners interleaved: MediaPipe's palm detector then its
# landmark model on one crop, per frame, in shoal (configs/hands.yaml on the one-hand frame:
# the hand model's "infer"), PyTorch fp32 eager and ONNX Runtime (the same networks through
# bench/tflite_torch.py, see docs/benchmarks.md). On a machine others load, running the three
# in turn for several rounds and keeping each runner's best round median compares them under
# about the same load, which one long run per runner (bench/run_cpu.sh) does not.
#
#   bench/hand_cpu.sh [-b BUILD_DIR] [-r ROUNDS] [-n ITERS] [-t THREADS]
#
# Needs bench/hand-inputs (bench/run_cpu.sh makes it, or `python3 bench/tflite_torch.py export
# --out bench/hand-inputs` and `... frame --out bench/hand-inputs/one_hand.png`), models/ and
# bench/node_modules. Prints one line per runner and round, then the best medians.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
PY=/usr/bin/python3
BUILD=build
ROUNDS=3
ITERS=20
THREADS=2
while [ $# -gt 0 ]; do
    case $1 in
        -b) BUILD=$2; shift 2 ;;
        -r) ROUNDS=$2; shift 2 ;;
        -n) ITERS=$2; shift 2 ;;
        -t) THREADS=$2; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "hand_cpu.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done
H=bench/hand-inputs
for f in "$H/one_hand.png" "$H/hand_palm.onnx" "$H/hand_landmark.onnx" "$BUILD/shoal"; do
    [ -e "$f" ] || { echo "hand_cpu.sh: $f missing (see the header)" >&2; exit 1; }
done
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for r in $(seq "$ROUNDS"); do
    echo "load $(cut -d' ' -f1 /proc/loadavg)" >&2
    "$BUILD/shoal" bench --config configs/hands.yaml --device cpu --threads "$THREADS" --iters "$ITERS" --warmup 3 \
        --budget none --image "$H/one_hand.png" --json > "$TMP/shoal.$r.json" 2>/dev/null
    $PY bench/pytorch_runner.py --config fp32_eager --device cpu --models hand --threads "$THREADS" \
        --iters "$ITERS" --warmup 3 --hand-inputs "$H" > "$TMP/pytorch.$r.json"
    node bench/ort_runner.js --only hand --hand "$H" --threads "$THREADS" --iters "$ITERS" --warmup 3 \
        > "$TMP/ort.$r.json"
done
$PY - "$TMP" "$ROUNDS" <<'PYEOF'
import json, os, sys
d, rounds = sys.argv[1], int(sys.argv[2])
best = {}
for r in range(1, rounds + 1):
    s = json.load(open(os.path.join(d, f"shoal.{r}.json")))
    hands = s["models"]["hand"]
    rows = {"shoal (infer)": hands["infer_ms"]["median"], "shoal (whole frame)": hands["latency_ms"]["median"],
            "PyTorch fp32 eager": json.load(open(os.path.join(d, f"pytorch.{r}.json")))["per_model"]["hand"]["median_ms"],
            "ONNX Runtime": json.load(open(os.path.join(d, f"ort.{r}.json")))["per_model"]["hand"]["median_ms"]}
    print(f"round {r}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in rows.items()))
    for k, v in rows.items():
        best[k] = min(best.get(k, v), v)
print("best round medians: " + ", ".join(f"{k} {v:.1f} ms" for k, v in best.items()))
ours = best["shoal (infer)"]
print("theirs/ours (infer): " + ", ".join(f"{k} {best[k] / ours:.2f}x" for k in ("PyTorch fp32 eager", "ONNX Runtime")))
PYEOF
