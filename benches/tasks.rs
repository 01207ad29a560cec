//! Task supervisor benchmarks, through the MCP layer (`openclaw_chat_async` over an in-process
//! rmcp client) with the durable SQLite store in a temporary directory:
//!
//! 1. queue 100 000 tasks against an instant gateway: enqueue rate, drain rate, peak memory;
//! 2. throughput with concurrency 1, 4 and 16 against a gateway that takes 50 ms per answer.
//!
//! Run with `cargo bench --bench tasks` (`TASKS_BENCH_N` changes the 100 000).

#![allow(clippy::unwrap_used)]

use std::{
    net::TcpListener,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use actix_web::{App, HttpResponse, HttpServer, web};
use clap::Parser;
use openclaw_mcp::{cli::Cli, config::Settings, mcp::server::OpenClawServer, tasks::Owner};
use rmcp::{RoleClient, ServiceExt, model::CallToolRequestParams, service::RunningService};
use serde_json::json;

const ANSWER: &str = r#"{"id":"chatcmpl_bench","object":"chat.completion","created":1,"model":"openclaw","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#;

struct Rig {
    client: RunningService<RoleClient, ()>,
    answered: Arc<AtomicUsize>,
    _dir: tempfile::TempDir,
}

/// Starts a gateway (answering after `delay`) and the bridge's services on an actix system in
/// their own thread, and connects an MCP client.
fn start(rt: &tokio::runtime::Runtime, delay: Duration, env: Vec<(&'static str, String)>) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_string();
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let system = actix_rt::System::new();
        system.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let counter = web::Data::new(counter);
            let server = HttpServer::new(move || {
                App::new().app_data(counter.clone()).route(
                    "/v1/chat/completions",
                    web::post().to(move |n: web::Data<Arc<AtomicUsize>>| async move {
                        if !delay.is_zero() {
                            actix_rt::time::sleep(delay).await;
                        }
                        n.fetch_add(1, Ordering::SeqCst);
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(ANSWER)
                    }),
                )
            })
            .workers(1)
            .max_connection_rate(4096)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run();
            actix_rt::spawn(server);
            openclaw_mcp::app::install_crypto_provider();
            let cli = Cli::try_parse_from(["openclaw-mcp"]).unwrap();
            let settings = Settings::load_from(&cli, |k| match k {
                "OPENCLAW_URL" => Some(url.clone()),
                "OPENCLAW_MCP_DATA_DIR" => Some(data_dir.clone()),
                "OPENCLAW_HEALTH_INTERVAL_MS" => Some("3600000".to_string()),
                other => env
                    .iter()
                    .find(|(k, _)| *k == other)
                    .map(|(_, v)| v.clone()),
            })
            .unwrap();
            let services = openclaw_mcp::app::start_services(&settings).await.unwrap();
            let (server_io, client_io) = tokio::io::duplex(1 << 22);
            tx.send(client_io).unwrap();
            let running = OpenClawServer::new(services, Owner::Local)
                .serve(server_io)
                .await
                .unwrap();
            let _ = running.waiting().await;
        });
    });
    let io = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let client = rt.block_on(async { ().serve(io).await.unwrap() });
    Rig {
        client,
        answered,
        _dir: dir,
    }
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Queues `n` tasks with `callers` concurrent MCP calls; returns when all are queued.
async fn queue_all(client: &RunningService<RoleClient, ()>, n: usize, callers: usize) {
    let peer = client.peer().clone();
    let mut joins = Vec::new();
    for c in 0..callers {
        let peer = peer.clone();
        let share = n / callers + usize::from(c < n % callers);
        joins.push(tokio::spawn(async move {
            for i in 0..share {
                let params = CallToolRequestParams::new("openclaw_chat_async").with_arguments(
                    json!({"message": format!("task {c}-{i}"), "priority": (i % 7) as i64})
                        .as_object()
                        .unwrap()
                        .clone(),
                );
                let result = peer.call_tool(params).await.unwrap();
                assert_ne!(result.is_error, Some(true), "{result:?}");
            }
        }));
    }
    for j in joins {
        j.await.unwrap();
    }
}

async fn wait_answered(answered: &AtomicUsize, n: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while answered.load(Ordering::SeqCst) < n {
        assert!(
            started.elapsed() < limit,
            "drain took longer than {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let n: usize = std::env::var("TASKS_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);

    println_stderr(&format!(
        "# {n} tasks against an instant gateway (SQLite store on disk)"
    ));
    for concurrency in [4usize, 16] {
        let rig = start(
            &rt,
            Duration::ZERO,
            vec![
                ("OPENCLAW_TASK_CONCURRENCY", concurrency.to_string()),
                ("OPENCLAW_MAX_TASKS", (n * 2).to_string()),
            ],
        );
        let started = Instant::now();
        rt.block_on(queue_all(&rig.client, n, 32));
        let enqueue = started.elapsed();
        rt.block_on(wait_answered(&rig.answered, n, Duration::from_secs(600)));
        let drain = started.elapsed();
        println_stderr(&format!(
            "concurrency {concurrency:>2}: enqueue {:>8.0} tasks/s ({:.2} s), drain {:>7.0} tasks/s ({:.2} s), peak RSS of the bench process {:.1} MiB",
            n as f64 / enqueue.as_secs_f64(),
            enqueue.as_secs_f64(),
            n as f64 / drain.as_secs_f64(),
            drain.as_secs_f64(),
            peak_rss_mib()
        ));
        drop(rig);
    }

    println_stderr("# throughput against a gateway that answers in 50 ms");
    let jobs = 160;
    for concurrency in [1usize, 4, 16] {
        let rig = start(
            &rt,
            Duration::from_millis(50),
            vec![("OPENCLAW_TASK_CONCURRENCY", concurrency.to_string())],
        );
        let count = if concurrency == 1 { 40 } else { jobs };
        let started = Instant::now();
        rt.block_on(queue_all(&rig.client, count, 8));
        rt.block_on(wait_answered(
            &rig.answered,
            count,
            Duration::from_secs(120),
        ));
        let took = started.elapsed();
        println_stderr(&format!(
            "concurrency {concurrency:>2}: {count} tasks in {:.2} s = {:>6.1} tasks/s (ideal {:.0})",
            took.as_secs_f64(),
            count as f64 / took.as_secs_f64(),
            concurrency as f64 * 20.0
        ));
    }
}

/// Results go to stderr: the crate denies printing to stdout.
fn println_stderr(line: &str) {
    eprintln!("{line}");
}
