#!/usr/bin/env bash
# Integration test of `shoal serve`: starts it on a free loopback port over a small config
# (YOLOX-Nano + the slim face detector from ../shared/real-models), and checks:
#  - /healthz, /readyz; results of POST /v1/infer equal `shoal run --json`'s (same detections);
#  - load/unload through the API change /v1/models and /metrics consistently; PUT /v1/budget;
#  - bad requests get the right status and a JSON error, and the server keeps serving;
#  - a slow client is dropped by the connection timeout while others are served;
#  - SIGTERM lets an in-flight request finish, then the server exits 0.
# Usage: test_server.sh SHOAL_BINARY SHARED_DIR. Exit 77 (skipped) without the shared models.
# Every request is bounded by curl's --max-time; the server is killed on every exit path.
set -uo pipefail

SHOAL=${1:?usage: test_server.sh SHOAL_BINARY SHARED_DIR}
SHARED=${2:?usage: test_server.sh SHOAL_BINARY SHARED_DIR}
RM=$SHARED/real-models
if [ ! -f "$RM/yolox_nano/model.onnx" ] || [ ! -f "$RM/face_slim320_simplified/model.onnx" ]; then
  echo "skipped: $RM not found"
  exit 77
fi
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "skipped: $tool not installed"; exit 77; }
done

TMP=$(mktemp -d /tmp/shoal-server-test.XXXXXX)
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

cat > "$TMP/serve.yaml" <<EOF
models:
  detector:
    path: $RM/yolox_nano/model.onnx
    task: yolox
    letterbox: top_left
    color: bgr
    scale: 1.0
    score_threshold: 0.3
    agnostic_nms: true
    preload: true
  face:
    path: $RM/face_slim320_simplified/model.onnx
    task: classify
    decoder: none
modes:
  crossing: [detector]
  faces: [face]
inference:
  device: cpu
  threads: 1
EOF
printf 'test-token-%s\n' "$RANDOM$RANDOM" > "$TMP/token"
chmod 600 "$TMP/token"
TOKEN=$(head -n1 "$TMP/token")
AUTH="Authorization: Bearer $TOKEN"
IMG1=$RM/images/street/000000001584.jpg
IMG2=$RM/images/indoor/000000000139.jpg

# Requests are slow in Debug/ASan builds: a generous request timeout, a short connection
# timeout (the slow-client check waits for it), a small body limit (4 MiB).
"$SHOAL" serve --config "$TMP/serve.yaml" --listen 127.0.0.1:0 --workers 2 --queue 8 \
  --timeout-ms 120000 --connection-timeout 2 --max-body 4194304 --token-file "$TMP/token" \
  > "$TMP/serve.log" 2>&1 &
SERVER_PID=$!
PORT=""
for _ in $(seq 1 600); do   # up to 60 s: preloading in a sanitizer build is slow
  PORT=$(grep -o 'listening on 127\.0\.0\.1:[0-9]*' "$TMP/serve.log" | head -n1 | cut -d: -f2)
  [ -n "$PORT" ] && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$PORT" ]; then
  echo "server did not start:"; cat "$TMP/serve.log"; exit 1
fi
U=http://127.0.0.1:$PORT
echo "server pid $SERVER_PID on port $PORT"

# req NAME EXPECTED_CODE curl-args...: body in $TMP/NAME.body, headers in $TMP/NAME.hdr
req() {
  local name=$1 want=$2; shift 2
  local code
  code=$(curl -s --max-time 180 -o "$TMP/$name.body" -D "$TMP/$name.hdr" -w '%{http_code}' "$@")
  if [ "$code" = "$want" ]; then pass "$name: HTTP $code"; return 0; fi
  fail "$name: HTTP $code, expected $want: $(head -c 300 "$TMP/$name.body")"
  return 1
}
# py NAME EXPR: evaluates a Python expression over j = the JSON body of NAME; non-zero if false
py() {
  python3 - "$TMP/$1.body" "$2" <<'PYEOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("  not JSON:", e); sys.exit(1)
ok = eval(sys.argv[2])
sys.exit(0 if ok else 1)
PYEOF
}
# err NAME CODE curl-args...: expects CODE and a JSON error body {"error":{"code":CODE,...}}
err() {
  local name=$1 want=$2; shift 2
  req "$name" "$want" "$@" || return
  if grep -qi '^content-type: application/json' "$TMP/$name.hdr" &&
     py "$name" "j['error']['code'] == $want and isinstance(j['error']['message'], str) and j['error']['message']"; then
    pass "$name: JSON error body"
  else
    fail "$name: no JSON error body: $(head -c 300 "$TMP/$name.body")"
  fi
}
metric() {   # metric NAME_WITH_LABELS -> value
  curl -s --max-time 30 -H "$AUTH" "$U/metrics" | awk -v k="$1" '$1 == k {print $2}'
}
alive() { req "alive-$1" 200 "$U/healthz"; }

# --- health ----------------------------------------------------------------------------
req healthz 200 "$U/healthz" && py healthz "j['status'] == 'ok'" && pass "healthz body"
req readyz 200 "$U/readyz" && py readyz "j['ready'] is True" && pass "readyz body"

# --- results equal shoal run's ------------------------------------------------------------
compare_with_run() {   # compare_with_run NAME IMAGE
  local name=$1 img=$2
  "$SHOAL" run --config "$TMP/serve.yaml" --mode crossing --json "$img" > "$TMP/$name.run.json" 2>"$TMP/$name.run.err" ||
    { fail "$name: shoal run failed: $(cat "$TMP/$name.run.err")"; return; }
  req "$name" 200 -H "$AUTH" -H 'Content-Type: image/jpeg' --data-binary "@$img" "$U/v1/infer?mode=crossing" || return
  if python3 - "$TMP/$name.run.json" "$TMP/$name.body" <<'PYEOF'
import json, sys
run = json.load(open(sys.argv[1]))["results"]
srv = json.load(open(sys.argv[2]))
assert srv["mode"] == run["mode"] == "crossing", (srv["mode"], run["mode"])
assert "server" in srv and srv["server"]["run_ms"] >= 0
assert len(srv["models"]) == len(run["models"])
n = 0
for a, b in zip(run["models"], srv["models"]):
    assert a["model"] == b["model"] and a["task"] == b["task"]
    da, db = a["detections"], b["detections"]
    assert len(da) == len(db), (len(da), len(db))
    for x, y in zip(da, db):
        assert x["class_id"] == y["class_id"], (x, y)
        assert abs(x["score"] - y["score"]) <= 2e-3, (x, y)
        assert all(abs(p - q) <= 0.05 for p, q in zip(x["box"], y["box"])), (x, y)
    n += len(da)
assert n > 0, "no detections at all: the comparison would prove nothing"
print("  %d detections match" % n)
PYEOF
  then pass "$name: same detections as shoal run --json"; else fail "$name: detections differ from shoal run"; fi
}
compare_with_run infer-street "$IMG1"
compare_with_run infer-indoor "$IMG2"

# Two requests at once (two workers) give the same answer as one at a time.
for i in 1 2; do
  curl -s --max-time 180 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?mode=crossing" > "$TMP/par$i.body" &
done
wait_pids=$(jobs -p | grep -v "^$SERVER_PID\$")
for p in $wait_pids; do wait "$p"; done
if python3 - "$TMP/infer-street.body" "$TMP/par1.body" "$TMP/par2.body" <<'PYEOF'
import json, sys
ds = [json.load(open(f))["models"][0]["detections"] for f in sys.argv[1:]]
assert ds[0] == ds[1] == ds[2], ds
PYEOF
then pass "concurrent requests: identical detections"; else fail "concurrent requests differ"; fi

# Raw RGB: right size runs, wrong size is refused.
head -c $((64 * 48 * 3)) /dev/urandom > "$TMP/raw.rgb"
req raw-rgb 200 -H "$AUTH" --data-binary "@$TMP/raw.rgb" "$U/v1/infer?mode=crossing&width=64&height=48" &&
  py raw-rgb "j['models'][0]['model'] == 'detector'" && pass "raw RGB result"
err raw-rgb-size 400 -H "$AUTH" --data-binary "@$TMP/raw.rgb" "$U/v1/infer?mode=crossing&width=64&height=47"

# --- model control: /v1/models and /metrics agree -------------------------------------------
model_state() {   # model_state NAME -> state in /v1/models
  curl -s --max-time 30 -H "$AUTH" "$U/v1/models" |
    python3 -c "import json,sys; print([m['state'] for m in json.load(sys.stdin)['models'] if m['name']=='$1'][0])"
}
loads0=$(metric 'shoal_model_loads_total{model="face"}')
req load-face 200 -X POST -H "$AUTH" "$U/v1/models/face/load" && py load-face "j['state'] == 'resident'" && pass "load answer"
[ "$(model_state face)" = resident ] && pass "/v1/models: face resident" || fail "/v1/models: face not resident"
[ "$(metric 'shoal_model_resident{model="face"}')" = 1 ] && pass "/metrics: face resident" || fail "/metrics: face resident != 1"
loads1=$(metric 'shoal_model_loads_total{model="face"}')
[ "$loads1" -gt "${loads0:-0}" ] 2>/dev/null && pass "/metrics: loads_total went $loads0 -> $loads1" || fail "loads_total $loads0 -> $loads1"
req infer-face 200 -H "$AUTH" --data-binary "@$RM/images/people/1.jpg" "$U/v1/infer?model=face" &&
  py infer-face "j['models'][0]['model'] == 'face'" && pass "infer by model name"
req unload-face 200 -X POST -H "$AUTH" "$U/v1/models/face/unload" && py unload-face "j['state'] != 'resident'" && pass "unload answer"
[ "$(model_state face)" != resident ] && pass "/v1/models: face not resident" || fail "/v1/models: face still resident"
[ "$(metric 'shoal_model_resident{model="face"}')" = 0 ] && pass "/metrics: face not resident" || fail "/metrics: face resident != 0"
err load-unknown 404 -X POST -H "$AUTH" "$U/v1/models/nope/load"
err load-path 404 -X POST -H "$AUTH" "$U/v1/models/..%2F..%2Fetc%2Fpasswd/load"
err bad-action 404 -X POST -H "$AUTH" "$U/v1/models/face/explode"

# --- budget --------------------------------------------------------------------------------
req budget-set 200 -X PUT -H "$AUTH" --data '{"bytes": 2000000000}' "$U/v1/budget" &&
  py budget-set "j['budget_bytes'] == 2000000000" && pass "budget answer"
[ "$(metric 'shoal_device_bytes{device="cpu",kind="budget"}')" = 2000000000 ] && pass "/metrics: budget" || fail "/metrics: budget not 2e9"
err budget-too-small 409 -X PUT -H "$AUTH" --data '{"bytes": 1000}' "$U/v1/budget"
err budget-fraction 400 -X PUT -H "$AUTH" --data '{"bytes": 1.5}' "$U/v1/budget"
err budget-negative 400 -X PUT -H "$AUTH" --data '{"bytes": -1}' "$U/v1/budget"
err budget-garbage 400 -X PUT -H "$AUTH" --data 'bytes=5' "$U/v1/budget"
err budget-extra-key 400 -X PUT -H "$AUTH" --data '{"bytes": 5, "x": 1}' "$U/v1/budget"
req budget-reset 200 -X PUT -H "$AUTH" --data '{"bytes": 0}' "$U/v1/budget"

# --- bad requests: the right status, a JSON error, and the server keeps serving -------------
err no-token 401 --data-binary "@$IMG1" "$U/v1/infer?mode=crossing"
err wrong-token 401 -H "Authorization: Bearer wrong" "$U/v1/models"
err empty-body 400 -X POST -H "$AUTH" "$U/v1/infer?mode=crossing"
head -c 5000 /dev/urandom > "$TMP/garbage.bin"
err garbage-image 400 -H "$AUTH" --data-binary "@$TMP/garbage.bin" "$U/v1/infer?mode=crossing"
head -c 200 "$IMG1" > "$TMP/truncated.jpg"
err truncated-jpeg 400 -H "$AUTH" --data-binary "@$TMP/truncated.jpg" "$U/v1/infer?mode=crossing"
head -c $((50 * 1024 * 1024)) /dev/zero > "$TMP/big.bin"
err body-50mb 413 -H "$AUTH" --data-binary "@$TMP/big.bin" "$U/v1/infer?mode=crossing"
err body-50mb-chunked 413 -H "$AUTH" -H 'Transfer-Encoding: chunked' --data-binary "@$TMP/big.bin" "$U/v1/infer?mode=crossing"
rm -f "$TMP/big.bin"
err unknown-mode 404 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?mode=nope"
err unknown-model 404 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?model=nope"
err model-as-path 404 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?model=$RM/yolox_nano/model.onnx"
err no-target 400 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer"
err two-targets 400 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?mode=crossing&model=detector"
err unknown-param 400 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?mode=crossing&debug=1"
err bad-width 400 -H "$AUTH" --data-binary "@$TMP/raw.rgb" "$U/v1/infer?mode=crossing&width=-64&height=48"
err wrong-method-get 405 -H "$AUTH" "$U/v1/infer?mode=crossing"
grep -qi '^allow: POST' "$TMP/wrong-method-get.hdr" && pass "405 names the allowed method" || fail "405 without Allow"
err wrong-method-delete 405 -X DELETE -H "$AUTH" "$U/v1/models"
err wrong-method-budget 405 -X POST -H "$AUTH" --data '{"bytes": 0}' "$U/v1/budget"
err no-endpoint 404 -H "$AUTH" "$U/v2/whatever"
err long-url 414 -H "$AUTH" "$U/v1/$(head -c 400 /dev/zero | tr '\0' a)"
alive after-bad-requests

# Slow client: headers and part of the body, then nothing. The connection timeout (2 s)
# drops it; meanwhile the server answers others.
python3 - "$PORT" "$TOKEN" > "$TMP/slow.out" 2>&1 <<'PYEOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=15)
s.sendall(("POST /v1/infer?mode=crossing HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: 100000\r\n\r\n" % sys.argv[2]).encode() + b"\xff\xd8\xff" * 10)
t0 = time.time()
try:
    data = s.recv(65536)
    print("closed" if not data else "answered", round(time.time() - t0, 2))
except socket.timeout:
    print("still open after 15 s")
PYEOF
SLOW_PID=$!
sleep 0.5
alive during-slow-client
req infer-during-slow 200 -H "$AUTH" --data-binary "@$IMG1" "$U/v1/infer?mode=crossing"
wait $SLOW_PID
read -r slow_state slow_s < "$TMP/slow.out"
if [ "$slow_state" = closed ] && python3 -c "import sys; sys.exit(0 if float('$slow_s') < 10 else 1)"; then
  pass "slow client dropped after ${slow_s} s"
else
  fail "slow client: $(cat "$TMP/slow.out")"
fi
alive after-slow-client

# --- graceful SIGTERM: an in-flight request finishes, then exit 0 ----------------------------
curl -s --max-time 180 -o "$TMP/inflight.body" -w '%{http_code}' -H "$AUTH" --data-binary "@$IMG2" \
  "$U/v1/infer?mode=crossing" > "$TMP/inflight.code" &
CURL_PID=$!
for _ in $(seq 1 100); do   # until the request is being run
  [ "$(metric shoal_http_workers_busy)" = 1 ] && break
  sleep 0.05
done
kill -TERM "$SERVER_PID"
wait $CURL_PID
[ "$(cat "$TMP/inflight.code")" = 200 ] && pass "in-flight request finished during shutdown" ||
  fail "in-flight request during shutdown got $(cat "$TMP/inflight.code")"
rc=0
for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then
  fail "server still running 30 s after SIGTERM"
else
  wait "$SERVER_PID"; rc=$?
  [ $rc -eq 0 ] && pass "server exited 0 after SIGTERM" || fail "server exited $rc after SIGTERM"
  SERVER_PID=""
fi
grep -q "shoal serve: stopped" "$TMP/serve.log" && pass "server logged a clean stop" || fail "no clean stop in the log"
if grep -qiE "AddressSanitizer|LeakSanitizer|runtime error:" "$TMP/serve.log"; then
  fail "sanitizer report in the server log"; sed -n '1,80p' "$TMP/serve.log"
fi

echo
if [ $FAILS -ne 0 ]; then
  echo "$FAILS check(s) failed; server log:"; tail -n 40 "$TMP/serve.log"; exit 1
fi
echo "all server checks passed"
