//! What the PostgreSQL stores (tasks in [`crate::tasks::pg`], OAuth in [`crate::auth::pg`]) share:
//! the connection string, the pool (rustls, the gateway client's roots), errors in words that
//! never carry credentials, versioned additive migrations per component, and a `LISTEN`
//! connection that reconnects by itself.
//!
//! Both stores live in the schema `openclaw_mcp`; `openclaw_mcp.schema_version` holds one row
//! per component (`tasks`, `oauth`), so that each is migrated and refused on its own terms.

use std::{str::FromStr, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, config::Host};

use crate::sqlite::StoreError;

/// How long a call waits for a connection of the pool (a database that is down answers at once).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Advisory lock key (arbitrary, fixed) held while a component's schema is migrated.
const MIGRATION_LOCK: i64 = 0x6f63_6d5f_6d69_6701;

/// The innermost cause of an error, in words (deadpool wraps tokio-postgres wraps io).
pub fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text = s.to_string();
        source = s.source();
    }
    text
}

/// A database error in words: PostgreSQL's own message (`db error` alone says nothing), or the
/// innermost cause of a connection failure. Missing tables or schema become
/// [`StoreError::Unavailable`] starting with `gone`, so that the caller makes them again.
pub fn db_error(e: tokio_postgres::Error, gone: &str) -> StoreError {
    use tokio_postgres::error::SqlState;
    if let Some(db) = e.as_db_error() {
        if matches!(
            *db.code(),
            SqlState::UNDEFINED_TABLE | SqlState::INVALID_SCHEMA_NAME
        ) {
            return StoreError::Unavailable(format!(
                "{gone} (PostgreSQL: {}); it is made again on the next call",
                db.message()
            ));
        }
        return StoreError::Db(format!("PostgreSQL: {}", db.message()));
    }
    if e.is_closed() {
        return StoreError::Unavailable("the connection to PostgreSQL was lost".into());
    }
    StoreError::Db(innermost(&e))
}

/// Where the database is, for messages: host and port, or the socket folder, and the database;
/// never the user or the password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config.get_dbname().unwrap_or("(default)");
    format!("postgresql://{host}:{port}/{db}")
}

/// Server-side bounds of every session of the bridge: a statement that waits for a lock, or
/// runs, longer than this fails (the caller sees a clear error and the connection goes back to
/// the pool), and a transaction left idle by a bridge that froze or was cut off is ended by the
/// server, releasing its locks, instead of holding them until TCP notices (hours). Options given
/// in the URL come after these and win.
const SESSION_OPTIONS: &str =
    "-c lock_timeout=5000 -c statement_timeout=30000 -c idle_in_transaction_session_timeout=30000";

/// Parses a `postgres://` URL (or key=value string) into a connection config.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("the database URL is not a PostgreSQL connection string: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    config.application_name("openclaw-mcp");
    let options = match config.get_options() {
        Some(given) => format!("{SESSION_OPTIONS} {given}"),
        None => SESSION_OPTIONS.to_string(),
    };
    config.options(options);
    Ok(config)
}

/// TLS for the database: the same rustls configuration and roots as the gateway client.
pub fn tls() -> tokio_postgres_rustls::MakeRustlsConnect {
    tokio_postgres_rustls::MakeRustlsConnect::new((*crate::outbound::tls_config()).clone())
}

/// A pool of at most `size` connections, made lazily: a database that is down now is reported
/// by the calls and reached once it is up.
pub fn pool(config: &tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        config.clone(),
        tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Db(e.to_string()))
}

/// A connection of `pool`, or the reason in words (`cannot reach PostgreSQL at …`).
pub async fn connection(pool: &Pool, place: &str) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(|e| {
        StoreError::Unavailable(format!(
            "cannot reach PostgreSQL at {place}: {}",
            innermost(&e)
        ))
    })
}

/// One component's schema: its name in `schema_version`, its version, and its (idempotent,
/// additive) statements.
pub struct Component {
    /// `tasks`, `oauth`.
    pub name: &'static str,
    /// What this binary writes.
    pub version: i32,
    /// `CREATE … IF NOT EXISTS` statements.
    pub schema: &'static str,
    /// How errors start when the tables are missing.
    pub gone: &'static str,
}

/// Brings `component` to its version (under an advisory lock, so that replicas starting together
/// do not race); refuses a schema more than one version newer than this binary's.
pub async fn migrate(
    client: &mut deadpool_postgres::Object,
    place: &str,
    component: &Component,
) -> Result<(), StoreError> {
    let err = |e| db_error(e, component.gone);
    let version = component.version;
    let tx = client.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err)?;
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS openclaw_mcp;
         CREATE TABLE IF NOT EXISTS openclaw_mcp.schema_version (
             component TEXT PRIMARY KEY,
             version INTEGER NOT NULL
         );",
    )
    .await
    .map_err(err)?;
    tx.batch_execute(component.schema).await.map_err(err)?;
    let found: Option<i32> = tx
        .query_opt(
            "SELECT version FROM openclaw_mcp.schema_version WHERE component = $1",
            &[&component.name],
        )
        .await
        .map_err(err)?
        .map(|r| r.get(0));
    match found {
        Some(v) if v > version + 1 => {
            return Err(StoreError::Db(format!(
                "the {} schema at {place} is version {v}, written by a newer openclaw-mcp; this binary (schema {version}) works with version {} at most: upgrade it",
                component.name,
                version + 1
            )));
        }
        Some(v) if v >= version => {}
        _ => {
            tx.execute(
                "INSERT INTO openclaw_mcp.schema_version (component, version) VALUES ($1, $2)
                 ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                &[&component.name, &version],
            )
            .await
            .map_err(err)?;
        }
    }
    tx.commit().await.map_err(err)?;
    tracing::info!(database = %place, component = component.name, schema = version, "schema ready on PostgreSQL");
    Ok(())
}

/// Listens on `channel` on a connection of its own, reconnecting every second while the
/// database is away, and hands each payload to `tx` until its receiver is gone. `connected` is
/// told each time the `LISTEN` is in place (what was sent while it was not must be read again).
pub async fn listen(
    config: tokio_postgres::Config,
    channel: &'static str,
    tx: mpsc::UnboundedSender<Note>,
) {
    loop {
        if tx.is_closed() {
            return;
        }
        match config.connect(tls()).await {
            Ok((client, mut connection)) => {
                let (notes_tx, mut notes) = mpsc::unbounded_channel();
                let driver = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(Ok(message)) = messages.next().await {
                        if let AsyncMessage::Notification(n) = message {
                            let _ = notes_tx.send(n.payload().to_string());
                        }
                    }
                });
                if client
                    .batch_execute(&format!("LISTEN {channel}"))
                    .await
                    .is_ok()
                {
                    if tx.send(Note::Listening).is_err() {
                        driver.abort();
                        return;
                    }
                    while let Some(payload) = notes.recv().await {
                        if tx.send(Note::Payload(payload)).is_err() {
                            driver.abort();
                            return;
                        }
                    }
                    let _ = tx.send(Note::Lost);
                }
                driver.abort();
            }
            Err(e) => {
                tracing::debug!(error = %e, channel, "listener: cannot reach PostgreSQL");
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// What a [`listen`]er hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// The `LISTEN` is in place (first time, or again after the connection was lost).
    Listening,
    /// A notification's payload.
    Payload(String),
    /// The listening connection was lost; it is made again within a second or so.
    Lost,
}

/// One component's view of the database: a pool, and its schema checked on the first call that
/// reaches the server (again after its tables vanished under a running bridge).
pub struct Database {
    pool: Pool,
    config: tokio_postgres::Config,
    place: String,
    component: &'static Component,
    schema_ok: std::sync::atomic::AtomicBool,
    migrating: tokio::sync::Mutex<()>,
}

impl Database {
    /// A pool of at most `size` connections to `url` for `component` (connected lazily).
    pub fn start(
        url: &str,
        size: usize,
        component: &'static Component,
    ) -> Result<Database, StoreError> {
        let config = parse_url(url).map_err(StoreError::Db)?;
        Ok(Database {
            pool: pool(&config, size)?,
            place: describe(&config),
            config,
            component,
            schema_ok: std::sync::atomic::AtomicBool::new(false),
            migrating: tokio::sync::Mutex::new(()),
        })
    }

    /// Where the database is (no credentials).
    pub fn place(&self) -> &str {
        &self.place
    }

    /// The connection settings (for a listener of its own).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// A pooled connection, with the component's schema checked (once per process, and again
    /// after [`Database::seen`] saw its tables missing).
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        use std::sync::atomic::Ordering;
        let mut client = connection(&self.pool, &self.place).await?;
        if !self.schema_ok.load(Ordering::Acquire) {
            let _one = self.migrating.lock().await;
            if !self.schema_ok.load(Ordering::Acquire) {
                migrate(&mut client, &self.place, self.component).await?;
                self.schema_ok.store(true, Ordering::Release);
            }
        }
        Ok(client)
    }

    /// Passes `result` on, noting a missing-tables error: the schema is made again next time.
    pub fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err(StoreError::Unavailable(why)) = &result
            && why.starts_with(self.component.gone)
        {
            self.schema_ok
                .store(false, std::sync::atomic::Ordering::Release);
        }
        result
    }
}
