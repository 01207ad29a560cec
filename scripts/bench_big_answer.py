#!/usr/bin/env python3
# The bridge's CPU time for one streamed answer whose text is one long SSE line (one delta of
# SIZE bytes, default 4 MiB), as the gateway sends a long answer it did not generate piece by
# piece. A fake gateway on a loopback port 0 (raw sockets, no HTTP library) answers the chat with
# chunked transfer encoding in 8 KiB frames (a framing every client reads); the binary is driven
# over stdio (initialize, then three `openclaw_chat` calls with a progress token, so that the
# answer is streamed). For each call it prints the CPU time the bridge process used
# (utime + stime from /proc), the wall time, and whether the answer arrived whole.
#
#   cargo build --release && python3 scripts/bench_big_answer.py target/release/openclaw-mcp [SIZE]
#
# Linux only (/proc). Everything runs on 127.0.0.1; the bridge gets an empty environment but for
# the gateway URL, an in-memory task store and a 120 s timeout.
import json, os, socket, subprocess, sys, threading, time
if len(sys.argv) < 2:
    sys.exit("usage: bench_big_answer.py BRIDGE_BINARY [SIZE]")
SIZE = int(sys.argv[2]) if len(sys.argv) > 2 else 4 * 1024 * 1024
bridge = sys.argv[1]
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(16)
port = srv.getsockname()[1]

def body_of(req):
    head, _, rest = req.partition(b"\r\n\r\n")
    return head, rest

def handle(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(65536)
        if not d: return
        data += d
    head, rest = body_of(data)
    n = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"): n = int(line.split(b":")[1])
    while len(rest) < n: rest += c.recv(65536)
    first = head.split(b"\r\n")[0]
    if b"/readyz" in first:
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\n{\"ready\":true}"); c.close(); return
    body = json.loads(rest or b"{}")
    if "messages" not in body:
        e = b'{"error":{"message":"Missing user message","type":"invalid_request_error"}}'
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(e) + e); c.close(); return
    def ch(delta, fin=None):
        return ("data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "openclaw",
                "choices": [{"index": 0, "delta": delta, "finish_reason": fin}]}) + "\n\n").encode()
    payload = ch({"role": "assistant"}) + ch({"content": "x" * SIZE}) + ch({}, "stop") + b"data: [DONE]\n\n"
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
    for i in range(0, len(payload), 8192):
        piece = payload[i:i + 8192]
        c.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    c.sendall(b"0\r\n\r\n"); c.close()

def serve():
    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()
threading.Thread(target=serve, daemon=True).start()

env = {"OPENCLAW_URL": f"http://127.0.0.1:{port}", "OPENCLAW_MCP_DATA_DIR": ":memory:", "HOME": "/tmp", "OPENCLAW_TIMEOUT_MS": "120000"}
p = subprocess.Popen([bridge], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
def send(o): p.stdin.write((json.dumps(o) + "\n").encode()); p.stdin.flush()
def recv_id(i):
    while True:
        line = p.stdout.readline()
        if not line: raise SystemExit("bridge closed")
        m = json.loads(line)
        if m.get("id") == i: return m
def cpu():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cpu", "version": "1"}}})
recv_id(1); send({"jsonrpc": "2.0", "method": "notifications/initialized"})
time.sleep(1)
results = []
for k in range(3):
    before = cpu(); t0 = time.time()
    send({"jsonrpc": "2.0", "id": 10 + k, "method": "tools/call", "params": {"name": "openclaw_chat", "arguments": {"message": "big"}, "_meta": {"progressToken": k}}})
    r = recv_id(10 + k)
    wall = time.time() - t0; used = cpu() - before
    text = r["result"]["content"][0]["text"]
    ok = len(text) == SIZE and not r["result"].get("isError")
    results.append((used, wall, ok, len(text)))
p.stdin.close(); p.wait(timeout=10)
for used, wall, ok, n in results:
    print(f"bridge CPU {used:.2f} s, wall {wall:.2f} s, answer {n} bytes, whole={ok}")
