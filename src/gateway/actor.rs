//! `GatewayActor`: one per configured instance, started under `actix::Supervisor`. It owns the
//! instance's HTTP client (`outbound::HttpClient`), its settings and its health state, and every request to that gateway
//! goes through it. It probes health in the background (faster while the gateway is down) and
//! answers [`Chat`], [`Probe`] and [`Health`].
//!
//! A panic in a handler is caught (`catch_unwind`), answered as an error to its caller, and makes
//! the actor stop itself; the supervisor restarts it, [`Supervised::restarting`] counts the restart
//! and resets the state, and the next message is served by a fresh actor on the same address. A
//! dead gateway never blocks the others: each instance has its own actor, and each chat request runs
//! as a task of its own beside the mailbox, so a slow answer never holds up the next message and
//! thousands in flight cost the actor nothing while they wait.

use std::{
    any::Any,
    panic::AssertUnwindSafe,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use actix::{
    Actor, ActorContext, ActorFutureExt, AsyncContext, Context, Handler, Message, MessageResult,
    ResponseActFuture, ResponseFuture, Supervised, WrapFuture,
};
use futures_util::FutureExt;
use tokio_util::sync::CancellationToken;

use super::{
    backend::{self, Route, WsSide},
    client::{self, ChatReply, ChatRequest, ProgressSender},
    error::GatewayError,
    health::{HealthSnapshot, HealthState, HealthStatus, ProbeResult, next_probe_in},
    ws::ops,
};
use crate::{config::InstanceSettings, outbound::HttpClient};

/// A streamed answer over the WebSocket may run this long in all while events keep coming (as
/// over HTTP).
const STREAM_TOTAL_CAP: Duration = Duration::from_secs(30 * 60);
/// How long a read over the WebSocket waits for a connection.
const WS_READ_WAIT: Duration = Duration::from_secs(15);

/// Messages may queue up to this depth before senders wait: tool calls are handed to futures at
/// once, so the queue only fills under a burst far beyond any real client.
const MAILBOX_CAPACITY: usize = 4096;

/// What a panic says, for the log.
fn panic_text(panic: &(dyn Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string())
}

/// Sends one chat turn to this instance's gateway.
#[derive(Message)]
#[rtype(result = "Result<ChatReply, GatewayError>")]
pub struct Chat {
    /// What to send.
    pub request: ChatRequest,
    /// Receives streamed progress, if the caller wants it.
    pub progress: Option<ProgressSender>,
    /// Cancelling it aborts the request (the connection is closed, the gateway stops the run).
    pub cancel: CancellationToken,
}

/// Probes the gateway now and returns the updated health (an unreachable gateway is an error).
#[derive(Message)]
#[rtype(result = "Result<HealthSnapshot, GatewayError>")]
pub struct Probe;

/// Lists the gateway's agent targets (`GET /v1/models`).
#[derive(Message)]
#[rtype(result = "Result<Vec<String>, GatewayError>")]
pub struct ListModels;

/// Runs one gateway tool through `POST /tools/invoke` (`sessions_list`, `sessions_history`).
#[derive(Message)]
#[rtype(result = "Result<serde_json::Value, GatewayError>")]
pub struct InvokeTool {
    /// The gateway tool.
    pub tool: &'static str,
    /// Its arguments.
    pub args: serde_json::Value,
}

/// Returns the health known from the last probe, without touching the network.
#[derive(Message)]
#[rtype(result = "HealthSnapshot")]
pub struct Health;

/// Where an injected fault fires (tests only, feature `fault-injection`).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// In the synchronous part of the next `Chat` handler.
    Handler,
    /// Inside the future of the next `Chat` request.
    Request,
}

/// Makes the next `Chat` panic at the given point (tests only, feature `fault-injection`).
#[cfg(feature = "fault-injection")]
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectPanic(pub FaultPoint);

/// The actor of one gateway instance.
pub struct GatewayActor {
    /// The instance's settings (shared with in-flight request futures).
    settings: Arc<InstanceSettings>,
    /// Probe interval while healthy.
    health_interval: Duration,
    /// Pooled HTTP client; rebuilt on every (re)start.
    client: Option<HttpClient>,
    /// Health from the last probe or failed request.
    health: HealthState,
    /// Times the supervisor restarted this actor; survives restarts.
    restarts: u32,
    /// Whether a background probe is in flight (never two at once).
    probing: bool,
    /// The WebSocket connection manager (absent with `api = http`); rebuilt on every (re)start.
    ws: WsSide,
    /// Pending fault injection.
    #[cfg(feature = "fault-injection")]
    fault: Option<FaultPoint>,
}

impl GatewayActor {
    /// A new actor for `settings`; start it with `actix::Supervisor::start`.
    pub fn new(settings: InstanceSettings, health_interval: Duration) -> Self {
        GatewayActor {
            settings: Arc::new(settings),
            health_interval,
            client: None,
            health: HealthState::default(),
            restarts: 0,
            probing: false,
            ws: WsSide::default(),
            #[cfg(feature = "fault-injection")]
            fault: None,
        }
    }

    fn client(&mut self) -> HttpClient {
        self.client
            .get_or_insert_with(|| client::build_client(&self.settings))
            .clone()
    }

    fn snapshot(&self) -> HealthSnapshot {
        let mut snapshot = self.health.snapshot(self.restarts);
        let (api, reason) = backend::describe(self.settings.api, &self.ws);
        snapshot.api = Some(api.to_string());
        snapshot.api_reason = Some(reason);
        snapshot
    }

    /// A handler failed in a way that leaves the actor's state untrusted: stop, and let the
    /// supervisor restart it.
    fn crashed(&mut self, ctx: &mut Context<Self>, panic: &(dyn Any + Send)) {
        self.crashed_with(ctx, &panic_text(panic));
    }

    fn crashed_with(&mut self, ctx: &mut Context<Self>, reason: &str) {
        tracing::error!(instance = %self.settings.name, reason = %reason, "gateway handler panicked; restarting the instance actor");
        ctx.stop();
    }

    fn schedule_probe(&mut self, ctx: &mut Context<Self>, delay: Duration) {
        ctx.run_later(delay, |act, ctx| act.background_probe(ctx));
    }

    fn background_probe(&mut self, ctx: &mut Context<Self>) {
        if self.probing {
            return;
        }
        self.probing = true;
        let client = self.client();
        let settings = self.settings.clone();
        let ws = self.ws.clone();
        let work = async move {
            let started = Instant::now();
            probe_any(&client, &settings, &ws)
                .await
                .unwrap_or_else(|e| client::unreachable_probe(&e, started.elapsed()))
        };
        ctx.spawn(
            AssertUnwindSafe(work)
                .catch_unwind()
                .into_actor(self)
                .map(|outcome, act, ctx| {
                    act.probing = false;
                    match outcome {
                        Ok(probe) => {
                            let was = act.health.status;
                            act.health.record(&probe, SystemTime::now());
                            if was != act.health.status {
                                tracing::info!(instance = %act.settings.name, status = act.health.status.as_str(), detail = %act.health.message, "gateway health changed");
                            }
                            let next = next_probe_in(&act.health, act.health_interval);
                            act.schedule_probe(ctx, next);
                        }
                        Err(panic) => act.crashed(ctx, panic.as_ref()),
                    }
                }),
        );
    }
}

impl Actor for GatewayActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        self.client = Some(client::build_client(&self.settings));
        self.ws = WsSide::start(&self.settings);
        tracing::debug!(instance = %self.settings.name, restarts = self.restarts, api = self.settings.api.as_str(), "gateway actor started");
        self.schedule_probe(ctx, Duration::ZERO);
    }
}

impl Supervised for GatewayActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.restarts = self.restarts.saturating_add(1);
        self.health = HealthState::default();
        self.client = None;
        self.ws = WsSide::default();
        self.probing = false;
        tracing::warn!(instance = %self.settings.name, restarts = self.restarts, "gateway actor restarting");
    }
}

impl Handler<Chat> for GatewayActor {
    // A `ResponseFuture`, not a `ResponseActFuture`: actix runs it as a task of its own, whereas
    // every future spawned into the actor's context is polled again whenever any of them wakes
    // the actor, so N calls in flight cost O(N) polls each (O(N²) in all): 10 000 pipelined stdio
    // calls ran at 1 500 calls/s instead of 6 000+. What needs the actor once the answer is in
    // (health, a crash) goes back to it as a message, marked with its generation so that a late
    // one never touches an actor restarted since.
    type Result = ResponseFuture<Result<ChatReply, GatewayError>>;

    fn handle(&mut self, msg: Chat, ctx: &mut Context<Self>) -> Self::Result {
        let name = self.settings.name.clone();
        let prepared = std::panic::catch_unwind(AssertUnwindSafe(|| {
            #[cfg(feature = "fault-injection")]
            if self.fault == Some(FaultPoint::Handler) {
                self.fault = None;
                panic!("injected fault in the Chat handler");
            }
            #[cfg(feature = "fault-injection")]
            let inject = self.fault.take() == Some(FaultPoint::Request);
            #[cfg(not(feature = "fault-injection"))]
            let inject = false;
            (
                self.client(),
                self.settings.clone(),
                inject,
                self.ws.clone(),
            )
        }));
        let (client, settings, inject, ws) = match prepared {
            Ok(parts) => parts,
            Err(panic) => {
                // The answer runs as its own task, so stopping now cannot drop it; the stop
                // comes as a message all the same, after this handler returns.
                ctx.address().do_send(Crashed {
                    generation: self.restarts,
                    reason: panic_text(panic.as_ref()),
                });
                return Box::pin(async move { Err(GatewayError::ActorRestarted(name)) });
            }
        };
        let Chat {
            request,
            progress,
            cancel,
        } = msg;
        let started = Instant::now();
        let work = async move {
            if inject {
                panic!("injected fault in a Chat request");
            }
            let route = if request.run.adopt.is_some() {
                // A run to adopt is found again over the WebSocket only.
                match &ws.client {
                    Some(c) => Route::Ws(c.clone()),
                    None => Route::Http,
                }
            } else {
                backend::route(settings.api, &ws).await
            };
            match route {
                Route::Ws(ws) => ws_chat(&ws, &settings, request, progress, cancel).await,
                Route::Http if request.run.adopt.is_some() => Err(GatewayError::RunLost(
                    "the bridge stopped while the task ran, and this instance no longer uses the WebSocket API that could find its run again".to_string(),
                )),
                Route::Http => tokio::select! {
                    result = client::chat(&client, &settings, &request, progress) => result,
                    _ = cancel.cancelled() => Err(GatewayError::Cancelled),
                },
            }
        };
        let (addr, generation) = (ctx.address(), self.restarts);
        Box::pin(async move {
            match AssertUnwindSafe(work).catch_unwind().await {
                Ok(result) => {
                    if !matches!(result, Err(GatewayError::Cancelled)) {
                        crate::metrics::gateway_request(&name, started.elapsed());
                    }
                    if let Err(e) = &result
                        && e.is_unreachable()
                    {
                        addr.do_send(Unreachable {
                            generation,
                            message: e.to_string(),
                            at: SystemTime::now(),
                        });
                    }
                    result
                }
                Err(panic) => {
                    addr.do_send(Crashed {
                        generation,
                        reason: panic_text(panic.as_ref()),
                    });
                    Err(GatewayError::ActorRestarted(name))
                }
            }
        })
    }
}

/// A request of generation `generation` found the gateway unreachable (health bookkeeping).
#[derive(Message)]
#[rtype(result = "()")]
struct Unreachable {
    generation: u32,
    message: String,
    at: SystemTime,
}

impl Handler<Unreachable> for GatewayActor {
    type Result = ();

    fn handle(&mut self, msg: Unreachable, _ctx: &mut Context<Self>) {
        if msg.generation == self.restarts {
            self.health.record_unreachable(&msg.message, msg.at);
        }
    }
}

/// A request of generation `generation` panicked: the actor stops and its supervisor restarts it.
#[derive(Message)]
#[rtype(result = "()")]
struct Crashed {
    generation: u32,
    reason: String,
}

impl Handler<Crashed> for GatewayActor {
    type Result = ();

    fn handle(&mut self, msg: Crashed, ctx: &mut Context<Self>) {
        if msg.generation == self.restarts {
            self.crashed_with(ctx, &msg.reason);
        }
    }
}

impl Handler<Probe> for GatewayActor {
    type Result = ResponseActFuture<Self, Result<HealthSnapshot, GatewayError>>;

    fn handle(&mut self, _msg: Probe, _ctx: &mut Context<Self>) -> Self::Result {
        let client = self.client();
        let settings = self.settings.clone();
        let ws = self.ws.clone();
        let work = async move {
            let started = Instant::now();
            probe_any(&client, &settings, &ws)
                .await
                .map_err(|e| (client::unreachable_probe(&e, started.elapsed()), e))
        };
        Box::pin(
            AssertUnwindSafe(work)
                .catch_unwind()
                .into_actor(self)
                .map(|outcome, act, ctx| {
                    let now = SystemTime::now();
                    match outcome {
                        Ok(Ok(probe)) => {
                            act.health.record(&probe, now);
                            Ok(act.snapshot())
                        }
                        Ok(Err((probe, err))) => {
                            act.health.record(&probe, now);
                            Err(err)
                        }
                        Err(panic) => {
                            let name = act.settings.name.clone();
                            act.crashed(ctx, panic.as_ref());
                            Err(GatewayError::ActorRestarted(name))
                        }
                    }
                }),
        )
    }
}

impl Handler<ListModels> for GatewayActor {
    type Result = ResponseFuture<Result<Vec<String>, GatewayError>>;

    fn handle(&mut self, _msg: ListModels, _ctx: &mut Context<Self>) -> Self::Result {
        let (client, settings, ws) = (self.client(), self.settings.clone(), self.ws.clone());
        Box::pin(async move {
            match backend::route(settings.api, &ws).await {
                Route::Ws(ws) => ops::agent_models(&ws, WS_READ_WAIT).await,
                Route::Http => client::models(&client, &settings).await,
            }
        })
    }
}

impl Handler<InvokeTool> for GatewayActor {
    type Result = ResponseFuture<Result<serde_json::Value, GatewayError>>;

    fn handle(&mut self, msg: InvokeTool, _ctx: &mut Context<Self>) -> Self::Result {
        let (client, settings) = (self.client(), self.settings.clone());
        // Always over HTTP `/tools/invoke` (enabled on every gateway, whatever its chat
        // endpoints), whatever the instance's `api`: there the gateway applies its session policy
        // (`gateway.tools`, `tools.sessions.visibility`, agent-to-agent and incognito rules) to
        // what an MCP caller may list and read. Over the WebSocket the same reads are operator
        // calls that no such rule limits, so any caller could read any transcript (the owner's
        // main session included). The WebSocket keeps `chat.history` for adopting its own runs.
        Box::pin(async move { client::invoke_tool(&client, &settings, msg.tool, &msg.args).await })
    }
}

impl Handler<Health> for GatewayActor {
    type Result = MessageResult<Health>;

    fn handle(&mut self, _msg: Health, _ctx: &mut Context<Self>) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

#[cfg(feature = "fault-injection")]
impl Handler<InjectPanic> for GatewayActor {
    type Result = ();

    fn handle(&mut self, msg: InjectPanic, _ctx: &mut Context<Self>) {
        self.fault = Some(msg.0);
    }
}

/// One chat turn over the WebSocket: the `agent` method under a run id of its own (or the task's),
/// in the call's session or, without one, in a fresh session of its own (as over HTTP).
async fn ws_chat(
    ws: &super::ws::WsClient,
    settings: &InstanceSettings,
    request: ChatRequest,
    progress: Option<ProgressSender>,
    cancel: CancellationToken,
) -> Result<ChatReply, GatewayError> {
    let limit = if request.stream {
        ops::Limit::Idle {
            idle: settings.timeout,
            cap: STREAM_TOTAL_CAP.max(settings.timeout),
        }
    } else {
        ops::Limit::Total(settings.timeout)
    };
    let ChatRequest {
        message,
        session_id,
        agent_id,
        images,
        run,
        ..
    } = request;
    let (record, adopt) = match run.adopt {
        Some(record) => (record, true),
        None => {
            let run_id = run
                .run_id
                .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
            let session_key = session_id.unwrap_or_else(|| format!("mcp-run-{run_id}"));
            (
                ops::RunRecord {
                    run_id,
                    session_key,
                    agent_id: agent_id.or_else(|| settings.agent_id.clone()),
                    boot_id: None,
                    sent_at_ms: 0,
                },
                false,
            )
        }
    };
    tracing::debug!(instance = %settings.name, run = %record.run_id, adopt, "chat over the WebSocket");
    ops::run_turn(
        ws,
        ops::Turn {
            run: record,
            message,
            images,
            adopt,
            sink: run.sink,
            progress,
            cancel,
            limit,
        },
    )
    .await
}

/// The probe of the API the calls use now: `health` over the WebSocket, or the HTTP probe. On
/// HTTP, a WebSocket that only a person can fix (a pairing to approve) is said too.
async fn probe_any(
    client: &HttpClient,
    settings: &InstanceSettings,
    ws: &WsSide,
) -> Result<ProbeResult, GatewayError> {
    match backend::route(settings.api, ws).await {
        Route::Ws(c) => {
            let started = Instant::now();
            match ops::health(&c, WS_READ_WAIT).await {
                Ok((session, latency)) => Ok(ProbeResult {
                    status: HealthStatus::Ok,
                    message: format!(
                        "Gateway responding over WebSocket (protocol {}, OpenClaw {}): auth: {}, scopes {}",
                        session.hello.protocol,
                        session.hello.server_version.as_deref().unwrap_or("?"),
                        session.auth.as_str(),
                        session.hello.scopes.join(",")
                    ),
                    http_status: None,
                    ready: None,
                    latency,
                }),
                Err(e) => Ok(client::unreachable_probe(&e, started.elapsed())),
            }
        }
        Route::Http => {
            let mut probe = client::probe(client, settings).await?;
            if let Some(c) = &ws.client
                && let super::ws::Phase::Down(e) = c.phase()
                && e.needs_a_person()
            {
                probe.message = format!("{}; WebSocket: {e}", probe.message);
            }
            Ok(probe)
        }
    }
}
