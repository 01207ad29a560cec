//! The WebSocket backend against a protocol-level fake gateway (`tests/wsgw`): the handshake
//! (token, device signature, pairing, wrong version), streamed answers with other runs' events
//! interleaved, busy-session serialisation, two sessions in parallel, abort (task cancel and
//! timeout, and a sync call cancelled by its MCP client), reconnect and adoption of the run in
//! flight, a gateway restart, ping timeouts, frames over the gateway's limit, a rotated token and a
//! removed device (a clear status, retried slowly), images for a text-only model (dropped, as over
//! HTTP), and `auto` choosing the WebSocket (and saying so).

#![allow(clippy::unwrap_used)]

mod common;
mod wsgw;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{bridge::InProcess, call, is_error, json_of, text};
use openclaw_mcp::config::Api;
use openclaw_mcp::gateway::backend::{WsSide, describe};
use openclaw_mcp::gateway::ws::{
    AuthUsed, Options, Phase, WsClient, WsError, conn::Endpoint, identity::DeviceIdentity,
};
use serde_json::json;
use wsgw::{Config, FakeWsGateway, RunEnd};

fn options(gw: &FakeWsGateway, token: Option<&str>) -> Options {
    let mut o = Options::new(
        Endpoint::from_base_url(&gw.url).unwrap(),
        token.map(str::to_string),
    );
    o.ping_every = Duration::from_millis(100);
    o.dead_after = Duration::from_millis(600);
    o.first_backoff = Duration::from_millis(50);
    o.max_backoff = Duration::from_millis(200);
    o.person_retry = Duration::from_millis(200);
    o
}

/// The phase once it is no longer `Connecting`, or a matching one within `within`.
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

fn identity(dir: &std::path::Path) -> Arc<Mutex<DeviceIdentity>> {
    Arc::new(Mutex::new(
        DeviceIdentity::load_or_create(Some(dir), "default").unwrap(),
    ))
}

#[tokio::test]
async fn the_token_and_a_signed_device_connect_and_a_wrong_token_is_a_clear_error() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = WsClient::start(options(&gw, Some(gw.token())), Some(identity(dir.path())));
    let Phase::Ready(session) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(session.hello.protocol, 4);
    assert!(session.hello.can_work());
    // On loopback the signed device is not paired: the token alone counts.
    assert_eq!(session.auth, AuthUsed::Token);
    let (_, reason) = describe(Api::Auto, &side(&client));
    assert!(
        reason.contains("auth: the gateway token, scopes"),
        "{reason}"
    );
    // The fake checked the Ed25519 signature of the v3 payload over its nonce.
    assert_eq!(gw.devices_seen().len(), 1);
    assert!(
        gw.origins().is_empty(),
        "an Origin header strips every scope"
    );
    let connect = &gw.requests("connect")[0];
    assert_eq!(connect["client"]["id"], "gateway-client");
    assert_eq!(connect["minProtocol"], 4);

    let wrong = WsClient::start(options(&gw, Some("not-the-token-at-all")), None);
    let Phase::Down(e) = phase_where(&wrong, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(_))
    })
    .await
    else {
        unreachable!()
    };
    assert!(matches!(e, WsError::Auth(_)), "{e:?}");
    assert!(e.needs_a_person());
    assert!(!e.to_string().contains("not-the-token-at-all"));
}

#[tokio::test]
async fn another_protocol_version_is_one_error_naming_both() {
    let gw = FakeWsGateway::start(Config {
        protocol: 5,
        ..Config::default()
    })
    .await;
    let client = WsClient::start(options(&gw, Some(gw.token())), None);
    let Phase::Down(e) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(
        e.to_string(),
        "protocol mismatch: this bridge speaks OpenClaw gateway protocol 4, the gateway expects 5"
    );
}

#[tokio::test]
async fn pairing_is_required_then_approved_and_the_device_token_is_kept_private() {
    let gw = FakeWsGateway::start(Config {
        require_pairing: true,
        ..Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path());
    let client = WsClient::start(options(&gw, Some(gw.token())), Some(id.clone()));
    let Phase::Down(e) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(_))
    })
    .await
    else {
        unreachable!()
    };
    let pending = gw.pending_pairing();
    assert_eq!(pending.len(), 1);
    assert!(
        e.to_string()
            .contains(&format!("`openclaw devices approve {}`", pending[0])),
        "{e}"
    );
    gw.approve(&pending[0]);
    client.reconnect_now();
    let Phase::Ready(session) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await
    else {
        unreachable!()
    };
    let token = session.hello.device_token.clone().unwrap();
    assert_eq!(session.auth, AuthUsed::TokenAndDevice);
    let (api, reason) = describe(Api::Auto, &side(&client));
    assert_eq!(api, "ws");
    assert!(
        reason.contains("auth: the gateway token and the paired device, scopes"),
        "{reason}"
    );
    let file = openclaw_mcp::gateway::ws::identity::identity_path(dir.path(), "default");
    let stored = std::fs::read_to_string(&file).unwrap();
    assert!(stored.contains(&token), "the device token is stored");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // A restart of the bridge connects with the stored device token alone.
    let again = WsClient::start(options(&gw, None), Some(identity(dir.path())));
    let Phase::Ready(session) = phase_where(&again, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await
    else {
        unreachable!()
    };
    assert_eq!(session.auth, AuthUsed::Device);
    let (_, reason) = describe(Api::Ws, &side(&again));
    assert!(
        reason.contains("auth: the paired device, scopes"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_silent_gateway_is_detected_by_the_bridges_pings_and_reconnected() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let client = WsClient::start(options(&gw, Some(gw.token())), None);
    let Phase::Ready(first) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await
    else {
        unreachable!()
    };
    gw.go_silent(true);
    let started = Instant::now();
    let Phase::Down(e) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(_))
    })
    .await
    else {
        unreachable!()
    };
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("not even a pong"), "{e}");
    gw.go_silent(false);
    gw.drop_connections();
    let Phase::Ready(second) = phase_where(
        &client,
        Duration::from_secs(5),
        |p| matches!(p, Phase::Ready(s) if s.generation > 1),
    )
    .await
    else {
        unreachable!()
    };
    assert!(second.generation > first.generation);
}

fn app_env(gw: &FakeWsGateway, timeout_ms: &str) -> Vec<(String, String)> {
    vec![
        ("OPENCLAW_URL".into(), gw.url.clone()),
        ("OPENCLAW_GATEWAY_TOKEN".into(), gw.token().into()),
        ("OPENCLAW_TIMEOUT_MS".into(), timeout_ms.into()),
    ]
}

async fn app(gw: &FakeWsGateway, timeout_ms: &str, extra: &[(&str, &str)]) -> InProcess {
    let env = app_env(gw, timeout_ms);
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    pairs.extend_from_slice(extra);
    InProcess::start(&common::bridge::settings(&[], &pairs)).await
}

#[actix_rt::test]
async fn auto_uses_the_websocket_for_every_tool_and_says_so() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "10000", &[]).await;
    let status = json_of(
        &app.client
            .call_tool(call("openclaw_status", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(status["status"], "ok", "{status}");
    assert_eq!(status["api"], "ws", "{status}");
    let reason = status["api_reason"].as_str().unwrap();
    assert!(reason.starts_with("auto: WebSocket connected"), "{reason}");
    assert!(
        reason.contains("auth: the gateway token, scopes"),
        "{reason}"
    );
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("auth: the gateway token, scopes"),
        "{status}"
    );

    let reply = app
        .client
        .call_tool(call("openclaw_chat", json!({"message": "hi"})))
        .await
        .unwrap();
    assert_eq!(text(&reply), "echo: hi");
    // Without session_id: a fresh session of its own, never the agent's main session.
    let sent = gw.requests("agent");
    let key = sent[0]["sessionKey"].as_str().unwrap();
    assert!(key.starts_with("mcp-run-"), "{key}");
    assert_eq!(sent[0]["idempotencyKey"].as_str().unwrap(), &key[8..]);

    let reply = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "again", "session_id": "s-1"}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&reply), "echo: again");
    assert_eq!(gw.requests("agent")[1]["sessionKey"], "s-1");

    // `/new` would reset the session over `agent`; it goes as text, as over HTTP.
    let reply = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "/new", "session_id": "s-1"}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&reply), "echo: \u{200B}/new");

    let agents = json_of(
        &app.client
            .call_tool(call("openclaw_agents", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(agents["agents"][1]["id"], "ops", "{agents}");
    // Sessions and history go to HTTP `/tools/invoke` whatever the API, where the gateway's
    // session policy applies (this fake speaks only the WebSocket, so they fail here); never as
    // operator reads over the WebSocket, which no session policy limits.
    let history_before = gw.requests("chat.history").len();
    for (tool, args) in [
        (
            "openclaw_session_history",
            json!({"session_key": "agent:main:main"}),
        ),
        ("openclaw_session_history", json!({"session_id": "s-1"})),
        ("openclaw_sessions", json!({})),
    ] {
        let reply = app.client.call_tool(call(tool, args)).await.unwrap();
        assert!(is_error(&reply), "{tool}: {}", text(&reply));
    }
    assert_eq!(
        gw.requests("chat.history").len(),
        history_before,
        "an MCP caller's history read went to the WebSocket as an operator read"
    );
    assert!(gw.requests("sessions.list").is_empty());
}

#[actix_rt::test]
async fn the_refuse_switch_refuses_gateway_commands_before_sending() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "10000", &[("OPENCLAW_GATEWAY_COMMANDS", "refuse")]).await;
    let refused = app
        .client
        .call_tool(call("openclaw_chat", json!({"message": "/status"})))
        .await
        .unwrap();
    assert!(is_error(&refused));
    assert!(
        text(&refused).contains("gateway commands"),
        "{}",
        text(&refused)
    );
    let queued = app
        .client
        .call_tool(call("openclaw_chat_async", json!({"message": " /reset"})))
        .await
        .unwrap();
    assert!(is_error(&queued));
    assert!(gw.requests("agent").is_empty());
}

/// The gateway's reserved session namespaces (sub-agents, cron jobs, ACP) are refused by the
/// bridge before sending, as the HTTP API refuses them: over the WebSocket the gateway would take
/// them, so a caller could write into sessions it cannot reach over HTTP. A caller's own session
/// works meanwhile.
#[actix_rt::test]
async fn reserved_session_namespaces_are_refused_before_sending() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "10000", &[]).await;
    for key in [
        "cron:nightly",
        "subagent:victim",
        "acp:x",
        "agent:main:subagent:victim",
        "Agent:ops:CRON:job",
    ] {
        for tool in ["openclaw_chat", "openclaw_chat_async"] {
            let reply = app
                .client
                .call_tool(call(tool, json!({"message": "hi", "session_id": key})))
                .await
                .unwrap();
            assert!(is_error(&reply), "{tool} {key}: {}", text(&reply));
            assert!(
                text(&reply).contains("reserved internal session namespaces"),
                "{tool} {key}: {}",
                text(&reply)
            );
        }
    }
    assert!(gw.requests("agent").is_empty(), "something was sent");
    let own = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "hi", "session_id": "my-cron:notes"}),
        ))
        .await
        .unwrap();
    assert!(!is_error(&own), "{}", text(&own));
    let sent: Vec<String> = gw
        .requests("agent")
        .iter()
        .filter_map(|p| p["sessionKey"].as_str().map(str::to_string))
        .collect();
    assert_eq!(sent, ["my-cron:notes"]);
}

#[actix_rt::test]
async fn parallel_and_busy_sessions_each_get_their_own_answer_among_foreign_events() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "20000", &[]).await;
    let ask = |message: &str, session: &str| {
        app.client.call_tool(call(
            "openclaw_chat",
            json!({"message": message, "session_id": session}),
        ))
    };
    let started = Instant::now();
    // Two sessions in parallel, and a second message into a busy session.
    let (a, b, c) = tokio::join!(
        ask("[[drip:6:100]] a", "one"),
        ask("[[drip:6:100]] b", "two"),
        ask("second into one", "one"),
    );
    assert_eq!(text(&a.unwrap()), "w1 w2 w3 w4 w5 w6");
    assert_eq!(text(&b.unwrap()), "w1 w2 w3 w4 w5 w6");
    assert_eq!(text(&c.unwrap()), "echo: second into one");
    // The two sessions ran side by side (6 × 100 ms each), not one after the other.
    assert!(
        started.elapsed() < Duration::from_millis(1150),
        "{:?}",
        started.elapsed()
    );
}

async fn task_status(app: &InProcess, id: &str) -> serde_json::Value {
    json_of(
        &app.client
            .call_tool(call("openclaw_task_status", json!({"task_id": id})))
            .await
            .unwrap(),
    )
}

async fn until_status(
    app: &InProcess,
    id: &str,
    want: &str,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        let s = task_status(app, id).await;
        if s["status"] == want {
            return s;
        }
        assert!(Instant::now() < deadline, "task never {want}: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_rt::test]
async fn cancelling_a_running_task_and_a_timeout_abort_the_run_on_the_gateway() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "700", &[]).await;
    let queued = json_of(
        &app.client
            .call_tool(call(
                "openclaw_chat_async",
                json!({"message": "[[drip:50:100]] long"}),
            ))
            .await
            .unwrap(),
    );
    let id = queued["task_id"].as_str().unwrap().to_string();
    let running = until_status(&app, &id, "running", Duration::from_secs(5)).await;
    // Streamed text drives the task's progress.
    let deadline = Instant::now() + Duration::from_secs(5);
    while task_status(&app, &id).await["progress_chars"]
        .as_u64()
        .unwrap_or(0)
        == 0
    {
        assert!(Instant::now() < deadline, "no progress: {running}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = gw.requests("agent")[0]["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_string();
    let cancelled_at = Instant::now();
    app.client
        .call_tool(call("openclaw_task_cancel", json!({"task_id": id})))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(1);
    while gw.run_end(&run) != Some(RunEnd::Aborted) {
        assert!(Instant::now() < deadline, "not aborted within 1 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(cancelled_at.elapsed() < Duration::from_secs(1));
    assert_eq!(gw.requests("chat.abort")[0]["runId"], run);

    // A call that hears nothing of its run for the instance timeout (700 ms) aborts it too.
    let timed_out = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "[[drip:5:1500]] slow"}),
        ))
        .await
        .unwrap();
    assert!(is_error(&timed_out), "{}", text(&timed_out));
    assert!(text(&timed_out).contains("700ms"), "{}", text(&timed_out));
    let run = gw.requests("agent")[1]["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_string();
    let deadline = Instant::now() + Duration::from_secs(1);
    while gw.run_end(&run) != Some(RunEnd::Aborted) {
        assert!(Instant::now() < deadline, "timed-out run not aborted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_rt::test]
async fn a_lost_connection_is_a_slower_answer_and_the_run_is_adopted_never_sent_twice() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "20000", &[]).await;
    let gw2 = gw.clone();
    let dropper = tokio::spawn(async move {
        // Mid-run, twice.
        tokio::time::sleep(Duration::from_millis(500)).await;
        gw2.drop_connections();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        gw2.drop_connections();
    });
    let reply = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "[[drip:30:100]] go"}),
        ))
        .await
        .unwrap();
    dropper.await.unwrap();
    assert!(!is_error(&reply), "{}", text(&reply));
    assert_eq!(
        text(&reply),
        (1..=30)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let run = gw.requests("agent")[0]["idempotencyKey"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(gw.starts(&run), 1, "the prompt ran once");
    assert!(
        !gw.requests("chat.history").is_empty(),
        "the run was looked up again"
    );
}

#[actix_rt::test]
async fn a_gateway_restart_ends_the_call_with_an_error_saying_so() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "20000", &[]).await;
    let gw2 = gw.clone();
    let restarter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(400)).await;
        gw2.restart();
    });
    let reply = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "[[drip:30:100]] go"}),
        ))
        .await
        .unwrap();
    restarter.await.unwrap();
    assert!(is_error(&reply));
    assert!(
        text(&reply).contains("gateway restarted"),
        "{}",
        text(&reply)
    );
}

#[actix_rt::test]
async fn a_frame_over_the_gateways_limit_is_refused_before_sending() {
    let gw = FakeWsGateway::start(Config {
        max_payload: 4096,
        ..Config::default()
    })
    .await;
    let app = app(&gw, "10000", &[]).await;
    let reply = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "x".repeat(10_000)}),
        ))
        .await
        .unwrap();
    assert!(is_error(&reply));
    assert!(
        text(&reply).contains("over the gateway's limit of 4096 bytes"),
        "{}",
        text(&reply)
    );
    assert!(gw.requests("agent").is_empty());
}

#[actix_rt::test]
async fn a_sync_chat_cancelled_by_its_mcp_client_aborts_its_run_and_other_calls_go_on() {
    use rmcp::model::{CallToolRequest, ClientRequest};
    use rmcp::service::PeerRequestOptions;

    let gw = FakeWsGateway::start(Config::default()).await;
    let app = app(&gw, "20000", &[]).await;
    // A long call, and beside it another one of the same client that must finish normally.
    let handle = app
        .client
        .send_cancellable_request(
            ClientRequest::CallToolRequest(CallToolRequest::new(call(
                "openclaw_chat",
                json!({"message": "[[drip:50:100]] to cancel"}),
            ))),
            PeerRequestOptions::no_options(),
        )
        .await
        .unwrap();
    let other = app.client.call_tool(call(
        "openclaw_chat",
        json!({"message": "[[drip:8:100]] other", "session_id": "beside"}),
    ));
    let cancel = async {
        // Once the run streams on the gateway, the client sends notifications/cancelled.
        let deadline = Instant::now() + Duration::from_secs(5);
        let run = loop {
            let runs: Vec<String> = gw
                .requests("agent")
                .iter()
                .filter(|p| p["message"].as_str().unwrap_or("").contains("to cancel"))
                .map(|p| p["idempotencyKey"].as_str().unwrap().to_string())
                .collect();
            if let Some(run) = runs.first() {
                break run.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the call never reached the gateway"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        let cancelled_at = Instant::now();
        handle
            .cancel(Some("the user stopped it".into()))
            .await
            .unwrap();
        let deadline = cancelled_at + Duration::from_secs(1);
        loop {
            let aborts = gw.requests("chat.abort");
            if aborts.iter().any(|a| a["runId"] == run.as_str()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no chat.abort for run {run} within 1 s of the cancellation: {aborts:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let elapsed = cancelled_at.elapsed();
        let deadline = Instant::now() + Duration::from_secs(1);
        while gw.run_end(&run) != Some(RunEnd::Aborted) {
            assert!(Instant::now() < deadline, "the run was not stopped");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (run, elapsed)
    };
    let (other, (run, elapsed)) = tokio::join!(other, cancel);
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let other = other.unwrap();
    assert!(!is_error(&other), "{}", text(&other));
    assert_eq!(text(&other), "w1 w2 w3 w4 w5 w6 w7 w8");
    // Only the cancelled run was aborted, and the client still works afterwards.
    let aborts = gw.requests("chat.abort");
    assert!(
        aborts.iter().all(|a| a["runId"] == run.as_str()),
        "{aborts:?}"
    );
    let after = app
        .client
        .call_tool(call("openclaw_chat", json!({"message": "after"})))
        .await
        .unwrap();
    assert_eq!(text(&after), "echo: after");
}

/// Connect requests the fake received since `from`, over `window`.
async fn connects_during(gw: &FakeWsGateway, window: Duration) -> usize {
    let before = gw.requests("connect").len();
    tokio::time::sleep(window).await;
    gw.requests("connect").len() - before
}

fn side(client: &WsClient) -> WsSide {
    WsSide {
        client: Some(client.clone()),
        identity_error: None,
    }
}

#[tokio::test]
async fn a_rotated_token_is_a_clear_status_retried_slowly_never_in_a_loop() {
    let gw = FakeWsGateway::start(Config::default()).await;
    let client = WsClient::start(options(&gw, Some(gw.token())), None);
    phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await;
    // The owner changes the token: the gateway closes with 4001, and the old token is refused.
    gw.rotate_token("the-new-gateway-token-0123456789");
    let Phase::Down(e) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(WsError::Auth(_)))
    })
    .await
    else {
        unreachable!()
    };
    assert!(e.needs_a_person());
    let (api, reason) = describe(Api::Auto, &side(&client));
    assert_eq!(api, "http", "{reason}");
    assert!(
        reason.starts_with("auto: WebSocket unavailable, using HTTP: the gateway refused this bridge's credentials: unauthorized: gateway token mismatch"),
        "{reason}"
    );
    assert!(
        reason.contains("not the gateway's current one (was it changed on the gateway?)"),
        "{reason}"
    );
    let (api, reason) = describe(Api::Ws, &side(&client));
    assert_eq!(api, "ws");
    assert!(
        reason.starts_with("api = ws: the gateway refused"),
        "{reason}"
    );
    for secret in [gw.token(), "the-new-gateway-token-0123456789"] {
        assert!(!reason.contains(secret));
    }
    // Retried at the person-retry cadence (200 ms here, 60 s in production), not in a loop.
    let n = connects_during(&gw, Duration::from_millis(1000)).await;
    assert!(
        (2..=7).contains(&n),
        "{n} connects in 1 s at a 200 ms cadence"
    );
    assert!(matches!(client.phase(), Phase::Down(WsError::Auth(_))));
    assert_eq!(
        Options::new(Endpoint::from_base_url(&gw.url).unwrap(), None).person_retry,
        Duration::from_secs(60)
    );
}

#[tokio::test]
async fn a_removed_device_asks_for_pairing_again_and_is_retried_slowly() {
    let gw = FakeWsGateway::start(Config {
        require_pairing: true,
        ..Config::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let me = identity(dir.path());
    let client = WsClient::start(options(&gw, Some(gw.token())), Some(me.clone()));
    phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(WsError::PairingRequired { .. }))
    })
    .await;
    let first = gw.pending_pairing()[0].clone();
    gw.approve(&first);
    client.reconnect_now();
    phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await;
    let ws_url = Endpoint::from_base_url(&gw.url).unwrap().url;
    let file = openclaw_mcp::gateway::ws::identity::identity_path(dir.path(), "default");
    assert!(me.lock().unwrap().device_token(&ws_url).is_some());
    assert!(std::fs::read_to_string(&file).unwrap().contains("devtok-"));
    let device = gw.devices_seen()[0].clone();
    gw.remove_device(&device);
    let Phase::Down(e) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Down(WsError::PairingRequired { .. }))
    })
    .await
    else {
        unreachable!()
    };
    let again = gw.pending_pairing();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0], first, "a new request");
    // The revoked device token is forgotten, in memory and on disk; the key stays.
    assert_eq!(me.lock().unwrap().device_token(&ws_url), None);
    let kept = std::fs::read_to_string(&file).unwrap();
    assert!(
        !kept.contains("devtok-") && kept.contains("privateKey"),
        "{kept}"
    );
    assert_eq!(me.lock().unwrap().id(), device);
    let (api, reason) = describe(Api::Auto, &side(&client));
    assert_eq!(api, "http", "{reason}");
    assert!(
        reason.contains(&format!("pairing required: this bridge's device is not approved by the gateway yet; its owner approves it with `openclaw devices approve {}`", again[0])),
        "{reason} / {e}"
    );
    let n = connects_during(&gw, Duration::from_millis(1000)).await;
    assert!(
        (2..=7).contains(&n),
        "{n} connects in 1 s at a 200 ms cadence"
    );
}

#[actix_rt::test]
async fn images_for_a_text_only_model_are_dropped_as_over_http_and_reach_one_that_takes_them() {
    const PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    // A model that takes images gets them as attachments.
    let gw = FakeWsGateway::start(Config::default()).await;
    let first = app(&gw, "10000", &[]).await;
    let reply = first
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "look", "images": [PNG]}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&reply), "echo: look");
    let sent = gw.requests("agent");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["attachments"][0]["mimeType"], "image/png");

    // A text-only model: the gateway refuses the attachments; the bridge sends the text alone
    // under the same run id, as the HTTP API (which drops them) would answer.
    let gw = FakeWsGateway::start(Config {
        text_only: true,
        ..Config::default()
    })
    .await;
    let app = app(&gw, "10000", &[]).await;
    for tool in ["openclaw_chat", "openclaw_chat_async"] {
        let before = gw.requests("agent").len();
        let reply = app
            .client
            .call_tool(call(
                tool,
                json!({"message": "look again", "images": [PNG, PNG]}),
            ))
            .await
            .unwrap();
        assert!(!is_error(&reply), "{}", text(&reply));
        let answer = if tool == "openclaw_chat" {
            text(&reply)
        } else {
            let id = json_of(&reply)["task_id"].as_str().unwrap().to_string();
            let done = until_status(&app, &id, "completed", Duration::from_secs(5)).await;
            done["result"].as_str().unwrap().to_string()
        };
        assert_eq!(answer, "echo: look again", "{tool}");
        let sent = &gw.requests("agent")[before..];
        assert_eq!(sent.len(), 2, "{tool}: {sent:?}");
        assert_eq!(sent[0]["attachments"].as_array().unwrap().len(), 2);
        assert!(sent[1].get("attachments").is_none(), "{:?}", sent[1]);
        assert_eq!(sent[0]["idempotencyKey"], sent[1]["idempotencyKey"]);
        assert_eq!(
            gw.starts(sent[1]["idempotencyKey"].as_str().unwrap()),
            1,
            "one run"
        );
    }
}

#[tokio::test]
async fn a_run_queued_behind_another_is_adopted_even_outside_the_deduplication_window() {
    use openclaw_mcp::gateway::ws::ops::{self, Limit, RunRecord, Turn};

    let gw = FakeWsGateway::start(Config::default()).await;
    let client = WsClient::start(options(&gw, Some(gw.token())), None);
    let Phase::Ready(session) = phase_where(&client, Duration::from_secs(5), |p| {
        matches!(p, Phase::Ready(_))
    })
    .await
    else {
        unreachable!()
    };
    // Another client keeps the session busy; the bridge's run waits in its queue.
    let _a = session
        .start(
            "agent",
            &json!({"message": "[[drip:15:100]] first", "sessionKey": "q", "idempotencyKey": "run-a"}),
        )
        .unwrap();
    let _b = session
        .start(
            "agent",
            &json!({"message": "queued", "sessionKey": "q", "idempotencyKey": "run-b"}),
        )
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(gw.starts("run-b"), 0, "still queued");
    // A restarted bridge adopts run-b, sent 10 minutes ago (beyond the 4-minute window): its
    // prompt is in no transcript yet, but the history's pendingInputs lists it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let reply = ops::run_turn(
        &client,
        Turn {
            run: RunRecord {
                run_id: "run-b".into(),
                session_key: "q".into(),
                agent_id: None,
                boot_id: Some("boot-1".into()),
                sent_at_ms: now - 10 * 60 * 1000,
            },
            message: "queued".into(),
            images: Vec::new(),
            adopt: true,
            sink: None,
            progress: None,
            cancel: tokio_util::sync::CancellationToken::new(),
            limit: Limit::Total(Duration::from_secs(10)),
        },
    )
    .await
    .unwrap();
    assert_eq!(reply.content, "echo: queued");
    assert_eq!(gw.starts("run-b"), 1, "run once, never sent again");
    assert_eq!(gw.requests("agent").len(), 2);
    // A run without any trace outside the window is still failed as interrupted, not resent.
    let lost = ops::run_turn(
        &client,
        Turn {
            run: RunRecord {
                run_id: "run-nowhere".into(),
                session_key: "q".into(),
                agent_id: None,
                boot_id: Some("boot-1".into()),
                sent_at_ms: now - 10 * 60 * 1000,
            },
            message: "lost".into(),
            images: Vec::new(),
            adopt: true,
            sink: None,
            progress: None,
            cancel: tokio_util::sync::CancellationToken::new(),
            limit: Limit::Total(Duration::from_secs(10)),
        },
    )
    .await
    .unwrap_err();
    assert!(
        lost.to_string().contains("no trace of run run-nowhere"),
        "{lost}"
    );
    assert_eq!(gw.requests("agent").len(), 2);
}
