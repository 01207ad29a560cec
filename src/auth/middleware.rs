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

use super::{
    Auth,
    tokens::{Claims, SCOPE, TokenError},
};

/// What a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// `/authorize`: 100 per 15 minutes (1.7.0).
    Authorize,
    /// `/token`: 50 per 15 minutes (1.7.0).
    Token,
    /// `/revoke`: 50 per 15 minutes (1.7.0).
    Revoke,
    /// `/register`: 20 per hour (1.7.0).
    Register,
    /// Approval-password attempts on the consent page: 10 per 15 minutes.
    Consent,
    /// The MCP routes: `MCP_RATE_LIMIT_PER_MINUTE`.
    Mcp,
}

impl Limit {
    fn describe(self) -> &'static str {
        match self {
            Limit::Authorize => "authorization requests",
            Limit::Token => "token requests",
            Limit::Revoke => "token revocation requests",
            Limit::Register => "client registration requests",
            Limit::Consent => "approval attempts",
            Limit::Mcp => "MCP requests",
        }
    }
}

/// Fixed-window counters per (limit, address).
pub struct RateLimiter {
    mcp_per_minute: u32,
    windows: Mutex<HashMap<(Limit, IpAddr), (Instant, u32)>>,
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
            Limit::Token | Limit::Revoke => Some((50, minutes(15))),
            Limit::Register => Some((20, minutes(60))),
            Limit::Consent => Some((10, minutes(15))),
            Limit::Mcp => (self.mcp_per_minute > 0).then(|| (self.mcp_per_minute, minutes(1))),
        }
    }

    /// Counts one request; `Err(seconds to wait)` past the limit. An unknown address is not
    /// limited (it cannot be told apart from others).
    pub fn check(&self, limit: Limit, ip: Option<IpAddr>) -> Result<(), u64> {
        let (Some((max, window)), Some(ip)) = (self.rule(limit), ip) else {
            return Ok(());
        };
        let now = Instant::now();
        let Ok(mut windows) = self.windows.lock() else {
            return Ok(());
        };
        if windows.len() > 100_000 {
            windows.retain(|(l, _), (start, _)| {
                self.rule(*l)
                    .is_some_and(|(_, w)| now.duration_since(*start) < w)
            });
        }
        let entry = windows.entry((limit, ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1 >= max {
            let left = window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
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
}

impl Refusal {
    /// A fixed word for the metrics: `missing`, `malformed`, `expired`, `audience`, `invalid`,
    /// `revoked` or `scope`.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unauthorized(kind, _) => kind,
            Refusal::InsufficientScope => "scope",
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
        let claims = self
            .key
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
        let (status, error, description) = match refusal {
            Refusal::Unauthorized(_, d) => (StatusCode::UNAUTHORIZED, "invalid_token", d.clone()),
            Refusal::InsufficientScope => (
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("The access token lacks the {SCOPE} scope"),
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

    /// Counts a request against a rate limit; `Some(429 answer)` past it.
    pub fn rate_limit(&self, limit: Limit, ip: Option<IpAddr>) -> Option<HttpResponse> {
        self.limiter
            .check(limit, ip)
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
            assert!(limiter.check(Limit::Mcp, Some(ip)).is_ok());
        }
        let retry = limiter.check(Limit::Mcp, Some(ip)).unwrap_err();
        assert!((1..=60).contains(&retry));
        assert!(
            limiter
                .check(Limit::Mcp, Some("10.0.0.2".parse().unwrap()))
                .is_ok(),
            "per address"
        );
        assert!(
            RateLimiter::new(0).check(Limit::Mcp, Some(ip)).is_ok(),
            "0 = off"
        );
    }
}
