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

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_core::validate::{Arrival, BrokerTime};
use audit_settings::{PlansConfig, SettingsView};
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
        let head: EventHead<'_> = serde_json::from_slice(payload)
            .map_err(|error| format!("tagged message is not a canonical event: {error}"))?;
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
        .map_err(|error| format!("tagged message has an invalid occurred_at: {error}"))?;
        (head.org_id.into_owned(), occurred_at, payload.to_vec())
    } else {
        metrics::counter!("indexer_messages_total", "path" => "validated").increment(1);
        let arrival =
            Arrival::kafka_message(decoder.topic, message.partition(), message.offset(), time);
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
    #[serde(borrow)]
    category: Cow<'a, str>,
    #[serde(borrow, default)]
    provenance: Option<Cow<'a, str>>,
}
