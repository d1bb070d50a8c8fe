//! One destination's health as this process knows it: the lanes report deliveries,
//! failures, parking and pauses; the health loop reads a [`HealthSnapshot`], asks whether a
//! pause or a health record is due, and says what it wrote.
//!
//! Kept apart from the IO (records, pauses, metrics) so that the state machine (healthy,
//! retrying, paused; the "changed" flag that rate-limits records) is tested on its own.
//! Counters read on every batch are atomics; the rest sits behind one short-held mutex.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use audit_sinks::{Attempt, SinkState};
use serde::Serialize;
use time::OffsetDateTime;

use super::rule::{self, PauseFacts, PauseRequest};

/// The state shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Healthy,
    Retrying,
    Paused,
}

impl HealthState {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Retrying => "retrying",
            HealthState::Paused => "paused",
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    last_success_at: Option<OffsetDateTime>,
    last_failure_at: Option<OffsetDateTime>,
    last_failure_status: Option<String>,
    last_failure_excerpt: Option<String>,
    consecutive_failures: u64,
    failing_since: Option<Instant>,
    delivered_total: u64,
    dead_lettered_total: u64,
    parked_total: u64,
    /// The lane parks instead of sending (failing or backlogged).
    parking: bool,
    /// Paused in the settings (or locally, waiting for the settings write).
    paused: bool,
    pause_request: Option<PauseRequest>,
    changed: bool,
    last_published: Option<Instant>,
}

/// Everything this process shares about one destination: health, counters and the sink
/// state common to its main and retry lanes.
#[derive(Debug)]
pub struct DestinationShared {
    pub org_id: String,
    pub destination_id: String,
    pub sink_state: SinkState,
    inner: Mutex<Inner>,
    /// Events queued or in flight in this process's lanes.
    queued: AtomicI64,
    /// Events this process parked and has not seen resolved yet (an estimate: another
    /// instance's retry consumer may resolve them).
    parked_outstanding: AtomicI64,
    /// The retry lane's circuit: no attempt before this time (unix ms).
    retry_blocked_until_ms: AtomicI64,
    /// Last successful delivery (unix ms), read by the main lane to stop parking.
    last_success_ms: AtomicI64,
}

/// A snapshot of one destination's health, for the ops API and the health records.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSnapshot {
    pub org_id: String,
    pub destination_id: String,
    pub state: HealthState,
    pub last_success_at: Option<String>,
    pub last_failure_at: Option<String>,
    pub last_failure_status: Option<String>,
    pub last_failure_excerpt: Option<String>,
    pub consecutive_failures: u64,
    pub backlog: u64,
    pub delivered_total: u64,
    pub dead_lettered_total: u64,
    pub parked_total: u64,
}

impl DestinationShared {
    pub fn new(org_id: &str, destination_id: &str) -> Self {
        Self {
            org_id: org_id.to_string(),
            destination_id: destination_id.to_string(),
            sink_state: SinkState::default(),
            inner: Mutex::new(Inner::default()),
            queued: AtomicI64::new(0),
            parked_outstanding: AtomicI64::new(0),
            retry_blocked_until_ms: AtomicI64::new(0),
            last_success_ms: AtomicI64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn delivered(&self, events: u64) {
        let now = OffsetDateTime::now_utc();
        self.last_success_ms
            .store(crate::clock::now_ms(), Ordering::Relaxed);
        let mut inner = self.lock();
        inner.last_success_at = Some(now);
        inner.delivered_total += events;
        if inner.consecutive_failures > 0 || inner.failing_since.is_some() || inner.parking {
            inner.changed = true;
        }
        inner.consecutive_failures = 0;
        inner.failing_since = None;
        // The destination answers again: the main lane stops parking at its next batch.
        inner.parking = false;
        // Published on change only; counters alone do not force a record.
        if inner.last_published.is_none() {
            inner.changed = true;
        }
    }

    pub fn failed(&self, attempt: &Attempt) {
        let mut inner = self.lock();
        inner.last_failure_at = Some(OffsetDateTime::now_utc());
        inner.last_failure_status = Some(attempt.status.clone());
        inner.last_failure_excerpt = Some(attempt.excerpt.clone());
        inner.consecutive_failures += 1;
        inner.failing_since.get_or_insert_with(Instant::now);
        inner.changed = true;
    }

    pub fn dead_lettered(&self, events: u64) {
        let mut inner = self.lock();
        inner.dead_lettered_total += events;
        inner.changed = true;
    }

    pub fn parked(&self, events: u64) {
        self.parked_outstanding
            .fetch_add(i64::try_from(events).unwrap_or(0), Ordering::Relaxed);
        let mut inner = self.lock();
        inner.parked_total += events;
        inner.changed = true;
    }

    /// A parked event was taken off the retry topic (delivered, re-parked or dead-lettered).
    pub fn unparked(&self, events: u64) {
        let events = i64::try_from(events).unwrap_or(0);
        let _ =
            self.parked_outstanding
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |current| {
                    Some((current - events).max(0))
                });
    }

    /// Whether the destination is failing: its last attempt failed (no success since), or
    /// its main lane parks instead of sending.
    pub fn is_failing(&self) -> bool {
        let inner = self.lock();
        inner.consecutive_failures > 0 || inner.parking
    }

    pub fn queued(&self, delta: i64) {
        self.queued.fetch_add(delta, Ordering::Relaxed);
    }

    pub fn set_parking(&self, parking: bool) {
        let mut inner = self.lock();
        if inner.parking != parking {
            inner.parking = parking;
            inner.changed = true;
        }
    }

    /// Follows the settings (`None`: the organization or the destination is not there): an
    /// operator's resume clears a local pause, unless a pause was asked for and is not
    /// written yet.
    pub fn follow_settings(&self, paused_in_settings: Option<bool>) {
        match paused_in_settings {
            Some(true) => self.set_paused(true),
            Some(false) if !self.has_pause_request() => self.set_paused(false),
            _ => {}
        }
    }

    pub fn set_paused(&self, paused: bool) {
        let mut inner = self.lock();
        if inner.paused != paused {
            inner.paused = paused;
            inner.changed = true;
            if !paused {
                // Resumed by an operator: a new failure streak starts from zero.
                inner.failing_since = None;
                inner.consecutive_failures = 0;
                inner.pause_request = None;
            }
        }
    }

    /// Asks for the destination to be paused (misconfigured).
    pub fn request_pause(&self, request: PauseRequest) {
        let mut inner = self.lock();
        inner.paused = true;
        if inner.pause_request.is_none() {
            inner.pause_request = Some(request);
        }
        inner.changed = true;
    }

    pub fn last_success_ms(&self) -> i64 {
        self.last_success_ms.load(Ordering::Relaxed)
    }

    pub fn retry_blocked_until_ms(&self) -> i64 {
        self.retry_blocked_until_ms.load(Ordering::Relaxed)
    }

    pub fn block_retries_until(&self, unix_ms: i64) {
        self.retry_blocked_until_ms
            .store(unix_ms, Ordering::Relaxed);
    }

    pub fn backlog(&self) -> u64 {
        let queued = self.queued.load(Ordering::Relaxed).max(0);
        let parked = self.parked_outstanding.load(Ordering::Relaxed).max(0);
        u64::try_from(queued + parked).unwrap_or(0)
    }

    pub fn state(&self) -> HealthState {
        let inner = self.lock();
        if inner.paused {
            HealthState::Paused
        } else if inner.parking || inner.consecutive_failures > 0 {
            HealthState::Retrying
        } else {
            HealthState::Healthy
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let state = self.state();
        let backlog = self.backlog();
        let inner = self.lock();
        let text = |at: Option<OffsetDateTime>| at.map(audit_core::event::format_utc_millis);
        HealthSnapshot {
            org_id: self.org_id.clone(),
            destination_id: self.destination_id.clone(),
            state,
            last_success_at: text(inner.last_success_at),
            last_failure_at: text(inner.last_failure_at),
            last_failure_status: inner.last_failure_status.clone(),
            last_failure_excerpt: inner.last_failure_excerpt.clone(),
            consecutive_failures: inner.consecutive_failures,
            backlog,
            delivered_total: inner.delivered_total,
            dead_lettered_total: inner.dead_lettered_total,
            parked_total: inner.parked_total,
        }
    }

    /// The pause to write, if one is due (the rule is [`rule::pause_due`]).
    pub(crate) fn pause_due(&self, pause_after: Duration) -> Option<PauseRequest> {
        let inner = self.lock();
        let facts = PauseFacts {
            requested: inner.pause_request.as_ref(),
            paused: inner.paused,
            failing_for: inner.failing_since.map(|since| since.elapsed()),
            last_status: inner.last_failure_status.as_deref(),
        };
        rule::pause_due(&facts, pause_after)
    }

    pub(crate) fn consecutive_failures(&self) -> u64 {
        self.lock().consecutive_failures
    }

    /// Whether a pause was asked for and not recorded yet.
    pub(crate) fn has_pause_request(&self) -> bool {
        self.lock().pause_request.is_some()
    }

    /// A health record could not be written: try again at the next tick.
    pub(crate) fn publish_failed(&self) {
        self.lock().changed = true;
    }

    pub(crate) fn pause_recorded(&self) {
        let mut inner = self.lock();
        inner.pause_request = None;
        inner.paused = true;
        inner.changed = true;
    }

    /// Takes the "changed" flag when a record is due: something changed and `interval`
    /// passed since the last record, or `refresh` passed (a heartbeat, so that the record
    /// does not go stale while nothing changes).
    pub(crate) fn take_publish_due(&self, interval: Duration, refresh: Duration) -> bool {
        let mut inner = self.lock();
        let since = inner.last_published.map(|at| at.elapsed());
        let due = since.is_some_and(|since| since >= refresh)
            || (inner.changed && since.is_none_or(|since| since >= interval));
        if due {
            inner.changed = false;
            inner.last_published = Some(Instant::now());
        }
        due
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use audit_sinks::Verdict;

    fn failure(status: &str) -> Attempt {
        Attempt {
            verdict: Verdict::Retriable,
            status: status.into(),
            excerpt: "busy".into(),
            retry_after: None,
            latency: Duration::ZERO,
            message_id: "msg_1".into(),
        }
    }

    #[test]
    fn state_follows_failures_parking_and_pauses() {
        let shared = DestinationShared::new("org_a", "dst_1");
        assert_eq!(shared.state(), HealthState::Healthy);
        shared.failed(&failure("503"));
        shared.failed(&failure("timeout"));
        let snapshot = shared.snapshot();
        assert_eq!(snapshot.state, HealthState::Retrying);
        assert_eq!(snapshot.consecutive_failures, 2);
        assert_eq!(snapshot.last_failure_status.as_deref(), Some("timeout"));
        assert!(shared.pause_due(Duration::from_secs(3600)).is_none());
        assert!(
            shared.pause_due(Duration::ZERO).is_some(),
            "failing past pause_after"
        );
        shared.delivered(10);
        assert_eq!(shared.state(), HealthState::Healthy);
        assert!(shared.pause_due(Duration::ZERO).is_none());

        shared.request_pause(PauseRequest {
            reason: "HEC code 4".into(),
            last_status: Some("403".into()),
        });
        assert_eq!(shared.state(), HealthState::Paused);
        assert_eq!(
            shared
                .pause_due(Duration::from_secs(3600))
                .map(|r| r.reason),
            Some("HEC code 4".into())
        );
        shared.pause_recorded();
        assert!(shared.pause_due(Duration::from_secs(3600)).is_none());
        shared.set_paused(false);
        assert_eq!(shared.state(), HealthState::Healthy);
    }

    #[test]
    fn an_operators_resume_clears_a_pause_unless_one_is_waiting_to_be_written() {
        let shared = DestinationShared::new("org_a", "dst_1");
        shared.follow_settings(Some(true));
        assert_eq!(shared.state(), HealthState::Paused);
        shared.follow_settings(None);
        assert_eq!(shared.state(), HealthState::Paused, "settings not there");
        shared.follow_settings(Some(false));
        assert_eq!(shared.state(), HealthState::Healthy, "resumed");

        shared.request_pause(PauseRequest {
            reason: "misconfigured: bad token".into(),
            last_status: None,
        });
        shared.follow_settings(Some(false));
        assert_eq!(
            shared.state(),
            HealthState::Paused,
            "the settings do not show the pause yet"
        );
        shared.pause_recorded();
        shared.follow_settings(Some(false));
        assert_eq!(shared.state(), HealthState::Healthy);
    }

    #[test]
    fn backlog_counts_queued_and_parked_events() {
        let shared = DestinationShared::new("org_a", "dst_1");
        shared.queued(5);
        shared.parked(3);
        assert_eq!(shared.backlog(), 8);
        shared.unparked(10);
        shared.queued(-5);
        assert_eq!(shared.backlog(), 0);
    }

    #[test]
    fn records_are_published_on_change_at_most_every_interval() {
        let shared = DestinationShared::new("org_a", "dst_1");
        shared.failed(&failure("503"));
        let hour = Duration::from_secs(3600);
        assert!(shared.take_publish_due(Duration::from_secs(60), hour));
        shared.failed(&failure("503"));
        assert!(
            !shared.take_publish_due(Duration::from_secs(60), hour),
            "too soon"
        );
        assert!(shared.take_publish_due(Duration::ZERO, hour));
        assert!(
            !shared.take_publish_due(Duration::ZERO, hour),
            "nothing changed"
        );
        assert!(
            shared.take_publish_due(hour, Duration::ZERO),
            "unchanged, but due for a refresh"
        );
    }
}
