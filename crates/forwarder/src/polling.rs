//! The run and drain protocol both forwarder consumers follow (the events consumer,
//! [`crate::consumer`], and the retry consumer, [`crate::retry`]); each says only what it does
//! with a message ([`ConsumerThread`]).
//!
//! Run, until shutdown: follow the settings (every 50 ms; a change re-routes the lanes), stop
//! fetching while the tracker is full (back-pressure: in-flight events hold memory in the
//! lanes) and fetch again when it is not, poll, hand each message to the thread, commit what
//! every destination has answered every `commit_interval`.
//!
//! Drain, at shutdown: close the lanes (they deliver or park what they hold), wait up to
//! `drain_timeout` for every event to be answered, commit synchronously, abort lanes still
//! busy (their events are re-read after the restart: at-least-once), leave the group.
//!
//! The loop itself, pausing and the rebalance callbacks are `audit_kafka::consumer`'s (the
//! indexer's consumer is the same shape); the forwarder's half of a rebalance is
//! [`TrackedPartitions`]: a revoke waits for the revoked partitions' events to be answered and
//! commits them; an assign starts the partitions under a new epoch
//! (`audit_kafka::offsets`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_kafka::consumer::{self, GroupContext, Partitions, Pause, Polling, Step};
use audit_kafka::offsets::OffsetTracker;
use audit_settings::{PlansConfig, SettingsStore, SettingsView};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use tokio_util::sync::CancellationToken;

use crate::router::Router;

/// How often the settings are looked at (a cheap pointer comparison).
const SETTINGS_TICK: Duration = Duration::from_millis(50);

/// A forwarder group consumer.
pub type TrackedConsumer = BaseConsumer<GroupContext<TrackedPartitions>>;

/// What both consumer threads hold.
pub struct ConsumerCore {
    /// `events` or `retry`, in logs and metrics.
    pub role: &'static str,
    pub consumer: Arc<TrackedConsumer>,
    pub tracker: Arc<OffsetTracker>,
    pub router: Router,
    pub settings: SettingsStore,
    pub plans: PlansConfig,
    pub commit_interval: Duration,
    pub max_buffered_events: usize,
    pub drain_timeout: Duration,
    pub shutdown: CancellationToken,
}

/// What one consumer thread does within the shared protocol.
pub trait ConsumerThread {
    fn core(&self) -> &ConsumerCore;
    fn core_mut(&mut self) -> &mut ConsumerCore;

    /// Every settings tick, with the current settings (the lanes follow them already).
    fn tick(&mut self, _view: &SettingsView, _runtime: &tokio::runtime::Handle) {}

    /// Fetching resumed after back-pressure.
    fn resumed(&mut self) {}

    /// One message read.
    fn accept(
        &mut self,
        message: &BorrowedMessage<'_>,
        view: &SettingsView,
        runtime: &tokio::runtime::Handle,
    );
}

/// Runs `thread` until shutdown, then drains it (module doc).
pub fn run(thread: impl ConsumerThread, runtime: tokio::runtime::Handle) {
    let view = thread.core().settings.view();
    let mut polling = Forwarding {
        thread,
        runtime,
        view,
        settings_checked: Instant::now(),
        last_commit: Instant::now(),
    };
    polling.follow(true);
    consumer::run(polling);
}

/// A [`ConsumerThread`] in `audit_kafka::consumer`'s loop.
struct Forwarding<T> {
    thread: T,
    runtime: tokio::runtime::Handle,
    view: Arc<SettingsView>,
    settings_checked: Instant,
    last_commit: Instant,
}

impl<T: ConsumerThread> Forwarding<T> {
    /// Re-routes the lanes when the settings changed (or `force`).
    fn follow(&mut self, force: bool) {
        let current = self.thread.core().settings.view();
        if force || !Arc::ptr_eq(&current, &self.view) {
            self.view = current;
            let core = self.thread.core_mut();
            core.router.sync(&self.view, &core.plans);
        }
    }
}

impl<T: ConsumerThread> Polling for Forwarding<T> {
    type Partitions = TrackedPartitions;

    fn consumer(&self) -> &Arc<TrackedConsumer> {
        &self.thread.core().consumer
    }

    fn stopping(&self) -> bool {
        self.thread.core().shutdown.is_cancelled()
    }

    fn before_poll(&mut self, pause: &mut Pause) -> Step {
        if self.settings_checked.elapsed() >= SETTINGS_TICK {
            self.settings_checked = Instant::now();
            self.follow(false);
            self.thread.tick(&self.view, &self.runtime);
        }
        let core = self.thread.core();
        let over = core.tracker.is_full(core.max_buffered_events);
        if over && !pause.is_paused() {
            tracing::info!(
                consumer = core.role,
                in_flight = core.tracker.in_flight(),
                tracked = core.tracker.tracked(),
                "buffer full: pausing consumption"
            );
        }
        Step::Poll { paused: over }
    }

    fn resumed(&mut self) {
        self.thread.resumed();
    }

    fn accept(&mut self, message: &BorrowedMessage<'_>) {
        self.thread.accept(message, &self.view, &self.runtime);
    }

    fn after_poll(&mut self) {
        let core = self.thread.core();
        if self.last_commit.elapsed() >= core.commit_interval {
            self.last_commit = Instant::now();
            let offsets = core.tracker.to_commit();
            consumer::commit(
                &core.consumer,
                core.tracker.topic(),
                &offsets,
                CommitMode::Async,
            );
        }
    }

    fn drain(mut self) {
        let core = self.thread.core_mut();
        tracing::info!(
            consumer = core.role,
            in_flight = core.tracker.in_flight(),
            "consumer draining"
        );
        let lanes = core.router.close();
        let drained = core.tracker.wait_drained(None, core.drain_timeout);
        let offsets = core.tracker.committable();
        consumer::commit(
            &core.consumer,
            core.tracker.topic(),
            &offsets,
            CommitMode::Sync,
        );
        if !drained {
            tracing::warn!(
                consumer = core.role,
                in_flight = core.tracker.in_flight(),
                "not every event was answered in time; they will be re-read (at-least-once)"
            );
            for lane in &lanes {
                lane.abort();
            }
        }
        self.runtime.block_on(async {
            for lane in lanes {
                let _ = tokio::time::timeout(Duration::from_secs(2), lane).await;
            }
        });
        core.consumer.context().set_closing();
        core.consumer.unsubscribe();
        tracing::info!(consumer = core.role, drained, "consumer stopped");
    }
}

/// The forwarder's half of a rebalance: a revoke waits (up to the drain timeout) for the
/// revoked partitions' events to be answered and returns their offsets; an assign starts
/// them under a new epoch.
pub struct TrackedPartitions {
    tracker: Arc<OffsetTracker>,
    drain_timeout: Duration,
}

impl TrackedPartitions {
    pub fn new(tracker: Arc<OffsetTracker>, drain_timeout: Duration) -> Self {
        Self {
            tracker,
            drain_timeout,
        }
    }
}

impl Partitions for TrackedPartitions {
    fn revoking(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        let drained = self
            .tracker
            .wait_drained(Some(partitions), self.drain_timeout);
        if !drained {
            tracing::warn!(
                ?partitions,
                "revoked partitions still have events in flight; the next owner re-reads them"
            );
        }
        self.tracker.revoke(partitions)
    }

    fn release(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        self.tracker.revoke(partitions)
    }

    fn assigned(&self, partitions: &[i32]) {
        self.tracker.assign(partitions);
    }
}
