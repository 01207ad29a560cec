//! Shared test helpers: a fake OpenClaw gateway (actix-web on a loopback port 0, in its own
//! thread) that records every request and misbehaves on demand, and ways to drive the bridge
//! through a real MCP client: the real binary over stdio, or the app in-process over a pipe.
//!
//! The fake gateway's behaviour for one chat is chosen by a marker in the user message, so tests
//! running at the same time never disturb each other:
//! `[[delay:MS]]`, `[[status:CODE]]`, `[[garbage]]`, `[[hang]]`, `[[huge:BYTES]]`, `[[null]]`,
//! `[[nochoices]]`, `[[stream:CHUNKS:MS]]` (a slow stream), `[[stream-error]]` (the real gateway's
//! in-band error chunk), `[[die]]` (the connection drops mid-answer), `[[ignore-stream]]` (plain
//! JSON even when a stream was asked for), `[[stall:MS]]` (role chunk, then silence),
//! `[[hostile-error]]` (a 500 whose JSON error message holds CR, LF, ESC colour codes, a C1
//! control and a line separator), `[[huge-error:BYTES]]` (an error message of BYTES bytes: the
//! in-band error chunk of a stream, or, unstreamed, a 500 JSON body).

#![allow(dead_code, clippy::unwrap_used)]

use std::{
    collections::BTreeMap,
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicUsize, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::stream;
use serde_json::{Map, Value, json};

/// One request the fake gateway received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

#[derive(Default)]
pub struct State {
    pub token: Mutex<Option<String>>,
    /// Status the session-less probe (`{}`) gets; `None` = the real gateway's 400.
    pub probe_status: Mutex<Option<u16>>,
    /// Status of `/readyz`.
    pub readyz_status: AtomicU16,
    pub requests: Mutex<Vec<Recorded>>,
    /// Response streams dropped before they finished (the client closed the connection).
    pub aborted_streams: AtomicUsize,
    /// Chat answers that ran to their end.
    pub completed: AtomicUsize,
    /// Session key → (user text, assistant text) turns, as the real gateway keeps them.
    pub sessions: Mutex<BTreeMap<String, Vec<(String, String)>>>,
    /// Chat requests being answered right now, and the most seen at once.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
}

/// Counts a request as in flight while it lives.
struct InFlight(Arc<State>);

impl InFlight {
    fn new(state: Arc<State>) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A fake OpenClaw gateway on 127.0.0.1.
pub struct FakeGateway {
    pub url: String,
    pub port: u16,
    pub state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
}

/// The argument of marker `[[name]]` or `[[name:arg]]` in `text`.
fn marker(text: &str, name: &str) -> Option<String> {
    let exact = format!("[[{name}]]");
    if text.contains(&exact) {
        return Some(String::new());
    }
    let start = text.find(&format!("[[{name}:"))?;
    let rest = &text[start + 3 + name.len()..];
    let end = rest.find("]]")?;
    Some(rest[..end].to_string())
}

/// The error message of `[[hostile-error]]`: what a hostile gateway would write to forge a log
/// line, recolour a terminal or hide text.
pub const HOSTILE_ERROR: &str = "boom\r\n2026-01-01T00:00:00.000000Z  INFO forged line\u{1b}[31mred\u{1b}[0m\u{9b}2J\u{2028}end";

fn json_error(status: u16, message: &str, kind: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": {"message": message, "type": kind}}))
}

fn completion(model: &str, content: Value) -> Value {
    json!({
        "id": "chatcmpl_test", "object": "chat.completion", "created": 1, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    })
}

fn chunk(delta: Value, finish: Value) -> Bytes {
    Bytes::from(format!(
        "data: {}\n\n",
        json!({"id": "chatcmpl_test", "object": "chat.completion.chunk", "created": 1, "model": "openclaw",
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    ))
}

/// Counts a stream as aborted if it is dropped before its end.
struct AbortProbe {
    state: Arc<State>,
    finished: bool,
}

impl Drop for AbortProbe {
    fn drop(&mut self) {
        if !self.finished {
            self.state.aborted_streams.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn sse(state: Arc<State>, items: Vec<(Duration, Result<Bytes, ()>)>) -> HttpResponse {
    let probe = AbortProbe {
        state,
        finished: false,
    };
    let body = stream::unfold(
        (items.into_iter(), probe),
        |(mut items, mut probe)| async move {
            match items.next() {
                Some((delay, item)) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    let item = item
                        .map_err(|_| actix_web::error::ErrorInternalServerError("gateway died"));
                    Some((item, (items, probe)))
                }
                None => {
                    probe.finished = true;
                    probe.state.completed.fetch_add(1, Ordering::SeqCst);
                    None
                }
            }
        },
    );
    HttpResponse::Ok()
        .content_type("text/event-stream; charset=utf-8")
        .streaming(body)
}

async fn chat(req: HttpRequest, body: web::Bytes, state: web::Data<Arc<State>>) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect::<BTreeMap<_, _>>();
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    state.requests.lock().unwrap().push(Recorded {
        method: req.method().to_string(),
        path: req.path().to_string(),
        headers: headers.clone(),
        body: parsed.clone(),
    });
    if let Some(token) = state.token.lock().unwrap().clone()
        && headers.get("authorization") != Some(&format!("Bearer {token}"))
    {
        return json_error(401, "Unauthorized", "unauthorized");
    }
    let text = parsed
        .get("messages")
        .and_then(|m| m.as_array())
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(|c| match c {
            Value::String(s) => Some(s.clone()),
            // Content parts: the text parts joined (images ride along).
            Value::Array(parts) => Some(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(""),
            ),
            _ => None,
        });
    let Some(text) = text else {
        if let Some(status) = *state.probe_status.lock().unwrap() {
            return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
                .content_type("text/plain")
                .body("probe answer");
        }
        return json_error(
            400,
            "Missing user message in `messages`.",
            "invalid_request_error",
        );
    };
    let stream = parsed.get("stream").and_then(Value::as_bool) == Some(true);
    let model = parsed
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("openclaw")
        .to_string();
    let reply = format!("echo: {text}");
    let _in_flight = InFlight::new(state.get_ref().clone());
    let agent = headers
        .get("x-openclaw-agent-id")
        .cloned()
        .unwrap_or_else(|| "main".to_string());
    if agent == "ghost" {
        return json_error(400, "Unknown agent 'ghost'.", "invalid_request_error");
    }
    if let Some(key) = headers.get("x-openclaw-session-key") {
        state
            .sessions
            .lock()
            .unwrap()
            .entry(format!("agent:{agent}:{key}"))
            .or_default()
            .push((text.clone(), reply.clone()));
    }

    if let Some(ms) = marker(&text, "delay") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    if marker(&text, "hostile-error").is_some() {
        return json_error(500, HOSTILE_ERROR, "api_error");
    }
    if let Some(size) = marker(&text, "huge-error") {
        let message = "e".repeat(size.parse().unwrap());
        if !stream {
            return json_error(500, &message, "api_error");
        }
        let event = format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "api_error"}})
        );
        return sse(
            state.get_ref().clone(),
            vec![
                (
                    Duration::ZERO,
                    Ok(chunk(json!({"role": "assistant"}), Value::Null)),
                ),
                (Duration::ZERO, Ok(Bytes::from(event))),
            ],
        );
    }
    if let Some(code) = marker(&text, "status") {
        let code: u16 = code.parse().unwrap();
        return json_error(code, &format!("fake failure {code}"), "api_error");
    }
    if marker(&text, "garbage").is_some() {
        return HttpResponse::Ok()
            .content_type("application/json")
            .body("hello not json");
    }
    if marker(&text, "hang").is_some() {
        std::future::pending::<()>().await;
    }
    if let Some(size) = marker(&text, "huge") {
        let size: usize = size.parse().unwrap();
        let filler = "x".repeat(size);
        return HttpResponse::Ok().json(completion(&model, json!(filler)));
    }
    if marker(&text, "null").is_some() {
        return HttpResponse::Ok().json(completion(&model, Value::Null));
    }
    if marker(&text, "nochoices").is_some() {
        return HttpResponse::Ok().json(json!({"id": "x", "object": "chat.completion"}));
    }
    if !stream || marker(&text, "ignore-stream").is_some() {
        state.completed.fetch_add(1, Ordering::SeqCst);
        return HttpResponse::Ok().json(completion(&model, json!(reply)));
    }
    let role = (
        Duration::ZERO,
        Ok(chunk(json!({"role": "assistant"}), Value::Null)),
    );
    let finish = (Duration::ZERO, Ok(chunk(json!({}), json!("stop"))));
    let done = (Duration::ZERO, Ok(Bytes::from_static(b"data: [DONE]\n\n")));
    let state = state.get_ref().clone();
    if let Some(spec) = marker(&text, "stream") {
        let (n, ms) = spec.split_once(':').unwrap();
        let (n, ms): (usize, u64) = (n.parse().unwrap(), ms.parse().unwrap());
        let mut items = vec![role];
        for i in 0..n {
            items.push((
                Duration::from_millis(ms),
                Ok(chunk(json!({"content": format!("part{i} ")}), Value::Null)),
            ));
        }
        items.extend([finish, done]);
        return sse(state, items);
    }
    if marker(&text, "stream-error").is_some() {
        return sse(
            state,
            vec![
                role,
                (Duration::ZERO, Ok(chunk(json!({"content": "partial "}), Value::Null))),
                (
                    Duration::from_millis(20),
                    Ok(Bytes::from_static(
                        b"data: {\"error\":{\"message\":\"upstream provider error\",\"type\":\"api_error\"}}\n\n",
                    )),
                ),
                done,
            ],
        );
    }
    if marker(&text, "die").is_some() {
        return sse(
            state,
            vec![
                role,
                (
                    Duration::ZERO,
                    Ok(chunk(json!({"content": "partial "}), Value::Null)),
                ),
                (Duration::from_millis(20), Err(())),
            ],
        );
    }
    if let Some(ms) = marker(&text, "stall") {
        return sse(
            state,
            vec![
                role,
                (
                    Duration::from_millis(ms.parse().unwrap()),
                    Ok(chunk(json!({"content": "late"}), Value::Null)),
                ),
                finish,
                done,
            ],
        );
    }
    let mut items = vec![role];
    for word in reply.split_inclusive(' ') {
        items.push((
            Duration::ZERO,
            Ok(chunk(json!({"content": word}), Value::Null)),
        ));
    }
    items.extend([finish, done]);
    sse(state, items)
}

async fn models() -> HttpResponse {
    let model =
        |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "openclaw"});
    HttpResponse::Ok().json(json!({"object": "list", "data": [
        model("openclaw"), model("openclaw/default"), model("openclaw/main"), model("openclaw/ops")
    ]}))
}

/// `POST /tools/invoke` with the real gateway's shapes for `sessions_list` and `sessions_history`.
async fn tools_invoke(body: web::Json<Value>, state: web::Data<Arc<State>>) -> HttpResponse {
    let wrap = |v: Value| {
        HttpResponse::Ok().json(
            json!({"ok": true, "result": {"content": [{"type": "text", "text": v.to_string()}]}}),
        )
    };
    let sessions = state.sessions.lock().unwrap().clone();
    match body.get("tool").and_then(Value::as_str) {
        Some("sessions_list") => {
            let rows: Vec<Value> = sessions
                .iter()
                .map(|(key, turns)| json!({"key": key, "kind": "other", "messageCount": turns.len() * 2}))
                .collect();
            wrap(json!({"count": rows.len(), "sessions": rows}))
        }
        Some("sessions_history") => {
            let key = body["args"]["sessionKey"].as_str().unwrap_or("");
            let messages: Vec<Value> = sessions
                .get(key)
                .map(|turns| {
                    turns
                        .iter()
                        .flat_map(|(u, a)| {
                            [
                                json!({"role": "user", "content": u}),
                                json!({"role": "assistant", "content": a}),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            wrap(json!({"sessionKey": key, "messages": messages}))
        }
        _ => HttpResponse::NotFound().json(
            json!({"ok": false, "error": {"type": "not_found", "message": "Tool not available"}}),
        ),
    }
}

impl FakeGateway {
    /// Starts a gateway on a free loopback port.
    pub fn start() -> FakeGateway {
        Self::start_on(0)
    }

    /// Starts a gateway on `port` (0 = any), e.g. to bring a stopped one back.
    pub fn start_on(port: u16) -> FakeGateway {
        Self::start_with_state(port, Arc::new(State::default()))
    }

    fn start_with_state(port: u16, state: Arc<State>) -> FakeGateway {
        if state.readyz_status.load(Ordering::SeqCst) == 0 {
            state.readyz_status.store(200, Ordering::SeqCst);
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let thread_state = state.clone();
        std::thread::spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
                let port = listener.local_addr().unwrap().port();
                let data = web::Data::new(thread_state);
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                        .route("/v1/chat/completions", web::post().to(chat))
                        .route("/v1/models", web::get().to(models))
                        .route("/tools/invoke", web::post().to(tools_invoke))
                        .route(
                            "/readyz",
                            web::get().to(|state: web::Data<Arc<State>>| async move {
                                let status = state.readyz_status.load(Ordering::SeqCst);
                                HttpResponse::build(
                                    actix_web::http::StatusCode::from_u16(status).unwrap(),
                                )
                                .json(json!({"ready": status == 200}))
                            }),
                        )
                })
                .workers(2)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .unwrap()
                .run();
                tx.send((port, server.handle())).unwrap();
                let _ = server.await;
            });
        });
        let (port, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        FakeGateway {
            url: format!("http://127.0.0.1:{port}"),
            port,
            state,
            handle,
        }
    }

    pub fn with_token(self, token: &str) -> Self {
        *self.state.token.lock().unwrap() = Some(token.to_string());
        self
    }

    pub fn set_probe_status(&self, status: Option<u16>) {
        *self.state.probe_status.lock().unwrap() = status;
    }

    pub fn set_readyz_status(&self, status: u16) {
        self.state.readyz_status.store(status, Ordering::SeqCst);
    }

    /// All chat requests that carried a user message (probes left out).
    pub fn chats(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body.get("messages").is_some())
            .cloned()
            .collect()
    }

    /// All probe requests (body `{}`).
    pub fn probes(&self) -> Vec<Recorded> {
        self.state
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body == json!({}))
            .cloned()
            .collect()
    }

    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }

    /// User messages of the chat requests, in arrival order.
    pub fn messages(&self) -> Vec<String> {
        self.chats()
            .iter()
            .filter_map(|r| match &r.body["messages"][0]["content"] {
                Value::String(s) => Some(s.clone()),
                Value::Array(parts) => parts
                    .iter()
                    .find_map(|p| p.get("text").and_then(Value::as_str))
                    .map(str::to_string),
                _ => None,
            })
            .collect()
    }

    pub fn aborted_streams(&self) -> usize {
        self.state.aborted_streams.load(Ordering::SeqCst)
    }

    /// Stops the gateway: its port then refuses connections.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

/// A loopback URL on which nothing listens.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Builds tool-call parameters.
pub fn call(name: &str, args: Value) -> rmcp::model::CallToolRequestParams {
    let params = rmcp::model::CallToolRequestParams::new(name.to_string());
    match args {
        Value::Object(map) => params.with_arguments(map),
        Value::Null => params,
        other => panic!("arguments must be an object, got {other}"),
    }
}

/// The text of a tool result's first content block.
pub fn text(result: &rmcp::model::CallToolResult) -> String {
    result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .unwrap_or_default()
}

/// Whether the result is a tool error.
pub fn is_error(result: &rmcp::model::CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// The result's JSON text parsed.
pub fn json_of(result: &rmcp::model::CallToolResult) -> Value {
    serde_json::from_str(&text(result))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", text(result)))
}

pub fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Waits (bounded) until `check` holds; panics with `what` otherwise.
pub async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub mod bridge;
pub mod http;
pub mod raw;
