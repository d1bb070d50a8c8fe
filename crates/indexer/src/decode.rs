//! One Kafka message → the row to insert, or the reason it is dead-lettered.
//!
//! * Messages tagged by the gateway (a verified integrity tag) carry canonical JSON that the
//!   gateway validated: only the organization and `occurred_at` are read here; the row is
//!   built while the insert streams.
//! * Every other message goes through the shared validator, exactly as HTTP ingest does.
//! * On both paths the key must be the organization (per-organization ordering), and an event
//!   already older than its organization's retention is refused: it would be deleted as soon
//!   as it was stored ([`audit_settings::PlansConfig::check_retained`]).

use std::borrow::Cow;

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_core::validate::Arrival;
use audit_settings::{PlansConfig, SettingsView};
use audit_store::PendingEvent;
use rdkafka::message::{BorrowedMessage, Message};
use time::OffsetDateTime;

/// What decoding needs besides the message.
pub struct Decoder<'a> {
    pub validator: &'a EventValidator,
    pub integrity: Option<&'a IntegrityKey>,
    pub topic: &'a str,
    pub plans: &'a PlansConfig,
}

/// Validates one message and builds its row, or says why it is dead.
pub fn decode(
    message: &BorrowedMessage<'_>,
    decoder: &Decoder<'_>,
    settings: &SettingsView,
) -> Result<PendingEvent, String> {
    let Some(payload) = message.payload() else {
        return Err("empty message (no value)".into());
    };
    let now = OffsetDateTime::now_utc();
    // A timestamp outside `time`'s range counts as absent.
    let broker_ms = message
        .timestamp()
        .to_millis()
        .filter(|ms| OffsetDateTime::from_unix_timestamp_nanos(i128::from(*ms) * 1_000_000).is_ok())
        .unwrap_or_else(|| audit_core::event::unix_millis(now));
    let tag = audit_kafka::header_str(message.headers(), audit_core::integrity::HEADER);
    let tagged = match (decoder.integrity, tag) {
        (Some(key), Some(tag)) => key.verify(payload, tag.as_bytes()),
        _ => false,
    };
    let (org_id, occurred_at, json) = if tagged {
        // Validated by the gateway, which wrote this exact canonical JSON: only what routes
        // the row is read now (the row is built while the insert streams).
        metrics::counter!("indexer_messages_total", "path" => "tagged").increment(1);
        let head: EventHead<'_> = serde_json::from_slice(payload)
            .map_err(|error| format!("tagged message is not a canonical event: {error}"))?;
        let occurred_at = OffsetDateTime::parse(
            &head.occurred_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|error| format!("tagged message has an invalid occurred_at: {error}"))?;
        (head.org_id.into_owned(), occurred_at, payload.to_vec())
    } else {
        metrics::counter!("indexer_messages_total", "path" => "validated").increment(1);
        let arrival = Arrival::kafka_message(
            decoder.topic,
            message.partition(),
            message.offset(),
            broker_ms,
        );
        let valid = decoder
            .validator
            .validate_bytes(payload, arrival)
            .map_err(|errors| audit_core::validate::describe(&errors))?;
        (valid.event.org_id, valid.event.occurred_at, valid.json)
    };
    if let Some(key) = message.key()
        && key != org_id.as_bytes()
    {
        return Err(format!(
            "message key `{}` differs from org_id `{org_id}`: the key must be the organization (per-organization ordering)",
            String::from_utf8_lossy(&key[..key.len().min(128)]),
        ));
    }
    let org = settings.org(&org_id).map(AsRef::as_ref);
    decoder
        .plans
        .check_retained(&org_id, org, occurred_at, now)
        .map_err(|reason| format!("$.occurred_at: {reason}"))?;
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
}
