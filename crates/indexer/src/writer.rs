//! The writing half: dead letters to Kafka, rows to ClickHouse, then offsets.
//!
//! Each batch is retried until it succeeds (exponential backoff with jitter, capped): an
//! unavailable ClickHouse or Kafka stalls the pipeline — consumption pauses upstream — but
//! never drops or skips anything. Retrying the same batch reuses its deduplication token.

use std::sync::Arc;
use std::time::Instant;

use audit_kafka::{DeadLetter, DeadLetterWriter};
use audit_runtime::Readiness;
use audit_store::Store;
use backon::{ExponentialBuilder, Retryable};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use tokio::sync::mpsc;

use crate::consumer::{Batch, DeadMessage, IndexerContext, Shared};

pub struct Writer {
    pub store: Store,
    pub dead_letters: DeadLetterWriter,
    pub consumer: Arc<BaseConsumer<IndexerContext>>,
    pub shared: Arc<Shared>,
    pub backoff: ExponentialBuilder,
    pub readiness: Readiness,
}

impl Writer {
    /// Writes batches until the queue closes (the consumer stopped).
    pub async fn run(self, mut queue: mpsc::Receiver<Batch>) {
        while let Some(batch) = queue.recv().await {
            let started = Instant::now();
            self.write_dead_letters(&batch.dead).await;
            let undecodable = self.insert_rows(&batch).await;
            if !undecodable.is_empty() {
                // A tagged message that is not a canonical event (a gateway bug): dead-letter it.
                let dead: Vec<DeadMessage> = undecodable
                    .into_iter()
                    .filter_map(|(index, reason)| {
                        let row = batch.rows.get(index)?;
                        let (partition, offset) = *batch.row_positions.get(index)?;
                        Some(DeadMessage {
                            partition,
                            offset,
                            key: Some(row.org_id.clone().into_bytes()),
                            payload: row.json.clone(),
                            reason,
                        })
                    })
                    .collect();
                self.write_dead_letters(&dead).await;
            }
            let offsets = self.shared.batch_written(&batch);
            if offsets.count() > 0
                && let Err(error) = self.consumer.commit(&offsets, CommitMode::Async)
            {
                tracing::warn!(%error, "offset commit could not be queued; the next one covers it");
            }
            drop(offsets);
            metrics::counter!("indexer_rows_written_total").increment(batch.rows.len() as u64);
            metrics::histogram!("indexer_batch_seconds").record(started.elapsed().as_secs_f64());
            record_rows_per_org(&batch);
        }
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

    /// Inserts the batch's events; returns the ones that could not be decoded.
    async fn insert_rows(&self, batch: &Batch) -> Vec<(usize, String)> {
        if batch.rows.is_empty() {
            return Vec::new();
        }
        let token = batch.dedup_token();
        let insert = || self.store.insert_pending(&batch.rows, &token);
        let result = insert
            .retry(self.backoff)
            .notify(|error, delay| {
                metrics::counter!("indexer_retries_total", "target" => "clickhouse").increment(1);
                self.readiness.set("clickhouse", false, format!("insert failing: {error}"));
                tracing::warn!(%error, ?delay, rows = batch.rows.len(), "insert failed; retrying the same batch");
            })
            .await;
        match result {
            Ok(undecodable) => {
                self.readiness.set("clickhouse", true, "inserts succeed");
                undecodable
            }
            // The backoff never gives up, so this is not reached; nothing was inserted.
            Err(_) => Vec::new(),
        }
    }
}

/// `indexer_rows_total{org_id, retention_days}`: rows per organization per retention class.
fn record_rows_per_org(batch: &Batch) {
    let mut counts: std::collections::HashMap<(&str, u16), u64> = std::collections::HashMap::new();
    for row in &batch.rows {
        *counts
            .entry((row.org_id.as_str(), row.retention_days))
            .or_default() += 1;
    }
    for ((org, retention), count) in counts {
        metrics::counter!("indexer_rows_total", "org_id" => org.to_string(), "retention_days" => retention.to_string())
            .increment(count);
    }
}
