//! `TaskSupervisor`: the one actor that runs async chat tasks. It keeps its own priority heap
//! (priority descending, then oldest first — the actix mailbox is FIFO and is never the queue),
//! starts a job the moment a slot under the concurrency limit is free (no polling), sends each job
//! as a `Chat` message to its instance's `GatewayActor` with a streamed answer (progress, idle
//! timeout), cancels pending and running jobs (cancelling a running one drops the gateway request
//! and closes its connection), and records everything in the [`TaskBackend`].
//!
//! One maintenance timer, not one timer per task, deletes expired tasks, fails the running tasks
//! of dead bridge processes, and adopts pending tasks left by them. Reads hide expired tasks at
//! once, whatever the timer.

use std::{
    cmp::Ordering,
    collections::{BinaryHeap, HashMap, HashSet},
    sync::Arc,
    time::{Duration, UNIX_EPOCH},
};

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, ResponseActFuture,
    WrapFuture, fut,
};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{
    error::TaskError,
    store::{CancelOutcome, Finish, TaskBackend},
    task::{NewTask, TaskFilter, TaskList, TaskRecord, TaskStats, TaskStatus, TaskSummary},
};
use crate::{
    config::TaskSettings,
    gateway::{
        client::{ChatProgress, ChatRequest},
        error::GatewayError,
        registry::InstanceRegistry,
    },
    util::now_ms,
};

/// The maintenance pass runs this often (or as often as the retention, if shorter).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);
/// Senders may queue this many messages before they wait.
const MAILBOX_CAPACITY: usize = 65_536;
/// How long a tool waits for the supervisor's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// A task waiting in the heap.
struct Queued(TaskRecord);

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.0.seq == other.0.seq
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    /// Max-heap order: higher priority first, then the older (smaller `seq`) first.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .priority
            .cmp(&other.0.priority)
            .then_with(|| other.0.seq.cmp(&self.0.seq))
    }
}

/// A job running in this process.
struct Job {
    cancel: CancellationToken,
    progress: watch::Receiver<ChatProgress>,
}

/// Queues a new task (already validated, its instance resolved).
#[derive(Message)]
#[rtype(result = "Result<TaskRecord, TaskError>")]
pub struct Enqueue(pub NewTask);

/// Reads one of the owner's tasks, with live progress if it runs here.
#[derive(Message)]
#[rtype(result = "Result<TaskRecord, TaskError>")]
pub struct GetTask {
    /// Task id (trimmed).
    pub id: String,
    /// Owner key.
    pub owner: String,
}

/// Lists the owner's tasks.
#[derive(Message)]
#[rtype(result = "Result<TaskList, TaskError>")]
pub struct ListTasks {
    /// Owner key.
    pub owner: String,
    /// Filters (the stats ignore them).
    pub filter: TaskFilter,
}

/// Cancels one of the owner's tasks; the answer is the state it was in.
#[derive(Message)]
#[rtype(result = "Result<TaskStatus, TaskError>")]
pub struct CancelTask {
    /// Task id (trimmed).
    pub id: String,
    /// Owner key.
    pub owner: String,
}

/// Stops starting tasks, lets running ones finish for up to `grace`, then fails those still
/// running as interrupted (they are not retried: a prompt is never sent twice).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    /// How long running jobs may still take.
    pub grace: Duration,
}

/// How many tasks wait and run here now (for metrics).
#[derive(Message)]
#[rtype(result = "(usize, usize)")]
pub struct Load;

/// The task supervisor actor.
pub struct TaskSupervisor {
    store: Arc<dyn TaskBackend>,
    registry: InstanceRegistry,
    concurrency: usize,
    max_tasks: usize,
    retention: Duration,
    /// Pending tasks known to this process.
    heap: BinaryHeap<Queued>,
    /// Ids in `heap`, so that a rescan adds nothing twice.
    queued: HashSet<String>,
    /// Slots in use: claims in flight plus running jobs.
    busy: usize,
    /// Jobs running here, by task id.
    running: HashMap<String, Job>,
    /// Set by `Drain`: no new job starts.
    draining: bool,
    /// Told when the last running job ends during a drain.
    drained: Option<oneshot::Sender<()>>,
}

impl TaskSupervisor {
    /// A supervisor over `store`, dispatching to the gateways of `registry`.
    pub fn new(
        store: Arc<dyn TaskBackend>,
        registry: InstanceRegistry,
        settings: &TaskSettings,
    ) -> Self {
        TaskSupervisor {
            store,
            registry,
            concurrency: settings.concurrency.max(1),
            max_tasks: settings.max_tasks,
            retention: settings.retention,
            heap: BinaryHeap::new(),
            queued: HashSet::new(),
            busy: 0,
            running: HashMap::new(),
            draining: false,
            drained: None,
        }
    }

    fn cutoff(&self, now: i64) -> i64 {
        now - self.retention.as_millis() as i64
    }

    fn push(&mut self, task: TaskRecord) {
        if task.status == TaskStatus::Pending
            && !self.running.contains_key(&task.id)
            && self.queued.insert(task.id.clone())
        {
            self.heap.push(Queued(task));
        }
    }

    /// Starts queued tasks while slots are free.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while !self.draining && self.busy < self.concurrency {
            let Some(Queued(task)) = self.heap.pop() else {
                break;
            };
            self.queued.remove(&task.id);
            self.busy += 1;
            let claim = self.store.claim(task.id.clone(), now_ms());
            ctx.spawn(claim.into_actor(self).map(move |claimed, act, ctx| {
                match claimed {
                    Ok(Some(running)) => act.start_job(running, ctx),
                    // Cancelled meanwhile, or another process took it.
                    Ok(None) => {
                        act.busy -= 1;
                        act.dispatch(ctx);
                    }
                    Err(e) => {
                        // It is still pending in the store; the next maintenance pass retries.
                        tracing::warn!(task = %task.id, error = %e, "could not claim a task");
                        act.busy -= 1;
                    }
                }
            }));
        }
    }

    fn start_job(&mut self, task: TaskRecord, ctx: &mut Context<Self>) {
        let (progress_tx, progress_rx) = watch::channel(ChatProgress::default());
        let cancel = CancellationToken::new();
        self.running.insert(
            task.id.clone(),
            Job {
                cancel: cancel.clone(),
                progress: progress_rx,
            },
        );
        tracing::info!(task = %task.id, instance = %task.instance, "task started");
        let handle = self.registry.resolve(Some(&task.instance)).cloned();
        let request = task.message.clone().map(|message| ChatRequest {
            message,
            session_id: task.session_id.clone(),
            agent_id: task.agent_id.clone(),
            stream: true,
            images: task.images.clone(),
        });
        let work = async move {
            let handle = handle.map_err(|e| e.to_string())?;
            let request = request.ok_or_else(|| "the task's message was lost".to_string())?;
            handle
                .chat(request, Some(Arc::new(progress_tx)), cancel)
                .await
                .map_err(|e| match e {
                    GatewayError::Cancelled => String::new(),
                    other => other.to_string(),
                })
        };
        let id = task.id;
        ctx.spawn(
            work.into_actor(self)
                .map(move |outcome, act, ctx| act.job_finished(id, outcome, ctx)),
        );
    }

    fn job_finished(
        &mut self,
        id: String,
        outcome: Result<crate::gateway::client::ChatReply, String>,
        ctx: &mut Context<Self>,
    ) {
        self.busy = self.busy.saturating_sub(1);
        let progress = self
            .running
            .remove(&id)
            .map(|job| *job.progress.borrow())
            .unwrap_or_default();
        let last_activity = progress
            .last_activity
            .duration_since(UNIX_EPOCH)
            .ok()
            .map(|d| d.as_millis() as i64);
        let now = now_ms();
        let finish = match outcome {
            Ok(reply) => Finish {
                status: TaskStatus::Completed,
                progress_chars: reply.content.chars().count() as u64,
                result: Some(reply.content),
                error: None,
                last_activity_at: last_activity,
                at: now,
            },
            Err(error) => Finish {
                status: if error.is_empty() {
                    TaskStatus::Cancelled
                } else {
                    TaskStatus::Failed
                },
                result: None,
                error: Some(error).filter(|e| !e.is_empty()),
                progress_chars: progress.chars,
                last_activity_at: last_activity,
                at: now,
            },
        };
        tracing::info!(task = %id, status = finish.status.as_str(), "task finished");
        let write = self.store.finish(id.clone(), finish);
        ctx.spawn(write.into_actor(self).map(move |written, _, _| {
            if let Err(e) = written {
                tracing::error!(task = %id, error = %e, "could not record the end of a task");
            }
        }));
        if self.running.is_empty()
            && let Some(done) = self.drained.take()
        {
            let _ = done.send(());
        }
        self.dispatch(ctx);
    }

    fn maintain(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let maintain = self.store.maintain(self.cutoff(now), now);
        let store = self.store.clone();
        let work = async move {
            let done = maintain.await?;
            let pending = store.pending().await?;
            Ok::<_, super::store::StoreError>((done, pending))
        };
        ctx.spawn(work.into_actor(self).map(|result, act, ctx| match result {
            Ok((done, pending)) => {
                if done.interrupted > 0 {
                    tracing::warn!(
                        tasks = done.interrupted,
                        "tasks of a bridge process that stopped were marked failed (interrupted)"
                    );
                }
                if done.expired > 0 {
                    tracing::debug!(tasks = done.expired, "expired tasks deleted");
                }
                for task in pending {
                    act.push(task);
                }
                act.dispatch(ctx);
            }
            Err(e) => tracing::error!(error = %e, "task maintenance failed"),
        }));
    }

    fn overlay_progress(&self, task: &mut TaskRecord) {
        if let Some(job) = self.running.get(&task.id) {
            let progress = *job.progress.borrow();
            task.progress_chars = progress.chars;
            task.last_activity_at = progress
                .last_activity
                .duration_since(UNIX_EPOCH)
                .ok()
                .map(|d| d.as_millis() as i64);
        }
    }
}

impl Actor for TaskSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // Recovery first (fail what dead processes left running, adopt their pending tasks).
        self.maintain(ctx);
        let every = MAINTENANCE_EVERY
            .min(self.retention)
            .max(Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| act.maintain(ctx));
    }
}

impl Handler<Enqueue> for TaskSupervisor {
    type Result = ResponseActFuture<Self, Result<TaskRecord, TaskError>>;

    fn handle(&mut self, msg: Enqueue, _ctx: &mut Context<Self>) -> Self::Result {
        let max = self.max_tasks;
        let insert = self.store.insert(msg.0, max, now_ms());
        Box::pin(insert.into_actor(self).map(move |inserted, act, ctx| {
            let task = inserted?.ok_or(TaskError::LimitReached(max))?;
            tracing::info!(task = %task.id, instance = %task.instance, priority = task.priority, "task created");
            act.push(task.clone());
            act.dispatch(ctx);
            Ok(task)
        }))
    }
}

impl Handler<GetTask> for TaskSupervisor {
    type Result = ResponseActFuture<Self, Result<TaskRecord, TaskError>>;

    fn handle(&mut self, msg: GetTask, _ctx: &mut Context<Self>) -> Self::Result {
        let get = self
            .store
            .get(msg.id.clone(), msg.owner, self.cutoff(now_ms()));
        Box::pin(get.into_actor(self).map(move |found, act, _| {
            let mut task = found?.ok_or(TaskError::NotFound(msg.id))?;
            act.overlay_progress(&mut task);
            Ok(task)
        }))
    }
}

impl Handler<ListTasks> for TaskSupervisor {
    type Result = ResponseActFuture<Self, Result<TaskList, TaskError>>;

    fn handle(&mut self, msg: ListTasks, _ctx: &mut Context<Self>) -> Self::Result {
        let list = self.store.list(msg.owner, self.cutoff(now_ms()));
        Box::pin(list.into_actor(self).map(move |tasks, _, _| {
            let tasks = tasks?;
            let mut stats = TaskStats::default();
            for t in &tasks {
                stats.total += 1;
                stats.by_status.add(t.status);
            }
            Ok(TaskList {
                stats,
                tasks: tasks
                    .iter()
                    .filter(|t| msg.filter.matches(t))
                    .map(TaskSummary::from)
                    .collect(),
            })
        }))
    }
}

impl Handler<CancelTask> for TaskSupervisor {
    type Result = ResponseActFuture<Self, Result<TaskStatus, TaskError>>;

    fn handle(&mut self, msg: CancelTask, _ctx: &mut Context<Self>) -> Self::Result {
        let now = now_ms();
        let cancel = self
            .store
            .cancel(msg.id.clone(), msg.owner, now, self.cutoff(now));
        Box::pin(cancel.into_actor(self).map(move |outcome, act, _| match outcome? {
            CancelOutcome::Cancelled { previous, runner } => {
                if previous == TaskStatus::Running
                    && runner.as_deref() == Some(act.store.runner())
                    && let Some(job) = act.running.get(&msg.id)
                {
                    // Drops the gateway request: the connection closes, the gateway stops.
                    job.cancel.cancel();
                }
                tracing::info!(task = %msg.id, previous = previous.as_str(), "task cancelled");
                Ok(previous)
            }
            CancelOutcome::NotFound => Err(TaskError::NotFound(msg.id)),
            CancelOutcome::NotCancellable(status) => Err(TaskError::NotCancellable(status)),
        }))
    }
}

impl Handler<Load> for TaskSupervisor {
    type Result = actix::MessageResult<Load>;

    fn handle(&mut self, _msg: Load, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult((self.heap.len(), self.running.len()))
    }
}

impl Handler<Drain> for TaskSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Drain, _ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let waiting = if self.running.is_empty() {
            None
        } else {
            let (tx, rx) = oneshot::channel();
            self.drained = Some(tx);
            Some(rx)
        };
        let wait = async move {
            if let Some(rx) = waiting {
                let _ = tokio::time::timeout(msg.grace, rx).await;
            }
        };
        Box::pin(wait.into_actor(self).then(|(), act, _| {
            for job in act.running.values() {
                job.cancel.cancel();
            }
            let interrupt = act.store.interrupt_mine(now_ms());
            let still_running = act.running.len();
            fut::wrap_future::<_, Self>(async move {
                match interrupt.await {
                    Ok(n) if n > 0 => tracing::warn!(
                        tasks = n,
                        running = still_running,
                        "tasks still running at shutdown were marked failed (interrupted)"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "could not record interrupted tasks"),
                }
            })
        }))
    }
}

/// The MCP layer's handle on the supervisor: typed calls with a timeout.
#[derive(Clone)]
pub struct Tasks {
    addr: Addr<TaskSupervisor>,
    retention: Duration,
}

fn unavailable(e: actix::MailboxError) -> TaskError {
    TaskError::Unavailable(e.to_string())
}

impl Tasks {
    /// Starts the supervisor on the current arbiter.
    pub fn start(
        store: Arc<dyn TaskBackend>,
        registry: InstanceRegistry,
        settings: &TaskSettings,
    ) -> Tasks {
        Tasks {
            addr: TaskSupervisor::new(store, registry, settings).start(),
            retention: settings.retention,
        }
    }

    /// How long finished tasks stay readable.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Queues a task.
    pub async fn enqueue(&self, task: NewTask) -> Result<TaskRecord, TaskError> {
        self.addr
            .send(Enqueue(task))
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unavailable)?
    }

    /// One of the owner's tasks.
    pub async fn get(&self, id: String, owner: String) -> Result<TaskRecord, TaskError> {
        self.addr
            .send(GetTask { id, owner })
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unavailable)?
    }

    /// The owner's tasks.
    pub async fn list(&self, owner: String, filter: TaskFilter) -> Result<TaskList, TaskError> {
        self.addr
            .send(ListTasks { owner, filter })
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unavailable)?
    }

    /// Cancels one of the owner's tasks; returns the state it was in.
    pub async fn cancel(&self, id: String, owner: String) -> Result<TaskStatus, TaskError> {
        self.addr
            .send(CancelTask { id, owner })
            .timeout(ASK_TIMEOUT)
            .await
            .map_err(unavailable)?
    }

    /// (queued, running) tasks of this process; zeros if the supervisor does not answer.
    pub async fn load(&self) -> (usize, usize) {
        self.addr
            .send(Load)
            .timeout(Duration::from_secs(2))
            .await
            .unwrap_or((0, 0))
    }

    /// Stops starting tasks and waits up to `grace` for running ones (shutdown).
    pub async fn drain(&self, grace: Duration) {
        let _ = self
            .addr
            .send(Drain { grace })
            .timeout(grace + Duration::from_secs(5))
            .await;
    }
}
