//! The fast pass: an event decoded straight from its bytes into typed fields, with an explicit
//! check for everything the schema says that the types do not.
//!
//! It only ever *accepts*. Whatever it does not accept — a type, a `null`, a duplicate key, a
//! nested object sent as an array, a failed check — goes through the schema pass, which
//! decides and names the errors, so error messages stay the schema's. The one rule: it must
//! never accept an event the schema refuses, and what it accepts must become the same event.
//! Formats (uuid, date-time, email, ip) are checked by the schema library itself, one string
//! at a time; patterns and lengths are written out here from the published schema. The tests
//! (`tests.rs`) compare both passes on a corpus of valid events and of mutations of them.
//!
//! Why: the generic pass parses the event into a JSON tree, walks the schema over it and
//! deserializes the tree again — about three quarters of the validator's cost per event.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::Limits;
use crate::event::{Actor, ActorType, Context, EventInput, MetadataValue, Outcome, Target};

/// The schema library's format checks, each for one string.
#[derive(Debug)]
pub(super) struct Formats {
    uuid: jsonschema::Validator,
    date_time: jsonschema::Validator,
    email: jsonschema::Validator,
    ip: jsonschema::Validator,
}

impl Formats {
    pub(super) fn new() -> crate::error::Result<Self> {
        let build = |schema: Value| {
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|error| crate::error::Error::Schema(error.to_string()))
        };
        Ok(Self {
            uuid: build(serde_json::json!({"type": "string", "format": "uuid"}))?,
            date_time: build(serde_json::json!({"type": "string", "format": "date-time"}))?,
            email: build(serde_json::json!({"type": "string", "format": "email"}))?,
            ip: build(serde_json::json!({
                "type": "string",
                "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]
            }))?,
        })
    }

    fn check(validator: &jsonschema::Validator, text: &str) -> bool {
        validator.is_valid(&Value::String(text.to_owned()))
    }
}

/// The event, if this pass accepts it (`None`: let the schema pass decide).
pub(super) fn accept(bytes: &[u8], limits: &Limits, formats: &Formats) -> Option<EventInput> {
    let Object(input) = serde_json::from_slice::<Object<Input>>(bytes).ok()?;
    input.check(limits, formats)?;
    input.into_input()
}

/// The event as this pass reads it: the schema's shape, with every enumerated or formatted
/// value kept as text until it is checked, and optional fields that refuse `null`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    #[serde(default, deserialize_with = "present")]
    id: Option<String>,
    org_id: String,
    occurred_at: String,
    #[serde(default, deserialize_with = "present")]
    received_at: Option<String>,
    category: String,
    action: String,
    outcome: String,
    actor: Object<InputActor>,
    #[serde(default)]
    targets: Vec<Object<InputTarget>>,
    #[serde(default, deserialize_with = "present")]
    context: Option<Object<InputContext>>,
    #[serde(default)]
    metadata: BTreeMap<String, MetadataValue>,
    #[serde(default, deserialize_with = "present")]
    source: Option<String>,
    #[serde(default, deserialize_with = "present")]
    version: Option<u8>,
    #[serde(default, deserialize_with = "present")]
    provenance: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputActor {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
    #[serde(default, deserialize_with = "present")]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputTarget {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default, deserialize_with = "present")]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputContext {
    #[serde(default, deserialize_with = "present")]
    ip: Option<String>,
    #[serde(default, deserialize_with = "present")]
    user_agent: Option<String>,
    #[serde(default, deserialize_with = "present")]
    location: Option<String>,
    #[serde(default, deserialize_with = "present")]
    request_id: Option<String>,
}

impl Input {
    /// Every keyword of the schema the types above do not enforce.
    fn check(&self, limits: &Limits, formats: &Formats) -> Option<()> {
        let text = |value: &str| chars_at_most(value, limits.max_string_chars);
        let some_text = |value: &Option<String>| value.as_deref().is_none_or(text);
        let non_empty_text = |value: &str| !value.is_empty() && text(value);
        let time =
            |value: &str| chars_at_most(value, 64) && Formats::check(&formats.date_time, value);

        if let Some(id) = &self.id {
            ensure(Formats::check(&formats.uuid, id))?;
        }
        ensure(chars_at_most(&self.org_id, 128) && is_org_id(&self.org_id))?;
        ensure(time(&self.occurred_at))?;
        if let Some(received_at) = &self.received_at {
            ensure(time(received_at))?;
        }
        ensure(self.category.len() <= 64 && is_category(&self.category))?;
        ensure(self.action.len() <= 128 && is_action(&self.action))?;

        // `outcome` and `actor.type` are checked where they are read (`into_input`).
        let actor = &self.actor.0;
        ensure(non_empty_text(&actor.id) && some_text(&actor.name) && some_text(&actor.email))?;
        if let Some(email) = &actor.email {
            ensure(Formats::check(&formats.email, email))?;
        }

        ensure(self.targets.len() as u64 <= limits.max_targets)?;
        for Object(target) in &self.targets {
            ensure(non_empty_text(&target.kind) && non_empty_text(&target.id))?;
            ensure(some_text(&target.name))?;
        }

        if let Some(Object(context)) = &self.context {
            ensure(some_text(&context.user_agent))?;
            ensure(some_text(&context.location) && some_text(&context.request_id))?;
            if let Some(ip) = &context.ip {
                ensure(Formats::check(&formats.ip, ip))?;
            }
        }

        ensure(self.metadata.len() as u64 <= limits.max_metadata_keys)?;
        for (key, value) in &self.metadata {
            ensure(!key.is_empty() && text(key))?;
            if let MetadataValue::String(value) = value {
                ensure(text(value))?;
            }
        }

        ensure(some_text(&self.source))?;
        ensure(self.version.is_none_or(|version| version == 1))?;
        ensure(
            self.provenance
                .as_deref()
                .is_none_or(|value| matches!(value, "system" | "gateway" | "kafka")),
        )
    }

    /// The input the schema pass would have deserialized (its times parsed the same way).
    fn into_input(self) -> Option<EventInput> {
        let rfc3339 = &time::format_description::well_known::Rfc3339;
        let actor = self.actor.0;
        let context = self.context.map(|Object(context)| Context {
            ip: context.ip,
            user_agent: context.user_agent,
            location: context.location,
            request_id: context.request_id,
        });
        Some(EventInput {
            id: match self.id {
                Some(id) => Some(uuid::Uuid::parse_str(&id).ok()?),
                None => None,
            },
            org_id: self.org_id,
            occurred_at: time::OffsetDateTime::parse(&self.occurred_at, rfc3339).ok()?,
            _received_at: None,
            category: self.category,
            action: self.action,
            outcome: match self.outcome.as_str() {
                "success" => Outcome::Success,
                "failure" => Outcome::Failure,
                _ => return None,
            },
            actor: Actor {
                kind: match actor.kind.as_str() {
                    "user" => ActorType::User,
                    "service" => ActorType::Service,
                    "api_key" => ActorType::ApiKey,
                    "system" => ActorType::System,
                    _ => return None,
                },
                id: actor.id,
                name: actor.name,
                email: actor.email,
            },
            targets: self
                .targets
                .into_iter()
                .map(|Object(target)| Target {
                    kind: target.kind,
                    id: target.id,
                    name: target.name,
                })
                .collect(),
            context: context.unwrap_or_default(),
            metadata: self.metadata,
            source: self.source,
            version: self.version.unwrap_or(crate::SCHEMA_VERSION),
            _provenance: None,
        })
    }
}

fn ensure(condition: bool) -> Option<()> {
    condition.then_some(())
}

/// At most `max` characters (the schema's `maxLength` counts code points).
fn chars_at_most(text: &str, max: u64) -> bool {
    text.len() as u64 <= max || text.chars().count() as u64 <= max
}

/// `^[A-Za-z0-9][A-Za-z0-9._:-]*$`
fn is_org_id(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// `^[a-z][a-z0-9_]*$`
fn is_category(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$`
fn is_action(text: &str) -> bool {
    let mut parts = text.split('.');
    parts.next().is_some_and(is_category) && {
        let mut rest = 0;
        parts.all(|part| {
            rest += 1;
            is_category(part)
        }) && rest > 0
    }
}

/// A JSON object only: serde's derived structs also take an array of their fields in order,
/// which the schema refuses.
struct Object<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
            type Value = T;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }

        deserializer
            .deserialize_map(ObjectVisitor(PhantomData))
            .map(Object)
    }
}

/// An optional field that, when present, must hold a value (the schema has no `null` where
/// serde's `Option` would take one).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}
