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

/// The fast pass (`fast.rs`) against the schema pass: whatever bytes come in, validating them
/// gives the same event or the same errors as the schema pass alone.
mod fast_and_schema_agree {
    use proptest::prelude::*;

    use super::*;

    /// A validation's answer: the canonical JSON, or the errors.
    type Answer = Result<Vec<u8>, Vec<FieldError>>;

    /// Both passes' answer for `bytes`: with the fast pass, and the schema pass alone.
    fn both(bytes: &[u8]) -> (Answer, Answer) {
        let validator = validator();
        let with_fast = validator.validate_bytes(bytes, arrival()).map(|v| v.json);
        let schema_only = validator
            .parse(bytes)
            .and_then(|value| validator.validate_value(&value, arrival()))
            .map(|v| v.json);
        (with_fast, schema_only)
    }

    fn assert_agree(bytes: &[u8]) {
        let (with_fast, schema_only) = both(bytes);
        assert_eq!(
            with_fast,
            schema_only,
            "input: {}",
            String::from_utf8_lossy(bytes)
        );
    }

    /// Values a field may be replaced with: every JSON type, near-misses of each format.
    fn fixed_replacements() -> Vec<Value> {
        vec![
            Value::Null,
            json!(true),
            json!(1),
            json!(2),
            json!(1.0),
            json!(-0.5),
            json!(1e300),
            json!([]),
            json!({}),
            json!(["user", "u_1"]),
            json!({"success": null}),
            json!(""),
            json!("success"),
            json!("user"),
            json!("system"),
            json!("gateway"),
            json!("0190d7a0-6c1e-7b3a-9f00-000000000001"),
            json!("0190d7a06c1e7b3a9f00000000000001"),
            json!("{0190d7a0-6c1e-7b3a-9f00-000000000001}"),
            json!("urn:uuid:0190d7a0-6c1e-7b3a-9f00-000000000001"),
            json!("2026-11-26T12:00:00Z"),
            json!("2026-11-26t12:00:00z"),
            json!("2026-11-26T12:00:00.123456789+02:00"),
            json!("2026-11-26T23:59:60Z"),
            json!("2026-02-30T12:00:00Z"),
            json!("2026-11-26 12:00:00Z"),
            json!("2026-11-26T12:00:00"),
            json!("ada@example.com"),
            json!("Ada <ada@example.com>"),
            json!("ada@[203.0.113.9]"),
            json!("not an email"),
            json!("203.0.113.9"),
            json!("::1"),
            json!("fe80::1%eth0"),
            json!("203.0.113.256"),
            json!("authentication"),
            json!("user.login.succeeded"),
            json!("billing.invoice.generated"),
            json!("a..b"),
            json!("org_acme\n"),
            json!("x".repeat(1024)),
            json!("x".repeat(1025)),
            json!("é".repeat(1024)),
            json!("é".repeat(1025)),
        ]
    }

    fn replacement() -> impl Strategy<Value = Value> {
        prop_oneof![
            proptest::sample::select(fixed_replacements()),
            "\\PC{0,12}".prop_map(Value::String),
            "[a-z0-9._:\\-]{0,10}".prop_map(Value::String),
        ]
    }

    /// Where in the event a replacement goes.
    const PATHS: &[&[&str]] = &[
        &["id"],
        &["org_id"],
        &["occurred_at"],
        &["received_at"],
        &["category"],
        &["action"],
        &["outcome"],
        &["actor"],
        &["actor", "type"],
        &["actor", "id"],
        &["actor", "name"],
        &["actor", "email"],
        &["actor", "extra"],
        &["targets"],
        &["targets", "0"],
        &["targets", "0", "type"],
        &["targets", "0", "id"],
        &["targets", "0", "name"],
        &["context"],
        &["context", "ip"],
        &["context", "user_agent"],
        &["context", "location"],
        &["metadata"],
        &["metadata", "k"],
        &["metadata", ""],
        &["source"],
        &["version"],
        &["provenance"],
        &["unknown"],
    ];

    /// Sets `path` to `value` where the path still leads somewhere (an earlier change may
    /// have replaced a parent by a scalar).
    fn set(event: &mut Value, path: &[&str], value: Value) {
        let (last, parents) = path.split_last().expect("a path");
        let mut node = event;
        for key in parents {
            let next = match node {
                Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
                Value::Object(map) => map.get_mut(*key),
                _ => None,
            };
            let Some(next) = next else { return };
            node = next;
        }
        match node {
            Value::Array(items) => {
                if let Some(item) = last.parse::<usize>().ok().and_then(|i| items.get_mut(i)) {
                    *item = value;
                }
            }
            Value::Object(map) => {
                map.insert((*last).to_string(), value);
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn for_any_field_replaced_or_removed(
            changes in proptest::collection::vec(
                (0..PATHS.len(), replacement(), any::<bool>()),
                1..4,
            )
        ) {
            let mut event = base();
            for (path, value, remove) in changes {
                let path = PATHS[path];
                if remove && path.len() == 1 {
                    event.as_object_mut().expect("object").remove(path[0]);
                } else {
                    set(&mut event, path, value);
                }
            }
            assert_agree(&serde_json::to_vec(&event).expect("json"));
        }
    }

    fn base() -> Value {
        let mut event = good();
        event["id"] = json!("0190d7a0-6c1e-7b3a-9f00-000000000001");
        event
    }

    #[test]
    fn for_every_field_replaced_by_every_near_miss_or_removed() {
        for path in PATHS {
            if path.len() == 1 {
                let mut event = base();
                event.as_object_mut().unwrap().remove(path[0]);
                assert_agree(&serde_json::to_vec(&event).unwrap());
            }
            for value in fixed_replacements() {
                let mut event = base();
                set(&mut event, path, value);
                assert_agree(&serde_json::to_vec(&event).unwrap());
            }
        }
    }

    #[test]
    fn on_shapes_serde_would_take_and_the_schema_refuses() {
        let good = serde_json::to_string(&good()).unwrap();
        for bytes in [
            // Duplicate keys: the JSON tree keeps the last one, a struct refuses them.
            good.replacen('{', r#"{"outcome":"failure","#, 1),
            good.replacen('{', r#"{"source":"a","source":"b","#, 1),
            // Structs sent as arrays of their fields, in order.
            r#"["0190d7a0-6c1e-7b3a-9f00-000000000001","org_acme","2026-11-26T12:00:00Z","2026-11-26T12:00:00Z","authentication","user.login.succeeded","success",{"type":"user","id":"u_1"},[],{},{},"identity-api",1,"kafka"]"#.to_string(),
            good.replace(
                r#""actor":{"email":"ada@example.com","id":"u_1","name":"Ada","type":"user"}"#,
                r#""actor":["user","u_1","Ada","ada@example.com"]"#,
            ),
            good.replace(
                r#""actor":{"email":"ada@example.com","id":"u_1","name":"Ada","type":"user"}"#,
                r#""actor":["user","u_1"]"#,
            ),
            // Enums as single-key objects.
            good.replace(r#""outcome":"success""#, r#""outcome":{"success":null}"#),
            // Whitespace, trailing garbage, not JSON.
            format!("  {good}\n"),
            format!("{good}x"),
            "{".to_string(),
            String::new(),
        ] {
            assert_agree(bytes.as_bytes());
        }
        // The canonical events the platform writes are taken by the fast pass itself.
        let written = validator()
            .validate_bytes(good.as_bytes(), arrival())
            .unwrap();
        let formats = fast::Formats::new().unwrap();
        assert!(fast::accept(&written.json, &Limits::default(), &formats).is_some());
        assert!(fast::accept(good.as_bytes(), &Limits::default(), &formats).is_some());
    }
}
