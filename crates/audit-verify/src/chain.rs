//! Steps 1 and 2 of "Verifying an export" (`docs/integrity.md`): the digests of the bundle
//! and the head held from outside ClickHouse.
//!
//! 1. Every window: the note parses and names the organization; the signature verifies under
//!    `key_id`'s key **from the auditor's keys**; `seq` is the previous `seq + 1`; `prev` is the
//!    previous digest hash (the first window's `prev` is taken as given); the window's leaves
//!    hash to `root` and number `count`.
//! 2. With a held head (`--head`): it verifies, and the bundle's chain reaches it (same `seq`
//!    and hash; a newer head means the newest windows were cut: *truncated*). Without one, or
//!    when it is older than the bundle's newest digest (it proves nothing about newer windows):
//!    the newest digest must be sealed at most two windows before the bundle's `generated_at`,
//!    else *not sealed recently*. A window is `--window-secs`, or else the median interval
//!    between consecutive `sealed_at` of the bundle, or 300 s when it has fewer than two
//!    windows.

use time::Duration;

use crate::bundle::{Bundle, SignedDigest, Window};
use crate::keys::{KeyRing, SignatureProblem};
use crate::merkle::{self, Hash, to_hex};
use crate::note::{Note, digest_hash};
use crate::report::{Finding, Findings, Kind, rfc3339};

/// The window length assumed when the bundle cannot tell (the indexer's default).
pub const DEFAULT_WINDOW: Duration = Duration::seconds(300);

/// One digest of the bundle after checking.
#[derive(Debug, Clone)]
pub struct CheckedWindow {
    /// The note's `seq`, or the JSON's when the note does not parse (a label only).
    pub seq: Option<u64>,
    pub note: Option<Note>,
    /// The note parses, names the organization and its signature verifies.
    pub verified: bool,
    pub hash: Hash,
}

/// Step 1 over every window of the bundle.
pub fn check_digests(
    bundle: &Bundle,
    keys: &KeyRing,
    findings: &mut Findings,
) -> Vec<CheckedWindow> {
    let mut checked: Vec<CheckedWindow> = Vec::with_capacity(bundle.windows.len());
    for (index, window) in bundle.windows.iter().enumerate() {
        let digest = &window.digest;
        let parsed = Note::parse(&digest.note);
        let seq = parsed.as_ref().ok().map(|note| note.seq).or(digest.seq);
        let mut verified = true;
        if let Err(error) = &parsed {
            let detail = format!("window {} of the bundle: {error}", index + 1);
            findings.push(Finding::new(Kind::BadDigest, seq, detail));
            verified = false;
        }
        if let Some((kind, detail)) = signature_problem(digest, keys) {
            findings.push(Finding::new(kind, seq, detail));
            verified = false;
        }
        if let Ok(note) = &parsed {
            if note.org != bundle.org_id {
                let detail = format!(
                    "the note is for organization {:?}, not {:?}",
                    note.org, bundle.org_id
                );
                findings.push(Finding::new(Kind::BadDigest, seq, detail));
                verified = false;
            }
            if let Some(previous) = checked.last() {
                check_link(previous, note, findings);
            }
            check_leaves(note, window, findings);
        }
        checked.push(CheckedWindow {
            seq,
            note: parsed.ok(),
            verified,
            hash: digest_hash(digest.note.as_bytes()),
        });
    }
    checked
}

fn signature_problem(digest: &SignedDigest, keys: &KeyRing) -> Option<(Kind, String)> {
    let key_id = &digest.key_id;
    match keys.verify(key_id, digest.note.as_bytes(), &digest.signature) {
        Ok(()) => None,
        Err(SignatureProblem::UnknownKey) => Some((
            Kind::UnknownKey,
            format!("signed by key {key_id:?}, which is not in your keys"),
        )),
        Err(SignatureProblem::Malformed) => Some((
            Kind::BadSignature,
            "the signature is not base64 of 64 bytes".into(),
        )),
        Err(SignatureProblem::Invalid) => Some((
            Kind::BadSignature,
            format!("the signature does not verify under key {key_id:?}: the note was changed"),
        )),
    }
}

/// `seq` and `prev` follow on from the window before.
fn check_link(previous: &CheckedWindow, note: &Note, findings: &mut Findings) {
    let seq = Some(note.seq);
    if let Some(previous_seq) = previous.note.as_ref().map(|previous| previous.seq) {
        if note.seq > previous_seq.saturating_add(1) {
            let detail = format!(
                "windows seq {}..={} are absent: the chain jumps from seq {previous_seq} to {}",
                previous_seq + 1,
                note.seq - 1,
                note.seq
            );
            findings.push(Finding::new(Kind::MissingWindow, seq, detail));
            return;
        }
        if note.seq <= previous_seq {
            let detail = format!(
                "seq {} follows seq {previous_seq}: windows out of order or repeated",
                note.seq
            );
            findings.push(Finding::new(Kind::BrokenChain, seq, detail));
            return;
        }
    }
    if note.prev != previous.hash {
        let detail = format!(
            "prev is {}, but the digest before it hashes to {}: a digest was replaced",
            to_hex(&note.prev),
            to_hex(&previous.hash)
        );
        findings.push(Finding::new(Kind::BrokenChain, seq, detail));
    }
}

/// The window's leaves give the signed `count` and `root`.
fn check_leaves(note: &Note, window: &Window, findings: &mut Findings) {
    let seq = Some(note.seq);
    let count = window.leaves.len() as u64;
    if count != note.count {
        let detail = format!(
            "the bundle has {count} leaves, the digest signs count {}: leaves were removed or added",
            note.count
        );
        findings.push(Finding::new(Kind::CountMismatch, seq, detail));
        return;
    }
    let leaves: Vec<Hash> = window.leaves.iter().map(|leaf| leaf.leaf).collect();
    let root = merkle::root(&leaves);
    if root != note.root {
        let detail = format!(
            "the leaves hash to {}, the digest signs root {}: leaves were reordered, altered or replaced",
            to_hex(&root),
            to_hex(&note.root)
        );
        findings.push(Finding::new(Kind::RootMismatch, seq, detail));
    }
}

/// Step 2 with a held head. Returns its note when it verifies.
pub fn check_head(
    bundle: &Bundle,
    head: &SignedDigest,
    keys: &KeyRing,
    windows: &[CheckedWindow],
    findings: &mut Findings,
) -> Option<Note> {
    let head_note = match Note::parse(&head.note) {
        Ok(note) => note,
        Err(error) => {
            let detail = format!("the held head does not parse: {error}");
            findings.push(Finding::new(Kind::BadHead, head.seq, detail));
            return None;
        }
    };
    let seq = Some(head_note.seq);
    if head_note.org != bundle.org_id {
        let detail = format!("the held head is for organization {:?}", head_note.org);
        findings.push(Finding::new(Kind::BadHead, seq, detail));
        return None;
    }
    if let Some((_, problem)) = signature_problem(head, keys) {
        let detail = format!("the held head: {problem}");
        findings.push(Finding::new(Kind::BadHead, seq, detail));
        return None;
    }
    let same_seq = windows.iter().find(|window| {
        window
            .note
            .as_ref()
            .is_some_and(|note| note.seq == head_note.seq)
    });
    if let Some(window) = same_seq {
        if window.hash != digest_hash(head.note.as_bytes()) {
            let detail = format!(
                "the bundle's digest seq {} is not the one you hold: the chain was rewritten",
                head_note.seq
            );
            findings.push(Finding::new(Kind::HeadMismatch, seq, detail));
        }
        return Some(head_note);
    }
    let newest_seq = windows
        .iter()
        .filter_map(|window| window.note.as_ref().map(|note| note.seq))
        .max();
    if newest_seq.is_none_or(|newest| head_note.seq > newest) {
        findings.push(truncated(bundle, &head_note, newest_seq));
    }
    Some(head_note)
}

fn truncated(bundle: &Bundle, head: &Note, newest_seq: Option<u64>) -> Finding {
    let first_missing = newest_seq.map_or(0, |newest| newest + 1);
    let ends = newest_seq.map_or("has no readable digest".into(), |newest| {
        format!("ends at seq {newest}")
    });
    let mut detail = format!(
        "the bundle {ends}, but you hold seq {} sealed at {}: windows seq {first_missing}..={} were cut",
        head.seq,
        rfc3339(head.sealed_at),
        head.seq
    );
    if head.sealed_at > bundle.generated_at {
        detail.push_str(&format!(
            " (your head was sealed after the bundle was made at {}: fetch a newer bundle to tell)",
            rfc3339(bundle.generated_at)
        ));
    }
    Finding::new(Kind::Truncated, Some(head.seq), detail)
}

/// Step 2 without a (verifiable) held head.
pub fn check_sealed_recently(
    bundle: &Bundle,
    windows: &[CheckedWindow],
    window_length: Option<Duration>,
    findings: &mut Findings,
) {
    let notes: Vec<&Note> = windows
        .iter()
        .filter_map(|window| window.note.as_ref())
        .collect();
    let Some(newest) = notes.iter().max_by_key(|note| note.sealed_at) else {
        let detail = "the bundle has no readable digest: nothing proves the log is complete";
        findings.push(Finding::new(Kind::NotSealedRecently, None, detail));
        return;
    };
    let window = window_length.unwrap_or_else(|| inferred_window(&notes));
    if bundle.generated_at - newest.sealed_at <= window * 2 {
        return;
    }
    let detail = format!(
        "the newest digest was sealed at {}, more than two windows of {} s before the bundle was \
         made at {}: sealing stopped, or the newest windows were cut (check with --head)",
        rfc3339(newest.sealed_at),
        window.whole_seconds(),
        rfc3339(bundle.generated_at)
    );
    findings.push(Finding::new(
        Kind::NotSealedRecently,
        Some(newest.seq),
        detail,
    ));
}

/// The median interval between consecutive seals, or the default with fewer than two windows.
fn inferred_window(notes: &[&Note]) -> Duration {
    let mut intervals: Vec<Duration> = notes
        .windows(2)
        .map(|pair| pair[1].sealed_at - pair[0].sealed_at)
        .filter(|interval| interval.is_positive())
        .collect();
    if intervals.is_empty() {
        return DEFAULT_WINDOW;
    }
    intervals.sort();
    intervals[intervals.len() / 2]
}

/// The `retention_days` of the newest verified digest (the held head if it is the newest).
pub fn newest_retention(windows: &[CheckedWindow], head: Option<&Note>) -> Option<u32> {
    let newest_in_bundle = windows
        .iter()
        .filter(|window| window.verified)
        .filter_map(|window| window.note.as_ref())
        .max_by_key(|note| note.seq);
    let newest = match (newest_in_bundle, head) {
        (Some(bundle), Some(head)) if bundle.seq > head.seq => bundle,
        (_, Some(head)) => head,
        (bundle, None) => bundle?,
    };
    Some(newest.retention_days)
}
