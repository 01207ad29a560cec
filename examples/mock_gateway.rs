//! A small OpenAI-compatible echo gateway, to try the bridge without installing OpenClaw.
//!
//! ```text
//! cargo run --example mock_gateway -- --port 18789 --token dev-token --delay-ms 0
//! ```
//!
//! It answers like the real gateway where the bridge looks: `POST /v1/chat/completions` echoes the
//! last user message (`echo: <message>`), as JSON or, with `"stream": true`, as OpenAI chunks over
//! SSE; an empty body `{}` gets the gateway's 400 "Missing user message" (the bridge's health
//! probe); a wrong or missing token gets 401 when `--token` is set; `GET /readyz` says ready and
//! `GET /v1/models` lists the default agent. A chat with an `x-openclaw-session-key` is kept as
//! session `agent:<agent>:<key>`, which `POST /tools/invoke` lists (`sessions_list`) and replays
//! (`sessions_history`) in the real gateway's shapes. `--delay-ms` delays every chat answer.
//! A message containing `[[huge:BYTES]]` is answered with BYTES `x` characters instead of the
//! echo (at most [`MAX_HUGE_BYTES`]), for checking that a large answer reaches a client whole.
//! `GET /stats` counts the chats started, answered and aborted (the client closed the connection
//! while the answer was held back by `--delay-ms`, as the bridge does when a call is cancelled),
//! and lists the user messages that arrived more than once;
//! each abort also logs `mock gateway: chat aborted by the client` on stderr. A message holding
//! `[[drip:MS]]` gets its streamed answer one chunk every MS milliseconds, as a model produces it
//! (for progress notifications).

use std::{
    collections::BTreeMap,
    net::TcpListener,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// The largest answer `[[huge:BYTES]]` asks for (the bridge reads at most 10 MiB).
const MAX_HUGE_BYTES: usize = 8 * 1024 * 1024;

/// Session key → (user, assistant) turns, oldest first.
type Sessions = BTreeMap<String, Vec<(String, String)>>;

#[derive(Clone)]
struct Options {
    token: Option<String>,
    delay: Duration,
    sessions: Arc<Mutex<Sessions>>,
    stats: Arc<Stats>,
}

/// What `GET /stats` reports: chats with a user message, started / answered / aborted.
#[derive(Default)]
struct Stats {
    started: AtomicU64,
    completed: AtomicU64,
    aborted: AtomicU64,
    /// How often each user message arrived (several bridges on one task store must send each
    /// task's prompt once).
    seen: Mutex<std::collections::HashMap<String, u32>>,
}

/// Counts a chat as aborted when dropped before [`InFlight::answered`]: when the client closes
/// the connection while the answer is held back ([`peer_closed`]).
struct InFlight(Arc<Stats>, bool);

impl InFlight {
    fn start(stats: &Arc<Stats>) -> Self {
        stats.started.fetch_add(1, Ordering::SeqCst);
        InFlight(stats.clone(), false)
    }

    fn answered(mut self) {
        self.1 = true;
        self.0.completed.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if !self.1 {
            self.0.aborted.fetch_add(1, Ordering::SeqCst);
            eprintln!("mock gateway: chat aborted by the client");
        }
    }
}

fn usage() -> ! {
    eprintln!("usage: mock_gateway [--port PORT] [--token TOKEN] [--delay-ms MS] [--host HOST]");
    std::process::exit(64)
}

fn parse_args() -> (String, u16, Options) {
    let mut host = "127.0.0.1".to_string();
    let mut port = 18789u16;
    let mut options = Options {
        token: None,
        delay: Duration::ZERO,
        sessions: Arc::default(),
        stats: Arc::default(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match arg.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| usage()),
            "--host" => host = value(),
            "--token" => options.token = Some(value()).filter(|t| !t.is_empty()),
            "--delay-ms" => {
                options.delay = Duration::from_millis(value().parse().unwrap_or_else(|_| usage()))
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    (host, port, options)
}

/// A second handle on a connection's socket, taken when it is accepted ([`on_connect`]), so that
/// a handler can see the client close the connection: actix-web does not drop a handler's future
/// when that happens.
struct PeerSocket(std::net::TcpStream);

fn on_connect(conn: &dyn std::any::Any, data: &mut actix_web::dev::Extensions) {
    use std::os::fd::AsFd;
    if let Some(sock) = conn.downcast_ref::<actix_web::rt::net::TcpStream>()
        && let Ok(fd) = sock.as_fd().try_clone_to_owned()
    {
        data.insert(PeerSocket(std::net::TcpStream::from(fd)));
    }
}

/// Resolves once the client has closed the connection of `req` (end of stream on a peek); never
/// when there is no socket to watch.
async fn peer_closed(req: &HttpRequest) {
    let watched = req
        .conn_data::<PeerSocket>()
        .and_then(|p| p.0.try_clone().ok())
        .and_then(|s| tokio::net::TcpStream::from_std(s).ok());
    let Some(sock) = watched else {
        return std::future::pending().await;
    };
    let mut byte = [0u8; 1];
    loop {
        match sock.peek(&mut byte).await {
            Ok(0) | Err(_) => return,
            // A next request already sent on the connection: not a close; look again later.
            Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The `[[drip:MS]]` marker of a message: the pause before each chunk of its streamed answer.
fn drip(text: &str) -> Option<Duration> {
    let rest = &text[text.find("[[drip:")? + "[[drip:".len()..];
    let ms = rest[..rest.find("]]")?].parse().ok()?;
    Some(Duration::from_millis(ms))
}

fn error(status: u16, message: &str, kind: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default())
        .json(json!({"error": {"message": message, "type": kind}}))
}

fn authorized(req: &HttpRequest, options: &Options) -> bool {
    let Some(token) = &options.token else {
        return true;
    };
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| given == token)
}

/// The BYTES of a `[[huge:BYTES]]` marker in `text`, capped at [`MAX_HUGE_BYTES`].
fn huge_size(text: &str) -> Option<usize> {
    let rest = &text[text.find("[[huge:")? + "[[huge:".len()..];
    let bytes: usize = rest[..rest.find("]]")?].parse().ok()?;
    Some(bytes.min(MAX_HUGE_BYTES))
}

fn last_user_text(body: &Value) -> Option<String> {
    let messages = body.get("messages")?.as_array()?;
    let last = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))?;
    match last.get("content")? {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

async fn chat(req: HttpRequest, body: web::Bytes, options: web::Data<Options>) -> HttpResponse {
    if !authorized(&req, &options) {
        return error(401, "Unauthorized", "unauthorized");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "Invalid JSON body", "invalid_request_error");
    };
    let Some(text) = last_user_text(&body) else {
        return error(
            400,
            "Missing user message in `messages`.",
            "invalid_request_error",
        );
    };
    *options
        .stats
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(text.clone())
        .or_default() += 1;
    let in_flight = InFlight::start(&options.stats);
    if !options.delay.is_zero() {
        tokio::select! {
            _ = tokio::time::sleep(options.delay) => {}
            _ = peer_closed(&req) => {
                drop(in_flight); // counted as aborted
                return error(499, "Client closed request", "aborted");
            }
        }
    }
    in_flight.answered();
    let model = body
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("openclaw")
        .to_string();
    let reply = match huge_size(&text) {
        Some(bytes) => "x".repeat(bytes),
        None => format!("echo: {text}"),
    };
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(key) = header("x-openclaw-session-key") {
        let agent = header("x-openclaw-agent-id").unwrap_or("main");
        if let Ok(mut sessions) = options.sessions.lock() {
            sessions
                .entry(format!("agent:{agent}:{key}"))
                .or_default()
                .push((text.clone(), reply.clone()));
        }
    }
    let id = format!("chatcmpl_{}", uuid::Uuid::new_v4());
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        let chunk = |delta: Value, finish: Value| {
            format!(
                "data: {}\n\n",
                json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            )
        };
        let mut out = chunk(json!({"role": "assistant"}), Value::Null);
        for word in reply.split_inclusive(' ') {
            out.push_str(&chunk(json!({"content": word}), Value::Null));
        }
        out.push_str(&chunk(json!({}), json!("stop")));
        out.push_str("data: [DONE]\n\n");
        if let Some(every) = drip(&text) {
            let events: Vec<String> = out.split_inclusive("\n\n").map(str::to_string).collect();
            let stream = futures_util::stream::iter(events).then(move |event| async move {
                tokio::time::sleep(every).await;
                Ok::<_, std::convert::Infallible>(web::Bytes::from(event))
            });
            return HttpResponse::Ok()
                .content_type("text/event-stream; charset=utf-8")
                .streaming(stream);
        }
        return HttpResponse::Ok()
            .content_type("text/event-stream; charset=utf-8")
            .body(out);
    }
    HttpResponse::Ok().json(json!({
        "id": id, "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": text.len(), "completion_tokens": reply.len(), "total_tokens": text.len() + reply.len()}
    }))
}

async fn models(req: HttpRequest, options: web::Data<Options>) -> HttpResponse {
    if !authorized(&req, &options) {
        return error(401, "Unauthorized", "unauthorized");
    }
    let model = |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "openclaw", "permission": []});
    HttpResponse::Ok().json(json!({"object": "list", "data": [model("openclaw"), model("openclaw/default"), model("openclaw/main")]}))
}

/// `POST /tools/invoke`: `sessions_list` and `sessions_history`, answered as the real gateway
/// does (`{"ok":true,"result":{"content":[{"type":"text","text":"<json>"}]}}`); other tools 404.
async fn tools_invoke(
    req: HttpRequest,
    body: web::Bytes,
    options: web::Data<Options>,
) -> HttpResponse {
    if !authorized(&req, &options) {
        return error(401, "Unauthorized", "unauthorized");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return error(400, "Invalid JSON body", "invalid_request_error");
    };
    let wrap = |v: Value| {
        HttpResponse::Ok().json(
            json!({"ok": true, "result": {"content": [{"type": "text", "text": v.to_string()}]}}),
        )
    };
    let sessions = options
        .sessions
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let limit = body["args"]["limit"].as_u64().unwrap_or(50) as usize;
    match body.get("tool").and_then(Value::as_str) {
        Some("sessions_list") => {
            let rows: Vec<Value> = sessions
                .iter()
                .take(limit)
                .map(|(key, turns)| json!({"key": key, "kind": "other", "messageCount": turns.len() * 2}))
                .collect();
            wrap(json!({"count": rows.len(), "sessions": rows}))
        }
        Some("sessions_history") => {
            let key = body["args"]["sessionKey"].as_str().unwrap_or("");
            let turns = sessions.get(key).cloned().unwrap_or_default();
            let mut messages: Vec<Value> = turns
                .iter()
                .flat_map(|(user, assistant)| {
                    [
                        json!({"role": "user", "content": user}),
                        json!({"role": "assistant", "content": assistant}),
                    ]
                })
                .collect();
            let skip = messages.len().saturating_sub(limit);
            messages.drain(..skip);
            wrap(json!({"sessionKey": key, "messages": messages}))
        }
        _ => HttpResponse::NotFound().json(
            json!({"ok": false, "error": {"type": "not_found", "message": "Tool not available"}}),
        ),
    }
}

/// `GET /stats`: `{"chats": {"started": n, "completed": n, "aborted": n, "distinct": n,
/// "repeated": [messages that arrived more than once]}}`.
async fn stats(options: web::Data<Options>) -> HttpResponse {
    let s = &options.stats;
    let seen = s.seen.lock().unwrap_or_else(|e| e.into_inner());
    let repeated: Vec<&String> = seen
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(m, _)| m)
        .collect();
    HttpResponse::Ok().json(json!({"chats": {
        "started": s.started.load(Ordering::SeqCst),
        "completed": s.completed.load(Ordering::SeqCst),
        "aborted": s.aborted.load(Ordering::SeqCst),
        "distinct": seen.len(),
        "repeated": repeated,
    }}))
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let (host, port, options) = parse_args();
    let listener = TcpListener::bind((host.as_str(), port))?;
    let addr = listener.local_addr()?;
    eprintln!("mock gateway listening on http://{addr}");
    let data = web::Data::new(options);
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(20 * 1024 * 1024))
            .route("/v1/chat/completions", web::post().to(chat))
            .route("/v1/models", web::get().to(models))
            .route("/tools/invoke", web::post().to(tools_invoke))
            .route("/stats", web::get().to(stats))
            .route(
                "/readyz",
                web::get().to(|| async { HttpResponse::Ok().json(json!({"ready": true})) }),
            )
            .route(
                "/health",
                web::get().to(|| async {
                    HttpResponse::Ok().json(json!({"ok": true, "status": "live"}))
                }),
            )
    })
    .on_connect(on_connect)
    .workers(2)
    // Stop at once on SIGTERM even with an answer in flight (scripts kill it when done).
    .shutdown_timeout(1)
    .listen(listener)?
    .run()
    .await
}
