//! A SQLite connection (or any state holding one) on its own `SyncArbiter` thread, so that no
//! blocking database call ever runs on the async threads. The task store and the OAuth store each
//! own one; callers send closures over the state and await their results.
//!
//! The data directory holds the OAuth signing key and everyone's tasks, so it is private: on
//! Unix, [`open_file`] makes the directory 0700 and every file in it (and in its subdirectories)
//! 0600 before opening a database, tightening what an older version, a copy or a restore left
//! looser, and refuses to go on when it cannot. SQLite creates `-wal` and `-shm` later, with the
//! mode of the database file itself, so they are 0600 too.

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
    /// The data directory or a file in it is open to other users and cannot be made private.
    #[error("{0}")]
    Permissions(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Mode of the data directory: only its owner may list or enter it.
#[cfg(unix)]
const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of every file in the data directory: only its owner may read or write it.
#[cfg(unix)]
const PRIVATE_FILE_MODE: u32 = 0o600;

/// Opens (creating if needed) the database file at `path` in a private data directory (see
/// [`secure_dir`]); a new file is created 0600 before SQLite opens it. The error names the file.
pub fn open_file(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        secure_dir(dir)?;
    }
    create_private_file(path)
        .map_err(|e| StoreError::Db(format!("cannot create {}: {e}", path.display())))?;
    rusqlite::Connection::open(path)
        .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))
}

/// Creates `path` empty with mode 0600 if it does not exist (SQLite would create it 0644 minus
/// the umask, and its `-wal` and `-shm` files take the database file's mode).
fn create_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(PRIVATE_FILE_MODE);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Makes the data directory `dir` private, creating it (0700) if needed: on Unix the directory
/// becomes 0700 and every file in it and in its subdirectories 0600 (subdirectories 0700), when
/// they allow more. Symbolic links are left alone (a mode change would follow them out of the
/// directory). A mode that cannot be tightened (another user owns the entry, a read-only file
/// system) is an error naming the entry, its mode and what to do: the bridge does not start with
/// its signing key or tasks readable by other local users. On other platforms: only created.
pub fn secure_dir(dir: &Path) -> Result<(), StoreError> {
    create_private_dir(dir).map_err(|e| {
        StoreError::Permissions(format!(
            "cannot create the data directory {}: {e}",
            dir.display()
        ))
    })?;
    #[cfg(unix)]
    tighten(dir, PRIVATE_DIR_MODE, true)?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(PRIVATE_DIR_MODE)
            .create(dir)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir)
    }
}

/// Sets `path` to `mode` if it allows any access to the group or others, then (a directory)
/// does the same for its entries. The data directory itself is followed if it is a symbolic
/// link (that is where the data is); links inside it are not. An entry that vanished meanwhile
/// (another bridge's runner lock) is skipped.
#[cfg(unix)]
fn tighten(path: &Path, mode: u32, root: bool) -> Result<(), StoreError> {
    use std::{io::ErrorKind, os::unix::fs::PermissionsExt};
    let unreadable = |e: std::io::Error| {
        StoreError::Permissions(format!(
            "cannot check the permissions of {} in the data directory: {e}",
            path.display()
        ))
    };
    let meta = match if root {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    } {
        Ok(meta) => meta,
        Err(e) if e.kind() == ErrorKind::NotFound && !root => return Ok(()),
        Err(e) => return Err(unreadable(e)),
    };
    let current = meta.permissions().mode() & 0o7777;
    if current & 0o077 != 0 {
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)) {
            Ok(()) => tracing::warn!(
                path = %path.display(),
                was = %format!("{current:04o}"),
                now = %format!("{mode:04o}"),
                "data directory permissions tightened"
            ),
            Err(e) if e.kind() == ErrorKind::NotFound && !root => return Ok(()),
            Err(e) => {
                return Err(StoreError::Permissions(format!(
                    "{} is open to other users (mode {current:04o}) and cannot be made \
                     {mode:04o}: {e}; make the user running the bridge its owner, or set its \
                     mode to {mode:04o}",
                    path.display()
                )));
            }
        }
    }
    if meta.is_dir() {
        let entries = match std::fs::read_dir(path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound && !root => return Ok(()),
            Err(e) => return Err(unreadable(e)),
        };
        for entry in entries {
            let entry = entry.map_err(unreadable)?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                tighten(&entry.path(), PRIVATE_DIR_MODE, false)?;
            } else if kind.is_file() {
                tighten(&entry.path(), PRIVATE_FILE_MODE, false)?;
            }
        }
    }
    Ok(())
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
    migrate_with(conn, on_disk, version, schema, |_, _| Ok(()))
}

/// [`migrate`], with `upgrade` run in the same transaction after `schema` when the database
/// was older than `version` (it gets the version found, 0 for a new database): for changes that
/// `CREATE ... IF NOT EXISTS` cannot make, such as a new column. It must check what it changes,
/// since the schema may already have created it.
pub fn migrate_with(
    conn: &mut rusqlite::Connection,
    on_disk: bool,
    version: i64,
    schema: &str,
    upgrade: impl FnOnce(&rusqlite::Transaction<'_>, i64) -> rusqlite::Result<()>,
) -> Result<(), StoreError> {
    conn.busy_timeout(Duration::from_secs(5))?;
    if on_disk {
        conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Read under the write lock: another process may have migrated meanwhile.
    let found: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > version {
        return Err(StoreError::Db(format!(
            "schema version {found} is newer than this bridge understands ({version})"
        )));
    }
    tx.execute_batch(schema)?;
    if found < version {
        upgrade(&tx, found)?;
    }
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

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path).map_or(0, |m| m.permissions().mode() & 0o7777)
    }

    fn set_mode(path: &Path, mode: u32) {
        let set = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
        assert!(set.is_ok(), "chmod {}: {set:?}", path.display());
    }

    #[test]
    fn a_loose_data_directory_is_made_private_at_open() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        for name in ["oauth.db", "oauth.db-wal", "notes.txt"] {
            std::fs::write(dir.join(name), b"").unwrap();
            set_mode(&dir.join(name), 0o644);
        }
        std::fs::create_dir(dir.join("runners")).unwrap();
        set_mode(&dir.join("runners"), 0o755);
        std::fs::write(dir.join("runners/x.lock"), b"").unwrap();
        set_mode(&dir.join("runners/x.lock"), 0o666);
        let outside = parent.path().join("outside");
        std::fs::write(&outside, b"").unwrap();
        set_mode(&outside, 0o644);
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();

        secure_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("runners")), 0o700);
        for name in ["oauth.db", "oauth.db-wal", "notes.txt", "runners/x.lock"] {
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
        assert_eq!(
            mode(&outside),
            0o644,
            "a link out of the directory is not followed"
        );
        // Already private: nothing to do, and stricter modes are kept.
        set_mode(&dir.join("notes.txt"), 0o400);
        secure_dir(&dir).unwrap();
        assert_eq!(mode(&dir.join("notes.txt")), 0o400);
    }

    #[test]
    fn a_new_database_and_its_wal_and_shm_files_are_0600() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("new");
        let path = dir.join("x.db");
        let mut conn = open_file(&path).unwrap();
        migrate(
            &mut conn,
            true,
            1,
            "CREATE TABLE IF NOT EXISTS t (v INTEGER);",
        )
        .unwrap();
        conn.execute("INSERT INTO t (v) VALUES (1)", []).unwrap();
        assert_eq!(mode(&dir), 0o700);
        for name in ["x.db", "x.db-wal", "x.db-shm"] {
            assert!(dir.join(name).exists(), "{name} exists while open");
            assert_eq!(mode(&dir.join(name)), 0o600, "{name}");
        }
    }

    #[test]
    fn a_directory_that_cannot_be_made_private_is_a_clear_error() {
        // A process's directory in /proc is 0555 and refuses chmod, even to root. If this kernel
        // allowed it, only this test process's own /proc entry would change.
        let dir = PathBuf::from(format!("/proc/{}/task", std::process::id()));
        if !dir.exists() {
            return;
        }
        let Err(StoreError::Permissions(message)) = secure_dir(&dir) else {
            panic!("expected a permissions error");
        };
        assert!(message.contains(&dir.display().to_string()), "{message}");
        assert!(
            message.contains("open to other users (mode 0555)"),
            "{message}"
        );
        assert!(!message.contains('\n'), "one line: {message}");
    }
}
