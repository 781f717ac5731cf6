#!/usr/bin/python3
"""A minimal WebSocket client for test_stream.sh: checks what the reference client does not
exercise (mode messages, header modes, errors, ping/pong, heartbeats, idle timeout, going-away
closes). Usage: ws_probe.py PORT TOKEN ACTION [ARGS]; prints 'ok ...' lines, exits 1 on the
first failed check. Every socket operation has a timeout."""
import base64, json, os, socket, struct, sys, time

PORT, TOKEN, ACTION = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def connect(query="client=probe"):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET /v1/stream?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {TOKEN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        b = s.recv(1)
        if not b:
            break
        head += b
    if not head.startswith(b"HTTP/1.1 101"):
        fail(f"upgrade refused: {head[:80]!r}")
    return s


def fail(msg):
    print("FAIL", msg)
    sys.exit(1)


def send(s, op, payload):
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | op])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    s.sendall(head + mask + bytes(b ^ mask[i & 3] for i, b in enumerate(payload)))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        b = s.recv(n - len(out))
        if not b:
            fail("connection closed mid-frame")
        out += b
    return out


def recv(s):
    b0, b1 = recv_exact(s, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack(">H", recv_exact(s, 2))[0]
    elif n == 127:
        n = struct.unpack(">Q", recv_exact(s, 8))[0]
    if b1 & 0x80:
        fail("server frames must not be masked")
    return b0 & 0x0F, recv_exact(s, n)


def recv_json(s):
    while True:
        op, data = recv(s)
        if op == 1:
            return json.loads(data)
        if op == 8:
            fail(f"closed unexpectedly: {data!r}")


def frame(seq, image, mode=b""):
    return b"SHF1" + struct.pack(">QQB", seq, int(time.time() * 1e6), len(mode)) + mode + image


if ACTION == "protocol":
    image = open(sys.argv[4], "rb").read()
    s = connect()
    send(s, 1, b'{"mode":"navigation"}')
    r = recv_json(s)
    if r != {"type": "mode", "mode": "navigation"}:
        fail(f"mode message: {r}")
    print("ok   a text message switches the mode")
    send(s, 1, b'{"mode":"nope"}')
    r = recv_json(s)
    if r.get("type") != "error" or r.get("code") != 404:
        fail(f"unknown mode: {r}")
    print("ok   an unknown mode gets an error, the stream stays")
    send(s, 2, b"not a frame")
    r = recv_json(s)
    if r.get("type") != "error" or r.get("code") != 400:
        fail(f"headerless frame: {r}")
    print("ok   a frame without the header gets a 400 error message")
    send(s, 2, frame(41, b"garbage bytes, no image"))
    r = recv_json(s)
    if r.get("type") != "error" or r.get("seq") != 41 or r.get("code") != 400:
        fail(f"bad image: {r}")
    print("ok   a frame that is no image gets an error carrying its seq")
    send(s, 2, frame(42, image, b"crossing"))
    r = recv_json(s)
    if r.get("type") != "result" or r.get("seq") != 42 or r.get("mode") != "crossing" \
            or not isinstance(r.get("age_ms"), (int, float)) or r["age_ms"] < 0 \
            or r["results"].get("mode") != "crossing":
        fail(f"result: {str(r)[:300]}")
    print(f"ok   the header's mode runs the frame and stays: seq 42, age {r['age_ms']:.1f} ms")
    send(s, 2, frame(43, image))
    r = recv_json(s)
    if r.get("seq") != 43 or r.get("mode") != "crossing":
        fail(f"sticky mode: {str(r)[:200]}")
    print("ok   the mode stays for the next frame")
    send(s, 9, b"are you there")
    op, data = recv(s)
    if op != 10 or data != b"are you there":
        fail(f"pong: {op} {data!r}")
    print("ok   ping answered with pong")
    send(s, 8, struct.pack(">H", 1000))
    op, data = recv(s)
    bye = json.loads(data) if op == 1 else {}
    if bye.get("type") != "bye" or bye.get("processed") != 2 or bye.get("received") != 3:
        fail(f"expected the final counts first: {op} {data!r}")
    op, data = recv(s)
    if op != 8:
        fail(f"close answer: {op}")
    print("ok   close answered with the final counts, then close")
elif ACTION == "idle":
    heartbeat, idle = float(sys.argv[4]), float(sys.argv[5])
    s = connect()
    s.settimeout(idle + 5)
    t0 = time.time()
    op, data = recv(s)
    if op != 9 or time.time() - t0 > heartbeat + 2:
        fail(f"expected a ping within {heartbeat + 2} s, got op {op}")
    print(f"ok   a silent stream is pinged after {time.time() - t0:.1f} s")
    op, data = recv(s)   # not answering the pings: the idle timeout closes
    while op in (1, 9):   # pings, then the final counts
        op, data = recv(s)
    code = struct.unpack(">H", data[:2])[0] if op == 8 and len(data) >= 2 else None
    if code != 1008 or time.time() - t0 > idle + 2:
        fail(f"expected close 1008 within {idle + 2} s, got op {op} code {code}")
    print(f"ok   an unanswered stream is closed (1008) after {time.time() - t0:.1f} s")
elif ACTION == "hold":
    # Holds a stream open, answering pings, and prints the close code the server sends.
    s = connect("client=holder")
    s.settimeout(float(sys.argv[4]))
    print("open", flush=True)
    while True:
        op, data = recv(s)
        if op == 9:
            send(s, 10, data)
        elif op == 8:
            print("close", struct.unpack(">H", data[:2])[0] if len(data) >= 2 else 0, flush=True)
            break
else:
    fail(f"unknown action {ACTION}")
