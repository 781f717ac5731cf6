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
printf 'models:\n  m:\n    path: %s\n    task: detect\n    pinned: true\n    preload: true\nmodes:\n  a: [m]\nmemory:\n  budget: 64KB\ninference:\n  device: cpu\n' "$TL" > "$WORK/tiny-budget.yaml"
expect budget-too-small  1 "available"            -- "$SHOAL" run --config "$WORK/tiny-budget.yaml" "$WORK/ok.png"
# A good run still works after all that.
expect good-run          0 "mode crossing"        -- run_tiny --mode crossing "$WORK/ok.png"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
