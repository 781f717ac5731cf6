#!/usr/bin/env bash
# Generates the AIGlasses reference model set with tools/export_models.py. Idempotent: does
# nothing when every expected file is present.
#   default (SET=small): models/ (the four YOLOs and the MobileNetV3 hand stand-in some tests
#   load), plus MediaPipe's hand models (scripts/fetch-hand-models.sh);
#   --set full (make models SET=full): models-full/, the original system's sizes (YOLOv8x-seg,
#   YOLO11l-seg, YOLOv8l, YOLOv8m; ~670 MB of ONNX), after checking the architectures'
#   parameter counts against ultralytics' published ones (export_models.py --check-params).
#   Its hand is MediaPipe's too: the same two .tflite files in models/, fetched here as well.
# Usage: scripts/make-models.sh [--set small|full] [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3   # Debian's python: torch 1.13, onnx 1.12, numpy
SET=small
FORCE=0
while [ $# -gt 0 ]; do
  case $1 in
    --set) SET=$2; shift 2 ;;
    --force) FORCE=1; shift ;;
    *) echo "make-models: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $SET in small) OUT=models ;; full) OUT=models-full ;; *) echo "make-models: --set small|full" >&2; exit 2 ;; esac
names=(blind_road obstacle shopping traffic_light hand)
[ "$SET" = full ] && names=(blind_road obstacle shopping traffic_light)   # the hand is MediaPipe's
declare -A outs=([blind_road]="output0 output1" [obstacle]="output0 output1"
                 [shopping]=output0 [traffic_light]=output0 [hand]=output0)
missing=0
[ "$FORCE" = 1 ] && missing=1
[ -f "$OUT/MANIFEST.json" ] || missing=1
for n in "${names[@]}"; do
  for f in "$n.onnx" "$n.input.npy"; do [ -s "$OUT/$f" ] || missing=1; done
  for o in ${outs[$n]}; do [ -s "$OUT/$n.$o.npy" ] || missing=1; done
done
# MediaPipe's hand models come ready-made from npm (sha256-checked), not from the exporter; both
# configs read them from models/. Without npm or the registry the tests that need them skip, so
# a failure here is not fatal.
scripts/fetch-hand-models.sh models || echo "make-models: MediaPipe hand models not fetched; their tests will skip" >&2
if [ "$SET" = small ] && [ ! -s "$OUT/frames/sidewalk.jpg" ]; then
  # the camera frames the demo, the frame benchmarks and the run path's test feed
  "$PY" tools/make_frames.py "$OUT/frames"
fi
if [ "$missing" -eq 0 ]; then
  echo "make-models: $OUT/ is complete"
  exit 0
fi
if [ "$SET" = full ]; then
  "$PY" tools/export_models.py --check-params
fi
start=$(date +%s)
"$PY" tools/export_models.py --set "$SET" --out "$OUT" --threads "${SHOAL_EXPORT_THREADS:-$(nproc)}"
echo "make-models: export took $(( $(date +%s) - start )) s"
