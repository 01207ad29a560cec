//! Edges of the MCP layer that real clients (the official TypeScript SDK, the MCP Inspector, the
//! official Python SDK) tripped on, each checked on the wire:
//!
//! - a client that negotiates 2025-11-25 at `initialize` and declares the 2026-07-28 tasks
//!   extension there gets a plain tool result with the answer, never a `resultType: "task"` it
//!   cannot read; a 2026-07-28 request that asks for a task still gets one;
//! - no progress notification for a call is written after that call's response, on any transport
//!   (50 calls against a streamed answer each, to catch the race);
//! - no input or output schema uses a `type` array (`["string", "null"]`);
//! - an 800 kB answer is sent once (as the text), not again in `structuredContent`, and arrives
//!   whole over every transport.

#![allow(clippy::unwrap_used)]

mod common;

use std::{process::Stdio, time::Duration};

use common::{
    FakeGateway, call,
    http::{ACCEPT_BOTH, HttpBridge, SseReader, borrowed, json_body, post, sse_messages},
    text,
};
use futures_util::StreamExt;
use rmcp::{
    ServiceExt,
    model::{CallToolResponse, GetTaskParams, ProtocolVersion, TaskPayload, TaskStatus},
    service::{ClientLifecycleMode, ClientServiceExt},
    transport::{ConfigureCommandExt, StreamableHttpClientTransport, TokioChildProcess},
};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// The tasks extension's id, as clients declare it.
const TASKS: &str = "io.modelcontextprotocol/tasks";
/// Calls per transport in the progress-ordering tests: the late notification was a race.
const CALLS: u64 = 50;
/// A streamed answer: two chunks a millisecond apart, then the end at once, so the last progress
/// update and the end of the answer arrive together.
const STREAMED: &str = "[[stream:2:1]]";
/// The size of the large answer (the fake gateway's `[[huge:BYTES]]`: that many `x`).
const HUGE: usize = 800_000;

const JSON: (&str, &str) = ("Content-Type", "application/json");
const ACCEPT: (&str, &str) = ("Accept", ACCEPT_BOTH);

async fn http_bridge(gw: &FakeGateway) -> HttpBridge {
    HttpBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await
}

/// A client that declares the tasks extension in its capabilities, as the TypeScript SDK and
/// the Inspector do whatever era they end up speaking.
#[derive(Clone, Default)]
struct TaskAwareClient;

impl rmcp::ClientHandler for TaskAwareClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("task-aware", "1"),
        )
    }
}

/// `initialize` of the 2025-11-25 era with the tasks extension among the client's capabilities.
fn initialize_declaring_tasks(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"extensions": {TASKS: {}}},
        "clientInfo": {"name": "inspector-like", "version": "1"}}})
    .to_string()
}

/// `initialize` of the 2025-11-25 era without capabilities.
fn initialize_2025_11_25(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "1"}}})
    .to_string()
}

/// The `_meta` of a 2026-07-28 request, with `capabilities` and an optional progress token.
fn modern_meta(capabilities: Value, progress: Option<&str>) -> Value {
    let mut meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": capabilities});
    if let Some(token) = progress {
        meta["progressToken"] = json!(token);
    }
    meta
}

/// A 2026-07-28 `tools/call` of `openclaw_chat` and its headers.
fn modern_chat(id: u64, message: &str, meta: Value) -> (Vec<(&'static str, String)>, String) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "openclaw_chat", "arguments": {"message": message}, "_meta": meta}})
    .to_string();
    let headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", ACCEPT_BOTH.to_string()),
        ("MCP-Protocol-Version", "2026-07-28".to_string()),
        ("Mcp-Method", "tools/call".to_string()),
        ("Mcp-Name", "openclaw_chat".to_string()),
    ];
    (headers, body)
}

/// A `tools/call` of `openclaw_chat` in the initialize era, with an optional progress token.
fn legacy_chat(id: u64, message: &str, progress: Option<&str>) -> String {
    let mut params = json!({"name": "openclaw_chat", "arguments": {"message": message}});
    if let Some(token) = progress {
        params["_meta"] = json!({"progressToken": token});
    }
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params}).to_string()
}

/// The JSON-RPC messages of a Streamable HTTP answer, in order (one JSON body, or SSE events).
fn messages_of(headers: &awc::http::header::HeaderMap, body: &[u8]) -> Vec<Value> {
    let sse = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if sse {
        sse_messages(body)
    } else {
        vec![json_body(body)]
    }
}

fn is_progress_for(message: &Value, token: &str) -> bool {
    message["method"] == "notifications/progress" && message["params"]["progressToken"] == token
}

/// Checks the order of one call's messages: its progress notifications (if any) come before its
/// response. Returns how many progress notifications came first.
fn progress_before_response(messages: &[Value], id: u64, token: &str, what: &str) -> usize {
    let at = messages
        .iter()
        .position(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{what}: no response to call {id} in {messages:?}"));
    assert!(
        !messages[at + 1..].iter().any(|m| is_progress_for(m, token)),
        "{what}: a progress notification for {token} came after the response to call {id}: {messages:?}"
    );
    messages[..at]
        .iter()
        .filter(|m| is_progress_for(m, token))
        .count()
}

/// Opens an initialize-era session on `/mcp` with `init` and the 2025-11-25 header; the session id
/// and the `initialize` result.
async fn open_session_with(bridge: &HttpBridge, init: &str) -> (String, Value) {
    let (status, headers, body) = post(&bridge.url("/mcp"), &[JSON, ACCEPT], init).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let id = headers
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string();
    let result = messages_of(&headers, &body)
        .into_iter()
        .find(|m| m["id"] == 1)
        .expect("the initialize answer")["result"]
        .clone();
    let (status, _, _) = post(
        &bridge.url("/mcp"),
        &[
            JSON,
            ACCEPT,
            ("Mcp-Session-Id", &id),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 202);
    (id, result)
}

/// Posts `body` in session `session`; the answer's messages.
async fn in_session(bridge: &HttpBridge, session: &str, body: &str) -> Vec<Value> {
    let (status, headers, answer) = post(
        &bridge.url("/mcp"),
        &[
            JSON,
            ACCEPT,
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        body,
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    messages_of(&headers, &answer)
}

/// The real binary over stdio, spoken to line by line.
struct RawStdio {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl RawStdio {
    async fn spawn(gw: &FakeGateway) -> RawStdio {
        let mut child = tokio::process::Command::new(common::bridge::binary())
            .env_clear()
            .env("OPENCLAW_URL", &gw.url)
            .env("OPENCLAW_MCP_DATA_DIR", ":memory:")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the bridge");
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        RawStdio {
            child,
            stdin,
            lines,
        }
    }

    async fn send(&mut self, line: &str) {
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.write_all(b"\n").await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The next message (bounded wait).
    async fn next(&mut self) -> Value {
        let line = tokio::time::timeout(Duration::from_secs(30), self.lines.next_line())
            .await
            .expect("a message in time")
            .unwrap()
            .expect("stdout is open");
        serde_json::from_str(&line).unwrap()
    }

    /// The messages up to and including the response to `id`.
    async fn until_response(&mut self, id: u64) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next().await;
            let done = message["id"] == id;
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    /// `initialize` (with `init`) and `notifications/initialized`; the initialize result.
    async fn initialize(&mut self, init: &str) -> Value {
        self.send(init).await;
        let answer = self.until_response(1).await.pop().unwrap();
        self.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .await;
        answer["result"].clone()
    }
}

impl Drop for RawStdio {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The legacy HTTP+SSE transport, opened and initialized with `init`: the stream, the URL to post
/// to, and the initialize result.
async fn legacy_sse(bridge: &HttpBridge, init: &str) -> (SseReader, String, Value) {
    let (status, mut sse) = SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    let endpoint = sse.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(endpoint.event, "endpoint");
    let messages = bridge.url(&endpoint.data);
    let (status, _, _) = post(&messages, &[JSON], init).await;
    assert_eq!(status, 202);
    let answer = sse.next_message(Duration::from_secs(10)).await;
    assert_eq!(answer["id"], 1);
    let (status, _, _) = post(
        &messages,
        &[JSON],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 202);
    (sse, messages, answer["result"].clone())
}

/// The messages on the legacy SSE stream up to and including the response to `id`.
async fn sse_until_response(sse: &mut SseReader, id: u64) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let message = sse.next_message(Duration::from_secs(30)).await;
        let done = message["id"] == id;
        seen.push(message);
        if done {
            return seen;
        }
    }
}

/// Asserts that a `tools/call` result is the plain answer `expected`.
fn assert_plain_answer(result: &Value, expected: &str, what: &str) {
    assert_ne!(
        result["resultType"], "task",
        "{what}: a task handle: {result}"
    );
    assert!(result.get("taskId").is_none(), "{what}: {result}");
    assert_eq!(result["content"][0]["type"], "text", "{what}: {result}");
    assert_eq!(result["content"][0]["text"], expected, "{what}: {result}");
    assert_ne!(result["isError"], true, "{what}: {result}");
}

// ---------------------------------------------------------------------------------------------
// 1. Tasks only for 2026-07-28 requests that ask for them.

#[actix_rt::test]
async fn a_2025_11_25_session_declaring_the_tasks_extension_gets_the_answer_over_raw_http() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    let (session, init) = open_session_with(&bridge, &initialize_declaring_tasks(1)).await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    // Without a progress token (the Inspector's call), and with one (the TS SDK's with onprogress).
    for (id, progress) in [(2, None), (3, Some("p-3"))] {
        let messages = in_session(
            &bridge,
            &session,
            &legacy_chat(id, "plain please", progress),
        )
        .await;
        let answer = messages.iter().find(|m| m["id"] == id).unwrap();
        assert_plain_answer(
            &answer["result"],
            "echo: plain please",
            "2025-11-25 session",
        );
    }
    // Nothing was queued as a task.
    let listed = in_session(
        &bridge,
        &session,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"openclaw_task_list","arguments":{}}}"#,
    )
    .await;
    let listed = listed.iter().find(|m| m["id"] == 4).unwrap();
    assert_eq!(listed["result"]["structuredContent"]["stats"]["total"], 0);
    assert!(
        init["capabilities"]["extensions"].get(TASKS).is_none(),
        "an initialize-era session is not offered 2026-07-28 tasks: {init}"
    );
}

#[tokio::test]
async fn a_2025_11_25_client_declaring_the_tasks_extension_gets_the_answer_over_raw_stdio() {
    let gw = FakeGateway::start();
    let mut stdio = RawStdio::spawn(&gw).await;
    let init = stdio.initialize(&initialize_declaring_tasks(1)).await;
    assert_eq!(init["protocolVersion"], "2025-11-25");
    stdio
        .send(&legacy_chat(2, "plain over stdio", Some("p-2")))
        .await;
    let answer = stdio.until_response(2).await.pop().unwrap();
    assert_plain_answer(
        &answer["result"],
        "echo: plain over stdio",
        "2025-11-25 over stdio",
    );
    assert!(
        init["capabilities"]["extensions"].get(TASKS).is_none(),
        "{init}"
    );
}

#[actix_rt::test]
async fn a_2025_11_25_client_declaring_the_tasks_extension_gets_the_answer_over_legacy_sse() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    let (mut sse, messages, init) = legacy_sse(&bridge, &initialize_declaring_tasks(1)).await;
    let (status, _, _) = post(&messages, &[JSON], &legacy_chat(2, "plain over sse", None)).await;
    assert_eq!(status, 202);
    let answer = sse_until_response(&mut sse, 2).await.pop().unwrap();
    assert_plain_answer(
        &answer["result"],
        "echo: plain over sse",
        "2025-11-25 over legacy SSE",
    );
    assert!(
        init["capabilities"]["extensions"].get(TASKS).is_none(),
        "{init}"
    );
}

#[actix_rt::test]
async fn rmcp_clients_declaring_tasks_at_initialize_get_plain_results() {
    let gw = FakeGateway::start();
    // Over stdio.
    let url = gw.url.clone();
    let command = tokio::process::Command::new(common::bridge::binary()).configure(move |cmd| {
        cmd.env_clear()
            .env("OPENCLAW_URL", &url)
            .env("OPENCLAW_MCP_DATA_DIR", ":memory:");
    });
    let stdio = TaskAwareClient
        .serve(TokioChildProcess::new(command).unwrap())
        .await
        .unwrap();
    // Over Streamable HTTP, in a session.
    let bridge = http_bridge(&gw).await;
    openclaw_mcp::app::install_crypto_provider();
    let http = TaskAwareClient
        .serve(StreamableHttpClientTransport::from_uri(bridge.url("/mcp")))
        .await
        .unwrap();
    for (name, client) in [("stdio", &stdio), ("Streamable HTTP", &http)] {
        let info = client.peer_info().unwrap();
        assert!(info.protocol_version.has_initialize(), "{name}: {info:?}");
        let answer = client
            .call_tool_once(call("openclaw_chat", json!({"message": name})))
            .await
            .unwrap();
        let CallToolResponse::Complete(result) = answer else {
            panic!("{name}: expected a plain result, got {answer:?}");
        };
        assert_eq!(text(&result), format!("echo: {name}"), "{name}");
        assert!(!info.capabilities.supports_tasks(), "{name}");
    }
    let _ = stdio.cancel().await;
    let _ = http.cancel().await;
}

#[actix_rt::test]
async fn a_2026_07_28_request_asking_for_a_task_gets_a_task() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    // Raw: the request's own capabilities declare the extension.
    let (headers, body) = modern_chat(
        7,
        "as a task",
        modern_meta(json!({"extensions": {TASKS: {}}}), None),
    );
    let (status, h, answer) = post(&bridge.url("/mcp"), &borrowed(&headers), &body).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
    let created = messages_of(&h, &answer).pop().unwrap();
    assert_eq!(created["result"]["resultType"], "task", "{created}");
    assert!(
        created["result"]["taskId"]
            .as_str()
            .unwrap()
            .starts_with("task_")
    );
    // The same request without the extension gets the answer.
    let (headers, body) = modern_chat(8, "not a task", modern_meta(json!({}), None));
    let (_, h, answer) = post(&bridge.url("/mcp"), &borrowed(&headers), &body).await;
    let plain = messages_of(&h, &answer).pop().unwrap();
    assert_eq!(plain["result"]["resultType"], "complete", "{plain}");
    assert_plain_answer(
        &plain["result"],
        "echo: not a task",
        "2026-07-28 without tasks",
    );

    // rmcp's client in the 2026-07-28 era: a task, whose result is the answer with its metadata.
    openclaw_mcp::app::install_crypto_provider();
    let client = TaskAwareClient
        .serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(bridge.url("/mcp")),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    let created = client
        .call_tool_once(call("openclaw_chat", json!({"message": "modern task"})))
        .await
        .unwrap();
    let CallToolResponse::Task(created) = created else {
        panic!("expected a task handle, got {created:?}");
    };
    let mut done = None;
    for _ in 0..400 {
        let got = client
            .get_task(GetTaskParams::new(created.task.task_id.clone()))
            .await
            .unwrap();
        if got.task.status() == TaskStatus::Completed {
            done = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let done = done.expect("the task completes");
    let TaskPayload::Completed { result } = &done.task.payload else {
        panic!("no result: {done:?}");
    };
    let result = Value::Object(result.clone());
    assert_eq!(result["content"][0]["text"], "echo: modern task");
    assert_eq!(result["structuredContent"]["instance"], "default");
    assert!(result["structuredContent"].get("response").is_none());
    let _ = client.cancel().await;
}

// ---------------------------------------------------------------------------------------------
// 2. Progress notifications never follow their call's response.

#[actix_rt::test]
async fn progress_never_follows_the_response_over_streamable_http_2026() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    let mut progressed = 0;
    for id in 1..=CALLS {
        let token = format!("p-{id}");
        let (headers, body) = modern_chat(id, STREAMED, modern_meta(json!({}), Some(&token)));
        let (status, h, answer) = post(&bridge.url("/mcp"), &borrowed(&headers), &body).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&answer));
        let messages = messages_of(&h, &answer);
        progressed += progress_before_response(&messages, id, &token, "2026-07-28");
        let response = messages.iter().find(|m| m["id"] == id).unwrap();
        assert_eq!(response["result"]["content"][0]["text"], "part0 part1 ");
    }
    assert!(progressed > 0, "no call reported progress");
}

#[actix_rt::test]
async fn progress_never_follows_the_response_over_streamable_http_sessions() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    let (session, _) = open_session_with(&bridge, &initialize_2025_11_25(1)).await;
    // The session's standalone stream, open from the start as the TypeScript SDK keeps it: a
    // notification that misses its call's stream (sent after the response) would land here.
    let mut standalone = awc::Client::new()
        .get(bridge.url("/mcp"))
        .insert_header(("Accept", "text/event-stream"))
        .insert_header(("Mcp-Session-Id", session.as_str()))
        .insert_header(("MCP-Protocol-Version", "2025-11-25"))
        .send()
        .await
        .unwrap();
    assert_eq!(standalone.status().as_u16(), 200);
    let mut progressed = 0;
    for id in 2..2 + CALLS {
        let token = format!("p-{id}");
        let messages =
            in_session(&bridge, &session, &legacy_chat(id, STREAMED, Some(&token))).await;
        progressed += progress_before_response(&messages, id, &token, "2025-11-25 session");
    }
    assert!(progressed > 0, "no call reported progress");
    // Whatever reached the standalone stream by now (and a moment more for a straggler).
    let mut late = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(deadline, standalone.next()).await {
        late.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(
        !late.contains("notifications/progress"),
        "progress notifications after their responses, on the standalone stream: {late}"
    );
}

#[tokio::test]
async fn progress_never_follows_the_response_over_stdio() {
    let gw = FakeGateway::start();
    let mut stdio = RawStdio::spawn(&gw).await;
    stdio.initialize(&initialize_2025_11_25(1)).await;
    let mut progressed = 0;
    let mut after: Vec<Value> = Vec::new();
    for id in 2..2 + CALLS {
        let token = format!("p-{id}");
        stdio.send(&legacy_chat(id, STREAMED, Some(&token))).await;
        let messages = stdio.until_response(id).await;
        // What came before this response must not be progress of an earlier, answered call.
        for earlier in 2..id {
            let token = format!("p-{earlier}");
            assert!(
                !messages.iter().any(|m| is_progress_for(m, &token)),
                "stdio: progress for call {earlier} after its response: {messages:?}"
            );
        }
        progressed += progress_before_response(&messages, id, &token, "stdio");
        after = messages;
    }
    // A last request flushes anything still on its way.
    stdio
        .send(r#"{"jsonrpc":"2.0","id":9999,"method":"ping"}"#)
        .await;
    let tail = stdio.until_response(9999).await;
    assert!(
        !tail.iter().any(|m| m["method"] == "notifications/progress"),
        "stdio: progress after the last response: {tail:?} (before: {after:?})"
    );
    assert!(progressed > 0, "no call reported progress");
}

#[actix_rt::test]
async fn progress_never_follows_the_response_over_legacy_sse() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    let (mut sse, messages_url, _) = legacy_sse(&bridge, &initialize_2025_11_25(1)).await;
    let mut progressed = 0;
    for id in 2..2 + CALLS {
        let token = format!("p-{id}");
        let (status, _, _) = post(
            &messages_url,
            &[JSON],
            &legacy_chat(id, STREAMED, Some(&token)),
        )
        .await;
        assert_eq!(status, 202);
        let messages = sse_until_response(&mut sse, id).await;
        for earlier in 2..id {
            let token = format!("p-{earlier}");
            assert!(
                !messages.iter().any(|m| is_progress_for(m, &token)),
                "legacy SSE: progress for call {earlier} after its response: {messages:?}"
            );
        }
        progressed += progress_before_response(&messages, id, &token, "legacy SSE");
    }
    let (status, _, _) = post(
        &messages_url,
        &[JSON],
        r#"{"jsonrpc":"2.0","id":9999,"method":"ping"}"#,
    )
    .await;
    assert_eq!(status, 202);
    let tail = sse_until_response(&mut sse, 9999).await;
    assert!(
        !tail.iter().any(|m| m["method"] == "notifications/progress"),
        "legacy SSE: progress after the last response: {tail:?}"
    );
    assert!(progressed > 0, "no call reported progress");
}

// ---------------------------------------------------------------------------------------------
// 3. Schemas without `type` arrays.

/// Paths of every `type` keyword in `schema` whose value is an array.
fn type_arrays(schema: &Value, path: &str, found: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            for (key, value) in map {
                let here = format!("{path}/{key}");
                if key == "type" && value.is_array() {
                    found.push(format!("{here} = {value}"));
                }
                type_arrays(value, &here, found);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                type_arrays(item, &format!("{path}/{i}"), found);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn no_input_or_output_schema_uses_a_type_array() {
    let gw = FakeGateway::start();
    let bridge = common::bridge::Bridge::spawn(&[("OPENCLAW_URL", gw.url.as_str())]).await;
    let tools = bridge.client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), openclaw_mcp::tool_names::ALL_TOOLS.len());
    let mut found = Vec::new();
    let mut outputs = 0;
    for tool in &tools {
        let input = Value::Object((*tool.input_schema).clone());
        type_arrays(&input, &format!("{}/inputSchema", tool.name), &mut found);
        if let Some(output) = &tool.output_schema {
            outputs += 1;
            let output = Value::Object((**output).clone());
            type_arrays(&output, &format!("{}/outputSchema", tool.name), &mut found);
        }
    }
    assert!(outputs >= 8, "the JSON tools have output schemas");
    assert!(found.is_empty(), "type arrays: {found:#?}");
    // The walk finds one where there is one.
    let mut probe = Vec::new();
    type_arrays(
        &json!({"properties": {"a": {"anyOf": [{"type": ["string", "null"]}]}}}),
        "",
        &mut probe,
    );
    assert_eq!(probe.len(), 1);

    // The nullable health fields still accept the values the tools return.
    let instances = bridge
        .client
        .call_tool(call("openclaw_instances", json!({})))
        .await
        .unwrap();
    let health = &instances.structured_content.unwrap()["instances"][0]["health"];
    let schema = tools
        .iter()
        .find(|t| t.name == "openclaw_instances")
        .unwrap()
        .output_schema
        .clone()
        .unwrap();
    let fields = &schema["properties"]["instances"]["items"]["properties"]["health"]["properties"];
    for field in ["last_check", "last_ok", "latency_ms", "last_error"] {
        let kinds: Vec<&str> = fields[field]["anyOf"]
            .as_array()
            .unwrap_or_else(|| panic!("{field}: {}", fields[field]))
            .iter()
            .map(|k| k["type"].as_str().unwrap())
            .collect();
        let kind = match &health[field] {
            Value::Null => "null",
            Value::String(_) => "string",
            Value::Number(_) => "number",
            other => panic!("{field}: {other}"),
        };
        assert!(kinds.contains(&kind), "{field}: {kind} not in {kinds:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. A large answer is sent once and arrives whole.

/// Asserts that `result` (a `tools/call` result) carries the huge answer once, as its text.
fn assert_huge_once(result: &Value, raw_len: usize, what: &str) {
    let text = result["content"][0]["text"].as_str().unwrap();
    assert_eq!(text.len(), HUGE, "{what}: the whole answer");
    assert!(text.bytes().all(|b| b == b'x'), "{what}");
    let serialized = result.to_string();
    assert_eq!(
        serialized.matches(&"x".repeat(HUGE)).count(),
        1,
        "{what}: the answer once"
    );
    assert!(
        serialized.len() < HUGE + 4096,
        "{what}: {} bytes for an answer of {HUGE}",
        serialized.len()
    );
    assert!(raw_len < HUGE + 8192, "{what}: {raw_len} bytes on the wire");
    let structured = &result["structuredContent"];
    assert!(structured.get("response").is_none(), "{what}: {structured}");
    assert_eq!(structured["instance"], "default", "{what}: {structured}");
}

#[tokio::test]
async fn an_800_kb_answer_is_sent_once_over_stdio() {
    let gw = FakeGateway::start();
    let mut stdio = RawStdio::spawn(&gw).await;
    stdio.initialize(&initialize_2025_11_25(1)).await;
    for (id, progress) in [(2, None), (3, Some("p-3"))] {
        stdio
            .send(&legacy_chat(id, &format!("[[huge:{HUGE}]]"), progress))
            .await;
        let answer = stdio.until_response(id).await.pop().unwrap();
        let raw = answer.to_string().len();
        assert_huge_once(&answer["result"], raw, "stdio");
    }
}

#[actix_rt::test]
async fn an_800_kb_answer_is_sent_once_over_every_http_transport() {
    let gw = FakeGateway::start();
    let bridge = http_bridge(&gw).await;
    let message = format!("[[huge:{HUGE}]]");

    // Streamable HTTP, 2026-07-28 (plain JSON without a progress token, SSE with one).
    for (id, progress) in [(1, None), (2, Some("p-2"))] {
        let (headers, body) = modern_chat(id, &message, modern_meta(json!({}), progress));
        let (status, h, answer) = post(&bridge.url("/mcp"), &borrowed(&headers), &body).await;
        assert_eq!(status, 200);
        let response = messages_of(&h, &answer)
            .into_iter()
            .find(|m| m["id"] == id)
            .unwrap();
        assert_huge_once(
            &response["result"],
            answer.len(),
            "Streamable HTTP 2026-07-28",
        );
    }

    // Streamable HTTP, a 2025-11-25 session (SSE).
    let (session, _) = open_session_with(&bridge, &initialize_2025_11_25(1)).await;
    let (status, _, answer) = post(
        &bridge.url("/mcp"),
        &[
            JSON,
            ACCEPT,
            ("Mcp-Session-Id", &session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ],
        &legacy_chat(3, &message, None),
    )
    .await;
    assert_eq!(status, 200);
    let response = sse_messages(&answer)
        .into_iter()
        .find(|m| m["id"] == 3)
        .unwrap();
    assert_huge_once(&response["result"], answer.len(), "Streamable HTTP session");

    // Legacy HTTP+SSE: one `message` event.
    let (mut sse, messages_url, _) = legacy_sse(&bridge, &initialize_2025_11_25(1)).await;
    let (status, _, _) = post(&messages_url, &[JSON], &legacy_chat(4, &message, None)).await;
    assert_eq!(status, 202);
    let response = sse_until_response(&mut sse, 4).await.pop().unwrap();
    let raw = response.to_string().len();
    assert_huge_once(&response["result"], raw, "legacy SSE");
}
