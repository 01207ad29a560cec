//! HTTP mode (`--transport http`, and its deprecated alias `sse`), for Claude.ai: one actix-web
//! server on `HOST`:`PORT` with
//!
//! - `GET /health` — JSON: status, version, transport, auth on/off, sessions, and each
//!   instance's health as its `GatewayActor` last saw it (no URLs, no tokens);
//! - `/mcp` — rmcp's Streamable HTTP service mounted through `rmcp-actix-web`: the `initialize`
//!   era with sessions (`Mcp-Session-Id`, GET stream, `DELETE`) and the stateless 2026-07-28
//!   era (`server/discover`, per-request `_meta`); rmcp makes every protocol decision;
//! - `GET /sse` + `POST /messages?sessionId=` — the legacy HTTP+SSE transport
//!   ([`super::sse_legacy`]);
//! - JSON errors everywhere ([`HttpError`], and [`super::guard`] for everything else).
//!
//! Sessions of both transports share one bound (`MCP_MAX_SESSIONS`, [`SessionLimit`]) and end
//! after `MCP_SESSION_IDLE_SECS` without a message. On SIGTERM/SIGINT the server stops
//! accepting, refuses new requests, lets the calls in flight finish for up to
//! `MCP_SHUTDOWN_GRACE_SECS` ([`Lifecycle`]), closes every stream, stops the services and
//! returns exit code 0.
//!
//! # Who is calling
//!
//! The route guard ([`super::route_guard`]) names each MCP request's principal (the OAuth grant
//! or the static token's name; nobody without auth) and runs the request inside a
//! [`RequestScope`](super::sessions::RequestScope); the session manager records which
//! principal opened each session and the service factory gives each handler its task owner
//! from it ([`super::sessions`]).

use std::{
    future::Future,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{
    App, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError,
    http::{StatusCode, header},
    middleware::{Condition, from_fn},
    web,
};
use futures_util::future::join_all;
use rmcp::transport::streamable_http_server::session::local::{LocalSessionManager, SessionConfig};
use rmcp_actix_web::transport::StreamableHttpService;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{
    guard,
    route_guard::{self, McpRoute},
    sessions::{
        self, BoundedSessions, SessionIds, SessionKind, SessionLimit, SessionTable,
        owner_for_new_handler,
    },
    sse_legacy,
    streams::RequestStreams,
};
use crate::{
    auth::{self, Auth, middleware::RateLimiter},
    config::{CorsOrigins, Settings, TransportKind, TrustProxy},
    gateway::health::HealthStatus,
    mcp::server::{OpenClawServer, Services},
    sqlite::Location,
    tasks::Owner,
};

/// SSE keep-alive comment interval on every stream (rmcp's default, and 1.7.0's SDK's).
pub(crate) const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a finished request's stream is kept for a late resume (`Last-Event-ID`): by rmcp
/// (a cancelled request's) and by [`RequestStreams`] (an answer no client took yet).
pub(crate) const COMPLETED_STREAM_TTL: Duration = Duration::from_secs(10);

/// After the drain, how long actix-web waits for connections to close before dropping them.
const STOP_TIMEOUT_SECS: u64 = 2;

/// Text in the error a full session table gives (see [`HttpError::TooManySessions`] and
/// [`SessionError::Full`]); the JSON error layer maps it to 503 when rmcp reports it as an
/// internal error.
pub(crate) const SESSIONS_FULL_MARKER: &str = "too many MCP sessions";

// ------------------------------------------------------------------------------------------------
// Who is calling

/// The authenticated caller of a request. An authentication middleware inserts it into the
/// actix request extensions before the guard runs; every task the request creates or reads then
/// belongs to this owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub Owner);

// ------------------------------------------------------------------------------------------------
// Errors

/// Every error the HTTP layer answers itself, each with its status; the body is always a
/// JSON-RPC error object with `"id": null`.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// SIGTERM/SIGINT arrived; the server finishes what it has and takes nothing new.
    #[error("Service Unavailable: the server is shutting down")]
    ShuttingDown,
    /// `MCP_MAX_SESSIONS` sessions are open.
    #[error("Service Unavailable: too many MCP sessions (MCP_MAX_SESSIONS={max}); try again later")]
    TooManySessions {
        /// The configured maximum.
        max: usize,
    },
    /// Host checking is on and the request has no `Host`.
    #[error("Forbidden: missing Host header")]
    MissingHost,
    /// DNS-rebinding defence: `Host` is not a name this server answers to.
    #[error("Forbidden: Host header {0:?} is not allowed (see ALLOWED_HOSTS)")]
    HostNotAllowed(String),
    /// A browser origin that CORS does not allow.
    #[error("Forbidden: Origin {0:?} is not allowed (see CORS_ORIGINS)")]
    OriginNotAllowed(String),
    /// `Accept` lacks what the transport answers with.
    #[error("{0}")]
    NotAcceptable(&'static str),
    /// The body is not declared as JSON.
    #[error("Unsupported Media Type: Content-Type must be application/json")]
    UnsupportedMediaType,
    /// The body is larger than `MCP_MAX_BODY_BYTES`.
    #[error("Payload Too Large: request body exceeds {limit} bytes (MCP_MAX_BODY_BYTES)")]
    PayloadTooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// The body could not be read.
    #[error("Bad Request: cannot read the request body: {0}")]
    BodyRead(String),
    /// The body did not arrive in full within `MCP_BODY_TIMEOUT_SECS`.
    #[error(
        "Request Timeout: the request body did not arrive within {secs} s (MCP_BODY_TIMEOUT_SECS)"
    )]
    BodyTimeout {
        /// The configured deadline.
        secs: u64,
    },
    /// The body is not JSON (JSON-RPC -32700).
    #[error("Parse error: {0}")]
    ParseError(String),
    /// The body is JSON but not one JSON-RPC message (JSON-RPC -32600).
    #[error("Invalid Request: {0}")]
    InvalidRequest(String),
    /// A legacy SSE `sessionId` that is missing, unknown or ended.
    #[error("Not Found: Session not found")]
    SessionNotFound,
    /// No such route.
    #[error("Not Found: no such route; the MCP endpoint is /mcp")]
    RouteNotFound,
}

impl HttpError {
    /// The JSON-RPC error code in the body.
    fn code(&self) -> i32 {
        match self {
            HttpError::ParseError(_) => -32700,
            HttpError::InvalidRequest(_) => -32600,
            _ => -32000,
        }
    }
}

impl ResponseError for HttpError {
    fn status_code(&self) -> StatusCode {
        match self {
            HttpError::ShuttingDown | HttpError::TooManySessions { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::MissingHost
            | HttpError::HostNotAllowed(_)
            | HttpError::OriginNotAllowed(_) => StatusCode::FORBIDDEN,
            HttpError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            HttpError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            HttpError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            HttpError::BodyRead(_) | HttpError::ParseError(_) | HttpError::InvalidRequest(_) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::SessionNotFound | HttpError::RouteNotFound => StatusCode::NOT_FOUND,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, "application/json"));
        match self {
            HttpError::ShuttingDown | HttpError::BodyTimeout { .. } => {
                response.insert_header((header::CONNECTION, "close"));
            }
            HttpError::TooManySessions { .. } => {
                response.insert_header((header::RETRY_AFTER, "30"));
            }
            _ => {}
        }
        response.body(error_json(self.code(), &self.to_string()))
    }
}

/// A JSON-RPC error object without an id, the body of every HTTP error.
pub(crate) fn error_json(code: i32, message: &str) -> String {
    json!({"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": null}).to_string()
}

// ------------------------------------------------------------------------------------------------
// Calls in flight and shutdown

/// Counts the calls in flight and tells when there are none, for the graceful shutdown.
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    /// Set on SIGTERM/SIGINT: new requests get 503.
    draining: AtomicBool,
    /// Calls whose answer has not been sent yet.
    in_flight: AtomicUsize,
    /// Woken when `in_flight` drops to zero.
    idle: tokio::sync::Notify,
}

/// Keeps one call counted as in flight while it lives.
#[derive(Debug)]
pub(crate) struct InFlightGuard(Arc<Lifecycle>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Lifecycle {
    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Counts a call until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightGuard {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Refuses new requests from now on and waits until no call is in flight, at most `grace`;
    /// `true` when everything finished.
    pub async fn drain(&self, grace: Duration) -> bool {
        self.draining.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.idle.notified();
            if self.in_flight() == 0 {
                return true;
            }
            tokio::select! {
                _ = idle => {}
                _ = tokio::time::sleep_until(deadline) => return self.in_flight() == 0,
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// The server

/// What every worker's routes and middleware share.
pub(crate) struct Shared {
    /// What the tools talk to.
    pub services: Services,
    /// Browser origins accepted on the MCP routes.
    pub origin_policy: guard::OriginPolicy,
    /// `CORS_ORIGINS`.
    pub cors: CorsOrigins,
    /// `MCP_MAX_BODY_BYTES`.
    pub max_body_bytes: usize,
    /// `MCP_SESSION_IDLE_SECS`.
    pub session_idle: Duration,
    /// `MCP_MAX_SESSIONS`, for both transports.
    pub limit: Arc<SessionLimit>,
    /// Who opened each session, and each caller's share.
    pub sessions: Arc<SessionTable>,
    /// The request streams of the Streamable HTTP sessions (answers kept for a resume).
    pub streams: Arc<RequestStreams>,
    /// How session ids of both transports are made (`OPENCLAW_MCP_REPLICA_ID`).
    pub session_ids: SessionIds,
    /// Calls in flight; draining.
    pub lifecycle: Arc<Lifecycle>,
    /// The open legacy SSE sessions.
    pub legacy: sse_legacy::LegacySessions,
    /// Whether a token (OAuth or static) is required on the MCP routes.
    pub auth_enabled: bool,
    /// Static bearer tokens (`MCP_BEARER_TOKENS`).
    pub bearer_tokens: Vec<crate::config::BearerToken>,
    /// Whether `GET /metrics` is served.
    pub metrics_enabled: bool,
    /// The OAuth server; set once the address is bound (the issuer needs the port), before any
    /// request is served.
    pub auth: OnceLock<Arc<Auth>>,
    /// `MCP_RATE_LIMIT_PER_MINUTE` on the MCP routes.
    pub mcp_limiter: RateLimiter,
    /// Cancelled at shutdown: ends every session and stream.
    pub shutdown: CancellationToken,
}

type Manager = BoundedSessions<LocalSessionManager>;

/// The Streamable HTTP service on `/mcp`, shared by all workers (and so are its sessions).
fn mcp_service(
    shared: &Arc<Shared>,
    manager: Arc<Manager>,
    host_policy: &guard::HostPolicy,
) -> StreamableHttpService<OpenClawServer, Manager> {
    let services = shared.services.clone();
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || {
            Ok(OpenClawServer::new(
                services.clone(),
                owner_for_new_handler(),
            ))
        }))
        .session_manager(manager)
        // Sessions for the initialize era; the 2026-07-28 era is stateless whatever this says.
        .stateful_mode(true)
        // Stateless answers as plain JSON unless the call sends progress first.
        .json_response(true)
        .sse_keep_alive(SSE_KEEP_ALIVE)
        .max_request_body_bytes(shared.max_body_bytes)
        // The edge checks Host first for every route; rmcp checks the same list again.
        .allowed_hosts(host_policy.rmcp_list())
        .cancellation_token(shared.shutdown.clone())
        .on_request_fn(|req, extensions| {
            if let Some(principal) = req.extensions().get::<Principal>() {
                extensions.insert(principal.clone());
            }
        })
        .build()
}

/// rmcp's in-memory session manager with our settings, bounded and owned.
fn session_manager(shared: &Shared) -> Manager {
    let mut local = LocalSessionManager::default();
    let mut config = SessionConfig::default();
    config.keep_alive = Some(shared.session_idle);
    // rmcp keeps a finished request's stream (a few KiB) for a late `Last-Event-ID` resume, 60 s
    // by default: at one call every two seconds that is ~120 KiB per busy session, 1000 sessions
    // ~120 MiB (scripts/soak.sh). A client resumes within the 3 s SSE retry hint, so 10 s keeps
    // resumption working at a sixth of the memory. rmcp 3.11 keeps only cancelled requests'
    // streams that way (it drops an answered one at once); the answers are kept by
    // `RequestStreams`, for as long, and only when no client took them.
    config.completed_cache_ttl = COMPLETED_STREAM_TTL;
    local.session_config = config;
    BoundedSessions::new(
        local,
        shared.limit.clone(),
        shared.sessions.clone(),
        shared.streams.clone(),
        shared.session_ids.clone(),
    )
}

/// A gateway URL never leaves through `/health`: where a health message quotes it, it is
/// replaced.
fn without_url(text: &str, url: &str) -> String {
    let bare = url.trim_end_matches('/');
    if bare.is_empty() {
        return text.to_string();
    }
    text.replace(bare, "the gateway")
}

/// `GET /health`. With auth on, a caller without a valid token sees the overall status only;
/// with one (or without auth), each instance's health too. Never a URL or a token.
async fn health(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    let status = json!({
        // While shutting down, the edge answers 503 before this handler runs.
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
    });
    if shared.auth_enabled && !route_guard::is_authenticated(&shared, req.headers()) {
        return HttpResponse::Ok().json(status);
    }
    let registry = &shared.services.registry;
    let instances = join_all(registry.list().iter().map(|instance| async move {
        let mut health = instance.health().await;
        health.message = without_url(&health.message, &instance.url);
        health.last_error = health.last_error.map(|e| without_url(&e, &instance.url));
        json!({
            "name": instance.name,
            "isDefault": instance.is_default,
            "health": health,
        })
    }))
    .await;
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "transport": "streamable-http",
        "legacySseSupported": true,
        "auth": shared.auth_enabled,
        "sessions": {
            "streamableHttp": shared.limit.open(SessionKind::Streamable),
            "legacySse": shared.limit.open(SessionKind::Legacy),
            "max": shared.limit.max(),
            "perCaller": shared.sessions.per_principal(),
            "heldAnswers": shared.streams.held_answers(),
        },
        "inFlight": shared.lifecycle.in_flight(),
        "instances": instances,
    }))
}

/// `GET /metrics` (with `METRICS_ENABLED`): Prometheus text.
async fn metrics(shared: web::Data<Shared>) -> HttpResponse {
    let registry = &shared.services.registry;
    let instances = join_all(registry.list().iter().map(|instance| async move {
        let health = instance.health().await;
        let up = match health.status {
            HealthStatus::Ok => 1,
            HealthStatus::Error => 0,
            HealthStatus::Unknown => -1,
        };
        (instance.name.clone(), up, health.restarts)
    }))
    .await;
    let (queued, running) = shared.services.tasks.load().await;
    let gauges = crate::metrics::Gauges {
        instances,
        tasks_queued: queued as u64,
        tasks_running: running as u64,
        sessions: vec![
            (
                "streamable_http",
                shared.limit.open(SessionKind::Streamable) as u64,
            ),
            ("legacy_sse", shared.limit.open(SessionKind::Legacy) as u64),
        ],
        in_flight: shared.lifecycle.in_flight() as u64,
    };
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&gauges))
}

/// Everything that is not a route.
async fn not_found() -> Result<HttpResponse, HttpError> {
    Err(HttpError::RouteNotFound)
}

/// Logs the start-up warnings 1.7.0 gives, and ours.
fn warn_at_start(settings: &Settings, host_policy: &guard::HostPolicy) {
    if settings.transport == TransportKind::Sse {
        tracing::warn!("WARNING: --transport sse is deprecated; use --transport http instead");
    }
    if !settings.auth.required() {
        tracing::warn!("WARNING: Auth is DISABLED - server is open to anyone!");
    }
    if settings.http.cors == CorsOrigins::Any {
        tracing::error!(
            "WARNING: CORS_ORIGINS=* allows any web page to call this server from a browser. List explicit origins instead."
        );
    }
    if !host_policy.is_enforced() {
        tracing::warn!(
            host = %settings.http.host,
            "binding to a non-loopback address without DNS rebinding protection; set ALLOWED_HOSTS to the host names clients use"
        );
    }
    if settings.http.trust_proxy != TrustProxy::Unset {
        tracing::info!(trust_proxy = ?settings.http.trust_proxy, "Trust proxy");
    }
}

/// How serving ended, for the exit code.
#[derive(Debug)]
pub enum ServeError {
    /// The address cannot be bound.
    Listen(String),
    /// The OAuth server cannot start (a configuration error).
    Config(String),
    /// The server stopped by itself.
    Stopped(String),
}

/// Serves HTTP until `stop` resolves (SIGTERM/SIGINT), then shuts down gracefully: new requests
/// get 503 at once (on new connections too), the calls in flight get the grace period, the
/// streams are closed, and the task supervisor is drained.
pub async fn serve(
    settings: &Settings,
    services: Services,
    stop: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let http = &settings.http;
    let host_policy = guard::HostPolicy::from_settings(http);
    warn_at_start(settings, &host_policy);
    let (sessions, evicted) = SessionTable::new(http.max_sessions);
    let lifecycle = Arc::new(Lifecycle::default());
    let shared = Arc::new(Shared {
        services: services.clone(),
        origin_policy: guard::OriginPolicy::new(&http.cors),
        cors: http.cors.clone(),
        max_body_bytes: http.max_body_bytes,
        session_idle: http.session_idle,
        limit: Arc::new(SessionLimit::new(http.max_sessions)),
        sessions: Arc::new(sessions),
        streams: Arc::new(RequestStreams::new(COMPLETED_STREAM_TTL)),
        session_ids: SessionIds::new(http.replica_id.as_deref()),
        lifecycle: lifecycle.clone(),
        legacy: sse_legacy::LegacySessions::default(),
        auth_enabled: settings.auth.required(),
        bearer_tokens: settings.auth.bearer_tokens.clone(),
        metrics_enabled: http.metrics,
        auth: OnceLock::new(),
        mcp_limiter: RateLimiter::new(settings.auth.rate_limit_per_minute),
        shutdown: CancellationToken::new(),
    });
    let edge = Arc::new(guard::Edge {
        host_policy: host_policy.clone(),
        trust_proxy: http.trust_proxy.clone(),
        body_timeout: http.body_timeout,
        lifecycle,
        warned_forwarded: AtomicBool::new(false),
    });
    let manager = Arc::new(session_manager(&shared));
    actix_rt::spawn(sessions::close_evicted(manager.clone(), evicted));
    let mcp = mcp_service(&shared, manager, &host_policy);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let app_shared = shared.clone();
    let server = HttpServer::new(move || {
        let data = web::Data::from(app_shared.clone());
        let edge = edge.clone();
        let oauth = app_shared.auth.get().cloned();
        let metrics_enabled = app_shared.metrics_enabled;
        // The guard of each MCP route, and CORS inside it (see route_guard).
        let guarded = |route: McpRoute| {
            let shared = app_shared.clone();
            from_fn(move |req, next| route_guard::mcp_route(shared.clone(), route, req, next))
        };
        let cors = || {
            let cors = guard::cors(&app_shared.cors);
            Condition::new(cors.is_some(), cors.unwrap_or_default())
        };
        App::new()
            .app_data(data)
            .wrap(from_fn(move |req, next| {
                guard::edge(edge.clone(), req, next)
            }))
            .wrap(from_fn(guard::json_errors))
            .route("/health", web::get().to(health))
            .configure(|cfg| {
                if metrics_enabled {
                    cfg.route("/metrics", web::get().to(metrics));
                }
            })
            .service(
                web::scope("/mcp")
                    .wrap(cors())
                    .wrap(guarded(McpRoute::Streamable))
                    .service(mcp.clone().scope()),
            )
            .service(
                web::resource("/sse")
                    .wrap(cors())
                    .wrap(guarded(McpRoute::LegacyStream))
                    .route(web::get().to(sse_legacy::open)),
            )
            .service(
                web::resource("/messages")
                    .wrap(cors())
                    .wrap(guarded(McpRoute::LegacyMessages))
                    .route(web::post().to(sse_legacy::post)),
            )
            .configure(move |cfg| {
                if let Some(auth) = oauth.clone() {
                    auth::server::configure(auth)(cfg);
                }
            })
            .default_service(web::to(not_found))
    })
    .workers(workers)
    // SSE answers are several small writes; without this, Nagle and the client's delayed ACK
    // add ~40 ms to every streamed answer.
    .tcp_nodelay(true)
    // A client that closes its connection is noticed at once (actix reads the socket while a
    // response streams, and ends the connection at its EOF), not at the next write that fails:
    // a legacy SSE session ends and frees its slot as soon as its stream closes, and a
    // 2026-07-28 request whose stream closes is cancelled at once. No MCP client half-closes
    // (shuts down its sending side and still waits for the answer); one that did would lose it.
    .h1_allow_half_closed(false)
    .disable_signals()
    .shutdown_timeout(STOP_TIMEOUT_SECS);
    let bind_host = http.host.trim_start_matches('[').trim_end_matches(']');
    let server = match server.bind((bind_host, http.port)) {
        Ok(server) => server,
        Err(e) => {
            tracing::error!(host = %http.host, port = http.port, error = %e, "cannot listen");
            return Err(ServeError::Listen(e.to_string()));
        }
    };
    if settings.auth.enabled {
        let port = server.addrs().first().map_or(http.port, |a| a.port());
        let issuer = settings
            .auth
            .issuer_url
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_else(|| auth::default_issuer(http, port));
        let location = match &settings.tasks.data_dir {
            Some(dir) => Location::Dir(dir.clone()),
            None => Location::Memory,
        };
        let place = match &settings.tasks.database_url {
            Some(url) => auth::Place::Shared(url),
            None => auth::Place::Local(&location),
        };
        match Auth::start(&settings.auth, &issuer, place).await {
            Ok(auth) => {
                let _ = shared.auth.set(Arc::new(auth));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot start OAuth");
                return Err(ServeError::Config(e));
            }
        }
    }
    for address in server.addrs() {
        tracing::info!(%address, workers, "listening");
    }
    if let Some(replica) = &http.replica_id {
        tracing::info!(%replica, "session ids start with the replica name and a dot");
    }
    let server = server.run();
    let handle = server.handle();
    let mut running = actix_rt::spawn(server);

    tokio::select! {
        _ = stop => {}
        ended = &mut running => {
            tracing::error!(outcome = ?ended, "the HTTP server stopped by itself");
            shared.shutdown.cancel();
            services.tasks.drain(http.shutdown_grace).await;
            return Err(ServeError::Stopped(format!("{ended:?}")));
        }
    }

    let started = Instant::now();
    tracing::info!(
        in_flight = shared.lifecycle.in_flight(),
        grace_secs = http.shutdown_grace.as_secs(),
        "Shutting down HTTP server..."
    );
    // The server keeps accepting while it drains, so that a new request, on a new connection
    // too, gets an immediate 503 instead of hanging in the listen queue.
    if !shared.lifecycle.drain(http.shutdown_grace).await {
        tracing::warn!(
            in_flight = shared.lifecycle.in_flight(),
            "grace period over; abandoning the calls still in flight"
        );
    }
    // Ends every session, GET stream and legacy SSE stream, so the connections can close; a
    // call still in flight ends with a JSON-RPC error on its stream.
    shared.shutdown.cancel();
    handle.stop(true).await;
    let _ = running.await;
    let remaining = http.shutdown_grace.saturating_sub(started.elapsed());
    services.tasks.drain(remaining).await;
    tracing::info!("HTTP server stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn draining_waits_for_calls_in_flight() {
        let life = Arc::new(Lifecycle::default());
        let call = life.enter();
        let waiter = {
            let life = life.clone();
            tokio::spawn(async move { life.drain(Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        assert!(life.is_draining());
        drop(call);
        assert!(waiter.await.unwrap());
        let _stuck = life.enter();
        assert!(!life.drain(Duration::from_millis(20)).await);
    }

    #[test]
    fn errors_are_json_rpc_objects_with_their_status() {
        let e = HttpError::ParseError("expected value".into());
        assert_eq!(e.status_code(), StatusCode::BAD_REQUEST);
        let body: serde_json::Value =
            serde_json::from_str(&error_json(e.code(), &e.to_string())).unwrap();
        assert_eq!(body["error"]["code"], -32700);
        assert_eq!(body["id"], serde_json::Value::Null);
        assert_eq!(
            HttpError::TooManySessions { max: 3 }.status_code(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert!(
            HttpError::TooManySessions { max: 3 }
                .to_string()
                .contains(SESSIONS_FULL_MARKER)
        );
    }
}
