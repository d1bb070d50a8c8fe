//! The CSV encoding of exports: RFC 4180 (CRLF line ends, quotes where needed), a header row,
//! timestamps in RFC 3339 UTC with milliseconds and an explicit `Z`.
//!
//! **Formula injection.** A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@`, a tab
//! or a carriage return as a formula, and event fields are chosen by whoever produced the
//! event. Every cell that starts with one of them is prefixed with `'` (OWASP's advice), which
//! spreadsheets show as text. This holds for every cell, whatever the column: the encoder does
//! not rely on knowing which columns can hold such text.

use std::borrow::Cow;

use audit_store::ExportRow;
use bytes::Bytes;

/// The CSV columns of an export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "occurred_at",
    "received_at",
    "category",
    "action",
    "outcome",
    "actor_type",
    "actor_id",
    "actor_name",
    "actor_email",
    "targets",
    "ip",
    "user_agent",
    "location",
    "request_id",
    "metadata",
    "source",
];

/// Whether a spreadsheet would run a cell starting with `first` as a formula.
pub fn starts_formula(cell: &str) -> bool {
    matches!(
        cell.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    )
}

/// The cell as written: prefixed with `'` when it would otherwise run as a formula.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if starts_formula(cell) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

/// `2026-11-26T07:04:25.123Z`.
pub fn utc_millis(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    audit_core::event::format_utc_millis(at)
}

/// `type:id (name); type:id` — one entry per target.
pub fn targets_cell(types: &[String], ids: &[String], names: &[String]) -> String {
    types
        .iter()
        .zip(ids)
        .enumerate()
        .map(|(index, (kind, id))| match names.get(index) {
            Some(name) if !name.is_empty() => format!("{kind}:{id} ({name})"),
            _ => format!("{kind}:{id}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The cells of one row, in [`CSV_COLUMNS`] order, before neutralising.
pub fn cells(row: &ExportRow) -> [Cow<'_, str>; 17] {
    [
        Cow::Borrowed(row.event_id.as_str()),
        Cow::Owned(utc_millis(row.occurred_at_ms)),
        Cow::Owned(utc_millis(row.received_at_ms)),
        Cow::Borrowed(row.category.as_str()),
        Cow::Borrowed(row.action.as_str()),
        Cow::Borrowed(row.outcome.as_str()),
        Cow::Borrowed(row.actor_type.as_str()),
        Cow::Borrowed(row.actor_id.as_str()),
        Cow::Borrowed(row.actor_name.as_str()),
        Cow::Borrowed(row.actor_email.as_str()),
        Cow::Owned(targets_cell(
            &row.target_types,
            &row.target_ids,
            &row.target_names,
        )),
        Cow::Borrowed(row.ip.as_str()),
        Cow::Borrowed(row.user_agent.as_str()),
        Cow::Borrowed(row.location.as_str()),
        Cow::Borrowed(row.request_id.as_str()),
        Cow::Borrowed(row.metadata_json.as_str()),
        Cow::Borrowed(row.source.as_str()),
    ]
}

/// Encodes records into a buffer that the export stream drains chunk by chunk.
#[derive(Debug)]
pub struct CsvEncoder {
    writer: csv::Writer<Vec<u8>>,
}

impl Default for CsvEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvEncoder {
    pub fn new() -> Self {
        Self {
            writer: Self::writer(),
        }
    }

    fn writer() -> csv::Writer<Vec<u8>> {
        csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(Vec::new())
    }

    /// Appends one record of any cells, each neutralised.
    pub fn record<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) {
        // Writing into a Vec cannot fail.
        for cell in cells {
            let _ = self.writer.write_field(neutralise(cell).as_bytes());
        }
        let _ = self.writer.write_record(None::<&[u8]>);
    }

    /// Appends the header row.
    pub fn header(&mut self) {
        self.record(CSV_COLUMNS.iter().copied());
    }

    /// Appends one event.
    pub fn row(&mut self, row: &ExportRow) {
        let cells = cells(row);
        self.record(cells.iter().map(|cell| cell.as_ref()));
    }

    /// Bytes encoded so far and not yet taken (give or take csv's small internal buffer).
    pub fn buffered(&self) -> usize {
        self.writer.get_ref().len()
    }

    /// Takes the bytes encoded so far.
    pub fn take(&mut self) -> Bytes {
        let writer = std::mem::replace(&mut self.writer, Self::writer());
        // Flushing into a Vec cannot fail.
        Bytes::from(writer.into_inner().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn formula_cells_are_prefixed() {
        for cell in ["=1+1", "+cmd", "-2", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "plain", "'=quoted", " =spaced", "1-2"] {
            assert_eq!(neutralise(cell), cell);
        }
    }

    #[test]
    fn timestamps_are_utc_with_z() {
        assert_eq!(utc_millis(1_764_140_665_123), "2025-11-26T07:04:25.123Z");
        assert_eq!(utc_millis(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn targets_are_listed_with_their_names() {
        let cell = targets_cell(
            &["user".into(), "project".into()],
            &["u_1".into(), "p_1".into()],
            &["Ada".into(), String::new()],
        );
        assert_eq!(cell, "user:u_1 (Ada); project:p_1");
    }

    #[test]
    fn rows_are_crlf_terminated_and_parse_back() {
        let mut encoder = CsvEncoder::new();
        encoder.header();
        let row = ExportRow {
            event_id: "id-1".into(),
            actor_name: "=HYPERLINK(\"http://evil.example\",\"x\")".into(),
            user_agent: "line\nbreak, \"quoted\"".into(),
            metadata_json: "{\"a\":\"1\"}".into(),
            ..ExportRow::default()
        };
        encoder.row(&row);
        let bytes = encoder.take();
        assert!(bytes.ends_with(b"\r\n"));
        assert_eq!(encoder.buffered(), 0);
        let mut reader = csv::Reader::from_reader(&bytes[..]);
        assert_eq!(reader.headers().unwrap().len(), CSV_COLUMNS.len());
        let record = reader.records().next().unwrap().unwrap();
        assert_eq!(&record[8], "'=HYPERLINK(\"http://evil.example\",\"x\")");
        assert_eq!(&record[12], "line\nbreak, \"quoted\"");
        assert_eq!(&record[1], "1970-01-01T00:00:00.000Z");
    }
}
