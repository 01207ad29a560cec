//! Device identities in PostgreSQL, for bridges that are replicas of one another
//! (`OPENCLAW_MCP_DATABASE_URL`): every replica is the same paired device of each instance, so
//! the gateway's owner approves one pairing, not one per replica, and a device token issued to
//! one replica (or by `openclaw-mcp pair` anywhere) is used by all.
//!
//! One row per instance (component `devices` of the schema `openclaw_mcp`), holding what a
//! single bridge keeps in `devices/<instance>.json`: the Ed25519 key and the device token. The
//! first replica to need it inserts the key it generated; every other one finds that row and
//! uses its key instead of its own. The database is trusted with the key as it is with the
//! tasks and the OAuth signing keys: restrict who can read it.

use std::sync::Arc;

use crate::{
    pg::{Component, Database, db_error as pg_error},
    sqlite::StoreError,
};

/// 1: one row per instance.
pub const SCHEMA_VERSION: i32 = 1;
const SCHEMA_GONE: &str = "the device table is missing";
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS openclaw_mcp.devices (
    instance TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
";
const COMPONENT: Component = Component {
    name: "devices",
    version: SCHEMA_VERSION,
    schema: SCHEMA,
    gone: SCHEMA_GONE,
};

fn db_error(e: tokio_postgres::Error) -> StoreError {
    pg_error(e, SCHEMA_GONE)
}

/// The shared device table.
pub struct SharedDevices {
    db: Database,
}

impl std::fmt::Debug for SharedDevices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDevices")
            .field("place", &self.db.place())
            .finish_non_exhaustive()
    }
}

impl SharedDevices {
    /// The table on the database at `url` (connected lazily; two connections are plenty: it is
    /// read before each connection to the gateway).
    pub fn start(url: &str) -> Result<Arc<SharedDevices>, StoreError> {
        Ok(Arc::new(SharedDevices {
            db: Database::start(url, 2, &COMPONENT)?,
        }))
    }

    /// The stored identity of `instance` (JSON); `mine` is stored first when there is none, so
    /// that of replicas starting together, one key wins and all use it.
    pub async fn load_or_insert(&self, instance: &str, mine: &str) -> Result<String, StoreError> {
        let result = async {
            let client = self.db.client().await?;
            client
                .execute(
                    "INSERT INTO openclaw_mcp.devices (instance, body, updated_at) VALUES ($1, $2, $3)
                     ON CONFLICT (instance) DO NOTHING",
                    &[&instance, &mine, &crate::util::now_ms()],
                )
                .await
                .map_err(db_error)?;
            Ok(client
                .query_one(
                    "SELECT body FROM openclaw_mcp.devices WHERE instance = $1",
                    &[&instance],
                )
                .await
                .map_err(db_error)?
                .get(0))
        }
        .await;
        self.db.seen(result)
    }

    /// Replaces the stored identity of `instance` (a device token kept or forgotten) if it is
    /// still `read` (what this replica last read): `false` when another replica or `openclaw-mcp
    /// pair` changed it meanwhile, whose change then stands (a dead token forgotten here must
    /// not erase a fresh one written there).
    pub async fn write(&self, instance: &str, body: &str, read: &str) -> Result<bool, StoreError> {
        let result = async {
            self.db
                .client()
                .await?
                .execute(
                    "UPDATE openclaw_mcp.devices SET body = $2, updated_at = $3
                     WHERE instance = $1 AND body = $4",
                    &[&instance, &body, &crate::util::now_ms(), &read],
                )
                .await
                .map_err(db_error)
                .map(|n| n == 1)
        }
        .await;
        self.db.seen(result)
    }
}
