//! Steps 3 and 4 of "Verifying an export" (`docs/integrity.md`): every export line against the
//! leaves, then every leaf of the range against the export.
//!
//! 3. A line whose leaf is a leaf of some window is sealed. Otherwise it is *altered* when a
//!    leaf has its `id`, else *inserted* (and *unreadable* when it is not even a JSON event).
//!    The same `(id, occurred_at)` on two lines is *duplicated*. A sealed line whose `id` or
//!    `occurred_at` differ from the bundle's listing of its leaf is *leaf_metadata* (those
//!    two fields of the bundle are not covered by the signature, so they are checked wherever
//!    the event is at hand).
//! 4. Every `(id, occurred_at)` of the leaves with `occurred_at` in `[since, until)` must have
//!    a line whose leaf is one of the leaves with that key. If none: *expired by retention*
//!    when `occurred_at + retention_days ≤ now` (the newest digest's retention; not a finding),
//!    else *deleted*. An event already reported *altered* is not reported *deleted* too.
//!
//! Memory is proportional to the leaves and the export's distinct keys, never to its bytes:
//! keys are kept as 128-bit fingerprints (truncated SHA-256). A fingerprint collision could only
//! relabel a finding, never hide one: every line that is no leaf is reported on its own.

use std::borrow::Cow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use crate::bundle::Window;
use crate::export::ExportLine;
use crate::merkle::Hash;
use crate::report::{Expired, Finding, Findings, Kind, rfc3339};

type Fingerprint = u128;

/// Why an export line's id and `occurred_at` could not be read (the detail of an
/// `unreadable` finding).
#[derive(Debug, thiserror::Error)]
enum Unreadable {
    #[error("not a JSON event with id and occurred_at: {0}")]
    NotAnEvent(serde_json::Error),
    /// Longer than the reader keeps; the length in bytes.
    #[error("{0} bytes long, not kept")]
    NotKept(u64),
}

/// The two fields of an event the checks need; the rest of the line is only hashed.
#[derive(Deserialize)]
struct EventKey<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
}

struct IndexedLeaf {
    id: Box<str>,
    occurred_at: OffsetDateTime,
    /// Index of its window in the bundle, and its own index in that window.
    window: u32,
    index: u32,
    group: u32,
}

/// The leaves sharing one `(id, occurred_at)`: rows collapse to one for all of them.
struct KeyGroup {
    first_leaf: u32,
    present: bool,
}

/// The range and clock of the check.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub now: OffsetDateTime,
    pub retention_days: Option<u32>,
}

pub struct EventCheck {
    scope: Scope,
    window_seqs: Vec<Option<u64>>,
    leaves: Vec<IndexedLeaf>,
    leaf_by_hash: HashMap<Hash, u32>,
    leaf_by_id: HashMap<Fingerprint, u32>,
    groups: Vec<KeyGroup>,
    group_by_key: HashMap<Fingerprint, u32>,
    /// Every key seen in the export, with the line it was first seen on.
    export_keys: HashMap<Fingerprint, u64>,
    altered_ids: HashSet<Fingerprint>,
    lines: u64,
}

impl EventCheck {
    /// Indexes the leaves of `windows`, labelled with `window_seqs` (same order).
    pub fn new(windows: Vec<Window>, window_seqs: Vec<Option<u64>>, scope: Scope) -> Self {
        let leaf_count = windows.iter().map(|window| window.leaves.len()).sum();
        let mut check = Self {
            scope,
            window_seqs,
            leaves: Vec::with_capacity(leaf_count),
            leaf_by_hash: HashMap::with_capacity(leaf_count),
            leaf_by_id: HashMap::with_capacity(leaf_count),
            groups: Vec::with_capacity(leaf_count),
            group_by_key: HashMap::with_capacity(leaf_count),
            export_keys: HashMap::with_capacity(leaf_count),
            altered_ids: HashSet::new(),
            lines: 0,
        };
        for (window_index, window) in windows.into_iter().enumerate() {
            for (index, leaf) in window.leaves.into_iter().enumerate() {
                let leaf_index = check.leaves.len() as u32;
                let key = key_fingerprint(&leaf.id, leaf.occurred_at);
                let groups = &mut check.groups;
                let group = *check.group_by_key.entry(key).or_insert_with(|| {
                    groups.push(KeyGroup {
                        first_leaf: leaf_index,
                        present: false,
                    });
                    groups.len() as u32 - 1
                });
                check.leaf_by_hash.entry(leaf.leaf).or_insert(leaf_index);
                check
                    .leaf_by_id
                    .entry(id_fingerprint(&leaf.id))
                    .or_insert(leaf_index);
                check.leaves.push(IndexedLeaf {
                    id: leaf.id,
                    occurred_at: leaf.occurred_at,
                    window: window_index as u32,
                    index: index as u32,
                    group,
                });
            }
        }
        check
    }

    pub fn leaf_count(&self) -> usize {
        self.leaves.len()
    }

    pub fn lines_checked(&self) -> u64 {
        self.lines
    }

    /// Step 3 for one line. Empty lines carry no event and are skipped.
    pub fn check_line(&mut self, line: &ExportLine<'_>, findings: &mut Findings) {
        if line.length == 0 {
            return;
        }
        self.lines += 1;
        let parsed = match line.bytes {
            Some(bytes) => {
                serde_json::from_slice::<EventKey<'_>>(bytes).map_err(Unreadable::NotAnEvent)
            }
            None => Err(Unreadable::NotKept(line.length)),
        };
        match self.leaf_by_hash.get(&line.leaf) {
            Some(&leaf_index) => self.sealed_line(line.number, leaf_index, parsed, findings),
            None => self.unsealed_line(line.number, parsed, findings),
        }
    }

    fn sealed_line(
        &mut self,
        line: u64,
        leaf_index: u32,
        parsed: Result<EventKey<'_>, Unreadable>,
        findings: &mut Findings,
    ) {
        let leaf = &self.leaves[leaf_index as usize];
        let seq = self.window_seqs[leaf.window as usize];
        self.groups[leaf.group as usize].present = true;
        // A sealed line that does not parse is still what was indexed: its key is the leaf's.
        let (id, occurred_at) = match &parsed {
            Ok(event) => (event.id.as_ref(), event.occurred_at),
            Err(_) => (leaf.id.as_ref(), leaf.occurred_at),
        };
        if *leaf.id != *id || leaf.occurred_at != occurred_at {
            let detail = format!(
                "the bundle lists this event's leaf {} as id {:?} occurred at {}, the event says \
                 occurred at {}: the bundle's leaf listing was changed",
                leaf.index,
                leaf.id,
                rfc3339(leaf.occurred_at),
                rfc3339(occurred_at)
            );
            findings.push(
                Finding::new(Kind::LeafMetadata, seq, detail)
                    .event(id)
                    .line(line),
            );
        }
        let key = key_fingerprint(id, occurred_at);
        let id = id.to_owned();
        self.note_export_key(key, line, seq, &id, findings);
    }

    fn unsealed_line(
        &mut self,
        line: u64,
        parsed: Result<EventKey<'_>, Unreadable>,
        findings: &mut Findings,
    ) {
        let event = match parsed {
            Ok(event) => event,
            Err(problem) => {
                let detail = format!("its bytes are no leaf, and it is {problem}");
                findings.push(Finding::new(Kind::Unreadable, None, detail).line(line));
                return;
            }
        };
        let id_key = id_fingerprint(&event.id);
        let seq = match self.leaf_by_id.get(&id_key) {
            Some(&leaf_index) => {
                let leaf = &self.leaves[leaf_index as usize];
                let seq = self.window_seqs[leaf.window as usize];
                let detail = format!(
                    "its bytes are no leaf, but leaf {} of window {} has this id: the event was \
                     changed after it was indexed",
                    leaf.index,
                    seq.map_or("?".into(), |seq| format!("seq {seq}"))
                );
                findings.push(
                    Finding::new(Kind::Altered, seq, detail)
                        .event(event.id.as_ref())
                        .line(line),
                );
                self.altered_ids.insert(id_key);
                seq
            }
            None => {
                let detail = "its bytes are no leaf and no window has a leaf with this id: \
                              the event was added after indexing";
                findings.push(
                    Finding::new(Kind::Inserted, None, detail)
                        .event(event.id.as_ref())
                        .line(line),
                );
                None
            }
        };
        let key = key_fingerprint(&event.id, event.occurred_at);
        self.note_export_key(key, line, seq, &event.id, findings);
    }

    fn note_export_key(
        &mut self,
        key: Fingerprint,
        line: u64,
        seq: Option<u64>,
        id: &str,
        findings: &mut Findings,
    ) {
        match self.export_keys.entry(key) {
            Entry::Vacant(vacant) => {
                vacant.insert(line);
            }
            Entry::Occupied(first) => {
                let detail = format!(
                    "the same (id, occurred_at) as line {}: rows collapse to one, so a copy was added",
                    first.get()
                );
                findings.push(
                    Finding::new(Kind::Duplicated, seq, detail)
                        .event(id)
                        .line(line),
                );
            }
        }
    }

    /// Step 4. Returns how many events of each window expired by retention.
    pub fn finish(self, findings: &mut Findings) -> Vec<Expired> {
        let scope = self.scope;
        let mut expired_by_window = vec![0u64; self.window_seqs.len()];
        for group in &self.groups {
            let leaf = &self.leaves[group.first_leaf as usize];
            let in_range = scope.since <= leaf.occurred_at && leaf.occurred_at < scope.until;
            if !in_range || group.present || self.altered_ids.contains(&id_fingerprint(&leaf.id)) {
                continue;
            }
            if is_expired(leaf.occurred_at, &scope) {
                expired_by_window[leaf.window as usize] += 1;
                continue;
            }
            let seq = self.window_seqs[leaf.window as usize];
            let retention = scope
                .retention_days
                .map_or("an unknown retention".into(), |days| format!("{days} days"));
            let detail = format!(
                "no export line for the event that occurred at {} (leaf {} of the window), and \
                 its retention of {retention} has not passed",
                rfc3339(leaf.occurred_at),
                leaf.index
            );
            findings.push(Finding::new(Kind::Deleted, seq, detail).event(&*leaf.id));
        }
        self.window_seqs
            .iter()
            .zip(expired_by_window)
            .filter(|(_, events)| *events > 0)
            .map(|(seq, events)| Expired { seq: *seq, events })
            .collect()
    }
}

/// `occurred_at + retention_days ≤ now`; never expired without a known retention.
fn is_expired(occurred_at: OffsetDateTime, scope: &Scope) -> bool {
    let Some(days) = scope.retention_days else {
        return false;
    };
    occurred_at
        .checked_add(Duration::days(i64::from(days)))
        .is_some_and(|expiry| expiry <= scope.now)
}

fn id_fingerprint(id: &str) -> Fingerprint {
    let digest = Sha256::new()
        .chain_update(b"id\0")
        .chain_update(id.as_bytes())
        .finalize();
    truncate(&digest)
}

fn key_fingerprint(id: &str, occurred_at: OffsetDateTime) -> Fingerprint {
    let digest = Sha256::new()
        .chain_update(b"key\0")
        .chain_update((id.len() as u64).to_be_bytes())
        .chain_update(id.as_bytes())
        .chain_update(occurred_at.unix_timestamp_nanos().to_be_bytes())
        .finalize();
    truncate(&digest)
}

fn truncate(digest: &[u8]) -> Fingerprint {
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}
