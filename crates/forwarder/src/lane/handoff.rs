//! What a lane does with events it has finished with: acknowledge the delivered ones, park
//! the others on the retry topic or dead-letter them (through [`crate::parking::Handoff`]).

use super::{Item, Lane, Role, ms};
use crate::delivery::{Delivery, ParkReason};
use crate::parking::{DeadInfo, ParkInfo};
use audit_kafka::offsets::Ack;
use audit_sinks::Attempt;

impl Lane {
    pub(super) fn delivered(&mut self, items: Vec<Item>) {
        if items.is_empty() {
            return;
        }
        let now_ms = crate::clock::now_ms();
        Ack::all(items.iter().filter_map(|item| item.delivery.ack.as_ref()));
        let count = items.len() as u64;
        for item in &items {
            let age_ms = (now_ms - item.delivery.event.received_at_ms).max(0);
            self.metrics.latency_seconds.record(age_ms as f64 / 1000.0);
        }
        self.metrics.delivered.increment(count);
        self.shared.delivered(count);
        self.shared.queued(-(count as i64));
        if self.role == Role::Retry {
            self.shared.unparked(count);
        }
    }

    /// Parks items: `added_attempts` failures are added to each event's count (`None`: keep
    /// it), next attempt at `next_ms` (default: the backoff of the event's count).
    pub(super) async fn park(
        &mut self,
        items: Vec<Item>,
        reason: ParkReason,
        added_attempts: Option<u32>,
        next_ms: Option<i64>,
        attempt: Option<&Attempt>,
    ) {
        if items.is_empty() {
            return;
        }
        let now_ms = crate::clock::now_ms();
        // Items of one park call share their attempt count when they are fresh; parked
        // events keep their own.
        let mut groups: Vec<(u32, Vec<&Delivery>)> = Vec::new();
        for item in &items {
            let attempts = item.delivery.attempt + added_attempts.unwrap_or(0);
            match groups.last_mut() {
                Some((count, deliveries)) if *count == attempts => deliveries.push(&item.delivery),
                _ => groups.push((attempts, vec![&item.delivery])),
            }
        }
        for (attempts, deliveries) in groups {
            let next = next_ms
                .unwrap_or_else(|| now_ms + ms(self.context.backoff.delay(attempts.max(1), None)));
            let info = ParkInfo {
                org_id: &self.org_id,
                destination_id: &self.destination.id,
                reason,
                attempt: attempts,
                next_attempt_ms: next,
                last_status: attempt.map(|a| a.status.as_str()),
                last_excerpt: attempt.map(|a| a.excerpt.as_str()),
            };
            let parked = self.context.parker.park(&deliveries, &info).await;
            let count = deliveries.len() as u64;
            self.shared.queued(-(count as i64));
            if parked {
                self.metrics.parked.increment(count);
                self.shared.parked(count);
                if self.role == Role::Retry {
                    self.shared.unparked(count);
                }
            }
        }
    }

    pub(super) async fn dead_letter(
        &mut self,
        item: Item,
        reason: String,
        attempt: Option<&Attempt>,
    ) {
        let info = DeadInfo {
            destination_id: &self.destination.id,
            reason,
            last_status: attempt.map(|a| a.status.as_str()),
            last_excerpt: attempt.map(|a| a.excerpt.as_str()),
        };
        tracing::warn!(
            destination_id = %self.destination.id,
            event_id = %item.delivery.event.id,
            reason = %info.reason,
            status = ?info.last_status,
            "dead-lettering an event"
        );
        let done = self.context.parker.dead_letter(&item.delivery, &info).await;
        self.shared.queued(-1);
        if done {
            self.metrics.dead_lettered.increment(1);
            self.shared.dead_lettered(1);
            if self.role == Role::Retry {
                self.shared.unparked(1);
            }
        }
    }
}
