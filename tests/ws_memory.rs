//! What a frame the bridge throws away costs it: a gateway (or anything on a plain `ws://` path)
//! may send frames up to the 64 MiB read limit, and a `serde_json::Value` of `[0,0,…]` takes
//! about 16 times its text. An ignored event must cost about its size, not many times it; an
//! answer of zeros aimed at a request id (which a hostile gateway can predict) is refused by its
//! parse cost before it is parsed. (A server that floods before `hello-ok`: tests/ws_hostile.rs.)
//!
//! The peak resident set of the test process is measured (`VmHWM`, reset through
//! `/proc/self/clear_refs`), so this file holds one test, Linux only (the server and the bridge
//! run in this process: both are counted).

#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openclaw_mcp::gateway::ws::{Options, Phase, WsClient, conn::Endpoint};
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::oneshot};
use tokio_tungstenite::tungstenite::{Message, protocol::WebSocketConfig};

/// `VmRSS` or `VmHWM` (the peak resident set) of this process, in KiB.
fn status_kib(field: &str) -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// Starts the peak resident set over from the current one (Linux 4.0 and later).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

const MIB: usize = 1024 * 1024;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A gateway that completes the handshake, then sends one `tick` event of `zeros` JSON zeros
/// when told to, then answers every request: `health` with `{}`, `big` with a payload of
/// `zeros` zeros (aimed at the request's id, which a hostile gateway can predict).
async fn gateway(zeros: usize, go: oneshot::Receiver<()>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let config = WebSocketConfig::default()
            .max_message_size(None)
            .max_frame_size(None);
        let mut ws = tokio_tungstenite::accept_async_with_config(tcp, Some(config))
            .await
            .unwrap();
        let challenge = json!({"type":"event","event":"connect.challenge","payload":{"nonce":"n-1","ts":now_ms()}});
        ws.send(Message::text(challenge.to_string())).await.unwrap();
        let id = loop {
            if let Some(Ok(Message::Text(t))) = ws.next().await {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                break v["id"].as_str().unwrap().to_string();
            }
        };
        let hello = json!({"type":"res","id":id,"ok":true,"payload":{
            "type":"hello-ok","protocol":4,
            "server":{"version":"big","bootId":"b"},
            "auth":{"method":"token","scopes":["operator.read","operator.write"]},
            "policy":{"maxPayload":26214400u64,"tickIntervalMs":30000}}});
        ws.send(Message::text(hello.to_string())).await.unwrap();
        go.await.unwrap();
        let mut frame = String::with_capacity(zeros * 2 + 64);
        frame.push_str(r#"{"type":"event","event":"tick","payload":["#);
        for i in 0..zeros {
            if i > 0 {
                frame.push(',');
            }
            frame.push('0');
        }
        frame.push_str("]}");
        ws.send(Message::text(frame.clone())).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let request: Value = serde_json::from_str(text.as_str()).unwrap();
            let id = request["id"].as_str().unwrap();
            let answer = if request["method"] == "big" {
                let head = format!(r#"{{"type":"res","id":"{id}","ok":true,"payload":"#);
                format!(
                    "{head}{}}}",
                    &frame[frame.find('[').unwrap()..frame.len() - 1]
                )
            } else {
                json!({"type":"res","id":id,"ok":true,"payload":{}}).to_string()
            };
            ws.send(Message::text(answer)).await.unwrap();
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn options(url: &str) -> Options {
    let mut o = Options::new(Endpoint::from_base_url(url).unwrap(), Some("t".into()));
    o.ping_every = Duration::from_millis(100);
    o.dead_after = Duration::from_secs(5);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ignored_eight_mebibyte_event_costs_about_its_size_not_sixteen_times_it() {
    let zeros = 4 * MIB; // 8 MiB of text
    let (go, wait) = oneshot::channel();
    let url = gateway(zeros, wait).await;
    let client = WsClient::start(options(&url), None);
    let mut rx = client.changes();
    let session = loop {
        if let Phase::Ready(s) = rx.borrow_and_update().clone() {
            break s;
        }
        tokio::time::timeout(Duration::from_secs(5), rx.changed())
            .await
            .unwrap()
            .unwrap();
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    reset_peak();
    let before = status_kib("VmRSS:");
    go.send(()).unwrap();
    // The frame is read and thrown away; the connection stays, and an answer sent after the frame
    // arrives (so the frame was read before it).
    session
        .request("health", json!({}), Duration::from_secs(20))
        .await
        .expect("an answer after the ignored frame");
    assert!(!session.is_closed());
    let grown = status_kib("VmHWM:").saturating_sub(before) / 1024;
    // The server's text and its frame (about 16 MiB), the bridge's read buffer and text (about
    // 16 MiB more): 32 MiB; parsed into a Value the zeros alone would take 128 MiB more.
    eprintln!("peak resident set grew by {grown} MiB for one ignored 8 MiB frame");
    assert!(
        grown < 64,
        "peak resident set grew by {grown} MiB for one 8 MiB frame that is thrown away"
    );

    // The same zeros as the answer to a request of the bridge's own (the gateway knows its id):
    // refused by its cost before any parse, and the caller told so.
    tokio::time::sleep(Duration::from_millis(500)).await;
    reset_peak();
    let before = status_kib("VmRSS:");
    let refused = session
        .request("big", json!({}), Duration::from_secs(20))
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("would take about")
            && refused.to_string().contains("it was dropped"),
        "{refused}"
    );
    let grown = status_kib("VmHWM:").saturating_sub(before) / 1024;
    eprintln!(
        "peak resident set grew by {grown} MiB for an 8 MiB answer of zeros aimed at a request"
    );
    assert!(grown < 64, "peak resident set grew by {grown} MiB");
    assert!(!session.is_closed());
}
