//! Loading: the figment layers (defaults < TOML file < environment < command-line flags), each
//! named for the messages, with secrets read from their `_FILE`s; unknown file keys are refused,
//! then `validate` turns the merged values into [`Settings`].

use std::{collections::BTreeMap, path::PathBuf};

use figment::{
    Figment, Metadata, Profile, Provider,
    providers::Format,
    value::{Dict, Map, Value as FigValue},
};
use serde_json::Value;

use super::{
    names::{ENV_LAYER, FILE_LAYER, FILE_SUFFIX, FLAG_LAYER, SETTINGS, read_secret_file},
    settings::{ConfigError, Settings},
    validate::Layers,
};
use crate::cli::Cli;

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
pub(super) struct Layer {
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

pub(super) fn file_layer(path: &std::path::Path) -> Result<Layer, ConfigError> {
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

pub(super) fn env_layer(env: &impl Fn(&str) -> Option<String>) -> Result<Layer, ConfigError> {
    let mut dict = Dict::new();
    for setting in SETTINGS {
        let mut value = setting
            .env
            .iter()
            .find_map(|name| env(name).filter(|v| !is_unfilled_template(v)));
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

/// `${user_config.NAME}` (or any `${…}` alone): a variable of an MCP Bundle manifest that the
/// host left in place because the user set no value and the manifest gives no default. Such a
/// value is never a setting, so it counts as unset instead of failing validation (an agent id
/// `${user_config.agent_id}`) or, worse, being used (a token of that text).
pub(super) fn is_unfilled_template(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("${") && v.ends_with('}') && !v[2..v.len() - 1].contains(['{', '}'])
}

pub(super) fn flag_layer(cli: &Cli) -> Layer {
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
pub(super) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
