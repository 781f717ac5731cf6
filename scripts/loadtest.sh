#!/usr/bin/env bash
# Load test of `shoal serve` on loopback with wrk (Debian's), bounded and self-stopping.
#
#   scripts/loadtest.sh [--bin build/shoal] [--duration 60] [--connections 64] [--workers 2]
#                       [--config FILE --mode NAME] [--image FILE] [--out DIR]
#
# Starts the server on a free 127.0.0.1 port, runs wrk for --duration seconds at
# --connections connections posting one image to /v1/infer?mode=..., samples the server's
# RSS from /proc every second, then stops the server with SIGTERM and checks it exits 0.
# Passes when: no status other than 200 and 429 (429 is the bounded queue working), no
# socket errors, the server exits 0 with no sanitizer report, and RSS does not grow over the
# last 30 s (growth below 1% + 2 MiB is taken as noise).
# Without --config: configs/aiglasses.yaml's crossing mode when models/ exists, else (or with
# --config small) a small config over ../shared/real-models (the slim face detector, "faces").
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/build/shoal
DURATION=60
CONNS=64
WORKERS=2
CONFIG=""
MODE=""
IMAGE=""
OUT=""
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --connections) CONNS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    --image) IMAGE=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "loadtest: unknown option $1" >&2; exit 2 ;;
  esac
done
case $DURATION in ''|*[!0-9]*) echo "loadtest: --duration is whole seconds" >&2; exit 2 ;; esac
[ "$DURATION" -ge 5 ] && [ "$DURATION" -le 600 ] || { echo "loadtest: --duration 5..600" >&2; exit 2; }
command -v wrk >/dev/null || { echo "loadtest: wrk not installed (scripts/install-deps.sh)" >&2; exit 2; }
[ -x "$BIN" ] || { echo "loadtest: $BIN not built" >&2; exit 2; }

SHARED=$(cd "$ROOT/.." && pwd)/shared/real-models
OUT=${OUT:-$(mktemp -d /tmp/shoal-loadtest.XXXXXX)}
mkdir -p "$OUT"
if [ -z "$CONFIG" ] && [ -f "$ROOT/configs/aiglasses.yaml" ] && [ -d "$ROOT/models" ]; then
  CONFIG=$ROOT/configs/aiglasses.yaml
  MODE=${MODE:-crossing}
fi
if [ -z "$CONFIG" ] || [ "$CONFIG" = small ]; then
  if [ -f "$SHARED/face_slim320_simplified/model.onnx" ]; then
    CONFIG=$OUT/loadtest.yaml
    cat > "$CONFIG" <<EOF
models:
  face:
    path: $SHARED/face_slim320_simplified/model.onnx
    task: classify
    decoder: none
    preload: true
  detector:
    path: $SHARED/yolox_nano/model.onnx
    task: yolox
    letterbox: top_left
    color: bgr
    scale: 1.0
    score_threshold: 0.3
modes:
  faces: [face]
  crossing: [detector]
inference:
  device: cpu
  threads: 1
EOF
    MODE=${MODE:-faces}
  else
    echo "loadtest: no configs/aiglasses.yaml + models/ and no $SHARED; give --config and --mode" >&2
    exit 2
  fi
fi
MODE=${MODE:-crossing}
if [ -z "$IMAGE" ]; then
  for cand in "$ROOT/frames/"*.jpg "$SHARED/images/street/000000001584.jpg"; do
    [ -f "$cand" ] && { IMAGE=$cand; break; }
  done
fi
[ -f "$IMAGE" ] || { echo "loadtest: no image; give --image" >&2; exit 2; }

SERVER_PID=""
SAMPLER_PID=""
cleanup() {
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
  fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

echo "loadtest: $BIN, config $CONFIG, mode $MODE, image $IMAGE"
echo "loadtest: $DURATION s at $CONNS connections against $WORKERS workers; output in $OUT"
"$BIN" serve --config "$CONFIG" --listen 127.0.0.1:0 --workers "$WORKERS" --queue 16 \
  --timeout-ms 30000 --max-connections 256 --quiet > "$OUT/serve.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 1200); do
  PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$OUT/serve.log" | head -n1 | cut -d: -f2)
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$PORT" ] || { echo "loadtest: server did not start"; cat "$OUT/serve.log"; exit 1; }
U=http://127.0.0.1:$PORT

# RSS every second from /proc, until the server goes or the run's bound passes.
# Time is wall-clock seconds since the load started (a loaded machine stretches sleep 1).
T0=$(date +%s)
(
  while [ $(($(date +%s) - T0)) -le $((DURATION + 120)) ] && [ -r /proc/$SERVER_PID/status ]; do
    rss=$(awk '/^VmRSS:/ {print $2}' /proc/$SERVER_PID/status 2>/dev/null)
    [ -n "$rss" ] && echo "$(($(date +%s) - T0)) $rss"
    sleep 1
  done
) > "$OUT/rss.txt" &
SAMPLER_PID=$!

# One warm-up request checks the route before the clock starts.
code=$(curl -s --max-time 120 -o "$OUT/warmup.json" -w '%{http_code}' --data-binary "@$IMAGE" "$U/v1/infer?mode=$MODE")
[ "$code" = 200 ] || { echo "loadtest: warm-up request got $code: $(head -c 300 "$OUT/warmup.json")"; exit 1; }

SHOAL_LT_IMAGE=$IMAGE SHOAL_LT_PATH="/v1/infer?mode=$MODE" \
  timeout $((DURATION + 60)) wrk -t2 -c"$CONNS" -d"${DURATION}s" --timeout 60s \
  -s "$ROOT/scripts/loadtest/post_image.lua" "$U" > "$OUT/wrk.txt" 2>&1
WRK_RC=$?
curl -s --max-time 30 "$U/metrics" > "$OUT/metrics.txt"
kill -TERM "$SERVER_PID"
for _ in $(seq 1 600); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  SERVER_RC=timeout
else
  wait "$SERVER_PID"; SERVER_RC=$?
fi
SERVER_PID=""
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null; SAMPLER_PID=""

echo "--- wrk"
cat "$OUT/wrk.txt"
echo "--- server counters"
grep -E '^shoal_http_(responses_total|jobs_abandoned_total|requests_total)' "$OUT/metrics.txt" | grep -v ' 0$'
echo "--- RSS (kB) every 10 s"
awk '$1 >= next_t {printf "%s s: %s kB\n", $1, $2; next_t = $1 + 10}' "$OUT/rss.txt"

FAIL=0
[ $WRK_RC -eq 0 ] || { echo "FAIL: wrk exited $WRK_RC"; FAIL=1; }
bad=$(awk '/^status / {sub(":", "", $2); if ($2 != 200 && $2 != 429) n += $3} END {print n + 0}' "$OUT/wrk.txt")
[ "$bad" -eq 0 ] || { echo "FAIL: $bad responses other than 200/429"; FAIL=1; }
ok=$(awk '/^status 200:/ {print $3}' "$OUT/wrk.txt")
[ "${ok:-0}" -gt 0 ] || { echo "FAIL: no 200 at all"; FAIL=1; }
sockerr=$(awk '/socket_errors/ {print $9 + $11 + $13 + $15}' "$OUT/wrk.txt")
[ "${sockerr:-1}" -eq 0 ] || { echo "FAIL: socket errors ($sockerr)"; FAIL=1; }
[ "$SERVER_RC" = 0 ] || { echo "FAIL: server exit status $SERVER_RC after SIGTERM"; FAIL=1; }
if grep -qE "AddressSanitizer|LeakSanitizer|runtime error:" "$OUT/serve.log"; then
  echo "FAIL: sanitizer report in $OUT/serve.log"; FAIL=1
fi
# RSS over the last 30 s of the run: from the sample at DURATION-30 to the last one inside it.
read -r rss_a rss_b rss_max <<< "$(awk -v s=$((DURATION - 30)) -v e="$DURATION" '
  $1 >= s && !a {a = $2} $1 >= s && $1 <= e {b = $2; if ($2 > m) m = $2} END {print a + 0, b + 0, m + 0}' "$OUT/rss.txt")"
growth=$((rss_max - rss_a))
allow=$((rss_a / 100 + 2048))
echo "RSS last 30 s: $rss_a kB at $((DURATION - 30)) s, $rss_b kB at $DURATION s, max $rss_max kB (growth $growth kB, noise allowance $allow kB)"
[ "$rss_a" -gt 0 ] && [ "$growth" -le "$allow" ] || { echo "FAIL: RSS grew over the last 30 s"; FAIL=1; }
ok_rps=$(awk -v n="${ok:-0}" -v d="$DURATION" 'BEGIN {printf "%.2f", n / d}')
echo "successful inferences: ${ok:-0} ($ok_rps/s); server exit status $SERVER_RC"
[ $FAIL -eq 0 ] && echo "loadtest: PASS" || echo "loadtest: FAIL"
exit $FAIL
