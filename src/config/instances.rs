//! `OPENCLAW_INSTANCES` (JSON, or the TOML `instances` array): 1.7.0's checks and messages, in
//! its order, into [`InstanceSettings`]; gateway URLs checked and shown without credentials.

use std::time::Duration;

use serde_json::Value;

use super::{names::read_secret_file, settings::*, values::*};

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

pub(super) fn timeout_error(name: &str) -> String {
    format!(
        "Instance \"{name}\": \"timeout\" must be a whole number of milliseconds between 1 and {MAX_TIMEOUT_MS}"
    )
}

// Eight plain fields of one instance; a struct for them would only repeat InstanceSettings.
#[allow(clippy::too_many_arguments)]
pub(super) fn build_instance(
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
        database_url: None,
    })
}

/// 1.7.0's URL rules: it must parse, and the scheme must be http or https. The URL in an
/// error has its password hidden and its control characters escaped: an error is one line.
pub(super) fn check_gateway_url(name: &str, url: &str) -> Result<(), String> {
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
