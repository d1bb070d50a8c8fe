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
//! Rebalances are the other half ([`TrackedContext`], called on the polling thread between two
//! messages): a revoke waits for the revoked partitions' events to be answered and commits
//! them; an assign starts the partitions under a new epoch (`crate::offsets`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use audit_kafka::StatsContext;
use audit_settings::{PlansConfig, SettingsStore, SettingsView};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::offsets::OffsetTracker;
use crate::router::Router;

/// How often the settings are looked at (a cheap pointer comparison).
const SETTINGS_TICK: Duration = Duration::from_millis(50);
/// How long one poll waits for a message.
const POLL_WAIT: Duration = Duration::from_millis(50);

/// What both consumer threads hold.
pub struct ConsumerCore {
    /// `events` or `retry`, in logs and metrics.
    pub role: &'static str,
    pub consumer: Arc<BaseConsumer<TrackedContext>>,
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
pub fn run(mut thread: impl ConsumerThread, runtime: tokio::runtime::Handle) {
    let mut view = thread.core().settings.view();
    {
        let core = thread.core_mut();
        core.router.sync(&view, &core.plans);
    }
    let mut settings_checked = Instant::now();
    let mut last_commit = Instant::now();
    let mut paused = false;
    let mut paused_assignments = 0;
    while !thread.core().shutdown.is_cancelled() {
        if settings_checked.elapsed() >= SETTINGS_TICK {
            settings_checked = Instant::now();
            let current = thread.core().settings.view();
            if !Arc::ptr_eq(&current, &view) {
                view = current;
                let core = thread.core_mut();
                core.router.sync(&view, &core.plans);
            }
            thread.tick(&view, &runtime);
        }
        let core = thread.core();
        let over = core.tracker.is_full(core.max_buffered_events);
        let assignments = core.consumer.context().assignments();
        if over != paused || (paused && assignments != paused_assignments) {
            if over && !paused {
                tracing::info!(
                    consumer = core.role,
                    in_flight = core.tracker.in_flight(),
                    tracked = core.tracker.tracked(),
                    "buffer full: pausing consumption"
                );
            }
            set_paused(&core.consumer, over, core.role);
            paused = over;
            paused_assignments = assignments;
            if !over {
                thread.resumed();
            }
        }
        let consumer = thread.core().consumer.clone();
        match consumer.poll(POLL_WAIT) {
            None => {}
            Some(Err(error)) => {
                let role = thread.core().role;
                metrics::counter!("forwarder_poll_errors_total", "consumer" => role).increment(1);
                tracing::warn!(consumer = role, %error, "poll error");
            }
            Some(Ok(message)) => thread.accept(&message, &view, &runtime),
        }
        if last_commit.elapsed() >= thread.core().commit_interval {
            last_commit = Instant::now();
            let core = thread.core();
            let offsets = core.tracker.to_commit();
            commit(
                &core.consumer,
                core.tracker.topic(),
                &offsets,
                CommitMode::Async,
            );
        }
    }
    drain(thread.core_mut(), &runtime);
}

fn drain(core: &mut ConsumerCore, runtime: &tokio::runtime::Handle) {
    tracing::info!(
        consumer = core.role,
        in_flight = core.tracker.in_flight(),
        "consumer draining"
    );
    let lanes = core.router.close();
    let drained = core.tracker.wait_drained(None, core.drain_timeout);
    let offsets = core.tracker.to_commit();
    commit(
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
    runtime.block_on(async {
        for lane in lanes {
            let _ = tokio::time::timeout(Duration::from_secs(2), lane).await;
        }
    });
    core.consumer.context().set_closing();
    core.consumer.unsubscribe();
    tracing::info!(consumer = core.role, drained, "consumer stopped");
}

/// The context of both consumers: lag metrics, and the rebalance half of the protocol.
pub struct TrackedContext {
    role: &'static str,
    tracker: Arc<OffsetTracker>,
    stats: StatsContext,
    drain_timeout: Duration,
    /// Set at shutdown, when the drain already happened.
    closing: AtomicBool,
    assignments: AtomicU64,
}

impl TrackedContext {
    pub fn new(role: &'static str, tracker: Arc<OffsetTracker>, drain_timeout: Duration) -> Self {
        Self {
            role,
            tracker,
            stats: StatsContext::new(role),
            drain_timeout,
            closing: AtomicBool::new(false),
            assignments: AtomicU64::new(0),
        }
    }

    pub fn tracker(&self) -> &Arc<OffsetTracker> {
        &self.tracker
    }

    pub fn set_closing(&self) {
        self.closing.store(true, Ordering::Relaxed);
    }

    /// Incremented on every assignment (to re-apply a pause to new partitions).
    pub fn assignments(&self) -> u64 {
        self.assignments.load(Ordering::Relaxed)
    }
}

impl ClientContext for TrackedContext {
    fn stats(&self, statistics: Statistics) {
        self.stats.record(&statistics);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        audit_kafka::log_client_error(self.role, &error, reason);
    }
}

impl ConsumerContext for TrackedContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
        if revoked.is_empty() {
            return;
        }
        metrics::counter!("forwarder_rebalances_total", "consumer" => self.role, "kind" => "revoke")
            .increment(1);
        let drained = self.closing.load(Ordering::Relaxed)
            || self
                .tracker
                .wait_drained(Some(&revoked), self.drain_timeout);
        let offsets = self.tracker.revoke(&revoked);
        commit(consumer, self.tracker.topic(), &offsets, CommitMode::Sync);
        tracing::info!(
            consumer = self.role,
            ?revoked,
            drained,
            "partitions revoked"
        );
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let assigned: Vec<i32> = list.elements().iter().map(|e| e.partition()).collect();
            self.tracker.assign(&assigned);
            self.assignments.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("forwarder_rebalances_total", "consumer" => self.role, "kind" => "assign")
                .increment(1);
            tracing::info!(consumer = self.role, ?assigned, "partitions assigned");
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(error) = result {
            metrics::counter!("forwarder_commit_errors_total", "consumer" => self.role)
                .increment(1);
            tracing::warn!(consumer = self.role, %error, "offset commit failed (the next one covers it)");
        }
    }
}

/// Commits `offsets` of `topic`.
pub fn commit(
    consumer: &BaseConsumer<TrackedContext>,
    topic: &str,
    offsets: &[(i32, i64)],
    mode: CommitMode,
) {
    if offsets.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (partition, offset) in offsets {
        let _ = list.add_partition_offset(topic, *partition, Offset::Offset(*offset));
    }
    if let Err(error) = consumer.commit(&list, mode) {
        tracing::warn!(%error, "offset commit could not be sent; the next one covers it");
    }
}

/// Pauses or resumes every assigned partition.
pub fn set_paused(consumer: &BaseConsumer<TrackedContext>, pause: bool, role: &'static str) {
    let Ok(assignment) = consumer.assignment() else {
        return;
    };
    let result = if pause {
        consumer.pause(&assignment)
    } else {
        consumer.resume(&assignment)
    };
    drop(assignment);
    metrics::gauge!("forwarder_consumer_paused", "consumer" => role).set(if pause {
        1.0
    } else {
        0.0
    });
    if let Err(error) = result {
        tracing::warn!(%error, pause, "pause/resume failed");
    }
}
