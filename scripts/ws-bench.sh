#!/usr/bin/env bash
# The stream's WebSocket transport, shoal's own (libmicrohttpd upgrade + src/server/ws.c) beside
# libwebsockets, with no inference (tests/stream/bench_ws.c): 8 and 32 loopback clients at
# 15 fps and flat out, one 40 KB frame in flight per client, each answered with a small JSON.
# Prints one line per run with the server's CPU time per frame (from /proc).
# Usage: scripts/ws-bench.sh [BUILD_DIR] [SECONDS]   (BUILD_DIR default build, SECONDS 5)
set -euo pipefail
BUILD=${1:-build}
SECS=${2:-5}
B=$BUILD/tests/stream/bench_ws
[ -x "$B" ] || { echo "ws-bench: $B not built (needs libwebsockets-dev)"; exit 1; }
FRAME=40000
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done' EXIT
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
port_of() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
echo "machine: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
for impl in own lws; do
  port=$(port_of)
  "$B" serve "$impl" "$port" > /dev/null &
  pid=$!
  PIDS+=("$pid")
  sleep 0.5
  for clients in 8 32; do
    for fps in 15 0; do
      t0=$(cpu_ticks "$pid")
      line=$("$B" load "$port" "$clients" "$fps" "$SECS" "$FRAME")
      t1=$(cpu_ticks "$pid")
      frames=$(echo "$line" | sed 's/.*B: \([0-9]*\) frames.*/\1/')
      hz=$(getconf CLK_TCK)
      cpu=$(python3 -c "print('%.3f' % ((($t1) - ($t0)) * 1000.0 / $hz / max(1, $frames * $SECS)))")
      echo "$impl: $line, server CPU $cpu ms/frame"
    done
  done
  kill "$pid"
done
