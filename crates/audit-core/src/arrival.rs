//! What a validator is told about an event's arrival — the source of its server-owned fields
//! (`received_at`, `provenance`, a verified `source`) — and how a consumer reads the broker
//! timestamp of a message produced straight to Kafka.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::event::Provenance;

/// What the caller knows about the event's arrival: the server-owned fields come from here.
#[derive(Debug, Clone, Copy)]
pub struct Arrival<'a> {
    /// The current time, for the clock-skew rule.
    pub now: OffsetDateTime,
    /// Stamped as `received_at` (a producer's value is replaced).
    pub received_at: OffsetDateTime,
    /// Id to give an event that has none.
    pub fallback_id: Uuid,
    /// Stamped as `provenance`.
    pub provenance: Provenance,
    /// The authenticated producer, when there is one: stamped as `source`, replacing any
    /// claimed value. `None` keeps the producer's own (unverified) `source`.
    pub verified_source: Option<&'a str>,
}

/// The timestamp of a message consumed from the events topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerTime {
    /// `LogAppendTime` (the events topic's setting): the broker's clock when it appended the
    /// message, i.e. when the platform received it.
    LogAppend(i64),
    /// `CreateTime`: chosen by the producer (the topic is misconfigured). Not trusted as the
    /// arrival time.
    Create(i64),
    /// No usable timestamp.
    Missing,
}

impl BrokerTime {
    /// The timestamp stored with the message (unix ms; 0 when missing): stable across
    /// re-reads, so ids derived from it are too.
    pub fn stored_ms(self) -> i64 {
        match self {
            BrokerTime::LogAppend(ms) | BrokerTime::Create(ms) => ms,
            BrokerTime::Missing => 0,
        }
    }

    /// Whether the timestamp is the broker's own clock.
    pub fn is_broker_clock(self) -> bool {
        matches!(self, BrokerTime::LogAppend(_))
    }

    /// The arrival time to stamp: the broker's append time; otherwise the consumer's clock
    /// (`now`), never a time the producer chose.
    pub fn received_at(self, now: OffsetDateTime) -> OffsetDateTime {
        match self {
            BrokerTime::LogAppend(ms) => {
                OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(now)
            }
            BrokerTime::Create(_) | BrokerTime::Missing => now,
        }
    }
}

impl Arrival<'static> {
    /// The arrival of a message produced straight to the events topic: received at the
    /// broker's append time, `source` only claimed, and an id derived from its place in the
    /// topic (and its stored timestamp), so the indexer and the forwarder give an event
    /// without an id the same one, on every re-read.
    pub fn kafka_message(topic: &str, partition: i32, offset: i64, time: BrokerTime) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            now,
            received_at: time.received_at(now),
            fallback_id: crate::event::id_for_kafka_message(
                topic,
                partition,
                offset,
                time.stored_ms(),
            ),
            provenance: Provenance::Kafka,
            verified_source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

    #[test]
    fn broker_times_other_than_append_time_are_not_arrival_times() {
        let append = BrokerTime::LogAppend(1_764_140_000_000);
        assert_eq!(
            append.received_at(NOW),
            datetime!(2025-11-26 06:53:20 UTC),
            "the broker's append time"
        );
        assert!(append.is_broker_clock());
        let create = BrokerTime::Create(946_684_800_000);
        assert_eq!(
            create.received_at(NOW),
            NOW,
            "a producer's CreateTime is not trusted"
        );
        assert_eq!(
            create.stored_ms(),
            946_684_800_000,
            "ids stay stable on re-read"
        );
        assert_eq!(BrokerTime::Missing.received_at(NOW), NOW);
        assert_eq!(BrokerTime::Missing.stored_ms(), 0);

        let first = Arrival::kafka_message("t", 1, 9, create);
        let again = Arrival::kafka_message("t", 1, 9, create);
        assert_eq!(first.fallback_id, again.fallback_id);
        assert_eq!(first.provenance, Provenance::Kafka);
        assert!(first.verified_source.is_none());
    }
}
