//! The whole check of "Verifying an export" (`docs/integrity.md`), without IO: built from the
//! bundle, the auditor's keys and the optional held head (steps 1 and 2, see [`crate::chain`]),
//! fed the export one line at a time (step 3, see [`crate::events`]), finished into a
//! [`Report`] (steps 4 and 5).

use time::{Duration, OffsetDateTime};

use crate::bundle::{Bundle, SignedDigest};
use crate::chain;
use crate::events::{EventCheck, Scope};
use crate::export::ExportLine;
use crate::keys::KeyRing;
use crate::report::{Findings, Report, Verdict};

#[derive(Debug, Clone)]
pub struct Options {
    /// The time of the check, for expiry by retention.
    pub now: OffsetDateTime,
    /// The indexer's window length, when the auditor knows it; else inferred from the bundle.
    pub window_length: Option<Duration>,
    /// Findings listed in detail; the rest are counted by kind.
    pub max_findings: usize,
}

pub struct Verification {
    findings: Findings,
    events: EventCheck,
    report: Report,
}

impl Verification {
    /// Steps 1 and 2: the digests, and the head (or how recent the newest digest is).
    pub fn new(
        bundle: Bundle,
        keys: &KeyRing,
        head: Option<&SignedDigest>,
        options: &Options,
    ) -> Self {
        let mut findings = Findings::new(options.max_findings);
        let windows = chain::check_digests(&bundle, keys, &mut findings);
        let held_head =
            head.and_then(|head| chain::check_head(&bundle, head, keys, &windows, &mut findings));
        // A held head proves nothing about windows newer than itself.
        let newest_seq = windows
            .iter()
            .filter_map(|window| window.note.as_ref().map(|note| note.seq))
            .max();
        let head_covers_bundle = held_head
            .as_ref()
            .is_some_and(|head| newest_seq.is_none_or(|newest| head.seq >= newest));
        if !head_covers_bundle {
            chain::check_sealed_recently(&bundle, &windows, options.window_length, &mut findings);
        }
        let retention_days = chain::newest_retention(&windows, held_head.as_ref());
        let scope = Scope {
            since: bundle.since,
            until: bundle.until,
            now: options.now,
            retention_days,
        };
        let mut report = Report {
            verdict: Verdict::Intact,
            org_id: bundle.org_id.clone(),
            since: bundle.since,
            until: bundle.until,
            generated_at: bundle.generated_at,
            now: options.now,
            windows: windows.len(),
            first_seq: windows.first().and_then(|window| window.seq),
            last_seq: windows.last().and_then(|window| window.seq),
            leaves: 0,
            events: 0,
            retention_days,
            findings_total: 0,
            findings: Vec::new(),
            findings_not_listed: Default::default(),
            expired: Vec::new(),
            throughput: None,
        };
        let seqs = windows.iter().map(|window| window.seq).collect();
        let events = EventCheck::new(bundle.windows, seqs, scope);
        report.leaves = events.leaf_count();
        Self {
            findings,
            events,
            report,
        }
    }

    /// Step 3 for one export line.
    pub fn check_line(&mut self, line: &ExportLine<'_>) {
        self.events.check_line(line, &mut self.findings);
    }

    /// Steps 4 and 5: completeness, then the verdict.
    pub fn finish(mut self) -> Report {
        self.report.events = self.events.lines_checked();
        self.report.expired = self.events.finish(&mut self.findings);
        self.report.findings_from(self.findings);
        self.report
    }
}
