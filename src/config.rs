//! Settings: every knob of the bridge, layered with figment (defaults < TOML file < environment <
//! command-line flags), then validated once into typed [`Settings`].
//!
//! The names are those of openclaw-mcp 1.7.0 (`OPENCLAW_URL`, `--openclaw-url`, `PORT`, …) so that
//! an existing deployment keeps working when only the command changes. Unlike 1.7.0, every bad
//! value is one [`ConfigError`] naming the setting *where it came from* (the environment variable,
//! the flag or the key in the file), and `main` turns it into one stderr line and exit code 64.
//!
//! [`SETTINGS`] is the single table of names: the environment layer is read from it, error messages
//! are named from it, and `docs/configuration.md` is checked against it.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use figment::{
    Figment, Metadata, Profile, Provider,
    providers::Format,
    value::{Dict, Map, Value as FigValue},
};
use serde_json::Value;

use crate::cli::Cli;

/// Exit code for a configuration error (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: i32 = 64;

/// The default gateway URL of 1.7.0: a gateway on the same machine, default port.
pub const DEFAULT_URL: &str = "http://127.0.0.1:18789";
/// The default model string: routes to the gateway's default agent.
pub const DEFAULT_MODEL: &str = "openclaw";
/// 1.7.0's default request timeout: long enough for the gateway's own provider retries.
pub const DEFAULT_TIMEOUT_MS: u64 = 120_000;
/// Upper bound on any timeout: a day. Anything longer is almost certainly a unit mistake.
pub const MAX_TIMEOUT_MS: u64 = 86_400_000;
/// Probe each gateway this often while it is healthy.
pub const DEFAULT_HEALTH_INTERVAL_MS: u64 = 30_000;
/// The HTTP body limit of the MCP routes: 4 MiB holds a 100 000-character message in any script.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 4 * 1024 * 1024;
/// Idle MCP sessions are dropped after 30 minutes.
pub const DEFAULT_SESSION_IDLE_SECS: u64 = 30 * 60;
/// At most this many MCP sessions at once (past it: 503). An idle initialize-era session costs
/// about 60 KiB (rmcp's channels), so a flood that fills the table stays well inside the 128 MiB
/// that docker-compose.yml gives the bridge (measured: docs/security.md); one caller may hold a
/// quarter of them.
pub const DEFAULT_MAX_SESSIONS: u64 = 1000;
/// A request body must arrive in full within this many seconds (an idle timeout would not stop
/// a client that sends one byte a second).
pub const DEFAULT_BODY_TIMEOUT_SECS: u64 = 30;
/// Async jobs running at once, per process.
pub const DEFAULT_TASK_CONCURRENCY: u64 = 4;
/// Unfinished async tasks allowed at once (1.7.0's limit).
pub const DEFAULT_MAX_TASKS: u64 = 1000;
/// Finished tasks are kept this long (1.7.0: one hour).
pub const DEFAULT_TASK_RETENTION_SECS: u64 = 3600;
/// Access tokens live an hour (1.7.0's TTL).
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 3600;
/// Refresh tokens live a day (1.7.0's TTL).
pub const DEFAULT_REFRESH_TOKEN_TTL_SECS: u64 = 24 * 3600;
/// 1.7.0 kept at most 100 dynamically registered clients.
pub const DEFAULT_MAX_DCR_CLIENTS: u64 = 100;
/// MCP requests per minute per client address: generous for one user's clients, a brake on abuse.
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: u64 = 1200;
/// In-flight tool calls get this long to finish on SIGTERM/SIGINT.
pub const DEFAULT_SHUTDOWN_GRACE_SECS: u64 = 10;

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

const fn s(
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

const fn secret(
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
fn read_secret_file(path: &str) -> Result<String, String> {
    let secret = std::fs::read_to_string(path)
        .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
        .map_err(|e| format!("cannot read {path}: {e}"))?;
    if secret.trim().is_empty() {
        return Err(format!("{path} is empty"));
    }
    Ok(secret)
}

fn setting(key: &str) -> &'static SettingName {
    SETTINGS
        .iter()
        .find(|s| s.key == key)
        // unwrap: every key used in this module is in the table; a typo is a programming error
        // caught by the unit test `every_key_used_is_known`.
        .unwrap_or_else(|| panic!("unknown setting key {key}"))
}

/// A configuration problem, rendered as one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A setting has a value that cannot be used.
    #[error("{0}")]
    Invalid(String),
    /// The configuration file cannot be read or parsed.
    #[error("configuration file {path}: {reason}")]
    File { path: String, reason: String },
}

/// How the MCP client reaches us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// stdin/stdout, for Claude Desktop and Claude Code.
    Stdio,
    /// Streamable HTTP on `/mcp` plus legacy SSE, for Claude.ai.
    Http,
    /// 1.7.0's deprecated alias of `Http` (serves exactly the same, with a warning).
    Sse,
}

impl TransportKind {
    /// Whether this transport serves HTTP.
    pub fn is_http(self) -> bool {
        !matches!(self, TransportKind::Stdio)
    }
}

/// A secret value: never printed by `Debug`, registered for log redaction.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret string.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

/// One OpenClaw gateway the bridge can route to.
#[derive(Debug, Clone)]
pub struct InstanceSettings {
    /// Name used in the `instance` tool argument.
    pub name: String,
    /// URL as configured, for display (credentials in it are masked by [`display_url`]).
    pub url: String,
    /// URL with one trailing slash removed; requests go to `{base_url}/v1/...`.
    pub base_url: String,
    /// Bearer token sent to this gateway.
    pub token: Option<Secret>,
    /// Absolute deadline of one gateway request (and the idle deadline of a stream).
    pub timeout: Duration,
    /// Value of `model` in chat requests.
    pub model: String,
    /// Agent selected with `x-openclaw-agent-id`, if any.
    pub agent_id: Option<String>,
    /// Whether an empty `instance` argument routes here.
    pub is_default: bool,
    /// Which gateway API carries this instance's calls (`api`: auto, ws, http).
    pub api: Api,
    /// The bridge's data directory (the device identity of the WebSocket backend lives there);
    /// `None`: in memory only.
    pub data_dir: Option<PathBuf>,
}

/// Which of the gateway's APIs an instance uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// The WebSocket protocol when it can work here (a loopback gateway with the token, or a
    /// paired device), the OpenAI-compatible HTTP API otherwise.
    #[default]
    Auto,
    /// The WebSocket control protocol v4 only.
    Ws,
    /// The OpenAI-compatible HTTP API only (1.7.0's behaviour).
    Http,
}

/// What `api` accepts.
pub const API_RULE: &str = "one of auto, ws, http";

impl Api {
    /// Reads `auto`, `ws` or `http` (any case, trimmed).
    pub fn parse(text: &str) -> Option<Api> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Api::Auto),
            "ws" | "websocket" => Some(Api::Ws),
            "http" => Some(Api::Http),
            _ => None,
        }
    }

    /// `auto`, `ws` or `http`.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Auto => "auto",
            Api::Ws => "ws",
            Api::Http => "http",
        }
    }
}

/// How `X-Forwarded-For` is trusted (1.7.0's `parseTrustProxy`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrustProxy {
    /// Not set: the peer address is the client.
    #[default]
    Unset,
    /// `true`/`false`.
    Bool(bool),
    /// Number of proxy hops to trust.
    Hops(u32),
    /// Express-style list: `loopback`, `linklocal`, `uniquelocal`, IPs and CIDRs.
    List(Vec<String>),
}

/// CORS policy (1.7.0: off unless `CORS_ORIGINS` lists origins).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// No CORS headers at all.
    #[default]
    Disabled,
    /// `*`: any origin (loudly warned about at start).
    Any,
    /// Exact origins, bare hosts (`example.com` = http and https) and `*.domain` patterns.
    List(Vec<String>),
}

/// Settings of the HTTP transport.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Address to bind.
    pub host: String,
    /// Port to bind (0 = any free port, for tests).
    pub port: u16,
    /// Host names accepted in `Host` besides the loopback names.
    pub allowed_hosts: Vec<String>,
    /// CORS policy.
    pub cors: CorsOrigins,
    /// Proxy trust for client addresses.
    pub trust_proxy: TrustProxy,
    /// Largest accepted request body on the MCP routes.
    pub max_body_bytes: usize,
    /// Idle time after which an MCP session is dropped.
    pub session_idle: Duration,
    /// Most MCP sessions at once.
    pub max_sessions: usize,
    /// Total time a request body may take to arrive.
    pub body_timeout: Duration,
    /// Time in-flight calls get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Serve Prometheus metrics on `GET /metrics`.
    pub metrics: bool,
}

/// OAuth settings (HTTP only).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Whether OAuth protects the MCP routes.
    pub enabled: bool,
    /// The pre-registered confidential client.
    pub client_id: Option<String>,
    /// Its secret (at least 32 characters).
    pub client_secret: Option<Secret>,
    /// Public issuer URL, when set explicitly.
    pub issuer_url: Option<url::Url>,
    /// Redirect URI allow-list; empty = https or loopback http only.
    pub redirect_uris: Vec<String>,
    /// Dynamic client registration.
    pub allow_dcr: bool,
    /// DCR on a non-loopback bind.
    pub allow_dcr_public: bool,
    /// Allow an `http:` issuer on a non-loopback host.
    pub allow_insecure_issuer: bool,
    /// Password a person types on the consent page to approve a client without a secret.
    pub approval_password: Option<Secret>,
    /// Hosts whose client ID metadata documents are accepted (empty = CIMD off).
    pub cimd_allowed_hosts: Vec<String>,
    /// Key of the access tokens' HMAC signature; `None` = persisted in the data directory.
    pub token_signing_key: Option<Secret>,
    /// Life of an access token.
    pub access_token_ttl: Duration,
    /// Life of a refresh token.
    pub refresh_token_ttl: Duration,
    /// Most dynamically registered clients kept (oldest dropped first).
    pub max_dcr_clients: usize,
    /// Requests per minute per client address on the MCP routes (0 = no limit).
    pub rate_limit_per_minute: u32,
    /// Static bearer tokens (HTTP only), besides or instead of OAuth.
    pub bearer_tokens: Vec<BearerToken>,
}

impl AuthSettings {
    /// Whether the MCP routes require a token (OAuth or a static bearer token).
    pub fn required(&self) -> bool {
        self.enabled || !self.bearer_tokens.is_empty()
    }
}

/// Which tools are offered (`OPENCLAW_MCP_DISABLED_TOOLS`, `--read-only`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolSettings {
    /// Tools hidden from `tools/list` and refused.
    pub disabled: std::collections::BTreeSet<String>,
    /// Only the tools that change nothing.
    pub read_only: bool,
    /// Refuse chat messages that start with `/` (gateway commands) instead of sending them as
    /// text (`gateway_commands = refuse`).
    pub refuse_commands: bool,
}

impl ToolSettings {
    /// Whether `tool` is offered.
    pub fn enabled(&self, tool: &str) -> bool {
        !self.disabled.contains(tool) && (!self.read_only || crate::tool_names::is_read_only(tool))
    }
}

/// A named static bearer token for HTTP clients without OAuth (`MCP_BEARER_TOKENS`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerToken {
    /// The name used as the task owner and in logs.
    pub name: String,
    /// The token.
    pub token: Secret,
}

/// Async task settings.
#[derive(Debug, Clone)]
pub struct TaskSettings {
    /// Jobs running at once.
    pub concurrency: usize,
    /// Unfinished tasks allowed at once.
    pub max_tasks: usize,
    /// How long finished tasks stay readable.
    pub retention: Duration,
    /// Where the task database lives; `None` = in memory.
    pub data_dir: Option<PathBuf>,
}

/// The validated configuration of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How MCP clients connect.
    pub transport: TransportKind,
    /// Debug logging (message bodies, redacted, at debug level).
    pub debug: bool,
    /// Gateways, in configuration order; exactly one has `is_default`.
    pub instances: Vec<InstanceSettings>,
    /// Probe interval of a healthy gateway.
    pub health_interval: Duration,
    /// HTTP transport settings.
    pub http: HttpSettings,
    /// OAuth settings.
    pub auth: AuthSettings,
    /// Async task settings.
    pub tasks: TaskSettings,
    /// Which tools are offered.
    pub tools: ToolSettings,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Loads the layered configuration for `cli` with the process environment.
    pub fn load(cli: &Cli) -> Result<Settings, ConfigError> {
        Self::load_from(cli, |name| std::env::var(name).ok())
    }

    /// Loads the layered configuration with `env` as the environment (tests pass a map).
    pub fn load_from(
        cli: &Cli,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Settings, ConfigError> {
        let config_path = cli
            .config
            .clone()
            .or_else(|| env("OPENCLAW_MCP_CONFIG").filter(|p| !p.trim().is_empty()))
            .map(PathBuf::from);

        let mut figment = Figment::new();
        if let Some(path) = &config_path {
            figment = figment.merge(file_layer(path)?);
        }
        figment = figment.merge(env_layer(&env)?).merge(flag_layer(cli));
        let values: BTreeMap<String, Value> = figment
            .extract()
            .map_err(|e| ConfigError::Invalid(one_line(&e.to_string())))?;
        if let Some(unknown) = values
            .keys()
            .find(|k| !SETTINGS.iter().any(|s| s.key == k.as_str()))
        {
            let path = config_path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Err(ConfigError::File {
                path,
                reason: format!("unknown key `{unknown}` (see docs/configuration.md)"),
            });
        }
        let layers = Layers {
            values,
            figment,
            config_path: config_path.clone(),
        };
        let node_env_dev = env("NODE_ENV").is_some_and(|v| v == "development");
        layers.validate(node_env_dev, config_path)
    }
}

/// One figment layer with a name that says where its values came from.
struct Layer {
    name: &'static str,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        Metadata::named(self.name)
    }
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut map = Map::new();
        map.insert(Profile::Default, self.dict.clone());
        Ok(map)
    }
}

const ENV_LAYER: &str = "environment";
const FLAG_LAYER: &str = "command line";
const FILE_LAYER: &str = "configuration file";

fn file_layer(path: &std::path::Path) -> Result<Layer, ConfigError> {
    let file_err = |reason: String| ConfigError::File {
        path: path.display().to_string(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_err(e.to_string()))?;
    let data = figment::providers::Toml::string(&text)
        .data()
        .map_err(|e| file_err(one_line(&e.to_string())))?;
    let mut dict = data.into_values().next().unwrap_or_default();
    for setting in SETTINGS.iter().filter(|s| s.secret) {
        let file_key = format!("{}_file", setting.key);
        let Some(value) = dict.remove(&file_key) else {
            continue;
        };
        if dict.contains_key(setting.key) {
            return Err(file_err(format!(
                "set `{}` or `{file_key}`, not both",
                setting.key
            )));
        }
        let Some(relative) = value.as_str() else {
            return Err(file_err(format!("`{file_key}` must be a path")));
        };
        // A relative path is relative to the configuration file.
        let resolved = path
            .parent()
            .map(|dir| dir.join(relative))
            .unwrap_or_else(|| PathBuf::from(relative));
        let secret = read_secret_file(&resolved.to_string_lossy())
            .map_err(|e| file_err(format!("`{file_key}`: {e}")))?;
        dict.insert(setting.key.to_string(), FigValue::from(secret));
    }
    Ok(Layer {
        name: FILE_LAYER,
        dict,
    })
}

fn env_layer(env: &impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
    let mut dict = Dict::new();
    for setting in SETTINGS {
        let mut value = setting.env.iter().find_map(|name| env(name));
        if setting.secret {
            for name in setting.env {
                let file_var = format!("{name}{FILE_SUFFIX}");
                let Some(path) = env(&file_var).filter(|p| !p.trim().is_empty()) else {
                    continue;
                };
                if value.is_some() {
                    return Err(ConfigError::Invalid(format!(
                        "set {name} or {file_var}, not both"
                    )));
                }
                value = Some(
                    read_secret_file(path.trim())
                        .map_err(|e| ConfigError::Invalid(format!("{file_var}: {e}")))?,
                );
            }
        }
        if let Some(value) = value {
            dict.insert(setting.key.to_string(), FigValue::from(value));
        }
    }
    Ok(Layer {
        name: ENV_LAYER,
        dict,
    })
}

fn flag_layer(cli: &Cli) -> Layer {
    let mut dict = Dict::new();
    for (key, value) in cli.values() {
        dict.insert(key.to_string(), value);
    }
    Layer {
        name: FLAG_LAYER,
        dict,
    }
}

/// Collapses a multi-line message into one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

struct Layers {
    values: BTreeMap<String, Value>,
    figment: Figment,
    config_path: Option<PathBuf>,
}

impl Layers {
    /// The name of `key` as the user wrote it: the environment variable, the flag or the file key.
    fn origin(&self, key: &str) -> String {
        let setting = setting(key);
        let layer = self
            .figment
            .find_metadata(key)
            .map(|m| m.name.to_string())
            .unwrap_or_default();
        match layer.as_str() {
            FLAG_LAYER => format!("--{}", setting.flag.unwrap_or(key)),
            FILE_LAYER => format!(
                "`{key}` in {}",
                self.config_path
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
            _ => {
                // The environment layer holds the first variable that was set; name it.
                setting.env.first().copied().unwrap_or(key).to_string()
            }
        }
    }

    fn invalid(&self, key: &str, expected: &str) -> ConfigError {
        let shown = if setting(key).secret {
            String::new()
        } else {
            match self.values.get(key) {
                Some(Value::String(v)) => format!(", got {:?}", truncate(v, 80)),
                Some(other) => format!(", got {}", truncate(&other.to_string(), 80)),
                None => String::new(),
            }
        };
        ConfigError::Invalid(format!("{} must be {expected}{shown}", self.origin(key)))
    }

    fn string(&self, key: &str) -> Result<Option<String>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(v)) => Ok(Some(v.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(Value::Bool(b)) => Ok(Some(b.to_string())),
            Some(_) => Err(self.invalid(key, "a string")),
        }
    }

    /// A string that, when present, is trimmed and non-empty.
    fn nonempty(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self
            .string(key)?
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty()))
    }

    fn uint(&self, key: &str, min: u64, max: u64, what: &str) -> Result<Option<u64>, ConfigError> {
        let expected = format!("{what} between {min} and {max}");
        let parsed = match self.values.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(v)) if v.trim().is_empty() => return Ok(None),
            Some(Value::String(v)) => v.trim().parse::<u64>().ok(),
            Some(_) => None,
        };
        match parsed {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(self.invalid(key, &expected)),
        }
    }

    /// A boolean where anything but a clear "yes" is false (1.7.0's `=== "true"` for DEBUG,
    /// which must stay lenient because `DEBUG=*` is common in Node setups).
    fn lenient_bool(&self, key: &str) -> bool {
        match self.values.get(key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(v)) => {
                matches!(
                    v.trim().to_ascii_lowercase().as_str(),
                    "true" | "1" | "yes" | "on"
                )
            }
            Some(Value::Number(n)) => n.as_u64() == Some(1),
            _ => false,
        }
    }

    /// A boolean that must be spelled clearly: a security switch set to `TRUE` or `ture` must not
    /// silently leave the feature off, as 1.7.0's exact `=== "true"` does.
    fn strict_bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(v)) => match v.trim().to_ascii_lowercase().as_str() {
                "" | "false" | "0" | "no" | "off" => Ok(false),
                "true" | "1" | "yes" | "on" => Ok(true),
                _ => Err(self.invalid(key, "true or false")),
            },
            Some(_) => Err(self.invalid(key, "true or false")),
        }
    }

    /// A comma-separated list (or a TOML array), trimmed, empties dropped.
    fn list(&self, key: &str) -> Result<Vec<String>, ConfigError> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(v)) => Ok(split_list(v)),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(v) => Ok(v.trim().to_string()),
                    _ => Err(self.invalid(key, "a list of strings")),
                })
                .filter(|r| !matches!(r, Ok(v) if v.is_empty()))
                .collect(),
            Some(_) => Err(self.invalid(key, "a comma-separated list")),
        }
    }

    fn validate(
        &self,
        node_env_dev: bool,
        config_file: Option<PathBuf>,
    ) -> Result<Settings, ConfigError> {
        let transport = match self.nonempty("transport")?.as_deref() {
            None | Some("stdio") => TransportKind::Stdio,
            Some("http") => TransportKind::Http,
            Some("sse") => TransportKind::Sse,
            Some(_) => return Err(self.invalid("transport", "one of stdio, http, sse")),
        };
        let debug = self.lenient_bool("debug") || node_env_dev;

        let model = match self.string("model")? {
            None => DEFAULT_MODEL.to_string(),
            Some(m) if m.trim().is_empty() => {
                return Err(ConfigError::Invalid(
                    "OPENCLAW_MODEL / --model must be a non-empty string. Default is \"openclaw\"."
                        .to_string(),
                ));
            }
            Some(m) => m.trim().to_string(),
        };
        let timeout_ms = self
            .uint(
                "timeout_ms",
                1,
                MAX_TIMEOUT_MS,
                "a whole number of milliseconds",
            )?
            .unwrap_or(DEFAULT_TIMEOUT_MS);
        let agent_id = match self.nonempty("agent_id")? {
            Some(id) if !is_agent_id(&id) => {
                return Err(self.invalid("agent_id", AGENT_ID_RULE));
            }
            other => other,
        };
        let api = match self.nonempty("api")? {
            None => Api::Auto,
            Some(v) => Api::parse(&v).ok_or_else(|| self.invalid("api", API_RULE))?,
        };
        let mut instances = self.instances(&model, timeout_ms, agent_id.as_deref(), api)?;
        let health_interval = Duration::from_millis(
            self.uint(
                "health_interval_ms",
                100,
                MAX_TIMEOUT_MS,
                "a whole number of milliseconds",
            )?
            .unwrap_or(DEFAULT_HEALTH_INTERVAL_MS),
        );

        let http = self.http()?;
        let auth = self.auth(transport, &http)?;
        let tasks = self.tasks()?;
        let tools = self.tools()?;
        for instance in &mut instances {
            instance.data_dir = tasks.data_dir.clone();
        }

        Ok(Settings {
            transport,
            debug,
            instances,
            health_interval,
            http,
            auth,
            tasks,
            tools,
            config_file,
        })
    }

    fn instances(
        &self,
        model: &str,
        timeout_ms: u64,
        agent_id: Option<&str>,
        api: Api,
    ) -> Result<Vec<InstanceSettings>, ConfigError> {
        let raw = match self.values.get("instances") {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if text.trim().is_empty() => None,
            Some(Value::String(text)) => {
                let parsed: Value = serde_json::from_str(text).map_err(|e| {
                    ConfigError::Invalid(format!(
                        "{} contains invalid JSON: {e}",
                        self.origin("instances")
                    ))
                })?;
                Some(parsed)
            }
            Some(other) => Some(other.clone()),
        };
        let Some(raw) = raw else {
            let url = self
                .nonempty("url")?
                .unwrap_or_else(|| DEFAULT_URL.to_string());
            let token = self.nonempty("gateway_token")?.map(Secret::new);
            let instance = build_instance(
                "default", &url, token, timeout_ms, model, agent_id, true, api,
            )
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", self.origin("url"))))?;
            return Ok(vec![instance]);
        };
        let origin = self.origin("instances");
        parse_instances(&raw, &origin, model, timeout_ms, agent_id, api).map_err(|e| {
            // Name the setting once: some of 1.7.0's messages already do.
            ConfigError::Invalid(if e.contains(&origin) {
                e
            } else {
                format!("{origin}: {e}")
            })
        })
    }

    fn http(&self) -> Result<HttpSettings, ConfigError> {
        let host = self
            .nonempty("host")?
            .unwrap_or_else(|| "0.0.0.0".to_string());
        let port = self
            .uint("port", 0, 65535, "a port number")?
            .map(|p| p as u16)
            .unwrap_or(3000);
        let allowed_hosts = self
            .list("allowed_hosts")?
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let cors = parse_cors(&self.list("cors_origins")?);
        let trust_proxy = match self.values.get("trust_proxy") {
            Some(Value::Bool(b)) => TrustProxy::Bool(*b),
            Some(Value::Number(n)) => match n.as_u64().and_then(|n| u32::try_from(n).ok()) {
                Some(hops) => TrustProxy::Hops(hops),
                None => return Err(self.invalid("trust_proxy", TRUST_PROXY_RULE)),
            },
            _ => parse_trust_proxy(self.string("trust_proxy")?.as_deref().unwrap_or(""))
                .ok_or_else(|| self.invalid("trust_proxy", TRUST_PROXY_RULE))?,
        };
        let max_body_bytes = self
            .uint(
                "max_body_bytes",
                1024,
                1024 * 1024 * 1024,
                "a number of bytes",
            )?
            .unwrap_or(DEFAULT_MAX_BODY_BYTES) as usize;
        let session_idle = Duration::from_secs(
            self.uint("session_idle_secs", 1, 7 * 24 * 3600, "a number of seconds")?
                .unwrap_or(DEFAULT_SESSION_IDLE_SECS),
        );
        let max_sessions = self
            .uint("max_sessions", 2, 1_000_000, "a number of sessions")?
            .unwrap_or(DEFAULT_MAX_SESSIONS) as usize;
        let body_timeout = Duration::from_secs(
            self.uint("body_timeout_secs", 1, 30, "a number of seconds")?
                .unwrap_or(DEFAULT_BODY_TIMEOUT_SECS),
        );
        let shutdown_grace = Duration::from_secs(
            self.uint("shutdown_grace_secs", 0, 3600, "a number of seconds")?
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE_SECS),
        );
        let metrics = self.strict_bool("metrics")?;
        Ok(HttpSettings {
            metrics,
            host,
            port,
            allowed_hosts,
            cors,
            trust_proxy,
            max_body_bytes,
            session_idle,
            max_sessions,
            body_timeout,
            shutdown_grace,
        })
    }

    fn auth(
        &self,
        transport: TransportKind,
        http: &HttpSettings,
    ) -> Result<AuthSettings, ConfigError> {
        let enabled_flag = self.strict_bool("auth")?;
        let client_id = self.nonempty("client_id")?;
        let client_secret = self.string("client_secret")?.map(Secret::new);
        let redirect_uris = self.list("redirect_uris")?;
        let allow_dcr = self.strict_bool("allow_dcr")?;
        let allow_dcr_public = self.strict_bool("allow_dcr_public")?;
        let allow_insecure_issuer = self.strict_bool("allow_insecure_issuer")?;
        let issuer_raw = self.nonempty("issuer_url")?;
        let approval_password = self.string("approval_password")?.map(Secret::new);
        let cimd_allowed_hosts: Vec<String> = self
            .list("cimd_allowed_hosts")?
            .into_iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let token_signing_key = self.string("token_signing_key")?.map(Secret::new);
        let access_token_ttl = Duration::from_secs(
            self.uint(
                "access_token_ttl_secs",
                60,
                24 * 3600,
                "a number of seconds",
            )?
            .unwrap_or(DEFAULT_ACCESS_TOKEN_TTL_SECS),
        );
        let refresh_token_ttl = Duration::from_secs(
            self.uint(
                "refresh_token_ttl_secs",
                300,
                365 * 24 * 3600,
                "a number of seconds",
            )?
            .unwrap_or(DEFAULT_REFRESH_TOKEN_TTL_SECS),
        );
        let max_dcr_clients = self
            .uint("max_dcr_clients", 1, 100_000, "a number of clients")?
            .unwrap_or(DEFAULT_MAX_DCR_CLIENTS) as usize;
        let rate_limit_per_minute = self
            .uint(
                "rate_limit_per_minute",
                0,
                1_000_000,
                "a number of requests",
            )?
            .map(|n| n as u32);
        // Static tokens guard HTTP only; in stdio they are ignored like the OAuth settings.
        let bearer_tokens = if transport.is_http() {
            self.bearer_tokens()?
        } else {
            Vec::new()
        };

        // Auth applies to HTTP only; in stdio these settings are ignored, as in 1.7.0.
        let enabled = enabled_flag && transport.is_http();
        // The MCP routes get the default limit only behind auth (a deployment meant for several
        // callers); without auth, as in 1.7.0, there is none unless one is set. A local,
        // single-user bridge (or a proxy in front without TRUST_PROXY) would otherwise share
        // 20 requests/s among everything it serves.
        let rate_limit_per_minute =
            rate_limit_per_minute.unwrap_or(if enabled || !bearer_tokens.is_empty() {
                DEFAULT_RATE_LIMIT_PER_MINUTE as u32
            } else {
                0
            });
        let mut issuer_url = None;
        if enabled {
            let Some(id) = client_id.as_deref() else {
                return Err(ConfigError::Invalid(
                    "AUTH_ENABLED=true but MCP_CLIENT_ID is not set. Refusing to start without auth."
                        .to_string(),
                ));
            };
            if !is_client_id(id) {
                return Err(ConfigError::Invalid(
                    "MCP_CLIENT_ID is invalid. Must be 3-64 characters, alphanumeric/dashes/underscores, start with a letter or digit."
                        .to_string(),
                ));
            }
            if client_secret
                .as_ref()
                .is_none_or(|s| s.expose().chars().count() < 32)
            {
                return Err(ConfigError::Invalid(
                    "MCP_CLIENT_SECRET must be at least 32 characters. Generate one with: openssl rand -hex 32"
                        .to_string(),
                ));
            }
            if let Some(raw) = &issuer_raw {
                issuer_url = Some(
                    parse_issuer(raw, allow_insecure_issuer)
                        .map_err(|e| self.invalid("issuer_url", &e))?,
                );
            }
            for uri in &redirect_uris {
                let scheme = url::Url::parse(uri).map(|u| u.scheme().to_string());
                if scheme
                    .as_deref()
                    .is_ok_and(|s| matches!(s, "javascript" | "data" | "vbscript" | "file"))
                {
                    return Err(ConfigError::Invalid(format!(
                        "{} may not contain a {} URI",
                        self.origin("redirect_uris"),
                        scheme.unwrap_or_default()
                    )));
                }
                if scheme.is_err() {
                    return Err(ConfigError::Invalid(format!(
                        "{} must be a comma-separated list of absolute URIs, got {uri:?}",
                        self.origin("redirect_uris")
                    )));
                }
            }
            if allow_dcr && !is_loopback_host(&http.host) && !allow_dcr_public {
                return Err(ConfigError::Invalid(format!(
                    "MCP_DANGEROUSLY_ALLOW_DCR=true is set but HOST=\"{}\" is not loopback. Dynamic Client Registration combined with a publicly reachable bind allows anyone on the network to obtain a token. Bind to 127.0.0.1, or set MCP_DANGEROUSLY_ALLOW_DCR_PUBLIC=true to override. Refusing to start.",
                    http.host
                )));
            }
            if let Some(password) = &approval_password
                && password.expose().chars().count() < 12
            {
                return Err(ConfigError::Invalid(
                    "MCP_APPROVAL_PASSWORD must be at least 12 characters".to_string(),
                ));
            }
            if (allow_dcr || !cimd_allowed_hosts.is_empty()) && approval_password.is_none() {
                return Err(ConfigError::Invalid(
                    "Dynamic client registration and client ID metadata documents let clients without a secret ask for tokens; set MCP_APPROVAL_PASSWORD so that a person approves each one on the consent page. Refusing to start."
                        .to_string(),
                ));
            }
            if let Some(key) = &token_signing_key
                && key.expose().len() < 32
            {
                return Err(ConfigError::Invalid(
                    "MCP_TOKEN_SIGNING_KEY must be at least 32 characters. Generate one with: openssl rand -hex 32"
                        .to_string(),
                ));
            }
        }
        Ok(AuthSettings {
            enabled,
            client_id,
            client_secret,
            issuer_url,
            redirect_uris,
            allow_dcr,
            allow_dcr_public,
            allow_insecure_issuer,
            approval_password,
            cimd_allowed_hosts,
            token_signing_key,
            access_token_ttl,
            refresh_token_ttl,
            max_dcr_clients,
            rate_limit_per_minute,
            bearer_tokens,
        })
    }

    fn tools(&self) -> Result<ToolSettings, ConfigError> {
        let mut disabled = std::collections::BTreeSet::new();
        for name in self.list("disabled_tools")? {
            if !crate::tool_names::is_tool(&name) {
                return Err(ConfigError::Invalid(format!(
                    "{} names an unknown tool {name:?}; the tools are {}",
                    self.origin("disabled_tools"),
                    crate::tool_names::ALL_TOOLS.join(", ")
                )));
            }
            disabled.insert(name);
        }
        let refuse_commands = match self.nonempty("gateway_commands")?.as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("text") => false,
            Some(v) if v.eq_ignore_ascii_case("refuse") => true,
            Some(_) => return Err(self.invalid("gateway_commands", "one of text, refuse")),
        };
        Ok(ToolSettings {
            disabled,
            read_only: self.strict_bool("read_only")?,
            refuse_commands,
        })
    }

    fn bearer_tokens(&self) -> Result<Vec<BearerToken>, ConfigError> {
        let Some(raw) = self.string("bearer_tokens")? else {
            return Ok(Vec::new());
        };
        let origin = self.origin("bearer_tokens");
        let mut tokens: Vec<BearerToken> = Vec::new();
        for entry in raw
            .split([',', '\n'])
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.starts_with('#'))
        {
            let Some((name, token)) = entry.split_once(':') else {
                return Err(ConfigError::Invalid(format!(
                    "{origin} must be a list of name:token entries"
                )));
            };
            let (name, token) = (name.trim(), token.trim());
            if name.is_empty()
                || name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            {
                return Err(ConfigError::Invalid(format!(
                    "{origin}: token name {name:?} must be 1-64 letters, digits, '-', '_' or '.'"
                )));
            }
            if token.chars().count() < 16 || token.chars().any(char::is_whitespace) {
                return Err(ConfigError::Invalid(format!(
                    "{origin}: the token named {name:?} must be at least 16 characters without spaces (openssl rand -hex 32)"
                )));
            }
            if tokens.iter().any(|t| t.name == name) {
                return Err(ConfigError::Invalid(format!(
                    "{origin}: the name {name:?} is used twice"
                )));
            }
            if tokens.iter().any(|t| t.token.expose() == token) {
                return Err(ConfigError::Invalid(format!(
                    "{origin}: two names share one token"
                )));
            }
            tokens.push(BearerToken {
                name: name.to_string(),
                token: Secret::new(token),
            });
        }
        Ok(tokens)
    }

    fn tasks(&self) -> Result<TaskSettings, ConfigError> {
        let concurrency = self
            .uint("task_concurrency", 1, 64, "a number of jobs")?
            .unwrap_or(DEFAULT_TASK_CONCURRENCY) as usize;
        let max_tasks = self
            .uint("max_tasks", 1, 1_000_000, "a number of tasks")?
            .unwrap_or(DEFAULT_MAX_TASKS) as usize;
        let retention = Duration::from_secs(
            self.uint(
                "task_retention_secs",
                1,
                365 * 24 * 3600,
                "a number of seconds",
            )?
            .unwrap_or(DEFAULT_TASK_RETENTION_SECS),
        );
        let data_dir = match self.nonempty("data_dir")?.as_deref() {
            Some(":memory:") => None,
            Some(dir) => Some(PathBuf::from(dir)),
            None => default_data_dir(),
        };
        Ok(TaskSettings {
            concurrency,
            max_tasks,
            retention,
            data_dir,
        })
    }
}

/// The platform's state directory for the task database: `$XDG_STATE_HOME/openclaw-mcp`, else
/// `~/.local/state/openclaw-mcp`; `None` (in memory) when neither can be found.
pub fn default_data_dir() -> Option<PathBuf> {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(state).join("openclaw-mcp"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|home| PathBuf::from(home).join(".local/state/openclaw-mcp"))
}

const AGENT_ID_RULE: &str =
    "an agent id: 1-64 characters of a-z, 0-9, '_' or '-', starting with a letter or digit";
const TRUST_PROXY_RULE: &str = "true, false, a hop count, or a comma-separated list of loopback, linklocal, uniquelocal, IP addresses and CIDR ranges";

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max).collect();
        out.push('…');
        out
    }
}

fn split_list(v: &str) -> Vec<String> {
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

/// Whether `host` names this machine only (`127.0.0.1`, `localhost`, `::1`).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn parse_issuer(raw: &str, allow_insecure: bool) -> Result<url::Url, String> {
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

/// Parses the `OPENCLAW_INSTANCES` array with 1.7.0's checks and messages, in its order.
pub fn parse_instances(
    raw: &Value,
    origin: &str,
    model: &str,
    timeout_ms: u64,
    agent_id: Option<&str>,
    api: Api,
) -> Result<Vec<InstanceSettings>, String> {
    let items = match raw {
        Value::Array(items) if !items.is_empty() => items,
        _ => return Err(format!("{origin} must be a non-empty JSON array")),
    };
    let mut out: Vec<InstanceSettings> = Vec::with_capacity(items.len());
    let mut explicit_default: Option<String> = None;
    for item in items {
        let Some(obj) = item.as_object() else {
            return Err(format!(
                "Each instance in {origin} must have a non-empty string \"name\""
            ));
        };
        let name = match obj.get("name") {
            Some(Value::String(n)) if !n.is_empty() => n.clone(),
            _ => {
                return Err(format!(
                    "Each instance in {origin} must have a non-empty string \"name\""
                ));
            }
        };
        let url = match obj.get("url") {
            Some(Value::String(u)) if !u.is_empty() => u.clone(),
            _ => {
                return Err(format!(
                    "Instance \"{}\": must have a non-empty string \"url\"",
                    name.escape_debug()
                ));
            }
        };
        if !is_instance_name(&name) {
            return Err(format!(
                "Invalid instance name \"{}\": must be 1-64 chars, alphanumeric/dashes/underscores, start with alphanumeric",
                name.escape_debug()
            ));
        }
        let token = match obj.get("token") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) if t.is_empty() => None,
            Some(Value::String(t)) => Some(Secret::new(t.clone())),
            Some(_) => return Err(format!("Instance \"{name}\": \"token\" must be a string")),
        };
        let token_file = obj.get("tokenFile").or_else(|| obj.get("token_file"));
        let token = match (token, token_file) {
            (token, None | Some(Value::Null)) => token,
            (Some(_), Some(_)) => {
                return Err(format!(
                    "Instance \"{name}\": set \"token\" or \"tokenFile\", not both"
                ));
            }
            (None, Some(Value::String(path))) => {
                Some(Secret::new(read_secret_file(path).map_err(|e| {
                    format!("Instance \"{name}\": \"tokenFile\": {e}")
                })?))
            }
            (None, Some(_)) => {
                return Err(format!("Instance \"{name}\": \"tokenFile\" must be a path"));
            }
        };
        let timeout = match obj.get("timeout") {
            None | Some(Value::Null) => timeout_ms,
            Some(Value::Number(n)) => match n.as_u64().filter(|t| (1..=MAX_TIMEOUT_MS).contains(t))
            {
                Some(t) => t,
                None => return Err(timeout_error(&name)),
            },
            Some(Value::String(t)) => match t.trim().parse::<u64>() {
                Ok(t) if (1..=MAX_TIMEOUT_MS).contains(&t) => t,
                _ => return Err(timeout_error(&name)),
            },
            Some(_) => return Err(timeout_error(&name)),
        };
        let instance_agent = match obj.get("agentId").or_else(|| obj.get("agent_id")) {
            None | Some(Value::Null) => agent_id.map(str::to_string),
            Some(Value::String(a)) if is_agent_id(a.trim()) => Some(a.trim().to_string()),
            Some(_) => {
                return Err(format!(
                    "Instance \"{name}\": \"agentId\" must be {AGENT_ID_RULE}"
                ));
            }
        };
        let instance_model = match obj.get("model") {
            None | Some(Value::Null) => model.to_string(),
            Some(Value::String(m)) if !m.trim().is_empty() => m.trim().to_string(),
            Some(_) => {
                return Err(format!(
                    "Instance \"{name}\": \"model\" must be a non-empty string"
                ));
            }
        };
        let is_default = match obj.get("default") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(format!(
                    "Instance \"{name}\": \"default\" must be true or false"
                ));
            }
        };
        let instance_api = match obj.get("api") {
            None | Some(Value::Null) => api,
            Some(Value::String(a)) => Api::parse(a)
                .ok_or_else(|| format!("Instance \"{name}\": \"api\" must be {API_RULE}"))?,
            Some(_) => return Err(format!("Instance \"{name}\": \"api\" must be {API_RULE}")),
        };
        let instance = build_instance(
            &name,
            &url,
            token,
            timeout,
            &instance_model,
            instance_agent.as_deref(),
            is_default,
            instance_api,
        )?;
        if out.iter().any(|i| i.name == name) {
            return Err(format!("Duplicate instance name: \"{name}\""));
        }
        if is_default {
            if let Some(first) = &explicit_default {
                return Err(format!(
                    "Multiple default instances: \"{first}\" and \"{name}\". Only one default is allowed."
                ));
            }
            explicit_default = Some(name.clone());
        }
        out.push(instance);
    }
    if explicit_default.is_none() {
        out[0].is_default = true;
    }
    Ok(out)
}

fn timeout_error(name: &str) -> String {
    format!(
        "Instance \"{name}\": \"timeout\" must be a whole number of milliseconds between 1 and {MAX_TIMEOUT_MS}"
    )
}

// Eight plain fields of one instance; a struct for them would only repeat InstanceSettings.
#[allow(clippy::too_many_arguments)]
fn build_instance(
    name: &str,
    url: &str,
    token: Option<Secret>,
    timeout_ms: u64,
    model: &str,
    agent_id: Option<&str>,
    is_default: bool,
    api: Api,
) -> Result<InstanceSettings, String> {
    check_gateway_url(name, url)?;
    let base_url = url.strip_suffix('/').unwrap_or(url).to_string();
    Ok(InstanceSettings {
        name: name.to_string(),
        url: url.to_string(),
        base_url,
        token,
        timeout: Duration::from_millis(timeout_ms),
        model: model.to_string(),
        agent_id: agent_id.map(str::to_string),
        is_default,
        api,
        data_dir: None,
    })
}

/// 1.7.0's URL rules: it must parse, and the scheme must be http or https. The URL in an
/// error has its password hidden and its control characters escaped: an error is one line.
fn check_gateway_url(name: &str, url: &str) -> Result<(), String> {
    let invalid = || {
        format!(
            "Instance \"{name}\": invalid URL \"{}\"",
            display_url(url).escape_debug()
        )
    };
    let parsed = url::Url::parse(url).map_err(|_| invalid())?;
    match parsed.scheme() {
        "http" | "https" if parsed.host_str().is_some_and(|h| !h.is_empty()) => Ok(()),
        "http" | "https" => Err(invalid()),
        other => Err(format!(
            "Instance \"{name}\": URL must use http or https (got {other}:)"
        )),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let mut argv = vec!["openclaw-mcp"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).expect("flags parse");
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(&cli, |k| env.get(k).cloned())
    }

    fn err(args: &[&str], env: &[(&str, &str)]) -> String {
        load(args, env).expect_err("should fail").to_string()
    }

    #[test]
    fn every_key_used_is_known() {
        for key in [
            "url",
            "gateway_token",
            "model",
            "timeout_ms",
            "agent_id",
            "instances",
            "health_interval_ms",
            "transport",
            "debug",
            "host",
            "port",
            "allowed_hosts",
            "cors_origins",
            "trust_proxy",
            "max_body_bytes",
            "session_idle_secs",
            "max_sessions",
            "shutdown_grace_secs",
            "metrics",
            "disabled_tools",
            "read_only",
            "bearer_tokens",
            "auth",
            "client_id",
            "client_secret",
            "issuer_url",
            "redirect_uris",
            "allow_dcr",
            "allow_dcr_public",
            "allow_insecure_issuer",
            "task_concurrency",
            "max_tasks",
            "task_retention_secs",
            "data_dir",
        ] {
            let _ = setting(key);
        }
    }

    #[test]
    fn defaults_are_those_of_1_7_0() {
        let s = load(&[], &[]).unwrap();
        assert_eq!(s.transport, TransportKind::Stdio);
        assert_eq!(s.instances.len(), 1);
        let i = &s.instances[0];
        assert_eq!(i.name, "default");
        assert_eq!(i.url, DEFAULT_URL);
        assert_eq!(i.model, "openclaw");
        assert_eq!(i.timeout, Duration::from_millis(120_000));
        assert!(i.is_default && i.token.is_none() && i.agent_id.is_none());
        assert_eq!(s.http.port, 3000);
        assert_eq!(s.http.host, "0.0.0.0");
        assert_eq!(s.http.cors, CorsOrigins::Disabled);
        assert!(!s.auth.enabled);
        assert_eq!(s.tasks.concurrency, 4);
        assert_eq!(s.tasks.max_tasks, 1000);
    }

    #[test]
    fn flags_beat_environment() {
        let s = load(
            &["-u", "http://flag:1", "--timeout", "500"],
            &[
                ("OPENCLAW_URL", "http://env:1"),
                ("OPENCLAW_TIMEOUT_MS", "900"),
            ],
        )
        .unwrap();
        assert_eq!(s.instances[0].url, "http://flag:1");
        assert_eq!(s.instances[0].timeout, Duration::from_millis(500));
    }

    #[test]
    fn environment_beats_file_and_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "url = \"http://file:1\"\ntimeout_ms = 700\nmodel = \"openclaw/ops\"\n",
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let s = load(&["--config", p], &[("OPENCLAW_URL", "http://env:1")]).unwrap();
        assert_eq!(s.instances[0].url, "http://env:1");
        assert_eq!(s.instances[0].timeout, Duration::from_millis(700));
        assert_eq!(s.instances[0].model, "openclaw/ops");
        let s = load(&[], &[("OPENCLAW_MCP_CONFIG", p)]).unwrap();
        assert_eq!(s.instances[0].url, "http://file:1");
    }

    #[test]
    fn file_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "timout_ms = 5\n").unwrap();
        let e = err(&["--config", path.to_str().unwrap()], &[]);
        assert!(e.contains("unknown key `timout_ms`"), "{e}");
        let e = err(&["--config", "/nonexistent/c.toml"], &[]);
        assert!(
            e.starts_with("configuration file /nonexistent/c.toml:"),
            "{e}"
        );
        std::fs::write(&path, "timeout_ms = \"soon\"\n").unwrap();
        let e = err(&["--config", path.to_str().unwrap()], &[]);
        assert!(e.starts_with("`timeout_ms` in "), "{e}");
    }

    #[test]
    fn non_numeric_timeout_names_the_setting() {
        assert_eq!(
            err(&[], &[("OPENCLAW_TIMEOUT_MS", "abc")]),
            "OPENCLAW_TIMEOUT_MS must be a whole number of milliseconds between 1 and 86400000, got \"abc\""
        );
        assert!(err(&["--timeout=-5"], &[]).starts_with("--timeout must be"));
        assert!(err(&[], &[("PORT", "http")]).starts_with("PORT must be a port number"));
    }

    #[test]
    fn instances_follow_1_7_0_rules_and_messages() {
        let cases: &[(&str, &str)] = &[
            ("[", "OPENCLAW_INSTANCES contains invalid JSON: "),
            ("{}", "OPENCLAW_INSTANCES must be a non-empty JSON array"),
            ("[]", "OPENCLAW_INSTANCES must be a non-empty JSON array"),
            (
                r#"[{"url":"http://a"}]"#,
                "Each instance in OPENCLAW_INSTANCES must have a non-empty string \"name\"",
            ),
            (
                r#"[{"name":"a"}]"#,
                "Instance \"a\": must have a non-empty string \"url\"",
            ),
            (
                r#"[{"name":"-bad","url":"http://a"}]"#,
                "Invalid instance name \"-bad\": must be 1-64 chars, alphanumeric/dashes/underscores, start with alphanumeric",
            ),
            (
                r#"[{"name":"a","url":"not a url"}]"#,
                "Instance \"a\": invalid URL \"not a url\"",
            ),
            (
                r#"[{"name":"a","url":"ftp://x"}]"#,
                "Instance \"a\": URL must use http or https (got ftp:)",
            ),
            // Unlike 1.7.0, an error stays one line and shows no password (found by tests/fuzz.rs).
            (
                r#"[{"name":"x\ny"}]"#,
                "Instance \"x\\ny\": must have a non-empty string \"url\"",
            ),
            (
                r#"[{"name":"a\"\n","url":"http://x"}]"#,
                "Invalid instance name \"a\\\"\\n\": must be",
            ),
            (
                r#"[{"name":"a","url":"http://u:secret@x:99999"}]"#,
                "Instance \"a\": invalid URL \"http://***@x:99999\"",
            ),
            (
                r#"[{"name":"a","url":"http://x"},{"name":"a","url":"http://y"}]"#,
                "Duplicate instance name: \"a\"",
            ),
            (
                r#"[{"name":"a","url":"http://x","default":true},{"name":"b","url":"http://y","default":true}]"#,
                "Multiple default instances: \"a\" and \"b\". Only one default is allowed.",
            ),
            (
                r#"[{"name":"a","url":"http://x","timeout":"soon"}]"#,
                "Instance \"a\": \"timeout\" must be",
            ),
        ];
        for (json, expected) in cases {
            let e = err(&[], &[("OPENCLAW_INSTANCES", json)]);
            assert!(e.contains(expected), "{json}: {e}");
        }
    }

    #[test]
    fn instances_take_precedence_and_first_is_default() {
        let s = load(
            &[],
            &[
                ("OPENCLAW_URL", "http://ignored:1"),
                ("OPENCLAW_AGENT_ID", "ops"),
                (
                    "OPENCLAW_INSTANCES",
                    r#"[{"name":"prod","url":"http://prod:18789/","token":"t1","timeout":300000},{"name":"dev","url":"https://dev","agentId":"main"}]"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!(s.instances.len(), 2);
        let prod = &s.instances[0];
        assert!(prod.is_default);
        assert_eq!(prod.base_url, "http://prod:18789");
        assert_eq!(prod.token.as_ref().unwrap().expose(), "t1");
        assert_eq!(prod.timeout, Duration::from_millis(300_000));
        assert_eq!(prod.agent_id.as_deref(), Some("ops"));
        assert_eq!(s.instances[1].agent_id.as_deref(), Some("main"));
        assert!(!s.instances[1].is_default);
    }

    #[test]
    fn auth_checks_run_only_for_http() {
        assert!(load(&[], &[("AUTH_ENABLED", "true")]).is_ok());
        assert_eq!(
            err(&["--transport", "http"], &[("AUTH_ENABLED", "true")]),
            "AUTH_ENABLED=true but MCP_CLIENT_ID is not set. Refusing to start without auth."
        );
        assert!(
            err(
                &["-t", "http"],
                &[("AUTH_ENABLED", "true"), ("MCP_CLIENT_ID", "x")]
            )
            .starts_with("MCP_CLIENT_ID is invalid.")
        );
        assert!(
            err(
                &["-t", "http"],
                &[
                    ("AUTH_ENABLED", "true"),
                    ("MCP_CLIENT_ID", "openclaw"),
                    ("MCP_CLIENT_SECRET", "short")
                ]
            )
            .starts_with("MCP_CLIENT_SECRET must be at least 32 characters.")
        );
        let secret = "0123456789abcdef0123456789abcdef";
        let base = [
            ("AUTH_ENABLED", "true"),
            ("MCP_CLIENT_ID", "openclaw"),
            ("MCP_CLIENT_SECRET", secret),
        ];
        assert!(load(&["-t", "http"], &base).unwrap().auth.enabled);
        let mut with_issuer = base.to_vec();
        with_issuer.push(("MCP_ISSUER_URL", "http://bridge.example.com"));
        assert!(
            err(&["-t", "http"], &with_issuer).starts_with("MCP_ISSUER_URL must be an https URL")
        );
        let mut dcr = base.to_vec();
        dcr.push(("MCP_DANGEROUSLY_ALLOW_DCR", "true"));
        assert!(err(&["-t", "http"], &dcr).contains("is not loopback"));
        assert!(
            err(&["-t", "http", "--host", "127.0.0.1"], &dcr).contains("set MCP_APPROVAL_PASSWORD")
        );
        dcr.push(("MCP_APPROVAL_PASSWORD", "correct horse battery"));
        assert!(load(&["-t", "http", "--host", "127.0.0.1"], &dcr).is_ok());
        let mut cimd = base.to_vec();
        cimd.push(("MCP_CIMD_ALLOWED_HOSTS", "claude.ai"));
        assert!(err(&["-t", "http"], &cimd).contains("set MCP_APPROVAL_PASSWORD"));
        let mut weak_key = base.to_vec();
        weak_key.push(("MCP_TOKEN_SIGNING_KEY", "short"));
        assert!(err(&["-t", "http"], &weak_key).starts_with("MCP_TOKEN_SIGNING_KEY must be"));
        let mut js = base.to_vec();
        js.push((
            "MCP_REDIRECT_URIS",
            "https://ok.example/cb,javascript:alert(1)",
        ));
        assert!(err(&["-t", "http"], &js).contains("may not contain a javascript URI"));
        // A secret is never echoed back.
        let e = err(
            &["-t", "http"],
            &[
                ("AUTH_ENABLED", "TRUE!"),
                ("MCP_CLIENT_SECRET", "hunter2hunter2"),
            ],
        );
        assert_eq!(e, "AUTH_ENABLED must be true or false, got \"TRUE!\"");
    }

    #[test]
    fn the_mcp_rate_limit_defaults_on_only_behind_auth() {
        let limit = |args: &[&str], env: &[(&str, &str)]| {
            load(args, env).unwrap().auth.rate_limit_per_minute
        };
        // No auth: no limit (as in 1.7.0) unless one is set.
        assert_eq!(limit(&["-t", "http"], &[]), 0);
        assert_eq!(
            limit(&["-t", "http"], &[("MCP_RATE_LIMIT_PER_MINUTE", "60")]),
            60
        );
        let oauth = [
            ("AUTH_ENABLED", "true"),
            ("MCP_CLIENT_ID", "openclaw"),
            ("MCP_CLIENT_SECRET", "0123456789abcdef0123456789abcdef"),
        ];
        assert_eq!(limit(&["-t", "http"], &oauth), 1200);
        let tokens = [("MCP_BEARER_TOKENS", "ci:0123456789abcdef0123456789abcdef")];
        assert_eq!(limit(&["-t", "http"], &tokens), 1200);
        let mut off = oauth.to_vec();
        off.push(("MCP_RATE_LIMIT_PER_MINUTE", "0"));
        assert_eq!(limit(&["-t", "http"], &off), 0);
    }

    #[test]
    fn debug_is_lenient_like_1_7_0() {
        assert!(!load(&[], &[("DEBUG", "*")]).unwrap().debug);
        assert!(load(&[], &[("DEBUG", "true")]).unwrap().debug);
        assert!(load(&[], &[("NODE_ENV", "development")]).unwrap().debug);
        assert!(load(&["--debug"], &[]).unwrap().debug);
    }

    #[test]
    fn model_and_transport_rules() {
        assert_eq!(
            err(&[], &[("OPENCLAW_MODEL", "  ")]),
            "OPENCLAW_MODEL / --model must be a non-empty string. Default is \"openclaw\"."
        );
        assert_eq!(
            load(&["--transport", "sse"], &[]).unwrap().transport,
            TransportKind::Sse
        );
        assert!(
            err(&[], &[("OPENCLAW_AGENT_ID", "Ops Team")])
                .starts_with("OPENCLAW_AGENT_ID must be an agent id")
        );
    }

    #[test]
    fn cors_and_trust_proxy_parse_like_1_7_0() {
        assert_eq!(parse_cors(&[]), CorsOrigins::Disabled);
        assert_eq!(parse_cors(&["NONE".into()]), CorsOrigins::Disabled);
        assert_eq!(parse_cors(&["*".into()]), CorsOrigins::Any);
        assert_eq!(parse_trust_proxy("  ").unwrap(), TrustProxy::Unset);
        assert_eq!(parse_trust_proxy("TRUE").unwrap(), TrustProxy::Bool(true));
        assert_eq!(parse_trust_proxy("False").unwrap(), TrustProxy::Bool(false));
        assert_eq!(parse_trust_proxy("2").unwrap(), TrustProxy::Hops(2));
        assert_eq!(
            parse_trust_proxy(" loopback, 10.0.0.0/8 ").unwrap(),
            TrustProxy::List(vec!["loopback".into(), "10.0.0.0/8".into()])
        );
        assert!(parse_trust_proxy("everyone").is_none());
    }

    #[test]
    fn the_configuration_page_names_every_setting() {
        let page = include_str!("../docs/configuration.md");
        for setting in SETTINGS {
            assert!(
                page.contains(&format!("`{}`", setting.key)),
                "key {}",
                setting.key
            );
            for env in setting.env {
                assert!(page.contains(&format!("`{env}`")), "env {env}");
            }
            if let Some(flag) = setting.flag {
                assert!(page.contains(&format!("`--{flag}`")), "flag --{flag}");
            }
        }
    }

    #[test]
    fn toml_instances_are_read_like_the_json_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[[instances]]\nname = \"home\"\nurl = \"http://127.0.0.1:1\"\n\n[[instances]]\nname = \"office\"\nurl = \"https://o.example\"\nagentId = \"ops\"\ndefault = true\n",
        )
        .unwrap();
        let s = load(&["--config", path.to_str().unwrap()], &[]).unwrap();
        assert_eq!(s.instances.len(), 2);
        assert!(s.instances[1].is_default && !s.instances[0].is_default);
        assert_eq!(s.instances[1].agent_id.as_deref(), Some("ops"));
        std::fs::write(&path, "[[instances]]\nname = \"-x\"\nurl = \"http://a\"\n").unwrap();
        let e = err(&["--config", path.to_str().unwrap()], &[]);
        assert!(
            e.starts_with("`instances` in ") && e.contains("Invalid instance name"),
            "{e}"
        );
    }

    #[test]
    fn display_url_masks_passwords() {
        assert_eq!(display_url("http://u:pw@gw:1"), "http://u:***@gw:1");
        // A URL that does not parse (port out of range) still hides its user information.
        assert_eq!(
            display_url("http://u:pw@gw:99999/x"),
            "http://***@gw:99999/x"
        );
        assert_eq!(display_url("http://u:pw@[::1/x"), "http://***@[::1/x");
        assert_eq!(display_url("not a url"), "not a url");
        assert_eq!(display_url("http://gw:1/"), "http://gw:1/");
        assert_eq!(display_url("http://gw:1"), "http://gw:1");
    }
}
