//! Unit tests of the lanes without IO: a fake destination ([`FakeSink`], scripted per request)
//! and a recording hand-off ([`Recorder`]) stand in for the HTTP sinks and Kafka; time is
//! tokio's paused clock, so backoffs, probes and linger run instantly and exactly. Each test
//! covers one verdict or one rule of the module doc's table.
#![allow(clippy::unwrap_used)]

mod harness;

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use self::harness::{Reply, Setup, ids, reply};
use super::{LaneInput, Role};
use crate::delivery::{Delivery, ParkReason};
use crate::event::synthetic_event;
use audit_kafka::offsets::OffsetTracker;
use audit_sinks::Verdict;

#[tokio::test(start_paused = true)]
async fn healthy_destination_gets_every_event_in_order_within_its_batch_limits() {
    let mut setup = Setup::new(|_| reply(Verdict::Delivered));
    setup.limits.max_events = 3;
    let mut lane = setup.start();
    let sent = lane.send(7, 0).await;
    let done = lane.finish().await;
    assert_eq!(
        done.requests,
        vec![
            ids(&sent, &[0, 1, 2]),
            ids(&sent, &[3, 4, 5]),
            ids(&sent, &[6])
        ]
    );
    assert_eq!(done.delivered(), 7);
    assert!(done.parked.is_empty() && done.dead.is_empty());
    assert_eq!(done.unanswered, 0, "every event acknowledged");
}

#[tokio::test(start_paused = true)]
async fn batches_are_cut_on_the_framed_length() {
    let mut setup = Setup::new(|_| reply(Verdict::Delivered));
    // An id is 36 bytes, framed as 37 by the fake: two fit in 80 bytes, three do not.
    setup.limits.max_bytes = 80;
    let mut lane = setup.start();
    let sent = lane.send(5, 0).await;
    let done = lane.finish().await;
    assert_eq!(
        done.requests,
        vec![ids(&sent, &[0, 1]), ids(&sent, &[2, 3]), ids(&sent, &[4])]
    );
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn a_partial_failure_retries_only_the_refused_events() {
    let mut calls = 0;
    let mut lane = Setup::new(move |_| {
        calls += 1;
        match calls {
            1 => reply(Verdict::Partial { failed: vec![1] }),
            _ => reply(Verdict::Delivered),
        }
    })
    .start();
    let sent = lane.send(3, 0).await;
    let done = lane.finish().await;
    assert_eq!(done.requests, vec![sent.clone(), ids(&sent, &[1])]);
    assert_eq!(done.delivered(), 3);
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn poison_at_an_index_is_dead_lettered_and_the_rest_resent_at_once() {
    let mut calls = 0;
    let mut lane = Setup::new(move |_| {
        calls += 1;
        match calls {
            1 => reply(Verdict::PoisonAt { index: 1 }),
            _ => reply(Verdict::Delivered),
        }
    })
    .start();
    let sent = lane.send(4, 0).await;
    let done = lane.finish().await;
    assert_eq!(done.requests, vec![sent.clone(), ids(&sent, &[2, 3])]);
    assert_eq!(done.dead.len(), 1);
    assert_eq!(done.dead[0].0, sent[1]);
    assert!(
        done.dead[0].1.contains("event 1 of its batch"),
        "{:?}",
        done.dead
    );
    assert_eq!(done.delivered(), 3);
    assert_eq!(
        done.times[0], done.times[1],
        "no backoff: the rest is not at fault"
    );
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn poison_somewhere_is_isolated_by_splitting_and_only_it_is_dead_lettered() {
    let poison = Arc::new(Mutex::new(String::new()));
    let bad = poison.clone();
    let mut lane = Setup::new(move |batch| {
        if batch.contains(&bad.lock().unwrap()) {
            reply(Verdict::PoisonSomewhere)
        } else {
            reply(Verdict::Delivered)
        }
    })
    .start();
    let event = synthetic_event("org_a", "audit_log.destination.tested", json!({}));
    *poison.lock().unwrap() = event.id.clone();
    let mut sent = lane.send(5, 0).await;
    sent.push(event.id.clone());
    lane.deliver(event, 0).await;
    sent.extend(lane.send(2, 0).await);
    let done = lane.finish().await;
    assert_eq!(done.dead.len(), 1);
    assert_eq!(done.dead[0].0, sent[5]);
    assert_eq!(done.delivered(), 7);
    let delivered: Vec<String> = done
        .requests
        .iter()
        .filter(|batch| !batch.contains(&sent[5]))
        .flatten()
        .cloned()
        .collect();
    assert_eq!(
        delivered,
        ids(&sent, &[0, 1, 2, 3, 4, 6, 7]),
        "the others once each, in order"
    );
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn too_large_batches_are_split_and_a_single_event_too_large_is_dead_lettered() {
    let big = Arc::new(Mutex::new(String::new()));
    let too_big = big.clone();
    let mut lane = Setup::new(move |batch| {
        if batch.len() > 1 || batch[0] == *too_big.lock().unwrap() {
            reply(Verdict::TooLarge)
        } else {
            reply(Verdict::Delivered)
        }
    })
    .start();
    let event = synthetic_event("org_a", "audit_log.destination.tested", json!({}));
    *big.lock().unwrap() = event.id.clone();
    let mut sent = lane.send(2, 0).await;
    sent.push(event.id.clone());
    lane.deliver(event, 0).await;
    sent.extend(lane.send(1, 0).await);
    let done = lane.finish().await;
    assert_eq!(
        done.dead,
        vec![(
            sent[2].clone(),
            "too large for the destination even alone".to_string()
        )]
    );
    let delivered: Vec<String> = done
        .requests
        .iter()
        .filter(|batch| batch.len() == 1 && batch[0] != sent[2])
        .flatten()
        .cloned()
        .collect();
    assert_eq!(delivered, ids(&sent, &[0, 1, 3]), "one at a time, in order");
    assert_eq!(done.delivered(), 3);
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_in_memory_honouring_retry_after() {
    let mut calls = 0;
    let mut lane = Setup::new(move |_| {
        calls += 1;
        match calls {
            1 | 2 => Reply {
                verdict: Verdict::Retriable,
                retry_after: Some(Duration::from_secs(7)),
            },
            _ => reply(Verdict::Delivered),
        }
    })
    .start();
    let sent = lane.send(2, 0).await;
    let done = lane.finish().await;
    assert_eq!(
        done.requests,
        vec![sent.clone(), sent.clone(), sent.clone()]
    );
    assert!(done.parked.is_empty());
    for pair in done.times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_secs(7),
            "Retry-After honoured"
        );
    }
    assert_eq!(done.delivered(), 2);
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn past_the_in_memory_budget_events_are_parked_until_a_probe_succeeds() {
    let failing = Arc::new(AtomicBool::new(true));
    let answer = failing.clone();
    let mut lane = Setup::new(move |_| {
        if answer.load(Ordering::Relaxed) {
            reply(Verdict::Retriable)
        } else {
            reply(Verdict::Delivered)
        }
    })
    .start();
    let first = lane.send(2, 0).await;
    // Three attempts (the in-memory budget) at 0 s, 1-2 s and 3-6 s (jittered backoff), then
    // parked; the probe is due 4-8 s after that, so at 7 s at the earliest.
    tokio::time::sleep(Duration::from_millis(6_500)).await;
    assert_eq!(lane.receiver.requests().len(), 3);
    assert!(lane.shared.is_failing());
    // While parking, new events go to the retry topic without a request, until the probe.
    let second = lane.send(1, 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(lane.receiver.requests().len(), 3);
    failing.store(false, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(120)).await;
    let third = lane.send(1, 0).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fourth = lane.send(1, 0).await;
    let done = lane.finish().await;
    let parked: Vec<(String, ParkReason, u32)> = done
        .parked
        .iter()
        .map(|p| (p.id.clone(), p.reason, p.attempt))
        .collect();
    assert_eq!(
        parked,
        vec![
            (first[0].clone(), ParkReason::Failing, 3),
            (first[1].clone(), ParkReason::Failing, 3),
            (second[0].clone(), ParkReason::Failing, 3),
        ]
    );
    assert_eq!(
        done.requests[3..],
        [third.clone(), fourth.clone()],
        "the probe succeeds, then direct delivery again"
    );
    assert!(!done.shared.is_failing());
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn a_misconfigured_destination_is_paused_and_its_events_parked_as_paused() {
    let mut lane = Setup::new(|_| reply(Verdict::Misconfigured)).start();
    let first = lane.send(2, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let later = lane.send(1, 0).await;
    let done = lane.finish().await;
    assert_eq!(done.requests, vec![first.clone()], "no request once paused");
    assert!(done.shared.has_pause_request());
    let parked: Vec<(String, ParkReason)> = done
        .parked
        .iter()
        .map(|p| (p.id.clone(), p.reason))
        .collect();
    assert_eq!(
        parked,
        vec![
            (first[0].clone(), ParkReason::Paused),
            (first[1].clone(), ParkReason::Paused),
            (later[0].clone(), ParkReason::Paused),
        ]
    );
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn a_destination_whose_sink_cannot_be_built_is_paused_without_requests() {
    let mut setup = Setup::new(|_| reply(Verdict::Delivered));
    setup.unusable = Some("config.url: refused by the outbound policy");
    let mut lane = setup.start();
    lane.send(2, 0).await;
    let done = lane.finish().await;
    assert!(done.requests.is_empty());
    assert!(done.shared.has_pause_request());
    assert_eq!(done.parked.len(), 2);
    assert!(done.parked.iter().all(|p| p.reason == ParkReason::Paused));
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn events_of_a_revoked_partition_are_dropped_for_their_new_owner() {
    let mut lane = Setup::new(|_| reply(Verdict::Delivered)).start();
    // Read under an assignment that has since been revoked.
    let stale_tracker = OffsetTracker::new("events");
    stale_tracker.assign(&[0]);
    let event = synthetic_event("org_a", "audit_log.destination.tested", json!({}));
    let ack = stale_tracker.track(0, 0, 1);
    stale_tracker.revoke(&[0]);
    let delivery = Delivery {
        event: Arc::new(event),
        ack,
        attempt: 0,
        first_failed_ms: None,
        source: Arc::from("events/0/0"),
    };
    lane.input.send(LaneInput::Deliver(delivery)).await.unwrap();
    let kept = lane.send(1, 0).await;
    let done = lane.finish().await;
    assert_eq!(done.requests, vec![kept], "only the current event is sent");
    assert!(done.parked.is_empty() && done.dead.is_empty());
}

#[tokio::test(start_paused = true)]
async fn events_older_than_the_maximum_age_are_dead_lettered_not_sent() {
    let mut setup = Setup::new(|_| reply(Verdict::Delivered));
    setup.max_event_age = Duration::from_secs(60);
    let mut lane = setup.start();
    let mut old = synthetic_event("org_a", "audit_log.destination.tested", json!({}));
    old.received_at_ms -= 61_000;
    let old_id = old.id.clone();
    lane.deliver(old, 0).await;
    let fresh = lane.send(1, 0).await;
    let done = lane.finish().await;
    assert_eq!(done.requests, vec![fresh]);
    assert_eq!(done.dead.len(), 1);
    assert_eq!(done.dead[0].0, old_id);
    assert!(done.dead[0].1.contains("max_event_age"), "{:?}", done.dead);
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn an_event_over_the_destinations_size_limit_is_dead_lettered_alone() {
    let mut setup = Setup::new(|_| reply(Verdict::Delivered));
    setup.limits.max_event_bytes = 35; // an id is 36 bytes: every event is too large
    let mut lane = setup.start();
    lane.send(2, 0).await;
    let done = lane.finish().await;
    assert!(done.requests.is_empty());
    assert_eq!(done.dead.len(), 2);
    assert!(
        done.dead[0]
            .1
            .contains("over the destination's limit of 35 bytes")
    );
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn a_deleted_destination_dead_letters_what_it_still_holds() {
    let mut lane = Setup::new(|_| reply(Verdict::Delivered)).start();
    let before = lane.send(1, 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    lane.input.send(LaneInput::Configure(None)).await.unwrap();
    let after = lane.send(2, 0).await;
    let done = lane.finish().await;
    assert_eq!(done.requests, vec![before]);
    let dead: Vec<String> = done.dead.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(dead, after);
    assert!(done.dead[0].1.contains("deleted or disabled"));
    assert_eq!(done.unanswered, 0);
}

#[tokio::test(start_paused = true)]
async fn the_retry_lane_reparks_each_event_with_its_own_attempts_and_closes_the_circuit() {
    let mut setup = Setup::new(|_| reply(Verdict::Retriable));
    setup.role = Role::Retry;
    let mut lane = setup.start();
    let once = lane.send(1, 1).await;
    let thrice = lane.send(1, 3).await;
    let before = crate::clock::now_ms();
    let done = lane.finish().await;
    assert_eq!(
        done.requests.len(),
        1,
        "no in-memory retries on the retry lane"
    );
    let attempts: Vec<(String, u32)> = done
        .parked
        .iter()
        .map(|p| (p.id.clone(), p.attempt))
        .collect();
    assert_eq!(attempts, vec![(once[0].clone(), 2), (thrice[0].clone(), 4)]);
    assert!(
        done.parked[1].next_attempt_ms > done.parked[0].next_attempt_ms,
        "more attempts, later retry"
    );
    assert!(done.shared.retry_blocked_until_ms() >= done.parked[1].next_attempt_ms);
    assert!(done.shared.retry_blocked_until_ms() > before);
    assert_eq!(done.unanswered, 0);
}
