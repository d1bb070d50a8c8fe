//! The one event validator, shared by the gateway and the indexer.
//!
//! Validation runs in two passes:
//! 1. the published JSON Schema (`schema/audit-event.v1.schema.json`), with its size limits
//!    rewritten from [`Limits`] so that configuration and schema never disagree;
//! 2. the rules a schema cannot express: the category/action catalogue (internal categories
//!    are refused: only the platform writes them, see [`crate::system`]), clock skew, and the
//!    size of the normalised event.
//!
//! The server-owned fields (`received_at`, `provenance`, and `source` when the producer is
//! authenticated) are stamped from the [`Arrival`], whatever the producer sent.
//!
//! Every error carries a JSON path (`$.targets[2].id`) and a reason. Reasons never echo the
//! offending value: a 10 MB string must not become a 10 MB error message.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::arrival::{Arrival, BrokerTime};
use crate::catalogue::Catalogue;
use crate::error::{Error, Result};
use crate::event::{AuditEvent, EventInput, Stamp};

/// Limits on one event. The defaults are the contract's; operators may change them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest event, in bytes of its normalised JSON encoding.
    pub max_event_bytes: usize,
    /// Most keys in `metadata`.
    pub max_metadata_keys: u64,
    /// Longest string anywhere in the event, in characters.
    pub max_string_chars: u64,
    /// Most entries in `targets`.
    pub max_targets: u64,
    /// How far in the future `occurred_at` may be, in seconds (clock skew allowance).
    pub max_future_skew_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 32 * 1024,
            max_metadata_keys: 64,
            max_string_chars: 1024,
            max_targets: 32,
            max_future_skew_secs: 300,
        }
    }
}

impl Limits {
    /// Checks the limits themselves; returns the name of the first bad key.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.max_event_bytes < 1024 {
            return Err("max_event_bytes: must be at least 1024".into());
        }
        if self.max_string_chars == 0 {
            return Err("max_string_chars: must be positive".into());
        }
        if self.max_future_skew_secs < 0 {
            return Err("max_future_skew_secs: must not be negative".into());
        }
        Ok(())
    }
}

/// One problem with one event: where (JSON path) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub path: String,
    pub reason: String,
}

impl FieldError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.reason)
    }
}

/// An invalid event's errors as one line (dead-letter reasons, logs).
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A valid, normalised event and its canonical JSON encoding.
#[derive(Debug, Clone)]
pub struct ValidEvent {
    pub event: AuditEvent,
    pub json: Vec<u8>,
}

/// How many errors one event reports at most; the rest are summarised.
const MAX_ERRORS_PER_EVENT: usize = 20;

#[derive(Debug)]
pub struct EventValidator {
    schema: jsonschema::Validator,
    catalogue: Arc<Catalogue>,
    limits: Limits,
}

impl EventValidator {
    pub fn new(catalogue: Arc<Catalogue>, limits: Limits) -> Result<Self> {
        let schema_json: Value = serde_json::from_str(crate::EVENT_SCHEMA_JSON)
            .map_err(|error| Error::Schema(error.to_string()))?;
        let schema_json = schema_with_limits(schema_json, &limits);
        let schema = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&schema_json)
            .map_err(|error| Error::Schema(error.to_string()))?;
        Ok(Self {
            schema,
            catalogue,
            limits,
        })
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Validates raw message bytes (e.g. a Kafka message value).
    pub fn validate_bytes(
        &self,
        bytes: &[u8],
        arrival: Arrival<'_>,
    ) -> std::result::Result<ValidEvent, Vec<FieldError>> {
        let value = self.parse(bytes)?;
        self.validate_value(&value, arrival)
    }

    /// Parses one event's bytes into a JSON value, refusing without parsing bytes far over
    /// the size limit (so that no single event can cost more than a few times the limit).
    pub fn parse(&self, bytes: &[u8]) -> std::result::Result<Value, Vec<FieldError>> {
        if bytes.len() > self.limits.max_event_bytes.saturating_mul(4) {
            // Far over the limit: do not spend time parsing it.
            return Err(vec![FieldError::new(
                "$",
                format!(
                    "event is {} bytes; the limit is {} bytes",
                    bytes.len(),
                    self.limits.max_event_bytes
                ),
            )]);
        }
        serde_json::from_slice(bytes)
            .map_err(|error| vec![FieldError::new("$", format!("not valid JSON: {error}"))])
    }

    /// Validates one parsed event.
    pub fn validate_value(
        &self,
        value: &Value,
        arrival: Arrival<'_>,
    ) -> std::result::Result<ValidEvent, Vec<FieldError>> {
        if !value.is_object() {
            return Err(vec![FieldError::new(
                "$",
                format!("an event must be a JSON object, not {}", json_type(value)),
            )]);
        }
        // `is_valid` is much cheaper than collecting errors: only invalid events pay for them.
        if !self.schema.is_valid(value) {
            return Err(self.schema_errors(value));
        }
        let input = EventInput::deserialize(value)
            .map_err(|error| vec![FieldError::new("$", error.to_string())])?;
        let event = input.into_event(
            || arrival.fallback_id,
            Stamp {
                received_at: arrival.received_at,
                provenance: arrival.provenance,
                source: arrival.verified_source,
            },
        );

        let mut errors = self.catalogue_errors(&event);
        let latest_allowed =
            arrival.now + time::Duration::seconds(self.limits.max_future_skew_secs);
        if event.occurred_at > latest_allowed {
            errors.push(FieldError::new(
                "$.occurred_at",
                format!(
                    "is more than {} seconds in the future (now is {})",
                    self.limits.max_future_skew_secs,
                    crate::event::format_utc_millis(arrival.now)
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }

        let json = event.to_json();
        if json.len() > self.limits.max_event_bytes {
            return Err(vec![FieldError::new(
                "$",
                format!(
                    "event is {} bytes serialized; the limit is {} bytes",
                    json.len(),
                    self.limits.max_event_bytes
                ),
            )]);
        }
        Ok(ValidEvent { event, json })
    }

    fn schema_errors(&self, value: &Value) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let mut total = 0usize;
        for error in self.schema.iter_errors(value) {
            total += 1;
            if errors.len() < MAX_ERRORS_PER_EVENT {
                errors.push(FieldError::new(
                    json_path(error.instance_path()),
                    // `masked` keeps the offending value out of the message.
                    error.masked_with("value").to_string(),
                ));
            }
        }
        if total > errors.len() {
            errors.push(FieldError::new(
                "$",
                format!("{} more errors not shown", total - errors.len()),
            ));
        }
        errors
    }

    fn catalogue_errors(&self, event: &AuditEvent) -> Vec<FieldError> {
        let Some(category) = self.catalogue.category(&event.category) else {
            let known: Vec<&str> = self
                .catalogue
                .categories()
                .map(|c| c.name.as_str())
                .collect();
            return vec![FieldError::new(
                "$.category",
                format!(
                    "unknown category `{}`; known: {}",
                    event.category,
                    known.join(", ")
                ),
            )];
        };
        if category.internal {
            return vec![FieldError::new(
                "$.category",
                format!(
                    "category `{}` is internal: only the audit-log service itself writes it",
                    category.name
                ),
            )];
        }
        match self.catalogue.category_of(&event.action) {
            None => vec![FieldError::new(
                "$.action",
                format!(
                    "unknown action `{}` (category `{}` has: {})",
                    event.action,
                    category.name,
                    category
                        .actions
                        .iter()
                        .map(|a| a.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )],
            Some(owner) if owner != category.name => vec![FieldError::new(
                "$.action",
                format!(
                    "action `{}` belongs to category `{owner}`, not `{}`",
                    event.action, category.name
                ),
            )],
            Some(_) => Vec::new(),
        }
    }
}

/// Rewrites the schema's size keywords from the configured limits.
fn schema_with_limits(mut schema: Value, limits: &Limits) -> Value {
    let default = Limits::default();
    rewrite_max_length(
        &mut schema,
        default.max_string_chars,
        limits.max_string_chars,
    );
    if let Some(targets) = schema.pointer_mut("/properties/targets/maxItems") {
        *targets = Value::from(limits.max_targets);
    }
    if let Some(metadata) = schema.pointer_mut("/properties/metadata/maxProperties") {
        *metadata = Value::from(limits.max_metadata_keys);
    }
    schema
}

fn rewrite_max_length(node: &mut Value, from: u64, to: u64) {
    match node {
        Value::Object(map) => {
            for (key, value) in map.iter_mut() {
                if key == "maxLength" && value.as_u64() == Some(from) {
                    *value = Value::from(to);
                } else {
                    rewrite_max_length(value, from, to);
                }
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|item| rewrite_max_length(item, from, to)),
        _ => {}
    }
}

/// `/targets/2/id` → `$.targets[2].id`.
fn json_path(location: &jsonschema::paths::Location) -> String {
    let mut path = String::from("$");
    for segment in location {
        match segment {
            jsonschema::paths::LocationSegment::Index(index) => {
                path.push('[');
                path.push_str(&index.to_string());
                path.push(']');
            }
            jsonschema::paths::LocationSegment::Property(name) => {
                let name: &str = name.as_ref();
                if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    path.push('.');
                    path.push_str(name);
                } else {
                    // Quote unusual keys (metadata keys may contain anything).
                    path.push_str("[\"");
                    path.extend(name.chars().take(64).flat_map(char::escape_default));
                    path.push_str("\"]");
                }
            }
        }
    }
    path
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
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
        let validator =
            EventValidator::new(Arc::new(Catalogue::builtin()), limits).expect("validator");
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
        assert!(
            limits
                .validate()
                .unwrap_err()
                .starts_with("max_event_bytes")
        );
    }
}
