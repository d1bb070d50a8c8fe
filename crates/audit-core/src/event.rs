//! The event as it is stored and published (contract v1).
//!
//! Timestamps are normalised to UTC with millisecond precision on the way in and always
//! written as RFC 3339 with an explicit `Z`, so no consumer ever sees a zone-less time.
//!
//! Server-owned fields — `received_at` and `provenance` (and `source` on the gateway's API) —
//! are stamped by the platform on every path; a value a producer sends for them is replaced.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

/// One audit event, normalised (id assigned, times in UTC with ms precision).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// Unique id and deduplication key.
    pub id: Uuid,
    pub org_id: String,
    #[serde(with = "utc_millis")]
    pub occurred_at: OffsetDateTime,
    /// When the platform received the event (server-owned: the gateway's receive time, or the
    /// broker's append time for messages produced straight to Kafka). Absent only in rows
    /// stored before it was always stamped.
    #[serde(
        default,
        with = "utc_millis::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub received_at: Option<OffsetDateTime>,
    pub category: String,
    pub action: String,
    pub outcome: Outcome,
    pub actor: Actor,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub metadata: BTreeMap<String, MetadataValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default = "default_version")]
    pub version: u8,
    /// How the event reached the log (server-owned; absent only in rows stored before it
    /// existed): says whether `source` was verified and whether the platform wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// How an event reached the log, stamped by the platform (a producer's value is replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provenance {
    /// Written by the audit-log service itself (reads, exports and settings changes recorded
    /// by the gateway, automatic pauses by the forwarder), proven by an integrity tag only the
    /// services can make. The only provenance of the internal `audit_log` category.
    System,
    /// Published over the gateway's API with a producer key: `source` is that key's name.
    Gateway,
    /// Produced straight to the events topic: `source` is only what the producer claimed.
    Kafka,
}

impl Provenance {
    pub fn as_str(self) -> &'static str {
        match self {
            Provenance::System => "system",
            Provenance::Gateway => "gateway",
            Provenance::Kafka => "kafka",
        }
    }
}

fn default_version() -> u8 {
    crate::SCHEMA_VERSION
}

/// The same event as a producer may send it: the id and version may be absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventInput {
    #[serde(default)]
    pub id: Option<Uuid>,
    pub org_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Server-owned: accepted for compatibility and replaced.
    #[serde(default, rename = "received_at")]
    pub _received_at: Option<serde::de::IgnoredAny>,
    pub category: String,
    pub action: String,
    pub outcome: Outcome,
    pub actor: Actor,
    #[serde(default)]
    pub targets: Vec<Target>,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub metadata: BTreeMap<String, MetadataValue>,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default = "default_version")]
    pub version: u8,
    /// Server-owned: accepted (so an event read back from the API can be published again)
    /// and replaced.
    #[serde(default, rename = "provenance")]
    pub _provenance: Option<serde::de::IgnoredAny>,
}

impl EventInput {
    /// The normalised event, with the server-owned fields stamped from `stamp`.
    pub(crate) fn into_event(
        self,
        assign_id: impl FnOnce() -> Uuid,
        stamp: Stamp<'_>,
    ) -> AuditEvent {
        AuditEvent {
            id: self.id.unwrap_or_else(assign_id),
            org_id: self.org_id,
            occurred_at: to_utc_millis(self.occurred_at),
            received_at: Some(to_utc_millis(stamp.received_at)),
            category: self.category,
            action: self.action,
            outcome: self.outcome,
            actor: self.actor,
            targets: self.targets,
            context: self.context,
            metadata: self.metadata,
            source: stamp.source.map(str::to_string).or(self.source),
            version: self.version,
            provenance: Some(stamp.provenance),
        }
    }
}

/// The server-owned fields stamped on a producer's event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp<'a> {
    pub received_at: OffsetDateTime,
    pub provenance: Provenance,
    /// The authenticated producer, when known: replaces any claimed `source`.
    pub source: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorType {
    User,
    Service,
    ApiKey,
    System,
}

impl ActorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorType::User => "user",
            ActorType::Service => "service",
            ActorType::ApiKey => "api_key",
            ActorType::System => "system",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    #[serde(rename = "type")]
    pub kind: ActorType,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A metadata value: flat by contract (no objects or arrays).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum MetadataValue {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
}

// Hand-written: serde's untagged enums buffer the value and build an error for every variant
// they reject, which showed up in the indexer's profile.
impl<'de> Deserialize<'de> for MetadataValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = MetadataValue;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string, number, boolean or null")
            }

            fn visit_unit<E>(self) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Null)
            }

            fn visit_none<E>(self) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Null)
            }

            fn visit_bool<E>(self, value: bool) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Bool(value))
            }

            fn visit_i64<E>(self, value: i64) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Number(value.into()))
            }

            fn visit_u64<E>(self, value: u64) -> Result<MetadataValue, E> {
                Ok(MetadataValue::Number(value.into()))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<MetadataValue, E> {
                serde_json::Number::from_f64(value)
                    .map(MetadataValue::Number)
                    .ok_or_else(|| E::custom("metadata numbers must be finite"))
            }

            fn visit_str<E>(self, value: &str) -> Result<MetadataValue, E> {
                Ok(MetadataValue::String(value.to_string()))
            }

            fn visit_string<E>(self, value: String) -> Result<MetadataValue, E> {
                Ok(MetadataValue::String(value))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

impl MetadataValue {
    /// The value as text, for columnar storage and CSV (strings unquoted, null empty).
    pub fn to_text(&self) -> String {
        match self {
            MetadataValue::Null => String::new(),
            MetadataValue::Bool(value) => value.to_string(),
            MetadataValue::Number(value) => value.to_string(),
            MetadataValue::String(value) => value.clone(),
        }
    }
}

impl AuditEvent {
    /// The canonical JSON encoding (the bytes published to Kafka and stored as `raw`).
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain structs, strings and numbers into a Vec cannot fail.
        let json = serde_json::to_vec(self).unwrap_or_default();
        // to_vec grows its buffer by doubling (up to 2× the length); the indexer queues
        // thousands of these for its writer, so keep an exact-size copy (measured on the
        // validated path: 129 → 117 MB peak RSS).
        json.as_slice().to_vec()
    }

    pub fn occurred_at_millis(&self) -> i64 {
        unix_millis(self.occurred_at)
    }
}

/// A fresh time-ordered event id (UUIDv7).
pub fn new_event_id() -> Uuid {
    Uuid::now_v7()
}

/// The id for a retried single-event request carrying an `Idempotency-Key`: stable for the
/// same producer, organization and key, so the retry deduplicates downstream.
pub fn idempotent_event_id(producer: &str, org_id: &str, idempotency_key: &str) -> Uuid {
    const NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_1c2e_7d4a_4c36_9d1b_3a0b_51a2_c0de);
    let name = format!("{producer}\u{0}{org_id}\u{0}{idempotency_key}");
    Uuid::new_v5(&NAMESPACE, name.as_bytes())
}

/// The id for a message produced straight to Kafka without one: a UUIDv7 whose time is the
/// broker timestamp and whose random bits come from the message's position, so that
/// re-consuming the same message (after a crash or rebalance) yields the same id.
pub fn id_for_kafka_message(topic: &str, partition: i32, offset: i64, timestamp_ms: i64) -> Uuid {
    let digest = Sha256::digest(format!("{topic}/{partition}/{offset}").as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let millis = u64::try_from(timestamp_ms.max(0)).unwrap_or(0);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

pub fn to_utc_millis(at: OffsetDateTime) -> OffsetDateTime {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let millis = utc.millisecond();
    utc.replace_nanosecond(u32::from(millis) * 1_000_000)
        .unwrap_or(utc)
}

pub fn unix_millis(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// An RFC 3339 time as unix milliseconds, cut to the millisecond like [`to_utc_millis`]. The
/// form the platform writes (`2026-11-26T07:04:25.123Z`: UTC, up to 9 fraction digits) is read
/// without building an `OffsetDateTime` (the forwarder reads two per event); any other form
/// (an offset, a leap second, lowercase letters) is parsed by `time`.
pub fn rfc3339_unix_millis(text: &str) -> Option<i64> {
    utc_text_millis(text.as_bytes()).or_else(|| {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
            .ok()
            .map(|at| unix_millis(to_utc_millis(at)))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.f…]Z` as unix milliseconds; `None` for any other shape or an
/// impossible date.
fn utc_text_millis(text: &[u8]) -> Option<i64> {
    let (&b'Z', text) = text.split_last()? else {
        return None;
    };
    if text.len() < 19 || [text[4], text[7], text[10], text[13], text[16]] != *b"--T::" {
        return None;
    }
    let number = |digits: &[u8]| {
        digits.iter().try_fold(0i64, |value, &digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + i64::from(digit - b'0'))
        })
    };
    let millis = match &text[19..] {
        [] => 0,
        [b'.', fraction @ ..] if (1..=9).contains(&fraction.len()) => {
            number(fraction)?;
            let mut first_three = [b'0'; 3];
            for (slot, digit) in first_three.iter_mut().zip(fraction) {
                *slot = *digit;
            }
            number(&first_three)?
        }
        _ => return None,
    };
    let (hour, minute, second) = (
        number(&text[11..13])?,
        number(&text[14..16])?,
        number(&text[17..19])?,
    );
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(number(&text[5..7])?).ok()?).ok()?;
    let date = time::Date::from_calendar_date(
        i32::try_from(number(&text[0..4])?).ok()?,
        month,
        u8::try_from(number(&text[8..10])?).ok()?,
    )
    .ok()?;
    /// The Julian day number of 1970-01-01.
    const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;
    let days = i64::from(date.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY;
    Some((((days * 24 + hour) * 60 + minute) * 60 + second) * 1000 + millis)
}

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T07:04:25.123Z`.
pub fn format_utc_millis(at: OffsetDateTime) -> String {
    utc_millis_text(at, 'T', "Z")
}

/// Formats a time as SQL date-time text in UTC with milliseconds and no zone, e.g.
/// `2026-11-26 07:04:25.123`: how ClickHouse reads a `DateTime64(3, 'UTC')` parameter.
pub fn format_utc_millis_sql(at: OffsetDateTime) -> String {
    utc_millis_text(at, ' ', "")
}

/// `<date><separator><time with milliseconds><zone>`, in UTC.
fn utc_millis_text(at: OffsetDateTime, separator: char, zone: &str) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let year = match u16::try_from(utc.year()) {
        Ok(year) if year <= 9999 => year,
        _ => return utc_millis_formatted(utc, separator, zone),
    };
    // Digit by digit: twice per event on every write path, and `format!` showed in the
    // validator's profile (6 % of it).
    let mut text = String::with_capacity(24);
    push_digits(&mut text, year, 4);
    text.push('-');
    push_digits(&mut text, u16::from(u8::from(utc.month())), 2);
    text.push('-');
    push_digits(&mut text, u16::from(utc.day()), 2);
    text.push(separator);
    push_digits(&mut text, u16::from(utc.hour()), 2);
    text.push(':');
    push_digits(&mut text, u16::from(utc.minute()), 2);
    text.push(':');
    push_digits(&mut text, u16::from(utc.second()), 2);
    text.push('.');
    push_digits(&mut text, utc.millisecond(), 3);
    text.push_str(zone);
    text
}

/// `value`'s last `width` decimal digits, zero-padded.
fn push_digits(text: &mut String, value: u16, width: u32) {
    for power in (0..width).rev() {
        let digit = (value / 10u16.pow(power)) % 10;
        text.push(char::from(b'0' + digit as u8));
    }
}

/// [`utc_millis_text`] for years outside 0–9999.
fn utc_millis_formatted(utc: OffsetDateTime, separator: char, zone: &str) -> String {
    format!(
        "{:04}-{:02}-{:02}{separator}{:02}:{:02}:{:02}.{:03}{zone}",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
        utc.millisecond()
    )
}

/// Serde helpers writing `2026-11-26T07:04:25.123Z` and reading any RFC 3339 time.
pub mod utc_millis {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format_utc_millis(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<OffsetDateTime, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
            .map(super::to_utc_millis)
            .map_err(serde::de::Error::custom)
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(
            at: &Option<OffsetDateTime>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match at {
                Some(at) => super::serialize(at, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
            text.map(|text| {
                OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                    .map(super::super::to_utc_millis)
                    .map_err(serde::de::Error::custom)
            })
            .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use time::macros::datetime;

    #[test]
    fn rfc3339_times_read_as_unix_millis_like_time_does() {
        let by_time = |text: &str| {
            OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|at| unix_millis(to_utc_millis(at)))
        };
        let mut texts: Vec<String> = [
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00.250Z",
            "2026-01-01T00:00:00.2Z",
            "2026-01-01T00:00:00.25Z",
            "2026-12-02T07:47:16.123456789Z",
            "1969-12-31T23:59:59.999Z",
            "1900-02-28T12:00:00Z",
            "2024-02-29T23:59:59.999Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999Z",
            // Other forms: time's answer (a value or a refusal) stands.
            "2026-01-01T02:00:00+02:00",
            "2026-01-01t00:00:00z",
            "2016-12-31T23:59:60Z",
            "2026-01-01T00:00:00.1234567891Z",
            "2025-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-01-32T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:60:00Z",
            "2026-01-01T00:00:00.Z",
            "2026-01-01 00:00:00Z",
            "2026-1-01T00:00:00Z",
            "+026-01-01T00:00:00Z",
            "2026-01-01T00:00:00",
            "",
            "Z",
        ]
        .iter()
        .map(|text| text.to_string())
        .collect();
        // Every day of a leap and a common year, at a time with milliseconds.
        let mut at = time::macros::datetime!(2023-01-01 13:14:15.678 UTC);
        while at.year() < 2025 {
            texts.push(format_utc_millis(at));
            at += time::Duration::days(1);
        }
        for text in &texts {
            assert_eq!(rfc3339_unix_millis(text), by_time(text), "{text}");
        }
        assert_eq!(
            rfc3339_unix_millis("2026-01-01T00:00:00.250Z"),
            Some(1_767_225_600_250)
        );
    }

    #[test]
    fn metadata_values_round_trip() {
        let json = r#"{"s":"x","n":-3,"f":1.5,"b":true,"z":null,"u":18446744073709551615}"#;
        let parsed: BTreeMap<String, MetadataValue> = serde_json::from_str(json).expect("parse");
        assert_eq!(parsed["s"], MetadataValue::String("x".into()));
        assert_eq!(parsed["z"], MetadataValue::Null);
        assert_eq!(parsed["b"].to_text(), "true");
        assert_eq!(parsed["f"].to_text(), "1.5");
        assert_eq!(parsed["u"].to_text(), "18446744073709551615");
        let back: serde_json::Value = serde_json::to_value(&parsed).expect("json");
        assert_eq!(
            back,
            serde_json::from_str::<serde_json::Value>(json).expect("json")
        );
        assert!(serde_json::from_str::<MetadataValue>("[1]").is_err());
        assert!(serde_json::from_str::<MetadataValue>("{}").is_err());
    }

    #[test]
    fn times_are_normalised_to_utc_millis() {
        let at = datetime!(2026-11-26 09:04:25.123456789 +02:00);
        assert_eq!(
            format_utc_millis(to_utc_millis(at)),
            "2026-11-26T07:04:25.123Z"
        );
    }

    #[test]
    fn idempotent_ids_are_stable_and_scoped() {
        let first = idempotent_event_id("billing", "org_1", "k1");
        assert_eq!(first, idempotent_event_id("billing", "org_1", "k1"));
        assert_ne!(first, idempotent_event_id("billing", "org_2", "k1"));
        assert_ne!(first, idempotent_event_id("identity", "org_1", "k1"));
    }

    #[test]
    fn kafka_message_ids_are_deterministic_v7() {
        let id = id_for_kafka_message("audit.events.v1", 3, 42, 1_764_140_000_000);
        assert_eq!(
            id,
            id_for_kafka_message("audit.events.v1", 3, 42, 1_764_140_000_000)
        );
        assert_ne!(
            id,
            id_for_kafka_message("audit.events.v1", 3, 43, 1_764_140_000_000)
        );
        assert_eq!(id.get_version_num(), 7);
    }

    proptest::proptest! {
        #[test]
        fn times_are_written_digit_by_digit_as_format_writes_them(
            seconds in -62_135_596_800i64..253_402_300_799,
            nanos in 0u32..1_000_000_000,
            offset_minutes in -1439i32..1439,
        ) {
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
            let at = OffsetDateTime::from_unix_timestamp(seconds)
                .unwrap()
                .replace_nanosecond(nanos)
                .unwrap()
                .to_offset(offset);
            let utc = at.to_offset(time::UtcOffset::UTC);
            proptest::prop_assert_eq!(utc_millis_text(at, 'T', "Z"), utc_millis_formatted(utc, 'T', "Z"));
            proptest::prop_assert_eq!(utc_millis_text(at, ' ', ""), utc_millis_formatted(utc, ' ', ""));
        }
    }
}
