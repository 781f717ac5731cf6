#!/usr/bin/env bash
# Each case: a bad input, the exit status it must give, and a phrase its message must contain.
# No case may crash (exit >= 128 = a signal).
set -u
SHOAL=$1 SRC=$2 WORK=$3
DATA=$SRC/tests/runtime/data
rm -rf "$WORK" && mkdir -p "$WORK"
fails=0 passes=0

expect() {   # expect NAME STATUS PHRASE -- command...
    local name=$1 want=$2 phrase=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ge 128 ]; then
        echo "FAIL $name: crashed (status $rc)"; echo "$out" | tail -3; fails=$((fails + 1)); return
    fi
    if [ "$rc" -ne "$want" ] || ! grep -qiF -- "$phrase" <<<"$out"; then
        echo "FAIL $name: status $rc (want $want), output lacks '$phrase':"; echo "$out" | tail -3
        fails=$((fails + 1)); return
    fi
    echo "PASS $name: $(grep -iF -m1 -- "$phrase" <<<"$out" | cut -c1-150)"
    passes=$((passes + 1))
}

# A frame to run on, and broken images.
python3 - "$WORK" <<'PY'
import struct, sys, zlib, os
w = sys.argv[1]
def png(path, width, height, body=b""):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IHDR", ihdr) + (chunk(b"IDAT", zlib.compress(body)) if body else b"") + chunk(b"IEND", b"")
    open(os.path.join(w, path), "wb").write(b"\x89PNG\r\n\x1a\n" + data)
rows = b"".join(b"\x00" + b"".join(bytes([(x * 5) % 256, (y * 7) % 256, 90]) for x in range(64)) for y in range(48))
png("ok.png", 64, 48, rows)
png("zero.png", 0, 0)
png("huge.png", 100000, 100000)
open(os.path.join(w, "garbage.jpg"), "wb").write(os.urandom(5000))
open(os.path.join(w, "truncated.png"), "wb").write(open(os.path.join(w, "ok.png"), "rb").read()[:60])
open(os.path.join(w, "not-a-model.onnx"), "wb").write(b"\x0a\xff\xff\xff\xff\x0f garbage")
PY

TINY=$DATA/tiny.yaml
TL=$DATA/traffic_light.onnx
run_tiny() { "$SHOAL" run --config "$TINY" --device cpu "$@"; }

expect missing-image     1 "missing.jpg"          -- run_tiny --mode crossing "$WORK/missing.jpg"
expect corrupt-image     1 "garbage.jpg"          -- run_tiny --mode crossing "$WORK/garbage.jpg"
expect truncated-image   1 "truncated.png"        -- run_tiny --mode crossing "$WORK/truncated.png"
expect zero-size-image   1 "0x0"                  -- run_tiny --mode crossing "$WORK/zero.png"
expect huge-image        1 "100000x100000"        -- run_tiny --mode crossing "$WORK/huge.png"
expect unknown-mode      1 "unknown mode 'flying'" -- run_tiny --mode flying "$WORK/ok.png"
expect decoder-mismatch  1 "decoder yolov8-seg expects" -- "$SHOAL" run --model "$TL" --decoder yolov8-seg --device cpu "$WORK/ok.png"
expect unknown-decoder   2 "unknown decoder"      -- "$SHOAL" run --model "$TL" --decoder magic "$WORK/ok.png"
expect malformed-model   1 "not-a-model.onnx"     -- "$SHOAL" run --model "$WORK/not-a-model.onnx" --device cpu "$WORK/ok.png"
expect missing-model     1 "nowhere.onnx"         -- "$SHOAL" run --model "$WORK/nowhere.onnx" --device cpu "$WORK/ok.png"

# Config errors name the file, line and key.
printf 'models:\n  m:\n    path: %s\n    task: detect\n    classes_file: %s\nmodes:\n  a: [m]\n' "$TL" "$WORK/no-such-classes.txt" > "$WORK/classes.yaml"
expect missing-class-file 1 "no-such-classes.txt" -- "$SHOAL" run --config "$WORK/classes.yaml" --device cpu "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: detect\n    colour: rgb\nmodes:\n  a: [m]\n' "$TL" > "$WORK/badkey.yaml"
expect unknown-config-key 1 "badkey.yaml:5:5"     -- "$SHOAL" run --config "$WORK/badkey.yaml" "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: detect\n    score_threshold: high\nmodes:\n  a: [m]\n' "$TL" > "$WORK/badvalue.yaml"
expect bad-config-value  1 "score_threshold"      -- "$SHOAL" run --config "$WORK/badvalue.yaml" "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: detect\nmodes:\n  a: [m, ghost]\n' "$TL" > "$WORK/badmode.yaml"
expect mode-unknown-model 1 "ghost"               -- "$SHOAL" run --config "$WORK/badmode.yaml" "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: detect\n    top_k: 3\nmodes:\n  a: [m]\n' "$TL" > "$WORK/topk-detect.yaml"
expect top-k-on-detect    1 "models.m.top_k: applies to decoder classify (task classify) only" -- "$SHOAL" run --config "$WORK/topk-detect.yaml" --device cpu "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: classify\n    iou_threshold: 0.5\nmodes:\n  a: [m]\n' "$SRC/tests/vision/data/classifier_logits.onnx" > "$WORK/iou-classify.yaml"
expect nms-key-on-classify 1 "iou_threshold: decoder classify does not read it" -- "$SHOAL" run --config "$WORK/iou-classify.yaml" --device cpu "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: landmarks\n    classes: [left, right]\nmodes:\n  a: [m]\n' "$DATA/hand.onnx" > "$WORK/classes-landmarks.yaml"
expect classes-on-landmarks 1 "classes: decoder landmarks does not read it" -- "$SHOAL" run --config "$WORK/classes-landmarks.yaml" --device cpu "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: detect\n    precision: fp16\nmodes:\n  a: [m]\n' "$TL" > "$WORK/fp16-on-cpu.yaml"
expect precision-fp16-cpu 1 "precision: fp16 is not supported on cpu" -- "$SHOAL" run --config "$WORK/fp16-on-cpu.yaml" --device cpu "$WORK/ok.png"
printf 'models:\n  m:\n    path: %s\n    task: detect\n    pinned: true\n    preload: true\nmodes:\n  a: [m]\nmemory:\n  budget: 64KB\ninference:\n  device: cpu\n' "$TL" > "$WORK/tiny-budget.yaml"
expect budget-too-small  1 "available"            -- "$SHOAL" run --config "$WORK/tiny-budget.yaml" "$WORK/ok.png"
# Numeric flags are parsed strictly, with the range in the message, in every subcommand.
expect run-threads-text     2 "--threads expects an integer in 0..1024, got 'abc'" -- run_tiny --threads abc "$WORK/ok.png"
expect run-threads-negative 2 "--threads expects an integer in 0..1024, got '-1'"  -- run_tiny --threads -1 "$WORK/ok.png"
expect run-threads-suffix   2 "got '4x'"             -- run_tiny --threads 4x "$WORK/ok.png"
expect exec-repeat-negative 2 "--repeat expects an integer in 0..1000000, got '-5'" -- "$SHOAL" exec "$TL" --out "$WORK/o" --repeat -5
expect exec-threads-text    2 "--threads expects"    -- "$SHOAL" exec "$TL" --out "$WORK/o" --threads abc
expect plan-contexts-text   2 "--contexts expects an integer in 1..8" -- "$SHOAL" plan --config "$TINY" --contexts two
expect plan-budget-text     2 "--budget expects a size" -- "$SHOAL" plan --config "$TINY" --budget lots
expect bench-iters-zero     2 "--iters expects an integer in 1.." -- "$SHOAL" bench --config "$TINY" --iters 0
expect bench-warmup-text    2 "--warmup expects"     -- "$SHOAL" bench --config "$TINY" --warmup x
expect bench-cycles-neg     2 "--cycles expects"     -- "$SHOAL" bench --config "$TINY" --cycles -3
expect bench-threads-text   2 "--threads expects"    -- "$SHOAL" bench --config "$TINY" --threads 1.5
expect bench-budget-text    2 "--budget expects a size" -- "$SHOAL" bench --config "$TINY" --budget 12x
expect monitor-interval     2 "--interval expects a number" -- "$SHOAL" monitor --interval abc --duration 0
expect monitor-interval-0   2 "--interval expects a number" -- "$SHOAL" monitor --interval 0 --duration 0
expect monitor-duration-nan 2 "--duration expects a number" -- "$SHOAL" monitor --interval 1 --duration nan
expect report-cycles-neg    2 "--cycles expects an integer in 0..1000000" -- "$SHOAL" report --config "$TINY" --cycles -1
expect report-budget-text   2 "--budget expects a size" -- "$SHOAL" report --config "$TINY" --budget much
expect test-onnx-threads    2 "--threads expects"    -- "$SHOAL" test-onnx --threads many "$WORK"
expect test-onnx-rtol-nan   2 "--rtol expects a number" -- "$SHOAL" test-onnx --rtol nan "$WORK"

# --score: in [0, 1], and refused beside a config (each model has its own score_threshold).
expect score-with-config    2 "--score applies to --model only" -- run_tiny --mode crossing --score 0.5 "$WORK/ok.png"
expect score-above-one      2 "--score expects a number in 0..1, got '2'" -- "$SHOAL" run --model "$TL" --device cpu --score 2 "$WORK/ok.png"
expect score-nan            2 "--score expects a number in 0..1, got 'nan'" -- "$SHOAL" run --model "$TL" --device cpu --score nan "$WORK/ok.png"
expect score-honoured       0 "0 detections"         -- "$SHOAL" run --model "$TL" --device cpu --score 0.9 "$WORK/ok.png"

# --version after a subcommand prints the version.
expect version-top          0 "shoal 0."             -- "$SHOAL" --version
expect version-run          0 "shoal 0."             -- "$SHOAL" run --version
expect version-plan         0 "shoal 0."             -- "$SHOAL" plan --version

# test-onnx over a glob: files beside the test folders are skipped, a missing path still fails.
: > "$WORK/MANIFEST.txt"
expect test-onnx-file-skip  0 "SKIP $WORK/MANIFEST.txt: not a folder" -- "$SHOAL" test-onnx "$WORK/MANIFEST.txt"
expect test-onnx-missing    1 "FAIL $WORK/no-such-test" -- "$SHOAL" test-onnx "$WORK/no-such-test"

# plan --check: status 3 naming what the budget cannot hold; 0 when everything fits.
expect plan-check-short     3 "cannot hold mode"     -- "$SHOAL" plan --config "$TINY" --device cpu --budget 64KB --check
expect plan-check-fits      0 "budget: 1024.000"     -- "$SHOAL" plan --config "$TINY" --device cpu --budget 1GiB --check

# A file name that is not UTF-8 still gives valid JSON.
cp "$WORK/ok.png" "$WORK/$(printf 'bad\xffname').png"
json_lines_valid() { "$@" | python3 -c 'import json, sys; [json.loads(l) for l in sys.stdin.buffer.read().decode("utf-8").splitlines()]; print("valid JSON")'; }
expect json-non-utf8-name   0 "valid JSON"           -- json_lines_valid run_tiny --mode crossing --json "$WORK/$(printf 'bad\xffname').png"

# monitor stops at --duration by the clock: no sample starts after it, however long each takes.
monitor_within() {   # monitor_within BOUND_S ARGS...: the run must end within BOUND_S (generous)
    local bound=$1; shift
    local t0=$(date +%s.%N)
    "$SHOAL" monitor "$@" > "$WORK/monitor.out" || return 1
    python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('took %.1f s' % d); sys.exit(d >= float(sys.argv[3]))" "$t0" "$(date +%s.%N)" "$bound"
}
expect monitor-duration     0 "took"                 -- monitor_within 6 --interval 1 --duration 2
last_sample_within() {   # the last --json sample's elapsed_s is at most the duration
    "$SHOAL" monitor --config "$TINY" --device cpu --json --interval 0.001 --duration 0.05 |
        python3 -c 'import json, sys; e=[json.loads(l)["elapsed_s"] for l in sys.stdin]; print("%d samples, last at %.3f s" % (len(e), e[-1])); sys.exit(e[-1] > 0.05)'
}
expect monitor-slow-samples 0 "samples, last at"     -- last_sample_within

# A CUDA request on a host without a GPU says so plainly (not "driver version is insufficient").
cuda_message() {
    local out; out=$("$SHOAL" run --config "$TINY" --device cuda --mode crossing "$WORK/ok.png" 2>&1) && { echo "CUDA device present"; return 0; }
    grep -qi "insufficient" <<<"$out" && { echo "$out"; return 1; }
    echo "$out"
}
expect cuda-no-device       0 "CUDA"                 -- cuda_message

# default_mode: `run` without --mode runs it alone; --mode all runs every mode.
printf 'models:\n  m:\n    path: %s\n    task: detect\nmodes:\n  first: [m]\n  second: [m]\ndefault_mode: second\ninference:\n  device: cpu\n' "$TL" > "$WORK/default-mode.yaml"
only_default_mode() {
    local out; out=$("$SHOAL" run --config "$WORK/default-mode.yaml" "$WORK/ok.png") || return 1
    grep -q " mode first:" <<<"$out" && { echo "ran mode first too"; return 1; }
    grep " mode second:" <<<"$out"
}
expect default-mode-alone   0 "mode second:"         -- only_default_mode
expect default-mode-all     0 "mode first:"          -- "$SHOAL" run --config "$WORK/default-mode.yaml" --mode all "$WORK/ok.png"

# monitor.report_path: `monitor --config` writes the memory report there (relative to the config).
printf 'models:\n  m:\n    path: %s\n    task: detect\nmodes:\n  a: [m]\ninference:\n  device: cpu\nmonitor:\n  report_path: report-out.json\n' "$TL" > "$WORK/report-path.yaml"
report_written() {
    rm -f "$WORK/report-out.json"
    "$SHOAL" monitor --config "$WORK/report-path.yaml" --duration 0 > /dev/null || return 1
    python3 -c 'import json, sys; r=json.load(open(sys.argv[1])); print("report with", [m["name"] for m in r["models"]])' "$WORK/report-out.json"
}
expect monitor-report-path  0 "report with ['m']"    -- report_written

# A good run still works after all that.
expect good-run          0 "mode crossing"        -- run_tiny --mode crossing "$WORK/ok.png"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
