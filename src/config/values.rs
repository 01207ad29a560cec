//! Parsers and rules of single values shared by validation and the rest of the bridge: ids and
//! names, loopback hosts, the OAuth issuer, CORS origins, trusted proxies, the default data
//! directory.

use std::path::PathBuf;

use super::settings::{CorsOrigins, TrustProxy};

/// The platform's directory for the task database (and the OAuth state), where a user's
/// per-machine application data lives:
///
/// - Windows: `%LOCALAPPDATA%\openclaw-mcp` (else `%USERPROFILE%\AppData\Local\openclaw-mcp`);
/// - macOS: `~/Library/Application Support/openclaw-mcp`;
/// - Linux and the rest: `$XDG_STATE_HOME/openclaw-mcp`, else `~/.local/state/openclaw-mcp`.
///
/// `None` (tasks kept in memory only) when none of those variables is set.
pub fn default_data_dir() -> Option<PathBuf> {
    data_dir_for(std::env::consts::OS, &|name| std::env::var_os(name))
}

/// [`default_data_dir`] for the operating system `os` (a `std::env::consts::OS` value) and the
/// environment `env`, so that every platform's rule is tested on any of them.
pub(super) fn data_dir_for(
    os: &str,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<PathBuf> {
    let var = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    match os {
        "windows" => var("LOCALAPPDATA")
            .or_else(|| var("USERPROFILE").map(|home| home.join("AppData").join("Local")))
            .map(|dir| dir.join("openclaw-mcp")),
        "macos" => var("HOME").map(|home| {
            home.join("Library")
                .join("Application Support")
                .join("openclaw-mcp")
        }),
        _ => var("XDG_STATE_HOME")
            .map(|state| state.join("openclaw-mcp"))
            .or_else(|| var("HOME").map(|home| home.join(".local/state/openclaw-mcp"))),
    }
}

pub(super) const AGENT_ID_RULE: &str =
    "an agent id: 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit";
pub(super) const TRUST_PROXY_RULE: &str = "true, false, a hop count, or a comma-separated list of loopback, linklocal, uniquelocal, IP addresses and CIDR ranges";

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

pub(super) fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

/// `[a-z0-9][a-z0-9_-]{0,63}`: the gateway's agent id rule.
pub fn is_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// 1.7.0's instance name rule: `^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$`.
pub fn is_instance_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'-')
}

/// 1.7.0's client id rule: `^[a-zA-Z0-9][a-zA-Z0-9_-]{2,63}$`.
pub fn is_client_id(id: &str) -> bool {
    id.len() >= 3 && is_instance_name(id)
}

pub(super) const REPLICA_ID_RULE: &str =
    "a replica name: 1-32 characters of A-Z, a-z, 0-9, '_' or '-'";

/// Whether `id` may name a replica ([`REPLICA_ID_RULE`]). The characters are those a session id
/// may carry unescaped in a header and in a query string, and none of them is the `.` that ends
/// the name in a session id, so a load balancer finds the name with one anchored regex.
pub fn is_replica_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
}

/// Whether `host` names this machine only (`127.0.0.1`, `localhost`, `::1`).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(super) fn parse_issuer(raw: &str, allow_insecure: bool) -> Result<url::Url, String> {
    let url = url::Url::parse(raw).map_err(|_| "an absolute https URL".to_string())?;
    if url.fragment().is_some() || url.query().is_some() {
        return Err("an https URL without query or fragment".to_string());
    }
    let loopback = url.host_str().is_some_and(is_loopback_host);
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback || allow_insecure => Ok(url),
        _ => {
            Err("an https URL (http is accepted only for localhost, 127.0.0.1 and ::1)".to_string())
        }
    }
}

/// 1.7.0's `CORS_ORIGINS` rules: unset, empty or `none` disable CORS; `*` allows any origin.
pub fn parse_cors(items: &[String]) -> CorsOrigins {
    match items {
        [] => CorsOrigins::Disabled,
        [one] if one.eq_ignore_ascii_case("none") => CorsOrigins::Disabled,
        [one] if one == "*" => CorsOrigins::Any,
        _ => CorsOrigins::List(items.to_vec()),
    }
}

/// 1.7.0's `parseTrustProxy`, with the pass-through values checked instead of handed blindly to
/// the framework.
pub fn parse_trust_proxy(raw: &str) -> Option<TrustProxy> {
    let v = raw.trim();
    if v.is_empty() {
        return Some(TrustProxy::Unset);
    }
    if v.eq_ignore_ascii_case("true") {
        return Some(TrustProxy::Bool(true));
    }
    if v.eq_ignore_ascii_case("false") {
        return Some(TrustProxy::Bool(false));
    }
    if v.bytes().all(|b| b.is_ascii_digit()) {
        return v.parse().ok().map(TrustProxy::Hops);
    }
    let items = split_list(v);
    for item in &items {
        let ok = matches!(item.as_str(), "loopback" | "linklocal" | "uniquelocal")
            || item.parse::<std::net::IpAddr>().is_ok()
            || item.split_once('/').is_some_and(|(ip, bits)| {
                ip.parse::<std::net::IpAddr>().is_ok_and(|ip| {
                    bits.parse::<u8>()
                        .is_ok_and(|b| b <= if ip.is_ipv4() { 32 } else { 128 })
                })
            });
        if !ok {
            return None;
        }
    }
    Some(TrustProxy::List(items))
}

/// The URL for display: a password embedded in it is replaced by `***`; in a URL that does not
/// parse, everything before an `@` in the authority is.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // unwrap-free: set_password only fails for URLs that cannot have credentials,
            // and this one has them.
            let _ = parsed.set_password(Some("***"));
            let shown = parsed.to_string();
            // Keep the configured form (Url adds a trailing slash to bare hosts).
            if !url.ends_with('/') && shown.ends_with('/') && parsed.path() == "/" {
                shown.trim_end_matches('/').to_string()
            } else {
                shown
            }
        }
        Ok(_) => url.to_string(),
        Err(_) => {
            let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) if scheme.is_empty() => format!("***@{}", &rest[at + 1..]),
                Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
                None => url.to_string(),
            }
        }
    }
}
