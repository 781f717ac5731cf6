#!/usr/bin/env bash
# `make demo`: the AIGlasses job on the built-in default config, on generated sample frames.
set -euo pipefail
BUILD=${1:-build}
cd "$(dirname "$0")/.."
SHOAL="$BUILD/shoal"
[ -x "$SHOAL" ] || { echo "demo: $SHOAL not built (run make build)"; exit 1; }
[ -f models/frames/sidewalk.jpg ] || /usr/bin/python3 tools/make_frames.py models/frames

cat <<'MSG'
================================================================================
 shoal demo — the AIGlasses model set on CPU
 NOTE: the reference models in models/ carry seeded RANDOM weights (made by
 tools/export_models.py), so their detections are meaningless: the demo shows the
 pipeline, the timings and the memory, not accuracy. To run real models, point the
 `path:` of each model in configs/aiglasses.yaml at your own exports (YOLO11-seg /
 YOLO11 detect / YOLOX ONNX files) and set their classes.
================================================================================
MSG
mkdir -p "$BUILD/demo"
for spec in navigation:sidewalk crossing:crossing shopping:shelf; do
  mode=${spec%%:*}; frame=${spec##*:}
  echo
  echo "--- mode $mode on models/frames/$frame.jpg"
  "$SHOAL" run --config configs/aiglasses.yaml --mode "$mode" \
      --draw "$BUILD/demo/$mode.png" "models/frames/$frame.jpg"
done
echo
echo "--- memory plan of the whole set (shoal plan)"
"$SHOAL" plan --config configs/aiglasses.yaml --svg "$BUILD/demo/plan.svg"
echo
echo "annotated frames and the arena picture are in $BUILD/demo/"
