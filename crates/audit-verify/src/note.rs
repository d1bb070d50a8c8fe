//! The digest note (`docs/integrity.md`, "The digest note"): parsing and its chaining hash.
//!
//! A note is exactly ten lines, in this order, each ended by `\n` (also the last), each after
//! the first `key: value` with one space:
//!
//! ```text
//! solarius-audit-digest/v1
//! org: <org_id>
//! seq: <n>
//! partition: <kafka partition>
//! offsets: <first> <end>
//! sealed_at: <RFC 3339 UTC time>
//! count: <number of leaves>
//! root: <64 lowercase hex>
//! prev: <64 lowercase hex>
//! retention_days: <days>
//! ```
//!
//! Parsing is strict (no other line, no other spelling of a number or a hash): the signature
//! covers the bytes, and a note a verifier reads differently from its producer is a problem to
//! report, not to guess around.

use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::merkle::{Hash, parse_hex};

pub const HEADER: &str = "solarius-audit-digest/v1";

/// The keys of the lines after the header, in their required order.
const KEYS: [&str; 9] = [
    "org",
    "seq",
    "partition",
    "offsets",
    "sealed_at",
    "count",
    "root",
    "prev",
    "retention_days",
];

/// One organization's window, as its signed note states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub org: String,
    pub seq: u64,
    pub partition: u32,
    /// Half-open `[first, end)` range of the partition's offsets (for diagnosis only).
    pub offsets: (u64, u64),
    pub sealed_at: OffsetDateTime,
    pub count: u64,
    pub root: Hash,
    /// Digest hash of the note with `seq - 1`; zeros for seq 0.
    pub prev: Hash,
    pub retention_days: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("the note does not end with a newline")]
    NoFinalNewline,
    #[error("the first line is not {HEADER:?}")]
    WrongHeader,
    #[error("the note has {0} lines, not 10")]
    WrongLineCount(usize),
    #[error("line {line}: expected `{key}: <value>`")]
    WrongKey { line: usize, key: &'static str },
    #[error("line {line} ({key}): {problem}")]
    BadValue {
        line: usize,
        key: &'static str,
        problem: &'static str,
    },
}

/// The digest hash: `SHA-256(note bytes)`, which the next note's `prev` repeats.
pub fn digest_hash(note: &[u8]) -> Hash {
    Sha256::digest(note).into()
}

impl Note {
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text.strip_suffix('\n').ok_or(NoteError::NoFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        if lines.first() != Some(&HEADER) {
            return Err(NoteError::WrongHeader);
        }
        if lines.len() != KEYS.len() + 1 {
            return Err(NoteError::WrongLineCount(lines.len()));
        }
        let mut values = [""; KEYS.len()];
        for (index, (line, key)) in lines[1..].iter().zip(KEYS).enumerate() {
            let line_number = index + 2;
            let value = line
                .strip_prefix(key)
                .and_then(|rest| rest.strip_prefix(": "))
                .ok_or(NoteError::WrongKey {
                    line: line_number,
                    key,
                })?;
            values[index] = value;
        }
        let field = |index: usize| Field {
            line: index + 2,
            key: KEYS[index],
            value: values[index],
        };
        let org = field(0);
        if org.value.is_empty() || org.value.trim() != org.value {
            return Err(org.error("empty or padded with spaces"));
        }
        let (first, end) = field(3).offsets()?;
        Ok(Self {
            org: org.value.to_owned(),
            seq: field(1).decimal()?,
            partition: field(2).decimal()?,
            offsets: (first, end),
            sealed_at: field(4).time()?,
            count: field(5).decimal()?,
            root: field(6).hash()?,
            prev: field(7).hash()?,
            retention_days: field(8).decimal()?,
        })
    }
}

/// One `key: value` line, for parsing its value and naming it in errors.
struct Field<'a> {
    line: usize,
    key: &'static str,
    value: &'a str,
}

impl Field<'_> {
    fn error(&self, problem: &'static str) -> NoteError {
        NoteError::BadValue {
            line: self.line,
            key: self.key,
            problem,
        }
    }

    /// A decimal without sign or leading zero (Rust's parsers alone would accept `+7`).
    fn decimal<T: std::str::FromStr>(&self) -> Result<T, NoteError> {
        parse_decimal(self.value).ok_or_else(|| self.error("not a plain decimal number in range"))
    }

    fn offsets(&self) -> Result<(u64, u64), NoteError> {
        let (first, end) = self
            .value
            .split_once(' ')
            .ok_or_else(|| self.error("expected `<first> <end>`"))?;
        let first = parse_decimal(first).ok_or_else(|| self.error("bad first offset"))?;
        let end = parse_decimal(end).ok_or_else(|| self.error("bad end offset"))?;
        if first > end {
            return Err(self.error("first offset after end offset"));
        }
        Ok((first, end))
    }

    fn time(&self) -> Result<OffsetDateTime, NoteError> {
        let time = OffsetDateTime::parse(self.value, &Rfc3339)
            .map_err(|_| self.error("not an RFC 3339 time"))?;
        if !self.value.ends_with('Z') {
            return Err(self.error("not in UTC (`Z`)"));
        }
        Ok(time)
    }

    fn hash(&self) -> Result<Hash, NoteError> {
        parse_hex(self.value).ok_or_else(|| self.error("not 64 lowercase hex digits"))
    }
}

fn parse_decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    let digits_only = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    let no_leading_zero = text == "0" || !text.starts_with('0');
    if !(digits_only && no_leading_zero) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::merkle::to_hex;
    use crate::vectors;

    #[test]
    fn the_documented_note_parses_to_its_fields() {
        let note = Note::parse(vectors::NOTE).unwrap();
        assert_eq!(note.org, "org_acme");
        assert_eq!(note.seq, 0);
        assert_eq!(note.partition, 3);
        assert_eq!(note.offsets, (1200, 1203));
        assert_eq!(note.sealed_at, datetime!(2026-12-02 10:05:00 UTC));
        assert_eq!(note.count, 3);
        assert_eq!(to_hex(&note.root), vectors::ROOT);
        assert_eq!(note.prev, [0u8; 32]);
        assert_eq!(note.retention_days, 90);
    }

    #[test]
    fn the_documented_digest_hash_matches_the_vector() {
        assert_eq!(
            to_hex(&digest_hash(vectors::NOTE.as_bytes())),
            vectors::DIGEST_HASH
        );
    }

    fn with_line(line: usize, replacement: &str) -> String {
        let mut lines: Vec<&str> = vectors::NOTE.lines().collect();
        lines[line - 1] = replacement;
        lines.join("\n") + "\n"
    }

    #[test]
    fn a_note_without_its_final_newline_is_refused() {
        let text = vectors::NOTE.trim_end_matches('\n');
        assert_eq!(Note::parse(text), Err(NoteError::NoFinalNewline));
    }

    #[test]
    fn another_header_or_an_extra_line_is_refused() {
        assert_eq!(
            Note::parse(&with_line(1, "solarius-audit-digest/v2")),
            Err(NoteError::WrongHeader)
        );
        let extra = format!("{}extra: 1\n", vectors::NOTE);
        assert_eq!(Note::parse(&extra), Err(NoteError::WrongLineCount(11)));
    }

    #[test]
    fn lines_out_of_order_are_refused_naming_the_line() {
        let swapped = with_line(3, "partition: 3");
        assert_eq!(
            Note::parse(&swapped),
            Err(NoteError::WrongKey {
                line: 3,
                key: "seq"
            })
        );
    }

    #[test]
    fn non_canonical_values_are_refused() {
        for (line, text) in [
            (3, "seq: +0"),
            (3, "seq: 00"),
            (3, "seq:  0"),
            (5, "offsets: 1203 1200"),
            (6, "sealed_at: 2026-12-02T11:05:00.000+01:00"),
            (8, &format!("root: {}", vectors::ROOT.to_uppercase())),
            (10, "retention_days: -1"),
            (2, "org: "),
        ] {
            let result = Note::parse(&with_line(line, text));
            assert!(
                matches!(result, Err(NoteError::BadValue { line: l, .. }) if l == line),
                "{text:?} gave {result:?}"
            );
        }
    }
}
