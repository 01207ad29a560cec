//! Prometheus metrics (text format 0.0.4), served on `GET /metrics` in HTTP mode when
//! `METRICS_ENABLED` is on. Counters and histograms live here as process-wide atomics, updated
//! where things happen (tool calls, gateway requests, auth refusals); gauges that an actor owns
//! (health, restarts, queue depth, running tasks, sessions) are read from it at scrape time.
//! Labels are tool names, instance names and fixed outcome words: never user input.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

/// Upper bounds (seconds) of the gateway latency histogram: 5 ms to 5 minutes.
const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0, 300.0,
];

/// A latency histogram.
struct Histogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (atomics hold integers).
    sum_micros: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Histogram {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bucket, bound) in self.buckets.iter().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Registry {
    /// (tool, outcome) → calls.
    tool_calls: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// instance → gateway request latency.
    gateway_latency: Mutex<BTreeMap<String, &'static Histogram>>,
    /// reason → refused requests.
    auth_failures: Mutex<BTreeMap<&'static str, u64>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// Counts a tool call and its outcome (`ok` or `error`).
pub fn tool_call(tool: &str, ok: bool) {
    if let Ok(mut map) = registry().tool_calls.lock() {
        *map.entry((tool.to_string(), if ok { "ok" } else { "error" }))
            .or_default() += 1;
    }
}

/// Records the duration of one gateway request of `instance`.
pub fn gateway_request(instance: &str, took: Duration) {
    let histogram = match registry().gateway_latency.lock() {
        Ok(mut map) => *map
            .entry(instance.to_string())
            // One histogram per configured instance, for the life of the process.
            .or_insert_with(|| Box::leak(Box::new(Histogram::new()))),
        Err(_) => return,
    };
    histogram.observe(took);
}

/// Counts a request refused by auth (`missing`, `invalid`, `expired`, `revoked`, `scope`, …).
pub fn auth_failure(reason: &'static str) {
    if let Ok(mut map) = registry().auth_failures.lock() {
        *map.entry(reason).or_default() += 1;
    }
}

/// Gauges read at scrape time.
#[derive(Debug, Default, Clone)]
pub struct Gauges {
    /// (instance, up: 1, down: 0, unknown: -1, restarts).
    pub instances: Vec<(String, i8, u32)>,
    /// Tasks waiting for a slot.
    pub tasks_queued: u64,
    /// Tasks running in this process.
    pub tasks_running: u64,
    /// Open sessions per transport.
    pub sessions: Vec<(&'static str, u64)>,
    /// Calls in flight.
    pub in_flight: u64,
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders every metric.
pub fn render(g: &Gauges) -> String {
    let mut out = String::with_capacity(4096);
    let r = registry();
    let _ = writeln!(
        out,
        "# HELP openclaw_mcp_build_info Version of this bridge.\n# TYPE openclaw_mcp_build_info gauge\nopenclaw_mcp_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    out.push_str("# HELP openclaw_mcp_tool_calls_total MCP tool calls by tool and outcome.\n# TYPE openclaw_mcp_tool_calls_total counter\n");
    if let Ok(map) = r.tool_calls.lock() {
        for ((tool, outcome), n) in map.iter() {
            let _ = writeln!(
                out,
                "openclaw_mcp_tool_calls_total{{tool=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(tool)
            );
        }
    }
    out.push_str("# HELP openclaw_mcp_gateway_request_duration_seconds Gateway request latency per instance.\n# TYPE openclaw_mcp_gateway_request_duration_seconds histogram\n");
    if let Ok(map) = r.gateway_latency.lock() {
        for (instance, h) in map.iter() {
            let i = escape(instance);
            for (bucket, bound) in h.buckets.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "openclaw_mcp_gateway_request_duration_seconds_bucket{{instance=\"{i}\",le=\"{bound}\"}} {}",
                    bucket.load(Ordering::Relaxed)
                );
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "openclaw_mcp_gateway_request_duration_seconds_bucket{{instance=\"{i}\",le=\"+Inf\"}} {count}\nopenclaw_mcp_gateway_request_duration_seconds_sum{{instance=\"{i}\"}} {}\nopenclaw_mcp_gateway_request_duration_seconds_count{{instance=\"{i}\"}} {count}",
                h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6
            );
        }
    }
    out.push_str("# HELP openclaw_mcp_gateway_up Gateway health from the last probe (1 ok, 0 error, -1 not probed yet).\n# TYPE openclaw_mcp_gateway_up gauge\n");
    for (instance, up, _) in &g.instances {
        let _ = writeln!(
            out,
            "openclaw_mcp_gateway_up{{instance=\"{}\"}} {up}",
            escape(instance)
        );
    }
    out.push_str("# HELP openclaw_mcp_gateway_actor_restarts_total Restarts of an instance's actor after a failure.\n# TYPE openclaw_mcp_gateway_actor_restarts_total counter\n");
    for (instance, _, restarts) in &g.instances {
        let _ = writeln!(
            out,
            "openclaw_mcp_gateway_actor_restarts_total{{instance=\"{}\"}} {restarts}",
            escape(instance)
        );
    }
    let _ = writeln!(
        out,
        "# HELP openclaw_mcp_tasks_queued Async tasks waiting for a slot.\n# TYPE openclaw_mcp_tasks_queued gauge\nopenclaw_mcp_tasks_queued {}\n# HELP openclaw_mcp_tasks_running Async tasks running in this process.\n# TYPE openclaw_mcp_tasks_running gauge\nopenclaw_mcp_tasks_running {}",
        g.tasks_queued, g.tasks_running
    );
    out.push_str("# HELP openclaw_mcp_sessions Open MCP sessions per transport.\n# TYPE openclaw_mcp_sessions gauge\n");
    for (transport, n) in &g.sessions {
        let _ = writeln!(
            out,
            "openclaw_mcp_sessions{{transport=\"{transport}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP openclaw_mcp_calls_in_flight HTTP calls being answered.\n# TYPE openclaw_mcp_calls_in_flight gauge\nopenclaw_mcp_calls_in_flight {}",
        g.in_flight
    );
    out.push_str("# HELP openclaw_mcp_auth_failures_total Requests refused by auth, by reason.\n# TYPE openclaw_mcp_auth_failures_total counter\n");
    if let Ok(map) = r.auth_failures.lock() {
        for (reason, n) in map.iter() {
            let _ = writeln!(
                out,
                "openclaw_mcp_auth_failures_total{{reason=\"{reason}\"}} {n}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        tool_call("openclaw_chat", true);
        tool_call("openclaw_chat", false);
        gateway_request("prod \"main\"", Duration::from_millis(30));
        auth_failure("expired");
        let text = render(&Gauges {
            instances: vec![("prod".into(), 1, 2)],
            tasks_queued: 3,
            tasks_running: 1,
            sessions: vec![("streamable_http", 4)],
            in_flight: 0,
        });
        assert!(
            text.contains("openclaw_mcp_tool_calls_total{tool=\"openclaw_chat\",outcome=\"ok\"}")
        );
        assert!(text.contains("openclaw_mcp_gateway_request_duration_seconds_bucket{instance=\"prod \\\"main\\\"\",le=\"0.05\"} 1"));
        assert!(text.contains("openclaw_mcp_gateway_up{instance=\"prod\"} 1"));
        assert!(text.contains("openclaw_mcp_gateway_actor_restarts_total{instance=\"prod\"} 2"));
        assert!(text.contains("openclaw_mcp_tasks_queued 3"));
        assert!(text.contains("openclaw_mcp_sessions{transport=\"streamable_http\"} 4"));
        assert!(text.contains("openclaw_mcp_auth_failures_total{reason=\"expired\"}"));
    }
}
