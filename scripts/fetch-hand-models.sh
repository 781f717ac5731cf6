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
PKG=@mediapipe/hands@0.4.1675469240
TGZ=mediapipe-hands-0.4.1675469240.tgz
TGZ_SHA=bdd5be939c60cbd72a49f4b6141407683cf2a67263598e1a44757d70b3dfcb8a
LANDMARK_SHA=8c026882c9ec059ce0f8e75266bee5a9a23c341a40e0000df755374d3d1b9b68
PALM_SHA=2f25e740121983f68ffc05f99991d524dc0ea812134f6316a26125816941ee85
PALM_OFFSET=11        # palm_detection_full.tflite: bytes [11, 2341291) of the packed assets
PALM_BYTES=2341280

sha_ok() { [ -s "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

if sha_ok "$OUT/hand_landmark_full.tflite" "$LANDMARK_SHA" && sha_ok "$OUT/palm_detection_full.tflite" "$PALM_SHA"; then
  echo "fetch-hand-models: $OUT/ has both hand models"
  exit 0
fi
command -v npm >/dev/null || { echo "fetch-hand-models: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null)
sha_ok "$tmp/$TGZ" "$TGZ_SHA" || { echo "fetch-hand-models: $TGZ has the wrong sha256" >&2; exit 1; }
tar -xzf "$tmp/$TGZ" -C "$tmp" package/hand_landmark_full.tflite package/hands_solution_packed_assets.data
dd if="$tmp/package/hands_solution_packed_assets.data" of="$tmp/palm_detection_full.tflite" \
   iflag=skip_bytes,count_bytes skip=$PALM_OFFSET count=$PALM_BYTES status=none
sha_ok "$tmp/package/hand_landmark_full.tflite" "$LANDMARK_SHA" || { echo "fetch-hand-models: hand_landmark_full.tflite has the wrong sha256" >&2; exit 1; }
sha_ok "$tmp/palm_detection_full.tflite" "$PALM_SHA" || { echo "fetch-hand-models: palm_detection_full.tflite has the wrong sha256" >&2; exit 1; }
install -m 0644 "$tmp/package/hand_landmark_full.tflite" "$tmp/palm_detection_full.tflite" "$OUT/"
echo "fetch-hand-models: wrote $OUT/hand_landmark_full.tflite and $OUT/palm_detection_full.tflite"
