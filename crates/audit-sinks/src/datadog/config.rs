//! Datadog options (`[sinks.datadog]`) and the validated config of one destination.

use super::settings::DatadogSettings;
use audit_runtime::{ConfigError, Secret};
use audit_settings::OutboundPolicy;
use serde::{Deserialize, Serialize};

use crate::{BatchLimits, InvalidSetting, checked_url, with_default_path};

/// The sites of the intake API.
pub const SITES: &[&str] = &[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
];

/// Sink-wide Datadog settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatadogOptions {
    /// Most log entries per request (the intake accepts 1,000).
    pub max_batch_events: usize,
    /// Most uncompressed bytes per request (the intake accepts 5 MB).
    pub max_batch_bytes: usize,
    /// Largest log entry (the intake truncates entries over 1 MB).
    pub max_event_bytes: usize,
    /// Compress request bodies with gzip.
    pub gzip: bool,
    /// gzip level, 1 (fast) to 9 (small).
    pub gzip_level: u32,
    /// `ddsource` when the destination sets none.
    pub default_source: String,
    /// `service` when the destination sets none.
    pub default_service: String,
    /// `hostname` of events that name no producing service.
    pub default_hostname: String,
}

impl Default for DatadogOptions {
    fn default() -> Self {
        Self {
            max_batch_events: 1_000,
            max_batch_bytes: 5_000_000,
            max_event_bytes: 1_000_000,
            gzip: true,
            gzip_level: 6,
            default_source: "solarius-audit-log".into(),
            default_service: "audit-log".into(),
            default_hostname: "solarius-audit-log".into(),
        }
    }
}

impl DatadogOptions {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if !(1..=1_000).contains(&self.max_batch_events) {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_events"),
                "must be between 1 and 1000 (the intake's limit)",
            ));
        }
        if !(1024..=5_000_000).contains(&self.max_batch_bytes) {
            return Err(ConfigError::invalid(
                format!("{section}.max_batch_bytes"),
                "must be between 1024 and 5000000 (the intake's limit)",
            ));
        }
        if !(1024..=1_000_000).contains(&self.max_event_bytes) {
            return Err(ConfigError::invalid(
                format!("{section}.max_event_bytes"),
                "must be between 1024 and 1000000 (the intake's limit)",
            ));
        }
        if !(1..=9).contains(&self.gzip_level) {
            return Err(ConfigError::invalid(
                format!("{section}.gzip_level"),
                "must be between 1 and 9",
            ));
        }
        Ok(())
    }
}

/// One Datadog destination, validated.
#[derive(Debug, Clone)]
pub struct DatadogConfig {
    pub url: url::Url,
    pub api_key: Secret,
    /// `"ddsource":…,"service":…` JSON-escaped once.
    pub source_and_service: String,
    /// The destination's tags plus `org_id:…` (without per-event tags).
    pub base_tags: String,
    pub default_hostname: String,
    pub gzip_level: Option<u32>,
    pub limits: BatchLimits,
}

impl DatadogConfig {
    pub fn new(
        org_id: &str,
        settings: &DatadogSettings,
        api_key: Secret,
        options: &DatadogOptions,
        policy: &OutboundPolicy,
    ) -> Result<Self, InvalidSetting> {
        if !SITES.contains(&settings.site.as_str()) {
            return Err(InvalidSetting::new(
                "config.site",
                format!(
                    "unknown Datadog site `{}`; one of {}",
                    settings.site,
                    SITES.join(", ")
                ),
            ));
        }
        let raw_url = match &settings.url {
            Some(url) => url.clone(),
            None => format!("https://http-intake.logs.{}/api/v2/logs", settings.site),
        };
        let url = with_default_path(checked_url(policy, "config.url", &raw_url)?, "/api/v2/logs");
        if api_key.expose().trim().is_empty() {
            return Err(InvalidSetting::new("config.api_key", "must not be empty"));
        }
        let quote = |text: &str| serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        let source_and_service = format!(
            "\"ddsource\":{},\"service\":{}",
            quote(
                settings
                    .ddsource
                    .as_deref()
                    .unwrap_or(&options.default_source)
            ),
            quote(
                settings
                    .service
                    .as_deref()
                    .unwrap_or(&options.default_service)
            ),
        );
        let mut base_tags = String::new();
        if let Some(tags) = settings.ddtags.as_deref().filter(|t| !t.trim().is_empty()) {
            base_tags.push_str(tags.trim().trim_end_matches(','));
            base_tags.push(',');
        }
        base_tags.push_str("org_id:");
        base_tags.push_str(&tag_value(org_id));
        Ok(Self {
            url,
            api_key,
            source_and_service,
            base_tags,
            default_hostname: options.default_hostname.clone(),
            gzip_level: options.gzip.then_some(options.gzip_level),
            limits: BatchLimits {
                max_events: options.max_batch_events,
                max_bytes: options.max_batch_bytes,
                max_event_bytes: options.max_event_bytes,
            },
        })
    }
}

/// A tag value without the separators of `ddtags` (`,` and whitespace).
pub fn tag_value(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c == ',' || c.is_whitespace() {
                '_'
            } else {
                c
            }
        })
        .collect()
}
