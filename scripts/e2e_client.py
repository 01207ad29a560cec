#!/usr/bin/env python3
"""End-to-end check of the openclaw-mcp bridge with the official MCP Python SDK (PyPI `mcp` 2.x).

It starts the bridge against two mock gateways that are already running (see
scripts/e2e-python.sh, which starts them and runs this file):

  a  the default instance, whose gateway wants a token (passed with --token-a)
  b  a gateway without a token, which answers chats after --b-delay-ms

and asserts the seven tools, printing `ok  <check>` per check, over each transport of
--transports (default: all five), and, except in the OAuth run, that an 800 kB answer (the mock
gateway's `[[huge:BYTES]]`) arrives whole and is sent once:

  stdio        the bridge as Claude Desktop starts it;
  http         Streamable HTTP (`--transport http` on a free loopback port), the client's default
               mode: it probes `server/discover` and speaks the stateless 2026-07-28 era;
  http-legacy  the same with `mode="legacy"`: `initialize` and an MCP session;
  sse          the legacy HTTP+SSE transport (`/sse` + `/messages`) of a bridge started with the
               deprecated alias `--transport sse`;
  oauth        Streamable HTTP to a bridge with OAuth on (AUTH_ENABLED=true, a configured client
               with a random 64-hex secret, MCP_REDIRECT_URIS on a loopback callback): a request
               without a token gets 401 with `resource_metadata`; the SDK's OAuthClientProvider,
               given the pre-registered client id and secret through its storage, discovers the
               metadata from that 401, authorizes with PKCE (the redirect handler GETs the
               authorization URL without following the 302 and hands `code`, `state` and `iss` to
               the callback handler: no browser), exchanges the code, runs the tool checks, then
               refreshes (the stored token is made to look expired) and calls tools with the new
               token. The secret, the code and the tokens must appear in no bridge log line.

Each HTTP bridge gets its own data directory and must exit 0 on SIGTERM. The first failed
check prints `FAIL <check>: <why>` (and the end of the bridge's stderr) and exits 1.

The four async tools (openclaw_chat_async, openclaw_task_status, openclaw_task_list,
openclaw_task_cancel) are checked only when the bridge implements them: if the first
openclaw_chat_async call answers the "not available yet" error, the async checks are skipped with
`SKIP async tools: not implemented in this build`. Every other answer is asserted strictly.

Only loopback addresses are used. Standard library plus `mcp` (and its `httpx2`) only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import mcp.client.auth.oauth2 as sdk_oauth2
from mcp import Client, StdioServerParameters
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from e2e_harness import CheckFailed, Run, call, call_error, call_json, call_ok, short

TOOL_NAMES = [
    "openclaw_chat",
    "openclaw_status",
    "openclaw_chat_async",
    "openclaw_task_status",
    "openclaw_task_list",
    "openclaw_task_cancel",
    "openclaw_instances",
    # This bridge's additions, after 1.7.0's seven.
    "openclaw_agents",
    "openclaw_sessions",
    "openclaw_session_history",
]
ASYNC_TOOLS = TOOL_NAMES[2:6]
NOT_AVAILABLE = "Error: {tool} is not available yet in this version of openclaw-mcp; use openclaw_chat"
TASK_QUEUED = "Task queued. Use openclaw_task_status to check progress."
TASK_ID_RE = re.compile(r"^task_[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
STATUSES = ["pending", "running", "completed", "failed", "cancelled"]
TERMINAL = {"completed", "failed", "cancelled"}
MAX_MESSAGE_CHARS = 100_000
# An answer this large (the mock gateway's `[[huge:BYTES]]`) must reach the client whole: sent
# twice (text and structuredContent) it would pass the SDK's 1 MiB limit on an SSE event.
LARGE_ANSWER_BYTES = 800_000
TRANSPORTS = ["stdio", "http", "http-legacy", "sse", "oauth"]
MODERN = "2026-07-28"
LISTENING_RE = re.compile(r"listening address=127\.0\.0\.1:(\d+)")


def bridge_env(args: argparse.Namespace, data_dir: str, extra: dict[str, str]) -> dict[str, str]:
    """A clean environment: no OPENCLAW_*/MCP_* settings leak in from the caller's shell."""
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "RUST_LOG", "RUST_BACKTRACE") if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", data_dir)
    # Loopback only: never route the bridge's gateway requests through a proxy.
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    env["XDG_STATE_HOME"] = data_dir
    env["OPENCLAW_MCP_DATA_DIR"] = data_dir
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------------------------
# checks


async def check_tools(run: Run, client: Client) -> None:
    run.begin("tools/list: 1.7.0's seven tools in order, then the three additions, each with a description and an object inputSchema")
    listed = await client.list_tools()
    run.outputs.append(json.dumps([t.model_dump(mode="json") for t in listed.tools]))
    run.expect_eq([t.name for t in listed.tools], TOOL_NAMES, "tool names")
    for tool in listed.tools:
        run.expect(bool(tool.description and tool.description.strip()), f"{tool.name}: empty description")
        schema = tool.input_schema
        run.expect(isinstance(schema, dict) and schema.get("type") == "object", f"{tool.name}: inputSchema {short(schema)}")
        run.expect(isinstance(schema.get("properties", {}), dict), f"{tool.name}: inputSchema.properties {short(schema)}")
    by_name = {t.name: t.input_schema for t in listed.tools}
    for name, required in [
        ("openclaw_chat", ["message"]),
        ("openclaw_chat_async", ["message"]),
        ("openclaw_task_status", ["task_id"]),
        ("openclaw_task_cancel", ["task_id"]),
    ]:
        run.expect_eq(sorted(by_name[name].get("required", [])), required, f"{name}: inputSchema.required")
    for name, props in [
        ("openclaw_chat", {"message", "session_id", "instance", "agent", "new_session", "images"}),
        ("openclaw_status", {"instance"}),
        ("openclaw_chat_async", {"message", "session_id", "priority", "instance", "agent", "images"}),
        ("openclaw_task_status", {"task_id"}),
        ("openclaw_task_list", {"status", "session_id", "instance"}),
        ("openclaw_task_cancel", {"task_id"}),
        ("openclaw_instances", set()),
        ("openclaw_agents", {"instance"}),
        ("openclaw_sessions", {"instance", "limit"}),
        ("openclaw_session_history", {"session_key", "session_id", "agent", "instance", "limit"}),
    ]:
        run.expect_eq(set(by_name[name].get("properties", {})), props, f"{name}: inputSchema properties")
    run.ok()


async def check_additions(run: Run, client: Client) -> None:
    run.begin("openclaw_agents lists the mock gateway's agents")
    value = await call_json(run, client, "openclaw_agents", {})
    run.expect_eq([a["id"] for a in value["agents"]], ["main"], "agents")
    run.ok()
    run.begin("openclaw_chat new_session returns a session key that openclaw_sessions lists")
    result = await client.call_tool("openclaw_chat", {"message": "remember me", "new_session": True})
    run.expect(not result.is_error, f"chat failed: {short(result)}")
    key = (result.structured_content or {}).get("session_key")
    run.expect(isinstance(key, str) and key.startswith("mcp-"), f"session_key {key!r}")
    value = await call_json(run, client, "openclaw_sessions", {})
    keys = [row.get("key") for row in value["sessions"]]
    run.expect(f"agent:main:{key}" in keys, f"{key} not in {keys}")
    run.ok()


async def check_chat(run: Run, client: Client) -> None:
    run.begin('openclaw_chat trims the message: "  hello  " -> "echo: hello"')
    text, _ = await call_ok(run, client, "openclaw_chat", {"message": "  hello  "})
    run.expect_eq(text, "echo: hello", "chat text")
    run.ok()

    run.begin("openclaw_chat with session_id")
    text, _ = await call_ok(run, client, "openclaw_chat", {"message": "hello session", "session_id": "e2e-session-1"})
    run.expect_eq(text, "echo: hello session", "chat text")
    run.ok()

    run.begin("openclaw_chat with instance a (explicit, token sent)")
    text, _ = await call_ok(run, client, "openclaw_chat", {"message": "hello a", "instance": "a"})
    run.expect_eq(text, "echo: hello a", "chat text")
    run.ok()

    run.begin("openclaw_chat with instance b (no token)")
    text, _ = await call_ok(run, client, "openclaw_chat", {"message": "hello b", "instance": "b"})
    run.expect_eq(text, "echo: hello b", "chat text")
    run.ok()

    run.begin("openclaw_chat with unknown instance -> isError")
    await call_error(run, client, "openclaw_chat", {"message": "hi", "instance": "nope"}, 'Error: Unknown instance "nope". Available: a, b')
    run.ok()

    run.begin("openclaw_chat with an empty / blank message -> isError")
    await call_error(run, client, "openclaw_chat", {"message": ""}, "Error: message must not be empty")
    await call_error(run, client, "openclaw_chat", {"message": "   "}, "Error: message must not be empty")
    run.ok()

    run.begin(f"openclaw_chat at the length limit ({MAX_MESSAGE_CHARS} chars) works, one more -> isError")
    text, _ = await call_ok(run, client, "openclaw_chat", {"message": "x" * MAX_MESSAGE_CHARS})
    run.expect(text == "echo: " + "x" * MAX_MESSAGE_CHARS, f"chat text at the limit: {short(text)}")
    await call_error(
        run,
        client,
        "openclaw_chat",
        {"message": "x" * (MAX_MESSAGE_CHARS + 1)},
        f"Error: message exceeds maximum length of {MAX_MESSAGE_CHARS} characters",
    )
    run.ok()


async def check_large_answer(run: Run, client: Client) -> None:
    run.begin(f"openclaw_chat: a {LARGE_ANSWER_BYTES // 1000} kB answer arrives whole, once (the text; structuredContent has the metadata)")
    text, structured = await call_ok(run, client, "openclaw_chat", {"message": f"[[huge:{LARGE_ANSWER_BYTES}]]"})
    run.expect(text == "x" * LARGE_ANSWER_BYTES, f"answer of {len(text)} chars: {short(text, 80)}")
    run.expect(isinstance(structured, dict), f"structuredContent: {short(structured)}")
    run.expect("response" not in structured, "the answer is in structuredContent too")
    size = len(json.dumps(structured))
    run.expect(size < 4096, f"structuredContent of {size} bytes: {short(structured)}")
    run.expect_eq(structured.get("instance"), "a", "structuredContent.instance")
    run.ok()


async def check_status(run: Run, client: Client, names: list[str], default: str) -> None:
    for args, name in [({}, default)] + [({"instance": n}, n) for n in names]:
        run.begin(f"openclaw_status {json.dumps(args)} -> ok, instance {name}")
        text, structured = await call_ok(run, client, "openclaw_status", args)
        run.expect(structured is not None, "structuredContent missing")
        value = json.loads(text)
        run.expect_eq(structured, value, "structuredContent vs text JSON")
        run.expect(text.startswith("{\n  "), f"text is not pretty-printed JSON: {short(text)}")
        run.expect_eq(value.get("status"), "ok", "status")
        run.expect_eq(value.get("instance"), name, "instance")
        run.expect_eq(value.get("http_status"), 400, "http_status (the probe's empty chat gets 400)")
        message = value.get("message")
        run.expect(
            isinstance(message, str) and message.startswith("Gateway responding (HTTP 400): "),
            f"message: {short(message)}",
        )
        run.ok()


async def check_instances(run: Run, client: Client, expected: list[tuple[str, str]]) -> None:
    run.begin(f"openclaw_instances lists {', '.join(n for n, _ in expected)}; the first is the default")
    value = await call_json(run, client, "openclaw_instances", {})
    run.expect_eq(value.get("total"), len(expected), "total")
    instances = value.get("instances")
    run.expect(isinstance(instances, list), f"instances: {short(instances)}")
    run.expect_eq([i.get("name") for i in instances], [n for n, _ in expected], "instance names")
    for i, (inst, (name, url)) in enumerate(zip(instances, expected)):
        run.expect_eq(inst.get("url"), url, f"{name}.url")
        run.expect_eq(inst.get("isDefault"), i == 0, f"{name}.isDefault")
        run.expect(isinstance(inst.get("health"), dict), f"{name}.health: {short(inst.get('health'))}")
        run.expect_eq(inst["health"].get("status"), "ok", f"{name}.health.status")
        run.expect("token" not in inst, f"{name}: has a token field: {short(inst)}")
    run.ok()


async def check_async(run: Run, client: Client, b_delay_s: float, poll_timeout_s: float) -> bool:
    """The async task tools. Returns False (after printing SKIP) when this build lacks them."""
    run.begin("openclaw_chat_async queues a task on the default instance")
    args = {"message": "  async hello  ", "session_id": "e2e-async", "priority": 5}
    is_error, text, _ = await call(run, client, "openclaw_chat_async", args)
    if is_error and text == NOT_AVAILABLE.format(tool="openclaw_chat_async"):
        # This build has no async tools yet: the other three must say so too, and nothing else.
        for tool in ASYNC_TOOLS[1:]:
            await call_error(run, client, tool, {"task_id": "task_nope"} if tool != "openclaw_task_list" else {}, NOT_AVAILABLE.format(tool=tool))
        print("SKIP async tools: not implemented in this build", flush=True)
        run.skipped += 1
        return False
    run.expect(not is_error, f"unexpected isError result: {short(text)}")
    queued = json.loads(text)
    task_a = queued.get("task_id")
    run.expect(isinstance(task_a, str) and TASK_ID_RE.match(task_a) is not None, f"task_id is not task_<uuid4>: {task_a!r}")
    run.expect_eq(queued, {"task_id": task_a, "status": "pending", "instance": "a", "message": TASK_QUEUED}, "queued answer")
    run.ok()

    run.begin("openclaw_chat_async validates like openclaw_chat")
    await call_error(run, client, "openclaw_chat_async", {"message": "hi", "instance": "nope"}, 'Error: Unknown instance "nope". Available: a, b')
    await call_error(run, client, "openclaw_chat_async", {"message": "  "}, "Error: message must not be empty")
    run.ok()

    run.begin(f"openclaw_task_status polls {task_a[:13]}... to completed within {poll_timeout_s:g} s")
    status = await poll_until_terminal(run, client, task_a, poll_timeout_s)
    run.expect_eq(status.get("status"), "completed", f"final status (error: {status.get('error')!r})")
    run.expect_eq(status.get("task_id"), task_a, "task_id")
    run.expect_eq(status.get("type"), "chat", "type")
    run.expect_eq(status.get("instance"), "a", "instance")
    run.expect_eq(status.get("result"), "echo: async hello", "result")
    run.expect(isinstance(status.get("created_at"), str) and status["created_at"], "created_at missing")
    run.expect("error" not in status or status["error"] is None, f"completed task has an error: {short(status)}")
    run.ok()

    run.begin("openclaw_chat_async on instance b completes")
    queued = await call_json(run, client, "openclaw_chat_async", {"message": "async b", "instance": "b"})
    task_b = queued.get("task_id")
    run.expect(isinstance(task_b, str) and TASK_ID_RE.match(task_b) is not None, f"task_id: {task_b!r}")
    run.expect_eq(queued.get("instance"), "b", "instance")
    status = await poll_until_terminal(run, client, task_b, poll_timeout_s + b_delay_s)
    run.expect_eq(status.get("status"), "completed", f"final status (error: {status.get('error')!r})")
    run.expect_eq(status.get("result"), "echo: async b", "result")
    run.ok()

    run.begin("openclaw_task_cancel of a task in flight (instance b is slow) -> cancelled")
    queued = await call_json(run, client, "openclaw_chat_async", {"message": "cancel me", "instance": "b", "session_id": "e2e-cancel"})
    task_c = queued.get("task_id")
    run.expect(isinstance(task_c, str) and TASK_ID_RE.match(task_c) is not None, f"task_id: {task_c!r}")
    cancelled = await call_json(run, client, "openclaw_task_cancel", {"task_id": task_c})
    run.expect_eq(cancelled.get("task_id"), task_c, "task_id")
    run.expect_eq(cancelled.get("status"), "cancelled", "status")
    run.expect_eq(cancelled.get("message"), "Task cancelled successfully", "message")
    status = await call_json(run, client, "openclaw_task_status", {"task_id": task_c})
    run.expect_eq(status.get("status"), "cancelled", "task_status right after the cancel")
    # Once the gateway would have answered, the task must still be cancelled, without a result.
    await asyncio.sleep(b_delay_s + 0.5)
    status = await call_json(run, client, "openclaw_task_status", {"task_id": task_c})
    run.expect_eq(status.get("status"), "cancelled", "task_status after the gateway's delay")
    run.expect("result" not in status or status["result"] is None, f"cancelled task has a result: {short(status)}")
    run.ok()

    run.begin("openclaw_task_list: stats and tasks")
    listing = await call_json(run, client, "openclaw_task_list", {})
    stats = listing.get("stats")
    run.expect_eq(stats, {"total": 3, "byStatus": {"pending": 0, "running": 0, "completed": 2, "failed": 0, "cancelled": 1}}, "stats")
    tasks = listing.get("tasks")
    run.expect(isinstance(tasks, list), f"tasks: {short(tasks)}")
    by_id = {t.get("task_id"): t for t in tasks}
    run.expect_eq(set(by_id), {task_a, task_b, task_c}, "task ids")
    for tid, inst, st, prio, has_result in [
        (task_a, "a", "completed", 5, True),
        (task_b, "b", "completed", 0, True),
        (task_c, "b", "cancelled", 0, False),
    ]:
        t = by_id[tid]
        run.expect_eq(set(t), {"task_id", "type", "status", "instance", "priority", "created_at", "has_result"}, f"{tid} keys")
        run.expect_eq(
            (t["type"], t["status"], t["instance"], t["priority"], t["has_result"]),
            ("chat", st, inst, prio, has_result),
            f"{tid} (type, status, instance, priority, has_result)",
        )
        run.expect(isinstance(t["created_at"], str) and t["created_at"], f"{tid}: created_at")
    run.ok()

    run.begin("openclaw_task_list filters by status, instance and session_id")
    for filt, expected in [
        ({"status": "completed"}, {task_a, task_b}),
        ({"status": "cancelled"}, {task_c}),
        ({"status": "pending"}, set()),
        ({"instance": "b"}, {task_b, task_c}),
        ({"instance": "a"}, {task_a}),
        ({"session_id": "e2e-async"}, {task_a}),
        ({"session_id": "e2e-cancel", "instance": "b"}, {task_c}),
    ]:
        listing = await call_json(run, client, "openclaw_task_list", filt)
        run.expect_eq({t.get("task_id") for t in listing.get("tasks", [])}, expected, f"task_list {json.dumps(filt)}")
        run.expect_eq(listing.get("stats", {}).get("total"), 3, f"task_list {json.dumps(filt)}: stats.total")
    run.ok()

    run.begin("openclaw_task_cancel of a finished task -> isError")
    for tid in (task_a, task_c):
        is_error, text, _ = await call(run, client, "openclaw_task_cancel", {"task_id": tid})
        run.expect(is_error, f"cancel {tid}: expected isError, got {short(text)}")
        run.expect(text.startswith("Error: Cannot cancel task with status"), f"cancel {tid}: {short(text)}")
    run.ok()

    run.begin("unknown task id -> Error: Task not found")
    await call_error(run, client, "openclaw_task_status", {"task_id": "task_nope"}, "Error: Task not found: task_nope")
    await call_error(run, client, "openclaw_task_cancel", {"task_id": "task_nope"}, "Error: Task not found: task_nope")
    run.ok()
    return True


async def poll_until_terminal(run: Run, client: Client, task_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    seen: list[str] = []
    while True:
        status = await call_json(run, client, "openclaw_task_status", {"task_id": task_id})
        state = status.get("status")
        run.expect(state in STATUSES, f"task_status: unknown status {state!r}")
        if not seen or seen[-1] != state:
            seen.append(state)
        if state in TERMINAL:
            return status
        if time.monotonic() >= deadline:
            run.fail(f"{task_id} not finished after {timeout_s:g} s (states seen: {' -> '.join(seen)})")
        await asyncio.sleep(0.1)


def check_token_absent(run: Run, token: str) -> None:
    run.begin("the gateway token appears in no answer and no bridge log line")
    for out in run.outputs:
        run.expect(token not in out, f"token found in an answer: {short(out)}")
    with open(run.errlog_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    run.expect(token not in log, "token found in the bridge's stderr")
    run.ok()


# ---------------------------------------------------------------------------------------------------
# sessions


class HttpBridge:
    """The bridge serving HTTP on a free loopback port; its stderr goes to the run's log."""

    def __init__(self, run: Run, args: argparse.Namespace, data_dir: str, extra_env: dict[str, str], flag: str) -> None:
        self.errlog = open(run.errlog_path, "a", encoding="utf-8")  # closed at process exit
        self.proc = subprocess.Popen(
            [args.bridge, "--transport", flag, "--host", "127.0.0.1", "--port", "0"],
            env=bridge_env(args, data_dir, extra_env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.port: int | None = None
        self.listening = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        if not self.listening.wait(30):
            self.stop()
            raise CheckFailed("the HTTP bridge did not log its listening address within 30 s")
        if self.port is None:
            raise CheckFailed(f"the HTTP bridge exited at start-up (status {self.proc.poll()})")

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.errlog.write(line)
            self.errlog.flush()
            match = LISTENING_RE.search(line)
            if match and self.port is None:
                self.port = int(match.group(1))
                self.listening.set()
        self.listening.set()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> int | None:
        """SIGTERM, then the exit status (bounded wait; killed if it does not stop)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            return None


def connect(run: Run, args: argparse.Namespace, transport: str, bridge: HttpBridge | None, data_dir: str, extra_env: dict[str, str]) -> Client:
    """A client for `transport` (an HTTP bridge must already run for the HTTP ones)."""
    timeout = args.call_timeout
    if transport == "stdio":
        params = StdioServerParameters(command=args.bridge, args=[], env=bridge_env(args, data_dir, extra_env))
        errlog = open(run.errlog_path, "a", encoding="utf-8")  # closed at process exit
        # stdio_client is the transport Client builds from StdioServerParameters; built here to keep stderr.
        return Client(stdio_client(params, errlog=errlog), read_timeout_seconds=timeout)
    assert bridge is not None
    if transport == "http":
        return Client(bridge.url("/mcp"), read_timeout_seconds=timeout)
    if transport == "http-legacy":
        return Client(bridge.url("/mcp"), mode="legacy", read_timeout_seconds=timeout)
    return Client(sse_client(bridge.url("/sse")), mode="legacy", read_timeout_seconds=timeout)


async def session(run: Run, args: argparse.Namespace, data_dir: str, extra_env: dict[str, str]) -> Client:
    return connect(run, args, "stdio", None, data_dir, extra_env)


async def transport_checks(run: Run, args: argparse.Namespace, tmp: str, transport: str, multi: str) -> None:
    """The seven tools over one transport, against instances a and b."""
    extra_env = {"OPENCLAW_INSTANCES": multi}
    data_dir = os.path.join(tmp, f"data-{transport}")
    bridge = None
    run.begin(f"connect to the bridge over {transport} (OPENCLAW_INSTANCES a, b)")
    if transport != "stdio":
        flag = "sse" if transport == "sse" else "http"
        bridge = await asyncio.to_thread(HttpBridge, run, args, data_dir, extra_env, flag)
    try:
        async with connect(run, args, transport, bridge, data_dir, extra_env) as client:
            run.expect_eq(client.server_info.name if client.server_info else None, "openclaw-mcp", "serverInfo.name")
            version = str(client.protocol_version)
            if transport == "http":
                run.expect_eq(version, MODERN, "protocol version (the default mode prefers the newest era)")
            elif transport != "stdio":
                run.expect(version < MODERN, f"protocol version {version!r}: expected an initialize-era version")
            run.ok(f"connect to the bridge over {transport} (protocol {version})")
            await check_tools(run, client)
            await check_chat(run, client)
            await check_large_answer(run, client)
            await check_additions(run, client)
            await check_status(run, client, ["a", "b"], "a")
            await check_instances(run, client, [("a", args.url_a), ("b", args.url_b)])
            await check_async(run, client, args.b_delay_ms / 1000, args.poll_timeout)
    finally:
        if bridge is not None:
            status = await asyncio.to_thread(bridge.stop)
            run.begin(f"the {transport} bridge exits 0 on SIGTERM")
            run.expect_eq(status, 0, "exit status")
            run.ok()


# ---------------------------------------------------------------------------------------------------
# OAuth


OAUTH_CLIENT_ID = "e2e-python-oauth"
SCOPE = "mcp:tools"


def free_loopback_port() -> int:
    """A port nothing listens on (the callback is never served: the redirect is not followed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Which resource_metadata URLs the SDK read from 401 challenges. For an issuer without a path, the
# bridge's URL is also the first well-known location the SDK would try without one, so the
# requests alone cannot show that the header was used; this records the SDK's own parse of it.
RESOURCE_METADATA_SEEN: list[str | None] = []
_sdk_extract_resource_metadata = sdk_oauth2.extract_resource_metadata_from_www_auth


def _recording_extract_resource_metadata(response: httpx2.Response) -> str | None:
    url = _sdk_extract_resource_metadata(response)
    RESOURCE_METADATA_SEEN.append(url)
    return url


sdk_oauth2.extract_resource_metadata_from_www_auth = _recording_extract_resource_metadata


class MemoryTokenStorage:
    """The provider's TokenStorage: the pre-registered client, and every token set it is given."""

    def __init__(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.client_info_writes = 0  # > 0 would mean the SDK registered a client of its own
        self.tokens: OAuthToken | None = None
        self.history: list[OAuthToken] = []

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens
        self.history.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.client_info_writes += 1


class Exchange:
    """One HTTP request the OAuth-enabled client made, and its answer."""

    def __init__(self, response: httpx2.Response) -> None:
        request = response.request
        self.method = request.method
        self.url = str(request.url)
        self.path = request.url.path
        self.status = response.status_code
        self.authorization = request.headers.get("authorization")
        self.www_authenticate = response.headers.get("www-authenticate")
        try:
            body = request.content
        except Exception:  # noqa: BLE001 - a streamed body; only the token requests' forms matter
            body = b""
        self.form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()} if self.method == "POST" and self.path.endswith("/token") else {}

    def __repr__(self) -> str:  # for failure messages; tokens are redacted by main()
        return f"{self.method} {self.path} -> {self.status}"


def jwt_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT (not verified: the bridge does that)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise CheckFailed(f"the access token is not a JWT ({len(parts)} dot-separated parts)")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


async def unauthenticated_checks(run: Run, bridge: HttpBridge, metadata_url: str) -> None:
    run.begin("without a token: POST /mcp and GET /sse get 401 with WWW-Authenticate Bearer resource_metadata (a bogus token too)")
    discover = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}},
    }
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": MODERN,
        "Mcp-Method": "server/discover",
    }
    async with httpx2.AsyncClient(trust_env=False, timeout=10, follow_redirects=False) as http:
        for method, path, kwargs in [
            ("POST", "/mcp", {"json": discover, "headers": headers}),
            ("GET", "/sse", {"headers": {"Accept": "text/event-stream"}}),
        ]:
            r = await http.request(method, bridge.url(path), **kwargs)
            run.expect_eq(r.status_code, 401, f"{method} {path} status")
            challenge = r.headers.get("www-authenticate", "")
            run.expect(challenge.startswith("Bearer "), f"{method} {path}: WWW-Authenticate {challenge!r}")
            run.expect(f'resource_metadata="{metadata_url}"' in challenge, f"{method} {path}: no resource_metadata={metadata_url} in {challenge!r}")
            # No `error` is asserted here: RFC 6750 §3.1 says a challenge to a request without
            # credentials SHOULD NOT carry one (the bridge sends error="invalid_token" today).
        r = await http.post(bridge.url("/mcp"), json=discover, headers=dict(headers, Authorization="Bearer not.a.jwt"))
        run.expect_eq(r.status_code, 401, "POST /mcp with a bogus token: status")
        challenge = r.headers.get("www-authenticate", "")
        run.expect(f'resource_metadata="{metadata_url}"' in challenge, f"bogus token: no resource_metadata in {challenge!r}")
        run.expect('error="invalid_token"' in challenge, f"bogus token: no error=invalid_token in {challenge!r}")
        r = await http.get(metadata_url)
        run.expect_eq(r.status_code, 200, f"GET {metadata_url}")
        prm = r.json()
        run.expect_eq(prm.get("resource"), bridge.url("/mcp"), "protected-resource metadata: resource")
        run.expect_eq(prm.get("authorization_servers"), [bridge.url("")], "protected-resource metadata: authorization_servers")
    run.ok()


async def oauth_checks(run: Run, args: argparse.Namespace, tmp: str, multi: str) -> None:
    """The seven tools over Streamable HTTP through the SDK's OAuth client, then a refresh."""
    secret = secrets.token_hex(32)
    run.secrets.append(secret)
    redirect_uri = f"http://127.0.0.1:{free_loopback_port()}/callback"
    extra_env = {
        "OPENCLAW_INSTANCES": multi,
        "AUTH_ENABLED": "true",
        "MCP_CLIENT_ID": OAUTH_CLIENT_ID,
        "MCP_CLIENT_SECRET": secret,
        "MCP_REDIRECT_URIS": redirect_uri,
    }
    data_dir = os.path.join(tmp, "data-oauth")
    os.makedirs(data_dir, exist_ok=True)
    run.begin("start the bridge with OAuth on (AUTH_ENABLED=true, configured client, MCP_REDIRECT_URIS)")
    bridge = await asyncio.to_thread(HttpBridge, run, args, data_dir, extra_env, "http")
    try:
        issuer = bridge.url("")
        metadata_url = f"{issuer}/.well-known/oauth-protected-resource/mcp"
        run.ok(f"start the bridge with OAuth on (issuer {issuer})")
        await unauthenticated_checks(run, bridge, metadata_url)

        storage = MemoryTokenStorage(
            OAuthClientInformationFull(
                client_id=OAUTH_CLIENT_ID,
                client_secret=secret,
                redirect_uris=[redirect_uri],
                token_endpoint_auth_method="client_secret_basic",
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
            )
        )
        authorizations: list[dict[str, Any]] = []  # what the redirect handler saw, per authorization
        pending: list[AuthorizationCodeResult] = []

        async def redirect_handler(authorization_url: str) -> None:
            """Plays the browser: GETs the authorization URL and reads the 302 (not followed)."""
            async with httpx2.AsyncClient(trust_env=False, timeout=10, follow_redirects=False) as http:
                r = await http.get(authorization_url)
            location = r.headers.get("location", "")
            run.expect_eq(r.status_code, 302, f"GET /authorize status (body {short(r.text)})")
            run.expect(location.startswith(redirect_uri + "?"), f"Location {short(run.redact(location))} is not the redirect URI")
            got = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
            run.expect("error" not in got, f"/authorize answered an error: {got.get('error')}: {got.get('error_description')}")
            run.expect(bool(got.get("code")), "no code in the Location")
            run.secrets.append(got["code"])
            query = {k: v[0] for k, v in parse_qs(urlsplit(authorization_url).query).items()}
            authorizations.append({"url": authorization_url, "query": query, "redirect": got})
            pending.append(AuthorizationCodeResult(code=got["code"], state=got.get("state"), iss=got.get("iss")))

        async def callback_handler() -> AuthorizationCodeResult:
            run.expect(bool(pending), "the callback handler was called before a redirect")
            return pending.pop()

        provider = OAuthClientProvider(
            server_url=bridge.url("/mcp"),
            client_metadata=OAuthClientMetadata(
                client_name="openclaw-mcp e2e",
                redirect_uris=[redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="client_secret_basic",
            ),
            storage=storage,
            redirect_handler=redirect_handler,
            callback_handler=callback_handler,
        )
        exchanges: list[Exchange] = []

        async def record(response: httpx2.Response) -> None:
            exchanges.append(Exchange(response))

        http = httpx2.AsyncClient(
            auth=provider,
            trust_env=False,  # loopback only: never through a proxy
            timeout=httpx2.Timeout(30, read=args.call_timeout + 30),
            event_hooks={"response": [record]},
        )
        async with http:
            transport = streamable_http_client(bridge.url("/mcp"), http_client=http)
            run.begin("connect over Streamable HTTP through the SDK's OAuth client provider")
            async with Client(transport, read_timeout_seconds=args.call_timeout) as client:
                version = str(client.protocol_version)
                run.expect_eq(client.server_info.name if client.server_info else None, "openclaw-mcp", "serverInfo.name")
                run.expect_eq(version, MODERN, "protocol version")
                run.ok(f"connect over Streamable HTTP through the SDK's OAuth client provider (protocol {version})")
                await check_flow(run, exchanges, authorizations, storage, issuer, metadata_url, redirect_uri)

                await check_tools(run, client)
                await check_chat(run, client)
                await check_status(run, client, ["a", "b"], "a")
                await check_instances(run, client, [("a", args.url_a), ("b", args.url_b)])
                has_tasks = await check_async(run, client, args.b_delay_ms / 1000, args.poll_timeout)
                await check_refresh(run, client, provider, exchanges, storage, authorizations, has_tasks)
        run.begin("the OAuth client registered nothing (pre-registered client id and secret only)")
        run.expect_eq(storage.client_info_writes, 0, "set_client_info calls")
        run.expect(not [e for e in exchanges if e.path.endswith("/register")], "a request to /register was made")
        run.ok()
    finally:
        status = await asyncio.to_thread(bridge.stop)
        run.begin("the oauth bridge exits 0 on SIGTERM")
        run.expect_eq(status, 0, "exit status")
        run.ok()
    check_secrets_absent(run, secret, storage, [a["redirect"]["code"] for a in authorizations])


async def check_flow(
    run: Run,
    exchanges: list[Exchange],
    authorizations: list[dict[str, Any]],
    storage: MemoryTokenStorage,
    issuer: str,
    metadata_url: str,
    redirect_uri: str,
) -> None:
    """What the provider did on connect: 401, discovery from WWW-Authenticate, PKCE, code exchange."""
    run.begin("the first MCP request got 401; the client fetched resource_metadata from its WWW-Authenticate")
    seq = [(e.method, e.url, e.status) for e in exchanges]
    run.expect(len(exchanges) >= 5, f"too few requests: {exchanges!r}")
    first = exchanges[0]
    run.expect_eq((first.method, first.path, first.status, first.authorization), ("POST", "/mcp", 401, None), "first request")
    run.expect(f'resource_metadata="{metadata_url}"' in (first.www_authenticate or ""), f"401 challenge: {first.www_authenticate!r}")
    run.expect_eq(RESOURCE_METADATA_SEEN, [metadata_url], "resource_metadata the SDK read from the 401")
    run.expect_eq(seq[1], ("GET", metadata_url, 200), "second request (the resource_metadata URL)")
    run.expect_eq(seq[2], ("GET", f"{issuer}/.well-known/oauth-authorization-server", 200), "third request (AS metadata)")
    run.ok()

    run.begin("authorization with PKCE S256, resource and scope; 302 with code, state and iss")
    run.expect_eq(len(authorizations), 1, "authorizations")
    query = authorizations[0]["query"]
    redirect = authorizations[0]["redirect"]
    run.expect(authorizations[0]["url"].startswith(f"{issuer}/authorize?"), "authorization endpoint")
    run.expect_eq(
        {k: query.get(k) for k in ("response_type", "client_id", "redirect_uri", "code_challenge_method", "resource", "scope")},
        {
            "response_type": "code",
            "client_id": OAUTH_CLIENT_ID,
            "redirect_uri": redirect_uri,
            "code_challenge_method": "S256",
            "resource": f"{issuer}/mcp",
            "scope": SCOPE,
        },
        "authorization request",
    )
    run.expect(re.fullmatch(r"[A-Za-z0-9_-]{43}", query.get("code_challenge", "")) is not None, f"code_challenge {query.get('code_challenge')!r}")
    run.expect_eq(redirect.get("state"), query.get("state"), "state returned")
    run.expect_eq(redirect.get("iss"), issuer, "iss (RFC 9207)")
    run.ok()

    run.begin("code exchange at /token: client_secret_basic, code_verifier, resource; then the MCP request retried with the token")
    tokens = [e for e in exchanges if e.path == "/token"]
    run.expect_eq(len(tokens), 1, "token requests")
    t = tokens[0]
    run.expect_eq(t.status, 200, "token status")
    run.expect_eq(t.form.get("grant_type"), "authorization_code", "grant_type")
    run.expect_eq(t.form.get("code"), redirect.get("code"), "code")
    run.expect_eq(t.form.get("redirect_uri"), redirect_uri, "redirect_uri")
    run.expect_eq(t.form.get("resource"), f"{issuer}/mcp", "resource")
    run.expect(43 <= len(t.form.get("code_verifier", "")) <= 128, "code_verifier")
    run.expect("client_secret" not in t.form, "client_secret sent in the body as well as by Basic")
    run.expect((t.authorization or "").startswith("Basic "), "no Basic client authentication")
    run.expect_eq(len(storage.history), 1, "token sets stored")
    tok = storage.history[0]
    run.secrets.extend([tok.access_token, tok.refresh_token or ""])
    run.expect_eq((tok.token_type.lower(), tok.expires_in, tok.scope), ("bearer", 3600, SCOPE), "(token_type, expires_in, scope)")
    run.expect(bool(tok.refresh_token), "no refresh token")
    claims = jwt_claims(tok.access_token)
    run.expect_eq(
        {k: claims.get(k) for k in ("iss", "aud", "sub", "scope")},
        {"iss": issuer, "aud": f"{issuer}/mcp", "sub": OAUTH_CLIENT_ID, "scope": SCOPE},
        "access token claims",
    )
    run.expect_eq(claims.get("exp", 0) - claims.get("iat", 0), 3600, "access token lifetime")
    index = exchanges.index(t)
    retried = exchanges[index + 1]
    run.expect_eq((retried.method, retried.path, retried.status), ("POST", "/mcp", 200), "the request after the token")
    run.expect_eq(retried.authorization, f"Bearer {tok.access_token}", "Authorization of the retried request")
    later = [e for e in exchanges[index + 1 :] if e.path == "/mcp"]
    run.expect(all(e.authorization == f"Bearer {tok.access_token}" for e in later), "an MCP request without the token")
    run.ok()


async def check_refresh(
    run: Run,
    client: Client,
    provider: OAuthClientProvider,
    exchanges: list[Exchange],
    storage: MemoryTokenStorage,
    authorizations: list[dict[str, Any]],
    has_tasks: bool,
) -> None:
    run.begin("refresh: the stored access token made to look expired -> refresh_token grant, rotated tokens, tools work")
    old = storage.tokens
    run.expect(old is not None and old.refresh_token is not None, "no tokens before the refresh")
    run.expect(all(e.status != 401 for e in exchanges[1:]), "a 401 after the first request")
    mark = len(exchanges)
    # The provider refreshes before a request when its token has expired by its own clock
    # (expires_in at issue time); this is the clock it reads.
    provider.context.token_expiry_time = time.time() - 1
    text, _ = await call_ok(run, client, "openclaw_chat", {"message": "after refresh"})
    run.expect_eq(text, "echo: after refresh", "chat text after the refresh")
    new = storage.tokens
    run.expect(new is not None and new is not old, "no new tokens stored")
    run.secrets.extend([new.access_token, new.refresh_token or ""])
    after = exchanges[mark:]
    run.expect(len(after) >= 2, f"requests after the expiry: {after!r}")
    refresh = after[0]
    run.expect_eq((refresh.method, refresh.path, refresh.status), ("POST", "/token", 200), "first request after the expiry")
    run.expect_eq(refresh.form.get("grant_type"), "refresh_token", "grant_type")
    run.expect(refresh.form.get("refresh_token") == old.refresh_token, "the refresh did not send the stored refresh token")
    run.expect((refresh.authorization or "").startswith("Basic "), "the refresh has no Basic client authentication")
    run.expect(new.access_token != old.access_token, "the access token did not change")
    run.expect(new.refresh_token and new.refresh_token != old.refresh_token, "the refresh token was not rotated")
    run.expect_eq(jwt_claims(new.access_token).get("sub"), OAUTH_CLIENT_ID, "sub of the refreshed token")
    call_after = after[1]
    run.expect_eq((call_after.method, call_after.path, call_after.status), ("POST", "/mcp", 200), "the tool call after the refresh")
    run.expect_eq(call_after.authorization, f"Bearer {new.access_token}", "Authorization after the refresh")
    run.expect_eq(len(authorizations), 1, "authorizations (a refresh must not re-authorize)")
    run.ok()

    run.begin("after the refresh: status, instances" + (" and the same task owner (the token's subject)" if has_tasks else ""))
    value = await call_json(run, client, "openclaw_status", {"instance": "b"})
    run.expect_eq((value.get("status"), value.get("instance")), ("ok", "b"), "status (status, instance)")
    value = await call_json(run, client, "openclaw_instances", {})
    run.expect_eq(value.get("total"), 2, "instances total")
    if has_tasks:
        listing = await call_json(run, client, "openclaw_task_list", {})
        run.expect_eq(listing.get("stats", {}).get("total"), 3, "tasks listed with the refreshed token (stats.total)")
    run.expect(all(e.authorization == f"Bearer {new.access_token}" for e in exchanges[mark + 1 :] if e.path == "/mcp"), "an MCP request without the new token")
    run.ok()


def check_secrets_absent(run: Run, secret: str, storage: MemoryTokenStorage, codes: list[str]) -> None:
    run.begin("the client secret, the code and the tokens appear in no answer and no bridge log line")
    basic = base64.b64encode(f"{OAUTH_CLIENT_ID}:{secret}".encode()).decode()
    values = [("client secret", secret), ("Basic credentials", basic)]
    for i, tok in enumerate(storage.history):
        values.append((f"access token {i + 1}", tok.access_token))
        values.append((f"refresh token {i + 1}", tok.refresh_token or ""))
        # A log line could carry a token cut at a line width: look for its signature part too.
        values.append((f"access token {i + 1} signature", tok.access_token.rsplit(".", 1)[-1]))
    values += [(f"authorization code {i + 1}", code) for i, code in enumerate(codes)]
    with open(run.errlog_path, encoding="utf-8", errors="replace") as f:
        log = f.read()
    run.expect("OAuth enabled" in log, "the bridge did not log 'OAuth enabled' (wrong log file?)")
    for what, value in values:
        run.expect(bool(value), f"{what} is empty")
        run.expect(value not in log, f"{what} found in the bridge's stderr")
        for out in run.outputs:
            run.expect(value not in out, f"{what} found in an answer")
    run.ok()


async def main_checks(run: Run, args: argparse.Namespace, tmp: str) -> None:
    multi = json.dumps(
        [
            {"name": "a", "url": args.url_a, "token": args.token_a},
            {"name": "b", "url": args.url_b},
        ]
    )
    for transport in args.transports:
        if transport == "oauth":
            await oauth_checks(run, args, tmp, multi)
        else:
            await transport_checks(run, args, tmp, transport, multi)

    run.begin("single instance from OPENCLAW_URL + OPENCLAW_GATEWAY_TOKEN")
    single = {"OPENCLAW_URL": args.url_a, "OPENCLAW_GATEWAY_TOKEN": args.token_a}
    async with await session(run, args, ":memory:", single) as client:
        text, _ = await call_ok(run, client, "openclaw_chat", {"message": "hello single"})
        run.expect_eq(text, "echo: hello single", "chat text")
        value = await call_json(run, client, "openclaw_status", {})
        run.expect_eq((value.get("status"), value.get("instance")), ("ok", "default"), "status (status, instance)")
        value = await call_json(run, client, "openclaw_instances", {})
        run.expect_eq(value.get("total"), 1, "instances total")
        run.expect_eq(
            [(i.get("name"), i.get("url"), i.get("isDefault")) for i in value.get("instances", [])],
            [("default", args.url_a, True)],
            "instances",
        )
        await call_error(run, client, "openclaw_chat", {"message": "hi", "instance": "a"}, 'Error: Unknown instance "a". Available: default')
        run.ok()

    check_token_absent(run, args.token_a)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bridge", required=True, help="path of the openclaw-mcp binary")
    p.add_argument("--url-a", required=True, help="gateway of instance a (wants --token-a)")
    p.add_argument("--token-a", required=True, help="the token gateway a wants")
    p.add_argument("--url-b", required=True, help="gateway of instance b (no token)")
    p.add_argument("--b-delay-ms", type=int, default=0, help="the --delay-ms gateway b was started with")
    p.add_argument("--poll-timeout", type=float, default=10.0, help="seconds to wait for an async task")
    p.add_argument("--call-timeout", type=float, default=30.0, help="seconds to wait for one MCP answer")
    p.add_argument("--total-timeout", type=float, default=300.0, help="seconds for the whole run")
    p.add_argument(
        "--transports",
        default=",".join(TRANSPORTS),
        help=f"comma-separated transports to check, of {', '.join(TRANSPORTS)} (default: all)",
    )
    args = p.parse_args()
    args.transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for transport in args.transports:
        if transport not in TRANSPORTS:
            p.error(f"unknown transport {transport!r}; choose from {', '.join(TRANSPORTS)}")
    for url in (args.url_a, args.url_b):
        if not re.match(r"^http://(127\.\d+\.\d+\.\d+|localhost|\[::1\]):\d+$", url):
            p.error(f"not a loopback URL: {url}")
    if len(args.token_a) < 8:
        p.error("--token-a should be at least 8 characters (it is searched for in every output)")
    return args


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="openclaw-mcp-e2e-") as tmp:
        run = Run([args.token_a], os.path.join(tmp, "bridge-stderr.log"))
        open(run.errlog_path, "w").close()
        started = time.monotonic()
        try:
            asyncio.run(asyncio.wait_for(main_checks(run, args, tmp), args.total_timeout))
        except BaseException as exc:  # noqa: BLE001 - report any failure as the current check's
            run.report_failure(exc)  # never prints the gateway token or an OAuth secret
            return 1
        print(f"e2e checks took {time.monotonic() - started:.1f} s", flush=True)
        skipped = ", 1 skipped" if run.skipped else ""
        print(f"e2e: {run.passed} passed, 0 failed{skipped}", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
