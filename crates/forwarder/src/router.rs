//! Routing events to lanes, from a consumer thread.
//!
//! The router owns one lane per destination (spawned on the runtime when the destination's
//! first event arrives) and keeps the lanes in step with the settings: a changed destination
//! is reconfigured in order with its events, a deleted or disabled one is retired.
//!
//! **Backpressure and isolation.** A lane's queue is bounded (`lane_queue_events`). When it is
//! full the consumer waits (plain backpressure: the forwarder runs at its destinations' pace
//! and memory stays bounded) — unless that lane is what holds everyone else back, while other
//! lanes have traffic. Then the lane *overflows*: the consumer parks its new events on the
//! retry topic itself (reason `backlog`) until the lane has emptied its queue. A lane holds
//! the others back when
//!
//! * its destination is **stalled** — failing (its last attempt failed, or it is parking), or
//!   its request in flight has had no answer for `stalled_after_ms`: the lane overflows at
//!   once, without waiting (waiting for a hung destination is what delays every organization
//!   sharing its partitions; measured in `bench-forwarder`'s neighbour run);
//! * or it is merely **slow**: the consumer has spent more than half of the last
//!   `overflow_after_ms` waiting for it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use audit_settings::{Destination, PlansConfig, SettingsView};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use crate::config::OverflowRules;
use crate::delivery::{Delivery, ParkReason};
use crate::health::{DestinationShared, Registry};
use crate::lane::{Lane, LaneContext, LaneInput, LaneSpec, Role};
use crate::parking::ParkInfo;

struct LaneHandle {
    sender: mpsc::Sender<LaneInput>,
    destination: Arc<Destination>,
    shared: Arc<DestinationShared>,
    overflowing: Arc<AtomicBool>,
    /// When the lane's request in flight was sent (unix ms), 0 when none is.
    sending_since_ms: Arc<AtomicI64>,
    last_routed: Instant,
    /// Time the consumer spent waiting for this lane since `window_start`.
    blocked: Duration,
    window_start: Instant,
}

/// Routes deliveries to lanes; lives on one consumer thread.
pub struct Router {
    role: Role,
    lanes: HashMap<(String, String), LaneHandle>,
    context: Arc<LaneContext>,
    registry: Arc<Registry>,
    runtime: tokio::runtime::Handle,
    queue_capacity: usize,
    overflow_after: Duration,
    stalled_after: Duration,
    tasks: Vec<JoinHandle<()>>,
}

impl Router {
    pub fn new(
        role: Role,
        context: Arc<LaneContext>,
        registry: Arc<Registry>,
        runtime: tokio::runtime::Handle,
        queue_capacity: usize,
        rules: OverflowRules,
    ) -> Self {
        Self {
            role,
            lanes: HashMap::new(),
            context,
            registry,
            runtime,
            queue_capacity,
            overflow_after: rules.overflow_after,
            stalled_after: rules.stalled_after,
            tasks: Vec::new(),
        }
    }

    /// The lane of `destination`, started on first use.
    fn lane(&mut self, org_id: &str, destination: &Destination) -> &mut LaneHandle {
        let key = (org_id.to_string(), destination.id.clone());
        self.lanes.entry(key).or_insert_with(|| {
            let (sender, input) = mpsc::channel(self.queue_capacity);
            let shared = self.registry.get(org_id, &destination.id);
            let overflowing = Arc::new(AtomicBool::new(false));
            let sending_since_ms = Arc::new(AtomicI64::new(0));
            let destination = Arc::new(destination.clone());
            let lane = Lane::new(LaneSpec {
                role: self.role,
                org_id: org_id.to_string(),
                destination: destination.clone(),
                shared: shared.clone(),
                context: self.context.clone(),
                input,
                overflowing: overflowing.clone(),
                sending_since_ms: sending_since_ms.clone(),
            });
            self.tasks.push(self.runtime.spawn(lane.run()));
            LaneHandle {
                sender,
                destination,
                shared,
                overflowing,
                sending_since_ms,
                last_routed: Instant::now(),
                blocked: Duration::ZERO,
                window_start: Instant::now(),
            }
        })
    }

    /// Hands one delivery to its destination's lane (waiting while the lane is full, see the
    /// module doc). False when it could not be handed over because of shutdown.
    pub fn route(&mut self, org_id: &str, destination: &Destination, delivery: Delivery) -> bool {
        let overflow_after = self.overflow_after;
        let stalled_after = self.stalled_after;
        let role = self.role;
        let shutdown = self.context.shutdown.clone();
        let lane = self.lane(org_id, destination);
        lane.shared.queued(1);
        lane.last_routed = Instant::now();
        if lane.overflowing.load(Ordering::Relaxed) {
            let shared = lane.shared.clone();
            self.park_overflow(org_id, &destination.id, shared, delivery);
            return true;
        }
        let mut input = LaneInput::Deliver(delivery);
        let mut waiting_since: Option<Instant> = None;
        loop {
            let lane = self.lane(org_id, destination);
            match lane.sender.try_send(input) {
                Ok(()) => {
                    if let Some(since) = waiting_since {
                        lane.blocked += since.elapsed();
                    }
                    if lane.window_start.elapsed() >= overflow_after {
                        lane.window_start = Instant::now();
                        lane.blocked = Duration::ZERO;
                    }
                    return true;
                }
                Err(mpsc::error::TrySendError::Full(back)) => {
                    input = back;
                    let since = *waiting_since.get_or_insert_with(Instant::now);
                    if shutdown.is_cancelled() {
                        lane.shared.queued(-1);
                        return false;
                    }
                    let blocked = lane.blocked + since.elapsed();
                    let window = lane.window_start.elapsed().max(Duration::from_millis(1));
                    let holding_back = role == Role::Main
                        && (is_stalled(lane, stalled_after)
                            || is_slow(blocked, window, overflow_after));
                    if holding_back && self.others_active(org_id, &destination.id) {
                        let lane = self.lane(org_id, destination);
                        lane.overflowing.store(true, Ordering::Relaxed);
                        lane.blocked = Duration::ZERO;
                        lane.window_start = Instant::now();
                        let shared = lane.shared.clone();
                        tracing::warn!(
                            destination_id = %destination.id,
                            waited_ms = since.elapsed().as_millis() as u64,
                            "destination cannot keep up and holds other destinations back; parking its new events"
                        );
                        if let LaneInput::Deliver(delivery) = input {
                            self.park_overflow(org_id, &destination.id, shared, delivery);
                        }
                        return true;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    lane.shared.queued(-1);
                    return false;
                }
            }
        }
    }

    /// Whether another lane received events within the overflow window.
    fn others_active(&self, org_id: &str, destination_id: &str) -> bool {
        self.lanes.iter().any(|((org, id), lane)| {
            (org != org_id || id != destination_id)
                && lane.last_routed.elapsed() < self.overflow_after
        })
    }

    fn park_overflow(
        &self,
        org_id: &str,
        destination_id: &str,
        shared: Arc<DestinationShared>,
        delivery: Delivery,
    ) {
        let parker = self.context.parker.clone();
        let org_id = org_id.to_string();
        let destination_id = destination_id.to_string();
        let next = crate::clock::now_ms()
            + i64::try_from(self.context.backoff.delay(1, None).as_millis()).unwrap_or(0);
        self.runtime.spawn(async move {
            let info = ParkInfo {
                org_id: &org_id,
                destination_id: &destination_id,
                reason: ParkReason::Backlog,
                attempt: delivery.attempt,
                next_attempt_ms: next,
                last_status: None,
                last_excerpt: None,
            };
            let parked = parker.park(&[&delivery], &info).await;
            shared.queued(-1);
            if parked {
                shared.parked(1);
                metrics::counter!("forwarder_overflow_parked_total").increment(1);
            }
        });
    }

    /// Brings lanes in step with the settings: reconfigure changed destinations, retire
    /// deleted or disabled ones (and every lane of an organization that lost streaming).
    pub fn sync(&mut self, view: &SettingsView, plans: &PlansConfig) {
        let mut retired = Vec::new();
        for ((org_id, destination_id), lane) in &mut self.lanes {
            let current = view
                .org(org_id)
                .filter(|org| plans.policy(org.plan).streaming)
                .and_then(|org| org.destination(destination_id))
                .filter(|destination| destination.enabled);
            match current {
                None => retired.push((org_id.clone(), destination_id.clone())),
                Some(destination) if *destination != *lane.destination => {
                    let destination = Arc::new(destination.clone());
                    lane.destination = destination.clone();
                    // Order matters: events routed after this see the new settings. A full
                    // queue delays the change slightly; it never drops it.
                    if lane
                        .sender
                        .blocking_send(LaneInput::Configure(Some(destination)))
                        .is_err()
                    {
                        retired.push((org_id.clone(), destination_id.clone()));
                    }
                }
                Some(_) => {}
            }
        }
        for key in retired {
            if let Some(lane) = self.lanes.remove(&key) {
                tracing::info!(org_id = %key.0, destination_id = %key.1, lane = self.role.as_str(), "destination removed or disabled; retiring its lane");
                let _ = lane.sender.blocking_send(LaneInput::Configure(None));
            }
        }
    }

    /// Closes every lane (they deliver what they hold, then stop) and returns their tasks.
    pub fn close(&mut self) -> Vec<JoinHandle<()>> {
        self.lanes.clear();
        std::mem::take(&mut self.tasks)
    }
}

/// A full lane whose destination is failing, or has not answered its request in flight for
/// `stalled_after`: waiting for it would only hold the other lanes back.
fn is_stalled(lane: &LaneHandle, stalled_after: Duration) -> bool {
    let since_ms = lane.sending_since_ms.load(Ordering::Relaxed);
    request_stalled(since_ms, crate::clock::now_ms(), stalled_after) || lane.shared.is_failing()
}

/// Whether a request sent at `since_ms` (0: none in flight) is unanswered for `stalled_after`.
fn request_stalled(since_ms: i64, now_ms: i64, stalled_after: Duration) -> bool {
    let stalled_after_ms = i64::try_from(stalled_after.as_millis()).unwrap_or(i64::MAX);
    since_ms > 0 && now_ms.saturating_sub(since_ms) >= stalled_after_ms
}

/// A lane the consumer has waited for half of the recent window (`blocked` of `window`,
/// at most `overflow_after`).
fn is_slow(blocked: Duration, window: Duration, overflow_after: Duration) -> bool {
    blocked >= overflow_after / 2 && blocked * 2 >= window.min(overflow_after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_unanswered_past_the_bound_is_stalled() {
        let after = Duration::from_millis(1_000);
        assert!(!request_stalled(0, 50_000, after), "nothing in flight");
        assert!(!request_stalled(49_500, 50_000, after));
        assert!(request_stalled(49_000, 50_000, after));
    }

    #[test]
    fn a_slow_lane_overflows_after_holding_the_consumer_half_the_window() {
        let window = Duration::from_secs(5);
        let second = Duration::from_secs(1);
        assert!(
            !is_slow(second, second, window),
            "1 s of waiting is not enough"
        );
        assert!(is_slow(3 * second, 4 * second, window));
        assert!(
            is_slow(3 * second, 10 * second, window),
            "the window counts at most overflow_after"
        );
        assert!(!is_slow(2 * second, 5 * second, window));
    }
}
