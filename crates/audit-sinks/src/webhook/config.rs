//! Webhook options (`[sinks.webhook]`) and the validated config of one destination.

use super::settings::WebhookSettings;
use audit_runtime::ConfigError;
use audit_settings::OutboundPolicy;
use serde::{Deserialize, Serialize};

use crate::{BatchLimits, InvalidSetting, checked_url};

/// Sink-wide webhook settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookOptions {
    /// Events per request for destinations that set none.
    pub max_batch_events: usize,
    /// Most bytes per request body.
    pub max_batch_bytes: usize,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        Self {
            max_batch_events: 500,
            max_batch_bytes: 1024 * 1024,
        }
    }
}

impl WebhookOptions {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.max_batch_events == 0 {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_events"),
                "must be positive",
            ));
        }
        if self.max_batch_bytes < 1024 {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_bytes"),
                "must be at least 1024",
            ));
        }
        Ok(())
    }
}

/// One webhook destination, validated.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: url::Url,
    pub limits: BatchLimits,
}

impl WebhookConfig {
    pub fn new(
        settings: &WebhookSettings,
        options: &WebhookOptions,
        policy: &OutboundPolicy,
    ) -> Result<Self, InvalidSetting> {
        let url = checked_url(policy, "config.url", &settings.url)?;
        let max_events = settings
            .max_batch_events
            .unwrap_or(options.max_batch_events);
        if max_events == 0 {
            return Err(InvalidSetting::new(
                "config.max_batch_events",
                "must be positive",
            ));
        }
        Ok(Self {
            url,
            limits: BatchLimits {
                max_events,
                max_bytes: options.max_batch_bytes,
                max_event_bytes: options.max_batch_bytes,
            },
        })
    }
}
