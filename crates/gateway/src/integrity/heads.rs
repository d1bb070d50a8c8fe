//! The newest digest of every organization as published on the digests topic — the anchor
//! outside ClickHouse that verification compares the stored chain with (a rewritten store
//! cannot rewrite what was already published).
//!
//! Every organization with a chain gets a digest every window, so reading the topic from a
//! few windows back finds every head; the follower then keeps up with new digests. Digests are
//! kept as published; their signatures are checked when used.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use audit_integrity::SignedDigest;
use audit_kafka::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// The published heads, by organization.
#[derive(Clone, Default)]
pub struct PublishedHeads {
    heads: Arc<RwLock<HashMap<String, SignedDigest>>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for PublishedHeads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishedHeads")
    }
}

impl PublishedHeads {
    /// Follows `topic` from `lookback` ago, on a thread of its own.
    pub fn start(kafka: &KafkaConfig, topic: &str, lookback: Duration) -> anyhow::Result<Self> {
        let mut config = kafka.client_config("gateway-digests");
        config
            .set("group.id", "gateway-digests-reader")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        let consumer: BaseConsumer = config.create()?;
        let heads = Self::default();
        let follower = heads.clone();
        let topic = topic.to_string();
        std::thread::Builder::new()
            .name("digest-heads".into())
            .spawn(move || follower.follow(&consumer, &topic, lookback))?;
        Ok(heads)
    }

    /// The newest published digest of an organization, if one was seen.
    pub fn head(&self, org_id: &str) -> Option<SignedDigest> {
        self.heads
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(org_id)
            .cloned()
    }

    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    fn follow(&self, consumer: &BaseConsumer, topic: &str, lookback: Duration) {
        if !self.assign(consumer, topic, lookback) {
            return;
        }
        while !self.stop.load(Ordering::Relaxed) {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
                continue;
            };
            let Some(Ok(digest)) = message
                .payload()
                .map(serde_json::from_slice::<SignedDigest>)
            else {
                metrics::counter!("gateway_digests_unreadable_total").increment(1);
                continue;
            };
            let mut heads = self
                .heads
                .write()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let newer = heads
                .get(&digest.org_id)
                .is_none_or(|known| digest.seq >= known.seq);
            if newer {
                heads.insert(digest.org_id.clone(), digest);
            }
        }
    }

    /// Assigns every partition of the topic from `lookback` ago (retrying until it exists).
    fn assign(&self, consumer: &BaseConsumer, topic: &str, lookback: Duration) -> bool {
        let mut delay = Duration::from_millis(200);
        while !self.stop.load(Ordering::Relaxed) {
            match Self::start_offsets(consumer, topic, lookback) {
                Ok(list) if list.count() > 0 => {
                    if consumer.assign(&list).is_ok() {
                        return true;
                    }
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(%error, topic, "digests topic not readable yet"),
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        false
    }

    fn start_offsets(
        consumer: &BaseConsumer,
        topic: &str,
        lookback: Duration,
    ) -> anyhow::Result<TopicPartitionList> {
        let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        let since_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000
            - i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
        let mut wanted = TopicPartitionList::new();
        for partition in &partitions {
            wanted.add_partition_offset(topic, *partition, Offset::Offset(since_ms))?;
        }
        let found = consumer.offsets_for_times(wanted, Duration::from_secs(10))?;
        let mut list = TopicPartitionList::new();
        for element in found.elements() {
            // No message since then: start at the end (only newer digests matter).
            let offset = match element.offset() {
                Offset::Offset(offset) => Offset::Offset(offset),
                _ => Offset::End,
            };
            list.add_partition_offset(topic, element.partition(), offset)?;
        }
        Ok(list)
    }
}
