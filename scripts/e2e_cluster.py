"""The checks of scripts/e2e-cluster.sh: three bridges on one PostgreSQL task store behind nginx,
driven with the official MCP Python SDK. First, initialize-era sessions (the SDK's
`mode="legacy"` over Streamable HTTP, and the legacy HTTP+SSE transport) opened through nginx,
each making 10 tool calls, all of which nginx sends to the replica whose name starts the session
id (round robin would send most elsewhere: another replica answers 404 for the session); then
the tasks, in the sessionless 2026-07-28 era (any replica may answer any request); after the
third replica is SIGKILLed, its sessions get the bridges' 404 for an unknown session through
nginx and new sessions work on the survivors. Prints `ok <check>` per check; the first failure
prints `FAIL <check>: <why>` and exits 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import signal
import sys
import time
import urllib.request
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Callable

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from e2e_harness import CheckFailed, Run, call_json, call_ok, describe, short


@asynccontextmanager
async def connect(url: str, bearer: str) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {bearer}"},
        trust_env=False,  # loopback only: never through a proxy
        timeout=httpx2.Timeout(30, read=90),
    )
    async with http:
        async with Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60) as client:
            yield client


def gateway_stats(gateway: str) -> dict[str, Any]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{gateway}/stats", timeout=5) as r:
        return json.load(r)["chats"]


async def listing(run: Run, client: Client) -> dict[str, Any]:
    return await call_json(run, client, "openclaw_task_list", {})


# ---------------------------------------------------------------------------------------------------
# initialize-era sessions through nginx: pinned to the replica named in their id

MODERN = "2026-07-28"
CALLS = 10  # per session: round robin would send most of them to a replica without the session


def replica_of(session_id: str | None, names: list[str]) -> str | None:
    name = (session_id or "").split(".", 1)[0]
    return name if session_id and "." in session_id and name in names else None


def no_proxy_client(headers: dict[str, str] | None = None, timeout: httpx2.Timeout | None = None, auth: httpx2.Auth | None = None) -> httpx2.AsyncClient:
    """The SSE transport's HTTP client: as the SDK's own, but never through a proxy (loopback only)."""
    return httpx2.AsyncClient(headers=headers, timeout=timeout or httpx2.Timeout(30, read=300), auth=auth, trust_env=False)


def streamable_session(url: str, bearer: str, seen: dict[str, str]) -> Callable[[], Any]:
    """Opens an initialize-era Streamable HTTP session (the SDK's `mode="legacy"`); its
    Mcp-Session-Id lands in seen["id"]."""

    @asynccontextmanager
    async def open_() -> AsyncIterator[Client]:
        async def record(response: httpx2.Response) -> None:
            if response.headers.get("mcp-session-id"):
                seen["id"] = response.headers["mcp-session-id"]

        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {bearer}"},
            trust_env=False,
            timeout=httpx2.Timeout(30, read=90),
            event_hooks={"response": [record]},
        )
        async with http:
            async with Client(streamable_http_client(url, http_client=http), mode="legacy", read_timeout_seconds=60) as client:
                yield client

    return open_


def sse_session(url: str, bearer: str, seen: dict[str, str]) -> Callable[[], Any]:
    """Opens a legacy HTTP+SSE session (`GET /sse`, then `POST /messages?sessionId=`); its
    sessionId lands in seen["id"]."""
    return lambda: Client(
        sse_client(
            url,
            headers={"Authorization": f"Bearer {bearer}"},
            httpx_client_factory=no_proxy_client,
            on_session_created=lambda sid: seen.__setitem__("id", sid),
        ),
        mode="legacy",
        read_timeout_seconds=60,
    )


class Held:
    """An MCP client kept open in a task of its own until `close`: when its replica is killed, the
    failure of its transport stays in that task instead of cancelling the checks around it."""

    def __init__(self, opener: Callable[[], Any]) -> None:
        self.opener = opener
        self.release = asyncio.Event()
        self.ready: asyncio.Future[Client] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None

    async def open(self) -> Client:
        self.task = asyncio.create_task(self._run())
        return await self.ready

    async def _run(self) -> None:
        try:
            async with self.opener() as client:
                self.ready.set_result(client)
                await self.release.wait()
        except BaseException as e:  # noqa: BLE001 - reported through `ready`, or expected after a kill
            if not self.ready.done():
                self.ready.set_exception(e)

    async def close(self) -> None:
        self.release.set()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 15)
            except BaseException:  # noqa: BLE001 - a transport whose replica died may end any way
                pass


async def open_sessions(run: Run, kind: str, opener: Callable[[dict[str, str]], Callable[[], Any]], names: list[str], victim: str) -> tuple[Held, Client, str, dict[str, int]]:
    """Opens sessions of `kind` through nginx until one is on the replica `victim` (round robin
    gets there within three), makes CALLS tool calls in each, closes all but that one."""
    on: dict[str, int] = {}
    for _ in range(3 * len(names)):
        seen: dict[str, str] = {}
        held = Held(opener(seen))
        client = await held.open()
        version = str(client.protocol_version)
        run.expect(version < MODERN, f"{kind}: protocol {version!r}, expected an initialize-era version")
        replica = replica_of(seen.get("id"), names)
        run.expect(replica is not None, f"{kind}: session id {seen.get('id')!r} does not start with a replica name and a dot")
        for _ in range(CALLS):
            await call_ok(run, client, "openclaw_instances", {})
        on[replica] = on.get(replica, 0) + 1
        if replica == victim:
            return held, client, seen["id"], on
        await held.close()
    run.fail(f"{kind}: no session opened on {victim} in {3 * len(names)} tries ({on})")
    raise AssertionError("unreachable")


async def unknown_session_answers(front: str, replicas: list[str], bearer: str, names: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a live replica answers, directly, for a session it does not hold: Streamable HTTP and
    legacy. nginx must answer the same for a session of a dead replica."""
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
        mcp = await in_session(http, replicas[0], f"{names[-1]}.{secrets.token_hex(16)}", bearer)
        legacy = await legacy_post(http, replicas[0].removesuffix("/mcp"), f"{names[-1]}.{secrets.token_hex(16)}", bearer)
    for r in (mcp, legacy):
        if r.status_code != 404:
            raise CheckFailed(f"a replica answered {r.status_code} for an unknown session: {short(r.text)}")
    return mcp.json(), legacy.json()


async def in_session(http: httpx2.AsyncClient, url: str, session_id: str, bearer: str) -> httpx2.Response:
    return await http.post(
        url,
        headers={
            "Authorization": f"Bearer {bearer}",
            "Mcp-Session-Id": session_id,
            "MCP-Protocol-Version": "2025-06-18",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        content='{"jsonrpc":"2.0","id":7,"method":"tools/list"}',
    )


async def legacy_post(http: httpx2.AsyncClient, base: str, session_id: str, bearer: str) -> httpx2.Response:
    return await http.post(
        f"{base}/messages?sessionId={session_id}",
        headers={"Authorization": f"Bearer {bearer}", "Content-Type": "application/json"},
        content='{"jsonrpc":"2.0","id":7,"method":"tools/list"}',
    )


class Doomed:
    """The sessions opened on the replica that is killed later."""

    def __init__(self) -> None:
        self.held: list[Held] = []
        self.streamable: tuple[Client, str] | None = None
        self.legacy_id = ""

    async def close(self) -> None:
        for held in self.held:
            await held.close()

    @staticmethod
    def expect_death() -> None:
        """The SDK logs the broken streams of these sessions, with tracebacks, when their replica
        dies: expected here, so not printed."""
        for name in ("mcp.client.sse", "mcp.client.streamable_http"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


async def sessions_before_the_kill(run: Run, args: argparse.Namespace, replicas: list[str], names: list[str], doomed: Doomed) -> None:
    front_base = args.front.removesuffix("/mcp")
    victim = names[-1]
    run.begin(f"initialize-era Streamable HTTP sessions through nginx: {CALLS} tool calls each, all answered by the replica named in the session id")
    held, client, sid, on = await open_sessions(run, "Streamable HTTP", lambda seen: streamable_session(args.front, args.bearer, seen), names, victim)
    doomed.held.append(held)
    doomed.streamable = (client, sid)
    # The control: another replica does not know the session (what round robin would hit).
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
        for url in replicas[:-1]:
            r = await in_session(http, url, sid, args.bearer)
            run.expect_eq(r.status_code, 404, f"session {sid} of {victim} sent to {url} directly")
    run.ok(f"{run.check_name} ({sum(on.values())} sessions by replica {on}, {CALLS * sum(on.values())} calls)")

    run.begin(f"legacy SSE sessions through nginx: {CALLS} tool calls each, every POST /messages to the replica named in the sessionId")
    held, _, sid, on = await open_sessions(run, "legacy SSE", lambda seen: sse_session(f"{front_base}/sse", args.bearer, seen), names, victim)
    doomed.held.append(held)
    doomed.legacy_id = sid
    run.ok(f"{run.check_name} ({sum(on.values())} sessions by replica {on}, {CALLS * sum(on.values())} calls)")


async def sessions_after_the_kill(run: Run, args: argparse.Namespace, names: list[str], doomed: Doomed, unknown: tuple[dict[str, Any], dict[str, Any]]) -> None:
    front_base = args.front.removesuffix("/mcp")
    victim = names[-1]
    run.begin("the killed replica's sessions get 404 through nginx, as for any unknown session; new sessions work on the survivors")
    assert doomed.streamable is not None
    client, sid = doomed.streamable
    try:
        await client.call_tool("openclaw_instances", {})
        run.fail(f"a tool call in session {sid} of the killed replica succeeded")
    except CheckFailed:
        raise
    except Exception as e:  # noqa: BLE001 - the SDK's error for the 404
        run.expect("Not Found: Session not found" in str(e), f"the SDK's error in a session of the killed replica: {describe(e)}")
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
        r = await in_session(http, args.front, sid, args.bearer)
        run.expect_eq(r.status_code, 404, f"POST /mcp in session {sid} of the killed replica: status ({short(r.text)})")
        run.expect_eq(r.json(), unknown[0], "its body: the bridges' answer for an unknown session")
        r = await legacy_post(http, front_base, doomed.legacy_id, args.bearer)
        run.expect_eq(r.status_code, 404, f"POST /messages?sessionId={doomed.legacy_id} of the killed replica: status ({short(r.text)})")
        run.expect_eq(r.json(), unknown[1], "its body: the bridges' answer for an unknown session")
    fresh = []
    for kind, opener in (
        ("Streamable HTTP", lambda seen: streamable_session(args.front, args.bearer, seen)),
        ("legacy SSE", lambda seen: sse_session(f"{front_base}/sse", args.bearer, seen)),
    ):
        seen: dict[str, str] = {}
        async with opener(seen)() as new:
            for _ in range(CALLS):
                await call_ok(run, new, "openclaw_instances", {})
        replica = replica_of(seen.get("id"), names)
        run.expect(replica not in (None, victim), f"new {kind} session {seen.get('id')!r}: expected a survivor's name")
        fresh.append(f"{kind} on {replica}")
    run.ok(f"{run.check_name} ({', '.join(fresh)}, {CALLS} calls each)")
    await doomed.close()


async def main_checks(run: Run, args: argparse.Namespace) -> None:
    replicas = [f"http://127.0.0.1:{p}/mcp" for p in args.replicas.split(",")]
    names = args.names.split(",")
    nonce = secrets.token_hex(4)
    messages: dict[str, str] = {}

    # Sessions first, while nothing else runs: round robin then sends successive sessions to
    # successive replicas, and one of each kind lands on the replica killed later.
    unknown = await unknown_session_answers(args.front, replicas, args.bearer, names)
    doomed = Doomed()
    await sessions_before_the_kill(run, args, replicas, names, doomed)

    async with connect(args.front, args.bearer) as front:
        run.begin(f"queue {args.tasks} tasks through nginx (round robin over {len(replicas)} replicas)")
        gate = asyncio.Semaphore(16)

        async def queue(i: int) -> None:
            message = f"cluster task {i} {nonce}"
            async with gate:
                queued = await call_json(run, front, "openclaw_chat_async", {"message": message})
            run.expect_eq(queued.get("status"), "pending", f"task {i}: queued status")
            messages[queued["task_id"]] = message

        await asyncio.gather(*(queue(i) for i in range(args.tasks)))
        run.expect_eq(len(messages), args.tasks, "distinct task ids")
        run.ok()

        run.begin("every replica lists the same tasks")
        for url in replicas:
            async with connect(url, args.bearer) as direct:
                listed = await listing(run, direct)
            run.expect_eq(listed["stats"]["total"], args.tasks, f"{url}: stats.total")
            run.expect_eq({t["task_id"] for t in listed["tasks"]}, set(messages), f"{url}: task ids")
        run.ok()

        run.begin("cancel 10 running tasks through the first replica: the gateway sees each request dropped")
        deadline = time.monotonic() + 30
        while True:
            running = [t["task_id"] for t in (await listing(run, front))["tasks"] if t["status"] == "running"]
            if len(running) >= 24:
                break
            run.expect(time.monotonic() < deadline, f"only {len(running)} tasks running after 30 s")
            await asyncio.sleep(0.2)
        # Started a moment ago: well inside the gateway's delay.
        victims = running[-10:]  # the most recently started: furthest from their answer
        aborted_before = gateway_stats(args.gateway)["aborted"]
        cancelled_at = time.monotonic()
        async with connect(replicas[0], args.bearer) as first:
            # Which replica runs each is not known to the client: most run on the other two.
            for task_id in victims:
                answer = await call_json(run, first, "openclaw_task_cancel", {"task_id": task_id})
                run.expect_eq(answer.get("status"), "cancelled", f"cancel {task_id}")
        while gateway_stats(args.gateway)["aborted"] - aborted_before < len(victims):
            run.expect(
                time.monotonic() - cancelled_at < 3,
                f"the gateway saw {gateway_stats(args.gateway)['aborted'] - aborted_before} of {len(victims)} cancelled requests dropped within 3 s",
            )
            await asyncio.sleep(0.05)
        run.ok(f"cancel 10 running tasks through the first replica: all 10 gateway requests dropped within {time.monotonic() - cancelled_at:.2f} s")

        run.begin("SIGKILL the third replica mid-run")
        running_now = sum(1 for t in (await listing(run, front))["tasks"] if t["status"] == "running")
        doomed.expect_death()
        os.kill(args.victim, signal.SIGKILL)
        run.ok(f"SIGKILL the third replica mid-run ({running_now} tasks running across replicas)")
        await sessions_after_the_kill(run, args, names, doomed, unknown)

        run.begin("every task ends: completed, cancelled, or failed as interrupted (the dead replica's, after its lease)")
        killed_at = time.monotonic()
        deadline = killed_at + args.settle_timeout
        lost_in_flight = 0
        while True:
            try:
                listed = await listing(run, front)
            except Exception as e:  # noqa: BLE001
                # A request the dead replica had taken when it died gets nginx's 502 (a POST that
                # was sent is not retried elsewhere): what a client sees then. Only right after the
                # kill; nginx sends everything later to the survivors.
                run.expect(time.monotonic() - killed_at < 10, f"an error {time.monotonic() - killed_at:.0f} s after the kill: {describe(e)}")
                lost_in_flight += 1
                await asyncio.sleep(0.5)
                continue
            unfinished = [t for t in listed["tasks"] if t["status"] in ("pending", "running")]
            if not unfinished:
                break
            run.expect(time.monotonic() < deadline, f"{len(unfinished)} tasks unfinished {args.settle_timeout} s after the kill: {short(unfinished[:3])}")
            await asyncio.sleep(1)
        settled_s = time.monotonic() - killed_at
        by_status: dict[str, int] = {}
        for t in listed["tasks"]:
            by_status[t["status"]] = by_status.get(t["status"], 0) + 1
        run.expect_eq(by_status.get("cancelled", 0), len(victims), "cancelled tasks")
        interrupted = 0
        for t in listed["tasks"]:
            if t["task_id"] in victims:
                continue
            status = await call_json(run, front, "openclaw_task_status", {"task_id": t["task_id"]})
            if status["status"] == "completed":
                run.expect_eq(status.get("result"), f"echo: {messages[t['task_id']]}", f"{t['task_id']}: result")
            else:
                run.expect_eq(status["status"], "failed", f"{t['task_id']}: status")
                run.expect("interrupted" in (status.get("error") or ""), f"{t['task_id']}: failed without the interrupted reason: {short(status)}")
                interrupted += 1
        run.expect(interrupted >= 1, "no task was running on the killed replica: the kill proved nothing")
        run.ok(
            f"every task ends ({by_status}; {interrupted} interrupted on the killed replica; all settled {settled_s:.0f} s after the kill; "
            f"{lost_in_flight} request(s) in flight to the killed replica answered 502 by nginx)"
        )

        run.begin("no prompt reached the gateway twice")
        stats = gateway_stats(args.gateway)
        run.expect_eq(stats.get("repeated"), [], "prompts received more than once")
        run.expect(stats["started"] <= args.tasks, f"the gateway started {stats['started']} chats for {args.tasks} tasks")
        run.ok(f"no prompt reached the gateway twice ({stats['started']} chats for {args.tasks} tasks)")

        run.begin("the surviving replicas agree on every task")
        seen = []
        for url in replicas[:2]:
            async with connect(url, args.bearer) as direct:
                listed = await listing(run, direct)
                seen.append({t["task_id"]: t["status"] for t in listed["tasks"]})
        run.expect_eq(seen[0], seen[1], "task statuses on the two survivors")
        run.ok()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--front", required=True, help="nginx's /mcp URL")
    parser.add_argument("--replicas", required=True, help="the bridges' ports, comma-separated")
    parser.add_argument("--names", required=True, help="the bridges' replica names (OPENCLAW_MCP_REPLICA_ID), in the order of --replicas; the last is the victim's")
    parser.add_argument("--victim", type=int, required=True, help="pid of the replica to SIGKILL")
    parser.add_argument("--gateway", required=True, help="the mock gateway's base URL")
    parser.add_argument("--bearer", required=True)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--delay-ms", type=int, default=2000)
    parser.add_argument("--settle-timeout", type=float, default=240)
    args = parser.parse_args()
    run = Run([args.bearer], os.devnull)
    started = time.monotonic()
    try:
        asyncio.run(main_checks(run, args))
    except (CheckFailed, Exception) as e:  # noqa: BLE001 - every failure is reported the same way
        print(f"FAIL {run.check_name}: {run.redact(describe(e))}", file=sys.stderr, flush=True)
        return 1
    for output in run.outputs:
        if args.bearer in output:
            print("FAIL the bearer token appears in an answer", file=sys.stderr)
            return 1
    print(f"e2e-cluster: {run.passed} passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
