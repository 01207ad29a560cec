//! Session ids behind a load balancer (`OPENCLAW_MCP_REPLICA_ID`, docs/deployment.md): the real
//! binary on a loopback port 0 with a replica name and two static bearer tokens, driven by rmcp's
//! client, the legacy SSE stream and raw requests. Every session id it makes, of both transports,
//! is `<name>.<uuid v4>` (plain UUIDs without the setting); an id with another replica's name, a
//! bare name, the UUID without its name or a forged one gets exactly the answer of an unknown
//! session; and a tagged session still answers only the principal that opened it.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    FakeGateway, call,
    http::{ACCEPT_BOTH, HttpBridge, SseReader, initialize_body, post, request},
    is_error, text,
};
use rmcp::{
    ServiceExt,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::json;

const ALICE: &str = "alice-token-0123456789abcdef";
const BOB: &str = "bob-token-0123456789abcdef0";
const TOKENS: &str = "alice:alice-token-0123456789abcdef,bob:bob-token-0123456789abcdef0";
const REPLICA: &str = "r7";
const WAIT: Duration = Duration::from_secs(5);
const LIST: &str = r#"{"jsonrpc":"2.0","id":5,"method":"tools/list"}"#;

async fn bridge(gw: &FakeGateway, replica: Option<&str>) -> HttpBridge {
    bridge_with(gw, replica, &[]).await
}

async fn bridge_with(gw: &FakeGateway, replica: Option<&str>, extra: &[&str]) -> HttpBridge {
    let mut args: Vec<&str> = match replica {
        Some(name) => vec!["--replica-id", name],
        None => Vec::new(),
    };
    args.extend_from_slice(extra);
    HttpBridge::spawn(
        &args,
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("MCP_BEARER_TOKENS", TOKENS),
        ],
    )
    .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A request in Streamable HTTP session `session` with `token`: status and body.
async fn in_session(
    b: &HttpBridge,
    method: &str,
    session: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    let auth = bearer(token);
    let mut headers = vec![
        ("Accept", ACCEPT_BOTH),
        ("Mcp-Session-Id", session),
        ("MCP-Protocol-Version", "2025-06-18"),
        ("Authorization", auth.as_str()),
    ];
    if body.is_some() {
        headers.push(("Content-Type", "application/json"));
    }
    let (status, _, body) = request(method, &b.url("/mcp"), &headers, body).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Opens an initialize-era session with raw requests as `token`; its `Mcp-Session-Id`.
async fn open_session(b: &HttpBridge, token: &str) -> String {
    let auth = bearer(token);
    let (status, headers, body) = post(
        &b.url("/mcp"),
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
            ("Authorization", auth.as_str()),
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
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let (status, _) = in_session(b, "POST", &id, token, Some(initialized)).await;
    assert_eq!(status, 202);
    id
}

/// Opens a legacy SSE stream as `token`; the stream and its `sessionId`.
async fn open_legacy(b: &HttpBridge, token: &str) -> (SseReader, String) {
    let (status, mut sse) =
        SseReader::open_with(&b.url("/sse"), &[("Authorization", &bearer(token))]).await;
    assert_eq!(status, 200);
    let endpoint = sse.next(WAIT).await.unwrap();
    assert_eq!(endpoint.event, "endpoint");
    let id = endpoint
        .data
        .strip_prefix("/messages?sessionId=")
        .unwrap_or_else(|| panic!("endpoint {:?}", endpoint.data))
        .to_string();
    (sse, id)
}

/// A `POST /messages?sessionId=<session>` of `body` with `token`: status and body.
async fn legacy_post(b: &HttpBridge, session: &str, token: &str, body: &str) -> (u16, String) {
    let auth = bearer(token);
    let url = b.url(&format!("/messages?sessionId={session}"));
    let (status, _, body) = post(
        &url,
        &[
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ],
        body,
    )
    .await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// The UUID after `<REPLICA>.`; panics when `id` is not such an id.
fn uuid_of(id: &str) -> String {
    let (replica, rest) = id
        .split_once('.')
        .unwrap_or_else(|| panic!("{id}: no replica name"));
    assert_eq!(replica, REPLICA, "{id}");
    let uuid = uuid::Uuid::parse_str(rest).unwrap_or_else(|e| panic!("{id}: {e}"));
    assert_eq!(uuid.get_version_num(), 4, "{id}: a random UUID");
    assert_eq!(
        uuid.to_string(),
        rest,
        "{id}: the hyphenated lower-case form"
    );
    rest.to_string()
}

/// Ids that look like `real`'s but are no session here.
fn forgeries(real: &str) -> Vec<String> {
    let uuid = uuid_of(real);
    let mut flipped = real.to_string();
    let last = if flipped.ends_with('0') { "1" } else { "0" };
    flipped.pop();
    flipped.push_str(last);
    vec![
        format!("r8.{uuid}"),        // another replica's name
        uuid.clone(),                // the UUID without the name
        format!("{REPLICA}."),       // a bare name
        REPLICA.to_string(),         // the name alone
        format!("{REPLICA}.forged"), // the name and anything
        format!("{REPLICA}.{REPLICA}.{uuid}"),
        format!("{REPLICA}..{uuid}"),
        real.to_uppercase(),
        flipped, // one character off
    ]
}

#[actix_rt::test]
async fn every_session_id_starts_with_the_replica_name() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, Some(REPLICA)).await;

    // Streamable HTTP, raw: the id, and the session works under it.
    let id = open_session(&b, ALICE).await;
    uuid_of(&id);
    let (status, body) = in_session(&b, "POST", &id, ALICE, Some(LIST)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("openclaw_chat"), "{body}");
    assert_ne!(
        open_session(&b, ALICE).await,
        id,
        "every session its own id"
    );

    // rmcp's client holds the id as it came and makes calls in its session.
    openclaw_mcp::app::install_crypto_provider();
    let config = StreamableHttpClientTransportConfig::with_uri(b.url("/mcp")).auth_header(ALICE);
    let client =
        ().serve(StreamableHttpClientTransport::from_config(config))
            .await
            .expect("an initialize-era session");
    for i in 0..3 {
        let answer = client
            .call_tool(call("openclaw_chat", json!({"message": format!("hi {i}")})))
            .await
            .unwrap();
        assert!(!is_error(&answer), "{}", text(&answer));
        assert_eq!(text(&answer), format!("echo: hi {i}"));
    }
    client.cancel().await.unwrap();

    // Legacy SSE: the endpoint names a tagged id, and the session answers under it.
    let (mut sse, legacy) = open_legacy(&b, ALICE).await;
    uuid_of(&legacy);
    assert_eq!(
        legacy_post(&b, &legacy, ALICE, &initialize_body(1)).await.0,
        202
    );
    assert_eq!(sse.next_message(WAIT).await["id"], 1);
    assert!(
        b.logs()
            .contains("session ids start with the replica name and a dot"),
        "{}",
        b.logs()
    );

    // Without the setting: plain UUIDs, as before it existed.
    let plain = bridge(&gw, None).await;
    let id = open_session(&plain, ALICE).await;
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let (_sse, legacy) = open_legacy(&plain, ALICE).await;
    assert!(uuid::Uuid::parse_str(&legacy).is_ok(), "{legacy}");
}

#[actix_rt::test]
async fn foreign_and_forged_ids_get_the_answer_of_an_unknown_session() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, Some(REPLICA)).await;
    let id = open_session(&b, ALICE).await;
    let (unknown_status, unknown) =
        in_session(&b, "POST", "no-such-session", ALICE, Some(LIST)).await;
    assert_eq!(unknown_status, 404, "{unknown}");
    for forged in forgeries(&id) {
        for (method, body) in [("POST", Some(LIST)), ("GET", None), ("DELETE", None)] {
            let (status, answer) = in_session(&b, method, &forged, ALICE, body).await;
            assert_eq!(status, 404, "{method} {forged}: {answer}");
            assert_eq!(answer, unknown, "{method} {forged}: as an unknown session");
        }
    }
    // Alice's session outlived every DELETE of a look-alike.
    let (status, body) = in_session(&b, "POST", &id, ALICE, Some(LIST)).await;
    assert_eq!(status, 200, "{body}");

    let (mut sse, legacy) = open_legacy(&b, ALICE).await;
    let (unknown_status, unknown) =
        legacy_post(&b, "no-such-session", ALICE, &initialize_body(1)).await;
    assert_eq!(unknown_status, 404, "{unknown}");
    for forged in forgeries(&legacy) {
        let (status, answer) = legacy_post(&b, &forged, ALICE, &initialize_body(1)).await;
        assert_eq!(status, 404, "{forged}: {answer}");
        assert_eq!(answer, unknown, "{forged}: as an unknown session");
    }
    assert_eq!(
        legacy_post(&b, &legacy, ALICE, &initialize_body(2)).await.0,
        202
    );
    assert_eq!(sse.next_message(WAIT).await["id"], 2);
    assert!(!b.logs().contains("panicked"), "{}", b.logs());
}

#[actix_rt::test]
async fn a_tagged_session_answers_only_the_principal_that_opened_it() {
    let gw = FakeGateway::start();
    let b = bridge(&gw, Some(REPLICA)).await;
    let id = open_session(&b, ALICE).await;
    let (_, unknown) = in_session(&b, "POST", "no-such-session", BOB, Some(LIST)).await;
    for (method, body) in [("POST", Some(LIST)), ("GET", None), ("DELETE", None)] {
        let (status, answer) = in_session(&b, method, &id, BOB, body).await;
        assert_eq!(status, 404, "bob {method} in alice's session: {answer}");
        assert_eq!(answer, unknown, "bob {method}: as an unknown session");
    }
    let (status, body) = in_session(&b, "POST", &id, ALICE, Some(LIST)).await;
    assert_eq!(status, 200, "alice's session is untouched: {body}");

    let (mut sse, legacy) = open_legacy(&b, ALICE).await;
    let (_, unknown) = legacy_post(&b, "no-such-session", BOB, &initialize_body(1)).await;
    let (status, answer) = legacy_post(&b, &legacy, BOB, &initialize_body(1)).await;
    assert_eq!(status, 404, "bob in alice's legacy session: {answer}");
    assert_eq!(answer, unknown);
    assert_eq!(
        legacy_post(&b, &legacy, ALICE, &initialize_body(3)).await.0,
        202
    );
    assert_eq!(sse.next_message(WAIT).await["id"], 3);
}

#[actix_rt::test]
async fn a_tagged_session_evicted_over_its_callers_share_is_closed_under_its_id() {
    let gw = FakeGateway::start();
    // MCP_MAX_SESSIONS=8: each caller may hold 2.
    let b = bridge_with(&gw, Some(REPLICA), &["--max-sessions", "8"]).await;
    let first = open_session(&b, ALICE).await;
    let second = open_session(&b, ALICE).await;
    let bobs = open_session(&b, BOB).await;
    let (status, _) = in_session(&b, "POST", &second, ALICE, Some(LIST)).await;
    assert_eq!(status, 200);
    // A third session of alice's closes her longest idle one, the first, in rmcp too.
    let third = open_session(&b, ALICE).await;
    let (_, unknown) = in_session(&b, "POST", "no-such-session", ALICE, Some(LIST)).await;
    let mut closed = false;
    for _ in 0..50 {
        let (status, answer) = in_session(&b, "POST", &first, ALICE, Some(LIST)).await;
        if status == 404 {
            assert_eq!(answer, unknown);
            closed = true;
            break;
        }
        // The eviction reaches rmcp's manager from a task of its own: a moment later.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(closed, "the evicted session still answers");
    for (id, token) in [(&second, ALICE), (&third, ALICE), (&bobs, BOB)] {
        let (status, answer) = in_session(&b, "POST", id, token, Some(LIST)).await;
        assert_eq!(status, 200, "{id}: {answer}");
    }
    assert!(
        b.logs().contains("its longest-idle session is closed"),
        "{}",
        b.logs()
    );
}
