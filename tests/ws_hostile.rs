//! The WebSocket backend against gateways that misbehave in ways the protocol-level fake does not
//! by default, and the turn logic when the connection is down: a gateway that stops reading (its
//! TCP window full) while it keeps talking, a server that floods before `hello-ok`, an
//! `agent.wait` answered at once, a cancel or a timeout while the connection is down, a cancel
//! while the run is being looked up. Each asserts what the hostile side gets and what the
//! legitimate caller sees meanwhile. (Memory under oversized frames: `tests/ws_memory.rs`.)

#![allow(clippy::unwrap_used)]

mod wsgw;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use openclaw_mcp::gateway::{
    error::GatewayError,
    ws::{
        Options, Phase, Session, WsClient, WsError,
        conn::Endpoint,
        ops::{self, Limit, RunRecord, Turn},
    },
};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};
use tokio_util::sync::CancellationToken;
use wsgw::{Config, FakeWsGateway, RunEnd};

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn options(url: &str, token: Option<&str>) -> Options {
    let mut o = Options::new(
        Endpoint::from_base_url(url).unwrap(),
        token.map(str::to_string),
    );
    o.ping_every = Duration::from_millis(100);
    o.dead_after = Duration::from_millis(1000);
    o.first_backoff = Duration::from_millis(50);
    o.max_backoff = Duration::from_millis(200);
    o.person_retry = Duration::from_millis(200);
    o
}

async fn ready(client: &WsClient) -> Arc<Session> {
    let mut rx = client.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Phase::Ready(s) = rx.borrow_and_update().clone()
            && !s.is_closed()
        {
            return s;
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("no connection within 5 s")
            .unwrap();
    }
}

async fn down(client: &WsClient) -> WsError {
    let mut rx = client.changes();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        if let Phase::Down(e) = rx.borrow_and_update().clone() {
            return e;
        }
        tokio::time::timeout_at(deadline, rx.changed())
            .await
            .expect("still connected after 5 s")
            .unwrap();
    }
}

/// A gateway that completes the handshake (`maxPayload` 4 MiB), then never reads again while it
/// keeps sending a tick every 100 ms, so that it never looks silent. Its receive buffer is small,
/// so a few MiB fill the path. Counts its connections.
async fn deaf_gateway() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener: TcpListener = socket.listen(16).unwrap();
    let port = listener.local_addr().unwrap().port();
    let connects = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connects.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                let challenge = json!({"type":"event","event":"connect.challenge","payload":{"nonce":"n-1","ts":now_ms()}});
                if ws.send(Message::text(challenge.to_string())).await.is_err() {
                    return;
                }
                let id = loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(t))) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap();
                            break v["id"].as_str().unwrap().to_string();
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    }
                };
                let hello = json!({"type":"res","id":id,"ok":true,"payload":{
                    "type":"hello-ok","protocol":4,
                    "server":{"version":"deaf","bootId":"b"},
                    "auth":{"method":"token","scopes":["operator.read","operator.write"]},
                    "policy":{"maxPayload":4194304u64,"tickIntervalMs":30000}}});
                if ws.send(Message::text(hello.to_string())).await.is_err() {
                    return;
                }
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                for seq in 0..600 {
                    let tick =
                        json!({"type":"event","event":"tick","payload":{"ts":now_ms()},"seq":seq});
                    if ws.send(Message::text(tick.to_string())).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    });
    (format!("http://127.0.0.1:{port}"), connects)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_stops_reading_is_given_up_and_requests_are_not_hoarded() {
    let (url, connects) = deaf_gateway().await;
    let client = WsClient::start(options(&url, Some("t")), None);
    let session = ready(&client).await;
    assert_eq!(session.backlog_limit(), 8 * 1024 * 1024);
    // A chat with images can be megabytes: more than the path to a deaf gateway holds.
    let pad = "A".repeat(3 * 1024 * 1024);
    let mut first = session.start("health", &json!({ "pad": pad })).unwrap();
    let _second = session.start("health", &json!({ "pad": pad })).unwrap();
    // The third would hold 9 MiB for a gateway that reads nothing: refused, nothing queued.
    let Err(third) = session.start("health", &json!({ "pad": pad })) else {
        panic!("a third 3 MiB request was queued for a gateway that reads nothing");
    };
    assert!(matches!(third, WsError::Backlog { .. }), "{third:?}");
    assert!(
        third
            .to_string()
            .starts_with("the gateway is not reading what this bridge sends ("),
        "{third}"
    );
    // The gateway keeps sending ticks, so it never looks silent; but it read nothing for the
    // 1 s of dead_after: the connection is given up, and the caller waiting for an answer hears
    // so at once instead of waiting for its own deadline.
    let stalled = Instant::now();
    let answer = first
        .next(tokio::time::Instant::now() + Duration::from_secs(30))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(answer, WsError::Disconnected(_)), "{answer:?}");
    assert!(
        stalled.elapsed() < Duration::from_secs(4),
        "given up after {:?}",
        stalled.elapsed()
    );
    assert!(session.is_closed());
    match down(&client).await {
        // Whichever sign comes first: the frame that gets no byte out, or the ping without pong.
        WsError::Disconnected(why) => assert!(
            why.contains("the gateway read nothing this bridge sent for")
                || why.contains("the gateway answered no ping for"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
    // It is reconnected to, and a small request fits the new connection's empty queue.
    let again = ready(&client).await;
    assert!(connects.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    assert!(again.start("health", &json!({})).is_ok());
}

/// A server that answers the upgrade, then sends `mib` MiB of one text frame instead of a
/// challenge.
async fn flooding_server(mib: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let config = WebSocketConfig::default()
                    .max_message_size(None)
                    .max_frame_size(None);
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                else {
                    return;
                };
                let flood = format!(
                    r#"{{"type":"event","event":"connect.challenge","payload":{{"nonce":"{}"}}}}"#,
                    "n".repeat(mib * 1024 * 1024)
                );
                let _ = ws.send(Message::text(flood)).await;
                let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_server_that_floods_before_hello_is_cut_off_at_one_mebibyte() {
    let url = flooding_server(8).await;
    let client = WsClient::start(options(&url, Some("t")), None);
    let error = down(&client).await;
    assert!(
        error
            .to_string()
            .contains("the server sent more than 1024 KiB before hello-ok"),
        "{error}"
    );
    // Not a failure only a person can fix: retried with the backoff.
    assert!(!error.needs_a_person());
}

fn turn(run_id: &str, session_key: &str, message: &str, adopt: bool, limit: Limit) -> Turn {
    Turn {
        run: RunRecord {
            run_id: run_id.into(),
            session_key: session_key.into(),
            agent_id: None,
            boot_id: Some("boot-1".into()),
            sent_at_ms: now_ms(),
        },
        message: message.into(),
        images: Vec::new(),
        adopt,
        sink: None,
        progress: None,
        cancel: CancellationToken::new(),
        limit,
    }
}

/// Waits until `run` ended on the fake gateway as `want`.
async fn until_ended(gw: &FakeWsGateway, run: &str, want: RunEnd, within: Duration) {
    let deadline = Instant::now() + within;
    while gw.run_end(run) != Some(want.clone()) {
        assert!(
            Instant::now() < deadline,
            "run {run} did not end as {want:?} within {within:?}: {:?}",
            gw.run_end(run)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn an_agent_wait_answered_at_once_is_asked_again_a_second_later_not_in_a_loop() {
    let gw = FakeWsGateway::start(Config {
        wait_at_once: true,
        ..Config::default()
    })
    .await;
    let client = WsClient::start(options(&gw.url, Some(gw.token())), None);
    let session = ready(&client).await;
    // Another client's run (or the bridge's own before a restart), 3 s long.
    let _other = session
        .start(
            "agent",
            &json!({"message": "[[drip:30:100]] long", "sessionKey": "w", "idempotencyKey": "run-w"}),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let reply = ops::run_turn(
        &client,
        turn(
            "run-w",
            "w",
            "[[drip:30:100]] long",
            true,
            Limit::Total(Duration::from_secs(20)),
        ),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(
        reply.content,
        (1..=30)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let waits = gw.requests("agent.wait").len();
    let most = took.as_secs() as usize + 2;
    assert!(
        (1..=most).contains(&waits),
        "{waits} agent.wait requests in {took:?} (at most one a second)"
    );
    assert_eq!(gw.starts("run-w"), 1);
}

#[tokio::test]
async fn a_cancel_while_the_connection_is_down_aborts_the_run_once_it_is_back() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let client = WsClient::start(options(&gw.url, Some(gw.token())), None);
    ready(&client).await;
    let t = turn(
        "run-c",
        "c",
        "[[drip:100:100]] long",
        false,
        Limit::Total(Duration::from_secs(60)),
    );
    let cancel = t.cancel.clone();
    let call = tokio::spawn({
        let client = client.clone();
        async move { ops::run_turn(&client, t).await }
    });
    while gw.starts("run-c") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The gateway becomes unreachable; the run goes on there.
    gw.refuse(true);
    gw.drop_connections();
    down(&client).await;
    let cancelled_at = Instant::now();
    cancel.cancel();
    let result = call.await.unwrap();
    assert!(matches!(result, Err(GatewayError::Cancelled)), "{result:?}");
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(500),
        "the caller waited {:?} for a connection",
        cancelled_at.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(gw.requests("chat.abort").is_empty());
    assert_eq!(gw.run_end("run-c"), None, "still running on the gateway");
    // Back: the abort goes out on the new connection and the run stops.
    gw.refuse(false);
    until_ended(&gw, "run-c", RunEnd::Aborted, Duration::from_secs(3)).await;
    assert_eq!(gw.requests("chat.abort")[0]["runId"], "run-c");
}

#[tokio::test]
async fn a_timeout_while_the_connection_is_down_aborts_the_run_once_it_is_back() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let client = WsClient::start(options(&gw.url, Some(gw.token())), None);
    ready(&client).await;
    let t = turn(
        "run-t",
        "t",
        "[[drip:100:100]] long",
        false,
        Limit::Total(Duration::from_millis(1500)),
    );
    let call = tokio::spawn({
        let client = client.clone();
        async move { ops::run_turn(&client, t).await }
    });
    while gw.starts("run-t") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    gw.refuse(true);
    gw.drop_connections();
    let result = call.await.unwrap();
    assert!(
        matches!(result, Err(GatewayError::Timeout(1500))),
        "{result:?}"
    );
    assert!(gw.requests("chat.abort").is_empty());
    gw.refuse(false);
    until_ended(&gw, "run-t", RunEnd::Aborted, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_cancel_while_the_run_is_looked_up_is_heard_at_once_and_aborts_it() {
    let gw = FakeWsGateway::start(Config {
        history_delay: Duration::from_secs(4),
        ..Config::default()
    })
    .await;
    let client = WsClient::start(options(&gw.url, Some(gw.token())), None);
    let session = ready(&client).await;
    let _running = session
        .start(
            "agent",
            &json!({"message": "[[drip:100:100]] long", "sessionKey": "l", "idempotencyKey": "run-l"}),
        )
        .unwrap();
    while gw.starts("run-l") == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A restarted bridge adopts the run: it looks it up first (the gateway takes 4 s to answer).
    let t = turn(
        "run-l",
        "l",
        "[[drip:100:100]] long",
        true,
        Limit::Total(Duration::from_secs(60)),
    );
    let cancel = t.cancel.clone();
    let call = tokio::spawn({
        let client = client.clone();
        async move { ops::run_turn(&client, t).await }
    });
    while gw.requests("chat.history").is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancelled_at = Instant::now();
    cancel.cancel();
    let result = call.await.unwrap();
    assert!(matches!(result, Err(GatewayError::Cancelled)), "{result:?}");
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(1),
        "the cancel waited {:?} for the lookup",
        cancelled_at.elapsed()
    );
    until_ended(&gw, "run-l", RunEnd::Aborted, Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_reads_nothing_is_dropped_by_its_unanswered_pings_even_while_idle() {
    let (url, connects) = deaf_gateway().await;
    let client = WsClient::start(options(&url, Some("t")), None);
    let session = ready(&client).await;
    // No request at all: nothing fills the buffers, the gateway keeps sending ticks; only the
    // pongs it never sends tell it is not reading.
    let started = Instant::now();
    session.closed().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "given up after {:?}",
        started.elapsed()
    );
    match down(&client).await {
        WsError::Disconnected(why) => {
            assert!(why.contains("the gateway answered no ping for"), "{why}")
        }
        other => panic!("{other:?}"),
    }
    ready(&client).await;
    assert!(connects.load(std::sync::atomic::Ordering::SeqCst) >= 2);
}
