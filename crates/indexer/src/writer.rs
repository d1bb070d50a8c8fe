//! The writing half: rows streamed into ClickHouse, dead letters to Kafka, then offsets.
//!
//! Each batch's rows go into one open INSERT as they arrive. When a batch ends, ClickHouse
//! finishes its part while the next batch already streams (at most two batches at a time);
//! its offsets are committed once its INSERTs succeeded and its dead letters are in Kafka,
//! always in batch order.
//!
//! # No single row can stop indexing
//! * **Engine limits.** ClickHouse refuses a whole INSERT whose rows span more than
//!   `max_partitions_per_insert_block` table partitions (months of `occurred_at`): a historical
//!   backfill did that. The writer ends the open INSERT and begins another before a row would
//!   add one partition too many (`batch.max_partitions_per_insert`), so no mix of valid events
//!   reaches the limit; a batch's INSERTs all succeed before its offsets are committed.
//! * **Refusals about the data** ([`audit_store::Error::data_refusal`]: a constraint, a value
//!   the engine cannot store…) are not retried as they are. The writer halves the batch size
//!   ([`Shared::set_row_limit`]) and re-reads at once, until the offending row is alone in its
//!   batch; that row is dead-lettered with the engine's reason and its offset committed, the
//!   rest is indexed, and the batch size doubles back with each success. More than
//!   `retry.max_refused_rows_per_minute` such rows in a minute looks like a schema problem, not
//!   bad events: the writer stops dead-lettering and backs off instead (a visible stall).
//! * **Anything else** (ClickHouse down, overloaded, a missing table) is about the engine's
//!   health: everything since the last written batch is re-read after a backoff (exponential
//!   with jitter, capped, never giving up). Nothing is dropped or skipped; a stall shows in
//!   `/readyz`, the metrics and the log ([`crate::progress`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit_kafka::{DeadLetter, DeadLetterWriter};
use audit_runtime::Readiness;
use audit_store::{EventInsert, PendingEvent, Store};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::consumer::IndexerContext;
use crate::sealer::{BatchLeaves, OpenLeaf, SealOutcome, Sealer};
use crate::shared::{Batch, DeadMessage, Piece, Shared};

pub struct Writer {
    pub store: Store,
    pub dead_letters: DeadLetterWriter,
    pub consumer: Arc<BaseConsumer<IndexerContext>>,
    pub shared: Arc<Shared>,
    pub backoff: ExponentialBuilder,
    pub readiness: Readiness,
    /// Most table partitions one INSERT may touch.
    pub max_partitions_per_insert: usize,
    /// Rows refused for their content and dead-lettered recently (the circuit breaker).
    pub refused: Mutex<RefusedRows>,
    /// Tamper evidence: seals written batches into signed window digests (`None`: off).
    pub sealer: Option<Arc<tokio::sync::Mutex<Sealer>>>,
    /// How often the sealer closes a window.
    pub seal_every: Duration,
    /// Seal early once this many leaves wait (`integrity.max_open_leaves`); wait for the seal
    /// in flight once twice as many do.
    pub max_open_leaves: usize,
    /// A written batch brought the waiting leaves to `max_open_leaves`: seal as soon as no
    /// seal is in flight.
    pub seal_due: AtomicBool,
    /// … to twice that: wait for the seal in flight before writing on.
    pub seal_behind: AtomicBool,
}

/// The seal storing and publishing its windows while the writer goes on.
type Sealing = Option<JoinHandle<SealOutcome>>;

/// The batch whose rows are streaming into an open INSERT.
#[derive(Default)]
struct Open {
    /// Begun with the batch's first row, and again after each partition split.
    insert: Option<EventInsert>,
    /// Table partitions the open INSERT touches.
    partitions: HashSet<u32>,
    /// INSERTs of this batch already ended by a partition split, finishing meanwhile.
    sealed: Vec<JoinHandle<audit_store::Result<()>>>,
    /// Why streaming failed: the batch's end settles it as failed.
    error: Option<audit_store::Error>,
    written: Written,
}

impl Open {
    /// Aborts whatever is streaming (nothing of it is committed; a sealed INSERT that made it
    /// anyway is a copy the table collapses).
    fn abort(&mut self) {
        self.insert = None;
        for sealed in self.sealed.drain(..) {
            sealed.abort();
        }
    }
}

/// What a batch's rows left besides the rows themselves.
#[derive(Default)]
struct Written {
    /// Tagged messages that are not canonical events (a gateway bug), and rows ClickHouse
    /// refused: dead-lettered.
    rejected: Vec<DeadMessage>,
    /// Rows per organization and retention (`indexer_rows_total`).
    per_org: HashMap<String, HashMap<u16, u64>>,
    /// The batch's first row, kept so that it can be dead-lettered when it is the batch's only
    /// row and ClickHouse refuses it.
    first_row: Option<DeadMessage>,
    /// The leaves of the rows written (with sealing on).
    leaves: BatchLeaves,
}

/// A batch whose INSERTs ClickHouse is finishing.
struct Finishing {
    ended: Ended,
    end: JoinHandle<audit_store::Result<()>>,
}

/// An ended batch, waiting for its INSERTs' outcome.
struct Ended {
    batch: Batch,
    written: Written,
}

enum Next {
    Piece(Option<Piece>),
    Ended(audit_store::Result<()>),
    Seal,
    Sealed(Result<SealOutcome, tokio::task::JoinError>),
}

impl Writer {
    /// Writes batches until the queue closes (the consumer stopped).
    pub async fn run(self, mut queue: mpsc::Receiver<Piece>) {
        let mut open = Open::default();
        let mut finishing: Option<Finishing> = None;
        // Delays of consecutive failures; reset by a success.
        let mut failures: Option<ExponentialBackoff> = None;
        let mut seal_tick = tokio::time::interval(self.seal_every);
        seal_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        seal_tick.reset();
        let mut sealing: Sealing = None;
        loop {
            if self.seal_behind.swap(false, Ordering::Relaxed)
                && let Some(task) = sealing.take()
            {
                // Sealing is slower than writing: bound the waiting leaves.
                self.sealed(task.await, CommitMode::Async).await;
            }
            if sealing.is_none() && self.seal_due.swap(false, Ordering::Relaxed) {
                // A backlog: close the windows now rather than hold its leaves for a whole window.
                sealing = self.begin_seal().await;
            }
            let next = match finishing.as_mut() {
                Some(finishing) => tokio::select! {
                    biased;
                    result = &mut finishing.end => Next::Ended(flatten(result)),
                    outcome = in_flight(&mut sealing) => Next::Sealed(outcome),
                    piece = queue.recv() => Next::Piece(piece),
                    _ = seal_tick.tick(), if self.sealer.is_some() => Next::Seal,
                },
                None => tokio::select! {
                    outcome = in_flight(&mut sealing) => Next::Sealed(outcome),
                    piece = queue.recv() => Next::Piece(piece),
                    _ = seal_tick.tick(), if self.sealer.is_some() => Next::Seal,
                },
            };
            match next {
                Next::Seal if sealing.is_some() => {} // the one in flight closes the window
                Next::Seal => sealing = self.begin_seal().await,
                Next::Sealed(outcome) => {
                    sealing = None;
                    self.sealed(outcome, CommitMode::Async).await;
                }
                Next::Ended(result) => {
                    if let Some(Finishing { ended, .. }) = finishing.take()
                        && !self.complete(ended, result, &mut failures).await
                    {
                        open.abort();
                        open = Open::default();
                    }
                }
                Next::Piece(None) => break,
                Next::Piece(Some(piece)) if piece.epoch() < self.shared.epoch() => {
                    // Handed over before a rewind: it will be read again.
                    if matches!(piece, Piece::End { .. }) {
                        self.shared.batch_abandoned();
                    }
                }
                Next::Piece(Some(Piece::Rows {
                    rows, positions, ..
                })) => {
                    if open.error.is_some() {
                        continue; // the batch already failed; its end settles it
                    }
                    if let Err(error) = self.write(&mut open, &rows, &positions).await {
                        open.abort();
                        open.error = Some(error);
                    }
                }
                Next::Piece(Some(Piece::End { batch, .. })) => {
                    let mut ending = std::mem::take(&mut open);
                    // Offsets commit in batch order, and at most two batches run at once.
                    if let Some(previous) = finishing.take()
                        && !self.settle(previous, &mut failures).await
                    {
                        // Rewound: this batch is re-read too.
                        ending.abort();
                        self.shared.batch_abandoned();
                        continue;
                    }
                    let end = end_all(ending.insert.take(), ending.sealed, ending.error);
                    let ended = Ended {
                        batch,
                        written: ending.written,
                    };
                    finishing = Some(Finishing { ended, end });
                }
            }
        }
        // The consumer stopped: settle the last batch (an open one without its end is
        // aborted and re-read after a restart), and seal what was written so a restart
        // re-reads nothing.
        if let Some(previous) = finishing.take() {
            self.settle(previous, &mut failures).await;
        }
        if let Some(task) = sealing.take() {
            self.sealed(task.await, CommitMode::Async).await;
        }
        if let Some(sealer) = &self.sealer {
            let sealed = sealer
                .lock()
                .await
                .seal(time::OffsetDateTime::now_utc())
                .await;
            self.commit_sealed(&sealed, CommitMode::Sync);
        }
    }

    /// Closes the windows of every owned partition and starts storing and publishing them.
    async fn begin_seal(&self) -> Sealing {
        let sealer = self.sealer.as_ref()?;
        let job = sealer.lock().await.begin(time::OffsetDateTime::now_utc());
        Some(tokio::spawn(job.run()))
    }

    /// A seal ended: moves the boundaries and commits offsets up to them.
    async fn sealed(&self, outcome: Result<SealOutcome, tokio::task::JoinError>, mode: CommitMode) {
        let Some(sealer) = &self.sealer else {
            return;
        };
        let mut sealer = sealer.lock().await;
        let sealed = match outcome {
            Ok(outcome) => sealer.finish(outcome),
            Err(error) => {
                tracing::error!(%error, "the sealing task failed; its windows are sealed again by the next seal");
                sealer.abandon();
                return;
            }
        };
        drop(sealer);
        self.commit_sealed(&sealed, mode);
    }

    /// Commits offsets up to the new boundaries.
    fn commit_sealed(&self, sealed: &[(i32, i64)], mode: CommitMode) {
        let partitions: Vec<i32> = sealed.iter().map(|(partition, _)| *partition).collect();
        let offsets = self.shared.acked_offsets(&partitions);
        if offsets.count() > 0
            && let Err(error) = self.consumer.commit(&offsets, mode)
        {
            tracing::warn!(%error, "offset commit after a seal failed; the next one covers it");
        }
    }

    /// Waits for a batch's INSERTs and completes it. Returns whether it was written.
    async fn settle(
        &self,
        finishing: Finishing,
        failures: &mut Option<ExponentialBackoff>,
    ) -> bool {
        let result = flatten(finishing.end.await);
        self.complete(finishing.ended, result, failures).await
    }

    /// Streams a chunk of rows into the open INSERT, beginning another INSERT before a row
    /// would make it touch one partition too many.
    async fn write(
        &self,
        open: &mut Open,
        rows: &[PendingEvent],
        positions: &[(i32, i64)],
    ) -> audit_store::Result<()> {
        for (row, (partition, offset)) in rows.iter().zip(positions) {
            if !open.partitions.contains(&row.partition)
                && open.partitions.len() >= self.max_partitions_per_insert
                && let Some(full) = open.insert.take()
            {
                metrics::counter!("indexer_insert_splits_total").increment(1);
                open.sealed.push(tokio::spawn(full.end()));
                open.partitions.clear();
            }
            let insert = match &mut open.insert {
                Some(insert) => insert,
                None => open.insert.insert(self.store.begin_insert().await?),
            };
            open.partitions.insert(row.partition);
            let dead = |reason: String| DeadMessage {
                partition: *partition,
                offset: *offset,
                key: Some(row.org_id.clone().into_bytes()),
                payload: row.json.clone(),
                reason,
            };
            if open.written.first_row.is_none() {
                open.written.first_row = Some(dead(String::new()));
            }
            match insert.write(row).await? {
                Ok(key) => {
                    open.written.count(row);
                    if self.sealer.is_some() {
                        open.written.leaf(
                            *partition,
                            &row.org_id,
                            OpenLeaf::new(*offset, &row.json, key),
                        );
                    }
                }
                Err(skipped) => open.written.rejected.push(dead(skipped.to_string())),
            }
        }
        Ok(())
    }

    /// Settles a batch whose INSERTs ended: on success dead letters, then offsets; on failure
    /// isolation (a refusal about the data) or a rewind after a backoff. Returns whether it
    /// was written.
    async fn complete(
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
        if offsets.count() > 0
            && let Err(error) = self.consumer.commit(&offsets, CommitMode::Async)
        {
            tracing::warn!(%error, "offset commit could not be queued; the next one covers it");
        }
        drop(offsets);
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

impl Written {
    fn count(&mut self, row: &PendingEvent) {
        let classes = match self.per_org.get_mut(&row.org_id) {
            Some(classes) => classes,
            None => self.per_org.entry(row.org_id.clone()).or_default(),
        };
        *classes.entry(row.retention_days).or_default() += 1;
    }

    /// Keeps a written row's leaf (per partition and organization, in offset order).
    fn leaf(&mut self, partition: i32, org_id: &str, leaf: OpenLeaf) {
        let orgs = self.leaves.entry(partition).or_default();
        match orgs.get_mut(org_id) {
            Some(leaves) => leaves.push(leaf),
            None => {
                orgs.insert(org_id.to_string(), vec![leaf]);
            }
        }
    }

    /// `indexer_rows_total{org_id, retention_days}`: rows per organization per retention class.
    fn record(self) {
        for (org, classes) in self.per_org {
            for (retention, count) in classes {
                metrics::counter!("indexer_rows_total", "org_id" => org.clone(), "retention_days" => retention.to_string())
                    .increment(count);
            }
        }
    }
}

/// One task ending all INSERTs of a batch: Ok when every one stored its rows (a failed
/// stream fails the batch at once).
fn end_all(
    last: Option<EventInsert>,
    mut ends: Vec<JoinHandle<audit_store::Result<()>>>,
    failed: Option<audit_store::Error>,
) -> JoinHandle<audit_store::Result<()>> {
    if let Some(error) = failed {
        return tokio::spawn(async move { Err(error) });
    }
    if let Some(last) = last {
        ends.push(tokio::spawn(last.end()));
    }
    tokio::spawn(async move {
        let mut outcome = Ok(());
        for end in ends {
            let result = flatten(end.await);
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    })
}

/// A finished end task's result (a panicked task counts as a failed insert).
/// The outcome of the seal in flight; pending forever when there is none.
async fn in_flight(sealing: &mut Sealing) -> Result<SealOutcome, tokio::task::JoinError> {
    match sealing {
        Some(task) => task.await,
        None => std::future::pending().await,
    }
}

fn flatten(
    joined: Result<audit_store::Result<()>, tokio::task::JoinError>,
) -> audit_store::Result<()> {
    joined.unwrap_or_else(|error| Err(audit_store::Error::Interrupted(error.to_string())))
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
