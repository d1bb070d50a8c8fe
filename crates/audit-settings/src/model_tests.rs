//! Unit tests of the settings records (no IO).
#![allow(clippy::unwrap_used)]

use super::*;

#[test]
fn filters_match_exact_prefix_and_exclusions() {
    let filters = Filters {
        categories: vec!["authentication".into(), "security".into()],
        actions: vec!["user.*".into(), "token.refreshed".into()],
        exclude_actions: vec!["user.login.succeeded".into()],
        integrity_digests: false,
    };
    assert!(filters.matches("authentication", "user.login.failed"));
    assert!(filters.matches("security", "token.refreshed"));
    assert!(!filters.matches("authentication", "user.login.succeeded"));
    assert!(!filters.matches("billing", "user.login.failed"));
    assert!(!filters.matches("security", "api_key.generated"));
    assert!(Filters::default().matches("anything", "any.action"));
}

#[test]
fn integrity_digests_are_forwarded_only_on_request() {
    assert!(!Filters::default().matches("audit_log", INTEGRITY_SEALED));
    let wanted = Filters {
        categories: vec!["authentication".into()],
        integrity_digests: true,
        ..Filters::default()
    };
    assert!(wanted.matches("audit_log", INTEGRITY_SEALED));
    assert!(!wanted.matches("audit_log", "audit_log.exported"));
    let excluded = Filters {
        exclude_actions: vec!["audit_log.*".into()],
        integrity_digests: true,
        ..Filters::default()
    };
    assert!(!excluded.matches("audit_log", INTEGRITY_SEALED));
}

#[test]
fn a_destination_of_any_type_is_read_and_written_as_it_came() {
    // Types are the sinks' business (`audit_sinks::registry`): a type this build does not
    // know is still a readable record, refused only where its sink is built.
    let record = r#"{"id":"dst_1","name":"n","enabled":true,"state":{"status":"active"},"filters":{"categories":[],"actions":[],"exclude_actions":[],"integrity_digests":false},"signing_secrets":[],"config":{"type":"sentinel","workspace":"w","key":"v1.k.n.c"},"created_at":"2026-01-01T00:00:00Z"}"#;
    let destination: Destination = serde_json::from_str(record).expect("parse");
    assert_eq!(destination.config.type_name(), "sentinel");
    assert_eq!(serde_json::to_string(&destination).unwrap(), record);
}

#[test]
fn the_format_is_native_unless_chosen_and_only_written_when_ocsf() {
    let record = r#"{"id":"dst_1","name":"n","enabled":true,"config":{"type":"webhook","url":"https://x.example"},"created_at":"2026-01-01T00:00:00Z"}"#;
    let mut destination: Destination = serde_json::from_str(record).expect("parse");
    assert_eq!(destination.format, EventFormat::Native);
    assert!(
        !serde_json::to_string(&destination)
            .unwrap()
            .contains("format")
    );
    destination.format = EventFormat::Ocsf;
    let json = serde_json::to_string(&destination).unwrap();
    assert!(json.contains(r#""format":"ocsf""#), "{json}");
    assert_eq!(
        serde_json::from_str::<Destination>(&json).unwrap(),
        destination
    );
    let unknown = record.replace("\"enabled\"", "\"format\":\"xml\",\"enabled\"");
    assert!(serde_json::from_str::<Destination>(&unknown).is_err());
}

#[test]
fn records_round_trip_with_their_kind() {
    let now = OffsetDateTime::UNIX_EPOCH;
    let record = SettingsRecord::Org(OrgSettings::new("org_a", now, "ops"));
    let json = serde_json::to_string(&record).expect("json");
    assert!(json.contains("\"kind\":\"org\""), "{json}");
    assert_eq!(
        serde_json::from_str::<SettingsRecord>(&json).expect("parse"),
        record
    );
    assert_eq!(record.key(), "org/org_a");
}
