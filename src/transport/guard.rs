//! What every HTTP request passes, whatever route serves it, as actix-web middleware wrapped
//! around the whole app — none of it decides anything from the request's path:
//!
//! - [`json_errors`] (outermost): every error answer is JSON — ours, rmcp's plain-text ones,
//!   actix-web's and actix-cors's — with its status kept (a page marked
//!   [`HtmlPage`](crate::net::HtmlPage) excepted);
//! - [`edge`]: refuses new work while shutting down (503, on new connections too), checks
//!   `Host` against [`HostPolicy`] (DNS-rebinding defence, 403), resolves the client address
//!   with `TRUST_PROXY`, and gives every request body a total deadline (`MCP_BODY_TIMEOUT_SECS`,
//!   408).
//!
//! What depends on the route (the token, the rate limits, `Origin`, the JSON-RPC body checks,
//! the session's owner) is middleware attached to the routes it guards:
//! [`route_guard`](super::route_guard) on the MCP routes, the OAuth server's own on its routes.
//! [`OriginPolicy`] and [`cors`] (actix-cors with 1.7.0's `CORS_ORIGINS` rules) are applied
//! there. The policies are plain values with unit tests; the middleware only applies them.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    net::IpAddr,
    pin::Pin,
    rc::Rc,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use actix_cors::Cors;
use actix_web::{
    Error, HttpMessage, HttpResponse, ResponseError,
    body::{BodySize, BoxBody, MessageBody},
    dev::{Payload, ServiceRequest, ServiceResponse},
    error::PayloadError,
    http::{
        Method, StatusCode,
        header::{self, HeaderValue},
    },
    middleware::Next,
};
use bytes::Bytes;

use super::http::{HttpError, error_json};
use crate::config::{CorsOrigins, HttpSettings, TrustProxy, is_loopback_host};
use crate::net::{ClientAddr, canonical, client_ip};

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
// The edge: what every request passes, whatever route serves it

/// The id of a request in the logs: the client's `X-Request-Id` if it is short and plain,
/// otherwise a new one. It is sent back in `X-Request-Id`.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
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

/// Whether a request announces a body (a length above zero, or a transfer coding).
fn has_body(req: &ServiceRequest) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.trim() != "0")
            && req.headers().contains_key(header::CONTENT_LENGTH)
}

/// How far a request's body got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyState {
    /// Not read to its end (yet, or ever: a handler that takes no body).
    Unread,
    /// Read to its end.
    Done,
    /// The deadline passed first.
    TimedOut,
}

/// A request body with a total deadline: past it, reading fails (and the edge answers 408).
/// The payload itself is shared with the edge, which keeps it alive until the answer is sent:
/// actix-web closes a connection whose request body was not read to its end (rather than
/// draining it, which a chunked body that never ends would make endless), so a client that
/// trickles a body to a route that does not read it loses its connection with the answer.
struct DeadlineBody {
    payload: Rc<RefCell<Option<Payload>>>,
    state: Rc<Cell<BodyState>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl futures_util::Stream for DeadlineBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let timed_out = || {
            PayloadError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the request body was not received in time",
            ))
        };
        match self.state.get() {
            BodyState::Done => return Poll::Ready(None),
            BodyState::TimedOut => return Poll::Ready(Some(Err(timed_out()))),
            BodyState::Unread => {}
        }
        let polled = match self.payload.borrow_mut().as_mut() {
            Some(payload) => Pin::new(payload).poll_next(cx),
            None => Poll::Ready(None),
        };
        match polled {
            Poll::Ready(None) => {
                self.state.set(BodyState::Done);
                // Read to its end: nothing is left for the connection to close over.
                self.payload.borrow_mut().take();
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match self.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.state.set(BodyState::TimedOut);
                    Poll::Ready(Some(Err(timed_out())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

/// A response body that keeps the request's unread payload alive until the response is sent.
struct HoldPayload {
    body: BoxBody,
    _payload: Rc<RefCell<Option<Payload>>>,
}

impl MessageBody for HoldPayload {
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

/// What the edge needs of the server's settings and state.
pub(crate) struct Edge {
    /// DNS-rebinding defence.
    pub host_policy: HostPolicy,
    /// `TRUST_PROXY`.
    pub trust_proxy: TrustProxy,
    /// `MCP_BODY_TIMEOUT_SECS`: the total time a request body may take.
    pub body_timeout: Duration,
    /// Shutdown has begun: new requests get 503.
    pub lifecycle: Arc<super::http::Lifecycle>,
    /// Set once `X-Forwarded-For` was seen without `TRUST_PROXY` (one warning per process).
    pub warned_forwarded: AtomicBool,
}

/// The edge, the outer middleware every request passes whatever route serves it (so it
/// decides nothing from the path): a `request{id=…}` log span; 503 while shutting down; the
/// `Host` check (403); the client address by `TRUST_PROXY`; and the body deadline (408).
pub(crate) async fn edge(
    edge: Arc<Edge>,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    use tracing::Instrument;
    let id = request_id(&req);
    let span = tracing::info_span!("request", id = %id);
    let mut res = checked(edge, req, next).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(header::HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}

async fn checked(
    edge: Arc<Edge>,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let peer = req.peer_addr().map(|a| canonical(a.ip()));
    let forwarded = req
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    if forwarded.is_some()
        && edge.trust_proxy == TrustProxy::Unset
        && !edge.warned_forwarded.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "requests carry X-Forwarded-For but TRUST_PROXY is not set: every client behind the proxy counts as the proxy's address for rate limits and session caps; set TRUST_PROXY (e.g. TRUST_PROXY=1 for one proxy in front) so the bridge uses the real client address"
        );
    }
    let client = ClientAddr(client_ip(peer, forwarded, &edge.trust_proxy));
    req.extensions_mut().insert(client);

    let refused = if edge.lifecycle.is_draining() {
        Err(HttpError::ShuttingDown)
    } else {
        edge.host_policy.check(
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok()),
        )
    };
    if let Err(e) = refused {
        tracing::warn!(%client, method = %req.method(), reason = %e, "request refused");
        return Ok(req.error_response(e));
    }

    let body = has_body(&req).then(|| {
        let payload = Rc::new(RefCell::new(Some(req.take_payload())));
        let state = Rc::new(Cell::new(BodyState::Unread));
        let deadline = DeadlineBody {
            payload: payload.clone(),
            state: state.clone(),
            sleep: Box::pin(tokio::time::sleep(edge.body_timeout)),
        };
        req.set_payload(Payload::Stream {
            payload: Box::pin(deadline),
        });
        (payload, state)
    });
    let method = req.method().clone();
    let res = next.call(req).await?.map_into_boxed_body();
    tracing::debug!(%client, method = %method, status = res.status().as_u16(), ms = started.elapsed().as_millis() as u64, "http request");
    let Some((payload, state)) = body else {
        return Ok(res);
    };
    let res = if state.get() == BodyState::TimedOut {
        let e = HttpError::BodyTimeout {
            secs: edge.body_timeout.as_secs(),
        };
        tracing::warn!(%client, reason = %e, "request refused");
        let (http_req, _) = res.into_parts();
        ServiceResponse::new(http_req, e.error_response())
    } else {
        res
    };
    if payload.borrow().is_none() {
        return Ok(res);
    }
    Ok(res.map_body(|head, body| {
        head.set_connection_type(actix_web::http::ConnectionType::Close);
        HoldPayload {
            body,
            _payload: payload,
        }
        .boxed()
    }))
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
    if res
        .response()
        .extensions()
        .get::<crate::net::HtmlPage>()
        .is_some()
    {
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
            replica_id: None,
            body_timeout: std::time::Duration::from_secs(30),
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
    fn authorities_parse() {
        assert_eq!(parse_authority("[::1]:80").unwrap().port, Some(80));
        assert_eq!(parse_authority("::1").unwrap().host, "::1");
        assert!(parse_authority("a b").is_none());
        assert!(parse_authority("host:notaport").is_none());
    }
}
