//! The bridge as Claude.ai sees it: the real binary in HTTP mode on a loopback port 0, driven by
//! rmcp's Streamable HTTP client in both protocol eras, by a raw SSE reader on the legacy
//! transport, and by raw requests for every status code the HTTP layer answers itself.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    FakeGateway, call,
    http::{
        ACCEPT_BOTH, HttpBridge, SseReader, borrowed, get, initialize_body, json_body, modern_call,
        open_session, post, request, sse_messages,
    },
    is_error, json_of, text,
};
use rmcp::model::ProtocolVersion;
use serde_json::{Value, json};

/// 1.7.0's seven tools, then this bridge's additions.
const SEVEN_TOOLS: [&str; 10] = openclaw_mcp::tool_names::ALL_TOOLS;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ACCEPT: (&str, &str) = ("Accept", ACCEPT_BOTH);

async fn bridge_for(gw: &FakeGateway, args: &[&str], extra: &[(&str, &str)]) -> HttpBridge {
    let mut env = vec![("OPENCLAW_URL", gw.url.as_str())];
    env.extend_from_slice(extra);
    HttpBridge::spawn(args, &env).await
}

/// The JSON-RPC error object of an HTTP error body.
fn error_of(status: u16, body: &[u8]) -> (u16, i64, String) {
    let v = json_body(body);
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["id"], Value::Null, "{v}");
    (
        status,
        v["error"]["code"].as_i64().unwrap(),
        v["error"]["message"].as_str().unwrap().to_string(),
    )
}

/// Polls `task_status` until the task is finished.
async fn finished_task(
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    id: &str,
) -> Value {
    for _ in 0..200 {
        let status = json_of(
            &client
                .call_tool(call("openclaw_task_status", json!({"task_id": id})))
                .await
                .unwrap(),
        );
        if ["completed", "failed", "cancelled"].contains(&status["status"].as_str().unwrap()) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("task {id} did not finish");
}

#[actix_rt::test]
async fn health_reports_version_transport_auth_and_each_instance_without_secrets() {
    let a = FakeGateway::start().with_token("health-secret-token-a");
    let b = FakeGateway::start();
    let instances = json!([
        {"name": "a", "url": a.url, "token": "health-secret-token-a"},
        {"name": "b", "url": format!("{}?token=url-secret-1234", b.url), "default": true}
    ])
    .to_string();
    let bridge = HttpBridge::spawn(&[], &[("OPENCLAW_INSTANCES", &instances)]).await;
    let mut health = bridge.health().await;
    for _ in 0..100 {
        if health["instances"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["health"]["status"] == "ok")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        health = bridge.health().await;
    }
    assert_eq!(health["status"], "ok");
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["transport"], "streamable-http");
    assert_eq!(health["legacySseSupported"], true);
    assert_eq!(health["auth"], false);
    assert_eq!(health["sessions"]["max"], 1000);
    assert_eq!(health["sessions"]["perCaller"], 250);
    let instances = health["instances"].as_array().unwrap();
    assert_eq!(
        instances
            .iter()
            .map(|i| (
                i["name"].as_str().unwrap(),
                i["isDefault"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        [("a", false), ("b", true)]
    );
    for instance in instances {
        assert_eq!(instance["health"]["status"], "ok", "{instance}");
        assert!(
            instance["health"]["message"]
                .as_str()
                .unwrap()
                .starts_with("Gateway responding")
        );
    }
    let raw = health.to_string();
    for secret in ["health-secret-token-a", "url-secret-1234", "127.0.0.1"] {
        assert!(!raw.contains(secret), "/health shows {secret}: {raw}");
    }
    let logs = bridge.logs();
    assert!(
        logs.contains("WARNING: Auth is DISABLED - server is open to anyone!"),
        "{logs}"
    );
    assert!(logs.contains(&format!("listening address=127.0.0.1:{}", bridge.port)));
    assert!(!logs.contains("health-secret-token-a"));
}

#[actix_rt::test]
async fn the_initialize_era_serves_the_seven_tools_in_a_session() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[], &[]).await;
    let client = bridge.legacy_client().await;
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "openclaw-mcp");
    assert!(info.protocol_version <= ProtocolVersion::V_2025_11_25);
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(),
        SEVEN_TOOLS
    );

    let chat = client
        .call_tool(call("openclaw_chat", json!({"message": "  hello  "})))
        .await
        .unwrap();
    assert_eq!(text(&chat), "echo: hello");
    let status = json_of(
        &client
            .call_tool(call("openclaw_status", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(
        (status["status"].as_str(), status["instance"].as_str()),
        (Some("ok"), Some("default"))
    );
    let instances = json_of(
        &client
            .call_tool(call("openclaw_instances", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(instances["total"], 1);
    let bad = client
        .call_tool(call("openclaw_chat", json!({"message": ""})))
        .await
        .unwrap();
    assert!(is_error(&bad));
    assert_eq!(text(&bad), "Error: message must not be empty");

    let queued = json_of(
        &client
            .call_tool(call("openclaw_chat_async", json!({"message": "later"})))
            .await
            .unwrap(),
    );
    let task = queued["task_id"].as_str().unwrap().to_string();
    let done = finished_task(&client, &task).await;
    assert_eq!(
        (done["status"].as_str(), done["result"].as_str()),
        (Some("completed"), Some("echo: later"))
    );
    let listed = json_of(
        &client
            .call_tool(call("openclaw_task_list", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(listed["stats"]["total"], 1);
    let cancel = client
        .call_tool(call("openclaw_task_cancel", json!({"task_id": task})))
        .await
        .unwrap();
    assert!(is_error(&cancel));

    // A second session does not see the first one's tasks (1.7.0: one owner per session).
    let other = bridge.legacy_client().await;
    let listed = json_of(
        &other
            .call_tool(call("openclaw_task_list", json!({})))
            .await
            .unwrap(),
    );
    assert_eq!(listed["stats"]["total"], 0);
    let foreign = other
        .call_tool(call("openclaw_task_status", json!({"task_id": task})))
        .await
        .unwrap();
    assert_eq!(text(&foreign), format!("Error: Task not found: {task}"));
    assert_eq!(bridge.health().await["sessions"]["streamableHttp"], 2);
    let _ = client.cancel().await;
    let _ = other.cancel().await;
}

#[actix_rt::test]
async fn the_2026_era_is_stateless_and_its_tasks_outlive_the_request() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[], &[]).await;
    let client = bridge.modern_client().await;
    assert_eq!(
        client.peer_info().unwrap().protocol_version,
        ProtocolVersion::V_2026_07_28
    );
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(
        tools.iter().map(|t| t.name.as_ref()).collect::<Vec<_>>(),
        SEVEN_TOOLS
    );
    let chat = client
        .call_tool(call("openclaw_chat", json!({"message": "modern"})))
        .await
        .unwrap();
    assert_eq!(text(&chat), "echo: modern");
    assert_eq!(
        bridge.health().await["sessions"]["streamableHttp"],
        0,
        "no session is opened"
    );

    let queued = json_of(
        &client
            .call_tool(call("openclaw_chat_async", json!({"message": "stateless"})))
            .await
            .unwrap(),
    );
    let task = queued["task_id"].as_str().unwrap().to_string();
    // Another client of the same era (another connection, no session) reaches the task by id.
    let again = bridge.modern_client().await;
    let done = finished_task(&again, &task).await;
    assert_eq!(done["result"], "echo: stateless");
    // A session of the initialize era is another owner.
    let legacy = bridge.legacy_client().await;
    let foreign = legacy
        .call_tool(call("openclaw_task_status", json!({"task_id": task})))
        .await
        .unwrap();
    assert!(is_error(&foreign));

    // The raw wire: plain JSON answers, rmcp's header checks, and a modern unknown method.
    let (headers, body) = modern_call(7, "openclaw_chat", json!({"message": "raw"}));
    let (status, h, body) = post(&bridge.url("/mcp"), &borrowed(&headers), &body).await;
    assert_eq!(status, 200);
    assert!(h.get("mcp-session-id").is_none());
    let v = json_body(&body);
    assert_eq!(v["result"]["content"][0]["text"], "echo: raw");
    assert_eq!(v["result"]["resultType"], "complete");
    let (mut headers, body) = modern_call(8, "openclaw_chat", json!({"message": "x"}));
    headers[4].1 = "openclaw_status".to_string();
    let (status, _, body) = post(&bridge.url("/mcp"), &borrowed(&headers), &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        json_body(&body)["error"]["code"],
        -32020,
        "Mcp-Name mismatch"
    );
    let _ = client.cancel().await;
    let _ = again.cancel().await;
    let _ = legacy.cancel().await;
}

#[actix_rt::test]
async fn tool_results_are_the_same_as_over_stdio() {
    let gw = FakeGateway::start();
    let stdio = common::bridge::Bridge::spawn(&[("OPENCLAW_URL", gw.url.as_str())]).await;
    let bridge = bridge_for(&gw, &[], &[]).await;
    let legacy = bridge.legacy_client().await;
    let modern = bridge.modern_client().await;
    let calls = [
        call("openclaw_chat", json!({"message": "same"})),
        call("openclaw_chat", json!({"message": "[[status:503]]"})),
        call("openclaw_chat", json!({"message": 7})),
        call(
            "openclaw_chat",
            json!({"message": "hi", "instance": "nope"}),
        ),
        call("openclaw_status", json!({})),
        call("openclaw_instances", json!({})),
        call("openclaw_task_status", json!({"task_id": "task_nope"})),
    ];
    // What the model sees: the error flag and the text, with the health probes' timings left
    // out (two processes probe at different moments).
    fn without_timings(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.retain(|k, _| !matches!(k.as_str(), "last_check" | "last_ok" | "latency_ms"));
                map.values_mut().for_each(without_timings);
            }
            Value::Array(items) => items.iter_mut().for_each(without_timings),
            _ => {}
        }
    }
    let seen = |_name: &str, r: &rmcp::model::CallToolResult| {
        let t = text(r);
        let shown = match serde_json::from_str::<Value>(&t) {
            Ok(mut v) => {
                without_timings(&mut v);
                v
            }
            Err(_) => json!(t),
        };
        (is_error(r), shown, r.structured_content.is_some())
    };
    for params in calls {
        let over_stdio = stdio.client.call_tool(params.clone()).await.unwrap();
        for (era, client) in [("initialize", &legacy), ("2026-07-28", &modern)] {
            let over_http = client.call_tool(params.clone()).await.unwrap();
            assert_eq!(
                seen(&params.name, &over_http),
                seen(&params.name, &over_stdio),
                "{} over {era}",
                params.name
            );
        }
    }
    let unknown = legacy
        .call_tool(call("no_such_tool", json!({})))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("Unknown tool: no_such_tool"),
        "{unknown}"
    );
    let _ = legacy.cancel().await;
    let _ = modern.cancel().await;
}

#[actix_rt::test]
async fn progress_notifications_reach_the_client_over_http() {
    #[derive(Clone, Default)]
    struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<f64>>>);
    impl rmcp::ClientHandler for Recorder {
        async fn on_progress(
            &self,
            params: rmcp::model::ProgressNotificationParam,
            _context: rmcp::service::NotificationContext<rmcp::RoleClient>,
        ) {
            self.0.lock().unwrap().push(params.progress);
        }
    }
    use rmcp::ServiceExt;
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[], &[]).await;
    let recorder = Recorder::default();
    openclaw_mcp::app::install_crypto_provider();
    let client = recorder
        .clone()
        .serve(rmcp::transport::StreamableHttpClientTransport::from_uri(
            bridge.url("/mcp"),
        ))
        .await
        .unwrap();
    let slow = client
        .call_tool(call("openclaw_chat", json!({"message": "[[stream:4:40]]"})))
        .await
        .unwrap();
    assert_eq!(text(&slow), "part0 part1 part2 part3 ");
    common::eventually("progress over Streamable HTTP", || {
        recorder.0.lock().unwrap().len() >= 2
    })
    .await;
    let _ = client.cancel().await;
}

#[actix_rt::test]
async fn legacy_sse_serves_the_tools_on_its_stream() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[], &[]).await;
    let (status, mut sse) = SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    let endpoint = sse.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(endpoint.event, "endpoint");
    assert!(
        endpoint.data.starts_with("/messages?sessionId="),
        "{endpoint:?}"
    );
    let messages = bridge.url(&endpoint.data);
    assert_eq!(bridge.health().await["sessions"]["legacySse"], 1);

    let (status, _, body) = post(&messages, &[JSON], &initialize_body(1)).await;
    assert_eq!(status, 202, "{}", String::from_utf8_lossy(&body));
    let init = sse.next_message(Duration::from_secs(10)).await;
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "openclaw-mcp");
    let (status, _, _) = post(
        &messages,
        &[JSON],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let (status, _, _) = post(
        &messages,
        &[JSON],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let tools = sse.next_message(Duration::from_secs(10)).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, SEVEN_TOOLS);
    let chat = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"over sse"}}});
    let (status, _, _) = post(&messages, &[JSON], &chat.to_string()).await;
    assert_eq!(status, 202);
    let answer = sse.next_message(Duration::from_secs(10)).await;
    assert_eq!(answer["id"], 3);
    assert_eq!(answer["result"]["content"][0]["text"], "echo: over sse");

    // Errors on /messages are JSON too.
    let unknown = bridge.url("/messages?sessionId=00000000-0000-4000-8000-000000000000");
    let (status, _, body) = post(
        &unknown,
        &[JSON],
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(error_of(status, &body).0, 404);
    let (status, _, body) = post(
        &bridge.url("/messages"),
        &[JSON],
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(error_of(status, &body).0, 404);
    let (status, _, body) = post(&messages, &[JSON], "{oops").await;
    assert_eq!(error_of(status, &body).1, -32700);
    let (status, _, body) = post(&messages, &[("Content-Type", "text/plain")], "{}").await;
    assert_eq!(error_of(status, &body).0, 415);
    assert!(bridge.logs().contains("Legacy SSE transport is deprecated"));
}

#[actix_rt::test]
async fn every_error_is_json_with_the_right_status() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[], &[("MCP_MAX_BODY_BYTES", "2048")]).await;
    let mcp = bridge.url("/mcp");
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

    let (status, _, body) = get(&bridge.url("/no/such/route"), &[]).await;
    assert_eq!(error_of(status, &body).0, 404);
    let code = |status, body: &[u8]| {
        let (status, code, _) = error_of(status, body);
        (status, code)
    };
    let (status, _, body) = post(&mcp, &[JSON, ACCEPT], "{not json").await;
    assert_eq!(code(status, &body), (400, -32700));
    let (status, _, body) = post(
        &mcp,
        &[JSON, ACCEPT],
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
    )
    .await;
    assert_eq!(code(status, &body), (400, -32600), "no batches");
    let (status, _, body) = post(&mcp, &[JSON, ACCEPT], r#"{"hello":"world"}"#).await;
    assert_eq!(code(status, &body), (400, -32600));
    let (status, _, body) = post(&mcp, &[("Content-Type", "text/plain"), ACCEPT], list).await;
    assert_eq!(error_of(status, &body).0, 415);
    let (status, _, body) = post(&mcp, &[JSON, ("Accept", "application/json")], list).await;
    assert_eq!(error_of(status, &body).0, 406);
    let (status, _, body) = post(&mcp, &[JSON], list).await;
    assert_eq!(error_of(status, &body).0, 406);
    let big = json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"x".repeat(4096)}}}).to_string();
    let (status, _, body) = post(&mcp, &[JSON, ACCEPT], &big).await;
    let (status, _, message) = error_of(status, &body);
    assert_eq!(status, 413);
    assert!(message.contains("2048"), "{message}");
    let (status, _, body) = post(
        &mcp,
        &[JSON, ACCEPT, ("Mcp-Session-Id", "no-such-session")],
        list,
    )
    .await;
    assert_eq!(error_of(status, &body).0, 404);
    let (status, _, body) = post(&mcp, &[JSON, ACCEPT], list).await;
    assert_eq!(
        error_of(status, &body).0,
        400,
        "a session-era request without a session"
    );
    let (status, _, body) = request("PUT", &mcp, &[], None).await;
    assert_eq!(error_of(status, &body).0, 405);
    let (status, _, body) = get(&mcp, &[("Accept", "application/json")]).await;
    assert_eq!(error_of(status, &body).0, 406);

    // Origin and Host (DNS rebinding).
    let (status, _, body) = post(
        &mcp,
        &[JSON, ACCEPT, ("Origin", "http://evil.example.com")],
        &initialize_body(1),
    )
    .await;
    assert_eq!(error_of(status, &body).0, 403);
    let binary_origin = common::http::client()
        .post(&mcp)
        .insert_header(JSON)
        .insert_header(ACCEPT)
        .insert_header((
            "Origin",
            awc::http::header::HeaderValue::from_bytes(b"http://\xff.example").unwrap(),
        ))
        .send_body(initialize_body(1))
        .await
        .unwrap();
    assert_eq!(
        binary_origin.status().as_u16(),
        403,
        "an Origin that is not text"
    );
    let own = format!("http://127.0.0.1:{}", bridge.port);
    let (status, _, _) = post(&mcp, &[JSON, ACCEPT, ("Origin", &own)], &initialize_body(1)).await;
    assert_eq!(status, 200, "the server's own origin is accepted");
    let (status, _, body) = post(
        &mcp,
        &[JSON, ACCEPT, ("Host", "evil.example.com")],
        &initialize_body(1),
    )
    .await;
    assert_eq!(error_of(status, &body).0, 403);
    let (status, _, body) = get(&bridge.url("/health"), &[("Host", "evil.example.com:80")]).await;
    assert_eq!(error_of(status, &body).0, 403);
    let (status, _, _) = get(
        &bridge.url("/health"),
        &[("Host", &format!("localhost:{}", bridge.port))],
    )
    .await;
    assert_eq!(status, 200);

    // DELETE ends a session; the id is then unknown (404), not 400 as in 1.7.0.
    let session = open_session(&bridge).await;
    let with_session = [
        JSON,
        ACCEPT,
        ("Mcp-Session-Id", session.as_str()),
        ("MCP-Protocol-Version", "2025-06-18"),
    ];
    let (status, _, body) = post(&mcp, &with_session, list).await;
    assert_eq!(status, 200);
    assert_eq!(
        sse_messages(&body)[0]["result"]["tools"]
            .as_array()
            .unwrap()
            .len(),
        10
    );
    let (status, _, _) = request(
        "DELETE",
        &mcp,
        &[("Mcp-Session-Id", session.as_str())],
        None,
    )
    .await;
    assert_eq!(status, 200, "the official Python client wants 200");
    let (status, _, body) = post(&mcp, &with_session, list).await;
    assert_eq!(error_of(status, &body).0, 404);
    assert_eq!(
        bridge.health().await["sessions"]["streamableHttp"],
        1,
        "the initialize with our own Origin"
    );
}

#[actix_rt::test]
async fn sessions_are_bounded_and_refused_with_503() {
    let gw = FakeGateway::start();
    // Three clients (told apart by X-Forwarded-For behind a trusted proxy): the bound is of all
    // sessions together, whoever holds them.
    let bridge = bridge_for(
        &gw,
        &[],
        &[("MCP_MAX_SESSIONS", "2"), ("TRUST_PROXY", "true")],
    )
    .await;
    let mcp = bridge.url("/mcp");
    let a = ("X-Forwarded-For", "10.0.0.1");
    let b = ("X-Forwarded-For", "10.0.0.2");
    let c = ("X-Forwarded-For", "10.0.0.3");
    let (status, headers, _) = post(&mcp, &[JSON, ACCEPT, a], &initialize_body(1)).await;
    assert_eq!(status, 200);
    let first = headers
        .get("mcp-session-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let (status, mut _sse) = SseReader::open_with(&bridge.url("/sse"), &[b]).await;
    assert_eq!(status, 200);
    let (status, headers, body) = post(&mcp, &[JSON, ACCEPT, c], &initialize_body(1)).await;
    let (status, _, message) = error_of(status, &body);
    assert_eq!(status, 503);
    assert!(message.contains("MCP_MAX_SESSIONS=2"), "{message}");
    assert!(headers.get("retry-after").is_some());
    let (status, _, body) = get(&bridge.url("/sse"), &[c]).await;
    assert_eq!(error_of(status, &body).0, 503);
    // Stateless requests take no session slot.
    let (headers, body) = modern_call(1, "openclaw_chat", json!({"message": "still served"}));
    let mut headers = borrowed(&headers);
    headers.push(c);
    let (status, _, body) = post(&mcp, &headers, &body).await;
    assert_eq!(status, 200);
    assert_eq!(
        json_body(&body)["result"]["content"][0]["text"],
        "echo: still served"
    );
    // Ending a session frees its slot.
    request(
        "DELETE",
        &mcp,
        &[("Mcp-Session-Id", first.as_str()), a],
        None,
    )
    .await;
    let (status, _, _) = post(&mcp, &[JSON, ACCEPT, c], &initialize_body(2)).await;
    assert_eq!(status, 200);
}

#[actix_rt::test]
async fn a_client_that_disappears_frees_its_sessions_and_streams() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw, &[], &[("MCP_SESSION_IDLE_SECS", "1")]).await;
    let session = open_session(&bridge).await;
    let (status, mut standalone) = SseReader::open_with(
        &bridge.url("/mcp"),
        &[
            ("Mcp-Session-Id", session.as_str()),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
    )
    .await;
    assert_eq!(status, 200, "the session's GET stream");
    let (status, mut legacy) = SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    assert_eq!(
        legacy.next(Duration::from_secs(10)).await.unwrap().event,
        "endpoint"
    );
    // The client goes silent: both streams end by themselves and both slots are freed.
    while standalone.next(Duration::from_secs(20)).await.is_some() {}
    while legacy.next(Duration::from_secs(20)).await.is_some() {}
    let mut freed = false;
    for _ in 0..100 {
        let health = bridge.health().await;
        if health["sessions"]["streamableHttp"] == 0 && health["sessions"]["legacySse"] == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        freed,
        "idle sessions were not freed: {}",
        bridge.health().await
    );
    let (status, _, body) = post(
        &bridge.url("/mcp"),
        &[JSON, ACCEPT, ("Mcp-Session-Id", session.as_str())],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    )
    .await;
    assert_eq!(error_of(status, &body).0, 404);
}

#[actix_rt::test]
async fn cors_follows_cors_origins() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(
        &gw,
        &[],
        &[(
            "CORS_ORIGINS",
            "https://claude.ai, example.com, *.corp.example",
        )],
    )
    .await;
    let mcp = bridge.url("/mcp");
    for origin in [
        "https://claude.ai",
        "http://example.com",
        "https://app.corp.example",
    ] {
        let (status, headers, _) = request(
            "OPTIONS",
            &mcp,
            &[
                ("Origin", origin),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type, mcp-session-id, mcp-protocol-version, authorization, last-event-id"),
            ],
            None,
        )
        .await;
        assert!(
            status == 200 || status == 204,
            "preflight {origin}: {status}"
        );
        assert_eq!(headers.get("access-control-allow-origin").unwrap(), origin);
        let allowed = headers
            .get("access-control-allow-headers")
            .unwrap()
            .to_str()
            .unwrap()
            .to_ascii_lowercase();
        for h in [
            "mcp-session-id",
            "mcp-protocol-version",
            "authorization",
            "last-event-id",
        ] {
            assert!(allowed.contains(h), "{h} in {allowed}");
        }
    }
    let (status, headers, _) = post(
        &mcp,
        &[JSON, ACCEPT, ("Origin", "https://claude.ai")],
        &initialize_body(1),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("access-control-allow-origin").unwrap(),
        "https://claude.ai"
    );
    let exposed = headers
        .get("access-control-expose-headers")
        .unwrap()
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("mcp-session-id"), "{exposed}");
    let (status, headers, body) = request(
        "OPTIONS",
        &mcp,
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    )
    .await;
    assert_eq!(error_of(status, &body).0, 403);
    assert!(headers.get("access-control-allow-origin").is_none());

    // `*`: any origin, with a loud warning at start.
    let any = bridge_for(&gw, &[], &[("CORS_ORIGINS", "*")]).await;
    let (status, headers, _) = post(
        &any.url("/mcp"),
        &[JSON, ACCEPT, ("Origin", "https://whoever.example")],
        &initialize_body(1),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(headers.get("access-control-allow-origin").unwrap(), "*");
    assert!(
        any.logs()
            .contains("WARNING: CORS_ORIGINS=* allows any web page")
    );

    // Off (the default): no CORS headers at all.
    let off = bridge_for(&gw, &[], &[]).await;
    let (_, headers, _) = request(
        "OPTIONS",
        &off.url("/mcp"),
        &[
            ("Origin", &format!("http://127.0.0.1:{}", off.port)),
            ("Access-Control-Request-Method", "POST"),
        ],
        None,
    )
    .await;
    assert!(headers.get("access-control-allow-origin").is_none());
}

#[actix_rt::test]
async fn allowed_hosts_and_trust_proxy_serve_a_reverse_proxy() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(
        &gw,
        &[],
        &[
            ("ALLOWED_HOSTS", "bridge.example.com"),
            ("TRUST_PROXY", "loopback"),
        ],
    )
    .await;
    let (status, _, _) = get(&bridge.url("/health"), &[("Host", "bridge.example.com")]).await;
    assert_eq!(status, 200);
    let (status, _, _) = post(
        &bridge.url("/mcp"),
        &[
            JSON,
            ACCEPT,
            ("Host", "bridge.example.com"),
            ("Origin", "https://bridge.example.com"),
        ],
        &initialize_body(1),
    )
    .await;
    assert_eq!(
        status, 200,
        "a proxy keeping Host, and the page's own origin"
    );
    let (status, _, body) = get(
        &bridge.url("/health"),
        &[
            ("Host", "other.example.com"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    )
    .await;
    assert_eq!(error_of(status, &body).0, 403);
    common::eventually("the refusal is logged with the forwarded client", || {
        bridge.logs().contains("client=203.0.113.9")
    })
    .await;

    // Without TRUST_PROXY, X-Forwarded-For is not believed.
    let plain = bridge_for(&gw, &[], &[]).await;
    let (status, _, _) = get(
        &plain.url("/health"),
        &[
            ("Host", "other.example.com"),
            ("X-Forwarded-For", "203.0.113.10"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    common::eventually("the refusal is logged with the peer", || {
        plain.logs().contains("client=127.0.0.1")
    })
    .await;
    assert!(!plain.logs().contains("203.0.113.10"));
}

#[actix_rt::test]
async fn transport_sse_is_the_same_server_with_a_deprecation_warning() {
    let gw = FakeGateway::start();
    let bridge =
        HttpBridge::spawn_with_transport("sse", &[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    assert!(
        bridge
            .logs()
            .contains("WARNING: --transport sse is deprecated; use --transport http instead")
    );
    let client = bridge.legacy_client().await;
    let chat = client
        .call_tool(call("openclaw_chat", json!({"message": "alias"})))
        .await
        .unwrap();
    assert_eq!(text(&chat), "echo: alias");
    let (status, mut sse) = SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    assert_eq!(
        sse.next(Duration::from_secs(10)).await.unwrap().event,
        "endpoint"
    );
    let _ = client.cancel().await;
}

#[actix_rt::test]
async fn sigterm_lets_the_call_in_flight_finish_then_exits_zero() {
    let gw = FakeGateway::start();
    let mut bridge = bridge_for(&gw, &[], &[("MCP_SHUTDOWN_GRACE_SECS", "10")]).await;
    let client = bridge.legacy_client().await;
    // A legacy SSE session with a slow call in flight too.
    let (status, mut sse) = SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    let messages = bridge.url(&sse.next(Duration::from_secs(10)).await.unwrap().data);
    post(&messages, &[JSON], &initialize_body(1)).await;
    assert_eq!(sse.next_message(Duration::from_secs(10)).await["id"], 1);
    post(
        &messages,
        &[JSON],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    let slow_sse = json!({"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"[[delay:1500]] over sse"}}});
    let (status, _, _) = post(&messages, &[JSON], &slow_sse.to_string()).await;
    assert_eq!(status, 202);
    let url = bridge.url("/mcp");
    let in_flight = actix_rt::spawn(async move {
        let (headers, body) = modern_call(
            1,
            "openclaw_chat",
            json!({"message": "[[delay:1500]] slow"}),
        );
        let headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let mut req = awc::Client::default().post(url);
        for (k, v) in &headers {
            req = req.insert_header((k.as_str(), v.as_str()));
        }
        let mut res = req.send_body(body).await.unwrap();
        (res.status().as_u16(), res.body().await.unwrap())
    });
    let mut seen = false;
    for _ in 0..100 {
        if bridge.health().await["inFlight"] == 2 {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen, "both calls are in flight");
    bridge.signal("TERM");
    common::eventually("shutdown begins", || {
        bridge.logs().contains("Shutting down HTTP server")
    })
    .await;
    // New work is refused while draining (or the listener is already gone).
    let probe = awc::Client::builder()
        .timeout(Duration::from_secs(1))
        .finish();
    if let Ok(mut res) = probe.get(bridge.url("/health")).send().await {
        assert_eq!(res.status().as_u16(), 503);
        let body = res.body().await.unwrap();
        assert_eq!(json_body(&body)["error"]["code"], -32000);
    }
    let (status, body) = tokio::time::timeout(Duration::from_secs(15), in_flight)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        json_body(&body)["result"]["content"][0]["text"],
        "echo: [[delay:1500]] slow"
    );
    // The legacy call is answered on its stream, then the shutdown closes the stream.
    let answer = sse.next_message(Duration::from_secs(15)).await;
    assert_eq!(answer["id"], 9);
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "echo: [[delay:1500]] over sse"
    );
    while sse.next(Duration::from_secs(15)).await.is_some() {}
    assert_eq!(bridge.wait_exit(Duration::from_secs(20)).await, Some(0));
    // stderr is read by a task of its own, which may still be behind the exit.
    common::eventually("the last log line", || {
        bridge.logs().contains("HTTP server stopped")
    })
    .await;
    drop(client);
}
