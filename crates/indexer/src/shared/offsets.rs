//! Partitions and offsets in [`Shared`], kept by the shared `OffsetTracker`: every message read
//! is answered when its batch is written (in order, so a batch answers everything of its
//! partitions up to its last offset); a rewind reads again from the first unanswered offset;
//! with tamper evidence on, commits are held at the sealed boundaries. Also the count of
//! batches in flight that a drain waits for.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{Batch, Shared, lock};

impl Shared {
    /// Called by the writer when a batch is fully acknowledged downstream.
    /// Returns the offsets to commit (only for partitions still owned under the epoch the
    /// batch was read in).
    pub fn batch_written(&self, batch: &Batch) -> Vec<(i32, i64)> {
        for (partition, (_, last)) in &batch.ranges {
            if let Some(epoch) = batch.epochs.get(partition) {
                self.tracker.answer_through(*partition, *epoch, *last);
            }
        }
        lock(&self.progress).batch_written(Instant::now());
        self.batch_finished();
        self.tracker.to_commit()
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

    /// Turns sealing on: offsets commit only up to sealed windows.
    pub fn enable_sealing(&self) {
        self.tracker.hold_commits();
    }

    /// The writer starts sealing: the partitions it may seal (owned now; a revoke waits until
    /// [`Shared::end_seal`]).
    pub fn begin_seal(&self) -> HashSet<i32> {
        *lock(&self.seal_gate) = true;
        self.tracker.owned().into_iter().collect()
    }

    /// The writer finished sealing: new boundaries (committable offsets).
    pub fn end_seal(&self, sealed: &[(i32, i64)]) {
        for (partition, offset) in sealed {
            self.tracker.release_through(*partition, *offset);
        }
        *lock(&self.seal_gate) = false;
        self.seal_done.notify_all();
    }

    /// Remembers a message read; the epoch its batch answers it under (`None`: the partition
    /// is not owned, nothing to answer).
    pub(crate) fn note_read(&self, partition: i32, offset: i64) -> Option<u64> {
        self.tracker.read(partition, offset)
    }

    /// Forgets what was read and not written: where each owned partition is read again.
    pub(crate) fn rewind_positions(&self) -> Vec<(i32, i64)> {
        self.tracker.rewind()
    }

    /// Partitions were assigned to this consumer.
    pub(crate) fn assign(&self, partitions: &[i32]) {
        self.tracker.assign(partitions);
    }

    /// Partitions are revoked: returns their committable offsets and forgets them.
    /// Waits (up to the drain timeout) for a seal in progress first, so its boundaries are
    /// committed and the next owner resumes from its digests; no seal starts while the
    /// partitions are released.
    pub(crate) fn release(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
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
        let offsets = self.tracker.revoke(partitions);
        drop(gate);
        offsets
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::shared;
    use super::*;

    #[test]
    fn written_batches_commit_next_offsets_of_owned_partitions_only() {
        let (shared, _receiver) = shared(1);
        shared.assign(&[0]);
        *lock(&shared.in_flight) = 1;
        let mut batch = Batch::default();
        for (partition, offset) in [(0, 5), (0, 9), (1, 3)] {
            let epoch = shared.note_read(partition, offset);
            batch.track(partition, offset, epoch);
        }
        assert_eq!(shared.batch_written(&batch), [(0, 10)]);
        assert!(shared.wait_drained(Duration::from_millis(1)));
    }

    #[test]
    fn a_batch_read_before_a_reassignment_answers_nothing() {
        let (shared, _receiver) = shared(1);
        shared.assign(&[0]);
        let mut batch = Batch::default();
        batch.track(0, 5, shared.note_read(0, 5));
        assert_eq!(shared.release(&[0]), [(0, 5)]);
        shared.assign(&[0]);
        let fresh = shared.note_read(0, 5);
        assert_ne!(fresh, batch.epochs.get(&0).copied());
        assert_eq!(
            shared.batch_written(&batch),
            [(0, 5)],
            "the new owner's offset 5 is not written yet: reading resumes there"
        );
    }

    #[test]
    fn with_sealing_commits_stop_at_the_sealed_boundary() {
        let (shared, _receiver) = shared(1);
        shared.enable_sealing();
        shared.assign(&[0]);
        let mut batch = Batch::default();
        for offset in 0..10 {
            batch.track(0, offset, shared.note_read(0, offset));
        }
        assert!(
            shared.batch_written(&batch).is_empty(),
            "nothing sealed yet"
        );
        assert!(shared.begin_seal().contains(&0));
        shared.end_seal(&[(0, 6)]);
        assert_eq!(shared.tracker.to_commit(), [(0, 6)]);
        assert_eq!(shared.release(&[0]), [(0, 6)]);
    }
}
