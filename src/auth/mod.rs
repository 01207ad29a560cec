//! OAuth 2.1 for HTTP mode: an authorization server for the configured client (and, opt-in,
//! dynamically registered clients and client ID metadata documents) issuing JWT access tokens,
//! and the resource-server check on every MCP route.
//!
//! - [`server`]: `/.well-known/*` metadata (RFC 8414, RFC 9728), `/authorize` (PKCE S256, consent
//!   page for clients without a secret), `/token` (code and refresh grants, client_secret_post
//!   and client_secret_basic), `/revoke` (RFC 7009, grant families), `/register` (RFC 7591);
//! - [`middleware`]: bearer-token verification with `WWW-Authenticate` challenges that carry
//!   `resource_metadata`, scope enforcement, and per-address rate limits;
//! - [`tokens`], [`pkce`], [`clients`]: the pieces; [`store`]: what survives a restart;
//!   [`pending`]: codes and consent pages in flight, bounded so that a flood cannot lock a real
//!   user out, and redeemed codes, so that a replay revokes what the first redemption issued.
//!
//! [`Auth`] is built once when the HTTP server has bound its address and shared by all workers.
//! It keeps the set of revoked grants in memory (the token check reads it on every MCP
//! request) and polls the store's revocation log every [`REVOCATION_POLL`], so that a grant
//! revoked by another bridge on the same data directory is refused here within that time. The
//! poll ends when the `Auth` is dropped.

mod backend;
pub mod clients;
pub mod error;
mod flight;
pub mod middleware;
pub mod pending;
pub mod pg;
pub mod pkce;
pub mod server;
pub mod store;
pub mod tokens;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use backend::AuthStore;
use clients::{Client, Credential, MetadataClients};
use middleware::RateLimiter;
use pending::{Caps, Pending, Redeemed};
use pg::PgAuth;
use store::AuthDb;
use tokens::KeySet;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::{
    config::{AuthSettings, HttpSettings, Secret, is_loopback_host},
    sqlite::{Location, SqliteHandle, StoreError},
    util::now_ms,
};

/// Authorization codes live ten minutes (1.7.0's TTL).
const CODE_TTL: Duration = Duration::from_secs(600);
/// A consent page stays answerable this long.
const CONSENT_TTL: Duration = Duration::from_secs(600);
/// Bounds of the outstanding codes, and of the open consent pages (each table its own).
///
/// - `total` 10 000: a memory bound (a few MB); past it the oldest entry of all goes.
/// - `per_client` 256: past it, that client's oldest entry goes, never a refusal (the configured
///   client's id is public, so refusing would let anyone lock its users out). A real user's code
///   is redeemed a second or two after it is issued; to push it out an attacker must issue 256
///   codes for that client within that time, over 100 per second sustained, which the
///   `/authorize` limit (100 per 15 minutes per address) and `per_addr` make need over a
///   thousand addresses. 256 people in the middle of logging in through one bridge at once is
///   far beyond its use. A consent page waits for a person to type a password (a minute or
///   so), which still needs hundreds of addresses to outrun.
/// - `per_addr` 32: past it the address is refused (`temporarily_unavailable`): only the
///   flooder is. A person behind a shared address (NAT) redeems their code at once, so 32
///   unredeemed codes from one address within ten minutes is not a person.
const PENDING_CAPS: Caps = Caps {
    total: 10_000,
    per_client: 256,
    per_addr: 32,
};
/// Most redeemed codes remembered for replay detection (each for at most [`CODE_TTL`]); far
/// above what `Limit::TokenClient` lets clients redeem in ten minutes.
const MAX_REDEEMED: usize = 100_000;
/// How often the revocation log is read for grants revoked by other bridges on the same data
/// directory: a revoked token is refused everywhere within this (plus one store call). Each
/// poll is one primary-key range read on the store's thread, empty almost always.
pub const REVOCATION_POLL: Duration = Duration::from_millis(250);

/// An issued, not yet redeemed authorization code.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct PendingCode {
    /// The client it was issued to.
    client_id: String,
    /// Where it was sent.
    redirect_uri: String,
    /// Whether the authorization request named the redirect URI (then /token must repeat it).
    redirect_given: bool,
    /// The PKCE S256 challenge.
    challenge: String,
    /// The granted scope.
    scope: String,
    /// The resource the tokens will be for.
    resource: String,
    /// When the code expires (the replay memory keeps it until then). Not stored in
    /// PostgreSQL, whose row has the wall-clock expiry.
    #[serde(skip, default = "Instant::now")]
    expires: Instant,
}

/// A checked authorization request (`GET`/`POST /authorize`).
#[derive(Debug, Clone)]
struct Authorization {
    client: Client,
    redirect_uri: String,
    /// Whether the request named the redirect URI (then /token must repeat it).
    redirect_given: bool,
    state: Option<String>,
    challenge: String,
    scope: String,
    resource: String,
}

/// An authorization waiting for a person's approval on the consent page.
#[derive(Debug, Clone)]
struct PendingConsent {
    /// The checked authorization request awaiting approval.
    request: Authorization,
    /// Wrong approval passwords so far.
    failed_attempts: u32,
}

/// The grants revoked so far, and the last revocation-log entry read.
#[derive(Debug, Default)]
struct Revoked {
    /// Ids of revoked grants.
    grants: HashSet<String>,
    /// The sequence number of the last revocation-log entry read.
    seq: i64,
    /// When the log was last read in full from a shared store (`None`: never, or not shared).
    synced: Option<Instant>,
}

/// The OAuth authorization and resource server, shared by all HTTP workers.
pub struct Auth {
    /// The issuer URL, without a trailing slash.
    issuer: String,
    /// The issuer's path (`""` or `/prefix`), where the routes are also served.
    prefix: String,
    /// Audiences a token may carry: the MCP endpoint (canonical), the SSE endpoint, the issuer.
    resources: Vec<String>,
    /// Signs and checks access tokens; the stored keys are read again while shared.
    keys: Arc<RwLock<KeySet>>,
    /// `oauth.db` and memory, or PostgreSQL.
    store: Arc<AuthStore>,
    /// The pre-configured client (`MCP_CLIENT_ID`).
    configured: Client,
    /// Whether `/register` is open (`MCP_DANGEROUSLY_ALLOW_DCR`).
    allow_dcr: bool,
    /// Most registered clients kept (`MCP_MAX_DCR_CLIENTS`).
    max_dcr_clients: usize,
    /// Clients identified by a metadata document URL.
    cimd: MetadataClients,
    /// What a person types to approve a client without a secret.
    approval_password: Option<Secret>,
    /// Lifetime of access tokens.
    access_ttl: Duration,
    /// Lifetime of refresh tokens.
    refresh_ttl: Duration,
    /// Revoked grants: read on every token check, kept up to date by the revocation poll.
    revoked: Arc<RwLock<Revoked>>,
    /// Ends the revocation poll when this server is dropped.
    stop: CancellationToken,
    /// The OAuth routes' rate limits.
    limiter: RateLimiter,
}

impl Drop for Auth {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The issuer of a server with no `MCP_ISSUER_URL`: 1.7.0's `http://<host>:<port>`, with
/// `localhost` for a wildcard bind.
pub fn default_issuer(http: &HttpSettings, port: u16) -> String {
    let host = match http.host.as_str() {
        "0.0.0.0" | "::" | "[::]" => "localhost".to_string(),
        h if h.contains(':') && !h.starts_with('[') => format!("[{h}]"),
        h => h.to_string(),
    };
    format!("http://{host}:{port}")
}

/// Where the OAuth state is kept.
#[derive(Debug, Clone)]
pub enum Place<'a> {
    /// `oauth.db` in the data directory, or memory.
    Local(&'a Location),
    /// PostgreSQL at this URL (a secret).
    Shared(&'a Secret),
}

impl Auth {
    /// Builds the server for `issuer` (validated here: https unless loopback, as in 1.7.0) and
    /// opens its store. Errors are startup errors. A shared store that cannot be reached now is
    /// not one: token checks refuse (503) until it is, and the server recovers by itself.
    pub async fn start(
        settings: &AuthSettings,
        issuer: &str,
        place: Place<'_>,
    ) -> Result<Auth, String> {
        let url = Url::parse(issuer).map_err(|_| format!("Invalid issuer URL {issuer:?}"))?;
        let loopback = url.host_str().is_some_and(is_loopback_host);
        if url.scheme() != "https" && !(loopback || settings.allow_insecure_issuer) {
            return Err(format!(
                "Issuer URL must be HTTPS: {issuer} (set MCP_ISSUER_URL to the public https URL)"
            ));
        }
        let issuer = issuer.trim_end_matches('/').to_string();
        let prefix = url.path().trim_end_matches('/').to_string();
        let configured_key = settings
            .token_signing_key
            .as_ref()
            .map(|k| k.expose().as_bytes().to_vec());
        let store = match &place {
            Place::Local(location) => {
                let db = AuthDb::open(location).map_err(|e| e.to_string())?;
                if configured_key.is_none() && matches!(location, Location::Memory) {
                    tracing::warn!(
                        "WARNING: no MCP_TOKEN_SIGNING_KEY and no data directory: OAuth tokens will not survive a restart"
                    );
                }
                AuthStore::Local {
                    db: SqliteHandle::start(db),
                    codes: Mutex::new(Pending::new(PENDING_CAPS)),
                    consents: Mutex::new(Pending::new(PENDING_CAPS)),
                    redeemed: Mutex::new(Redeemed::new(MAX_REDEEMED)),
                }
            }
            Place::Shared(url) => {
                AuthStore::Shared(PgAuth::start(url.expose()).map_err(|e| e.to_string())?)
            }
        };
        let store = Arc::new(store);
        let shared = store.shared().is_some();
        // The first reads: fatal on one machine (a broken oauth.db), a warning when shared.
        // On one machine a configured key is the only key, as it always was (the one in
        // oauth.db is neither made nor accepted); shared, the database's keys are accepted
        // beside it, so that switching either way logs nobody out.
        let use_stored = shared || configured_key.is_none();
        let first = async {
            let keys = if use_stored {
                store.keys(now_ms()).await?
            } else {
                Vec::new()
            };
            let log = store.revocations_since(0).await?;
            Ok::<_, StoreError>((keys, log))
        };
        let mut revoked = Revoked::default();
        let mut stored_keys = Vec::new();
        match tokio::time::timeout(crate::pg::CONNECT_TIMEOUT * 2, first).await {
            Ok(Ok((keys, log))) => {
                stored_keys = keys;
                for (seq, grant) in log {
                    revoked.grants.insert(grant);
                    revoked.seq = seq;
                }
                revoked.synced = shared.then(Instant::now);
            }
            Ok(Err(e)) if !shared => return Err(e.to_string()),
            Ok(Err(e)) => tracing::warn!(
                error = %e,
                "OAuth store on PostgreSQL not reachable yet: token checks answer 503 until it is"
            ),
            Err(_) => tracing::warn!(
                "OAuth store on PostgreSQL not reachable yet (no answer in 10 s): token checks answer 503 until it is"
            ),
        }
        if configured_key.is_some() && shared {
            tracing::info!(
                "MCP_TOKEN_SIGNING_KEY is set: tokens are signed with it; tokens signed with the shared keys are still accepted"
            );
        }
        let keys = Arc::new(RwLock::new(KeySet::new(
            configured_key.as_deref(),
            &stored_keys,
            settings.access_token_ttl + KEY_ACTIVATION + KEY_SLACK,
        )));
        let revoked = Arc::new(RwLock::new(revoked));
        let stop = CancellationToken::new();
        match (store.shared(), &place) {
            (Some(pg), _) => {
                actix_rt::spawn(sync_shared(
                    pg.clone(),
                    Arc::downgrade(&revoked),
                    Arc::downgrade(&keys),
                    stop.clone(),
                ));
            }
            (None, Place::Local(Location::Dir(_))) => {
                actix_rt::spawn(poll_revocations(
                    store.clone(),
                    Arc::downgrade(&revoked),
                    stop.clone(),
                ));
            }
            _ => {}
        }
        // A revoked grant is remembered as long as one of its tokens could still be presented.
        let keep = settings.access_token_ttl.max(settings.refresh_token_ttl) + PRUNE_EVERY;
        actix_rt::spawn(prune_periodically(store.clone(), keep, stop.clone()));
        let configured = Client {
            id: settings.client_id.clone().unwrap_or_default(),
            name: "OpenClaw MCP Client".to_string(),
            redirect_uris: settings.redirect_uris.clone(),
            credential: Credential::Secret(
                settings
                    .client_secret
                    .as_ref()
                    .map(|s| s.expose().to_string())
                    .unwrap_or_default(),
            ),
            configured: true,
        };
        if settings.redirect_uris.is_empty() {
            tracing::warn!(
                "MCP_REDIRECT_URIS not set: any https or loopback redirect_uri is accepted. Set MCP_REDIRECT_URIS for production."
            );
        }
        if settings.allow_dcr {
            tracing::warn!(
                "Dynamic client registration is ON: registered clients get a token only after a person approves them with MCP_APPROVAL_PASSWORD"
            );
        }
        tracing::info!(issuer = %issuer, client_id = %configured.id, shared, "OAuth enabled");
        Ok(Auth {
            resources: vec![
                format!("{issuer}/mcp"),
                format!("{issuer}/sse"),
                issuer.clone(),
            ],
            issuer,
            prefix,
            keys,
            store,
            configured,
            allow_dcr: settings.allow_dcr,
            max_dcr_clients: settings.max_dcr_clients,
            cimd: MetadataClients::new(settings.cimd_allowed_hosts.clone()),
            approval_password: settings.approval_password.clone(),
            access_ttl: settings.access_token_ttl,
            refresh_ttl: settings.refresh_token_ttl,
            revoked,
            stop,
            limiter: RateLimiter::new(settings.rate_limit_per_minute),
        })
    }

    /// The issuer URL (no trailing slash).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The canonical resource: the MCP endpoint.
    pub fn resource(&self) -> &str {
        &self.resources[0]
    }

    /// Where the protected-resource metadata of `/mcp` is, for `WWW-Authenticate`.
    pub fn resource_metadata_url(&self) -> String {
        format!("{}/.well-known/oauth-protected-resource/mcp", self.issuer)
    }

    /// Finds a client: the configured one, a registered one, or a metadata document.
    async fn client(&self, id: &str) -> Result<Option<Client>, error::OAuthError> {
        if id == self.configured.id {
            return Ok(Some(self.configured.clone()));
        }
        if self.cimd.accepts(id).is_some() {
            return self.cimd.resolve(id).await;
        }
        if !self.allow_dcr {
            return Ok(None);
        }
        let found = self.store.client(id).await.map_err(flight::store_failed)?;
        Ok(found.map(Client::from))
    }

    fn is_revoked(&self, grant: &str) -> bool {
        self.revoked
            .read()
            .map(|r| r.grants.contains(grant))
            .unwrap_or(true)
    }

    /// Whether token checks must refuse for want of a shared store: its revocation log was not
    /// read within [`REVOCATION_STALE`] (a revoked token must never pass), or no signing key
    /// was ever read from it.
    fn shared_store_away(&self) -> bool {
        if self.store.shared().is_none() {
            return false;
        }
        let stale = self
            .revoked
            .read()
            .map(|r| r.synced.is_none_or(|t| t.elapsed() > REVOCATION_STALE))
            .unwrap_or(true);
        stale || !self.keys.read().map(|k| k.can_sign()).unwrap_or(false)
    }

    fn mark_revoked(&self, grant: &str) {
        if let Ok(mut r) = self.revoked.write() {
            r.grants.insert(grant.to_string());
        }
    }

    /// Signs an access token with the current key; `None` when no key was ever read.
    fn sign(&self, claims: &tokens::Claims) -> Option<String> {
        self.keys.read().ok()?.sign(claims, now_ms())
    }

    /// Notes that a registered client was used (approved on the consent page), so that a flood
    /// of registrations does not drop it. A failure is only logged: the approval stands.
    async fn touch_client(&self, client: &Client) {
        if client.configured {
            return;
        }
        if let Err(e) = self.store.touch_client(&client.id, now_ms()).await {
            tracing::warn!(error = %e, "OAuth store failed");
        }
    }

    /// Revokes `grant` in the store (and so on every bridge sharing it) and here at once.
    async fn revoke(&self, grant: &str) -> Result<(), error::OAuthError> {
        self.store
            .revoke_grant(grant, now_ms())
            .await
            .map_err(flight::store_failed)?;
        self.mark_revoked(grant);
        Ok(())
    }

    fn now_secs() -> u64 {
        (now_ms() / 1000).max(0) as u64
    }
}

/// How often what can no longer be used (expired refresh tokens, grants dead for longer than
/// any token of theirs lives, their revocation log entries) is deleted from the store.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// A shared store whose revocation log was not read for this long is taken to be away: token
/// checks answer 503 until it is read again (eight missed polls).
pub const REVOCATION_STALE: Duration = Duration::from_secs(2);
/// How often each replica reads the shared signing keys (a rotation is announced this long
/// before the new key signs, twice over).
pub const KEY_POLL: Duration = Duration::from_secs(5);

/// Prunes the store every [`PRUNE_EVERY`] (the first time one period after start), keeping
/// `keep` of history, until `stop` is cancelled.
async fn prune_periodically(store: Arc<AuthStore>, keep: Duration, stop: CancellationToken) {
    let keep_ms = keep.as_millis() as i64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let pruned = tokio::select! {
            _ = stop.cancelled() => return,
            pruned = store.prune(now_ms(), keep_ms) => pruned,
        };
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "cannot prune the OAuth store");
        }
    }
}

/// Reads the revocation log after the last entry seen into `revoked`; `false` if it could not.
async fn read_revocations(store: &AuthStore, revoked: &RwLock<Revoked>) -> bool {
    let since = revoked.read().map(|r| r.seq).unwrap_or(0);
    // Fresh as of when the read was sent, not when a slow answer came back.
    let asked = Instant::now();
    match store.revocations_since(since).await {
        Ok(rows) => {
            if let Ok(mut r) = revoked.write() {
                // Numbers that went back (a restored log, sent whole): follow them from there.
                if rows.first().is_some_and(|(seq, _)| *seq <= since) {
                    r.seq = 0;
                }
                for (seq, grant) in rows {
                    r.grants.insert(grant);
                    r.seq = r.seq.max(seq);
                }
                if store.shared().is_some() {
                    r.synced = Some(asked);
                }
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the revocation log");
            false
        }
    }
}

/// Reads the revocation log every [`REVOCATION_POLL`] and adds what other bridges revoked to
/// `revoked`, until `stop` is cancelled (the `Auth` was dropped) or `revoked` is gone.
async fn poll_revocations(
    store: Arc<AuthStore>,
    revoked: std::sync::Weak<RwLock<Revoked>>,
    stop: CancellationToken,
) {
    let mut ticks = tokio::time::interval(REVOCATION_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let Some(revoked) = revoked.upgrade() else {
            return;
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = read_revocations(&store, &revoked) => {}
        }
    }
}

/// Keeps a replica on a shared store up to date: revocations heard at once on
/// [`pg::REVOKE_CHANNEL`] and read from the log every [`REVOCATION_POLL`] (the log is the
/// truth; a notification only makes it quicker), signing keys every [`KEY_POLL`]. Ends with
/// `stop` or when the `Auth` is gone.
async fn sync_shared(
    pg: Arc<PgAuth>,
    revoked: std::sync::Weak<RwLock<Revoked>>,
    keys: std::sync::Weak<RwLock<KeySet>>,
    stop: CancellationToken,
) {
    let store = AuthStore::Shared(pg.clone());
    let (notes_tx, mut notes) = tokio::sync::mpsc::unbounded_channel();
    let listener = tokio::spawn(crate::pg::listen(
        pg.config().clone(),
        pg::REVOKE_CHANNEL,
        notes_tx,
    ));
    let mut ticks = tokio::time::interval(REVOCATION_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut key_ticks = tokio::time::interval(KEY_POLL);
    key_ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut away = false;
    loop {
        let mut read_keys = false;
        tokio::select! {
            _ = stop.cancelled() => break,
            note = notes.recv() => match note {
                Some(crate::pg::Note::Payload(grant)) => {
                    let Some(revoked) = revoked.upgrade() else { break };
                    if let Ok(mut r) = revoked.write() {
                        r.grants.insert(grant);
                    }
                    continue;
                }
                Some(_) => {}
                None => break,
            },
            _ = ticks.tick() => {}
            _ = key_ticks.tick() => read_keys = true,
        }
        let Some(revoked) = revoked.upgrade() else {
            break;
        };
        let read = tokio::select! {
            _ = stop.cancelled() => break,
            read = read_revocations(&store, &revoked) => read,
        };
        if read && away {
            tracing::info!("OAuth store on PostgreSQL reachable again: token checks resume");
            read_keys = true;
        }
        away = !read;
        if read_keys && read {
            let Some(keys) = keys.upgrade() else { break };
            match pg.read_keys().await {
                Ok(stored) if !stored.is_empty() => {
                    let stored: Vec<_> = stored
                        .into_iter()
                        .map(|k| (k.secret, k.active_at))
                        .collect();
                    if let Ok(mut k) = keys.write() {
                        k.set_stored(&stored);
                    }
                }
                // No key at all (tables made again): make one, as at start.
                Ok(_) => {
                    if let Ok(stored) = store.keys(now_ms()).await
                        && let Ok(mut k) = keys.write()
                    {
                        k.set_stored(&stored);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the shared signing keys"),
            }
        }
    }
    listener.abort();
}

/// `openclaw-mcp rotate-signing-key`: adds a new shared signing key that every replica signs
/// with from [`KEY_ACTIVATION`] on; tokens signed with the older keys stay valid until they
/// expire, then those keys are deleted. Returns what to print.
///
/// With `retire_now` (a key that leaked), the new key is active at once and every older one is
/// deleted: tokens they signed are refused by every replica within [`KEY_POLL`], and their
/// holders refresh (refresh tokens are not signed, and stay valid).
pub async fn rotate_signing_key(
    database_url: &Secret,
    access_ttl: Duration,
    retire_now: bool,
) -> Result<String, String> {
    let pg = PgAuth::start(database_url.expose()).map_err(|e| e.to_string())?;
    let now = now_ms();
    let (active_at, keep) = if retire_now {
        (now, 0)
    } else {
        (
            now + KEY_ACTIVATION.as_millis() as i64,
            (access_ttl + KEY_ACTIVATION + KEY_SLACK).as_millis() as i64,
        )
    };
    let keys = pg
        .rotate_key(tokens::random_bytes(32), now, active_at, keep)
        .await
        .map_err(|e| e.to_string())?;
    let newest = keys.last().map(|k| k.kid.clone()).unwrap_or_default();
    Ok(if retire_now {
        format!(
            "new signing key {newest}, active now; every older key deleted: tokens they signed are refused within {} s (clients refresh)",
            KEY_POLL.as_secs()
        )
    } else {
        format!(
            "new signing key {newest}: replicas sign with it {} s from now; {} older key(s) accepted until the tokens they signed expire",
            KEY_ACTIVATION.as_secs(),
            keys.len().saturating_sub(1)
        )
    })
}

/// How long after a rotation the new key starts signing: every replica has read it by then
/// ([`KEY_POLL`] three times over), so a token it signs is accepted everywhere.
pub const KEY_ACTIVATION: Duration = Duration::from_secs(15);
/// Clock differences between replicas allowed for when a key is retired.
pub const KEY_SLACK: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{cli::Cli, config::Settings};

    fn settings() -> Settings {
        let cli = Cli::try_parse_from(["openclaw-mcp", "--transport", "http"]).unwrap();
        Settings::load_from(&cli, |k| match k {
            "AUTH_ENABLED" => Some("true".into()),
            "MCP_CLIENT_ID" => Some("openclaw".into()),
            "MCP_CLIENT_SECRET" => Some("0123456789abcdef0123456789abcdef".into()),
            _ => None,
        })
        .unwrap()
    }

    /// Waits (bounded) for `done`, checking every 10 ms.
    async fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if done() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        done()
    }

    #[actix_rt::test]
    async fn a_revocation_reaches_every_server_on_the_data_directory_and_the_poll_ends_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let location = Location::Dir(dir.path().to_path_buf());
        let s = settings();
        let place = || Place::Local(&location);
        let one = Auth::start(&s.auth, "http://localhost:1", place())
            .await
            .unwrap();
        let two = Auth::start(&s.auth, "http://localhost:1", place())
            .await
            .unwrap();
        let grant = one
            .store
            .create_grant("openclaw", "mcp:tools", "r", 0)
            .await
            .unwrap();
        assert!(!two.is_revoked(&grant));
        one.revoke(&grant).await.unwrap();
        assert!(one.is_revoked(&grant), "at once where it was revoked");
        assert!(
            eventually(Duration::from_secs(1), || two.is_revoked(&grant)).await,
            "within a second on the other"
        );
        // Dropped, each server's poll ends and lets go of its store: the last connection closes
        // and SQLite removes the write-ahead log.
        let wal = dir.path().join(format!("{}-wal", store::DB_FILE));
        assert!(wal.exists());
        drop(one);
        drop(two);
        assert!(
            eventually(Duration::from_secs(20), || !wal.exists()).await,
            "the store threads ended"
        );
    }
}
