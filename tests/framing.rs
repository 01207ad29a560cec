//! Every HTTP/1.1 shape a valid gateway may give its answers is read whole: a body that ends when
//! the server closes the connection (no `Content-Length`, no chunked; RFC 9112 §6.3 rule 8),
//! HTTP/1.0 answers, interim `100 Continue` and `103 Early Hints` before the final answer, a
//! 4 MB answer on one SSE line; and a connection reset in the middle of a streamed answer is still
//! the clear "broke before the answer was complete" error.
//!
//! The gateway here is written by hand over tokio's TCP (not actix-web, unlike
//! `common::FakeGateway`), so that it shares none of the client's assumptions: it writes the
//! bytes of each answer exactly as a test names them. Every tool that reaches a gateway is driven
//! through it (chat streamed and not, async chat, status with its probe and `/readyz`, agents
//! over `/v1/models`, sessions over `/tools/invoke`).

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use common::{
    bridge::{InProcess, settings},
    call, is_error, json_of, text,
};
use rmcp::{RoleClient, service::RunningService};
use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// How the raw gateway frames its answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// `HTTP/1.1 200 OK`, neither `Content-Length` nor `Transfer-Encoding` nor `Connection`
    /// header: the body ends when the connection closes.
    Close,
    /// `HTTP/1.0 200 OK`, the body ending with the connection.
    Http10,
    /// `HTTP/1.1 100 Continue` and `HTTP/1.1 103 Early Hints` (with a `Link` header) before a
    /// final answer with `Content-Length` (streams: ending with the connection).
    Interim,
}

/// What the raw gateway saw and did.
#[derive(Default)]
struct Seen {
    /// (method, path, body) of every request.
    requests: Mutex<Vec<(String, String, Value)>>,
    /// Interim `1xx` answers written.
    interim: AtomicUsize,
    /// Connections reset on purpose (`[[reset:N]]`).
    resets: AtomicUsize,
}

/// A gateway written with raw tokio TCP on a loopback port 0, in its own thread and runtime.
struct RawGateway {
    url: String,
    seen: Arc<Seen>,
}

impl RawGateway {
    fn start(framing: Framing) -> RawGateway {
        let seen = Arc::new(Seen::default());
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_seen = seen.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap().port()).unwrap();
                loop {
                    let (stream, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(stream, framing, thread_seen.clone()));
                }
            });
        });
        let port = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        RawGateway {
            url: format!("http://127.0.0.1:{port}"),
            seen,
        }
    }

    fn chats(&self) -> usize {
        self.seen
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, path, body)| {
                path == "/v1/chat/completions" && body.get("messages").is_some()
            })
            .count()
    }
}

/// Reads one request (head, then `Content-Length` bytes of body); `None` if the peer closed.
async fn read_request(stream: &mut TcpStream) -> Option<(String, String, Value)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut request_line = head.lines().next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        bytes.extend_from_slice(&buf[..n]);
    }
    let body = serde_json::from_slice(&bytes[head_end..head_end + length]).unwrap_or(Value::Null);
    Some((method, path, body))
}

/// The head of an answer in `framing`; `length` is given only for [`Framing::Interim`] answers
/// that are not streams.
fn head(framing: Framing, status: &str, content_type: &str, length: Option<usize>) -> String {
    let version = if framing == Framing::Http10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let mut head = format!("{version} {status}\r\nContent-Type: {content_type}\r\n");
    if let Some(length) = length {
        head.push_str(&format!(
            "Content-Length: {length}\r\nConnection: close\r\n"
        ));
    }
    head.push_str("\r\n");
    head
}

/// Writes a whole (non-streamed) answer, then closes the connection.
async fn answer(stream: &mut TcpStream, framing: Framing, status: &str, body: &str) {
    let length = (framing == Framing::Interim).then_some(body.len());
    let mut bytes = head(framing, status, "application/json", length).into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    stream.write_all(&bytes).await.unwrap();
    let _ = stream.shutdown().await;
}

fn completion(content: &str) -> String {
    json!({
        "id": "chatcmpl_raw", "object": "chat.completion", "created": 1, "model": "openclaw",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
    .to_string()
}

fn chunk(delta: Value, finish: Value) -> String {
    format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl_raw", "object": "chat.completion.chunk", "created": 1, "model": "openclaw",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    )
}

/// The argument of marker `[[name:arg]]` (or `""` for `[[name]]`) in `text`.
fn marker(text: &str, name: &str) -> Option<String> {
    if text.contains(&format!("[[{name}]]")) {
        return Some(String::new());
    }
    let start = text.find(&format!("[[{name}:"))? + name.len() + 3;
    let end = text[start..].find("]]")? + start;
    Some(text[start..end].to_string())
}

/// Serves one connection: one request, one answer, then the connection closes.
async fn serve(mut stream: TcpStream, framing: Framing, seen: Arc<Seen>) {
    let Some((method, path, body)) = read_request(&mut stream).await else {
        return;
    };
    seen.requests
        .lock()
        .unwrap()
        .push((method.clone(), path.clone(), body.clone()));
    if framing == Framing::Interim {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .unwrap();
        stream
            .write_all(
                b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload; as=style\r\n\r\n",
            )
            .await
            .unwrap();
        seen.interim.fetch_add(2, Ordering::SeqCst);
    }
    match path.as_str() {
        "/readyz" => {
            return answer(&mut stream, framing, "200 OK", r#"{"ready":true}"#).await;
        }
        "/v1/models" => {
            let models = json!({"object": "list", "data": [
                {"id": "openclaw", "object": "model"}, {"id": "openclaw/main", "object": "model"}
            ]});
            return answer(&mut stream, framing, "200 OK", &models.to_string()).await;
        }
        "/tools/invoke" => {
            let list = json!({"count": 1, "sessions": [{"key": "agent:main:raw", "kind": "other", "messageCount": 2}]});
            let result = json!({"ok": true, "result": {"content": [{"type": "text", "text": list.to_string()}]}});
            return answer(&mut stream, framing, "200 OK", &result.to_string()).await;
        }
        "/v1/chat/completions" => {}
        _ => return answer(&mut stream, framing, "404 Not Found", "{}").await,
    }
    let Some(message) = body["messages"][0]["content"].as_str().map(str::to_string) else {
        // The session-less probe (`{}`): the real gateway's 400.
        let error = r#"{"error":{"message":"Missing user message in `messages`.","type":"invalid_request_error"}}"#;
        return answer(&mut stream, framing, "400 Bad Request", error).await;
    };
    let reply = format!("echo: {message}");
    if marker(&message, "json").is_some() || body["stream"] != json!(true) {
        return answer(&mut stream, framing, "200 OK", &completion(&reply)).await;
    }

    // A stream, always ended by the close of the connection (a stream's length is not known when
    // it starts).
    let head = head(framing, "200 OK", "text/event-stream; charset=utf-8", None);
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut events = vec![chunk(json!({"role": "assistant"}), Value::Null)];
    if let Some(size) = marker(&message, "big") {
        // One delta of `size` bytes of text: one `data:` line of about that length.
        let text = "x".repeat(size.parse().unwrap());
        events.push(chunk(json!({"content": text}), Value::Null));
    } else {
        for word in reply.split_inclusive(' ') {
            events.push(chunk(json!({"content": word}), Value::Null));
        }
    }
    let reset_after = marker(&message, "reset").map(|n| n.parse::<usize>().unwrap());
    let cut_after = marker(&message, "cut").map(|n| n.parse::<usize>().unwrap());
    events.push(chunk(json!({}), json!("stop")));
    if marker(&message, "no-done").is_none() {
        events.push("data: [DONE]\n\n".to_string());
    }
    for (i, event) in events.iter().enumerate() {
        if reset_after == Some(i) {
            // SO_LINGER 0: closing sends a TCP reset instead of the orderly end of the stream.
            socket2::SockRef::from(&stream)
                .set_linger(Some(Duration::ZERO))
                .unwrap();
            seen.resets.fetch_add(1, Ordering::SeqCst);
            return;
        }
        if cut_after == Some(i) {
            let _ = stream.shutdown().await;
            return;
        }
        // Big events go out in pieces, as a socket would carry them.
        for piece in event.as_bytes().chunks(16 * 1024) {
            if stream.write_all(piece).await.is_err() {
                return;
            }
        }
        // Chunks over time, as a model writes them.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let _ = stream.shutdown().await;
}

type Client = RunningService<RoleClient, ()>;

async fn tool(client: &Client, name: &str, args: Value) -> rmcp::model::CallToolResult {
    client.call_tool(call(name, args)).await.unwrap()
}

/// Polls (bounded, 20 s) until the task is no longer pending or running; returns its status.
async fn finished_task(client: &Client, id: &str) -> Value {
    for _ in 0..400 {
        let status = json_of(&tool(client, "openclaw_task_status", json!({"task_id": id})).await);
        if status["status"] != "pending" && status["status"] != "running" {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} never finished");
}

async fn queue(client: &Client, message: &str) -> String {
    let queued = tool(client, "openclaw_chat_async", json!({"message": message})).await;
    assert!(!is_error(&queued), "{}", text(&queued));
    json_of(&queued)["task_id"].as_str().unwrap().to_string()
}

/// Every tool that reaches the gateway gets its whole answer in `framing`; returns the gateway.
async fn every_call_is_read_whole(framing: Framing) -> RawGateway {
    let gw = RawGateway::start(framing);
    let app = InProcess::start(&settings(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_HEALTH_INTERVAL_MS", "3600000"),
        ],
    ))
    .await;
    let client = &app.client;

    // rmcp's client asks for progress, so openclaw_chat streams.
    let streamed = tool(
        client,
        "openclaw_chat",
        json!({"message": "hello over a stream"}),
    )
    .await;
    assert!(!is_error(&streamed), "{framing:?}: {}", text(&streamed));
    assert_eq!(text(&streamed), "echo: hello over a stream", "{framing:?}");

    let plain = tool(
        client,
        "openclaw_chat",
        json!({"message": "[[json]] plain"}),
    )
    .await;
    assert!(!is_error(&plain), "{framing:?}: {}", text(&plain));
    assert_eq!(text(&plain), "echo: [[json]] plain", "{framing:?}");

    let no_done = tool(
        client,
        "openclaw_chat",
        json!({"message": "[[no-done]] ends"}),
    )
    .await;
    assert_eq!(text(&no_done), "echo: [[no-done]] ends", "{framing:?}");

    let id = queue(client, "hello as a task").await;
    let done = finished_task(client, &id).await;
    assert_eq!(done["status"], "completed", "{framing:?}: {done}");
    assert_eq!(done["result"], "echo: hello as a task", "{framing:?}");
    assert_eq!(done["progress_chars"], 21, "{framing:?}");

    let status = tool(client, "openclaw_status", json!({})).await;
    assert!(!is_error(&status), "{framing:?}: {}", text(&status));
    let status = json_of(&status);
    assert_eq!(status["status"], "ok", "{framing:?}: {status}");
    assert_eq!(status["http_status"], 400, "{framing:?}");
    assert_eq!(status["ready"], true, "{framing:?}: /readyz read whole");

    let agents = tool(client, "openclaw_agents", json!({})).await;
    assert!(!is_error(&agents), "{framing:?}: {}", text(&agents));
    assert_eq!(
        json_of(&agents)["models"],
        json!(["openclaw", "openclaw/main"])
    );

    let sessions = tool(client, "openclaw_sessions", json!({})).await;
    assert!(!is_error(&sessions), "{framing:?}: {}", text(&sessions));
    let sessions = json_of(&sessions);
    assert_eq!(sessions["count"], 1, "{framing:?}: {sessions}");
    assert_eq!(sessions["sessions"][0]["key"], "agent:main:raw");
    assert_eq!(gw.chats(), 4);
    gw
}

#[actix_rt::test]
async fn answers_that_end_with_the_connection_are_read_whole() {
    let _ = every_call_is_read_whole(Framing::Close).await;
}

#[actix_rt::test]
async fn http_1_0_answers_are_read_whole() {
    let _ = every_call_is_read_whole(Framing::Http10).await;
}

#[actix_rt::test]
async fn interim_100_and_103_answers_are_skipped() {
    let gw = every_call_is_read_whole(Framing::Interim).await;
    // Two interim answers before each final one, and there were at least 8 requests.
    let requests = gw.seen.requests.lock().unwrap().len();
    assert!(requests >= 8, "{requests}");
    assert_eq!(gw.seen.interim.load(Ordering::SeqCst), 2 * requests);
}

#[actix_rt::test]
async fn a_4_mb_answer_on_one_sse_line_arrives_whole() {
    const SIZE: usize = 4 * 1024 * 1024;
    let gw = RawGateway::start(Framing::Close);
    let app = InProcess::start(&settings(&[], &[("OPENCLAW_URL", gw.url.as_str())])).await;
    let big = tool(
        &app.client,
        "openclaw_chat",
        json!({"message": format!("[[big:{SIZE}]]")}),
    )
    .await;
    assert!(
        !is_error(&big),
        "{}",
        &text(&big)[..200.min(text(&big).len())]
    );
    let answer = text(&big);
    assert_eq!(answer.len(), SIZE);
    assert!(answer.bytes().all(|b| b == b'x'));

    let id = queue(&app.client, &format!("[[big:{SIZE}]]")).await;
    let done = finished_task(&app.client, &id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"].as_str().unwrap().len(), SIZE);
    assert_eq!(done["progress_chars"], SIZE);
}

#[actix_rt::test]
async fn a_connection_reset_mid_stream_is_the_clear_error() {
    for framing in [Framing::Close, Framing::Http10, Framing::Interim] {
        let gw = RawGateway::start(framing);
        let app = InProcess::start(&settings(&[], &[("OPENCLAW_URL", gw.url.as_str())])).await;
        let broke = format!(
            "Error: The connection to OpenClaw at {} broke before the answer was complete",
            gw.url
        );
        // Role chunk and two of the four deltas, then a reset.
        let reset = tool(
            &app.client,
            "openclaw_chat",
            json!({"message": "[[reset:3]] one two"}),
        )
        .await;
        assert!(is_error(&reset));
        assert_eq!(
            text(&reset),
            format!("{broke}: connection reset"),
            "{framing:?}"
        );
        assert_eq!(gw.seen.resets.load(Ordering::SeqCst), 1);

        // An orderly close at the same point: the body ends, the answer does not.
        let cut = tool(
            &app.client,
            "openclaw_chat",
            json!({"message": "[[cut:3]] one two"}),
        )
        .await;
        assert!(is_error(&cut));
        assert_eq!(
            text(&cut),
            format!("{broke}: the stream ended before the answer was complete"),
            "{framing:?}"
        );

        let id = queue(&app.client, "[[reset:3]] as a task").await;
        let failed = finished_task(&app.client, &id).await;
        assert_eq!(failed["status"], "failed", "{framing:?}: {failed}");
        assert_eq!(
            failed["error"],
            format!("{}: connection reset", &broke["Error: ".len()..]),
            "{framing:?}"
        );
    }
}

#[actix_rt::test]
async fn an_https_gateway_is_spoken_to_in_tls_for_http_1_1() {
    // A server that reads the first flight and hangs up: what the client sent is all we need.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hello = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let n = stream.read(&mut buf).await.unwrap();
        buf.truncate(n);
        buf
    });
    let url = format!("https://127.0.0.1:{port}");
    let app = InProcess::start(&settings(
        &[],
        &[
            ("OPENCLAW_URL", url.as_str()),
            ("OPENCLAW_HEALTH_INTERVAL_MS", "3600000"),
        ],
    ))
    .await;
    let failed = tool(&app.client, "openclaw_chat", json!({"message": "hi"})).await;
    assert!(is_error(&failed));
    assert!(
        text(&failed).starts_with(&format!("Error: Failed to connect to OpenClaw at {url}: ")),
        "{}",
        text(&failed)
    );
    let hello = hello.await.unwrap();
    // A TLS handshake record carrying a ClientHello, offering HTTP/1.1 by ALPN and nothing else.
    assert_eq!(hello[0], 0x16, "a TLS handshake record");
    assert_eq!(hello[5], 0x01, "a ClientHello");
    let has = |needle: &[u8]| hello.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"\x08http/1.1"));
    assert!(!has(b"\x02h2"));
}
