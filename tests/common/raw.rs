//! HTTP/1.1 by hand over a TCP socket, for what no client library sends: request targets written
//! byte for byte (percent-encodings, dot segments, `;` parameters, absolute form), bodies that
//! trickle in, and connections held open.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// What came back.
#[derive(Debug, Clone)]
pub struct RawReply {
    /// The status code (0 if no status line arrived).
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    /// Whatever body bytes arrived within the wait (chunked framing left in place).
    pub body: Vec<u8>,
    /// Whether the server closed the connection within the wait.
    pub closed: bool,
}

impl RawReply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Parses what arrived so far.
pub fn parse(bytes: &[u8], closed: bool) -> RawReply {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = match text.find("\r\n\r\n") {
        Some(i) => (&text[..i], bytes[i + 4..].to_vec()),
        None => (&text[..], Vec::new()),
    };
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    RawReply {
        status,
        headers,
        body,
        closed,
    }
}

/// Reads until the server closes the connection or `wait` passes.
pub async fn read_reply(stream: &mut TcpStream, wait: Duration) -> RawReply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + wait;
    let mut closed = false;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    parse(&bytes, closed)
}

/// Sends `head` (request line and headers, without the blank line; `Host` and
/// `Connection: close` are added) and `body`, then reads the reply for at most `wait`.
pub async fn request(port: u16, head: &str, body: &[u8], wait: Duration) -> RawReply {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the bridge");
    let mut request = format!("{head}\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.expect("send the request");
    read_reply(&mut stream, wait).await
}
