//! Every finding kind from a tampered input (issue 15), on the chain of [`fixture`].

mod fixture;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

use crate::report::{Expired, Kind, Verdict};
use fixture::{
    chain, event, findings, note, rogue_key, signed, specs, standard, test_key, verify,
    verify_with, window_findings,
};

#[test]
fn an_untouched_export_is_intact() {
    let report = verify(&standard());
    assert_eq!(findings(&report), []);
    assert_eq!(report.verdict, Verdict::Intact);
    assert_eq!((report.windows, report.leaves, report.events), (3, 5, 5));
    assert_eq!((report.first_seq, report.last_seq), (Some(0), Some(2)));
    assert_eq!(report.retention_days, Some(90));
    assert!(report.expired.is_empty());
}

#[test]
fn a_deleted_line_is_deleted_naming_window_and_event() {
    let mut chain = standard();
    chain.remove_lines_of(&["evt-0004"]);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::Deleted, Some(1), Some("evt-0004"), None)]
    );
    assert_eq!(report.verdict, Verdict::NotIntact);
}

#[test]
fn one_flipped_byte_is_altered_naming_window_event_and_line() {
    let mut chain = standard();
    let mut bytes = chain.export[1].clone().into_bytes();
    let position = chain.export[1].find("login").unwrap();
    bytes[position] ^= 0x01;
    chain.export[1] = String::from_utf8(bytes).unwrap();
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::Altered, Some(0), Some("evt-0002"), Some(2))]
    );
}

#[test]
fn a_field_changed_to_another_occurred_at_is_altered_not_also_deleted() {
    let mut chain = standard();
    chain.export[0] = chain.export[0].replace("10:00:00.000Z", "09:00:00.000Z");
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::Altered, Some(0), Some("evt-0001"), Some(1))]
    );
}

#[test]
fn a_forged_line_is_inserted() {
    let mut chain = standard();
    chain.export.push(event(99, "2026-12-02T10:03:00.000Z"));
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::Inserted, None, Some("evt-0099"), Some(6))]
    );
}

#[test]
fn a_repeated_line_is_duplicated_naming_both_lines() {
    let mut chain = standard();
    chain.export.push(chain.export[1].clone());
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::Duplicated, Some(0), Some("evt-0002"), Some(6))]
    );
    assert!(report.findings[0].detail.contains("line 2"));
}

#[test]
fn swapped_leaves_do_not_give_the_signed_root() {
    let mut chain = standard();
    let leaves = chain.windows()[0]["leaves"].as_array_mut().unwrap();
    leaves.swap(0, 1);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::RootMismatch, Some(0), None, None)]
    );
}

#[test]
fn a_removed_leaf_does_not_give_the_signed_count() {
    let mut chain = standard();
    chain.windows()[1]["leaves"].as_array_mut().unwrap().pop();
    chain.remove_lines_of(&["evt-0005"]);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::CountMismatch, Some(1), None, None)]
    );
}

#[test]
fn a_dropped_window_and_its_events_are_a_missing_window() {
    let mut chain = standard();
    chain.windows().remove(1);
    chain.remove_lines_of(&["evt-0004", "evt-0005"]);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::MissingWindow, Some(2), None, None)]
    );
    assert!(report.findings[0].detail.contains("seq 1..=1"));
}

#[test]
fn events_of_a_dropped_window_left_in_the_export_are_no_leaves() {
    let mut chain = standard();
    chain.windows().remove(1);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [
            (Kind::MissingWindow, Some(2), None, None),
            (Kind::Inserted, None, Some("evt-0004"), Some(4)),
            (Kind::Inserted, None, Some("evt-0005"), Some(5)),
        ]
    );
}

#[test]
fn cut_newest_windows_are_truncated_against_the_held_head() {
    let mut chain = standard();
    let head = chain.digest(2);
    chain.windows().truncate(1);
    chain.remove_lines_of(&["evt-0004", "evt-0005"]);
    let report = verify_with(&chain, Some(&head), 100);
    assert_eq!(findings(&report), [(Kind::Truncated, Some(2), None, None)]);
    assert!(report.findings[0].detail.contains("seq 1..=2"));
}

#[test]
fn cut_newest_windows_without_a_head_are_not_sealed_recently() {
    let mut chain = standard();
    chain.windows().truncate(1);
    chain.remove_lines_of(&["evt-0004", "evt-0005"]);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::NotSealedRecently, Some(0), None, None)]
    );
}

#[test]
fn a_held_head_equal_to_the_newest_digest_or_older_is_reached() {
    let chain = standard();
    for window in [2, 0] {
        let report = verify_with(&chain, Some(&chain.digest(window)), 100);
        assert_eq!(findings(&report), [], "head seq {window}");
    }
}

#[test]
fn a_held_head_older_than_the_bundle_does_not_vouch_for_its_end() {
    let mut chain = standard();
    let head = chain.digest(0);
    chain.bundle["generated_at"] = json!("2026-12-02T11:00:00.000Z");
    let report = verify_with(&chain, Some(&head), 100);
    assert_eq!(
        window_findings(&report),
        [(Kind::NotSealedRecently, Some(2))]
    );
}

#[test]
fn a_rewritten_chain_does_not_reach_the_held_head() {
    let chain = standard();
    let mut other = specs(90);
    other[2].sealed_at = "2026-12-02T10:16:00.000Z";
    let rewritten = self::chain(&other);
    let report = verify_with(&chain, Some(&rewritten.digest(2)), 100);
    assert_eq!(
        findings(&report),
        [(Kind::HeadMismatch, Some(2), None, None)]
    );
}

#[test]
fn a_held_head_that_does_not_verify_is_reported_and_recency_still_checked() {
    let mut chain = standard();
    let mut head = chain.digest(2);
    head["signature"] = json!(STANDARD.encode([0u8; 64]));
    let report = verify_with(&chain, Some(&head), 100);
    assert_eq!(findings(&report), [(Kind::BadHead, Some(2), None, None)]);

    chain.windows().truncate(1);
    chain.export.truncate(3);
    let report = verify_with(&chain, Some(&head), 100);
    assert_eq!(
        findings(&report),
        [
            (Kind::BadHead, Some(2), None, None),
            (Kind::NotSealedRecently, Some(0), None, None),
        ]
    );
}

#[test]
fn a_digest_signed_by_an_unknown_key_is_reported() {
    let mut chain = standard();
    let note = chain.digest(1)["note"].as_str().unwrap().to_owned();
    chain.windows()[1]["digest"] = signed(1, &note, &rogue_key(), "rogue");
    let report = verify(&chain);
    assert_eq!(findings(&report), [(Kind::UnknownKey, Some(1), None, None)]);
    assert!(report.findings[0].detail.contains("\"rogue\""));
}

#[test]
fn a_digest_signed_by_another_key_under_a_known_id_is_a_bad_signature() {
    let mut chain = standard();
    let note = chain.digest(1)["note"].as_str().unwrap().to_owned();
    chain.windows()[1]["digest"] = signed(1, &note, &rogue_key(), "test");
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::BadSignature, Some(1), None, None)]
    );
}

#[test]
fn an_edited_note_no_longer_verifies() {
    let mut chain = standard();
    let note = chain.digest(0)["note"].as_str().unwrap().to_owned();
    let edited = note.replace("retention_days: 90", "retention_days: 1");
    chain.windows()[0]["digest"]["note"] = json!(edited);
    let report = verify(&chain);
    // The edit also breaks the link to the next digest, whose prev hashes the original note.
    assert_eq!(
        window_findings(&report),
        [(Kind::BadSignature, Some(0)), (Kind::BrokenChain, Some(1))]
    );
}

#[test]
fn a_note_that_does_not_parse_or_names_another_org_is_a_bad_digest() {
    let mut chain = standard();
    chain.windows()[2]["digest"] = signed(2, "garbage\n", &test_key(), "test");
    chain.bundle["org_id"] = json!("org_other");
    let report = verify(&chain);
    let mut kinds = window_findings(&report);
    kinds.retain(|(kind, _)| *kind == Kind::BadDigest);
    assert_eq!(
        kinds,
        [
            (Kind::BadDigest, Some(0)),
            (Kind::BadDigest, Some(1)),
            (Kind::BadDigest, Some(2)),
        ]
    );
}

#[test]
fn a_prev_that_is_not_the_previous_digest_hash_breaks_the_chain() {
    let specs = specs(90);
    let mut chain = chain(&specs);
    let wrong_prev = note(1, &specs[1], 1203, &[7u8; 32]);
    chain.windows()[1]["digest"] = signed(1, &wrong_prev, &test_key(), "test");
    let report = verify(&chain);
    let kinds = window_findings(&report);
    // seq 1 names a wrong prev, and seq 2's prev names the original seq 1.
    assert_eq!(
        kinds,
        [(Kind::BrokenChain, Some(1)), (Kind::BrokenChain, Some(2))]
    );
}

#[test]
fn windows_out_of_order_break_the_chain() {
    let mut chain = standard();
    chain.windows().swap(1, 2);
    let report = verify(&chain);
    let kinds = window_findings(&report);
    assert_eq!(
        kinds,
        [(Kind::MissingWindow, Some(2)), (Kind::BrokenChain, Some(1))]
    );
}

#[test]
fn an_event_expired_by_retention_is_not_a_deletion() {
    let mut specs = specs(30);
    specs[0].events.push(event(7, "2026-10-15T08:00:00.000Z"));
    let mut chain = chain(&specs);
    chain.remove_lines_of(&["evt-0007"]);
    let report = verify(&chain);
    assert_eq!(findings(&report), []);
    assert_eq!(report.verdict, Verdict::Intact);
    assert_eq!(
        report.expired,
        [Expired {
            seq: Some(0),
            events: 1
        }]
    );
}

#[test]
fn the_same_missing_event_within_retention_is_deleted() {
    let mut specs = specs(90);
    specs[0].events.push(event(7, "2026-10-15T08:00:00.000Z"));
    let mut chain = chain(&specs);
    chain.remove_lines_of(&["evt-0007"]);
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::Deleted, Some(0), Some("evt-0007"), None)]
    );
    assert!(report.expired.is_empty());
}

#[test]
fn leaves_outside_the_range_are_not_expected_in_the_export() {
    let mut chain = standard();
    chain.bundle["since"] = json!("2026-12-02T10:05:00.000Z");
    chain.remove_lines_of(&["evt-0001", "evt-0002", "evt-0003"]);
    assert_eq!(findings(&verify(&chain)), []);
}

#[test]
fn a_changed_leaf_listing_is_caught_where_the_event_is_at_hand() {
    let mut chain = standard();
    chain.windows()[0]["leaves"][0]["occurred_at"] = json!("2020-01-01T00:00:00.000Z");
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [(Kind::LeafMetadata, Some(0), Some("evt-0001"), Some(1))]
    );
}

#[test]
fn a_line_that_is_no_event_is_unreadable_and_its_event_missing() {
    let mut chain = standard();
    chain.export[1] = "{\"id\":\"evt-0002\",".into();
    let report = verify(&chain);
    assert_eq!(
        findings(&report),
        [
            (Kind::Unreadable, None, None, Some(2)),
            (Kind::Deleted, Some(0), Some("evt-0002"), None),
        ]
    );
}

#[test]
fn a_retried_event_is_two_leaves_and_either_row_is_accepted() {
    let mut specs = specs(90);
    let retry = event(2, "2026-12-02T10:01:00.000Z").replace("\"u_2\"", "\"u_2\" ");
    specs[1].events.push(retry);
    let chain = chain(&specs);
    let mut kept_first = chain.clone();
    kept_first.export.pop();
    let mut kept_second = chain.clone();
    kept_second.export.remove(1);
    assert_eq!(findings(&verify(&kept_first)), []);
    assert_eq!(findings(&verify(&kept_second)), []);
    let both = verify(&chain);
    assert_eq!(
        findings(&both),
        [(Kind::Duplicated, Some(1), Some("evt-0002"), Some(6))]
    );
}

#[test]
fn findings_beyond_the_limit_are_counted_by_kind() {
    let mut chain = standard();
    for number in 100..105 {
        chain.export.push(event(number, "2026-12-02T10:03:00.000Z"));
    }
    let report = verify_with(&chain, None, 2);
    assert_eq!(report.findings.len(), 2);
    assert_eq!(report.findings_total, 5);
    assert_eq!(report.findings_not_listed.get(&Kind::Inserted), Some(&3));
}

#[test]
fn the_human_report_lists_each_finding_and_ends_with_the_verdict() {
    let mut chain = standard();
    chain.remove_lines_of(&["evt-0004"]);
    let mut text = Vec::new();
    verify(&chain).write_human(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("organization org_acme, events from 2026-10-01T00:00:00.000Z"));
    assert!(lines[2].starts_with("deleted"), "{text}");
    assert!(
        lines[2].contains("seq 1") && lines[2].contains("evt-0004"),
        "{text}"
    );
    assert_eq!(lines.last(), Some(&"NOT intact: 1 findings"));

    let mut text = Vec::new();
    verify(&standard()).write_human(&mut text).unwrap();
    assert!(String::from_utf8(text).unwrap().ends_with("\nintact\n"));
}

#[test]
fn the_json_report_names_kinds_in_snake_case() {
    let mut chain = standard();
    chain.export.push(chain.export[0].clone());
    let mut json = Vec::new();
    verify(&chain).write_json(&mut json).unwrap();
    let report: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(report["verdict"], "not_intact");
    assert_eq!(report["findings"][0]["kind"], "duplicated");
    assert_eq!(report["findings"][0]["event_id"], "evt-0001");
    assert_eq!(report["findings_total"], 1);
}

#[test]
fn a_forged_id_cannot_forge_report_lines() {
    let mut chain = standard();
    chain
        .export
        .push(r#"{"id":"x\nintact\n\u001b[2K","occurred_at":"2026-12-02T10:03:00.000Z"}"#.into());
    let mut text = Vec::new();
    verify(&chain).write_human(&mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        text.lines().filter(|line| *line == "intact").count(),
        0,
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("x\\u{a}intact\\u{a}\\u{1b}[2K"), "{text}");
}
