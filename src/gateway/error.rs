//! Everything that can go wrong between the bridge and one OpenClaw gateway, with the texts of
//! openclaw-mcp 1.7.0 where it had one (`API request failed: 500 Internal Server Error`,
//! `Request to OpenClaw timed out after 120000ms`, …) and a plain sentence where it had none.
//! These texts reach the user as `Error: <text>` tool results; none may contain a token.

/// A failed gateway request.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum GatewayError {
    /// The gateway answered with a non-2xx status.
    #[error("API request failed: {status} {reason}{}", hint.as_deref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Status {
        /// HTTP status code.
        status: u16,
        /// Canonical reason phrase (`Internal Server Error`).
        reason: String,
        /// What the user can do about it, or the gateway's own short message.
        hint: Option<String>,
    },
    /// No complete answer within the instance timeout.
    #[error("Request to OpenClaw timed out after {0}ms")]
    Timeout(u64),
    /// A streamed answer went silent for longer than the instance timeout.
    #[error(
        "OpenClaw sent nothing for {0}ms while answering (idle timeout); the request was abandoned"
    )]
    IdleTimeout(u64),
    /// The TCP/TLS connection could not be made or broke before the response headers.
    #[error("Failed to connect to OpenClaw at {url}: {cause}")]
    Connect {
        /// Base URL (credentials masked).
        url: String,
        /// What the network stack said.
        cause: String,
    },
    /// The answer is larger than the 10 MiB cap.
    #[error("Response exceeds maximum allowed size (10MB)")]
    TooLarge,
    /// The answer is not what an OpenAI-compatible gateway sends.
    #[error("Invalid response from OpenClaw at {url}: {reason}")]
    InvalidResponse {
        /// Base URL (credentials masked).
        url: String,
        /// What was wrong with it.
        reason: String,
    },
    /// The gateway reported a failure inside a 200 answer (a streamed `{"error":…}` chunk).
    #[error("OpenClaw reported an error: {0}")]
    Upstream(String),
    /// The connection broke after the answer had started.
    #[error("The connection to OpenClaw at {url} broke before the answer was complete: {cause}")]
    Interrupted {
        /// Base URL (credentials masked).
        url: String,
        /// What the network stack said.
        cause: String,
    },
    /// The caller cancelled the request; the gateway connection was closed.
    #[error("Request cancelled")]
    Cancelled,
    /// The instance's actor failed while handling this request and was restarted.
    #[error("The handler for instance \"{0}\" failed unexpectedly and was restarted; please retry")]
    ActorRestarted(String),
    /// The instance's actor could not be reached (restarting or overloaded).
    #[error("Instance \"{instance}\" is unavailable: {reason}")]
    Unavailable {
        /// Instance name.
        instance: String,
        /// Why.
        reason: String,
    },
}

impl GatewayError {
    /// Whether this error says the gateway cannot be reached at all (used by health state).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            GatewayError::Connect { .. } | GatewayError::Timeout(_)
        )
    }
}
