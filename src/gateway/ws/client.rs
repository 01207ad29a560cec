//! [`WsClient`]: one long-lived WebSocket connection per instance, kept up by a background task.
//!
//! - **Connection manager.** Connects (upgrade + handshake), serves the connection until it
//!   ends, and reconnects with an exponential backoff (1 s doubling to 30 s, ±20 % jitter; it
//!   starts over only after a connection that held 30 s). A failure only a person can fix (a
//!   refused token, a pairing to approve, another protocol version) is retried slowly
//!   ([`Options::person_retry`]) and shown as it is: never a tight loop.
//! - **Multiplexer.** Requests carry unique ids and wait for their own `res` (out of order, and
//!   two-phase for `agent`: the "accepted" answer is skipped by [`Session::request_final`]).
//!   Every operator connection receives every session's `chat` and `agent` events, so events are
//!   routed by `runId` to whoever watches that run ([`WsClient::watch_run`]) and all others are
//!   dropped, as are unknown event types. Watches outlive reconnects; pending requests do not
//!   (the gateway never answers a request of a closed connection).
//! - **Keepalive.** The library answers the gateway's pings (the read loop never stops
//!   polling, even while a frame is being written). The bridge pings every
//!   [`Options::ping_every`] and drops a connection that has sent nothing, not even a pong, for
//!   [`Options::dead_after`] (the gateway's own ticks come only every 30 s), or that has read
//!   nothing the bridge sent for as long (its TCP window full).
//! - **Limits.** A frame over the gateway's `maxPayload` is refused before it is sent, and so is
//!   a request while more than [`Session::backlog_limit`] bytes wait to go out. Frames are
//!   routed by their head ([`Head`]): only those somebody waits for are parsed in full.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    sync::{Notify, mpsc, watch},
    time::Instant,
};
use tokio_tungstenite::tungstenite::{Message, protocol::CloseFrame};
use tokio_util::sync::CancellationToken;

use super::{
    conn::{self, Endpoint, Socket},
    error::WsError,
    frames::{self, Credentials, Head, Hello, Incoming},
    identity::DeviceIdentity,
};

/// How long a closing connection waits for its close frame to go out.
const CLOSE_WAIT: Duration = Duration::from_millis(500);

/// How the client behaves (the defaults are those of production; tests shorten them).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the gateway is.
    pub endpoint: Endpoint,
    /// The shared gateway token, if any.
    pub token: Option<String>,
    /// Deadline of one connect (TCP, TLS and upgrade).
    pub connect_timeout: Duration,
    /// The bridge pings this often.
    pub ping_every: Duration,
    /// A connection that sent nothing for this long is dead.
    pub dead_after: Duration,
    /// First reconnect delay; it doubles up to [`Options::max_backoff`].
    pub first_backoff: Duration,
    /// Longest reconnect delay after transient failures.
    pub max_backoff: Duration,
    /// Retry delay after a failure only a person can fix.
    pub person_retry: Duration,
}

impl Options {
    /// Production defaults for `endpoint` and `token`.
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Options {
        Options {
            endpoint,
            token,
            connect_timeout: Duration::from_secs(10),
            ping_every: Duration::from_secs(10),
            dead_after: Duration::from_secs(30),
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(30),
            person_retry: Duration::from_secs(60),
        }
    }
}

/// Where the connection stands.
#[derive(Debug, Clone)]
pub enum Phase {
    /// The first attempt is under way.
    Connecting,
    /// Connected and ready for requests.
    Ready(Arc<Session>),
    /// Not connected; the error of the last attempt (or why the connection ended). The manager
    /// retries by itself.
    Down(WsError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves plain maps behind: still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The credentials a connection was accepted with, as the status tells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthUsed {
    /// Nothing: the gateway asks for no credentials.
    Nothing,
    /// The shared gateway token alone (a device, if signed, was not paired: a loopback gateway
    /// trusts the token).
    Token,
    /// The paired device alone (its device token; the shared token was refused or not given).
    Device,
    /// The shared token and the paired device.
    TokenAndDevice,
}

impl AuthUsed {
    /// What was used: the token, the device, or both.
    pub fn of(sent_token: bool, paired_device: bool) -> AuthUsed {
        match (sent_token, paired_device) {
            (false, false) => AuthUsed::Nothing,
            (true, false) => AuthUsed::Token,
            (false, true) => AuthUsed::Device,
            (true, true) => AuthUsed::TokenAndDevice,
        }
    }

    /// In words, for `api_reason` and the probe.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthUsed::Nothing => "none (the gateway asks for none)",
            AuthUsed::Token => "the gateway token",
            AuthUsed::Device => "the paired device",
            AuthUsed::TokenAndDevice => "the gateway token and the paired device",
        }
    }
}

/// One connection, from `hello-ok` to its end.
#[derive(Debug)]
pub struct Session {
    /// What `hello-ok` granted.
    pub hello: Hello,
    /// The credentials the gateway accepted.
    pub auth: AuthUsed,
    /// Counts connections of this client (1 for the first).
    pub generation: u64,
    /// Whether the gateway restarted since the previous connection (its `bootId` changed): the
    /// runs in flight then are gone.
    pub gateway_restarted: bool,
    /// Frames to send, handed to the connection's writer.
    out: mpsc::UnboundedSender<Message>,
    /// Bytes of requests handed to the writer and not yet written out ([`Session::start`]
    /// refuses more than [`Session::backlog_limit`]).
    queued: Arc<AtomicUsize>,
    /// Requests waiting for their answers, by id.
    pending: Mutex<HashMap<String, mpsc::UnboundedSender<Incoming>>>,
    /// Request id counter.
    next_id: AtomicU64,
    /// Cancelled when the connection ends.
    closed: CancellationToken,
}

/// A request sent and waiting for its answer(s); its id is released when dropped.
pub struct PendingRequest {
    id: String,
    method: String,
    rx: mpsc::UnboundedReceiver<Incoming>,
    session: Arc<Session>,
}

impl Drop for PendingRequest {
    fn drop(&mut self) {
        lock(&self.session.pending).remove(&self.id);
    }
}

impl PendingRequest {
    /// The next answer to this request by `deadline`.
    pub async fn next(&mut self, deadline: Instant) -> Result<Incoming, WsError> {
        match tokio::time::timeout_at(deadline, self.rx.recv()).await {
            Err(_) => Err(WsError::Timeout {
                method: self.method.clone(),
                ms: 0,
            }),
            Ok(None) => Err(WsError::Disconnected(format!(
                "the connection ended before the gateway answered {}",
                self.method
            ))),
            Ok(Some(frame)) => Ok(frame),
        }
    }

    /// The final answer (an "accepted" first answer of a two-phase method is skipped).
    pub async fn final_answer(&mut self, deadline: Instant) -> Result<Value, WsError> {
        loop {
            let frame = self.next(deadline).await?;
            if !frame.is_accepted() {
                return frame.into_result();
            }
        }
    }
}

impl Session {
    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }

    /// Resolves when the connection ends.
    pub async fn closed(&self) {
        self.closed.cancelled().await
    }

    /// Sends a request; its answers come through the returned [`PendingRequest`]. A frame over
    /// the gateway's `maxPayload` is refused here, before anything is sent.
    pub fn start(
        self: &Arc<Self>,
        method: &str,
        params: &Value,
    ) -> Result<PendingRequest, WsError> {
        let id = format!("m{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let text = frames::request(&id, method, params);
        if text.len() > self.hello.max_payload {
            return Err(WsError::TooLarge {
                size: text.len(),
                limit: self.hello.max_payload,
            });
        }
        if self.is_closed() {
            return Err(WsError::Disconnected("the connection has ended".into()));
        }
        // A gateway that stops reading must not make the bridge hold every later request in
        // memory: past the limit a request is refused (one always fits in an empty queue).
        let before = self.queued.fetch_add(text.len(), Ordering::AcqRel);
        if before > 0 && before + text.len() > self.backlog_limit() {
            self.queued.fetch_sub(text.len(), Ordering::AcqRel);
            return Err(WsError::Backlog { queued: before });
        }
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.pending).insert(id.clone(), tx);
        let pending = PendingRequest {
            id,
            method: method.to_string(),
            rx,
            session: self.clone(),
        };
        self.out
            .send(Message::text(text))
            .map_err(|_| WsError::Disconnected("the connection has ended".into()))?;
        Ok(pending)
    }

    /// How many bytes of requests may wait to be written: twice the gateway's `maxPayload`.
    pub fn backlog_limit(&self) -> usize {
        self.hello.max_payload.max(1024 * 1024).saturating_mul(2)
    }

    /// One request and its (first) answer within `timeout`.
    pub async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, WsError> {
        let mut pending = self.start(method, &params)?;
        pending
            .next(Instant::now() + timeout)
            .await
            .map_err(|e| with_ms(e, timeout))?
            .into_result()
    }

    /// One request of a two-phase method and its final answer within `timeout`.
    pub async fn request_final(
        self: &Arc<Self>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, WsError> {
        let mut pending = self.start(method, &params)?;
        pending
            .final_answer(Instant::now() + timeout)
            .await
            .map_err(|e| with_ms(e, timeout))
    }
}

/// Fills in the deadline of a timeout error.
fn with_ms(e: WsError, timeout: Duration) -> WsError {
    match e {
        WsError::Timeout { method, .. } => WsError::Timeout {
            method,
            ms: timeout.as_millis() as u64,
        },
        other => other,
    }
}

/// State shared by the handles and the manager task.
struct Shared {
    /// The connection's phase.
    phase: watch::Sender<Phase>,
    /// Watched runs: `runId` → where its events go.
    runs: Mutex<HashMap<String, mpsc::UnboundedSender<Incoming>>>,
    /// Whether a connection was ever ready (the gateway speaks the protocol here).
    ever_ready: AtomicBool,
    /// Wakes the manager out of its backoff.
    wake: Notify,
    /// Stops the manager (the last handle is gone).
    stop: CancellationToken,
}

/// Stops the manager when the last handle goes.
struct Owner(Arc<Shared>);

impl Drop for Owner {
    fn drop(&mut self) {
        self.0.stop.cancel();
    }
}

/// A cloneable handle on one instance's WebSocket connection.
#[derive(Clone)]
pub struct WsClient {
    shared: Arc<Shared>,
    _owner: Arc<Owner>,
}

/// The events of one run, while watched.
pub struct RunWatch {
    run_id: String,
    rx: mpsc::UnboundedReceiver<Incoming>,
    shared: Arc<Shared>,
}

impl Drop for RunWatch {
    fn drop(&mut self) {
        lock(&self.shared.runs).remove(&self.run_id);
    }
}

impl RunWatch {
    /// The next `chat` or `agent` event of the run (`None` never happens while the client lives).
    pub async fn next(&mut self) -> Option<Incoming> {
        self.rx.recv().await
    }
}

impl WsClient {
    /// Starts the connection manager (on the current tokio runtime) for `options`, with the
    /// device identity that signs the challenge, if any.
    pub fn start(options: Options, identity: Option<Arc<Mutex<DeviceIdentity>>>) -> WsClient {
        let (phase, _) = watch::channel(Phase::Connecting);
        let shared = Arc::new(Shared {
            phase,
            runs: Mutex::new(HashMap::new()),
            ever_ready: AtomicBool::new(false),
            wake: Notify::new(),
            stop: CancellationToken::new(),
        });
        tokio::spawn(manage(shared.clone(), options, identity));
        WsClient {
            _owner: Arc::new(Owner(shared.clone())),
            shared,
        }
    }

    /// The connection's phase now.
    pub fn phase(&self) -> Phase {
        self.shared.phase.borrow().clone()
    }

    /// Whether a connection was ever ready.
    pub fn ever_ready(&self) -> bool {
        self.shared.ever_ready.load(Ordering::Relaxed)
    }

    /// Asks the manager to retry now instead of at the end of its backoff.
    pub fn reconnect_now(&self) {
        self.shared.wake.notify_one();
    }

    /// Resolves when the phase changes.
    pub fn changes(&self) -> watch::Receiver<Phase> {
        self.shared.phase.subscribe()
    }

    /// The ready connection, waiting up to `wait` for one. A failure only a person can fix (or
    /// a server that does not speak the protocol) is returned at once; transient failures are
    /// waited through when `through_errors`, else returned at once too.
    pub async fn session(
        &self,
        wait: Duration,
        through_errors: bool,
    ) -> Result<Arc<Session>, WsError> {
        let mut rx = self.shared.phase.subscribe();
        let deadline = Instant::now() + wait;
        let mut last = None;
        loop {
            let phase = rx.borrow_and_update().clone();
            match phase {
                Phase::Ready(session) if !session.is_closed() => return Ok(session),
                Phase::Down(e) if !through_errors || e.needs_a_person() || e.is_unsupported() => {
                    return Err(e);
                }
                Phase::Down(e) => last = Some(e),
                _ => {}
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    return Err(WsError::Disconnected(
                        "the connection manager stopped".into(),
                    ));
                }
                Err(_) => {
                    return Err(last.unwrap_or_else(|| {
                        WsError::Disconnected(format!(
                            "not connected to the gateway within {} ms",
                            wait.as_millis()
                        ))
                    }));
                }
            }
        }
    }

    /// Routes the events of `run_id` to the returned watch until it is dropped. Register it
    /// before sending the request that starts the run.
    pub fn watch_run(&self, run_id: &str) -> RunWatch {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.shared.runs).insert(run_id.to_string(), tx);
        RunWatch {
            run_id: run_id.to_string(),
            rx,
            shared: self.shared.clone(),
        }
    }
}

/// The credentials of one attempt: the shared token with the device token when paired, or the
/// device token alone after the shared one was refused.
fn credentials(
    options: &Options,
    identity: Option<&DeviceIdentity>,
    device_only: bool,
) -> Credentials {
    let device_token = identity
        .and_then(|i| i.device_token(&options.endpoint.url))
        .map(str::to_string);
    Credentials {
        token: if device_only {
            None
        } else {
            options.token.clone()
        },
        device_token,
    }
}

/// One attempt: open, handshake (again with the device token alone if the shared token is
/// refused and the device has one), keep a new device token, check the scopes.
async fn connect_once(
    options: &Options,
    identity: Option<&Arc<Mutex<DeviceIdentity>>>,
) -> Result<(Socket, Hello, AuthUsed), WsError> {
    if let Some(identity) = identity {
        super::identity::sync(identity).await?;
    }
    let mut device_only = false;
    loop {
        let creds = {
            let guard = identity.map(|i| lock(i));
            credentials(options, guard.as_deref(), device_only)
        };
        let mut socket = conn::open(&options.endpoint, options.connect_timeout).await?;
        let hello = match conn::handshake(&mut socket, &creds, identity).await {
            Err(WsError::Auth(_))
                if !device_only && creds.device_token.is_some() && creds.token.is_some() =>
            {
                device_only = true;
                continue;
            }
            // The device token was sent and the gateway wants the device paired (again): it was
            // removed or its token revoked. The token is dead; it is forgotten so that the status
            // no longer calls the device paired and the next pairing starts clean. (Other
            // refusals, such as a rate limit or a scope upgrade to approve, keep it.)
            Err(e @ WsError::PairingRequired { .. }) if creds.device_token.is_some() => {
                if let Some(identity) = identity
                    && let Err(forget) = lock(identity).forget_device_token()
                {
                    tracing::warn!(error = %forget, "cannot forget the revoked device token");
                }
                if let Some(identity) = identity
                    && let Err(forget) = super::identity::sync(identity).await
                {
                    tracing::warn!(error = %forget, "cannot forget the revoked device token");
                }
                tracing::warn!(gateway = %options.endpoint.display, "the gateway no longer accepts this bridge's device token (device removed or token revoked); it was forgotten");
                return Err(e);
            }
            other => other?,
        };
        if let (Some(identity), Some(token)) = (identity, &hello.device_token) {
            let stored =
                lock(identity).store_device_token(&options.endpoint.url, token, &hello.scopes);
            if let Err(e) = stored.and(super::identity::sync(identity).await) {
                tracing::warn!(error = %e, "cannot keep the device token the gateway issued");
            }
        }
        if !hello.can_work() {
            let _ = socket.close(None).await;
            return Err(WsError::MissingScopes {
                granted: hello.scopes,
            });
        }
        // The device counts when the gateway knows it as paired: it took its device token, or
        // issued one now. A signature of an unpaired device on loopback proves nothing to it.
        let paired = creds.device_token.is_some()
            || hello.device_token.is_some()
            || hello.auth_method.as_deref() == Some("device-token");
        let auth = AuthUsed::of(creds.token.is_some(), paired);
        return Ok((socket, hello, auth));
    }
}

/// The manager task: connect, serve, reconnect, until the last handle is dropped.
async fn manage(
    shared: Arc<Shared>,
    options: Options,
    identity: Option<Arc<Mutex<DeviceIdentity>>>,
) {
    let mut failures: u32 = 0;
    let mut generation: u64 = 0;
    let mut boot: Option<String> = None;
    let mut last_error: Option<String> = None;
    loop {
        if shared.stop.is_cancelled() {
            return;
        }
        let attempt = tokio::select! {
            attempt = connect_once(&options, identity.as_ref()) => attempt,
            () = shared.stop.cancelled() => return,
        };
        let error = match attempt {
            Ok((socket, hello, auth)) => {
                generation += 1;
                let gateway_restarted =
                    boot.is_some() && hello.boot_id.is_some() && boot != hello.boot_id;
                boot = hello.boot_id.clone().or(boot);
                let (out, out_rx) = mpsc::unbounded_channel();
                let session = Arc::new(Session {
                    hello,
                    auth,
                    generation,
                    gateway_restarted,
                    out,
                    queued: Arc::new(AtomicUsize::new(0)),
                    pending: Mutex::new(HashMap::new()),
                    next_id: AtomicU64::new(1),
                    closed: CancellationToken::new(),
                });
                tracing::info!(
                    gateway = %options.endpoint.display,
                    generation,
                    server = session.hello.server_version.as_deref().unwrap_or("?"),
                    scopes = %session.hello.scopes.join(","),
                    auth = session.auth.as_str(),
                    gateway_restarted,
                    "WebSocket connected"
                );
                last_error = None;
                shared.ever_ready.store(true, Ordering::Relaxed);
                shared.phase.send_replace(Phase::Ready(session.clone()));
                let connected_at = Instant::now();
                let ended = serve(socket, &session, &shared, out_rx, &options).await;
                session.closed.cancel();
                lock(&session.pending).clear();
                if shared.stop.is_cancelled() {
                    return;
                }
                tracing::warn!(gateway = %options.endpoint.display, reason = %ended, "WebSocket connection lost; reconnecting");
                failures = failures_after_loss(failures, connected_at.elapsed(), &options);
                ended
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let text = e.to_string();
                let retry_in_s = retry_delay(&options, &e, failures).as_secs_f64();
                if last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(gateway = %options.endpoint.display, error = %text, attempt = failures, retry_in_s, "WebSocket connect failed");
                    last_error = Some(text);
                } else {
                    tracing::debug!(gateway = %options.endpoint.display, error = %text, attempt = failures, retry_in_s, "WebSocket connect failed again");
                }
                e
            }
        };
        let delay = jittered(retry_delay(&options, &error, failures), jitter_seed());
        shared.phase.send_replace(Phase::Down(error));
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = shared.wake.notified() => {}
            () = shared.stop.cancelled() => return,
        }
    }
}

/// How long the manager waits before the next attempt: [`Options::person_retry`] for a failure
/// only a person can fix (a refused token, a pairing to approve: never a tight loop), else the
/// exponential backoff.
fn retry_delay(options: &Options, error: &WsError, failures: u32) -> Duration {
    if error.needs_a_person() {
        options.person_retry
    } else {
        options
            .first_backoff
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(options.max_backoff)
    }
}

/// The failure count after a connection that was up for `lasted` was lost: the backoff starts
/// over only after a connection that held at least [`Options::max_backoff`]; one that drops right
/// after its handshake (a gateway that accepts and closes) counts as one more failure, so such a
/// gateway is backed off to `max_backoff` instead of being reconnected to at the first step
/// forever (a TLS handshake and a 17 KB hello each time).
fn failures_after_loss(failures: u32, lasted: Duration, options: &Options) -> u32 {
    if lasted >= options.max_backoff {
        1
    } else {
        failures.saturating_add(1)
    }
}

/// `delay` spread by up to ±20 %, so that bridges restarted together (or many instances of one
/// bridge after a gateway restart) do not reconnect in step. `seed` is any varying number.
fn jittered(delay: Duration, seed: u32) -> Duration {
    // 0.8 + 0.4 * (seed mod 1001) / 1000: from 80 % to 120 % of the delay.
    let permille = 800 + u64::from(seed % 1001) * 400 / 1000;
    Duration::from_nanos((delay.as_nanos() as u64).saturating_mul(permille) / 1000)
}

/// A cheap varying number for [`jittered`]: the sub-second part of the clock.
fn jitter_seed() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_micros())
        .unwrap_or(0)
}

/// Why the gateway closed a connection, in words.
fn close_reason(frame: Option<CloseFrame>) -> WsError {
    match frame {
        None => WsError::Disconnected("the gateway closed the connection".into()),
        Some(frame) => {
            let code = u16::from(frame.code);
            let reason = crate::gateway::error::gateway_text(frame.reason.as_str());
            WsError::Disconnected(match code {
                4001 => format!("the gateway's token was changed ({code} {reason})"),
                1008 if reason.contains("slow consumer") => {
                    format!("the gateway dropped this bridge as a slow reader ({code} {reason})")
                }
                _ => format!("the gateway closed the connection ({code} {reason})"),
            })
        }
    }
}

/// Serves one connection until it ends; returns why it ended.
///
/// Reading and writing go on side by side: the writer (frames from [`Session::start`] and the
/// pings) is one future, the reader another, so a gateway that stops reading (its TCP window
/// full) cannot stop the bridge from reading, answering pings or noticing the stall. A writer
/// that has had a frame in hand without getting one byte out for [`Options::dead_after`] ends
/// the connection, as does a gateway that sent nothing for that long.
async fn serve(
    socket: Socket,
    session: &Arc<Session>,
    shared: &Arc<Shared>,
    mut out: mpsc::UnboundedReceiver<Message>,
    options: &Options,
) -> WsError {
    let meter = socket.get_ref().meter();
    let (mut sink, mut stream) = socket.split();
    let writing = AtomicBool::new(false);
    let queued = session.queued.clone();
    let writer = async {
        while let Some(message) = out.recv().await {
            let size = match &message {
                Message::Text(text) => text.len(),
                _ => 0,
            };
            let closing = matches!(message, Message::Close(_));
            writing.store(true, Ordering::Relaxed);
            let sent = sink.send(message).await;
            writing.store(false, Ordering::Relaxed);
            queued.fetch_sub(size, Ordering::AcqRel);
            sent?;
            if closing {
                break;
            }
        }
        Ok::<(), tokio_tungstenite::tungstenite::Error>(())
    };
    tokio::pin!(writer);
    let mut last_heard = Instant::now();
    let mut last_written = (meter.written(), Instant::now());
    // Since when a ping that went out at once (nothing queued before it) waits for its pong: a
    // gateway that stops reading answers none, even while it keeps sending.
    let mut ping_unanswered: Option<Instant> = None;
    let mut ping =
        tokio::time::interval_at(Instant::now() + options.ping_every, options.ping_every);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shared.stop.cancelled() => {
                // A close frame, and a moment for the writer to get it out.
                let _ = session.out.send(Message::Close(None));
                let _ = tokio::time::timeout(CLOSE_WAIT, writer.as_mut()).await;
                return WsError::Disconnected("the bridge closed the connection".into());
            }
            message = stream.next() => {
                last_heard = Instant::now();
                match message {
                    None => return WsError::Disconnected("the gateway closed the connection".into()),
                    Some(Err(e)) => return WsError::Disconnected(e.to_string()),
                    Some(Ok(Message::Close(frame))) => return close_reason(frame),
                    Some(Ok(Message::Text(text))) => dispatch(text.as_str(), session, shared),
                    Some(Ok(Message::Pong(_))) => ping_unanswered = None,
                    // Pings are answered by the library as it reads; binary frames only prove
                    // the connection alive.
                    Some(Ok(_)) => {}
                }
            }
            written = &mut writer => {
                return WsError::Disconnected(match written {
                    Ok(()) => "the bridge closed the connection".to_string(),
                    Err(e) => e.to_string(),
                });
            }
            _ = ping.tick() => {
                let silent = last_heard.elapsed();
                if silent >= options.dead_after {
                    // A close frame, and a moment for the writer to get it out.
                let _ = session.out.send(Message::Close(None));
                let _ = tokio::time::timeout(CLOSE_WAIT, writer.as_mut()).await;
                    return WsError::Disconnected(format!(
                        "the gateway sent nothing for {} s, not even a pong",
                        silent.as_secs()
                    ));
                }
                let written = meter.written();
                if written != last_written.0 || !writing.load(Ordering::Relaxed) {
                    last_written = (written, Instant::now());
                } else if last_written.1.elapsed() >= options.dead_after {
                    return WsError::Disconnected(format!(
                        "the gateway read nothing this bridge sent for {} s ({} bytes waiting)",
                        last_written.1.elapsed().as_secs(),
                        session.queued.load(Ordering::Relaxed)
                    ));
                }
                if let Some(since) = ping_unanswered
                    && since.elapsed() >= options.dead_after
                {
                    let _ = session.out.send(Message::Close(None));
                    let _ = tokio::time::timeout(CLOSE_WAIT, writer.as_mut()).await;
                    return WsError::Disconnected(format!(
                        "the gateway answered no ping for {} s (it reads nothing this bridge sends)",
                        since.elapsed().as_secs()
                    ));
                }
                let idle = !writing.load(Ordering::Relaxed) && session.queued.load(Ordering::Relaxed) == 0;
                if ping_unanswered.is_none() && idle {
                    ping_unanswered = Some(Instant::now());
                }
                let _ = session.out.send(Message::Ping(Bytes::from_static(b"openclaw-mcp")));
            }
        }
    }
}

/// Hands one frame to whoever waits for it: an answer to its request, a run's event to the run's
/// watch. Everything else (ticks, health, presence, other sessions' runs, unknown events,
/// frames that are not JSON) is dropped after reading its head only ([`Head`]).
fn dispatch(text: &str, session: &Session, shared: &Shared) {
    let Some(head) = Head::parse(text) else {
        return;
    };
    let reader = match (head.kind.as_ref(), head.event.as_deref()) {
        ("res", _) => head
            .id
            .as_deref()
            .and_then(|id| lock(&session.pending).get(id).cloned()),
        ("event", Some("chat" | "agent")) => head
            .run_id
            .as_deref()
            .and_then(|run| lock(&shared.runs).get(run).cloned()),
        ("event", Some("shutdown")) => {
            let mut cut = text.len().min(300);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            tracing::info!(
                frame = %crate::gateway::error::gateway_text_within(&text[..cut], 300),
                bytes = text.len(),
                "the gateway announced a shutdown"
            );
            None
        }
        _ => None,
    };
    let Some(tx) = reader else {
        return;
    };
    // A reader was found by id, which a hostile gateway can aim at: what the full parse would
    // cost is bounded first.
    let cost = frames::parse_cost(text);
    if cost > frames::MAX_PARSE_COST {
        tracing::warn!(
            bytes = text.len(),
            cost_mib = cost / (1024 * 1024),
            "a frame of the gateway too costly to read was dropped"
        );
        if head.kind == "res"
            && let Some(id) = head.id.as_deref()
        {
            let _ = tx.send(Incoming::refused(id, text.len(), cost));
        }
        return;
    }
    if let Some(frame) = Incoming::parse(text) {
        let _ = tx.send(frame);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        let mut o = Options::new(
            super::super::conn::Endpoint::from_base_url("http://127.0.0.1:18789").unwrap(),
            None,
        );
        o.first_backoff = Duration::from_secs(1);
        o.max_backoff = Duration::from_secs(30);
        o
    }

    #[test]
    fn a_gateway_that_drops_every_connection_at_once_is_backed_off_to_the_maximum() {
        let o = options();
        let lost = WsError::Disconnected("closed".into());
        let mut failures = 0;
        let mut delays = Vec::new();
        for _ in 0..8 {
            failures = failures_after_loss(failures, Duration::from_millis(5), &o);
            delays.push(retry_delay(&o, &lost, failures).as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
        // A connection that held for the longest backoff starts the count over.
        assert_eq!(failures_after_loss(7, Duration::from_secs(30), &o), 1);
        assert_eq!(failures_after_loss(7, Duration::from_secs(29), &o), 8);
    }

    #[test]
    fn reconnects_are_spread_by_up_to_a_fifth_either_way() {
        let d = Duration::from_secs(10);
        assert_eq!(jittered(d, 0), Duration::from_secs(8));
        assert_eq!(jittered(d, 1000), Duration::from_secs(12));
        assert_eq!(jittered(d, 500), Duration::from_secs(10));
        for seed in (0..5000).step_by(37) {
            let j = jittered(d, seed);
            assert!(
                j >= Duration::from_secs(8) && j <= Duration::from_secs(12),
                "{j:?}"
            );
        }
    }
}
