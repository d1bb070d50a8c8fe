//! Tests of the validator: both passes, the stamping, the limits and hostile input.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::event::Provenance;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

fn validator() -> EventValidator {
    EventValidator::new(Arc::new(Catalogue::builtin()), Limits::default()).expect("validator")
}

fn arrival() -> Arrival<'static> {
    Arrival {
        now: NOW,
        received_at: NOW,
        fallback_id: Uuid::from_u128(7),
        provenance: Provenance::Kafka,
        verified_source: None,
    }
}

fn good() -> Value {
    json!({
        "org_id": "org_acme",
        "occurred_at": "2026-11-26T13:59:59.123456+02:00",
        "category": "authentication",
        "action": "user.login.succeeded",
        "outcome": "success",
        "actor": {"type": "user", "id": "u_1", "name": "Ada", "email": "ada@example.com"},
        "targets": [{"type": "session", "id": "s_1"}],
        "context": {"ip": "203.0.113.9", "user_agent": "curl/8", "request_id": "r1"},
        "metadata": {"mfa": true, "attempt": 2, "method": "password", "note": null},
        "source": "identity-api"
    })
}

fn errors_of(value: Value) -> Vec<FieldError> {
    validator()
        .validate_value(&value, arrival())
        .expect_err("should be invalid")
}

fn has_error(errors: &[FieldError], path: &str, needle: &str) -> bool {
    errors
        .iter()
        .any(|e| e.path == path && e.reason.contains(needle))
}

#[test]
fn a_good_event_is_normalised() {
    let valid = validator()
        .validate_value(&good(), arrival())
        .expect("valid");
    assert_eq!(valid.event.id, Uuid::from_u128(7));
    assert_eq!(valid.event.received_at, Some(NOW));
    let json: Value = serde_json::from_slice(&valid.json).expect("json");
    assert_eq!(json["occurred_at"], "2026-11-26T11:59:59.123Z");
    assert_eq!(json["received_at"], "2026-11-26T12:00:00.000Z");
    assert_eq!(json["version"], 1);
}

#[test]
fn server_owned_fields_are_stamped_whatever_the_producer_sent() {
    let mut forged = good();
    forged["received_at"] = json!("2000-01-01T00:00:00Z");
    forged["provenance"] = json!("system");
    forged["source"] = json!("identity-api");

    let direct = validator()
        .validate_value(&forged, arrival())
        .expect("valid");
    assert_eq!(
        direct.event.received_at,
        Some(NOW),
        "arrival time, not the claim"
    );
    assert_eq!(direct.event.provenance, Some(Provenance::Kafka));
    assert_eq!(
        direct.event.source.as_deref(),
        Some("identity-api"),
        "a direct producer's source is kept, marked as claimed by its provenance"
    );
    let json: Value = serde_json::from_slice(&direct.json).expect("json");
    assert_eq!(json["received_at"], "2026-11-26T12:00:00.000Z");
    assert_eq!(json["provenance"], "kafka");

    let over_http = Arrival {
        provenance: Provenance::Gateway,
        verified_source: Some("billing-api"),
        ..arrival()
    };
    let verified = validator()
        .validate_value(&forged, over_http)
        .expect("valid");
    assert_eq!(verified.event.source.as_deref(), Some("billing-api"));
    assert_eq!(verified.event.provenance, Some(Provenance::Gateway));

    let mut junk = good();
    junk["provenance"] = json!("root");
    assert!(has_error(&errors_of(junk), "$.provenance", ""));
}

#[test]
fn internal_categories_are_refused_to_every_producer() {
    let mut forged = good();
    forged["category"] = json!("audit_log");
    forged["action"] = json!("audit_log.exported");
    assert!(has_error(
        &errors_of(forged.clone()),
        "$.category",
        "internal"
    ));
    let over_http = Arrival {
        provenance: Provenance::Gateway,
        verified_source: Some("any-api"),
        ..arrival()
    };
    assert!(validator().validate_value(&forged, over_http).is_err());
}

#[test]
fn a_client_id_is_kept() {
    let mut event = good();
    event["id"] = json!("0190d7a0-6c1e-7b3a-9f00-000000000001");
    let valid = validator()
        .validate_value(&event, arrival())
        .expect("valid");
    assert_eq!(
        valid.event.id.to_string(),
        "0190d7a0-6c1e-7b3a-9f00-000000000001"
    );
}

#[test]
fn required_fields_are_named() {
    for field in [
        "org_id",
        "occurred_at",
        "category",
        "action",
        "outcome",
        "actor",
    ] {
        let mut event = good();
        event.as_object_mut().map(|o| o.remove(field));
        let errors = errors_of(event);
        assert!(has_error(&errors, "$", field), "{field}: {errors:?}");
    }
}

#[test]
fn wrong_types_and_values_are_located() {
    let cases = [
        (json!({"id": "not-a-uuid"}), "$.id"),
        (json!({"org_id": ""}), "$.org_id"),
        (json!({"org_id": "org with spaces"}), "$.org_id"),
        (
            json!({"occurred_at": "2026-11-26 12:00:00"}),
            "$.occurred_at",
        ),
        (json!({"occurred_at": "yesterday"}), "$.occurred_at"),
        (json!({"outcome": "maybe"}), "$.outcome"),
        (
            json!({"actor": {"type": "robot", "id": "x"}}),
            "$.actor.type",
        ),
        (json!({"actor": {"type": "user", "id": ""}}), "$.actor.id"),
        (
            json!({"actor": {"type": "user", "id": "u", "email": "nope"}}),
            "$.actor.email",
        ),
        (json!({"context": {"ip": "999.1.1.1"}}), "$.context.ip"),
        (json!({"targets": [{"type": "t"}]}), "$.targets[0]"),
        (json!({"version": 2}), "$.version"),
        (json!({"colour": "red"}), "$"),
        (
            json!({"metadata": {"nested": {"a": 1}}}),
            "$.metadata.nested",
        ),
        (json!({"metadata": {"list": [1, 2]}}), "$.metadata.list"),
    ];
    for (patch, path) in cases {
        let mut event = good();
        for (key, value) in patch.as_object().expect("object") {
            event[key] = value.clone();
        }
        let errors = errors_of(event);
        assert!(
            errors.iter().any(|e| e.path == path),
            "{patch}: expected {path}, got {errors:?}"
        );
    }
}

#[test]
fn catalogue_rules() {
    let mut unknown_category = good();
    unknown_category["category"] = json!("weather");
    assert!(has_error(
        &errors_of(unknown_category),
        "$.category",
        "unknown category `weather`"
    ));

    let mut unknown_action = good();
    unknown_action["action"] = json!("user.teleported");
    assert!(has_error(
        &errors_of(unknown_action),
        "$.action",
        "unknown action"
    ));

    let mut other_category = good();
    other_category["action"] = json!("billing.payment.failed");
    assert!(has_error(
        &errors_of(other_category),
        "$.action",
        "belongs to category `billing`, not `authentication`"
    ));
}

#[test]
fn future_times_beyond_the_skew_are_refused() {
    let mut within = good();
    within["occurred_at"] = json!("2026-11-26T12:04:59Z");
    assert!(validator().validate_value(&within, arrival()).is_ok());

    let mut beyond = good();
    beyond["occurred_at"] = json!("2026-11-26T12:05:01Z");
    assert!(has_error(
        &errors_of(beyond),
        "$.occurred_at",
        "in the future"
    ));
}

#[test]
fn size_limits() {
    let mut long_string = good();
    long_string["actor"]["name"] = json!("x".repeat(1025));
    assert!(has_error(
        &errors_of(long_string),
        "$.actor.name",
        "longer than 1024"
    ));

    let mut many_keys = good();
    let metadata: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    many_keys["metadata"] = Value::Object(metadata);
    assert!(has_error(
        &errors_of(many_keys),
        "$.metadata",
        "more than 64"
    ));

    let mut long_key = good();
    long_key["metadata"] = json!({ "k".repeat(1025): 1 });
    assert!(!errors_of(long_key).is_empty());

    let mut many_targets = good();
    many_targets["targets"] = Value::Array(
        (0..33)
            .map(|i| json!({"type": "t", "id": i.to_string()}))
            .collect(),
    );
    assert!(has_error(
        &errors_of(many_targets),
        "$.targets",
        "more than 32"
    ));

    // 40 metadata values of 1,000 characters pass the per-string rule but not the event size.
    let mut big = good();
    let metadata: serde_json::Map<String, Value> = (0..40)
        .map(|i| (format!("k{i}"), json!("v".repeat(1000))))
        .collect();
    big["metadata"] = Value::Object(metadata);
    assert!(has_error(&errors_of(big), "$", "the limit is 32768 bytes"));
}

#[test]
fn configured_limits_rewrite_the_schema() {
    let limits = Limits {
        max_string_chars: 10,
        max_targets: 1,
        max_metadata_keys: 1,
        ..Limits::default()
    };
    let validator = EventValidator::new(Arc::new(Catalogue::builtin()), limits).expect("validator");
    let errors = validator
        .validate_value(&good(), arrival())
        .expect_err("invalid");
    assert!(
        has_error(&errors, "$.actor.email", "longer than 10"),
        "{errors:?}"
    );
    assert!(
        has_error(&errors, "$.metadata", "more than 1"),
        "{errors:?}"
    );
}

#[test]
fn hostile_input_gets_clear_errors_not_panics() {
    let validator = validator();
    let invalid_utf8 = b"{\"org_id\": \"\xff\xfe\"}";
    let errors = validator
        .validate_bytes(invalid_utf8, arrival())
        .expect_err("invalid");
    assert!(errors[0].reason.contains("not valid JSON"), "{errors:?}");

    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let errors = validator
        .validate_bytes(deep.as_bytes(), arrival())
        .expect_err("invalid");
    assert!(errors[0].reason.contains("recursion limit"), "{errors:?}");

    let mut huge = good();
    huge["actor"]["name"] = json!("x".repeat(10 * 1024 * 1024));
    let errors = validator
        .validate_value(&huge, arrival())
        .expect_err("invalid");
    assert!(
        errors.iter().all(|e| e.reason.len() < 300),
        "errors must not echo the value"
    );
    let bytes = serde_json::to_vec(&huge).expect("json");
    let errors = validator
        .validate_bytes(&bytes, arrival())
        .expect_err("invalid");
    assert!(
        errors[0].reason.contains("the limit is 32768 bytes"),
        "{errors:?}"
    );

    for not_an_object in ["[]", "42", "null", "\"event\""] {
        let errors = validator
            .validate_bytes(not_an_object.as_bytes(), arrival())
            .expect_err("invalid");
        assert!(
            errors[0].reason.contains("must be a JSON object"),
            "{errors:?}"
        );
    }
    let errors = validator
        .validate_bytes(b"", arrival())
        .expect_err("invalid");
    assert!(errors[0].reason.contains("not valid JSON"));

    // An SQL-looking or formula-looking value is just text: valid, stored as is.
    let mut sql = good();
    sql["actor"]["name"] = json!("'); DROP TABLE events; --");
    sql["metadata"] = json!({"formula": "=HYPERLINK(\"http://x\")"});
    assert!(validator.validate_value(&sql, arrival()).is_ok());
}

#[test]
fn many_errors_are_capped() {
    let metadata: serde_json::Map<String, Value> = (0..60)
        .map(|i| (format!("k{i}"), json!({"nested": i})))
        .collect();
    let mut event = good();
    event["metadata"] = Value::Object(metadata);
    let errors = errors_of(event);
    assert_eq!(errors.len(), MAX_ERRORS_PER_EVENT + 1);
    assert!(
        errors
            .last()
            .is_some_and(|e| e.reason.contains("more errors not shown"))
    );
}

#[test]
fn unusual_metadata_keys_are_quoted_in_paths() {
    let mut event = good();
    event["metadata"] = json!({"a key.with dots": {"x": 1}});
    let errors = errors_of(event);
    assert!(
        errors
            .iter()
            .any(|e| e.path == "$.metadata[\"a key.with dots\"]"),
        "{errors:?}"
    );
}

#[test]
fn limits_validate_names_the_key() {
    let limits = Limits {
        max_event_bytes: 10,
        ..Limits::default()
    };
    let error = limits.validate().unwrap_err();
    assert_eq!(error.field, "max_event_bytes");
    assert_eq!(error.to_string(), "max_event_bytes: must be at least 1024");
    assert!(Limits::default().validate().is_ok());
}
