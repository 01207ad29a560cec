//! The bridge as an attacker sees it, and what its legitimate users see meanwhile: the real
//! binary in HTTP mode on a loopback port 0, with static bearer tokens and with OAuth, probed with
//! hand-written HTTP (every spelling of a protected path), other principals' session ids, request
//! ids and `Last-Event-ID`s, bodies that trickle, floods of failed tokens and of sessions, and a
//! shutdown under load.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{
    FakeGateway, call,
    http::{ACCEPT_BOTH, HttpBridge, SseReader, initialize_body, json_body},
    is_error, json_of,
    raw::{self, RawReply},
    text,
};
use openclaw_mcp::auth::tokens::{Claims, SigningKey};
use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::json;
use tokio::io::AsyncWriteExt;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef0";
const TOKENS: &str = "alice:alice-token-0123456789abcdef,bob:bob-token-0123456789abcdef0";
const CLIENT_ID: &str = "openclaw";
const SECRET: &str = "0123456789abcdef0123456789abcdef-secret";
const SIGNING_KEY: &str = "test-signing-key-test-signing-key-0123456789";
const WAIT: Duration = Duration::from_secs(5);

/// Which authentication a bridge runs with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    StaticTokens,
    OAuth,
    Both,
}

async fn bridge(gw: &FakeGateway, mode: Mode, extra: &[(&str, &str)]) -> HttpBridge {
    let mut env = vec![("OPENCLAW_URL", gw.url.as_str())];
    if mode != Mode::OAuth {
        env.push(("MCP_BEARER_TOKENS", TOKENS));
    }
    if mode != Mode::StaticTokens {
        env.extend([
            ("AUTH_ENABLED", "true"),
            ("MCP_CLIENT_ID", CLIENT_ID),
            ("MCP_CLIENT_SECRET", SECRET),
            ("MCP_TOKEN_SIGNING_KEY", SIGNING_KEY),
        ]);
    }
    env.extend_from_slice(extra);
    HttpBridge::spawn(&[], &env).await
}

/// An access token of this bridge for OAuth grant `grant` of the configured client, as its
/// `/token` endpoint would issue it (two grants = two people using the same client).
fn grant_token(b: &HttpBridge, grant: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SigningKey::new(SIGNING_KEY.as_bytes()).sign(&Claims {
        iss: b.base.clone(),
        aud: b.url("/mcp"),
        sub: CLIENT_ID.into(),
        scope: "mcp:tools".into(),
        exp: now + 600,
        iat: now,
        jti: uuid::Uuid::new_v4().to_string(),
        gid: grant.into(),
    })
}

/// A raw `initialize` POST to `target`, with `token` if any.
async fn initialize_at(port: u16, target: &str, token: Option<&str>) -> RawReply {
    let mut head = format!(
        "POST {target} HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}"
    );
    if let Some(token) = token {
        head.push_str(&format!("\r\nAuthorization: Bearer {token}"));
    }
    raw::request(port, &head, initialize_body(1).as_bytes(), WAIT).await
}

/// A raw `GET` of `target` for an SSE stream (read for a short while: a stream does not end).
async fn get_stream(port: u16, target: &str, token: Option<&str>) -> RawReply {
    let mut head = format!("GET {target} HTTP/1.1\r\nAccept: text/event-stream");
    if let Some(token) = token {
        head.push_str(&format!("\r\nAuthorization: Bearer {token}"));
    }
    raw::request(port, &head, b"", Duration::from_millis(700)).await
}

/// Spellings of `/mcp` that actix routes to it, and some it does not; every one must be
/// answered 401 without a token (routed under the protected `/mcp` scope) or a JSON 404 (not
/// routed), and with a token as the canonical path (a session) or 404.
const MCP_SPELLINGS: &[&str] = &[
    "/mcp",
    "/%6Dcp",
    "/%6dcp",
    "/m%63p",
    "/mc%70",
    "/%6D%63%70",
    "/mcp/",
    "/%6Dcp/",
    "/mcp//",
    "//mcp",
    "///mcp",
    "/./mcp",
    "/mcp/.",
    "/x/../mcp",
    "/%2e/mcp",
    "/mcp/%2e",
    "/mcp;a=b",
    "/mcp%3Ba=b",
    "/mcp?x=1",
    "/%6Dcp?sessionId=1",
    "/mcp/?",
    "/MCP",
    "/Mcp",
    "/mcp%2F",
    "/%2Fmcp",
    "/mcp%20",
    "/mcp%00",
    "/mcp/x",
    "/mcpx",
    "/mcp%3f",
];

const SSE_SPELLINGS: &[&str] = &[
    "/sse",
    "/%73se",
    "/s%73e",
    "/%73%73%65",
    "/sse/",
    "//sse",
    "/./sse",
    "/sse;x",
    "/sse?x=1",
    "/SSE",
    "/%2Fsse",
];

const MESSAGES_SPELLINGS: &[&str] = &[
    "/messages?sessionId=x",
    "/%6Dessages?sessionId=x",
    "/me%73sages?sessionId=x",
    "/messages/?sessionId=x",
    "//messages?sessionId=x",
    "/messages;a?sessionId=x",
];

#[actix_rt::test]
async fn every_spelling_of_a_protected_route_is_guarded_like_the_route() {
    let gw = FakeGateway::start();
    for mode in [Mode::StaticTokens, Mode::OAuth] {
        let b = bridge(&gw, mode, &[]).await;
        let token = match mode {
            Mode::OAuth => grant_token(&b, "grant-one"),
            _ => ALICE.to_string(),
        };
        let mut table = Vec::new();
        let mut routed = 0;
        for target in MCP_SPELLINGS {
            let anonymous = initialize_at(b.port, target, None).await;
            let authorized = initialize_at(b.port, target, Some(&token)).await;
            table.push(format!(
                "{mode:?} POST {target}: {} / {}",
                anonymous.status, authorized.status
            ));
            assert!(
                anonymous.header("mcp-session-id").is_none(),
                "{mode:?} POST {target} opened a session without a token:\n{}",
                table.join("\n")
            );
            match anonymous.status {
                // Under the protected scope: the endpoint itself (a session, as `/mcp`), or a
                // path below it that only a token holder learns does not exist.
                401 => {
                    assert!(anonymous.header("www-authenticate").is_some());
                    match authorized.status {
                        200 => {
                            routed += 1;
                            assert!(authorized.header("mcp-session-id").is_some());
                        }
                        404 => assert!(authorized.header("mcp-session-id").is_none()),
                        other => panic!(
                            "{mode:?} POST {target}: {other} with a token:\n{}",
                            table.join("\n")
                        ),
                    }
                }
                404 => {
                    assert_eq!(authorized.status, 404, "{mode:?} POST {target}");
                    assert!(
                        authorized.header("mcp-session-id").is_none(),
                        "{mode:?} POST {target}"
                    );
                    let body = json_body(&anonymous.body);
                    assert_eq!(body["error"]["code"], -32000, "a JSON 404: {body}");
                }
                other => panic!(
                    "{mode:?} POST {target}: {other}, expected 401 or 404:\n{}",
                    table.join("\n")
                ),
            }
        }
        assert!(
            routed >= 8,
            "percent-encoded and slash variants reach /mcp: {}",
            table.join("\n")
        );
        for target in SSE_SPELLINGS {
            let anonymous = get_stream(b.port, target, None).await;
            assert!(
                [401, 404].contains(&anonymous.status),
                "{mode:?} GET {target}: {}",
                anonymous.status
            );
            assert!(
                !anonymous.text().contains("event: endpoint"),
                "{mode:?} GET {target} opened a legacy session without a token"
            );
            let authorized = get_stream(b.port, target, Some(&token)).await;
            if anonymous.status == 401 {
                assert_eq!(authorized.status, 200, "{mode:?} GET {target}");
                assert!(authorized.text().contains("event: endpoint"));
            } else {
                assert_eq!(authorized.status, 404, "{mode:?} GET {target}");
            }
        }
        assert_eq!(get_stream(b.port, "/%73se", None).await.status, 401);
        for target in MESSAGES_SPELLINGS {
            let head = format!("POST {target} HTTP/1.1\r\nContent-Type: application/json");
            let anonymous = raw::request(b.port, &head, initialize_body(1).as_bytes(), WAIT).await;
            assert!(
                [401, 404].contains(&anonymous.status),
                "{mode:?} POST {target}: {}",
                anonymous.status
            );
        }
        // Absolute-form request targets route like their path.
        let absolute = format!("http://127.0.0.1:{}/%6Dcp", b.port);
        let reply = initialize_at(b.port, &absolute, None).await;
        assert!([400, 401, 404].contains(&reply.status), "{}", reply.status);
        assert!(reply.header("mcp-session-id").is_none());
        // The legitimate user was served all along.
        assert_eq!(
            initialize_at(b.port, "/mcp", Some(&token)).await.status,
            200
        );
    }
}

/// rmcp's Streamable HTTP client in the initialize era with `token`.
async fn session_client(
    b: &HttpBridge,
    token: &str,
) -> rmcp::service::RunningService<rmcp::RoleClient, ()> {
    openclaw_mcp::app::install_crypto_provider();
    let config = StreamableHttpClientTransportConfig::with_uri(b.url("/mcp")).auth_header(token);
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .expect("an authenticated session")
}

/// A raw request in session `session` with `token`.
async fn in_session(
    port: u16,
    method: &str,
    session: &str,
    token: &str,
    body: Option<&str>,
) -> RawReply {
    let mut head = format!(
        "{method} /mcp HTTP/1.1\r\nAccept: {ACCEPT_BOTH}\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\nAuthorization: Bearer {token}"
    );
    if body.is_some() {
        head.push_str("\r\nContent-Type: application/json");
    }
    raw::request(
        port,
        &head,
        body.unwrap_or("").as_bytes(),
        Duration::from_secs(3),
    )
    .await
}

#[actix_rt::test]
async fn a_session_answers_only_the_principal_that_opened_it() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, Mode::Both, &[]).await;
    let grant_one = grant_token(&b, "grant-one");
    let grant_two = grant_token(&b, "grant-two");

    // Alice (a static token) opens a session with raw requests.
    let opened = initialize_at(b.port, "/mcp", Some(ALICE)).await;
    assert_eq!(opened.status, 200);
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(
        in_session(b.port, "POST", &session, ALICE, Some(initialized))
            .await
            .status,
        202
    );
    let list = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;
    let unknown = in_session(b.port, "POST", "no-such-session", ALICE, Some(list)).await;
    assert_eq!(unknown.status, 404);
    for (who, token) in [("bob", BOB), ("an OAuth grant", grant_one.as_str())] {
        for (method, body) in [("POST", Some(list)), ("GET", None), ("DELETE", None)] {
            let reply = in_session(b.port, method, &session, token, body).await;
            assert_eq!(
                reply.status,
                404,
                "{who} {method} in alice's session: {}",
                reply.text()
            );
            assert_eq!(
                json_body(&reply.body),
                json_body(&unknown.body),
                "{who} {method}: the same answer as an unknown session"
            );
        }
    }
    let unknown_delete = in_session(b.port, "DELETE", "no-such-session", ALICE, None).await;
    assert_eq!(unknown_delete.status, 404);
    // Alice's session is untouched.
    let mine = in_session(b.port, "POST", &session, ALICE, Some(list)).await;
    assert_eq!(mine.status, 200, "{}", mine.text());
    assert!(mine.text().contains("openclaw_chat"));

    // A legacy session opened by one OAuth grant takes messages from that grant only.
    let (status, mut sse) = SseReader::open_with(
        &b.url("/sse"),
        &[("Authorization", &format!("Bearer {grant_one}"))],
    )
    .await;
    assert_eq!(status, 200);
    let endpoint = sse.next(WAIT).await.unwrap().data;
    for token in [grant_two.as_str(), ALICE] {
        let head = format!(
            "POST {endpoint} HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}"
        );
        let reply = raw::request(b.port, &head, initialize_body(1).as_bytes(), WAIT).await;
        assert_eq!(reply.status, 404, "{}", reply.text());
    }
    let head = format!(
        "POST {endpoint} HTTP/1.1\r\nContent-Type: application/json\r\nAuthorization: Bearer {grant_one}"
    );
    let reply = raw::request(b.port, &head, initialize_body(1).as_bytes(), WAIT).await;
    assert_eq!(reply.status, 202);
    assert_eq!(sse.next_message(WAIT).await["id"], 1);

    // Two people on the same configured client: each sees only their own tasks.
    let one = session_client(&b, &grant_one).await;
    let two = session_client(&b, &grant_two).await;
    let queued = json_of(
        &one.call_tool(call(
            "openclaw_chat_async",
            json!({"message": "[[delay:3000]] grant one's"}),
        ))
        .await
        .unwrap(),
    );
    let task = queued["task_id"].as_str().unwrap().to_string();
    let status = two
        .call_tool(call("openclaw_task_status", json!({"task_id": task})))
        .await
        .unwrap();
    assert!(is_error(&status), "{}", text(&status));
    let listed = json_of(
        &two.call_tool(call("openclaw_task_list", json!({})))
            .await
            .unwrap(),
    );
    assert!(!listed.to_string().contains(&task), "{listed}");
    let cancel = two
        .call_tool(call("openclaw_task_cancel", json!({"task_id": task})))
        .await
        .unwrap();
    assert!(is_error(&cancel), "{}", text(&cancel));
    let status = json_of(
        &one.call_tool(call("openclaw_task_status", json!({"task_id": task})))
            .await
            .unwrap(),
    );
    assert_ne!(status["status"], "cancelled", "{status}");
    // Alice's static token and bob's are principals of their own too.
    let alice = session_client(&b, ALICE).await;
    let listed = json_of(
        &alice
            .call_tool(call("openclaw_task_list", json!({})))
            .await
            .unwrap(),
    );
    assert!(!listed.to_string().contains(&task), "{listed}");
}

/// Sends `head` and the first byte of a `len`-byte body, then one byte every `every` until the
/// server answers; the reply and when it came.
async fn trickle(port: u16, head: &str, len: usize, every: Duration) -> (RawReply, Duration) {
    let started = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!("{head}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len}\r\n\r\n{{");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        for _ in 1..len {
            tokio::time::sleep(every).await;
            if writer.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout_at(deadline, reader.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    writing.abort();
    (raw::parse(&bytes, closed), started.elapsed())
}

#[actix_rt::test]
async fn a_trickled_body_is_cut_off_with_408_and_starves_nobody() {
    openclaw_mcp::app::raise_open_file_limit();
    let gw = FakeGateway::start();
    let b = bridge(&gw, Mode::Both, &[("MCP_BODY_TIMEOUT_SECS", "2")]).await;
    let every = Duration::from_millis(200);
    let mcp_head = format!(
        "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nAuthorization: Bearer {ALICE}"
    );
    let (reply, took) = trickle(b.port, &mcp_head, 10_000, every).await;
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert!(reply.closed, "the connection is closed");
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(json_body(&reply.body)["error"]["code"], -32000);
    // The OAuth token endpoint, and a route that reads no body at all.
    let token_head = "POST /token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded";
    let (reply, took) = trickle(b.port, token_head, 10_000, every).await;
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert!(reply.closed && took < Duration::from_secs(10), "{took:?}");
    let (reply, _) = trickle(b.port, "GET /health HTTP/1.1", 10_000, every).await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.closed,
        "a body the route does not read does not keep the connection"
    );

    // A thousand of them at once: /health and a legitimate tool call are still served.
    let mut floods = Vec::new();
    for i in 0..1000 {
        let head = match i % 3 {
            0 => mcp_head.clone(),
            1 => token_head.to_string(),
            _ => "POST /nowhere HTTP/1.1\r\nContent-Type: application/json".to_string(),
        };
        let port = b.port;
        floods.push(tokio::spawn(async move {
            trickle(port, &head, 100_000, Duration::from_millis(500)).await
        }));
    }
    // Let them connect and start trickling.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let health = b.health().await;
    assert_eq!(health["status"], "ok");
    let client = session_client(&b, BOB).await;
    let answer = client
        .call_tool(call("openclaw_chat", json!({"message": "still here"})))
        .await
        .unwrap();
    assert_eq!(text(&answer), "echo: still here");
    let mut cut = 0;
    for flood in floods {
        let (reply, took) = flood.await.unwrap();
        assert!(took < Duration::from_secs(30), "{took:?}");
        if [408, 404].contains(&reply.status) && reply.closed {
            cut += 1;
        }
    }
    assert_eq!(cut, 1000, "every trickler was cut off");
    assert_eq!(b.health().await["status"], "ok");
}

#[actix_rt::test]
async fn failed_tokens_never_spend_an_authenticated_callers_budget() {
    let gw = FakeGateway::start();
    let b = bridge(
        &gw,
        Mode::StaticTokens,
        &[("MCP_RATE_LIMIT_PER_MINUTE", "5")],
    )
    .await;
    // An attacker on the same address spends the unauthenticated bucket.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(
            initialize_at(b.port, "/mcp", Some("wrong-token"))
                .await
                .status,
        );
    }
    assert_eq!(statuses[..5], [401; 5]);
    assert_eq!(statuses[5..], [429; 3]);
    // Alice, same address, is limited on her own.
    for _ in 0..5 {
        assert_eq!(initialize_at(b.port, "/mcp", Some(ALICE)).await.status, 200);
    }
    assert_eq!(initialize_at(b.port, "/mcp", Some(ALICE)).await.status, 429);
    // Bob has his own budget.
    assert_eq!(initialize_at(b.port, "/mcp", Some(BOB)).await.status, 200);
}

#[actix_rt::test]
async fn x_forwarded_for_without_trust_proxy_is_explained_once() {
    let gw = FakeGateway::start();
    let b = HttpBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    for _ in 0..3 {
        let reply = raw::request(
            b.port,
            "GET /health HTTP/1.1\r\nX-Forwarded-For: 203.0.113.9",
            b"",
            WAIT,
        )
        .await;
        assert_eq!(reply.status, 200);
    }
    common::eventually("the warning", || b.logs().contains("TRUST_PROXY")).await;
    assert_eq!(
        b.logs()
            .matches("X-Forwarded-For but TRUST_PROXY is not set")
            .count(),
        1,
        "{}",
        b.logs()
    );
}

#[actix_rt::test]
async fn a_session_flood_closes_the_flooders_own_sessions_only() {
    let gw = FakeGateway::start();
    // 8 sessions in all, 2 per caller; callers told apart by address behind a trusted proxy.
    let b = HttpBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("MCP_MAX_SESSIONS", "8"),
            ("TRUST_PROXY", "true"),
        ],
    )
    .await;
    let open = |from: &'static str| {
        let port = b.port;
        async move {
            let head = format!(
                "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nX-Forwarded-For: {from}"
            );
            let reply = raw::request(port, &head, initialize_body(1).as_bytes(), WAIT).await;
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.header("mcp-session-id").unwrap().to_string()
        }
    };
    let alive = |session: String, from: &'static str| {
        let port = b.port;
        async move {
            let head = format!(
                "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\nX-Forwarded-For: {from}"
            );
            let ping = r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#;
            raw::request(port, &head, ping.as_bytes(), WAIT)
                .await
                .status
        }
    };
    let victim = open("198.51.100.7").await;
    let mut flood = Vec::new();
    // The flooder rotates through its own /64.
    const FLOODER: [&str; 4] = [
        "2001:db8:1:2::1",
        "2001:db8:1:2::2",
        "2001:db8:1:2:ffff::9",
        "2001:db8:1:2::4",
    ];
    for i in 0..20 {
        flood.push(open(FLOODER[i % 4]).await);
    }
    let mut closed = 0;
    for session in &flood[..18] {
        let status = alive(session.clone(), FLOODER[0]).await;
        assert!([200, 404].contains(&status));
        closed += usize::from(status == 404);
    }
    assert_eq!(closed, 18, "all but the flooder's two newest were closed");
    for session in &flood[18..] {
        assert_eq!(alive(session.clone(), FLOODER[0]).await, 200);
    }
    assert_eq!(
        alive(victim, "198.51.100.7").await,
        200,
        "another caller's session is untouched"
    );
    // And a new caller still gets a session.
    open("192.0.2.1").await;
    let health = b.health().await;
    assert_eq!(health["sessions"]["perCaller"], 2);
    assert!(health["sessions"]["streamableHttp"].as_u64().unwrap() <= 4);
}

#[actix_rt::test]
async fn shutdown_answers_new_connections_503_and_cut_off_calls_with_an_error() {
    let gw = FakeGateway::start();
    let mut b = HttpBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("MCP_SHUTDOWN_GRACE_SECS", "1"),
        ],
    )
    .await;
    let opened = initialize_at(b.port, "/mcp", None).await;
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let port = b.port;
    let slow = tokio::spawn(async move {
        let head = format!(
            "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18"
        );
        let body = json!({"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"[[delay:20000]] too slow"}}});
        raw::request(
            port,
            &head,
            body.to_string().as_bytes(),
            Duration::from_secs(20),
        )
        .await
    });
    // The same over the 2026-07-28 era (no session) and over legacy SSE.
    let stateless = tokio::spawn(async move {
        let (headers, body) = common::http::modern_call(
            43,
            "openclaw_chat",
            json!({"message": "[[delay:20000]] stateless"}),
        );
        let head = std::iter::once("POST /mcp HTTP/1.1".to_string())
            .chain(headers.iter().map(|(k, v)| format!("{k}: {v}")))
            .collect::<Vec<_>>()
            .join("\r\n");
        raw::request(port, &head, body.as_bytes(), Duration::from_secs(20)).await
    });
    let (status, mut sse) = SseReader::open(&b.url("/sse")).await;
    assert_eq!(status, 200);
    let messages = b.url(&sse.next(WAIT).await.unwrap().data);
    let post = |body: String| {
        let messages = messages.clone();
        async move {
            common::http::post(&messages, &[("Content-Type", "application/json")], &body)
                .await
                .0
        }
    };
    assert_eq!(post(initialize_body(1)).await, 202);
    assert_eq!(sse.next_message(WAIT).await["id"], 1);
    post(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_string()).await;
    let legacy_call = json!({"jsonrpc":"2.0","id":44,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"[[delay:20000]] legacy"}}});
    assert_eq!(post(legacy_call.to_string()).await, 202);
    common::eventually("the calls are in flight", || gw.chats().len() == 3).await;
    b.signal("TERM");
    common::eventually("shutdown begins", || {
        b.logs().contains("Shutting down HTTP server")
    })
    .await;
    // A new connection is answered at once.
    let started = Instant::now();
    let reply = raw::request(b.port, "GET /health HTTP/1.1", b"", WAIT).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(json_body(&reply.body)["error"]["code"], -32000);
    // The call cut off at the end of the grace period gets an error, not an empty answer.
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200);
    let messages: Vec<serde_json::Value> = reply
        .text()
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str(d.trim()).ok())
        .collect();
    let answer = messages
        .iter()
        .find(|m| m["id"] == 42)
        .unwrap_or_else(|| panic!("no answer for the call: {}", reply.text()));
    assert_eq!(answer["error"]["code"], -32000, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("shutting down")
    );
    let reply = stateless.await.unwrap();
    let body = if reply
        .header("content-type")
        .unwrap_or("")
        .starts_with("text/event-stream")
    {
        reply
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<serde_json::Value>(d.trim()).ok())
            .find(|m| m["id"] == 43)
            .unwrap_or_else(|| panic!("no answer: {}", reply.text()))
    } else {
        json_body(&reply.body)
    };
    assert_eq!(body["id"], 43, "{} {}", reply.status, reply.text());
    assert!(body["error"]["message"].is_string(), "{body}");
    let legacy = sse.next_message(Duration::from_secs(10)).await;
    assert_eq!(legacy["id"], 44);
    assert_eq!(legacy["error"]["code"], -32000, "{legacy}");
    assert_eq!(b.wait_exit(Duration::from_secs(20)).await, Some(0));
}

/// Opens an initialize-era session with `token` (raw requests); its id.
async fn open_session_as(port: u16, token: &str) -> String {
    let opened = initialize_at(port, "/mcp", Some(token)).await;
    assert_eq!(opened.status, 200, "{}", opened.text());
    let session = opened.header("mcp-session-id").unwrap().to_string();
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let reply = in_session(port, "POST", &session, token, Some(initialized)).await;
    assert_eq!(reply.status, 202);
    session
}

/// An `openclaw_chat` call with id `id`.
fn chat_call(id: u64, message: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "openclaw_chat", "arguments": {"message": message}}})
    .to_string()
}

/// POSTs `body` in `session` with `token` and reads the response until `done` holds for what
/// arrived (bounded); the open connection (dropping it closes it) and the text so far.
async fn post_until(
    port: u16,
    session: &str,
    token: &str,
    body: &str,
    done: impl Fn(&str) -> bool,
) -> (tokio::net::TcpStream, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&text) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            other => panic!("no more of the response ({other:?}):\n{text}"),
        }
    }
    (stream, text)
}

/// The JSON of the SSE `data:` lines of a response.
fn sse_data(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("data:"))
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

/// The last SSE event id in a response.
fn last_event_id(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("id:"))
        .map(|id| id.trim().to_string())
        .next_back()
}

#[actix_rt::test]
async fn a_duplicate_request_id_in_another_principals_session_does_not_interfere() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, Mode::StaticTokens, &[]).await;
    let alice = open_session_as(b.port, ALICE).await;
    let bob = open_session_as(b.port, BOB).await;
    // Alice's call 9 is in flight.
    let (alice_stream, _) = post_until(
        b.port,
        &alice,
        ALICE,
        &chat_call(9, "[[delay:1500]] alice's"),
        |t| last_event_id(t).is_some(),
    )
    .await;
    // Bob's own call 9 is his own business: answered, not refused as a duplicate.
    let (_, text) = post_until(b.port, &bob, BOB, &chat_call(9, "bob's"), |t| {
        sse_data(t).iter().any(|m| m["id"] == 9)
    })
    .await;
    let answer = sse_data(&text).into_iter().find(|m| m["id"] == 9).unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "echo: bob's",
        "{answer}"
    );
    // Bob cannot post into Alice's session at all, duplicate or not.
    let reply = in_session(
        b.port,
        "POST",
        &alice,
        BOB,
        Some(chat_call(9, "bob in alice's").as_str()),
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    // Alice's call completes unharmed.
    let mut alice_stream = alice_stream;
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + WAIT;
    while !sse_data(&text).iter().any(|m| m["id"] == 9) {
        use tokio::io::AsyncReadExt;
        match tokio::time::timeout_at(deadline, alice_stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            other => panic!("alice's answer did not come ({other:?}):\n{text}"),
        }
    }
    let answer = sse_data(&text).into_iter().find(|m| m["id"] == 9).unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "echo: [[delay:1500]] alice's",
        "{answer}"
    );
    let mut sent = gw.messages();
    sent.sort();
    assert_eq!(sent, ["[[delay:1500]] alice's", "bob's"]);
}

#[actix_rt::test]
async fn a_last_event_id_of_another_session_replays_nothing() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, Mode::StaticTokens, &[]).await;
    let alice = open_session_as(b.port, ALICE).await;
    let bob = open_session_as(b.port, BOB).await;
    // Alice's call is answered while her stream is down: the answer is held for her resume.
    let (stream, text) = post_until(
        b.port,
        &alice,
        ALICE,
        &chat_call(4, "[[delay:200]] alice's secret"),
        |t| last_event_id(t).is_some(),
    )
    .await;
    drop(stream);
    let last = last_event_id(&text).unwrap();
    let held = |b: &HttpBridge| {
        let port = b.port;
        async move {
            let head = format!("GET /health HTTP/1.1\r\nAuthorization: Bearer {ALICE}");
            let reply = raw::request(port, &head, b"", WAIT).await;
            json_body(&reply.body)["sessions"]["heldAnswers"]
                .as_u64()
                .unwrap()
        }
    };
    let deadline = Instant::now() + WAIT;
    while held(&b).await != 1 {
        assert!(Instant::now() < deadline, "the answer was not held");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let resume = |session: &str, token: &str| {
        format!(
            "GET /mcp HTTP/1.1\r\nAccept: text/event-stream\r\nMcp-Session-Id: {session}\r\nMCP-Protocol-Version: 2025-06-18\r\nAuthorization: Bearer {token}\r\nLast-Event-ID: {last}"
        )
    };
    // Bob, in his own session, with Alice's event id: an empty stream.
    let reply = raw::request(b.port, &resume(&bob, BOB), b"", WAIT).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(reply.closed, "the stream ends at once");
    assert!(sse_data(&reply.text()).is_empty(), "{}", reply.text());
    assert!(!reply.text().contains("secret"));
    // Bob in Alice's session: as unknown.
    let reply = raw::request(b.port, &resume(&alice, BOB), b"", WAIT).await;
    assert_eq!(reply.status, 404, "{}", reply.text());
    assert!(!reply.text().contains("secret"));
    assert_eq!(held(&b).await, 1, "still held for alice");
    // Alice gets it.
    let reply = raw::request(b.port, &resume(&alice, ALICE), b"", WAIT).await;
    assert_eq!(reply.status, 200);
    let answer = sse_data(&reply.text())
        .into_iter()
        .find(|m| m["id"] == 4)
        .unwrap_or_else(|| panic!("alice's answer: {}", reply.text()));
    assert_eq!(
        answer["result"]["content"][0]["text"],
        "echo: [[delay:200]] alice's secret"
    );
}
