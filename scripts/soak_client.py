"""Soak load generator for scripts/soak.sh: many concurrent initialize-era MCP sessions doing
tool calls over Streamable HTTP against the bridge, while the bridge's RSS and open file
descriptors are sampled from /proc; then the checks (errors, RSS flat, sessions, fds).

    python soak_client.py --url http://127.0.0.1:PORT --pid PID --sessions 1000 --seconds 300

Each session: initialize, notifications/initialized, then tool calls until the deadline, each
after a think time (--think, 1 to 3 s by default): about 90 % `openclaw_chat` (one in ten with a
session_id), 5 % `openclaw_status`, 5 % `openclaw_instances`; every answer is checked (a chat
must echo its own message); then DELETE. Each session has its own client and connection
(httpx2), so the bridge holds about as many client connections as sessions. The sessions are
spread over --callers source addresses (127.0.0.1, 127.0.0.2, ...): without auth each client
address is a principal, whose open sessions the bridge caps at a quarter of MCP_MAX_SESSIONS, so
1000 sessions from one address would (rightly) have its oldest ones closed. Exit status 0 when
every check passes, 1 otherwise; the figures are printed, and written as JSON with --json.

Only loopback addresses are used; every wait is bounded.
"""

import argparse
import asyncio
import collections
import json
import os
import random
import sys
import threading
import time
import urllib.request

import httpx2 as httpx

PROTOCOL = "2025-06-18"
BASE_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
# Tool-result texts that mean the gateway failed (a gateway-caused error, allowed by the soak).
GATEWAY_ERRORS = ("Error: API request failed", "Error: Failed to connect", "Error: Request to OpenClaw timed out",
                  "Error: Response exceeds")


def log(msg):
    print("soak: %s" % msg, file=sys.stderr, flush=True)


def proc_sample(pid):
    """(RSS in KiB, open fds) of the process."""
    rss = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return rss, len(os.listdir("/proc/%d/fd" % pid))


def messages(response):
    """JSON-RPC messages of an answer, plain JSON or SSE-framed."""
    ctype = response.headers.get("content-type", "")
    text = response.text
    if ctype.startswith("application/json"):
        body = json.loads(text)
        return body if isinstance(body, list) else [body]
    out = []
    for line in text.splitlines():
        if line.startswith("data:"):
            data = line[5:].strip()
            if data:
                out.append(json.loads(data))
    return out


class Stats:
    def __init__(self):
        self.calls = collections.Counter()      # by tool, successful
        self.errors = collections.Counter()     # by kind
        self.examples = {}                      # kind -> first detail
        self.latencies = []                     # seconds, a sample
        self.opened = 0
        self.deleted = 0
        self.ok = 0                             # successful calls (read by the sampler thread)
        self.failed = 0                         # errors
        self.per_session = []                   # calls made so far, by session (sampler reads)

    def error(self, kind, detail=""):
        self.failed += 1
        self.errors[kind] += 1
        self.examples.setdefault(kind, str(detail)[:300])

    def total_calls(self):
        return sum(self.calls.values())


async def rpc(client, url, headers, body, stats, timeout):
    """POSTs one JSON-RPC request; returns the answer's message with the request's id, or None
    (the error counted)."""
    try:
        response = await client.post(url, content=json.dumps(body), headers=headers, timeout=timeout)
    except httpx.TimeoutException as e:
        stats.error("timeout (%s)" % type(e).__name__, e)
        return None
    except httpx.HTTPError as e:
        stats.error("transport: %s" % type(e).__name__, e)
        return None
    if response.status_code != 200:
        stats.error("HTTP %d" % response.status_code, response.text[:300])
        return None
    try:
        found = [m for m in messages(response) if m.get("id") == body["id"]]
    except (ValueError, AttributeError) as e:
        stats.error("unparsable answer", "%s: %r" % (e, response.text[:200]))
        return None
    if not found:
        stats.error("no answer with the request's id", response.text[:300])
        return None
    message = found[0]
    if "error" in message:
        stats.error("JSON-RPC error %s" % message["error"].get("code"), message["error"])
        return None
    return message


async def open_session(client, url, stats, timeout):
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": PROTOCOL, "capabilities": {}, "clientInfo": {"name": "soak", "version": "1"}}}
    try:
        response = await client.post(url, content=json.dumps(init), headers=BASE_HEADERS, timeout=timeout)
    except httpx.HTTPError as e:
        stats.error("initialize: %s" % type(e).__name__, e)
        return None
    sid = response.headers.get("mcp-session-id")
    if response.status_code != 200 or not sid:
        stats.error("initialize: HTTP %d" % response.status_code, response.text[:300])
        return None
    headers = dict(BASE_HEADERS, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL})
    try:
        response = await client.post(url, content='{"jsonrpc":"2.0","method":"notifications/initialized"}',
                                     headers=headers, timeout=timeout)
    except httpx.HTTPError as e:
        stats.error("initialized: %s" % type(e).__name__, e)
        return None
    if response.status_code != 202:
        stats.error("initialized: HTTP %d" % response.status_code, response.text[:300])
        return None
    stats.opened += 1
    return headers


async def session(index, url, start, stats, open_gate, timeout, rng, think, mix, callers):
    # Its own connection, as a real client has: idle for less than the bridge's 5 s keep-alive
    # (dropped by the client after 3 s), so that a call is never sent on a connection the bridge
    # is closing at that moment (a client-side race that would be counted as an error).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=3)
    # One of `callers` loopback source addresses: each is a separate principal to the bridge.
    transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{1 + index % callers}", limits=limits,
                                          verify=False)  # plain HTTP: no CA bundle loaded per session
    async with httpx.AsyncClient(trust_env=False, verify=False, transport=transport, timeout=timeout) as client:
        await session_calls(index, client, url, start, stats, open_gate, timeout, rng, think, mix)


async def session_calls(index, client, url, start, stats, open_gate, timeout, rng, think, mix):
    async with open_gate:
        headers = await open_session(client, url, stats, timeout)
    # Every session opens before any calls.
    await start.wait()
    if headers is None:
        return
    n = 0
    while time.monotonic() < start.deadline:
        if think[1] > 0:
            await asyncio.sleep(rng.uniform(*think))
            if time.monotonic() >= start.deadline:
                break
        n += 1
        roll = rng.random()
        if roll < mix.status:
            tool, arguments = "openclaw_status", {}
        elif roll < mix.status + mix.instances:
            tool, arguments = "openclaw_instances", {}
        else:
            tool = "openclaw_chat"
            text = "soak %d %d" % (index, n)
            arguments = {"message": text}
            if mix.session_every and n % mix.session_every == 0:
                arguments["session_id"] = "soak-%d" % index
        body = {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
        started = time.monotonic()
        message = await rpc(client, url, headers, body, stats, timeout)
        stats.per_session[index] = n
        if message is None:
            continue
        if len(stats.latencies) < 200000 and rng.random() < 0.2:
            stats.latencies.append(time.monotonic() - started)
        result = message.get("result") or {}
        texts = "".join(c.get("text", "") for c in result.get("content", []) if isinstance(c, dict))
        if result.get("isError"):
            kind = "gateway" if texts.startswith(GATEWAY_ERRORS) else "tool"
            stats.error("%s error from %s: %s" % (kind, tool, texts[:60]), texts)
        elif tool == "openclaw_chat" and texts != "echo: " + text:
            stats.error("wrong chat answer", "%r for %r" % (texts[:200], text))
        elif tool == "openclaw_status" and "ok" not in texts.lower():
            stats.error("status not ok", texts[:300])
        elif tool == "openclaw_instances" and "default" not in texts:
            stats.error("instances without 'default'", texts[:300])
        else:
            stats.calls[tool] += 1
            stats.ok += 1
    try:
        response = await client.delete(url, headers=headers, timeout=timeout)
        if response.status_code == 200:
            stats.deleted += 1
        else:
            stats.error("DELETE: HTTP %d" % response.status_code, response.text[:300])
    except httpx.HTTPError as e:
        stats.error("DELETE: %s" % type(e).__name__, e)


def health_sessions_sync(base):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(base + "/health", timeout=5) as r:
        s = json.load(r)["sessions"]
        return s["streamableHttp"], s["legacySse"]


async def health_sessions(base):
    async with httpx.AsyncClient(trust_env=False, timeout=5) as c:
        body = (await c.get(base + "/health")).json()
        s = body["sessions"]
        return s["streamableHttp"], s["legacySse"]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True, help="the bridge's base URL, http://127.0.0.1:PORT")
    ap.add_argument("--pid", type=int, required=True, help="the bridge's process id")
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--callers", type=int, default=8,
                    help="loopback source addresses the sessions are spread over (1 to 250), one principal each")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--sample", type=float, default=0, help="seconds between samples (default: seconds/60, 1 to 5)")
    ap.add_argument("--warmup", type=float, default=0,
                    help="seconds of warm-up (default: until every session made --warmup-calls calls, at least 10 s)")
    ap.add_argument("--warmup-calls", type=int, default=64,
                    help="calls every session makes before the warm-up ends (see WARM-UP below)")
    ap.add_argument("--rss-tolerance", type=float, default=0.10)
    ap.add_argument("--rss-min-seconds", type=float, default=120,
                    help="shorter runs report the RSS spread without checking it")
    ap.add_argument("--fd-slack", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=30, help="seconds one request may take")
    ap.add_argument("--think", default="1-3", help="seconds a session waits before each call: N or MIN-MAX"
                    " (uniform); keeps the client below its CPU limit, so its event loop answers promptly")
    ap.add_argument("--status", type=float, default=0.05, help="share of openclaw_status calls")
    ap.add_argument("--instances", type=float, default=0.05, help="share of openclaw_instances calls")
    ap.add_argument("--session-every", type=int, default=10,
                    help="every Nth chat of a session passes session_id (0: never)")
    ap.add_argument("--json", help="write the figures there")
    args = ap.parse_args()
    base = args.url.rstrip("/")
    url = base + "/mcp"
    sample_every = args.sample or min(5.0, max(1.0, args.seconds / 60))
    rng = random.Random(6)
    stats = Stats()
    stats.per_session = [0] * args.sessions
    failures = []

    # Idle baseline: one session, one call, closed; then the pooled connections age out.
    async with httpx.AsyncClient(trust_env=False) as c:
        headers = await open_session(c, url, stats, args.timeout)
        if headers is None:
            sys.exit("soak: the warm-up session failed: %s" % dict(stats.errors))
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "openclaw_chat", "arguments": {"message": "warm-up"}}}
        message = await rpc(c, url, headers, body, stats, args.timeout)
        if message is None or "echo: warm-up" not in json.dumps(message):
            sys.exit("soak: the warm-up call failed: %s %s" % (dict(stats.errors), stats.examples))
        await c.delete(url, headers=headers)
    stats.opened = 0
    await asyncio.sleep(6)
    base_rss, base_fds = proc_sample(args.pid)
    log("idle baseline: RSS %.1f MiB, %d fds" % (base_rss / 1024, base_fds))

    samples = []  # (t, rss KiB, fds, open sessions per /health, calls, errors, fewest calls of a session)
    started = time.monotonic()
    # A thread, so that a busy event loop does not delay the samples.
    stop_sampling = threading.Event()

    def sampler():
        while True:
            t = time.monotonic() - started
            rss, fds = proc_sample(args.pid)
            try:
                open_now = health_sessions_sync(base)[0]
            except (OSError, KeyError, ValueError):
                open_now = -1
            fewest = min(stats.per_session) if stats.per_session else 0
            samples.append((round(t, 1), rss, fds, open_now, stats.ok, stats.failed, fewest))
            log("t=%5.0fs RSS %6.1f MiB fds %5d sessions %5d calls %8d errors %d fewest calls/session %d"
                % (t, rss / 1024, fds, open_now, stats.ok, stats.failed, fewest))
            if stop_sampling.wait(max(0.0, sample_every - (time.monotonic() - started - t))):
                return

    sampling = threading.Thread(target=sampler, daemon=True)
    sampling.start()
    think = tuple(float(x) for x in args.think.split("-")) if "-" in args.think else (float(args.think),) * 2
    # Sessions open 100 at a time; when all are open (or failed), the calls run SECONDS long.
    gate = asyncio.Semaphore(100)
    start = asyncio.Event()
    tasks = [asyncio.create_task(session(i, url, start, stats, gate, args.timeout,
                                         random.Random(i), think, args, max(1, min(args.callers, 250))))
             for i in range(args.sessions)]
    for _ in range(int(4 * args.timeout + 120) * 10):
        if stats.opened + stats.failed >= args.sessions:
            break
        await asyncio.sleep(0.1)
    calls_start = time.monotonic() - started
    log("%d sessions open after %.1f s; calls for %.0f s" % (stats.opened, calls_start, args.seconds))
    start.deadline = time.monotonic() + args.seconds
    start.set()
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), args.seconds + 4 * args.timeout + 60)
    except asyncio.TimeoutError:
        failures.append("the sessions did not finish within the bound")
    load_end = time.monotonic() - started
    log("load done after %.0f s; client connections closed" % load_end)

    # After the clients closed: sessions back to 0, fds back near the baseline (bounded waits).
    sessions_after = None
    for _ in range(30):
        try:
            sessions_after = await health_sessions(base)
        except (httpx.HTTPError, KeyError, ValueError):
            sessions_after = None
        if sessions_after == (0, 0):
            break
        await asyncio.sleep(0.5)
    fd_limit = base_fds + args.fd_slack
    fds_after = None
    for i in range(60):
        rss_after, fds_after = proc_sample(args.pid)
        if fds_after <= fd_limit:
            break
        await asyncio.sleep(0.5)
    fd_wait = i * 0.5
    stop_sampling.set()
    sampling.join(10)
    rss_after, fds_after = proc_sample(args.pid)
    samples.append((round(time.monotonic() - started, 1), rss_after, fds_after,
                    sessions_after[0] if sessions_after else -1, stats.ok, stats.failed, min(stats.per_session)))

    # --- checks ---
    calls = stats.total_calls()
    rate = calls / max(load_end - calls_start, 1e-9)
    lat = sorted(stats.latencies)
    pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000 if lat else float("nan")
    fatal = {k: v for k, v in stats.errors.items() if not k.startswith("gateway error")}
    gateway_caused = {k: v for k, v in stats.errors.items() if k.startswith("gateway error")}
    if stats.opened != args.sessions:
        failures.append("%d of %d sessions opened" % (stats.opened, args.sessions))
    if fatal:
        failures.append("%d errors not caused by the gateway" % sum(fatal.values()))
    if calls == 0:
        failures.append("no successful call")

    rss_note = ""
    # WARM-UP. The bridge's memory per session grows to a plateau while the session's first calls
    # pass: rmcp gives every session seven tokio channels, and a tokio channel allocates its
    # buffer in blocks of 32 messages (~16 KiB each, rmcp's messages being ~500 bytes), whose pages
    # become resident only as messages are first written to them, and a second block once 32
    # messages have passed (heaptrack shows exactly these blocks as the growth). So RSS climbs
    # until every session has made a few dozen calls (about 60 here, 2 minutes at 1-3 s of think
    # time), then stays flat: bounded, not a leak. The warm-up therefore ends when the slowest
    # session has made --warmup-calls calls (and at least 10 s after the calls started), unless
    # --warmup gives seconds.
    reached = []
    if args.warmup:
        warmup = args.warmup
    else:
        reached = [s[0] for s in samples[:-1] if s[6] >= args.warmup_calls]
        if reached:
            warmup = max(10.0, reached[0] - calls_start)
        else:
            # Reported with the last fifth of the run as the window; a failure when checked.
            warmup = max(10.0, args.seconds * 0.8)
            rss_note = ("warm-up not over: the slowest session made %d calls, %d needed"
                        % (min(stats.per_session), args.warmup_calls))
            if args.seconds >= args.rss_min_seconds:
                failures.append(rss_note + " (run longer)")
    window = [s for s in samples[:-1] if calls_start + warmup <= s[0] <= load_end]
    rss_window = [s[1] for s in window]
    half = [s[1] for s in samples[:-1] if calls_start + (load_end - calls_start) / 2 <= s[0] <= load_end]
    half_spread = (max(half) - min(half)) / min(half) if len(half) >= 2 else float("nan")
    if len(rss_window) >= 2:
        lo, hi = min(rss_window), max(rss_window)
        spread = (hi - lo) / lo
        first, last = rss_window[0], rss_window[-1]
        if args.seconds < args.rss_min_seconds:
            rss_note = (rss_note + "; " if rss_note else "") + ("not checked: a run shorter than %.0f s cannot tell warm-up from growth"
                        % args.rss_min_seconds)
        elif spread > args.rss_tolerance:
            failures.append("RSS not flat after warm-up: %.1f..%.1f MiB (%.1f %% > %.0f %%)"
                            % (lo / 1024, hi / 1024, 100 * spread, 100 * args.rss_tolerance))
    else:
        lo = hi = first = last = spread = float("nan")
        if args.seconds >= args.rss_min_seconds:
            failures.append("too few RSS samples after warm-up (%d)" % len(rss_window))
    peak_fds = max(s[2] for s in samples)
    if sessions_after != (0, 0):
        failures.append("sessions left open per /health after the clients closed: %s" % (sessions_after,))
    if stats.deleted != stats.opened:
        failures.append("%d of %d sessions deleted with 200" % (stats.deleted, stats.opened))
    if fds_after > fd_limit:
        failures.append("fds not back near the idle baseline: %d after, baseline %d (+%d allowed)"
                        % (fds_after, base_fds, args.fd_slack))

    # --- report ---
    print()
    print("soak: %d sessions (opened in %.1f s), %.0f s of tool calls, bridge pid %d"
          % (args.sessions, calls_start, args.seconds, args.pid))
    print("  calls: %d successful (%s), %.0f calls/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms"
          % (calls, ", ".join("%s %d" % kv for kv in sorted(stats.calls.items())), rate, pct(0.5), pct(0.99),
             (lat[-1] * 1000 if lat else float("nan"))))
    print("  sessions: %d opened, %d deleted (200); /health after close: streamableHttp=%s legacySse=%s"
          % (stats.opened, stats.deleted, *(sessions_after or ("?", "?"))))
    print("  errors not caused by the gateway: %d%s" % (sum(fatal.values()), "".join(
        "\n    %6d  %s   e.g. %s" % (v, k, stats.examples[k][:160]) for k, v in sorted(fatal.items()))))
    print("  errors caused by the gateway: %d%s" % (sum(gateway_caused.values()), "".join(
        "\n    %6d  %s" % (v, k) for k, v in sorted(gateway_caused.items()))))
    if args.warmup:
        warmup_text = "%.0f s (--warmup)" % warmup
    elif reached:
        warmup_text = "until every session had made %d calls: %.0f s" % (args.warmup_calls, warmup)
    else:
        warmup_text = "not over when the calls ended; the last fifth of the run is shown"
    print("  warm-up: %s" % warmup_text)
    print("  RSS: idle %.1f MiB; after warm-up (window %.0f..%.0f s of the run, calls from %.0f s, %d samples every %.0f s)"
          " min %.1f, max %.1f MiB, spread %.1f %% (limit %.0f %%), first %.1f, last %.1f; after close %.1f MiB"
          % (base_rss / 1024, calls_start + warmup, load_end, calls_start, len(rss_window), sample_every, lo / 1024, hi / 1024, 100 * spread,
             100 * args.rss_tolerance, first / 1024, last / 1024, rss_after / 1024))
    print("       spread over the second half of the calls: %.1f %%%s" % (100 * half_spread, "; " + rss_note if rss_note else ""))
    print("  fds: idle %d, peak %d under load, %d after close (%.1f s after; limit %d)"
          % (base_fds, peak_fds, fds_after, fd_wait, fd_limit))
    # RSS series, one line per tenth of the run.
    step = max(1, len(samples) // 10)
    print("  series (t s: RSS MiB / fds / open sessions / calls): " + "; ".join(
        "%.0f: %.1f/%d/%d/%d" % (s[0], s[1] / 1024, s[2], s[3], s[4]) for s in samples[::step] + [samples[-1]]))
    for f in failures:
        print("  CHECK FAILED: %s" % f)
    print("soak: %s" % ("PASSED" if not failures else "FAILED"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sessions": args.sessions, "seconds": args.seconds, "calls": dict(stats.calls),
                       "calls_per_s": rate, "errors": dict(stats.errors), "examples": stats.examples,
                       "rss_idle_kib": base_rss, "fds_idle": base_fds, "samples": samples, "warmup_s": warmup,
                       "fds_after": fds_after, "rss_after_kib": rss_after, "sessions_after": sessions_after,
                       "failures": failures}, f, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
