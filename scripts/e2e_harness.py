"""What scripts/e2e_client.py and scripts/e2e_openclaw.py share: the check bookkeeping (`Run`),
the tool-call helpers that assert the shape of every answer, and the report of a failure.
Standard library only, so that e2e_openclaw.py's helper commands run without the venv."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any


class CheckFailed(Exception):
    pass


class Run:
    """Bookkeeping: the current check's name and time, everything the bridge said, the bridge's
    stderr, and the secrets that must appear in none of it (replaced by <SECRET> in reports)."""

    def __init__(self, secrets: list[str], errlog_path: str) -> None:
        self.secrets = [s for s in secrets if s]
        self.errlog_path = errlog_path
        self.check_name = "start-up"
        self.check_started = time.monotonic()
        self.outputs: list[str] = []  # every text/structured answer, to look for secrets in
        self.passed = 0
        self.skipped = 0  # groups of checks skipped

    def redact(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "<SECRET>")
        return text

    def begin(self, name: str) -> None:
        self.check_name = name
        self.check_started = time.monotonic()

    def ok(self, name: str | None = None) -> None:
        ms = (time.monotonic() - self.check_started) * 1000
        print(f"ok  {name or self.check_name}  ({ms:.0f} ms)", flush=True)
        self.passed += 1

    def report_failure(self, exc: BaseException) -> None:
        """Prints `FAIL <check>: <why>` and the end of the bridge's stderr, secrets redacted."""
        print(f"FAIL {self.check_name}: {self.redact(describe(exc))}", file=sys.stderr, flush=True)
        with open(self.errlog_path, encoding="utf-8", errors="replace") as f:
            tail = f.read().splitlines()[-30:]
        if tail:
            print("---- last lines of the bridge's stderr ----", file=sys.stderr)
            for line in tail:
                print(self.redact(line), file=sys.stderr)

    def fail(self, why: str) -> None:
        raise CheckFailed(why)

    def expect(self, cond: bool, why: str) -> None:
        if not cond:
            raise CheckFailed(why)

    def expect_eq(self, actual: Any, expected: Any, what: str) -> None:
        if actual != expected:
            raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


def short(value: Any, limit: int = 300) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


async def call(run: Run, client: Any, tool: str, args: dict[str, Any]) -> tuple[bool, str, Any]:
    """Calls `tool`; returns (is_error, the single text block, structured content)."""
    res = await client.call_tool(tool, args)
    texts = [getattr(block, "text", None) for block in res.content]
    run.outputs.append(json.dumps(texts))
    if res.structured_content is not None:
        run.outputs.append(json.dumps(res.structured_content))
    run.expect(
        len(texts) == 1 and isinstance(texts[0], str),
        f"{tool} {short(args, 120)}: expected exactly one text content block, got {short(res.content)}",
    )
    return bool(res.is_error), texts[0], res.structured_content


async def call_ok(run: Run, client: Any, tool: str, args: dict[str, Any]) -> tuple[str, Any]:
    is_error, text, structured = await call(run, client, tool, args)
    run.expect(not is_error, f"{tool} {short(args, 120)}: unexpected isError result: {short(text)}")
    return text, structured


async def call_json(run: Run, client: Any, tool: str, args: dict[str, Any]) -> dict[str, Any]:
    """A successful call whose text is a JSON object, equal to its structuredContent if any."""
    text, structured = await call_ok(run, client, tool, args)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise CheckFailed(f"{tool}: text is not JSON ({e}): {short(text)}") from None
    run.expect(isinstance(value, dict), f"{tool}: expected a JSON object, got {short(text)}")
    if structured is not None:
        run.expect_eq(structured, value, f"{tool}: structuredContent vs text JSON")
    return value


async def call_error(run: Run, client: Any, tool: str, args: dict[str, Any], expected: str) -> None:
    is_error, text, _ = await call(run, client, tool, args)
    run.expect(is_error, f"{tool} {short(args, 120)}: expected isError true, got a success: {short(text)}")
    run.expect_eq(text, expected, f"{tool} {short(args, 120)}: error text")


def describe(exc: BaseException) -> str:
    """The CheckFailed inside `exc` (task groups wrap it), else the exception itself."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if isinstance(inner, (CheckFailed, BaseExceptionGroup)):
                return describe(inner)
        return "; ".join(describe(e) for e in exc.exceptions)
    if isinstance(exc, CheckFailed):
        return str(exc)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return f"timed out ({type(exc).__name__})"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return f"{type(exc).__name__}: {exc}"


def run_check_suite(label: str, checks, args, tokens: list[str]) -> int:
    """Runs `checks(run, args)` under `args.total_timeout` with the bridge's stderr logged in
    `args.data_dir`; prints "<label>: N passed in S s" and returns 0, or reports the failing
    check and returns 1."""
    os.makedirs(args.data_dir, exist_ok=True)
    errlog = os.path.join(args.data_dir, "bridge-stderr.log")
    open(errlog, "w").close()
    run = Run(tokens, errlog)
    started = time.monotonic()
    try:
        asyncio.run(asyncio.wait_for(checks(run, args), args.total_timeout))
    except BaseException as exc:  # noqa: BLE001 - report any failure as the current check's
        run.report_failure(exc)
        return 1
    print(f"{label}: {run.passed} passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0
