//! A SQLite connection (or any state holding one) on its own `SyncArbiter` thread, so that no
//! blocking database call ever runs on the async threads. The task store and the OAuth store each
//! own one; callers send closures over the state and await their results.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use actix::{Actor, Addr, Handler, Message, SyncArbiter, SyncContext};
use futures_util::future::BoxFuture;

/// How long a store call may take before the caller gives up (SQLite waits up to 5 s for a lock).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the store lives.
#[derive(Debug, Clone)]
pub enum Location {
    /// The data directory (files inside it), shared with other processes using it.
    Dir(PathBuf),
    /// In this process's memory only.
    Memory,
}

/// A store failure.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// SQLite or the file system failed.
    #[error("database: {0}")]
    Db(String),
    /// The store thread could not be reached.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Opens (creating if needed) the database file at `path`; the error names the file.
pub fn open_file(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    rusqlite::Connection::open(path)
        .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))
}

/// Brings a store's database to `version`: a 5 s wait for locks; for a file shared with other
/// processes, WAL (readers in other processes work while one writes) and NORMAL sync (committed
/// data survives a process crash, not a power cut, which is fine here); a database of a newer
/// schema is refused; then `schema` (idempotent `CREATE ... IF NOT EXISTS` statements) and the
/// version are applied in one immediate transaction.
pub fn migrate(
    conn: &mut rusqlite::Connection,
    on_disk: bool,
    version: i64,
    schema: &str,
) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    if on_disk {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    }
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > version {
        return Err(StoreError::Db(format!(
            "schema version {found} is newer than this bridge understands ({version})"
        )));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(schema)?;
    tx.execute_batch(&format!("PRAGMA user_version = {version};"))?;
    tx.commit()?;
    Ok(())
}

/// A store operation: a closure over the state.
pub type DbOp<S, R> = Box<dyn FnOnce(&mut S) -> Result<R, StoreError> + Send>;

/// One store operation, run on the store's thread.
pub struct Exec<S, R>(DbOp<S, R>);

impl<S: 'static, R: Send + 'static> Message for Exec<S, R> {
    type Result = Result<R, StoreError>;
}

/// The actor that owns the state, on a `SyncArbiter` thread.
pub struct SqliteActor<S: 'static> {
    state: Option<S>,
}

impl<S: Unpin + 'static> Actor for SqliteActor<S> {
    type Context = SyncContext<Self>;
}

impl<S: Unpin + 'static, R: Send + 'static> Handler<Exec<S, R>> for SqliteActor<S> {
    type Result = Result<R, StoreError>;

    fn handle(&mut self, msg: Exec<S, R>, _ctx: &mut SyncContext<Self>) -> Self::Result {
        let Some(state) = self.state.as_mut() else {
            return Err(StoreError::Unavailable(
                "the database is closed".to_string(),
            ));
        };
        // A panic inside database glue must not kill the store thread.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (msg.0)(state))).unwrap_or_else(
            |_| {
                Err(StoreError::Db(
                    "internal error while accessing the database".to_string(),
                ))
            },
        )
    }
}

/// The address of a store thread.
pub struct SqliteHandle<S: Unpin + Send + 'static> {
    addr: Addr<SqliteActor<S>>,
}

impl<S: Unpin + Send + 'static> Clone for SqliteHandle<S> {
    fn clone(&self) -> Self {
        SqliteHandle {
            addr: self.addr.clone(),
        }
    }
}

impl<S: Unpin + Send + 'static> SqliteHandle<S> {
    /// Moves `state` (opened and checked by the caller: errors there are startup errors) onto
    /// its own thread.
    pub fn start(state: S) -> Self {
        let slot = Arc::new(std::sync::Mutex::new(Some(state)));
        let addr = SyncArbiter::start(1, move || SqliteActor {
            state: slot.lock().ok().and_then(|mut s| s.take()),
        });
        SqliteHandle { addr }
    }

    /// Runs `f` on the store's thread.
    pub fn exec<R, F>(&self, f: F) -> BoxFuture<'static, Result<R, StoreError>>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> Result<R, StoreError> + Send + 'static,
    {
        let request = self.addr.send(Exec(Box::new(f))).timeout(CALL_TIMEOUT);
        Box::pin(async move {
            request
                .await
                .map_err(|e| StoreError::Unavailable(e.to_string()))?
        })
    }
}
