//! The state the consumer thread, its rebalance callbacks and the writer task share: the
//! batch being built and the pieces waiting for the writer, the offsets (the shared
//! `audit_kafka::offsets::OffsetTracker`: a message is answered when its batch is written),
//! the rewind epoch, the writer's row cap while it isolates refused rows, and progress.
//! The protocol it serves is described in [`crate::consumer`]; everything here is bookkeeping
//! without IO, unit-tested in each module.
//!
//! The state is one struct; its methods are grouped by who calls them: `batch` defines
//! what travels from the consumer thread to the writer, `building` is the consumer thread's
//! side (building batches, handing them over, rewinding, draining), `offsets` the partitions
//! owned and the offsets written, sealed and committable, kept by the tracker. Here: the struct, the rewind epoch
//! and the writer's row cap.

mod batch;
mod building;
mod offsets;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use audit_kafka::offsets::OffsetTracker;
use tokio::sync::mpsc;

use crate::progress::Progress;
pub use batch::{Batch, DeadMessage, Piece};
use building::Building;

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
    /// The partitions owned and their offsets: every message read is answered when the
    /// batch holding it is written; with tamper evidence on, commits are held at the last
    /// sealed window (a crash re-reads the open window, see [`crate::sealer`]).
    pub(crate) tracker: Arc<OffsetTracker>,
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
    /// Whether the writer is sealing; a revoke waits for it to finish.
    seal_gate: Mutex<bool>,
    seal_done: Condvar,
    drain_timeout: Duration,
}

impl Shared {
    pub fn new(topic: &str, drain_timeout: Duration, queue: mpsc::Sender<Piece>) -> Arc<Self> {
        Arc::new(Self {
            topic: topic.to_string(),
            building: Mutex::new(Building::default()),
            queue: Mutex::new(Some(queue)),
            in_flight: Mutex::new(0),
            drained: Condvar::new(),
            tracker: OffsetTracker::new(topic),
            epoch: AtomicU64::new(0),
            rewind: Mutex::new(None),
            batches_started: AtomicU64::new(0),
            batches_finished: AtomicU64::new(0),
            row_limit: AtomicUsize::new(usize::MAX),
            progress: Mutex::new(Progress::default()),
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
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Fixtures of the tests of the child modules.
#[cfg(test)]
mod test_support {
    use audit_store::PendingEvent;

    use super::*;

    pub(super) fn shared(capacity: usize) -> (Arc<Shared>, mpsc::Receiver<Piece>) {
        let (queue, receiver) = mpsc::channel(capacity);
        (Shared::new("t", Duration::from_millis(10), queue), receiver)
    }

    /// A row of the batch being built, without the side effects of [`Shared::add_row`].
    pub(super) fn add_row(shared: &Shared, partition: i32, offset: i64) {
        let mut building = lock(&shared.building);
        building.current.track(partition, offset, None);
        building.current.rows += 1;
        building.chunk.push(PendingEvent {
            org_id: "org_a".into(),
            json: b"{}".to_vec(),
            retention_days: 90,
            broker_ms: 0,
            partition: 202_611,
            leaf: None,
        });
        building.positions.push((partition, offset));
    }
}
