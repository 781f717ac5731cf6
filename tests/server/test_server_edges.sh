#!/usr/bin/env bash
# `shoal serve` at the edges a field deployment meets: hostile images, slow and vanished
# clients, reloads, busy ports, IPv6, strict flags and sizes, logs and request ids.
#  - flags: every numeric flag strict with its range; sizes as 4MB / 60%; defaults of --help
#    equal the settings of a config without a server: section;
#  - a busy port is refused, naming the port; [::1]:PORT serves;
#  - decompression bombs: 413 above max pixels, 429 at the host limit (shown in /metrics);
#  - too-large headers get a JSON 431, and so do the heads libmicrohttpd would answer in HTML
#    (raw socket: malformed line 400, URI 414, head over 64 KiB 431, ...); /v1/infer without mode= runs the default_mode;
#  - a budget that can never hold the model answers 422 without Retry-After;
#  - jobs of clients that went away are dropped from the queue and counted;
#  - trickling clients are cut by the receive deadline, and /healthz is answered meanwhile;
#  - X-Request-Id echoed or made; --log-json access lines; SIGHUP reloads, keeps serving
#    and keeps the old config when the new one is broken.
# Usage: test_server_edges.sh SHOAL_BINARY SHARED_DIR. Exit 77 (skipped) without the shared
# models. Every request is bounded by curl's --max-time; servers are killed on every exit path.
set -uo pipefail

SHOAL=${1:?usage: test_server_edges.sh SHOAL_BINARY SHARED_DIR}
SHARED=${2:?usage: test_server_edges.sh SHOAL_BINARY SHARED_DIR}
RM=$SHARED/real-models
if [ ! -f "$RM/yolox_nano/model.onnx" ]; then
  echo "skipped: $RM not found"
  exit 77
fi
for tool in curl python3; do
  command -v $tool >/dev/null || { echo "skipped: $tool not installed"; exit 77; }
done

TMP=$(mktemp -d /tmp/shoal-server-edges.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do
    kill -KILL "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

FAILS=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; FAILS=$((FAILS + 1)); }
check() {   # check NAME COMMAND...: passes when the command succeeds
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

write_config() {   # write_config FILE [extra mode name]
  cat > "$1" <<EOF
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
${2:+  $2: [detector]}
default_mode: crossing
inference:
  device: cpu
  threads: 1
EOF
}
write_config "$TMP/serve.yaml"
IMG=$RM/images/street/000000001584.jpg

# start NAME ARGS...: starts a server, sets PORT and SPID; the log is $TMP/NAME.log
start() {
  local name=$1; shift
  "$SHOAL" serve "$@" > "$TMP/$name.log" 2>&1 &
  SPID=$!
  PIDS+=("$SPID")
  PORT=""
  for _ in $(seq 1 600); do   # up to 60 s: preloading in a sanitizer build is slow
    PORT=$(grep -o 'listening on .*:[0-9]* with' "$TMP/$name.log" | head -n1 | sed 's/.*:\([0-9]*\) with/\1/')
    [ -n "$PORT" ] && return 0
    kill -0 "$SPID" 2>/dev/null || break
    sleep 0.1
  done
  echo "server $name did not start:"; cat "$TMP/$name.log"; return 1
}
stop() {   # stop PID: SIGTERM, then the exit status must be 0
  kill -TERM "$1"
  wait "$1"
}

# req NAME EXPECTED_CODE curl-args...: body in $TMP/NAME.body, headers in $TMP/NAME.hdr
req() {
  local name=$1 want=$2; shift 2
  local code
  code=$(curl -s --max-time 60 -o "$TMP/$name.body" -D "$TMP/$name.hdr" -w '%{http_code}' "$@")
  if [ "$code" = "$want" ]; then pass "$name: HTTP $code"; return 0; fi
  fail "$name: HTTP $code, expected $want: $(head -c 300 "$TMP/$name.body")"
  return 1
}
py() {   # py NAME EXPR: a Python expression over j = the JSON body of NAME
  python3 - "$TMP/$1.body" "$2" <<'PYEOF'
import json, sys
try:
    j = json.load(open(sys.argv[1]))
except Exception as e:
    print("  not JSON:", e); sys.exit(1)
sys.exit(0 if eval(sys.argv[2]) else 1)
PYEOF
}
err() {   # err NAME CODE curl-args...: CODE with a JSON error body
  local name=$1 want=$2; shift 2
  req "$name" "$want" "$@" || return 1
  if grep -qi '^content-type: application/json' "$TMP/$name.hdr" &&
     py "$name" "j['error']['code'] == $want and j['error']['message']"; then
    pass "$name: JSON error body"
  else
    fail "$name: no JSON error body: $(head -c 300 "$TMP/$name.body")"; return 1
  fi
}
metric() {   # metric PORT NAME_WITH_LABELS -> value
  curl -s --max-time 30 "http://127.0.0.1:$1/metrics" | awk -v k="$2" '$1 == k {print $2}'
}

# --- flags: strict numbers with their range, sizes, defaults that agree -----------------------
flag_refused() {   # flag_refused WANT_TEXT ARGS...
  local want=$1; shift
  "$SHOAL" serve --config "$TMP/serve.yaml" "$@" > "$TMP/flag.out" 2>&1
  local rc=$?
  if [ $rc -eq 2 ] && grep -qF -- "$want" "$TMP/flag.out"; then pass "refused $*"; else
    fail "$* -> exit $rc: $(cat "$TMP/flag.out")"; fi
}
flag_refused "1..8" --workers abc
flag_refused "1..8" --workers 9
flag_refused "1..65536" --queue 0
flag_refused "1..3600000" --timeout-ms 12x
flag_refused "1..4096" --max-connections -1
flag_refused "1..4096" --max-connections-per-client 0
flag_refused "1..3600" --receive-timeout 1e3
flag_refused "1..67108864" --max-pixels 99999999999
flag_refused "512MB" --max-body 12XB
flag_refused "150%" --budget 150%
flag_refused "debug, info, warn or error" --log-level loud
flag_refused "in brackets" --listen ::1:8080
flag_refused "0..65535" --listen 127.0.0.1:70000

"$SHOAL" serve --help > "$TMP/help.txt"
write_config "$TMP/plain.yaml"
start plain --config "$TMP/plain.yaml" --listen 127.0.0.1:0 --budget 60% --max-body 4MB || exit 1
PLAIN_PID=$SPID PLAIN_PORT=$PORT
check "--max-body 4MB is 4194304 bytes" grep -q 'body limit 4194304 bytes' "$TMP/plain.log"
help_timeout=$(grep -o 'timeout [0-9]* ms' "$TMP/help.txt" | head -n1)
help_body=$(grep -o 'body limit [0-9]* bytes' "$TMP/help.txt" | head -n1)
check "--help's default timeout ($help_timeout) is the one a config without server: gets" \
  grep -qF "$help_timeout" "$TMP/plain.log"
"$SHOAL" serve --config "$TMP/plain.yaml" --listen 127.0.0.1:0 --workers 1 > "$TMP/body-default.log" 2>&1 &
BD_PID=$!; PIDS+=("$BD_PID")
for _ in $(seq 1 600); do grep -q 'listening on' "$TMP/body-default.log" && break; sleep 0.1; done
check "--help's default body limit ($help_body) is the one a config without server: gets" \
  grep -qF "$help_body" "$TMP/body-default.log"
check "deploy/README.md states the same defaults" bash -c \
  "grep -qF '${help_timeout#timeout }' '$(dirname "$0")/../../deploy/README.md' && grep -qF '$((${help_body//[^0-9]/} >> 20)) MiB' '$(dirname "$0")/../../deploy/README.md'"
stop "$BD_PID"

# --- a busy port is refused, naming the port; IPv6 ---------------------------------------------
"$SHOAL" serve --config "$TMP/plain.yaml" --listen "127.0.0.1:$PLAIN_PORT" > "$TMP/busy.log" 2>&1 &
BUSY_PID=$!; PIDS+=("$BUSY_PID")
busy_rc=0
for _ in $(seq 1 600); do kill -0 $BUSY_PID 2>/dev/null || break; sleep 0.1; done
if kill -0 $BUSY_PID 2>/dev/null; then busy_rc=running; kill -KILL $BUSY_PID; else wait $BUSY_PID; busy_rc=$?; fi
if [ "$busy_rc" = 1 ] && grep -q "port $PLAIN_PORT is already in use" "$TMP/busy.log"; then
  pass "second server on a busy port refused: $(tail -n1 "$TMP/busy.log")"
else
  fail "second server on port $PLAIN_PORT: exit $busy_rc: $(tail -n2 "$TMP/busy.log")"
fi
stop "$PLAIN_PID"; check "server exited 0 after SIGTERM" test $? -eq 0

if python3 -c 'import socket; s=socket.socket(socket.AF_INET6); s.bind(("::1", 0))' 2>/dev/null; then
  start v6 --config "$TMP/plain.yaml" --listen '[::1]:0' --workers 1 || exit 1
  req ipv6-healthz 200 -g "http://[::1]:$PORT/healthz"
  req ipv6-infer 200 -g --data-binary "@$IMG" "http://[::1]:$PORT/v1/infer?mode=crossing"
  stop "$SPID"
else
  echo "skip IPv6: no ::1 here"
fi

# --- the main server: one worker, small limits, JSON logs -----------------------------------------
start main --config "$TMP/serve.yaml" --listen 127.0.0.1:0 --workers 1 --queue 16 --timeout-ms 60000 \
  --receive-timeout 2 --connection-timeout 30 --max-connections 8 --max-connections-per-client 4 \
  --host-limit 32MB --log-json || exit 1
MAIN_PID=$SPID
U=http://127.0.0.1:$PORT

req default-mode 200 --data-binary "@$IMG" "$U/v1/infer" && py default-mode "j['mode'] == 'crossing'" &&
  pass "no mode= runs the default mode"

# request ids: echoed when sane, made otherwise; the access log carries them
req rid-given 200 -H 'X-Request-Id: glasses-42.a:b_c' "$U/healthz"
check "X-Request-Id echoed" grep -qi '^x-request-id: glasses-42.a:b_c' "$TMP/rid-given.hdr"
req rid-insane 200 -H 'X-Request-Id: two words<script>' "$U/healthz"
made=$(grep -i '^x-request-id:' "$TMP/rid-insane.hdr" | tr -d '\r' | cut -d' ' -f2)
check "insane X-Request-Id replaced by a made one ($made)" bash -c "[ -n '$made' ] && [ '$made' != 'two' ]"
req rid-none 200 "$U/healthz"
made2=$(grep -i '^x-request-id:' "$TMP/rid-none.hdr" | tr -d '\r' | cut -d' ' -f2)
check "made request ids differ ($made, $made2)" bash -c "[ -n '$made2' ] && [ '$made' != '$made2' ]"

# decompression bombs: tiny PNGs declaring huge all-zero images
python3 - "$TMP" <<'PYEOF'
import struct, sys, zlib
def png(path, w, h):
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    z = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * w)
    data = b"".join(z.compress(row * 64) for _ in range(h // 64)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", data) + chunk(b"IEND", b""))
png(sys.argv[1] + "/bomb8k.png", 8192, 8192)
png(sys.argv[1] + "/bomb2k.png", 2048, 2048)
PYEOF
echo "bomb sizes: $(stat -c '%n %s' "$TMP"/bomb*.png | sed "s|$TMP/||" | tr '\n' ' ')"
err bomb-8k 413 --data-binary "@$TMP/bomb8k.png" "$U/v1/infer?mode=crossing"
err bomb-2k-host-limit 429 --data-binary "@$TMP/bomb2k.png" "$U/v1/infer?mode=crossing"
check "429 at the host limit names the limit" grep -q 'host limit of 33554432 bytes' "$TMP/bomb-2k-host-limit.body"
check "/metrics: decode limit 33554432" test "$(metric "$PORT" 'shoal_http_decode_bytes{kind="limit"}')" = 33554432
check "/metrics: a refused decode counted" test "$(metric "$PORT" shoal_http_decode_refused_total)" -ge 1
check "/metrics: no decode bytes left charged" test "$(metric "$PORT" 'shoal_http_decode_bytes{kind="in_use"}')" = 0

# headers too large for the server: our JSON 431, not libmicrohttpd's HTML
err big-header 431 -H "X-Pad: $(head -c 40000 /dev/zero | tr '\0' a)" "$U/healthz"

# heads libmicrohttpd itself would answer with an HTML page, sent as raw bytes: every one gets
# the status and a JSON error body (the connection gate, src/server/gate.c)
raw() {   # raw NAME CODE PYTHON_BYTES_EXPR: sends the bytes, wants CODE with a JSON error
  if python3 - "$PORT" "$2" "$3" <<'PYEOF'; then pass "raw $1: HTTP $2 with a JSON error"; else fail "raw $1"; fi
import json, socket, sys
port, want, data = int(sys.argv[1]), int(sys.argv[2]), eval(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
try:
    s.sendall(data)
except OSError:
    pass   # answered and closed before all was sent: the answer is still there to read
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
head, _, body = out.partition(b"\r\n\r\n")
lines = head.decode("latin-1").split("\r\n")
hdr = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
try:
    j = json.loads(body)
    ok = (lines[0].split()[1] == str(want) and hdr.get("content-type") == "application/json"
          and j["error"]["code"] == want and j["error"]["message"])
except Exception as e:
    ok = False
if not ok:
    print("  got:", out[:300])
sys.exit(0 if ok else 1)
PYEOF
}
raw malformed-line 400 'b"\x01\x02 hello\r\n\r\n"'
raw no-version 400 'b"GET /healthz\r\n\r\n"'
raw http11-no-host 400 'b"GET /healthz HTTP/1.1\r\n\r\n"'
raw bad-content-length 400 'b"POST /v1/infer HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n"'
raw uri-70k 414 'b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: a\r\n\r\n"'
raw head-70k 431 'b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"a" * 70000 + b"\r\n\r\n"'
raw fields-200 431 'b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n"'
raw http-2.0 505 'b"GET /healthz HTTP/2.0\r\nHost: a\r\n\r\n"'
raw gzip-body 501 'b"POST /v1/infer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"'
# the largest head the gate lets through reaches the server's own handler, which answers it
raw head-64k-to-handler 431 'b"GET /healthz HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%02d: " % i + b"v" * 640 + b"\r\n" for i in range(98)) + b"\r\n"'
# keep-alive stays where libmicrohttpd keeps it (answers queued after a body: a GET answered in
# its first callback closes): a second request on the same connection is answered too
if python3 - "$PORT" <<'PYEOF'; then pass "keep-alive: two requests on one connection"; else fail "keep-alive"; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
answers = []
for _ in range(2):
    s.sendall(b"PUT /v1/budget HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n{\"bytes\": 0}")
    out = b""
    while not (b"\r\n\r\n" in out and out.endswith(b"}")):
        b = s.recv(4096)
        if not b:
            break
        out += b
    answers.append(out)
print("  answers:", [a[:15] for a in answers])
sys.exit(0 if all(a.startswith(b"HTTP/1.1 200") for a in answers) else 1)
PYEOF

# later requests on a kept-alive connection and chunked bodies, which libmicrohttpd would also
# answer with HTML: the gate checks the whole stream (src/server/framing.c). raw_seq sends the
# bytes (in pieces when given a list) and wants the answers' codes in order, each error in JSON,
# and the connection closed after the last.
raw_seq() {   # raw_seq NAME "CODE CODE..." PYTHON_BYTES_OR_LIST_EXPR
  if python3 - "$PORT" "$2" "$3" <<'PYEOF'; then pass "raw $1: answers $2, errors in JSON"; else fail "raw $1"; fi
import json, socket, sys, time
port, want, data = int(sys.argv[1]), [int(c) for c in sys.argv[2].split()], eval(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
try:
    for piece in (data if isinstance(data, list) else [data]):
        s.sendall(piece)
        time.sleep(0.05)
except OSError:
    pass   # answered and closed before all was sent: the answers are still there to read
out = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    out += b
got, ok = [], True
while out:
    head, sep, rest = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    hdr = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    if not sep or "content-length" not in hdr:
        ok = False
        print("  unframed answer:", out[:200])
        break
    n = int(hdr["content-length"])
    body, out = rest[:n], rest[n:]
    code = int(lines[0].split()[1])
    got.append(code)
    if code >= 400:
        try:
            j = json.loads(body)
            ok &= hdr.get("content-type") == "application/json" and j["error"]["code"] == code and bool(j["error"]["message"])
        except Exception:
            ok = False
            print("  not JSON:", body[:200])
if got != want or not ok:
    print("  got codes", got, "wanted", want)
sys.exit(0 if got == want and ok else 1)
PYEOF
}
GOOD='b"GET /readyz HTTP/1.1\r\nHost: a\r\n\r\n"'
CHUNKED='b"PUT /v1/budget HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"'
raw_seq keepalive-then-no-host "200 400" "[$GOOD, b'GET /readyz HTTP/1.1\r\n\r\n']"
raw_seq keepalive-then-garbage "200 400" "[$GOOD, b'\x01\x02 hello\r\n\r\n']"
raw_seq keepalive-then-http2 "200 505" "[$GOOD, b'GET /readyz HTTP/2.0\r\nHost: a\r\n\r\n']"
raw_seq keepalive-then-uri-70k "200 414" "[$GOOD, b'GET /' + b'a' * 70000 + b' HTTP/1.1\r\nHost: a\r\n\r\n']"
raw_seq keepalive-then-head-70k "200 431" "[$GOOD, b'GET /readyz HTTP/1.1\r\nHost: a\r\nX-Pad: ' + b'a' * 70000 + b'\r\n\r\n']"
raw_seq keepalive-then-gzip "200 501" "[$GOOD, b'POST /v1/infer HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n']"
raw_seq pipelined-good "200 200 200" "$GOOD * 2 + b'GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n'"
raw_seq pipelined-then-bad "200 200 400" "$GOOD * 2 + b'GET /readyz HTTP/1.1\r\nHost a\r\n\r\n' + $GOOD"
raw_seq chunked-good "200 200" "[$CHUNKED + b'4;x=1\r\n{\x22by\r\n8\r\ntes\x22: 0}\r\n0\r\nX-Sum: 1\r\n\r\n', $GOOD]"
raw_seq chunk-size-not-hex "400" "$CHUNKED + b'zz\r\n'"
raw_seq chunk-size-no-crlf "400" "$CHUNKED + b'4\n{\x22by'"
raw_seq chunk-longer-than-size "400" "$CHUNKED + b'4\r\n{\x22bytes\x22: 0}\r\n0\r\n\r\n'"
raw_seq chunk-size-space "400" "$CHUNKED + b'C ;a=b\r\n{\x22bytes\x22: 0}\r\n0\r\n\r\n'"
raw_seq chunk-size-17-digits "400" "$CHUNKED + b'00000000000000004\r\n{\x22by\r\n'"
raw_seq chunk-over-body-limit "413" "$CHUNKED + b'FFFFFFFF\r\n'"
raw_seq chunk-bad-trailer "400" "$CHUNKED + b'0\r\nno colon\r\n\r\n'"
raw_seq keepalive-then-bad-chunk "200 400" "[$GOOD, $CHUNKED + b'1\r\n{\r\nzz\r\n']"
# a probe's first request is answered by the gate itself, HEAD without a body, and counted
raw_seq healthz-by-gate "200" "b'GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n'"
check "HEAD /healthz: 200 without a body" python3 - "$PORT" <<'PYEOF'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
s.sendall(b"HEAD /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
out = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    out += b
head, _, body = out.partition(b"\r\n\r\n")
sys.exit(0 if head.startswith(b"HTTP/1.1 200") and b"Content-Length: 15" in head and body == b"" else 1)
PYEOF

# sizes in PUT /v1/budget
req budget-512mb 200 -X PUT --data '{"bytes": "512MB"}' "$U/v1/budget" && py budget-512mb "j['budget_bytes'] == 536870912" &&
  pass "PUT /v1/budget \"512MB\" = 536870912 bytes"
req budget-pct 200 -X PUT --data '{"bytes": "60%"}' "$U/v1/budget" && py budget-pct "j['budget_bytes'] > 0" &&
  pass "PUT /v1/budget \"60%\""
err budget-bad-unit 400 -X PUT --data '{"bytes": "12XB"}' "$U/v1/budget"
req budget-off 200 -X PUT --data '{"bytes": 0}' "$U/v1/budget"

# a budget that can never hold the model: permanent 422, no Retry-After
req unload 200 -X POST "$U/v1/models/detector/unload"
req models 200 "$U/v1/models"
arenas=$(python3 -c "import json; print(json.load(open('$TMP/models.body'))['device']['in_use_bytes'])")
req budget-tiny 200 -X PUT --data "{\"bytes\": $((arenas + 1024))}" "$U/v1/budget"
err never-fits 422 --data-binary "@$IMG" "$U/v1/infer?mode=crossing" &&
  check "422 names the bytes" grep -q 'needs [0-9]* bytes' "$TMP/never-fits.body"
check "422 has no Retry-After" bash -c "! grep -qi '^retry-after' '$TMP/never-fits.hdr'"
req budget-back 200 -X PUT --data '{"bytes": 0}' "$U/v1/budget"

# clients that go away: their queued jobs are dropped and counted (one worker, 24 requests,
# each client gone after 0.25 s while the worker takes one at a time, ~25 ms each here; the queue holds 16)
gone0=$(metric "$PORT" shoal_http_jobs_client_gone_total)
for i in $(seq 1 24); do
  curl -s --max-time 0.25 -o /dev/null --data-binary "@$IMG" "$U/v1/infer?mode=crossing" &
done
wait_curls() { for p in $(jobs -p); do case " ${PIDS[*]} " in *" $p "*) ;; *) wait "$p" ;; esac; done; }
wait_curls
for _ in $(seq 1 100); do [ "$(metric "$PORT" shoal_http_workers_busy)" = 0 ] && break; sleep 0.1; done
gone1=$(metric "$PORT" shoal_http_jobs_client_gone_total)
check "jobs of vanished clients dropped and counted ($gone0 -> $gone1)" test "${gone1:-0}" -gt "${gone0:-0}"
check "/metrics: nothing left queued" test "$(metric "$PORT" shoal_http_queue_depth)" = 0

# trickling clients: 6 connections sending a byte every 0.5 s (never idle) are cut by the 2 s
# receive deadline or evicted by the per-client cap of 4; /healthz is answered meanwhile
python3 - "$PORT" > "$TMP/trickle.out" 2>&1 <<'PYEOF' &
import socket, sys, threading, time
port = int(sys.argv[1])
res = []
def trickle(i):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    t0 = time.time()
    msg = b"POST /v1/infer?mode=crossing HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000
    try:
        for b in msg:
            s.sendall(bytes([b]))
            s.settimeout(0.5)
            try:
                if not s.recv(4096):
                    break
            except socket.timeout:
                pass
            if time.time() - t0 > 8:
                break
    except OSError:
        pass
    res.append(time.time() - t0)
ts = [threading.Thread(target=trickle, args=(i,)) for i in range(6)]
for t in ts: t.start(); time.sleep(0.05)
for t in ts: t.join()
print(" ".join("%.1f" % x for x in sorted(res)))
PYEOF
TRICKLE_PID=$!
sleep 0.8
req healthz-under-trickle 200 --max-time 1 "$U/healthz"
wait $TRICKLE_PID
read -r -a cut_after < "$TMP/trickle.out"
echo "  trickling connections closed after: ${cut_after[*]} s"
check "every trickling connection cut within 4 s" python3 -c "import sys; t=[float(x) for x in '${cut_after[*]}'.split()]; sys.exit(0 if len(t) == 6 and max(t) < 4 else 1)"
check "/metrics: cut by the deadline" test "$(metric "$PORT" 'shoal_http_connections_cut_total{reason="deadline"}')" -ge 1
check "/metrics: evicted by the per-client cap" test "$(metric "$PORT" 'shoal_http_connections_cut_total{reason="evicted"}')" -ge 1

# slow heads from 80 addresses (over --max-connections 8): the oldest are cut to make room,
# and a probe still gets in at once, with its head checked like theirs (the gate keeps accepting)
ev0=$(metric "$PORT" 'shoal_http_connections_cut_total{reason="evicted"}')
python3 - "$PORT" > "$TMP/heads.out" 2>&1 <<'PYEOF' &
import socket, sys, time
port, held = int(sys.argv[1]), []
for i in range(80):
    s = socket.socket()
    s.bind(("127.0.1.%d" % (i + 1), 0))
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /healthz HTTP/1.1\r\nHo")
    held.append(s)
time.sleep(1.5)
print(len(held))
PYEOF
HEADS_PID=$!
sleep 0.7
req healthz-beside-slow-heads 200 --max-time 1 "$U/healthz"
wait $HEADS_PID
ev1=$(metric "$PORT" 'shoal_http_connections_cut_total{reason="evicted"}')
check "80 slow heads: the oldest cut to make room ($ev0 -> $ev1)" test "$((ev1 - ev0))" -ge 70

# SIGHUP: an in-flight request finishes, the new config (a new mode) is served
write_config "$TMP/serve.yaml" walking
curl -s --max-time 60 -o "$TMP/during-hup.body" -w '%{http_code}' --data-binary "@$IMG" \
  "$U/v1/infer?mode=crossing" > "$TMP/during-hup.code" &
HUP_CURL=$!
sleep 0.05
kill -HUP "$MAIN_PID"
wait $HUP_CURL
check "request in flight during SIGHUP answered 200" test "$(cat "$TMP/during-hup.code")" = 200
for _ in $(seq 1 300); do grep -q '"reloaded ' "$TMP/main.log" && break; sleep 0.1; done
check "SIGHUP reloaded the config" grep -q '"reloaded ' "$TMP/main.log"
check "server alive after SIGHUP" kill -0 "$MAIN_PID"
req after-hup 200 --data-binary "@$IMG" "$U/v1/infer?mode=walking" && pass "the reloaded config's new mode is served"
printf 'models: [not, a, map\n' > "$TMP/serve.yaml"
kill -HUP "$MAIN_PID"
for _ in $(seq 1 300); do grep -q 'keeping the old' "$TMP/main.log" && break; sleep 0.1; done
check "a broken config is logged and the old one kept" grep -q 'keeping the old' "$TMP/main.log"
req after-bad-hup 200 --data-binary "@$IMG" "$U/v1/infer?mode=walking"

# --log-json: every line after the start is one JSON object; access lines carry the id
check "--log-json: JSON lines with access records" python3 - "$TMP/main.log" <<'PYEOF'
import json, sys
acc = 0
for line in open(sys.argv[1]):
    if line.startswith("shoal serve:"):
        continue
    o = json.loads(line)
    assert "ts" in o and o["level"] in ("debug", "info", "warn", "error"), o
    if o.get("event") == "access":
        assert o["request_id"] and isinstance(o["status"], int) and o["ms"] >= 0, o
        acc += 1
assert any(True for l in open(sys.argv[1]) if '"request_id":"glasses-42.a:b_c"' in l)
assert acc >= 10, acc
PYEOF

stop "$MAIN_PID"; check "main server exited 0 after SIGTERM" test $? -eq 0
if grep -qiE "AddressSanitizer|LeakSanitizer|runtime error:" "$TMP"/*.log; then
  fail "sanitizer report in a server log"; grep -iE -A20 "AddressSanitizer|LeakSanitizer|runtime error:" "$TMP"/*.log | head -80
fi

echo
if [ $FAILS -ne 0 ]; then
  echo "$FAILS check(s) failed; main server log:"; tail -n 30 "$TMP/main.log"; exit 1
fi
echo "all server edge checks passed"
