"""OAuth across the replicas of scripts/e2e-cluster.sh (OAuth state in PostgreSQL): the official
MCP Python SDK's OAuth client logs in through nginx (round robin: discovery, /authorize, /token and
the MCP requests land on different replicas), refreshes through nginx again and again, and each
new token is accepted by every replica on its own port; one refresh token presented to two
replicas at the same moment is answered once and kills its grant everywhere; a revocation through
nginx is refused by every replica within a second. Prints `ok <check>` per check; the first failure
prints `FAIL <check>: <why>` and exits 1."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
from mcp import Client
from mcp.client.auth import AuthorizationCodeResult, OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

from e2e_harness import CheckFailed, Run, call_json, describe, short


class Storage:
    """The provider's TokenStorage: the pre-registered client and the tokens it is given."""

    def __init__(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info
        self.tokens: OAuthToken | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def plain(**kw: Any) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(trust_env=False, timeout=10, follow_redirects=False, **kw)


async def mcp_status(url: str, token: str) -> int:
    """The status of an MCP `initialize` carrying `token` to one replica (the session it may
    open is closed again)."""
    async with plain() as http:
        r = await http.post(
            url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
                "Content-Type": "application/json",
            },
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "e2e-cluster", "version": "1"},
                },
            },
        )
        session = r.headers.get("mcp-session-id")
        if session:
            await http.delete(url, headers={"Authorization": f"Bearer {token}", "Mcp-Session-Id": session})
        return r.status_code


class Login:
    """One OAuth client (the SDK's provider) logged in through nginx."""

    def __init__(self, run: Run, args: argparse.Namespace) -> None:
        self.run = run
        self.args = args
        self.storage = Storage(
            OAuthClientInformationFull(
                client_id=args.client_id,
                client_secret=args.client_secret,
                redirect_uris=[args.redirect_uri],
                token_endpoint_auth_method="client_secret_basic",
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
            )
        )
        self.pending: list[AuthorizationCodeResult] = []
        self.served_by: dict[str, set[str]] = {}  # path -> the replicas nginx sent it to
        self.provider = OAuthClientProvider(
            server_url=args.front,
            client_metadata=OAuthClientMetadata(
                client_name="openclaw-mcp e2e-cluster",
                redirect_uris=[args.redirect_uri],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                token_endpoint_auth_method="client_secret_basic",
            ),
            storage=self.storage,
            redirect_handler=self.redirect,
            callback_handler=self.callback,
        )

    async def redirect(self, authorization_url: str) -> None:
        """Plays the browser: GETs the authorization URL (through nginx), reads the 302."""
        async with plain() as http:
            r = await http.get(authorization_url)
        self.note(r)
        self.run.expect_eq(r.status_code, 302, f"GET /authorize status (body {short(r.text)})")
        got = {k: v[0] for k, v in parse_qs(urlsplit(r.headers.get("location", "")).query).items()}
        self.run.expect(bool(got.get("code")), f"no code in the redirect: {got.get('error')}")
        self.run.secrets.append(got["code"])
        self.pending.append(AuthorizationCodeResult(code=got["code"], state=got.get("state"), iss=got.get("iss")))

    async def callback(self) -> AuthorizationCodeResult:
        self.run.expect(bool(self.pending), "the callback handler was called before a redirect")
        return self.pending.pop()

    def note(self, r: httpx2.Response) -> None:
        upstream = r.headers.get("x-upstream")
        if upstream:
            self.served_by.setdefault(urlsplit(str(r.request.url)).path, set()).add(upstream)

    def client(self) -> httpx2.AsyncClient:
        async def record(r: httpx2.Response) -> None:
            self.note(r)

        return httpx2.AsyncClient(
            auth=self.provider,
            trust_env=False,  # loopback only: never through a proxy
            timeout=httpx2.Timeout(30, read=90),
            event_hooks={"response": [record]},
        )

    def token(self) -> OAuthToken:
        self.run.expect(self.storage.tokens is not None, "no tokens stored")
        assert self.storage.tokens is not None
        self.run.secrets.extend([self.storage.tokens.access_token, self.storage.tokens.refresh_token or ""])
        return self.storage.tokens


async def every_replica(run: Run, replicas: list[str], token: str, want: int, what: str) -> None:
    for url in replicas:
        run.expect_eq(await mcp_status(url, token), want, f"{what} at {url}")


async def checks(run: Run, args: argparse.Namespace) -> None:
    replicas = [f"http://127.0.0.1:{p}/mcp" for p in args.replicas.split(",")]
    token_url = args.front.removesuffix("/mcp") + "/token"
    revoke_url = args.front.removesuffix("/mcp") + "/revoke"
    basic = (args.client_id, args.client_secret)

    login = Login(run, args)
    async with login.client() as http:
        async with Client(streamable_http_client(args.front, http_client=http), read_timeout_seconds=60) as client:
            run.begin("the SDK's OAuth client logs in through nginx; its token works on every replica")
            await call_json(run, client, "openclaw_task_list", {})
            first = login.token()
            await every_replica(run, replicas, first.access_token, 200, "the first access token")
            run.ok()

            run.begin("8 refreshes through nginx: each rotated token works on every replica, each used refresh token is dead")
            used: list[str] = []
            for _ in range(8):
                before = login.token()
                login.provider.context.token_expiry_time = time.time() - 1
                await call_json(run, client, "openclaw_task_list", {})
                after = login.token()
                run.expect(after.access_token != before.access_token, "no new access token after the expiry")
                used.append(before.refresh_token or "")
                await every_replica(run, replicas, after.access_token, 200, "a refreshed access token")
            token_replicas = login.served_by.get("/token", set())
            run.expect(len(token_replicas) >= 2, f"the token requests all reached one replica: {token_replicas}")
            run.ok(
                "8 refreshes through nginx, answered by "
                f"{len(token_replicas)} replicas; every rotated token accepted by all {len(replicas)}"
            )

    run.begin("one refresh token at two replicas at the same moment: one answer, then the grant is dead everywhere")
    current = login.token()
    async with plain() as a, plain() as b:
        form = {"grant_type": "refresh_token", "refresh_token": current.refresh_token or ""}
        r1, r2 = await asyncio.gather(
            a.post(replicas[0].removesuffix("/mcp") + "/token", data=form, auth=basic),
            b.post(replicas[1].removesuffix("/mcp") + "/token", data=form, auth=basic),
        )
    statuses = sorted([r1.status_code, r2.status_code])
    run.expect_eq(statuses, [200, 400], f"statuses ({short(r1.text)} / {short(r2.text)})")
    loser = r1 if r1.status_code == 400 else r2
    run.expect_eq(loser.json().get("error"), "invalid_grant", "the replay's error")
    winner = (r1 if r1.status_code == 200 else r2).json()
    run.secrets.extend([winner["access_token"], winner["refresh_token"]])
    await every_replica(run, replicas, winner["access_token"], 401, "the winner's token after the replay")
    await every_replica(run, replicas, current.access_token, 401, "the family's older token")
    run.ok()

    run.begin("a revocation through nginx is refused by every replica within a second")
    second = Login(run, args)
    async with second.client() as http:
        async with Client(streamable_http_client(args.front, http_client=http), read_timeout_seconds=60) as client:
            await call_json(run, client, "openclaw_task_list", {})
    token = second.token()
    await every_replica(run, replicas, token.access_token, 200, "a fresh login's token")
    async with plain() as http:
        r = await http.post(revoke_url, data={"token": token.refresh_token or ""}, auth=basic)
    run.expect_eq(r.status_code, 200, "POST /revoke")
    revoked_at = time.monotonic()
    pending = set(replicas)
    while pending and time.monotonic() - revoked_at < 1.0:
        for url in list(pending):
            if await mcp_status(url, token.access_token) == 401:
                pending.discard(url)
    took = time.monotonic() - revoked_at
    run.expect(not pending, f"still accepted {took:.2f} s after the revocation by {sorted(pending)}")
    async with plain() as http:
        r = await http.post(token_url, data={"grant_type": "refresh_token", "refresh_token": token.refresh_token or ""}, auth=basic)
    run.expect_eq(r.status_code, 400, "a refresh with the revoked grant's token")
    run.ok(f"a revocation through nginx is refused by every replica within {took * 1000:.0f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--front", required=True, help="nginx's /mcp URL (the issuer's resource)")
    parser.add_argument("--replicas", required=True, help="the bridges' ports, comma-separated")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret-env", default="E2E_CLIENT_SECRET", help="where the client secret is")
    parser.add_argument("--redirect-uri", required=True)
    args = parser.parse_args()
    args.client_secret = os.environ[args.client_secret_env]
    run = Run([args.client_secret], os.devnull)
    started = time.monotonic()
    try:
        asyncio.run(checks(run, args))
    except (CheckFailed, Exception) as e:  # noqa: BLE001 - every failure is reported the same way
        print(f"FAIL {run.check_name}: {run.redact(describe(e))}", file=sys.stderr, flush=True)
        return 1
    for output in run.outputs:
        if any(s and s in output for s in run.secrets):
            print("FAIL a secret or token appears in an answer", file=sys.stderr)
            return 1
    print(f"e2e-cluster oauth: {run.passed} passed in {time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
