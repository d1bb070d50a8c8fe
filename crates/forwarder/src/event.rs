//! Events as the forwarder handles them: the few fields routing and the wire formats need,
//! plus the event's canonical JSON, forwarded byte for byte.
//!
//! Messages the platform wrote carry its integrity tag (`audit-integrity`, an HMAC of the value
//! under the key shared by the services, see `audit_core::integrity`): they are only decoded
//! for their head, once the head is seen to say what the tag proves (provenance, internal
//! category). Every other message (produced straight to Kafka, or with a missing or forged
//! tag) runs through the same validator as the indexer, with the same fallback id and
//! `received_at` (the broker's append time), so an event without an id gets the id it has in
//! query results, and a message the indexer dead-letters as invalid (an internal category
//! among them) is not forwarded either.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use audit_core::event::{ActorType, Outcome};
use audit_core::integrity::IntegrityKey;
use audit_core::ocsf::{ActorView, EventView};
use audit_core::system::SystemEvent;
use audit_core::validate::{Arrival, BrokerTime};
use audit_core::{Catalogue, EventValidator};
use bytes::Bytes;
use serde::Deserialize;
use time::OffsetDateTime;

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
    /// Its OCSF object, once mapped (see [`ForwardEvent::ocsf`]).
    pub ocsf: OnceLock<Vec<u8>>,
}

impl ForwardEvent {
    /// The event's OCSF object ([`ocsf_json`]), mapped by the first lane that encodes it and
    /// kept with the event: every destination of the organization in the OCSF format sends the
    /// same bytes. (Mapping it in the consumer instead, off the lanes, was measured slower on
    /// 2 cores: the consumer thread became the bottleneck, and each lane was woken per event.)
    pub fn ocsf(&self, catalogue: &Catalogue) -> &[u8] {
        self.ocsf.get_or_init(|| {
            let mut object = ocsf_json(self, catalogue);
            // Kept while the event waits in its lanes: no spare capacity.
            object.shrink_to_fit();
            object
        })
    }
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
    #[serde(borrow, default)]
    provenance: Option<Cow<'a, str>>,
}

/// What the consumer knows about a message besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct MessageInfo<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// The broker timestamp, as the pipeline trusts it.
    pub time: BrokerTime,
    /// The message's `audit-integrity` header, if any.
    pub integrity_tag: Option<&'a [u8]>,
}

/// Decodes messages of the events topic.
#[derive(Debug, Clone)]
pub struct Decoder {
    validator: Arc<EventValidator>,
    /// Verifies the platform's tags (tagged messages skip validation).
    integrity: IntegrityKey,
}

impl Decoder {
    pub fn new(validator: Arc<EventValidator>, integrity: IntegrityKey) -> Self {
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
        let signer = info
            .integrity_tag
            .and_then(|tag| self.integrity.verify(payload, tag));
        let event = match signer {
            Some(signer) => {
                let received_ms = audit_core::event::unix_millis(
                    info.time.received_at(OffsetDateTime::now_utc()),
                );
                let (event, provenance) = decode_tagged_head(payload, received_ms)?;
                audit_core::integrity::check_tagged(
                    signer,
                    provenance.as_deref(),
                    &event.category,
                    self.validator.catalogue(),
                )
                .map_err(|mismatch| mismatch.to_string())?;
                event
            }
            None => self.validate(payload, info)?,
        };
        if let Some(key) = key
            && key != event.org_id.as_bytes()
        {
            return Err("message key differs from org_id".into());
        }
        Ok(event)
    }

    fn validate(&self, payload: &[u8], info: MessageInfo<'_>) -> Result<ForwardEvent, String> {
        let arrival = Arrival::kafka_message(info.topic, info.partition, info.offset, info.time);
        let valid = self
            .validator
            .validate_bytes(payload, arrival)
            .map_err(|errors| audit_core::validate::describe(&errors))?;
        let event = valid.event;
        Ok(ForwardEvent {
            id: event.id.to_string(),
            received_at_ms: audit_core::event::unix_millis(arrival.received_at),
            occurred_at_ms: event.occurred_at_millis(),
            org_id: event.org_id,
            category: event.category,
            action: event.action,
            outcome: event.outcome.as_str().to_string(),
            source: event.source,
            json: Bytes::from(valid.json),
            ocsf: OnceLock::new(),
        })
    }
}

/// Decodes an already validated event (from the gateway, or parked on the retry topic).
pub fn decode_head(payload: &[u8], fallback_received_ms: i64) -> Result<ForwardEvent, String> {
    decode_tagged_head(payload, fallback_received_ms).map(|(event, _)| event)
}

/// Like [`decode_head`], also returning the event's stated provenance.
fn decode_tagged_head(
    payload: &[u8],
    fallback_received_ms: i64,
) -> Result<(ForwardEvent, Option<String>), String> {
    let head: Head<'_> =
        serde_json::from_slice(payload).map_err(|error| format!("not an event: {error}"))?;
    let id = head.id.ok_or("event has no id")?;
    let occurred_at = parse_millis(&head.occurred_at).ok_or("occurred_at is not RFC 3339")?;
    let received_at = head
        .received_at
        .as_deref()
        .and_then(parse_millis)
        .unwrap_or(fallback_received_ms);
    let event = ForwardEvent {
        id: id.into_owned(),
        org_id: head.org_id.into_owned(),
        category: head.category.into_owned(),
        action: head.action.into_owned(),
        outcome: head.outcome.into_owned(),
        source: head.source.map(Cow::into_owned),
        occurred_at_ms: occurred_at,
        received_at_ms: received_at,
        json: Bytes::copy_from_slice(payload),
        ocsf: OnceLock::new(),
    };
    Ok((event, head.provenance.map(Cow::into_owned)))
}

fn parse_millis(text: &str) -> Option<i64> {
    audit_core::event::rfc3339_unix_millis(text)
}

/// The event as an OCSF object (`audit_core::ocsf`), mapped from a borrowing read of its
/// JSON. An event on the topic that does not read as contract v1 (a newer producer's, say) is
/// not held back: its object is made from the head the forwarder read (id, organization,
/// action, outcome, times, source).
pub fn ocsf_json(event: &ForwardEvent, catalogue: &Catalogue) -> Vec<u8> {
    // About twice the event (names of the class, activity and product; OCSF's nesting): the
    // object is written without growing its buffer.
    let mut out = Vec::with_capacity(event.json.len() * 2 + 256);
    // The whole event's UTF-8 checked at once is cheaper than string by string (`from_slice`).
    let view = std::str::from_utf8(&event.json)
        .map_err(|error| error.to_string())
        .and_then(|text| {
            serde_json::from_str::<EventView<'_>>(text).map_err(|error| error.to_string())
        });
    match view {
        Ok(mut view) => {
            view.received_at_ms = view.received_at_ms.or(Some(event.received_at_ms));
            audit_core::ocsf::write_json(&view, catalogue, &mut out);
        }
        Err(error) => {
            tracing::warn!(event_id = %event.id, %error, "event is not contract v1; its OCSF object has the head's fields only");
            audit_core::ocsf::write_json(&head_only(event), catalogue, &mut out);
        }
    }
    out
}

fn head_only(event: &ForwardEvent) -> EventView<'_> {
    EventView {
        id: Cow::Borrowed(&event.id),
        org_id: Cow::Borrowed(&event.org_id),
        occurred_at_ms: event.occurred_at_ms,
        received_at_ms: Some(event.received_at_ms),
        category: Cow::Borrowed(&event.category),
        action: Cow::Borrowed(&event.action),
        outcome: if event.outcome == "failure" {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        actor: ActorView {
            kind: ActorType::System,
            id: Cow::Borrowed(event.source.as_deref().unwrap_or("unknown")),
            name: None,
            email: None,
        },
        targets: Vec::new(),
        context: Default::default(),
        metadata: Default::default(),
        source: event.source.as_deref().map(Cow::Borrowed),
        version: None,
        provenance: None,
    }
}

fn at_millis(unix_ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `1433188255.500`: unix seconds with milliseconds, as Splunk's `time` wants it.
pub fn epoch_seconds_text(unix_ms: i64) -> String {
    let seconds = unix_ms.div_euclid(1000);
    let millis = unix_ms.rem_euclid(1000);
    format!("{seconds}.{millis:03}")
}

/// `2026-11-26T07:04:25.123Z`.
pub fn rfc3339_millis(unix_ms: i64) -> String {
    audit_core::event::format_utc_millis(at_millis(unix_ms))
}

/// A synthetic event of the platform's own (built like every `audit_log.*` event, see
/// `audit_core::system`), for tests and the operator's "send a test event" action: sent to a
/// destination directly, never published to the events topic. Metadata values are kept as
/// text.
pub fn synthetic_event(org_id: &str, action: &str, metadata: serde_json::Value) -> ForwardEvent {
    let mut built = SystemEvent::new(org_id, action, audit_core::system::forwarder_actor());
    if let serde_json::Value::Object(entries) = metadata {
        for (key, value) in entries {
            let text = match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            };
            built = built.meta(&key, text);
        }
    }
    let event = built.build(OffsetDateTime::now_utc());
    let json = event.to_json();
    ForwardEvent {
        id: event.id.to_string(),
        occurred_at_ms: event.occurred_at_millis(),
        received_at_ms: event.occurred_at_millis(),
        org_id: event.org_id,
        category: event.category,
        action: event.action,
        outcome: event.outcome.as_str().to_string(),
        source: event.source,
        json: Bytes::from(json),
        ocsf: OnceLock::new(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use audit_core::integrity::Signer;

    const KEY: &str = "test-integrity-key-0123456789abcdef";

    fn decoder() -> Decoder {
        let catalogue = Arc::new(audit_core::Catalogue::builtin());
        let validator =
            EventValidator::new(catalogue, audit_core::Limits::default()).expect("validator");
        Decoder::new(Arc::new(validator), IntegrityKey::new(KEY).expect("key"))
    }

    fn info(tag: Option<&[u8]>) -> MessageInfo<'_> {
        MessageInfo {
            topic: "audit.events.v1",
            partition: 2,
            offset: 40,
            time: BrokerTime::LogAppend(1_764_140_000_000),
            integrity_tag: tag,
        }
    }

    fn tag(payload: &str) -> String {
        tag_as(Signer::Gateway, payload)
    }

    fn tag_as(signer: Signer, payload: &str) -> String {
        IntegrityKey::new(KEY)
            .expect("key")
            .tag(signer, payload.as_bytes())
    }

    const GATEWAY_EVENT: &str = r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_a","occurred_at":"2026-01-01T00:00:00.250Z","received_at":"2026-01-01T00:00:01.000Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_1"},"targets":[],"context":{},"metadata":{"k":"v"},"source":"identity-api","version":1,"provenance":"gateway"}"#;

    /// [`GATEWAY_EVENT`] as the gateway tags it, decoded.
    fn gateway_event() -> ForwardEvent {
        let tag = tag(GATEWAY_EVENT);
        decoder()
            .decode(
                Some(b"org_a"),
                Some(GATEWAY_EVENT.as_bytes()),
                info(Some(tag.as_bytes())),
            )
            .expect("decodes")
    }

    #[test]
    fn gateway_messages_are_decoded_for_their_head_only() {
        let event = gateway_event();
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
    fn forged_internal_events_and_arrival_times_are_refused_or_replaced() {
        let decoder = decoder();
        // Straight to Kafka: an internal category is refused, a claimed received_at replaced.
        let forged = r#"{"org_id":"org_a","occurred_at":"2026-01-01T00:00:00Z","received_at":"2000-01-01T00:00:00Z","category":"audit_log","action":"audit_log.exported","outcome":"success","actor":{"type":"user","id":"u_1"}}"#;
        let error = decoder
            .decode(Some(b"org_a"), Some(forged.as_bytes()), info(None))
            .expect_err("internal");
        assert!(error.contains("internal"), "{error}");
        let backdated = forged
            .replace("\"audit_log\"", "\"billing\"")
            .replace("audit_log.exported", "billing.invoice.generated");
        let event = decoder
            .decode(Some(b"org_a"), Some(backdated.as_bytes()), info(None))
            .expect("valid");
        assert_eq!(event.received_at_ms, 1_764_140_000_000, "the broker's time");
        // A gateway tag on an event claiming to be the system's does not pass.
        let claims_system =
            GATEWAY_EVENT.replace("\"provenance\":\"gateway\"", "\"provenance\":\"system\"");
        let tag = tag(&claims_system);
        assert!(
            decoder
                .decode(
                    Some(b"org_a"),
                    Some(claims_system.as_bytes()),
                    info(Some(tag.as_bytes()))
                )
                .is_err()
        );
        // The system's own events, tagged as such, pass.
        let system = audit_core::system::SystemEvent::new(
            "org_a",
            "audit_log.destination.paused",
            audit_core::system::forwarder_actor(),
        )
        .build(OffsetDateTime::now_utc());
        let json = String::from_utf8(system.to_json()).expect("utf-8");
        let tag = tag_as(Signer::System, &json);
        let event = decoder
            .decode(
                Some(b"org_a"),
                Some(json.as_bytes()),
                info(Some(tag.as_bytes())),
            )
            .expect("system event");
        assert_eq!(event.category, "audit_log");
        // A CreateTime is not taken as the arrival time.
        let mut create = info(None);
        create.time = BrokerTime::Create(946_684_800_000);
        let event = decoder
            .decode(Some(b"org_a"), Some(backdated.as_bytes()), create)
            .expect("valid");
        assert!(
            event.received_at_ms > 1_764_140_000_000,
            "the consumer's clock"
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
    fn ocsf_objects_come_from_the_whole_event_or_else_its_head() {
        let catalogue = audit_core::Catalogue::builtin();
        let event = gateway_event();
        let object: serde_json::Value =
            serde_json::from_slice(&ocsf_json(&event, &catalogue)).expect("json");
        assert_eq!(object["class_uid"], 3002);
        assert_eq!(object["status_id"], 2);
        assert_eq!(object["metadata"]["uid"], event.id);
        assert_eq!(object["unmapped"]["metadata"]["k"], "v");
        // Mapped once, then kept with the event for every OCSF destination.
        assert!(event.ocsf.get().is_none());
        assert_eq!(event.ocsf(&catalogue), &ocsf_json(&event, &catalogue)[..]);
        assert!(event.ocsf.get().is_some());

        // A field this build does not know: the head still makes a traceable object.
        let newer = GATEWAY_EVENT.replace("\"version\":1", "\"version\":1,\"colour\":\"red\"");
        let mut event = decode_head(newer.as_bytes(), 0).expect("head");
        event.json = Bytes::from(newer);
        let object: serde_json::Value =
            serde_json::from_slice(&ocsf_json(&event, &catalogue)).expect("json");
        assert_eq!(object["metadata"]["uid"], event.id);
        assert_eq!(object["metadata"]["tenant_uid"], "org_a");
        assert_eq!(object["activity_name"], "Logon");
        assert_eq!(object["time"], 1_767_225_600_250_i64);
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
