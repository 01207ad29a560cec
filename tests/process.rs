//! The binary as a process: exit codes, configuration errors on one stderr line, `--help` and
//! `--version`, stdout carrying nothing but protocol, exit on stdin EOF, both protocol eras.

#![allow(clippy::unwrap_used)]

mod common;

use std::{process::Stdio, time::Duration};

use common::{FakeGateway, bridge::binary, call, text};
use rmcp::{
    ServiceExt,
    service::{ClientLifecycleMode, ClientServiceExt},
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use serde_json::{Value, json};
use tokio::{io::AsyncWriteExt, process::Command};

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(args: &[&str], env: &[(&str, &str)], stdin: &str) -> Outcome {
    let mut child = Command::new(binary())
        .env_clear()
        .env("OPENCLAW_MCP_DATA_DIR", ":memory:")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("the bridge exits by itself")
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn exits_zero_when_stdin_closes_before_initialize() {
    let out = run(&[], &[], "").await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[tokio::test]
async fn stdout_carries_only_protocol_and_eof_ends_the_process() {
    let gw = FakeGateway::start();
    let input = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"hi"}}}),
    ]
    .iter()
    .map(|m| format!("{m}\n"))
    .collect::<String>();
    let out = run(&["--debug"], &[("OPENCLAW_URL", gw.url.as_str())], &input).await;
    assert_eq!(out.code, 0, "stderr: {}", out.stderr);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("non-protocol stdout: {l}")))
        .collect();
    assert!(lines.iter().all(|l| l["jsonrpc"] == "2.0"));
    assert!(
        lines
            .iter()
            .any(|l| l["id"] == 1 && l["result"]["serverInfo"]["name"] == "openclaw-mcp")
    );
    assert!(lines.iter().any(|l| l["id"] == 2));
    // The process may end before a slow answer; when it came, it was protocol.
    assert!(
        out.stderr.contains("openclaw-mcp starting"),
        "logs go to stderr"
    );
}

#[tokio::test]
async fn without_a_progress_token_the_gateway_gets_exactly_the_1_7_0_request() {
    let gw = FakeGateway::start();
    let input = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":" hi ","session_id":"s-1"}}}),
    ]
    .iter()
    .map(|m| format!("{m}\n"))
    .collect::<String>();
    let out = run(&[], &[("OPENCLAW_URL", gw.url.as_str())], &input).await;
    assert_eq!(out.code, 0);
    let answer: Value = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["id"] == 2)
        .expect("the call is answered before the bridge exits");
    assert_eq!(answer["result"]["content"][0]["text"], "echo: hi");
    let chats = gw.chats();
    assert_eq!(
        serde_json::to_string(&chats[0].body).unwrap(),
        r#"{"model":"openclaw","messages":[{"role":"user","content":"hi"}],"max_tokens":4096,"session_id":"s-1"}"#
    );
    assert_eq!(chats[0].header("x-openclaw-session-key"), Some("s-1"));
}

#[tokio::test]
async fn answers_the_2025_era_with_the_requested_version() {
    let gw = FakeGateway::start();
    let input = format!(
        "{}\n",
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"old","version":"1"}}})
    );
    let out = run(&[], &[("OPENCLAW_URL", gw.url.as_str())], &input).await;
    let first: Value = serde_json::from_str(out.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["result"]["protocolVersion"], "2024-11-05");
}

#[tokio::test]
async fn serves_the_2026_era_with_server_discover() {
    let gw = FakeGateway::start();
    let url = gw.url.clone();
    let command = Command::new(binary()).configure(move |cmd| {
        cmd.env_clear()
            .env("OPENCLAW_URL", &url)
            .env("OPENCLAW_MCP_DATA_DIR", ":memory:");
    });
    let transport = TokioChildProcess::new(command).unwrap();
    let client = ()
        .serve_with_lifecycle(
            transport,
            ClientLifecycleMode::Discover {
                preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .expect("server/discover handshake");
    let result = client
        .call_tool(call("openclaw_chat", json!({"message": "modern"})))
        .await
        .unwrap();
    assert_eq!(text(&result), "echo: modern");
    let tools = client.list_all_tools().await.unwrap();
    assert_eq!(tools.len(), openclaw_mcp::tool_names::ALL_TOOLS.len());
    let _ = client.cancel().await;
}

#[tokio::test]
async fn legacy_client_works_too() {
    let gw = FakeGateway::start();
    let url = gw.url.clone();
    let command = Command::new(binary()).configure(move |cmd| {
        cmd.env_clear()
            .env("OPENCLAW_URL", &url)
            .env("OPENCLAW_MCP_DATA_DIR", ":memory:");
    });
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    let info = client.peer_info().unwrap();
    assert_eq!(info.server_info.as_ref().unwrap().name, "openclaw-mcp");
}

#[tokio::test]
async fn bad_configuration_is_one_line_and_exit_64() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (
            &[],
            &[("OPENCLAW_TIMEOUT_MS", "abc")],
            "OPENCLAW_TIMEOUT_MS must be a whole number of milliseconds",
        ),
        (
            &["--timeout", "soon"],
            &[],
            "--timeout must be a whole number",
        ),
        (
            &[],
            &[("OPENCLAW_INSTANCES", "[{\"name\":")],
            "OPENCLAW_INSTANCES contains invalid JSON",
        ),
        (
            &[],
            &[(
                "OPENCLAW_INSTANCES",
                "[{\"name\":\"a\",\"url\":\"ftp://x\"}]",
            )],
            "URL must use http or https (got ftp:)",
        ),
        (
            &["--transport", "carrier-pigeon"],
            &[],
            "--transport must be one of stdio, http, sse",
        ),
        (
            &["--replica-id", "eu.1"],
            &[],
            "--replica-id must be a replica name: 1-32 characters",
        ),
        (&["--no-such-flag"], &[], "--no-such-flag"),
    ];
    for (args, env, expected) in cases {
        let out = run(args, env, "").await;
        assert_eq!(out.code, 64, "{args:?} {env:?}: {}", out.stderr);
        assert_eq!(out.stdout, "", "nothing on stdout");
        assert!(out.stderr.contains(expected), "{expected}: {}", out.stderr);
        if !args.contains(&"--no-such-flag") {
            assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
            assert!(!out.stderr.contains("panicked") && !out.stderr.contains("NaN"));
        }
    }
}

#[tokio::test]
async fn help_and_version() {
    let help = run(&["--help"], &[], "").await;
    assert_eq!(help.code, 0);
    for flag in [
        "--openclaw-url",
        "--gateway-token",
        "--model",
        "--transport",
        "--port",
        "--host",
        "--timeout",
        "--debug",
        "--auth",
        "--client-id",
        "--client-secret",
        "--issuer-url",
        "--redirect-uris",
        "--allow-dcr",
        "--trust-proxy",
        "--agent-id",
        "--config",
    ] {
        assert!(help.stdout.contains(flag), "--help lists {flag}");
    }
    let version = run(&["--version"], &[], "").await;
    assert_eq!(version.code, 0);
    assert_eq!(
        version.stdout.trim(),
        format!("openclaw-mcp {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn debug_logs_never_show_the_token_or_the_message() {
    let gw = FakeGateway::start().with_token("very-secret-gateway-token");
    let input = [
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"openclaw_chat","arguments":{"message":"my private words"}}}),
    ]
    .iter()
    .map(|m| format!("{m}\n"))
    .collect::<String>();
    let out = run(
        &["--debug"],
        &[
            ("OPENCLAW_URL", gw.url.as_str()),
            ("OPENCLAW_GATEWAY_TOKEN", "very-secret-gateway-token"),
        ],
        &input,
    )
    .await;
    assert_eq!(out.code, 0);
    assert!(
        !out.stderr.contains("very-secret-gateway-token"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("my private words"), "{}", out.stderr);
}
