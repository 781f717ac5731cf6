#!/bin/sh
# One device call for CUDA backend work: the reference models (exported with the machine's
# PyTorch), the CUDA op/model/runtime tests, then `shoal bench` under each A/B variant on the
# same card: default, SHOAL_CUDA_PDL=0, SHOAL_CUDA_STREAMS=4, SHOAL_CUDA_IGEMM=0 (+ AB_EXTRA).
#   carry: build-cu/shoal, build-cu/tests/cuda, .devlibs, .devdata (see scripts/gpu-check.sh)
#   env: AB="v1 v2 ..." replaces the variant list (see below); SKIP_TESTS=1; TESTS=dir of the tests
CUDNN=$(python3 -c 'import nvidia.cudnn, os; print(list(nvidia.cudnn.__path__)[0])' 2>/dev/null)
DEV=/tmp/shoal-devlibs; mkdir -p $DEV; for f in .devlibs/*.tar.xz; do tar -xJf $f -C $DEV; done
export LD_LIBRARY_PATH="$CUDNN/lib:$DEV/usr/lib/x86_64-linux-gnu:$DEV/usr/lib/x86_64-linux-gnu/openblas-pthread:$DEV/lib/x86_64-linux-gnu"
export SHOAL_REAL_MODELS=$PWD/.devdata/real-models SHOAL_MODELS=$PWD/models SHOAL_GOLDEN=$PWD/.devdata/golden SHOAL_CONFIG=$PWD/configs/aiglasses.yaml
if [ ! -s models/obstacle.onnx ]; then
  t0=$(date +%s)
  PYTHONUNBUFFERED=1 python3 - models > $OUT/export.log 2>&1 <<'PY'
import functools, inspect, runpy, sys, torch
exp = torch.onnx.export
if "dynamo" in inspect.signature(exp).parameters:
    torch.onnx.export = functools.partial(exp, dynamo=False)
sys.argv = ["export_models.py", "--out", sys.argv[1], "--threads", "16"]
runpy.run_path("tools/export_models.py", run_name="__main__")
PY
  echo "export rc $? $(( $(date +%s) - t0 )) s"
fi
B=${TESTS:-build-cu/tests/cuda}
if [ -z "${SKIP_TESTS:-}" ]; then
$B/test_cuda_ops > $OUT/ops.log 2>&1; echo "ops rc $?"; grep -E "FAIL|failed" $OUT/ops.log
SHOAL_CUDA_IGEMM=1 $B/test_cuda_ops > $OUT/ops1.log 2>&1; echo "ops (own conv forced) rc $?"; grep -E "FAIL|failed" $OUT/ops1.log
for v in ${OPS_AB:-}; do   # OPS_AB="ENV=x,ENV2=y ...": the op tests again under each
  env $(echo "$v" | tr ',' ' ') $B/test_cuda_ops > $OUT/ops-ab.log 2>&1; echo "ops ($v) rc $?"; grep -E "FAIL|failed" $OUT/ops-ab.log
done
$B/test_cuda_models > $OUT/models.log 2>&1; echo "models rc $?"; grep -E "onnx|FAIL|failed|pan_seg " $OUT/models.log
$B/test_cuda_runtime > $OUT/runtime.log 2>&1; echo "runtime rc $?"; tail -${RUNTIME_TAIL:-12} $OUT/runtime.log
fi
# TIMELINE="v1 v2 ...": per-step timelines of obstacle and blind_road (sh_cuda_timeline) under
# each variant (same syntax as AB, env only) into $OUT/timeline.log, critical paths printed
if [ -n "${TIMELINE:-}" ]; then
  mkdir -p /tmp/tlm && ln -sf $PWD/models/obstacle.onnx $PWD/models/blind_road.onnx /tmp/tlm/
  for v in $TIMELINE; do
    envs=$(echo "$v" | tr ',' ' '); [ "$envs" = default ] && envs=""
    echo "=== timeline $v" | tee -a $OUT/timeline.log
    env $envs SHOAL_CUDA_TIMELINE=1 SHOAL_REAL_MODELS=/nonexistent SHOAL_MODELS=/tmp/tlm $B/test_cuda_models 2>>$OUT/timeline.log | grep -E "onnx|gpu "
    grep -A0 "tl-critical" $OUT/timeline.log | tail -2
  done
fi
# AB: variants, each "ENV=1,ENV2=x" or "ENV=1,--bench-flag,value" (commas separate; the first
# word starting with '-' begins the bench arguments); "default" for none
for v in ${AB:-default SHOAL_CUDA_PDL=0 SHOAL_CUDA_STREAMS=4 SHOAL_CUDA_IGEMM=0}; do
  envs=""; args=""
  for w in $(echo "$v" | tr ',' ' '); do
    case $w in default) ;; -*) args="$args $w" ;; *) if [ -n "$args" ]; then args="$args $w"; else envs="$envs $w"; fi ;; esac
  done
  echo "=== shoal bench $v"
  env $envs ./build-cu/shoal bench --config configs/aiglasses.yaml --device cuda --iters 100 --warmup 20 $args 2>/dev/null | grep -E "load:|  mode |process:|arena"
done
