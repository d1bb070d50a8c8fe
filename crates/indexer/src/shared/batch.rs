//! What travels from the consumer thread to the writer: a batch's rows in chunks
//! ([`Piece::Rows`]) then its end ([`Piece::End`] with the [`Batch`] bookkeeping), and the
//! messages dead-lettered with it. Plain data and the rule of when a batch ends; no locks.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use audit_store::PendingEvent;

use crate::config::BatchConfig;

/// A message that failed validation, to be dead-lettered before its offset is committed.
#[derive(Debug, Clone)]
pub struct DeadMessage {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// What the consumer thread hands the writer, in consumption order.
#[derive(Debug)]
pub enum Piece {
    /// Decoded rows of the open batch, with the partition and offset of each.
    Rows {
        epoch: u64,
        rows: Vec<PendingEvent>,
        positions: Vec<(i32, i64)>,
    },
    /// The open batch is complete: finish its insert, dead-letter, commit.
    End { epoch: u64, batch: Batch },
}

impl Piece {
    /// The rewind generation the piece belongs to; older ones are discarded.
    pub fn epoch(&self) -> u64 {
        match self {
            Self::Rows { epoch, .. } | Self::End { epoch, .. } => *epoch,
        }
    }
}

/// A batch's bookkeeping; its rows travel separately in [`Piece::Rows`].
#[derive(Debug, Default)]
pub struct Batch {
    /// Rows handed over for this batch.
    pub rows: usize,
    pub dead: Vec<DeadMessage>,
    /// Per partition: first and last offset contained.
    pub ranges: BTreeMap<i32, (i64, i64)>,
    /// Per partition: the epoch its messages were read under (their answers count only while
    /// it is current); absent for a partition that was not owned.
    pub epochs: BTreeMap<i32, u64>,
    pub bytes: usize,
    pub started: Option<Instant>,
}

impl Batch {
    pub(super) fn track(&mut self, partition: i32, offset: i64, epoch: Option<u64>) {
        self.ranges
            .entry(partition)
            .and_modify(|range| range.1 = offset)
            .or_insert((offset, offset));
        if let Some(epoch) = epoch {
            self.epochs.insert(partition, epoch);
        }
        self.started.get_or_insert_with(Instant::now);
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether the batch should end now. `behind`: the newest message read was already older
    /// than `max_wait` when read. `row_limit`: the writer's current cap while it isolates rows
    /// ClickHouse refused (see [`Shared::row_limit`]).
    pub(super) fn due(&self, config: &BatchConfig, behind: bool, row_limit: usize) -> bool {
        let wait = Duration::from_millis(if behind {
            config.max_wait_behind_ms
        } else {
            config.max_wait_ms
        });
        !self.is_empty()
            && (self.rows + self.dead.len() >= config.max_rows.min(row_limit)
                || self.bytes >= config.max_bytes
                || self
                    .started
                    .is_some_and(|started| started.elapsed() >= wait))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_end_on_rows_bytes_or_age_and_wait_longer_while_behind() {
        let config = BatchConfig {
            max_rows: 3,
            max_bytes: 1_000,
            max_wait_ms: 20,
            max_wait_behind_ms: 10_000,
            queue_chunks: 1,
            max_partitions_per_insert: 64,
        };
        let mut batch = Batch::default();
        assert!(
            !batch.due(&config, false, usize::MAX),
            "an empty batch never ends"
        );
        batch.track(0, 1, None);
        batch.rows = 1;
        assert!(!batch.due(&config, false, usize::MAX));
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            batch.due(&config, false, usize::MAX),
            "max_wait while keeping up"
        );
        assert!(
            !batch.due(&config, true, usize::MAX),
            "max_wait_behind while behind"
        );
        batch.rows = 3;
        assert!(batch.due(&config, true, usize::MAX), "max_rows");
        batch.rows = 1;
        batch.bytes = 1_000;
        assert!(batch.due(&config, true, usize::MAX), "max_bytes");
        batch.bytes = 0;
        assert!(
            batch.due(&config, true, 1),
            "the writer's cap while it isolates refused rows"
        );
    }
}
