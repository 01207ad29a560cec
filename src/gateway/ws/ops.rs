//! What the tools need, over the WebSocket backend: one agent turn with streamed progress
//! ([`run_turn`]), its abort, its adoption after a reconnect or a restart of the bridge, and the
//! read methods (agents, sessions, history, health).
//!
//! **A turn** is the gateway's `agent` method (`reference/openclaw-ws.md` §6.2): its run id is
//! the idempotency key the bridge chose, it waits in the session's lane when the session is busy
//! (other clients included), and its final answer comes in a second `res` frame. Events of every
//! session reach every operator connection, so only the events of this run id are read.
//!
//! **Never sent twice.** After a lost connection (or a restart of the bridge, for a task whose run
//! was stored before its prompt was sent) the run is looked up first (`chat.history`: the run in
//! flight, a run queued in the session behind another one, its answer, or its prompt in the
//! transcript); only if the gateway has no trace of it and
//! it was sent less than [`DEDUPE_WINDOW`] ago is `agent` sent again with the same idempotency
//! key, which the gateway's de-duplication answers with the run it already has. A run older than
//! that without a trace is failed as interrupted. A gateway that restarted (new `bootId`) lost
//! its runs: that is said, and nothing is sent again.

use std::{borrow::Cow, sync::Arc, time::Duration};

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    client::{PendingRequest, Session, WsClient},
    error::WsError,
    frames::Incoming,
};
use crate::gateway::{
    client::{ChatReply, ProgressSender},
    error::{GatewayError, gateway_text},
};

/// A resend with the same idempotency key is answered from the gateway's de-duplication cache
/// for 5 minutes (and 1,000 sends); the bridge relies on it for 4.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(4 * 60);
/// How long an abort may take before the caller is answered anyway.
const ABORT_WAIT: Duration = Duration::from_secs(3);
/// Each `agent.wait` of an adopted run asks for at most this long.
const WAIT_SLICE: Duration = Duration::from_secs(10);
/// `agent.wait` slices start at least this far apart: a gateway that answers "not yet" at once
/// is asked again a second later, not in a tight loop.
const WAIT_PAUSE: Duration = Duration::from_secs(1);
/// How long a run cancelled (or timed out) while the connection was down may wait for the
/// connection to come back to be aborted.
const ABORT_LATER: Duration = Duration::from_secs(5 * 60);
/// Read requests (history, lists) get this long.
const READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Messages of the history read to find a run again.
const HISTORY_SCAN: u32 = 200;
/// The commands the `agent` method runs instead of sending them to the model (observed on
/// 2026.9.6; every other `/…` text reaches the model as text, as over HTTP).
const AGENT_COMMANDS: [&str; 2] = ["/new", "/reset"];

/// A run as the task store keeps it, written before the prompt is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The run id (the idempotency key of `agent`).
    pub run_id: String,
    /// The session key sent with it.
    pub session_key: String,
    /// The agent asked for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    /// `bootId` of the gateway it was sent to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// When it was sent (ms since the epoch).
    pub sent_at_ms: i64,
}

/// Stores a run before its prompt is sent; an error stops the send.
pub type RunSink = Arc<dyn Fn(RunRecord) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// How long a turn may take.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    /// In all.
    Total(Duration),
    /// Without any event of the run (a streamed answer), up to a total cap.
    Idle {
        /// Longest silence.
        idle: Duration,
        /// Longest run.
        cap: Duration,
    },
}

/// One agent turn to run.
pub struct Turn {
    /// The run and where it goes.
    pub run: RunRecord,
    /// The text.
    pub message: String,
    /// Images, as data URIs.
    pub images: Vec<String>,
    /// Whether the run may already be on the gateway (a task adopted after a restart).
    pub adopt: bool,
    /// Stores the run before its prompt is sent.
    pub sink: Option<RunSink>,
    /// Streamed progress.
    pub progress: Option<ProgressSender>,
    /// Cancelling it aborts the run on the gateway.
    pub cancel: CancellationToken,
    /// The deadline.
    pub limit: Limit,
}

/// The message as the agent should read it: a leading `/new` or `/reset`, which the `agent`
/// method would run as a command (resetting the session), goes as text, as it does over HTTP,
/// behind an invisible U+200B (ZERO WIDTH SPACE).
pub fn as_text(message: &str) -> Cow<'_, str> {
    let first = message
        .trim_start()
        .split(char::is_whitespace)
        .next()
        .unwrap_or("");
    if AGENT_COMMANDS.iter().any(|c| first.eq_ignore_ascii_case(c)) {
        Cow::Owned(format!("\u{200B}{message}"))
    } else {
        Cow::Borrowed(message)
    }
}

/// A data URI as an attachment of `agent` (`{type, mimeType, content}`).
fn attachment(uri: &str) -> Option<Value> {
    let (head, data) = uri.strip_prefix("data:")?.split_once(',')?;
    let mime = head.strip_suffix(";base64")?;
    let ext = mime.rsplit('/').next().unwrap_or("bin");
    Some(
        json!({"type": "image", "mimeType": mime, "fileName": format!("image.{ext}"), "content": data}),
    )
}

fn agent_params(turn: &Turn) -> Value {
    let mut p = Map::new();
    p.insert(
        "message".into(),
        Value::String(as_text(&turn.message).into_owned()),
    );
    p.insert(
        "sessionKey".into(),
        Value::String(turn.run.session_key.clone()),
    );
    p.insert(
        "idempotencyKey".into(),
        Value::String(turn.run.run_id.clone()),
    );
    if let Some(agent) = &turn.run.agent_id {
        p.insert("agentId".into(), Value::String(agent.clone()));
    }
    let attachments: Vec<Value> = turn.images.iter().filter_map(|u| attachment(u)).collect();
    if !attachments.is_empty() {
        p.insert("attachments".into(), Value::Array(attachments));
    }
    Value::Object(p)
}

fn text_of_content(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// The final answer of `agent` (its second `res`, or a single one for a de-duplicated send).
enum Final {
    Reply(ChatReply),
    /// The run is still going (`in_flight`): wait for it.
    InFlight,
    /// Aborted on the gateway.
    Aborted(String),
}

fn reply_of_agent(payload: &Value) -> Result<Final, GatewayError> {
    let status = payload.get("status").and_then(Value::as_str).unwrap_or("");
    let result = payload.get("result");
    let texts: Vec<&str> = result
        .and_then(|r| r.get("payloads"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    match status {
        "ok" => {
            let meta = result.and_then(|r| r.pointer("/meta/agentMeta"));
            Ok(Final::Reply(ChatReply {
                content: texts.join("\n\n"),
                model: meta
                    .and_then(|m| m.get("model"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                finish_reason: Some(
                    payload
                        .get("stopReason")
                        .and_then(Value::as_str)
                        .unwrap_or("stop")
                        .to_string(),
                ),
                usage: meta.and_then(|m| m.get("usage")).cloned(),
                streamed: true,
            }))
        }
        "in_flight" | "accepted" | "pending" => Ok(Final::InFlight),
        "timeout"
            if payload.get("summary").and_then(Value::as_str) == Some("aborted")
                && payload.get("timeoutPhase").is_none() =>
        {
            Ok(Final::Aborted(
                payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("aborted")
                    .to_string(),
            ))
        }
        _ => {
            let why = texts
                .first()
                .copied()
                .or_else(|| payload.get("summary").and_then(Value::as_str))
                .unwrap_or("the run failed");
            Err(GatewayError::Upstream(gateway_text(why)))
        }
    }
}

/// What an `agent.wait` said.
fn reply_of_wait(payload: &Value) -> Option<Result<ChatReply, GatewayError>> {
    match payload.get("status").and_then(Value::as_str)? {
        "ok" => Some(Ok(ChatReply {
            content: payload
                .pointer("/terminalReply/text")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            model: payload
                .pointer("/terminalReceipt/effective/model")
                .and_then(Value::as_str)
                .map(str::to_string),
            finish_reason: Some(
                payload
                    .get("stopReason")
                    .and_then(Value::as_str)
                    .unwrap_or("stop")
                    .to_string(),
            ),
            usage: None,
            streamed: true,
        })),
        "error" => Some(Err(GatewayError::Upstream(gateway_text(
            payload
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("the run failed"),
        )))),
        // `timeout`: not finished within the wait (or unknown); `pending`: queued.
        _ => None,
    }
}

/// The turn's answer, with progress set to its full length.
fn answered(progress: &Option<ProgressSender>, reply: ChatReply) -> ChatReply {
    touch(progress, Some(reply.content.chars().count() as u64));
    reply
}

/// One `agent.wait` slice for the run.
fn wait_slice(session: &Arc<Session>, run_id: &str) -> Result<PendingRequest, WsError> {
    session.start(
        "agent.wait",
        &json!({"runId": run_id, "timeoutMs": WAIT_SLICE.as_millis() as u64}),
    )
}

fn touch(progress: &Option<ProgressSender>, chars: Option<u64>) {
    if let Some(p) = progress {
        p.send_modify(|p| {
            if let Some(chars) = chars {
                p.chars = p.chars.max(chars);
            }
            p.last_activity = std::time::SystemTime::now();
        });
    }
}

/// Whether the gateway refused an `agent` request because the agent's model takes no images
/// (`UnsupportedAttachmentError: attachment x.png: active model does not accept image inputs`).
fn images_refused(message: &str) -> bool {
    message.contains("UnsupportedAttachmentError") || message.contains("does not accept image")
}

/// Where a run stands after a reconnect (or a restart), from the gateway's own records.
enum Found {
    /// Its answer is in the transcript.
    Done(ChatReply),
    /// It is running, or queued behind another run (`pendingInputs`): wait for it.
    Running,
    /// The gateway has no trace of it: it never arrived.
    Unknown,
    /// Its prompt arrived but it ended without an answer.
    Ended,
}

async fn find_run(session: &Arc<Session>, run: &RunRecord) -> Result<Found, GatewayError> {
    let mut params = json!({"sessionKey": run.session_key, "limit": HISTORY_SCAN});
    if let Some(agent) = &run.agent_id {
        params["agentId"] = Value::String(agent.clone());
    }
    let history = session
        .request("chat.history", params, READ_TIMEOUT)
        .await?;
    // Running, or waiting in the session's queue behind another run: `pendingInputs.items[]`
    // lists the queued sends with their run ids (observed on 2026.9.6; `agent.wait` answers
    // "timeout" alike for a queued run and an unknown one, so it cannot tell them apart).
    if history
        .pointer("/inFlightRun/runId")
        .and_then(Value::as_str)
        == Some(&run.run_id)
        || history
            .pointer("/sessionInfo/activeRunIds")
            .and_then(Value::as_array)
            .is_some_and(|ids| ids.iter().any(|id| id.as_str() == Some(&run.run_id)))
        || history
            .pointer("/pendingInputs/items")
            .and_then(Value::as_array)
            .is_some_and(|items| {
                items
                    .iter()
                    .any(|i| i.get("runId").and_then(Value::as_str) == Some(run.run_id.as_str()))
            })
    {
        return Ok(Found::Running);
    }
    let messages = history
        .get("messages")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let of_run = |m: &Value| {
        m.pointer("/__openclaw/runId").and_then(Value::as_str) == Some(run.run_id.as_str())
    };
    let answer: Vec<String> = messages
        .iter()
        .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant") && of_run(m))
        .map(|m| text_of_content(m.get("content").unwrap_or(&Value::Null)))
        .filter(|t| !t.is_empty())
        .collect();
    if let Some(last) = answer.last() {
        return Ok(Found::Done(ChatReply {
            content: last.clone(),
            model: None,
            finish_reason: Some("stop".into()),
            usage: None,
            streamed: true,
        }));
    }
    let user_key = format!("{}:user", run.run_id);
    let arrived = messages.iter().any(|m| {
        m.get("idempotencyKey").and_then(Value::as_str) == Some(user_key.as_str())
            || m.pointer("/__openclaw/idempotencyKey")
                .and_then(Value::as_str)
                == Some(user_key.as_str())
    });
    Ok(if arrived {
        Found::Ended
    } else {
        Found::Unknown
    })
}

/// Aborts the run (best effort, bounded): the gateway stops it and cancels its model request.
/// `false` when the gateway did not answer (the connection may be dead without being known so).
async fn abort(session: &Arc<Session>, run: &RunRecord, canonical: Option<&str>) -> bool {
    let mut params = json!({
        "sessionKey": canonical.unwrap_or(&run.session_key),
        "runId": run.run_id,
    });
    if let Some(agent) = &run.agent_id {
        params["agentId"] = Value::String(agent.clone());
    }
    match session.request("chat.abort", params, ABORT_WAIT).await {
        Ok(v) => {
            let aborted = v.get("aborted").and_then(Value::as_bool).unwrap_or(false);
            tracing::info!(run = %run.run_id, aborted, "abort sent to the gateway");
            true
        }
        Err(e @ WsError::Gateway { .. }) => {
            tracing::warn!(run = %run.run_id, error = %e, "the gateway refused to abort the run");
            true
        }
        Err(e) => {
            tracing::warn!(run = %run.run_id, error = %e, "could not abort the run on this connection; trying again on the next");
            false
        }
    }
}

/// Aborts the run on `session`, or, if that connection does not answer, on the next one.
async fn abort_now_or_later(
    client: &WsClient,
    session: &Arc<Session>,
    run: &RunRecord,
    canonical: Option<&str>,
) {
    if !abort(session, run, canonical).await {
        abort_when_back(
            client,
            run,
            canonical.map(str::to_string),
            Some(session.generation),
        );
    }
}

/// Aborts the run once the connection is back (a cancel or a timeout while it was down), in the
/// background and bounded by [`ABORT_LATER`]: the caller is answered now; the run, still going
/// on the gateway, is stopped as soon as the bridge can tell it to. A gateway that restarted
/// meanwhile lost the run: nothing to abort.
fn abort_when_back(
    client: &WsClient,
    run: &RunRecord,
    canonical: Option<String>,
    after_generation: Option<u64>,
) {
    let client = client.clone();
    let run = run.clone();
    tokio::spawn(async move {
        let deadline = Instant::now() + ABORT_LATER;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match client.session(left, true).await {
                // The connection that failed to answer, not yet known dead: wait for the next.
                Ok(session)
                    if after_generation.is_some_and(|g| session.generation <= g)
                        && Instant::now() + WAIT_PAUSE < deadline =>
                {
                    tokio::time::sleep(WAIT_PAUSE).await;
                }
                Ok(session) => {
                    let restarted = matches!((&run.boot_id, &session.hello.boot_id), (Some(was), Some(now)) if was != now);
                    if !restarted {
                        abort(&session, &run, canonical.as_deref()).await;
                    }
                    return;
                }
                // A failure only a person can fix is returned at once: look again later.
                Err(_) if Instant::now() + WAIT_PAUSE < deadline => {
                    tokio::time::sleep(WAIT_PAUSE).await;
                }
                Err(e) => {
                    tracing::warn!(run = %run.run_id, error = %e, "could not abort the run: no connection to the gateway");
                    return;
                }
            }
        }
    });
}

/// Resolves at `due`, or never.
async fn sleep_until_due(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

async fn next_of(pending: &mut Option<PendingRequest>) -> Result<Incoming, WsError> {
    match pending {
        Some(p) => p.next(Instant::now() + Duration::from_secs(86_400)).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    crate::util::now_ms()
}

/// Runs one turn over `client` (see the module docs).
pub async fn run_turn(client: &WsClient, mut turn: Turn) -> Result<ChatReply, GatewayError> {
    let mut watch = client.watch_run(&turn.run.run_id);
    let started = Instant::now();
    let mut last_event = Instant::now();
    let deadline_of = |last_event: Instant| match turn.limit {
        Limit::Total(total) => started + total,
        Limit::Idle { idle, cap } => (last_event + idle).min(started + cap),
    };
    let timed_out = |limit: Limit| match limit {
        Limit::Total(t) => GatewayError::Timeout(t.as_millis() as u64),
        Limit::Idle { idle, .. } => GatewayError::IdleTimeout(idle.as_millis() as u64),
    };
    // Whether the prompt may be on the gateway already.
    let mut sent = turn.adopt;
    let mut canonical: Option<String> = None;
    let mut params = agent_params(&turn);
    loop {
        let deadline = deadline_of(last_event);
        let wait = deadline.saturating_duration_since(Instant::now());
        // Not connected: a cancel or a timeout now still aborts the run, once the connection
        // is back, if the prompt may be on the gateway.
        let session = tokio::select! {
            s = client.session(wait, true) => s,
            () = turn.cancel.cancelled() => {
                if sent {
                    abort_when_back(client, &turn.run, canonical.clone(), None);
                }
                return Err(GatewayError::Cancelled);
            }
        };
        let session = match session {
            Ok(s) => s,
            Err(e) => {
                if sent {
                    abort_when_back(client, &turn.run, canonical.clone(), None);
                }
                if Instant::now() >= deadline && !e.needs_a_person() {
                    return Err(timed_out(turn.limit));
                }
                return Err(e.into());
            }
        };
        let boot = session.hello.boot_id.clone();
        if sent
            && let (Some(was), Some(now)) = (&turn.run.boot_id, &boot)
            && was != now
        {
            return Err(GatewayError::GatewayRestarted);
        }
        let mut agent_req: Option<PendingRequest> = None;
        let mut wait_req: Option<PendingRequest> = None;
        // When the next `agent.wait` slice is due (one answered "not yet").
        let mut wait_due: Option<Instant> = None;
        let mut wait_started = Instant::now();
        if !sent {
            turn.run.boot_id = boot.clone();
            turn.run.sent_at_ms = now_ms();
            if let Some(sink) = turn.sink.take() {
                sink(turn.run.clone()).await.map_err(|e| {
                    GatewayError::Unsupported(format!(
                        "the run could not be recorded before sending: {e}"
                    ))
                })?;
            }
            agent_req = Some(session.start("agent", &params)?);
            sent = true;
        } else {
            // The lookup waits for the gateway; a cancel or the deadline meanwhile still aborts.
            let found = tokio::select! {
                biased;
                () = turn.cancel.cancelled() => {
                    abort_now_or_later(client, &session, &turn.run, canonical.as_deref()).await;
                    return Err(GatewayError::Cancelled);
                }
                () = tokio::time::sleep_until(deadline) => {
                    abort_now_or_later(client, &session, &turn.run, canonical.as_deref()).await;
                    return Err(timed_out(turn.limit));
                }
                found = find_run(&session, &turn.run) => found,
            };
            let found = match found {
                Ok(found) => found,
                Err(GatewayError::Ws(WsError::Disconnected(_))) => continue,
                Err(e) => return Err(e),
            };
            match found {
                Found::Done(reply) => {
                    return Ok(answered(&turn.progress, reply));
                }
                Found::Running => {
                    wait_started = Instant::now();
                    wait_req = Some(wait_slice(&session, &turn.run.run_id)?);
                }
                Found::Unknown
                    if now_ms().saturating_sub(turn.run.sent_at_ms)
                        < DEDUPE_WINDOW.as_millis() as i64 =>
                {
                    // Never arrived (or de-duplicated if it did): the same key again.
                    agent_req = Some(session.start("agent", &params)?);
                }
                Found::Unknown => {
                    return Err(GatewayError::RunLost(format!(
                        "the gateway has no trace of run {} (sent more than {} minutes ago, outside its de-duplication window); it was not sent again",
                        turn.run.run_id,
                        DEDUPE_WINDOW.as_secs() / 60
                    )));
                }
                Found::Ended => {
                    let waited = session
                        .request(
                            "agent.wait",
                            json!({"runId": turn.run.run_id, "timeoutMs": 0}),
                            READ_TIMEOUT,
                        )
                        .await?;
                    return match reply_of_wait(&waited) {
                        Some(result) => result,
                        None => Err(GatewayError::RunLost(format!(
                            "run {} ended on the gateway without an answer while the bridge was away",
                            turn.run.run_id
                        ))),
                    };
                }
            }
        }
        // Serve this connection until the answer, a cancel, the deadline or the connection's end.
        loop {
            let deadline = deadline_of(last_event);
            tokio::select! {
                biased;
                () = turn.cancel.cancelled() => {
                    abort_now_or_later(client, &session, &turn.run, canonical.as_deref()).await;
                    return Err(GatewayError::Cancelled);
                }
                () = tokio::time::sleep_until(deadline) => {
                    abort_now_or_later(client, &session, &turn.run, canonical.as_deref()).await;
                    return Err(timed_out(turn.limit));
                }
                frame = next_of(&mut agent_req) => match frame {
                    Ok(frame) if frame.is_accepted() => {
                        canonical = frame
                            .payload
                            .as_ref()
                            .and_then(|p| p.get("sessionKey"))
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        last_event = Instant::now();
                        touch(&turn.progress, None);
                    }
                    Ok(frame) => {
                        agent_req = None;
                        let payload = frame.into_result().map_err(GatewayError::from);
                        let payload = match payload {
                            Ok(p) => p,
                            Err(GatewayError::Ws(WsError::Gateway { message, .. }))
                                if images_refused(&message) && !turn.images.is_empty() =>
                            {
                                // The agent's model takes no images. Over HTTP the gateway drops
                                // them and the model answers the text; the same here: the text
                                // alone, under the same run id (the refusal started no run, and
                                // the gateway does not keep refused keys: observed on 2026.9.6).
                                tracing::info!(run = %turn.run.run_id, images = turn.images.len(), "the agent's model takes no images; sending the text alone, as over HTTP");
                                turn.images.clear();
                                params = agent_params(&turn);
                                agent_req = Some(session.start("agent", &params)?);
                                continue;
                            }
                            Err(GatewayError::Ws(WsError::Gateway { message, .. })) => {
                                return Err(GatewayError::Upstream(message));
                            }
                            Err(e) => return Err(e),
                        };
                        match reply_of_agent(&payload)? {
                            Final::Reply(reply) => {
                                return Ok(answered(&turn.progress, reply));
                            }
                            Final::InFlight => {
                                wait_started = Instant::now();
                                match wait_slice(&session, &turn.run.run_id) {
                                    Ok(pending) => wait_req = Some(pending),
                                    Err(WsError::Disconnected(_)) => break,
                                    Err(e) => return Err(e.into()),
                                }
                            }
                            Final::Aborted(why) => {
                                return Err(GatewayError::Upstream(format!(
                                    "the run was aborted on the gateway ({why})"
                                )));
                            }
                        }
                    }
                    Err(WsError::Disconnected(_)) => break,
                    Err(e) => return Err(e.into()),
                },
                frame = next_of(&mut wait_req) => match frame {
                    Ok(frame) => {
                        let payload = frame.into_result()?;
                        match reply_of_wait(&payload) {
                            Some(result) => {
                                return result.map(|reply| answered(&turn.progress, reply));
                            }
                            None => {
                                wait_req = None;
                                wait_due = Some((wait_started + WAIT_PAUSE).max(Instant::now()));
                            }
                        }
                    }
                    Err(WsError::Disconnected(_)) => break,
                    Err(e) => return Err(e.into()),
                },
                () = sleep_until_due(wait_due) => {
                    wait_due = None;
                    wait_started = Instant::now();
                    match wait_slice(&session, &turn.run.run_id) {
                        Ok(pending) => wait_req = Some(pending),
                        // The connection ended as the slice was due: adopt on the next one.
                        Err(WsError::Disconnected(_)) => break,
                        Err(e) => return Err(e.into()),
                    }
                }
                event = watch.next() => {
                    let Some(event) = event else { continue };
                    last_event = Instant::now();
                    if let Some(done) = on_event(&event, &turn.progress, agent_req.is_none()) {
                        return done;
                    }
                }
                () = session.closed() => break,
            }
        }
        tracing::info!(run = %turn.run.run_id, "the WebSocket connection dropped during a run; adopting it again on the next connection");
    }
}

/// Reads one event of the run: streamed text drives progress; a terminal `chat` event ends the
/// turn when no `agent` answer is awaited (an adopted run), and an error or an abort always does.
fn on_event(
    event: &Incoming,
    progress: &Option<ProgressSender>,
    adopted: bool,
) -> Option<Result<ChatReply, GatewayError>> {
    let payload = event.payload.as_ref()?;
    match event.event.as_deref() {
        Some("chat") => {
            let text = payload.pointer("/message/content").map(text_of_content);
            match payload.get("state").and_then(Value::as_str) {
                Some("delta") => {
                    touch(progress, text.map(|t| t.chars().count() as u64));
                    None
                }
                Some("final") if adopted => text.map(|content| {
                    touch(progress, Some(content.chars().count() as u64));
                    Ok(ChatReply {
                        content,
                        model: None,
                        finish_reason: payload
                            .get("stopReason")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                        usage: payload.get("usage").cloned(),
                        streamed: true,
                    })
                }),
                Some("error") => Some(Err(GatewayError::Upstream(gateway_text(
                    payload
                        .get("errorMessage")
                        .and_then(Value::as_str)
                        .unwrap_or("the run failed"),
                )))),
                Some("aborted") => Some(Err(GatewayError::Upstream(format!(
                    "the run was aborted on the gateway ({})",
                    gateway_text(
                        payload
                            .get("stopReason")
                            .and_then(Value::as_str)
                            .unwrap_or("aborted")
                    )
                )))),
                _ => {
                    touch(progress, None);
                    None
                }
            }
        }
        _ => {
            touch(progress, None);
            None
        }
    }
}

/// `agents.list` as the model ids of the HTTP API (`openclaw/<agentId>`), so that
/// `openclaw_agents` reads the same on both backends.
pub async fn agent_models(client: &WsClient, wait: Duration) -> Result<Vec<String>, GatewayError> {
    let session = client.session(wait, true).await?;
    let listed = session
        .request("agents.list", json!({}), READ_TIMEOUT)
        .await?;
    let mut models = vec!["openclaw".to_string(), "openclaw/default".to_string()];
    if let Some(agents) = listed.get("agents").and_then(Value::as_array) {
        for id in agents
            .iter()
            .filter_map(|a| a.get("id").and_then(Value::as_str))
        {
            models.push(format!("openclaw/{id}"));
        }
    }
    Ok(models)
}

/// `health`: the round trip, for the status.
pub async fn health(
    client: &WsClient,
    wait: Duration,
) -> Result<(Arc<Session>, Duration), GatewayError> {
    let session = client.session(wait, false).await?;
    let started = Instant::now();
    session.request("health", json!({}), READ_TIMEOUT).await?;
    Ok((session, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_reset_go_as_text_and_other_slash_text_is_untouched() {
        assert_eq!(as_text("/new"), "\u{200B}/new");
        assert_eq!(as_text("/RESET now"), "\u{200B}/RESET now");
        assert_eq!(as_text("/status"), "/status");
        assert_eq!(as_text("/newsletter"), "/newsletter");
        assert_eq!(as_text("hello /new"), "hello /new");
    }

    #[test]
    fn agent_answers_are_read() {
        let ok = json!({"runId":"r","status":"ok","summary":"completed","result":{"payloads":[{"text":"a"},{"text":"b"}],"meta":{"agentMeta":{"model":"m","usage":{"total":3}}}}});
        let Final::Reply(reply) = reply_of_agent(&ok).unwrap() else {
            panic!("not a reply")
        };
        assert_eq!(reply.content, "a\n\nb");
        assert_eq!(reply.model.as_deref(), Some("m"));
        let aborted =
            json!({"runId":"r","status":"timeout","summary":"aborted","stopReason":"rpc"});
        assert!(matches!(
            reply_of_agent(&aborted).unwrap(),
            Final::Aborted(_)
        ));
        let budget = json!({"status":"timeout","summary":"aborted","timeoutPhase":"provider","result":{"payloads":[{"text":"Request timed out","isError":true}]}});
        assert!(reply_of_agent(&budget).is_err());
        assert!(matches!(
            reply_of_agent(&json!({"status":"in_flight"})).unwrap(),
            Final::InFlight
        ));
        assert!(attachment("data:image/png;base64,AAAA").is_some());
        assert!(attachment("nonsense").is_none());
    }
}
