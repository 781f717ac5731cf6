#!/usr/bin/env bash
# Load test of /v1/stream on loopback: one `shoal serve`, then for each count of simulated
# wearers a `shoal stream` run at the given rate. Prints per run: frame age p50/p99 (capture
# to result, the server's clock), drop rate, per-client results/s min/max (fairness), and the
# server's RSS sampled every second (first, max, last: flat means no growth); at the end the
# server is stopped with SIGTERM and must exit 0 (under an ASan build: with no report).
# Self-stopping: every run has its own duration and time limit; the server is killed on exit.
#
# Usage: scripts/stream-loadtest.sh [BUILD_DIR] (default build)
# Environment: CONFIG (configs/aiglasses.yaml), MODE (crossing), CLIENTS ("8 32"), FPS (15),
#   SECONDS_RUN (20), WORKERS (2), DEVICE (the config's), FRAMES (a folder of JPEGs; default ../shared's street images).
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
SHOAL=$BUILD/shoal
CONFIG=${CONFIG:-configs/aiglasses.yaml}
MODE=${MODE:-crossing}
CLIENTS=${CLIENTS:-"8 32"}
FPS=${FPS:-15}
SECONDS_RUN=${SECONDS_RUN:-20}
WORKERS=${WORKERS:-2}
FRAMES=${FRAMES:-../shared/real-models/images/street}
[ -x "$SHOAL" ] || { echo "loadtest: $SHOAL not built"; exit 1; }
ls "$FRAMES"/*.jpg >/dev/null 2>&1 || { echo "loadtest: no JPEGs in $FRAMES (set FRAMES)"; exit 1; }
TMP=$(mktemp -d /tmp/shoal-stream-load.XXXXXX)
SMI=$(command -v nvidia-smi || true)
SERVER=""
cleanup() { [ -n "$SERVER" ] && kill -KILL "$SERVER" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

# The allocator settings of deploy/shoal.env: fewer per-thread heaps, so RSS tracks what is used.
MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX:-2} ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} "$SHOAL" serve --config "$CONFIG" --listen 127.0.0.1:0 \
    --workers "$WORKERS" ${DEVICE:+--device "$DEVICE"} --max-streams 64 --timeout-ms 5000 --quiet > "$TMP/serve.log" 2>&1 &
SERVER=$!
PORT=""
for _ in $(seq 1200); do
  PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$TMP/serve.log" | head -n1 | cut -d: -f2)
  [ -n "$PORT" ] && curl -s -m 2 "http://127.0.0.1:$PORT/readyz" | grep -q true && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$TMP/serve.log"; exit 1; }
  sleep 0.25
done
echo "loadtest: $SHOAL serve on port $PORT, $WORKERS workers, mode $MODE, $FPS fps, $SECONDS_RUN s per run"
for n in $CLIENTS; do
  : > "$TMP/rss"
  : > "$TMP/dev"
  ( while kill -0 "$SERVER" 2>/dev/null; do
      ps -o rss= -p "$SERVER" >> "$TMP/rss"
      # the process's device memory as the driver sees it (MiB), where there is a GPU
      [ -n "$SMI" ] && nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null |
          awk -F', *' -v p="$SERVER" '$1 == p {print $2}' >> "$TMP/dev"
      sleep 1
    done ) &
  SAMPLER=$!
  timeout $((SECONDS_RUN + 60)) "$SHOAL" stream --server "127.0.0.1:$PORT" --frames "$FRAMES" --clients "$n" \
      --fps "$FPS" --duration "$SECONDS_RUN" --mode "$MODE" --quiet --client-id "load$n" > "$TMP/run$n.log" 2>&1
  rc=$?
  kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null
  echo "--- $n wearers (client exit $rc)"
  grep -v '^{' "$TMP/run$n.log" | tail -n 3
  awk '{v[NR] = $1; if ($1 > max) max = $1} END {
         printf "server RSS MiB at 0/25/50/75/100%% of the run: %.1f %.1f %.1f %.1f %.1f (max %.1f, %d samples)\n",
           v[1]/1024, v[int(NR/4)+1]/1024, v[int(NR/2)+1]/1024, v[int(3*NR/4)+1]/1024, v[NR]/1024, max/1024, NR}' "$TMP/rss"
  [ -s "$TMP/dev" ] && awk '{v[NR] = $1; if ($1 > max) max = $1} END {
         printf "server device MiB (nvidia-smi) at 0/50/100%% of the run: %d %d %d (max %d, %d samples)\n",
           v[1], v[int(NR/2)+1], v[NR], max, NR}' "$TMP/dev"
  tail -n 1 "$TMP/run$n.log"
done
curl -s -m 5 "http://127.0.0.1:$PORT/metrics" | grep -E '^shoal_stream_(frames_total|frame_age_ms)' 
kill -TERM "$SERVER"
wait "$SERVER"; rc=$?
SERVER=""
if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$TMP/serve.log"; then
  grep -A20 -E 'AddressSanitizer|LeakSanitizer|runtime error' "$TMP/serve.log" | head -40
  echo "loadtest: sanitizer report from the server"; exit 1
fi
echo "loadtest: server exit status $rc after SIGTERM"
[ $rc -eq 0 ]
