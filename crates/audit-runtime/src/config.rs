//! Configuration = a TOML file overlaid by environment variables.
//!
//! `{PREFIX}__SECTION__KEY=value` overrides `[section] key = value` (double underscores
//! separate levels), e.g. `GATEWAY__KAFKA__BROKERS=127.0.0.1:9092`. Unknown keys are errors
//! (every config struct denies unknown fields), and every error names the key.

use std::net::SocketAddr;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0} does not exist")]
    MissingFile(String),
    #[error("configuration error: {0}")]
    Load(String),
    #[error("invalid configuration: `{key}`: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Loads `T` from `file` (when given) and the environment variables starting with `{env_prefix}__`.
pub fn load<T: DeserializeOwned>(file: Option<&Path>, env_prefix: &str) -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.exists() {
            return Err(ConfigError::MissingFile(file.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    figment = figment.merge(Env::prefixed(&format!("{env_prefix}__")).split("__"));
    figment.extract().map_err(describe)
}

fn describe(error: figment::Error) -> ConfigError {
    let messages: Vec<String> = error
        .into_iter()
        .map(|error| {
            let key = error.path.join(".");
            let origin = error
                .metadata
                .as_ref()
                .map(|metadata| format!(" (from {})", metadata.name))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{origin}", error.kind)
            } else {
                format!("`{key}`: {}{origin}", error.kind)
            }
        })
        .collect();
    ConfigError::Load(messages.join("; "))
}

/// `key` must be positive: zero would stall or spin what it sizes or paces.
pub fn require_positive(key: &str, value: u64) -> Result<(), ConfigError> {
    if value == 0 {
        return Err(ConfigError::invalid(key, "must be positive"));
    }
    Ok(())
}

/// `key` names a file the service reads at start: it must exist, so that a typo fails
/// `check-config` rather than the start.
pub fn require_existing(key: &str, path: &Path) -> Result<(), ConfigError> {
    if !path.exists() {
        return Err(ConfigError::invalid(
            key,
            format!("{} does not exist", path.display()),
        ));
    }
    Ok(())
}

/// Where a service's HTTP endpoints listen.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on, e.g. `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Seconds to let in-flight requests finish after a shutdown signal.
    #[serde(default = "default_drain_secs")]
    pub shutdown_grace_secs: u64,
    /// Seconds a connection may take to send a request's headers, idle keep-alive time
    /// included; a slower (or silent) connection is closed.
    #[serde(default = "default_header_read_timeout_secs")]
    pub header_read_timeout_secs: u64,
    /// Most connections open at once; more wait to be accepted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_drain_secs() -> u64 {
    20
}

fn default_header_read_timeout_secs() -> u64 {
    crate::server::ConnectionLimits::default()
        .header_read_timeout
        .as_secs()
}

fn default_max_connections() -> usize {
    crate::server::ConnectionLimits::default().max_connections
}

impl HttpConfig {
    /// The connection bounds of this listener.
    pub fn connection_limits(&self) -> crate::server::ConnectionLimits {
        crate::server::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(
                self.header_read_timeout_secs.max(1),
            ),
            max_connections: self.max_connections.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        http: HttpConfig,
        #[serde(default)]
        name: String,
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error type
    fn env_overrides_file_and_errors_name_the_key() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("svc.toml", "name = 'a'\n[http]\nlisten = '127.0.0.1:1'\n")?;
            jail.set_env("SVC__HTTP__LISTEN", "127.0.0.1:2");
            let sample: Sample =
                load(Some(Path::new("svc.toml")), "SVC").map_err(|e| e.to_string())?;
            assert_eq!(sample.http.listen.port(), 2);
            assert_eq!(sample.name, "a");

            jail.set_env("SVC__HTTP__LISTEN", "not-an-address");
            let error = load::<Sample>(Some(Path::new("svc.toml")), "SVC")
                .unwrap_err()
                .to_string();
            assert!(error.contains("`http.listen`"), "{error}");

            jail.clear_env();
            jail.create_file("bad.toml", "[http]\nlisten = '127.0.0.1:1'\nlisen = 3\n")?;
            let error = load::<Sample>(Some(Path::new("bad.toml")), "SVC")
                .unwrap_err()
                .to_string();
            assert!(error.contains("lisen"), "{error}");

            let error = load::<Sample>(Some(Path::new("missing.toml")), "SVC")
                .unwrap_err()
                .to_string();
            assert!(error.contains("missing.toml"), "{error}");
            Ok(())
        });
    }
}
