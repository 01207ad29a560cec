//! Validation: the merged values, each checked once and named where it came from (the
//! environment variable, the flag or the file key), into typed [`Settings`].

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use figment::Figment;
use serde_json::Value;

use super::{
    instances::{build_instance, parse_instances},
    names::{FILE_LAYER, FLAG_LAYER, setting},
    settings::*,
    values::*,
};

/// The merged values of every layer, and where each came from.
pub(super) struct Layers {
    /// Every setting given, by key.
    pub(super) values: BTreeMap<String, Value>,
    /// The layers, to name a value's origin.
    pub(super) figment: Figment,
    /// The configuration file, if one was read.
    pub(super) config_path: Option<PathBuf>,
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

    pub(super) fn validate(
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
            instance.database_url = tasks.database_url.clone();
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
        let replica_id = match self.nonempty("replica_id")? {
            Some(id) if is_replica_id(&id) => Some(id),
            Some(_) => return Err(self.invalid("replica_id", REPLICA_ID_RULE)),
            None => None,
        };
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
            replica_id,
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
        let database_url = self.nonempty("database_url")?;
        if let Some(url) = &database_url {
            crate::pg::parse_url(url).map_err(|e| {
                ConfigError::Invalid(format!("{}: {e}", self.origin("database_url")))
            })?;
        }
        Ok(TaskSettings {
            concurrency,
            max_tasks,
            retention,
            data_dir,
            database_url: database_url.map(Secret::new),
        })
    }
}
