//! What happens once a batch's INSERTs ended: on success its leaves go to the sealer, its dead
//! letters to Kafka and its offsets are committed; a refusal about the data halves the batch
//! size until the refused row is alone and dead-letters it, within [`RefusedRows`]' budget;
//! any other failure rewinds after a backoff. The rules are those of the [module
//! doc](super).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use audit_kafka::DeadLetter;
use backon::{BackoffBuilder, ExponentialBackoff, Retryable};
use rdkafka::consumer::CommitMode;

use super::Writer;
use super::batch::{Ended, Finishing, Written, flatten};
use crate::shared::{Batch, DeadMessage};

impl Writer {
    /// Waits for a batch's INSERTs and completes it. Returns whether it was written.
    pub(super) async fn settle(
        &self,
        finishing: Finishing,
        failures: &mut Option<ExponentialBackoff>,
    ) -> bool {
        let result = flatten(finishing.end.await);
        self.complete(finishing.ended, result, failures).await
    }

    /// Settles a batch whose INSERTs ended: on success dead letters, then offsets; on failure
    /// isolation (a refusal about the data) or a rewind after a backoff. Returns whether it
    /// was written.
    pub(super) async fn complete(
        &self,
        ended: Ended,
        result: audit_store::Result<()>,
        failures: &mut Option<ExponentialBackoff>,
    ) -> bool {
        let Ended { batch, mut written } = ended;
        let error = match result {
            Ok(()) => {
                *failures = None;
                self.readiness.set("clickhouse", true, "inserts succeed");
                self.grow_row_limit();
                return self.written(batch, written, failures).await;
            }
            Err(error) => error,
        };
        let Some(reason) = error.data_refusal() else {
            self.shared.batch_abandoned();
            self.failed(&error.to_string(), failures);
            return false;
        };
        if batch.rows > 1 {
            // Halve until the offending rows are alone; the engine is healthy, so at once.
            let limit = batch.rows / 2;
            self.shared.set_row_limit(limit);
            self.shared.batch_abandoned();
            self.shared.request_rewind(Instant::now());
            self.shared.record_failure(reason);
            metrics::counter!("indexer_isolation_rewinds_total").increment(1);
            tracing::warn!(rows = batch.rows, limit, reason = %excerpt(reason), "ClickHouse refused a batch because of its content; re-reading it in smaller batches to isolate the refused rows");
            return false;
        }
        let only_row = written.first_row.take().filter(|_| batch.rows == 1);
        let allowed = lock(&self.refused).allow(Instant::now());
        match only_row {
            Some(mut row) if allowed => {
                metrics::counter!("indexer_refused_rows_total").increment(1);
                tracing::warn!(
                    partition = row.partition,
                    offset = row.offset,
                    reason = %excerpt(reason),
                    "ClickHouse refused a row because of its content; dead-lettered, indexing goes on"
                );
                row.reason = format!("ClickHouse refused the row: {reason}");
                written.rejected.push(row);
                // Not stored, so not sealed.
                written.leaves.clear();
                self.written(batch, written, failures).await
            }
            _ => {
                // Too many refused rows for bad events, or nothing to isolate: treat it as
                // the engine's problem and back off (the stall is reported).
                self.shared.batch_abandoned();
                self.failed(
                    &format!("{reason} (more than {} rows refused in a minute: not dead-lettering, retrying)", lock(&self.refused).max_per_minute),
                    failures,
                );
                false
            }
        }
    }

    /// A batch was stored (or its only row dead-lettered): leaves to the sealer, dead letters,
    /// then offsets. False when the sealer could not take the leaves (its chains could not be
    /// loaded): the batch is then re-read like a failed one, so no leaf is ever lost.
    async fn written(
        &self,
        batch: Batch,
        mut written: Written,
        failures: &mut Option<ExponentialBackoff>,
    ) -> bool {
        if let Some(sealer) = &self.sealer {
            let leaves = std::mem::take(&mut written.leaves);
            let mut sealer = sealer.lock().await;
            if let Err(error) = sealer.batch_written(&batch.ranges, leaves).await {
                self.shared.batch_abandoned();
                self.failed(&format!("loading integrity chains: {error}"), failures);
                return false;
            }
            let open = sealer.open_leaves();
            if open >= self.max_open_leaves {
                self.seal_due.store(true, Ordering::Relaxed);
            }
            if open >= self.max_open_leaves.saturating_mul(2) {
                self.seal_behind.store(true, Ordering::Relaxed);
            }
        }
        self.write_dead_letters(&batch.dead).await;
        self.write_dead_letters(&written.rejected).await;
        let offsets = self.shared.batch_written(&batch);
        audit_kafka::consumer::commit(
            &self.consumer,
            &self.shared.topic,
            &offsets,
            CommitMode::Async,
        );
        metrics::counter!("indexer_rows_written_total").increment(batch.rows as u64);
        if let Some(started) = batch.started {
            // From the batch's first message read to its offsets committed.
            metrics::histogram!("indexer_batch_seconds").record(started.elapsed().as_secs_f64());
        }
        written.record();
        true
    }

    /// After a success, batches may grow back towards `max_rows`.
    fn grow_row_limit(&self) {
        let limit = self.shared.row_limit();
        if limit == usize::MAX {
            return;
        }
        let grown = limit.saturating_mul(2);
        // Past any configurable batch size: no cap.
        self.shared
            .set_row_limit(if grown > 1 << 24 { usize::MAX } else { grown });
    }

    /// An insert failed for the engine's reasons: everything since the last written batch is
    /// re-read after a backoff.
    fn failed(&self, error: &str, failures: &mut Option<ExponentialBackoff>) {
        let delay = failures
            .get_or_insert_with(|| self.backoff.build())
            .next()
            .unwrap_or_default();
        self.shared.request_rewind(Instant::now() + delay);
        self.shared.record_failure(error);
        metrics::counter!("indexer_retries_total", "target" => "clickhouse").increment(1);
        self.readiness.set(
            "clickhouse",
            false,
            format!("insert failing: {}", excerpt(error)),
        );
        tracing::warn!(error = %excerpt(error), ?delay, "insert failed; re-reading from the last written offsets after the backoff");
    }

    async fn write_dead_letters(&self, dead_messages: &[DeadMessage]) {
        for dead in dead_messages {
            let send = || async {
                self.dead_letters
                    .send(
                        dead.key.as_deref(),
                        &dead.payload,
                        DeadLetter {
                            stage: "indexer",
                            reason: dead.reason.clone(),
                            source: Some((self.shared.topic.clone(), dead.partition, dead.offset)),
                            ..DeadLetter::default()
                        },
                    )
                    .await
            };
            let _ = send
                .retry(self.backoff)
                .notify(|error, delay| {
                    metrics::counter!("indexer_retries_total", "target" => "dead_letter")
                        .increment(1);
                    tracing::warn!(%error, ?delay, "dead-letter write failed; retrying");
                })
                .await;
        }
    }
}

/// Rows ClickHouse refused for their content and that were dead-lettered in the last minute.
#[derive(Debug)]
pub struct RefusedRows {
    pub max_per_minute: usize,
    recent: VecDeque<Instant>,
}

impl RefusedRows {
    pub fn new(max_per_minute: usize) -> Self {
        Self {
            max_per_minute,
            recent: VecDeque::new(),
        }
    }

    /// Whether one more refused row may be dead-lettered now (and counts it if so).
    fn allow(&mut self, now: Instant) -> bool {
        while self
            .recent
            .front()
            .is_some_and(|at| now.saturating_duration_since(*at) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.max_per_minute {
            return false;
        }
        self.recent.push_back(now);
        true
    }
}

/// The start of a (possibly long) engine message, for logs and readiness.
fn excerpt(text: &str) -> &str {
    match text.char_indices().nth(300) {
        Some((index, _)) => &text[..index],
        None => text,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_rows_are_dead_lettered_only_up_to_the_budget_per_minute() {
        let start = Instant::now();
        let mut refused = RefusedRows::new(2);
        assert!(refused.allow(start));
        assert!(refused.allow(start + Duration::from_secs(1)));
        assert!(
            !refused.allow(start + Duration::from_secs(2)),
            "a third refused row within a minute looks like a schema problem"
        );
        assert!(refused.allow(start + Duration::from_secs(61)));
    }

    #[test]
    fn excerpts_cut_on_character_boundaries() {
        let long = "é".repeat(400);
        assert_eq!(excerpt(&long).chars().count(), 300);
        assert_eq!(excerpt("short"), "short");
    }
}
