//! The topics the pipeline uses, and their creation (idempotent, by every service at start).
//!
//! | topic | key | cleanup | why |
//! |---|---|---|---|
//! | events (`audit.events.v1`) | org_id | delete, 7 d | the stream; partitions keyed by org give per-org order |
//! | dead letter (`audit.events.dlq.v1`) | org_id | delete, 30 d | bad input and undeliverable events, reason in headers |
//! | settings (`audit.settings.v1`) | record key | compact | tenant settings, read fully at start then followed |
//! | forwarder retry (`audit.forwarder.retry.v1`) | org/destination | delete, 7 d | durable retry path of failing destinations |

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
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
    /// Secret shared by the three services and never by producers (at least 32 characters;
    /// required): the gateway tags the events it validated and the services tag their own
    /// `audit_log` events (`audit-integrity` header, HMAC-SHA256, see
    /// `audit_core::integrity`), so consumers can tell them from what a producer wrote
    /// straight to Kafka (always validated; internal categories refused).
    pub integrity_key: Option<audit_runtime::Secret>,
    /// Keys authenticating every record of the settings topic (HMAC in a header, tombstones
    /// included), as `key_id:secret` with secrets of at least 32 characters; held by the three
    /// services only. The first signs, all verify: rotate by prepending a new key everywhere,
    /// then dropping the old one once every record was re-written. Required.
    pub settings_keys: Vec<audit_runtime::Secret>,
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
            settings_keys: Vec::new(),
        }
    }
}

impl TopicsConfig {
    /// The integrity key (`section` names the config section in the error).
    pub fn integrity(
        &self,
        section: &str,
    ) -> std::result::Result<audit_core::integrity::IntegrityKey, audit_runtime::ConfigError> {
        let key = format!("{section}.integrity_key");
        let secret = self.integrity_key.as_ref().ok_or_else(|| {
            audit_runtime::ConfigError::invalid(
                &key,
                "is required: a secret of at least 32 characters shared by the gateway, indexer and forwarder (never by producers)",
            )
        })?;
        audit_core::integrity::IntegrityKey::new(secret.expose())
            .map_err(|error| audit_runtime::ConfigError::invalid(&key, error.to_string()))
    }

    pub fn validate(&self, section: &str) -> std::result::Result<(), audit_runtime::ConfigError> {
        self.integrity(section)?;
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

/// Creates the topics that do not exist yet (existing topics are left as they are), then
/// checks that the events topic stamps the broker's time ([`check_events_timestamps`]).
pub async fn ensure_topics(kafka: &KafkaConfig, topics: &TopicsConfig) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> =
        kafka.client_config("audit-topics-admin").create()?;
    if topics.create {
        create_topics(&admin, topics).await?;
    }
    check_events_timestamps(&admin, &topics.events).await;
    Ok(())
}

/// Says loudly (error log, `events_topic_timestamp_type_ok` gauge 0) when the events topic
/// does not stamp messages with the broker's append time: producers could then choose the
/// `received_at` of what they produce straight to Kafka (the consumers fall back to their
/// own clock, see [`crate::events`]). Not fatal: the topic may be managed elsewhere, and
/// describing it may be denied by ACLs.
async fn check_events_timestamps(admin: &AdminClient<DefaultClientContext>, topic: &str) {
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &options)
        .await;
    let value = match described.as_deref() {
        Ok([Ok(resource)]) => resource
            .get("message.timestamp.type")
            .and_then(|entry| entry.value.clone()),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(%error, topic, "cannot describe the events topic's configuration");
            return;
        }
    };
    let ok = value.as_deref() == Some("LogAppendTime");
    metrics::gauge!("events_topic_timestamp_type_ok").set(if ok { 1.0 } else { 0.0 });
    if !ok {
        tracing::error!(
            topic,
            timestamp_type = value.as_deref().unwrap_or("unknown"),
            "the events topic must have message.timestamp.type=LogAppendTime: with CreateTime, \
             direct producers choose their messages' timestamps (consumers then use their own clock)"
        );
    }
}

async fn create_topics(
    admin: &AdminClient<DefaultClientContext>,
    topics: &TopicsConfig,
) -> Result<()> {
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
