#!/usr/bin/env bash
# Session flood at the default caps: how much memory the bridge needs when an attacker opens as
# many MCP sessions as it will take, and whether that stays inside the memory limit that
# docker-compose.yml and docs/deployment.md give it (mem_limit: 128m).
#
# The bridge runs with its defaults (MCP_MAX_SESSIONS=1000, a quarter per caller), auth off and
# TRUST_PROXY=true, so that the flood can come from FLOOD_CALLERS (default 400) distinct client
# addresses (X-Forwarded-For) and fill the whole table, not just one caller's share. Each caller
# opens sessions until refused: half initialize-era Streamable HTTP sessions that also make one
# tools/list call (so their buffers are in use), half legacy SSE streams held open. The script
# samples the bridge's VmRSS (from /proc) during and after the flood, and checks:
#
#   - the table filled (the bridge refused sessions past MCP_MAX_SESSIONS with 503);
#   - a caller that appears during the flood with an established session can still call a tool;
#   - peak RSS is below FLOOD_RSS_LIMIT_MIB (default 128, the compose limit).
#
#   bash scripts/session-flood.sh
#
# Environment: FLOOD_BRIDGE and FLOOD_GATEWAY (binaries to use instead of building the release
# ones; .ci/run passes the static binary), FLOOD_CALLERS (400), FLOOD_RSS_LIMIT_MIB (128),
# FLOOD_KEEP (set: keep the logs). Everything is on 127.0.0.1 and bounded in time.
set -euo pipefail

cd "$(dirname "$0")/.."
CALLERS=${FLOOD_CALLERS:-400}
LIMIT_MIB=${FLOOD_RSS_LIMIT_MIB:-128}

KEEP_WORK=${FLOOD_KEEP:-}
source scripts/lib.sh session-flood

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 4000 ] || die "open-file limit $(ulimit -n) is too low"

if [ -n "${FLOOD_BRIDGE:-}" ] && [ -n "${FLOOD_GATEWAY:-}" ]; then
    bridge_bin=$FLOOD_BRIDGE gateway_bin=$FLOOD_GATEWAY
else
    log "building the release binary and the mock gateway"
    cargo build --release --quiet --bin openclaw-mcp --example mock_gateway
    target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
    bridge_bin=$target_dir/release/openclaw-mcp gateway_bin=$target_dir/release/examples/mock_gateway
fi

"$gateway_bin" --port 0 --token flood-token >"$WORK/gateway.log" 2>&1 &
PIDS+=($!)
gateway_port=$(wait_port "$WORK/gateway.log" 's#^mock gateway listening on http://127\.0\.0\.1:\([0-9][0-9]*\)$#\1#p' $! "mock gateway")

env -i PATH="$PATH" HOME="$WORK" OPENCLAW_MCP_DATA_DIR=":memory:" \
    OPENCLAW_URL="http://127.0.0.1:$gateway_port" OPENCLAW_GATEWAY_TOKEN=flood-token \
    TRUST_PROXY=true \
    "$bridge_bin" --transport http --host 127.0.0.1 --port 0 >"$WORK/bridge.log" 2>&1 &
bridge_pid=$!
PIDS+=("$bridge_pid")
port=$(wait_port "$WORK/bridge.log" 's/.*listening address=127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$bridge_pid" bridge)
log "bridge pid $bridge_pid on port $port, gateway on $gateway_port"

python3 - "$port" "$bridge_pid" "$CALLERS" "$LIMIT_MIB" <<'EOF'
import asyncio, json, sys, threading, time

port, pid, callers, limit_mib = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
peak = [0.0]
samples = []
stop = threading.Event()

def rss_mib():
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0

def sampler():
    while not stop.is_set():
        r = rss_mib()
        samples.append(r)
        peak[0] = max(peak[0], r)
        time.sleep(0.2)

ACCEPT = "application/json, text/event-stream"
INIT = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "flood", "version": "1"}}})

async def http(head, body=b"", xff="", read_all=True, keep=None):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    req = f"{head}\r\nHost: 127.0.0.1:{port}\r\nX-Forwarded-For: {xff}\r\n"
    if body:
        req += f"Content-Length: {len(body)}\r\n"
    req += "Connection: close\r\n\r\n" if read_all else "\r\n"
    writer.write(req.encode() + body)
    await writer.drain()
    if read_all:
        data = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return data
    # A stream: read the head and the first event, keep the connection.
    data = await asyncio.wait_for(reader.readuntil(b"\n\n"), 30)
    keep.append(writer)
    return data

def status(data):
    try:
        return int(data.split(b" ", 2)[1])
    except Exception:
        return 0

def session_id(data):
    for line in data.split(b"\r\n"):
        if line.lower().startswith(b"mcp-session-id:"):
            return line.split(b":", 1)[1].strip().decode()
    return None

async def open_streamable(xff):
    data = await http(f"POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT}", INIT.encode(), xff)
    sid = session_id(data)
    if status(data) != 200 or not sid:
        return status(data), None
    common = f"Content-Type: application/json\r\nAccept: {ACCEPT}\r\nMcp-Session-Id: {sid}\r\nMCP-Protocol-Version: 2025-06-18"
    await http(f"POST /mcp HTTP/1.1\r\n{common}", b'{"jsonrpc":"2.0","method":"notifications/initialized"}', xff)
    await http(f"POST /mcp HTTP/1.1\r\n{common}", b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}', xff)
    return 200, sid

async def open_legacy(xff, keep):
    try:
        data = await http("GET /sse HTTP/1.1\r\nAccept: text/event-stream", b"", xff, read_all=False, keep=keep)
    except asyncio.IncompleteReadError as e:
        data = e.partial
    return status(data)

async def caller(i, keep, counts):
    xff = f"10.{i // 250}.{i % 250}.1"
    for n in range(300):  # bounded: the share is 250 at the defaults
        if n % 2 == 0:
            code, _ = await open_streamable(xff)
        else:
            code = await open_legacy(xff, keep)
        counts[code] = counts.get(code, 0) + 1
        if code == 503:
            return

async def main():
    threading.Thread(target=sampler, daemon=True).start()
    baseline = rss_mib()
    # A legitimate user with a session before the flood.
    code, user = await open_streamable("192.0.2.77")
    assert code == 200, code
    keep, counts = [], {}
    started = time.time()
    sem = asyncio.Semaphore(64)
    async def bounded(i):
        async with sem:
            await caller(i, keep, counts)
    await asyncio.gather(*(bounded(i) for i in range(callers)))
    took = time.time() - started
    health = json.loads((await http("GET /health HTTP/1.1")).split(b"\r\n\r\n", 1)[1])
    # The user still gets an answer.
    common = f"Content-Type: application/json\r\nAccept: {ACCEPT}\r\nMcp-Session-Id: {user}\r\nMCP-Protocol-Version: 2025-06-18"
    call = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "openclaw_chat", "arguments": {"message": "hello"}}}).encode()
    answer = await http(f"POST /mcp HTTP/1.1\r\n{common}", call, "192.0.2.77")
    time.sleep(1.0)
    stop.set()
    settled = rss_mib()
    print(f"session-flood: {callers} callers, {took:.1f} s; answers {dict(sorted(counts.items()))}")
    print(f"session-flood: sessions open: {health['sessions']}")
    print(f"session-flood: RSS baseline {baseline:.1f} MiB, peak {peak[0]:.1f} MiB, after {settled:.1f} MiB (limit {limit_mib:.0f} MiB)")
    ok = True
    if counts.get(503, 0) == 0:
        print("session-flood: FAILED: the table never filled (no 503)"); ok = False
    opened = health["sessions"]["streamableHttp"] + health["sessions"]["legacySse"]
    if opened < health["sessions"]["max"] * 0.9:
        print(f"session-flood: FAILED: only {opened} sessions open"); ok = False
    if b"echo: hello" not in answer:
        print(f"session-flood: FAILED: the user's call was not answered: {answer[:300]!r}"); ok = False
    if peak[0] >= limit_mib:
        print(f"session-flood: FAILED: peak RSS {peak[0]:.1f} MiB >= {limit_mib} MiB"); ok = False
    for w in keep:
        w.close()
    sys.exit(0 if ok else 1)

asyncio.run(main())
EOF
log "PASSED"
