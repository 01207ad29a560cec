//! The edges of the transports, as a real client meets them: the real binary (HTTP on a loopback
//! port 0, or stdio) driven with hand-written HTTP over TCP and raw JSON lines, so that a test
//! can drop a connection at a chosen moment, resume it with `Last-Event-ID`, or send what a
//! buggy client sends (two requests with one id).
//!
//! - Resumption (initialize era): an answer reaches a stream resumed before it was produced, and
//!   one produced while the stream was down is replayed on resume; a 2026-07-28 request whose
//!   stream the client closes is still cancelled (its gateway request aborted).
//! - Duplicate request ids in one session (Streamable HTTP, legacy SSE, stdio): the duplicate
//!   gets `-32600` at once and never reaches the gateway; the first call completes.
//! - A legacy SSE session ends as soon as its stream closes.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use common::{
    FakeGateway,
    bridge::binary,
    http::{ACCEPT_BOTH, HttpBridge, SseReader, initialize_body, open_session, post},
};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// How long any one step may take before the test fails.
const WAIT: Duration = Duration::from_secs(10);

async fn bridge_for(gw: &FakeGateway) -> HttpBridge {
    HttpBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await
}

/// One HTTP/1.1 exchange over a TCP socket of its own, read as it arrives: the test decides
/// when to stop reading and when to close the connection (dropping it closes the socket).
struct Raw {
    stream: TcpStream,
    text: String,
}

impl Raw {
    /// Sends `head` (request line and headers, without `Host` and the blank line) and `body`.
    async fn send(port: u16, head: &str, body: &str) -> Raw {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut request = format!("{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
        if !body.is_empty() {
            request.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body);
        stream.write_all(request.as_bytes()).await.unwrap();
        Raw {
            stream,
            text: String::new(),
        }
    }

    /// Reads until `done` holds for what arrived; panics naming `what` after [`WAIT`] or when
    /// the server closes first.
    async fn until(&mut self, what: &str, done: impl Fn(&Raw) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = [0u8; 8192];
        while !done(self) {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => panic!("closed before {what}:\n{}", self.text),
                Ok(Ok(n)) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => panic!("timed out waiting for {what}:\n{}", self.text),
            }
        }
    }

    /// Reads until the server closes the connection (bounded by [`WAIT`]).
    async fn read_to_end(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut buf = [0u8; 8192];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => self.text.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => panic!("the response did not end:\n{}", self.text),
            }
        }
    }

    /// The HTTP status.
    fn status(&self) -> u16 {
        self.text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    /// The JSON of every SSE `data:` line (and of a plain JSON body).
    fn messages(&self) -> Vec<Value> {
        let body = self.text.split("\r\n\r\n").skip(1).collect::<Vec<_>>();
        let body = body.join("\r\n\r\n");
        let mut out: Vec<Value> = body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("data:"))
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        if out.is_empty() {
            out.extend(
                body.lines()
                    .filter(|l| l.trim_start().starts_with('{'))
                    .filter_map(|l| serde_json::from_str(l.trim()).ok()),
            );
        }
        out
    }

    /// The answer (a `result` or an `error`) to request `id`, if it arrived.
    fn answer(&self, id: &Value) -> Option<Value> {
        self.messages()
            .into_iter()
            .find(|m| &m["id"] == id && (m.get("result").is_some() || m.get("error").is_some()))
    }

    /// The last SSE event id that arrived.
    fn last_event_id(&self) -> Option<String> {
        self.text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("id:"))
            .map(|id| id.trim().to_string())
            .next_back()
    }
}

/// The head of a POST in initialize-era session `session`.
fn post_head(session: &str) -> String {
    format!(
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18"
    )
}

/// The head of a resume (`GET` with `Last-Event-ID`) in session `session`.
fn resume_head(session: &str, last_event_id: &str) -> String {
    format!(
        "GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\nLast-Event-ID: {last_event_id}"
    )
}

/// An `openclaw_chat` call with id `id`.
fn chat(id: u64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "openclaw_chat", "arguments": {"message": message}}})
    .to_string()
}

/// The text of a tool result.
fn result_text(answer: &Value) -> &str {
    answer["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or("")
}

/// Polls `/health` (bounded) until `check` holds for it; the last one seen.
async fn health_until(bridge: &HttpBridge, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let health = bridge.health().await;
        if check(&health) {
            return health;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {health}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A POSTed call in `session` whose stream is read up to its priming event and then dropped
/// (the client's connection goes away); the event id to resume from.
async fn call_then_drop(bridge: &HttpBridge, session: &str, id: u64, message: &str) -> String {
    let mut first = Raw::send(bridge.port, &post_head(session), &chat(id, message)).await;
    first
        .until("the priming event", |r| r.last_event_id().is_some())
        .await;
    assert_eq!(first.status(), 200, "{}", first.text);
    let last = first.last_event_id().unwrap();
    assert!(last.contains('/'), "a request stream's event id: {last}");
    drop(first);
    last
}

// ------------------------------------------------------------------------------------------------
// Resumption

#[actix_rt::test]
async fn an_answer_reaches_a_stream_resumed_before_it_was_produced() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw).await;
    let session = open_session(&bridge).await;
    let last = call_then_drop(&bridge, &session, 7, "[[delay:2000]] resumed early").await;

    let mut resumed = Raw::send(bridge.port, &resume_head(&session, &last), "").await;
    resumed
        .until("the answer on the resumed stream", |r| {
            r.answer(&json!(7)).is_some()
        })
        .await;
    assert_eq!(resumed.status(), 200);
    let answer = resumed.answer(&json!(7)).unwrap();
    assert_eq!(result_text(&answer), "echo: [[delay:2000]] resumed early");
    // The request's stream ends with its answer.
    resumed.read_to_end().await;
    assert_eq!(gw.messages().len(), 1, "the call reached the gateway once");
}

#[actix_rt::test]
async fn an_answer_produced_while_the_stream_was_down_is_replayed_on_resume() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw).await;
    let session = open_session(&bridge).await;
    let last = call_then_drop(&bridge, &session, 8, "[[delay:200]] answered while away").await;
    // The answer is produced with nobody listening, and held for a resume.
    health_until(&bridge, "the answer held for a resume", |h| {
        h["sessions"]["heldAnswers"] == 1
    })
    .await;

    let mut resumed = Raw::send(bridge.port, &resume_head(&session, &last), "").await;
    resumed.read_to_end().await;
    assert_eq!(resumed.status(), 200, "{}", resumed.text);
    let answer = resumed
        .answer(&json!(8))
        .unwrap_or_else(|| panic!("the answer is replayed:\n{}", resumed.text));
    assert_eq!(
        result_text(&answer),
        "echo: [[delay:200]] answered while away"
    );
    // Delivered: nothing is held any more.
    health_until(&bridge, "the held answer released", |h| {
        h["sessions"]["heldAnswers"] == 0
    })
    .await;
    // The session goes on as before.
    let mut next = Raw::send(bridge.port, &post_head(&session), &chat(9, "next")).await;
    next.until("the next answer", |r| r.answer(&json!(9)).is_some())
        .await;
    assert_eq!(result_text(&next.answer(&json!(9)).unwrap()), "echo: next");
    // An answer its client took is not kept.
    next.read_to_end().await;
    health_until(&bridge, "nothing held after a delivered answer", |h| {
        h["sessions"]["heldAnswers"] == 0
    })
    .await;
}

#[actix_rt::test]
async fn a_2026_request_whose_stream_is_closed_is_cancelled() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw).await;
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {
        "name": "openclaw_chat", "arguments": {"message": "[[stream:100:100]] cancel me"},
        "_meta": {
            "progressToken": "p3",
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let head = format!(
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: openclaw_chat"
    );
    let mut call = Raw::send(bridge.port, &head, &body).await;
    call.until("progress of the streamed answer", |r| {
        r.text.contains("notifications/progress")
    })
    .await;
    assert_eq!(gw.aborted_streams(), 0);
    drop(call);
    // Closing the stream is the cancellation: the gateway request is aborted.
    let deadline = Instant::now() + WAIT;
    while gw.aborted_streams() == 0 {
        assert!(
            Instant::now() < deadline,
            "the gateway request was not aborted"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(gw.aborted_streams(), 1);
    assert_eq!(
        gw.state.completed.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the answer never ran to its end"
    );
}

// ------------------------------------------------------------------------------------------------
// Duplicate request ids

#[actix_rt::test]
async fn a_duplicate_id_in_a_streamable_http_session_is_refused_and_the_first_call_completes() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw).await;
    let session = open_session(&bridge).await;
    let mut first = Raw::send(
        bridge.port,
        &post_head(&session),
        &chat(9, "[[delay:1500]] first"),
    )
    .await;
    first
        .until("the first call's stream", |r| r.last_event_id().is_some())
        .await;

    let started = Instant::now();
    let mut duplicate = Raw::send(bridge.port, &post_head(&session), &chat(9, "second")).await;
    duplicate.read_to_end().await;
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the duplicate is answered at once, not after the first call: {:?}",
        started.elapsed()
    );
    assert_eq!(duplicate.status(), 200, "{}", duplicate.text);
    let refused = duplicate
        .answer(&json!(9))
        .unwrap_or_else(|| panic!("an error for the duplicate:\n{}", duplicate.text));
    assert_eq!(refused["error"]["code"], -32600, "{refused}");

    first
        .until("the first call's answer", |r| r.answer(&json!(9)).is_some())
        .await;
    assert_eq!(
        result_text(&first.answer(&json!(9)).unwrap()),
        "echo: [[delay:1500]] first"
    );
    assert_eq!(
        gw.messages(),
        ["[[delay:1500]] first"],
        "the duplicate never reached the gateway"
    );
    // Once answered, the id may be used again.
    let mut again = Raw::send(bridge.port, &post_head(&session), &chat(9, "again")).await;
    again
        .until("the reused id's answer", |r| r.answer(&json!(9)).is_some())
        .await;
    assert_eq!(
        result_text(&again.answer(&json!(9)).unwrap()),
        "echo: again"
    );
}

#[actix_rt::test]
async fn a_duplicate_id_on_legacy_sse_gets_an_error_on_the_stream_and_the_first_call_completes() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw).await;
    let (status, mut sse) = SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    let endpoint = sse.next(WAIT).await.unwrap();
    let messages = bridge.url(&endpoint.data);
    let json = ("Content-Type", "application/json");
    assert_eq!(post(&messages, &[json], &initialize_body(1)).await.0, 202);
    assert_eq!(sse.next_message(WAIT).await["id"], 1);
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(post(&messages, &[json], initialized).await.0, 202);

    let (status, _, _) = post(&messages, &[json], &chat(5, "[[delay:1500]] first")).await;
    assert_eq!(status, 202);
    // The duplicate is accepted like any message (202); its answer, an error, comes on the
    // stream where every answer of this transport comes, before the first call's answer.
    let (status, _, _) = post(&messages, &[json], &chat(5, "second")).await;
    assert_eq!(status, 202);
    let refused = sse.next_message(WAIT).await;
    assert_eq!(refused["id"], 5, "{refused}");
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    let answer = sse.next_message(WAIT).await;
    assert_eq!(answer["id"], 5, "{answer}");
    assert_eq!(result_text(&answer), "echo: [[delay:1500]] first");
    assert_eq!(gw.messages(), ["[[delay:1500]] first"]);
    // Once answered, the id may be used again.
    let (status, _, _) = post(&messages, &[json], &chat(5, "again")).await;
    assert_eq!(status, 202);
    assert_eq!(result_text(&sse.next_message(WAIT).await), "echo: again");
}

#[tokio::test]
async fn a_duplicate_id_over_stdio_is_answered_by_the_bridge_and_the_first_call_completes() {
    let gw = FakeGateway::start();
    let mut child = tokio::process::Command::new(binary())
        .env_clear()
        .env("OPENCLAW_URL", &gw.url)
        .env("OPENCLAW_MCP_DATA_DIR", ":memory:")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut send = async |line: String| {
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
    };
    send(initialize_body(1)).await;
    let init: Value = serde_json::from_str(
        &tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(init["id"], 1);
    send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string()).await;
    send(chat(3, "[[delay:1500]] first")).await;
    send(chat(3, "second")).await;
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("stdout is open");
        serde_json::from_str(&line).unwrap()
    };
    let refused = next().await;
    assert_eq!(refused["id"], 3, "{refused}");
    assert_eq!(refused["error"]["code"], -32600, "{refused}");
    let answer = next().await;
    assert_eq!(answer["id"], 3, "{answer}");
    assert_eq!(result_text(&answer), "echo: [[delay:1500]] first");
    assert_eq!(gw.messages(), ["[[delay:1500]] first"]);
    // Once answered, the id may be used again.
    send(chat(3, "again")).await;
    assert_eq!(result_text(&next().await), "echo: again");
}

// ------------------------------------------------------------------------------------------------
// Legacy SSE streams that close

#[actix_rt::test]
async fn a_legacy_session_ends_within_5_s_of_its_stream_closing() {
    let gw = FakeGateway::start();
    let bridge = bridge_for(&gw).await;
    let mut stream = Raw::send(
        bridge.port,
        "GET /sse HTTP/1.1\r\nAccept: text/event-stream",
        "",
    )
    .await;
    stream
        .until("the endpoint event", |r| r.text.contains("event: endpoint"))
        .await;
    assert_eq!(bridge.health().await["sessions"]["legacySse"], 1);
    drop(stream);
    let closed = Instant::now();
    health_until(&bridge, "the legacy session to end", |h| {
        h["sessions"]["legacySse"] == 0
    })
    .await;
    assert!(
        closed.elapsed() < Duration::from_secs(5),
        "the session ended {:?} after its stream closed",
        closed.elapsed()
    );
}
