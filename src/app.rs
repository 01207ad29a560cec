//! Starts the actor system (one supervised `GatewayActor` per instance in the
//! `InstanceRegistry`), then the transport the settings ask for, and turns the outcome into the
//! process exit code.

use std::sync::Arc;

use crate::{
    config::{Settings, TransportKind},
    gateway::registry::InstanceRegistry,
    mcp::server::{OpenClawServer, Services},
    tasks::{
        Owner, Tasks,
        pg::PgBackend,
        store::{Location, SqliteBackend, TaskBackend},
    },
    telemetry,
    transport::{http, stdio},
    util::shutdown_signal,
};

/// Exit code for a clean end.
pub const EXIT_OK: i32 = 0;
/// Exit code when the bridge cannot start or fails while running (`EX_SOFTWARE`).
pub const EXIT_FAILURE: i32 = 70;

/// Registers every configured secret for log redaction.
fn register_secrets(settings: &Settings) {
    for instance in &settings.instances {
        if let Some(token) = &instance.token {
            telemetry::register_secret(token.expose());
        }
    }
    if let Some(url) = &settings.tasks.database_url {
        telemetry::register_secret(url.expose());
        if let Ok(config) = crate::pg::parse_url(url.expose())
            && let Some(password) = config.get_password()
        {
            telemetry::register_secret(&String::from_utf8_lossy(password));
        }
    }
    let auth = &settings.auth;
    for secret in [
        &auth.client_secret,
        &auth.approval_password,
        &auth.token_signing_key,
    ]
    .into_iter()
    .flatten()
    {
        telemetry::register_secret(secret.expose());
    }
    for bearer in &auth.bearer_tokens {
        telemetry::register_secret(bearer.token.expose());
    }
}

/// Installs the process-wide TLS crypto provider (ring) once, before any HTTPS client exists.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is just as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Starts everything the tools talk to. Must run inside the actix system.
pub async fn start_services(settings: &Settings) -> Result<Services, String> {
    let store: Arc<dyn TaskBackend> = match &settings.tasks.database_url {
        Some(url) => {
            let pg = PgBackend::start(url.expose()).map_err(|e| e.to_string())?;
            // A database that is down now is not fatal: every task call says so until it is
            // back, and the store recovers by itself.
            match pg.ready().await {
                Ok(()) => tracing::info!(database = %pg.place(), "task store on PostgreSQL"),
                Err(e) => {
                    tracing::warn!(error = %e, "task store on PostgreSQL, not reachable yet; task tools fail until it is")
                }
            }
            Arc::new(pg)
        }
        None => {
            let location = match &settings.tasks.data_dir {
                Some(dir) => Location::Dir(dir.clone()),
                None => Location::Memory,
            };
            let store = SqliteBackend::start(&location).map_err(|e| e.to_string())?;
            match &settings.tasks.data_dir {
                Some(dir) => tracing::info!(data_dir = %dir.display(), "task store opened"),
                None => tracing::info!("task store in memory (tasks do not survive a restart)"),
            }
            Arc::new(store)
        }
    };
    let registry = InstanceRegistry::start(&settings.instances, settings.health_interval);
    let tasks = Tasks::start(store, registry.clone(), &settings.tasks);
    Ok(Services {
        registry,
        tasks,
        tools: Arc::new(settings.tools.clone()),
    })
}

/// Stops what `start_services` started, after the transports have drained: in-flight work gets
/// `grace` to finish and the task store is flushed.
pub async fn shutdown_services(services: &Services, grace: std::time::Duration) {
    services.tasks.drain(grace).await;
}

/// `openclaw-mcp healthcheck`: a plain HTTP/1.1 GET of `url` (an `http://host:port/path` on
/// this machine), without a runtime or a TLS stack; `Ok` for a 200 within three seconds.
pub fn healthcheck(url: &str) -> Result<(), String> {
    use std::io::{Read, Write};
    let parsed = url::Url::parse(url).map_err(|e| format!("bad URL {url}: {e}"))?;
    if parsed.scheme() != "http" {
        return Err("only http:// URLs are supported".to_string());
    }
    let host = parsed.host_str().ok_or("no host in the URL")?;
    let port = parsed.port_or_known_default().unwrap_or(80);
    let timeout = std::time::Duration::from_secs(3);
    let address = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("the host does not resolve")?;
    let mut stream = std::net::TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n",
        parsed.path()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head).map_err(|e| format!("{url}: {e}"))?;
    let line = String::from_utf8_lossy(&head[..n]);
    match line.split_whitespace().nth(1) {
        Some("200") => Ok(()),
        Some(status) => Err(format!("{url} answered {status}")),
        None => Err(format!("{url} did not answer HTTP")),
    }
}

/// Raises the soft limit on open files to the hard one: every HTTP connection (an SSE stream, a
/// slow client) holds a descriptor, and the common default soft limit of 1024 is reached long
/// before `MCP_MAX_SESSIONS`. Failing to raise it is not fatal; the limit is logged.
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::debug!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

/// Runs the bridge with validated settings; returns the exit code.
/// `openclaw-mcp rotate-signing-key`: a new shared signing key in PostgreSQL (see
/// [`crate::auth::rotate_signing_key`]). Exit 0, 64 without a database URL, 70 on failure.
pub fn rotate_signing_key(settings: &Settings, retire_now: bool) -> i32 {
    install_crypto_provider();
    register_secrets(settings);
    let Some(url) = &settings.tasks.database_url else {
        eprintln!(
            "openclaw-mcp rotate-signing-key: the signing keys are shared only on PostgreSQL (OPENCLAW_MCP_DATABASE_URL); on one machine, the key is in the data directory's oauth.db, or set MCP_TOKEN_SIGNING_KEY"
        );
        return 64;
    };
    let system = actix_rt::System::new();
    match system.block_on(crate::auth::rotate_signing_key(
        url,
        settings.auth.access_token_ttl,
        retire_now,
    )) {
        Ok(done) => {
            // stderr, as every message of this binary: stdout is the MCP channel in stdio mode.
            eprintln!("{done}");
            if settings.auth.token_signing_key.is_some() {
                eprintln!(
                    "note: MCP_TOKEN_SIGNING_KEY is set here; bridges that have it sign with it, not with the shared keys"
                );
            }
            EXIT_OK
        }
        Err(e) => {
            eprintln!("openclaw-mcp rotate-signing-key: {e}");
            EXIT_FAILURE
        }
    }
}

pub fn run(settings: Settings) -> i32 {
    install_crypto_provider();
    raise_open_file_limit();
    register_secrets(&settings);
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        transport = ?settings.transport,
        instances = settings.instances.len(),
        "openclaw-mcp starting"
    );
    let system = actix_rt::System::new();
    let code = system.block_on(async move {
        let services = match start_services(&settings).await {
            Ok(services) => services,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                return EXIT_FAILURE;
            }
        };
        match settings.transport {
            TransportKind::Stdio => {
                let code =
                    match stdio::serve(OpenClawServer::new(services.clone(), Owner::Local)).await {
                        Ok(ended) => {
                            tracing::info!(?ended, "stdio session closed");
                            EXIT_OK
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "stdio session failed");
                            EXIT_FAILURE
                        }
                    };
                // Running tasks may finish and be recorded for the next session; pending ones stay
                // queued in the store for the next start.
                shutdown_services(&services, settings.http.shutdown_grace).await;
                code
            }
            // Stops the services itself, after the HTTP calls in flight have drained.
            TransportKind::Http | TransportKind::Sse => {
                match http::serve(&settings, services, shutdown_signal()).await {
                    Ok(()) => EXIT_OK,
                    Err(http::ServeError::Config(e)) => {
                        eprintln!("openclaw-mcp: configuration error: {e}");
                        crate::config::EXIT_CONFIG
                    }
                    Err(http::ServeError::Listen(_) | http::ServeError::Stopped(_)) => EXIT_FAILURE,
                }
            }
        }
    });
    // Leave without waiting for a blocking stdin read that can never be cancelled.
    std::process::exit(code)
}
