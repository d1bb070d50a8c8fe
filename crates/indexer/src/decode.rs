//! One Kafka message → the row to insert, or the reason it is dead-lettered.
//!
//! * Messages the platform wrote (a verified integrity tag: the gateway's validated events, the
//!   services' own `audit_log` events) carry canonical JSON: only the organization,
//!   `occurred_at`, and what the tag must agree with (provenance, category —
//!   `audit_core::integrity::check_tagged`) are read here; the row is built while the insert
//!   streams.
//! * Every other message goes through the shared validator, exactly as HTTP ingest does, which
//!   stamps the server-owned fields: `received_at` is the broker's append time (never a time
//!   the producer chose, see `audit_kafka::broker_time`), `provenance` is `kafka`, and internal
//!   categories are refused.
//! * On both paths the key must be the organization (per-organization ordering), and an event
//!   already older than its organization's retention is refused: it would be deleted as soon
//!   as it was stored ([`audit_settings::PlansConfig::check_retained`]).

use std::borrow::Cow;

use audit_core::integrity::{IntegrityKey, TagMismatch};
use audit_core::validate::{Arrival, BrokerTime};
use audit_core::{EventValidator, FieldError};
use audit_settings::{NotRetained, PlansConfig, SettingsView};
use audit_store::PendingEvent;
use rdkafka::message::{BorrowedMessage, Message};
use time::OffsetDateTime;

/// What decoding needs besides the message.
pub struct Decoder<'a> {
    pub validator: &'a EventValidator,
    pub integrity: &'a IntegrityKey,
    pub topic: &'a str,
    pub plans: &'a PlansConfig,
}

/// Why a message is dead-lettered; the message is its dead-letter reason.
#[derive(Debug, thiserror::Error)]
pub enum DeadReason {
    #[error("empty message (no value)")]
    Empty,
    #[error("tagged message is not a canonical event: {0}")]
    NotCanonical(serde_json::Error),
    #[error(transparent)]
    TagMismatch(#[from] TagMismatch),
    #[error("tagged message has an invalid occurred_at: {0}")]
    OccurredAt(time::error::Parse),
    /// The validator's errors, as one line.
    #[error("{}", audit_core::validate::describe(.0))]
    Invalid(Vec<FieldError>),
    /// `key` is the message key (its first 128 bytes, lossily decoded).
    #[error(
        "message key `{key}` differs from org_id `{org_id}`: the key must be the organization (per-organization ordering)"
    )]
    KeyMismatch { key: String, org_id: String },
    #[error("$.occurred_at: {0}")]
    NotRetained(NotRetained),
}

/// Validates one message and builds its row, or says why it is dead.
pub fn decode(
    message: &BorrowedMessage<'_>,
    decoder: &Decoder<'_>,
    settings: &SettingsView,
) -> Result<PendingEvent, DeadReason> {
    let Some(payload) = message.payload() else {
        return Err(DeadReason::Empty);
    };
    let now = OffsetDateTime::now_utc();
    let time = audit_kafka::broker_time(message.timestamp(), "indexer");
    // The age of the message (batching while behind) and the fallback `received_at` of rows
    // stored before it was always stamped.
    let broker_ms = match time {
        BrokerTime::LogAppend(ms) => ms,
        _ => audit_core::event::unix_millis(now),
    };
    let signer = audit_kafka::header_str(message.headers(), audit_core::integrity::HEADER)
        .and_then(|tag| decoder.integrity.verify(payload, tag.as_bytes()));
    let (org_id, occurred_at, json) = if let Some(signer) = signer {
        // Written by the platform, which wrote this exact canonical JSON: only what routes the
        // row is read now (the row is built while the insert streams), once the event is seen
        // to say what its tag proves.
        metrics::counter!("indexer_messages_total", "path" => "tagged").increment(1);
        let head: EventHead<'_> =
            serde_json::from_slice(payload).map_err(DeadReason::NotCanonical)?;
        audit_core::integrity::check_tagged(
            signer,
            head.provenance.as_deref(),
            &head.category,
            decoder.validator.catalogue(),
        )?;
        let occurred_at = OffsetDateTime::parse(
            &head.occurred_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(DeadReason::OccurredAt)?;
        (head.org_id.into_owned(), occurred_at, payload.to_vec())
    } else {
        metrics::counter!("indexer_messages_total", "path" => "validated").increment(1);
        let arrival =
            Arrival::kafka_message(decoder.topic, message.partition(), message.offset(), time);
        let valid = decoder
            .validator
            .validate_bytes(payload, arrival)
            .map_err(DeadReason::Invalid)?;
        (valid.event.org_id, valid.event.occurred_at, valid.json)
    };
    if let Some(key) = message.key()
        && key != org_id.as_bytes()
    {
        return Err(DeadReason::KeyMismatch {
            key: String::from_utf8_lossy(&key[..key.len().min(128)]).into_owned(),
            org_id,
        });
    }
    let org = settings.org(&org_id).map(AsRef::as_ref);
    decoder
        .plans
        .check_retained(&org_id, org, occurred_at, now)
        .map_err(DeadReason::NotRetained)?;
    let retention_days = decoder.plans.retention_days(org);
    Ok(PendingEvent {
        org_id,
        json,
        retention_days,
        broker_ms,
        partition: audit_store::partition_of(occurred_at),
    })
}

/// The part of a canonical event read before insertion.
#[derive(serde::Deserialize)]
struct EventHead<'a> {
    #[serde(borrow)]
    org_id: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow)]
    category: Cow<'a, str>,
    #[serde(borrow, default)]
    provenance: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_reasons_read_as_before() {
        assert_eq!(DeadReason::Empty.to_string(), "empty message (no value)");
        let mismatch = DeadReason::KeyMismatch {
            key: "org_b".into(),
            org_id: "org_a".into(),
        };
        assert_eq!(
            mismatch.to_string(),
            "message key `org_b` differs from org_id `org_a`: the key must be the organization (per-organization ordering)"
        );
        let invalid = DeadReason::Invalid(vec![
            FieldError {
                path: "$.org_id".into(),
                reason: "is required".into(),
            },
            FieldError {
                path: "$.action".into(),
                reason: "unknown".into(),
            },
        ]);
        assert_eq!(
            invalid.to_string(),
            "$.org_id: is required; $.action: unknown"
        );
        let expired = DeadReason::NotRetained(NotRetained {
            org_id: "org_a".into(),
            days_ago: 100,
            retention_days: 90,
        });
        assert_eq!(
            expired.to_string(),
            "$.occurred_at: is 100 days in the past; organization `org_a` keeps its log for 90 days, \
             so the event would be deleted as soon as it was stored"
        );
    }
}
