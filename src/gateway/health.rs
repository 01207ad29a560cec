//! Gateway health: what one probe found ([`ProbeResult`]), how each answer of the real OpenClaw
//! gateway is read ([`classify`]), the state a `GatewayActor` keeps between probes
//! ([`HealthState`]) and when to probe next ([`next_probe_in`]).
//!
//! 1.7.0 called any status below 500 "ok", so a rejected token or a disabled chat endpoint looked
//! healthy. Here the probe is the one the gateway documents as creating no session — an
//! authenticated `POST /v1/chat/completions` with body `{}` — and each answer has its own
//! verdict, worded so the user knows what to change; `GET /readyz` adds readiness.

use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::util::iso8601;

/// Overall verdict on one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Not probed yet.
    Unknown,
    /// Reachable, chat endpoint on, token accepted, ready.
    Ok,
    /// Anything else; the message says what.
    Error,
}

impl HealthStatus {
    /// `"ok"`, `"error"` or `"unknown"`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Unknown => "unknown",
            HealthStatus::Ok => "ok",
            HealthStatus::Error => "error",
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResult {
    /// Verdict.
    pub status: HealthStatus,
    /// Words a user can act on.
    pub message: String,
    /// Status of the chat-endpoint probe, when the gateway answered.
    pub http_status: Option<u16>,
    /// `/readyz` verdict: `None` when the gateway has no such route (not OpenClaw).
    pub ready: Option<bool>,
    /// Time the probe took.
    pub latency: Duration,
}

/// Reads the chat-endpoint probe status and the `/readyz` status (if any) of the real gateway.
pub fn classify(chat_status: u16, has_token: bool, readyz: Option<u16>) -> (HealthStatus, String) {
    let ready = readyz.and_then(|s| match s {
        200 => Some(true),
        503 => Some(false),
        _ => None,
    });
    let (status, message) = match chat_status {
        400 if has_token => (
            HealthStatus::Ok,
            "Gateway responding (HTTP 400): chat-completions endpoint enabled, token accepted"
                .to_string(),
        ),
        400 => (
            HealthStatus::Ok,
            "Gateway responding (HTTP 400): chat-completions endpoint enabled, no token needed"
                .to_string(),
        ),
        200..=299 => (
            HealthStatus::Ok,
            format!("Gateway responding (HTTP {chat_status})"),
        ),
        401 if has_token => (
            HealthStatus::Error,
            "Token rejected by the gateway (HTTP 401): check OPENCLAW_GATEWAY_TOKEN or the instance's \"token\" against gateway.auth.token".to_string(),
        ),
        401 => (
            HealthStatus::Error,
            "The gateway requires a token (HTTP 401): set OPENCLAW_GATEWAY_TOKEN or the instance's \"token\"".to_string(),
        ),
        403 => (
            HealthStatus::Error,
            "The gateway refused this token (HTTP 403): it lacks the operator scope".to_string(),
        ),
        404 | 405 => (
            HealthStatus::Error,
            format!(
                "Chat-completions endpoint disabled (HTTP {chat_status}): enable gateway.http.endpoints.chatCompletions in openclaw.json"
            ),
        ),
        429 => (
            HealthStatus::Error,
            "The gateway is rate-limiting this client (HTTP 429): too many failed authentication attempts?".to_string(),
        ),
        500..=599 => (
            HealthStatus::Error,
            format!("Gateway error (HTTP {chat_status})"),
        ),
        _ => (
            HealthStatus::Ok,
            format!("Gateway responding (HTTP {chat_status})"),
        ),
    };
    if status == HealthStatus::Ok && ready == Some(false) {
        return (
            HealthStatus::Error,
            "Gateway not ready (/readyz answered 503): it is starting up or draining".to_string(),
        );
    }
    (status, message)
}

/// The health an actor keeps between probes.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthState {
    /// Verdict of the last probe.
    pub status: HealthStatus,
    /// Message of the last probe.
    pub message: String,
    /// HTTP status of the last probe, if the gateway answered.
    pub http_status: Option<u16>,
    /// Readiness from `/readyz`, if the gateway serves it.
    pub ready: Option<bool>,
    /// When the last probe finished.
    pub last_check: Option<SystemTime>,
    /// When the gateway was last found healthy.
    pub last_ok: Option<SystemTime>,
    /// Duration of the last probe.
    pub latency: Option<Duration>,
    /// Message of the last failure (probe or chat), kept after recovery for diagnosis.
    pub last_error: Option<String>,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
}

impl Default for HealthState {
    fn default() -> Self {
        HealthState {
            status: HealthStatus::Unknown,
            message: "Not checked yet".to_string(),
            http_status: None,
            ready: None,
            last_check: None,
            last_ok: None,
            latency: None,
            last_error: None,
            consecutive_failures: 0,
        }
    }
}

impl HealthState {
    /// Records a probe.
    pub fn record(&mut self, probe: &ProbeResult, now: SystemTime) {
        self.status = probe.status;
        self.message = probe.message.clone();
        self.http_status = probe.http_status;
        self.ready = probe.ready;
        self.last_check = Some(now);
        self.latency = Some(probe.latency);
        if probe.status == HealthStatus::Ok {
            self.last_ok = Some(now);
            self.consecutive_failures = 0;
        } else {
            self.last_error = Some(probe.message.clone());
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
    }

    /// Records a chat that could not reach the gateway: the instance is down now, not at the
    /// next probe.
    pub fn record_unreachable(&mut self, message: &str, now: SystemTime) {
        self.status = HealthStatus::Error;
        self.message = message.to_string();
        self.http_status = None;
        self.last_check = Some(now);
        self.last_error = Some(message.to_string());
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
    }

    /// A snapshot for tools and `/health`, with the actor's restart count.
    pub fn snapshot(&self, restarts: u32) -> HealthSnapshot {
        HealthSnapshot {
            status: self.status,
            message: self.message.clone(),
            http_status: self.http_status,
            ready: self.ready,
            last_check: self.last_check.map(iso8601),
            last_ok: self.last_ok.map(iso8601),
            latency_ms: self
                .latency
                .map(|d| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0),
            last_error: self.last_error.clone(),
            consecutive_failures: self.consecutive_failures,
            restarts,
            api: None,
            api_reason: None,
        }
    }
}

/// Health as tools and `/health` show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    /// `ok`, `error` or `unknown`.
    pub status: HealthStatus,
    /// What the last probe found, in words.
    pub message: String,
    /// HTTP status of the last probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// Readiness from `/readyz`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    /// ISO-8601 time of the last probe.
    pub last_check: Option<String>,
    /// ISO-8601 time the gateway was last healthy.
    pub last_ok: Option<String>,
    /// Duration of the last probe in milliseconds.
    pub latency_ms: Option<f64>,
    /// Last failure message.
    pub last_error: Option<String>,
    /// Failed probes in a row.
    pub consecutive_failures: u32,
    /// Times the instance's actor was restarted after a failure.
    pub restarts: u32,
    /// The API the calls go through now: `ws` or `http`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    /// Why that API (the `api` setting, and the WebSocket's state).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_reason: Option<String>,
}

/// Probe again soon while the gateway is down (every second, doubling up to 5 s, never slower
/// than the configured interval), so that recovery shows quickly.
pub fn next_probe_in(state: &HealthState, interval: Duration) -> Duration {
    if state.status == HealthStatus::Error {
        let exp = state.consecutive_failures.saturating_sub(1).min(3);
        Duration::from_secs(1u64 << exp)
            .min(Duration::from_secs(5))
            .min(interval)
    } else {
        interval
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gateway_answer_has_its_own_verdict() {
        assert_eq!(classify(400, true, Some(200)).0, HealthStatus::Ok);
        let (s, m) = classify(401, true, Some(200));
        assert_eq!(s, HealthStatus::Error);
        assert!(m.starts_with("Token rejected by the gateway"), "{m}");
        assert!(classify(401, false, None).1.contains("requires a token"));
        let (s, m) = classify(404, true, Some(200));
        assert_eq!(s, HealthStatus::Error);
        assert!(m.contains("enable gateway.http.endpoints.chatCompletions in openclaw.json"));
        assert!(classify(405, true, None).1.contains("disabled (HTTP 405)"));
        assert_eq!(
            classify(503, true, None),
            (HealthStatus::Error, "Gateway error (HTTP 503)".into())
        );
        let (s, m) = classify(400, true, Some(503));
        assert_eq!(s, HealthStatus::Error);
        assert!(m.contains("not ready"));
        // Not an OpenClaw gateway (no /readyz): judged on the chat probe alone.
        assert_eq!(classify(200, false, Some(404)).0, HealthStatus::Ok);
    }

    #[test]
    fn probing_speeds_up_while_down_and_never_slows_past_interval() {
        let mut st = HealthState::default();
        let interval = Duration::from_secs(30);
        assert_eq!(next_probe_in(&st, interval), interval);
        st.record_unreachable("down", SystemTime::now());
        assert_eq!(next_probe_in(&st, interval), Duration::from_secs(1));
        st.record_unreachable("down", SystemTime::now());
        assert_eq!(next_probe_in(&st, interval), Duration::from_secs(2));
        for _ in 0..10 {
            st.record_unreachable("down", SystemTime::now());
        }
        assert_eq!(next_probe_in(&st, interval), Duration::from_secs(5));
        assert_eq!(
            next_probe_in(&st, Duration::from_millis(300)),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn recovery_resets_failures_but_keeps_last_error() {
        let mut st = HealthState::default();
        st.record_unreachable("connection refused", SystemTime::now());
        st.record(
            &ProbeResult {
                status: HealthStatus::Ok,
                message: "fine".into(),
                http_status: Some(400),
                ready: Some(true),
                latency: Duration::from_millis(3),
            },
            SystemTime::now(),
        );
        assert_eq!(st.consecutive_failures, 0);
        assert_eq!(st.status, HealthStatus::Ok);
        assert_eq!(st.last_error.as_deref(), Some("connection refused"));
    }
}
