#!/usr/bin/env python3
"""Drives a packaged openclaw-mcp over stdio with the official MCP Python SDK (`mcp` 2.x):
initialize, tools/list (the ten tools), and one openclaw_chat against a running mock gateway,
whose echo must come back. Used by scripts/package-test.sh for each way the bridge is shipped
(the musl binary under qemu, the unpacked .mcpb with its manifest's environment, `npx` from the
npm tarballs) and by the release workflow on macOS and Windows.

    python3 scripts/package_smoke.py [--env-json FILE] [--env K=V ...] [--clean-env]
        [--message TEXT] [--timeout S] -- COMMAND [ARGS...]

The server's environment is this process's (or, with --clean-env, only PATH, HOME, SYSTEMROOT,
TEMP and TMP) plus --env-json (a JSON object, e.g. the `env` a bundle's manifest gives) plus
--env. The server's stderr is copied to ours. Exit status 0 when every check passed; the last
line is `package-smoke: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys

from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

TOOLS = {
    "openclaw_chat", "openclaw_status", "openclaw_instances", "openclaw_chat_async", "openclaw_task_status",
    "openclaw_task_list", "openclaw_task_cancel", "openclaw_agents", "openclaw_sessions", "openclaw_session_history",
}
KEEP = ("PATH", "HOME", "SYSTEMROOT", "SystemRoot", "TEMP", "TMP", "USERPROFILE", "LOCALAPPDATA", "APPDATA")


async def run(args: argparse.Namespace, env: dict[str, str]) -> tuple[int, int]:
    passed = failed = 0

    def check(ok: bool, what: str, detail: str = "") -> None:
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"PASS {what}", flush=True)
        else:
            failed += 1
            print(f"FAIL {what}{': ' + detail if detail else ''}", flush=True)

    command = args.command[0]
    # A path is made absolute (Windows does not search the working directory for "dist/…"); a bare
    # name is looked up on PATH, which finds npx.cmd on Windows.
    command = os.path.abspath(command) if os.sep in command or "/" in command else shutil.which(command, path=env.get("PATH")) or command
    params = StdioServerParameters(command=command, args=args.command[1:], env=env)
    async with Client(stdio_client(params, errlog=sys.stderr), read_timeout_seconds=args.timeout) as client:
        info = client.server_info
        check(info is not None and info.name == "openclaw-mcp", "initialize: serverInfo.name is openclaw-mcp",
              repr(info))
        if args.expect_version:
            check(info is not None and info.version == args.expect_version,
                  f"initialize: serverInfo.version is {args.expect_version}", repr(info and info.version))
        listed = await client.list_tools()
        names = {t.name for t in listed.tools}
        check(names == TOOLS, "tools/list: the ten tools", f"got {sorted(names)}")
        res = await client.call_tool("openclaw_chat", {"message": args.message})
        texts = [getattr(b, "text", None) for b in res.content]
        check(not res.is_error and texts == [f"echo: {args.message}"],
              f"openclaw_chat answers 'echo: {args.message}' through the gateway", repr(texts))
    return passed, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-json", help="a JSON object of environment variables for the server")
    parser.add_argument("--env", action="append", default=[], help="K=V for the server's environment")
    parser.add_argument("--clean-env", action="store_true", help="start from an almost empty environment")
    parser.add_argument("--message", default="shipped")
    parser.add_argument("--expect-version", help="serverInfo.version the server must report")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds for each request")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k in KEEP} if args.clean_env else dict(os.environ)
    if args.env_json:
        with open(args.env_json, encoding="utf-8") as f:
            extra = json.load(f)
        env.update({str(k): str(v) for k, v in extra.items()})
    for item in args.env:
        key, _, value = item.partition("=")
        env[key] = value
    try:
        passed, failed = asyncio.run(run(args, env))
    except Exception as e:  # noqa: BLE001 - a failed start or a protocol error is one failed check
        print(f"FAIL the session with {' '.join(args.command)}: {type(e).__name__}: {e}", flush=True)
        passed, failed = 0, 1
    print(f"package-smoke: {passed} passed, {failed} failed", flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
