//! A batch's state in the writer, from its first row to its offsets commit: the INSERTs its
//! rows stream into ([`Open`]), what its rows left besides themselves ([`Written`]: rejected
//! rows, counts per organization, integrity leaves), and the INSERTs ClickHouse is finishing
//! once it ended ([`Finishing`]). Separate from the loop so that each state's fields are read
//! in one place.

use std::collections::{HashMap, HashSet};

use audit_store::{EventInsert, PendingEvent};
use tokio::task::JoinHandle;

use crate::sealer::{BatchLeaves, OpenLeaf};
use crate::shared::{Batch, DeadMessage};

/// The batch whose rows are streaming into an open INSERT.
#[derive(Default)]
pub(super) struct Open {
    /// Begun with the batch's first row, and again after each partition split.
    pub(super) insert: Option<EventInsert>,
    /// Table partitions the open INSERT touches.
    pub(super) partitions: HashSet<u32>,
    /// INSERTs of this batch already ended by a partition split, finishing meanwhile.
    pub(super) sealed: Vec<JoinHandle<audit_store::Result<()>>>,
    /// Why streaming failed: the batch's end settles it as failed.
    pub(super) error: Option<audit_store::Error>,
    pub(super) written: Written,
}

impl Open {
    /// Aborts whatever is streaming (nothing of it is committed; a sealed INSERT that made it
    /// anyway is a copy the table collapses).
    pub(super) fn abort(&mut self) {
        self.insert = None;
        for sealed in self.sealed.drain(..) {
            sealed.abort();
        }
    }
}

/// What a batch's rows left besides the rows themselves.
#[derive(Default)]
pub(super) struct Written {
    /// Tagged messages that are not canonical events (a gateway bug), and rows ClickHouse
    /// refused: dead-lettered.
    pub(super) rejected: Vec<DeadMessage>,
    /// Rows per organization and retention (`indexer_rows_total`).
    pub(super) per_org: HashMap<String, HashMap<u16, u64>>,
    /// The batch's first row, kept so that it can be dead-lettered when it is the batch's only
    /// row and ClickHouse refuses it.
    pub(super) first_row: Option<DeadMessage>,
    /// The leaves of the rows written (with sealing on).
    pub(super) leaves: BatchLeaves,
}

/// A batch whose INSERTs ClickHouse is finishing.
pub(super) struct Finishing {
    pub(super) ended: Ended,
    pub(super) end: JoinHandle<audit_store::Result<()>>,
}

/// An ended batch, waiting for its INSERTs' outcome.
pub(super) struct Ended {
    pub(super) batch: Batch,
    pub(super) written: Written,
}

impl Written {
    pub(super) fn count(&mut self, row: &PendingEvent) {
        let classes = match self.per_org.get_mut(&row.org_id) {
            Some(classes) => classes,
            None => self.per_org.entry(row.org_id.clone()).or_default(),
        };
        *classes.entry(row.retention_days).or_default() += 1;
    }

    /// Keeps a written row's leaf (per partition and organization, in offset order).
    pub(super) fn leaf(&mut self, partition: i32, org_id: &str, leaf: OpenLeaf) {
        let orgs = self.leaves.entry(partition).or_default();
        match orgs.get_mut(org_id) {
            Some(leaves) => leaves.push(leaf),
            None => {
                orgs.insert(org_id.to_string(), vec![leaf]);
            }
        }
    }

    /// `indexer_rows_total{org_id, retention_days}`: rows per organization per retention class.
    pub(super) fn record(self) {
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
pub(super) fn end_all(
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
pub(super) fn flatten(
    joined: Result<audit_store::Result<()>, tokio::task::JoinError>,
) -> audit_store::Result<()> {
    joined.unwrap_or_else(|error| Err(audit_store::Error::Interrupted(error.to_string())))
}
