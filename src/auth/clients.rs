//! OAuth clients: the pre-configured confidential client (1.7.0's `MCP_CLIENT_ID` /
//! `MCP_CLIENT_SECRET`), dynamically registered clients (RFC 7591) and clients identified by a
//! metadata document URL (CIMD), with the redirect URI rules that keep codes away from attackers.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use bytes::Bytes;
use url::Url;

use super::{error::OAuthError, store::RegisteredClient, tokens::ct_eq};
use crate::{
    config::is_loopback_host,
    outbound::{self, HttpClient},
};

/// Largest client metadata document accepted.
const MAX_METADATA_BYTES: usize = 64 * 1024;
/// How long a metadata document fetch may take, from connect to the last byte.
const METADATA_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a fetched metadata document is reused.
const METADATA_CACHE: Duration = Duration::from_secs(300);

/// How a client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The configured secret (compared in constant time).
    Secret(String),
    /// The hash of a registered client's secret.
    SecretHash(String),
    /// A public client: no secret; a person approves it on the consent page.
    Public,
}

/// A client, wherever it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Client id.
    pub id: String,
    /// Name shown on the consent page.
    pub name: String,
    /// Registered redirect URIs (empty for the configured client without `MCP_REDIRECT_URIS`).
    pub redirect_uris: Vec<String>,
    /// How it authenticates.
    pub credential: Credential,
    /// Whether it is the pre-configured client (approved without a consent page, as in 1.7.0).
    pub configured: bool,
}

impl Client {
    /// Whether the presented secret is this client's.
    pub fn secret_matches(&self, presented: Option<&str>) -> bool {
        match (&self.credential, presented) {
            (Credential::Secret(s), Some(p)) => ct_eq(s.as_bytes(), p.as_bytes()),
            (Credential::SecretHash(h), Some(p)) => {
                ct_eq(h.as_bytes(), super::tokens::hash(p).as_bytes())
            }
            (Credential::Public, None) => true,
            _ => false,
        }
    }

    /// Whether the client has a secret.
    pub fn is_confidential(&self) -> bool {
        !matches!(self.credential, Credential::Public)
    }

    /// Resolves the redirect URI of an authorization request: the given one if this client may
    /// use it, or the only registered one if none is given.
    pub fn redirect_uri(&self, given: Option<&str>) -> Result<String, OAuthError> {
        match given {
            Some(uri) => {
                let allowed = if self.redirect_uris.is_empty() {
                    // 1.7.0 accepted any URI here (even javascript:); only https and loopback
                    // http are safe without an allow-list.
                    safe_redirect(uri).is_ok()
                } else {
                    safe_redirect(uri).is_ok()
                        && self.redirect_uris.iter().any(|r| redirect_matches(r, uri))
                };
                if allowed {
                    Ok(uri.to_string())
                } else {
                    Err(OAuthError::invalid_request("Unregistered redirect_uri"))
                }
            }
            None if self.redirect_uris.len() == 1 => Ok(self.redirect_uris[0].clone()),
            None => Err(OAuthError::invalid_request(
                "redirect_uri must be specified when client has multiple registered URIs",
            )),
        }
    }
}

/// Whether `uri` may receive authorization codes at all: `https`, or `http` to a loopback
/// address (RFC 8252), absolute, without a fragment.
pub fn safe_redirect(uri: &str) -> Result<Url, String> {
    let url = Url::parse(uri).map_err(|_| format!("{uri:?} is not an absolute URI"))?;
    if url.fragment().is_some() {
        return Err("a redirect URI may not have a fragment".to_string());
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if url.host_str().is_some_and(is_loopback_host) => Ok(url),
        other => Err(format!(
            "redirect URIs must be https (or http to a loopback address), not {other}:"
        )),
    }
}

/// Exact match, or (RFC 8252 §7.3) a loopback URI that differs only in its port.
pub fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(r), Ok(g)) = (Url::parse(registered), Url::parse(given)) else {
        return false;
    };
    r.scheme() == g.scheme()
        && r.host_str() == g.host_str()
        && r.host_str().is_some_and(is_loopback_host)
        && r.path() == g.path()
        && r.query() == g.query()
}

/// Validates a list of redirect URIs for registration.
pub fn check_redirect_uris(uris: &[String]) -> Result<(), OAuthError> {
    if uris.is_empty() {
        return Err(OAuthError::invalid_redirect_uri(
            "redirect_uris must list at least one URI",
        ));
    }
    for uri in uris {
        safe_redirect(uri).map_err(OAuthError::invalid_redirect_uri)?;
    }
    Ok(())
}

impl From<RegisteredClient> for Client {
    fn from(c: RegisteredClient) -> Self {
        Client {
            name: c
                .client_name
                .clone()
                .unwrap_or_else(|| "Unnamed client".to_string()),
            id: c.client_id,
            redirect_uris: c.redirect_uris,
            credential: match c.secret_hash {
                Some(h) => Credential::SecretHash(h),
                None => Credential::Public,
            },
            configured: false,
        }
    }
}

/// Client ID metadata documents: fetched from allow-listed https hosts, size-capped, cached.
pub struct MetadataClients {
    allowed_hosts: Vec<String>,
    cache: Mutex<HashMap<String, (Instant, Client)>>,
}

impl MetadataClients {
    /// CIMD for documents on `allowed_hosts` (empty: CIMD off).
    pub fn new(allowed_hosts: Vec<String>) -> Self {
        MetadataClients {
            allowed_hosts,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Whether CIMD is on.
    pub fn enabled(&self) -> bool {
        !self.allowed_hosts.is_empty()
    }

    /// Whether `client_id` is a metadata document URL this server would fetch.
    pub fn accepts(&self, client_id: &str) -> Option<Url> {
        let url = Url::parse(client_id).ok()?;
        let host = url.host_str()?.to_ascii_lowercase();
        (url.scheme() == "https"
            && url.port().is_none()
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
            && self.allowed_hosts.iter().any(|h| h == &host))
        .then_some(url)
    }

    /// The client a metadata document describes.
    pub async fn resolve(&self, client_id: &str) -> Result<Option<Client>, OAuthError> {
        let Some(url) = self.accepts(client_id) else {
            return Ok(None);
        };
        if let Ok(cache) = self.cache.lock()
            && let Some((at, client)) = cache.get(client_id)
            && at.elapsed() < METADATA_CACHE
        {
            return Ok(Some(client.clone()));
        }
        let client = fetch_document(&url).await?;
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() > 1000 {
                cache.retain(|_, (at, _)| at.elapsed() < METADATA_CACHE);
            }
            cache.insert(client_id.to_string(), (Instant::now(), client.clone()));
        }
        Ok(Some(client))
    }
}

async fn fetch_document(url: &Url) -> Result<Client, OAuthError> {
    let bad =
        |why: String| OAuthError::invalid_request(format!("client metadata document {url}: {why}"));
    // One fetch, one connection, never pooled; a redirect is an answer like any other status
    // (hyper follows none), so the document is always the one at this very URL.
    let http = HttpClient::new(outbound::Options {
        connect_timeout: METADATA_TIMEOUT,
        idle_timeout: Duration::ZERO,
        max_connections: 1,
    });
    let fetch = async {
        let request = outbound::request(
            hyper::Method::GET,
            url.as_str(),
            &[("accept", "application/json")],
            Bytes::new(),
        )
        .map_err(|e| bad(format!("cannot fetch it ({e})")))?;
        let response = http
            .send(request)
            .await
            .map_err(|e| bad(format!("cannot fetch it ({e})")))?;
        if !response.status().is_success() {
            return Err(bad(format!("HTTP {}", response.status().as_u16())));
        }
        response
            .bytes(MAX_METADATA_BYTES)
            .await
            .map_err(|e| bad(format!("cannot read it ({e})")))
    };
    let body = tokio::time::timeout(METADATA_TIMEOUT, fetch)
        .await
        .map_err(|_| bad("cannot fetch it (timed out)".to_string()))??;
    let doc: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| bad("it is not JSON".to_string()))?;
    if doc.get("client_id").and_then(|v| v.as_str()) != Some(url.as_str()) {
        return Err(bad("its client_id is not its own URL".to_string()));
    }
    let redirect_uris: Vec<String> = doc
        .get("redirect_uris")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    check_redirect_uris(&redirect_uris).map_err(|e| bad(e.description))?;
    let name = doc
        .get("client_name")
        .and_then(|v| v.as_str())
        .map(|n| n.chars().take(100).collect::<String>())
        .ok_or_else(|| bad("it has no client_name".to_string()))?;
    Ok(Client {
        id: url.to_string(),
        name,
        redirect_uris,
        credential: Credential::Public,
        configured: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(uris: &[&str]) -> Client {
        Client {
            id: "openclaw".into(),
            name: "OpenClaw MCP Client".into(),
            redirect_uris: uris.iter().map(|s| s.to_string()).collect(),
            credential: Credential::Secret("s".repeat(32)),
            configured: true,
        }
    }

    #[test]
    fn without_an_allow_list_only_https_and_loopback_http_pass() {
        let c = configured(&[]);
        assert!(
            c.redirect_uri(Some("https://claude.ai/api/mcp/auth_callback"))
                .is_ok()
        );
        assert!(
            c.redirect_uri(Some("http://127.0.0.1:6276/oauth/callback"))
                .is_ok()
        );
        assert!(c.redirect_uri(Some("http://localhost/cb")).is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "http://evil.example.com/cb",
            "https://x.example/cb#frag",
            "/relative",
        ] {
            assert!(c.redirect_uri(Some(bad)).is_err(), "{bad}");
        }
        assert!(c.redirect_uri(None).is_err());
    }

    #[test]
    fn with_an_allow_list_matches_are_exact_but_loopback_ports_may_differ() {
        let c = configured(&[
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:1/cb?x=1",
        ]);
        assert!(
            c.redirect_uri(Some("https://claude.ai/api/mcp/auth_callback"))
                .is_ok()
        );
        assert!(
            c.redirect_uri(Some("https://claude.ai/api/mcp/auth_callback/"))
                .is_err()
        );
        assert!(c.redirect_uri(Some("http://127.0.0.1:5555/cb?x=1")).is_ok());
        assert!(
            c.redirect_uri(Some("http://127.0.0.1:5555/cb?x=2"))
                .is_err()
        );
        assert!(c.redirect_uri(Some("https://evil.example/cb")).is_err());
    }

    #[test]
    fn secrets_compare_exactly() {
        let c = configured(&[]);
        assert!(c.secret_matches(Some(&"s".repeat(32))));
        assert!(!c.secret_matches(Some(&"s".repeat(31))));
        assert!(!c.secret_matches(None));
    }

    #[test]
    fn cimd_accepts_only_allow_listed_https_urls() {
        let m = MetadataClients::new(vec!["claude.ai".into()]);
        assert!(
            m.accepts("https://claude.ai/oauth/mcp-client.json")
                .is_some()
        );
        assert!(
            m.accepts("http://claude.ai/oauth/mcp-client.json")
                .is_none()
        );
        assert!(m.accepts("https://evil.example/client.json").is_none());
        assert!(m.accepts("https://claude.ai:8443/x").is_none());
        assert!(m.accepts("openclaw").is_none());
    }
}
