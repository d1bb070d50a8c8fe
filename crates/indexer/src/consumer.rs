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
//!
//! The loop, pausing and the rebalance callbacks are `audit_kafka::consumer`'s, the offsets
//! `audit_kafka::offsets`' (the forwarder's consumers are the same shape); this module says
//! what the indexer does before each poll, with each message and on a revoke.

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_kafka::consumer::{self, GroupContext, Partitions, Pause, Polling, Step};
use audit_settings::{PlansConfig, SettingsStore, SettingsView};
use rdkafka::Offset;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::BatchConfig;
use crate::decode::{Decoder, decode};
use crate::shared::{DeadMessage, Shared};

/// How long the writer's queue may stay full before the partitions are paused.
const PAUSE_AFTER: Duration = Duration::from_secs(1);

/// The indexer's group consumer.
pub type IndexerConsumer = BaseConsumer<GroupContext<IndexerPartitions>>;

/// The indexer's half of a rebalance (module doc).
pub struct IndexerPartitions {
    shared: Arc<Shared>,
}

impl IndexerPartitions {
    pub fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

impl Partitions for IndexerPartitions {
    fn revoking(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        // The open batch already streams rows of the revoked partitions: end it and let the
        // writer finish it, so their offsets can be committed before the partitions go.
        let drained = self.shared.drain();
        if !drained {
            tracing::warn!(
                ?partitions,
                "the writer did not finish in time; the next owner re-reads (deduplicated)"
            );
        }
        self.shared.release(partitions)
    }

    fn release(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        self.shared.release(partitions)
    }

    fn assigned(&self, partitions: &[i32]) {
        self.shared.assign(partitions);
    }
}

/// Everything the consumer thread needs.
pub struct ConsumerLoop {
    pub consumer: Arc<IndexerConsumer>,
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
        // Follow settings changes message by message (a change check is one atomic load).
        let mut changes = self.settings.subscribe();
        let settings = changes.borrow_and_update().clone();
        consumer::run(Indexing {
            owner: self,
            changes,
            settings,
            resume_at: None,
            waiting_since: None,
            writer_gone: false,
        });
    }
}

/// The consumer thread's state in `audit_kafka::consumer`'s loop.
struct Indexing {
    owner: ConsumerLoop,
    changes: watch::Receiver<Arc<SettingsView>>,
    settings: Arc<SettingsView>,
    /// A failed insert is backed off until then.
    resume_at: Option<Instant>,
    /// Since when the writer's queue is full.
    waiting_since: Option<Instant>,
    writer_gone: bool,
}

impl Polling for Indexing {
    type Partitions = IndexerPartitions;

    fn consumer(&self) -> &Arc<IndexerConsumer> {
        &self.owner.consumer
    }

    fn stopping(&self) -> bool {
        self.owner.shutdown.is_cancelled()
    }

    fn before_poll(&mut self, pause: &mut Pause) -> Step {
        let shared = &self.owner.shared;
        if let Some(at) = shared.take_rewind() {
            self.rewind(pause);
            self.resume_at = Some(at);
        }
        let Ok(waiting) = shared.flush() else {
            tracing::error!("writer stopped; indexer consumer exits");
            self.writer_gone = true;
            return Step::Stop;
        };
        let backing_off = self.resume_at.is_some_and(|at| Instant::now() < at);
        // The writer's queue frees up within milliseconds while ClickHouse keeps up: wait
        // for it without polling. Pausing would make librdkafka drop its prefetched
        // messages and fetch them again.
        let waited = self
            .waiting_since
            .map_or(Duration::ZERO, |since| since.elapsed());
        if waiting && waited < PAUSE_AFTER && !backing_off {
            self.waiting_since.get_or_insert_with(Instant::now);
            return Step::Wait(Duration::from_millis(1));
        }
        if !waiting {
            self.waiting_since = None;
        }
        if self.changes.has_changed().unwrap_or(false) {
            self.settings = self.changes.borrow_and_update().clone();
        }
        // While the writer stays full or a failed insert is backed off, keep polling
        // paused so rebalances are served and the group keeps us, without fetching more.
        Step::Poll {
            paused: waiting || backing_off,
        }
    }

    fn accept(&mut self, message: &BorrowedMessage<'_>) {
        self.owner.accept(message, &self.settings);
    }

    fn after_poll(&mut self) {
        let backing_off = self.resume_at.is_some_and(|at| Instant::now() < at);
        if !backing_off && self.owner.shared.due(&self.owner.batch) {
            self.owner.shared.end_batch();
        }
    }

    fn drain(self) {
        let owner = self.owner;
        if self.writer_gone {
            return;
        }
        // Shutdown: hand over what we have, wait for the writer, commit synchronously.
        let drained = owner.shared.drain();
        let offsets = owner.shared.tracker.committable();
        consumer::commit(
            &owner.consumer,
            &owner.shared.topic,
            &offsets,
            CommitMode::Sync,
        );
        // Closing the queue lets the writer finish.
        owner.shared.close_queue();
        tracing::info!(drained, "indexer consumer stopped");
    }
}

impl Indexing {
    /// Seeks every owned partition back to its first offset not yet written.
    fn rewind(&self, pause: &mut Pause) {
        metrics::counter!("indexer_rewinds_total").increment(1);
        // Seek on fetching partitions; the loop pauses them again for the backoff.
        pause.set(&self.owner.consumer, false);
        let shared = &self.owner.shared;
        for (partition, offset) in shared.rewind_positions() {
            if let Err(error) = self.owner.consumer.seek(
                &shared.topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            ) {
                // Reading on from here would skip unwritten rows: try the rewind again.
                tracing::warn!(%error, partition, offset, "seek failed; rewinding again");
                shared.request_rewind(Instant::now() + Duration::from_millis(500));
                return;
            }
            tracing::info!(partition, offset, "re-reading from the last written offset");
        }
    }
}

impl ConsumerLoop {
    fn accept(&self, message: &BorrowedMessage<'_>, settings: &SettingsView) {
        let partition = message.partition();
        let offset = message.offset();
        let epoch = self.shared.note_read(partition, offset);
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
                self.shared.add_row((partition, offset, epoch), row, behind);
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
                    epoch,
                    broker_ms,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use audit_store::PendingEvent;
    use tokio::sync::mpsc;

    use super::*;

    /// A shared state with one row of partition 0 in the batch being built, and the queue the
    /// writer would read.
    fn with_a_row() -> (Arc<Shared>, mpsc::Receiver<crate::shared::Piece>) {
        let (queue, receiver) = mpsc::channel(8);
        let shared = Shared::new("t", Duration::from_millis(20), queue);
        let epoch = shared.note_read(0, 7);
        let row = PendingEvent {
            org_id: "org_a".into(),
            json: b"{}".to_vec(),
            retention_days: 90,
            broker_ms: 0,
            partition: 202_612,
            leaf: None,
        };
        shared.add_row((0, 7, epoch), row, false);
        (shared, receiver)
    }

    #[test]
    fn a_revoke_hands_the_open_batch_to_the_writer_first() {
        let (shared, mut receiver) = with_a_row();
        IndexerPartitions::new(shared).revoking(&[0]);
        assert!(
            receiver.try_recv().is_ok(),
            "the batch was ended for the writer"
        );
    }

    /// At shutdown the writer has drained and is gone: the revoke librdkafka runs while the
    /// consumer closes must not wait for it (it once made the close hang; the switch to this
    /// half is `GroupContext::set_closing`'s).
    #[test]
    fn a_revoke_while_closing_releases_without_a_drain() {
        let (shared, mut receiver) = with_a_row();
        let partitions = IndexerPartitions::new(shared);
        partitions.release(&[0]);
        assert!(
            receiver.try_recv().is_err(),
            "nothing handed to a writer that is gone"
        );
    }
}
