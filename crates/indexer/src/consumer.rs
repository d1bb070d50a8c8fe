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

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_kafka::StatsContext;
use audit_settings::{PlansConfig, SettingsStore};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;
use crate::decode::{Decoder, decode};
use crate::shared::{DeadMessage, Shared};

/// How long the writer's queue may stay full before the partitions are paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

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
        self.shared.release(&revoked);
        tracing::info!(?revoked, drained, "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            self.shared.assign(&assigned);
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
        let offsets = self.shared.acked_offsets(&self.shared.owned_partitions());
        if offsets.count() > 0
            && let Err(error) = self.consumer.commit(&offsets, CommitMode::Sync)
        {
            tracing::warn!(%error, "final commit failed; uncommitted batches will be re-read (deduplicated)");
        }
        drop(offsets);
        // Closing the queue lets the writer finish.
        self.shared.close_queue();
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
        self.shared.due(&self.batch)
    }

    fn accept(&self, message: &BorrowedMessage<'_>, settings: &audit_settings::SettingsView) {
        let partition = message.partition();
        let offset = message.offset();
        self.shared.note_read(partition, offset);
        let decoder = Decoder {
            validator: &self.validator,
            integrity: &self.integrity,
            topic: &self.shared.topic,
            plans: &self.plans,
        };
        let now_ms = audit_core::event::unix_millis(OffsetDateTime::now_utc());
        let broker_ms = message.timestamp().to_millis().unwrap_or(now_ms);
        match decode(message, &decoder, settings) {
            Ok(row) => {
                let behind = u64::try_from(now_ms - row.broker_ms)
                    .is_ok_and(|age| age > self.batch.max_wait_ms);
                self.shared.add_row(partition, offset, row, behind);
            }
            Err(dead) => {
                metrics::counter!("indexer_invalid_messages_total").increment(1);
                self.shared.add_dead(
                    DeadMessage {
                        partition,
                        offset,
                        key: message.key().map(<[u8]>::to_vec),
                        payload: message.payload().unwrap_or_default().to_vec(),
                        reason: dead.to_string(),
                    },
                    broker_ms,
                );
            }
        }
    }
}
