//! A lane delivers the events of one destination, in order, one request at a time.
//!
//! There are two lanes per destination and process: the **main** lane fed by the events
//! consumer, and the **retry** lane fed by the retry consumer with parked events that are due.
//!
//! A lane cuts batches within the destination's [`BatchLimits`] (or when the first event has
//! waited `linger_ms`), sends them, and acts on the classifier's verdict:
//!
//! | verdict | action |
//! |---|---|
//! | delivered | acknowledge the events |
//! | partial (Wazuh) | acknowledge the accepted ones, retry only the refused ones |
//! | poison at *i* (HEC `invalid-event-number`) | acknowledge those before *i*, dead-letter *i*, resend the rest at once |
//! | poison somewhere, too large (400, 413) | split the batch in halves until the bad event is alone, dead-letter it |
//! | retriable | retry in memory with backoff (`in_memory_attempts`, `in_memory_budget_ms`), then **park** |
//! | misconfigured | ask for a pause, park everything with reason `paused` |
//!
//! The main lane's modes: **direct** (healthy); **parking** (after the in-memory budget): every
//! new batch is parked on the retry topic so the consumer never waits for this destination,
//! except one probe batch sent directly each backoff interval — a success (or a success of
//! the retry lane) returns to direct; **paused** (settings say so): everything is parked with
//! reason `paused` until an operator resumes the destination. The retry lane has no in-memory
//! retries: a failure re-parks the events with the next attempt time and closes the
//! destination's retry circuit until then.
//!
//! Before sending, events whose partition was revoked are dropped (their new owner re-reads
//! them) and events older than `max_event_age_secs` are dead-lettered.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use audit_settings::{Destination, DestinationState};
use tokio::sync::mpsc;
// Tokio's clock, so that tests run the backoff and probe timers on paused time.
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::BackoffEngine;
use crate::config::RetryConfig;
use crate::delivery::{Delivery, ParkReason};
use crate::health::{DestinationShared, PauseRequest};
use crate::parking::Handoff;
use audit_sinks::{BatchLimits, DestinationSink, SinkFactory};

mod deliver;
mod handoff;
mod meters;
#[cfg(test)]
mod tests;

use meters::LaneMetrics;

/// Which consumer feeds the lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Main,
    Retry,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Main => "main",
            Role::Retry => "retry",
        }
    }
}

/// What a lane receives, in order.
#[derive(Debug)]
pub enum LaneInput {
    Deliver(Delivery),
    /// The destination's settings changed; `None` when it was deleted or disabled (the events
    /// still queued are dead-lettered, so a replay can send them if it is re-enabled).
    Configure(Option<Arc<Destination>>),
}

/// What every lane shares.
pub struct LaneContext {
    /// Builds each destination's sink (the forwarder: [`audit_sinks::SinkContext`]).
    pub sinks: Arc<dyn SinkFactory>,
    /// Parks and dead-letters (the forwarder: [`crate::parking::Parker`]).
    pub parker: Arc<dyn Handoff>,
    pub backoff: BackoffEngine,
    pub retry: RetryConfig,
    pub linger: Duration,
    pub max_event_age: Duration,
    pub shutdown: CancellationToken,
}

/// One event and its encoding for the destination.
struct Item {
    delivery: Delivery,
    encoded: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Direct,
    Parking {
        probe_at: Instant,
        attempts: u32,
        since_ms: i64,
    },
    Paused,
}

/// Everything needed to start a lane.
pub struct LaneSpec {
    pub role: Role,
    pub org_id: String,
    pub destination: Arc<Destination>,
    pub shared: Arc<DestinationShared>,
    pub context: Arc<LaneContext>,
    pub input: mpsc::Receiver<LaneInput>,
    /// Set by the consumer when it parks this lane's events itself (queue full too long);
    /// cleared by the lane when its queue is empty again.
    pub overflowing: Arc<AtomicBool>,
    /// When the lane's request in flight was sent (unix ms), 0 when none is: the consumer
    /// does not wait for a full lane whose destination has not answered for long.
    pub sending_since_ms: Arc<AtomicI64>,
}

pub struct Lane {
    role: Role,
    org_id: String,
    destination: Arc<Destination>,
    /// The sink, or why it cannot be built (then the destination is misconfigured).
    sink: Result<DestinationSink, audit_sinks::Error>,
    retired: bool,
    mode: Mode,
    shared: Arc<DestinationShared>,
    context: Arc<LaneContext>,
    input: mpsc::Receiver<LaneInput>,
    overflowing: Arc<AtomicBool>,
    sending_since_ms: Arc<AtomicI64>,
    carry: Option<Item>,
    pending_configure: Option<Option<Arc<Destination>>>,
    metrics: LaneMetrics,
}

impl Lane {
    pub fn new(spec: LaneSpec) -> Self {
        let metrics = LaneMetrics::new(&spec.org_id, &spec.destination, spec.role);
        let mut lane = Self {
            role: spec.role,
            org_id: spec.org_id,
            destination: spec.destination.clone(),
            sink: Err(audit_sinks::Error::destination(
                &spec.destination.id,
                "not built yet",
            )),
            retired: false,
            mode: Mode::Direct,
            shared: spec.shared,
            context: spec.context,
            input: spec.input,
            overflowing: spec.overflowing,
            sending_since_ms: spec.sending_since_ms,
            carry: None,
            pending_configure: None,
            metrics,
        };
        lane.configure(Some(spec.destination));
        lane
    }

    /// Runs until the router drops the lane's sender and the queue is empty.
    pub async fn run(mut self) {
        loop {
            let Some(batch) = self.gather().await else {
                break;
            };
            if !batch.is_empty() {
                self.process(batch).await;
            }
            if let Some(configure) = self.pending_configure.take() {
                self.configure(configure);
            }
            if self.input.is_empty() && self.carry.is_none() {
                self.overflowing.store(false, Ordering::Relaxed);
            }
        }
        tracing::debug!(destination_id = %self.destination.id, lane = self.role.as_str(), "lane stopped");
    }

    fn configure(&mut self, destination: Option<Arc<Destination>>) {
        let Some(destination) = destination else {
            self.retired = true;
            return;
        };
        self.retired = false;
        self.destination = destination.clone();
        self.sink = self
            .context
            .sinks
            .build(&self.org_id, &destination, &self.shared.sink_state);
        let paused_in_settings = matches!(destination.state, DestinationState::Paused { .. });
        match (&self.sink, paused_in_settings) {
            (_, true) => self.mode = Mode::Paused,
            (Err(reason), false) => {
                tracing::warn!(destination_id = %destination.id, %reason, "destination cannot be used; pausing it");
                self.shared.request_pause(PauseRequest {
                    reason: format!("misconfigured: {reason}"),
                    last_status: None,
                });
                self.mode = Mode::Paused;
            }
            (Ok(_), false) => {
                if self.mode == Mode::Paused {
                    tracing::info!(destination_id = %destination.id, lane = self.role.as_str(), "destination active again");
                    self.mode = Mode::Direct;
                }
            }
        }
    }

    fn limits(&self) -> BatchLimits {
        match &self.sink {
            Ok(sink) => sink.limits(),
            Err(_) => BatchLimits {
                max_events: 1_000,
                max_bytes: 4 * 1024 * 1024,
                max_event_bytes: usize::MAX,
            },
        }
    }

    /// Whether events are encoded for sending (not when they can only be parked or dropped).
    fn encodes(&self) -> bool {
        !self.retired && self.mode != Mode::Paused && self.sink.is_ok()
    }

    fn item(&self, delivery: Delivery) -> Item {
        let encoded = match (&self.sink, self.encodes()) {
            (Ok(sink), true) => sink.encode(&delivery.event),
            _ => Vec::new(),
        };
        Item { delivery, encoded }
    }

    fn item_len(item: &Item) -> usize {
        if item.encoded.is_empty() {
            item.delivery.event.json.len()
        } else {
            item.encoded.len()
        }
    }

    fn framed_len(&self, bytes: usize, count: usize) -> usize {
        match &self.sink {
            Ok(sink) => sink.framed_len(bytes, count),
            Err(_) => bytes,
        }
    }

    /// The next batch: waits for a first event, then takes more until a limit is reached or
    /// the first has waited `linger`. `None` when the lane is closed and empty.
    async fn gather(&mut self) -> Option<Vec<Item>> {
        let limits = self.limits();
        let mut batch: Vec<Item> = Vec::new();
        let mut bytes = 0;
        if let Some(item) = self.carry.take() {
            bytes += Self::item_len(&item);
            batch.push(item);
        }
        if batch.is_empty() {
            match self.input.recv().await? {
                LaneInput::Configure(destination) => {
                    self.pending_configure = Some(destination);
                    return Some(Vec::new());
                }
                LaneInput::Deliver(delivery) => {
                    let item = self.item(delivery);
                    bytes += Self::item_len(&item);
                    batch.push(item);
                }
            }
        }
        let deadline = tokio::time::Instant::now() + self.context.linger;
        while batch.len() < limits.max_events
            && self.framed_len(bytes, batch.len()) < limits.max_bytes
        {
            let next = match self.input.try_recv() {
                Ok(next) => next,
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {
                    match tokio::time::timeout_at(deadline, self.input.recv()).await {
                        Ok(Some(next)) => next,
                        Ok(None) | Err(_) => break,
                    }
                }
            };
            match next {
                LaneInput::Configure(destination) => {
                    self.pending_configure = Some(destination);
                    break;
                }
                LaneInput::Deliver(delivery) => {
                    let item = self.item(delivery);
                    let len = Self::item_len(&item);
                    if self.framed_len(bytes + len, batch.len() + 1) > limits.max_bytes {
                        self.carry = Some(item);
                        break;
                    }
                    bytes += len;
                    batch.push(item);
                }
            }
        }
        Some(batch)
    }

    async fn process(&mut self, batch: Vec<Item>) {
        let now_ms = crate::clock::now_ms();
        let max_age_ms = i64::try_from(self.context.max_event_age.as_millis()).unwrap_or(i64::MAX);
        let limits = self.limits();
        let mut ready = Vec::with_capacity(batch.len());
        for item in batch {
            if !item.delivery.is_current() {
                // The partition went to another instance, which re-reads the event.
                self.metrics.stale.increment(1);
                self.shared.queued(-1);
                continue;
            }
            if self.retired {
                self.dead_letter(
                    item,
                    "the destination was deleted or disabled before the event was delivered".into(),
                    None,
                )
                .await;
                continue;
            }
            if now_ms - item.delivery.event.received_at_ms > max_age_ms {
                let reason = format!(
                    "older than max_event_age ({} s) and not delivered",
                    self.context.max_event_age.as_secs()
                );
                self.dead_letter(item, reason, None).await;
                continue;
            }
            if !item.encoded.is_empty() && item.encoded.len() > limits.max_event_bytes {
                let reason = format!(
                    "the event's encoding is {} bytes, over the destination's limit of {} bytes",
                    item.encoded.len(),
                    limits.max_event_bytes
                );
                self.dead_letter(item, reason, None).await;
                continue;
            }
            ready.push(item);
        }
        if ready.is_empty() {
            return;
        }
        match self.mode {
            Mode::Paused => {
                let next = now_ms + ms(Duration::from_secs(self.context.retry.paused_recheck_secs));
                self.park(ready, ParkReason::Paused, None, Some(next), None)
                    .await;
            }
            Mode::Parking {
                probe_at,
                attempts,
                since_ms,
            } => {
                if self.shared.last_success_ms() > since_ms {
                    // The retry lane got through: the destination is back.
                    self.set_mode(Mode::Direct);
                    self.deliver(ready, false).await;
                } else if Instant::now() >= probe_at {
                    self.deliver(ready, true).await;
                } else {
                    let next = now_ms + ms(probe_at.saturating_duration_since(Instant::now()));
                    self.park(ready, ParkReason::Failing, Some(attempts), Some(next), None)
                        .await;
                }
            }
            Mode::Direct => self.deliver(ready, false).await,
        }
    }

    fn set_mode(&mut self, mode: Mode) {
        self.mode = mode;
        self.shared
            .set_parking(matches!(mode, Mode::Parking { .. }));
    }
}

/// A duration in milliseconds, for unix-ms arithmetic.
fn ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
