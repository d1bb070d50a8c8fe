//! `forwarder replay`: re-sends dead-lettered events of one organization and destination whose
//! `occurred_at` lies in a time range.
//!
//! The command reads the dead-letter topic (from shortly before `since`, by broker timestamp,
//! up to its end when the command started), keeps the forwarder's dead letters
//! (`dlq-stage = forwarder`) of that destination and organization, skips duplicates (an event
//! dead-lettered twice is re-sent once), and parks them on the retry topic with reason
//! `replay`, due at once. The running forwarders deliver them through the destination's retry
//! lane, with the usual retries; an event refused again is dead-lettered again. The age limit
//! (`max_event_age_secs`) counts from the replay, not from the event's first arrival.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use audit_kafka::header_str;
use bytes::Bytes;
use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::ForwarderConfig;
use crate::delivery::{ParkReason, ParkedMeta};
use crate::error::{Error, Result};

/// Which dead letters to re-send.
#[derive(Debug, Clone)]
pub struct ReplayRequest {
    pub org_id: String,
    pub destination_id: String,
    /// Events that occurred at or after this time…
    pub since: OffsetDateTime,
    /// …and before this time.
    pub until: OffsetDateTime,
    /// Only count, do not re-send.
    pub dry_run: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters read.
    pub scanned: u64,
    /// Dead letters of the destination, organization and time range.
    pub matched: u64,
    /// Matched dead letters of an event already selected (not re-sent twice).
    pub duplicates: u64,
    /// Events parked on the retry topic for delivery.
    pub requeued: u64,
}

struct Selected {
    key: String,
    payload: Bytes,
    meta: ParkedMeta,
}

/// Runs a replay against the configured Kafka.
pub async fn replay(config: &ForwarderConfig, request: &ReplayRequest) -> Result<ReplayReport> {
    if request.until <= request.since {
        return Err(Error::Invalid("--until must be after --since".into()));
    }
    let scan_config = config.clone();
    let scan_request = request.clone();
    let (mut report, selected) =
        tokio::task::spawn_blocking(move || scan(&scan_config, &scan_request))
            .await
            .map_err(|error| Error::Invalid(format!("replay scan failed: {error}")))??;
    if request.dry_run || selected.is_empty() {
        return Ok(report);
    }
    let mut producer_config = config.kafka.client_config("forwarder-replay");
    config.producer.apply(&mut producer_config);
    let producer: FutureProducer = producer_config.create()?;
    for chunk in selected.chunks(1_000) {
        let sends = chunk.iter().map(|selected| {
            let record = FutureRecord::to(&config.topics.forwarder_retry)
                .key(selected.key.as_str())
                .payload(selected.payload.as_ref())
                .headers(selected.meta.headers());
            producer.send(record, Duration::from_secs(30))
        });
        for outcome in join_all(sends).await {
            outcome.map_err(|(error, _)| Error::Kafka(error))?;
            report.requeued += 1;
        }
    }
    Ok(report)
}

fn scan(
    config: &ForwarderConfig,
    request: &ReplayRequest,
) -> Result<(ReplayReport, Vec<Selected>)> {
    let topic = &config.topics.dead_letter;
    let mut client_config = config.kafka.client_config("forwarder-replay-reader");
    client_config
        .set("group.id", "forwarder-replay-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    let consumer: BaseConsumer = client_config.create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.id()).collect())
        .unwrap_or_default();
    // Dead letters are written after their event occurred: start an hour before `since`.
    let start_ms = audit_core::event::unix_millis(request.since) - 3_600_000;
    let mut by_time = TopicPartitionList::new();
    for partition in &partitions {
        by_time.add_partition_offset(topic, *partition, Offset::Offset(start_ms))?;
    }
    let starts = consumer.offsets_for_times(by_time, Duration::from_secs(10))?;
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for element in starts.elements() {
        let partition = element.partition();
        let (low, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(10))?;
        let start = match element.offset() {
            Offset::Offset(offset) => offset.max(low),
            _ => high,
        };
        if start < high {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
        }
    }
    drop(starts);
    let mut report = ReplayReport::default();
    let mut selected = Vec::new();
    if ends.is_empty() {
        return Ok((report, selected));
    }
    consumer.assign(&assignment)?;
    drop(assignment);
    let since_ms = audit_core::event::unix_millis(request.since);
    let until_ms = audit_core::event::unix_millis(request.until);
    let now_ms = crate::clock::now_ms();
    let mut seen = HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(600);
    while !ends.is_empty() && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = message?;
        let partition = message.partition();
        if ends
            .get(&partition)
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&partition);
        }
        report.scanned += 1;
        let headers = message.headers();
        if header_str(headers, "dlq-stage") != Some("forwarder")
            || header_str(headers, "dlq-destination-id") != Some(request.destination_id.as_str())
        {
            continue;
        }
        let Some(payload) = message.payload() else {
            continue;
        };
        let Ok(event) = crate::event::decode_head(payload, now_ms) else {
            continue;
        };
        if event.org_id != request.org_id
            || event.occurred_at_ms < since_ms
            || event.occurred_at_ms >= until_ms
        {
            continue;
        }
        report.matched += 1;
        if !seen.insert(event.id.clone()) {
            report.duplicates += 1;
            continue;
        }
        let meta = ParkedMeta {
            org_id: request.org_id.clone(),
            destination_id: request.destination_id.clone(),
            attempt: 0,
            next_attempt_ms: now_ms,
            reason: ParkReason::Replay,
            last_status: header_str(headers, "dlq-last-status").map(str::to_string),
            last_excerpt: header_str(headers, "dlq-response-excerpt").map(str::to_string),
            received_ms: now_ms,
            first_failed_ms: None,
            source: header_str(headers, "dlq-source")
                .map(str::to_string)
                .unwrap_or_else(|| format!("{topic}/{partition}/{}", message.offset())),
        };
        selected.push(Selected {
            key: meta.key(),
            payload: Bytes::copy_from_slice(payload),
            meta,
        });
    }
    Ok((report, selected))
}
