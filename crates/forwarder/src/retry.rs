//! The retry consumer: re-delivers events parked on the retry topic when they are due.
//!
//! # Protocol
//!
//! A dedicated thread owns a group consumer of the retry topic (group
//! `consumer.retry_group_id`, default `{group_id}-retry`); offsets follow the same rules as
//! the events consumer ([`crate::consumer`]): committed only once the parked event was
//! delivered, parked again, or dead-lettered. Parked events are keyed `org/destination`, so
//! all of a destination's parked events are in one partition, in the order they were parked.
//!
//! For each parked event, in partition order, the thread decides:
//!
//! | situation | decision |
//! |---|---|
//! | organization gone, plan without streaming, destination deleted or disabled | dead-letter (a replay can re-send it) |
//! | older than `max_event_age_secs` | dead-letter |
//! | destination paused | wait until its next check (`paused_recheck_secs`), then park it again |
//! | destination active, parked because it was paused | due now (an operator resumed it) |
//! | not due yet (`fwd-next-attempt-ms`, or the destination's retry circuit is open) | **hold** |
//! | due | hand it to the destination's **retry lane** ([`crate::lane`]) |
//!
//! *Hold* keeps the message in memory (not yet tracked, so no offset moves past it), pauses
//! its partition, and re-decides every loop (a settings change — resume, deletion — applies at
//! once). Other partitions keep flowing; within a partition a later message waits at most
//! `max_backoff_ms` (the longest retry delay) behind a held one. On revoke, held messages of
//! the revoked partitions are dropped (the next owner re-reads them); the drain/commit rules
//! are the events consumer's.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use audit_settings::{Destination, DestinationState, PlansConfig, SettingsView};
use rdkafka::consumer::Consumer;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::delivery::{Delivery, ParkReason, ParkedMeta};
use crate::event::decode_head;
use crate::health::Registry;
use crate::parking::{DeadInfo, ParkInfo, Parker};
use crate::polling::{ConsumerCore, ConsumerThread};

/// What to do with a parked event now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Send it through the destination's retry lane.
    Deliver(Box<Destination>),
    /// Not yet: decide again later (at the latest at this unix ms).
    Hold(i64),
    /// Park it again for a paused destination, next check at this unix ms.
    Repark(i64),
    /// It can never be delivered: dead-letter it, with this reason.
    DeadLetter(String),
}

/// The rules of the table in the module doc.
pub struct DecisionRules<'a> {
    pub plans: &'a PlansConfig,
    pub max_event_age_ms: i64,
    pub paused_recheck_ms: i64,
}

impl DecisionRules<'_> {
    pub fn decide(
        &self,
        meta: &ParkedMeta,
        view: &SettingsView,
        retry_blocked_until_ms: i64,
        now_ms: i64,
    ) -> Decision {
        let Some(org) = view.org(&meta.org_id) else {
            return Decision::DeadLetter("the organization has no settings any more".into());
        };
        if !self.plans.policy(org.plan).streaming {
            return Decision::DeadLetter(format!(
                "the organization's plan (`{}`) no longer includes streaming",
                org.plan.as_str()
            ));
        }
        let Some(destination) = org.destination(&meta.destination_id) else {
            return Decision::DeadLetter("the destination was deleted".into());
        };
        if !destination.enabled {
            return Decision::DeadLetter("the destination was disabled".into());
        }
        if now_ms - meta.received_ms > self.max_event_age_ms {
            return Decision::DeadLetter(format!(
                "older than max_event_age ({} s) and not delivered",
                self.max_event_age_ms / 1000
            ));
        }
        if matches!(destination.state, DestinationState::Paused { .. }) {
            return if meta.next_attempt_ms <= now_ms {
                Decision::Repark(now_ms + self.paused_recheck_ms)
            } else {
                Decision::Hold(meta.next_attempt_ms)
            };
        }
        let due = if meta.reason == ParkReason::Paused {
            // Parked while paused; the destination is active again.
            retry_blocked_until_ms
        } else {
            meta.next_attempt_ms.max(retry_blocked_until_ms)
        };
        if due <= now_ms {
            Decision::Deliver(Box::new(destination.clone()))
        } else {
            Decision::Hold(due)
        }
    }
}

/// A message waiting for its time, with its partition paused.
pub struct Held {
    partition: i32,
    offset: i64,
    epoch: u64,
    meta: ParkedMeta,
    delivery: Delivery,
}

/// The retry consumer thread: holds each parked event until it is due, then routes it to
/// its destination's retry lane (the run and drain protocol is [`crate::polling`]'s).
pub struct RetryConsumer {
    pub core: ConsumerCore,
    pub registry: Arc<Registry>,
    pub parker: Parker,
    pub max_event_age: Duration,
    pub paused_recheck: Duration,
    /// The message each partition is paused on until it is due.
    pub held: HashMap<i32, Held>,
}

impl ConsumerThread for RetryConsumer {
    fn core(&self) -> &ConsumerCore {
        &self.core
    }

    fn core_mut(&mut self) -> &mut ConsumerCore {
        &mut self.core
    }

    fn tick(&mut self, view: &SettingsView, runtime: &tokio::runtime::Handle) {
        let mut held = std::mem::take(&mut self.held);
        self.release_due(&mut held, view, runtime);
        self.held = held;
    }

    fn resumed(&mut self) {
        // Resuming everything also resumed the partitions with a held message.
        for partition in self.held.keys() {
            self.pause_partition(*partition, true);
        }
    }

    fn accept(
        &mut self,
        message: &BorrowedMessage<'_>,
        view: &SettingsView,
        runtime: &tokio::runtime::Handle,
    ) {
        if let Some(waiting) = self.decide_parked(message, view, runtime) {
            self.pause_partition(message.partition(), true);
            self.held.insert(message.partition(), waiting);
        }
    }
}

impl RetryConsumer {
    fn rules(&self) -> DecisionRules<'_> {
        DecisionRules {
            plans: &self.core.plans,
            max_event_age_ms: i64::try_from(self.max_event_age.as_millis()).unwrap_or(i64::MAX),
            paused_recheck_ms: i64::try_from(self.paused_recheck.as_millis()).unwrap_or(60_000),
        }
    }

    /// Decides on one parked message; returns it when it must be held.
    fn decide_parked(
        &mut self,
        message: &BorrowedMessage<'_>,
        view: &SettingsView,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Held> {
        let partition = message.partition();
        let offset = message.offset();
        let epoch = self.core.tracker.epoch(partition)?;
        let source_here: Arc<str> = Arc::from(format!(
            "{}/{partition}/{offset}",
            self.core.tracker.topic()
        ));
        let meta = ParkedMeta::from_headers(message.headers());
        let event = message
            .payload()
            .ok_or(crate::event::DecodeError::EmptyParked)
            .and_then(|payload| decode_head(payload, crate::clock::now_ms()));
        let (meta, event) = match (meta, event) {
            (Ok(meta), Ok(event)) => (meta, event),
            (Err(reason), _) | (_, Err(reason)) => {
                metrics::counter!("forwarder_skipped_total", "reason" => "unreadable_parked")
                    .increment(1);
                let ack = self.core.tracker.track(partition, offset, 1);
                let Some(payload) = message.payload() else {
                    if let Some(ack) = ack {
                        ack.done();
                    }
                    return None;
                };
                let event = crate::event::ForwardEvent {
                    id: String::new(),
                    org_id: message
                        .key()
                        .and_then(|k| std::str::from_utf8(k).ok())
                        .and_then(|k| k.split('/').next())
                        .unwrap_or_default()
                        .to_string(),
                    category: String::new(),
                    action: String::new(),
                    outcome: String::new(),
                    source: None,
                    occurred_at_ms: 0,
                    received_at_ms: 0,
                    json: bytes::Bytes::copy_from_slice(payload),
                    ocsf: std::sync::OnceLock::new(),
                };
                let delivery = Delivery {
                    event: Arc::new(event),
                    ack,
                    attempt: 0,
                    first_failed_ms: None,
                    source: source_here,
                };
                self.dead_letter(
                    delivery,
                    "unknown",
                    format!("unreadable parked message: {reason}"),
                    None,
                    runtime,
                );
                return None;
            }
        };
        let source: Arc<str> = if meta.source.is_empty() {
            source_here
        } else {
            Arc::from(meta.source.as_str())
        };
        let delivery = Delivery {
            event: Arc::new(event),
            ack: None,
            attempt: meta.attempt,
            first_failed_ms: meta.first_failed_ms,
            source,
        };
        let waiting = Held {
            partition,
            offset,
            epoch,
            meta,
            delivery,
        };
        self.act(waiting, view, runtime)
    }

    /// Acts on a message's decision; returns it when it must (still) be held.
    fn act(
        &mut self,
        mut waiting: Held,
        view: &SettingsView,
        runtime: &tokio::runtime::Handle,
    ) -> Option<Held> {
        let shared = self
            .registry
            .get(&waiting.meta.org_id, &waiting.meta.destination_id);
        let decision = self.rules().decide(
            &waiting.meta,
            view,
            shared.retry_blocked_until_ms(),
            crate::clock::now_ms(),
        );
        if let Decision::Hold(_) = decision {
            return Some(waiting);
        }
        if self.core.tracker.epoch(waiting.partition) != Some(waiting.epoch) {
            // Revoked meanwhile: the next owner re-reads it.
            return None;
        }
        waiting.delivery.ack = self
            .core
            .tracker
            .track(waiting.partition, waiting.offset, 1);
        match decision {
            Decision::Hold(_) => None,
            Decision::Deliver(destination) => {
                self.core
                    .router
                    .route(&waiting.meta.org_id, &destination, waiting.delivery);
                None
            }
            Decision::Repark(next_ms) => {
                let parker = self.parker.clone();
                let meta = waiting.meta;
                let delivery = waiting.delivery;
                runtime.spawn(async move {
                    let info = ParkInfo {
                        org_id: &meta.org_id,
                        destination_id: &meta.destination_id,
                        reason: ParkReason::Paused,
                        attempt: meta.attempt,
                        next_attempt_ms: next_ms,
                        last_status: meta.last_status.as_deref(),
                        last_excerpt: meta.last_excerpt.as_deref(),
                    };
                    parker.park(&[&delivery], &info).await;
                });
                None
            }
            Decision::DeadLetter(reason) => {
                shared.unparked(1);
                let meta = waiting.meta;
                self.dead_letter(
                    waiting.delivery,
                    &meta.destination_id,
                    reason,
                    Some((meta.last_status, meta.last_excerpt)),
                    runtime,
                );
                None
            }
        }
    }

    fn dead_letter(
        &self,
        delivery: Delivery,
        destination_id: &str,
        reason: String,
        last: Option<(Option<String>, Option<String>)>,
        runtime: &tokio::runtime::Handle,
    ) {
        let parker = self.parker.clone();
        let destination_id = destination_id.to_string();
        let shared = self.registry.find(&destination_id);
        runtime.spawn(async move {
            let (status, excerpt) = last.unwrap_or((None, None));
            let info = DeadInfo {
                destination_id: &destination_id,
                reason,
                last_status: status.as_deref(),
                last_excerpt: excerpt.as_deref(),
            };
            tracing::warn!(destination_id = %destination_id, event_id = %delivery.event.id, reason = %info.reason, "dead-lettering a parked event");
            if parker.dead_letter(&delivery, &info).await
                && let Some(shared) = shared
            {
                shared.dead_lettered(1);
            }
        });
    }

    /// Re-decides held messages: releases the due ones (and resumes their partitions), drops
    /// those of partitions no longer owned.
    fn release_due(
        &mut self,
        held: &mut HashMap<i32, Held>,
        view: &SettingsView,
        runtime: &tokio::runtime::Handle,
    ) {
        let partitions: Vec<i32> = held.keys().copied().collect();
        for partition in partitions {
            let Some(waiting) = held.remove(&partition) else {
                continue;
            };
            if self.core.tracker.epoch(partition) != Some(waiting.epoch) {
                continue;
            }
            match self.act(waiting, view, runtime) {
                Some(still) => {
                    held.insert(partition, still);
                }
                None => self.pause_partition(partition, false),
            }
        }
    }

    fn pause_partition(&self, partition: i32, pause: bool) {
        let mut list = TopicPartitionList::new();
        let _ = list.add_partition_offset(self.core.tracker.topic(), partition, Offset::Invalid);
        let result = if pause {
            self.core.consumer.pause(&list)
        } else {
            self.core.consumer.resume(&list)
        };
        if let Err(error) = result {
            tracing::debug!(%error, partition, pause, "partition pause/resume failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use audit_settings::{Filters, OrgSettings, Plan, SecretBox, SettingsView};
    use time::OffsetDateTime;

    fn view(state: DestinationState, enabled: bool, plan: Plan) -> SettingsView {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut org = OrgSettings::new("org_a", now, "test");
        org.plan = plan;
        let _ = SecretBox::ephemeral();
        org.destinations.push(Destination {
            id: "dst_1".into(),
            name: "hook".into(),
            enabled,
            state,
            filters: Filters::default(),
            signing_secrets: vec![],
            config: serde_json::from_value(
                serde_json::json!({"type": "webhook", "url": "https://soc.example.com/hook"}),
            )
            .unwrap(),
            created_at: now,
            format: Default::default(),
        });
        let mut view = SettingsView::default();
        view.orgs.insert("org_a".into(), Arc::new(org));
        view
    }

    fn meta(reason: ParkReason, next: i64) -> ParkedMeta {
        ParkedMeta {
            org_id: "org_a".into(),
            destination_id: "dst_1".into(),
            attempt: 2,
            next_attempt_ms: next,
            reason,
            last_status: Some("503".into()),
            last_excerpt: None,
            received_ms: 1_000_000,
            first_failed_ms: None,
            source: "t/0/1".into(),
        }
    }

    #[test]
    fn decisions_follow_the_table() {
        let plans = PlansConfig::default();
        let rules = DecisionRules {
            plans: &plans,
            max_event_age_ms: 3_600_000,
            paused_recheck_ms: 60_000,
        };
        let active = view(DestinationState::Active, true, Plan::Enterprise);
        let now = 1_000_500;
        assert!(matches!(
            rules.decide(&meta(ParkReason::Failing, now - 1), &active, 0, now),
            Decision::Deliver(_)
        ));
        assert_eq!(
            rules.decide(&meta(ParkReason::Failing, now + 10), &active, 0, now),
            Decision::Hold(now + 10)
        );
        assert_eq!(
            rules.decide(&meta(ParkReason::Failing, now - 1), &active, now + 99, now),
            Decision::Hold(now + 99),
            "the destination's retry circuit is open"
        );
        assert!(
            matches!(
                rules.decide(&meta(ParkReason::Paused, now + 50_000), &active, 0, now),
                Decision::Deliver(_)
            ),
            "resumed: paused events are due at once"
        );
        let paused = view(
            DestinationState::Paused {
                since: OffsetDateTime::UNIX_EPOCH,
                reason: "401".into(),
            },
            true,
            Plan::Enterprise,
        );
        assert_eq!(
            rules.decide(&meta(ParkReason::Paused, now - 1), &paused, 0, now),
            Decision::Repark(now + 60_000)
        );
        assert_eq!(
            rules.decide(&meta(ParkReason::Paused, now + 5), &paused, 0, now),
            Decision::Hold(now + 5)
        );
        for (view, needle) in [
            (
                view(DestinationState::Active, false, Plan::Enterprise),
                "disabled",
            ),
            (
                view(DestinationState::Active, true, Plan::Team),
                "streaming",
            ),
            (SettingsView::default(), "organization"),
        ] {
            match rules.decide(&meta(ParkReason::Failing, now), &view, 0, now) {
                Decision::DeadLetter(reason) => assert!(reason.contains(needle), "{reason}"),
                other => panic!("expected a dead letter, got {other:?}"),
            }
        }
        match rules.decide(
            &meta(ParkReason::Failing, now),
            &active,
            0,
            1_000_000 + 3_600_001,
        ) {
            Decision::DeadLetter(reason) => assert!(reason.contains("max_event_age"), "{reason}"),
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }
}
