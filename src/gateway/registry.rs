//! `InstanceRegistry`: built once at start from the configuration, it maps each instance name to
//! the address of its supervised [`GatewayActor`], knows the default, lists instances without
//! their tokens, and wraps the actor calls (`send(..).timeout(..)`, mailbox errors as typed
//! [`GatewayError`]s) so that callers never see actix types.

use std::{sync::Arc, time::Duration};

use actix::{Addr, MailboxError, Supervisor};
use tokio_util::sync::CancellationToken;

use super::{
    actor::{Chat, GatewayActor, Health, InvokeTool, ListModels, Probe},
    client::{ChatReply, ChatRequest, ProgressSender},
    error::GatewayError,
    health::{HealthSnapshot, HealthStatus},
};
use crate::config::{InstanceSettings, display_url};

/// How long a `Health` question may wait for the actor (it answers from memory).
const HEALTH_ASK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a `Probe` may take in all (the probe itself stops at 15 s).
const PROBE_ASK_TIMEOUT: Duration = Duration::from_secs(20);
/// Slack on top of a chat's own deadline before the caller gives up on the actor.
const CHAT_ASK_SLACK: Duration = Duration::from_secs(10);
/// A streamed chat may last this long if bytes keep coming (see `client`).
const STREAM_TOTAL_CAP: Duration = Duration::from_secs(30 * 60);

/// An instance name that is not configured.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("Unknown instance \"{name}\". Available: {available}")]
pub struct UnknownInstance {
    /// The name asked for.
    pub name: String,
    /// Configured names joined by ", ".
    pub available: String,
}

/// One configured instance and its actor.
#[derive(Debug, Clone)]
pub struct InstanceHandle {
    /// Name.
    pub name: String,
    /// URL as configured, password masked.
    pub url: String,
    /// Whether this is the default instance.
    pub is_default: bool,
    /// The instance's request timeout.
    pub timeout: Duration,
    /// The supervised actor.
    pub addr: Addr<GatewayActor>,
}

fn mailbox(instance: &str, err: MailboxError) -> GatewayError {
    GatewayError::Unavailable {
        instance: instance.to_string(),
        reason: match err {
            MailboxError::Closed => {
                "its handler was restarted while answering; please retry".to_string()
            }
            MailboxError::Timeout => "its handler did not answer in time".to_string(),
        },
    }
}

impl InstanceHandle {
    /// Sends a chat turn through the actor.
    pub async fn chat(
        &self,
        request: ChatRequest,
        progress: Option<ProgressSender>,
        cancel: CancellationToken,
    ) -> Result<ChatReply, GatewayError> {
        let deadline = if request.stream {
            STREAM_TOTAL_CAP.max(self.timeout)
        } else {
            self.timeout
        } + CHAT_ASK_SLACK;
        self.addr
            .send(Chat {
                request,
                progress,
                cancel,
            })
            .timeout(deadline)
            .await
            .map_err(|e| mailbox(&self.name, e))?
    }

    /// The gateway's agent targets.
    pub async fn models(&self) -> Result<Vec<String>, GatewayError> {
        self.addr
            .send(ListModels)
            .timeout(PROBE_ASK_TIMEOUT)
            .await
            .map_err(|e| mailbox(&self.name, e))?
    }

    /// Runs a gateway tool through `/tools/invoke`.
    pub async fn invoke_tool(
        &self,
        tool: &'static str,
        args: serde_json::Value,
    ) -> Result<serde_json::Value, GatewayError> {
        self.addr
            .send(InvokeTool { tool, args })
            .timeout(self.timeout + CHAT_ASK_SLACK)
            .await
            .map_err(|e| mailbox(&self.name, e))?
    }

    /// Probes the gateway now.
    pub async fn probe(&self) -> Result<HealthSnapshot, GatewayError> {
        self.addr
            .send(Probe)
            .timeout(PROBE_ASK_TIMEOUT)
            .await
            .map_err(|e| mailbox(&self.name, e))?
    }

    /// Health from the last probe; an unreachable actor reports itself as an error.
    pub async fn health(&self) -> HealthSnapshot {
        match self.addr.send(Health).timeout(HEALTH_ASK_TIMEOUT).await {
            Ok(snapshot) => snapshot,
            Err(e) => HealthSnapshot {
                status: HealthStatus::Error,
                message: mailbox(&self.name, e).to_string(),
                http_status: None,
                ready: None,
                last_check: None,
                last_ok: None,
                latency_ms: None,
                last_error: None,
                consecutive_failures: 0,
                restarts: 0,
                api: None,
                api_reason: None,
            },
        }
    }
}

/// Name → actor, in configuration order.
#[derive(Debug, Clone)]
pub struct InstanceRegistry {
    instances: Arc<Vec<InstanceHandle>>,
    default: usize,
}

impl InstanceRegistry {
    /// Starts one supervised actor per instance on the current arbiter. Must run inside an actix
    /// system. `instances` is validated: non-empty, unique names, exactly one default.
    pub fn start(instances: &[InstanceSettings], health_interval: Duration) -> Self {
        let handles: Vec<InstanceHandle> = instances
            .iter()
            .map(|settings| {
                let actor_settings = settings.clone();
                let addr =
                    Supervisor::start(move |_| GatewayActor::new(actor_settings, health_interval));
                tracing::info!(
                    instance = %settings.name,
                    url = %display_url(&settings.url),
                    default = settings.is_default,
                    "instance configured"
                );
                InstanceHandle {
                    name: settings.name.clone(),
                    url: display_url(&settings.url),
                    is_default: settings.is_default,
                    timeout: settings.timeout,
                    addr,
                }
            })
            .collect();
        let default = handles.iter().position(|h| h.is_default).unwrap_or(0);
        InstanceRegistry {
            instances: Arc::new(handles),
            default,
        }
    }

    /// The instance for `name`; an absent or empty name means the default.
    pub fn resolve(&self, name: Option<&str>) -> Result<&InstanceHandle, UnknownInstance> {
        match name.filter(|n| !n.is_empty()) {
            None => Ok(&self.instances[self.default]),
            Some(name) => self
                .instances
                .iter()
                .find(|h| h.name == name)
                .ok_or_else(|| UnknownInstance {
                    name: name.to_string(),
                    available: self
                        .instances
                        .iter()
                        .map(|h| h.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                }),
        }
    }

    /// All instances, in configuration order.
    pub fn list(&self) -> &[InstanceHandle] {
        &self.instances
    }

    /// The default instance.
    pub fn default_instance(&self) -> &InstanceHandle {
        &self.instances[self.default]
    }
}
