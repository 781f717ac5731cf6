#!/usr/bin/env bash
# One device call for the closing GPU numbers: the full benchmark (bench/run_gpu.sh), then
#  - issue [6/7]: `shoal monitor` beside nvidia-smi in the same call, and the report;
#  - issue [4/7] must-show 3: a budgeted run cycling the modes 1,000 times while nvidia-smi
#    samples the process's device memory every 100 ms.
# and, after the benchmark (which exports the models), the GPU tests (must-show 1 and 4;
# SKIP_TESTS=1 leaves them out).
# Usage (device tool): bash scripts/gpu-final.sh build-cu
#   carry: build-cu/shoal, build-cu/tests/cuda/test_cuda_{ops,models,runtime,views,frame_ops}, .devlibs, .devdata
set -uo pipefail
B=${1:-build-cu}
cd "$(dirname "$0")/.."
# PT_CONFIGS narrows the PyTorch side (e.g. "fp16_eager_bnfold fp16_cuda_graphs": the two anchors)
bash bench/run_gpu.sh -b "$B" --deadline ${BENCH_DEADLINE:-360} -n ${BENCH_ITERS:-100} ${PT_CONFIGS:+--configs "$PT_CONFIGS"}
W=/tmp/gpu-final
mkdir -p $W
CUDNN=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null)
DEV=/tmp/shoal-devlibs
export LD_LIBRARY_PATH="${CUDNN:+$CUDNN/lib:}$DEV/usr/lib/x86_64-linux-gnu:$DEV/usr/lib/x86_64-linux-gnu/openblas-pthread:$DEV/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
S=$B/shoal
C=configs/aiglasses.yaml

if [ -z "${SKIP_TESTS:-}" ]; then
echo "=== GPU tests (issue [4/7] must-show 1 and 4): ops, ops with every conv on the own kernel, models, runtime, views"
export SHOAL_REAL_MODELS=$PWD/.devdata/real-models SHOAL_MODELS=$PWD/models SHOAL_GOLDEN=$PWD/.devdata/golden SHOAL_CONFIG=$PWD/$C
T=$B/tests/cuda
mkdir -p $W/tests
$T/test_cuda_ops > $W/tests/ops.log 2>&1; echo "test_cuda_ops rc $? ($(grep -E 'op cases failed' $W/tests/ops.log))"
SHOAL_CUDA_IGEMM=1 $T/test_cuda_ops > $W/tests/ops-own.log 2>&1; echo "test_cuda_ops, own conv forced rc $? ($(grep -E 'op cases failed' $W/tests/ops-own.log))"
$T/test_cuda_models > $W/tests/models.log 2>&1; echo "test_cuda_models rc $?"
grep -E "^[a-z_0-9]+(\.onnx)? +[0-9]|golden|models failed" $W/tests/models.log
$T/test_cuda_runtime > $W/tests/runtime.log 2>&1; echo "test_cuda_runtime rc $?"
grep -E "^(mode|oom|all|lanes|concurrent)" $W/tests/runtime.log
[ -x $T/test_cuda_views ] && { $T/test_cuda_views > $W/tests/views.log 2>&1; echo "test_cuda_views rc $?"; }
[ -x $T/test_cuda_frame_ops ] && { $T/test_cuda_frame_ops > $W/tests/frame_ops.log 2>&1; echo "test_cuda_frame_ops rc $?";
  grep -E "^  |SHOAL_TEST_SEED|FAILED|PASSED|differ|equal \(<" $W/tests/frame_ops.log; }
fi

if [ -z "${SKIP_MONITOR:-}" ]; then
echo "=== monitor beside nvidia-smi"
timeout 40 $S monitor --config $C --device cuda --json --interval 1 --duration 6 > $W/monitor.jsonl 2> $W/monitor.err &
MON=$!
sleep 3
for i in 1 2 3 4 5 6; do
  echo "$(date +%s.%N) $(nvidia-smi --query-gpu=memory.total,memory.used,memory.free --format=csv,noheader,nounits | head -1)"
  sleep 1
done > $W/smi.txt
wait $MON
timeout 40 $S report --config $C --device cuda --cycles 3 --out $W/report.json > /dev/null 2> $W/report.err
fi

echo "=== 1,000 budgeted mode cycles"
nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits -lms 100 > $W/cycle-smi.txt &
SMI=$!
timeout ${CYCLES_TIMEOUT:-130} $S bench --config $C --device cuda --mode all --iters 5 --warmup 2 --cycles 1000 --budget auto \
   --json > $W/cycle.json 2> $W/cycle.err
echo "bench exit $?"
kill $SMI 2>/dev/null; wait $SMI 2>/dev/null
python3 - $W <<'PY'
import json, sys, os
W = sys.argv[1]
try:
    s = [json.loads(l) for l in open(W + "/monitor.jsonl") if l.strip()]
    smi = [l.split() for l in open(W + "/smi.txt")]
    for a in s:
        g = a["gpus"][0]
        from datetime import datetime
        t = datetime.fromisoformat(a["time"].replace("Z", "+00:00")).timestamp()
        best = min(smi, key=lambda r: abs(float(r[0]) - t))
        used_smi = float(best[2].strip(","))
        used = g["used_bytes"] / 2**20
        print("monitor used %.0f MiB, nvidia-smi %.0f MiB, diff %.2f%%" % (used, used_smi, 100 * abs(used - used_smi) / used_smi))
except Exception as e:
    print("monitor comparison failed:", e)
try:
    r = json.load(open(W + "/report.json"))
    print("report process:", json.dumps(r.get("process")))
except Exception as e:
    print("report failed:", e)
try:
    c = json.load(open(W + "/cycle.json"))
    print("cycle json keys:", list(c.keys())[:30])
    print(json.dumps({k: c[k] for k in c if "switch" in k or "budget" in k or "memory" in k}, indent=1)[:3000])
    used = [float(l.split(",")[1]) for l in open(W + "/cycle-smi.txt") if l.count(",") == 1]
    print("nvidia-smi samples during the cycles: %d, max process MiB %.0f" % (len(used), max(used) if used else -1))
except Exception as e:
    print("cycle analysis failed:", e)
PY
tar czf ${OUT:-/tmp}/final.tgz -C $W .
