//! Gateway actors under supervision, seen through the MCP client: a panicking handler is caught,
//! answered and restarted (and counted); health recovers by itself when a gateway comes back; a
//! hanging gateway never holds up another one.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    FakeGateway,
    bridge::{InProcess, settings},
    call, is_error, json_of, text,
};
use openclaw_mcp::gateway::actor::{FaultPoint, InjectPanic};
use serde_json::json;

async fn restarts_after(point: FaultPoint) {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &[("OPENCLAW_URL", gw.url.as_str())])).await;
    let chat = || call("openclaw_chat", json!({"message": "hi"}));
    assert_eq!(
        text(&app.client.call_tool(chat()).await.unwrap()),
        "echo: hi"
    );

    app.registry
        .default_instance()
        .addr
        .send(InjectPanic(point))
        .await
        .unwrap();
    let failed = app.client.call_tool(chat()).await.unwrap();
    assert!(is_error(&failed));
    assert_eq!(
        text(&failed),
        "Error: The handler for instance \"default\" failed unexpectedly and was restarted; please retry"
    );

    let again = app.client.call_tool(chat()).await.unwrap();
    assert!(!is_error(&again), "{}", text(&again));
    assert_eq!(text(&again), "echo: hi");

    let status = json_of(
        &app.client
            .call_tool(call("openclaw_status", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(status["restarts"], 1);
    assert_eq!(status["status"], "ok");
    let instances = json_of(
        &app.client
            .call_tool(call("openclaw_instances", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(instances["instances"][0]["health"]["restarts"], 1);
}

#[actix_rt::test]
async fn a_panic_in_the_handler_restarts_the_actor_and_the_next_call_works() {
    restarts_after(FaultPoint::Handler).await;
}

#[actix_rt::test]
async fn a_panic_in_a_request_restarts_the_actor_and_the_next_call_works() {
    restarts_after(FaultPoint::Request).await;
}

#[actix_rt::test]
async fn health_flips_back_when_the_gateway_returns() {
    let gw = FakeGateway::start();
    let port = gw.port;
    let app = InProcess::start(&settings(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_HEALTH_INTERVAL_MS", "200"),
        ],
    ))
    .await;
    let health = || async {
        json_of(
            &app.client
                .call_tool(call("openclaw_instances", json!({})))
                .await
                .unwrap(),
        )["instances"][0]["health"]
            .clone()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while health().await["status"] != "ok" {
        assert!(Instant::now() < deadline, "first probe finds the gateway");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    gw.stop().await;
    while health().await["status"] != "error" {
        assert!(Instant::now() < deadline, "a dead gateway is noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let down = health().await;
    assert!(
        down["message"]
            .as_str()
            .unwrap()
            .contains("connection refused"),
        "{down}"
    );
    assert!(down["consecutive_failures"].as_u64().unwrap() >= 1);

    let _back = FakeGateway::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while health().await["status"] != "ok" {
        assert!(
            Instant::now() < deadline,
            "recovery is noticed without a restart"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let up = health().await;
    assert_eq!(up["consecutive_failures"], 0);
    assert_eq!(up["restarts"], 0);
    assert!(
        up["last_error"]
            .as_str()
            .unwrap()
            .contains("connection refused")
    );
    let chat = app
        .client
        .call_tool(call("openclaw_chat", json!({"message": "back"})))
        .await
        .unwrap();
    assert_eq!(text(&chat), "echo: back");
}

#[actix_rt::test]
async fn a_hanging_gateway_does_not_hold_up_another() {
    let slow = FakeGateway::start();
    let fast = FakeGateway::start();
    let instances = json!([
        {"name": "slow", "url": slow.url, "timeout": 3000},
        {"name": "fast", "url": fast.url}
    ])
    .to_string();
    let app = InProcess::start(&settings(
        &[],
        &[("OPENCLAW_INSTANCES", instances.as_str())],
    ))
    .await;
    let peer = app.client.peer().clone();
    let hung = tokio::spawn(async move {
        peer.call_tool(call(
            "openclaw_chat",
            json!({"message": "[[hang]]", "instance": "slow"}),
        ))
        .await
        .unwrap()
    });
    for i in 0..5 {
        let r = app
            .client
            .call_tool(call(
                "openclaw_chat",
                json!({"message": format!("quick {i}"), "instance": "fast"}),
            ))
            .await
            .unwrap();
        assert_eq!(text(&r), format!("echo: quick {i}"));
    }
    assert!(
        !hung.is_finished(),
        "fast answers are not queued behind the hang"
    );
    let hung = hung.await.unwrap();
    assert_eq!(
        text(&hung),
        "Error: Request to OpenClaw timed out after 3000ms"
    );
}
