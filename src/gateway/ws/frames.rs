//! The frames of OpenClaw's gateway protocol v4 (`reference/openclaw-ws.md` §2–§3): the request
//! envelope the bridge sends (closed objects: only known fields are serialised), the responses
//! and events it reads (loosely: the gateway adds fields), the `connect` parameters, what
//! `hello-ok` grants, and how an error frame becomes a [`WsError`].

use std::{borrow::Cow, time::Duration};

use serde::Deserialize;
use serde_json::{Map, Value, json, value::RawValue};

use super::error::WsError;
use crate::gateway::error::gateway_text;

/// The only protocol version an operator may speak to 2026.9.6 (v3 is refused).
pub const PROTOCOL_VERSION: u32 = 4;
/// `client.id`: a closed enum on the gateway; `gateway-client` in `backend` mode keeps its scopes
/// on loopback without a device (§4.2).
pub const CLIENT_ID: &str = "gateway-client";
/// `client.mode` (closed enum).
pub const CLIENT_MODE: &str = "backend";
/// The bridge connects as an operator.
pub const ROLE: &str = "operator";
/// The scopes asked for: read and write run turns and read sessions; admin lets the bridge abort
/// its runs after a reconnect and send a literal `/` message (§4.5).
pub const SCOPES: [&str; 3] = ["operator.read", "operator.write", "operator.admin"];
/// Without these the bridge cannot work at all.
pub const REQUIRED_SCOPES: [&str; 2] = ["operator.read", "operator.write"];
/// The scope that abort-after-reconnect and literal slash messages need.
pub const ADMIN_SCOPE: &str = "operator.admin";
/// Largest frame the gateway takes before `hello-ok` (it closes with 1009 past it).
pub const MAX_PREAUTH_FRAME: usize = 64 * 1024;
/// `policy.maxPayload` of 2026.9.6, used until `hello-ok` says otherwise.
pub const DEFAULT_MAX_PAYLOAD: usize = 25 * 1024 * 1024;
/// The gateway's tick interval when `hello-ok` does not say.
pub const DEFAULT_TICK: Duration = Duration::from_secs(30);

/// One frame the gateway sent, read loosely.
#[derive(Debug, Clone, Deserialize)]
pub struct Incoming {
    /// `res` or `event`.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Of a `res`: the request's id.
    #[serde(default)]
    pub id: Option<String>,
    /// Of a `res`: success.
    #[serde(default)]
    pub ok: Option<bool>,
    /// Of a `res` or an `event`.
    #[serde(default)]
    pub payload: Option<Value>,
    /// Of a failed `res`.
    #[serde(default)]
    pub error: Option<ErrorShape>,
    /// Of an `event`: its name.
    #[serde(default)]
    pub event: Option<String>,
}

impl Incoming {
    /// Parses one text frame; `None` for anything that is not a JSON object of the protocol.
    pub fn parse(text: &str) -> Option<Incoming> {
        serde_json::from_str(text).ok()
    }

    /// Of a two-phase method (`agent`): whether this is the first, "accepted", answer.
    pub fn is_accepted(&self) -> bool {
        self.ok == Some(true)
            && self
                .payload
                .as_ref()
                .and_then(|p| p.get("status"))
                .and_then(Value::as_str)
                == Some("accepted")
    }

    /// The payload of a successful answer, or the error as a [`WsError`].
    pub fn into_result(self) -> Result<Value, WsError> {
        if self.ok == Some(true) {
            return Ok(self.payload.unwrap_or(Value::Null));
        }
        Err(match self.error {
            Some(error) => error.into_error(),
            None => WsError::Invalid("a failed answer without an error".to_string()),
        })
    }

    /// `payload.runId` of a `chat` or `agent` event.
    pub fn run_id(&self) -> Option<&str> {
        self.payload.as_ref()?.get("runId")?.as_str()
    }
}

/// The fields of a frame that decide where it goes, read without building the rest: a frame
/// nobody waits for (ticks, presence, other sessions' runs, unknown events, or a hostile
/// gateway's megabytes of `[0,0,…]`) costs no allocation beyond its text; only a frame that has a
/// reader is parsed into an [`Incoming`] (a `serde_json::Value` takes up to 16 times the text).
#[derive(Debug, Default)]
pub struct Head<'a> {
    /// `res` or `event`.
    pub kind: Cow<'a, str>,
    /// Of a `res`: the request's id.
    pub id: Option<Cow<'a, str>>,
    /// Of an `event`: its name.
    pub event: Option<Cow<'a, str>>,
    /// Of a `chat` or `agent` event: `payload.runId`.
    pub run_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawHead<'a> {
    #[serde(rename = "type", default, borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    event: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    payload: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct RunOf<'a> {
    #[serde(rename = "runId", default, borrow)]
    run_id: Option<Cow<'a, str>>,
}

impl<'a> Head<'a> {
    /// The head of one text frame; `None` for anything that is not a JSON object.
    pub fn parse(text: &'a str) -> Option<Head<'a>> {
        let raw: RawHead<'a> = serde_json::from_str(text).ok()?;
        let run_id = match (raw.event.as_deref(), raw.payload) {
            // An object only: serde would read an array's first element as `runId`.
            (Some("chat" | "agent"), Some(payload)) if payload.get().starts_with('{') => {
                serde_json::from_str::<RunOf<'a>>(payload.get())
                    .ok()
                    .and_then(|p| p.run_id)
            }
            _ => None,
        };
        Some(Head {
            kind: raw.kind.unwrap_or_default(),
            id: raw.id,
            event: raw.event,
            run_id,
        })
    }
}

/// The most a frame that somebody waits for may cost to parse into a `serde_json::Value`
/// ([`parse_cost`]): a hostile gateway knows the request ids and run ids it may address.
pub const MAX_PARSE_COST: usize = 256 * 1024 * 1024;

/// Roughly what parsing `text` into a `serde_json::Value` would take at most: the text, plus a
/// node of up to 80 bytes for every value outside strings (counted by the separators before
/// them). Legitimate large frames are strings (answers, base64 images): few nodes; a frame of
/// `[0,0,0,…]` is nodes only.
pub fn parse_cost(text: &str) -> usize {
    let (mut in_string, mut escaped, mut nodes) = (false, false, 0usize);
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b'[' | b'{' | b':' => nodes += 1,
                _ => {}
            }
        }
    }
    text.len().saturating_add(nodes.saturating_mul(80))
}

impl Incoming {
    /// The answer a request gets instead of a frame too costly to parse.
    pub fn refused(id: &str, bytes: usize, cost: usize) -> Incoming {
        Incoming {
            kind: "res".into(),
            id: Some(id.to_string()),
            ok: Some(false),
            payload: None,
            error: Some(ErrorShape {
                code: "TOO_LARGE".into(),
                message: format!(
                    "the gateway's answer ({bytes} bytes) would take about {} MiB to read, over the bridge's {} MiB; it was dropped",
                    cost / (1024 * 1024),
                    MAX_PARSE_COST / (1024 * 1024)
                ),
                details: None,
            }),
            event: None,
        }
    }
}

/// `error` of a failed answer.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorShape {
    /// `INVALID_REQUEST`, `FORBIDDEN`, `NOT_PAIRED`, `UNAVAILABLE`, …
    #[serde(default)]
    pub code: String,
    /// The gateway's words.
    #[serde(default)]
    pub message: String,
    /// `details` (`details.code` says more than `code`).
    #[serde(default)]
    pub details: Option<Value>,
}

impl ErrorShape {
    /// `details.code`.
    pub fn detail(&self) -> Option<&str> {
        self.details.as_ref()?.get("code")?.as_str()
    }

    /// The error as a [`WsError`], by code.
    pub fn into_error(self) -> WsError {
        let detail = self.detail().map(str::to_string);
        let message = gateway_text(&self.message);
        match (self.code.as_str(), detail.as_deref()) {
            (_, Some("PROTOCOL_MISMATCH")) => WsError::Protocol {
                ours: PROTOCOL_VERSION,
                theirs: self
                    .details
                    .as_ref()
                    .and_then(|d| d.get("expectedProtocol"))
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "another version".to_string()),
            },
            ("NOT_PAIRED", _) | (_, Some("PAIRING_REQUIRED" | "DEVICE_IDENTITY_REQUIRED")) => {
                WsError::PairingRequired {
                    request_id: self
                        .details
                        .as_ref()
                        .and_then(|d| d.get("requestId"))
                        .and_then(Value::as_str)
                        .and_then(super::error::request_id),
                    message,
                }
            }
            (_, Some("AUTH_TOKEN_MISMATCH")) => WsError::Auth(format!(
                "{message}; the token configured for this instance is not the gateway's current one (was it changed on the gateway?)"
            )),
            (_, Some(code)) if code.starts_with("AUTH_") || code.starts_with("DEVICE_AUTH_") => {
                WsError::Auth(message)
            }
            _ => WsError::Gateway {
                code: self.code,
                detail,
                message,
            },
        }
    }
}

/// One request frame: `{"type":"req","id","method","params"}`.
pub fn request(id: &str, method: &str, params: &Value) -> String {
    json!({"type": "req", "id": id, "method": method, "params": params}).to_string()
}

/// The `device` block of `connect` (§4.3).
#[derive(Debug, Clone)]
pub struct DeviceProof {
    /// `hex(sha256(public key))`.
    pub id: String,
    /// base64url of the raw public key.
    pub public_key: String,
    /// base64url of the Ed25519 signature of the v3 payload.
    pub signature: String,
    /// The challenge's `ts`.
    pub signed_at: i64,
    /// The challenge's `nonce`.
    pub nonce: String,
}

/// The credentials of one `connect`.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// The shared gateway token.
    pub token: Option<String>,
    /// A device token the gateway issued after pairing.
    pub device_token: Option<String>,
}

impl Credentials {
    /// The token the signature covers: `auth.token`, else `auth.deviceToken`, else empty.
    pub fn signed_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .unwrap_or("")
    }
}

/// The platform string of `client.platform` (part of the device signature).
pub fn platform() -> &'static str {
    std::env::consts::OS
}

/// The `connect` parameters (a closed object: nothing unknown is sent).
pub fn connect_params(credentials: &Credentials, device: Option<&DeviceProof>) -> Value {
    let mut auth = Map::new();
    if let Some(token) = &credentials.token {
        auth.insert("token".into(), Value::String(token.clone()));
    }
    if let Some(token) = &credentials.device_token {
        auth.insert("deviceToken".into(), Value::String(token.clone()));
    }
    let mut params = json!({
        "minProtocol": PROTOCOL_VERSION,
        "maxProtocol": PROTOCOL_VERSION,
        "client": {
            "id": CLIENT_ID,
            "version": env!("CARGO_PKG_VERSION"),
            "platform": platform(),
            "mode": CLIENT_MODE,
            "displayName": "openclaw-mcp"
        },
        "role": ROLE,
        "scopes": SCOPES,
        "auth": auth,
    });
    if let Some(device) = device {
        params["device"] = json!({
            "id": device.id,
            "publicKey": device.public_key,
            "signature": device.signature,
            "signedAt": device.signed_at,
            "nonce": device.nonce,
        });
    }
    params
}

/// What `hello-ok` says about this connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// The negotiated protocol.
    pub protocol: u32,
    /// `server.version`.
    pub server_version: Option<String>,
    /// `server.bootId`: a new one means the gateway restarted (and its runs died with it).
    pub boot_id: Option<String>,
    /// `auth.scopes`: what this connection may do.
    pub scopes: Vec<String>,
    /// `auth.method` (`token`, `device-token`).
    pub auth_method: Option<String>,
    /// `auth.deviceToken`, issued to a paired device.
    pub device_token: Option<String>,
    /// `policy.maxPayload`: the largest frame the gateway takes.
    pub max_payload: usize,
    /// `policy.tickIntervalMs`.
    pub tick: Duration,
    /// `policy.attachments.maxImageBytes`.
    pub max_image_bytes: Option<u64>,
    /// `snapshot.sessionDefaults.defaultAgentId`.
    pub default_agent: Option<String>,
}

impl Hello {
    /// Reads a `hello-ok` payload; anything else is an error.
    pub fn parse(payload: &Value) -> Result<Hello, WsError> {
        if payload.get("type").and_then(Value::as_str) != Some("hello-ok") {
            return Err(WsError::Invalid(
                "the answer to connect is not hello-ok".into(),
            ));
        }
        let protocol = payload.get("protocol").and_then(Value::as_u64).unwrap_or(0) as u32;
        if protocol != PROTOCOL_VERSION {
            return Err(WsError::Protocol {
                ours: PROTOCOL_VERSION,
                theirs: protocol.to_string(),
            });
        }
        let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
        let auth = payload.get("auth");
        let policy = payload.get("policy");
        Ok(Hello {
            protocol,
            server_version: s(payload.pointer("/server/version")),
            boot_id: s(payload.pointer("/server/bootId")),
            scopes: auth
                .and_then(|a| a.get("scopes"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            auth_method: s(auth.and_then(|a| a.get("method"))),
            device_token: s(auth.and_then(|a| a.get("deviceToken"))),
            max_payload: policy
                .and_then(|p| p.get("maxPayload"))
                .and_then(Value::as_u64)
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_MAX_PAYLOAD),
            tick: policy
                .and_then(|p| p.get("tickIntervalMs"))
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_TICK),
            max_image_bytes: policy
                .and_then(|p| p.pointer("/attachments/maxImageBytes"))
                .and_then(Value::as_u64),
            default_agent: s(payload.pointer("/snapshot/sessionDefaults/defaultAgentId")),
        })
    }

    /// Whether the connection may run turns and read sessions.
    pub fn can_work(&self) -> bool {
        REQUIRED_SCOPES
            .iter()
            .all(|s| self.has_scope(s) || self.has_scope(ADMIN_SCOPE))
    }

    /// Whether `scope` was granted (admin implies every operator scope).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == ADMIN_SCOPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parse_cost_counts_values_outside_strings_only() {
        assert_eq!(parse_cost("[0,0,0]"), 7 + 3 * 80);
        // Separators inside strings (and escaped quotes) are text, not values.
        assert_eq!(parse_cost(r#"{"a":"x,[{:\",y"}"#), 17 + 2 * 80);
        let zeros = format!("[{}0]", "0,".repeat(1_000_000));
        assert!(parse_cost(&zeros) > 80_000_000);
        let answer = format!(r#"{{"text":"{}"}}"#, "a,b:".repeat(1_000_000));
        assert!(parse_cost(&answer) < answer.len() + 1000);
    }

    #[test]
    fn a_chat_event_with_an_array_payload_has_no_run() {
        let head = Head::parse(r#"{"type":"event","event":"chat","payload":["run-1"]}"#).unwrap();
        assert_eq!(head.run_id, None);
        let head =
            Head::parse(r#"{"type":"event","event":"chat","payload":{"runId":"run-1"}}"#).unwrap();
        assert_eq!(head.run_id.as_deref(), Some("run-1"));
    }

    #[test]
    fn error_frames_are_told_apart_by_their_codes() {
        let parse = |v: Value| -> WsError {
            serde_json::from_value::<ErrorShape>(v)
                .unwrap()
                .into_error()
        };
        let mismatch = parse(
            json!({"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":3,"clientMaxProtocol":3,"expectedProtocol":4,"minimumProbeProtocol":3}}),
        );
        assert_eq!(
            mismatch.to_string(),
            "protocol mismatch: this bridge speaks OpenClaw gateway protocol 4, the gateway expects 4"
        );
        let pairing = parse(
            json!({"code":"NOT_PAIRED","message":"pairing required: device is not approved yet","details":{"code":"PAIRING_REQUIRED","reason":"not-paired","requestId":"8ed899ee-1"}}),
        );
        assert!(
            pairing
                .to_string()
                .contains("`openclaw devices approve 8ed899ee-1`"),
            "{pairing}"
        );
        assert!(pairing.needs_a_person());
        let token = parse(
            json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)","details":{"code":"AUTH_TOKEN_MISMATCH"}}),
        );
        assert!(matches!(token, WsError::Auth(_)), "{token:?}");
        let scope = parse(
            json!({"code":"FORBIDDEN","message":"missing scope: operator.read","details":{"code":"MISSING_SCOPE"}}),
        );
        assert_eq!(scope.detail(), Some("MISSING_SCOPE"));
        assert_eq!(scope.to_string(), "missing scope: operator.read");
    }

    #[test]
    fn hello_ok_is_read_for_scopes_limits_and_boot() {
        let hello = Hello::parse(&json!({
            "type":"hello-ok","protocol":4,
            "server":{"version":"2026.9.6","bootId":"b-1","connId":"c-1"},
            "snapshot":{"sessionDefaults":{"defaultAgentId":"main"}},
            "auth":{"method":"token","role":"operator","scopes":["operator.read","operator.write"]},
            "policy":{"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000,
                      "attachments":{"maxBytes":19464192,"maxImageBytes":6291456}}
        }))
        .unwrap();
        assert_eq!(hello.boot_id.as_deref(), Some("b-1"));
        assert_eq!(hello.max_payload, 26_214_400);
        assert!(hello.can_work());
        assert!(!hello.scopes.iter().any(|s| s == ADMIN_SCOPE));
        let empty =
            Hello::parse(&json!({"type":"hello-ok","protocol":4,"auth":{"scopes":[]}})).unwrap();
        assert!(!empty.can_work());
        assert!(matches!(
            Hello::parse(&json!({"type":"hello-ok","protocol":3})),
            Err(WsError::Protocol { .. })
        ));
    }

    #[test]
    fn connect_sends_only_known_fields() {
        let params = connect_params(
            &Credentials {
                token: Some("t".into()),
                device_token: None,
            },
            None,
        );
        let keys: Vec<&str> = params
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "minProtocol",
                "maxProtocol",
                "client",
                "role",
                "scopes",
                "auth"
            ]
        );
        assert_eq!(params["auth"], json!({"token": "t"}));
        assert_eq!(params["client"]["id"], "gateway-client");
    }
}
