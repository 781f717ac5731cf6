#!/usr/bin/env bash
# Installs the Debian packages shoal builds, tests and demos with. Idempotent: it asks apt
# only for what is missing, so a second run costs a dpkg query.
set -euo pipefail
PKGS=(build-essential cmake pkg-config
      protobuf-c-compiler libprotobuf-c-dev libonnx-dev
      libyaml-dev libcjson-dev libstb-dev libturbojpeg0-dev libmicrohttpd-dev nettle-dev
      libopenblas-dev libopenblas0-pthread libdnnl-dev libxxhash-dev libcmocka-dev libzip-dev
      libonnx-testdata libwebsockets-dev curl wrk clang libclang-rt-14-dev prometheus haproxy ffmpeg python3-yaml python3-kubernetes
      python3-numpy python3-pil python3-torch python3-torchvision python3-onnx)
# npm (make models fetches MediaPipe's hand models with it): the machine's own Node.js may ship
# npm outside Debian's packages, and Debian's npm conflicts with that nodejs; ask apt only when
# no npm command exists.
command -v npm >/dev/null 2>&1 || PKGS+=(npm)
# kubectl (the deploy_k8s test reads the manifests with it): Debian's kubernetes-client, unless
# the machine has a kubectl from elsewhere, whose package would conflict with it.
command -v kubectl >/dev/null 2>&1 || PKGS+=(kubernetes-client)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
