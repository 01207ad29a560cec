#!/usr/bin/env python3
"""Helper of scripts/e2e-openclaw.sh: pairing against the REAL gateway. The bridge reaches the
gateway through scripts/xff_proxy.py, which adds `X-Forwarded-For: 203.0.113.7`; the gateway
(`gateway.trustedProxies: ["127.0.0.1"]`) therefore treats it as a remote client, whose token alone
grants no scopes (reference/openclaw-ws.md §4.2), so the WebSocket needs a paired device.

  e2e_openclaw_pair.py --bridge B --url PROXY_URL --token T --provider-log L --data-dir D
                       --openclaw-cli CLI --gateway-log G [--reply R]

CLI runs the real `openclaw` command line the way the script runs the gateway (same Node, state
dir, config and scrubbed environment). Checks (`ok  <check>` each; the first failure prints
`FAIL <check>: <why>` and exits 1), the bridge always with default settings (only OPENCLAW_URL and
OPENCLAW_GATEWAY_TOKEN):
  1. before approval, openclaw_status says "pairing required" with the exact approve command, and
     `auto` uses HTTP (chat-completions is enabled in this run), where openclaw_chat answers;
  2. `openclaw-mcp pair` prints `openclaw devices approve <requestId>`; the real
     `openclaw devices approve <requestId>` approves it; pair reports the scopes granted;
  3. a new bridge then uses the WebSocket (status api ws) and one chat succeeds over it (the model
     sees the bridge's fresh `mcp-run-…` session, which HTTP never uses);
  4. the device removed with the real `openclaw devices remove <deviceId>`: a new bridge's
     openclaw_status says pairing is required again (with a new approve command), calls go over
     HTTP, and the gateway saw a bounded number of connect attempts from the device (no loop);
  5. no token in any answer, in pair's output or in the bridge's stderr.
Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from e2e_harness import CheckFailed, Run, call_json, call_ok, run_check_suite
from e2e_openclaw import content_text, provider_requests

LOOPBACK_URL = re.compile(r"^http://127\.0\.0\.1:\d+$")
APPROVE = re.compile(r"openclaw devices approve ([0-9A-Za-z-]+)")


def bridge_env(args: argparse.Namespace) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "RUST_LOG") if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(
        HOME=args.data_dir,
        XDG_STATE_HOME=args.data_dir,
        NO_PROXY="127.0.0.1,localhost,::1",
        no_proxy="127.0.0.1,localhost,::1",
        OPENCLAW_MCP_DATA_DIR=args.data_dir,
        OPENCLAW_URL=args.url,
        OPENCLAW_GATEWAY_TOKEN=args.token,
    )
    return env


def openclaw_cli(run: Run, args: argparse.Namespace, *words: str) -> str:
    """Runs the real `openclaw` CLI (bounded); returns its output, fails on a non-zero exit."""
    try:
        done = subprocess.run([args.openclaw_cli, *words], capture_output=True, text=True, timeout=90)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"openclaw {' '.join(words)}: no exit within 90 s") from None
    out = (done.stdout + done.stderr).strip()
    run.expect(done.returncode == 0, f"openclaw {' '.join(words)} exited {done.returncode}: {run.redact(out)[-600:]}")
    return out


def connect_attempts(gateway_log: str, device: str) -> int:
    """Connects of `device` the gateway refused for pairing (its log names the device)."""
    with open(gateway_log, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if f"deviceId={device}" in line and "pairing-required" in line)


async def status_of(run: Run, c: Any) -> dict[str, Any]:
    return await call_json(run, c, "openclaw_status", {})


async def checks(run: Run, args: argparse.Namespace) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    env = bridge_env(args)
    nonce = os.urandom(4).hex()
    params = StdioServerParameters(command=args.bridge, args=[], env=env)
    errlog = open(run.errlog_path, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit

    def client() -> Any:
        return Client(stdio_client(params, errlog=errlog), read_timeout_seconds=120)

    async with client() as c:
        run.begin("before approval: openclaw_status says pairing required with the approve command; auto uses HTTP")
        value = await status_of(run, c)
        reason = str(value.get("api_reason", ""))
        run.expect_eq(value.get("status"), "ok", f"status (message {value.get('message')!r})")
        run.expect_eq(value.get("api"), "http", f"api ({reason!r})")
        run.expect("pairing required" in reason, f"api_reason {reason!r}")
        m = APPROVE.search(reason)
        run.expect(m is not None, f"no approve command in {reason!r}")
        run.expect("pairing required" in str(value.get("message", "")), f"message {value.get('message')!r}")
        first_request = m.group(1) if m else ""
        run.ok(f"{run.check_name}: {reason}")

        run.begin("before approval: openclaw_chat is answered over HTTP")
        text, _ = await call_ok(run, c, "openclaw_chat", {"message": f"pair http {nonce}"})
        run.expect_eq(text, args.reply, "chat text")
        run.ok()

    run.begin("openclaw-mcp pair prints the approve command; the real `openclaw devices approve` approves it")
    pair = subprocess.Popen(
        [args.bridge, "pair", "--wait", "90"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines: list[str] = []
    request_id = device = None
    deadline = time.monotonic() + 30
    try:
        assert pair.stdout is not None
        while request_id is None:
            run.expect(time.monotonic() < deadline, f"pair printed no approve command within 30 s: {lines}")
            line = await asyncio.wait_for(asyncio.to_thread(pair.stdout.readline), 30)
            if line == "":
                err = pair.stderr.read() if pair.stderr else ""
                run.fail(f"pair ended before printing the approve command: {lines} {run.redact(err)[-400:]}")
            lines.append(line.rstrip("\n"))
            if d := re.search(r"as device ([0-9a-f]{64})", line):
                device = d.group(1)
            if a := APPROVE.search(line):
                request_id = a.group(1)
        run.expect(device is not None, f"pair did not name the device: {lines}")
        started = time.monotonic()
        openclaw_cli(run, args, "devices", "approve", request_id)
        approve_s = time.monotonic() - started
        out, err = await asyncio.wait_for(asyncio.to_thread(pair.communicate), 60)
    finally:
        if pair.poll() is None:
            pair.kill()
            pair.wait()
    lines += out.splitlines()
    run.outputs += lines + [err]
    run.expect(pair.returncode == 0, f"pair exited {pair.returncode}: {lines} {run.redact(err)[-400:]}")
    paired = next((line for line in lines if line.startswith("Paired:")), "")
    run.expect("operator.read" in paired and "operator.write" in paired, f"pair's report: {lines}")
    scopes = re.search(r"scopes (.*?);", paired)
    same = "the one openclaw_status showed" if request_id == first_request else f"status showed {first_request}"
    run.ok(
        f"{run.check_name} (request {request_id[:8]}…, {same}; approve CLI {approve_s:.1f} s; "
        f"scopes {scopes.group(1) if scopes else '?'})"
    )

    async with client() as c:
        run.begin("after approval: the bridge with default settings uses the WebSocket and one chat succeeds")
        value = await status_of(run, c)
        reason = str(value.get("api_reason", ""))
        run.expect_eq(value.get("api"), "ws", f"api ({reason!r})")
        run.expect(reason.startswith("auto: WebSocket connected"), f"api_reason {reason!r}")
        before = len(provider_requests(args.provider_log))
        text, _ = await call_ok(run, c, "openclaw_chat", {"message": f"pair ws {nonce}"})
        run.expect_eq(text, args.reply, "chat text")
        seen = [content_text(m) for r in provider_requests(args.provider_log)[before:] for m in r["messages"] if f"pair ws {nonce}" in content_text(m)]
        run.expect(len(seen) == 1, f"the provider saw the message {len(seen)} times")
        run.expect(re.search(r"session=agent:main:mcp-run-[0-9a-f-]{36} \|", seen[0]) is not None, f"not the WebSocket's fresh session: {seen[0][-300:]}")
        run.ok(f"{run.check_name}: {reason}")

    run.begin("a removed device: openclaw_status says pairing required again, HTTP serves, no connect loop")
    assert device is not None
    openclaw_cli(run, args, "devices", "remove", device)
    attempts_before = connect_attempts(args.gateway_log, device)
    async with client() as c:
        value = await status_of(run, c)
        reason = str(value.get("api_reason", ""))
        run.expect_eq(value.get("api"), "http", f"api ({reason!r})")
        run.expect("pairing required" in reason and APPROVE.search(reason) is not None, f"api_reason {reason!r}")
        text, _ = await call_ok(run, c, "openclaw_chat", {"message": f"pair removed {nonce}"})
        run.expect_eq(text, args.reply, "chat text")
        # The bridge retries a failure only a person can fix once a minute: within these seconds
        # the gateway saw one or two connects of the device, not a loop.
        await asyncio.sleep(4)
        attempts = connect_attempts(args.gateway_log, device) - attempts_before
        run.expect(1 <= attempts <= 2, f"{attempts} connect attempts of the removed device")
    run.ok(f"{run.check_name}: {reason} ({attempts} connect attempt(s) in the first seconds)")

    run.begin("no token in any answer, in pair's output or in the bridge's stderr")
    for out in run.outputs:
        run.expect(args.token not in out, "the token appears in an answer")
    with open(run.errlog_path, encoding="utf-8", errors="replace") as f:
        run.expect(args.token not in f.read(), "the token appears in the bridge's stderr")
    run.ok()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bridge", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--provider-log", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--openclaw-cli", required=True)
    p.add_argument("--gateway-log", required=True)
    p.add_argument("--reply", default=os.environ.get("FAKE_REPLY", "Hello from the fake provider."))
    p.add_argument("--total-timeout", type=float, default=300.0)
    args = p.parse_args()
    if not LOOPBACK_URL.match(args.url):
        print(f"FAIL arguments: not a 127.0.0.1 URL: {args.url}", file=sys.stderr)
        return 2
    return run_check_suite("pairing checks", checks, args, [args.token])


if __name__ == "__main__":
    sys.exit(main())
