#!/bin/sh
# make_seeds.sh SOURCE_DIR OUT_DIR: the fuzz seed corpus, one file per ONNX node-test model and
# importer corpus model (../shared is optional).
src=$1; out=$2; i=0
mkdir -p "$out"
for f in $(find "$src/../shared/onnx-node-tests" -name model.onnx 2>/dev/null) "$src"/tests/import/corpus/*.onnx; do
  i=$((i + 1)); cp "$f" "$out/seed_$i.onnx"
done
echo "$i seeds in $out"
