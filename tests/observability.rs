//! What an operator sees: Prometheus metrics on `/metrics` (opt-in) and a request id on every
//! HTTP response and log line.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    FakeGateway, call,
    http::{HttpBridge, get},
    text,
};
use serde_json::json;

#[actix_rt::test]
async fn metrics_count_tool_calls_gateway_latency_health_and_auth_failures() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(
        &["--metrics"],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_HEALTH_INTERVAL_MS", "200"),
        ],
    )
    .await;
    let client = bridge.legacy_client().await;
    assert_eq!(
        text(
            &client
                .call_tool(call("openclaw_chat", json!({"message": "count me"})))
                .await
                .unwrap()
        ),
        "echo: count me"
    );
    let _ = client
        .call_tool(call("openclaw_chat", json!({"message": ""})))
        .await
        .unwrap();
    let (status, headers, body) = get(&bridge.url("/metrics"), &[]).await;
    assert_eq!(status, 200);
    assert!(
        headers
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let body = String::from_utf8_lossy(&body);
    for expected in [
        "openclaw_mcp_tool_calls_total{tool=\"openclaw_chat\",outcome=\"ok\"} 1",
        "openclaw_mcp_tool_calls_total{tool=\"openclaw_chat\",outcome=\"error\"} 1",
        "openclaw_mcp_gateway_request_duration_seconds_count{instance=\"default\"} 1",
        "openclaw_mcp_gateway_actor_restarts_total{instance=\"default\"} 0",
        "openclaw_mcp_tasks_queued 0",
        "openclaw_mcp_sessions{transport=\"streamable_http\"} 1",
    ] {
        assert!(body.contains(expected), "missing {expected} in:\n{body}");
    }
    assert!(body.contains("openclaw_mcp_gateway_up{instance=\"default\"}"));
    assert!(!body.contains(&gw.url), "no URLs in metrics");
}

#[actix_rt::test]
async fn metrics_are_off_unless_asked_for() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    let (status, _, _) = get(&bridge.url("/metrics"), &[]).await;
    assert_eq!(status, 404);
}

#[actix_rt::test]
async fn auth_failures_are_counted_by_reason() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(
        &["--metrics"],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("AUTH_ENABLED", "true"),
            ("MCP_CLIENT_ID", "openclaw"),
            ("MCP_CLIENT_SECRET", "0123456789abcdef0123456789abcdef"),
        ],
    )
    .await;
    let _ = get(&bridge.url("/sse"), &[]).await;
    let _ = get(&bridge.url("/sse"), &[("Authorization", "Bearer nope")]).await;
    let (_, _, body) = get(&bridge.url("/metrics"), &[]).await;
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.contains("openclaw_mcp_auth_failures_total{reason=\"missing\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("openclaw_mcp_auth_failures_total{reason=\"invalid\"} 1"),
        "{body}"
    );
}

#[actix_rt::test]
async fn every_response_carries_a_request_id_that_the_logs_repeat() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_MCP_LOG", "debug"),
        ],
    )
    .await;
    let (_, headers, _) = get(&bridge.url("/health"), &[]).await;
    let generated = headers
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(generated.len(), 16);
    let (_, headers, _) = get(&bridge.url("/health"), &[("X-Request-Id", "trace-abc.123")]).await;
    assert_eq!(headers.get("x-request-id").unwrap(), "trace-abc.123");
    let (_, headers, _) = get(
        &bridge.url("/health"),
        &[("X-Request-Id", "bad id with spaces")],
    )
    .await;
    assert_ne!(headers.get("x-request-id").unwrap(), "bad id with spaces");
    common::eventually("the request id in the logs", || {
        bridge.logs().contains("trace-abc.123")
    })
    .await;
}

#[actix_rt::test]
async fn the_healthcheck_command_tells_a_healthy_bridge_from_a_dead_one() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    let check = |url: String| async move {
        tokio::process::Command::new(common::bridge::binary())
            .env_clear()
            .args(["healthcheck", "--url", &url])
            .output()
            .await
            .unwrap()
    };
    let ok = check(bridge.url("/health")).await;
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let dead = check(format!("{}/health", common::refused_url())).await;
    assert_eq!(dead.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dead.stderr).starts_with("openclaw-mcp healthcheck:"));
    let wrong = check(bridge.url("/nope")).await;
    assert_eq!(wrong.status.code(), Some(1));
    // The default URL comes from PORT, as in the container.
    let by_port = tokio::process::Command::new(common::bridge::binary())
        .env_clear()
        .env("PORT", bridge.port.to_string())
        .arg("healthcheck")
        .output()
        .await
        .unwrap();
    assert_eq!(by_port.status.code(), Some(0));
}
