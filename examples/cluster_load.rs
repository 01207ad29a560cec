//! The load driver of `scripts/bench-cluster.sh`: queues `--tasks` tasks (`openclaw_chat_async`)
//! round robin over the bridges' ports with `--concurrency` calls in flight, as raw sessionless
//! 2026-07-28 `tools/call` requests (one small JSON body each, answered as JSON or as one SSE
//! event), then polls `openclaw_task_list` until every task has ended. Prints one JSON line:
//! queued per second, drained per second, failures.
//!
//! Written in Rust on one thread because the official Python SDK, at about 250 calls a second on
//! the bench machine, was the bottleneck of the first measurements: this driver spends a few
//! microseconds of CPU per call, so what is measured is the bridges and their store.
//!
//! ```text
//! cargo run --release --example cluster_load -- --ports 4001,4002 --bearer TOKEN --tasks 2000 --concurrency 64
//! ```
//! Loopback only (`127.0.0.1`).

// The result is the one line this tool prints, for the script that runs it.
#![allow(clippy::print_stdout)]

use std::{
    cell::Cell,
    rc::Rc,
    time::{Duration, Instant},
};

use serde_json::{Value, json};

struct Args {
    ports: Vec<u16>,
    bearer: String,
    tasks: usize,
    concurrency: usize,
}

fn args() -> Result<Args, String> {
    let mut ports = Vec::new();
    let mut bearer = None;
    let mut tasks = 2000;
    let mut concurrency = 64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--ports" => {
                for p in value.split(',') {
                    ports.push(p.parse().map_err(|_| format!("bad port {p:?}"))?);
                }
            }
            "--bearer" => bearer = Some(value),
            "--tasks" => tasks = value.parse().map_err(|_| "bad --tasks")?,
            "--concurrency" => concurrency = value.parse().map_err(|_| "bad --concurrency")?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if ports.is_empty() {
        return Err("--ports is required".into());
    }
    Ok(Args {
        ports,
        bearer: bearer.ok_or("--bearer is required")?,
        tasks,
        concurrency: concurrency.max(1),
    })
}

/// The JSON-RPC message of an answer, JSON or one SSE `data:` event.
fn message(content_type: &str, body: &[u8]) -> Result<Value, String> {
    let text = std::str::from_utf8(body).map_err(|e| e.to_string())?;
    let json = if content_type.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|d| !d.is_empty())
            .ok_or("an SSE answer without data")?
    } else {
        text
    };
    serde_json::from_str(json).map_err(|e| format!("{e}: {}", &text[..text.len().min(200)]))
}

/// One `tools/call` to `port`; the tool's result text.
async fn call(
    client: &awc::Client,
    port: u16,
    bearer: &str,
    id: u64,
    tool: &str,
    arguments: Value,
) -> Result<String, String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": tool, "arguments": arguments,
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "cluster-load", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let mut response = client
        .post(format!("http://127.0.0.1:{port}/mcp"))
        .insert_header(("content-type", "application/json"))
        .insert_header(("accept", "application/json, text/event-stream"))
        .insert_header(("mcp-protocol-version", "2026-07-28"))
        .insert_header(("mcp-method", "tools/call"))
        .insert_header(("mcp-name", tool))
        .insert_header(("authorization", format!("Bearer {bearer}")))
        .send_body(body.to_string())
        .await
        .map_err(|e| format!("port {port}: {e}"))?;
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let bytes = response
        .body()
        .limit(4 << 20)
        .await
        .map_err(|e| e.to_string())?;
    if !status.is_success() {
        return Err(format!(
            "port {port}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes)
        ));
    }
    let m = message(&content_type, &bytes)?;
    let result = &m["result"];
    let text = result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if result["isError"].as_bool() == Some(true) || m.get("error").is_some() {
        return Err(format!("port {port}: {text}{}", m["error"]));
    }
    Ok(text)
}

async fn run(args: Args) -> Result<(), String> {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(60))
        .finish();
    let next = Rc::new(Cell::new(0usize));
    let started = Instant::now();
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (client, next, bearer, ports) = (
            client.clone(),
            next.clone(),
            args.bearer.clone(),
            args.ports.clone(),
        );
        let tasks = args.tasks;
        workers.push(actix_rt::spawn(async move {
            let mut k = w;
            loop {
                let i = next.get();
                if i >= tasks {
                    return Ok::<_, String>(());
                }
                next.set(i + 1);
                let port = ports[k % ports.len()];
                k += 1;
                call(
                    &client,
                    port,
                    &bearer,
                    i as u64 + 1,
                    "openclaw_chat_async",
                    json!({"message": format!("bench {i}")}),
                )
                .await?;
            }
        }));
    }
    for w in workers {
        w.await.map_err(|e| e.to_string())??;
    }
    let queued = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    let (failed, drained) = loop {
        let text = call(
            &client,
            args.ports[0],
            &args.bearer,
            0,
            "openclaw_task_list",
            json!({"status": "failed"}),
        )
        .await?;
        let list: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
        let by = &list["stats"]["byStatus"];
        let count = |s: &str| by[s].as_u64().unwrap_or(0) as usize;
        let ended = count("completed") + count("failed") + count("cancelled");
        if ended >= args.tasks {
            break (count("failed"), started.elapsed());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {ended} of {} tasks ended in 600 s",
                args.tasks
            ));
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    };
    println!(
        "{}",
        json!({
            "replicas": args.ports.len(),
            "tasks": args.tasks,
            "concurrency": args.concurrency,
            "failed": failed,
            "queued_per_s": (args.tasks as f64 / queued.as_secs_f64()).round(),
            "drained_per_s": (args.tasks as f64 / drained.as_secs_f64()).round(),
        })
    );
    if failed > 0 {
        return Err(format!("{failed} tasks failed"));
    }
    Ok(())
}

fn main() {
    let args = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cluster_load: {e}");
            std::process::exit(64);
        }
    };
    if let Err(e) = actix_rt::System::new().block_on(run(args)) {
        eprintln!("cluster_load: {e}");
        std::process::exit(1);
    }
}
