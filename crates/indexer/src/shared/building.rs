//! The consumer thread's side of [`Shared`]: decoded rows gathered into the batch being
//! built, cut into chunks, and handed to the writer's queue as far as it has room (the rest
//! waits in an outbox while consumption pauses); a rewind requested by the writer dropped;
//! the last batch drained at shutdown. Only the consumer thread calls these.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use audit_store::PendingEvent;
use tokio::sync::mpsc;

use super::{Batch, DeadMessage, Piece, Shared, lock};
use crate::config::BatchConfig;

/// Rows per chunk handed to the writer (and at most this many bytes).
const CHUNK_ROWS: usize = 1_024;
const CHUNK_BYTES: usize = 1024 * 1024;

#[derive(Default)]
pub(super) struct Building {
    /// The epoch of the pieces being produced.
    pub(super) epoch: u64,
    /// The batch receiving messages.
    pub(super) current: Batch,
    /// Decoded rows not yet moved to the outbox, with their positions.
    pub(super) chunk: Vec<PendingEvent>,
    pub(super) positions: Vec<(i32, i64)>,
    pub(super) chunk_bytes: usize,
    /// Pieces waiting for room in the writer's queue (consumption is paused meanwhile).
    pub(super) outbox: VecDeque<Piece>,
    /// Whether the newest message was already older than `max_wait` when read.
    pub(super) behind: bool,
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

    /// Adds a decoded row to the batch being built. `behind`: the row was already older than
    /// `max_wait` when read (a backlog).
    pub(crate) fn add_row(
        &self,
        (partition, offset, epoch): (i32, i64, Option<u64>),
        row: PendingEvent,
        behind: bool,
    ) {
        let mut building = self.building_with((partition, offset, epoch), row.broker_ms);
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
    pub(crate) fn add_dead(&self, dead: DeadMessage, epoch: Option<u64>, broker_ms: i64) {
        let mut building = self.building_with((dead.partition, dead.offset, epoch), broker_ms);
        building.current.bytes += dead.payload.len();
        building.current.dead.push(dead);
    }

    /// The batch being built, with one more message of `partition` at `offset` accounted for.
    fn building_with(
        &self,
        (partition, offset, epoch): (i32, i64, Option<u64>),
        broker_ms: i64,
    ) -> std::sync::MutexGuard<'_, Building> {
        lock(&self.progress).read(broker_ms, Instant::now());
        let mut building = lock(&self.building);
        if building.current.is_empty() {
            self.batches_started.fetch_add(1, Ordering::SeqCst);
        }
        building.current.track(partition, offset, epoch);
        building
    }

    /// Whether the batch being built should end now.
    pub(crate) fn due(&self, config: &BatchConfig) -> bool {
        let building = lock(&self.building);
        building
            .current
            .due(config, building.behind, self.row_limit())
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::super::test_support::{add_row, shared};
    use super::*;

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
        shared.assign(&[0, 1, 2]);
        let mut written = Batch::default();
        for offset in 5..20 {
            written.track(0, offset, shared.note_read(0, offset));
        }
        *lock(&shared.in_flight) += 1;
        shared.batch_written(&written);
        shared.note_read(0, 20);
        shared.note_read(1, 7);
        shared.note_read(1, 8);
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
}
