//! Events as the forwarder handles them: the few fields routing and the wire formats need,
//! plus the event's canonical JSON, forwarded byte for byte.
//!
//! Messages the gateway validated carry its integrity tag (`audit-integrity`, an HMAC of the
//! value under the key shared with the consumers, see `audit_core::integrity`): they are only
//! decoded for their head. Every other message (produced straight to Kafka, or with a missing
//! or forged tag) runs through the same validator as the indexer, with the same fallback id
//! and `received_at`, so an event without an id gets the id it has in query results, and a
//! message the indexer dead-letters as invalid is not forwarded either.

use std::borrow::Cow;
use std::sync::Arc;

use audit_core::EventValidator;
use audit_core::integrity::IntegrityKey;
use audit_core::validate::Arrival;
use bytes::Bytes;
use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// One event, ready to be encoded for any destination.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardEvent {
    pub id: String,
    pub org_id: String,
    pub category: String,
    pub action: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// The producing service, when known.
    pub source: Option<String>,
    /// `occurred_at`, unix milliseconds.
    pub occurred_at_ms: i64,
    /// When the platform received the event (its `received_at`, else the broker's time), unix ms.
    pub received_at_ms: i64,
    /// The event's canonical JSON (an object).
    pub json: Bytes,
}

/// The fields of an event the forwarder reads; the rest is skipped by the parser.
#[derive(Debug, Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    org_id: Cow<'a, str>,
    #[serde(borrow)]
    occurred_at: Cow<'a, str>,
    #[serde(borrow, default)]
    received_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    category: Cow<'a, str>,
    #[serde(borrow)]
    action: Cow<'a, str>,
    #[serde(borrow)]
    outcome: Cow<'a, str>,
    #[serde(borrow, default)]
    source: Option<Cow<'a, str>>,
}

/// What the consumer knows about a message besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Broker timestamp (LogAppendTime on the events topic), unix ms.
    pub timestamp_ms: Option<i64>,
    /// The message's `audit-integrity` header, if any.
    pub integrity_tag: Option<&'a [u8]>,
}

/// Decodes messages of the events topic.
#[derive(Debug, Clone)]
pub struct Decoder {
    validator: Arc<EventValidator>,
    /// Verifies the gateway's tags; `None`: validate every message.
    integrity: Option<IntegrityKey>,
}

impl Decoder {
    pub fn new(validator: Arc<EventValidator>, integrity: Option<IntegrityKey>) -> Self {
        Self {
            validator,
            integrity,
        }
    }

    /// The event in a message of the events topic, or why it is not forwarded.
    pub fn decode(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        info: MessageInfo<'_>,
    ) -> Result<ForwardEvent, String> {
        let payload = payload.ok_or("empty message (no value)")?;
        let broker_ms = info
            .timestamp_ms
            .unwrap_or_else(|| audit_core::event::unix_millis(OffsetDateTime::now_utc()));
        let validated_by_gateway = match (&self.integrity, info.integrity_tag) {
            (Some(key), Some(tag)) => key.verify(payload, tag),
            _ => false,
        };
        let event = if validated_by_gateway {
            decode_head(payload, broker_ms)?
        } else {
            self.validate(payload, info, broker_ms)?
        };
        if let Some(key) = key
            && key != event.org_id.as_bytes()
        {
            return Err("message key differs from org_id".into());
        }
        Ok(event)
    }

    fn validate(
        &self,
        payload: &[u8],
        info: MessageInfo<'_>,
        broker_ms: i64,
    ) -> Result<ForwardEvent, String> {
        let arrival = Arrival::kafka_message(info.topic, info.partition, info.offset, broker_ms);
        let valid = self
            .validator
            .validate_bytes(payload, arrival)
            .map_err(|errors| audit_core::validate::describe(&errors))?;
        let event = valid.event;
        Ok(ForwardEvent {
            id: event.id.to_string(),
            received_at_ms: event
                .received_at
                .map(audit_core::event::unix_millis)
                .unwrap_or(broker_ms),
            occurred_at_ms: event.occurred_at_millis(),
            org_id: event.org_id,
            category: event.category,
            action: event.action,
            outcome: event.outcome.as_str().to_string(),
            source: event.source,
            json: Bytes::from(valid.json),
        })
    }
}

/// Decodes an already validated event (from the gateway, or parked on the retry topic).
pub fn decode_head(payload: &[u8], fallback_received_ms: i64) -> Result<ForwardEvent, String> {
    let head: Head<'_> =
        serde_json::from_slice(payload).map_err(|error| format!("not an event: {error}"))?;
    let id = head.id.ok_or("event has no id")?;
    let occurred_at = parse_millis(&head.occurred_at).ok_or("occurred_at is not RFC 3339")?;
    let received_at = head
        .received_at
        .as_deref()
        .and_then(parse_millis)
        .unwrap_or(fallback_received_ms);
    Ok(ForwardEvent {
        id: id.into_owned(),
        org_id: head.org_id.into_owned(),
        category: head.category.into_owned(),
        action: head.action.into_owned(),
        outcome: head.outcome.into_owned(),
        source: head.source.map(Cow::into_owned),
        occurred_at_ms: occurred_at,
        received_at_ms: received_at,
        json: Bytes::copy_from_slice(payload),
    })
}

fn parse_millis(text: &str) -> Option<i64> {
    OffsetDateTime::parse(text, &Rfc3339)
        .ok()
        .map(audit_core::event::unix_millis)
}

/// `1433188255.500`: unix seconds with milliseconds, as Splunk's `time` wants it.
pub fn epoch_seconds_text(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    format!("{seconds}.{millis:03}")
}

/// `2026-11-26T07:04:25.123Z`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    audit_core::event::format_utc_millis(at)
}

/// A synthetic event, for tests and the operator's "send a test event" action.
pub fn synthetic_event(org_id: &str, action: &str, metadata: serde_json::Value) -> ForwardEvent {
    let now = OffsetDateTime::now_utc();
    let id = audit_core::event::new_event_id().to_string();
    let occurred = audit_core::event::format_utc_millis(now);
    let json = serde_json::json!({
        "id": id,
        "org_id": org_id,
        "occurred_at": occurred,
        "received_at": occurred,
        "category": "audit_log",
        "action": action,
        "outcome": "success",
        "actor": {"type": "system", "id": "forwarder", "name": "Audit log forwarder"},
        "targets": [],
        "context": {},
        "metadata": metadata,
        "source": "audit-log",
        "version": audit_core::SCHEMA_VERSION,
    });
    let millis = audit_core::event::unix_millis(now);
    ForwardEvent {
        id,
        org_id: org_id.to_string(),
        category: "audit_log".into(),
        action: action.into(),
        outcome: "success".into(),
        source: Some("audit-log".into()),
        occurred_at_ms: millis,
        received_at_ms: millis,
        json: Bytes::from(serde_json::to_vec(&json).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const KEY: &str = "test-integrity-key-0123456789abcdef";

    fn decoder() -> Decoder {
        let catalogue = Arc::new(audit_core::Catalogue::builtin());
        let validator =
            EventValidator::new(catalogue, audit_core::Limits::default()).expect("validator");
        Decoder::new(
            Arc::new(validator),
            Some(IntegrityKey::new(KEY).expect("key")),
        )
    }

    fn info(tag: Option<&[u8]>) -> MessageInfo<'_> {
        MessageInfo {
            topic: "audit.events.v1",
            partition: 2,
            offset: 40,
            timestamp_ms: Some(1_764_140_000_000),
            integrity_tag: tag,
        }
    }

    fn tag(payload: &str) -> String {
        IntegrityKey::new(KEY).expect("key").tag(payload.as_bytes())
    }

    const GATEWAY_EVENT: &str = r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_a","occurred_at":"2026-01-01T00:00:00.250Z","received_at":"2026-01-01T00:00:01.000Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_1"},"targets":[],"context":{},"metadata":{"k":"v"},"source":"identity-api","version":1}"#;

    #[test]
    fn gateway_messages_are_decoded_for_their_head_only() {
        let tag = tag(GATEWAY_EVENT);
        let event = decoder()
            .decode(
                Some(b"org_a"),
                Some(GATEWAY_EVENT.as_bytes()),
                info(Some(tag.as_bytes())),
            )
            .expect("decodes");
        assert_eq!(event.id, "0190d7a0-6c1e-7b3a-9f00-000000000001");
        assert_eq!(event.action, "user.login.failed");
        assert_eq!(event.outcome, "failure");
        assert_eq!(event.source.as_deref(), Some("identity-api"));
        assert_eq!(event.occurred_at_ms, 1_767_225_600_250);
        assert_eq!(event.received_at_ms, 1_767_225_601_000);
        assert_eq!(
            &event.json[..],
            GATEWAY_EVENT.as_bytes(),
            "forwarded byte for byte"
        );
    }

    #[test]
    fn direct_messages_are_validated_and_get_the_indexers_id() {
        let direct = r#"{"org_id":"org_a","occurred_at":"2026-01-01T02:00:00+02:00","category":"billing","action":"billing.invoice.generated","outcome":"success","actor":{"type":"system","id":"billing"}}"#;
        let event = decoder()
            .decode(Some(b"org_a"), Some(direct.as_bytes()), info(None))
            .expect("valid");
        let expected =
            audit_core::event::id_for_kafka_message("audit.events.v1", 2, 40, 1_764_140_000_000);
        assert_eq!(event.id, expected.to_string());
        assert_eq!(event.received_at_ms, 1_764_140_000_000);
        let json: serde_json::Value = serde_json::from_slice(&event.json).expect("json");
        assert_eq!(json["id"], expected.to_string());
        assert_eq!(json["occurred_at"], "2026-01-01T00:00:00.000Z");

        let unknown = direct.replace("billing.invoice.generated", "billing.teleported");
        assert!(
            decoder()
                .decode(Some(b"org_a"), Some(unknown.as_bytes()), info(None))
                .is_err()
        );
        // A forged tag does not skip validation.
        assert!(
            decoder()
                .decode(
                    Some(b"org_a"),
                    Some(unknown.as_bytes()),
                    info(Some(b"v1=forged"))
                )
                .is_err()
        );
    }

    #[test]
    fn bad_messages_say_why() {
        let decoder = decoder();
        assert!(decoder.decode(Some(b"org_a"), None, info(None)).is_err());
        assert!(
            decoder
                .decode(Some(b"org_a"), Some(b"{not json"), info(None))
                .is_err()
        );
        let tag = tag(GATEWAY_EVENT);
        let error = decoder
            .decode(
                Some(b"org_b"),
                Some(GATEWAY_EVENT.as_bytes()),
                info(Some(tag.as_bytes())),
            )
            .expect_err("key mismatch");
        assert!(error.contains("key"), "{error}");
    }

    #[test]
    fn time_formats() {
        assert_eq!(epoch_seconds_text(1_433_188_255_500), "1433188255.500");
        assert_eq!(epoch_seconds_text(1_433_188_255_005), "1433188255.005");
        assert_eq!(
            rfc3339_millis(1_767_225_600_250),
            "2026-01-01T00:00:00.250Z"
        );
    }
}
