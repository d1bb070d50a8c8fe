//! Wazuh options (`[sinks.wazuh]`) and the validated config of one destination.

use std::time::Duration;

use super::settings::WazuhSettings;
use audit_runtime::{ConfigError, Secret};
use audit_settings::OutboundPolicy;
use serde::{Deserialize, Serialize};

use crate::{BatchLimits, InvalidSetting, checked_url};

/// Sink-wide Wazuh settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WazuhOptions {
    /// Most events per request (the API accepts 100).
    pub max_batch_events: usize,
    /// Most bytes per request body.
    pub max_batch_bytes: usize,
    /// Largest single event (analysisd's message limit is 64 KiB).
    pub max_event_bytes: usize,
    /// Requests per minute for destinations that set none (Wazuh's default limit is 30).
    pub requests_per_minute: u32,
    /// Log in again this long before the token expires (seconds).
    pub token_refresh_margin_secs: u64,
    /// Token lifetime assumed when the token does not say (seconds; Wazuh's default is 900).
    pub default_token_lifetime_secs: u64,
}

impl Default for WazuhOptions {
    fn default() -> Self {
        Self {
            max_batch_events: 100,
            max_batch_bytes: 4 * 1024 * 1024,
            max_event_bytes: 64 * 1024,
            requests_per_minute: 30,
            token_refresh_margin_secs: 60,
            default_token_lifetime_secs: 900,
        }
    }
}

impl WazuhOptions {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !(1..=100).contains(&self.max_batch_events) {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_events"),
                "must be between 1 and 100 (the API's limit)",
            ));
        }
        if self.max_batch_bytes < 1024 || self.max_event_bytes < 1024 {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_bytes"),
                "max_batch_bytes and max_event_bytes must be at least 1024",
            ));
        }
        if self.requests_per_minute == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.requests_per_minute"),
                "must be positive",
            ));
        }
        if self.default_token_lifetime_secs == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.default_token_lifetime_secs"),
                "must be positive",
            ));
        }
        Ok(())
    }
}

/// One Wazuh destination, validated.
#[derive(Debug, Clone)]
pub struct WazuhConfig {
    pub events_url: url::Url,
    pub login_url: url::Url,
    pub username: String,
    pub password: Secret,
    pub requests_per_minute: u32,
    pub token_refresh_margin: Duration,
    pub default_token_lifetime: Duration,
    pub limits: BatchLimits,
}

impl WazuhConfig {
    pub fn new(
        settings: &WazuhSettings,
        password: Secret,
        options: &WazuhOptions,
        policy: &OutboundPolicy,
    ) -> Result<Self, InvalidSetting> {
        let base = checked_url(policy, "config.url", &settings.url)?;
        let join = |path: &str| {
            let mut url = base.clone();
            let prefix = base.path().trim_end_matches('/');
            url.set_path(&format!("{prefix}{path}"));
            url.set_query(None);
            url
        };
        let events_url = join("/events");
        let mut login_url = join("/security/user/authenticate");
        login_url.set_query(Some("raw=true"));
        if settings.username.trim().is_empty() {
            return Err(InvalidSetting::new("config.username", "must not be empty"));
        }
        let requests_per_minute = settings
            .requests_per_minute
            .unwrap_or(options.requests_per_minute);
        if requests_per_minute == 0 {
            return Err(InvalidSetting::new(
                "config.requests_per_minute",
                "must be positive",
            ));
        }
        Ok(Self {
            events_url,
            login_url,
            username: settings.username.clone(),
            password,
            requests_per_minute,
            token_refresh_margin: Duration::from_secs(options.token_refresh_margin_secs),
            default_token_lifetime: Duration::from_secs(options.default_token_lifetime_secs),
            limits: BatchLimits {
                max_events: options.max_batch_events,
                max_bytes: options.max_batch_bytes,
                max_event_bytes: options.max_event_bytes,
            },
        })
    }

    /// What identifies a session: a change of URL, user, password or pacing starts a new one.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(format!(
            "{}\n{}\n{}\n{}",
            self.events_url,
            self.username,
            self.password.expose(),
            self.requests_per_minute
        ));
        hex::encode(&digest[..16])
    }
}
