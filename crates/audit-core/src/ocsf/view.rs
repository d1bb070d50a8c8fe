//! The event as the mapping reads it: a view that borrows its strings, made from a parsed
//! [`AuditEvent`] (the gateway's export) or read straight from an event's JSON (the
//! forwarder, once per event it sends in the OCSF format). Read from JSON it copies almost
//! nothing: strings are borrowed unless they hold escapes, times become unix milliseconds
//! without an `OffsetDateTime` in the platform's own form, and the metadata stays the JSON
//! object it is (written into `unmapped` as is).
//!
//! It reads the fields of contract v1 and refuses any other (like [`AuditEvent`]), so an
//! event of a newer contract is noticed rather than mapped without its new fields.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::de::{Deserializer, Error as _, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::event::{ActorType, AuditEvent, MetadataValue, Outcome, Provenance, unix_millis};

/// An event, borrowed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventView<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub org_id: Cow<'a, str>,
    /// `occurred_at`, unix milliseconds.
    #[serde(rename = "occurred_at", deserialize_with = "unix_millis_of_text")]
    pub occurred_at_ms: i64,
    /// `received_at`, unix milliseconds.
    #[serde(
        rename = "received_at",
        default,
        deserialize_with = "optional_unix_millis_of_text"
    )]
    pub received_at_ms: Option<i64>,
    #[serde(borrow)]
    pub category: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    pub outcome: Outcome,
    #[serde(borrow)]
    pub actor: ActorView<'a>,
    #[serde(borrow, default)]
    pub targets: Vec<TargetView<'a>>,
    #[serde(borrow, default)]
    pub context: ContextView<'a>,
    #[serde(borrow, default)]
    pub metadata: MetadataView<'a>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub source: Option<Cow<'a, str>>,
    /// The contract version the event states (not mapped).
    #[serde(default)]
    pub version: Option<u8>,
    #[serde(default)]
    pub provenance: Option<Provenance>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorView<'a> {
    #[serde(rename = "type")]
    pub kind: ActorType,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub email: Option<Cow<'a, str>>,
}

/// A target; serialized as the event has it (`type`, `id`, `name`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetView<'a> {
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(
        borrow,
        default,
        deserialize_with = "optional_text",
        skip_serializing_if = "Option::is_none"
    )]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextView<'a> {
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub ip: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub location: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "optional_text")]
    pub request_id: Option<Cow<'a, str>>,
}

/// The event's metadata: the parsed map, or the JSON object as the event holds it.
#[derive(Debug, Clone, Copy, Default)]
pub enum MetadataView<'a> {
    /// No entries.
    #[default]
    Empty,
    Map(&'a BTreeMap<String, MetadataValue>),
    /// A JSON object with at least one entry.
    Json(&'a RawValue),
}

impl<'a> MetadataView<'a> {
    pub fn is_empty(&self) -> bool {
        matches!(self, MetadataView::Empty)
    }

    /// The text of the entry `key`, if it is a string.
    pub fn text(&self, key: &str) -> Option<Cow<'a, str>> {
        match *self {
            MetadataView::Empty => None,
            MetadataView::Map(map) => match map.get(key) {
                Some(MetadataValue::String(text)) => Some(Cow::Borrowed(text.as_str())),
                _ => None,
            },
            // Only the classes that read an entry get here (User Access Management): the
            // entry is found in one pass, without building the others.
            MetadataView::Json(raw) => {
                let mut reader = serde_json::Deserializer::from_str(raw.get());
                reader.deserialize_map(EntryText(key)).ok()?
            }
        }
    }
}

/// Reads a metadata object for the text of one entry: the last entry of that name, as a map
/// keeps it, and nothing when a value is not a scalar (the map would refuse the object).
struct EntryText<'k>(&'k str);

impl<'de> Visitor<'de> for EntryText<'_> {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a metadata object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(name) = map.next_key::<KeyText<'de>>()? {
            let value = map.next_value::<ScalarText<'de>>()?;
            if name.0 == self.0 {
                found = value.0;
            }
        }
        Ok(found)
    }
}

/// A key, borrowed unless escaped.
struct KeyText<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for KeyText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor).map(KeyText)
    }
}

/// A metadata value: its text when a string, `None` for the other scalars; arrays and objects
/// are refused, as [`MetadataValue`] refuses them.
struct ScalarText<'de>(Option<Cow<'de, str>>);

impl<'de> Deserialize<'de> for ScalarText<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ScalarVisitor).map(ScalarText)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Option<Cow<'de, str>>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a string, number, boolean or null")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Borrowed(text)))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Some(Cow::Owned(text.to_owned())))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
}

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MetadataView::Empty => BTreeMap::<String, MetadataValue>::new().serialize(serializer),
            MetadataView::Map(map) => map.serialize(serializer),
            MetadataView::Json(raw) => raw.serialize(serializer),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for MetadataView<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&'de RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        if !text.starts_with('{') {
            return Err(D::Error::custom("metadata must be an object"));
        }
        let empty = text[1..]
            .trim_start_matches(|c: char| c.is_ascii_whitespace())
            .starts_with('}');
        Ok(if empty {
            MetadataView::Empty
        } else {
            MetadataView::Json(raw)
        })
    }
}

impl<'a> From<&'a AuditEvent> for EventView<'a> {
    fn from(event: &'a AuditEvent) -> Self {
        let text = |value: &'a Option<String>| value.as_deref().map(Cow::Borrowed);
        EventView {
            id: Cow::Owned(event.id.to_string()),
            org_id: Cow::Borrowed(&event.org_id),
            occurred_at_ms: event.occurred_at_millis(),
            received_at_ms: event.received_at.map(unix_millis),
            category: Cow::Borrowed(&event.category),
            action: Cow::Borrowed(&event.action),
            outcome: event.outcome,
            actor: ActorView {
                kind: event.actor.kind,
                id: Cow::Borrowed(&event.actor.id),
                name: text(&event.actor.name),
                email: text(&event.actor.email),
            },
            targets: event
                .targets
                .iter()
                .map(|target| TargetView {
                    kind: Cow::Borrowed(&target.kind),
                    id: Cow::Borrowed(&target.id),
                    name: text(&target.name),
                })
                .collect(),
            context: ContextView {
                ip: text(&event.context.ip),
                user_agent: text(&event.context.user_agent),
                location: text(&event.context.location),
                request_id: text(&event.context.request_id),
            },
            metadata: if event.metadata.is_empty() {
                MetadataView::Empty
            } else {
                MetadataView::Map(&event.metadata)
            },
            source: text(&event.source),
            version: Some(event.version),
            provenance: event.provenance,
        }
    }
}

/// A JSON string, borrowed unless it holds escapes (serde's `borrow` does this for a
/// `Cow<str>` field, not for one inside an `Option`).
struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }

    fn visit_string<E: serde::de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text))
    }
}

fn optional_text<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    struct OptionVisitor;

    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Cow<'de, str>>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a string or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_str(TextVisitor).map(Some)
        }
    }

    deserializer.deserialize_option(OptionVisitor)
}

fn unix_millis_of_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    let text = deserializer.deserialize_str(TextVisitor)?;
    crate::event::rfc3339_unix_millis(&text)
        .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
}

fn optional_unix_millis_of_text<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    optional_text(deserializer)?
        .map(|text| {
            crate::event::rfc3339_unix_millis(&text)
                .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: {text:?}")))
        })
        .transpose()
}
