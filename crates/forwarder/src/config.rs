//! The forwarder's configuration (`config/forwarder.toml`, overridable by `FORWARDER__…`
//! variables, e.g. `FORWARDER__RETRY__MAX_BACKOFF_MS=2000`).

use std::path::PathBuf;
use std::time::Duration;

use audit_core::Limits;
use audit_kafka::{ConsumerTuning, KafkaConfig, ProducerTuning, TopicsConfig};
use audit_runtime::config::{require_existing, require_positive};
use audit_runtime::{ConfigError, HttpConfig, TelemetryConfig};
use audit_settings::{OutboundPolicy, PlansConfig, SealKeys};
use serde::{Deserialize, Serialize};

use crate::backoff::BackoffEngine;
use audit_sinks::SinksConfig;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwarderConfig {
    /// Where `/healthz`, `/readyz`, `/metrics` and `/v1/destinations` listen.
    pub http: HttpConfig,
    /// Log format and level.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// Kafka connection.
    pub kafka: KafkaConfig,
    /// Topic names and layout (events, dead letter, settings, forwarder retry).
    #[serde(default)]
    pub topics: TopicsConfig,
    /// Consumer groups and their tuning.
    #[serde(default)]
    pub consumer: ConsumerConfig,
    /// Producer of the retry topic, the dead-letter topic and the pause audit events.
    #[serde(default = "default_producer")]
    pub producer: ProducerTuning,
    /// Batching, timeouts and event age.
    #[serde(default)]
    pub delivery: DeliveryConfig,
    /// The retry schedule and when a failing destination is parked or paused.
    #[serde(default)]
    pub retry: RetryConfig,
    /// Publication of per-destination health.
    #[serde(default)]
    pub health: HealthConfig,
    /// Per destination type limits and defaults.
    #[serde(default)]
    pub sinks: SinksConfig,
    /// Keys that open destination secrets (the same keys as the gateway's `[encryption]`).
    #[serde(default)]
    pub encryption: SealKeys,
    /// Which destination addresses may be reached (SSRF protection).
    #[serde(default)]
    pub outbound: OutboundPolicy,
    /// Plans: only plans with `streaming = true` are forwarded (shared with the gateway).
    #[serde(default)]
    pub plans: PlansConfig,
    /// Event limits, for events produced straight to Kafka (shared with the gateway and indexer).
    #[serde(default)]
    pub limits: Limits,
    /// Path of the category/action catalogue.
    #[serde(default = "default_catalogue_path")]
    pub catalogue_path: PathBuf,
}

fn default_catalogue_path() -> PathBuf {
    PathBuf::from("config/catalogue.toml")
}

fn default_producer() -> ProducerTuning {
    ProducerTuning {
        linger_ms: 5,
        ..ProducerTuning::default()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerConfig {
    /// Consumer group of the events topic; every forwarder instance of a deployment uses the same.
    pub group_id: String,
    /// Consumer group of the retry topic (defaults to `{group_id}-retry`).
    pub retry_group_id: Option<String>,
    /// Consumer tuning (prefetch bounds memory).
    pub tuning: ConsumerTuning,
    /// How long a rebalance or shutdown waits for in-flight events to be delivered, parked or
    /// dead-lettered before letting their partitions go (the rest is re-read by the next owner).
    pub drain_timeout_secs: u64,
    /// How often acknowledged offsets are committed (ms).
    pub commit_interval_ms: u64,
    /// Most events read but not yet acknowledged, over all destinations; beyond it the
    /// consumer pauses fetching (bounded memory).
    pub max_buffered_events: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group_id: "forwarder".into(),
            retry_group_id: None,
            tuning: ConsumerTuning {
                // See config/forwarder.toml: a small prefetch keeps RSS down at the same rate.
                queued_max_kbytes: 2 * 1024,
                ..ConsumerTuning::default()
            },
            drain_timeout_secs: 15,
            commit_interval_ms: 1_000,
            max_buffered_events: 50_000,
        }
    }
}

impl ConsumerConfig {
    pub fn retry_group(&self) -> String {
        self.retry_group_id
            .clone()
            .unwrap_or_else(|| format!("{}-retry", self.group_id))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliveryConfig {
    /// Name of this instance in health records (default: host name and process id).
    pub instance_id: Option<String>,
    /// Longest time an event waits for its batch to fill (ms): the freshness bound.
    pub linger_ms: u64,
    /// Events queued in memory per destination before the consumer waits for it.
    pub lane_queue_events: usize,
    /// How long the consumer waits for a destination whose queue is full before parking that
    /// destination's new events on the retry topic instead (ms): it parks them once it has
    /// waited half of this window.
    pub overflow_after_ms: u64,
    /// A destination whose request has had no answer for this long (or that is failing) is
    /// stalled: when its queue is full the consumer parks its new events at once instead of
    /// waiting for it (ms).
    pub stalled_after_ms: u64,
    /// TCP (and TLS) connect timeout (ms).
    pub connect_timeout_ms: u64,
    /// Whole-request timeout, response included (ms).
    pub request_timeout_ms: u64,
    /// Events older than this (since they reached the platform) go to the dead-letter topic
    /// instead of being retried again (seconds).
    pub max_event_age_secs: u64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            instance_id: None,
            linger_ms: 200,
            lane_queue_events: 10_000,
            overflow_after_ms: 5_000,
            stalled_after_ms: 1_000,
            connect_timeout_ms: audit_sinks::outbound::CONNECT_TIMEOUT.as_millis() as u64,
            request_timeout_ms: audit_sinks::outbound::REQUEST_TIMEOUT.as_millis() as u64,
            max_event_age_secs: 72 * 3600,
        }
    }
}

impl DeliveryConfig {
    pub fn instance(&self) -> String {
        if let Some(id) = &self.instance_id {
            return id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "forwarder".into());
        format!("{host}-{}", std::process::id())
    }

    pub fn linger(&self) -> Duration {
        Duration::from_millis(self.linger_ms)
    }

    pub fn overflow_rules(&self) -> OverflowRules {
        OverflowRules {
            overflow_after: Duration::from_millis(self.overflow_after_ms),
            stalled_after: Duration::from_millis(self.stalled_after_ms),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First backoff delay (ms).
    pub initial_backoff_ms: u64,
    /// Largest backoff delay (ms); also the longest a parked event waits between attempts.
    pub max_backoff_ms: u64,
    /// Attempts made in memory before a destination's events are parked on the retry topic.
    pub in_memory_attempts: u32,
    /// Longest time spent retrying a batch in memory before parking it (ms).
    pub in_memory_budget_ms: u64,
    /// Largest `Retry-After` honoured (seconds); longer values are capped.
    pub max_retry_after_secs: u64,
    /// How often events parked for a paused destination are looked at again (seconds).
    pub paused_recheck_secs: u64,
    /// A destination failing continuously for this long is paused, with an audit event (seconds).
    pub pause_after_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff_ms: 1_000,
            max_backoff_ms: 300_000,
            in_memory_attempts: 3,
            in_memory_budget_ms: 20_000,
            max_retry_after_secs: 600,
            paused_recheck_secs: 60,
            pause_after_secs: 24 * 3600,
        }
    }
}

impl RetryConfig {
    pub fn engine(&self) -> BackoffEngine {
        BackoffEngine::new(
            Duration::from_millis(self.initial_backoff_ms),
            Duration::from_millis(self.max_backoff_ms),
            Duration::from_secs(self.max_retry_after_secs),
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Shortest interval between two health records of one destination (seconds).
    pub publish_interval_secs: u64,
    /// Longest interval between two health records of one destination, changed or not
    /// (seconds): a record not refreshed for three times this long is stale — the operator
    /// view ignores it and forwarders delete it (an instance that is gone).
    pub refresh_secs: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            publish_interval_secs: 5,
            refresh_secs: 300,
        }
    }
}

impl HealthConfig {
    /// How long a health record counts after it was written.
    pub fn record_lifetime(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.refresh_secs.saturating_mul(3))
    }
}

impl ForwarderConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.kafka.validate("kafka")?;
        self.consumer.tuning.validate("consumer.tuning")?;
        audit_settings::SettingsAuth::check_topics(&self.topics, "topics")?;
        self.plans.validate("plans")?;
        self.outbound.validate("outbound")?;
        self.sinks.validate("sinks")?;
        self.limits.validate().map_err(|error| {
            ConfigError::invalid(format!("limits.{}", error.field), error.reason)
        })?;
        audit_settings::SecretBox::from_config(&self.encryption, "encryption")?;
        if self.consumer.group_id.trim().is_empty() {
            return Err(ConfigError::invalid(
                "consumer.group_id",
                "must not be empty",
            ));
        }
        if self.consumer.retry_group() == self.consumer.group_id {
            return Err(ConfigError::invalid(
                "consumer.retry_group_id",
                "must differ from consumer.group_id",
            ));
        }
        require_positive(
            "consumer.commit_interval_ms",
            self.consumer.commit_interval_ms,
        )?;
        require_positive(
            "consumer.max_buffered_events",
            self.consumer.max_buffered_events as u64,
        )?;
        require_positive(
            "delivery.lane_queue_events",
            self.delivery.lane_queue_events as u64,
        )?;
        require_positive("delivery.stalled_after_ms", self.delivery.stalled_after_ms)?;
        require_positive(
            "delivery.connect_timeout_ms",
            self.delivery.connect_timeout_ms,
        )?;
        require_positive(
            "delivery.request_timeout_ms",
            self.delivery.request_timeout_ms,
        )?;
        require_positive(
            "delivery.max_event_age_secs",
            self.delivery.max_event_age_secs,
        )?;
        if self.delivery.linger_ms > 60_000 {
            return Err(ConfigError::invalid(
                "delivery.linger_ms",
                "must be at most 60000 (it bounds delivery latency)",
            ));
        }
        if let Some(id) = &self.delivery.instance_id
            && (id.is_empty() || id.contains('/'))
        {
            return Err(ConfigError::invalid(
                "delivery.instance_id",
                "must be non-empty and contain no `/`",
            ));
        }
        require_positive("retry.initial_backoff_ms", self.retry.initial_backoff_ms)?;
        if self.retry.max_backoff_ms < self.retry.initial_backoff_ms {
            return Err(ConfigError::invalid(
                "retry.max_backoff_ms",
                "must be at least retry.initial_backoff_ms",
            ));
        }
        require_positive(
            "retry.in_memory_attempts",
            u64::from(self.retry.in_memory_attempts),
        )?;
        require_positive("retry.paused_recheck_secs", self.retry.paused_recheck_secs)?;
        require_positive("retry.pause_after_secs", self.retry.pause_after_secs)?;
        require_positive(
            "health.publish_interval_secs",
            self.health.publish_interval_secs,
        )?;
        if self.health.refresh_secs < self.health.publish_interval_secs {
            return Err(ConfigError::invalid(
                "health.refresh_secs",
                "must be at least health.publish_interval_secs",
            ));
        }
        require_existing("catalogue_path", &self.catalogue_path)?;
        Ok(())
    }
}

/// When a full lane's queue makes the consumer wait.
#[derive(Debug, Clone, Copy)]
pub struct OverflowRules {
    /// A slow lane overflows after the consumer waited for it half of this window.
    pub overflow_after: Duration,
    /// A request unanswered for this long makes its destination stalled.
    pub stalled_after: Duration,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample() -> ForwarderConfig {
        let text = r#"
            catalogue_path = "../../config/catalogue.toml"
            [http]
            listen = "127.0.0.1:9102"
            [kafka]
            brokers = "127.0.0.1:19092"
            [topics]
            integrity_key = "test-integrity-key-0123456789abcdef"
            settings_keys = ["t1:test-settings-key-0123456789abcdef"]
            [encryption]
            keys = ["dev1:hJyAvF/uIvCKIzLADyZ+ixwuiY8z+0CufnLQi5dO6ic="]
        "#;
        toml::from_str(text).unwrap_or_else(|error| panic!("sample config: {error}"))
    }

    #[test]
    fn defaults_are_valid() {
        let config = sample();
        assert!(config.validate().is_ok(), "{:?}", config.validate());
        assert_eq!(config.consumer.retry_group(), "forwarder-retry");
    }

    #[test]
    fn trust_keys_are_required() {
        let mut config = sample();
        config.topics.integrity_key = None;
        let error = config.validate().expect_err("invalid").to_string();
        assert!(error.contains("topics.integrity_key"), "{error}");
        let mut config = sample();
        config.topics.settings_keys.clear();
        let error = config.validate().expect_err("invalid").to_string();
        assert!(error.contains("topics.settings_keys"), "{error}");
        let mut config = sample();
        config.health.refresh_secs = 1;
        let error = config.validate().expect_err("invalid").to_string();
        assert!(error.contains("health.refresh_secs"), "{error}");
    }

    #[test]
    fn errors_name_the_key() {
        let mut config = sample();
        config.retry.max_backoff_ms = 1;
        let error = config
            .validate()
            .map(|_| ())
            .expect_err("invalid")
            .to_string();
        assert!(error.contains("retry.max_backoff_ms"), "{error}");

        let mut config = sample();
        config.consumer.retry_group_id = Some("forwarder".into());
        let error = config
            .validate()
            .map(|_| ())
            .expect_err("invalid")
            .to_string();
        assert!(error.contains("consumer.retry_group_id"), "{error}");

        let mut config = sample();
        config.encryption.keys.clear();
        let error = config
            .validate()
            .map(|_| ())
            .expect_err("invalid")
            .to_string();
        assert!(error.contains("encryption.keys"), "{error}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let error = toml::from_str::<ForwarderConfig>(
            "[http]\nlisten='127.0.0.1:1'\n[kafka]\nbrokers='x'\n[retry]\nmax_backof_ms=3\n",
        )
        .map(|_| ())
        .expect_err("unknown key")
        .to_string();
        assert!(error.contains("max_backof_ms"), "{error}");
    }
}
