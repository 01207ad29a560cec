#!/usr/bin/env python3
"""Helper of scripts/e2e-openclaw.sh, second run: the bridge with DEFAULT settings (only
OPENCLAW_URL and OPENCLAW_GATEWAY_TOKEN) against the REAL gateway whose chat-completions endpoint
is DISABLED, so that every tool must go over the WebSocket (api auto).

  e2e_openclaw_ws.py --bridge B --url U --token T --provider-log L --data-dir D [--reply R]

Checks (`ok  <check>` each; the first failure prints `FAIL <check>: <why>` and exits 1):
status (api ws, and why), chat without a session (a fresh session, not the main one), two turns
in one session, new_session, agents, sessions and history of that session, an image, an async
task with progress, an abort (a running task cancelled: the fake provider's [[drip:N:S]] stream is
cut off, seen in its provider-events.jsonl), and a SIGKILL of the bridge while a task runs: a new
bridge on the same data directory adopts the run and the task completes with the gateway's answer,
the prompt having reached the model once. Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from typing import Any

from e2e_harness import CheckFailed, Run, call_json, call_ok, run_check_suite
from e2e_openclaw import PNG_1X1, content_text, poll_task, provider_requests

LOOPBACK_URL = re.compile(r"^http://127\.0\.0\.1:\d+$")


def provider_events(log: str) -> list[dict[str, Any]]:
    path = os.path.join(os.path.dirname(os.path.abspath(log)), "provider-events.jsonl")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def bridge_pids(bridge: str, data_dir: str) -> list[int]:
    """The live bridge processes of this run (their binary and their data dir)."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if os.path.realpath(exe) == os.path.realpath(bridge) and f"OPENCLAW_MCP_DATA_DIR={data_dir}".encode() in env:
            out.append(int(pid))
    return out


async def wait_for(what: str, cond: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise CheckFailed(f"{what}: not within {within:g} s")
        await asyncio.sleep(0.1)


async def checks(run: Run, args: argparse.Namespace) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    reply, nonce = args.reply, os.urandom(4).hex()
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
    params = StdioServerParameters(command=args.bridge, args=[], env=env)
    errlog = open(run.errlog_path, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit

    def client() -> Any:
        return Client(stdio_client(params, errlog=errlog), read_timeout_seconds=args.call_timeout)

    killed = False
    try:
        async with client() as c:
            adopt_id, tag = await first_bridge(run, args, c, reply, nonce)
            killed = True
            pids = bridge_pids(args.bridge, args.data_dir)
            run.expect(len(pids) == 1, f"bridge processes {pids}")
            os.kill(pids[0], signal.SIGKILL)
            run.ok(f"{run.check_name} (pid {pids[0]})")
    except Exception:  # noqa: BLE001 - the client's session ends with the killed process
        if not killed:
            raise

    async with client() as c:
        run.begin("a new bridge adopts the run: the task completes with the gateway's answer, sent once")
        status, states, _ = await poll_task(run, c, adopt_id, args.poll_timeout)
        run.expect_eq(status.get("status"), "completed", f"task ({status})")
        run.expect_eq(status.get("result"), " ".join(f"w{i}" for i in range(1, 13)), "task result")
        starts = [e for e in provider_events(args.provider_log) if e.get("what") == "drip-start" and tag in e.get("text", "")]
        run.expect(len(starts) == 1, f"the prompt reached the model {len(starts)} times")
        run.ok(f"{run.check_name} ({' -> '.join(states)})")

    run.begin("no token in any answer or in the bridge's stderr")
    for out in run.outputs:
        run.expect(args.token not in out, "the token appears in an answer")
    with open(run.errlog_path, encoding="utf-8", errors="replace") as f:
        run.expect(args.token not in f.read(), "the token appears in the bridge's stderr")
    run.ok()


async def first_bridge(run: Run, args: argparse.Namespace, c: Any, reply: str, nonce: str) -> tuple[str, str]:
    """Every check of the first bridge; returns the task to adopt (running) and its tag."""
    if True:
        run.begin("openclaw_status -> ok over the WebSocket (chat-completions is disabled)")
        value = await call_json(run, c, "openclaw_status", {})
        run.expect_eq(value.get("status"), "ok", f"status (message {value.get('message')!r})")
        run.expect_eq(value.get("api"), "ws", f"api ({value.get('api_reason')!r})")
        run.expect(str(value.get("api_reason", "")).startswith("auto: WebSocket connected"), f"api_reason {value.get('api_reason')!r}")
        run.ok(f"{run.check_name}: {value.get('api_reason')}")

        run.begin("openclaw_chat without a session -> the reply, in a fresh session")
        before = len(provider_requests(args.provider_log))
        text, structured = await call_ok(run, c, "openclaw_chat", {"message": f"hello ws {nonce}"})
        run.expect_eq(text, reply, "chat text")
        seen = [content_text(m) for r in provider_requests(args.provider_log)[before:] for m in r["messages"] if f"hello ws {nonce}" in content_text(m)]
        run.expect(len(seen) == 1, f"the provider saw the message {len(seen)} times")
        run.expect(re.search(r"session=agent:main:mcp-run-[0-9a-f-]{36} \|", seen[0]) is not None, f"not a fresh session: {seen[0][-300:]}")
        run.ok()

        session_id = f"e2e-ws-{nonce}"
        run.begin(f"openclaw_chat twice in session {session_id}")
        for msg in (f"first {nonce} aubergine", f"second {nonce} which word?"):
            text, _ = await call_ok(run, c, "openclaw_chat", {"message": msg, "session_id": session_id})
            run.expect_eq(text, reply, "chat text")
        last = provider_requests(args.provider_log)[-1]
        joined = " ".join(content_text(m) for m in last["messages"])
        run.expect(f"first {nonce} aubergine" in joined, "the second turn's model request holds the first turn")
        run.ok()

        run.begin("openclaw_chat new_session -> its own session key")
        text, structured = await call_ok(run, c, "openclaw_chat", {"message": f"new {nonce}", "new_session": True})
        key = (structured or {}).get("session_key") or ""
        run.expect(key.startswith("mcp-"), f"session_key {key!r}")
        run.ok()

        run.begin("openclaw_agents -> main")
        value = await call_json(run, c, "openclaw_agents", {})
        run.expect([a.get("id") for a in value.get("agents", [])] == ["main"], f"agents {value}")
        run.ok()

        run.begin("openclaw_sessions lists the session; openclaw_session_history reads it")
        value = await call_json(run, c, "openclaw_sessions", {"limit": 50})
        keys = [s.get("key") for s in value.get("sessions", [])]
        run.expect(f"agent:main:{session_id}" in keys, f"sessions {keys}")
        value = await call_json(run, c, "openclaw_session_history", {"session_id": session_id})
        texts = [m.get("content") for m in value.get("messages", [])]
        run.expect(any(f"first {nonce}" in (t or "") for t in texts), f"history {texts}")
        run.ok()

        run.begin("openclaw_chat with an image -> it reaches the model")
        before = len(provider_requests(args.provider_log))
        text, _ = await call_ok(run, c, "openclaw_chat", {"message": f"picture {nonce}", "images": [f"data:image/png;base64,{PNG_1X1}"]})
        run.expect_eq(text, reply, "chat text")
        parts = [p for r in provider_requests(args.provider_log)[before:] for m in r["messages"] if isinstance(m.get("content"), list) for p in m["content"]]
        run.expect(any(p.get("type") in ("image_url", "image") for p in parts), f"no image part reached the model: {[p.get('type') for p in parts]}")
        run.ok()

        run.begin("openclaw_chat_async -> completed with progress")
        value = await call_json(run, c, "openclaw_chat_async", {"message": f"task {nonce} [[drip:4:0.3]]"})
        status, states, progress = await poll_task(run, c, value["task_id"], args.poll_timeout)
        run.expect_eq(status.get("status"), "completed", f"task ({status})")
        run.expect_eq(status.get("result"), "w1 w2 w3 w4", "task result")
        run.expect(progress > 0, f"progress_chars {progress}")
        run.ok(f"{run.check_name} ({' -> '.join(states)}, progress {progress})")

        run.begin("openclaw_task_cancel of a running task -> the model request is cut off within a second")
        tag = f"abort {nonce}"
        value = await call_json(run, c, "openclaw_chat_async", {"message": f"{tag} [[drip:40:0.5]]"})
        await wait_for("the first chunk", lambda: any(e.get("what") == "chunk" and tag in e.get("text", "") for e in provider_events(args.provider_log)), 60)
        cancelled = time.time()
        await call_json(run, c, "openclaw_task_cancel", {"task_id": value["task_id"]})
        await wait_for(
            "client-gone in provider-events.jsonl",
            lambda: any(e.get("what") == "client-gone" and tag in e.get("text", "") for e in provider_events(args.provider_log)),
            5,
        )
        gone = next(e for e in provider_events(args.provider_log) if e.get("what") == "client-gone" and tag in e.get("text", ""))
        chunks = [e for e in provider_events(args.provider_log) if e.get("what") == "chunk" and tag in e.get("text", "")]
        run.expect(not any(e.get("what") == "drip-done" and tag in e.get("text", "") for e in provider_events(args.provider_log)), "the stream finished")
        # The provider notices at its next write (0.5 s apart): the abort itself is quicker.
        run.expect(gone["t"] - cancelled < 1.6, f"cut off {gone['t'] - cancelled:.2f} s after the cancel")
        run.ok(f"{run.check_name} ({len(chunks)} of 40 chunks sent, cut off {gone['t'] - cancelled:.2f} s after the cancel)")

        run.begin("SIGKILL of the bridge while a task runs")
        tag = f"adopt {nonce}"
        value = await call_json(run, c, "openclaw_chat_async", {"message": f"{tag} [[drip:12:0.5]]"})
        adopt_id = value["task_id"]
        await wait_for("the first chunk", lambda: any(e.get("what") == "chunk" and tag in e.get("text", "") for e in provider_events(args.provider_log)), 60)
        return adopt_id, tag


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bridge", required=True)
    p.add_argument("--url", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--provider-log", required=True)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--reply", default=os.environ.get("FAKE_REPLY", "Hello from the fake provider."))
    p.add_argument("--poll-timeout", type=float, default=90.0)
    p.add_argument("--call-timeout", type=float, default=150.0)
    p.add_argument("--total-timeout", type=float, default=600.0)
    args = p.parse_args()
    if not LOOPBACK_URL.match(args.url):
        print(f"FAIL arguments: not a 127.0.0.1 URL: {args.url}", file=sys.stderr)
        return 2
    return run_check_suite("WebSocket checks", checks, args, [args.token])


if __name__ == "__main__":
    sys.exit(main())
