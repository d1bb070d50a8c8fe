//! Findings and the report: one line per finding (kind, window `seq`, event id, what), the
//! events expired by retention (not findings), the throughput, and the verdict `intact` or
//! `NOT intact: N findings` as the last line; or the same as one JSON object.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};

use serde::Serialize;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// What is wrong. Every kind is a finding: a reason not to call the export intact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A digest's note does not parse, or is for another organization.
    BadDigest,
    /// A digest is signed by a key id that is not in the auditor's keys.
    UnknownKey,
    /// A digest's signature does not verify under its key.
    BadSignature,
    /// `seq` jumps: windows between two digests are absent.
    MissingWindow,
    /// `seq` goes back or repeats, or `prev` is not the previous digest's hash.
    BrokenChain,
    /// A window has a different number of leaves than its digest's `count`.
    CountMismatch,
    /// A window's leaves do not hash to its digest's `root` (reordered, altered leaves).
    RootMismatch,
    /// The digest held from outside ClickHouse (`--head`) does not verify.
    BadHead,
    /// The chain stops before the digest held from outside ClickHouse: newest windows cut.
    Truncated,
    /// The bundle's digest with the held head's `seq` is another digest: the chain was rewritten.
    HeadMismatch,
    /// Without a held head: the newest digest is older than two windows before the bundle.
    NotSealedRecently,
    /// An export line whose bytes are no leaf, while a leaf has its event id.
    Altered,
    /// An export line whose bytes are no leaf and whose event id no leaf has.
    Inserted,
    /// The same `(id, occurred_at)` on more than one export line.
    Duplicated,
    /// A leaf of the range whose event is missing from the export, not expired by retention.
    Deleted,
    /// An export line that is no leaf and not a JSON event with `id` and `occurred_at`.
    Unreadable,
    /// A leaf whose `id`/`occurred_at` in the bundle differ from its event's own.
    LeafMetadata,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Self::BadDigest => "bad_digest",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::MissingWindow => "missing_window",
            Self::BrokenChain => "broken_chain",
            Self::CountMismatch => "count_mismatch",
            Self::RootMismatch => "root_mismatch",
            Self::BadHead => "bad_head",
            Self::Truncated => "truncated",
            Self::HeadMismatch => "head_mismatch",
            Self::NotSealedRecently => "not_sealed_recently",
            Self::Altered => "altered",
            Self::Inserted => "inserted",
            Self::Duplicated => "duplicated",
            Self::Deleted => "deleted",
            Self::Unreadable => "unreadable",
            Self::LeafMetadata => "leaf_metadata",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    /// The window (`seq`) concerned, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The export line (from 1), for findings about a line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    pub detail: String,
}

impl Finding {
    pub fn new(kind: Kind, seq: Option<u64>, detail: impl Into<String>) -> Self {
        Self {
            kind,
            seq,
            event_id: None,
            line: None,
            detail: detail.into(),
        }
    }

    pub fn event(mut self, event_id: impl Into<String>) -> Self {
        self.event_id = Some(event_id.into());
        self
    }

    pub fn line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }
}

/// The findings, of which at most `limit` are kept in detail (a hostile or wrong export could
/// otherwise produce one per line): the rest are counted by kind.
#[derive(Debug, Clone)]
pub struct Findings {
    listed: Vec<Finding>,
    not_listed: BTreeMap<Kind, u64>,
    limit: usize,
}

impl Findings {
    pub fn new(limit: usize) -> Self {
        Self {
            listed: Vec::new(),
            not_listed: BTreeMap::new(),
            limit,
        }
    }

    pub fn push(&mut self, finding: Finding) {
        if self.listed.len() < self.limit {
            self.listed.push(finding);
        } else {
            *self.not_listed.entry(finding.kind).or_default() += 1;
        }
    }

    pub fn total(&self) -> u64 {
        self.listed.len() as u64 + self.not_listed.values().sum::<u64>()
    }

    pub fn listed(&self) -> &[Finding] {
        &self.listed
    }
}

/// Events missing from the export because their organization's retention removed them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expired {
    pub seq: Option<u64>,
    pub events: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Throughput {
    pub seconds: f64,
    pub events_per_second: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Intact,
    NotIntact,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub verdict: Verdict,
    pub org_id: String,
    #[serde(serialize_with = "serialize_time")]
    pub since: OffsetDateTime,
    #[serde(serialize_with = "serialize_time")]
    pub until: OffsetDateTime,
    #[serde(serialize_with = "serialize_time")]
    pub generated_at: OffsetDateTime,
    #[serde(serialize_with = "serialize_time")]
    pub now: OffsetDateTime,
    /// Windows in the bundle, and the `seq` of the first and the last.
    pub windows: usize,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    pub leaves: usize,
    /// Export lines checked (empty lines are skipped).
    pub events: u64,
    /// The newest digest's retention, which decides expiry.
    pub retention_days: Option<u32>,
    pub findings_total: u64,
    pub findings: Vec<Finding>,
    /// Findings beyond `--max-findings`, counted by kind.
    pub findings_not_listed: BTreeMap<Kind, u64>,
    pub expired: Vec<Expired>,
    pub throughput: Option<Throughput>,
}

impl Report {
    pub fn findings_from(&mut self, findings: Findings) {
        self.findings_total = findings.total();
        self.verdict = if self.findings_total == 0 {
            Verdict::Intact
        } else {
            Verdict::NotIntact
        };
        self.findings = findings.listed;
        self.findings_not_listed = findings.not_listed;
    }

    pub fn is_intact(&self) -> bool {
        self.verdict == Verdict::Intact
    }

    pub fn write_json(&self, out: &mut impl Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    pub fn write_human(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(
            out,
            "organization {}, events from {} until {} (bundle of {}, checked at {})",
            printable(&self.org_id),
            rfc3339(self.since),
            rfc3339(self.until),
            rfc3339(self.generated_at),
            rfc3339(self.now),
        )?;
        let seqs = match (self.first_seq, self.last_seq) {
            (Some(first), Some(last)) => format!("seq {first}..={last}"),
            _ => "no readable seq".into(),
        };
        let retention = self
            .retention_days
            .map_or("unknown".into(), |days| format!("{days} days"));
        writeln!(
            out,
            "windows: {} ({seqs}), leaves: {}, retention: {retention}",
            self.windows, self.leaves
        )?;
        for finding in &self.findings {
            let line = finding
                .line
                .map(|line| format!("line {line}: "))
                .unwrap_or_default();
            writeln!(
                out,
                "{:<19} {:<10} {:<36} {line}{}",
                finding.kind.name(),
                seq_label(finding.seq),
                printable(finding.event_id.as_deref().unwrap_or("-")),
                printable(&finding.detail)
            )?;
        }
        if !self.findings_not_listed.is_empty() {
            let counts: Vec<String> = self
                .findings_not_listed
                .iter()
                .map(|(kind, count)| format!("{kind}: {count}"))
                .collect();
            writeln!(
                out,
                "… and {} more findings not listed ({}); raise --max-findings to list them",
                self.findings_not_listed.values().sum::<u64>(),
                counts.join(", ")
            )?;
        }
        for expired in &self.expired {
            writeln!(
                out,
                "{:<19} {:<10} {:<36} {} events expired by retention (not a finding)",
                "expired",
                seq_label(expired.seq),
                "-",
                expired.events
            )?;
        }
        if let Some(throughput) = self.throughput {
            writeln!(
                out,
                "verified {} events in {:.3} s ({:.0} events/s)",
                self.events, throughput.seconds, throughput.events_per_second
            )?;
        }
        match self.verdict {
            Verdict::Intact => writeln!(out, "intact"),
            Verdict::NotIntact => writeln!(out, "NOT intact: {} findings", self.findings_total),
        }
    }
}

/// Text from the inputs (an inserted event's id, a bundle's organization) is the adversary's:
/// escape what a terminal would act on (newlines that forge report lines, escape sequences,
/// bidirectional overrides) so that each finding stays one visible line.
fn printable(text: &str) -> Cow<'_, str> {
    let acted_on = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.contains(acted_on) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if acted_on(c) {
            escaped.extend(c.escape_unicode());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

fn seq_label(seq: Option<u64>) -> String {
    seq.map_or("-".into(), |seq| format!("seq {seq}"))
}

/// The document's spelling of a time: RFC 3339, UTC, milliseconds, `Z`.
const MILLISECONDS_UTC: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn rfc3339(time: OffsetDateTime) -> String {
    let utc = time.to_offset(UtcOffset::UTC);
    utc.format(MILLISECONDS_UTC)
        .unwrap_or_else(|_| format!("{utc}"))
}

fn serialize_time<S: serde::Serializer>(
    time: &OffsetDateTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_a_terminal_would_act_on_is_escaped() {
        assert_eq!(printable("evt-0001"), "evt-0001");
        assert_eq!(printable("x\nintact"), "x\\u{a}intact");
        assert_eq!(printable("\u{1b}[2Kok"), "\\u{1b}[2Kok");
        assert_eq!(printable("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(printable("é ✓"), "é ✓");
    }
}
