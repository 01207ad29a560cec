//! The resource server and the rate limits.
//!
//! Every request to `/mcp`, `/sse` and `/messages` must carry `Authorization: Bearer <JWT>`
//! issued by this server for this resource, unexpired, of a grant not revoked. Otherwise: 401
//! with `WWW-Authenticate: Bearer error=…, resource_metadata="<issuer>/.well-known/oauth-protected-resource/mcp"`
//! (1.7.0 omitted `resource_metadata`, which is how clients find the authorization server). A
//! token without the `mcp:tools` scope gets 403 `insufficient_scope`.
//!
//! Rate limits are fixed windows per client address (after `TRUST_PROXY`): 1.7.0's limits on the
//! OAuth routes, and `MCP_RATE_LIMIT_PER_MINUTE` on the MCP routes (1.7.0 had none).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use actix_web::{HttpResponse, http::StatusCode};
use serde_json::json;

use crate::net::AddrBucket;

use super::{
    Auth,
    tokens::{Claims, SCOPE, TokenError},
};

/// What a limit applies to, and so which key it counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `/authorize`: 100 per 15 minutes per address (1.7.0).
    Authorize,
    /// `/token` requests that fail (bad client, bad code, bad refresh token): 50 per 15 minutes
    /// per address. Counted after the answer, so one address's failures never lock out another.
    TokenFailure,
    /// `/token` requests that succeed: 600 per 15 minutes per client id, counted only once the
    /// client has authenticated (client ids are public: counting before would let anyone spend
    /// a client's budget). 600 leaves room for thousands of people on one configured client
    /// refreshing once an hour.
    TokenClient,
    /// `/revoke`: 50 per 15 minutes per address (1.7.0).
    Revoke,
    /// `/register`: 20 per hour per address (1.7.0).
    Register,
    /// Approval-password attempts on the consent page: 10 per 15 minutes per address.
    Consent,
    /// The MCP routes, per authenticated principal (or per address on an open bridge):
    /// `MCP_RATE_LIMIT_PER_MINUTE`.
    Mcp,
    /// The MCP routes, requests without a valid token: `MCP_RATE_LIMIT_PER_MINUTE` per address,
    /// a bucket of its own that never counts an authenticated caller's requests.
    McpUnauthenticated,
}

impl Limit {
    /// What the limit counts, for the 429 answer.
    pub fn describe(self) -> &'static str {
        match self {
            Limit::Authorize => "authorization requests",
            Limit::TokenFailure => "failed token requests",
            Limit::TokenClient => "token requests for this client",
            Limit::Revoke => "token revocation requests",
            Limit::Register => "client registration requests",
            Limit::Consent => "approval attempts",
            Limit::Mcp => "MCP requests",
            Limit::McpUnauthenticated => "unauthenticated MCP requests",
        }
    }
}

/// Who a limit counts: an address bucket, an authenticated principal, or an OAuth client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RateKey {
    /// A client address (IPv6 by /64).
    Addr(AddrBucket),
    /// An authenticated principal (its task-owner key).
    Principal(String),
    /// An OAuth client id (after the client authenticated).
    Client(String),
}

impl RateKey {
    /// The key of a client address; `None` when the address is unknown (not limited: it cannot
    /// be told apart from others).
    pub fn addr(ip: Option<IpAddr>) -> Option<RateKey> {
        ip.map(|ip| RateKey::Addr(AddrBucket::of(ip)))
    }
}

/// Most windows kept before the expired ones are swept.
const MAX_WINDOWS: usize = 100_000;

/// Fixed-window counters per (limit, key).
pub struct RateLimiter {
    mcp_per_minute: u32,
    windows: Mutex<HashMap<(Limit, RateKey), (Instant, u32)>>,
}

impl RateLimiter {
    /// Limits with `mcp_per_minute` on the MCP routes (0 = none).
    pub fn new(mcp_per_minute: u32) -> Self {
        RateLimiter {
            mcp_per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    fn rule(&self, limit: Limit) -> Option<(u32, Duration)> {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        match limit {
            Limit::Authorize => Some((100, minutes(15))),
            Limit::TokenFailure | Limit::Revoke => Some((50, minutes(15))),
            Limit::TokenClient => Some((600, minutes(15))),
            Limit::Register => Some((20, minutes(60))),
            Limit::Consent => Some((10, minutes(15))),
            Limit::Mcp | Limit::McpUnauthenticated => {
                (self.mcp_per_minute > 0).then(|| (self.mcp_per_minute, minutes(1)))
            }
        }
    }

    /// Counts one request; `Err(seconds to wait)` past the limit. No key: not limited.
    pub fn check(&self, limit: Limit, key: Option<RateKey>) -> Result<(), u64> {
        self.apply(limit, key, true)
    }

    /// Whether `key` is past `limit` now, without counting anything (`Err(seconds to wait)`).
    pub fn peek(&self, limit: Limit, key: Option<RateKey>) -> Result<(), u64> {
        self.apply(limit, key, false)
    }

    /// [`check`](Self::check) by client address.
    pub fn check_addr(&self, limit: Limit, ip: Option<IpAddr>) -> Result<(), u64> {
        self.check(limit, RateKey::addr(ip))
    }

    fn apply(&self, limit: Limit, key: Option<RateKey>, count: bool) -> Result<(), u64> {
        let (Some((max, window)), Some(key)) = (self.rule(limit), key) else {
            return Ok(());
        };
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() > MAX_WINDOWS {
            windows.retain(|(l, _), (start, _)| {
                self.rule(*l)
                    .is_some_and(|(_, w)| now.duration_since(*start) < w)
            });
        }
        let entry = windows.entry((limit, key)).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            let left = window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        if count {
            entry.1 += 1;
        }
        Ok(())
    }

    /// The 429 answer.
    pub fn refuse(limit: Limit, retry_after: u64) -> HttpResponse {
        actix_web::ResponseError::error_response(&super::error::OAuthError::too_many_requests(
            limit.describe(),
            retry_after,
        ))
    }
}

/// Why a request to a protected route is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401: no usable token; the kind (for metrics) and the description.
    Unauthorized(&'static str, String),
    /// 403: the token lacks `mcp:tools`.
    InsufficientScope,
    /// 503: the shared OAuth store cannot be read, so that a revocation could be missed: no
    /// token passes until it can (fail closed).
    Unavailable,
}

impl Refusal {
    /// A fixed word for the metrics: `missing`, `malformed`, `expired`, `audience`, `invalid`,
    /// `revoked` or `scope`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unauthorized(kind, _) => kind,
            Refusal::InsufficientScope => "scope",
            Refusal::Unavailable => "unavailable",
        }
    }
}

impl Auth {
    /// Checks the bearer token of a request to a protected route.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Claims, Refusal> {
        let Some(value) = authorization else {
            return Err(Refusal::Unauthorized(
                "missing",
                "Missing Authorization header".to_string(),
            ));
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return Err(Refusal::Unauthorized(
                "malformed",
                "Invalid Authorization header format, expected 'Bearer TOKEN'".to_string(),
            ));
        };
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Refusal::Unauthorized(
                "malformed",
                "Invalid Authorization header format, expected 'Bearer TOKEN'".to_string(),
            ));
        }
        if self.shared_store_away() {
            return Err(Refusal::Unavailable);
        }
        let claims = self
            .keys
            .read()
            .map_err(|_| Refusal::Unavailable)?
            .verify(
                token.trim(),
                &self.issuer,
                &self.resources,
                Auth::now_secs(),
            )
            .map_err(|e| match e {
                TokenError::Expired => {
                    Refusal::Unauthorized("expired", "The access token expired".to_string())
                }
                TokenError::WrongAudience => Refusal::Unauthorized(
                    "audience",
                    "The access token was issued for another resource".to_string(),
                ),
                TokenError::Invalid => {
                    Refusal::Unauthorized("invalid", "Invalid or expired token".to_string())
                }
            })?;
        if self.is_revoked(&claims.gid) {
            return Err(Refusal::Unauthorized(
                "revoked",
                "The access token was revoked".to_string(),
            ));
        }
        if !claims.has_scope(SCOPE) {
            return Err(Refusal::InsufficientScope);
        }
        Ok(claims)
    }

    /// The 401/403 answer, with its `WWW-Authenticate` challenge.
    pub fn challenge(&self, refusal: &Refusal) -> HttpResponse {
        let metadata = self.resource_metadata_url();
        if matches!(refusal, Refusal::Unavailable) {
            return HttpResponse::ServiceUnavailable()
                .insert_header(("retry-after", "2"))
                .insert_header(("cache-control", "no-store"))
                .json(json!({
                    "error": "temporarily_unavailable",
                    "error_description": "the authorization store cannot be reached; try again shortly"
                }));
        }
        let (status, error, description) = match refusal {
            Refusal::Unauthorized(_, d) => (StatusCode::UNAUTHORIZED, "invalid_token", d.clone()),
            Refusal::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("The access token lacks the {SCOPE} scope"),
            ),
            Refusal::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                String::new(),
            ),
        };
        let header = format!(
            "Bearer error=\"{error}\", error_description=\"{}\", scope=\"{SCOPE}\", resource_metadata=\"{metadata}\"",
            description.replace('"', "'")
        );
        HttpResponse::build(status)
            .insert_header(("www-authenticate", header))
            .insert_header(("cache-control", "no-store"))
            .json(json!({"error": error, "error_description": description}))
    }

    /// Counts a request against a rate limit by client address; `Some(429 answer)` past it.
    pub fn rate_limit(&self, limit: Limit, ip: Option<IpAddr>) -> Option<HttpResponse> {
        self.limiter
            .check_addr(limit, ip)
            .err()
            .map(|retry| RateLimiter::refuse(limit, retry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_refuses_past_its_limit_and_says_when_to_retry() {
        let limiter = RateLimiter::new(3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check_addr(Limit::Mcp, Some(ip)).is_ok());
        }
        let retry = limiter.check_addr(Limit::Mcp, Some(ip)).unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(
            limiter
                .check_addr(Limit::Mcp, Some("10.0.0.2".parse().unwrap()))
                .is_ok(),
            "per address"
        );
        assert!(
            RateLimiter::new(0).check_addr(Limit::Mcp, Some(ip)).is_ok(),
            "0 = off"
        );
    }
}
