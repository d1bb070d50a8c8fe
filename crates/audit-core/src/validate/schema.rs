//! The first pass: the published JSON Schema, its size keywords rewritten from [`Limits`], and
//! its errors turned into [`FieldError`]s with JSON paths (at most
//! [`MAX_ERRORS_PER_EVENT`](super::MAX_ERRORS_PER_EVENT) per event).

use serde_json::Value;

use super::{FieldError, Limits, MAX_ERRORS_PER_EVENT};
use crate::error::{Error, Result};

/// The published schema with the configured limits, ready to validate events.
pub(super) fn compile(limits: &Limits) -> Result<jsonschema::Validator> {
    let schema_json: Value = serde_json::from_str(crate::EVENT_SCHEMA_JSON)
        .map_err(|error| Error::Schema(error.to_string()))?;
    let schema_json = schema_with_limits(schema_json, limits);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .build(&schema_json)
        .map_err(|error| Error::Schema(error.to_string()))
}

/// The schema's errors for an invalid `value`, the offending values masked.
pub(super) fn errors(schema: &jsonschema::Validator, value: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let mut total = 0usize;
    for error in schema.iter_errors(value) {
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
