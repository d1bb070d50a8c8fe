//! Talking to the real broker directly, as a product team or an operator would.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// An idempotent producer with the Java-compatible partitioner, like the gateway's.
pub fn producer(brokers: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "5")
        .create()
        .unwrap()
}

/// Produces one message and waits for the acknowledgement.
pub async fn produce(producer: &FutureProducer, topic: &str, key: Option<&str>, payload: &[u8]) {
    let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).payload(payload);
    if let Some(key) = key {
        record = record.key(key);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .unwrap();
}

/// Produces one message with headers (`None` payload: a tombstone) and waits for the
/// acknowledgement; returns its offset.
pub async fn produce_with_headers(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: Option<&[u8]>,
    headers: &[(&str, &[u8])],
) -> i64 {
    let mut owned = rdkafka::message::OwnedHeaders::new();
    for (name, value) in headers {
        owned = owned.insert(rdkafka::message::Header {
            key: name,
            value: Some(*value),
        });
    }
    let mut record: FutureRecord<'_, str, [u8]> = FutureRecord::to(topic).key(key).headers(owned);
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .unwrap()
        .offset
}

/// Publishes one single-line message with `kcat` — an independent Kafka client, as a product
/// team or an intruder would — with `name=value` headers.
pub fn kcat(brokers: &str, topic: &str, key: &str, headers: &[&str], payload: &str) {
    use std::io::Write;
    assert!(!payload.contains('\n'), "kcat sends one message per line");
    let mut command = std::process::Command::new("kcat");
    command.args(["-P", "-b", brokers, "-t", topic, "-k", key]);
    for header in headers {
        command.args(["-H", header]);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat is installed (deploy/local/prereqs.sh)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(payload.as_bytes()).unwrap();
    drop(stdin);
    assert!(child.wait().unwrap().success(), "kcat failed");
}

/// The last message of each key on `topic` (what compaction keeps).
pub fn last_by_key(brokers: &str, topic: &str) -> HashMap<String, OwnedMessage> {
    let mut last = HashMap::new();
    for message in read_all(brokers, topic) {
        if let Some(key) = message.key().and_then(|k| std::str::from_utf8(k).ok()) {
            last.insert(key.to_string(), message.clone());
        }
    }
    last
}

/// Every message currently on `topic` (all partitions, from the beginning).
pub fn read_all(brokers: &str, topic: &str) -> Vec<OwnedMessage> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}", rand::random::<u32>()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for partition in &partitions {
        let (low, high) = watermarks(&consumer, topic, *partition);
        if high > low {
            ends.insert(*partition, high);
            list.add_partition_offset(topic, *partition, Offset::Offset(low))
                .unwrap();
        }
    }
    if ends.is_empty() {
        return Vec::new();
    }
    consumer.assign(&list).unwrap();
    drop(list);
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() && std::time::Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let partition = message.partition();
            let offset = message.offset();
            messages.push(message.detach());
            if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
                ends.remove(&partition);
            }
        }
    }
    messages
}

/// A header value of a message as text.
pub fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    let headers = message.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// The `id`s of the events on a topic.
pub fn event_ids(brokers: &str, topic: &str) -> Vec<String> {
    read_all(brokers, topic)
        .iter()
        .filter_map(|m| m.payload())
        .filter_map(|p| serde_json::from_slice::<serde_json::Value>(p).ok())
        .filter_map(|v| v.get("id").and_then(|id| id.as_str()).map(str::to_string))
        .collect()
}

/// The sum of the offsets `group` has committed on every partition of `topic` (0 for a
/// partition without a commit): it grows exactly when the group's members commit.
pub fn committed_total(brokers: &str, group: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let mut list = TopicPartitionList::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        list.add_partition(topic, partition.id());
    }
    let committed = consumer
        .committed_offsets(list, Duration::from_secs(10))
        .unwrap();
    let total = committed
        .elements()
        .iter()
        .map(|element| match element.offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        })
        .sum();
    // Lists alive at the consumer's drop can hang it (INFRA.md): drop them first.
    drop(committed);
    total
}

/// A partition's watermarks; retried while the cluster settles (right after a broker comes
/// back, its partitions briefly answer "not leader").
fn watermarks(consumer: &BaseConsumer, topic: &str, partition: i32) -> (i64, i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(10)) {
            Ok(marks) => return marks,
            Err(error) if std::time::Instant::now() < deadline => {
                eprintln!("watermarks of {topic}/{partition}: {error}; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => panic!("watermarks of {topic}/{partition}: {error}"),
        }
    }
}
