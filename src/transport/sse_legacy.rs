//! The legacy HTTP+SSE transport (MCP 2024-11-05), still served as 1.7.0 does for clients that
//! predate Streamable HTTP: `GET /sse` opens a stream whose first event is `endpoint` with data
//! `/messages?sessionId=<uuid>` (`<replica>.<uuid>` with `OPENCLAW_MCP_REPLICA_ID`, see
//! [`SessionIds`](super::sessions::SessionIds)); the client POSTs each JSON-RPC message there
//! (202 Accepted) and every answer arrives on the stream as a `message` event. rmcp has no server for it, so these
//! are our own actix-web handlers over a channel transport that rmcp serves like any other.
//!
//! Each stream is one MCP connection with its own [`OpenClawServer`] and task owner. The
//! session ends — and its handler, its calls and its slot in `MCP_MAX_SESSIONS` are freed — when
//! the client closes the stream (actix sees the connection's EOF at once: half-closed
//! connections are not kept, see [`super::http`]; a connection that vanishes without a FIN is
//! found by the keep-alive comments every 15 s), after `MCP_SESSION_IDLE_SECS` without a
//! message, or at shutdown.
//!
//! A request whose id is already in flight in its session (a client bug) is accepted like any
//! message (`202`: the POST only acknowledges receipt in this transport) and answered at once on
//! the stream, where every answer of this transport comes, with JSON-RPC `-32600`; it never
//! reaches the MCP handler, so the first call completes unharmed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use bytes::Bytes;
use rmcp::{
    RoleServer, ServiceExt,
    model::{ClientJsonRpcMessage, ClientNotification, RequestId, ServerJsonRpcMessage},
    transport::Transport,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{
    http::{HttpError, InFlightGuard, Principal, SSE_KEEP_ALIVE, Shared},
    route_guard::{ParsedMessage, cut_off_message, legacy_session_id},
    sessions::{CapKey, SessionKind},
    streams::duplicate_id_error,
};
use crate::{mcp::server::OpenClawServer, net::ClientAddr, tasks::Owner};

/// Messages buffered each way between the HTTP handlers and the MCP handler.
const CHANNEL_CAPACITY: usize = 64;

/// One open legacy SSE session.
struct LegacySession {
    /// Client → MCP handler.
    to_server: mpsc::Sender<ClientJsonRpcMessage>,
    /// Answers of ours straight to the stream, bypassing the handler (a duplicate id's error);
    /// they are not taken for the answer of the request in flight with that id.
    to_client: mpsc::Sender<ServerJsonRpcMessage>,
    /// Requests without an answer yet, each counted as a call in flight.
    pending: Mutex<HashMap<RequestId, InFlightGuard>>,
    /// Last message either way, for the idle timeout.
    last_activity: Mutex<Instant>,
    /// The authenticated principal that opened the stream (auth on): only it may post.
    principal: Option<Owner>,
}

impl LegacySession {
    fn touch(&self) {
        if let Ok(mut t) = self.last_activity.lock() {
            *t = Instant::now();
        }
    }

    fn idle_since(&self) -> Instant {
        self.last_activity
            .lock()
            .map(|t| *t)
            .unwrap_or_else(|_| Instant::now())
    }

    fn answered(&self, id: &RequestId) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(id);
        }
    }

    /// The requests still without an answer (taken: the caller answers them).
    fn take_pending(&self) -> Vec<RequestId> {
        self.pending
            .lock()
            .map(|mut pending| pending.drain().map(|(id, _)| id).collect())
            .unwrap_or_default()
    }
}

/// The open legacy sessions, by id.
#[derive(Default)]
pub(crate) struct LegacySessions {
    map: Mutex<HashMap<String, Arc<LegacySession>>>,
}

impl LegacySessions {
    fn insert(&self, id: String, session: Arc<LegacySession>) {
        if let Ok(mut map) = self.map.lock() {
            map.insert(id, session);
        }
    }

    fn get(&self, id: &str) -> Option<Arc<LegacySession>> {
        self.map.lock().ok().and_then(|map| map.get(id).cloned())
    }

    fn remove(&self, id: &str) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(id);
        }
    }
}

/// rmcp's view of one SSE session: messages in from `POST /messages`, messages out to the stream.
struct ChannelTransport {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    outgoing: mpsc::Sender<ServerJsonRpcMessage>,
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = mpsc::error::SendError<ServerJsonRpcMessage>;

    fn send(
        &mut self,
        item: ServerJsonRpcMessage,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outgoing = self.outgoing.clone();
        async move { outgoing.send(item).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<ClientJsonRpcMessage>> + Send {
        self.incoming.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.incoming.close();
        Ok(())
    }
}

/// Ends a session when its stream goes away, however that happens.
struct Closer {
    id: String,
    shared: Arc<Shared>,
    cancel: CancellationToken,
}

impl Drop for Closer {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.shared.legacy.remove(&self.id);
        self.shared.sessions.remove(&self.id);
        self.shared.limit.release(SessionKind::Legacy);
        tracing::info!(
            open = self.shared.limit.open(SessionKind::Legacy),
            "legacy SSE session closed"
        );
    }
}

/// What the response stream needs between two events.
struct StreamState {
    endpoint: Option<String>,
    /// Errors for the calls cut off by the shutdown, sent before the stream ends.
    cut_off: Option<std::vec::IntoIter<RequestId>>,
    outgoing: mpsc::Receiver<ServerJsonRpcMessage>,
    /// Our own answers (see [`LegacySession::to_client`]).
    direct: mpsc::Receiver<ServerJsonRpcMessage>,
    session: Arc<LegacySession>,
    idle: Duration,
    closer: Closer,
}

fn event(name: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

/// The next bytes of the stream: the endpoint, a message, a keep-alive comment, or the end.
async fn next_event(mut st: StreamState) -> Option<(Result<Bytes, actix_web::Error>, StreamState)> {
    if let Some(endpoint) = st.endpoint.take() {
        return Some((Ok(event("endpoint", &endpoint)), st));
    }
    if let Some(cut_off) = st.cut_off.as_mut() {
        let id = cut_off.next()?;
        let message = cut_off_message(&id);
        return Some((Ok(event("message", &message.to_string())), st));
    }
    loop {
        let idle_deadline = st.session.idle_since() + st.idle;
        tokio::select! {
            message = st.outgoing.recv() => {
                let message = message?;
                st.session.touch();
                match &message {
                    ServerJsonRpcMessage::Response(r) => st.session.answered(&r.id),
                    ServerJsonRpcMessage::Error(e) => {
                        if let Some(id) = &e.id {
                            st.session.answered(id);
                        }
                    }
                    _ => {}
                }
                match serde_json::to_string(&message) {
                    Ok(data) => return Some((Ok(event("message", &data)), st)),
                    Err(e) => tracing::error!(error = %e, "cannot serialize an MCP message"),
                }
            }
            Some(message) = st.direct.recv() => {
                st.session.touch();
                match serde_json::to_string(&message) {
                    Ok(data) => return Some((Ok(event("message", &data)), st)),
                    Err(e) => tracing::error!(error = %e, "cannot serialize an MCP message"),
                }
            }
            _ = tokio::time::sleep(SSE_KEEP_ALIVE) => {
                return Some((Ok(Bytes::from_static(b": keep-alive\n\n")), st));
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                if st.session.idle_since() + st.idle <= Instant::now() {
                    tracing::info!(idle_secs = st.idle.as_secs(), "legacy SSE session idle; closing it");
                    return None;
                }
            }
            _ = st.closer.cancel.cancelled() => {
                // At shutdown, the calls still running get an answer saying so; a session closed
                // for any other reason (its stream, its cap) has no one left to tell.
                if !st.closer.shared.shutdown.is_cancelled() {
                    return None;
                }
                let pending = st.session.take_pending();
                if pending.is_empty() {
                    return None;
                }
                tracing::warn!(calls = pending.len(), "legacy SSE calls cut off by the shutdown; answering them with an error");
                st.cut_off = Some(pending.into_iter());
                return Box::pin(next_event(st)).await;
            }
        }
    }
}

/// `GET /sse`: opens a session and its stream.
pub(crate) async fn open(
    req: HttpRequest,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, HttpError> {
    let shared = shared.into_inner();
    if !shared.limit.try_acquire(SessionKind::Legacy) {
        return Err(HttpError::TooManySessions {
            max: shared.limit.max(),
        });
    }
    let id = shared.session_ids.fresh();
    let (to_server, incoming) = mpsc::channel(CHANNEL_CAPACITY);
    let (outgoing_tx, outgoing) = mpsc::channel(CHANNEL_CAPACITY);
    let (to_client, direct) = mpsc::channel(CHANNEL_CAPACITY);
    let principal = req.extensions().get::<Principal>().map(|p| p.0.clone());
    let session = Arc::new(LegacySession {
        to_server,
        to_client,
        pending: Mutex::new(HashMap::new()),
        last_activity: Mutex::new(Instant::now()),
        principal: principal.clone(),
    });
    shared.legacy.insert(id.clone(), session.clone());
    let cancel = shared.shutdown.child_token();
    let client = req.extensions().get::<ClientAddr>().copied();
    shared.sessions.admit(
        &id,
        SessionKind::Legacy,
        principal.clone(),
        CapKey::of(principal.as_ref(), client.and_then(|c| c.0)),
        Some(cancel.clone()),
    );
    let closer = Closer {
        id: id.clone(),
        shared: shared.clone(),
        cancel: cancel.clone(),
    };
    let owner = principal.unwrap_or_else(|| Owner::Session(id.clone()));
    tracing::info!(
        client = %client.unwrap_or(ClientAddr(None)),
        open = shared.limit.open(SessionKind::Legacy),
        "Legacy SSE transport is deprecated; prefer Streamable HTTP at /mcp"
    );

    let server = OpenClawServer::new(shared.services.clone(), owner);
    let transport = ChannelTransport {
        incoming,
        outgoing: outgoing_tx,
    };
    let serve_cancel = cancel.clone();
    tokio::spawn(async move {
        tokio::select! {
            started = server.serve_with_ct(transport, serve_cancel.clone()) => match started {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(e) => tracing::debug!(error = %e, "legacy SSE session ended before initialize"),
            },
            _ = serve_cancel.cancelled() => {}
        }
        // The handler is gone: end the stream too.
        serve_cancel.cancel();
    });

    let state = StreamState {
        endpoint: Some(format!("/messages?sessionId={id}")),
        cut_off: None,
        outgoing,
        direct,
        session,
        idle: shared.session_idle,
        closer,
    };
    let stream = futures_util::stream::unfold(state, next_event);
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(stream))
}

/// `POST /messages?sessionId=`: one client message into its session (the guard has checked and
/// parsed the body); the answer goes out on the stream.
pub(crate) async fn post(
    req: HttpRequest,
    shared: web::Data<Shared>,
) -> Result<HttpResponse, HttpError> {
    let poster = req.extensions().get::<Principal>().map(|p| p.0.clone());
    let session = legacy_session_id(req.query_string())
        .and_then(|id| shared.legacy.get(&id))
        // A stream opened with one client's token only takes messages with the same client's.
        .filter(|s| s.principal.is_none() || s.principal == poster)
        .ok_or(HttpError::SessionNotFound)?;
    let message = req
        .extensions_mut()
        .remove::<ParsedMessage>()
        .map(|m| m.0)
        .ok_or_else(|| HttpError::InvalidRequest("empty body".to_string()))?;
    match &message {
        ClientJsonRpcMessage::Request(r) => {
            let fresh = match session.pending.lock() {
                Ok(mut pending) => match pending.entry(r.id.clone()) {
                    std::collections::hash_map::Entry::Occupied(_) => false,
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        slot.insert(shared.lifecycle.enter());
                        true
                    }
                },
                Err(_) => true,
            };
            if !fresh {
                tracing::warn!(
                    "a legacy SSE request reused the id of a request in flight; refused with -32600"
                );
                session.touch();
                let refusal = duplicate_id_error(&r.id);
                if session.to_client.send(refusal).await.is_err() {
                    return Err(HttpError::SessionNotFound);
                }
                return Ok(HttpResponse::Accepted().finish());
            }
        }
        ClientJsonRpcMessage::Notification(n) => {
            if let ClientNotification::CancelledNotification(c) = &n.notification
                && let Some(id) = &c.params.request_id
            {
                session.answered(id);
            }
        }
        _ => {}
    }
    session.touch();
    if session.to_server.send(message).await.is_err() {
        return Err(HttpError::SessionNotFound);
    }
    Ok(HttpResponse::Accepted().finish())
}
