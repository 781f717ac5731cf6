#!/usr/bin/env bash
# MediaPipe's own hand pipeline beside shoal's, on the same .tflite files and the same images:
# the npm @mediapipe/hands solution (its wasm, graph and models, unchanged) runs in headless
# Chromium (WebGL through SwiftShader), shoal runs `shoal hands` with configs/hands.yaml, and
# tests/hands-wasm/hands_wasm.py compares them frame by frame (docs/hands.md, "MediaPipe's own
# pipeline as a second reference").
#
# Usage: scripts/hands-mediapipe-check.sh [--build DIR] [--work DIR] [--inference cpu|gl] [--timeout S]
#   --build      shoal's build folder (default build/)
#   --work       where the tarball, the unpacked solution and the run's files go
#                (default BUILD/hands-mediapipe; the tarball is kept there between runs)
#   --inference  the solution's TFLite inference: cpu (XNNPACK in wasm, float32; default) or gl
#                (its WebGL delegate, what the npm class picks by default off Apple devices)
#   --timeout    seconds for the Chromium run (default 300)
# Exit status: 0 every frame agrees, 1 a comparison or a step failed, 2 bad usage,
# 77 something it needs is absent (chromium, node/npm or the registry, Pillow, models/, ../shared).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
. scripts/hand-models.env

BUILD=build WORK='' INFERENCE=cpu TIMEOUT=300
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=${2:?--build needs a folder}; shift 2 ;;
    --work) WORK=${2:?--work needs a folder}; shift 2 ;;
    --inference)
      INFERENCE=${2:?--inference needs cpu or gl}; shift 2
      case "$INFERENCE" in cpu|gl) ;; *) echo "hands-mediapipe-check: --inference is cpu or gl, not '$INFERENCE'" >&2; exit 2 ;; esac ;;
    --timeout)
      TIMEOUT=${2:?--timeout needs seconds}; shift 2
      [[ "$TIMEOUT" =~ ^[1-9][0-9]{0,4}$ ]] || { echo "hands-mediapipe-check: --timeout takes whole seconds (1..99999), not '$TIMEOUT'" >&2; exit 2; } ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "hands-mediapipe-check: unknown argument '$1' (--help)" >&2; exit 2 ;;
  esac
done
BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "hands-mediapipe-check: no build folder" >&2; exit 2; }
WORK=${WORK:-$BUILD/hands-mediapipe}
SHARED=$(cd "$ROOT/.." && pwd)/shared
PY=/usr/bin/python3
HERE=$ROOT/tests/hands-wasm

skip() { echo "hands-mediapipe-check: skipped: $*"; exit 77; }
CHROMIUM=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$CHROMIUM" ] && [ -x "$CHROMIUM" ] || skip "no chromium (apt-get install chromium)"
command -v node >/dev/null && command -v npm >/dev/null || skip "no node/npm"
"$PY" -c 'import PIL' 2>/dev/null || skip "no Pillow for $PY (apt-get install python3-pil)"
[ -x "$BUILD/shoal" ] || skip "no $BUILD/shoal"
[ -f "$SHARED/real-models/hands/left_hands.jpg" ] || skip "no ../shared/real-models/hands"
hand_sha_ok models/hand_landmark_full.tflite "$HAND_LANDMARK_SHA" &&
  hand_sha_ok models/palm_detection_full.tflite "$HAND_PALM_SHA" || skip "no hand models in models/ (make models)"

mkdir -p "$WORK"
if ! hand_sha_ok "$WORK/$HAND_TGZ" "$HAND_TGZ_SHA"; then
  rm -f "$WORK/$HAND_TGZ"
  (cd "$WORK" && timeout 120 npm pack --silent "$HAND_PKG" >/dev/null 2>&1) || skip "npm pack $HAND_PKG failed (no registry access?)"
  hand_sha_ok "$WORK/$HAND_TGZ" "$HAND_TGZ_SHA" || { echo "hands-mediapipe-check: $HAND_TGZ has the wrong sha256" >&2; exit 1; }
fi
# The solution exactly as packed; its two full models must be the files shoal runs.
rm -rf "$WORK/solution" "$WORK/run"
mkdir -p "$WORK/solution" "$WORK/run"
tar -xzf "$WORK/$HAND_TGZ" -C "$WORK/solution" --strip-components=1
dd if="$WORK/solution/hands_solution_packed_assets.data" of="$WORK/run/palm_detection_full.tflite" \
   iflag=skip_bytes,count_bytes skip=$HAND_PALM_OFFSET count=$HAND_PALM_BYTES status=none
hand_sha_ok "$WORK/solution/hand_landmark_full.tflite" "$HAND_LANDMARK_SHA" &&
  hand_sha_ok "$WORK/run/palm_detection_full.tflite" "$HAND_PALM_SHA" ||
  { echo "hands-mediapipe-check: the solution's models are not the files in models/" >&2; exit 1; }

RUN=$WORK/run
trap 'rm -rf "$RUN/chromium-profile"' EXIT
"$PY" "$HERE/hands_wasm.py" images --inference "$INFERENCE" "$SHARED" "$RUN"
"$PY" "$HERE/hands_wasm.py" graph "$WORK/solution" "$RUN"
mkdir -p "$RUN/chromium-profile"
echo "hands-mediapipe-check: MediaPipe in $("$CHROMIUM" --version 2>/dev/null | head -1)"
node "$HERE/run_chromium.js" --chromium "$CHROMIUM" --solution "$WORK/solution" --work "$RUN" \
     --profile "$RUN/chromium-profile" --out "$RUN/mediapipe.json" --timeout "$TIMEOUT"

# shoal on the same files, in the manifest's order: each image alone, then the frames as one video.
mapfile -t images < <("$PY" "$HERE/hands_wasm.py" list "$RUN" images)
mapfile -t frames < <("$PY" "$HERE/hands_wasm.py" list "$RUN" video)
(cd "$RUN" && "$BUILD/shoal" hands --config "$ROOT/configs/hands.yaml" --model hand --images "${images[@]}" > shoal_images.jsonl &&
              "$BUILD/shoal" hands --config "$ROOT/configs/hands.yaml" --model hand --video "${frames[@]}" > shoal_video.jsonl)
"$PY" "$HERE/hands_wasm.py" compare "$RUN"
