//! The HTTP conversation with one OpenClaw gateway: the chat request of 1.7.0's wire contract
//! (`POST {url}/v1/chat/completions`, `{"model","messages":[user],"max_tokens":4096[,"session_id"]}`,
//! `Authorization: Bearer`, `x-openclaw-session-key`, `x-openclaw-agent-id`), the streamed variant
//! (`"stream": true`, OpenAI chunks over SSE, the gateway's in-band `{"error":…}` chunk), and the
//! health probe. Only `GatewayActor` calls these; they hold no state of their own.
//!
//! The bytes travel through [`crate::outbound`] (hyper): every HTTP/1.1 framing of an answer is
//! read whole, a body ended by the close of the connection included, and interim `1xx` answers
//! are skipped.

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;

use super::{
    error::{GatewayError, gateway_text},
    health::{HealthStatus, ProbeResult, classify},
};
use crate::{
    config::{InstanceSettings, display_url},
    outbound::{self, HttpClient, OutboundError, Response},
};

/// 1.7.0's cap on a gateway answer: 10 MiB.
pub const MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;
/// Error bodies are read only this far (enough for any JSON error message).
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// 1.7.0 asks for at most this many tokens per answer.
const MAX_TOKENS: u32 = 4096;
/// A probe never waits longer than this, whatever the instance timeout.
const PROBE_TIMEOUT: Duration = Duration::from_secs(15);
/// A streamed answer may run this long in total as long as bytes keep coming (2.0-beta's cap).
const STREAM_TOTAL_CAP: Duration = Duration::from_secs(30 * 60);
/// How long a TCP/TLS connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle pooled connection is kept: less than the 5 s the gateway keeps it.
const IDLE_KEEP_ALIVE: Duration = Duration::from_secs(4);
/// Most requests in flight to one gateway at once (each on its own connection); more wait for a
/// free one within their own deadline.
const MAX_CONNECTIONS: usize = 512;
/// `User-Agent` of every gateway request.
const USER_AGENT: &str = concat!("openclaw-mcp/", env!("CARGO_PKG_VERSION"));

/// One chat turn to send.
#[derive(Debug, Clone, Default)]
pub struct ChatRequest {
    /// The user's message, already validated and trimmed.
    pub message: String,
    /// Gateway session key, if the conversation continues one.
    pub session_id: Option<String>,
    /// Agent for this call, overriding the instance's agent.
    pub agent_id: Option<String>,
    /// Ask for a streamed answer (progress, idle timeout).
    pub stream: bool,
    /// Images sent with the message, as data URIs (`data:image/png;base64,…`).
    pub images: Vec<String>,
    /// How a WebSocket run is tied to the task store (async tasks); unused over HTTP.
    pub run: RunBinding,
}

/// The run of an async task over the WebSocket backend: its id, chosen by the task, recorded
/// before the prompt is sent, and, after a restart of the bridge, the recorded run to adopt.
#[derive(Clone, Default)]
pub struct RunBinding {
    /// The run id to use (the idempotency key of `agent`).
    pub run_id: Option<String>,
    /// A run recorded by a bridge that stopped: found again, never sent twice.
    pub adopt: Option<super::ws::ops::RunRecord>,
    /// Stores the run before its prompt is sent.
    pub sink: Option<super::ws::ops::RunSink>,
}

impl std::fmt::Debug for RunBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunBinding")
            .field("run_id", &self.run_id)
            .field("adopt", &self.adopt)
            .field("sink", &self.sink.is_some())
            .finish()
    }
}

/// The gateway's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatReply {
    /// The assistant's text (`choices[0].message.content`, or the deltas joined).
    pub content: String,
    /// `model` echoed by the gateway.
    pub model: Option<String>,
    /// `finish_reason` of the first choice.
    pub finish_reason: Option<String>,
    /// Token usage, when the gateway reports it.
    pub usage: Option<Value>,
    /// Whether the answer came as a stream.
    pub streamed: bool,
}

/// Progress of a streamed answer, observed through a `watch` channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatProgress {
    /// Characters of assistant text received so far.
    pub chars: u64,
    /// When the gateway last sent a byte.
    pub last_activity: SystemTime,
}

impl Default for ChatProgress {
    fn default() -> Self {
        ChatProgress {
            chars: 0,
            last_activity: SystemTime::now(),
        }
    }
}

/// Receiver side of a chat's progress.
pub type ProgressSender = Arc<watch::Sender<ChatProgress>>;

#[derive(Serialize)]
struct UserMessage<'a> {
    role: &'static str,
    content: UserContent<'a>,
}

/// A user message's content: 1.7.0's plain string, or text and image parts when images come
/// along (the gateway accepts `image_url` parts on the last user turn).
#[derive(Serialize)]
#[serde(untagged)]
enum UserContent<'a> {
    Text(&'a str),
    Parts(Vec<ContentPart<'a>>),
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
}

/// The request body; field order is 1.7.0's (`model`, `messages`, `max_tokens`, `session_id`).
#[derive(Serialize)]
struct ChatBody<'a> {
    model: &'a str,
    messages: [UserMessage<'a>; 1],
    max_tokens: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
}

/// Builds the HTTP client of one instance: pooled keep-alive connections, no redirects (a token
/// must never follow one), rustls with the webpki roots for `https` gateways.
pub fn build_client(inst: &InstanceSettings) -> HttpClient {
    HttpClient::new(outbound::Options {
        connect_timeout: CONNECT_TIMEOUT.min(inst.timeout),
        // Below the real gateway's `Keep-Alive: timeout=5`: a pooled connection is never reused
        // just as the gateway closes it (seen as an intermittent "connection reset").
        idle_timeout: IDLE_KEEP_ALIVE,
        max_connections: MAX_CONNECTIONS,
    })
}

fn base(inst: &InstanceSettings) -> String {
    display_url(&inst.base_url)
}

/// The URL of `path` (`/v1/models`) on the gateway: `{base_url}{path}`, a query of the base URL
/// kept after the path (`http://gw:1?k=v` gives `http://gw:1/v1/models?k=v`; awc sent the
/// request target `?k=v/v1/models`, which no server routes).
fn endpoint(base_url: &str, path: &str) -> String {
    match base_url.split_once('?') {
        Some((base, query)) => format!("{}{path}?{query}", base.trim_end_matches('/')),
        None => format!("{base_url}{path}"),
    }
}

/// A request to `{base_url}{path}` with the bridge's `User-Agent`, the instance's bearer token
/// when `authorized` and it has one, and `headers`.
fn gateway_request(
    inst: &InstanceSettings,
    method: Method,
    path: &str,
    authorized: bool,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<hyper::Request<http_body_util::Full<Bytes>>, GatewayError> {
    let bearer = match (&inst.token, authorized) {
        (Some(token), true) => Some(format!("Bearer {}", token.expose())),
        _ => None,
    };
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(headers.len() + 2);
    all.push(("user-agent", USER_AGENT));
    if let Some(bearer) = &bearer {
        all.push(("authorization", bearer.as_str()));
    }
    all.extend_from_slice(headers);
    outbound::request(method, &endpoint(&inst.base_url, path), &all, body.into())
        .map_err(|e| map_error(inst, e))
}

/// Sends `request`; the failures in the gateway's words.
async fn send(
    client: &HttpClient,
    inst: &InstanceSettings,
    request: hyper::Request<http_body_util::Full<Bytes>>,
) -> Result<Response, GatewayError> {
    client.send(request).await.map_err(|e| map_error(inst, e))
}

fn map_error(inst: &InstanceSettings, err: OutboundError) -> GatewayError {
    let url = base(inst);
    match err {
        // Nothing was sent.
        OutboundError::Url(_) | OutboundError::Request(_) => GatewayError::Connect {
            url,
            cause: err.to_string(),
        },
        OutboundError::Connect(cause) => GatewayError::Connect { url, cause },
        // A connection that broke, before the response head or in its body.
        OutboundError::Broken(cause) => GatewayError::Interrupted { url, cause },
        OutboundError::Malformed(_) => GatewayError::InvalidResponse {
            url,
            reason: err.to_string(),
        },
        OutboundError::TooLarge(_) => GatewayError::TooLarge,
    }
}

/// Sends one chat turn and returns the answer; `progress` sees streamed text arrive.
///
/// Dropping the returned future drops the connection, which makes the gateway abort the run.
pub async fn chat(
    client: &HttpClient,
    inst: &InstanceSettings,
    req: &ChatRequest,
    progress: Option<ProgressSender>,
) -> Result<ChatReply, GatewayError> {
    let body = ChatBody {
        model: &inst.model,
        messages: [UserMessage {
            role: "user",
            content: if req.images.is_empty() {
                UserContent::Text(&req.message)
            } else {
                UserContent::Parts(
                    std::iter::once(ContentPart::Text { text: &req.message })
                        .chain(req.images.iter().map(|url| ContentPart::ImageUrl {
                            image_url: ImageUrl { url },
                        }))
                        .collect(),
                )
            },
        }],
        max_tokens: MAX_TOKENS,
        session_id: req.session_id.as_deref(),
        stream: req.stream,
    };
    // unwrap: serializing a struct of strings and integers cannot fail.
    let json = serde_json::to_vec(&body).expect("chat body serializes");
    let mut headers = vec![
        ("content-type", "application/json"),
        (
            "accept",
            if req.stream {
                "text/event-stream, application/json"
            } else {
                "application/json"
            },
        ),
    ];
    if let Some(session) = &req.session_id {
        headers.push(("x-openclaw-session-key", session.as_str()));
    }
    if let Some(agent) = req.agent_id.as_ref().or(inst.agent_id.as_ref()) {
        headers.push(("x-openclaw-agent-id", agent.as_str()));
    }
    let bytes = json.len();
    let http = gateway_request(
        inst,
        Method::POST,
        "/v1/chat/completions",
        true,
        &headers,
        json,
    )?;
    tracing::debug!(instance = %inst.name, url = %base(inst), stream = req.stream, bytes, "chat request");

    let deadline = inst.timeout;
    let timed_out = || GatewayError::Timeout(deadline.as_millis() as u64);
    let started = Instant::now();
    let response = tokio::time::timeout(deadline, send(client, inst, http))
        .await
        .map_err(|_| timed_out())??;
    touch(&progress, 0);

    if !response.status().is_success() {
        let remaining = deadline.saturating_sub(started.elapsed());
        return Err(status_error(inst, response, remaining).await);
    }
    let is_sse = response
        .header("content-type")
        .is_some_and(|ct| ct.trim_start().starts_with("text/event-stream"));
    if is_sse {
        let cap = STREAM_TOTAL_CAP.max(deadline);
        tokio::time::timeout(cap, read_stream(inst, response, progress))
            .await
            .map_err(|_| GatewayError::Timeout(cap.as_millis() as u64))?
    } else {
        let remaining = deadline.saturating_sub(started.elapsed());
        let body = tokio::time::timeout(remaining, read_body(inst, response, MAX_RESPONSE_BYTES))
            .await
            .map_err(|_| timed_out())??;
        touch(&progress, 0);
        let reply = parse_completion(inst, &body)?;
        if let Some(p) = &progress {
            p.send_modify(|p| p.chars = reply.content.chars().count() as u64);
        }
        Ok(reply)
    }
}

fn touch(progress: &Option<ProgressSender>, chars: u64) {
    if let Some(p) = progress {
        p.send_modify(|p| {
            p.chars += chars;
            p.last_activity = SystemTime::now();
        });
    }
}

async fn read_body(
    inst: &InstanceSettings,
    response: Response,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    response.bytes(limit).await.map_err(|e| map_error(inst, e))
}

/// Builds the error for a non-2xx answer: 1.7.0's `API request failed: <status> <reason>`, plus
/// what the user can do about it or the gateway's own short message.
async fn status_error(
    inst: &InstanceSettings,
    response: Response,
    remaining: Duration,
) -> GatewayError {
    let status = response.status();
    let reason = status.canonical_reason().unwrap_or("").to_string();
    let body = tokio::time::timeout(
        remaining.min(Duration::from_secs(5)),
        read_body(inst, response, MAX_ERROR_BODY_BYTES),
    )
    .await
    .ok()
    .and_then(Result::ok);
    let gateway_message = body.as_deref().and_then(error_message);
    let hint = match status.as_u16() {
        401 if inst.token.is_some() => {
            Some("token rejected by the gateway; check OPENCLAW_GATEWAY_TOKEN".to_string())
        }
        401 => Some("the gateway requires a token; set OPENCLAW_GATEWAY_TOKEN".to_string()),
        404 | 405 => Some(
            "chat-completions endpoint disabled; enable gateway.http.endpoints.chatCompletions in openclaw.json"
                .to_string(),
        ),
        _ => gateway_message,
    };
    tracing::warn!(instance = %inst.name, status = status.as_u16(), "gateway answered with an error status");
    GatewayError::Status {
        status: status.as_u16(),
        reason,
        hint,
    }
}

/// The message of the gateway's error bodies: `{"error":{"message"}}`,
/// `{"ok":false,"error":{"message"}}` or `{"error":"…"}`, redacted, escaped (see
/// [`gateway_text`]) and shortened to 300 characters.
fn error_message(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let err = v.get("error")?;
    let msg = err
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| err.as_str())?;
    // Redacted before it is cut, so that a secret across the cut cannot show its first half.
    let msg: String = gateway_text(msg.trim()).chars().take(300).collect();
    (!msg.is_empty()).then_some(msg)
}

fn invalid(inst: &InstanceSettings, reason: impl Into<String>) -> GatewayError {
    GatewayError::InvalidResponse {
        url: base(inst),
        reason: reason.into(),
    }
}

/// Reads a non-streamed chat completion.
fn parse_completion(inst: &InstanceSettings, body: &[u8]) -> Result<ChatReply, GatewayError> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| invalid(inst, format!("the body is not JSON ({e})")))?;
    let Some(obj) = v.as_object() else {
        return Err(invalid(inst, "the body is not a JSON object"));
    };
    let choices = match obj.get("choices") {
        Some(Value::Array(choices)) => choices,
        _ => {
            if let Some(msg) = error_message(body) {
                return Err(GatewayError::Upstream(msg));
            }
            return Err(invalid(inst, "no \"choices\" in the chat completion"));
        }
    };
    let first = choices.first();
    let content = match first
        .and_then(|c| c.get("message"))
        .and_then(|m| m.get("content"))
    {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        // Content parts: join their text.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        Some(_) => return Err(invalid(inst, "\"content\" is neither text nor parts")),
    };
    Ok(ChatReply {
        content,
        model: obj.get("model").and_then(Value::as_str).map(str::to_string),
        finish_reason: first
            .and_then(|c| c.get("finish_reason"))
            .and_then(Value::as_str)
            .map(str::to_string),
        usage: obj.get("usage").filter(|u| !u.is_null()).cloned(),
        streamed: false,
    })
}

/// Incremental parser of `text/event-stream` bodies: yields the `data` of each event.
///
/// Linear in its input however the body is cut: each byte is searched for a line end once (a
/// 4 MB event on one line, arriving in 8 KiB reads, is not searched again on every read), and the
/// lines a piece completes leave the buffer in one move. Lines end with LF, CRLF or CR, as the
/// SSE format allows, a CRLF split between two pieces included.
#[derive(Default)]
pub struct SseParser {
    /// Bytes after the last line end seen: the start of a line not yet ended.
    buf: Vec<u8>,
    /// The previous piece ended with CR: an LF at the start of the next one ends no new line.
    after_cr: bool,
    /// The `data` lines of the event being read, joined with LF.
    data: String,
    /// Whether the event being read has a `data` line yet (an empty one counts).
    has_data: bool,
}

impl SseParser {
    /// Feeds bytes; returns the data of every event completed by them.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut chunk = chunk;
        if std::mem::take(&mut self.after_cr)
            && let [b'\n', rest @ ..] = chunk
        {
            chunk = rest;
        }
        // Only the new bytes are searched: what the buffer held had no line end.
        let mut from = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut events = Vec::new();
        let mut start = 0;
        while let Some(offset) = self.buf[from..]
            .iter()
            .position(|b| *b == b'\n' || *b == b'\r')
        {
            let end = from + offset;
            let mut next = end + 1;
            if self.buf[end] == b'\r' {
                match self.buf.get(next) {
                    Some(b'\n') => next += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
            line(
                &self.buf[start..end],
                &mut self.data,
                &mut self.has_data,
                &mut events,
            );
            start = next;
            from = next;
        }
        self.buf.drain(..start);
        events
    }

    /// The data of an event left unterminated when the stream ended.
    pub fn finish(&mut self) -> Option<String> {
        // Terminating the pending line and the pending event yields at most one event.
        self.feed(b"\n\n").pop()
    }
}

/// Applies one line of an event stream: a `data` field adds to the event, an empty line ends it.
fn line(line: &[u8], data: &mut String, has_data: &mut bool, events: &mut Vec<String>) {
    if line.is_empty() {
        if std::mem::take(has_data) {
            events.push(std::mem::take(data));
        }
        return;
    }
    let value = match line.strip_prefix(b"data") {
        Some([]) => &[][..],
        Some([b':', value @ ..]) => value.strip_prefix(b" ").unwrap_or(value),
        // `event:`, `id:`, `retry:`, `:` comments and other fields carry nothing we need.
        _ => return,
    };
    if std::mem::replace(has_data, true) {
        data.push('\n');
    }
    data.push_str(&String::from_utf8_lossy(value));
}

/// State of a streamed answer being assembled.
#[derive(Default)]
struct StreamState {
    reply: ChatReply,
    done: bool,
}

impl StreamState {
    /// Applies one event; an in-band error ends the answer as a failure.
    fn apply(&mut self, data: &str) -> Result<u64, GatewayError> {
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(0);
        }
        let v: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(_) => return Ok(0),
        };
        if let Some(err) = v.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| err.as_str())
                .unwrap_or("unknown error");
            // The gateway's words, whatever their size (up to the 10 MiB answer cap): cut to
            // fit a tool result, redacted and escaped.
            return Err(GatewayError::Upstream(gateway_text(msg)));
        }
        if let Some(model) = v.get("model").and_then(Value::as_str) {
            self.reply.model = Some(model.to_string());
        }
        if let Some(usage) = v.get("usage").filter(|u| !u.is_null()) {
            self.reply.usage = Some(usage.clone());
        }
        let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
            return Ok(0);
        };
        let text = choice
            .get("delta")
            .and_then(|d| d.get("content"))
            .or_else(|| choice.get("message").and_then(|m| m.get("content")))
            .and_then(Value::as_str)
            .unwrap_or("");
        self.reply.content.push_str(text);
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.reply.finish_reason = Some(reason.to_string());
        }
        Ok(text.chars().count() as u64)
    }
}

async fn read_stream(
    inst: &InstanceSettings,
    mut response: Response,
    progress: Option<ProgressSender>,
) -> Result<ChatReply, GatewayError> {
    let idle = inst.timeout;
    let mut parser = SseParser::default();
    let mut state = StreamState::default();
    state.reply.streamed = true;
    let mut received = 0usize;
    loop {
        let next = tokio::time::timeout(idle, response.chunk())
            .await
            .map_err(|_| GatewayError::IdleTimeout(idle.as_millis() as u64))?;
        let chunk = match next {
            // The end of the body, whatever its framing (the close of the connection included).
            None => break,
            Some(Ok(chunk)) => chunk,
            Some(Err(e)) => return Err(map_error(inst, e)),
        };
        received += chunk.len();
        if received > MAX_RESPONSE_BYTES {
            return Err(GatewayError::TooLarge);
        }
        let mut chars = 0;
        for event in parser.feed(&chunk) {
            chars += state.apply(&event)?;
            if state.done {
                break;
            }
        }
        touch(&progress, chars);
        if state.done {
            return Ok(state.reply);
        }
    }
    if let Some(event) = parser.finish() {
        state.apply(&event)?;
    }
    if state.done || state.reply.finish_reason.is_some() {
        Ok(state.reply)
    } else {
        Err(GatewayError::Interrupted {
            url: base(inst),
            cause: "the stream ended before the answer was complete".to_string(),
        })
    }
}

/// `GET /v1/models`: the gateway's agent targets (`openclaw`, `openclaw/default`,
/// `openclaw/<agentId>`).
pub async fn models(
    client: &HttpClient,
    inst: &InstanceSettings,
) -> Result<Vec<String>, GatewayError> {
    let deadline = PROBE_TIMEOUT.min(inst.timeout);
    let work = async {
        let request = gateway_request(
            inst,
            Method::GET,
            "/v1/models",
            true,
            &[("accept", "application/json")],
            Bytes::new(),
        )?;
        let response = send(client, inst, request).await?;
        if !response.status().is_success() {
            return Err(status_error(inst, response, deadline).await);
        }
        let body = read_body(inst, response, MAX_RESPONSE_BYTES).await?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(inst, format!("the model list is not JSON ({e})")))?;
        let ids = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid(inst, "no \"data\" in the model list"))?
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string))
            .collect();
        Ok(ids)
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| GatewayError::Timeout(deadline.as_millis() as u64))?
}

/// `POST /tools/invoke`: runs one gateway tool (`sessions_list`, `sessions_history`) and returns
/// its result: the JSON in its first text block when there is one, else the raw result.
pub async fn invoke_tool(
    client: &HttpClient,
    inst: &InstanceSettings,
    tool: &str,
    args: &Value,
) -> Result<Value, GatewayError> {
    let deadline = inst.timeout;
    let body = serde_json::json!({"tool": tool, "args": args});
    let work = async {
        let request = gateway_request(
            inst,
            Method::POST,
            "/tools/invoke",
            true,
            &[("content-type", "application/json")],
            body.to_string(),
        )?;
        let response = send(client, inst, request).await?;
        if !response.status().is_success() {
            let status = response.status().as_u16();
            let err = status_error(inst, response, deadline).await;
            return Err(match (status, err) {
                // /tools/invoke answers 404 for a tool the gateway's policy does not expose.
                (404, GatewayError::Status { status, reason, .. }) => GatewayError::Status {
                    status,
                    reason,
                    hint: Some(format!(
                        "the gateway does not offer the {tool} tool over HTTP; check gateway.tools and tools.sessions in openclaw.json"
                    )),
                },
                (_, err) => err,
            });
        }
        let body = read_body(inst, response, MAX_RESPONSE_BYTES).await?;
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| invalid(inst, format!("the tool answer is not JSON ({e})")))?;
        if v.get("ok").and_then(Value::as_bool) == Some(false) {
            return Err(GatewayError::Upstream(
                error_message(&body).unwrap_or_else(|| "the tool failed".to_string()),
            ));
        }
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        let text = result
            .get("content")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find_map(|p| p.get("text").and_then(Value::as_str)));
        Ok(
            match text.and_then(|t| serde_json::from_str::<Value>(t).ok()) {
                Some(parsed) => parsed,
                None => result.get("details").cloned().unwrap_or(result),
            },
        )
    };
    tokio::time::timeout(deadline, work)
        .await
        .map_err(|_| GatewayError::Timeout(deadline.as_millis() as u64))?
}

/// Probes the gateway: the session-less chat probe and `/readyz`, concurrently.
pub async fn probe(
    client: &HttpClient,
    inst: &InstanceSettings,
) -> Result<ProbeResult, GatewayError> {
    let timeout = PROBE_TIMEOUT.min(inst.timeout);
    let started = Instant::now();
    let chat = async {
        let request = gateway_request(
            inst,
            Method::POST,
            "/v1/chat/completions",
            true,
            &[("content-type", "application/json")],
            Bytes::from_static(b"{}"),
        )?;
        let response = send(client, inst, request).await?;
        let status = response.status();
        // Drain the short body so the connection can be reused.
        let _ = read_body(inst, response, MAX_ERROR_BODY_BYTES).await;
        Ok::<StatusCode, GatewayError>(status)
    };
    let ready = async {
        // No token: /readyz is unauthenticated, and a token goes only where it is needed.
        let request =
            gateway_request(inst, Method::GET, "/readyz", false, &[], Bytes::new()).ok()?;
        match send(client, inst, request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = read_body(inst, response, MAX_ERROR_BODY_BYTES).await;
                Some(status)
            }
            Err(_) => None,
        }
    };
    let (chat, ready) = tokio::time::timeout(timeout, futures_util::future::join(chat, ready))
        .await
        .map_err(|_| GatewayError::Timeout(timeout.as_millis() as u64))?;
    let chat_status = chat?.as_u16();
    let (status, message) = classify(chat_status, inst.token.is_some(), ready);
    let ready = ready.and_then(|s| match s {
        200 => Some(true),
        503 => Some(false),
        _ => None,
    });
    Ok(ProbeResult {
        status,
        message,
        http_status: Some(chat_status),
        ready,
        latency: started.elapsed(),
    })
}

/// A probe that could not reach the gateway, as a [`ProbeResult`] for the health state.
pub fn unreachable_probe(err: &GatewayError, latency: Duration) -> ProbeResult {
    ProbeResult {
        status: HealthStatus::Error,
        message: err.to_string(),
        http_status: None,
        ready: None,
        latency,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_keeps_1_7_0_key_order() {
        let body = ChatBody {
            model: "openclaw",
            messages: [UserMessage {
                role: "user",
                content: UserContent::Text("hi"),
            }],
            max_tokens: 4096,
            session_id: Some("sess-1"),
            stream: false,
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"model":"openclaw","messages":[{"role":"user","content":"hi"}],"max_tokens":4096,"session_id":"sess-1"}"#
        );
    }

    #[test]
    fn sse_parser_handles_split_chunks_and_crlf() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: {\"a\"").is_empty());
        assert_eq!(
            p.feed(b":1}\r\n\r\ndata: [DONE]\n\n"),
            vec!["{\"a\":1}", "[DONE]"]
        );
        assert!(p.feed(b": keep-alive\n\n").is_empty());
        assert!(p.feed(b"data: tail").is_empty());
        assert_eq!(p.finish().as_deref(), Some("tail"));
    }

    #[test]
    fn endpoints_keep_the_query_of_the_base_url_after_their_path() {
        assert_eq!(endpoint("http://gw:1", "/readyz"), "http://gw:1/readyz");
        assert_eq!(
            endpoint("https://gw/openclaw", "/v1/models"),
            "https://gw/openclaw/v1/models"
        );
        assert_eq!(
            endpoint("http://gw:1?token=x", "/v1/chat/completions"),
            "http://gw:1/v1/chat/completions?token=x"
        );
        assert_eq!(
            endpoint("http://gw:1/base/?a=1&b=2", "/tools/invoke"),
            "http://gw:1/base/tools/invoke?a=1&b=2"
        );
    }

    #[test]
    fn sse_parser_takes_every_line_end_and_multi_line_data() {
        let mut p = SseParser::default();
        // CR alone, and a CRLF cut between two pieces.
        assert_eq!(p.feed(b"data: a\r\rdata: b\r"), vec!["a"]);
        assert_eq!(p.feed(b"\ndata: c\r\n"), Vec::<String>::new());
        assert_eq!(p.feed(b"\r\n"), vec!["b\nc"]);
        // `data` without a colon is an empty line of data; other fields are ignored.
        assert_eq!(
            p.feed(b"event: x\nid: 1\ndata\ndata:tight\ndatum: no\n\n"),
            vec!["\ntight"]
        );
        // An event without data is no event.
        assert!(p.feed(b": comment\n\n").is_empty());
    }

    #[test]
    fn sse_parser_reads_one_long_line_fed_in_small_pieces() {
        let mut p = SseParser::default();
        let line = format!("data: {}\n\n", "y".repeat(1_000_000));
        let mut events = Vec::new();
        for piece in line.as_bytes().chunks(4096) {
            events.extend(p.feed(piece));
        }
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].len(), 1_000_000);
        assert!(p.buf.is_empty());
    }

    #[test]
    fn stream_error_chunk_fails_the_answer() {
        let mut st = StreamState::default();
        st.apply(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#)
            .unwrap();
        st.apply(r#"{"choices":[{"delta":{"content":"partial"}}]}"#)
            .unwrap();
        let err = st
            .apply(r#"{"error":{"message":"upstream provider error","type":"api_error"}}"#)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "OpenClaw reported an error: upstream provider error"
        );
    }

    #[test]
    fn a_huge_stream_error_is_cut_and_escaped() {
        let mut st = StreamState::default();
        let message = format!("\u{1b}[2J{}", "z".repeat(2_000_000));
        let event = serde_json::json!({"error": {"message": message}}).to_string();
        let GatewayError::Upstream(text) = st.apply(&event).unwrap_err() else {
            panic!("not an upstream error");
        };
        assert!(text.len() <= super::super::error::MAX_GATEWAY_TEXT_BYTES);
        assert!(text.starts_with("\\u{1b}[2Jzzz"), "{}", &text[..20]);
        assert!(text.ends_with("zzz … [truncated: 2000004 bytes in all]"));
    }

    #[test]
    fn error_messages_of_the_gateway_are_escaped() {
        assert_eq!(
            error_message(br#"{"error":{"message":"no\r\u001b[31mred"}}"#).as_deref(),
            Some("no\\r\\u{1b}[31mred")
        );
    }

    #[test]
    fn error_bodies_of_the_gateway_are_read() {
        assert_eq!(
            error_message(
                br#"{"error":{"message":"Unknown agent 'x'.","type":"invalid_request_error"}}"#
            )
            .as_deref(),
            Some("Unknown agent 'x'.")
        );
        assert_eq!(
            error_message(br#"{"ok":false,"error":{"type":"forbidden","message":"missing scope: operator.write"}}"#).as_deref(),
            Some("missing scope: operator.write")
        );
        assert_eq!(error_message(b"Not Found"), None);
    }
}
