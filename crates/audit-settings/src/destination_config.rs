//! A destination's type and type-specific settings as they are stored: a JSON object with a
//! string `type`. This crate knows no destination type: `audit_sinks::registry` types the
//! object at the edge (the forwarder building a sink, the operator API), so adding a type
//! changes nothing here.
//!
//! The fields keep the order they were written in, so a record read and written again is the
//! same bytes (`serde_json`'s own map would sort them).

use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// The field naming the destination's type.
const TYPE: &str = "type";

/// A destination's settings, e.g. `{"type": "splunk_hec", "url": …, "token": <sealed>}`.
#[derive(Clone, PartialEq)]
pub struct DestinationConfig {
    /// The fields, `type` among them (always a string), in the order they were written.
    fields: Vec<(String, Value)>,
}

impl DestinationConfig {
    /// The config `typed` serialises to: typed settings whose serialisation is an object
    /// tagged with a string `type`.
    pub fn from_typed<T: Serialize>(typed: &T) -> serde_json::Result<Self> {
        serde_json::from_slice(&serde_json::to_vec(typed)?)
    }

    /// The config parsed as `T` (typed settings tagged with `type`).
    pub fn to_typed<T: DeserializeOwned>(&self) -> serde_json::Result<T> {
        serde_json::from_value(self.to_value())
    }

    /// The destination's type, e.g. `splunk_hec`.
    pub fn type_name(&self) -> &str {
        // Present by construction: parsing refuses an object without a string `type`.
        self.get(TYPE).and_then(Value::as_str).unwrap_or_default()
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields
            .iter()
            .find(|(name, _)| name == field)
            .map(|(_, value)| value)
    }

    /// The config as a JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(self.fields.iter().cloned().collect())
    }
}

/// Names the type and the fields, never their values (sealed secrets among them).
impl fmt::Debug for DestinationConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.fields.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("DestinationConfig")
            .field("type", &self.type_name())
            .field("fields", &names)
            .finish()
    }
}

impl Serialize for DestinationConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.fields.iter().map(|(name, value)| (name, value)))
    }
}

impl<'de> Deserialize<'de> for DestinationConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ConfigVisitor)
    }
}

struct ConfigVisitor;

impl<'de> Visitor<'de> for ConfigVisitor {
    type Value = DestinationConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object with a string `type`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut fields: Vec<(String, Value)> = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Value>()? {
            if fields.iter().any(|(seen, _)| *seen == name) {
                return Err(de::Error::custom(format_args!("duplicate field `{name}`")));
            }
            fields.push((name, value));
        }
        match fields.iter().find(|(name, _)| name == TYPE) {
            Some((_, Value::String(_))) => Ok(DestinationConfig { fields }),
            Some(_) => Err(de::Error::custom("`type` must be a string")),
            None => Err(de::Error::missing_field(TYPE)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn fields_keep_their_order_and_values() {
        let text = r#"{"type":"splunk_hec","url":"https://hec.example.com","token":"v1.k.n.c","index":null,"indexer_ack":false}"#;
        let config: DestinationConfig = serde_json::from_str(text).unwrap();
        assert_eq!(config.type_name(), "splunk_hec");
        assert_eq!(serde_json::to_string(&config).unwrap(), text);
        let debug = format!("{config:?}");
        assert!(!debug.contains("v1.k"), "{debug}");
    }

    #[test]
    fn a_config_needs_a_string_type_and_distinct_fields() {
        for text in [
            r#"{"url":"https://x.example"}"#,
            r#"{"type":7}"#,
            r#"{"type":"webhook","url":"a","url":"b"}"#,
            r#"["webhook"]"#,
        ] {
            assert!(
                serde_json::from_str::<DestinationConfig>(text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn typed_settings_round_trip() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Kind {
            Webhook {
                url: String,
                max_batch_events: Option<usize>,
            },
        }
        let typed = Kind::Webhook {
            url: "https://x.example".into(),
            max_batch_events: Some(5),
        };
        let config = DestinationConfig::from_typed(&typed).unwrap();
        assert_eq!(
            serde_json::to_string(&config).unwrap(),
            serde_json::to_string(&typed).unwrap()
        );
        assert_eq!(config.to_typed::<Kind>().unwrap(), typed);
    }
}
