#!/usr/bin/env bash
# /v1/stream end to end: a real `shoal serve` on a free loopback port (the traffic-light
# detector of the generated models/, two modes), driven by `shoal stream` and ws_probe.py:
#  - bad values of the stream flags of `shoal stream` and `shoal serve` are refused (exit 2);
#  - the upgrade needs the bearer token (401), a known mode (404), a WebSocket request (426);
#  - mode messages, header modes, per-frame errors, ping/pong, close (ws_probe.py protocol);
#  - three wearers, one sending 4x faster than the others: its stale frames are dropped (counted
#    by the client and on /metrics), it gets no more results than the others (round-robin),
#    and every frame is answered or reported dropped (none lost);
#  - a video file is cut into frames by ffmpeg and streamed (where ffmpeg is installed);
#  - a silent stream is pinged, then closed after the idle timeout;
#  - streams over --max-streams get 503;
#  - SIGTERM with --drain-ms: /readyz answers 503 while streams still run, then the stream is
#    closed with 1001 (going away) and the server exits 0.
# Usage: test_stream.sh SHOAL_BINARY SOURCE_DIR SHARED_DIR. Exit 77 (skipped) without models/
# or the sample images. Every client has its own time limit; the server is killed on every exit.
set -uo pipefail
SHOAL=${1:?usage: test_stream.sh SHOAL SOURCE_DIR SHARED_DIR}
SRC=${2:?}
SHARED=${3:?}
MODEL=$SRC/models/traffic_light.onnx
IMAGES=$SHARED/real-models/images/street
if [ ! -f "$MODEL" ] || ! ls "$IMAGES"/*.jpg >/dev/null 2>&1; then
  echo "skipped: $MODEL or $IMAGES/*.jpg not found"
  exit 77
fi
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "skipped: $tool not installed"; exit 77; }
done
PROBE="python3 $(dirname "$0")/ws_probe.py"

TMP=$(mktemp -d /tmp/shoal-stream-test.XXXXXX)
SERVER_PID=""
cleanup() {
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
FAILS=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }

cat > "$TMP/serve.yaml" <<YAML
models:
  traffic_light:
    path: $MODEL
    task: detect
    decoder: yolov8
    input_size: 640
    letterbox: center
    color: rgb
    scale: 0.00392156862745098
    score_threshold: 0.35
    preload: true
    classes: [red, green, yellow, off]
modes:
  crossing: [traffic_light]
  navigation: [traffic_light]
default_mode: crossing
inference:
  device: cpu
  threads: 1
YAML
echo "s3cret-token" > "$TMP/token"
chmod 600 "$TMP/token"
mkdir -p "$TMP/frames"
cp "$IMAGES"/*.jpg "$TMP/frames/"
IMAGE=$(ls "$TMP"/frames/*.jpg | head -n1)

start_server() {   # extra flags...
  PORT=""
  "$SHOAL" serve --config "$TMP/serve.yaml" --listen 127.0.0.1:0 --workers 1 --token-file "$TMP/token" \
      "$@" > "$TMP/serve.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do
    PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$TMP/serve.log" | head -n1 | cut -d: -f2)
    [ -n "$PORT" ] && curl -s -m 2 "http://127.0.0.1:$PORT/readyz" | grep -q true && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.2
  done
  echo "server did not start:"; cat "$TMP/serve.log"; exit 1
}
metric() {   # name{labels} -> value
  curl -s -m 5 -H "Authorization: Bearer s3cret-token" "http://127.0.0.1:$PORT/metrics" |
    awk -v k="$1" '$1 == k {print $2}'
}
upgrade_status() {   # query, extra curl args -> HTTP status of the upgrade request
  curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/v1/stream?$1" \
    -H "Connection: Upgrade" -H "Upgrade: websocket" -H "Sec-WebSocket-Version: 13" \
    -H "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" "${@:2}"
}
json_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

# --- strict flags: each bad value is refused (exit 2) before anything starts
bad_flags=0
for args in "--client-id a%20b" "--client-id ''" "--fps 0" "--fps 15x" "--clients 0" "--server 127.0.0.1" \
            "--server 127.0.0.1:70000" "--duration -1"; do
  eval "timeout 20 \"$SHOAL\" stream --server 127.0.0.1:9 --frames \"$TMP/frames\" $args" >/dev/null 2>&1
  [ $? -eq 2 ] || { echo "     shoal stream $args was not refused"; bad_flags=1; }
done
for args in "--stream-heartbeat 30 --stream-idle-timeout 10" "--max-streams 0" "--stream-max-frame 10" \
            "--drain-ms -5" "--stream-idle-timeout 1"; do
  eval "timeout 20 \"$SHOAL\" serve --config \"$TMP/serve.yaml\" --listen 127.0.0.1:0 $args" >/dev/null 2>&1
  [ $? -eq 2 ] || { echo "     shoal serve $args was not refused"; bad_flags=1; }
done
[ $bad_flags -eq 0 ] && pass "bad stream flags refused with exit 2" || fail "bad stream flags"

start_server --max-streams 4 --stream-heartbeat 1 --stream-idle-timeout 3 --drain-ms 2000
AUTH=(-H "Authorization: Bearer s3cret-token")

# --- the upgrade's checks
[ "$(upgrade_status client=a)" = 401 ] && pass "upgrade without the token: 401" || fail "upgrade without the token"
[ "$(upgrade_status 'client=a&mode=nope' "${AUTH[@]}")" = 404 ] && pass "upgrade with an unknown mode: 404" \
  || fail "unknown mode at upgrade"
[ "$(upgrade_status 'client=a%20b' "${AUTH[@]}")" = 400 ] && pass "a client id with a space: 400" || fail "bad client id"
code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "${AUTH[@]}" "http://127.0.0.1:$PORT/v1/stream")
[ "$code" = 426 ] && pass "a plain GET /v1/stream: 426" || fail "plain GET got $code"

# --- the protocol, message by message
if timeout 60 $PROBE "$PORT" s3cret-token protocol "$IMAGE" > "$TMP/probe.log" 2>&1; then
  sed 's/^/     /' "$TMP/probe.log"; pass "protocol checks"
else
  cat "$TMP/probe.log"; fail "protocol checks"
fi

# --- fairness and latest-frame-wins: one fast sender, two slow ones, one worker
drops_before=$(metric 'shoal_stream_frames_total{result="dropped"}')
common=(--server "127.0.0.1:$PORT" --frames "$TMP/frames" --duration 6 --token-file "$TMP/token" --quiet)
timeout 60 "$SHOAL" stream "${common[@]}" --fps 80 --client-id fast > "$TMP/fast.log" 2>&1 &
F=$!
timeout 60 "$SHOAL" stream "${common[@]}" --fps 20 --client-id slowA > "$TMP/a.log" 2>&1 &
A=$!
timeout 60 "$SHOAL" stream "${common[@]}" --fps 20 --client-id slowB > "$TMP/b.log" 2>&1
B=$?
wait $F; FR=$?
wait $A; AR=$?
if [ $FR -ne 0 ] || [ $AR -ne 0 ] || [ $B -ne 0 ]; then
  cat "$TMP/fast.log" "$TMP/a.log" "$TMP/b.log"; fail "stream clients failed ($FR $AR $B)"
else
  fj=$(tail -n1 "$TMP/fast.log"); aj=$(tail -n1 "$TMP/a.log"); bj=$(tail -n1 "$TMP/b.log")
  fres=$(json_field "$fj" results); ares=$(json_field "$aj" results); bres=$(json_field "$bj" results)
  fdrop=$(json_field "$fj" dropped); lost=$(( $(json_field "$fj" lost) + $(json_field "$aj" lost) + $(json_field "$bj" lost) ))
  echo "     results fast=$fres slowA=$ares slowB=$bres, fast dropped $fdrop"
  [ "$ares" -gt 0 ] && [ "$bres" -gt 0 ] && pass "every wearer got results" || fail "a slow wearer got nothing"
  slow_min=$(( ares < bres ? ares : bres ))
  # Round-robin: one frame per turn per wearer, so the fast one gets no more than its share.
  [ "$fres" -le $(( slow_min * 3 / 2 + 2 )) ] && pass "the fast sender does not starve the others" \
    || fail "fast sender got $fres results against $slow_min"
  [ "$fdrop" -gt 0 ] && pass "the fast sender's stale frames were dropped ($fdrop)" || fail "no drops counted"
  [ "$lost" -eq 0 ] && pass "every frame answered or reported dropped" || fail "$lost frames lost"
  drops_after=$(metric 'shoal_stream_frames_total{result="dropped"}')
  total_drops=$(( $(json_field "$aj" dropped) + $(json_field "$bj" dropped) + fdrop ))
  [ $(( drops_after - drops_before )) -eq "$total_drops" ] \
    && pass "/metrics counts the same drops as the clients ($total_drops)" \
    || fail "/metrics drops $((drops_after - drops_before)) vs clients' $total_drops"
  age=$(metric 'shoal_stream_frame_age_ms{quantile="0.99"}')
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$age" \
    && pass "/metrics reports frame age p99 ($age ms)" || fail "frame age p99 $age"
fi

# --- a video file through ffmpeg (skipped where ffmpeg is not installed)
if command -v ffmpeg >/dev/null; then
  ffmpeg -nostdin -loglevel error -loop 1 -t 2 -i "$IMAGE" -vf scale=320:240 -c:v mjpeg "$TMP/clip.avi"
  if timeout 60 "$SHOAL" stream --server "127.0.0.1:$PORT" --video "$TMP/clip.avi" --fps 5 --duration 2 \
      --token-file "$TMP/token" --quiet > "$TMP/video.log" 2>&1; then
    vj=$(tail -n1 "$TMP/video.log")
    [ "$(json_field "$vj" results)" -gt 0 ] && [ "$(json_field "$vj" errors)" -eq 0 ] \
      && pass "a video file streamed through ffmpeg ($(json_field "$vj" results) results)" || fail "video: $vj"
  else
    cat "$TMP/video.log"; fail "shoal stream --video"
  fi
else
  echo "skip ffmpeg not installed: --video not checked"
fi

# --- heartbeat and idle timeout
if timeout 30 $PROBE "$PORT" s3cret-token idle 1 3 > "$TMP/idle.log" 2>&1; then
  sed 's/^/     /' "$TMP/idle.log"; pass "heartbeat and idle timeout"
else
  cat "$TMP/idle.log"; fail "heartbeat and idle timeout"
fi

# --- the stream cap
pids=()
for i in 1 2 3 4; do
  timeout 30 $PROBE "$PORT" s3cret-token hold 20 > "$TMP/hold$i.log" 2>&1 &
  pids+=($!)
done
for _ in $(seq 100); do [ "$(metric shoal_stream_active)" = 4 ] && break; sleep 0.1; done
[ "$(upgrade_status client=five "${AUTH[@]}")" = 503 ] && pass "a stream over --max-streams 4: 503" \
  || fail "stream cap not applied"

# --- draining: /readyz goes false first, the streams go away with 1001, the server exits 0
kill -TERM "$SERVER_PID"
sleep 0.5
code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")
[ "$code" = 503 ] && pass "draining: /readyz 503 while streams still run" || fail "draining readyz $code"
[ "$(metric shoal_stream_active)" = 4 ] && pass "draining: streams still served" || fail "streams gone while draining"
for p in "${pids[@]}"; do wait "$p"; done
goaway=$(grep -l '^close 1001' "$TMP"/hold*.log | wc -l)
[ "$goaway" -eq 4 ] && pass "the streams were closed with 1001 (going away)" || { cat "$TMP"/hold*.log; fail "close 1001: $goaway of 4"; }
for _ in $(seq 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "server still running after SIGTERM"
else
  wait "$SERVER_PID"; rc=$?; SERVER_PID=""
  [ $rc -eq 0 ] && pass "server exited 0 after draining" || fail "server exit status $rc"
fi
echo "$FAILS failure(s)"
[ $FAILS -eq 0 ]
