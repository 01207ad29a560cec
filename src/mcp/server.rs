//! The MCP server: rmcp's [`ServerHandler`] for the seven tools. It validates arguments, turns
//! each tool call into one actor message, and holds nothing but addresses and the caller's
//! identity ([`Owner`]), so the same handler serves stdio, Streamable HTTP and legacy SSE, and
//! both protocol eras that rmcp speaks.

use std::{borrow::Cow, sync::Arc, time::Duration};

use rmcp::{
    ErrorData as McpError, RoleServer, ServerHandler,
    model::{
        CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams,
        GetTaskParams, GetTaskResult, Implementation, InitializeRequestParams, InitializeResult,
        ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
        ServerConfig, TASKS_EXTENSION_ID,
    },
    service::RequestContext,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    output::{self, ToolError},
    tools,
};
use crate::{
    config::ToolSettings,
    gateway::{client::ChatProgress, registry::InstanceRegistry},
    tasks::{Owner, Tasks},
    tool_names as names,
};

/// How long clients may cache the tool list: it changes only with the configuration.
const TOOL_LIST_TTL_MS: u64 = 60 * 60 * 1000;

/// What the server tells the model about its tools.
const INSTRUCTIONS: &str = "Bridge to OpenClaw gateways. Use openclaw_chat to talk to an OpenClaw agent (pass the same session_id to continue a conversation), openclaw_chat_async with openclaw_task_status for long requests, openclaw_instances to see the configured gateways, and openclaw_status to check one.";

/// What the tools talk to: the gateway registry and the task supervisor. Built once by
/// `app::start_services` and shared (cheaply cloned) by every connection's handler.
#[derive(Clone)]
pub struct Services {
    /// Instance name → gateway actor.
    pub registry: InstanceRegistry,
    /// The task supervisor.
    pub tasks: Tasks,
    /// Which tools are offered.
    pub tools: std::sync::Arc<ToolSettings>,
}

/// The handler of one MCP connection (stdio process, HTTP session or SSE stream).
#[derive(Clone)]
pub struct OpenClawServer {
    services: Services,
    owner: Owner,
}

impl OpenClawServer {
    /// A handler for a caller identified as `owner`.
    pub fn new(services: Services, owner: Owner) -> Self {
        OpenClawServer { services, owner }
    }

    /// The caller this handler serves.
    pub fn owner(&self) -> &Owner {
        &self.owner
    }

    async fn chat(
        &self,
        args: Option<&serde_json::Map<String, serde_json::Value>>,
        context: &RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ToolError> {
        let args = tools::chat_args(args)?;
        crate::mcp::validate::gateway_command(&args.message, self.services.tools.refuse_commands)?;
        let instance = self.services.registry.resolve(args.instance.as_deref())?;
        // Cancelled when the client sends notifications/cancelled, and when this future is
        // dropped (a closed connection): either way the gateway request is aborted.
        let cancel = context.ct.child_token();
        let _abort_on_drop = cancel.clone().drop_guard();
        // A streamed answer only when the client wants progress; otherwise 1.7.0's plain request.
        let reply = match context.meta.get_progress_token() {
            None => instance.chat(args.request(false), None, cancel).await,
            Some(token) => {
                let (tx, rx) = watch::channel(ChatProgress::default());
                let answered = CancellationToken::new();
                let forward = forward_progress(rx, context.peer.clone(), token, answered.clone());
                let chat = async {
                    let reply = instance
                        .chat(args.request(true), Some(Arc::new(tx)), cancel)
                        .await;
                    answered.cancel();
                    reply
                };
                // Both in this one future: it returns (and rmcp writes the response) only once
                // the forwarder has finished the notification it was sending, so no progress
                // notification of this call is ever written after the call's response.
                let (reply, last_progress) = tokio::join!(chat, forward);
                // The official TypeScript SDK (1.32) runs a notification's handler in a later
                // microtask but a response's at once: a progress notification that reaches it in
                // the same read as the response is handled after the response has dropped the
                // progress handler ("unknown progress token"). A short gap after the last one
                // puts them in separate reads; it costs at most PROGRESS_SETTLE, on calls that
                // asked for progress and whose answer ended right after a notification.
                if let Some(sent) = last_progress {
                    tokio::time::sleep_until(sent + PROGRESS_SETTLE).await;
                }
                reply
            }
        }?;
        // The text is the assistant's text, as in 1.7.0, and only there: an answer of hundreds of
        // kilobytes is sent once. structuredContent carries what the text does not say.
        let structured = serde_json::to_value(tools::ChatOutput {
            instance: &instance.name,
            session_key: args.session_id.as_deref(),
            agent: args.agent.as_deref(),
            model: reply.model.as_deref(),
            usage: reply.usage.as_ref(),
        })
        .ok();
        let mut result = output::text(reply.content);
        result.structured_content = structured;
        Ok(result)
    }
}

/// The least time between a call's last progress notification and its response (see
/// `chat`): enough for a client to read them apart on loopback and over a network.
const PROGRESS_SETTLE: Duration = Duration::from_millis(20);

/// Sends `notifications/progress` (characters received so far) while a streamed answer arrives,
/// and stops once `answered` is cancelled (the answer is complete, or failed).
///
/// A notification handed to rmcp is written when rmcp's send of it completes, which is when
/// `notify_progress` returns. So a send is never raced against `answered`: the one under way
/// when the answer completes is awaited to its end, and later updates are dropped. The caller
/// returns its result only after this returns, so every notification of a call is written
/// before the call's response, on every transport.
/// Returns when the last notification was written, if any was.
async fn forward_progress(
    mut rx: watch::Receiver<ChatProgress>,
    peer: rmcp::Peer<RoleServer>,
    token: rmcp::model::ProgressToken,
    answered: CancellationToken,
) -> Option<tokio::time::Instant> {
    let mut last = 0u64;
    let mut sent = None;
    loop {
        tokio::select! {
            biased;
            () = answered.cancelled() => return sent,
            changed = rx.changed() => {
                if changed.is_err() {
                    return sent;
                }
            }
        }
        let chars = rx.borrow_and_update().chars;
        if chars > last {
            last = chars;
            let note = ProgressNotificationParam::new(token.clone(), chars as f64)
                .with_message(format!("received {chars} characters"));
            if peer.notify_progress(note).await.is_err() {
                return sent;
            }
            sent = Some(tokio::time::Instant::now());
        }
    }
}

impl ServerHandler for OpenClawServer {
    fn get_info(&self) -> ServerConfig {
        #[cfg_attr(not(feature = "conformance"), allow(unused_mut))]
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            // The tasks extension (SEP-2663): `openclaw_chat` becomes a task for 2026-07-28
            // requests that declare it, run by the same TaskSupervisor as `openclaw_chat_async`.
            // Offered by `server/discover` only: `initialize` takes it out (see `initialize`).
            .enable_tasks()
            .build();
        // The conformance suite's logging scenarios need `logging`; the real server sends no logs.
        #[cfg(feature = "conformance")]
        {
            capabilities.logging = Some(Default::default());
        }
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("openclaw-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("OpenClaw MCP bridge")
                    .with_description("Talk to OpenClaw agents on one or more OpenClaw gateways"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    #[cfg(feature = "conformance")]
    #[allow(deprecated)] // logging/setLevel is gone in 2026-07-28; the 2025 suite still tests it
    async fn set_level(
        &self,
        _request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        Ok(())
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, McpError> {
        context.peer.set_peer_info(request.clone());
        let mut result = self.negotiate_initialize(&request)?;
        without_tasks_extension(&mut result.capabilities);
        Ok(result)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        #[cfg_attr(not(feature = "conformance"), allow(unused_mut))]
        let mut all: Vec<_> = tools::definitions()
            .iter()
            .filter(|t| self.services.tools.enabled(&t.name))
            .cloned()
            .collect();
        #[cfg(feature = "conformance")]
        all.extend(super::conformance::definitions());
        Ok(ListToolsResult::with_all_items(all)
            .with_ttl_ms(TOOL_LIST_TTL_MS)
            .with_cache_scope(CacheScope::Public))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let args = request.arguments.as_ref();
        let name: Cow<'_, str> = request.name.clone();
        tracing::info!(tool = %name, owner = %self.owner, rpc_id = ?context.id, "tool call");
        if names::is_tool(&name) && !self.services.tools.enabled(&name) {
            return Err(McpError::invalid_params(
                format!("Tool {name} is disabled on this server"),
                None,
            ));
        }
        let result = match name.as_ref() {
            names::CHAT if wants_a_task(&context) => {
                return Ok(
                    match native::create(&self.services, &self.owner, args).await {
                        Ok(task) => task.into(),
                        Err(e) => output::error(e).into(),
                    },
                );
            }
            names::CHAT => output::finish(self.chat(args, &context).await),
            names::STATUS => tools::status(&self.services.registry, args).await,
            names::INSTANCES => tools::instances(&self.services.registry).await,
            names::CHAT_ASYNC => tools::chat_async(&self.services, &self.owner, args).await,
            names::TASK_STATUS => tools::task_status(&self.services.tasks, &self.owner, args).await,
            names::TASK_LIST => tools::task_list(&self.services.tasks, &self.owner, args).await,
            names::TASK_CANCEL => tools::task_cancel(&self.services.tasks, &self.owner, args).await,
            names::AGENTS => tools::agents(&self.services.registry, args).await,
            names::SESSIONS => tools::sessions(&self.services.registry, args).await,
            names::SESSION_HISTORY => tools::session_history(&self.services.registry, args).await,
            #[cfg(feature = "conformance")]
            other if other.starts_with("test_") || other == "json_schema_2020_12_tool" => {
                return match super::conformance::call(other, args, &context).await {
                    Some(result) => result.map(Into::into),
                    None => Err(McpError::invalid_params(
                        format!("Unknown tool: {other}"),
                        None,
                    )),
                };
            }
            other => {
                // 1.7.0's text; the code is the spec's for an unknown tool.
                return Err(McpError::invalid_params(
                    format!("Unknown tool: {other}"),
                    None,
                ));
            }
        };
        crate::metrics::tool_call(&name, result.is_error != Some(true));
        if result.is_error == Some(true) {
            let error = result
                .content
                .first()
                .and_then(|c| c.as_text())
                .map(|t| t.text.as_str())
                .unwrap_or("");
            tracing::warn!(tool = %name, error = %error, "tool call failed");
        }
        Ok(result.into())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, McpError> {
        native::get(&self.services.tasks, &self.owner, request.task_id).await
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), McpError> {
        native::cancel(&self.services.tasks, &self.owner, request.task_id).await
    }
}

/// Whether this `tools/call` asks for a task: only a request of the 2026-07-28 era (or later)
/// whose own `_meta` client capabilities declare the tasks extension. The extension exists only
/// in that era; rmcp 3.11 cannot offer the 2025-11-25 era's tasks, so a client that negotiated
/// 2025-11-25 at `initialize` cannot read a `resultType: "task"` answer even if it declared the
/// extension there (the TypeScript SDK and the Inspector do), and gets the plain answer.
fn wants_a_task(context: &RequestContext<RoleServer>) -> bool {
    let modern = context
        .protocol_version()
        .is_some_and(|version| !version.has_initialize());
    modern
        && context
            .meta
            .client_capabilities()
            .is_some_and(|caps| caps.supports_tasks())
}

/// Takes the tasks extension out of the capabilities an `initialize` answer offers: a session of
/// the initialize era never gets a task (see [`wants_a_task`]).
fn without_tasks_extension(capabilities: &mut ServerCapabilities) {
    if let Some(extensions) = capabilities.extensions.as_mut() {
        extensions.remove(TASKS_EXTENSION_ID);
        if extensions.is_empty() {
            capabilities.extensions = None;
        }
    }
}

/// Native MCP tasks (the `io.modelcontextprotocol/tasks` extension, SEP-2663, as rmcp 3.11
/// implements it): a task-aware client's `openclaw_chat` returns a task handle at once, and
/// `tasks/get` / `tasks/cancel` map onto the TaskSupervisor. The task is the same one the async
/// tools see, with the same owner.
mod native {
    use rmcp::{
        ErrorData as McpError,
        model::{
            CreateTaskResult, DetailedTask, GetTaskResult, JsonObject, Task, TaskPayload,
            TaskStatus as WireStatus,
        },
    };

    use super::{Services, output, tools};
    use crate::{
        mcp::output::ToolError,
        tasks::{
            Owner, Tasks,
            error::TaskError,
            task::{NewTask, TaskRecord, TaskStatus},
        },
        util::iso8601_ms,
    };

    /// Clients should poll about this often.
    const POLL_INTERVAL_MS: u64 = 1000;

    fn handle(task: &TaskRecord, tasks: &Tasks) -> Task {
        let updated = [task.completed_at, task.last_activity_at, task.started_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(task.created_at);
        let status = match task.status {
            TaskStatus::Pending | TaskStatus::Running => WireStatus::Working,
            // A failed chat is a tool result with isError, as the synchronous call would give.
            TaskStatus::Completed | TaskStatus::Failed => WireStatus::Completed,
            TaskStatus::Cancelled => WireStatus::Cancelled,
        };
        Task::new(
            task.id.clone(),
            status,
            iso8601_ms(task.created_at),
            iso8601_ms(updated),
        )
        .with_status_message(task.status.as_str())
        .with_ttl_ms(tasks.retention().as_millis() as u64)
        .with_poll_interval_ms(POLL_INTERVAL_MS)
    }

    /// Queues an `openclaw_chat` call as a task.
    pub async fn create(
        services: &Services,
        owner: &Owner,
        args: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<CreateTaskResult, ToolError> {
        let args = tools::chat_args(args)?;
        crate::mcp::validate::gateway_command(&args.message, services.tools.refuse_commands)?;
        let instance = services.registry.resolve(args.instance.as_deref())?;
        let task = services
            .tasks
            .enqueue(NewTask {
                owner: owner.key(),
                instance: instance.name.clone(),
                session_id: args.session_id,
                agent_id: args.agent,
                message: args.message,
                images: args.images,
                priority: 0,
            })
            .await
            .map_err(|e| ToolError::Task(e.to_string()))?;
        Ok(CreateTaskResult::new(handle(&task, &services.tasks)))
    }

    fn not_found(e: TaskError) -> McpError {
        match e {
            TaskError::NotFound(_) => McpError::invalid_params(e.to_string(), None),
            other => McpError::internal_error(other.to_string(), None),
        }
    }

    /// `tasks/get`.
    pub async fn get(tasks: &Tasks, owner: &Owner, id: String) -> Result<GetTaskResult, McpError> {
        let task = tasks.get(id, owner.key()).await.map_err(not_found)?;
        let base = handle(&task, tasks);
        let payload = match task.status {
            TaskStatus::Pending | TaskStatus::Running => TaskPayload::Working,
            TaskStatus::Cancelled => TaskPayload::Cancelled,
            TaskStatus::Completed | TaskStatus::Failed => {
                let result = if task.status == TaskStatus::Completed {
                    // The answer as the text, with the metadata the task knows, as the
                    // synchronous call gives it.
                    let mut result = output::text(task.result.clone().unwrap_or_default());
                    result.structured_content = serde_json::to_value(tools::ChatOutput {
                        instance: &task.instance,
                        session_key: task.session_id.as_deref(),
                        agent: task.agent_id.as_deref(),
                        model: None,
                        usage: None,
                    })
                    .ok();
                    result
                } else {
                    output::error(task.error.clone().unwrap_or_default())
                };
                let object: JsonObject = match serde_json::to_value(&result) {
                    Ok(serde_json::Value::Object(map)) => map,
                    _ => JsonObject::new(),
                };
                TaskPayload::Completed { result: object }
            }
        };
        Ok(GetTaskResult::new(DetailedTask::new(base, payload)))
    }

    /// `tasks/cancel`: a cooperative acknowledgement; a finished task stays as it is.
    pub async fn cancel(tasks: &Tasks, owner: &Owner, id: String) -> Result<(), McpError> {
        match tasks.cancel(id, owner.key()).await {
            Ok(_) | Err(TaskError::NotCancellable(_)) => Ok(()),
            Err(e) => Err(not_found(e)),
        }
    }
}
