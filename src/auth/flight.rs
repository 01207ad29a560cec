//! Logins in flight: authorization codes not yet redeemed, redeemed codes (replay detection) and
//! open consent pages. In this process's memory on one machine; in PostgreSQL across replicas,
//! so that a code issued by one replica is redeemed at another and a consent page opened on one
//! is answered on another.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{
    Auth, Authorization, PendingCode, PendingConsent,
    backend::AuthStore,
    error::OAuthError,
    pending::{PendingError, Replay},
    pg::Kind,
};
use crate::{net::AddrBucket, sqlite::StoreError, util::now_ms};

/// A consent page as stored in PostgreSQL: the checked request, with its client by id (looked
/// up again when the page is answered; a client's secret is never written here).
#[derive(Serialize, Deserialize)]
struct StoredConsent {
    client_id: String,
    redirect_uri: String,
    redirect_given: bool,
    state: Option<String>,
    challenge: String,
    scope: String,
    resource: String,
}

/// A store failure, logged, as the answer a client sees.
pub(super) fn store_failed(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "OAuth store failed");
    OAuthError::server_error()
}

impl Auth {
    /// Stores a new code (by hash) for `code`'s client, asked for from `addr`: the number of
    /// live codes dropped to make room, or `AddressFull`.
    pub(super) async fn put_code(
        &self,
        code_hash: String,
        addr: Option<AddrBucket>,
        code: PendingCode,
        ttl: Duration,
    ) -> Result<Result<usize, PendingError>, StoreError> {
        match &*self.store {
            AuthStore::Local { codes, .. } => {
                let now = Instant::now();
                let client = code.client_id.clone();
                let expires = code.expires;
                codes
                    .lock()
                    .map_err(|_| StoreError::Unavailable("poisoned".into()))
                    .map(|mut c| c.insert(code_hash, &client, addr, expires, code, now))
            }
            AuthStore::Shared(pg) => {
                let now = now_ms();
                let body =
                    serde_json::to_string(&code).map_err(|e| StoreError::Db(e.to_string()))?;
                pg.pending_insert(
                    Kind::Code,
                    &code_hash,
                    &code.client_id,
                    addr,
                    now + ttl.as_millis() as i64,
                    &body,
                    super::PENDING_CAPS,
                    now,
                )
                .await
            }
        }
    }

    /// Takes a pending code for its redemption, entering it among the redeemed codes; or what a
    /// replay of it finds.
    pub(super) async fn take_code(
        &self,
        code_hash: &str,
    ) -> Result<(Option<PendingCode>, Replay), StoreError> {
        match &*self.store {
            AuthStore::Local {
                codes, redeemed, ..
            } => {
                let now = Instant::now();
                // Taken from the pending codes and entered among the redeemed ones under the
                // codes' lock (always taken before the redeemed codes' lock), so that a replay
                // racing the first redemption finds the code in one or the other.
                let mut codes = codes
                    .lock()
                    .map_err(|_| StoreError::Unavailable("poisoned".into()))?;
                Ok(match codes.take(code_hash, now) {
                    Some(pending) => {
                        if let Ok(mut r) = redeemed.lock() {
                            r.start(code_hash.to_string(), pending.expires, now);
                        }
                        (Some(pending), Replay::Unknown)
                    }
                    None => (
                        None,
                        redeemed
                            .lock()
                            .map(|mut r| r.replay(code_hash, now))
                            .unwrap_or(Replay::Unknown),
                    ),
                })
            }
            AuthStore::Shared(pg) => {
                let (body, replay) = pg.take_code(code_hash, now_ms()).await?;
                let code = match body {
                    Some(body) => Some(
                        serde_json::from_str::<PendingCode>(&body)
                            .map_err(|e| StoreError::Db(format!("a stored code: {e}")))?,
                    ),
                    None => None,
                };
                Ok((code, replay))
            }
        }
    }

    /// The redemption of `code_hash` created `grant`: `true` when a replay came meanwhile (the
    /// grant must be revoked). A store failure counts as a replay: nothing unchecked is issued.
    pub(super) async fn finish_code(&self, code_hash: &str, grant: &str) -> bool {
        match &*self.store {
            AuthStore::Local { redeemed, .. } => redeemed
                .lock()
                .map(|mut r| r.finish(code_hash, grant))
                .unwrap_or(false),
            AuthStore::Shared(pg) => match pg.finish_code(code_hash, grant).await {
                Ok(replayed) => replayed,
                Err(e) => {
                    tracing::error!(error = %e, "OAuth store failed");
                    true
                }
            },
        }
    }

    /// The redemption of `code_hash` failed: nothing was issued, nothing to revoke later.
    pub(super) async fn fail_code(&self, code_hash: &str) {
        match &*self.store {
            AuthStore::Local { redeemed, .. } => {
                if let Ok(mut r) = redeemed.lock() {
                    r.fail(code_hash);
                }
            }
            AuthStore::Shared(pg) => {
                if let Err(e) = pg.fail_code(code_hash).await {
                    tracing::warn!(error = %e, "OAuth store failed");
                }
            }
        }
    }

    /// Opens a consent page `id` for `consent`, asked for from `addr`.
    pub(super) async fn put_consent(
        &self,
        id: String,
        addr: Option<AddrBucket>,
        consent: PendingConsent,
        ttl: Duration,
    ) -> Result<Result<usize, PendingError>, StoreError> {
        match &*self.store {
            AuthStore::Local { consents, .. } => {
                let now = Instant::now();
                let client = consent.request.client.id.clone();
                consents
                    .lock()
                    .map_err(|_| StoreError::Unavailable("poisoned".into()))
                    .map(|mut c| c.insert(id, &client, addr, now + ttl, consent, now))
            }
            AuthStore::Shared(pg) => {
                let a = &consent.request;
                let stored = StoredConsent {
                    client_id: a.client.id.clone(),
                    redirect_uri: a.redirect_uri.clone(),
                    redirect_given: a.redirect_given,
                    state: a.state.clone(),
                    challenge: a.challenge.clone(),
                    scope: a.scope.clone(),
                    resource: a.resource.clone(),
                };
                let body =
                    serde_json::to_string(&stored).map_err(|e| StoreError::Db(e.to_string()))?;
                let now = now_ms();
                pg.pending_insert(
                    Kind::Consent,
                    &id,
                    &a.client.id,
                    addr,
                    now + ttl.as_millis() as i64,
                    &body,
                    super::PENDING_CAPS,
                    now,
                )
                .await
            }
        }
    }

    /// The open consent page `id`, if live.
    pub(super) async fn consent(&self, id: &str) -> Result<Option<PendingConsent>, OAuthError> {
        match &*self.store {
            AuthStore::Local { consents, .. } => Ok(consents
                .lock()
                .ok()
                .and_then(|mut c| c.get_mut(id, Instant::now()).cloned())),
            AuthStore::Shared(pg) => {
                let Some((body, failed_attempts)) =
                    pg.consent(id, now_ms()).await.map_err(store_failed)?
                else {
                    return Ok(None);
                };
                let Ok(stored) = serde_json::from_str::<StoredConsent>(&body) else {
                    return Ok(None);
                };
                // The client may have gone meanwhile (dropped registration): the page expired.
                let Some(client) = self.client(&stored.client_id).await? else {
                    return Ok(None);
                };
                Ok(Some(PendingConsent {
                    request: Authorization {
                        client,
                        redirect_uri: stored.redirect_uri,
                        redirect_given: stored.redirect_given,
                        state: stored.state,
                        challenge: stored.challenge,
                        scope: stored.scope,
                        resource: stored.resource,
                    },
                    failed_attempts,
                }))
            }
        }
    }

    /// One more wrong password on page `id`: the attempts so far; the page is closed at `max`.
    pub(super) async fn consent_failed(&self, id: &str, max: u32) -> Result<u32, StoreError> {
        match &*self.store {
            AuthStore::Local { consents, .. } => {
                let mut attempts = max;
                if let Ok(mut c) = consents.lock() {
                    if let Some(entry) = c.get_mut(id, Instant::now()) {
                        entry.failed_attempts += 1;
                        attempts = entry.failed_attempts;
                    }
                    if attempts >= max {
                        c.discard(id);
                    }
                }
                Ok(attempts)
            }
            AuthStore::Shared(pg) => pg.consent_failed(id, max).await,
        }
    }

    /// Closes page `id`: `true` if it was open (of two answers to one page, one goes on).
    pub(super) async fn close_consent(&self, id: &str) -> Result<bool, StoreError> {
        match &*self.store {
            AuthStore::Local { consents, .. } => Ok(consents
                .lock()
                .map(|mut c| c.take(id, Instant::now()).is_some())
                .unwrap_or(false)),
            AuthStore::Shared(pg) => pg.discard(Kind::Consent, id).await,
        }
    }
}
