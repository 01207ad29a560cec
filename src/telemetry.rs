//! Logging: `tracing` events formatted on **stderr** (stdout carries the protocol in stdio mode),
//! passed through [`redact`] on their way out so that a secret can never reach a log line, even
//! one written by a dependency.
//!
//! Redaction has two parts: every configured secret (gateway tokens, the OAuth client secret, …)
//! is registered with [`register_secret`] at start and replaced wherever it appears; and, as
//! 1.7.0's sanitizer did, `Bearer <token>` and `token=`/`secret=`/`password=`/`api_key=` values
//! are masked whatever they are.

use std::{
    borrow::Cow,
    io::Write,
    sync::{OnceLock, RwLock},
};

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

/// What replaces a secret.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not registered: replacing every "a" would mangle the logs, and
/// such values are not secrets worth the name anyway.
const MIN_SECRET_LEN: usize = 6;

fn secrets() -> &'static RwLock<Vec<String>> {
    static SECRETS: OnceLock<RwLock<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers a value that must never appear in a log line.
pub fn register_secret(secret: &str) {
    if secret.len() < MIN_SECRET_LEN {
        return;
    }
    if let Ok(mut list) = secrets().write()
        && !list.iter().any(|s| s == secret)
    {
        list.push(secret.to_string());
        // Longest first, so that a secret containing another is replaced whole.
        list.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '=')
}

/// Masks registered secrets, bearer tokens and `key=value` credentials in `line`.
pub fn redact(line: &str) -> Cow<'_, str> {
    let mut out = Cow::Borrowed(line);
    if let Ok(list) = secrets().read() {
        for secret in list.iter() {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), REDACTED));
            }
        }
    }
    let lower = out.to_ascii_lowercase();
    let markers: [(&str, usize); 6] = [
        ("bearer ", 1),
        ("api_key", 8),
        ("api-key", 8),
        ("token", 8),
        ("secret", 8),
        ("password", 1),
    ];
    if !markers.iter().any(|(m, _)| lower.contains(m)) {
        return out;
    }
    let text = out.into_owned();
    let mut result = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < text.len() {
        for (marker, min_len) in markers {
            if lower[i..].starts_with(marker) {
                // Skip the separator: spaces after "bearer", or `"`, `:`, `=` and spaces after a key.
                let key_end = i + marker.len();
                let mut j = key_end;
                let rest = &text[key_end..];
                let sep_len = if marker == "bearer " {
                    rest.len() - rest.trim_start_matches(' ').len()
                } else {
                    rest.len() - rest.trim_start_matches(['"', ':', '=', ' ']).len()
                };
                // A key counts only with a real separator (`token=…`, `"token":"…"`), so that
                // prose such as "token rejected" or "POST /token exchange" stays readable.
                if marker != "bearer " && !rest[..sep_len].contains(['=', ':']) {
                    continue;
                }
                j += sep_len;
                let value_len: usize = text[j..]
                    .chars()
                    .take_while(|c| {
                        if marker == "password" {
                            !c.is_whitespace() && *c != '"' && *c != ','
                        } else {
                            is_token_char(*c)
                        }
                    })
                    .map(char::len_utf8)
                    .sum();
                let value = &text[j..j + value_len];
                if value_len >= min_len && value != REDACTED && !value.starts_with("[REDACTED") {
                    result.push_str(&text[i..j]);
                    result.push_str(REDACTED);
                    i = j + value_len;
                    continue 'scan;
                }
            }
        }
        // unwrap: `i < text.len()` and `i` always sits on a char boundary.
        let c = text[i..].chars().next().expect("char at boundary");
        result.push(c);
        i += c.len_utf8();
    }
    Cow::Owned(result)
}

/// A stderr writer that redacts each formatted event before writing it.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

/// One event being formatted; written, redacted, when dropped.
pub struct EventBuffer {
    buf: Vec<u8>,
}

impl Write for EventBuffer {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for EventBuffer {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let clean = redact(&text);
        let mut err = std::io::stderr().lock();
        // A closed stderr must not take the bridge down.
        let _ = err.write_all(clean.as_bytes());
    }
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = EventBuffer;
    fn make_writer(&'a self) -> Self::Writer {
        EventBuffer {
            buf: Vec::with_capacity(256),
        }
    }
}

/// Installs the global subscriber: `info` (or `debug` with `debug`), overridable with
/// `OPENCLAW_MCP_LOG` (an `EnvFilter` directive such as `openclaw_mcp=trace`).
pub fn init(debug: bool) {
    // rmcp logs whole JSON-RPC messages (message bodies) at debug: keep it at info at most.
    let default = if debug {
        "debug,rmcp=info,actix_server=info,actix_http=info,rustls=info,h2=info,mio=info"
    } else {
        "info,rmcp=warn,actix_server=warn"
    };
    let filter = std::env::var("OPENCLAW_MCP_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr)
        .with_ansi(ansi)
        .with_target(false)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_bearer_tokens_and_credentials_like_1_7_0() {
        assert_eq!(
            redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig done"),
            "Authorization: Bearer [REDACTED] done"
        );
        assert_eq!(redact("api_key=abcdefghij1234567890"), "api_key=[REDACTED]");
        assert_eq!(
            redact("secret=mysupersecretvalue123 rest"),
            "secret=[REDACTED] rest"
        );
        assert_eq!(
            redact(r#"{"token":"abcdefgh12345"}"#),
            r#"{"token":"[REDACTED]"}"#
        );
        assert_eq!(redact("password=hunter2"), "password=[REDACTED]");
        // Words that merely contain a marker stay readable.
        assert_eq!(
            redact("token rejected by the gateway"),
            "token rejected by the gateway"
        );
        assert_eq!(redact("POST /token exchange"), "POST /token exchange");
    }

    #[test]
    fn masks_registered_secrets_anywhere() {
        register_secret("s3cr3t-gateway-token");
        assert_eq!(
            redact("failed with s3cr3t-gateway-token inside"),
            "failed with [REDACTED] inside"
        );
        register_secret("abc");
        assert_eq!(redact("abc"), "abc");
    }

    #[test]
    fn keeps_non_ascii_text_intact() {
        assert_eq!(redact("héllo wörld ✓"), "héllo wörld ✓");
        assert_eq!(redact("Bearer ✓"), "Bearer ✓");
    }
}
