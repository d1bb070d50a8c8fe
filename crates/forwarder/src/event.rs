//! Events as the forwarder handles them: the few fields routing and the wire formats need,
//! plus the event's canonical JSON, forwarded byte for byte.
//!
//! A message of the events topic is decoded by the rules every consumer shares
//! (`audit_kafka::decode`): a message the platform wrote (verified integrity tag) is read for
//! its head only — or whole, when the event will be mapped to OCSF ([`Reading::Whole`]: one
//! parse for routing and mapping); every other one runs through the same validator as the
//! indexer, with the same fallback id and `received_at` (the broker's append time), so an
//! event without an id gets the id it has in query results, and a message the indexer
//! dead-letters as invalid (an internal category among them) is not forwarded either.

use std::sync::{Arc, OnceLock};

use audit_core::event::unix_millis;
use audit_core::integrity::IntegrityKey;
use audit_core::ocsf::EventView;
use audit_core::{AuditEvent, Catalogue, EventValidator};
use audit_kafka::Decoded::{Tagged, Validated};
use audit_kafka::{EventDecoder, EventHead, MessageParts, TaggedRead};
use bytes::Bytes;
use time::OffsetDateTime;

pub use audit_sinks::event::{
    ForwardEvent, epoch_seconds_text, ocsf_json, rfc3339_millis, synthetic_event,
};

/// Decodes messages of the events topic.
#[derive(Debug, Clone)]
pub struct Decoder {
    validator: Arc<EventValidator>,
    /// Verifies the platform's tags (tagged messages skip validation).
    integrity: IntegrityKey,
}

/// Why a message is not forwarded, or a parked one cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// What every consumer of the events topic refuses (`audit_kafka::decode`).
    #[error(transparent)]
    Message(#[from] audit_kafka::DecodeError),
    #[error("empty parked message")]
    EmptyParked,
    #[error("event has no id")]
    NoId,
    #[error("header `{0}` is missing")]
    MissingHeader(&'static str),
    #[error("header `{0}` is not a number")]
    HeaderNotANumber(&'static str),
}

/// How much of a tagged event to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// Its head: what routing and the native format need.
    Head,
    /// All of it, when one of its destinations takes OCSF: the one parse serves routing and
    /// the mapping (reading the head here and the whole event again in a lane was two).
    Whole,
}

/// A decoded event, and what its OCSF object is mapped from.
#[derive(Debug)]
pub struct Decoded<'m> {
    pub event: ForwardEvent,
    whole: Whole<'m>,
}

#[derive(Debug)]
// One per message being routed, on the consumer's stack: no box for the view.
#[allow(clippy::large_enum_variant)]
enum Whole<'m> {
    /// Read for its head: mapped from its JSON, as a lane does.
    NotRead,
    View(EventView<'m>),
    Validated(Box<AuditEvent>),
}

impl Decoded<'_> {
    /// Maps the event's OCSF object from what was read and keeps it with the event
    /// ([`ForwardEvent::ocsf`]), so no lane parses it again.
    pub fn map_ocsf(&mut self, catalogue: &Catalogue) {
        let object = match &self.whole {
            Whole::NotRead => return,
            Whole::View(view) => audit_sinks::event::ocsf_of_view(view, &self.event, catalogue),
            Whole::Validated(event) => {
                audit_sinks::event::ocsf_of_view(&EventView::from(&**event), &self.event, catalogue)
            }
        };
        // Set only here, before the event is shared.
        let _ = self.event.ocsf.set(object);
    }
}

/// A tagged event read whole; when it does not read as contract v1 (a newer producer's), its
/// head, as [`Reading::Head`] would (a lane then maps what the head has).
enum WholeOrHead<'a> {
    Whole(EventView<'a>),
    Head(EventHead<'a>),
}

impl<'a> TaggedRead<'a> for WholeOrHead<'a> {
    fn read(payload: &'a [u8]) -> Result<(Self, i64), audit_kafka::DecodeError> {
        // The whole event's UTF-8 checked at once is cheaper than string by string.
        let view = std::str::from_utf8(payload)
            .ok()
            .and_then(|text| serde_json::from_str::<EventView<'a>>(text).ok());
        match view {
            Some(view) => {
                let occurred_at_ms = view.occurred_at_ms;
                Ok((WholeOrHead::Whole(view), occurred_at_ms))
            }
            None => EventHead::read(payload).map(|(head, at)| (WholeOrHead::Head(head), at)),
        }
    }

    fn org_id(&self) -> &str {
        match self {
            WholeOrHead::Whole(view) => &view.org_id,
            WholeOrHead::Head(head) => &head.org_id,
        }
    }

    fn category(&self) -> &str {
        match self {
            WholeOrHead::Whole(view) => &view.category,
            WholeOrHead::Head(head) => &head.category,
        }
    }

    fn provenance(&self) -> Option<&str> {
        match self {
            WholeOrHead::Whole(view) => view.provenance.map(|provenance| provenance.as_str()),
            WholeOrHead::Head(head) => head.provenance.as_deref(),
        }
    }
}

impl Decoder {
    pub fn new(validator: Arc<EventValidator>, integrity: IntegrityKey) -> Self {
        Self {
            validator,
            integrity,
        }
    }

    /// The catalogue events are validated and mapped with.
    pub fn catalogue(&self) -> &Catalogue {
        self.validator.catalogue()
    }

    /// The event in a message of the events topic, or why it is not forwarded.
    pub fn decode(&self, parts: MessageParts<'_>) -> Result<ForwardEvent, DecodeError> {
        self.decode_reading(parts, Reading::Head)
            .map(|decoded| decoded.event)
    }

    /// [`Decoder::decode`], a tagged event read as `reading` says.
    pub fn decode_reading<'m>(
        &self,
        parts: MessageParts<'m>,
        reading: Reading,
    ) -> Result<Decoded<'m>, DecodeError> {
        let time = parts.time;
        let decoder = EventDecoder {
            validator: &self.validator,
            integrity: &self.integrity,
        };
        let received_now = || unix_millis(time.received_at(OffsetDateTime::now_utc()));
        let decoded = match reading {
            Reading::Head => match decoder.decode(parts)? {
                Tagged {
                    head,
                    occurred_at_ms,
                    payload,
                    leaf,
                } => Tagged {
                    head: WholeOrHead::Head(head),
                    occurred_at_ms,
                    payload,
                    leaf,
                },
                Validated(valid) => Validated(valid),
            },
            Reading::Whole => decoder.decode_as::<WholeOrHead<'m>>(parts)?,
        };
        match decoded {
            Tagged {
                head: WholeOrHead::Whole(view),
                payload,
                ..
            } => Ok(Decoded {
                event: from_view(&view, payload, received_now())?,
                whole: Whole::View(view),
            }),
            Tagged {
                head: WholeOrHead::Head(head),
                occurred_at_ms,
                payload,
                ..
            } => from_head(head, occurred_at_ms, payload, received_now()).map(not_read),
            Validated(valid) => {
                let received_at = valid
                    .event
                    .received_at
                    .unwrap_or_else(|| time.received_at(OffsetDateTime::now_utc()));
                let json = Bytes::from(valid.json);
                Ok(match reading {
                    Reading::Head => not_read(from_valid(valid.event, json, received_at)),
                    Reading::Whole => Decoded {
                        event: from_valid(valid.event.clone(), json, received_at),
                        whole: Whole::Validated(Box::new(valid.event)),
                    },
                })
            }
        }
    }
}

/// The event of a message validated here.
fn from_valid(event: AuditEvent, json: Bytes, received_at: OffsetDateTime) -> ForwardEvent {
    ForwardEvent {
        id: event.id.to_string(),
        received_at_ms: unix_millis(received_at),
        occurred_at_ms: event.occurred_at_millis(),
        org_id: event.org_id,
        category: event.category,
        action: event.action,
        outcome: event.outcome.as_str().to_string(),
        source: event.source,
        json,
        ocsf: OnceLock::new(),
    }
}

fn not_read(event: ForwardEvent) -> Decoded<'static> {
    Decoded {
        event,
        whole: Whole::NotRead,
    }
}

/// Decodes an already validated event (parked on the retry topic, or re-read by a replay).
pub fn decode_head(payload: &[u8], fallback_received_ms: i64) -> Result<ForwardEvent, DecodeError> {
    let (head, occurred_at_ms) = EventHead::read(payload)?;
    from_head(head, occurred_at_ms, payload, fallback_received_ms)
}

/// The event of canonical JSON from its head; its `received_at`, else `fallback_received_ms`.
fn from_head(
    head: EventHead<'_>,
    occurred_at_ms: i64,
    payload: &[u8],
    fallback_received_ms: i64,
) -> Result<ForwardEvent, DecodeError> {
    let id = head.id.ok_or(DecodeError::NoId)?;
    let received_at = head
        .received_at
        .as_deref()
        .and_then(audit_core::event::rfc3339_unix_millis)
        .unwrap_or(fallback_received_ms);
    Ok(ForwardEvent {
        id: id.into_owned(),
        org_id: head.org_id.into_owned(),
        category: head.category.into_owned(),
        action: head.action.into_owned(),
        outcome: head.outcome.into_owned(),
        source: head.source.map(|source| source.into_owned()),
        occurred_at_ms,
        received_at_ms: received_at,
        json: Bytes::copy_from_slice(payload),
        ocsf: OnceLock::new(),
    })
}

/// The event of canonical JSON from all of it read; the same as [`from_head`] of its head.
fn from_view(
    view: &EventView<'_>,
    payload: &[u8],
    fallback_received_ms: i64,
) -> Result<ForwardEvent, DecodeError> {
    Ok(ForwardEvent {
        id: view.id.to_string(),
        org_id: view.org_id.to_string(),
        category: view.category.to_string(),
        action: view.action.to_string(),
        outcome: view.outcome.as_str().to_string(),
        source: view.source.as_deref().map(str::to_owned),
        occurred_at_ms: view.occurred_at_ms,
        received_at_ms: view.received_at_ms.unwrap_or(fallback_received_ms),
        json: Bytes::copy_from_slice(payload),
        ocsf: OnceLock::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use audit_core::validate::BrokerTime;

    use super::*;
    use audit_core::integrity::Signer;

    const KEY: &str = "test-integrity-key-0123456789abcdef";

    fn decoder() -> Decoder {
        let catalogue = Arc::new(audit_core::Catalogue::builtin());
        let validator =
            EventValidator::new(catalogue, audit_core::Limits::default()).expect("validator");
        Decoder::new(Arc::new(validator), IntegrityKey::new(KEY).expect("key"))
    }

    fn info(tag: Option<&[u8]>) -> MessageParts<'_> {
        MessageParts {
            topic: "audit.events.v1",
            partition: 2,
            offset: 40,
            key: None,
            payload: None,
            time: BrokerTime::LogAppend(1_764_140_000_000),
            integrity_tag: tag,
        }
    }

    impl Decoder {
        fn decode_bytes<'a>(
            &self,
            key: Option<&'a [u8]>,
            payload: Option<&'a [u8]>,
            info: MessageParts<'a>,
        ) -> Result<ForwardEvent, DecodeError> {
            self.decode(MessageParts {
                key,
                payload,
                ..info
            })
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
            .decode_bytes(
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
            .decode_bytes(Some(b"org_a"), Some(direct.as_bytes()), info(None))
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
                .decode_bytes(Some(b"org_a"), Some(unknown.as_bytes()), info(None))
                .is_err()
        );
        // A forged tag does not skip validation.
        assert!(
            decoder()
                .decode_bytes(
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
            .decode_bytes(Some(b"org_a"), Some(forged.as_bytes()), info(None))
            .expect_err("internal");
        assert!(
            matches!(
                &error,
                DecodeError::Message(audit_kafka::DecodeError::Invalid(_))
            ) && error.to_string().contains("internal"),
            "{error}"
        );
        let backdated = forged
            .replace("\"audit_log\"", "\"billing\"")
            .replace("audit_log.exported", "billing.invoice.generated");
        let event = decoder
            .decode_bytes(Some(b"org_a"), Some(backdated.as_bytes()), info(None))
            .expect("valid");
        assert_eq!(event.received_at_ms, 1_764_140_000_000, "the broker's time");
        // A gateway tag on an event claiming to be the system's does not pass.
        let claims_system =
            GATEWAY_EVENT.replace("\"provenance\":\"gateway\"", "\"provenance\":\"system\"");
        let tag = tag(&claims_system);
        assert!(
            decoder
                .decode_bytes(
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
            .decode_bytes(
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
            .decode_bytes(Some(b"org_a"), Some(backdated.as_bytes()), create)
            .expect("valid");
        assert!(
            event.received_at_ms > 1_764_140_000_000,
            "the consumer's clock"
        );
    }

    #[test]
    fn bad_messages_say_why() {
        let decoder = decoder();
        assert!(
            decoder
                .decode_bytes(Some(b"org_a"), None, info(None))
                .is_err()
        );
        assert!(
            decoder
                .decode_bytes(Some(b"org_a"), Some(b"{not json"), info(None))
                .is_err()
        );
        let tag = tag(GATEWAY_EVENT);
        let error = decoder
            .decode_bytes(
                Some(b"org_b"),
                Some(GATEWAY_EVENT.as_bytes()),
                info(Some(tag.as_bytes())),
            )
            .expect_err("key mismatch");
        assert!(
            matches!(
                error,
                DecodeError::Message(audit_kafka::DecodeError::KeyMismatch { .. })
            ),
            "{error}"
        );
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

    /// Both readings of `payload`: the same event or the same refusal, and reading it whole
    /// maps the object a lane would have mapped from its JSON.
    fn both_readings(key: &[u8], payload: &str, tag: Option<&[u8]>) -> Option<ForwardEvent> {
        let decoder = decoder();
        let parts = MessageParts {
            key: Some(key),
            payload: Some(payload.as_bytes()),
            ..info(tag)
        };
        let head = decoder.decode_reading(parts, Reading::Head);
        let whole = decoder.decode_reading(parts, Reading::Whole);
        match (head, whole) {
            (Ok(head), Ok(mut whole)) => {
                assert_eq!(head.event, whole.event, "{payload}");
                whole.map_ocsf(decoder.catalogue());
                let lane = ocsf_json(&head.event, decoder.catalogue());
                if let Some(mapped) = whole.event.ocsf.get() {
                    assert_eq!(mapped, &lane, "{payload}");
                }
                Some(whole.event)
            }
            (Err(head), Err(whole)) => {
                assert_eq!(head.to_string(), whole.to_string(), "{payload}");
                None
            }
            (head, whole) => panic!("{payload}: the readings differ: {head:?} / {whole:?}"),
        }
    }

    #[test]
    fn an_event_read_whole_is_the_event_read_for_its_head_and_maps_once() {
        let tagged = |payload: &str| tag(payload);
        // Tagged, in the gateway's canonical form: read whole and mapped in the consumer.
        let event = both_readings(
            b"org_a",
            GATEWAY_EVENT,
            Some(tagged(GATEWAY_EVENT).as_bytes()),
        )
        .expect("decodes");
        assert!(event.ocsf.get().is_some(), "mapped from the one parse");
        // Escapes, a missing received_at and source, a null location.
        let escaped = GATEWAY_EVENT
            .replace("\"u_1\"", "\"u_\\\"1\\u00e9\"")
            .replace(",\"received_at\":\"2026-01-01T00:00:01.000Z\"", "")
            .replace(",\"source\":\"identity-api\"", "")
            .replace("\"context\":{}", "\"context\":{\"location\":null}");
        let event =
            both_readings(b"org_a", &escaped, Some(tagged(&escaped).as_bytes())).expect("decodes");
        assert_eq!(event.received_at_ms, 1_764_140_000_000, "the broker's time");
        assert!(event.ocsf.get().is_some());
        // A field this build does not know: read for its head, mapped by a lane.
        let newer = GATEWAY_EVENT.replace("\"version\":1", "\"version\":1,\"colour\":\"red\"");
        let event =
            both_readings(b"org_a", &newer, Some(tagged(&newer).as_bytes())).expect("decodes");
        assert!(event.ocsf.get().is_none());
        // Validated here: mapped from the validated event.
        let direct = r#"{"org_id":"org_a","occurred_at":"2026-01-01T02:00:00+02:00","category":"billing","action":"billing.invoice.generated","outcome":"success","actor":{"type":"system","id":"billing"},"metadata":{"n":1}}"#;
        let event = both_readings(b"org_a", direct, None).expect("valid");
        assert!(event.ocsf.get().is_some());
        // The same refusals either way: a forged tag on an invalid event, another
        // organization's key, a gateway tag claiming the system's provenance, an outcome only
        // the head would take.
        let unknown = direct.replace("billing.invoice.generated", "billing.teleported");
        assert!(both_readings(b"org_a", &unknown, Some(b"v1=forged")).is_none());
        assert!(
            both_readings(
                b"org_b",
                GATEWAY_EVENT,
                Some(tagged(GATEWAY_EVENT).as_bytes())
            )
            .is_none()
        );
        let claims_system =
            GATEWAY_EVENT.replace("\"provenance\":\"gateway\"", "\"provenance\":\"system\"");
        assert!(
            both_readings(
                b"org_a",
                &claims_system,
                Some(tagged(&claims_system).as_bytes())
            )
            .is_none()
        );
        let odd_outcome = GATEWAY_EVENT.replace("\"failure\"", "\"maybe\"");
        let event = both_readings(
            b"org_a",
            &odd_outcome,
            Some(tagged(&odd_outcome).as_bytes()),
        )
        .expect("the head takes any outcome text");
        assert_eq!(event.outcome, "maybe");
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
