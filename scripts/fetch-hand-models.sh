#!/usr/bin/env bash
# Fetches MediaPipe's hand models (palm detector + hand landmarks, TFLite) from the npm package
# @mediapipe/hands into models/, checking the sha256 of the tarball and of every extracted file.
# `npm pack` downloads the tarball without installing anything. The palm detector is packed
# inside hands_solution_packed_assets.data at the byte range its loader script lists.
# Idempotent: does nothing when both files are present with the right hashes.
# Usage: scripts/fetch-hand-models.sh [OUT_DIR]   (default models/)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-models}
. scripts/hand-models.env

if hand_sha_ok "$OUT/hand_landmark_full.tflite" "$HAND_LANDMARK_SHA" && hand_sha_ok "$OUT/palm_detection_full.tflite" "$HAND_PALM_SHA"; then
  echo "fetch-hand-models: $OUT/ has both hand models"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-hand-models: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$HAND_PKG" >/dev/null)
hand_sha_ok "$tmp/$HAND_TGZ" "$HAND_TGZ_SHA" || { echo "fetch-hand-models: $HAND_TGZ has the wrong sha256" >&2; exit 1; }
tar -xzf "$tmp/$HAND_TGZ" -C "$tmp" package/hand_landmark_full.tflite package/hands_solution_packed_assets.data
dd if="$tmp/package/hands_solution_packed_assets.data" of="$tmp/palm_detection_full.tflite" \
   iflag=skip_bytes,count_bytes skip=$HAND_PALM_OFFSET count=$HAND_PALM_BYTES status=none
hand_sha_ok "$tmp/package/hand_landmark_full.tflite" "$HAND_LANDMARK_SHA" || { echo "fetch-hand-models: hand_landmark_full.tflite has the wrong sha256" >&2; exit 1; }
hand_sha_ok "$tmp/palm_detection_full.tflite" "$HAND_PALM_SHA" || { echo "fetch-hand-models: palm_detection_full.tflite has the wrong sha256" >&2; exit 1; }
install -m 0644 "$tmp/package/hand_landmark_full.tflite" "$tmp/palm_detection_full.tflite" "$OUT/"
echo "fetch-hand-models: wrote $OUT/hand_landmark_full.tflite and $OUT/palm_detection_full.tflite"
