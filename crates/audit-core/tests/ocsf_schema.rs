//! The OCSF objects of every catalogue action, checked by an independent validator: the OCSF
//! schema (`ocsf_core::ocsf::OCSF_VERSION`) as JSON Schema, from PyPI's `ocsf-json-schema`,
//! run by `deploy/local/ocsf-validator.sh` (which installs it into the project's venv on
//! first use). Each action is mapped in three shapes that take every branch of the mapping
//! (rich, sparse, odd actors and addresses), plus actions the catalogue gives no class.
//! The objects are written to `$CARGO_TARGET_TMPDIR/ocsf-samples.ndjson` (and to
//! `$OCSF_SAMPLES_OUT` when set, e.g. to look at them).

#![allow(clippy::unwrap_used)] // tests: unwrap states what must hold

use std::path::{Path, PathBuf};
use std::process::Command;

use audit_core::ocsf::{OCSF_VERSION, to_json};
use audit_core::{AuditEvent, Catalogue};
use serde_json::{Value, json};

fn shapes(category: &str, action: &str, index: usize) -> Vec<Value> {
    let id = |shape: usize| format!("0190d7a0-6c1e-7b3a-9f00-{:06}{:06}", index, shape);
    vec![
        json!({
            "id": id(1), "org_id": "org_acme", "occurred_at": "2026-11-26T07:04:25.123Z",
            "received_at": "2026-11-26T07:04:25.200Z", "category": category, "action": action,
            "outcome": "success",
            "actor": {"type": "user", "id": "usr_42", "name": "Ada Lovelace", "email": "ada@acme.example"},
            "targets": [
                {"type": "user", "id": "usr_7", "name": "Grace Hopper"},
                {"type": "resource", "id": "res_1", "name": "prod-db"}
            ],
            "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                        "location": "Paris, FR", "request_id": "req_01HX"},
            "metadata": {"role": "admin", "reason": "quarterly review", "attempt": 2},
            "source": "identity-api", "version": 1, "provenance": "gateway"
        }),
        json!({
            "id": id(2), "org_id": "org_acme", "occurred_at": "2026-11-26T07:04:25Z",
            "category": category, "action": action, "outcome": "failure",
            "actor": {"type": "service", "id": "svc_billing"},
            "metadata": {"flag": true, "nothing": null, "ratio": 0.5, "weird key/with:chars": "x"},
            "version": 1, "provenance": "kafka"
        }),
        json!({
            "id": id(3), "org_id": "org_b", "occurred_at": "2026-11-26T07:04:25.999Z",
            "received_at": "2026-11-26T07:04:26Z", "category": category, "action": action,
            "outcome": "success",
            "actor": {"type": "api_key", "id": "key_1", "name": "ci", "email": "ops@localhost"},
            "targets": [{"type": "member", "id": "usr_9"}],
            "context": {"ip": "2001:db8::1", "user_agent": "curl/8.5.0"},
            "source": "audit-log", "version": 1, "provenance": "system"
        }),
    ]
}

fn write_samples(catalogue: &Catalogue, path: &Path) -> usize {
    let mut lines = String::new();
    let mut add = |catalogue: &Catalogue, category: &str, action: &str, index: usize| {
        for shape in shapes(category, action, index) {
            let event: AuditEvent = serde_json::from_value(shape).unwrap();
            lines.push_str(std::str::from_utf8(&to_json(&event, catalogue)).unwrap());
            lines.push('\n');
        }
    };
    let mut index = 0;
    for category in catalogue.categories() {
        for action in &category.actions {
            index += 1;
            add(catalogue, &category.name, &action.name, index);
        }
    }
    // Actions without a class of their own: not in the catalogue, or listed without `ocsf`.
    let custom = Catalogue::from_toml(
        "version = 1\n[[category]]\nname = 'widgets'\nactions = [{ name = 'widget.spun' }]\n",
    )
    .unwrap();
    add(&custom, "widgets", "widget.spun", index + 1);
    add(catalogue, "widgets", "widget.not_catalogued", index + 2);
    std::fs::write(path, &lines).unwrap();
    if let Some(copy) = std::env::var_os("OCSF_SAMPLES_OUT") {
        std::fs::write(copy, &lines).unwrap();
    }
    lines.lines().count()
}

#[test]
fn every_catalogue_action_is_valid_ocsf() {
    let catalogue = Catalogue::builtin();
    let samples = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ocsf-samples.ndjson");
    let count = write_samples(&catalogue, &samples);
    let actions: usize = catalogue.categories().map(|c| c.actions.len()).sum();
    assert_eq!(count, (actions + 2) * 3);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/ocsf-validator.sh");
    let output = Command::new("bash")
        .arg(&script)
        .args(["--version", OCSF_VERSION])
        .arg(&samples)
        .output()
        .unwrap_or_else(|error| panic!("running {}: {error}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the OCSF validator refused some objects ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let summary = format!("OCSF {OCSF_VERSION}: {count} objects, {count} valid, 0 invalid");
    assert!(
        stdout.contains(&summary),
        "expected `{summary}` in:\n{stdout}"
    );
}

#[test]
fn the_validator_refuses_what_is_not_ocsf() {
    // The validator itself must be able to fail: a wrong activity, a stray attribute and a
    // broken type_uid are each reported.
    let catalogue = Catalogue::builtin();
    let event: AuditEvent =
        serde_json::from_value(shapes("audit_log", "audit_log.viewed", 1).remove(0)).unwrap();
    let good: Value = serde_json::from_slice(&to_json(&event, &catalogue)).unwrap();
    let mut bad_activity = good.clone();
    bad_activity["activity_id"] = json!(7);
    let mut stray = good.clone();
    stray["colour"] = json!("red");
    let mut bad_type = good;
    bad_type["type_uid"] = json!(600_303);
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ocsf-invalid.ndjson");
    let lines: Vec<String> = [bad_activity, stray, bad_type]
        .iter()
        .map(Value::to_string)
        .collect();
    std::fs::write(&path, lines.join("\n")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/ocsf-validator.sh");
    let output = Command::new("bash")
        .arg(&script)
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    assert!(stdout.contains("3 objects, 0 valid, 3 invalid"), "{stdout}");
    assert!(stdout.contains("colour"), "{stdout}");
    assert!(stdout.contains("type_uid"), "{stdout}");
}
