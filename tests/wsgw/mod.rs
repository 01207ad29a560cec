//! A protocol-level fake of OpenClaw's WebSocket gateway (protocol v4, `reference/openclaw-ws.md`)
//! on 127.0.0.1, port 0: the challenge and `connect` (shared token, Ed25519 device signatures
//! checked with ring, pairing with approval, a protocol version of its choice), `agent` runs queued
//! per session (two `res` frames), events broadcast to every connection (with a foreign run's
//! events and unknown events mixed in), `chat.abort`, `agent.wait`, `chat.history`, `health`,
//! `agents.list`, `sessions.list`, and the failures a client must survive: every connection
//! dropped, a restart (new `bootId`, runs lost), a silent connection (no pongs).
//!
//! A run's reply is `echo: <message>`; a message holding `[[drip:N:MS]]` streams N words `wN`, MS
//! milliseconds apart, instead.

#![allow(dead_code, clippy::unwrap_used, clippy::result_large_err)]

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
    time::Duration,
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_tungstenite::tungstenite::{
    Message,
    protocol::{CloseFrame, frame::coding::CloseCode},
};
use tokio_util::sync::CancellationToken;

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    Ok(String),
    Aborted,
    Lost,
}

#[derive(Debug, Clone)]
struct Run {
    session: String,
    message: String,
    text: String,
    end: Option<RunEnd>,
    cancel: CancellationToken,
    /// Connection and request id waiting for the final `res`.
    waiter: Option<(u64, String)>,
    started: bool,
    /// Arrival order.
    seq: u64,
}

#[derive(Default)]
struct State {
    conns: HashMap<u64, mpsc::UnboundedSender<Message>>,
    next_conn: u64,
    runs: HashMap<String, Run>,
    /// Per session: runs waiting for the lane (front = running).
    lanes: HashMap<String, VecDeque<String>>,
    /// Every request, as (method, params).
    requests: Vec<(String, Value)>,
    /// Origin headers seen on upgrades.
    origins: Vec<String>,
    approved: HashSet<String>,
    pending_pairing: HashMap<String, String>,
    devices_seen: Vec<String>,
    device_tokens: HashMap<String, String>,
    boot: u64,
    silent: bool,
    /// Runs each prompt really started (idempotency key → count).
    started: HashMap<String, u32>,
    /// The shared token after a rotation (`rotate_token`).
    token: Option<String>,
    /// New connections are closed at once (`refuse`).
    refusing: bool,
}

/// What the fake does in its handshake.
#[derive(Clone)]
pub struct Config {
    pub token: Option<String>,
    pub protocol: u32,
    /// Non-loopback rules: a device that is not approved gets PAIRING_REQUIRED.
    pub require_pairing: bool,
    pub max_payload: usize,
    /// Emit events of a foreign run and unknown events during every run.
    pub noise: bool,
    /// The agent's model takes text only: `agent` with attachments is refused as 2026.9.6 does
    /// (one failed `res`, no run, the key not kept).
    pub text_only: bool,
    /// `agent.wait` answers "timeout" at once, whatever `timeoutMs` asks (a gateway that
    /// cannot wait).
    pub wait_at_once: bool,
    /// `chat.history` answers this late.
    pub history_delay: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            token: Some("gw-token-0123456789abcdef".into()),
            protocol: 4,
            require_pairing: false,
            max_payload: 25 * 1024 * 1024,
            noise: true,
            text_only: false,
            wait_at_once: false,
            history_delay: Duration::ZERO,
        }
    }
}

#[derive(Clone)]
pub struct FakeWsGateway {
    pub url: String,
    pub port: u16,
    pub config: Config,
    state: Arc<Mutex<State>>,
}

fn lock(s: &Arc<Mutex<State>>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl FakeWsGateway {
    pub async fn start(config: Config) -> FakeWsGateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let gw = FakeWsGateway {
            url: format!("http://127.0.0.1:{port}"),
            port,
            config,
            state: Arc::new(Mutex::new(State {
                boot: 1,
                ..State::default()
            })),
        };
        let me = gw.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move { me.serve(tcp).await });
            }
        });
        gw
    }

    pub fn token(&self) -> &str {
        self.config.token.as_deref().unwrap_or("")
    }

    /// Every request with `method`, in order.
    pub fn requests(&self, method: &str) -> Vec<Value> {
        lock(&self.state)
            .requests
            .iter()
            .filter(|(m, _)| m == method)
            .map(|(_, p)| p.clone())
            .collect()
    }

    pub fn run_end(&self, run: &str) -> Option<RunEnd> {
        lock(&self.state).runs.get(run).and_then(|r| r.end.clone())
    }

    /// Runs started for an idempotency key.
    pub fn starts(&self, run: &str) -> u32 {
        lock(&self.state).started.get(run).copied().unwrap_or(0)
    }

    pub fn origins(&self) -> Vec<String> {
        lock(&self.state).origins.clone()
    }

    pub fn connections(&self) -> usize {
        lock(&self.state).conns.len()
    }

    pub fn pending_pairing(&self) -> Vec<String> {
        lock(&self.state).pending_pairing.keys().cloned().collect()
    }

    pub fn devices_seen(&self) -> Vec<String> {
        lock(&self.state).devices_seen.clone()
    }

    pub fn approve(&self, request_id: &str) {
        let mut st = lock(&self.state);
        if let Some(device) = st.pending_pairing.remove(request_id) {
            st.approved.insert(device);
        }
    }

    /// Closes every connection without a close frame; runs go on.
    pub fn drop_connections(&self) {
        lock(&self.state).conns.clear();
    }

    /// A restart: a new bootId, every run lost, every connection closed.
    pub fn restart(&self) {
        let mut st = lock(&self.state);
        st.boot += 1;
        for run in st.runs.values_mut() {
            if run.end.is_none() {
                run.end = Some(RunEnd::Lost);
                run.cancel.cancel();
            }
        }
        st.lanes.clear();
        st.conns.clear();
    }

    /// The owner changes the shared token: every connection is closed with 4001 "gateway auth
    /// changed", and only the new token is accepted from now on.
    pub fn rotate_token(&self, new: &str) {
        let mut st = lock(&self.state);
        st.token = Some(new.to_string());
        for tx in st.conns.values() {
            let _ = tx.send(Message::Close(Some(CloseFrame {
                code: CloseCode::from(4001),
                reason: "gateway auth changed".into(),
            })));
        }
        st.conns.clear();
    }

    /// The owner removes a paired device: its approval and device token are gone, and its
    /// connections closed.
    pub fn remove_device(&self, device: &str) {
        let mut st = lock(&self.state);
        st.approved.remove(device);
        st.device_tokens.remove(device);
        st.conns.clear();
    }

    /// While `refusing`, every new connection is closed at once (the gateway is unreachable).
    pub fn refuse(&self, refusing: bool) {
        lock(&self.state).refusing = refusing;
    }

    /// Stops reading and writing on every connection (no pongs, nothing).
    pub fn go_silent(&self, silent: bool) {
        lock(&self.state).silent = silent;
    }

    fn broadcast(&self, frame: Value) {
        let text = frame.to_string();
        for tx in lock(&self.state).conns.values() {
            let _ = tx.send(Message::text(text.clone()));
        }
    }

    fn send_to(&self, conn: u64, frame: Value) {
        if let Some(tx) = lock(&self.state).conns.get(&conn) {
            let _ = tx.send(Message::text(frame.to_string()));
        }
    }

    async fn serve(self, tcp: tokio::net::TcpStream) {
        if lock(&self.state).refusing {
            // A reset, every time: as a host with nothing listening behind a proxy does.
            // Deprecated because a non-zero linger blocks the dropping thread; zero does not.
            #[allow(deprecated)]
            let _ = tcp.set_linger(Some(Duration::ZERO));
            return;
        }
        let origins = Arc::new(Mutex::new(None::<String>));
        let seen = origins.clone();
        let callback = move |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                             resp| {
            *seen.lock().unwrap() = req
                .headers()
                .get("origin")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
            return;
        };
        if let Some(origin) = origins.lock().unwrap().clone() {
            lock(&self.state).origins.push(origin);
        }
        let nonce = uuid::Uuid::new_v4().to_string();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let challenge =
            json!({"type":"event","event":"connect.challenge","payload":{"nonce":nonce,"ts":ts}});
        if ws.send(Message::text(challenge.to_string())).await.is_err() {
            return;
        }
        // The handshake.
        let Some(Ok(Message::Text(first))) = ws.next().await else {
            return;
        };
        let frame: Value = serde_json::from_str(first.as_str()).unwrap_or(Value::Null);
        let id = frame["id"].as_str().unwrap_or("?").to_string();
        let params = frame["params"].clone();
        lock(&self.state)
            .requests
            .push(("connect".into(), params.clone()));
        match self.check_connect(&params, &nonce, ts) {
            Err((error, close)) => {
                let _ = ws
                    .send(Message::text(
                        json!({"type":"res","id":id,"ok":false,"error":error}).to_string(),
                    ))
                    .await;
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(close),
                        reason: error["message"].as_str().unwrap_or("").to_string().into(),
                    })))
                    .await;
                return;
            }
            Ok(hello) => {
                if ws
                    .send(Message::text(
                        json!({"type":"res","id":id,"ok":true,"payload":hello}).to_string(),
                    ))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
        let conn = {
            let mut st = lock(&self.state);
            st.next_conn += 1;
            let c = st.next_conn;
            st.conns.insert(c, tx);
            c
        };
        let _ = ws
            .send(Message::text(
                json!({"type":"event","event":"health","payload":{"ok":true},"seq":1}).to_string(),
            ))
            .await;
        loop {
            if lock(&self.state).silent {
                tokio::time::sleep(Duration::from_millis(20)).await;
                if !lock(&self.state).conns.contains_key(&conn) {
                    return;
                }
                continue;
            }
            tokio::select! {
                out = rx.recv() => match out {
                    Some(m) => if ws.send(m).await.is_err() { break },
                    // Dropped by drop_connections/restart: close without a close frame.
                    None => return,
                },
                incoming = ws.next() => match incoming {
                    Some(Ok(Message::Text(text))) => self.request(conn, text.as_str()),
                    Some(Ok(_)) => {}
                    _ => break,
                },
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
        lock(&self.state).conns.remove(&conn);
    }

    fn check_connect(&self, p: &Value, nonce: &str, ts: i64) -> Result<Value, (Value, u16)> {
        let (min, max) = (
            p["minProtocol"].as_u64().unwrap_or(0),
            p["maxProtocol"].as_u64().unwrap_or(0),
        );
        let want = u64::from(self.config.protocol);
        if !(min..=max).contains(&want) {
            return Err((
                json!({"code":"INVALID_REQUEST","message":"protocol mismatch","details":{"code":"PROTOCOL_MISMATCH","clientMinProtocol":min,"clientMaxProtocol":max,"expectedProtocol":want}}),
                1002,
            ));
        }
        let token = p["auth"]["token"].as_str();
        let device_token = p["auth"]["deviceToken"].as_str();
        let mut device_ok = false;
        let mut device_id = None;
        if let Some(device) = p.get("device").filter(|d| d.is_object()) {
            let id = device["id"].as_str().unwrap_or("");
            let public = URL_SAFE_NO_PAD
                .decode(device["publicKey"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let signature = URL_SAFE_NO_PAD
                .decode(device["signature"].as_str().unwrap_or(""))
                .unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA256, &public);
            let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
            let scopes: Vec<&str> = p["scopes"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let signed = format!(
                "v3|{id}|{}|{}|{}|{}|{}|{}|{}|{}|",
                p["client"]["id"].as_str().unwrap_or(""),
                p["client"]["mode"].as_str().unwrap_or(""),
                p["role"].as_str().unwrap_or(""),
                scopes.join(","),
                device["signedAt"].as_i64().unwrap_or(0),
                token.or(device_token).unwrap_or(""),
                device["nonce"].as_str().unwrap_or(""),
                p["client"]["platform"]
                    .as_str()
                    .unwrap_or("")
                    .trim()
                    .to_lowercase(),
            );
            let verified =
                ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public)
                    .verify(signed.as_bytes(), &signature)
                    .is_ok();
            if hex != id || !verified || device["nonce"] != nonce || device["signedAt"] != ts {
                return Err((
                    json!({"code":"INVALID_REQUEST","message":"device signature invalid","details":{"code":"DEVICE_AUTH_SIGNATURE_INVALID"}}),
                    1008,
                ));
            }
            lock(&self.state).devices_seen.push(id.to_string());
            device_ok = true;
            device_id = Some(id.to_string());
        }
        let expected = lock(&self.state)
            .token
            .clone()
            .or_else(|| self.config.token.clone());
        let st_token_ok = match (&expected, token) {
            (Some(want), Some(got)) => want == got,
            (None, _) => true,
            _ => false,
        };
        let device_token_ok = device_id.as_ref().is_some_and(|id| {
            device_token.is_some()
                && lock(&self.state).device_tokens.get(id).map(String::as_str) == device_token
        });
        if !st_token_ok && !device_token_ok {
            return Err((
                json!({"code":"INVALID_REQUEST","message":"unauthorized: gateway token mismatch (provide gateway auth token)","details":{"code":"AUTH_TOKEN_MISMATCH"}}),
                1008,
            ));
        }
        let mut issued = None;
        if self.config.require_pairing {
            let Some(id) = device_id.filter(|_| device_ok) else {
                return Err((
                    json!({"code":"NOT_PAIRED","message":"device identity required","details":{"code":"DEVICE_IDENTITY_REQUIRED"}}),
                    1008,
                ));
            };
            let mut st = lock(&self.state);
            if !st.approved.contains(&id) {
                let request_id = st
                    .pending_pairing
                    .iter()
                    .find(|(_, d)| **d == id)
                    .map(|(r, _)| r.clone())
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                st.pending_pairing.insert(request_id.clone(), id.clone());
                return Err((
                    json!({"code":"NOT_PAIRED","message":"pairing required: device is not approved yet","details":{"code":"PAIRING_REQUIRED","requestId":request_id,"deviceId":id}}),
                    1008,
                ));
            }
            let token = st
                .device_tokens
                .entry(id)
                .or_insert_with(|| format!("devtok-{}", uuid::Uuid::new_v4()))
                .clone();
            issued = Some(token);
        }
        let scopes = p["scopes"].clone();
        let boot = lock(&self.state).boot;
        let mut auth = json!({"method": if token.is_some() {"token"} else {"device-token"}, "role":"operator","scopes":scopes});
        if let Some(t) = issued {
            auth["deviceToken"] = Value::String(t);
        }
        Ok(json!({
            "type":"hello-ok","protocol":self.config.protocol,
            "server":{"version":"2026.9.6-fake","bootId":format!("boot-{boot}")},
            "snapshot":{"sessionDefaults":{"defaultAgentId":"main"}},
            "auth":auth,
            "policy":{"maxPayload":self.config.max_payload,"tickIntervalMs":30000}
        }))
    }

    fn canonical(key: &str) -> String {
        if key.starts_with("agent:") {
            key.to_string()
        } else {
            format!("agent:main:{}", key.to_lowercase())
        }
    }

    fn request(&self, conn: u64, text: &str) {
        let Ok(frame) = serde_json::from_str::<Value>(text) else {
            return;
        };
        let id = frame["id"].as_str().unwrap_or("invalid").to_string();
        let method = frame["method"].as_str().unwrap_or("").to_string();
        let params = frame["params"].clone();
        lock(&self.state)
            .requests
            .push((method.clone(), params.clone()));
        let ok = |payload: Value| json!({"type":"res","id":id,"ok":true,"payload":payload});
        match method.as_str() {
            "health" => self.send_to(conn, ok(json!({"ok":true}))),
            "agents.list" => self.send_to(
                conn,
                ok(json!({"defaultId":"main","agents":[{"id":"main"},{"id":"ops"}]})),
            ),
            "sessions.list" => {
                let keys: Vec<Value> = lock(&self.state)
                    .runs
                    .values()
                    .map(|r| json!({"key": r.session}))
                    .collect();
                self.send_to(conn, ok(json!({"sessions": keys})))
            }
            "agent" => self.agent(conn, &id, &params),
            "chat.abort" => {
                let run = params["runId"].as_str().unwrap_or("").to_string();
                let mut st = lock(&self.state);
                let aborted = match st.runs.get_mut(&run) {
                    Some(r) if r.end.is_none() => {
                        r.cancel.cancel();
                        true
                    }
                    _ => false,
                };
                drop(st);
                self.send_to(conn, ok(json!({"ok":true,"aborted":aborted,"runIds": if aborted {vec![run]} else {vec![]}})));
            }
            "agent.wait" => {
                let me = self.clone();
                let run = params["runId"].as_str().unwrap_or("").to_string();
                let wait = if self.config.wait_at_once {
                    0
                } else {
                    params["timeoutMs"].as_u64().unwrap_or(30_000)
                };
                let id = id.clone();
                tokio::spawn(async move {
                    let until = tokio::time::Instant::now() + Duration::from_millis(wait);
                    loop {
                        let end = lock(&me.state).runs.get(&run).and_then(|r| r.end.clone());
                        match end {
                            Some(RunEnd::Ok(text)) => {
                                me.send_to(conn, json!({"type":"res","id":id,"ok":true,"payload":{"runId":run,"status":"ok","terminalReply":{"text":text}}}));
                                return;
                            }
                            _ if tokio::time::Instant::now() >= until => {
                                me.send_to(conn, json!({"type":"res","id":id,"ok":true,"payload":{"runId":run,"status":"timeout"}}));
                                return;
                            }
                            _ => tokio::time::sleep(Duration::from_millis(20)).await,
                        }
                    }
                });
            }
            "chat.history" if !self.config.history_delay.is_zero() => {
                let me = self.clone();
                let delay = self.config.history_delay;
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    me.history(conn, &id, &params);
                });
            }
            "chat.history" => self.history(conn, &id, &params),
            _ => self.send_to(
                conn,
                json!({"type":"res","id":id,"ok":false,"error":{"code":"INVALID_REQUEST","message":format!("unknown method: {method}")}}),
            ),
        }
    }

    fn history(&self, conn: u64, id: &str, params: &Value) {
        let ok = |payload: Value| json!({"type":"res","id":id,"ok":true,"payload":payload});
        let key = Self::canonical(params["sessionKey"].as_str().unwrap_or(""));
        let st = lock(&self.state);
        let mut runs: Vec<(&String, &Run)> = st
            .runs
            .iter()
            .filter(|(_, r)| r.session == key && r.started)
            .collect();
        runs.sort_by_key(|(_, r)| r.seq);
        let mut messages = Vec::new();
        let mut in_flight = Value::Null;
        for (run_id, run) in runs {
            messages.push(json!({"role":"user","content":run.message,"idempotencyKey":format!("{run_id}:user")}));
            match &run.end {
                Some(RunEnd::Ok(text)) => messages.push(json!({"role":"assistant","content":[{"type":"text","text":text}],"__openclaw":{"runId":run_id}})),
                None => in_flight = json!({"runId":run_id,"text":run.text}),
                _ => {}
            }
        }
        // Sends waiting in the session's queue (2026.9.6's `pendingInputs.items[]`).
        let queued: Vec<Value> = st
            .runs
            .iter()
            .filter(|(_, r)| r.session == key && !r.started && r.end.is_none())
            .map(|(id, r)| json!({"runId": id, "state": "queued", "message": {"role": "user", "content": r.message}}))
            .collect();
        drop(st);
        let mut payload =
            json!({"sessionKey":key,"messages":messages,"pendingInputs":{"items":queued}});
        if !in_flight.is_null() {
            payload["inFlightRun"] = in_flight;
        }
        self.send_to(conn, ok(payload));
    }

    fn agent(&self, conn: u64, id: &str, p: &Value) {
        if self.config.text_only && p["attachments"].as_array().is_some_and(|a| !a.is_empty()) {
            let name = p["attachments"][0]["fileName"].as_str().unwrap_or("image");
            self.send_to(
                conn,
                json!({"type":"res","id":id,"ok":false,"error":{"code":"INVALID_REQUEST","message":format!("UnsupportedAttachmentError: attachment {name}: active model does not accept image inputs")}}),
            );
            return;
        }
        let run_id = p["idempotencyKey"].as_str().unwrap_or("").to_string();
        let key = Self::canonical(p["sessionKey"].as_str().unwrap_or(""));
        let message = p["message"].as_str().unwrap_or("").to_string();
        let mut st = lock(&self.state);
        if let Some(run) = st.runs.get(&run_id) {
            // De-duplicated: the run already known.
            let frame = match &run.end {
                None => {
                    json!({"type":"res","id":id,"ok":true,"payload":{"runId":run_id,"status":"in_flight","sessionKey":key}})
                }
                Some(RunEnd::Ok(text)) => {
                    json!({"type":"res","id":id,"ok":true,"payload":{"runId":run_id,"status":"ok","summary":"completed","result":{"payloads":[{"text":text}]}}})
                }
                Some(_) => {
                    json!({"type":"res","id":id,"ok":true,"payload":{"runId":run_id,"status":"timeout","summary":"aborted","stopReason":"rpc"}})
                }
            };
            drop(st);
            self.send_to(conn, frame);
            return;
        }
        let seq = st.requests.len() as u64;
        st.runs.insert(
            run_id.clone(),
            Run {
                session: key.clone(),
                message: message.clone(),
                text: String::new(),
                end: None,
                cancel: CancellationToken::new(),
                waiter: Some((conn, id.to_string())),
                started: false,
                seq,
            },
        );
        let lane = st.lanes.entry(key.clone()).or_default();
        lane.push_back(run_id.clone());
        let first = lane.len() == 1;
        drop(st);
        self.send_to(
            conn,
            json!({"type":"res","id":id,"ok":true,"payload":{"runId":run_id,"sessionKey":key,"status":"accepted"}}),
        );
        if first {
            let me = self.clone();
            tokio::spawn(async move { me.lane(key).await });
        }
    }

    /// Runs the session's queued runs one after the other.
    async fn lane(self, key: String) {
        loop {
            let next = lock(&self.state)
                .lanes
                .get(&key)
                .and_then(|l| l.front().cloned());
            let Some(run_id) = next else { return };
            self.execute(&run_id).await;
            let mut st = lock(&self.state);
            if let Some(lane) = st.lanes.get_mut(&key) {
                lane.pop_front();
                if lane.is_empty() {
                    st.lanes.remove(&key);
                    return;
                }
            } else {
                return;
            }
        }
    }

    async fn execute(&self, run_id: &str) {
        let (message, cancel, session) = {
            let mut st = lock(&self.state);
            *st.started.entry(run_id.to_string()).or_default() += 1;
            let Some(run) = st.runs.get_mut(run_id) else {
                return;
            };
            if run.end.is_some() {
                return;
            }
            run.started = true;
            (run.message.clone(), run.cancel.clone(), run.session.clone())
        };
        let words: Vec<String> = match drip(&message) {
            Some((n, _)) => (1..=n).map(|i| format!("w{i}")).collect(),
            None => vec![format!("echo: {message}")],
        };
        let gap = drip(&message).map_or(Duration::from_millis(5), |(_, ms)| {
            Duration::from_millis(ms)
        });
        let mut text = String::new();
        for (i, word) in words.iter().enumerate() {
            tokio::select! {
                () = tokio::time::sleep(gap) => {}
                () = cancel.cancelled() => break,
            }
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(word);
            if let Some(r) = lock(&self.state).runs.get_mut(run_id) {
                r.text = text.clone();
            }
            if self.config.noise {
                self.broadcast(json!({"type":"event","event":"chat","payload":{"runId":"foreign-run","sessionKey":"agent:main:other","state":"delta","message":{"role":"assistant","content":[{"type":"text","text":format!("FOREIGN {i}")}]}}}));
                self.broadcast(json!({"type":"event","event":"brand.new.event","payload":{"x":i}}));
            }
            self.broadcast(json!({"type":"event","event":"agent","payload":{"runId":run_id,"stream":"assistant","data":{"text":text,"delta":word}}}));
            self.broadcast(json!({"type":"event","event":"chat","payload":{"runId":run_id,"sessionKey":session,"state":"delta","deltaText":word,"message":{"role":"assistant","content":[{"type":"text","text":text}]}}}));
        }
        let (end, waiter) = {
            let mut st = lock(&self.state);
            let Some(run) = st.runs.get_mut(run_id) else {
                return;
            };
            if run.end == Some(RunEnd::Lost) {
                return;
            }
            let end = if cancel.is_cancelled() {
                RunEnd::Aborted
            } else {
                RunEnd::Ok(text.clone())
            };
            run.end = Some(end.clone());
            (end, run.waiter.take())
        };
        let (chat, res) = match &end {
            RunEnd::Ok(text) => (
                json!({"runId":run_id,"sessionKey":session,"state":"final","message":{"role":"assistant","content":[{"type":"text","text":text}]}}),
                json!({"runId":run_id,"status":"ok","summary":"completed","result":{"payloads":[{"text":text}],"meta":{"agentMeta":{"model":"fake-model"}}}}),
            ),
            _ => (
                json!({"runId":run_id,"sessionKey":session,"state":"aborted","stopReason":"rpc"}),
                json!({"runId":run_id,"status":"timeout","summary":"aborted","stopReason":"rpc"}),
            ),
        };
        self.broadcast(json!({"type":"event","event":"chat","payload":chat}));
        if let Some((conn, id)) = waiter {
            self.send_to(conn, json!({"type":"res","id":id,"ok":true,"payload":res}));
        }
    }
}

fn drip(message: &str) -> Option<(usize, u64)> {
    let start = message.find("[[drip:")?;
    let rest = &message[start + 7..];
    let end = rest.find("]]")?;
    let (n, ms) = rest[..end].split_once(':')?;
    Some((n.parse().ok()?, ms.parse().ok()?))
}
