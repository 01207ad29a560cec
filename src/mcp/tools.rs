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
    tool_names::{
        AGENTS, CHAT, CHAT_ASYNC, INSTANCES, SESSION_HISTORY, SESSIONS, STATUS, TASK_CANCEL,
        TASK_LIST, TASK_STATUS,
    },
};

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(map) => Arc::new(map),
        // unwrap-free: every literal below is an object.
        _ => Arc::new(JsonObject::new()),
    }
}

const INSTANCE_DESCRIPTION: &str =
    "Target OpenClaw instance name. Defaults to the default instance.";

fn agent_property() -> Value {
    json!({"type": "string", "description": "Optional agent id on the gateway (see openclaw_agents). Defaults to the instance's agent."})
}

fn images_property() -> Value {
    json!({
        "type": "array",
        "description": "Optional images (PNG, JPEG, WebP or GIF; at most 8, 5 MiB each): data URIs, or {data: <base64>, mimeType}.",
        "items": {
            "anyOf": [
                {"type": "string"},
                {"type": "object", "properties": {"data": {"type": "string"}, "mimeType": {"type": "string"}}, "required": ["data", "mimeType"]}
            ]
        }
    })
}

/// A value of JSON type `kind`, or `null`. Spelt with `anyOf`, not `"type": [kind, "null"]`:
/// type arrays are flagged by the Inspector's `--strict` lint and refused by some model
/// providers' schema subsets.
fn nullable(kind: &str) -> Value {
    json!({"anyOf": [{"type": kind}, {"type": "null"}]})
}

fn health_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "error", "unknown"]},
            "message": {"type": "string"},
            "http_status": {"type": "integer"},
            "ready": {"type": "boolean"},
            "last_check": nullable("string"),
            "last_ok": nullable("string"),
            "latency_ms": nullable("number"),
            "last_error": nullable("string"),
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
                    "instance": {"type": "string", "description": "Target OpenClaw instance name. Use openclaw_instances to list available instances. Defaults to the default instance."},
                    "agent": agent_property(),
                    "new_session": {"type": "boolean", "description": "Start a fresh conversation; its session key comes back in structuredContent.session_key (pass it as session_id to continue)."},
                    "images": images_property()
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
                    "instance": {"type": "string", "description": INSTANCE_DESCRIPTION},
                    "agent": agent_property(),
                    "images": images_property()
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
        Tool::new(
            AGENTS,
            "List the agents an OpenClaw instance offers (from its /v1/models). Pass an agent id as `agent` to openclaw_chat to talk to that agent.",
            schema(json!({
                "type": "object",
                "properties": {
                    "instance": {"type": "string", "description": INSTANCE_DESCRIPTION}
                }
            })),
        )
        .with_title("List OpenClaw agents")
        .with_annotations(read_only("List OpenClaw agents", true))
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "instance": {"type": "string"},
                "agents": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "model": {"type": "string"}}, "required": ["id", "model"]}},
                "models": {"type": "array", "items": {"type": "string"}}
            },
            "required": ["instance", "agents", "models"]
        }))),
        Tool::new(
            SESSIONS,
            "List the conversations (sessions) stored on an OpenClaw instance, newest first, with their session keys.",
            schema(json!({
                "type": "object",
                "properties": {
                    "instance": {"type": "string", "description": INSTANCE_DESCRIPTION},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "Most sessions to return. Default: 50"}
                }
            })),
        )
        .with_title("List OpenClaw sessions")
        .with_annotations(read_only("List OpenClaw sessions", true))
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "instance": {"type": "string"},
                "sessions": {"type": "array"},
                "count": {"type": "integer"}
            },
            "required": ["instance", "sessions", "count"]
        }))),
        Tool::new(
            SESSION_HISTORY,
            "Read the recent turns of one conversation on an OpenClaw instance (a bounded, redacted view kept by the gateway).",
            schema(json!({
                "type": "object",
                "properties": {
                    "session_key": {"type": "string", "description": "The session's key as openclaw_sessions lists it (agent:<agent>:<key>)."},
                    "session_id": {"type": "string", "description": "Or the session_id given to openclaw_chat (with `agent`, default main)."},
                    "agent": agent_property(),
                    "instance": {"type": "string", "description": INSTANCE_DESCRIPTION},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100, "description": "Most recent messages to return. Default: 20"}
                }
            })),
        )
        .with_title("Read an OpenClaw session")
        .with_annotations(read_only("Read an OpenClaw session", true))
        .with_raw_output_schema(schema(json!({
            "type": "object",
            "properties": {
                "instance": {"type": "string"},
                "session_key": {"type": "string"},
                "messages": {"type": "array"}
            },
            "required": ["instance", "session_key", "messages"]
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
    /// Gateway session: as given, or a fresh key for `new_session`.
    pub session_id: Option<String>,
    /// Instance name (validated, not yet resolved).
    pub instance: Option<String>,
    /// Agent for this call.
    pub agent: Option<String>,
    /// Images, as data URIs.
    pub images: Vec<String>,
}

/// Validates `openclaw_chat` (and the shared part of `openclaw_chat_async`): 1.7.0's
/// arguments in 1.7.0's order, then this bridge's (`agent`, `images`, `new_session`).
pub fn chat_args(args: Option<&Map<String, Value>>) -> Result<ChatArgs, ToolError> {
    let args = validate::object(args)?;
    let message = validate::message(args)?;
    let mut session_id = validate::chat_session_id(args)?;
    let instance = validate::optional_id(args, "instance")?;
    let agent = validate::agent(args)?;
    let images = validate::images(args)?;
    if validate::flag(args, "new_session")? {
        if session_id.is_some() {
            return Err(validate::ValidationError(
                "give session_id or new_session, not both".to_string(),
            )
            .into());
        }
        session_id = Some(format!("mcp-{}", uuid::Uuid::new_v4()));
    }
    Ok(ChatArgs {
        message,
        session_id,
        instance,
        agent,
        images,
    })
}

impl ChatArgs {
    /// The gateway request for these arguments.
    pub fn request(&self, stream: bool) -> ChatRequest {
        ChatRequest {
            message: self.message.clone(),
            session_id: self.session_id.clone(),
            agent_id: self.agent.clone(),
            stream,
            images: self.images.clone(),
            run: Default::default(),
        }
    }
}

/// `structuredContent` of `openclaw_chat`: what the call used and what the gateway reported
/// about the answer. The answer itself is the result's text, as in 1.7.0, and only there, so a
/// large answer is sent once.
#[derive(Serialize)]
pub struct ChatOutput<'a> {
    /// The instance that answered.
    pub instance: &'a str,
    /// The session key the call used (send it as `session_id` to continue), if any.
    pub session_key: Option<&'a str>,
    /// The agent asked for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<&'a str>,
    /// `model` as the gateway echoed it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<&'a str>,
    /// Token usage, when the gateway reports it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<&'a Value>,
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
    /// The gateway API the calls use now (`ws` or `http`), and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    api: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_reason: Option<&'a str>,
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
                api: health.api.as_deref(),
                api_reason: health.api_reason.as_deref(),
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
            validate::gateway_command(&message, services.tools.refuse_commands)?;
            let session_id = validate::chat_session_id(checked)?;
            let priority = validate::priority(checked)?;
            let instance = validate::optional_id(checked, "instance")?;
            let agent = validate::agent(checked)?;
            let images = validate::images(checked)?;
            let handle = services.registry.resolve(instance.as_deref())?;
            let task = services
                .tasks
                .enqueue(NewTask {
                    owner: owner.key(),
                    instance: handle.name.clone(),
                    session_id,
                    agent_id: agent,
                    message,
                    images,
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

/// An optional integer argument within `min..=max`.
fn bounded(
    args: &Map<String, Value>,
    field: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ToolError> {
    match args.get(field) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                validate::ValidationError(format!("{field} must be an integer from {min} to {max}"))
                    .into()
            }),
    }
}

#[derive(Serialize)]
struct Agent {
    id: String,
    model: String,
}

#[derive(Serialize)]
struct AgentsOutput<'a> {
    instance: &'a str,
    agents: Vec<Agent>,
    models: Vec<String>,
}

/// `openclaw_agents`: the agents behind `openclaw/<id>` model ids (`default` is an alias).
pub async fn agents(
    registry: &InstanceRegistry,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            let empty = Map::new();
            let args = args.unwrap_or(&empty);
            let instance = validate::optional_id(args, "instance")?;
            let handle = registry.resolve(instance.as_deref())?;
            let models = handle.models().await?;
            let agents = models
                .iter()
                .filter_map(|m| {
                    let id = m
                        .strip_prefix("openclaw/")
                        .or_else(|| m.strip_prefix("openclaw:"))?;
                    (id != "default").then(|| Agent {
                        id: id.to_string(),
                        model: m.clone(),
                    })
                })
                .collect();
            Ok(output::json(&AgentsOutput {
                instance: &handle.name,
                agents,
                models,
            }))
        }
        .await,
    )
}

#[derive(Serialize)]
struct SessionsOutput<'a> {
    instance: &'a str,
    sessions: Vec<Value>,
    count: usize,
}

/// `openclaw_sessions`: the gateway's `sessions_list`, through `/tools/invoke`.
pub async fn sessions(
    registry: &InstanceRegistry,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            let empty = Map::new();
            let args = args.unwrap_or(&empty);
            let instance = validate::optional_id(args, "instance")?;
            let limit = bounded(args, "limit", 1, 200, 50)?;
            let handle = registry.resolve(instance.as_deref())?;
            let listed = handle
                .invoke_tool("sessions_list", json!({"limit": limit}))
                .await?;
            let sessions = match listed {
                Value::Array(rows) => rows,
                Value::Object(mut obj) => match obj.remove("sessions") {
                    Some(Value::Array(rows)) => rows,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            Ok(output::json(&SessionsOutput {
                instance: &handle.name,
                count: sessions.len(),
                sessions,
            }))
        }
        .await,
    )
}

#[derive(Serialize)]
struct HistoryOutput<'a> {
    instance: &'a str,
    session_key: &'a str,
    messages: Vec<Value>,
}

/// `openclaw_session_history`: the gateway's `sessions_history`, through `/tools/invoke`.
pub async fn session_history(
    registry: &InstanceRegistry,
    args: Option<&Map<String, Value>>,
) -> CallToolResult {
    output::finish(
        async {
            let args = validate::object(args)?;
            let key = validate::optional_id(args, "session_key")?;
            let id = validate::optional_id(args, "session_id")?;
            let agent = validate::agent(args)?;
            let instance = validate::optional_id(args, "instance")?;
            let limit = bounded(args, "limit", 1, 100, 20)?;
            let session_key = match (key, id) {
                (Some(key), None) => key,
                (None, Some(id)) => format!("agent:{}:{id}", agent.as_deref().unwrap_or("main")),
                _ => {
                    return Err(validate::ValidationError(
                        "give session_key or session_id".to_string(),
                    )
                    .into());
                }
            };
            let handle = registry.resolve(instance.as_deref())?;
            let history = handle
                .invoke_tool(
                    "sessions_history",
                    json!({"sessionKey": session_key, "limit": limit}),
                )
                .await?;
            let messages = match history {
                Value::Array(rows) => rows,
                Value::Object(mut obj) => match obj.remove("messages") {
                    Some(Value::Array(rows)) => rows,
                    _ => Vec::new(),
                },
                _ => Vec::new(),
            };
            Ok(output::json(&HistoryOutput {
                instance: &handle.name,
                session_key: &session_key,
                messages,
            }))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `type` keyword whose value is an array, with its path.
    fn type_arrays(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, child) in map {
                    let here = format!("{path}/{key}");
                    if key == "type" && child.is_array() {
                        found.push(here.clone());
                    }
                    type_arrays(child, &here, found);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    type_arrays(item, &format!("{path}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn no_schema_uses_a_type_array() {
        let mut found = Vec::new();
        for tool in definitions() {
            let input = Value::Object((*tool.input_schema).clone());
            type_arrays(&input, &format!("{}/inputSchema", tool.name), &mut found);
            if let Some(output) = &tool.output_schema {
                let output = Value::Object((**output).clone());
                type_arrays(&output, &format!("{}/outputSchema", tool.name), &mut found);
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn every_tool_has_a_definition_in_listing_order() {
        let names: Vec<&str> = definitions().iter().map(|t| t.name.as_ref()).collect();
        assert_eq!(names, crate::tool_names::ALL_TOOLS);
    }
}
