//! The topics the pipeline uses, and their creation (idempotent, by every service at start).
//!
//! | topic | key | cleanup | why |
//! |---|---|---|---|
//! | events (`audit.events.v1`) | org_id | delete, 7 d | the stream; partitions keyed by org give per-org order |
//! | dead letter (`audit.events.dlq.v1`) | org_id | delete, 30 d | bad input and undeliverable events, reason in headers |
//! | settings (`audit.settings.v1`) | record key | compact | tenant settings, read fully at start then followed |
//! | forwarder retry (`audit.forwarder.retry.v1`) | org/destination | delete, 7 d | durable retry path of failing destinations |

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use serde::{Deserialize, Serialize};

use crate::config::KafkaConfig;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicsConfig {
    /// The audit events topic (key = org_id).
    pub events: String,
    /// Dead-letter topic for invalid or undeliverable events.
    pub dead_letter: String,
    /// Compacted tenant-settings topic.
    pub settings: String,
    /// The forwarder's durable retry topic.
    pub forwarder_retry: String,
    /// Tamper evidence: the signed window digests of every organization (docs/integrity.md),
    /// the anchor outside ClickHouse; partitioned like the events topic.
    pub digests: String,
    /// Partitions of the events topic (at least 6; the unit of parallelism of consumers).
    pub events_partitions: i32,
    /// Replication factor of every topic (1 for a single local broker; 3 in production).
    pub replication_factor: i32,
    /// Retention of the events and retry topics, in hours.
    pub events_retention_hours: u32,
    /// Retention of the dead-letter topic, in hours.
    pub dead_letter_retention_hours: u32,
    /// Retention of the digests topic, in days: longer than any retention (1,095 days).
    pub digests_retention_days: u32,
    /// Create missing topics at start. Turn off where topics are managed by the platform.
    pub create: bool,
    /// Secret shared by the gateway and the consumers: the gateway tags the messages it
    /// validated (`audit-integrity` header, HMAC-SHA256) so consumers can skip re-validating
    /// them; untagged messages are always validated. Unset: every message is validated.
    pub integrity_key: Option<audit_runtime::Secret>,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        Self {
            events: "audit.events.v1".into(),
            dead_letter: "audit.events.dlq.v1".into(),
            settings: "audit.settings.v1".into(),
            forwarder_retry: "audit.forwarder.retry.v1".into(),
            digests: "audit.integrity.v1".into(),
            events_partitions: 6,
            replication_factor: 1,
            events_retention_hours: 7 * 24,
            dead_letter_retention_hours: 30 * 24,
            digests_retention_days: 1125,
            create: true,
            integrity_key: None,
        }
    }
}

impl TopicsConfig {
    /// The integrity key, if configured (validated by `validate`).
    pub fn integrity(&self) -> Option<audit_core::integrity::IntegrityKey> {
        self.integrity_key
            .as_ref()
            .and_then(|key| audit_core::integrity::IntegrityKey::new(key.expose()).ok())
    }

    pub fn validate(&self, section: &str) -> std::result::Result<(), audit_runtime::ConfigError> {
        if self.events_partitions < 1 {
            return Err(audit_runtime::ConfigError::invalid(
                format!("{section}.events_partitions"),
                "must be at least 1",
            ));
        }
        if self.replication_factor < 1 {
            return Err(audit_runtime::ConfigError::invalid(
                format!("{section}.replication_factor"),
                "must be at least 1",
            ));
        }
        let names = [
            &self.events,
            &self.dead_letter,
            &self.settings,
            &self.forwarder_retry,
            &self.digests,
        ];
        for (index, name) in names.iter().enumerate() {
            if name.is_empty() || names[..index].contains(name) {
                return Err(audit_runtime::ConfigError::invalid(
                    section,
                    format!("topic name `{name}` is empty or used twice"),
                ));
            }
        }
        Ok(())
    }
}

/// Creates the topics that do not exist yet. Existing topics are left as they are.
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &TopicsConfig) -> Result<()> {
    if !topics.create {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config("audit-topics-admin").create()?;
    let retention_ms = (u64::from(topics.events_retention_hours) * 3_600_000).to_string();
    let dead_letter_ms = (u64::from(topics.dead_letter_retention_hours) * 3_600_000).to_string();
    let digests_ms = (u64::from(topics.digests_retention_days) * 86_400_000).to_string();
    let replication = || TopicReplication::Fixed(topics.replication_factor);
    let min_isr = if topics.replication_factor >= 3 {
        "2"
    } else {
        "1"
    };
    let new_topics = [
        NewTopic::new(&topics.events, topics.events_partitions, replication())
            .set("retention.ms", &retention_ms)
            .set("min.insync.replicas", min_isr)
            // Broker append time = arrival time, for messages produced straight to Kafka.
            .set("message.timestamp.type", "LogAppendTime"),
        NewTopic::new(&topics.dead_letter, topics.events_partitions, replication())
            .set("retention.ms", &dead_letter_ms)
            .set("min.insync.replicas", min_isr),
        NewTopic::new(
            &topics.forwarder_retry,
            topics.events_partitions,
            replication(),
        )
        .set("retention.ms", &retention_ms)
        .set("min.insync.replicas", min_isr),
        // One partition gives every reader the same total order of settings changes.
        // Partitioned like the events: an organization's digests share its partition number.
        NewTopic::new(&topics.digests, topics.events_partitions, replication())
            .set("retention.ms", &digests_ms)
            .set("min.insync.replicas", min_isr),
        NewTopic::new(&topics.settings, 1, replication())
            .set("cleanup.policy", "compact")
            .set("min.compaction.lag.ms", "0")
            .set("segment.ms", "3600000")
            .set("min.insync.replicas", min_isr),
    ];
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(new_topics.iter(), &options).await?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Topic {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}
