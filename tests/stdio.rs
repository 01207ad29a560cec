//! The bridge as Claude Desktop sees it: the real binary over stdio, driven by rmcp's client,
//! against the fake gateway. Tool names, schemas, outputs and error texts are 1.7.0's.

#![allow(clippy::unwrap_used)]

mod common;

use common::{FakeGateway, bridge::Bridge, call, is_error, json_of, refused_url, text};
use serde_json::{Value, json};

async fn bridge_for(gw: &FakeGateway, extra: &[(&str, &str)]) -> Bridge {
    let mut env = vec![("OPENCLAW_URL", gw.url.as_str())];
    env.extend_from_slice(extra);
    Bridge::spawn(&env).await
}

#[tokio::test]
async fn tools_are_listed_with_1_7_0_names_schemas_and_order() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[]).await;
    let tools = bridge.client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(
        names,
        [
            "openclaw_chat",
            "openclaw_status",
            "openclaw_chat_async",
            "openclaw_task_status",
            "openclaw_task_list",
            "openclaw_task_cancel",
            "openclaw_instances",
            // This bridge's additions come after 1.7.0's seven, in their order.
            "openclaw_agents",
            "openclaw_sessions",
            "openclaw_session_history"
        ]
    );
    let by_name = |n: &str| tools.iter().find(|t| t.name == n).unwrap();
    let chat = by_name("openclaw_chat");
    assert_eq!(
        chat.description.as_deref(),
        Some("Send a message to OpenClaw and get a response")
    );
    // 1.7.0's schema, unchanged; this bridge's optional additions come after it.
    let mut schema = Value::Object((*chat.input_schema).clone());
    let properties = schema["properties"].as_object_mut().unwrap();
    for added in ["agent", "new_session", "images"] {
        assert!(properties.remove(added).is_some(), "{added}");
    }
    assert_eq!(
        schema,
        json!({"type":"object","properties":{"message":{"type":"string","description":"The message to send to OpenClaw"},"session_id":{"type":"string","description":"Optional session ID for conversation context"},"instance":{"type":"string","description":"Target OpenClaw instance name. Use openclaw_instances to list available instances. Defaults to the default instance."}},"required":["message"]})
    );
    assert!(chat.output_schema.is_none(), "chat returns plain text");
    let chat_async = by_name("openclaw_chat_async");
    assert_eq!(
        chat_async.input_schema["properties"]["priority"],
        json!({"type":"number","description":"Task priority (higher = processed first). Default: 0"})
    );
    assert_eq!(
        by_name("openclaw_task_cancel").description.as_deref(),
        // 1.7.0 could cancel pending tasks only; the description says what this one does.
        Some(
            "Cancel a pending or running task. A running task's request to the gateway is aborted."
        )
    );
    assert_eq!(
        by_name("openclaw_task_list").input_schema["properties"]["status"]["enum"],
        json!(["pending", "running", "completed", "failed", "cancelled"])
    );
    // Improvements: titles, read-only hints, output schemas on the JSON tools.
    for read_only in [
        "openclaw_status",
        "openclaw_instances",
        "openclaw_task_status",
        "openclaw_task_list",
    ] {
        let tool = by_name(read_only);
        assert!(tool.title.is_some(), "{read_only} has a title");
        assert_eq!(
            tool.annotations.as_ref().unwrap().read_only_hint,
            Some(true),
            "{read_only}"
        );
        assert!(
            tool.output_schema.is_some(),
            "{read_only} has an output schema"
        );
    }
    assert_eq!(
        chat.annotations.as_ref().unwrap().read_only_hint,
        Some(false)
    );
}

#[tokio::test]
async fn chat_sends_the_1_7_0_request_and_returns_the_assistant_text() {
    let gw = FakeGateway::start().with_token("gw-secret-token-123");
    let bridge = bridge_for(
        &gw,
        &[
            ("OPENCLAW_GATEWAY_TOKEN", "gw-secret-token-123"),
            ("OPENCLAW_AGENT_ID", "ops"),
        ],
    )
    .await;
    let result = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "  hello  "})))
        .await
        .unwrap();
    assert!(!is_error(&result));
    assert_eq!(text(&result), "echo: hello");

    let with_session = bridge
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "again", "session_id": " sess-1 "}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&with_session), "echo: again");

    let chats = gw.chats();
    assert_eq!(chats.len(), 2);
    let first = &chats[0];
    assert_eq!(first.path, "/v1/chat/completions");
    // rmcp's client always sends a progress token, so the answer is streamed for progress; the
    // rest of the body is 1.7.0's, in its key order (tests/process.rs checks the exact body of a
    // call without a token).
    assert_eq!(
        serde_json::to_string(&first.body).unwrap(),
        r#"{"model":"openclaw","messages":[{"role":"user","content":"hello"}],"max_tokens":4096,"stream":true}"#
    );
    assert_eq!(
        first.header("authorization"),
        Some("Bearer gw-secret-token-123")
    );
    assert_eq!(first.header("x-openclaw-agent-id"), Some("ops"));
    assert_eq!(first.header("x-openclaw-session-key"), None);
    assert_eq!(first.header("content-type"), Some("application/json"));
    let second = &chats[1];
    assert_eq!(
        serde_json::to_string(&second.body).unwrap(),
        r#"{"model":"openclaw","messages":[{"role":"user","content":"again"}],"max_tokens":4096,"session_id":"sess-1","stream":true}"#
    );
    assert_eq!(second.header("x-openclaw-session-key"), Some("sess-1"));
    assert!(
        !bridge.logs().contains("gw-secret-token-123"),
        "the token never reaches the logs"
    );
}

#[tokio::test]
async fn bad_arguments_get_1_7_0_messages_as_tool_errors() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[]).await;
    let long = "x".repeat(100_001);
    let cases = [
        (json!({"message": ""}), "Error: message must not be empty"),
        (
            json!({"message": "   "}),
            "Error: message must not be empty",
        ),
        (json!({"message": 42}), "Error: message must be a string"),
        (json!({}), "Error: message must be a string"),
        (
            json!({"message": long}),
            "Error: message exceeds maximum length of 100000 characters",
        ),
        (
            json!({"message": "bell\u{7}"}),
            "Error: message contains invalid control characters",
        ),
        (
            json!({"message": "hi", "session_id": 7}),
            "Error: session_id must be a string",
        ),
        (
            json!({"message": "hi", "session_id": "s".repeat(257)}),
            "Error: session_id exceeds maximum length of 256 characters",
        ),
        (
            json!({"message": "hi", "instance": "nope"}),
            "Error: Unknown instance \"nope\". Available: default",
        ),
        (Value::Null, "Error: Invalid input: expected an object"),
    ];
    for (args, expected) in cases {
        let result = bridge
            .client
            .call_tool(call("openclaw_chat", args.clone()))
            .await
            .unwrap();
        assert!(is_error(&result), "{args} must be a tool error");
        assert_eq!(text(&result), expected, "for {args}");
    }
    assert!(gw.chats().is_empty(), "nothing invalid reaches the gateway");
    let exact = "y".repeat(100_000);
    let ok = bridge
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": format!("  {exact}  ")}),
        ))
        .await
        .unwrap();
    assert!(!is_error(&ok), "100000 characters plus spaces pass");
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[]).await;
    let err = bridge
        .client
        .call_tool(call("openclaw_nope", json!({})))
        .await
        .unwrap_err();
    let shown = err.to_string();
    assert!(shown.contains("Unknown tool: openclaw_nope"), "{shown}");
}

#[tokio::test]
async fn gateway_failures_are_clear_tool_errors() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[("OPENCLAW_TIMEOUT_MS", "3000")]).await;
    let chat = |m: &str| call("openclaw_chat", json!({"message": m}));
    let url = &gw.url;
    let cases = [
        (
            "[[status:500]]",
            "Error: API request failed: 500 Internal Server Error (fake failure 500)".to_string(),
        ),
        (
            "[[status:502]]",
            "Error: API request failed: 502 Bad Gateway (fake failure 502)".to_string(),
        ),
        (
            "[[status:429]]",
            "Error: API request failed: 429 Too Many Requests (fake failure 429)".to_string(),
        ),
        (
            "[[hang]]",
            "Error: Request to OpenClaw timed out after 3000ms".to_string(),
        ),
        (
            "[[huge:11000000]]",
            "Error: Response exceeds maximum allowed size (10MB)".to_string(),
        ),
        (
            "[[nochoices]]",
            format!(
                "Error: Invalid response from OpenClaw at {url}: no \"choices\" in the chat completion"
            ),
        ),
    ];
    for (message, expected) in cases {
        let result = bridge.client.call_tool(chat(message)).await.unwrap();
        assert!(is_error(&result), "{message}");
        assert_eq!(text(&result), expected, "{message}");
    }
    let garbage = bridge.client.call_tool(chat("[[garbage]]")).await.unwrap();
    assert!(is_error(&garbage));
    assert!(
        text(&garbage).starts_with(&format!(
            "Error: Invalid response from OpenClaw at {url}: the body is not JSON"
        )),
        "{}",
        text(&garbage)
    );
    let empty = bridge.client.call_tool(chat("[[null]]")).await.unwrap();
    assert!(!is_error(&empty));
    assert_eq!(
        text(&empty),
        "",
        "null content is an empty answer, as in 1.7.0"
    );
    // The bridge is still fine after all of that.
    let ok = bridge.client.call_tool(chat("still there?")).await.unwrap();
    assert_eq!(text(&ok), "echo: still there?");
}

#[tokio::test]
async fn an_unreachable_gateway_is_reported_with_its_url() {
    let url = refused_url();
    let bridge = Bridge::spawn(&[("OPENCLAW_URL", url.as_str())]).await;
    let result = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "hi"})))
        .await
        .unwrap();
    assert_eq!(
        text(&result),
        format!("Error: Failed to connect to OpenClaw at {url}: connection refused")
    );
    let status = bridge
        .client
        .call_tool(call("openclaw_status", json!({})))
        .await
        .unwrap();
    assert!(is_error(&status));
    assert_eq!(
        text(&status),
        format!("Error: Failed to connect to OpenClaw at {url}: connection refused")
    );
}

#[tokio::test]
async fn status_tells_each_gateway_answer_apart() {
    let gw = FakeGateway::start().with_token("right-token-abc");
    let good = Bridge::spawn(&[
        ("OPENCLAW_URL", gw.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", "right-token-abc"),
    ])
    .await;
    let result = good
        .client
        .call_tool(call("openclaw_status", json!({})))
        .await
        .unwrap();
    assert!(!is_error(&result));
    let status = json_of(&result);
    assert_eq!(status["status"], "ok");
    assert_eq!(status["instance"], "default");
    assert_eq!(status["http_status"], 400);
    assert_eq!(status["ready"], true);
    assert_eq!(status["restarts"], 0);
    assert_eq!(status["consecutive_failures"], 0);
    assert!(status["latency_ms"].as_f64().is_some());
    assert!(status["last_check"].as_str().unwrap().ends_with('Z'));
    assert_eq!(result.structured_content.as_ref(), Some(&status));
    let keys: Vec<&String> = status.as_object().unwrap().keys().take(3).collect();
    assert_eq!(
        keys,
        ["status", "message", "instance"],
        "1.7.0's keys first"
    );

    let wrong = Bridge::spawn(&[
        ("OPENCLAW_URL", gw.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN", "wrong-token-xyz"),
    ])
    .await;
    let status = json_of(
        &wrong
            .client
            .call_tool(call("openclaw_status", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(status["status"], "error");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Token rejected by the gateway (HTTP 401)"),
        "{status}"
    );

    for (code, words) in [
        (
            404,
            "enable gateway.http.endpoints.chatCompletions in openclaw.json",
        ),
        (
            405,
            "enable gateway.http.endpoints.chatCompletions in openclaw.json",
        ),
        (503, "Gateway error (HTTP 503)"),
    ] {
        gw.set_probe_status(Some(code));
        let status = json_of(
            &good
                .client
                .call_tool(call("openclaw_status", json!({})))
                .await
                .unwrap(),
        );
        assert_eq!(status["status"], "error", "{code}");
        assert_eq!(status["http_status"], code);
        assert!(
            status["message"].as_str().unwrap().contains(words),
            "{status}"
        );
    }
    gw.set_probe_status(None);
    gw.set_readyz_status(503);
    let status = json_of(
        &good
            .client
            .call_tool(call("openclaw_status", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(status["status"], "error");
    assert!(status["message"].as_str().unwrap().contains("not ready"));
}

#[tokio::test]
async fn instances_are_listed_in_order_without_tokens() {
    let a = FakeGateway::start().with_token("token-of-a-123456");
    let b = FakeGateway::start();
    let instances = json!([
        {"name": "a", "url": format!("{}/", a.url), "token": "token-of-a-123456"},
        {"name": "b", "url": format!("http://user:pass-in-url@127.0.0.1:{}", b.port), "default": true, "timeout": 5000}
    ])
    .to_string();
    let bridge = Bridge::spawn(&[("OPENCLAW_INSTANCES", instances.as_str())]).await;
    let result = bridge
        .client
        .call_tool(call("openclaw_instances", Value::Null))
        .await
        .unwrap();
    let out = json_of(&result);
    assert_eq!(out["total"], 2);
    assert_eq!(out["instances"][0]["name"], "a");
    assert_eq!(out["instances"][0]["url"], format!("{}/", a.url));
    assert_eq!(out["instances"][0]["isDefault"], false);
    assert_eq!(out["instances"][1]["isDefault"], true);
    assert_eq!(
        out["instances"][1]["url"],
        format!("http://user:***@127.0.0.1:{}", b.port)
    );
    assert!(out["instances"][0]["health"]["status"].is_string());
    let all = text(&result);
    assert!(!all.contains("token-of-a-123456") && !all.contains("pass-in-url"));

    // Routing: the default is b; `instance` picks a; a's trailing slash is stripped.
    let to_b = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "to b"})))
        .await
        .unwrap();
    assert_eq!(text(&to_b), "echo: to b");
    assert_eq!(b.chats().len(), 1);
    let to_a = bridge
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "to a", "instance": "a"}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&to_a), "echo: to a");
    assert_eq!(a.chats()[0].path, "/v1/chat/completions");
    let unknown = bridge
        .client
        .call_tool(call("openclaw_status", json!({"instance": "c"})))
        .await
        .unwrap();
    assert_eq!(
        text(&unknown),
        "Error: Unknown instance \"c\". Available: a, b"
    );
}

/// A client that records the progress notifications it receives.
#[derive(Clone, Default)]
struct ProgressRecorder(std::sync::Arc<std::sync::Mutex<Vec<f64>>>);

impl rmcp::ClientHandler for ProgressRecorder {
    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
    ) {
        self.0.lock().unwrap().push(params.progress);
    }
}

#[tokio::test]
async fn streamed_answers_report_progress_and_fail_cleanly() {
    use rmcp::{
        ServiceExt,
        transport::{ConfigureCommandExt, TokioChildProcess},
    };
    let gw = FakeGateway::start();
    let url = gw.url.clone();
    let command = tokio::process::Command::new(common::bridge::binary()).configure(move |cmd| {
        cmd.env_clear()
            .env("OPENCLAW_URL", &url)
            .env("OPENCLAW_TIMEOUT_MS", "500")
            .env("OPENCLAW_MCP_DATA_DIR", ":memory:");
    });
    let recorder = ProgressRecorder::default();
    let client = recorder
        .clone()
        .serve(TokioChildProcess::new(command).unwrap())
        .await
        .unwrap();
    let chat = |m: &str| call("openclaw_chat", json!({"message": m}));

    let slow = client.call_tool(chat("[[stream:4:50]]")).await.unwrap();
    assert_eq!(text(&slow), "part0 part1 part2 part3 ");
    common::eventually("progress notifications", || {
        recorder.0.lock().unwrap().len() >= 2
    })
    .await;
    let seen = recorder.0.lock().unwrap().clone();
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {seen:?}"
    );

    let in_band = client.call_tool(chat("[[stream-error]]")).await.unwrap();
    assert!(is_error(&in_band));
    assert_eq!(
        text(&in_band),
        "Error: OpenClaw reported an error: upstream provider error",
        "a streamed error is never a partial answer"
    );
    let died = client.call_tool(chat("[[die]]")).await.unwrap();
    assert!(is_error(&died));
    assert!(
        text(&died).starts_with(&format!(
            "Error: The connection to OpenClaw at {} broke before the answer was complete",
            gw.url
        )),
        "{}",
        text(&died)
    );
    let stalled = client.call_tool(chat("[[stall:1500]]")).await.unwrap();
    assert_eq!(
        text(&stalled),
        "Error: OpenClaw sent nothing for 500ms while answering (idle timeout); the request was abandoned"
    );
    let plain = client
        .call_tool(chat("[[ignore-stream]] hi"))
        .await
        .unwrap();
    assert_eq!(text(&plain), "echo: [[ignore-stream]] hi");
    let _ = client.cancel().await;
}
