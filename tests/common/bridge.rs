//! Driving the bridge through rmcp's client: the real binary over stdio ([`Bridge::spawn`]), or
//! the app in-process over a pipe ([`InProcess::start`]) when a test must reach an actor directly.

use std::{
    collections::BTreeMap,
    process::Stdio,
    sync::{Arc, Mutex},
};

use clap::Parser;
use openclaw_mcp::{
    cli::Cli,
    config::Settings,
    gateway::registry::InstanceRegistry,
    mcp::server::{OpenClawServer, Services},
    tasks::Owner,
};
use rmcp::{
    RoleClient, ServiceExt,
    service::RunningService,
    transport::{ConfigureCommandExt, TokioChildProcess},
};
use tokio::io::AsyncBufReadExt;

/// Path of the built binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_openclaw-mcp")
}

/// The real binary, spoken to over stdio.
pub struct Bridge {
    pub client: RunningService<RoleClient, ()>,
    pub stderr: Arc<Mutex<String>>,
    pub pid: Option<u32>,
}

impl Bridge {
    /// Starts the binary with exactly `env` (plus `HOME`), and connects an MCP client.
    pub async fn spawn(env: &[(&str, &str)]) -> Bridge {
        Self::spawn_args(&[], env).await
    }

    pub async fn spawn_args(args: &[&str], env: &[(&str, &str)]) -> Bridge {
        let env: BTreeMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let command = tokio::process::Command::new(binary()).configure(move |cmd| {
            cmd.env_clear().args(&args).envs(&env);
            if !env.contains_key("OPENCLAW_MCP_DATA_DIR") {
                cmd.env("OPENCLAW_MCP_DATA_DIR", ":memory:");
            }
        });
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the bridge");
        let pid = transport.id();
        let captured = Arc::new(Mutex::new(String::new()));
        if let Some(stderr) = stderr {
            let sink = captured.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
        }
        let client = ().serve(transport).await.expect("MCP handshake with the bridge");
        Bridge {
            client,
            stderr: captured,
            pid,
        }
    }

    /// Kills the process with SIGKILL (no cleanup, as a crash or an OOM kill).
    pub fn kill9(&self) {
        let pid = self.pid.expect("child pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-9", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The names in `tools/list`, in order.
    pub async fn tool_names(&self) -> Vec<String> {
        let tools = self.client.list_all_tools().await.unwrap();
        tools.iter().map(|t| t.name.to_string()).collect()
    }
}

/// Settings as the binary would load them from `args` and `env`.
pub fn settings(args: &[&str], env: &[(&str, &str)]) -> Settings {
    let mut argv = vec!["openclaw-mcp"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).unwrap();
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut settings = Settings::load_from(&cli, |k| env.get(k).cloned()).unwrap();
    settings.tasks.data_dir = None;
    for instance in &mut settings.instances {
        instance.data_dir = None;
    }
    settings
}

/// The app in this process (inside an actix system), with MCP clients over pipes.
pub struct InProcess {
    pub client: RunningService<RoleClient, ()>,
    pub registry: InstanceRegistry,
    pub services: Services,
}

impl InProcess {
    /// Must run inside an actix system (`#[actix_rt::test]`).
    pub async fn start(settings: &Settings) -> InProcess {
        openclaw_mcp::app::install_crypto_provider();
        let services = openclaw_mcp::app::start_services(settings).await.unwrap();
        let registry = services.registry.clone();
        let client = Self::connect_to(&services, Owner::Local).await;
        InProcess {
            client,
            registry,
            services,
        }
    }

    /// Another client of the same app, as another owner.
    pub async fn connect(&self, owner: Owner) -> RunningService<RoleClient, ()> {
        Self::connect_to(&self.services, owner).await
    }

    async fn connect_to(services: &Services, owner: Owner) -> RunningService<RoleClient, ()> {
        let server = OpenClawServer::new(services.clone(), owner);
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            if let Ok(running) = server.serve(server_io).await {
                let _ = running.waiting().await;
            }
        });
        ().serve(client_io).await.expect("in-process handshake")
    }
}
