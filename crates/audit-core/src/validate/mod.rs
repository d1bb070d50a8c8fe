//! The one event validator, shared by the gateway and the indexer.
//!
//! Validation runs in two passes:
//! 1. the published JSON Schema (`schema/audit-event.v1.schema.json`), with its size limits
//!    rewritten from [`Limits`] so that configuration and schema never disagree. Bytes go
//!    first through a fast pass (`fast.rs`) that can only accept, and accepts exactly what the
//!    schema would, without building a JSON tree; the schema decides about the rest;
//! 2. the rules a schema cannot express: the category/action catalogue (internal categories
//!    are refused: only the platform writes them, see [`crate::system`]), clock skew, and the
//!    size of the normalised event.
//!
//! The server-owned fields (`received_at`, `provenance`, and `source` when the producer is
//! authenticated) are stamped from the [`Arrival`], whatever the producer sent.
//!
//! Every error carries a JSON path (`$.targets[2].id`) and a reason. Reasons never echo the
//! offending value: a 10 MB string must not become a 10 MB error message.
//!
//! Files: [`Limits`] and their own check in `limits.rs`, the schema pass in `schema.rs`, the
//! fast pass in `fast.rs`, the catalogue and clock rules and the stamping here, the tests in
//! `tests.rs`.

mod fast;
mod limits;
mod schema;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::arrival::{Arrival, BrokerTime};
use crate::catalogue::Catalogue;
use crate::error::Result;
use crate::event::{AuditEvent, EventInput, Stamp};
pub use limits::{LimitError, Limits};

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
    /// The fast pass's format checks (`fast.rs`).
    formats: fast::Formats,
    catalogue: Arc<Catalogue>,
    limits: Limits,
}

impl EventValidator {
    pub fn new(catalogue: Arc<Catalogue>, limits: Limits) -> Result<Self> {
        let schema = schema::compile(&limits)?;
        Ok(Self {
            schema,
            formats: fast::Formats::new()?,
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
        self.check_size(bytes)?;
        // Most events are valid: the fast pass accepts them without a JSON tree; the schema
        // pass decides about the rest and names their errors.
        if let Some(input) = fast::accept(bytes, &self.limits, &self.formats) {
            return self.finish(input, arrival);
        }
        let value = parse_json(bytes)?;
        self.validate_value(&value, arrival)
    }

    /// Parses one event's bytes into a JSON value, refusing without parsing bytes far over
    /// the size limit (so that no single event can cost more than a few times the limit).
    pub fn parse(&self, bytes: &[u8]) -> std::result::Result<Value, Vec<FieldError>> {
        self.check_size(bytes)?;
        parse_json(bytes)
    }

    fn check_size(&self, bytes: &[u8]) -> std::result::Result<(), Vec<FieldError>> {
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
        Ok(())
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
            return Err(schema::errors(&self.schema, value));
        }
        let input = EventInput::deserialize(value)
            .map_err(|error| vec![FieldError::new("$", error.to_string())])?;
        self.finish(input, arrival)
    }

    /// The rules a schema cannot express, then the normalised event and its encoding.
    fn finish(
        &self,
        input: EventInput,
        arrival: Arrival<'_>,
    ) -> std::result::Result<ValidEvent, Vec<FieldError>> {
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

/// Bytes as a JSON value (the size already checked).
fn parse_json(bytes: &[u8]) -> std::result::Result<Value, Vec<FieldError>> {
    serde_json::from_slice(bytes)
        .map_err(|error| vec![FieldError::new("$", format!("not valid JSON: {error}"))])
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
