//! One message of the events topic → the event it carries, or why it carries none. Every
//! consumer of the topic (the indexer, the forwarder) applies these same rules:
//!
//! * A message the platform wrote carries a verified integrity tag (`audit_core::integrity`)
//!   and canonical JSON: only its head is read ([`EventHead`]), once the head is seen to say
//!   what the tag proves (provenance, internal category — `check_tagged`).
//! * Every other message (produced straight to Kafka, or with a missing or forged tag) goes
//!   through the shared validator exactly as HTTP ingest does, which stamps the server-owned
//!   fields: `received_at` is the broker's append time ([`crate::broker_time`]), `provenance`
//!   is `kafka`, an event without an id gets its fallback id, internal categories are refused.
//! * On both paths the key must be the organization (per-organization ordering).
//!
//! What a consumer does with a refusal is its own: the indexer dead-letters the message with
//! the [`DecodeError`] as its reason, the forwarder skips it (the indexer dead-letters it).

use std::borrow::Cow;

use audit_core::integrity::{IntegrityKey, Leaf, TagMismatch, Verified};
use audit_core::validate::{Arrival, BrokerTime, ValidEvent};
use audit_core::{EventValidator, FieldError};
use rdkafka::message::{BorrowedMessage, Message};

/// What the decoder needs of a message: its parts, read once.
#[derive(Debug, Clone, Copy)]
pub struct MessageParts<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    /// The broker timestamp, as the pipeline trusts it ([`crate::broker_time`]).
    pub time: BrokerTime,
    /// The message's `audit-integrity` header, if any.
    pub integrity_tag: Option<&'a [u8]>,
}

impl<'a> MessageParts<'a> {
    /// The parts of a consumed message of `topic`; `role` names the consumer in the metric of
    /// untrusted timestamps.
    pub fn of(message: &'a BorrowedMessage<'a>, topic: &'a str, role: &'static str) -> Self {
        Self {
            topic,
            partition: message.partition(),
            offset: message.offset(),
            key: message.key(),
            payload: message.payload(),
            time: crate::broker_time(message.timestamp(), role),
            integrity_tag: crate::header_str(message.headers(), audit_core::integrity::HEADER)
                .map(str::as_bytes),
        }
    }
}

/// The head of a canonical event: what consumers read of an event the platform wrote (the
/// rest of it is never parsed). Borrowed from the message.
#[derive(Debug, serde::Deserialize)]
pub struct EventHead<'a> {
    #[serde(borrow)]
    pub id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub org_id: Cow<'a, str>,
    #[serde(borrow)]
    pub occurred_at: Cow<'a, str>,
    #[serde(borrow, default)]
    pub received_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub category: Cow<'a, str>,
    #[serde(borrow)]
    pub action: Cow<'a, str>,
    #[serde(borrow)]
    pub outcome: Cow<'a, str>,
    #[serde(borrow, default)]
    pub source: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub provenance: Option<Cow<'a, str>>,
}

impl<'a> EventHead<'a> {
    /// The head of canonical JSON (an event the platform wrote, or one parked after it was
    /// decoded), with its `occurred_at` in unix milliseconds.
    pub fn read(payload: &'a [u8]) -> Result<(Self, i64), DecodeError> {
        let head: EventHead<'a> =
            serde_json::from_slice(payload).map_err(DecodeError::NotCanonical)?;
        let occurred_at_ms = audit_core::event::rfc3339_unix_millis(&head.occurred_at)
            .ok_or(DecodeError::OccurredAt)?;
        Ok((head, occurred_at_ms))
    }
}

/// What a consumer reads of a tagged message: its [`EventHead`], or more when it needs more
/// (the forwarder reads the whole event when it maps it to OCSF, so that the event is parsed
/// once). Whatever is read, the decoder checks the same fields against the tag.
pub trait TaggedRead<'a>: Sized {
    /// Reads canonical JSON, with its `occurred_at` in unix milliseconds.
    fn read(payload: &'a [u8]) -> Result<(Self, i64), DecodeError>;
    fn org_id(&self) -> &str;
    fn category(&self) -> &str;
    fn provenance(&self) -> Option<&str>;
}

impl<'a> TaggedRead<'a> for EventHead<'a> {
    fn read(payload: &'a [u8]) -> Result<(Self, i64), DecodeError> {
        EventHead::read(payload)
    }

    fn org_id(&self) -> &str {
        &self.org_id
    }

    fn category(&self) -> &str {
        &self.category
    }

    fn provenance(&self) -> Option<&str> {
        self.provenance.as_deref()
    }
}

/// Which of the two ways a message was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Written by the platform (a verified tag): read for its head.
    Tagged,
    /// Validated here.
    Validated,
}

impl Path {
    /// The label of the consumers' `…_messages_total{path}` metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Path::Tagged => "tagged",
            Path::Validated => "validated",
        }
    }
}

/// The event a message carries (a tagged one read as `H`, by default its head).
#[derive(Debug)]
// Returned once per message and taken apart at once: not worth a box per validated event.
#[allow(clippy::large_enum_variant)]
pub enum Decoded<'a, H = EventHead<'a>> {
    /// Written by the platform: the payload is its canonical JSON, of which the head was read.
    Tagged {
        head: H,
        occurred_at_ms: i64,
        payload: &'a [u8],
        /// The payload's leaf, computed by the tag's check.
        leaf: Leaf,
    },
    /// Validated here, its server-owned fields stamped: `json` is what is stored.
    Validated(ValidEvent),
}

impl<'a, H: TaggedRead<'a>> Decoded<'a, H> {
    pub fn path(&self) -> Path {
        match self {
            Decoded::Tagged { .. } => Path::Tagged,
            Decoded::Validated(_) => Path::Validated,
        }
    }

    pub fn org_id(&self) -> &str {
        match self {
            Decoded::Tagged { head, .. } => head.org_id(),
            Decoded::Validated(valid) => &valid.event.org_id,
        }
    }
}

/// Why a message carries no event: the dead letter's reason.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message (no value)")]
    Empty,
    #[error("tagged message is not a canonical event: {0}")]
    NotCanonical(serde_json::Error),
    #[error(transparent)]
    TagMismatch(#[from] TagMismatch),
    #[error("tagged message has an invalid occurred_at (not RFC 3339)")]
    OccurredAt,
    /// The validator's errors, as one line.
    #[error("{}", audit_core::validate::describe(.0))]
    Invalid(Vec<FieldError>),
    /// `key` is the message key (its first 128 bytes, lossily decoded).
    #[error(
        "message key `{key}` differs from org_id `{org_id}`: the key must be the organization (per-organization ordering)"
    )]
    KeyMismatch {
        key: String,
        org_id: String,
        /// The way the message was read before its key was compared.
        path: Path,
    },
}

impl DecodeError {
    /// The way the message was being read when it was refused (`None`: it had no value).
    pub fn path(&self) -> Option<Path> {
        match self {
            DecodeError::Empty => None,
            DecodeError::NotCanonical(_)
            | DecodeError::TagMismatch(_)
            | DecodeError::OccurredAt => Some(Path::Tagged),
            DecodeError::Invalid(_) => Some(Path::Validated),
            DecodeError::KeyMismatch { path, .. } => Some(*path),
        }
    }
}

/// Decodes messages of the events topic (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct EventDecoder<'a> {
    pub validator: &'a EventValidator,
    /// Verifies the platform's tags (tagged messages skip validation).
    pub integrity: &'a IntegrityKey,
}

impl EventDecoder<'_> {
    /// The event in `message`, or why it has none.
    pub fn decode<'m>(&self, message: MessageParts<'m>) -> Result<Decoded<'m>, DecodeError> {
        self.decode_as(message)
    }

    /// [`EventDecoder::decode`], a tagged message read as `H`.
    pub fn decode_as<'m, H: TaggedRead<'m>>(
        &self,
        message: MessageParts<'m>,
    ) -> Result<Decoded<'m, H>, DecodeError> {
        let payload = message.payload.ok_or(DecodeError::Empty)?;
        let verified = message
            .integrity_tag
            .and_then(|tag| self.integrity.verify(payload, tag));
        let decoded = match verified {
            Some(Verified { signer, leaf }) => {
                let (head, occurred_at_ms) = H::read(payload)?;
                audit_core::integrity::check_tagged(
                    signer,
                    head.provenance(),
                    head.category(),
                    self.validator.catalogue(),
                )?;
                Decoded::Tagged {
                    head,
                    occurred_at_ms,
                    payload,
                    leaf,
                }
            }
            None => {
                let arrival = Arrival::kafka_message(
                    message.topic,
                    message.partition,
                    message.offset,
                    message.time,
                );
                let valid = self
                    .validator
                    .validate_bytes(payload, arrival)
                    .map_err(DecodeError::Invalid)?;
                Decoded::Validated(valid)
            }
        };
        if let Some(key) = message.key
            && key != decoded.org_id().as_bytes()
        {
            return Err(DecodeError::KeyMismatch {
                key: String::from_utf8_lossy(&key[..key.len().min(128)]).into_owned(),
                org_id: decoded.org_id().to_string(),
                path: decoded.path(),
            });
        }
        Ok(decoded)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use audit_core::integrity::Signer;

    use super::*;

    const KEY: &str = "test-integrity-key-0123456789abcdef";
    const EVENT: &str = r#"{"id":"0190d7a0-6c1e-7b3a-9f00-000000000001","org_id":"org_a","occurred_at":"2026-01-01T00:00:00.250Z","received_at":"2026-01-01T00:00:01.000Z","category":"authentication","action":"user.login.failed","outcome":"failure","actor":{"type":"user","id":"u_1"},"targets":[],"context":{},"metadata":{},"source":"identity-api","version":1,"provenance":"gateway"}"#;

    fn message<'a>(key: &'a [u8], payload: &'a [u8], tag: Option<&'a [u8]>) -> MessageParts<'a> {
        MessageParts {
            topic: "audit.events.v1",
            partition: 2,
            offset: 40,
            key: Some(key),
            payload: Some(payload),
            time: BrokerTime::LogAppend(1_764_140_000_000),
            integrity_tag: tag,
        }
    }

    #[test]
    fn one_set_of_rules_for_every_consumer() {
        let validator = EventValidator::new(
            Arc::new(audit_core::Catalogue::builtin()),
            audit_core::Limits::default(),
        )
        .unwrap();
        let integrity = IntegrityKey::new(KEY).unwrap();
        let decoder = EventDecoder {
            validator: &validator,
            integrity: &integrity,
        };
        let tag = integrity.tag(Signer::Gateway, EVENT.as_bytes());

        // Tagged by the platform: read for its head only, the payload kept byte for byte.
        let decoded = decoder
            .decode(message(b"org_a", EVENT.as_bytes(), Some(tag.as_bytes())))
            .unwrap();
        let Decoded::Tagged {
            head,
            occurred_at_ms,
            payload,
            leaf,
        } = decoded
        else {
            panic!("tagged");
        };
        assert_eq!(head.action, "user.login.failed");
        assert_eq!(occurred_at_ms, 1_767_225_600_250);
        assert_eq!(payload, EVENT.as_bytes());
        // SHA-256(0x00 || EVENT), computed apart (Python's hashlib): the leaf the indexer
        // seals the row under comes with the tag's check.
        let hex: String = leaf.iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(
            hex,
            "9c75069c9227188556a0f19cda24c31c3f5c93f8ed290c97537a3085f6267fca"
        );

        // A forged tag is no tag: validated, and the claimed provenance replaced.
        let decoded = decoder
            .decode(message(b"org_a", EVENT.as_bytes(), Some(b"v1=forged")))
            .unwrap();
        let Decoded::Validated(valid) = decoded else {
            panic!("validated");
        };
        let json: serde_json::Value = serde_json::from_slice(&valid.json).unwrap();
        assert_eq!(json["provenance"], "kafka");

        // The key must be the organization, on both paths.
        for tag in [Some(tag.as_bytes()), None] {
            let error = decoder
                .decode(message(b"org_b", EVENT.as_bytes(), tag))
                .unwrap_err();
            assert!(matches!(error, DecodeError::KeyMismatch { .. }), "{error}");
        }
        let mut empty = message(b"org_a", b"", None);
        empty.payload = None;
        assert!(matches!(
            decoder.decode(empty).unwrap_err(),
            DecodeError::Empty
        ));
        let refused = decoder
            .decode(message(b"org_a", b"{}", Some(tag.as_bytes())))
            .unwrap_err();
        assert_eq!(
            refused.path(),
            Some(Path::Validated),
            "the tag is not this payload's"
        );
        assert!(matches!(
            decoder
                .decode(message(b"org_a", b"{not json", Some(tag.as_bytes())))
                .unwrap_err(),
            DecodeError::Invalid(_)
        ));
    }
}
