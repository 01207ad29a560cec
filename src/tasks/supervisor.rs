//! `TaskSupervisor`: the one actor that runs async chat tasks. It keeps its own queue (the actix
//! mailbox is FIFO and is never the queue), starts a job the moment a slot under the concurrency
//! limit is free (no polling), sends each job as a `Chat` message to its instance's
//! `GatewayActor` with a streamed answer (progress, idle timeout), cancels pending and running
//! jobs (cancelling a running one drops the gateway request and closes its connection), and
//! records everything in the [`TaskBackend`].
//!
//! **Fair between principals** (task owners; see [`fair`](super::fair) for the exact rules):
//! each principal holds at most its share of `OPENCLAW_MAX_TASKS` and of the running slots, and a
//! free slot goes to the principal with the fewest tasks running here, then round-robin; a task's
//! `priority` orders only its own principal's tasks (higher first, then older first).
//!
//! **A task never stays `running` because its end could not be written.** When a job ends, its
//! slot is free at once and its end (answer or error) is kept in memory until the store has it:
//! the write is retried with a bounded exponential backoff ([`WriteRetry`]). After
//! `WriteRetry::attempts` failed tries an answer is given up (dropped from memory) and the task is
//! recorded `failed` with the reason ([`UNRECORDED`] and the store's error) instead, tried again
//! every `WriteRetry::max_delay` until the store takes it. Meanwhile the task counts against no
//! limit, `openclaw_task_status` answers from memory (the answer while it is held, then the
//! failure), `openclaw_task_list` shows that state, and a cancel is refused as for any finished
//! task. A claim that fails leaves the task queued and is retried with the same backoff.
//!
//! One maintenance timer, not one timer per task, deletes expired tasks, fails the running tasks
//! of dead bridge processes, and adopts pending tasks left by them. Reads hide expired tasks at
//! once, whatever the timer.

use std::{
    collections::{HashMap, HashSet},
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
    fair::{FairQueue, Shares},
    store::{CancelOutcome, Finish, Inserted, Limits, StoreError, TaskBackend},
    task::{
        NewTask, TaskFilter, TaskList, TaskRecord, TaskStats, TaskStatus, TaskSummary, UNRECORDED,
    },
};
use crate::{
    config::TaskSettings,
    gateway::{
        client::{ChatProgress, ChatReply, ChatRequest, RunBinding},
        error::GatewayError,
        registry::InstanceRegistry,
        ws::ops::{RunRecord, RunSink},
    },
    util::now_ms,
};

/// The maintenance pass runs this often (or as often as the retention, if shorter).
const MAINTENANCE_EVERY: Duration = Duration::from_secs(30);
/// Senders may queue this many messages before they wait.
const MAILBOX_CAPACITY: usize = 65_536;
/// How long a tool waits for the supervisor's answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(60);

/// How the end of a task (and a claim) is retried when the store fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteRetry {
    /// Wait before the first retry; it doubles after each failure.
    pub first_delay: Duration,
    /// Longest wait between two tries; also the pace once an answer has been given up.
    pub max_delay: Duration,
    /// Tries of the write with the answer before the answer is given up.
    pub attempts: u32,
}

impl Default for WriteRetry {
    /// Eight tries over about 18 s (plus SQLite's 5 s busy wait in each): longer than a healthy
    /// store holds a lock, short enough that a store that cannot take the answer is reported
    /// within a minute, and an answer is not held in memory for longer than that.
    fn default() -> Self {
        WriteRetry {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            attempts: 8,
        }
    }
}

impl WriteRetry {
    /// The wait after `failures` failed tries in a row (1 or more).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.first_delay
            .saturating_mul(1 << doublings)
            .min(self.max_delay)
    }
}

/// A job running in this process.
struct Job {
    cancel: CancellationToken,
    progress: watch::Receiver<ChatProgress>,
    /// The task as claimed, without its prompt and images (they went to the gateway).
    task: TaskRecord,
}

/// A task that has ended here but whose end the store does not have yet.
struct Ended {
    /// The task as claimed (its end not applied).
    task: TaskRecord,
    /// Its end, as it is being written.
    finish: Finish,
    /// Failed writes so far.
    failures: u32,
}

impl Ended {
    /// The task as the tools should see it now.
    fn view(&self) -> TaskRecord {
        let mut task = self.task.clone();
        task.status = self.finish.status;
        task.result = self.finish.result.clone();
        task.error = self.finish.error.clone();
        task.progress_chars = self.finish.progress_chars;
        task.last_activity_at = self.finish.last_activity_at;
        task.completed_at = Some(self.finish.at);
        task
    }
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

/// Stops starting tasks, lets running ones finish (and their ends be written) for up to
/// `grace`, then fails those still running as interrupted (they are not retried: a prompt is
/// never sent twice).
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
    /// The limits and each principal's share of them.
    shares: Shares,
    retention: Duration,
    /// How failed store writes are retried.
    retry: WriteRetry,
    /// Pending tasks known to this process, per principal, in the fair order.
    queue: FairQueue,
    /// Tasks whose claim is in flight (never queued again meanwhile).
    claiming: HashSet<String>,
    /// Slots in use: claims in flight plus running jobs.
    busy: usize,
    /// Jobs running here, by task id.
    running: HashMap<String, Job>,
    /// Tasks that ended here and whose end is being written, by task id.
    ended: HashMap<String, Ended>,
    /// Claims that failed in a row (the backoff of the next retry).
    claim_failures: u32,
    /// A delayed dispatch (after a failed claim) is scheduled.
    dispatch_scheduled: bool,
    /// Set by `Drain`: no new job starts.
    draining: bool,
    /// Told when the last running job has ended and been written during a drain.
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
            shares: Shares::new(settings.max_tasks, settings.concurrency),
            retention: settings.retention,
            retry: WriteRetry::default(),
            queue: FairQueue::new(),
            claiming: HashSet::new(),
            busy: 0,
            running: HashMap::new(),
            ended: HashMap::new(),
            claim_failures: 0,
            dispatch_scheduled: false,
            draining: false,
            drained: None,
        }
    }

    /// The same supervisor, retrying failed store writes with `retry`.
    pub fn with_write_retry(mut self, retry: WriteRetry) -> Self {
        self.retry = retry;
        self
    }

    fn cutoff(&self, now: i64) -> i64 {
        now - self.retention.as_millis() as i64
    }

    /// Queues a pending task, unless this process already queues, claims, runs or ends it.
    fn push(&mut self, task: TaskRecord) {
        if task.status == TaskStatus::Pending
            && !self.running.contains_key(&task.id)
            && !self.claiming.contains(&task.id)
            && !self.ended.contains_key(&task.id)
        {
            self.queue.push(task);
        }
    }

    /// A slot of `owner` is free again.
    fn free_slot(&mut self, owner: &str) {
        self.busy = self.busy.saturating_sub(1);
        self.queue.release(owner);
    }

    /// Starts queued tasks, in the fair order, while slots are free.
    fn dispatch(&mut self, ctx: &mut Context<Self>) {
        while !self.draining && self.busy < self.shares.concurrency() {
            let Some(task) = self.queue.pop(&self.shares) else {
                break;
            };
            self.busy += 1;
            self.claiming.insert(task.id.clone());
            let claim = self.store.claim(task.id.clone(), now_ms());
            ctx.spawn(claim.into_actor(self).map(move |claimed, act, ctx| {
                act.claiming.remove(&task.id);
                match claimed {
                    Ok(Some(running)) => {
                        act.claim_failures = 0;
                        act.start_job(running, ctx);
                    }
                    // Cancelled meanwhile, or another process took it.
                    Ok(None) => {
                        act.free_slot(&task.owner);
                        act.dispatch(ctx);
                    }
                    Err(e) => {
                        // Still pending in the store: queue it again and retry after a while.
                        act.claim_failures = act.claim_failures.saturating_add(1);
                        let delay = act.retry.delay(act.claim_failures);
                        tracing::warn!(
                            task = %task.id,
                            error = %e,
                            retry_in_ms = delay.as_millis() as u64,
                            "could not claim a task; it stays queued"
                        );
                        act.free_slot(&task.owner);
                        act.push(task);
                        act.dispatch_later(delay, ctx);
                    }
                }
            }));
        }
    }

    /// Dispatches again after `delay` (once, however often it is asked meanwhile).
    fn dispatch_later(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        if self.dispatch_scheduled {
            return;
        }
        self.dispatch_scheduled = true;
        ctx.run_later(delay, |act, ctx| {
            act.dispatch_scheduled = false;
            act.dispatch(ctx);
        });
    }

    fn start_job(&mut self, mut task: TaskRecord, ctx: &mut Context<Self>) {
        let (progress_tx, progress_rx) = watch::channel(ChatProgress::default());
        let cancel = CancellationToken::new();
        let handle = self.registry.resolve(Some(&task.instance)).cloned();
        let images = std::mem::take(&mut task.images);
        // A run recorded by a bridge that stopped is adopted; a new one gets its id now and is
        // recorded before its prompt is sent (over the WebSocket; HTTP records nothing).
        let adopt = task
            .run
            .take()
            .and_then(|json| serde_json::from_str::<RunRecord>(&json).ok());
        tracing::info!(task = %task.id, instance = %task.instance, adopted = adopt.is_some(), "task started");
        let run = match adopt {
            Some(record) => RunBinding {
                run_id: Some(record.run_id.clone()),
                adopt: Some(record),
                sink: None,
            },
            None => {
                let store = self.store.clone();
                let task_id = task.id.clone();
                let sink: RunSink = Arc::new(move |record: RunRecord| {
                    let store = store.clone();
                    let task_id = task_id.clone();
                    Box::pin(async move {
                        let json = serde_json::to_string(&record).map_err(|e| e.to_string())?;
                        match store.set_run(task_id, json).await {
                            Ok(true) => Ok(()),
                            Ok(false) => Err("the task is no longer running".to_string()),
                            Err(e) => Err(e.to_string()),
                        }
                    })
                });
                RunBinding {
                    run_id: Some(uuid::Uuid::new_v4().to_string()),
                    adopt: None,
                    sink: Some(sink),
                }
            }
        };
        let request = task.message.take().map(|message| ChatRequest {
            message,
            session_id: task.session_id.clone(),
            agent_id: task.agent_id.clone(),
            stream: true,
            images,
            run,
        });
        let id = task.id.clone();
        self.running.insert(
            id.clone(),
            Job {
                cancel: cancel.clone(),
                progress: progress_rx,
                task,
            },
        );
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
        ctx.spawn(
            work.into_actor(self)
                .map(move |outcome, act, ctx| act.job_finished(id, outcome, ctx)),
        );
    }

    fn job_finished(
        &mut self,
        id: String,
        outcome: Result<ChatReply, String>,
        ctx: &mut Context<Self>,
    ) {
        let Some(job) = self.running.remove(&id) else {
            tracing::error!(task = %id, "a job ended that was not running");
            return;
        };
        // The slot and the principal's share are free now, whatever the store does.
        self.free_slot(&job.task.owner);
        let progress = *job.progress.borrow();
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
        self.ended.insert(
            id.clone(),
            Ended {
                task: job.task,
                finish,
                failures: 0,
            },
        );
        self.write_end(id, ctx);
        self.dispatch(ctx);
    }

    /// Writes the end of task `id` (one try).
    fn write_end(&mut self, id: String, ctx: &mut Context<Self>) {
        let Some(ended) = self.ended.get(&id) else {
            return;
        };
        let write = self.store.finish(id.clone(), ended.finish.clone());
        ctx.spawn(
            write
                .into_actor(self)
                .map(move |written, act, ctx| act.end_written(id, written, ctx)),
        );
    }

    /// The store answered a write of the end of task `id`.
    fn end_written(
        &mut self,
        id: String,
        written: Result<bool, StoreError>,
        ctx: &mut Context<Self>,
    ) {
        match written {
            // `false`: the store no longer shows it running (cancelled, or failed by a drain).
            Ok(_) => {
                if let Some(ended) = self.ended.remove(&id)
                    && ended.failures > 0
                {
                    tracing::info!(
                        task = %id,
                        status = ended.finish.status.as_str(),
                        tries = ended.failures + 1,
                        "the end of a task was recorded after store failures"
                    );
                }
                self.notify_if_drained();
            }
            Err(e) => {
                let retry = self.retry;
                let Some(ended) = self.ended.get_mut(&id) else {
                    return;
                };
                ended.failures = ended.failures.saturating_add(1);
                if ended.failures == retry.attempts {
                    if ended.finish.status == TaskStatus::Completed {
                        // Give the answer up; what is written now is small.
                        ended.finish.status = TaskStatus::Failed;
                        ended.finish.result = None;
                        ended.finish.error = Some(format!(
                            "{UNRECORDED} ({} tries; last error: {e})",
                            ended.failures
                        ));
                    }
                    tracing::error!(
                        task = %id,
                        error = %e,
                        tries = ended.failures,
                        status = ended.finish.status.as_str(),
                        "could not record the end of a task; it is recorded as shown once the store works"
                    );
                } else if ended.failures < retry.attempts {
                    tracing::warn!(task = %id, error = %e, tries = ended.failures, "could not record the end of a task; retrying");
                } else {
                    tracing::debug!(task = %id, error = %e, tries = ended.failures, "still cannot record the end of a task");
                }
                let delay = retry.delay(ended.failures);
                ctx.run_later(delay, move |act, ctx| act.write_end(id, ctx));
            }
        }
    }

    /// Tells a waiting drain that nothing runs or waits to be written any more.
    fn notify_if_drained(&mut self) {
        if self.running.is_empty()
            && self.ended.is_empty()
            && let Some(done) = self.drained.take()
        {
            let _ = done.send(());
        }
    }

    fn maintain(&mut self, ctx: &mut Context<Self>) {
        let now = now_ms();
        let maintain = self.store.maintain(self.cutoff(now), now);
        let store = self.store.clone();
        let work = async move {
            let done = maintain.await?;
            let pending = store.pending().await?;
            Ok::<_, StoreError>((done, pending))
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
                for task in done.adopted {
                    if act.running.contains_key(&task.id) || act.ended.contains_key(&task.id) {
                        continue;
                    }
                    tracing::info!(task = %task.id, "adopting the run of a task whose bridge stopped");
                    act.busy += 1;
                    act.queue.hold(&task.owner);
                    act.start_job(task, ctx);
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

    /// The owner's task `id` if it has ended here and its end is not written yet.
    fn ended_of(&self, id: &str, owner: &str) -> Option<&Ended> {
        self.ended.get(id).filter(|e| e.task.owner == owner)
    }
}

impl Actor for TaskSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        // Recovery first (fail what dead processes left running, adopt their pending tasks).
        self.maintain(ctx);
        // Cancels made through another replica of a shared store.
        if let Some(mut cancels) = self.store.cancellations() {
            ctx.add_stream(futures_util::stream::poll_fn(move |cx| {
                cancels.poll_recv(cx).map(|id| id.map(CancelledElsewhere))
            }));
        }
        let every = MAINTENANCE_EVERY
            .min(self.retention)
            .max(Duration::from_secs(1));
        ctx.run_interval(every, |act, ctx| act.maintain(ctx));
    }
}

impl Handler<Enqueue> for TaskSupervisor {
    type Result = ResponseActFuture<Self, Result<TaskRecord, TaskError>>;

    fn handle(&mut self, msg: Enqueue, _ctx: &mut Context<Self>) -> Self::Result {
        let max = self.shares.max_tasks();
        let share = self.shares.queued(&msg.0.owner);
        let owner = msg.0.owner.clone();
        let limits = Limits {
            total: max,
            owner: share,
            ended: self.ended.keys().cloned().collect(),
        };
        let insert = self.store.insert(msg.0, limits, now_ms());
        Box::pin(insert.into_actor(self).map(move |inserted, act, ctx| {
            match inserted? {
                Inserted::Stored(task) => {
                    let task = *task;
                    tracing::info!(task = %task.id, instance = %task.instance, priority = task.priority, "task created");
                    act.push(task.clone());
                    act.dispatch(ctx);
                    Ok(task)
                }
                Inserted::LimitReached => Err(TaskError::LimitReached(max)),
                Inserted::ShareReached => {
                    tracing::info!(owner = %owner, share, "task refused: the caller holds its share of the task limit");
                    Err(TaskError::ShareReached { share, max })
                }
            }
        }))
    }
}

impl Handler<GetTask> for TaskSupervisor {
    type Result = ResponseActFuture<Self, Result<TaskRecord, TaskError>>;

    fn handle(&mut self, msg: GetTask, _ctx: &mut Context<Self>) -> Self::Result {
        // Ended here, not written yet: what this process knows is the truth (the store still
        // says running, or cannot answer at all).
        if let Some(ended) = self.ended_of(&msg.id, &msg.owner) {
            return Box::pin(fut::ready(Ok(ended.view())));
        }
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
        Box::pin(list.into_actor(self).map(move |tasks, act, _| {
            let tasks: Vec<TaskRecord> = tasks?
                .into_iter()
                .map(|t| match act.ended.get(&t.id) {
                    Some(ended) => ended.view(),
                    None => t,
                })
                .collect();
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
        if let Some(ended) = self.ended_of(&msg.id, &msg.owner) {
            return Box::pin(fut::ready(Err(TaskError::NotCancellable(
                ended.finish.status,
            ))));
        }
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

/// A task cancelled through another process sharing the store.
struct CancelledElsewhere(String);

impl actix::StreamHandler<CancelledElsewhere> for TaskSupervisor {
    fn handle(&mut self, msg: CancelledElsewhere, _ctx: &mut Context<Self>) {
        if let Some(job) = self.running.get(&msg.0) {
            // Drops the gateway request, as for a cancel made here.
            job.cancel.cancel();
            tracing::info!(task = %msg.0, "task cancelled through another replica");
        }
    }

    fn finished(&mut self, _ctx: &mut Context<Self>) {}
}

impl Handler<Load> for TaskSupervisor {
    type Result = actix::MessageResult<Load>;

    fn handle(&mut self, _msg: Load, _ctx: &mut Context<Self>) -> Self::Result {
        actix::MessageResult((self.queue.len(), self.running.len()))
    }
}

impl Handler<Drain> for TaskSupervisor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: Drain, _ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let waiting = if self.running.is_empty() && self.ended.is_empty() {
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
        Self::start_with_retry(store, registry, settings, WriteRetry::default())
    }

    /// Starts the supervisor on the current arbiter, retrying failed store writes with `retry`.
    pub fn start_with_retry(
        store: Arc<dyn TaskBackend>,
        registry: InstanceRegistry,
        settings: &TaskSettings,
        retry: WriteRetry,
    ) -> Tasks {
        Tasks {
            addr: TaskSupervisor::new(store, registry, settings)
                .with_write_retry(retry)
                .start(),
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

#[cfg(test)]
mod tests {
    use std::{
        net::TcpListener,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use actix_web::{App, HttpResponse, HttpServer, web};
    use serde_json::{Value, json};
    use tokio::sync::{Semaphore, mpsc};

    use super::*;
    use crate::{
        config::InstanceSettings,
        tasks::store::{
            CancelOutcome, Db, Inserted, Limits, Location, Maintenance, SqliteBackend, StoreFuture,
        },
    };

    /// A gateway in the test's actix system: reports each prompt as it arrives, holds the
    /// prompts that contain `hold` until the test adds permits to `gate`, answers `echo: …`.
    struct Gateway {
        url: String,
        arrived: mpsc::UnboundedReceiver<String>,
        gate: Arc<Semaphore>,
    }

    fn gateway() -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, arrived) = mpsc::unbounded_channel::<String>();
        let gate = Arc::new(Semaphore::new(0));
        let shared = web::Data::new((tx, gate.clone()));
        let server = HttpServer::new(move || {
            App::new().app_data(shared.clone()).route(
                "/v1/chat/completions",
                web::post().to(
                    |body: web::Json<Value>,
                     shared: web::Data<(mpsc::UnboundedSender<String>, Arc<Semaphore>)>| async move {
                        let Some(text) = body["messages"]
                            .as_array()
                            .and_then(|m| m.last())
                            .and_then(|m| m["content"].as_str())
                            .map(str::to_string)
                        else {
                            return HttpResponse::BadRequest().finish();
                        };
                        let _ = shared.0.send(text.clone());
                        if text.contains("hold") {
                            shared.1.acquire().await.unwrap().forget();
                        }
                        HttpResponse::Ok().json(json!({
                            "id": "chatcmpl_test", "object": "chat.completion", "created": 1,
                            "model": "openclaw",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": format!("echo: {text}")}}]
                        }))
                    },
                ),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        actix_rt::spawn(server);
        Gateway { url, arrived, gate }
    }

    impl Gateway {
        /// The next prompt to reach the gateway.
        async fn next(&mut self) -> String {
            tokio::time::timeout(Duration::from_secs(20), self.arrived.recv())
                .await
                .expect("a prompt reaches the gateway")
                .unwrap()
        }
    }

    /// The real SQLite store, whose final writes fail on demand.
    struct Flaky {
        inner: SqliteBackend,
        /// Final writes still to fail; `usize::MAX`: all of them, until set to 0.
        fail_finish: AtomicUsize,
        /// Final writes tried.
        finish_calls: AtomicUsize,
    }

    impl Flaky {
        fn new(inner: SqliteBackend, failures: usize) -> Arc<Flaky> {
            Arc::new(Flaky {
                inner,
                fail_finish: AtomicUsize::new(failures),
                finish_calls: AtomicUsize::new(0),
            })
        }
    }

    impl TaskBackend for Flaky {
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
            self.finish_calls.fetch_add(1, Ordering::SeqCst);
            let fail = self
                .fail_finish
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                    0 => None,
                    usize::MAX => Some(usize::MAX),
                    n => Some(n - 1),
                })
                .is_ok();
            if fail {
                Box::pin(async { Err(StoreError::Db("disk I/O error (injected)".into())) })
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

    /// Fast retries, so that tests take milliseconds.
    const FAST: WriteRetry = WriteRetry {
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        attempts: 3,
    };

    fn supervisor(
        gw: &Gateway,
        store: Arc<dyn TaskBackend>,
        concurrency: usize,
        max_tasks: usize,
        retry: WriteRetry,
    ) -> Addr<TaskSupervisor> {
        let instance = InstanceSettings {
            name: "default".into(),
            url: gw.url.clone(),
            base_url: gw.url.clone(),
            token: None,
            timeout: Duration::from_secs(60),
            model: "openclaw".into(),
            agent_id: None,
            is_default: true,
            api: crate::config::Api::Http,
            data_dir: None,
            database_url: None,
        };
        let registry = InstanceRegistry::start(&[instance], Duration::from_secs(3600));
        let settings = TaskSettings {
            concurrency,
            max_tasks,
            retention: Duration::from_secs(3600),
            data_dir: None,
            database_url: None,
        };
        TaskSupervisor::new(store, registry, &settings)
            .with_write_retry(retry)
            .start()
    }

    fn memory() -> SqliteBackend {
        SqliteBackend::start(&Location::Memory).unwrap()
    }

    async fn enqueue(
        sup: &Addr<TaskSupervisor>,
        owner: &str,
        message: &str,
        priority: i64,
    ) -> Result<TaskRecord, TaskError> {
        sup.send(Enqueue(NewTask {
            owner: owner.into(),
            instance: "default".into(),
            session_id: None,
            agent_id: None,
            message: message.into(),
            images: Vec::new(),
            priority,
        }))
        .await
        .unwrap()
    }

    async fn get(sup: &Addr<TaskSupervisor>, task: &TaskRecord) -> TaskRecord {
        sup.send(GetTask {
            id: task.id.clone(),
            owner: task.owner.clone(),
        })
        .await
        .unwrap()
        .unwrap()
    }

    /// Reads the task through the supervisor until `done` holds (bounded); asserts on every read
    /// that a task whose answer arrived is never shown running again.
    async fn until(
        sup: &Addr<TaskSupervisor>,
        task: &TaskRecord,
        what: &str,
        done: impl Fn(&TaskRecord) -> bool,
    ) -> TaskRecord {
        let mut ended = false;
        for _ in 0..2000 {
            let now = get(sup, task).await;
            ended |= now.status.is_finished();
            assert!(
                !(ended && now.status == TaskStatus::Running),
                "an ended task went back to running: {now:?}"
            );
            if done(&now) {
                return now;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{what}: {:?}", get(sup, task).await);
    }

    /// The task as the store has it.
    async fn stored(store: &SqliteBackend, task: &TaskRecord) -> TaskRecord {
        store
            .get(task.id.clone(), task.owner.clone(), 0)
            .await
            .unwrap()
            .unwrap()
    }

    #[actix_rt::test]
    async fn a_principal_over_its_share_is_refused_while_another_still_queues_and_runs() {
        let mut gw = gateway();
        // Share: 8 / 4 = 2 unfinished tasks; running share: 2 - 1 = 1 slot.
        let sup = supervisor(&gw, Arc::new(memory()), 2, 8, FAST);
        let a1 = enqueue(&sup, "session:a", "hold a1", 0).await.unwrap();
        assert_eq!(gw.next().await, "hold a1");
        enqueue(&sup, "session:a", "hold a2", 0).await.unwrap();
        let refused = enqueue(&sup, "session:a", "a3", 0).await.unwrap_err();
        assert_eq!(refused, TaskError::ShareReached { share: 2, max: 8 });
        assert_eq!(
            refused.to_string(),
            "Task limit reached for this caller (2, its share of 8). Wait for tasks to complete or cancel pending ones."
        );
        let b = enqueue(&sup, "session:b", "b", 0).await.unwrap();
        assert_eq!(gw.next().await, "b", "b runs while a holds its slot");
        until(&sup, &b, "b completes", |t| {
            t.status == TaskStatus::Completed
        })
        .await;
        assert_eq!(get(&sup, &a1).await.status, TaskStatus::Running);
        gw.gate.add_permits(2);
        assert_eq!(gw.next().await, "hold a2");
    }

    #[actix_rt::test]
    async fn principals_take_turns_and_priority_orders_only_a_callers_own_tasks() {
        let mut gw = gateway();
        let sup = supervisor(&gw, Arc::new(memory()), 1, 1000, FAST);
        enqueue(&sup, "session:a", "hold blocker", 0).await.unwrap();
        assert_eq!(gw.next().await, "hold blocker");
        for (name, priority) in [("a1", 9), ("a2", 9), ("a3", 5), ("a4", 9)] {
            enqueue(&sup, "session:a", name, priority).await.unwrap();
        }
        enqueue(&sup, "session:b", "b1", -5).await.unwrap();
        enqueue(&sup, "session:b", "b2", 0).await.unwrap();
        gw.gate.add_permits(1);
        let mut order = Vec::new();
        for _ in 0..6 {
            order.push(gw.next().await);
        }
        assert_eq!(order, ["a1", "b2", "a2", "b1", "a4", "a3"]);
    }

    #[actix_rt::test]
    async fn a_final_write_that_fails_then_succeeds_ends_completed_with_the_answer() {
        let mut gw = gateway();
        let flaky = Flaky::new(memory(), 2);
        let sup = supervisor(&gw, flaky.clone(), 1, 1000, FAST);
        let t = enqueue(&sup, "local", "hello", 0).await.unwrap();
        assert_eq!(gw.next().await, "hello");
        let done = until(&sup, &t, "completed", |t| t.status == TaskStatus::Completed).await;
        assert_eq!(done.result.as_deref(), Some("echo: hello"));
        let mut written = stored(&flaky.inner, &t).await;
        for _ in 0..2000 {
            if written.status != TaskStatus::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            written = stored(&flaky.inner, &t).await;
        }
        assert_eq!(written.status, TaskStatus::Completed);
        assert_eq!(written.result.as_deref(), Some("echo: hello"));
        assert_eq!(
            flaky.finish_calls.load(Ordering::SeqCst),
            3,
            "two failures, then the write"
        );
    }

    #[actix_rt::test]
    async fn a_final_write_that_keeps_failing_frees_the_slot_and_the_share_then_ends_failed() {
        let mut gw = gateway();
        let flaky = Flaky::new(memory(), usize::MAX);
        // Concurrency 1, share 4 / 4 = 1 task.
        let sup = supervisor(&gw, flaky.clone(), 1, 4, FAST);
        let first = enqueue(&sup, "session:a", "hold first", 0).await.unwrap();
        assert_eq!(gw.next().await, "hold first");
        assert!(matches!(
            enqueue(&sup, "session:a", "over", 0).await,
            Err(TaskError::ShareReached { share: 1, max: 4 })
        ));
        gw.gate.add_permits(1);
        let shown = until(&sup, &first, "the answer is known", |t| {
            t.status.is_finished()
        })
        .await;
        assert!(
            shown.status == TaskStatus::Completed
                && shown.result.as_deref() == Some("echo: hold first")
                || shown.status == TaskStatus::Failed,
            "{shown:?}"
        );
        // Its end is not in the store, yet it holds neither the share nor the only slot.
        let second = enqueue(&sup, "session:a", "second", 0).await.unwrap();
        assert_eq!(gw.next().await, "second", "the next task runs");
        until(
            &sup,
            &second,
            "second has ended (its write fails too)",
            |t| t.status.is_finished(),
        )
        .await;
        assert_eq!(
            stored(&flaky.inner, &first).await.status,
            TaskStatus::Running
        );
        let failed = until(&sup, &first, "given up after the tries", |t| {
            t.status == TaskStatus::Failed
        })
        .await;
        let reason = failed.error.clone().unwrap();
        assert!(reason.starts_with(UNRECORDED), "{reason}");
        assert!(reason.contains("disk I/O error (injected)"), "{reason}");
        assert_eq!(failed.result, None);
        assert_eq!(
            sup.send(CancelTask {
                id: first.id.clone(),
                owner: first.owner.clone()
            })
            .await
            .unwrap(),
            Err(TaskError::NotCancellable(TaskStatus::Failed))
        );
        let listed = sup
            .send(ListTasks {
                owner: "session:a".into(),
                filter: TaskFilter::default(),
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(listed.stats.by_status.running, 0);
        // The store works again: the failure is written.
        flaky.fail_finish.store(0, Ordering::SeqCst);
        let mut written = stored(&flaky.inner, &first).await;
        for _ in 0..2000 {
            if written.status != TaskStatus::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            written = stored(&flaky.inner, &first).await;
        }
        assert_eq!(written.status, TaskStatus::Failed);
        assert_eq!(written.error, Some(reason));
        assert_eq!(written.result, None);
    }

    #[actix_rt::test]
    async fn a_database_locked_by_another_process_delays_the_end_but_loses_nothing() {
        let mut gw = gateway();
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&Location::Dir(dir.path().to_path_buf())).unwrap();
        db.set_busy_timeout(Duration::from_millis(20)).unwrap();
        let store = Arc::new(SqliteBackend::from_db(db));
        let retry = WriteRetry {
            attempts: 1000,
            ..FAST
        };
        let sup = supervisor(&gw, store.clone(), 1, 1000, retry);
        let t = enqueue(&sup, "local", "hold locked", 0).await.unwrap();
        assert_eq!(gw.next().await, "hold locked");
        // Another process takes the write lock and keeps it.
        let holder =
            rusqlite::Connection::open(dir.path().join(super::super::store::DB_FILE)).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        gw.gate.add_permits(1);
        let shown = until(&sup, &t, "the answer is shown from memory", |t| {
            t.status == TaskStatus::Completed
        })
        .await;
        assert_eq!(shown.result.as_deref(), Some("echo: hold locked"));
        let status_in_file = |conn: &rusqlite::Connection| -> String {
            conn.query_row("SELECT status FROM tasks WHERE id = ?1", [&t.id], |r| {
                r.get(0)
            })
            .unwrap()
        };
        assert_eq!(
            status_in_file(&holder),
            "running",
            "not written while locked"
        );
        holder.execute_batch("COMMIT").unwrap();
        let mut written = stored(&store, &t).await;
        for _ in 0..2000 {
            if written.status != TaskStatus::Running {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            written = stored(&store, &t).await;
        }
        assert_eq!(written.status, TaskStatus::Completed);
        assert_eq!(written.result.as_deref(), Some("echo: hold locked"));
    }

    #[test]
    fn write_retries_back_off_to_a_ceiling() {
        let r = WriteRetry::default();
        assert_eq!(r.delay(1), Duration::from_millis(250));
        assert_eq!(r.delay(2), Duration::from_millis(500));
        assert_eq!(r.delay(5), Duration::from_secs(4));
        assert_eq!(r.delay(6), Duration::from_secs(5));
        assert_eq!(r.delay(u32::MAX), Duration::from_secs(5));
    }
}
