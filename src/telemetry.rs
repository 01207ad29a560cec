//! Logging: `tracing` events formatted on **stderr** (stdout carries the protocol in stdio mode),
//! passed through [`redact`] on their way out so that a secret can never reach a log line, even
//! one written by a dependency.
//!
//! Redaction has two parts: every configured secret (gateway tokens, the OAuth client secret, …)
//! is registered with [`register_secret`] at start and replaced wherever it appears; and, as
//! 1.7.0's sanitizer did, `Bearer <token>` and `token=`/`secret=`/`password=`/`api_key=` values
//! are masked whatever they are.
//!
//! Two more guarantees hold for every event, ours and our dependencies' alike:
//!
//! - **One event, one line, no terminal controls.** Field values (the message included) are
//!   written through [`EscapedFields`], which escapes what [`is_unsafe_in_log`] names (CR, LF,
//!   ESC and the other C0 controls, DEL, C1, the Unicode line and paragraph separators and the
//!   bidirectional overrides) the way Rust's `Debug` does (`\r`, `\n`, `\u{1b}`); the writer then
//!   checks the finished line once more, so that only its final newline and, when colours are
//!   on, our own colour codes remain. A client or a gateway cannot forge a log line, hide one, or
//!   drive the operator's terminal.
//! - **A ceiling no filter lifts.** `OPENCLAW_MCP_LOG` chooses the levels, but every target
//!   outside this crate is held at `info` at most ([`dependency_ceiling`]): the MCP SDK (`rmcp`)
//!   logs whole requests and results at `debug`, and the HTTP, TLS and WebSocket crates log
//!   headers and frames at `debug` and `trace`. The ceiling is a second filter beside the user's,
//!   not a directive inside it, so no directive (a more specific target, a span filter) can
//!   undo it.

use std::{
    borrow::Cow,
    fmt::{self, Write as _},
    io::Write,
    sync::{OnceLock, RwLock},
};

use tracing::{
    Subscriber,
    field::{Field, Visit},
};
use tracing_subscriber::{
    EnvFilter,
    field::RecordFields,
    filter::{LevelFilter, Targets},
    fmt::{FormatFields, MakeWriter, format::Writer},
    layer::SubscriberExt,
    util::SubscriberInitExt,
};

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

/// Whether `c` must not appear raw in a log line: the C0 controls (TAB, LF, CR and ESC among
/// them), DEL and the C1 controls, which end lines or drive terminals; the Unicode line and
/// paragraph separators, on which some viewers break lines; and the bidirectional controls, which
/// make a viewer show text in another order than it was written ("Trojan Source").
pub fn is_unsafe_in_log(c: char) -> bool {
    matches!(
        c,
        '\u{00}'..='\u{1F}'
            | '\u{7F}'..='\u{9F}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
    )
}

/// Writes `c` as Rust's `Debug` escapes it: `\t`, `\n`, `\r`, `\0`, else `\u{…}`.
fn write_escaped(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\t' => out.write_str("\\t"),
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\0' => out.write_str("\\0"),
        other => write!(out, "\\u{{{:x}}}", other as u32),
    }
}

/// `text` with every character for which `unsafe_char` holds escaped as [`write_escaped`] does;
/// borrowed when there is none.
pub fn escape_where(text: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    let Some(first) = text.find(&unsafe_char) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if unsafe_char(c) {
            // Writing to a `String` cannot fail.
            let _ = write_escaped(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `text` made safe for one log line: everything [`is_unsafe_in_log`] names is escaped.
pub fn escape_for_log(text: &str) -> Cow<'_, str> {
    escape_where(text, is_unsafe_in_log)
}

/// A `fmt::Write` that escapes, on their way through, the characters a log line must not hold.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = rest.find(is_unsafe_in_log) {
            self.0.write_str(&rest[..at])?;
            // unwrap: `find` returned the index of a character of `rest`.
            let c = rest[at..].chars().next().expect("char at index");
            write_escaped(self.0, c)?;
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

/// Formats the fields of events and spans as `tracing-subscriber`'s default does (the message,
/// then `name=value` pairs, `%` fields with `Display` and the others with `Debug`), except that
/// every value goes through [`Escaping`]: whatever a field holds, it stays on its line.
#[derive(Debug, Clone, Copy, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes fields for [`EscapedFields`].
struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    /// Nothing written yet: no separating space.
    empty: bool,
    /// The first write error, after which nothing more is written.
    result: fmt::Result,
}

/// ANSI italic on and reset, as the default formatter marks field names with colours on.
const ITALIC: (&str, &str) = ("\x1b[3m", "\x1b[0m");
/// ANSI dimmed on and reset, as the default formatter marks the `=` with colours on.
const DIMMED: (&str, &str) = ("\x1b[2m", "\x1b[0m");

impl EscapingVisitor<'_> {
    fn write_field(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        if self.empty {
            self.empty = false;
        } else {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            // Field names are identifiers from the source code, never input.
            let name = name.strip_prefix("r#").unwrap_or(name);
            if self.writer.has_ansi_escapes() {
                write!(
                    self.writer,
                    "{}{name}{}{}={}",
                    ITALIC.0, ITALIC.1, DIMMED.0, DIMMED.1
                )?;
            } else {
                write!(self.writer, "{name}=")?;
            }
        }
        write!(Escaping(&mut self.writer), "{value:?}")
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // The message reads as text; other strings are quoted, as the default formatter does.
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.record_debug(field, &format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_ok() {
            self.result = self.write_field(field.name(), value);
        }
    }
}

/// The last check of a finished line: everything [`is_unsafe_in_log`] names is escaped, except
/// the line's final newline and, when `ansi` is on, the SGR colour sequences (`ESC [ digits ; m`)
/// of our own formatter (a hostile one cannot be among them: fields are escaped before).
pub fn escape_line(line: &str, ansi: bool) -> Cow<'_, str> {
    let body = line.strip_suffix('\n').unwrap_or(line);
    let newline = if body.len() < line.len() { "\n" } else { "" };
    if !body.contains(is_unsafe_in_log) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    let mut rest = body;
    while let Some(at) = rest.find(is_unsafe_in_log) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let sgr = if ansi && tail.starts_with("\x1b[") {
            let params = tail[2..]
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b';')
                .count();
            (tail.as_bytes().get(2 + params) == Some(&b'm')).then_some(2 + params + 1)
        } else {
            None
        };
        if let Some(len) = sgr {
            out.push_str(&tail[..len]);
            rest = &tail[len..];
        } else {
            // unwrap: `find` returned the index of a character of `rest`.
            let c = tail.chars().next().expect("char at index");
            let _ = write_escaped(&mut out, c);
            rest = &tail[c.len_utf8()..];
        }
    }
    out.push_str(rest);
    out.push_str(newline);
    Cow::Owned(out)
}

/// Redacts and escapes one formatted event (see [`redact`] and [`escape_line`]).
pub fn clean_event(event: &[u8], ansi: bool) -> String {
    let text = String::from_utf8_lossy(event);
    escape_line(&redact(&text), ansi).into_owned()
}

/// A stderr writer that redacts and escapes each formatted event before writing it.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr {
    /// Whether the formatter colours the lines (then our own colour codes are let through).
    ansi: bool,
}

/// One event being formatted; written, cleaned, when dropped.
pub struct EventBuffer {
    buf: Vec<u8>,
    ansi: bool,
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
        let clean = clean_event(&self.buf, self.ansi);
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
            ansi: self.ansi,
        }
    }
}

/// This crate's target: the only one allowed below `info`.
const OWN_TARGET: &str = "openclaw_mcp";

/// The most any dependency may log, whatever `OPENCLAW_MCP_LOG` says: `info`. What lies below
/// carries what must never reach a log line: `rmcp` logs whole JSON-RPC requests and results
/// (prompts, answers) at `debug`; `h2`, `actix_http`, `awc`, `hyper`, `reqwest`, `rustls` and the
/// `tungstenite` crates log frames, headers (`Authorization`) and handshakes at `debug`/`trace`.
/// Rather than a list of those (which a new dependency would silently escape), every target but
/// this crate's is capped. `rmcp_actix_web` is held at `warn`: its legacy transport (a feature we
/// do not build) logs whole messages at `info`.
pub fn dependency_ceiling() -> Targets {
    Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("rmcp_actix_web", LevelFilter::WARN)
        .with_target(OWN_TARGET, LevelFilter::TRACE)
}

/// The user's filter: `OPENCLAW_MCP_LOG` when it parses, else `info` (or `debug` with `debug`),
/// with the chattiest dependencies quieter.
pub fn user_filter(debug: bool, directives: Option<&str>) -> EnvFilter {
    let default = if debug {
        "debug,rmcp=info,actix_server=info,actix_http=info,rustls=info,h2=info,mio=info"
    } else {
        "info,rmcp=warn,actix_server=warn"
    };
    directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(default))
}

/// The subscriber [`init`] installs, writing to `writer`: the user's filter, the
/// [`dependency_ceiling`] beside it, and escaped fields.
pub fn subscriber<W>(filter: EnvFilter, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(filter)
        .with(dependency_ceiling())
        .with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(EscapedFields)
                .with_writer(writer)
                .with_ansi(ansi)
                .with_target(false),
        )
}

/// Installs the global subscriber: `info` (or `debug` with `debug`), overridable with
/// `OPENCLAW_MCP_LOG` (an `EnvFilter` directive such as `openclaw_mcp=trace`) within the
/// [`dependency_ceiling`].
pub fn init(debug: bool) {
    let directives = std::env::var("OPENCLAW_MCP_LOG").ok();
    let filter = user_filter(debug, directives.as_deref());
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = subscriber(filter, RedactingStderr { ansi }, ansi).try_init();
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

    /// Events written through the real formatting path into a buffer instead of stderr.
    #[derive(Clone, Default)]
    struct Capture {
        out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
        ansi: bool,
    }

    struct CaptureEvent {
        buf: Vec<u8>,
        sink: Capture,
    }

    impl Write for CaptureEvent {
        fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
            self.buf.extend_from_slice(data);
            Ok(data.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Drop for CaptureEvent {
        fn drop(&mut self) {
            let clean = clean_event(&self.buf, self.sink.ansi);
            self.sink
                .out
                .lock()
                .unwrap()
                .extend_from_slice(clean.as_bytes());
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = CaptureEvent;
        fn make_writer(&'a self) -> CaptureEvent {
            CaptureEvent {
                buf: Vec::new(),
                sink: self.clone(),
            }
        }
    }

    /// What `events` log through [`subscriber`] with `directives` as `OPENCLAW_MCP_LOG`.
    fn logged(directives: &str, ansi: bool, events: impl FnOnce()) -> String {
        let capture = Capture {
            ansi,
            ..Capture::default()
        };
        let filter = user_filter(false, Some(directives));
        tracing::subscriber::with_default(subscriber(filter, capture.clone(), ansi), events);
        String::from_utf8(capture.out.lock().unwrap().clone()).unwrap()
    }

    const HOSTILE: &str = "a\r\nforged\u{1b}[31mred\u{7}\u{7f}\u{85}\u{9b}\u{2028}\u{202e}z";

    #[test]
    fn every_field_is_escaped_and_each_event_is_one_line() {
        #[derive(Debug)]
        struct Shown;
        impl std::fmt::Display for Shown {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(HOSTILE)
            }
        }
        let err = std::io::Error::other(HOSTILE);
        let out = logged("trace", false, || {
            let span = tracing::info_span!("request", id = %Shown);
            let _entered = span.enter();
            tracing::info!(
                display = %Shown,
                debug = ?Shown,
                text = HOSTILE,
                error = &err as &(dyn std::error::Error + 'static),
                "message {}",
                Shown
            );
            tracing::warn!("{HOSTILE}");
        });
        assert_eq!(out.matches('\n').count(), 2, "{out}");
        assert!(
            !out.chars().any(|c| c != '\n' && is_unsafe_in_log(c)),
            "{out:?}"
        );
        let escaped = r"a\r\nforged\u{1b}[31mred\u{7}\u{7f}\u{85}\u{9b}\u{2028}\u{202e}z";
        let first = out.lines().next().unwrap();
        for part in [
            format!("request{{id={escaped}}}:"),
            format!("message {escaped}"),
            format!("display={escaped}"),
            "debug=Shown".to_string(),
            // A `&str` field is quoted and escaped by `Debug` already; the same characters.
            r#"text="a\r\nforged\u{1b}[31mred\u{7}\u{7f}\u{85}\u{9b}\u{2028}\u{202e}z""#
                .to_string(),
            format!("error={escaped}"),
        ] {
            assert!(first.contains(&part), "{part} not in {first}");
        }
        assert!(out.lines().nth(1).unwrap().ends_with(escaped));
    }

    #[test]
    fn with_colours_on_only_our_own_colour_codes_remain() {
        let out = logged("info", true, || {
            tracing::error!(name = %HOSTILE, "{HOSTILE}");
        });
        assert!(out.contains('\u{1b}'), "colours are on: {out:?}");
        assert!(!out.contains("\u{1b}[31mred"), "{out:?}");
        assert!(out.contains(r"forged\u{1b}[31mred"));
        // Every ESC left starts an SGR sequence.
        for (at, _) in out.match_indices('\u{1b}') {
            let tail = &out[at + 1..];
            let params = tail[1..]
                .bytes()
                .take_while(|b| b.is_ascii_digit() || *b == b';')
                .count();
            assert!(tail.starts_with('[') && tail.as_bytes()[1 + params] == b'm');
        }
        assert_eq!(out.matches('\n').count(), 1);
    }

    #[test]
    fn the_last_check_keeps_the_final_newline_and_our_colours_only() {
        assert_eq!(escape_line("plain line\n", false), "plain line\n");
        assert_eq!(escape_line("a\nb\r\n", false), "a\\nb\\r\n");
        assert_eq!(escape_line("no newline\u{1b}", false), "no newline\\u{1b}");
        assert_eq!(
            escape_line("\u{1b}[1mbold\u{1b}[0m \u{1b}]0;title\u{7}\n", true),
            "\u{1b}[1mbold\u{1b}[0m \\u{1b}]0;title\\u{7}\n"
        );
        assert_eq!(
            escape_line("\u{1b}[1mbold\u{1b}[0m\n", false),
            "\\u{1b}[1mbold\\u{1b}[0m\n"
        );
        assert_eq!(escape_for_log("tab\there"), "tab\\there");
        assert!(matches!(escape_for_log("héllo ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn redaction_still_applies_to_the_finished_line() {
        register_secret("registered-secret-in-a-field");
        let out = logged("info", false, || {
            tracing::info!(
                value = %"registered-secret-in-a-field",
                header = %"Bearer abcdefghijklmnop\r\nnext",
                "done"
            );
        });
        assert!(!out.contains("registered-secret-in-a-field"), "{out}");
        assert!(!out.contains("abcdefghijklmnop"), "{out}");
        assert!(out.contains(r"header=Bearer [REDACTED]\r\nnext"), "{out}");
    }

    #[test]
    fn no_directive_lifts_the_ceiling_on_dependencies() {
        for directives in [
            "trace",
            "trace,rmcp=trace,rmcp::service=trace",
            "rmcp::service[serve_inner]=trace,h2=trace,awc=trace",
            "[serve_inner]=trace",
            "[{id}]=trace,trace",
        ] {
            let out = logged(directives, false, || {
                let span = tracing::info_span!(target: "rmcp::service", "serve_inner", id = 1);
                let _entered = span.enter();
                tracing::debug!(target: "rmcp::service", "BODY received request");
                tracing::trace!(target: "h2::codec", "BODY frame");
                tracing::debug!(target: "awc", "BODY header");
                tracing::debug!(target: "tokio_tungstenite", "BODY message");
                tracing::debug!(target: "some_new_dependency", "BODY whatever");
                tracing::info!(target: "rmcp_actix_web::transport", "BODY message");
                tracing::info!(target: "rmcp::service", "kept: client initialized");
                tracing::trace!(target: "openclaw_mcp::gateway", "kept: our own trace");
            });
            assert!(!out.contains("BODY"), "{directives}: {out}");
            if directives.contains("trace,") || directives == "trace" {
                assert!(
                    out.contains("kept: client initialized"),
                    "{directives}: {out}"
                );
                assert!(out.contains("kept: our own trace"), "{directives}: {out}");
            }
        }
    }

    #[test]
    fn keeps_non_ascii_text_intact() {
        assert_eq!(redact("héllo wörld ✓"), "héllo wörld ✓");
        assert_eq!(redact("Bearer ✓"), "Bearer ✓");
    }
}
