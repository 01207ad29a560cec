//! Command-line flags, named as in openclaw-mcp 1.7.0 (`-u/--openclaw-url`, `--gateway-token`,
//! `-m/--model`, `-t/--transport`, `-p/--port`, `--host`, `--timeout`, `--debug`, `--auth`,
//! `--client-id`, `--client-secret`, `--issuer-url`, `--redirect-uris`, `--allow-dcr`,
//! `--trust-proxy`) plus this bridge's own. Values stay strings here; `config` validates them so
//! that a bad value is reported with the flag's name and exit code 64, never clap's exit code 2.
//!
//! A secret given as a flag works, for compatibility, but any local user can read it in `ps` or
//! `/proc/<pid>/cmdline`: [`Cli::secret_flags`] names those given so that `main` can warn.

use clap::Parser;
use figment::value::Value as FigValue;

use crate::config::{FILE_SUFFIX, SETTINGS};

/// Model Context Protocol bridge from Claude to OpenClaw gateways.
///
/// With no flags it speaks MCP over stdin/stdout (for Claude Desktop and Claude Code). Every flag
/// also has an environment variable and a key in the `--config` TOML file; flags win over the
/// environment, which wins over the file. See docs/configuration.md.
#[derive(Debug, Clone, Default, Parser)]
#[command(name = "openclaw-mcp", version, about, long_about = None)]
pub struct Cli {
    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// TOML configuration file [env: OPENCLAW_MCP_CONFIG]
    #[arg(long, value_name = "FILE")]
    pub config: Option<String>,

    /// OpenClaw gateway URL (single-instance mode) [env: OPENCLAW_URL] [default: http://127.0.0.1:18789]
    #[arg(short = 'u', long = "openclaw-url", value_name = "URL")]
    pub openclaw_url: Option<String>,

    /// Gateway bearer token [env: OPENCLAW_GATEWAY_TOKEN]
    #[arg(long, value_name = "TOKEN")]
    pub gateway_token: Option<String>,

    /// Model sent to the gateway; selects an agent (`openclaw`, `openclaw/<agentId>`) [env: OPENCLAW_MODEL] [default: openclaw]
    #[arg(short = 'm', long, value_name = "MODEL")]
    pub model: Option<String>,

    /// Gateway request timeout in milliseconds [env: OPENCLAW_TIMEOUT_MS] [default: 120000]
    #[arg(long, value_name = "MS")]
    pub timeout: Option<String>,

    /// Agent id sent as `x-openclaw-agent-id` [env: OPENCLAW_AGENT_ID]
    #[arg(long, value_name = "ID")]
    pub agent_id: Option<String>,

    /// Gateway API: auto (WebSocket when it can work here, else HTTP), ws, http [env: OPENCLAW_API] [default: auto]
    #[arg(long, value_name = "API")]
    pub api: Option<String>,

    /// Chat messages starting with `/` (gateway commands): text (sent to the agent as text on both APIs) or refuse [env: OPENCLAW_GATEWAY_COMMANDS] [default: text]
    #[arg(long, value_name = "MODE")]
    pub gateway_commands: Option<String>,

    /// Gateway health probe interval in milliseconds (faster while a gateway is down) [env: OPENCLAW_HEALTH_INTERVAL_MS] [default: 30000]
    #[arg(long, value_name = "MS")]
    pub health_interval: Option<String>,

    /// Transport: stdio (Claude Desktop), http (Claude.ai), sse (deprecated alias of http) [env: OPENCLAW_MCP_TRANSPORT] [default: stdio]
    #[arg(short = 't', long, value_name = "TRANSPORT")]
    pub transport: Option<String>,

    /// Debug logging on stderr (message bodies are redacted) [env: DEBUG=true]
    #[arg(long)]
    pub debug: bool,

    /// HTTP port [env: PORT] [default: 3000]
    #[arg(short = 'p', long, value_name = "PORT")]
    pub port: Option<String>,

    /// HTTP bind address [env: HOST] [default: 0.0.0.0]
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,

    /// Extra host names accepted in the Host header (reverse proxies), comma-separated [env: ALLOWED_HOSTS]
    #[arg(long, value_name = "HOSTS")]
    pub allowed_hosts: Option<String>,

    /// Browser origins allowed by CORS, comma-separated (exact, bare host, *.domain, *) [env: CORS_ORIGINS] [default: none]
    #[arg(long, value_name = "ORIGINS")]
    pub cors_origins: Option<String>,

    /// Trust X-Forwarded-For: true, false, hop count, loopback, IPs or CIDRs [env: TRUST_PROXY]
    #[arg(long, value_name = "VALUE")]
    pub trust_proxy: Option<String>,

    /// Largest accepted MCP request body in bytes [env: MCP_MAX_BODY_BYTES] [default: 4194304]
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<String>,

    /// Idle MCP sessions are closed after this many seconds [env: MCP_SESSION_IDLE_SECS] [default: 1800]
    #[arg(long, value_name = "SECS")]
    pub session_idle_secs: Option<String>,

    /// Most MCP sessions at once, of all callers together; one caller may hold a quarter of them [env: MCP_MAX_SESSIONS] [default: 1000]
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<String>,

    /// This bridge's name behind a load balancer, 1-32 of A-Z a-z 0-9 _ -: every MCP session id it makes starts with `<name>.`, for routing [env: OPENCLAW_MCP_REPLICA_ID] [default: none, plain ids]
    #[arg(long, value_name = "NAME")]
    pub replica_id: Option<String>,

    /// Seconds a request body may take to arrive in full, at most 30 (past it: 408) [env: MCP_BODY_TIMEOUT_SECS] [default: 30]
    #[arg(long, value_name = "SECS")]
    pub body_timeout_secs: Option<String>,

    /// Seconds in-flight calls get to finish on SIGTERM/SIGINT [env: MCP_SHUTDOWN_GRACE_SECS] [default: 10]
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace_secs: Option<String>,

    /// Serve Prometheus metrics on GET /metrics (HTTP mode) [env: METRICS_ENABLED=true]
    #[arg(long)]
    pub metrics: bool,

    /// Enable OAuth 2.1 on the HTTP transport [env: AUTH_ENABLED=true or OAUTH_ENABLED=true]
    #[arg(long)]
    pub auth: bool,

    /// OAuth client id of the pre-registered client [env: MCP_CLIENT_ID]
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,

    /// OAuth client secret, at least 32 characters [env: MCP_CLIENT_SECRET]
    #[arg(long, value_name = "SECRET")]
    pub client_secret: Option<String>,

    /// Public issuer URL, e.g. https://bridge.example.com [env: MCP_ISSUER_URL]
    #[arg(long, value_name = "URL")]
    pub issuer_url: Option<String>,

    /// Allowed OAuth redirect URIs, comma-separated [env: MCP_REDIRECT_URIS]
    #[arg(long, value_name = "URIS")]
    pub redirect_uris: Option<String>,

    /// Allow OAuth dynamic client registration (loopback binds only) [env: MCP_DANGEROUSLY_ALLOW_DCR=true]
    #[arg(long)]
    pub allow_dcr: bool,

    /// Password a person enters on the consent page to approve a client without a secret (required with DCR or CIMD) [env: MCP_APPROVAL_PASSWORD]
    #[arg(long, value_name = "PASSWORD")]
    pub approval_password: Option<String>,

    /// Hosts whose OAuth client ID metadata documents are accepted, comma-separated, e.g. claude.ai [env: MCP_CIMD_ALLOWED_HOSTS]
    #[arg(long, value_name = "HOSTS")]
    pub cimd_allowed_hosts: Option<String>,

    /// HMAC key of access tokens, at least 32 characters (default: generated once and kept in the data directory) [env: MCP_TOKEN_SIGNING_KEY]
    #[arg(long, value_name = "KEY")]
    pub token_signing_key: Option<String>,

    /// Access token life in seconds [env: MCP_ACCESS_TOKEN_TTL_SECS] [default: 3600]
    #[arg(long, value_name = "SECS")]
    pub access_token_ttl_secs: Option<String>,

    /// Refresh token life in seconds [env: MCP_REFRESH_TOKEN_TTL_SECS] [default: 86400]
    #[arg(long, value_name = "SECS")]
    pub refresh_token_ttl_secs: Option<String>,

    /// Most dynamically registered OAuth clients kept [env: MCP_MAX_DCR_CLIENTS] [default: 100]
    #[arg(long, value_name = "N")]
    pub max_dcr_clients: Option<String>,

    /// MCP requests per minute per client address, 0 = unlimited [env: MCP_RATE_LIMIT_PER_MINUTE] [default: 1200]
    #[arg(long, value_name = "N")]
    pub rate_limit_per_minute: Option<String>,

    /// Tools to hide and refuse, comma-separated [env: OPENCLAW_MCP_DISABLED_TOOLS]
    #[arg(long, value_name = "TOOLS")]
    pub disable_tools: Option<String>,

    /// Offer only the tools that change nothing (status, instances, agents, sessions, task status and list) [env: OPENCLAW_MCP_READ_ONLY=true]
    #[arg(long)]
    pub read_only: bool,

    /// Async tasks running at once, 1 to 64 [env: OPENCLAW_TASK_CONCURRENCY] [default: 4]
    #[arg(long, value_name = "N")]
    pub task_concurrency: Option<String>,

    /// Most unfinished async tasks at once [env: OPENCLAW_MAX_TASKS] [default: 1000]
    #[arg(long, value_name = "N")]
    pub max_tasks: Option<String>,

    /// Seconds finished tasks stay readable [env: OPENCLAW_TASK_RETENTION_SECS] [default: 3600]
    #[arg(long, value_name = "SECS")]
    pub task_retention_secs: Option<String>,

    /// Directory of the task database, or :memory: [env: OPENCLAW_MCP_DATA_DIR] [default: ~/.local/state/openclaw-mcp on Linux, ~/Library/Application Support/openclaw-mcp on macOS, %LOCALAPPDATA%\openclaw-mcp on Windows]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,

    /// PostgreSQL database shared by several bridges (postgres://user:password@host/db), for the tasks instead of the data directory [env: OPENCLAW_MCP_DATABASE_URL, or a file in OPENCLAW_MCP_DATABASE_URL_FILE]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
}

/// Commands besides serving (which needs none).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Checks a running HTTP bridge: exit 0 if its `/health` answers 200 within 3 s, else 1.
    /// Made for container HEALTHCHECKs (no shell or curl needed).
    Healthcheck {
        /// The health URL [default: http://127.0.0.1:<PORT>/health]
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Pairs this bridge's device with a remote gateway: starts the pairing, prints the command
    /// the gateway's owner runs (`openclaw devices approve <requestId>`), waits for the approval
    /// and reports the scopes granted. The device token is kept in the data directory.
    Pair {
        /// The instance to pair [default: the default instance]
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
        /// Seconds to wait for the approval
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        wait: u64,
    },
    /// Adds a new OAuth signing key to the PostgreSQL store shared by several bridges
    /// (OPENCLAW_MCP_DATABASE_URL). Every bridge signs with it 15 s later; tokens signed with the
    /// older keys stay valid until they expire, so nobody is logged out.
    RotateSigningKey {
        /// The current key leaked: the new key signs at once and every older key is deleted
        /// (tokens they signed are refused within 5 s; clients refresh)
        #[arg(long)]
        retire_now: bool,
    },
}

/// A secret that was given on the command line, and where it should come from instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretFlag {
    /// The flag as typed, `--gateway-token`.
    pub flag: String,
    /// The environment variable that takes the same value, `OPENCLAW_GATEWAY_TOKEN`.
    pub env: &'static str,
    /// Its file form, `OPENCLAW_GATEWAY_TOKEN_FILE` (Docker and Kubernetes secrets).
    pub env_file: String,
}

impl Cli {
    /// The secret settings given as flags (`--gateway-token`, `--client-secret`,
    /// `--approval-password`, `--token-signing-key`: every setting marked secret that has a
    /// flag), in the order of `SETTINGS`. Never their values.
    pub fn secret_flags(&self) -> Vec<SecretFlag> {
        let given = self.values();
        SETTINGS
            .iter()
            .filter(|s| s.secret && given.iter().any(|(key, _)| *key == s.key))
            .filter_map(|s| {
                let flag = s.flag?;
                let env = *s.env.first()?;
                Some(SecretFlag {
                    flag: format!("--{flag}"),
                    env,
                    env_file: format!("{env}{FILE_SUFFIX}"),
                })
            })
            .collect()
    }

    /// The flags that were given, as (settings key, value) pairs for the flag layer.
    pub fn values(&self) -> Vec<(&'static str, FigValue)> {
        let strings: [(&'static str, &Option<String>); 37] = [
            ("url", &self.openclaw_url),
            ("api", &self.api),
            ("gateway_commands", &self.gateway_commands),
            ("gateway_token", &self.gateway_token),
            ("model", &self.model),
            ("timeout_ms", &self.timeout),
            ("agent_id", &self.agent_id),
            ("health_interval_ms", &self.health_interval),
            ("transport", &self.transport),
            ("port", &self.port),
            ("host", &self.host),
            ("allowed_hosts", &self.allowed_hosts),
            ("cors_origins", &self.cors_origins),
            ("trust_proxy", &self.trust_proxy),
            ("max_body_bytes", &self.max_body_bytes),
            ("session_idle_secs", &self.session_idle_secs),
            ("max_sessions", &self.max_sessions),
            ("replica_id", &self.replica_id),
            ("body_timeout_secs", &self.body_timeout_secs),
            ("shutdown_grace_secs", &self.shutdown_grace_secs),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("issuer_url", &self.issuer_url),
            ("redirect_uris", &self.redirect_uris),
            ("task_concurrency", &self.task_concurrency),
            ("max_tasks", &self.max_tasks),
            ("task_retention_secs", &self.task_retention_secs),
            ("data_dir", &self.data_dir),
            ("database_url", &self.database_url),
            ("approval_password", &self.approval_password),
            ("cimd_allowed_hosts", &self.cimd_allowed_hosts),
            ("token_signing_key", &self.token_signing_key),
            ("access_token_ttl_secs", &self.access_token_ttl_secs),
            ("refresh_token_ttl_secs", &self.refresh_token_ttl_secs),
            ("max_dcr_clients", &self.max_dcr_clients),
            ("rate_limit_per_minute", &self.rate_limit_per_minute),
            ("disabled_tools", &self.disable_tools),
        ];
        let mut out: Vec<(&'static str, FigValue)> = strings
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, FigValue::from(v.clone()))))
            .collect();
        // Switches only ever turn a feature on; absent means "not said here".
        for (key, on) in [
            ("debug", self.debug),
            ("metrics", self.metrics),
            ("read_only", self.read_only),
            ("auth", self.auth),
            ("allow_dcr", self.allow_dcr),
        ] {
            if on {
                out.push((key, FigValue::from(true)));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use clap::Parser;

    use super::{Cli, SecretFlag};
    use crate::config::SETTINGS;

    #[test]
    fn secret_flags_names_the_secrets_given_and_never_their_values() {
        let cli = Cli::try_parse_from([
            "openclaw-mcp",
            "--gateway-token",
            "value-one-0123456789",
            "--client-id",
            "openclaw",
            "--client-secret",
            "value-two-0123456789",
            "--model",
            "openclaw/ops",
        ])
        .unwrap();
        assert_eq!(
            cli.secret_flags(),
            [
                SecretFlag {
                    flag: "--gateway-token".into(),
                    env: "OPENCLAW_GATEWAY_TOKEN",
                    env_file: "OPENCLAW_GATEWAY_TOKEN_FILE".into(),
                },
                SecretFlag {
                    flag: "--client-secret".into(),
                    env: "MCP_CLIENT_SECRET",
                    env_file: "MCP_CLIENT_SECRET_FILE".into(),
                },
            ]
        );
        assert!(!format!("{:?}", cli.secret_flags()).contains("value-"));
        let plain = Cli::try_parse_from(["openclaw-mcp", "--model", "openclaw"]).unwrap();
        assert!(plain.secret_flags().is_empty());
    }

    /// Every secret setting with a flag is covered, so that a new one cannot be forgotten.
    #[test]
    fn every_secret_flag_is_known() {
        let with_flags: Vec<_> = SETTINGS
            .iter()
            .filter(|s| s.secret && s.flag.is_some())
            .collect();
        assert!(with_flags.len() >= 4);
        let mut argv = vec!["openclaw-mcp".to_string()];
        for setting in &with_flags {
            argv.push(format!("--{}", setting.flag.unwrap()));
            argv.push("some-secret-value-0123456789abcdef".to_string());
        }
        let flags = Cli::try_parse_from(argv).unwrap().secret_flags();
        assert_eq!(flags.len(), with_flags.len());
        for name in [
            "--gateway-token",
            "--client-secret",
            "--approval-password",
            "--token-signing-key",
        ] {
            assert!(flags.iter().any(|f| f.flag == name), "{name}");
        }
    }

    /// `--help`, the settings table and docs/configuration.md cannot drift apart: every flag is a
    /// setting (or `--config`), its help names the setting's environment variable, and the page
    /// lists it; every setting with a flag has that flag.
    #[test]
    fn help_settings_and_the_configuration_page_agree() {
        let page = include_str!("../docs/configuration.md");
        let cmd = Cli::command();
        let mut flags = Vec::new();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if matches!(long, "help" | "version") {
                continue;
            }
            flags.push(long);
            assert!(
                page.contains(&format!("`--{long}`")),
                "the page lacks --{long}"
            );
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let env = if long == "config" {
                "OPENCLAW_MCP_CONFIG"
            } else {
                let setting = SETTINGS
                    .iter()
                    .find(|s| s.flag == Some(long))
                    .unwrap_or_else(|| panic!("--{long} is not in SETTINGS"));
                setting.env[0]
            };
            assert!(
                help.contains(&format!("env: {env}")),
                "--{long}: help {help:?} does not name {env}"
            );
        }
        assert!(flags.len() > 30, "only {} flags seen", flags.len());
        for setting in SETTINGS {
            if let Some(flag) = setting.flag {
                assert!(
                    flags.contains(&flag),
                    "{} has no flag --{flag}",
                    setting.key
                );
            }
        }
    }
}
