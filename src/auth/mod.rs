//! OAuth 2.1 for HTTP mode: an authorization server for the configured client (and, opt-in,
//! dynamically registered clients and client ID metadata documents) issuing JWT access tokens,
//! and the resource-server check on every MCP route.
//!
//! - [`server`]: `/.well-known/*` metadata (RFC 8414, RFC 9728), `/authorize` (PKCE S256, consent
//!   page for clients without a secret), `/token` (code and refresh grants, client_secret_post
//!   and client_secret_basic), `/revoke` (RFC 7009, grant families), `/register` (RFC 7591);
//! - [`middleware`]: bearer-token verification with `WWW-Authenticate` challenges that carry
//!   `resource_metadata`, scope enforcement, and per-address rate limits;
//! - [`tokens`], [`pkce`], [`clients`]: the pieces; [`store`]: what survives a restart.
//!
//! [`Auth`] is built once when the HTTP server has bound its address and shared by all workers.

pub mod clients;
pub mod error;
pub mod middleware;
pub mod pkce;
pub mod server;
pub mod store;
pub mod tokens;

use std::{
    collections::{HashMap, HashSet},
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use clients::{Client, Credential, MetadataClients};
use middleware::RateLimiter;
use store::AuthDb;
use tokens::SigningKey;
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
/// Most outstanding codes and consent pages at once (a flood gets `temporarily_unavailable`).
const MAX_PENDING: usize = 10_000;

/// An issued, not yet redeemed authorization code.
#[derive(Debug, Clone)]
struct PendingCode {
    client_id: String,
    redirect_uri: String,
    redirect_given: bool,
    challenge: String,
    scope: String,
    resource: String,
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
    request: Authorization,
    expires: Instant,
    failed_attempts: u32,
}

/// The OAuth authorization and resource server, shared by all HTTP workers.
pub struct Auth {
    /// The issuer URL, without a trailing slash.
    issuer: String,
    /// The issuer's path (`""` or `/prefix`), where the routes are also served.
    prefix: String,
    /// Audiences a token may carry: the MCP endpoint (canonical), the SSE endpoint, the issuer.
    resources: Vec<String>,
    key: SigningKey,
    db: SqliteHandle<AuthDb>,
    configured: Client,
    allow_dcr: bool,
    max_dcr_clients: usize,
    cimd: MetadataClients,
    approval_password: Option<Secret>,
    access_ttl: Duration,
    refresh_ttl: Duration,
    codes: Mutex<HashMap<String, PendingCode>>,
    consents: Mutex<HashMap<String, PendingConsent>>,
    revoked: RwLock<HashSet<String>>,
    limiter: RateLimiter,
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
        let revoked = db
            .revoked_grants()
            .map_err(|e| e.to_string())?
            .into_iter()
            .collect();
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
            db: SqliteHandle::start(db),
            configured,
            allow_dcr: settings.allow_dcr,
            max_dcr_clients: settings.max_dcr_clients,
            cimd: MetadataClients::new(settings.cimd_allowed_hosts.clone()),
            approval_password: settings.approval_password.clone(),
            access_ttl: settings.access_token_ttl,
            refresh_ttl: settings.refresh_token_ttl,
            codes: Mutex::new(HashMap::new()),
            consents: Mutex::new(HashMap::new()),
            revoked: RwLock::new(revoked),
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
            .map(|r| r.contains(grant))
            .unwrap_or(true)
    }

    fn mark_revoked(&self, grant: &str) {
        if let Ok(mut r) = self.revoked.write() {
            r.insert(grant.to_string());
        }
    }

    fn now_secs() -> u64 {
        (now_ms() / 1000).max(0) as u64
    }
}
