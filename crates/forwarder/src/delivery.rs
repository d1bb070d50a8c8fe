//! One event on its way to one destination, and how it is described when parked on the
//! retry topic.
//!
//! A parked message is the event's JSON, keyed `org_id/destination_id` (all of a destination's
//! parked events share a retry partition, in order), with headers:
//!
//! | header | meaning |
//! |---|---|
//! | `fwd-org`, `fwd-destination` | where it goes |
//! | `fwd-attempt` | failed attempts so far |
//! | `fwd-next-attempt-ms` | when to try again (unix ms) |
//! | `fwd-reason` | `failing`, `paused`, `backlog` or `replay` |
//! | `fwd-last-status`, `fwd-last-excerpt` | the last failure (HTTP status or `timeout`…, body excerpt) |
//! | `fwd-received-ms` | when the platform received the event (for `max_event_age`) |
//! | `fwd-first-failed-ms` | when delivery first failed |
//! | `fwd-source` | `topic/partition/offset` of the event on the events topic |

use std::sync::Arc;

use rdkafka::message::{Header, Headers, OwnedHeaders};

use crate::event::{DecodeError, ForwardEvent};
use audit_kafka::offsets::Ack;

/// One event for one destination.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: Arc<ForwardEvent>,
    /// Acknowledges the message it came from (events or retry topic).
    pub ack: Option<Ack>,
    /// Failed attempts so far.
    pub attempt: u32,
    /// When delivery first failed (unix ms).
    pub first_failed_ms: Option<i64>,
    /// `topic/partition/offset` of the event on the events topic.
    pub source: Arc<str>,
}

impl Delivery {
    /// Whether the message it came from is still ours to acknowledge.
    pub fn is_current(&self) -> bool {
        self.ack.as_ref().is_none_or(Ack::is_current)
    }

    pub fn source_parts(&self) -> Option<(String, i32, i64)> {
        let mut parts = self.source.rsplitn(3, '/');
        let offset = parts.next()?.parse().ok()?;
        let partition = parts.next()?.parse().ok()?;
        let topic = parts.next()?.to_string();
        Some((topic, partition, offset))
    }
}

/// Why an event is parked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkReason {
    /// The destination keeps failing.
    Failing,
    /// The destination is paused (misconfigured, or failing for too long).
    Paused,
    /// The destination could not keep up and its queue stayed full.
    Backlog,
    /// Re-sent from the dead-letter topic by `forwarder replay`.
    Replay,
}

impl ParkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ParkReason::Failing => "failing",
            ParkReason::Paused => "paused",
            ParkReason::Backlog => "backlog",
            ParkReason::Replay => "replay",
        }
    }

    pub fn parse(text: &str) -> Self {
        match text {
            "paused" => ParkReason::Paused,
            "backlog" => ParkReason::Backlog,
            "replay" => ParkReason::Replay,
            _ => ParkReason::Failing,
        }
    }
}

pub const H_ORG: &str = "fwd-org";
pub const H_DESTINATION: &str = "fwd-destination";
pub const H_ATTEMPT: &str = "fwd-attempt";
pub const H_NEXT_ATTEMPT_MS: &str = "fwd-next-attempt-ms";
pub const H_REASON: &str = "fwd-reason";
pub const H_LAST_STATUS: &str = "fwd-last-status";
pub const H_LAST_EXCERPT: &str = "fwd-last-excerpt";
pub const H_RECEIVED_MS: &str = "fwd-received-ms";
pub const H_FIRST_FAILED_MS: &str = "fwd-first-failed-ms";
pub const H_SOURCE: &str = "fwd-source";

/// The description of a parked event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParkedMeta {
    pub org_id: String,
    pub destination_id: String,
    pub attempt: u32,
    pub next_attempt_ms: i64,
    pub reason: ParkReason,
    pub last_status: Option<String>,
    pub last_excerpt: Option<String>,
    pub received_ms: i64,
    pub first_failed_ms: Option<i64>,
    pub source: String,
}

impl ParkedMeta {
    /// The retry topic key: all of a destination's parked events in one partition, in order.
    pub fn key(&self) -> String {
        format!("{}/{}", self.org_id, self.destination_id)
    }

    pub fn headers(&self) -> OwnedHeaders {
        let attempt = self.attempt.to_string();
        let next = self.next_attempt_ms.to_string();
        let received = self.received_ms.to_string();
        let mut headers = OwnedHeaders::new_with_capacity(10)
            .insert(header(H_ORG, &self.org_id))
            .insert(header(H_DESTINATION, &self.destination_id))
            .insert(header(H_ATTEMPT, &attempt))
            .insert(header(H_NEXT_ATTEMPT_MS, &next))
            .insert(header(H_REASON, self.reason.as_str()))
            .insert(header(H_RECEIVED_MS, &received))
            .insert(header(H_SOURCE, &self.source));
        if let Some(status) = &self.last_status {
            headers = headers.insert(header(H_LAST_STATUS, status));
        }
        if let Some(excerpt) = &self.last_excerpt {
            headers = headers.insert(header(H_LAST_EXCERPT, excerpt));
        }
        if let Some(first) = self.first_failed_ms {
            let first = first.to_string();
            headers = headers.insert(header(H_FIRST_FAILED_MS, &first));
        }
        headers
    }

    pub fn from_headers<H: Headers>(headers: Option<&H>) -> Result<Self, DecodeError> {
        let text = |key: &str| audit_kafka::header_str(headers, key).map(str::to_string);
        let required = |key: &'static str| text(key).ok_or(DecodeError::MissingHeader(key));
        let number = |key: &'static str| -> Result<i64, DecodeError> {
            required(key)?
                .parse::<i64>()
                .map_err(|_| DecodeError::HeaderNotANumber(key))
        };
        Ok(Self {
            org_id: required(H_ORG)?,
            destination_id: required(H_DESTINATION)?,
            attempt: u32::try_from(number(H_ATTEMPT)?).unwrap_or(0),
            next_attempt_ms: number(H_NEXT_ATTEMPT_MS)?,
            reason: ParkReason::parse(&required(H_REASON)?),
            last_status: text(H_LAST_STATUS),
            last_excerpt: text(H_LAST_EXCERPT),
            received_ms: number(H_RECEIVED_MS)?,
            first_failed_ms: text(H_FIRST_FAILED_MS).and_then(|t| t.parse().ok()),
            source: text(H_SOURCE).unwrap_or_default(),
        })
    }
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header {
        key,
        value: Some(value),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn parked_meta_round_trips_through_headers() {
        let meta = ParkedMeta {
            org_id: "org_a".into(),
            destination_id: "dst_1".into(),
            attempt: 4,
            next_attempt_ms: 1_767_225_600_250,
            reason: ParkReason::Failing,
            last_status: Some("503".into()),
            last_excerpt: Some("{\"text\":\"Server is busy\",\"code\":9}".into()),
            received_ms: 1_767_225_000_000,
            first_failed_ms: Some(1_767_225_500_000),
            source: "audit.events.v1/3/42".into(),
        };
        let headers = meta.headers();
        assert_eq!(ParkedMeta::from_headers(Some(&headers)).unwrap(), meta);
        assert_eq!(meta.key(), "org_a/dst_1");
        let bare = OwnedHeaders::new().insert(header(H_ORG, "org_a"));
        assert!(ParkedMeta::from_headers(Some(&bare)).is_err());
    }

    #[test]
    fn sources_split_into_topic_partition_offset() {
        let delivery = Delivery {
            event: Arc::new(crate::event::synthetic_event(
                "org_a",
                "audit_log.destination.tested",
                serde_json::json!({}),
            )),
            ack: None,
            attempt: 0,
            first_failed_ms: None,
            source: Arc::from("t1.audit/events.v1/3/42"),
        };
        assert_eq!(
            delivery.source_parts(),
            Some(("t1.audit/events.v1".into(), 3, 42))
        );
        assert!(delivery.is_current());
    }
}
