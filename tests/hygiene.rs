//! Log and input hygiene, through the real binary: nothing hostile reaches stderr raw (no CR, LF
//! or terminal controls inside a line), the most verbose logging shows no prompt, answer or
//! token, a gateway's huge error text is cut to 4 KiB in the tool result, arguments that become
//! HTTP headers refuse control characters, and a secret given as a flag is warned about.

#![allow(clippy::unwrap_used)]

mod common;

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use common::{FakeGateway, HOSTILE_ERROR, bridge::binary, call, is_error, text};
use rmcp::{
    RoleClient, ServiceExt,
    service::RunningService,
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use serde_json::{Value, json};
use tokio::{io::AsyncReadExt, task::JoinHandle};

/// The binary over stdio, with its stderr kept byte for byte (the shared `Bridge` reads it by
/// lines, which would drop a CR at a line's end: exactly what these tests look for).
struct RawBridge {
    client: RunningService<RoleClient, ()>,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: JoinHandle<()>,
}

impl RawBridge {
    async fn spawn(args: &[&str], env: &[(&str, &str)]) -> RawBridge {
        let mut env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("OPENCLAW_MCP_DATA_DIR".into())
            .or_insert_with(|| ":memory:".into());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let command = tokio::process::Command::new(binary()).configure(move |cmd| {
            cmd.env_clear().args(&args).envs(&env);
        });
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the bridge");
        let captured = Arc::new(Mutex::new(Vec::new()));
        let sink = captured.clone();
        let mut stderr = stderr.expect("piped stderr");
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let client = ().serve(transport).await.expect("MCP handshake with the bridge");
        RawBridge {
            client,
            stderr: captured,
            reader,
        }
    }

    /// What the bridge wrote to stderr so far, as text.
    fn logs(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits until the logs contain `needle`.
    async fn wait_for(&self, needle: &str) {
        common::eventually(&format!("{needle:?} in the logs"), || {
            self.logs().contains(needle)
        })
        .await;
    }

    /// Closes stdin (the bridge then exits) and returns every byte it wrote to stderr.
    async fn finish(self) -> Vec<u8> {
        let _ = self.client.cancel().await;
        tokio::time::timeout(Duration::from_secs(20), self.reader)
            .await
            .expect("the bridge closes stderr when it exits")
            .unwrap();
        Arc::try_unwrap(self.stderr)
            .map(|m| m.into_inner().unwrap())
            .unwrap_or_else(|shared| shared.lock().unwrap().clone())
    }
}

/// Whether `line` starts as the formatter starts every event: an RFC 3339 UTC timestamp, then a
/// level.
fn is_event_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    let stamp_ok = bytes.len() > 28
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[10] == b'T';
    let Some(z) = line.find("Z ") else {
        return false;
    };
    let level = line[z + 1..].trim_start();
    stamp_ok
        && ["TRACE ", "DEBUG ", "INFO ", "WARN ", "ERROR "]
            .iter()
            .any(|l| level.starts_with(l))
}

/// Every check on raw stderr bytes: one event per line, no CR, no ESC (stderr is a pipe, so no
/// colours either), no C1 control, no Unicode line or paragraph separator.
fn assert_clean(raw: &[u8]) {
    let text = std::str::from_utf8(raw).expect("stderr is UTF-8");
    assert!(!raw.contains(&b'\r'), "a raw CR in the logs:\n{text}");
    assert!(!raw.contains(&0x1b), "a raw ESC in the logs:\n{text}");
    assert!(
        !text.contains(|c: char| ('\u{80}'..='\u{9f}').contains(&c)),
        "a raw C1 control in the logs:\n{text}"
    );
    assert!(
        !text.contains(['\u{2028}', '\u{2029}']),
        "a raw line separator in the logs:\n{text}"
    );
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "a control character in the logs:\n{text}"
    );
    assert!(text.ends_with('\n'), "the last event ends its line");
    for line in text.lines() {
        assert!(is_event_line(line), "not an event of its own: {line:?}");
    }
}

/// (b) Text from a client (a tool name, an instance name, a session id) or from a gateway (an
/// error body) with CR, LF, ESC colour codes, a C1 control and a line separator reaches the logs
/// escaped: each event stays one line and no control byte gets through.
#[tokio::test]
async fn hostile_text_from_clients_and_gateways_never_breaks_a_log_line() {
    let gw = FakeGateway::start();
    let bridge = RawBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_MCP_LOG", "debug"),
        ],
    )
    .await;

    // A tool name is logged before it is looked up.
    let unknown = bridge
        .client
        .call_tool(call(
            "evil\r\nFAKE-TOOL \u{1b}[31mred\u{9b}\u{2028}",
            json!({}),
        ))
        .await;
    assert!(unknown.is_err(), "an unknown tool is a JSON-RPC error");

    for (field, value) in [
        ("instance", "nope\r\nFAKE-INSTANCE \u{1b}[2J"),
        ("session_id", "s\r\n\u{1b}[31mFAKE-SESSION"),
    ] {
        let refused = bridge
            .client
            .call_tool(call(
                "openclaw_chat",
                json!({"message": "hi", field: value}),
            ))
            .await
            .unwrap();
        assert!(is_error(&refused), "{field}: {}", text(&refused));
    }

    // The gateway's error message reaches the client and the "tool call failed" line.
    let failed = bridge
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "[[hostile-error]]"}),
        ))
        .await
        .unwrap();
    assert!(is_error(&failed));
    let shown = text(&failed);
    assert!(shown.starts_with("Error: API request failed: 500 Internal Server Error (boom"));
    assert!(
        !shown.contains(['\u{1b}', '\r', '\u{9b}']),
        "terminal controls reach the client: {shown:?}"
    );
    assert!(shown.contains("forged line\\u{1b}[31mred"), "{shown:?}");
    assert!(HOSTILE_ERROR.contains('\u{1b}'));

    bridge.wait_for("forged line").await;
    bridge.wait_for("FAKE-TOOL").await;
    let raw = bridge.finish().await;
    assert_clean(&raw);
    let logs = String::from_utf8(raw).unwrap();
    // The hostile text is there, escaped, inside the genuine events.
    let tool_line = logs.lines().find(|l| l.contains("FAKE-TOOL")).unwrap();
    assert!(
        tool_line.contains(r"tool=evil\r\nFAKE-TOOL \u{1b}[31mred\u{9b}\u{2028}"),
        "{tool_line}"
    );
    let error_line = logs.lines().find(|l| l.contains("forged line")).unwrap();
    assert!(error_line.contains("tool call failed"), "{error_line}");
    assert!(
        error_line.contains(r"boom\r\n2026-01-01T00:00:00.000000Z  INFO forged line"),
        "{error_line}"
    );
}

/// (a) At the most verbose setting, and with directives that try to lift the SDK's level by a
/// more specific target, neither the prompt, nor the answer, nor the gateway token appears on
/// stderr, while our own debug events do.
#[tokio::test]
async fn trace_logging_shows_no_prompt_answer_or_token() {
    const TOKEN: &str = "gw-hygiene-token-5d1f9a0c";
    const PROMPT: &str = "zq7f3a hygiene prompt";
    for directives in ["trace", "trace,rmcp=trace,rmcp::service=trace,h2=trace"] {
        let gw = FakeGateway::start().with_token(TOKEN);
        let bridge = RawBridge::spawn(
            &[],
            &[
                ("OPENCLAW_URL", gw.url.as_str()),
                ("OPENCLAW_GATEWAY_TOKEN", TOKEN),
                ("OPENCLAW_MCP_LOG", directives),
            ],
        )
        .await;
        let answer = bridge
            .client
            .call_tool(call("openclaw_chat", json!({"message": PROMPT})))
            .await
            .unwrap();
        assert_eq!(text(&answer), format!("echo: {PROMPT}"));
        let queued = bridge
            .client
            .call_tool(call(
                "openclaw_chat_async",
                json!({"message": format!("{PROMPT} async")}),
            ))
            .await
            .unwrap();
        assert!(!is_error(&queued), "{}", text(&queued));
        common::eventually("the async answer", || {
            gw.state.completed.load(std::sync::atomic::Ordering::SeqCst) >= 2
        })
        .await;
        bridge.wait_for("task finished").await;
        let raw = bridge.finish().await;
        assert_clean(&raw);
        let logs = String::from_utf8(raw).unwrap();
        assert!(
            logs.contains("chat request") && logs.contains("tool call"),
            "{directives}: our own debug events are there:\n{logs}"
        );
        for (what, needle) in [
            ("prompt", "zq7f3a"),
            ("answer", "echo: "),
            ("token", TOKEN),
            ("token", "5d1f9a0c"),
        ] {
            assert!(
                !logs.contains(needle),
                "{directives}: the {what} is in the logs:\n{logs}"
            );
        }
    }
}

/// (c) A gateway's error message of 1 MB becomes a tool result of at most 4096 bytes that says it
/// was cut and how long it was; a task that fails with it keeps no more either.
#[tokio::test]
async fn a_huge_gateway_error_is_cut_to_4_kib_with_a_note() {
    let gw = FakeGateway::start();
    let bridge = RawBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    let failed = bridge
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "[[huge-error:1000000]]"}),
        ))
        .await
        .unwrap();
    assert!(is_error(&failed));
    let shown = text(&failed);
    assert!(shown.len() <= 4096, "{} bytes", shown.len());
    assert!(
        shown.starts_with("Error: OpenClaw reported an error: eeee"),
        "{}",
        &shown[..80]
    );
    assert!(
        shown.ends_with("eee … [truncated: 1000000 bytes in all]"),
        "{}",
        &shown[shown.len() - 80..]
    );
    assert!(shown.len() > 3500, "the cap keeps most of the 4 KiB");

    let queued = bridge
        .client
        .call_tool(call(
            "openclaw_chat_async",
            json!({"message": "[[huge-error:1000000]]"}),
        ))
        .await
        .unwrap();
    let id = serde_json::from_str::<Value>(&text(&queued)).unwrap()["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut status = Value::Null;
    for _ in 0..200 {
        let seen = bridge
            .client
            .call_tool(call("openclaw_task_status", json!({"task_id": id})))
            .await
            .unwrap();
        status = serde_json::from_str(&text(&seen)).unwrap();
        if status["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(status["status"], "failed", "{status}");
    let error = status["error"].as_str().unwrap();
    assert!(error.len() <= 4096, "{} bytes", error.len());
    assert!(error.ends_with("[truncated: 1000000 bytes in all]"));
    bridge.finish().await;
}

/// (d) `session_id` and `agent` become headers to the gateway: with a line break, NUL, ESC, TAB
/// or a line separator inside they are refused with 1.7.0's control-character message, and
/// nothing is sent; plain values still go through as headers.
#[tokio::test]
async fn header_bound_arguments_with_control_characters_are_refused() {
    let gw = FakeGateway::start();
    let bridge = RawBridge::spawn(&[], &[("OPENCLAW_URL", gw.url.as_str())]).await;
    let bad = [
        "a\nb",
        "a\rb",
        "a\r\nX-Evil: 1",
        "a\u{0}b",
        "a\u{1b}[31mb",
        "a\tb",
        "a\u{2028}b",
        "a\u{2029}b",
        "a\u{7f}b",
    ];
    for value in bad {
        for (tool, field) in [
            ("openclaw_chat", "session_id"),
            ("openclaw_chat", "agent"),
            ("openclaw_chat_async", "session_id"),
            ("openclaw_chat_async", "agent"),
        ] {
            let result = bridge
                .client
                .call_tool(call(tool, json!({"message": "hi", field: value})))
                .await
                .unwrap();
            assert!(is_error(&result), "{tool} {field}={value:?}");
            assert_eq!(
                text(&result),
                format!("Error: {field} contains invalid control characters"),
                "{tool} {field}={value:?}"
            );
        }
    }
    assert!(gw.chats().is_empty(), "nothing reached the gateway");

    let ok = bridge
        .client
        .call_tool(call(
            "openclaw_chat",
            json!({"message": "fine", "session_id": "sess-ok.1", "agent": "ops"}),
        ))
        .await
        .unwrap();
    assert_eq!(text(&ok), "echo: fine");
    let chats = gw.chats();
    assert_eq!(chats.len(), 1);
    assert_eq!(chats[0].header("x-openclaw-session-key"), Some("sess-ok.1"));
    assert_eq!(chats[0].header("x-openclaw-agent-id"), Some("ops"));
    bridge.finish().await;
}

/// (e) A secret given as a flag works, and logs one warning per flag at start that names the
/// environment variable and its `_FILE` form, never the value; a secret from the environment
/// gives no warning.
#[tokio::test]
async fn a_secret_flag_is_warned_about_without_its_value() {
    const TOKEN: &str = "flag-gw-token-81c2e4f7";
    const KEY: &str = "flag-signing-key-0123456789abcdef0123456789";
    let gw = FakeGateway::start().with_token(TOKEN);
    let bridge = RawBridge::spawn(
        &["--gateway-token", TOKEN, "--token-signing-key", KEY],
        &[("OPENCLAW_URL", gw.url.as_str())],
    )
    .await;
    let answer = bridge
        .client
        .call_tool(call("openclaw_chat", json!({"message": "with a flag"})))
        .await
        .unwrap();
    assert_eq!(text(&answer), "echo: with a flag", "the flag still works");
    let raw = bridge.finish().await;
    assert_clean(&raw);
    let logs = String::from_utf8(raw).unwrap();
    for (flag, env) in [
        ("--gateway-token", "OPENCLAW_GATEWAY_TOKEN"),
        ("--token-signing-key", "MCP_TOKEN_SIGNING_KEY"),
    ] {
        let warnings: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(&format!("flag={flag} ")))
            .collect();
        assert_eq!(warnings.len(), 1, "one warning for {flag}:\n{logs}");
        let warning = warnings[0];
        assert!(warning.contains(" WARN "), "{warning}");
        assert!(warning.contains("secret on the command line"), "{warning}");
        assert!(warning.contains(&format!("env={env} ")), "{warning}");
        assert!(
            warning.contains(&format!("env_file={env}_FILE")),
            "{warning}"
        );
    }
    for secret in [TOKEN, KEY, "81c2e4f7", "0123456789abcdef0123456789"] {
        assert!(!logs.contains(secret), "{secret} is in the logs:\n{logs}");
    }

    let from_env = RawBridge::spawn(
        &[],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_GATEWAY_TOKEN", TOKEN),
        ],
    )
    .await;
    let logs = String::from_utf8(from_env.finish().await).unwrap();
    assert!(logs.contains("openclaw-mcp starting"), "{logs}");
    assert!(!logs.contains("on the command line"), "{logs}");
}
