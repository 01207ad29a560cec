//! `openclaw-mcp pair [--instance NAME] [--wait SECS]`: pairs this bridge's device identity with a
//! remote gateway (`reference/openclaw-ws.md` §4.4).
//!
//! It connects with the instance's token and its device (created in the data directory if
//! needed); a gateway that does not know the device answers `PAIRING_REQUIRED` with a request id.
//! The exact command the gateway's owner runs is printed (`openclaw devices approve <requestId>`),
//! and the connection is retried every [`POLL`] until the owner approved it or `--wait` seconds
//! passed. On approval the gateway issues a device token, which is kept beside the key (0600), and
//! the scopes granted are printed. A loopback gateway that trusts the token needs no pairing: that
//! is said, and nothing is stored.

use std::{
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{
    config::Settings,
    gateway::ws::{
        Options, Phase, WsClient, WsError,
        conn::Endpoint,
        devices::SharedDevices,
        identity::{DeviceIdentity, sync},
    },
};

/// How often the connection is tried again while the approval is awaited.
const POLL: Duration = Duration::from_secs(3);

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the pairing; the process exit code (0 paired or not needed, 1 failed, 64 bad input).
pub fn run(settings: &Settings, instance: Option<&str>, wait: Duration) -> i32 {
    let inst = match instance {
        None => settings.instances.iter().find(|i| i.is_default),
        Some(name) => settings.instances.iter().find(|i| i.name == name),
    };
    let Some(inst) = inst else {
        eprintln!(
            "openclaw-mcp pair: unknown instance {:?}; configured: {}",
            instance.unwrap_or(""),
            settings
                .instances
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
        return 64;
    };
    let identity = match (&inst.database_url, inst.data_dir.as_deref()) {
        // Replicas on PostgreSQL share one device: pairing it once, from anywhere, pairs them all.
        (Some(url), _) => SharedDevices::start(url.expose())
            .map_err(|e| WsError::Identity(e.to_string()))
            .and_then(|devices| DeviceIdentity::shared(devices, &inst.name)),
        (None, Some(data_dir)) => DeviceIdentity::load_or_create(Some(data_dir), &inst.name),
        (None, None) => {
            eprintln!(
                "openclaw-mcp pair: pairing needs a data directory to keep the device key and token (OPENCLAW_MCP_DATA_DIR is :memory:)"
            );
            return 64;
        }
    };
    let identity = match identity {
        Ok(i) => i,
        Err(e) => {
            eprintln!("openclaw-mcp pair: {e}");
            return 1;
        }
    };
    let endpoint = match Endpoint::from_base_url(&inst.base_url) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("openclaw-mcp pair: {e}");
            return 64;
        }
    };
    let identity = Arc::new(Mutex::new(identity));
    let display = endpoint.display.clone();
    let mut options = Options::new(
        endpoint,
        inst.token.as_ref().map(|t| t.expose().to_string()),
    );
    options.person_retry = POLL;
    options.max_backoff = POLL;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("openclaw-mcp pair: {e}");
            return 1;
        }
    };
    runtime.block_on(async {
        // A shared identity is read (or made) first: the device id printed is the replicas' one.
        if let Err(e) = sync(&identity).await {
            eprintln!("openclaw-mcp pair: {e}");
            return 1;
        }
        let id = identity
            .lock()
            .map(|i| i.id().to_string())
            .unwrap_or_default();
        say(&format!(
            "Pairing instance \"{}\" ({}) as device {id}",
            inst.name, display
        ));
        pair(options, identity, wait).await
    })
}

async fn pair(options: Options, identity: Arc<Mutex<DeviceIdentity>>, wait: Duration) -> i32 {
    let client = WsClient::start(options, Some(identity.clone()));
    let mut changes = client.changes();
    let deadline = tokio::time::Instant::now() + wait;
    let mut asked: Option<String> = None;
    loop {
        let phase = changes.borrow_and_update().clone();
        match phase {
            Phase::Ready(session) => {
                let scopes = session.hello.scopes.join(", ");
                if session.hello.device_token.is_some()
                    || session.hello.auth_method.as_deref() == Some("device-token")
                {
                    say(&format!(
                        "Paired: the gateway approved this device with the scopes {scopes}; its device token is kept in the data directory."
                    ));
                } else {
                    say(&format!(
                        "No pairing needed: this gateway trusts the bridge with its token (a loopback connection) and grants the scopes {scopes}."
                    ));
                }
                return 0;
            }
            Phase::Down(WsError::PairingRequired {
                request_id,
                message,
            }) => {
                let key = request_id.clone().unwrap_or_default();
                if asked.as_deref() != Some(key.as_str()) {
                    match &request_id {
                        Some(id) => {
                            say("Pairing requested. On the gateway's host, its owner runs:");
                            say(&format!(
                                "    {}",
                                crate::gateway::ws::error::approve_command(id)
                            ));
                            say(&format!(
                                "Waiting up to {} s for the approval...",
                                deadline
                                    .saturating_duration_since(tokio::time::Instant::now())
                                    .as_secs()
                            ));
                        }
                        None => say(&format!(
                            "The gateway asks for pairing: {message}. On its host, its owner finds the pending request with `openclaw devices list` and approves it with `openclaw devices approve <requestId>`."
                        )),
                    }
                    asked = Some(key);
                }
            }
            Phase::Down(e) if e.needs_a_person() || e.is_unsupported() => {
                eprintln!("openclaw-mcp pair: {e}");
                return 1;
            }
            Phase::Down(_) | Phase::Connecting => {}
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Ok(Ok(())) => {}
            _ => {
                let why = match client.phase() {
                    Phase::Down(e) => e.to_string(),
                    _ => "no answer".to_string(),
                };
                eprintln!(
                    "openclaw-mcp pair: not approved within {} s ({why}); run it again once the owner has approved the request",
                    wait.as_secs()
                );
                return 1;
            }
        }
    }
}
