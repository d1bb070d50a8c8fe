//! The consuming half of the indexer: Kafka → validated rows → streamed inserts.
//!
//! # Protocol
//!
//! One dedicated thread owns the group consumer and calls `poll`; every rebalance callback
//! therefore runs on this thread, between two messages. It decodes each message with the
//! shared validator (invalid ones become dead letters carried by the batch) and hands the rows
//! to the writer task in chunks while the batch grows; the writer streams them into one open
//! INSERT, so ClickHouse parses a batch as it is read and writes it as one part. A batch ends
//! at `max_rows` or `max_bytes`, or when its first row is `max_wait` old — `max_wait_behind`
//! while the indexer reads messages already older than `max_wait` (a backlog drains in big
//! parts, which ClickHouse writes and merges for a fraction of the cost of small ones).
//!
//! * **Kafka is the buffer.** Rows are not kept once handed over, so memory is the chunk queue
//!   (`queue_chunks`) plus librdkafka's prefetch, whatever the batch size. When an insert
//!   fails, the writer asks for a *rewind*: this thread drops what it had not handed over,
//!   seeks every owned partition back to its first offset not yet written, waits out the
//!   backoff and reads again. Everything handed over before the rewind carries an older
//!   *epoch* and is discarded by the writer; an aborted INSERT stores nothing.
//! * **Offsets** are never stored or committed automatically. The writer commits a batch's
//!   offsets only after ClickHouse acknowledged its INSERT and Kafka its dead letters, batch
//!   after batch in order.
//! * **Backpressure**: while the queue is full the thread waits for room without polling; if
//!   it stays full for a second (ClickHouse slow) or during a backoff, it pauses every
//!   assigned partition and keeps polling, which serves rebalances and keeps group membership
//!   without fetching; it resumes when the queue has room. (Pausing at once would make
//!   librdkafka drop its prefetched messages and fetch them again on every resume.)
//! * **Rebalance (revoke)**: the open batch is ended and handed over; the thread waits up to
//!   `drain_timeout` for the writer to finish it and commits the written offsets of the
//!   revoked partitions synchronously before letting them go. If the drain times out
//!   (ClickHouse down), the batch's offsets are not committed: the next owner re-reads it, and
//!   the table's deduplication (ReplacingMergeTree, read with FINAL) removes any copy that was
//!   stored anyway.
//! * **Shutdown**: stop polling, end the open batch, wait for the writer to drain, commit
//!   synchronously, close the consumer.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_core::validate::{Arrival, BrokerTime};
use audit_kafka::StatsContext;
use audit_settings::{PlansConfig, SettingsStore};
use audit_store::PendingEvent;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;

/// Rows per chunk handed to the writer (and at most this many bytes).
const CHUNK_ROWS: usize = 1_024;
const CHUNK_BYTES: usize = 1024 * 1024;
/// How long the writer's queue may stay full before the partitions are paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// A message that failed validation, to be dead-lettered before its offset is committed.
#[derive(Debug, Clone)]
pub struct DeadMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// What the consumer thread hands the writer, in consumption order.
#[derive(Debug)]
pub enum Piece {
    /// Decoded rows of the open batch, with the partition and offset of each.
    Rows {
        epoch: u64,
        rows: Vec<PendingEvent>,
        positions: Vec<(i32, i64)>,
    },
    /// The open batch is complete: finish its insert, dead-letter, commit.
    End { epoch: u64, batch: Batch },
}

impl Piece {
    /// The rewind generation the piece belongs to; older ones are discarded.
    pub fn epoch(&self) -> u64 {
        match self {
            Self::Rows { epoch, .. } | Self::End { epoch, .. } => *epoch,
        }
    }
}

/// A batch's bookkeeping; its rows travel separately in [`Piece::Rows`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Rows handed over for this batch.
    pub rows: usize,
    pub dead: Vec<DeadMessage>,
    /// Per partition: first and last offset contained.
    pub ranges: BTreeMap<i32, (i64, i64)>,
    pub bytes: usize,
    pub started: Option<Instant>,
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

    /// Whether the batch should end now. `behind`: the newest message read was already older
    /// than `max_wait` when read.
    fn due(&self, config: &BatchConfig, behind: bool) -> bool {
        let wait = Duration::from_millis(if behind {
            config.max_wait_behind_ms
        } else {
            config.max_wait_ms
        });
        !self.is_empty()
            && (self.rows + self.dead.len() >= config.max_rows
                || self.bytes >= config.max_bytes
                || self
                    .started
                    .is_some_and(|started| started.elapsed() >= wait))
    }
}

/// State shared by the consumer thread, its rebalance callbacks and the writer task.
pub struct Shared {
    pub topic: String,
    /// The batch being built and what waits to be handed over (only the consumer thread
    /// touches it; the lock is uncontended).
    building: Mutex<Building>,
    /// The writer's queue; taken (closed) when the consumer stops.
    queue: Mutex<Option<mpsc::Sender<Piece>>>,
    /// Ended batches handed over (or waiting to be) and not yet written or abandoned.
    in_flight: Mutex<usize>,
    drained: Condvar,
    /// Partitions currently owned.
    owned: Mutex<HashSet<i32>>,
    /// Next offset to commit per owned partition (last written + 1).
    acked: Mutex<BTreeMap<i32, i64>>,
    /// First offset read per owned partition: where a rewind goes while nothing is written.
    first_read: Mutex<BTreeMap<i32, i64>>,
    /// Current rewind generation; bumped by the writer when an insert fails.
    epoch: AtomicU64,
    /// A rewind the consumer thread has still to carry out: read again after this instant.
    rewind: Mutex<Option<Instant>>,
    /// Batches that received a message so far.
    pub batches_started: AtomicU64,
    /// Batches written, or abandoned to be re-read (decoded again): once it reaches the
    /// started count of a moment, every message decoded before that moment is settled.
    pub batches_finished: AtomicU64,
    drain_timeout: Duration,
}

#[derive(Default)]
struct Building {
    /// The epoch of the pieces being produced.
    epoch: u64,
    /// The batch receiving messages.
    current: Batch,
    /// Decoded rows not yet moved to the outbox, with their positions.
    chunk: Vec<PendingEvent>,
    positions: Vec<(i32, i64)>,
    chunk_bytes: usize,
    /// Pieces waiting for room in the writer's queue (consumption is paused meanwhile).
    outbox: VecDeque<Piece>,
    /// Whether the newest message was already older than `max_wait` when read.
    behind: bool,
}

impl Building {
    /// Moves the decoded rows into the outbox as one chunk.
    fn push_chunk(&mut self) {
        if self.chunk.is_empty() {
            return;
        }
        self.chunk_bytes = 0;
        self.outbox.push_back(Piece::Rows {
            epoch: self.epoch,
            rows: std::mem::take(&mut self.chunk),
            positions: std::mem::take(&mut self.positions),
        });
    }
}

impl Shared {
    pub fn new(topic: &str, drain_timeout: Duration, queue: mpsc::Sender<Piece>) -> Arc<Self> {
        Arc::new(Self {
            topic: topic.to_string(),
            building: Mutex::new(Building::default()),
            queue: Mutex::new(Some(queue)),
            in_flight: Mutex::new(0),
            drained: Condvar::new(),
            owned: Mutex::new(HashSet::new()),
            acked: Mutex::new(BTreeMap::new()),
            first_read: Mutex::new(BTreeMap::new()),
            epoch: AtomicU64::new(0),
            rewind: Mutex::new(None),
            batches_started: AtomicU64::new(0),
            batches_finished: AtomicU64::new(0),
            drain_timeout,
        })
    }

    /// The current rewind generation: pieces of older ones are stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Called by the writer when an insert failed: everything handed over since the last
    /// written batch is stale, and the consumer re-reads it after `resume_at`.
    pub fn request_rewind(&self, resume_at: Instant) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        *lock(&self.rewind) = Some(resume_at);
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
        self.batch_finished();
        list
    }

    /// Called for an ended batch that will not be written (stale after a rewind): it is
    /// re-read, so it no longer holds up a drain.
    pub fn batch_abandoned(&self) {
        self.batch_finished();
    }

    fn batch_finished(&self) {
        self.batches_finished.fetch_add(1, Ordering::SeqCst);
        let mut in_flight = lock(&self.in_flight);
        *in_flight = in_flight.saturating_sub(1);
        self.drained.notify_all();
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

    /// Where each owned partition resumes after a rewind: after its last written batch, or
    /// at the first offset read since it was assigned.
    fn rewind_positions(&self) -> Vec<(i32, i64)> {
        let owned = lock(&self.owned);
        let acked = lock(&self.acked);
        let first_read = lock(&self.first_read);
        let mut positions: Vec<(i32, i64)> = owned
            .iter()
            .filter_map(|partition| {
                let offset = acked.get(partition).or(first_read.get(partition))?;
                Some((*partition, *offset))
            })
            .collect();
        positions.sort_unstable();
        positions
    }

    /// Ends the batch being built: its last chunk and its end go to the outbox.
    fn end_batch(&self) {
        let mut building = lock(&self.building);
        if building.current.is_empty() {
            return;
        }
        building.push_chunk();
        let batch = std::mem::take(&mut building.current);
        metrics::histogram!("indexer_batch_rows").record(batch.rows as f64);
        metrics::histogram!("indexer_batch_bytes").record(batch.bytes as f64);
        // Counted in flight before the writer can possibly finish it.
        *lock(&self.in_flight) += 1;
        let epoch = building.epoch;
        building.outbox.push_back(Piece::End { epoch, batch });
    }

    /// Hands the outbox to the writer as far as its queue has room. Ok(true) while pieces
    /// still wait; Err when the writer is gone.
    fn flush(&self) -> Result<bool, ()> {
        let mut building = lock(&self.building);
        let queue = lock(&self.queue);
        let Some(queue) = queue.as_ref() else {
            return Err(());
        };
        while let Some(piece) = building.outbox.pop_front() {
            match queue.try_send(piece) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(piece)) => {
                    building.outbox.push_front(piece);
                    return Ok(true);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return Err(()),
            }
        }
        Ok(false)
    }

    /// Hands the whole outbox over, waiting for room until `deadline`. True when done.
    fn flush_until(&self, deadline: Instant) -> bool {
        loop {
            match self.flush() {
                Ok(false) => return true,
                Err(()) => return false,
                Ok(true) if Instant::now() >= deadline => return false,
                Ok(true) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    /// Drops everything not handed over and adopts the current epoch. Returns whether a
    /// rewind was pending, and when reading may resume.
    fn take_rewind(&self) -> Option<Instant> {
        let resume_at = lock(&self.rewind).take()?;
        let mut building = lock(&self.building);
        let ends = building
            .outbox
            .iter()
            .filter(|piece| matches!(piece, Piece::End { .. }))
            .count();
        let open = !building.current.is_empty();
        *building = Building {
            epoch: self.epoch(),
            ..Building::default()
        };
        drop(building);
        for _ in 0..ends {
            self.batch_abandoned();
        }
        if open {
            // Never ended, so never in flight: it only counts as finished.
            self.batches_finished.fetch_add(1, Ordering::SeqCst);
        }
        Some(resume_at)
    }

    /// Ends and hands over everything, then waits for the writer (up to the drain timeout).
    /// True when every batch was written or abandoned.
    fn drain(&self) -> bool {
        let deadline = Instant::now() + self.drain_timeout;
        self.end_batch();
        self.flush_until(deadline)
            && self.wait_drained(deadline.saturating_duration_since(Instant::now()))
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
        // The open batch already streams rows of the revoked partitions: end it and let the
        // writer finish it, so their offsets can be committed before the partitions go.
        let drained = self.shared.drain();
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
            let mut first_read = lock(&self.shared.first_read);
            for partition in &revoked {
                owned.remove(partition);
                acked.remove(partition);
                first_read.remove(partition);
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
    /// Verifies the platform's integrity tags (tagged messages skip validation).
    pub integrity: IntegrityKey,
    pub settings: SettingsStore,
    pub plans: PlansConfig,
    pub batch: BatchConfig,
    pub shutdown: CancellationToken,
}

impl ConsumerLoop {
    /// Runs until shutdown; then hands over the last batch, waits for it and returns.
    pub fn run(self) {
        let mut paused = false;
        let mut resume_at: Option<Instant> = None;
        let mut waiting_since: Option<Instant> = None;
        // Follow settings changes message by message (a change check is one atomic load).
        let mut changes = self.settings.subscribe();
        let mut settings = changes.borrow_and_update().clone();
        while !self.shutdown.is_cancelled() {
            if let Some(at) = self.shared.take_rewind() {
                self.rewind(paused);
                paused = false;
                resume_at = Some(at);
            }
            let waiting = match self.shared.flush() {
                Ok(waiting) => waiting,
                Err(()) => {
                    tracing::error!("writer stopped; indexer consumer exits");
                    return;
                }
            };
            let backing_off = resume_at.is_some_and(|at| Instant::now() < at);
            // The writer's queue frees up within milliseconds while ClickHouse keeps up: wait
            // for it without polling. Pausing would make librdkafka drop its prefetched
            // messages and fetch them again.
            let waited = waiting_since.map_or(Duration::ZERO, |since| since.elapsed());
            if waiting && waited < PAUSE_AFTER && !backing_off {
                waiting_since.get_or_insert_with(Instant::now);
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            if !waiting {
                waiting_since = None;
            }
            // While the writer stays full or a failed insert is backed off, keep polling
            // paused so rebalances are served and the group keeps us, without fetching more.
            let pause = waiting || backing_off;
            if pause != paused {
                self.set_paused(pause);
                paused = pause;
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
            if !backing_off && self.due() {
                self.shared.end_batch();
            }
        }
        // Shutdown: hand over what we have, wait for the writer, commit synchronously.
        let drained = self.shared.drain();
        let owned: Vec<i32> = lock(&self.shared.owned).iter().copied().collect();
        let offsets = self.shared.acked_offsets(&owned);
        if offsets.count() > 0
            && let Err(error) = self.consumer.commit(&offsets, CommitMode::Sync)
        {
            tracing::warn!(%error, "final commit failed; uncommitted batches will be re-read (deduplicated)");
        }
        drop(offsets);
        // Closing the queue lets the writer finish.
        lock(&self.shared.queue).take();
        tracing::info!(drained, "indexer consumer stopped");
    }

    /// Seeks every owned partition back to its first offset not yet written.
    fn rewind(&self, paused: bool) {
        metrics::counter!("indexer_rewinds_total").increment(1);
        // Seek on fetching partitions; the loop pauses them again for the backoff.
        if paused {
            self.set_paused(false);
        }
        for (partition, offset) in self.shared.rewind_positions() {
            if let Err(error) = self.consumer.seek(
                &self.shared.topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                // Reading on from here would skip unwritten rows: try the rewind again.
                tracing::warn!(%error, partition, offset, "seek failed; rewinding again");
                self.shared
                    .request_rewind(Instant::now() + Duration::from_millis(500));
                return;
            }
            tracing::info!(partition, offset, "re-reading from the last written offset");
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
            Ok(()) if pause => tracing::debug!("consumption paused"),
            Ok(()) => tracing::debug!("consumption resumed"),
            Err(error) => tracing::warn!(%error, pause, "pause/resume failed"),
        }
    }

    /// Whether the batch being built should end now.
    fn due(&self) -> bool {
        let building = lock(&self.shared.building);
        building.current.due(&self.batch, building.behind)
    }

    fn accept(&self, message: &BorrowedMessage<'_>, settings: &audit_settings::SettingsView) {
        let partition = message.partition();
        let offset = message.offset();
        lock(&self.shared.first_read)
            .entry(partition)
            .or_insert(offset);
        let decoder = Decoder {
            validator: &self.validator,
            integrity: &self.integrity,
            topic: &self.shared.topic,
            plans: &self.plans,
        };
        let decoded = decode(message, &decoder, settings);
        let mut building = lock(&self.shared.building);
        if building.current.is_empty() {
            self.shared.batches_started.fetch_add(1, Ordering::SeqCst);
        }
        building.current.track(partition, offset);
        match decoded {
            Ok(row) => {
                let age_ms =
                    audit_core::event::unix_millis(OffsetDateTime::now_utc()) - row.broker_ms;
                building.behind =
                    u64::try_from(age_ms).is_ok_and(|age| age > self.batch.max_wait_ms);
                let bytes = row.approx_bytes();
                building.current.bytes += bytes;
                building.current.rows += 1;
                building.chunk_bytes += bytes;
                building.chunk.push(row);
                building.positions.push((partition, offset));
                if building.chunk.len() >= CHUNK_ROWS || building.chunk_bytes >= CHUNK_BYTES {
                    building.push_chunk();
                }
            }
            Err(reason) => {
                metrics::counter!("indexer_invalid_messages_total").increment(1);
                let payload = message.payload().unwrap_or_default();
                building.current.bytes += payload.len();
                building.current.dead.push(DeadMessage {
                    partition,
                    offset,
                    key: message.key().map(<[u8]>::to_vec),
                    payload: payload.to_vec(),
                    reason,
                });
            }
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
    let time = audit_kafka::broker_time(message.timestamp(), "indexer");
    // The age of the message (batching while behind) and the fallback `received_at` of
    // rows stored before it was always stamped.
    let broker_ms = match time {
        BrokerTime::LogAppend(ms) => ms,
        _ => audit_core::event::unix_millis(OffsetDateTime::now_utc()),
    };
    let signer = audit_kafka::header_str(message.headers(), audit_core::integrity::HEADER)
        .and_then(|tag| decoder.integrity.verify(payload, tag.as_bytes()));
    let (org_id, json) = if let Some(signer) = signer {
        // Written by the platform, which wrote this exact canonical JSON: only its
        // organization is needed now (the row is built while the insert streams), once the
        // event is seen to say what its tag proves.
        metrics::counter!("indexer_messages_total", "path" => "tagged").increment(1);
        let head: EventHead<'_> = serde_json::from_slice(payload)
            .map_err(|error| format!("tagged message is not a canonical event: {error}"))?;
        audit_core::integrity::check_tagged(
            signer,
            head.provenance.as_deref(),
            &head.category,
            decoder.validator.catalogue(),
        )?;
        (head.org_id.into_owned(), payload.to_vec())
    } else {
        metrics::counter!("indexer_messages_total", "path" => "validated").increment(1);
        let arrival =
            Arrival::kafka_message(decoder.topic, message.partition(), message.offset(), time);
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
    #[serde(borrow)]
    category: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    provenance: Option<std::borrow::Cow<'a, str>>,
}

/// What decoding needs besides the message.
pub struct Decoder<'a> {
    pub validator: &'a EventValidator,
    pub integrity: &'a IntegrityKey,
    pub topic: &'a str,
    pub plans: &'a PlansConfig,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn shared(capacity: usize) -> (Arc<Shared>, mpsc::Receiver<Piece>) {
        let (queue, receiver) = mpsc::channel(capacity);
        (Shared::new("t", Duration::from_millis(10), queue), receiver)
    }

    fn add_row(shared: &Shared, partition: i32, offset: i64) {
        let mut building = lock(&shared.building);
        building.current.track(partition, offset);
        building.current.rows += 1;
        building.chunk.push(PendingEvent {
            org_id: "org_a".into(),
            json: b"{}".to_vec(),
            retention_days: 90,
            broker_ms: 0,
        });
        building.positions.push((partition, offset));
    }

    #[test]
    fn batches_end_on_rows_bytes_or_age_and_wait_longer_while_behind() {
        let config = BatchConfig {
            max_rows: 3,
            max_bytes: 1_000,
            max_wait_ms: 20,
            max_wait_behind_ms: 10_000,
            queue_chunks: 1,
        };
        let mut batch = Batch::default();
        assert!(!batch.due(&config, false), "an empty batch never ends");
        batch.track(0, 1);
        batch.rows = 1;
        assert!(!batch.due(&config, false));
        std::thread::sleep(Duration::from_millis(30));
        assert!(batch.due(&config, false), "max_wait while keeping up");
        assert!(!batch.due(&config, true), "max_wait_behind while behind");
        batch.rows = 3;
        assert!(batch.due(&config, true), "max_rows");
        batch.rows = 1;
        batch.bytes = 1_000;
        assert!(batch.due(&config, true), "max_bytes");
    }

    #[test]
    fn ended_batches_reach_the_writer_in_order_as_the_queue_makes_room() {
        let (shared, mut receiver) = shared(1);
        add_row(&shared, 0, 1);
        shared.end_batch();
        add_row(&shared, 0, 2);
        shared.end_batch();
        assert_eq!(*lock(&shared.in_flight), 2);
        assert_eq!(shared.flush(), Ok(true), "three pieces wait for one slot");
        let mut received = Vec::new();
        while received.len() < 4 {
            received.push(receiver.try_recv().unwrap());
            let _ = shared.flush();
        }
        let kinds: Vec<&str> = received
            .iter()
            .map(|piece| match piece {
                Piece::Rows { .. } => "rows",
                Piece::End { .. } => "end",
            })
            .collect();
        assert_eq!(kinds, ["rows", "end", "rows", "end"]);
        assert_eq!(shared.flush(), Ok(false));
    }

    #[test]
    fn a_rewind_drops_what_was_not_handed_over_and_resumes_after_the_last_written_batch() {
        let (shared, _receiver) = shared(1);
        lock(&shared.owned).extend([0, 1, 2]);
        lock(&shared.first_read).extend([(0, 5), (1, 7)]);
        lock(&shared.acked).insert(0, 20);
        add_row(&shared, 1, 7);
        shared.end_batch();
        add_row(&shared, 1, 8);
        assert!(shared.take_rewind().is_none(), "no rewind requested yet");

        let resume_at = Instant::now() + Duration::from_secs(1);
        shared.request_rewind(resume_at);
        assert_eq!(shared.take_rewind(), Some(resume_at));
        assert_eq!(
            *lock(&shared.in_flight),
            0,
            "the dropped batch is abandoned"
        );
        let building = lock(&shared.building);
        assert!(building.outbox.is_empty() && building.chunk.is_empty());
        assert!(building.current.is_empty());
        assert_eq!(
            building.epoch,
            shared.epoch(),
            "new pieces carry the new epoch"
        );
        drop(building);
        // Partition 0 after its written batch, 1 from its first read, 2 was never read.
        assert_eq!(shared.rewind_positions(), [(0, 20), (1, 7)]);
    }

    #[test]
    fn written_batches_commit_next_offsets_of_owned_partitions_only() {
        let (shared, _receiver) = shared(1);
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
