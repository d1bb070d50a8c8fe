//! The events consumer: Kafka → routed deliveries, with offsets committed only when done.
//!
//! # Protocol
//!
//! One dedicated thread owns the group consumer (group `consumer.group_id`, `forwarder` by
//! default) and calls `poll`; rebalance callbacks therefore run on this thread, between two
//! messages. For each message it decodes the event ([`crate::event`]; read whole and mapped to
//! OCSF here, once, when the organization has a destination in that format), finds the
//! organization's settings, and routes one [`Delivery`] to the lane of every destination that
//! should receive it: the organization's plan streams (Enterprise), the destination is
//! enabled, its filters match. A paused destination still receives its events: its lane parks them on the retry
//! topic (reason `paused`) so they are delivered after an operator resumes it.
//!
//! * **Offsets** are never stored or committed automatically. The [`OffsetTracker`](audit_kafka::offsets::OffsetTracker) counts,
//!   per message, the destinations that have not answered; a lane answers when the event is
//!   delivered, parked on the retry topic (acknowledged by Kafka) or dead-lettered. Every
//!   `commit_interval_ms` the thread commits, per partition, the first offset still in flight
//!   (or the next one when none is). A crash therefore re-delivers at most what was in flight:
//!   **at-least-once**; receivers deduplicate on the event `id` or the `webhook-id`.
//! * **Backpressure**: lane queues are bounded; the router waits on a full lane (or parks the
//!   lane's events if it holds others back, see [`crate::router`]). When more than
//!   `max_buffered_events` events are in flight (not yet answered by every destination; answered
//!   ones waiting behind them for their offset count only at a much larger bound, see
//!   [`OffsetTracker::is_full`](audit_kafka::offsets::OffsetTracker::is_full)) the thread pauses every assigned partition and keeps polling
//!   (rebalances are served, group membership kept, nothing fetched) until the lanes catch up.
//! * **Rebalance (revoke)**: the thread waits up to `drain_timeout_secs` for the events of the
//!   revoked partitions to be answered (a failing destination parks within its in-memory
//!   budget, so this normally completes), commits their offsets synchronously and lets them go.
//!   Events of those partitions still queued afterwards are dropped by their lanes before
//!   sending (their epoch is gone), and their late answers are ignored: the next owner re-reads
//!   them from the committed offset.
//! * **Assign**: new partitions get a new epoch and start from the committed offset.
//! * **Shutdown**: stop polling, close the lanes (they deliver what they hold; a failing one
//!   parks at once instead of waiting), wait up to `drain_timeout_secs`, commit synchronously,
//!   close the consumer.

use std::sync::Arc;

use audit_kafka::MessageParts;
use audit_settings::{EventFormat, SettingsView};
use rdkafka::message::{BorrowedMessage, Message};

use crate::delivery::Delivery;
use crate::event::{Decoder, Reading};
use crate::polling::{ConsumerCore, ConsumerThread};

/// The events consumer thread: routes each event to the lanes of the destinations it
/// matches (the run and drain protocol is [`crate::polling`]'s).
pub struct EventsConsumer {
    pub core: ConsumerCore,
    pub decoder: Decoder,
}

impl ConsumerThread for EventsConsumer {
    fn core(&self) -> &ConsumerCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut ConsumerCore {
        &mut self.core
    }

    fn accept(
        &mut self,
        message: &BorrowedMessage<'_>,
        view: &SettingsView,
        _runtime: &tokio::runtime::Handle,
    ) {
        self.route(message, view);
    }
}

impl EventsConsumer {
    fn route(&mut self, message: &BorrowedMessage<'_>, view: &SettingsView) {
        let partition = message.partition();
        let offset = message.offset();
        let parts = MessageParts::of(message, self.core.tracker.topic(), "forwarder");
        let reading = if message
            .key()
            .and_then(|key| view.org(std::str::from_utf8(key).ok()?))
            .is_some_and(|org| takes_ocsf(&org.destinations))
        {
            Reading::Whole
        } else {
            Reading::Head
        };
        let mut decoded = match self.decoder.decode_reading(parts, reading) {
            Ok(decoded) => decoded,
            Err(reason) => {
                // The indexer dead-letters invalid messages; the forwarder skips them.
                metrics::counter!("forwarder_skipped_total", "reason" => "invalid").increment(1);
                tracing::debug!(partition, offset, %reason, "message not forwarded: invalid");
                self.core.tracker.track(partition, offset, 0);
                return;
            }
        };
        let event = &decoded.event;
        let Some(org) = view.org(&event.org_id).cloned() else {
            self.core.tracker.track(partition, offset, 0);
            return;
        };
        if !self.core.plans.policy(org.plan).streaming {
            self.core.tracker.track(partition, offset, 0);
            return;
        }
        if let Err(reason) = self.core.plans.check_retained(
            &event.org_id,
            Some(&org),
            occurred_at(event.occurred_at_ms),
            time::OffsetDateTime::now_utc(),
        ) {
            // Older than the organization's retention: the indexer dead-letters it, so it is
            // not in the log and is not forwarded either.
            metrics::counter!("forwarder_skipped_total", "reason" => "expired").increment(1);
            tracing::debug!(partition, offset, %reason, "message not forwarded: older than retention");
            self.core.tracker.track(partition, offset, 0);
            return;
        }
        let targets: Vec<&audit_settings::Destination> = org
            .destinations
            .iter()
            .filter(|d| d.enabled && d.filters.matches(&event.category, &event.action))
            .collect();
        let count = u32::try_from(targets.len()).unwrap_or(u32::MAX);
        let Some(ack) = self.core.tracker.track(partition, offset, count) else {
            return;
        };
        if targets
            .iter()
            .any(|destination| destination.format == EventFormat::Ocsf)
        {
            decoded.map_ocsf(self.decoder.catalogue());
        }
        let event = Arc::new(decoded.event);
        let source: Arc<str> = Arc::from(format!(
            "{}/{partition}/{offset}",
            self.core.tracker.topic()
        ));
        for destination in targets {
            let delivery = Delivery {
                event: event.clone(),
                ack: Some(ack.clone()),
                attempt: 0,
                first_failed_ms: None,
                source: source.clone(),
            };
            if !self.core.router.route(&org.org_id, destination, delivery) {
                return;
            }
        }
    }
}

/// Whether any of an organization's destinations takes events in the OCSF format (then its
/// events are read whole, see [`Reading::Whole`]).
fn takes_ocsf(destinations: &[audit_settings::Destination]) -> bool {
    destinations
        .iter()
        .any(|destination| destination.enabled && destination.format == EventFormat::Ocsf)
}

/// `occurred_at` from unix milliseconds (out-of-range values count as the epoch).
fn occurred_at(unix_ms: i64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(unix_ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}
