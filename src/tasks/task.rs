//! One async chat task: its states, its stored record, and the views the four task tools return
//! (field names and order of openclaw-mcp 1.7.0, plus progress).

use serde::Serialize;

use crate::util::iso8601_ms;

/// The five states of 1.7.0: `pending → running → completed | failed`, and `→ cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskStatus {
    /// Queued, not sent yet.
    Pending,
    /// Sent to the gateway; the answer is on its way.
    Running,
    /// The gateway answered.
    Completed,
    /// The gateway failed, or the bridge stopped before it answered.
    Failed,
    /// Cancelled by its owner.
    Cancelled,
}

impl TaskStatus {
    /// All states, in 1.7.0's order.
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::Running,
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::Running => "running",
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<TaskStatus> {
        TaskStatus::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// Whether the task will never change again.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskStatus::Completed | TaskStatus::Failed | TaskStatus::Cancelled
        )
    }
}

/// The error of a task that was running when its bridge process died.
pub const INTERRUPTED: &str = "interrupted: the bridge stopped before the gateway answered";

/// The start of the error of a task whose answer arrived but could not be written to the task
/// store, however often it was tried (the store's own error follows).
pub const UNRECORDED: &str = "the gateway answered, but the bridge could not record the answer";

/// A task as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// `task_<uuid v4>`.
    pub id: String,
    /// Owner key (see `Owner`).
    pub owner: String,
    /// Resolved instance name.
    pub instance: String,
    /// Gateway session, if any.
    pub session_id: Option<String>,
    /// Agent for this task, if any.
    pub agent_id: Option<String>,
    /// The prompt; kept only until the task finishes.
    pub message: Option<String>,
    /// Images sent with the prompt (data URIs); kept only until the task finishes.
    pub images: Vec<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Creation order (ties in priority run oldest first).
    pub seq: i64,
    /// Current state.
    pub status: TaskStatus,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When it started running.
    pub started_at: Option<i64>,
    /// When it finished.
    pub completed_at: Option<i64>,
    /// The assistant's text, when completed.
    pub result: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// Characters of answer received so far.
    pub progress_chars: u64,
    /// When the gateway last sent something.
    pub last_activity_at: Option<i64>,
    /// The WebSocket run it was sent as (JSON of `gateway::ws::ops::RunRecord`), written before
    /// the prompt was sent: a bridge that restarts adopts the run instead of failing the task.
    pub run: Option<String>,
}

/// A new task to store.
#[derive(Debug, Clone)]
pub struct NewTask {
    /// Owner key.
    pub owner: String,
    /// Resolved instance name.
    pub instance: String,
    /// Gateway session.
    pub session_id: Option<String>,
    /// Agent override.
    pub agent_id: Option<String>,
    /// The prompt.
    pub message: String,
    /// Images sent with it (data URIs).
    pub images: Vec<String>,
    /// Priority.
    pub priority: i64,
}

impl NewTask {
    /// How the images are stored: a JSON array, or nothing when there are none.
    pub fn images_json(&self) -> Option<String> {
        (!self.images.is_empty()).then(|| serde_json::to_string(&self.images).unwrap_or_default())
    }

    /// The record of this task just stored as `id` at position `seq`, at `now`: pending.
    pub fn pending(self, id: String, seq: i64, now: i64) -> TaskRecord {
        TaskRecord {
            id,
            owner: self.owner,
            instance: self.instance,
            session_id: self.session_id,
            agent_id: self.agent_id,
            message: Some(self.message),
            images: self.images,
            priority: self.priority,
            seq,
            status: TaskStatus::Pending,
            created_at: now,
            started_at: None,
            completed_at: None,
            result: None,
            error: None,
            progress_chars: 0,
            last_activity_at: None,
            run: None,
        }
    }
}

/// `openclaw_task_status` output: 1.7.0's keys in its order, optional ones only when set, then
/// this bridge's additions.
#[derive(Debug, Clone, Serialize)]
pub struct TaskView {
    task_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    status: TaskStatus,
    instance: String,
    created_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<String>,
    progress_chars: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_activity_at: Option<String>,
}

impl From<&TaskRecord> for TaskView {
    fn from(t: &TaskRecord) -> Self {
        TaskView {
            task_id: t.id.clone(),
            kind: "chat",
            status: t.status,
            instance: t.instance.clone(),
            created_at: iso8601_ms(t.created_at),
            started_at: t.started_at.map(iso8601_ms),
            completed_at: t.completed_at.map(iso8601_ms),
            // 1.7.0: the result only for a completed task with a non-empty answer, the error only
            // for a failed one.
            result: t
                .result
                .clone()
                .filter(|r| t.status == TaskStatus::Completed && !r.is_empty()),
            error: t
                .error
                .clone()
                .filter(|e| t.status == TaskStatus::Failed && !e.is_empty()),
            priority: t.priority,
            session_id: t.session_id.clone(),
            progress_chars: t.progress_chars,
            last_activity_at: t.last_activity_at.map(iso8601_ms),
        }
    }
}

/// One row of `openclaw_task_list`.
#[derive(Debug, Clone, Serialize)]
pub struct TaskSummary {
    task_id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    status: TaskStatus,
    instance: String,
    priority: i64,
    created_at: String,
    has_result: bool,
}

impl From<&TaskRecord> for TaskSummary {
    fn from(t: &TaskRecord) -> Self {
        TaskSummary {
            task_id: t.id.clone(),
            kind: "chat",
            status: t.status,
            instance: t.instance.clone(),
            priority: t.priority,
            created_at: iso8601_ms(t.created_at),
            has_result: t.status == TaskStatus::Completed
                && t.result.as_deref().is_some_and(|r| !r.is_empty()),
        }
    }
}

/// Counts per state, in 1.7.0's shape.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ByStatus {
    /// Pending tasks.
    pub pending: u64,
    /// Running tasks.
    pub running: u64,
    /// Completed tasks.
    pub completed: u64,
    /// Failed tasks.
    pub failed: u64,
    /// Cancelled tasks.
    pub cancelled: u64,
}

impl ByStatus {
    /// Counts one task.
    pub fn add(&mut self, status: TaskStatus) {
        match status {
            TaskStatus::Pending => self.pending += 1,
            TaskStatus::Running => self.running += 1,
            TaskStatus::Completed => self.completed += 1,
            TaskStatus::Failed => self.failed += 1,
            TaskStatus::Cancelled => self.cancelled += 1,
        }
    }
}

/// `stats` of `openclaw_task_list`: over all of the caller's tasks, whatever the filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TaskStats {
    /// All of the caller's tasks.
    pub total: u64,
    /// Per state.
    #[serde(rename = "byStatus")]
    pub by_status: ByStatus,
}

/// `openclaw_task_list` output.
#[derive(Debug, Clone, Serialize)]
pub struct TaskList {
    /// Counts over all the caller's tasks.
    pub stats: TaskStats,
    /// The filtered tasks, priority descending then oldest first.
    pub tasks: Vec<TaskSummary>,
}

/// Filters of `openclaw_task_list`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    /// Only this state.
    pub status: Option<TaskStatus>,
    /// Only this gateway session.
    pub session_id: Option<String>,
    /// Only this instance (not resolved: an unknown name just matches nothing, as in 1.7.0).
    pub instance: Option<String>,
}

impl TaskFilter {
    /// Whether `t` passes the filter.
    pub fn matches(&self, t: &TaskRecord) -> bool {
        self.status.is_none_or(|s| s == t.status)
            && self
                .session_id
                .as_ref()
                .is_none_or(|s| t.session_id.as_ref() == Some(s))
            && self.instance.as_ref().is_none_or(|i| &t.instance == i)
    }
}

/// A new task id: `task_<uuid v4>`.
pub fn new_task_id() -> String {
    format!("task_{}", uuid::Uuid::new_v4())
}
