//! Durable OAuth state in `oauth.db` next to the task database, on its own SQLite thread: the
//! token signing key (when not configured), grants (one per authorization, the unit that
//! revocation kills), refresh tokens (stored as hashes, single use), dynamically registered
//! clients, and the revocation log. Tokens and grants survive a restart: a Claude.ai user is not
//! logged out by a redeploy.
//!
//! The revocation log is how several bridges on one data directory agree: every revocation
//! appends a row with an increasing sequence number (SQLite serializes writers, so numbers are
//! committed in order), and each bridge reads the rows after the last one it has seen.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::tokens::{hash, random_bytes};
use crate::sqlite::{self, Location, StoreError};

/// The database file inside the data directory.
pub const DB_FILE: &str = "oauth.db";
/// 2: the revocation log and `clients.last_used_at`.
const SCHEMA_VERSION: i64 = 2;

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

/// A signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// Its id ([`super::tokens::key_id`]).
    pub kid: String,
    /// The key.
    pub secret: Vec<u8>,
    /// When it was made (ms since the epoch).
    pub created_at: i64,
    /// When replicas start signing with it (ms).
    pub active_at: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("active_at", &self.active_at)
            .finish_non_exhaustive()
    }
}

/// What became of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Stored (unused registrations past the cap were dropped, oldest first).
    Stored,
    /// Not stored: the cap is reached and every registered client is in use.
    Full,
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
        sqlite::migrate_with(
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
            CREATE INDEX IF NOT EXISTS grants_by_client ON grants(client_id);
            CREATE TABLE IF NOT EXISTS clients (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                client_id TEXT NOT NULL UNIQUE,
                secret_hash TEXT,
                client_name TEXT,
                redirect_uris TEXT NOT NULL,
                auth_method TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                last_used_at INTEGER
            );
            CREATE TABLE IF NOT EXISTS revocations (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                grant_id TEXT NOT NULL,
                revoked_at INTEGER NOT NULL
            );",
            |tx, found| {
                if found < 2 {
                    let has_last_used: bool = tx.query_row(
                        "SELECT count(*) > 0 FROM pragma_table_info('clients') WHERE name = 'last_used_at'",
                        [],
                        |r| r.get(0),
                    )?;
                    if !has_last_used {
                        tx.execute_batch("ALTER TABLE clients ADD COLUMN last_used_at INTEGER;")?;
                    }
                    // Grants revoked by a version 1 bridge enter the log.
                    tx.execute_batch(
                        "INSERT INTO revocations (grant_id, revoked_at)
                         SELECT id, revoked_at FROM grants
                         WHERE revoked_at IS NOT NULL
                           AND id NOT IN (SELECT grant_id FROM revocations)
                         ORDER BY revoked_at;",
                    )?;
                }
                Ok(())
            },
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
    /// its access tokens. The revocation is appended to the log in the same transaction,
    /// and every bridge on this data directory reads it from the revocation log.
    pub fn revoke_grant(&mut self, grant_id: &str, now: i64) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let changed = tx.execute(
            "UPDATE grants SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
            params![grant_id, now],
        )?;
        if changed > 0 {
            tx.execute(
                "INSERT INTO revocations (grant_id, revoked_at) VALUES (?1, ?2)",
                params![grant_id, now],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Ids of revoked grants whose tokens could still be presented.
    pub fn revoked_grants(&mut self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .revocations_since(0)?
            .into_iter()
            .map(|(_, id)| id)
            .collect())
    }

    /// The revocation log after sequence number `seq`, oldest first: (sequence, grant id). One
    /// primary-key range read; empty (and cheap) when nothing was revoked since.
    pub fn revocations_since(&mut self, seq: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, grant_id FROM revocations WHERE seq > ?1 ORDER BY seq")?;
        let rows = stmt.query_map(params![seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Notes that a registered client was just used (approved, or given tokens); no effect for
    /// other client ids.
    pub fn touch_client(&mut self, client_id: &str, now: i64) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE clients SET last_used_at = ?2 WHERE client_id = ?1",
            params![client_id, now],
        )?;
        Ok(())
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
        self.conn.execute(
            "DELETE FROM revocations WHERE revoked_at < ?1",
            params![now - keep_ms],
        )?;
        Ok(())
    }

    /// Stores a registered client. Past `max` registrations, the oldest *unused* ones are
    /// dropped: a client is in use while one of its grants, not revoked, has a refresh token
    /// not yet used or expired, or if it was used (approved or given tokens) at or after
    /// `recent` (ms). A client in use is never dropped for a new one; when all are in use the
    /// new registration is refused ([`Registration::Full`]) and nothing changes.
    pub fn register_client(
        &mut self,
        client: &RegisteredClient,
        max: usize,
        now: i64,
        recent: i64,
    ) -> Result<Registration, StoreError> {
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
        let count: i64 = tx.query_row("SELECT count(*) FROM clients", [], |r| r.get(0))?;
        let excess = count - max as i64;
        if excess > 0 {
            tx.execute(
                "DELETE FROM clients WHERE seq IN (
                    SELECT c.seq FROM clients c
                    WHERE c.client_id != ?1
                      AND (c.last_used_at IS NULL OR c.last_used_at < ?3)
                      AND NOT EXISTS (
                        SELECT 1 FROM grants g JOIN refresh_tokens r ON r.grant_id = g.id
                        WHERE g.client_id = c.client_id AND g.revoked_at IS NULL
                          AND r.used_at IS NULL AND r.expires_at > ?2)
                    ORDER BY c.seq LIMIT ?4)",
                params![client.client_id, now, recent, excess],
            )?;
            let count: i64 = tx.query_row("SELECT count(*) FROM clients", [], |r| r.get(0))?;
            if count > max as i64 {
                // Dropping the transaction rolls the insert back.
                return Ok(Registration::Full);
            }
        }
        tx.commit()?;
        Ok(Registration::Stored)
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

    fn registered(id: &str) -> RegisteredClient {
        RegisteredClient {
            client_id: id.into(),
            secret_hash: None,
            client_name: None,
            redirect_uris: vec!["https://x/cb".into()],
            auth_method: "none".into(),
        }
    }

    #[test]
    fn a_registration_flood_drops_only_unused_clients() {
        let mut db = AuthDb::open(&Location::Memory).unwrap();
        let hour = 3_600_000;
        // "live" has a grant with a live refresh token; "recent" was used a minute ago; "stale"
        // has only a spent grant and was used long ago.
        for (i, id) in ["live", "recent", "stale"].iter().enumerate() {
            assert_eq!(
                db.register_client(&registered(id), 3, i as i64, 0).unwrap(),
                Registration::Stored
            );
        }
        let g = db.create_grant("live", "mcp:tools", "r", 0).unwrap();
        db.add_refresh("live-refresh", &g, 100 * hour).unwrap();
        let old = db.create_grant("stale", "mcp:tools", "r", 0).unwrap();
        db.add_refresh("stale-refresh", &old, 100 * hour).unwrap();
        db.revoke_grant(&old, 1).unwrap();
        db.touch_client("stale", 1).unwrap();
        let now = 10 * hour;
        db.touch_client("recent", now - 60_000).unwrap();
        let recent = now - hour;
        for i in 0..5 {
            assert_eq!(
                db.register_client(&registered(&format!("flood{i}")), 3, now + i, recent)
                    .unwrap(),
                Registration::Stored
            );
        }
        assert!(
            db.client("live").unwrap().is_some(),
            "a live grant keeps it"
        );
        assert!(
            db.client("recent").unwrap().is_some(),
            "recent use keeps it"
        );
        assert!(db.client("stale").unwrap().is_none());
        assert!(db.client("flood3").unwrap().is_none(), "unused: dropped");
        assert!(db.client("flood4").unwrap().is_some(), "the newest stays");
        // Once every client is in use, a new registration is refused and nothing changes.
        db.touch_client("flood4", now).unwrap();
        assert_eq!(
            db.register_client(&registered("late"), 3, now + 9, recent)
                .unwrap(),
            Registration::Full
        );
        assert!(db.client("late").unwrap().is_none());
        for id in ["live", "recent", "flood4"] {
            assert!(db.client(id).unwrap().is_some(), "{id}");
        }
        // The live client's refresh token used: its grant now lives in the new token.
        assert!(matches!(
            db.use_refresh("live-refresh", "live", now).unwrap(),
            RefreshOutcome::Valid(_)
        ));
    }

    #[test]
    fn revocations_are_logged_in_order_once() {
        let mut db = AuthDb::open(&Location::Memory).unwrap();
        let a = db.create_grant("c", "mcp:tools", "r", 0).unwrap();
        let b = db.create_grant("c", "mcp:tools", "r", 0).unwrap();
        assert!(db.revocations_since(0).unwrap().is_empty());
        db.revoke_grant(&a, 1).unwrap();
        db.revoke_grant(&a, 2).unwrap();
        db.revoke_grant(&b, 3).unwrap();
        let log = db.revocations_since(0).unwrap();
        assert_eq!(
            log.iter().map(|(_, g)| g.clone()).collect::<Vec<_>>(),
            [a.clone(), b.clone()]
        );
        assert_eq!(db.revocations_since(log[0].0).unwrap(), log[1..]);
        assert!(db.revocations_since(log[1].0).unwrap().is_empty());
        db.revoke_grant("no-such-grant", 4).unwrap();
        assert_eq!(db.revoked_grants().unwrap(), [a, b]);
    }

    #[test]
    fn a_version_1_database_is_upgraded_with_its_revocations() {
        let dir = tempfile::tempdir().unwrap();
        {
            let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
            conn.execute_batch(
                "CREATE TABLE keys (name TEXT PRIMARY KEY, value BLOB NOT NULL);
                 CREATE TABLE grants (id TEXT PRIMARY KEY, client_id TEXT NOT NULL,
                   scope TEXT NOT NULL, resource TEXT NOT NULL, created_at INTEGER NOT NULL,
                   revoked_at INTEGER);
                 CREATE TABLE refresh_tokens (hash TEXT PRIMARY KEY, grant_id TEXT NOT NULL,
                   expires_at INTEGER NOT NULL, used_at INTEGER);
                 CREATE TABLE clients (seq INTEGER PRIMARY KEY AUTOINCREMENT,
                   client_id TEXT NOT NULL UNIQUE, secret_hash TEXT, client_name TEXT,
                   redirect_uris TEXT NOT NULL, auth_method TEXT NOT NULL,
                   created_at INTEGER NOT NULL);
                 INSERT INTO grants VALUES ('g1', 'c', 'mcp:tools', 'r', 0, 5);
                 INSERT INTO grants VALUES ('g2', 'c', 'mcp:tools', 'r', 0, NULL);
                 INSERT INTO clients (client_id, redirect_uris, auth_method, created_at)
                   VALUES ('old', '[\"https://x/cb\"]', 'none', 0);
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let location = Location::Dir(dir.path().to_path_buf());
        let mut db = AuthDb::open(&location).unwrap();
        assert_eq!(db.revoked_grants().unwrap(), ["g1"]);
        db.touch_client("old", 7).unwrap();
        assert!(db.client("old").unwrap().is_some());
        drop(db);
        // Opening again changes nothing.
        let mut db = AuthDb::open(&location).unwrap();
        assert_eq!(db.revoked_grants().unwrap(), ["g1"]);
    }
}
