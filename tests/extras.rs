//! What this bridge adds to 1.7.0's contract: agents, sessions, images, static bearer tokens,
//! secrets from files and tool switches — through an MCP client against the fake gateway,
//! bad input included.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    FakeGateway,
    bridge::{Bridge, InProcess, settings},
    call,
    http::{ACCEPT_BOTH, HttpBridge, initialize_body},
    is_error, json_of, text,
};
use serde_json::{Value, json};

const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

fn env(gw: &FakeGateway) -> Vec<(&str, &str)> {
    vec![("OPENCLAW_URL", gw.url.as_str())]
}

#[actix_rt::test]
async fn the_agent_argument_picks_the_agent_and_async_tasks_remember_it() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &env(&gw))).await;
    let r = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "hi", "agent": "ops"}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&r), "echo: hi");
    assert_eq!(r.structured_content.as_ref().unwrap()["agent"], "ops");
    assert_eq!(gw.chats()[0].header("x-openclaw-agent-id"), Some("ops"));

    let queued = json_of(
        &app.client
            .call_tool(call(
                "openclaw_chat_async",
                json!({"message": "later", "agent": "ops"}),
            ))
            .await
            .unwrap(),
    );
    let id = queued["task_id"].as_str().unwrap().to_string();
    common::eventually("the task reaches the gateway", || gw.chats().len() == 2).await;
    assert_eq!(gw.chats()[1].header("x-openclaw-agent-id"), Some("ops"));
    let _ = id;

    for (agent, expected) in [
        (json!("Ops Team"), "Error: agent must be an agent id"),
        (json!(7), "Error: agent must be a string"),
    ] {
        let bad = app
            .client
            .call_tool(call(
                "openclaw_chat",
                json!({"message": "x", "agent": agent}),
            ))
            .await
            .unwrap();
        assert!(is_error(&bad));
        assert!(text(&bad).starts_with(expected), "{}", text(&bad));
    }
    let unknown = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "x", "agent": "ghost"}),
        ))
        .await
        .unwrap();
    assert_eq!(
        text(&unknown),
        "Error: API request failed: 400 Bad Request (Unknown agent 'ghost'.)"
    );
}

#[actix_rt::test]
async fn openclaw_agents_lists_the_agents_of_an_instance() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &env(&gw))).await;
    let out = json_of(
        &app.client
            .call_tool(call("openclaw_agents", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(out["instance"], "default");
    assert_eq!(
        out["agents"],
        json!([{"id": "main", "model": "openclaw/main"}, {"id": "ops", "model": "openclaw/ops"}])
    );
    assert_eq!(out["models"][0], "openclaw");
    let unknown = app
        .client
        .call_tool(call("openclaw_agents", json!({"instance": "nope"})))
        .await
        .unwrap();
    assert_eq!(
        text(&unknown),
        "Error: Unknown instance \"nope\". Available: default"
    );
}

#[actix_rt::test]
async fn chat_returns_its_session_key_and_new_session_starts_a_conversation() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &env(&gw))).await;
    let plain = app
        .client
        .call_tool(call("openclaw_chat", json!({"message": "one"})))
        .await
        .unwrap();
    assert_eq!(
        text(&plain),
        "echo: one",
        "the text stays the assistant's text"
    );
    let sc = plain.structured_content.unwrap();
    assert!(
        sc.get("response").is_none(),
        "the answer is sent once, as the text: {sc:?}"
    );
    assert_eq!(sc["model"], "openclaw");
    assert_eq!(sc["session_key"], Value::Null);
    assert_eq!(sc["instance"], "default");

    let fresh = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "start", "new_session": true}),
        ))
        .await
        .unwrap();
    let key = fresh.structured_content.unwrap()["session_key"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(key.starts_with("mcp-"), "{key}");
    let again = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "continue", "session_id": key}),
        ))
        .await
        .unwrap();
    assert_eq!(
        again.structured_content.unwrap()["session_key"],
        key.as_str()
    );
    let chats = gw.chats();
    assert_eq!(
        chats[1].header("x-openclaw-session-key"),
        Some(key.as_str())
    );
    assert_eq!(
        chats[2].header("x-openclaw-session-key"),
        Some(key.as_str())
    );

    let both = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "x", "session_id": "s", "new_session": true}),
        ))
        .await
        .unwrap();
    assert_eq!(
        text(&both),
        "Error: give session_id or new_session, not both"
    );

    let sessions = json_of(
        &app.client
            .call_tool(call("openclaw_sessions", json!({})))
            .await
            .unwrap(),
    );
    let keys: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&format!("agent:main:{key}").as_str()),
        "{sessions}"
    );
    assert_eq!(sessions["count"], keys.len());

    let history = json_of(
        &app.client
            .call_tool(call("openclaw_session_history", json!({"session_id": key})))
            .await
            .unwrap(),
    );
    assert_eq!(history["session_key"], format!("agent:main:{key}"));
    assert_eq!(history["messages"].as_array().unwrap().len(), 4);
    assert_eq!(history["messages"][0]["content"], "start");
    let missing = app
        .client
        .call_tool(call("openclaw_session_history", json!({})))
        .await
        .unwrap();
    assert_eq!(text(&missing), "Error: give session_key or session_id");
    let bad_limit = app
        .client
        .call_tool(call("openclaw_sessions", json!({"limit": 0})))
        .await
        .unwrap();
    assert_eq!(
        text(&bad_limit),
        "Error: limit must be an integer from 1 to 200"
    );
}

#[actix_rt::test]
async fn images_are_sent_as_image_url_parts_and_bad_ones_refused() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &env(&gw))).await;
    let uri = format!("data:image/png;base64,{PNG_1X1}");
    let r = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "what is this?", "images": [uri.clone(), {"data": PNG_1X1, "mimeType": "image/png"}]}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&r), "echo: what is this?");
    let content = &gw.chats()[0].body["messages"][0]["content"];
    assert_eq!(
        content,
        &json!([
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": uri}},
            {"type": "image_url", "image_url": {"url": uri}}
        ])
    );
    let cases = [
        (
            json!(["data:text/plain;base64,aGk="]),
            "Error: images[0] is text/plain; send PNG, JPEG, WebP or GIF images",
        ),
        (
            json!(["data:image/png;base64,aGVsbG8="]),
            "Error: images[0] is not a image/png image",
        ),
        (
            json!([format!("data:image/gif;base64,{PNG_1X1}")]),
            "Error: images[0] says image/gif but holds image/png data",
        ),
        (
            json!(vec![uri.clone(); 9]),
            "Error: images may hold at most 8 images",
        ),
    ];
    for (images, expected) in cases {
        let bad = app
            .client
            .call_tool(call(
                "openclaw_chat",
                json!({"message": "x", "images": images}),
            ))
            .await
            .unwrap();
        assert_eq!(text(&bad), expected);
    }
    let huge = format!("data:image/png;base64,{}", "A".repeat(7_000_000));
    let too_big = app
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "x", "images": [huge]}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&too_big), "Error: images[0] is larger than 5 MiB");
    assert_eq!(gw.chats().len(), 1, "nothing invalid reached the gateway");
}

#[actix_rt::test]
async fn static_bearer_tokens_guard_http_and_name_the_task_owner() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            (
                "MCP_BEARER_TOKENS",
                "laptop:laptop-token-0123456789abcdef,ci:ci-token-0123456789abcdef",
            ),
        ],
    )
    .await;
    let http = common::http::client();
    let post = |token: Option<&'static str>| {
        let mut req = http
            .post(bridge.url("/mcp"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", ACCEPT_BOTH));
        if let Some(t) = token {
            req = req.insert_header(("authorization", format!("Bearer {t}")));
        }
        async move {
            req.send_body(initialize_body(1))
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(post(None).await, 401);
    assert_eq!(post(Some("laptop-token-0123456789abcdeX")).await, 401);
    assert_eq!(post(Some("laptop-token-0123456789abcdef")).await, 200);
    // With auth on, /health tells a caller without a token the overall status only.
    let public = bridge.health().await;
    assert_eq!(public["status"], "ok");
    assert!(
        public.get("auth").is_none() && public.get("instances").is_none(),
        "{public}"
    );
    let (status, _, body) = common::http::get(
        &bridge.url("/health"),
        &[("authorization", "Bearer ci-token-0123456789abcdef")],
    )
    .await;
    assert_eq!(status, 200);
    let full = common::http::json_body(&body);
    assert_eq!(full["auth"], true);
    assert_eq!(full["instances"][0]["name"], "default", "{full}");
    assert!(
        !full.to_string().contains(&gw.url),
        "no gateway URL: {full}"
    );

    openclaw_mcp::app::install_crypto_provider();
    let connect = |token: &'static str| {
        let config =
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                bridge.url("/mcp"),
            )
            .auth_header(token);
        async move {
            use rmcp::ServiceExt;
            ().serve(rmcp::transport::StreamableHttpClientTransport::from_config(
                config,
            ))
            .await
            .unwrap()
        }
    };
    let laptop = connect("laptop-token-0123456789abcdef").await;
    let queued = json_of(
        &laptop
            .call_tool(call("openclaw_chat_async", json!({"message": "mine"})))
            .await
            .unwrap(),
    );
    let id = queued["task_id"].as_str().unwrap().to_string();
    let laptop_again = connect("laptop-token-0123456789abcdef").await;
    let seen = laptop_again
        .call_tool(call("openclaw_task_status", json!({"task_id": id})))
        .await
        .unwrap();
    assert!(!is_error(&seen), "the same token name is the same owner");
    let ci = connect("ci-token-0123456789abcdef").await;
    let foreign = ci
        .call_tool(call("openclaw_task_status", json!({"task_id": id})))
        .await
        .unwrap();
    assert_eq!(text(&foreign), format!("Error: Task not found: {id}"));
    let logs = bridge.logs();
    assert!(!logs.contains("laptop-token-0123456789abcdef") && !logs.contains("ci-token"));
}

#[actix_rt::test]
async fn oauth_and_static_tokens_work_side_by_side() {
    let gw = FakeGateway::start();
    let bridge = HttpBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("AUTH_ENABLED", "true"),
            ("MCP_CLIENT_ID", "openclaw"),
            ("MCP_CLIENT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("MCP_BEARER_TOKENS", "script:script-token-0123456789abcdef"),
        ],
    )
    .await;
    let http = common::http::client();
    let status = |auth: &'static str| {
        let req = http
            .post(bridge.url("/mcp"))
            .insert_header(("content-type", "application/json"))
            .insert_header(("accept", ACCEPT_BOTH))
            .insert_header(("authorization", auth));
        async move { req.send_body(initialize_body(1)).await.unwrap() }
    };
    assert_eq!(
        status("Bearer script-token-0123456789abcdef")
            .await
            .status(),
        200
    );
    let refused = status("Bearer not-a-token").await;
    assert_eq!(refused.status(), 401);
    assert!(
        refused
            .headers()
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("resource_metadata=")
    );
}

#[tokio::test]
async fn secrets_can_come_from_files_and_a_missing_file_is_a_clear_error() {
    let gw = FakeGateway::start().with_token("file-token-0123456789");
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("gateway-token");
    std::fs::write(&token_file, "file-token-0123456789\n").unwrap();
    let path = token_file.to_str().unwrap();
    let bridge = Bridge::spawn(&[
        ("OPENCLAW_URL", gw.url.as_str()),
        ("OPENCLAW_GATEWAY_TOKEN_FILE", path),
    ])
    .await;
    let r = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "via file"})))
        .await
        .unwrap();
    assert_eq!(
        text(&r),
        "echo: via file",
        "the token from the file (without its newline) was sent"
    );

    let instances = json!([{"name": "a", "url": gw.url, "tokenFile": path}]).to_string();
    let bridge = Bridge::spawn(&[("OPENCLAW_INSTANCES", instances.as_str())]).await;
    let r = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "instance file"})))
        .await
        .unwrap();
    assert_eq!(text(&r), "echo: instance file");

    let run = |env: Vec<(&'static str, String)>| async move {
        tokio::process::Command::new(common::bridge::binary())
            .env_clear()
            .envs(env)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap()
    };
    let missing = run(vec![(
        "OPENCLAW_GATEWAY_TOKEN_FILE",
        "/nonexistent/token".into(),
    )])
    .await;
    assert_eq!(missing.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("OPENCLAW_GATEWAY_TOKEN_FILE: cannot read /nonexistent/token"),
        "{stderr}"
    );
    let both = run(vec![
        ("OPENCLAW_GATEWAY_TOKEN", "x".into()),
        ("OPENCLAW_GATEWAY_TOKEN_FILE", path.into()),
    ])
    .await;
    assert_eq!(both.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&both.stderr).contains("not both"));
    let empty_file = dir.path().join("empty");
    std::fs::write(&empty_file, "\n").unwrap();
    let empty = run(vec![(
        "OPENCLAW_GATEWAY_TOKEN_FILE",
        empty_file.to_string_lossy().into_owned(),
    )])
    .await;
    assert_eq!(empty.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(stderr.contains("is empty"), "{stderr}");
    let bad_instance = run(vec![(
        "OPENCLAW_INSTANCES",
        json!([{"name": "a", "url": "http://x", "tokenFile": "/nonexistent/t"}]).to_string(),
    )])
    .await;
    assert_eq!(bad_instance.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&bad_instance.stderr)
            .contains("\"tokenFile\": cannot read /nonexistent/t")
    );
}

#[tokio::test]
async fn disabled_tools_are_hidden_and_refused() {
    let gw = FakeGateway::start();
    let bridge = Bridge::spawn(&[
        ("OPENCLAW_URL", gw.url.as_str()),
        (
            "OPENCLAW_MCP_DISABLED_TOOLS",
            "openclaw_chat_async, openclaw_sessions",
        ),
    ])
    .await;
    let names = bridge.tool_names().await;
    assert!(!names.contains(&"openclaw_chat_async".to_string()));
    assert!(!names.contains(&"openclaw_sessions".to_string()));
    assert!(names.contains(&"openclaw_chat".to_string()));
    let refused = bridge
        .client
        .call_tool(call("openclaw_chat_async", json!({"message": "x"})))
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("Tool openclaw_chat_async is disabled on this server")
    );
    assert!(gw.chats().is_empty());

    let out = tokio::process::Command::new(common::bridge::binary())
        .env_clear()
        .env("OPENCLAW_MCP_DISABLED_TOOLS", "openclaw_teleport")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("names an unknown tool \"openclaw_teleport\"")
    );
}

#[tokio::test]
async fn read_only_keeps_only_the_tools_that_change_nothing() {
    let gw = FakeGateway::start();
    let bridge = Bridge::spawn_args(&["--read-only"], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    let names = bridge.tool_names().await;
    assert_eq!(
        names,
        [
            "openclaw_status",
            "openclaw_task_status",
            "openclaw_task_list",
            "openclaw_instances",
            "openclaw_agents",
            "openclaw_sessions",
            "openclaw_session_history"
        ]
    );
    let refused = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "x"})))
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("disabled"));
    let status = bridge
        .client
        .call_tool(call("openclaw_status", json!({})))
        .await
        .unwrap();
    assert!(!is_error(&status));
}
