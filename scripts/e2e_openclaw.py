#!/usr/bin/env python3
"""Helper of scripts/e2e-openclaw.sh: the bridge against the REAL OpenClaw gateway.

Three subcommands:

  fakes PORTS_FILE REQUEST_LOG EGRESS_LOG
      Standard library only. Two loopback test doubles in one process, each on a free port of
      127.0.0.1; "<provider_port> <proxy_port>" is written to PORTS_FILE once both listen.
       1. a fake OpenAI-compatible model provider (the gateway's agent model): POST
          /v1/chat/completions (stream and non-stream), GET /v1/models. It replies FAKE_REPLY and
          logs every request body to REQUEST_LOG (JSON lines). Triggers in the latest user text:
          [[fail:NNN]] -> HTTP NNN error body, [[slow:S]] -> sleep S seconds first,
          [[tool:NAME]] -> a tool call to NAME (directly, or through OpenClaw's tool_call wrapper)
          unless the text already holds a tool result containing "fake-tool-result".
       2. a deny-all forward proxy, the gateway's `proxy.proxyUrl`: every outbound (non-loopback)
          request the gateway tries is logged to EGRESS_LOG and refused with 403, so nothing
          leaves the host and no DNS lookup happens.

  free-port
      Prints a free 127.0.0.1 port P such that P+1 and P+2 are free too (the gateway may derive
      loopback ports from its own).

  check --bridge ... --real-url ... (see --help)
      Needs the `mcp` 2.x SDK (the venv of scripts/e2e-python.sh). Drives the bridge over stdio
      with the official Python client against the real gateway (instance `real`, the default) and
      the project's mock gateway (instance `mock`), printing `ok  <check>` per check. The first
      failed check prints `FAIL <check>: <why>` and the end of the bridge's stderr, and exits 1.

Only loopback addresses are used anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from typing import Any

from e2e_harness import CheckFailed, Run, call, call_json, call_ok, run_check_suite, short

# ---------------------------------------------------------------------------------------------------
# fakes: the loopback model provider and the deny-all egress proxy (standard library only)


def serve_fakes(ports_file: str, request_log: str, egress_log: str) -> None:
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    reply_text = os.environ.get("FAKE_REPLY", "Hello from the fake provider.")
    lock = threading.Lock()

    def append(path: str, line: str) -> None:
        with lock, open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")

    events_log = os.path.join(os.path.dirname(os.path.abspath(request_log)), "provider-events.jsonl")

    def event(**kw: Any) -> None:
        append(events_log, json.dumps({"t": round(time.time(), 3), **kw}))

    def last_user_text(msgs: Any) -> str:
        for m in reversed(msgs or []):
            if m.get("role") == "user":
                c = m.get("content")
                if isinstance(c, list):
                    c = " ".join(p.get("text", "") for p in c if isinstance(p, dict))
                if c and "OPENCLAW_INTERNAL_CONTEXT" not in c:
                    return c
        return ""

    class Provider(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a: Any) -> None:
            pass

        def _json(self, code: int, obj: Any) -> None:
            b = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(b)))
            self.end_headers()
            self.wfile.write(b)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/").endswith("/models"):
                return self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model", "owned_by": "fake"}]})
            self._json(404, {"error": {"message": "not found", "type": "not_found"}})

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            append(request_log, json.dumps({"t": time.time(), "path": self.path, "body": body.decode("utf-8", "replace")}))
            if not self.path.rstrip("/").endswith("/chat/completions"):
                return self._json(404, {"error": {"message": "not found", "type": "not_found"}})
            req = json.loads(body or b"{}")
            text = last_user_text(req.get("messages"))
            if m := re.search(r"\[\[slow:(\d+(?:\.\d+)?)\]\]", text):
                time.sleep(float(m.group(1)))
            if m := re.search(r"\[\[fail:(\d{3})\]\]", text):
                return self._json(int(m.group(1)), {"error": {"message": f"fake failure {m.group(1)}", "type": "server_error"}})
            tool = args = None
            m = re.search(r"\[\[tool:([A-Za-z0-9_.-]+)\]\]", text)
            if m and req.get("messages", [{}])[-1].get("role") != "tool" and "fake-tool-result" not in text:
                names = [t.get("function", {}).get("name") for t in req.get("tools") or []]
                if m.group(1) in names:
                    tool, args = m.group(1), {}
                elif "tool_call" in names:  # OpenClaw hides client tools behind tool_search/tool_call
                    tool, args = "tool_call", {"id": m.group(1), "args": {}}
            cid, created, model = "chatcmpl-fake", int(time.time()), req.get("model", "fake-model")
            usage = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
            calls = (
                [{"index": 0, "id": "call_fake_1", "type": "function", "function": {"name": tool, "arguments": json.dumps(args)}}]
                if tool
                else None
            )
            finish = "tool_calls" if tool else "stop"
            if not req.get("stream"):
                msg: dict[str, Any] = {"role": "assistant", "content": None if tool else reply_text}
                if calls:
                    msg["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
                return self._json(
                    200,
                    {
                        "id": cid,
                        "object": "chat.completion",
                        "created": created,
                        "model": model,
                        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
                        "usage": usage,
                    },
                )
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}

            def ev(choices: list[Any], **extra: Any) -> None:
                self.wfile.write(b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n")
                self.wfile.flush()

            ev([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            drip = re.search(r"\[\[drip:(\d+):(\d+(?:\.\d+)?)\]\]", text)
            if drip and not calls:
                # N words, S seconds apart; chunks and a client that goes away are logged to
                # provider-events.jsonl (beside the request log) with the text's tail.
                n, gap = int(drip.group(1)), float(drip.group(2))
                event(what="drip-start", n=n, gap=gap, text=text[:4000])
                try:
                    for i in range(n):
                        time.sleep(gap)
                        ev([{"index": 0, "delta": {"content": ("" if i == 0 else " ") + f"w{i + 1}"}, "finish_reason": None}])
                        event(what="chunk", i=i + 1, text=text[:4000])
                    ev([{"index": 0, "delta": {}, "finish_reason": "stop"}])
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                    event(what="drip-done", text=text[:4000])
                except (BrokenPipeError, ConnectionResetError) as e:
                    event(what="client-gone", err=type(e).__name__, text=text[:4000])
                self.close_connection = True
                return
            if calls:
                ev([{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}])
            else:
                for i, w in enumerate(reply_text.split(" ")):
                    ev([{"index": 0, "delta": {"content": w if i == 0 else " " + w}, "finish_reason": None}])
            ev([{"index": 0, "delta": {}, "finish_reason": finish}])
            if (req.get("stream_options") or {}).get("include_usage"):
                ev([], usage=usage)
            self.wfile.write(b"data: [DONE]\n\n")
            self.wfile.flush()
            self.close_connection = True

    class DenyProxy(BaseHTTPRequestHandler):
        def log_message(self, *a: Any) -> None:
            pass

        def deny(self) -> None:
            append(egress_log, f"{time.strftime('%Y-%m-%dT%H:%M:%S')} DENIED {self.command} {self.path}")
            self.send_response(403, "Egress denied (loopback-only test backend)")
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True

        do_CONNECT = do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = deny  # noqa: N815

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Provider), ThreadingHTTPServer(("127.0.0.1", 0), DenyProxy)]
    threading.Thread(target=servers[1].serve_forever, daemon=True).start()
    with open(ports_file + ".tmp", "w") as f:
        f.write(" ".join(str(s.server_address[1]) for s in servers) + "\n")
    os.replace(ports_file + ".tmp", ports_file)
    servers[0].serve_forever()


def free_port() -> int:
    """A free loopback port P with P+1 and P+2 free as well (bind-tested, best effort)."""
    import socket

    def can_bind(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return True
            except OSError:
                return False

    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port + 2 < 65536 and all(can_bind(p) for p in (port, port + 1, port + 2)):
            return port
    raise SystemExit("no free loopback port triple found")


# ---------------------------------------------------------------------------------------------------
# check: the bridge over stdio, with the official MCP Python SDK

TASK_ID_RE = re.compile(r"^task_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TERMINAL = {"completed", "failed", "cancelled"}
# A 1x1 PNG (67 bytes), for the images argument.
PNG_1X1 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
LOOPBACK_URL = re.compile(r"^http://127\.0\.0\.1:\d+$")


def gateway_post(url: str, token: str, path: str, body: dict[str, Any], timeout: float = 30) -> tuple[int, Any]:
    """POSTs JSON straight to a gateway (no proxy, whatever the environment says)."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    req = urllib.request.Request(
        url + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with opener.open(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def provider_requests(path: str) -> list[dict[str, Any]]:
    """The fake provider's chat requests, oldest first: [{"t", "messages", "stream"}]."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            if not entry.get("path", "").rstrip("/").endswith("/chat/completions"):
                continue
            body = json.loads(entry.get("body") or "{}")
            out.append({"t": entry.get("t"), "messages": body.get("messages") or [], "stream": body.get("stream")})
    return out


def content_text(message: dict[str, Any]) -> str:
    c = message.get("content")
    if isinstance(c, list):
        return " ".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c if isinstance(c, str) else ""


async def poll_task(run: Run, client: Any, task_id: str, timeout_s: float) -> tuple[dict[str, Any], list[str], int]:
    """Polls openclaw_task_status until the task is terminal (bounded). Returns (last status,
    the states seen, the largest progress_chars seen)."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    max_progress = 0
    while True:
        status = await call_json(run, client, "openclaw_task_status", {"task_id": task_id})
        state = status.get("status")
        if not seen or seen[-1] != state:
            seen.append(state)
        if isinstance(status.get("progress_chars"), int):
            max_progress = max(max_progress, status["progress_chars"])
        if state in TERMINAL:
            return status, seen, max_progress
        if time.monotonic() >= deadline:
            raise CheckFailed(f"{task_id} not finished after {timeout_s:g} s (states seen: {' -> '.join(map(str, seen))})")
        await asyncio.sleep(0.2)


async def checks(run: Run, args: argparse.Namespace) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    reply = args.reply
    nonce = os.urandom(4).hex()
    instances = [
        # api http: this run checks the HTTP backend exactly as before the WebSocket one existed
        # (the second run, scripts/e2e_openclaw_ws.py, checks the WebSocket with defaults).
        {"name": "real", "url": args.real_url, "token": args.real_token, "default": True, "api": "http"},
        {"name": "mock", "url": args.mock_url, "token": args.mock_token, "api": "http"},
    ]
    # A clean environment: nothing OPENCLAW_*/MCP_* leaks in from the caller's shell.
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "RUST_LOG", "RUST_BACKTRACE") if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["HOME"] = args.data_dir
    env["XDG_STATE_HOME"] = args.data_dir
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["OPENCLAW_MCP_DATA_DIR"] = args.data_dir
    env["OPENCLAW_INSTANCES"] = json.dumps(instances)
    params = StdioServerParameters(command=args.bridge, args=[], env=env)
    errlog = open(run.errlog_path, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit

    run.begin("connect to the bridge over stdio (OPENCLAW_INSTANCES real [default], mock)")
    async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=args.call_timeout) as client:
        run.expect_eq(client.server_info.name if client.server_info else None, "openclaw-mcp", "serverInfo.name")
        run.ok(f"connect to the bridge over stdio (protocol {client.protocol_version})")

        # 1. status
        for name in ("real", "mock"):
            run.begin(f"openclaw_status {name} -> ok (http_status 400, ready true)")
            value = await call_json(run, client, "openclaw_status", {"instance": name})
            run.expect_eq(value.get("status"), "ok", f"status (message: {value.get('message')!r})")
            run.expect_eq(value.get("instance"), name, "instance")
            run.expect_eq(value.get("http_status"), 400, "http_status (the probe's empty chat gets 400)")
            run.expect_eq(value.get("ready"), True, "ready (GET /readyz)")
            run.ok()

        # 2. one chat without a session
        run.begin(f"openclaw_chat on real (no session) -> the fake provider's reply {reply!r}")
        before = len(provider_requests(args.provider_log))
        text, _ = await call_ok(run, client, "openclaw_chat", {"message": f"hello real {nonce}"})
        run.expect_eq(text, reply, "chat text")
        reqs = provider_requests(args.provider_log)[before:]
        texts = [content_text(m) for r in reqs for m in r["messages"] if f"hello real {nonce}" in content_text(m)]
        run.expect(len(texts) == 1, f"the provider saw the message {len(texts)} times (requests since the call: {len(reqs)})")
        # No session_id -> no x-openclaw-session-key: the gateway made a one-off openai:<uuid> session.
        run.expect(
            re.search(r"session=agent:main:openai:[0-9a-f-]{36} \|", texts[0]) is not None,
            f"expected a one-off agent:main:openai:<uuid> session in the runtime footer: {short(texts[0], 400)}",
        )
        run.ok()

        # 3. two turns in one session
        session_id = f"e2e-sess-{nonce}"
        first, second = f"first turn {nonce}: remember the word aubergine", f"second turn {nonce}: which word?"
        run.begin(f"openclaw_chat twice with session_id {session_id} -> both answered")
        before = len(provider_requests(args.provider_log))
        for msg in (first, second):
            text, _ = await call_ok(run, client, "openclaw_chat", {"message": msg, "session_id": session_id})
            run.expect_eq(text, reply, f"chat text of {msg!r}")
        run.ok()

        run.begin("the second turn continued the gateway session (the provider saw turn 1 and its reply)")
        reqs = provider_requests(args.provider_log)[before:]
        # The request that carried the second turn: its latest real user message holds `second`.
        carrying = [
            r
            for r in reqs
            if any(m.get("role") == "user" and second in content_text(m) for m in r["messages"])
        ]
        run.expect(len(carrying) == 1, f"expected 1 provider request with the second turn, got {len(carrying)}")
        msgs = carrying[0]["messages"]
        roles_texts = [(m.get("role"), content_text(m)) for m in msgs]
        i_first = next((i for i, (r, t) in enumerate(roles_texts) if r == "user" and first in t), None)
        i_second = next((i for i, (r, t) in enumerate(roles_texts) if r == "user" and second in t), None)
        run.expect(i_first is not None, "the second turn's provider request does not contain the first turn's user text")
        # The gateway's runtime footer on the stored first turn names the session it ran in.
        footer = f"session=agent:main:{session_id} |"
        run.expect(footer in roles_texts[i_first][1], f"no {footer!r} in the first turn: {short(roles_texts[i_first][1], 400)}")
        i_reply = next((i for i, (r, t) in enumerate(roles_texts) if r == "assistant" and reply in t and i > i_first), None)
        run.expect(i_reply is not None, "the second turn's provider request has no assistant reply after the first turn")
        run.expect(i_first < i_reply < i_second, f"order: first user {i_first}, reply {i_reply}, second user {i_second}")
        # The bridge sends only the new message; had it re-sent the history, the gateway would have
        # flattened it into the prompt again and the first turn would appear twice.
        count = sum(t.count(first) for _, t in roles_texts)
        run.expect_eq(count, 1, "occurrences of the first turn's text in the second request (history re-sent?)")
        # And the no-session chat of check 2 is not part of this conversation.
        run.expect(
            not any(f"hello real {nonce}" in t for _, t in roles_texts),
            "the session-less chat leaked into the session's history",
        )
        run.ok(f"{run.check_name}: messages {i_first} user / {i_reply} assistant / {i_second} user")

        run.begin(f"the gateway lists the session key agent:main:{session_id} (POST /tools/invoke sessions_list)")
        status, body = gateway_post(args.real_url, args.real_token, "/tools/invoke", {"tool": "sessions_list", "args": {}})
        run.expect_eq(status, 200, f"/tools/invoke status (body {short(body)})")
        run.expect(isinstance(body, dict) and body.get("ok") is True, f"/tools/invoke body: {short(body)}")
        listing = " ".join(c.get("text", "") for c in body.get("result", {}).get("content", []) if isinstance(c, dict))
        key = f"agent:main:{session_id}"
        run.expect(key in listing, f"{key} not in sessions_list: {short(listing, 600)}")
        run.expect_eq(listing.count(f'"{key}"'), 1, f"exact occurrences of the key {key!r} in sessions_list")
        run.ok()

        # 3b. beyond 1.7.0: agents, sessions, history, new sessions, images
        run.begin("openclaw_agents on real lists the default agent main (GET /v1/models)")
        value = await call_json(run, client, "openclaw_agents", {})
        run.expect_eq(value.get("instance"), "real", "instance")
        ids = [a.get("id") for a in value.get("agents") or []]
        run.expect("main" in ids, f"main not among the agents {ids} (models {value.get('models')})")
        run.ok(f"{run.check_name}: agents {ids}")

        run.begin(f"openclaw_sessions on real shows {key}")
        value = await call_json(run, client, "openclaw_sessions", {"limit": 200})
        keys = [row.get("key") for row in value.get("sessions") or [] if isinstance(row, dict)]
        run.expect(key in keys, f"{key} not in openclaw_sessions: {short(keys, 600)}")
        run.expect_eq(value.get("count"), len(value.get("sessions") or []), "count")
        run.ok(f"{run.check_name} ({len(keys)} sessions)")

        run.begin(f"openclaw_session_history of {session_id} holds both turns and the replies, in order")
        value = await call_json(run, client, "openclaw_session_history", {"session_id": session_id, "limit": 50})
        run.expect_eq(value.get("session_key"), key, "session_key")
        messages = value.get("messages") or []
        turns = [(m.get("role"), content_text(m)) for m in messages if isinstance(m, dict)]
        i1 = next((i for i, (r, t) in enumerate(turns) if r == "user" and first in t), None)
        i2 = next((i for i, (r, t) in enumerate(turns) if r == "user" and second in t), None)
        ir = next((i for i, (r, t) in enumerate(turns) if r == "assistant" and reply in t), None)
        run.expect(None not in (i1, ir, i2) and i1 < ir < i2, f"history order user {i1} / assistant {ir} / user {i2}: {short(turns, 600)}")
        run.ok(f"{run.check_name} ({len(messages)} messages)")

        run.begin("openclaw_chat new_session: true -> a fresh session key the gateway then lists")
        text, structured = await call_ok(run, client, "openclaw_chat", {"message": f"fresh start {nonce}", "new_session": True})
        run.expect_eq(text, reply, "chat text")
        fresh = (structured or {}).get("session_key")
        run.expect(isinstance(fresh, str) and fresh.startswith("mcp-"), f"structuredContent.session_key {fresh!r}")
        run.expect("response" not in (structured or {}), "the answer is sent once, as the text, not in structuredContent too")
        value = await call_json(run, client, "openclaw_sessions", {"limit": 200})
        keys = [row.get("key") for row in value.get("sessions") or [] if isinstance(row, dict)]
        run.expect(f"agent:main:{fresh}" in keys, f"agent:main:{fresh} not in openclaw_sessions")
        run.ok()

        run.begin("openclaw_chat with a 1x1 PNG -> the stub model receives it as an image part")
        before = len(provider_requests(args.provider_log))
        marker = f"look at this {nonce}"
        text, _ = await call_ok(
            run, client, "openclaw_chat", {"message": marker, "images": [f"data:image/png;base64,{PNG_1X1}"]}
        )
        run.expect_eq(text, reply, "chat text")
        reqs = provider_requests(args.provider_log)[before:]
        carrying = [m for r in reqs for m in r["messages"] if m.get("role") == "user" and marker in content_text(m)]
        run.expect(len(carrying) >= 1, f"no provider request carries {marker!r} ({len(reqs)} requests)")
        parts = [p for p in carrying[-1].get("content") or [] if isinstance(p, dict)] if isinstance(carrying[-1].get("content"), list) else []
        images = [p for p in parts if p.get("type") in ("image_url", "image", "input_image")]
        run.expect(len(images) == 1, f"expected one image part in the provider's user message, got parts {short([p.get('type') for p in parts])}")
        image = json.dumps(images[0])
        run.expect(PNG_1X1[:40] in image, f"the image part does not carry the PNG: {short(image)}")
        run.ok(f"{run.check_name} (part type {images[0].get('type')})")

        # 4. an async task on the real gateway
        run.begin(f"openclaw_chat_async on real -> openclaw_task_status completed within {args.poll_timeout:g} s")
        queued = await call_json(run, client, "openclaw_chat_async", {"message": f"async hello {nonce}", "session_id": f"{session_id}-async"})
        task_id = queued.get("task_id")
        run.expect(isinstance(task_id, str) and TASK_ID_RE.match(task_id) is not None, f"task_id is not task_<uuid4>: {task_id!r}")
        run.expect_eq(queued.get("instance"), "real", "instance of the queued task")
        status_value, seen, max_progress = await poll_task(run, client, task_id, args.poll_timeout)
        run.expect_eq(status_value.get("status"), "completed", f"final status (error: {status_value.get('error')!r})")
        run.expect_eq(status_value.get("result"), reply, "result")
        run.expect_eq(status_value.get("instance"), "real", "instance")
        progress = status_value.get("progress_chars")
        run.expect(isinstance(progress, int) and progress > 0, f"progress_chars of the completed task: {progress!r}")
        run.ok(f"{run.check_name} (states {' -> '.join(seen)}, progress_chars {progress})")

        # 5. the mock gateway, and the instance list
        run.begin("openclaw_chat with instance mock -> echo")
        text, _ = await call_ok(run, client, "openclaw_chat", {"message": f"hello mock {nonce}", "instance": "mock"})
        run.expect_eq(text, f"echo: hello mock {nonce}", "chat text")
        run.ok()

        run.begin("openclaw_instances lists real (default) and mock, healthy, without tokens")
        value = await call_json(run, client, "openclaw_instances", {})
        run.expect_eq(value.get("total"), 2, "total")
        listed = value.get("instances") or []
        run.expect_eq(
            [(i.get("name"), i.get("url"), i.get("isDefault")) for i in listed],
            [("real", args.real_url, True), ("mock", args.mock_url, False)],
            "(name, url, isDefault)",
        )
        for inst in listed:
            run.expect("token" not in inst, f"{inst.get('name')}: has a token field")
            run.expect_eq((inst.get("health") or {}).get("status"), "ok", f"{inst.get('name')}.health.status")
        run.ok()

        # 6. a fast error path on the real gateway: the provider answers 400
        run.begin("openclaw_chat with a provider 400 ([[fail:400]]) -> isError 'Error: API request failed: 400'")
        started = time.monotonic()
        is_error, text, _ = await call(run, client, "openclaw_chat", {"message": f"please fail {nonce} [[fail:400]]"})
        run.expect(is_error, f"expected isError, got a success: {short(text)}")
        run.expect(text.startswith("Error: API request failed: 400"), f"error text: {short(text)}")
        run.ok(f"{run.check_name} in {time.monotonic() - started:.2f} s: {short(text, 160)}")

        run.begin("the real gateway still answers after the error")
        text, _ = await call_ok(run, client, "openclaw_chat", {"message": f"after the error {nonce}"})
        run.expect_eq(text, reply, "chat text")
        run.ok()

    run.begin("no token in any answer or in the bridge's stderr")
    for out in run.outputs:
        for secret in run.secrets:
            run.expect(secret not in out, f"a token appears in an answer: {short(run.redact(out))}")
    with open(run.errlog_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    for secret in run.secrets:
        run.expect(secret not in log, "a token appears in the bridge's stderr")
    run.ok()


def run_checks(args: argparse.Namespace) -> int:
    import asyncio

    for url in (args.real_url, args.mock_url):
        if not LOOPBACK_URL.match(url):
            print(f"FAIL arguments: not a 127.0.0.1 URL: {url}", file=sys.stderr)
            return 2
    return run_check_suite("client checks", checks, args, [args.real_token, args.mock_token])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fakes", help="run the fake provider and the deny-all proxy")
    f.add_argument("ports_file")
    f.add_argument("request_log")
    f.add_argument("egress_log")
    sub.add_parser("free-port", help="print a free loopback port P with P+1, P+2 free")
    c = sub.add_parser("check", help="drive the bridge over stdio and assert")
    c.add_argument("--bridge", required=True, help="path of the openclaw-mcp binary")
    c.add_argument("--real-url", required=True)
    c.add_argument("--real-token", required=True)
    c.add_argument("--mock-url", required=True)
    c.add_argument("--mock-token", required=True)
    c.add_argument("--provider-log", required=True, help="the fake provider's provider-requests.jsonl")
    c.add_argument("--data-dir", required=True, help="OPENCLAW_MCP_DATA_DIR for the bridge")
    c.add_argument("--reply", default=os.environ.get("FAKE_REPLY", "Hello from the fake provider."))
    c.add_argument("--poll-timeout", type=float, default=60.0, help="seconds an async task may take")
    c.add_argument("--call-timeout", type=float, default=150.0, help="seconds for one MCP answer")
    c.add_argument("--total-timeout", type=float, default=400.0, help="seconds for all the checks")
    args = p.parse_args()
    if args.cmd == "fakes":
        serve_fakes(args.ports_file, args.request_log, args.egress_log)
        return 0
    if args.cmd == "free-port":
        print(free_port())
        return 0
    return run_checks(args)


if __name__ == "__main__":
    sys.exit(main())
