//! Where the OAuth state lives: `oauth.db` on its own SQLite thread, with codes and consent
//! pages in this process's memory (one machine), or PostgreSQL for all of it (several replicas).
//! [`AuthStore`] gives both the same async calls; the in-flight state is in [`super::flight`].

use std::sync::{Arc, Mutex};

use super::{
    PendingCode, PendingConsent,
    pending::{Pending, Redeemed},
    pg::PgAuth,
    store::{AuthDb, Grant, RefreshOutcome, RegisteredClient, Registration},
    tokens::random_bytes,
};
use crate::sqlite::{SqliteHandle, StoreError};

/// The OAuth store of one bridge.
// One value per process, never moved around: the size of the in-memory variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum AuthStore {
    /// One machine: `oauth.db` (or memory), codes and consent pages in memory.
    Local {
        /// `oauth.db` on its own thread.
        db: SqliteHandle<AuthDb>,
        /// Outstanding codes by hash.
        codes: Mutex<Pending<PendingCode>>,
        /// Open consent pages by id.
        consents: Mutex<Pending<PendingConsent>>,
        /// Redeemed codes, for replay detection.
        redeemed: Mutex<Redeemed>,
    },
    /// Several replicas: everything in PostgreSQL.
    Shared(Arc<PgAuth>),
}

/// Runs `db.$method(args)` on the SQLite thread (the arguments moved into the closure as
/// owned values, borrowed back with `&`) or `pg.$pg(args)` on PostgreSQL.
macro_rules! both {
    ($self:ident, $method:ident / $pg:ident, [$($s:ident),*], [$($n:ident),*]) => {
        match $self {
            AuthStore::Local { db, .. } => {
                $(let $s = $s.to_owned();)*
                db.exec(move |db| db.$method($(&$s,)* $($n),*)).await
            }
            AuthStore::Shared(pg) => pg.$pg($($s,)* $($n),*).await,
        }
    };
}

impl AuthStore {
    /// The stored signing keys as `(secret, active_at)`, made the first time.
    pub async fn keys(&self, now: i64) -> Result<Vec<(Vec<u8>, i64)>, StoreError> {
        match self {
            AuthStore::Local { db, .. } => Ok(vec![(db.exec(|db| db.signing_key()).await?, 0)]),
            AuthStore::Shared(pg) => Ok(pg
                .signing_keys(random_bytes(32), now)
                .await?
                .into_iter()
                .map(|k| (k.secret, k.active_at))
                .collect()),
        }
    }

    /// Records a new grant; returns its id.
    pub async fn create_grant(
        &self,
        client_id: &str,
        scope: &str,
        resource: &str,
        now: i64,
    ) -> Result<String, StoreError> {
        both!(
            self,
            create_grant / create_grant,
            [client_id, scope, resource],
            [now]
        )
    }

    /// Stores a refresh token of a grant and notes its client as used (never dropped for a new
    /// registration).
    pub async fn add_refresh(
        &self,
        token: &str,
        grant_id: &str,
        expires_at: i64,
        client_id: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        match self {
            AuthStore::Local { db, .. } => {
                let (token, grant_id, client_id) =
                    (token.to_owned(), grant_id.to_owned(), client_id.to_owned());
                db.exec(move |db| {
                    db.add_refresh(&token, &grant_id, expires_at)?;
                    db.touch_client(&client_id, now)
                })
                .await
            }
            AuthStore::Shared(pg) => {
                pg.add_refresh(token, grant_id, expires_at, client_id, now)
                    .await
            }
        }
    }

    /// Uses a refresh token once; a second use revokes its grant.
    pub async fn use_refresh(
        &self,
        token: &str,
        client_id: &str,
        now: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        both!(self, use_refresh / use_refresh, [token, client_id], [now])
    }

    /// The grant of a refresh token, whatever its state.
    pub async fn grant_by_refresh(&self, token: &str) -> Result<Option<Grant>, StoreError> {
        both!(self, grant_by_refresh / grant_by_refresh, [token], [])
    }

    /// Revokes a grant (logged for every bridge on the store).
    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> Result<(), StoreError> {
        both!(self, revoke_grant / revoke_grant, [grant_id], [now])
    }

    /// The revocation log after `seq`.
    pub async fn revocations_since(&self, seq: i64) -> Result<Vec<(i64, String)>, StoreError> {
        both!(self, revocations_since / revocations_since, [], [seq])
    }

    /// Notes that a registered client was just used.
    pub async fn touch_client(&self, client_id: &str, now: i64) -> Result<(), StoreError> {
        both!(self, touch_client / touch_client, [client_id], [now])
    }

    /// Deletes what can no longer be used.
    pub async fn prune(&self, now: i64, keep_ms: i64) -> Result<(), StoreError> {
        both!(self, prune / prune, [], [now, keep_ms])
    }

    /// Stores a registered client under the cap.
    pub async fn register_client(
        &self,
        client: &RegisteredClient,
        max: usize,
        now: i64,
        recent: i64,
    ) -> Result<Registration, StoreError> {
        match self {
            AuthStore::Local { db, .. } => {
                let client = client.clone();
                db.exec(move |db| db.register_client(&client, max, now, recent))
                    .await
            }
            AuthStore::Shared(pg) => pg.register_client(client, max, now, recent).await,
        }
    }

    /// A registered client.
    pub async fn client(&self, client_id: &str) -> Result<Option<RegisteredClient>, StoreError> {
        both!(self, client / client_by_id, [client_id], [])
    }

    /// The PostgreSQL store, when shared.
    pub fn shared(&self) -> Option<&Arc<PgAuth>> {
        match self {
            AuthStore::Shared(pg) => Some(pg),
            AuthStore::Local { .. } => None,
        }
    }
}
