//! Driving the bridge over HTTP: the real binary started with `--transport http --host 127.0.0.1
//! --port 0` (the port is read from its `listening address=…` log line), rmcp's Streamable HTTP
//! client in both protocol eras, raw requests with awc, and a raw SSE reader for the legacy
//! transport. awc needs an actix system: tests using it run under `#[actix_rt::test]`.

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use awc::http::header::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use rmcp::{
    RoleClient, ServiceExt,
    model::ProtocolVersion,
    service::{ClientLifecycleMode, ClientServiceExt, RunningService},
    transport::StreamableHttpClientTransport,
};
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

use super::bridge::binary;

/// `Accept` of a Streamable HTTP POST.
pub const ACCEPT_BOTH: &str = "application/json, text/event-stream";

/// The real binary serving HTTP on a loopback port.
pub struct HttpBridge {
    pub port: u16,
    pub base: String,
    child: tokio::process::Child,
    stderr: Arc<Mutex<String>>,
}

impl HttpBridge {
    /// Starts the binary with `--transport http --host 127.0.0.1 --port 0`, `extra_args`, and
    /// exactly `env` (tasks in memory unless set), and waits (bounded) for its listening line.
    pub async fn spawn(extra_args: &[&str], env: &[(&str, &str)]) -> HttpBridge {
        Self::spawn_with_transport("http", extra_args, env).await
    }

    pub async fn spawn_with_transport(
        transport: &str,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> HttpBridge {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut cmd = tokio::process::Command::new(binary());
        cmd.env_clear()
            .args([
                "--transport",
                transport,
                "--host",
                "127.0.0.1",
                "--port",
                "0",
            ])
            .args(extra_args)
            .envs(&env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if !env.contains_key("OPENCLAW_MCP_DATA_DIR") {
            cmd.env("OPENCLAW_MCP_DATA_DIR", ":memory:");
        }
        let mut child = cmd.spawn().expect("spawn the bridge");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut port_tx = Some(port_tx);
            let mut lines = tokio::io::BufReader::new(pipe).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening address=127.0.0.1:").nth(1)
                    && let Some(tx) = port_tx.take()
                {
                    let port: u16 = rest
                        .split(|c: char| !c.is_ascii_digit())
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    let _ = tx.send(port);
                }
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let port = match tokio::time::timeout(Duration::from_secs(30), port_rx).await {
            Ok(Ok(port)) => port,
            _ => panic!(
                "the bridge did not report its port; stderr:\n{}",
                stderr.lock().unwrap()
            ),
        };
        HttpBridge {
            port,
            base: format!("http://127.0.0.1:{port}"),
            child,
            stderr,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// rmcp's client over Streamable HTTP with the `initialize` handshake (a session). reqwest is
    /// built without a TLS provider: the process installs ring first, as the binary does.
    pub async fn legacy_client(&self) -> RunningService<RoleClient, ()> {
        openclaw_mcp::app::install_crypto_provider();
        ().serve(StreamableHttpClientTransport::from_uri(self.url("/mcp")))
            .await
            .expect("initialize over Streamable HTTP")
    }

    /// rmcp's client over Streamable HTTP in the 2026-07-28 era (`server/discover`, stateless).
    pub async fn modern_client(&self) -> RunningService<RoleClient, ()> {
        openclaw_mcp::app::install_crypto_provider();
        ().serve_with_lifecycle(
            StreamableHttpClientTransport::from_uri(self.url("/mcp")),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover over Streamable HTTP")
    }

    /// `GET /health` as JSON.
    pub async fn health(&self) -> Value {
        let (status, _, body) = get(&self.url("/health"), &[]).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        serde_json::from_slice(&body).unwrap()
    }

    /// Sends `signal` (e.g. `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("the bridge is running");
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; its exit code.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        tokio::time::timeout(within, self.child.wait())
            .await
            .expect("the bridge exits in time")
            .unwrap()
            .code()
    }
}

/// An awc client with a bounded timeout for the response head.
pub fn client() -> awc::Client {
    awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
}

async fn send(
    req: awc::ClientRequest,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> (u16, HeaderMap, Bytes) {
    let mut req = req;
    for (k, v) in headers {
        req = req.insert_header((*k, *v));
    }
    let mut res = match body {
        Some(body) => req.send_body(body).await,
        None => req.send().await,
    }
    .expect("the request got an answer");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = tokio::time::timeout(Duration::from_secs(30), res.body().limit(16 << 20))
        .await
        .expect("the body arrives in time")
        .unwrap_or_default();
    (status, headers, body)
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Bytes) {
    send(client().get(url), headers, None).await
}

pub async fn post(url: &str, headers: &[(&str, &str)], body: &str) -> (u16, HeaderMap, Bytes) {
    send(client().post(url), headers, Some(body.to_string())).await
}

pub async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, HeaderMap, Bytes) {
    let method = awc::http::Method::from_bytes(method.as_bytes()).unwrap();
    send(
        client().request(method, url),
        headers,
        body.map(str::to_string),
    )
    .await
}

/// A JSON body, parsed; panics with the text when it is not JSON.
pub fn json_body(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(body)))
}

/// The `data:` JSON payloads of an SSE body.
pub fn sse_messages(body: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(body)
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// A legacy-era `initialize` request.
pub fn initialize_body(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw-test", "version": "1"}}})
    .to_string()
}

/// Opens a legacy-era session with raw requests; its `Mcp-Session-Id`.
pub async fn open_session(bridge: &HttpBridge) -> String {
    let (status, headers, body) = post(
        &bridge.url("/mcp"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
        ],
        &initialize_body(1),
    )
    .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let id = headers
        .get("mcp-session-id")
        .expect("a session id")
        .to_str()
        .unwrap()
        .to_string();
    let (status, _, _) = post(
        &bridge.url("/mcp"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
            ("Mcp-Session-Id", &id),
            ("MCP-Protocol-Version", "2025-06-18"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    )
    .await;
    assert_eq!(status, 202);
    id
}

/// A 2026-07-28 `tools/call` with its headers, for raw requests.
pub fn modern_call(id: u64, tool: &str, arguments: Value) -> (Vec<(&'static str, String)>, String) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let headers = vec![
        ("Content-Type", "application/json".to_string()),
        ("Accept", ACCEPT_BOTH.to_string()),
        ("MCP-Protocol-Version", "2026-07-28".to_string()),
        ("Mcp-Method", "tools/call".to_string()),
        ("Mcp-Name", tool.to_string()),
    ];
    (headers, body)
}

/// Borrows owned header pairs for [`post`].
pub fn borrowed<'a>(headers: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A raw reader of an SSE response (the legacy `/sse` stream).
pub struct SseReader {
    response: awc::ClientResponse,
    buffer: String,
}

/// One SSE event; `event` is empty for a comment (keep-alive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseReader {
    /// Opens `url` with `Accept: text/event-stream`; the status and the reader.
    pub async fn open(url: &str) -> (u16, SseReader) {
        Self::open_with(url, &[]).await
    }

    /// [`SseReader::open`] with more request headers.
    pub async fn open_with(url: &str, headers: &[(&str, &str)]) -> (u16, SseReader) {
        let mut request = client()
            .get(url)
            .insert_header(("Accept", "text/event-stream"));
        for (k, v) in headers {
            request = request.insert_header((*k, *v));
        }
        let response = request.send().await.expect("the SSE request got an answer");
        let status = response.status().as_u16();
        (
            status,
            SseReader {
                response,
                buffer: String::new(),
            },
        )
    }

    /// The next event or comment, waiting at most `within`; `None` when the stream ended.
    pub async fn next(&mut self, within: Duration) -> Option<SseEvent> {
        tokio::time::timeout(within, async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    let mut event = SseEvent {
                        event: String::new(),
                        data: String::new(),
                    };
                    for line in block.lines() {
                        if let Some(v) = line.strip_prefix("event:") {
                            event.event = v.trim().to_string();
                        } else if let Some(v) = line.strip_prefix("data:") {
                            event.data.push_str(v.trim_start());
                        } else if line.starts_with(':') {
                            event.event = String::new();
                            event.data = line.to_string();
                        }
                    }
                    return Some(event);
                }
                match self.response.next().await {
                    Some(Ok(chunk)) => self.buffer.push_str(&String::from_utf8_lossy(&chunk)),
                    _ => return None,
                }
            }
        })
        .await
        .expect("an SSE event in time")
    }

    /// The next `message` event's JSON, skipping keep-alive comments.
    pub async fn next_message(&mut self, within: Duration) -> Value {
        loop {
            let event = self.next(within).await.expect("the stream is open");
            if event.event == "message" {
                return serde_json::from_str(&event.data).unwrap();
            }
        }
    }
}
