#!/usr/bin/env bash
# int8 versions of the reference set: models/<name>.int8.onnx from models/<name>.onnx with
# `shoal quantize` (QDQ, per-channel int8 weights, min/max calibration on the frames in
# models/frames). Idempotent unless --force; needs models/ (scripts/make-models.sh) and a
# built shoal.
# Usage: scripts/quantize-models.sh [--shoal PATH] [--models DIR] [--out DIR] [--force]
#   --out: where the .int8.onnx files go (default: the models folder itself)
# env: QUANT_THREADS: `shoal quantize --threads` (default: every CPU; gpu-int8.sh passes 2, as
#   measured on the GPU hosts when thin conv bands still fell to oneDNN's reference kernel)
set -euo pipefail
cd "$(dirname "$0")/.."
SHOAL=""
DIR=models
OUT=""
FORCE=0
while [ $# -gt 0 ]; do
  case $1 in
    --shoal) SHOAL=$2; shift 2 ;;
    --models) DIR=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "quantize-models: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$SHOAL" ]; then
  for b in build-bench build; do [ -x "$b/shoal" ] && { SHOAL=$b/shoal; break; }; done
fi
[ -n "$SHOAL" ] && [ -x "$SHOAL" ] || { echo "quantize-models: no shoal binary (build it, or --shoal PATH)" >&2; exit 1; }
OUT=${OUT:-$DIR}
mkdir -p "$OUT"
[ -d "$DIR/frames" ] || { echo "quantize-models: $DIR/frames missing: run scripts/make-models.sh" >&2; exit 1; }
for n in blind_road obstacle shopping traffic_light hand; do
  [ -s "$DIR/$n.onnx" ] || { echo "quantize-models: $DIR/$n.onnx missing: run scripts/make-models.sh" >&2; exit 1; }
  if [ "$FORCE" = 0 ] && [ -s "$OUT/$n.int8.onnx" ] && [ "$OUT/$n.int8.onnx" -nt "$DIR/$n.onnx" ]; then
    continue
  fi
  echo "quantize-models: $n" >&2
  "$SHOAL" quantize --model "$DIR/$n.onnx" --images "$DIR/frames" --out "$OUT/$n.int8.onnx.tmp" --calib 32 ${QUANT_THREADS:+--threads $QUANT_THREADS}
  mv "$OUT/$n.int8.onnx.tmp" "$OUT/$n.int8.onnx"
done
