use audit_runtime::{ConfigError, Secret};
use serde::{Deserialize, Serialize};

/// The `[clickhouse]` section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP interface URL, e.g. `http://127.0.0.1:18123`.
    pub url: String,
    /// User name.
    #[serde(default = "default_user")]
    pub user: String,
    /// Password (empty for none).
    #[serde(default)]
    pub password: Secret,
    /// Database holding the audit tables.
    #[serde(default = "default_database")]
    pub database: String,
    /// Seconds a query or insert may take before it is abandoned (and retried by the caller).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
}

fn default_user() -> String {
    "default".into()
}

fn default_database() -> String {
    "audit".into()
}

fn default_timeout() -> u64 {
    30
}

impl ClickHouseConfig {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(ConfigError::invalid(
                format!("{section}.url"),
                "must be an http(s) URL",
            ));
        }
        let valid_identifier = !self.database.is_empty()
            && self
                .database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !self.database.starts_with(|c: char| c.is_ascii_digit());
        if !valid_identifier {
            return Err(ConfigError::invalid(
                format!("{section}.database"),
                "must be an identifier ([A-Za-z_][A-Za-z0-9_]*)",
            ));
        }
        if self.timeout_secs == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.timeout_secs"),
                "must be positive",
            ));
        }
        Ok(())
    }
}
