//! One `openclaw_chat` call through the whole bridge but the process boundary: rmcp client →
//! pipe → rmcp server → MCP layer (validation) → `GatewayActor` → awc → an in-process instant
//! gateway (actix-web on loopback) → back. Run with `cargo bench --bench chat`.

#![allow(clippy::unwrap_used)]

use std::{net::TcpListener, time::Duration};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use criterion::{Criterion, criterion_group, criterion_main};
use openclaw_mcp::{cli::Cli, config::Settings, mcp::server::OpenClawServer, tasks::Owner};
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

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(200).measurement_time(Duration::from_secs(5));
    targets = bench_chat
}
criterion_main!(benches);
