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

pub mod clients;
pub mod error;
pub mod middleware;
pub mod pending;
pub mod pkce;
pub mod server;
pub mod store;
pub mod tokens;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex, RwLock},
    time::{Duration, Instant},
};

use clients::{Client, Credential, MetadataClients};
use middleware::RateLimiter;
use pending::{Caps, Pending, Redeemed};
use store::AuthDb;
use tokens::SigningKey;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::{
    config::{AuthSettings, HttpSettings, Secret, is_loopback_host},
    sqlite::{Location, SqliteHandle},
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
#[derive(Debug, Clone)]
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
    /// When the code expires (the replay memory keeps it until then).
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
}

/// The OAuth authorization and resource server, shared by all HTTP workers.
pub struct Auth {
    /// The issuer URL, without a trailing slash.
    issuer: String,
    /// The issuer's path (`""` or `/prefix`), where the routes are also served.
    prefix: String,
    /// Audiences a token may carry: the MCP endpoint (canonical), the SSE endpoint, the issuer.
    resources: Vec<String>,
    /// Signs and checks access tokens.
    key: SigningKey,
    /// `oauth.db` on its own thread.
    db: SqliteHandle<AuthDb>,
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
    /// Outstanding codes by hash.
    codes: Mutex<Pending<PendingCode>>,
    /// Open consent pages by id.
    consents: Mutex<Pending<PendingConsent>>,
    /// Redeemed codes, for replay detection.
    redeemed: Mutex<Redeemed>,
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

impl Auth {
    /// Builds the server for `issuer` (validated here: https unless loopback, as in 1.7.0) and
    /// opens its store. Errors are startup errors.
    pub fn start(
        settings: &AuthSettings,
        http: &HttpSettings,
        issuer: &str,
        location: &Location,
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
        let mut db = AuthDb::open(location).map_err(|e| e.to_string())?;
        let key = match &settings.token_signing_key {
            Some(key) => SigningKey::new(key.expose().as_bytes()),
            None => {
                if matches!(location, Location::Memory) {
                    tracing::warn!(
                        "WARNING: no MCP_TOKEN_SIGNING_KEY and no data directory: OAuth tokens will not survive a restart"
                    );
                }
                SigningKey::new(&db.signing_key().map_err(|e| e.to_string())?)
            }
        };
        let mut revoked = Revoked::default();
        for (seq, grant) in db.revocations_since(0).map_err(|e| e.to_string())? {
            revoked.grants.insert(grant);
            revoked.seq = seq;
        }
        let revoked = Arc::new(RwLock::new(revoked));
        let db = SqliteHandle::start(db);
        let stop = CancellationToken::new();
        if matches!(location, Location::Dir(_)) {
            actix_rt::spawn(poll_revocations(
                db.clone(),
                Arc::downgrade(&revoked),
                stop.clone(),
            ));
        }
        // A revoked grant is remembered as long as one of its tokens could still be presented.
        let keep = settings.access_token_ttl.max(settings.refresh_token_ttl) + PRUNE_EVERY;
        actix_rt::spawn(prune_periodically(db.clone(), keep, stop.clone()));
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
        tracing::info!(issuer = %issuer, client_id = %configured.id, "OAuth enabled");
        let _ = http;
        Ok(Auth {
            resources: vec![
                format!("{issuer}/mcp"),
                format!("{issuer}/sse"),
                issuer.clone(),
            ],
            issuer,
            prefix,
            key,
            db,
            configured,
            allow_dcr: settings.allow_dcr,
            max_dcr_clients: settings.max_dcr_clients,
            cimd: MetadataClients::new(settings.cimd_allowed_hosts.clone()),
            approval_password: settings.approval_password.clone(),
            access_ttl: settings.access_token_ttl,
            refresh_ttl: settings.refresh_token_ttl,
            codes: Mutex::new(Pending::new(PENDING_CAPS)),
            consents: Mutex::new(Pending::new(PENDING_CAPS)),
            redeemed: Mutex::new(Redeemed::new(MAX_REDEEMED)),
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
        let owned = id.to_string();
        let found = self
            .db
            .exec(move |db| db.client(&owned))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "OAuth store failed");
                error::OAuthError::server_error()
            })?;
        Ok(found.map(Client::from))
    }

    fn is_revoked(&self, grant: &str) -> bool {
        self.revoked
            .read()
            .map(|r| r.grants.contains(grant))
            .unwrap_or(true)
    }

    fn mark_revoked(&self, grant: &str) {
        if let Ok(mut r) = self.revoked.write() {
            r.grants.insert(grant.to_string());
        }
    }

    /// Notes that a registered client was used (approved on the consent page), so that a flood
    /// of registrations does not drop it. A failure is only logged: the approval stands.
    async fn touch_client(&self, client: &Client) {
        if client.configured {
            return;
        }
        let id = client.id.clone();
        let now = now_ms();
        if let Err(e) = self.db.exec(move |db| db.touch_client(&id, now)).await {
            tracing::warn!(error = %e, "OAuth store failed");
        }
    }

    /// Revokes `grant` in the store (and so on every bridge sharing it) and here at once.
    async fn revoke(&self, grant: &str) -> Result<(), error::OAuthError> {
        let now = now_ms();
        let id = grant.to_string();
        self.db
            .exec(move |db| db.revoke_grant(&id, now))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "OAuth store failed");
                error::OAuthError::server_error()
            })?;
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

/// Prunes the store every [`PRUNE_EVERY`] (the first time one period after start), keeping
/// `keep` of history, until `stop` is cancelled.
async fn prune_periodically(db: SqliteHandle<AuthDb>, keep: Duration, stop: CancellationToken) {
    let keep_ms = keep.as_millis() as i64;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(PRUNE_EVERY) => {}
        }
        let pruned = tokio::select! {
            _ = stop.cancelled() => return,
            pruned = db.exec(move |db| db.prune(now_ms(), keep_ms)) => pruned,
        };
        if let Err(e) = pruned {
            tracing::warn!(error = %e, "cannot prune the OAuth store");
        }
    }
}

/// Reads the revocation log every [`REVOCATION_POLL`] and adds what other bridges revoked to
/// `revoked`, until `stop` is cancelled (the `Auth` was dropped) or `revoked` is gone.
async fn poll_revocations(
    db: SqliteHandle<AuthDb>,
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
        let since = revoked.read().map(|r| r.seq).unwrap_or(0);
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            read = db.exec(move |db| db.revocations_since(since)) => read,
        };
        match read {
            Ok(rows) if !rows.is_empty() => {
                if let Ok(mut r) = revoked.write() {
                    for (seq, grant) in rows {
                        r.grants.insert(grant);
                        r.seq = r.seq.max(seq);
                    }
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read the revocation log"),
        }
    }
}

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
        let one = Auth::start(&s.auth, &s.http, "http://localhost:1", &location).unwrap();
        let two = Auth::start(&s.auth, &s.http, "http://localhost:1", &location).unwrap();
        let grant = one
            .db
            .exec(|db| db.create_grant("openclaw", "mcp:tools", "r", 0))
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
