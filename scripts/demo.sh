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
 NOTE: the four YOLO reference models in models/ carry seeded RANDOM weights (made by
 tools/export_models.py), so their detections are meaningless: the demo shows the
 pipeline, the timings and the memory, not accuracy. To run real models, point the
 `path:` of each model in configs/aiglasses.yaml at your own exports (YOLO11-seg /
 YOLO11 detect / YOLOX ONNX files) and set their classes. The hand model is
 MediaPipe's real hand landmarker (npm @mediapipe/hands, fetched by make models).
================================================================================
MSG
mkdir -p "$BUILD/demo"
CONFIG=configs/aiglasses.yaml
if [ ! -s models/hand_landmark_full.tflite ] || [ ! -s models/palm_detection_full.tflite ]; then
  # No npm or registry here: the default config cannot load its hand model, so the demo runs
  # a copy of it whose hand is the random-weight stand-in, and says so.
  CONFIG="$BUILD/demo/aiglasses-standin.yaml"
  /usr/bin/python3 - "$PWD" "$CONFIG" <<'PY'
import re, sys
root, out = sys.argv[1], sys.argv[2]
text = open(root + "/configs/aiglasses.yaml").read().replace("../models/", root + "/models/")
standin = ("  hand:   # STAND-IN: random-weight MobileNetV3 (MediaPipe's hand models were not fetched)\n"
           "    path: %s/models/hand.onnx\n    task: landmarks\n    input_size: 224\n    letterbox: stretch\n"
           "    scale: 0.00392156862745098\n    mean: [0.485, 0.456, 0.406]\n    std: [0.229, 0.224, 0.225]\n"
           "    priority: 4\n" % root)
text, n = re.subn(r"^  hand:\n(?:    .*\n)*", standin, text, flags=re.M)
assert n == 1, "configs/aiglasses.yaml: no hand model to replace"
open(out, "w").write(text)
PY
  cat <<MSG
********************************************************************************
 STAND-IN: models/hand_landmark_full.tflite and palm_detection_full.tflite are
 missing (make models fetches them from npm; it could not). The model 'hand' below
 is the random-weight MobileNetV3 stand-in (models/hand.onnx), NOT MediaPipe's hand
 landmarker. Config: $CONFIG
********************************************************************************
MSG
fi
for spec in navigation:sidewalk crossing:crossing shopping:shelf; do
  mode=${spec%%:*}; frame=${spec##*:}
  echo
  echo "--- mode $mode on models/frames/$frame.jpg"
  "$SHOAL" run --config "$CONFIG" --mode "$mode" \
      --draw "$BUILD/demo/$mode.png" "models/frames/$frame.jpg"
done
echo
echo "--- memory plan of the whole set (shoal plan)"
"$SHOAL" plan --config "$CONFIG" --svg "$BUILD/demo/plan.svg"
echo
echo "annotated frames and the arena picture are in $BUILD/demo/"

# MediaPipe's hand landmarker with its REAL weights, as the shopping mode runs it: the photo
# twice, as two frames of one video (the second is tracked from the first one's hands).
echo
echo "--- mode shopping on MediaPipe's own hand photo, twice (frame 2 tracked from frame 1)"
HAND_PHOTO=../shared/real-models/hands/left_hands.jpg
if [ "$CONFIG" != configs/aiglasses.yaml ]; then
  echo "(skipped: the hand models were not fetched)"
elif [ ! -s "$HAND_PHOTO" ]; then
  echo "(skipped: no photo with hands here; try: $SHOAL run --mode shopping PHOTO.jpg PHOTO.jpg)"
else
  "$SHOAL" run --config "$CONFIG" --mode shopping --draw "$BUILD/demo/hands.png" "$HAND_PHOTO" "$HAND_PHOTO"
fi

echo
echo "--- a camera stream: shoal serve on loopback, shoal stream sending the frames at 5 fps"
LOG="$BUILD/demo/serve.log"
"$SHOAL" serve --config "$CONFIG" --listen 127.0.0.1:0 --workers 2 --quiet > "$LOG" 2>&1 &
SERVER=$!
trap 'kill -KILL $SERVER 2>/dev/null' EXIT
PORT=""
for _ in $(seq 600); do
  PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$LOG" | head -n1 | cut -d: -f2 || true)
  [ -n "$PORT" ] && curl -s -m 2 "http://127.0.0.1:$PORT/readyz" | grep -q true && break
  kill -0 $SERVER 2>/dev/null || { cat "$LOG"; exit 1; }
  sleep 0.2
done
"$SHOAL" stream --server "127.0.0.1:$PORT" --frames models/frames --fps 5 --duration 5 --mode crossing |
  cut -c1-160
kill -TERM $SERVER
wait $SERVER
trap - EXIT
