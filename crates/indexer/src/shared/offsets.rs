//! Partitions and offsets in [`Shared`]: the partitions owned (assigned, released on a
//! revoke), the next offset to commit per partition once a batch is written, where a rewind
//! resumes, and — with tamper evidence on — the sealed boundaries that cap what is committed.
//! Also the count of batches in flight that a drain waits for.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::{Offset, TopicPartitionList};

use super::{Batch, Shared, lock};

impl Shared {
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
}

#[cfg(test)]
mod tests {
    use super::super::test_support::shared;
    use super::*;

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
