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

use audit_core::integrity::IntegrityKey;
use audit_core::validate::BrokerTime;
use audit_core::{EventValidator, event::unix_millis};
use audit_kafka::{DecodeError, Decoded, EventDecoder, MessageParts};
use audit_settings::{NotRetained, PlansConfig, SettingsView};
use audit_store::PendingEvent;
use rdkafka::message::BorrowedMessage;
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
    /// The rules every consumer of the topic applies (`audit_kafka::decode`).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("$.occurred_at: {0}")]
    NotRetained(NotRetained),
}

/// Validates one message and builds its row, or says why it is dead.
pub fn decode(
    message: &BorrowedMessage<'_>,
    decoder: &Decoder<'_>,
    settings: &SettingsView,
) -> Result<PendingEvent, DeadReason> {
    let parts = MessageParts::of(message, decoder.topic, "indexer");
    let now = OffsetDateTime::now_utc();
    // The age of the message (batching while behind) and the fallback `received_at` of rows
    // stored before it was always stamped.
    let broker_ms = match parts.time {
        BrokerTime::LogAppend(ms) => ms,
        _ => unix_millis(now),
    };
    let events = EventDecoder {
        validator: decoder.validator,
        integrity: decoder.integrity,
    };
    let decoded = events.decode(parts);
    let path = match &decoded {
        Ok(decoded) => Some(decoded.path()),
        Err(refused) => refused.path(),
    };
    if let Some(path) = path {
        metrics::counter!("indexer_messages_total", "path" => path.as_str()).increment(1);
    }
    let (org_id, occurred_at, json, leaf) = match decoded? {
        Decoded::Tagged {
            head,
            occurred_at_ms,
            payload,
            leaf,
        } => {
            // Written by the platform, which wrote this exact canonical JSON: only what routes
            // the row was read (the row is built while the insert streams), and its leaf came
            // with the tag's check.
            let occurred_at = at_millis(occurred_at_ms);
            (
                head.org_id.into_owned(),
                occurred_at,
                payload.to_vec(),
                Some(leaf),
            )
        }
        Decoded::Validated(valid) => (
            valid.event.org_id,
            valid.event.occurred_at,
            valid.json,
            None,
        ),
    };
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
        leaf,
    })
}

fn at_millis(unix_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use audit_core::FieldError;

    use super::*;

    #[test]
    fn dead_letter_reasons_read_as_before() {
        assert_eq!(
            DeadReason::from(DecodeError::Empty).to_string(),
            "empty message (no value)"
        );
        let mismatch = DeadReason::from(DecodeError::KeyMismatch {
            key: "org_b".into(),
            org_id: "org_a".into(),
            path: audit_kafka::Path::Tagged,
        });
        assert_eq!(
            mismatch.to_string(),
            "message key `org_b` differs from org_id `org_a`: the key must be the organization (per-organization ordering)"
        );
        let invalid = DeadReason::from(DecodeError::Invalid(vec![
            FieldError {
                path: "$.org_id".into(),
                reason: "is required".into(),
            },
            FieldError {
                path: "$.action".into(),
                reason: "unknown".into(),
            },
        ]));
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
