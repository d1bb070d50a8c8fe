//! Property tests of the event validator: whatever a producer sends, the validator answers
//! (never panics), every error names a JSON path and does not echo the value, valid events
//! are a fixed point of their canonical JSON, and the configured limits hold for every event
//! it accepts.

#![allow(clippy::unwrap_used)] // tests: unwrap states what must hold

use std::sync::Arc;

use audit_core::validate::Arrival;
use audit_core::{Catalogue, EventValidator, FieldError, Limits, Provenance};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

fn validator(limits: Limits) -> EventValidator {
    EventValidator::new(Arc::new(Catalogue::builtin()), limits).unwrap()
}

fn arrival() -> Arrival<'static> {
    Arrival {
        now: NOW,
        received_at: NOW,
        fallback_id: Uuid::from_u128(42),
        provenance: Provenance::Gateway,
        verified_source: Some("svc"),
    }
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        // Long strings: errors must not echo them.
        "[a-z]{1500,1600}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..8)
                .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A catalogue (category, action) pair a producer may publish (internal categories are the
/// platform's own).
fn catalogued_action() -> impl Strategy<Value = (String, String)> {
    let catalogue = Catalogue::builtin();
    let pairs: Vec<(String, String)> = catalogue
        .categories()
        .filter(|category| !category.internal)
        .flat_map(|category| {
            category
                .actions
                .iter()
                .map(|action| (category.name.clone(), action.name.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    prop::sample::select(pairs)
}

/// Free text of up to `max` characters (any Unicode scalar, controls included).
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..=max).prop_map(|chars| chars.into_iter().collect())
}

fn metadata_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        text(40).prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

/// Events that follow the contract, with `text_chars`-long texts, up to `targets` targets
/// and `metadata` metadata keys.
fn event(text_chars: usize, targets: usize, metadata: usize) -> impl Strategy<Value = Value> {
    (
        "[A-Za-z0-9][A-Za-z0-9._:-]{0,40}",
        -86_400_000i64..290_000,
        catalogued_action(),
        any::<bool>(),
        prop::sample::select(vec!["user", "service", "api_key", "system"]),
        text(text_chars),
        prop::option::of(text(text_chars)),
        prop::collection::vec((text(text_chars), text(text_chars)), 0..=targets),
        prop::option::of(any::<[u8; 4]>()),
        prop::collection::btree_map(text(text_chars), metadata_value(), 0..=metadata),
        prop::option::of(any::<u128>()),
    )
        .prop_map(
            |(org, offset_ms, (category, action), success, actor_type, actor_id, name, targets, ip, metadata, id)| {
                let at = NOW + time::Duration::milliseconds(offset_ms);
                let mut event = json!({
                    "org_id": org,
                    "occurred_at": at.format(&time::format_description::well_known::Rfc3339).unwrap(),
                    "category": category,
                    "action": action,
                    "outcome": if success { "success" } else { "failure" },
                    "actor": {"type": actor_type, "id": actor_id},
                    "targets": targets.into_iter().map(|(kind, id)| json!({"type": kind, "id": id})).collect::<Vec<_>>(),
                    "metadata": metadata,
                });
                if let Some(name) = name {
                    event["actor"]["name"] = json!(name);
                }
                if let Some([a, b, c, d]) = ip {
                    event["context"] = json!({"ip": format!("{a}.{b}.{c}.{d}")});
                }
                if let Some(id) = id {
                    event["id"] = json!(Uuid::from_u128(id).to_string());
                }
                event
            },
        )
}

fn assert_errors_are_located(errors: &[FieldError]) {
    assert!(!errors.is_empty(), "a rejection names at least one error");
    for error in errors {
        assert!(error.path.starts_with('$'), "{error:?}");
        assert!(!error.reason.is_empty(), "{error:?}");
        assert!(
            error.reason.len() < 1200,
            "reasons never echo long values: {} bytes",
            error.reason.len()
        );
    }
}

/// The text fields of an event (those bounded by `max_string_chars`).
fn texts(event: &Value) -> Vec<&str> {
    let mut texts = Vec::new();
    let actor = &event["actor"];
    texts.extend(
        ["id", "name", "email"]
            .iter()
            .filter_map(|k| actor[k].as_str()),
    );
    for target in event["targets"].as_array().into_iter().flatten() {
        texts.extend(
            ["type", "id", "name"]
                .iter()
                .filter_map(|k| target[k].as_str()),
        );
    }
    for (key, value) in event["metadata"].as_object().into_iter().flatten() {
        texts.push(key);
        texts.extend(value.as_str());
    }
    texts.extend(event["source"].as_str());
    texts
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_json_gets_an_answer_with_located_errors(value in any_json()) {
        if let Err(errors) = validator(Limits::default()).validate_value(&value, arrival()) {
            assert_errors_are_located(&errors);
        }
    }

    #[test]
    fn any_bytes_get_an_answer_with_located_errors(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        if let Err(errors) = validator(Limits::default()).validate_bytes(&bytes, arrival()) {
            assert_errors_are_located(&errors);
        }
    }

    #[test]
    fn a_valid_event_with_one_field_replaced_gets_located_errors(
        event in event(20, 3, 3),
        field in prop::sample::select(vec![
            "id", "org_id", "occurred_at", "received_at", "category", "action", "outcome", "actor",
            "targets", "context", "metadata", "source", "version", "unknown",
        ]),
        replacement in any_json(),
    ) {
        let mut event = event;
        event[field] = replacement;
        if let Err(errors) = validator(Limits::default()).validate_value(&event, arrival()) {
            assert_errors_are_located(&errors);
        }
    }

    #[test]
    fn valid_events_are_a_fixed_point_of_their_canonical_json(event in event(30, 4, 6)) {
        let validator = validator(Limits::default());
        let first = validator.validate_value(&event, arrival()).unwrap();
        prop_assert!(first.json.len() <= Limits::default().max_event_bytes);
        let again = Arrival { fallback_id: Uuid::from_u128(7), ..arrival() };
        let second = validator.validate_bytes(&first.json, again).unwrap();
        prop_assert_eq!(&second.event, &first.event);
        prop_assert_eq!(&second.json, &first.json);
        let stored: Value = serde_json::from_slice(&first.json).unwrap();
        prop_assert!(stored["occurred_at"].as_str().unwrap().ends_with('Z'));
        prop_assert!(stored["id"].is_string());
    }

    #[test]
    fn accepted_events_are_within_the_limits_and_events_over_them_are_refused(
        max_string_chars in 1u64..24,
        max_targets in 0u64..4,
        max_metadata_keys in 0u64..4,
        event in event(30, 5, 5),
    ) {
        let limits = Limits { max_string_chars, max_targets, max_metadata_keys, max_event_bytes: 4096, ..Limits::default() };
        let over = texts(&event).iter().any(|text| text.chars().count() as u64 > max_string_chars)
            || event["targets"].as_array().map_or(0, Vec::len) as u64 > max_targets
            || event["metadata"].as_object().map_or(0, Map::len) as u64 > max_metadata_keys;
        match validator(limits).validate_value(&event, arrival()) {
            Ok(valid) => {
                prop_assert!(!over, "accepted an event over the limits: {event}");
                prop_assert!(valid.json.len() <= limits.max_event_bytes);
            }
            Err(errors) => {
                assert_errors_are_located(&errors);
                prop_assert!(over || errors.iter().any(|e| e.path == "$"), "refused an event within the limits: {errors:?}");
            }
        }
    }
}
