//! HEC options (`[sinks.splunk_hec]`) and the validated config of one destination.

use std::time::Duration;

use super::settings::SplunkHecSettings;
use audit_runtime::{ConfigError, Secret};
use audit_settings::OutboundPolicy;
use serde::{Deserialize, Serialize};

use crate::{BatchLimits, InvalidSetting, checked_url, with_default_path};

/// Sink-wide HEC settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HecOptions {
    /// Request body limit (bytes) for destinations that set none.
    pub max_batch_bytes: usize,
    /// Most events per request.
    pub max_batch_events: usize,
    /// `host` of the envelopes when the destination sets none.
    pub default_host: String,
    /// `source` of the envelopes when the destination sets none.
    pub default_source: String,
    /// `sourcetype` of the envelopes when the destination sets none.
    pub default_sourcetype: String,
    /// How often indexer acknowledgements are polled (ms).
    pub ack_poll_interval_ms: u64,
    /// How long a request may wait to be acknowledged before it is resent (seconds).
    pub ack_timeout_secs: u64,
}

impl Default for HecOptions {
    fn default() -> Self {
        Self {
            max_batch_bytes: 1024 * 1024,
            max_batch_events: 10_000,
            default_host: "solarius-audit-log".into(),
            default_source: "solarius:audit-log".into(),
            default_sourcetype: "_json".into(),
            ack_poll_interval_ms: 500,
            ack_timeout_secs: 60,
        }
    }
}

impl HecOptions {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !(1024..=838_860_800).contains(&self.max_batch_bytes) {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_bytes"),
                "must be between 1024 and 838860800",
            ));
        }
        if self.max_batch_events == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_events"),
                "must be positive",
            ));
        }
        if self.ack_poll_interval_ms == 0 || self.ack_timeout_secs == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.ack_timeout_secs"),
                "ack_poll_interval_ms and ack_timeout_secs must be positive",
            ));
        }
        Ok(())
    }
}

/// One HEC destination, validated.
#[derive(Debug, Clone)]
pub struct HecConfig {
    pub event_url: url::Url,
    pub ack_url: url::Url,
    pub token: Secret,
    pub indexer_ack: bool,
    /// Everything of an envelope between `time` and the event, JSON-escaped once:
    /// `,"host":…,"source":…,"sourcetype":…,"index":…,"fields":{"org_id":…`.
    pub envelope_middle: String,
    pub limits: BatchLimits,
    pub ack_poll_interval: Duration,
    pub ack_timeout: Duration,
}

/// A request body HEC accepts: from 1 KiB up to Splunk Enterprise's 800 MB
/// (`max_content_length`; Splunk Cloud stops near 1 MiB).
const MAX_BATCH_BYTES: std::ops::RangeInclusive<usize> = 1024..=838_860_800;

impl HecConfig {
    pub fn new(
        org_id: &str,
        settings: &SplunkHecSettings,
        token: Secret,
        options: &HecOptions,
        policy: &OutboundPolicy,
    ) -> Result<Self, InvalidSetting> {
        let base = checked_url(policy, "config.url", &settings.url)?;
        let event_url = if base.path().contains("/services/collector") {
            base.clone()
        } else {
            with_default_path(base.clone(), "/services/collector/event")
        };
        let mut ack_url = base;
        ack_url.set_path("/services/collector/ack");
        ack_url.set_query(None);
        if token.expose().trim().is_empty() {
            return Err(InvalidSetting::new("config.token", "must not be empty"));
        }
        let max_batch_bytes = settings.max_batch_bytes.unwrap_or(options.max_batch_bytes);
        if !MAX_BATCH_BYTES.contains(&max_batch_bytes) {
            return Err(InvalidSetting::new(
                "config.max_batch_bytes",
                format!(
                    "must be between {} and {}",
                    MAX_BATCH_BYTES.start(),
                    MAX_BATCH_BYTES.end()
                ),
            ));
        }
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        let mut middle = String::with_capacity(256);
        middle.push_str(",\"host\":");
        middle.push_str(&quote(
            settings.host.as_deref().unwrap_or(&options.default_host),
        ));
        middle.push_str(",\"source\":");
        middle.push_str(&quote(
            settings
                .source
                .as_deref()
                .unwrap_or(&options.default_source),
        ));
        middle.push_str(",\"sourcetype\":");
        middle.push_str(&quote(
            settings
                .sourcetype
                .as_deref()
                .unwrap_or(&options.default_sourcetype),
        ));
        if let Some(index) = &settings.index {
            middle.push_str(",\"index\":");
            middle.push_str(&quote(index));
        }
        middle.push_str(",\"fields\":{\"org_id\":");
        middle.push_str(&quote(org_id));
        Ok(Self {
            event_url,
            ack_url,
            token,
            indexer_ack: settings.indexer_ack,
            envelope_middle: middle,
            limits: BatchLimits {
                max_events: options.max_batch_events,
                max_bytes: max_batch_bytes,
                max_event_bytes: max_batch_bytes,
            },
            ack_poll_interval: Duration::from_millis(options.ack_poll_interval_ms),
            ack_timeout: Duration::from_secs(options.ack_timeout_secs),
        })
    }
}
