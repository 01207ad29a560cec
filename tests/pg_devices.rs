//! Device identities shared by replicas on PostgreSQL (`tests/pgserver`), against the
//! protocol-level fake gateway (`tests/wsgw`) that requires pairing: replicas starting together
//! are one device (one pairing request, one approval); the device token one replica is issued is
//! used by the others, and by a replica started later without the shared token; a device removed
//! by the gateway's owner is forgotten by all; a database away at start is a clear error until it
//! is back.

#![allow(clippy::unwrap_used)]

mod pgserver;
mod wsgw;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use openclaw_mcp::gateway::ws::{
    AuthUsed, Options, Phase, WsClient, conn::Endpoint, devices::SharedDevices,
    identity::DeviceIdentity,
};
use pgserver::PgServer;
use wsgw::{Config, FakeWsGateway};

fn options(gw: &FakeWsGateway, token: Option<&str>) -> Options {
    let mut o = Options::new(
        Endpoint::from_base_url(&gw.url).unwrap(),
        token.map(str::to_string),
    );
    o.first_backoff = Duration::from_millis(50);
    o.max_backoff = Duration::from_millis(200);
    o.person_retry = Duration::from_millis(200);
    o
}

/// A replica's identity: its own connection pool to the table, as a separate process has.
fn replica_identity(url: &str) -> Arc<Mutex<DeviceIdentity>> {
    let devices = SharedDevices::start(url).unwrap();
    Arc::new(Mutex::new(
        DeviceIdentity::shared(devices, "default").unwrap(),
    ))
}

async fn phase_where(client: &WsClient, within: Duration, want: impl Fn(&Phase) -> bool) -> Phase {
    let mut rx = client.changes();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let phase = rx.borrow_and_update().clone();
        if want(&phase) {
            return phase;
        }
        if tokio::time::timeout_at(deadline, rx.changed())
            .await
            .is_err()
        {
            panic!("no such phase within {within:?}; last {phase:?}");
        }
    }
}

async fn ready(client: &WsClient) -> AuthUsed {
    match phase_where(client, Duration::from_secs(10), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await
    {
        Phase::Ready(session) => session.auth,
        _ => unreachable!(),
    }
}

async fn down(client: &WsClient) -> String {
    match phase_where(client, Duration::from_secs(10), |p| {
        matches!(p, Phase::Down(_))
    })
    .await
    {
        Phase::Down(e) => e.to_string(),
        _ => unreachable!(),
    }
}

#[tokio::test]
async fn replicas_are_one_paired_device() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeWsGateway::start(Config {
        require_pairing: true,
        ..Config::default()
    })
    .await;
    // Three replicas start together: one key wins, so one pairing request.
    let ids: Vec<_> = (0..3).map(|_| replica_identity(&pg.url)).collect();
    let clients: Vec<_> = ids
        .iter()
        .map(|id| WsClient::start(options(&gw, Some(gw.token())), Some(id.clone())))
        .collect();
    for c in &clients {
        let e = down(c).await;
        assert!(e.contains("openclaw devices approve"), "{e}");
    }
    let seen: HashSet<String> = gw.devices_seen().into_iter().collect();
    assert_eq!(seen.len(), 1, "one device for three replicas: {seen:?}");
    let device = ids[0].lock().unwrap().id().to_string();
    for id in &ids {
        assert_eq!(id.lock().unwrap().id(), device);
    }
    let pending = gw.pending_pairing();
    assert_eq!(pending.len(), 1, "one pairing request: {pending:?}");

    // Approved once; the first replica to connect is issued the device token and keeps it in
    // the table; the others read it there.
    gw.approve(&pending[0]);
    clients[0].reconnect_now();
    assert_eq!(ready(&clients[0]).await, AuthUsed::TokenAndDevice);
    for c in &clients[1..] {
        c.reconnect_now();
        assert_eq!(ready(c).await, AuthUsed::TokenAndDevice);
    }
    let stored = stored_body(&pg.url).await;
    assert!(stored.contains("devtok-"), "the device token is shared");

    // A replica started later, without the gateway's shared token: the device token alone.
    let late = WsClient::start(options(&gw, None), Some(replica_identity(&pg.url)));
    assert_eq!(ready(&late).await, AuthUsed::Device);

    // The owner removes the device: the replica that hears it forgets the token for all; a
    // replica that reconnects then is asked to pair again rather than sending a dead token.
    gw.remove_device(&device);
    clients[0].reconnect_now();
    // The connection is cut first; the reconnection is then asked for pairing.
    phase_where(
        &clients[0],
        Duration::from_secs(10),
        |p| matches!(p, Phase::Down(e) if e.to_string().contains("openclaw devices approve")),
    )
    .await;
    let again = WsClient::start(
        options(&gw, Some(gw.token())),
        Some(replica_identity(&pg.url)),
    );
    let e = down(&again).await;
    assert!(e.contains("openclaw devices approve"), "{e}");
    assert!(
        !stored_body(&pg.url).await.contains("devtok-"),
        "the dead device token was forgotten in the table"
    );
}

/// The identity row of the default instance, as stored.
async fn stored_body(url: &str) -> String {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let body: String = client
        .query_one(
            "SELECT body FROM openclaw_mcp.devices WHERE instance = 'default'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    drop(client);
    let _ = driver.await;
    body
}

#[tokio::test]
async fn a_database_away_at_start_is_a_clear_error_until_it_is_back() {
    let Some(pg) = PgServer::start() else { return };
    let gw = FakeWsGateway::start(Config::default()).await;
    pg.stop();
    let client = WsClient::start(
        options(&gw, Some(gw.token())),
        Some(replica_identity(&pg.url)),
    );
    let e = down(&client).await;
    assert!(
        e.contains("device identity shared by the replicas cannot be read"),
        "{e}"
    );
    assert!(!e.contains("postgres@"), "no credentials: {e}");
    assert!(
        gw.devices_seen().is_empty(),
        "no connection with an unshared key"
    );
    pg.restart();
    client.reconnect_now();
    ready(&client).await;
    assert_eq!(gw.devices_seen().len(), 1, "the shared key signed");
}
