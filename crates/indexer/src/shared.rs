//! The state the consumer thread, its rebalance callbacks and the writer task share: the
//! batch being built and the pieces waiting for the writer, offsets written per partition,
//! the rewind epoch, the writer's row cap while it isolates refused rows, and progress.
//! The protocol it serves is described in [`crate::consumer`]; everything here is bookkeeping
//! without IO, unit-tested below.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use audit_store::PendingEvent;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::config::BatchConfig;
use crate::progress::Progress;

/// Rows per chunk handed to the writer (and at most this many bytes).
const CHUNK_ROWS: usize = 1_024;
const CHUNK_BYTES: usize = 1024 * 1024;
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
    /// than `max_wait` when read. `row_limit`: the writer's current cap while it isolates rows
    /// ClickHouse refused (see [`Shared::row_limit`]).
    fn due(&self, config: &BatchConfig, behind: bool, row_limit: usize) -> bool {
        let wait = Duration::from_millis(if behind {
            config.max_wait_behind_ms
        } else {
            config.max_wait_ms
        });
        !self.is_empty()
            && (self.rows + self.dead.len() >= config.max_rows.min(row_limit)
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
    /// Most messages per batch while the writer isolates rows that ClickHouse refused for
    /// their content: halved on each such refusal until the offending row is alone, doubled
    /// back on each success (`usize::MAX`: no cap beyond `max_rows`).
    row_limit: AtomicUsize,
    /// Whether writing makes progress (stall reporting).
    pub progress: Mutex<Progress>,
    /// With tamper evidence on: per partition, the end of the last sealed window. Offsets are
    /// committed up to it and never beyond (a crash re-reads the open window, see
    /// [`crate::sealer`]). `None`: no sealing, offsets follow the written batches.
    sealed: Mutex<Option<BTreeMap<i32, i64>>>,
    /// Whether the writer is sealing; a revoke waits for it to finish.
    seal_gate: Mutex<bool>,
    seal_done: Condvar,
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
            row_limit: AtomicUsize::new(usize::MAX),
            progress: Mutex::new(Progress::default()),
            sealed: Mutex::new(None),
            seal_gate: Mutex::new(false),
            seal_done: Condvar::new(),
            drain_timeout,
        })
    }

    /// The current rewind generation: pieces of older ones are stale.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The current cap on messages per batch (see the field).
    pub fn row_limit(&self) -> usize {
        self.row_limit.load(Ordering::SeqCst)
    }

    /// Sets the cap on messages per batch (the writer, while isolating refused rows).
    pub fn set_row_limit(&self, limit: usize) {
        self.row_limit.store(limit.max(1), Ordering::SeqCst);
    }

    /// Keeps the last insert failure for the stall report.
    pub fn record_failure(&self, error: &str) {
        lock(&self.progress).failed(error.to_string());
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
        for (partition, (_, last)) in &batch.ranges {
            if !owned.contains(partition) {
                continue;
            }
            let next = last + 1;
            let entry = acked.entry(*partition).or_insert(next);
            *entry = (*entry).max(next);
        }
        let partitions: Vec<i32> = batch
            .ranges
            .keys()
            .filter(|p| owned.contains(p))
            .copied()
            .collect();
        drop(acked);
        drop(owned);
        let list = self.acked_offsets(&partitions);
        lock(&self.progress).batch_written(Instant::now());
        self.batch_finished();
        list
    }

    /// Called for an ended batch that will not be written (stale after a rewind): it is
    /// re-read, so it no longer holds up a drain.
    pub fn batch_abandoned(&self) {
        lock(&self.progress).batch_abandoned();
        self.batch_finished();
    }

    fn batch_finished(&self) {
        self.batches_finished.fetch_add(1, Ordering::SeqCst);
        let mut in_flight = lock(&self.in_flight);
        *in_flight = in_flight.saturating_sub(1);
        self.drained.notify_all();
    }

    /// Waits until no batch is in flight, or `timeout` passes. True when drained.
    pub(crate) fn wait_drained(&self, timeout: Duration) -> bool {
        let guard = lock(&self.in_flight);
        let (guard, result) = self
            .drained
            .wait_timeout_while(guard, timeout, |in_flight| *in_flight > 0)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        drop(guard);
        !result.timed_out()
    }

    /// The offsets to commit for `partitions`: after their last written batch, or — with
    /// sealing — after their last sealed window.
    pub(crate) fn acked_offsets(&self, partitions: &[i32]) -> TopicPartitionList {
        let acked = lock(&self.acked);
        let sealed = lock(&self.sealed);
        let mut list = TopicPartitionList::new();
        for partition in partitions {
            let committable = match sealed.as_ref() {
                None => acked.get(partition).copied(),
                Some(sealed) => sealed.get(partition).copied(),
            };
            if let Some(offset) = committable {
                let _ = list.add_partition_offset(&self.topic, *partition, Offset::Offset(offset));
            }
        }
        list
    }

    /// Turns sealing on: offsets commit only up to sealed windows.
    pub fn enable_sealing(&self) {
        lock(&self.sealed).get_or_insert_with(BTreeMap::new);
    }

    /// The writer starts sealing: the partitions it may seal (owned now; a revoke waits until
    /// [`Shared::end_seal`]).
    pub fn begin_seal(&self) -> HashSet<i32> {
        *lock(&self.seal_gate) = true;
        lock(&self.owned).clone()
    }

    /// The writer finished sealing: new boundaries (committable offsets).
    pub fn end_seal(&self, sealed: &[(i32, i64)]) {
        if let Some(boundaries) = lock(&self.sealed).as_mut() {
            boundaries.extend(sealed.iter().copied());
        }
        *lock(&self.seal_gate) = false;
        self.seal_done.notify_all();
    }

    /// Where each owned partition resumes after a rewind: after its last written batch, or
    /// at the first offset read since it was assigned.
    pub(crate) fn rewind_positions(&self) -> Vec<(i32, i64)> {
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
    pub(crate) fn end_batch(&self) {
        let mut building = lock(&self.building);
        if building.current.is_empty() {
            return;
        }
        building.push_chunk();
        let batch = std::mem::take(&mut building.current);
        metrics::histogram!("indexer_batch_rows").record(batch.rows as f64);
        metrics::histogram!("indexer_batch_bytes").record(batch.bytes as f64);
        lock(&self.progress).batch_ended();
        // Counted in flight before the writer can possibly finish it.
        *lock(&self.in_flight) += 1;
        let epoch = building.epoch;
        building.outbox.push_back(Piece::End { epoch, batch });
    }

    /// Hands the outbox to the writer as far as its queue has room. Ok(true) while pieces
    /// still wait; Err when the writer is gone.
    pub(crate) fn flush(&self) -> Result<bool, ()> {
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

    /// Remembers the first offset read of a partition since it was assigned (where a rewind
    /// goes while nothing of it is written).
    pub(crate) fn note_read(&self, partition: i32, offset: i64) {
        lock(&self.first_read).entry(partition).or_insert(offset);
    }

    /// Adds a decoded row to the batch being built. `behind`: the row was already older than
    /// `max_wait` when read (a backlog).
    pub(crate) fn add_row(&self, partition: i32, offset: i64, row: PendingEvent, behind: bool) {
        let mut building = self.building_with(partition, offset, row.broker_ms);
        building.behind = behind;
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

    /// Adds a message that is dead-lettered (with the batch) instead of inserted.
    pub(crate) fn add_dead(&self, dead: DeadMessage, broker_ms: i64) {
        let mut building = self.building_with(dead.partition, dead.offset, broker_ms);
        building.current.bytes += dead.payload.len();
        building.current.dead.push(dead);
    }

    /// The batch being built, with one more message of `partition` at `offset` accounted for.
    fn building_with(
        &self,
        partition: i32,
        offset: i64,
        broker_ms: i64,
    ) -> std::sync::MutexGuard<'_, Building> {
        lock(&self.progress).read(broker_ms, Instant::now());
        let mut building = lock(&self.building);
        if building.current.is_empty() {
            self.batches_started.fetch_add(1, Ordering::SeqCst);
        }
        building.current.track(partition, offset);
        building
    }

    /// Whether the batch being built should end now.
    pub(crate) fn due(&self, config: &BatchConfig) -> bool {
        let building = lock(&self.building);
        building
            .current
            .due(config, building.behind, self.row_limit())
    }

    /// Partitions were assigned to this consumer.
    pub(crate) fn assign(&self, partitions: &[i32]) {
        lock(&self.owned).extend(partitions.iter().copied());
    }

    /// Partitions were revoked: forget what was tracked for them.
    /// Waits (up to the drain timeout) for a seal in progress, so the next owner resumes from
    /// its digests; no seal starts while the partitions are released.
    pub(crate) fn release(&self, partitions: &[i32]) {
        let gate = lock(&self.seal_gate);
        let (gate, waited) = self
            .seal_done
            .wait_timeout_while(gate, self.drain_timeout, |sealing| *sealing)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if waited.timed_out() {
            tracing::warn!(
                "a seal still runs after the drain timeout; releasing partitions anyway"
            );
        }
        let mut owned = lock(&self.owned);
        let mut acked = lock(&self.acked);
        let mut first_read = lock(&self.first_read);
        let mut sealed = lock(&self.sealed);
        for partition in partitions {
            owned.remove(partition);
            acked.remove(partition);
            first_read.remove(partition);
            if let Some(sealed) = sealed.as_mut() {
                sealed.remove(partition);
            }
        }
        drop(gate);
    }

    pub(crate) fn owned_partitions(&self) -> Vec<i32> {
        lock(&self.owned).iter().copied().collect()
    }

    /// Closes the writer's queue: the writer finishes what it has and stops.
    pub(crate) fn close_queue(&self) {
        lock(&self.queue).take();
    }

    /// Hands the whole outbox over, waiting for room until `deadline`. True when done.
    pub(crate) fn flush_until(&self, deadline: Instant) -> bool {
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
    pub(crate) fn take_rewind(&self) -> Option<Instant> {
        let resume_at = lock(&self.rewind).take()?;
        let mut building = lock(&self.building);
        let ends = building
            .outbox
            .iter()
            .filter(|piece| matches!(piece, Piece::End { .. }))
            .count();
        let open = !building.current.is_empty();
        lock(&self.progress).rewound();
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
    pub(crate) fn drain(&self) -> bool {
        let deadline = Instant::now() + self.drain_timeout;
        self.end_batch();
        self.flush_until(deadline)
            && self.wait_drained(deadline.saturating_duration_since(Instant::now()))
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
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
            partition: 202_611,
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
            max_partitions_per_insert: 64,
        };
        let mut batch = Batch::default();
        assert!(
            !batch.due(&config, false, usize::MAX),
            "an empty batch never ends"
        );
        batch.track(0, 1);
        batch.rows = 1;
        assert!(!batch.due(&config, false, usize::MAX));
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            batch.due(&config, false, usize::MAX),
            "max_wait while keeping up"
        );
        assert!(
            !batch.due(&config, true, usize::MAX),
            "max_wait_behind while behind"
        );
        batch.rows = 3;
        assert!(batch.due(&config, true, usize::MAX), "max_rows");
        batch.rows = 1;
        batch.bytes = 1_000;
        assert!(batch.due(&config, true, usize::MAX), "max_bytes");
        batch.bytes = 0;
        assert!(
            batch.due(&config, true, 1),
            "the writer's cap while it isolates refused rows"
        );
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
