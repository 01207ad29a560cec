//! OAuth state in PostgreSQL, shared by every replica on the database: what `oauth.db` holds on
//! one machine (signing keys, grants, refresh tokens, registered clients, the revocation log)
//! and what one process keeps in memory (codes not yet redeemed, open consent pages, redeemed
//! codes for replay detection), so that any replica can carry on any step of a login.
//!
//! - **Single use under races.** A refresh token is used by one conditional `UPDATE … WHERE
//!   used_at IS NULL`: of two refreshes landing on two replicas at once, PostgreSQL's row lock
//!   lets one win; the other finds it used, which is a replay and revokes the grant. A code is
//!   taken by `DELETE … RETURNING` and entered among the redeemed codes in the same transaction,
//!   so that a second redemption anywhere finds it in one table or the other.
//! - **Revocations in commit order.** A revocation appends to `oauth_revocations` under a
//!   transaction-scoped advisory lock, so that sequence numbers become visible in order and a
//!   replica reading "everything after n" never skips one; it is also announced with
//!   `pg_notify('openclaw_mcp_revoke', grant)` so that replicas hear it at once.
//! - **Caps of codes and consent pages** (the same as in memory) hold across replicas: an insert
//!   takes an advisory lock, refuses an address past its cap, and drops the client's oldest
//!   entries, then the oldest of all.

use std::sync::Arc;

use tokio_postgres::GenericClient;

use super::{
    pending::{Caps, PendingError, Replay},
    store::{Grant, RefreshOutcome, RegisteredClient, Registration, StoredKey},
    tokens::hash,
};
use crate::{
    net::AddrBucket,
    pg::{Component, Database, db_error as pg_error},
    sqlite::StoreError,
};

/// 1: keys, grants, refresh tokens, clients, revocations, pending codes and consents, redeemed
/// codes.
pub const SCHEMA_VERSION: i32 = 1;
/// The channel revocations are announced on (payload: the grant id).
pub const REVOKE_CHANNEL: &str = "openclaw_mcp_revoke";
/// How an error starts when the tables vanished under a running bridge.
const SCHEMA_GONE: &str = "the OAuth tables are missing";
/// Connections of one replica's OAuth pool (token checks never touch it: they read memory).
const POOL_SIZE: usize = 4;
/// Advisory lock keys (arbitrary, fixed): revocations, pending inserts, client registrations.
const REVOKE_LOCK: i64 = 0x6f63_6d5f_7276_6b01;
const PENDING_LOCK: i64 = 0x6f63_6d5f_706e_6401;
const CLIENT_LOCK: i64 = 0x6f63_6d5f_636c_6901;
const KEY_LOCK: i64 = 0x6f63_6d5f_6b65_7901;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_keys (
    kid TEXT PRIMARY KEY,
    secret BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    active_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_grants (
    id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    resource TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX IF NOT EXISTS oauth_grants_by_client ON openclaw_mcp.oauth_grants (client_id);
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_refresh (
    hash TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX IF NOT EXISTS oauth_refresh_by_grant ON openclaw_mcp.oauth_refresh (grant_id);
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_clients (
    seq BIGSERIAL PRIMARY KEY,
    client_id TEXT NOT NULL UNIQUE,
    secret_hash TEXT,
    client_name TEXT,
    redirect_uris TEXT NOT NULL,
    auth_method TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT
);
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_revocations (
    seq BIGSERIAL PRIMARY KEY,
    grant_id TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_pending (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    seq BIGSERIAL,
    client_id TEXT NOT NULL,
    addr TEXT,
    expires_at BIGINT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS oauth_pending_by_client ON openclaw_mcp.oauth_pending (kind, client_id, seq);
CREATE INDEX IF NOT EXISTS oauth_pending_by_addr ON openclaw_mcp.oauth_pending (kind, addr);
CREATE INDEX IF NOT EXISTS oauth_pending_by_seq ON openclaw_mcp.oauth_pending (kind, seq);
CREATE TABLE IF NOT EXISTS openclaw_mcp.oauth_redeemed (
    hash TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL,
    grant_id TEXT,
    replayed BOOLEAN NOT NULL DEFAULT false
);
";

const COMPONENT: Component = Component {
    name: "oauth",
    version: SCHEMA_VERSION,
    schema: SCHEMA,
    gone: SCHEMA_GONE,
};

fn db_error(e: tokio_postgres::Error) -> StoreError {
    pg_error(e, SCHEMA_GONE)
}

/// The two kinds of entries in `oauth_pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An authorization code (by hash) not yet redeemed.
    Code,
    /// An open consent page (by id).
    Consent,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Code => "code",
            Kind::Consent => "consent",
        }
    }
}

/// The OAuth store on PostgreSQL.
pub struct PgAuth {
    db: Database,
    /// A connection of its own for the reads that keep token checks open (the revocation log,
    /// the signing keys): requests waiting on a lock or a busy pool never delay them, so that
    /// they cannot make every token check fail closed.
    sync: Database,
}

impl PgAuth {
    /// The store on the database at `url` (connected lazily).
    pub fn start(url: &str) -> Result<Arc<PgAuth>, StoreError> {
        Ok(Arc::new(PgAuth {
            db: Database::start(url, POOL_SIZE, &COMPONENT)?,
            sync: Database::start(url, 1, &COMPONENT)?,
        }))
    }

    /// The connection settings (for the revocation listener).
    pub fn config(&self) -> &tokio_postgres::Config {
        self.db.config()
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.db.client().await
    }

    fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.db.seen(result)
    }

    /// Every signing key, oldest first. When there is none, one is made (a random 32-byte key,
    /// active at once): the first replica to ask creates it, the others find it.
    pub async fn signing_keys(
        &self,
        fresh: Vec<u8>,
        now: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let result = async {
            let mut client = self.client().await?;
            let kid = super::tokens::key_id(&fresh);
            // Under a lock: replicas starting together make one first key, not one each.
            let tx = client.transaction().await.map_err(db_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&KEY_LOCK])
                .await
                .map_err(db_error)?;
            tx.execute(
                "INSERT INTO openclaw_mcp.oauth_keys (kid, secret, created_at, active_at)
                 SELECT $1, $2, $3, $3
                 WHERE NOT EXISTS (SELECT 1 FROM openclaw_mcp.oauth_keys)",
                &[&kid, &fresh, &now],
            )
            .await
            .map_err(db_error)?;
            let keys = self.keys(&*tx).await?;
            tx.commit().await.map_err(db_error)?;
            Ok(keys)
        }
        .await;
        self.seen(result)
    }

    async fn keys(&self, client: &impl GenericClient) -> Result<Vec<StoredKey>, StoreError> {
        let rows = client
            .query(
                "SELECT kid, secret, created_at, active_at FROM openclaw_mcp.oauth_keys
                 ORDER BY active_at, created_at",
                &[],
            )
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .map(|r| StoredKey {
                kid: r.get(0),
                secret: r.get(1),
                created_at: r.get(2),
                active_at: r.get(3),
            })
            .collect())
    }

    /// Adds a signing key that replicas start signing with at `active_at` (they verify with it
    /// from the moment they read it). Keys whose successor became active more than `keep_ms`
    /// ago can verify no live token and are deleted.
    pub async fn rotate_key(
        &self,
        secret: Vec<u8>,
        now: i64,
        active_at: i64,
        keep_ms: i64,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let result = async {
            let client = self.client().await?;
            let kid = super::tokens::key_id(&secret);
            client
                .execute(
                    "INSERT INTO openclaw_mcp.oauth_keys (kid, secret, created_at, active_at)
                     VALUES ($1, $2, $3, $4)",
                    &[&kid, &secret, &now, &active_at],
                )
                .await
                .map_err(db_error)?;
            self.prune_keys(&**client, now, keep_ms).await?;
            self.keys(&**client).await
        }
        .await;
        self.seen(result)
    }

    async fn prune_keys(
        &self,
        client: &impl GenericClient,
        now: i64,
        keep_ms: i64,
    ) -> Result<(), StoreError> {
        client
            .execute(
                "DELETE FROM openclaw_mcp.oauth_keys k WHERE EXISTS (
                    SELECT 1 FROM openclaw_mcp.oauth_keys n
                    WHERE n.active_at > k.active_at AND n.active_at <= $1::bigint - $2::bigint)",
                &[&now, &keep_ms],
            )
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// Every signing key (the periodic read of each replica).
    pub async fn read_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let result = async {
            let client = self.sync.client().await?;
            self.keys(&**client).await
        }
        .await;
        self.sync.seen(result)
    }

    /// Records a new grant; returns its id.
    pub async fn create_grant(
        &self,
        client_id: &str,
        scope: &str,
        resource: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        let id = uuid::Uuid::new_v4().to_string();
        let result = async {
            self.client()
                .await?
                .execute(
                    "INSERT INTO openclaw_mcp.oauth_grants (id, client_id, scope, resource, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&id, &client_id, &scope, &resource, &now],
                )
                .await
                .map_err(db_error)
        }
        .await;
        self.seen(result).map(|_| id)
    }

    /// Stores a refresh token (by hash) of a grant, and notes the client as used.
    pub async fn add_refresh(
        &self,
        token: &str,
        grant_id: &str,
        expires_at: i64,
        client_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let result = async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO openclaw_mcp.oauth_refresh (hash, grant_id, expires_at) VALUES ($1, $2, $3)",
                    &[&hash(token), &grant_id, &expires_at],
                )
                .await
                .map_err(db_error)?;
            touch(&**client, client_id, now).await
        }
        .await;
        self.seen(result)
    }

    async fn refresh_row(
        &self,
        client: &impl GenericClient,
        token_hash: &str,
    ) -> Result<Option<(Grant, i64, Option<i64>, Option<i64>)>, StoreError> {
        Ok(client
            .query_opt(
                "SELECT g.id, g.client_id, g.scope, g.resource, r.expires_at, r.used_at, g.revoked_at
                 FROM openclaw_mcp.oauth_refresh r JOIN openclaw_mcp.oauth_grants g ON g.id = r.grant_id
                 WHERE r.hash = $1",
                &[&token_hash],
            )
            .await
            .map_err(db_error)?
            .map(|r| {
                (
                    Grant {
                        id: r.get(0),
                        client_id: r.get(1),
                        scope: r.get(2),
                        resource: r.get(3),
                    },
                    r.get(4),
                    r.get(5),
                    r.get(6),
                )
            }))
    }

    /// Uses a refresh token once. A second use, here or on another replica, even at the same
    /// moment, revokes its whole grant.
    pub async fn use_refresh(
        &self,
        token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        let result = async {
            let client = self.client().await?;
            let token_hash = hash(token);
            let Some((grant, expires_at, used_at, revoked_at)) =
                self.refresh_row(&**client, &token_hash).await?
            else {
                return Ok(RefreshOutcome::Invalid);
            };
            if grant.client_id != client_id {
                return Ok(RefreshOutcome::WrongClient);
            }
            if revoked_at.is_some() {
                return Ok(RefreshOutcome::Invalid);
            }
            if used_at.is_none() && expires_at <= now {
                return Ok(RefreshOutcome::Invalid);
            }
            let changed = if used_at.is_some() {
                0
            } else {
                client
                    .execute(
                        "UPDATE openclaw_mcp.oauth_refresh SET used_at = $2 WHERE hash = $1 AND used_at IS NULL",
                        &[&token_hash, &now],
                    )
                    .await
                    .map_err(db_error)?
            };
            if changed == 0 {
                drop(client);
                self.revoke_grant(&grant.id, now).await?;
                return Ok(RefreshOutcome::Replayed(grant.id));
            }
            Ok(RefreshOutcome::Valid(grant))
        }
        .await;
        self.seen(result)
    }

    /// The grant of a refresh token, whatever its state (for revocation).
    pub async fn grant_by_refresh(&self, token: &str) -> Result<Option<Grant>, StoreError> {
        let result = async {
            let client = self.client().await?;
            Ok(self
                .refresh_row(&**client, &hash(token))
                .await?
                .map(|row| row.0))
        }
        .await;
        self.seen(result)
    }

    /// Revokes a grant: logged (in commit order) and announced to every replica at commit.
    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> Result<(), StoreError> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REVOKE_LOCK])
                .await
                .map_err(db_error)?;
            let changed = tx
                .execute(
                    "UPDATE openclaw_mcp.oauth_grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                    &[&grant_id, &now],
                )
                .await
                .map_err(db_error)?;
            if changed > 0 {
                tx.execute(
                    "INSERT INTO openclaw_mcp.oauth_revocations (grant_id, revoked_at) VALUES ($1, $2)",
                    &[&grant_id, &now],
                )
                .await
                .map_err(db_error)?;
                tx.execute("SELECT pg_notify($1, $2)", &[&REVOKE_CHANNEL, &grant_id])
                    .await
                    .map_err(db_error)?;
            }
            tx.commit().await.map_err(db_error)
        }
        .await;
        self.seen(result)
    }

    /// The revocation log after sequence number `seq`, oldest first; all of it when its numbers
    /// went back below `seq` (the database restored, the tables made again): a reader that kept
    /// asking for "after `seq`" would never see the new entries.
    pub async fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String)>, StoreError> {
        let result = async {
            Ok(self
                .sync
                .client()
                .await?
                .query(
                    "SELECT seq, grant_id FROM openclaw_mcp.oauth_revocations
                     WHERE seq > $1 OR $1 > (SELECT coalesce(max(seq), 0) FROM openclaw_mcp.oauth_revocations)
                     ORDER BY seq",
                    &[&seq],
                )
                .await
                .map_err(db_error)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        }
        .await;
        self.sync.seen(result)
    }

    /// Notes that a registered client was just used.
    pub async fn touch_client(&self, client_id: &str, now: i64) -> Result<(), StoreError> {
        let result = async { touch(&**self.client().await?, client_id, now).await }.await;
        self.seen(result)
    }

    /// Deletes what can no longer be used (as [`super::store::AuthDb::prune`]), expired codes,
    /// consent pages and redemptions, and signing keys retired for longer than `keep_ms`.
    pub async fn prune(&self, now: i64, keep_ms: i64) -> Result<(), StoreError> {
        let result = async {
            let client = self.client().await?;
            let cutoff = now - keep_ms;
            client
                .batch_execute(&format!(
                    "DELETE FROM openclaw_mcp.oauth_refresh WHERE expires_at < {cutoff};
                     DELETE FROM openclaw_mcp.oauth_grants WHERE (revoked_at IS NOT NULL AND revoked_at < {cutoff})
                        OR (created_at < {cutoff} AND id NOT IN (SELECT grant_id FROM openclaw_mcp.oauth_refresh));
                     DELETE FROM openclaw_mcp.oauth_revocations WHERE revoked_at < {cutoff};
                     DELETE FROM openclaw_mcp.oauth_pending WHERE expires_at <= {now};
                     DELETE FROM openclaw_mcp.oauth_redeemed WHERE expires_at <= {now};"
                ))
                .await
                .map_err(db_error)?;
            self.prune_keys(&**client, now, keep_ms).await
        }
        .await;
        self.seen(result)
    }

    /// Stores a registered client, under the same cap and policy as
    /// [`super::store::AuthDb::register_client`].
    pub async fn register_client(
        &self,
        c: &RegisteredClient,
        max: usize,
        now: i64,
        recent: i64,
    ) -> Result<Registration, StoreError> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CLIENT_LOCK])
                .await
                .map_err(db_error)?;
            let uris = serde_json::to_string(&c.redirect_uris).unwrap_or_default();
            tx.execute(
                "INSERT INTO openclaw_mcp.oauth_clients
                    (client_id, secret_hash, client_name, redirect_uris, auth_method, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &c.client_id,
                    &c.secret_hash,
                    &c.client_name,
                    &uris,
                    &c.auth_method,
                    &now,
                ],
            )
            .await
            .map_err(db_error)?;
            let count: i64 = tx
                .query_one("SELECT count(*) FROM openclaw_mcp.oauth_clients", &[])
                .await
                .map_err(db_error)?
                .get(0);
            let excess = count - max as i64;
            if excess > 0 {
                tx.execute(
                    "DELETE FROM openclaw_mcp.oauth_clients WHERE seq IN (
                        SELECT c.seq FROM openclaw_mcp.oauth_clients c
                        WHERE c.client_id != $1
                          AND (c.last_used_at IS NULL OR c.last_used_at < $3)
                          AND NOT EXISTS (
                            SELECT 1 FROM openclaw_mcp.oauth_grants g
                            JOIN openclaw_mcp.oauth_refresh r ON r.grant_id = g.id
                            WHERE g.client_id = c.client_id AND g.revoked_at IS NULL
                              AND r.used_at IS NULL AND r.expires_at > $2)
                        ORDER BY c.seq LIMIT $4)",
                    &[&c.client_id, &now, &recent, &excess],
                )
                .await
                .map_err(db_error)?;
                let count: i64 = tx
                    .query_one("SELECT count(*) FROM openclaw_mcp.oauth_clients", &[])
                    .await
                    .map_err(db_error)?
                    .get(0);
                if count > max as i64 {
                    return Ok(Registration::Full);
                }
            }
            tx.commit().await.map_err(db_error)?;
            Ok(Registration::Stored)
        }
        .await;
        self.seen(result)
    }

    /// A registered client.
    pub async fn client_by_id(
        &self,
        client_id: &str,
    ) -> Result<Option<RegisteredClient>, StoreError> {
        let result = async {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "SELECT client_id, secret_hash, client_name, redirect_uris, auth_method
                     FROM openclaw_mcp.oauth_clients WHERE client_id = $1",
                    &[&client_id],
                )
                .await
                .map_err(db_error)?
                .map(|r| RegisteredClient {
                    client_id: r.get(0),
                    secret_hash: r.get(1),
                    client_name: r.get(2),
                    redirect_uris: serde_json::from_str(r.get::<_, &str>(3)).unwrap_or_default(),
                    auth_method: r.get(4),
                }))
        }
        .await;
        self.seen(result)
    }

    /// Adds a pending entry (`body`: its JSON) valid until `expires_at`, under `caps` counted
    /// across replicas: refused only when `addr` is full; otherwise the client's oldest entries,
    /// then the oldest of all, make room. Returns how many live entries were dropped.
    #[allow(clippy::too_many_arguments)]
    pub async fn pending_insert(
        &self,
        kind: Kind,
        key: &str,
        client_id: &str,
        addr: Option<AddrBucket>,
        expires_at: i64,
        body: &str,
        caps: Caps,
        now: i64,
    ) -> Result<Result<usize, PendingError>, StoreError> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            let kind = kind.as_str();
            let addr = addr.map(|a| a.to_string());
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PENDING_LOCK])
                .await
                .map_err(db_error)?;
            tx.execute(
                "DELETE FROM openclaw_mcp.oauth_pending WHERE kind = $1 AND (expires_at <= $2 OR key = $3)",
                &[&kind, &now, &key],
            )
            .await
            .map_err(db_error)?;
            if let Some(a) = &addr {
                let n: i64 = tx
                    .query_one(
                        "SELECT count(*) FROM openclaw_mcp.oauth_pending WHERE kind = $1 AND addr = $2",
                        &[&kind, a],
                    )
                    .await
                    .map_err(db_error)?
                    .get(0);
                if n >= caps.per_addr as i64 {
                    return Ok(Err(PendingError::AddressFull));
                }
            }
            let per_client = caps.per_client.max(1) as i64;
            let total = caps.total.max(1) as i64;
            let mut dropped = tx
                .execute(
                    "DELETE FROM openclaw_mcp.oauth_pending WHERE kind = $1 AND seq IN (
                        SELECT seq FROM openclaw_mcp.oauth_pending WHERE kind = $1 AND client_id = $2
                        ORDER BY seq DESC OFFSET $3)",
                    &[&kind, &client_id, &(per_client - 1)],
                )
                .await
                .map_err(db_error)?;
            dropped += tx
                .execute(
                    "DELETE FROM openclaw_mcp.oauth_pending WHERE kind = $1 AND seq IN (
                        SELECT seq FROM openclaw_mcp.oauth_pending WHERE kind = $1
                        ORDER BY seq DESC OFFSET $2)",
                    &[&kind, &(total - 1)],
                )
                .await
                .map_err(db_error)?;
            tx.execute(
                "INSERT INTO openclaw_mcp.oauth_pending (kind, key, client_id, addr, expires_at, body)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[&kind, &key, &client_id, &addr, &expires_at, &body],
            )
            .await
            .map_err(db_error)?;
            tx.commit().await.map_err(db_error)?;
            Ok(Ok(dropped as usize))
        }
        .await;
        self.seen(result)
    }

    /// Takes the code with this hash if it is pending and live, entering it among the redeemed
    /// codes (until `expires_at` of the code) in the same transaction; otherwise what a replay
    /// of it finds (marking the redemption as replayed).
    pub async fn take_code(
        &self,
        code_hash: &str,
        now: i64,
    ) -> Result<(Option<String>, Replay), StoreError> {
        let result = async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(db_error)?;
            let taken = tx
                .query_opt(
                    "DELETE FROM openclaw_mcp.oauth_pending WHERE kind = 'code' AND key = $1
                     RETURNING body, expires_at",
                    &[&code_hash],
                )
                .await
                .map_err(db_error)?;
            if let Some(row) = taken {
                let expires_at: i64 = row.get(1);
                if expires_at > now {
                    tx.execute(
                        "INSERT INTO openclaw_mcp.oauth_redeemed (hash, expires_at) VALUES ($1, $2)
                         ON CONFLICT (hash) DO UPDATE SET expires_at = EXCLUDED.expires_at,
                            grant_id = NULL, replayed = false",
                        &[&code_hash, &expires_at],
                    )
                    .await
                    .map_err(db_error)?;
                    tx.commit().await.map_err(db_error)?;
                    return Ok((Some(row.get(0)), Replay::Unknown));
                }
            }
            let replay = tx
                .query_opt(
                    "UPDATE openclaw_mcp.oauth_redeemed SET replayed = true
                     WHERE hash = $1 AND expires_at > $2 RETURNING grant_id",
                    &[&code_hash, &now],
                )
                .await
                .map_err(db_error)?
                .map(|r| r.get::<_, Option<String>>(0));
            tx.commit().await.map_err(db_error)?;
            Ok((
                None,
                match replay {
                    None => Replay::Unknown,
                    Some(None) => Replay::Pending,
                    Some(Some(grant)) => Replay::Revoke(grant),
                },
            ))
        }
        .await;
        self.seen(result)
    }

    /// The redemption of `code_hash` created `grant`; `true` when a replay came meanwhile.
    pub async fn finish_code(&self, code_hash: &str, grant: &str) -> Result<bool, StoreError> {
        let result = async {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "UPDATE openclaw_mcp.oauth_redeemed SET grant_id = $2 WHERE hash = $1 RETURNING replayed",
                    &[&code_hash, &grant],
                )
                .await
                .map_err(db_error)?
                .is_some_and(|r| r.get::<_, bool>(0)))
        }
        .await;
        self.seen(result)
    }

    /// The redemption of `code_hash` failed: nothing was issued.
    pub async fn fail_code(&self, code_hash: &str) -> Result<(), StoreError> {
        let result = async {
            self.client()
                .await?
                .execute(
                    "DELETE FROM openclaw_mcp.oauth_redeemed WHERE hash = $1",
                    &[&code_hash],
                )
                .await
                .map_err(db_error)
                .map(drop)
        }
        .await;
        self.seen(result)
    }

    /// An open consent page: its body and failed attempts, if live at `now`.
    pub async fn consent(&self, id: &str, now: i64) -> Result<Option<(String, u32)>, StoreError> {
        let result = async {
            Ok(self
                .client()
                .await?
                .query_opt(
                    "SELECT body, attempts FROM openclaw_mcp.oauth_pending
                     WHERE kind = 'consent' AND key = $1 AND expires_at > $2",
                    &[&id, &now],
                )
                .await
                .map_err(db_error)?
                .map(|r| (r.get(0), r.get::<_, i32>(1).max(0) as u32)))
        }
        .await;
        self.seen(result)
    }

    /// One more wrong password on a consent page: the attempts so far (0 if it is gone); the
    /// page is deleted at `max`.
    pub async fn consent_failed(&self, id: &str, max: u32) -> Result<u32, StoreError> {
        let result = async {
            let client = self.client().await?;
            let attempts = client
                .query_opt(
                    "UPDATE openclaw_mcp.oauth_pending SET attempts = attempts + 1
                     WHERE kind = 'consent' AND key = $1 RETURNING attempts",
                    &[&id],
                )
                .await
                .map_err(db_error)?
                .map_or(max as i32, |r| r.get::<_, i32>(0))
                .max(0) as u32;
            if attempts >= max {
                self.discard_on(&**client, Kind::Consent, id).await?;
            }
            Ok(attempts)
        }
        .await;
        self.seen(result)
    }

    /// Deletes a pending entry; `true` if it was there (so that of two approvals of one consent
    /// page, on two replicas, one goes on).
    pub async fn discard(&self, kind: Kind, key: &str) -> Result<bool, StoreError> {
        let result = async { self.discard_on(&**self.client().await?, kind, key).await }.await;
        self.seen(result)
    }

    async fn discard_on(
        &self,
        client: &impl GenericClient,
        kind: Kind,
        key: &str,
    ) -> Result<bool, StoreError> {
        Ok(client
            .execute(
                "DELETE FROM openclaw_mcp.oauth_pending WHERE kind = $1 AND key = $2",
                &[&kind.as_str(), &key],
            )
            .await
            .map_err(db_error)?
            > 0)
    }
}

async fn touch(client: &impl GenericClient, client_id: &str, now: i64) -> Result<(), StoreError> {
    client
        .execute(
            "UPDATE openclaw_mcp.oauth_clients SET last_used_at = $2 WHERE client_id = $1",
            &[&client_id, &now],
        )
        .await
        .map_err(db_error)
        .map(drop)
}
