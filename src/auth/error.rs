//! OAuth errors on the wire: RFC 6749 JSON bodies (`{"error","error_description"}`) with the
//! right status, `Cache-Control: no-store`, and the challenge headers the RFCs ask for. The
//! resource server's 401/403 challenges are built in `middleware`.

use actix_web::{HttpResponse, ResponseError, http::StatusCode};
use serde_json::json;

/// An OAuth error answered directly (not by redirect).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description}")]
pub struct OAuthError {
    /// HTTP status.
    pub status: StatusCode,
    /// RFC 6749 error code.
    pub error: &'static str,
    /// Human-readable detail.
    pub description: String,
    /// The client authenticated with HTTP Basic: answer with a Basic challenge (RFC 6749 5.2).
    pub basic_challenge: bool,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

impl OAuthError {
    fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            error,
            description: description.into(),
            basic_challenge: false,
            retry_after: None,
        }
    }
    /// 400 `invalid_request`.
    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    /// 401 `invalid_client`.
    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", d)
    }
    /// 400 `invalid_grant`.
    pub fn invalid_grant(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", d)
    }
    /// 400 `unauthorized_client`.
    pub fn unauthorized_client(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", d)
    }
    /// 400 `unsupported_grant_type`.
    pub fn unsupported_grant_type() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The grant type is not supported by this authorization server.",
        )
    }
    /// 400 `invalid_scope`.
    pub fn invalid_scope(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", d)
    }
    /// 400 `invalid_target` (RFC 8707).
    pub fn invalid_target(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_target", d)
    }
    /// 400 `invalid_client_metadata` (RFC 7591).
    pub fn invalid_client_metadata(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_client_metadata", d)
    }
    /// 400 `invalid_redirect_uri` (RFC 7591).
    pub fn invalid_redirect_uri(d: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_redirect_uri", d)
    }
    /// 429 `too_many_requests` with `Retry-After`.
    pub fn too_many_requests(what: &str, retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("You have exceeded the rate limit for {what}"),
        );
        e.retry_after = Some(retry_after.max(1));
        e
    }
    /// 500 `server_error` (the detail is logged, not shown).
    pub fn server_error() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "The authorization server failed; try again",
        )
    }
    /// 503 `temporarily_unavailable`.
    pub fn temporarily_unavailable(d: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            d,
        )
    }
    /// Marks the error as answering an HTTP Basic authentication.
    pub fn basic(mut self) -> Self {
        self.basic_challenge = true;
        self
    }
}

impl ResponseError for OAuthError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        response
            .insert_header(("cache-control", "no-store"))
            .insert_header(("pragma", "no-cache"));
        if self.basic_challenge {
            response.insert_header(("www-authenticate", "Basic realm=\"openclaw-mcp\""));
        }
        if let Some(secs) = self.retry_after {
            response.insert_header(("retry-after", secs.to_string()));
        }
        response.json(json!({"error": self.error, "error_description": self.description}))
    }
}
