//! Property-based fuzzing (proptest; cargo-fuzz needs a nightly toolchain that a CI machine
//! does not have) of what untrusted input reaches first: tool-argument validation, the
//! `OPENCLAW_INSTANCES` parser, and the legacy SSE message handler — the parser it uses, and the
//! running handler itself over HTTP. Each property: no panic, and what is accepted obeys the
//! rules. Case counts stay small so that `cargo test` runs them briefly on every build.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

use openclaw_mcp::{
    config::{is_instance_name, parse_instances},
    mcp::validate,
    transport::route_guard::parse_message,
};
use proptest::{prelude::*, test_runner::Config};
use serde_json::{Map, Value, json};

/// Any JSON value, with strings drawn from all of Unicode (control characters included).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
        "[ \t\r\n\u{0}-\u{1f}\u{7f}-\u{9f}\u{feff}\u{a0}a-z]{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const CONTROL: fn(char) -> bool = |c| matches!(c, '\u{00}'..='\u{08}' | '\u{0B}' | '\u{0C}' | '\u{0E}'..='\u{1F}' | '\u{7F}'..='\u{9F}');

proptest! {
    #![proptest_config(Config { cases: 512, failure_persistence: None, ..Config::default() })]

    #[test]
    fn tool_arguments_never_panic_and_accepted_values_obey_the_rules(
        message in any_json(),
        session in any_json(),
        priority in any_json(),
        status in any_json(),
    ) {
        let mut args = Map::new();
        args.insert("message".into(), message);
        args.insert("session_id".into(), session);
        args.insert("priority".into(), priority);
        args.insert("status".into(), status);
        if let Ok(m) = validate::message(&args) {
            prop_assert!(!m.is_empty());
            prop_assert_eq!(m.trim(), m.as_str());
            prop_assert!(!m.chars().any(CONTROL));
            prop_assert!(m.encode_utf16().count() <= validate::MAX_MESSAGE_LENGTH);
        }
        match validate::optional_id(&args, "session_id") {
            Ok(Some(id)) => {
                prop_assert!(!id.is_empty() && id.encode_utf16().count() <= validate::MAX_ID_LENGTH);
            }
            Ok(None) => prop_assert!(false, "session_id is present"),
            Err(e) => prop_assert!(e.0.starts_with("session_id ")),
        }
        if let Err(e) = validate::priority(&args) {
            prop_assert_eq!(e.0, "priority must be an integer");
        }
        if let Ok(Some(s)) = validate::status_filter(&args) {
            prop_assert!(validate::TASK_STATUSES.contains(&s.as_str()));
        }
    }

    #[test]
    fn the_instances_parser_never_panics_and_accepts_only_valid_lists(
        items in prop::collection::vec(
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()), Just("url".to_string()), Just("token".to_string()),
                    Just("timeout".to_string()), Just("default".to_string()), Just("agentId".to_string()),
                    Just("model".to_string()), "[a-z]{1,6}",
                ],
                prop_oneof![
                    any_json(),
                    "[a-zA-Z0-9_-]{1,8}".prop_map(Value::String),
                    prop_oneof![
                        Just("http://127.0.0.1:18789"), Just("https://gw.example/"), Just("ftp://x"),
                        Just("not a url"), Just("http://"),
                    ].prop_map(|s| Value::String(s.to_string())),
                ],
                0..6,
            ),
            0..5,
        ),
        raw in any_json(),
    ) {
        let list = Value::Array(items.into_iter().map(|m| Value::Object(m.into_iter().collect())).collect());
        for input in [list, raw] {
            match parse_instances(&input, "OPENCLAW_INSTANCES", "openclaw", 120_000, None, Default::default()) {
                Ok(instances) => {
                    prop_assert!(!instances.is_empty());
                    prop_assert_eq!(instances.iter().filter(|i| i.is_default).count(), 1);
                    let mut names: Vec<&str> = instances.iter().map(|i| i.name.as_str()).collect();
                    prop_assert!(names.iter().all(|n| is_instance_name(n)));
                    names.sort_unstable();
                    names.dedup();
                    prop_assert_eq!(names.len(), instances.len());
                    for i in &instances {
                        let url = url::Url::parse(&i.url).unwrap();
                        prop_assert!(matches!(url.scheme(), "http" | "https"));
                        prop_assert!(!i.timeout.is_zero());
                    }
                }
                Err(e) => prop_assert!(!e.contains('\n'), "one line: {}", e),
            }
        }
    }

    #[test]
    fn the_json_rpc_message_parser_never_panics(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        value in any_json(),
        method in prop_oneof![
            Just("tools/call".to_string()),
            Just("initialize".to_string()),
            Just("ping".to_string()),
            ".{0,12}",
        ],
        id in any_json(),
    ) {
        let _ = parse_message(&bytes);
        let _ = parse_message(value.to_string().as_bytes());
        let shaped = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": value});
        let _ = parse_message(shaped.to_string().as_bytes());
    }
}

/// Sends one raw HTTP/1.1 POST and returns the status code (0 if the server closed early).
fn raw_post(port: u16, path: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[actix_rt::test]
async fn the_legacy_sse_message_handler_survives_arbitrary_bodies() {
    let gw = common::FakeGateway::start();
    let bridge = common::http::HttpBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    let (status, mut stream) = common::http::SseReader::open(&bridge.url("/sse")).await;
    assert_eq!(status, 200);
    let endpoint = stream
        .next(Duration::from_secs(10))
        .await
        .expect("the endpoint event")
        .data;
    let port = bridge.port;
    let path = endpoint.trim().to_string();
    let statuses = tokio::task::spawn_blocking(move || {
        let mut runner = proptest::test_runner::TestRunner::new(Config {
            cases: 150,
            failure_persistence: None,
            ..Config::default()
        });
        let seen = std::sync::Mutex::new(Vec::new());
        let strategy = prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            any_json().prop_map(|v| v.to_string().into_bytes()),
            (any_json(), ".{0,12}").prop_map(|(params, method)| {
                json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
                    .to_string()
                    .into_bytes()
            }),
        ];
        runner
            .run(&strategy, |body| {
                let status = raw_post(port, &path, &body);
                seen.lock().unwrap().push(status);
                prop_assert!(
                    matches!(status, 202 | 400 | 413 | 415),
                    "status {} for {:?}",
                    status,
                    String::from_utf8_lossy(&body)
                );
                Ok(())
            })
            .unwrap();
        seen.into_inner().unwrap()
    })
    .await
    .unwrap();
    assert!(statuses.contains(&202) && statuses.contains(&400));
    // Still serving, and the stream is still open.
    assert_eq!(bridge.health().await["status"], "ok");
    assert_eq!(
        raw_post(
            port,
            &endpoint,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#
        ),
        202
    );
}
