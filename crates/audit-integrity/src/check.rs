//! Verification of one organization's range (docs/integrity.md, "Verifying an export"):
//! pure, over what the caller read — the chain of digests with their leaves, the events the
//! store returns for the range, the published keys, and optionally the head held outside the
//! store.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use time::OffsetDateTime;

use crate::keys::PublicKeys;
use crate::merkle::{Hash, leaf, root};
use crate::note::{Note, SignedDigest, digest_hash};

/// One window as stored: its signed digest and its leaves in order.
#[derive(Debug, Clone)]
pub struct Window {
    pub digest: SignedDigest,
    pub leaves: Vec<LeafRecord>,
}

/// One leaf with the key of its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafRecord {
    pub leaf: Hash,
    pub id: String,
    pub occurred_at: OffsetDateTime,
}

/// An event as the store returns it: its exact bytes.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub raw: Vec<u8>,
}

/// What is checked.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub org_id: &'a str,
    /// `occurred_at` range of the events, `until` exclusive.
    pub since: OffsetDateTime,
    pub until: OffsetDateTime,
    pub now: OffsetDateTime,
    /// The newest digest held outside the store, if known.
    pub external_head: Option<&'a SignedDigest>,
    /// A chain whose newest digest is older than this is "not sealed recently".
    pub stale_after: time::Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A digest does not verify, does not parse, or is for another organization.
    BadDigest,
    /// `seq`/`prev` do not follow on from the previous digest.
    BrokenChain,
    /// The window's leaves do not hash to its signed root or count.
    LeavesAltered,
    /// An event whose bytes are no leaf, while a leaf has its id.
    Altered,
    /// An event whose bytes are no leaf and whose id is no leaf's.
    Inserted,
    /// The same event more than once where rows collapse to one.
    Duplicated,
    /// A leaf in the range whose event is missing and not expired by retention.
    Deleted,
    /// The chain stops before the head held outside the store.
    Truncated,
    /// The newest digest is older than expected: sealing stopped, or the newest digests were cut.
    NotSealedRecently,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    pub detail: String,
}

/// The verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub intact: bool,
    pub windows: usize,
    pub leaves: usize,
    pub events: usize,
    /// Leaves in the range whose events were removed by retention.
    pub expired_by_retention: usize,
    /// `sealed_at` of the newest digest checked.
    #[serde(with = "time::serde::rfc3339::option")]
    pub sealed_until: Option<OffsetDateTime>,
    pub findings: Vec<Finding>,
}

/// Checks a range; see the module docs.
pub fn check(
    scope: &Scope<'_>,
    windows: &[Window],
    events: &[StoredEvent],
    keys: &PublicKeys,
) -> Report {
    let mut report = Report {
        windows: windows.len(),
        events: events.len(),
        ..Report::default()
    };
    let notes = check_chain(scope, windows, keys, &mut report);
    let retention_days = notes.last().map_or(0, |note| note.retention_days);
    report.sealed_until = notes.last().map(|note| note.sealed_at);
    check_head(scope, &notes, windows, keys, &mut report);

    // Every leaf, by content and by event key.
    let mut by_leaf: HashMap<Hash, (u64, &LeafRecord)> = HashMap::new();
    let mut by_key: HashMap<(&str, OffsetDateTime), Vec<Hash>> = HashMap::new();
    let mut ids: HashSet<&str> = HashSet::new();
    for (window, note) in windows.iter().zip(&notes) {
        for record in &window.leaves {
            report.leaves += 1;
            by_leaf.entry(record.leaf).or_insert((note.seq, record));
            by_key
                .entry((record.id.as_str(), record.occurred_at))
                .or_default()
                .push(record.leaf);
            ids.insert(record.id.as_str());
        }
    }

    // Every event must be a leaf, once.
    let mut present: HashSet<(String, OffsetDateTime)> = HashSet::new();
    for event in events {
        let digest = leaf(&event.raw);
        let key = event_key(&event.raw);
        if let Some((id, occurred_at)) = &key
            && !present.insert((id.clone(), *occurred_at))
        {
            report.findings.push(Finding {
                kind: FindingKind::Duplicated,
                seq: by_leaf.get(&digest).map(|(seq, _)| *seq),
                event_id: Some(id.clone()),
                detail: "the event appears more than once".into(),
            });
            continue;
        }
        if by_leaf.contains_key(&digest) {
            continue;
        }
        let id = key.as_ref().map(|(id, _)| id.clone());
        let known = id.as_deref().is_some_and(|id| ids.contains(id));
        report.findings.push(Finding {
            kind: if known {
                FindingKind::Altered
            } else {
                FindingKind::Inserted
            },
            seq: None,
            event_id: id,
            detail: if known {
                "the event's bytes differ from every sealed version of it".into()
            } else {
                "no sealed window contains this event".into()
            },
        });
    }

    // Every leaf of the range must have its event, unless retention removed it.
    let mut reported: HashSet<(&str, OffsetDateTime)> = HashSet::new();
    for (window, note) in windows.iter().zip(&notes) {
        for record in &window.leaves {
            let in_range = record.occurred_at >= scope.since && record.occurred_at < scope.until;
            let key = (record.id.as_str(), record.occurred_at);
            if !in_range || !reported.insert(key) {
                continue;
            }
            if present.contains(&(record.id.clone(), record.occurred_at)) {
                continue;
            }
            let expires = record.occurred_at + time::Duration::days(i64::from(retention_days));
            if expires <= scope.now {
                report.expired_by_retention += 1;
                continue;
            }
            report.findings.push(Finding {
                kind: FindingKind::Deleted,
                seq: Some(note.seq),
                event_id: Some(record.id.clone()),
                detail: "a sealed event is missing".into(),
            });
        }
    }
    report.intact = report.findings.is_empty();
    report
}

/// Signatures, organization, `seq`/`prev` links and roots; returns the parsed notes (one per
/// window, a placeholder where a digest did not parse so indexes stay aligned).
fn check_chain(
    scope: &Scope<'_>,
    windows: &[Window],
    keys: &PublicKeys,
    report: &mut Report,
) -> Vec<Note> {
    let mut notes: Vec<Note> = Vec::with_capacity(windows.len());
    let mut previous: Option<(u64, Hash)> = None;
    for window in windows {
        let note = match window.digest.verify(keys) {
            Ok(note) if note.org_id == scope.org_id => note,
            Ok(note) => {
                report.findings.push(bad_digest(
                    window,
                    format!("digest of organization `{}`", note.org_id),
                ));
                notes.push(note);
                continue;
            }
            Err(error) => {
                report.findings.push(bad_digest(window, error.to_string()));
                notes.push(placeholder(window));
                continue;
            }
        };
        let hash = digest_hash(&window.digest.note);
        if let Some((seq, prev)) = previous
            && (note.seq != seq + 1 || note.prev != prev)
        {
            report.findings.push(Finding {
                kind: FindingKind::BrokenChain,
                seq: Some(note.seq),
                event_id: None,
                detail: format!(
                    "does not follow digest {seq}: windows are missing or were replaced"
                ),
            });
        }
        let leaves: Vec<Hash> = window.leaves.iter().map(|record| record.leaf).collect();
        if root(&leaves) != note.root || leaves.len() as u64 != note.count {
            report.findings.push(Finding {
                kind: FindingKind::LeavesAltered,
                seq: Some(note.seq),
                event_id: None,
                detail: format!(
                    "{} stored leaves do not hash to the signed root of {} leaves",
                    leaves.len(),
                    note.count
                ),
            });
        }
        previous = Some((note.seq, hash));
        notes.push(note);
    }
    notes
}

/// The newest digest against the head held outside the store, or against the clock.
fn check_head(
    scope: &Scope<'_>,
    notes: &[Note],
    windows: &[Window],
    keys: &PublicKeys,
    report: &mut Report,
) {
    let newest = notes.last().zip(windows.last());
    if let Some(external) = scope.external_head {
        let Ok(external_note) = external.verify(keys) else {
            report.findings.push(Finding {
                kind: FindingKind::BadDigest,
                seq: Some(external.seq),
                event_id: None,
                detail: "the head held outside the store does not verify".into(),
            });
            return;
        };
        let reached = newest.is_some_and(|(note, window)| {
            note.seq > external_note.seq
                || (note.seq == external_note.seq && window.digest.note == external.note)
        });
        if !reached {
            report.findings.push(Finding {
                kind: FindingKind::Truncated,
                seq: Some(external_note.seq),
                event_id: None,
                detail: format!(
                    "the chain in the store ends at seq {} but digest {} was published",
                    newest.map_or(-1, |(note, _)| i64::try_from(note.seq).unwrap_or(i64::MAX)),
                    external_note.seq
                ),
            });
        }
        return;
    }
    let stale = newest.is_none_or(|(note, _)| note.sealed_at + scope.stale_after < scope.now);
    if stale {
        report.findings.push(Finding {
            kind: FindingKind::NotSealedRecently,
            seq: newest.map(|(note, _)| note.seq),
            event_id: None,
            detail: "no recent digest: sealing stopped or the newest digests were removed".into(),
        });
    }
}

fn bad_digest(window: &Window, detail: String) -> Finding {
    Finding {
        kind: FindingKind::BadDigest,
        seq: Some(window.digest.seq),
        event_id: None,
        detail,
    }
}

/// Stands in for a digest that did not parse (its leaves are then checked against nothing).
fn placeholder(window: &Window) -> Note {
    Note {
        org_id: String::new(),
        seq: window.digest.seq,
        partition: -1,
        offsets: (0, 0),
        sealed_at: OffsetDateTime::UNIX_EPOCH,
        count: 0,
        root: [0; 32],
        prev: [0; 32],
        retention_days: 0,
    }
}

/// `(id, occurred_at)` of an event's bytes.
fn event_key(raw: &[u8]) -> Option<(String, OffsetDateTime)> {
    #[derive(serde::Deserialize)]
    struct Key {
        id: String,
        occurred_at: String,
    }
    let key: Key = serde_json::from_slice(raw).ok()?;
    let occurred_at = OffsetDateTime::parse(
        &key.occurred_at,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    Some((key.id, occurred_at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKeys;
    use crate::note::Note;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-02 12:00 UTC);

    fn keys() -> SigningKeys {
        SigningKeys::parse(&["k1:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="]).expect("keys")
    }

    fn event(n: u32, occurred_at: &str) -> Vec<u8> {
        format!(r#"{{"id":"00000000-0000-7000-8000-{n:012}","org_id":"org_a","occurred_at":"{occurred_at}","action":"resource.created"}}"#)
            .into_bytes()
    }

    fn record(raw: &[u8]) -> LeafRecord {
        let (id, occurred_at) = event_key(raw).expect("key");
        LeafRecord {
            leaf: leaf(raw),
            id,
            occurred_at,
        }
    }

    /// A chain of windows over the given events (one window per slice).
    fn chain(keys: &SigningKeys, per_window: &[Vec<Vec<u8>>], retention_days: u16) -> Vec<Window> {
        let mut prev = [0u8; 32];
        let mut windows = Vec::new();
        for (seq, events) in per_window.iter().enumerate() {
            let leaves: Vec<LeafRecord> = events.iter().map(|raw| record(raw)).collect();
            let hashes: Vec<Hash> = leaves.iter().map(|r| r.leaf).collect();
            let note = Note {
                org_id: "org_a".into(),
                seq: seq as u64,
                partition: 0,
                offsets: (0, 0),
                sealed_at: NOW - time::Duration::minutes(10) + time::Duration::minutes(seq as i64),
                count: hashes.len() as u64,
                root: root(&hashes),
                prev,
                retention_days,
            };
            let digest = SignedDigest::sign(&note, keys.current());
            prev = digest_hash(&digest.note);
            windows.push(Window { digest, leaves });
        }
        windows
    }

    fn scope<'a>() -> Scope<'a> {
        Scope {
            org_id: "org_a",
            since: datetime!(2026-01-01 0:00 UTC),
            until: NOW,
            now: NOW,
            external_head: None,
            stale_after: time::Duration::minutes(30),
        }
    }

    fn stored(events: &[&Vec<u8>]) -> Vec<StoredEvent> {
        events
            .iter()
            .map(|raw| StoredEvent {
                raw: (*raw).clone(),
            })
            .collect()
    }

    fn kinds(report: &Report) -> Vec<FindingKind> {
        report.findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn an_untouched_range_is_intact() {
        let keys = keys();
        let (a, b, c) = (
            event(1, "2026-12-01T10:00:00.000Z"),
            event(2, "2026-12-01T11:00:00.000Z"),
            event(3, "2026-12-02T09:00:00.000Z"),
        );
        let windows = chain(
            &keys,
            &[vec![a.clone(), b.clone()], vec![], vec![c.clone()]],
            90,
        );
        let report = check(
            &scope(),
            &windows,
            &stored(&[&a, &b, &c]),
            &keys.public_keys(),
        );
        assert!(report.intact, "{report:?}");
        assert_eq!((report.windows, report.leaves, report.events), (3, 3, 3));
    }

    #[test]
    fn deletion_alteration_insertion_and_duplication_are_named() {
        let keys = keys();
        let (a, b, c) = (
            event(1, "2026-12-01T10:00:00.000Z"),
            event(2, "2026-12-01T11:00:00.000Z"),
            event(3, "2026-12-01T12:00:00.000Z"),
        );
        let windows = chain(&keys, &[vec![a.clone(), b.clone(), c.clone()]], 90);
        let altered = String::from_utf8(b.clone())
            .unwrap()
            .replace("created", "deleted")
            .into_bytes();
        let forged = event(9, "2026-12-01T13:00:00.000Z");
        let report = check(
            &scope(),
            &windows,
            &stored(&[&a, &a, &altered, &forged]),
            &keys.public_keys(),
        );
        let mut found = kinds(&report);
        found.sort_by_key(|kind| format!("{kind:?}"));
        assert_eq!(
            found,
            [
                FindingKind::Altered,
                FindingKind::Deleted,
                FindingKind::Duplicated,
                FindingKind::Inserted
            ]
        );
        let deleted = report
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::Deleted)
            .unwrap();
        assert_eq!(deleted.seq, Some(0));
        assert!(
            deleted
                .event_id
                .as_deref()
                .unwrap()
                .ends_with("000000000003")
        );
    }

    #[test]
    fn expired_events_are_not_deletions() {
        let keys = keys();
        let old = event(1, "2026-08-01T10:00:00.000Z");
        let windows = chain(&keys, &[vec![old]], 90);
        let report = check(&scope(), &windows, &[], &keys.public_keys());
        assert!(report.intact, "{report:?}");
        assert_eq!(report.expired_by_retention, 1);
    }

    #[test]
    fn reordered_or_removed_leaves_and_windows_break_the_chain() {
        let keys = keys();
        let (a, b) = (
            event(1, "2026-12-01T10:00:00.000Z"),
            event(2, "2026-12-01T11:00:00.000Z"),
        );
        let mut windows = chain(&keys, &[vec![a.clone(), b.clone()], vec![], vec![]], 90);
        windows[0].leaves.swap(0, 1);
        let report = check(&scope(), &windows, &stored(&[&a, &b]), &keys.public_keys());
        assert_eq!(kinds(&report), [FindingKind::LeavesAltered]);

        let mut windows = chain(&keys, &[vec![a.clone()], vec![], vec![b.clone()]], 90);
        windows.remove(1);
        let report = check(&scope(), &windows, &stored(&[&a, &b]), &keys.public_keys());
        assert_eq!(kinds(&report), [FindingKind::BrokenChain]);
    }

    #[test]
    fn a_cut_tail_shows_against_the_external_head_or_the_clock() {
        let keys = keys();
        let (a, b) = (
            event(1, "2026-12-01T10:00:00.000Z"),
            event(2, "2026-12-02T11:00:00.000Z"),
        );
        let full = chain(&keys, &[vec![a.clone()], vec![b.clone()]], 90);
        let head = full[1].digest.clone();
        let cut = &full[..1];
        let mut with_head = scope();
        with_head.external_head = Some(&head);
        let report = check(&with_head, cut, &stored(&[&a]), &keys.public_keys());
        assert_eq!(kinds(&report), [FindingKind::Truncated]);
        let report = check(&with_head, &full, &stored(&[&a, &b]), &keys.public_keys());
        assert!(report.intact, "{report:?}");

        let mut late = scope();
        late.now = NOW + time::Duration::hours(2);
        late.until = late.now;
        let report = check(&late, cut, &stored(&[&a]), &keys.public_keys());
        assert!(kinds(&report).contains(&FindingKind::NotSealedRecently));
    }

    #[test]
    fn a_digest_signed_with_an_unknown_key_or_for_another_org_is_bad() {
        let keys = keys();
        let other =
            SigningKeys::parse(&["k9:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="]).expect("keys");
        let a = event(1, "2026-12-02T10:00:00.000Z");
        let windows = chain(&other, &[vec![a.clone()]], 90);
        let report = check(&scope(), &windows, &stored(&[&a]), &keys.public_keys());
        assert!(kinds(&report).contains(&FindingKind::BadDigest));
    }
}
