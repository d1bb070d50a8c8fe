//! What every writer and reader of the events topic shares: the headers a service puts on the
//! events it writes, and how a consumer reads a message's broker timestamp.
//!
//! The events topic is created with `message.timestamp.type=LogAppendTime` (see [`crate::topics`]),
//! so a message's timestamp is the broker's clock when it appended it: the arrival time of an
//! event produced straight to Kafka. If the topic was created some other way with
//! `CreateTime`, the timestamp is whatever the producer chose: it is then not trusted as the
//! arrival time (the consumer's clock is used instead, see [`BrokerTime::received_at`]),
//! counted in `events_untrusted_timestamps_total{role}` and logged (at most once a minute).

use std::sync::atomic::{AtomicI64, Ordering};

use audit_core::validate::BrokerTime;
use rdkafka::Timestamp;
use rdkafka::message::{Header, OwnedHeaders};
use time::OffsetDateTime;

/// The headers of an event a service writes to the events topic: `content-type`,
/// `schema-version`, `producer` (informative only) and, when given, the integrity tag.
pub fn event_headers(producer: &str, integrity_tag: Option<&str>) -> OwnedHeaders {
    let headers = OwnedHeaders::new_with_capacity(4)
        .insert(Header {
            key: "content-type",
            value: Some("application/json"),
        })
        .insert(Header {
            key: "schema-version",
            value: Some("1"),
        })
        .insert(Header {
            key: "producer",
            value: Some(producer),
        });
    match integrity_tag {
        Some(tag) => headers.insert(Header {
            key: audit_core::integrity::HEADER,
            value: Some(tag),
        }),
        None => headers,
    }
}

/// A consumed message's timestamp as the pipeline trusts it. A `CreateTime` (misconfigured
/// topic) is counted and logged; times outside the representable range count as missing.
pub fn broker_time(timestamp: Timestamp, role: &'static str) -> BrokerTime {
    let in_range =
        |ms: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).is_ok();
    match timestamp {
        Timestamp::LogAppendTime(ms) if in_range(ms) => BrokerTime::LogAppend(ms),
        Timestamp::CreateTime(ms) if in_range(ms) => {
            untrusted_timestamp(role);
            BrokerTime::Create(ms)
        }
        _ => BrokerTime::Missing,
    }
}

static LAST_WARNED_MS: AtomicI64 = AtomicI64::new(i64::MIN);

fn untrusted_timestamp(role: &'static str) {
    metrics::counter!("events_untrusted_timestamps_total", "role" => role).increment(1);
    let now = audit_core::event::unix_millis(OffsetDateTime::now_utc());
    let last = LAST_WARNED_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 60_000
        && LAST_WARNED_MS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::error!(
            role,
            "a message on the events topic has a CreateTime timestamp (chosen by its producer): \
             the topic must have message.timestamp.type=LogAppendTime; using this consumer's \
             clock as the events' received_at"
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rdkafka::message::Headers;

    #[test]
    fn only_log_append_time_is_the_broker_clock() {
        assert_eq!(
            broker_time(Timestamp::LogAppendTime(1_764_140_000_000), "test"),
            BrokerTime::LogAppend(1_764_140_000_000)
        );
        assert_eq!(
            broker_time(Timestamp::CreateTime(946_684_800_000), "test"),
            BrokerTime::Create(946_684_800_000)
        );
        assert_eq!(
            broker_time(Timestamp::NotAvailable, "test"),
            BrokerTime::Missing
        );
        assert_eq!(
            broker_time(Timestamp::LogAppendTime(i64::MAX), "test"),
            BrokerTime::Missing
        );
    }

    #[test]
    fn event_headers_carry_the_tag_when_given() {
        let headers = event_headers("audit-log", Some("v2=system.abc"));
        let found: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                (
                    h.key.to_string(),
                    String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                )
            })
            .collect();
        assert!(found.contains(&("producer".into(), "audit-log".into())));
        assert!(found.contains(&(audit_core::integrity::HEADER.into(), "v2=system.abc".into())));
        assert_eq!(event_headers("svc", None).count(), 3);
    }
}
