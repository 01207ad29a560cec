"""The client of scripts/bench-cluster.sh: queues TASKS tasks through the replicas (round robin,
CONCURRENCY calls in flight, official MCP Python SDK, sessionless 2026-07-28 era), then waits
until every one has completed; prints one JSON line: queued/s and drained/s."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--ports", required=True)
    p.add_argument("--bearer", required=True)
    p.add_argument("--tasks", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    urls = [f"http://127.0.0.1:{port}/mcp" for port in args.ports.split(",")]
    async with AsyncExitStack() as stack:
        clients = []
        for url in urls:
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers={"Authorization": f"Bearer {args.bearer}"}, trust_env=False, timeout=httpx2.Timeout(60))
            )
            clients.append(
                await stack.enter_async_context(Client(streamable_http_client(url, http_client=http), read_timeout_seconds=60))
            )
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(args.tasks):
            queue.put_nowait(i)

        async def worker(w: int) -> None:
            client = clients[w % len(clients)]
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                res = await client.call_tool("openclaw_chat_async", {"message": f"bench {i}"})
                if res.is_error:
                    raise RuntimeError(res.content[0].text)

        started = time.monotonic()
        await asyncio.gather(*(worker(w) for w in range(args.concurrency)))
        queued_s = time.monotonic() - started
        while True:
            res = await clients[0].call_tool("openclaw_task_list", {"status": "failed"})
            stats = json.loads(res.content[0].text)["stats"]["byStatus"]
            if stats["completed"] + stats["failed"] + stats["cancelled"] >= args.tasks:
                break
            await asyncio.sleep(0.1)
        drained_s = time.monotonic() - started
    print(json.dumps({
        "replicas": len(urls),
        "tasks": args.tasks,
        "failed": stats["failed"],
        "queued_per_s": round(args.tasks / queued_s),
        "drained_per_s": round(args.tasks / drained_s),
    }), flush=True)
    return 0 if stats["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
