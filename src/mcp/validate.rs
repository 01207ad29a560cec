//! Tool-argument validation with the exact rules and messages of openclaw-mcp 1.7.0
//! (`src/utils/validation.ts`): strings are checked for type, then **trimmed** (JavaScript's
//! `trim`), then for emptiness, then for length in UTF-16 code units, then for control characters
//! (TAB, LF and CR allowed; other C0, DEL and C1 rejected). The trimmed value is what is used.
//!
//! One rule is stricter than 1.7.0's: id-like fields (`session_id`, `instance`, `task_id`,
//! `session_key`) and `agent` refuse TAB, LF and CR too, and the Unicode line and paragraph
//! separators, with the same message (`session_id contains invalid control characters`).
//! `session_id` and `agent` become HTTP headers to the gateway (`x-openclaw-session-key`,
//! `x-openclaw-agent-id`), where a line break would either split the header (header injection)
//! or make the request fail far from its cause; and ids are quoted in log lines. An id is one
//! line by nature: no real one holds such a character. Messages keep 1.7.0's rule.

use serde_json::{Map, Value};

/// 1.7.0's `MAX_MESSAGE_LENGTH`.
pub const MAX_MESSAGE_LENGTH: usize = 100_000;
/// 1.7.0's `MAX_ID_LENGTH` (session ids, instance names, task ids).
pub const MAX_ID_LENGTH: usize = 256;

/// The five task states, in 1.7.0's order.
pub const TASK_STATUSES: [&str; 5] = ["pending", "running", "completed", "failed", "cancelled"];

/// An argument that breaks a rule; the text is the user-facing message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValidationError(pub String);

fn fail<T>(msg: impl Into<String>) -> Result<T, ValidationError> {
    Err(ValidationError(msg.into()))
}

/// `validateInputIsObject`: the arguments must be an object.
pub fn object(args: Option<&Map<String, Value>>) -> Result<&Map<String, Value>, ValidationError> {
    match args {
        Some(map) => Ok(map),
        None => fail("Invalid input: expected an object"),
    }
}

/// Characters JavaScript's `String.prototype.trim` removes (WhiteSpace and LineTerminator).
fn is_js_whitespace(c: char) -> bool {
    matches!(
        c,
        '\u{0009}'
            | '\u{000A}'
            | '\u{000B}'
            | '\u{000C}'
            | '\u{000D}'
            | '\u{0020}'
            | '\u{00A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202F}'
                | '\u{205F}'
                | '\u{3000}'
                | '\u{FEFF}'
    )
}

/// 1.7.0's `CONTROL_CHAR_RE`: `[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F]`.
fn is_rejected_control(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{08}' | '\u{0B}' | '\u{0C}' | '\u{0E}'..='\u{1F}' | '\u{7F}'..='\u{9F}')
}

/// What an id-like value must not hold besides [`is_rejected_control`]: TAB, LF, CR (HTTP
/// header and log-line breakers) and the Unicode line and paragraph separators.
fn is_rejected_in_id(c: char) -> bool {
    is_rejected_control(c) || matches!(c, '\t' | '\n' | '\r' | '\u{2028}' | '\u{2029}')
}

/// [`string`] for a one-line value: also refuses what [`is_rejected_in_id`] names, with 1.7.0's
/// control-character message.
fn one_line(value: Option<&Value>, field: &str, max: usize) -> Result<String, ValidationError> {
    let value = string(value, field, max)?;
    if value.chars().any(is_rejected_in_id) {
        return fail(format!("{field} contains invalid control characters"));
    }
    Ok(value)
}

/// `validateString(value, field, max)`: returns the trimmed value.
pub fn string(value: Option<&Value>, field: &str, max: usize) -> Result<String, ValidationError> {
    let Some(Value::String(raw)) = value else {
        return fail(format!("{field} must be a string"));
    };
    let trimmed = raw.trim_matches(is_js_whitespace);
    if trimmed.is_empty() {
        return fail(format!("{field} must not be empty"));
    }
    // JavaScript measures length in UTF-16 code units; so does 1.7.0's limit.
    if trimmed.len() > max && trimmed.encode_utf16().count() > max {
        return fail(format!(
            "{field} exceeds maximum length of {max} characters"
        ));
    }
    if trimmed.chars().any(is_rejected_control) {
        return fail(format!("{field} contains invalid control characters"));
    }
    Ok(trimmed.to_string())
}

/// A field validated only when present (`!== undefined`): `null` is present and fails the type
/// check, as in 1.7.0.
pub fn optional_string(
    args: &Map<String, Value>,
    field: &str,
    max: usize,
) -> Result<Option<String>, ValidationError> {
    match args.get(field) {
        None => Ok(None),
        Some(v) => string(Some(v), field, max).map(Some),
    }
}

/// The message of a chat tool.
pub fn message(args: &Map<String, Value>) -> Result<String, ValidationError> {
    string(args.get("message"), "message", MAX_MESSAGE_LENGTH)
}

/// With `gateway_commands = refuse`, a message that starts with `/` (a gateway command such as
/// `/new` or `/status`) is refused before anything is sent, on both APIs.
pub fn gateway_command(message: &str, refuse: bool) -> Result<(), ValidationError> {
    if refuse && message.trim_start().starts_with('/') {
        return Err(ValidationError(
            "messages starting with \"/\" are gateway commands, which this bridge is set to refuse (gateway_commands = refuse)".to_string(),
        ));
    }
    Ok(())
}

/// An id-like optional field (`session_id`, `instance`): 1.7.0's rule, on one line (see the
/// module docs).
pub fn optional_id(
    args: &Map<String, Value>,
    field: &str,
) -> Result<Option<String>, ValidationError> {
    match args.get(field) {
        None => Ok(None),
        Some(v) => one_line(Some(v), field, MAX_ID_LENGTH).map(Some),
    }
}

/// The session namespaces the gateway keeps for its own runs (sub-agents, cron jobs, ACP
/// harnesses). Its HTTP API refuses them in `x-openclaw-session-key` (400); its WebSocket accepts
/// them (as `agent:<id>:subagent:…`), so a caller could write into sessions it cannot reach over
/// HTTP. The bridge refuses them itself, before sending anything, whatever the instance's `api`.
const RESERVED_SESSION_NAMESPACES: [&str; 3] = ["subagent:", "cron:", "acp:"];

/// The `session_id` of a chat (`openclaw_chat`, `openclaw_chat_async`): an id ([`optional_id`])
/// outside the gateway's reserved namespaces, bare (`cron:x`) or under an agent
/// (`agent:main:cron:x`), in any case.
pub fn chat_session_id(args: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    let id = optional_id(args, "session_id")?;
    if let Some(id) = &id
        && is_reserved_session(id)
    {
        return fail(
            "session_id cannot use the gateway's reserved internal session namespaces (subagent:, cron:, acp:)",
        );
    }
    Ok(id)
}

fn is_reserved_session(id: &str) -> bool {
    let key = id.to_ascii_lowercase();
    let under_agent = key
        .strip_prefix("agent:")
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, rest)| rest);
    RESERVED_SESSION_NAMESPACES
        .iter()
        .any(|ns| key.starts_with(ns) || under_agent.is_some_and(|rest| rest.starts_with(ns)))
}

/// A required id-like field (`task_id`), on one line.
pub fn id(args: &Map<String, Value>, field: &str) -> Result<String, ValidationError> {
    one_line(args.get(field), field, MAX_ID_LENGTH)
}

/// 1.7.0's priority rule: absent means 0; otherwise a number that is an integer (`3.0` counts,
/// `1.5` and `"3"` do not). Beyond JavaScript's safe-integer range it is rejected too.
pub fn priority(args: &Map<String, Value>) -> Result<i64, ValidationError> {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    match args.get("priority") {
        None => Ok(0),
        Some(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                if (i as f64).abs() <= MAX_SAFE {
                    return Ok(i);
                }
            } else if let Some(f) = n.as_f64()
                && f.is_finite()
                && f.fract() == 0.0
                && f.abs() <= MAX_SAFE
            {
                return Ok(f as i64);
            }
            fail("priority must be an integer")
        }
        Some(_) => fail("priority must be an integer"),
    }
}

/// The `status` filter of `openclaw_task_list`.
pub fn status_filter(args: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    match args.get("status") {
        None => Ok(None),
        Some(Value::String(s)) if TASK_STATUSES.contains(&s.as_str()) => Ok(Some(s.clone())),
        Some(_) => fail(format!(
            "status must be one of: {}",
            TASK_STATUSES.join(", ")
        )),
    }
}

/// Most images in one message.
pub const MAX_IMAGES: usize = 8;
/// Largest image, decoded.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// Largest sum of the images of one message, decoded (the gateway takes 20 MB bodies; base64
/// adds a third).
pub const MAX_IMAGES_TOTAL_BYTES: usize = 10 * 1024 * 1024;
/// Image types the gateway's models take.
const IMAGE_TYPES: [&str; 4] = ["image/png", "image/jpeg", "image/webp", "image/gif"];

/// The optional `agent`: a gateway agent id (`[a-z0-9][a-z0-9_-]{0,63}`).
pub fn agent(args: &Map<String, Value>) -> Result<Option<String>, ValidationError> {
    let Some(value) = args.get("agent") else {
        return Ok(None);
    };
    // Control characters first, with their own message; then the id rule.
    let agent = one_line(Some(value), "agent", 64)?;
    if crate::config::is_agent_id(&agent) {
        Ok(Some(agent))
    } else {
        fail(
            "agent must be an agent id: 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit",
        )
    }
}

/// The optional boolean `field`.
pub fn flag(args: &Map<String, Value>, field: &str) -> Result<bool, ValidationError> {
    match args.get(field) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => fail(format!("{field} must be true or false")),
    }
}

fn sniff(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// The optional `images`: data URIs (`data:image/png;base64,…`) or `{"data": <base64>,
/// "mimeType": "image/png"}` objects; PNG, JPEG, WebP or GIF whose bytes match the declared
/// type, within the count and size limits. Returns normalized data URIs.
pub fn images(args: &Map<String, Value>) -> Result<Vec<String>, ValidationError> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let items = match args.get("images") {
        None => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return fail("images must be an array of data URIs or {data, mimeType} objects"),
    };
    if items.len() > MAX_IMAGES {
        return fail(format!("images may hold at most {MAX_IMAGES} images"));
    }
    let mut total = 0usize;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let (mime, data) = match item {
            Value::String(uri) => {
                let Some((head, data)) = uri
                    .strip_prefix("data:")
                    .and_then(|rest| rest.split_once(','))
                else {
                    return fail(format!(
                        "images[{i}] must be a data URI (data:image/png;base64,…) or a {{data, mimeType}} object"
                    ));
                };
                let Some(mime) = head.strip_suffix(";base64") else {
                    return fail(format!(
                        "images[{i}] must be base64-encoded (data:<type>;base64,…)"
                    ));
                };
                (mime.to_ascii_lowercase(), data)
            }
            Value::Object(obj) => {
                let mime = obj
                    .get("mimeType")
                    .or_else(|| obj.get("mime_type"))
                    .and_then(Value::as_str);
                let data = obj.get("data").and_then(Value::as_str);
                match (mime, data) {
                    (Some(m), Some(d)) => (m.to_ascii_lowercase(), d),
                    _ => {
                        return fail(format!(
                            "images[{i}] needs \"data\" (base64) and \"mimeType\""
                        ));
                    }
                }
            }
            _ => {
                return fail(format!(
                    "images[{i}] must be a data URI or a {{data, mimeType}} object"
                ));
            }
        };
        if !IMAGE_TYPES.contains(&mime.as_str()) {
            return fail(format!(
                "images[{i}] is {mime}; send PNG, JPEG, WebP or GIF images"
            ));
        }
        // Base64 is 4/3 of the bytes: refuse an oversized one before decoding it.
        if data.len() / 4 * 3 > MAX_IMAGE_BYTES + 3 {
            return fail(format!(
                "images[{i}] is larger than {} MiB",
                MAX_IMAGE_BYTES / (1024 * 1024)
            ));
        }
        let cleaned: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let Ok(bytes) = STANDARD.decode(cleaned.as_bytes()) else {
            return fail(format!("images[{i}] is not valid base64"));
        };
        if bytes.len() > MAX_IMAGE_BYTES {
            return fail(format!(
                "images[{i}] is larger than {} MiB",
                MAX_IMAGE_BYTES / (1024 * 1024)
            ));
        }
        match sniff(&bytes) {
            Some(found) if found == mime => {}
            Some(found) => {
                return fail(format!("images[{i}] says {mime} but holds {found} data"));
            }
            None => return fail(format!("images[{i}] is not a {mime} image")),
        }
        total += bytes.len();
        if total > MAX_IMAGES_TOTAL_BYTES {
            return fail(format!(
                "the images add up to more than {} MiB",
                MAX_IMAGES_TOTAL_BYTES / (1024 * 1024)
            ));
        }
        out.push(format!("data:{mime};base64,{}", STANDARD.encode(&bytes)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn strings_follow_1_7_0_order_and_messages() {
        assert_eq!(
            message(&args(json!({}))).unwrap_err().0,
            "message must be a string"
        );
        assert_eq!(
            message(&args(json!({"message": null}))).unwrap_err().0,
            "message must be a string"
        );
        assert_eq!(
            message(&args(json!({"message": 5}))).unwrap_err().0,
            "message must be a string"
        );
        assert_eq!(
            message(&args(json!({"message": " \n\t "}))).unwrap_err().0,
            "message must not be empty"
        );
        assert_eq!(message(&args(json!({"message": "  hi  "}))).unwrap(), "hi");
        assert_eq!(
            message(&args(json!({"message": "a\u{0B}b"})))
                .unwrap_err()
                .0,
            "message contains invalid control characters"
        );
        assert_eq!(
            message(&args(json!({"message": "a\u{85}b"})))
                .unwrap_err()
                .0,
            "message contains invalid control characters"
        );
        assert_eq!(
            message(&args(json!({"message": "tab\there\r\nok"}))).unwrap(),
            "tab\there\r\nok"
        );
    }

    #[test]
    fn length_is_counted_in_utf16_after_trimming() {
        let exact = "x".repeat(MAX_MESSAGE_LENGTH);
        assert!(message(&args(json!({"message": exact}))).is_ok());
        let padded = format!("   {exact}   ");
        assert!(message(&args(json!({"message": padded}))).is_ok());
        let over = "x".repeat(MAX_MESSAGE_LENGTH + 1);
        assert_eq!(
            message(&args(json!({"message": over}))).unwrap_err().0,
            "message exceeds maximum length of 100000 characters"
        );
        // An emoji is two UTF-16 code units.
        let emoji = "😀".repeat(MAX_MESSAGE_LENGTH / 2 + 1);
        assert!(message(&args(json!({"message": emoji}))).is_err());
        assert_eq!(
            optional_id(&args(json!({"session_id": "s".repeat(257)})), "session_id")
                .unwrap_err()
                .0,
            "session_id exceeds maximum length of 256 characters"
        );
    }

    #[test]
    fn js_trim_removes_bom_and_nbsp_but_not_nel() {
        assert_eq!(
            message(&args(json!({"message": "\u{FEFF}\u{A0}hi\u{3000}"}))).unwrap(),
            "hi"
        );
        assert!(message(&args(json!({"message": "\u{85}hi"}))).is_err());
    }

    #[test]
    fn priority_must_be_an_integer() {
        assert_eq!(priority(&args(json!({}))).unwrap(), 0);
        assert_eq!(priority(&args(json!({"priority": -7}))).unwrap(), -7);
        assert_eq!(priority(&args(json!({"priority": 3.0}))).unwrap(), 3);
        for bad in [json!(1.5), json!("3"), json!(null), json!(1e300)] {
            assert_eq!(
                priority(&args(json!({"priority": bad}))).unwrap_err().0,
                "priority must be an integer"
            );
        }
    }

    /// The smallest valid PNG: a 1×1 transparent pixel.
    const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

    #[test]
    fn images_are_checked_for_type_content_size_and_count() {
        let uri = format!("data:image/png;base64,{PNG_1X1}");
        assert_eq!(
            images(&args(json!({"images": [uri.clone()]}))).unwrap(),
            vec![uri.clone()]
        );
        let obj = images(&args(
            json!({"images": [{"data": PNG_1X1, "mimeType": "image/png"}]}),
        ))
        .unwrap();
        assert_eq!(obj, vec![uri.clone()]);
        let cases = [
            (json!("nope"), "images must be an array"),
            (json!([1]), "images[0] must be a data URI"),
            (json!(["http://x/y.png"]), "images[0] must be a data URI"),
            (
                json!([format!("data:image/bmp;base64,{PNG_1X1}")]),
                "images[0] is image/bmp; send PNG, JPEG, WebP or GIF images",
            ),
            (
                json!([format!("data:image/jpeg;base64,{PNG_1X1}")]),
                "images[0] says image/jpeg but holds image/png data",
            ),
            (
                json!(["data:image/png;base64,aGVsbG8gd29ybGQ="]),
                "images[0] is not a image/png image",
            ),
            (
                json!(["data:image/png;base64,%%%"]),
                "images[0] is not valid base64",
            ),
            (
                json!([{"data": PNG_1X1}]),
                "images[0] needs \"data\" (base64) and \"mimeType\"",
            ),
        ];
        for (value, expected) in cases {
            let e = images(&args(json!({"images": value}))).unwrap_err().0;
            assert!(e.starts_with(expected), "{e}");
        }
        let many = vec![uri.clone(); MAX_IMAGES + 1];
        assert_eq!(
            images(&args(json!({"images": many}))).unwrap_err().0,
            "images may hold at most 8 images"
        );
        let huge = format!("data:image/png;base64,{}", "A".repeat(8 * 1024 * 1024));
        assert!(
            images(&args(json!({"images": [huge]})))
                .unwrap_err()
                .0
                .contains("larger than 5 MiB")
        );
    }

    #[test]
    fn agents_follow_the_gateway_rule() {
        assert_eq!(
            agent(&args(json!({"agent": " ops "}))).unwrap().as_deref(),
            Some("ops")
        );
        assert!(agent(&args(json!({"agent": "Ops Team"}))).is_err());
        assert_eq!(agent(&args(json!({}))).unwrap(), None);
        assert_eq!(
            flag(&args(json!({"new_session": "yes"})), "new_session")
                .unwrap_err()
                .0,
            "new_session must be true or false"
        );
    }

    #[test]
    fn ids_and_agents_are_one_line() {
        for bad in [
            "a\nb",
            "a\rb",
            "a\r\nx-evil: 1",
            "a\tb",
            "a\u{0}b",
            "a\u{1b}[31mb",
            "a\u{7f}b",
            "a\u{85}b",
            "a\u{2028}b",
            "a\u{2029}b",
        ] {
            for field in ["session_id", "instance", "session_key"] {
                assert_eq!(
                    optional_id(&args(json!({field: bad})), field)
                        .unwrap_err()
                        .0,
                    format!("{field} contains invalid control characters"),
                    "{field}={bad:?}"
                );
            }
            assert_eq!(
                id(&args(json!({"task_id": bad})), "task_id").unwrap_err().0,
                "task_id contains invalid control characters"
            );
            assert_eq!(
                agent(&args(json!({"agent": bad}))).unwrap_err().0,
                "agent contains invalid control characters",
                "agent={bad:?}"
            );
        }
        // Around the value they are trimmed, as 1.7.0 trims: what is used has none.
        assert_eq!(
            optional_id(
                &args(json!({"session_id": "\r\n sess-1\u{2028}\t"})),
                "session_id"
            )
            .unwrap()
            .as_deref(),
            Some("sess-1")
        );
        assert_eq!(
            optional_id(&args(json!({"session_id": "sess é ✓"})), "session_id")
                .unwrap()
                .as_deref(),
            Some("sess é ✓")
        );
        assert_eq!(
            agent(&args(json!({"agent": "ops\n"}))).unwrap().as_deref(),
            Some("ops")
        );
        // Messages keep 1.7.0's rule.
        assert!(message(&args(json!({"message": "a\r\nb\tc"}))).is_ok());
    }

    #[test]
    fn reserved_session_namespaces_are_refused_in_any_spelling() {
        let refused = "session_id cannot use the gateway's reserved internal session namespaces (subagent:, cron:, acp:)";
        for id in [
            "subagent:x",
            "cron:nightly",
            "acp:h",
            " CRON:x ",
            "Acp:",
            "agent:main:subagent:x",
            "agent:ops:cron:job",
            "AGENT:main:ACP:y",
        ] {
            assert_eq!(
                chat_session_id(&args(json!({"session_id": id}))),
                Err(ValidationError(refused.to_string())),
                "{id}"
            );
        }
        for id in [
            "sess-1",
            "my-cron:x",
            "agent:main:sess",
            "agent:main",
            "subagent",
            "mcp-1f2e",
        ] {
            assert_eq!(
                chat_session_id(&args(json!({"session_id": id}))),
                Ok(Some(id.to_string())),
                "{id}"
            );
        }
        assert_eq!(chat_session_id(&args(json!({}))), Ok(None));
    }

    #[test]
    fn status_filter_accepts_only_the_five_states() {
        assert_eq!(
            status_filter(&args(json!({"status": "running"})))
                .unwrap()
                .as_deref(),
            Some("running")
        );
        assert_eq!(
            status_filter(&args(json!({"status": "done"})))
                .unwrap_err()
                .0,
            "status must be one of: pending, running, completed, failed, cancelled"
        );
    }
}
