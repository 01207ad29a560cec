//! The single table of setting names ([`SETTINGS`]): each setting's TOML key, environment
//! variables and flag, whether it is a secret (and may come from a `_FILE`), and how a secret file
//! is read. The environment layer is read from it, error messages are named from it, and
//! `docs/configuration.md` is checked against it.

/// One setting's names in every layer. `key` is the TOML key and the figment key.
#[derive(Debug, Clone, Copy)]
pub struct SettingName {
    /// Key in the TOML file (and in figment).
    pub key: &'static str,
    /// Environment variables, first wins when several are set.
    pub env: &'static [&'static str],
    /// Long flag, without the dashes.
    pub flag: Option<&'static str>,
    /// Whether the value is a secret (never echoed in errors).
    pub secret: bool,
}

pub(super) const fn s(
    key: &'static str,
    env: &'static [&'static str],
    flag: Option<&'static str>,
) -> SettingName {
    SettingName {
        key,
        env,
        flag,
        secret: false,
    }
}

pub(super) const fn secret(
    key: &'static str,
    env: &'static [&'static str],
    flag: Option<&'static str>,
) -> SettingName {
    SettingName {
        key,
        env,
        flag,
        secret: true,
    }
}

/// Every setting, in the order `docs/configuration.md` lists them.
pub const SETTINGS: &[SettingName] = &[
    s("url", &["OPENCLAW_URL"], Some("openclaw-url")),
    secret(
        "gateway_token",
        &["OPENCLAW_GATEWAY_TOKEN"],
        Some("gateway-token"),
    ),
    s("model", &["OPENCLAW_MODEL"], Some("model")),
    s("timeout_ms", &["OPENCLAW_TIMEOUT_MS"], Some("timeout")),
    s("agent_id", &["OPENCLAW_AGENT_ID"], Some("agent-id")),
    s("api", &["OPENCLAW_API"], Some("api")),
    s("instances", &["OPENCLAW_INSTANCES"], None),
    s(
        "health_interval_ms",
        &["OPENCLAW_HEALTH_INTERVAL_MS"],
        Some("health-interval"),
    ),
    s("transport", &["OPENCLAW_MCP_TRANSPORT"], Some("transport")),
    s("debug", &["DEBUG"], Some("debug")),
    s("host", &["HOST"], Some("host")),
    s("port", &["PORT"], Some("port")),
    s("allowed_hosts", &["ALLOWED_HOSTS"], Some("allowed-hosts")),
    s("cors_origins", &["CORS_ORIGINS"], Some("cors-origins")),
    s("trust_proxy", &["TRUST_PROXY"], Some("trust-proxy")),
    s(
        "max_body_bytes",
        &["MCP_MAX_BODY_BYTES"],
        Some("max-body-bytes"),
    ),
    s(
        "session_idle_secs",
        &["MCP_SESSION_IDLE_SECS"],
        Some("session-idle-secs"),
    ),
    s("max_sessions", &["MCP_MAX_SESSIONS"], Some("max-sessions")),
    s(
        "replica_id",
        &["OPENCLAW_MCP_REPLICA_ID"],
        Some("replica-id"),
    ),
    s(
        "body_timeout_secs",
        &["MCP_BODY_TIMEOUT_SECS"],
        Some("body-timeout-secs"),
    ),
    s("metrics", &["METRICS_ENABLED"], Some("metrics")),
    s(
        "shutdown_grace_secs",
        &["MCP_SHUTDOWN_GRACE_SECS"],
        Some("shutdown-grace-secs"),
    ),
    s("auth", &["AUTH_ENABLED", "OAUTH_ENABLED"], Some("auth")),
    s("client_id", &["MCP_CLIENT_ID"], Some("client-id")),
    secret(
        "client_secret",
        &["MCP_CLIENT_SECRET"],
        Some("client-secret"),
    ),
    s("issuer_url", &["MCP_ISSUER_URL"], Some("issuer-url")),
    s(
        "redirect_uris",
        &["MCP_REDIRECT_URIS"],
        Some("redirect-uris"),
    ),
    s(
        "allow_dcr",
        &["MCP_DANGEROUSLY_ALLOW_DCR"],
        Some("allow-dcr"),
    ),
    s(
        "allow_dcr_public",
        &["MCP_DANGEROUSLY_ALLOW_DCR_PUBLIC"],
        None,
    ),
    s(
        "allow_insecure_issuer",
        &["MCP_DANGEROUSLY_ALLOW_INSECURE_ISSUER_URL"],
        None,
    ),
    secret(
        "approval_password",
        &["MCP_APPROVAL_PASSWORD"],
        Some("approval-password"),
    ),
    s(
        "cimd_allowed_hosts",
        &["MCP_CIMD_ALLOWED_HOSTS"],
        Some("cimd-allowed-hosts"),
    ),
    secret(
        "token_signing_key",
        &["MCP_TOKEN_SIGNING_KEY"],
        Some("token-signing-key"),
    ),
    s(
        "access_token_ttl_secs",
        &["MCP_ACCESS_TOKEN_TTL_SECS"],
        Some("access-token-ttl-secs"),
    ),
    s(
        "refresh_token_ttl_secs",
        &["MCP_REFRESH_TOKEN_TTL_SECS"],
        Some("refresh-token-ttl-secs"),
    ),
    s(
        "max_dcr_clients",
        &["MCP_MAX_DCR_CLIENTS"],
        Some("max-dcr-clients"),
    ),
    s(
        "rate_limit_per_minute",
        &["MCP_RATE_LIMIT_PER_MINUTE"],
        Some("rate-limit-per-minute"),
    ),
    s(
        "task_concurrency",
        &["OPENCLAW_TASK_CONCURRENCY"],
        Some("task-concurrency"),
    ),
    s("max_tasks", &["OPENCLAW_MAX_TASKS"], Some("max-tasks")),
    s(
        "task_retention_secs",
        &["OPENCLAW_TASK_RETENTION_SECS"],
        Some("task-retention-secs"),
    ),
    s("data_dir", &["OPENCLAW_MCP_DATA_DIR"], Some("data-dir")),
    secret(
        "database_url",
        &["OPENCLAW_MCP_DATABASE_URL"],
        Some("database-url"),
    ),
    s(
        "disabled_tools",
        &["OPENCLAW_MCP_DISABLED_TOOLS"],
        Some("disable-tools"),
    ),
    s("read_only", &["OPENCLAW_MCP_READ_ONLY"], Some("read-only")),
    s(
        "gateway_commands",
        &["OPENCLAW_GATEWAY_COMMANDS"],
        Some("gateway-commands"),
    ),
    secret("bearer_tokens", &["MCP_BEARER_TOKENS"], None),
];

/// Suffix of the variables (and TOML keys, `_file`) that give a secret's file instead of its
/// value: Docker and Kubernetes secrets.
pub const FILE_SUFFIX: &str = "_FILE";

/// Reads a secret file: its content without the trailing newline an editor adds.
/// Reads a secret from a file, without its trailing newline. An empty file is an error: a
/// mounted secret that came out empty is a deployment mistake, not "no token".
pub(super) fn read_secret_file(path: &str) -> Result<String, String> {
    let secret = std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if secret.trim().is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(secret)
}

pub(super) fn setting(key: &str) -> &'static SettingName {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        // unwrap: every key used in this module is in the table; a typo is a programming error
        // caught by the unit test `every_key_used_is_known`.
        .unwrap_or_else(|| panic!("unknown setting key {key}"))
}

/// The names of the figment layers, which say where a value came from in messages.
pub(super) const ENV_LAYER: &str = "environment";
pub(super) const FLAG_LAYER: &str = "command line";
pub(super) const FILE_LAYER: &str = "configuration file";
