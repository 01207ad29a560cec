//! The typed, validated settings ([`Settings`] and its parts) and their defaults: what the rest of
//! the bridge reads. Nothing here parses or merges; see `load` and `validate`.

use std::{path::PathBuf, time::Duration};

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
    /// The PostgreSQL database shared by replicas (`database_url`): the device identity lives
    /// there instead, so that every replica is the same paired device.
    pub database_url: Option<Secret>,
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
    /// `OPENCLAW_MCP_REPLICA_ID`: this bridge's name behind a load balancer; every session id it
    /// makes starts with `<name>.` so that the balancer can send a session's requests back here.
    /// `None`: plain ids, as before the setting existed.
    pub replica_id: Option<String>,
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
    /// A PostgreSQL database shared by several bridges, used for the tasks instead of
    /// `data_dir` (a secret: it may hold a password).
    pub database_url: Option<Secret>,
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
