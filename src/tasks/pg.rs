//! Durable task state in PostgreSQL, shared by several bridges (replicas behind a load
//! balancer): the same [`TaskBackend`] as the embedded SQLite store, with what one machine got
//! from its file system done by the database instead.
//!
//! - **Claims.** A pending task is claimed with one conditional `UPDATE … WHERE status =
//!   'pending' RETURNING …`: under PostgreSQL's row locks two replicas cannot both win it, so its
//!   prompt reaches the gateway once.
//! - **Live runners: leases.** Each replica has a row in `runners` that it refreshes every
//!   [`HEARTBEAT`]; a runner not seen for [`LEASE`] is dead. Maintenance on any survivor then
//!   adopts the dead runner's running tasks whose WebSocket run was recorded (one conditional
//!   update per task: one survivor wins each) and fails the others as interrupted (never sent
//!   again). A replica that was only cut off and comes back finds its tasks taken: its `finish`
//!   is refused, as for a cancelled task.
//! - **Limits.** An insert takes a transaction-scoped advisory lock, so that the total and
//!   per-owner limits hold across replicas (two inserts cannot both take the last place).
//! - **Cancels across replicas.** A cancel commits with `pg_notify('openclaw_mcp_cancel', id)`;
//!   every replica `LISTEN`s on its own connection and stops the gateway request of a task it
//!   runs ([`TaskBackend::cancellations`]).
//! - **Schema.** Tables live in the schema `openclaw_mcp`; `openclaw_mcp.schema_version` holds
//!   one row per component. Migrations run at start under an advisory lock and are additive, so
//!   the previous release's binary keeps working on the same database during a rolling deploy; a
//!   binary refuses a schema more than one version newer than its own.
//! - **An unreachable database** is a clear error on every call (`task store unavailable: …`),
//!   never a crash: the pool reconnects by itself, the schema is checked on the first call that
//!   reaches the database, and the listener reconnects every second. Tables that vanish under a
//!   running bridge (a database restored or recreated) are made again on the next call.

use std::{sync::Arc, time::Duration};

use futures_util::{FutureExt, future::BoxFuture};
use tokio::sync::mpsc;
use tokio_postgres::Row;

use crate::pg::Database;

use super::{
    store::{
        CancelOutcome, Finish, Inserted, Limits, Maintenance, StoreError, StoreFuture, TaskBackend,
    },
    task::{INTERRUPTED, NewTask, TaskRecord, TaskStatus, new_task_id},
};

/// How often a replica says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A replica not seen for this long is dead: its tasks are adopted or failed.
pub const LEASE: Duration = Duration::from_secs(30);
/// The schema version this binary writes. 1: tasks and runners.
pub const SCHEMA_VERSION: i32 = 1;
/// The channel cancels are announced on.
const CANCEL_CHANNEL: &str = "openclaw_mcp_cancel";
/// How an error starts when the tables vanished under a running bridge (a database restored or
/// recreated): the schema is made again on the next call.
const SCHEMA_GONE: &str = "the task tables are missing";
/// Connections of one replica's pool.
const POOL_SIZE: usize = 8;

const COLUMNS: &str = "id, owner, instance, session_id, agent_id, message, priority, seq, status, \
    created_at, started_at, completed_at, result, error, progress_chars, last_activity_at, images, run";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS openclaw_mcp.tasks (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    instance TEXT NOT NULL,
    session_id TEXT,
    agent_id TEXT,
    message TEXT,
    images TEXT,
    priority BIGINT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    result TEXT,
    error TEXT,
    progress_chars BIGINT NOT NULL DEFAULT 0,
    last_activity_at BIGINT,
    runner TEXT,
    run TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_status ON openclaw_mcp.tasks (status, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_by_owner ON openclaw_mcp.tasks (owner, priority DESC, seq);
CREATE INDEX IF NOT EXISTS tasks_by_completion ON openclaw_mcp.tasks (completed_at)
    WHERE completed_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_unfinished_by_owner ON openclaw_mcp.tasks (owner)
    WHERE status IN ('pending', 'running');
CREATE INDEX IF NOT EXISTS tasks_running_by_runner ON openclaw_mcp.tasks (runner)
    WHERE status = 'running';
CREATE TABLE IF NOT EXISTS openclaw_mcp.runners (
    id TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
";

/// The task tables, as a migrated component.
const COMPONENT: crate::pg::Component = crate::pg::Component {
    name: "tasks",
    version: SCHEMA_VERSION,
    schema: SCHEMA,
    gone: SCHEMA_GONE,
};

/// Advisory lock key (arbitrary, fixed): inserts.
const INSERT_LOCK: i64 = 0x6f63_6d5f_696e_7301;

fn db_error(e: tokio_postgres::Error) -> StoreError {
    crate::pg::db_error(e, SCHEMA_GONE)
}

struct Inner {
    db: Database,
    runner: String,
}

/// [`TaskBackend`] on PostgreSQL.
pub struct PgBackend {
    inner: Arc<Inner>,
    cancels: std::sync::Mutex<Option<mpsc::UnboundedReceiver<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PgBackend {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn record(row: &Row) -> TaskRecord {
    let status: String = row.get(8);
    TaskRecord {
        id: row.get(0),
        owner: row.get(1),
        instance: row.get(2),
        session_id: row.get(3),
        agent_id: row.get(4),
        message: row.get(5),
        priority: row.get(6),
        seq: row.get(7),
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        created_at: row.get(9),
        started_at: row.get(10),
        completed_at: row.get(11),
        result: row.get(12),
        error: row.get(13),
        progress_chars: row.get::<_, i64>(14).max(0) as u64,
        last_activity_at: row.get(15),
        images: row
            .get::<_, Option<String>>(16)
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        run: row.get(17),
    }
}

impl PgBackend {
    /// Connects the pool (lazily: a database that is down now is reported by the calls, and
    /// reached once it is up), starts the heartbeat and the cancel listener. Errors here are
    /// configuration errors only.
    pub fn start(url: &str) -> Result<PgBackend, StoreError> {
        let inner = Arc::new(Inner {
            db: Database::start(url, POOL_SIZE, &COMPONENT)?,
            runner: uuid::Uuid::new_v4().to_string(),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = vec![
            tokio::spawn(heartbeat(inner.clone())),
            tokio::spawn(listen(inner.clone(), tx)),
        ];
        Ok(PgBackend {
            inner,
            cancels: std::sync::Mutex::new(Some(rx)),
            tasks,
        })
    }

    /// Checks now that the database is reachable and its schema usable (startup, tests).
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.inner.client().await.map(drop)
    }

    /// Where the database is (no credentials).
    pub fn place(&self) -> &str {
        self.inner.db.place()
    }

    fn run<R, F>(&self, f: F) -> StoreFuture<R>
    where
        R: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut deadpool_postgres::Object,
                Arc<Inner>,
            ) -> BoxFuture<'c, Result<R, StoreError>>
            + Send
            + 'static,
    {
        let inner = self.inner.clone();
        async move {
            let mut client = inner.client().await?;
            let result = f(&mut client, inner.clone()).await;
            inner.db.seen(result)
        }
        .boxed()
    }
}

impl Inner {
    /// A connection of the pool, with the schema checked (once per process).
    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.db.client().await
    }
}

/// Keeps this replica's `runners` row fresh. A failure is logged once per outage.
async fn heartbeat(inner: Arc<Inner>) {
    let mut failing = false;
    loop {
        let beat = async {
            let client = inner.client().await?;
            client
                .execute(
                    "INSERT INTO openclaw_mcp.runners (id, seen_at) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at",
                    &[&inner.runner, &crate::util::now_ms()],
                )
                .await
                .map_err(db_error)
        };
        match beat.await {
            Ok(_) if failing => {
                tracing::info!(database = %inner.db.place(), "PostgreSQL reachable again");
                failing = false;
            }
            Ok(_) => {}
            Err(e) if !failing => {
                tracing::warn!(error = %e, "cannot renew this replica's lease in PostgreSQL");
                failing = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(HEARTBEAT).await;
    }
}

/// Hands each cancelled task id heard on [`CANCEL_CHANNEL`] to the supervisor.
async fn listen(inner: Arc<Inner>, tx: mpsc::UnboundedSender<String>) {
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let listener = tokio::spawn(crate::pg::listen(
        inner.db.config().clone(),
        CANCEL_CHANNEL,
        notes_tx,
    ));
    while let Some(note) = notes.recv().await {
        if let crate::pg::Note::Payload(id) = note
            && tx.send(id).is_err()
        {
            break;
        }
    }
    listener.abort();
}

/// The SQL of a [`TaskBackend`] call, over one pooled connection.
macro_rules! call {
    ($self:ident, |$client:ident, $inner:ident| $body:expr) => {
        $self.run(move |$client, $inner| async move { $body }.boxed())
    };
}

impl TaskBackend for PgBackend {
    fn runner(&self) -> &str {
        &self.inner.runner
    }

    fn insert(&self, task: NewTask, limits: Limits, now: i64) -> StoreFuture<Inserted> {
        call!(self, |client, inner| {
            let tx = client.transaction().await.map_err(db_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&INSERT_LOCK])
                .await
                .map_err(db_error)?;
            let counts = tx
                .query_one(
                    "SELECT count(*), count(*) FILTER (WHERE owner = $1)
                     FROM openclaw_mcp.tasks WHERE status IN ('pending', 'running')",
                    &[&task.owner],
                )
                .await
                .map_err(db_error)?;
            let (mut unfinished, mut mine): (i64, i64) = (counts.get(0), counts.get(1));
            if !limits.ended.is_empty() {
                let ended = tx
                    .query(
                        "SELECT owner FROM openclaw_mcp.tasks
                         WHERE id = ANY($1) AND status = 'running' AND runner = $2",
                        &[&limits.ended, &inner.runner],
                    )
                    .await
                    .map_err(db_error)?;
                for row in ended {
                    unfinished -= 1;
                    if row.get::<_, String>(0) == task.owner {
                        mine -= 1;
                    }
                }
            }
            if let Some(refused) = limits.verdict(unfinished, mine) {
                return Ok(refused);
            }
            let id = new_task_id();
            let images = task.images_json();
            let row = tx
                .query_one(
                    "INSERT INTO openclaw_mcp.tasks
                       (id, owner, instance, session_id, agent_id, message, priority, status, created_at, images)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9) RETURNING seq",
                    &[
                        &id,
                        &task.owner,
                        &task.instance,
                        &task.session_id,
                        &task.agent_id,
                        &task.message,
                        &task.priority,
                        &now,
                        &images,
                    ],
                )
                .await
                .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(Inserted::Stored(Box::new(task.pending(
                id,
                row.get(0),
                now,
            ))))
        })
    }

    fn claim(&self, id: String, now: i64) -> StoreFuture<Option<TaskRecord>> {
        call!(self, |client, inner| {
            let row = client
                .query_opt(
                    &format!(
                        "UPDATE openclaw_mcp.tasks SET status = 'running', started_at = $2, runner = $3
                         WHERE id = $1 AND (status = 'pending' OR (status = 'running' AND runner = $3))
                         RETURNING {COLUMNS}"
                    ),
                    &[&id, &now, &inner.runner],
                )
                .await
                .map_err(db_error)?;
            Ok(row.as_ref().map(record))
        })
    }

    fn finish(&self, id: String, f: Finish) -> StoreFuture<bool> {
        call!(self, |client, inner| {
            let progress = f.progress_chars as i64;
            let changed = client
                .execute(
                    "UPDATE openclaw_mcp.tasks SET status = $2, result = $3, error = $4, progress_chars = $5,
                         last_activity_at = $6, completed_at = $7, message = NULL, images = NULL, run = NULL
                     WHERE id = $1 AND status = 'running' AND runner = $8",
                    &[
                        &id,
                        &f.status.as_str(),
                        &f.result,
                        &f.error,
                        &progress,
                        &f.last_activity_at,
                        &f.at,
                        &inner.runner,
                    ],
                )
                .await
                .map_err(db_error)?;
            if changed == 0 {
                client
                    .execute(
                        "UPDATE openclaw_mcp.tasks SET progress_chars = $2, last_activity_at = $3
                         WHERE id = $1 AND runner = $4",
                        &[&id, &progress, &f.last_activity_at, &inner.runner],
                    )
                    .await
                    .map_err(db_error)?;
            }
            Ok(changed == 1)
        })
    }

    fn set_run(&self, id: String, run: String) -> StoreFuture<bool> {
        call!(self, |client, inner| {
            Ok(client
                .execute(
                    "UPDATE openclaw_mcp.tasks SET run = $2 WHERE id = $1 AND status = 'running' AND runner = $3",
                    &[&id, &run, &inner.runner],
                )
                .await
                .map_err(db_error)?
                == 1)
        })
    }

    fn cancel(
        &self,
        id: String,
        owner: String,
        now: i64,
        cutoff: i64,
    ) -> StoreFuture<CancelOutcome> {
        call!(self, |client, _inner| {
            let tx = client.transaction().await.map_err(db_error)?;
            let found = tx
                .query_opt(
                    "SELECT status, runner FROM openclaw_mcp.tasks
                     WHERE id = $1 AND owner = $2 AND (completed_at IS NULL OR completed_at >= $3)
                     FOR UPDATE",
                    &[&id, &owner, &cutoff],
                )
                .await
                .map_err(db_error)?;
            let Some(found) = found else {
                return Ok(CancelOutcome::NotFound);
            };
            let status = TaskStatus::parse(found.get(0)).unwrap_or(TaskStatus::Failed);
            let runner: Option<String> = found.get(1);
            if status.is_finished() {
                return Ok(CancelOutcome::NotCancellable(status));
            }
            tx.execute(
                "UPDATE openclaw_mcp.tasks SET status = 'cancelled', completed_at = $2, message = NULL, images = NULL
                 WHERE id = $1",
                &[&id, &now],
            )
            .await
            .map_err(db_error)?;
            if status == TaskStatus::Running {
                // Delivered at commit to every replica listening: the one running it stops it.
                tx.execute("SELECT pg_notify($1, $2)", &[&CANCEL_CHANNEL, &id])
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)?;
            Ok(CancelOutcome::Cancelled {
                previous: status,
                runner: runner.filter(|_| status == TaskStatus::Running),
            })
        })
    }

    fn get(&self, id: String, owner: String, cutoff: i64) -> StoreFuture<Option<TaskRecord>> {
        call!(self, |client, _inner| {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {COLUMNS} FROM openclaw_mcp.tasks
                         WHERE id = $1 AND owner = $2 AND (completed_at IS NULL OR completed_at >= $3)"
                    ),
                    &[&id, &owner, &cutoff],
                )
                .await
                .map_err(db_error)?;
            Ok(row.as_ref().map(record))
        })
    }

    fn list(&self, owner: String, cutoff: i64) -> StoreFuture<Vec<TaskRecord>> {
        call!(self, |client, _inner| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM openclaw_mcp.tasks
                         WHERE owner = $1 AND (completed_at IS NULL OR completed_at >= $2)
                         ORDER BY priority DESC, seq ASC"
                    ),
                    &[&owner, &cutoff],
                )
                .await
                .map_err(db_error)?;
            Ok(rows.iter().map(record).collect())
        })
    }

    fn pending(&self) -> StoreFuture<Vec<TaskRecord>> {
        call!(self, |client, _inner| {
            let rows = client
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM openclaw_mcp.tasks WHERE status = 'pending'
                         ORDER BY priority DESC, seq ASC"
                    ),
                    &[],
                )
                .await
                .map_err(db_error)?;
            Ok(rows.iter().map(record).collect())
        })
    }

    fn maintain(&self, cutoff: i64, now: i64) -> StoreFuture<Maintenance> {
        call!(self, |client, inner| {
            let expired = client
                .execute(
                    "DELETE FROM openclaw_mcp.tasks WHERE completed_at IS NOT NULL AND completed_at < $1",
                    &[&cutoff],
                )
                .await
                .map_err(db_error)?;
            // Runners of running tasks not seen within the lease (or never registered).
            let stale = now - LEASE.as_millis() as i64;
            let dead: Vec<String> = client
                .query(
                    "SELECT DISTINCT t.runner FROM openclaw_mcp.tasks t
                     LEFT JOIN openclaw_mcp.runners r ON r.id = t.runner
                     WHERE t.status = 'running' AND t.runner IS NOT NULL AND t.runner <> $1
                       AND (r.id IS NULL OR r.seen_at < $2)",
                    &[&inner.runner, &stale],
                )
                .await
                .map_err(db_error)?
                .iter()
                .map(|r| r.get(0))
                .collect();
            let mut adopted = Vec::new();
            let mut interrupted = 0;
            for runner in dead {
                let rows = client
                    .query(
                        &format!(
                            "UPDATE openclaw_mcp.tasks SET runner = $2
                             WHERE status = 'running' AND runner = $1 AND run IS NOT NULL
                             RETURNING {COLUMNS}"
                        ),
                        &[&runner, &inner.runner],
                    )
                    .await
                    .map_err(db_error)?;
                adopted.extend(rows.iter().map(record));
                interrupted += client
                    .execute(
                        "UPDATE openclaw_mcp.tasks SET status = 'failed', error = $2, completed_at = $3,
                             message = NULL, images = NULL
                         WHERE status = 'running' AND runner = $1",
                        &[&runner, &INTERRUPTED, &now],
                    )
                    .await
                    .map_err(db_error)?;
                tracing::warn!(runner = %runner, "a replica's lease expired: its running tasks were taken over");
            }
            client
                .execute(
                    "DELETE FROM openclaw_mcp.runners WHERE seen_at < $1",
                    &[&(now - 10 * LEASE.as_millis() as i64)],
                )
                .await
                .map_err(db_error)?;
            Ok(Maintenance {
                expired,
                interrupted,
                adopted,
            })
        })
    }

    fn interrupt_mine(&self, now: i64) -> StoreFuture<u64> {
        call!(self, |client, inner| {
            let failed = client
                .execute(
                    "UPDATE openclaw_mcp.tasks SET status = 'failed', error = $2, completed_at = $3,
                         message = NULL, images = NULL
                     WHERE status = 'running' AND runner = $1",
                    &[&inner.runner, &INTERRUPTED, &now],
                )
                .await
                .map_err(db_error)?;
            client
                .execute(
                    "DELETE FROM openclaw_mcp.runners WHERE id = $1",
                    &[&inner.runner],
                )
                .await
                .map_err(db_error)?;
            Ok(failed)
        })
    }

    fn cancellations(&self) -> Option<mpsc::UnboundedReceiver<String>> {
        self.cancels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}
