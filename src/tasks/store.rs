//! Durable task state: an embedded SQLite database behind a `SyncArbiter` actor, so no blocking
//! call runs on the async threads, and behind the narrow [`TaskBackend`] interface that only the
//! supervisor uses (a PostgreSQL backend shared by several bridges would implement the same trait).
//!
//! Several processes may share one data directory (Claude Desktop and Claude Code each start a
//! stdio bridge). The protocol that keeps a prompt from ever being sent twice:
//! - a pending task is **claimed** with one conditional `UPDATE … WHERE status = 'pending'`, so
//!   exactly one process sends it;
//! - each process holds an exclusive `flock` on `runners/<runner-id>.lock` for its whole life and
//!   stamps the tasks it runs with that id; any process can tell at once whether a runner is alive
//!   by trying the lock;
//! - recovery fails (`interrupted: …`) only the running tasks whose runner is gone, never those
//!   of a live process;
//! - a runner may claim again a task that the store already shows as running *for that runner*:
//!   this is how a claim whose answer was lost (the call timed out while the store thread was
//!   busy) is taken up again instead of leaving the task `running` forever. The supervisor only
//!   claims tasks it neither runs nor is finishing, so this never sends a prompt twice.
//!
//! An insert is checked against two limits in one transaction ([`Limits`]): all unfinished tasks
//! (`OPENCLAW_MAX_TASKS`) and the owner's unfinished tasks (its share, see
//! [`fair`](super::fair)); tasks that have finished but whose end is not written yet are not
//! counted.

use std::{
    fs::{File, OpenOptions},
    path::{Path, PathBuf},
};

use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::task::{INTERRUPTED, NewTask, TaskRecord, TaskStatus, new_task_id};
use crate::sqlite::{self, SqliteHandle};
pub use crate::sqlite::{Location, StoreError};

/// The database file inside the data directory.
pub const DB_FILE: &str = "tasks.db";
/// Lock files of live runners, inside the data directory.
const RUNNERS_DIR: &str = "runners";
/// Schema version in `PRAGMA user_version`.
/// 2: the `run` column (the WebSocket run of a running task).
const SCHEMA_VERSION: i64 = 2;

/// Result of a cancel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Now cancelled; it was `previous`, run by `runner` if it was running.
    Cancelled {
        /// State before the cancel.
        previous: TaskStatus,
        /// Runner of a running task.
        runner: Option<String>,
    },
    /// No such task for this owner.
    NotFound,
    /// Already finished.
    NotCancellable(TaskStatus),
}

/// How a running task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// `Completed`, `Failed` or `Cancelled`.
    pub status: TaskStatus,
    /// The answer.
    pub result: Option<String>,
    /// The failure.
    pub error: Option<String>,
    /// Characters received.
    pub progress_chars: u64,
    /// Last byte from the gateway.
    pub last_activity_at: Option<i64>,
    /// When it ended.
    pub at: i64,
}

/// What a maintenance pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintenance {
    /// Finished tasks deleted after their retention.
    pub expired: u64,
    /// Running tasks of dead processes marked failed.
    pub interrupted: u64,
    /// Running tasks of dead processes whose WebSocket run was recorded: now this runner's, to
    /// be found again on the gateway.
    pub adopted: Vec<TaskRecord>,
}

/// The limits a new task is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Unfinished tasks of all owners together (`OPENCLAW_MAX_TASKS`).
    pub total: usize,
    /// Unfinished tasks of the new task's owner (its share).
    pub owner: usize,
    /// Tasks of this runner that have ended but whose end could not be written yet: the store
    /// still shows them running, but they no longer count against either limit.
    pub ended: Vec<String>,
}

impl Limits {
    /// Whether a new task of an owner with `mine` unfinished tasks fits, with `unfinished` in
    /// all (both already net of `ended`): `None` when it does, else the refusal. The owner's
    /// share is checked first (it is the more precise answer).
    pub fn verdict(&self, unfinished: i64, mine: i64) -> Option<Inserted> {
        if self.owner < self.total && mine.max(0) as usize >= self.owner {
            return Some(Inserted::ShareReached);
        }
        if unfinished.max(0) as usize >= self.total {
            return Some(Inserted::LimitReached);
        }
        None
    }

    /// `total` for everyone together and for any one owner, nothing ended unwritten.
    pub fn total(total: usize) -> Limits {
        Limits {
            total,
            owner: total,
            ended: Vec::new(),
        }
    }
}

/// Result of an insert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored, pending (boxed: the refusals are much smaller).
    Stored(Box<TaskRecord>),
    /// Nothing stored: `Limits::total` unfinished tasks exist.
    LimitReached,
    /// Nothing stored: the owner holds `Limits::owner` unfinished tasks (and that is less than
    /// the total).
    ShareReached,
}

/// Boxed future of a store call.
pub type StoreFuture<T> = BoxFuture<'static, Result<T, StoreError>>;

/// The interface between the supervisor and durable task state. Times are milliseconds since the
/// epoch; `cutoff` hides tasks finished before it (expired, whether or not deleted yet).
pub trait TaskBackend: Send + Sync + 'static {
    /// This process's runner id.
    fn runner(&self) -> &str;
    /// Stores a pending task, unless that would pass one of the `limits`.
    fn insert(&self, task: NewTask, limits: Limits, now: i64) -> StoreFuture<Inserted>;
    /// Claims a pending task for this runner (or one it already claimed, if that claim's answer
    /// was lost); `None` if it is neither.
    fn claim(&self, id: String, now: i64) -> StoreFuture<Option<TaskRecord>>;
    /// Records the end of a task this runner runs; `false` if it was no longer running (cancelled).
    fn finish(&self, id: String, finish: Finish) -> StoreFuture<bool>;
    /// Records the WebSocket run (JSON) of a task this runner runs, before its prompt is sent;
    /// `false` if it was no longer running (cancelled).
    fn set_run(&self, id: String, run: String) -> StoreFuture<bool>;
    /// Cancels the owner's task if it is pending or running.
    fn cancel(
        &self,
        id: String,
        owner: String,
        now: i64,
        cutoff: i64,
    ) -> StoreFuture<CancelOutcome>;
    /// The owner's task.
    fn get(&self, id: String, owner: String, cutoff: i64) -> StoreFuture<Option<TaskRecord>>;
    /// All the owner's tasks, priority descending then oldest first.
    fn list(&self, owner: String, cutoff: i64) -> StoreFuture<Vec<TaskRecord>>;
    /// Every pending task, in run order.
    fn pending(&self) -> StoreFuture<Vec<TaskRecord>>;
    /// Deletes expired tasks and fails the running tasks of dead runners.
    fn maintain(&self, cutoff: i64, now: i64) -> StoreFuture<Maintenance>;
    /// Fails this runner's running tasks (on shutdown, after the grace period).
    fn interrupt_mine(&self, now: i64) -> StoreFuture<u64>;
    /// Ids of tasks cancelled through another process sharing the store (taken once, by the
    /// supervisor, which stops those it runs); `None` where the store cannot tell
    /// (SQLite: a cancel reaches the process that runs the task only through its own tools).
    fn cancellations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<String>> {
        None
    }
}

/// The lock that says "this runner is alive", held for the life of the process.
struct RunnerLock {
    path: PathBuf,
    _file: File,
}

impl Drop for RunnerLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn runner_path(data_dir: &Path, runner: &str) -> PathBuf {
    data_dir.join(RUNNERS_DIR).join(format!("{runner}.lock"))
}

fn acquire_runner(data_dir: &Path, runner: &str) -> std::io::Result<RunnerLock> {
    std::fs::create_dir_all(data_dir.join(RUNNERS_DIR))?;
    let path = runner_path(data_dir, runner);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    file.try_lock().map_err(|e| match e {
        std::fs::TryLockError::WouldBlock => {
            std::io::Error::new(std::io::ErrorKind::WouldBlock, "runner lock already held")
        }
        std::fs::TryLockError::Error(e) => e,
    })?;
    Ok(RunnerLock { path, _file: file })
}

/// Whether the runner's process still holds its lock. When in doubt, it is alive: a live
/// process's task must never be failed by mistake.
fn runner_alive(data_dir: &Path, runner: &str) -> bool {
    let path = runner_path(data_dir, runner);
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true,
    };
    match file.try_lock() {
        Ok(()) => {
            // We got the lock: its owner is gone. Clean up its file.
            let _ = std::fs::remove_file(&path);
            false
        }
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => true,
    }
}

/// The synchronous database, used only on the store's own thread.
pub struct Db {
    conn: Connection,
    runner: String,
    data_dir: Option<PathBuf>,
    _lock: Option<RunnerLock>,
}

const COLUMNS: &str = "id, owner, instance, session_id, agent_id, message, priority, seq, status, \
    created_at, started_at, completed_at, result, error, progress_chars, last_activity_at, images, run";

fn record(row: &Row<'_>) -> rusqlite::Result<TaskRecord> {
    let status: String = row.get(8)?;
    Ok(TaskRecord {
        id: row.get(0)?,
        owner: row.get(1)?,
        instance: row.get(2)?,
        session_id: row.get(3)?,
        agent_id: row.get(4)?,
        message: row.get(5)?,
        priority: row.get(6)?,
        seq: row.get(7)?,
        status: TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed),
        created_at: row.get(9)?,
        started_at: row.get(10)?,
        completed_at: row.get(11)?,
        result: row.get(12)?,
        error: row.get(13)?,
        progress_chars: row.get::<_, i64>(14)?.max(0) as u64,
        last_activity_at: row.get(15)?,
        images: row
            .get::<_, Option<String>>(16)?
            .and_then(|j| serde_json::from_str(&j).ok())
            .unwrap_or_default(),
        run: row.get(17)?,
    })
}

impl Db {
    /// Opens (creating if needed) the store and registers this process as a live runner.
    pub fn open(location: &Location) -> Result<Db, StoreError> {
        let runner = uuid::Uuid::new_v4().to_string();
        let (conn, data_dir, lock) = match location {
            Location::Memory => (Connection::open_in_memory()?, None, None),
            Location::Dir(dir) => {
                create_private_dir(dir)
                    .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", dir.display())))?;
                let lock = acquire_runner(dir, &runner).map_err(|e| {
                    StoreError::Db(format!(
                        "cannot write in {}: {e}",
                        dir.join(RUNNERS_DIR).display()
                    ))
                })?;
                let conn = sqlite::open_file(&dir.join(DB_FILE))?;
                (conn, Some(dir.clone()), Some(lock))
            }
        };
        let mut db = Db {
            conn,
            runner,
            data_dir,
            _lock: lock,
        };
        db.migrate().map_err(|e| match &db.data_dir {
            Some(dir) => StoreError::Db(format!(
                "{}: {e} (is it a task database? move it away to start afresh)",
                dir.join(DB_FILE).display()
            )),
            None => e,
        })?;
        Ok(db)
    }

    /// This process's runner id.
    pub fn runner(&self) -> &str {
        &self.runner
    }

    /// Tests: how long a statement waits for another connection's lock before "database is
    /// locked" (5 s otherwise).
    #[cfg(test)]
    pub(crate) fn set_busy_timeout(&mut self, wait: std::time::Duration) -> Result<(), StoreError> {
        Ok(self.conn.busy_timeout(wait)?)
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        sqlite::migrate_with(
            &mut self.conn,
            self.data_dir.is_some(),
            SCHEMA_VERSION,
            "CREATE TABLE IF NOT EXISTS tasks (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                id TEXT NOT NULL UNIQUE,
                owner TEXT NOT NULL,
                instance TEXT NOT NULL,
                session_id TEXT,
                agent_id TEXT,
                message TEXT,
                images TEXT,
                priority INTEGER NOT NULL,
                status TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                started_at INTEGER,
                completed_at INTEGER,
                result TEXT,
                error TEXT,
                progress_chars INTEGER NOT NULL DEFAULT 0,
                last_activity_at INTEGER,
                runner TEXT,
                run TEXT
            );
            CREATE INDEX IF NOT EXISTS tasks_by_status ON tasks(status, priority DESC, seq);
            CREATE INDEX IF NOT EXISTS tasks_by_owner ON tasks(owner, priority DESC, seq);
            CREATE INDEX IF NOT EXISTS tasks_by_completion ON tasks(completed_at)
                WHERE completed_at IS NOT NULL;
            -- An owner's unfinished tasks, for its share: the count reads at most its share of
            -- index entries. (An index only: no schema version change, older bridges on the same
            -- file keep working.)
            CREATE INDEX IF NOT EXISTS tasks_unfinished_by_owner ON tasks(owner)
                WHERE status IN ('pending', 'running');
            -- The number of unfinished tasks, kept by triggers so that the limit check on every
            -- insert is O(1) instead of a count over all pending tasks.
            CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            INSERT OR IGNORE INTO counters (name, value)
                SELECT 'unfinished', count(*) FROM tasks WHERE status IN ('pending', 'running');
            CREATE TRIGGER IF NOT EXISTS unfinished_on_insert AFTER INSERT ON tasks
                WHEN NEW.status IN ('pending', 'running')
                BEGIN UPDATE counters SET value = value + 1 WHERE name = 'unfinished'; END;
            CREATE TRIGGER IF NOT EXISTS unfinished_on_update AFTER UPDATE OF status ON tasks
                WHEN (OLD.status IN ('pending', 'running')) != (NEW.status IN ('pending', 'running'))
                BEGIN UPDATE counters
                    SET value = value + (CASE WHEN NEW.status IN ('pending', 'running') THEN 1 ELSE -1 END)
                    WHERE name = 'unfinished'; END;
            CREATE TRIGGER IF NOT EXISTS unfinished_on_delete AFTER DELETE ON tasks
                WHEN OLD.status IN ('pending', 'running')
                BEGIN UPDATE counters SET value = value - 1 WHERE name = 'unfinished'; END;",
            |tx, _found| {
                // Version 1 files have no `run` column (the CREATE above made it only for new files).
                let has_run: bool = tx
                    .prepare("SELECT 1 FROM pragma_table_info('tasks') WHERE name = 'run'")?
                    .exists([])?;
                if !has_run {
                    tx.execute_batch("ALTER TABLE tasks ADD COLUMN run TEXT;")?;
                }
                Ok(())
            },
        )
    }

    /// See [`TaskBackend::set_run`].
    pub fn set_run(&mut self, id: &str, run: &str) -> Result<bool, StoreError> {
        Ok(self.conn.execute(
            "UPDATE tasks SET run = ?2 WHERE id = ?1 AND status = 'running' AND runner = ?3",
            params![id, run, self.runner],
        )? == 1)
    }

    /// See [`TaskBackend::insert`].
    pub fn insert(
        &mut self,
        task: &NewTask,
        limits: &Limits,
        now: i64,
    ) -> Result<Inserted, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut unfinished: i64 = tx.query_row(
            "SELECT value FROM counters WHERE name = 'unfinished'",
            [],
            |r| r.get(0),
        )?;
        let mut mine: i64 = tx.query_row(
            "SELECT count(*) FROM tasks WHERE owner = ?1 AND status IN ('pending', 'running')",
            params![task.owner],
            |r| r.get(0),
        )?;
        for id in &limits.ended {
            let owner: Option<String> = tx
                .query_row(
                    "SELECT owner FROM tasks WHERE id = ?1 AND status = 'running' AND runner = ?2",
                    params![id, self.runner],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(owner) = owner {
                unfinished -= 1;
                if owner == task.owner {
                    mine -= 1;
                }
            }
        }
        if let Some(refused) = limits.verdict(unfinished, mine) {
            return Ok(refused);
        }
        let id = new_task_id();
        tx.execute(
            "INSERT INTO tasks (id, owner, instance, session_id, agent_id, message, priority, status, created_at, images)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9)",
            params![
                id,
                task.owner,
                task.instance,
                task.session_id,
                task.agent_id,
                task.message,
                task.priority,
                now,
                task.images_json()
            ],
        )?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Inserted::Stored(Box::new(
            task.clone().pending(id, seq, now),
        )))
    }

    /// See [`TaskBackend::claim`].
    pub fn claim(&mut self, id: &str, now: i64) -> Result<Option<TaskRecord>, StoreError> {
        let changed = self.conn.execute(
            "UPDATE tasks SET status = 'running', started_at = ?2, runner = ?3
             WHERE id = ?1 AND (status = 'pending' OR (status = 'running' AND runner = ?3))",
            params![id, now, self.runner],
        )?;
        if changed == 0 {
            return Ok(None);
        }
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"),
                params![id],
                record,
            )
            .optional()?)
    }

    /// See [`TaskBackend::finish`].
    pub fn finish(&mut self, id: &str, f: &Finish) -> Result<bool, StoreError> {
        let changed = self.conn.execute(
            "UPDATE tasks SET status = ?2, result = ?3, error = ?4, progress_chars = ?5,
                 last_activity_at = ?6, completed_at = ?7, message = NULL, images = NULL, run = NULL
             WHERE id = ?1 AND status = 'running' AND runner = ?8",
            params![
                id,
                f.status.as_str(),
                f.result,
                f.error,
                f.progress_chars as i64,
                f.last_activity_at,
                f.at,
                self.runner
            ],
        )?;
        if changed == 0 {
            // Cancelled meanwhile: keep `cancelled`, but record how far the answer had come.
            self.conn.execute(
                "UPDATE tasks SET progress_chars = ?2, last_activity_at = ?3 WHERE id = ?1 AND runner = ?4",
                params![id, f.progress_chars as i64, f.last_activity_at, self.runner],
            )?;
        }
        Ok(changed == 1)
    }

    /// See [`TaskBackend::cancel`].
    pub fn cancel(
        &mut self,
        id: &str,
        owner: &str,
        now: i64,
        cutoff: i64,
    ) -> Result<CancelOutcome, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: Option<(String, Option<String>)> = tx
            .query_row(
                "SELECT status, runner FROM tasks
                 WHERE id = ?1 AND owner = ?2 AND (completed_at IS NULL OR completed_at >= ?3)",
                params![id, owner, cutoff],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((status, runner)) = found else {
            return Ok(CancelOutcome::NotFound);
        };
        let status = TaskStatus::parse(&status).unwrap_or(TaskStatus::Failed);
        if status.is_finished() {
            return Ok(CancelOutcome::NotCancellable(status));
        }
        tx.execute(
            "UPDATE tasks SET status = 'cancelled', completed_at = ?2, message = NULL, images = NULL WHERE id = ?1",
            params![id, now],
        )?;
        tx.commit()?;
        Ok(CancelOutcome::Cancelled {
            previous: status,
            runner: runner.filter(|_| status == TaskStatus::Running),
        })
    }

    /// See [`TaskBackend::get`].
    pub fn get(
        &mut self,
        id: &str,
        owner: &str,
        cutoff: i64,
    ) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {COLUMNS} FROM tasks
                     WHERE id = ?1 AND owner = ?2 AND (completed_at IS NULL OR completed_at >= ?3)"
                ),
                params![id, owner, cutoff],
                record,
            )
            .optional()?)
    }

    /// See [`TaskBackend::list`].
    pub fn list(&mut self, owner: &str, cutoff: i64) -> Result<Vec<TaskRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks
             WHERE owner = ?1 AND (completed_at IS NULL OR completed_at >= ?2)
             ORDER BY priority DESC, seq ASC"
        ))?;
        let rows = stmt.query_map(params![owner, cutoff], record)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// See [`TaskBackend::pending`].
    pub fn pending(&mut self) -> Result<Vec<TaskRecord>, StoreError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM tasks WHERE status = 'pending' ORDER BY priority DESC, seq ASC"
        ))?;
        let rows = stmt.query_map([], record)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// See [`TaskBackend::maintain`].
    pub fn maintain(&mut self, cutoff: i64, now: i64) -> Result<Maintenance, StoreError> {
        let expired = self.conn.execute(
            "DELETE FROM tasks WHERE completed_at IS NOT NULL AND completed_at < ?1",
            params![cutoff],
        )? as u64;
        let mut interrupted = 0;
        let mut adopted = Vec::new();
        if let Some(dir) = self.data_dir.clone() {
            let runners: Vec<String> = {
                let mut stmt = self.conn.prepare_cached(
                    "SELECT DISTINCT runner FROM tasks WHERE status = 'running' AND runner IS NOT NULL AND runner != ?1",
                )?;
                stmt.query_map(params![self.runner], |r| r.get(0))?
                    .collect::<Result<Vec<_>, _>>()?
            };
            for runner in runners {
                if !runner_alive(&dir, &runner) {
                    adopted.extend(self.adopt_runs_of(&runner)?);
                    interrupted += self.fail_running_of(&runner, now)?;
                }
            }
        }
        Ok(Maintenance {
            expired,
            interrupted,
            adopted,
        })
    }

    /// Takes over the running tasks of the dead `runner` whose WebSocket run was recorded (one
    /// conditional update: of several live processes, one wins each task).
    fn adopt_runs_of(&mut self, runner: &str) -> Result<Vec<TaskRecord>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare_cached(
                "SELECT id FROM tasks WHERE status = 'running' AND runner = ?1 AND run IS NOT NULL",
            )?;
            stmt.query_map(params![runner], |r| r.get(0))?
                .collect::<Result<Vec<_>, _>>()?
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            tx.execute(
                "UPDATE tasks SET runner = ?2 WHERE id = ?1 AND status = 'running' AND runner = ?3",
                params![id, self.runner, runner],
            )?;
            if let Some(task) = tx
                .query_row(
                    &format!("SELECT {COLUMNS} FROM tasks WHERE id = ?1"),
                    params![id],
                    record,
                )
                .optional()?
            {
                out.push(task);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn fail_running_of(&mut self, runner: &str, now: i64) -> Result<u64, StoreError> {
        Ok(self.conn.execute(
            "UPDATE tasks SET status = 'failed', error = ?2, completed_at = ?3, message = NULL, images = NULL
             WHERE status = 'running' AND runner = ?1",
            params![runner, INTERRUPTED, now],
        )? as u64)
    }

    /// See [`TaskBackend::interrupt_mine`].
    pub fn interrupt_mine(&mut self, now: i64) -> Result<u64, StoreError> {
        let runner = self.runner.clone();
        self.fail_running_of(&runner, now)
    }
}

/// Creates the data directory readable by its owner only (it holds prompts and answers).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// [`TaskBackend`] on the SQLite store thread.
pub struct SqliteBackend {
    db: SqliteHandle<Db>,
    runner: String,
}

impl SqliteBackend {
    /// Opens the store (errors here are startup errors) and starts its thread.
    pub fn start(location: &Location) -> Result<SqliteBackend, StoreError> {
        Ok(SqliteBackend::from_db(Db::open(location)?))
    }

    /// Starts the store thread over a database already opened.
    pub fn from_db(db: Db) -> SqliteBackend {
        let runner = db.runner().to_string();
        SqliteBackend {
            db: SqliteHandle::start(db),
            runner,
        }
    }

    fn exec<R, F>(&self, f: F) -> StoreFuture<R>
    where
        R: Send + 'static,
        F: FnOnce(&mut Db) -> Result<R, StoreError> + Send + 'static,
    {
        self.db.exec(f)
    }
}

impl TaskBackend for SqliteBackend {
    fn runner(&self) -> &str {
        &self.runner
    }
    fn insert(&self, task: NewTask, limits: Limits, now: i64) -> StoreFuture<Inserted> {
        self.exec(move |db| db.insert(&task, &limits, now))
    }
    fn claim(&self, id: String, now: i64) -> StoreFuture<Option<TaskRecord>> {
        self.exec(move |db| db.claim(&id, now))
    }
    fn set_run(&self, id: String, run: String) -> StoreFuture<bool> {
        self.exec(move |db| db.set_run(&id, &run))
    }
    fn finish(&self, id: String, finish: Finish) -> StoreFuture<bool> {
        self.exec(move |db| db.finish(&id, &finish))
    }
    fn cancel(
        &self,
        id: String,
        owner: String,
        now: i64,
        cutoff: i64,
    ) -> StoreFuture<CancelOutcome> {
        self.exec(move |db| db.cancel(&id, &owner, now, cutoff))
    }
    fn get(&self, id: String, owner: String, cutoff: i64) -> StoreFuture<Option<TaskRecord>> {
        self.exec(move |db| db.get(&id, &owner, cutoff))
    }
    fn list(&self, owner: String, cutoff: i64) -> StoreFuture<Vec<TaskRecord>> {
        self.exec(move |db| db.list(&owner, cutoff))
    }
    fn pending(&self) -> StoreFuture<Vec<TaskRecord>> {
        self.exec(|db| db.pending())
    }
    fn maintain(&self, cutoff: i64, now: i64) -> StoreFuture<Maintenance> {
        self.exec(move |db| db.maintain(cutoff, now))
    }
    fn interrupt_mine(&self, now: i64) -> StoreFuture<u64> {
        self.exec(move |db| db.interrupt_mine(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(owner: &str, priority: i64) -> NewTask {
        NewTask {
            owner: owner.into(),
            instance: "default".into(),
            session_id: None,
            agent_id: None,
            message: "hi".into(),
            images: Vec::new(),
            priority,
        }
    }

    fn inserted(i: Inserted) -> TaskRecord {
        match i {
            Inserted::Stored(t) => *t,
            other => panic!("under the limit, got {other:?}"),
        }
    }

    #[test]
    fn pending_order_is_priority_then_age() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let a = inserted(db.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        let b = inserted(db.insert(&task("o", 5), &Limits::total(10), 2).unwrap());
        let c = inserted(db.insert(&task("o", 5), &Limits::total(10), 3).unwrap());
        let d = inserted(db.insert(&task("o", -1), &Limits::total(10), 4).unwrap());
        let order: Vec<String> = db.pending().unwrap().into_iter().map(|t| t.id).collect();
        assert_eq!(order, [b.id, c.id, a.id, d.id]);
    }

    #[test]
    fn the_limit_counts_unfinished_tasks_only() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let a = inserted(db.insert(&task("o", 0), &Limits::total(2), 1).unwrap());
        inserted(db.insert(&task("o", 0), &Limits::total(2), 1).unwrap());
        assert_eq!(
            db.insert(&task("o", 0), &Limits::total(2), 1).unwrap(),
            Inserted::LimitReached
        );
        db.cancel(&a.id, "o", 2, 0).unwrap();
        inserted(db.insert(&task("o", 0), &Limits::total(2), 3).unwrap());
    }

    #[test]
    fn the_unfinished_counter_follows_every_change() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let count = |db: &mut Db| -> i64 {
            db.conn
                .query_row(
                    "SELECT value FROM counters WHERE name = 'unfinished'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        let a = inserted(db.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        let b = inserted(db.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        assert_eq!(count(&mut db), 2);
        db.claim(&a.id, 2).unwrap();
        assert_eq!(count(&mut db), 2, "pending to running keeps it unfinished");
        let done = Finish {
            status: TaskStatus::Completed,
            result: Some("x".into()),
            error: None,
            progress_chars: 1,
            last_activity_at: None,
            at: 3,
        };
        db.finish(&a.id, &done).unwrap();
        db.cancel(&b.id, "o", 3, 0).unwrap();
        assert_eq!(count(&mut db), 0);
        db.maintain(10, 10).unwrap();
        assert_eq!(count(&mut db), 0);
    }

    #[test]
    fn a_claim_succeeds_once_and_cancel_wins_over_finish() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let t = inserted(db.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        assert!(db.claim(&t.id, 2).unwrap().is_some());
        let outcome = db.cancel(&t.id, "o", 4, 0).unwrap();
        assert!(matches!(
            outcome,
            CancelOutcome::Cancelled {
                previous: TaskStatus::Running,
                ..
            }
        ));
        let done = Finish {
            status: TaskStatus::Completed,
            result: Some("late".into()),
            error: None,
            progress_chars: 4,
            last_activity_at: Some(5),
            at: 5,
        };
        assert!(
            !db.finish(&t.id, &done).unwrap(),
            "a cancelled task stays cancelled"
        );
        let stored = db.get(&t.id, "o", 0).unwrap().unwrap();
        assert_eq!(stored.status, TaskStatus::Cancelled);
        assert_eq!(stored.result, None);
        assert_eq!(stored.progress_chars, 4);
        assert_eq!(
            db.cancel(&t.id, "o", 6, 0).unwrap(),
            CancelOutcome::NotCancellable(TaskStatus::Cancelled)
        );
    }

    #[test]
    fn owners_see_only_their_tasks_and_expired_ones_vanish() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let t = inserted(db.insert(&task("alice", 0), &Limits::total(10), 1).unwrap());
        assert!(db.get(&t.id, "bob", 0).unwrap().is_none());
        assert_eq!(
            db.cancel(&t.id, "bob", 2, 0).unwrap(),
            CancelOutcome::NotFound
        );
        assert!(db.list("bob", 0).unwrap().is_empty());
        db.cancel(&t.id, "alice", 100, 0).unwrap();
        assert!(db.get(&t.id, "alice", 100).unwrap().is_some());
        assert!(
            db.get(&t.id, "alice", 101).unwrap().is_none(),
            "past retention"
        );
        assert_eq!(db.maintain(101, 200).unwrap().expired, 1);
    }

    #[test]
    fn recovery_fails_only_the_tasks_of_dead_runners() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Dir(dir.path().to_path_buf());
        let mut alive = Db::open(&location).unwrap();
        let mut dead = Db::open(&location).unwrap();
        let a = inserted(alive.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        let b = inserted(alive.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        alive.claim(&a.id, 2).unwrap().unwrap();
        dead.claim(&b.id, 2).unwrap().unwrap();
        drop(dead); // its lock is released, as when the process dies
        let mut third = Db::open(&location).unwrap();
        assert_eq!(third.maintain(0, 3).unwrap().interrupted, 1);
        let b_now = third.get(&b.id, "o", 0).unwrap().unwrap();
        assert_eq!(b_now.status, TaskStatus::Failed);
        assert_eq!(b_now.error.as_deref(), Some(INTERRUPTED));
        assert_eq!(b_now.message, None, "the prompt is not kept after the end");
        assert_eq!(
            third.get(&a.id, "o", 0).unwrap().unwrap().status,
            TaskStatus::Running,
            "a live runner's task is left alone"
        );
    }

    #[test]
    fn a_dead_runners_task_with_a_recorded_run_is_adopted_once_and_the_others_fail() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Dir(dir.path().to_path_buf());
        let mut dead = Db::open(&location).unwrap();
        let sent = inserted(dead.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        let unsent = inserted(dead.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        dead.claim(&sent.id, 2).unwrap().unwrap();
        dead.claim(&unsent.id, 2).unwrap().unwrap();
        assert!(dead.set_run(&sent.id, r#"{"run_id":"r-1"}"#).unwrap());
        drop(dead);
        let mut first = Db::open(&location).unwrap();
        let mut second = Db::open(&location).unwrap();
        let done = first.maintain(0, 3).unwrap();
        assert_eq!(done.interrupted, 1, "the task without a run record fails");
        assert_eq!(done.adopted.len(), 1);
        assert_eq!(done.adopted[0].id, sent.id);
        assert_eq!(done.adopted[0].run.as_deref(), Some(r#"{"run_id":"r-1"}"#));
        assert_eq!(
            done.adopted[0].message.as_deref(),
            Some("hi"),
            "the prompt stays for a resend"
        );
        // Another live process finds nothing left to adopt: the run is the first one's.
        assert!(second.maintain(0, 4).unwrap().adopted.is_empty());
        assert_eq!(
            first.get(&sent.id, "o", 0).unwrap().unwrap().status,
            TaskStatus::Running
        );
    }

    #[test]
    fn a_file_that_is_not_a_database_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), b"this is not sqlite, just text padding ......................................................................").unwrap();
        let err = Db::open(&Location::Dir(dir.path().to_path_buf()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("tasks.db") && err.contains("move it away"),
            "{err}"
        );
    }

    #[test]
    fn a_claim_succeeds_once_across_runners_and_again_for_its_own_runner() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Dir(dir.path().to_path_buf());
        let mut mine = Db::open(&location).unwrap();
        let mut other = Db::open(&location).unwrap();
        let t = inserted(mine.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        assert!(mine.claim(&t.id, 2).unwrap().is_some());
        assert!(other.claim(&t.id, 3).unwrap().is_none(), "claimed once");
        // The answer of the first claim was lost: the same runner takes the task up again.
        let again = mine.claim(&t.id, 4).unwrap().unwrap();
        assert_eq!(again.status, TaskStatus::Running);
        mine.cancel(&t.id, "o", 5, 0).unwrap();
        assert!(
            mine.claim(&t.id, 6).unwrap().is_none(),
            "not once cancelled"
        );
    }

    #[test]
    fn an_owner_over_its_share_is_refused_while_others_still_get_in() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let limits = Limits {
            total: 5,
            owner: 2,
            ended: Vec::new(),
        };
        inserted(db.insert(&task("a", 0), &limits, 1).unwrap());
        inserted(db.insert(&task("a", 0), &limits, 1).unwrap());
        assert_eq!(
            db.insert(&task("a", 9), &limits, 1).unwrap(),
            Inserted::ShareReached
        );
        inserted(db.insert(&task("b", 0), &limits, 1).unwrap());
        inserted(db.insert(&task("b", 0), &limits, 1).unwrap());
        inserted(db.insert(&task("c", 0), &limits, 1).unwrap());
        assert_eq!(
            db.insert(&task("d", 0), &limits, 1).unwrap(),
            Inserted::LimitReached,
            "the total still holds"
        );
        assert_eq!(db.list("a", 0).unwrap().len(), 2, "nothing stored");
    }

    #[test]
    fn tasks_ended_but_not_written_do_not_count() {
        let mut db = Db::open(&Location::Memory).unwrap();
        let limits = |ended: Vec<String>| Limits {
            total: 2,
            owner: 1,
            ended,
        };
        let a = inserted(db.insert(&task("a", 0), &limits(vec![]), 1).unwrap());
        db.claim(&a.id, 2).unwrap().unwrap();
        assert_eq!(
            db.insert(&task("a", 0), &limits(vec![]), 3).unwrap(),
            Inserted::ShareReached
        );
        inserted(
            db.insert(&task("a", 0), &limits(vec![a.id.clone()]), 3)
                .unwrap(),
        );
        assert_eq!(
            db.insert(&task("b", 0), &limits(vec![]), 3).unwrap(),
            Inserted::LimitReached
        );
        inserted(
            db.insert(&task("b", 0), &limits(vec![a.id.clone()]), 3)
                .unwrap(),
        );
    }

    #[test]
    fn the_share_count_reads_the_owners_unfinished_index() {
        let db = Db::open(&Location::Memory).unwrap();
        let plan: Vec<String> = db
            .conn
            .prepare(
                "EXPLAIN QUERY PLAN SELECT count(*) FROM tasks
                 WHERE owner = ?1 AND status IN ('pending', 'running')",
            )
            .unwrap()
            .query_map(["a"], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert!(
            plan.iter().any(|p| p.contains("tasks_unfinished_by_owner")),
            "{plan:?}"
        );
    }

    #[test]
    fn a_locked_database_fails_the_final_write_until_the_lock_goes() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(&Location::Dir(dir.path().to_path_buf())).unwrap();
        db.set_busy_timeout(std::time::Duration::from_millis(20))
            .unwrap();
        let t = inserted(db.insert(&task("o", 0), &Limits::total(10), 1).unwrap());
        db.claim(&t.id, 2).unwrap().unwrap();
        let done = Finish {
            status: TaskStatus::Completed,
            result: Some("answer".into()),
            error: None,
            progress_chars: 6,
            last_activity_at: None,
            at: 3,
        };
        // Another process holds the write lock.
        let holder = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        holder.execute_batch("BEGIN EXCLUSIVE").unwrap();
        let err = db.finish(&t.id, &done).unwrap_err().to_string();
        assert!(err.contains("locked"), "{err}");
        assert_eq!(
            db.get(&t.id, "o", 0).unwrap().unwrap().status,
            TaskStatus::Running
        );
        holder.execute_batch("COMMIT").unwrap();
        assert!(db.finish(&t.id, &done).unwrap());
        let stored = db.get(&t.id, "o", 0).unwrap().unwrap();
        assert_eq!(stored.status, TaskStatus::Completed);
        assert_eq!(stored.result.as_deref(), Some("answer"));
    }
}
