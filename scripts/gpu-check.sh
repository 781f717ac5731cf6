#!/bin/sh
# GPU check for the CUDA backend, run on the GPU machine from a build directory made elsewhere
# (nothing is built here). Sets up cuDNN 9 from PyTorch's Python environment and the Debian
# shared libraries the binaries need (.devlibs/devlibs.tar.xz, made with apt-get download +
# dpkg -x on the build machine), runs the CUDA tests and the benchmark when it exists, and
# prints their tables. Logs go to $OUT when set.
#
#   usage: scripts/gpu-check.sh [build-dir]        (default build-gpu)
#   env:   SHOAL_REAL_MODELS (default .devdata/real-models, else ../shared/real-models)
#          SHOAL_MODELS      (default models/)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
B=${1:-$ROOT/build-gpu}
LOG=${OUT:-/tmp}
cd "$ROOT" || exit 1

# cuDNN from PyTorch's environment (the system one may be older than what we built against)
CUDNN=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null)
if [ -z "$CUDNN" ] || [ ! -d "$CUDNN/lib" ]; then
    NV=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
    L=$(find "${NV:-/nonexistent}" -name 'libcudnn.so.9' 2>/dev/null | head -1)
    CUDNN=${L:+$(dirname "$(dirname "$L")")}
fi
echo "cuDNN from: ${CUDNN:-system}/lib"
DEV=/tmp/shoal-devlibs
if [ -f .devlibs/devlibs.tar.xz ]; then
    mkdir -p $DEV && tar -xJf .devlibs/devlibs.tar.xz -C $DEV
fi
export LD_LIBRARY_PATH="${CUDNN:+$CUDNN/lib:}$DEV/usr/lib/x86_64-linux-gnu:$DEV/usr/lib/x86_64-linux-gnu/openblas-pthread:$DEV/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
if [ -z "${SHOAL_REAL_MODELS:-}" ]; then
    if [ -d .devdata/real-models ]; then SHOAL_REAL_MODELS=$ROOT/.devdata/real-models
    else SHOAL_REAL_MODELS=$ROOT/../shared/real-models; fi
fi
export SHOAL_REAL_MODELS SHOAL_MODELS=${SHOAL_MODELS:-$ROOT/models}

nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv 2>/dev/null
[ -f "$B/cuda-ptxas-report.txt" ] && {
    echo "ptxas (sm_90): $(grep -c 'stack frame' "$B/cuda-ptxas-report.txt") kernels;" \
         "max stack frame $(grep -o '[0-9]* bytes stack frame' "$B/cuda-ptxas-report.txt" | sort -n | tail -1)"; }

status=0
summary=""
for t in test_cuda_floor test_cuda_ops test_cuda_models; do
    exe="$B/tests/cuda/$t"
    if [ ! -x "$exe" ]; then summary="$summary\n$t: missing"; status=1; continue; fi
    missing=$(ldd "$exe" | grep 'not found')
    [ -n "$missing" ] && echo "$t: $missing"
    echo "=== $t"
    "$exe" > "$LOG/$t.log" 2>&1
    rc=$?
    cat "$LOG/$t.log"
    case $rc in 0) r=pass ;; 77) r=skip ;; *) r="FAIL ($rc)"; status=1 ;; esac
    summary="$summary\n$t: $r"
done

# The benchmark (issue [5/7]) once it exists.
if [ -x "$B/shoal" ] && "$B/shoal" bench --help >/dev/null 2>&1 && [ -f configs/aiglasses.yaml ]; then
    echo "=== shoal bench"
    "$B/shoal" bench --config configs/aiglasses.yaml --device cuda 2>&1 | tee "$LOG/bench.log"
fi
printf "=== summary$summary\n"
exit $status
