//! Async tasks through an MCP client against the fake gateway: priority order, parallelism,
//! cancelling pending and running tasks (the gateway sees the connection close), ownership,
//! the limit, expiry, progress of a slow stream, an idle gateway, an in-band stream error, a
//! restarted actor, and durability across SIGKILL, also with two processes on one data dir;
//! fairness between callers (each caller's share of the limit and of the slots, turns between
//! callers, priority within one caller), and a final write that the store refuses (injected
//! failures, and a real "database is locked" from another connection holding the file).

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{
    FakeGateway,
    bridge::{Bridge, InProcess, settings},
    call, is_error, json_of, text,
};
use openclaw_mcp::{
    gateway::actor::{FaultPoint, InjectPanic},
    tasks::{
        Owner, Tasks,
        store::{
            CancelOutcome, Finish, Inserted, Limits, Location, Maintenance, SqliteBackend,
            StoreError, StoreFuture, TaskBackend,
        },
        supervisor::WriteRetry,
        task::{NewTask, TaskRecord},
    },
};
use rmcp::{RoleClient, service::RunningService};
use serde_json::{Value, json};

type Client = RunningService<RoleClient, ()>;

async fn tool(
    client: &rmcp::Peer<RoleClient>,
    name: &str,
    args: Value,
) -> rmcp::model::CallToolResult {
    client.call_tool(call(name, args)).await.unwrap()
}

async fn queue(client: &Client, args: Value) -> String {
    let result = tool(client, "openclaw_chat_async", args).await;
    assert!(!is_error(&result), "{}", text(&result));
    let out = json_of(&result);
    assert_eq!(out["status"], "pending");
    assert_eq!(
        out["message"],
        "Task queued. Use openclaw_task_status to check progress."
    );
    let id = out["task_id"].as_str().unwrap().to_string();
    assert!(id.starts_with("task_") && id.len() == 41, "{id}");
    id
}

async fn status(client: &Client, id: &str) -> Value {
    let result = tool(client, "openclaw_task_status", json!({"task_id": id})).await;
    assert!(!is_error(&result), "{}", text(&result));
    json_of(&result)
}

/// Polls (bounded, 20 s) until the task reaches `want`.
async fn wait_for(client: &Client, id: &str, want: &str) -> Value {
    for _ in 0..400 {
        let s = status(client, id).await;
        if s["status"] == want {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "task {id} never became {want}: {}",
        status(client, id).await
    );
}

fn app_env<'a>(gw: &'a FakeGateway, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![("OPENCLAW_URL", gw.url.as_str())];
    env.extend_from_slice(extra);
    env
}

#[actix_rt::test]
async fn a_task_runs_and_its_result_is_kept() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let id = queue(
        &app.client,
        json!({"message": " hello ", "session_id": "s-1"}),
    )
    .await;
    let done = wait_for(&app.client, &id, "completed").await;
    assert_eq!(done["result"], "echo: hello");
    assert_eq!(done["type"], "chat");
    assert_eq!(done["instance"], "default");
    assert_eq!(done["progress_chars"], 11);
    let keys: Vec<&str> = done
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..8],
        [
            "task_id",
            "type",
            "status",
            "instance",
            "created_at",
            "started_at",
            "completed_at",
            "result"
        ],
        "1.7.0's keys in its order"
    );
    assert!(done.get("error").is_none());
    let sent = &gw.chats()[0];
    assert_eq!(sent.body["stream"], true, "tasks stream for progress");
    assert_eq!(sent.header("x-openclaw-session-key"), Some("s-1"));
}

#[actix_rt::test]
async fn priority_order_with_concurrency_one() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&["--task-concurrency", "1"], &app_env(&gw, &[]))).await;
    let blocker = queue(&app.client, json!({"message": "[[delay:400]] first"})).await;
    wait_for(&app.client, &blocker, "running").await;
    let mut ids = Vec::new();
    for (message, priority) in [
        ("a", json!(0)),
        ("b", json!(5)),
        ("c", json!(5)),
        ("d", json!(-1)),
        ("e", json!(9.0)),
    ] {
        ids.push(
            queue(
                &app.client,
                json!({"message": message, "priority": priority}),
            )
            .await,
        );
    }
    for id in &ids {
        wait_for(&app.client, id, "completed").await;
    }
    assert_eq!(
        gw.messages(),
        ["[[delay:400]] first", "e", "b", "c", "a", "d"]
    );
    assert_eq!(gw.max_in_flight(), 1);

    let list = json_of(&tool(&app.client, "openclaw_task_list", json!({})).await);
    let order: Vec<&str> = list["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["priority"].as_i64().unwrap())
        .map(|p| match p {
            9 => "e",
            5 => "b|c",
            0 => "a|first",
            _ => "d",
        })
        .collect();
    assert_eq!(order, ["e", "b|c", "b|c", "a|first", "a|first", "d"]);
    assert_eq!(list["stats"]["total"], 6);
    assert_eq!(list["stats"]["byStatus"]["completed"], 6);
}

#[actix_rt::test]
async fn n_tasks_run_in_parallel_with_concurrency_n() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&["--task-concurrency", "4"], &app_env(&gw, &[]))).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(
            queue(
                &app.client,
                json!({"message": format!("[[delay:500]] job {i}")}),
            )
            .await,
        );
    }
    for id in &ids {
        wait_for(&app.client, id, "completed").await;
    }
    assert_eq!(
        gw.max_in_flight(),
        4,
        "all four were at the gateway at once"
    );
}

#[actix_rt::test]
async fn cancelling_a_pending_task_keeps_it_from_the_gateway() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&["--task-concurrency", "1"], &app_env(&gw, &[]))).await;
    let blocker = queue(&app.client, json!({"message": "[[delay:300]] blocker"})).await;
    let waiting = queue(&app.client, json!({"message": "never sent"})).await;
    let cancelled = json_of(
        &tool(
            &app.client,
            "openclaw_task_cancel",
            json!({"task_id": waiting}),
        )
        .await,
    );
    assert_eq!(
        cancelled,
        json!({"task_id": waiting, "status": "cancelled", "message": "Task cancelled successfully", "previous_status": "pending"})
    );
    wait_for(&app.client, &blocker, "completed").await;
    let after = status(&app.client, &waiting).await;
    assert_eq!(after["status"], "cancelled");
    assert!(after.get("started_at").is_none());
    assert!(!gw.messages().contains(&"never sent".to_string()));
    let again = tool(
        &app.client,
        "openclaw_task_cancel",
        json!({"task_id": waiting}),
    )
    .await;
    assert_eq!(
        text(&again),
        "Error: Cannot cancel task with status: cancelled. Only pending or running tasks can be cancelled."
    );
}

#[actix_rt::test]
async fn cancelling_a_running_task_closes_the_gateway_connection() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let id = queue(&app.client, json!({"message": "[[stream:100:50]]"})).await;
    common::eventually("the stream has started", || gw.messages().len() == 1).await;
    let mut running = status(&app.client, &id).await;
    for _ in 0..100 {
        if running["progress_chars"].as_u64().unwrap_or(0) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        running = status(&app.client, &id).await;
    }
    assert_eq!(running["status"], "running");
    assert!(running["progress_chars"].as_u64().unwrap() > 0);
    let cancelled =
        json_of(&tool(&app.client, "openclaw_task_cancel", json!({"task_id": id})).await);
    assert_eq!(cancelled["previous_status"], "running");
    common::eventually("the gateway sees the connection closed", || {
        gw.aborted_streams() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = status(&app.client, &id).await;
    assert_eq!(after["status"], "cancelled", "it stays cancelled");
    assert!(after.get("result").is_none());
    assert_eq!(
        gw.state.completed.load(std::sync::atomic::Ordering::SeqCst),
        0
    );
}

#[actix_rt::test]
async fn a_caller_sees_only_its_own_tasks() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let alice = app.connect(Owner::Session("alice".into())).await;
    let bob = app.connect(Owner::Session("bob".into())).await;
    let id = queue(&alice, json!({"message": "[[delay:200]] mine"})).await;
    for (name, args) in [
        ("openclaw_task_status", json!({"task_id": id})),
        ("openclaw_task_cancel", json!({"task_id": id})),
    ] {
        let foreign = tool(&bob, name, args).await;
        assert!(is_error(&foreign));
        assert_eq!(text(&foreign), format!("Error: Task not found: {id}"));
    }
    let unknown = tool(
        &bob,
        "openclaw_task_status",
        json!({"task_id": " task_nope "}),
    )
    .await;
    assert_eq!(text(&unknown), "Error: Task not found: task_nope");
    let bobs = json_of(&tool(&bob, "openclaw_task_list", json!({})).await);
    assert_eq!(bobs["stats"]["total"], 0);
    assert_eq!(bobs["tasks"], json!([]));
    wait_for(&alice, &id, "completed").await;
    let alices = json_of(&tool(&alice, "openclaw_task_list", json!({})).await);
    assert_eq!(alices["stats"]["total"], 1);
    assert!(
        !alices.to_string().contains("alice"),
        "the owner is never shown"
    );
}

#[actix_rt::test]
async fn list_filters_and_validation_follow_1_7_0() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let a = queue(&app.client, json!({"message": "one", "session_id": "s1"})).await;
    let b = queue(&app.client, json!({"message": "two"})).await;
    wait_for(&app.client, &a, "completed").await;
    wait_for(&app.client, &b, "completed").await;
    let filtered = json_of(
        &tool(
            &app.client,
            "openclaw_task_list",
            json!({"session_id": "s1"}),
        )
        .await,
    );
    assert_eq!(filtered["stats"]["total"], 2, "stats ignore the filters");
    assert_eq!(filtered["tasks"].as_array().unwrap().len(), 1);
    assert_eq!(filtered["tasks"][0]["task_id"], a);
    assert_eq!(filtered["tasks"][0]["has_result"], true);
    let nobody = json_of(
        &tool(
            &app.client,
            "openclaw_task_list",
            json!({"instance": "elsewhere"}),
        )
        .await,
    );
    assert_eq!(nobody["tasks"], json!([]));
    let bad = tool(&app.client, "openclaw_task_list", json!({"status": "done"})).await;
    assert_eq!(
        text(&bad),
        "Error: status must be one of: pending, running, completed, failed, cancelled"
    );
    for (args, expected) in [
        (
            json!({"message": "x", "priority": 1.5}),
            "Error: priority must be an integer",
        ),
        (
            json!({"message": "x", "priority": "3"}),
            "Error: priority must be an integer",
        ),
        (
            json!({"message": "x", "instance": "nope"}),
            "Error: Unknown instance \"nope\". Available: default",
        ),
        (json!({"message": ""}), "Error: message must not be empty"),
    ] {
        let r = tool(&app.client, "openclaw_chat_async", args).await;
        assert_eq!(text(&r), expected);
    }
    assert_eq!(
        json_of(&tool(&app.client, "openclaw_task_list", json!({})).await)["stats"]["total"],
        2,
        "nothing invalid was queued"
    );
}

#[actix_rt::test]
async fn the_task_limit_answers_with_1_7_0s_message() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(
        &["--task-concurrency", "1", "--max-tasks", "2"],
        &app_env(&gw, &[]),
    ))
    .await;
    let first = queue(&app.client, json!({"message": "[[delay:300]] 1"})).await;
    let second = queue(&app.client, json!({"message": "2"})).await;
    let third = tool(&app.client, "openclaw_chat_async", json!({"message": "3"})).await;
    assert!(is_error(&third));
    assert_eq!(
        text(&third),
        "Error: Task limit reached (2). Wait for tasks to complete or cancel pending ones."
    );
    tool(
        &app.client,
        "openclaw_task_cancel",
        json!({"task_id": second}),
    )
    .await;
    queue(&app.client, json!({"message": "3 again"})).await;
    wait_for(&app.client, &first, "completed").await;
}

#[actix_rt::test]
async fn finished_tasks_expire_after_the_retention() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(
        &["--task-retention-secs", "1"],
        &app_env(&gw, &[]),
    ))
    .await;
    let id = queue(&app.client, json!({"message": "short-lived"})).await;
    wait_for(&app.client, &id, "completed").await;
    let mut gone = false;
    for _ in 0..60 {
        let r = tool(&app.client, "openclaw_task_status", json!({"task_id": id})).await;
        if is_error(&r) {
            assert_eq!(text(&r), format!("Error: Task not found: {id}"));
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "expired within the retention plus a little");
    let list = json_of(&tool(&app.client, "openclaw_task_list", json!({})).await);
    assert_eq!(list["stats"]["total"], 0);
}

#[actix_rt::test]
async fn a_slow_stream_shows_progress_midway() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let id = queue(&app.client, json!({"message": "[[stream:20:50]]"})).await;
    let mut seen_midway = None;
    for _ in 0..200 {
        let s = status(&app.client, &id).await;
        let chars = s["progress_chars"].as_u64().unwrap();
        if s["status"] == "running" && chars > 0 {
            seen_midway = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let midway = seen_midway.expect("progress visible while running");
    assert!(midway["last_activity_at"].as_str().unwrap().ends_with('Z'));
    let done = wait_for(&app.client, &id, "completed").await;
    assert!(done["progress_chars"].as_u64() > midway["progress_chars"].as_u64());
    assert!(done["result"].as_str().unwrap().starts_with("part0 part1"));
}

#[actix_rt::test]
async fn a_silent_gateway_fails_the_task_instead_of_hanging() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&["--timeout", "300"], &app_env(&gw, &[]))).await;
    let id = queue(&app.client, json!({"message": "[[stall:3000]]"})).await;
    let failed = wait_for(&app.client, &id, "failed").await;
    assert_eq!(
        failed["error"],
        "OpenClaw sent nothing for 300ms while answering (idle timeout); the request was abandoned"
    );
    assert!(failed.get("result").is_none());
}

#[actix_rt::test]
async fn an_in_band_stream_error_fails_the_task_without_partial_text() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let id = queue(&app.client, json!({"message": "[[stream-error]]"})).await;
    let failed = wait_for(&app.client, &id, "failed").await;
    assert_eq!(
        failed["error"],
        "OpenClaw reported an error: upstream provider error"
    );
    assert!(failed.get("result").is_none());
    let plain = queue(&app.client, json!({"message": "[[ignore-stream]] json"})).await;
    let done = wait_for(&app.client, &plain, "completed").await;
    assert_eq!(
        done["result"], "echo: [[ignore-stream]] json",
        "plain JSON still works"
    );
}

#[actix_rt::test]
async fn a_job_whose_actor_restarts_fails_with_a_clear_error() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    app.registry
        .default_instance()
        .addr
        .send(InjectPanic(FaultPoint::Request))
        .await
        .unwrap();
    let id = queue(&app.client, json!({"message": "boom"})).await;
    let failed = wait_for(&app.client, &id, "failed").await;
    assert_eq!(
        failed["error"],
        "The handler for instance \"default\" failed unexpectedly and was restarted; please retry"
    );
    let next = queue(&app.client, json!({"message": "fine"})).await;
    wait_for(&app.client, &next, "completed").await;
}

fn data_env<'a>(gw: &'a FakeGateway, dir: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("OPENCLAW_URL", gw.url.as_str()),
        ("OPENCLAW_MCP_DATA_DIR", dir),
        ("OPENCLAW_TASK_CONCURRENCY", "1"),
    ]
}

#[tokio::test]
async fn tasks_survive_sigkill_and_none_is_sent_twice() {
    let gw = FakeGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let first = Bridge::spawn(&data_env(&gw, dir_s)).await;
    let done = queue(&first.client, json!({"message": "finished before"})).await;
    wait_for(&first.client, &done, "completed").await;
    let running = queue(&first.client, json!({"message": "[[stream:200:50]] long"})).await;
    let waiting = queue(&first.client, json!({"message": "queued behind"})).await;
    let running_seen = wait_for(&first.client, &running, "running").await;
    assert_eq!(running_seen["status"], "running");
    first.kill9();

    let second = Bridge::spawn(&data_env(&gw, dir_s)).await;
    let interrupted = wait_for(&second.client, &running, "failed").await;
    assert_eq!(
        interrupted["error"],
        "interrupted: the bridge stopped before the gateway answered"
    );
    let resumed = wait_for(&second.client, &waiting, "completed").await;
    assert_eq!(resumed["result"], "echo: queued behind");
    let kept = status(&second.client, &done).await;
    assert_eq!(kept["result"], "echo: finished before");
    let messages = gw.messages();
    for m in ["finished before", "[[stream:200:50]] long", "queued behind"] {
        assert_eq!(
            messages.iter().filter(|x| x.as_str() == m).count(),
            1,
            "{m} reached the gateway exactly once"
        );
    }
}

#[tokio::test]
async fn two_processes_on_one_data_dir_never_touch_each_others_running_tasks() {
    let gw = FakeGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let doomed = Bridge::spawn(&data_env(&gw, dir_s)).await;
    let survivor = Bridge::spawn(&data_env(&gw, dir_s)).await;
    let lost = queue(
        &doomed.client,
        json!({"message": "[[stream:200:50]] doomed"}),
    )
    .await;
    wait_for(&doomed.client, &lost, "running").await;
    let kept = queue(
        &survivor.client,
        json!({"message": "[[stream:30:50]] survivor"}),
    )
    .await;
    wait_for(&survivor.client, &kept, "running").await;
    doomed.kill9();

    // A third process starts, recovers, and must leave the survivor's task alone.
    let third = Bridge::spawn(&data_env(&gw, dir_s)).await;
    let failed = wait_for(&third.client, &lost, "failed").await;
    assert_eq!(
        failed["error"],
        "interrupted: the bridge stopped before the gateway answered"
    );
    assert_eq!(status(&third.client, &kept).await["status"], "running");
    let finished = wait_for(&survivor.client, &kept, "completed").await;
    assert!(finished["result"].as_str().unwrap().starts_with("part0"));
    // Both local processes are the same owner: the third sees the survivor's result too.
    assert_eq!(status(&third.client, &kept).await["status"], "completed");
    assert_eq!(
        gw.messages()
            .iter()
            .filter(|m| m.contains("doomed"))
            .count(),
        1,
        "the interrupted prompt is not sent again"
    );
}

#[tokio::test]
async fn a_corrupt_database_is_a_clear_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tasks.db"), vec![b'x'; 4096]).unwrap();
    let out = tokio::process::Command::new(common::bridge::binary())
        .env_clear()
        .env("OPENCLAW_MCP_DATA_DIR", dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tasks.db"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A client that declares the MCP tasks extension.
#[derive(Clone, Default)]
struct TaskAwareClient;

impl rmcp::ClientHandler for TaskAwareClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("task-aware", "1"),
        )
    }
}

#[actix_rt::test]
async fn task_aware_2026_requests_get_native_mcp_tasks_for_openclaw_chat() {
    use rmcp::{
        ServiceExt,
        model::{
            CallToolResponse, CancelTaskParams, GetTaskParams, ProtocolVersion, TaskPayload,
            TaskStatus,
        },
        service::{ClientLifecycleMode, ClientServiceExt},
    };
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&[], &app_env(&gw, &[]))).await;
    let connect = || {
        let server = openclaw_mcp::mcp::server::OpenClawServer::new(
            app.services.clone(),
            Owner::Session("task-aware".into()),
        );
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        client_io
    };

    // Declared at `initialize` (the 2025-11-25 era): not offered, and never given, a task.
    let legacy = TaskAwareClient.serve(connect()).await.unwrap();
    assert!(
        !legacy.peer_info().unwrap().capabilities.supports_tasks(),
        "initialize does not offer the 2026-07-28 tasks extension"
    );
    let plain = legacy
        .call_tool_once(call("openclaw_chat", json!({"message": "plain"})))
        .await
        .unwrap();
    let CallToolResponse::Complete(plain) = plain else {
        panic!("expected a plain result in the 2025-11-25 era, got {plain:?}");
    };
    assert_eq!(text(&plain), "echo: plain");
    let _ = legacy.cancel().await;

    // Declared on each 2026-07-28 request: tasks.
    let client = TaskAwareClient
        .serve_with_lifecycle(
            connect(),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();

    let created = client
        .call_tool_once(call("openclaw_chat", json!({"message": "as a task"})))
        .await
        .unwrap();
    let CallToolResponse::Task(created) = created else {
        panic!("expected a task handle, got {created:?}");
    };
    let id = created.task.task_id.clone();
    assert!(id.starts_with("task_"));
    let mut done = None;
    for _ in 0..200 {
        let got = client
            .get_task(GetTaskParams::new(id.clone()))
            .await
            .unwrap();
        if got.task.status() == TaskStatus::Completed {
            done = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = done.expect("the task completes");
    let TaskPayload::Completed { result } = &done.task.payload else {
        panic!("no result");
    };
    assert_eq!(result["content"][0]["text"], "echo: as a task");
    assert_eq!(result["structuredContent"]["instance"], "default");
    // The same task is visible to the async tools of the same owner.
    let through_tools = tool(
        &client_as_plain(&client),
        "openclaw_task_status",
        json!({"task_id": id}),
    )
    .await;
    assert_eq!(json_of(&through_tools)["status"], "completed");

    let long = client
        .call_tool_once(call(
            "openclaw_chat",
            json!({"message": "[[stream:100:50]]"}),
        ))
        .await
        .unwrap();
    let CallToolResponse::Task(long) = long else {
        panic!("task")
    };
    common::eventually("the long task reaches the gateway", || {
        gw.messages().len() == 3
    })
    .await;
    client
        .cancel_task(CancelTaskParams::new(long.task.task_id.clone()))
        .await
        .unwrap();
    let cancelled = client
        .get_task(GetTaskParams::new(long.task.task_id.clone()))
        .await
        .unwrap();
    assert_eq!(cancelled.task.status(), TaskStatus::Cancelled);
    common::eventually("the gateway request is aborted", || {
        gw.aborted_streams() == 1
    })
    .await;
    let unknown = client
        .get_task(GetTaskParams::new("task_nope"))
        .await
        .unwrap_err();
    assert!(
        unknown.to_string().contains("Task not found: task_nope"),
        "{unknown}"
    );

    // A client without the extension still gets a plain result from openclaw_chat.
    let plain = tool(&app.client, "openclaw_chat", json!({"message": "plain"})).await;
    assert_eq!(text(&plain), "echo: plain");
}

/// The same connection seen through the plain-client helper.
fn client_as_plain(client: &RunningService<RoleClient, TaskAwareClient>) -> rmcp::Peer<RoleClient> {
    client.peer().clone()
}

#[tokio::test]
async fn native_tasks_work_in_the_2026_era_over_stdio() {
    use rmcp::{
        model::{CallToolResponse, GetTaskParams, ProtocolVersion, TaskStatus},
        service::{ClientLifecycleMode, ClientServiceExt},
        transport::{ConfigureCommandExt, TokioChildProcess},
    };
    let gw = FakeGateway::start();
    let url = gw.url.clone();
    let command = tokio::process::Command::new(common::bridge::binary()).configure(move |cmd| {
        cmd.env_clear()
            .env("OPENCLAW_URL", &url)
            .env("OPENCLAW_MCP_DATA_DIR", ":memory:");
    });
    let client = TaskAwareClient
        .serve_with_lifecycle(
            TokioChildProcess::new(command).unwrap(),
            ClientLifecycleMode::Discover {
                preferred_versions: vec![ProtocolVersion::V_2026_07_28],
            },
        )
        .await
        .unwrap();
    let created = client
        .call_tool_once(call("openclaw_chat", json!({"message": "modern task"})))
        .await
        .unwrap();
    let CallToolResponse::Task(created) = created else {
        panic!("expected a task handle, got {created:?}");
    };
    let mut status = None;
    for _ in 0..200 {
        let got = client
            .get_task(GetTaskParams::new(created.task.task_id.clone()))
            .await
            .unwrap();
        if got.task.status() == TaskStatus::Completed {
            status = Some(got);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(status.is_some(), "completed in the 2026 era too");
    let _ = client.cancel().await;
}

#[actix_rt::test]
async fn a_caller_over_its_share_is_refused_while_another_caller_still_queues_and_runs() {
    let gw = FakeGateway::start();
    // Each caller's share: 8 / 4 = 2 unfinished tasks, and 2 - 1 = 1 of the 2 slots.
    let app = InProcess::start(&settings(
        &["--task-concurrency", "2", "--max-tasks", "8"],
        &app_env(&gw, &[]),
    ))
    .await;
    let alice = app.connect(Owner::Session("alice".into())).await;
    let bob = app.connect(Owner::Session("bob".into())).await;
    let a1 = queue(&alice, json!({"message": "[[hang]] a1"})).await;
    wait_for(&alice, &a1, "running").await;
    let a2 = queue(&alice, json!({"message": "[[hang]] a2"})).await;
    let refused = tool(&alice, "openclaw_chat_async", json!({"message": "a3"})).await;
    assert!(is_error(&refused));
    assert_eq!(
        text(&refused),
        "Error: Task limit reached for this caller (2, its share of 8). Wait for tasks to complete or cancel pending ones."
    );
    let b = queue(&bob, json!({"message": "bob's"})).await;
    let done = wait_for(&bob, &b, "completed").await;
    assert_eq!(done["result"], "echo: bob's");
    assert_eq!(
        status(&alice, &a2).await["status"],
        "pending",
        "alice runs one task at a time while the other slot is kept for others"
    );
    assert!(!gw.messages().contains(&"a3".to_string()));
    tool(&alice, "openclaw_task_cancel", json!({"task_id": a1})).await;
    wait_for(&alice, &a2, "running").await;
    queue(&alice, json!({"message": "a3 again"})).await;
    tool(&alice, "openclaw_task_cancel", json!({"task_id": a2})).await;
}

#[actix_rt::test]
async fn callers_take_turns_and_priority_orders_only_a_callers_own_tasks() {
    let gw = FakeGateway::start();
    let app = InProcess::start(&settings(&["--task-concurrency", "1"], &app_env(&gw, &[]))).await;
    let alice = app.connect(Owner::Session("alice".into())).await;
    let bob = app.connect(Owner::Session("bob".into())).await;
    let blocker = queue(&alice, json!({"message": "[[hang]] blocker"})).await;
    wait_for(&alice, &blocker, "running").await;
    let mut ids = Vec::new();
    for (message, priority) in [("a1", 9), ("a2", 9), ("a3", 5), ("a4", 9)] {
        ids.push((
            alice.peer().clone(),
            queue(&alice, json!({"message": message, "priority": priority})).await,
        ));
    }
    for (message, priority) in [("b1", -5), ("b2", 0)] {
        ids.push((
            bob.peer().clone(),
            queue(&bob, json!({"message": message, "priority": priority})).await,
        ));
    }
    // Cancelling the blocker frees the only slot; from then on the order is the scheduler's.
    tool(&alice, "openclaw_task_cancel", json!({"task_id": blocker})).await;
    for (peer, id) in &ids {
        let mut done = false;
        for _ in 0..400 {
            let r = tool(peer, "openclaw_task_status", json!({"task_id": id})).await;
            if json_of(&r)["status"] == "completed" {
                done = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(done, "{id} completes");
    }
    assert_eq!(
        gw.messages(),
        ["[[hang]] blocker", "a1", "b2", "a2", "b1", "a4", "a3"],
        "bob's low-priority tasks wait for one of alice's at a time, not all of them; \
         each caller's own tasks run in its priority order"
    );
}

/// The real SQLite store, whose final writes fail on demand (a disk that is full, say).
struct FailingFinish {
    inner: SqliteBackend,
    /// Final writes still to fail; `usize::MAX`: every one, until set to 0.
    failures: std::sync::atomic::AtomicUsize,
    /// Final writes tried.
    tries: std::sync::atomic::AtomicUsize,
}

impl TaskBackend for FailingFinish {
    fn runner(&self) -> &str {
        self.inner.runner()
    }
    fn insert(&self, task: NewTask, limits: Limits, now: i64) -> StoreFuture<Inserted> {
        self.inner.insert(task, limits, now)
    }
    fn claim(&self, id: String, now: i64) -> StoreFuture<Option<TaskRecord>> {
        self.inner.claim(id, now)
    }
    fn set_run(&self, id: String, run: String) -> StoreFuture<bool> {
        self.inner.set_run(id, run)
    }
    fn finish(&self, id: String, finish: Finish) -> StoreFuture<bool> {
        use std::sync::atomic::Ordering::SeqCst;
        self.tries.fetch_add(1, SeqCst);
        let fail = self
            .failures
            .fetch_update(SeqCst, SeqCst, |left| match left {
                0 => None,
                usize::MAX => Some(usize::MAX),
                n => Some(n - 1),
            })
            .is_ok();
        if fail {
            Box::pin(async { Err(StoreError::Db("database or disk is full (injected)".into())) })
        } else {
            self.inner.finish(id, finish)
        }
    }
    fn cancel(
        &self,
        id: String,
        owner: String,
        now: i64,
        cutoff: i64,
    ) -> StoreFuture<CancelOutcome> {
        self.inner.cancel(id, owner, now, cutoff)
    }
    fn get(&self, id: String, owner: String, cutoff: i64) -> StoreFuture<Option<TaskRecord>> {
        self.inner.get(id, owner, cutoff)
    }
    fn list(&self, owner: String, cutoff: i64) -> StoreFuture<Vec<TaskRecord>> {
        self.inner.list(owner, cutoff)
    }
    fn pending(&self) -> StoreFuture<Vec<TaskRecord>> {
        self.inner.pending()
    }
    fn maintain(&self, cutoff: i64, now: i64) -> StoreFuture<Maintenance> {
        self.inner.maintain(cutoff, now)
    }
    fn interrupt_mine(&self, now: i64) -> StoreFuture<u64> {
        self.inner.interrupt_mine(now)
    }
}

/// The status a caller sees, polled (bounded) until `done`; a task once seen finished must
/// never be shown running again.
async fn watch_until(client: &Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut finished = false;
    for _ in 0..400 {
        let s = status(client, id).await;
        let st = s["status"].as_str().unwrap().to_string();
        finished |= ["completed", "failed", "cancelled"].contains(&st.as_str());
        assert!(!(finished && st == "running"), "back to running: {s}");
        if done(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} never got there: {}", status(client, id).await);
}

/// The task as the store has it, once the store no longer shows it running (bounded).
async fn written(store: &SqliteBackend, id: &str, owner: &str) -> TaskRecord {
    for _ in 0..400 {
        let t = store
            .get(id.to_string(), owner.to_string(), 0)
            .await
            .unwrap()
            .unwrap();
        if t.status.as_str() != "running" {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{id} stays running in the store");
}

#[actix_rt::test]
async fn a_final_write_that_fails_is_retried_and_a_task_never_stays_running() {
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    let gw = FakeGateway::start();
    // Concurrency 1, and alice's share 4 / 4 = 1 task.
    let settings = settings(
        &["--task-concurrency", "1", "--max-tasks", "4"],
        &app_env(&gw, &[]),
    );
    let mut app = InProcess::start(&settings).await;
    let store = std::sync::Arc::new(FailingFinish {
        inner: SqliteBackend::start(&Location::Memory).unwrap(),
        failures: AtomicUsize::new(2),
        tries: AtomicUsize::new(0),
    });
    let fast = WriteRetry {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        attempts: 3,
    };
    app.services.tasks =
        Tasks::start_with_retry(store.clone(), app.registry.clone(), &settings.tasks, fast);
    let alice = app.connect(Owner::Session("alice".into())).await;

    // Fails twice, then the write goes through: completed, with the answer.
    let first = queue(&alice, json!({"message": "first"})).await;
    let done = watch_until(&alice, &first, |s| s["status"] == "completed").await;
    assert_eq!(done["result"], "echo: first");
    let kept = written(&store.inner, &first, "session:alice").await;
    assert_eq!(kept.status.as_str(), "completed");
    assert_eq!(kept.result.as_deref(), Some("echo: first"));
    assert_eq!(store.tries.load(SeqCst), 3);

    // Never goes through while the store is broken.
    store.failures.store(usize::MAX, SeqCst);
    let second = queue(&alice, json!({"message": "second"})).await;
    let shown = watch_until(&alice, &second, |s| {
        s["status"] != "pending" && s["status"] != "running"
    })
    .await;
    assert!(
        shown["status"] == "failed" || shown["result"] == "echo: second",
        "the answer while it is held: {shown}"
    );
    // Its end is not in the store, yet it holds neither alice's share nor the only slot.
    let third = queue(&alice, json!({"message": "[[hang]] third"})).await;
    wait_for(&alice, &third, "running").await;
    let failed = watch_until(&alice, &second, |s| s["status"] == "failed").await;
    let reason = failed["error"].as_str().unwrap().to_string();
    assert!(
        reason.starts_with("the gateway answered, but the bridge could not record the answer (3 tries; last error: database: database or disk is full (injected))"),
        "{reason}"
    );
    assert!(failed.get("result").is_none());
    assert_eq!(
        store
            .inner
            .get(second.clone(), "session:alice".into(), 0)
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "running",
        "not written yet"
    );
    let list = json_of(&tool(&alice, "openclaw_task_list", json!({})).await);
    assert_eq!(
        list["stats"]["byStatus"]["running"], 1,
        "only the third: {list}"
    );

    // The store works again: the failure is recorded, not the stale `running`.
    store.failures.store(0, SeqCst);
    let kept = written(&store.inner, &second, "session:alice").await;
    assert_eq!(kept.status.as_str(), "failed");
    assert_eq!(kept.error.as_deref(), Some(reason.as_str()));
    assert_eq!(kept.result, None);
    tool(&alice, "openclaw_task_cancel", json!({"task_id": third})).await;
}

#[tokio::test]
async fn a_database_locked_by_another_process_delays_the_end_of_a_task_but_loses_nothing() {
    let gw = FakeGateway::start();
    let dir = tempfile::tempdir().unwrap();
    let dir_s = dir.path().to_str().unwrap();
    let bridge = Bridge::spawn(&data_env(&gw, dir_s)).await;
    let id = queue(
        &bridge.client,
        json!({"message": "[[stream:4:200]] locked"}),
    )
    .await;
    wait_for(&bridge.client, &id, "running").await;
    // Another process takes the write lock, and keeps it past SQLite's 5 s busy wait.
    let holder = rusqlite::Connection::open(dir.path().join("tasks.db")).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let in_file = |conn: &rusqlite::Connection| -> String {
        conn.query_row("SELECT status FROM tasks WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap()
    };
    let shown = watch_until(&bridge.client, &id, |s| s["status"] == "completed").await;
    assert!(shown["result"].as_str().unwrap().starts_with("part0"));
    assert_eq!(in_file(&holder), "running");
    // Bounded: the first try gives up after SQLite's 5 s busy wait.
    let mut refused = false;
    for _ in 0..800 {
        let logs = bridge.logs();
        if logs.contains("could not record the end of a task") && logs.contains("locked") {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        refused,
        "a write fails with the database locked: {}",
        bridge.logs()
    );
    assert_eq!(
        status(&bridge.client, &id).await["status"],
        "completed",
        "still the answer"
    );
    holder.execute_batch("COMMIT").unwrap();
    let mut recorded = in_file(&holder);
    for _ in 0..400 {
        if recorded != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
        recorded = in_file(&holder);
    }
    assert_eq!(recorded, "completed");
    let result: String = holder
        .query_row("SELECT result FROM tasks WHERE id = ?1", [&id], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(result.starts_with("part0"), "{result}");
    let next = queue(&bridge.client, json!({"message": "after the lock"})).await;
    wait_for(&bridge.client, &next, "completed").await;
}
