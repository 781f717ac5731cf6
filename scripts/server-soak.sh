#!/usr/bin/env bash
# Measures `shoal serve` under hostile and heavy load on this machine, and prints the numbers
# (this is a measurement, not a test: it fails only when the server dies or a bound is missed).
#   1. decompression bombs: concurrent 200 KB PNGs declaring 8192x8192 zero pixels, with the
#      pixel cap raised so that they reach the host limit; peak RSS (VmHWM) against
#      RSS at rest + --host-limit;
#   2. slow clients: 130 connections trickling a byte every 2 s, from one address and from
#      130 addresses; /healthz latency (p50/p99/max over fresh connections) meanwhile;
#   3. wrk: DURATION s at 64 connections of POST /v1/infer with a JPEG; the server must still
#      answer, exit 0 on SIGTERM, and (ASan build) report nothing.
# Usage: scripts/server-soak.sh [SHOAL_BINARY] [DURATION_S] [PARTS]
#   (default build/shoal, 60 s, PARTS "bombs,slow,wrk"; give build-asan/shoal for the sanitizer
#   run, e.g. `scripts/server-soak.sh build-asan/shoal 60 slow` for the slow clients alone).
# Prints the machine's load average first: the latencies mean little on a busy machine.
# Needs ../shared/real-models, python3, curl and wrk (apt-get install wrk).
set -uo pipefail
cd "$(dirname "$0")/.."
SHOAL=$(realpath "${1:-build/shoal}")
DURATION=${2:-60}
PARTS=${3:-bombs,slow,wrk}
part() { [[ ",$PARTS," == *",$1,"* ]]; }
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
RM=$(realpath ../shared/real-models)
IMG=$RM/images/street/000000001584.jpg
for tool in python3 curl wrk; do
  command -v $tool >/dev/null || { echo "server-soak: $tool is not installed"; exit 2; }
done
[ -f "$RM/yolox_nano/model.onnx" ] || { echo "server-soak: $RM not found"; exit 2; }

TMP=$(mktemp -d /tmp/shoal-soak.XXXXXX)
SPID=""
cleanup() {
  [ -n "$SPID" ] && kill -KILL "$SPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
BAD=0
bad() { echo "  FAILED: $*"; BAD=$((BAD + 1)); }

cat > "$TMP/serve.yaml" <<EOF
models:
  detector:
    path: $RM/yolox_nano/model.onnx
    task: yolox
    letterbox: top_left
    color: bgr
    scale: 1.0
    score_threshold: 0.3
    preload: true
modes:
  crossing: [detector]
default_mode: crossing
inference:
  device: cpu
  threads: 1
EOF

start() {   # start ARGS...: sets SPID, PORT
  "$SHOAL" serve --config "$TMP/serve.yaml" --listen 127.0.0.1:0 --log-level warn "$@" > "$TMP/serve.log" 2>&1 &
  SPID=$!
  PORT=""
  for _ in $(seq 1 1200); do
    PORT=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$TMP/serve.log" | head -n1 | cut -d: -f2)
    [ -n "$PORT" ] && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server did not start:"; cat "$TMP/serve.log"; exit 1
}
finish() {   # SIGTERM; exit 0 and no sanitizer report expected
  kill -TERM "$SPID"
  wait "$SPID"
  local rc=$?
  SPID=""
  [ $rc -eq 0 ] || bad "server exited $rc after SIGTERM"
  if grep -qiE "AddressSanitizer|LeakSanitizer|runtime error:" "$TMP/serve.log"; then
    bad "sanitizer report:"; grep -iE -A30 "AddressSanitizer|LeakSanitizer|runtime error:" "$TMP/serve.log" | head -60
  fi
}
kib() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$SPID/status"; }

# --- 1. decompression bombs ---------------------------------------------------------------
if part bombs; then
python3 - "$TMP/bomb.png" <<'PYEOF'
import struct, sys, zlib
w = h = 8192
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
z = zlib.compressobj(9)
row = b"\0" * (1 + 3 * w)
data = b"".join(z.compress(row * 64) for _ in range(h // 64)) + z.flush()
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", data) + chunk(b"IEND", b""))
PYEOF
LIMIT_MB=1100
echo "== decompression bombs: 12 concurrent $(stat -c %s "$TMP/bomb.png")-byte PNGs declaring 8192x8192"
for pixels in default 67108864; do
  if [ $pixels = default ]; then start --workers 1 --queue 2 --host-limit ${LIMIT_MB}MB
  else start --workers 1 --queue 2 --host-limit ${LIMIT_MB}MB --max-pixels $pixels; fi
  rest=$(kib VmRSS)
  for i in $(seq 1 12); do
    curl -s --max-time 300 -o /dev/null -w '%{http_code}\n' --data-binary "@$TMP/bomb.png" \
      "http://127.0.0.1:$PORT/v1/infer" >> "$TMP/bomb-$pixels.codes" &
  done
  wait $(jobs -p | grep -v "^$SPID\$")
  peak=$(kib VmHWM)
  codes=$(sort "$TMP/bomb-$pixels.codes" | uniq -c | awk '{printf "%s x%s ", $2, $1}')
  echo "  max-pixels $pixels, host limit ${LIMIT_MB} MB: answers: $codes"
  echo "  RSS at rest $((rest / 1024)) MB, peak $((peak / 1024)) MB; bound = rest + host limit = $((rest / 1024 + LIMIT_MB)) MB"
  [ "$peak" -le $((rest + LIMIT_MB * 1024)) ] || bad "peak RSS above rest + host limit"
  curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics" | grep '^shoal_http_decode' | sed 's/^/    /'
  finish
done
fi

# --- 2. slow clients ------------------------------------------------------------------------
if part slow; then
echo "== 130 slow connections (one byte every 2 s) while /healthz is probed every 50 ms"
start --workers 2
for spread in one many; do
  python3 - "$PORT" "$spread" > "$TMP/slow.out" 2>&1 <<'PYEOF'
import socket, statistics, sys, threading, time
port, spread = int(sys.argv[1]), sys.argv[2]
stop = time.time() + 30
held = [0]
lock = threading.Lock()
def slow(i):
    msg = b"POST /v1/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"\0" * 100000
    while time.time() < stop:   # reconnect when cut, as an attacker would
        try:
            s = socket.socket()
            if spread == "many":
                s.bind(("127.0.1.%d" % (i + 1), 0))
            s.connect(("127.0.0.1", port))
            with lock: held[0] += 1
            for b in msg:
                if time.time() >= stop: break
                s.sendall(bytes([b]))
                time.sleep(2)
        except OSError:
            pass
        finally:
            with lock: held[0] -= 1
            s.close()
        time.sleep(0.5)
threads = [threading.Thread(target=slow, args=(i,), daemon=True) for i in range(130)]
for t in threads: t.start()
time.sleep(3)   # let them all connect
lat, fails = [], 0
while time.time() < stop - 1:
    t0 = time.time()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
        s.close()
        if not data.startswith(b"HTTP/1.1 200"): fails += 1
        else: lat.append((time.time() - t0) * 1000)
    except OSError:
        fails += 1
    time.sleep(0.05)
lat.sort()
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")
print("%d %d %.1f %.1f %.1f %d" % (len(lat), fails, p(0.5), p(0.99), lat[-1] if lat else float("nan"), held[0]))
PYEOF
  read -r n fails p50 p99 max held < "$TMP/slow.out" || { cat "$TMP/slow.out"; bad "slow-client script"; continue; }
  echo "  from $spread address(es): $n probes, $fails failed; /healthz p50 $p50 ms, p99 $p99 ms, max $max ms"
  python3 -c "import sys; sys.exit(0 if $fails == 0 and $p99 < 50 else 1)" || bad "/healthz p99 >= 50 ms or failures"
  curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics" | grep '^shoal_http_connections' | sed 's/^/    /'
done
finish
fi

# --- 3. wrk --------------------------------------------------------------------------------------
if part wrk; then
echo "== wrk: ${DURATION} s, 64 connections, POST /v1/infer with a $(stat -c %s "$IMG")-byte JPEG"
cat > "$TMP/post.lua" <<EOF
local f = io.open("$IMG", "rb")
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/jpeg"
EOF
start --workers 2 --queue 16
rest=$(kib VmRSS)
wrk -t2 -c64 -d"${DURATION}s" --timeout 30s -s "$TMP/post.lua" "http://127.0.0.1:$PORT/v1/infer?mode=crossing" \
  > "$TMP/wrk.out" 2>&1
sed 's/^/  /' "$TMP/wrk.out"
peak=$(kib VmHWM)
echo "  RSS at rest $((rest / 1024)) MB, peak $((peak / 1024)) MB"
curl -s --max-time 10 "http://127.0.0.1:$PORT/metrics" | grep -E '^shoal_http_responses_total|^shoal_http_in_flight' |
  grep -v ' 0$' | sed 's/^/    /'
code=$(curl -s --max-time 30 -o /dev/null -w '%{http_code}' --data-binary "@$IMG" "http://127.0.0.1:$PORT/v1/infer")
echo "  after the run: /v1/infer answers $code"
[ "$code" = 200 ] || bad "no 200 after the wrk run"
finish
fi
echo
[ $BAD -eq 0 ] && echo "server-soak: every bound held" || echo "server-soak: $BAD bound(s) missed"
exit $((BAD != 0))
