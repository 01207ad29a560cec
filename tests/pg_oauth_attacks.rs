//! The attacks of the second review of OAuth on PostgreSQL, kept as regression tests (each failed
//! on the first version and passes now): a lock held by a frozen replica plus a few anonymous
//! `/authorize` requests must not make token checks fail closed; a revocation log whose numbers
//! went back (a restored database) is still read; a key retired by a rotation stops verifying once
//! its tokens have expired, not a day later; replicas starting together make one first key; on one
//! machine a configured `MCP_TOKEN_SIGNING_KEY` is the only key, as before.

#![allow(clippy::unwrap_used)]

mod common;
mod pgserver;

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use common::{FakeGateway, http::HttpBridge};
use pgserver::PgServer;
use serde_json::Value;

mod oauthflow;

use oauthflow::*;

async fn bridge(pg: Option<&PgServer>, gw: &FakeGateway, extra: &[(&str, &str)]) -> HttpBridge {
    let mut env: Vec<(&str, &str)> = vec![
        ("OPENCLAW_URL", gw.url.as_str()),
        ("AUTH_ENABLED", "true"),
        ("MCP_CLIENT_ID", CLIENT_ID),
        ("MCP_CLIENT_SECRET", SECRET),
        ("MCP_ISSUER_URL", ISSUER),
        ("MCP_RATE_LIMIT_PER_MINUTE", "0"),
    ];
    if let Some(pg) = pg {
        env.push(("OPENCLAW_MCP_DATABASE_URL", pg.url.as_str()));
    }
    env.extend_from_slice(extra);
    HttpBridge::spawn(&[], &env).await
}

async fn sql(pg: &PgServer) -> tokio_postgres::Client {
    let (c, conn) = tokio_postgres::connect(&pg.url, tokio_postgres::NoTls)
        .await
        .unwrap();
    actix_rt::spawn(async move {
        let _ = conn.await;
    });
    c
}

/// R1: one stalled transaction holding the (global, cross-replica) pending-insert advisory lock
/// plus a handful of /authorize requests exhaust the 4-connection OAuth pool, which the
/// revocation poll shares: every OAuth token check then answers 503.
#[actix_rt::test]
async fn a_held_lock_and_authorize_requests_do_not_make_token_checks_fail_closed() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeGateway::start();
    let b = bridge(Some(&pg), &gw, &[]).await;
    let (access, _) = login(&b, &b).await;
    assert_eq!(mcp(&b, &access).await, 200);

    // A replica that froze (GC pause, partition) in pending_insert, holding PENDING_LOCK.
    let stalled = sql(&pg).await;
    stalled.batch_execute("BEGIN").await.unwrap();
    stalled
        .execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&0x6f63_6d5f_706e_6401_i64],
        )
        .await
        .unwrap();
    // Six logins begin (anyone may call /authorize for the public client id).
    let url = b.url(&format!(
        "/authorize?{}",
        authorize_query(CLIENT_ID, &verifier())
    ));
    for _ in 0..6 {
        let url = url.clone();
        actix_rt::spawn(async move {
            let _ = client().get(url).send().await;
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let during = mcp(&b, &access).await;
    eprintln!("R1: token check while the lock is held: {during}");
    stalled.batch_execute("COMMIT").await.unwrap();
    let after = time_until(Duration::from_secs(15), || async {
        mcp(&b, &access).await == 200
    })
    .await;
    eprintln!("R1: back to 200 after release: {after:?}");
    assert_eq!(
        during, 200,
        "a stalled lock holder + 6 /authorize made a valid token 503"
    );
}

/// R2: the log's sequence going back (a restore, a table made again) hides every later
/// revocation from the poll of a running replica, which still counts itself in sync.
#[actix_rt::test]
async fn a_revocation_log_whose_numbers_went_back_is_still_read() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeGateway::start();
    let b = bridge(Some(&pg), &gw, &[]).await;
    // Three revocations: the replica has read up to seq 3.
    for _ in 0..3 {
        let (_, refresh) = login(&b, &b).await;
        let r = form(
            &b.url("/revoke"),
            &[
                ("token", &refresh),
                ("client_id", CLIENT_ID),
                ("client_secret", SECRET),
            ],
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let (access, _) = login(&b, &b).await;
    assert_eq!(mcp(&b, &access).await, 200);
    // The replica has polled the log (seq 3).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let db = sql(&pg).await;
    let before: Vec<i64> = db
        .query("SELECT seq FROM openclaw_mcp.oauth_revocations", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    eprintln!("R2: log before {before:?}");
    // The sequence restarts (a point-in-time restore, or the log made again).
    db.batch_execute("TRUNCATE openclaw_mcp.oauth_revocations RESTART IDENTITY")
        .await
        .unwrap();
    // The grant of `access` is revoked in the log (the truth); its NOTIFY was not heard here
    // (listener reconnecting).
    let gid: String = {
        let payload = access.split('.').nth(1).unwrap();
        let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        v["gid"].as_str().unwrap().to_string()
    };
    db.execute(
        "UPDATE openclaw_mcp.oauth_grants SET revoked_at = 1 WHERE id = $1",
        &[&gid],
    )
    .await
    .unwrap();
    db.execute(
        "INSERT INTO openclaw_mcp.oauth_revocations (grant_id, revoked_at) VALUES ($1, 1)",
        &[&gid],
    )
    .await
    .unwrap();
    let n: Vec<(i64, String)> = db
        .query(
            "SELECT seq, grant_id FROM openclaw_mcp.oauth_revocations",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    eprintln!("R2: log now {n:?}, gid {gid}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old = mcp(&b, &access).await;
    let fresh = bridge(Some(&pg), &gw, &[]).await;
    let new = mcp(&fresh, &access).await;
    eprintln!("R2: revoked token: running replica {old}, a replica started now {new}");
    assert_eq!(
        old, 401,
        "the running replica still accepts a revoked token"
    );
}

/// R3: after a rotation, the retired key stays in the table (and so is accepted for any token
/// it signs) until the hourly prune of a replica with default settings deletes it: a day later.
#[actix_rt::test]
async fn a_retired_key_stops_verifying_once_its_tokens_expired() {
    use openclaw_mcp::auth::{
        pg::PgAuth,
        tokens::{Claims, KeySet, random_bytes},
    };
    let Some(pg) = PgServer::start() else { return };
    let store = PgAuth::start(&pg.url).unwrap();
    let t0: i64 = 1_000_000;
    let first = store.signing_keys(random_bytes(32), t0).await.unwrap();
    let old = first[0].secret.clone();
    // `rotate-signing-key` with the default access TTL (1 h).
    let keys = store
        .rotate_key(random_bytes(32), t0 + 10, t0 + 15_010, 3_615_000)
        .await
        .unwrap();
    assert_eq!(keys.len(), 2);
    // The replicas' hourly prune, 2 h after the new key became active, with their keep
    // (max(access 1 h, refresh 24 h) + 1 h).
    let now = t0 + 15_010 + 2 * 3_600_000;
    store.prune(now, 86_400_000 + 3_600_000).await.unwrap();
    let stored = store.read_keys().await.unwrap();
    eprintln!("R3: keys kept 2 h after the rotation: {}", stored.len());
    // A token minted with the retired key, as a replica would check it.
    let set = KeySet::new(
        None,
        &stored
            .iter()
            .map(|k| (k.secret.clone(), k.active_at))
            .collect::<Vec<_>>(),
        Duration::from_secs(3600 + 15 + 60),
    );
    let now_s = (now / 1000) as u64;
    let claims = Claims {
        iss: ISSUER.into(),
        aud: format!("{ISSUER}/mcp"),
        sub: CLIENT_ID.into(),
        scope: "mcp:tools".into(),
        exp: now_s + 3600,
        iat: now_s,
        jti: "x".into(),
        gid: "forged".into(),
    };
    let forged = openclaw_mcp::auth::tokens::SigningKey::new(&old).sign(&claims);
    let checked = set.verify(&forged, ISSUER, &[format!("{ISSUER}/mcp")], now_s);
    eprintln!("R3: forged with the retired key: {:?}", checked.is_ok());
    assert!(
        checked.is_err(),
        "a token minted with the retired key passes 2 h after rotation"
    );
}

/// R4: replicas starting together each make a first key.
#[actix_rt::test]
async fn replicas_starting_together_make_one_first_key() {
    use openclaw_mcp::auth::{
        pg::PgAuth,
        tokens::{KeySet, random_bytes},
    };
    let Some(pg) = PgServer::start() else { return };
    let stores: Vec<_> = (0..3).map(|_| PgAuth::start(&pg.url).unwrap()).collect();
    // Migrate first (each store once) so that the insert is what races.
    for s in &stores {
        s.read_keys().await.unwrap();
    }
    let db = sql(&pg).await;
    let mut several = 0;
    let mut disagree = 0;
    for _ in 0..20 {
        db.batch_execute("DELETE FROM openclaw_mcp.oauth_keys")
            .await
            .unwrap();
        let got = futures_util::future::join_all(
            stores
                .iter()
                .enumerate()
                .map(|(i, s)| s.signing_keys(random_bytes(32), 5_000 + i as i64)),
        )
        .await;
        let signers: std::collections::HashSet<String> = got
            .iter()
            .map(|k| {
                let k = k.as_ref().unwrap();
                let pairs: Vec<_> = k.iter().map(|k| (k.secret.clone(), k.active_at)).collect();
                KeySet::new(None, &pairs, Duration::from_secs(3675))
                    .signer_id(10_000)
                    .unwrap()
                    .to_string()
            })
            .collect();
        if stores[0].read_keys().await.unwrap().len() > 1 {
            several += 1;
        }
        if signers.len() > 1 {
            disagree += 1;
        }
    }
    eprintln!(
        "R4: of 20 simultaneous starts, {several} made several keys, {disagree} had replicas signing with different keys"
    );
    assert_eq!(disagree, 0);
}

/// R5 (SQLite mode, vs fb62046): with MCP_TOKEN_SIGNING_KEY set, a token signed with the key in
/// oauth.db is accepted (before, only the configured key was).
#[actix_rt::test]
async fn on_one_machine_a_configured_key_is_the_only_key() {
    use openclaw_mcp::{
        auth::{
            store::AuthDb,
            tokens::{Claims, SigningKey},
        },
        sqlite::Location,
    };
    let gw = FakeGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    let b = bridge(
        None,
        &gw,
        &[
            ("OPENCLAW_MCP_DATA_DIR", d.as_str()),
            (
                "MCP_TOKEN_SIGNING_KEY",
                "a-configured-signing-key-of-32-chars-or-more",
            ),
        ],
    )
    .await;
    let (access, _) = login(&b, &b).await;
    assert_eq!(mcp(&b, &access).await, 200);
    let key = AuthDb::open(&Location::Dir(dir.path().to_path_buf()))
        .unwrap()
        .signing_key()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged = SigningKey::new(&key).sign(&Claims {
        iss: ISSUER.into(),
        aud: format!("{ISSUER}/mcp"),
        sub: CLIENT_ID.into(),
        scope: "mcp:tools".into(),
        exp: now + 600,
        iat: now,
        jti: "x".into(),
        gid: "forged".into(),
    });
    let status = mcp(&b, &forged).await;
    eprintln!("R5: token signed with oauth.db's key while MCP_TOKEN_SIGNING_KEY is set: {status}");
    assert_eq!(status, 401);
}
