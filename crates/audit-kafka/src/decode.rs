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

use audit_core::integrity::{IntegrityKey, TagMismatch};
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

/// The event a message carries.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// Written by the platform: the payload is its canonical JSON, of which the head was read.
    Tagged {
        head: EventHead<'a>,
        occurred_at_ms: i64,
        payload: &'a [u8],
    },
    /// Validated here, its server-owned fields stamped: `json` is what is stored.
    Validated(ValidEvent),
}

impl Decoded<'_> {
    pub fn org_id(&self) -> &str {
        match self {
            Decoded::Tagged { head, .. } => &head.org_id,
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
    KeyMismatch { key: String, org_id: String },
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
        let payload = message.payload.ok_or(DecodeError::Empty)?;
        let signer = message
            .integrity_tag
            .and_then(|tag| self.integrity.verify(payload, tag));
        let decoded = match signer {
            Some(signer) => {
                let (head, occurred_at_ms) = EventHead::read(payload)?;
                audit_core::integrity::check_tagged(
                    signer,
                    head.provenance.as_deref(),
                    &head.category,
                    self.validator.catalogue(),
                )?;
                Decoded::Tagged {
                    head,
                    occurred_at_ms,
                    payload,
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
            });
        }
        Ok(decoded)
    }
}
