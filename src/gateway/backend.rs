//! Which of the gateway's two APIs serves an instance (`api`: auto, ws, http), and why.
//!
//! - `http`: the OpenAI-compatible HTTP API, as 1.7.0 (no WebSocket is opened).
//! - `ws`: the WebSocket control protocol v4 only; its failures are the tools' errors.
//! - `auto` (the default): the WebSocket when it works here — a loopback gateway with the shared
//!   token, or a device the gateway's owner approved — and HTTP otherwise. A WebSocket that was up
//!   and dropped is waited for (a slower answer, not an error); one that never came up, or that
//!   only a person can fix (pairing to approve, token refused, another protocol version), leaves
//!   the calls on HTTP while the connection manager keeps retrying slowly.
//!
//! The tools do not know which API served them; `openclaw_status` and `openclaw_instances` say
//! it (`api`, `api_reason`).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use super::ws::{
    Options, Phase, WsClient, WsError, conn::Endpoint, devices::SharedDevices,
    identity::DeviceIdentity,
};
use crate::config::{Api, InstanceSettings};

/// How long a call waits for the first WebSocket attempt of an `auto` instance to settle.
const FIRST_CONNECT_WAIT: Duration = Duration::from_secs(5);

/// Where one call goes.
#[derive(Clone)]
pub enum Route {
    /// The HTTP API.
    Http,
    /// The WebSocket.
    Ws(WsClient),
}

/// The WebSocket side of an instance: its connection manager (absent with `api = http`) and the
/// device identity.
#[derive(Clone, Default)]
pub struct WsSide {
    /// The connection manager.
    pub client: Option<WsClient>,
    /// Why there is no identity (it cannot be read or written), if so.
    pub identity_error: Option<String>,
}

impl WsSide {
    /// Starts the connection manager of `settings` (on the current tokio runtime), unless the
    /// instance uses HTTP only.
    pub fn start(settings: &InstanceSettings) -> WsSide {
        if settings.api == Api::Http {
            return WsSide::default();
        }
        let endpoint = match Endpoint::from_base_url(&settings.base_url) {
            Ok(e) => e,
            Err(e) => {
                return WsSide {
                    client: None,
                    identity_error: Some(e.to_string()),
                };
            }
        };
        let loaded = match &settings.database_url {
            Some(url) => SharedDevices::start(url.expose())
                .map_err(|e| WsError::Identity(e.to_string()))
                .and_then(|devices| DeviceIdentity::shared(devices, &settings.name)),
            None => DeviceIdentity::load_or_create(settings.data_dir.as_deref(), &settings.name),
        };
        let (identity, identity_error) = match loaded {
            Ok(i) => (Some(Arc::new(Mutex::new(i))), None),
            Err(e) => {
                tracing::warn!(instance = %settings.name, error = %e, "no device identity; connecting with the token alone");
                (None, Some(e.to_string()))
            }
        };
        let options = Options::new(
            endpoint,
            settings.token.as_ref().map(|t| t.expose().to_string()),
        );
        WsSide {
            client: Some(WsClient::start(options, identity)),
            identity_error,
        }
    }
}

/// `e` without the gateway's URL (the sentence appears in `/health`, which never shows URLs).
fn without_url(e: &super::ws::WsError) -> String {
    use super::ws::WsError;
    match e {
        WsError::Connect { cause, .. } => format!("cannot connect: {cause}"),
        WsError::NotWebSocket { reason, .. } => {
            format!("the gateway does not accept OpenClaw's WebSocket protocol ({reason})")
        }
        other => other.to_string(),
    }
}

/// Where the calls of an instance go now, and the sentence that says why.
pub fn describe(api: Api, side: &WsSide) -> (&'static str, String) {
    let Some(client) = &side.client else {
        return match api {
            Api::Http => ("http", "api = http".to_string()),
            _ => (
                "http",
                format!(
                    "api = {}: no WebSocket ({})",
                    api.as_str(),
                    side.identity_error.as_deref().unwrap_or("not started")
                ),
            ),
        };
    };
    let phase = client.phase();
    let how = |session: &super::ws::Session| {
        format!(
            "WebSocket connected (protocol {}, OpenClaw {}, auth: {}, scopes {})",
            session.hello.protocol,
            label(session.hello.server_version.as_deref().unwrap_or("?")),
            session.auth.as_str(),
            label(&session.hello.scopes.join(","))
        )
    };
    match (api, phase) {
        (Api::Ws, Phase::Ready(s)) => ("ws", format!("api = ws: {}", how(&s))),
        (Api::Ws, Phase::Connecting) => ("ws", "api = ws: WebSocket connecting".to_string()),
        (Api::Ws, Phase::Down(e)) => ("ws", format!("api = ws: {}", without_url(&e))),
        (_, Phase::Ready(s)) => ("ws", format!("auto: {}", how(&s))),
        (_, Phase::Connecting) => (
            "http",
            "auto: the WebSocket is connecting; HTTP until it is up".to_string(),
        ),
        (_, Phase::Down(e))
            if client.ever_ready() && !e.needs_a_person() && !e.is_unsupported() =>
        {
            (
                "ws",
                format!("auto: WebSocket reconnecting ({})", without_url(&e)),
            )
        }
        (_, Phase::Down(e)) => (
            "http",
            format!(
                "auto: WebSocket unavailable, using HTTP: {}",
                without_url(&e)
            ),
        ),
    }
}

/// Where one call goes, waiting (briefly) for the first attempt of an `auto` instance.
pub async fn route(api: Api, side: &WsSide) -> Route {
    let Some(client) = &side.client else {
        return Route::Http;
    };
    if api == Api::Ws {
        return Route::Ws(client.clone());
    }
    let mut changes = client.changes();
    let deadline = tokio::time::Instant::now() + FIRST_CONNECT_WAIT;
    loop {
        let phase = changes.borrow_and_update().clone();
        match phase {
            Phase::Ready(_) => return Route::Ws(client.clone()),
            Phase::Down(e) if client.ever_ready() && !e.needs_a_person() && !e.is_unsupported() => {
                return Route::Ws(client.clone());
            }
            Phase::Down(_) => return Route::Http,
            Phase::Connecting => {}
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => return Route::Http,
        }
    }
}

/// Longest a string of the gateway's may be in a status line, in bytes (the truncation note
/// included).
const MAX_LABEL_BYTES: usize = 160;

/// A string of the gateway's (its version, its scopes) as it may appear in a status line: escaped
/// like any gateway text and cut to [`MAX_LABEL_BYTES`], so a hostile gateway cannot fill or forge
/// `openclaw_status`.
fn label(text: &str) -> String {
    super::error::gateway_text_within(text, MAX_LABEL_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_version_or_scope_list_is_escaped_and_cut() {
        assert_eq!(label("2026.9.6"), "2026.9.6");
        assert_eq!(
            label("operator.read,operator.admin"),
            "operator.read,operator.admin"
        );
        let forged = label("2026.9.6, auth: device)\r\u{1b}[2KWebSocket connected (fake");
        assert!(
            !forged.contains('\u{1b}') && !forged.contains('\r'),
            "{forged}"
        );
        let long = label(&"x".repeat(10_000));
        assert!(long.len() <= MAX_LABEL_BYTES, "{}", long.len());
        assert!(long.ends_with("[truncated: 10000 bytes in all]"), "{long}");
    }
}
