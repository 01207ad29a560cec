//! Everything that can go wrong between the bridge and one OpenClaw gateway, with the texts of
//! openclaw-mcp 1.7.0 where it had one (`API request failed: 500 Internal Server Error`,
//! `Request to OpenClaw timed out after 120000ms`, …) and a plain sentence where it had none.
//! These texts reach the user as `Error: <text>` tool results; none may contain a token.
//!
//! What the gateway itself wrote (its error messages) is passed through [`gateway_text`] before it
//! goes into one of these errors: cut to fit a 4 KiB tool result, with terminal controls escaped.

use std::borrow::Cow;

/// Most bytes of error text one tool result carries (`Error: …`), the truncation note included.
pub const MAX_ERROR_TEXT_BYTES: usize = 4096;

/// Most bytes of the gateway's own words inside one error: [`MAX_ERROR_TEXT_BYTES`] less room for
/// the longest sentence this module wraps them in (`Error: API request failed: 511 Network
/// Authentication Required (…)` is 65 bytes), so that the whole result fits.
pub const MAX_GATEWAY_TEXT_BYTES: usize = MAX_ERROR_TEXT_BYTES - 128;

/// Cuts `text` to at most `max` bytes, the note `… [truncated: N bytes in all]` included, on a
/// char boundary; borrowed when it already fits. `max` must leave room for the note (at most 45
/// bytes); a smaller one gives the note alone.
pub fn truncate(text: &str, max: usize) -> Cow<'_, str> {
    truncate_noting(text, max, text.len())
}

/// [`truncate`], with `total` as the length the note gives (that of the text before escaping).
fn truncate_noting(text: &str, max: usize, total: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    let note = format!(" … [truncated: {total} bytes in all]");
    let mut cut = max.saturating_sub(note.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + note.len());
    out.push_str(&text[..cut]);
    out.push_str(&note);
    Cow::Owned(out)
}

/// Whether `c` is a terminal control that gateway text must not carry to the client: the C0
/// controls but TAB and LF (CR and ESC included), DEL and the C1 controls.
///
/// The MCP client gets the text JSON-encoded, so none of these can break the protocol; but a
/// terminal client (Claude Code, an inspector on the command line) may print a tool result as it
/// is, and a hostile gateway's `ESC [ …` or `CR` would then recolour, move or overwrite what the
/// user sees. TAB and LF stay: a multi-line error message is legitimate and reads better intact.
fn is_terminal_control(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{08}' | '\u{0B}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

/// The gateway's own words made fit for an error: secrets redacted, terminal controls escaped
/// (`\u{1b}`), cut to [`MAX_GATEWAY_TEXT_BYTES`] with a note giving the length the gateway sent.
pub fn gateway_text(text: &str) -> String {
    gateway_text_within(text, MAX_GATEWAY_TEXT_BYTES)
}

/// [`gateway_text`] cut to `max` bytes instead (a short label: the gateway's version, its scopes).
pub fn gateway_text_within(text: &str, max: usize) -> String {
    let redacted = crate::telemetry::redact(text);
    let escaped = crate::telemetry::escape_where(&redacted, is_terminal_control);
    truncate_noting(&escaped, max, text.len()).into_owned()
}

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
    /// A failure of the WebSocket backend (connection, handshake, pairing, the gateway's own
    /// error frames).
    #[error("{0}")]
    Ws(#[from] super::ws::WsError),
    /// The gateway restarted while the run was in flight: its runs died with it.
    #[error(
        "The OpenClaw gateway restarted while this request was running; the run was lost with it (nothing was sent again). Send the message again if you still want the answer."
    )]
    GatewayRestarted,
    /// A run this bridge started could not be found again on the gateway.
    #[error("interrupted: {0}")]
    RunLost(String),
    /// This backend cannot do what was asked (an HTTP-only instance asked to adopt a run).
    #[error("{0}")]
    Unsupported(String),
}

impl GatewayError {
    /// Whether this error says the gateway cannot be reached at all (used by health state).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            GatewayError::Connect { .. }
                | GatewayError::Timeout(_)
                | GatewayError::Ws(super::ws::WsError::Connect { .. })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_cuts_on_a_char_boundary_and_says_so() {
        assert_eq!(truncate("short", 4096), "short");
        let exact = "x".repeat(4096);
        assert!(matches!(truncate(&exact, 4096), Cow::Borrowed(_)));
        let long = "é".repeat(10_000); // 20 000 bytes, two per char
        for max in [4096, 4095, 200, 61] {
            let cut = truncate(&long, max);
            assert!(cut.len() <= max, "{max}: {}", cut.len());
            assert!(cut.ends_with(" … [truncated: 20000 bytes in all]"), "{cut}");
            assert!(cut.len() >= max - 1, "{max}: only {} bytes kept", cut.len());
        }
    }

    #[test]
    fn gateway_text_escapes_terminal_controls_but_keeps_lines_and_tabs() {
        assert_eq!(
            gateway_text("bad\r\nline two\tcol \u{1b}[31mred\u{7f}\u{9b}"),
            "bad\\r\nline two\tcol \\u{1b}[31mred\\u{7f}\\u{9b}"
        );
        assert_eq!(
            gateway_text("denied: Bearer abcdefghijklmnopqrstuvwxyz"),
            "denied: Bearer [REDACTED]"
        );
    }

    #[test]
    fn an_error_with_the_most_gateway_text_fits_one_tool_result() {
        let huge = "y".repeat(1_000_000);
        let text = gateway_text(&huge);
        assert_eq!(text.len(), MAX_GATEWAY_TEXT_BYTES);
        assert!(text.ends_with("[truncated: 1000000 bytes in all]"));
        let errors = [
            GatewayError::Upstream(text.clone()),
            GatewayError::Status {
                status: 511,
                reason: "Network Authentication Required".into(),
                hint: Some(text.clone()),
            },
        ];
        for err in errors {
            let shown = format!("Error: {err}");
            assert!(shown.len() <= MAX_ERROR_TEXT_BYTES, "{}", shown.len());
            assert!(shown.contains("[truncated: 1000000 bytes in all]"));
        }
    }
}
