//! Kafka for the benchmark: each run's topics under one random prefix, the topics created with
//! 6 partitions, events produced as the gateway publishes them (integrity-tagged, with
//! provenance) or as a direct producer does (untagged), with the send time in microseconds,
//! and a topic read back from its start (the peers').

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Result, bail};
use audit_core::integrity::{self, IntegrityKey};
use loadgen::{generated_event, now_rfc3339};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde_json::json;

/// The topics of one run.
pub(crate) struct Topics {
    pub(crate) prefix: String,
}

impl Topics {
    pub(crate) fn events(&self, run: &str) -> String {
        format!("{}.{run}.events", self.prefix)
    }
    pub(crate) fn settings(&self) -> String {
        format!("{}.settings", self.prefix)
    }
    pub(crate) fn dead_letter(&self) -> String {
        format!("{}.dlq", self.prefix)
    }
    pub(crate) fn retry(&self) -> String {
        format!("{}.retry", self.prefix)
    }
}

/// Partitions of every events topic of the benchmark.
const PARTITIONS: i32 = 6;

/// An events topic: 6 partitions, broker timestamps, kept a day.
pub(crate) async fn create_topic(brokers: &str, name: &str) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topic = NewTopic::new(name, PARTITIONS, TopicReplication::Fixed(1))
        .set("message.timestamp.type", "LogAppendTime")
        .set("retention.ms", "86400000");
    let results = admin
        .create_topics(
            [&topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
        )
        .await?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => bail!("creating {topic}: {code}"),
        }
    }
    Ok(())
}

/// An idempotent producer tuned for throughput (lz4, linger 5 ms, large batches).
pub(crate) fn producer(brokers: &str) -> Result<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .set("batch.size", "1000000")
        .set("queue.buffering.max.messages", "200000")
        .create()?)
}

/// A consumer of every partition of `topic` from its start, in no group (it commits nothing):
/// reads back what a run pre-filled.
pub(crate) fn reader(brokers: &str, topic: &str) -> Result<BaseConsumer> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "bench-forwarder-reader")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition_offset(topic, partition, Offset::Beginning)?;
    }
    consumer.assign(&partitions)?;
    Ok(consumer)
}

/// The headers the gateway puts on what it publishes: with its integrity tag when `key` is
/// given (events it validated), without for a direct producer's events.
fn headers(payload: &str, key: Option<&IntegrityKey>) -> OwnedHeaders {
    let tag = key.map(|key| key.tag(integrity::Signer::Gateway, payload.as_bytes()));
    audit_kafka::event_headers("loadgen", tag.as_deref())
}

/// Sends one event (to `partition`, or the key's), waiting while the producer queue is full;
/// returns its id.
pub(crate) fn send(
    producer: &FutureProducer,
    topic: &str,
    (org, partition): (&str, Option<i32>),
    n: u64,
    key: Option<&IntegrityKey>,
) -> Result<String> {
    let mut event = generated_event(org, n, &now_rfc3339());
    event["received_at"] = json!(now_rfc3339());
    if key.is_some() {
        // What the gateway writes: its tag proves this provenance.
        event["provenance"] = json!("gateway");
    }
    let id = event["id"].as_str().unwrap_or_default().to_string();
    let payload = event.to_string();
    loop {
        let mut record = FutureRecord::to(topic)
            .key(org)
            .payload(&payload)
            .headers(headers(&payload, key));
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        match producer.send_result(record) {
            Ok(_) => return Ok(id),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                producer.poll(Duration::from_millis(10));
            }
            Err((error, _)) => return Err(error.into()),
        }
    }
}

/// Now, in microseconds since the Unix epoch (the latency run's send times).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}
