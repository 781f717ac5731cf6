#!/bin/bash
# `shoal run --model x.onnx photo.jpg` with no other flag: the decoder, input size and class
# names come from the model's metadata (and its output shape for the NMS-free head).
# Usage: test_run_metadata.sh SHOAL SOURCE_DIR IMAGE; exits 77 when IMAGE (../shared) is absent.
set -u
shoal=$1 data=$2/tests/exports/data image=$3
[ -f "$image" ] || exit 77
fail=0
check() {   # check MODEL PATTERN: the run succeeds and prints PATTERN
    out=$("$shoal" run --model "$data/$1" --device cpu --threads 1 "$image" 2>&1)
    if [ $? -ne 0 ] || ! grep -qE "$2" <<<"$out"; then
        echo "FAIL $1: expected /$2/ in:"; echo "$out"; fail=1
    else
        echo "ok   $1"
    fi
}
check det.onnx "^ +(person|men's bike|car) +0\.[0-9]+ +\["
check det_fp16.onnx "^ +(person|men's bike|car) +0\.[0-9]+ +\["
check det_dynamic.onnx "^ +(person|men's bike|car) +0\.[0-9]+ +\["
check e2e.onnx "^ +(person|men's bike|car) +0\.[0-9]+ +\["
check e2e_v8.onnx "^ +(person|men's bike|car) +0\.[0-9]+ +\["
check e2e_seg.onnx "^ +(person|men's bike|car) +0\.[0-9]+ +\[.*\] +mask [0-9]+ px"
# the ? of an unnamed class must not appear: every class has its metadata name
if "$shoal" run --model "$data/e2e.onnx" --device cpu --threads 1 "$image" 2>&1 | grep -qE "^ +\? "; then
    echo "FAIL e2e.onnx: a detection without a class name"; fail=1
fi
exit $fail
