//! The writing half: rows streamed into ClickHouse, dead letters to Kafka, then offsets.
//!
//! Each batch's rows go into one open INSERT as they arrive. When a batch ends, ClickHouse
//! finishes its part while the next batch already streams (at most two INSERTs at a time);
//! its offsets are committed once the INSERT succeeded and its dead letters are in Kafka,
//! always in batch order. When an insert fails, the writer aborts what is open and asks the
//! consumer to re-read from the last written offsets after a backoff (exponential with
//! jitter, capped, never giving up): an unavailable ClickHouse stalls the pipeline but never
//! drops or skips anything.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use audit_kafka::{DeadLetter, DeadLetterWriter};
use audit_runtime::Readiness;
use audit_store::{EventInsert, PendingEvent, Store};
use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::consumer::{Batch, DeadMessage, IndexerContext, Piece, Shared};

pub struct Writer {
    pub store: Store,
    pub dead_letters: DeadLetterWriter,
    pub consumer: Arc<BaseConsumer<IndexerContext>>,
    pub shared: Arc<Shared>,
    pub backoff: ExponentialBuilder,
    pub readiness: Readiness,
}

/// The batch whose rows are streaming into an open INSERT.
#[derive(Default)]
struct Open {
    /// Begun with the batch's first row.
    insert: Option<EventInsert>,
    written: Written,
}

/// What a batch's rows left besides the rows themselves.
#[derive(Default)]
struct Written {
    /// Tagged messages that are not canonical events (a gateway bug): dead-lettered.
    rejected: Vec<DeadMessage>,
    /// Rows per organization and retention (`indexer_rows_total`).
    per_org: HashMap<String, HashMap<u16, u64>>,
}

/// A batch whose INSERT ClickHouse is finishing.
struct Finishing {
    ended: Ended,
    end: JoinHandle<audit_store::Result<()>>,
}

/// An ended batch, waiting for its INSERT's outcome.
struct Ended {
    batch: Batch,
    written: Written,
}

enum Next {
    Piece(Option<Piece>),
    Ended(audit_store::Result<()>),
}

impl Writer {
    /// Writes batches until the queue closes (the consumer stopped).
    pub async fn run(self, mut queue: mpsc::Receiver<Piece>) {
        let mut open = Open::default();
        let mut finishing: Option<Finishing> = None;
        // Delays of consecutive failures; reset by a success.
        let mut failures: Option<ExponentialBackoff> = None;
        loop {
            let next = match finishing.as_mut() {
                Some(finishing) => tokio::select! {
                    biased;
                    result = &mut finishing.end => Next::Ended(flatten(result)),
                    piece = queue.recv() => Next::Piece(piece),
                },
                None => Next::Piece(queue.recv().await),
            };
            match next {
                Next::Ended(result) => {
                    if let Some(Finishing { ended, .. }) = finishing.take()
                        && !self.complete(ended, result, &mut failures).await
                    {
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
                    if let Err(error) = self.write(&mut open, &rows, &positions).await {
                        open = Open::default();
                        // The batch before this one is committed first if it made it; if it
                        // failed too, that already rewound.
                        let previous_ok = match finishing.take() {
                            Some(previous) => self.settle(previous, &mut failures).await,
                            None => true,
                        };
                        if previous_ok {
                            self.failed(&error, &mut failures);
                        }
                    }
                }
                Next::Piece(Some(Piece::End { batch, .. })) => {
                    let Open { insert, written } = std::mem::take(&mut open);
                    // Offsets commit in batch order, and at most two INSERTs run at once.
                    if let Some(previous) = finishing.take()
                        && !self.settle(previous, &mut failures).await
                    {
                        // Rewound: this batch is re-read too.
                        self.shared.batch_abandoned();
                        continue;
                    }
                    let end = match insert {
                        Some(insert) => tokio::spawn(insert.end()),
                        None => tokio::spawn(async { Ok(()) }),
                    };
                    let ended = Ended { batch, written };
                    finishing = Some(Finishing { ended, end });
                }
            }
        }
        // The consumer stopped: settle the last batch (an open one without its end is
        // aborted and re-read after a restart).
        if let Some(previous) = finishing.take() {
            self.settle(previous, &mut failures).await;
        }
    }

    /// Waits for a batch's INSERT and completes it. Returns whether it was written.
    async fn settle(
        &self,
        finishing: Finishing,
        failures: &mut Option<ExponentialBackoff>,
    ) -> bool {
        let result = flatten(finishing.end.await);
        self.complete(finishing.ended, result, failures).await
    }

    /// Streams a chunk of rows into the open INSERT.
    async fn write(
        &self,
        open: &mut Open,
        rows: &[PendingEvent],
        positions: &[(i32, i64)],
    ) -> audit_store::Result<()> {
        let insert = match &mut open.insert {
            Some(insert) => insert,
            None => open.insert.insert(self.store.begin_insert().await?),
        };
        for (row, (partition, offset)) in rows.iter().zip(positions) {
            match insert.write(row).await? {
                Ok(()) => open.written.count(row),
                Err(reason) => open.written.rejected.push(DeadMessage {
                    partition: *partition,
                    offset: *offset,
                    key: Some(row.org_id.clone().into_bytes()),
                    payload: row.json.clone(),
                    reason,
                }),
            }
        }
        Ok(())
    }

    /// Settles a batch whose INSERT ended: on success dead letters, then offsets; on failure
    /// a rewind. Returns whether it was written.
    async fn complete(
        &self,
        ended: Ended,
        result: audit_store::Result<()>,
        failures: &mut Option<ExponentialBackoff>,
    ) -> bool {
        let Ended { batch, written } = ended;
        if let Err(error) = result {
            self.shared.batch_abandoned();
            self.failed(&error, failures);
            return false;
        }
        *failures = None;
        self.readiness.set("clickhouse", true, "inserts succeed");
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

    /// An insert failed: everything since the last written batch is re-read after a backoff.
    fn failed(&self, error: &audit_store::Error, failures: &mut Option<ExponentialBackoff>) {
        let delay = failures
            .get_or_insert_with(|| self.backoff.build())
            .next()
            .unwrap_or_default();
        self.shared.request_rewind(Instant::now() + delay);
        metrics::counter!("indexer_retries_total", "target" => "clickhouse").increment(1);
        self.readiness
            .set("clickhouse", false, format!("insert failing: {error}"));
        tracing::warn!(%error, ?delay, "insert failed; re-reading from the last written offsets after the backoff");
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

impl Written {
    fn count(&mut self, row: &PendingEvent) {
        let classes = match self.per_org.get_mut(&row.org_id) {
            Some(classes) => classes,
            None => self.per_org.entry(row.org_id.clone()).or_default(),
        };
        *classes.entry(row.retention_days).or_default() += 1;
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

/// A finished end task's result (a panicked task counts as a failed insert).
fn flatten(
    joined: Result<audit_store::Result<()>, tokio::task::JoinError>,
) -> audit_store::Result<()> {
    joined.unwrap_or_else(|error| Err(audit_store::Error::Interrupted(error.to_string())))
}
