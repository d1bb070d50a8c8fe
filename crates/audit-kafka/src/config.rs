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
        // The guarantees are not negotiable (validate() refuses them in `properties`).
        config.set("enable.idempotence", "true").set("acks", "all");
        let defaults = [
            ("partitioner", "murmur2_random".to_string()),
            ("compression.type", self.compression.clone()),
            ("linger.ms", self.linger_ms.to_string()),
            ("batch.size", "1000000".to_string()),
            (
                "queue.buffering.max.messages",
                self.queue_max_messages.to_string(),
            ),
            (
                "queue.buffering.max.kbytes",
                self.queue_max_kbytes.to_string(),
            ),
            ("message.timeout.ms", self.delivery_timeout_ms.to_string()),
        ];
        set_defaults(config, defaults);
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
    /// Static group membership (`group.instance.id`): a name stable across restarts and
    /// unique per instance (a pod's name). An instance restarted under its name within
    /// `session_timeout_ms` takes its partitions back at once, without a rebalance; unset, a
    /// crashed instance's partitions wait for its session to expire (BENCHMARKS.md, crash
    /// freshness). The cost: a static member stopping for good also holds its partitions
    /// until then, since it leaves the group without telling it.
    pub group_instance_id: Option<String>,
}

impl Default for ConsumerTuning {
    fn default() -> Self {
        Self {
            // Per partition: 6 partitions × 4 MiB bounds the prefetch; with the 20 ms fetch
            // backoff below a small queue does not slow consumption.
            queued_max_kbytes: 4 * 1024,
            session_timeout_ms: 10_000,
            max_poll_interval_ms: 300_000,
            group_instance_id: None,
        }
    }
}

impl ConsumerTuning {
    /// Checks what librdkafka would refuse only at the first connection.
    pub fn validate(&self, section: &str) -> Result<(), ConfigError> {
        if let Some(instance) = &self.group_instance_id
            && (instance.trim().is_empty() || instance.len() > 249)
        {
            return Err(ConfigError::invalid(
                format!("{section}.group_instance_id"),
                "must be 1 to 249 characters when set",
            ));
        }
        Ok(())
    }

    /// Group consumer settings: offsets are never committed or stored automatically.
    pub fn apply(&self, config: &mut ClientConfig, group_id: &str) {
        config
            .set("group.id", group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        if let Some(instance) = &self.group_instance_id {
            config.set("group.instance.id", instance);
        }
        let defaults = [
            ("auto.offset.reset", "earliest".to_string()),
            (
                "partition.assignment.strategy",
                "cooperative-sticky".to_string(),
            ),
            ("session.timeout.ms", self.session_timeout_ms.to_string()),
            (
                "heartbeat.interval.ms",
                (self.session_timeout_ms / 5).max(500).to_string(),
            ),
            (
                "max.poll.interval.ms",
                self.max_poll_interval_ms.to_string(),
            ),
            (
                "queued.max.messages.kbytes",
                self.queued_max_kbytes.to_string(),
            ),
            ("fetch.max.bytes", "16777216".to_string()),
            // With a bounded prefetch queue, librdkafka's default 1 s backoff after the queue
            // fills caps a partition at a few tens of thousands of messages per second.
            ("fetch.queue.backoff.ms", "20".to_string()),
            // The broker answers a fetch as soon as data is there, or after this (freshness);
            // the default 500 ms showed up in the forwarder's p99 at low rates.
            ("fetch.wait.max.ms", "100".to_string()),
        ];
        set_defaults(config, defaults);
    }
}

/// Sets each key the operator did not set in `[kafka] properties` (applied first).
fn set_defaults(
    config: &mut ClientConfig,
    defaults: impl IntoIterator<Item = (&'static str, String)>,
) {
    for (key, value) in defaults {
        if config.get(key).is_none() {
            config.set(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn operator_properties_win_over_tuning_but_not_over_guarantees() {
        let kafka = KafkaConfig {
            brokers: "b:9092".into(),
            properties: [("fetch.wait.max.ms".to_string(), "250".to_string())].into(),
            secret_properties: BTreeMap::new(),
        };
        let mut consumer = kafka.client_config("c");
        ConsumerTuning::default().apply(&mut consumer, "g");
        assert_eq!(consumer.get("fetch.wait.max.ms"), Some("250"));
        assert_eq!(consumer.get("fetch.queue.backoff.ms"), Some("20"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));

        let mut producer = kafka.client_config("p");
        ProducerTuning::default().apply(&mut producer);
        assert_eq!(producer.get("acks"), Some("all"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));

        assert_eq!(consumer.get("group.instance.id"), None);
        let named = ConsumerTuning {
            group_instance_id: Some("indexer-0".into()),
            ..ConsumerTuning::default()
        };
        named.validate("consumer.tuning").unwrap();
        let mut static_member = kafka.client_config("c");
        named.apply(&mut static_member, "g");
        assert_eq!(static_member.get("group.instance.id"), Some("indexer-0"));
        let blank = ConsumerTuning {
            group_instance_id: Some(" ".into()),
            ..ConsumerTuning::default()
        };
        assert!(
            blank
                .validate("consumer.tuning")
                .unwrap_err()
                .to_string()
                .contains("consumer.tuning.group_instance_id")
        );

        let forbidden = KafkaConfig {
            properties: [("acks".to_string(), "1".to_string())].into(),
            ..kafka
        };
        assert!(
            forbidden
                .validate("kafka")
                .unwrap_err()
                .to_string()
                .contains("kafka.properties.acks")
        );
    }
}
