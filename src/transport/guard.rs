//! The checks every HTTP request passes before it reaches an MCP route, as actix-web middleware:
//!
//! - [`json_errors`] (outermost): every error answer is JSON — ours, rmcp's plain-text ones,
//!   actix-web's and actix-cors's — with its status kept;
//! - [`guard`]: refuses new work while shutting down (503), checks `Host` against
//!   [`HostPolicy`] (DNS-rebinding defence, 403) and a present `Origin` against
//!   [`OriginPolicy`] (403), resolves the client address with `TRUST_PROXY`
//!   ([`client_ip`]), and for `POST /mcp` and `POST /messages` checks `Accept` (406) and
//!   `Content-Type` (415), reads the body up to `MCP_MAX_BODY_BYTES` (413), parses it as one
//!   JSON-RPC message (400) and refuses a new session past `MCP_MAX_SESSIONS` (503) — so a
//!   malformed request never reaches rmcp and gets a JSON-RPC error body;
//! - [`cors`] (innermost): actix-cors configured with 1.7.0's `CORS_ORIGINS` rules.
//!
//! The policies are plain values with unit tests; the middleware only applies them.

use std::{
    net::IpAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use actix_cors::Cors;
use actix_web::{
    Error, HttpMessage, HttpResponse,
    body::{BodySize, BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{
        Method, StatusCode,
        header::{self, HeaderValue},
    },
    middleware::Next,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest};

use super::http::{HttpError, InFlightGuard, Principal, RequestScope, Shared, error_json};
use crate::auth::middleware::{Limit, RateLimiter};
use crate::config::{CorsOrigins, HttpSettings, is_loopback_host};
use crate::net::{ClientAddr, canonical, client_ip};
use crate::tasks::Owner;

/// Host names a loopback bind always answers to.
const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// Error bodies longer than this (from rmcp or actix) are cut before being wrapped in JSON.
const MAX_WRAPPED_ERROR_BYTES: usize = 8 * 1024;

/// Request headers a browser client may send cross-origin: the MCP headers of both eras.
const CORS_ALLOWED_HEADERS: [&str; 8] = [
    "content-type",
    "accept",
    "authorization",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "mcp-method",
    "mcp-name",
];

/// Response headers a browser client may read: the session id, and the auth challenge.
const CORS_EXPOSED_HEADERS: [&str; 2] = ["mcp-session-id", "www-authenticate"];

// ------------------------------------------------------------------------------------------------
// Host

/// Which `Host` values are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPolicy {
    /// `None` = no check (a non-loopback bind without `ALLOWED_HOSTS`, as 1.7.0).
    allowed: Option<Vec<Authority>>,
}

/// A host name with an optional port, lower-cased, IPv6 brackets removed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Authority {
    host: String,
    port: Option<u16>,
}

fn parse_authority(raw: &str) -> Option<Authority> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    // `[::1]:3000`, `[::1]`, `::1` (a bare IPv6 literal, as written in ALLOWED_HOSTS), `a:1`, `a`.
    let (host, port) = if let Some(rest) = raw.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (host, port)
    } else if raw.matches(':').count() > 1 {
        (raw, None)
    } else if let Some((host, port)) = raw.rsplit_once(':') {
        (host, Some(port.parse().ok()?))
    } else {
        (raw, None)
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return None;
    }
    Some(Authority {
        host: host.to_ascii_lowercase(),
        port,
    })
}

impl HostPolicy {
    /// The spec's DNS-rebinding rule for the bind in `http`: a loopback bind answers only to
    /// the loopback names; `ALLOWED_HOSTS` adds names (for a reverse proxy that keeps `Host`,
    /// 1.7.0 issue #41) and turns the check on for any bind. A non-loopback bind without
    /// `ALLOWED_HOSTS` checks nothing, as 1.7.0 (warned about at start).
    pub fn from_settings(http: &HttpSettings) -> HostPolicy {
        let loopback = is_loopback_host(&http.host);
        if !loopback && http.allowed_hosts.is_empty() {
            return HostPolicy { allowed: None };
        }
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|s| s.to_string()).collect();
        let bind = http.host.trim_start_matches('[').trim_end_matches(']');
        if !is_wildcard(bind) {
            names.push(bind.to_string());
        }
        names.extend(http.allowed_hosts.iter().cloned());
        let mut allowed: Vec<Authority> = Vec::new();
        for name in names {
            if let Some(a) = parse_authority(&name)
                && !allowed.contains(&a)
            {
                allowed.push(a);
            }
        }
        HostPolicy {
            allowed: Some(allowed),
        }
    }

    /// Whether `Host` is checked at all.
    pub fn is_enforced(&self) -> bool {
        self.allowed.is_some()
    }

    /// The accepted names, as rmcp's `allowed_hosts` takes them (empty = no check).
    pub fn rmcp_list(&self) -> Vec<String> {
        match &self.allowed {
            None => Vec::new(),
            Some(list) => list
                .iter()
                .map(|a| match a.port {
                    Some(p) if a.host.contains(':') => format!("[{}]:{p}", a.host),
                    Some(p) => format!("{}:{p}", a.host),
                    None => a.host.clone(),
                })
                .collect(),
        }
    }

    /// Checks one request's `Host` header.
    pub fn check(&self, host: Option<&str>) -> Result<(), HttpError> {
        let Some(allowed) = &self.allowed else {
            return Ok(());
        };
        let Some(raw) = host else {
            return Err(HttpError::MissingHost);
        };
        let Some(given) = parse_authority(raw) else {
            return Err(HttpError::HostNotAllowed(sanitize(raw)));
        };
        let ok = allowed
            .iter()
            .any(|a| a.host == given.host && a.port.is_none_or(|p| given.port == Some(p)));
        if ok {
            Ok(())
        } else {
            Err(HttpError::HostNotAllowed(given.host))
        }
    }
}

fn is_wildcard(host: &str) -> bool {
    host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified())
}

/// Header text made safe to echo in an error message and a log line.
fn sanitize(raw: &str) -> String {
    raw.chars()
        .filter(|c| c.is_ascii_graphic())
        .take(100)
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Origin and CORS

/// 1.7.0's `CORS_ORIGINS` match: the origin equals an entry, or `https://`/`http://` + a bare
/// host entry, or its hostname matches a `*.domain` entry (the domain itself or a subdomain).
pub fn cors_origin_matches(origin: &str, allowed: &[String]) -> bool {
    allowed.iter().any(|entry| {
        if let Some(domain) = entry.strip_prefix("*.") {
            let Some(host) = origin_host(origin) else {
                return false;
            };
            let domain = domain.to_ascii_lowercase();
            host == domain || host.ends_with(&format!(".{domain}"))
        } else {
            origin == entry
                || origin.strip_prefix("https://") == Some(entry.as_str())
                || origin.strip_prefix("http://") == Some(entry.as_str())
        }
    })
}

/// The host of an origin such as `https://a.example.com:8443`, lower-cased; `None` when it does
/// not parse.
fn origin_host(origin: &str) -> Option<String> {
    let url = url::Url::parse(origin).ok()?;
    url.host_str().map(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    })
}

/// Which present `Origin` values are accepted: those CORS allows, and the server's own origin
/// (same host and port as `Host`). A request without `Origin` (a non-browser client) passes.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    cors: CorsOrigins,
}

impl OriginPolicy {
    /// The policy for `CORS_ORIGINS`.
    pub fn new(cors: &CorsOrigins) -> Self {
        OriginPolicy { cors: cors.clone() }
    }

    /// Checks one request's `Origin` against its `Host`.
    pub fn check(&self, origin: Option<&str>, host: Option<&str>) -> Result<(), HttpError> {
        let Some(origin) = origin else {
            return Ok(());
        };
        let allowed = match &self.cors {
            CorsOrigins::Any => true,
            CorsOrigins::List(list) => cors_origin_matches(origin, list),
            CorsOrigins::Disabled => false,
        } || same_origin(origin, host);
        if allowed {
            Ok(())
        } else {
            Err(HttpError::OriginNotAllowed(sanitize(origin)))
        }
    }
}

/// Whether `origin` names the host and port the request was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let (Some(host), Ok(url)) = (host.and_then(parse_authority), url::Url::parse(origin)) else {
        return false;
    };
    let Some(origin_host) = url.host_str() else {
        return false;
    };
    let origin_host = origin_host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    origin_host == host.host
        && url.port_or_known_default() == host.port.or(url.port_or_known_default())
}

/// actix-cors for `CORS_ORIGINS`; `None` when CORS is off (no CORS headers at all, as 1.7.0).
pub fn cors(origins: &CorsOrigins) -> Option<Cors> {
    let base = || {
        Cors::default()
            .allowed_methods([Method::GET, Method::POST, Method::DELETE, Method::OPTIONS])
            .allowed_headers(CORS_ALLOWED_HEADERS)
            .expose_headers(CORS_EXPOSED_HEADERS)
    };
    match origins {
        CorsOrigins::Disabled => None,
        CorsOrigins::Any => Some(base().allow_any_origin().send_wildcard()),
        CorsOrigins::List(list) => {
            let list = list.clone();
            Some(base().allowed_origin_fn(move |origin, _head| {
                origin
                    .to_str()
                    .is_ok_and(|origin| cors_origin_matches(origin, &list))
            }))
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Middleware

/// What the guard found in a JSON-RPC POST body, for the route handlers.
#[derive(Debug, Clone)]
pub struct ParsedMessage(pub ClientJsonRpcMessage);

fn header(req: &ServiceRequest, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `Accept` lists `media` (by essence, ignoring parameters; `q=0` excludes it).
fn accepts(req: &ServiceRequest, media: &str) -> bool {
    req.headers().get_all(header::ACCEPT).any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',').any(|entry| {
                let mut parts = entry.split(';');
                let essence = parts.next().unwrap_or("").trim();
                let zero = parts.any(|p| {
                    p.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("q")
                            && v.trim().trim_end_matches('0').trim_end_matches('.') == "0"
                    })
                });
                essence.eq_ignore_ascii_case(media) && !zero
            })
        })
    })
}

fn is_json_content_type(req: &ServiceRequest) -> bool {
    header(req, header::CONTENT_TYPE).is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// Reads the request body, refusing more than `limit` bytes.
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Bytes, HttpError> {
    if let Some(len) = header(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(HttpError::PayloadTooLarge { limit });
    }
    let mut payload = req.take_payload();
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| HttpError::BodyRead(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(HttpError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// One JSON-RPC message, or the JSON-RPC error for what it is instead: not JSON (-32700) or not
/// a JSON-RPC message (-32600; batches are not accepted, as rmcp).
pub fn parse_message(body: &[u8]) -> Result<ClientJsonRpcMessage, HttpError> {
    serde_json::from_slice::<ClientJsonRpcMessage>(body).map_err(|e| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() {
            HttpError::InvalidRequest(
                "not a single JSON-RPC 2.0 request, notification or response".to_string(),
            )
        } else {
            HttpError::ParseError(e.to_string())
        }
    })
}

fn is_initialize(message: &ClientJsonRpcMessage) -> bool {
    matches!(message, ClientJsonRpcMessage::Request(r) if matches!(r.request, ClientRequest::InitializeRequest(_)))
}

/// Which JSON-RPC route a path is, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Mcp,
    Messages,
    Other,
}

/// The name of the static bearer token presented, if one matches. Every configured token is
/// compared, in constant time, so that timing tells nothing about which came close.
fn static_token<'a>(
    tokens: &'a [crate::config::BearerToken],
    authorization: Option<&str>,
) -> Option<&'a str> {
    let presented = authorization?
        .trim()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?
        .1
        .trim();
    let mut found = None;
    for token in tokens {
        if crate::auth::tokens::ct_eq(token.token.expose().as_bytes(), presented.as_bytes()) {
            found = Some(token.name.as_str());
        }
    }
    found
}

/// Whether `path` is one of the OAuth routes (with or without the issuer's path prefix).
fn is_oauth_path(path: &str) -> bool {
    path.contains("/.well-known/")
        || ["/authorize", "/token", "/revoke", "/register"]
            .iter()
            .any(|end| path.ends_with(end))
}

/// Whether `path` is an MCP route (bearer token and rate limit).
fn is_protected_path(path: &str) -> bool {
    matches!(path.trim_end_matches('/'), "/mcp" | "/sse" | "/messages")
}

fn route_of(path: &str) -> Route {
    match path.trim_end_matches('/') {
        "/mcp" => Route::Mcp,
        "/messages" => Route::Messages,
        _ => Route::Other,
    }
}

/// The id of a request in the logs: the client's `X-Request-Id` if it is short and plain,
/// otherwise a new one. It is sent back in `X-Request-Id`.
fn request_id(req: &ServiceRequest) -> String {
    header(req, header::HeaderName::from_static("x-request-id"))
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()[..16].to_string())
}

/// The guard, inside a `request{id=…}` log span; see the module documentation for what it
/// checks, in that order.
pub(crate) async fn guard(
    shared: Arc<Shared>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    use tracing::Instrument;
    let id = request_id(&req);
    let span = tracing::info_span!("request", id = %id);
    let mut res = checked(shared, req, next).instrument(span).await?;
    if let Ok(value) = header::HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

async fn checked(
    shared: Arc<Shared>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let method = req.method().clone();
    let route = route_of(req.path());
    let peer = req.peer_addr().map(|a| canonical(a.ip()));
    let client = ClientAddr(client_ip(
        peer,
        header(&req, header::HeaderName::from_static("x-forwarded-for")),
        &shared.trust_proxy,
    ));
    req.extensions_mut().insert(client);

    let checked = async {
        if shared.lifecycle.is_draining() {
            return Err(HttpError::ShuttingDown);
        }
        let host = header(&req, header::HOST);
        shared.host_policy.check(host)?;
        // A present Origin that is not even text is refused, not taken for an absent one.
        let origin = match req.headers().get(header::ORIGIN) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| HttpError::OriginNotAllowed("(not text)".to_string()))?,
            ),
            None => None,
        };
        // The OAuth routes answer any origin themselves (they carry no cookies and browser-based
        // clients read them); the MCP routes must come from an allowed one.
        if !is_oauth_path(req.path()) {
            shared.origin_policy.check(origin, host)?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = checked {
        tracing::warn!(%client, method = %method, path = %req.path(), reason = %e, "request refused");
        return Ok(req.error_response(e));
    }

    // The MCP routes: rate limit, then (auth on) the bearer token and the session's owner.
    if is_protected_path(req.path()) && method != Method::OPTIONS {
        if let Err(retry) = shared.mcp_limiter.check_addr(Limit::Mcp, client.0) {
            tracing::warn!(%client, path = %req.path(), "rate limit reached");
            let response = RateLimiter::refuse(Limit::Mcp, retry);
            return Ok(req.into_response(response).map_into_boxed_body());
        }
        let authorization = header(&req, header::AUTHORIZATION);
        if let Some(name) = static_token(&shared.bearer_tokens, authorization) {
            tracing::debug!(%client, token = %name, "static bearer token accepted");
            req.extensions_mut()
                .insert(Principal(Owner::Subject(format!("token:{name}"))));
        } else if let Some(auth) = shared.auth.get() {
            match auth.authenticate(authorization) {
                Ok(claims) => {
                    let owner = Owner::Subject(claims.sub);
                    let session = header(&req, header::HeaderName::from_static("mcp-session-id"));
                    if let Some(session) = session
                        && !shared.session_owners.allows(session, &owner)
                    {
                        tracing::warn!(%client, "a session was used with another client's token");
                        return Ok(req.error_response(HttpError::SessionNotFound));
                    }
                    req.extensions_mut().insert(Principal(owner));
                }
                Err(refusal) => {
                    crate::metrics::auth_failure(refusal.kind());
                    tracing::warn!(%client, path = %req.path(), reason = refusal.kind(), "bearer token refused");
                    let response = auth.challenge(&refusal);
                    return Ok(req.into_response(response).map_into_boxed_body());
                }
            }
        } else if !shared.bearer_tokens.is_empty() {
            // Static tokens only, and none matched.
            let reason = if authorization.is_some() {
                "invalid"
            } else {
                "missing"
            };
            crate::metrics::auth_failure(reason);
            tracing::warn!(%client, path = %req.path(), reason, "bearer token refused");
            let response = HttpResponse::Unauthorized()
                .insert_header((
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"openclaw-mcp\", error=\"invalid_token\"",
                ))
                .json(serde_json::json!({"error": "invalid_token", "error_description": "a valid bearer token is required"}));
            return Ok(req.into_response(response).map_into_boxed_body());
        }
    }

    let json_rpc_post = method == Method::POST && route != Route::Other;
    let mut scope = RequestScope {
        initialize: false,
        principal: req.extensions().get::<Principal>().map(|p| p.0.clone()),
    };
    let mut in_flight: Option<InFlightGuard> = None;
    if json_rpc_post {
        let prepared = async {
            if route == Route::Mcp
                && !(accepts(&req, "application/json") && accepts(&req, "text/event-stream"))
            {
                return Err(HttpError::NotAcceptable(
                    "Not Acceptable: Client must accept both application/json and text/event-stream",
                ));
            }
            if !is_json_content_type(&req) {
                return Err(HttpError::UnsupportedMediaType);
            }
            let body = read_body(&mut req, shared.max_body_bytes).await?;
            let message = parse_message(&body)?;
            Ok((body, message))
        }
        .await;
        let (body, message) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(%client, method = %method, path = %req.path(), reason = %e, "request refused");
                return Ok(req.error_response(e));
            }
        };
        if route == Route::Mcp {
            scope.initialize = is_initialize(&message);
            let has_session = req.headers().contains_key("mcp-session-id");
            if scope.initialize && !has_session && shared.limit.is_full() {
                let e = HttpError::TooManySessions {
                    max: shared.limit.max(),
                };
                tracing::warn!(%client, reason = %e, "session refused");
                return Ok(req.error_response(e));
            }
            in_flight = Some(shared.lifecycle.enter());
        }
        req.extensions_mut().insert(ParsedMessage(message));
        req.set_payload(actix_web::dev::Payload::from(body));
    }

    let path = req.path().to_string();
    let opener = scope.initialize.then(|| scope.principal.clone()).flatten();
    let mut res = super::http::with_scope(scope, next.call(req))
        .await?
        .map_into_boxed_body();
    if let Some(owner) = opener
        && let Some(session) = res
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
    {
        shared
            .session_owners
            .bind(session, &owner, shared.limit.max(), shared.session_idle);
    }
    // rmcp answers a session DELETE with 202; the spec fixes no status, and the official Python
    // client logs "Session termination failed: 202" for anything but 200.
    if method == Method::DELETE && route == Route::Mcp && res.status() == StatusCode::ACCEPTED {
        *res.response_mut().status_mut() = StatusCode::OK;
    }
    let status = res.status();
    tracing::debug!(%client, method = %method, path = %path, status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "http request");
    Ok(match in_flight {
        // The call is in flight until its answer (an SSE stream, for a request) is sent.
        Some(guard) => res.map_body(|_, body| {
            Tracked {
                body,
                _guard: guard,
            }
            .boxed()
        }),
        None => res,
    })
}

/// A response body that keeps a call counted as in flight until it is sent or dropped.
struct Tracked {
    body: BoxBody,
    _guard: InFlightGuard,
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// Turns every error answer (status 4xx/5xx) that is not JSON yet into a JSON-RPC error object
/// with the same status and headers, the original text as its message.
pub async fn json_errors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // The request cannot be kept for an `Err` (cloning it breaks routing): an error that escapes
    // as `Err` is answered by actix-web from this JSON response.
    let res = match next.call(req).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            let status = e.as_response_error().status_code();
            let response = HttpResponse::build(status)
                .content_type("application/json")
                .body(error_json(-32000, &e.to_string()));
            return Err(
                actix_web::error::InternalError::from_response(e.to_string(), response).into(),
            );
        }
    };
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(res);
    }
    // A page meant for a person (the consent page after a wrong password) stays HTML.
    if res.response().extensions().get::<crate::net::HtmlPage>().is_some() {
        return Ok(res);
    }
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        return Ok(res);
    }
    let (http_req, response) = res.into_parts();
    let (head, body) = response.into_parts();
    let text = match actix_web::body::to_bytes_limited(body, MAX_WRAPPED_ERROR_BYTES).await {
        Ok(Ok(bytes)) => String::from_utf8_lossy(&bytes).trim().to_string(),
        _ => String::new(),
    };
    let message = if text.is_empty() {
        format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        )
    } else {
        text
    };
    // rmcp reports a session refused at its own cap as an internal error; it is a full server.
    let (status, message) = if status == StatusCode::INTERNAL_SERVER_ERROR
        && message.contains(super::http::SESSIONS_FULL_MARKER)
    {
        (StatusCode::SERVICE_UNAVAILABLE, message)
    } else {
        (status, message)
    };
    let mut out = HttpResponse::build(status);
    for (name, value) in head.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.append_header((name.clone(), value.clone()));
        }
    }
    let response = out
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ))
        .body(error_json(-32000, &message));
    Ok(ServiceResponse::new(http_req, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(host: &str, allowed: &[&str]) -> HttpSettings {
        HttpSettings {
            host: host.to_string(),
            port: 3000,
            allowed_hosts: allowed.iter().map(|s| s.to_string()).collect(),
            cors: CorsOrigins::Disabled,
            trust_proxy: crate::config::TrustProxy::Unset,
            max_body_bytes: 1024,
            session_idle: std::time::Duration::from_secs(60),
            max_sessions: 10,
            shutdown_grace: std::time::Duration::from_secs(1),
            metrics: false,
        }
    }

    #[test]
    fn loopback_binds_answer_only_to_loopback_names_and_allowed_hosts() {
        let p = HostPolicy::from_settings(&http("127.0.0.1", &[]));
        assert!(p.is_enforced());
        for ok in [
            "localhost",
            "localhost:3000",
            "127.0.0.1:9",
            "[::1]:3000",
            "LOCALHOST",
        ] {
            assert!(p.check(Some(ok)).is_ok(), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:3000", "127.0.0.2", ""] {
            assert!(p.check(Some(bad)).is_err(), "{bad}");
        }
        assert!(matches!(p.check(None), Err(HttpError::MissingHost)));

        let p =
            HostPolicy::from_settings(&http("127.0.0.1", &["bridge.example.com", "tail.net:8443"]));
        assert!(p.check(Some("bridge.example.com")).is_ok());
        assert!(p.check(Some("Bridge.Example.com:443")).is_ok());
        assert!(p.check(Some("tail.net:8443")).is_ok());
        assert!(p.check(Some("tail.net:8444")).is_err());
        assert_eq!(
            p.rmcp_list(),
            [
                "localhost",
                "127.0.0.1",
                "::1",
                "bridge.example.com",
                "tail.net:8443"
            ]
        );
    }

    #[test]
    fn public_binds_check_hosts_only_with_allowed_hosts() {
        let p = HostPolicy::from_settings(&http("0.0.0.0", &[]));
        assert!(!p.is_enforced());
        assert!(p.check(Some("anything")).is_ok());
        assert!(p.check(None).is_ok());
        assert!(p.rmcp_list().is_empty());
        let p = HostPolicy::from_settings(&http("0.0.0.0", &["mcp.example.com"]));
        assert!(p.check(Some("mcp.example.com")).is_ok());
        assert!(p.check(Some("localhost:3000")).is_ok());
        assert!(p.check(Some("0.0.0.0")).is_err());
        assert!(p.check(Some("evil.com")).is_err());
        let p = HostPolicy::from_settings(&http("192.168.1.5", &["bridge.lan"]));
        assert!(p.check(Some("192.168.1.5:3000")).is_ok());
    }

    #[test]
    fn cors_origins_follow_1_7_0() {
        let list: Vec<String> = ["https://claude.ai", "example.com", "*.corp.example"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        for ok in [
            "https://claude.ai",
            "https://example.com",
            "http://example.com",
            "https://corp.example",
            "https://a.b.corp.example:8443",
        ] {
            assert!(cors_origin_matches(ok, &list), "{ok}");
        }
        for bad in [
            "http://claude.ai",
            "https://example.com:8443",
            "https://evil.comexample.com",
            "https://corp.example.evil",
            "https://evilcorp.example",
            "not a url",
        ] {
            assert!(!cors_origin_matches(bad, &list), "{bad}");
        }
    }

    #[test]
    fn origins_are_checked_against_cors_and_the_own_origin() {
        let off = OriginPolicy::new(&CorsOrigins::Disabled);
        assert!(off.check(None, Some("localhost:3000")).is_ok());
        assert!(
            off.check(Some("http://localhost:3000"), Some("localhost:3000"))
                .is_ok()
        );
        assert!(
            off.check(Some("http://localhost:3001"), Some("localhost:3000"))
                .is_err()
        );
        assert!(
            off.check(
                Some("https://bridge.example.com"),
                Some("bridge.example.com")
            )
            .is_ok()
        );
        assert!(
            off.check(
                Some("http://evil.example.com"),
                Some("evil.example.com:3000")
            )
            .is_err()
        );
        assert!(off.check(Some("null"), Some("localhost:3000")).is_err());
        let list = OriginPolicy::new(&CorsOrigins::List(vec!["https://claude.ai".into()]));
        assert!(
            list.check(Some("https://claude.ai"), Some("localhost:3000"))
                .is_ok()
        );
        assert!(
            list.check(Some("https://evil.ai"), Some("localhost:3000"))
                .is_err()
        );
        let any = OriginPolicy::new(&CorsOrigins::Any);
        assert!(any.check(Some("null"), None).is_ok());
    }

    #[test]
    fn bodies_are_one_json_rpc_message() {
        assert!(matches!(
            parse_message(b"{nope"),
            Err(HttpError::ParseError(_))
        ));
        assert!(matches!(parse_message(b""), Err(HttpError::ParseError(_))));
        assert!(matches!(
            parse_message(b"[]"),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_message(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#),
            Err(HttpError::InvalidRequest(_))
        ));
        assert!(matches!(
            parse_message(br#"{"a":1}"#),
            Err(HttpError::InvalidRequest(_))
        ));
        let init = parse_message(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        )
        .unwrap();
        assert!(is_initialize(&init));
        let call = parse_message(
            br#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#,
        )
        .unwrap();
        assert!(!is_initialize(&call));
    }

    #[test]
    fn authorities_parse() {
        assert_eq!(parse_authority("[::1]:80").unwrap().port, Some(80));
        assert_eq!(parse_authority("::1").unwrap().host, "::1");
        assert!(parse_authority("a b").is_none());
        assert!(parse_authority("host:notaport").is_none());
    }
}
