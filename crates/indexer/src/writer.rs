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
//!
//! The writer's parts: `batch` holds a batch's state from its first row to its commit,
//! `outcome` settles a batch once its INSERTs ended (success, isolation of refused rows, or a
//! backoff and rewind), `sealing` connects the writer to the tamper-evidence sealer. This
//! file keeps the loop that interleaves them.

mod batch;
mod outcome;
mod sealing;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use audit_integrity::leaf;
use audit_kafka::DeadLetterWriter;
use audit_runtime::Readiness;
use audit_store::{PendingEvent, Store};
use backon::{ExponentialBackoff, ExponentialBuilder};
use rdkafka::consumer::CommitMode;
use tokio::sync::mpsc;

use crate::consumer::IndexerConsumer;
use crate::sealer::{OpenLeaf, SealOutcome, Sealer};
use crate::shared::{DeadMessage, Piece, Shared};
use batch::{Ended, Finishing, Open, end_all, flatten};
pub use outcome::RefusedRows;
use sealing::{Sealing, in_flight};

pub struct Writer {
    pub store: Store,
    pub dead_letters: DeadLetterWriter,
    pub consumer: Arc<IndexerConsumer>,
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
                            OpenLeaf::new(
                                *offset,
                                row.leaf.unwrap_or_else(|| leaf(&row.json)),
                                key,
                            ),
                        );
                    }
                }
                Err(skipped) => open.written.rejected.push(dead(skipped.to_string())),
            }
        }
        Ok(())
    }
}
