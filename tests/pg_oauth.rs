//! OAuth across replicas: three bridges (the real binary) on one real PostgreSQL server
//! (`tests/pgserver`), no `MCP_TOKEN_SIGNING_KEY` (the keys are the shared ones), one public
//! issuer URL as behind a load balancer. Each step of a login lands on another replica; an
//! attacker replays codes and refresh tokens across replicas at the same moment; a revocation on
//! one is refused by the others at once; the database going away makes token checks refuse
//! (fail closed) and its return brings them back; a key rotation logs nobody out.

#![allow(clippy::unwrap_used)]

mod common;
mod pgserver;

use std::time::{Duration, Instant};

use common::{
    FakeGateway,
    http::{ACCEPT_BOTH, HttpBridge, initialize_body},
};
use pgserver::PgServer;
use serde_json::json;

mod oauthflow;

use oauthflow::*;

async fn replicas(pg: &PgServer, gw: &FakeGateway, n: usize) -> Vec<HttpBridge> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(
            HttpBridge::spawn(
                &[],
                &[
                    ("OPENCLAW_URL", gw.url.as_str()),
                    ("AUTH_ENABLED", "true"),
                    ("MCP_CLIENT_ID", CLIENT_ID),
                    ("MCP_CLIENT_SECRET", SECRET),
                    ("MCP_ISSUER_URL", ISSUER),
                    ("MCP_DANGEROUSLY_ALLOW_DCR", "true"),
                    ("MCP_APPROVAL_PASSWORD", PASSWORD),
                    ("OPENCLAW_MCP_DATABASE_URL", pg.url.as_str()),
                    // The probes below make many /mcp requests from one address.
                    ("MCP_RATE_LIMIT_PER_MINUTE", "0"),
                ],
            )
            .await,
        );
    }
    out
}

#[actix_rt::test]
async fn a_login_spans_replicas_and_replays_and_revocations_hold_across_them() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeGateway::start();
    let r = replicas(&pg, &gw, 3).await;

    // A code from the first, redeemed at the second; the token works on all three.
    let (access, refresh) = login(&r[0], &r[1]).await;
    for b in &r {
        assert_eq!(mcp(b, &access).await, 200, "{}", b.logs());
    }

    // The same code replayed at the third: refused, and what its first use issued is revoked
    // everywhere (RFC 6749 §4.1.2).
    let (v, code) = code_from(&r[2]).await;
    let first = redeem_at(&r[0], &code, &v).await;
    assert_eq!(first.status, 200);
    let stolen = first.json()["access_token"].as_str().unwrap().to_string();
    let replay = redeem_at(&r[1], &code, &v).await;
    assert_eq!(replay.status, 400);
    assert_eq!(replay.json()["error"], "invalid_grant");
    for b in &r {
        assert_eq!(
            mcp(b, &stolen).await,
            401,
            "the replayed code's tokens are dead"
        );
    }
    assert_eq!(mcp(&r[2], &access).await, 200, "another login is untouched");

    // One refresh token, two refreshes landing on two replicas at the same moment: exactly
    // one is answered, the other is a replay and kills the grant on every replica.
    let (one, two) = futures_util::join!(refresh_at(&r[0], &refresh), refresh_at(&r[1], &refresh));
    let mut statuses = [one.status, two.status];
    statuses.sort();
    assert_eq!(statuses, [200, 400], "{} / {}", one.text(), two.text());
    let winner = if one.status == 200 { &one } else { &two };
    let rotated = winner.json()["access_token"].as_str().unwrap().to_string();
    for b in &r {
        assert_eq!(mcp(b, &access).await, 401, "the family is revoked");
        assert_eq!(mcp(b, &rotated).await, 401, "the winner's new token too");
    }

    // A revocation at one replica: refused by the others at once.
    let (access, refresh) = login(&r[1], &r[2]).await;
    for b in &r {
        assert_eq!(mcp(b, &access).await, 200);
    }
    let revoked = form(
        &r[0].url("/revoke"),
        &[
            ("token", &refresh),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
        ],
    )
    .await;
    assert_eq!(revoked.status, 200);
    let mut slowest = Duration::ZERO;
    for b in &r[1..] {
        let took = time_until(Duration::from_secs(2), || async {
            mcp(b, &access).await == 401
        })
        .await
        .expect("the revocation reaches every replica");
        slowest = slowest.max(took);
    }
    eprintln!("revocation refused by the other replicas within {slowest:?}");
    assert!(slowest < Duration::from_millis(500), "{slowest:?}");
}

#[actix_rt::test]
async fn a_consent_page_opened_on_one_replica_is_answered_on_another() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeGateway::start();
    let r = replicas(&pg, &gw, 3).await;
    // Registered at the first.
    let registered = send(
        client()
            .post(r[0].url("/register"))
            .insert_header(("content-type", "application/json")),
        Some(
            json!({"client_name": "Claude", "redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none"})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(registered.status, 201, "{}", registered.text());
    let client_id = registered.json()["client_id"].as_str().unwrap().to_string();
    // The consent page from the second.
    let v = verifier();
    let page = send(
        client().get(r[1].url(&format!("/authorize?{}", authorize_query(&client_id, &v)))),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text());
    let consent = page
        .text()
        .split("name=\"consent_id\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    // A wrong password at the third counts; the right one at the first approves.
    let wrong = form(
        &r[2].url("/authorize"),
        &[
            ("consent_id", &consent),
            ("password", "guess"),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text());
    let approved = form(
        &r[0].url("/authorize"),
        &[
            ("consent_id", &consent),
            ("password", PASSWORD),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(approved.status, 302, "{}", approved.text());
    let code = approved.location_params()["code"].clone();
    // The same page approved again, elsewhere: it is closed.
    let again = form(
        &r[1].url("/authorize"),
        &[
            ("consent_id", &consent),
            ("password", PASSWORD),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(again.status, 400, "{}", again.text());
    // The code redeemed at the third (a public client: PKCE only).
    let token = form(
        &r[2].url("/token"),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", &v),
            ("redirect_uri", CALLBACK),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(token.status, 200, "{}", token.text());
    let access = token.json()["access_token"].as_str().unwrap().to_string();
    for b in &r {
        assert_eq!(mcp(b, &access).await, 200);
    }
}

#[actix_rt::test]
async fn token_checks_fail_closed_while_the_database_is_away_and_recover() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeGateway::start();
    let r = replicas(&pg, &gw, 2).await;
    let (access, refresh) = login(&r[0], &r[1]).await;
    assert_eq!(mcp(&r[1], &access).await, 200);

    pg.stop();
    // Within the staleness bound every replica refuses, with 503 and Retry-After (never a
    // pass: a revocation made meanwhile could not be heard).
    for b in &r {
        let took = time_until(Duration::from_secs(5), || async {
            mcp(b, &access).await == 503
        })
        .await
        .expect("503 while the database is away");
        eprintln!("503 after {took:?}");
    }
    let refused = send(
        client()
            .post(r[0].url("/mcp"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", ACCEPT_BOTH))
            .insert_header(("authorization", format!("Bearer {access}"))),
        Some(initialize_body(1)),
    )
    .await;
    assert_eq!(refused.status, 503);
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(refused.json()["error"], "temporarily_unavailable");
    // A refresh cannot be checked either: a clear server error, nothing issued.
    let during = refresh_at(&r[1], &refresh).await;
    assert!(during.status >= 500, "{}", during.text());
    assert!(!during.text().contains("postgres://"), "{}", during.text());

    pg.restart();
    for b in &r {
        time_until(Duration::from_secs(15), || async {
            mcp(b, &access).await == 200
        })
        .await
        .expect("token checks resume once the database is back");
    }
    // The refresh token was not spent by the failed attempt.
    let after = refresh_at(&r[0], &refresh).await;
    assert_eq!(after.status, 200, "{}", after.text());
    for b in &r {
        assert!(!b.logs().contains("postgres@"), "no credentials in logs");
    }
}

#[actix_rt::test]
async fn a_key_rotation_logs_nobody_out() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeGateway::start();
    let r = replicas(&pg, &gw, 2).await;
    let (before, _) = login(&r[0], &r[1]).await;
    let old_kid = kid(&before);
    assert_eq!(old_kid.len(), 16);

    let out = tokio::process::Command::new(common::bridge::binary())
        .arg("rotate-signing-key")
        .env_clear()
        .env("OPENCLAW_MCP_DATABASE_URL", &pg.url)
        .output()
        .await
        .unwrap();
    // Every message of the binary goes to stderr (stdout is the MCP channel in stdio mode).
    let printed = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("new signing key"), "{printed}");
    assert!(!printed.contains(&old_kid), "{printed}");

    // Until the new key is active, tokens are still signed with the old one; the old token is
    // accepted all along; once it is, the new key signs and every replica accepts its tokens.
    // One login a second (the /authorize limit is 100 per 15 minutes per address).
    let rotated_at = Instant::now();
    let mut switched = None;
    while rotated_at.elapsed() < Duration::from_secs(30) {
        let (t, _) = login(&r[1], &r[0]).await;
        assert_eq!(mcp(&r[0], &before).await, 200, "the old token stays valid");
        if kid(&t) != old_kid {
            assert_eq!(
                mcp(&r[0], &t).await,
                200,
                "the first new token is accepted everywhere"
            );
            switched = Some(rotated_at.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let switched = switched.expect("the new key signs within 30 s");
    eprintln!("the new key signed from {switched:?} after the rotation");
    assert!(
        switched >= Duration::from_secs(10),
        "not before the announced activation"
    );
    let (after, _) = login(&r[0], &r[1]).await;
    assert_ne!(kid(&after), old_kid);
    for b in &r {
        assert_eq!(mcp(b, &after).await, 200);
        assert_eq!(mcp(b, &before).await, 200);
    }

    // Without a database the command says what it needs.
    let out = tokio::process::Command::new(common::bridge::binary())
        .arg("rotate-signing-key")
        .env_clear()
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OPENCLAW_MCP_DATABASE_URL"));
}

/// The store itself under races, as three replicas (three pools) hammer it at once: of 30
/// refreshes of one token exactly one wins and the rest are replays; of 30 redemptions of one
/// code exactly one takes it; 30 revocations at once come out of the log in order, each once.
#[actix_rt::test]
async fn the_shared_store_holds_under_races() {
    use openclaw_mcp::auth::{
        pending::Replay,
        pg::{Kind, PgAuth},
        store::RefreshOutcome,
    };
    let Some(pg) = PgServer::start() else { return };
    let stores: Vec<_> = (0..3).map(|_| PgAuth::start(&pg.url).unwrap()).collect();
    let grant = stores[0]
        .create_grant("c", "mcp:tools", "r", 0)
        .await
        .unwrap();
    stores[1]
        .add_refresh("the-refresh", &grant, i64::MAX, "c", 0)
        .await
        .unwrap();
    let outcomes = futures_util::future::join_all(
        (0..30).map(|i| stores[i % 3].use_refresh("the-refresh", "c", 1)),
    )
    .await;
    let valid = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(RefreshOutcome::Valid(_))))
        .count();
    let replayed = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                Ok(RefreshOutcome::Replayed(_)) | Ok(RefreshOutcome::Invalid)
            )
        })
        .count();
    assert_eq!((valid, replayed), (1, 29), "{outcomes:?}");
    let log = stores[2].revocations_since(0).await.unwrap();
    assert_eq!(log.len(), 1, "the grant revoked once: {log:?}");

    let caps = openclaw_mcp::auth::pending::Caps {
        total: 100,
        per_client: 10,
        per_addr: 10,
    };
    stores[0]
        .pending_insert(Kind::Code, "code-hash", "c", None, i64::MAX, "{}", caps, 0)
        .await
        .unwrap()
        .unwrap();
    let takes =
        futures_util::future::join_all((0..30).map(|i| stores[i % 3].take_code("code-hash", 1)))
            .await;
    let taken = takes
        .iter()
        .filter(|t| matches!(t, Ok((Some(_), _))))
        .count();
    assert_eq!(taken, 1, "{takes:?}");
    assert!(
        takes
            .iter()
            .all(|t| matches!(t, Ok((Some(_), _)) | Ok((None, Replay::Pending)))),
        "every other redemption sees a replay: {takes:?}"
    );

    let mut grants = Vec::new();
    for _ in 0..30 {
        grants.push(
            stores[0]
                .create_grant("c", "mcp:tools", "r", 0)
                .await
                .unwrap(),
        );
    }
    // A reader follows the log as a replica does (everything after the last number seen) while
    // the revocations commit concurrently: it must see every one (a number committed after a
    // higher one would be skipped for ever).
    let reader = stores[1].clone();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follow = {
        let done = done.clone();
        async move {
            let mut since = 0;
            let mut seen = std::collections::HashSet::new();
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                for (seq, g) in reader.revocations_since(since).await.unwrap() {
                    since = since.max(seq);
                    seen.insert(g);
                }
                if finished {
                    return seen;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    };
    let revoke_all = async {
        let revoked = futures_util::future::join_all(
            grants
                .iter()
                .enumerate()
                .map(|(i, g)| stores[i % 3].revoke_grant(g, 2)),
        )
        .await;
        done.store(true, std::sync::atomic::Ordering::Release);
        revoked
    };
    let (seen, revoked) = futures_util::join!(follow, revoke_all);
    assert!(revoked.iter().all(Result::is_ok));
    assert_eq!(seen.len(), 31, "the follower saw every revocation");
    let log = stores[1].revocations_since(0).await.unwrap();
    assert_eq!(log.len(), 31, "each once");
}

/// A revocation is announced at commit on `openclaw_mcp_revoke` (what makes other replicas refuse
/// at once rather than at their next 250 ms read of the log): a listener of its own hears the grant.
#[actix_rt::test]
async fn a_revocation_is_announced_to_listeners_at_commit() {
    use openclaw_mcp::{
        auth::pg::{PgAuth, REVOKE_CHANNEL},
        pg::{Note, listen, parse_url},
    };
    let Some(pg) = PgServer::start() else { return };
    let store = PgAuth::start(&pg.url).unwrap();
    let grant = store.create_grant("c", "mcp:tools", "r", 0).await.unwrap();
    let (tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::spawn(listen(parse_url(&pg.url).unwrap(), REVOKE_CHANNEL, tx));
    let first = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await;
    assert_eq!(first.unwrap(), Some(Note::Listening));
    let revoked_at = Instant::now();
    store.revoke_grant(&grant, 1).await.unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), notes.recv()).await;
    assert_eq!(heard.unwrap(), Some(Note::Payload(grant.clone())));
    eprintln!("revocation heard {:?} after the call", revoked_at.elapsed());
    // Revoking it again announces nothing (it is logged once).
    store.revoke_grant(&grant, 2).await.unwrap();
    let again = tokio::time::timeout(Duration::from_millis(300), notes.recv()).await;
    assert!(again.is_err(), "{again:?}");
    listener.abort();
}
