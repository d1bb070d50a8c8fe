//! Property tests of the CSV encoder of exports: for any text, no cell a spreadsheet opens can
//! start a formula, and the output parses back with a real CSV reader to exactly the cells
//! written — header first, one record per event, however the stream was cut into chunks.

#![allow(clippy::unwrap_used)] // tests: unwrap states what must hold

use audit_store::ExportRow;
use gateway::read::csv_export::{CSV_COLUMNS, CsvEncoder, cells, neutralise, starts_formula};
use proptest::prelude::*;

/// Any text, with the formula triggers and CSV's special characters made likely.
fn text() -> impl Strategy<Value = String> {
    let special = prop::sample::select(vec![
        "=", "+", "-", "@", "\t", "\r", "\n", "\r\n", "\"", ",", "'", " ", "\u{feff}", "\u{0}",
    ]);
    let piece = prop_oneof![
        special.prop_map(str::to_string),
        ".{0,6}",
        any::<char>().prop_map(String::from)
    ];
    prop::collection::vec(piece, 0..6).prop_map(|pieces| pieces.concat())
}

fn row() -> impl Strategy<Value = ExportRow> {
    let texts = prop::collection::vec(text(), 14);
    let targets = prop::collection::vec((text(), text(), text()), 0..4);
    (texts, targets, any::<i64>(), any::<i64>()).prop_map(|(texts, targets, occurred, received)| {
        let mut texts = texts.into_iter();
        let mut next = || texts.next().unwrap_or_default();
        let (target_types, target_ids, target_names) = targets.into_iter().fold(
            (Vec::new(), Vec::new(), Vec::new()),
            |(mut types, mut ids, mut names), (kind, id, name)| {
                types.push(kind);
                ids.push(id);
                names.push(name);
                (types, ids, names)
            },
        );
        ExportRow {
            event_id: next(),
            // Keep times within what the encoder formats (±9999 years).
            occurred_at_ms: occurred % 253_402_300_799_000,
            received_at_ms: received % 253_402_300_799_000,
            category: next(),
            action: next(),
            outcome: next(),
            actor_type: next(),
            actor_id: next(),
            actor_name: next(),
            actor_email: next(),
            target_types,
            target_ids,
            target_names,
            ip: next(),
            user_agent: next(),
            location: next(),
            request_id: next(),
            metadata_json: next(),
            source: next(),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_cell_starts_a_formula_and_nothing_else_changes(cell in text()) {
        let written = neutralise(&cell);
        prop_assert!(!starts_formula(&written), "{written:?}");
        if starts_formula(&cell) {
            prop_assert_eq!(written.as_ref(), format!("'{cell}"));
        } else {
            prop_assert_eq!(written.as_ref(), cell.as_str());
        }
    }

    #[test]
    fn exports_parse_back_to_the_cells_written(rows in prop::collection::vec(row(), 0..8), cuts in prop::collection::vec(any::<bool>(), 8)) {
        let mut encoder = CsvEncoder::new();
        encoder.header();
        let mut output = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            encoder.row(row);
            // The export stream takes chunks at arbitrary row boundaries.
            if cuts[index] {
                output.extend_from_slice(&encoder.take());
            }
        }
        output.extend_from_slice(&encoder.take());

        let mut reader = csv::ReaderBuilder::new().from_reader(&output[..]);
        let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_string).collect();
        prop_assert_eq!(header, CSV_COLUMNS.iter().map(|c| c.to_string()).collect::<Vec<_>>());
        let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        prop_assert_eq!(records.len(), rows.len());
        for (record, row) in records.iter().zip(&rows) {
            let expected: Vec<String> = cells(row).iter().map(|cell| neutralise(cell).into_owned()).collect();
            let parsed: Vec<&str> = record.iter().collect();
            prop_assert_eq!(parsed, expected.iter().map(String::as_str).collect::<Vec<_>>());
            for cell in record.iter() {
                prop_assert!(!starts_formula(cell), "{cell:?}");
            }
        }
    }
}
