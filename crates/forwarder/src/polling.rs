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

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_settings::{PlansConfig, SettingsStore, SettingsView};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::BorrowedMessage;
use tokio_util::sync::CancellationToken;

use crate::consumer::{TrackedContext, commit, set_paused};
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
