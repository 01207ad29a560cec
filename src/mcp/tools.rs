//! The seven tools: their definitions (names, descriptions and input schemas of openclaw-mcp
//! 1.7.0, plus titles, annotations and output schemas) and the handlers of the tools that talk to
//! gateways directly. Each handler validates its arguments with 1.7.0's rules and turns the call
//! into one actor message.

use std::sync::{Arc, OnceLock};

use rmcp::model::{CallToolResult, JsonObject, Tool, ToolAnnotations};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::server::Services;
use super::{
    output::{self, ToolError},
    validate,
};
use crate::{
    gateway::{
        client::ChatRequest,
        health::{HealthSnapshot, HealthStatus},
        registry::InstanceRegistry,
    },
    tasks::{
        Owner, Tasks,
        task::{NewTask, TaskFilter, TaskStatus, TaskView},
    },
};

/// Tool names, in 1.7.0's listing order.
pub const CHAT: &str = "openclaw_chat";
/// See [`CHAT`].
pub const STATUS: &str = "openclaw_status";
/// See [`CHAT`].
pub const CHAT_ASYNC: &str = "openclaw_chat_async";
/// See [`CHAT`].
pub const TASK_STATUS: &str = "openclaw_task_status";
/// See [`CHAT`].
pub const TASK_LIST: &str = "openclaw_task_list";
/// See [`CHAT`].
pub const TASK_CANCEL: &str = "openclaw_task_cancel";
/// See [`CHAT`].
pub const INSTANCES: &str = "openclaw_instances";

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(map) => Arc::new(map),
        // unwrap-free: every literal below is an object.
        _ => Arc::new(JsonObject::new()),
    }
}

const INSTANCE_DESCRIPTION: &str =
    "Target OpenClaw instance name. Defaults to the default instance.";

fn health_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "error", "unknown"]},
            "message": {"type": "string"},
            "http_status": {"type": "integer"},
            "ready": {"type": "boolean"},
            "last_check": {"type": ["string", "null"]},
            "last_ok": {"type": ["string", "null"]},
            "latency_ms": {"type": ["number", "null"]},
            "last_error": {"type": ["string", "null"]},
            "consecutive_failures": {"type": "integer"},
            "restarts": {"type": "integer"}
        },
        "required": ["status", "message", "consecutive_failures", "restarts"]
    })
}

fn task_fields_schema() -> Value {
    json!({
        "task_id": {"type": "string"},
        "type": {"type": "string"},
        "status": {"type": "string", "enum": validate::TASK_STATUSES},
        "instance": {"type": "string"},
        "priority": {"type": "integer"},
        "created_at": {"type": "string"},
        "started_at": {"type": "string"},
        "completed_at": {"type": "string"},
        "result": {"type": "string"},
        "error": {"type": "string"},
        "progress_chars": {"type": "integer"},
        "last_activity_at": {"type": "string"},
        "session_id": {"type": "string"}
    })
}

fn build_definitions() -> Vec<Tool> {
    let read_only = |title: &str, open_world: bool| {
        ToolAnnotations::with_title(title)
            .read_only(true)
            .destructive(false)
            .idempotent(true)
            .open_world(open_world)
    };
    vec![
        Tool::new(
            CHAT,
            "Send a message to OpenClaw and get a response",
            schema(json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "description": "The message to send to OpenClaw"},
                    "session_id": {"type": "string", "description": "Optional session ID for conversation context"},
                    "instance": {"type": "string", "description": "Target OpenClaw instance name. Use openclaw_instances to list available instances. Defaults to the default instance."}
                },
                "required": ["message"]
            })),
        )
        .with_title("Chat with OpenClaw")
        .with_annotations(
            ToolAnnotations::with_title("Chat with OpenClaw")
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        ),
        Tool::new(
            STATUS,
            "Get OpenClaw gateway status and health information",
            schema(json!({
                "type": "object",
                "properties": {
                    "instance": {"type": "string", "description": INSTANCE_DESCRIPTION}
                }
            })),
        )
        .with_title("OpenClaw gateway status")
        .with_annotations(read_only("OpenClaw gateway status", true))
        .with_raw_output_schema(schema({
            let mut s = health_schema();
            s["properties"]["instance"] = json!({"type": "string"});
            s["properties"]["status"] = json!({"type": "string", "enum": ["ok", "error"]});
            s["required"] = json!(["status", "message", "instance"]);
            s
        })),
        Tool::new(
            CHAT_ASYNC,
            "Send a message to OpenClaw asynchronously. Returns a task_id immediately that can be polled for results. Use this for potentially long-running conversations.",
            schema(json!({
                "type": "object",
                "properties": {
                    "message": {"type": "string", "description": "The message to send to OpenClaw"},
                    "session_id": {"type": "string", "description": "Optional session ID for conversation context"},
                    "priority": {"type": "number", "description": "Task priority (higher = processed first). Default: 0"},
                    "instance": {"type": "string", "description": INSTANCE_DESCRIPTION}
                },
                "required": ["message"]
            })),
        )
        .with_title("Chat with OpenClaw in the background")
        .with_annotations(
            ToolAnnotations::with_title("Chat with OpenClaw in the background")
                .read_only(false)
                .destructive(false)
                .idempotent(false)
                .open_world(true),
        )
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string"},
                "status": {"type": "string"},
                "instance": {"type": "string"},
                "message": {"type": "string"}
            },
            "required": ["task_id", "status", "instance", "message"]
        }))),
        Tool::new(
            TASK_STATUS,
            "Check the status of an async task. Returns status, and result if completed.",
            schema(json!({
                "type": "object",
                "properties": {
                    "task_id": {"type": "string", "description": "The task ID returned from openclaw_chat_async"}
                },
                "required": ["task_id"]
            })),
        )
        .with_title("Async task status")
        .with_annotations(read_only("Async task status", false))
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": task_fields_schema(),
            "required": ["task_id", "type", "status", "instance", "created_at"]
        }))),
        Tool::new(
            TASK_LIST,
            "List all tasks. Optionally filter by status, session, or instance.",
            schema(json!({
                "type": "object",
                "properties": {
                    "status": {"type": "string", "enum": validate::TASK_STATUSES, "description": "Filter by task status"},
                    "session_id": {"type": "string", "description": "Filter by session ID"},
                    "instance": {"type": "string", "description": "Filter by instance name"}
                },
                "required": []
            })),
        )
        .with_title("List async tasks")
        .with_annotations(read_only("List async tasks", false))
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "stats": {
                    "type": "object",
                    "properties": {
                        "total": {"type": "integer"},
                        "byStatus": {
                            "type": "object",
                            "properties": {
                                "pending": {"type": "integer"},
                                "running": {"type": "integer"},
                                "completed": {"type": "integer"},
                                "failed": {"type": "integer"},
                                "cancelled": {"type": "integer"}
                            }
                        }
                    },
                    "required": ["total", "byStatus"]
                },
                "tasks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "task_id": {"type": "string"},
                            "type": {"type": "string"},
                            "status": {"type": "string"},
                            "instance": {"type": "string"},
                            "priority": {"type": "integer"},
                            "created_at": {"type": "string"},
                            "has_result": {"type": "boolean"}
                        },
                        "required": ["task_id", "type", "status", "instance", "priority", "created_at", "has_result"]
                    }
                }
            },
            "required": ["stats", "tasks"]
        }))),
        Tool::new(
            TASK_CANCEL,
            "Cancel a pending or running task. A running task's request to the gateway is aborted.",
            schema(json!({
                "type": "object",
                "properties": {
                    "task_id": {"type": "string", "description": "The task ID to cancel"}
                },
                "required": ["task_id"]
            })),
        )
        .with_title("Cancel an async task")
        .with_annotations(
            ToolAnnotations::with_title("Cancel an async task")
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        )
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "task_id": {"type": "string"},
                "status": {"type": "string"},
                "message": {"type": "string"},
                "previous_status": {"type": "string"}
            },
            "required": ["task_id", "status", "message"]
        }))),
        Tool::new(
            INSTANCES,
            "List all configured OpenClaw instances. Shows instance names, URLs, and which is the default. Use instance names in other tools to target a specific OpenClaw gateway.",
            schema(json!({"type": "object", "properties": {}})),
        )
        .with_title("List OpenClaw instances")
        .with_annotations(read_only("List OpenClaw instances", false))
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "instances": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string"},
                            "url": {"type": "string"},
                            "isDefault": {"type": "boolean"},
                            "health": health_schema()
                        },
                        "required": ["name", "url", "isDefault"]
                    }
                },
                "total": {"type": "integer"}
            },
            "required": ["instances", "total"]
        }))),
    ]
}

/// The tool list, built once.
pub fn definitions() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(build_definitions)
}

/// `openclaw_chat` arguments, validated.
pub struct ChatArgs {
    /// The trimmed message.
    pub message: String,
    /// Gateway session.
    pub session_id: Option<String>,
    /// Instance name (validated, not yet resolved).
    pub instance: Option<String>,
}

/// Validates `openclaw_chat` (and the shared part of `openclaw_chat_async`), in 1.7.0's order.
pub fn chat_args(args: Option<&Map<String, Value>>) -> Result<ChatArgs, ToolError> {
    let args = validate::object(args)?;
    let message = validate::message(args)?;
    let session_id = validate::optional_id(args, "session_id")?;
    let instance = validate::optional_id(args, "instance")?;
    Ok(ChatArgs {
        message,
        session_id,
        instance,
    })
}

impl ChatArgs {
    /// The gateway request for these arguments.
    pub fn request(&self, stream: bool) -> ChatRequest {
        ChatRequest {
            message: self.message.clone(),
            session_id: self.session_id.clone(),
            agent_id: None,
            stream,
        }
    }
}

/// `openclaw_status` output: 1.7.0's three keys first, then the actor's health fields.
#[derive(Serialize)]
struct StatusOutput<'a> {
    status: HealthStatus,
    message: &'a str,
    instance: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ready: Option<bool>,
    latency_ms: Option<f64>,
    last_check: Option<&'a str>,
    last_ok: Option<&'a str>,
    last_error: Option<&'a str>,
    consecutive_failures: u32,
    restarts: u32,
}

/// `openclaw_status`: probes the gateway now and reports what it found. As in 1.7.0 an answering
/// gateway is a success result whatever its verdict, and an unreachable one is a tool error.
pub async fn status(
    registry: &InstanceRegistry,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            // 1.7.0 rejects a call without `arguments`; nothing is required here, so none is fine.
            let empty = Map::new();
            let args = args.unwrap_or(&empty);
            let instance = validate::optional_id(args, "instance")?;
            let handle = registry.resolve(instance.as_deref())?;
            let health = handle.probe().await?;
            Ok(output::json(&StatusOutput {
                status: match health.status {
                    HealthStatus::Ok => HealthStatus::Ok,
                    _ => HealthStatus::Error,
                },
                message: &health.message,
                instance: &handle.name,
                http_status: health.http_status,
                ready: health.ready,
                latency_ms: health.latency_ms,
                last_check: health.last_check.as_deref(),
                last_ok: health.last_ok.as_deref(),
                last_error: health.last_error.as_deref(),
                consecutive_failures: health.consecutive_failures,
                restarts: health.restarts,
            }))
        }
        .await,
    )
}

#[derive(Serialize)]
struct InstanceEntry<'a> {
    name: &'a str,
    url: &'a str,
    #[serde(rename = "isDefault")]
    is_default: bool,
    health: HealthSnapshot,
}

#[derive(Serialize)]
struct InstancesOutput<'a> {
    instances: Vec<InstanceEntry<'a>>,
    total: usize,
}

/// `openclaw_instances`: every instance, in configuration order, with its last known health.
pub async fn instances(registry: &InstanceRegistry) -> CallToolResult {
    let handles = registry.list();
    let healths = futures_util::future::join_all(handles.iter().map(|h| h.health())).await;
    let instances = handles
        .iter()
        .zip(healths)
        .map(|(h, health)| InstanceEntry {
            name: &h.name,
            url: &h.url,
            is_default: h.is_default,
            health,
        })
        .collect::<Vec<_>>();
    output::json(&InstancesOutput {
        total: instances.len(),
        instances,
    })
}

/// `openclaw_chat_async` output.
#[derive(Serialize)]
struct Queued<'a> {
    task_id: &'a str,
    status: &'static str,
    instance: &'a str,
    message: &'static str,
}

/// `openclaw_chat_async`: validates, resolves the instance now (an unknown one queues nothing),
/// and queues the task.
pub async fn chat_async(
    services: &Services,
    owner: &Owner,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            let checked = validate::object(args)?;
            let message = validate::message(checked)?;
            let session_id = validate::optional_id(checked, "session_id")?;
            let priority = validate::priority(checked)?;
            let instance = validate::optional_id(checked, "instance")?;
            let handle = services.registry.resolve(instance.as_deref())?;
            let task = services
                .tasks
                .enqueue(NewTask {
                    owner: owner.key(),
                    instance: handle.name.clone(),
                    session_id,
                    agent_id: None,
                    message,
                    priority,
                })
                .await
                .map_err(|e| ToolError::Task(e.to_string()))?;
            Ok(output::json(&Queued {
                task_id: &task.id,
                status: "pending",
                instance: &task.instance,
                message: "Task queued. Use openclaw_task_status to check progress.",
            }))
        }
        .await,
    )
}

/// `openclaw_task_status`: one of the caller's tasks, with progress while it runs.
pub async fn task_status(
    tasks: &Tasks,
    owner: &Owner,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            let id = validate::id(validate::object(args)?, "task_id")?;
            let task = tasks
                .get(id, owner.key())
                .await
                .map_err(|e| ToolError::Task(e.to_string()))?;
            Ok(output::json(&TaskView::from(&task)))
        }
        .await,
    )
}

/// `openclaw_task_list`: the caller's tasks; the stats ignore the filters, as in 1.7.0.
pub async fn task_list(
    tasks: &Tasks,
    owner: &Owner,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            // Nothing is required, so a call without `arguments` lists everything.
            let empty = Map::new();
            let args = args.unwrap_or(&empty);
            let filter = TaskFilter {
                status: validate::status_filter(args)?
                    .as_deref()
                    .and_then(TaskStatus::parse),
                session_id: validate::optional_id(args, "session_id")?,
                instance: validate::optional_id(args, "instance")?,
            };
            let list = tasks
                .list(owner.key(), filter)
                .await
                .map_err(|e| ToolError::Task(e.to_string()))?;
            Ok(output::json(&list))
        }
        .await,
    )
}

/// `openclaw_task_cancel` output.
#[derive(Serialize)]
struct Cancelled<'a> {
    task_id: &'a str,
    status: &'static str,
    message: &'static str,
    previous_status: &'static str,
}

/// `openclaw_task_cancel`: cancels a pending task, or a running one (its gateway request is
/// aborted).
pub async fn task_cancel(
    tasks: &Tasks,
    owner: &Owner,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            let id = validate::id(validate::object(args)?, "task_id")?;
            let previous = tasks
                .cancel(id.clone(), owner.key())
                .await
                .map_err(|e| ToolError::Task(e.to_string()))?;
            Ok(output::json(&Cancelled {
                task_id: &id,
                status: "cancelled",
                message: "Task cancelled successfully",
                previous_status: previous.as_str(),
            }))
        }
        .await,
    )
}
