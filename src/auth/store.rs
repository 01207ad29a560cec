//! Durable OAuth state in `oauth.db` next to the task database, on its own SQLite thread: the
//! token signing key (when not configured), grants (one per authorization, the unit that
//! revocation kills), refresh tokens (stored as hashes, single use), and dynamically registered
//! clients. Tokens and grants survive a restart: a Claude.ai user is not logged out by a redeploy.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::tokens::{hash, random_bytes};
use crate::sqlite::{self, Location, StoreError};

/// The database file inside the data directory.
pub const DB_FILE: &str = "oauth.db";
const SCHEMA_VERSION: i64 = 1;

/// One authorization: a client, its scope and resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Grant id (in every token of the grant).
    pub id: String,
    /// The client it was granted to.
    pub client_id: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The resource (audience).
    pub resource: String,
}

/// What a refresh token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// Valid: now used; here is its grant.
    Valid(Grant),
    /// Unknown, expired, or its grant revoked.
    Invalid,
    /// Issued to another client.
    WrongClient,
    /// Already used once: its grant has now been revoked.
    Replayed(String),
}

/// A dynamically registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredClient {
    /// Client id.
    pub client_id: String,
    /// Hash of its secret (`None` for public clients).
    pub secret_hash: Option<String>,
    /// Display name.
    pub client_name: Option<String>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_post` or `client_secret_basic`.
    pub auth_method: String,
}

/// A refresh token with its grant.
struct RefreshRow {
    grant: Grant,
    expires_at: i64,
    used_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// The OAuth database.
pub struct AuthDb {
    conn: Connection,
}

impl AuthDb {
    /// Opens (creating if needed) the OAuth database.
    pub fn open(location: &Location) -> Result<AuthDb, StoreError> {
        let conn = match location {
            Location::Memory => Connection::open_in_memory()?,
            Location::Dir(dir) => sqlite::open_file(&dir.join(DB_FILE))?,
        };
        let mut db = AuthDb { conn };
        db.migrate(location).map_err(|e| match location {
            Location::Dir(dir) => StoreError::Db(format!(
                "{}: {e} (move it away to start afresh; clients will have to log in again)",
                dir.join(DB_FILE).display()
            )),
            Location::Memory => e,
        })?;
        Ok(db)
    }

    fn migrate(&mut self, location: &Location) -> Result<(), StoreError> {
        sqlite::migrate(
            &mut self.conn,
            matches!(location, Location::Dir(_)),
            SCHEMA_VERSION,
            "CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, value BLOB NOT NULL);
            CREATE TABLE IF NOT EXISTS grants (
                id TEXT PRIMARY KEY,
                client_id TEXT NOT NULL,
                scope TEXT NOT NULL,
                resource TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                revoked_at INTEGER
            );
            CREATE TABLE IF NOT EXISTS refresh_tokens (
                hash TEXT PRIMARY KEY,
                grant_id TEXT NOT NULL,
                expires_at INTEGER NOT NULL,
                used_at INTEGER
            );
            CREATE INDEX IF NOT EXISTS refresh_by_grant ON refresh_tokens(grant_id);
            CREATE TABLE IF NOT EXISTS clients (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                client_id TEXT NOT NULL UNIQUE,
                secret_hash TEXT,
                client_name TEXT,
                redirect_uris TEXT NOT NULL,
                auth_method TEXT NOT NULL,
                created_at INTEGER NOT NULL
            );",
        )
    }

    /// The persisted signing key, created (32 random bytes) the first time.
    pub fn signing_key(&mut self) -> Result<Vec<u8>, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existing: Option<Vec<u8>> = tx
            .query_row("SELECT value FROM keys WHERE name = 'signing'", [], |r| {
                r.get(0)
            })
            .optional()?;
        let key = match existing {
            Some(key) => key,
            None => {
                let key = random_bytes(32);
                tx.execute(
                    "INSERT INTO keys (name, value) VALUES ('signing', ?1)",
                    params![key],
                )?;
                key
            }
        };
        tx.commit()?;
        Ok(key)
    }

    /// Records a new grant; returns its id.
    pub fn create_grant(
        &mut self,
        client_id: &str,
        scope: &str,
        resource: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        self.conn.execute(
            "INSERT INTO grants (id, client_id, scope, resource, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, client_id, scope, resource, now],
        )?;
        Ok(id)
    }

    /// Stores a refresh token (by hash) of a grant.
    pub fn add_refresh(
        &mut self,
        token: &str,
        grant_id: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO refresh_tokens (hash, grant_id, expires_at) VALUES (?1, ?2, ?3)",
            params![hash(token), grant_id, expires_at],
        )?;
        Ok(())
    }

    fn grant_of_refresh(&mut self, token_hash: &str) -> Result<Option<RefreshRow>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT g.id, g.client_id, g.scope, g.resource, r.expires_at, r.used_at, g.revoked_at
                 FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.hash = ?1",
                params![token_hash],
                |r| {
                    Ok(RefreshRow {
                        grant: Grant {
                            id: r.get(0)?,
                            client_id: r.get(1)?,
                            scope: r.get(2)?,
                            resource: r.get(3)?,
                        },
                        expires_at: r.get(4)?,
                        used_at: r.get(5)?,
                        revoked_at: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Uses a refresh token once. A second use revokes its whole grant.
    pub fn use_refresh(
        &mut self,
        token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        let token_hash = hash(token);
        let Some(RefreshRow {
            grant,
            expires_at,
            used_at,
            revoked_at,
        }) = self.grant_of_refresh(&token_hash)?
        else {
            return Ok(RefreshOutcome::Invalid);
        };
        if grant.client_id != client_id {
            return Ok(RefreshOutcome::WrongClient);
        }
        if revoked_at.is_some() {
            return Ok(RefreshOutcome::Invalid);
        }
        if used_at.is_some() {
            self.revoke_grant(&grant.id, now)?;
            return Ok(RefreshOutcome::Replayed(grant.id));
        }
        if expires_at <= now {
            return Ok(RefreshOutcome::Invalid);
        }
        let changed = self.conn.execute(
            "UPDATE refresh_tokens SET used_at = ?2 WHERE hash = ?1 AND used_at IS NULL",
            params![token_hash, now],
        )?;
        if changed == 0 {
            self.revoke_grant(&grant.id, now)?;
            return Ok(RefreshOutcome::Replayed(grant.id));
        }
        Ok(RefreshOutcome::Valid(grant))
    }

    /// The grant of a refresh token, whatever its state (for revocation).
    pub fn grant_by_refresh(&mut self, token: &str) -> Result<Option<Grant>, StoreError> {
        Ok(self.grant_of_refresh(&hash(token))?.map(|row| row.grant))
    }

    /// The grant with this id.
    pub fn grant(&mut self, id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, client_id, scope, resource FROM grants WHERE id = ?1",
                params![id],
                |r| {
                    Ok(Grant {
                        id: r.get(0)?,
                        client_id: r.get(1)?,
                        scope: r.get(2)?,
                        resource: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    /// Revokes a grant: its refresh tokens stop working, and so (through the revoked list) do
    /// its access tokens.
    pub fn revoke_grant(&mut self, grant_id: &str, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![grant_id, now],
        )?;
        Ok(())
    }

    /// Ids of revoked grants whose tokens could still be presented.
    pub fn revoked_grants(&mut self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM grants WHERE revoked_at IS NOT NULL")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Deletes what can no longer be used: refresh tokens past expiry, and grants revoked or idle
    /// for longer than `keep_ms` (no token of theirs can still be valid).
    pub fn prune(&mut self, now: i64, keep_ms: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "DELETE FROM refresh_tokens WHERE expires_at < ?1",
            params![now - keep_ms],
        )?;
        self.conn.execute(
            "DELETE FROM grants WHERE (revoked_at IS NOT NULL AND revoked_at < ?1)
               OR (created_at < ?1 AND id NOT IN (SELECT grant_id FROM refresh_tokens))",
            params![now - keep_ms],
        )?;
        Ok(())
    }

    /// Stores a registered client, dropping the oldest beyond `max`.
    pub fn register_client(
        &mut self,
        client: &RegisteredClient,
        max: usize,
        now: i64,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "INSERT INTO clients (client_id, secret_hash, client_name, redirect_uris, auth_method, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                client.client_id,
                client.secret_hash,
                client.client_name,
                serde_json::to_string(&client.redirect_uris).unwrap_or_default(),
                client.auth_method,
                now
            ],
        )?;
        tx.execute(
            "DELETE FROM clients WHERE seq NOT IN (SELECT seq FROM clients ORDER BY seq DESC LIMIT ?1)",
            params![max as i64],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A registered client.
    pub fn client(&mut self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT client_id, secret_hash, client_name, redirect_uris, auth_method FROM clients WHERE client_id = ?1",
                params![client_id],
                |r| {
                    let uris: String = r.get(3)?;
                    Ok(RegisteredClient {
                        client_id: r.get(0)?,
                        secret_hash: r.get(1)?,
                        client_name: r.get(2)?,
                        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
                        auth_method: r.get(4)?,
                    })
                },
            )
            .optional()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_token_is_single_use_and_replay_revokes_the_grant() {
        let mut db = AuthDb::open(&Location::Memory).unwrap();
        let gid = db
            .create_grant("c", "mcp:tools", "https://b/mcp", 0)
            .unwrap();
        db.add_refresh("r1", &gid, 100).unwrap();
        assert_eq!(
            db.use_refresh("r1", "other", 1).unwrap(),
            RefreshOutcome::WrongClient
        );
        assert!(matches!(
            db.use_refresh("r1", "c", 1).unwrap(),
            RefreshOutcome::Valid(_)
        ));
        db.add_refresh("r2", &gid, 100).unwrap();
        assert_eq!(
            db.use_refresh("r1", "c", 2).unwrap(),
            RefreshOutcome::Replayed(gid.clone())
        );
        assert_eq!(db.revoked_grants().unwrap(), vec![gid]);
        assert_eq!(
            db.use_refresh("r2", "c", 3).unwrap(),
            RefreshOutcome::Invalid,
            "the family is dead"
        );
    }

    #[test]
    fn expired_refresh_tokens_do_not_work() {
        let mut db = AuthDb::open(&Location::Memory).unwrap();
        let gid = db.create_grant("c", "mcp:tools", "r", 0).unwrap();
        db.add_refresh("r1", &gid, 10).unwrap();
        assert_eq!(
            db.use_refresh("r1", "c", 10).unwrap(),
            RefreshOutcome::Invalid
        );
    }

    #[test]
    fn the_key_and_clients_persist_and_clients_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Dir(dir.path().to_path_buf());
        let key = AuthDb::open(&location).unwrap().signing_key().unwrap();
        assert_eq!(AuthDb::open(&location).unwrap().signing_key().unwrap(), key);
        let mut db = AuthDb::open(&location).unwrap();
        for i in 0..3 {
            db.register_client(
                &RegisteredClient {
                    client_id: format!("c{i}"),
                    secret_hash: None,
                    client_name: None,
                    redirect_uris: vec!["https://x/cb".into()],
                    auth_method: "none".into(),
                },
                2,
                i,
            )
            .unwrap();
        }
        assert!(db.client("c0").unwrap().is_none(), "the oldest is dropped");
        assert_eq!(
            db.client("c2").unwrap().unwrap().redirect_uris,
            ["https://x/cb"]
        );
    }
}
