//! The guard of the MCP routes, attached as middleware to the actix scope of `/mcp` and the
//! resources of `/sse` and `/messages` (never decided from the request's path: whatever actix
//! routes to one of these handlers, however its path was spelled, passed through this guard).
//! In order:
//!
//! 1. a present `Origin` must be allowed ([`OriginPolicy`](super::guard::OriginPolicy), 403);
//! 2. the bearer token, when auth is on: a static token (`MCP_BEARER_TOKENS`) or an OAuth access
//!    token; it names the request's **principal** ([`Principal`]: the token's name, or the OAuth
//!    grant). A request without a valid one gets 401 (or 403 for a missing scope) and counts in
//!    its address's own bucket of `MCP_RATE_LIMIT_PER_MINUTE`;
//! 3. the rate limit: per principal when authenticated, per address otherwise (IPv6 by /64);
//! 4. the session's owner: a Streamable HTTP session (`Mcp-Session-Id`) or a legacy session
//!    (`sessionId`) opened by another principal gets the same 404 as an unknown one;
//! 5. for a JSON-RPC `POST`: `Accept` (406), `Content-Type` (415), the body read up to
//!    `MCP_MAX_BODY_BYTES` (413) within the body deadline ([`super::guard`], 408), parsed as one
//!    JSON-RPC message (400), and a new session refused past `MCP_MAX_SESSIONS` (503);
//! 6. the call runs inside a [`RequestScope`], so the session manager and the service factory
//!    know the principal, and is counted in flight until its answer is sent; a call cut off at
//!    the end of the shutdown grace period gets a JSON-RPC error, never an empty answer.
//!
//! CORS preflights (`OPTIONS`) carry no credentials by design: after the `Origin` check they
//! pass to actix-cors inside.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use actix_web::{
    Error, HttpMessage, HttpResponse,
    body::{BodySize, BoxBody, MessageBody},
    dev::{ServiceRequest, ServiceResponse},
    http::{Method, StatusCode, header, header::HeaderMap},
    middleware::Next,
};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use rmcp::model::{ClientJsonRpcMessage, ClientRequest, RequestId};
use tokio_util::sync::CancellationToken;

use super::{
    http::{HttpError, InFlightGuard, Principal, Shared},
    sessions::{Access, CapKey, RequestScope, SessionKind, with_scope},
};
use crate::{
    auth::middleware::{Limit, RateKey, RateLimiter},
    net::ClientAddr,
    tasks::Owner,
};

/// Which MCP route a guard is attached to (given when the route is built, not read from the
/// path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum McpRoute {
    /// `/mcp`: Streamable HTTP, both protocol eras.
    Streamable,
    /// `GET /sse`: opens a legacy session.
    LegacyStream,
    /// `POST /messages?sessionId=`: a message into a legacy session.
    LegacyMessages,
}

/// What the guard found in a JSON-RPC POST body, for the route handlers.
#[derive(Debug, Clone)]
pub struct ParsedMessage(pub ClientJsonRpcMessage);

fn header_str(req: &ServiceRequest, name: header::HeaderName) -> Option<&str> {
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
    header_str(req, header::CONTENT_TYPE).is_some_and(|ct| {
        ct.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case("application/json")
    })
}

/// Reads the request body, refusing more than `limit` bytes. The body deadline is enforced by
/// the payload itself (see [`super::guard::edge`]).
async fn read_body(req: &mut ServiceRequest, limit: usize) -> Result<Bytes, HttpError> {
    if let Some(len) = header_str(req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok())
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

/// The principal of a static bearer token.
pub(crate) fn token_principal(name: &str) -> Owner {
    Owner::Subject(format!("token:{name}"))
}

/// The principal of an OAuth access token: its grant, one person's authorization, the same
/// across refreshes (docs/security.md).
pub(crate) fn grant_principal(grant: &str) -> Owner {
    Owner::Subject(format!("grant:{grant}"))
}

/// Who is calling, by the bearer token.
enum Caller {
    /// Auth is off: nobody in particular.
    Open,
    /// An authenticated principal.
    Known(Owner),
    /// Refused: the answer, and the reason for the logs and metrics.
    Refused(HttpResponse, &'static str),
}

fn authenticate(shared: &Shared, headers: &HeaderMap) -> Caller {
    if !shared.auth_enabled {
        return Caller::Open;
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(name) = static_token(&shared.bearer_tokens, authorization) {
        return Caller::Known(token_principal(name));
    }
    if let Some(auth) = shared.auth.get() {
        return match auth.authenticate(authorization) {
            Ok(claims) => Caller::Known(grant_principal(&claims.gid)),
            Err(refusal) => Caller::Refused(auth.challenge(&refusal), refusal.kind()),
        };
    }
    // Static tokens only, and none matched.
    let reason = if authorization.is_some() {
        "invalid"
    } else {
        "missing"
    };
    let response = HttpResponse::Unauthorized()
        .insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"openclaw-mcp\", error=\"invalid_token\"",
        ))
        .json(serde_json::json!({"error": "invalid_token", "error_description": "a valid bearer token is required"}));
    Caller::Refused(response, reason)
}

/// Whether a request carries a valid token (for `/health`, which shows more to those that do).
pub(crate) fn is_authenticated(shared: &Shared, headers: &HeaderMap) -> bool {
    matches!(authenticate(shared, headers), Caller::Known(_))
}

/// The `sessionId` query parameter of a legacy `POST /messages`.
pub(crate) fn legacy_session_id(query: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "sessionId")
        .map(|(_, v)| v.into_owned())
}

/// The guard; see the module documentation for what it checks, in that order.
pub(crate) async fn mcp_route(
    shared: Arc<Shared>,
    route: McpRoute,
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let method = req.method().clone();
    let client = req
        .extensions()
        .get::<ClientAddr>()
        .copied()
        .unwrap_or(ClientAddr(None));
    let refuse = |req: ServiceRequest, e: HttpError| {
        tracing::warn!(%client, route = ?route, reason = %e, "request refused");
        Ok(req.error_response(e))
    };

    // 1. Origin.
    let origin = match req.headers().get(header::ORIGIN) {
        // A present Origin that is not even text is refused, not taken for an absent one.
        Some(v) => match v.to_str() {
            Ok(v) => Some(v),
            Err(_) => return refuse(req, HttpError::OriginNotAllowed("(not text)".to_string())),
        },
        None => None,
    };
    if let Err(e) = shared
        .origin_policy
        .check(origin, header_str(&req, header::HOST))
    {
        return refuse(req, e);
    }
    // A CORS preflight carries no credentials by design: actix-cors inside answers it.
    if method == Method::OPTIONS {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }

    // 2. Who is calling; 3. the rate limit of that caller.
    let principal = match authenticate(&shared, req.headers()) {
        Caller::Open => None,
        Caller::Known(owner) => Some(owner),
        Caller::Refused(response, reason) => {
            if let Err(retry) = shared
                .mcp_limiter
                .check(Limit::McpUnauthenticated, RateKey::addr(client.0))
            {
                tracing::warn!(%client, "rate limit of unauthenticated requests reached");
                let response = RateLimiter::refuse(Limit::McpUnauthenticated, retry);
                return Ok(req.into_response(response).map_into_boxed_body());
            }
            crate::metrics::auth_failure(reason);
            tracing::warn!(%client, route = ?route, reason, "bearer token refused");
            return Ok(req.into_response(response).map_into_boxed_body());
        }
    };
    let key = match &principal {
        Some(owner) => Some(RateKey::Principal(owner.key())),
        None => RateKey::addr(client.0),
    };
    if let Err(retry) = shared.mcp_limiter.check(Limit::Mcp, key) {
        tracing::warn!(%client, "rate limit reached");
        let response = RateLimiter::refuse(Limit::Mcp, retry);
        return Ok(req.into_response(response).map_into_boxed_body());
    }
    if let Some(owner) = &principal {
        req.extensions_mut().insert(Principal(owner.clone()));
    }

    // 4. The session's owner.
    let session = match route {
        McpRoute::Streamable => header_str(&req, header::HeaderName::from_static("mcp-session-id"))
            .map(|id| (id.to_string(), SessionKind::Streamable)),
        McpRoute::LegacyMessages => {
            legacy_session_id(req.query_string()).map(|id| (id, SessionKind::Legacy))
        }
        McpRoute::LegacyStream => None,
    };
    if let Some((id, kind)) = &session {
        match shared.sessions.access(id, *kind, principal.as_ref()) {
            Access::Allowed => {}
            Access::Foreign => {
                tracing::warn!(%client, "a session was used by another principal");
                return Ok(req.error_response(HttpError::SessionNotFound));
            }
            // rmcp answers a DELETE of an unknown session 202; it gets the same 404 as a foreign
            // one. Other requests of an unknown session go on: rmcp answers 404 for the
            // initialize era and ignores the header in the 2026-07-28 era.
            Access::Unknown if method == Method::DELETE || kind == &SessionKind::Legacy => {
                return Ok(req.error_response(HttpError::SessionNotFound));
            }
            Access::Unknown => {}
        }
    }

    // 5. A JSON-RPC POST: what it accepts, what it is, and whether it may open a session.
    let mut scope = RequestScope {
        initialize: false,
        cap: CapKey::of(principal.as_ref(), client.0),
        principal,
    };
    let mut call: Option<(InFlightGuard, Option<RequestId>)> = None;
    if method == Method::POST && route != McpRoute::LegacyStream {
        let prepared = async {
            if route == McpRoute::Streamable
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
            Err(e) => return refuse(req, e),
        };
        if route == McpRoute::Streamable {
            scope.initialize = is_initialize(&message);
            if scope.initialize && session.is_none() && shared.limit.is_full() {
                let e = HttpError::TooManySessions {
                    max: shared.limit.max(),
                };
                return refuse(req, e);
            }
            let id = match &message {
                ClientJsonRpcMessage::Request(r) => Some(r.id.clone()),
                _ => None,
            };
            call = Some((shared.lifecycle.enter(), id));
        }
        req.extensions_mut().insert(ParsedMessage(message));
        req.set_payload(actix_web::dev::Payload::from(body));
    }

    // 6. The call, in its scope.
    let mut res = with_scope(scope, next.call(req))
        .await?
        .map_into_boxed_body();
    // rmcp answers a session DELETE with 202; the spec fixes no status, and the official Python
    // client logs "Session termination failed: 202" for anything but 200.
    if method == Method::DELETE && res.status() == StatusCode::ACCEPTED {
        *res.response_mut().status_mut() = StatusCode::OK;
    }
    Ok(match call {
        // The call is in flight until its answer is sent.
        Some((guard, id)) => {
            let sse = res
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("text/event-stream"));
            // A plain-JSON answer (2026-07-28 era) cut off by the shutdown: rmcp reports "no
            // response" as a 500 without the call's id; the client gets its call's error.
            if !sse
                && res.status().is_server_error()
                && shared.shutdown.is_cancelled()
                && let Some(id) = &id
            {
                let (http_req, _) = res.into_parts();
                let response = HttpResponse::Ok()
                    .content_type("application/json")
                    .body(cut_off_message(id).to_string());
                return Ok(ServiceResponse::new(http_req, response).map_into_boxed_body());
            }
            let shutdown = shared.shutdown.clone();
            res.map_body(|_, body| {
                Tracked {
                    body,
                    _guard: guard,
                    pending: id.filter(|_| sse),
                    shutdown,
                    done: false,
                }
                .boxed()
            })
        }
        None => res,
    })
}

/// A response body that keeps a call counted as in flight until it is sent or dropped, and
/// that, when the server's shutdown ends the stream before the call's answer, ends it with a
/// JSON-RPC error for that call instead of nothing.
struct Tracked {
    body: BoxBody,
    _guard: InFlightGuard,
    /// The id of the request whose answer has not been seen on this SSE stream yet.
    pending: Option<RequestId>,
    shutdown: CancellationToken,
    done: bool,
}

/// Whether an SSE chunk of this server carries a JSON-RPC answer: only answers have a top-level
/// `result` or `error` member; notifications (progress) carry neither, and text inside a
/// string value has its quotes escaped.
fn is_answer(chunk: &[u8]) -> bool {
    let has = |needle: &[u8]| chunk.windows(needle.len()).any(|w| w == needle);
    has(b"\"result\":") || has(b"\"error\":")
}

/// The JSON-RPC error of a call cut off by the shutdown.
pub(crate) fn cut_off_message(id: &RequestId) -> serde_json::Value {
    serde_json::json!({
        "jsonrpc": "2.0",
        "id": id,
        "error": {
            "code": -32000,
            "message": "the server is shutting down and could not finish this call; retry it on the next connection"
        }
    })
}

/// The SSE event that ends a call cut off by the shutdown.
fn cut_off_event(id: &RequestId) -> Bytes {
    Bytes::from(format!("event: message\ndata: {}\n\n", cut_off_message(id)))
}

impl MessageBody for Tracked {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        match self.body.size() {
            // The end may grow by one event.
            BodySize::Sized(_) if self.pending.is_some() => BodySize::Stream,
            size => size,
        }
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.body).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                if self.pending.is_some() && is_answer(&chunk) {
                    self.pending = None;
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) if self.shutdown.is_cancelled() => {
                self.done = true;
                match self.pending.take() {
                    Some(id) => {
                        tracing::warn!(
                            "a call was cut off by the shutdown; answering it with an error"
                        );
                        Poll::Ready(Some(Ok(cut_off_event(&id))))
                    }
                    None => Poll::Ready(None),
                }
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn answers_are_told_from_notifications() {
        assert!(is_answer(
            br#"data: {"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#
        ));
        assert!(is_answer(
            br#"data: {"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"}}"#
        ));
        assert!(!is_answer(
            br#"data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":2,"message":"\"result\": 1"}}"#
        ));
        let event = cut_off_event(&RequestId::Number(7));
        let text = std::str::from_utf8(&event).unwrap();
        assert!(text.starts_with("event: message\ndata: {"));
        assert!(text.contains("\"id\":7") && text.contains("\"error\""));
    }
}
