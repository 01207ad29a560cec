//! One `openclaw_chat` call through the whole bridge but the process boundary: rmcp client →
//! pipe → rmcp server → MCP layer (validation) → `GatewayActor` → hyper → an in-process instant
//! gateway (actix-web on loopback) → back; and the streamed-answer parser on a 4 MB answer sent
//! as one SSE line (one delta of 4 MB of text), fed in the 8 KiB pieces a socket read gives: the
//! bridge's CPU cost of such an answer, which must stay linear in its size. Run with
//! `cargo bench --bench chat` (`cargo bench --bench chat -- sse` for the parser alone).

#![allow(clippy::unwrap_used)]

use std::{net::TcpListener, time::Duration};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};
use openclaw_mcp::{
    cli::Cli, config::Settings, gateway::client::SseParser, mcp::server::OpenClawServer,
    tasks::Owner,
};
use rmcp::{RoleClient, ServiceExt, model::CallToolRequestParams, service::RunningService};
use serde_json::json;

const ANSWER: &str = r#"{"id":"chatcmpl_bench","object":"chat.completion","created":1,"model":"openclaw","choices":[{"index":0,"message":{"role":"assistant","content":"echo: bench"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}"#;

/// Starts the gateway and the bridge on an actix system in their own thread; returns the client
/// end of the pipe to the bridge.
fn start() -> tokio::io::DuplexStream {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let server = HttpServer::new(|| {
                App::new().route(
                    "/v1/chat/completions",
                    web::post().to(|| async {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(ANSWER)
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            actix_rt::spawn(server);
            openclaw_mcp::app::install_crypto_provider();
            let cli = Cli::try_parse_from(["openclaw-mcp"]).unwrap();
            let settings = Settings::load_from(&cli, |k| match k {
                "OPENCLAW_URL" => Some(url.clone()),
                "OPENCLAW_HEALTH_INTERVAL_MS" => Some("3600000".to_string()),
                _ => None,
            })
            .unwrap();
            let services = openclaw_mcp::app::start_services(&settings).await.unwrap();
            let (server_io, client_io) = tokio::io::duplex(1 << 20);
            tx.send(client_io).unwrap();
            let running = OpenClawServer::new(services, Owner::Local)
                .serve(server_io)
                .await
                .unwrap();
            let _ = running.waiting().await;
        });
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap()
}

fn bench_chat(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client: RunningService<RoleClient, ()> =
        rt.block_on(async { ().serve(start()).await.unwrap() });
    let params = CallToolRequestParams::new("openclaw_chat")
        .with_arguments(json!({"message": "bench"}).as_object().unwrap().clone());
    // Warm the connection pool.
    rt.block_on(client.call_tool(params.clone())).unwrap();
    c.bench_function(
        "openclaw_chat round trip (MCP layer + actor + in-process gateway)",
        |b| {
            b.iter(|| {
                let result = rt.block_on(client.call_tool(params.clone())).unwrap();
                assert_eq!(result.is_error, None);
            })
        },
    );
}

/// The body of a streamed answer whose text is `size` bytes in one delta: role chunk, the delta on
/// one `data:` line, finish chunk, `[DONE]`.
fn one_line_answer(size: usize) -> Vec<u8> {
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        format!(
            "data: {}\n\n",
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "openclaw",
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        )
    };
    let mut body = chunk(json!({"role": "assistant"}), serde_json::Value::Null);
    body.push_str(&chunk(
        json!({"content": "x".repeat(size)}),
        serde_json::Value::Null,
    ));
    body.push_str(&chunk(json!({}), json!("stop")));
    body.push_str("data: [DONE]\n\n");
    body.into_bytes()
}

fn bench_sse(c: &mut Criterion) {
    let body = one_line_answer(4 * 1024 * 1024);
    let mut group = c.benchmark_group("sse");
    group.sample_size(10);
    group.bench_function(
        "4 MB answer on one SSE line, 8 KiB pieces (parse + JSON)",
        |b| {
            b.iter(|| {
                let mut parser = SseParser::default();
                let mut text = 0usize;
                for piece in body.chunks(8 * 1024) {
                    for event in parser.feed(piece) {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&event) {
                            text += v["choices"][0]["delta"]["content"]
                                .as_str()
                                .map_or(0, str::len);
                        }
                    }
                }
                assert_eq!(text, 4 * 1024 * 1024);
            })
        },
    );
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(Duration::from_secs(5));
    targets = bench_chat
}
criterion_group!(parser, bench_sse);
criterion_main!(benches, parser);
