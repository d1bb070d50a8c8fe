//! The built `audit-verify` binary on files in a temporary directory, with the test vectors
//! of `docs/integrity.md` (copied from the document): exit codes and what the report says.

// Helpers outside `#[test]` functions: a failed unwrap is a failed test here too.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const EVENTS: [&str; 3] = [
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_acme","occurred_at":"2026-12-02T10:00:00.000Z","category":"authentication","action":"user.login.succeeded","outcome":"success","actor":{"type":"user","id":"u_1"}}"#,
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000002","org_id":"org_acme","occurred_at":"2026-12-02T10:01:00.000Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_2"}}"#,
    r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000003","org_id":"org_acme","occurred_at":"2026-12-02T10:02:00.000Z","category":"security","action":"api_key.generated","outcome":"success","actor":{"type":"user","id":"u_1"}}"#,
];
const LEAVES: [&str; 3] = [
    "68aafdc241f4a3f686c1af7718442ee952d3b008c68fe67d1d24cc91bd1f50ed",
    "1146241e3beece3a33df59f76cb033153f65b08793dc480fbdb4025ccd84c763",
    "80159386e4417b1c9580f16d5a37a421c16cf75870b597d77c1013b4d4bd62c3",
];
const NOTE: &str = "solarius-audit-digest/v1\norg: org_acme\nseq: 0\npartition: 3\n\
offsets: 1200 1203\nsealed_at: 2026-12-02T10:05:00.000Z\ncount: 3\n\
root: 7cd9a7fbd6c5c159240efe7bc753b4266ff2797ec8fe4a12b48d2162596a2db9\n\
prev: 0000000000000000000000000000000000000000000000000000000000000000\nretention_days: 90\n";
const SIGNATURE: &str =
    "QDRxYqfN8MfnHVHxpp2IE2yxjBn3LSs6/3fPBfFz6SpA1P2/a2AvMPpFjmSWcGhiUvFw+nb7GfH3wJaxHegOAw==";
const PUBLIC_KEY: &str = "ebVWLo/mVPlAeLES6KmLp5AfhTrmlb7X4OORC60ElmQ=";

struct Files {
    _dir: tempfile::TempDir,
    export: PathBuf,
    bundle: PathBuf,
    keys: PathBuf,
}

fn files() -> Files {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("events.ndjson");
    std::fs::write(&export, EVENTS.join("\n") + "\n").unwrap();
    let leaves: Vec<serde_json::Value> = EVENTS
        .iter()
        .zip(LEAVES)
        .map(|(event, leaf)| {
            let event: serde_json::Value = serde_json::from_str(event).unwrap();
            serde_json::json!({"leaf": leaf, "id": event["id"], "occurred_at": event["occurred_at"]})
        })
        .collect();
    let bundle = serde_json::json!({
        "format": "solarius-audit-integrity-bundle/v1", "org_id": "org_acme",
        "since": "2026-12-02T00:00:00.000Z", "until": "2026-12-03T00:00:00.000Z",
        "generated_at": "2026-12-02T10:07:12.345Z",
        "windows": [{"digest": {"org_id": "org_acme", "seq": 0, "note": NOTE, "key_id": "test",
                                "signature": SIGNATURE}, "leaves": leaves}],
    });
    let bundle_path = dir.path().join("bundle.json");
    std::fs::write(&bundle_path, serde_json::to_string_pretty(&bundle).unwrap()).unwrap();
    let keys = dir.path().join("keys.json");
    let keys_json = serde_json::json!({"keys": [{"key_id": "test", "algorithm": "ed25519",
                                                 "public_key": PUBLIC_KEY}]});
    std::fs::write(&keys, keys_json.to_string()).unwrap();
    Files {
        _dir: dir,
        export,
        bundle: bundle_path,
        keys,
    }
}

fn command(files: &Files, export: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_audit-verify"));
    command
        .arg("--export")
        .arg(export)
        .arg("--bundle")
        .arg(&files.bundle)
        .arg("--keys")
        .arg(&files.keys)
        .args(["--now", "2026-12-02T12:00:00Z"]);
    command
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn an_intact_export_exits_0_and_says_intact() {
    let files = files();
    let output = command(&files, &files.export).output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(text.ends_with("\nintact\n"), "{text}");
    assert!(text.contains("verified 3 events in"), "{text}");
}

#[test]
fn one_flipped_byte_exits_1_and_names_the_event() {
    let files = files();
    let mut bytes = std::fs::read(&files.export).unwrap();
    let position = EVENTS[0].len() + 1 + EVENTS[1].find("failed").unwrap();
    bytes[position] ^= 0x20; // "failed" -> "Failed"
    std::fs::write(&files.export, bytes).unwrap();
    let output = command(&files, &files.export).output().unwrap();
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let finding = text
        .lines()
        .find(|line| line.starts_with("altered"))
        .unwrap_or_else(|| panic!("no altered line in {text}"));
    assert!(finding.contains("seq 0"), "{finding}");
    assert!(
        finding.contains("0190d7a0-6c1e-7b3a-9f00-000000000002"),
        "{finding}"
    );
    assert!(finding.contains("line 2"), "{finding}");
    assert!(text.ends_with("\nNOT intact: 1 findings\n"), "{text}");
}

#[test]
fn the_export_can_come_from_standard_input_and_the_report_as_json() {
    let files = files();
    let mut child = command(&files, Path::new("-"))
        .arg("--json")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The second event only: the others are deleted.
    stdin.write_all(EVENTS[1].as_bytes()).unwrap();
    drop(stdin);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["verdict"], "not_intact");
    assert_eq!(report["events"], 1);
    let deleted: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|finding| finding["kind"] == "deleted")
        .map(|finding| finding["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        deleted,
        [
            "0190d7a0-6c1e-7b3a-9f00-000000000001",
            "0190d7a0-6c1e-7b3a-9f00-000000000003"
        ]
    );
    assert!(report["throughput"]["events_per_second"].is_number());
}

#[test]
fn a_malformed_bundle_exits_2_naming_the_file_and_line() {
    let files = files();
    let bundle = std::fs::read_to_string(&files.bundle).unwrap();
    std::fs::write(&files.bundle, bundle.replacen(LEAVES[1], "not-hex", 1)).unwrap();
    let output = command(&files, &files.export).output().unwrap();
    let error = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(error.contains("bundle.json"), "{error}");
    assert!(error.contains("not 64 lowercase hex"), "{error}");
    assert!(error.contains("line "), "{error}");
}

#[test]
fn a_missing_file_or_a_bad_argument_exits_2() {
    let files = files();
    let missing = files.export.with_file_name("nowhere.ndjson");
    let output = command(&files, &missing).output().unwrap();
    let error = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{error}");
    assert!(error.contains("nowhere.ndjson: cannot read"), "{error}");

    let output = command(&files, &files.export)
        .args(["--now", "yesterday"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn help_documents_the_exit_codes_and_the_finding_kinds() {
    let output = Command::new(env!("CARGO_BIN_EXE_audit-verify"))
        .arg("--help")
        .output()
        .unwrap();
    let help = stdout(&output);
    assert_eq!(output.status.code(), Some(0));
    for expected in [
        "--export",
        "--head",
        "--now",
        "Exit codes",
        "truncated",
        "deleted",
    ] {
        assert!(help.contains(expected), "{expected} missing from {help}");
    }
}
