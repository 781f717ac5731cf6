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

# MediaPipe's hand landmarker with its REAL weights (npm @mediapipe/hands, fetched by make models).
echo
echo "--- MediaPipe hand landmarker, real weights (models/*.tflite from npm @mediapipe/hands)"
HAND_PHOTO=../shared/real-models/hands/left_hands.jpg
if [ ! -s models/hand_landmark_full.tflite ] || [ ! -s models/palm_detection_full.tflite ]; then
  echo "(skipped: make models could not fetch the hand models from npm)"
elif [ ! -s "$HAND_PHOTO" ]; then
  echo "(skipped: no photo with hands here; try: $SHOAL hands --config configs/hands.yaml --model hand PHOTO.jpg)"
else
  "$SHOAL" hands --config configs/hands.yaml --model hand "$HAND_PHOTO" |
    python3 -c 'import json,sys
for line in sys.stdin:
    r = json.loads(line)
    print("%s: %d palm(s), %d hand(s)" % (r["image"], len(r["palms"]), len(r["hands"])))
    for h in r["hands"]:
        w = h["landmarks"][0]
        print("  %s hand, presence %.2f, wrist at (%.0f, %.0f) px" % (h["handedness"], h["presence"], w[0], w[1]))'
fi

echo
echo "--- a camera stream: shoal serve on loopback, shoal stream sending the frames at 5 fps"
LOG="$BUILD/demo/serve.log"
"$SHOAL" serve --config configs/aiglasses.yaml --listen 127.0.0.1:0 --workers 2 --quiet > "$LOG" 2>&1 &
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
