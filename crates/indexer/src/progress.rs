//! Is the indexer making progress? The age of the oldest message read but not yet written,
//! and whether writing has stalled.
//!
//! A stall is "messages are waiting and no batch has been written for `stall_after`": an
//! engine that refuses every insert, a writer stuck in retries, a rewind loop. It is reported
//! three ways — `/readyz` (the `indexing` dependency), the metrics
//! `indexer_oldest_unwritten_age_seconds` and `indexer_stalled`, and a warning log line
//! naming the last error — so a stuck indexer is never silent. A backlog alone is not a stall:
//! while batches keep being written, old messages are only lag.
//!
//! Pure bookkeeping (no IO, times passed in) so it is unit-tested below; the consumer thread
//! reports reads and batch ends, the writer reports outcomes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use audit_runtime::Readiness;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::shared::Shared;

/// How often a continuing stall is logged again.
const STALL_LOG_EVERY: Duration = Duration::from_secs(30);

/// Publishes progress every second until shutdown: the metrics, the `indexing` readiness and
/// a warning while stalled.
pub async fn report(
    shared: Arc<Shared>,
    readiness: Readiness,
    stall_after: Duration,
    shutdown: CancellationToken,
) {
    readiness.set("indexing", true, "writing");
    let mut logged_at: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let now = Instant::now();
        let (oldest_ms, stall) = {
            let progress = shared
                .progress
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            (
                progress.oldest_unwritten_ms(),
                progress.stall(now, stall_after),
            )
        };
        let age_secs = oldest_ms.map_or(0.0, |ms| {
            let now_ms = audit_core::event::unix_millis(OffsetDateTime::now_utc());
            (now_ms - ms).max(0) as f64 / 1000.0
        });
        metrics::gauge!("indexer_oldest_unwritten_age_seconds").set(age_secs);
        metrics::gauge!("indexer_stalled").set(if stall.is_some() { 1.0 } else { 0.0 });
        let Some(stall) = stall else {
            if logged_at.take().is_some() {
                tracing::info!("indexing resumed: batches are being written again");
            }
            readiness.set("indexing", true, "writing");
            continue;
        };
        let last_error = stall.last_error.as_deref().unwrap_or("none recorded");
        let detail = format!(
            "no batch written for {} s while messages wait (oldest unwritten message {age_secs:.0} s old); last error: {last_error}",
            stall.for_.as_secs()
        );
        if logged_at.is_none_or(|at| now.saturating_duration_since(at) >= STALL_LOG_EVERY) {
            tracing::warn!(
                stalled_secs = stall.for_.as_secs(),
                oldest_unwritten_age_secs = age_secs,
                last_error,
                "indexing stalled: no batch written while messages wait"
            );
            logged_at = Some(now);
        }
        readiness.set("indexing", false, detail);
    }
}

#[derive(Debug, Default)]
pub struct Progress {
    /// Oldest broker time (unix ms) of the batch being built.
    building: Option<i64>,
    /// Oldest broker time of each ended batch not yet written or abandoned, in batch order.
    ended: VecDeque<Option<i64>>,
    /// Oldest broker time of messages dropped by a rewind or an abandoned batch: they will be
    /// read again, so they still count until the next batch is written.
    carried: Option<i64>,
    /// Since when messages have waited without any batch being written.
    waiting_since: Option<Instant>,
    /// The last failure, for the stall report.
    last_error: Option<String>,
}

/// A stall, as reported.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// How long no batch has been written while messages waited.
    pub for_: Duration,
    pub last_error: Option<String>,
}

impl Progress {
    /// A message was read into the batch being built.
    pub fn read(&mut self, broker_ms: i64, now: Instant) {
        self.building = Some(
            self.building
                .map_or(broker_ms, |oldest| oldest.min(broker_ms)),
        );
        self.waiting_since.get_or_insert(now);
    }

    /// The batch being built ended (handed to the writer).
    pub fn batch_ended(&mut self) {
        self.ended.push_back(self.building.take());
    }

    /// The oldest ended batch was written: progress.
    pub fn batch_written(&mut self, now: Instant) {
        self.ended.pop_front();
        self.carried = None;
        self.last_error = None;
        self.waiting_since = self.oldest_unwritten_ms().map(|_| now);
    }

    /// The oldest ended batch will not be written (stale after a rewind, or dropped on a
    /// rebalance): its messages are read again later.
    pub fn batch_abandoned(&mut self) {
        if let Some(oldest) = self.ended.pop_front().flatten() {
            self.carry(oldest);
        }
    }

    /// A rewind dropped the batch being built (and everything not handed over).
    pub fn rewound(&mut self) {
        if let Some(oldest) = self.building.take() {
            self.carry(oldest);
        }
    }

    /// An insert failed; kept for the stall report.
    pub fn failed(&mut self, error: String) {
        self.last_error = Some(error);
    }

    fn carry(&mut self, oldest: i64) {
        self.carried = Some(self.carried.map_or(oldest, |carried| carried.min(oldest)));
    }

    /// Broker time (unix ms) of the oldest message read and not yet written.
    pub fn oldest_unwritten_ms(&self) -> Option<i64> {
        self.ended
            .iter()
            .flatten()
            .chain(self.building.iter())
            .chain(self.carried.iter())
            .min()
            .copied()
    }

    /// Whether messages have waited longer than `after` without a batch being written.
    pub fn stall(&self, now: Instant, after: Duration) -> Option<Stall> {
        let waited = now.saturating_duration_since(self.waiting_since?);
        (waited >= after && self.oldest_unwritten_ms().is_some()).then(|| Stall {
            for_: waited,
            last_error: self.last_error.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(60);

    #[test]
    fn an_idle_indexer_is_not_stalled_and_has_nothing_unwritten() {
        let progress = Progress::default();
        assert_eq!(progress.oldest_unwritten_ms(), None);
        assert_eq!(progress.stall(Instant::now(), AFTER), None);
    }

    #[test]
    fn the_oldest_unwritten_message_is_tracked_across_batches() {
        let start = Instant::now();
        let mut progress = Progress::default();
        progress.read(2_000, start);
        progress.read(1_000, start);
        progress.batch_ended();
        progress.read(3_000, start);
        assert_eq!(progress.oldest_unwritten_ms(), Some(1_000));
        progress.batch_written(start);
        assert_eq!(progress.oldest_unwritten_ms(), Some(3_000));
        progress.batch_ended();
        progress.batch_written(start);
        assert_eq!(progress.oldest_unwritten_ms(), None);
    }

    #[test]
    fn messages_dropped_by_a_rewind_still_count_until_a_batch_is_written() {
        let start = Instant::now();
        let mut progress = Progress::default();
        progress.read(1_000, start);
        progress.batch_ended();
        progress.read(2_000, start);
        progress.batch_abandoned();
        progress.rewound();
        assert_eq!(progress.oldest_unwritten_ms(), Some(1_000));
        progress.read(1_000, start);
        progress.batch_ended();
        progress.batch_written(start);
        assert_eq!(progress.oldest_unwritten_ms(), None);
    }

    #[test]
    fn a_stall_is_no_write_for_a_while_with_messages_waiting_not_a_backlog() {
        let start = Instant::now();
        let mut progress = Progress::default();
        // A very old message (a backlog) read just now is not a stall.
        progress.read(0, start);
        assert_eq!(progress.stall(start + Duration::from_secs(1), AFTER), None);
        progress.batch_ended();
        progress.failed("Code: 60. UNKNOWN_TABLE".into());
        let later = start + Duration::from_secs(61);
        let stall = progress.stall(later, AFTER).expect("stalled");
        assert_eq!(stall.for_, Duration::from_secs(61));
        assert_eq!(stall.last_error.as_deref(), Some("Code: 60. UNKNOWN_TABLE"));
        // Writing a batch is progress, even with more messages waiting.
        progress.read(5, later);
        progress.batch_written(later);
        assert_eq!(progress.stall(later + Duration::from_secs(59), AFTER), None);
        assert!(
            progress
                .stall(later + Duration::from_secs(60), AFTER)
                .is_some()
        );
    }
}
