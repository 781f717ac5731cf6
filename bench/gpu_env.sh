# Sourced by bench/run_gpu.sh and scripts/gpu-fullset.sh on the GPU machine: sets SHOAL_LD, the
# LD_LIBRARY_PATH under which a shoal binary built elsewhere runs there: cuDNN 9 from PyTorch's
# Python environment (the system one may be older than what it was built against), then the
# Debian libraries carried in .devlibs (devlibs.tar.xz, then devlibs-extra.tar.xz: oneDNN,
# libgomp, gnutls, ...: every non-libc library the binary links, from the build machine),
# unpacked into /tmp/shoal-devlibs. Only shoal's commands get SHOAL_LD: python keeps its own.
CUDNN=$(python3 -c 'import nvidia.cudnn, os; print(os.path.dirname(nvidia.cudnn.__file__))' 2>/dev/null)
if [ -z "$CUDNN" ] || [ ! -d "$CUDNN/lib" ]; then
    NV=$(python3 -c 'import nvidia, os; print(list(nvidia.__path__)[0])' 2>/dev/null)
    L=$(find "${NV:-/nonexistent}" -name 'libcudnn.so.9' 2>/dev/null | head -1)
    CUDNN=${L:+$(dirname "$(dirname "$L")")}
fi
DEV=/tmp/shoal-devlibs
for f in .devlibs/devlibs.tar.xz .devlibs/devlibs-extra.tar.xz; do
    [ -f $f ] && mkdir -p $DEV && tar -xJf $f -C $DEV
done
SHOAL_LD="${CUDNN:+$CUDNN/lib:}$DEV/usr/lib/x86_64-linux-gnu:$DEV/usr/lib/x86_64-linux-gnu/openblas-pthread:$DEV/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
