//! Which offsets may be committed, for every consumer here: a message's offset is done only
//! when everything it was handed to has answered — each destination it was routed to (the
//! forwarder: delivered, parked on the retry topic or dead-lettered), or the batch it was
//! written in (the indexer: ClickHouse acknowledged the insert and Kafka the dead letters).
//!
//! Per owned partition the tracker keeps the messages still in flight, in offset order, each
//! with the number of answers still owed. The committable offset of a
//! partition is the first in-flight offset (nothing at or after it is committed), or the next
//! offset after the last one read when nothing is in flight.
//!
//! Two counts bound the consumer: [`OffsetTracker::in_flight`], the events some destination
//! has not answered yet (they hold memory in the lanes), and [`OffsetTracker::tracked`], which
//! adds the answered events still waiting behind an unanswered one for their offset to be
//! committed (a few bytes each). Only the first may stop consumption at its usual bound: an
//! event that one hung destination holds must not make the consumer wait for it on behalf of
//! every other destination of the partition. Every assignment of a partition
//! gets a new epoch: acknowledgements of an older epoch (a lane finishing after the partition
//! was revoked) are ignored, so a stale acknowledgement can never move a new owner's offsets.
//!
//! Two more rules serve the indexer: a *rewind* ([`OffsetTracker::rewind`]) forgets what is in
//! flight and returns where each partition must be read again (its committable offset); and
//! with tamper evidence on, commits are *held* at the last sealed window
//! ([`OffsetTracker::hold_commits`], [`OffsetTracker::release_through`]), never beyond.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many answered events may wait for their offset per allowed in-flight event: they cost
/// 16 bytes each, an in-flight one its whole event. An unanswered event is parked within the
/// in-memory retry budget, so this bound is only reached at rates far above any benchmark.
pub const TRACKED_PER_IN_FLIGHT: usize = 20;

/// A handle to acknowledge one routed event for one destination.
#[derive(Clone)]
pub struct Ack {
    tracker: Arc<OffsetTracker>,
    partition: i32,
    offset: i64,
    epoch: u64,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Ack({}/{}@{})", self.partition, self.offset, self.epoch)
    }
}

impl Ack {
    pub fn partition(&self) -> i32 {
        self.partition
    }

    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Whether the partition is still owned under the epoch the event was read in.
    pub fn is_current(&self) -> bool {
        self.tracker.epoch(self.partition) == Some(self.epoch)
    }

    /// Acknowledges these events (delivered, parked or dead-lettered for their destination).
    pub fn all<'a>(acks: impl IntoIterator<Item = &'a Ack>) {
        let mut acks = acks.into_iter().peekable();
        while let Some(first) = acks.next() {
            let tracker = first.tracker.clone();
            let mut state = tracker.lock();
            state.ack(first.partition, first.offset, first.epoch);
            while let Some(next) = acks.next_if(|next| Arc::ptr_eq(&next.tracker, &tracker)) {
                state.ack(next.partition, next.offset, next.epoch);
            }
            drop(state);
            tracker.drained.notify_all();
        }
    }

    pub fn done(&self) {
        Ack::all([self]);
    }
}

#[derive(Debug, Default)]
struct PartitionTrack {
    epoch: u64,
    /// In-flight events: offset and destinations still to answer.
    in_flight: VecDeque<(i64, u32)>,
    /// The offset after the last one read.
    next_offset: Option<i64>,
    /// The last committed offset.
    committed: Option<i64>,
    /// While commits are held: the furthest offset released (the end of the last sealed
    /// window).
    released: Option<i64>,
}

impl PartitionTrack {
    /// The first offset not answered: where reading resumes.
    fn resume_at(&self) -> Option<i64> {
        match self.in_flight.front() {
            Some((offset, _)) => Some(*offset),
            None => self.next_offset,
        }
    }

    fn committable(&self, held: bool) -> Option<i64> {
        if held {
            self.released
        } else {
            self.resume_at()
        }
    }
}

#[derive(Debug, Default)]
struct TrackerState {
    partitions: HashMap<i32, PartitionTrack>,
    /// Tracked events some destination has not answered yet.
    in_flight_events: usize,
    /// Tracked events, answered or not (the length of every `in_flight` queue).
    tracked_events: usize,
    next_epoch: u64,
    /// Commits are held at [`PartitionTrack::released`].
    held: bool,
}

impl TrackerState {
    fn ack(&mut self, partition: i32, offset: i64, epoch: u64) {
        let Some(track) = self.partitions.get_mut(&partition) else {
            return;
        };
        if track.epoch != epoch {
            return;
        }
        let Ok(index) = track.in_flight.binary_search_by_key(&offset, |(o, _)| *o) else {
            return;
        };
        let remaining = &mut track.in_flight[index].1;
        if *remaining == 0 {
            return;
        }
        *remaining -= 1;
        if *remaining == 0 {
            self.in_flight_events = self.in_flight_events.saturating_sub(1);
        }
        while track.in_flight.front().is_some_and(|(_, left)| *left == 0) {
            track.in_flight.pop_front();
            self.tracked_events = self.tracked_events.saturating_sub(1);
        }
    }

    /// Answers, once, every message of `partition` up to `last` (in-order consumers).
    fn answer_through(&mut self, partition: i32, epoch: u64, last: i64) {
        let Some(track) = self.partitions.get_mut(&partition) else {
            return;
        };
        if track.epoch != epoch {
            return;
        }
        let answered = track
            .in_flight
            .partition_point(|(offset, _)| *offset <= last);
        for (_, left) in track.in_flight.range_mut(..answered) {
            if *left > 0 {
                *left -= 1;
                if *left == 0 {
                    self.in_flight_events = self.in_flight_events.saturating_sub(1);
                }
            }
        }
        while track.in_flight.front().is_some_and(|(_, left)| *left == 0) {
            track.in_flight.pop_front();
            self.tracked_events = self.tracked_events.saturating_sub(1);
        }
    }

    /// Records a message read; its epoch, or `None` when the partition is not owned.
    fn read(&mut self, partition: i32, offset: i64, answers: u32) -> Option<u64> {
        let track = self.partitions.get_mut(&partition)?;
        track.next_offset = Some(
            track
                .next_offset
                .map_or(offset + 1, |next| next.max(offset + 1)),
        );
        let epoch = track.epoch;
        if answers > 0 {
            track.in_flight.push_back((offset, answers));
            self.in_flight_events += 1;
            self.tracked_events += 1;
        }
        Some(epoch)
    }

    /// Forgets a partition's events (revoked, or assigned anew).
    fn forget(&mut self, track: &PartitionTrack) {
        self.forget_messages(&track.in_flight);
    }

    fn forget_messages(&mut self, in_flight: &VecDeque<(i64, u32)>) {
        let unanswered = in_flight.iter().filter(|(_, left)| *left > 0).count();
        self.in_flight_events = self.in_flight_events.saturating_sub(unanswered);
        self.tracked_events = self.tracked_events.saturating_sub(in_flight.len());
    }
}

/// The offsets of one consumer (the events consumer or the retry consumer).
#[derive(Debug)]
pub struct OffsetTracker {
    topic: String,
    state: Mutex<TrackerState>,
    drained: Condvar,
}

impl OffsetTracker {
    pub fn new(topic: &str) -> Arc<Self> {
        Arc::new(Self {
            topic: topic.to_string(),
            state: Mutex::new(TrackerState::default()),
            drained: Condvar::new(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    fn lock(&self) -> MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes ownership of partitions (a new epoch each).
    pub fn assign(&self, partitions: &[i32]) {
        let mut state = self.lock();
        for partition in partitions {
            state.next_epoch += 1;
            let epoch = state.next_epoch;
            let previous = state.partitions.insert(
                *partition,
                PartitionTrack {
                    epoch,
                    ..PartitionTrack::default()
                },
            );
            if let Some(previous) = previous {
                state.forget(&previous);
            }
        }
    }

    /// Lets partitions go; returns their committable offsets (to commit before releasing).
    pub fn revoke(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        let mut state = self.lock();
        let held = state.held;
        let mut offsets = Vec::new();
        for partition in partitions {
            if let Some(track) = state.partitions.remove(partition) {
                state.forget(&track);
                // Committed again even when unchanged: the last asynchronous commit may have
                // failed, and this is the partition's last chance with this owner.
                if let Some(offset) = track.committable(held) {
                    offsets.push((*partition, offset));
                }
            }
        }
        drop(state);
        self.drained.notify_all();
        offsets
    }

    pub fn epoch(&self, partition: i32) -> Option<u64> {
        self.lock()
            .partitions
            .get(&partition)
            .map(|track| track.epoch)
    }

    pub fn owned(&self) -> Vec<i32> {
        self.lock().partitions.keys().copied().collect()
    }

    /// Records a message read at `offset`, routed to `destinations` destinations. Returns the
    /// acknowledgement handle (`None` when nothing needs acknowledging or the partition is
    /// not owned).
    pub fn track(self: &Arc<Self>, partition: i32, offset: i64, destinations: u32) -> Option<Ack> {
        let epoch = self.lock().read(partition, offset, destinations)?;
        (destinations > 0).then(|| Ack {
            tracker: self.clone(),
            partition,
            offset,
            epoch,
        })
    }

    /// Records a message read at `offset` that one in-order answer settles
    /// ([`OffsetTracker::answer_through`]). Returns the partition's epoch (`None`: not owned).
    pub fn read(&self, partition: i32, offset: i64) -> Option<u64> {
        self.lock().read(partition, offset, 1)
    }

    /// Answers every message of `partition` read under `epoch` up to `last` (a batch written).
    pub fn answer_through(&self, partition: i32, epoch: u64, last: i64) {
        self.lock().answer_through(partition, epoch, last);
        self.drained.notify_all();
    }

    /// Forgets every message in flight: they are read again from the returned positions
    /// (per owned partition that read anything: its first unanswered offset), under a new
    /// epoch, so answers for what was read before are ignored.
    pub fn rewind(&self) -> Vec<(i32, i64)> {
        let mut state = self.lock();
        let mut positions = Vec::new();
        let partitions: Vec<i32> = state.partitions.keys().copied().collect();
        for partition in partitions {
            state.next_epoch += 1;
            let epoch = state.next_epoch;
            let Some(track) = state.partitions.get_mut(&partition) else {
                continue;
            };
            let Some(position) = track.resume_at() else {
                continue;
            };
            let in_flight = std::mem::take(&mut track.in_flight);
            track.next_offset = Some(position);
            track.epoch = epoch;
            state.forget_messages(&in_flight);
            positions.push((partition, position));
        }
        positions.sort_unstable();
        drop(state);
        self.drained.notify_all();
        positions
    }

    /// From now on commits stop at what [`OffsetTracker::release_through`] released.
    pub fn hold_commits(&self) {
        self.lock().held = true;
    }

    /// While commits are held: `partition` may be committed up to `offset` (exclusive: the
    /// next offset to read). Ignored for a partition not owned.
    pub fn release_through(&self, partition: i32, offset: i64) {
        if let Some(track) = self.lock().partitions.get_mut(&partition) {
            track.released = Some(track.released.map_or(offset, |held| held.max(offset)));
        }
    }

    /// Events read and not yet acknowledged by all their destinations.
    pub fn in_flight(&self) -> usize {
        self.lock().in_flight_events
    }

    /// Events whose offset is not committable yet: in flight, or acknowledged behind one
    /// that is.
    pub fn tracked(&self) -> usize {
        self.lock().tracked_events
    }

    /// Whether the consumer should stop fetching: `max_in_flight` events unanswered, or
    /// [`TRACKED_PER_IN_FLIGHT`] times as many waiting for their offset.
    pub fn is_full(&self, max_in_flight: usize) -> bool {
        let state = self.lock();
        state.in_flight_events >= max_in_flight
            || state.tracked_events >= max_in_flight.saturating_mul(TRACKED_PER_IN_FLIGHT)
    }

    /// Offsets that moved since the last call, marked as committed.
    pub fn to_commit(&self) -> Vec<(i32, i64)> {
        let mut state = self.lock();
        let held = state.held;
        let mut offsets = Vec::new();
        for (partition, track) in &mut state.partitions {
            if let Some(offset) = track.committable(held)
                && track.committed != Some(offset)
            {
                track.committed = Some(offset);
                offsets.push((*partition, offset));
            }
        }
        offsets
    }

    /// Every owned partition's committable offset, changed or not (a final, synchronous
    /// commit).
    pub fn committable(&self) -> Vec<(i32, i64)> {
        let mut state = self.lock();
        let held = state.held;
        let mut offsets = Vec::new();
        for (partition, track) in &mut state.partitions {
            if let Some(offset) = track.committable(held) {
                track.committed = Some(offset);
                offsets.push((*partition, offset));
            }
        }
        offsets.sort_unstable();
        offsets
    }

    /// Waits until no event of `partitions` (all owned ones when `None`) is in flight, or
    /// `timeout` passes. True when drained.
    pub fn wait_drained(&self, partitions: Option<&[i32]>, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        loop {
            let busy = state.partitions.iter().any(|(partition, track)| {
                partitions.is_none_or(|wanted| wanted.contains(partition))
                    && !track.in_flight.is_empty()
            });
            if !busy {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .drained
                .wait_timeout(state, deadline - now)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn commits_stop_at_the_first_event_still_in_flight() {
        let tracker = OffsetTracker::new("t");
        tracker.assign(&[0]);
        let a = tracker.track(0, 10, 2).expect("tracked");
        assert!(
            tracker.track(0, 11, 0).is_none(),
            "no destination: nothing to wait for"
        );
        let c = tracker.track(0, 12, 1).expect("tracked");
        assert_eq!(tracker.to_commit(), vec![(0, 10)]);
        c.done();
        assert!(tracker.to_commit().is_empty(), "10 still in flight");
        assert_eq!(
            (tracker.in_flight(), tracker.tracked()),
            (1, 2),
            "12 is answered: it only waits for its offset"
        );
        a.done();
        assert!(
            tracker.to_commit().is_empty(),
            "10 waits for its second destination"
        );
        a.done();
        assert_eq!(tracker.to_commit(), vec![(0, 13)]);
        assert_eq!((tracker.in_flight(), tracker.tracked()), (0, 0));
        a.done();
        assert_eq!(tracker.in_flight(), 0, "a repeated answer changes nothing");
    }

    #[test]
    fn stale_acknowledgements_are_ignored() {
        let tracker = OffsetTracker::new("t");
        tracker.assign(&[3]);
        let old = tracker.track(3, 5, 1).expect("tracked");
        assert_eq!(tracker.revoke(&[3]), vec![(3, 5)]);
        assert!(!old.is_current());
        tracker.assign(&[3]);
        let fresh = tracker.track(3, 5, 1).expect("tracked");
        old.done();
        assert_eq!(tracker.in_flight(), 1, "the old epoch's ack does not count");
        assert!(fresh.is_current());
        fresh.done();
        assert_eq!(tracker.to_commit(), vec![(3, 6)]);
    }

    #[test]
    fn unowned_partitions_are_not_tracked_and_drains_wait() {
        let tracker = OffsetTracker::new("t");
        assert!(tracker.track(1, 0, 1).is_none());
        tracker.assign(&[1, 2]);
        let ack = tracker.track(1, 0, 1).expect("tracked");
        assert!(!tracker.wait_drained(Some(&[1]), Duration::from_millis(10)));
        assert!(tracker.wait_drained(Some(&[2]), Duration::from_millis(10)));
        let waiter = {
            let tracker = tracker.clone();
            std::thread::spawn(move || tracker.wait_drained(None, Duration::from_secs(10)))
        };
        ack.done();
        assert!(waiter.join().expect("thread"));
    }

    fn sorted(mut offsets: Vec<(i32, i64)>) -> Vec<(i32, i64)> {
        offsets.sort_unstable();
        offsets
    }

    #[test]
    fn in_order_answers_settle_everything_up_to_the_batch_end() {
        let tracker = OffsetTracker::new("t");
        tracker.assign(&[0]);
        let epoch = tracker.read(0, 3).expect("owned");
        for offset in [4, 6, 7] {
            assert_eq!(tracker.read(0, offset), Some(epoch));
        }
        assert_eq!(tracker.read(9, 0), None, "not owned");
        tracker.answer_through(0, epoch, 6);
        assert_eq!(tracker.to_commit(), vec![(0, 7)]);
        assert_eq!((tracker.in_flight(), tracker.tracked()), (1, 1));
        tracker.answer_through(0, epoch + 1, 7);
        assert!(tracker.to_commit().is_empty(), "another epoch's answer");
        tracker.answer_through(0, epoch, 7);
        assert_eq!(tracker.to_commit(), vec![(0, 8)]);
    }

    #[test]
    fn a_rewind_reads_again_from_the_first_unanswered_offset_under_a_new_epoch() {
        let tracker = OffsetTracker::new("t");
        tracker.assign(&[0, 1, 2]);
        let epoch = tracker.read(0, 10).expect("owned");
        tracker.read(0, 11);
        tracker.answer_through(0, epoch, 10);
        tracker.read(0, 12);
        tracker.read(1, 5);
        assert_eq!(tracker.rewind(), vec![(0, 11), (1, 5)], "2 read nothing");
        assert_eq!((tracker.in_flight(), tracker.tracked()), (0, 0));
        tracker.answer_through(0, epoch, 12);
        assert_eq!(
            sorted(tracker.to_commit()),
            vec![(0, 11), (1, 5)],
            "a stale batch answers nothing"
        );
        let fresh = tracker.read(0, 11).expect("owned");
        assert_ne!(fresh, epoch);
        tracker.answer_through(0, fresh, 11);
        assert_eq!(tracker.to_commit(), vec![(0, 12)]);
    }

    #[test]
    fn held_commits_go_no_further_than_released() {
        let tracker = OffsetTracker::new("t");
        tracker.hold_commits();
        tracker.assign(&[0]);
        let epoch = tracker.read(0, 0).expect("owned");
        tracker.read(0, 1);
        tracker.answer_through(0, epoch, 1);
        assert!(tracker.to_commit().is_empty(), "nothing released yet");
        tracker.release_through(0, 1);
        assert_eq!(tracker.to_commit(), vec![(0, 1)]);
        tracker.release_through(0, 0);
        assert!(tracker.to_commit().is_empty(), "a release never goes back");
        tracker.release_through(7, 3);
        assert_eq!(tracker.committable(), vec![(0, 1)], "7 is not owned");
        assert_eq!(
            tracker.revoke(&[0]),
            vec![(0, 1)],
            "committed again on revoke"
        );
    }
}
