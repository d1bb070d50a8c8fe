//! Client settings. `KafkaConfig` is the `[kafka]` section of every service's config.

use std::collections::BTreeMap;

use audit_runtime::{ConfigError, Secret};
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, comma separated, e.g. `127.0.0.1:19092`.
    pub brokers: String,
    /// Extra librdkafka properties (e.g. `security.protocol`), applied to every client.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
    /// Extra librdkafka properties holding secrets (e.g. `sasl.password`); never logged.
    #[serde(default)]
    pub secret_properties: BTreeMap<String, Secret>,
}

impl KafkaConfig {
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(
                format!("{section}.brokers"),
                "must not be empty",
            ));
        }
        for key in self.properties.keys().chain(self.secret_properties.keys()) {
            if key.starts_with("enable.auto.") || key == "enable.idempotence" || key == "acks" {
                return Err(ConfigError::invalid(
                    format!("{section}.properties.{key}"),
                    "is fixed by the delivery guarantees and cannot be overridden",
                ));
            }
        }
        Ok(())
    }

    /// The base client config: brokers, client id and the extra properties.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set("socket.keepalive.enable", "true");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        for (key, value) in &self.secret_properties {
            config.set(key, value.expose());
        }
        config
    }
}

/// Producer knobs. Defaults favour throughput with bounded memory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerTuning {
    /// How long the producer waits to fill a batch (ms).
    pub linger_ms: u32,
    /// Most messages waiting in the producer; past it `send` fails with QueueFull (backpressure).
    pub queue_max_messages: u32,
    /// Most kilobytes waiting in the producer.
    pub queue_max_kbytes: u32,
    /// How long a message may wait for the broker's acknowledgement before it is reported failed (ms).
    pub delivery_timeout_ms: u32,
    /// `lz4`, `gzip`, `snappy` or `none`.
    pub compression: String,
}

impl Default for ProducerTuning {
    fn default() -> Self {
        Self {
            linger_ms: 5,
            queue_max_messages: 100_000,
            queue_max_kbytes: 64 * 1024,
            delivery_timeout_ms: 30_000,
            compression: "lz4".to_string(),
        }
    }
}

impl ProducerTuning {
    /// Producer settings that make an acknowledged message durable and never duplicated by the
    /// producer's own retries: idempotence implies acks=all and ordered, deduplicated retries.
    pub fn apply(&self, config: &mut ClientConfig) {
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("compression.type", &self.compression)
            .set("linger.ms", self.linger_ms.to_string())
            .set("batch.size", "1000000")
            .set(
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            )
            .set(
                "queue.buffering.max.kbytes",
                self.queue_max_kbytes.to_string(),
            )
            .set("message.timeout.ms", self.delivery_timeout_ms.to_string());
    }
}

/// Consumer knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerTuning {
    /// Kilobytes librdkafka may prefetch per partition; bounds memory when downstream is slow.
    pub queued_max_kbytes: u32,
    /// Session timeout (ms): how fast a dead instance's partitions move to the others.
    pub session_timeout_ms: u32,
    /// Most time between polls before the group considers this instance stuck (ms).
    pub max_poll_interval_ms: u32,
}

impl Default for ConsumerTuning {
    fn default() -> Self {
        Self {
            queued_max_kbytes: 16 * 1024,
            session_timeout_ms: 10_000,
            max_poll_interval_ms: 300_000,
        }
    }
}

impl ConsumerTuning {
    /// Group consumer settings: offsets are never committed or stored automatically.
    pub fn apply(&self, config: &mut ClientConfig, group_id: &str) {
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", self.session_timeout_ms.to_string())
            .set(
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 5).max(500).to_string(),
            )
            .set(
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            )
            .set(
                "queued.max.messages.kbytes",
                self.queued_max_kbytes.to_string(),
            )
            .set("fetch.max.bytes", "16777216");
    }
}
