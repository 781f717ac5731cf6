#!/bin/sh
# make_tflite_seeds.sh SOURCE_DIR OUT_DIR: fuzz_tflite's seed corpus, the .tflite models of
# models/ (from make models; none is fine, libFuzzer then starts from nothing).
src=$1; out=$2; i=0
mkdir -p "$out"
for f in "$src"/models/*.tflite; do
  [ -f "$f" ] || continue
  i=$((i + 1)); cp "$f" "$out/seed_$i.tflite"
done
echo "$i seeds in $out"
