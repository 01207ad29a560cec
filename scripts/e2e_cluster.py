"""The checks of scripts/e2e-cluster.sh: three bridges on one PostgreSQL task store behind nginx,
driven with the official MCP Python SDK in the sessionless 2026-07-28 era. Prints `ok <check>`
per check; the first failure prints `FAIL <check>: <why>` and exits 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
import urllib.request
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from e2e_harness import CheckFailed, Run, call_json, describe, short


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


async def main_checks(run: Run, args: argparse.Namespace) -> None:
    replicas = [f"http://127.0.0.1:{p}/mcp" for p in args.replicas.split(",")]
    nonce = secrets.token_hex(4)
    messages: dict[str, str] = {}

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
        os.kill(args.victim, signal.SIGKILL)
        run.ok(f"SIGKILL the third replica mid-run ({running_now} tasks running across replicas)")

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
