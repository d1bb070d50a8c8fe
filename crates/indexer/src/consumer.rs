//! The consuming half of the indexer: Kafka → validated rows → batches.
//!
//! # Protocol
//!
//! One dedicated thread owns the group consumer and calls `poll`; every rebalance callback
//! therefore runs on this thread, between two messages. It decodes each message with the
//! shared validator (invalid ones become dead letters carried in the batch) and cuts batches
//! by rows, bytes and age. Full batches go to the writer task through a bounded queue.
//!
//! * **Offsets** are never stored or committed automatically. The writer commits a batch's
//!   offsets only after its dead letters were acknowledged by Kafka and its rows by ClickHouse.
//! * **Backpressure**: when the queue is full (ClickHouse slow or down), the thread pauses every
//!   assigned partition and keeps polling, which serves rebalances and keeps group membership
//!   without fetching; it resumes when the queue has room. Memory stays bounded by about
//!   `queue_depth + 2` full batches (one being written, `queue_depth` queued, one cut and
//!   waiting) plus librdkafka's prefetch (`queued_max_kbytes`).
//! * **Rebalance (revoke)**: rows of the revoked partitions are dropped from the batch being
//!   built (they were never committed, so the next owner re-reads them); the thread then waits
//!   up to `drain_timeout` for batches already queued to be written, and commits the
//!   acknowledged offsets of the revoked partitions synchronously before letting them go.
//!   If the drain times out (ClickHouse down), those batches are abandoned to the writer: they
//!   may still be inserted later, but their offsets are not committed (we no longer own the
//!   partitions) and the table's deduplication removes the resulting copies from results.
//! * **Shutdown**: stop polling, hand the partial batch to the writer, wait for the writer to
//!   drain, commit synchronously, close the consumer.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_core::validate::Arrival;
use audit_kafka::StatsContext;
use audit_settings::{PlansConfig, SettingsStore};
use audit_store::PendingEvent;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;

/// A message that failed validation, to be dead-lettered before its offset is committed.
#[derive(Debug, Clone)]
pub struct DeadMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// A unit of work for the writer: rows, dead letters, and the offsets they cover.
#[derive(Debug, Default)]
pub struct Batch {
    /// Events to insert (canonical JSON; rows are built while the insert streams).
    pub rows: Vec<PendingEvent>,
    pub dead: Vec<DeadMessage>,
    /// Per partition: first and last offset contained.
    pub ranges: BTreeMap<i32, (i64, i64)>,
    pub bytes: usize,
    pub started: Option<Instant>,
    /// Partition and offset of each row in `rows` (parallel vector): to drop revoked
    /// partitions' rows, and to dead-letter a row that cannot be inserted.
    pub row_positions: Vec<(i32, i64)>,
    /// Creation sequence number (for the retention reconciler's drain).
    pub sequence: u64,
}

impl Batch {
    fn track(&mut self, partition: i32, offset: i64) {
        self.ranges
            .entry(partition)
            .and_modify(|range| range.1 = offset)
            .or_insert((offset, offset));
        self.started.get_or_insert_with(Instant::now);
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// A token identifying exactly this batch's content: the same partitions and offset
    /// ranges always give the same token, so re-inserting it is deduplicated by ClickHouse.
    pub fn dedup_token(&self) -> String {
        let mut hasher = Sha256::new();
        for (partition, (first, last)) in &self.ranges {
            hasher.update(format!("{partition}:{first}-{last};").as_bytes());
        }
        hex::encode(&hasher.finalize()[..16])
    }

    /// Removes everything that came from `revoked` partitions; returns how many rows went.
    fn drop_partitions(&mut self, revoked: &[i32]) -> usize {
        let before = self.rows.len();
        let mut positions = self.row_positions.iter();
        self.rows.retain(|_| {
            positions
                .next()
                .is_some_and(|(partition, _)| !revoked.contains(partition))
        });
        self.row_positions
            .retain(|(partition, _)| !revoked.contains(partition));
        self.dead.retain(|dead| !revoked.contains(&dead.partition));
        self.ranges
            .retain(|partition, _| !revoked.contains(partition));
        before - self.rows.len()
    }
}

/// State shared by the consumer thread, its rebalance callbacks and the writer task.
pub struct Shared {
    pub topic: String,
    /// The batch being built (only the consumer thread touches it; the lock is uncontended).
    building: Mutex<Building>,
    /// Batches handed to the writer and not yet finished.
    in_flight: Mutex<usize>,
    drained: Condvar,
    /// Partitions currently owned.
    owned: Mutex<HashSet<i32>>,
    /// Next offset to commit per owned partition (last written + 1).
    acked: Mutex<BTreeMap<i32, i64>>,
    pub batches_created: AtomicU64,
    pub batches_written: AtomicU64,
    drain_timeout: Duration,
}

#[derive(Default)]
struct Building {
    /// The batch receiving messages.
    current: Batch,
    /// A cut batch waiting for room in the writer queue (consumption is paused meanwhile).
    pending: Option<Batch>,
}

impl Shared {
    pub fn new(topic: &str, drain_timeout: Duration) -> Arc<Self> {
        Arc::new(Self {
            topic: topic.to_string(),
            building: Mutex::new(Building::default()),
            in_flight: Mutex::new(0),
            drained: Condvar::new(),
            owned: Mutex::new(HashSet::new()),
            acked: Mutex::new(BTreeMap::new()),
            batches_created: AtomicU64::new(0),
            batches_written: AtomicU64::new(0),
            drain_timeout,
        })
    }

    /// Called by the writer when a batch is fully acknowledged downstream.
    /// Returns the offsets to commit (only for partitions still owned).
    pub fn batch_written(&self, batch: &Batch) -> TopicPartitionList {
        let owned = lock(&self.owned);
        let mut acked = lock(&self.acked);
        let mut list = TopicPartitionList::new();
        for (partition, (_, last)) in &batch.ranges {
            if !owned.contains(partition) {
                continue;
            }
            let next = last + 1;
            let entry = acked.entry(*partition).or_insert(next);
            *entry = (*entry).max(next);
            let _ = list.add_partition_offset(&self.topic, *partition, Offset::Offset(*entry));
        }
        drop(acked);
        drop(owned);
        self.batches_written.fetch_add(1, Ordering::SeqCst);
        let mut in_flight = lock(&self.in_flight);
        *in_flight = in_flight.saturating_sub(1);
        self.drained.notify_all();
        list
    }

    /// Waits until no batch is in flight, or `timeout` passes. True when drained.
    fn wait_drained(&self, timeout: Duration) -> bool {
        let guard = lock(&self.in_flight);
        let (guard, result) = self
            .drained
            .wait_timeout_while(guard, timeout, |in_flight| *in_flight > 0)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(guard);
        !result.timed_out()
    }

    fn acked_offsets(&self, partitions: &[i32]) -> TopicPartitionList {
        let acked = lock(&self.acked);
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            if let Some(offset) = acked.get(partition) {
                let _ = list.add_partition_offset(&self.topic, *partition, Offset::Offset(*offset));
            }
        }
        list
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The consumer's context: lag metrics from statistics, and the rebalance protocol above.
pub struct IndexerContext {
    shared: Arc<Shared>,
    stats: StatsContext,
}

impl IndexerContext {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self {
            shared,
            stats: StatsContext::new("indexer"),
        }
    }
}

impl ClientContext for IndexerContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.record(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        audit_kafka::log_client_error("indexer", &error, reason);
    }
}

impl ConsumerContext for IndexerContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
        if revoked.is_empty() {
            return;
        }
        metrics::counter!("indexer_rebalances_total", "kind" => "revoke").increment(1);
        {
            let mut building = lock(&self.shared.building);
            let mut dropped = building.current.drop_partitions(&revoked);
            if let Some(pending) = building.pending.as_mut() {
                dropped += pending.drop_partitions(&revoked);
                if pending.is_empty() {
                    building.pending = None;
                }
            }
            if dropped > 0 {
                tracing::info!(
                    dropped,
                    "dropped unsent rows of revoked partitions (the next owner re-reads them)"
                );
            }
        }
        let drained = self.shared.wait_drained(self.shared.drain_timeout);
        let offsets = self.shared.acked_offsets(&revoked);
        if offsets.count() > 0
            && let Err(error) = consumer.commit(&offsets, CommitMode::Sync)
        {
            tracing::warn!(%error, "commit on revoke failed; the next owner re-reads (deduplicated)");
        }
        drop(offsets);
        {
            let mut owned = lock(&self.shared.owned);
            let mut acked = lock(&self.shared.acked);
            for partition in &revoked {
                owned.remove(partition);
                acked.remove(partition);
            }
        }
        tracing::info!(?revoked, drained, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            lock(&self.shared.owned).extend(assigned.iter().copied());
            metrics::counter!("indexer_rebalances_total", "kind" => "assign").increment(1);
            tracing::info!(?assigned, "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            metrics::counter!("indexer_commit_errors_total").increment(1);
            tracing::warn!(%error, "offset commit failed (will be retried with the next batch)");
        }
    }
}

/// Everything the consumer thread needs.
pub struct ConsumerLoop {
    pub consumer: Arc<BaseConsumer<IndexerContext>>,
    pub shared: Arc<Shared>,
    pub validator: Arc<EventValidator>,
    /// Verifies the gateway's integrity tags (fast path); `None`: validate everything.
    pub integrity: Option<IntegrityKey>,
    pub settings: SettingsStore,
    pub plans: PlansConfig,
    pub batch: BatchConfig,
    pub queue: mpsc::Sender<Batch>,
    pub shutdown: CancellationToken,
}

impl ConsumerLoop {
    /// Runs until shutdown; then hands over the last batch and returns.
    pub fn run(self) {
        let max_wait = Duration::from_millis(self.batch.max_wait_ms);
        let mut paused = false;
        // Follow settings changes message by message (a change check is one atomic load).
        let mut changes = self.settings.subscribe();
        let mut settings = changes.borrow_and_update().clone();
        while !self.shutdown.is_cancelled() {
            let waiting = match self.send_pending() {
                Ok(waiting) => waiting,
                Err(()) => {
                    tracing::error!("writer stopped; indexer consumer exits");
                    return;
                }
            };
            // While a cut batch waits for the writer, keep polling paused so rebalances are
            // served and the group keeps us, without fetching more.
            if waiting != paused {
                self.set_paused(waiting);
                paused = waiting;
            }
            if changes.has_changed().unwrap_or(false) {
                settings = changes.borrow_and_update().clone();
            }
            match self.consumer.poll(Duration::from_millis(50)) {
                None => {}
                Some(Err(error)) => {
                    metrics::counter!("indexer_poll_errors_total").increment(1);
                    tracing::warn!(%error, "poll error");
                }
                Some(Ok(message)) => self.accept(&message, &settings),
            }
            if !waiting {
                self.cut_batch_if_due(max_wait);
            }
        }
        // Shutdown: hand over what we have, wait for the writer, commit synchronously.
        let (pending, current) = {
            let mut building = lock(&self.shared.building);
            (
                building.pending.take(),
                std::mem::take(&mut building.current),
            )
        };
        let current = (!current.is_empty()).then(|| self.sealed(current));
        for batch in pending.into_iter().chain(current) {
            self.mark_in_flight(1);
            if self.queue.blocking_send(batch).is_err() {
                self.mark_in_flight(-1);
                break;
            }
        }
        let drained = self.shared.wait_drained(self.shared.drain_timeout);
        let owned: Vec<i32> = lock(&self.shared.owned).iter().copied().collect();
        let offsets = self.shared.acked_offsets(&owned);
        if offsets.count() > 0
            && let Err(error) = self.consumer.commit(&offsets, CommitMode::Sync)
        {
            tracing::warn!(%error, "final commit failed; uncommitted batches will be re-read (deduplicated)");
        }
        drop(offsets);
        tracing::info!(drained, "indexer consumer stopped");
    }

    /// Tries to hand the pending batch to the writer. Ok(true) while one is still waiting.
    fn send_pending(&self) -> Result<bool, ()> {
        let mut building = lock(&self.shared.building);
        let Some(batch) = building.pending.take() else {
            return Ok(false);
        };
        // Count it in flight before the writer can possibly finish it.
        self.mark_in_flight(1);
        match self.queue.try_send(batch) {
            Ok(()) => Ok(false),
            Err(mpsc::error::TrySendError::Full(batch)) => {
                self.mark_in_flight(-1);
                building.pending = Some(batch);
                Ok(true)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.mark_in_flight(-1);
                Err(())
            }
        }
    }

    fn set_paused(&self, pause: bool) {
        let Ok(assignment) = self.consumer.assignment() else {
            return;
        };
        let result = if pause {
            self.consumer.pause(&assignment)
        } else {
            self.consumer.resume(&assignment)
        };
        drop(assignment);
        metrics::gauge!("indexer_paused").set(if pause { 1.0 } else { 0.0 });
        match result {
            Ok(()) if pause => tracing::warn!("writer queue full: consumption paused"),
            Ok(()) => tracing::info!("consumption resumed"),
            Err(error) => tracing::warn!(%error, pause, "pause/resume failed"),
        }
    }

    fn accept(&self, message: &BorrowedMessage<'_>, settings: &audit_settings::SettingsView) {
        let partition = message.partition();
        let offset = message.offset();
        let mut building = lock(&self.shared.building);
        let batch = &mut building.current;
        batch.track(partition, offset);
        let decoder = Decoder {
            validator: &self.validator,
            integrity: self.integrity.as_ref(),
            topic: &self.shared.topic,
            plans: &self.plans,
        };
        match decode(message, &decoder, settings) {
            Ok(row) => {
                batch.bytes += row.approx_bytes();
                batch.rows.push(row);
                batch.row_positions.push((partition, offset));
            }
            Err(reason) => {
                metrics::counter!("indexer_invalid_messages_total").increment(1);
                let payload = message.payload().unwrap_or_default();
                batch.bytes += payload.len();
                batch.dead.push(DeadMessage {
                    partition,
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    reason,
                });
            }
        }
    }

    /// Moves the current batch to `pending` when it is full or old enough.
    fn cut_batch_if_due(&self, max_wait: Duration) {
        let mut building = lock(&self.shared.building);
        let batch = &building.current;
        let due = building.pending.is_none()
            && !batch.is_empty()
            && (batch.rows.len() + batch.dead.len() >= self.batch.max_rows
                || batch.bytes >= self.batch.max_bytes
                || batch
                    .started
                    .is_some_and(|started| started.elapsed() >= max_wait));
        if due {
            let batch = std::mem::take(&mut building.current);
            building.pending = Some(self.sealed(batch));
        }
    }

    /// Numbers a batch and records its size.
    fn sealed(&self, mut batch: Batch) -> Batch {
        batch.sequence = self.shared.batches_created.fetch_add(1, Ordering::SeqCst) + 1;
        metrics::histogram!("indexer_batch_rows").record(batch.rows.len() as f64);
        metrics::histogram!("indexer_batch_bytes").record(batch.bytes as f64);
        batch
    }

    fn mark_in_flight(&self, delta: isize) {
        let mut in_flight = lock(&self.shared.in_flight);
        *in_flight = in_flight.saturating_add_signed(delta);
        if *in_flight == 0 {
            self.shared.drained.notify_all();
        }
    }
}

/// Validates one message and builds its row, or says why it is dead.
fn decode(
    message: &BorrowedMessage<'_>,
    decoder: &Decoder<'_>,
    settings: &audit_settings::SettingsView,
) -> Result<PendingEvent, String> {
    let Some(payload) = message.payload() else {
        return Err("empty message (no value)".into());
    };
    // A timestamp outside `time`'s range counts as absent.
    let broker_ms = message
        .timestamp()
        .to_millis()
        .filter(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000).is_ok())
        .unwrap_or_else(|| audit_core::event::unix_millis(OffsetDateTime::now_utc()));
    let tag = audit_kafka::header_str(message.headers(), audit_core::integrity::HEADER);
    let tagged = match (decoder.integrity, tag) {
        (Some(key), Some(tag)) => key.verify(payload, tag.as_bytes()),
        _ => false,
    };
    let (org_id, json) = if tagged {
        // Validated by the gateway, which wrote this exact canonical JSON: only its
        // organization is needed now (the row is built while the insert streams).
        metrics::counter!("indexer_messages_total", "path" => "tagged").increment(1);
        let head: EventHead<'_> = serde_json::from_slice(payload)
            .map_err(|error| format!("tagged message is not a canonical event: {error}"))?;
        (head.org_id.into_owned(), payload.to_vec())
    } else {
        metrics::counter!("indexer_messages_total", "path" => "validated").increment(1);
        let arrival = Arrival::kafka_message(
            decoder.topic,
            message.partition(),
            message.offset(),
            broker_ms,
        );
        let valid = decoder
            .validator
            .validate_bytes(payload, arrival)
            .map_err(|errors| audit_core::validate::describe(&errors))?;
        (valid.event.org_id, valid.json)
    };
    if let Some(key) = message.key()
        && key != org_id.as_bytes()
    {
        return Err(format!(
            "message key `{}` differs from org_id `{org_id}`: the key must be the organization (per-organization ordering)",
            String::from_utf8_lossy(&key[..key.len().min(128)]),
        ));
    }
    let retention_days = decoder
        .plans
        .retention_days(settings.org(&org_id).map(|org| org.as_ref()));
    Ok(PendingEvent {
        org_id,
        json,
        retention_days,
        broker_ms,
    })
}

/// The part of a canonical event read before insertion.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(borrow)]
    org_id: std::borrow::Cow<'a, str>,
}

/// What decoding needs besides the message.
pub struct Decoder<'a> {
    pub validator: &'a EventValidator,
    pub integrity: Option<&'a IntegrityKey>,
    pub topic: &'a str,
    pub plans: &'a PlansConfig,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn dedup_tokens_depend_only_on_ranges() {
        let mut first = Batch::default();
        first.track(0, 10);
        first.track(0, 11);
        first.track(3, 7);
        let mut same = Batch::default();
        same.track(3, 7);
        same.track(0, 10);
        same.track(0, 11);
        assert_eq!(first.dedup_token(), same.dedup_token());
        let mut other = Batch::default();
        other.track(0, 10);
        assert_ne!(first.dedup_token(), other.dedup_token());
    }

    #[test]
    fn revoked_partitions_leave_the_batch() {
        let mut batch = Batch::default();
        for (partition, offset) in [(0, 1), (1, 1), (0, 2)] {
            batch.track(partition, offset);
            batch
                .rows
                .push(sample_row(&format!("org_{partition}_{offset}")));
            batch.row_positions.push((partition, offset));
        }
        batch.dead.push(DeadMessage {
            partition: 1,
            offset: 2,
            key: None,
            payload: vec![],
            reason: "x".into(),
        });
        assert_eq!(batch.drop_partitions(&[1]), 1);
        let orgs: Vec<&str> = batch.rows.iter().map(|r| r.org_id.as_str()).collect();
        assert_eq!(orgs, ["org_0_1", "org_0_2"]);
        assert!(batch.dead.is_empty());
        assert_eq!(batch.ranges.keys().copied().collect::<Vec<_>>(), [0]);
    }

    fn sample_row(org: &str) -> PendingEvent {
        PendingEvent {
            org_id: org.to_string(),
            json: b"{}".to_vec(),
            retention_days: 90,
            broker_ms: 0,
        }
    }

    #[test]
    fn written_batches_commit_next_offsets_of_owned_partitions_only() {
        let shared = Shared::new("t", Duration::from_millis(10));
        lock(&shared.owned).insert(0);
        *lock(&shared.in_flight) = 1;
        let mut batch = Batch::default();
        batch.track(0, 5);
        batch.track(0, 9);
        batch.track(1, 3);
        let list = shared.batch_written(&batch);
        let elements = list.elements();
        assert_eq!(elements.len(), 1);
        assert_eq!(elements[0].partition(), 0);
        assert_eq!(elements[0].offset(), Offset::Offset(10));
        assert!(shared.wait_drained(Duration::from_millis(1)));
    }
}
